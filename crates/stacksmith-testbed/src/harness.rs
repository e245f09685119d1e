//! A test harness for end-to-end tests: one test bed per test binary, shared by every test
//! (each test isolates itself by namespace or object names), torn down at the end.
//!
//! Use it from a `[[test]]` target with `harness = false`:
//! ```text
//! fn main() -> std::process::ExitCode {
//!     stacksmith_testbed::harness::run("my-suite", TestBedOptions::new, vec![
//!         test("something works", |tb| Box::pin(something_works(tb))),
//!     ])
//! }
//! ```
//! The output and exit code are libtest's (`cargo test` filters and `--list` work).

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{TestBed, TestBedOptions};

/// The error type of an end-to-end test.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;
/// What an end-to-end test returns.
pub type TestFuture<'a> = Pin<Box<dyn Future<Output = Result<(), TestError>> + Send + 'a>>;
/// An end-to-end test: an async function of the shared test bed.
pub type TestFn = for<'a> fn(&'a TestBed) -> TestFuture<'a>;

/// One named test.
pub struct E2eTest {
    name: &'static str,
    run: TestFn,
}

/// Names a test.
pub fn test(name: &'static str, run: TestFn) -> E2eTest {
    E2eTest { name, run }
}

/// Starts the shared test bed (unless only listing), runs the tests, shuts the test bed down.
pub fn run(suite: &str, options: fn(String) -> TestBedOptions, tests: Vec<E2eTest>) -> ExitCode {
    let args = Arguments::from_args();
    if args.list {
        let trials = tests.into_iter().map(|t| Trial::test(t.name, || Ok(()))).collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::from(101);
        }
    };
    let name = format!("{suite}-{}", std::process::id());
    let testbed = match runtime.block_on(TestBed::start(options(name))) {
        Ok(testbed) => Arc::new(testbed),
        Err(err) => {
            eprintln!("the shared test bed did not start: {err}");
            return ExitCode::from(101);
        }
    };
    let trials = tests
        .into_iter()
        .map(|t| {
            let testbed = Arc::clone(&testbed);
            let handle = runtime.handle().clone();
            Trial::test(t.name, move || {
                handle.block_on((t.run)(&testbed)).map_err(|err| Failed::from(format!("{err}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let shutdown = match Arc::try_unwrap(testbed) {
        Ok(testbed) => runtime.block_on(testbed.shutdown()),
        Err(_) => Ok(()),
    };
    if let Err(err) = shutdown {
        eprintln!("the shared test bed did not shut down cleanly: {err}");
        return ExitCode::from(101);
    }
    conclusion.exit_code()
}

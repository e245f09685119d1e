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

/// What a suite starts next to its test bed (e.g. the operator); dropped before the test bed
/// shuts down.
pub type Fixture = Box<dyn std::any::Any + Send + Sync>;
/// Starts a suite's fixture once the test bed is up.
pub type SetupFn =
    for<'a> fn(
        &'a TestBed,
    ) -> Pin<Box<dyn Future<Output = Result<Fixture, TestError>> + Send + 'a>>;

/// How a suite runs.
pub struct Suite {
    /// Its name (prefix of the test bed's name).
    pub name: &'static str,
    /// The test bed it needs.
    pub options: fn(String) -> TestBedOptions,
    /// What to start next to the test bed.
    pub setup: Option<SetupFn>,
    /// Run the tests one at a time (for tests that stop servers).
    pub serial: bool,
}

/// Starts the shared test bed (unless only listing), runs the tests, shuts the test bed down.
pub fn run(suite: &str, options: fn(String) -> TestBedOptions, tests: Vec<E2eTest>) -> ExitCode {
    run_suite(
        Suite {
            name: "",
            options,
            setup: None,
            serial: false,
        },
        suite,
        tests,
    )
}

/// Like [`run`], with a fixture started after the test bed and optional serial execution.
pub fn run_suite(suite: Suite, name: &str, tests: Vec<E2eTest>) -> ExitCode {
    let options = suite.options;
    let mut args = Arguments::from_args();
    if suite.serial {
        args.test_threads = Some(1);
    }
    if args.list {
        let trials = tests
            .into_iter()
            .map(|t| Trial::test(t.name, || Ok(())))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::from(101);
        }
    };
    let name = format!("{}{name}-{}", suite.name, std::process::id());
    let testbed = match runtime.block_on(TestBed::start(options(name))) {
        Ok(testbed) => Arc::new(testbed),
        Err(err) => {
            eprintln!("the shared test bed did not start: {err}");
            return ExitCode::from(101);
        }
    };
    let fixture = match suite.setup {
        Some(setup) => match runtime.block_on(setup(&testbed)) {
            Ok(fixture) => Some(fixture),
            Err(err) => {
                eprintln!("the suite's fixture did not start: {err}");
                if let Ok(testbed) = Arc::try_unwrap(testbed) {
                    let _ = runtime.block_on(testbed.shutdown());
                }
                return ExitCode::from(101);
            }
        },
        None => None,
    };
    let trials = tests
        .into_iter()
        .map(|t| {
            let testbed = Arc::clone(&testbed);
            let handle = runtime.handle().clone();
            Trial::test(t.name, move || {
                handle
                    .block_on((t.run)(&testbed))
                    .map_err(|err| Failed::from(format!("{err}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    runtime.block_on(async { drop(fixture) });
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

/// Merges `patch` into `base` as a JSON merge patch does (`null` removes a key): for building
/// test objects from a base and overrides.
pub fn merge_json(base: &mut serde_json::Value, patch: serde_json::Value) {
    use serde_json::Value;
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge_json(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

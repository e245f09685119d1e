//! `stacksmith testbed up|env|down`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use stacksmith_testbed::{RunningTestBed, TestBed, TestBedOptions};

/// Test-bed subcommands.
#[derive(Subcommand, Debug)]
pub enum TestbedCommand {
    /// Start a test bed (hub, prometheus-1, grafana-1) and keep it running until Ctrl-C or
    /// `stacksmith testbed down`. Installs its binaries on first use.
    Up {
        /// Name of the test bed.
        #[arg(long, default_value = "default")]
        name: String,
        /// Use stacksmith's minimal child CRDs even when the upstream ones are available.
        #[arg(long)]
        minimal_crds: bool,
        /// Do not run the stand-in child operators.
        #[arg(long)]
        no_simulator: bool,
    },
    /// Print shell `export` lines that point kubectl and stacksmith at a running test bed.
    Env {
        /// Name of the test bed.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Stop a running test bed and remove everything it left.
    Down {
        /// Name of the test bed.
        #[arg(long, default_value = "default")]
        name: String,
    },
}

/// Runs a test-bed subcommand.
pub async fn run(command: TestbedCommand) -> anyhow::Result<ExitCode> {
    match command {
        TestbedCommand::Up {
            name,
            minimal_crds,
            no_simulator,
        } => {
            let mut options = TestBedOptions::new(name);
            if minimal_crds {
                options.upstream_crds = None;
            }
            options.simulator = !no_simulator;
            let testbed = TestBed::start(options)
                .await
                .context("starting the test bed")?;
            eprintln!("test bed {:?} is up; in another shell:", testbed.name());
            print_env(&testbed.env());
            eprintln!(
                "stop it with Ctrl-C or `stacksmith testbed down --name {}`",
                testbed.name()
            );
            wait_for_stop_signal().await?;
            eprintln!("stopping test bed {:?}", testbed.name());
            testbed.shutdown().await.context("stopping the test bed")?;
            Ok(ExitCode::SUCCESS)
        }
        TestbedCommand::Env { name } => {
            let running = RunningTestBed::find(&name)?;
            print_env(&running.env());
            Ok(ExitCode::SUCCESS)
        }
        TestbedCommand::Down { name } => {
            if stacksmith_testbed::remove_if_abandoned(&name)? {
                eprintln!("test bed {name:?} had no running owner; removed what it left");
                return Ok(ExitCode::SUCCESS);
            }
            let running = RunningTestBed::find(&name)?;
            tokio::task::spawn_blocking(move || running.stop(Duration::from_secs(60))).await??;
            eprintln!("test bed {name:?} stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_env(env: &[(String, String)]) {
    for (key, value) in env {
        println!("export {key}={value}");
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}

//! `stacksmith testbed up|env|down`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use stacksmith_api::ClusterRole;
use stacksmith_testbed::{ClusterSpec, PrometheusSide, RunningTestBed, TestBed, TestBedOptions};

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
        /// Let the simulator play prometheus-operator too, instead of the real one.
        #[arg(long)]
        simulate_prometheus_operator: bool,
        /// Run the real prometheus-operator with its `StatusForConfigurationResources` feature
        /// gate on (off on a stock install, and by default here).
        #[arg(long, conflicts_with = "simulate_prometheus_operator")]
        config_resource_status: bool,
        /// How many Prometheus clusters (`prometheus-1`, `prometheus-2`, ...).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=8))]
        prometheus_clusters: u8,
        /// How many Grafana clusters (`grafana-1`, ...).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=8))]
        grafana_clusters: u8,
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
            simulate_prometheus_operator,
            config_resource_status,
            prometheus_clusters,
            grafana_clusters,
        } => {
            let mut options = TestBedOptions::new(name);
            options.remotes = remotes(prometheus_clusters, grafana_clusters);
            if minimal_crds {
                options.upstream_crds = None;
            }
            options.simulator = !no_simulator;
            options.prometheus_side = if simulate_prometheus_operator {
                PrometheusSide::Simulated
            } else {
                PrometheusSide::Real {
                    status_for_configuration_resources: config_resource_status,
                }
            };
            let testbed = TestBed::start(options)
                .await
                .context("starting the test bed")?;
            eprintln!(
                "test bed {:?} is up: {}; in another shell:",
                testbed.name(),
                testbed.control_plane()
            );
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

/// `prometheus-1..=N` and `grafana-1..=M`.
fn remotes(prometheus: u8, grafana: u8) -> Vec<ClusterSpec> {
    let numbered = |role: ClusterRole, count: u8| {
        (1..=count).map(move |i| ClusterSpec {
            name: format!("{}-{i}", role.as_str()),
            roles: vec![role],
        })
    };
    numbered(ClusterRole::Prometheus, prometheus)
        .chain(numbered(ClusterRole::Grafana, grafana))
        .collect()
}

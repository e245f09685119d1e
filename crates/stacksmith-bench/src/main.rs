//! `stacksmith-bench`: the benchmark suite. Starts the test bed with the simulator, runs the
//! operator (this binary, built in release mode, in a process of its own) and prints one table
//! of figures against the goals. See `docs/benchmarks.md`.

mod bench;
mod failover;
mod observe;
mod operator_proc;
mod report;
mod samples;
mod stats;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::bench::{Options, Section};

/// Benchmarks the stacksmith operator on the local test bed.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// N: stacks converged from cold (section 2; memory is measured at N).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    stacks: u32,
    /// Runs, each on fresh test beds; the table shows medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Samples of each propagation latency (sections 4 and 5).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seconds of idle observation (section 3).
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Stacks converged before and while a cluster is down (section 6).
    #[arg(long, default_value_t = 200)]
    down_stacks: usize,
    /// Stacks converged before the failovers, and per replica count of the throughput
    /// (section 8).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    failover_stacks: u32,
    /// Lease duration in seconds of the replicas (section 8).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    lease_seconds: u64,
    /// Shards of the throughput with 1, 2 and 3 replicas (section 8).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=256))]
    shards: u16,
    /// Run only these sections (default: all).
    #[arg(long, value_enum, num_args = 1..)]
    only: Vec<Section>,
    /// Also save the figures (every run, and the medians) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the operator under test (started by the bench itself).
    #[command(hide = true)]
    Operator {
        /// The hub's kubeconfig.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Share the stacks with other replicas through hub Leases, under this identity.
        #[arg(long)]
        replica: Option<String>,
        /// With `--replica`: the number of shards.
        #[arg(long, default_value_t = 1)]
        shards: u16,
        /// With `--replica`: the lease duration in seconds.
        #[arg(long, default_value_t = 15)]
        lease_seconds: u64,
        /// With `--replica`: the hub namespace of the Leases.
        #[arg(long, default_value = stacksmith_testbed::SYSTEM_NAMESPACE)]
        lease_namespace: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("STACKSMITH_BENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Operator {
            ref kubeconfig,
            ref replica,
            shards,
            lease_seconds,
            ref lease_namespace,
        }) => {
            let leases = replica.as_ref().map(|identity| {
                operator_proc::LeaseArgs {
                    identity: identity.clone(),
                    shards,
                    duration: std::time::Duration::from_secs(lease_seconds),
                }
                .options(lease_namespace)
            });
            runtime.block_on(operator_proc::run_child(kubeconfig, leases))
        }
        None => runtime.block_on(bench(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; the figures mean something only with `cargo run --release -p stacksmith-bench`"
        );
    }
    let options = Options {
        stacks: cli.stacks as usize,
        samples: cli.samples.max(1),
        idle_seconds: cli.idle_seconds,
        down_stacks: cli.down_stacks.max(1),
        failover_stacks: cli.failover_stacks as usize,
        lease_seconds: cli.lease_seconds,
        shards: cli.shards,
        sections: if cli.only.is_empty() {
            vec![
                Section::Calls,
                Section::Cold,
                Section::Idle,
                Section::Status,
                Section::Spec,
                Section::Down,
                Section::Memory,
                Section::Failover,
            ]
        } else {
            cli.only.clone()
        },
    };
    let mut runs = Vec::new();
    for run in 1..=cli.runs as usize {
        eprintln!("==> run {run} of {}: N = {}", cli.runs, options.stacks);
        let figures = bench::run_once(&options, run).await?;
        eprintln!("{}", report::render(&figures, 1));
        runs.push(figures);
    }
    let combined = report::medians(&runs);
    println!(
        "stacksmith-bench: N = {}, {} run(s), {} samples, {} s idle, {} stacks per half of section 6, section 8: {} stacks, {} s leases, {} shards",
        options.stacks,
        cli.runs,
        options.samples,
        options.idle_seconds,
        options.down_stacks,
        options.failover_stacks,
        options.lease_seconds,
        options.shards
    );
    print!("{}", report::render(&combined, runs.len()));
    if let Some(path) = &cli.json {
        let json = serde_json::json!({
            "stacks": options.stacks,
            "runs": runs,
            "medians": combined,
            "samples": options.samples,
            "idle_seconds": options.idle_seconds,
            "down_stacks": options.down_stacks,
            "failover_stacks": options.failover_stacks,
            "lease_seconds": options.lease_seconds,
            "shards": options.shards,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

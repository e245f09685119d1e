//! `stacksmith-bench`: the benchmark suite. Starts the test bed with the simulator, runs the
//! operator (this binary, built in release mode, in a process of its own) and prints one table
//! of figures against the goals. See `docs/benchmarks.md`.

mod bench;
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
        Some(Command::Operator { ref kubeconfig }) => {
            runtime.block_on(operator_proc::run_child(kubeconfig))
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
        sections: if cli.only.is_empty() {
            vec![
                Section::Calls,
                Section::Cold,
                Section::Idle,
                Section::Status,
                Section::Spec,
                Section::Down,
                Section::Memory,
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
        "stacksmith-bench: N = {}, {} run(s), {} samples, {} s idle, {} stacks per half of section 6",
        options.stacks, cli.runs, options.samples, options.idle_seconds, options.down_stacks
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
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

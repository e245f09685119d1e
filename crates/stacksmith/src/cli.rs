//! Command-line interface.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{demo, diff, health, operator, render, shards, status, testbed, validate};

/// stacksmith: one CustomerStack per client, its monitoring stack spread over member clusters.
#[derive(Parser, Debug)]
#[command(name = "stacksmith", version, about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `stacksmith=debug`); default from STACKSMITH_LOG, else `info`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,

    /// Log format on stderr: `text` for people, `json` (one object per line) for log pipelines.
    #[arg(long, global = true, value_enum, env = "STACKSMITH_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the current span (e.g. the stack being reconciled).
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions (MemberCluster, CustomerStack) as YAML.
    Crds {
        /// Print the Markdown reference of every CRD field instead (docs/crd-reference.md).
        #[arg(long)]
        reference: bool,
    },
    /// Run, inspect or stop a local multi-cluster test bed.
    Testbed {
        #[command(subcommand)]
        command: testbed::TestbedCommand,
    },
    /// Run the whole product locally: test bed, operator, an example stack and its status.
    Demo(demo::DemoArgs),
    /// Run the operator against a hub cluster.
    Operator(operator::OperatorArgs),
    /// Judge the health of child objects offline (exit 0 Healthy, 1 not Healthy, 2 bad input).
    Health(health::HealthArgs),
    /// Show stacks' aggregated status as a tree: stack → cluster → child, root cause marked
    /// (exit 0 all Ready, 1 some not Ready, 2 usage or connection error).
    Status(status::StatusArgs),
    /// Show which operator replica holds which shard, and each shard's stacks, from the hub's
    /// Leases (exit 0 every shard held, 1 some shard has no live holder, 2 usage or connection
    /// error).
    Shards(shards::ShardsArgs),
    /// Print the objects the operator would apply for a stack, per member cluster, offline
    /// (exit 0 rendered, 1 the stack has problems, 2 usage error or unreadable path).
    Render(render::RenderArgs),
    /// Check stacksmith manifests offline: schema, what the operator would refuse, clashes
    /// between stacks (exit 0 no problem, 1 problems found, 2 usage error or unreadable path).
    Validate(validate::ValidateArgs),
    /// Show what applying a stack would change in each member cluster (server-side apply dry
    /// runs; exit 0 no change, 1 changes, 2 errors).
    Diff(diff::DiffArgs),
}

/// Runs a parsed command line. Exit codes: 0 ok, 1 problems found, 2 usage or environment error.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crds { reference: false } => {
            crate::output::print_stdout(&stacksmith_api::crds::render_all()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds { reference: true } => {
            crate::output::print_stdout(&stacksmith_api::crd_reference::render()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Testbed { command } => testbed::run(command).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Operator(args) => operator::run(args).await,
        Command::Health(args) => health::run(&args),
        Command::Status(args) => status::run(args).await,
        Command::Shards(args) => shards::run(args).await,
        Command::Render(args) => render::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Diff(args) => diff::run(&args).await,
    }
}

//! Command-line interface.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{demo, testbed_cmd};

/// stacksmith: one CustomerStack per client, its monitoring stack spread over member clusters.
#[derive(Parser, Debug)]
#[command(name = "stacksmith", version, about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `stacksmith=debug`); default from STACKSMITH_LOG, else `info`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions (MemberCluster, CustomerStack) as YAML.
    Crds,
    /// Run, inspect or stop a local multi-cluster test bed.
    Testbed {
        #[command(subcommand)]
        command: testbed_cmd::TestbedCommand,
    },
    /// Bring up a local hub and two remote clusters, register them and show their status.
    Demo(demo::DemoArgs),
}

/// Runs a parsed command line. Exit codes: 0 ok, 1 problems found, 2 usage or environment error.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crds => {
            print!("{}", stacksmith_api::crds::render_all()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Testbed { command } => testbed_cmd::run(command).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

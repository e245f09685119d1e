//! `stacksmith operator`: run the controller against a hub cluster.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::commands::testbed::wait_for_stop_signal;

/// Options of `stacksmith operator`.
#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// Kubeconfig of the hub; default: in-cluster configuration, else `KUBECONFIG` / `~/.kube/config`.
    #[arg(long, env = "STACKSMITH_HUB_KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,

    /// Where to serve `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "STACKSMITH_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,

    /// Stacks reconciled at once (0: no bound).
    #[arg(long, env = "STACKSMITH_CONCURRENT_RECONCILES", default_value_t = stacksmith_controller::DEFAULT_CONCURRENT_RECONCILES)]
    concurrent_reconciles: u16,
}

/// Runs the operator until Ctrl-C or SIGTERM.
pub async fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no hub configuration (in-cluster or KUBECONFIG)")?,
    };
    let version = Client::try_from(config.clone())?
        .apiserver_version()
        .await
        .context("the hub does not answer")?;
    tracing::info!(hub = %version.git_version, "stacksmith operator starting");
    let endpoints = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
    let address = endpoints.local_addr().unwrap_or(args.metrics_addr);
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let counter = stacksmith_controller::api_calls::ApiCallCounter::new();
    let options = stacksmith_controller::OperatorOptions {
        endpoints: Some(endpoints),
        concurrent_reconciles: args.concurrent_reconciles,
    };
    stacksmith_controller::run_with(config, counter, options, async {
        let _ = wait_for_stop_signal().await;
    })
    .await?;
    tracing::info!("stacksmith operator stopped");
    Ok(ExitCode::SUCCESS)
}

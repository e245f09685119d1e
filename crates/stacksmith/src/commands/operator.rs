//! `stacksmith operator`: run the controller against a hub cluster.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use stacksmith_controller::PolicyMode;

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

    /// Whether a CustomerStack needs a TenantPolicy naming its customer: `required` refuses the
    /// stacks no policy governs; `optional` lets them through unchecked. Either way a policy
    /// that names the customer is enforced.
    #[arg(long, env = "STACKSMITH_TENANT_POLICY", value_enum, default_value_t = TenantPolicyArg::Required)]
    tenant_policy: TenantPolicyArg,

    /// The hub namespace where each stack's data-path credentials (its tenant CA and
    /// certificates) are kept, one Secret per stack whose Prometheus cluster sets
    /// `prometheusExposure`. The chart sets its own namespace.
    #[arg(
        long,
        env = "STACKSMITH_CREDENTIALS_NAMESPACE",
        default_value = "stacksmith-system"
    )]
    credentials_namespace: String,

    /// This replica's name in the shard Leases; unique among the replicas (the chart: the pod
    /// name). Default: the host name.
    #[arg(long, env = "STACKSMITH_REPLICA")]
    replica: Option<String>,

    /// How many shards the stacks are spread over; each is reconciled by the one replica that
    /// holds its Lease. 1 (the default): a leader and warm standbys. The same on every replica.
    #[arg(long, env = "STACKSMITH_SHARDS", default_value_t = stacksmith_core::shards::DEFAULT_SHARDS,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(stacksmith_core::shards::MAX_SHARDS)))]
    shards: u16,

    /// The hub namespace of the shard Leases. The chart sets its own namespace.
    #[arg(
        long,
        env = "STACKSMITH_LEASE_NAMESPACE",
        default_value = "stacksmith-system"
    )]
    lease_namespace: String,

    /// How long, in seconds, a Lease holds without renewal: a crashed replica's shards are taken
    /// after it (a stopped one gives them back at once).
    #[arg(long, env = "STACKSMITH_LEASE_DURATION_SECONDS", default_value_t = stacksmith_controller::DEFAULT_LEASE_DURATION.as_secs(),
          value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration_seconds: u64,

    /// Run alone: reconcile every stack, read and write no Lease. Never with a second replica.
    #[arg(long, env = "STACKSMITH_NO_LEASES")]
    no_leases: bool,
}

impl OperatorArgs {
    /// How this replica shares the stacks (`None` with `--no-leases`).
    fn leases(&self) -> Option<stacksmith_controller::LeaseOptions> {
        if self.no_leases {
            return None;
        }
        let replica = self.replica.clone().unwrap_or_else(default_replica_name);
        Some(stacksmith_controller::LeaseOptions {
            identity: replica,
            namespace: self.lease_namespace.clone(),
            shards: self.shards,
            duration: std::time::Duration::from_secs(self.lease_duration_seconds),
        })
    }
}

/// The host name (a pod's name in a cluster), else a name from the process id.
fn default_replica_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .map_or_else(
            || format!("stacksmith-{}", std::process::id()),
            |host| format!("{host}-{}", std::process::id()),
        )
}

/// The values of `--tenant-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TenantPolicyArg {
    /// A stack whose customer no TenantPolicy names is refused.
    Required,
    /// A stack whose customer no TenantPolicy names is let through unchecked.
    Optional,
}

impl From<TenantPolicyArg> for PolicyMode {
    fn from(arg: TenantPolicyArg) -> Self {
        match arg {
            TenantPolicyArg::Required => PolicyMode::Required,
            TenantPolicyArg::Optional => PolicyMode::Optional,
        }
    }
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
    let tenant_policy = PolicyMode::from(args.tenant_policy);
    tracing::info!(hub = %version.git_version, tenant_policy = tenant_policy.as_str(), "stacksmith operator starting");
    let endpoints = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
    let address = endpoints.local_addr().unwrap_or(args.metrics_addr);
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let counter = stacksmith_controller::api_calls::ApiCallCounter::new();
    let options = stacksmith_controller::OperatorOptions {
        endpoints: Some(endpoints),
        concurrent_reconciles: args.concurrent_reconciles,
        tenant_policy,
        leases: args.leases(),
        credentials_namespace: args.credentials_namespace,
    };
    stacksmith_controller::run_with(config, counter, options, async {
        let _ = wait_for_stop_signal().await;
    })
    .await?;
    tracing::info!("stacksmith operator stopped");
    Ok(ExitCode::SUCCESS)
}

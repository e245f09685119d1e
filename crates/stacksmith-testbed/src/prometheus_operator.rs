//! The real prometheus-operator, run against a Prometheus cluster of the test bed.
//!
//! It runs as a process beside the cluster's API server (with the admin kubeconfig: its own
//! RBAC is not what stacksmith's tests are about), reconciles the `Prometheus` objects into
//! StatefulSets whose pods kwok reports Ready (see [`crate::pods`]), and writes the statuses
//! stacksmith judges. Its `StatusForConfigurationResources` feature gate is off, as on a stock
//! install, unless the test bed asks for it.

use std::path::Path;

use crate::error::Result;
use crate::path_arg;
use crate::process::{self, ServerCommand};

/// Who plays prometheus-operator on the test bed's Prometheus clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrometheusSide {
    /// The real prometheus-operator where it is installed (the simulator where it is not, as on
    /// the Debian v1.20 fallback).
    Real {
        /// Run it with `--feature-gates=StatusForConfigurationResources=true`, so that
        /// ServiceMonitors and PrometheusRules get a `status.bindings`. Off on a stock install.
        status_for_configuration_resources: bool,
    },
    /// The simulator writes the statuses (benchmarks at scale; tests of states the real
    /// operator cannot be brought into here).
    Simulated,
}

impl PrometheusSide {
    /// The default: the real operator, gate as `STACKSMITH_TESTBED_CONFIG_STATUS` says
    /// (`on`/`true`/`1`), else off as on a stock install.
    pub fn from_env() -> Self {
        let gate = std::env::var("STACKSMITH_TESTBED_CONFIG_STATUS")
            .is_ok_and(|v| matches!(v.trim(), "on" | "true" | "1"));
        PrometheusSide::Real {
            status_for_configuration_resources: gate,
        }
    }

    /// `true` when the real operator is asked for.
    pub fn is_real(self) -> bool {
        matches!(self, PrometheusSide::Real { .. })
    }
}

/// What ran on a Prometheus cluster of a started test bed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrometheusOperatorRun {
    /// The real operator, with the gate as given.
    Real {
        /// Whether `StatusForConfigurationResources` is on.
        status_for_configuration_resources: bool,
    },
    /// The simulator.
    Simulated,
}

impl std::fmt::Display for PrometheusOperatorRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrometheusOperatorRun::Real {
                status_for_configuration_resources,
            } => write!(
                f,
                "prometheus-operator {} (StatusForConfigurationResources {})",
                crate::binaries::PROMETHEUS_OPERATOR_VERSION,
                if *status_for_configuration_resources {
                    "on"
                } else {
                    "off"
                }
            ),
            PrometheusOperatorRun::Simulated => f.write_str("simulated prometheus-operator"),
        }
    }
}

/// The operator's command for one cluster.
pub(crate) fn command(
    program: &Path,
    cluster: &str,
    kubeconfig: &Path,
    dir: &Path,
    status_for_configuration_resources: bool,
) -> Result<ServerCommand> {
    let port = process::free_port()?;
    let mut args = vec![
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--log-level=info".into(),
        // No kubelet Service: there is no kubelet to scrape.
        "--kubelet-endpoints=false".into(),
    ];
    if status_for_configuration_resources {
        args.push("--feature-gates=StatusForConfigurationResources=true".into());
    }
    Ok(ServerCommand {
        name: format!("prometheus-operator of {cluster}"),
        program: program.to_path_buf(),
        args,
        log: dir.join("prometheus-operator.log"),
        env: vec![("KUBECONFIG".into(), path_arg(kubeconfig))],
    })
}

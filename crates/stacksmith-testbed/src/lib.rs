//! A real multi-cluster Kubernetes test bed on 127.0.0.1.
//!
//! One etcd and several kube-apiservers (a hub and remote clusters, each with its own etcd
//! prefix), TLS from the test bed's own CA, token authentication and RBAC, a kubeconfig per
//! cluster, our CRDs on the hub, the child operators' CRDs on the remotes, the remotes registered
//! as `MemberCluster`s, and a [`simulator`] playing the child operators.
//!
//! Every server is tied to the process that started it (see [`process`]): nothing outlives the
//! owner, and [`TestBed::shutdown`] leaves no process and no directory behind.

pub mod binaries;
pub mod child_crds;
mod cluster;
pub mod data_servers;
pub mod error;
#[cfg(feature = "harness")]
pub mod harness;
pub mod kubeconfig;
pub mod link;
mod pki;
pub mod pods;
pub mod process;
pub mod prometheus_operator;
mod registration;
pub mod simulator;
mod state;

pub use binaries::{Binaries, Component, KUBERNETES_VERSION};
pub use child_crds::CrdSource;
pub use cluster::Cluster;
pub use error::{Result, TestBedError};
pub use prometheus_operator::{PrometheusOperatorRun, PrometheusSide};
pub use registration::{OPERATOR_USER, SYSTEM_NAMESPACE, ensure_namespace};
pub use state::{RunningTestBed, base_dir, remove_if_abandoned};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stacksmith_api::ClusterRole;

use crate::cluster::ClusterPlan;
use crate::process::{ServerCommand, Supervised};
use crate::simulator::Simulator;

/// One cluster the test bed should run.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Its name (also the `MemberCluster` name for remotes).
    pub name: String,
    /// Its roles; empty for the hub.
    pub roles: Vec<ClusterRole>,
}

/// How to build a test bed.
#[derive(Clone, Debug)]
pub struct TestBedOptions {
    /// The test bed's name: its directory under [`base_dir`], and what `stacksmith testbed
    /// env|down` refer to.
    pub name: String,
    /// The remote clusters (the hub is always there).
    pub remotes: Vec<ClusterSpec>,
    /// Run kube-controller-manager (namespace deletion, garbage collection) when available.
    pub controller_manager: bool,
    /// Run the stand-in child operators.
    pub simulator: bool,
    /// Register the remotes as `MemberCluster`s on the hub.
    pub register_members: bool,
    /// Where the upstream child CRDs are; `None` uses our minimal CRDs.
    pub upstream_crds: Option<PathBuf>,
    /// Who plays prometheus-operator on the Prometheus clusters.
    pub prometheus_side: PrometheusSide,
    /// Per-cluster exceptions to `prometheus_side` (cluster name → side).
    pub prometheus_side_of: std::collections::BTreeMap<String, PrometheusSide>,
    /// Install kubectl too (tests that run it as users do); the demo does without.
    pub kubectl: bool,
    /// The link between stacksmith and each member: a delay each way (by default
    /// `STACKSMITH_TESTBED_LINK_DELAY_MS`, else 20 ms), `None` for a direct connection.
    pub member_link: Option<link::LinkConditions>,
}

impl TestBedOptions {
    /// The default layout: a hub, `prometheus-1` (role prometheus) and `grafana-1` (role
    /// grafana), simulator on, remotes registered, upstream CRDs when found.
    pub fn new(name: impl Into<String>) -> Self {
        TestBedOptions {
            name: name.into(),
            remotes: vec![
                ClusterSpec {
                    name: "prometheus-1".into(),
                    roles: vec![ClusterRole::Prometheus],
                },
                ClusterSpec {
                    name: "grafana-1".into(),
                    roles: vec![ClusterRole::Grafana],
                },
            ],
            controller_manager: true,
            simulator: true,
            register_members: true,
            upstream_crds: child_crds::upstream_dir(),
            prometheus_side: PrometheusSide::from_env(),
            prometheus_side_of: std::collections::BTreeMap::new(),
            kubectl: true,
            member_link: Some(link::LinkConditions::from_env().unwrap_or_else(|err| {
                tracing::warn!(%err, "using the default member link delay");
                link::LinkConditions::default()
            })),
        }
    }

    /// What to install for these options.
    fn components(&self) -> Vec<Component> {
        let mut components = vec![Component::Etcd, Component::Kubernetes, Component::Kwok];
        let real = std::iter::once(&self.prometheus_side)
            .chain(self.prometheus_side_of.values())
            .any(|side| side.is_real());
        if real {
            components.push(Component::PrometheusOperator);
        }
        if self.kubectl {
            components.push(Component::Kubectl);
        }
        components
    }
}

/// What a started test bed runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlane {
    /// The API servers' Kubernetes version, e.g. `v1.37.2`.
    pub kubernetes_version: String,
    /// Whether pods run (scheduler, workload controllers, kwok's fake node).
    pub pods: bool,
    /// Who plays prometheus-operator.
    pub prometheus_operator: PrometheusOperatorRun,
    /// Which child CRDs the remotes got.
    pub crds: CrdSource,
}

impl std::fmt::Display for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Kubernetes {}{}; {}; {} child CRDs; grafana-operator simulated",
            self.kubernetes_version,
            if self.pods {
                " with kube-scheduler and kwok (pods run without containers)"
            } else {
                " (no pods)"
            },
            self.prometheus_operator,
            match self.crds {
                CrdSource::Upstream => "upstream",
                CrdSource::Minimal => "minimal",
            }
        )
    }
}

/// The name of the hub cluster.
pub const HUB: &str = "hub";

/// A running test bed. Call [`TestBed::shutdown`]; dropping it also stops everything (blocking).
pub struct TestBed {
    name: String,
    dir: PathBuf,
    etcd: Option<Supervised>,
    clusters: Vec<Cluster>,
    simulator: Option<Simulator>,
    crd_source: CrdSource,
    kubectl: Option<PathBuf>,
    control_plane: ControlPlane,
    /// Kubernetes 1.25 or later (CEL, no controller-manager insecure port).
    current: bool,
    /// Who plays prometheus-operator, per Prometheus cluster.
    prometheus_runs: std::collections::BTreeMap<String, PrometheusOperatorRun>,
}

impl TestBed {
    /// Installs the binaries if needed, starts every server and waits until all are ready.
    pub async fn start(options: TestBedOptions) -> Result<Self> {
        let started = Instant::now();
        state::remove_abandoned();
        let binaries = binaries::locate_or_install(&options.components()).await?;
        let dir = state::claim_dir(&options.name)?;
        let mut testbed = TestBed {
            name: options.name.clone(),
            dir: dir.clone(),
            etcd: None,
            clusters: Vec::new(),
            simulator: None,
            crd_source: CrdSource::Minimal,
            kubectl: binaries.kubectl.clone(),
            control_plane: ControlPlane {
                kubernetes_version: String::new(),
                pods: false,
                prometheus_operator: PrometheusOperatorRun::Simulated,
                crds: CrdSource::Minimal,
            },
            current: false,
            prometheus_runs: std::collections::BTreeMap::new(),
        };
        // From here on, a failure drops `testbed`, which stops what was started.
        testbed.start_servers(&options, &binaries).await?;
        testbed.configure(&options, &binaries).await?;
        state::write(&testbed.dir, &testbed.state())?;
        tracing::info!(name = %testbed.name, secs = started.elapsed().as_secs_f32(), "test bed ready");
        Ok(testbed)
    }

    async fn start_servers(&mut self, options: &TestBedOptions, binaries: &Binaries) -> Result<()> {
        let pki = pki::Pki::generate()?;
        let pki_dir = self.dir.join("pki");
        Self::write_pki(&pki_dir, &pki)?;
        let etcd_url = self.start_etcd(binaries)?;
        let plans = self.cluster_plans(options, &etcd_url, &pki_dir, &pki.ca_cert_pem)?;
        self.start_clusters(plans, binaries).await?;
        self.detect_kubernetes(binaries).await?;
        self.start_cluster_companions(options, binaries).await
    }

    /// Writes the CA, the serving certificate and the service-account keys into `pki_dir`.
    fn write_pki(pki_dir: &Path, pki: &pki::Pki) -> Result<()> {
        std::fs::create_dir_all(pki_dir).map_err(TestBedError::io("create the pki directory"))?;
        for (file, content) in [
            ("ca.crt", &pki.ca_cert_pem),
            ("apiserver.crt", &pki.serving_cert_pem),
            ("apiserver.key", &pki.serving_key_pem),
            ("service-account.key", &pki.service_account_key_pem),
            ("service-account.pub", &pki.service_account_public_pem),
        ] {
            write_private(&pki_dir.join(file), content)?;
        }
        Ok(())
    }

    /// Starts etcd on two free ports; returns its client URL.
    fn start_etcd(&mut self, binaries: &Binaries) -> Result<String> {
        let etcd_port = process::free_port()?;
        let etcd_peer_port = process::free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        self.etcd = Some(Supervised::start(&ServerCommand {
            name: "etcd".into(),
            program: binaries.etcd.clone(),
            args: vec![
                "--data-dir".into(),
                path_arg(&self.dir.join("etcd")),
                "--listen-client-urls".into(),
                etcd_url.clone(),
                "--advertise-client-urls".into(),
                etcd_url.clone(),
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone(),
                "--initial-cluster".into(),
                format!("default={peer_url}"),
                "--unsafe-no-fsync".into(),
            ],
            log: self.dir.join("etcd.log"),
            env: Vec::new(),
        })?);
        Ok(etcd_url)
    }

    /// The plans of the hub and the remotes, in that order; only the remotes (the clusters with
    /// roles) are reached through the member link.
    fn cluster_plans(
        &self,
        options: &TestBedOptions,
        etcd_url: &str,
        pki_dir: &Path,
        ca_pem: &str,
    ) -> Result<Vec<ClusterPlan>> {
        let mut specs = vec![ClusterSpec {
            name: HUB.into(),
            roles: Vec::new(),
        }];
        specs.extend(options.remotes.iter().cloned());
        specs
            .into_iter()
            .map(|spec| {
                let link = if spec.roles.is_empty() {
                    None
                } else {
                    options.member_link
                };
                ClusterPlan::new(spec, link, &self.name, &self.dir, etcd_url, pki_dir, ca_pem)
            })
            .collect()
    }

    /// Starts every planned cluster at once and keeps them, in plan order.
    async fn start_clusters(&mut self, plans: Vec<ClusterPlan>, binaries: &Binaries) -> Result<()> {
        let mut starting = Vec::new();
        for plan in plans {
            starting.push(Cluster::start(plan, binaries));
        }
        for cluster in futures::future::join_all(starting).await {
            self.clusters.push(cluster?);
        }
        Ok(())
    }

    /// Asks the hub its version: records the Kubernetes version, whether it is current and
    /// whether pods run.
    async fn detect_kubernetes(&mut self, binaries: &Binaries) -> Result<()> {
        let hub = self.hub()?;
        let (major, minor) = hub.version().await?;
        self.control_plane.kubernetes_version =
            binaries::apiserver_version(&binaries.kube_apiserver)
                .await
                .unwrap_or_else(|| format!("v{major}.{minor}"));
        // Kubernetes 1.24 removed the controller-manager's insecure port; CEL came with 1.25.
        self.current = (major, minor) >= (1, 25);
        self.control_plane.pods = self.current && binaries.runs_pods();
        Ok(())
    }

    /// Starts kube-controller-manager on every cluster (when asked for and installed), then,
    /// when pods run, kube-scheduler and kwok on the member clusters.
    async fn start_cluster_companions(
        &self,
        options: &TestBedOptions,
        binaries: &Binaries,
    ) -> Result<()> {
        let pods = self.control_plane.pods;
        if options.controller_manager
            && let Some(kcm) = &binaries.kube_controller_manager
        {
            for cluster in &self.clusters {
                // Pods run on the member clusters only; the hub needs no workloads.
                let workloads = pods && !cluster.roles().is_empty();
                cluster.start_controller_manager(kcm, self.current, workloads)?;
            }
        }
        if pods && let (Some(scheduler), Some(kwok)) = (&binaries.kube_scheduler, &binaries.kwok) {
            for cluster in self.clusters.iter().filter(|c| !c.roles().is_empty()) {
                cluster.start_pods(scheduler, kwok).await?;
            }
        }
        Ok(())
    }

    async fn configure(&mut self, options: &TestBedOptions, binaries: &Binaries) -> Result<()> {
        let hub = self.hub()?;
        child_crds::install_typed(hub.client(), HUB, &stacksmith_api::crds::all()).await?;
        let mut simulator = Simulator::new();
        for cluster in self.clusters.iter().filter(|c| !c.roles().is_empty()) {
            let real_prometheus =
                Self::real_prometheus(options, binaries, cluster.name(), self.control_plane.pods);
            Self::install_child_crds(
                cluster,
                options,
                binaries,
                real_prometheus.is_some(),
                self.current,
                &mut self.crd_source,
            )
            .await?;
            registration::prepare_remote(cluster).await?;
            if cluster.roles().contains(&ClusterRole::Prometheus) {
                let run = Self::start_prometheus_side(cluster, real_prometheus.as_ref())?;
                self.prometheus_runs.insert(cluster.name().to_owned(), run);
            }
            if options.simulator {
                Self::simulate_operators(&mut simulator, cluster, real_prometheus.is_some());
            }
        }
        // What the test bed says it runs: the first Prometheus cluster's operator (the others
        // differ only where a test asked for it, see `prometheus_side_of`).
        self.control_plane.prometheus_operator = self
            .clusters
            .iter()
            .find_map(|c| self.prometheus_runs.get(c.name()).copied())
            .unwrap_or(PrometheusOperatorRun::Simulated);
        self.control_plane.crds = self.crd_source;
        if options.register_members {
            for cluster in self.clusters.iter().filter(|c| !c.roles().is_empty()) {
                registration::register(self.hub()?, cluster).await?;
            }
        }
        if options.simulator {
            self.simulator = Some(simulator);
        }
        Ok(())
    }

    /// The real prometheus-operator to run on `cluster` and its feature gate, when its side is
    /// real there, the operator is installed and pods run; `None` when the simulator plays it.
    fn real_prometheus(
        options: &TestBedOptions,
        binaries: &Binaries,
        cluster: &str,
        pods: bool,
    ) -> Option<(PathBuf, bool)> {
        let side = options
            .prometheus_side_of
            .get(cluster)
            .copied()
            .unwrap_or(options.prometheus_side);
        match (side, &binaries.prometheus_operator) {
            (
                PrometheusSide::Real {
                    status_for_configuration_resources,
                },
                Some(program),
            ) if pods => Some((program.clone(), status_for_configuration_resources)),
            _ => None,
        }
    }

    /// Installs the child CRDs of each of the cluster's roles, recording in `crd_source` where
    /// they came from.
    async fn install_child_crds(
        cluster: &Cluster,
        options: &TestBedOptions,
        binaries: &Binaries,
        real_prometheus: bool,
        current: bool,
        crd_source: &mut CrdSource,
    ) -> Result<()> {
        for role in cluster.roles() {
            // The real prometheus-operator watches kinds stacksmith does not write; their
            // CRDs come with its release.
            let also = (*role == ClusterRole::Prometheus && real_prometheus)
                .then_some(binaries.operator_crds.as_deref())
                .flatten();
            let (source, docs) = child_crds::crds_for(
                *role,
                options.upstream_crds.as_deref().or(also),
                also,
                !current,
            )?;
            *crd_source = source;
            child_crds::install(cluster.client(), cluster.name(), &docs).await?;
        }
        Ok(())
    }

    /// Starts the real prometheus-operator on `cluster` when there is one to run; says who plays
    /// it.
    fn start_prometheus_side(
        cluster: &Cluster,
        real_prometheus: Option<&(PathBuf, bool)>,
    ) -> Result<PrometheusOperatorRun> {
        Ok(match real_prometheus {
            Some((program, gate)) => {
                cluster.start_prometheus_operator(program, *gate)?;
                PrometheusOperatorRun::Real {
                    status_for_configuration_resources: *gate,
                }
            }
            None => PrometheusOperatorRun::Simulated,
        })
    }

    /// Lets the simulator play the cluster's operators that do not run for real.
    fn simulate_operators(simulator: &mut Simulator, cluster: &Cluster, real_prometheus: bool) {
        let kinds: Vec<_> = cluster
            .roles()
            .iter()
            .filter(|role| !(**role == ClusterRole::Prometheus && real_prometheus))
            .flat_map(|r| child_crds::kinds_of(*r))
            .copied()
            .collect();
        if !kinds.is_empty() {
            simulator.add_cluster(cluster.name(), cluster.client().clone(), &kinds);
        }
    }

    /// What this test bed runs: the Kubernetes version, whether pods run, who plays
    /// prometheus-operator.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// Who plays prometheus-operator on the Prometheus cluster `cluster`.
    pub fn prometheus_operator_on(&self, cluster: &str) -> Option<PrometheusOperatorRun> {
        self.prometheus_runs.get(cluster).copied()
    }

    /// Makes the `Prometheus` `namespace/name` on `cluster` healthy or not, by the lever that is
    /// real there: with the real prometheus-operator its pods become (not) ready as a kubelet
    /// would report them ([`pods::set_prometheus_pods_ready`]; the operator then reports
    /// `Available=False`, `NoPodReady`); with the simulator, its outcome annotation.
    pub async fn set_prometheus_healthy(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        healthy: bool,
    ) -> Result<()> {
        let client = self.cluster(cluster)?.client();
        match self.prometheus_operator_on(cluster) {
            Some(PrometheusOperatorRun::Real { .. }) => {
                // Every replica's pod, once the StatefulSet has created them all (one at a
                // time): a pod that appears after the patch would be ready.
                pods::wait_prometheus_pods(client, namespace, name).await?;
                pods::set_prometheus_pods_ready(client, namespace, name, healthy).await
            }
            _ => {
                let outcome = if healthy {
                    simulator::Outcome::Healthy
                } else {
                    simulator::Outcome::Degraded
                };
                simulator::set_outcome_annotation(
                    client,
                    stacksmith_core::ChildKind::Prometheus,
                    namespace,
                    name,
                    outcome,
                )
                .await
            }
        }
    }

    /// The test bed's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test bed's directory (kubeconfigs, logs, etcd data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `kubectl` (v1.20 from the install, or the one on `PATH`), to run as users do.
    pub fn kubectl(&self) -> Option<&Path> {
        self.kubectl.as_deref()
    }

    /// Which child CRDs the remotes got.
    pub fn crd_source(&self) -> CrdSource {
        self.crd_source
    }

    /// Every cluster, hub first.
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The hub.
    pub fn hub(&self) -> Result<&Cluster> {
        self.cluster(HUB)
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Result<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| TestBedError::UnknownCluster(name.to_owned()))
    }

    /// Environment variables that point tools at this test bed: `KUBECONFIG` (the hub) and
    /// `STACKSMITH_KUBECONFIG_<CLUSTER>` per cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        self.state().env()
    }

    fn state(&self) -> RunningTestBed {
        RunningTestBed {
            name: self.name.clone(),
            owner_pid: std::process::id(),
            clusters: self
                .clusters
                .iter()
                .map(|c| state::ClusterEntry {
                    name: c.name().to_owned(),
                    server: c.server_url(),
                    kubeconfig: c.kubeconfig_path().to_path_buf(),
                })
                .collect(),
        }
    }

    /// Stops every server and removes the test bed's directory.
    pub async fn shutdown(mut self) -> Result<()> {
        self.simulator = None;
        let mut first_error = None;
        for cluster in &self.clusters {
            if let Err(err) = cluster.stop_all().await {
                first_error.get_or_insert(err);
            }
        }
        if let Some(etcd) = self.etcd.take()
            && let Err(err) = etcd.stop().await
        {
            first_error.get_or_insert(err);
        }
        let removed = std::fs::remove_dir_all(&self.dir)
            .map_err(TestBedError::io(format!("remove {}", self.dir.display())));
        first_error.map_or(removed, Err)
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        // Not shut down properly (an error or a panic): close every lifeline, give the guards a
        // moment to stop their servers, then remove the directory.
        self.simulator = None;
        let pids: Vec<u32> = self
            .clusters
            .iter()
            .flat_map(Cluster::server_pids)
            .chain(self.etcd.as_ref().and_then(Supervised::server_pid))
            .collect();
        self.clusters.clear();
        self.etcd = None;
        let deadline = Instant::now() + Duration::from_secs(15);
        while pids.iter().any(|p| process::process_exists(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Writes a file readable by its owner only (keys, tokens, kubeconfigs).
pub(crate) fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(TestBedError::io(format!("write {}", path.display())))?;
    file.write_all(content.as_bytes())
        .map_err(TestBedError::io(format!("write {}", path.display())))
}

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
pub mod error;
pub mod harness;
pub mod kubeconfig;
mod pki;
pub mod process;
mod registration;
pub mod simulator;
mod state;

pub use binaries::{Binaries, KUBERNETES_VERSION};
pub use child_crds::CrdSource;
pub use cluster::Cluster;
pub use error::{Result, TestBedError};
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
        }
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
}

impl TestBed {
    /// Installs the binaries if needed, starts every server and waits until all are ready.
    pub async fn start(options: TestBedOptions) -> Result<Self> {
        let started = Instant::now();
        state::remove_abandoned();
        let binaries = binaries::locate_or_install().await?;
        let dir = state::claim_dir(&options.name)?;
        let mut testbed = TestBed {
            name: options.name.clone(),
            dir: dir.clone(),
            etcd: None,
            clusters: Vec::new(),
            simulator: None,
            crd_source: CrdSource::Minimal,
            kubectl: binaries.kubectl.clone(),
        };
        // From here on, a failure drops `testbed`, which stops what was started.
        testbed.start_servers(&options, &binaries).await?;
        testbed.configure(&options).await?;
        state::write(&testbed.dir, &testbed.state())?;
        tracing::info!(name = %testbed.name, secs = started.elapsed().as_secs_f32(), "test bed ready");
        Ok(testbed)
    }

    async fn start_servers(&mut self, options: &TestBedOptions, binaries: &Binaries) -> Result<()> {
        let pki = pki::Pki::generate()?;
        let pki_dir = self.dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(TestBedError::io("create the pki directory"))?;
        for (file, content) in [
            ("ca.crt", &pki.ca_cert_pem),
            ("apiserver.crt", &pki.serving_cert_pem),
            ("apiserver.key", &pki.serving_key_pem),
            ("service-account.key", &pki.service_account_key_pem),
            ("service-account.pub", &pki.service_account_public_pem),
        ] {
            write_private(&pki_dir.join(file), content)?;
        }

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
        })?);

        let mut specs = vec![ClusterSpec {
            name: HUB.into(),
            roles: Vec::new(),
        }];
        specs.extend(options.remotes.iter().cloned());
        let plans = specs
            .into_iter()
            .map(|spec| {
                ClusterPlan::new(
                    spec,
                    &self.name,
                    &self.dir,
                    &etcd_url,
                    &pki_dir,
                    &pki.ca_cert_pem,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut starting = Vec::new();
        for plan in plans {
            starting.push(Cluster::start(plan, binaries));
        }
        for cluster in futures::future::join_all(starting).await {
            self.clusters.push(cluster?);
        }
        if options.controller_manager
            && let Some(kcm) = &binaries.kube_controller_manager
        {
            for cluster in &self.clusters {
                cluster.start_controller_manager(kcm).await?;
            }
        }
        Ok(())
    }

    async fn configure(&mut self, options: &TestBedOptions) -> Result<()> {
        let hub = self.hub()?;
        child_crds::install_typed(hub.client(), HUB, &stacksmith_api::crds::all()).await?;
        let mut simulator = Simulator::new();
        for cluster in self.clusters.iter().filter(|c| !c.roles().is_empty()) {
            for role in cluster.roles() {
                let (source, docs) = child_crds::crds_for(*role, options.upstream_crds.as_deref())?;
                self.crd_source = source;
                child_crds::install(cluster.client(), cluster.name(), &docs).await?;
            }
            registration::prepare_remote(cluster).await?;
            if options.simulator {
                let kinds: Vec<_> = cluster
                    .roles()
                    .iter()
                    .flat_map(|r| child_crds::kinds_of(*r))
                    .copied()
                    .collect();
                simulator.add_cluster(cluster.name(), cluster.client().clone(), &kinds);
            }
        }
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

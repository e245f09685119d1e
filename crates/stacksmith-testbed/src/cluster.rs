//! One cluster of the test bed: its kube-apiserver, optional kube-controller-manager, identities
//! and kubeconfigs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use rand::distr::{Alphanumeric, SampleString as _};
use stacksmith_api::ClusterRole;

use crate::error::{Result, TestBedError};
use crate::process::{self, ServerCommand, Supervised};
use crate::registration::OPERATOR_USER;
use crate::{Binaries, ClusterSpec, kubeconfig, path_arg, write_private};

/// How long an API server may take to become ready (three start at once on two cores).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Everything decided about a cluster before its server starts.
pub(crate) struct ClusterPlan {
    spec: ClusterSpec,
    port: u16,
    dir: PathBuf,
    admin_kubeconfig: String,
    operator_kubeconfig: String,
    apiserver_args: Vec<String>,
}

impl ClusterPlan {
    pub(crate) fn new(
        spec: ClusterSpec,
        testbed: &str,
        testbed_dir: &Path,
        etcd_url: &str,
        pki_dir: &Path,
        ca_pem: &str,
    ) -> Result<Self> {
        let dir = testbed_dir.join(&spec.name);
        std::fs::create_dir_all(&dir)
            .map_err(TestBedError::io(format!("create {}", dir.display())))?;
        let port = process::free_port()?;
        let server = format!("https://127.0.0.1:{port}");
        let admin_token = random_token();
        let operator_token = random_token();
        let tokens = dir.join("tokens.csv");
        write_private(
            &tokens,
            &format!(
                "{admin_token},admin,admin,\"system:masters\"\n{operator_token},{OPERATOR_USER},{OPERATOR_USER}\n"
            ),
        )?;
        let name = &spec.name;
        let pki = |f: &str| path_arg(&pki_dir.join(f));
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--etcd-prefix=/{testbed}/{name}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
            format!("--token-auth-file={}", path_arg(&tokens)),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-key-file={}", pki("service-account.pub")),
            format!(
                "--service-account-signing-key-file={}",
                pki("service-account.key")
            ),
            format!("--service-account-issuer=https://{name}.{testbed}.local"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", path_arg(&dir)),
        ];
        Ok(ClusterPlan {
            admin_kubeconfig: kubeconfig::render(name, &server, ca_pem, "admin", &admin_token),
            operator_kubeconfig: kubeconfig::render(
                name,
                &server,
                ca_pem,
                OPERATOR_USER,
                &operator_token,
            ),
            spec,
            port,
            dir,
            apiserver_args,
        })
    }
}

fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

/// A running cluster of the test bed.
pub struct Cluster {
    name: String,
    roles: Vec<ClusterRole>,
    port: u16,
    dir: PathBuf,
    kubeconfig_path: PathBuf,
    admin_kubeconfig: String,
    operator_kubeconfig: String,
    client: Client,
    apiserver_command: ServerCommand,
    apiserver: Mutex<Option<Supervised>>,
    controller_manager: Mutex<Option<Supervised>>,
    restarts: std::sync::atomic::AtomicU32,
}

impl Cluster {
    pub(crate) async fn start(plan: ClusterPlan, binaries: &Binaries) -> Result<Self> {
        let kubeconfig_path = plan.dir.join("kubeconfig");
        write_private(&kubeconfig_path, &plan.admin_kubeconfig)?;
        let apiserver_command = ServerCommand {
            name: format!("kube-apiserver of {}", plan.spec.name),
            program: binaries.kube_apiserver.clone(),
            args: plan.apiserver_args,
            log: plan.dir.join("kube-apiserver.log"),
        };
        let apiserver = Supervised::start(&apiserver_command)?;
        let client = kubeconfig::client_from_yaml(&plan.spec.name, &plan.admin_kubeconfig).await?;
        let cluster = Cluster {
            name: plan.spec.name,
            roles: plan.spec.roles,
            port: plan.port,
            dir: plan.dir,
            kubeconfig_path,
            admin_kubeconfig: plan.admin_kubeconfig,
            operator_kubeconfig: plan.operator_kubeconfig,
            client,
            apiserver_command,
            apiserver: Mutex::new(Some(apiserver)),
            controller_manager: Mutex::new(None),
            restarts: std::sync::atomic::AtomicU32::new(0),
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The roles it serves (empty for the hub).
    pub fn roles(&self) -> &[ClusterRole] {
        &self.roles
    }

    /// An admin client (`system:masters`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API server's URL.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A client configuration for the admin identity (to build clients of one's own).
    pub async fn admin_config(&self) -> Result<kube::Config> {
        kubeconfig::config_from_yaml(&self.name, &self.admin_kubeconfig).await
    }

    /// The admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> &str {
        &self.admin_kubeconfig
    }

    /// The kubeconfig of stacksmith's own identity on this cluster (user
    /// [`OPERATOR_USER`], limited by RBAC to what stacksmith needs).
    pub fn operator_kubeconfig(&self) -> &str {
        &self.operator_kubeconfig
    }

    /// Whether the API server process is running.
    pub fn apiserver_running(&self) -> bool {
        self.apiserver
            .lock()
            .map(|mut s| s.as_mut().is_some_and(Supervised::is_running))
            .unwrap_or(false)
    }

    /// Stops the API server (the cluster becomes unreachable; its data stays in etcd).
    pub async fn stop_apiserver(&self) -> Result<()> {
        let server = self.apiserver.lock().ok().and_then(|mut s| s.take());
        match server {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }

    /// Starts the API server again on the same port and waits until it is ready.
    pub async fn start_apiserver(&self) -> Result<()> {
        {
            let mut slot = self
                .apiserver
                .lock()
                .map_err(|_| TestBedError::Binaries("apiserver state poisoned".into()))?;
            if slot.is_some() {
                return Ok(());
            }
            let restarts = self
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            let command = self.apiserver_command.clone_with_log(
                self.dir
                    .join(format!("kube-apiserver.restart-{restarts}.log")),
            );
            *slot = Some(Supervised::start(&command)?);
        }
        self.wait_ready().await
    }

    pub(crate) async fn start_controller_manager(&self, program: &Path) -> Result<()> {
        let server = Supervised::start(&ServerCommand {
            name: format!("kube-controller-manager of {}", self.name),
            program: program.to_path_buf(),
            args: vec![
                format!("--kubeconfig={}", path_arg(&self.kubeconfig_path)),
                "--controllers=namespace,garbagecollector".into(),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                "--port=0".into(),
            ],
            log: self.dir.join("kube-controller-manager.log"),
        })?;
        if let Ok(mut slot) = self.controller_manager.lock() {
            *slot = Some(server);
        }
        Ok(())
    }

    pub(crate) async fn stop_all(&self) -> Result<()> {
        let kcm = self
            .controller_manager
            .lock()
            .ok()
            .and_then(|mut s| s.take());
        let kcm_result = match kcm {
            Some(kcm) => kcm.stop().await,
            None => Ok(()),
        };
        self.stop_apiserver().await.and(kcm_result)
    }

    pub(crate) fn server_pids(&self) -> Vec<u32> {
        [&self.apiserver, &self.controller_manager]
            .into_iter()
            .filter_map(|slot| {
                slot.lock()
                    .ok()
                    .and_then(|s| s.as_ref().and_then(Supervised::server_pid))
            })
            .collect()
    }

    /// Waits until `/readyz` answers `ok`.
    pub async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok();
            let request = http::Request::get("/readyz").body(Vec::new());
            if let (true, Ok(request)) = (listening, request)
                && let Ok(Ok(body)) =
                    tokio::time::timeout(Duration::from_secs(5), self.client.request_text(request))
                        .await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            let exited = !self.apiserver_running();
            if exited || started.elapsed() > READY_TIMEOUT {
                let log = self
                    .apiserver
                    .lock()
                    .ok()
                    .and_then(|s| s.as_ref().map(|s| s.log().to_path_buf()))
                    .unwrap_or_else(|| self.dir.join("kube-apiserver.log"));
                return Err(TestBedError::NotReady {
                    server: format!(
                        "kube-apiserver of {}{}",
                        self.name,
                        if exited { " (exited)" } else { "" }
                    ),
                    waited_secs: started.elapsed().as_secs(),
                    log_tail: process::log_tail(&log, 15),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

//! One cluster of the test bed: its kube-apiserver, optional kube-controller-manager, identities
//! and kubeconfigs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use rand::distr::{Alphanumeric, SampleString as _};
use stacksmith_api::ClusterRole;

use crate::error::{Result, TestBedError};
use crate::link::{LinkConditions, LinkProxy};
use crate::process::{self, ServerCommand, Supervised};
use crate::registration::OPERATOR_USER;
use crate::{
    Binaries, ClusterSpec, kubeconfig, path_arg, pods, prometheus_operator, write_private,
};

/// How long an API server may take to become ready (three start at once on two cores).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Everything decided about a cluster before its server starts.
pub(crate) struct ClusterPlan {
    spec: ClusterSpec,
    port: u16,
    dir: PathBuf,
    admin_kubeconfig: String,
    operator_token: String,
    ca_pem: String,
    apiserver_args: Vec<String>,
    link: Option<LinkConditions>,
}

impl ClusterPlan {
    pub(crate) fn new(
        spec: ClusterSpec,
        link: Option<LinkConditions>,
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
            operator_token,
            ca_pem: ca_pem.to_owned(),
            link,
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
    link: Option<LinkProxy>,
    client: Client,
    apiserver_command: ServerCommand,
    apiserver: Mutex<Option<Supervised>>,
    /// What runs beside the API server: controller-manager, scheduler, kwok, operators.
    companions: Mutex<Vec<Supervised>>,
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
            env: Vec::new(),
        };
        let apiserver = Supervised::start(&apiserver_command)?;
        let client = kubeconfig::client_from_yaml(&plan.spec.name, &plan.admin_kubeconfig).await?;
        // stacksmith reaches a member through its link (a delay, and a cut on demand), as it
        // would reach a cluster in another network; the admin client is the cluster's own view.
        let link = match plan.link {
            Some(conditions) => Some(
                LinkProxy::start(SocketAddr::from(([127, 0, 0, 1], plan.port)), conditions).await?,
            ),
            None => None,
        };
        let operator_server = match &link {
            Some(link) => format!("https://{}", link.addr()),
            None => format!("https://127.0.0.1:{}", plan.port),
        };
        let operator_kubeconfig = kubeconfig::render(
            &plan.spec.name,
            &operator_server,
            &plan.ca_pem,
            OPERATOR_USER,
            &plan.operator_token,
        );
        let cluster = Cluster {
            name: plan.spec.name,
            roles: plan.spec.roles,
            port: plan.port,
            dir: plan.dir,
            kubeconfig_path,
            admin_kubeconfig: plan.admin_kubeconfig,
            operator_kubeconfig,
            link,
            client,
            apiserver_command,
            apiserver: Mutex::new(Some(apiserver)),
            companions: Mutex::new(Vec::new()),
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

    /// The link stacksmith reaches this member through (none for the hub, or when the test bed
    /// was asked for none): set its delay, cut it, restore it.
    pub fn link(&self) -> Option<&LinkProxy> {
        self.link.as_ref()
    }

    /// The kubeconfig of stacksmith's own identity on this cluster (user
    /// [`OPERATOR_USER`], limited by RBAC to what stacksmith needs), through the cluster's
    /// [`link`](Self::link) when it has one.
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

    /// Starts kube-controller-manager: namespace deletion and garbage collection, and with
    /// `workloads` the controllers that turn StatefulSets and Deployments into pods, the one
    /// that binds volume claims to the volumes a test creates (there is no provisioner), and the
    /// one that computes a ResourceQuota's usage (until it has, the API server refuses every pod
    /// of a namespace whose quota tracks pods or compute resources).
    pub(crate) fn start_controller_manager(
        &self,
        program: &Path,
        current: bool,
        workloads: bool,
    ) -> Result<()> {
        let controllers = match (current, workloads) {
            (false, _) => "namespace,garbagecollector",
            (true, false) => "namespace-controller,garbage-collector-controller",
            (true, true) => {
                "namespace-controller,garbage-collector-controller,serviceaccount-controller,\
                 statefulset-controller,deployment-controller,replicaset-controller,\
                 persistentvolume-binder-controller,resourcequota-controller"
            }
        };
        let mut args = vec![
            format!("--kubeconfig={}", path_arg(&self.kubeconfig_path)),
            format!("--controllers={controllers}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
        ];
        if !current {
            // v1.20 still has the insecure port; later releases removed the flag.
            args.push("--port=0".into());
        }
        self.start_companion(&ServerCommand {
            name: format!("kube-controller-manager of {}", self.name),
            program: program.to_path_buf(),
            args,
            log: self.dir.join("kube-controller-manager.log"),
            env: Vec::new(),
        })
    }

    /// Makes pods run: kube-scheduler, a fake node and kwok playing its kubelet.
    pub(crate) async fn start_pods(&self, scheduler: &Path, kwok: &Path) -> Result<()> {
        pods::create_fake_node(&self.client, &self.name).await?;
        self.start_companion(&pods::scheduler_command(
            scheduler,
            &self.name,
            &self.kubeconfig_path,
            &self.dir,
        ))?;
        self.start_companion(&pods::kwok_command(
            kwok,
            &self.name,
            &self.kubeconfig_path,
            &self.dir,
        )?)
    }

    /// Starts the real prometheus-operator against this cluster.
    pub(crate) fn start_prometheus_operator(
        &self,
        program: &Path,
        status_for_configuration_resources: bool,
    ) -> Result<()> {
        self.start_companion(&prometheus_operator::command(
            program,
            &self.name,
            &self.kubeconfig_path,
            &self.dir,
            status_for_configuration_resources,
        )?)
    }

    fn start_companion(&self, command: &ServerCommand) -> Result<()> {
        let server = Supervised::start(command)?;
        if let Ok(mut companions) = self.companions.lock() {
            companions.push(server);
        }
        Ok(())
    }

    pub(crate) async fn stop_all(&self) -> Result<()> {
        let companions = self
            .companions
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let mut first_error = None;
        // The API server last: its clients stop cleanly while it still answers.
        for companion in companions.into_iter().rev() {
            if let Err(err) = companion.stop().await {
                first_error.get_or_insert(err);
            }
        }
        let stopped = self.stop_apiserver().await;
        first_error.map_or(stopped, Err)
    }

    pub(crate) fn server_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .apiserver
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(Supervised::server_pid))
            .into_iter()
            .collect();
        if let Ok(companions) = self.companions.lock() {
            pids.extend(companions.iter().filter_map(Supervised::server_pid));
        }
        pids
    }

    /// The API server's Kubernetes version (`major`, `minor`).
    pub async fn version(&self) -> Result<(u32, u32)> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(TestBedError::kube(format!(
                "read the version of {}",
                self.name
            )))?;
        let number = |s: &str| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .unwrap_or(0)
        };
        Ok((number(&info.major), number(&info.minor)))
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

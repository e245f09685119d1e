//! Real Prometheus and Alertmanager servers, for tests of the data path (Grafana → a tenant's
//! Prometheus, Prometheus → Alertmanager), and their configuration checkers `promtool` and
//! `amtool`.
//!
//! The binaries come from Debian's packages `prometheus` and `prometheus-alertmanager`, installed
//! on first use by the embedded script `scripts/install-data-servers.sh` (which keeps the
//! packages' own services from running), or from the directory `STACKSMITH_DATA_SERVER_BINARIES`
//! (`prometheus`, `promtool`, `alertmanager` or `prometheus-alertmanager`, `amtool`).
//!
//! Each server listens on 127.0.0.1 on a free port, keeps its configuration, data and log in the
//! directory it is given, and runs under the test bed's guard (see [`crate::process`]): it stops
//! with [`PrometheusServer::stop`] / [`AlertmanagerServer::stop`], when dropped, or when its owner
//! dies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

use crate::error::TestBedError;
use crate::process::{self, ServerCommand, Supervised};

/// The install script, embedded so that the binary alone can set a machine up.
const INSTALL_SCRIPT: &str = include_str!("../scripts/install-data-servers.sh");
/// A directory holding the binaries, which then are not installed.
pub const BINARIES_ENV: &str = "STACKSMITH_DATA_SERVER_BINARIES";
/// What Prometheus logs when `/-/ready` starts answering 200.
const PROMETHEUS_READY_LOG: &str = "Server is ready to receive web requests.";
/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a checker may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the install script (which then goes on alone).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// What can go wrong with the data servers and their checkers.
#[derive(Debug, thiserror::Error)]
pub enum DataServerError {
    /// Installing, starting, probing or stopping failed.
    #[error(transparent)]
    TestBed(#[from] TestBedError),
    /// A checker rejected a file.
    #[error("{tool} rejected {}:\n{output}", file.display())]
    Rejected {
        /// The check that ran (`promtool check rules`).
        tool: &'static str,
        /// The file it checked.
        file: PathBuf,
        /// What it printed (stdout, then stderr).
        output: String,
    },
}

/// The result type of this module.
pub type Result<T, E = DataServerError> = std::result::Result<T, E>;

/// Paths of the data servers and their checkers.
#[derive(Clone, Debug)]
pub struct DataServerBinaries {
    /// `prometheus`.
    pub prometheus: PathBuf,
    /// `promtool`.
    pub promtool: PathBuf,
    /// Alertmanager (Debian calls it `prometheus-alertmanager`).
    pub alertmanager: PathBuf,
    /// `amtool`.
    pub amtool: PathBuf,
}

static BINARIES: OnceCell<DataServerBinaries> = OnceCell::const_new();

/// Finds the binaries; installs the Debian packages on first use (once per process; a failure is
/// retried on the next call).
pub async fn binaries() -> Result<&'static DataServerBinaries> {
    BINARIES.get_or_try_init(locate_or_install).await
}

async fn locate_or_install() -> Result<DataServerBinaries> {
    if let Some(dir) = std::env::var_os(BINARIES_ENV) {
        return in_dir(Path::new(&dir)).ok_or_else(|| {
            TestBedError::Binaries(format!(
                "{BINARIES_ENV}={} does not hold prometheus, promtool, alertmanager and amtool",
                Path::new(&dir).display()
            ))
            .into()
        });
    }
    let stdout = run_install_script().await?;
    from_script_output(&stdout).ok_or_else(|| {
        TestBedError::Binaries(format!(
            "install-data-servers.sh named no usable binaries; it printed:\n{stdout}"
        ))
        .into()
    })
}

fn in_dir(dir: &Path) -> Option<DataServerBinaries> {
    let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    Some(DataServerBinaries {
        prometheus: file("prometheus")?,
        promtool: file("promtool")?,
        alertmanager: file("alertmanager").or_else(|| file("prometheus-alertmanager"))?,
        amtool: file("amtool")?,
    })
}

/// Parses the script's `name=path` lines.
fn from_script_output(stdout: &str) -> Option<DataServerBinaries> {
    let path = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    Some(DataServerBinaries {
        prometheus: path("prometheus")?,
        promtool: path("promtool")?,
        alertmanager: path("alertmanager")?,
        amtool: path("amtool")?,
    })
}

/// Runs the embedded install script (its progress goes to stderr) and returns its stdout.
async fn run_install_script() -> Result<String> {
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(INSTALL_SCRIPT)
        .arg("install-data-servers.sh")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        // Never killed halfway: an interrupted dpkg run, or the script's temporary
        // policy-rc.d left in place, would outlast this process.
        .kill_on_drop(false)
        .output();
    let output = tokio::time::timeout(INSTALL_TIMEOUT, run)
        .await
        .map_err(|_| TestBedError::Timeout {
            what: "install-data-servers.sh".into(),
            secs: INSTALL_TIMEOUT.as_secs(),
        })?
        .map_err(TestBedError::io("run install-data-servers.sh with bash"))?;
    if !output.status.success() {
        return Err(TestBedError::Binaries(format!(
            "install-data-servers.sh failed ({})",
            output.status
        ))
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// How to start Prometheus.
#[derive(Clone, Debug, Default)]
pub struct PrometheusOptions {
    /// The port to listen on (default: a free one); fixing it lets the configuration refer to
    /// the server itself, e.g. to scrape it.
    pub port: Option<u16>,
    /// `--web.config.file`: TLS and client-certificate authentication, in the format
    /// prometheus-operator renders from `spec.web.tlsConfig` (`tls_server_config` with
    /// `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`). With one, [`url`] is
    /// `https://` when it has `tls_server_config`, and readiness is taken from Prometheus' log
    /// (the probe has no client certificate).
    ///
    /// [`url`]: PrometheusServer::url
    pub web_config_file: Option<PathBuf>,
    /// More command-line arguments (`--web.enable-remote-write-receiver`, ...). For alerts that
    /// must reach Alertmanager quickly, `--rules.alert.resend-delay=1s`: an alert that fires
    /// before the notifier has found its Alertmanagers is dropped and by default resent only a
    /// minute later.
    pub extra_args: Vec<String>,
}

/// A running Prometheus.
///
/// In its directory: `prometheus.yml` (relative paths in it, such as `rule_files`, resolve
/// against the directory), `prometheus-data/` and `prometheus.log`. Started with
/// `--web.enable-lifecycle`, so `POST /-/reload` rereads the configuration.
pub struct PrometheusServer {
    server: Supervised,
    url: String,
    config_file: PathBuf,
}

impl PrometheusServer {
    /// Installs Prometheus if needed, writes `config_yaml` to `dir/prometheus.yml`, starts the
    /// server and waits until it is ready.
    pub async fn start(dir: &Path, config_yaml: &str, options: PrometheusOptions) -> Result<Self> {
        let binaries = binaries().await?;
        let config_file = dir.join("prometheus.yml");
        write_config(dir, &config_file, config_yaml).await?;
        let port = match options.port {
            Some(port) => port,
            None => process::free_port()?,
        };
        let tls = match &options.web_config_file {
            Some(file) => serves_tls(file).await?,
            None => false,
        };
        let mut args = vec![
            format!("--config.file={}", config_file.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle".to_owned(),
        ];
        if let Some(file) = &options.web_config_file {
            args.push(format!("--web.config.file={}", file.display()));
        }
        args.extend(options.extra_args.iter().cloned());
        let mut server = Supervised::start(&ServerCommand {
            name: "prometheus".into(),
            program: binaries.prometheus.clone(),
            args,
            log: dir.join("prometheus.log"),
            env: Vec::new(),
        })?;
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let ready = if options.web_config_file.is_some() {
            Readiness::LogLine(PROMETHEUS_READY_LOG)
        } else {
            Readiness::Http
        };
        wait_ready(&mut server, "prometheus", &url, port, ready).await?;
        Ok(PrometheusServer {
            server,
            url,
            config_file,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://...` with a web configuration that has TLS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its configuration file.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// An HTTP client for it (`tls` for an `https://` server).
    pub async fn client(&self, tls: Option<&ClientTls>) -> Result<kube::Client> {
        http_client(&self.url, tls).await
    }

    /// Stops it and waits until it has exited (its directory stays).
    pub async fn stop(self) -> Result<()> {
        Ok(self.server.stop().await?)
    }
}

/// A running Alertmanager, without clustering.
///
/// In its directory: `alertmanager.yml`, `alertmanager-data/` and `alertmanager.log`.
pub struct AlertmanagerServer {
    server: Supervised,
    url: String,
    config_file: PathBuf,
}

impl AlertmanagerServer {
    /// Installs Alertmanager if needed, writes `config_yaml` to `dir/alertmanager.yml`, starts the
    /// server and waits until it is ready.
    pub async fn start(dir: &Path, config_yaml: &str) -> Result<Self> {
        let binaries = binaries().await?;
        let config_file = dir.join("alertmanager.yml");
        write_config(dir, &config_file, config_yaml).await?;
        let port = process::free_port()?;
        let mut server = Supervised::start(&ServerCommand {
            name: "alertmanager".into(),
            program: binaries.alertmanager.clone(),
            args: vec![
                format!("--config.file={}", config_file.display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // No gossip: it would listen on 0.0.0.0:9094.
                "--cluster.listen-address=".to_owned(),
            ],
            log: dir.join("alertmanager.log"),
            env: Vec::new(),
        })?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&mut server, "alertmanager", &url, port, Readiness::Http).await?;
        Ok(AlertmanagerServer {
            server,
            url,
            config_file,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its configuration file.
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.server.log()
    }

    /// An HTTP client for it.
    pub async fn client(&self) -> Result<kube::Client> {
        http_client(&self.url, None).await
    }

    /// Stops it and waits until it has exited (its directory stays).
    pub async fn stop(self) -> Result<()> {
        Ok(self.server.stop().await?)
    }
}

/// TLS material for a client of an `https://` server.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// The CA that signed the server's certificate (PEM).
    pub ca_cert_pem: String,
    /// The client certificate (PEM), for servers that require one.
    pub client_cert_pem: Option<String>,
    /// Its private key (PEM).
    pub client_key_pem: Option<String>,
    /// The name the server's certificate must be for, when it is not the URL's host (a
    /// tenant Prometheus' certificate names its Service, the test reaches it at 127.0.0.1).
    pub server_name: Option<String>,
}

/// An HTTP client for `base_url` (kube's client stack, used for plain HTTP here: requests take
/// paths such as `/api/v1/query?query=up`; `request_text` turns a status >= 400 into an error).
/// Transient failures are not retried.
pub async fn http_client(base_url: &str, tls: Option<&ClientTls>) -> Result<kube::Client> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let mut cluster = serde_json::json!({ "server": base_url });
    let mut user = serde_json::json!({});
    if let Some(tls) = tls {
        cluster["certificate-authority-data"] = b64(&tls.ca_cert_pem).into();
        if let Some(name) = &tls.server_name {
            cluster["tls-server-name"] = name.clone().into();
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert_pem, &tls.client_key_pem) {
            user["client-certificate-data"] = b64(cert).into();
            user["client-key-data"] = b64(key).into();
        }
    }
    let kubeconfig: Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "server", "cluster": cluster }],
        "users": [{ "name": "client", "user": user }],
        "contexts": [{ "name": "server", "context": { "cluster": "server", "user": "client" } }],
        "current-context": "server",
    }))
    .map_err(|err| TestBedError::format(format!("a client configuration for {base_url}"), err))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|source| TestBedError::Kubeconfig {
                cluster: base_url.to_owned(),
                source,
            })?;
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(30));
    Ok(kube::Client::try_from(config)
        .map_err(TestBedError::kube(format!("build a client for {base_url}")))?)
}

/// `promtool check rules FILE`.
pub async fn promtool_check_rules(file: &Path) -> Result<()> {
    let promtool = &binaries().await?.promtool;
    check("promtool check rules", promtool, &["check", "rules"], file).await
}

/// `promtool check config FILE` (which also checks the rule files it names).
pub async fn promtool_check_config(file: &Path) -> Result<()> {
    let promtool = &binaries().await?.promtool;
    check(
        "promtool check config",
        promtool,
        &["check", "config"],
        file,
    )
    .await
}

/// `amtool check-config FILE`.
pub async fn amtool_check_config(file: &Path) -> Result<()> {
    let amtool = &binaries().await?.amtool;
    check("amtool check-config", amtool, &["check-config"], file).await
}

async fn check(tool: &'static str, program: &Path, args: &[&str], file: &Path) -> Result<()> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TOOL_TIMEOUT, run)
        .await
        .map_err(|_| TestBedError::Timeout {
            what: format!("{tool} {}", file.display()),
            secs: TOOL_TIMEOUT.as_secs(),
        })?
        .map_err(TestBedError::io(format!("run {}", program.display())))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stderr.trim_end());
    }
    Err(DataServerError::Rejected {
        tool,
        file: file.to_path_buf(),
        output: text,
    })
}

async fn write_config(dir: &Path, file: &Path, content: &str) -> Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(TestBedError::io(format!("create {}", dir.display())))?;
    tokio::fs::write(file, content)
        .await
        .map_err(TestBedError::io(format!("write {}", file.display())))?;
    Ok(())
}

/// Whether a web configuration makes the server speak TLS.
async fn serves_tls(web_config: &Path) -> Result<bool> {
    let text = tokio::fs::read_to_string(web_config)
        .await
        .map_err(TestBedError::io(format!("read {}", web_config.display())))?;
    let parsed: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|err| TestBedError::format(format!("{}", web_config.display()), err))?;
    Ok(parsed
        .get("tls_server_config")
        .is_some_and(|v| !v.is_null()))
}

/// How to tell that a server is ready.
#[derive(Clone, Copy)]
enum Readiness {
    /// `GET /-/ready` answers 200.
    Http,
    /// The port accepts connections and the log has this line.
    LogLine(&'static str),
}

async fn wait_ready(
    server: &mut Supervised,
    name: &str,
    url: &str,
    port: u16,
    readiness: Readiness,
) -> Result<()> {
    let started = Instant::now();
    let client = match readiness {
        Readiness::Http => Some(http_client(url, None).await?),
        Readiness::LogLine(_) => None,
    };
    loop {
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        let ready = listening
            && match (readiness, &client) {
                (Readiness::Http, Some(client)) => probe(client).await,
                (Readiness::LogLine(line), _) => tokio::fs::read_to_string(server.log())
                    .await
                    .is_ok_and(|log| log.contains(line)),
                (Readiness::Http, None) => false,
            };
        if ready {
            return Ok(());
        }
        let exited = !server.is_running();
        if exited || started.elapsed() > READY_TIMEOUT {
            return Err(TestBedError::NotReady {
                server: format!("{name}{}", if exited { " (exited)" } else { "" }),
                waited_secs: started.elapsed().as_secs(),
                log: server.log().to_path_buf(),
                log_tail: server.log_tail(15),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn probe(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/-/ready").body(Vec::new()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.request_text(request)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_output_names_the_binaries() {
        let dir = std::env::temp_dir().join(format!("stacksmith-ds-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["p", "pt", "am", "at"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let d = dir.display();
        let stdout =
            format!("prometheus={d}/p\npromtool={d}/pt\nalertmanager={d}/am\namtool={d}/at\n");
        let found = from_script_output(&stdout).unwrap();
        assert_eq!(found.prometheus, dir.join("p"));
        assert_eq!(found.promtool, dir.join("pt"));
        assert_eq!(found.alertmanager, dir.join("am"));
        assert_eq!(found.amtool, dir.join("at"));
        // A missing file or line is no result.
        assert!(
            from_script_output(&stdout.replace(&format!("{d}/am"), &format!("{d}/none"))).is_none()
        );
        assert!(from_script_output("prometheus=/x\n").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

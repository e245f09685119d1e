//! Finding, or installing and caching, the binaries a test bed runs.
//!
//! Search order:
//! 1. `STACKSMITH_TESTBED_BINARIES`: a directory holding `kube-apiserver`, `etcd` and optionally
//!    `kube-controller-manager`, `kube-scheduler`, `kwok`, `prometheus-operator`, `kubectl`.
//! 2. `KUBEBUILDER_ASSETS`: the conventional envtest assets directory (same file names).
//! 3. The current control plane, cached in `$XDG_CACHE_HOME/stacksmith/k8s-v1.37.2` (or
//!    `~/.cache/...`), filled on first use by the embedded `install-current.sh`: Kubernetes,
//!    etcd, kwok and prometheus-operator built from their published Go modules.
//! 4. Where Go or the Go module proxy cannot be had, the fallback: kube-apiserver,
//!    kube-controller-manager and kubectl v1.20.2 built from Debian's source package, and
//!    Debian's etcd (`install-binaries.sh`, cached in `.../k8s-v1.20.2`). No scheduler, no kwok and
//!    no real prometheus-operator there: the simulator plays every child operator.

use std::path::{Path, PathBuf};

use crate::error::{Result, TestBedError};

/// The install script of the current control plane and the real child operators.
const INSTALL_CURRENT_SCRIPT: &str = include_str!("../scripts/install-current.sh");
/// The install script of the Debian v1.20 fallback.
const INSTALL_FALLBACK_SCRIPT: &str = include_str!("../scripts/install-binaries.sh");
/// The Kubernetes release the current cache holds (kept equal to `install-current.sh`).
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// The prometheus-operator release built (kept equal to `install-current.sh`; the upstream CRDs
/// the tests install are of the same release).
pub const PROMETHEUS_OPERATOR_VERSION: &str = "v0.93.0";
/// The Kubernetes release of the Debian fallback.
pub const FALLBACK_KUBERNETES_VERSION: &str = "v1.20.2";
/// The exit code of `install-current.sh` when Go or its module proxy cannot be had.
const NO_GO: i32 = 3;

/// What a test bed needs installed, beyond kube-apiserver and etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// kube-apiserver, kube-controller-manager, kube-scheduler.
    Kubernetes,
    /// kubectl, for tests that run it as users do.
    Kubectl,
    /// etcd.
    Etcd,
    /// kwok: fake nodes whose pods become Running and Ready.
    Kwok,
    /// The real prometheus-operator.
    PrometheusOperator,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Kubectl => "kubectl",
            Component::Etcd => "etcd",
            Component::Kwok => "kwok",
            Component::PrometheusOperator => "prometheus-operator",
        }
    }
}

/// Paths of the binaries a test bed runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-controller-manager`, for namespace deletion, garbage collection and (with a
    /// scheduler and kwok) the workload controllers; optional.
    pub kube_controller_manager: Option<PathBuf>,
    /// `kube-scheduler`, to bind pods to kwok's nodes; optional.
    pub kube_scheduler: Option<PathBuf>,
    /// `kwok`, fake nodes and pod status; optional.
    pub kwok: Option<PathBuf>,
    /// The real `prometheus-operator`; optional.
    pub prometheus_operator: Option<PathBuf>,
    /// `kubectl`, for tests that run it as users do; optional (else looked up on `PATH`).
    pub kubectl: Option<PathBuf>,
    /// Every CRD of the prometheus-operator release (`crds/`), when it is installed.
    pub operator_crds: Option<PathBuf>,
}

impl Binaries {
    fn in_dir(dir: &Path) -> Option<Self> {
        let kube_apiserver = dir.join("kube-apiserver");
        let etcd = dir.join("etcd");
        if !(kube_apiserver.is_file() && etcd.exists()) {
            return None;
        }
        let optional = |name: &str| {
            let path = dir.join(name);
            path.is_file().then_some(path)
        };
        Some(Binaries {
            kube_apiserver,
            etcd,
            kube_controller_manager: optional("kube-controller-manager"),
            kube_scheduler: optional("kube-scheduler"),
            kwok: optional("kwok"),
            prometheus_operator: optional("prometheus-operator"),
            kubectl: optional("kubectl").or_else(|| on_path("kubectl")),
            operator_crds: Some(dir.join("crds")).filter(|d| d.is_dir()),
        })
    }

    /// Whether pods can run: a scheduler, the controller-manager's workload controllers and
    /// kwok's fake nodes.
    pub fn runs_pods(&self) -> bool {
        self.kube_scheduler.is_some()
            && self.kwok.is_some()
            && self.kube_controller_manager.is_some()
    }
}

/// The directory where the current binaries are cached.
pub fn cache_dir() -> PathBuf {
    cache_base().join(format!("k8s-{KUBERNETES_VERSION}"))
}

/// The directory where the Debian fallback binaries are cached.
pub fn fallback_cache_dir() -> PathBuf {
    cache_base().join(format!("k8s-{FALLBACK_KUBERNETES_VERSION}"))
}

fn cache_base() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("stacksmith")
}

/// Finds the binaries; installs the missing `components` into the cache when no override is set.
pub async fn locate_or_install(components: &[Component]) -> Result<Binaries> {
    for var in ["STACKSMITH_TESTBED_BINARIES", "KUBEBUILDER_ASSETS"] {
        if let Some(dir) = std::env::var_os(var) {
            let dir = PathBuf::from(dir);
            return Binaries::in_dir(&dir).ok_or_else(|| {
                TestBedError::Binaries(format!(
                    "{var}={} does not hold kube-apiserver and etcd",
                    dir.display()
                ))
            });
        }
    }
    let cache = cache_dir();
    match run_script(
        INSTALL_CURRENT_SCRIPT,
        "install-current.sh",
        &cache,
        components,
    )
    .await?
    {
        ScriptEnd::Done => Binaries::in_dir(&cache).ok_or_else(|| {
            TestBedError::Binaries(format!(
                "the install script left no binaries in {}",
                cache.display()
            ))
        }),
        ScriptEnd::NoGo => {
            tracing::warn!(
                "Go or its module proxy cannot be had: falling back to Kubernetes {FALLBACK_KUBERNETES_VERSION} from Debian's source package"
            );
            let fallback = fallback_cache_dir();
            let found = Binaries::in_dir(&fallback).filter(|b| {
                b.kube_controller_manager.is_some() && fallback.join("kubectl").is_file()
            });
            if let Some(found) = found {
                return Ok(found);
            }
            match run_script(
                INSTALL_FALLBACK_SCRIPT,
                "install-binaries.sh",
                &fallback,
                &[],
            )
            .await?
            {
                ScriptEnd::Done => Binaries::in_dir(&fallback).ok_or_else(|| {
                    TestBedError::Binaries(format!(
                        "the install script left no binaries in {}",
                        fallback.display()
                    ))
                }),
                ScriptEnd::NoGo => Err(TestBedError::Binaries(
                    "the fallback install script failed".into(),
                )),
            }
        }
    }
}

enum ScriptEnd {
    Done,
    NoGo,
}

/// Runs an embedded install script for `cache` (its progress goes to stderr).
async fn run_script(
    script: &str,
    name: &str,
    cache: &Path,
    components: &[Component],
) -> Result<ScriptEnd> {
    tracing::debug!(cache = %cache.display(), script = name, "checking test-bed binaries");
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(name)
        .arg(cache)
        .args(components.iter().map(|c| c.as_str()))
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(TestBedError::io(format!(
            "run the test-bed install script {name} with bash"
        )))?;
    match status.code() {
        Some(0) => Ok(ScriptEnd::Done),
        Some(NO_GO) => Ok(ScriptEnd::NoGo),
        _ => Err(TestBedError::Binaries(format!(
            "the install script {name} failed ({status})"
        ))),
    }
}

/// The version a `kube-apiserver` binary reports (`v1.37.2`), if it answers `--version`.
pub async fn apiserver_version(kube_apiserver: &Path) -> Option<String> {
    let output = tokio::process::Command::new(kube_apiserver)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find(|word| word.starts_with('v'))
        .map(str::to_owned)
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

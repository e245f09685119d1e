//! Finding, or installing and caching, the control-plane binaries.
//!
//! Search order:
//! 1. `STACKSMITH_TESTBED_BINARIES`: a directory holding `kube-apiserver`, `etcd` and optionally
//!    `kube-controller-manager`.
//! 2. `KUBEBUILDER_ASSETS`: the conventional envtest assets directory (same file names).
//! 3. The cache `$XDG_CACHE_HOME/stacksmith/k8s-v1.20.2` (or `~/.cache/...`), filled on first use
//!    by the embedded install script: Debian packages for Go and etcd, then kube-apiserver and
//!    kube-controller-manager v1.20.2 built from Debian's source package (several minutes, once).

use std::path::{Path, PathBuf};

use crate::error::{Result, TestBedError};

/// The install script, embedded so that the binary alone can set a machine up.
const INSTALL_SCRIPT: &str = include_str!("../scripts/install-binaries.sh");
/// The Kubernetes version the cache holds.
pub const KUBERNETES_VERSION: &str = "v1.20.2";

/// Paths of the binaries a test bed runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-controller-manager`, for namespace deletion and garbage collection; optional.
    pub kube_controller_manager: Option<PathBuf>,
    /// `kubectl`, for tests that run it as users do; optional (else looked up on `PATH`).
    pub kubectl: Option<PathBuf>,
}

impl Binaries {
    fn in_dir(dir: &Path) -> Option<Self> {
        let kube_apiserver = dir.join("kube-apiserver");
        let etcd = dir.join("etcd");
        if !(kube_apiserver.is_file() && etcd.exists()) {
            return None;
        }
        let kcm = dir.join("kube-controller-manager");
        let kubectl = dir.join("kubectl");
        Some(Binaries {
            kube_apiserver,
            etcd,
            kube_controller_manager: kcm.is_file().then_some(kcm),
            kubectl: kubectl
                .is_file()
                .then_some(kubectl)
                .or_else(|| on_path("kubectl")),
        })
    }
}

/// The directory where installed binaries are cached.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stacksmith")
        .join(format!("k8s-{KUBERNETES_VERSION}"))
}

/// Finds the binaries; installs them into the cache when none are found.
pub async fn locate_or_install() -> Result<Binaries> {
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
    let complete =
        |b: &Binaries| b.kube_controller_manager.is_some() && cache.join("kubectl").is_file();
    if let Some(found) = Binaries::in_dir(&cache).filter(complete) {
        return Ok(found);
    }
    install(&cache).await?;
    Binaries::in_dir(&cache).ok_or_else(|| {
        TestBedError::Binaries(format!(
            "the install script left no binaries in {}",
            cache.display()
        ))
    })
}

/// Runs the embedded install script for `cache` (its progress goes to stderr).
async fn install(cache: &Path) -> Result<()> {
    tracing::info!(cache = %cache.display(), "installing test-bed binaries (first run: several minutes)");
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(INSTALL_SCRIPT)
        .arg("install-binaries.sh")
        .arg(cache)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(TestBedError::io(
            "run the test-bed install script with bash",
        ))?;
    if status.success() {
        Ok(())
    } else {
        Err(TestBedError::Binaries(format!(
            "the install script failed ({status})"
        )))
    }
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

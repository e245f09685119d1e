//! The on-disk record of a running test bed, for `stacksmith testbed env|down` and for
//! removing what a killed owner left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TestBedError};
use crate::process;

const STATE_FILE: &str = "testbed.json";
const OWNER_FILE: &str = "owner.pid";

/// Where test beds keep their directories: `$TMPDIR/stacksmith-testbeds`.
pub fn base_dir() -> PathBuf {
    std::env::temp_dir().join("stacksmith-testbeds")
}

/// What `stacksmith testbed env|down` need to know about a running test bed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningTestBed {
    /// The test bed's name.
    pub name: String,
    /// The process that owns its servers.
    pub owner_pid: u32,
    /// Its clusters.
    pub clusters: Vec<ClusterEntry>,
}

/// One cluster of a running test bed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterEntry {
    /// The cluster's name.
    pub name: String,
    /// Its API server URL.
    pub server: String,
    /// Its admin kubeconfig file.
    pub kubeconfig: PathBuf,
}

impl RunningTestBed {
    /// Reads the record of the running test bed `name`.
    pub fn find(name: &str) -> Result<Self> {
        let dir = base_dir().join(name);
        let text = std::fs::read_to_string(dir.join(STATE_FILE))
            .map_err(|_| TestBedError::NotRunning(name.to_owned()))?;
        let state: RunningTestBed =
            serde_json::from_str(&text).map_err(|e| TestBedError::format(STATE_FILE, e))?;
        if process::process_exists(state.owner_pid) {
            Ok(state)
        } else {
            Err(TestBedError::NotRunning(name.to_owned()))
        }
    }

    /// `KUBECONFIG` (the hub) and `STACKSMITH_KUBECONFIG_<CLUSTER>` for every cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("STACKSMITH_TESTBED".to_owned(), self.name.clone())];
        for cluster in &self.clusters {
            let path = cluster.kubeconfig.to_string_lossy().into_owned();
            if cluster.name == crate::HUB {
                env.push(("KUBECONFIG".to_owned(), path.clone()));
            }
            let var = cluster.name.to_uppercase().replace(['-', '.'], "_");
            env.push((format!("STACKSMITH_KUBECONFIG_{var}"), path));
        }
        env
    }

    /// Asks the owner to shut the test bed down and waits until its directory is gone.
    pub fn stop(&self, timeout: Duration) -> Result<()> {
        process::terminate(self.owner_pid);
        let dir = base_dir().join(&self.name);
        let deadline = Instant::now() + timeout;
        while dir.exists() {
            if Instant::now() > deadline {
                return Err(TestBedError::Timeout {
                    what: format!("test bed {} to shut down", self.name),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// Removes the directory of test bed `name` if its owner is dead (its servers stopped with it).
/// Returns whether there was such a directory.
pub fn remove_if_abandoned(name: &str) -> Result<bool> {
    let dir = base_dir().join(name);
    if !dir.exists() {
        return Ok(false);
    }
    match owner_of(&dir) {
        Some(owner) if process::process_exists(owner) => Ok(false),
        _ => {
            std::fs::remove_dir_all(&dir)
                .map_err(TestBedError::io(format!("remove {}", dir.display())))?;
            Ok(true)
        }
    }
}

pub(crate) fn write(dir: &Path, state: &RunningTestBed) -> Result<()> {
    let text =
        serde_json::to_string_pretty(state).map_err(|e| TestBedError::format(STATE_FILE, e))?;
    std::fs::write(dir.join(STATE_FILE), text)
        .map_err(TestBedError::io("write the test bed record"))
}

/// Creates the directory of test bed `name`, refusing when a live owner holds it.
pub(crate) fn claim_dir(name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(TestBedError::Binaries(format!(
            "invalid test bed name {name:?} (letters, digits, - and _)"
        )));
    }
    let dir = base_dir().join(name);
    if let Some(owner) = owner_of(&dir)
        && process::process_exists(owner)
        && owner != std::process::id()
    {
        return Err(TestBedError::Binaries(format!(
            "a test bed named {name:?} is already running (process {owner}); stop it with `stacksmith testbed down --name {name}`"
        )));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(TestBedError::io(format!("remove stale {}", dir.display())))?;
    }
    std::fs::create_dir_all(&dir).map_err(TestBedError::io(format!("create {}", dir.display())))?;
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
        .map_err(TestBedError::io("write the owner file"))?;
    Ok(dir)
}

fn owner_of(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(OWNER_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes the directories of test beds whose owner died without cleaning up (their servers
/// already stopped with their owner).
pub(crate) fn remove_abandoned() {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let abandoned = match owner_of(&dir) {
            Some(owner) => !process::process_exists(owner),
            None => dir.join(STATE_FILE).exists(),
        };
        if abandoned {
            tracing::info!(dir = %dir.display(), "removing an abandoned test bed");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

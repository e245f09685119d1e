//! `stacksmith testbed up|env|down` as users run them, including the owner being killed with
//! SIGKILL: no server may outlive it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn stacksmith() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stacksmith"))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Kills the owner process if the test fails half-way (its servers then stop with it).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `stacksmith testbed up` and waits until `testbed env` answers for it.
fn testbed_up(name: &str, extra: &[&str]) -> KillOnDrop {
    let up = stacksmith()
        .args(["testbed", "up", "--name", name, "--no-simulator"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("testbed up");
    stacksmith_e2e::wait_until_blocking("testbed env answers", Duration::from_secs(600), || {
        stacksmith()
            .args(["testbed", "env", "--name", name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    up
}

#[test]
fn up_env_down_and_nothing_survives_a_killed_owner() {
    let name = format!("cli-{}", std::process::id());
    let dir: PathBuf = std::env::temp_dir().join("stacksmith-testbeds").join(&name);

    // up, env, down.
    let mut up = testbed_up(&name, &["--prometheus-clusters=2"]);
    let env = stacksmith()
        .args(["testbed", "env", "--name", &name])
        .output()
        .expect("env");
    let env = String::from_utf8_lossy(&env.stdout).to_string();
    assert!(
        env.contains("export KUBECONFIG=")
            && env.contains("STACKSMITH_KUBECONFIG_GRAFANA_1=")
            && env.contains("STACKSMITH_KUBECONFIG_PROMETHEUS_2="),
        "{env}"
    );
    let pids = stacksmith_testbed::process::server_pids_in(&dir);
    assert!(
        pids.len() >= 5,
        "etcd and four API servers at least: {pids:?}"
    );
    let down = stacksmith()
        .args(["testbed", "down", "--name", &name])
        .output()
        .expect("down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(up.0.wait().expect("up exits").success());
    assert!(!dir.exists(), "directory left behind");
    stacksmith_e2e::wait_until_blocking(
        "servers stopped after down",
        Duration::from_secs(30),
        || pids.iter().all(|p| !alive(*p)),
    );

    // up again, then SIGKILL the owner: the guards stop every server.
    let mut up = testbed_up(&name, &[]);
    let pids = stacksmith_testbed::process::server_pids_in(&dir);
    assert!(pids.iter().all(|p| alive(*p)), "servers running: {pids:?}");
    up.0.kill().expect("SIGKILL the owner");
    let _ = up.0.wait();
    stacksmith_e2e::wait_until_blocking(
        "servers stopped after the owner was killed",
        Duration::from_secs(30),
        || pids.iter().all(|p| !alive(*p)),
    );
    let down = stacksmith()
        .args(["testbed", "down", "--name", &name])
        .output()
        .expect("down");
    assert!(
        down.status.success(),
        "down cleans up after a dead owner: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!dir.exists(), "directory left behind after a killed owner");
}

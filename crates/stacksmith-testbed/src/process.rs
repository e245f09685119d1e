//! Server processes whose lifetime is tied to their owner.
//!
//! Each server runs under a small `sh` guard that reads the owner's pipe on its stdin: when the
//! owner closes the pipe (on purpose, or because it died, however abruptly), the guard stops the
//! server and waits for it. No server outlives the process that started it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};

use crate::error::{Result, TestBedError};

/// The guard: starts the server in the background, blocks until stdin closes, then stops it.
const GUARD: &str = r#"
"$@" </dev/null &
server=$!
echo "$server" > "$STACKSMITH_PIDFILE"
while read -r _; do :; done
kill -TERM "$server" 2>/dev/null
i=0
while kill -0 "$server" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then kill -KILL "$server" 2>/dev/null; fi
  sleep 0.1
done
"#;

/// A running server process under its guard.
pub struct Supervised {
    name: String,
    guard: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
    pidfile: PathBuf,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// A short name for messages (`etcd`, `kube-apiserver hub`).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl ServerCommand {
    /// The same command logging to another file.
    pub fn clone_with_log(&self, log: PathBuf) -> Self {
        ServerCommand {
            log,
            ..self.clone()
        }
    }
}

impl Supervised {
    /// Starts `command` under a guard.
    pub fn start(command: &ServerCommand) -> Result<Self> {
        let log_file = std::fs::File::create(&command.log).map_err(TestBedError::io(format!(
            "create {}",
            command.log.display()
        )))?;
        let log_err = log_file
            .try_clone()
            .map_err(TestBedError::io(format!("open {}", command.log.display())))?;
        let pidfile = command.log.with_extension("pid");
        // A pid file left by an earlier run of the same command would name a dead process.
        let _ = std::fs::remove_file(&pidfile);
        let mut guard = Command::new("sh");
        guard
            .arg("-c")
            .arg(GUARD)
            .arg("stacksmith-guard")
            .arg(&command.program)
            .args(&command.args)
            .env("STACKSMITH_PIDFILE", &pidfile)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(false);
        let mut guard = guard.spawn().map_err(TestBedError::io(format!(
            "start {}",
            command.program.display()
        )))?;
        let lifeline = guard.stdin.take();
        Ok(Supervised {
            name: command.name.clone(),
            guard,
            lifeline,
            log: command.log.clone(),
            pidfile,
        })
    }

    /// The server's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The server's process id, once the guard has started it.
    pub fn server_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the server is still running (its guard, when it has not reported the server's
    /// pid yet).
    pub fn is_running(&mut self) -> bool {
        let guard_running = matches!(self.guard.try_wait(), Ok(None));
        guard_running && self.server_pid().is_none_or(process_exists)
    }

    /// Stops the server and waits until it has exited.
    pub async fn stop(mut self) -> Result<()> {
        drop(self.lifeline.take());
        match tokio::time::timeout(Duration::from_secs(20), self.guard.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(TestBedError::Io {
                action: format!("wait for {}", self.name),
                source,
            }),
            Err(_) => {
                if let Some(pid) = self.server_pid() {
                    kill_hard(pid);
                }
                let _ = self.guard.start_kill();
                Err(TestBedError::Timeout {
                    what: format!("{} to stop", self.name),
                    secs: 20,
                })
            }
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

/// The last `lines` lines of a file (empty when unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn kill_hard(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Whether a process with this id exists.
pub fn process_exists(pid: u32) -> bool {
    i32::try_from(pid)
        .map(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
        .unwrap_or(false)
}

/// Asks a process to terminate (SIGTERM).
pub fn terminate(pid: u32) -> bool {
    i32::try_from(pid)
        .map(|pid| {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .is_ok()
        })
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that is free right now.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(TestBedError::io("find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(TestBedError::io("find a free port"))?
        .port();
    Ok(port)
}

/// The server pids recorded under a test bed directory (the guards' `*.pid` files).
pub fn server_pids_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "pid")
                && path.file_name().is_some_and(|n| n != "owner.pid")
            {
                pids.extend(
                    std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok()),
                );
            }
        }
    }
    pids
}

//! The operator under test, in a process of its own (so its memory is its own): the bench binary
//! runs itself again with the hidden `operator` subcommand.
//!
//! The child runs `stacksmith_controller::run_with` against the hub (tenant policies optional,
//! as `--tenant-policy=optional`: the bench's stacks have none) and talks over its
//! standard streams: each `counts` line on stdin is answered by one JSON line on stdout with the
//! requests its clients have made so far (counted by the operator's own tower layer); `stop` or
//! the end of stdin (the parent is gone) stops it. Its logs go to a file, never to the terminal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};
use stacksmith_controller::api_calls::ApiCallCounter;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Requests by (cluster, verb, outcome).
pub type Counts = BTreeMap<(String, String, String), u64>;

#[derive(Serialize, Deserialize)]
struct Series {
    cluster: String,
    verb: String,
    outcome: String,
    count: u64,
}

/// The child side: runs the operator until `stop` or the end of stdin.
pub async fn run_child(kubeconfig: &Path) -> anyhow::Result<()> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    let counter = ApiCallCounter::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = stacksmith_controller::OperatorOptions {
        tenant_policy: stacksmith_controller::PolicyMode::Optional,
        ..stacksmith_controller::OperatorOptions::default()
    };
    let operator = tokio::spawn(stacksmith_controller::run_with(
        config,
        counter.clone(),
        options,
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "counts" => {
                let series: Vec<Series> = counter
                    .snapshot()
                    .into_iter()
                    .map(|(k, count)| Series {
                        cluster: k.cluster,
                        verb: k.verb.as_str().to_owned(),
                        outcome: k.outcome.as_str().to_owned(),
                        count,
                    })
                    .collect();
                let mut json = serde_json::to_string(&series)?;
                json.push('\n');
                stdout.write_all(json.as_bytes()).await?;
                stdout.flush().await?;
            }
            "stop" => break,
            _ => {}
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(10), operator).await {
        Ok(Ok(result)) => result.context("the operator failed"),
        Ok(Err(err)) => bail!("the operator task failed: {err}"),
        Err(_) => Ok(()),
    }
}

/// The parent side: an operator process.
pub struct OperatorProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

impl OperatorProcess {
    /// Starts the operator (this binary, subcommand `operator`) against the hub whose admin
    /// kubeconfig is `kubeconfig`; its log goes to `log`.
    pub fn start(kubeconfig: &Path, log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("starting the operator process")?;
        let pid = child.id().context("the operator process has no pid")?;
        let stdin = child.stdin.take().context("the operator's stdin")?;
        let stdout = child.stdout.take().context("the operator's stdout")?;
        Ok(OperatorProcess {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            pid,
        })
    }

    /// The requests the operator has made so far.
    pub async fn counts(&mut self) -> anyhow::Result<Counts> {
        self.stdin.write_all(b"counts\n").await?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("the operator did not answer in 30 s")??
            .context("the operator exited")?;
        let series: Vec<Series> = serde_json::from_str(&line).context("the operator's counts")?;
        Ok(series
            .into_iter()
            .map(|s| ((s.cluster, s.verb, s.outcome), s.count))
            .collect())
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the operator's /proc status")?;
        Ok(Memory {
            rss: proc_status_kib(&status, "VmRSS").context("no VmRSS")? * 1024,
            peak: proc_status_kib(&status, "VmHWM").context("no VmHWM")? * 1024,
        })
    }

    /// Stops the operator and waits (10 s, then kills it).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stdin.write_all(b"stop\n").await;
        let _ = self.stdin.flush().await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Resident memory of a process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`.
    pub rss: u64,
    /// `VmHWM`: the peak.
    pub peak: u64,
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn proc_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name != field {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Sums counts per (cluster, verb) over the series that `keep` selects.
pub fn by_cluster_verb(counts: &Counts) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for ((cluster, verb, _), n) in counts {
        *out.entry((cluster.clone(), verb.clone())).or_insert(0) += n;
    }
    out
}

/// `after - before`, dropping zeros.
pub fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The total of the series whose verb satisfies `verb`, optionally on one cluster.
pub fn total(counts: &Counts, cluster: Option<&str>, verb: impl Fn(&str) -> bool) -> u64 {
    counts
        .iter()
        .filter(|((c, v, _), _)| cluster.is_none_or(|want| want == c) && verb(v))
        .map(|(_, n)| n)
        .sum()
}

/// Writes: create, update, patch, delete.
pub fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete")
}

/// Reads outside watches: get, list.
pub fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list")
}

/// Any request but a watch (a watch is one long request, not traffic).
pub fn is_request(verb: &str) -> bool {
    verb != "watch"
}

/// `cluster verb=n, ...` per cluster, for notes.
pub fn describe(counts: &Counts) -> String {
    let mut per_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((cluster, verb), n) in by_cluster_verb(counts) {
        per_cluster
            .entry(cluster)
            .or_default()
            .push(format!("{verb} {n}"));
    }
    if per_cluster.is_empty() {
        return "no request".into();
    }
    per_cluster
        .into_iter()
        .map(|(c, verbs)| format!("{c}: {}", verbs.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the operator's log goes for a run.
pub fn log_path(run: usize, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "stacksmith-bench-{}-run{run}-{what}.log",
        std::process::id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, v: &str) -> (String, String, String) {
        (c.into(), v.into(), "success".into())
    }

    #[test]
    fn counts_are_summed_and_described() {
        let before: Counts = [(key("hub", "patch"), 2), (key("hub", "watch"), 3)].into();
        let after: Counts = [
            (key("hub", "patch"), 5),
            (key("hub", "watch"), 3),
            (key("prometheus-1", "patch"), 7),
            (key("prometheus-1", "get"), 1),
        ]
        .into();
        let d = delta(&before, &after);
        assert_eq!(total(&d, None, is_write), 10);
        assert_eq!(total(&d, Some("hub"), is_write), 3);
        assert_eq!(total(&d, None, is_read), 1);
        assert_eq!(total(&d, None, |v| v == "watch"), 0);
        assert_eq!(describe(&d), "hub: patch 3; prometheus-1: get 1, patch 7");
        assert_eq!(describe(&Counts::new()), "no request");
    }

    #[test]
    fn proc_status_fields() {
        let status = "Name:\tstacksmith-bench\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(proc_status_kib(status, "VmHWM"), Some(51200));
        assert_eq!(proc_status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(proc_status_kib(status, "VmSwap"), None);
    }
}

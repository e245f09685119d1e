//! The operator under test, in a process of its own (so its memory is its own): the bench binary
//! runs itself again with the hidden `operator` subcommand.
//!
//! The child runs `stacksmith_controller::run_with` against the hub (tenant policies optional,
//! as `--tenant-policy=optional`: the bench's stacks have none) and talks over its
//! standard streams: each `counts` line on stdin is answered by one JSON line on stdout with the
//! requests its clients have made so far (counted by the operator's own tower layer); `stop` or
//! the end of stdin (the parent is gone) stops it. Its logs go to a file, never to the terminal.
//!
//! With [`LeaseArgs`] the child is one replica among several sharing the stacks through hub
//! Leases (`OperatorOptions::leases`). `stop` is then the graceful stop (its reconciles finish,
//! its Leases are given back); [`OperatorProcess::kill`] is the crash (SIGKILL: its Leases are
//! taken by others only when they run out).

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

/// The counter's cluster label of the Lease requests (apart from `hub`).
pub const LEASE_CLUSTER: &str = "hub-leases";

/// How a child shares the stacks with other replicas through hub Leases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseArgs {
    /// Its name in the Leases.
    pub identity: String,
    /// The number of shards (the same on every replica).
    pub shards: u16,
    /// The lease duration (whole seconds: a Lease records seconds).
    pub duration: Duration,
}

impl LeaseArgs {
    /// The operator's options for these arguments, the Leases in `namespace`.
    pub fn options(&self, namespace: &str) -> stacksmith_controller::LeaseOptions {
        stacksmith_controller::LeaseOptions {
            identity: self.identity.clone(),
            namespace: namespace.to_owned(),
            shards: self.shards,
            duration: self.duration,
        }
    }

    /// The child's command-line arguments after `--kubeconfig`.
    fn args(&self) -> Vec<String> {
        vec![
            "--replica".into(),
            self.identity.clone(),
            "--shards".into(),
            self.shards.to_string(),
            "--lease-seconds".into(),
            self.duration.as_secs().max(1).to_string(),
        ]
    }
}

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
pub async fn run_child(
    kubeconfig: &Path,
    leases: Option<stacksmith_controller::LeaseOptions>,
) -> anyhow::Result<()> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    let counter = ApiCallCounter::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = stacksmith_controller::OperatorOptions {
        tenant_policy: stacksmith_controller::PolicyMode::Optional,
        leases,
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
    // Reconciles in flight finish, then the Leases are given back (within their duration).
    match tokio::time::timeout(Duration::from_secs(40), operator).await {
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
        Self::start_with(kubeconfig, log, None)
    }

    /// Starts the operator like [`OperatorProcess::start`], as a replica sharing the stacks
    /// through Leases when `leases` says so.
    pub fn start_with(
        kubeconfig: &Path,
        log: &Path,
        leases: Option<&LeaseArgs>,
    ) -> anyhow::Result<Self> {
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
            .args(leases.map(LeaseArgs::args).unwrap_or_default())
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

    /// Stops the operator gracefully (its reconciles finish, its Leases are given back) and
    /// waits (45 s, then kills it).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stdin.write_all(b"stop\n").await;
        let _ = self.stdin.flush().await;
        match tokio::time::timeout(Duration::from_secs(45), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    /// Crashes the operator: SIGKILL, nothing given back; returns once it is gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .context("killing the operator process")
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

/// The requests to the member clusters (neither the hub nor its Leases).
pub fn on_members(counts: &Counts) -> Counts {
    counts
        .iter()
        .filter(|((cluster, _, _), _)| cluster != "hub" && cluster != LEASE_CLUSTER)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// The requests but those of the Leases.
pub fn without_leases(counts: &Counts) -> Counts {
    counts
        .iter()
        .filter(|((cluster, _, _), _)| cluster != LEASE_CLUSTER)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
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
    fn lease_requests_are_kept_apart() {
        let counts: Counts = [
            (key("hub", "patch"), 2),
            (key(LEASE_CLUSTER, "update"), 9),
            (key("prometheus-1", "patch"), 1),
            (key("grafana-1", "get"), 4),
        ]
        .into();
        assert_eq!(total(&without_leases(&counts), None, is_write), 3);
        assert_eq!(total(&on_members(&counts), None, is_write), 1);
        assert_eq!(total(&on_members(&counts), None, is_request), 5);
        assert_eq!(total(&counts, Some(LEASE_CLUSTER), is_write), 9);
    }

    #[test]
    fn lease_args_are_passed_to_the_child_and_back() {
        let args = LeaseArgs {
            identity: "replica-b".into(),
            shards: 6,
            duration: Duration::from_secs(5),
        };
        assert_eq!(
            args.args(),
            [
                "--replica",
                "replica-b",
                "--shards",
                "6",
                "--lease-seconds",
                "5"
            ]
        );
        let options = args.options("stacksmith-system");
        assert_eq!(options.identity, "replica-b");
        assert_eq!(options.namespace, "stacksmith-system");
        assert_eq!(options.shards, 6);
        assert_eq!(options.duration, Duration::from_secs(5));
    }

    #[test]
    fn proc_status_fields() {
        let status = "Name:\tstacksmith-bench\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(proc_status_kib(status, "VmHWM"), Some(51200));
        assert_eq!(proc_status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(proc_status_kib(status, "VmSwap"), None);
    }
}

//! Several `stacksmith operator` processes on one test bed, sharing the stacks through hub
//! Leases: a warm standby takes over from a crashed leader (kill -9) within the lease duration
//! and from a stopped one (SIGTERM) at once, writing nothing that was already right; three
//! replicas split the shards, and a lost replica's shards are taken over without any shard
//! being reconciled by two live replicas. Every figure is read from the processes' own
//! `/metrics` (request counters and reconciles per shard) and the Leases on the hub.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use stacksmith_api::CustomerStack;
use stacksmith_core::ChildKind;
use stacksmith_core::shards::shard_of;
use stacksmith_testbed::{TestBed, TestBedOptions};

/// The lease duration the replicas run with: short, so that a crash is survived quickly.
const LEASE_SECONDS: u64 = 4;
/// The namespace of the Leases (the test bed's hub has it).
const LEASE_NAMESPACE: &str = "stacksmith-system";
/// Where the stacks live on the hub.
const NAMESPACE: &str = "replicas";

/// One operator process.
struct Replica {
    name: String,
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Replica {
    fn start(hub: &Path, name: &str, shards: u16) -> Replica {
        let address = free_address();
        let log = std::env::temp_dir().join(format!(
            "stacksmith-replicas-{}-{name}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
            .args(["operator", "--kubeconfig"])
            .arg(hub)
            .args(["--metrics-addr", &address.to_string()])
            .args(["--tenant-policy", "optional"])
            .args(["--replica", name])
            .args(["--shards", &shards.to_string()])
            .args(["--lease-namespace", LEASE_NAMESPACE])
            .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string()])
            .args(["--log-level", "info,stacksmith_controller=debug"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("stacksmith operator");
        let replica = Replica {
            name: name.to_owned(),
            child,
            address,
            log,
        };
        stacksmith_e2e::wait_until_blocking(
            &format!("{name} ready (log: {})", replica.log.display()),
            Duration::from_secs(60),
            || http_get(replica.address, "/readyz").is_some_and(|(code, _)| code == 200),
        );
        replica
    }

    fn metrics(&self) -> String {
        http_get(self.address, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The shards it holds now.
    fn held(&self) -> BTreeSet<u16> {
        held(&self.metrics())
    }

    /// Kills it at once (a crash: nothing is given back).
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns its exit status once it stopped.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A plain HTTP/1.1 GET: (status code, body); `None` while nothing answers.
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The labels and value of each sample of `family`.
fn samples(metrics: &str, family: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// Writes by cluster (`hub-leases` apart), from the request counters.
fn writes(metrics: &str) -> BTreeMap<String, f64> {
    let mut by_cluster = BTreeMap::new();
    for (labels, value) in samples(metrics, "stacksmith_api_requests_total") {
        if ["create", "update", "patch", "delete"].contains(&labels["verb"].as_str()) {
            *by_cluster.entry(labels["cluster"].clone()).or_insert(0.0) += value;
        }
    }
    by_cluster
}

fn writes_outside_leases(metrics: &str) -> f64 {
    writes(metrics)
        .into_iter()
        .filter(|(cluster, _)| cluster != "hub-leases")
        .map(|(_, count)| count)
        .sum()
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(cluster, count)| {
            (
                cluster.clone(),
                count - before.get(cluster).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, count)| *count > 0.0)
        .collect()
}

fn held(metrics: &str) -> BTreeSet<u16> {
    samples(metrics, "stacksmith_shard_held")
        .into_iter()
        .filter(|(_, value)| *value == 1.0)
        .filter_map(|(labels, _)| labels["shard"].parse().ok())
        .collect()
}

/// Reconciles run per shard.
fn reconciles_by_shard(metrics: &str) -> BTreeMap<u16, f64> {
    samples(metrics, "stacksmith_shard_reconciles_total")
        .into_iter()
        .filter_map(|(labels, value)| Some((labels["shard"].parse().ok()?, value)))
        .collect()
}

/// What each replica holds and reconciled per shard (from its metrics), checking that none
/// reconciled a shard it does not hold; and which replicas reconciled each shard.
#[allow(clippy::type_complexity)]
fn shard_census(
    replicas: &[Replica],
) -> (
    Vec<(BTreeSet<u16>, BTreeMap<u16, f64>)>,
    BTreeMap<u16, Vec<String>>,
) {
    let census: Vec<(BTreeSet<u16>, BTreeMap<u16, f64>)> = tokio::task::block_in_place(|| {
        replicas
            .iter()
            .map(|r| {
                let metrics = r.metrics();
                (held(&metrics), reconciles_by_shard(&metrics))
            })
            .collect()
    });
    let mut reconciled_by: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (replica, (held, by_shard)) in replicas.iter().zip(&census) {
        let reconciled: BTreeSet<u16> = by_shard.keys().copied().collect();
        assert!(
            reconciled.is_subset(held),
            "{} reconciled shards {reconciled:?} holding {held:?}",
            replica.name
        );
        for shard in reconciled {
            reconciled_by
                .entry(shard)
                .or_default()
                .push(replica.name.clone());
        }
    }
    (census, reconciled_by)
}

async fn holder(hub: &Client, shard: u16) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(hub.clone(), LEASE_NAMESPACE);
    leases
        .get_opt(&stacksmith_controller::shard_lease_name(shard))
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec?.holder_identity)
}

async fn wait_holder(hub: &Client, shard: u16, name: &str) -> Duration {
    let started = Instant::now();
    stacksmith_e2e::eventually(
        &format!("shard {shard} held by {name}"),
        Duration::from_secs(60),
        || async {
            let now = holder(hub, shard).await;
            Ok(if now.as_deref() == Some(name) {
                Ok(())
            } else {
                Err(format!("held by {now:?}"))
            })
        },
    )
    .await
    .unwrap();
    started.elapsed()
}

async fn apply_stacks(hub: &Client, names: &[String]) {
    for name in names {
        let manifest = stacksmith_e2e::stack_manifest(name, name, json!({}));
        stacksmith_e2e::apply_stack(hub, NAMESPACE, &manifest)
            .await
            .unwrap();
    }
    for name in names {
        stacksmith_e2e::wait_ready(hub, NAMESPACE, name)
            .await
            .unwrap();
    }
}

/// Changes the stack's retention; returns how long until its `Prometheus` shows it.
async fn change_retention(
    hub: &Client,
    prometheus: &Client,
    name: &str,
    retention: &str,
) -> Duration {
    let started = Instant::now();
    let api: Api<CustomerStack> = Api::namespaced(hub.clone(), NAMESPACE);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"metrics": {"retention": retention}}})),
    )
    .await
    .unwrap();
    stacksmith_e2e::wait_child(
        prometheus,
        ChildKind::Prometheus,
        &format!("customer-{name}"),
        name,
        &format!("retention {retention}"),
        |o| o.is_some_and(|o| o.data["spec"]["retention"] == retention),
    )
    .await
    .unwrap();
    started.elapsed()
}

async fn start_bed(name: &str) -> TestBed {
    let testbed = TestBed::start(TestBedOptions::new(name))
        .await
        .expect("test bed");
    let grafana = testbed.cluster("grafana-1").unwrap().client().clone();
    stacksmith_testbed::simulator::create_shared_grafana(&grafana)
        .await
        .unwrap();
    testbed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_standby_takes_over_from_a_crashed_and_from_a_stopped_leader() {
    let testbed = start_bed(&format!("replicas-leader-{}", std::process::id())).await;
    let hub = testbed.hub().unwrap();
    let hub_client = hub.client().clone();
    let prometheus = testbed.cluster("prometheus-1").unwrap().client().clone();
    let kubeconfig = hub.kubeconfig_path().to_owned();

    // "a" leads (it starts first and takes the one shard), "b" stands by.
    let mut a = tokio::task::block_in_place(|| Replica::start(&kubeconfig, "replica-a", 1));
    wait_holder(&hub_client, 0, "replica-a").await;
    let mut b = tokio::task::block_in_place(|| Replica::start(&kubeconfig, "replica-b", 1));
    let names: Vec<String> = (1..=5).map(|i| format!("lead{i}")).collect();
    apply_stacks(&hub_client, &names).await;
    let normal = change_retention(&hub_client, &prometheus, "lead1", "10d").await;

    // The standby kept everything warm and wrote nothing.
    let (a_metrics, b_metrics) = tokio::task::block_in_place(|| (a.metrics(), b.metrics()));
    assert_eq!(held(&a_metrics), BTreeSet::from([0]));
    assert!(held(&b_metrics).is_empty());
    assert_eq!(
        writes_outside_leases(&b_metrics),
        0.0,
        "the standby wrote: {:?}",
        writes(&b_metrics)
    );
    assert!(reconciles_by_shard(&b_metrics).is_empty());
    assert!(
        reconciles_by_shard(&a_metrics)
            .get(&0)
            .is_some_and(|n| *n >= 5.0)
    );

    // kill -9 the leader; a stack changed meanwhile converges within the lease duration plus
    // its normal time (plus a renewal period and a margin for a loaded machine).
    let b_before = writes(&b_metrics);
    tokio::task::block_in_place(|| a.kill());
    let crashed = Instant::now();
    let propagated = change_retention(&hub_client, &prometheus, "lead2", "11d").await;
    wait_holder(&hub_client, 0, "replica-b").await;
    eprintln!(
        "crash: replica-b held the shard within {:.2} s",
        crashed.elapsed().as_secs_f64()
    );
    let lease = Duration::from_secs(LEASE_SECONDS);
    let bound = lease + lease / 5 + normal + Duration::from_secs(3);
    eprintln!(
        "crash: the changed stack converged {:.2} s after the kill (normal {:.2} s, bound {:.2} s)",
        propagated.as_secs_f64(),
        normal.as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(
        propagated <= bound,
        "converged {propagated:?} after the crash; bound {bound:?}"
    );
    for name in &names {
        stacksmith_e2e::wait_ready(&hub_client, NAMESPACE, name)
            .await
            .unwrap();
    }
    // What the new leader wrote: the changed Prometheus, and nothing already right.
    let b_after = writes(&tokio::task::block_in_place(|| b.metrics()));
    let written = delta(&b_after, &b_before);
    eprintln!("writes by the new leader after the crash: {written:?}");
    assert_eq!(
        written.get("prometheus-1").copied(),
        Some(1.0),
        "member writes after the takeover: {written:?}"
    );
    assert_eq!(written.get("grafana-1"), None, "{written:?}");
    assert!(
        written.get("hub").copied().unwrap_or(0.0) <= 2.0,
        "hub writes after the takeover beyond the changed stack's status and Event: {written:?}"
    );

    // SIGTERM the leader with a standby ready: the standby takes over at once.
    let c = tokio::task::block_in_place(|| Replica::start(&kubeconfig, "replica-c", 1));
    let c_before = writes(&tokio::task::block_in_place(|| c.metrics()));
    let asked = Instant::now();
    let status = tokio::task::block_in_place(|| b.terminate());
    assert!(status.success(), "replica-b exit status {status:?}");
    let stopped = asked.elapsed();
    let graceful = wait_holder(&hub_client, 0, "replica-c").await + stopped;
    eprintln!(
        "graceful: replica-c holds the shard {:.2} s after SIGTERM (the process took {:.2} s to stop)",
        graceful.as_secs_f64(),
        stopped.as_secs_f64()
    );
    assert!(
        graceful < Duration::from_secs(2),
        "takeover after SIGTERM took {graceful:?}"
    );
    change_retention(&hub_client, &prometheus, "lead3", "12d").await;
    let c_after = writes(&tokio::task::block_in_place(|| c.metrics()));
    let written = delta(&c_after, &c_before);
    assert_eq!(
        written.get("prometheus-1").copied(),
        Some(1.0),
        "{written:?}"
    );
    assert_eq!(written.get("grafana-1"), None, "{written:?}");
    drop(c);
    testbed.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_the_shards_and_a_lost_replicas_shards_are_taken_over() {
    const SHARDS: u16 = 6;
    let testbed = start_bed(&format!("replicas-shards-{}", std::process::id())).await;
    let hub = testbed.hub().unwrap();
    let hub_client = hub.client().clone();
    let prometheus = testbed.cluster("prometheus-1").unwrap().client().clone();
    let kubeconfig = hub.kubeconfig_path().to_owned();

    let mut replicas: Vec<Replica> = tokio::task::block_in_place(|| {
        ["shard-a", "shard-b", "shard-c"]
            .iter()
            .map(|name| Replica::start(&kubeconfig, name, SHARDS))
            .collect()
    });
    // Whole shards move until each holds two, and no shard is held twice.
    tokio::task::block_in_place(|| {
        stacksmith_e2e::wait_until_blocking(
            "two shards per replica",
            Duration::from_secs(60),
            || {
                let held: Vec<BTreeSet<u16>> = replicas.iter().map(Replica::held).collect();
                let all: BTreeSet<u16> = held.iter().flatten().copied().collect();
                held.iter().all(|h| h.len() == 2) && all.len() == usize::from(SHARDS)
            },
        )
    });

    // Stacks on every shard.
    let mut names: Vec<String> = Vec::new();
    let mut covered = BTreeSet::new();
    for i in 0.. {
        let name = format!("tenant{i}");
        if covered.insert(shard_of(NAMESPACE, &name, SHARDS)) || names.len() < 9 {
            names.push(name);
        }
        if covered.len() == usize::from(SHARDS) && names.len() >= 9 {
            break;
        }
    }
    apply_stacks(&hub_client, &names).await;

    let (before, reconciled_by) = shard_census(&replicas);
    assert_eq!(
        reconciled_by.len(),
        usize::from(SHARDS),
        "{reconciled_by:?}"
    );

    // `stacksmith shards` shows the same holders, and every stack in its shard.
    let output = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .args([
            "shards",
            "-o",
            "json",
            "--lease-namespace",
            LEASE_NAMESPACE,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let view: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(view["shards"], SHARDS);
    let mut replica_names: Vec<&str> = replicas.iter().map(|r| r.name.as_str()).collect();
    replica_names.sort_unstable();
    assert_eq!(view["replicas"], json!(replica_names));
    let rows = view["rows"].as_array().unwrap();
    assert_eq!(rows.len(), usize::from(SHARDS));
    for row in rows {
        let shard = u16::try_from(row["shard"].as_u64().unwrap()).unwrap();
        let holder = replicas
            .iter()
            .zip(&before)
            .find(|(_, (held, _))| held.contains(&shard))
            .map(|(r, _)| r.name.as_str());
        assert_eq!(row["holder"].as_str(), holder, "{view:#}");
        assert_eq!(row["live"], true);
        let stacks = names
            .iter()
            .filter(|n| shard_of(NAMESPACE, n, SHARDS) == shard)
            .count();
        assert_eq!(row["stacks"], stacks, "{view:#}");
    }
    assert!(
        reconciled_by.values().all(|by| by.len() == 1),
        "a shard reconciled by two replicas: {reconciled_by:?}"
    );

    // Lose the replica holding the first stack's shard.
    let stack = names[0].clone();
    let shard = shard_of(NAMESPACE, &stack, SHARDS);
    let victim = before
        .iter()
        .position(|(held, _)| held.contains(&shard))
        .unwrap();
    let lost: BTreeSet<u16> = before[victim].0.clone();
    tokio::task::block_in_place(|| replicas[victim].kill());
    let mut survivors: Vec<Replica> = replicas
        .drain(..)
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| r)
        .collect();
    change_retention(&hub_client, &prometheus, &stack, "9d").await;
    tokio::task::block_in_place(|| {
        stacksmith_e2e::wait_until_blocking(
            "the lost shards taken over",
            Duration::from_secs(60),
            || {
                let held: Vec<BTreeSet<u16>> = survivors.iter().map(Replica::held).collect();
                let all: BTreeSet<u16> = held.iter().flatten().copied().collect();
                all.len() == usize::from(SHARDS) && held[0].is_disjoint(&held[1])
            },
        )
    });
    for name in &names {
        stacksmith_e2e::wait_ready(&hub_client, NAMESPACE, name)
            .await
            .unwrap();
    }
    // Each survivor kept its own shards, took some of the lost ones, and never reconciled a
    // shard the other survivor held.
    let (after, reconciled_by) = shard_census(&survivors);
    assert!(
        reconciled_by.values().all(|by| by.len() == 1),
        "a shard reconciled by both survivors: {reconciled_by:?}"
    );
    let taken: BTreeSet<u16> = after.iter().flat_map(|(held, _)| held.clone()).collect();
    assert!(lost.is_subset(&taken), "lost {lost:?}, held now {taken:?}");
    for (name, (held, _)) in ["first", "second"].iter().zip(&after) {
        assert!(held.len() == 3, "the {name} survivor holds {held:?}");
    }
    for survivor in &mut survivors {
        let status = tokio::task::block_in_place(|| survivor.terminate());
        assert!(status.success(), "{} exit status {status:?}", survivor.name);
    }
    drop(survivors);
    testbed.shutdown().await.unwrap();
}

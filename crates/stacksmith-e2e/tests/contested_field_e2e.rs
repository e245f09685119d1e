//! A field fought over, on the real test bed: another writer (a field manager of the test's own,
//! server-side apply with force) sets the stack's Prometheus back to 1 replica every time
//! stacksmith restores the planned 2. stacksmith restores it with backoff (15 s, 30 s, 60 s, ...)
//! instead of as fast as the watches go, reports the episode with one `FieldContested` Event
//! (naming the other field manager) instead of a `DriftCorrected` per restore, and once the other
//! writer stops, restores the field within the backoff and gets Ready.

use stacksmith_e2e as support;

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use stacksmith_controller::api_calls::{CallOutcome, Verb, delta, total};
use stacksmith_core::ChildKind;
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::{TestBed, TestBedOptions};
use support::*;

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: |name| {
                let mut options = TestBedOptions::new(name);
                options.kubectl = false;
                options
            },
            setup: Some(start_operator),
            serial: true,
        },
        "contested-field-e2e",
        vec![test(
            "a_field_fought_over_is_restored_with_backoff_and_reported_once",
            |tb| Box::pin(boxed(contested_field(tb))),
        )],
    )
}

const NS: &str = "t-contested";
const STACK: &str = "s";
const CUSTOMER: &str = "contested";
const CHILD_NS: &str = "customer-contested";
/// The other writer's field manager.
const FIGHTER: &str = "e2e-fighter";
/// How long the fight lasts.
const FIGHT: Duration = Duration::from_secs(70);

/// Polls `check` every 500 ms until it holds, at most `timeout`; fails naming `what`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {} s: {what}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many times each reason was recorded on the stack: the Event recorder folds repeats of
/// an Event into one object with a `series.count`, so objects alone would undercount.
async fn event_counts(hub: &Client) -> anyhow::Result<Vec<(String, i32, String)>> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(hub.clone(), NS);
    Ok(api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(STACK))
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (
                e.reason.unwrap_or_default(),
                count,
                e.note.unwrap_or_default(),
            )
        })
        .collect())
}

fn occurrences(events: &[(String, i32, String)], reason: &str) -> i32 {
    events
        .iter()
        .filter(|(r, _, _)| r == reason)
        .map(|(_, count, _)| *count)
        .sum()
}

async fn replicas(prom: &Client) -> anyhow::Result<Option<i64>> {
    let object = get_child(prom, ChildKind::Prometheus, CHILD_NS, CUSTOMER)
        .await?
        .context("the Prometheus")?;
    Ok(serde_json::to_value(object)?["spec"]["replicas"].as_i64())
}

/// The other writer: every 200 ms, puts `spec.replicas: 1` back (server-side apply, forced,
/// as its own field manager) when it finds another value. Returns how many times it wrote.
fn fighter(prom: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<anyhow::Result<u32>> {
    tokio::spawn(async move {
        let api = child_api(&prom, ChildKind::Prometheus, CHILD_NS);
        let body = json!({
            "apiVersion": ChildKind::Prometheus.api_version(), "kind": "Prometheus",
            "metadata": {"name": CUSTOMER, "namespace": CHILD_NS},
            "spec": {"replicas": 1},
        });
        let params = PatchParams::apply(FIGHTER).force();
        let writes = AtomicU32::new(0);
        while !stop.load(Ordering::SeqCst) {
            if replicas(&prom).await? != Some(1) {
                api.patch(CUSTOMER, &params, &Patch::Apply(&body)).await?;
                writes.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(writes.load(Ordering::SeqCst))
    })
}

/// The message of the stack's Prometheus child in its status.
async fn prometheus_message(hub: &Client) -> anyhow::Result<String> {
    let stack = stacks(hub, NS).get(STACK).await?;
    Ok(stack
        .status
        .iter()
        .flat_map(|s| s.children.iter())
        .find(|c| c.kind == "Prometheus")
        .map(|c| c.message.clone())
        .unwrap_or_default())
}

async fn contested_field(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    apply_stack(&hub, NS, &stack_manifest(STACK, CUSTOMER, json!({}))).await?;
    wait_ready(&hub, NS, STACK).await?;
    ensure!(replicas(&prom).await? == Some(2), "planned: 2 replicas");

    let calls = OPERATOR_CALLS.get().context("the operator's counter")?;
    let patches = |counts: &_| {
        total(counts, |k| {
            k.cluster == "prometheus-1" && k.verb == Verb::Patch
        })
    };
    let refused = |counts: &_| {
        total(counts, |k| {
            k.cluster == "prometheus-1"
                && k.verb == Verb::Patch
                && k.outcome == CallOutcome::ClientError
        })
    };
    let before = calls.snapshot();
    let stop = Arc::new(AtomicBool::new(false));
    let fight = fighter(prom.clone(), Arc::clone(&stop));
    let started = tokio::time::Instant::now();

    // While they fight, the child's status says what is going on.
    let mut contest_message = None;
    let mut last_message = String::new();
    while started.elapsed() < FIGHT {
        if contest_message.is_none() {
            last_message = prometheus_message(&hub).await?;
            if last_message.contains("being changed by") {
                contest_message = Some(last_message.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let during = delta(&before, &calls.snapshot());
    stop.store(true, Ordering::SeqCst);
    let fighter_writes = fight.await??;

    // Restored at once (the first drift), then after 15 s, after 30 s more, (after 60 s more):
    // 3 or 4 writes in 70 s, plus one dry run that asks who the other writer is. Without the
    // backoff every write of the fighter is answered with a restore: dozens.
    let written = patches(&during);
    ensure!(
        (2..=6).contains(&written),
        "{written} PATCHes of the Prometheus in {} s (the fighter wrote {fighter_writes} times)",
        FIGHT.as_secs()
    );
    ensure!(
        refused(&during) <= 1,
        "one dry run per episode at most: {during:?}"
    );
    ensure!(
        fighter_writes >= 2,
        "the fighter wrote {fighter_writes} times: it never fought"
    );
    let events = event_counts(&hub).await?;
    ensure!(
        occurrences(&events, "FieldContested") == 1,
        "one FieldContested Event for the episode: {events:?}"
    );
    ensure!(
        occurrences(&events, "DriftCorrected") <= 1,
        "no DriftCorrected per restore: {events:?}"
    );
    let Some(contest_message) = contest_message else {
        bail!("the Prometheus child never said it is contested; last: {last_message}");
    };
    ensure!(
        contest_message.contains("spec.replicas")
            && contest_message.contains(FIGHTER)
            && contest_message.contains("stacksmith restores it in"),
        "the child's message: {contest_message}"
    );
    let note = events
        .iter()
        .find(|(r, _, _)| r == "FieldContested")
        .map(|(_, _, note)| note.clone())
        .unwrap_or_default();
    ensure!(
        note.contains(&format!("Prometheus {CHILD_NS}/{CUSTOMER} on prometheus-1"))
            && note.contains("spec.replicas")
            && note.contains(&format!("field manager \"{FIGHTER}\"")),
        "the Event names the object, the field and the other writer: {note}"
    );

    // The fighter has stopped: the field is restored when the current wait ends (at most 60 s
    // after a fight this long, 120 s if a fourth round started; plus the loaded machine).
    wait_until(
        "spec.replicas restored to 2",
        Duration::from_secs(150),
        || async { Ok(replicas(&prom).await? == Some(2)) },
    )
    .await?;
    let restored_after = started.elapsed();
    wait_ready(&hub, NS, STACK).await?;
    // The stack stayed Ready through the fight (the Prometheus is healthy), and the member shows
    // the restore before the hub shows the status of the pass that wrote it: the message moves
    // on once that status is written.
    wait_until(
        "the child's message moved on from the contest",
        Duration::from_secs(30),
        || async { Ok(!prometheus_message(&hub).await?.contains("being changed by")) },
    )
    .await
    .with_context(|| {
        format!("the child's message moved on (replicas restored {restored_after:?} after the fight began)")
    })?;
    let events = event_counts(&hub).await?;
    ensure!(
        occurrences(&events, "FieldContested") == 1 && occurrences(&events, "DriftCorrected") <= 1,
        "nothing more recorded for the same episode: {events:?}"
    );
    eprintln!(
        "contested field: {written} PATCHes, {fighter_writes} fighter writes in {} s; restored {} s after the fight began",
        FIGHT.as_secs(),
        restored_after.as_secs()
    );
    Ok(())
}

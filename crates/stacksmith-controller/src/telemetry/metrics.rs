//! The operator's own metrics, in the Prometheus text exposition format (version 0.0.4).
//!
//! Reconcile counts and durations are recorded as they happen ([`ReconcileMetrics`]); everything
//! else is read when scraped: stacks by Ready state and children by verdict from the hub watch
//! cache (the aggregated status), reachability from the fleet, API requests from the counting
//! layer on every client. [`render`] turns a [`MetricsSnapshot`] into text and is pure.
//!
//! The text is written by `prometheus-client`: the snapshot is a [`Collector`] of a registry
//! built per scrape, its families are declared through the library's descriptor encoder and its
//! samples are the library's const metrics, so names, label escaping, histogram buckets and
//! number formatting are the library's. The encoder is `prometheus_text` (version 0.0.4), not
//! the OpenMetrics one: with it a counter's `# TYPE` line keeps the `_total` name, the text has
//! no `# EOF`, and the `Content-Type` the endpoint serves stays `text/plain; version=0.0.4`. A
//! collector declares every family even when it has no sample yet (a registered `Family` with no
//! member is left out), so `stacksmith_reconcile_errors_total` is typed before the first error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use stacksmith_api::CustomerStack;
use stacksmith_core::aggregate::condition_type;

use super::api_calls::CallKey;

/// Upper bounds (seconds) of the reconcile duration histogram.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// Counts and durations of reconciles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReconcileCounts {
    /// Reconciles that finished without error.
    pub succeeded: u64,
    /// Failed reconciles by error category (a bounded set, see `ReconcileError::category`).
    pub failed: BTreeMap<&'static str, u64>,
    /// Per bucket of [`DURATION_BUCKETS`]: reconciles that took at most that long (not cumulative).
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Sum of all durations, in seconds.
    pub duration_sum: f64,
    /// Number of durations observed.
    pub duration_count: u64,
    /// Reconciles this replica ran, by the shard of their stack (a stack whose shard it does
    /// not hold is not counted: it is not reconciled here).
    pub by_shard: BTreeMap<u16, u64>,
}

impl ReconcileCounts {
    fn observe(&mut self, duration: Duration, error_category: Option<&'static str>) {
        match error_category {
            None => self.succeeded += 1,
            Some(category) => *self.failed.entry(category).or_insert(0) += 1,
        }
        let seconds = duration.as_secs_f64();
        if let Some(slot) = DURATION_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[slot] += 1;
        }
        self.duration_sum += seconds;
        self.duration_count += 1;
    }
}

/// Where reconciles are recorded (shared by every reconcile of one operator).
#[derive(Clone, Debug, Default)]
pub struct ReconcileMetrics {
    counts: Arc<Mutex<ReconcileCounts>>,
}

impl ReconcileMetrics {
    /// Records one finished reconcile; `error_category` is `None` when it succeeded.
    pub fn observe(&self, duration: Duration, error_category: Option<&'static str>) {
        crate::locks::lock(&self.counts).observe(duration, error_category)
    }

    /// Records that a reconcile of a stack of `shard` starts on this replica.
    pub fn entered_shard(&self, shard: u16) {
        *crate::locks::lock(&self.counts)
            .by_shard
            .entry(shard)
            .or_insert(0) += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> ReconcileCounts {
        crate::locks::lock(&self.counts).clone()
    }
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// The operator's version.
    pub version: String,
    /// Reconciles.
    pub reconciles: ReconcileCounts,
    /// Stacks by the status of their Ready condition (`True`, `False`, `Unknown`).
    pub stacks_by_ready: BTreeMap<String, u64>,
    /// Children by (kind, verdict), as the stacks' aggregated status reports them.
    pub children: BTreeMap<(String, String), u64>,
    /// One entry per stack: whether it is Ready and its children by verdict (so ops can alert on
    /// "customer X is down"; one series per stack and one per verdict it has).
    pub per_stack: Vec<StackSample>,
    /// Registered member clusters: whether each is reachable.
    pub member_reachable: BTreeMap<String, bool>,
    /// API requests by cluster, verb and outcome.
    pub api_calls: BTreeMap<CallKey, u64>,
    /// Objects on the hub that do not deserialize into stacksmith's types, by kind
    /// (`CustomerStack`, `MemberCluster`); every kind is present, at 0 when none.
    pub invalid_objects: BTreeMap<String, u64>,
    /// This replica's name in the Leases (`None`: it runs alone, without Leases).
    pub replica: Option<String>,
    /// The shard count, and the shards this replica holds.
    pub shards: u16,
    /// The shards this replica holds now.
    pub shards_held: std::collections::BTreeSet<u16>,
}

/// What the per-stack families show of one stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackSample {
    /// The stack's namespace.
    pub namespace: String,
    /// The stack's name.
    pub name: String,
    /// `spec.customer`.
    pub customer: String,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// Its children by verdict (only the verdicts it has).
    pub children: BTreeMap<String, u64>,
}

impl MetricsSnapshot {
    /// Counts `stacks` by Ready state and their children by kind and verdict. Every Ready state
    /// is present (at 0) so that a dashboard sees the series before the first stack.
    pub fn count_stacks<'a>(&mut self, stacks: impl IntoIterator<Item = &'a CustomerStack>) {
        for state in ["True", "False", "Unknown"] {
            self.stacks_by_ready.entry(state.to_owned()).or_insert(0);
        }
        for stack in stacks {
            let status = stack.status.as_ref();
            let ready = status
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == condition_type::READY)
                })
                .map(|c| c.status.as_str())
                .filter(|s| matches!(*s, "True" | "False"))
                .unwrap_or("Unknown");
            *self.stacks_by_ready.entry(ready.to_owned()).or_insert(0) += 1;
            let mut sample = StackSample {
                namespace: stack.metadata.namespace.clone().unwrap_or_default(),
                name: stack.metadata.name.clone().unwrap_or_default(),
                customer: stack.spec.customer.clone(),
                ready: ready == "True",
                children: BTreeMap::new(),
            };
            for child in status.map(|s| s.children.as_slice()).unwrap_or_default() {
                let verdict = child.verdict.as_str().to_owned();
                *sample.children.entry(verdict.clone()).or_insert(0) += 1;
                *self
                    .children
                    .entry((child.kind.clone(), verdict))
                    .or_insert(0) += 1;
            }
            self.per_stack.push(sample);
        }
    }
}

/// The snapshot in the Prometheus text exposition format (version 0.0.4), the body of a scrape.
///
/// Encoding into a `String` cannot fail; should the library report an error anyway, it is logged
/// and the body is empty rather than cut off in the middle of a line.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut text = String::new();
    match prometheus_text::encode(&mut text, &registry) {
        Ok(()) => text,
        Err(fmt::Error) => {
            tracing::error!("encoding the metrics failed");
            String::new()
        }
    }
}

/// The snapshot as a `prometheus-client` collector (private, so that the library stays out of
/// this crate's API).
#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

// The label sets, in the order their labels are written. The derive takes no lifetime, so a
// value read from the snapshot is copied into its label set.

#[derive(EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

#[derive(EncodeLabelSet)]
struct ReadyLabel {
    ready: String,
}

#[derive(EncodeLabelSet)]
struct ChildLabels {
    kind: String,
    verdict: String,
}

#[derive(EncodeLabelSet)]
struct StackLabels {
    namespace: String,
    name: String,
    customer: String,
}

#[derive(EncodeLabelSet)]
struct StackVerdictLabels {
    namespace: String,
    name: String,
    verdict: String,
}

#[derive(EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(EncodeLabelSet)]
struct RequestLabels {
    cluster: String,
    verb: &'static str,
    outcome: &'static str,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = &self.0;
        encode_build_info(&mut encoder, &snapshot.version)?;
        encode_reconciles(&mut encoder, &snapshot.reconciles)?;
        encode_stacks(&mut encoder, snapshot)?;
        encode_shards(&mut encoder, snapshot)?;
        encode_clusters(&mut encoder, snapshot)
    }
}

/// `stacksmith_build_info`: the running version.
fn encode_build_info(encoder: &mut DescriptorEncoder, version: &str) -> Result<(), fmt::Error> {
    family(
        encoder,
        "stacksmith_build_info",
        "The running stacksmith version.",
        [(
            VersionLabel {
                version: version.to_owned(),
            },
            ConstGauge::new(1),
        )],
    )
}

/// The reconcile families: counts by result, errors by category and the duration histogram.
fn encode_reconciles(
    encoder: &mut DescriptorEncoder,
    reconciles: &ReconcileCounts,
) -> Result<(), fmt::Error> {
    // Counters are named without `_total`: the encoder appends it, to the `# TYPE` line too.
    let failed: u64 = reconciles.failed.values().sum();
    family(
        encoder,
        "stacksmith_reconciles",
        "Finished reconciles of CustomerStacks by result.",
        [("success", reconciles.succeeded), ("error", failed)]
            .map(|(result, count)| (ResultLabel { result }, ConstCounter::new(count))),
    )?;
    family(
        encoder,
        "stacksmith_reconcile_errors",
        "Failed reconciles by error category.",
        reconciles
            .failed
            .iter()
            .map(|(category, count)| (CategoryLabel { category }, ConstCounter::new(*count))),
    )?;
    encode_reconcile_durations(encoder, reconciles)
}

/// `stacksmith_reconcile_duration_seconds`, the histogram of reconcile durations.
fn encode_reconcile_durations(
    encoder: &mut DescriptorEncoder,
    reconciles: &ReconcileCounts,
) -> Result<(), fmt::Error> {
    // `prometheus-client` has no const histogram: the snapshot's buckets go to the encoder,
    // which makes them cumulative and adds `+Inf`, `_sum` and `_count`.
    let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
        .into_iter()
        .zip(reconciles.buckets)
        .collect();
    encoder
        .encode_descriptor(
            "stacksmith_reconcile_duration_seconds",
            "How long reconciles of CustomerStacks took.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            reconciles.duration_sum,
            reconciles.duration_count,
            &buckets,
            None,
        )
}

/// The stack families: stacks by Ready state and children by kind and verdict.
fn encode_stacks(
    encoder: &mut DescriptorEncoder,
    snapshot: &MetricsSnapshot,
) -> Result<(), fmt::Error> {
    family(
        encoder,
        "stacksmith_stacks",
        "CustomerStacks by the status of their Ready condition.",
        snapshot.stacks_by_ready.iter().map(|(ready, count)| {
            (
                ReadyLabel {
                    ready: ready.clone(),
                },
                ConstGauge::new(*count),
            )
        }),
    )?;
    family(
        encoder,
        "stacksmith_children",
        "Child objects by kind and health verdict, as the stacks' status reports them.",
        snapshot.children.iter().map(|((kind, verdict), count)| {
            (
                ChildLabels {
                    kind: kind.clone(),
                    verdict: verdict.clone(),
                },
                ConstGauge::new(*count),
            )
        }),
    )?;
    family(
        encoder,
        "stacksmith_stack_ready",
        "Whether a CustomerStack is Ready (1) or not (0), one series per stack.",
        snapshot.per_stack.iter().map(|stack| {
            (
                StackLabels {
                    namespace: stack.namespace.clone(),
                    name: stack.name.clone(),
                    customer: stack.customer.clone(),
                },
                ConstGauge::new(u64::from(stack.ready)),
            )
        }),
    )?;
    family(
        encoder,
        "stacksmith_stack_children",
        "A CustomerStack's children by health verdict (only the verdicts it has).",
        snapshot.per_stack.iter().flat_map(|stack| {
            stack.children.iter().map(|(verdict, count)| {
                (
                    StackVerdictLabels {
                        namespace: stack.namespace.clone(),
                        name: stack.name.clone(),
                        verdict: verdict.clone(),
                    },
                    ConstGauge::new(*count),
                )
            })
        }),
    )
}

#[derive(EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

#[derive(EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

/// The shard families: this replica's name, which shards it holds, and the reconciles it ran
/// per shard.
fn encode_shards(
    encoder: &mut DescriptorEncoder,
    snapshot: &MetricsSnapshot,
) -> Result<(), fmt::Error> {
    family(
        encoder,
        "stacksmith_replica_info",
        "This replica's name in the shard Leases (empty: one replica without Leases).",
        [(
            ReplicaLabel {
                replica: snapshot.replica.clone().unwrap_or_default(),
            },
            ConstGauge::new(1),
        )],
    )?;
    family(
        encoder,
        "stacksmith_shard_held",
        "Whether this replica holds a shard (1) or not (0), one series per shard.",
        (0..snapshot.shards.max(1)).map(|shard| {
            (
                ShardLabel {
                    shard: shard.to_string(),
                },
                ConstGauge::new(u64::from(snapshot.shards_held.contains(&shard))),
            )
        }),
    )?;
    family(
        encoder,
        "stacksmith_shard_reconciles",
        "Reconciles this replica ran, by the shard of their stack.",
        snapshot.reconciles.by_shard.iter().map(|(shard, count)| {
            (
                ShardLabel {
                    shard: shard.to_string(),
                },
                ConstCounter::new(*count),
            )
        }),
    )
}

/// The cluster families: member reachability, API requests and unreadable hub objects.
fn encode_clusters(
    encoder: &mut DescriptorEncoder,
    snapshot: &MetricsSnapshot,
) -> Result<(), fmt::Error> {
    family(
        encoder,
        "stacksmith_member_cluster_reachable",
        "Whether a registered member cluster is connected and answers (1) or not (0).",
        snapshot
            .member_reachable
            .iter()
            .map(|(cluster, reachable)| {
                (
                    ClusterLabel {
                        cluster: cluster.clone(),
                    },
                    ConstGauge::new(u64::from(*reachable)),
                )
            }),
    )?;
    family(
        encoder,
        "stacksmith_api_requests",
        "API requests the operator made, counted on every client, by cluster, verb and outcome.",
        snapshot.api_calls.iter().map(|(key, count)| {
            (
                RequestLabels {
                    cluster: key.cluster.clone(),
                    verb: key.verb.as_str(),
                    outcome: key.outcome.as_str(),
                },
                ConstCounter::new(*count),
            )
        }),
    )?;
    family(
        encoder,
        "stacksmith_invalid_objects",
        "Objects on the hub that do not deserialize into stacksmith's types, by kind: they are left alone (see their Events).",
        snapshot
            .invalid_objects
            .iter()
            .map(|(kind, count)| (KindLabel { kind: kind.clone() }, ConstGauge::new(*count))),
    )
}

/// Declares the family `name` (its type is the metrics' type) and encodes its samples, in the
/// order given; the family is declared even when it has no sample.
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), fmt::Error>
where
    L: EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::api_calls::{CallOutcome, Verb};

    fn stack(ready: Option<&str>, verdicts: &[(&str, &str)]) -> CustomerStack {
        let mut value = serde_json::json!({
            "apiVersion": "stacksmith.io/v1alpha1",
            "kind": "CustomerStack",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"customer": "c",
                "metrics": {"cluster": "p"},
                "dashboards": {"cluster": "g", "instanceSelector": {}}},
        });
        if let Some(ready) = ready {
            let children: Vec<_> = verdicts
                .iter()
                .map(|(kind, verdict)| {
                    serde_json::json!({"cluster": "m", "kind": kind, "name": "x",
                        "verdict": verdict, "reason": "R"})
                })
                .collect();
            value["status"] = serde_json::json!({
                "conditions": [{"type": "Ready", "status": ready, "reason": "R", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "children": children,
            });
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn stacks_are_counted_by_ready_and_children_by_kind_and_verdict() {
        let stacks = [
            stack(Some("True"), &[("Prometheus", "Healthy")]),
            stack(
                Some("False"),
                &[("Prometheus", "Degraded"), ("GrafanaFolder", "Healthy")],
            ),
            stack(None, &[]),
        ];
        let mut snapshot = MetricsSnapshot::default();
        snapshot.count_stacks(&stacks);
        assert_eq!(
            snapshot.stacks_by_ready,
            BTreeMap::from([
                ("True".to_owned(), 1),
                ("False".to_owned(), 1),
                ("Unknown".to_owned(), 1),
            ])
        );
        assert_eq!(snapshot.children.len(), 3);
        assert_eq!(
            snapshot.children[&("Prometheus".to_owned(), "Degraded".to_owned())],
            1
        );
        let ready: Vec<bool> = snapshot.per_stack.iter().map(|s| s.ready).collect();
        assert_eq!(ready, [true, false, false]);
        assert_eq!(
            snapshot.per_stack[1].children,
            BTreeMap::from([("Degraded".to_owned(), 1), ("Healthy".to_owned(), 1)])
        );
        assert!(snapshot.per_stack[2].children.is_empty());
    }

    #[test]
    fn each_stack_has_its_ready_series_and_one_per_verdict_it_has() {
        let mut degraded = stack(
            Some("False"),
            &[("Prometheus", "Degraded"), ("GrafanaFolder", "Healthy")],
        );
        degraded.metadata.namespace = Some("team-a".into());
        degraded.metadata.name = Some("acme".into());
        degraded.spec.customer = "acme".into();
        let mut snapshot = MetricsSnapshot::default();
        snapshot.count_stacks([&degraded]);
        let text = render(&snapshot);
        assert!(
            text.contains(
                "stacksmith_stack_ready{namespace=\"team-a\",name=\"acme\",customer=\"acme\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("stacksmith_stack_children{namespace=\"team-a\",name=\"acme\",verdict=\"Degraded\"} 1\n"),
            "{text}"
        );
        assert!(
            !text.contains("verdict=\"Unknown\""),
            "no series for a verdict the stack does not have: {text}"
        );
    }

    /// A snapshot with a sample in every family.
    fn full_snapshot() -> MetricsSnapshot {
        let metrics = ReconcileMetrics::default();
        metrics.observe(Duration::from_millis(3), None);
        metrics.observe(Duration::from_millis(1500), None);
        metrics.observe(Duration::from_secs(100), Some("timeout"));
        metrics.observe(Duration::from_millis(20), Some("status_write"));
        for _ in 0..3 {
            metrics.entered_shard(1);
        }
        let mut snapshot = MetricsSnapshot {
            replica: Some("r1".into()),
            shards: 2,
            shards_held: std::collections::BTreeSet::from([1]),
            version: "1.2.3".into(),
            reconciles: metrics.snapshot(),
            member_reachable: BTreeMap::from([("p1".to_owned(), true), ("g1".to_owned(), false)]),
            api_calls: BTreeMap::from([
                (
                    CallKey {
                        cluster: "hub".into(),
                        verb: Verb::Watch,
                        outcome: CallOutcome::Success,
                    },
                    4,
                ),
                (
                    CallKey {
                        cluster: "p1".into(),
                        verb: Verb::Patch,
                        outcome: CallOutcome::ClientError,
                    },
                    1,
                ),
            ]),
            invalid_objects: BTreeMap::from([
                ("CustomerStack".to_owned(), 1),
                ("MemberCluster".to_owned(), 0),
            ]),
            ..MetricsSnapshot::default()
        };
        let mut degraded = stack(Some("False"), &[("GrafanaFolder", "Degraded")]);
        degraded.metadata.name = Some("t".into());
        degraded.spec.customer = "d".into();
        snapshot.count_stacks(&[stack(Some("True"), &[("Prometheus", "Healthy")]), degraded]);
        snapshot
    }

    /// What a scraper sees: names, types, labels, values and their order, byte for byte what the
    /// hand-written renderer wrote before `prometheus-client` (compared when it was replaced; the
    /// one difference is that an empty histogram's `_sum` reads `0.0`, no longer `0`).
    #[test]
    fn exposition_names_labels_and_values_are_unchanged() {
        let expected = [
            "# HELP stacksmith_build_info The running stacksmith version.\n",
            "# TYPE stacksmith_build_info gauge\n",
            "stacksmith_build_info{version=\"1.2.3\"} 1\n",
            "# HELP stacksmith_reconciles_total Finished reconciles of CustomerStacks by result.\n",
            "# TYPE stacksmith_reconciles_total counter\n",
            "stacksmith_reconciles_total{result=\"success\"} 2\n",
            "stacksmith_reconciles_total{result=\"error\"} 2\n",
            "# HELP stacksmith_reconcile_errors_total Failed reconciles by error category.\n",
            "# TYPE stacksmith_reconcile_errors_total counter\n",
            "stacksmith_reconcile_errors_total{category=\"status_write\"} 1\n",
            "stacksmith_reconcile_errors_total{category=\"timeout\"} 1\n",
            "# HELP stacksmith_reconcile_duration_seconds How long reconciles of CustomerStacks took.\n",
            "# TYPE stacksmith_reconcile_duration_seconds histogram\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.001\"} 0\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.01\"} 1\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.025\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.05\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.1\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.25\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"1\"} 2\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"2.5\"} 3\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"10\"} 3\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"60\"} 3\n",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"+Inf\"} 4\n",
            "stacksmith_reconcile_duration_seconds_sum 101.523\n",
            "stacksmith_reconcile_duration_seconds_count 4\n",
            "# HELP stacksmith_stacks CustomerStacks by the status of their Ready condition.\n",
            "# TYPE stacksmith_stacks gauge\n",
            "stacksmith_stacks{ready=\"False\"} 1\n",
            "stacksmith_stacks{ready=\"True\"} 1\n",
            "stacksmith_stacks{ready=\"Unknown\"} 0\n",
            "# HELP stacksmith_children Child objects by kind and health verdict, as the stacks' status reports them.\n",
            "# TYPE stacksmith_children gauge\n",
            "stacksmith_children{kind=\"GrafanaFolder\",verdict=\"Degraded\"} 1\n",
            "stacksmith_children{kind=\"Prometheus\",verdict=\"Healthy\"} 1\n",
            "# HELP stacksmith_stack_ready Whether a CustomerStack is Ready (1) or not (0), one series per stack.\n",
            "# TYPE stacksmith_stack_ready gauge\n",
            "stacksmith_stack_ready{namespace=\"n\",name=\"s\",customer=\"c\"} 1\n",
            "stacksmith_stack_ready{namespace=\"n\",name=\"t\",customer=\"d\"} 0\n",
            "# HELP stacksmith_stack_children A CustomerStack's children by health verdict (only the verdicts it has).\n",
            "# TYPE stacksmith_stack_children gauge\n",
            "stacksmith_stack_children{namespace=\"n\",name=\"s\",verdict=\"Healthy\"} 1\n",
            "stacksmith_stack_children{namespace=\"n\",name=\"t\",verdict=\"Degraded\"} 1\n",
            "# HELP stacksmith_replica_info This replica's name in the shard Leases (empty: one replica without Leases).\n",
            "# TYPE stacksmith_replica_info gauge\n",
            "stacksmith_replica_info{replica=\"r1\"} 1\n",
            "# HELP stacksmith_shard_held Whether this replica holds a shard (1) or not (0), one series per shard.\n",
            "# TYPE stacksmith_shard_held gauge\n",
            "stacksmith_shard_held{shard=\"0\"} 0\n",
            "stacksmith_shard_held{shard=\"1\"} 1\n",
            "# HELP stacksmith_shard_reconciles_total Reconciles this replica ran, by the shard of their stack.\n",
            "# TYPE stacksmith_shard_reconciles_total counter\n",
            "stacksmith_shard_reconciles_total{shard=\"1\"} 3\n",
            "# HELP stacksmith_member_cluster_reachable Whether a registered member cluster is connected and answers (1) or not (0).\n",
            "# TYPE stacksmith_member_cluster_reachable gauge\n",
            "stacksmith_member_cluster_reachable{cluster=\"g1\"} 0\n",
            "stacksmith_member_cluster_reachable{cluster=\"p1\"} 1\n",
            "# HELP stacksmith_api_requests_total API requests the operator made, counted on every client, by cluster, verb and outcome.\n",
            "# TYPE stacksmith_api_requests_total counter\n",
            "stacksmith_api_requests_total{cluster=\"hub\",verb=\"watch\",outcome=\"success\"} 4\n",
            "stacksmith_api_requests_total{cluster=\"p1\",verb=\"patch\",outcome=\"client_error\"} 1\n",
            "# HELP stacksmith_invalid_objects Objects on the hub that do not deserialize into stacksmith's types, by kind: they are left alone (see their Events).\n",
            "# TYPE stacksmith_invalid_objects gauge\n",
            "stacksmith_invalid_objects{kind=\"CustomerStack\"} 1\n",
            "stacksmith_invalid_objects{kind=\"MemberCluster\"} 0\n",
        ]
        .concat();
        assert_eq!(render(&full_snapshot()), expected);
    }

    /// A sample: name, labels (unescaped), value.
    type Sample = (String, Vec<(String, String)>, f64);

    fn is_name(name: &str, colon: bool) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// Parses the text format 0.0.4 strictly: `# HELP` and `# TYPE` lines (no other comment, so
    /// neither OpenMetrics' `# EOF` nor `# UNIT`), samples `name{label="value",...} value` whose
    /// label values use only the escapes `\\`, `\"` and `\n`, each sample in a family typed
    /// before it. Returns the families' types and the samples.
    fn parse(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>), String> {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        let body = text.strip_suffix('\n').ok_or("no final line feed")?;
        for line in body.split('\n') {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _help) = rest.split_once(' ').ok_or(format!("bad HELP: {line}"))?;
                if !is_name(name, true) {
                    return Err(format!("bad HELP: {line}"));
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
                let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                if !is_name(name, true) || !known.contains(&kind) {
                    return Err(format!("bad TYPE: {line}"));
                }
                if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(format!("family typed twice: {line}"));
                }
            } else if line.starts_with('#') {
                return Err(format!("unexpected comment: {line}"));
            } else {
                let sample = parse_sample(line).map_err(|err| format!("{err}: {line:?}"))?;
                let (name, labels, _) = &sample;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix)
                            .filter(|family| types.get(*family).is_some_and(|t| t == "histogram"))
                    })
                    .unwrap_or(name);
                let kind = types
                    .get(family)
                    .ok_or(format!("{name} has no TYPE line before it"))?;
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter {name} does not end in _total"));
                }
                if name.ends_with("_bucket") && kind == "histogram" {
                    labels
                        .iter()
                        .find(|(key, _)| key == "le")
                        .ok_or(format!("bucket without le: {line}"))?;
                }
                samples.push(sample);
            }
        }
        Ok((types, samples))
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let end = line.find(['{', ' ']).ok_or("no value")?;
        let (name, rest) = line.split_at(end);
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut chars = rest.chars().peekable();
        let mut labels = Vec::new();
        if chars.next_if_eq(&'{').is_some() && chars.next_if_eq(&'}').is_none() {
            loop {
                let mut key = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    key.push(c);
                }
                if !is_name(&key, false) || labels.iter().any(|(k, _)| *k == key) {
                    return Err(format!("bad or repeated label name {key:?}"));
                }
                if chars.next() != Some('=') || chars.next() != Some('"') {
                    return Err(format!("no =\" after {key}"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated label value")? {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape \\{other:?}")),
                        },
                        c => value.push(c),
                    }
                }
                labels.push((key, value));
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    other => return Err(format!("{other:?} after a label")),
                }
            }
        }
        if chars.next() != Some(' ') {
            return Err("no space before the value".into());
        }
        let value: String = chars.collect();
        let value = value.parse().map_err(|_| format!("bad value {value:?}"))?;
        Ok((name.to_owned(), labels, value))
    }

    #[test]
    fn the_parser_rejects_broken_exposition() {
        for broken in [
            "m 1\n",
            "# TYPE m gauge\nm{a=\"b\"c\"} 1\n",
            "# TYPE m gauge\nm{a=\"b\nc\"} 1\n",
            "# TYPE m gauge\nm{a=\"b\\x\"} 1\n",
            "# TYPE m gauge\nm{a=\"b\",} 1\n",
            "# TYPE m gauge\nm{a=\"b\",a=\"c\"} 1\n",
            "# TYPE m gauge\nm one\n",
            "# TYPE m counter\nm 1\n",
            "# TYPE m gauge\nm 1\n# EOF\n",
            "# TYPE m gauge\nm 1",
        ] {
            assert!(parse(broken).is_err(), "accepted {broken:?}");
        }
        assert!(parse("# TYPE m gauge\nm{a=\"\\\"\\\\\\n\"} 1\nm 2\n").is_ok());
    }

    #[test]
    fn every_family_is_declared_with_its_type_even_without_samples() {
        let (types, samples) = parse(&render(&MetricsSnapshot::default())).unwrap();
        let expected: BTreeMap<String, String> = [
            ("stacksmith_build_info", "gauge"),
            ("stacksmith_reconciles_total", "counter"),
            ("stacksmith_reconcile_errors_total", "counter"),
            ("stacksmith_reconcile_duration_seconds", "histogram"),
            ("stacksmith_stacks", "gauge"),
            ("stacksmith_children", "gauge"),
            ("stacksmith_stack_ready", "gauge"),
            ("stacksmith_stack_children", "gauge"),
            ("stacksmith_replica_info", "gauge"),
            ("stacksmith_shard_held", "gauge"),
            ("stacksmith_shard_reconciles_total", "counter"),
            ("stacksmith_member_cluster_reachable", "gauge"),
            ("stacksmith_api_requests_total", "counter"),
            ("stacksmith_invalid_objects", "gauge"),
        ]
        .into_iter()
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect();
        assert_eq!(types, expected);
        // build_info, the two results, 12 buckets, +Inf, _sum and _count, the replica's name and
        // whether it holds shard 0.
        assert_eq!(samples.len(), 1 + 2 + 12 + 3 + 2);
    }

    #[test]
    fn output_is_valid_exposition_whatever_the_label_values() {
        let hostile = [
            "quote\"d",
            "back\\slash",
            "new\nline",
            "trailing\\",
            "\\\"",
            "{brace},comma=\"eq\"",
            "x\"} 1\nstacksmith_injected 1\n#",
            "crlf\r\n",
            "tab\tand ünïcode ☃",
            "",
        ];
        let mut snapshot = full_snapshot();
        for (n, name) in hostile.iter().enumerate() {
            snapshot
                .member_reachable
                .insert((*name).to_owned(), n % 2 == 0);
            snapshot
                .children
                .insert(((*name).to_owned(), "Healthy".to_owned()), 1);
            snapshot.api_calls.insert(
                CallKey {
                    cluster: (*name).to_owned(),
                    verb: Verb::Get,
                    outcome: CallOutcome::Failed,
                },
                2,
            );
        }
        snapshot.version = "v\"1\"\\\n".into();
        let text = render(&snapshot);
        let (_, samples) = parse(&text).unwrap_or_else(|err| panic!("{err} in\n{text}"));
        assert!(
            !samples
                .iter()
                .any(|(name, ..)| name == "stacksmith_injected")
        );
        let labels_of = |family: &str, key: &str| -> Vec<String> {
            samples
                .iter()
                .filter(|(name, ..)| name == family)
                .flat_map(|(_, labels, _)| labels.iter().filter(|(k, _)| k == key))
                .map(|(_, value)| value.clone())
                .collect()
        };
        // Every label value reads back as it was, and no sample was lost or made up.
        for (family, key) in [
            ("stacksmith_member_cluster_reachable", "cluster"),
            ("stacksmith_children", "kind"),
            ("stacksmith_api_requests_total", "cluster"),
        ] {
            let read: std::collections::BTreeSet<String> =
                labels_of(family, key).into_iter().collect();
            for name in hostile {
                assert!(
                    read.contains(name),
                    "{family}{{{key}={name:?}}} lost in\n{text}"
                );
            }
        }
        assert_eq!(
            labels_of("stacksmith_member_cluster_reachable", "cluster").len(),
            12
        );
        assert_eq!(
            labels_of("stacksmith_build_info", "version"),
            ["v\"1\"\\\n"]
        );
        let value = |family: &str, key: &str, label: &str| {
            samples
                .iter()
                .find(|(name, labels, _)| {
                    name == family && labels.iter().any(|(k, v)| k == key && v == label)
                })
                .map(|(.., value)| *value)
        };
        assert_eq!(
            value("stacksmith_member_cluster_reachable", "cluster", hostile[6]),
            Some(1.0)
        );
        assert_eq!(
            value("stacksmith_member_cluster_reachable", "cluster", hostile[5]),
            Some(0.0)
        );
    }
}

//! The operator's own metrics, in the Prometheus text exposition format.
//!
//! Reconcile counts and durations are recorded as they happen ([`ReconcileMetrics`]); everything
//! else is read when scraped: stacks by Ready state and children by verdict from the hub watch
//! cache (the aggregated status), reachability from the fleet, API requests from the counting
//! layer on every client. [`render`] turns a [`MetricsSnapshot`] into text and is pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stacksmith_api::CustomerStack;

use crate::api_calls::CallKey;

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
        match self.counts.lock() {
            Ok(mut counts) => counts.observe(duration, error_category),
            Err(poisoned) => poisoned.into_inner().observe(duration, error_category),
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> ReconcileCounts {
        match self.counts.lock() {
            Ok(counts) => counts.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
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
    /// Registered member clusters: whether each is reachable.
    pub member_reachable: BTreeMap<String, bool>,
    /// API requests by cluster, verb and outcome.
    pub api_calls: BTreeMap<CallKey, u64>,
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
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status.as_str())
                .filter(|s| matches!(*s, "True" | "False"))
                .unwrap_or("Unknown");
            *self.stacks_by_ready.entry(ready.to_owned()).or_insert(0) += 1;
            for child in status.map(|s| s.children.as_slice()).unwrap_or_default() {
                let verdict = child.verdict.as_str().to_owned();
                *self
                    .children
                    .entry((child.kind.clone(), verdict))
                    .or_insert(0) += 1;
            }
        }
    }
}

/// The snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "stacksmith_build_info",
        "gauge",
        "The running stacksmith version.",
    );
    sample(
        &mut out,
        "stacksmith_build_info",
        &[("version", &snapshot.version)],
        1,
    );

    let reconciles = &snapshot.reconciles;
    family(
        &mut out,
        "stacksmith_reconciles_total",
        "counter",
        "Finished reconciles of CustomerStacks by result.",
    );
    let failed: u64 = reconciles.failed.values().sum();
    sample(
        &mut out,
        "stacksmith_reconciles_total",
        &[("result", "success")],
        reconciles.succeeded,
    );
    sample(
        &mut out,
        "stacksmith_reconciles_total",
        &[("result", "error")],
        failed,
    );
    family(
        &mut out,
        "stacksmith_reconcile_errors_total",
        "counter",
        "Failed reconciles by error category.",
    );
    for (category, count) in &reconciles.failed {
        sample(
            &mut out,
            "stacksmith_reconcile_errors_total",
            &[("category", category)],
            *count,
        );
    }
    family(
        &mut out,
        "stacksmith_reconcile_duration_seconds",
        "histogram",
        "How long reconciles of CustomerStacks took.",
    );
    let mut cumulative = 0;
    for (le, count) in DURATION_BUCKETS.iter().zip(reconciles.buckets) {
        cumulative += count;
        sample(
            &mut out,
            "stacksmith_reconcile_duration_seconds_bucket",
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    sample(
        &mut out,
        "stacksmith_reconcile_duration_seconds_bucket",
        &[("le", "+Inf")],
        reconciles.duration_count,
    );
    let _ = writeln!(
        out,
        "stacksmith_reconcile_duration_seconds_sum {}",
        reconciles.duration_sum
    );
    let _ = writeln!(
        out,
        "stacksmith_reconcile_duration_seconds_count {}",
        reconciles.duration_count
    );

    family(
        &mut out,
        "stacksmith_stacks",
        "gauge",
        "CustomerStacks by the status of their Ready condition.",
    );
    for (ready, count) in &snapshot.stacks_by_ready {
        sample(&mut out, "stacksmith_stacks", &[("ready", ready)], *count);
    }
    family(
        &mut out,
        "stacksmith_children",
        "gauge",
        "Child objects by kind and health verdict, as the stacks' status reports them.",
    );
    for ((kind, verdict), count) in &snapshot.children {
        sample(
            &mut out,
            "stacksmith_children",
            &[("kind", kind), ("verdict", verdict)],
            *count,
        );
    }
    family(
        &mut out,
        "stacksmith_member_cluster_reachable",
        "gauge",
        "Whether a registered member cluster is connected and answers (1) or not (0).",
    );
    for (cluster, reachable) in &snapshot.member_reachable {
        sample(
            &mut out,
            "stacksmith_member_cluster_reachable",
            &[("cluster", cluster)],
            u64::from(*reachable),
        );
    }
    family(
        &mut out,
        "stacksmith_api_requests_total",
        "counter",
        "API requests the operator made, counted on every client, by cluster, verb and outcome.",
    );
    for (key, count) in &snapshot.api_calls {
        sample(
            &mut out,
            "stacksmith_api_requests_total",
            &[
                ("cluster", &key.cluster),
                ("verb", key.verb.as_str()),
                ("outcome", key.outcome.as_str()),
            ],
            *count,
        );
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    let labels: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
        .collect();
    let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_calls::{CallOutcome, Verb};

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
    }

    #[test]
    fn histogram_is_cumulative_and_every_family_is_typed() {
        let metrics = ReconcileMetrics::default();
        metrics.observe(Duration::from_millis(3), None);
        metrics.observe(Duration::from_millis(40), None);
        metrics.observe(Duration::from_secs(100), Some("timeout"));
        let snapshot = MetricsSnapshot {
            version: "1.2.3".into(),
            reconciles: metrics.snapshot(),
            member_reachable: BTreeMap::from([("p1".to_owned(), true), ("g1".to_owned(), false)]),
            api_calls: BTreeMap::from([(
                CallKey {
                    cluster: "hub".into(),
                    verb: Verb::Patch,
                    outcome: CallOutcome::Success,
                },
                7,
            )]),
            ..MetricsSnapshot::default()
        };
        let text = render(&snapshot);
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "stacksmith_build_info{version=\"1.2.3\"} 1",
            "stacksmith_reconciles_total{result=\"success\"} 2",
            "stacksmith_reconciles_total{result=\"error\"} 1",
            "stacksmith_reconcile_errors_total{category=\"timeout\"} 1",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.001\"} 0",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"0.05\"} 2",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"60\"} 2",
            "stacksmith_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3",
            "stacksmith_reconcile_duration_seconds_count 3",
            "stacksmith_member_cluster_reachable{cluster=\"g1\"} 0",
            "stacksmith_member_cluster_reachable{cluster=\"p1\"} 1",
            "stacksmith_api_requests_total{cluster=\"hub\",verb=\"patch\",outcome=\"success\"} 7",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        // Every sample belongs to a family declared with # TYPE before it.
        let mut declared = Vec::new();
        for line in &lines {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert!(
                    declared
                        .iter()
                        .any(|family| name.starts_with(family.as_str())),
                    "{name} has no TYPE line"
                );
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

//! The status of each child: its verdict, reason and message from how it was observed, and the
//! times and last known verdict carried over from the previous status.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stacksmith_api::{ChildStatus, CustomerStackStatus, StackSummary, Verdict};

use super::{ChildObservation, ObservedState, reason};
use crate::health::ChildKind;

/// The end of an unreachable child's message when it was never seen.
const NEVER_OBSERVED: &str = "never observed";
/// What precedes the last known verdict in an unreachable child's message.
const LAST_KNOWN: &str = "last known: ";

/// One child's status, next to the observation it was made from.
#[derive(Clone, Debug)]
pub(super) struct Judged<'a> {
    /// What was observed.
    pub observation: &'a ChildObservation,
    /// What the status says about it.
    pub status: ChildStatus,
}

/// A child's identity in a status: (cluster, kind, namespace, name).
type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The status of every child, sorted by (cluster, kind, namespace, name).
pub(super) fn judge<'a>(
    children: &'a [ChildObservation],
    paused: bool,
    previous: Option<&CustomerStackStatus>,
    now: &Time,
) -> Vec<Judged<'a>> {
    let mut previous_by_key: BTreeMap<Key<'_>, &ChildStatus> = BTreeMap::new();
    for child in previous.map_or(&[][..], |p| p.children.as_slice()) {
        let key = (
            child.cluster.as_str(),
            child.kind.as_str(),
            child.namespace.as_str(),
            child.name.as_str(),
        );
        previous_by_key.entry(key).or_insert(child);
    }
    let mut sorted: Vec<&ChildObservation> = children.iter().collect();
    sorted.sort_by(|a, b| key(a).cmp(&key(b)));
    sorted
        .into_iter()
        .map(|observation| {
            let previous = previous_by_key.get(&key(observation)).copied();
            Judged {
                observation,
                status: child_status(observation, paused, previous, now),
            }
        })
        .collect()
}

/// The sort key of an observation.
fn key(child: &ChildObservation) -> Key<'_> {
    (
        child.cluster.as_str(),
        child.kind.as_str(),
        child.namespace.as_str(),
        child.name.as_str(),
    )
}

/// Counts of the children by verdict.
pub(super) fn summary(children: &[Judged<'_>]) -> StackSummary {
    let mut summary = StackSummary::default();
    for child in children {
        summary.total = summary.total.saturating_add(1);
        let count = match child.status.verdict {
            Verdict::Healthy => &mut summary.healthy,
            Verdict::Progressing => &mut summary.progressing,
            Verdict::Degraded => &mut summary.degraded,
            Verdict::Suspended => &mut summary.suspended,
            Verdict::Unknown => &mut summary.unknown,
        };
        *count = count.saturating_add(1);
    }
    summary
}

/// `Kind namespace/name` (or `Kind name` when cluster-scoped), the way [`crate::assess`] names
/// objects in its messages.
pub(super) fn subject(kind: ChildKind, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// The operator that reports on a kind.
fn operator(kind: ChildKind) -> &'static str {
    if kind.is_prometheus_operator() {
        "prometheus-operator"
    } else {
        "grafana-operator"
    }
}

/// Whether a previous status entry says the child's cluster could not be reached.
fn was_unreachable(previous: &ChildStatus) -> bool {
    previous.verdict == Verdict::Unknown && previous.reason == reason::CLUSTER_UNREACHABLE
}

/// One child's status.
fn child_status(
    child: &ChildObservation,
    paused: bool,
    previous: Option<&ChildStatus>,
    now: &Time,
) -> ChildStatus {
    let who = subject(child.kind, &child.namespace, &child.name);
    let cluster = &child.cluster;
    let (verdict, reason, message) = match &child.state {
        ObservedState::Live(health) => (
            health.verdict,
            health.reason.as_str(),
            health.message.clone(),
        ),
        ObservedState::Applying => (
            Verdict::Progressing,
            reason::APPLYING,
            format!("written; waiting for {} to report", operator(child.kind)),
        ),
        ObservedState::Missing if paused => (
            Verdict::Unknown,
            reason::PAUSED,
            "not created: the stack is paused".to_owned(),
        ),
        ObservedState::Missing => (
            Verdict::Progressing,
            reason::NOT_CREATED,
            "not created yet".to_owned(),
        ),
        ObservedState::ClusterUnreachable { message } => {
            return unreachable_status(child, message, previous);
        }
        ObservedState::Conflict { owner } => (
            Verdict::Degraded,
            reason::CONFLICT,
            format!(
                "{who} on {cluster} exists and belongs to {owner}; stacksmith will not overwrite it"
            ),
        ),
        ObservedState::ApplyFailed { message } => (
            Verdict::Degraded,
            reason::APPLY_FAILED,
            format!("writing {who} on {cluster} failed: {message}"),
        ),
    };
    let last_observed = previous
        .filter(|p| p.verdict == verdict && p.reason == reason && p.message == message)
        .and_then(|p| p.last_observed.clone())
        .unwrap_or_else(|| now.clone());
    ChildStatus {
        cluster: child.cluster.clone(),
        kind: child.kind.as_str().to_owned(),
        namespace: child.namespace.clone(),
        name: child.name.clone(),
        verdict,
        reason: reason.to_owned(),
        message,
        last_observed: Some(last_observed),
        last_known_verdict: None,
    }
}

/// The status of a child whose cluster cannot be reached: Unknown, with what was last known of
/// it (kept across passes while the cluster stays unreachable) and when it was last seen.
fn unreachable_status(
    child: &ChildObservation,
    message: &str,
    previous: Option<&ChildStatus>,
) -> ChildStatus {
    let (last_known_verdict, last_known) = match previous {
        None => (None, NEVER_OBSERVED.to_owned()),
        Some(p) if was_unreachable(p) => (p.last_known_verdict, carried_last_known(p)),
        Some(p) => (
            Some(p.verdict),
            format!("{LAST_KNOWN}{} ({})", p.verdict.as_str(), p.reason),
        ),
    };
    ChildStatus {
        cluster: child.cluster.clone(),
        kind: child.kind.as_str().to_owned(),
        namespace: child.namespace.clone(),
        name: child.name.clone(),
        verdict: Verdict::Unknown,
        reason: reason::CLUSTER_UNREACHABLE.to_owned(),
        message: format!(
            "cluster {} unreachable ({message}); {last_known}",
            child.cluster
        ),
        last_observed: previous.and_then(|p| p.last_observed.clone()),
        last_known_verdict,
    }
}

/// The `last known: …` (or `never observed`) part of a previous unreachable child's message, so
/// that it survives while the cluster stays unreachable.
fn carried_last_known(previous: &ChildStatus) -> String {
    let message = previous.message.as_str();
    if message.ends_with(&format!("; {NEVER_OBSERVED}")) {
        return NEVER_OBSERVED.to_owned();
    }
    let carried = message
        .rfind(&format!("; {LAST_KNOWN}"))
        .and_then(|at| message.get(at + 2..));
    match (carried, previous.last_known_verdict) {
        (Some(carried), _) => carried.to_owned(),
        (None, Some(verdict)) => format!("{LAST_KNOWN}{}", verdict.as_str()),
        (None, None) => NEVER_OBSERVED.to_owned(),
    }
}

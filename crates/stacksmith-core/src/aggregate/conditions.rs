//! The stack's conditions, before rendering: `Ready` with the root cause, `ChildrenApplied`,
//! `ClustersReachable` and, while deleting, `DeletionBlocked`.

use std::collections::BTreeMap;

use stacksmith_api::{StackSummary, Verdict};

use super::children::{Judged, subject};
use super::{
    AggregateInput, ClusterState, DeletionState, FailedObject, ForeignObject, ObservedState,
    SpecProblem, condition_type, reason,
};
use crate::health::ChildKind;
use crate::status_conditions::{ConditionState, ConditionStatus};

/// The conditions of the stack, in their output order.
pub(super) fn states(
    input: &AggregateInput<'_>,
    children: &[Judged<'_>],
    summary: &StackSummary,
) -> Vec<ConditionState> {
    let facts = Facts {
        input,
        children,
        summary,
        unreachable: unreachable_clusters(input, children),
    };
    let mut states = vec![
        facts.ready(),
        facts.children_applied(),
        facts.clusters_reachable(),
    ];
    if let Some(deletion) = input.deletion {
        states.push(deletion_blocked(deletion));
    }
    states
}

/// What the conditions are decided from.
struct Facts<'i, 'a> {
    input: &'i AggregateInput<'a>,
    children: &'i [Judged<'a>],
    summary: &'i StackSummary,
    /// Unreachable clusters and why, by name: those the cluster observations say are
    /// unreachable, plus any a child was reported unreachable in.
    unreachable: BTreeMap<&'i str, &'i str>,
}

/// The unreachable clusters and why, sorted by name.
fn unreachable_clusters<'i>(
    input: &AggregateInput<'i>,
    children: &[Judged<'i>],
) -> BTreeMap<&'i str, &'i str> {
    let mut unreachable = BTreeMap::new();
    for cluster in input.clusters {
        if let ClusterState::Unreachable { message } = &cluster.state {
            unreachable
                .entry(cluster.cluster.as_str())
                .or_insert(message.as_str());
        }
    }
    for child in children {
        if let ObservedState::ClusterUnreachable { message } = &child.observation.state {
            unreachable
                .entry(child.observation.cluster.as_str())
                .or_insert(message.as_str());
        }
    }
    unreachable
}

/// A condition state.
fn state(
    type_: &'static str,
    status: ConditionStatus,
    reason: &'static str,
    message: impl Into<String>,
) -> ConditionState {
    ConditionState {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

/// `<field>: <message>` of the first problem, and how many more there are.
fn spec_problems_message(problems: &[SpecProblem]) -> Option<String> {
    let (first, rest) = problems.split_first()?;
    let mut message = format!("{}: {}", first.field, first.message);
    if !rest.is_empty() {
        message.push_str(&format!(" (and {} more problems)", rest.len()));
    }
    Some(message)
}

/// Why deletion is blocked.
fn deletion_blocked_message(clusters: &[String]) -> String {
    if clusters.is_empty() {
        "deletion blocked: a member cluster is unreachable; its children are kept until it answers"
            .to_owned()
    } else {
        format!(
            "deletion blocked: cluster(s) {} unreachable; their children are kept until they answer",
            clusters.join(", ")
        )
    }
}

/// `DeletionBlocked`, only while the stack is being deleted.
fn deletion_blocked(deletion: &DeletionState) -> ConditionState {
    match deletion {
        DeletionState::InProgress { remaining } => state(
            condition_type::DELETION_BLOCKED,
            ConditionStatus::False,
            reason::DELETING,
            format!("{remaining} children left to delete"),
        ),
        DeletionState::Blocked { clusters } => state(
            condition_type::DELETION_BLOCKED,
            ConditionStatus::True,
            reason::CLUSTER_UNREACHABLE,
            deletion_blocked_message(clusters),
        ),
    }
}

impl Facts<'_, '_> {
    /// The first child (in status order) matching `pred`.
    fn first(&self, pred: impl Fn(&Judged<'_>) -> bool) -> Option<&Judged<'_>> {
        self.children.iter().find(|c| pred(c))
    }

    /// Of the children matching `pred`, the one whose trouble says most about the stack: the
    /// Prometheus, then the datasource (Grafana's wiring to it), the folder, the dashboards, the
    /// rules and the scrape targets; status order among equals.
    fn most_telling(&self, pred: impl Fn(&Judged<'_>) -> bool) -> Option<&Judged<'_>> {
        let rank = |kind: ChildKind| match kind {
            ChildKind::Prometheus => 0,
            ChildKind::GrafanaDatasource => 1,
            ChildKind::GrafanaFolder => 2,
            ChildKind::GrafanaDashboard => 3,
            ChildKind::PrometheusRule => 4,
            ChildKind::ServiceMonitor => 5,
            ChildKind::Grafana => 6,
        };
        self.children
            .iter()
            .filter(|c| pred(c))
            .min_by_key(|c| rank(c.observation.kind))
    }

    /// `Ready`: True only when every child is Healthy and nothing else is wrong; otherwise False
    /// with the root cause.
    fn ready(&self) -> ConditionState {
        let not_ready = |reason, message| {
            state(
                condition_type::READY,
                ConditionStatus::False,
                reason,
                message,
            )
        };
        if let Some(deletion) = self.input.deletion {
            return match deletion {
                DeletionState::InProgress { remaining } => not_ready(
                    reason::DELETING,
                    format!("deleting: {remaining} children left"),
                ),
                DeletionState::Blocked { clusters } => {
                    not_ready(reason::DELETION_BLOCKED, deletion_blocked_message(clusters))
                }
            };
        }
        if let Some(message) = spec_problems_message(self.input.spec_problems) {
            return not_ready(reason::INVALID_SPEC, message);
        }
        if let Some(child) =
            self.first(|c| matches!(c.observation.state, ObservedState::Conflict { .. }))
        {
            return not_ready(reason::CONFLICT, child.status.message.clone());
        }
        if let Some(foreign) = self.input.foreign_objects.first() {
            let mut text = format!("{}; stacksmith writes nothing into it", foreign.describe());
            let more = self.input.foreign_objects.len() - 1;
            if more > 0 {
                text.push_str(&format!(" (and {more} more)"));
            }
            return not_ready(reason::CONFLICT, text);
        }
        if let Some((cluster, message)) = self.unreachable.first_key_value() {
            let mut text = format!(
                "cluster {cluster} unreachable: {message}; its children's health is unknown"
            );
            let others: Vec<&str> = self.unreachable.keys().skip(1).copied().collect();
            if !others.is_empty() {
                text.push_str(&format!(" (also unreachable: {})", others.join(", ")));
            }
            return not_ready(reason::CLUSTER_UNREACHABLE, text);
        }
        if let Some(child) =
            self.first(|c| matches!(c.observation.state, ObservedState::ApplyFailed { .. }))
        {
            return not_ready(reason::APPLY_FAILED, child.status.message.clone());
        }
        if let Some(failed) = self.input.failed_objects.first() {
            return not_ready(reason::APPLY_FAILED, failed.describe());
        }
        let by_verdict = [
            (Verdict::Degraded, reason::CHILD_DEGRADED),
            (Verdict::Suspended, reason::CHILD_SUSPENDED),
            (Verdict::Unknown, reason::CHILD_UNKNOWN),
            (Verdict::Progressing, reason::CHILD_PROGRESSING),
        ];
        for (verdict, reason) in by_verdict {
            if let Some(child) = self.most_telling(|c| c.status.verdict == verdict) {
                return not_ready(reason, self.child_cause(child));
            }
        }
        if self.summary.total == 0 {
            return not_ready(reason::NO_CHILDREN, "nothing planned".to_owned());
        }
        state(
            condition_type::READY,
            ConditionStatus::True,
            reason::READY,
            format!("all {} children are Healthy", self.summary.total),
        )
    }

    /// `<Kind ns/name> on <cluster>: <message>` (or `<message> (on <cluster>)` when the message
    /// already names the child), plus how many other children are not Healthy.
    fn child_cause(&self, child: &Judged<'_>) -> String {
        let observation = child.observation;
        let who = subject(observation.kind, &observation.namespace, &observation.name);
        let message = child.status.message.as_str();
        let names_child = message
            .strip_prefix(who.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', ' ', ',', ';']));
        let mut text = if names_child {
            format!("{message} (on {})", observation.cluster)
        } else {
            format!("{who} on {}: {message}", observation.cluster)
        };
        let others = self
            .summary
            .total
            .saturating_sub(self.summary.healthy)
            .saturating_sub(1);
        if others > 0 {
            text.push_str(&format!(" (+{others} more not Healthy)"));
        }
        text
    }

    /// `ChildrenApplied`: whether stacksmith wrote everything it planned.
    fn children_applied(&self) -> ConditionState {
        let not_applied = |reason, message| {
            state(
                condition_type::CHILDREN_APPLIED,
                ConditionStatus::False,
                reason,
                message,
            )
        };
        if self.input.deletion.is_some() {
            return state(
                condition_type::CHILDREN_APPLIED,
                ConditionStatus::Unknown,
                reason::DELETING,
                "the stack is being deleted: stacksmith deletes its children instead of writing them",
            );
        }
        if self.input.paused {
            return state(
                condition_type::CHILDREN_APPLIED,
                ConditionStatus::Unknown,
                reason::PAUSED,
                "spec.paused is true: stacksmith writes nothing",
            );
        }
        if let Some(message) = spec_problems_message(self.input.spec_problems) {
            return not_applied(reason::INVALID_SPEC, message);
        }
        let conflicts: Vec<String> = self
            .children
            .iter()
            .filter_map(|c| match &c.observation.state {
                ObservedState::Conflict { owner } => Some(format!(
                    "{} on {} (owned by {owner})",
                    subject(
                        c.observation.kind,
                        &c.observation.namespace,
                        &c.observation.name
                    ),
                    c.observation.cluster
                )),
                _ => None,
            })
            .chain(
                self.input
                    .foreign_objects
                    .iter()
                    .map(ForeignObject::describe),
            )
            .collect();
        if !conflicts.is_empty() {
            return not_applied(reason::CONFLICT, conflicts.join("; "));
        }
        let failed: Vec<String> = self
            .children
            .iter()
            .filter(|c| matches!(c.observation.state, ObservedState::ApplyFailed { .. }))
            .map(|c| c.status.message.clone())
            .chain(self.input.failed_objects.iter().map(FailedObject::describe))
            .collect();
        if let Some((first, rest)) = failed.split_first() {
            let mut message = first.clone();
            if !rest.is_empty() {
                message.push_str(&format!(" (and {} more)", rest.len()));
            }
            return not_applied(reason::APPLY_FAILED, message);
        }
        let missing = self
            .children
            .iter()
            .filter(|c| c.observation.state == ObservedState::Missing)
            .count();
        let mut pending = Vec::new();
        if missing > 0 {
            pending.push(format!("{missing} children missing"));
        }
        if !self.unreachable.is_empty() {
            let clusters: Vec<&str> = self.unreachable.keys().copied().collect();
            pending.push(format!("cluster(s) {} unreachable", clusters.join(", ")));
        }
        if !pending.is_empty() {
            return not_applied(
                reason::PENDING,
                format!(
                    "not everything could be written yet: {}",
                    pending.join("; ")
                ),
            );
        }
        state(
            condition_type::CHILDREN_APPLIED,
            ConditionStatus::True,
            reason::APPLIED,
            format!("all {} children written", self.summary.total),
        )
    }

    /// `ClustersReachable`: whether every member cluster the stack uses answers.
    fn clusters_reachable(&self) -> ConditionState {
        if !self.unreachable.is_empty() {
            let message = self
                .unreachable
                .iter()
                .map(|(cluster, message)| format!("{cluster}: {message}"))
                .collect::<Vec<_>>()
                .join("; ");
            return state(
                condition_type::CLUSTERS_REACHABLE,
                ConditionStatus::False,
                reason::CLUSTER_UNREACHABLE,
                message,
            );
        }
        let mut clusters: Vec<&str> = self
            .input
            .clusters
            .iter()
            .map(|c| c.cluster.as_str())
            .collect();
        clusters.sort_unstable();
        clusters.dedup();
        if clusters.is_empty() {
            let message = if self.input.spec_problems.is_empty() {
                "no member cluster in use"
            } else {
                "not checked: the spec is invalid"
            };
            return state(
                condition_type::CLUSTERS_REACHABLE,
                ConditionStatus::Unknown,
                reason::NOT_CHECKED,
                message,
            );
        }
        state(
            condition_type::CLUSTERS_REACHABLE,
            ConditionStatus::True,
            reason::REACHABLE,
            format!("all member clusters answer: {}", clusters.join(", ")),
        )
    }
}

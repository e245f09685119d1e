//! The stack's conditions, before rendering: `Ready` with the root cause, `ChildrenApplied`,
//! `ClustersReachable` and, while deleting, `DeletionBlocked`.

use std::collections::BTreeMap;

use stacksmith_api::{RootCause, StackSummary, Verdict};

use super::children::{Judged, subject};
use super::{
    AggregateInput, ClusterState, DeletionState, FailedObject, ForeignObject, ObservedState,
    SpecProblem, condition_type, reason,
};
use crate::health::ChildKind;
use crate::status_conditions::{ConditionState, ConditionStatus};

/// The conditions of the stack, in their output order, and the root cause `Ready` names (as
/// data; `None` while Ready).
pub(super) fn states(
    input: &AggregateInput<'_>,
    children: &[Judged<'_>],
    summary: &StackSummary,
) -> (Vec<ConditionState>, Option<RootCause>) {
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
    (states, facts.root_cause())
}

/// Why `Ready` is not True: the one cause it names, by priority (see [`Facts::not_ready`]).
enum NotReady<'f> {
    /// The stack is being deleted.
    Deleting { remaining: u32 },
    /// Deletion waits for unreachable clusters.
    DeletionBlocked { clusters: &'f [String] },
    /// The first rule of the tenant policy the spec breaks.
    PolicyViolation(&'f SpecProblem),
    /// The first problem of the spec.
    InvalidSpec(&'f SpecProblem),
    /// A move the stack does not allow.
    MoveRefused(&'f SpecProblem),
    /// A child of a name someone else owns.
    ConflictingChild(&'f Judged<'f>),
    /// A planned object that is not a child (a namespace, RBAC) someone else owns.
    ForeignObject(&'f ForeignObject),
    /// The first unreachable cluster, by name.
    Unreachable { cluster: &'f str, message: &'f str },
    /// A child whose write failed.
    FailedChild(&'f Judged<'f>),
    /// A planned object that is not a child whose write failed.
    FailedObject(&'f FailedObject),
    /// The most telling child with this verdict's reason.
    Child {
        reason: &'static str,
        child: &'f Judged<'f>,
    },
    /// Nothing is planned.
    NoChildren,
}

impl NotReady<'_> {
    /// The `Ready` reason.
    fn reason(&self) -> &'static str {
        match self {
            NotReady::Deleting { .. } => reason::DELETING,
            NotReady::DeletionBlocked { .. } => reason::DELETION_BLOCKED,
            NotReady::PolicyViolation(_) => reason::POLICY_VIOLATION,
            NotReady::InvalidSpec(_) => reason::INVALID_SPEC,
            NotReady::MoveRefused(_) => reason::MOVE_REFUSED,
            NotReady::ConflictingChild(_) | NotReady::ForeignObject(_) => reason::CONFLICT,
            NotReady::Unreachable { .. } => reason::CLUSTER_UNREACHABLE,
            NotReady::FailedChild(_) | NotReady::FailedObject(_) => reason::APPLY_FAILED,
            NotReady::Child { reason, .. } => reason,
            NotReady::NoChildren => reason::NO_CHILDREN,
        }
    }

    /// What the cause points at, as data.
    fn root_cause(&self) -> RootCause {
        let cause = RootCause {
            reason: self.reason().to_owned(),
            ..RootCause::default()
        };
        let child = |judged: &Judged<'_>| RootCause {
            cluster: judged.observation.cluster.clone(),
            kind: judged.observation.kind.as_str().to_owned(),
            namespace: judged.observation.namespace.clone(),
            name: judged.observation.name.clone(),
            ..cause.clone()
        };
        match self {
            NotReady::Deleting { .. } | NotReady::NoChildren => cause,
            NotReady::DeletionBlocked { clusters } => RootCause {
                cluster: clusters.first().cloned().unwrap_or_default(),
                ..cause
            },
            NotReady::PolicyViolation(problem)
            | NotReady::InvalidSpec(problem)
            | NotReady::MoveRefused(problem) => RootCause {
                field: problem.field.clone(),
                ..cause
            },
            NotReady::ConflictingChild(judged)
            | NotReady::FailedChild(judged)
            | NotReady::Child { child: judged, .. } => child(judged),
            NotReady::ForeignObject(foreign) => {
                let (namespace, name) = match foreign.name.split_once('/') {
                    Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
                    None => (String::new(), foreign.name.clone()),
                };
                RootCause {
                    cluster: foreign.cluster.clone(),
                    kind: foreign.kind.clone(),
                    namespace,
                    name,
                    ..cause
                }
            }
            NotReady::Unreachable { cluster, .. } => RootCause {
                cluster: (*cluster).to_owned(),
                ..cause
            },
            NotReady::FailedObject(failed) => RootCause {
                cluster: failed.cluster.clone(),
                kind: failed.kind.clone(),
                namespace: failed.namespace.clone(),
                name: failed.name.clone(),
                ..cause
            },
        }
    }
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
    /// Prometheus, then the stack's own Grafana instance, the datasource (Grafana's wiring to the
    /// Prometheus), the folder, the dashboards, the rules, the scrape targets and the alert
    /// routing; status order among equals. A folder, datasource or dashboard whose own Grafana
    /// instance is not Healthy is left out (see [`Facts::waits_on_own_grafana`]): the instance
    /// is named instead.
    fn most_telling(&self, pred: impl Fn(&Judged<'_>) -> bool) -> Option<&Judged<'_>> {
        let rank = |kind: ChildKind| match kind {
            ChildKind::Prometheus => 0,
            ChildKind::Grafana => 1,
            ChildKind::GrafanaDatasource => 2,
            ChildKind::GrafanaFolder => 3,
            ChildKind::GrafanaDashboard => 4,
            ChildKind::PrometheusRule => 5,
            ChildKind::ServiceMonitor => 6,
            ChildKind::AlertmanagerConfig => 7,
        };
        self.children
            .iter()
            .filter(|c| pred(c) && !self.waits_on_own_grafana(c))
            .min_by_key(|c| rank(c.observation.kind))
    }

    /// Whether `child` is a folder, datasource or dashboard next to a `Grafana` instance of the
    /// stack's own (a dedicated instance: a child of the stack, on the same cluster and in the
    /// same namespace, which is all it may be applied to) that is not Healthy. grafana-operator
    /// applies nothing to an instance that is not ready, so the child's trouble (typically
    /// `NoMatchingInstance`) follows from the instance's: the instance is the root cause.
    fn waits_on_own_grafana(&self, child: &Judged<'_>) -> bool {
        let resource = child.observation;
        matches!(
            resource.kind,
            ChildKind::GrafanaFolder | ChildKind::GrafanaDatasource | ChildKind::GrafanaDashboard
        ) && self.children.iter().any(|grafana| {
            grafana.observation.kind == ChildKind::Grafana
                && grafana.observation.cluster == resource.cluster
                && grafana.observation.namespace == resource.namespace
                && grafana.status.verdict != Verdict::Healthy
        })
    }

    /// Why `Ready` is not True, by priority: deletion, a tenant policy violation, invalid spec,
    /// a conflicting object, an unreachable cluster, a failed write, then the most telling child
    /// that is Degraded, Suspended, Unknown or Progressing; `None` when the stack is Ready.
    fn not_ready(&self) -> Option<NotReady<'_>> {
        if let Some(deletion) = self.input.deletion {
            return Some(match deletion {
                DeletionState::InProgress { remaining } => NotReady::Deleting {
                    remaining: *remaining,
                },
                DeletionState::Blocked { clusters } => NotReady::DeletionBlocked { clusters },
            });
        }
        if let Some(first) = self.input.policy_violations.first() {
            return Some(NotReady::PolicyViolation(first));
        }
        if let Some(first) = self.input.spec_problems.first() {
            return Some(NotReady::InvalidSpec(first));
        }
        if let Some(problem) = self.input.refused_move {
            return Some(NotReady::MoveRefused(problem));
        }
        if let Some(child) =
            self.first(|c| matches!(c.observation.state, ObservedState::Conflict { .. }))
        {
            return Some(NotReady::ConflictingChild(child));
        }
        if let Some(foreign) = self.input.foreign_objects.first() {
            return Some(NotReady::ForeignObject(foreign));
        }
        if let Some((cluster, message)) = self.unreachable.first_key_value() {
            return Some(NotReady::Unreachable { cluster, message });
        }
        if let Some(child) =
            self.first(|c| matches!(c.observation.state, ObservedState::ApplyFailed { .. }))
        {
            return Some(NotReady::FailedChild(child));
        }
        if let Some(failed) = self.input.failed_objects.first() {
            return Some(NotReady::FailedObject(failed));
        }
        let by_verdict = [
            (Verdict::Degraded, reason::CHILD_DEGRADED),
            (Verdict::Suspended, reason::CHILD_SUSPENDED),
            (Verdict::Unknown, reason::CHILD_UNKNOWN),
            (Verdict::Progressing, reason::CHILD_PROGRESSING),
        ];
        for (verdict, reason) in by_verdict {
            if let Some(child) = self.most_telling(|c| c.status.verdict == verdict) {
                return Some(NotReady::Child { reason, child });
            }
        }
        (self.summary.total == 0).then_some(NotReady::NoChildren)
    }

    /// `Ready`: True only when every child is Healthy and nothing else is wrong; otherwise False
    /// with the root cause.
    fn ready(&self) -> ConditionState {
        let Some(cause) = self.not_ready() else {
            return state(
                condition_type::READY,
                ConditionStatus::True,
                reason::READY,
                format!("all {} children are Healthy", self.summary.total),
            );
        };
        state(
            condition_type::READY,
            ConditionStatus::False,
            cause.reason(),
            self.ready_message(&cause),
        )
    }

    /// The `Ready` message for a cause: what is wrong, in one line.
    fn ready_message(&self, cause: &NotReady<'_>) -> String {
        match cause {
            NotReady::Deleting { remaining } => format!("deleting: {remaining} children left"),
            NotReady::DeletionBlocked { clusters } => deletion_blocked_message(clusters),
            NotReady::PolicyViolation(_) => {
                spec_problems_message(self.input.policy_violations).unwrap_or_default()
            }
            NotReady::InvalidSpec(_) => {
                spec_problems_message(self.input.spec_problems).unwrap_or_default()
            }
            NotReady::MoveRefused(problem) => problem.message.clone(),
            NotReady::ConflictingChild(child) | NotReady::FailedChild(child) => {
                child.status.message.clone()
            }
            NotReady::ForeignObject(foreign) => {
                let mut text = format!("{}; stacksmith writes nothing into it", foreign.describe());
                let more = self.input.foreign_objects.len() - 1;
                if more > 0 {
                    text.push_str(&format!(" (and {more} more)"));
                }
                text
            }
            NotReady::Unreachable { cluster, message } => {
                let mut text = format!(
                    "cluster {cluster} unreachable: {message}; its children's health is unknown"
                );
                let others: Vec<&str> = self.unreachable.keys().skip(1).copied().collect();
                if !others.is_empty() {
                    text.push_str(&format!(" (also unreachable: {})", others.join(", ")));
                }
                text
            }
            NotReady::FailedObject(failed) => failed.describe(),
            NotReady::Child { child, .. } => self.child_cause(child),
            NotReady::NoChildren => "nothing planned".to_owned(),
        }
    }

    /// The root cause as data, while the stack is not Ready.
    fn root_cause(&self) -> Option<RootCause> {
        self.not_ready().map(|cause| cause.root_cause())
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
        if let Some(message) = spec_problems_message(self.input.policy_violations) {
            return not_applied(reason::POLICY_VIOLATION, message);
        }
        if let Some(message) = spec_problems_message(self.input.spec_problems) {
            return not_applied(reason::INVALID_SPEC, message);
        }
        if let Some(problem) = self.input.refused_move {
            return not_applied(reason::MOVE_REFUSED, problem.message.clone());
        }
        if let Some(message) = self.conflicts_message() {
            return not_applied(reason::CONFLICT, message);
        }
        if let Some(message) = self.apply_failed_message() {
            return not_applied(reason::APPLY_FAILED, message);
        }
        if let Some(message) = self.pending_message() {
            return not_applied(reason::PENDING, message);
        }
        state(
            condition_type::CHILDREN_APPLIED,
            ConditionStatus::True,
            reason::APPLIED,
            format!("all {} children written", self.summary.total),
        )
    }

    /// Every conflicting child (`<Kind ns/name> on <cluster> (owned by <owner>)`) and foreign
    /// object, joined by `; `; `None` when there is none.
    fn conflicts_message(&self) -> Option<String> {
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
        (!conflicts.is_empty()).then(|| conflicts.join("; "))
    }

    /// The first failed write (children, then other objects) and how many more there are; `None`
    /// when every write succeeded.
    fn apply_failed_message(&self) -> Option<String> {
        let failed: Vec<String> = self
            .children
            .iter()
            .filter(|c| matches!(c.observation.state, ObservedState::ApplyFailed { .. }))
            .map(|c| c.status.message.clone())
            .chain(self.input.failed_objects.iter().map(FailedObject::describe))
            .collect();
        let (first, rest) = failed.split_first()?;
        let mut message = first.clone();
        if !rest.is_empty() {
            message.push_str(&format!(" (and {} more)", rest.len()));
        }
        Some(message)
    }

    /// What could not be written yet: missing children and unreachable clusters; `None` when
    /// nothing is pending.
    fn pending_message(&self) -> Option<String> {
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
        (!pending.is_empty()).then(|| {
            format!(
                "not everything could be written yet: {}",
                pending.join("; ")
            )
        })
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
            let message = if !self.input.policy_violations.is_empty() {
                "not checked: the stack breaks its tenant policy"
            } else if self.input.spec_problems.is_empty() {
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

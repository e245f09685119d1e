//! Observing: how each planned object was found in its cluster in this pass, as plain data.
//!
//! The reconcile observes from what its writes found (the watch caches behind them) and
//! `stacksmith status --live` from one GET per object; both turn what they found into the same
//! [`ChildObservation`]s, failed objects and foreign objects here, so the operator and the CLI
//! cannot disagree on how a finding reads. Judging a live object is left to the caller (`judge`),
//! because the evidence it may need (Prometheus objects, rejection Events, Grafana instances)
//! lives in the cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;
use stacksmith_api::labels::{
    CUSTOMER, MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE, STACK_UID, WRITTEN_THROUGH,
};

use crate::aggregate::{
    ChildObservation, ClusterObservation, ClusterState, FailedObject, FailedOperation,
    ForeignObject, ObservedState,
};
use crate::grafana_instances::explain_unmatched;
use crate::health::{ChildHealth, ChildKind, HealthReason, MAX_MESSAGE_CHARS};
use crate::plan::{DesiredObject, ObjectKind};

/// Who owns an object, as far as stacksmith is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The stack with the uid asked about.
    Ours,
    /// Someone else; the text says who.
    Foreign(String),
}

/// Whether an object with these labels belongs to the stack with uid `stack_uid`, as seen
/// through the `MemberCluster` `member`: an object written through another registration of the
/// same cluster is that registration's, never this one's.
pub fn ownership(labels: &BTreeMap<String, String>, stack_uid: &str, member: &str) -> Ownership {
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return Ownership::Foreign("an owner that is not stacksmith".to_owned());
    }
    let owner = match (labels.get(STACK_NAMESPACE), labels.get(STACK_NAME)) {
        (Some(ns), Some(name)) => format!("CustomerStack {ns}/{name}"),
        _ => "another CustomerStack".to_owned(),
    };
    if let Some(through) = labels.get(WRITTEN_THROUGH)
        && through != member
    {
        return Ownership::Foreign(format!("{owner} through MemberCluster {through}"));
    }
    if labels.get(STACK_UID).map(String::as_str) == Some(stack_uid) {
        return Ownership::Ours;
    }
    Ownership::Foreign(owner)
}

/// The stack whose objects a stack may take over (annotation `stacksmith.io/adopt-from`): a
/// stack of another name in the same hub namespace, for the same customer, that no longer
/// exists or is being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptFrom {
    /// The hub namespace of both stacks.
    pub namespace: String,
    /// The name of the stack whose objects are taken over.
    pub name: String,
    /// The customer id of both stacks.
    pub customer: String,
}

/// Whether an object with these labels, found at a planned name in `member`, may be taken over
/// from the stack named by `adopt`: it was written by stacksmith for that stack (by namespace
/// and name) and the same customer, through this member (or before objects named their
/// member).
pub fn adoptable(labels: &BTreeMap<String, String>, adopt: &AdoptFrom, member: &str) -> bool {
    let is = |key: &str, value: &str| labels.get(key).map(String::as_str) == Some(value);
    is(MANAGED_BY, MANAGED_BY_VALUE)
        && is(STACK_NAMESPACE, &adopt.namespace)
        && is(STACK_NAME, &adopt.name)
        && is(CUSTOMER, &adopt.customer)
        && labels
            .get(WRITTEN_THROUGH)
            .is_none_or(|through| through == member)
}

/// Why a planned object was not written in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotWrittenReason {
    /// `spec.paused` is true.
    Paused,
    /// Its namespace is someone else's or could not be written (the text says which and why).
    NamespaceUnavailable(String),
    /// Its cluster cannot be written to now (the text says why).
    ClusterUnavailable(String),
    /// Its cluster answers, but this pass may not write to it: its writes are not answered, or
    /// every write slot of it is taken (the text says which; looked at again soon).
    MemberWritesHeld(String),
    /// Someone else keeps changing it: it was changed again within a minute of stacksmith
    /// restoring it, so the next restore waits (15 s, doubling up to 5 min).
    Contested(Contest),
}

impl fmt::Display for NotWrittenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotWrittenReason::Paused => f.write_str("paused"),
            NotWrittenReason::NamespaceUnavailable(why)
            | NotWrittenReason::ClusterUnavailable(why)
            | NotWrittenReason::MemberWritesHeld(why) => f.write_str(why),
            NotWrittenReason::Contested(contest) => contest.fmt(f),
        }
    }
}

/// A planned object whose fields another writer keeps changing back after stacksmith restores
/// them (another controller, a `kubectl apply --force-conflicts` loop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contest {
    /// The planned fields whose live values differ, e.g. `spec.replicas`.
    pub fields: Vec<String>,
    /// The other writers' field managers, when the API server named them (empty: not known).
    pub managers: Vec<String>,
    /// How long until stacksmith restores the object.
    pub retry_in: Duration,
    /// Whether this pass found the contest: the episode's one Event is published with it.
    pub started: bool,
}

impl Contest {
    /// The fields, for a human: the first three, and how many more.
    pub fn fields_text(&self) -> String {
        const SHOWN: usize = 3;
        match self.fields.len() {
            0 => "its planned fields".to_owned(),
            n if n <= SHOWN => self.fields.join(", "),
            n => format!("{} and {} more", self.fields[..SHOWN].join(", "), n - SHOWN),
        }
    }

    /// Whole seconds until the restore, rounded up ("in 0 s" would read as done).
    pub fn retry_in_secs(&self) -> u64 {
        self.retry_in.as_secs() + u64::from(self.retry_in.subsec_nanos() > 0)
    }

    /// Who changes them: `field manager "x"`, or `someone else`.
    pub fn writer_text(&self) -> String {
        let quoted: Vec<String> = self.managers.iter().map(|m| format!("{m:?}")).collect();
        match quoted.len() {
            0 => "someone else".to_owned(),
            1 => format!("field manager {}", quoted[0]),
            _ => format!("field managers {}", quoted.join(", ")),
        }
    }
}

impl fmt::Display for Contest {
    /// `spec.replicas is being changed by field manager "x"; stacksmith restores it in 15 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.retry_in_secs();
        let verb = if self.fields.len() == 1 { "is" } else { "are" };
        write!(
            f,
            "{} {verb} being changed by {}; stacksmith restores it in {seconds} s",
            self.fields_text(),
            self.writer_text()
        )
    }
}

/// What happened to one planned object in this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOutcome {
    /// The cache shows it exactly as planned (the object as JSON): nothing written.
    Unchanged(Box<Value>),
    /// It did not exist: created.
    Created,
    /// It existed with other values (a spec change or drift): re-applied.
    Updated,
    /// Another owner holds an object of that name: left alone.
    Conflict {
        /// Who owns it.
        owner: String,
    },
    /// The write failed or timed out.
    Failed {
        /// Why (no credentials).
        message: String,
    },
    /// Written moments ago with this very plan; the watch cache has not shown the write yet, so
    /// it is not written again.
    AwaitingCache {
        /// How long the cache is still given to catch up.
        left: Duration,
    },
    /// A field the object's CRD makes immutable differs from the plan (e.g. a Grafana resource's
    /// `spec.instanceSelector`): the object is deleted, to be created again from the plan once it
    /// is gone, instead of a write the API server would refuse.
    Replacing {
        /// The immutable field that changed, e.g. `spec.instanceSelector`.
        field: &'static str,
        /// Whether this pass issued the delete (false: it is still going away).
        deleted_now: bool,
    },
    /// Not written.
    NotWritten {
        /// The object as the cache shows it (as JSON), if it exists and belongs to the stack.
        existing: Option<Box<Value>>,
        /// Why.
        reason: NotWrittenReason,
    },
}

impl WriteOutcome {
    /// Whether this pass wrote the object (or trusts a write of a moment ago).
    pub fn wrote(&self) -> bool {
        matches!(
            self,
            WriteOutcome::Created
                | WriteOutcome::Updated
                | WriteOutcome::AwaitingCache { .. }
                | WriteOutcome::Replacing { .. }
        )
    }
}

/// The fields a child's CRD makes immutable (a CEL `self == oldSelf` rule upstream), by JSON
/// pointer and name: grafana-operator's folders, datasources and dashboards cannot change
/// `spec.instanceSelector` in place, nor a dashboard its `spec.uid` — which upstream may not
/// even be added to a dashboard created without one, so a dashboard planned before stacksmith
/// set uids is re-created with it, once.
pub fn immutable_fields(kind: ObjectKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ObjectKind::Child(ChildKind::GrafanaFolder | ChildKind::GrafanaDatasource) => {
            &[("/spec/instanceSelector", "spec.instanceSelector")]
        }
        ObjectKind::Child(ChildKind::GrafanaDashboard) => &[
            ("/spec/instanceSelector", "spec.instanceSelector"),
            ("/spec/uid", "spec.uid"),
        ],
        _ => &[],
    }
}

/// The first immutable field whose live value differs from the planned one: the object must be
/// re-created rather than written. A field absent on either side counts as changed only when
/// the other side has it (the API server defaults nothing there).
pub fn immutable_change(kind: ObjectKind, live: &Value, planned: &Value) -> Option<&'static str> {
    immutable_fields(kind)
        .iter()
        .find(|(pointer, _)| live.pointer(pointer) != planned.pointer(pointer))
        .map(|(_, field)| *field)
}

/// One cluster's part of a pass: whether it could be written to, and what happened to each of
/// its planned objects, in plan order.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterWrites {
    /// Whether the cluster answered.
    pub observation: ClusterObservation,
    /// Outcome per planned object of this cluster (all `NotWritten` when it is unreachable).
    pub outcomes: Vec<(DesiredObject, WriteOutcome)>,
    /// Planned namespaces that belong to someone else.
    pub foreign: Vec<ForeignObject>,
}

impl ClusterWrites {
    /// A cluster that could not be written to: every planned object `NotWritten`.
    pub fn unavailable<'a>(
        cluster: &str,
        planned: impl IntoIterator<Item = &'a DesiredObject>,
        message: &str,
    ) -> Self {
        let reason = NotWrittenReason::ClusterUnavailable(message.to_owned());
        ClusterWrites {
            observation: ClusterObservation {
                cluster: cluster.to_owned(),
                state: ClusterState::Unreachable {
                    message: message.to_owned(),
                },
            },
            outcomes: planned
                .into_iter()
                .map(|d| {
                    let outcome = WriteOutcome::NotWritten {
                        existing: None,
                        reason: reason.clone(),
                    };
                    (d.clone(), outcome)
                })
                .collect(),
            foreign: Vec::new(),
        }
    }
}

/// What a planned namespace's outcome means for the objects planned inside it: `None` when they
/// can be written; else why not, and the foreign object to report when someone else owns it.
pub fn namespace_unavailable(
    desired: &DesiredObject,
    outcome: &WriteOutcome,
) -> Option<(String, Option<ForeignObject>)> {
    if desired.kind != ObjectKind::Namespace {
        return None;
    }
    match outcome {
        WriteOutcome::Conflict { owner } => Some((
            format!("namespace {} belongs to {owner}", desired.name),
            Some(ForeignObject {
                cluster: desired.cluster.clone(),
                kind: ObjectKind::Namespace.kind().to_owned(),
                name: desired.name.clone(),
                owner: owner.clone(),
            }),
        )),
        WriteOutcome::Failed { message } => Some((
            format!("namespace {} could not be written: {message}", desired.name),
            None,
        )),
        _ => None,
    }
}

/// How every planned child of one cluster was found; a live object is judged by `judge`.
pub fn child_observations(
    writes: &ClusterWrites,
    judge: impl Fn(ChildKind, &Value) -> ChildHealth,
) -> Vec<ChildObservation> {
    writes
        .outcomes
        .iter()
        .filter_map(|(desired, outcome)| {
            let kind = desired.kind.child()?;
            let state = match &writes.observation.state {
                ClusterState::Unreachable { message } => ObservedState::ClusterUnreachable {
                    message: message.clone(),
                },
                ClusterState::Reachable => observed_state(kind, outcome, &judge),
            };
            Some(child_observation(desired, kind, state))
        })
        .collect()
}

/// How one child was found from what its write found.
pub fn observed_state(
    kind: ChildKind,
    outcome: &WriteOutcome,
    judge: impl Fn(ChildKind, &Value) -> ChildHealth,
) -> ObservedState {
    match outcome {
        // The object is there, with another writer's values: judged as it is, and its message
        // says what is going on.
        WriteOutcome::NotWritten {
            existing: Some(object),
            reason: NotWrittenReason::Contested(contest),
        } => {
            let mut health = judge(kind, object);
            health.message = format!("{contest}; {}", health.message)
                .chars()
                .take(MAX_MESSAGE_CHARS)
                .collect();
            ObservedState::Live(health)
        }
        WriteOutcome::Unchanged(object)
        | WriteOutcome::NotWritten {
            existing: Some(object),
            ..
        } => ObservedState::Live(judge(kind, object)),
        WriteOutcome::Created
        | WriteOutcome::Updated
        | WriteOutcome::AwaitingCache { .. }
        | WriteOutcome::Replacing { .. } => ObservedState::Applying,
        WriteOutcome::Conflict { owner } => ObservedState::Conflict {
            owner: owner.clone(),
        },
        WriteOutcome::Failed { message } => ObservedState::ApplyFailed {
            message: message.clone(),
        },
        WriteOutcome::NotWritten {
            existing: None,
            reason: NotWrittenReason::Paused,
        } => ObservedState::Missing,
        WriteOutcome::NotWritten {
            existing: None,
            reason,
        } => ObservedState::ApplyFailed {
            message: format!("not written: {reason}"),
        },
    }
}

/// How one child was found from a read of it: absent, someone else's, or ours and judged.
pub fn observed_from_read(
    kind: ChildKind,
    found: Option<(&Value, Ownership)>,
    judge: impl Fn(ChildKind, &Value) -> ChildHealth,
) -> ObservedState {
    match found {
        None => ObservedState::Missing,
        Some((_, Ownership::Foreign(owner))) => ObservedState::Conflict { owner },
        Some((object, Ownership::Ours)) => ObservedState::Live(judge(kind, object)),
    }
}

/// Every planned child of a cluster that cannot be reached, `ClusterUnreachable`.
pub fn unreachable_children<'a>(
    planned: impl IntoIterator<Item = &'a DesiredObject>,
    message: &str,
) -> Vec<ChildObservation> {
    planned
        .into_iter()
        .filter_map(|desired| {
            let state = ObservedState::ClusterUnreachable {
                message: message.to_owned(),
            };
            Some(child_observation(desired, desired.kind.child()?, state))
        })
        .collect()
}

/// Adds to a `NoMatchingInstance` verdict why none of the cluster's `Grafana` instances matches
/// (`grafanas` as JSON); leaves every other verdict alone.
pub fn explain_no_matching_instance(health: &mut ChildHealth, object: &Value, grafanas: &[Value]) {
    if health.reason == HealthReason::NoMatchingInstance {
        let why = explain_unmatched(object, grafanas);
        health.message = format!("{}; {why}", health.message);
    }
}

/// What went wrong with the planned objects that are not children (their health is not
/// reported, but a stack whose Prometheus identity could not be written is not applied): failed
/// writes, and objects of a planned name that someone else owns (next to `foreign`, the foreign
/// tenant namespaces already found).
pub fn non_child_problems<'a>(
    outcomes: impl IntoIterator<Item = &'a (DesiredObject, WriteOutcome)>,
    foreign: &[ForeignObject],
) -> (Vec<FailedObject>, Vec<ForeignObject>) {
    let mut failed = Vec::new();
    let mut foreign = foreign.to_vec();
    for (desired, outcome) in outcomes {
        if desired.kind.child().is_some() {
            continue;
        }
        match outcome {
            WriteOutcome::Failed { message } => failed.push(FailedObject {
                cluster: desired.cluster.clone(),
                kind: desired.kind.kind().to_owned(),
                namespace: desired.namespace.clone(),
                name: desired.name.clone(),
                message: message.clone(),
                operation: FailedOperation::Write,
            }),
            WriteOutcome::Conflict { owner } => {
                let name = display_name(desired);
                let already = foreign.iter().any(|f| {
                    f.cluster == desired.cluster && f.kind == desired.kind.kind() && f.name == name
                });
                if !already {
                    foreign.push(ForeignObject {
                        cluster: desired.cluster.clone(),
                        kind: desired.kind.kind().to_owned(),
                        name,
                        owner: owner.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    (failed, foreign)
}

/// `namespace/name`, or the name alone for a cluster-scoped object.
pub fn display_name(desired: &DesiredObject) -> String {
    if desired.namespace.is_empty() {
        desired.name.clone()
    } else {
        format!("{}/{}", desired.namespace, desired.name)
    }
}

fn child_observation(
    desired: &DesiredObject,
    kind: ChildKind,
    state: ObservedState,
) -> ChildObservation {
    ChildObservation {
        cluster: desired.cluster.clone(),
        kind,
        namespace: desired.namespace.clone(),
        name: desired.name.clone(),
        state,
    }
}

#[cfg(test)]
mod tests;

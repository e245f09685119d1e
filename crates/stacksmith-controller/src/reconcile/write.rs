//! The write stage: one cluster's planned objects written in creation order, and how a live
//! child is judged from that cluster's caches.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stacksmith_core::aggregate::{ClusterObservation, ClusterState};
use stacksmith_core::inventory::ObjectKey;
use stacksmith_core::observe::{
    ClusterWrites, NotWrittenReason, Ownership, WriteOutcome, explain_no_matching_instance,
    namespace_unavailable,
};
use stacksmith_core::plan::{DesiredObject, StackPlan};
use stacksmith_core::{ChildHealth, ChildKind, assess, assess_with_evidence};

use super::Context;
use crate::apply::{Claimant, apply_object, cached};
use crate::member::config_evidence::needs_config_evidence;
use crate::member::write_gate::ENTRY_WAIT;
use crate::member::{MemberConnection, MemberState, Reachability};
use crate::remote::HUB_TIMEOUT;

/// One cluster's part of a pass: what was written and the connection it was written through
/// (whose caches judge the children).
pub(super) struct ClusterPass {
    pub(super) writes: ClusterWrites,
    pub(super) connection: Option<Arc<MemberConnection>>,
    /// For the inventory: objects now the stack's, with their uid, and objects deleted to be
    /// re-created (`None`).
    pub(super) inventory_changes: Vec<(ObjectKey, Option<String>)>,
}

/// Why a member cannot be written to now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// No `MemberCluster` of that name.
    NotRegistered,
    /// Its first connection attempt is still being made.
    Connecting,
    /// It has no usable connection (the text says why).
    Unusable(String),
    /// It stopped answering (the text says why).
    Unreachable(String),
    /// Its watch caches have not had their first full list.
    CachesNotSynchronised,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotRegistered => f.write_str("MemberCluster not registered"),
            Unavailable::Connecting => f.write_str("connecting"),
            Unavailable::Unusable(why) | Unavailable::Unreachable(why) => f.write_str(why),
            Unavailable::CachesNotSynchronised => f.write_str("watch caches not synchronised"),
        }
    }
}

/// The member's connection if it can be written to now. A member registered a moment ago is
/// given its first connection attempt (bounded) before it counts as unavailable.
pub(crate) async fn usable_connection(
    ctx: &Context,
    cluster: &str,
) -> Result<Arc<MemberConnection>, Unavailable> {
    let first_attempt = HUB_TIMEOUT + Duration::from_secs(10);
    match ctx.fleet.state_once_connected(cluster, first_attempt).await {
        None => Err(Unavailable::NotRegistered),
        Some(MemberState::Connecting) => Err(Unavailable::Connecting),
        Some(MemberState::Unusable(why)) => Err(Unavailable::Unusable(why)),
        Some(MemberState::Connected(connection)) => match connection.reachability() {
            Reachability::Unreachable(why) => Err(Unavailable::Unreachable(why)),
            Reachability::Reachable => {
                if !connection.wait_caches(connection.timeout).await {
                    return Err(Unavailable::CachesNotSynchronised);
                }
                // Evidence only: a rejection watch that never lists does not hold the pass.
                connection.wait_rejections(connection.timeout).await;
                Ok(connection)
            }
        },
    }
}

/// Writes one cluster's planned objects in creation order; what is planned inside a namespace
/// that is someone else's (or could not be written) is not written. The pass writes only once
/// through the member's write gate ([`crate::member::write_gate`]), and stops writing to the
/// member at its first write that got no answer.
pub(super) async fn write_cluster(
    ctx: &Context,
    plan: &StackPlan,
    cluster: &str,
    claimant: &Claimant,
    paused: bool,
) -> ClusterPass {
    let planned = plan.objects.iter().filter(|o| o.cluster == cluster);
    let connection = match usable_connection(ctx, cluster).await {
        Ok(connection) => connection,
        Err(why) => {
            return ClusterPass {
                writes: ClusterWrites::unavailable(cluster, planned, &why.to_string()),
                connection: None,
                inventory_changes: Vec::new(),
            };
        }
    };
    let mut outcomes = Vec::new();
    let mut foreign = Vec::new();
    let mut unavailable_namespaces: Vec<(String, String)> = Vec::new();
    let mut inventory_changes = Vec::new();
    // Why this pass writes nothing more to the member, once it must not.
    let mut held: Option<String> = None;
    let _pass = if paused {
        None
    } else {
        match connection.writes.enter(ENTRY_WAIT).await {
            Ok(pass) => Some(pass),
            Err(why) => {
                held = Some(why.to_string());
                None
            }
        }
    };
    for desired in planned {
        let blocked = unavailable_namespaces
            .iter()
            .find(|(ns, _)| *ns == desired.namespace)
            .map(|(_, why)| NotWrittenReason::NamespaceUnavailable(why.clone()))
            .or_else(|| held.clone().map(NotWrittenReason::MemberWritesHeld));
        let (outcome, uid) = match blocked {
            Some(reason) => not_written(&connection, desired, claimant, reason),
            None if paused => not_written(&connection, desired, claimant, NotWrittenReason::Paused),
            None => {
                let started = Instant::now();
                let written =
                    apply_object(&connection, desired, claimant, &ctx.recent_writes).await;
                held = judge_write(&connection, &written.0, started.elapsed());
                written
            }
        };
        let key = ObjectKey::of(desired);
        if uid.is_some() {
            inventory_changes.push((key, uid));
        } else if matches!(outcome, WriteOutcome::Replacing { .. }) {
            inventory_changes.push((key, None));
        }
        if let Some((why, owner)) = namespace_unavailable(desired, &outcome) {
            foreign.extend(owner);
            unavailable_namespaces.push((desired.name.clone(), why));
        }
        outcomes.push((desired.clone(), outcome));
    }
    ClusterPass {
        writes: ClusterWrites {
            observation: ClusterObservation {
                cluster: cluster.to_owned(),
                state: ClusterState::Reachable,
            },
            outcomes,
            foreign,
        },
        connection: Some(connection),
        inventory_changes,
    }
}

/// What a write's outcome and duration say about the member's writes: one that failed after the
/// whole request timeout got no answer (the gate hears so, and the pass writes nothing more to
/// the member: `Some(why)`); one that made a request and was answered in time opens the gate.
fn judge_write(
    connection: &MemberConnection,
    outcome: &WriteOutcome,
    took: Duration,
) -> Option<String> {
    let answered = took < connection.timeout;
    match outcome {
        WriteOutcome::Failed { message } if !answered => {
            connection.writes.timed_out(message);
            Some(format!(
                "a write to {} in this pass got no answer ({message})",
                connection.name
            ))
        }
        WriteOutcome::Failed { .. }
        | WriteOutcome::Created
        | WriteOutcome::Updated
        | WriteOutcome::Replacing {
            deleted_now: true, ..
        } => {
            connection.writes.answered();
            None
        }
        _ => None,
    }
}

/// The outcome of an object left unwritten: what the cache shows of it, when it is the stack's
/// (with its uid).
fn not_written(
    connection: &MemberConnection,
    desired: &DesiredObject,
    claimant: &Claimant,
    reason: NotWrittenReason,
) -> (WriteOutcome, Option<String>) {
    let existing = cached(connection, desired.kind, &desired.namespace, &desired.name);
    match existing
        .as_ref()
        .map(|e| claimant.ownership(&e.labels(), &connection.name))
    {
        Some(Ownership::Foreign(owner)) => (WriteOutcome::Conflict { owner }, None),
        Some(Ownership::Ours) => {
            let uid = existing.as_ref().and_then(|e| e.head().uid);
            let outcome = WriteOutcome::NotWritten {
                existing: existing.map(|e| Box::new(e.to_value())),
                reason,
            };
            (outcome, uid)
        }
        None => (
            WriteOutcome::NotWritten {
                existing: None,
                reason,
            },
            None,
        ),
    }
}

/// A child's health from its cached object; a `PrometheusRule` or `ServiceMonitor` without a
/// status is judged from what the member's caches show (its Prometheus objects and the
/// rejection Events), and a `NoMatchingInstance` says why no Grafana matches.
pub(super) fn live_health(
    kind: ChildKind,
    object: &Value,
    connection: Option<&MemberConnection>,
) -> ChildHealth {
    let Some(connection) = connection else {
        return assess(kind, object);
    };
    let mut health = if needs_config_evidence(kind, object) {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let evidence = connection.config_evidence(namespace);
        assess_with_evidence(kind, object, &evidence.evidence())
    } else {
        assess(kind, object)
    };
    // Only then are the cluster's Grafana instances looked at (read from its cache).
    if health.reason == stacksmith_core::HealthReason::NoMatchingInstance {
        explain_no_matching_instance(&mut health, object, &connection.grafanas());
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_member_reads_as_it_did() {
        assert_eq!(
            Unavailable::NotRegistered.to_string(),
            "MemberCluster not registered"
        );
        assert_eq!(Unavailable::Connecting.to_string(), "connecting");
        assert_eq!(
            Unavailable::Unusable("ChildCrdsMissing: x".into()).to_string(),
            "ChildCrdsMissing: x"
        );
        assert_eq!(
            Unavailable::CachesNotSynchronised.to_string(),
            "watch caches not synchronised"
        );
    }
}

//! The prune stage, and the removal every delete goes through.
//!
//! Only inventoried objects are ever deleted (see [`stacksmith_core::inventory`]), each with its
//! inventoried uid as a delete precondition, children first and namespaces last. A namespace is
//! deleted only once nothing of the stack is left in it and nothing of anyone else is in it: one
//! that holds objects stacksmith did not write (or that cannot be listed) is left in place, and
//! a `NamespaceKept` Event says why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use stacksmith_core::aggregate::{FailedObject, FailedOperation};
use stacksmith_core::events::{EventAction, EventSeverity, StackEvent, event_reason};
use stacksmith_core::inventory::{InventoriedObject, Inventory, ObjectKey};
use stacksmith_core::plan::ObjectKind;

use super::Context;
use super::write::{Unavailable, usable_connection};
use crate::apply::{Deleted, delete_inventoried};
use crate::member::MemberConnection;
use crate::member::namespace_contents::{NamespaceContentsError, namespace_contents};

/// What a removal did not finish.
#[derive(Debug, Default)]
pub(super) struct Removal {
    /// Deletes the API server refused or that failed (tried again on the next pass).
    pub(super) failed: Vec<FailedObject>,
    /// Clusters that could not be reached, so their objects are still there.
    pub(super) blocked: BTreeSet<String>,
    /// What the stack should be told (namespaces kept, objects left behind).
    pub(super) events: Vec<StackEvent>,
}

/// Deletes `objects` (inventoried, in delete order) and forgets from `inventory` each one that is
/// gone or turned out not to be the one stacksmith wrote. An object whose deletion has started
/// stays inventoried until it is gone.
pub(super) async fn remove(
    ctx: &Context,
    objects: Vec<InventoriedObject>,
    inventory: &mut Inventory,
) -> Removal {
    let mut removal = Removal::default();
    let mut members: BTreeMap<String, Result<Arc<MemberConnection>, Unavailable>> = BTreeMap::new();
    let mut left_behind: BTreeMap<String, u32> = BTreeMap::new();
    for object in objects {
        let key = &object.key;
        if !members.contains_key(&key.cluster) {
            let member = usable_connection(ctx, &key.cluster).await;
            members.insert(key.cluster.clone(), member);
        }
        let connection = match members.get(&key.cluster) {
            Some(Ok(connection)) => Arc::clone(connection),
            Some(Err(Unavailable::NotRegistered)) => {
                // The MemberCluster is gone (its deletion is held while stacks use it, so
                // someone removed that hold): nothing can ever be deleted there.
                inventory.forget(key);
                *left_behind.entry(key.cluster.clone()).or_default() += 1;
                continue;
            }
            Some(Err(_)) | None => {
                removal.blocked.insert(key.cluster.clone());
                continue;
            }
        };
        if key.kind == ObjectKind::Namespace {
            if inventory.holds_inside(&key.cluster, &key.name) {
                continue;
            }
            match namespace_kept(&connection, &key.name, inventory).await {
                Ok(None) => {}
                Ok(Some(why)) => {
                    tracing::info!(cluster = %key.cluster, namespace = %key.name, %why, "leaving a tenant namespace in place");
                    inventory.forget(key);
                    removal.events.push(StackEvent {
                        severity: EventSeverity::Warning,
                        reason: event_reason::NAMESPACE_KEPT.to_owned(),
                        note: format!(
                            "namespace {} of cluster {} left in place: it {why}",
                            key.name, key.cluster
                        ),
                        action: EventAction::Delete,
                    });
                    continue;
                }
                Err(err) => {
                    // Not known yet: kept for now, and asked about again on the next pass.
                    tracing::warn!(cluster = %key.cluster, namespace = %key.name, %err, "reading a tenant namespace's contents");
                    removal
                        .failed
                        .push(failed(key, format!("reading its contents: {err}")));
                    continue;
                }
            }
        }
        tracing::info!(cluster = %key.cluster, kind = key.kind.kind(), namespace = %key.namespace, name = %key.name, "deleting an inventoried object");
        match delete_inventoried(&connection, &object).await {
            Ok(Deleted::Gone) => inventory.forget(key),
            Ok(Deleted::NotOurs) => {
                tracing::info!(cluster = %key.cluster, kind = key.kind.kind(), namespace = %key.namespace, name = %key.name, "not deleted: the object of that name is not the one stacksmith wrote");
                inventory.forget(key);
            }
            Ok(Deleted::Going) => {}
            Err(err) => {
                tracing::warn!(cluster = %key.cluster, kind = key.kind.kind(), name = %key.name, %err, "delete failed");
                removal.failed.push(failed(key, err.to_string()));
            }
        }
    }
    for (cluster, count) in left_behind {
        tracing::warn!(%cluster, count, "forgetting inventoried objects: their MemberCluster is no longer registered");
        removal.events.push(StackEvent {
            severity: EventSeverity::Warning,
            reason: event_reason::OBJECTS_LEFT_BEHIND.to_owned(),
            note: format!(
                "{count} objects stacksmith wrote into cluster {cluster} were left there: \
                 MemberCluster {cluster} is no longer registered"
            ),
            action: EventAction::Delete,
        });
    }
    removal
}

/// A delete that did not happen, for the status.
fn failed(key: &ObjectKey, message: String) -> FailedObject {
    FailedObject {
        cluster: key.cluster.clone(),
        kind: key.kind.kind().to_owned(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        message,
        operation: FailedOperation::Delete,
    }
}

/// Why a tenant namespace must stay (it holds someone else's objects, or some of its kinds
/// cannot be listed), or `None` when it holds nothing but what the stack wrote (and what
/// Kubernetes keeps in every namespace).
async fn namespace_kept(
    connection: &MemberConnection,
    namespace: &str,
    inventory: &Inventory,
) -> Result<Option<String>, NamespaceContentsError> {
    let ours = inventory.uids();
    let contents =
        namespace_contents(&connection.client, connection.timeout, namespace, &ours).await?;
    Ok((!contents.may_delete()).then(|| contents.to_string()))
}

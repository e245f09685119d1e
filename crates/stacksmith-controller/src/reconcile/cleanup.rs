//! Clean-up behind the finalizer: every object in the stack's inventory is deleted (only while
//! its uid matches), and the stack is released only when the inventory is empty: when each
//! object is known gone, not when a cache shows nothing. A cluster that cannot be reached holds
//! the deletion. `deletionPolicy: Orphan`, or another stack adopting the objects
//! (`stacksmith.io/adopt-from`), releases at once and deletes nothing.

use std::collections::BTreeSet;

use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use stacksmith_api::{CustomerStack, DeletionPolicy};
use stacksmith_core::aggregate::DeletionState;
use stacksmith_core::events::{EventAction, EventSeverity, StackEvent, event_reason};
use stacksmith_core::inventory::{Inventory, ObjectKey};
use stacksmith_core::observe::Ownership;
use stacksmith_core::plan::{StackIdentity, plan_stack_with_config_maps};

use super::status::{self, Findings};
use super::write::{Unavailable, usable_connection};
use super::{Context, ReconcileError, identity, prune, stack_key};
use crate::apply::cached;

/// Deletes the stack's inventoried objects in every cluster; done when none is left.
pub(super) async fn clean_up(
    stack: &CustomerStack,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let identity = identity(stack)?;
    let uid = identity.uid.clone();
    // A stack being deleted no longer converges: its streak of failed writes ends here.
    ctx.count_failed_pass(&uid, false);
    if stack.spec.deletion_policy == DeletionPolicy::Orphan {
        tracing::info!(stack = %stack_key(stack), "deletionPolicy Orphan: leaving the children in place");
        delete_credentials(stack, ctx, &identity).await?;
        ctx.inventories.release(&uid);
        return Ok(Action::await_change());
    }
    if let Some(heir) = ctx.adopting_stack(stack) {
        tracing::info!(stack = %stack_key(stack), %heir, "leaving the objects to the stack that adopts them");
        let event = StackEvent {
            severity: EventSeverity::Normal,
            reason: event_reason::HANDED_OVER.to_owned(),
            note: format!("the objects are left to CustomerStack {heir}, which adopts them"),
            action: EventAction::Delete,
        };
        status::publish(stack, ctx, vec![event]).await;
        delete_credentials(stack, ctx, &identity).await?;
        ctx.inventories.release(&uid);
        return Ok(Action::await_change());
    }
    let mut inventory = ctx.inventories.of(stack, &uid);
    let mut blocked = take_in_unrecorded(stack, ctx, &identity, &mut inventory).await;
    let removal = prune::remove(ctx, inventory.in_delete_order(), &mut inventory).await;
    status::publish(stack, ctx, removal.events).await;
    blocked.extend(removal.blocked);
    ctx.inventories.keep(&uid, &inventory);
    if inventory.is_empty() && blocked.is_empty() {
        tracing::info!(stack = %stack_key(stack), "every inventoried object is gone");
        delete_credentials(stack, ctx, &identity).await?;
        ctx.inventories.release(&uid);
        return Ok(Action::await_change());
    }
    let remaining = u32::try_from(inventory.len()).unwrap_or(u32::MAX);
    let deletion = if blocked.is_empty() {
        DeletionState::InProgress { remaining }
    } else {
        DeletionState::Blocked {
            clusters: blocked.iter().cloned().collect(),
        }
    };
    let findings = Findings {
        deletion: Some(deletion),
        inventory: inventory.entries(),
        failed_deletes: removal.failed,
        ..Findings::default()
    };
    status::record(stack, ctx, &findings, None).await?;
    Err(ReconcileError::DeletionPending {
        stack: stack_key(stack),
        detail: if blocked.is_empty() {
            format!("{remaining} objects left")
        } else {
            format!(
                "clusters unreachable: {}",
                blocked.into_iter().collect::<Vec<_>>().join(", ")
            )
        },
    })
}

/// The stack's data-path credentials on the hub go with it (its tenant CA signs nothing more).
async fn delete_credentials(
    stack: &CustomerStack,
    ctx: &Context,
    identity: &StackIdentity,
) -> Result<(), ReconcileError> {
    ctx.credentials
        .delete(identity)
        .await
        .map_err(|source| ReconcileError::Credentials {
            stack: stack_key(stack),
            source: Box::new(source),
        })
}

/// Objects written moments before a restart may not have reached the inventory: the planned
/// objects the caches show carrying exactly this stack's labels (written through that member)
/// are taken in. Returns the clusters where that cannot be known now (never connected since the
/// operator started, or not answering): the deletion waits for them.
async fn take_in_unrecorded(
    stack: &CustomerStack,
    ctx: &Context,
    identity: &StackIdentity,
    inventory: &mut Inventory,
) -> BTreeSet<String> {
    let mut blocked = BTreeSet::new();
    // A dashboard's ConfigMap changes its model, never its name: without the cache, the plan
    // fails only for a stack naming a ConfigMap, and then only what the inventory holds goes.
    let config_maps = ctx
        .dashboard_sources
        .of(stack, super::STARTUP_SETTLE_CAP)
        .await
        .unwrap_or_default();
    let Ok(plan) = plan_stack_with_config_maps(
        &stack.spec,
        identity,
        &ctx.fleet.member_infos(),
        &config_maps,
    ) else {
        return blocked;
    };
    for cluster in &plan.clusters {
        let connection = match usable_connection(ctx, cluster).await {
            Ok(connection) => connection,
            Err(Unavailable::Connecting | Unavailable::Unreachable(_)) => {
                blocked.insert(cluster.clone());
                continue;
            }
            Err(_) => continue,
        };
        for desired in plan.objects.iter().filter(|o| &o.cluster == cluster) {
            let key = ObjectKey::of(desired);
            if inventory.uid(&key).is_some() {
                continue;
            }
            let found = cached(&connection, desired.kind, &desired.namespace, &desired.name);
            let head = found.map(|object| object.head());
            if let Some(head) = head
                && stacksmith_core::observe::ownership(
                    &head.labels,
                    &identity.uid,
                    &connection.name,
                ) == Ownership::Ours
                && let Some(object_uid) = head.uid
            {
                inventory.record(key, object_uid);
            }
        }
    }
    blocked
}

impl Context {
    /// The stack (namespace/name) that adopts the objects of `stack` (its
    /// `stacksmith.io/adopt-from` names it), if one exists and is not being deleted.
    pub(super) fn adopting_stack(&self, stack: &CustomerStack) -> Option<String> {
        let namespace = stack.namespace()?;
        let name = stack.name_any();
        self.stacks.state().iter().find_map(|guarded| {
            let other = guarded.0.as_ref().ok()?;
            let adopts = other
                .annotations()
                .get(stacksmith_api::labels::ADOPT_FROM)
                .is_some_and(|from| *from == name);
            (adopts
                && other.namespace().as_deref() == Some(namespace.as_str())
                && other.name_any() != name
                && other.metadata.deletion_timestamp.is_none()
                && other.spec.customer == stack.spec.customer)
                .then(|| format!("{namespace}/{}", other.name_any()))
        })
    }
}

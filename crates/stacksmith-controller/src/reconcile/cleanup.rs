//! Clean-up behind the finalizer: every child of a deleted stack is deleted in every cluster,
//! and the stack is released only when none is left. An unreachable cluster that still holds
//! children (or whose caches cannot tell) holds the deletion; `deletionPolicy: Orphan` releases
//! at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use stacksmith_api::{CustomerStack, DeletionPolicy};
use stacksmith_core::aggregate::DeletionState;

use super::status::{self, Findings};
use super::{Context, ReconcileError, identity, stack_key};
use crate::apply::{delete_object, owned_objects};
use crate::member::{MemberConnection, Reachability};

/// Deletes the children in every cluster; done when none is left.
pub(super) async fn clean_up(
    stack: &CustomerStack,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let uid = identity(stack)?.uid;
    // A stack being deleted no longer converges: its streak of failed writes ends here.
    ctx.count_failed_pass(&uid, false);
    if stack.spec.deletion_policy == DeletionPolicy::Orphan {
        tracing::info!(stack = %stack_key(stack), "deletionPolicy Orphan: leaving the children in place");
        return Ok(Action::await_change());
    }
    let mut used: BTreeSet<String> = [
        stack.spec.metrics.cluster.clone(),
        stack.spec.dashboards.cluster.clone(),
    ]
    .into();
    used.extend(
        stack
            .status
            .iter()
            .flat_map(|s| s.children.iter().map(|c| c.cluster.clone())),
    );
    let mut remaining = 0u32;
    let mut blocked = Vec::new();
    let connected: Vec<Arc<MemberConnection>> = ctx.fleet.connections();
    for cluster in &used {
        let Some(connection) = connected.iter().find(|c| &c.name == cluster) else {
            if ctx.fleet.state(cluster).is_some() {
                blocked.push(cluster.clone());
            }
            continue;
        };
        let owned = owned_objects(connection, &uid);
        if connection.reachability() != Reachability::Reachable {
            if !owned.is_empty() {
                blocked.push(cluster.clone());
            }
            continue;
        }
        remaining += u32::try_from(owned.len()).unwrap_or(u32::MAX);
        for object in owned.iter().filter(|o| !o.deleting) {
            if let Err(err) = delete_object(connection, object).await {
                tracing::warn!(cluster = %cluster, kind = object.kind.kind(), name = %object.name, %err, "delete failed");
            }
        }
    }
    if remaining == 0 && blocked.is_empty() {
        tracing::info!(stack = %stack_key(stack), "all children deleted");
        return Ok(Action::await_change());
    }
    let deletion = if blocked.is_empty() {
        DeletionState::InProgress { remaining }
    } else {
        blocked.sort();
        DeletionState::Blocked {
            clusters: blocked.clone(),
        }
    };
    let findings = Findings {
        deletion: Some(deletion),
        ..Findings::default()
    };
    status::record(stack, ctx, &findings, None).await?;
    Err(ReconcileError::DeletionPending {
        stack: stack_key(stack),
        detail: if blocked.is_empty() {
            format!("{remaining} objects left")
        } else {
            format!("clusters unreachable: {}", blocked.join(", "))
        },
    })
}

//! The prune stage: the stack's objects that the plan no longer holds are deleted, in every
//! reachable member.

use stacksmith_core::aggregate::{FailedObject, FailedOperation};
use stacksmith_core::plan::StackPlan;

use super::Context;
use crate::apply::{delete_object, owned_objects};
use crate::member::Reachability;

/// Deletes the stack's objects that are no longer planned, in every reachable member. A failed
/// delete is returned (the status reports it and the pass is retried), and tried again on the
/// next pass.
pub(super) async fn remove_unplanned(
    ctx: &Context,
    plan: &StackPlan,
    uid: &str,
) -> Vec<FailedObject> {
    let mut failed = Vec::new();
    for connection in ctx.fleet.connections() {
        if connection.reachability() != Reachability::Reachable {
            continue;
        }
        for object in owned_objects(&connection, uid) {
            let planned = plan.holds(
                &connection.name,
                object.kind,
                &object.namespace,
                &object.name,
            );
            if object.deleting || planned {
                continue;
            }
            tracing::info!(cluster = %connection.name, kind = object.kind.kind(), namespace = %object.namespace, name = %object.name, "deleting an object no longer planned");
            if let Err(err) = delete_object(&connection, &object).await {
                tracing::warn!(cluster = %connection.name, kind = object.kind.kind(), name = %object.name, %err, "delete failed");
                failed.push(FailedObject {
                    cluster: connection.name.clone(),
                    kind: object.kind.kind().to_owned(),
                    namespace: object.namespace.clone(),
                    name: object.name.clone(),
                    message: err.to_string(),
                    operation: FailedOperation::Delete,
                });
            }
        }
    }
    failed
}

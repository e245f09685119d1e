//! The record stage: the findings of a pass aggregated into the stack's status, which is written
//! only when it changed (and briefly held while new children make their first reports), and the
//! Events the pass publishes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use stacksmith_api::{CustomerStack, CustomerStackStatus, InventoryEntry};
use stacksmith_core::aggregate::{
    AggregateInput, ChildObservation, ClusterObservation, DeletionState, FailedObject,
    ForeignObject, SpecProblem, aggregate,
};
use stacksmith_core::events::{
    EventInput, EventSeverity, StackEvent, only_progressing, ready_condition, stack_events,
};
use stacksmith_core::inventory::ObjectKey;
use stacksmith_core::observe::{WriteOutcome, non_child_problems};
use stacksmith_core::plan::DesiredObject;

use super::{Context, ReconcileError, stack_key};
use crate::FIELD_MANAGER;
use crate::remote::{HUB_TIMEOUT, call, now};

/// After children of a new generation are written, how long the status write waits for their
/// operators' first reports while the only news would be "still progressing": a new stack whose
/// children report quickly gets one status write, not one per report.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(1);

/// Everything a pass found, for the status and the Events.
#[derive(Default)]
pub(super) struct Findings<'a> {
    pub(super) problems: Vec<SpecProblem>,
    /// The rules of its tenant policy the stack breaks (nothing was planned).
    pub(super) policy_violations: Vec<SpecProblem>,
    pub(super) children: Vec<ChildObservation>,
    pub(super) clusters: Vec<ClusterObservation>,
    pub(super) foreign: Vec<ForeignObject>,
    pub(super) deletion: Option<DeletionState>,
    pub(super) outcomes: Vec<&'a (DesiredObject, WriteOutcome)>,
    /// Objects no longer planned whose delete failed.
    pub(super) failed_deletes: Vec<FailedObject>,
    /// What stacksmith wrote for the stack, after this pass.
    pub(super) inventory: Vec<InventoryEntry>,
    /// A move the stack asks for and does not allow.
    pub(super) refused_move: Option<SpecProblem>,
    /// Planned objects another writer keeps changing back (a contested episode): their
    /// restores make no `DriftCorrected` Event.
    pub(super) contested: Vec<ObjectKey>,
}

/// What the record stage did: how long the status write is held, and whether the stack is
/// Ready.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Recorded {
    pub(super) held: Option<Duration>,
    pub(super) ready: bool,
}

/// A held status write: the generation it was held for, and until when.
type Hold = (Option<i64>, Instant);

/// Stacks whose status write is held, by uid; see [`SETTLE_WINDOW`].
#[derive(Debug, Default)]
pub(super) struct StatusHolds {
    holds: Mutex<HashMap<String, Hold>>,
}

impl StatusHolds {
    /// Until when the status write of `stack` may be held: it starts when this pass wrote
    /// children for a generation the status does not show yet (`wrote_new`), and lasts
    /// [`SETTLE_WINDOW`].
    pub(super) fn deadline(
        &self,
        stack: &CustomerStack,
        uid: &str,
        wrote_new: bool,
    ) -> Option<Instant> {
        let generation = stack.metadata.generation;
        let shown = stack.status.as_ref().and_then(|s| s.observed_generation) == generation;
        let now = Instant::now();
        let mut holds = crate::locks::lock(&self.holds);
        holds.retain(|_, (_, until)| *until > now);
        let decided = hold_until(
            holds.get(uid).copied(),
            generation,
            wrote_new && !shown,
            now,
        );
        if let Some(until) = decided {
            holds.insert(uid.to_owned(), (generation, until));
        }
        decided
    }

    fn release(&self, uid: &str) {
        crate::locks::lock(&self.holds).remove(uid);
    }
}

/// The hold decision: an unexpired hold for the same generation stands; a pass that wrote a
/// generation the status does not show starts one; anything else holds nothing.
fn hold_until(
    held: Option<Hold>,
    generation: Option<i64>,
    wrote_unshown_generation: bool,
    now: Instant,
) -> Option<Instant> {
    match held {
        Some((held_generation, until)) if held_generation == generation && until > now => {
            Some(until)
        }
        _ if wrote_unshown_generation => Some(now + SETTLE_WINDOW),
        _ => None,
    }
}

/// How long a status write is still held: only while `Ready` says nothing but "progressing".
fn held_for(status: &CustomerStackStatus, hold: Option<Instant>) -> Option<Duration> {
    hold.filter(|_| only_progressing(ready_condition(Some(status))))
        .map(|until| until.saturating_duration_since(Instant::now()))
        .filter(|left| !left.is_zero())
}

/// Aggregates the findings and writes the status when it changed; returns how long to wait when
/// the write is held (`hold`: the children of a new generation are still making their first
/// reports and nothing is wrong). Events about what was written are published either way.
pub(super) async fn record(
    stack: &CustomerStack,
    ctx: &Context,
    findings: &Findings<'_>,
    hold: Option<Instant>,
) -> Result<Recorded, ReconcileError> {
    let previous = stack.status.as_ref();
    let (mut failed_objects, foreign_objects) =
        non_child_problems(findings.outcomes.iter().copied(), &findings.foreign);
    failed_objects.extend(findings.failed_deletes.iter().cloned());
    let status = aggregate(&AggregateInput {
        generation: stack.metadata.generation,
        paused: stack.spec.paused,
        spec_problems: &findings.problems,
        policy_violations: &findings.policy_violations,
        children: &findings.children,
        clusters: &findings.clusters,
        foreign_objects: &foreign_objects,
        failed_objects: &failed_objects,
        deletion: findings.deletion.as_ref(),
        previous,
        now: &now(),
        inventory: &findings.inventory,
        refused_move: findings.refused_move.as_ref(),
    });
    let held = held_for(&status, hold);
    let events = stack_events(&EventInput {
        previous,
        status: &status,
        generation: stack.metadata.generation,
        outcomes: &findings.outcomes,
        ready_events: held.is_none(),
        contested: &findings.contested,
    });
    publish(stack, ctx, events).await;
    let ready = ready_condition(Some(&status)).is_some_and(|c| c.status == "True");
    if held.is_some() {
        return Ok(Recorded { held, ready });
    }
    if let Some(uid) = stack.uid() {
        ctx.status_holds.release(&uid);
    }
    if previous != Some(&status) {
        write_status(stack, ctx, &status).await?;
    }
    Ok(Recorded { held: None, ready })
}

/// Writes the stack's status (server-side apply, forced, with stacksmith's field manager).
async fn write_status(
    stack: &CustomerStack,
    ctx: &Context,
    status: &CustomerStackStatus,
) -> Result<(), ReconcileError> {
    let namespace = stack
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    let api: Api<CustomerStack> = Api::namespaced(ctx.hub.clone(), &namespace);
    let body =
        json!({"apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack", "status": status});
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    match tokio::time::timeout(
        HUB_TIMEOUT,
        api.patch_status(&stack.name_any(), &params, &patch),
    )
    .await
    {
        Ok(Ok(_)) => {
            let ready = ready_condition(Some(status));
            tracing::debug!(
                ready = ready.map(|c| c.status.as_str()),
                reason = ready.map(|c| c.reason.as_str()),
                children_ready = status.children_ready.as_deref(),
                "status written"
            );
            Ok(())
        }
        Ok(Err(source)) => Err(ReconcileError::StatusWrite {
            stack: stack_key(stack),
            source,
        }),
        Err(_) => Err(ReconcileError::HubTimeout {
            stack: stack_key(stack),
            what: "writing the status",
        }),
    }
}

/// A stack that does not deserialize: reported once per change, left alone.
pub(super) async fn report_invalid(
    ctx: &Context,
    invalid: &kube::core::error_boundary::InvalidObject,
) {
    crate::invalid_object::report(&ctx.recorder, "CustomerStack", invalid).await;
}

/// Publishes Events on the stack; a failure is logged, never fails the pass.
pub(super) async fn publish(stack: &CustomerStack, ctx: &Context, events: Vec<StackEvent>) {
    if events.is_empty() {
        return;
    }
    let reference = stack.object_ref(&());
    for event in events {
        let event = KubeEvent {
            type_: match event.severity {
                EventSeverity::Normal => EventType::Normal,
                EventSeverity::Warning => EventType::Warning,
            },
            reason: event.reason,
            note: Some(event.note.chars().take(1000).collect()),
            action: event.action.as_str().into(),
            secondary: None,
        };
        if let Err(err) = call(HUB_TIMEOUT, ctx.recorder.publish(&event, &reference)).await {
            tracing::warn!(stack = %stack_key(stack), %err, "publishing an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_starts_with_a_new_generation_and_lasts_its_window() {
        let now = Instant::now();
        let started = hold_until(None, Some(2), true, now);
        assert_eq!(started, Some(now + SETTLE_WINDOW));
        assert_eq!(hold_until(None, Some(2), false, now), None);
        let held = (Some(2), now + SETTLE_WINDOW);
        let later = now + Duration::from_millis(300);
        assert_eq!(
            hold_until(Some(held), Some(2), false, later),
            Some(now + SETTLE_WINDOW),
            "the same generation keeps its deadline"
        );
        assert_eq!(
            hold_until(Some(held), Some(3), false, later),
            None,
            "a newer generation without a write holds nothing"
        );
        assert_eq!(
            hold_until(Some(held), Some(2), false, now + SETTLE_WINDOW * 2),
            None,
            "an expired hold is over"
        );
    }
}

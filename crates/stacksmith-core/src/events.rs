//! Which Events a pass publishes on a stack, decided from the status before and after it and
//! from what the pass wrote.
//!
//! `Ready` is recorded when a stack runs into a problem (from Ready or from progressing) and when
//! it recovers from one; a stack that is merely progressing (new, or rolling out a change) and
//! then gets Ready makes no Event. Writes are recorded when they repaired something done outside
//! stacksmith (drift, a deleted child) and, once per episode, when an object of a planned name
//! belongs to someone else, and when another writer keeps changing a child back (a contested
//! field: its restores are then not recorded one by one).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use stacksmith_api::CustomerStackStatus;

use crate::aggregate::{condition_type, reason};
use crate::inventory::ObjectKey;
use crate::observe::{NotWrittenReason, WriteOutcome, display_name};
use crate::plan::DesiredObject;

/// Reasons of the Events about writes.
pub mod event_reason {
    /// A child changed outside stacksmith was restored.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// Someone else keeps changing a child back after stacksmith restores it: its restores now
    /// wait (15 s, doubling up to 5 min). Once per episode.
    pub const FIELD_CONTESTED: &str = "FieldContested";
    /// A child deleted outside stacksmith was re-created.
    pub const CHILD_RECREATED: &str = "ChildRecreated";
    /// An object of a planned name belongs to someone else.
    pub const CONFLICT: &str = super::reason::CONFLICT;
    /// A child was deleted to be created again: a field its CRD makes immutable changed.
    pub const CHILD_REPLACED: &str = "ChildReplaced";
    /// The stack recovered (the `Ready` reason).
    pub const READY: &str = super::reason::READY;
    /// A tenant namespace was left in place: it holds objects stacksmith did not write (or
    /// that it could not list).
    pub const NAMESPACE_KEPT: &str = "NamespaceKept";
    /// Inventoried objects were forgotten without a delete: their `MemberCluster` is no longer
    /// registered.
    pub const OBJECTS_LEFT_BEHIND: &str = "ObjectsLeftBehind";
    /// A stack being deleted left its objects to the stack that adopts them.
    pub const HANDED_OVER: &str = "HandedOver";
    /// The objects of a stack's old cluster or namespace were deleted after a move.
    pub const MOVED: &str = "Moved";
}

/// Normal or Warning, as Kubernetes Events are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSeverity {
    /// Something good or expected.
    Normal,
    /// Something a human may want to look at.
    Warning,
}

/// What a pass did, as the Event action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// The aggregated status changed.
    Aggregate,
    /// A write to a member.
    Apply,
    /// A delete in a member (or a decision not to delete).
    Delete,
}

impl EventAction {
    /// The action as Events carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Aggregate => "Aggregate",
            EventAction::Apply => "Apply",
            EventAction::Delete => "Delete",
        }
    }
}

/// One Event to publish on the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackEvent {
    /// Normal or Warning.
    pub severity: EventSeverity,
    /// The reason (a condition reason or one of [`event_reason`]).
    pub reason: String,
    /// One line for a human.
    pub note: String,
    /// What the pass was doing.
    pub action: EventAction,
}

/// What [`stack_events`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct EventInput<'a> {
    /// The status before this pass.
    pub previous: Option<&'a CustomerStackStatus>,
    /// The status this pass decided.
    pub status: &'a CustomerStackStatus,
    /// The stack's `metadata.generation`.
    pub generation: Option<i64>,
    /// Every planned object and what happened to it.
    pub outcomes: &'a [&'a (DesiredObject, WriteOutcome)],
    /// Whether transitions of `Ready` are published in this pass (not while the status write is
    /// held for the children's first reports).
    pub ready_events: bool,
    /// The objects in a contested episode (another writer keeps changing them back): their
    /// restores are not recorded as `DriftCorrected`, the episode's one `FieldContested` said it.
    pub contested: &'a [ObjectKey],
}

/// Whether `Ready` says only that children are still on their way (new or rolling out), nothing
/// wrong: such a status may be held briefly, and turning Ready from it makes no Event.
pub fn only_progressing(ready: Option<&Condition>) -> bool {
    ready.is_some_and(|c| {
        c.status != "True"
            && matches!(
                c.reason.as_str(),
                reason::CHILD_PROGRESSING | reason::CHILD_UNKNOWN | reason::PENDING
            )
    })
}

/// The stack's `Ready` condition in a status.
pub fn ready_condition(status: Option<&CustomerStackStatus>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::READY)
}

/// The Events a pass publishes, in order.
pub fn stack_events(input: &EventInput<'_>) -> Vec<StackEvent> {
    let mut events = Vec::new();
    if input.ready_events {
        events.extend(ready_event(input.previous, input.status));
    }
    let spec_unchanged = input.previous.and_then(|p| p.observed_generation) == input.generation;
    let was_conflict =
        ready_condition(input.previous).is_some_and(|c| c.reason == reason::CONFLICT);
    for (desired, outcome) in input.outcomes {
        let what = format!(
            "{} {} on {}",
            desired.kind.kind(),
            display_name(desired),
            desired.cluster
        );
        let event = |severity, reason: &str, note: String| StackEvent {
            severity,
            reason: reason.to_owned(),
            note,
            action: EventAction::Apply,
        };
        match outcome {
            WriteOutcome::Updated
                if spec_unchanged && !input.contested.contains(&ObjectKey::of(desired)) =>
            {
                events.push(event(
                    EventSeverity::Warning,
                    event_reason::DRIFT_CORRECTED,
                    format!("restored {what}: it was changed outside stacksmith"),
                ));
            }
            // Once per contested episode: when it starts.
            WriteOutcome::NotWritten {
                reason: NotWrittenReason::Contested(contest),
                ..
            } if contest.started => events.push(event(
                EventSeverity::Warning,
                event_reason::FIELD_CONTESTED,
                format!(
                    "{what}: {} changed again by {} within a minute of stacksmith restoring \
                     it; stacksmith restores it in {} s, then less and less often (at most \
                     every 5 min) while this goes on. Stop the other writer, or remove the \
                     field from the stack",
                    contest.fields_text(),
                    contest.writer_text(),
                    contest.retry_in_secs(),
                ),
            )),
            WriteOutcome::Created if spec_unchanged && was_listed(input.previous, desired) => {
                events.push(event(
                    EventSeverity::Warning,
                    event_reason::CHILD_RECREATED,
                    format!("re-created {what}: it was deleted outside stacksmith"),
                ));
            }
            WriteOutcome::Replacing {
                field,
                deleted_now: true,
            } => events.push(event(
                EventSeverity::Normal,
                event_reason::CHILD_REPLACED,
                format!("deleted {what} to create it again: {field} cannot change in place"),
            )),
            // Once per conflict episode: while the stack already reports a conflict, say nothing.
            WriteOutcome::Conflict { owner } if !was_conflict => events.push(event(
                EventSeverity::Warning,
                event_reason::CONFLICT,
                format!("{what} belongs to {owner}; not overwritten"),
            )),
            _ => {}
        }
    }
    events
}

/// The Event a change of `Ready` makes, if any.
fn ready_event(
    previous: Option<&CustomerStackStatus>,
    status: &CustomerStackStatus,
) -> Option<StackEvent> {
    let now = ready_condition(Some(status))?;
    let was_in_trouble = in_trouble(ready_condition(previous));
    let (severity, reason) = if in_trouble(Some(now)) && !was_in_trouble {
        (EventSeverity::Warning, now.reason.clone())
    } else if now.status == "True" && was_in_trouble {
        (EventSeverity::Normal, event_reason::READY.to_owned())
    } else {
        return None;
    };
    Some(StackEvent {
        severity,
        reason,
        note: now.message.clone(),
        action: EventAction::Aggregate,
    })
}

/// `Ready` is not True for a reason other than progress.
fn in_trouble(ready: Option<&Condition>) -> bool {
    ready.is_some_and(|c| c.status != "True") && !only_progressing(ready)
}

/// Whether the previous status listed the child as having existed (not merely planned).
fn was_listed(previous: Option<&CustomerStackStatus>, desired: &DesiredObject) -> bool {
    previous.is_some_and(|p| {
        p.children.iter().any(|c| {
            c.cluster == desired.cluster
                && c.kind == desired.kind.kind()
                && c.name == desired.name
                && c.reason != reason::NOT_CREATED
                && c.reason != reason::APPLYING
        })
    })
}

#[cfg(test)]
mod tests;

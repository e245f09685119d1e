use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use stacksmith_api::{ChildStatus, Verdict};

use super::*;
use crate::health::ChildKind;
use crate::plan::ObjectKind;

fn status(ready: &str, why: &str, generation: i64) -> CustomerStackStatus {
    CustomerStackStatus {
        observed_generation: Some(generation),
        conditions: vec![Condition {
            type_: condition_type::READY.to_owned(),
            status: ready.to_owned(),
            reason: why.to_owned(),
            message: format!("{why} message"),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(generation),
        }],
        ..CustomerStackStatus::default()
    }
}

fn rule_status(child_reason: &str) -> ChildStatus {
    ChildStatus {
        cluster: "prom-1".into(),
        kind: "PrometheusRule".into(),
        namespace: "customer-acme".into(),
        name: "acme-core".into(),
        verdict: Verdict::Healthy,
        reason: child_reason.into(),
        message: String::new(),
        last_observed: None,
        last_known_verdict: None,
    }
}

fn rule() -> DesiredObject {
    DesiredObject {
        cluster: "prom-1".into(),
        kind: ObjectKind::Child(ChildKind::PrometheusRule),
        namespace: "customer-acme".into(),
        name: "acme-core".into(),
        manifest: json!({}),
    }
}

fn events(
    previous: Option<&CustomerStackStatus>,
    now: &CustomerStackStatus,
    generation: i64,
    outcomes: &[&(DesiredObject, WriteOutcome)],
) -> Vec<(EventSeverity, String)> {
    stack_events(&EventInput {
        previous,
        status: now,
        generation: Some(generation),
        outcomes,
        ready_events: true,
        contested: &[],
    })
    .into_iter()
    .map(|e| (e.severity, e.reason))
    .collect()
}

#[test]
fn progress_then_ready_makes_no_event() {
    let progressing = status("False", reason::CHILD_PROGRESSING, 1);
    let ready = status("True", reason::READY, 1);
    assert!(events(None, &progressing, 1, &[]).is_empty());
    assert!(events(Some(&progressing), &ready, 1, &[]).is_empty());
    assert!(only_progressing(ready_condition(Some(&progressing))));
    assert!(!only_progressing(ready_condition(Some(&ready))));
}

#[test]
fn trouble_and_recovery_are_each_published_once() {
    let ready = status("True", reason::READY, 1);
    let degraded = status("False", reason::CHILD_DEGRADED, 1);
    assert_eq!(
        events(Some(&ready), &degraded, 1, &[]),
        [(EventSeverity::Warning, reason::CHILD_DEGRADED.to_owned())]
    );
    assert!(
        events(Some(&degraded), &degraded, 1, &[]).is_empty(),
        "still degraded: no second Event"
    );
    assert_eq!(
        events(Some(&degraded), &ready, 1, &[]),
        [(EventSeverity::Normal, event_reason::READY.to_owned())]
    );
    let held = stack_events(&EventInput {
        previous: Some(&ready),
        status: &degraded,
        generation: Some(1),
        outcomes: &[],
        ready_events: false,
        contested: &[],
    });
    assert!(held.is_empty(), "no Ready Event while the status is held");
}

#[test]
fn writes_that_repair_outside_changes_are_published_only_when_the_spec_did_not_change() {
    let mut ready = status("True", reason::READY, 1);
    ready.children = vec![rule_status(reason::READY)];
    let updated = (rule(), WriteOutcome::Updated);
    let created = (rule(), WriteOutcome::Created);
    assert_eq!(
        events(Some(&ready), &ready, 1, &[&updated]),
        [(
            EventSeverity::Warning,
            event_reason::DRIFT_CORRECTED.to_owned()
        )]
    );
    assert_eq!(
        events(Some(&ready), &ready, 1, &[&created]),
        [(
            EventSeverity::Warning,
            event_reason::CHILD_RECREATED.to_owned()
        )]
    );
    assert!(
        events(Some(&ready), &ready, 2, &[&updated, &created]).is_empty(),
        "a new generation: the writes are the spec change"
    );
    let mut applying = ready.clone();
    applying.children = vec![rule_status(reason::APPLYING)];
    assert!(
        events(Some(&applying), &applying, 1, &[&created]).is_empty(),
        "a child never seen is not re-created"
    );
}

#[test]
fn a_conflict_is_published_once_per_episode() {
    let ready = status("True", reason::READY, 1);
    let conflict = status("False", reason::CONFLICT, 1);
    let outcome = (
        rule(),
        WriteOutcome::Conflict {
            owner: "CustomerStack team-b/globex".into(),
        },
    );
    let first = stack_events(&EventInput {
        previous: Some(&ready),
        status: &conflict,
        generation: Some(1),
        outcomes: &[&outcome],
        ready_events: true,
        contested: &[],
    });
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[1].reason, event_reason::CONFLICT);
    assert_eq!(
        first[1].note,
        "PrometheusRule customer-acme/acme-core on prom-1 belongs to CustomerStack team-b/globex; not overwritten"
    );
    assert!(events(Some(&conflict), &conflict, 1, &[&outcome]).is_empty());
}

#[test]
fn a_replaced_child_is_published_once_when_it_is_deleted() {
    let ready = status("True", reason::READY, 1);
    let deleted = (
        rule(),
        WriteOutcome::Replacing {
            field: "spec.instanceSelector",
            deleted_now: true,
        },
    );
    let going = (
        rule(),
        WriteOutcome::Replacing {
            field: "spec.instanceSelector",
            deleted_now: false,
        },
    );
    assert_eq!(
        events(Some(&ready), &ready, 2, &[&deleted]),
        [(
            EventSeverity::Normal,
            event_reason::CHILD_REPLACED.to_owned()
        )]
    );
    assert!(
        events(Some(&ready), &ready, 2, &[&going]).is_empty(),
        "not again while it goes away"
    );
}

#[test]
fn a_contested_field_is_published_when_the_episode_starts_and_its_restores_are_not() {
    use std::time::Duration;

    use crate::inventory::ObjectKey;
    use crate::observe::{Contest, NotWrittenReason};

    let ready = status("True", reason::READY, 1);
    let contested = |started| {
        (
            rule(),
            WriteOutcome::NotWritten {
                existing: Some(Box::new(json!({}))),
                reason: NotWrittenReason::Contested(Contest {
                    fields: vec!["spec.groups".into()],
                    managers: vec!["rule-syncer".into()],
                    retry_in: Duration::from_millis(14_200),
                    started,
                }),
            },
        )
    };
    let start = contested(true);
    let first = stack_events(&EventInput {
        previous: Some(&ready),
        status: &ready,
        generation: Some(1),
        outcomes: &[&start],
        ready_events: true,
        contested: &[],
    });
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].reason, event_reason::FIELD_CONTESTED);
    assert_eq!(first[0].severity, EventSeverity::Warning);
    assert_eq!(
        first[0].note,
        "PrometheusRule customer-acme/acme-core on prom-1: spec.groups changed again by field \
         manager \"rule-syncer\" within a minute of stacksmith restoring it; stacksmith restores \
         it in 15 s, then less and less often (at most every 5 min) while this goes on. Stop the \
         other writer, or remove the field from the stack"
    );
    // Still waiting: nothing more.
    assert!(events(Some(&ready), &ready, 1, &[&contested(false)]).is_empty());
    // Restored during the episode: no DriftCorrected.
    let restored = (rule(), WriteOutcome::Updated);
    let keys = [ObjectKey::of(&rule())];
    let during = stack_events(&EventInput {
        previous: Some(&ready),
        status: &ready,
        generation: Some(1),
        outcomes: &[&restored],
        ready_events: true,
        contested: &keys,
    });
    assert!(during.is_empty(), "{during:?}");
    // Another object's drift is still reported.
    let mut other = rule();
    other.name = "acme-other".into();
    let other_restored = (other, WriteOutcome::Updated);
    let other_events = stack_events(&EventInput {
        previous: Some(&ready),
        status: &ready,
        generation: Some(1),
        outcomes: &[&other_restored],
        ready_events: true,
        contested: &keys,
    });
    assert_eq!(other_events.len(), 1);
    assert_eq!(other_events[0].reason, event_reason::DRIFT_CORRECTED);
}

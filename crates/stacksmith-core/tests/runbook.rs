//! The operations runbook (`docs/operations.md`) has an entry for every reason stacksmith writes:
//! every `CustomerStack` condition reason, every child reason, every `MemberCluster` reason and
//! every Event reason. A new reason without a runbook entry fails this test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use stacksmith_core::HealthReason;
use stacksmith_core::member_status::{ProbeFailure, ProbeResult, member_status};

const RUNBOOK: &str = include_str!("../../../docs/operations.md");
/// The source of `stacksmith_core::aggregate::reason`: its constants are listed from the source
/// so that a new one is checked without anyone having to add it here.
const AGGREGATE_SOURCE: &str = include_str!("../src/aggregate.rs");
/// The source of `stacksmith_core::events::event_reason`, read the same way.
const EVENTS_SOURCE: &str = include_str!("../src/events.rs");

const STACK_SECTION: &str = "## Runbook: CustomerStack reasons";
const CHILD_SECTION: &str = "## Runbook: per-child reasons";
const MEMBER_SECTION: &str = "## Runbook: MemberCluster reasons";
/// The section whose table lists the Events on a stack.
const EVENTS_SECTION: &str = "## Reading status";

/// Lists every variant of an enum, and fails to compile when a variant is added without being
/// listed (the exhaustive `match`).
macro_rules! every_variant {
    ($enum:ident: $($variant:ident),+ $(,)?) => {{
        fn exhaustive(value: $enum) {
            match value {
                $($enum::$variant)|+ => {}
            }
        }
        let _ = exhaustive;
        vec![$($enum::$variant),+]
    }};
}

/// The lines of a `## ` section of the runbook, up to the next `## `.
fn section(title: &str) -> Vec<&'static str> {
    let mut lines = RUNBOOK.lines().skip_while(|l| l.trim_end() != title);
    assert!(
        lines.next().is_some(),
        "docs/operations.md has no section {title:?}"
    );
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// The reasons a section gives an entry: `### Reason` headings, and the backticked words in the
/// first cell of its table rows.
fn entries(title: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in section(title) {
        if let Some(heading) = line.strip_prefix("### ") {
            found.insert(heading.trim().trim_matches('`').to_owned());
        } else if let Some(row) = line.strip_prefix('|') {
            let first_cell = row.split('|').next().unwrap_or_default();
            found.extend(
                first_cell
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(ToOwned::to_owned),
            );
        }
    }
    found
}

/// The values of the `pub const X: &str = "Value";` items of `pub mod reason` in `aggregate.rs`.
fn aggregate_reasons() -> Vec<String> {
    let reasons = string_consts(AGGREGATE_SOURCE, "pub mod reason {", true);
    assert!(
        reasons.len() >= 10,
        "found only {reasons:?} in aggregate.rs"
    );
    reasons
}

/// The string literals of the `pub const` items of the module opened by `opening` in `source`;
/// with `literals_only`, an item that is not a literal fails the test, else it is skipped (an
/// alias of a reason listed elsewhere).
fn string_consts(source: &str, opening: &str, literals_only: bool) -> Vec<String> {
    let block = source
        .split(opening)
        .nth(1)
        .unwrap_or_else(|| panic!("no {opening:?} block"));
    let block = &block[..block.find("\n}").expect("end of the block")];
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| match l.split('"').nth(1) {
            Some(value) => Some(value.to_owned()),
            None if literals_only => panic!("a reason const that is not a string literal: {l}"),
            None => None,
        })
        .collect()
}

fn missing(reasons: &[String], entries: &BTreeSet<String>) -> Vec<String> {
    reasons
        .iter()
        .filter(|r| !entries.contains(r.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_customer_stack_reason_has_a_runbook_entry() {
    // Condition reasons get a `### Reason` heading; the two that only a child can carry
    // (`Applying`, `NotCreated`) may instead be a row of the per-child table.
    let stack = entries(STACK_SECTION);
    let child = entries(CHILD_SECTION);
    let reasons = aggregate_reasons();
    let not_anywhere: Vec<String> = missing(&reasons, &stack)
        .into_iter()
        .filter(|r| !child.contains(r))
        .collect();
    assert!(
        not_anywhere.is_empty(),
        "docs/operations.md has no runbook entry for the CustomerStack reason(s) {not_anywhere:?}: \
         add a `### Reason` heading under {STACK_SECTION:?}"
    );
}

#[test]
fn every_child_reason_has_a_runbook_entry() {
    let reasons: Vec<String> = every_variant!(HealthReason:
        Available, Accepted, AcceptanceInferred, Synchronized, GrafanaReady, AcceptanceNotReported,
        NotObservedYet,
        StaleStatus, RollingUpdate, StageInProgress, PrometheusNotReconciled, SomePodsNotReady,
        NoPodReady, StatefulSetNotFound, Unavailable, ReconcileFailed, InvalidConfiguration,
        NotAccepted, RejectedByOperator, PrometheusReconcileFailed, ApplyFailed,
        NoMatchingInstance, NoMatchingFolder, FolderUidMismatch, InvalidSpec,
        NotificationPolicyLoopDetected, StageFailed, OperatorPaused, Suspended,
        StatusNotReported, NotBound, UnexpectedStatus, MalformedObject,
    )
    .into_iter()
    .map(|r| r.as_str().to_owned())
    .collect();
    let absent = missing(&reasons, &entries(CHILD_SECTION));
    assert!(
        absent.is_empty(),
        "docs/operations.md has no row for the child reason(s) {absent:?} in the table of {CHILD_SECTION:?}"
    );
}

#[test]
fn every_member_cluster_reason_has_a_runbook_entry() {
    // Every reason any MemberCluster condition can carry, from the function that writes them.
    let now = Time(Timestamp::from_second(1_800_000_000).unwrap());
    let failures = every_variant!(ProbeFailure:
        SecretNotFound, SecretKeyMissing, SecretUnreadable, KubeconfigInvalid,
        TlsVerificationFailed, CredentialsRejected, Timeout, Unreachable,
    );
    let mut results: Vec<ProbeResult> = failures
        .into_iter()
        .map(|failure| ProbeResult::Failed {
            failure,
            message: "m".into(),
        })
        .collect();
    results.push(ProbeResult::Answered {
        server_version: "v1.20.2".into(),
        missing_kinds: vec![],
    });
    results.push(ProbeResult::Answered {
        server_version: "v1.20.2".into(),
        missing_kinds: vec!["Prometheus".into()],
    });
    let reasons: BTreeSet<String> = results
        .iter()
        .flat_map(|result| member_status(result, None, Some(1), &now).conditions)
        .map(|c| c.reason)
        .collect();
    assert!(reasons.contains("TLSVerificationFailed") && reasons.contains("Present"));
    let mut reasons: Vec<String> = reasons.into_iter().collect();
    // The reasons that override what a probe found: a refused duplicate, a held deletion.
    reasons.extend(
        [
            stacksmith_core::member_status::reason::DUPLICATE_CLUSTER,
            stacksmith_core::member_status::reason::DELETION_HELD_IN_USE,
        ]
        .map(str::to_owned),
    );
    let absent = missing(&reasons, &entries(MEMBER_SECTION));
    assert!(
        absent.is_empty(),
        "docs/operations.md has no row for the MemberCluster reason(s) {absent:?} in the table of {MEMBER_SECTION:?}"
    );
}

#[test]
fn every_event_reason_has_a_row_in_the_events_table() {
    // `Conflict` and `Ready` are aliases of condition reasons (not literals): listed above.
    let reasons = string_consts(EVENTS_SOURCE, "pub mod event_reason {", false);
    assert!(
        reasons.contains(&"DriftCorrected".to_owned())
            && reasons.contains(&"FieldContested".to_owned()),
        "found only {reasons:?} in events.rs"
    );
    let absent = missing(&reasons, &entries(EVENTS_SECTION));
    assert!(
        absent.is_empty(),
        "docs/operations.md has no row for the Event reason(s) {absent:?} in the Events table of {EVENTS_SECTION:?}"
    );
}

#[test]
fn the_sections_are_read_as_intended() {
    // Guards the parsing above: known entries are found, and an invented reason is not.
    let stack = entries(STACK_SECTION);
    assert!(stack.contains("ChildDegraded") && stack.contains("DeletionBlocked"));
    assert!(!stack.contains("NoSuchReason"));
    assert!(entries(CHILD_SECTION).contains("NoMatchingInstance"));
    assert!(entries(MEMBER_SECTION).contains("CredentialsRejected"));
    assert!(aggregate_reasons().contains(&"ChildProgressing".to_owned()));
}

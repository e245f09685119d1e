//! grafana-operator (v5.24, `grafana.integreatly.org/v1beta1`): the `Grafana` instance, and the
//! `GrafanaFolder`, `GrafanaDatasource` and `GrafanaDashboard` it applies to instances.
//!
//! Conditions of the applied kinds have two polarities: `*Synchronized=True` is good, while
//! `NoMatchingInstance`, `NoMatchingFolder`, `FolderUIDMismatch`, `InvalidSpec` and
//! `NotificationPolicyLoopDetected` are problems when `True`. "All conditions True" is therefore
//! never a health rule here.

use super::conditions::{Condition, ConditionStatus, find, operator_detail, parse_conditions};
use super::fields::Invalid;
use super::{ChildHealth, ChildKind, HealthReason, ObjectView, Verdict};

/// The condition grafana-operator sets (replacing all others) when `spec.suspend` is true.
const SUSPENDED: &str = "Suspended";
/// The `Grafana` condition set when every stage completed (removed when one fails).
const GRAFANA_READY: &str = "GrafanaReady";

/// A condition that reports a problem when `True`.
struct NegativeCondition {
    /// The condition type.
    type_: &'static str,
    /// The reason to report.
    reason: HealthReason,
    /// What it means, for the message.
    meaning: &'static str,
}

/// Problem conditions, most fundamental first: the first one set gives the reason.
const NEGATIVE_CONDITIONS: [NegativeCondition; 5] = [
    NegativeCondition {
        type_: "InvalidSpec",
        reason: HealthReason::InvalidSpec,
        meaning: "the spec is invalid",
    },
    NegativeCondition {
        type_: "NoMatchingInstance",
        reason: HealthReason::NoMatchingInstance,
        meaning: "no ready Grafana instance matches the instanceSelector",
    },
    NegativeCondition {
        type_: "NoMatchingFolder",
        reason: HealthReason::NoMatchingFolder,
        meaning: "the referenced folder does not exist",
    },
    NegativeCondition {
        type_: "FolderUIDMismatch",
        reason: HealthReason::FolderUidMismatch,
        meaning: "the folder UID does not match the referenced folder",
    },
    NegativeCondition {
        type_: "NotificationPolicyLoopDetected",
        reason: HealthReason::NotificationPolicyLoopDetected,
        meaning: "a notification policy loop was detected",
    },
];

/// The success condition of an applied kind, e.g. `DashboardSynchronized`.
fn synchronized_type(kind: ChildKind) -> &'static str {
    match kind {
        ChildKind::GrafanaFolder => "FolderSynchronized",
        ChildKind::GrafanaDatasource => "DatasourceSynchronized",
        ChildKind::GrafanaDashboard => "DashboardSynchronized",
        _ => "Synchronized",
    }
}

/// Judges a `GrafanaFolder`, `GrafanaDatasource` or `GrafanaDashboard`.
pub(super) fn assess_resource(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    if let Some(health) = suspended_by_spec(view)? {
        return Ok(health);
    }
    let conditions = parse_conditions(&view.status)?;
    let no_matching_instances = view.status.bool("NoMatchingInstances")?;
    if conditions.is_empty() {
        let detail = "grafana-operator has not reported status yet";
        return Ok(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail));
    }
    let current = conditions
        .iter()
        .filter(|c| c.is_current(view.generation))
        .collect::<Vec<_>>();
    let synchronized = synchronized_type(view.kind);
    let reported = suspended_by_condition(view, &current)
        .or_else(|| problem(view, &current))
        .or_else(|| apply_failed(view, &current, synchronized));
    if let Some(health) = reported {
        return Ok(health);
    }
    check_statuses(&conditions, synchronized)?;
    Ok(match find(&conditions, synchronized) {
        Some(condition) => by_synchronized(view, condition),
        None => without_synchronized(view, &conditions, synchronized, no_matching_instances),
    })
}

/// `Suspended` when `spec.suspend` is true.
fn suspended_by_spec(view: &ObjectView<'_>) -> Result<Option<ChildHealth>, Invalid> {
    let suspended = view.spec.bool("suspend")? == Some(true);
    let detail = "reconciliation is suspended (spec.suspend is true)";
    Ok(suspended.then(|| view.health(Verdict::Suspended, HealthReason::Suspended, detail)))
}

/// `Suspended` when the operator reports a current `Suspended=True`.
fn suspended_by_condition(view: &ObjectView<'_>, current: &[&Condition]) -> Option<ChildHealth> {
    let condition = current
        .iter()
        .find(|c| c.type_ == SUSPENDED && c.is_true())?;
    let detail = format!("reconciliation is suspended{}", condition.detail());
    Some(view.health(Verdict::Suspended, HealthReason::Suspended, detail))
}

/// `Degraded` for the first current problem condition that is `True`, naming the others.
fn problem(view: &ObjectView<'_>, current: &[&Condition]) -> Option<ChildHealth> {
    let mut set = NEGATIVE_CONDITIONS.iter().filter_map(|negative| {
        let condition = current
            .iter()
            .find(|c| c.type_ == negative.type_ && c.is_true())?;
        Some((negative, *condition))
    });
    let (first, condition) = set.next()?;
    let others = set.map(|(negative, _)| negative.type_).collect::<Vec<_>>();
    let mut detail = format!("{}{}", first.meaning, condition.detail());
    if !others.is_empty() {
        detail.push_str(&format!("; also {}", others.join(", ")));
    }
    Some(view.health(Verdict::Degraded, first.reason, detail))
}

/// `Degraded` when the success condition is currently `False`.
fn apply_failed(
    view: &ObjectView<'_>,
    current: &[&Condition],
    synchronized: &str,
) -> Option<ChildHealth> {
    let condition = current
        .iter()
        .find(|c| c.type_ == synchronized && c.status == ConditionStatus::False)?;
    let detail = format!("failed to apply to Grafana{}", condition.detail());
    Some(view.health(Verdict::Degraded, HealthReason::ApplyFailed, detail))
}

/// Rejects statuses other than `True`/`False`/`Unknown` on the conditions this module reads.
fn check_statuses(conditions: &[Condition], synchronized: &str) -> Result<(), Invalid> {
    let is_read = |c: &&Condition| {
        c.type_ == synchronized
            || c.type_ == SUSPENDED
            || NEGATIVE_CONDITIONS.iter().any(|n| n.type_ == c.type_)
    };
    let is_unexpected = |c: &&Condition| {
        matches!(
            c.status,
            ConditionStatus::Other(_) | ConditionStatus::Degraded
        )
    };
    match conditions.iter().filter(is_read).find(is_unexpected) {
        Some(c) => Err(Invalid::status(format!(
            "condition {} has unexpected status {:?}",
            c.type_,
            c.status.to_string()
        ))),
        None => Ok(()),
    }
}

/// The verdict of the success condition once no problem is reported.
fn by_synchronized(view: &ObjectView<'_>, condition: &Condition) -> ChildHealth {
    if !condition.is_current(view.generation) {
        return view.health(
            Verdict::Progressing,
            HealthReason::StaleStatus,
            condition.staleness(view.generation),
        );
    }
    if condition.is_true() {
        let detail = format!("synchronized{}", condition.detail());
        return view.health(Verdict::Healthy, HealthReason::Synchronized, detail);
    }
    let detail = format!(
        "{} is {}{}",
        condition.type_,
        condition.status,
        condition.detail()
    );
    view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail)
}

/// The verdict when there is no success condition (and no current problem or suspension).
fn without_synchronized(
    view: &ObjectView<'_>,
    conditions: &[Condition],
    synchronized: &str,
    no_matching_instances: Option<bool>,
) -> ChildHealth {
    if no_matching_instances == Some(true) {
        let detail = "no ready Grafana instance matches the instanceSelector (status.NoMatchingInstances is true)";
        return view.health(Verdict::Degraded, HealthReason::NoMatchingInstance, detail);
    }
    if let Some(stale) = conditions.iter().find(|c| !c.is_current(view.generation)) {
        return view.health(
            Verdict::Progressing,
            HealthReason::StaleStatus,
            stale.staleness(view.generation),
        );
    }
    let detail = format!("grafana-operator has not reported {synchronized} yet");
    view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail)
}

/// Judges a `Grafana` instance by the stage its operator reached.
pub(super) fn assess_instance(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    if let Some(health) = suspended_by_spec(view)? {
        return Ok(health);
    }
    let status = &view.status;
    let stage = status.str("stage")?;
    let stage_status = status.str("stageStatus")?;
    let last_message = operator_detail(None, status.str("lastMessage")?);
    let version = status.str("version")?;
    let conditions = parse_conditions(status)?;
    let stage_name = stage.map_or_else(|| "?".to_owned(), |s| format!("{:?}", super::clip(s)));
    let (verdict, reason, detail) = match (stage, stage_status) {
        (None, None) => {
            let detail = "grafana-operator has not reported status yet".to_owned();
            (Verdict::Progressing, HealthReason::NotObservedYet, detail)
        }
        (_, Some("failed")) => (
            Verdict::Degraded,
            HealthReason::StageFailed,
            format!("stage {stage_name} failed{last_message}"),
        ),
        (Some("complete"), Some("success")) => return Ok(complete(view, &conditions, version)),
        (_, Some("success")) => {
            let detail = format!("stage {stage_name} succeeded, not complete yet");
            (Verdict::Progressing, HealthReason::StageInProgress, detail)
        }
        (_, other) => {
            let state = other.map_or_else(|| "reported".to_owned(), super::clip);
            let detail = format!("stage {stage_name} {state}{last_message}");
            (Verdict::Progressing, HealthReason::StageInProgress, detail)
        }
    };
    Ok(view.health(verdict, reason, detail))
}

/// `Healthy` for a completed instance, unless its `GrafanaReady` describes an older generation.
fn complete(view: &ObjectView<'_>, conditions: &[Condition], version: Option<&str>) -> ChildHealth {
    if let Some(ready) = find(conditions, GRAFANA_READY).filter(|c| !c.is_current(view.generation))
    {
        return view.health(
            Verdict::Progressing,
            HealthReason::StaleStatus,
            ready.staleness(view.generation),
        );
    }
    let version = version
        .map(|v| format!(" (version {})", super::clip(v)))
        .unwrap_or_default();
    view.health(
        Verdict::Healthy,
        HealthReason::GrafanaReady,
        format!("ready, all stages complete{version}"),
    )
}

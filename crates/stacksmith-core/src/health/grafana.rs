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

#[cfg(test)]
mod tests {
    use super::super::test_support::{assess_yaml, expect};
    use super::super::{ChildHealth, ChildKind, HealthReason as R, Verdict as V};

    /// An applied kind with the given spec extra lines and status block.
    fn resource(kind: ChildKind, name: &str, spec_extra: &str, status: &str) -> String {
        format!(
            "apiVersion: grafana.integreatly.org/v1beta1
kind: {kind}
metadata:
  name: {name}
  namespace: acme
  generation: 3
spec:
  allowCrossNamespaceImport: false
  resyncPeriod: 10m0s
  instanceSelector:
    matchLabels:
      stacksmith.io/grafana: shared
{spec_extra}{status}"
        )
    }

    fn datasource(status: &str) -> ChildHealth {
        assess_yaml(
            ChildKind::GrafanaDatasource,
            &resource(ChildKind::GrafanaDatasource, "acme-prometheus", "", status),
        )
    }

    fn dashboard(status: &str) -> ChildHealth {
        assess_yaml(
            ChildKind::GrafanaDashboard,
            &resource(
                ChildKind::GrafanaDashboard,
                "acme-overview",
                "  folderRef: acme\n  json: '{}'\n",
                status,
            ),
        )
    }

    fn folder(status: &str) -> ChildHealth {
        assess_yaml(
            ChildKind::GrafanaFolder,
            &resource(ChildKind::GrafanaFolder, "acme", "  title: Acme\n", status),
        )
    }

    /// A status whose only condition is `type` with the given status, reason and message.
    fn one_condition(type_: &str, status: &str, reason: &str, message: &str) -> String {
        format!(
            "status:
  NoMatchingInstances: false
  hash: 3f1c0e2a
  lastResync: '2025-06-01T10:00:00Z'
  uid: d2c1b8b7-6a0e-4c47-9b55-0f1e0f0b0f01
  conditions:
  - type: {type_}
    status: '{status}'
    reason: {reason}
    message: '{message}'
    lastTransitionTime: '2025-06-01T10:00:00Z'
    observedGeneration: 3
"
        )
    }

    #[test]
    fn synchronized_is_healthy_for_every_applied_kind() {
        let health = datasource(&one_condition(
            "DatasourceSynchronized",
            "True",
            "ApplySuccessful",
            "Datasource was successfully applied to 1 instances",
        ));
        expect(
            &health,
            V::Healthy,
            R::Synchronized,
            &[
                "GrafanaDatasource acme/acme-prometheus: synchronized (ApplySuccessful): Datasource was successfully applied to 1 instances",
            ],
        );
        let health = dashboard(&one_condition(
            "DashboardSynchronized",
            "True",
            "ApplySuccessful",
            "ok",
        ));
        expect(
            &health,
            V::Healthy,
            R::Synchronized,
            &["GrafanaDashboard acme/acme-overview"],
        );
        let health = folder(&one_condition(
            "FolderSynchronized",
            "True",
            "ApplySuccessful",
            "ok",
        ));
        expect(
            &health,
            V::Healthy,
            R::Synchronized,
            &["GrafanaFolder acme/acme"],
        );
    }

    #[test]
    fn another_kinds_success_condition_does_not_count() {
        let health = folder(&one_condition(
            "DashboardSynchronized",
            "True",
            "ApplySuccessful",
            "ok",
        ));
        expect(
            &health,
            V::Progressing,
            R::NotObservedYet,
            &["not reported FolderSynchronized yet"],
        );
    }

    #[test]
    fn apply_failed_is_degraded() {
        let health = dashboard(&one_condition(
            "DashboardSynchronized",
            "False",
            "ApplyFailed",
            "Dashboard failed to be applied for 1 out of 2 instances. Errors:\n- acme/grafana-b: status 412 version-mismatch",
        ));
        expect(
            &health,
            V::Degraded,
            R::ApplyFailed,
            &[
                "failed to apply to Grafana (ApplyFailed): Dashboard failed to be applied for 1 out of 2 instances",
                "acme/grafana-b: status 412",
            ],
        );
    }

    #[test]
    fn no_matching_instance_is_degraded_although_true() {
        let status = one_condition("NoMatchingInstance", "True", "EmptyAPIReply", "").replace(
            "  NoMatchingInstances: false\n",
            "  NoMatchingInstances: true\n",
        );
        let health = datasource(&status);
        expect(&health, V::Degraded, R::NoMatchingInstance, &[]);
        assert_eq!(
            health.message,
            "GrafanaDatasource acme/acme-prometheus: no ready Grafana instance matches the instanceSelector (EmptyAPIReply)"
        );
        let health = folder(&one_condition(
            "NoMatchingInstance",
            "True",
            "ErrFetchingInstances",
            "listing grafanas: forbidden",
        ));
        expect(
            &health,
            V::Degraded,
            R::NoMatchingInstance,
            &["(ErrFetchingInstances): listing grafanas: forbidden"],
        );
    }

    #[test]
    fn no_matching_instances_flag_alone_is_degraded() {
        let status = one_condition("SomethingElse", "False", "R", "m").replace(
            "  NoMatchingInstances: false\n",
            "  NoMatchingInstances: true\n",
        );
        expect(
            &datasource(&status),
            V::Degraded,
            R::NoMatchingInstance,
            &["status.NoMatchingInstances is true"],
        );
    }

    #[test]
    fn negative_conditions_that_are_false_are_fine() {
        let status = one_condition("DashboardSynchronized", "True", "ApplySuccessful", "ok")
            + "  - type: NoMatchingFolder\n    status: 'False'\n    reason: FolderFound\n    observedGeneration: 3\n";
        expect(&dashboard(&status), V::Healthy, R::Synchronized, &[]);
    }

    #[test]
    fn folder_problems_are_degraded() {
        let health = dashboard(&one_condition(
            "NoMatchingFolder",
            "True",
            "NotFound",
            "folder acme not found in namespace acme",
        ));
        expect(
            &health,
            V::Degraded,
            R::NoMatchingFolder,
            &["the referenced folder does not exist (NotFound): folder acme not found"],
        );
        let health = dashboard(&one_condition(
            "FolderUIDMismatch",
            "True",
            "FolderUIDMismatch",
            "folderUID x conflicts",
        ));
        expect(
            &health,
            V::Degraded,
            R::FolderUidMismatch,
            &["folder UID does not match", "folderUID x conflicts"],
        );
    }

    #[test]
    fn invalid_spec_is_degraded_and_listed_first() {
        let status = one_condition(
            "InvalidSpec",
            "True",
            "InvalidModel",
            "dashboard JSON: unexpected end of input",
        ) + "  - type: NoMatchingFolder\n    status: 'True'\n    reason: NotFound\n    observedGeneration: 3\n";
        expect(
            &dashboard(&status),
            V::Degraded,
            R::InvalidSpec,
            &[
                "the spec is invalid (InvalidModel): dashboard JSON: unexpected end of input",
                "also NoMatchingFolder",
            ],
        );
        let health = folder(&one_condition(
            "InvalidSpec",
            "True",
            "CyclicParent",
            "cyclic folder hierarchy",
        ));
        expect(
            &health,
            V::Degraded,
            R::InvalidSpec,
            &["(CyclicParent): cyclic folder hierarchy"],
        );
    }

    #[test]
    fn notification_policy_loop_is_degraded() {
        let health = folder(&one_condition(
            "NotificationPolicyLoopDetected",
            "True",
            "LoopDetected",
            "route a -> b -> a",
        ));
        expect(
            &health,
            V::Degraded,
            R::NotificationPolicyLoopDetected,
            &["loop", "route a -> b -> a"],
        );
    }

    #[test]
    fn suspended_condition_is_suspended() {
        let health = dashboard(&one_condition(
            "Suspended",
            "True",
            "ApplySuspended",
            "Resource changes are ignored",
        ));
        expect(
            &health,
            V::Suspended,
            R::Suspended,
            &["suspended (ApplySuspended): Resource changes are ignored"],
        );
    }

    #[test]
    fn spec_suspend_is_suspended() {
        let text = resource(
            ChildKind::GrafanaDashboard,
            "acme-overview",
            "  suspend: true\n",
            "",
        );
        expect(
            &assess_yaml(ChildKind::GrafanaDashboard, &text),
            V::Suspended,
            R::Suspended,
            &["spec.suspend is true"],
        );
    }

    #[test]
    fn stale_suspension_after_resume_is_progressing() {
        let status = one_condition("Suspended", "True", "ApplySuspended", "ignored")
            .replace("observedGeneration: 3", "observedGeneration: 2");
        expect(
            &dashboard(&status),
            V::Progressing,
            R::StaleStatus,
            &["Suspended describes generation 2, the object is at generation 3"],
        );
    }

    #[test]
    fn no_status_is_progressing() {
        expect(
            &datasource(""),
            V::Progressing,
            R::NotObservedYet,
            &[
                "GrafanaDatasource acme/acme-prometheus",
                "not reported status yet",
            ],
        );
        expect(
            &datasource("status:\n  conditions: []\n"),
            V::Progressing,
            R::NotObservedYet,
            &[],
        );
    }

    #[test]
    fn stale_conditions_are_progressing() {
        let status = one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok")
            .replace("observedGeneration: 3", "observedGeneration: 2");
        expect(
            &datasource(&status),
            V::Progressing,
            R::StaleStatus,
            &["DatasourceSynchronized describes generation 2"],
        );
        let failed = status.replace("status: 'True'", "status: 'False'");
        expect(&datasource(&failed), V::Progressing, R::StaleStatus, &[]);
        let no_instance = one_condition("NoMatchingInstance", "True", "EmptyAPIReply", "")
            .replace("observedGeneration: 3", "observedGeneration: 1");
        expect(
            &datasource(&no_instance),
            V::Progressing,
            R::StaleStatus,
            &["NoMatchingInstance describes generation 1"],
        );
    }

    #[test]
    fn absent_observed_generation_is_current() {
        let status = one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok")
            .replace("    observedGeneration: 3\n", "");
        expect(&datasource(&status), V::Healthy, R::Synchronized, &[]);
    }

    #[test]
    fn unknown_synchronization_is_progressing() {
        let status = one_condition("DashboardSynchronized", "Unknown", "Pending", "waiting");
        expect(
            &dashboard(&status),
            V::Progressing,
            R::NotObservedYet,
            &["DashboardSynchronized is Unknown (Pending): waiting"],
        );
    }

    #[test]
    fn unexpected_statuses_are_unknown() {
        let status = one_condition("DashboardSynchronized", "Degraded", "X", "y");
        expect(
            &dashboard(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["condition DashboardSynchronized has unexpected status \"Degraded\""],
        );
        let status = one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok")
            .replace(
                "  NoMatchingInstances: false\n",
                "  NoMatchingInstances: 'no'\n",
            );
        expect(
            &datasource(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.NoMatchingInstances is not a boolean"],
        );
        let text = resource(ChildKind::GrafanaFolder, "acme", "  suspend: 'yes'\n", "");
        expect(
            &assess_yaml(ChildKind::GrafanaFolder, &text),
            V::Unknown,
            R::MalformedObject,
            &["spec.suspend is not a boolean"],
        );
    }

    /// A `Grafana` instance with the given status block.
    fn grafana(status: &str) -> ChildHealth {
        let text = format!(
            "apiVersion: grafana.integreatly.org/v1beta1
kind: Grafana
metadata:
  name: grafana
  namespace: grafana
  generation: 5
  labels:
    stacksmith.io/grafana: shared
spec:
  version: 12.1.0
  config:
    auth:
      disable_login_form: 'false'
{status}"
        );
        assess_yaml(ChildKind::Grafana, &text)
    }

    const COMPLETE: &str = "status:
  adminUrl: http://grafana-service.grafana:3000
  stage: complete
  stageStatus: success
  version: 12.1.0
  conditions:
  - type: GrafanaReady
    status: 'True'
    reason: GrafanaReady
    message: Grafana reconcile completed
    lastTransitionTime: '2025-06-01T10:00:00Z'
    observedGeneration: 5
";

    #[test]
    fn completed_grafana_is_healthy() {
        expect(
            &grafana(COMPLETE),
            V::Healthy,
            R::GrafanaReady,
            &["Grafana grafana/grafana: ready, all stages complete (version 12.1.0)"],
        );
        let without_conditions = COMPLETE
            .split("  conditions:")
            .next()
            .unwrap_or_default()
            .to_owned();
        expect(
            &grafana(&without_conditions),
            V::Healthy,
            R::GrafanaReady,
            &[],
        );
    }

    #[test]
    fn completed_grafana_with_stale_readiness_is_progressing() {
        let status = COMPLETE.replace("observedGeneration: 5", "observedGeneration: 4");
        expect(
            &grafana(&status),
            V::Progressing,
            R::StaleStatus,
            &["GrafanaReady describes generation 4"],
        );
    }

    #[test]
    fn failed_stage_is_degraded() {
        let status = "status:
  stage: deployment
  stageStatus: failed
  lastMessage: |-
    Deployment.apps \"grafana-deployment\" is invalid:
    spec.template.spec.containers[0].image: Required value
";
        expect(
            &grafana(status),
            V::Degraded,
            R::StageFailed,
            &[
                "Grafana grafana/grafana: stage \"deployment\" failed: Deployment.apps \"grafana-deployment\" is invalid:; spec.template",
            ],
        );
        expect(
            &grafana("status:\n  stageStatus: failed\n"),
            V::Degraded,
            R::StageFailed,
            &["stage ? failed"],
        );
    }

    #[test]
    fn stages_in_progress_are_progressing() {
        let health = grafana("status:\n  stage: pvc\n  stageStatus: in progress\n");
        expect(
            &health,
            V::Progressing,
            R::StageInProgress,
            &["stage \"pvc\" in progress"],
        );
        let health = grafana("status:\n  stage: plugins\n  stageStatus: success\n");
        expect(
            &health,
            V::Progressing,
            R::StageInProgress,
            &["stage \"plugins\" succeeded, not complete yet"],
        );
        let health = grafana("status:\n  stage: deployment\n");
        expect(
            &health,
            V::Progressing,
            R::StageInProgress,
            &["stage \"deployment\" reported"],
        );
    }

    #[test]
    fn grafana_without_status_is_progressing() {
        expect(
            &grafana(""),
            V::Progressing,
            R::NotObservedYet,
            &["Grafana grafana/grafana"],
        );
        expect(
            &grafana("status: {}\n"),
            V::Progressing,
            R::NotObservedYet,
            &[],
        );
    }

    #[test]
    fn suspended_grafana_is_suspended() {
        let health = assess_yaml(
            ChildKind::Grafana,
            "kind: Grafana\nmetadata: {name: g, namespace: grafana}\nspec: {suspend: true}\n",
        );
        expect(&health, V::Suspended, R::Suspended, &["Grafana grafana/g"]);
    }

    #[test]
    fn grafana_with_bad_status_types_is_unknown() {
        expect(
            &grafana("status:\n  stage: 3\n"),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.stage is not a string"],
        );
        let status = COMPLETE.replace("  conditions:\n", "  conditions: 7\n  ignored:\n");
        expect(
            &grafana(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions is not an array"],
        );
    }
}

//! prometheus-operator (v0.93, `monitoring.coreos.com/v1`): `Prometheus`, and the configuration
//! resources `PrometheusRule` and `ServiceMonitor`.

use super::conditions::{Condition, ConditionStatus, find, parse_conditions};
use super::fields::{Fields, Invalid, element};
use super::{ChildHealth, ConfigEvidence, HealthReason, ObjectView, Verdict};

/// The `Prometheus` condition that says whether its pods are ready.
const AVAILABLE: &str = "Available";
/// The `Prometheus` condition that says whether the operator reconciled it.
pub(super) const RECONCILED: &str = "Reconciled";
/// The per-binding condition of a configuration resource.
const ACCEPTED: &str = "Accepted";

/// Judges a `Prometheus` by its `Available` and `Reconciled` conditions.
pub(super) fn assess_prometheus(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    if let Some(health) = paused(view)? {
        return Ok(health);
    }
    let conditions = parse_conditions(&view.status)?;
    if conditions.is_empty() {
        let detail = "prometheus-operator has not reported status yet";
        return Ok(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail));
    }
    let replicas = Replicas::read(&view.status)?;
    let available = find(&conditions, AVAILABLE);
    let reconciled = find(&conditions, RECONCILED);
    if let Some(health) = current_failure(view, available, reconciled, &replicas) {
        return Ok(health);
    }
    check_statuses(available, reconciled)?;
    let (Some(available), Some(reconciled)) = (available, reconciled) else {
        let missing = if available.is_none() {
            AVAILABLE
        } else {
            RECONCILED
        };
        let detail = format!("prometheus-operator has not reported the {missing} condition yet");
        return Ok(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail));
    };
    Ok(not_yet_healthy(view, [available, reconciled])
        .unwrap_or_else(|| healthy(view, reconciled, &replicas)))
}

/// `Suspended` when `spec.paused` or `status.paused` is true.
fn paused(view: &ObjectView<'_>) -> Result<Option<ChildHealth>, Invalid> {
    let Some(field) = paused_field(view)? else {
        return Ok(None);
    };
    let detail = format!("reconciliation is paused ({field} is true)");
    Ok(Some(view.health(
        Verdict::Suspended,
        HealthReason::OperatorPaused,
        detail,
    )))
}

/// The field that says a `Prometheus` is paused (`spec.paused` or `status.paused` true), if
/// one does.
pub(super) fn paused_field(view: &ObjectView<'_>) -> Result<Option<&'static str>, Invalid> {
    Ok(if view.spec.bool("paused")? == Some(true) {
        Some("spec.paused")
    } else if view.status.bool("paused")? == Some(true) {
        Some("status.paused")
    } else {
        None
    })
}

/// A failure reported at the current generation: `Reconciled=False`, `Available=False`, or
/// `Available=Degraded` (which is only progress while a rolling update is under way).
fn current_failure(
    view: &ObjectView<'_>,
    available: Option<&Condition>,
    reconciled: Option<&Condition>,
    replicas: &Replicas,
) -> Option<ChildHealth> {
    let current = |c: &&Condition| c.is_current(view.generation);
    if let Some(reconciled) = reconciled
        .filter(current)
        .filter(|c| c.status == ConditionStatus::False)
    {
        let detail = format!("reconciliation failed{}", reconciled.detail());
        return Some(view.health(Verdict::Degraded, HealthReason::ReconcileFailed, detail));
    }
    let available = available.filter(current)?;
    let (verdict, reason, detail) = match available.status {
        ConditionStatus::False => (
            Verdict::Degraded,
            unavailable_reason(available),
            replicas.availability(),
        ),
        ConditionStatus::Degraded if replicas.is_rolling() => (
            Verdict::Progressing,
            HealthReason::RollingUpdate,
            format!("rolling update, {}", replicas.rollout()),
        ),
        ConditionStatus::Degraded => (
            Verdict::Degraded,
            HealthReason::SomePodsNotReady,
            replicas.availability(),
        ),
        _ => return None,
    };
    Some(view.health(verdict, reason, format!("{detail}{}", available.detail())))
}

/// The typed reason for `Available=False`.
fn unavailable_reason(available: &Condition) -> HealthReason {
    match available.reason.as_deref() {
        Some("NoPodReady") => HealthReason::NoPodReady,
        Some("StatefulSetNotFound") => HealthReason::StatefulSetNotFound,
        _ => HealthReason::Unavailable,
    }
}

/// Rejects condition statuses prometheus-operator does not write (`Degraded` is only written
/// on `Available`).
fn check_statuses(
    available: Option<&Condition>,
    reconciled: Option<&Condition>,
) -> Result<(), Invalid> {
    for (condition, degraded_allowed) in [(available, true), (reconciled, false)] {
        let Some(condition) = condition else { continue };
        let unexpected = match condition.status {
            ConditionStatus::Other(_) => true,
            ConditionStatus::Degraded => !degraded_allowed,
            _ => false,
        };
        if unexpected {
            return Err(unexpected_status(&condition.type_, condition));
        }
    }
    Ok(())
}

/// The error for a condition whose status is not one the operator writes.
fn unexpected_status(what: &str, condition: &Condition) -> Invalid {
    Invalid::status(format!(
        "condition {what} has unexpected status {:?}",
        condition.status.to_string()
    ))
}

/// `Progressing` when a condition describes an older generation or is `Unknown` (e.g.
/// `Reconciled=Unknown` with reason `NotFound` before the operator's first reconcile).
fn not_yet_healthy(view: &ObjectView<'_>, conditions: [&Condition; 2]) -> Option<ChildHealth> {
    if let Some(stale) = conditions
        .into_iter()
        .find(|c| !c.is_current(view.generation))
    {
        let detail = stale.staleness(view.generation);
        return Some(view.health(Verdict::Progressing, HealthReason::StaleStatus, detail));
    }
    let unknown = conditions
        .into_iter()
        .find(|c| c.status == ConditionStatus::Unknown)?;
    let detail = format!("{} is Unknown{}", unknown.type_, unknown.detail());
    Some(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail))
}

/// `Healthy`, mentioning a warning `Reconciled=True` may carry (e.g. `DeprecatedFieldsInUse`).
fn healthy(view: &ObjectView<'_>, reconciled: &Condition, replicas: &Replicas) -> ChildHealth {
    let warning = match reconciled.detail() {
        detail if detail.is_empty() => String::new(),
        detail => format!("; warning{detail}"),
    };
    let detail = format!("{}, reconciled{warning}", replicas.availability());
    view.health(Verdict::Healthy, HealthReason::Available, detail)
}

/// The replica counts of a `Prometheus` status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Replicas {
    replicas: Option<i64>,
    updated: Option<i64>,
    available: Option<i64>,
}

impl Replicas {
    fn read(status: &Fields<'_>) -> Result<Self, Invalid> {
        Ok(Self {
            replicas: status.i64("replicas")?,
            updated: status.i64("updatedReplicas")?,
            available: status.i64("availableReplicas")?,
        })
    }

    /// Whether some pods still run an old version.
    fn is_rolling(&self) -> bool {
        matches!((self.updated, self.replicas), (Some(updated), Some(replicas)) if updated < replicas)
    }

    /// `1 of 2 replicas available`, or `not available` when the counts are missing.
    fn availability(&self) -> String {
        match self.replicas {
            Some(replicas) => format!(
                "{} of {replicas} replicas available",
                self.available.unwrap_or(0)
            ),
            None => "not available".to_owned(),
        }
    }

    /// `1 of 2 replicas updated, 1 of 2 replicas available`.
    fn rollout(&self) -> String {
        let replicas = self.replicas.unwrap_or(0);
        format!(
            "{} of {replicas} replicas updated, {}",
            self.updated.unwrap_or(0),
            self.availability()
        )
    }
}

/// Judges a `PrometheusRule` or `ServiceMonitor` by the `Accepted` condition of each binding
/// (each Prometheus-like resource that selects it). Without `status.bindings` (the feature gate
/// is off), acceptance is inferred from `evidence` when there is some (see [`super::acceptance`]).
pub(super) fn assess_config_resource(
    view: &ObjectView<'_>,
    evidence: Option<&ConfigEvidence<'_>>,
) -> Result<ChildHealth, Invalid> {
    let Some(items) = view.status.array("bindings")? else {
        if let Some(evidence) = evidence {
            return super::acceptance::infer(view, evidence);
        }
        let detail = "no status reported; prometheus-operator reports status for configuration \
                      resources only when the StatusForConfigurationResources feature gate is enabled";
        return Ok(view.health(Verdict::Unknown, HealthReason::StatusNotReported, detail));
    };
    if items.is_empty() {
        let detail = "not bound, no Prometheus selects it (status.bindings is empty)";
        return Ok(view.health(Verdict::Unknown, HealthReason::NotBound, detail));
    }
    let bindings = items
        .iter()
        .enumerate()
        .map(|(index, item)| Binding::read(&element(&view.status, "bindings", index, item)?, index))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(health) = rejected(view, &bindings) {
        return Ok(health);
    }
    check_acceptance_statuses(&bindings)?;
    if let Some(health) = pending(view, &bindings) {
        return Ok(health);
    }
    let labels = bindings
        .iter()
        .map(|b| b.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(view.health(
        Verdict::Healthy,
        HealthReason::Accepted,
        format!("accepted by {labels}"),
    ))
}

/// `Degraded` when a binding reports `Accepted=False` at the current generation.
fn rejected(view: &ObjectView<'_>, bindings: &[Binding]) -> Option<ChildHealth> {
    let mut rejections = bindings.iter().filter_map(|binding| {
        let accepted = binding.accepted.as_ref()?;
        (accepted.status == ConditionStatus::False && accepted.is_current(view.generation))
            .then_some((binding, accepted))
    });
    let (first, accepted) = rejections.next()?;
    let others = rejections
        .map(|(b, _)| b.label.as_str())
        .collect::<Vec<_>>();
    let reason = match accepted.reason.as_deref() {
        Some("InvalidConfiguration") => HealthReason::InvalidConfiguration,
        _ => HealthReason::NotAccepted,
    };
    let mut detail = format!("rejected by {}{}", first.label, accepted.detail());
    if !others.is_empty() {
        detail.push_str(&format!("; also rejected by {}", others.join(", ")));
    }
    Some(view.health(Verdict::Degraded, reason, detail))
}

/// Rejects `Accepted` statuses other than `True`, `False` and `Unknown`.
fn check_acceptance_statuses(bindings: &[Binding]) -> Result<(), Invalid> {
    for binding in bindings {
        if let Some(accepted) = &binding.accepted
            && matches!(
                accepted.status,
                ConditionStatus::Other(_) | ConditionStatus::Degraded
            )
        {
            return Err(unexpected_status(
                &format!("{ACCEPTED} of {}", binding.label),
                accepted,
            ));
        }
    }
    Ok(())
}

/// `Progressing` when a binding has no current, known `Accepted` condition yet.
fn pending(view: &ObjectView<'_>, bindings: &[Binding]) -> Option<ChildHealth> {
    bindings.iter().find_map(|binding| {
        let label = &binding.label;
        let (reason, detail) = match &binding.accepted {
            None => (
                HealthReason::NotObservedYet,
                format!("{label} has not reported an {ACCEPTED} condition yet"),
            ),
            Some(c) if !c.is_current(view.generation) => (
                HealthReason::StaleStatus,
                format!("{label}: {}", c.staleness(view.generation)),
            ),
            Some(c) if c.status == ConditionStatus::Unknown => (
                HealthReason::NotObservedYet,
                format!("{ACCEPTED} by {label} is Unknown{}", c.detail()),
            ),
            Some(_) => return None,
        };
        Some(view.health(Verdict::Progressing, reason, detail))
    })
}

/// One entry of `status.bindings`.
#[derive(Clone, Debug)]
struct Binding {
    /// `resource/namespace/name` of the selecting resource, e.g. `prometheuses/monitoring/k8s`.
    label: String,
    /// Its `Accepted` condition, if any.
    accepted: Option<Condition>,
}

impl Binding {
    fn read(fields: &Fields<'_>, index: usize) -> Result<Self, Invalid> {
        let parts = [
            fields.str("resource")?,
            fields.str("namespace")?,
            fields.str("name")?,
        ];
        let parts = parts
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .map(super::clip)
            .collect::<Vec<_>>();
        let label = if parts.is_empty() {
            format!("binding #{index}")
        } else {
            parts.join("/")
        };
        let conditions = parse_conditions(fields)?;
        Ok(Self {
            label,
            accepted: find(&conditions, ACCEPTED).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assess_yaml, expect};
    use super::super::{ChildKind, HealthReason as R, Verdict as V};

    /// A `Prometheus` with the given status block (indented as under `status:`).
    fn prometheus(status: &str) -> String {
        format!(
            "apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata:
  name: acme
  namespace: acme
  generation: 4
  labels:
    app.kubernetes.io/managed-by: stacksmith
spec:
  replicas: 2
  version: v3.5.0
  serviceAccountName: prometheus
  ruleSelector:
    matchLabels:
      stacksmith.io/customer: acme
{status}"
        )
    }

    const HEALTHY: &str = "status:
  availableReplicas: 2
  paused: false
  replicas: 2
  shards: 1
  unavailableReplicas: 0
  updatedReplicas: 2
  selector: app.kubernetes.io/instance=acme,app.kubernetes.io/managed-by=prometheus-operator
  shardStatuses:
  - availableReplicas: 2
    replicas: 2
    shardID: '0'
    unavailableReplicas: 0
    updatedReplicas: 2
  conditions:
  - type: Available
    status: 'True'
    lastTransitionTime: '2025-06-01T10:00:00Z'
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    lastTransitionTime: '2025-06-01T10:00:00Z'
    observedGeneration: 4
";

    fn assess_prometheus(status: &str) -> super::ChildHealth {
        assess_yaml(ChildKind::Prometheus, &prometheus(status))
    }

    #[test]
    fn available_and_reconciled_is_healthy() {
        let health = assess_prometheus(HEALTHY);
        expect(
            &health,
            V::Healthy,
            R::Available,
            &[
                "Prometheus acme/acme",
                "2 of 2 replicas available",
                "reconciled",
            ],
        );
        assert!(!health.message.contains("warning"));
    }

    #[test]
    fn reconciled_with_deprecated_fields_is_healthy_with_a_warning() {
        let status = HEALTHY.replace(
            "  - type: Reconciled\n    status: 'True'\n",
            "  - type: Reconciled\n    status: 'True'\n    reason: DeprecatedFieldsInUse\n    message: 'field spec.baseImage is deprecated'\n",
        );
        let health = assess_prometheus(&status);
        expect(
            &health,
            V::Healthy,
            R::Available,
            &["warning (DeprecatedFieldsInUse): field spec.baseImage is deprecated"],
        );
    }

    #[test]
    fn reconciled_with_unmanaged_configuration_is_healthy_with_a_warning() {
        let status = HEALTHY.replace(
            "  - type: Reconciled\n    status: 'True'\n",
            "  - type: Reconciled\n    status: 'True'\n    reason: ConfigurationUnmanaged\n",
        );
        expect(
            &assess_prometheus(&status),
            V::Healthy,
            R::Available,
            &["warning (ConfigurationUnmanaged)"],
        );
    }

    #[test]
    fn absent_observed_generation_counts_as_current() {
        let status = HEALTHY.replace("    observedGeneration: 4\n", "");
        expect(&assess_prometheus(&status), V::Healthy, R::Available, &[]);
        let no_generation = prometheus(HEALTHY).replace("  generation: 4\n", "");
        let health = assess_yaml(
            ChildKind::Prometheus,
            &no_generation.replace("observedGeneration: 4", "observedGeneration: 1"),
        );
        expect(&health, V::Healthy, R::Available, &[]);
    }

    #[test]
    fn stale_conditions_are_progressing_even_when_true() {
        let status = HEALTHY.replace("observedGeneration: 4", "observedGeneration: 3");
        expect(
            &assess_prometheus(&status),
            V::Progressing,
            R::StaleStatus,
            &[
                "Prometheus acme/acme",
                "Available describes generation 3, the object is at generation 4",
            ],
        );
    }

    #[test]
    fn one_stale_condition_is_enough() {
        let status = HEALTHY.replace(
            "  - type: Reconciled\n    status: 'True'\n    lastTransitionTime: '2025-06-01T10:00:00Z'\n    observedGeneration: 4",
            "  - type: Reconciled\n    status: 'True'\n    lastTransitionTime: '2025-06-01T10:00:00Z'\n    observedGeneration: 2",
        );
        expect(
            &assess_prometheus(&status),
            V::Progressing,
            R::StaleStatus,
            &["Reconciled describes generation 2"],
        );
    }

    #[test]
    fn stale_failure_is_progressing() {
        let status = "status:
  replicas: 2
  availableReplicas: 0
  conditions:
  - type: Available
    status: 'False'
    reason: NoPodReady
    observedGeneration: 3
  - type: Reconciled
    status: 'False'
    reason: ReconciliationFailed
    observedGeneration: 3
";
        expect(
            &assess_prometheus(status),
            V::Progressing,
            R::StaleStatus,
            &["generation 3", "generation 4"],
        );
    }

    #[test]
    fn no_status_is_progressing() {
        expect(
            &assess_prometheus(""),
            V::Progressing,
            R::NotObservedYet,
            &["Prometheus acme/acme", "not reported status yet"],
        );
        expect(
            &assess_prometheus("status: {}\n"),
            V::Progressing,
            R::NotObservedYet,
            &["not reported status yet"],
        );
        expect(
            &assess_prometheus("status: null\n"),
            V::Progressing,
            R::NotObservedYet,
            &[],
        );
        expect(
            &assess_prometheus("status:\n  conditions: []\n"),
            V::Progressing,
            R::NotObservedYet,
            &[],
        );
    }

    #[test]
    fn a_missing_condition_is_progressing() {
        let status = "status:
  replicas: 2
  conditions:
  - type: Available
    status: 'True'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Progressing,
            R::NotObservedYet,
            &["Reconciled condition"],
        );
    }

    #[test]
    fn reconciled_unknown_not_found_is_progressing() {
        let status = HEALTHY.replace(
            "  - type: Reconciled\n    status: 'True'\n",
            "  - type: Reconciled\n    status: Unknown\n    reason: NotFound\n    message: object not found\n",
        );
        expect(
            &assess_prometheus(&status),
            V::Progressing,
            R::NotObservedYet,
            &["Reconciled is Unknown (NotFound): object not found"],
        );
    }

    #[test]
    fn paused_is_suspended() {
        let status = HEALTHY.replace("  paused: false\n", "  paused: true\n");
        expect(
            &assess_prometheus(&status),
            V::Suspended,
            R::OperatorPaused,
            &["Prometheus acme/acme", "paused", "status.paused"],
        );
        let spec_paused =
            prometheus("").replace("  replicas: 2\n", "  replicas: 2\n  paused: true\n");
        expect(
            &assess_yaml(ChildKind::Prometheus, &spec_paused),
            V::Suspended,
            R::OperatorPaused,
            &["spec.paused"],
        );
    }

    #[test]
    fn no_pod_ready_is_degraded() {
        let status = "status:
  replicas: 2
  updatedReplicas: 2
  availableReplicas: 0
  unavailableReplicas: 2
  conditions:
  - type: Available
    status: 'False'
    reason: NoPodReady
    message: 'pod prometheus-acme-0: containers not ready'
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    observedGeneration: 4
";
        let health = assess_prometheus(status);
        expect(&health, V::Degraded, R::NoPodReady, &[]);
        assert_eq!(
            health.message,
            "Prometheus acme/acme: 0 of 2 replicas available (NoPodReady): pod prometheus-acme-0: containers not ready"
        );
    }

    #[test]
    fn statefulset_not_found_is_degraded() {
        let status = "status:
  replicas: 0
  conditions:
  - type: Available
    status: 'False'
    reason: StatefulSetNotFound
    message: statefulset prometheus-acme not found
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Degraded,
            R::StatefulSetNotFound,
            &["(StatefulSetNotFound): statefulset prometheus-acme not found"],
        );
    }

    #[test]
    fn available_false_for_another_reason_is_degraded() {
        let status = "status:
  conditions:
  - type: Available
    status: 'False'
    reason: SomethingNew
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Degraded,
            R::Unavailable,
            &["not available (SomethingNew)"],
        );
    }

    #[test]
    fn some_pods_not_ready_is_degraded() {
        let status = "status:
  replicas: 2
  updatedReplicas: 2
  availableReplicas: 1
  unavailableReplicas: 1
  conditions:
  - type: Available
    status: Degraded
    reason: SomePodsNotReady
    message: |-
      pod prometheus-acme-1: containers with unready status: [prometheus]
      pod prometheus-acme-1: back-off restarting failed container
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Degraded,
            R::SomePodsNotReady,
            &[
                "1 of 2 replicas available (SomePodsNotReady): pod prometheus-acme-1: containers with unready status: [prometheus]; pod prometheus-acme-1: back-off",
            ],
        );
    }

    #[test]
    fn some_pods_not_ready_during_a_rolling_update_is_progressing() {
        let status = "status:
  replicas: 2
  updatedReplicas: 1
  availableReplicas: 1
  unavailableReplicas: 1
  conditions:
  - type: Available
    status: Degraded
    reason: SomePodsNotReady
    message: 'pod prometheus-acme-1: containers not ready'
    observedGeneration: 4
  - type: Reconciled
    status: 'True'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Progressing,
            R::RollingUpdate,
            &[
                "rolling update, 1 of 2 replicas updated, 1 of 2 replicas available (SomePodsNotReady): pod prometheus-acme-1",
            ],
        );
    }

    #[test]
    fn reconcile_failure_is_degraded_and_wins_over_availability() {
        let status = "status:
  replicas: 0
  conditions:
  - type: Available
    status: 'False'
    reason: StatefulSetNotFound
    observedGeneration: 4
  - type: Reconciled
    status: 'False'
    reason: ReconciliationFailed
    message: 'failed to generate configuration: invalid remote write URL \"htp:/x\"'
    observedGeneration: 4
";
        expect(
            &assess_prometheus(status),
            V::Degraded,
            R::ReconcileFailed,
            &[
                "Prometheus acme/acme: reconciliation failed (ReconciliationFailed): failed to generate configuration",
            ],
        );
    }

    #[test]
    fn unexpected_condition_status_is_unknown() {
        let status = HEALTHY.replace(
            "  - type: Available\n    status: 'True'\n",
            "  - type: Available\n    status: Maybe\n",
        );
        expect(
            &assess_prometheus(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["Available has unexpected status \"Maybe\""],
        );
        let status = HEALTHY.replace(
            "  - type: Reconciled\n    status: 'True'\n",
            "  - type: Reconciled\n    status: Degraded\n",
        );
        expect(
            &assess_prometheus(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["Reconciled has unexpected status \"Degraded\""],
        );
    }

    #[test]
    fn wrongly_typed_status_fields_are_unknown() {
        let status = HEALTHY.replace("  replicas: 2\n", "  replicas: two\n");
        expect(
            &assess_prometheus(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["Prometheus acme/acme", "status.replicas is not an integer"],
        );
        let status = HEALTHY.replace("  paused: false\n", "  paused: 'no'\n");
        expect(
            &assess_prometheus(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.paused is not a boolean"],
        );
        let status = HEALTHY.replace("    status: 'True'\n", "    status: true\n");
        expect(
            &assess_prometheus(&status),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions[0].status is not a string"],
        );
        expect(
            &assess_prometheus("status:\n  conditions: {}\n"),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions is not an array"],
        );
    }

    #[test]
    fn long_operator_messages_are_clipped() {
        let long = "x".repeat(2000);
        let status = format!(
            "status:
  replicas: 1
  conditions:
  - type: Available
    status: 'False'
    reason: NoPodReady
    message: '{long}'
  - type: Reconciled
    status: 'True'
"
        );
        let health = assess_prometheus(&status);
        expect(&health, V::Degraded, R::NoPodReady, &["…"]);
        assert!(
            health.message.chars().count() < 600,
            "{}",
            health.message.len()
        );
    }

    /// A configuration resource of the given kind with the given status block.
    fn config(kind: &str, status: &str) -> String {
        format!(
            "apiVersion: monitoring.coreos.com/v1
kind: {kind}
metadata:
  name: acme-rules
  namespace: acme
  generation: 2
spec: {{}}
{status}"
        )
    }

    fn assess_rule(status: &str) -> super::ChildHealth {
        assess_yaml(ChildKind::PrometheusRule, &config("PrometheusRule", status))
    }

    const ACCEPTED: &str = "status:
  bindings:
  - group: monitoring.coreos.com
    resource: prometheuses
    name: acme
    namespace: acme
    conditions:
    - type: Accepted
      status: 'True'
      reason: ''
      lastTransitionTime: '2025-06-01T10:00:00Z'
      observedGeneration: 2
";

    #[test]
    fn config_accepted_by_every_binding_is_healthy() {
        expect(
            &assess_rule(ACCEPTED),
            V::Healthy,
            R::Accepted,
            &["PrometheusRule acme/acme-rules: accepted by prometheuses/acme/acme"],
        );
        let monitor = assess_yaml(
            ChildKind::ServiceMonitor,
            &config("ServiceMonitor", ACCEPTED),
        );
        expect(
            &monitor,
            V::Healthy,
            R::Accepted,
            &["ServiceMonitor acme/acme-rules"],
        );
    }

    #[test]
    fn config_without_status_is_unknown_not_failed() {
        for status in ["", "status: {}\n", "status:\n  bindings: null\n"] {
            expect(
                &assess_rule(status),
                V::Unknown,
                R::StatusNotReported,
                &["StatusForConfigurationResources", "feature gate"],
            );
        }
        let monitor = assess_yaml(ChildKind::ServiceMonitor, &config("ServiceMonitor", ""));
        expect(
            &monitor,
            V::Unknown,
            R::StatusNotReported,
            &["ServiceMonitor acme/acme-rules"],
        );
    }

    #[test]
    fn config_with_empty_bindings_is_not_bound() {
        expect(
            &assess_rule("status:\n  bindings: []\n"),
            V::Unknown,
            R::NotBound,
            &["no Prometheus selects it"],
        );
    }

    #[test]
    fn config_rejected_by_a_binding_is_degraded() {
        let status = "status:
  bindings:
  - group: monitoring.coreos.com
    resource: prometheuses
    name: acme
    namespace: acme
    conditions:
    - type: Accepted
      status: 'True'
      observedGeneration: 2
  - group: monitoring.coreos.com
    resource: prometheuses
    name: k8s
    namespace: monitoring
    conditions:
    - type: Accepted
      status: 'False'
      reason: InvalidConfiguration
      message: 'group \"acme.rules\", rule 1, \"HighLatency\": could not parse expression: 1:10: parse error'
      observedGeneration: 2
  - resource: thanosrulers
    name: global
    namespace: monitoring
    conditions:
    - type: Accepted
      status: 'False'
      reason: InvalidConfiguration
      observedGeneration: 2
";
        expect(
            &assess_rule(status),
            V::Degraded,
            R::InvalidConfiguration,
            &[
                "PrometheusRule acme/acme-rules: rejected by prometheuses/monitoring/k8s (InvalidConfiguration): group \"acme.rules\"",
                "also rejected by thanosrulers/monitoring/global",
            ],
        );
    }

    #[test]
    fn config_rejected_for_another_reason_is_not_accepted() {
        let status = ACCEPTED.replace(
            "status: 'True'\n      reason: ''",
            "status: 'False'\n      reason: Other",
        );
        expect(
            &assess_rule(&status),
            V::Degraded,
            R::NotAccepted,
            &["rejected by prometheuses/acme/acme (Other)"],
        );
    }

    #[test]
    fn config_with_stale_acceptance_is_progressing() {
        let status = ACCEPTED.replace("observedGeneration: 2", "observedGeneration: 1");
        expect(
            &assess_rule(&status),
            V::Progressing,
            R::StaleStatus,
            &["prometheuses/acme/acme: Accepted describes generation 1"],
        );
        let rejected_stale = status.replace("status: 'True'", "status: 'False'");
        expect(
            &assess_rule(&rejected_stale),
            V::Progressing,
            R::StaleStatus,
            &[],
        );
    }

    #[test]
    fn config_with_absent_observed_generation_is_current() {
        let status = ACCEPTED.replace("      observedGeneration: 2\n", "");
        expect(&assess_rule(&status), V::Healthy, R::Accepted, &[]);
    }

    #[test]
    fn config_binding_without_acceptance_is_progressing() {
        let status = "status:\n  bindings:\n  - resource: prometheuses\n    name: acme\n    namespace: acme\n";
        expect(
            &assess_rule(status),
            V::Progressing,
            R::NotObservedYet,
            &["prometheuses/acme/acme has not reported an Accepted condition"],
        );
        let unknown = ACCEPTED.replace("status: 'True'", "status: Unknown");
        expect(
            &assess_rule(&unknown),
            V::Progressing,
            R::NotObservedYet,
            &["Accepted by prometheuses/acme/acme is Unknown"],
        );
    }

    #[test]
    fn config_with_malformed_bindings_is_unknown() {
        expect(
            &assess_rule("status:\n  bindings: {}\n"),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings is not an array"],
        );
        expect(
            &assess_rule("status:\n  bindings: [x]\n"),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings[0] is not an object"],
        );
        let status = "status:\n  bindings:\n  - name: 3\n";
        expect(
            &assess_rule(status),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings[0].name is not a string"],
        );
        let weird = ACCEPTED.replace("status: 'True'", "status: Degraded");
        expect(
            &assess_rule(&weird),
            V::Unknown,
            R::UnexpectedStatus,
            &["condition Accepted of prometheuses/acme/acme has unexpected status \"Degraded\""],
        );
    }

    #[test]
    fn unnamed_binding_gets_an_index() {
        let status =
            "status:\n  bindings:\n  - conditions:\n    - {type: Accepted, status: 'True'}\n";
        expect(
            &assess_rule(status),
            V::Healthy,
            R::Accepted,
            &["accepted by binding #0"],
        );
    }
}

//! prometheus-operator (v0.93, `monitoring.coreos.com/v1`): `Prometheus`, and the configuration
//! resources `PrometheusRule` and `ServiceMonitor`.
//!
//! A `Prometheus` status of replica counts without conditions
//! ([`StatusShape::LegacyPrometheusReplicas`]) is judged from the counts against the spec: it
//! reports neither reconciliation nor a generation.

use super::conditions::{Condition, ConditionStatus, find, parse_conditions};
use super::fields::{Fields, Invalid, element};
use super::{ChildHealth, ConfigEvidence, HealthReason, ObjectView, StatusShape, Verdict};

/// The `Prometheus` condition that says whether its pods are ready.
const AVAILABLE: &str = "Available";
/// The `Prometheus` condition that says whether the operator reconciled it.
pub(super) const RECONCILED: &str = "Reconciled";
/// The per-binding condition of a configuration resource.
const ACCEPTED: &str = "Accepted";

/// Judges a `Prometheus` by its `Available` and `Reconciled` conditions, or by its replica
/// counts when it has no conditions.
pub(super) fn assess_prometheus(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    if let Some(health) = paused(view)? {
        return Ok(health);
    }
    let conditions = parse_conditions(&view.status)?;
    let replicas = Replicas::read(&view.status)?;
    if conditions.is_empty() {
        if status_shape(&view.status) == StatusShape::LegacyPrometheusReplicas {
            return legacy_replicas(view, &replicas);
        }
        let detail = "prometheus-operator has not reported status yet";
        return Ok(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail));
    }
    let available = find(&conditions, AVAILABLE);
    let reconciled = find(&conditions, RECONCILED);
    let by_conditions = |health: ChildHealth| health.with_shape(StatusShape::Conditions);
    if let Some(health) = current_failure(view, available, reconciled, &replicas) {
        return Ok(by_conditions(health));
    }
    check_statuses(available, reconciled)?;
    let (Some(available), Some(reconciled)) = (available, reconciled) else {
        let missing = if available.is_none() {
            AVAILABLE
        } else {
            RECONCILED
        };
        let detail = format!("prometheus-operator has not reported the {missing} condition yet");
        return Ok(by_conditions(view.health(
            Verdict::Progressing,
            HealthReason::NotObservedYet,
            detail,
        )));
    };
    Ok(by_conditions(
        not_yet_healthy(view, [available, reconciled])
            .unwrap_or_else(|| healthy(view, reconciled, &replicas)),
    ))
}

/// `Suspended` when `spec.paused` or `status.paused` is true.
fn paused(view: &ObjectView<'_>) -> Result<Option<ChildHealth>, Invalid> {
    let Some(field) = paused_field(view)? else {
        return Ok(None);
    };
    let detail = format!("reconciliation is paused ({field} is true)");
    let health = view.health(Verdict::Suspended, HealthReason::OperatorPaused, detail);
    let shape = if field == "status.paused" {
        status_shape(&view.status)
    } else {
        StatusShape::None
    };
    Ok(Some(health.with_shape(shape)))
}

/// The shape of a `Prometheus` status by the fields present, without reading their values.
fn status_shape(status: &Fields<'_>) -> StatusShape {
    let has_conditions = status
        .raw("conditions")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if has_conditions {
        StatusShape::Conditions
    } else if REPLICA_FIELDS.iter().any(|key| status.raw(key).is_some()) {
        StatusShape::LegacyPrometheusReplicas
    } else {
        StatusShape::None
    }
}

/// The replica counts of a `Prometheus` status (all four are always written with `paused`).
const REPLICA_FIELDS: [&str; 4] = [
    "replicas",
    "updatedReplicas",
    "availableReplicas",
    "unavailableReplicas",
];

/// What a legacy status adds to every message: it reports no reconciliation and no generation.
const LEGACY_REPLICAS_NOTE: &str = "legacy status without conditions, reconciliation not reported";

/// Judges a `Prometheus` status of replica counts without conditions. The counts are compared
/// with the replicas the spec asks for (`spec.replicas` × `spec.shards`, 1 each by default): a
/// total that differs describes an earlier spec (or a scale under way). Then, as the
/// `Available` condition would say it: no replica available is `NoPodReady`, some is
/// `SomePodsNotReady` unless a rolling update is under way, all is `Available`.
fn legacy_replicas(view: &ObjectView<'_>, replicas: &Replicas) -> Result<ChildHealth, Invalid> {
    let legacy = |verdict, reason, detail: String| {
        view.health(
            verdict,
            reason,
            format!("{detail} ({LEGACY_REPLICAS_NOTE})"),
        )
        .with_shape(StatusShape::LegacyPrometheusReplicas)
    };
    let expected = view
        .spec
        .i64("replicas")?
        .unwrap_or(1)
        .saturating_mul(view.spec.i64("shards")?.unwrap_or(1));
    let Some(total) = replicas.replicas else {
        let detail = "prometheus-operator has not reported status.replicas yet".to_owned();
        return Ok(legacy(
            Verdict::Progressing,
            HealthReason::NotObservedYet,
            detail,
        ));
    };
    if total != expected {
        let detail = format!(
            "status.replicas is {total}, the spec asks for {expected}: the counts describe an \
             earlier spec or a scale under way"
        );
        return Ok(legacy(
            Verdict::Progressing,
            HealthReason::StaleStatus,
            detail,
        ));
    }
    let available = replicas.available.unwrap_or(0);
    Ok(if available >= total {
        legacy(
            Verdict::Healthy,
            HealthReason::Available,
            replicas.availability(),
        )
    } else if available <= 0 {
        legacy(
            Verdict::Degraded,
            HealthReason::NoPodReady,
            replicas.availability(),
        )
    } else if replicas.is_rolling() {
        let detail = format!("rolling update, {}", replicas.rollout());
        legacy(Verdict::Progressing, HealthReason::RollingUpdate, detail)
    } else {
        legacy(
            Verdict::Degraded,
            HealthReason::SomePodsNotReady,
            replicas.availability(),
        )
    })
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
    Ok(by_bindings(view, items)?.with_shape(StatusShape::Conditions))
}

/// Judges an `AlertmanagerConfig`: by its `status.bindings` (the Alertmanagers that select it)
/// when prometheus-operator reports them, else `Healthy` as written: without the
/// `StatusForConfigurationResources` feature gate nothing reports on it, and stacksmith does not
/// watch the platform's Alertmanagers. Judging it `Unknown` would keep every stack with alert
/// delivery from being Ready on a stock operator.
pub(super) fn assess_alertmanager_config(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    match view.status.array("bindings")? {
        Some(items) if !items.is_empty() => {
            Ok(by_bindings(view, items)?.with_shape(StatusShape::Conditions))
        }
        _ => Ok(view.health(
            Verdict::Healthy,
            HealthReason::AcceptanceNotReported,
            "written; prometheus-operator reports whether an Alertmanager accepted it only with \
             its StatusForConfigurationResources feature gate (an Alertmanager that refuses it \
             logs why, e.g. a missing receiver Secret)",
        )),
    }
}

/// Judges a `PrometheusRule` or `ServiceMonitor` by its `status.bindings`.
fn by_bindings(view: &ObjectView<'_>, items: &[serde_json::Value]) -> Result<ChildHealth, Invalid> {
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

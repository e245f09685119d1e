//! grafana-operator (v5.24, `grafana.integreatly.org/v1beta1`): the `Grafana` instance, and the
//! `GrafanaFolder`, `GrafanaDatasource` and `GrafanaDashboard` it applies to instances.
//!
//! Conditions of the applied kinds have two polarities: `*Synchronized=True` is good, while
//! `NoMatchingInstance`, `NoMatchingFolder`, `FolderUIDMismatch`, `InvalidSpec` and
//! `NotificationPolicyLoopDetected` are problems when `True`. "All conditions True" is therefore
//! never a health rule here.
//!
//! Releases before those conditions ([`StatusShape::LegacyGrafanaSync`]) record a sync with
//! `status.hash`, `status.uid` (datasources, dashboards) and `status.lastResync`, written only
//! when the object was applied to every matching ready instance, and a failure with
//! `status.NoMatchingInstances: true` or (datasources) a non-empty `status.lastMessage`. They
//! record no generation; a folder's hash, though, is the SHA-256 of its `spec.title` and
//! `spec.permissions`, so a folder sync of an earlier title or permissions can be told.

use super::conditions::{Condition, ConditionStatus, find, operator_detail, parse_conditions};
use super::fields::{Fields, Invalid};
use super::{ChildHealth, ChildKind, HealthReason, ObjectView, StatusShape, Verdict};

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
        return legacy_sync(view);
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
        return Ok(health.with_shape(StatusShape::Conditions));
    }
    check_statuses(&conditions, synchronized)?;
    Ok(match find(&conditions, synchronized) {
        Some(condition) => by_synchronized(view, condition).with_shape(StatusShape::Conditions),
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
    let health = if no_matching_instances == Some(true) {
        let detail = "no ready Grafana instance matches the instanceSelector (status.NoMatchingInstances is true)";
        view.health(Verdict::Degraded, HealthReason::NoMatchingInstance, detail)
    } else if let Some(stale) = conditions.iter().find(|c| !c.is_current(view.generation)) {
        view.health(
            Verdict::Progressing,
            HealthReason::StaleStatus,
            stale.staleness(view.generation),
        )
    } else {
        let detail = format!("grafana-operator has not reported {synchronized} yet");
        view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail)
    };
    health.with_shape(StatusShape::Conditions)
}

/// The legacy fields that mark a status as written by a release before conditions (the
/// dashboard's content cache fields included, though they say nothing about health).
const LEGACY_SYNC_FIELDS: [&str; 8] = [
    "hash",
    "uid",
    "lastResync",
    "lastMessage",
    "NoMatchingInstances",
    "contentCache",
    "contentTimestamp",
    "contentUrl",
];

/// Judges an applied kind whose status has no conditions (absent or an empty list): the legacy
/// sync record, or nothing yet. Releases between the two shapes set problem conditions (e.g. a
/// dashboard's `NoMatchingFolder`) only while the problem lasts and remove them after, so a
/// sync they record reads here once the problem is gone.
fn legacy_sync(view: &ObjectView<'_>) -> Result<ChildHealth, Invalid> {
    let sync = LegacySync::read(view)?;
    if let Some(health) = sync.decisive(view)? {
        return Ok(health);
    }
    if !sync.present {
        let detail = "grafana-operator has not reported status yet";
        return Ok(view.health(Verdict::Progressing, HealthReason::NotObservedYet, detail));
    }
    let missing = sync.missing(view.kind).join(", ");
    let detail = format!(
        "grafana-operator has not reported a sync yet (legacy status without conditions, no {missing})"
    );
    Ok(view
        .health(Verdict::Progressing, HealthReason::NotObservedYet, detail)
        .with_shape(StatusShape::LegacyGrafanaSync))
}

/// What a release before conditions records on a folder, datasource or dashboard.
#[derive(Clone, Debug, Default)]
struct LegacySync<'a> {
    /// Whether any legacy field is present (see [`LEGACY_SYNC_FIELDS`]).
    present: bool,
    /// `status.NoMatchingInstances`.
    no_matching_instances: Option<bool>,
    /// `status.hash`, when not empty.
    hash: Option<&'a str>,
    /// `status.uid`, when not empty.
    uid: Option<&'a str>,
    /// `status.lastResync`, when not empty.
    last_resync: Option<&'a str>,
    /// `status.lastMessage`, when not blank: the error of the last failed attempt (datasources).
    last_message: Option<&'a str>,
}

impl<'a> LegacySync<'a> {
    fn read(view: &ObjectView<'a>) -> Result<Self, Invalid> {
        let status = &view.status;
        let text = |key: &str| -> Result<Option<&'a str>, Invalid> {
            Ok(status.str(key)?.filter(|v| !v.trim().is_empty()))
        };
        Ok(Self {
            present: LEGACY_SYNC_FIELDS
                .iter()
                .any(|key| status.raw(key).is_some()),
            no_matching_instances: status.bool("NoMatchingInstances")?,
            hash: text("hash")?,
            uid: text("uid")?,
            last_resync: text("lastResync")?,
            last_message: text("lastMessage")?,
        })
    }

    /// The fields a completed sync of this kind sets that are missing, e.g. `["uid"]`.
    fn missing(&self, kind: ChildKind) -> Vec<&'static str> {
        let needs_uid = kind != ChildKind::GrafanaFolder;
        [
            ("hash", self.hash.is_none()),
            ("uid", needs_uid && self.uid.is_none()),
            ("lastResync", self.last_resync.is_none()),
        ]
        .into_iter()
        .filter_map(|(field, missing)| missing.then_some(field))
        .collect()
    }

    /// The verdict the legacy record decides, first that applies: no matching instance, a
    /// failed attempt, a folder sync of an earlier spec, a completed sync. `None` when it
    /// decides nothing (no sync recorded yet).
    fn decisive(&self, view: &ObjectView<'_>) -> Result<Option<ChildHealth>, Invalid> {
        let legacy = |verdict, reason, detail: String| {
            view.health(verdict, reason, detail)
                .with_shape(StatusShape::LegacyGrafanaSync)
        };
        if self.no_matching_instances == Some(true) {
            let detail = "no Grafana instance matches the instanceSelector (status.NoMatchingInstances is true)";
            return Ok(Some(legacy(
                Verdict::Degraded,
                HealthReason::NoMatchingInstance,
                detail.to_owned(),
            )));
        }
        if let Some(message) = self.last_message {
            let detail = format!(
                "failed to apply to Grafana (status.lastMessage): {}",
                super::one_line(message)
            );
            return Ok(Some(legacy(
                Verdict::Degraded,
                HealthReason::ApplyFailed,
                detail,
            )));
        }
        if let Some(detail) = self.stale_folder_hash(view)? {
            return Ok(Some(legacy(
                Verdict::Progressing,
                HealthReason::StaleStatus,
                detail,
            )));
        }
        if !self.missing(view.kind).is_empty() {
            return Ok(None);
        }
        let at = self.last_resync.map(super::clip).unwrap_or_default();
        let detail = format!(
            "synchronized, last resync {at} (legacy status without conditions, no generation recorded)"
        );
        Ok(Some(legacy(
            Verdict::Healthy,
            HealthReason::Synchronized,
            detail,
        )))
    }

    /// For a folder, says why its `status.hash` describes an earlier `spec.title` or
    /// `spec.permissions`, when it does: legacy releases set it to the SHA-256 hex digest of
    /// the two, one after the other.
    fn stale_folder_hash(&self, view: &ObjectView<'_>) -> Result<Option<String>, Invalid> {
        let (ChildKind::GrafanaFolder, Some(hash)) = (view.kind, self.hash) else {
            return Ok(None);
        };
        let spec: &Fields<'_> = &view.spec;
        let title = spec.str("title")?.unwrap_or_default();
        let permissions = spec.str("permissions")?.unwrap_or_default();
        let expected = sha256_hex(&[title.as_bytes(), permissions.as_bytes()]);
        Ok((!hash.eq_ignore_ascii_case(&expected)).then(|| {
            "status.hash describes an earlier spec.title or spec.permissions (legacy status \
             without conditions, not synchronized since they changed)"
                .to_owned()
        }))
    }
}

/// Judges a `Grafana` instance by the stage its operator reached. Releases before the
/// `GrafanaReady` condition report the same stages without conditions
/// ([`StatusShape::LegacyGrafanaStage`]); the stages decide in both shapes.
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
    let shape = if !conditions.is_empty() {
        StatusShape::Conditions
    } else if stage.is_some() || stage_status.is_some() {
        StatusShape::LegacyGrafanaStage
    } else {
        StatusShape::None
    };
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
        (Some("complete"), Some("success")) => {
            return Ok(complete(view, &conditions, version).with_shape(shape));
        }
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
    Ok(view.health(verdict, reason, detail).with_shape(shape))
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

/// The SHA-256 of the concatenated `parts`, as lower-case hex (how grafana-operator's older
/// releases hash a folder's title and permissions).
fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

//! Child health: what the status written by prometheus-operator (v0.93) or grafana-operator
//! (v5.24) on a child object says, as a typed [`ChildHealth`].
//!
//! [`assess`] is a pure function of the object (as JSON, with `metadata`, `spec` and
//! `status`). It never panics: an object it cannot read is [`Verdict::Unknown`] with reason
//! [`HealthReason::MalformedObject`] or [`HealthReason::UnexpectedStatus`].
//! [`assess_with_evidence`] also takes what else is known on the object's cluster
//! ([`ConfigEvidence`]: the `Prometheus` objects of its namespace and the rejections
//! prometheus-operator recorded), so that a `PrometheusRule` or `ServiceMonitor` without a status
//! can still be judged (see [`acceptance`]).
//!
//! Rules shared by every kind:
//! - a condition describes the current spec only when its `observedGeneration` equals
//!   `metadata.generation`; when either is absent it counts as current, never as stale;
//! - a status the operator has not written yet, or one that describes an older generation, is
//!   [`Verdict::Progressing`], even when it says all is well;
//! - only a current, positive report is [`Verdict::Healthy`].
//!
//! Operators in the field are not all current: besides the conditions current releases write,
//! the older status shapes of grafana-operator (a sync recorded as `hash`/`uid`/`lastResync`,
//! `NoMatchingInstances`; a `Grafana` instance's stages without conditions) and a `Prometheus`
//! status of replica counts without conditions are read too. [`ChildHealth::shape`] says which
//! [`StatusShape`] a verdict was read from.

pub mod acceptance;
mod conditions;
mod fields;
mod grafana;
mod prometheus;

use std::fmt;

use serde_json::Value;
pub use stacksmith_api::Verdict;
use stacksmith_api::kinds::{self, KindInfo};

pub use self::acceptance::{ConfigEvidence, Rejection};
use self::fields::{Fields, Invalid};

/// The most characters of operator-written text (a reason or a message) quoted in a message.
pub const MAX_QUOTED_CHARS: usize = 512;

/// The most characters of a whole [`ChildHealth::message`].
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// The kinds of child objects stacksmith creates and judges. Their API facts (group, version,
/// plural, scope) are rows of [`stacksmith_api::kinds`]: see [`ChildKind::info`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// prometheus-operator's `Prometheus`.
    Prometheus,
    /// prometheus-operator's `PrometheusRule`.
    PrometheusRule,
    /// prometheus-operator's `ServiceMonitor`.
    ServiceMonitor,
    /// prometheus-operator's `AlertmanagerConfig`.
    AlertmanagerConfig,
    /// grafana-operator's `Grafana` (an instance).
    Grafana,
    /// grafana-operator's `GrafanaFolder`.
    GrafanaFolder,
    /// grafana-operator's `GrafanaDatasource`.
    GrafanaDatasource,
    /// grafana-operator's `GrafanaDashboard`.
    GrafanaDashboard,
}

impl ChildKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChildKind; 8] = [
        ChildKind::Prometheus,
        ChildKind::PrometheusRule,
        ChildKind::ServiceMonitor,
        ChildKind::AlertmanagerConfig,
        ChildKind::Grafana,
        ChildKind::GrafanaFolder,
        ChildKind::GrafanaDatasource,
        ChildKind::GrafanaDashboard,
    ];

    /// Its row in the table of kinds: group, version, plural, scope, serving role.
    pub fn info(self) -> &'static KindInfo {
        match self {
            ChildKind::Prometheus => &kinds::PROMETHEUS,
            ChildKind::PrometheusRule => &kinds::PROMETHEUS_RULE,
            ChildKind::ServiceMonitor => &kinds::SERVICE_MONITOR,
            ChildKind::AlertmanagerConfig => &kinds::ALERTMANAGER_CONFIG,
            ChildKind::Grafana => &kinds::GRAFANA,
            ChildKind::GrafanaFolder => &kinds::GRAFANA_FOLDER,
            ChildKind::GrafanaDatasource => &kinds::GRAFANA_DATASOURCE,
            ChildKind::GrafanaDashboard => &kinds::GRAFANA_DASHBOARD,
        }
    }

    /// The Kubernetes `kind`, e.g. `PrometheusRule`.
    pub fn as_str(self) -> &'static str {
        self.info().kind
    }

    /// The kind with this exact (case-sensitive) Kubernetes `kind`, if it is one of ours.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Whether prometheus-operator (rather than grafana-operator) owns this kind.
    pub fn is_prometheus_operator(self) -> bool {
        self.info().group == kinds::PROMETHEUS_OPERATOR_GROUP
    }

    /// The API group: `monitoring.coreos.com` or `grafana.integreatly.org`.
    pub fn api_group(self) -> &'static str {
        self.info().group
    }

    /// The `apiVersion`: `monitoring.coreos.com/v1` or `grafana.integreatly.org/v1beta1`.
    pub fn api_version(self) -> &'static str {
        self.info().api_version
    }

    /// The resource (plural) name, e.g. `prometheuses`.
    pub fn plural(self) -> &'static str {
        self.info().plural
    }
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a child got its verdict. [`HealthReason::as_str`] gives the CamelCase form used in
/// stacksmith's own status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthReason {
    // Healthy.
    /// A `Prometheus` is `Available=True` and `Reconciled=True`.
    Available,
    /// Every Prometheus that selects a `PrometheusRule`/`ServiceMonitor` accepted it.
    Accepted,
    /// A `PrometheusRule`/`ServiceMonitor` without a status (the feature gate is off) whose
    /// selecting Prometheus is reconciled at its current generation, with no rejection
    /// recorded for the object's current version: acceptance inferred, not reported.
    AcceptanceInferred,
    /// A Grafana folder, datasource or dashboard was applied to its Grafana instances.
    Synchronized,
    /// A `Grafana` instance went through every stage.
    GrafanaReady,
    /// An `AlertmanagerConfig` without a status (prometheus-operator reports whether an
    /// Alertmanager accepted it only with its `StatusForConfigurationResources` feature gate):
    /// written, and nothing says it was refused.
    AcceptanceNotReported,

    // Progressing.
    /// The operator has not reported on the object yet (or reports `Unknown`).
    NotObservedYet,
    /// The operator's report describes an older generation of the object.
    StaleStatus,
    /// A `Prometheus` has pods not ready while it rolls out a new version.
    RollingUpdate,
    /// A `Grafana` instance is still going through its stages.
    StageInProgress,
    /// A `PrometheusRule`/`ServiceMonitor` without a status whose selecting Prometheus has not
    /// been reconciled at its current generation yet, so acceptance cannot be inferred yet.
    PrometheusNotReconciled,

    // Degraded.
    /// A `Prometheus` has some pods not ready and is not rolling out.
    SomePodsNotReady,
    /// A `Prometheus` has no pod ready.
    NoPodReady,
    /// A `Prometheus`'s StatefulSet does not exist.
    StatefulSetNotFound,
    /// A `Prometheus` is `Available=False` for another reason.
    Unavailable,
    /// prometheus-operator failed to reconcile a `Prometheus` (`Reconciled=False`).
    ReconcileFailed,
    /// A Prometheus rejected a `PrometheusRule`/`ServiceMonitor` as invalid.
    InvalidConfiguration,
    /// A Prometheus did not accept a `PrometheusRule`/`ServiceMonitor` for another reason.
    NotAccepted,
    /// prometheus-operator recorded a Warning Event `InvalidConfiguration` about the current
    /// version of a `PrometheusRule`/`ServiceMonitor` that has no status.
    RejectedByOperator,
    /// The Prometheus that selects a `PrometheusRule`/`ServiceMonitor` without a status reports
    /// `Reconciled=False`: the object is not known to be in effect.
    PrometheusReconcileFailed,
    /// grafana-operator failed to apply the object to (some of) its Grafana instances.
    ApplyFailed,
    /// No ready Grafana instance matches the object's `instanceSelector`.
    NoMatchingInstance,
    /// The folder the object refers to does not exist.
    NoMatchingFolder,
    /// The folder UID the object refers to does not match its folder.
    FolderUidMismatch,
    /// grafana-operator found the object's spec invalid.
    InvalidSpec,
    /// grafana-operator found a loop in notification policies.
    NotificationPolicyLoopDetected,
    /// A stage of a `Grafana` instance failed.
    StageFailed,

    // Suspended.
    /// prometheus-operator was told not to reconcile (`paused: true`).
    OperatorPaused,
    /// grafana-operator was told not to reconcile (`suspend: true`).
    Suspended,

    // Unknown.
    /// A `PrometheusRule`/`ServiceMonitor` has no status (prometheus-operator writes one only
    /// with the `StatusForConfigurationResources` feature gate) and it was judged without any
    /// other evidence ([`assess`] rather than [`assess_with_evidence`]).
    StatusNotReported,
    /// A `PrometheusRule`/`ServiceMonitor` has an empty binding list, or has no status and no
    /// `Prometheus` of its namespace selects it.
    NotBound,
    /// The status has a shape or a value this version does not know.
    UnexpectedStatus,
    /// The object is not a Kubernetes object of the expected kind.
    MalformedObject,
}

impl HealthReason {
    /// The CamelCase reason, e.g. `NoPodReady`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthReason::Available => "Available",
            HealthReason::Accepted => "Accepted",
            HealthReason::AcceptanceInferred => "AcceptanceInferred",
            HealthReason::Synchronized => "Synchronized",
            HealthReason::GrafanaReady => "GrafanaReady",
            HealthReason::AcceptanceNotReported => "AcceptanceNotReported",
            HealthReason::NotObservedYet => "NotObservedYet",
            HealthReason::StaleStatus => "StaleStatus",
            HealthReason::RollingUpdate => "RollingUpdate",
            HealthReason::StageInProgress => "StageInProgress",
            HealthReason::PrometheusNotReconciled => "PrometheusNotReconciled",
            HealthReason::SomePodsNotReady => "SomePodsNotReady",
            HealthReason::NoPodReady => "NoPodReady",
            HealthReason::StatefulSetNotFound => "StatefulSetNotFound",
            HealthReason::Unavailable => "Unavailable",
            HealthReason::ReconcileFailed => "ReconcileFailed",
            HealthReason::InvalidConfiguration => "InvalidConfiguration",
            HealthReason::NotAccepted => "NotAccepted",
            HealthReason::RejectedByOperator => "RejectedByOperator",
            HealthReason::PrometheusReconcileFailed => "PrometheusReconcileFailed",
            HealthReason::ApplyFailed => "ApplyFailed",
            HealthReason::NoMatchingInstance => "NoMatchingInstance",
            HealthReason::NoMatchingFolder => "NoMatchingFolder",
            HealthReason::FolderUidMismatch => "FolderUIDMismatch",
            HealthReason::InvalidSpec => "InvalidSpec",
            HealthReason::NotificationPolicyLoopDetected => "NotificationPolicyLoopDetected",
            HealthReason::StageFailed => "StageFailed",
            HealthReason::OperatorPaused => "OperatorPaused",
            HealthReason::Suspended => "Suspended",
            HealthReason::StatusNotReported => "StatusNotReported",
            HealthReason::NotBound => "NotBound",
            HealthReason::UnexpectedStatus => "UnexpectedStatus",
            HealthReason::MalformedObject => "MalformedObject",
        }
    }
}

impl fmt::Display for HealthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shape of the status a verdict was read from: the condition-based report of current
/// operator releases, or one of the older shapes that releases still common in the field write
/// (see `docs/child-health.md` for the releases of each). [`StatusShape::as_str`] gives the name
/// `stacksmith health` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusShape {
    /// No status was read: the object has none (yet), the verdict comes from its spec
    /// (`spec.suspend`, `spec.paused`) or from other evidence (a `PrometheusRule` or
    /// `ServiceMonitor` without a status), or the object or its status could not be read.
    #[default]
    None,
    /// Conditions as current releases write them: `Available`/`Reconciled` on a `Prometheus`,
    /// the `Accepted` conditions of `status.bindings` on a `PrometheusRule`/`ServiceMonitor`,
    /// `*Synchronized` and the problem conditions on a folder, datasource or dashboard, and a
    /// `Grafana` instance's stages next to its `GrafanaReady` condition.
    Conditions,
    /// A folder, datasource or dashboard as grafana-operator releases before conditions report
    /// it: a sync recorded by `status.hash`, `status.uid` (datasources, dashboards) and
    /// `status.lastResync`, a failure by `status.NoMatchingInstances` or `status.lastMessage`;
    /// no generation is recorded.
    LegacyGrafanaSync,
    /// A `Grafana` instance's `status.stage`/`status.stageStatus` without conditions, as
    /// grafana-operator releases before the `GrafanaReady` condition report it.
    LegacyGrafanaStage,
    /// A `Prometheus` status with replica counts (`replicas`, `updatedReplicas`,
    /// `availableReplicas`, `unavailableReplicas`, `paused`) and no conditions: reconciliation
    /// is not reported and no generation is recorded.
    LegacyPrometheusReplicas,
}

impl StatusShape {
    /// The CamelCase name, e.g. `LegacyGrafanaSync`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusShape::None => "None",
            StatusShape::Conditions => "Conditions",
            StatusShape::LegacyGrafanaSync => "LegacyGrafanaSync",
            StatusShape::LegacyGrafanaStage => "LegacyGrafanaStage",
            StatusShape::LegacyPrometheusReplicas => "LegacyPrometheusReplicas",
        }
    }

    /// Whether this is one of the older shapes (written by an operator release that predates
    /// the conditions stacksmith reads first).
    pub fn is_legacy(self) -> bool {
        matches!(
            self,
            StatusShape::LegacyGrafanaSync
                | StatusShape::LegacyGrafanaStage
                | StatusShape::LegacyPrometheusReplicas
        )
    }
}

impl fmt::Display for StatusShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The health of one child object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildHealth {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: HealthReason,
    /// One line for a human: the object, what is wrong, and the operator's own words.
    pub message: String,
    /// The shape of the status the verdict was read from ([`StatusShape::None`] when it was
    /// read from none; see [`ChildHealth::with_shape`]).
    pub shape: StatusShape,
}

impl ChildHealth {
    /// A health with its message made one line and clipped to [`MAX_MESSAGE_CHARS`], read from
    /// no status ([`StatusShape::None`]; see [`ChildHealth::with_shape`]).
    pub fn new(verdict: Verdict, reason: HealthReason, message: impl AsRef<str>) -> Self {
        Self {
            verdict,
            reason,
            message: clip_to(&flatten(message.as_ref()), MAX_MESSAGE_CHARS),
            shape: StatusShape::None,
        }
    }

    /// This health, read from a status of the given shape.
    #[must_use]
    pub fn with_shape(mut self, shape: StatusShape) -> Self {
        self.shape = shape;
        self
    }
}

/// Judges a child object of the given kind from the status its operator wrote.
///
/// `object` is the whole object (`metadata`, `spec`, `status`) as JSON. Never panics; see the
/// module documentation for the rules.
///
/// ```
/// use serde_json::json;
/// use stacksmith_core::health::StatusShape;
/// use stacksmith_core::{ChildKind, HealthReason, Verdict, assess};
///
/// let prometheus = json!({
///     "kind": "Prometheus",
///     "metadata": {"name": "acme", "namespace": "acme", "generation": 2},
///     "status": {"replicas": 2, "availableReplicas": 0, "conditions": [
///         {"type": "Available", "status": "False", "reason": "NoPodReady",
///          "message": "pod prometheus-acme-0: containers not ready", "observedGeneration": 2},
///         {"type": "Reconciled", "status": "True", "observedGeneration": 2},
///     ]},
/// });
/// let health = assess(ChildKind::Prometheus, &prometheus);
/// assert_eq!((health.verdict, health.reason), (Verdict::Degraded, HealthReason::NoPodReady));
/// assert_eq!(health.shape, StatusShape::Conditions);
/// assert_eq!(
///     health.message,
///     "Prometheus acme/acme: 0 of 2 replicas available (NoPodReady): pod prometheus-acme-0: containers not ready",
/// );
/// ```
pub fn assess(kind: ChildKind, object: &Value) -> ChildHealth {
    judge(kind, object, None)
}

/// Judges a child object like [`assess`], and a `PrometheusRule` or `ServiceMonitor` without
/// `status.bindings` also from `evidence`: the `Prometheus` objects that select it and the
/// rejections prometheus-operator recorded about it (see [`acceptance`]). `status.bindings`,
/// when present, win over any evidence; other kinds ignore it.
///
/// ```
/// use serde_json::json;
/// use stacksmith_core::{ChildKind, ConfigEvidence, HealthReason, Verdict, assess_with_evidence};
///
/// let rule = json!({
///     "kind": "PrometheusRule",
///     "metadata": {"name": "acme-core", "namespace": "customer-acme", "uid": "u-1",
///                  "resourceVersion": "7", "generation": 1,
///                  "labels": {"stacksmith.io/customer": "acme"}},
///     "spec": {"groups": []},
/// });
/// let prometheus = json!({
///     "kind": "Prometheus",
///     "metadata": {"name": "acme", "namespace": "customer-acme", "generation": 3},
///     "spec": {"ruleSelector": {"matchLabels": {"stacksmith.io/customer": "acme"}}},
///     "status": {"conditions": [
///         {"type": "Reconciled", "status": "True", "observedGeneration": 3},
///     ]},
/// });
/// let prometheuses = [prometheus];
/// let evidence = ConfigEvidence {
///     prometheuses: &prometheuses,
///     namespace_labels: None,
///     rejections: Some(&[]),
/// };
/// let health = assess_with_evidence(ChildKind::PrometheusRule, &rule, &evidence);
/// assert_eq!(
///     (health.verdict, health.reason),
///     (Verdict::Healthy, HealthReason::AcceptanceInferred),
/// );
/// assert!(health.message.contains("Prometheus customer-acme/acme reconciled at generation 3"));
/// ```
pub fn assess_with_evidence(
    kind: ChildKind,
    object: &Value,
    evidence: &ConfigEvidence<'_>,
) -> ChildHealth {
    judge(kind, object, Some(evidence))
}

fn judge(kind: ChildKind, object: &Value, evidence: Option<&ConfigEvidence<'_>>) -> ChildHealth {
    let view = match ObjectView::parse(kind, object) {
        Ok(view) => view,
        Err(invalid) => return unreadable(&describe(kind, object), invalid),
    };
    let result = match kind {
        ChildKind::Prometheus => prometheus::assess_prometheus(&view),
        ChildKind::PrometheusRule | ChildKind::ServiceMonitor => {
            prometheus::assess_config_resource(&view, evidence)
        }
        ChildKind::AlertmanagerConfig => prometheus::assess_alertmanager_config(&view),
        ChildKind::Grafana => grafana::assess_instance(&view),
        ChildKind::GrafanaFolder | ChildKind::GrafanaDatasource | ChildKind::GrafanaDashboard => {
            grafana::assess_resource(&view)
        }
    };
    result.unwrap_or_else(|invalid| unreadable(&view.who, invalid))
}

/// The `Unknown` health of an object that could not be read.
fn unreadable(who: &str, invalid: Invalid) -> ChildHealth {
    ChildHealth::new(
        Verdict::Unknown,
        invalid.reason,
        format!("{who}: {}", invalid.detail),
    )
}

/// The parts of an object every assessment needs.
#[derive(Clone, Debug)]
struct ObjectView<'a> {
    /// The kind being judged.
    kind: ChildKind,
    /// `Kind namespace/name`, the subject of every message.
    who: String,
    /// `metadata.generation`.
    generation: Option<i64>,
    /// `metadata` (uid, resourceVersion, labels are read where needed).
    metadata: Fields<'a>,
    /// `spec` (absent when the object has none).
    spec: Fields<'a>,
    /// `status` (absent when the operator wrote none).
    status: Fields<'a>,
}

impl<'a> ObjectView<'a> {
    fn parse(kind: ChildKind, object: &'a Value) -> Result<Self, Invalid> {
        let Some(map) = object.as_object() else {
            return Err(Invalid::object(format!(
                "not a JSON object but {}",
                json_type(object)
            )));
        };
        let root = Fields::new(Some(map), "", HealthReason::MalformedObject);
        check_kind(kind, &root)?;
        let metadata = root
            .object("metadata")
            .map_err(|_| Invalid::object("metadata is not an object"))?;
        let generation = metadata.i64("generation")?;
        let who = who(kind, metadata.str("namespace")?, metadata.str("name")?);
        let spec = root
            .object("spec")
            .map_err(|_| Invalid::object("spec is not an object"))?;
        let status = match root.raw("status") {
            Some(Value::Object(status)) => {
                Fields::new(Some(status), "status", HealthReason::UnexpectedStatus)
            }
            Some(other) => {
                return Err(Invalid::status(format!(
                    "status is not an object but {}",
                    json_type(other)
                )));
            }
            None => Fields::new(None, "status", HealthReason::UnexpectedStatus),
        };
        Ok(Self {
            kind,
            who,
            generation,
            metadata,
            spec,
            status,
        })
    }
}

impl ObjectView<'_> {
    /// A health whose message is `<Kind namespace/name>: <detail>`.
    fn health(
        &self,
        verdict: Verdict,
        reason: HealthReason,
        detail: impl fmt::Display,
    ) -> ChildHealth {
        ChildHealth::new(verdict, reason, format!("{}: {detail}", self.who))
    }
}

/// Rejects an object whose `kind` says it is something else.
fn check_kind(kind: ChildKind, root: &Fields<'_>) -> Result<(), Invalid> {
    match root.str("kind")? {
        Some(actual) if actual != kind.as_str() => Err(Invalid::object(format!(
            "expected a {kind} but the object is a {}",
            clip(actual)
        ))),
        _ => Ok(()),
    }
}

/// `Kind namespace/name`, `Kind name` or `Kind <unnamed>`.
fn who(kind: ChildKind, namespace: Option<&str>, name: Option<&str>) -> String {
    let name = name
        .filter(|n| !n.is_empty())
        .map_or_else(|| "<unnamed>".to_owned(), clip);
    match namespace.filter(|ns| !ns.is_empty()) {
        Some(namespace) => format!("{kind} {}/{name}", clip(namespace)),
        None => format!("{kind} {name}"),
    }
}

/// Best-effort `who` for an object that failed to parse.
fn describe(kind: ChildKind, object: &Value) -> String {
    let metadata = object.get("metadata");
    let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
    who(kind, field("namespace"), field("name"))
}

/// The JSON type of a value, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Operator text as one clipped line (see [`flatten`] and [`clip`]).
fn one_line(text: &str) -> String {
    clip(&flatten(text))
}

/// `text` as one line: its non-blank lines, trimmed, joined with `; `.
fn flatten(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters (with `…` when cut).
fn clip(text: &str) -> String {
    clip_to(text, MAX_QUOTED_CHARS)
}

/// `text` cut to at most `max` characters, on a character boundary, ending in `…` when cut.
fn clip_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod test_support {
    use serde_json::Value;

    use super::{ChildHealth, ChildKind, HealthReason, StatusShape, Verdict, assess};

    /// Parses a YAML fixture into JSON.
    pub fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    /// Assesses a YAML fixture.
    pub fn assess_yaml(kind: ChildKind, text: &str) -> ChildHealth {
        assess(kind, &yaml(text))
    }

    /// `object` with `status` as its status, or without one when `status` is `None`.
    pub fn with_status(mut object: Value, status: impl Into<Option<Value>>) -> Value {
        if let Some(status) = status.into() {
            object["status"] = status;
        }
        object
    }

    /// `value` with each field named by a JSON pointer (e.g. `/conditions/1/reason`) set; the
    /// field's parent must exist.
    pub fn with(mut value: Value, changes: &[(impl AsRef<str>, Value)]) -> Value {
        for (pointer, new) in changes {
            let pointer = pointer.as_ref();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match value.pointer_mut(parent) {
                Some(Value::Object(fields)) => {
                    fields.insert(key.to_owned(), new.clone());
                }
                Some(Value::Array(items)) => items[key.parse::<usize>().unwrap()] = new.clone(),
                _ => panic!("{pointer}: no object or array holds it"),
            }
        }
        value
    }

    /// `value` without the fields named by JSON pointers.
    pub fn without(mut value: Value, pointers: &[&str]) -> Value {
        for pointer in pointers {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let removed = value
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .and_then(|fields| fields.remove(key));
            assert!(removed.is_some(), "{pointer}: no such field");
        }
        value
    }

    /// One object and the judgement it must get.
    pub struct Case {
        /// What the case is about, named in a failure.
        pub name: &'static str,
        /// The object, judged as the kind it declares.
        pub object: Value,
        pub verdict: Verdict,
        pub reason: HealthReason,
        /// Parts the message must contain.
        pub fragments: &'static [&'static str],
        /// The status shape the verdict must be read from, when checked.
        pub shape: Option<StatusShape>,
    }

    impl Case {
        /// This case, also checking the status shape the verdict is read from.
        pub fn shape(mut self, shape: StatusShape) -> Self {
            self.shape = Some(shape);
            self
        }
    }

    /// A [`Case`].
    pub fn case(
        name: &'static str,
        object: Value,
        verdict: Verdict,
        reason: HealthReason,
        fragments: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            object,
            verdict,
            reason,
            fragments,
            shape: None,
        }
    }

    /// Assesses every case's object as the kind it declares, and checks each judgement.
    #[track_caller]
    pub fn check(cases: &[Case]) {
        for case in cases {
            let kind = case.object["kind"]
                .as_str()
                .and_then(ChildKind::from_kind)
                .unwrap_or_else(|| {
                    panic!("case {:?}: the object is of no kind of ours", case.name)
                });
            let health = assess(kind, &case.object);
            expect_in(
                case.name,
                &health,
                case.verdict,
                case.reason,
                case.fragments,
            );
            if let Some(shape) = case.shape {
                assert_eq!(
                    health.shape, shape,
                    "case {:?}: status shape (message: {})",
                    case.name, health.message
                );
            }
        }
    }

    /// Asserts verdict, reason and that the message contains every fragment.
    #[track_caller]
    pub fn expect(
        health: &ChildHealth,
        verdict: Verdict,
        reason: HealthReason,
        fragments: &[&str],
    ) {
        expect_in("", health, verdict, reason, fragments);
    }

    /// [`expect`], naming the case in a failure (unless `case` is empty).
    #[track_caller]
    fn expect_in(
        case: &str,
        health: &ChildHealth,
        verdict: Verdict,
        reason: HealthReason,
        fragments: &[&str],
    ) {
        let case = if case.is_empty() {
            String::new()
        } else {
            format!("case {case:?}: ")
        };
        assert_eq!(
            (health.verdict, health.reason),
            (verdict, reason),
            "{case}message: {}",
            health.message
        );
        for fragment in fragments {
            assert!(
                health.message.contains(fragment),
                "{case}{:?} not in message {:?}",
                fragment,
                health.message
            );
        }
        assert!(
            !health.message.contains('\n'),
            "{case}message is not one line: {:?}",
            health.message
        );
    }
}

#[cfg(test)]
mod tests;

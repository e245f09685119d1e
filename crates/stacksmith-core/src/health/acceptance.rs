//! A `PrometheusRule` or `ServiceMonitor` judged without a status of its own.
//!
//! prometheus-operator (v0.93) writes `status.bindings` on configuration resources only when it
//! runs with `--feature-gates=StatusForConfigurationResources=true`, which is off by default.
//! Without it, what a stock operator leaves behind is:
//!
//! - the `Prometheus` objects of the object's namespace. One **selects** a `PrometheusRule` when
//!   its `spec.ruleSelector` matches the rule's labels (`spec.serviceMonitorSelector` for a
//!   `ServiceMonitor`; a null selector selects nothing, `{}` everything) and its
//!   `spec.ruleNamespaceSelector` (`spec.serviceMonitorNamespaceSelector`) is null (its own
//!   namespace only) or matches the namespace's labels. Its `Reconciled` condition says whether
//!   the operator reconciled it at its current generation;
//! - the Events the operator records when it rejects a configuration resource (e.g. a rule whose
//!   PromQL does not parse): `events.k8s.io/v1`, type `Warning`, reason `InvalidConfiguration`,
//!   `regarding` the object, in the object's namespace, with a note `... was rejected due to
//!   invalid configuration: <error>` ([`Rejection`]).
//!
//! [`super::assess_with_evidence`] judges from that ([`ConfigEvidence`]); the first row that
//! applies wins:
//!
//! | # | evidence | verdict / reason |
//! |---|---|---|
//! | 1 | a rejection of the object's **current version** | Degraded / `RejectedByOperator` |
//! | 2 | no `Prometheus` of the namespace selects it | Unknown / `NotBound` |
//! | 3 | a selecting `Prometheus` cannot be read | Unknown / `UnexpectedStatus` |
//! | 4 | a selecting `Prometheus` is `Reconciled=False` at its current generation | Degraded / `PrometheusReconcileFailed` |
//! | 5 | a selecting `Prometheus` is paused | Suspended / `OperatorPaused` |
//! | 6 | a selecting `Prometheus` has no current `Reconciled=True` (missing, `Unknown`, stale) | Progressing / `PrometheusNotReconciled` |
//! | 7 | every selecting `Prometheus` is `Reconciled=True` at its current generation | Healthy / `AcceptanceInferred` |
//!
//! **Which rejection counts.** A rejection is about the object when its `regarding.uid` is the
//! object's uid (kind, namespace and name when the object has no uid), and about the object's
//! current version when its `regarding.resourceVersion` equals the object's
//! `metadata.resourceVersion` (when either is absent there is nothing to compare and it counts,
//! as an absent generation does). Resource versions are compared for equality only, never
//! ordered, and Event times are compared with nothing: they come from another clock, and nothing
//! on the object says when it was last written. The rule is sound because the Event recorder
//! prometheus-operator uses (client-go `tools/events`) keys its Events by the whole `regarding`
//! reference, `resourceVersion` included: every rejected version gets an Event of its own, and
//! whenever the operator rejects the object again it does so for the version it sees then. An
//! Event about another version says nothing about the current one, only that an earlier version
//! was rejected (the Healthy message then says so).
//!
//! What this cannot see (see docs/child-health.md): right after a write, until the operator has
//! processed the new version, nothing tells that it has not; the operator re-processes an object
//! only when its generation or labels change, so after a write that changes neither (say an
//! annotation added by hand) an earlier rejection no longer counts; and Events expire (one
//! `--event-ttl`, 1 h by default, after the operator last recorded them).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::conditions::{ConditionStatus, find, parse_conditions};
use super::fields::Invalid;
use super::prometheus::{RECONCILED, paused_field};
use super::{ChildHealth, ChildKind, HealthReason, ObjectView, Verdict, clip, one_line};

/// The reason prometheus-operator gives the Events that record a rejection.
pub const REJECTION_REASON: &str = "InvalidConfiguration";
/// The Event type of a rejection.
const WARNING: &str = "Warning";

/// What is known about a `PrometheusRule` or `ServiceMonitor` on its cluster besides its own
/// (absent) status.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigEvidence<'a> {
    /// The `Prometheus` objects of the object's namespace, as JSON (those of other namespaces
    /// are ignored).
    pub prometheuses: &'a [Value],
    /// The labels of the object's namespace, when known: needed only for a `Prometheus` whose
    /// namespace selector is neither null nor empty. Unknown, such a `Prometheus` does not
    /// count as selecting the object.
    pub namespace_labels: Option<&'a Value>,
    /// The rejections prometheus-operator recorded in the object's namespace (others are
    /// ignored); `None` when they cannot be read (the Events are not visible to stacksmith), in
    /// which case acceptance is inferred without them and the message says so.
    pub rejections: Option<&'a [Rejection]>,
}

/// A rejection prometheus-operator recorded as an Event: what is kept of a Warning Event with
/// reason `InvalidConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `regarding.kind`, e.g. `PrometheusRule`.
    pub kind: String,
    /// `regarding.namespace` (the Event's own namespace when absent).
    pub namespace: String,
    /// `regarding.name`.
    pub name: String,
    /// `regarding.uid`.
    pub uid: String,
    /// `regarding.resourceVersion`: the version of the object that was rejected.
    pub resource_version: Option<String>,
    /// The resource that rejected it (the Event's `related`), e.g. `Prometheus customer-acme/acme`.
    pub reporter: Option<String>,
    /// The note (`... was rejected due to invalid configuration: <error>`), one line, clipped to
    /// [`super::MAX_QUOTED_CHARS`] characters.
    pub note: String,
    /// When it was last recorded: `series.lastObservedTime`, else `eventTime`, else the
    /// deprecated `lastTimestamp`, else `metadata.creationTimestamp`.
    pub last_seen: Option<Timestamp>,
}

impl Rejection {
    /// Reads a rejection from an Event as JSON: `events.k8s.io/v1` (`regarding`, `related`,
    /// `note`), or core `v1` (`involvedObject`, `related`, `message`). `None` unless the Event is
    /// a `Warning` with reason `InvalidConfiguration` that names its object (kind, name, uid).
    pub fn from_event(event: &Value) -> Option<Self> {
        if text(event.get("type")) != Some(WARNING)
            || text(event.get("reason")) != Some(REJECTION_REASON)
        {
            return None;
        }
        let regarding = event
            .get("regarding")
            .or_else(|| event.get("involvedObject"))?;
        let field = |key: &str| text(regarding.get(key)).map(str::to_owned);
        let namespace = field("namespace")
            .or_else(|| text(event.pointer("/metadata/namespace")).map(str::to_owned))
            .unwrap_or_default();
        let reporter = event.get("related").and_then(|related| {
            let kind = text(related.get("kind"))?;
            let name = text(related.get("name"))?;
            Some(clip(&match text(related.get("namespace")) {
                Some(namespace) => format!("{kind} {namespace}/{name}"),
                None => format!("{kind} {name}"),
            }))
        });
        let note = text(event.get("note"))
            .or_else(|| text(event.get("message")))
            .map(one_line)
            .unwrap_or_default();
        let last_seen = [
            "/series/lastObservedTime",
            "/eventTime",
            "/deprecatedLastTimestamp",
            "/lastTimestamp",
            "/metadata/creationTimestamp",
        ]
        .into_iter()
        .find_map(|pointer| text(event.pointer(pointer))?.parse::<Timestamp>().ok());
        Some(Self {
            kind: field("kind")?,
            namespace,
            name: field("name")?,
            uid: field("uid")?,
            resource_version: field("resourceVersion"),
            reporter,
            note,
            last_seen,
        })
    }
}

/// A non-blank string value, trimmed.
fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The object being judged, as the evidence is matched against it.
struct Subject<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: Option<&'a str>,
    resource_version: Option<&'a str>,
    labels: Option<&'a Value>,
}

impl<'a> Subject<'a> {
    fn read(view: &ObjectView<'a>) -> Result<Self, Invalid> {
        let metadata = &view.metadata;
        let labels = match metadata.raw("labels") {
            Some(labels) if !labels.is_object() => {
                return Err(Invalid::object("metadata.labels is not an object"));
            }
            labels => labels,
        };
        Ok(Self {
            namespace: metadata.str("namespace")?.unwrap_or_default(),
            name: metadata.str("name")?.unwrap_or_default(),
            uid: metadata.str("uid")?.filter(|u| !u.is_empty()),
            resource_version: metadata.str("resourceVersion")?.filter(|v| !v.is_empty()),
            labels,
        })
    }

    /// Whether a rejection is about this object (any version of it).
    fn is_regarded_by(&self, kind: ChildKind, rejection: &Rejection) -> bool {
        match self.uid {
            Some(uid) => rejection.uid == uid,
            None => {
                rejection.kind == kind.as_str()
                    && rejection.namespace == self.namespace
                    && rejection.name == self.name
            }
        }
    }

    /// Whether a rejection about this object is about its current version.
    fn is_current(&self, rejection: &Rejection) -> bool {
        match (rejection.resource_version.as_deref(), self.resource_version) {
            (Some(rejected), Some(current)) => rejected == current,
            _ => true,
        }
    }
}

/// The spec fields of a `Prometheus` that select objects of a kind: (selector, namespace
/// selector).
fn selector_fields(kind: ChildKind) -> (&'static str, &'static str) {
    match kind {
        ChildKind::ServiceMonitor => ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
        _ => ("ruleSelector", "ruleNamespaceSelector"),
    }
}

/// Judges a configuration resource without `status.bindings` from `evidence` (see the module
/// documentation).
pub(super) fn infer(
    view: &ObjectView<'_>,
    evidence: &ConfigEvidence<'_>,
) -> Result<ChildHealth, Invalid> {
    let subject = Subject::read(view)?;
    let about: Vec<&Rejection> = evidence
        .rejections
        .unwrap_or_default()
        .iter()
        .filter(|r| subject.is_regarded_by(view.kind, r))
        .collect();
    let (current, earlier): (Vec<&Rejection>, Vec<&Rejection>) =
        about.into_iter().partition(|r| subject.is_current(r));
    if let Some(health) = rejected(view, current) {
        return Ok(health);
    }
    let in_namespace: Vec<&Value> = evidence
        .prometheuses
        .iter()
        .filter(|p| {
            p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(subject.namespace)
        })
        .collect();
    let mut selecting: Vec<&Value> = in_namespace
        .iter()
        .copied()
        .filter(|p| selects(p, view.kind, &subject, evidence.namespace_labels))
        .collect();
    if selecting.is_empty() {
        return Ok(not_bound(view, &subject, in_namespace.len()));
    }
    selecting.sort_by_key(|p| p.pointer("/metadata/name").and_then(Value::as_str));
    let judged = selecting
        .into_iter()
        .map(Selecting::judge)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(health) = not_inferable(view, &judged) {
        return Ok(health);
    }
    let reconciled = judged
        .iter()
        .filter_map(|s| match s {
            Selecting::Reconciled { who, generation } => Some(match generation {
                Some(generation) => format!("{who} reconciled at generation {generation}"),
                None => format!("{who} reconciled"),
            }),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let rejections = match (evidence.rejections, earlier.is_empty()) {
        (None, _) => "rejections not checked (the Events cannot be read)",
        (Some(_), true) => "no rejection reported",
        (Some(_), false) => {
            "no rejection reported for this version (an earlier version was rejected)"
        }
    };
    Ok(view.health(
        Verdict::Healthy,
        HealthReason::AcceptanceInferred,
        format!(
            "accepted (inferred: prometheus-operator reports no status for configuration \
             resources; {reconciled}, {rejections})"
        ),
    ))
}

/// `Degraded` when prometheus-operator rejected the current version; the first rejecting
/// resource (by name) is quoted with its newest note, the others named.
fn rejected(view: &ObjectView<'_>, mut current: Vec<&Rejection>) -> Option<ChildHealth> {
    current.sort_by(|a, b| {
        (&a.reporter, std::cmp::Reverse(a.last_seen), &a.note).cmp(&(
            &b.reporter,
            std::cmp::Reverse(b.last_seen),
            &b.note,
        ))
    });
    let first = *current.first()?;
    let by = first.reporter.as_deref().unwrap_or("prometheus-operator");
    let mut detail = format!("rejected by {by} (Event {REJECTION_REASON})");
    if !first.note.is_empty() {
        detail.push_str(": ");
        detail.push_str(&first.note);
    }
    let mut others: Vec<&str> = current
        .iter()
        .filter_map(|r| r.reporter.as_deref())
        .filter(|r| Some(*r) != first.reporter.as_deref())
        .collect();
    others.dedup();
    if !others.is_empty() {
        detail.push_str(&format!("; also rejected by {}", others.join(", ")));
    }
    Some(view.health(Verdict::Degraded, HealthReason::RejectedByOperator, detail))
}

/// Whether a `Prometheus` (of the object's namespace) selects the object.
fn selects(
    prometheus: &Value,
    kind: ChildKind,
    subject: &Subject<'_>,
    namespace_labels: Option<&Value>,
) -> bool {
    let (selector, namespace_selector) = selector_fields(kind);
    let spec = prometheus.get("spec");
    let field = |key: &str| spec.and_then(|s| s.get(key)).unwrap_or(&Value::Null);
    let namespace_ok = match field(namespace_selector) {
        Value::Null => true,
        selector => match namespace_labels {
            Some(labels) => crate::label_selector::matches(selector, Some(labels)),
            None => crate::label_selector::is_empty(selector),
        },
    };
    namespace_ok && crate::label_selector::matches(field(selector), subject.labels)
}

/// `Unknown` / `NotBound`: no `Prometheus` of the namespace selects the object.
fn not_bound(view: &ObjectView<'_>, subject: &Subject<'_>, in_namespace: usize) -> ChildHealth {
    let (selector, namespace_selector) = selector_fields(view.kind);
    let namespace = subject.namespace;
    let detail = match in_namespace {
        0 => format!("not bound, there is no Prometheus in namespace {namespace}"),
        n => format!(
            "not bound, none of the {n} Prometheus in namespace {namespace} selects it (by its \
             {selector} and {namespace_selector})"
        ),
    };
    view.health(Verdict::Unknown, HealthReason::NotBound, detail)
}

/// How a selecting `Prometheus` stands.
enum Selecting {
    /// `Reconciled=True` at its current generation.
    Reconciled {
        who: String,
        generation: Option<i64>,
    },
    /// `Reconciled=False` at its current generation.
    Failed { who: String, detail: String },
    /// `spec.paused` or `status.paused`.
    Paused { who: String, field: &'static str },
    /// No current, known `Reconciled` yet.
    Pending { who: String, detail: String },
}

impl Selecting {
    fn judge(prometheus: &Value) -> Result<Self, Invalid> {
        let view = ObjectView::parse(ChildKind::Prometheus, prometheus).map_err(|invalid| {
            let who = super::describe(ChildKind::Prometheus, prometheus);
            selecting_invalid(&who, invalid)
        })?;
        Self::judge_view(&view).map_err(|invalid| selecting_invalid(&view.who, invalid))
    }

    fn judge_view(view: &ObjectView<'_>) -> Result<Self, Invalid> {
        let who = view.who.clone();
        if let Some(field) = paused_field(view)? {
            return Ok(Self::Paused { who, field });
        }
        let conditions = parse_conditions(&view.status)?;
        let Some(reconciled) = find(&conditions, RECONCILED) else {
            let detail = format!("no {RECONCILED} condition yet");
            return Ok(Self::Pending { who, detail });
        };
        if !matches!(
            reconciled.status,
            ConditionStatus::True | ConditionStatus::False | ConditionStatus::Unknown
        ) {
            return Err(Invalid::status(format!(
                "condition {RECONCILED} has unexpected status {:?}",
                reconciled.status.to_string()
            )));
        }
        if !reconciled.is_current(view.generation) {
            let observed = reconciled
                .observed_generation
                .map_or_else(|| "?".to_owned(), |g| g.to_string());
            let generation = view
                .generation
                .map_or_else(|| "?".to_owned(), |g| g.to_string());
            let detail = format!(
                "{RECONCILED} describes generation {observed}, the Prometheus is at generation \
                 {generation}"
            );
            return Ok(Self::Pending { who, detail });
        }
        Ok(match reconciled.status {
            ConditionStatus::True => Self::Reconciled {
                who,
                generation: view.generation,
            },
            ConditionStatus::False => Self::Failed {
                who,
                detail: reconciled.detail(),
            },
            _ => Self::Pending {
                who,
                detail: format!("{RECONCILED} is Unknown{}", reconciled.detail()),
            },
        })
    }
}

/// A selecting `Prometheus` that cannot be read makes the object's verdict `Unknown`, naming it.
fn selecting_invalid(who: &str, invalid: Invalid) -> Invalid {
    Invalid {
        reason: HealthReason::UnexpectedStatus,
        detail: format!(
            "cannot infer acceptance, {who} (which selects it) cannot be read: {}",
            invalid.detail
        ),
    }
}

/// `Degraded`, `Suspended` or `Progressing` when a selecting `Prometheus` does not allow
/// inferring acceptance (failures first, then pauses, then what is still pending).
fn not_inferable(view: &ObjectView<'_>, judged: &[Selecting]) -> Option<ChildHealth> {
    let failed = judged.iter().find_map(|s| match s {
        Selecting::Failed { who, detail } => Some(format!(
            "not known to be in effect, {who} (which selects it) failed to reconcile{detail}"
        )),
        _ => None,
    });
    if let Some(detail) = failed {
        return Some(view.health(
            Verdict::Degraded,
            HealthReason::PrometheusReconcileFailed,
            detail,
        ));
    }
    let paused = judged.iter().find_map(|s| match s {
        Selecting::Paused { who, field } => Some(format!(
            "not processed, {who} (which selects it) is paused ({field} is true)"
        )),
        _ => None,
    });
    if let Some(detail) = paused {
        return Some(view.health(Verdict::Suspended, HealthReason::OperatorPaused, detail));
    }
    let pending = judged.iter().find_map(|s| match s {
        Selecting::Pending { who, detail } => Some(format!(
            "waiting for {who} (which selects it) to be reconciled: {detail}"
        )),
        _ => None,
    })?;
    Some(view.health(
        Verdict::Progressing,
        HealthReason::PrometheusNotReconciled,
        pending,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::test_support::{expect, yaml};
    use super::super::{ChildKind, HealthReason as R, Verdict as V, assess, assess_with_evidence};
    use super::{ConfigEvidence, Rejection};

    /// A `PrometheusRule` (uid `rule-uid`, resourceVersion 7, generation 2) labelled for
    /// customer acme, with the given status block (none when empty).
    fn rule(status: &str) -> Value {
        config("PrometheusRule", status)
    }

    fn config(kind: &str, status: &str) -> Value {
        yaml(&format!(
            "apiVersion: monitoring.coreos.com/v1
kind: {kind}
metadata:
  name: acme-core
  namespace: customer-acme
  uid: rule-uid
  resourceVersion: '7'
  generation: 2
  labels:
    stacksmith.io/customer: acme
    team: platform
spec: {{}}
{status}"
        ))
    }

    /// A `Prometheus` named `name` in `namespace` at generation 4 selecting rules and monitors by
    /// `selector` (a YAML flow value, e.g. `{matchLabels: {a: b}}`), with the given conditions.
    fn prometheus(namespace: &str, name: &str, selector: &str, conditions: &str) -> Value {
        yaml(&format!(
            "apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata:
  name: {name}
  namespace: {namespace}
  generation: 4
spec:
  ruleSelector: {selector}
  serviceMonitorSelector: {selector}
status:
  conditions: {conditions}
"
        ))
    }

    const ACME: &str = "{matchLabels: {stacksmith.io/customer: acme}}";
    const RECONCILED: &str = "[{type: Available, status: 'True', observedGeneration: 4}, \
                              {type: Reconciled, status: 'True', observedGeneration: 4}]";

    /// The stack's own Prometheus, reconciled at its current generation.
    fn acme() -> Value {
        prometheus("customer-acme", "acme", ACME, RECONCILED)
    }

    /// A rejection Event (`events.k8s.io/v1`) about the rule at `resource_version`.
    fn event(uid: &str, resource_version: &str, reporter: &str, note: &str) -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": format!("acme-core.{resource_version}"), "namespace": "customer-acme",
                         "creationTimestamp": "2025-06-01T10:00:00Z"},
            "eventTime": "2025-06-01T10:00:00.123456Z",
            "type": "Warning",
            "reason": "InvalidConfiguration",
            "action": "SelectingPrometheusRuleResources",
            "reportingController": "prometheus-controller",
            "regarding": {"kind": "PrometheusRule", "namespace": "customer-acme", "name": "acme-core",
                          "uid": uid, "apiVersion": "monitoring.coreos.com/v1",
                          "resourceVersion": resource_version},
            "related": {"kind": "Prometheus", "namespace": "customer-acme", "name": reporter,
                        "apiVersion": "monitoring.coreos.com/v1"},
            "note": note,
        })
    }

    const PARSE_ERROR: &str = "PrometheusRule acme-core was rejected due to invalid configuration: \
                               group \"core\", rule 1, \"Down\": could not parse expression: 1:4: \
                               parse error: unexpected identifier";

    fn rejection(uid: &str, resource_version: &str) -> Rejection {
        rejection_by(uid, resource_version, "acme", PARSE_ERROR)
    }

    fn rejection_by(uid: &str, resource_version: &str, reporter: &str, note: &str) -> Rejection {
        Rejection::from_event(&event(uid, resource_version, reporter, note)).unwrap()
    }

    /// Judges `object` with these Prometheus objects and rejections (and no namespace labels).
    fn judge(
        kind: ChildKind,
        object: &Value,
        prometheuses: &[Value],
        rejections: &[Rejection],
    ) -> super::super::ChildHealth {
        let evidence = ConfigEvidence {
            prometheuses,
            namespace_labels: None,
            rejections: Some(rejections),
        };
        assess_with_evidence(kind, object, &evidence)
    }

    fn judge_rule(prometheuses: &[Value], rejections: &[Rejection]) -> super::super::ChildHealth {
        judge(
            ChildKind::PrometheusRule,
            &rule(""),
            prometheuses,
            rejections,
        )
    }

    #[test]
    fn selected_by_a_reconciled_prometheus_is_healthy_inferred() {
        let health = judge_rule(&[acme()], &[]);
        expect(&health, V::Healthy, R::AcceptanceInferred, &[]);
        assert_eq!(
            health.message,
            "PrometheusRule customer-acme/acme-core: accepted (inferred: prometheus-operator \
             reports no status for configuration resources; Prometheus customer-acme/acme \
             reconciled at generation 4, no rejection reported)"
        );
        let monitor = judge(
            ChildKind::ServiceMonitor,
            &config("ServiceMonitor", "status: {}\n"),
            &[acme()],
            &[],
        );
        expect(
            &monitor,
            V::Healthy,
            R::AcceptanceInferred,
            &["ServiceMonitor customer-acme/acme-core: accepted (inferred"],
        );
    }

    #[test]
    fn without_evidence_the_feature_gate_is_still_named() {
        expect(
            &assess(ChildKind::PrometheusRule, &rule("")),
            V::Unknown,
            R::StatusNotReported,
            &["StatusForConfigurationResources"],
        );
    }

    #[test]
    fn bindings_win_over_any_evidence() {
        let accepted = rule(
            "status:
  bindings:
  - {resource: prometheuses, namespace: customer-acme, name: acme,
     conditions: [{type: Accepted, status: 'True', observedGeneration: 2}]}
",
        );
        let health = judge(
            ChildKind::PrometheusRule,
            &accepted,
            &[],
            &[rejection("rule-uid", "7")],
        );
        expect(
            &health,
            V::Healthy,
            R::Accepted,
            &["accepted by prometheuses/customer-acme/acme"],
        );
        let unbound = rule("status:\n  bindings: []\n");
        let health = judge(ChildKind::PrometheusRule, &unbound, &[acme()], &[]);
        expect(
            &health,
            V::Unknown,
            R::NotBound,
            &["status.bindings is empty"],
        );
    }

    #[test]
    fn a_rejection_of_the_current_version_is_degraded() {
        let health = judge_rule(&[acme()], &[rejection("rule-uid", "7")]);
        expect(&health, V::Degraded, R::RejectedByOperator, &[]);
        assert_eq!(
            health.message,
            format!(
                "PrometheusRule customer-acme/acme-core: rejected by Prometheus customer-acme/acme \
                 (Event InvalidConfiguration): {PARSE_ERROR}"
            )
        );
        // It wins even when no Prometheus selects the rule any more.
        expect(
            &judge_rule(&[], &[rejection("rule-uid", "7")]),
            V::Degraded,
            R::RejectedByOperator,
            &["could not parse expression"],
        );
    }

    #[test]
    fn a_rejection_of_an_earlier_version_no_longer_counts() {
        let health = judge_rule(&[acme()], &[rejection("rule-uid", "6")]);
        expect(
            &health,
            V::Healthy,
            R::AcceptanceInferred,
            &["no rejection reported for this version (an earlier version was rejected)"],
        );
    }

    #[test]
    fn a_rejection_of_another_object_does_not_count() {
        // Same name, another uid: an earlier object of that name, deleted and re-created.
        let health = judge_rule(&[acme()], &[rejection("old-uid", "7")]);
        expect(
            &health,
            V::Healthy,
            R::AcceptanceInferred,
            &["no rejection reported)"],
        );
    }

    #[test]
    fn absent_resource_versions_count_as_current() {
        let mut event = event("rule-uid", "7", "acme", PARSE_ERROR);
        event["regarding"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let unversioned = Rejection::from_event(&event).unwrap();
        expect(
            &judge_rule(&[acme()], &[unversioned]),
            V::Degraded,
            R::RejectedByOperator,
            &[],
        );
        // An exported object without uid or resourceVersion is matched by kind and name.
        let mut exported = rule("");
        let metadata = exported["metadata"].as_object_mut().unwrap();
        metadata.remove("uid");
        metadata.remove("resourceVersion");
        expect(
            &judge(
                ChildKind::PrometheusRule,
                &exported,
                &[acme()],
                &[rejection("rule-uid", "3")],
            ),
            V::Degraded,
            R::RejectedByOperator,
            &[],
        );
        // ... and a rejection of a rule of that name says nothing about a monitor.
        let mut monitor = config("ServiceMonitor", "");
        monitor["metadata"].as_object_mut().unwrap().remove("uid");
        expect(
            &judge(
                ChildKind::ServiceMonitor,
                &monitor,
                &[acme()],
                &[rejection("rule-uid", "3")],
            ),
            V::Healthy,
            R::AcceptanceInferred,
            &[],
        );
    }

    #[test]
    fn rejections_by_several_prometheuses_are_all_named() {
        let rejections = [
            rejection_by("rule-uid", "7", "zeta", "second"),
            rejection_by("rule-uid", "7", "acme", "first"),
            rejection_by("rule-uid", "7", "zeta", "second again"),
        ];
        let health = judge_rule(&[acme()], &rejections);
        expect(&health, V::Degraded, R::RejectedByOperator, &[]);
        assert!(
            health.message.ends_with(
                "rejected by Prometheus customer-acme/acme (Event InvalidConfiguration): first; \
                 also rejected by Prometheus customer-acme/zeta"
            ),
            "{}",
            health.message
        );
    }

    #[test]
    fn a_long_note_is_clipped() {
        let note = format!(
            "PrometheusRule acme-core was rejected: {}",
            "x".repeat(3000)
        );
        let health = judge_rule(&[acme()], &[rejection_by("rule-uid", "7", "acme", &note)]);
        expect(&health, V::Degraded, R::RejectedByOperator, &["…"]);
        assert!(health.message.chars().count() < 700, "{}", health.message);
    }

    #[test]
    fn no_selecting_prometheus_is_not_bound() {
        expect(
            &judge_rule(&[], &[]),
            V::Unknown,
            R::NotBound,
            &["not bound, there is no Prometheus in namespace customer-acme"],
        );
        let other_namespace = prometheus("monitoring", "k8s", "{}", RECONCILED);
        expect(
            &judge_rule(&[other_namespace], &[]),
            V::Unknown,
            R::NotBound,
            &["no Prometheus in namespace customer-acme"],
        );
        let other_labels = prometheus(
            "customer-acme",
            "acme",
            "{matchLabels: {stacksmith.io/customer: globex}}",
            RECONCILED,
        );
        expect(
            &judge_rule(&[other_labels], &[]),
            V::Unknown,
            R::NotBound,
            &[
                "none of the 1 Prometheus in namespace customer-acme selects it (by its ruleSelector and ruleNamespaceSelector)",
            ],
        );
        // A null selector selects nothing; an empty one everything.
        let null = prometheus("customer-acme", "acme", "null", RECONCILED);
        expect(&judge_rule(&[null], &[]), V::Unknown, R::NotBound, &[]);
        let everything = prometheus("customer-acme", "acme", "{}", RECONCILED);
        expect(
            &judge_rule(&[everything], &[]),
            V::Healthy,
            R::AcceptanceInferred,
            &[],
        );
    }

    #[test]
    fn match_expressions_select() {
        let cases = [
            ("[{key: team, operator: In, values: [platform, web]}]", true),
            ("[{key: team, operator: NotIn, values: [platform]}]", false),
            ("[{key: team, operator: Exists}]", true),
            (
                "[{key: stacksmith.io/customer, operator: DoesNotExist}]",
                false,
            ),
            (
                "[{key: team, operator: In, values: [platform]}, {key: tier, operator: DoesNotExist}]",
                true,
            ),
        ];
        for (expressions, selected) in cases {
            let selector =
                format!("{{matchLabels: {{team: platform}}, matchExpressions: {expressions}}}");
            let p = prometheus("customer-acme", "acme", &selector, RECONCILED);
            let health = judge_rule(&[p], &[]);
            let expected = if selected {
                (V::Healthy, R::AcceptanceInferred)
            } else {
                (V::Unknown, R::NotBound)
            };
            assert_eq!((health.verdict, health.reason), expected, "{expressions}");
        }
    }

    #[test]
    fn a_monitor_is_selected_by_the_service_monitor_selector() {
        let mut p = acme();
        p["spec"]["serviceMonitorSelector"] = json!({"matchLabels": {"team": "web"}});
        let monitor = config("ServiceMonitor", "");
        expect(
            &judge(ChildKind::ServiceMonitor, &monitor, &[p.clone()], &[]),
            V::Unknown,
            R::NotBound,
            &["by its serviceMonitorSelector and serviceMonitorNamespaceSelector"],
        );
        // The rule is still selected by the ruleSelector.
        expect(
            &judge_rule(&[p], &[]),
            V::Healthy,
            R::AcceptanceInferred,
            &[],
        );
    }

    #[test]
    fn namespace_selectors_need_the_namespace_labels() {
        let mut p = acme();
        p["spec"]["ruleNamespaceSelector"] = json!({"matchLabels": {"tenant": "yes"}});
        let judge_with = |p: &Value, labels: Option<&Value>| {
            let prometheuses = [p.clone()];
            let evidence = ConfigEvidence {
                prometheuses: &prometheuses,
                namespace_labels: labels,
                rejections: Some(&[]),
            };
            let health = assess_with_evidence(ChildKind::PrometheusRule, &rule(""), &evidence);
            (health.verdict, health.reason)
        };
        let tenant = json!({"tenant": "yes", "kubernetes.io/metadata.name": "customer-acme"});
        let other = json!({"kubernetes.io/metadata.name": "customer-acme"});
        assert_eq!(
            judge_with(&p, Some(&tenant)),
            (V::Healthy, R::AcceptanceInferred)
        );
        assert_eq!(judge_with(&p, Some(&other)), (V::Unknown, R::NotBound));
        assert_eq!(judge_with(&p, None), (V::Unknown, R::NotBound));
        // `{}` selects every namespace, labels known or not.
        p["spec"]["ruleNamespaceSelector"] = json!({});
        assert_eq!(judge_with(&p, None), (V::Healthy, R::AcceptanceInferred));
    }

    #[test]
    fn a_prometheus_not_reconciled_yet_is_progressing() {
        let stale = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: 'True', observedGeneration: 3}]",
        );
        expect(
            &judge_rule(&[stale], &[]),
            V::Progressing,
            R::PrometheusNotReconciled,
            &[
                "waiting for Prometheus customer-acme/acme (which selects it) to be reconciled: Reconciled describes generation 3, the Prometheus is at generation 4",
            ],
        );
        let none = prometheus("customer-acme", "acme", ACME, "[]");
        expect(
            &judge_rule(&[none], &[]),
            V::Progressing,
            R::PrometheusNotReconciled,
            &["no Reconciled condition yet"],
        );
        let unknown = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: Unknown, reason: NotFound, message: not found}]",
        );
        expect(
            &judge_rule(&[unknown], &[]),
            V::Progressing,
            R::PrometheusNotReconciled,
            &["Reconciled is Unknown (NotFound): not found"],
        );
        // A stale failure is not a failure of the current generation.
        let stale_failure = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: 'False', observedGeneration: 3}]",
        );
        expect(
            &judge_rule(&[stale_failure], &[]),
            V::Progressing,
            R::PrometheusNotReconciled,
            &[],
        );
    }

    #[test]
    fn absent_observed_generation_counts_as_current() {
        let p = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: 'True'}]",
        );
        expect(
            &judge_rule(&[p], &[]),
            V::Healthy,
            R::AcceptanceInferred,
            &["Prometheus customer-acme/acme reconciled at generation 4"],
        );
        let mut ungenerated = acme();
        ungenerated["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("generation");
        expect(
            &judge_rule(&[ungenerated], &[]),
            V::Healthy,
            R::AcceptanceInferred,
            &["Prometheus customer-acme/acme reconciled, no rejection"],
        );
    }

    #[test]
    fn a_failed_reconcile_is_degraded() {
        let failed = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: 'False', reason: ReconciliationFailed, message: 'invalid remote write URL', observedGeneration: 4}]",
        );
        expect(
            &judge_rule(&[failed], &[]),
            V::Degraded,
            R::PrometheusReconcileFailed,
            &[
                "not known to be in effect, Prometheus customer-acme/acme (which selects it) failed to reconcile (ReconciliationFailed): invalid remote write URL",
            ],
        );
    }

    #[test]
    fn a_paused_prometheus_is_suspended() {
        let mut p = acme();
        p["spec"]["paused"] = json!(true);
        expect(
            &judge_rule(&[p], &[]),
            V::Suspended,
            R::OperatorPaused,
            &[
                "not processed, Prometheus customer-acme/acme (which selects it) is paused (spec.paused is true)",
            ],
        );
    }

    #[test]
    fn every_selecting_prometheus_counts_failures_first() {
        let failed = prometheus(
            "customer-acme",
            "zeta",
            "{}",
            "[{type: Reconciled, status: 'False', observedGeneration: 4}]",
        );
        let stale = prometheus(
            "customer-acme",
            "beta",
            "{}",
            "[{type: Reconciled, status: 'True', observedGeneration: 1}]",
        );
        expect(
            &judge_rule(&[acme(), stale.clone(), failed], &[]),
            V::Degraded,
            R::PrometheusReconcileFailed,
            &["Prometheus customer-acme/zeta"],
        );
        expect(
            &judge_rule(&[acme(), stale], &[]),
            V::Progressing,
            R::PrometheusNotReconciled,
            &["Prometheus customer-acme/beta"],
        );
        // Named in order, whatever order the cache gives them in.
        let second = prometheus("customer-acme", "acme-2", ACME, RECONCILED);
        let health = judge_rule(&[second, acme()], &[]);
        expect(
            &health,
            V::Healthy,
            R::AcceptanceInferred,
            &[
                "Prometheus customer-acme/acme reconciled at generation 4 and Prometheus customer-acme/acme-2 reconciled at generation 4",
            ],
        );
    }

    #[test]
    fn an_unreadable_selecting_prometheus_is_unknown() {
        let odd = prometheus(
            "customer-acme",
            "acme",
            ACME,
            "[{type: Reconciled, status: Degraded}]",
        );
        expect(
            &judge_rule(&[odd], &[]),
            V::Unknown,
            R::UnexpectedStatus,
            &[
                "PrometheusRule customer-acme/acme-core: cannot infer acceptance, Prometheus customer-acme/acme (which selects it) cannot be read: condition Reconciled has unexpected status \"Degraded\"",
            ],
        );
        let broken = prometheus("customer-acme", "acme", ACME, "{}");
        expect(
            &judge_rule(&[broken], &[]),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions is not an array"],
        );
    }

    #[test]
    fn unreadable_rejections_are_said() {
        let prometheuses = [acme()];
        let evidence = ConfigEvidence {
            prometheuses: &prometheuses,
            namespace_labels: None,
            rejections: None,
        };
        expect(
            &assess_with_evidence(ChildKind::PrometheusRule, &rule(""), &evidence),
            V::Healthy,
            R::AcceptanceInferred,
            &["rejections not checked (the Events cannot be read)"],
        );
    }

    #[test]
    fn other_kinds_ignore_the_evidence() {
        let evidence = ConfigEvidence::default();
        let p = acme();
        assert_eq!(
            assess_with_evidence(ChildKind::Prometheus, &p, &evidence),
            assess(ChildKind::Prometheus, &p)
        );
    }

    #[test]
    fn rejections_are_read_from_events() {
        let read = rejection("rule-uid", "7");
        assert_eq!(
            read,
            Rejection {
                kind: "PrometheusRule".into(),
                namespace: "customer-acme".into(),
                name: "acme-core".into(),
                uid: "rule-uid".into(),
                resource_version: Some("7".into()),
                reporter: Some("Prometheus customer-acme/acme".into()),
                note: PARSE_ERROR.into(),
                last_seen: Some("2025-06-01T10:00:00.123456Z".parse().unwrap()),
            }
        );
        // The newest observation of a series wins.
        let mut series = event("rule-uid", "7", "acme", "n");
        series["series"] = json!({"count": 3, "lastObservedTime": "2025-06-01T11:00:00.000000Z"});
        assert_eq!(
            Rejection::from_event(&series).unwrap().last_seen,
            Some("2025-06-01T11:00:00Z".parse().unwrap())
        );
        // A core/v1 Event (as `kubectl get events -o yaml` prints it).
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "customer-acme"},
            "type": "Warning", "reason": "InvalidConfiguration",
            "involvedObject": {"kind": "ServiceMonitor", "name": "acme-api", "uid": "sm-uid",
                               "resourceVersion": "9"},
            "message": "\"customer-acme/acme-api\" was rejected due to invalid configuration: bad\nthing",
            "lastTimestamp": "2025-06-01T10:00:00Z",
        });
        let core = Rejection::from_event(&core).unwrap();
        assert_eq!(
            (
                core.kind.as_str(),
                core.namespace.as_str(),
                core.note.as_str(),
                core.reporter
            ),
            (
                "ServiceMonitor",
                "customer-acme",
                "\"customer-acme/acme-api\" was rejected due to invalid configuration: bad; thing",
                None
            )
        );
        // Not a rejection.
        for (key, value) in [
            ("type", json!("Normal")),
            ("reason", json!("Created")),
            (
                "regarding",
                json!({"kind": "PrometheusRule", "name": "acme-core"}),
            ),
            ("regarding", json!(null)),
        ] {
            let mut other = event("rule-uid", "7", "acme", "n");
            other[key] = value;
            assert_eq!(Rejection::from_event(&other), None, "{key}");
        }
    }
}

//! What prometheus-operator's statuses say: `Prometheus` (availability, reconciliation, pause,
//! rollout) and the configuration resources `PrometheusRule` and `ServiceMonitor` (bindings and
//! their `Accepted` conditions). Fixtures are JSON objects; a case changes fields by pointer.

use serde_json::{Value, json};

use crate::health::test_support::{case, check, expect, with, with_status, without};
use crate::health::{ChildKind, HealthReason as R, Verdict as V, assess};

/// A `Prometheus` `acme/acme` at generation 4, with `status` when given.
fn prometheus(status: impl Into<Option<Value>>) -> Value {
    let object = json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {
            "name": "acme",
            "namespace": "acme",
            "generation": 4,
            "labels": {"app.kubernetes.io/managed-by": "stacksmith"},
        },
        "spec": {
            "replicas": 2,
            "version": "v3.5.0",
            "serviceAccountName": "prometheus",
            "ruleSelector": {"matchLabels": {"stacksmith.io/customer": "acme"}},
        },
    });
    with_status(object, status)
}

/// The status of a healthy 2-replica Prometheus at generation 4: conditions `Available` (0) and
/// `Reconciled` (1).
fn healthy() -> Value {
    json!({
        "availableReplicas": 2,
        "paused": false,
        "replicas": 2,
        "shards": 1,
        "unavailableReplicas": 0,
        "updatedReplicas": 2,
        "selector": "app.kubernetes.io/instance=acme,app.kubernetes.io/managed-by=prometheus-operator",
        "shardStatuses": [{
            "availableReplicas": 2,
            "replicas": 2,
            "shardID": "0",
            "unavailableReplicas": 0,
            "updatedReplicas": 2,
        }],
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastTransitionTime": "2025-06-01T10:00:00Z",
                "observedGeneration": 4,
            },
            {
                "type": "Reconciled",
                "status": "True",
                "lastTransitionTime": "2025-06-01T10:00:00Z",
                "observedGeneration": 4,
            },
        ],
    })
}

/// [`healthy`] with fields changed.
fn healthy_but(changes: &[(&str, Value)]) -> Value {
    prometheus(with(healthy(), changes))
}

/// A `Prometheus` whose status has the fields of `counts` and two conditions: `available`, and
/// `Reconciled` True at generation 4.
fn reconciled_and(available: Value, counts: Value) -> Value {
    let mut status = counts;
    status["conditions"] = json!([
        available,
        {"type": "Reconciled", "status": "True", "observedGeneration": 4},
    ]);
    prometheus(status)
}

#[test]
fn available_and_reconciled_is_healthy() {
    let health = assess(ChildKind::Prometheus, &prometheus(healthy()));
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
fn healthy_prometheus() {
    check(&[
        case(
            "reconciled with deprecated fields: a warning",
            healthy_but(&[
                ("/conditions/1/reason", json!("DeprecatedFieldsInUse")),
                (
                    "/conditions/1/message",
                    json!("field spec.baseImage is deprecated"),
                ),
            ]),
            V::Healthy,
            R::Available,
            &["warning (DeprecatedFieldsInUse): field spec.baseImage is deprecated"],
        ),
        case(
            "reconciled with unmanaged configuration: a warning",
            healthy_but(&[("/conditions/1/reason", json!("ConfigurationUnmanaged"))]),
            V::Healthy,
            R::Available,
            &["warning (ConfigurationUnmanaged)"],
        ),
        case(
            "an absent observedGeneration counts as current",
            prometheus(without(
                healthy(),
                &[
                    "/conditions/0/observedGeneration",
                    "/conditions/1/observedGeneration",
                ],
            )),
            V::Healthy,
            R::Available,
            &[],
        ),
        case(
            "an absent generation counts as current",
            without(
                healthy_but(&[
                    ("/conditions/0/observedGeneration", json!(1)),
                    ("/conditions/1/observedGeneration", json!(1)),
                ]),
                &["/metadata/generation"],
            ),
            V::Healthy,
            R::Available,
            &[],
        ),
    ]);
}

#[test]
fn progressing_prometheus() {
    check(&[
        case(
            "stale conditions, even when True",
            healthy_but(&[
                ("/conditions/0/observedGeneration", json!(3)),
                ("/conditions/1/observedGeneration", json!(3)),
            ]),
            V::Progressing,
            R::StaleStatus,
            &[
                "Prometheus acme/acme",
                "Available describes generation 3, the object is at generation 4",
            ],
        ),
        case(
            "one stale condition is enough",
            healthy_but(&[("/conditions/1/observedGeneration", json!(2))]),
            V::Progressing,
            R::StaleStatus,
            &["Reconciled describes generation 2"],
        ),
        case(
            "a stale failure",
            prometheus(json!({
                "replicas": 2,
                "availableReplicas": 0,
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "NoPodReady", "observedGeneration": 3},
                    {"type": "Reconciled", "status": "False", "reason": "ReconciliationFailed", "observedGeneration": 3},
                ],
            })),
            V::Progressing,
            R::StaleStatus,
            &["generation 3", "generation 4"],
        ),
        case(
            "no status",
            prometheus(None),
            V::Progressing,
            R::NotObservedYet,
            &["Prometheus acme/acme", "not reported status yet"],
        ),
        case(
            "an empty status",
            prometheus(json!({})),
            V::Progressing,
            R::NotObservedYet,
            &["not reported status yet"],
        ),
        case(
            "a null status",
            prometheus(Value::Null),
            V::Progressing,
            R::NotObservedYet,
            &[],
        ),
        case(
            "no conditions",
            prometheus(json!({"conditions": []})),
            V::Progressing,
            R::NotObservedYet,
            &[],
        ),
        case(
            "a missing condition",
            prometheus(json!({
                "replicas": 2,
                "conditions": [{"type": "Available", "status": "True", "observedGeneration": 4}],
            })),
            V::Progressing,
            R::NotObservedYet,
            &["Reconciled condition"],
        ),
        case(
            "Reconciled Unknown, NotFound",
            healthy_but(&[
                ("/conditions/1/status", json!("Unknown")),
                ("/conditions/1/reason", json!("NotFound")),
                ("/conditions/1/message", json!("object not found")),
            ]),
            V::Progressing,
            R::NotObservedYet,
            &["Reconciled is Unknown (NotFound): object not found"],
        ),
        case(
            "some pods not ready during a rolling update",
            reconciled_and(
                json!({
                    "type": "Available",
                    "status": "Degraded",
                    "reason": "SomePodsNotReady",
                    "message": "pod prometheus-acme-1: containers not ready",
                    "observedGeneration": 4,
                }),
                json!({"replicas": 2, "updatedReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1}),
            ),
            V::Progressing,
            R::RollingUpdate,
            &[
                "rolling update, 1 of 2 replicas updated, 1 of 2 replicas available (SomePodsNotReady): pod prometheus-acme-1",
            ],
        ),
    ]);
}

#[test]
fn paused_prometheus_is_suspended() {
    check(&[
        case(
            "paused in the status",
            healthy_but(&[("/paused", json!(true))]),
            V::Suspended,
            R::OperatorPaused,
            &["Prometheus acme/acme", "paused", "status.paused"],
        ),
        case(
            "paused in the spec",
            with(prometheus(None), &[("/spec/paused", json!(true))]),
            V::Suspended,
            R::OperatorPaused,
            &["spec.paused"],
        ),
    ]);
}

#[test]
fn no_pod_ready_is_degraded() {
    let object = reconciled_and(
        json!({
            "type": "Available",
            "status": "False",
            "reason": "NoPodReady",
            "message": "pod prometheus-acme-0: containers not ready",
            "observedGeneration": 4,
        }),
        json!({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 0, "unavailableReplicas": 2}),
    );
    let health = assess(ChildKind::Prometheus, &object);
    expect(&health, V::Degraded, R::NoPodReady, &[]);
    assert_eq!(
        health.message,
        "Prometheus acme/acme: 0 of 2 replicas available (NoPodReady): pod prometheus-acme-0: containers not ready"
    );
}

#[test]
fn degraded_prometheus() {
    check(&[
        case(
            "the StatefulSet does not exist",
            reconciled_and(
                json!({
                    "type": "Available",
                    "status": "False",
                    "reason": "StatefulSetNotFound",
                    "message": "statefulset prometheus-acme not found",
                    "observedGeneration": 4,
                }),
                json!({"replicas": 0}),
            ),
            V::Degraded,
            R::StatefulSetNotFound,
            &["(StatefulSetNotFound): statefulset prometheus-acme not found"],
        ),
        case(
            "Available False for another reason",
            reconciled_and(
                json!({"type": "Available", "status": "False", "reason": "SomethingNew", "observedGeneration": 4}),
                json!({}),
            ),
            V::Degraded,
            R::Unavailable,
            &["not available (SomethingNew)"],
        ),
        case(
            "some pods not ready, no rollout",
            reconciled_and(
                json!({
                    "type": "Available",
                    "status": "Degraded",
                    "reason": "SomePodsNotReady",
                    "message": "pod prometheus-acme-1: containers with unready status: [prometheus]\npod prometheus-acme-1: back-off restarting failed container",
                    "observedGeneration": 4,
                }),
                json!({"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 1}),
            ),
            V::Degraded,
            R::SomePodsNotReady,
            &[
                "1 of 2 replicas available (SomePodsNotReady): pod prometheus-acme-1: containers with unready status: [prometheus]; pod prometheus-acme-1: back-off",
            ],
        ),
        case(
            "a reconcile failure wins over availability",
            prometheus(json!({
                "replicas": 0,
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "StatefulSetNotFound", "observedGeneration": 4},
                    {
                        "type": "Reconciled",
                        "status": "False",
                        "reason": "ReconciliationFailed",
                        "message": "failed to generate configuration: invalid remote write URL \"htp:/x\"",
                        "observedGeneration": 4,
                    },
                ],
            })),
            V::Degraded,
            R::ReconcileFailed,
            &[
                "Prometheus acme/acme: reconciliation failed (ReconciliationFailed): failed to generate configuration",
            ],
        ),
    ]);
}

#[test]
fn unreadable_prometheus_status_is_unknown() {
    check(&[
        case(
            "Available has an unexpected status",
            healthy_but(&[("/conditions/0/status", json!("Maybe"))]),
            V::Unknown,
            R::UnexpectedStatus,
            &["Available has unexpected status \"Maybe\""],
        ),
        case(
            "Reconciled has an unexpected status",
            healthy_but(&[("/conditions/1/status", json!("Degraded"))]),
            V::Unknown,
            R::UnexpectedStatus,
            &["Reconciled has unexpected status \"Degraded\""],
        ),
        case(
            "replicas is not an integer",
            healthy_but(&[("/replicas", json!("two"))]),
            V::Unknown,
            R::UnexpectedStatus,
            &["Prometheus acme/acme", "status.replicas is not an integer"],
        ),
        case(
            "paused is not a boolean",
            healthy_but(&[("/paused", json!("no"))]),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.paused is not a boolean"],
        ),
        case(
            "a condition status is not a string",
            healthy_but(&[
                ("/conditions/0/status", json!(true)),
                ("/conditions/1/status", json!(true)),
            ]),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions[0].status is not a string"],
        ),
        case(
            "conditions is not an array",
            prometheus(json!({"conditions": {}})),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions is not an array"],
        ),
    ]);
}

#[test]
fn long_operator_messages_are_clipped() {
    let object = prometheus(json!({
        "replicas": 1,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "NoPodReady", "message": "x".repeat(2000)},
            {"type": "Reconciled", "status": "True"},
        ],
    }));
    let health = assess(ChildKind::Prometheus, &object);
    expect(&health, V::Degraded, R::NoPodReady, &["…"]);
    assert!(
        health.message.chars().count() < 600,
        "{}",
        health.message.len()
    );
}

/// A configuration resource `acme/acme-rules` of `kind` at generation 2, with `status` when
/// given.
fn config(kind: ChildKind, status: impl Into<Option<Value>>) -> Value {
    let object = json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": kind.as_str(),
        "metadata": {"name": "acme-rules", "namespace": "acme", "generation": 2},
        "spec": {},
    });
    with_status(object, status)
}

/// A `PrometheusRule` with `status` when given.
fn rule(status: impl Into<Option<Value>>) -> Value {
    config(ChildKind::PrometheusRule, status)
}

/// A status with one binding, `prometheuses/acme/acme`, that accepted generation 2.
fn accepted() -> Value {
    json!({
        "bindings": [{
            "group": "monitoring.coreos.com",
            "resource": "prometheuses",
            "name": "acme",
            "namespace": "acme",
            "conditions": [{
                "type": "Accepted",
                "status": "True",
                "reason": "",
                "lastTransitionTime": "2025-06-01T10:00:00Z",
                "observedGeneration": 2,
            }],
        }],
    })
}

/// A `PrometheusRule` whose status is [`accepted`] with fields of the one `Accepted`
/// condition changed.
fn accepted_but(changes: &[(&str, Value)]) -> Value {
    let changes: Vec<(String, Value)> = changes
        .iter()
        .map(|(field, value)| (format!("/bindings/0/conditions/0/{field}"), value.clone()))
        .collect();
    rule(with(accepted(), &changes))
}

#[test]
fn accepted_configuration() {
    check(&[
        case(
            "a rule accepted by every binding",
            rule(accepted()),
            V::Healthy,
            R::Accepted,
            &["PrometheusRule acme/acme-rules: accepted by prometheuses/acme/acme"],
        ),
        case(
            "a monitor accepted by every binding",
            config(ChildKind::ServiceMonitor, accepted()),
            V::Healthy,
            R::Accepted,
            &["ServiceMonitor acme/acme-rules"],
        ),
        case(
            "an absent observedGeneration counts as current",
            rule(without(
                accepted(),
                &["/bindings/0/conditions/0/observedGeneration"],
            )),
            V::Healthy,
            R::Accepted,
            &[],
        ),
        case(
            "an unnamed binding gets an index",
            rule(json!({"bindings": [{"conditions": [{"type": "Accepted", "status": "True"}]}]})),
            V::Healthy,
            R::Accepted,
            &["accepted by binding #0"],
        ),
    ]);
}

#[test]
fn configuration_without_a_verdict_from_the_operator() {
    let feature_gate = &["StatusForConfigurationResources", "feature gate"];
    check(&[
        case(
            "no status",
            rule(None),
            V::Unknown,
            R::StatusNotReported,
            feature_gate,
        ),
        case(
            "an empty status",
            rule(json!({})),
            V::Unknown,
            R::StatusNotReported,
            feature_gate,
        ),
        case(
            "null bindings",
            rule(json!({"bindings": null})),
            V::Unknown,
            R::StatusNotReported,
            feature_gate,
        ),
        case(
            "a monitor without status",
            config(ChildKind::ServiceMonitor, None),
            V::Unknown,
            R::StatusNotReported,
            &["ServiceMonitor acme/acme-rules"],
        ),
        case(
            "empty bindings: not bound",
            rule(json!({"bindings": []})),
            V::Unknown,
            R::NotBound,
            &["no Prometheus selects it"],
        ),
        case(
            "a stale acceptance",
            accepted_but(&[("observedGeneration", json!(1))]),
            V::Progressing,
            R::StaleStatus,
            &["prometheuses/acme/acme: Accepted describes generation 1"],
        ),
        case(
            "a stale rejection",
            accepted_but(&[("observedGeneration", json!(1)), ("status", json!("False"))]),
            V::Progressing,
            R::StaleStatus,
            &[],
        ),
        case(
            "a binding without an Accepted condition",
            rule(
                json!({"bindings": [{"resource": "prometheuses", "name": "acme", "namespace": "acme"}]}),
            ),
            V::Progressing,
            R::NotObservedYet,
            &["prometheuses/acme/acme has not reported an Accepted condition"],
        ),
        case(
            "Accepted is Unknown",
            accepted_but(&[("status", json!("Unknown"))]),
            V::Progressing,
            R::NotObservedYet,
            &["Accepted by prometheuses/acme/acme is Unknown"],
        ),
    ]);
}

#[test]
fn rejected_configuration_is_degraded() {
    let binding = |name: &str, namespace: &str, accepted: Value| {
        json!({
            "group": "monitoring.coreos.com",
            "resource": "prometheuses",
            "name": name,
            "namespace": namespace,
            "conditions": [accepted],
        })
    };
    let rejected_by_two = rule(json!({
        "bindings": [
            binding(
                "acme",
                "acme",
                json!({"type": "Accepted", "status": "True", "observedGeneration": 2}),
            ),
            binding(
                "k8s",
                "monitoring",
                json!({
                    "type": "Accepted",
                    "status": "False",
                    "reason": "InvalidConfiguration",
                    "message": "group \"acme.rules\", rule 1, \"HighLatency\": could not parse expression: 1:10: parse error",
                    "observedGeneration": 2,
                }),
            ),
            {
                "resource": "thanosrulers",
                "name": "global",
                "namespace": "monitoring",
                "conditions": [{
                    "type": "Accepted",
                    "status": "False",
                    "reason": "InvalidConfiguration",
                    "observedGeneration": 2,
                }],
            },
        ],
    }));
    check(&[
        case(
            "rejected by a binding as invalid",
            rejected_by_two,
            V::Degraded,
            R::InvalidConfiguration,
            &[
                "PrometheusRule acme/acme-rules: rejected by prometheuses/monitoring/k8s (InvalidConfiguration): group \"acme.rules\"",
                "also rejected by thanosrulers/monitoring/global",
            ],
        ),
        case(
            "rejected for another reason",
            accepted_but(&[("status", json!("False")), ("reason", json!("Other"))]),
            V::Degraded,
            R::NotAccepted,
            &["rejected by prometheuses/acme/acme (Other)"],
        ),
    ]);
}

#[test]
fn malformed_bindings_are_unknown() {
    check(&[
        case(
            "bindings is not an array",
            rule(json!({"bindings": {}})),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings is not an array"],
        ),
        case(
            "a binding is not an object",
            rule(json!({"bindings": ["x"]})),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings[0] is not an object"],
        ),
        case(
            "a binding's name is not a string",
            rule(json!({"bindings": [{"name": 3}]})),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.bindings[0].name is not a string"],
        ),
        case(
            "Accepted has an unexpected status",
            accepted_but(&[("status", json!("Degraded"))]),
            V::Unknown,
            R::UnexpectedStatus,
            &["condition Accepted of prometheuses/acme/acme has unexpected status \"Degraded\""],
        ),
    ]);
}

/// An `AlertmanagerConfig` `acme/acme-rules` at generation 2, with `status` when given.
fn alertmanager_config(status: impl Into<Option<Value>>) -> Value {
    let mut object = config(ChildKind::AlertmanagerConfig, status);
    object["apiVersion"] = json!("monitoring.coreos.com/v1alpha1");
    object
}

#[test]
fn alertmanager_configs_are_judged_by_their_alertmanagers_when_they_report() {
    let by_alertmanager = |accepted: Value| {
        json!({"bindings": [{
            "group": "monitoring.coreos.com", "resource": "alertmanagers",
            "namespace": "monitoring", "name": "main", "conditions": [accepted],
        }]})
    };
    check(&[
        case(
            "no status: a stock operator reports nothing, and nothing says it was refused",
            alertmanager_config(None),
            V::Healthy,
            R::AcceptanceNotReported,
            &[
                "AlertmanagerConfig acme/acme-rules: written",
                "StatusForConfigurationResources",
            ],
        ),
        case(
            "no binding yet: the same",
            alertmanager_config(json!({"bindings": []})),
            V::Healthy,
            R::AcceptanceNotReported,
            &[],
        ),
        case(
            "accepted by the Alertmanager that selects it",
            alertmanager_config(by_alertmanager(
                json!({"type": "Accepted", "status": "True", "observedGeneration": 2}),
            )),
            V::Healthy,
            R::Accepted,
            &["accepted by alertmanagers/monitoring/main"],
        ),
        case(
            "refused (a receiver Secret is missing)",
            alertmanager_config(by_alertmanager(json!({
                "type": "Accepted", "status": "False", "reason": "InvalidConfiguration",
                "message": "failed to get URL: secret acme-oncall not found",
                "observedGeneration": 2,
            }))),
            V::Degraded,
            R::InvalidConfiguration,
            &[
                "rejected by alertmanagers/monitoring/main",
                "secret acme-oncall not found",
            ],
        ),
    ]);
}

//! What grafana-operator's statuses say: the applied kinds `GrafanaFolder`, `GrafanaDatasource`
//! and `GrafanaDashboard` (their conditions and `NoMatchingInstances`), and `Grafana` instances
//! (their stages). Fixtures are JSON objects; a case changes fields by pointer.

use serde_json::{Value, json};

use crate::health::test_support::{case, check, expect, with, with_status, without};
use crate::health::{ChildKind, HealthReason as R, Verdict as V, assess};

/// An applied kind `acme/<name>` at generation 3, with `spec` extended by `spec_extra`.
fn resource(kind: ChildKind, name: &str, spec_extra: Value) -> Value {
    let mut object = json!({
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": "acme", "generation": 3},
        "spec": {
            "allowCrossNamespaceImport": false,
            "resyncPeriod": "10m0s",
            "instanceSelector": {"matchLabels": {"stacksmith.io/grafana": "shared"}},
        },
    });
    if let (Some(spec), Value::Object(extra)) = (object["spec"].as_object_mut(), spec_extra) {
        spec.extend(extra);
    }
    object
}

/// The `GrafanaDatasource` `acme/acme-prometheus`, with `status` when given.
fn datasource(status: impl Into<Option<Value>>) -> Value {
    let object = resource(ChildKind::GrafanaDatasource, "acme-prometheus", json!({}));
    with_status(object, status)
}

/// The `GrafanaDashboard` `acme/acme-overview` in folder `acme`, with `status` when given.
fn dashboard(status: impl Into<Option<Value>>) -> Value {
    let object = resource(
        ChildKind::GrafanaDashboard,
        "acme-overview",
        json!({"folderRef": "acme", "json": "{}"}),
    );
    with_status(object, status)
}

/// The `GrafanaFolder` `acme/acme`, with `status` when given.
fn folder(status: impl Into<Option<Value>>) -> Value {
    let object = resource(ChildKind::GrafanaFolder, "acme", json!({"title": "Acme"}));
    with_status(object, status)
}

/// A condition as grafana-operator writes it, about generation 3.
fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-06-01T10:00:00Z",
        "observedGeneration": 3,
    })
}

/// A status of an applied kind with these conditions and `NoMatchingInstances: false`.
fn status_of(conditions: Value) -> Value {
    json!({
        "NoMatchingInstances": false,
        "hash": "3f1c0e2a",
        "lastResync": "2025-06-01T10:00:00Z",
        "uid": "d2c1b8b7-6a0e-4c47-9b55-0f1e0f0b0f01",
        "conditions": conditions,
    })
}

/// A status whose only condition is `type_` with the given status, reason and message.
fn one_condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    status_of(json!([condition(type_, status, reason, message)]))
}

#[test]
fn synchronized_is_healthy_for_every_applied_kind() {
    check(&[
        case(
            "a datasource",
            datasource(one_condition(
                "DatasourceSynchronized",
                "True",
                "ApplySuccessful",
                "Datasource was successfully applied to 1 instances",
            )),
            V::Healthy,
            R::Synchronized,
            &[
                "GrafanaDatasource acme/acme-prometheus: synchronized (ApplySuccessful): Datasource was successfully applied to 1 instances",
            ],
        ),
        case(
            "a dashboard",
            dashboard(one_condition(
                "DashboardSynchronized",
                "True",
                "ApplySuccessful",
                "ok",
            )),
            V::Healthy,
            R::Synchronized,
            &["GrafanaDashboard acme/acme-overview"],
        ),
        case(
            "a folder",
            folder(one_condition(
                "FolderSynchronized",
                "True",
                "ApplySuccessful",
                "ok",
            )),
            V::Healthy,
            R::Synchronized,
            &["GrafanaFolder acme/acme"],
        ),
        case(
            "negative conditions that are False are fine",
            dashboard(status_of(json!([
                condition("DashboardSynchronized", "True", "ApplySuccessful", "ok"),
                {"type": "NoMatchingFolder", "status": "False", "reason": "FolderFound", "observedGeneration": 3},
            ]))),
            V::Healthy,
            R::Synchronized,
            &[],
        ),
        case(
            "an absent observedGeneration counts as current",
            datasource(without(
                one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok"),
                &["/conditions/0/observedGeneration"],
            )),
            V::Healthy,
            R::Synchronized,
            &[],
        ),
    ]);
}

#[test]
fn applied_kinds_in_progress() {
    let stale_synchronized = with(
        one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok"),
        &[("/conditions/0/observedGeneration", json!(2))],
    );
    check(&[
        case(
            "another kind's success condition does not count",
            folder(one_condition(
                "DashboardSynchronized",
                "True",
                "ApplySuccessful",
                "ok",
            )),
            V::Progressing,
            R::NotObservedYet,
            &["not reported FolderSynchronized yet"],
        ),
        case(
            "no status",
            datasource(None),
            V::Progressing,
            R::NotObservedYet,
            &[
                "GrafanaDatasource acme/acme-prometheus",
                "not reported status yet",
            ],
        ),
        case(
            "no conditions",
            datasource(json!({"conditions": []})),
            V::Progressing,
            R::NotObservedYet,
            &[],
        ),
        case(
            "synchronization Unknown",
            dashboard(one_condition(
                "DashboardSynchronized",
                "Unknown",
                "Pending",
                "waiting",
            )),
            V::Progressing,
            R::NotObservedYet,
            &["DashboardSynchronized is Unknown (Pending): waiting"],
        ),
        case(
            "a stale success",
            datasource(stale_synchronized.clone()),
            V::Progressing,
            R::StaleStatus,
            &["DatasourceSynchronized describes generation 2"],
        ),
        case(
            "a stale failure",
            datasource(with(
                stale_synchronized,
                &[("/conditions/0/status", json!("False"))],
            )),
            V::Progressing,
            R::StaleStatus,
            &[],
        ),
        case(
            "a stale NoMatchingInstance",
            datasource(with(
                one_condition("NoMatchingInstance", "True", "EmptyAPIReply", ""),
                &[("/conditions/0/observedGeneration", json!(1))],
            )),
            V::Progressing,
            R::StaleStatus,
            &["NoMatchingInstance describes generation 1"],
        ),
        case(
            "a stale suspension after resume",
            dashboard(with(
                one_condition("Suspended", "True", "ApplySuspended", "ignored"),
                &[("/conditions/0/observedGeneration", json!(2))],
            )),
            V::Progressing,
            R::StaleStatus,
            &["Suspended describes generation 2, the object is at generation 3"],
        ),
    ]);
}

#[test]
fn no_matching_instance_is_degraded_although_true() {
    let status = with(
        one_condition("NoMatchingInstance", "True", "EmptyAPIReply", ""),
        &[("/NoMatchingInstances", json!(true))],
    );
    let health = assess(ChildKind::GrafanaDatasource, &datasource(status));
    expect(&health, V::Degraded, R::NoMatchingInstance, &[]);
    assert_eq!(
        health.message,
        "GrafanaDatasource acme/acme-prometheus: no ready Grafana instance matches the instanceSelector (EmptyAPIReply)"
    );
}

#[test]
fn degraded_applied_kinds() {
    check(&[
        case(
            "failed to apply",
            dashboard(one_condition(
                "DashboardSynchronized",
                "False",
                "ApplyFailed",
                "Dashboard failed to be applied for 1 out of 2 instances. Errors:\n- acme/grafana-b: status 412 version-mismatch",
            )),
            V::Degraded,
            R::ApplyFailed,
            &[
                "failed to apply to Grafana (ApplyFailed): Dashboard failed to be applied for 1 out of 2 instances",
                "acme/grafana-b: status 412",
            ],
        ),
        case(
            "the operator cannot list instances",
            folder(one_condition(
                "NoMatchingInstance",
                "True",
                "ErrFetchingInstances",
                "listing grafanas: forbidden",
            )),
            V::Degraded,
            R::NoMatchingInstance,
            &["(ErrFetchingInstances): listing grafanas: forbidden"],
        ),
        case(
            "the NoMatchingInstances flag alone",
            datasource(with(
                one_condition("SomethingElse", "False", "R", "m"),
                &[("/NoMatchingInstances", json!(true))],
            )),
            V::Degraded,
            R::NoMatchingInstance,
            &["status.NoMatchingInstances is true"],
        ),
        case(
            "the folder does not exist",
            dashboard(one_condition(
                "NoMatchingFolder",
                "True",
                "NotFound",
                "folder acme not found in namespace acme",
            )),
            V::Degraded,
            R::NoMatchingFolder,
            &["the referenced folder does not exist (NotFound): folder acme not found"],
        ),
        case(
            "the folder UID does not match",
            dashboard(one_condition(
                "FolderUIDMismatch",
                "True",
                "FolderUIDMismatch",
                "folderUID x conflicts",
            )),
            V::Degraded,
            R::FolderUidMismatch,
            &["folder UID does not match", "folderUID x conflicts"],
        ),
        case(
            "an invalid spec is listed first",
            dashboard(status_of(json!([
                condition(
                    "InvalidSpec",
                    "True",
                    "InvalidModel",
                    "dashboard JSON: unexpected end of input",
                ),
                {"type": "NoMatchingFolder", "status": "True", "reason": "NotFound", "observedGeneration": 3},
            ]))),
            V::Degraded,
            R::InvalidSpec,
            &[
                "the spec is invalid (InvalidModel): dashboard JSON: unexpected end of input",
                "also NoMatchingFolder",
            ],
        ),
        case(
            "a cyclic folder is an invalid spec",
            folder(one_condition(
                "InvalidSpec",
                "True",
                "CyclicParent",
                "cyclic folder hierarchy",
            )),
            V::Degraded,
            R::InvalidSpec,
            &["(CyclicParent): cyclic folder hierarchy"],
        ),
        case(
            "a notification policy loop",
            folder(one_condition(
                "NotificationPolicyLoopDetected",
                "True",
                "LoopDetected",
                "route a -> b -> a",
            )),
            V::Degraded,
            R::NotificationPolicyLoopDetected,
            &["loop", "route a -> b -> a"],
        ),
    ]);
}

#[test]
fn suspended_applied_kinds() {
    check(&[
        case(
            "a Suspended condition",
            dashboard(one_condition(
                "Suspended",
                "True",
                "ApplySuspended",
                "Resource changes are ignored",
            )),
            V::Suspended,
            R::Suspended,
            &["suspended (ApplySuspended): Resource changes are ignored"],
        ),
        case(
            "spec.suspend",
            resource(
                ChildKind::GrafanaDashboard,
                "acme-overview",
                json!({"suspend": true}),
            ),
            V::Suspended,
            R::Suspended,
            &["spec.suspend is true"],
        ),
    ]);
}

#[test]
fn unreadable_applied_kinds_are_unknown() {
    check(&[
        case(
            "a condition with an unexpected status",
            dashboard(one_condition("DashboardSynchronized", "Degraded", "X", "y")),
            V::Unknown,
            R::UnexpectedStatus,
            &["condition DashboardSynchronized has unexpected status \"Degraded\""],
        ),
        case(
            "NoMatchingInstances is not a boolean",
            datasource(with(
                one_condition("DatasourceSynchronized", "True", "ApplySuccessful", "ok"),
                &[("/NoMatchingInstances", json!("no"))],
            )),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.NoMatchingInstances is not a boolean"],
        ),
        case(
            "spec.suspend is not a boolean",
            resource(ChildKind::GrafanaFolder, "acme", json!({"suspend": "yes"})),
            V::Unknown,
            R::MalformedObject,
            &["spec.suspend is not a boolean"],
        ),
    ]);
}

/// The `Grafana` instance `grafana/grafana` at generation 5, with `status` when given.
fn grafana(status: impl Into<Option<Value>>) -> Value {
    let object = json!({
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "Grafana",
        "metadata": {
            "name": "grafana",
            "namespace": "grafana",
            "generation": 5,
            "labels": {"stacksmith.io/grafana": "shared"},
        },
        "spec": {
            "version": "12.1.0",
            "config": {"auth": {"disable_login_form": "false"}},
        },
    });
    with_status(object, status)
}

/// The status of a `Grafana` that went through every stage, ready at generation 5.
fn complete() -> Value {
    json!({
        "adminUrl": "http://grafana-service.grafana:3000",
        "stage": "complete",
        "stageStatus": "success",
        "version": "12.1.0",
        "conditions": [{
            "type": "GrafanaReady",
            "status": "True",
            "reason": "GrafanaReady",
            "message": "Grafana reconcile completed",
            "lastTransitionTime": "2025-06-01T10:00:00Z",
            "observedGeneration": 5,
        }],
    })
}

#[test]
fn grafana_instances() {
    check(&[
        case(
            "complete",
            grafana(complete()),
            V::Healthy,
            R::GrafanaReady,
            &["Grafana grafana/grafana: ready, all stages complete (version 12.1.0)"],
        ),
        case(
            "complete, without conditions",
            grafana(without(complete(), &["/conditions"])),
            V::Healthy,
            R::GrafanaReady,
            &[],
        ),
        case(
            "complete with a stale readiness",
            grafana(with(
                complete(),
                &[("/conditions/0/observedGeneration", json!(4))],
            )),
            V::Progressing,
            R::StaleStatus,
            &["GrafanaReady describes generation 4"],
        ),
        case(
            "a stage in progress",
            grafana(json!({"stage": "pvc", "stageStatus": "in progress"})),
            V::Progressing,
            R::StageInProgress,
            &["stage \"pvc\" in progress"],
        ),
        case(
            "a stage succeeded, not the last",
            grafana(json!({"stage": "plugins", "stageStatus": "success"})),
            V::Progressing,
            R::StageInProgress,
            &["stage \"plugins\" succeeded, not complete yet"],
        ),
        case(
            "a stage without a stage status",
            grafana(json!({"stage": "deployment"})),
            V::Progressing,
            R::StageInProgress,
            &["stage \"deployment\" reported"],
        ),
        case(
            "no status",
            grafana(None),
            V::Progressing,
            R::NotObservedYet,
            &["Grafana grafana/grafana"],
        ),
        case(
            "an empty status",
            grafana(json!({})),
            V::Progressing,
            R::NotObservedYet,
            &[],
        ),
        case(
            "a failed stage",
            grafana(json!({
                "stage": "deployment",
                "stageStatus": "failed",
                "lastMessage": "Deployment.apps \"grafana-deployment\" is invalid:\nspec.template.spec.containers[0].image: Required value",
            })),
            V::Degraded,
            R::StageFailed,
            &[
                "Grafana grafana/grafana: stage \"deployment\" failed: Deployment.apps \"grafana-deployment\" is invalid:; spec.template",
            ],
        ),
        case(
            "a failed stage without a name",
            grafana(json!({"stageStatus": "failed"})),
            V::Degraded,
            R::StageFailed,
            &["stage ? failed"],
        ),
        case(
            "suspended",
            json!({"kind": "Grafana", "metadata": {"name": "g", "namespace": "grafana"}, "spec": {"suspend": true}}),
            V::Suspended,
            R::Suspended,
            &["Grafana grafana/g"],
        ),
        case(
            "a stage that is not a string",
            grafana(json!({"stage": 3})),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.stage is not a string"],
        ),
        case(
            "conditions that are not an array",
            grafana(with(complete(), &[("/conditions", json!(7))])),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.conditions is not an array"],
        ),
    ]);
}

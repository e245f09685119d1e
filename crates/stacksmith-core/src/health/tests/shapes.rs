//! The status shapes a verdict is read from: every older shape, with the exact status JSON the
//! operator release that writes it leaves on an object (`omitempty` fields left out as Go
//! leaves them out), and the current shapes, which must read as before.
//!
//! Older shapes, and the releases that write them (see `docs/child-health.md`):
//! - `LegacyGrafanaSync`: grafana-operator v5 before conditions on folders, datasources and
//!   dashboards: `hash`, `uid` (not on folders), `lastResync` after a sync applied to every
//!   ready matching instance; `NoMatchingInstances: true` when no instance matches;
//!   `lastMessage` (datasources) when applying failed.
//! - `LegacyGrafanaStage`: a `Grafana` instance's `stage`/`stageStatus` before `GrafanaReady`.
//! - `LegacyPrometheusReplicas`: a `Prometheus` status with replica counts and no conditions.

use serde_json::{Value, json};

use crate::health::test_support::{Case, case, check, with, with_status};
use crate::health::{ChildKind, HealthReason as R, StatusShape as S, Verdict as V, assess};

/// An applied kind `acme/<name>` at generation 3 with `spec` extended by `spec_extra`, and
/// `status` when given.
fn resource(kind: ChildKind, name: &str, spec_extra: Value, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": kind.as_str(),
        "metadata": {
            "name": name,
            "namespace": "acme",
            "uid": "0b9a3c1e-5f7d-4e21-9a44-6f2f0c1d2e3f",
            "generation": 3,
        },
        "spec": {
            "instanceSelector": {"matchLabels": {"stacksmith.io/grafana": "shared"}},
            "resyncPeriod": "5m",
        },
    });
    if let (Some(spec), Value::Object(extra)) = (object["spec"].as_object_mut(), spec_extra) {
        spec.extend(extra);
    }
    with_status(object, status)
}

fn datasource(status: impl Into<Option<Value>>) -> Value {
    let spec = json!({"datasource": {
        "name": "acme-prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": "http://prometheus-operated.acme:9090",
        "isDefault": false,
    }});
    resource(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        spec,
        status.into(),
    )
}

fn dashboard(status: impl Into<Option<Value>>) -> Value {
    let spec = json!({
        "folder": "Acme",
        "json": "{\"title\": \"Acme overview\", \"uid\": \"acme-overview\", \"panels\": []}",
    });
    resource(
        ChildKind::GrafanaDashboard,
        "acme-overview",
        spec,
        status.into(),
    )
}

/// The `GrafanaFolder` `acme/acme` titled `Acme`, without permissions.
fn folder(status: impl Into<Option<Value>>) -> Value {
    resource(
        ChildKind::GrafanaFolder,
        "acme",
        json!({"title": "Acme"}),
        status.into(),
    )
}

/// SHA-256 of `Acme` (the folder's title) followed by no permissions, as grafana-operator
/// writes it in `status.hash`.
const ACME_FOLDER_HASH: &str = "37036cd8f9746d335038eca92f8a73ae5f1bca4779a1e55e5812e37743b2f5bf";

/// A datasource sync as a release before conditions records it (`NoMatchingInstances: false`
/// and an empty `lastMessage` are left out by `omitempty`).
fn legacy_datasource_synced() -> Value {
    json!({
        "hash": "c410514958b672ba7e48dc317a120003bebb0b900d2e2d0bb692b696e7ec5d5f",
        "lastResync": "2024-05-01T10:00:00Z",
        "uid": "0b9a3c1e-5f7d-4e21-9a44-6f2f0c1d2e3f",
    })
}

/// A dashboard sync as a release before conditions records it.
fn legacy_dashboard_synced() -> Value {
    json!({
        "hash": "5d2b1f4b0c8e0a7f3f9e2d6c1b4a8e7d9c0f1e2a3b4c5d6e7f8091a2b3c4d5e6",
        "lastResync": "2024-05-01T10:00:00Z",
        "uid": "acme-overview",
    })
}

#[test]
fn legacy_grafana_sync_datasources() {
    check(&[
        case(
            "synced: hash, uid and lastResync",
            datasource(legacy_datasource_synced()),
            V::Healthy,
            R::Synchronized,
            &[
                "GrafanaDatasource acme/acme-prometheus: synchronized, last resync 2024-05-01T10:00:00Z (legacy status without conditions, no generation recorded)",
            ],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no matching instance, never synced",
            datasource(json!({"NoMatchingInstances": true})),
            V::Degraded,
            R::NoMatchingInstance,
            &[
                "GrafanaDatasource acme/acme-prometheus: no Grafana instance matches the instanceSelector (status.NoMatchingInstances is true)",
            ],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no matching instance any more, after a sync",
            datasource(with(
                legacy_datasource_synced(),
                &[("/NoMatchingInstances", json!(true))],
            )),
            V::Degraded,
            R::NoMatchingInstance,
            &["status.NoMatchingInstances is true"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "applying failed, after an earlier sync",
            datasource(with(
                legacy_datasource_synced(),
                &[(
                    "/lastMessage",
                    json!("[PUT /datasources/uid/{uid}][400] updateDataSourceByUidBadRequest {\"message\":\"Datasource url is invalid\"}"),
                )],
            )),
            V::Degraded,
            R::ApplyFailed,
            &[
                "failed to apply to Grafana (status.lastMessage): [PUT /datasources/uid/{uid}][400] updateDataSourceByUidBadRequest",
                "Datasource url is invalid",
            ],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "applying failed, never synced",
            datasource(json!({"lastMessage": "status: 409, body: {\"message\":\"data source with the same name already exists\"}"})),
            V::Degraded,
            R::ApplyFailed,
            &["data source with the same name already exists"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "the uid was reset after a change of spec.datasource.uid",
            datasource(json!({
                "hash": "c410514958b672ba7e48dc317a120003bebb0b900d2e2d0bb692b696e7ec5d5f",
                "lastResync": "2024-05-01T10:00:00Z",
            })),
            V::Progressing,
            R::NotObservedYet,
            &["not reported a sync yet (legacy status without conditions, no uid)"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "only NoMatchingInstances false (a status writer that keeps false)",
            datasource(json!({"NoMatchingInstances": false})),
            V::Progressing,
            R::NotObservedYet,
            &["no hash, uid, lastResync"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "waiting for a Grafana instance to be ready: an empty status",
            datasource(json!({})),
            V::Progressing,
            R::NotObservedYet,
            &["grafana-operator has not reported status yet"],
        )
        .shape(S::None),
        case(
            "a blank lastMessage is no failure",
            datasource(with(
                legacy_datasource_synced(),
                &[("/lastMessage", json!(" "))],
            )),
            V::Healthy,
            R::Synchronized,
            &[],
        )
        .shape(S::LegacyGrafanaSync),
    ]);
}

#[test]
fn legacy_grafana_sync_dashboards() {
    check(&[
        case(
            "synced: hash, uid and lastResync",
            dashboard(legacy_dashboard_synced()),
            V::Healthy,
            R::Synchronized,
            &["GrafanaDashboard acme/acme-overview: synchronized, last resync 2024-05-01T10:00:00Z"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "synced from a URL, with the content cache",
            dashboard(with(
                legacy_dashboard_synced(),
                &[
                    ("/contentCache", json!("H4sIAAAAAAAA/6tWKkktLlGyUlAqzs9NVXJUqgUA8Ak7RhUAAAA=")),
                    ("/contentTimestamp", json!("2024-05-01T09:59:58Z")),
                    ("/contentUrl", json!("https://grafana.com/api/dashboards/1860/revisions/37/download")),
                ],
            )),
            V::Healthy,
            R::Synchronized,
            &[],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no matching instance",
            dashboard(json!({"NoMatchingInstances": true})),
            V::Degraded,
            R::NoMatchingInstance,
            &["no Grafana instance matches the instanceSelector"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "content fetched, not applied yet",
            dashboard(json!({
                "contentCache": "H4sIAAAAAAAA/6tWKkktLlGyUlAqzs9NVXJUqgUA8Ak7RhUAAAA=",
                "contentTimestamp": "2024-05-01T09:59:58Z",
                "contentUrl": "https://grafana.com/api/dashboards/1860/revisions/37/download",
            })),
            V::Progressing,
            R::NotObservedYet,
            &["no hash, uid, lastResync"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no uid (a sync without it is not complete)",
            dashboard(json!({"hash": "5d2b", "lastResync": "2024-05-01T10:00:00Z"})),
            V::Progressing,
            R::NotObservedYet,
            &["no uid"],
        )
        .shape(S::LegacyGrafanaSync),
    ]);
}

#[test]
fn legacy_grafana_sync_folders() {
    let with_permissions = |status: Value| {
        let permissions = "{\"items\":[{\"role\":\"Viewer\",\"permission\":1}]}";
        with(folder(status), &[("/spec/permissions", json!(permissions))])
    };
    check(&[
        case(
            "synced: the hash of the current title, and lastResync (folders have no uid)",
            folder(json!({"hash": ACME_FOLDER_HASH, "lastResync": "2024-05-01T10:00:00Z"})),
            V::Healthy,
            R::Synchronized,
            &["GrafanaFolder acme/acme: synchronized, last resync 2024-05-01T10:00:00Z"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "synced with permissions: the hash covers them",
            with_permissions(json!({
                "hash": "53f635bd9db41b2bdd3b2a4b92ed82e715605906aecc37045cf6c3e94140f9e1",
                "lastResync": "2024-05-01T10:00:00Z",
            })),
            V::Healthy,
            R::Synchronized,
            &[],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "permissions added since the sync: the hash is of the earlier spec",
            with_permissions(
                json!({"hash": ACME_FOLDER_HASH, "lastResync": "2024-05-01T10:00:00Z"}),
            ),
            V::Progressing,
            R::StaleStatus,
            &["status.hash describes an earlier spec.title or spec.permissions"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "renamed since the sync",
            with(
                folder(json!({"hash": ACME_FOLDER_HASH, "lastResync": "2024-05-01T10:00:00Z"})),
                &[("/spec/title", json!("Acme Corp"))],
            ),
            V::Progressing,
            R::StaleStatus,
            &["GrafanaFolder acme/acme", "earlier spec.title"],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no matching instance wins over the hash",
            folder(json!({"NoMatchingInstances": true, "hash": "0000"})),
            V::Degraded,
            R::NoMatchingInstance,
            &[],
        )
        .shape(S::LegacyGrafanaSync),
        case(
            "no lastResync yet",
            folder(json!({"hash": ACME_FOLDER_HASH})),
            V::Progressing,
            R::NotObservedYet,
            &["no lastResync"],
        )
        .shape(S::LegacyGrafanaSync),
    ]);
}

#[test]
fn transitional_problem_conditions_next_to_a_legacy_sync() {
    // Releases between the two shapes set a problem condition (here a dashboard's
    // `NoMatchingFolder`) while the problem lasts, next to the legacy sync record, and remove it
    // after (`meta.RemoveStatusCondition`), leaving an empty list or none.
    let missing_folder = json!({
        "type": "NoMatchingFolder",
        "status": "True",
        "reason": "NotFound",
        "message": "folder with name acme not found in namespace acme",
        "lastTransitionTime": "2024-09-01T10:00:00Z",
        "observedGeneration": 3,
    });
    let synced_with = |conditions: Value| {
        let mut status = legacy_dashboard_synced();
        status["conditions"] = conditions;
        dashboard(status)
    };
    check(&[
        case(
            "the problem condition decides",
            synced_with(json!([missing_folder.clone()])),
            V::Degraded,
            R::NoMatchingFolder,
            &["the referenced folder does not exist (NotFound): folder with name acme not found"],
        )
        .shape(S::Conditions),
        case(
            "a stale problem condition is Progressing",
            synced_with(json!([with(
                missing_folder,
                &[("/observedGeneration", json!(2))]
            )])),
            V::Progressing,
            R::StaleStatus,
            &["NoMatchingFolder describes generation 2"],
        )
        .shape(S::Conditions),
        case(
            "the problem removed: an empty list and the legacy sync",
            synced_with(json!([])),
            V::Healthy,
            R::Synchronized,
            &["legacy status without conditions"],
        )
        .shape(S::LegacyGrafanaSync),
    ]);
}

/// The `Grafana` instance `grafana/grafana` at generation 5, with `status` when given.
fn grafana(status: impl Into<Option<Value>>) -> Value {
    let object = json!({
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "Grafana",
        "metadata": {"name": "grafana", "namespace": "grafana", "generation": 5},
        "spec": {"config": {"auth": {"disable_login_form": "false"}}},
    });
    with_status(object, status.into())
}

#[test]
fn legacy_grafana_stages() {
    check(&[
        case(
            "complete, as a release before GrafanaReady writes it",
            grafana(json!({
                "adminUrl": "http://grafana-service.grafana:3000",
                "dashboards": ["acme/acme-overview/acme-overview"],
                "datasources": ["acme/acme-prometheus/0b9a3c1e-5f7d-4e21-9a44-6f2f0c1d2e3f"],
                "folders": ["acme/acme/0b9a3c1e-5f7d-4e21-9a44-6f2f0c1d2e3f"],
                "stage": "complete",
                "stageStatus": "success",
                "version": "10.4.3",
            })),
            V::Healthy,
            R::GrafanaReady,
            &["Grafana grafana/grafana: ready, all stages complete (version 10.4.3)"],
        )
        .shape(S::LegacyGrafanaStage),
        case(
            "a failed stage",
            grafana(json!({
                "adminUrl": "http://grafana-service.grafana:3000",
                "lastMessage": "Deployment.apps \"grafana-deployment\" is invalid: spec.template.spec.containers[0].image: Required value",
                "stage": "deployment",
                "stageStatus": "failed",
            })),
            V::Degraded,
            R::StageFailed,
            &["stage \"deployment\" failed: Deployment.apps"],
        )
        .shape(S::LegacyGrafanaStage),
        case(
            "a stage in progress",
            grafana(json!({"stage": "ingress", "stageStatus": "in progress"})),
            V::Progressing,
            R::StageInProgress,
            &["stage \"ingress\" in progress"],
        )
        .shape(S::LegacyGrafanaStage),
        case(
            "an older stage name",
            grafana(json!({"stage": "admin user", "stageStatus": "success"})),
            V::Progressing,
            R::StageInProgress,
            &["stage \"admin user\" succeeded, not complete yet"],
        )
        .shape(S::LegacyGrafanaStage),
    ]);
}

/// A `Prometheus` `acme/acme` at generation 4 asking for `replicas` (× `shards` when given),
/// with `status`.
fn prometheus(replicas: Option<i64>, shards: Option<i64>, status: Value) -> Value {
    let mut spec = json!({"version": "v2.45.0", "serviceAccountName": "prometheus"});
    if let Some(replicas) = replicas {
        spec["replicas"] = json!(replicas);
    }
    if let Some(shards) = shards {
        spec["shards"] = json!(shards);
    }
    let object = json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "acme", "namespace": "acme", "generation": 4},
        "spec": spec,
    });
    with_status(object, status)
}

/// Replica counts without conditions, every field written as the Go struct does (none is
/// `omitempty`).
fn counts(replicas: i64, updated: i64, available: i64) -> Value {
    json!({
        "paused": false,
        "replicas": replicas,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "unavailableReplicas": replicas - available,
    })
}

#[test]
fn legacy_prometheus_replicas() {
    let two = |status| prometheus(Some(2), None, status);
    check(&[
        case(
            "all replicas available",
            two(counts(2, 2, 2)),
            V::Healthy,
            R::Available,
            &[
                "Prometheus acme/acme: 2 of 2 replicas available (legacy status without conditions, reconciliation not reported)",
            ],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "one replica by default",
            prometheus(None, None, counts(1, 1, 1)),
            V::Healthy,
            R::Available,
            &["1 of 1 replicas available"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "shards multiply the replicas",
            prometheus(Some(2), Some(2), counts(4, 4, 4)),
            V::Healthy,
            R::Available,
            &["4 of 4 replicas available"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "no replica available",
            two(counts(2, 2, 0)),
            V::Degraded,
            R::NoPodReady,
            &["0 of 2 replicas available (legacy status"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "some replicas not available, no rollout",
            two(counts(2, 2, 1)),
            V::Degraded,
            R::SomePodsNotReady,
            &["1 of 2 replicas available"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "some replicas not available during a rolling update",
            two(counts(2, 1, 1)),
            V::Progressing,
            R::RollingUpdate,
            &["rolling update, 1 of 2 replicas updated, 1 of 2 replicas available"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "counts of an earlier spec (scaled from 1 to 2)",
            two(counts(1, 1, 1)),
            V::Progressing,
            R::StaleStatus,
            &["status.replicas is 1, the spec asks for 2"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "paused in the status",
            two(with(counts(2, 2, 2), &[("/paused", json!(true))])),
            V::Suspended,
            R::OperatorPaused,
            &["status.paused is true"],
        )
        .shape(S::LegacyPrometheusReplicas),
        case(
            "paused in the spec: read from no status",
            with(two(counts(2, 2, 2)), &[("/spec/paused", json!(true))]),
            V::Suspended,
            R::OperatorPaused,
            &["spec.paused is true"],
        )
        .shape(S::None),
        case(
            "a count of the wrong type",
            two(with(counts(2, 2, 2), &[("/availableReplicas", json!("2"))])),
            V::Unknown,
            R::UnexpectedStatus,
            &["status.availableReplicas is not an integer"],
        )
        .shape(S::None),
        case(
            "an empty conditions list is no conditions",
            two(with(counts(2, 2, 2), &[("/conditions", json!([]))])),
            V::Healthy,
            R::Available,
            &[],
        )
        .shape(S::LegacyPrometheusReplicas),
    ]);
}

/// A current status of each kind, with the verdict it read as before statuses had shapes.
fn current_shapes() -> Vec<Case> {
    let synchronized = |type_: &str| {
        json!({
            "NoMatchingInstances": false,
            "hash": "3f1c0e2a",
            "lastResync": "2025-06-01T10:00:00Z",
            "uid": "d2c1b8b7",
            "conditions": [{
                "type": type_,
                "status": "True",
                "reason": "ApplySuccessful",
                "message": "applied",
                "lastTransitionTime": "2025-06-01T10:00:00Z",
                "observedGeneration": 3,
            }],
        })
    };
    let reconciled = json!([
        {"type": "Available", "status": "True", "observedGeneration": 4},
        {"type": "Reconciled", "status": "True", "observedGeneration": 4},
    ]);
    let mut prometheus_status = counts(2, 2, 2);
    prometheus_status["conditions"] = reconciled;
    let rule = |status: Value| {
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "acme-core", "namespace": "acme", "generation": 1},
            "spec": {"groups": []},
            "status": status,
        })
    };
    vec![
        case(
            "Prometheus: Available and Reconciled",
            prometheus(Some(2), None, prometheus_status.clone()),
            V::Healthy,
            R::Available,
            &["2 of 2 replicas available, reconciled"],
        )
        .shape(S::Conditions),
        case(
            "Prometheus: counts of another spec do not matter next to conditions",
            prometheus(Some(3), None, prometheus_status),
            V::Healthy,
            R::Available,
            &["2 of 2 replicas available, reconciled"],
        )
        .shape(S::Conditions),
        case(
            "Prometheus: no status",
            with_status(prometheus(Some(2), None, json!({})), Value::Null),
            V::Progressing,
            R::NotObservedYet,
            &["prometheus-operator has not reported status yet"],
        )
        .shape(S::None),
        case(
            "PrometheusRule: accepted by its binding",
            rule(json!({"bindings": [{
                "group": "monitoring.coreos.com",
                "resource": "prometheuses",
                "name": "acme",
                "namespace": "acme",
                "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 1}],
            }]})),
            V::Healthy,
            R::Accepted,
            &["accepted by prometheuses/acme/acme"],
        )
        .shape(S::Conditions),
        case(
            "PrometheusRule: an empty binding list",
            rule(json!({"bindings": []})),
            V::Unknown,
            R::NotBound,
            &[],
        )
        .shape(S::Conditions),
        case(
            "PrometheusRule: no status and no evidence",
            rule(Value::Null),
            V::Unknown,
            R::StatusNotReported,
            &[],
        )
        .shape(S::None),
        case(
            "GrafanaDatasource: DatasourceSynchronized",
            datasource(synchronized("DatasourceSynchronized")),
            V::Healthy,
            R::Synchronized,
            &["synchronized (ApplySuccessful): applied"],
        )
        .shape(S::Conditions),
        case(
            "GrafanaDashboard: DashboardSynchronized",
            dashboard(synchronized("DashboardSynchronized")),
            V::Healthy,
            R::Synchronized,
            &["synchronized (ApplySuccessful): applied"],
        )
        .shape(S::Conditions),
        case(
            "GrafanaFolder: FolderSynchronized, its hash not compared",
            folder(synchronized("FolderSynchronized")),
            V::Healthy,
            R::Synchronized,
            &["synchronized (ApplySuccessful): applied"],
        )
        .shape(S::Conditions),
        case(
            "GrafanaDatasource: NoMatchingInstance, as v5.20 writes it",
            datasource(json!({
                "NoMatchingInstances": true,
                "conditions": [{
                    "lastTransitionTime": "2025-11-06T11:03:52Z",
                    "message": "None of the available Grafana instances matched the selector, skipping reconciliation",
                    "observedGeneration": 3,
                    "reason": "EmptyAPIReply",
                    "status": "True",
                    "type": "NoMatchingInstance",
                }],
                "lastResync": "2025-11-06T11:42:23Z",
            })),
            V::Degraded,
            R::NoMatchingInstance,
            &["no ready Grafana instance matches the instanceSelector (EmptyAPIReply)"],
        )
        .shape(S::Conditions),
        case(
            "GrafanaDashboard: Suspended replaces the conditions",
            dashboard(json!({"conditions": [{
                "type": "Suspended",
                "status": "True",
                "reason": "ApplySuspended",
                "message": "Resource changes are ignored",
                "observedGeneration": 3,
            }]})),
            V::Suspended,
            R::Suspended,
            &[],
        )
        .shape(S::Conditions),
        case(
            "GrafanaDatasource: spec.suspend is read from no status",
            with(
                datasource(legacy_datasource_synced()),
                &[("/spec/suspend", json!(true))],
            ),
            V::Suspended,
            R::Suspended,
            &["spec.suspend is true"],
        )
        .shape(S::None),
        case(
            "Grafana: complete with GrafanaReady",
            grafana(json!({
                "stage": "complete",
                "stageStatus": "success",
                "version": "12.1.0",
                "conditions": [{
                    "type": "GrafanaReady",
                    "status": "True",
                    "reason": "GrafanaReady",
                    "observedGeneration": 5,
                }],
            })),
            V::Healthy,
            R::GrafanaReady,
            &["ready, all stages complete (version 12.1.0)"],
        )
        .shape(S::Conditions),
        case(
            "Grafana: no status",
            grafana(None),
            V::Progressing,
            R::NotObservedYet,
            &[],
        )
        .shape(S::None),
    ]
}

#[test]
fn current_shapes_read_as_before() {
    check(&current_shapes());
}

#[test]
fn unreadable_objects_have_no_shape() {
    let health = assess(ChildKind::GrafanaDatasource, &json!({"status": "synced"}));
    assert_eq!(
        (health.verdict, health.reason, health.shape),
        (V::Unknown, R::UnexpectedStatus, S::None)
    );
    let health = assess(
        ChildKind::GrafanaDatasource,
        &datasource(json!({"hash": 7, "lastResync": "2024-05-01T10:00:00Z"})),
    );
    assert_eq!(
        (health.reason, health.shape),
        (R::UnexpectedStatus, S::None)
    );
    assert!(health.message.contains("status.hash is not a string"));
}

//! The statuses the stand-in operators write: pure functions of the object, its outcome and the
//! other objects on the cluster, shaped exactly as prometheus-operator v0.93 and
//! grafana-operator v5 write them.

use serde_json::{Map, Value, json};
use stacksmith_core::ChildKind;

use super::outcome::Outcome;

/// What else is on the cluster, as far as a status depends on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct World<'a> {
    /// Every `Grafana` object on the cluster.
    pub grafanas: &'a [Value],
    /// Every `Prometheus` object on the cluster.
    pub prometheuses: &'a [Value],
    /// Whether configuration resources get `status.bindings` (prometheus-operator's
    /// `StatusForConfigurationResources` feature gate).
    pub status_for_configuration_resources: bool,
}

/// The status the operator of `kind` writes for `object`, or `None` when it writes none.
/// `now` (RFC 3339) stamps conditions that change; unchanged conditions keep their time.
pub fn simulated_status(
    kind: ChildKind,
    object: &Value,
    outcome: Outcome,
    world: &World<'_>,
    now: &str,
) -> Option<Value> {
    if outcome == Outcome::Never {
        return None;
    }
    let mut status = match kind {
        ChildKind::Prometheus => prometheus_status(object, outcome),
        ChildKind::PrometheusRule | ChildKind::ServiceMonitor => {
            if !world.status_for_configuration_resources {
                return None;
            }
            configuration_status(kind, object, outcome, world)?
        }
        // Acceptance by an Alertmanager: the simulator plays no Alertmanager, and a stock
        // prometheus-operator reports none.
        ChildKind::AlertmanagerConfig => return None,
        ChildKind::Grafana => grafana_status(object, outcome),
        ChildKind::GrafanaFolder | ChildKind::GrafanaDatasource | ChildKind::GrafanaDashboard => {
            grafana_resource_status(kind, object, outcome, world)
        }
    };
    stamp_times(&mut status, object.get("status"), now);
    Some(status)
}

/// Whether two statuses differ in anything but timestamps (`lastTransitionTime`, `lastResync`).
pub fn differs(current: Option<&Value>, desired: &Value) -> bool {
    match current {
        None => true,
        Some(current) => without_times(current) != without_times(desired),
    }
}

fn without_times(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "lastTransitionTime" && k.as_str() != "lastResync")
                .map(|(k, v)| (k.clone(), without_times(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

fn generation(object: &Value) -> i64 {
    object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), json!(type_));
    c.insert("status".into(), json!(status));
    if !reason.is_empty() {
        c.insert("reason".into(), json!(reason));
    }
    if !message.is_empty() {
        c.insert("message".into(), json!(message));
    }
    c.insert("observedGeneration".into(), json!(generation));
    Value::Object(c)
}

fn prometheus_status(object: &Value, outcome: Outcome) -> Value {
    let generation = generation(object);
    let name = name(object);
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let rollout = prometheus_rollout(outcome, name, replicas, generation);
    prometheus_status_value(name, replicas, rollout)
}

/// What an outcome makes of a `Prometheus`'s pods: how many are updated and available, its
/// `Available` and `Reconciled` conditions, and whether it is paused.
struct PrometheusRollout {
    updated: i64,
    available: i64,
    available_condition: Value,
    reconciled_condition: Value,
    paused: bool,
}

fn prometheus_rollout(
    outcome: Outcome,
    name: &str,
    replicas: i64,
    generation: i64,
) -> PrometheusRollout {
    let available_true = || condition("Available", "True", "", "", generation);
    let reconciled_true = || condition("Reconciled", "True", "", "", generation);
    let all_available = |reconciled_condition, paused| PrometheusRollout {
        updated: replicas,
        available: replicas,
        available_condition: available_true(),
        reconciled_condition,
        paused,
    };
    match outcome {
        Outcome::Degraded => PrometheusRollout {
            updated: replicas,
            available: 0,
            available_condition: condition(
                "Available",
                "False",
                "NoPodReady",
                &unready_pods(name, 0, replicas),
                generation,
            ),
            reconciled_condition: reconciled_true(),
            paused: false,
        },
        Outcome::Rolling => {
            let updated = (replicas - 1).max(0);
            PrometheusRollout {
                updated,
                available: updated,
                available_condition: condition(
                    "Available",
                    "Degraded",
                    "SomePodsNotReady",
                    &unready_pods(name, updated, replicas),
                    generation,
                ),
                reconciled_condition: reconciled_true(),
                paused: false,
            }
        }
        Outcome::InvalidSpec => all_available(
            condition(
                "Reconciled",
                "False",
                "ReconciliationFailed",
                "failed to generate the Prometheus configuration: invalid retention duration",
                generation,
            ),
            false,
        ),
        Outcome::Suspended => all_available(reconciled_true(), true),
        _ => all_available(reconciled_true(), false),
    }
}

/// One line per pod from `available` up to `replicas` saying it is not ready.
fn unready_pods(name: &str, available: i64, replicas: i64) -> String {
    (available..replicas)
        .map(|i| format!("pod prometheus-{name}-{i}: containers with unready status: [prometheus config-reloader]"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `Prometheus` status object, with its single shard.
fn prometheus_status_value(name: &str, replicas: i64, rollout: PrometheusRollout) -> Value {
    let PrometheusRollout {
        updated,
        available,
        available_condition,
        reconciled_condition,
        paused,
    } = rollout;
    json!({
        "paused": paused,
        "replicas": replicas,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "unavailableReplicas": replicas - available,
        "conditions": [available_condition, reconciled_condition],
        "shardStatuses": [{
            "shardID": "0",
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "unavailableReplicas": replicas - available,
        }],
        "shards": 1,
        "selector": format!(
            "app.kubernetes.io/instance={name},app.kubernetes.io/managed-by=prometheus-operator,app.kubernetes.io/name=prometheus,operator.prometheus.io/name={name},prometheus={name}"
        ),
    })
}

/// Whether a `Prometheus` of the object's namespace selects a `PrometheusRule` or
/// `ServiceMonitor`, by its `ruleSelector` / `serviceMonitorSelector`: as prometheus-operator
/// reads them, an empty selector selects every object, an absent (null) one none. The namespace
/// selector is not evaluated (the simulator binds only the Prometheus objects of the object's own
/// namespace, which a null namespace selector means).
fn selects(prometheus: &Value, kind: ChildKind, object: &Value) -> bool {
    let field = match kind {
        ChildKind::ServiceMonitor => "serviceMonitorSelector",
        _ => "ruleSelector",
    };
    let selector = prometheus
        .pointer(&format!("/spec/{field}"))
        .unwrap_or(&Value::Null);
    stacksmith_core::label_selector::matches(selector, object.pointer("/metadata/labels"))
}

/// `status.bindings` as prometheus-operator writes them with its feature gate on: one binding per
/// `Prometheus` that selects the object. An object no Prometheus selects gets no status at all,
/// unless it was bound before: then its bindings are emptied (`bindings: []`), as the real
/// operator (v0.93) does when a Prometheus stops selecting an object.
fn configuration_status(
    kind: ChildKind,
    object: &Value,
    outcome: Outcome,
    world: &World<'_>,
) -> Option<Value> {
    let generation = generation(object);
    let ns = namespace(object);
    let accepted = match outcome {
        Outcome::InvalidSpec | Outcome::Degraded => condition(
            "Accepted",
            "False",
            "InvalidConfiguration",
            "the configuration resource is invalid: parse error at char 3: unexpected identifier",
            generation,
        ),
        _ => condition("Accepted", "True", "", "", generation),
    };
    let bindings: Vec<Value> = world
        .prometheuses
        .iter()
        .filter(|p| namespace(p) == ns && selects(p, kind, object))
        .map(|p| {
            json!({
                "group": ChildKind::Prometheus.api_group(),
                "resource": ChildKind::Prometheus.plural(),
                "name": name(p),
                "namespace": namespace(p),
                "conditions": [accepted.clone()],
            })
        })
        .collect();
    let was_bound = object
        .pointer("/status/bindings")
        .is_some_and(|b| !b.is_null());
    (!bindings.is_empty() || was_bound).then(|| json!({ "bindings": bindings }))
}

fn grafana_status(object: &Value, outcome: Outcome) -> Value {
    let generation = generation(object);
    let name = name(object);
    let ns = namespace(object);
    let version = object
        .pointer("/spec/version")
        .and_then(Value::as_str)
        .unwrap_or("12.1.0");
    let admin_url = format!("http://{name}-service.{ns}:3000");
    match outcome {
        Outcome::Degraded => json!({
            "stage": "deployment",
            "stageStatus": "failed",
            "lastMessage": format!("Deployment.apps \"{name}-deployment\" is invalid: spec.template.spec.containers[0].image: Required value"),
            "adminUrl": admin_url,
        }),
        Outcome::InvalidSpec => json!({
            "stage": "config",
            "stageStatus": "failed",
            "lastMessage": "invalid grafana.ini: section [server] key root_url: invalid URL",
            "adminUrl": admin_url,
        }),
        Outcome::Rolling => json!({
            "stage": "deployment",
            "stageStatus": "in progress",
            "adminUrl": admin_url,
        }),
        _ => json!({
            "stage": "complete",
            "stageStatus": "success",
            "adminUrl": admin_url,
            "version": version,
            "conditions": [condition("GrafanaReady", "True", "GrafanaReady", "Grafana reconcile completed", generation)],
        }),
    }
}

pub use stacksmith_core::grafana_instances::{
    grafana_is_ready, matching_instances, selector_matches,
};

fn synchronized_type(kind: ChildKind) -> &'static str {
    match kind {
        ChildKind::GrafanaFolder => "FolderSynchronized",
        ChildKind::GrafanaDatasource => "DatasourceSynchronized",
        _ => "DashboardSynchronized",
    }
}

fn grafana_resource_status(
    kind: ChildKind,
    object: &Value,
    outcome: Outcome,
    world: &World<'_>,
) -> Value {
    let generation = generation(object);
    let suspended = object
        .pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let matching = matching_instances(object, world.grafanas);
    let mut status = Map::new();
    let status_condition = if suspended || outcome == Outcome::Suspended {
        condition(
            "Suspended",
            "True",
            "ApplySuspended",
            "Resource changes are suspended",
            generation,
        )
    } else if outcome == Outcome::NoMatchingInstance || matching.is_empty() {
        status.insert("NoMatchingInstances".into(), json!(true));
        condition(
            "NoMatchingInstance",
            "True",
            "EmptyAPIReply",
            "None of the available Grafana instances matched the selector, skipping reconciliation",
            generation,
        )
    } else if outcome == Outcome::InvalidSpec {
        invalid_model_condition(kind, generation)
    } else if outcome == Outcome::Degraded {
        apply_failed_condition(kind, &matching, generation)
    } else {
        insert_synchronized_fields(&mut status, kind, object);
        condition(
            synchronized_type(kind),
            "True",
            "ApplySuccessful",
            &format!(
                "{} was successfully applied to {} instances",
                kind.as_str(),
                matching.len()
            ),
            generation,
        )
    };
    status.insert("conditions".into(), Value::Array(vec![status_condition]));
    Value::Object(status)
}

/// `InvalidSpec`: the resource's model (a dashboard's) or spec is invalid.
fn invalid_model_condition(kind: ChildKind, generation: i64) -> Value {
    let reason = if kind == ChildKind::GrafanaDashboard {
        "InvalidModel"
    } else {
        "InvalidSpec"
    };
    condition(
        "InvalidSpec",
        "True",
        reason,
        "invalid JSON model: unexpected end of JSON input",
        generation,
    )
}

/// `<Kind>Synchronized=False`: applying to the `matching` instances failed.
fn apply_failed_condition(kind: ChildKind, matching: &[&Value], generation: i64) -> Value {
    let instance_list = matching
        .iter()
        .map(|g| format!("{}/{}", namespace(g), name(g)))
        .collect::<Vec<_>>()
        .join(", ");
    condition(
        synchronized_type(kind),
        "False",
        "ApplyFailed",
        &format!(
            "Failed to apply to {} instances: {instance_list}: status 500: internal server error",
            matching.len()
        ),
        generation,
    )
}

/// What a synchronized resource's status holds besides its condition: the spec's `hash`, the
/// `uid` (not for folders) and a `lastResync` placeholder.
fn insert_synchronized_fields(status: &mut Map<String, Value>, kind: ChildKind, object: &Value) {
    status.insert(
        "hash".into(),
        json!(format!(
            "{:016x}",
            fnv1a(
                &object
                    .get("spec")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string()
            )
        )),
    );
    if kind != ChildKind::GrafanaFolder {
        let uid = object
            .pointer("/spec/uid")
            .or_else(|| object.pointer("/metadata/uid"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        status.insert("uid".into(), json!(uid));
    }
    status.insert("lastResync".into(), Value::Null);
}

/// A stable 64-bit FNV-1a hash (the simulated `status.hash`).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sets `lastTransitionTime` on every condition (kept from `previous` when the condition's
/// type and status did not change, else `now`) and fills a `lastResync` placeholder with `now`.
fn stamp_times(status: &mut Value, previous: Option<&Value>, now: &str) {
    let previous_conditions: Vec<&Value> =
        previous.map(|p| collect_conditions(p)).unwrap_or_default();
    stamp_conditions(status, &previous_conditions, now);
    if let Some(last_resync) = status.get_mut("lastResync") {
        let kept = previous
            .and_then(|p| p.get("lastResync"))
            .filter(|v| v.is_string());
        *last_resync = kept.cloned().unwrap_or_else(|| json!(now));
    }
}

fn collect_conditions(value: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "conditions" {
                    out.extend(v.as_array().into_iter().flatten());
                } else {
                    out.extend(collect_conditions(v));
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| out.extend(collect_conditions(i))),
        _ => {}
    }
    out
}

fn stamp_conditions(value: &mut Value, previous: &[&Value], now: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "conditions" {
                    for c in v.as_array_mut().into_iter().flatten() {
                        let kept = previous
                            .iter()
                            .find(|p| {
                                p.get("type") == c.get("type") && p.get("status") == c.get("status")
                            })
                            .and_then(|p| p.get("lastTransitionTime"))
                            .cloned();
                        if let Value::Object(c) = c {
                            c.insert(
                                "lastTransitionTime".into(),
                                kept.unwrap_or_else(|| json!(now)),
                            );
                        }
                    }
                } else {
                    stamp_conditions(v, previous, now);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| stamp_conditions(i, previous, now)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, extra_spec: Value) -> Value {
        json!({
            "apiVersion": "x/v1", "kind": kind,
            "metadata": {"name": "acme", "namespace": "tenant-acme", "generation": 3, "uid": "u-1"},
            "spec": extra_spec,
        })
    }

    fn ready_grafana(labels: Value) -> Value {
        json!({"metadata": {"name": "g", "namespace": "tenant-acme", "labels": labels},
               "status": {"stage": "complete", "stageStatus": "success"}})
    }

    #[test]
    fn never_writes_nothing() {
        let p = object("Prometheus", json!({}));
        assert!(
            simulated_status(
                ChildKind::Prometheus,
                &p,
                Outcome::Never,
                &World::default(),
                "t"
            )
            .is_none()
        );
    }

    #[test]
    fn prometheus_rolling_has_degraded_available_and_fewer_updated() {
        let p = object("Prometheus", json!({"replicas": 2}));
        let s = simulated_status(
            ChildKind::Prometheus,
            &p,
            Outcome::Rolling,
            &World::default(),
            "t",
        )
        .unwrap();
        assert_eq!(s["conditions"][0]["status"], "Degraded");
        assert_eq!(s["conditions"][0]["reason"], "SomePodsNotReady");
        assert_eq!(s["updatedReplicas"], 1);
        assert_eq!(s["conditions"][0]["observedGeneration"], 3);
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "t");
    }

    #[test]
    fn unchanged_conditions_keep_their_time() {
        let mut p = object("Prometheus", json!({}));
        let first = simulated_status(
            ChildKind::Prometheus,
            &p,
            Outcome::Healthy,
            &World::default(),
            "t1",
        )
        .unwrap();
        p["status"] = first.clone();
        let second = simulated_status(
            ChildKind::Prometheus,
            &p,
            Outcome::Healthy,
            &World::default(),
            "t2",
        )
        .unwrap();
        assert_eq!(second, first);
        assert!(!differs(Some(&first), &second));
        let third = simulated_status(
            ChildKind::Prometheus,
            &p,
            Outcome::Degraded,
            &World::default(),
            "t3",
        )
        .unwrap();
        assert_eq!(third["conditions"][0]["lastTransitionTime"], "t3");
        assert_eq!(third["conditions"][1]["lastTransitionTime"], "t1");
        assert!(differs(Some(&first), &third));
    }

    #[test]
    fn configuration_resources_follow_the_feature_gate() {
        let rule = object("PrometheusRule", json!({}));
        let prometheus = object("Prometheus", json!({"ruleSelector": {}}));
        let prometheuses = [prometheus];
        let off = World {
            prometheuses: &prometheuses,
            ..World::default()
        };
        assert!(
            simulated_status(
                ChildKind::PrometheusRule,
                &rule,
                Outcome::Healthy,
                &off,
                "t"
            )
            .is_none()
        );
        let on = World {
            status_for_configuration_resources: true,
            ..off
        };
        let s = simulated_status(
            ChildKind::PrometheusRule,
            &rule,
            Outcome::InvalidSpec,
            &on,
            "t",
        )
        .unwrap();
        assert_eq!(s["bindings"][0]["name"], "acme");
        assert_eq!(
            s["bindings"][0]["conditions"][0]["reason"],
            "InvalidConfiguration"
        );
    }

    /// As prometheus-operator v0.93 with `StatusForConfigurationResources` on (observed on the
    /// test bed, reality_e2e `real_operator_and_simulator_agree`): an object is bound only to the
    /// Prometheus objects whose selector matches its labels; one never selected gets no status,
    /// one no longer selected keeps an empty binding list.
    #[test]
    fn configuration_resources_bind_only_to_selecting_prometheuses() {
        let mut rule = object("PrometheusRule", json!({}));
        rule["metadata"]["labels"] = json!({"suite": "a"});
        let prometheus = |name: &str, spec: Value| {
            let mut p = object("Prometheus", spec);
            p["metadata"]["name"] = json!(name);
            p
        };
        let status = |rule: &Value, prometheuses: &[Value]| {
            let world = World {
                prometheuses,
                status_for_configuration_resources: true,
                ..World::default()
            };
            simulated_status(
                ChildKind::PrometheusRule,
                rule,
                Outcome::Healthy,
                &world,
                "t",
            )
        };
        let bound_names = |s: &Value| -> Vec<String> {
            s["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let prometheuses = [
            prometheus("absent-selector", json!({})),
            prometheus("empty-selector", json!({"ruleSelector": {}})),
            prometheus(
                "matching",
                json!({"ruleSelector": {"matchLabels": {"suite": "a"}}}),
            ),
            prometheus(
                "other",
                json!({"ruleSelector": {"matchLabels": {"suite": "b"}}}),
            ),
            // Selects ServiceMonitors, not rules.
            prometheus("monitors", json!({"serviceMonitorSelector": {}})),
        ];
        let bound = status(&rule, &prometheuses).unwrap();
        assert_eq!(bound_names(&bound), ["empty-selector", "matching"]);
        let monitor = object("ServiceMonitor", json!({}));
        let world = World {
            prometheuses: &prometheuses,
            status_for_configuration_resources: true,
            ..World::default()
        };
        let s = simulated_status(
            ChildKind::ServiceMonitor,
            &monitor,
            Outcome::Healthy,
            &world,
            "t",
        )
        .unwrap();
        assert_eq!(bound_names(&s), ["monitors"]);

        // Never selected: no status, whatever the outcome.
        let unselected = [prometheuses[0].clone(), prometheuses[3].clone()];
        assert!(status(&rule, &unselected).is_none());
        let world = World {
            prometheuses: &unselected,
            status_for_configuration_resources: true,
            ..World::default()
        };
        for outcome in [Outcome::InvalidSpec, Outcome::Degraded] {
            assert!(
                simulated_status(ChildKind::PrometheusRule, &rule, outcome, &world, "t").is_none()
            );
        }
        // Bound before, no longer selected: an empty binding list.
        rule["status"] = bound;
        assert_eq!(status(&rule, &unselected).unwrap(), json!({"bindings": []}));
        assert!(status(&rule, &[]).is_some());
    }

    #[test]
    fn grafana_resources_need_a_ready_matching_instance() {
        let ds = object(
            "GrafanaDatasource",
            json!({"instanceSelector": {"matchLabels": {"team": "a"}}}),
        );
        let other = [ready_grafana(json!({"team": "b"}))];
        let s = simulated_status(
            ChildKind::GrafanaDatasource,
            &ds,
            Outcome::Healthy,
            &World {
                grafanas: &other,
                ..World::default()
            },
            "t",
        )
        .unwrap();
        assert_eq!(s["conditions"][0]["type"], "NoMatchingInstance");
        assert_eq!(s["NoMatchingInstances"], true);

        let good = [ready_grafana(json!({"team": "a"}))];
        let s = simulated_status(
            ChildKind::GrafanaDatasource,
            &ds,
            Outcome::Healthy,
            &World {
                grafanas: &good,
                ..World::default()
            },
            "t",
        )
        .unwrap();
        assert_eq!(s["conditions"][0]["type"], "DatasourceSynchronized");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["uid"], "u-1");
        assert_eq!(s["lastResync"], "t");
    }

    /// A stack's dedicated instance as the simulator plays it: ready with the pinned version,
    /// or failed at a stage; a failed one receives nothing (its resources find no instance).
    #[test]
    fn a_failed_grafana_instance_fails_its_stage_and_receives_nothing() {
        let mut grafana = object("Grafana", json!({"version": "11.6.3"}));
        grafana["metadata"]["labels"] = json!({"stacksmith.io/grafana-instance": "acme"});
        let ready = simulated_status(
            ChildKind::Grafana,
            &grafana,
            Outcome::Healthy,
            &World::default(),
            "t",
        )
        .unwrap();
        assert_eq!(
            (&ready["stage"], &ready["stageStatus"], &ready["version"]),
            (&json!("complete"), &json!("success"), &json!("11.6.3"))
        );
        assert_eq!(
            ready["adminUrl"], "http://acme-service.tenant-acme:3000",
            "grafana-operator's Service is <name>-service"
        );
        let failed = simulated_status(
            ChildKind::Grafana,
            &grafana,
            Outcome::Degraded,
            &World::default(),
            "t",
        )
        .unwrap();
        assert_eq!(
            (&failed["stage"], &failed["stageStatus"]),
            (&json!("deployment"), &json!("failed"))
        );

        let folder = object(
            "GrafanaFolder",
            json!({"instanceSelector": {"matchLabels": {"stacksmith.io/grafana-instance": "acme"}}}),
        );
        let status_with = |grafana_status: Value| {
            let mut instance = grafana.clone();
            instance["status"] = grafana_status;
            let grafanas = [instance];
            let world = World {
                grafanas: &grafanas,
                ..World::default()
            };
            simulated_status(
                ChildKind::GrafanaFolder,
                &folder,
                Outcome::Healthy,
                &world,
                "t",
            )
            .unwrap()
        };
        assert_eq!(
            status_with(ready)["conditions"][0]["type"],
            "FolderSynchronized"
        );
        assert_eq!(
            status_with(failed)["conditions"][0]["type"],
            "NoMatchingInstance"
        );
    }

    #[test]
    fn cross_namespace_import_is_respected() {
        let mut g = ready_grafana(json!({"team": "a"}));
        g["metadata"]["namespace"] = json!("grafana");
        let grafanas = [g];
        let folder = object(
            "GrafanaFolder",
            json!({"instanceSelector": {"matchLabels": {"team": "a"}}}),
        );
        assert!(matching_instances(&folder, &grafanas).is_empty());
        let folder = object(
            "GrafanaFolder",
            json!({"instanceSelector": {"matchLabels": {"team": "a"}}, "allowCrossNamespaceImport": true}),
        );
        assert_eq!(matching_instances(&folder, &grafanas).len(), 1);
    }

    #[test]
    fn suspended_replaces_all_conditions() {
        let dash = object(
            "GrafanaDashboard",
            json!({"instanceSelector": {}, "suspend": true}),
        );
        let s = simulated_status(
            ChildKind::GrafanaDashboard,
            &dash,
            Outcome::Healthy,
            &World::default(),
            "t",
        )
        .unwrap();
        assert_eq!(s["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(s["conditions"][0]["reason"], "ApplySuspended");
    }
}

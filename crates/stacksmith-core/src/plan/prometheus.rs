//! The objects planned on the Prometheus cluster, one builder per resource: the tenant
//! Namespace, the ServiceAccount, Role and RoleBinding the Prometheus runs with, a RoleBinding of
//! the fixed discovery ClusterRole in each other namespace a scrape target lists, the
//! `Prometheus` (with its volume, Thanos sidecar and Alertmanagers), one `PrometheusRule` per
//! rule group, one `ServiceMonitor` per scrape target, and the `AlertmanagerConfig` of the
//! customer's receivers and routes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use stacksmith_api::labels::CUSTOMER;
use stacksmith_api::rbac::{DISCOVERY_RULES, PROMETHEUS_DISCOVERY_CLUSTER_ROLE};
use stacksmith_api::{
    AlertDeliverySpec, AlertReceiver, AlertRoute, AlertRule, AlertRuleGroup, AlertmanagerEndpoint,
    CustomerStackSpec, LocalSecretKey, MetricsSpec, RecordingRule, RecordingRuleGroup,
    ScrapeEndpoint, ScrapeTarget,
};

use super::names::{self, Placement};
use super::{DesiredObject, MemberInfo, ObjectKind, exposure};
use crate::health::ChildKind;

/// Everything the Prometheus cluster receives, in creation order.
pub(super) fn objects(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    labels: &BTreeMap<String, String>,
) -> Vec<DesiredObject> {
    let customer = spec.customer.as_str();
    let ns = names::tenant_namespace(customer);
    let place = Placement {
        cluster: &member.name,
        namespace: &ns,
        labels,
    };
    let identity = names::prometheus_identity(customer);
    let exposure = member.prometheus_exposure.as_ref();
    let mut objects = vec![namespace(&place)];
    if let Some(exposure) = exposure {
        objects.push(exposure::server_secret(&place, customer));
        objects.push(exposure::network_policy(&place, customer, exposure));
    }
    objects.extend([
        service_account(&place, &identity),
        role(&place, &identity),
        role_binding(&place, &identity),
    ]);
    for namespace in discovery_namespaces(spec, &ns) {
        let elsewhere = Placement { namespace, ..place };
        objects.push(discovery_binding(&elsewhere, customer, &identity, &ns));
    }
    if let Some(exposure) = exposure {
        objects.push(exposure::service(&place, customer, exposure));
    }
    objects.push(prometheus(
        &place,
        customer,
        &identity,
        &spec.metrics,
        &member.alertmanagers,
        exposure.is_some(),
    ));
    for group in &spec.metrics.alerting_rules {
        objects.push(prometheus_rule(&place, customer, group));
    }
    for group in &spec.metrics.recording_rules {
        objects.push(recording_rule_group(&place, customer, group));
    }
    for target in &spec.metrics.scrape {
        objects.push(service_monitor(&place, customer, target));
    }
    if let Some(delivery) = &spec.metrics.alert_delivery {
        objects.push(alertmanager_config(&place, customer, delivery));
    }
    objects
}

/// The tenant Namespace, named after the placement's namespace. The Grafana cluster gets the
/// same one when the dashboards live in the tenant namespace.
pub(super) fn namespace(place: &Placement<'_>) -> DesiredObject {
    place.object(ObjectKind::Namespace, place.namespace, json!({}))
}

/// The ServiceAccount the Prometheus runs as.
fn service_account(place: &Placement<'_>, identity: &str) -> DesiredObject {
    place.object(ObjectKind::ServiceAccount, identity, json!({}))
}

/// The Role that lets the Prometheus discover its targets in the tenant namespace: the
/// discovery rules ([`DISCOVERY_RULES`]).
fn role(place: &Placement<'_>, identity: &str) -> DesiredObject {
    let rules: Vec<Value> = DISCOVERY_RULES
        .iter()
        .map(|rule| {
            json!({"apiGroups": rule.api_groups, "resources": rule.resources, "verbs": rule.verbs})
        })
        .collect();
    place.object(ObjectKind::Role, identity, json!({ "rules": rules }))
}

/// The RoleBinding of that Role to the ServiceAccount.
fn role_binding(place: &Placement<'_>, identity: &str) -> DesiredObject {
    place.object(
        ObjectKind::RoleBinding,
        identity,
        json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": identity},
            "subjects": [{"kind": "ServiceAccount", "name": identity, "namespace": place.namespace}],
        }),
    )
}

/// The namespaces, other than the tenant's, that the scrape targets list: each once, sorted.
fn discovery_namespaces<'a>(spec: &'a CustomerStackSpec, tenant: &str) -> BTreeSet<&'a str> {
    spec.metrics
        .scrape
        .iter()
        .flat_map(|target| &target.namespaces)
        .map(String::as_str)
        .filter(|namespace| *namespace != tenant)
        .collect()
}

/// The RoleBinding, in a namespace a scrape target lists, that lets the Prometheus discover its
/// targets there: the fixed ClusterRole [`PROMETHEUS_DISCOVERY_CLUSTER_ROLE`] (the same rules as
/// the tenant Role), bound to the ServiceAccount of the tenant namespace `tenant`, in that
/// namespace only.
fn discovery_binding(
    place: &Placement<'_>,
    customer: &str,
    identity: &str,
    tenant: &str,
) -> DesiredObject {
    place.object(
        ObjectKind::RoleBinding,
        &names::prometheus_discovery_binding(customer),
        json!({
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": PROMETHEUS_DISCOVERY_CLUSTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": identity, "namespace": tenant}],
        }),
    )
}

/// The `Prometheus`: it selects only the tenant's rules and monitors, in its own namespace, and
/// sends its alerts to the cluster's Alertmanagers. Optional fields appear only when set, so a
/// stack that uses none of them keeps the planned hash it always had.
fn prometheus(
    place: &Placement<'_>,
    customer: &str,
    identity: &str,
    metrics: &MetricsSpec,
    alertmanagers: &[AlertmanagerEndpoint],
    serves_tls: bool,
) -> DesiredObject {
    let tenant_selector = json!({"matchLabels": {CUSTOMER: customer}});
    let mut prometheus_spec = json!({
        "replicas": metrics.replicas,
        "retention": metrics.retention,
        "serviceAccountName": identity,
        "serviceMonitorSelector": tenant_selector,
        "ruleSelector": tenant_selector,
        "externalLabels": {"customer": customer},
    });
    if let (Some(resources), Value::Object(map)) = (&metrics.resources, &mut prometheus_spec) {
        let mut r = Map::new();
        if !resources.requests.is_empty() {
            r.insert("requests".into(), json!(resources.requests));
        }
        if !resources.limits.is_empty() {
            r.insert("limits".into(), json!(resources.limits));
        }
        if !r.is_empty() {
            map.insert("resources".into(), Value::Object(r));
        }
    }
    if let Value::Object(map) = &mut prometheus_spec {
        if let Some(size) = &metrics.retention_size {
            map.insert("retentionSize".into(), json!(size));
        }
        if let Some(storage) = &metrics.storage {
            let mut claim = Map::new();
            claim.insert("accessModes".into(), json!(["ReadWriteOnce"]));
            if let Some(class) = &storage.storage_class_name {
                claim.insert("storageClassName".into(), json!(class));
            }
            claim.insert(
                "resources".into(),
                json!({"requests": {"storage": storage.size}}),
            );
            map.insert(
                "storage".into(),
                json!({"volumeClaimTemplate": {"spec": Value::Object(claim)}}),
            );
        }
        if let Some(thanos) = &metrics.thanos {
            map.insert(
                "thanos".into(),
                json!({"objectStorageConfig": secret_key(&thanos.object_storage_secret)}),
            );
        }
        if !alertmanagers.is_empty() {
            let relabelings = alert_relabelings(customer, place.namespace);
            let endpoints: Vec<Value> = alertmanagers
                .iter()
                .map(|am| alertmanager_endpoint(am, &relabelings))
                .collect();
            map.insert("alerting".into(), json!({"alertmanagers": endpoints}));
        }
        if serves_tls {
            map.insert("web".into(), exposure::web_tls(customer));
        }
    }
    place.object(
        ObjectKind::Child(ChildKind::Prometheus),
        &names::prometheus(customer),
        json!({"spec": prometheus_spec}),
    )
}

/// A Secret key selector as prometheus-operator takes it.
fn secret_key(key: &LocalSecretKey) -> Value {
    json!({"name": key.name, "key": key.key})
}

/// The relabelings applied to every alert this Prometheus sends, after its rules' own labels:
/// `namespace` becomes the tenant namespace (the label prometheus-operator's generated routes
/// match a tenant's `AlertmanagerConfig` on) and `customer` the customer id, whatever a rule set.
/// A rule's own `namespace` (the namespace of the workload it is about) is kept as
/// `source_namespace`.
fn alert_relabelings(customer: &str, tenant_namespace: &str) -> Value {
    json!([
        {"sourceLabels": ["namespace"], "regex": "(.+)", "targetLabel": "source_namespace",
            "replacement": "$1", "action": "replace"},
        {"targetLabel": "namespace", "replacement": tenant_namespace, "action": "replace"},
        {"targetLabel": "customer", "replacement": customer, "action": "replace"},
    ])
}

/// One Alertmanager of the cluster, as the `Prometheus`'s `alerting.alertmanagers` entry.
fn alertmanager_endpoint(am: &AlertmanagerEndpoint, relabelings: &Value) -> Value {
    let mut m = Map::new();
    m.insert("namespace".into(), json!(am.namespace));
    m.insert("name".into(), json!(am.name));
    m.insert("port".into(), json!(am.port));
    if let Some(prefix) = &am.path_prefix {
        m.insert("pathPrefix".into(), json!(prefix));
    }
    m.insert("alertRelabelings".into(), relabelings.clone());
    Value::Object(m)
}

/// The `AlertmanagerConfig` of the customer's receivers and routes. prometheus-operator adds a
/// `namespace` matcher to its top route, so it only ever sees alerts labelled with the tenant
/// namespace, which only this tenant's Prometheus sends (see [`alert_relabelings`]).
fn alertmanager_config(
    place: &Placement<'_>,
    customer: &str,
    delivery: &AlertDeliverySpec,
) -> DesiredObject {
    let mut route = Map::new();
    route.insert("receiver".into(), json!(delivery.default_receiver));
    if !delivery.group_by.is_empty() {
        route.insert("groupBy".into(), json!(delivery.group_by));
    }
    for (key, value) in [
        ("groupWait", &delivery.group_wait),
        ("groupInterval", &delivery.group_interval),
        ("repeatInterval", &delivery.repeat_interval),
    ] {
        if let Some(value) = value {
            route.insert(key.into(), json!(value));
        }
    }
    if !delivery.routes.is_empty() {
        let routes: Vec<Value> = delivery.routes.iter().map(alert_route).collect();
        route.insert("routes".into(), Value::Array(routes));
    }
    let receivers: Vec<Value> = delivery.receivers.iter().map(alert_receiver).collect();
    place.object(
        ObjectKind::Child(ChildKind::AlertmanagerConfig),
        &names::alertmanager_config(customer),
        json!({"spec": {"route": Value::Object(route), "receivers": receivers}}),
    )
}

/// One child route.
fn alert_route(route: &AlertRoute) -> Value {
    let mut r = Map::new();
    r.insert("receiver".into(), json!(route.receiver));
    if !route.matchers.is_empty() {
        let matchers: Vec<Value> = route
            .matchers
            .iter()
            .map(|m| json!({"name": m.name, "value": m.value, "matchType": m.match_type.as_str()}))
            .collect();
        r.insert("matchers".into(), Value::Array(matchers));
    }
    if route.continue_ {
        r.insert("continue".into(), json!(true));
    }
    Value::Object(r)
}

/// One receiver: its configurations by type, each credential a Secret key, the optional fields
/// only when set.
fn alert_receiver(receiver: &AlertReceiver) -> Value {
    let mut r = Map::new();
    r.insert("name".into(), json!(receiver.name));
    insert_configs(&mut r, "webhookConfigs", &receiver.webhooks, |w| {
        receiver_config("urlSecret", &w.url_secret, w.send_resolved)
    });
    insert_configs(&mut r, "slackConfigs", &receiver.slack, |s| {
        let mut config = receiver_config("apiURL", &s.api_url_secret, s.send_resolved);
        if let Some(channel) = &s.channel {
            config.insert("channel".into(), json!(channel));
        }
        config
    });
    insert_configs(&mut r, "pagerdutyConfigs", &receiver.pagerduty, |p| {
        receiver_config("routingKey", &p.routing_key_secret, p.send_resolved)
    });
    Value::Object(r)
}

/// `key: [config of each item]`, unless there are none.
fn insert_configs<T>(
    receiver: &mut Map<String, Value>,
    key: &str,
    items: &[T],
    config: impl Fn(&T) -> Map<String, Value>,
) {
    if !items.is_empty() {
        let configs = items
            .iter()
            .map(|item| Value::Object(config(item)))
            .collect();
        receiver.insert(key.into(), Value::Array(configs));
    }
}

/// A receiver configuration: its credential (the Secret key under `credential`) and
/// `sendResolved` when set.
fn receiver_config(
    credential: &str,
    secret: &LocalSecretKey,
    send_resolved: Option<bool>,
) -> Map<String, Value> {
    let mut config = Map::new();
    config.insert(credential.into(), secret_key(secret));
    if let Some(send) = send_resolved {
        config.insert("sendResolved".into(), json!(send));
    }
    config
}

/// The `PrometheusRule` of one alerting-rule group.
fn prometheus_rule(place: &Placement<'_>, customer: &str, group: &AlertRuleGroup) -> DesiredObject {
    let rules = group.rules.iter().map(alert_rule).collect();
    rule_group(
        place,
        customer,
        &group.name,
        group.interval.as_deref(),
        rules,
    )
}

/// The `PrometheusRule` of one recording-rule group.
fn recording_rule_group(
    place: &Placement<'_>,
    customer: &str,
    group: &RecordingRuleGroup,
) -> DesiredObject {
    let rules = group.rules.iter().map(recording_rule).collect();
    rule_group(
        place,
        customer,
        &group.name,
        group.interval.as_deref(),
        rules,
    )
}

/// A `PrometheusRule` holding one group of `rules`, named after the group.
fn rule_group(
    place: &Placement<'_>,
    customer: &str,
    name: &str,
    interval: Option<&str>,
    rules: Vec<Value>,
) -> DesiredObject {
    let mut g = Map::new();
    g.insert("name".into(), json!(name));
    if let Some(interval) = interval {
        g.insert("interval".into(), json!(interval));
    }
    g.insert("rules".into(), Value::Array(rules));
    place.object(
        ObjectKind::Child(ChildKind::PrometheusRule),
        &names::rule(customer, name),
        json!({"spec": {"groups": [Value::Object(g)]}}),
    )
}

/// One recording rule, with its labels only when there are some.
fn recording_rule(rule: &RecordingRule) -> Value {
    let mut r = Map::new();
    r.insert("record".into(), json!(rule.record));
    r.insert("expr".into(), json!(rule.expr));
    if !rule.labels.is_empty() {
        r.insert("labels".into(), json!(rule.labels));
    }
    Value::Object(r)
}

/// One alerting rule, with only the optional fields that are set.
fn alert_rule(rule: &AlertRule) -> Value {
    let mut r = Map::new();
    r.insert("alert".into(), json!(rule.alert));
    r.insert("expr".into(), json!(rule.expr));
    if let Some(for_) = &rule.for_ {
        r.insert("for".into(), json!(for_));
    }
    if !rule.labels.is_empty() {
        r.insert("labels".into(), json!(rule.labels));
    }
    if !rule.annotations.is_empty() {
        r.insert("annotations".into(), json!(rule.annotations));
    }
    Value::Object(r)
}

/// The `ServiceMonitor` of one scrape target.
fn service_monitor(place: &Placement<'_>, customer: &str, target: &ScrapeTarget) -> DesiredObject {
    let endpoints: Vec<Value> = target.endpoints.iter().map(scrape_endpoint).collect();
    let mut monitor = Map::new();
    monitor.insert("selector".into(), json!(target.selector));
    if !target.namespaces.is_empty() {
        monitor.insert(
            "namespaceSelector".into(),
            json!({"matchNames": target.namespaces}),
        );
    }
    monitor.insert("endpoints".into(), Value::Array(endpoints));
    place.object(
        ObjectKind::Child(ChildKind::ServiceMonitor),
        &names::service_monitor(customer, &target.name),
        json!({"spec": Value::Object(monitor)}),
    )
}

/// One scrape endpoint, with only the optional fields that are set.
fn scrape_endpoint(endpoint: &ScrapeEndpoint) -> Value {
    let mut m = Map::new();
    m.insert("port".into(), json!(endpoint.port));
    if let Some(path) = &endpoint.path {
        m.insert("path".into(), json!(path));
    }
    if let Some(interval) = &endpoint.interval {
        m.insert("interval".into(), json!(interval));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::plan_stack;
    use super::*;

    #[test]
    fn prometheus_selects_only_the_tenant() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let p = &plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::Prometheus))
            .unwrap()
            .manifest["spec"];
        assert_eq!(p["serviceMonitorSelector"]["matchLabels"][CUSTOMER], "acme");
        assert_eq!(p["ruleSelector"]["matchLabels"][CUSTOMER], "acme");
        assert!(
            p.get("serviceMonitorNamespaceSelector").is_none(),
            "own namespace only"
        );
        assert_eq!(p["replicas"], 2);
        assert_eq!(p["resources"]["requests"]["memory"], "2Gi");
    }

    /// FULL with scrape targets looking in other namespaces (one listed twice, one listing the
    /// tenant namespace itself).
    fn with_scrape_namespaces() -> String {
        FULL.replace(
            "    endpoints: [{port: web, interval: 30s}]\n",
            "    namespaces: [team-b, customer-acme, apps]\n    \
             endpoints: [{port: web, interval: 30s}]\n  \
             - name: jobs\n    selector: {matchLabels: {app: jobs}}\n    \
             namespaces: [apps, batch]\n    endpoints: [{port: metrics}]\n",
        )
    }

    fn role_bindings(plan: &super::super::StackPlan) -> Vec<&DesiredObject> {
        plan.objects
            .iter()
            .filter(|o| o.kind == ObjectKind::RoleBinding)
            .collect()
    }

    #[test]
    fn listed_namespaces_get_a_discovery_binding_each_and_the_tenant_none() {
        let plan = plan_stack(&spec(&with_scrape_namespaces()), &identity(), &members()).unwrap();
        let bindings: Vec<(&str, &str)> = role_bindings(&plan)
            .iter()
            .map(|o| (o.namespace.as_str(), o.name.as_str()))
            .collect();
        // The tenant's own binding, then one per other namespace: deduplicated, sorted, none
        // for the tenant namespace (its Role covers it).
        assert_eq!(
            bindings,
            [
                ("customer-acme", "prometheus-acme"),
                ("apps", "stacksmith-prometheus-acme"),
                ("batch", "stacksmith-prometheus-acme"),
                ("team-b", "stacksmith-prometheus-acme"),
            ]
        );
        for binding in &role_bindings(&plan)[1..] {
            assert_eq!(binding.cluster, "prom-eu");
            assert_eq!(
                binding.manifest["roleRef"],
                json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "stacksmith-prometheus-discovery"})
            );
            assert_eq!(
                binding.manifest["subjects"],
                json!([{"kind": "ServiceAccount", "name": "prometheus-acme",
                    "namespace": "customer-acme"}])
            );
            assert_eq!(binding.manifest["metadata"]["namespace"], binding.namespace);
            assert_eq!(binding.manifest["metadata"]["labels"][CUSTOMER], "acme");
        }
        // Created before the Prometheus, with the rest of its identity.
        let position = |kind| plan.objects.iter().position(|o| o.kind == kind).unwrap();
        let last_binding = plan
            .objects
            .iter()
            .rposition(|o| o.kind == ObjectKind::RoleBinding)
            .unwrap();
        assert!(last_binding < position(ObjectKind::Child(ChildKind::Prometheus)));
    }

    #[test]
    fn no_listed_namespace_no_discovery_binding() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let bindings = role_bindings(&plan);
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].namespace, "customer-acme");
        // Only the tenant namespace listed: its Role covers it.
        let tenant_only = FULL.replace(
            "    endpoints: [{port: web, interval: 30s}]\n",
            "    namespaces: [customer-acme]\n    endpoints: [{port: web, interval: 30s}]\n",
        );
        let plan = plan_stack(&spec(&tenant_only), &identity(), &members()).unwrap();
        assert_eq!(role_bindings(&plan).len(), 1);
    }

    #[test]
    fn the_tenant_role_grants_the_discovery_rules_as_it_always_did() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let role = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Role)
            .unwrap();
        // The rules the discovery ClusterRole grants elsewhere, in the exact manifest the tenant
        // Role always had (its planned hash is in live objects).
        assert_eq!(DISCOVERY_RULES.len(), 1);
        assert_eq!(
            role.manifest["rules"],
            json!([{"apiGroups": [""], "resources": ["services", "endpoints", "pods"],
                "verbs": ["get", "list", "watch"]}])
        );
    }

    #[test]
    fn rules_and_monitors_carry_only_the_optional_fields_that_are_set() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let manifest = |kind| {
            &plan
                .objects
                .iter()
                .find(|o| o.kind == ObjectKind::Child(kind))
                .unwrap()
                .manifest
        };
        let group = &manifest(ChildKind::PrometheusRule)["spec"]["groups"][0];
        assert_eq!(group["name"], "core");
        assert!(group.get("interval").is_none());
        assert_eq!(
            group["rules"][0],
            json!({"alert": "Down", "expr": "up == 0", "for": "5m"})
        );
        let monitor = &manifest(ChildKind::ServiceMonitor)["spec"];
        assert!(monitor.get("namespaceSelector").is_none());
        assert_eq!(
            monitor["endpoints"],
            json!([{"port": "web", "interval": "30s"}])
        );
    }

    #[test]
    fn a_recording_rule_group_is_a_prometheus_rule_of_its_own() {
        let mut stack = spec(FULL);
        stack.metrics.recording_rules = serde_json::from_value(json!([{
            "name": "rates",
            "interval": "1m",
            "rules": [
                {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                {"record": "job:up:avg", "expr": "avg by (job) (up)", "labels": {"tier": "gold"}},
            ],
        }]))
        .unwrap();
        let plan = plan_stack(&stack, &identity(), &members()).unwrap();
        let rules: Vec<&DesiredObject> = plan
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Child(ChildKind::PrometheusRule))
            .collect();
        let names: Vec<&str> = rules.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["acme-core", "acme-rates"]);
        let recording = &rules[1].manifest;
        assert_eq!(
            recording["spec"]["groups"],
            json!([{"name": "rates", "interval": "1m", "rules": [
                {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                {"record": "job:up:avg", "expr": "avg by (job) (up)", "labels": {"tier": "gold"}},
            ]}])
        );
        // Selected by the tenant's Prometheus like the alerting rules.
        assert_eq!(
            recording["metadata"]["labels"][CUSTOMER],
            rules[0].manifest["metadata"]["labels"][CUSTOMER]
        );
    }

    #[test]
    fn a_recording_group_named_like_an_alerting_group_is_refused_naming_the_field() {
        let mut stack = spec(FULL);
        stack.metrics.recording_rules = serde_json::from_value(json!([{
            "name": "core",
            "rules": [{"record": "job:up:sum", "expr": "sum by (job) (up)"}],
        }]))
        .unwrap();
        let problems = plan_stack(&stack, &identity(), &members()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.field == "spec.metrics.recordingRules[0].name"
                    && p.message.contains("acme-core")),
            "{problems:?}"
        );
    }

    fn prometheus_spec(plan: &super::super::StackPlan) -> &Value {
        &plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::Prometheus))
            .unwrap()
            .manifest["spec"]
    }

    #[test]
    fn a_stack_without_the_optional_parts_plans_the_prometheus_it_always_did() {
        // The exact spec keys: a new optional field that leaked in would change the planned
        // hash of every running stack, and rewrite them all on upgrade.
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let keys: Vec<&str> = prometheus_spec(&plan)
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "externalLabels",
                "replicas",
                "resources",
                "retention",
                "ruleSelector",
                "serviceAccountName",
                "serviceMonitorSelector"
            ]
        );
        assert!(
            !plan
                .objects
                .iter()
                .any(|o| o.kind == ObjectKind::Child(ChildKind::AlertmanagerConfig))
        );
    }

    #[test]
    fn storage_retention_size_and_thanos_reach_the_prometheus() {
        let mut stack = spec(FULL);
        stack.metrics.storage =
            serde_json::from_value(json!({"storageClassName": "fast-ssd", "size": "100Gi"}))
                .unwrap();
        stack.metrics.retention_size = Some("80GiB".into());
        stack.metrics.thanos = serde_json::from_value(
            json!({"objectStorageSecret": {"name": "thanos-bucket", "key": "objstore.yml"}}),
        )
        .unwrap();
        let plan = plan_stack(&stack, &identity(), &members()).unwrap();
        let p = prometheus_spec(&plan);
        assert_eq!(p["retention"], "30d");
        assert_eq!(p["retentionSize"], "80GiB");
        assert_eq!(
            p["storage"],
            json!({"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "fast-ssd",
                "resources": {"requests": {"storage": "100Gi"}},
            }}})
        );
        assert_eq!(
            p["thanos"],
            json!({"objectStorageConfig": {"name": "thanos-bucket", "key": "objstore.yml"}})
        );
        // No class: the claim leaves it out, so the cluster's default class applies.
        stack.metrics.storage = serde_json::from_value(json!({"size": "10Gi"})).unwrap();
        let plan = plan_stack(&stack, &identity(), &members()).unwrap();
        let claim = &prometheus_spec(&plan)["storage"]["volumeClaimTemplate"]["spec"];
        assert!(claim.get("storageClassName").is_none(), "{claim}");
    }

    fn members_with_alertmanager() -> Vec<MemberInfo> {
        let mut members = members();
        members[0].alertmanagers = serde_json::from_value(json!([
            {"namespace": "monitoring", "name": "alertmanager-operated"},
            {"namespace": "monitoring", "name": "am-eu", "port": "http", "pathPrefix": "/am"},
        ]))
        .unwrap();
        members
    }

    /// Two receivers (webhooks from Secrets, a Slack channel, PagerDuty) and a route.
    fn with_alert_delivery() -> CustomerStackSpec {
        let mut stack = spec(FULL);
        stack.metrics.alert_delivery = serde_json::from_value(json!({
            "receivers": [
                {"name": "oncall",
                 "webhooks": [{"urlSecret": {"name": "acme-oncall", "key": "url"}}],
                 "pagerduty": [{"routingKeySecret": {"name": "acme-pd", "key": "key"},
                                "sendResolved": false}]},
                {"name": "team",
                 "slack": [{"apiUrlSecret": {"name": "acme-slack", "key": "url"},
                            "channel": "#acme"}]},
            ],
            "defaultReceiver": "team",
            "groupBy": ["alertname"],
            "groupWait": "10s",
            "routes": [{"receiver": "oncall", "continue": true,
                        "matchers": [{"name": "severity", "value": "critical|page",
                                      "matchType": "=~"}]}],
        }))
        .unwrap();
        stack
    }

    #[test]
    fn alerts_go_to_the_clusters_alertmanagers_labelled_with_the_tenant() {
        let plan = plan_stack(&spec(FULL), &identity(), &members_with_alertmanager()).unwrap();
        let alerting = &prometheus_spec(&plan)["alerting"]["alertmanagers"];
        let relabelings = json!([
            {"sourceLabels": ["namespace"], "regex": "(.+)", "targetLabel": "source_namespace",
                "replacement": "$1", "action": "replace"},
            {"targetLabel": "namespace", "replacement": "customer-acme", "action": "replace"},
            {"targetLabel": "customer", "replacement": "acme", "action": "replace"},
        ]);
        assert_eq!(
            alerting,
            &json!([
                {"namespace": "monitoring", "name": "alertmanager-operated", "port": "web",
                 "alertRelabelings": relabelings},
                {"namespace": "monitoring", "name": "am-eu", "port": "http", "pathPrefix": "/am",
                 "alertRelabelings": relabelings},
            ])
        );
        // Without Alertmanagers on the member, no alerting section at all.
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert!(prometheus_spec(&plan).get("alerting").is_none());
    }

    #[test]
    fn receivers_and_routes_become_one_alertmanager_config_with_secret_references() {
        let plan = plan_stack(
            &with_alert_delivery(),
            &identity(),
            &members_with_alertmanager(),
        )
        .unwrap();
        let config = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::AlertmanagerConfig))
            .unwrap();
        assert_eq!(
            (
                config.cluster.as_str(),
                config.namespace.as_str(),
                config.name.as_str()
            ),
            ("prom-eu", "customer-acme", "acme-alerts")
        );
        assert_eq!(
            config.manifest["apiVersion"],
            "monitoring.coreos.com/v1alpha1"
        );
        assert_eq!(config.manifest["metadata"]["labels"][CUSTOMER], "acme");
        assert_eq!(
            config.manifest["spec"],
            json!({
                "route": {
                    "receiver": "team",
                    "groupBy": ["alertname"],
                    "groupWait": "10s",
                    "routes": [{"receiver": "oncall", "continue": true, "matchers": [
                        {"name": "severity", "value": "critical|page", "matchType": "=~"}]}],
                },
                "receivers": [
                    {"name": "oncall",
                     "webhookConfigs": [{"urlSecret": {"name": "acme-oncall", "key": "url"}}],
                     "pagerdutyConfigs": [{"routingKey": {"name": "acme-pd", "key": "key"},
                                           "sendResolved": false}]},
                    {"name": "team",
                     "slackConfigs": [{"apiURL": {"name": "acme-slack", "key": "url"},
                                       "channel": "#acme"}]},
                ],
            })
        );
        // Last: after the Prometheus and its rules.
        assert_eq!(
            plan.objects.iter().rfind(|o| o.cluster == "prom-eu"),
            Some(config)
        );
    }

    #[test]
    fn alert_delivery_problems_name_their_field() {
        let problems_of = |stack: &CustomerStackSpec, members: &[MemberInfo]| {
            plan_stack(stack, &identity(), members)
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect::<Vec<_>>()
        };
        // No Alertmanager on the Prometheus cluster: the alerts would go nowhere.
        let fields = problems_of(&with_alert_delivery(), &members());
        assert_eq!(fields, ["spec.metrics.alertDelivery"]);
        // Unknown receivers, a receiver defined twice.
        let mut stack = with_alert_delivery();
        let delivery = stack.metrics.alert_delivery.as_mut().unwrap();
        delivery.default_receiver = "nobody".into();
        delivery.routes[0].receiver = "ghost".into();
        let duplicate = delivery.receivers[0].clone();
        delivery.receivers.push(duplicate);
        let fields = problems_of(&stack, &members_with_alertmanager());
        assert_eq!(
            fields,
            [
                "spec.metrics.alertDelivery.receivers",
                "spec.metrics.alertDelivery.defaultReceiver",
                "spec.metrics.alertDelivery.routes[0].receiver",
            ]
        );
    }
}

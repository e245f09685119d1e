//! The objects planned on the Prometheus cluster, one builder per resource: the tenant
//! Namespace, the ServiceAccount, Role and RoleBinding the Prometheus runs with, a RoleBinding of
//! the fixed discovery ClusterRole in each other namespace a scrape target lists, the
//! `Prometheus`, one `PrometheusRule` per alerting-rule group and one `ServiceMonitor` per scrape
//! target.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use stacksmith_api::labels::CUSTOMER;
use stacksmith_api::rbac::{DISCOVERY_RULES, PROMETHEUS_DISCOVERY_CLUSTER_ROLE};
use stacksmith_api::{
    AlertRule, AlertRuleGroup, CustomerStackSpec, MetricsSpec, RecordingRule, RecordingRuleGroup,
    ScrapeEndpoint, ScrapeTarget,
};

use super::names::{self, Placement};
use super::{DesiredObject, ObjectKind};
use crate::health::ChildKind;

/// Everything the Prometheus cluster receives, in creation order.
pub(super) fn objects(
    spec: &CustomerStackSpec,
    cluster: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<DesiredObject> {
    let customer = spec.customer.as_str();
    let ns = names::tenant_namespace(customer);
    let place = Placement {
        cluster,
        namespace: &ns,
        labels,
    };
    let identity = names::prometheus_identity(customer);
    let mut objects = vec![
        namespace(&place),
        service_account(&place, &identity),
        role(&place, &identity),
        role_binding(&place, &identity),
    ];
    for namespace in discovery_namespaces(spec, &ns) {
        let elsewhere = Placement { namespace, ..place };
        objects.push(discovery_binding(&elsewhere, customer, &identity, &ns));
    }
    objects.push(prometheus(&place, customer, &identity, &spec.metrics));
    for group in &spec.metrics.alerting_rules {
        objects.push(prometheus_rule(&place, customer, group));
    }
    for group in &spec.metrics.recording_rules {
        objects.push(recording_rule_group(&place, customer, group));
    }
    for target in &spec.metrics.scrape {
        objects.push(service_monitor(&place, customer, target));
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

/// The `Prometheus`: it selects only the tenant's rules and monitors, in its own namespace.
fn prometheus(
    place: &Placement<'_>,
    customer: &str,
    identity: &str,
    metrics: &MetricsSpec,
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
    place.object(
        ObjectKind::Child(ChildKind::Prometheus),
        &names::prometheus(customer),
        json!({"spec": prometheus_spec}),
    )
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
}

//! The objects planned on the Prometheus cluster, one builder per resource: the tenant
//! Namespace, the ServiceAccount, Role and RoleBinding the Prometheus runs with, the
//! `Prometheus`, one `PrometheusRule` per alerting-rule group and one `ServiceMonitor` per scrape
//! target.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use stacksmith_api::labels::CUSTOMER;
use stacksmith_api::{
    AlertRule, AlertRuleGroup, CustomerStackSpec, MetricsSpec, ScrapeEndpoint, ScrapeTarget,
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
        prometheus(&place, customer, &identity, &spec.metrics),
    ];
    for group in &spec.metrics.alerting_rules {
        objects.push(prometheus_rule(&place, customer, group));
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

/// The Role that lets the Prometheus discover its targets in the tenant namespace.
fn role(place: &Placement<'_>, identity: &str) -> DesiredObject {
    place.object(
        ObjectKind::Role,
        identity,
        json!({"rules": [
            {"apiGroups": [""], "resources": ["services", "endpoints", "pods"], "verbs": ["get", "list", "watch"]},
        ]}),
    )
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
    let rules: Vec<Value> = group.rules.iter().map(alert_rule).collect();
    let mut g = Map::new();
    g.insert("name".into(), json!(group.name));
    if let Some(interval) = &group.interval {
        g.insert("interval".into(), json!(interval));
    }
    g.insert("rules".into(), Value::Array(rules));
    place.object(
        ObjectKind::Child(ChildKind::PrometheusRule),
        &names::rule(customer, &group.name),
        json!({"spec": {"groups": [Value::Object(g)]}}),
    )
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
}

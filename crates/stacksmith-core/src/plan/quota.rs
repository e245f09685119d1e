//! The quota of a tenant namespace stacksmith creates, from its member cluster's
//! `spec.tenantQuota`: a `ResourceQuota` of `hard` and a `LimitRange` of `containerDefaults`
//! (one item of type `Container`), both named [`names::TENANT_QUOTA`].
//!
//! They go right after the tenant Namespace, before anything else in it, so that every pod of
//! the namespace (the Prometheus', the dedicated Grafana's) is admitted under them. Only
//! namespaces stacksmith plans as its own get them: a Grafana cluster's namespace named by
//! `spec.dashboards.namespace` is someone else's, and its quota is theirs.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Map, Value, json};
use stacksmith_api::TenantQuota;

use super::names::{self, Placement};
use super::{DesiredObject, MemberInfo, ObjectKind};

/// `objects` with the tenant quota of each planned Namespace's member cluster (among `members`)
/// right after that Namespace.
pub(super) fn after_namespaces(
    objects: Vec<DesiredObject>,
    members: &[&MemberInfo],
    labels: &BTreeMap<String, String>,
) -> Vec<DesiredObject> {
    let mut planned = Vec::with_capacity(objects.len());
    for object in objects {
        let quota = (object.kind == ObjectKind::Namespace)
            .then(|| members.iter().find(|m| m.name == object.cluster))
            .flatten()
            .and_then(|member| member.tenant_quota.as_ref());
        let Some(quota) = quota else {
            planned.push(object);
            continue;
        };
        let place = Placement {
            cluster: &object.cluster,
            namespace: &object.name,
            labels,
        };
        let quota_objects = objects_of(&place, quota);
        planned.push(object);
        planned.extend(quota_objects);
    }
    planned
}

/// The `ResourceQuota` (when `hard` has entries) and the `LimitRange` (when `containerDefaults`
/// sets anything) of the placement's namespace.
fn objects_of(place: &Placement<'_>, quota: &TenantQuota) -> Vec<DesiredObject> {
    let mut objects = Vec::new();
    if !quota.hard.is_empty() {
        objects.push(place.object(
            ObjectKind::ResourceQuota,
            names::TENANT_QUOTA,
            json!({"spec": {"hard": quota.hard}}),
        ));
    }
    if let Some(defaults) = quota.container_defaults.as_ref().filter(|d| !d.is_empty()) {
        let mut item = Map::new();
        item.insert("type".into(), json!("Container"));
        let fields: [(&str, &BTreeMap<String, Quantity>); 4] = [
            ("default", &defaults.default),
            ("defaultRequest", &defaults.default_request),
            ("max", &defaults.max),
            ("min", &defaults.min),
        ];
        for (field, resources) in fields {
            if !resources.is_empty() {
                item.insert(field.into(), json!(resources));
            }
        }
        objects.push(place.object(
            ObjectKind::LimitRange,
            names::TENANT_QUOTA,
            json!({"spec": {"limits": [Value::Object(item)]}}),
        ));
    }
    objects
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stacksmith_api::ClusterRole;
    use stacksmith_api::labels::{STACK_UID, WRITTEN_THROUGH};

    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::plan_stack;
    use super::*;

    fn quota(yaml: &str) -> Option<TenantQuota> {
        Some(serde_yaml::from_str(yaml).unwrap())
    }

    const QUOTA: &str = r#"
hard: {pods: "4", requests.memory: 2Gi, limits.memory: 4Gi}
containerDefaults:
  defaultRequest: {cpu: 100m, memory: 128Mi}
  default: {memory: 2Gi}
  max: {memory: 4Gi}
"#;

    fn listed(plan: &super::super::StackPlan) -> Vec<String> {
        plan.objects
            .iter()
            .map(|o| format!("{} {} {}/{}", o.cluster, o.kind.kind(), o.namespace, o.name))
            .collect()
    }

    #[test]
    fn the_quota_follows_each_tenant_namespace_before_anything_else_in_it() {
        let mut m = members();
        m[0].tenant_quota = quota(QUOTA);
        m[1].tenant_quota = quota("hard: {pods: \"2\"}");
        let plan = plan_stack(&spec(FULL), &identity(), &m).unwrap();
        assert_eq!(
            listed(&plan),
            [
                "prom-eu Namespace /customer-acme",
                "prom-eu ResourceQuota customer-acme/stacksmith-tenant",
                "prom-eu LimitRange customer-acme/stacksmith-tenant",
                "prom-eu ServiceAccount customer-acme/prometheus-acme",
                "prom-eu Role customer-acme/prometheus-acme",
                "prom-eu RoleBinding customer-acme/prometheus-acme",
                "prom-eu Prometheus customer-acme/acme",
                "prom-eu PrometheusRule customer-acme/acme-core",
                "prom-eu ServiceMonitor customer-acme/acme-api",
                "graf-eu Namespace /customer-acme",
                "graf-eu ResourceQuota customer-acme/stacksmith-tenant",
                "graf-eu GrafanaFolder customer-acme/acme",
                "graf-eu GrafanaDatasource customer-acme/acme-prometheus",
                "graf-eu GrafanaDashboard customer-acme/acme-overview",
            ]
        );
        let manifest = |cluster: &str, kind: ObjectKind| {
            let object = plan
                .objects
                .iter()
                .find(|o| o.cluster == cluster && o.kind == kind)
                .unwrap();
            let mut manifest = object.manifest.clone();
            // The labels and the planned hash are every object's (tested in plan.rs).
            manifest["metadata"]
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k == "name" || k == "namespace");
            manifest
        };
        assert_eq!(
            manifest("prom-eu", ObjectKind::ResourceQuota),
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "stacksmith-tenant", "namespace": "customer-acme"},
                "spec": {"hard": {"limits.memory": "4Gi", "pods": "4", "requests.memory": "2Gi"}}})
        );
        assert_eq!(
            manifest("prom-eu", ObjectKind::LimitRange),
            json!({"apiVersion": "v1", "kind": "LimitRange",
                "metadata": {"name": "stacksmith-tenant", "namespace": "customer-acme"},
                "spec": {"limits": [{"type": "Container",
                    "default": {"memory": "2Gi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "max": {"memory": "4Gi"}}]}})
        );
        assert_eq!(
            manifest("graf-eu", ObjectKind::ResourceQuota)["spec"],
            json!({"hard": {"pods": "2"}}),
            "each cluster its own quota"
        );
        let labels = &plan.objects[1].manifest["metadata"]["labels"];
        assert_eq!(labels[STACK_UID], "uid-1");
        assert_eq!(labels[WRITTEN_THROUGH], "prom-eu");
    }

    #[test]
    fn nothing_is_planned_without_a_tenant_quota_or_for_an_empty_part() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let kinds = [ObjectKind::ResourceQuota, ObjectKind::LimitRange];
        assert!(!plan.objects.iter().any(|o| kinds.contains(&o.kind)));

        let mut m = members();
        m[0].tenant_quota = quota("containerDefaults: {min: {cpu: 10m}}");
        m[1].tenant_quota = quota("hard: {pods: \"2\"}\ncontainerDefaults: {}");
        let plan = plan_stack(&spec(FULL), &identity(), &m).unwrap();
        let planned: Vec<String> = plan
            .objects
            .iter()
            .filter(|o| kinds.contains(&o.kind))
            .map(|o| format!("{} {}", o.cluster, o.kind.kind()))
            .collect();
        assert_eq!(planned, ["prom-eu LimitRange", "graf-eu ResourceQuota"]);
    }

    #[test]
    fn a_grafana_namespace_the_stack_does_not_own_gets_no_quota() {
        let mut m = members();
        m[0].tenant_quota = quota(QUOTA);
        m[1].tenant_quota = quota(QUOTA);
        let mut s = spec(FULL);
        s.dashboards.namespace = Some("grafana".into());
        let plan = plan_stack(&s, &identity(), &m).unwrap();
        let on_grafana: Vec<String> = listed(&plan)
            .into_iter()
            .filter(|o| o.starts_with("graf-eu"))
            .collect();
        assert_eq!(
            on_grafana,
            [
                "graf-eu GrafanaFolder grafana/acme",
                "graf-eu GrafanaDatasource grafana/acme-prometheus",
                "graf-eu GrafanaDashboard grafana/acme-overview",
            ]
        );
        assert!(plan.holds(
            "prom-eu",
            ObjectKind::ResourceQuota,
            "customer-acme",
            names::TENANT_QUOTA
        ));
    }

    #[test]
    fn a_cluster_serving_both_roles_gets_one_quota() {
        let both = vec![MemberInfo {
            name: "all-in-one".into(),
            roles: vec![ClusterRole::Prometheus, ClusterRole::Grafana],
            prometheus_url_template: Some("http://{name}.{namespace}.svc:9090".into()),
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: quota(QUOTA),
        }];
        let yaml = FULL
            .replace("prom-eu", "all-in-one")
            .replace("graf-eu", "all-in-one");
        let plan = plan_stack(&spec(&yaml), &identity(), &both).unwrap();
        assert_eq!(
            listed(&plan)[..3],
            [
                "all-in-one Namespace /customer-acme",
                "all-in-one ResourceQuota customer-acme/stacksmith-tenant",
                "all-in-one LimitRange customer-acme/stacksmith-tenant",
            ]
        );
        for kind in [ObjectKind::ResourceQuota, ObjectKind::LimitRange] {
            assert_eq!(plan.objects.iter().filter(|o| o.kind == kind).count(), 1);
        }
        assert_eq!(plan.objects.len(), 12);
    }
}

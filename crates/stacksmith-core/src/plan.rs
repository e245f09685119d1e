//! Planning: a `CustomerStack` and the registered member clusters → the objects that must exist
//! in each cluster. Pure: no client, no clock.
//!
//! On the Prometheus cluster, in the tenant namespace `customer-<customer>`: the Namespace, the
//! ServiceAccount, Role and RoleBinding a Prometheus needs, the `Prometheus` (selectors scoped
//! to the tenant), one `PrometheusRule` per alerting-rule group and one `ServiceMonitor` per
//! scrape target. On the Grafana cluster: a `GrafanaFolder`, a `GrafanaDatasource` of type
//! prometheus whose URL points at this tenant's Prometheus through the Prometheus cluster's URL
//! template, and the dashboards in that folder.
//!
//! Every object carries labels that lead back to its stack; names are deterministic. Two stacks
//! with the same customer id would plan the same names: the controller refuses to touch an
//! object another stack owns, so the second one gets a `Conflict` instead.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use stacksmith_api::labels::{
    CUSTOMER, MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE, STACK_UID,
};
use stacksmith_api::validation::is_dns1123_label;
use stacksmith_api::{ClusterRole, CustomerStackSpec, DashboardSource};

use crate::aggregate::SpecProblem;
use crate::health::ChildKind;

/// What planning needs to know about a registered member cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The `MemberCluster` name.
    pub name: String,
    /// The roles it serves.
    pub roles: Vec<ClusterRole>,
    /// `spec.prometheusUrlTemplate`.
    pub prometheus_url_template: Option<String>,
}

/// The identity of the stack being planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackIdentity {
    /// Its namespace on the hub.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The kind of a planned object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// The tenant namespace.
    Namespace,
    /// The Prometheus' ServiceAccount.
    ServiceAccount,
    /// The Prometheus' Role.
    Role,
    /// The Prometheus' RoleBinding.
    RoleBinding,
    /// A child custom resource, whose health is reported.
    Child(ChildKind),
}

impl ObjectKind {
    /// Every kind, in creation order.
    pub const ALL: [ObjectKind; 10] = [
        ObjectKind::Namespace,
        ObjectKind::ServiceAccount,
        ObjectKind::Role,
        ObjectKind::RoleBinding,
        ObjectKind::Child(ChildKind::Prometheus),
        ObjectKind::Child(ChildKind::PrometheusRule),
        ObjectKind::Child(ChildKind::ServiceMonitor),
        ObjectKind::Child(ChildKind::GrafanaFolder),
        ObjectKind::Child(ChildKind::GrafanaDatasource),
        ObjectKind::Child(ChildKind::GrafanaDashboard),
    ];

    /// The `Kind`.
    pub fn kind(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "Namespace",
            ObjectKind::ServiceAccount => "ServiceAccount",
            ObjectKind::Role => "Role",
            ObjectKind::RoleBinding => "RoleBinding",
            ObjectKind::Child(kind) => kind.as_str(),
        }
    }

    /// The `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            ObjectKind::Namespace | ObjectKind::ServiceAccount => "v1",
            ObjectKind::Role | ObjectKind::RoleBinding => "rbac.authorization.k8s.io/v1",
            ObjectKind::Child(kind) => kind.api_version(),
        }
    }

    /// The resource plural.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "namespaces",
            ObjectKind::ServiceAccount => "serviceaccounts",
            ObjectKind::Role => "roles",
            ObjectKind::RoleBinding => "rolebindings",
            ObjectKind::Child(kind) => kind.plural(),
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != ObjectKind::Namespace
    }

    /// The child kind, for kinds whose health is reported.
    pub fn child(self) -> Option<ChildKind> {
        match self {
            ObjectKind::Child(kind) => Some(kind),
            _ => None,
        }
    }

    /// The kinds a cluster of `role` receives.
    pub fn for_role(role: ClusterRole) -> &'static [ObjectKind] {
        match role {
            ClusterRole::Prometheus => &ObjectKind::ALL[..7],
            ClusterRole::Grafana => &[
                ObjectKind::Namespace,
                ObjectKind::Child(ChildKind::GrafanaFolder),
                ObjectKind::Child(ChildKind::GrafanaDatasource),
                ObjectKind::Child(ChildKind::GrafanaDashboard),
            ],
        }
    }
}

/// One object that must exist in one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    /// The member cluster.
    pub cluster: String,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The full object to apply (`apiVersion`, `kind`, `metadata`, and the body).
    pub manifest: Value,
}

/// Everything a stack needs, per cluster, in creation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackPlan {
    /// The objects, grouped by cluster, each cluster's in creation order.
    pub objects: Vec<DesiredObject>,
    /// The member clusters the stack uses (sorted, unique).
    pub clusters: Vec<String>,
}

/// Deterministic names of a customer's objects.
pub mod names {
    /// The tenant namespace (on the Prometheus cluster, and the default on the Grafana cluster).
    pub fn tenant_namespace(customer: &str) -> String {
        format!("customer-{customer}")
    }
    /// The `Prometheus` object.
    pub fn prometheus(customer: &str) -> String {
        customer.to_owned()
    }
    /// The ServiceAccount, Role and RoleBinding of the Prometheus.
    pub fn prometheus_identity(customer: &str) -> String {
        format!("prometheus-{customer}")
    }
    /// A `PrometheusRule` for an alerting-rule group.
    pub fn rule(customer: &str, group: &str) -> String {
        format!("{customer}-{group}")
    }
    /// A `ServiceMonitor` for a scrape target.
    pub fn service_monitor(customer: &str, target: &str) -> String {
        format!("{customer}-{target}")
    }
    /// The `GrafanaFolder`.
    pub fn folder(customer: &str) -> String {
        customer.to_owned()
    }
    /// The `GrafanaDatasource`.
    pub fn datasource(customer: &str) -> String {
        format!("{customer}-prometheus")
    }
    /// A `GrafanaDashboard`.
    pub fn dashboard(customer: &str, dashboard: &str) -> String {
        format!("{customer}-{dashboard}")
    }
}

/// The labels every planned object carries.
pub fn ownership_labels(stack: &StackIdentity, customer: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (STACK_NAMESPACE.to_owned(), stack.namespace.clone()),
        (STACK_NAME.to_owned(), stack.name.clone()),
        (STACK_UID.to_owned(), stack.uid.clone()),
        (CUSTOMER.to_owned(), customer.to_owned()),
    ])
}

/// Plans a stack, or says every problem that prevents it.
pub fn plan_stack(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    members: &[MemberInfo],
) -> Result<StackPlan, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    check_identity(spec, stack, &mut problems);
    let prometheus_cluster = find_member(
        members,
        &spec.metrics.cluster,
        ClusterRole::Prometheus,
        "spec.metrics.cluster",
        &mut problems,
    );
    let grafana_cluster = find_member(
        members,
        &spec.dashboards.cluster,
        ClusterRole::Grafana,
        "spec.dashboards.cluster",
        &mut problems,
    );
    check_unique(
        "spec.metrics.scrape",
        spec.metrics.scrape.iter().map(|s| s.name.as_str()),
        &mut problems,
    );
    check_unique(
        "spec.metrics.alertingRules",
        spec.metrics.alerting_rules.iter().map(|g| g.name.as_str()),
        &mut problems,
    );
    check_unique(
        "spec.dashboards.dashboards",
        spec.dashboards.dashboards.iter().map(|d| d.name.as_str()),
        &mut problems,
    );
    for (i, dashboard) in spec.dashboards.dashboards.iter().enumerate() {
        if dashboard.source().is_none() {
            problems.push(problem(
                &format!("spec.dashboards.dashboards[{i}]"),
                "set exactly one of json and url",
            ));
        }
    }
    let datasource_url =
        prometheus_cluster.and_then(|member| datasource_url(spec, member, &mut problems));
    let (Some(prometheus_cluster), Some(grafana_cluster), Some(datasource_url), true) = (
        prometheus_cluster,
        grafana_cluster,
        datasource_url,
        problems.is_empty(),
    ) else {
        return Err(problems);
    };

    let labels = ownership_labels(stack, &spec.customer);
    let mut objects = prometheus_objects(spec, &prometheus_cluster.name, &labels);
    objects.extend(grafana_objects(
        spec,
        &grafana_cluster.name,
        &labels,
        &datasource_url,
    ));
    // One cluster may serve both roles: the tenant Namespace is then planned once.
    let mut planned = BTreeSet::new();
    objects.retain(|o| {
        planned.insert((
            o.cluster.clone(),
            o.kind,
            o.namespace.clone(),
            o.name.clone(),
        ))
    });
    let clusters: BTreeSet<String> = objects.iter().map(|o| o.cluster.clone()).collect();
    Ok(StackPlan {
        objects,
        clusters: clusters.into_iter().collect(),
    })
}

fn problem(field: &str, message: impl Into<String>) -> SpecProblem {
    SpecProblem {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn check_identity(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    problems: &mut Vec<SpecProblem>,
) {
    if !is_dns1123_label(&spec.customer, 40) {
        problems.push(problem(
            "spec.customer",
            "must be a DNS-1123 label of at most 40 characters",
        ));
    }
    if stack.name.len() > 63 {
        problems.push(problem(
            "metadata.name",
            "must be at most 63 characters (it is a label value on every child)",
        ));
    }
}

fn find_member<'m>(
    members: &'m [MemberInfo],
    name: &str,
    role: ClusterRole,
    field: &str,
    problems: &mut Vec<SpecProblem>,
) -> Option<&'m MemberInfo> {
    let Some(member) = members.iter().find(|m| m.name == name) else {
        problems.push(problem(field, format!("MemberCluster {name:?} not found")));
        return None;
    };
    if !member.roles.contains(&role) {
        problems.push(problem(
            field,
            format!(
                "MemberCluster {name:?} does not serve the {} role",
                role.as_str()
            ),
        ));
        return None;
    }
    Some(member)
}

fn check_unique<'a>(
    field: &str,
    names: impl Iterator<Item = &'a str>,
    problems: &mut Vec<SpecProblem>,
) {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            problems.push(problem(field, format!("name {name:?} is used twice")));
        }
    }
}

/// The URL Grafana uses to reach this tenant's Prometheus, from the Prometheus cluster's template.
fn datasource_url(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) -> Option<String> {
    let Some(template) = member.prometheus_url_template.as_deref() else {
        problems.push(problem(
            "spec.metrics.cluster",
            format!("MemberCluster {:?} has no spec.prometheusUrlTemplate: Grafana could not reach the Prometheus", member.name),
        ));
        return None;
    };
    let url = render_url_template(template, &spec.customer);
    if url.contains('{') || url.contains('}') {
        problems.push(problem(
            "spec.metrics.cluster",
            format!("MemberCluster {:?}: spec.prometheusUrlTemplate has an unknown placeholder (known: {{namespace}}, {{name}}, {{customer}})", member.name),
        ));
        return None;
    }
    Some(url)
}

/// Fills `{namespace}`, `{name}` and `{customer}` of a Prometheus URL template.
pub fn render_url_template(template: &str, customer: &str) -> String {
    template
        .replace("{namespace}", &names::tenant_namespace(customer))
        .replace("{name}", &names::prometheus(customer))
        .replace("{customer}", customer)
}

fn object(
    cluster: &str,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    body: Value,
) -> DesiredObject {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    if kind.namespaced() {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("labels".into(), json!(labels));
    let mut manifest = Map::new();
    manifest.insert("apiVersion".into(), json!(kind.api_version()));
    manifest.insert("kind".into(), json!(kind.kind()));
    manifest.insert("metadata".into(), Value::Object(metadata));
    if let Value::Object(body) = body {
        manifest.extend(body);
    }
    let hash = planned_hash(&manifest);
    if let Some(Value::Object(metadata)) = manifest.get_mut("metadata") {
        metadata.insert(
            "annotations".into(),
            json!({ stacksmith_api::labels::PLANNED_HASH: hash }),
        );
    }
    DesiredObject {
        cluster: cluster.to_owned(),
        kind,
        namespace: if kind.namespaced() {
            namespace.to_owned()
        } else {
            String::new()
        },
        name: name.to_owned(),
        manifest: Value::Object(manifest),
    }
}

fn prometheus_objects(
    spec: &CustomerStackSpec,
    cluster: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<DesiredObject> {
    let customer = spec.customer.as_str();
    let ns = names::tenant_namespace(customer);
    let identity = names::prometheus_identity(customer);
    let tenant_selector = json!({"matchLabels": {CUSTOMER: customer}});
    let metrics = &spec.metrics;
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
    let mut objects = vec![
        object(cluster, ObjectKind::Namespace, "", &ns, labels, json!({})),
        object(
            cluster,
            ObjectKind::ServiceAccount,
            &ns,
            &identity,
            labels,
            json!({}),
        ),
        object(
            cluster,
            ObjectKind::Role,
            &ns,
            &identity,
            labels,
            json!({"rules": [
                {"apiGroups": [""], "resources": ["services", "endpoints", "pods"], "verbs": ["get", "list", "watch"]},
            ]}),
        ),
        object(
            cluster,
            ObjectKind::RoleBinding,
            &ns,
            &identity,
            labels,
            json!({
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": identity},
                "subjects": [{"kind": "ServiceAccount", "name": identity, "namespace": ns}],
            }),
        ),
        object(
            cluster,
            ObjectKind::Child(ChildKind::Prometheus),
            &ns,
            &names::prometheus(customer),
            labels,
            json!({"spec": prometheus_spec}),
        ),
    ];
    for group in &metrics.alerting_rules {
        let rules: Vec<Value> = group
            .rules
            .iter()
            .map(|rule| {
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
            })
            .collect();
        let mut g = Map::new();
        g.insert("name".into(), json!(group.name));
        if let Some(interval) = &group.interval {
            g.insert("interval".into(), json!(interval));
        }
        g.insert("rules".into(), Value::Array(rules));
        objects.push(object(
            cluster,
            ObjectKind::Child(ChildKind::PrometheusRule),
            &ns,
            &names::rule(customer, &group.name),
            labels,
            json!({"spec": {"groups": [Value::Object(g)]}}),
        ));
    }
    for target in &metrics.scrape {
        let endpoints: Vec<Value> = target
            .endpoints
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("port".into(), json!(e.port));
                if let Some(path) = &e.path {
                    m.insert("path".into(), json!(path));
                }
                if let Some(interval) = &e.interval {
                    m.insert("interval".into(), json!(interval));
                }
                Value::Object(m)
            })
            .collect();
        let mut monitor = Map::new();
        monitor.insert("selector".into(), json!(target.selector));
        if !target.namespaces.is_empty() {
            monitor.insert(
                "namespaceSelector".into(),
                json!({"matchNames": target.namespaces}),
            );
        }
        monitor.insert("endpoints".into(), Value::Array(endpoints));
        objects.push(object(
            cluster,
            ObjectKind::Child(ChildKind::ServiceMonitor),
            &ns,
            &names::service_monitor(customer, &target.name),
            labels,
            json!({"spec": Value::Object(monitor)}),
        ));
    }
    objects
}

fn grafana_objects(
    spec: &CustomerStackSpec,
    cluster: &str,
    labels: &BTreeMap<String, String>,
    datasource_url: &str,
) -> Vec<DesiredObject> {
    let customer = spec.customer.as_str();
    let dashboards = &spec.dashboards;
    let tenant_ns = names::tenant_namespace(customer);
    let ns = dashboards
        .namespace
        .clone()
        .unwrap_or_else(|| tenant_ns.clone());
    // Children in stacksmith's own tenant namespace are never next to a Grafana instance.
    let cross_namespace = ns == tenant_ns;
    let common = |extra: Value| -> Value {
        let mut m = Map::new();
        m.insert(
            "instanceSelector".into(),
            json!(dashboards.instance_selector),
        );
        if cross_namespace {
            m.insert("allowCrossNamespaceImport".into(), json!(true));
        }
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
        json!({"spec": Value::Object(m)})
    };
    let mut objects = Vec::new();
    if cross_namespace {
        objects.push(object(
            cluster,
            ObjectKind::Namespace,
            "",
            &ns,
            labels,
            json!({}),
        ));
    }
    let folder = names::folder(customer);
    let title = dashboards
        .folder
        .title
        .clone()
        .unwrap_or_else(|| customer.to_owned());
    objects.push(object(
        cluster,
        ObjectKind::Child(ChildKind::GrafanaFolder),
        &ns,
        &folder,
        labels,
        common(json!({"title": title})),
    ));

    let mut datasource = Map::new();
    datasource.insert(
        "name".into(),
        json!(
            dashboards
                .datasource
                .display_name
                .clone()
                .unwrap_or_else(|| format!("{customer}-prometheus"))
        ),
    );
    datasource.insert("type".into(), json!("prometheus"));
    datasource.insert("access".into(), json!("proxy"));
    datasource.insert("url".into(), json!(datasource_url));
    datasource.insert("isDefault".into(), json!(dashboards.datasource.is_default));
    if let Some(timeout) = dashboards.datasource.timeout_seconds {
        datasource.insert("jsonData".into(), json!({"timeout": timeout}));
    }
    objects.push(object(
        cluster,
        ObjectKind::Child(ChildKind::GrafanaDatasource),
        &ns,
        &names::datasource(customer),
        labels,
        common(json!({"datasource": Value::Object(datasource)})),
    ));
    for dashboard in &dashboards.dashboards {
        let source = match dashboard.source() {
            Some(DashboardSource::Json(json)) => json!({"json": json}),
            Some(DashboardSource::Url(url)) => json!({"url": url}),
            None => continue,
        };
        let mut extra = json!({"folderRef": folder});
        if let (Value::Object(e), Value::Object(s)) = (&mut extra, source) {
            e.extend(s);
        }
        objects.push(object(
            cluster,
            ObjectKind::Child(ChildKind::GrafanaDashboard),
            &ns,
            &names::dashboard(customer, &dashboard.name),
            labels,
            common(extra),
        ));
    }
    objects
}

/// A stable hash of a planned object (FNV-1a, 64 bits, over its JSON), as 16 hex digits: the same
/// plan gives the same hash in every build and on every machine.
fn planned_hash(manifest: &Map<String, Value>) -> String {
    let text = serde_json::to_string(manifest).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<MemberInfo> {
        vec![
            MemberInfo {
                name: "prom-eu".into(),
                roles: vec![ClusterRole::Prometheus],
                prometheus_url_template: Some(
                    "https://{name}.{namespace}.prom-eu.example:9090".into(),
                ),
            },
            MemberInfo {
                name: "graf-eu".into(),
                roles: vec![ClusterRole::Grafana],
                prometheus_url_template: None,
            },
        ]
    }

    fn identity() -> StackIdentity {
        StackIdentity {
            namespace: "team-a".into(),
            name: "acme".into(),
            uid: "uid-1".into(),
        }
    }

    fn spec(yaml: &str) -> CustomerStackSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    const FULL: &str = r#"
customer: acme
metrics:
  cluster: prom-eu
  replicas: 2
  retention: 30d
  resources: {requests: {memory: 2Gi}}
  scrape:
  - name: api
    selector: {matchLabels: {app: api}}
    endpoints: [{port: web, interval: 30s}]
  alertingRules:
  - name: core
    rules: [{alert: Down, expr: up == 0, for: 5m}]
dashboards:
  cluster: graf-eu
  instanceSelector: {matchLabels: {dashboards: grafana}}
  dashboards:
  - {name: overview, json: "{}"}
"#;

    #[test]
    fn a_full_stack_plans_every_object_in_creation_order() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let listed: Vec<String> = plan
            .objects
            .iter()
            .map(|o| format!("{} {} {}/{}", o.cluster, o.kind.kind(), o.namespace, o.name))
            .collect();
        assert_eq!(
            listed,
            [
                "prom-eu Namespace /customer-acme",
                "prom-eu ServiceAccount customer-acme/prometheus-acme",
                "prom-eu Role customer-acme/prometheus-acme",
                "prom-eu RoleBinding customer-acme/prometheus-acme",
                "prom-eu Prometheus customer-acme/acme",
                "prom-eu PrometheusRule customer-acme/acme-core",
                "prom-eu ServiceMonitor customer-acme/acme-api",
                "graf-eu Namespace /customer-acme",
                "graf-eu GrafanaFolder customer-acme/acme",
                "graf-eu GrafanaDatasource customer-acme/acme-prometheus",
                "graf-eu GrafanaDashboard customer-acme/acme-overview",
            ]
        );
        assert_eq!(plan.clusters, ["graf-eu", "prom-eu"]);
    }

    #[test]
    fn a_cluster_serving_both_roles_gets_each_object_once() {
        let both = vec![MemberInfo {
            name: "all-in-one".into(),
            roles: vec![ClusterRole::Prometheus, ClusterRole::Grafana],
            prometheus_url_template: Some("http://{name}.{namespace}.svc:9090".into()),
        }];
        let yaml = FULL
            .replace("prom-eu", "all-in-one")
            .replace("graf-eu", "all-in-one");
        let plan = plan_stack(&spec(&yaml), &identity(), &both).unwrap();
        let namespaces = plan
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Namespace)
            .count();
        assert_eq!(namespaces, 1);
        assert_eq!(plan.objects.len(), 10);
        assert_eq!(plan.clusters, ["all-in-one"]);
    }

    #[test]
    fn the_datasource_points_at_the_tenant_prometheus_across_clusters() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let ds = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::GrafanaDatasource))
            .unwrap();
        assert_eq!(
            ds.manifest["spec"]["datasource"]["url"],
            "https://acme.customer-acme.prom-eu.example:9090"
        );
        assert_eq!(ds.manifest["spec"]["datasource"]["type"], "prometheus");
        assert_eq!(ds.manifest["spec"]["allowCrossNamespaceImport"], true);
        assert_eq!(
            ds.manifest["spec"]["instanceSelector"]["matchLabels"]["dashboards"],
            "grafana"
        );
    }

    #[test]
    fn children_next_to_grafana_do_not_import_across_namespaces() {
        let mut s = spec(FULL);
        s.dashboards.namespace = Some("grafana".into());
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        let grafana: Vec<_> = plan
            .objects
            .iter()
            .filter(|o| o.cluster == "graf-eu")
            .collect();
        assert!(grafana.iter().all(|o| o.kind != ObjectKind::Namespace));
        assert!(grafana.iter().all(|o| {
            o.namespace == "grafana"
                && o.manifest["spec"]
                    .get("allowCrossNamespaceImport")
                    .is_none()
        }));
    }

    #[test]
    fn every_object_leads_back_to_its_stack() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        for o in &plan.objects {
            let labels = &o.manifest["metadata"]["labels"];
            assert_eq!(labels[MANAGED_BY], "stacksmith");
            assert_eq!(labels[STACK_UID], "uid-1");
            assert_eq!(labels[STACK_NAMESPACE], "team-a");
            assert_eq!(labels[STACK_NAME], "acme");
        }
    }

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
    fn problems_name_their_field() {
        let mut s = spec(FULL);
        s.metrics.cluster = "graf-eu".into();
        s.dashboards.cluster = "nowhere".into();
        s.dashboards
            .dashboards
            .push(s.dashboards.dashboards[0].clone());
        let problems = plan_stack(&s, &identity(), &members()).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.metrics.cluster",
                "spec.dashboards.cluster",
                "spec.dashboards.dashboards"
            ]
        );
        assert!(
            problems[0]
                .message
                .contains("does not serve the prometheus role")
        );
        assert!(problems[1].message.contains("not found"));
    }

    #[test]
    fn a_missing_or_broken_url_template_is_a_problem() {
        let mut m = members();
        m[0].prometheus_url_template = None;
        assert!(plan_stack(&spec(FULL), &identity(), &m).is_err());
        m[0].prometheus_url_template = Some("http://{tenant}:9090".into());
        let problems = plan_stack(&spec(FULL), &identity(), &m).unwrap_err();
        assert!(problems[0].message.contains("unknown placeholder"));
    }

    #[test]
    fn planning_is_deterministic() {
        let a = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let b = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_object_carries_the_hash_of_its_plan_and_it_moves_with_the_plan() {
        let mut manifest = Map::new();
        manifest.insert("kind".into(), json!("Prometheus"));
        manifest.insert("spec".into(), json!({"replicas": 2}));
        // Stable across builds and machines: a fixed value for a fixed input.
        assert_eq!(planned_hash(&manifest), planned_hash(&manifest.clone()));
        assert_eq!(planned_hash(&Map::new()), "08f44b07b5901a25"); // FNV-1a 64 of "{}"
        let before = planned_hash(&manifest);
        manifest.insert("spec".into(), json!({}));
        assert_ne!(
            planned_hash(&manifest),
            before,
            "a removed field changes the hash"
        );
    }
}

//! The objects planned on the Grafana cluster, one builder per resource: with
//! `spec.dashboards.dedicatedGrafana`, the customer's own `Grafana` instance; the `GrafanaFolder`,
//! the `GrafanaDatasource` that points Grafana at the tenant's Prometheus, and one
//! `GrafanaDashboard` per dashboard (plus the tenant Namespace when the children live there).
//!
//! The folder, datasource and dashboards go either to the shared instances
//! `spec.dashboards.instanceSelector` selects (from the tenant namespace they may be imported
//! into any namespace), or to the dedicated instance alone: they select it by its label
//! [`GRAFANA_INSTANCE`], in their own namespace only.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value, json};
use stacksmith_api::labels::GRAFANA_INSTANCE;
use stacksmith_api::{
    CustomerStackSpec, DashboardSource, DashboardSpec, DashboardsSpec, DedicatedGrafanaSpec,
};

use super::names::{self, Placement};
use super::{DashboardConfigMaps, DesiredObject, MemberInfo, ObjectKind, exposure, prometheus};
use crate::health::ChildKind;

/// The port of the Service grafana-operator v5 creates for a `Grafana` (its default
/// `server.http_port`; stacksmith sets no `grafana.ini`).
const GRAFANA_SERVICE_PORT: u16 = 3000;

/// Everything the Grafana cluster receives, in creation order. `datasource_url` is the tenant
/// Prometheus' URL as seen from Grafana.
pub(super) fn objects(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    labels: &BTreeMap<String, String>,
    datasource_url: &str,
    mutual_tls: bool,
    config_maps: &DashboardConfigMaps,
) -> Vec<DesiredObject> {
    let cluster = member.name.as_str();
    let customer = spec.customer.as_str();
    let dashboards = &spec.dashboards;
    // Validation refuses a spec with neither or both before anything is planned.
    let Some(instances) = Instances::of(dashboards) else {
        return Vec::new();
    };
    let tenant_ns = names::tenant_namespace(customer);
    let ns = dashboards
        .namespace
        .clone()
        .unwrap_or_else(|| tenant_ns.clone());
    let place = Placement {
        cluster,
        namespace: &ns,
        labels,
    };
    let in_tenant_namespace = ns == tenant_ns;
    let common = CommonSpec {
        dashboards,
        instance_selector: instances.selector(customer),
        // Shared instances are never in stacksmith's own tenant namespace; a dedicated one is
        // next to the children, and only it may receive them.
        cross_namespace: in_tenant_namespace && matches!(instances, Instances::Shared(_)),
    };
    let mut objects = Vec::new();
    if in_tenant_namespace {
        objects.push(prometheus::namespace(&place));
    }
    if let Instances::Dedicated(dedicated) = instances {
        let host = ingress_host(dedicated, member, customer);
        objects.push(grafana(&place, customer, dedicated, host.as_deref()));
    }
    objects.push(folder(&place, &common, customer));
    if mutual_tls {
        objects.push(exposure::client_secret(&place, customer));
    }
    objects.push(datasource(
        &place,
        &common,
        customer,
        datasource_url,
        mutual_tls,
    ));
    for dashboard in &dashboards.dashboards {
        objects.extend(self::dashboard(
            &place,
            &common,
            customer,
            dashboard,
            config_maps,
        ));
    }
    objects
}

/// The `Grafana` instances the folder, datasource and dashboards go to.
#[derive(Clone, Copy)]
enum Instances<'a> {
    /// Shared ones, selected by `spec.dashboards.instanceSelector`.
    Shared(&'a LabelSelector),
    /// The customer's own, `spec.dashboards.dedicatedGrafana`.
    Dedicated(&'a DedicatedGrafanaSpec),
}

impl<'a> Instances<'a> {
    /// Which instances the spec asks for; `None` unless exactly one of the two is set.
    fn of(dashboards: &'a DashboardsSpec) -> Option<Self> {
        match (&dashboards.instance_selector, &dashboards.dedicated_grafana) {
            (Some(selector), None) => Some(Instances::Shared(selector)),
            (None, Some(dedicated)) => Some(Instances::Dedicated(dedicated)),
            _ => None,
        }
    }

    /// The children's `instanceSelector`.
    fn selector(self, customer: &str) -> Value {
        match self {
            Instances::Shared(selector) => json!(selector),
            Instances::Dedicated(_) => json!({"matchLabels": {GRAFANA_INSTANCE: customer}}),
        }
    }
}

/// The Ingress host of the customer's own Grafana: the stack's `ingressHost`, else the Grafana
/// cluster's `grafanaIngressHostTemplate` with `{customer}` filled in, else none.
pub(super) fn ingress_host(
    dedicated: &DedicatedGrafanaSpec,
    member: &MemberInfo,
    customer: &str,
) -> Option<String> {
    dedicated.ingress_host.clone().or_else(|| {
        member
            .grafana_ingress_host_template
            .as_deref()
            .map(|template| template.replace("{customer}", customer))
    })
}

/// The customer's own `Grafana`, labelled [`GRAFANA_INSTANCE`] for the children to select it:
/// the pinned version and, with an `ingressHost`, an Ingress to grafana-operator's Service for
/// it. No admin credentials: grafana-operator generates the Secret `<name>-admin-credentials`
/// itself when the instance configures none.
fn grafana(
    place: &Placement<'_>,
    customer: &str,
    dedicated: &DedicatedGrafanaSpec,
    ingress_host: Option<&str>,
) -> DesiredObject {
    let name = names::grafana(customer);
    let mut spec = Map::new();
    spec.insert("version".into(), json!(dedicated.version));
    if let Some(host) = ingress_host {
        let backend = json!({"service": {
            "name": names::grafana_service(&name),
            "port": {"number": GRAFANA_SERVICE_PORT},
        }});
        spec.insert(
            "ingress".into(),
            json!({"spec": {"rules": [{
                "host": host,
                "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
            }]}}),
        );
    }
    let mut labels = place.labels.clone();
    labels.insert(GRAFANA_INSTANCE.to_owned(), customer.to_owned());
    let labelled = Placement {
        cluster: place.cluster,
        namespace: place.namespace,
        labels: &labels,
    };
    labelled.object(
        ObjectKind::Child(ChildKind::Grafana),
        &name,
        json!({"spec": Value::Object(spec)}),
    )
}

/// The spec fields every Grafana child shares: which instances it goes to, and whether it may
/// be imported from another namespace than theirs.
struct CommonSpec<'a> {
    dashboards: &'a DashboardsSpec,
    instance_selector: Value,
    cross_namespace: bool,
}

impl CommonSpec<'_> {
    /// `{"spec": …}`: the shared fields, then the top-level fields of `own`.
    fn spec(&self, own: Value) -> Value {
        let mut m = Map::new();
        m.insert("instanceSelector".into(), self.instance_selector.clone());
        if self.cross_namespace {
            m.insert("allowCrossNamespaceImport".into(), json!(true));
        }
        if let Value::Object(own) = own {
            m.extend(own);
        }
        json!({"spec": Value::Object(m)})
    }
}

/// The `GrafanaFolder` holding the customer's dashboards.
fn folder(place: &Placement<'_>, common: &CommonSpec<'_>, customer: &str) -> DesiredObject {
    let title = common
        .dashboards
        .folder
        .title
        .clone()
        .unwrap_or_else(|| customer.to_owned());
    place.object(
        ObjectKind::Child(ChildKind::GrafanaFolder),
        &names::folder(customer),
        common.spec(json!({"title": title})),
    )
}

/// The `GrafanaDatasource` of type prometheus, pointing at the tenant's Prometheus.
fn datasource(
    place: &Placement<'_>,
    common: &CommonSpec<'_>,
    customer: &str,
    url: &str,
    mutual_tls: bool,
) -> DesiredObject {
    let wanted = &common.dashboards.datasource;
    let mut datasource = Map::new();
    datasource.insert(
        "name".into(),
        json!(datasource_name(common.dashboards, customer)),
    );
    datasource.insert("type".into(), json!("prometheus"));
    datasource.insert("access".into(), json!("proxy"));
    datasource.insert("url".into(), json!(url));
    datasource.insert("isDefault".into(), json!(wanted.is_default));
    let mut json_data = Map::new();
    if let Some(timeout) = wanted.timeout_seconds {
        json_data.insert("timeout".into(), json!(timeout));
    }
    let tls = mutual_tls.then(|| exposure::datasource_tls(customer));
    if let Some(tls) = &tls {
        json_data.extend(tls.json_data.clone());
        datasource.insert("secureJsonData".into(), tls.secure_json_data.clone());
    }
    if !json_data.is_empty() {
        datasource.insert("jsonData".into(), Value::Object(json_data));
    }
    let mut own = json!({"datasource": Value::Object(datasource)});
    if let (Some(tls), Value::Object(own)) = (tls, &mut own) {
        own.insert("valuesFrom".into(), tls.values_from);
    }
    place.object(
        ObjectKind::Child(ChildKind::GrafanaDatasource),
        &names::datasource(customer),
        common.spec(own),
    )
}

/// The datasource's name in Grafana: `spec.dashboards.datasource.displayName`, else
/// `<customer>-prometheus`. Dashboards bind their datasource inputs to it.
fn datasource_name(dashboards: &DashboardsSpec, customer: &str) -> String {
    dashboards
        .datasource
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{customer}-prometheus"))
}

/// A `GrafanaDashboard` in the customer's folder, with the tenant's own uid
/// ([`names::dashboard_uid`]) and its datasource inputs bound to the tenant's datasource; none
/// for a dashboard without exactly one source or whose ConfigMap model is not at hand
/// (validation reports both before anything is planned). A ConfigMap's model is written inline
/// (`spec.json`): grafana-operator on the Grafana cluster cannot read the hub.
fn dashboard(
    place: &Placement<'_>,
    common: &CommonSpec<'_>,
    customer: &str,
    dashboard: &DashboardSpec,
    config_maps: &DashboardConfigMaps,
) -> Option<DesiredObject> {
    let mut own = Map::new();
    own.insert("folderRef".into(), json!(names::folder(customer)));
    own.insert(
        "uid".into(),
        json!(names::dashboard_uid(customer, &dashboard.name)),
    );
    match dashboard.source()? {
        DashboardSource::Json(json) => own.insert("json".into(), json!(json)),
        DashboardSource::Url(url) => own.insert("url".into(), json!(url)),
        DashboardSource::GrafanaCom(com) => own.insert("grafanaCom".into(), json!(com)),
        DashboardSource::ConfigMap(key) => {
            own.insert("json".into(), json!(config_maps.model(key).ok()?))
        }
    };
    let inputs = dashboard.datasource_inputs();
    if !inputs.is_empty() {
        let name = datasource_name(common.dashboards, customer);
        let bound: Vec<Value> = inputs
            .into_iter()
            .map(|input| json!({"inputName": input, "datasourceName": name}))
            .collect();
        own.insert("datasources".into(), Value::Array(bound));
    }
    Some(place.object(
        ObjectKind::Child(ChildKind::GrafanaDashboard),
        &names::dashboard(customer, &dashboard.name),
        common.spec(Value::Object(own)),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::plan_stack;
    use super::*;

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

    /// `FULL` with a dedicated Grafana instead of the shared instances.
    fn dedicated(ingress_host: Option<&str>) -> CustomerStackSpec {
        let mut s = spec(FULL);
        s.dashboards.instance_selector = None;
        s.dashboards.dedicated_grafana = Some(DedicatedGrafanaSpec {
            version: "12.1.0".into(),
            ingress_host: ingress_host.map(str::to_owned),
        });
        s
    }

    fn on_grafana_cluster(plan: &super::super::StackPlan) -> Vec<&DesiredObject> {
        plan.objects
            .iter()
            .filter(|o| o.cluster == "graf-eu")
            .collect()
    }

    #[test]
    fn a_dedicated_grafana_is_planned_before_the_children_it_receives() {
        let plan = plan_stack(&dedicated(None), &identity(), &members()).unwrap();
        let listed: Vec<String> = on_grafana_cluster(&plan)
            .iter()
            .map(|o| format!("{} {}/{}", o.kind.kind(), o.namespace, o.name))
            .collect();
        assert_eq!(
            listed,
            [
                "Namespace /customer-acme",
                "Grafana customer-acme/acme",
                "GrafanaFolder customer-acme/acme",
                "GrafanaDatasource customer-acme/acme-prometheus",
                "GrafanaDashboard customer-acme/acme-overview",
            ]
        );
        let grafana = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::Grafana))
            .unwrap();
        assert_eq!(
            grafana.manifest["apiVersion"],
            "grafana.integreatly.org/v1beta1"
        );
        assert_eq!(grafana.manifest["spec"], json!({"version": "12.1.0"}));
        let labels = &grafana.manifest["metadata"]["labels"];
        assert_eq!(labels[GRAFANA_INSTANCE], "acme");
        // Still one of the stack's objects, like every other.
        assert_eq!(labels[stacksmith_api::labels::STACK_UID], "uid-1");
        // No admin credentials of ours: grafana-operator generates them.
        assert!(
            plan.objects
                .iter()
                .all(|o| !o.manifest.to_string().contains("admin")),
            "nothing planned sets admin credentials"
        );
    }

    #[test]
    fn the_grafana_clusters_host_template_names_the_ingress_unless_the_stack_does() {
        let host_of = |plan: &super::super::StackPlan| {
            plan.objects
                .iter()
                .find(|o| o.kind == ObjectKind::Child(ChildKind::Grafana))
                .and_then(|o| {
                    o.manifest
                        .pointer("/spec/ingress/spec/rules/0/host")
                        .cloned()
                })
        };
        let mut m = members();
        m[1].grafana_ingress_host_template = Some("{customer}.grafana.eu.example".into());
        let plan = plan_stack(&dedicated(None), &identity(), &m).unwrap();
        assert_eq!(host_of(&plan), Some(json!("acme.grafana.eu.example")));
        // The stack's own host wins.
        let plan = plan_stack(&dedicated(Some("metrics.acme.example")), &identity(), &m).unwrap();
        assert_eq!(host_of(&plan), Some(json!("metrics.acme.example")));
        // Neither: no Ingress.
        let plan = plan_stack(&dedicated(None), &identity(), &members()).unwrap();
        assert_eq!(host_of(&plan), None);
        // A template that gives no DNS name is refused, naming the cluster field.
        m[1].grafana_ingress_host_template = Some("{customer}_grafana.example".into());
        let problems = plan_stack(&dedicated(None), &identity(), &m).unwrap_err();
        assert!(
            problems.iter().any(|p| p.field == "spec.dashboards.cluster"
                && p.message.contains("acme_grafana.example")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_ingress_host_routes_to_the_service_grafana_operator_creates() {
        let plan = plan_stack(
            &dedicated(Some("acme.grafana.example.com")),
            &identity(),
            &members(),
        )
        .unwrap();
        let grafana = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::Grafana))
            .unwrap();
        assert_eq!(
            grafana.manifest["spec"],
            json!({
                "version": "12.1.0",
                "ingress": {"spec": {"rules": [{
                    "host": "acme.grafana.example.com",
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "acme-service", "port": {"number": 3000}}},
                    }]},
                }]}},
            })
        );
    }

    #[test]
    fn the_children_select_the_dedicated_grafana_alone() {
        let plan = plan_stack(&dedicated(None), &identity(), &members()).unwrap();
        let children: Vec<&DesiredObject> = on_grafana_cluster(&plan)
            .into_iter()
            .filter(|o| {
                matches!(
                    o.kind,
                    ObjectKind::Child(
                        ChildKind::GrafanaFolder
                            | ChildKind::GrafanaDatasource
                            | ChildKind::GrafanaDashboard
                    )
                )
            })
            .collect();
        assert_eq!(children.len(), 3);
        for child in children {
            assert_eq!(
                child.manifest["spec"]["instanceSelector"],
                json!({"matchLabels": {"stacksmith.io/grafana-instance": "acme"}}),
                "{}",
                child.name
            );
            // Next to their instance: no import from (or into) another namespace.
            assert!(
                child.manifest["spec"]
                    .get("allowCrossNamespaceImport")
                    .is_none(),
                "{}",
                child.name
            );
            assert_eq!(child.namespace, "customer-acme");
        }
    }

    #[test]
    fn a_dedicated_grafana_follows_the_dashboards_namespace() {
        let mut s = dedicated(None);
        s.dashboards.namespace = Some("grafana-tenants".into());
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        let grafana = on_grafana_cluster(&plan);
        assert!(grafana.iter().all(|o| o.kind != ObjectKind::Namespace));
        assert_eq!(grafana[0].kind, ObjectKind::Child(ChildKind::Grafana));
        assert!(grafana.iter().all(|o| o.namespace == "grafana-tenants"));
    }

    #[test]
    fn no_grafana_is_planned_for_shared_instances() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert!(
            plan.objects
                .iter()
                .all(|o| o.kind != ObjectKind::Child(ChildKind::Grafana))
        );
        assert!(plan.objects.iter().all(|o| {
            o.manifest["metadata"]["labels"]
                .get(GRAFANA_INSTANCE)
                .is_none()
        }));
    }

    #[test]
    fn exactly_one_of_shared_and_dedicated_instances_is_required() {
        let mut neither = spec(FULL);
        neither.dashboards.instance_selector = None;
        let problems = plan_stack(&neither, &identity(), &members()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.dashboards.instanceSelector");
        assert!(
            problems[0].message.contains("set exactly one of"),
            "{}",
            problems[0].message
        );

        let mut both = dedicated(None);
        both.dashboards.instance_selector = spec(FULL).dashboards.instance_selector;
        let problems = plan_stack(&both, &identity(), &members()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.dashboards.dedicatedGrafana");
        assert!(
            problems[0].message.contains("set exactly one of"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_dashboard_sits_in_the_customer_folder() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let dashboard = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::GrafanaDashboard))
            .unwrap();
        assert_eq!(dashboard.manifest["spec"]["folderRef"], "acme");
        assert_eq!(dashboard.manifest["spec"]["json"], "{}");
        assert!(dashboard.manifest["spec"].get("url").is_none());
    }

    /// `FULL` with its one dashboard replaced by `dashboard` (YAML flow mapping).
    fn with_dashboard(dashboard: &str) -> CustomerStackSpec {
        spec(&FULL.replace("{name: overview, json: \"{}\"}", dashboard))
    }

    fn planned_dashboard(plan: &super::super::StackPlan) -> &DesiredObject {
        plan.objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::GrafanaDashboard))
            .unwrap()
    }

    #[test]
    fn a_grafana_com_dashboard_binds_ds_prometheus_to_the_tenants_datasource() {
        let s = with_dashboard("{name: nodes, grafanaCom: {id: 1860, revision: 37}}");
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        let spec = &planned_dashboard(&plan).manifest["spec"];
        assert_eq!(spec["grafanaCom"], json!({"id": 1860, "revision": 37}));
        assert!(spec.get("json").is_none() && spec.get("url").is_none());
        assert_eq!(
            spec["datasources"],
            json!([{"inputName": "DS_PROMETHEUS", "datasourceName": "acme-prometheus"}])
        );
        // Without a revision, the latest.
        let s = with_dashboard("{name: nodes, grafanaCom: {id: 1860}}");
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        assert_eq!(
            planned_dashboard(&plan).manifest["spec"]["grafanaCom"],
            json!({"id": 1860})
        );
    }

    #[test]
    fn listed_datasource_inputs_bind_to_the_datasources_display_name() {
        let mut s = with_dashboard(
            "{name: api, url: \"https://example.com/d.json\", datasources: [{inputName: DS_PROM}, {inputName: DS_THANOS}]}",
        );
        s.dashboards.datasource.display_name = Some("Acme metrics".into());
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        let spec = &planned_dashboard(&plan).manifest["spec"];
        assert_eq!(spec["url"], "https://example.com/d.json");
        assert_eq!(
            spec["datasources"],
            json!([
                {"inputName": "DS_PROM", "datasourceName": "Acme metrics"},
                {"inputName": "DS_THANOS", "datasourceName": "Acme metrics"},
            ])
        );
        let datasource = plan
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(ChildKind::GrafanaDatasource))
            .unwrap();
        assert_eq!(
            datasource.manifest["spec"]["datasource"]["name"],
            "Acme metrics"
        );
        // A listed input replaces the default of a grafana.com dashboard.
        let s = with_dashboard(
            "{name: nodes, grafanaCom: {id: 1860}, datasources: [{inputName: DS_PROM}]}",
        );
        let plan = plan_stack(&s, &identity(), &members()).unwrap();
        assert_eq!(
            planned_dashboard(&plan).manifest["spec"]["datasources"],
            json!([{"inputName": "DS_PROM", "datasourceName": "acme-prometheus"}])
        );
    }

    #[test]
    fn an_inline_dashboard_binds_no_input_unless_asked() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert!(
            planned_dashboard(&plan).manifest["spec"]
                .get("datasources")
                .is_none()
        );
    }

    #[test]
    fn a_config_map_model_is_written_inline() {
        let s = with_dashboard("{name: api, configMapRef: {name: boards, key: api.json}}");
        let mut maps = DashboardConfigMaps::none();
        maps.insert(
            "boards",
            BTreeMap::from([("api.json".to_owned(), "{\"title\":\"API\"}".to_owned())]),
        );
        let plan =
            super::super::plan_stack_with_config_maps(&s, &identity(), &members(), &maps).unwrap();
        let spec = &planned_dashboard(&plan).manifest["spec"];
        assert_eq!(spec["json"], "{\"title\":\"API\"}");
        assert!(
            spec.get("configMapRef").is_none(),
            "the hub's ConfigMap is not named"
        );
        // Without the ConfigMap, nothing is planned and the reference is the problem.
        let problems = plan_stack(&s, &identity(), &members()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].field,
            "spec.dashboards.dashboards[0].configMapRef"
        );
        assert!(
            problems[0].message.contains("\"boards\" not found"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_dashboard_carries_the_tenants_own_uid() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert_eq!(
            planned_dashboard(&plan).manifest["spec"]["uid"],
            "acme_overview"
        );
        // Another tenant's dashboard with the same model (and so the same uid in its JSON)
        // gets its own uid.
        let other = spec(&FULL.replace("customer: acme", "customer: globex"));
        let plan = plan_stack(&other, &identity(), &members()).unwrap();
        assert_eq!(
            planned_dashboard(&plan).manifest["spec"]["uid"],
            "globex_overview"
        );
        // The folder and datasource keep grafana-operator's default (their object's uid).
        assert!(plan.objects.iter().all(|o| {
            o.kind == ObjectKind::Child(ChildKind::GrafanaDashboard)
                || o.manifest["spec"].get("uid").is_none()
        }));
    }
}

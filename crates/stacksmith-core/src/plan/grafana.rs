//! The objects planned on the Grafana cluster, one builder per resource: the `GrafanaFolder`,
//! the `GrafanaDatasource` that points Grafana at the tenant's Prometheus, and one
//! `GrafanaDashboard` per dashboard (plus the tenant Namespace when the children live there).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use stacksmith_api::{CustomerStackSpec, DashboardSource, DashboardSpec, DashboardsSpec};

use super::names::{self, Placement};
use super::{DesiredObject, ObjectKind, prometheus};
use crate::health::ChildKind;

/// Everything the Grafana cluster receives, in creation order. `datasource_url` is the tenant
/// Prometheus' URL as seen from Grafana.
pub(super) fn objects(
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
    let place = Placement {
        cluster,
        namespace: &ns,
        labels,
    };
    let common = CommonSpec {
        dashboards,
        // Children in stacksmith's own tenant namespace are never next to a Grafana instance.
        cross_namespace: ns == tenant_ns,
    };
    let mut objects = Vec::new();
    if common.cross_namespace {
        objects.push(prometheus::namespace(&place));
    }
    objects.push(folder(&place, &common, customer));
    objects.push(datasource(&place, &common, customer, datasource_url));
    for dashboard in &dashboards.dashboards {
        objects.extend(self::dashboard(&place, &common, customer, dashboard));
    }
    objects
}

/// The spec fields every Grafana child shares: which instances it goes to, and whether it may
/// be imported from another namespace than theirs.
struct CommonSpec<'a> {
    dashboards: &'a DashboardsSpec,
    cross_namespace: bool,
}

impl CommonSpec<'_> {
    /// `{"spec": …}`: the shared fields, then the top-level fields of `own`.
    fn spec(&self, own: Value) -> Value {
        let mut m = Map::new();
        m.insert(
            "instanceSelector".into(),
            json!(self.dashboards.instance_selector),
        );
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
) -> DesiredObject {
    let wanted = &common.dashboards.datasource;
    let mut datasource = Map::new();
    datasource.insert(
        "name".into(),
        json!(
            wanted
                .display_name
                .clone()
                .unwrap_or_else(|| format!("{customer}-prometheus"))
        ),
    );
    datasource.insert("type".into(), json!("prometheus"));
    datasource.insert("access".into(), json!("proxy"));
    datasource.insert("url".into(), json!(url));
    datasource.insert("isDefault".into(), json!(wanted.is_default));
    if let Some(timeout) = wanted.timeout_seconds {
        datasource.insert("jsonData".into(), json!({"timeout": timeout}));
    }
    place.object(
        ObjectKind::Child(ChildKind::GrafanaDatasource),
        &names::datasource(customer),
        common.spec(json!({"datasource": Value::Object(datasource)})),
    )
}

/// A `GrafanaDashboard` in the customer's folder; none for a dashboard without exactly one
/// source (validation reports it before anything is planned).
fn dashboard(
    place: &Placement<'_>,
    common: &CommonSpec<'_>,
    customer: &str,
    dashboard: &DashboardSpec,
) -> Option<DesiredObject> {
    let source = match dashboard.source()? {
        DashboardSource::Json(json) => json!({"json": json}),
        DashboardSource::Url(url) => json!({"url": url}),
    };
    let mut own = json!({"folderRef": names::folder(customer)});
    if let (Value::Object(own), Value::Object(source)) = (&mut own, source) {
        own.extend(source);
    }
    Some(place.object(
        ObjectKind::Child(ChildKind::GrafanaDashboard),
        &names::dashboard(customer, &dashboard.name),
        common.spec(own),
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
}

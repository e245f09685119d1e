//! `spec.dashboards` as the generated CRD declares it: shared instances (`instanceSelector`) or a
//! dedicated instance (`dedicatedGrafana`), exactly one of the two.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use serde_json::{Value, json};
use stacksmith_api::validation::GRAFANA_VERSION;
use stacksmith_api::validation::cel::{ONE_GRAFANA_SOURCE, ONE_GRAFANA_SOURCE_MESSAGE};
use stacksmith_api::{CustomerStackSpec, DashboardsSpec, DedicatedGrafanaSpec};

fn dashboards_schema() -> Value {
    let crd = stacksmith_api::crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "CustomerStack")
        .expect("the CustomerStack CRD");
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref()),
    )
    .unwrap();
    schema["properties"]["spec"]["properties"]["dashboards"].clone()
}

#[test]
fn exactly_one_grafana_source_is_a_cel_rule_of_spec_dashboards() {
    let dashboards = dashboards_schema();
    assert_eq!(
        dashboards["x-kubernetes-validations"],
        json!([{"rule": ONE_GRAFANA_SOURCE, "message": ONE_GRAFANA_SOURCE_MESSAGE}])
    );
    let required: Vec<&str> = dashboards["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(required, ["cluster"], "instanceSelector is optional now");
    let dedicated = &dashboards["properties"]["dedicatedGrafana"];
    assert_eq!(dedicated["required"], json!(["version"]));
    assert_eq!(
        dedicated["properties"]["version"]["pattern"],
        GRAFANA_VERSION
    );
    assert_eq!(
        dedicated["properties"]["ingressHost"]["pattern"],
        stacksmith_api::validation::DNS1123_SUBDOMAIN
    );
}

#[test]
fn a_stack_with_shared_instances_reads_and_writes_as_before() {
    let yaml = r#"
customer: acme
metrics: {cluster: prom-eu}
dashboards:
  cluster: graf-eu
  instanceSelector: {matchLabels: {dashboards: grafana}}
"#;
    let spec: CustomerStackSpec = serde_yaml::from_str(yaml).unwrap();
    assert!(spec.dashboards.instance_selector.is_some());
    assert_eq!(spec.dashboards.dedicated_grafana, None);
    let written = serde_json::to_value(&spec.dashboards).unwrap();
    assert_eq!(
        written["instanceSelector"],
        json!({"matchLabels": {"dashboards": "grafana"}})
    );
    assert!(written.get("dedicatedGrafana").is_none());
}

#[test]
fn a_stack_with_a_dedicated_grafana_reads_and_writes_without_a_selector() {
    let dashboards: DashboardsSpec = serde_json::from_value(json!({
        "cluster": "graf-eu",
        "dedicatedGrafana": {"version": "12.1.0", "ingressHost": "acme.grafana.example.com"},
    }))
    .unwrap();
    assert_eq!(dashboards.instance_selector, None);
    assert_eq!(
        dashboards.dedicated_grafana,
        Some(DedicatedGrafanaSpec {
            version: "12.1.0".into(),
            ingress_host: Some("acme.grafana.example.com".into()),
        })
    );
    let written = serde_json::to_value(&dashboards).unwrap();
    assert!(written.get("instanceSelector").is_none());
    assert_eq!(
        written["dedicatedGrafana"],
        json!({"version": "12.1.0", "ingressHost": "acme.grafana.example.com"})
    );
}

#[test]
fn a_dashboard_has_exactly_one_of_four_sources() {
    let dashboard = &dashboards_schema()["properties"]["dashboards"]["items"];
    assert_eq!(
        dashboard["oneOf"],
        json!([
            {"required": ["json"]},
            {"required": ["url"]},
            {"required": ["grafanaCom"]},
            {"required": ["configMapRef"]},
        ])
    );
    assert_eq!(
        dashboard["properties"]["grafanaCom"]["required"],
        json!(["id"])
    );
    assert_eq!(
        dashboard["properties"]["configMapRef"]["required"],
        json!(["key", "name"])
    );
    let inputs = &dashboard["properties"]["datasources"];
    assert_eq!(inputs["x-kubernetes-list-type"], "map");
    assert_eq!(inputs["x-kubernetes-list-map-keys"], json!(["inputName"]));
}

#[test]
fn the_typed_source_and_the_default_input_follow_the_fields() {
    use stacksmith_api::{DashboardSource, DashboardSpec, GrafanaComDashboard};
    let read = |value: Value| serde_json::from_value::<DashboardSpec>(value).unwrap();
    let com = read(json!({"name": "nodes", "grafanaCom": {"id": 1860}}));
    assert_eq!(
        com.source(),
        Some(DashboardSource::GrafanaCom(&GrafanaComDashboard {
            id: 1860,
            revision: None
        }))
    );
    assert_eq!(com.datasource_inputs(), ["DS_PROMETHEUS"]);
    let listed = read(json!({"name": "nodes", "grafanaCom": {"id": 1860},
                             "datasources": [{"inputName": "DS_PROM"}]}));
    assert_eq!(listed.datasource_inputs(), ["DS_PROM"]);
    let from_map =
        read(json!({"name": "api", "configMapRef": {"name": "boards", "key": "api.json"}}));
    assert!(
        matches!(from_map.source(), Some(DashboardSource::ConfigMap(k)) if k.key == "api.json")
    );
    assert!(from_map.datasource_inputs().is_empty());
    let two = read(json!({"name": "x", "json": "{}", "grafanaCom": {"id": 1}}));
    assert_eq!(two.source(), None);
}

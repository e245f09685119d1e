//! Inputs shared by the planning tests: two member clusters (one per role), a stack identity,
//! and a spec that plans one object of every kind.

use stacksmith_api::{ClusterRole, CustomerStackSpec};

use super::{MemberInfo, StackIdentity};

/// `prom-eu` (prometheus role, with a URL template) and `graf-eu` (grafana role).
pub(super) fn members() -> Vec<MemberInfo> {
    vec![
        MemberInfo {
            name: "prom-eu".into(),
            roles: vec![ClusterRole::Prometheus],
            prometheus_url_template: Some("https://{name}.{namespace}.prom-eu.example:9090".into()),
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        },
        MemberInfo {
            name: "graf-eu".into(),
            roles: vec![ClusterRole::Grafana],
            prometheus_url_template: None,
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        },
    ]
}

/// The stack `team-a/acme`.
pub(super) fn identity() -> StackIdentity {
    StackIdentity {
        namespace: "team-a".into(),
        name: "acme".into(),
        uid: "uid-1".into(),
    }
}

/// A spec from YAML.
pub(super) fn spec(yaml: &str) -> CustomerStackSpec {
    serde_yaml::from_str(yaml).unwrap()
}

/// A stack with one scrape target, one alerting group and one dashboard.
pub(super) const FULL: &str = r#"
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

//! The planned data path from Grafana to a tenant's Prometheus, for a Prometheus cluster whose
//! `MemberCluster` sets `spec.prometheusExposure`: on the Prometheus cluster, in the tenant
//! namespace, the Secret with the Prometheus' serving certificate and its tenant's client CA,
//! a NetworkPolicy that admits only the exposure's sources to the Prometheus pods, and the
//! Service Grafana connects to; on the Grafana cluster, next to the datasource, the Secret with
//! the datasource's client certificate. The Prometheus' `spec.web.tlsConfig` and the
//! datasource's TLS settings (`plan/prometheus.rs`, `plan/grafana.rs`) name these Secrets.
//!
//! The Secrets are planned without their `data`: the material is issued and rotated by the
//! controller and attached to the plan by [`super::StackPlan::attach_credentials`], so that no
//! key passes through planning, rendering or diffing.

use serde_json::{Map, Value, json};
use stacksmith_api::{ExposureType, NetworkSource, PrometheusExposure};

use super::names::{self, Placement};
use super::{DesiredObject, ObjectKind};

/// The Prometheus' web port (prometheus-operator names it `web`).
const PROMETHEUS_WEB_PORT: u16 = 9090;

/// The keys of the Prometheus' Secret (those of a `kubernetes.io/tls` Secret, and the CA).
pub mod server_keys {
    /// The serving certificate (PEM).
    pub const CERT: &str = "tls.crt";
    /// Its private key (PEM).
    pub const KEY: &str = "tls.key";
    /// The CAs whose client certificates are accepted (PEM).
    pub const CLIENT_CA: &str = "ca.crt";
}

/// The keys of the datasource's Secret: named as grafana-operator's `valuesFrom` substitutes
/// them (`${TLS_CLIENT_CERT}`).
pub mod client_keys {
    /// The CAs the datasource trusts for the Prometheus' certificate (PEM).
    pub const CA: &str = "TLS_CA_CERT";
    /// The client certificate (PEM).
    pub const CERT: &str = "TLS_CLIENT_CERT";
    /// Its private key (PEM).
    pub const KEY: &str = "TLS_CLIENT_KEY";
}

/// The host Grafana connects to: the exposure's `hostTemplate` with `{service}`,
/// `{namespace}` and `{customer}` filled in, by default `{service}.{namespace}.svc`.
pub fn host(exposure: &PrometheusExposure, customer: &str) -> String {
    exposure
        .host_template
        .as_deref()
        .unwrap_or("{service}.{namespace}.svc")
        .replace("{service}", &names::prometheus_service(customer))
        .replace("{namespace}", &names::tenant_namespace(customer))
        .replace("{customer}", customer)
}

/// The URL of the tenant's Prometheus through the exposure.
pub fn url(exposure: &PrometheusExposure, customer: &str) -> String {
    format!("https://{}:{}", host(exposure, customer), exposure.port)
}

/// The Secret holding the Prometheus' serving certificate and its client CA.
pub(super) fn server_secret(place: &Placement<'_>, customer: &str) -> DesiredObject {
    place.object(
        ObjectKind::Secret,
        &names::prometheus_tls_secret(customer),
        json!({"type": "Opaque"}),
    )
}

/// The Secret holding the datasource's client certificate, next to the datasource.
pub(super) fn client_secret(place: &Placement<'_>, customer: &str) -> DesiredObject {
    place.object(
        ObjectKind::Secret,
        &names::datasource_tls_secret(customer),
        json!({"type": "Opaque"}),
    )
}

/// The labels prometheus-operator puts on the pods of the `Prometheus` named `name`.
fn prometheus_pods(name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "prometheus",
        "operator.prometheus.io/name": name,
    })
}

/// The Service Grafana connects to, selecting the tenant's Prometheus pods.
pub(super) fn service(
    place: &Placement<'_>,
    customer: &str,
    exposure: &PrometheusExposure,
) -> DesiredObject {
    let mut object = place.object(
        ObjectKind::Service,
        &names::prometheus_service(customer),
        json!({"spec": {
            "type": match exposure.service_type {
                ExposureType::ClusterIP => "ClusterIP",
                ExposureType::LoadBalancer => "LoadBalancer",
            },
            "selector": prometheus_pods(&names::prometheus(customer)),
            "ports": [{
                "name": "web",
                "port": exposure.port,
                "targetPort": "web",
                "protocol": "TCP",
            }],
        }}),
    );
    if !exposure.service_annotations.is_empty() {
        let annotations: Map<String, Value> = exposure
            .service_annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.replace("{customer}", customer))))
            .collect();
        if let Some(Value::Object(metadata)) = object.manifest.get_mut("metadata") {
            // Kept apart from the planned-hash annotation, which is stamped later: see
            // `names::stamp_planned_hash`.
            metadata.insert("annotations".into(), Value::Object(annotations));
        }
    }
    object
}

/// The NetworkPolicy of the tenant namespace: the Prometheus pods admit connections to their
/// web port from the exposure's sources only (and nothing at all when it lists none).
pub(super) fn network_policy(
    place: &Placement<'_>,
    customer: &str,
    exposure: &PrometheusExposure,
) -> DesiredObject {
    let from: Vec<Value> = exposure.allowed_sources.iter().map(peer).collect();
    let ingress = if from.is_empty() {
        json!([])
    } else {
        json!([{
            "from": from,
            "ports": [{"protocol": "TCP", "port": PROMETHEUS_WEB_PORT}],
        }])
    };
    place.object(
        ObjectKind::NetworkPolicy,
        &names::prometheus_network_policy(customer),
        json!({"spec": {
            "podSelector": {"matchLabels": prometheus_pods(&names::prometheus(customer))},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        }}),
    )
}

/// One NetworkPolicy peer.
fn peer(source: &NetworkSource) -> Value {
    let mut peer = Map::new();
    if let Some(cidr) = &source.cidr {
        peer.insert("ipBlock".into(), json!({"cidr": cidr}));
    }
    if let Some(namespaces) = &source.namespace_selector {
        peer.insert(
            "namespaceSelector".into(),
            json!({"matchLabels": namespaces}),
        );
    }
    if let Some(pods) = &source.pod_selector {
        peer.insert("podSelector".into(), json!({"matchLabels": pods}));
    }
    Value::Object(peer)
}

/// The Prometheus' `spec.web`: TLS with the planned serving certificate, and only client
/// certificates of the tenant's CA accepted.
pub(super) fn web_tls(customer: &str) -> Value {
    let secret = names::prometheus_tls_secret(customer);
    json!({"tlsConfig": {
        "cert": {"secret": {"name": secret, "key": server_keys::CERT}},
        "keySecret": {"name": secret, "key": server_keys::KEY},
        "client_ca": {"secret": {"name": secret, "key": server_keys::CLIENT_CA}},
        "clientAuthType": "RequireAndVerifyClientCert",
    }})
}

/// What the datasource gets for mutual TLS: `jsonData` flags, `secureJsonData` placeholders and
/// the `valuesFrom` that fill them from the datasource's Secret.
pub(super) struct DatasourceTls {
    /// Merged into `datasource.jsonData`.
    pub json_data: Map<String, Value>,
    /// `datasource.secureJsonData`.
    pub secure_json_data: Value,
    /// The GrafanaDatasource's `spec.valuesFrom`.
    pub values_from: Value,
}

/// The datasource's TLS settings, reading the Secret [`client_secret`] plans.
pub(super) fn datasource_tls(customer: &str) -> DatasourceTls {
    let secret = names::datasource_tls_secret(customer);
    let mut json_data = Map::new();
    json_data.insert("tlsAuth".into(), json!(true));
    json_data.insert("tlsAuthWithCACert".into(), json!(true));
    let fields = [
        ("tlsCACert", client_keys::CA),
        ("tlsClientCert", client_keys::CERT),
        ("tlsClientKey", client_keys::KEY),
    ];
    let secure: Map<String, Value> = fields
        .iter()
        .map(|(field, key)| ((*field).to_owned(), json!(format!("${{{key}}}"))))
        .collect();
    let values_from: Vec<Value> = fields
        .iter()
        .map(|(field, key)| {
            json!({
                "targetPath": format!("secureJsonData.{field}"),
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
            })
        })
        .collect();
    DatasourceTls {
        json_data,
        secure_json_data: Value::Object(secure),
        values_from: json!(values_from),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stacksmith_api::PrometheusExposure;

    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::{MemberInfo, ObjectKind, StackPlan, plan_stack};
    use crate::ChildKind;
    use crate::credentials::TenantCredentials;

    fn exposure(yaml: &str) -> PrometheusExposure {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn exposed(yaml: &str) -> Vec<MemberInfo> {
        let mut m = members();
        m[0].prometheus_url_template = None;
        m[0].prometheus_exposure = Some(exposure(yaml));
        m
    }

    fn object<'p>(plan: &'p StackPlan, kind: ObjectKind, name: &str) -> &'p serde_json::Value {
        &plan
            .objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
            .unwrap_or_else(|| panic!("no {kind:?} {name}"))
            .manifest
    }

    const CLUSTER_IP: &str = r#"
type: ClusterIP
allowedSources:
- namespaceSelector: {kubernetes.io/metadata.name: grafana}
- cidr: 203.0.113.0/28
"#;

    #[test]
    fn an_exposed_cluster_plans_secrets_policy_and_service_in_creation_order() {
        let plan = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let listed: Vec<String> = plan
            .objects
            .iter()
            .map(|o| format!("{} {} {}", o.cluster, o.kind.kind(), o.name))
            .collect();
        assert_eq!(
            listed,
            [
                "prom-eu Namespace customer-acme",
                "prom-eu Secret acme-prometheus-tls",
                "prom-eu NetworkPolicy acme-prometheus",
                "prom-eu ServiceAccount prometheus-acme",
                "prom-eu Role prometheus-acme",
                "prom-eu RoleBinding prometheus-acme",
                "prom-eu Service acme-prometheus",
                "prom-eu Prometheus acme",
                "prom-eu PrometheusRule acme-core",
                "prom-eu ServiceMonitor acme-api",
                "graf-eu Namespace customer-acme",
                "graf-eu GrafanaFolder acme",
                "graf-eu Secret acme-datasource-tls",
                "graf-eu GrafanaDatasource acme-prometheus",
                "graf-eu GrafanaDashboard acme-overview",
            ]
        );
        assert_eq!(plan.tls_server_names, ["acme-prometheus.customer-acme.svc"]);
    }

    #[test]
    fn the_service_selects_the_tenants_prometheus_pods() {
        let plan = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let service = object(&plan, ObjectKind::Service, "acme-prometheus");
        assert_eq!(
            service["spec"],
            json!({
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "acme"},
                "ports": [{"name": "web", "port": 9090, "targetPort": "web", "protocol": "TCP"}],
            })
        );
    }

    #[test]
    fn the_network_policy_admits_only_the_listed_sources_to_the_web_port() {
        let plan = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let policy = object(&plan, ObjectKind::NetworkPolicy, "acme-prometheus");
        assert_eq!(
            policy["spec"],
            json!({
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "acme"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "grafana"}}},
                        {"ipBlock": {"cidr": "203.0.113.0/28"}},
                    ],
                    "ports": [{"protocol": "TCP", "port": 9090}],
                }],
            })
        );
        let closed = plan_stack(&spec(FULL), &identity(), &exposed("type: ClusterIP")).unwrap();
        let policy = object(&closed, ObjectKind::NetworkPolicy, "acme-prometheus");
        assert_eq!(
            policy["spec"]["ingress"],
            json!([]),
            "no source: nothing admitted"
        );
    }

    #[test]
    fn the_prometheus_serves_tls_and_requires_its_tenants_client_certificates() {
        let plan = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let prometheus = object(&plan, ObjectKind::Child(ChildKind::Prometheus), "acme");
        assert_eq!(
            prometheus["spec"]["web"],
            json!({"tlsConfig": {
                "cert": {"secret": {"name": "acme-prometheus-tls", "key": "tls.crt"}},
                "keySecret": {"name": "acme-prometheus-tls", "key": "tls.key"},
                "client_ca": {"secret": {"name": "acme-prometheus-tls", "key": "ca.crt"}},
                "clientAuthType": "RequireAndVerifyClientCert",
            }})
        );
    }

    #[test]
    fn the_datasource_takes_its_certificate_from_its_secret_through_values_from() {
        let plan = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let datasource = object(
            &plan,
            ObjectKind::Child(ChildKind::GrafanaDatasource),
            "acme-prometheus",
        );
        let spec = &datasource["spec"];
        assert_eq!(
            spec["datasource"]["url"],
            "https://acme-prometheus.customer-acme.svc:9090"
        );
        assert_eq!(
            spec["datasource"]["jsonData"],
            json!({"tlsAuth": true, "tlsAuthWithCACert": true})
        );
        assert_eq!(
            spec["datasource"]["secureJsonData"],
            json!({
                "tlsCACert": "${TLS_CA_CERT}",
                "tlsClientCert": "${TLS_CLIENT_CERT}",
                "tlsClientKey": "${TLS_CLIENT_KEY}",
            })
        );
        assert_eq!(
            spec["valuesFrom"][1],
            json!({"targetPath": "secureJsonData.tlsClientCert",
                "valueFrom": {"secretKeyRef": {"name": "acme-datasource-tls", "key": "TLS_CLIENT_CERT"}}})
        );
        assert_eq!(spec["valuesFrom"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_cluster_with_a_url_template_plans_no_data_path() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert!(!plan.objects.iter().any(|o| o.kind.is_data_path()));
        assert!(plan.tls_server_names.is_empty());
        let prometheus = object(&plan, ObjectKind::Child(ChildKind::Prometheus), "acme");
        assert!(prometheus["spec"].get("web").is_none());
    }

    #[test]
    fn a_load_balancer_is_reached_by_its_host_and_carries_the_annotations() {
        let members = exposed(
            r#"
type: LoadBalancer
hostTemplate: "{customer}.prometheus.example.com"
port: 443
serviceAnnotations: {external-dns.alpha.kubernetes.io/hostname: "{customer}.prometheus.example.com"}
"#,
        );
        let plan = plan_stack(&spec(FULL), &identity(), &members).unwrap();
        assert_eq!(plan.tls_server_names, ["acme.prometheus.example.com"]);
        let service = object(&plan, ObjectKind::Service, "acme-prometheus");
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        assert_eq!(service["spec"]["ports"][0]["port"], 443);
        let annotations = &service["metadata"]["annotations"];
        assert_eq!(
            annotations["external-dns.alpha.kubernetes.io/hostname"],
            "acme.prometheus.example.com"
        );
        assert!(annotations["stacksmith.io/planned-hash"].is_string());
        let datasource = object(
            &plan,
            ObjectKind::Child(ChildKind::GrafanaDatasource),
            "acme-prometheus",
        );
        assert_eq!(
            datasource["spec"]["datasource"]["url"],
            "https://acme.prometheus.example.com:443"
        );
    }

    #[test]
    fn a_stacks_own_url_wins_and_its_host_joins_the_certificate() {
        let yaml =
            format!("{FULL}  datasource: {{url: \"https://acme.metrics.example.net/prom\"}}\n");
        let plan = plan_stack(&spec(&yaml), &identity(), &exposed(CLUSTER_IP)).unwrap();
        assert_eq!(
            plan.tls_server_names,
            [
                "acme-prometheus.customer-acme.svc",
                "acme.metrics.example.net"
            ]
        );
        let plain = format!("{FULL}  datasource: {{url: \"http://10.0.0.1:9090\"}}\n");
        let problems = plan_stack(&spec(&plain), &identity(), &exposed(CLUSTER_IP)).unwrap_err();
        assert_eq!(problems[0].field, "spec.dashboards.datasource.url");
        let unexposed = plan_stack(&spec(&plain), &identity(), &members()).unwrap();
        let datasource = object(
            &unexposed,
            ObjectKind::Child(ChildKind::GrafanaDatasource),
            "acme-prometheus",
        );
        assert_eq!(
            datasource["spec"]["datasource"]["url"],
            "http://10.0.0.1:9090"
        );
    }

    #[test]
    fn a_host_template_that_gives_no_dns_name_is_a_problem_of_the_cluster() {
        let members = exposed("hostTemplate: \"{tenant}.example.com\"");
        let problems = plan_stack(&spec(FULL), &identity(), &members).unwrap_err();
        assert_eq!(problems[0].field, "spec.metrics.cluster");
        assert!(
            problems[0].message.contains("not a DNS name"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn attached_credentials_fill_the_secrets_and_move_only_their_hash() {
        let credentials = |serial: &str| TenantCredentials {
            serial: serial.into(),
            ca_cert_pem: "-----BEGIN CA".into(),
            server_cert_pem: "-----BEGIN S".into(),
            server_key_pem: "-----BEGIN SK".into(),
            client_cert_pem: "-----BEGIN C".into(),
            client_key_pem: "-----BEGIN CK".into(),
        };
        let planned = plan_stack(&spec(FULL), &identity(), &exposed(CLUSTER_IP)).unwrap();
        let mut first = planned.clone();
        first.attach_credentials(&credentials("one"));
        let mut again = planned.clone();
        again.attach_credentials(&credentials("one"));
        let mut rotated = planned;
        rotated.attach_credentials(&credentials("two"));
        let hash = |plan: &StackPlan, name: &str| {
            object(plan, ObjectKind::Secret, name)["metadata"]["annotations"]
                ["stacksmith.io/planned-hash"]
                .clone()
        };
        for name in ["acme-prometheus-tls", "acme-datasource-tls"] {
            assert_eq!(hash(&first, name), hash(&again, name));
            assert_ne!(hash(&first, name), hash(&rotated, name), "{name}");
        }
        let server = object(&first, ObjectKind::Secret, "acme-prometheus-tls");
        assert_eq!(server["data"]["tls.key"], "LS0tLS1CRUdJTiBTSw==");
        let client = object(&first, ObjectKind::Secret, "acme-datasource-tls");
        assert_eq!(client["data"]["TLS_CLIENT_KEY"], "LS0tLS1CRUdJTiBDSw==");
        // Everything else is as planned.
        let others = |plan: &StackPlan| -> Vec<serde_json::Value> {
            plan.objects
                .iter()
                .filter(|o| o.kind != ObjectKind::Secret)
                .map(|o| o.manifest.clone())
                .collect()
        };
        assert_eq!(others(&first), others(&rotated));
    }
}

//! `MemberCluster`: one registered remote cluster (cluster-scoped).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::cel::{
    PROMETHEUS_NEEDS_URL_TEMPLATE, PROMETHEUS_NEEDS_URL_TEMPLATE_FIELD,
    PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE,
};
use crate::validation::{DNS1123_LABEL, DNS1123_SUBDOMAIN};

/// A remote cluster that stacksmith writes children into.
///
/// The cluster's credentials are a kubeconfig stored in a Secret on the hub; the cluster serves
/// one or more roles (it runs prometheus-operator, grafana-operator, or both).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "stacksmith.io",
    version = "v1alpha1",
    kind = "MemberCluster",
    status = "MemberClusterStatus",
    shortname = "mc",
    category = "stacksmith",
    doc = "A remote cluster registered with stacksmith: its credentials, the roles it serves and how its Prometheus instances are reached.",
    printcolumn = r#"{"name":"Roles","type":"string","jsonPath":".spec.roles"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.serverVersion"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(PROMETHEUS_NEEDS_URL_TEMPLATE)
    .field_path(PROMETHEUS_NEEDS_URL_TEMPLATE_FIELD)
    .reason(Reason::FieldValueRequired)
    .message(PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterSpec {
    /// The Secret on the hub that holds this cluster's kubeconfig.
    pub kubeconfig_secret_ref: SecretKeyReference,

    /// The roles this cluster serves: `prometheus` (runs prometheus-operator) and/or `grafana`
    /// (runs grafana-operator v5), each at most once.
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub roles: Vec<ClusterRole>,

    /// How Grafana reaches a tenant's Prometheus on this cluster. Placeholders: `{namespace}`
    /// (the tenant namespace), `{name}` (the Prometheus object's name) and `{customer}`.
    /// Required when the cluster serves the `prometheus` role.
    /// Example: `http://{name}.{namespace}.svc.prometheus.example.com:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub prometheus_url_template: Option<String>,

    /// The Alertmanagers that the tenants' Prometheus on this cluster send their alerts to
    /// (prometheus role only): Services of this cluster, run by the platform (an `Alertmanager`
    /// of prometheus-operator whose `alertmanagerConfigSelector` selects the label
    /// `app.kubernetes.io/managed-by: stacksmith`). A stack with `alertDelivery` needs one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub alertmanagers: Vec<AlertmanagerEndpoint>,

    /// Timeout of every request to this cluster, in seconds.
    #[serde(default = "default_request_timeout_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub request_timeout_seconds: u32,
}

fn default_request_timeout_seconds() -> u32 {
    10
}

/// An Alertmanager Service, as prometheus-operator's `alerting.alertmanagers` names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerEndpoint {
    /// Namespace of the Service.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Service (for an `Alertmanager` named `main`: `alertmanager-operated`, or a
    /// Service of the platform's own).
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Name of the Service port (default `web`).
    #[serde(default = "default_alertmanager_port")]
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 15))]
    pub port: String,
    /// The HTTP path prefix Alertmanager serves under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^/[^\\s]*$"), length(min = 1, max = 253))]
    pub path_prefix: Option<String>,
}

fn default_alertmanager_port() -> String {
    "web".to_owned()
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Namespace of the Secret.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data whose value is the kubeconfig.
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(regex(pattern = "^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_owned()
}

/// A role a member cluster serves.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ClusterRole {
    /// Runs prometheus-operator: receives `Prometheus`, `PrometheusRule` and `ServiceMonitor`.
    Prometheus,
    /// Runs grafana-operator v5: receives `GrafanaFolder`, `GrafanaDatasource` and
    /// `GrafanaDashboard`.
    Grafana,
}

impl ClusterRole {
    /// The name used in the API (`prometheus`, `grafana`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterRole::Prometheus => "prometheus",
            ClusterRole::Grafana => "grafana",
        }
    }
}

/// What stacksmith last learned about the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reachable`, `CredentialsValid` and `ChildCrdsPresent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The cluster's Kubernetes version (`gitVersion`) as last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// When a probe last changed this status. Probes that find nothing new write nothing, so
    /// an idle operator issues no writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// The identity of the cluster behind this registration: the uid of its `kube-system`
    /// namespace. Two `MemberCluster`s with the same identity reach one physical cluster; the
    /// later one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_identity: Option<String>,
}

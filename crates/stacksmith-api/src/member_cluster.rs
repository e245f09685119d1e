//! `MemberCluster`: one registered remote cluster (cluster-scoped).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::bounds::TENANT_QUOTA_MAX_PROPERTIES;
use crate::validation::cel::{
    LOAD_BALANCER_NEEDS_HOST, LOAD_BALANCER_NEEDS_HOST_MESSAGE, ONE_PROMETHEUS_REACH,
    ONE_PROMETHEUS_REACH_MESSAGE, ONLY_CPU_AND_MEMORY, ONLY_CPU_AND_MEMORY_MESSAGE,
    PROMETHEUS_NEEDS_URL_TEMPLATE, PROMETHEUS_NEEDS_URL_TEMPLATE_FIELD,
    PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE, QUOTA_RESOURCE_NAMES, QUOTA_RESOURCE_NAMES_MESSAGE,
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
#[x_kube(validation = Rule::new(ONE_PROMETHEUS_REACH).message(ONE_PROMETHEUS_REACH_MESSAGE))]
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

    /// How Grafana reaches a tenant's Prometheus on this cluster when stacksmith plans the way
    /// (prometheus role; instead of `prometheusUrlTemplate`): a Service of stacksmith's in each
    /// tenant namespace, a NetworkPolicy that admits only `allowedSources` to the Prometheus,
    /// and mutual TLS: the Prometheus serves a certificate stacksmith issues per tenant and
    /// accepts only that tenant's client certificate, which stacksmith delivers to the
    /// datasource on the Grafana cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_exposure: Option<PrometheusExposure>,

    /// The Alertmanagers that the tenants' Prometheus on this cluster send their alerts to
    /// (prometheus role only): Services of this cluster, run by the platform (an `Alertmanager`
    /// of prometheus-operator whose `alertmanagerConfigSelector` selects the label
    /// `app.kubernetes.io/managed-by: stacksmith`). A stack with `alertDelivery` needs one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub alertmanagers: Vec<AlertmanagerEndpoint>,

    /// A quota and container defaults for every tenant namespace (`customer-<customer>`) that
    /// stacksmith creates on this cluster: `hard` becomes a `ResourceQuota` and
    /// `containerDefaults` a `LimitRange`, both named `stacksmith-tenant`, written into the
    /// namespace before anything else. Only namespaces stacksmith owns get them: on a Grafana
    /// cluster, not the namespace a stack names in `spec.dashboards.namespace`. Removing it (or
    /// one of its two parts) deletes the objects again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_quota: Option<TenantQuota>,

    /// The host at which each customer's own Grafana on this cluster is reached (grafana role):
    /// an Ingress host with the placeholder `{customer}`, e.g. `{customer}.grafana.example.com`.
    /// A stack's `dedicatedGrafana.ingressHost` overrides it; without either, no Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub grafana_ingress_host_template: Option<String>,

    /// Timeout of every request to this cluster, in seconds.
    #[serde(default = "default_request_timeout_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub request_timeout_seconds: u32,
}

/// How the tenants' Prometheus on a cluster are exposed to Grafana.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(LOAD_BALANCER_NEEDS_HOST).message(LOAD_BALANCER_NEEDS_HOST_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct PrometheusExposure {
    /// The Service's type: `ClusterIP` (Grafana runs in the same cluster, or the clusters share
    /// a flat network) or `LoadBalancer` (the platform's DNS leads `hostTemplate` to it).
    #[serde(rename = "type", default)]
    pub service_type: ExposureType,
    /// The host name Grafana connects to, with the placeholders `{service}` (the Service's
    /// name), `{namespace}` (the tenant namespace) and `{customer}`; it is also the name in the
    /// Prometheus' serving certificate. Default for `ClusterIP`: `{service}.{namespace}.svc`;
    /// required for `LoadBalancer`, e.g. `{customer}.prometheus.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host_template: Option<String>,
    /// The port the Service serves (default 9090).
    #[serde(default = "default_exposure_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Annotations on each Service, e.g. for a load-balancer controller or external-dns; values
    /// may use `{customer}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub service_annotations: BTreeMap<String, String>,
    /// Who may open connections to a tenant's Prometheus: the peers of the NetworkPolicy in each
    /// tenant namespace (the Grafana cluster's egress addresses, the namespace of a Grafana in
    /// this cluster). Empty: nothing may (the Prometheus is then reachable by no one until the
    /// platform lists its sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_sources: Vec<NetworkSource>,
}

fn default_exposure_port() -> u16 {
    9090
}

/// The Service type of an exposure.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExposureType {
    /// A cluster-internal Service (same cluster, or a flat network between clusters).
    #[default]
    ClusterIP,
    /// A Service of type `LoadBalancer`.
    LoadBalancer,
}

/// One peer allowed to reach the tenants' Prometheus: exactly one of `cidr` and
/// `namespaceSelector` (with an optional `podSelector`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["cidr"]}, {"required": ["namespaceSelector"]}]))]
pub struct NetworkSource {
    /// An address range, e.g. the Grafana cluster's egress `203.0.113.0/28`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: Option<String>,
    /// Namespaces of this cluster, by their labels, e.g. `kubernetes.io/metadata.name: grafana`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// Pods within those namespaces, by their labels (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<BTreeMap<String, String>>,
}

/// What each tenant namespace on a cluster may use, and what a container gets when it asks for
/// nothing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuota {
    /// The `ResourceQuota`'s `hard` limits: what all pods and objects of one tenant namespace
    /// may use together, e.g. `requests.cpu: "4"`, `limits.memory: 16Gi`, `requests.storage:
    /// 200Gi`, `persistentvolumeclaims: "4"`, `pods: "10"`. Keys are Kubernetes' quota names:
    /// the standard ones, `count/<resource>` and the per-StorageClass
    /// `<class>.storageclass.storage.k8s.io/requests.storage` (or `/persistentvolumeclaims`).
    /// A pod that would go over is refused; a quota on `requests.*` or `limits.*` of cpu or
    /// memory also refuses pods that do not set them, so set `containerDefaults` with it. No
    /// `ResourceQuota` when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = TENANT_QUOTA_MAX_PROPERTIES))]
    #[x_kube(validation = Rule::new(QUOTA_RESOURCE_NAMES).message(QUOTA_RESOURCE_NAMES_MESSAGE))]
    pub hard: BTreeMap<String, Quantity>,

    /// Container defaults and bounds, as a `LimitRange` with one item of type `Container`: the
    /// requests and limits a container gets when it sets none, and the most and least it may
    /// set. A stack whose `spec.metrics.resources` falls outside `min`..`max` is refused before
    /// anything is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_defaults: Option<ContainerDefaults>,
}

/// The `Container` item of the tenant namespace's `LimitRange`: `cpu` and `memory` only. The
/// API server wants `min` <= `defaultRequest` <= `default` <= `max` for each resource set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefaults {
    /// The limits a container gets when it sets none, e.g. `memory: 512Mi` (a container that
    /// sets a limit keeps its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub default: BTreeMap<String, Quantity>,
    /// The requests a container gets when it sets none, e.g. `cpu: 100m`, `memory: 256Mi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub default_request: BTreeMap<String, Quantity>,
    /// The most a container may request or be limited to, e.g. `memory: 8Gi`. A container must
    /// then have a limit of that resource (from `default` if it sets none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub max: BTreeMap<String, Quantity>,
    /// The least a container may request, e.g. `cpu: 10m`. A container must then have a
    /// request of that resource (from `defaultRequest` if it sets none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub min: BTreeMap<String, Quantity>,
}

impl ContainerDefaults {
    /// Whether nothing is set (no `LimitRange` is planned then).
    pub fn is_empty(&self) -> bool {
        self.default.is_empty()
            && self.default_request.is_empty()
            && self.max.is_empty()
            && self.min.is_empty()
    }
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

//! `CustomerStack`: one client's monitoring stack, spread over a Prometheus cluster and a
//! Grafana cluster (namespaced, lives on the hub).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{
    api::resource::Quantity,
    apis::meta::v1::{Condition, LabelSelector, Time},
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::bounds::{
    DASHBOARD_JSON_MAX_LENGTH, RULE_EXPR_MAX_LENGTH, RULE_MAP_MAX_PROPERTIES,
    SCRAPE_NAMESPACES_MAX_ITEMS,
};
use crate::validation::cel::{
    CUSTOMER_IMMUTABLE_MESSAGE, IMMUTABLE, ONLY_CPU_AND_MEMORY, ONLY_CPU_AND_MEMORY_MESSAGE,
};
use crate::validation::{DNS1123_LABEL, DNS1123_SUBDOMAIN, PROMETHEUS_DURATION};

/// A client's monitoring stack: a Prometheus with its rules and scrape targets on one member
/// cluster, a Grafana folder, datasource and dashboards on another.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "stacksmith.io",
    version = "v1alpha1",
    kind = "CustomerStack",
    namespaced,
    status = "CustomerStackStatus",
    shortname = "cstack",
    category = "stacksmith",
    doc = "One client's monitoring stack: Prometheus kinds on a Prometheus member cluster, Grafana kinds on a Grafana member cluster, their health aggregated here.",
    printcolumn = r#"{"name":"Customer","type":"string","jsonPath":".spec.customer"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Children","type":"string","jsonPath":".status.childrenReady","description":"children Healthy / children planned"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CustomerStackSpec {
    /// The customer id (a DNS-1123 label of at most 40 characters). It names the tenant: two
    /// stacks with the same customer id would share children, so it must be unique. Immutable:
    /// to move a stack to another customer, delete it and create it again.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 40))]
    #[x_kube(validation = Rule::new(IMMUTABLE).message(CUSTOMER_IMMUTABLE_MESSAGE))]
    pub customer: String,

    /// The Prometheus part of the stack.
    pub metrics: MetricsSpec,

    /// The Grafana part of the stack.
    pub dashboards: DashboardsSpec,

    /// When true, stacksmith writes nothing for this stack (no create, update or delete) but
    /// keeps reporting its children's health.
    #[serde(default)]
    pub paused: bool,

    /// What happens to the children when the stack is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to a stack's children when the stack is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete every child in every cluster, then release the stack.
    #[default]
    Delete,
    /// Leave the children in place and release the stack at once.
    Orphan,
}

/// The Prometheus part of a stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// The `MemberCluster` (serving the `prometheus` role) that runs this customer's Prometheus.
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub cluster: String,

    /// Number of Prometheus replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 10))]
    pub replicas: i32,

    /// How long samples are kept (a Prometheus duration such as `15d` or `12h`).
    #[serde(default = "default_retention")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION), length(min = 1, max = 32))]
    pub retention: String,

    /// Compute resources of each Prometheus replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,

    /// What this Prometheus scrapes: each entry becomes a `ServiceMonitor`. Names are unique
    /// (a list map keyed by `name`: server-side apply merges entries by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub scrape: Vec<ScrapeTarget>,

    /// Alerting rules: each group becomes a `PrometheusRule`. Names are unique (a list map
    /// keyed by `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub alerting_rules: Vec<AlertRuleGroup>,

    /// Recording rules: each group becomes a `PrometheusRule`, like an alerting-rule group. Names
    /// are unique (a list map keyed by `name`), and not used by an alerting-rule group as well
    /// (both name a `PrometheusRule` `<customer>-<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub recording_rules: Vec<RecordingRuleGroup>,
}

fn default_replicas() -> i32 {
    1
}

fn default_retention() -> String {
    "15d".to_owned()
}

/// Requests and limits of a container: `cpu` and `memory` only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct ComputeResources {
    /// Minimum resources, e.g. `cpu: 500m`, `memory: 2Gi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub requests: BTreeMap<String, Quantity>,
    /// Maximum resources, e.g. `memory: 4Gi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub limits: BTreeMap<String, Quantity>,
}

/// A set of Services to scrape (becomes a `ServiceMonitor`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeTarget {
    /// Name of this scrape target, unique within the stack.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Selects the Services to scrape.
    pub selector: LabelSelector,
    /// Namespaces to look for the Services in; empty means the tenant namespace only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = SCRAPE_NAMESPACES_MAX_ITEMS),
        inner(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))
    )]
    pub namespaces: Vec<String>,
    /// The Service ports to scrape.
    #[schemars(length(min = 1, max = 16))]
    pub endpoints: Vec<ScrapeEndpoint>,
}

/// One scraped port of the selected Services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeEndpoint {
    /// Name of the Service port.
    #[schemars(length(min = 1, max = 63))]
    pub port: String,
    /// HTTP path to scrape (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Scrape interval (a Prometheus duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub interval: Option<String>,
}

/// A group of alerting rules (becomes a `PrometheusRule`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleGroup {
    /// Name of the group, unique within the stack.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Evaluation interval (a Prometheus duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub interval: Option<String>,
    /// The rules of the group.
    #[schemars(length(min = 1, max = 256))]
    pub rules: Vec<AlertRule>,
}

/// One alerting rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    /// Name of the alert.
    #[schemars(
        regex(pattern = "^[a-zA-Z_][a-zA-Z0-9_]*$"),
        length(min = 1, max = 128)
    )]
    pub alert: String,
    /// PromQL expression.
    #[schemars(length(min = 1, max = RULE_EXPR_MAX_LENGTH))]
    pub expr: String,
    /// How long the expression must hold before the alert fires (a Prometheus duration).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub for_: Option<String>,
    /// Labels added to the alert.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = RULE_MAP_MAX_PROPERTIES))]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the alert.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = RULE_MAP_MAX_PROPERTIES))]
    pub annotations: BTreeMap<String, String>,
}

/// A group of recording rules (becomes a `PrometheusRule`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingRuleGroup {
    /// Name of the group, unique within the stack (alerting-rule groups included).
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// Evaluation interval (a Prometheus duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub interval: Option<String>,
    /// The rules of the group.
    #[schemars(length(min = 1, max = 256))]
    pub rules: Vec<RecordingRule>,
}

/// One recording rule: the result of `expr`, evaluated at each interval, stored as the series
/// `record`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingRule {
    /// Name of the series recorded (a Prometheus metric name, e.g. `job:http_requests:rate5m`).
    #[schemars(
        regex(pattern = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"),
        length(min = 1, max = 255)
    )]
    pub record: String,
    /// PromQL expression.
    #[schemars(length(min = 1, max = RULE_EXPR_MAX_LENGTH))]
    pub expr: String,
    /// Labels added to the recorded series.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = RULE_MAP_MAX_PROPERTIES))]
    pub labels: BTreeMap<String, String>,
}

/// The Grafana part of a stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardsSpec {
    /// The `MemberCluster` (serving the `grafana` role) whose grafana-operator receives the
    /// folder, datasource and dashboards.
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub cluster: String,

    /// The namespace on the Grafana cluster that holds this customer's folder, datasource and
    /// dashboards. Default: the tenant namespace `customer-<customer>`, which stacksmith creates
    /// (the children then set `allowCrossNamespaceImport`). Set it to the namespace of the
    /// selected `Grafana` instances to keep the children next to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// Selects the `Grafana` instances the folder, datasource and dashboards go to.
    /// grafana-operator treats it as immutable: changing it re-creates the children.
    pub instance_selector: LabelSelector,

    /// The Grafana folder holding this customer's dashboards.
    #[serde(default)]
    pub folder: FolderSpec,

    /// The datasource that points Grafana at this customer's Prometheus.
    #[serde(default)]
    pub datasource: DatasourceSpec,

    /// The customer's dashboards, placed in the folder. Names are unique (a list map keyed by
    /// `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub dashboards: Vec<DashboardSpec>,
}

/// The customer's Grafana folder.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FolderSpec {
    /// Display title; defaults to the customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 140))]
    pub title: Option<String>,
}

/// How the Prometheus datasource is wired.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasourceSpec {
    /// The datasource's display name in Grafana; defaults to `<customer>-prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 190))]
    pub display_name: Option<String>,
    /// Whether it is the default datasource of the organisation.
    #[serde(default)]
    pub is_default: bool,
    /// Query timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
}

/// One dashboard: exactly one of `json` and `url`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["json"]}, {"required": ["url"]}]))]
pub struct DashboardSpec {
    /// Name of the dashboard, unique within the stack.
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub name: String,
    /// The dashboard model as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DASHBOARD_JSON_MAX_LENGTH))]
    pub json: Option<String>,
    /// A URL grafana-operator fetches the dashboard model from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub url: Option<String>,
}

/// Where a dashboard's model comes from (the typed view of [`DashboardSpec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashboardSource<'a> {
    /// Inline JSON.
    Json(&'a str),
    /// Fetched from a URL.
    Url(&'a str),
}

impl DashboardSpec {
    /// The dashboard's source, or `None` when not exactly one of `json` and `url` is set.
    pub fn source(&self) -> Option<DashboardSource<'_>> {
        match (&self.json, &self.url) {
            (Some(json), None) => Some(DashboardSource::Json(json)),
            (None, Some(url)) => Some(DashboardSource::Url(url)),
            _ => None,
        }
    }
}

/// The health verdict of one child (and, summed up, of a stack).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum Verdict {
    /// Reconciled by its operator at its current generation, nothing wrong.
    Healthy,
    /// Not there yet: the operator has not reported on the current generation, or is rolling out.
    Progressing,
    /// The operator reports a failure.
    Degraded,
    /// The operator was told not to act on it.
    Suspended,
    /// Health cannot be told (cluster unreachable, no status reported).
    Unknown,
}

impl Verdict {
    /// The API spelling, e.g. `Healthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "Healthy",
            Verdict::Progressing => "Progressing",
            Verdict::Degraded => "Degraded",
            Verdict::Suspended => "Suspended",
            Verdict::Unknown => "Unknown",
        }
    }
}

impl CustomerStack {
    /// The `Ready` condition, if the status describes the stack's current generation (`None`
    /// while it is about an older spec, or has no `Ready` yet).
    pub fn ready_condition(
        &self,
    ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        let status = self.status.as_ref()?;
        if status.observed_generation != self.metadata.generation {
            return None;
        }
        status.conditions.iter().find(|c| c.type_ == "Ready")
    }
}

/// Aggregated state of a stack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerStackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` plus conditions that say what kind of problem there is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Every child in a stable order (cluster, kind, namespace, name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    /// Counts of children by verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StackSummary>,
    /// `healthy/total`, e.g. `5/6`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children_ready: Option<String>,
    /// While the stack is not Ready: what `Ready`'s reason points at, as data (the object,
    /// cluster or spec field to look at first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<crate::RootCause>,
    /// Every object stacksmith wrote for this stack, with the uid the member cluster gave it:
    /// the only objects it will ever delete (and only while the uid still matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
}

/// One object stacksmith wrote into a member cluster for a stack.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// The `MemberCluster` it was written through.
    pub cluster: String,
    /// Its kind, e.g. `Namespace` or `Prometheus`.
    pub kind: String,
    /// Its namespace (empty for a Namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid` in the member cluster.
    pub uid: String,
}

/// The health of one child object in one member cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatus {
    /// The `MemberCluster` holding the child.
    pub cluster: String,
    /// The child's kind, e.g. `Prometheus` or `GrafanaDatasource`.
    pub kind: String,
    /// The child's namespace (empty for cluster-scoped children).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The child's name.
    pub name: String,
    /// The health verdict.
    pub verdict: Verdict,
    /// A CamelCase reason for the verdict.
    pub reason: String,
    /// What a human should know.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the child was last observed in this state (it moves when the verdict, reason or
    /// message changes, not on every look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed: Option<Time>,
    /// When the verdict is `Unknown` because the cluster cannot be reached: the verdict the
    /// child had when it was last seen (at `lastObserved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_verdict: Option<Verdict>,
}

/// Counts of a stack's children by verdict.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackSummary {
    /// All planned children.
    pub total: u32,
    /// Children that are Healthy.
    pub healthy: u32,
    /// Children that are Progressing.
    pub progressing: u32,
    /// Children that are Degraded.
    pub degraded: u32,
    /// Children that are Suspended.
    pub suspended: u32,
    /// Children whose health is Unknown.
    pub unknown: u32,
}

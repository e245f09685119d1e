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
    CUSTOMER_IMMUTABLE_MESSAGE, IMMUTABLE, ONE_GRAFANA_SOURCE, ONE_GRAFANA_SOURCE_MESSAGE,
    ONLY_CPU_AND_MEMORY, ONLY_CPU_AND_MEMORY_MESSAGE,
};
use crate::validation::{
    ALERT_RECEIVER_NAME, DNS1123_LABEL, DNS1123_SUBDOMAIN, GRAFANA_VERSION, PROMETHEUS_DURATION,
    RETENTION_SIZE,
};

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

    /// A persistent volume per Prometheus replica for the samples. Without it the samples live
    /// in an `emptyDir` and are lost whenever a Prometheus pod is replaced, whatever `retention`
    /// says. Set it when the stack is created: prometheus-operator cannot change the volume of
    /// a running Prometheus (see docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// The most bytes the samples may take, e.g. `50GiB`; the oldest blocks are dropped first.
    /// Beside `retention`: whichever is reached first applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = RETENTION_SIZE), length(min = 1, max = 32))]
    pub retention_size: Option<String>,

    /// Long-term storage: a Thanos sidecar beside each Prometheus that uploads the samples to
    /// object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosSpec>,

    /// Where the alerts of this stack go: the customer's receivers and routes, written as an
    /// `AlertmanagerConfig` in the tenant namespace for the Alertmanagers of the Prometheus
    /// cluster (its `MemberCluster`'s `alertmanagers`). They only ever see this tenant's alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_delivery: Option<AlertDeliverySpec>,
}

/// The volume of each Prometheus replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// The StorageClass of the volume claims; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
    /// The size of each volume, e.g. `100Gi`.
    pub size: Quantity,
}

/// A Thanos sidecar shipping the samples to object storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThanosSpec {
    /// The key of a Secret in the tenant namespace of the Prometheus cluster that holds the
    /// Thanos object-storage configuration (`type`, `config`). stacksmith never reads it.
    pub object_storage_secret: LocalSecretKey,
}

/// A key of a Secret in the tenant namespace (`customer-<customer>`) of the Prometheus cluster.
/// stacksmith only names it: the Secret is put there by the platform (a secret manager, say),
/// and read by prometheus-operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretKey {
    /// Name of the Secret.
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(regex(pattern = "^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// The customer's receivers and how alerts are routed to them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertDeliverySpec {
    /// Where alerts go. Names are unique (a list map keyed by `name`). A receiver with no
    /// configuration drops what reaches it.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub receivers: Vec<AlertReceiver>,
    /// The receiver of every alert that no route takes.
    #[schemars(regex(pattern = ALERT_RECEIVER_NAME), length(min = 1, max = 63))]
    pub default_receiver: String,
    /// Labels alerts are grouped by into one notification (Alertmanager's `group_by`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 128)))]
    pub group_by: Vec<String>,
    /// How long to wait before the first notification of a new group (a Prometheus duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub group_wait: Option<String>,
    /// How long to wait before notifying of new alerts in a group already notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub group_interval: Option<String>,
    /// How long to wait before sending a notification again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION))]
    pub repeat_interval: Option<String>,
    /// Routes tried in order; the first that matches takes the alert (unless it says
    /// `continue`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub routes: Vec<AlertRoute>,
}

/// One receiver: every configuration in it is notified.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertReceiver {
    /// Name of the receiver, unique within the stack.
    #[schemars(regex(pattern = ALERT_RECEIVER_NAME), length(min = 1, max = 63))]
    pub name: String,
    /// HTTP webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub webhooks: Vec<WebhookReceiver>,
    /// Slack channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub slack: Vec<SlackReceiver>,
    /// PagerDuty services (Events API v2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub pagerduty: Vec<PagerDutyReceiver>,
}

/// A webhook; its URL is a credential, so it comes from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiver {
    /// The Secret key holding the URL.
    pub url_secret: LocalSecretKey,
    /// Whether resolved alerts are notified too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
}

/// A Slack channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackReceiver {
    /// The Secret key holding the incoming-webhook URL.
    pub api_url_secret: LocalSecretKey,
    /// The channel, e.g. `#alerts` (the webhook's own channel when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub channel: Option<String>,
    /// Whether resolved alerts are notified too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
}

/// A PagerDuty service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PagerDutyReceiver {
    /// The Secret key holding the Events API v2 routing (integration) key.
    pub routing_key_secret: LocalSecretKey,
    /// Whether resolved alerts are notified too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
}

/// A route: the alerts matching every matcher go to `receiver`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRoute {
    /// The receiver (one of `receivers`).
    #[schemars(regex(pattern = ALERT_RECEIVER_NAME), length(min = 1, max = 63))]
    pub receiver: String,
    /// Conditions on the alert's labels, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matchers: Vec<AlertMatcher>,
    /// Whether the alert goes on to the next routes after this one matched.
    #[serde(
        default,
        rename = "continue",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub continue_: bool,
}

/// A condition on one label of an alert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertMatcher {
    /// The label name.
    #[schemars(
        regex(pattern = "^[a-zA-Z_][a-zA-Z0-9_]*$"),
        length(min = 1, max = 128)
    )]
    pub name: String,
    /// The value, or the regular expression for `=~` and `!~`.
    #[schemars(length(max = 1024))]
    pub value: String,
    /// `=` (default), `!=`, `=~` or `!~`.
    #[serde(default)]
    pub match_type: MatchType,
}

/// How an [`AlertMatcher`] compares.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MatchType {
    /// Equal.
    #[default]
    #[serde(rename = "=")]
    Equal,
    /// Not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// Matches the regular expression.
    #[serde(rename = "=~")]
    Regex,
    /// Does not match the regular expression.
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchType {
    /// The operator as Alertmanager writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
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

/// The Grafana part of a stack: the folder, datasource and dashboards go either to shared
/// `Grafana` instances (`instanceSelector`) or to a Grafana instance of the customer's own
/// (`dedicatedGrafana`); exactly one of the two is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(ONE_GRAFANA_SOURCE).message(ONE_GRAFANA_SOURCE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct DashboardsSpec {
    /// The `MemberCluster` (serving the `grafana` role) whose grafana-operator receives the
    /// folder, datasource and dashboards (and the dedicated `Grafana`, if any).
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub cluster: String,

    /// The namespace on the Grafana cluster that holds this customer's folder, datasource and
    /// dashboards (and the dedicated `Grafana`, if any). Default: the tenant namespace
    /// `customer-<customer>`, which stacksmith creates (with shared instances the children then
    /// set `allowCrossNamespaceImport`). With shared instances, set it to the namespace of the
    /// selected `Grafana` instances to keep the children next to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// Selects the shared `Grafana` instances the folder, datasource and dashboards go to. Set
    /// exactly one of this and `dedicatedGrafana`. grafana-operator treats it as immutable:
    /// changing it re-creates the children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,

    /// A Grafana instance of the customer's own: stacksmith creates a `Grafana` named after the
    /// customer next to the folder, datasource and dashboards, and they select it alone. Set
    /// exactly one of this and `instanceSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_grafana: Option<DedicatedGrafanaSpec>,

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

/// A Grafana instance of the customer's own (a grafana-operator `Grafana`). grafana-operator
/// creates its admin credentials itself: the Secret `<customer>-admin-credentials` next to it
/// (keys `GF_SECURITY_ADMIN_USER` and `GF_SECURITY_ADMIN_PASSWORD`); stacksmith neither writes
/// nor reads it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedicatedGrafanaSpec {
    /// The Grafana version to run: a release tag of `docker.io/grafana/grafana` such as
    /// `12.1.0` (a suffix such as `-ubuntu` is allowed). Pinned: not `latest`, not an image
    /// reference. Changing it upgrades (or downgrades) the instance.
    #[schemars(regex(pattern = GRAFANA_VERSION), length(min = 5, max = 64))]
    pub version: String,

    /// When set, grafana-operator exposes the instance through an Ingress for this host (a
    /// DNS-1123 subdomain, e.g. `acme.grafana.example.com`), path `/` to its Service
    /// `<customer>-service` on port 3000. Without it the instance is reachable only inside the
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub ingress_host: Option<String>,
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
    /// The URL Grafana uses for this tenant's Prometheus when the platform routes to it another
    /// way than the Prometheus cluster's `prometheusExposure` or `prometheusUrlTemplate` say.
    /// With a planned exposure, its host is added to the Prometheus' serving certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = "^https?://[^\\s/]+(/[^\\s]*)?$"),
        length(min = 1, max = 512)
    )]
    pub url: Option<String>,
}

/// One dashboard: exactly one of `json`, `url`, `grafanaCom` and `configMapRef`. Whatever the
/// model says, its Grafana uid is stacksmith's: `<customer>_<name>` (shortened with a hash when
/// longer than 40 characters), so no tenant's dashboard can replace another's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["json"]},
    {"required": ["url"]},
    {"required": ["grafanaCom"]},
    {"required": ["configMapRef"]},
]))]
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
    /// A dashboard published on grafana.com, which grafana-operator downloads (the Grafana
    /// cluster needs to reach grafana.com).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_com: Option<GrafanaComDashboard>,
    /// A key of a ConfigMap in this stack's own namespace on the hub that holds the model as
    /// JSON text. stacksmith reads it and writes the model into the dashboard; a change to the
    /// ConfigMap updates the dashboard. The ConfigMap must carry the label
    /// `stacksmith.io/dashboard-source: "true"` (stacksmith only watches those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<DashboardConfigMapKey>,
    /// The datasource inputs of the model (its `__inputs`, used as `${DS_PROMETHEUS}` in an
    /// exported dashboard) to bind to this stack's own datasource. Default: `DS_PROMETHEUS` for
    /// a `grafanaCom` dashboard, none otherwise. Input names are unique (a list map keyed by
    /// `inputName`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["inputName".into()]))]
    pub datasources: Vec<DashboardDatasourceInput>,
}

/// A dashboard on grafana.com (`https://grafana.com/grafana/dashboards/<id>`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaComDashboard {
    /// The dashboard's id on grafana.com.
    #[schemars(range(min = 1))]
    pub id: i64,
    /// The revision; the latest when unset (which then changes as the author publishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision: Option<i64>,
}

/// A key of a ConfigMap in the stack's namespace on the hub (labelled
/// `stacksmith.io/dashboard-source: "true"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardConfigMapKey {
    /// Name of the ConfigMap.
    #[schemars(regex(pattern = DNS1123_SUBDOMAIN), length(min = 1, max = 253))]
    pub name: String,
    /// Key in the ConfigMap's `data`.
    #[schemars(regex(pattern = "^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// A datasource input of a dashboard model, bound to the stack's own datasource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardDatasourceInput {
    /// The input's name, e.g. `DS_PROMETHEUS` (used as `${DS_PROMETHEUS}` in the model).
    #[schemars(
        regex(pattern = "^[a-zA-Z_][a-zA-Z0-9_]*$"),
        length(min = 1, max = 128)
    )]
    pub input_name: String,
}

/// The datasource input of the dashboards grafana.com publishes, bound by default for a
/// `grafanaCom` dashboard.
pub const DEFAULT_DATASOURCE_INPUT: &str = "DS_PROMETHEUS";

/// Where a dashboard's model comes from (the typed view of [`DashboardSpec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashboardSource<'a> {
    /// Inline JSON.
    Json(&'a str),
    /// Fetched from a URL.
    Url(&'a str),
    /// Downloaded from grafana.com.
    GrafanaCom(&'a GrafanaComDashboard),
    /// A key of a ConfigMap on the hub.
    ConfigMap(&'a DashboardConfigMapKey),
}

impl DashboardSpec {
    /// The dashboard's source, or `None` when not exactly one of `json`, `url`, `grafanaCom`
    /// and `configMapRef` is set.
    pub fn source(&self) -> Option<DashboardSource<'_>> {
        match (
            &self.json,
            &self.url,
            &self.grafana_com,
            &self.config_map_ref,
        ) {
            (Some(json), None, None, None) => Some(DashboardSource::Json(json)),
            (None, Some(url), None, None) => Some(DashboardSource::Url(url)),
            (None, None, Some(com), None) => Some(DashboardSource::GrafanaCom(com)),
            (None, None, None, Some(key)) => Some(DashboardSource::ConfigMap(key)),
            _ => None,
        }
    }

    /// The datasource inputs bound to the stack's datasource: those listed, else
    /// [`DEFAULT_DATASOURCE_INPUT`] for a `grafanaCom` dashboard.
    pub fn datasource_inputs(&self) -> Vec<&str> {
        if !self.datasources.is_empty() || self.grafana_com.is_none() {
            return self
                .datasources
                .iter()
                .map(|d| d.input_name.as_str())
                .collect();
        }
        vec![DEFAULT_DATASOURCE_INPUT]
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

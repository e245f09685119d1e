//! `TenantPolicy`: who may claim which customers, and what their stacks may ask for
//! (cluster-scoped, written by the platform team).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::bounds::{
    POLICY_CUSTOMERS_MAX_ITEMS, POLICY_HUB_NAMESPACES_MAX_ITEMS, POLICY_LIST_MAX_ITEMS,
};
use crate::validation::cel::{
    NO_EMPTY_SELECTOR, NO_EMPTY_SELECTOR_MESSAGE, ONLY_CPU_AND_MEMORY, ONLY_CPU_AND_MEMORY_MESSAGE,
};
use crate::validation::{DASHBOARD_URL_PREFIX, DNS1123_LABEL, PROMETHEUS_DURATION, RETENTION_SIZE};

/// The platform's word on a set of customers: which hub namespaces may hold their
/// `CustomerStack`s, where their Grafana children may go, and how much their Prometheus may
/// take.
///
/// With the operator's default `--tenant-policy=required`, a stack whose customer no policy
/// names is refused; with `optional` it is let through unchecked. A customer named by two
/// policies is refused. A refused stack gets nothing written to any member cluster; its status
/// says which field broke which rule (`Ready` False, reason `PolicyViolation`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "stacksmith.io",
    version = "v1alpha1",
    kind = "TenantPolicy",
    shortname = "tpol",
    category = "stacksmith",
    doc = "The platform's policy for a set of customers: the hub namespaces whose CustomerStacks may claim them, where their Grafana children may go, and the most their Prometheus may take.",
    printcolumn = r#"{"name":"Customers","type":"string","jsonPath":".spec.customers"}"#,
    printcolumn = r#"{"name":"Hub namespaces","type":"string","jsonPath":".spec.hubNamespaces"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicySpec {
    /// The customer ids (`spec.customer` of a `CustomerStack`) this policy governs, each at
    /// most once. A customer is governed by at most one policy: a stack whose customer two
    /// policies name is refused.
    #[schemars(
        length(min = 1, max = POLICY_CUSTOMERS_MAX_ITEMS),
        inner(regex(pattern = DNS1123_LABEL), length(min = 1, max = 40))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub customers: Vec<String>,

    /// The hub namespaces whose `CustomerStack`s may claim these customers (typically the one
    /// namespace the customer's team writes to). A stack in another namespace is refused
    /// (field `spec.customer`).
    #[schemars(
        length(min = 1, max = POLICY_HUB_NAMESPACES_MAX_ITEMS),
        inner(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub hub_namespaces: Vec<String>,

    /// What the stacks may ask of the Grafana cluster. Default: only the tenant namespace, no
    /// shared instance, no dedicated instance, no default datasource.
    #[serde(default)]
    pub grafana: GrafanaPolicy,

    /// Where dashboards may come from. Default: inline JSON only.
    #[serde(default)]
    pub dashboards: DashboardsPolicy,

    /// The most the stacks' Prometheus may take. Default: no caps (the schema's own bounds
    /// and the member cluster's `tenantQuota` still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PolicyLimits>,
}

/// What a governed stack may ask of the Grafana cluster (`spec.dashboards`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaPolicy {
    /// The namespaces of the Grafana cluster a stack may put its folder, datasource and
    /// dashboards in (`spec.dashboards.namespace`) besides its own tenant namespace
    /// `customer-<customer>`, which is always allowed. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = POLICY_LIST_MAX_ITEMS),
        inner(regex(pattern = DNS1123_LABEL), length(min = 1, max = 63))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Vec<String>,

    /// The label selectors a stack may use as `spec.dashboards.instanceSelector`: the stack's
    /// selector must be one of them exactly (the same `matchLabels`, the same
    /// `matchExpressions` in any order). An empty selector (`{}`, which selects every `Grafana`
    /// instance) cannot be listed, and a stack's empty selector is always refused. Default:
    /// none, so no shared instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = POLICY_LIST_MAX_ITEMS))]
    #[x_kube(validation = Rule::new(NO_EMPTY_SELECTOR).message(NO_EMPTY_SELECTOR_MESSAGE))]
    pub instance_selectors: Vec<LabelSelector>,

    /// Whether a stack may have a Grafana instance of its own (`spec.dashboards.dedicatedGrafana`):
    /// a whole Grafana, run on the platform's Grafana cluster. Default false.
    #[serde(default)]
    pub allow_dedicated_grafana: bool,

    /// Whether a stack's datasource may be the default datasource of the organisation of the
    /// shared instances it selects (`spec.dashboards.datasource.isDefault`), which every other
    /// tenant's panels without a datasource would then query. On an instance of the customer's
    /// own (`dedicatedGrafana`) it concerns no one else and is always allowed. Default false.
    #[serde(default)]
    pub allow_default_datasource: bool,

    /// Whether a stack's datasource may take any display name
    /// (`spec.dashboards.datasource.displayName`). By default the name must be the customer id
    /// or start with it and a separator (`acme-…`, `Acme Prometheus`): datasource names are one
    /// namespace per Grafana organisation, and the tenants' dashboards bind their inputs by name,
    /// so a tenant that took another tenant's name could block that tenant's datasource or feed
    /// its dashboards. Default false.
    #[serde(default)]
    pub allow_any_datasource_name: bool,

    /// The prefixes a stack's own datasource URL (`spec.dashboards.datasource.url`) must start
    /// with: Grafana's server queries that URL, so an unbounded one would let a tenant make it
    /// reach any internal address. The same form as `dashboards.urlPrefixes`. Default: none, so
    /// the URL always follows from the Prometheus cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = POLICY_LIST_MAX_ITEMS),
        inner(regex(pattern = DASHBOARD_URL_PREFIX), length(min = 1, max = 512))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub datasource_url_prefixes: Vec<String>,
}

/// Where a governed stack's dashboards may come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardsPolicy {
    /// The prefixes a dashboard's `url` must start with (grafana-operator fetches it from
    /// inside the Grafana cluster). Each is an `http://` or `https://` URL whose host ends with
    /// `/`, e.g. `https://dashboards.example.com/acme/`, so that `https://dashboards.example.com`
    /// cannot be stretched to `https://dashboards.example.com.attacker.net/`. Default: none, so
    /// URL dashboards are refused (inline `json` ones are always allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = POLICY_LIST_MAX_ITEMS),
        inner(regex(pattern = DASHBOARD_URL_PREFIX), length(min = 1, max = 2048))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub url_prefixes: Vec<String>,

    /// Whether dashboards published on grafana.com (`grafanaCom`) are allowed: grafana-operator
    /// then downloads them from grafana.com, the one outside address it fetches. Default true.
    #[serde(default = "allowed")]
    pub allow_grafana_com: bool,
}

fn allowed() -> bool {
    true
}

impl Default for DashboardsPolicy {
    fn default() -> Self {
        DashboardsPolicy {
            url_prefixes: Vec::new(),
            allow_grafana_com: allowed(),
        }
    }
}

/// Caps on a governed stack's Prometheus (`spec.metrics`). Each is optional; quantities and
/// durations are compared by value (`1Gi` is more than `1000Mi`, `2w` more than `10d`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLimits {
    /// The most Prometheus replicas (`spec.metrics.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub max_replicas: Option<i32>,

    /// The longest retention (`spec.metrics.retention`, default `15d`), a Prometheus duration
    /// such as `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PROMETHEUS_DURATION), length(min = 1, max = 32))]
    pub max_retention: Option<String>,

    /// The largest `spec.metrics.retentionSize`, e.g. `50GiB` (`KB`/`KiB` both count 1024
    /// bytes, as in Prometheus). When set, a stack must set `retentionSize`: without it the
    /// samples may take any size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = RETENTION_SIZE), length(min = 1, max = 32))]
    pub max_retention_size: Option<String>,

    /// The largest volume per replica (`spec.metrics.storage.size`), e.g. `100Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage: Option<Quantity>,

    /// The most `cpu` and `memory` a Prometheus replica may request or be limited to
    /// (`spec.metrics.resources.requests` and `.limits`, each compared), e.g. `memory: 8Gi`.
    /// What a stack leaves unset is not checked here: the member cluster's
    /// `tenantQuota.containerDefaults` bounds that.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 2))]
    #[x_kube(validation = Rule::new(ONLY_CPU_AND_MEMORY).message(ONLY_CPU_AND_MEMORY_MESSAGE))]
    pub max_resources: BTreeMap<String, Quantity>,
}

//! What a tenant's Prometheus may read on its Prometheus cluster, in one place: the rules of the
//! Role stacksmith writes into the tenant namespace, and the fixed ClusterRole that the remote
//! chart (and the test bed) install on every Prometheus cluster, which stacksmith binds in each
//! namespace a scrape target lists (`spec.metrics.scrape[].namespaces`).
//!
//! prometheus-operator renders a `ServiceMonitor` into a `kubernetes_sd_configs` entry of role
//! `endpoints` (its default `serviceDiscoveryRole`; stacksmith does not set another), for which
//! Prometheus lists and watches Endpoints, Services and Pods in each namespace it looks in:
//! exactly these rules, nothing of `discovery.k8s.io`.

/// The ClusterRole bound, by a RoleBinding in each listed namespace, to a tenant's Prometheus
/// ServiceAccount. It grants [`DISCOVERY_RULES`] and nothing else; a RoleBinding confines it to
/// its namespace.
pub const PROMETHEUS_DISCOVERY_CLUSTER_ROLE: &str = "stacksmith-prometheus-discovery";

/// One RBAC rule: API groups, resources, verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The API groups (`""` is the core group).
    pub api_groups: &'static [&'static str],
    /// The resources.
    pub resources: &'static [&'static str],
    /// The verbs.
    pub verbs: &'static [&'static str],
}

/// What a tenant's Prometheus may do in a namespace it discovers targets in: read Services,
/// Endpoints and Pods. The tenant Role holds these rules, and so does
/// [`PROMETHEUS_DISCOVERY_CLUSTER_ROLE`].
pub const DISCOVERY_RULES: &[Rule] = &[Rule {
    api_groups: &[""],
    resources: &["services", "endpoints", "pods"],
    verbs: &["get", "list", "watch"],
}];

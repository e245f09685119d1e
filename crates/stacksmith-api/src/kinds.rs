//! Every kind stacksmith creates or reads on a member cluster, in one table: API group, version,
//! `apiVersion`, `kind`, resource plural, scope, and which member role's clusters serve it.
//!
//! This is the only place these facts are written. Planning (`stacksmith_core::plan::ObjectKind`),
//! child health (`stacksmith_core::ChildKind`), the controller's API calls and the test bed's
//! simulator all read them from here, through [`KindInfo`].

use kube::core::{ApiResource, GroupVersionKind};

use crate::ClusterRole;

/// prometheus-operator's API group.
pub const PROMETHEUS_OPERATOR_GROUP: &str = "monitoring.coreos.com";
/// grafana-operator's API group.
pub const GRAFANA_OPERATOR_GROUP: &str = "grafana.integreatly.org";

/// Whether objects of a kind live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// In a namespace (`metadata.namespace` is set).
    Namespaced,
    /// Cluster-wide (no `metadata.namespace`).
    Cluster,
}

/// Which member clusters serve a kind, by the role they serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServedBy {
    /// Clusters of the `prometheus` role (prometheus-operator runs there).
    Prometheus,
    /// Clusters of the `grafana` role (grafana-operator runs there).
    Grafana,
    /// Every member cluster, whatever its role.
    AnyRole,
}

impl ServedBy {
    /// Whether a cluster of `role` serves the kind.
    pub fn includes(self, role: ClusterRole) -> bool {
        match self {
            ServedBy::Prometheus => role == ClusterRole::Prometheus,
            ServedBy::Grafana => role == ClusterRole::Grafana,
            ServedBy::AnyRole => true,
        }
    }
}

/// What stacksmith knows about one Kubernetes kind: one row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindInfo {
    /// The API group, empty for the core group, e.g. `monitoring.coreos.com`.
    pub group: &'static str,
    /// The API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// The `apiVersion` of a manifest: `<group>/<version>`, or `<version>` for the core group.
    pub api_version: &'static str,
    /// The Kubernetes `kind`, e.g. `PrometheusRule`.
    pub kind: &'static str,
    /// The resource (plural) name, e.g. `prometheusrules`.
    pub plural: &'static str,
    /// Namespaced or cluster-wide.
    pub scope: Scope,
    /// The member clusters that serve it.
    pub served_by: ServedBy,
}

impl KindInfo {
    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The group, version and kind, as kube names them.
    pub fn group_version_kind(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(self.group, self.version, self.kind)
    }

    /// The `ApiResource` a dynamic kube client needs for this kind.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&self.group_version_kind(), self.plural)
    }
}

/// The tenant namespace.
pub const NAMESPACE: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    scope: Scope::Cluster,
    served_by: ServedBy::AnyRole,
};

/// The tenant namespace's quota (`MemberCluster` `spec.tenantQuota.hard`).
pub const RESOURCE_QUOTA: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "ResourceQuota",
    plural: "resourcequotas",
    scope: Scope::Namespaced,
    served_by: ServedBy::AnyRole,
};

/// The tenant namespace's container defaults (`MemberCluster`
/// `spec.tenantQuota.containerDefaults`).
pub const LIMIT_RANGE: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "LimitRange",
    plural: "limitranges",
    scope: Scope::Namespaced,
    served_by: ServedBy::AnyRole,
};

/// The credentials of a tenant's data path (with a planned `prometheusExposure`): the
/// Prometheus' serving certificate and its tenant's client CA on the Prometheus cluster, the
/// datasource's client certificate on the Grafana cluster.
pub const SECRET: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Secret",
    plural: "secrets",
    scope: Scope::Namespaced,
    served_by: ServedBy::AnyRole,
};

/// The NetworkPolicy that admits only the exposure's sources to a tenant's Prometheus.
pub const NETWORK_POLICY: KindInfo = KindInfo {
    group: "networking.k8s.io",
    version: "v1",
    api_version: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    plural: "networkpolicies",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// The Service through which Grafana reaches a tenant's Prometheus.
pub const SERVICE: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "Service",
    plural: "services",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// The ServiceAccount a tenant's Prometheus runs as.
pub const SERVICE_ACCOUNT: KindInfo = KindInfo {
    group: "",
    version: "v1",
    api_version: "v1",
    kind: "ServiceAccount",
    plural: "serviceaccounts",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// The Role that lets a tenant's Prometheus discover its targets.
pub const ROLE: KindInfo = KindInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    plural: "roles",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// The RoleBinding of that Role to the ServiceAccount.
pub const ROLE_BINDING: KindInfo = KindInfo {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// prometheus-operator's `Prometheus`.
pub const PROMETHEUS: KindInfo = KindInfo {
    group: PROMETHEUS_OPERATOR_GROUP,
    version: "v1",
    api_version: "monitoring.coreos.com/v1",
    kind: "Prometheus",
    plural: "prometheuses",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// prometheus-operator's `PrometheusRule`.
pub const PROMETHEUS_RULE: KindInfo = KindInfo {
    group: PROMETHEUS_OPERATOR_GROUP,
    version: "v1",
    api_version: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    plural: "prometheusrules",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// prometheus-operator's `ServiceMonitor`.
pub const SERVICE_MONITOR: KindInfo = KindInfo {
    group: PROMETHEUS_OPERATOR_GROUP,
    version: "v1",
    api_version: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    plural: "servicemonitors",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// prometheus-operator's `AlertmanagerConfig`: a tenant's receivers and routes.
pub const ALERTMANAGER_CONFIG: KindInfo = KindInfo {
    group: PROMETHEUS_OPERATOR_GROUP,
    version: "v1alpha1",
    api_version: "monitoring.coreos.com/v1alpha1",
    kind: "AlertmanagerConfig",
    plural: "alertmanagerconfigs",
    scope: Scope::Namespaced,
    served_by: ServedBy::Prometheus,
};

/// grafana-operator's `Grafana` (an instance): the shared instances are only read; a stack's
/// dedicated instance (`spec.dashboards.dedicatedGrafana`) is created by stacksmith.
pub const GRAFANA: KindInfo = KindInfo {
    group: GRAFANA_OPERATOR_GROUP,
    version: "v1beta1",
    api_version: "grafana.integreatly.org/v1beta1",
    kind: "Grafana",
    plural: "grafanas",
    scope: Scope::Namespaced,
    served_by: ServedBy::Grafana,
};

/// grafana-operator's `GrafanaFolder`.
pub const GRAFANA_FOLDER: KindInfo = KindInfo {
    group: GRAFANA_OPERATOR_GROUP,
    version: "v1beta1",
    api_version: "grafana.integreatly.org/v1beta1",
    kind: "GrafanaFolder",
    plural: "grafanafolders",
    scope: Scope::Namespaced,
    served_by: ServedBy::Grafana,
};

/// grafana-operator's `GrafanaDatasource`.
pub const GRAFANA_DATASOURCE: KindInfo = KindInfo {
    group: GRAFANA_OPERATOR_GROUP,
    version: "v1beta1",
    api_version: "grafana.integreatly.org/v1beta1",
    kind: "GrafanaDatasource",
    plural: "grafanadatasources",
    scope: Scope::Namespaced,
    served_by: ServedBy::Grafana,
};

/// grafana-operator's `GrafanaDashboard`.
pub const GRAFANA_DASHBOARD: KindInfo = KindInfo {
    group: GRAFANA_OPERATOR_GROUP,
    version: "v1beta1",
    api_version: "grafana.integreatly.org/v1beta1",
    kind: "GrafanaDashboard",
    plural: "grafanadashboards",
    scope: Scope::Namespaced,
    served_by: ServedBy::Grafana,
};

/// Every row of the table.
pub const ALL: [&KindInfo; 17] = [
    &NAMESPACE,
    &RESOURCE_QUOTA,
    &LIMIT_RANGE,
    &SECRET,
    &NETWORK_POLICY,
    &SERVICE,
    &SERVICE_ACCOUNT,
    &ROLE,
    &ROLE_BINDING,
    &PROMETHEUS,
    &PROMETHEUS_RULE,
    &SERVICE_MONITOR,
    &ALERTMANAGER_CONFIG,
    &GRAFANA,
    &GRAFANA_FOLDER,
    &GRAFANA_DATASOURCE,
    &GRAFANA_DASHBOARD,
];

/// The row of this exact (case-sensitive) Kubernetes `kind`, if stacksmith knows it.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    ALL.into_iter().find(|info| info.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_version_is_its_group_and_version() {
        for info in ALL {
            let expected = if info.group.is_empty() {
                info.version.to_owned()
            } else {
                format!("{}/{}", info.group, info.version)
            };
            assert_eq!(info.api_version, expected, "{}", info.kind);
            assert_eq!(info.api_resource().api_version, expected, "{}", info.kind);
        }
    }

    #[test]
    fn kinds_and_plurals_are_unique_and_found_by_kind() {
        for (i, info) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|other| other.kind != info.kind));
            assert!(ALL[..i].iter().all(|other| other.plural != info.plural));
            assert_eq!(by_kind(info.kind), Some(*info));
            assert_eq!(info.plural, info.plural.to_lowercase());
        }
        assert_eq!(by_kind("prometheus"), None);
    }

    #[test]
    fn only_the_namespace_is_cluster_wide_and_only_it_its_quota_and_secrets_served_everywhere() {
        for info in ALL {
            let is_namespace = info.kind == "Namespace";
            assert_eq!(info.namespaced(), !is_namespace, "{}", info.kind);
            assert_eq!(
                info.served_by == ServedBy::AnyRole,
                matches!(
                    info.kind,
                    "Namespace" | "ResourceQuota" | "LimitRange" | "Secret"
                ),
                "{}",
                info.kind
            );
        }
        assert!(NAMESPACE.served_by.includes(ClusterRole::Grafana));
        assert!(RESOURCE_QUOTA.served_by.includes(ClusterRole::Prometheus));
        assert!(LIMIT_RANGE.served_by.includes(ClusterRole::Grafana));
        assert!(PROMETHEUS.served_by.includes(ClusterRole::Prometheus));
        assert!(!PROMETHEUS.served_by.includes(ClusterRole::Grafana));
        assert!(!GRAFANA_FOLDER.served_by.includes(ClusterRole::Prometheus));
    }
}

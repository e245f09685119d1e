//! Planning: a `CustomerStack` and the registered member clusters → the objects that must exist
//! in each cluster. Pure: no client, no clock.
//!
//! On the Prometheus cluster, in the tenant namespace `customer-<customer>`: the Namespace, the
//! ServiceAccount, Role and RoleBinding a Prometheus needs, the `Prometheus` (selectors scoped
//! to the tenant), one `PrometheusRule` per alerting-rule group and one `ServiceMonitor` per
//! scrape target; and in each other namespace a scrape target lists, a RoleBinding of the fixed
//! ClusterRole `stacksmith-prometheus-discovery` to that ServiceAccount (discovery there). On the Grafana cluster: a `GrafanaFolder`, a `GrafanaDatasource` of type
//! prometheus whose URL points at this tenant's Prometheus through the Prometheus cluster's URL
//! template, and the dashboards in that folder.
//!
//! Right after each tenant Namespace stacksmith creates (on the Grafana cluster only when the
//! children live in the tenant namespace), the member cluster's tenant quota when its
//! `MemberCluster` sets `spec.tenantQuota`: a `ResourceQuota` and a `LimitRange`, so that every
//! pod of the namespace is admitted under them.
//!
//! Every object carries labels that lead back to its stack; names are deterministic. Two stacks
//! with the same customer id would plan the same names: the controller refuses to touch an
//! object another stack owns, so the second one gets a `Conflict` instead.
//!
//! This file is the driver, [`plan_stack`]. The rest lives beside it:
//! - `plan/validate.rs`: the spec checks that run before anything is built, and the datasource
//!   URL template;
//! - `plan/names.rs`: object names, ownership labels, the planned hash, the object builder;
//! - `plan/prometheus.rs`: the tenant Namespace, the Prometheus' RBAC, `Prometheus`,
//!   `PrometheusRule`, `ServiceMonitor`;
//! - `plan/grafana.rs`: the dedicated `Grafana` (with `spec.dashboards.dedicatedGrafana`),
//!   `GrafanaFolder`, `GrafanaDatasource`, `GrafanaDashboard` (under the tenant's own uid, its
//!   datasource inputs bound to the tenant's datasource);
//! - `plan/dashboard_sources.rs`: the hub ConfigMaps dashboards name (`configMapRef`), read by
//!   the caller and handed to [`plan_stack_with_config_maps`];
//! - `plan/quota.rs`: the `ResourceQuota` and `LimitRange` of a tenant namespace stacksmith
//!   creates, from its member cluster's `spec.tenantQuota`.

mod dashboard_sources;
mod exposure;
mod grafana;
pub mod names;
mod prometheus;
mod quota;
mod validate;

#[cfg(test)]
mod fixtures;

use std::collections::BTreeSet;

use serde_json::Value;
use stacksmith_api::kinds::{self, KindInfo};
use stacksmith_api::{
    AlertmanagerEndpoint, ClusterRole, CustomerStackSpec, PrometheusExposure, TenantQuota,
};

use crate::credentials::TenantCredentials;
use crate::health::ChildKind;
use stacksmith_api::labels::CUSTOMER;

pub use self::dashboard_sources::DashboardConfigMaps;
pub use self::exposure::{client_keys, server_keys};
pub use self::names::ownership_labels;
pub use self::validate::render_url_template;

/// What planning needs to know about a registered member cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberInfo {
    /// The `MemberCluster` name.
    pub name: String,
    /// The roles it serves.
    pub roles: Vec<ClusterRole>,
    /// `spec.prometheusUrlTemplate`.
    pub prometheus_url_template: Option<String>,
    /// `spec.prometheusExposure`.
    pub prometheus_exposure: Option<PrometheusExposure>,
    /// `spec.alertmanagers`.
    pub alertmanagers: Vec<AlertmanagerEndpoint>,
    /// `spec.grafanaIngressHostTemplate`.
    pub grafana_ingress_host_template: Option<String>,
    /// `spec.tenantQuota`.
    pub tenant_quota: Option<TenantQuota>,
}

/// The identity of the stack being planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackIdentity {
    /// Its namespace on the hub.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// A problem with the stack's spec found while planning (nothing is written for such a stack).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// The field, e.g. `spec.metrics.cluster`.
    pub field: String,
    /// What is wrong, e.g. `MemberCluster "prom-9" not found`.
    pub message: String,
}

/// The kind of a planned object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// The tenant namespace.
    Namespace,
    /// The tenant namespace's quota (`MemberCluster` `spec.tenantQuota.hard`).
    ResourceQuota,
    /// The tenant namespace's container defaults (`MemberCluster`
    /// `spec.tenantQuota.containerDefaults`).
    LimitRange,
    /// The credentials of the data path (with a planned exposure): the Prometheus' serving
    /// certificate and client CA, the datasource's client certificate.
    Secret,
    /// The NetworkPolicy admitting only the exposure's sources to the Prometheus.
    NetworkPolicy,
    /// The Prometheus' ServiceAccount.
    ServiceAccount,
    /// The Prometheus' Role.
    Role,
    /// The Prometheus' RoleBindings: of its Role in the tenant namespace, and of the discovery
    /// ClusterRole in each other namespace its scrape targets list.
    RoleBinding,
    /// The Service through which Grafana reaches the Prometheus.
    Service,
    /// A child custom resource, whose health is reported.
    Child(ChildKind),
}

impl ObjectKind {
    /// Every kind, in creation order.
    pub const ALL: [ObjectKind; 17] = [
        ObjectKind::Namespace,
        ObjectKind::ResourceQuota,
        ObjectKind::LimitRange,
        ObjectKind::Secret,
        ObjectKind::NetworkPolicy,
        ObjectKind::ServiceAccount,
        ObjectKind::Role,
        ObjectKind::RoleBinding,
        ObjectKind::Service,
        ObjectKind::Child(ChildKind::Prometheus),
        ObjectKind::Child(ChildKind::PrometheusRule),
        ObjectKind::Child(ChildKind::ServiceMonitor),
        ObjectKind::Child(ChildKind::AlertmanagerConfig),
        ObjectKind::Child(ChildKind::Grafana),
        ObjectKind::Child(ChildKind::GrafanaFolder),
        ObjectKind::Child(ChildKind::GrafanaDatasource),
        ObjectKind::Child(ChildKind::GrafanaDashboard),
    ];

    /// Its row in the table of kinds ([`stacksmith_api::kinds`]): group, version, `kind`,
    /// plural, scope and serving role.
    pub fn info(self) -> &'static KindInfo {
        match self {
            ObjectKind::Namespace => &kinds::NAMESPACE,
            ObjectKind::ResourceQuota => &kinds::RESOURCE_QUOTA,
            ObjectKind::LimitRange => &kinds::LIMIT_RANGE,
            ObjectKind::Secret => &kinds::SECRET,
            ObjectKind::NetworkPolicy => &kinds::NETWORK_POLICY,
            ObjectKind::Service => &kinds::SERVICE,
            ObjectKind::ServiceAccount => &kinds::SERVICE_ACCOUNT,
            ObjectKind::Role => &kinds::ROLE,
            ObjectKind::RoleBinding => &kinds::ROLE_BINDING,
            ObjectKind::Child(kind) => kind.info(),
        }
    }

    /// The `Kind`.
    pub fn kind(self) -> &'static str {
        self.info().kind
    }

    /// The `apiVersion`.
    pub fn api_version(self) -> &'static str {
        self.info().api_version
    }

    /// The resource plural.
    pub fn plural(self) -> &'static str {
        self.info().plural
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self.info().namespaced()
    }

    /// Whether it is a kind of the tenant quota (`ResourceQuota`, `LimitRange`), planned only
    /// for a member cluster that sets `spec.tenantQuota`.
    pub fn is_tenant_quota(self) -> bool {
        matches!(self, ObjectKind::ResourceQuota | ObjectKind::LimitRange)
    }

    /// Whether it is a kind of the planned data path (`Secret`, `NetworkPolicy`, `Service`),
    /// planned only with a Prometheus cluster's `spec.prometheusExposure`.
    pub fn is_data_path(self) -> bool {
        matches!(
            self,
            ObjectKind::Secret | ObjectKind::NetworkPolicy | ObjectKind::Service
        )
    }

    /// The child kind, for kinds whose health is reported.
    pub fn child(self) -> Option<ChildKind> {
        match self {
            ObjectKind::Child(kind) => Some(kind),
            _ => None,
        }
    }

    /// The kinds a cluster of `role` receives, in creation order: the planned kinds its role
    /// serves (a test holds this to the table's `served_by`).
    pub fn for_role(role: ClusterRole) -> &'static [ObjectKind] {
        match role {
            ClusterRole::Prometheus => &ObjectKind::ALL[..13],
            ClusterRole::Grafana => &[
                ObjectKind::Namespace,
                ObjectKind::ResourceQuota,
                ObjectKind::LimitRange,
                ObjectKind::Secret,
                ObjectKind::Child(ChildKind::Grafana),
                ObjectKind::Child(ChildKind::GrafanaFolder),
                ObjectKind::Child(ChildKind::GrafanaDatasource),
                ObjectKind::Child(ChildKind::GrafanaDashboard),
            ],
        }
    }
}

/// One object that must exist in one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    /// The member cluster.
    pub cluster: String,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The full object to apply (`apiVersion`, `kind`, `metadata`, and the body).
    pub manifest: Value,
}

/// Everything a stack needs, per cluster, in creation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackPlan {
    /// The objects, grouped by cluster, each cluster's in creation order.
    pub objects: Vec<DesiredObject>,
    /// The member clusters the stack uses (sorted, unique).
    pub clusters: Vec<String>,
    /// With a planned exposure, the names the tenant Prometheus' serving certificate must be for
    /// (mutual TLS between the datasource and the Prometheus); empty without one. The plan's
    /// credential Secrets are empty until [`StackPlan::attach_credentials`] fills them.
    pub tls_server_names: Vec<String>,
}

impl StackPlan {
    /// Fills the planned credential Secrets with issued material: the Prometheus' serving
    /// certificate, key and client CA, the datasource's client certificate, key and CA. The
    /// planned hash of each then covers the material's [`TenantCredentials::serial`] (so a
    /// rotation is a change to write), never the keys themselves.
    pub fn attach_credentials(&mut self, credentials: &TenantCredentials) {
        for object in &mut self.objects {
            if object.kind != ObjectKind::Secret {
                continue;
            }
            let Some(customer) = object.manifest["metadata"]["labels"][CUSTOMER].as_str() else {
                continue;
            };
            let data = if object.name == names::prometheus_tls_secret(customer) {
                credentials.prometheus_secret_data()
            } else if object.name == names::datasource_tls_secret(customer) {
                credentials.datasource_secret_data()
            } else {
                continue;
            };
            names::stamp_planned_hash_with(object, data, &credentials.serial);
        }
    }

    /// Whether the plan holds this object: an object of the stack that it does not hold is
    /// deleted (the prune rule, also what `stacksmith diff` reports as deleted).
    pub fn holds(&self, cluster: &str, kind: ObjectKind, namespace: &str, name: &str) -> bool {
        self.objects.iter().any(|o| {
            o.cluster == cluster && o.kind == kind && o.namespace == namespace && o.name == name
        })
    }
}

/// Plans a stack, or says every problem that prevents it, with no hub ConfigMap at hand: a
/// dashboard's `configMapRef` is then a problem (see [`plan_stack_with_config_maps`], which the
/// reconcile and the offline commands use).
pub fn plan_stack(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    members: &[MemberInfo],
) -> Result<StackPlan, Vec<SpecProblem>> {
    plan_stack_with_config_maps(spec, stack, members, &DashboardConfigMaps::none())
}

/// Plans a stack like [`plan_stack`], where `config_maps` are the hub ConfigMaps the stack's
/// dashboards name (`configMapRef`), read by the caller (the reconcile's dereference stage): a
/// model they do not hold is a problem of the dashboard's `configMapRef`, and nothing is
/// planned.
pub fn plan_stack_with_config_maps(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    members: &[MemberInfo],
    config_maps: &DashboardConfigMaps,
) -> Result<StackPlan, Vec<SpecProblem>> {
    let checked = validate::check_spec(spec, stack, members, config_maps)?;
    let labels = ownership_labels(stack, &spec.customer);
    let mut objects = prometheus::objects(spec, checked.prometheus_cluster, &labels);
    objects.extend(grafana::objects(
        spec,
        checked.grafana_cluster,
        &labels,
        &checked.datasource_url,
        !checked.server_names.is_empty(),
        config_maps,
    ));
    let mut objects = quota::after_namespaces(
        objects,
        &[checked.prometheus_cluster, checked.grafana_cluster],
        &labels,
    );
    // One cluster may serve both roles: the tenant Namespace (and its quota) is then planned
    // once.
    let mut planned = BTreeSet::new();
    objects.retain(|o| {
        planned.insert((
            o.cluster.clone(),
            o.kind,
            o.namespace.clone(),
            o.name.clone(),
        ))
    });
    for object in &mut objects {
        names::stamp_planned_hash(object).map_err(|error| {
            // serde_json cannot fail on a JSON value; should it ever, the stack says so rather
            // than carrying a hash of nothing.
            vec![SpecProblem {
                field: "spec".to_owned(),
                message: format!(
                    "the planned {} {:?} cannot be written as JSON: {error}",
                    object.kind.kind(),
                    object.name
                ),
            }]
        })?;
    }
    let clusters: BTreeSet<String> = objects.iter().map(|o| o.cluster.clone()).collect();
    Ok(StackPlan {
        objects,
        clusters: clusters.into_iter().collect(),
        tls_server_names: checked.server_names,
    })
}

#[cfg(test)]
mod tests {
    use stacksmith_api::labels::{MANAGED_BY, STACK_NAME, STACK_NAMESPACE, STACK_UID};

    use super::fixtures::{FULL, identity, members, spec};
    use super::*;

    #[test]
    fn a_full_stack_plans_every_object_in_creation_order() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let listed: Vec<String> = plan
            .objects
            .iter()
            .map(|o| format!("{} {} {}/{}", o.cluster, o.kind.kind(), o.namespace, o.name))
            .collect();
        assert_eq!(
            listed,
            [
                "prom-eu Namespace /customer-acme",
                "prom-eu ServiceAccount customer-acme/prometheus-acme",
                "prom-eu Role customer-acme/prometheus-acme",
                "prom-eu RoleBinding customer-acme/prometheus-acme",
                "prom-eu Prometheus customer-acme/acme",
                "prom-eu PrometheusRule customer-acme/acme-core",
                "prom-eu ServiceMonitor customer-acme/acme-api",
                "graf-eu Namespace /customer-acme",
                "graf-eu GrafanaFolder customer-acme/acme",
                "graf-eu GrafanaDatasource customer-acme/acme-prometheus",
                "graf-eu GrafanaDashboard customer-acme/acme-overview",
            ]
        );
        assert_eq!(plan.clusters, ["graf-eu", "prom-eu"]);
    }

    #[test]
    fn a_cluster_serving_both_roles_gets_each_object_once() {
        let both = vec![MemberInfo {
            name: "all-in-one".into(),
            roles: vec![ClusterRole::Prometheus, ClusterRole::Grafana],
            prometheus_url_template: Some("http://{name}.{namespace}.svc:9090".into()),
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        }];
        let yaml = FULL
            .replace("prom-eu", "all-in-one")
            .replace("graf-eu", "all-in-one");
        let plan = plan_stack(&spec(&yaml), &identity(), &both).unwrap();
        let namespaces = plan
            .objects
            .iter()
            .filter(|o| o.kind == ObjectKind::Namespace)
            .count();
        assert_eq!(namespaces, 1);
        assert_eq!(plan.objects.len(), 10);
        assert_eq!(plan.clusters, ["all-in-one"]);
    }

    #[test]
    fn every_object_leads_back_to_its_stack() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        for o in &plan.objects {
            let labels = &o.manifest["metadata"]["labels"];
            assert_eq!(labels[MANAGED_BY], "stacksmith");
            assert_eq!(labels[STACK_UID], "uid-1");
            assert_eq!(labels[STACK_NAMESPACE], "team-a");
            assert_eq!(labels[STACK_NAME], "acme");
        }
    }

    #[test]
    fn every_object_carries_its_kind_facts_from_the_table() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        for o in &plan.objects {
            let info = o.kind.info();
            assert_eq!(o.manifest["apiVersion"], info.api_version);
            assert_eq!(o.manifest["kind"], info.kind);
            assert_eq!(
                o.manifest["metadata"].get("namespace").is_some(),
                info.namespaced()
            );
        }
    }

    #[test]
    fn planning_is_deterministic() {
        let a = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        let b = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_role_receives_exactly_the_planned_kinds_its_role_serves() {
        for role in [ClusterRole::Prometheus, ClusterRole::Grafana] {
            let served: Vec<ObjectKind> = ObjectKind::ALL
                .into_iter()
                .filter(|kind| kind.info().served_by.includes(role))
                .collect();
            assert_eq!(ObjectKind::for_role(role), served.as_slice(), "{role:?}");
        }
    }

    #[test]
    fn object_kinds_read_their_facts_from_the_table() {
        assert_eq!(ObjectKind::Namespace.api_version(), "v1");
        assert!(!ObjectKind::Namespace.namespaced());
        assert_eq!(ObjectKind::RoleBinding.plural(), "rolebindings");
        assert_eq!(
            ObjectKind::Role.api_version(),
            "rbac.authorization.k8s.io/v1"
        );
        let prometheus = ObjectKind::Child(ChildKind::Prometheus);
        assert_eq!(prometheus.kind(), "Prometheus");
        assert_eq!(prometheus.plural(), "prometheuses");
        assert_eq!(prometheus.api_version(), "monitoring.coreos.com/v1");
        assert!(prometheus.namespaced());
        let mut rows: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.kind()).collect();
        rows.dedup();
        assert_eq!(rows.len(), ObjectKind::ALL.len(), "one row per kind");
    }
}

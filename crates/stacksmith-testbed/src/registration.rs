//! Preparing the remotes (stacksmith's identity, the simulator's namespace) and registering them
//! on the hub as `MemberCluster`s with their kubeconfig Secrets.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{
    ClusterRole as RbacClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stacksmith_api::labels::{MANAGED_BY, MEMBER_CLUSTER};
use stacksmith_api::rbac::{DISCOVERY_RULES, PROMETHEUS_DISCOVERY_CLUSTER_ROLE};
use stacksmith_api::{ClusterRole, MemberCluster, MemberClusterSpec, SecretKeyReference};

use crate::cluster::Cluster;
use crate::error::{Result, TestBedError};
use crate::simulator::SCENARIO_NAMESPACE;

/// The user stacksmith acts as on the remote clusters.
pub const OPERATOR_USER: &str = "stacksmith-operator";
/// The hub namespace holding the kubeconfig Secrets.
pub const SYSTEM_NAMESPACE: &str = "stacksmith-system";
const FIELD_MANAGER: &str = "stacksmith-testbed";

/// Gives stacksmith's identity its RBAC on a remote, installs the ClusterRole a tenant's
/// Prometheus is bound to in the namespaces its scrape targets list (on a Prometheus cluster, as
/// the remote chart does) and creates the simulator's namespace.
pub(crate) async fn prepare_remote(cluster: &Cluster) -> Result<()> {
    let client = cluster.client();
    let name = cluster.name();
    apply_cluster_scoped(client, name, &operator_cluster_role()).await?;
    if cluster.roles().contains(&ClusterRole::Prometheus) {
        apply_cluster_scoped(client, name, &prometheus_discovery_cluster_role()).await?;
    }
    apply_cluster_scoped(
        client,
        name,
        &ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(OPERATOR_USER.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: OPERATOR_USER.into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: OPERATOR_USER.into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                namespace: None,
            }]),
        },
    )
    .await?;
    apply_cluster_scoped(client, name, &namespace(SCENARIO_NAMESPACE)).await
}

/// What stacksmith may do on a remote cluster: manage tenant namespaces, their quota, the RBAC a
/// Prometheus needs, and the child kinds (dedicated Grafana instances included; the shared ones
/// it only reads, to explain `NoMatchingInstance`); read CRDs; list every kind (to prove a
/// tenant namespace empty before deleting it).
fn operator_cluster_role() -> RbacClusterRole {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let manage = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let read = ["get", "list", "watch"];
    RbacClusterRole {
        metadata: ObjectMeta {
            name: Some(OPERATOR_USER.into()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(&[""], &["namespaces", "serviceaccounts"], &manage),
            // The tenant quota (a MemberCluster's `tenantQuota`), with the remote chart's verbs:
            // no `update`, which stacksmith never uses.
            rule(
                &[""],
                &["resourcequotas", "limitranges"],
                &["get", "list", "watch", "create", "patch", "delete"],
            ),
            rule(&[""], &["events"], &["create", "patch"]),
            rule(
                &["rbac.authorization.k8s.io"],
                &["roles", "rolebindings"],
                &[&manage[..], &["bind", "escalate"]].concat(),
            ),
            rule(&[""], &["endpoints", "pods"], &read),
            // The data path (a MemberCluster's `prometheusExposure`), with the remote chart's
            // verbs (`dataPath: true`): the credentials' Secrets, the Service and the
            // NetworkPolicy of each tenant's Prometheus.
            rule(
                &[""],
                &["secrets", "services"],
                &["get", "list", "watch", "create", "patch", "delete"],
            ),
            rule(
                &["networking.k8s.io"],
                &["networkpolicies"],
                &["get", "list", "watch", "create", "patch", "delete"],
            ),
            rule(
                &["monitoring.coreos.com"],
                &[
                    "prometheuses",
                    "prometheusrules",
                    "servicemonitors",
                    "alertmanagerconfigs",
                ],
                &manage,
            ),
            // `grafanas`: the shared instances are only read (to explain `NoMatchingInstance`);
            // a stack's dedicated instance is written like any child.
            rule(
                &["grafana.integreatly.org"],
                &[
                    "grafanas",
                    "grafanafolders",
                    "grafanadatasources",
                    "grafanadashboards",
                ],
                &manage,
            ),
            // prometheus-operator's rejections of rules and monitors (its InvalidConfiguration
            // Events), the evidence for a config resource with no status.
            rule(&["events.k8s.io"], &["events"], &read),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &read,
            ),
            // As the remote chart with `tenantNamespaceDeletion: true`: listing every kind in a
            // tenant namespace (stacksmith asks for metadata only) is how it proves the
            // namespace holds nothing of anyone else's before deleting it.
            rule(&["*"], &["*"], &["list"]),
        ]),
        aggregation_rule: None,
    }
}

/// [`PROMETHEUS_DISCOVERY_CLUSTER_ROLE`], as the remote chart installs it
/// (`templates/prometheus-discovery-clusterrole.yaml`): the discovery rules, nothing else.
fn prometheus_discovery_cluster_role() -> RbacClusterRole {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    RbacClusterRole {
        metadata: ObjectMeta {
            name: Some(PROMETHEUS_DISCOVERY_CLUSTER_ROLE.into()),
            ..Default::default()
        },
        rules: Some(
            DISCOVERY_RULES
                .iter()
                .map(|rule| PolicyRule {
                    api_groups: Some(strings(rule.api_groups)),
                    resources: Some(strings(rule.resources)),
                    verbs: strings(rule.verbs),
                    ..Default::default()
                })
                .collect(),
        ),
        aggregation_rule: None,
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api
        .create(&kube::api::PostParams::default(), &namespace(name))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(TestBedError::kube(format!("create namespace {name}"))(err)),
    }
}

/// The name of the hub Secret holding a member's kubeconfig.
pub fn kubeconfig_secret_name(member: &str) -> String {
    format!("member-{member}-kubeconfig")
}

/// Registers `member` on the hub: its kubeconfig Secret and its `MemberCluster`.
pub(crate) async fn register(hub: &Cluster, member: &Cluster) -> Result<()> {
    let client = hub.client();
    apply_cluster_scoped(client, hub.name(), &namespace(SYSTEM_NAMESPACE)).await?;
    let secret_name = kubeconfig_secret_name(member.name());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(SYSTEM_NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                (MEMBER_CLUSTER.to_owned(), member.name().to_owned()),
                (MANAGED_BY.to_owned(), FIELD_MANAGER.to_owned()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "kubeconfig".to_owned(),
            ByteString(member.operator_kubeconfig().as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    secrets
        .patch(
            &secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(TestBedError::kube(format!(
            "apply Secret {SYSTEM_NAMESPACE}/{secret_name}"
        )))?;
    let prometheus_url_template = member.roles().contains(&ClusterRole::Prometheus).then(|| {
        format!(
            "http://{{name}}.{{namespace}}.svc.{}.example:9090",
            member.name()
        )
    });
    let mut registration = MemberCluster::new(
        member.name(),
        MemberClusterSpec {
            kubeconfig_secret_ref: SecretKeyReference {
                namespace: SYSTEM_NAMESPACE.into(),
                name: secret_name,
                key: "kubeconfig".into(),
            },
            roles: member.roles().to_vec(),
            prometheus_url_template,
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
            request_timeout_seconds: 10,
        },
    );
    registration.metadata.labels = Some(BTreeMap::from([(
        MANAGED_BY.to_owned(),
        FIELD_MANAGER.to_owned(),
    )]));
    apply_cluster_scoped(client, hub.name(), &registration).await
}

async fn apply_cluster_scoped<K>(client: &Client, cluster: &str, object: &K) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::all(client.clone());
    let mut body = serde_json::to_value(object)
        .map_err(|e| TestBedError::format(K::kind(&()).to_string(), e))?;
    if let Some(map) = body.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(TestBedError::kube(format!(
        "apply {} {name} on {cluster}",
        K::kind(&())
    )))?;
    Ok(())
}

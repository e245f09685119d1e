//! A stack's status judged from its member clusters directly, not from what the operator last
//! wrote on the hub (`stacksmith status --live`).
//!
//! The children are planned exactly as the reconcile plans them, read with one GET each from
//! their member cluster (each under the member's `requestTimeoutSeconds`), judged with
//! [`assess`] and aggregated with [`aggregate`]: the same verdicts, reasons and root cause the
//! operator would write. A `PrometheusRule` or `ServiceMonitor` without a status is judged, as
//! the operator does, from the `Prometheus` objects of its namespace and prometheus-operator's
//! rejection Events there (one LIST each per namespace; without the Prometheus list it stays
//! `StatusNotReported`, without the Events it is judged without rejections). Nothing is written
//! anywhere. A member that cannot be reached (or whose kubeconfig Secret is unusable) makes its
//! own children `Unknown` / `ClusterUnreachable`, and nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt as _};
use stacksmith_api::{CustomerStack, CustomerStackStatus, MemberCluster};
use stacksmith_core::aggregate::{
    AggregateInput, ChildObservation, ClusterObservation, ClusterState, ForeignObject,
    ObservedState, aggregate,
};
use stacksmith_core::observe::{
    Ownership, explain_no_matching_instance, observed_from_read, unreachable_children,
};
use stacksmith_core::plan::{
    DesiredObject, MemberInfo, ObjectKind, StackIdentity, plan_stack_with_config_maps,
};
use stacksmith_core::{
    ChildHealth, ChildKind, HealthReason, Rejection, assess, assess_with_evidence,
};

use crate::apply::ownership;
use crate::dashboard_sources::read_dashboard_config_maps;
use crate::member::client::member_client_from_secret;
use crate::member::config_evidence::{
    NamespaceEvidence, events_resource, needs_config_evidence, rejection_field_selector,
};
use crate::member::member_info;
use crate::remote::{api_resource, call, failure_message, object_api};
use crate::telemetry::api_calls::ApiCallCounter;

/// Why a stack's live status could not be computed at all.
#[derive(Debug, thiserror::Error)]
pub enum LiveStatusError {
    /// The stack lacks a field every stored object has.
    #[error("the CustomerStack has no {0}")]
    Incomplete(&'static str),
    /// The dashboard-source ConfigMaps the stack's dashboards name could not be read.
    #[error("reading the dashboards' ConfigMaps on the hub: {0}")]
    ConfigMaps(#[source] crate::RemoteError),
}

/// The status `stack` would have if it were aggregated now from what its member clusters say.
///
/// `members` are the hub's `MemberCluster`s; their kubeconfig Secrets are read through `hub`.
/// The stack's current status (if any) is the previous status of the aggregation, so times and
/// last known verdicts carry over as they do in the operator.
pub async fn live_status(
    hub: &Client,
    stack: &CustomerStack,
    members: &[MemberCluster],
    now: &Time,
) -> Result<CustomerStackStatus, LiveStatusError> {
    let identity = StackIdentity {
        namespace: stack
            .namespace()
            .ok_or(LiveStatusError::Incomplete("namespace"))?,
        name: stack.name_any(),
        uid: stack.uid().ok_or(LiveStatusError::Incomplete("uid"))?,
    };
    let infos: Vec<MemberInfo> = members.iter().map(member_info).collect();
    // The dashboards' ConfigMaps as the hub holds them now.
    let config_maps = read_dashboard_config_maps(hub, &identity.namespace, &stack.spec)
        .await
        .map_err(LiveStatusError::ConfigMaps)?;
    let (problems, passes) =
        match plan_stack_with_config_maps(&stack.spec, &identity, &infos, &config_maps) {
            Err(problems) => (problems, Vec::new()),
            Ok(plan) => {
                let passes = join_all(plan.clusters.iter().map(|cluster| {
                    let planned: Vec<&DesiredObject> = plan
                        .objects
                        .iter()
                        .filter(|o| &o.cluster == cluster)
                        .collect();
                    let member = members.iter().find(|m| &m.name_any() == cluster);
                    observe_cluster(hub, cluster, member, planned, &identity.uid)
                }))
                .await;
                (Vec::new(), passes)
            }
        };
    let children: Vec<ChildObservation> = passes.iter().flat_map(|p| p.children.clone()).collect();
    let clusters: Vec<ClusterObservation> = passes.iter().map(|p| p.observation.clone()).collect();
    let foreign: Vec<ForeignObject> = passes.iter().flat_map(|p| p.foreign.clone()).collect();
    Ok(aggregate(&AggregateInput {
        generation: stack.metadata.generation,
        paused: stack.spec.paused,
        spec_problems: &problems,
        policy_violations: &[],
        children: &children,
        clusters: &clusters,
        foreign_objects: &foreign,
        failed_objects: &[],
        deletion: None,
        previous: stack.status.as_ref(),
        now,
        inventory: stack
            .status
            .as_ref()
            .map_or(&[][..], |s| s.inventory.as_slice()),
        refused_move: None,
    }))
}

/// What was found in one member cluster.
struct ClusterFindings {
    observation: ClusterObservation,
    children: Vec<ChildObservation>,
    foreign: Vec<ForeignObject>,
}

impl ClusterFindings {
    /// The cluster cannot be read: its children `ClusterUnreachable`.
    fn unreachable(cluster: &str, planned: &[&DesiredObject], message: &str) -> Self {
        ClusterFindings {
            observation: ClusterObservation {
                cluster: cluster.to_owned(),
                state: ClusterState::Unreachable {
                    message: message.to_owned(),
                },
            },
            children: unreachable_children(planned.iter().copied(), message),
            foreign: Vec::new(),
        }
    }
}

/// Reads every planned object of one cluster; any failure to read makes the whole cluster
/// unreachable (its children Unknown), as the operator's watches would.
async fn observe_cluster(
    hub: &Client,
    cluster: &str,
    member: Option<&MemberCluster>,
    planned: Vec<&DesiredObject>,
    uid: &str,
) -> ClusterFindings {
    let Some(member) = member else {
        return ClusterFindings::unreachable(cluster, &planned, "MemberCluster not registered");
    };
    let client = match member_client_from_secret(hub, member, &ApiCallCounter::new()).await {
        Ok((client, _)) => client,
        Err(err) => {
            let message = failure_message(err.probe_failure(), &err.to_string());
            return ClusterFindings::unreachable(cluster, &planned, &message);
        }
    };
    let timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    // Namespaces and children only: the RBAC plumbing says nothing about health.
    let wanted: Vec<&DesiredObject> = planned
        .iter()
        .copied()
        .filter(|d| d.kind == ObjectKind::Namespace || d.kind.child().is_some())
        .collect();
    let reads = join_all(wanted.iter().map(|d| read(&client, d, timeout))).await;
    let mut found = Vec::new();
    for (desired, result) in wanted.iter().zip(reads) {
        match result {
            Ok(object) => found.push((*desired, object)),
            Err(message) => return ClusterFindings::unreachable(cluster, &planned, &message),
        }
    }
    let mut evidence = MemberEvidence::new(&client, timeout, &found);
    let mut children = Vec::new();
    let mut foreign = Vec::new();
    for (desired, object) in &found {
        let owner = object.as_ref().map(|o| ownership(o, uid, cluster));
        let Some(kind) = desired.kind.child() else {
            if let Some(Ownership::Foreign(owner)) = owner {
                foreign.push(ForeignObject {
                    cluster: cluster.to_owned(),
                    kind: desired.kind.kind().to_owned(),
                    name: desired.name.clone(),
                    owner,
                });
            }
            continue;
        };
        let value = object.as_ref().and_then(|o| serde_json::to_value(o).ok());
        let state = match (value, owner) {
            (Some(value), Some(Ownership::Ours)) => {
                ObservedState::Live(evidence.judge(kind, &value, &desired.namespace).await)
            }
            (value, owner) => observed_from_read(kind, value.as_ref().zip(owner), assess),
        };
        children.push(ChildObservation {
            cluster: cluster.to_owned(),
            kind,
            namespace: desired.namespace.clone(),
            name: desired.name.clone(),
            state,
        });
    }
    ClusterFindings {
        observation: ClusterObservation {
            cluster: cluster.to_owned(),
            state: ClusterState::Reachable,
        },
        children,
        foreign,
    }
}

/// What a member shows besides a child itself, read once per namespace (or per member) and only
/// when a child needs it: the config evidence of rules and monitors without a status, and the
/// `Grafana` instances that explain a `NoMatchingInstance`.
struct MemberEvidence<'a> {
    client: &'a Client,
    timeout: Duration,
    namespace_labels: BTreeMap<String, serde_json::Value>,
    config: BTreeMap<String, Option<NamespaceEvidence>>,
    grafanas: Option<Vec<serde_json::Value>>,
}

impl<'a> MemberEvidence<'a> {
    fn new(
        client: &'a Client,
        timeout: Duration,
        found: &[(&DesiredObject, Option<DynamicObject>)],
    ) -> Self {
        let namespace_labels = found
            .iter()
            .filter(|(desired, _)| desired.kind == ObjectKind::Namespace)
            .filter_map(|(desired, object)| {
                let labels = serde_json::to_value(object.as_ref()?.labels()).ok()?;
                Some((desired.name.clone(), labels))
            })
            .collect();
        MemberEvidence {
            client,
            timeout,
            namespace_labels,
            config: BTreeMap::new(),
            grafanas: None,
        }
    }

    /// A child of ours judged as the operator judges it from its caches.
    async fn judge(
        &mut self,
        kind: ChildKind,
        value: &serde_json::Value,
        namespace: &str,
    ) -> ChildHealth {
        let mut health = assess(kind, value);
        if needs_config_evidence(kind, value) {
            if !self.config.contains_key(namespace) {
                let labels = self.namespace_labels.get(namespace).cloned();
                let read = read_evidence(self.client, namespace, labels, self.timeout).await;
                self.config.insert(namespace.to_owned(), read);
            }
            if let Some(Some(found)) = self.config.get(namespace) {
                health = assess_with_evidence(kind, value, &found.evidence());
            }
        }
        if health.reason == HealthReason::NoMatchingInstance {
            if self.grafanas.is_none() {
                self.grafanas = Some(list_grafanas(self.client, self.timeout).await);
            }
            let grafanas = self.grafanas.as_deref().unwrap_or_default();
            explain_no_matching_instance(&mut health, value, grafanas);
        }
        health
    }
}

/// One GET under the member's timeout; the error is a one-line description without
/// credentials.
async fn read(
    client: &Client,
    desired: &DesiredObject,
    timeout: Duration,
) -> Result<Option<DynamicObject>, String> {
    let api = object_api(client, desired.kind, &desired.namespace);
    call(timeout, api.get_opt(&desired.name))
        .await
        .map_err(|err| {
            let (failure, message) = err.classify();
            failure_message(failure, &message)
        })
}

/// What the member shows about the rules and monitors of `namespace` (see
/// [`crate::config_evidence`]): `None` when its `Prometheus` objects cannot be listed; rejections
/// `None` when its Events cannot be.
async fn read_evidence(
    client: &Client,
    namespace: &str,
    namespace_labels: Option<serde_json::Value>,
    timeout: Duration,
) -> Option<NamespaceEvidence> {
    let prometheus = api_resource(ObjectKind::Child(ChildKind::Prometheus));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &prometheus);
    let prometheuses = match tokio::time::timeout(timeout, api.list(&ListParams::default())).await {
        Ok(Ok(list)) => list
            .items
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect(),
        _ => return None,
    };
    let events: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &events_resource());
    let params = ListParams::default().fields(&rejection_field_selector());
    let rejections = match tokio::time::timeout(timeout, events.list(&params)).await {
        Ok(Ok(list)) => Some(
            list.items
                .iter()
                .filter_map(|e| Rejection::from_event(&serde_json::to_value(e).ok()?))
                .collect(),
        ),
        _ => None,
    };
    Some(NamespaceEvidence {
        prometheuses,
        namespace_labels,
        rejections,
    })
}

/// The member's `Grafana` instances (empty when they cannot be read: the message then only
/// lacks its explanation).
async fn list_grafanas(client: &Client, timeout: Duration) -> Vec<serde_json::Value> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &api_resource(ObjectKind::Child(ChildKind::Grafana)),
    );
    match tokio::time::timeout(timeout, api.list(&ListParams::default())).await {
        Ok(Ok(list)) => list
            .items
            .iter()
            .filter_map(|g| serde_json::to_value(g).ok())
            .collect(),
        _ => Vec::new(),
    }
}

//! A live connection to one member cluster: its client, the watch caches of the kinds its roles
//! serve (no GET/LIST per reconcile), the index of which cached objects each stack owns, and
//! whether the member answers as far as its watches tell.
//!
//! Every watch also wakes the stacks its events concern (see [`super::wake`]); a failing watch
//! marks the member unreachable at once. The one exception is the watch of prometheus-operator's
//! rejection Events ([`super::config_evidence`]): evidence for judging rules and monitors
//! without a status, whose failure only leaves that evidence out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use stacksmith_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use stacksmith_api::{ClusterRole, MemberCluster};
use stacksmith_core::ChildKind;
use stacksmith_core::plan::ObjectKind;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::cached_object::{ObjectCache, WatchedObject};
use super::config_evidence::{self, NamespaceEvidence, RejectionIndex};
use super::wake::{Waker, is_managed};
use super::write_gate::WriteGate;
use crate::remote::{api_resource, classify_watch_error};

/// Whether a member answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// It answers.
    Reachable,
    /// It does not, or cannot be used; the message holds no credential.
    Unreachable(String),
}

/// A live connection to one member cluster.
pub struct MemberConnection {
    /// The `MemberCluster` name.
    pub name: String,
    /// A client with the member's timeouts.
    pub client: Client,
    /// The member's request timeout.
    pub timeout: Duration,
    /// How many reconciles write to it at once, and whether its writes time out.
    pub writes: WriteGate,
    stores: BTreeMap<ObjectKind, ObjectCache>,
    /// Per cache: whether its first full list has been seen.
    listed: Vec<watch::Receiver<bool>>,
    /// Every `Grafana` instance (on members serving the grafana role: the cache of that kind),
    /// to explain `NoMatchingInstance`.
    grafanas: Option<ObjectCache>,
    /// prometheus-operator's rejection Events (on members serving the prometheus role), to judge
    /// rules and monitors that have no status.
    rejections: Option<Arc<RejectionIndex>>,
    pub(super) reachability: Arc<RwLock<Reachability>>,
    /// Notified when a watch finds the member's reachability changed (the supervisor re-probes).
    pub(super) reachability_changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MemberConnection {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl MemberConnection {
    /// The watch cache of a kind, if this member serves it.
    pub fn store(&self, kind: ObjectKind) -> Option<&ObjectCache> {
        self.stores.get(&kind)
    }

    /// The `Grafana` instances on this member as JSON (empty unless it serves the grafana role).
    pub fn grafanas(&self) -> Vec<serde_json::Value> {
        self.grafanas
            .as_ref()
            .map(|s| s.all().iter().map(|g| g.to_value()).collect())
            .unwrap_or_default()
    }

    /// What this member shows about the `PrometheusRule`s and `ServiceMonitor`s of `namespace`
    /// besides their status: its `Prometheus` objects, its labels and the rejections
    /// prometheus-operator recorded there (from the caches, no request).
    pub fn config_evidence(&self, namespace: &str) -> NamespaceEvidence {
        config_evidence::from_caches(
            self.store(ObjectKind::Child(ChildKind::Prometheus)),
            self.store(ObjectKind::Namespace),
            self.rejections.as_deref(),
            namespace,
        )
    }

    /// Waits (at most `timeout`) until the rejection Events have been listed once, or their
    /// watch failed; returns at once on members without that watch or once it settled.
    pub async fn wait_rejections(&self, timeout: Duration) {
        if let Some(rejections) = &self.rejections {
            rejections.wait_settled(timeout).await;
        }
    }

    /// Whether the member answers right now (as far as its watches tell).
    pub fn reachability(&self) -> Reachability {
        self.reachability
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|_| Reachability::Unreachable("state lost".into()))
    }

    /// Whether every watch cache has had its first full list.
    pub async fn wait_caches(&self, timeout: Duration) -> bool {
        // Not `Store::wait_until_ready`: kube's readiness wakes only the last of several tasks
        // waiting on one store at once (a oneshot receiver keeps one waker), so every other
        // reconcile waiting for a rebuilt connection's caches slept out its whole timeout.
        let waits = self.listed.iter().map(|listed| {
            let mut listed = listed.clone();
            async move { listed.wait_for(|done| *done).await.is_ok() }
        });
        tokio::time::timeout(timeout, futures::future::join_all(waits))
            .await
            .is_ok_and(|listed| listed.into_iter().all(|done| done))
    }
}

/// Whether the member's cache of `kind` holds only stacksmith's objects (watched by label): the
/// RBAC plumbing, ServiceAccounts, Roles and RoleBindings, of which clusters hold many, and the
/// tenant quota, ResourceQuotas and LimitRanges, which the platform may have put in namespaces
/// of its own. An object of such a kind missing from the cache may still exist as someone
/// else's: it is created, never applied over (see `apply::apply_object`).
pub fn cache_holds_only_ours(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::ServiceAccount | ObjectKind::Role | ObjectKind::RoleBinding
    ) || kind.is_tenant_quota()
        || kind.is_data_path()
}

/// Which objects of a kind stacksmith watches on a member: child custom resources and
/// namespaces unfiltered (so an object of the same name that stacksmith does not own is seen,
/// without a GET), the RBAC plumbing and the tenant quota ([`cache_holds_only_ours`]) by
/// label.
fn watch_config(kind: ObjectKind) -> watcher::Config {
    if cache_holds_only_ours(kind) {
        watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
    } else {
        watcher::Config::default()
    }
}

/// The kinds watched on `member`: those its roles receive; the tenant quota's (ResourceQuota,
/// LimitRange) only when it sets `spec.tenantQuota`, so that a member whose RBAC predates them
/// (a remote chart not upgraded yet) still works, as long as it sets no quota. A quota removed
/// later is still deleted: deletes go by the inventory, not the cache.
fn watched_kinds(member: &MemberCluster) -> BTreeSet<ObjectKind> {
    member
        .spec
        .roles
        .iter()
        .flat_map(|r| ObjectKind::for_role(*r))
        .copied()
        .filter(|kind| member.spec.tenant_quota.is_some() || !kind.is_tenant_quota())
        .filter(|kind| !kind.is_data_path() || serves_data_path(member, *kind))
        .collect()
}

/// Whether `member` may receive objects of a data-path kind: a Prometheus cluster with
/// `spec.prometheusExposure` all three; every Grafana cluster the datasource's Secret (which
/// Prometheus cluster its stacks use is theirs to say).
fn serves_data_path(member: &MemberCluster, kind: ObjectKind) -> bool {
    let prometheus_exposure = member.spec.prometheus_exposure.is_some()
        && member.spec.roles.contains(&ClusterRole::Prometheus);
    let grafana = member.spec.roles.contains(&ClusterRole::Grafana);
    prometheus_exposure || (grafana && kind == ObjectKind::Secret)
}

/// What one watch task shares with its connection.
#[derive(Clone)]
struct WatchShared {
    member: String,
    reachability: Arc<RwLock<Reachability>>,
    reachability_changed: Arc<Notify>,
    waker: Waker,
}

/// Connects to `member` through `client`: starts one watch per kind its roles serve (on Grafana
/// members that includes every `Grafana` instance, dedicated or shared; the rejection Events on
/// Prometheus members); at most `write_slots` reconciles write to it at once.
pub(super) fn start_connection(
    member: &MemberCluster,
    client: Client,
    waker: &Waker,
    write_slots: usize,
) -> MemberConnection {
    let name = member.name_any();
    let kinds = watched_kinds(member);
    let shared = WatchShared {
        member: name.clone(),
        reachability: Arc::new(RwLock::new(Reachability::Reachable)),
        reachability_changed: Arc::new(Notify::new()),
        waker: waker.clone(),
    };
    let mut stores = BTreeMap::new();
    let mut listed = Vec::new();
    let mut tasks = Vec::new();
    for kind in kinds {
        let (store, kind_listed, task) =
            watch_kind(&client, kind, api_resource(kind), shared.clone());
        stores.insert(kind, store);
        listed.push(kind_listed);
        tasks.push(task);
    }
    // The `Grafana` kind is watched unfiltered, like every child kind: its cache holds the
    // shared instances too.
    let grafanas = stores.get(&ObjectKind::Child(ChildKind::Grafana)).cloned();
    let rejections = member
        .spec
        .roles
        .contains(&ClusterRole::Prometheus)
        .then(|| {
            let index = Arc::new(RejectionIndex::default());
            tasks.push(tokio::spawn(config_evidence::watch_rejections(
                client.clone(),
                Arc::clone(&index),
                name.clone(),
                waker.for_rejections(&stores, &name),
            )));
            index
        });
    MemberConnection {
        writes: WriteGate::new(&name, write_slots),
        name,
        timeout: Duration::from_secs(u64::from(member.spec.request_timeout_seconds)),
        client,
        stores,
        listed,
        grafanas,
        rejections,
        reachability: shared.reachability,
        reachability_changed: shared.reachability_changed,
        tasks,
    }
}

/// Starts the watch of one kind into a cache of compact objects (see [`super::cached_object`]),
/// without managedFields; the flag turns true at its first full list.
fn watch_kind(
    client: &Client,
    kind: ObjectKind,
    resource: ApiResource,
    shared: WatchShared,
) -> (ObjectCache, watch::Receiver<bool>, JoinHandle<()>) {
    let api: Api<WatchedObject> = Api::all_with(client.clone(), &resource);
    let cache = ObjectCache::default();
    let config = watch_config(kind);
    let stream = watcher(api, config).backoff(member_watch_backoff());
    let (listed_tx, listed) = watch::channel(false);
    let filled = cache.clone();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(event) = &event {
                filled.apply(event);
                if matches!(event, watcher::Event::InitDone) {
                    listed_tx.send_replace(true);
                }
            }
            on_watch_event(kind, &event, &shared);
        }
    });
    (cache, listed, task)
}

/// How a member watch retries after a failure: from 0.5 s, doubling (with jitter) up to 5 s,
/// starting over after 2 min without a failure.
///
/// kube's default climbs to 30 s, for each kind on its own; a member's API server that has just
/// come back (its connection rebuilt by the supervisor's heartbeat) often refuses the first LISTs
/// of custom resources for a few seconds, and 30 s steps would keep its caches empty long after
/// it answers. A member that is down costs one connection attempt per kind every 5 s.
pub(super) fn member_watch_backoff() -> impl kube::runtime::utils::Backoff {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(exponential),
        Duration::from_secs(120),
    )
}

/// What one watch event means for the connection: the member's reachability and the stacks to
/// wake.
fn on_watch_event(
    kind: ObjectKind,
    event: &Result<watcher::Event<WatchedObject>, watcher::Error>,
    shared: &WatchShared,
) {
    let now_reachable = match event {
        Ok(_) => Reachability::Reachable,
        Err(err) => Reachability::Unreachable(classify_watch_error(err)),
    };
    let flipped = shared
        .reachability
        .write()
        .map(|mut r| {
            let was = std::mem::replace(&mut *r, now_reachable.clone());
            std::mem::discriminant(&was) != std::mem::discriminant(&now_reachable)
        })
        .unwrap_or(false);
    if flipped {
        tracing::info!(member = %shared.member, kind = kind.kind(), state = ?now_reachable, "member reachability changed");
        shared.waker.users_of(&shared.member);
        shared.reachability_changed.notify_one();
    }
    // A Grafana instance changed: the stacks on this member may explain their
    // NoMatchingInstance differently now.
    if kind == ObjectKind::Child(ChildKind::Grafana)
        && matches!(
            event,
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))
        )
    {
        shared.waker.users_of(&shared.member);
    }
    match event {
        Ok(watcher::Event::Apply(obj)) | Ok(watcher::Event::InitApply(obj)) => {
            shared.waker.owner_of(&obj.head().labels);
        }
        Ok(watcher::Event::Delete(obj)) => {
            let labels = obj.head().labels;
            shared.waker.owner_of(&labels);
            // An object stacksmith does not own went away: a stack in conflict with it may
            // write now; no other stack is concerned.
            if !is_managed(&labels) {
                let (namespace, name) = obj.namespace_and_name();
                shared
                    .waker
                    .blocked_by(&shared.member, kind.kind(), namespace, name);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member(spec: serde_json::Value) -> MemberCluster {
        serde_json::from_value(json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
            "metadata": {"name": "m"}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_quota_kinds_are_watched_and_cached_by_label_only_with_a_tenant_quota() {
        let secret = json!({"namespace": "s", "name": "k"});
        let plain = member(json!({"kubeconfigSecretRef": secret, "roles": ["grafana"]}));
        let kinds = watched_kinds(&plain);
        assert!(kinds.contains(&ObjectKind::Namespace));
        assert!(!kinds.iter().any(|k| k.is_tenant_quota()), "{kinds:?}");
        let quota = member(json!({"kubeconfigSecretRef": secret, "roles": ["grafana"],
            "tenantQuota": {"hard": {"pods": "4"}}}));
        let kinds = watched_kinds(&quota);
        assert!(kinds.contains(&ObjectKind::ResourceQuota));
        assert!(kinds.contains(&ObjectKind::LimitRange));
        for kind in [ObjectKind::ResourceQuota, ObjectKind::LimitRange] {
            assert!(cache_holds_only_ours(kind));
        }
        assert!(!cache_holds_only_ours(ObjectKind::Namespace));
    }

    #[test]
    fn the_data_path_kinds_are_watched_by_label_where_they_can_be_planned() {
        let secret = json!({"namespace": "s", "name": "k"});
        let data_path = |kinds: &BTreeSet<ObjectKind>| -> Vec<ObjectKind> {
            kinds.iter().copied().filter(|k| k.is_data_path()).collect()
        };
        let template = member(
            json!({"kubeconfigSecretRef": secret, "roles": ["prometheus"],
            "prometheusUrlTemplate": "http://{name}.{namespace}:9090"}),
        );
        assert!(data_path(&watched_kinds(&template)).is_empty());
        let exposed = member(
            json!({"kubeconfigSecretRef": secret, "roles": ["prometheus"],
            "prometheusExposure": {"type": "ClusterIP"}}),
        );
        assert_eq!(
            data_path(&watched_kinds(&exposed)),
            [
                ObjectKind::Secret,
                ObjectKind::NetworkPolicy,
                ObjectKind::Service
            ]
        );
        let grafana = member(json!({"kubeconfigSecretRef": secret, "roles": ["grafana"]}));
        assert_eq!(data_path(&watched_kinds(&grafana)), [ObjectKind::Secret]);
        for kind in [
            ObjectKind::Secret,
            ObjectKind::NetworkPolicy,
            ObjectKind::Service,
        ] {
            assert!(cache_holds_only_ours(kind), "{kind:?}");
        }
    }
}

//! The fleet: one connection per registered `MemberCluster`, kept current.
//!
//! For every `MemberCluster` a supervisor task builds a client from the kubeconfig Secret,
//! probes the cluster, records the result in the `MemberCluster`'s status, and starts watches on
//! the child kinds of the cluster's roles. The watches feed caches (no GET/LIST per reconcile)
//! and wake the stacks whose children changed. A rotated Secret or a changed spec rebuilds the
//! connection without a restart; a failing watch marks the cluster unreachable at once. The one
//! exception is the watch of prometheus-operator's rejection Events on Prometheus clusters
//! ([`crate::config_evidence`]): evidence for judging rules and monitors without a status, whose
//! failure only leaves that evidence out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use stacksmith_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE, STACK_UID,
};
use stacksmith_api::{CustomerStack, MemberCluster, MemberClusterStatus};
use stacksmith_core::ChildKind;
use stacksmith_core::member_status::{ProbeFailure, ProbeResult};
use stacksmith_core::plan::{MemberInfo, ObjectKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::api_calls::ApiCallCounter;
use crate::cached_object::CachedObject;
use crate::config_evidence::{self, NamespaceEvidence, RejectionIndex, regarded_kind};
use crate::member_client::member_client_from_secret;
use crate::member_probe::{probe_with_client, record_status};

/// How often a connected member is probed again with nothing happening (status is written only
/// when it changed). The member's watches tell at once when it stops or starts answering, and
/// that probes it immediately; this is only a safety net, so an idle operator stays quiet.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(300);
/// How soon an unusable member is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

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
    stores: BTreeMap<ObjectKind, Store<CachedObject>>,
    /// The `Grafana` instances (read only; on members serving the grafana role), to explain
    /// `NoMatchingInstance`.
    grafanas: Option<Store<CachedObject>>,
    /// prometheus-operator's rejection Events (on members serving the prometheus role), to judge
    /// rules and monitors that have no status.
    rejections: Option<Arc<RejectionIndex>>,
    reachability: Arc<RwLock<Reachability>>,
    /// Which cached objects each stack owns (by the `stack-uid` label), kept by the watches.
    owners: Arc<RwLock<OwnerIndex>>,
    /// Notified when a watch finds the member's reachability changed (the supervisor re-probes).
    reachability_changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MemberConnection {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl MemberConnection {
    /// The watch cache of a kind, if this member serves it.
    pub fn store(&self, kind: ObjectKind) -> Option<&Store<CachedObject>> {
        self.stores.get(&kind)
    }

    /// Every kind this member serves with its cache.
    pub fn stores(&self) -> impl Iterator<Item = (ObjectKind, &Store<CachedObject>)> {
        self.stores.iter().map(|(k, s)| (*k, s))
    }

    /// The `Grafana` instances on this member as JSON (empty unless it serves the grafana role).
    pub fn grafanas(&self) -> Vec<serde_json::Value> {
        self.grafanas
            .as_ref()
            .map(|s| s.state().iter().map(|g| g.to_value()).collect())
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

    /// The cached objects labelled as belonging to the stack with uid `stack_uid` (kind,
    /// namespace, name), without scanning the caches.
    pub fn labelled_for(&self, stack_uid: &str) -> Vec<(ObjectKind, String, String)> {
        let index = match self.owners.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index
            .get(stack_uid)
            .map(|objects| objects.iter().cloned().collect())
            .unwrap_or_default()
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
        let waits = self.stores.values().map(|s| s.wait_until_ready());
        tokio::time::timeout(timeout, futures::future::join_all(waits))
            .await
            .is_ok()
    }
}

/// Stack uid → the cached objects labelled with it.
type OwnerIndex = HashMap<String, BTreeSet<(ObjectKind, String, String)>>;

/// Keeps the owner index of one kind in step with its watch.
fn index_owner(index: &RwLock<OwnerIndex>, kind: ObjectKind, event: &watcher::Event<CachedObject>) {
    let mut index = match index.write() {
        Ok(index) => index,
        Err(poisoned) => poisoned.into_inner(),
    };
    let entry = |object: &CachedObject| {
        let uid = object.labels().get(STACK_UID).cloned()?;
        Some((
            uid,
            (
                kind,
                object.namespace().unwrap_or_default(),
                object.name_any(),
            ),
        ))
    };
    match event {
        // A (re)list starts: what this kind had is listed again.
        watcher::Event::Init => index.retain(|_, objects| {
            objects.retain(|(k, _, _)| *k != kind);
            !objects.is_empty()
        }),
        watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
            if let Some((uid, key)) = entry(object) {
                index.entry(uid).or_default().insert(key);
            }
        }
        watcher::Event::Delete(object) => {
            if let Some((uid, key)) = entry(object)
                && let Some(objects) = index.get_mut(&uid)
            {
                objects.remove(&key);
                if objects.is_empty() {
                    index.remove(&uid);
                }
            }
        }
        watcher::Event::InitDone => {}
    }
}

/// The state of one registered member as the fleet knows it.
#[derive(Clone)]
pub enum MemberState {
    /// Not connected yet.
    Connecting,
    /// No usable connection (bad Secret, unreachable at connect time, missing CRDs...).
    Unusable(String),
    /// Connected.
    Connected(Arc<MemberConnection>),
}

struct Registered {
    member: Arc<MemberCluster>,
    state: MemberState,
    spec_tx: watch::Sender<Arc<MemberCluster>>,
    supervisor: JoinHandle<()>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// The set of member connections, shared by the reconciler and the supervisors.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<FleetInner>,
}

struct FleetInner {
    hub: Client,
    members: RwLock<BTreeMap<String, Registered>>,
    wake: mpsc::UnboundedSender<ObjectRef<CustomerStack>>,
    stacks: Store<CustomerStack>,
    counter: ApiCallCounter,
    /// The `MemberCluster`s have been listed once.
    members_listed: AtomicBool,
    /// [`Fleet::wait_settled`] has returned once: it returns at once from then on.
    settled: AtomicBool,
    /// Notified whenever the list of members or the state of one changes.
    changes: Notify,
}

impl Fleet {
    /// A fleet that wakes stacks through `wake` and finds them in `stacks`.
    pub fn new(
        hub: Client,
        stacks: Store<CustomerStack>,
        wake: mpsc::UnboundedSender<ObjectRef<CustomerStack>>,
        counter: ApiCallCounter,
    ) -> Self {
        Fleet {
            inner: Arc::new(FleetInner {
                hub,
                members: RwLock::new(BTreeMap::new()),
                wake,
                stacks,
                counter,
                members_listed: AtomicBool::new(false),
                settled: AtomicBool::new(false),
                changes: Notify::new(),
            }),
        }
    }

    /// Waits (at most `cap`, and only the first time) until every registered member has been
    /// listed and is either connected with its watch caches filled or known to be unusable.
    ///
    /// Reconciling before that would judge stacks against an empty or half-known fleet: a
    /// restarted operator would write `ClusterUnreachable` statuses (and re-apply children it
    /// cannot see yet) only to write everything back a moment later.
    pub async fn wait_settled(&self, cap: Duration) {
        if self.inner.settled.load(Ordering::Acquire) {
            return;
        }
        let deadline = tokio::time::Instant::now() + cap;
        loop {
            let changed = self.inner.changes.notified();
            futures::pin_mut!(changed);
            changed.as_mut().enable();
            let listed = self.inner.members_listed.load(Ordering::Acquire);
            let connecting = self.read(|members| {
                members
                    .values()
                    .any(|r| matches!(r.state, MemberState::Connecting))
            });
            if listed && !connecting {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let connections = self.connections();
                futures::future::join_all(connections.iter().map(|c| c.wait_caches(remaining)))
                    .await;
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(
                    waited_s = cap.as_secs(),
                    "member clusters still connecting; reconciling anyway"
                );
                break;
            }
        }
        self.inner.settled.store(true, Ordering::Release);
    }

    /// Drops every member connection and stops every supervisor and watch.
    pub fn shutdown(&self) {
        let members = self.write(std::mem::take);
        drop(members);
    }

    /// What planning needs of every registered member.
    pub fn member_infos(&self) -> Vec<MemberInfo> {
        self.read(|members| members.values().map(|r| member_info(&r.member)).collect())
    }

    /// The state of a member (`None` when no such `MemberCluster` is registered).
    pub fn state(&self, name: &str) -> Option<MemberState> {
        self.read(|members| members.get(name).map(|r| r.state.clone()))
    }

    /// Every connected member.
    pub fn connections(&self) -> Vec<Arc<MemberConnection>> {
        self.read(|members| {
            members
                .values()
                .filter_map(|r| match &r.state {
                    MemberState::Connected(c) => Some(Arc::clone(c)),
                    _ => None,
                })
                .collect()
        })
    }

    /// Every registered member: whether it is connected and answers.
    pub fn member_reachability(&self) -> BTreeMap<String, bool> {
        self.read(|members| {
            members
                .iter()
                .map(|(name, r)| {
                    let reachable = match &r.state {
                        MemberState::Connected(c) => c.reachability() == Reachability::Reachable,
                        MemberState::Connecting | MemberState::Unusable(_) => false,
                    };
                    (name.clone(), reachable)
                })
                .collect()
        })
    }

    fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, Registered>) -> T) -> T {
        match self.inner.members.read() {
            Ok(members) => f(&members),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Registered>) -> T) -> T {
        match self.inner.members.write() {
            Ok(mut members) => f(&mut members),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn set_state(&self, name: &str, state: MemberState) {
        self.write(|members| {
            if let Some(r) = members.get_mut(name) {
                r.state = state;
            }
        });
        self.inner.changes.notify_waiters();
        self.wake_stacks_of(name);
    }

    /// Wakes every stack that uses (or used) member `name`.
    pub fn wake_stacks_of(&self, name: &str) {
        wake_users(&self.inner.stacks, &self.inner.wake, name);
    }

    /// Watches the `MemberCluster`s on the hub and keeps one supervisor per member. Runs until
    /// the task is dropped.
    pub async fn run(self) {
        let api: Api<MemberCluster> = Api::all(self.inner.hub.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        // Names seen in the current (re)list: a member deleted while the watch was down is not
        // reported as deleted, only missing from the list.
        let mut listed = BTreeSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(member)) => {
                    listed.insert(member.name_any());
                    self.upsert(member);
                }
                Ok(watcher::Event::InitDone) => {
                    let gone: Vec<String> =
                        self.read(|m| m.keys().filter(|n| !listed.contains(*n)).cloned().collect());
                    gone.iter().for_each(|name| self.remove(name));
                    self.inner.members_listed.store(true, Ordering::Release);
                    self.inner.changes.notify_waiters();
                }
                Ok(watcher::Event::Apply(member)) => self.upsert(member),
                Ok(watcher::Event::Delete(member)) => self.remove(&member.name_any()),
                Err(err) => tracing::warn!(%err, "watching MemberClusters on the hub"),
            }
        }
    }

    fn upsert(&self, member: MemberCluster) {
        let name = member.name_any();
        let member = Arc::new(member);
        let spec_changed = self.write(|members| match members.get_mut(&name) {
            Some(r) => {
                let changed = r.member.spec != member.spec;
                r.member = Arc::clone(&member);
                if changed {
                    let _ = r.spec_tx.send(Arc::clone(&member));
                }
                changed
            }
            None => {
                let (spec_tx, spec_rx) = watch::channel(Arc::clone(&member));
                let supervisor = tokio::spawn(self.clone().supervise(name.clone(), spec_rx));
                members.insert(
                    name.clone(),
                    Registered {
                        member,
                        state: MemberState::Connecting,
                        spec_tx,
                        supervisor,
                    },
                );
                true
            }
        });
        if spec_changed {
            self.wake_stacks_of(&name);
        }
    }

    fn remove(&self, name: &str) {
        self.write(|members| members.remove(name));
        self.wake_stacks_of(name);
    }

    /// Keeps one member connected: connect, probe, record, watch; reconnect when the spec or the
    /// Secret changes; probe again every [`PROBE_INTERVAL`].
    async fn supervise(self, name: String, mut spec_rx: watch::Receiver<Arc<MemberCluster>>) {
        let mut recorded: Option<MemberClusterStatus> = None;
        loop {
            let member = spec_rx.borrow_and_update().clone();
            if recorded.is_none() {
                recorded = member.status.clone();
            }
            // At most one connection attempt per second, whatever wakes the loop.
            let attempt = tokio::time::Instant::now();
            let (state, version) = self.connect(&member, &mut recorded).await;
            let reachability_changed = match &state {
                MemberState::Connected(c) => Some(Arc::clone(&c.reachability_changed)),
                MemberState::Connecting | MemberState::Unusable(_) => None,
            };
            let connected = reachability_changed.is_some();
            self.set_state(&name, state);
            let secret_changed = secret_version_change(self.inner.hub.clone(), &member, version);
            futures::pin_mut!(secret_changed);
            loop {
                let wait = if connected {
                    PROBE_INTERVAL
                } else {
                    RETRY_INTERVAL
                };
                tokio::select! {
                    changed = spec_rx.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    () = &mut secret_changed => {
                        tracing::info!(member = %name, "kubeconfig Secret changed: reconnecting");
                        break;
                    }
                    () = tokio::time::sleep(wait) => {
                        if !connected { break; }
                        self.reprobe(&name, &member, &mut recorded).await;
                    }
                    () = notified(reachability_changed.as_deref()) => {
                        self.reprobe(&name, &member, &mut recorded).await;
                    }
                }
            }
            tokio::time::sleep_until(attempt + Duration::from_secs(1)).await;
        }
    }

    async fn connect(
        &self,
        member: &MemberCluster,
        recorded: &mut Option<MemberClusterStatus>,
    ) -> (MemberState, Option<String>) {
        let name = member.name_any();
        let (result, connection, version) =
            match member_client_from_secret(&self.inner.hub, member, &self.inner.counter).await {
                Err(err) => (
                    ProbeResult::Failed {
                        failure: err.probe_failure(),
                        message: err.to_string(),
                    },
                    None,
                    err.secret_version(),
                ),
                Ok((client, version)) => {
                    let result = probe_with_client(&client, member).await;
                    // Watches on kinds the cluster does not serve would only fail: a member
                    // without its child CRDs stays unusable (and is retried) until they appear.
                    let connection = match &result {
                        ProbeResult::Answered { missing_kinds, .. } if missing_kinds.is_empty() => {
                            Some(start_connection(&self.inner, member, client))
                        }
                        ProbeResult::Answered { .. } | ProbeResult::Failed { .. } => None,
                    };
                    (result, connection, version)
                }
            };
        self.record(member, &result, recorded).await;
        let state = match (connection, &result) {
            (Some(c), _) => MemberState::Connected(Arc::new(c)),
            (None, ProbeResult::Failed { failure, message }) => {
                MemberState::Unusable(failure_message(*failure, message))
            }
            (None, ProbeResult::Answered { missing_kinds, .. }) => MemberState::Unusable(format!(
                "ChildCrdsMissing: the cluster does not serve {} (install the child operator's CRDs)",
                missing_kinds.join(", ")
            )),
        };
        tracing::info!(member = %name, state = %describe(&state), "member cluster");
        (state, version)
    }

    async fn reprobe(
        &self,
        name: &str,
        member: &MemberCluster,
        recorded: &mut Option<MemberClusterStatus>,
    ) {
        let Some(MemberState::Connected(connection)) = self.state(name) else {
            return;
        };
        let result = probe_with_client(&connection.client, member).await;
        let reachability = match &result {
            ProbeResult::Answered { .. } => Reachability::Reachable,
            ProbeResult::Failed { failure, message } => {
                Reachability::Unreachable(failure_message(*failure, message))
            }
        };
        let changed = connection
            .reachability
            .write()
            .map(|mut r| std::mem::replace(&mut *r, reachability.clone()) != reachability)
            .unwrap_or(false);
        self.record(member, &result, recorded).await;
        if changed {
            self.wake_stacks_of(name);
        }
    }

    async fn record(
        &self,
        member: &MemberCluster,
        result: &ProbeResult,
        recorded: &mut Option<MemberClusterStatus>,
    ) {
        match record_status(&self.inner.hub, member, result, recorded.as_ref()).await {
            Ok(status) => *recorded = Some(status),
            Err(err) => {
                tracing::warn!(member = %member.name_any(), %err, "writing MemberCluster status")
            }
        }
    }
}

/// Resolves when `notify` is notified; never without one.
async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

fn describe(state: &MemberState) -> String {
    match state {
        MemberState::Connecting => "connecting".into(),
        MemberState::Unusable(why) => format!("unusable: {why}"),
        MemberState::Connected(_) => "connected".into(),
    }
}

fn failure_message(failure: ProbeFailure, message: &str) -> String {
    format!("{}: {message}", failure.reason())
}

/// Resolves once the kubeconfig Secret's `resourceVersion` differs from `known` (`None`: the
/// Secret does not exist): it was created, changed or deleted since the connection was built.
fn secret_version_change(
    hub: Client,
    member: &MemberCluster,
    known: Option<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let reference = member.spec.kubeconfig_secret_ref.clone();
    Box::pin(async move {
        let api: Api<Secret> = Api::namespaced(hub, &reference.namespace);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", reference.name));
        let stream = watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        let mut listed_object = false;
        while let Some(event) = stream.next().await {
            let version = match event {
                Ok(watcher::Event::Init) => {
                    listed_object = false;
                    continue;
                }
                Ok(watcher::Event::InitApply(s)) => {
                    listed_object = true;
                    s.resource_version()
                }
                Ok(watcher::Event::Apply(s)) => s.resource_version(),
                Ok(watcher::Event::Delete(_)) => None,
                Ok(watcher::Event::InitDone) if !listed_object => None,
                Ok(watcher::Event::InitDone) | Err(_) => continue,
            };
            if version != known {
                return;
            }
        }
        std::future::pending().await
    })
}

/// What planning needs of a `MemberCluster` (the operator and the offline commands alike).
pub fn member_info(member: &MemberCluster) -> MemberInfo {
    MemberInfo {
        name: member.name_any(),
        roles: member.spec.roles.clone(),
        prometheus_url_template: member.spec.prometheus_url_template.clone(),
    }
}

/// The `ApiResource` of a planned kind.
pub fn api_resource(kind: ObjectKind) -> ApiResource {
    let (group, version) = kind
        .api_version()
        .split_once('/')
        .unwrap_or(("", kind.api_version()));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.kind()),
        kind.plural(),
    )
}

/// Which objects of a kind stacksmith watches on a member: child custom resources and
/// namespaces unfiltered (so an object of the same name that stacksmith does not own is seen,
/// without a GET), the RBAC plumbing inside its own tenant namespaces by label.
fn watch_config(kind: ObjectKind) -> watcher::Config {
    match kind {
        ObjectKind::ServiceAccount | ObjectKind::Role | ObjectKind::RoleBinding => {
            watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
        }
        _ => watcher::Config::default(),
    }
}

fn start_connection(
    fleet: &FleetInner,
    member: &MemberCluster,
    client: Client,
) -> MemberConnection {
    let name = member.name_any();
    let kinds: BTreeSet<ObjectKind> = member
        .spec
        .roles
        .iter()
        .flat_map(|r| ObjectKind::for_role(*r))
        .copied()
        .collect();
    let reachability = Arc::new(RwLock::new(Reachability::Reachable));
    let owners = Arc::new(RwLock::new(OwnerIndex::new()));
    let reachability_changed = Arc::new(Notify::new());
    let mut stores = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut grafanas = None;
    let mut watched: Vec<(Option<ObjectKind>, ApiResource)> = kinds
        .into_iter()
        .map(|k| (Some(k), api_resource(k)))
        .collect();
    if member
        .spec
        .roles
        .contains(&stacksmith_api::ClusterRole::Grafana)
    {
        watched.push((None, grafana_instance_resource()));
    }
    for (kind, resource) in watched {
        let api: Api<CachedObject> = Api::all_with(client.clone(), &resource);
        let writer = reflector::store::Writer::new(resource);
        match kind {
            Some(kind) => {
                stores.insert(kind, writer.as_reader());
            }
            None => grafanas = Some(writer.as_reader()),
        }
        let config = kind.map(watch_config).unwrap_or_default();
        let label = kind.map_or("Grafana", ObjectKind::kind);
        // Compact objects (see `cached_object`), without managedFields.
        let stream = watcher(api, config).default_backoff().reflect(writer);
        let wake = fleet.wake.clone();
        let stacks = fleet.stacks.clone();
        let reachability = Arc::clone(&reachability);
        let reachability_changed = Arc::clone(&reachability_changed);
        let owners = Arc::clone(&owners);
        let member_name = name.clone();
        tasks.push(tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let (Some(kind), Ok(event)) = (kind, &event) {
                    index_owner(&owners, kind, event);
                }
                let now_reachable = match &event {
                    Ok(_) => Reachability::Reachable,
                    Err(err) => Reachability::Unreachable(crate::member_probe::classify_watch_error(err)),
                };
                let flipped = reachability
                    .write()
                    .map(|mut r| {
                        let was = std::mem::replace(&mut *r, now_reachable.clone());
                        std::mem::discriminant(&was) != std::mem::discriminant(&now_reachable)
                    })
                    .unwrap_or(false);
                if flipped {
                    tracing::info!(member = %member_name, kind = label, state = ?now_reachable, "member reachability changed");
                    wake_users(&stacks, &wake, &member_name);
                    reachability_changed.notify_one();
                }
                if let Ok(watcher::Event::Apply(obj) | watcher::Event::Delete(obj)) = &event {
                    if kind.is_some() {
                        wake_owner(obj, &wake);
                        // An object stacksmith does not own went away: a stack may have been
                        // in conflict with it.
                        if matches!(&event, Ok(watcher::Event::Delete(_))) && !is_managed(obj) {
                            wake_users(&stacks, &wake, &member_name);
                        }
                    } else {
                        // A Grafana instance changed: the stacks on this member may explain
                        // their NoMatchingInstance differently now.
                        wake_users(&stacks, &wake, &member_name);
                    }
                }
                if let (Some(_), Ok(watcher::Event::InitApply(obj))) = (kind, &event) {
                    wake_owner(obj, &wake);
                }
            }
        }));
    }
    let rejections = member
        .spec
        .roles
        .contains(&stacksmith_api::ClusterRole::Prometheus)
        .then(|| {
            let index = Arc::new(RejectionIndex::default());
            tasks.push(tokio::spawn(config_evidence::watch_rejections(
                client.clone(),
                Arc::clone(&index),
                name.clone(),
                rejection_waker(fleet.wake.clone(), fleet.stacks.clone(), &stores, &name),
            )));
            index
        });
    MemberConnection {
        name,
        timeout: Duration::from_secs(u64::from(member.spec.request_timeout_seconds)),
        client,
        stores,
        grafanas,
        rejections,
        reachability,
        owners,
        reachability_changed,
        tasks,
    }
}

/// What the rejection watch calls on a change: wakes the stack that owns each object whose
/// rejections changed (an Event carries no stack labels: the object's cached labels say whose it
/// is), and every stack on the member when the Events became readable or unreadable.
fn rejection_waker(
    wake: mpsc::UnboundedSender<ObjectRef<CustomerStack>>,
    stacks: Store<CustomerStack>,
    stores: &BTreeMap<ObjectKind, Store<CachedObject>>,
    member: &str,
) -> impl Fn(config_evidence::Changed) + Send + 'static {
    let stores = stores.clone();
    let member = member.to_owned();
    move |changed| {
        if changed.readability {
            wake_users(&stacks, &wake, &member);
            return;
        }
        for regarded in &changed.regarded {
            let Some(kind) = regarded_kind(regarded) else {
                continue;
            };
            let (_, namespace, name) = regarded;
            let object = stores.get(&kind).and_then(|store| {
                store.get(&ObjectRef::new_with(name, api_resource(kind)).within(namespace))
            });
            if let Some(object) = object {
                wake_owner(&object, &wake);
            }
        }
    }
}

fn grafana_instance_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("grafana.integreatly.org", "v1beta1", "Grafana"),
        "grafanas",
    )
}

/// Wakes every stack that uses (or used) member `member`, and every stack being deleted.
fn wake_users(
    stacks: &Store<CustomerStack>,
    wake: &mpsc::UnboundedSender<ObjectRef<CustomerStack>>,
    member: &str,
) {
    for stack in stacks.state() {
        let uses = stack.spec.metrics.cluster == member
            || stack.spec.dashboards.cluster == member
            || stack
                .status
                .as_ref()
                .is_some_and(|s| s.children.iter().any(|c| c.cluster == member))
            || stack.metadata.deletion_timestamp.is_some();
        if uses {
            let _ = wake.send(ObjectRef::from_obj(stack.as_ref()));
        }
    }
}

fn is_managed(object: &CachedObject) -> bool {
    object.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// Wakes the stack a child belongs to (from its labels).
fn wake_owner(object: &CachedObject, wake: &mpsc::UnboundedSender<ObjectRef<CustomerStack>>) {
    if !is_managed(object) {
        return;
    }
    let labels = object.labels();
    if let (Some(ns), Some(name)) = (labels.get(STACK_NAMESPACE), labels.get(STACK_NAME)) {
        let _ = wake.send(ObjectRef::new(name).within(ns));
    }
}

#[cfg(test)]
mod tests {
    use stacksmith_core::ChildKind;

    use super::*;

    fn object(name: &str, uid: Option<&str>) -> CachedObject {
        let labels = uid.map_or(
            serde_json::json!({}),
            |uid| serde_json::json!({STACK_UID: uid}),
        );
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "customer-acme", "labels": labels},
        }))
        .unwrap()
    }

    #[test]
    fn a_rejection_wakes_the_stack_of_the_regarded_object() {
        let rule = ObjectKind::Child(ChildKind::PrometheusRule);
        let mut writer = reflector::store::Writer::new(api_resource(rule));
        let labelled: CachedObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "acme-core", "namespace": "customer-acme", "labels": {
                MANAGED_BY: MANAGED_BY_VALUE, STACK_NAMESPACE: "team-a", STACK_NAME: "acme",
                STACK_UID: "u1"}},
        }))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(labelled));
        let stores = BTreeMap::from([(rule, writer.as_reader())]);
        let mut stacks = reflector::store::Writer::<CustomerStack>::default();
        let stack: CustomerStack = serde_json::from_value(serde_json::json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
            "metadata": {"name": "acme", "namespace": "team-a"},
            "spec": {"customer": "acme", "metrics": {"cluster": "prom-1"},
                     "dashboards": {"cluster": "graf-1", "instanceSelector": {}}},
        }))
        .unwrap();
        stacks.apply_watcher_event(&watcher::Event::Apply(stack));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let waker = rejection_waker(tx, stacks.as_reader(), &stores, "prom-1");
        let regarded =
            |kind: &str, name: &str| (kind.to_owned(), "customer-acme".to_owned(), name.to_owned());
        waker(config_evidence::Changed {
            regarded: vec![
                regarded("PrometheusRule", "acme-core"),
                regarded("PrometheusRule", "not-cached"),
                regarded("Alertmanager", "acme-core"),
            ],
            readability: false,
        });
        let woken = rx.try_recv().unwrap();
        assert_eq!(
            (woken.name.as_str(), woken.namespace.as_deref()),
            ("acme", Some("team-a"))
        );
        assert!(rx.try_recv().is_err(), "only the owner of a cached object");
        // The Events became readable or unreadable: every stack on the member.
        waker(config_evidence::Changed {
            regarded: Vec::new(),
            readability: true,
        });
        assert_eq!(rx.try_recv().unwrap().name, "acme");
    }

    #[test]
    fn the_owner_index_follows_the_watch() {
        let index = RwLock::new(OwnerIndex::new());
        let prometheus = ObjectKind::Child(ChildKind::Prometheus);
        let rule = ObjectKind::Child(ChildKind::PrometheusRule);
        index_owner(
            &index,
            prometheus,
            &watcher::Event::InitApply(object("acme", Some("u1"))),
        );
        index_owner(
            &index,
            rule,
            &watcher::Event::Apply(object("acme-core", Some("u1"))),
        );
        index_owner(
            &index,
            rule,
            &watcher::Event::Apply(object("foreign", None)),
        );
        let owned = |index: &RwLock<OwnerIndex>| index.read().unwrap().get("u1").cloned();
        assert_eq!(owned(&index).map(|o| o.len()), Some(2));
        index_owner(
            &index,
            rule,
            &watcher::Event::Delete(object("acme-core", Some("u1"))),
        );
        assert_eq!(owned(&index).map(|o| o.len()), Some(1));
        // A relist of the Prometheus kind forgets its entries until they are listed again.
        index_owner(&index, prometheus, &watcher::Event::Init);
        assert_eq!(owned(&index), None);
        index_owner(
            &index,
            prometheus,
            &watcher::Event::InitApply(object("acme", Some("u1"))),
        );
        assert_eq!(owned(&index).map(|o| o.len()), Some(1));
    }
}

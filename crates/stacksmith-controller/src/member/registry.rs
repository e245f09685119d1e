//! The registry of member clusters: one supervisor per registered `MemberCluster`, kept
//! current.
//!
//! For every `MemberCluster` a supervisor task builds a client from the kubeconfig Secret
//! ([`super::client`]), probes the cluster ([`super::probe`]), records the result in the
//! `MemberCluster`'s status ([`super::status`]) and connects ([`super::connection`]). A rotated
//! Secret or a changed spec rebuilds the connection without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use stacksmith_api::{MemberCluster, MemberClusterStatus};
use stacksmith_core::member_status::ProbeResult;
use stacksmith_core::plan::MemberInfo;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::client::member_client_from_secret;
use super::connection::{MemberConnection, Reachability, start_connection};
use super::probe::probe_with_client;
use super::secret_watch::secret_version_change;
use super::status::record_status;
use super::wake::Waker;
use crate::reconcile::GuardedStack;
use crate::remote::failure_message;
use crate::telemetry::api_calls::ApiCallCounter;
use crate::telemetry::liveness::Liveness;

/// How often a connected member is probed again with nothing happening (status is written only
/// when it changed). The member's watches tell at once when it stops or starts answering, and
/// that probes it immediately; this is only a safety net, so an idle operator stays quiet.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(300);
/// How soon an unusable member is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

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
    waker: Waker,
    counter: ApiCallCounter,
    /// The `MemberCluster`s have been listed once.
    members_listed: AtomicBool,
    /// [`Fleet::wait_settled`] has returned once: it returns at once from then on.
    settled: AtomicBool,
    /// Notified whenever the list of members or the state of one changes.
    changes: Notify,
    /// `MemberCluster`s on the hub that do not deserialize, by name.
    invalid: RwLock<BTreeSet<String>>,
    /// Where the supervisors say they made a turn (for `/healthz`).
    liveness: Liveness,
}

impl Fleet {
    /// A fleet that wakes stacks through `wake` and finds them in `stacks`.
    pub fn new(
        hub: Client,
        stacks: Store<GuardedStack>,
        wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
        counter: ApiCallCounter,
        liveness: Liveness,
    ) -> Self {
        Fleet {
            inner: Arc::new(FleetInner {
                hub,
                members: RwLock::new(BTreeMap::new()),
                waker: Waker::new(stacks, wake),
                counter,
                members_listed: AtomicBool::new(false),
                settled: AtomicBool::new(false),
                changes: Notify::new(),
                invalid: RwLock::new(BTreeSet::new()),
                liveness,
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

    /// The state of member `name` once its first connection attempt is over, waiting at most
    /// `cap` while it is still being made: a member registered a moment ago is not reported
    /// unreachable only because its supervisor has not answered yet.
    pub async fn state_once_connected(&self, name: &str, cap: Duration) -> Option<MemberState> {
        let deadline = tokio::time::Instant::now() + cap;
        loop {
            let changed = self.inner.changes.notified();
            futures::pin_mut!(changed);
            changed.as_mut().enable();
            let state = self.state(name);
            if !matches!(state, Some(MemberState::Connecting)) {
                return state;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.state(name);
            }
        }
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
        f(&crate::locks::read(&self.inner.members))
    }

    fn write<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Registered>) -> T) -> T {
        f(&mut crate::locks::write(&self.inner.members))
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
        self.inner.waker.users_of(name);
    }

    /// Watches the `MemberCluster`s on the hub and keeps one supervisor per member. Runs until
    /// the task is dropped.
    pub async fn run(self) {
        // A MemberCluster that does not deserialize is kept as an `InvalidObject`, so it cannot
        // stop the watch (and with it every other member).
        let api: Api<DeserializeGuard<MemberCluster>> = Api::all(self.inner.hub.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        // Names seen in the current (re)list: a member deleted while the watch was down is not
        // reported as deleted, only missing from the list.
        let mut listed = BTreeSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    listed.clear();
                    crate::locks::write(&self.inner.invalid).clear();
                }
                Ok(watcher::Event::InitApply(member)) => {
                    listed.insert(member.name_any());
                    self.upsert_guarded(member);
                }
                Ok(watcher::Event::InitDone) => {
                    let gone: Vec<String> =
                        self.read(|m| m.keys().filter(|n| !listed.contains(*n)).cloned().collect());
                    gone.iter().for_each(|name| self.remove(name));
                    self.inner.members_listed.store(true, Ordering::Release);
                    self.inner.changes.notify_waiters();
                }
                Ok(watcher::Event::Apply(member)) => self.upsert_guarded(member),
                Ok(watcher::Event::Delete(member)) => {
                    crate::locks::write(&self.inner.invalid).remove(&member.name_any());
                    self.remove(&member.name_any());
                }
                Err(err) => tracing::warn!(%err, "watching MemberClusters on the hub"),
            }
        }
    }

    /// How many `MemberCluster`s on the hub do not deserialize.
    pub fn invalid_members(&self) -> u64 {
        u64::try_from(crate::locks::read(&self.inner.invalid).len()).unwrap_or(u64::MAX)
    }

    /// Registers a member that deserialized; one that did not is reported and left as it was
    /// (a registered member keeps its last readable spec, so its stacks are not cut off).
    fn upsert_guarded(&self, guarded: DeserializeGuard<MemberCluster>) {
        let name = guarded.name_any();
        match guarded.0 {
            Ok(member) => {
                crate::locks::write(&self.inner.invalid).remove(&name);
                self.upsert(member);
            }
            Err(invalid) => {
                tracing::warn!(member = %name, error = %invalid.error, "a MemberCluster that does not deserialize: left alone");
                crate::locks::write(&self.inner.invalid).insert(name);
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
        self.inner.liveness.supervisor_ended(name);
        self.wake_stacks_of(name);
    }

    /// Keeps one member connected: connect, probe, record, watch; reconnect when the spec or the
    /// Secret changes; probe again every [`PROBE_INTERVAL`].
    async fn supervise(self, name: String, mut spec_rx: watch::Receiver<Arc<MemberCluster>>) {
        let mut recorded: Option<MemberClusterStatus> = None;
        loop {
            let member = spec_rx.borrow_and_update().clone();
            let allowed = quiet_allowed(&member);
            self.inner.liveness.supervisor_turned(&name, allowed);
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
                self.inner.liveness.supervisor_turned(&name, allowed);
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
                            Some(start_connection(member, client, &self.inner.waker))
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

/// How long a supervisor of `member` may go without a turn of its loop before `/healthz` calls it
/// stalled: its longest wait ([`PROBE_INTERVAL`]) plus every request a connection or a re-probe
/// makes (the Secret and the status on the hub; the version and one discovery per child kind on
/// the member, each bounded by its `requestTimeoutSeconds`), twice over.
fn quiet_allowed(member: &MemberCluster) -> Duration {
    let member_timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let requests = crate::remote::HUB_TIMEOUT * 2 + member_timeout * 5;
    PROBE_INTERVAL + requests * 2
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

/// What planning needs of a `MemberCluster` (the operator and the offline commands alike).
pub fn member_info(member: &MemberCluster) -> MemberInfo {
    MemberInfo {
        name: member.name_any(),
        roles: member.spec.roles.clone(),
        prometheus_url_template: member.spec.prometheus_url_template.clone(),
    }
}

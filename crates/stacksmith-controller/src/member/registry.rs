//! The registry of member clusters: one supervisor per registered `MemberCluster`, kept
//! current.
//!
//! For every `MemberCluster` a supervisor task builds a client from the kubeconfig Secret
//! ([`super::client`]), probes the cluster ([`super::probe`]), records the result in the
//! `MemberCluster`'s status ([`super::status`]) and connects ([`super::connection`]). A rotated
//! Secret or a changed spec rebuilds the connection without a restart.
//!
//! Two registrations of one cluster (the same `kube-system` namespace uid) are never both
//! used: the older keeps working, the newer is refused and not connected, so nothing is written
//! or deleted through it. Every registration carries the in-use finalizer; a `MemberCluster`
//! being deleted stays, connected, while stacks still use it, and is released when none does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::labels::MEMBER_IN_USE_FINALIZER;
use stacksmith_api::{MemberCluster, MemberClusterStatus};
use stacksmith_core::member_status::{
    FinalizerAction, MemberLifecycle, MemberObservation, ProbeResult, Registration,
    duplicated_registration, identity_after_probe, in_use_decision, reason,
};
use stacksmith_core::plan::MemberInfo;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::client::member_client_from_secret;
use super::connection::{MemberConnection, Reachability, start_connection};
use super::probe::{Probe, probe_with_client};
use super::secret_watch::secret_version_change;
use super::status::record_status;
use super::wake::Waker;
use crate::leases::ShardHolding;
use crate::remote::{HUB_TIMEOUT, call, failure_message};
use crate::telemetry::api_calls::ApiCallCounter;
use crate::telemetry::liveness::Liveness;

/// How often a connected member is probed again with nothing happening (status is written only
/// when it changed). The member's watches tell at once when it stops or starts answering, and
/// that probes it immediately; this is only a safety net, so an idle operator stays quiet.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(300);
/// How soon an unusable member is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How often a connected member that answers is asked for its version (one small GET): a
/// member that accepts connections and never answers (black-holed) makes no watch fail, so only
/// asking finds it, within this interval plus [`HEARTBEAT_TIMEOUT`].
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// How often a connected member that stopped answering is asked: the moment it answers again its
/// connection is rebuilt (watches listed afresh), so its stacks are believed within seconds
/// instead of waiting for each watch's backoff (up to 30 s, each kind on its own).
pub const UNREACHABLE_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a heartbeat waits for its answer (less when the member's request timeout is
/// shorter).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the stacks holding the deletion of a `MemberCluster` being deleted are counted
/// again, from the hub's stack cache (no request): the check that releases it once none uses it.
const HOLD_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The state of one registered member as the fleet knows it.
#[derive(Clone)]
pub enum MemberState {
    /// Not connected yet.
    Connecting,
    /// No usable connection (bad Secret, unreachable at connect time, missing CRDs, a second
    /// registration of a cluster already registered...).
    Unusable(String),
    /// Connected.
    Connected(Arc<MemberConnection>),
}

struct Registered {
    /// The `MemberCluster` as last seen on the hub.
    member: Arc<MemberCluster>,
    state: MemberState,
    /// The identity of the cluster as last known: read by this operator's probes, or, before
    /// the first, as recorded in the status by an earlier one (so the decision about two
    /// registrations of one cluster survives a restart).
    identity: Option<String>,
    spec_tx: watch::Sender<Arc<MemberCluster>>,
    /// Asks the supervisor to look again: the `MemberCluster`'s deletion or finalizers changed,
    /// or another registration came, went or learned its identity.
    nudge: Arc<Notify>,
    supervisor: JoinHandle<()>,
}

/// What a supervisor knows of its member between turns.
#[derive(Default)]
struct Supervision {
    /// The status last written (or found on the `MemberCluster`).
    recorded: Option<MemberClusterStatus>,
    /// What the last probe found.
    probe: Option<ProbeResult>,
    /// While this registration is refused: the older registration of the same cluster.
    duplicate_of: Option<String>,
    /// The stacks holding the `MemberCluster`'s deletion.
    held_by: Vec<String>,
}

/// What the supervisor does after looking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Carry on with the connection (or the absence of one) as it is.
    Stay,
    /// Connect again: whether this registration is refused may have changed.
    Reconnect,
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
    /// How many reconciles may write to one member at once.
    write_slots: usize,
    /// stacksmith's Events on the hub (an unreadable `MemberCluster`).
    recorder: kube::runtime::events::Recorder,
    /// Whether this replica leads: only the leader writes `MemberCluster` status, finalizers and
    /// Events; the others keep their connections and caches warm.
    shards: ShardHolding,
}

impl Fleet {
    /// A fleet that wakes stacks through `waker`; at most `write_slots` reconciles write to one
    /// member at once (see [`super::write_gate`]); it writes `MemberCluster` status, finalizers
    /// and Events only while `shards` says this replica leads.
    pub fn new(
        hub: Client,
        waker: Waker,
        counter: ApiCallCounter,
        liveness: Liveness,
        write_slots: usize,
        shards: ShardHolding,
    ) -> Self {
        let recorder = crate::invalid_object::recorder(hub.clone());
        Fleet {
            inner: Arc::new(FleetInner {
                hub,
                members: RwLock::new(BTreeMap::new()),
                waker,
                counter,
                members_listed: AtomicBool::new(false),
                settled: AtomicBool::new(false),
                changes: Notify::new(),
                invalid: RwLock::new(BTreeSet::new()),
                recorder,
                liveness,
                write_slots,
                shards,
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
        if !self.inner.settled.swap(true, Ordering::AcqRel) {
            // Once per start, by the first reconcile through: when reconciles begin after a
            // (re)start (waiters that stall here hold reconcile slots; see
            // `MemberConnection::wait_caches`).
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tracing::debug!(
                waited_ms = cap.saturating_sub(left).as_millis(),
                "the fleet is settled: reconciles go on"
            );
        }
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

    /// Has every supervisor look at its member again (this replica just took the lead: the
    /// status and finalizers it held back are written now if they differ).
    pub fn look_again_at_all(&self) {
        self.read(|members| members.values().for_each(|r| r.nudge.notify_one()));
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
                crate::locks::write(&self.inner.invalid).insert(name);
                if !self.inner.shards.is_leader() {
                    return;
                }
                // Published on the side: a slow hub never holds the watch of every member.
                let recorder = self.inner.recorder.clone();
                tokio::spawn(async move {
                    crate::invalid_object::report(&recorder, "MemberCluster", &invalid).await;
                });
            }
        }
    }

    fn upsert(&self, member: MemberCluster) {
        let name = member.name_any();
        let member = Arc::new(member);
        let (spec_changed, added) = self.write(|members| match members.get_mut(&name) {
            Some(r) => {
                let changed = r.member.spec != member.spec;
                let lifecycle_changed = r.member.metadata.deletion_timestamp
                    != member.metadata.deletion_timestamp
                    || r.member.metadata.finalizers != member.metadata.finalizers;
                r.member = Arc::clone(&member);
                if changed {
                    let _ = r.spec_tx.send(Arc::clone(&member));
                }
                if lifecycle_changed {
                    r.nudge.notify_one();
                }
                (changed, false)
            }
            None => {
                let (spec_tx, spec_rx) = watch::channel(Arc::clone(&member));
                let nudge = Arc::new(Notify::new());
                let supervisor = tokio::spawn(self.clone().supervise(
                    name.clone(),
                    spec_rx,
                    Arc::clone(&nudge),
                ));
                members.insert(
                    name.clone(),
                    Registered {
                        identity: member
                            .status
                            .as_ref()
                            .and_then(|s| s.cluster_identity.clone()),
                        member,
                        state: MemberState::Connecting,
                        spec_tx,
                        nudge,
                        supervisor,
                    },
                );
                (true, true)
            }
        });
        if added {
            self.nudge_others(&name);
        }
        if spec_changed {
            self.wake_stacks_of(&name);
        }
    }

    fn remove(&self, name: &str) {
        self.write(|members| members.remove(name));
        self.inner.liveness.supervisor_ended(name);
        // A registration refused as a second one of this cluster may be the one to use now.
        self.nudge_others(name);
        self.wake_stacks_of(name);
    }

    /// Asks the supervisor of every member but `name` to look again.
    fn nudge_others(&self, name: &str) {
        self.read(|members| {
            members
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .for_each(|(_, r)| r.nudge.notify_one());
        });
    }

    /// The `MemberCluster` `name` as last seen on the hub.
    fn current(&self, name: &str) -> Option<Arc<MemberCluster>> {
        self.read(|members| members.get(name).map(|r| Arc::clone(&r.member)))
    }

    /// Whether the deletion of `MemberCluster` `name` has started.
    fn deleting(&self, name: &str) -> bool {
        self.current(name)
            .is_some_and(|m| m.metadata.deletion_timestamp.is_some())
    }

    /// The identity of member `name` as last known.
    fn identity(&self, name: &str) -> Option<String> {
        self.read(|members| members.get(name).and_then(|r| r.identity.clone()))
    }

    /// Records what `probe` found out about the identity of member `name` and returns the
    /// identity now known; the other members look again when it changed.
    fn learn_identity(&self, name: &str, probe: &Probe) -> Option<String> {
        let (identity, changed) = self.write(|members| {
            let Some(r) = members.get_mut(name) else {
                return (None, false);
            };
            let identity = identity_after_probe(
                &probe.result,
                probe.identity.as_deref(),
                r.identity.as_deref(),
            );
            let changed = identity != r.identity;
            r.identity = identity.clone();
            (identity, changed)
        });
        if changed {
            tracing::info!(member = %name, identity = identity.as_deref().unwrap_or("unknown"), "member cluster identity");
            self.nudge_others(name);
        }
        identity
    }

    /// The older registration of the same cluster that member `name`, of identity `identity`,
    /// duplicates (see [`duplicated_registration`]), judged from every registration's identity
    /// as last known.
    fn duplicate_of(&self, name: &str, identity: Option<&str>) -> Option<String> {
        self.read(|members| {
            let me = members.get(name)?;
            let candidate = Registration {
                name,
                created: me.member.metadata.creation_timestamp.as_ref(),
                identity,
            };
            let others: Vec<Registration<'_>> = members
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .map(|(other, r)| Registration {
                    name: other,
                    created: r.member.metadata.creation_timestamp.as_ref(),
                    identity: r.identity.as_deref(),
                })
                .collect();
            duplicated_registration(&candidate, &others).map(str::to_owned)
        })
    }

    /// Waits until the `MemberCluster`s have been listed once: whether a registration is a
    /// second one of a cluster is judged against all of them.
    async fn wait_listed(&self) {
        loop {
            let changed = self.inner.changes.notified();
            futures::pin_mut!(changed);
            changed.as_mut().enable();
            if self.inner.members_listed.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }

    /// Keeps one member connected: connect, probe, record, watch; reconnect when the spec or the
    /// Secret changes, or when whether it is refused may have changed; probe again every
    /// [`PROBE_INTERVAL`]; keep the in-use finalizer and the deletion hold.
    async fn supervise(
        self,
        name: String,
        mut spec_rx: watch::Receiver<Arc<MemberCluster>>,
        nudge: Arc<Notify>,
    ) {
        let mut seen = Supervision::default();
        self.wait_listed().await;
        loop {
            let member = spec_rx.borrow_and_update().clone();
            let allowed = quiet_allowed(&member);
            self.inner.liveness.supervisor_turned(&name, allowed);
            if seen.recorded.is_none() {
                seen.recorded = member.status.clone();
            }
            // At most one connection attempt per second, whatever wakes the loop.
            let attempt = tokio::time::Instant::now();
            let (state, version) = self.connect(&member, &mut seen).await;
            let reachability_changed = match &state {
                MemberState::Connected(c) => Some(Arc::clone(&c.reachability_changed)),
                MemberState::Connecting | MemberState::Unusable(_) => None,
            };
            let connected = reachability_changed.is_some();
            // A refused registration is not retried every few seconds: it waits until another
            // registration comes, goes or learns its identity (a nudge), or the next probe.
            let refused = seen.duplicate_of.is_some();
            self.set_state(&name, state);
            self.keep_finalizer(&name, &member, &mut seen).await;
            let secret_changed = secret_version_change(self.inner.hub.clone(), &member, version);
            futures::pin_mut!(secret_changed);
            let wait = if connected || refused {
                PROBE_INTERVAL
            } else {
                RETRY_INTERVAL
            };
            // A deadline, not a sleep per turn: nudges and hold checks do not postpone it.
            let mut next_probe = tokio::time::Instant::now() + wait;
            let mut next_heartbeat = tokio::time::Instant::now() + self.heartbeat_interval(&name);
            loop {
                self.inner.liveness.supervisor_turned(&name, allowed);
                let deleting = self.deleting(&name);
                let next = tokio::select! {
                    changed = spec_rx.changed() => {
                        if changed.is_err() { return; }
                        Next::Reconnect
                    }
                    () = &mut secret_changed => {
                        tracing::info!(member = %name, "kubeconfig Secret changed: reconnecting");
                        Next::Reconnect
                    }
                    () = tokio::time::sleep_until(next_probe) => {
                        next_probe = tokio::time::Instant::now() + wait;
                        if connected {
                            self.reprobe(&name, &member, &mut seen).await
                        } else {
                            Next::Reconnect
                        }
                    }
                    () = notified(reachability_changed.as_deref()) => {
                        next_probe = tokio::time::Instant::now() + wait;
                        let next = self.reprobe(&name, &member, &mut seen).await;
                        next_heartbeat = tokio::time::Instant::now() + self.heartbeat_interval(&name);
                        next
                    }
                    () = tokio::time::sleep_until(next_heartbeat), if connected => {
                        let next = self.heartbeat(&name, &member, &mut seen).await;
                        next_heartbeat = tokio::time::Instant::now() + self.heartbeat_interval(&name);
                        next
                    }
                    () = nudge.notified() => self.look_again(&name, &member, &mut seen).await,
                    () = tokio::time::sleep(HOLD_RECHECK_INTERVAL), if deleting => {
                        self.keep_finalizer(&name, &member, &mut seen).await;
                        Next::Stay
                    }
                };
                if next == Next::Reconnect {
                    break;
                }
            }
            tokio::time::sleep_until(attempt + Duration::from_secs(1)).await;
        }
    }

    async fn connect(
        &self,
        member: &MemberCluster,
        seen: &mut Supervision,
    ) -> (MemberState, Option<String>) {
        let name = member.name_any();
        let (probe, client, version) =
            match member_client_from_secret(&self.inner.hub, member, &self.inner.counter).await {
                Err(err) => (
                    Probe {
                        result: ProbeResult::Failed {
                            failure: err.probe_failure(),
                            message: err.to_string(),
                        },
                        identity: None,
                    },
                    None,
                    err.secret_version(),
                ),
                Ok((client, version)) => {
                    let probe = probe_with_client(&client, member).await;
                    (probe, Some(client), version)
                }
            };
        let identity = self.learn_identity(&name, &probe);
        // Only a cluster that answered is judged: a refusal rests on what it says it is.
        let duplicate_of = match &probe.result {
            ProbeResult::Answered { .. } => self.duplicate_of(&name, identity.as_deref()),
            ProbeResult::Failed { .. } => None,
        };
        // Watches on kinds the cluster does not serve would only fail: a member without its
        // child CRDs stays unusable (and is retried) until they appear. A second registration
        // of a cluster is never connected: nothing can be written or deleted through it.
        let connection = match (&probe.result, client, &duplicate_of) {
            (ProbeResult::Answered { missing_kinds, .. }, Some(client), None)
                if missing_kinds.is_empty() =>
            {
                Some(start_connection(
                    member,
                    client,
                    &self.inner.waker,
                    self.inner.write_slots,
                ))
            }
            _ => None,
        };
        seen.probe = Some(probe.result.clone());
        seen.duplicate_of.clone_from(&duplicate_of);
        self.record(member, seen).await;
        let state = match (connection, &probe.result, duplicate_of) {
            (Some(c), _, _) => MemberState::Connected(Arc::new(c)),
            (None, _, Some(older)) => refused(&older),
            (None, ProbeResult::Failed { failure, message }, None) => {
                MemberState::Unusable(failure_message(*failure, message))
            }
            (None, ProbeResult::Answered { missing_kinds, .. }, None) => {
                MemberState::Unusable(format!(
                    "ChildCrdsMissing: the cluster does not serve {} (install the child operator's CRDs)",
                    missing_kinds.join(", ")
                ))
            }
        };
        tracing::info!(member = %name, state = %describe(&state), "member cluster");
        (state, version)
    }

    async fn reprobe(&self, name: &str, member: &MemberCluster, seen: &mut Supervision) -> Next {
        let Some(MemberState::Connected(connection)) = self.state(name) else {
            return Next::Stay;
        };
        let probe = probe_with_client(&connection.client, member).await;
        let identity = self.learn_identity(name, &probe);
        if matches!(probe.result, ProbeResult::Answered { .. })
            && let Some(older) = self.duplicate_of(name, identity.as_deref())
        {
            drop(connection);
            self.disconnect_duplicate(name, &older);
            return Next::Reconnect;
        }
        let reachability = match &probe.result {
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
        seen.probe = Some(probe.result);
        self.record(member, seen).await;
        if changed {
            self.wake_stacks_of(name);
        }
        Next::Stay
    }

    /// How long until the next heartbeat of member `name`: soon while it does not answer.
    fn heartbeat_interval(&self, name: &str) -> Duration {
        match self.state(name) {
            Some(MemberState::Connected(c)) if c.reachability() != Reachability::Reachable => {
                UNREACHABLE_HEARTBEAT_INTERVAL
            }
            _ => HEARTBEAT_INTERVAL,
        }
    }

    /// Asks a connected member for its version. No answer in time (or a failure) makes it
    /// unreachable (recorded, its stacks woken); the first answer after that rebuilds the
    /// connection, so its watches list afresh instead of waiting out their backoff, or staying
    /// stalled on a connection that was black-holed.
    async fn heartbeat(&self, name: &str, member: &MemberCluster, seen: &mut Supervision) -> Next {
        let Some(MemberState::Connected(connection)) = self.state(name) else {
            return Next::Stay;
        };
        let timeout = connection.timeout.min(HEARTBEAT_TIMEOUT);
        let answer = call(timeout, connection.client.apiserver_version()).await;
        let was_reachable = connection.reachability() == Reachability::Reachable;
        match answer {
            Ok(_) if was_reachable => Next::Stay,
            Ok(_) => {
                tracing::info!(member = %name, "the member answers again: reconnecting, so its watches list afresh");
                Next::Reconnect
            }
            Err(err) => {
                let (failure, message) = err.classify();
                let now = Reachability::Unreachable(failure_message(failure, &message));
                let flipped = connection
                    .reachability
                    .write()
                    .map(|mut r| {
                        let was = std::mem::replace(&mut *r, now);
                        was == Reachability::Reachable
                    })
                    .unwrap_or(false);
                if flipped {
                    tracing::warn!(member = %name, %message, "the member does not answer");
                    seen.probe = Some(ProbeResult::Failed { failure, message });
                    self.record(member, seen).await;
                    self.wake_stacks_of(name);
                }
                Next::Stay
            }
        }
    }

    /// Drops the connection of member `name` at once, now that it turned out to reach the same
    /// cluster as the older registration `older` (the reconnection that follows records why).
    fn disconnect_duplicate(&self, name: &str, older: &str) {
        if matches!(self.state(name), Some(MemberState::Connected(_))) {
            tracing::warn!(member = %name, older = %older, "a second registration of a cluster already registered: disconnecting");
            self.set_state(name, refused(older));
        }
    }

    /// What a nudge asks: is this registration still rightly refused (or rightly used), and
    /// what about the finalizer and the deletion hold.
    async fn look_again(&self, name: &str, member: &MemberCluster, seen: &mut Supervision) -> Next {
        if matches!(seen.probe, Some(ProbeResult::Answered { .. })) {
            let identity = self.identity(name);
            let duplicate_of = self.duplicate_of(name, identity.as_deref());
            if duplicate_of != seen.duplicate_of {
                tracing::info!(member = %name, duplicate_of = duplicate_of.as_deref().unwrap_or("none"), "whether the registration is refused changed: reconnecting");
                if let Some(older) = &duplicate_of {
                    self.disconnect_duplicate(name, older);
                }
                return Next::Reconnect;
            }
        }
        self.keep_finalizer(name, member, seen).await;
        // Written only when it changed: after taking the lead, what the standby knew.
        self.record(member, seen).await;
        Next::Stay
    }

    /// Adds the in-use finalizer to a `MemberCluster` that lacks it; on one being deleted,
    /// holds it (naming the stacks in the status) while stacks use it, and removes it when none
    /// does.
    async fn keep_finalizer(&self, name: &str, member: &MemberCluster, seen: &mut Supervision) {
        let Some(current) = self.current(name) else {
            return;
        };
        let lifecycle = MemberLifecycle {
            deleting: current.metadata.deletion_timestamp.is_some(),
            has_finalizer: current
                .finalizers()
                .iter()
                .any(|f| f == MEMBER_IN_USE_FINALIZER),
            refused: seen.duplicate_of.is_some(),
        };
        let users = if lifecycle.deleting {
            let Some(users) = self.inner.waker.stacks_using(name) else {
                // The hub's stacks are not listed yet (the operator just started): looked at
                // again in a moment, never released on an empty cache.
                return;
            };
            users
        } else {
            Vec::new()
        };
        let decision = in_use_decision(lifecycle, users);
        match decision.finalizer {
            FinalizerAction::Keep => {}
            FinalizerAction::Add => self.patch_finalizers(&current, FinalizerAction::Add).await,
            FinalizerAction::Remove => {
                tracing::info!(member = %name, refused = lifecycle.refused, "the MemberCluster being deleted holds nothing (no stack uses it, or it is a refused second registration): releasing it");
                self.patch_finalizers(&current, FinalizerAction::Remove)
                    .await;
                return;
            }
        }
        if decision.held_by != seen.held_by {
            if !decision.held_by.is_empty() {
                tracing::info!(member = %name, stacks = %decision.held_by.join(", "), "deletion held while stacks use the member");
            }
            seen.held_by = decision.held_by;
            self.record(member, seen).await;
        }
    }

    /// Adds or removes the in-use finalizer with a JSON patch that tests the list first, so a
    /// finalizer someone else added or removed meanwhile is never lost. A failure is logged and
    /// tried again on the next look.
    async fn patch_finalizers(&self, member: &MemberCluster, action: FinalizerAction) {
        if !self.inner.shards.is_leader() {
            return;
        }
        let finalizers = member.finalizers();
        let operations = match action {
            FinalizerAction::Keep => return,
            FinalizerAction::Add if finalizers.is_empty() => json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [MEMBER_IN_USE_FINALIZER]},
            ]),
            FinalizerAction::Add => json!([
                {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                {"op": "add", "path": "/metadata/finalizers/-", "value": MEMBER_IN_USE_FINALIZER},
            ]),
            FinalizerAction::Remove => {
                let Some(index) = finalizers.iter().position(|f| f == MEMBER_IN_USE_FINALIZER)
                else {
                    return;
                };
                let path = format!("/metadata/finalizers/{index}");
                json!([
                    {"op": "test", "path": path, "value": MEMBER_IN_USE_FINALIZER},
                    {"op": "remove", "path": path},
                ])
            }
        };
        let name = member.name_any();
        let patch = match serde_json::from_value(operations) {
            Ok(operations) => Patch::<()>::Json(operations),
            Err(err) => {
                tracing::warn!(member = %name, %err, "building the finalizer patch");
                return;
            }
        };
        let api: Api<MemberCluster> = Api::all(self.inner.hub.clone());
        let outcome = tokio::time::timeout(
            HUB_TIMEOUT,
            api.patch(&name, &PatchParams::default(), &patch),
        )
        .await;
        match outcome {
            Ok(Ok(_)) => {}
            // Gone already: nothing left to hold.
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
            // The finalizers changed meanwhile (the test operation failed): the change comes
            // through the watch, and the next look tries again.
            Ok(Err(kube::Error::Api(status))) if matches!(status.code, 409 | 422) => {
                tracing::debug!(member = %name, action = ?action, code = status.code, "the finalizers changed meanwhile")
            }
            Ok(Err(err)) => {
                tracing::warn!(member = %name, action = ?action, %err, "patching the MemberCluster's finalizers")
            }
            Err(_) => {
                tracing::warn!(member = %name, action = ?action, timeout_s = HUB_TIMEOUT.as_secs(), "patching the MemberCluster's finalizers: no answer")
            }
        }
    }

    /// Writes the member's status for what the supervisor knows (only when it changed).
    async fn record(&self, member: &MemberCluster, seen: &mut Supervision) {
        let Some(probe) = &seen.probe else {
            return;
        };
        // The latest object: its generation moves when its deletion starts.
        let current = self.current(&member.name_any());
        let member = current.as_deref().unwrap_or(member);
        if !self.inner.shards.is_leader() {
            // The leader writes it: a standby follows what the hub holds, so that on taking
            // over it writes only what changed.
            if member.status.is_some() {
                seen.recorded = member.status.clone();
            }
            return;
        }
        let identity = self.identity(&member.name_any());
        let observation = MemberObservation {
            probe,
            identity: identity.as_deref(),
            duplicate_of: seen.duplicate_of.as_deref(),
            held_by: &seen.held_by,
        };
        match record_status(
            &self.inner.hub,
            member,
            &observation,
            seen.recorded.as_ref(),
        )
        .await
        {
            Ok(status) => seen.recorded = Some(status),
            Err(err) => {
                tracing::warn!(member = %member.name_any(), %err, "writing MemberCluster status")
            }
        }
    }
}

/// How long a supervisor of `member` may go without a turn of its loop before `/healthz` calls it
/// stalled: its longest wait ([`PROBE_INTERVAL`]) plus every request a connection or a re-probe
/// makes (the Secret, the status and the finalizer on the hub; the version, the identity and one
/// discovery per child kind on the member, each bounded by its `requestTimeoutSeconds`), twice
/// over.
fn quiet_allowed(member: &MemberCluster) -> Duration {
    let member_timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let requests = crate::remote::HUB_TIMEOUT * 4 + member_timeout * 6;
    PROBE_INTERVAL + requests * 2
}

/// Resolves when `notify` is notified; never without one.
async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The state of a registration refused as a second one of the cluster `older` reaches.
fn refused(older: &str) -> MemberState {
    MemberState::Unusable(format!(
        "{}: the same cluster as MemberCluster {older}",
        reason::DUPLICATE_CLUSTER
    ))
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
        prometheus_exposure: member.spec.prometheus_exposure.clone(),
        alertmanagers: member.spec.alertmanagers.clone(),
        grafana_ingress_host_template: member.spec.grafana_ingress_host_template.clone(),
        tenant_quota: member.spec.tenant_quota.clone(),
    }
}

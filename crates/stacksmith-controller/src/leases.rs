//! Which shards this replica holds, and the hub Leases that hold them.
//!
//! Every replica runs everything that reads: the hub's stack cache, the member connections and
//! their watch caches. Only what writes is held back: a stack is reconciled by the replica that
//! holds its shard ([`ShardHolding::enter`]), and the fleet's own writes (`MemberCluster`
//! status and finalizers, Events on objects that do not deserialize) by the holder of shard 0,
//! the leader. With one shard (the default) that is leader election with warm standbys.
//!
//! The Leases live in one hub namespace, labelled [`LEASE_LABEL`]:
//! - `stacksmith-shard-<i>`, one per shard, naming its holder; the shard count is on each in
//!   [`SHARDS_ANNOTATION`], and a replica takes no shard while a live Lease says another count
//!   (a rolling change of `--shards` never lets two counts reconcile at once);
//! - `stacksmith-replica-<identity>`, one per live replica, so every replica knows how many
//!   share the shards.
//!
//! They are watched, not polled: a released Lease is taken the moment its event arrives. Each
//! replica renews what it holds every fifth of the lease duration; one that could not renew for
//! two thirds of it stops reconciling the shard before anyone else may take it. Whether a Lease
//! ran out is judged by the observer's own clock since it last saw the Lease change, never by
//! the renewal time another machine wrote. A shard given back is first drained: its reconciles
//! in flight finish and new ones wait, then the Lease is released.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use stacksmith_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use stacksmith_core::shards::{LeaseRecord, LeaseStep, lease_step, shard_of, shards_wanted};
use tokio::sync::{RwLock, RwLockReadGuard, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The label on stacksmith's Leases: `shard` or `replica`.
pub const LEASE_LABEL: &str = "stacksmith.io/lease";
/// The annotation on a shard Lease: the shard count of the replica that wrote it.
pub const SHARDS_ANNOTATION: &str = "stacksmith.io/shards";
/// How long a Lease is held without renewal when nothing says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
const SHARD_LEASE_PREFIX: &str = "stacksmith-shard-";
const REPLICA_LEASE_PREFIX: &str = "stacksmith-replica-";

/// How a replica takes part in holding shards.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// This replica's name in the Leases (the chart: the pod name). Unique among replicas.
    pub identity: String,
    /// The hub namespace of the Leases.
    pub namespace: String,
    /// The number of shards (the same on every replica).
    pub shards: u16,
    /// How long a Lease holds without renewal: a crashed holder's shards are taken after it.
    pub duration: Duration,
}

impl LeaseOptions {
    /// How often held Leases are renewed (a fifth of the duration).
    pub fn renew_every(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(200))
    }

    /// How long a replica goes on reconciling a shard it could not renew (two thirds of the
    /// duration: others take it only after the whole duration).
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// Which shards this replica holds, as the reconciles and the fleet ask it.
#[derive(Clone)]
pub struct ShardHolding {
    inner: Arc<Holding>,
}

struct Holding {
    identity: Option<String>,
    shards: u16,
    slots: Vec<Slot>,
}

struct Slot {
    /// Read by each reconcile of the shard while it runs; written to drain the shard.
    in_flight: RwLock<()>,
    held: AtomicBool,
}

impl ShardHolding {
    /// One replica with no Leases: it holds the one shard, always.
    pub fn everything() -> Self {
        let holding = Self::new(None, 1);
        holding.set(0, true);
        holding
    }

    /// A replica named `identity` among `shards` shards, holding none yet.
    pub fn new(identity: Option<String>, shards: u16) -> Self {
        let shards = shards.max(1);
        ShardHolding {
            inner: Arc::new(Holding {
                identity,
                shards,
                slots: (0..shards)
                    .map(|_| Slot {
                        in_flight: RwLock::new(()),
                        held: AtomicBool::new(false),
                    })
                    .collect(),
            }),
        }
    }

    /// This replica's name in the Leases (`None`: it runs without Leases).
    pub fn identity(&self) -> Option<&str> {
        self.inner.identity.as_deref()
    }

    /// The number of shards.
    pub fn shards(&self) -> u16 {
        self.inner.shards
    }

    /// The shard of the stack `namespace/name`.
    pub fn shard_of(&self, namespace: &str, name: &str) -> u16 {
        shard_of(namespace, name, self.inner.shards)
    }

    /// Enters `shard` for one reconcile: `None` unless this replica holds it. While the pass
    /// is alive the shard is not given back (giving it back waits for it).
    pub async fn enter(&self, shard: u16) -> Option<RwLockReadGuard<'_, ()>> {
        let slot = self.inner.slots.get(usize::from(shard))?;
        let pass = slot.in_flight.read().await;
        slot.held.load(Ordering::Acquire).then_some(pass)
    }

    /// Whether this replica holds `shard` right now.
    pub fn holds(&self, shard: u16) -> bool {
        self.inner
            .slots
            .get(usize::from(shard))
            .is_some_and(|slot| slot.held.load(Ordering::Acquire))
    }

    /// Whether this replica does the fleet's own writes: it holds shard 0.
    pub fn is_leader(&self) -> bool {
        self.holds(0)
    }

    /// The shards held now.
    pub fn held(&self) -> BTreeSet<u16> {
        (0..self.inner.shards).filter(|s| self.holds(*s)).collect()
    }

    fn set(&self, shard: u16, held: bool) {
        if let Some(slot) = self.inner.slots.get(usize::from(shard)) {
            slot.held.store(held, Ordering::Release);
        }
    }

    /// Stops reconciling `shard` once the passes in flight finished (new ones wait, then find
    /// it not held).
    async fn drain(&self, shard: u16) {
        if let Some(slot) = self.inner.slots.get(usize::from(shard)) {
            let _drained = slot.in_flight.write().await;
            self.set(shard, false);
        }
    }
}

/// The task keeping this replica's Leases; [`LeaseKeeper::release`] gives them back.
pub struct LeaseKeeper {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Gives back every Lease this replica holds (after draining its shards) and removes its
    /// replica Lease, so another replica takes over at once; waits at most the lease duration.
    pub async fn release(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            tracing::warn!(
                within_s = within.as_secs(),
                "the Leases were not given back in time; others take them when they run out"
            );
            self.task.abort();
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Starts keeping the Leases of `holding` on the hub: `taken` is called with each shard this
/// replica takes (to wake its stacks).
pub fn keep_leases(
    hub: Client,
    options: LeaseOptions,
    holding: ShardHolding,
    taken: impl Fn(u16) + Send + Sync + 'static,
) -> LeaseKeeper {
    let (stop, stopped) = oneshot::channel();
    let keeper = Keeper {
        api: Api::namespaced(hub, &options.namespace),
        seen: BTreeMap::new(),
        renewed: HashMap::new(),
        draining: BTreeSet::new(),
        failures: HashMap::new(),
        conflict_warned: false,
        options,
        holding,
        taken: Box::new(taken),
    };
    LeaseKeeper {
        stop: Some(stop),
        task: tokio::spawn(keeper.run(stopped)),
    }
}

/// A Lease as last seen, and since when (by this clock) it has not changed.
struct Seen {
    lease: Lease,
    since: Instant,
}

struct Keeper {
    api: Api<Lease>,
    seen: BTreeMap<String, Seen>,
    /// When each held Lease was last renewed (or taken).
    renewed: HashMap<String, Instant>,
    /// Shards being drained before their Lease is given back.
    draining: BTreeSet<u16>,
    /// The last failure writing each Lease (said once until it changes or a write succeeds).
    failures: HashMap<String, String>,
    conflict_warned: bool,
    options: LeaseOptions,
    holding: ShardHolding,
    taken: Box<dyn Fn(u16) + Send + Sync>,
}

/// What the Keeper's loop heard.
enum Heard {
    Stop,
    Event(Box<Option<Result<watcher::Event<Lease>, watcher::Error>>>),
    Tick,
    Drained(u16),
}

impl Keeper {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let config = watcher::Config::default().labels(LEASE_LABEL);
        let events = watcher(self.api.clone(), config).default_backoff();
        futures::pin_mut!(events);
        let mut ticks = tokio::time::interval(self.options.renew_every());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (drained_tx, mut drained_rx) = mpsc::unbounded_channel::<u16>();
        let mut listed = false;
        let mut relisting: Option<BTreeSet<String>> = None;
        loop {
            let heard = tokio::select! {
                _ = &mut stopped => Heard::Stop,
                event = events.next() => Heard::Event(Box::new(event)),
                _ = ticks.tick() => Heard::Tick,
                Some(shard) = drained_rx.recv() => Heard::Drained(shard),
            };
            match heard {
                Heard::Stop => break,
                Heard::Event(event) => {
                    let event = match *event {
                        None => break,
                        Some(Err(err)) => {
                            tracing::warn!(%err, "watching the Leases");
                            continue;
                        }
                        Some(Ok(event)) => event,
                    };
                    match event {
                        watcher::Event::Init => relisting = Some(BTreeSet::new()),
                        watcher::Event::InitApply(lease) => {
                            if let Some(names) = relisting.as_mut() {
                                names.insert(lease.name_any());
                            }
                            self.observe(lease);
                        }
                        watcher::Event::InitDone => {
                            if let Some(names) = relisting.take() {
                                self.seen.retain(|name, _| names.contains(name));
                            }
                            listed = true;
                        }
                        watcher::Event::Apply(lease) => self.observe(lease),
                        watcher::Event::Delete(lease) => {
                            self.seen.remove(&lease.name_any());
                        }
                    }
                    if !listed || relisting.is_some() {
                        continue;
                    }
                }
                Heard::Tick => {
                    if !listed {
                        continue;
                    }
                }
                Heard::Drained(shard) => {
                    self.draining.remove(&shard);
                }
            }
            self.turn(&drained_tx).await;
        }
        self.give_everything_back().await;
    }

    /// Records a Lease as seen now; the clock of one whose holder and renewal did not change
    /// keeps running.
    fn observe(&mut self, lease: Lease) {
        let name = lease.name_any();
        let unchanged = self.seen.get(&name).is_some_and(|seen| {
            let (old, new) = (seen.lease.spec.as_ref(), lease.spec.as_ref());
            old.and_then(|s| s.holder_identity.as_ref())
                == new.and_then(|s| s.holder_identity.as_ref())
                && old.and_then(|s| s.renew_time.as_ref())
                    == new.and_then(|s| s.renew_time.as_ref())
        });
        let since = match self.seen.get(&name) {
            Some(seen) if unchanged => seen.since,
            _ => Instant::now(),
        };
        self.seen.insert(name, Seen { lease, since });
    }

    fn record(&self, name: &str) -> Option<LeaseRecord> {
        let seen = self.seen.get(name)?;
        let spec = seen.lease.spec.as_ref();
        Some(LeaseRecord {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.options.duration, Duration::from_secs),
            unchanged_for: seen.since.elapsed(),
        })
    }

    fn me(&self) -> &str {
        &self.options.identity
    }

    /// One look at every Lease: stay counted as a replica, then take, renew, drain or give back
    /// each shard.
    async fn turn(&mut self, drained: &mpsc::UnboundedSender<u16>) {
        let replica = replica_lease_name(self.me());
        self.keep(&replica, None, true).await;
        let (replicas, holders, other_count) = self.census();
        if other_count && !self.conflict_warned {
            tracing::warn!(
                shards = self.options.shards,
                "a live shard Lease was written with another shard count: taking no shard until it is given back or runs out"
            );
        }
        self.conflict_warned = other_count;
        let mut wanted = shards_wanted(self.options.shards, &replicas, &holders, self.me());
        if other_count {
            wanted.retain(|shard| self.holding.holds(*shard));
        }
        for shard in 0..self.options.shards {
            let name = shard_lease_name(shard);
            let held = self.holding.holds(shard);
            if held && !wanted.contains(&shard) && !self.draining.contains(&shard) {
                tracing::info!(shard, "giving the shard back: draining its reconciles");
                self.draining.insert(shard);
                let holding = self.holding.clone();
                let drained = drained.clone();
                tokio::spawn(async move {
                    holding.drain(shard).await;
                    let _ = drained.send(shard);
                });
            }
            // A held shard's Lease is renewed until it is drained.
            let want = wanted.contains(&shard) || held;
            match self.keep(&name, Some(shard), want).await {
                Kept::Held if !held => {
                    tracing::info!(shard, "took the shard");
                    self.holding.set(shard, true);
                    (self.taken)(shard);
                }
                Kept::Held | Kept::NotHeld => {}
                Kept::Lost if held => {
                    tracing::warn!(shard, "lost the shard's Lease: no longer reconciling it");
                    self.holding.set(shard, false);
                }
                Kept::Lost => {}
            }
        }
    }

    /// The live replicas, the live holder of each shard, and whether a live shard Lease says
    /// another shard count.
    fn census(&self) -> (BTreeSet<String>, BTreeMap<u16, String>, bool) {
        let mut replicas = BTreeSet::new();
        let mut holders = BTreeMap::new();
        let mut other_count = false;
        for (name, seen) in &self.seen {
            let Some(record) = self.record(name) else {
                continue;
            };
            let Some(holder) = record.live_holder() else {
                continue;
            };
            if name.starts_with(REPLICA_LEASE_PREFIX) {
                replicas.insert(holder.to_owned());
            } else if let Some(shard) = shard_index(name) {
                let count = seen
                    .lease
                    .annotations()
                    .get(SHARDS_ANNOTATION)
                    .and_then(|c| c.parse::<u16>().ok());
                if count.is_some_and(|c| c != self.options.shards) {
                    other_count = true;
                } else if shard < self.options.shards {
                    holders.insert(shard, holder.to_owned());
                }
            }
        }
        (replicas, holders, other_count)
    }

    /// Takes, renews or gives back the Lease `name` as `want` says; what this replica holds
    /// after.
    async fn keep(&mut self, name: &str, shard: Option<u16>, want: bool) -> Kept {
        let record = self.record(name);
        let step = lease_step(record.as_ref(), self.me(), want);
        let now = Instant::now();
        let due = self
            .renewed
            .get(name)
            .is_none_or(|at| now.duration_since(*at) >= self.options.renew_every());
        let written = match step {
            LeaseStep::Leave => {
                self.renewed.remove(name);
                return Kept::NotHeld;
            }
            LeaseStep::Renew if !due => return Kept::Held,
            LeaseStep::Create => self.create(name, shard).await,
            LeaseStep::Acquire | LeaseStep::Renew | LeaseStep::Release => {
                self.update(name, shard, step).await
            }
        };
        match (written, step) {
            (Ok(lease), LeaseStep::Release) => {
                self.failures.remove(name);
                self.observe(lease);
                self.renewed.remove(name);
                Kept::NotHeld
            }
            (Ok(lease), _) => {
                self.failures.remove(name);
                self.observe(lease);
                self.renewed.insert(name.to_owned(), now);
                Kept::Held
            }
            (Err(err), _) => {
                // Said once per Lease and kind of failure (a refusal by RBAC repeats every
                // renewal period otherwise); a conflict is the normal race between replicas.
                let failure = crate::remote::api_error_summary(&err);
                if is_conflict(&err) {
                    tracing::debug!(lease = %name, ?step, %failure, "the Lease was written by someone else first");
                } else if self
                    .failures
                    .insert(name.to_owned(), failure.clone())
                    .as_ref()
                    != Some(&failure)
                {
                    tracing::warn!(lease = %name, ?step, %failure, "writing the Lease failed: shards are not taken or kept while it does");
                }
                if is_conflict(&err) {
                    // Someone else wrote it first: what they wrote arrives through the watch.
                    let ours = self
                        .record(name)
                        .is_some_and(|r| r.holder.as_deref() == Some(self.me()));
                    if !ours || step != LeaseStep::Renew {
                        return Kept::Lost;
                    }
                }
                let renewed_lately = self
                    .renewed
                    .get(name)
                    .is_some_and(|at| now.duration_since(*at) < self.options.renew_deadline());
                if step == LeaseStep::Renew && renewed_lately {
                    Kept::Held
                } else {
                    if step == LeaseStep::Renew {
                        tracing::warn!(lease = %name, %err, "could not renew the Lease in time");
                    }
                    Kept::Lost
                }
            }
        }
    }

    async fn create(&self, name: &str, shard: Option<u16>) -> Result<Lease, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.options.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (
                        LEASE_LABEL.to_owned(),
                        if shard.is_some() { "shard" } else { "replica" }.to_owned(),
                    ),
                ])),
                annotations: shard.map(|_| {
                    BTreeMap::from([(
                        SHARDS_ANNOTATION.to_owned(),
                        self.options.shards.to_string(),
                    )])
                }),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.me().to_owned()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        self.call(self.api.create(&PostParams::default(), &lease))
            .await
    }

    /// Acquires, renews or releases the Lease as last seen (its `resourceVersion` makes the
    /// write fail if anyone wrote it since).
    async fn update(
        &self,
        name: &str,
        shard: Option<u16>,
        step: LeaseStep,
    ) -> Result<Lease, kube::Error> {
        let Some(seen) = self.seen.get(name) else {
            return Err(kube::Error::Service(
                format!("the Lease {name} has not been seen").into(),
            ));
        };
        let mut lease = seen.lease.clone();
        let now = MicroTime(Timestamp::now());
        if shard.is_some() {
            lease.annotations_mut().insert(
                SHARDS_ANNOTATION.to_owned(),
                self.options.shards.to_string(),
            );
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        match step {
            LeaseStep::Acquire => {
                spec.holder_identity = Some(self.options.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            LeaseStep::Release => {
                spec.holder_identity = None;
            }
            LeaseStep::Renew | LeaseStep::Create | LeaseStep::Leave => {}
        }
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.renew_time = Some(now);
        self.call(self.api.replace(name, &PostParams::default(), &lease))
            .await
    }

    async fn call(
        &self,
        request: impl Future<Output = Result<Lease, kube::Error>>,
    ) -> Result<Lease, kube::Error> {
        let within = self.options.renew_deadline() / 2;
        tokio::time::timeout(within, request)
            .await
            .unwrap_or_else(|_| Err(timed_out(within)))
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.options.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// On a graceful stop: every held shard drained and its Lease released, the replica Lease
    /// deleted.
    async fn give_everything_back(&mut self) {
        for shard in self.holding.held() {
            self.holding.drain(shard).await;
            let name = shard_lease_name(shard);
            if self
                .record(&name)
                .is_some_and(|r| r.holder.as_deref() == Some(self.me()))
            {
                match self.update(&name, Some(shard), LeaseStep::Release).await {
                    Ok(_) => tracing::info!(shard, "gave the shard back"),
                    Err(err) => tracing::warn!(shard, %err, "giving the shard back"),
                }
            }
        }
        let replica = replica_lease_name(self.me());
        let within = self.options.renew_deadline() / 2;
        match tokio::time::timeout(within, self.api.delete(&replica, &DeleteParams::default()))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::debug!(%err, "removing the replica Lease"),
            Err(_) => tracing::debug!("removing the replica Lease: no answer in time"),
        }
    }
}

/// What a replica holds of one Lease after a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    Held,
    NotHeld,
    /// It held it and may no longer act on it.
    Lost,
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

fn timed_out(within: Duration) -> kube::Error {
    kube::Error::Service(format!("no answer from the hub within {} ms", within.as_millis()).into())
}

/// The Lease of shard `shard`.
pub fn shard_lease_name(shard: u16) -> String {
    format!("{SHARD_LEASE_PREFIX}{shard}")
}

fn shard_index(name: &str) -> Option<u16> {
    name.strip_prefix(SHARD_LEASE_PREFIX)?.parse().ok()
}

/// The Lease that counts replica `identity` as live (the identity made a valid name).
pub fn replica_lease_name(identity: &str) -> String {
    let cleaned: String = identity
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("{REPLICA_LEASE_PREFIX}{cleaned}");
    let name: String = name.chars().take(253).collect();
    name.trim_end_matches(['-', '.']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_and_parse_back() {
        assert_eq!(shard_lease_name(3), "stacksmith-shard-3");
        assert_eq!(shard_index("stacksmith-shard-3"), Some(3));
        assert_eq!(shard_index("stacksmith-replica-3"), None);
        assert_eq!(replica_lease_name("Pod_A:1"), "stacksmith-replica-pod-a-1");
        assert!(replica_lease_name(&"x".repeat(400)).len() <= 253);
    }

    #[tokio::test]
    async fn a_shard_is_entered_only_while_held_and_drained_before_it_is_given_back() {
        let holding = ShardHolding::new(Some("r1".into()), 2);
        assert!(holding.enter(0).await.is_none());
        holding.set(0, true);
        assert!(holding.is_leader());
        let pass = holding.enter(0).await;
        assert!(pass.is_some());
        assert!(holding.enter(5).await.is_none());
        // Draining waits for the pass in flight.
        let drain = {
            let holding = holding.clone();
            tokio::spawn(async move { holding.drain(0).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!drain.is_finished());
        assert!(holding.holds(0));
        drop(pass);
        drain.await.unwrap();
        assert!(!holding.holds(0));
        assert!(holding.enter(0).await.is_none());
        assert_eq!(holding.held(), BTreeSet::new());
    }

    #[test]
    fn a_replica_without_leases_holds_everything() {
        let holding = ShardHolding::everything();
        assert!(holding.is_leader());
        assert_eq!(holding.shards(), 1);
        assert_eq!(holding.shard_of("any", "stack"), 0);
        assert_eq!(holding.held(), BTreeSet::from([0]));
    }
}

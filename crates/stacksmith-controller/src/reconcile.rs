//! Reconciling one `CustomerStack`: a driver of named stages.
//!
//! converge: identify → check the tenant policy (pure, [`stacksmith_core::policy`]) →
//! dereference (the hub ConfigMaps the dashboards name, from a watched cache) → plan
//! (pure, [`stacksmith_core::plan`]) → write each cluster concurrently ([`write`]) → remove what
//! is no longer planned ([`prune`]) → observe (pure, [`stacksmith_core::observe`]) → aggregate
//! and record status and Events ([`status`]).
//!
//! clean up (on deletion, behind the finalizer, [`cleanup`]): delete every child in every
//! cluster and wait until they are gone; an unreachable cluster holds the deletion; `Orphan`
//! releases at once.

mod cleanup;
mod inventory;
mod prune;
mod status;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::Store;
use kube::{Client, Resource as _, ResourceExt as _};
use stacksmith_api::CustomerStack;
use stacksmith_api::labels::{ADOPT_FROM as ALLOW_ADOPT, ALLOW_MOVE};
use stacksmith_core::aggregate::{ClusterState, SpecProblem};
use stacksmith_core::events::{EventAction, EventSeverity, StackEvent, event_reason};
use stacksmith_core::inventory::{
    InventoriedObject, Inventory, ObjectKey, moved_objects, refused_move,
};
use stacksmith_core::observe::{AdoptFrom, NotWrittenReason, WriteOutcome, child_observations};
use stacksmith_core::plan::{StackIdentity, StackPlan, plan_stack_with_config_maps};
use tracing::Instrument as _;

use crate::apply::{Claimant, RecentWrites};
use crate::credentials::{CredentialError, CredentialIssuer};
use crate::dashboard_sources::{ConfigMapsNotListed, DashboardSources};
use crate::leases::ShardHolding;
use crate::member::Fleet;
use crate::policies::{Policies, PoliciesNotListed};
use crate::telemetry::liveness::Liveness;
use crate::telemetry::metrics::ReconcileMetrics;
use stacksmith_core::credentials::ROTATE_ANNOTATION;
use status::{Findings, StatusHolds};

/// The finalizer that holds a stack until its children are gone.
pub const FINALIZER: &str = "stacksmith.io/cleanup";
/// The longest a whole reconcile may take (every request in it also has its own timeout).
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a stack is looked at with nothing happening (a safety net; watches drive the rest).
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a stack with an unreachable cluster is looked at again (its watches also tell when
/// it answers), and the first retry after a failed write.
const RETRY: Duration = Duration::from_secs(15);
/// The longest wait between retries of a write that keeps failing.
const RETRY_CAP: Duration = Duration::from_secs(300);
/// After a (re)start, the longest reconciles wait for the member clusters to be connected (or
/// known unusable) and their caches filled; see `Fleet::wait_settled`.
pub const STARTUP_SETTLE_CAP: Duration = Duration::from_secs(30);

/// What the reconciler shares.
pub struct Context {
    /// The hub.
    pub hub: Client,
    /// The member connections.
    pub fleet: Fleet,
    /// Publishes Events on stacks.
    pub recorder: Recorder,
    /// Counts and times reconciles.
    pub metrics: ReconcileMetrics,
    /// Objects written moments ago that the watch caches may not show yet.
    recent_writes: RecentWrites,
    /// Stacks whose status write is held for their children's first reports.
    status_holds: StatusHolds,
    /// Whether reconciles make progress (for `/healthz`).
    liveness: Liveness,
    /// How many passes in a row failed a write, per stack uid (the retry backs off).
    failed_passes: Mutex<HashMap<String, u32>>,
    /// What each stack wrote (see [`inventory`]).
    inventories: inventory::Inventories,
    /// Issues and keeps the stacks' data-path credentials.
    credentials: CredentialIssuer,
    /// The hub's stacks (who adopts whom).
    stacks: Store<GuardedStack>,
    /// The hub's tenant policies, and whether one is required.
    policies: Policies,
    /// The hub's ConfigMaps that dashboards name (`configMapRef`).
    pub(crate) dashboard_sources: DashboardSources,
    /// Which shards this replica holds: only their stacks are reconciled here.
    shards: ShardHolding,
}

impl Context {
    /// A context for a hub and a fleet.
    pub fn new(
        hub: Client,
        fleet: Fleet,
        liveness: Liveness,
        stacks: Store<GuardedStack>,
        policies: Policies,
        dashboard_sources: DashboardSources,
    ) -> Self {
        Context {
            recorder: crate::invalid_object::recorder(hub.clone()),
            fleet,
            metrics: ReconcileMetrics::default(),
            status_holds: StatusHolds::default(),
            liveness,
            failed_passes: Mutex::default(),
            recent_writes: RecentWrites::default(),
            inventories: inventory::Inventories::default(),
            credentials: CredentialIssuer::new(
                hub.clone(),
                crate::credentials::DEFAULT_CREDENTIALS_NAMESPACE.to_owned(),
            ),
            hub,
            stacks,
            policies,
            dashboard_sources,
            shards: ShardHolding::everything(),
        }
    }

    /// Which shards this replica holds.
    pub(crate) fn shards(&self) -> &ShardHolding {
        &self.shards
    }

    /// Reconciles only the stacks of the shards `shards` holds.
    pub fn with_shards(mut self, shards: ShardHolding) -> Self {
        self.shards = shards;
        self
    }

    /// Keeps the stacks' data-path credentials in `namespace` on the hub.
    pub fn with_credentials_namespace(mut self, namespace: String) -> Self {
        self.credentials = CredentialIssuer::new(self.hub.clone(), namespace);
        self
    }
}

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object has no namespace or uid (not a stored CustomerStack).
    #[error("the CustomerStack has no {0}")]
    Incomplete(&'static str),
    /// Writing the stack's status failed.
    #[error("writing the status of CustomerStack {stack}: {source}")]
    StatusWrite {
        /// namespace/name.
        stack: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The children are still being deleted (or a cluster holds the deletion).
    #[error("deletion of CustomerStack {stack} not finished: {detail}")]
    DeletionPending {
        /// namespace/name.
        stack: String,
        /// What is left.
        detail: String,
    },
    /// A request to the hub, or the whole reconcile, ran out of time.
    #[error("{what} of CustomerStack {stack} timed out")]
    HubTimeout {
        /// namespace/name.
        stack: String,
        /// What was being done.
        what: &'static str,
    },
    /// The dashboard-source ConfigMaps could not be listed, so the stack's dashboards cannot be
    /// planned.
    #[error(transparent)]
    ConfigMapsNotListed(#[from] ConfigMapsNotListed),
    /// The tenant policies could not be listed, so the stack cannot be judged.
    #[error(transparent)]
    PoliciesNotListed(#[from] PoliciesNotListed),
    /// Issuing or keeping the stack's data-path credentials on the hub failed.
    #[error("the data-path credentials of CustomerStack {stack}: {source}")]
    Credentials {
        /// namespace/name.
        stack: String,
        /// What failed (it names the Secret, never its data).
        #[source]
        source: Box<CredentialError>,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// A bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Incomplete(_) => "incomplete_object",
            ReconcileError::StatusWrite { .. } => "status_write",
            ReconcileError::DeletionPending { .. } => "deletion_pending",
            ReconcileError::HubTimeout { .. } => "timeout",
            ReconcileError::Credentials { .. } => "credentials",
            ReconcileError::PoliciesNotListed(_) => "policies_not_listed",
            ReconcileError::ConfigMapsNotListed(_) => "config_maps_not_listed",
            ReconcileError::Finalizer(_) => "finalizer",
        }
    }
}

/// A `CustomerStack` as the hub watch holds it: one that does not deserialize into our types (a
/// newer or hand-edited schema) is kept as an `InvalidObject`, so it cannot stop the watch and
/// with it every other stack.
pub type GuardedStack = DeserializeGuard<CustomerStack>;

/// The controller's entry point: a stack of a shard another replica holds is left alone (woken
/// again when this replica takes the shard); a stack that deserialized is reconciled; one that
/// did not is reported (a Warning Event on it, the `stacksmith_invalid_objects` metric) and left
/// alone until it changes.
pub async fn reconcile_guarded(
    guarded: Arc<GuardedStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let shard = ctx.shards.shard_of(
        &guarded.namespace().unwrap_or_default(),
        &guarded.name_any(),
    );
    // Held for the whole pass: the shard is not given back while it runs.
    let shards = ctx.shards.clone();
    let Some(_shard_pass) = shards.enter(shard).await else {
        return Ok(Action::await_change());
    };
    ctx.metrics.entered_shard(shard);
    match &guarded.0 {
        Ok(stack) => reconcile(Arc::new(stack.clone()), ctx).await,
        Err(invalid) => {
            status::report_invalid(&ctx, invalid).await;
            Ok(Action::await_change())
        }
    }
}

/// What to do after a failed reconcile (only a stack that deserialized can fail one).
pub fn error_policy_guarded(
    guarded: Arc<GuardedStack>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    match error {
        ReconcileError::DeletionPending { .. } => Action::requeue(Duration::from_secs(2)),
        other => {
            let stack = format!(
                "{}/{}",
                guarded.namespace().unwrap_or_default(),
                guarded.name_any()
            );
            tracing::warn!(%stack, category = other.category(), error = %other, "reconcile failed");
            Action::requeue(Duration::from_secs(10))
        }
    }
}

/// The reconcile entry point (behind the finalizer), in a span naming the stack, counted and
/// timed in the context's metrics.
pub async fn reconcile(
    stack: Arc<CustomerStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    // After a (re)start, stacks are judged only once the fleet knows its members.
    ctx.fleet.wait_settled(STARTUP_SETTLE_CAP).await;
    let started = std::time::Instant::now();
    let _running = ctx.liveness.reconcile_started(&stack_key(&stack));
    let span = tracing::info_span!("reconcile", stack = %stack_key(&stack));
    let result = reconcile_stack(stack, Arc::clone(&ctx))
        .instrument(span)
        .await;
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::category),
    );
    result
}

async fn reconcile_stack(
    stack: Arc<CustomerStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = stack
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    let api: Api<CustomerStack> = Api::namespaced(ctx.hub.clone(), &namespace);
    let key = stack_key(&stack);
    let pass = finalizer::finalizer(&api, FINALIZER, stack, |event| async {
        match event {
            FinalizerEvent::Apply(stack) => converge(&stack, &ctx).await,
            FinalizerEvent::Cleanup(stack) => {
                // A stack being deleted fights over nothing any more.
                if let Some(uid) = stack.uid() {
                    ctx.recent_writes.forget_stack(&uid);
                }
                cleanup::clean_up(&stack, &ctx).await
            }
        }
    });
    match tokio::time::timeout(RECONCILE_TIMEOUT, pass).await {
        Ok(result) => result.map_err(|err| match err {
            finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => inner,
            other => ReconcileError::Finalizer(Box::new(other)),
        }),
        Err(_) => Err(ReconcileError::HubTimeout {
            stack: key,
            what: "the reconcile",
        }),
    }
}

pub(crate) fn stack_key(stack: &CustomerStack) -> String {
    format!(
        "{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    )
}

pub(crate) fn identity(stack: &CustomerStack) -> Result<StackIdentity, ReconcileError> {
    Ok(StackIdentity {
        namespace: stack
            .namespace()
            .ok_or(ReconcileError::Incomplete("namespace"))?,
        name: stack.name_any(),
        uid: stack.uid().ok_or(ReconcileError::Incomplete("uid"))?,
    })
}

/// With a planned exposure: the tenant's data-path credentials, issued or rotated when due, put
/// into the plan's credential Secrets. A hub Secret of that name that is not the stack's is a
/// problem of the stack (nothing is written); a failed hub request fails the pass.
async fn attach_credentials(
    stack: &CustomerStack,
    ctx: &Context,
    identity: &StackIdentity,
    plan: &mut StackPlan,
) -> Result<Result<(), Vec<SpecProblem>>, ReconcileError> {
    if plan.tls_server_names.is_empty() {
        return Ok(Ok(()));
    }
    let rotation = stack
        .annotations()
        .get(ROTATE_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    match ctx
        .credentials
        .ensure(
            identity,
            &stack.spec.customer,
            &plan.tls_server_names,
            &rotation,
        )
        .await
    {
        Ok(credentials) => {
            plan.attach_credentials(&credentials);
            Ok(Ok(()))
        }
        Err(foreign @ CredentialError::Foreign { .. }) => Ok(Err(vec![SpecProblem {
            field: "metadata.uid".to_owned(),
            message: foreign.to_string(),
        }])),
        Err(other) => Err(ReconcileError::Credentials {
            stack: stack_key(stack),
            source: Box::new(other),
        }),
    }
}

async fn converge(stack: &CustomerStack, ctx: &Context) -> Result<Action, ReconcileError> {
    let identity = identity(stack)?;
    let allowed = ctx
        .policies
        .check(stack, &identity.namespace, STARTUP_SETTLE_CAP)
        .await?;
    if let Err(violations) = allowed {
        return refused_by_policy(stack, ctx, violations).await;
    }
    // Dereference: the hub ConfigMaps the dashboards name, read before the pure plan.
    let config_maps = ctx.dashboard_sources.of(stack, STARTUP_SETTLE_CAP).await?;
    let mut plan = match plan_stack_with_config_maps(
        &stack.spec,
        &identity,
        &ctx.fleet.member_infos(),
        &config_maps,
    ) {
        Ok(plan) => plan,
        Err(problems) => return invalid_spec(stack, ctx, problems).await,
    };
    if let Err(problems) = attach_credentials(stack, ctx, &identity, &mut plan).await? {
        return invalid_spec(stack, ctx, problems).await;
    }
    let mut inventory = ctx.inventories.of(stack, &identity.uid);
    let moved = moved_objects(&inventory, &plan);
    if !moved.is_empty() && !annotated(stack, ALLOW_MOVE, "true") {
        return refuse_move(stack, ctx, &plan, &moved, &inventory).await;
    }
    let claimant = Claimant {
        stack_uid: identity.uid.clone(),
        adopt: ctx.adopt_from(stack),
    };
    // The stack it adopts from still lives: look again soon (it hands over when deleted).
    let awaiting_adoption =
        stack.annotations().contains_key(ALLOW_ADOPT) && claimant.adopt.is_none();
    let writes =
        join_all(plan.clusters.iter().map(|cluster| {
            write::write_cluster(ctx, &plan, cluster, &claimant, stack.spec.paused)
        }))
        .await;
    for (key, uid) in writes.iter().flat_map(|pass| &pass.inventory_changes) {
        match uid {
            Some(uid) => inventory.record(key.clone(), uid.clone()),
            None => inventory.forget(key),
        }
    }
    let mut removal = prune::Removal::default();
    if !stack.spec.paused {
        let dropped = inventory
            .unplanned(&plan)
            .into_iter()
            .filter(|object| !moved.iter().any(|m| m.key == object.key))
            .collect();
        removal = prune::remove(ctx, dropped, &mut inventory).await;
    }
    ctx.inventories.keep(&identity.uid, &inventory);
    status::publish(stack, ctx, removal.events).await;
    let mut findings = observe(&writes);
    findings.contested = ctx.recent_writes.contested(&plan.objects);
    findings.failed_deletes = removal.failed;
    findings.inventory = inventory.entries();
    let pass = PassSummary::of(&findings);
    let hold = ctx.status_holds.deadline(
        stack,
        &identity.uid,
        pass.wrote && !pass.failed && !pass.unreachable,
    );
    let recorded = status::record(stack, ctx, &findings, hold).await?;
    if !moved.is_empty() && recorded.ready && !stack.spec.paused {
        // The stack is Ready where it moved to: the old place's objects can go.
        return finish_move(stack, ctx, moved, &mut inventory, &identity.uid).await;
    }
    let next = match ctx.count_failed_pass(&identity.uid, pass.failed) {
        Some(failed_passes) => retry_after(failed_passes),
        None if pass.unreachable || pass.held_back || !moved.is_empty() || awaiting_adoption => {
            RETRY
        }
        None => RESYNC,
    };
    let soonest = [
        recorded.held,
        pass.awaiting_cache,
        pass.contested,
        Some(next),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(next);
    Ok(Action::requeue(soonest))
}

/// Whether the stack carries annotation `key` with `value`.
fn annotated(stack: &CustomerStack, key: &str, value: &str) -> bool {
    stack.annotations().get(key).is_some_and(|v| v == value)
}

/// A move the stack does not allow: nothing is written or deleted, and the status names the
/// field and the annotation that allows it.
async fn refuse_move(
    stack: &CustomerStack,
    ctx: &Context,
    plan: &StackPlan,
    moved: &[InventoriedObject],
    inventory: &Inventory,
) -> Result<Action, ReconcileError> {
    let problem = refused_move(
        moved,
        plan,
        stack.spec.dashboards.namespace.is_some(),
        ALLOW_MOVE,
    );
    let findings = Findings {
        refused_move: problem,
        inventory: inventory.entries(),
        ..Findings::default()
    };
    status::record(stack, ctx, &findings, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// Deletes what a finished move left in the old cluster or namespace, and records it.
async fn finish_move(
    stack: &CustomerStack,
    ctx: &Context,
    moved: Vec<InventoriedObject>,
    inventory: &mut Inventory,
    uid: &str,
) -> Result<Action, ReconcileError> {
    let count = moved.len();
    let keys: Vec<ObjectKey> = moved.iter().map(|object| object.key.clone()).collect();
    let removal = prune::remove(ctx, moved, inventory).await;
    ctx.inventories.keep(uid, inventory);
    let left = keys
        .iter()
        .filter(|key| inventory.uid(key).is_some())
        .count();
    let stuck = !removal.failed.is_empty() || !removal.blocked.is_empty();
    let mut events = removal.events;
    if left == 0 {
        events.push(StackEvent {
            severity: EventSeverity::Normal,
            reason: event_reason::MOVED.to_owned(),
            note: format!("moved: the {count} objects of the old cluster or namespace are gone"),
            action: EventAction::Delete,
        });
    }
    status::publish(stack, ctx, events).await;
    // The next pass records the smaller inventory, and looks again at what is still going
    // (less eagerly when a cluster did not answer or a delete failed).
    Ok(Action::requeue(if stuck {
        RETRY
    } else {
        Duration::from_secs(1)
    }))
}

impl Context {
    /// `stacksmith.io/adopt-from` of the stack, when the stack it names is gone or going (a
    /// live stack keeps its objects).
    fn adopt_from(&self, stack: &CustomerStack) -> Option<AdoptFrom> {
        let from = stack.annotations().get(ALLOW_ADOPT)?;
        let namespace = stack.namespace()?;
        if *from == stack.name_any() {
            return None;
        }
        let live = self.stacks.state().iter().any(|guarded| {
            guarded.namespace().as_deref() == Some(namespace.as_str())
                && guarded.name_any() == *from
                && guarded.meta().deletion_timestamp.is_none()
        });
        (!live).then(|| AdoptFrom {
            namespace,
            name: from.clone(),
            customer: stack.spec.customer.clone(),
        })
    }
}

impl Context {
    /// Counts a pass of the stack `uid`: how many passes in a row failed a write, including this
    /// one (`None` when this one did not, which ends the streak).
    fn count_failed_pass(&self, uid: &str, failed: bool) -> Option<u32> {
        let mut counts = crate::locks::lock(&self.failed_passes);
        if !failed {
            counts.remove(uid);
            return None;
        }
        let count = counts.entry(uid.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        Some(*count)
    }
}

/// How long to wait before the next pass after `failed_passes` passes in a row failed a write:
/// 15 s, doubling up to 5 min. A write the API server refuses (an invalid object, a policy) is
/// reported in the status and by one Event when `Ready` turns `ApplyFailed`, and is not retried
/// every few seconds; a transient failure clears on its first retry. The same curve paces the
/// restores of a contested object (`apply::contested`), by how often it was changed back.
pub(crate) fn retry_after(failed_passes: u32) -> Duration {
    let doublings = failed_passes.saturating_sub(1).min(5);
    RETRY.saturating_mul(1 << doublings).min(RETRY_CAP)
}

/// The spec cannot be planned: only the status says so.
async fn invalid_spec(
    stack: &CustomerStack,
    ctx: &Context,
    problems: Vec<SpecProblem>,
) -> Result<Action, ReconcileError> {
    // Nothing is written or deleted, and the inventory is kept as it is.
    let inventory = match identity(stack) {
        Ok(identity) => ctx.inventories.of(stack, &identity.uid).entries(),
        Err(_) => Vec::new(),
    };
    let findings = Findings {
        problems,
        inventory,
        ..Findings::default()
    };
    status::record(stack, ctx, &findings, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// The stack breaks its tenant policy (or none governs it and one is required): like an invalid
/// spec, nothing is written or deleted, and the status (`PolicyViolation`) names the field and
/// the rule. A policy change wakes the stack again (see [`crate::policies`]).
async fn refused_by_policy(
    stack: &CustomerStack,
    ctx: &Context,
    violations: Vec<SpecProblem>,
) -> Result<Action, ReconcileError> {
    let inventory = match identity(stack) {
        Ok(identity) => ctx.inventories.of(stack, &identity.uid).entries(),
        Err(_) => Vec::new(),
    };
    let findings = Findings {
        policy_violations: violations,
        inventory,
        ..Findings::default()
    };
    status::record(stack, ctx, &findings, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// The observe stage: every cluster's writes and caches → the findings of the pass.
fn observe(writes: &[write::ClusterPass]) -> Findings<'_> {
    let mut findings = Findings::default();
    for pass in writes {
        let judge = |kind, object: &serde_json::Value| {
            write::live_health(kind, object, pass.connection.as_deref())
        };
        findings
            .children
            .extend(child_observations(&pass.writes, judge));
        findings.clusters.push(pass.writes.observation.clone());
        findings.foreign.extend(pass.writes.foreign.iter().cloned());
        findings.outcomes.extend(pass.writes.outcomes.iter());
    }
    findings
}

/// What a pass amounts to for pacing: whether it wrote, failed or met an unreachable cluster,
/// how long a write of a moment ago is still awaited in the caches, and when the first
/// contested object is due to be restored.
#[derive(Debug, Default, PartialEq, Eq)]
struct PassSummary {
    wrote: bool,
    failed: bool,
    unreachable: bool,
    /// Objects left for a later pass because their member's writes were held (its write slots
    /// taken, or its writes not answered).
    held_back: bool,
    awaiting_cache: Option<Duration>,
    /// How long until the first contested object (another writer keeps changing it back) is
    /// restored: the pass is requeued for then.
    contested: Option<Duration>,
}

impl PassSummary {
    fn of(findings: &Findings<'_>) -> Self {
        let outcomes = || findings.outcomes.iter().map(|(_, outcome)| outcome);
        PassSummary {
            wrote: outcomes().any(WriteOutcome::wrote),
            failed: outcomes().any(|o| matches!(o, WriteOutcome::Failed { .. }))
                || !findings.failed_deletes.is_empty(),
            unreachable: findings
                .clusters
                .iter()
                .any(|c| c.state != ClusterState::Reachable),
            held_back: outcomes().any(|o| {
                matches!(
                    o,
                    WriteOutcome::NotWritten {
                        reason: NotWrittenReason::MemberWritesHeld(_),
                        ..
                    }
                )
            }),
            awaiting_cache: outcomes()
                .filter_map(|o| match o {
                    WriteOutcome::AwaitingCache { left } => Some(*left),
                    _ => None,
                })
                .max(),
            contested: outcomes()
                .filter_map(|o| match o {
                    WriteOutcome::NotWritten {
                        reason: NotWrittenReason::Contested(contest),
                        ..
                    } => Some(contest.retry_in),
                    _ => None,
                })
                .min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stacksmith_core::aggregate::ClusterObservation;
    use stacksmith_core::observe::ClusterWrites;
    use stacksmith_core::plan::{DesiredObject, ObjectKind};

    use super::*;

    fn planned(name: &str) -> DesiredObject {
        DesiredObject {
            cluster: "prom-1".into(),
            kind: ObjectKind::Namespace,
            namespace: String::new(),
            name: name.into(),
            manifest: json!({}),
        }
    }

    #[test]
    fn a_pass_summary_says_what_paces_the_next_look() {
        let outcomes = [
            (planned("a"), WriteOutcome::Created),
            (
                planned("b"),
                WriteOutcome::AwaitingCache {
                    left: Duration::from_secs(3),
                },
            ),
            (
                planned("c"),
                WriteOutcome::AwaitingCache {
                    left: Duration::from_secs(1),
                },
            ),
        ];
        let findings = Findings {
            outcomes: outcomes.iter().collect(),
            clusters: vec![ClusterObservation {
                cluster: "prom-1".into(),
                state: ClusterState::Reachable,
            }],
            ..Findings::default()
        };
        assert_eq!(
            PassSummary::of(&findings),
            PassSummary {
                wrote: true,
                failed: false,
                unreachable: false,
                awaiting_cache: Some(Duration::from_secs(3)),
                ..PassSummary::default()
            }
        );
        let failed = [(
            planned("a"),
            WriteOutcome::Failed {
                message: "500".into(),
            },
        )];
        let findings = Findings {
            outcomes: failed.iter().collect(),
            clusters: vec![ClusterObservation {
                cluster: "prom-1".into(),
                state: ClusterState::Unreachable {
                    message: "connection refused".into(),
                },
            }],
            ..Findings::default()
        };
        let summary = PassSummary::of(&findings);
        assert!(summary.failed && summary.unreachable && !summary.wrote);
    }

    #[test]
    fn a_failing_write_is_retried_less_and_less_often() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(retry_after(u32::MAX), RETRY_CAP);
    }

    #[test]
    fn unavailable_clusters_are_observed_unreachable() {
        let objects = [planned("customer-acme")];
        let pass = write::ClusterPass {
            writes: ClusterWrites::unavailable("prom-1", &objects, "connecting"),
            connection: None,
            inventory_changes: Vec::new(),
        };
        let findings = observe(std::slice::from_ref(&pass));
        assert!(findings.children.is_empty(), "a namespace is not a child");
        assert_eq!(findings.outcomes.len(), 1);
        assert!(PassSummary::of(&findings).unreachable);
    }
}

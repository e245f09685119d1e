//! Reconciling one `CustomerStack`: a small driver of named stages.
//!
//! converge: identify → plan (pure) → write per cluster (concurrently, each under its own
//! timeouts) → remove what is no longer planned → observe children from the watch caches →
//! aggregate (pure) → record status and events.
//!
//! clean up (on deletion, behind the finalizer): delete every child in every cluster and wait
//! until they are gone; an unreachable cluster holds the deletion; `Orphan` releases at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use stacksmith_api::{CustomerStack, CustomerStackStatus, DeletionPolicy};
use stacksmith_core::aggregate::{
    AggregateInput, ChildObservation, ClusterObservation, ClusterState, DeletionState,
    FailedObject, ForeignObject, ObservedState, SpecProblem, aggregate, condition_type, reason,
};
use stacksmith_core::grafana_instances::explain_unmatched;
use stacksmith_core::plan::{DesiredObject, ObjectKind, StackIdentity, StackPlan, plan_stack};
use stacksmith_core::{ChildHealth, ChildKind, HealthReason, assess, assess_with_evidence};
use tracing::Instrument as _;

use crate::FIELD_MANAGER;
use crate::apply::{
    ApplyOutcome, Ownership, RecentWrites, apply_object, cached, delete_object, owned_objects,
    ownership,
};
use crate::config_evidence::needs_config_evidence;
use crate::fleet::{Fleet, MemberConnection, MemberState, Reachability};
use crate::member_probe::now;
use crate::metrics::ReconcileMetrics;

/// The finalizer that holds a stack until its children are gone.
pub const FINALIZER: &str = "stacksmith.io/cleanup";
/// The timeout of each request to the hub (status writes, Events).
pub const HUB_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a whole reconcile may take (every request in it also has its own timeout).
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a stack is looked at with nothing happening (a safety net; watches drive the rest).
pub const RESYNC: Duration = Duration::from_secs(300);
/// After a (re)start, the longest reconciles wait for the member clusters to be connected (or
/// known unusable) and their caches filled; see `Fleet::wait_settled`.
pub const STARTUP_SETTLE_CAP: Duration = Duration::from_secs(30);
/// After children of a new generation are written, how long the status write waits for their
/// operators' first reports while the only news would be "still progressing": a new stack whose
/// children report quickly gets one status write, not one per report.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(1);

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
    /// Stacks whose status write is held (uid → generation, until when); see [`SETTLE_WINDOW`].
    settling: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl Context {
    /// A context for a hub and a fleet.
    pub fn new(hub: Client, fleet: Fleet) -> Self {
        let reporter = Reporter {
            controller: "stacksmith".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(hub.clone(), reporter),
            hub,
            fleet,
            metrics: ReconcileMetrics::default(),
            settling: Mutex::new(HashMap::new()),
            recent_writes: RecentWrites::default(),
        }
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
            ReconcileError::Finalizer(_) => "finalizer",
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
            FinalizerEvent::Cleanup(stack) => clean_up(&stack, &ctx).await,
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

/// What to do after a failed reconcile.
pub fn error_policy(
    stack: Arc<CustomerStack>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    match error {
        ReconcileError::DeletionPending { .. } => Action::requeue(Duration::from_secs(2)),
        other => {
            tracing::warn!(stack = %stack_key(&stack), category = other.category(), error = %other, "reconcile failed");
            Action::requeue(Duration::from_secs(10))
        }
    }
}

fn stack_key(stack: &CustomerStack) -> String {
    format!(
        "{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    )
}

fn identity(stack: &CustomerStack) -> Result<StackIdentity, ReconcileError> {
    Ok(StackIdentity {
        namespace: stack
            .namespace()
            .ok_or(ReconcileError::Incomplete("namespace"))?,
        name: stack.name_any(),
        uid: stack.uid().ok_or(ReconcileError::Incomplete("uid"))?,
    })
}

/// One cluster's part of a pass.
struct ClusterPass {
    observation: ClusterObservation,
    /// The cluster's connection when it was usable (its caches explain `NoMatchingInstance`).
    connection: Option<Arc<MemberConnection>>,
    /// Outcome per planned object of this cluster, in plan order (all `NotWritten` when the
    /// cluster is unreachable).
    outcomes: Vec<(DesiredObject, ApplyOutcome)>,
    /// Planned namespaces that belong to someone else.
    foreign: Vec<ForeignObject>,
}

/// Everything a pass found, for the status and the Events.
#[derive(Default)]
struct Findings<'a> {
    problems: Vec<SpecProblem>,
    children: Vec<ChildObservation>,
    clusters: Vec<ClusterObservation>,
    foreign: Vec<ForeignObject>,
    deletion: Option<DeletionState>,
    outcomes: Vec<&'a (DesiredObject, ApplyOutcome)>,
}

async fn converge(stack: &CustomerStack, ctx: &Context) -> Result<Action, ReconcileError> {
    let identity = identity(stack)?;
    let plan = match plan_stack(&stack.spec, &identity, &ctx.fleet.member_infos()) {
        Ok(plan) => plan,
        Err(problems) => {
            record(
                stack,
                ctx,
                Findings {
                    problems,
                    ..Findings::default()
                },
                None,
            )
            .await?;
            return Ok(Action::requeue(RESYNC));
        }
    };
    let passes = join_all(
        plan.clusters
            .iter()
            .map(|cluster| write_cluster(ctx, &plan, cluster, &identity.uid, stack.spec.paused)),
    )
    .await;
    if !stack.spec.paused {
        remove_unplanned(ctx, &plan, &identity.uid).await;
    }
    let findings = Findings {
        children: observe(&passes),
        clusters: passes.iter().map(|p| p.observation.clone()).collect(),
        foreign: passes
            .iter()
            .flat_map(|p| p.foreign.iter().cloned())
            .collect(),
        outcomes: passes.iter().flat_map(|p| p.outcomes.iter()).collect(),
        ..Findings::default()
    };
    let failed = findings
        .outcomes
        .iter()
        .any(|(_, o)| matches!(o, ApplyOutcome::Failed { .. }));
    let unreachable = findings
        .clusters
        .iter()
        .any(|c| c.state != ClusterState::Reachable);
    let wrote = findings.outcomes.iter().any(|(_, o)| {
        matches!(
            o,
            ApplyOutcome::Created | ApplyOutcome::Updated | ApplyOutcome::AwaitingCache { .. }
        )
    });
    // Look again when the cache has had its time to show writes it has not shown yet.
    let awaiting = findings
        .outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            ApplyOutcome::AwaitingCache { left } => Some(*left),
            _ => None,
        })
        .max();
    let settling = settle_deadline(ctx, stack, &identity.uid, wrote && !failed && !unreachable);
    let hold = record(stack, ctx, findings, settling).await?;
    let next = if failed || unreachable {
        Duration::from_secs(15)
    } else {
        RESYNC
    };
    Ok(Action::requeue(
        [hold, awaiting, Some(next)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next),
    ))
}

/// Until when the status write of `stack` may be held: it starts when this pass wrote children
/// for a generation the status does not show yet (`wrote_new`), and lasts [`SETTLE_WINDOW`].
fn settle_deadline(
    ctx: &Context,
    stack: &CustomerStack,
    uid: &str,
    wrote_new: bool,
) -> Option<Instant> {
    let generation = stack.metadata.generation;
    let shown = stack.status.as_ref().and_then(|s| s.observed_generation) == generation;
    let mut settling = match ctx.settling.lock() {
        Ok(settling) => settling,
        Err(poisoned) => poisoned.into_inner(),
    };
    let now = Instant::now();
    settling.retain(|_, (_, until)| *until > now);
    match settling.get(uid) {
        Some((held, until)) if *held == generation => Some(*until),
        _ if wrote_new && !shown => {
            let until = now + SETTLE_WINDOW;
            settling.insert(uid.to_owned(), (generation, until));
            Some(until)
        }
        _ => None,
    }
}

/// The member's connection if it can be written to now, else why not.
async fn usable_connection(ctx: &Context, cluster: &str) -> Result<Arc<MemberConnection>, String> {
    match ctx.fleet.state(cluster) {
        None => Err("MemberCluster not registered".into()),
        Some(MemberState::Connecting) => Err("connecting".into()),
        Some(MemberState::Unusable(why)) => Err(why),
        Some(MemberState::Connected(connection)) => match connection.reachability() {
            Reachability::Unreachable(why) => Err(why),
            Reachability::Reachable => {
                if connection.wait_caches(connection.timeout).await {
                    // Evidence only: a rejection watch that never lists does not hold the pass.
                    connection.wait_rejections(connection.timeout).await;
                    Ok(connection)
                } else {
                    Err("watch caches not synchronised".into())
                }
            }
        },
    }
}

/// Writes one cluster's planned objects in creation order.
async fn write_cluster(
    ctx: &Context,
    plan: &StackPlan,
    cluster: &str,
    uid: &str,
    paused: bool,
) -> ClusterPass {
    let planned = plan.objects.iter().filter(|o| o.cluster == cluster);
    let connection = match usable_connection(ctx, cluster).await {
        Ok(connection) => connection,
        Err(message) => {
            let not_written = |d: &DesiredObject| {
                (
                    d.clone(),
                    ApplyOutcome::NotWritten {
                        existing: None,
                        reason: message.clone(),
                    },
                )
            };
            return ClusterPass {
                connection: None,
                foreign: Vec::new(),
                outcomes: planned.map(not_written).collect(),
                observation: ClusterObservation {
                    cluster: cluster.to_owned(),
                    state: ClusterState::Unreachable { message },
                },
            };
        }
    };
    let mut outcomes = Vec::new();
    let mut foreign = Vec::new();
    let mut unavailable_namespaces: Vec<(String, String)> = Vec::new();
    for desired in planned {
        let blocked = unavailable_namespaces
            .iter()
            .find(|(ns, _)| *ns == desired.namespace)
            .map(|(_, why)| why.clone());
        let outcome = if paused || blocked.is_some() {
            let existing = cached(&connection, desired.kind, &desired.namespace, &desired.name);
            match existing.as_ref().map(|e| ownership(e.as_ref(), uid)) {
                Some(Ownership::Foreign(owner)) => ApplyOutcome::Conflict { owner },
                Some(Ownership::Ours) => ApplyOutcome::NotWritten {
                    existing: existing.map(|e| Box::new(e.to_value())),
                    reason: blocked.clone().unwrap_or_else(|| "paused".into()),
                },
                None => ApplyOutcome::NotWritten {
                    existing: None,
                    reason: blocked.clone().unwrap_or_else(|| "paused".into()),
                },
            }
        } else {
            apply_object(&connection, desired, uid, &ctx.recent_writes).await
        };
        if desired.kind == ObjectKind::Namespace {
            let why = match &outcome {
                ApplyOutcome::Conflict { owner } => {
                    foreign.push(ForeignObject {
                        cluster: cluster.to_owned(),
                        kind: "Namespace".into(),
                        name: desired.name.clone(),
                        owner: owner.clone(),
                    });
                    Some(format!("namespace {} belongs to {owner}", desired.name))
                }
                ApplyOutcome::Failed { message } => Some(format!(
                    "namespace {} could not be written: {message}",
                    desired.name
                )),
                _ => None,
            };
            if let Some(why) = why {
                unavailable_namespaces.push((desired.name.clone(), why));
            }
        }
        outcomes.push((desired.clone(), outcome));
    }
    ClusterPass {
        observation: ClusterObservation {
            cluster: cluster.to_owned(),
            state: ClusterState::Reachable,
        },
        connection: Some(connection),
        outcomes,
        foreign,
    }
}

/// Deletes the stack's objects that are no longer planned, in every reachable member.
async fn remove_unplanned(ctx: &Context, plan: &StackPlan, uid: &str) {
    let planned: BTreeSet<(String, ObjectKind, String, String)> = plan
        .objects
        .iter()
        .map(|o| {
            (
                o.cluster.clone(),
                o.kind,
                o.namespace.clone(),
                o.name.clone(),
            )
        })
        .collect();
    for connection in ctx.fleet.connections() {
        if connection.reachability() != Reachability::Reachable {
            continue;
        }
        for object in owned_objects(&connection, uid) {
            let key = (
                connection.name.clone(),
                object.kind,
                object.namespace.clone(),
                object.name.clone(),
            );
            if object.deleting || planned.contains(&key) {
                continue;
            }
            tracing::info!(cluster = %connection.name, kind = object.kind.kind(), namespace = %object.namespace, name = %object.name, "deleting an object no longer planned");
            if let Err(err) = delete_object(&connection, &object).await {
                tracing::warn!(cluster = %connection.name, kind = object.kind.kind(), name = %object.name, %err, "delete failed");
            }
        }
    }
}

/// How every planned child was found.
fn observe(passes: &[ClusterPass]) -> Vec<ChildObservation> {
    let mut children = Vec::new();
    for pass in passes {
        for (desired, outcome) in &pass.outcomes {
            let Some(kind) = desired.kind.child() else {
                continue;
            };
            let state = match &pass.observation.state {
                ClusterState::Unreachable { message } => ObservedState::ClusterUnreachable {
                    message: message.clone(),
                },
                ClusterState::Reachable => {
                    observed_state(kind, outcome, pass.connection.as_deref())
                }
            };
            children.push(ChildObservation {
                cluster: desired.cluster.clone(),
                kind,
                namespace: desired.namespace.clone(),
                name: desired.name.clone(),
                state,
            });
        }
    }
    children
}

fn observed_state(
    kind: ChildKind,
    outcome: &ApplyOutcome,
    connection: Option<&MemberConnection>,
) -> ObservedState {
    match outcome {
        ApplyOutcome::Unchanged(object) => {
            ObservedState::Live(live_health(kind, object, connection))
        }
        ApplyOutcome::Created | ApplyOutcome::Updated | ApplyOutcome::AwaitingCache { .. } => {
            ObservedState::Applying
        }
        ApplyOutcome::Conflict { owner } => ObservedState::Conflict {
            owner: owner.clone(),
        },
        ApplyOutcome::Failed { message } => ObservedState::ApplyFailed {
            message: message.clone(),
        },
        ApplyOutcome::NotWritten {
            existing: Some(object),
            ..
        } => ObservedState::Live(live_health(kind, object, connection)),
        ApplyOutcome::NotWritten {
            existing: None,
            reason,
        } if reason == "paused" => ObservedState::Missing,
        ApplyOutcome::NotWritten {
            existing: None,
            reason,
        } => ObservedState::ApplyFailed {
            message: format!("not written: {reason}"),
        },
    }
}

/// A child's health from its cached object; a `PrometheusRule` or `ServiceMonitor` without a
/// status is judged from what the member's caches show (its Prometheus objects and the
/// rejection Events), and a `NoMatchingInstance` says why no Grafana matches.
fn live_health(
    kind: ChildKind,
    object: &serde_json::Value,
    connection: Option<&MemberConnection>,
) -> ChildHealth {
    let mut health = match connection {
        Some(connection) if needs_config_evidence(kind, object) => {
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let evidence = connection.config_evidence(namespace);
            assess_with_evidence(kind, object, &evidence.evidence())
        }
        _ => assess(kind, object),
    };
    // Only then are the cluster's Grafana instances looked at (read from its cache).
    if let (HealthReason::NoMatchingInstance, Some(connection)) = (health.reason, connection) {
        let why = explain_unmatched(object, &connection.grafanas());
        health.message = format!("{}; {why}", health.message);
    }
    health
}

/// What went wrong with the planned objects that are not children (their health is not
/// reported, but a stack whose Prometheus identity could not be written is not applied): failed
/// writes, and objects of a planned name that someone else owns (next to the foreign tenant
/// namespaces already found).
fn non_child_problems(findings: &Findings<'_>) -> (Vec<FailedObject>, Vec<ForeignObject>) {
    let mut failed = Vec::new();
    let mut foreign = findings.foreign.clone();
    for (desired, outcome) in &findings.outcomes {
        if desired.kind.child().is_some() {
            continue;
        }
        match outcome {
            ApplyOutcome::Failed { message } => failed.push(FailedObject {
                cluster: desired.cluster.clone(),
                kind: desired.kind.kind().to_owned(),
                namespace: desired.namespace.clone(),
                name: desired.name.clone(),
                message: message.clone(),
            }),
            ApplyOutcome::Conflict { owner } => {
                let name = if desired.namespace.is_empty() {
                    desired.name.clone()
                } else {
                    format!("{}/{}", desired.namespace, desired.name)
                };
                let already = foreign.iter().any(|f| {
                    f.cluster == desired.cluster && f.kind == desired.kind.kind() && f.name == name
                });
                if !already {
                    foreign.push(ForeignObject {
                        cluster: desired.cluster.clone(),
                        kind: desired.kind.kind().to_owned(),
                        name,
                        owner: owner.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    (failed, foreign)
}

/// Aggregates the findings and writes the status when it changed; returns how long to wait when
/// the write is held (`settling`: the children of a new generation are still making their first
/// reports and nothing is wrong) — Events about what was written are published either way.
async fn record(
    stack: &CustomerStack,
    ctx: &Context,
    findings: Findings<'_>,
    settling: Option<Instant>,
) -> Result<Option<Duration>, ReconcileError> {
    let previous = stack.status.as_ref();
    let now = now();
    let (failed_objects, foreign_objects) = non_child_problems(&findings);
    let status = aggregate(&AggregateInput {
        generation: stack.metadata.generation,
        paused: stack.spec.paused,
        spec_problems: &findings.problems,
        children: &findings.children,
        clusters: &findings.clusters,
        foreign_objects: &foreign_objects,
        failed_objects: &failed_objects,
        deletion: findings.deletion.as_ref(),
        previous,
        now: &now,
    });
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::READY);
    let only_progressing = ready.is_some_and(|c| {
        c.status != "True"
            && matches!(
                c.reason.as_str(),
                reason::CHILD_PROGRESSING | reason::CHILD_UNKNOWN | reason::PENDING
            )
    });
    let hold = settling
        .filter(|_| only_progressing)
        .map(|until| until.saturating_duration_since(Instant::now()))
        .filter(|left| !left.is_zero());
    let ready_events = hold.is_none();
    publish_events(
        stack,
        ctx,
        previous,
        &status,
        &findings.outcomes,
        ready_events,
    )
    .await;
    if hold.is_some() {
        return Ok(hold);
    }
    if let Ok(mut settling) = ctx.settling.lock()
        && let Some(uid) = stack.uid()
    {
        settling.remove(&uid);
    }
    if previous == Some(&status) {
        return Ok(None);
    }
    let namespace = stack
        .namespace()
        .ok_or(ReconcileError::Incomplete("namespace"))?;
    let api: Api<CustomerStack> = Api::namespaced(ctx.hub.clone(), &namespace);
    let body =
        json!({"apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack", "status": status});
    let name = stack.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    let write = api.patch_status(&name, &params, &patch);
    match tokio::time::timeout(HUB_TIMEOUT, write).await {
        Ok(Ok(_)) => {
            tracing::debug!(
                ready = ready.map(|c| c.status.as_str()),
                reason = ready.map(|c| c.reason.as_str()),
                children_ready = status.children_ready.as_deref(),
                "status written"
            );
        }
        Ok(Err(source)) => {
            return Err(ReconcileError::StatusWrite {
                stack: stack_key(stack),
                source,
            });
        }
        Err(_) => {
            return Err(ReconcileError::HubTimeout {
                stack: stack_key(stack),
                what: "writing the status",
            });
        }
    }
    Ok(None)
}

async fn publish_events(
    stack: &CustomerStack,
    ctx: &Context,
    previous: Option<&CustomerStackStatus>,
    status: &CustomerStackStatus,
    outcomes: &[&(DesiredObject, ApplyOutcome)],
    ready_events: bool,
) {
    let mut events = Vec::new();
    let ready = |s: Option<&CustomerStackStatus>| {
        s.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == condition_type::READY)
        })
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    // Ready is recorded as Events when a stack runs into a problem (from Ready or from
    // progressing) and when it recovers from one; a stack that is merely progressing (new, or
    // rolling out a change) and then gets Ready makes no Event.
    let in_trouble = |ready: Option<(String, String, String)>| {
        ready.is_some_and(|(status, reason, _)| {
            status != "True"
                && !matches!(
                    reason.as_str(),
                    reason::CHILD_PROGRESSING | reason::CHILD_UNKNOWN | reason::PENDING
                )
        })
    };
    let was_in_trouble = in_trouble(ready(previous));
    if let Some((status_now, reason, message)) = ready(Some(status))
        && ready_events
    {
        let now_in_trouble = in_trouble(Some((status_now.clone(), reason.clone(), String::new())));
        if now_in_trouble && !was_in_trouble {
            events.push((EventType::Warning, reason, message, "Aggregate"));
        } else if status_now == "True" && was_in_trouble {
            events.push((EventType::Normal, "Ready".to_owned(), message, "Aggregate"));
        }
    }
    let spec_unchanged = previous.and_then(|p| p.observed_generation) == stack.metadata.generation;
    for (desired, outcome) in outcomes {
        let object = if desired.namespace.is_empty() {
            desired.name.clone()
        } else {
            format!("{}/{}", desired.namespace, desired.name)
        };
        let what = format!("{} {object} on {}", desired.kind.kind(), desired.cluster);
        let was_listed = previous.is_some_and(|p| {
            p.children.iter().any(|c| {
                c.cluster == desired.cluster
                    && c.kind == desired.kind.kind()
                    && c.name == desired.name
                    && c.reason != "NotCreated"
                    && c.reason != "Applying"
            })
        });
        match outcome {
            ApplyOutcome::Updated if spec_unchanged => {
                events.push((
                    EventType::Warning,
                    "DriftCorrected".into(),
                    format!("restored {what}: it was changed outside stacksmith"),
                    "Apply",
                ));
            }
            ApplyOutcome::Created if spec_unchanged && was_listed => {
                events.push((
                    EventType::Warning,
                    "ChildRecreated".into(),
                    format!("re-created {what}: it was deleted outside stacksmith"),
                    "Apply",
                ));
            }
            // Once per conflict episode: while the stack already reports a conflict, say nothing.
            ApplyOutcome::Conflict { owner }
                if ready(previous).is_none_or(|(_, reason, _)| reason != "Conflict") =>
            {
                events.push((
                    EventType::Warning,
                    "Conflict".into(),
                    format!("{what} belongs to {owner}; not overwritten"),
                    "Apply",
                ));
            }
            _ => {}
        }
    }
    let reference = stack.object_ref(&());
    for (type_, reason, note, action) in events {
        let event = KubeEvent {
            type_,
            reason,
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        match tokio::time::timeout(HUB_TIMEOUT, ctx.recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(stack = %stack_key(stack), %err, "publishing an Event"),
            Err(_) => tracing::warn!(stack = %stack_key(stack), "publishing an Event timed out"),
        }
    }
}

/// Deletes the children in every cluster; done when none is left.
async fn clean_up(stack: &CustomerStack, ctx: &Context) -> Result<Action, ReconcileError> {
    if stack.spec.deletion_policy == DeletionPolicy::Orphan {
        tracing::info!(stack = %stack_key(stack), "deletionPolicy Orphan: leaving the children in place");
        return Ok(Action::await_change());
    }
    let uid = identity(stack)?.uid;
    let mut used: BTreeSet<String> = [
        stack.spec.metrics.cluster.clone(),
        stack.spec.dashboards.cluster.clone(),
    ]
    .into();
    used.extend(
        stack
            .status
            .iter()
            .flat_map(|s| s.children.iter().map(|c| c.cluster.clone())),
    );
    let mut remaining = 0u32;
    let mut blocked = Vec::new();
    let connected: Vec<Arc<MemberConnection>> = ctx.fleet.connections();
    for cluster in &used {
        let Some(connection) = connected.iter().find(|c| &c.name == cluster) else {
            if ctx.fleet.state(cluster).is_some() {
                blocked.push(cluster.clone());
            }
            continue;
        };
        let owned = owned_objects(connection, &uid);
        if connection.reachability() != Reachability::Reachable {
            if !owned.is_empty() {
                blocked.push(cluster.clone());
            }
            continue;
        }
        remaining += u32::try_from(owned.len()).unwrap_or(u32::MAX);
        for object in owned.iter().filter(|o| !o.deleting) {
            if let Err(err) = delete_object(connection, object).await {
                tracing::warn!(cluster = %cluster, kind = object.kind.kind(), name = %object.name, %err, "delete failed");
            }
        }
    }
    if remaining == 0 && blocked.is_empty() {
        tracing::info!(stack = %stack_key(stack), "all children deleted");
        return Ok(Action::await_change());
    }
    let deletion = if blocked.is_empty() {
        DeletionState::InProgress { remaining }
    } else {
        blocked.sort();
        DeletionState::Blocked {
            clusters: blocked.clone(),
        }
    };
    record(
        stack,
        ctx,
        Findings {
            deletion: Some(deletion),
            ..Findings::default()
        },
        None,
    )
    .await?;
    Err(ReconcileError::DeletionPending {
        stack: stack_key(stack),
        detail: if blocked.is_empty() {
            format!("{remaining} objects left")
        } else {
            format!("clusters unreachable: {}", blocked.join(", "))
        },
    })
}

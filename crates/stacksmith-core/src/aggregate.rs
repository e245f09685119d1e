//! Aggregation: what stacksmith observed of a stack's children and clusters → the stack's status.
//!
//! Pure: the controller gathers [`AggregateInput`] from its watch caches and apply results, and
//! [`aggregate`] decides the conditions, the per-child list and the summary. Deterministic: the
//! same input (with the same previous status) gives an identical status, so an unchanged stack
//! is never patched.
//!
//! Times never move without a change: a child's `lastObserved` moves only when its verdict,
//! reason or message changes, and a condition's `lastTransitionTime` only when its status flips.
//! Feeding the output back as [`AggregateInput::previous`] with a later `now` and the same
//! observations gives an identical status.
//!
//! The `Ready` condition names the root cause when it is not `True`, by priority: deletion,
//! a tenant policy violation, invalid spec, a conflicting object, an unreachable cluster, a failed write, then the first
//! child (in the status order) that is Degraded, Suspended, Unknown or Progressing.

mod children;
mod conditions;
#[cfg(test)]
mod tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stacksmith_api::{CustomerStackStatus, InventoryEntry};

use crate::health::{ChildHealth, ChildKind};
use crate::status_conditions::render_conditions;

// Planning finds spec problems and aggregation reports them; the type lives with the planner, and
// `stacksmith_core::aggregate::SpecProblem` stays a valid path.
pub use crate::plan::SpecProblem;

/// Condition types of a `CustomerStack`.
pub mod condition_type {
    /// Every child exists and is Healthy at its current generation.
    pub const READY: &str = "Ready";
    /// stacksmith wrote everything it planned (False: invalid spec, missing cluster, conflict,
    /// failed writes; Unknown: paused).
    pub const CHILDREN_APPLIED: &str = "ChildrenApplied";
    /// Every member cluster the stack uses answers.
    pub const CLUSTERS_REACHABLE: &str = "ClustersReachable";
    /// Only while the stack is being deleted: True when deletion cannot finish because a
    /// cluster holding children is unreachable.
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
}

/// Reasons [`aggregate`] writes, on the stack's conditions and on its children.
pub mod reason {
    /// `Ready` is True: every child is Healthy.
    pub const READY: &str = "Ready";
    /// `Ready` is False (and `DeletionBlocked` False): the stack is being deleted.
    pub const DELETING: &str = "Deleting";
    /// `Ready` is False: deletion cannot finish because a cluster is unreachable.
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    /// `Ready`/`ChildrenApplied` are False: the spec could not be planned.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `Ready`/`ChildrenApplied` are False: the stack breaks a rule of the `TenantPolicy` that
    /// governs its customer, or no policy governs it and the operator requires one.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// `Ready`/`ChildrenApplied` are False: a changed spec would move the stack's objects to
    /// another cluster or namespace, and the stack does not carry `stacksmith.io/allow-move`.
    pub const MOVE_REFUSED: &str = "MoveRefused";
    /// An object of a child's name exists and is not this stack's (conditions and children).
    pub const CONFLICT: &str = "Conflict";
    /// A member cluster does not answer (conditions and children).
    pub const CLUSTER_UNREACHABLE: &str = "ClusterUnreachable";
    /// Writing a child failed (conditions and children).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `Ready` is False: a child is Degraded.
    pub const CHILD_DEGRADED: &str = "ChildDegraded";
    /// `Ready` is False: a child is Suspended.
    pub const CHILD_SUSPENDED: &str = "ChildSuspended";
    /// `Ready` is False: a child's health is Unknown.
    pub const CHILD_UNKNOWN: &str = "ChildUnknown";
    /// `Ready` is False: a child is Progressing.
    pub const CHILD_PROGRESSING: &str = "ChildProgressing";
    /// `Ready` is False: the stack plans no child.
    pub const NO_CHILDREN: &str = "NoChildren";
    /// `ChildrenApplied` is Unknown (and missing children are Unknown): `spec.paused` is true.
    pub const PAUSED: &str = "Paused";
    /// `ChildrenApplied` is False: some children are missing or their cluster is unreachable.
    pub const PENDING: &str = "Pending";
    /// `ChildrenApplied` is True.
    pub const APPLIED: &str = "Applied";
    /// `ClustersReachable` is True.
    pub const REACHABLE: &str = "Reachable";
    /// `ClustersReachable` is Unknown: the stack uses no known cluster (e.g. invalid spec).
    pub const NOT_CHECKED: &str = "NotChecked";
    /// A child was written in this pass and its operator has not reported on it yet.
    pub const APPLYING: &str = "Applying";
    /// A child does not exist yet and was not written in this pass.
    pub const NOT_CREATED: &str = "NotCreated";
}

/// How one child was found in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedState {
    /// Seen in the cluster's watch cache with this health (from [`crate::assess`]).
    Live(ChildHealth),
    /// Written in this pass (created or updated): its operator has not reported on it yet.
    Applying,
    /// Not in the cluster and not written (the stack is paused, or its cluster's writes failed).
    Missing,
    /// The cluster cannot be reached: what the cache last showed is not current.
    ClusterUnreachable {
        /// Why, e.g. `connection refused`.
        message: String,
    },
    /// An object of that name exists that this stack does not own.
    Conflict {
        /// Who owns it, e.g. `CustomerStack team-a/acme` or `not managed by stacksmith`.
        owner: String,
    },
    /// Writing it failed.
    ApplyFailed {
        /// The API's answer, without credentials.
        message: String,
    },
}

/// One planned child and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildObservation {
    /// The member cluster.
    pub cluster: String,
    /// The kind.
    pub kind: ChildKind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// What was found.
    pub state: ObservedState,
}

/// How a member cluster the stack uses was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// It answers.
    Reachable,
    /// It does not answer (or its credentials do not work).
    Unreachable {
        /// Why (no credentials in it).
        message: String,
    },
}

/// A member cluster the stack uses, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterObservation {
    /// The `MemberCluster` name.
    pub cluster: String,
    /// Its state.
    pub state: ClusterState,
}

/// A planned object that is not a child (a tenant namespace) and belongs to someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignObject {
    /// The member cluster.
    pub cluster: String,
    /// Its kind, e.g. `Namespace`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Who owns it.
    pub owner: String,
}

impl ForeignObject {
    /// `<Kind> <name> on <cluster> belongs to <owner>`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} on {} belongs to {}",
            self.kind, self.name, self.cluster, self.owner
        )
    }
}

/// A planned object that is not a child (the tenant namespace, the Prometheus' ServiceAccount,
/// Role or RoleBinding) whose write failed: the stack is not fully applied, even when every child
/// reports Healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedObject {
    /// The member cluster.
    pub cluster: String,
    /// Its kind, e.g. `Role`.
    pub kind: String,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Why the write failed (no credentials).
    pub message: String,
    /// What failed: writing the object, or deleting it.
    pub operation: FailedOperation,
}

/// What stacksmith failed to do to an object in a member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailedOperation {
    /// Writing it (server-side apply).
    #[default]
    Write,
    /// Deleting it: the stack no longer plans it (it stays behind until a retry succeeds).
    Delete,
}

impl FailedObject {
    /// `writing <Kind> <namespace/name> on <cluster> failed: <message>` (`deleting ...` for a
    /// failed delete).
    pub fn describe(&self) -> String {
        let object = if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        };
        format!(
            "{} {} {object} on {} failed: {}",
            match self.operation {
                FailedOperation::Write => "writing",
                FailedOperation::Delete => "deleting",
            },
            self.kind,
            self.cluster,
            self.message
        )
    }
}

/// Progress of a deletion (only while the stack has a deletionTimestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletionState {
    /// Children are being deleted; this many are still there.
    InProgress {
        /// Children (of any kind, including the tenant namespace) not gone yet.
        remaining: u32,
    },
    /// Deletion cannot go on: these clusters are unreachable (their children are kept).
    Blocked {
        /// The unreachable clusters, sorted.
        clusters: Vec<String>,
    },
}

/// Everything [`aggregate`] needs.
#[derive(Clone, Debug)]
pub struct AggregateInput<'a> {
    /// The stack's `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.paused`.
    pub paused: bool,
    /// Problems with the spec (planning failed): when non-empty, `children` is empty.
    pub spec_problems: &'a [SpecProblem],
    /// The rules of the stack's `TenantPolicy` that the spec breaks (or that no policy governs
    /// the customer; see [`crate::policy`]): when non-empty, nothing was planned, and
    /// `spec_problems` and `children` are empty.
    pub policy_violations: &'a [SpecProblem],
    /// Every planned child (any order; the output is sorted).
    pub children: &'a [ChildObservation],
    /// Every member cluster the stack uses.
    pub clusters: &'a [ClusterObservation],
    /// Objects other than children (a tenant namespace) that someone else owns, so that
    /// stacksmith writes nothing into them.
    pub foreign_objects: &'a [ForeignObject],
    /// Objects other than children whose write failed in this pass.
    pub failed_objects: &'a [FailedObject],
    /// Set while the stack is being deleted.
    pub deletion: Option<&'a DeletionState>,
    /// The status before this pass (for times that must not move).
    pub previous: Option<&'a CustomerStackStatus>,
    /// Now, to the second.
    pub now: &'a Time,
    /// What stacksmith wrote for the stack (recorded in the status as it is).
    pub inventory: &'a [InventoryEntry],
    /// A move the spec asks for that is refused (nothing is written or deleted).
    pub refused_move: Option<&'a SpecProblem>,
}

/// The stack's status for this pass.
///
/// - `children`: one entry per [`ChildObservation`], sorted by (cluster, kind, namespace, name);
///   see [`ObservedState`] for how each state is reported.
/// - `summary` and `childrenReady` (`healthy/total`) count the children by verdict.
/// - `conditions`, in this order: `Ready` (naming the root cause when not True),
///   `ChildrenApplied`, `ClustersReachable`, and `DeletionBlocked` while the stack is being
///   deleted. Rendered with [`render_conditions`] against the previous status.
pub fn aggregate(input: &AggregateInput<'_>) -> CustomerStackStatus {
    let previous = input.previous;
    let judged = children::judge(input.children, input.paused, previous, input.now);
    let summary = children::summary(&judged);
    let (states, root_cause) = conditions::states(input, &judged, &summary);
    let previous_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    if let (Some(_), Some(previous)) = (input.deletion, previous) {
        // While deleting, the children list keeps what was last known of the children.
        return CustomerStackStatus {
            observed_generation: input.generation,
            conditions: render_conditions(
                &states,
                previous_conditions,
                input.generation,
                input.now,
            ),
            root_cause,
            inventory: input.inventory.to_vec(),
            ..previous.clone()
        };
    }
    CustomerStackStatus {
        observed_generation: input.generation,
        conditions: render_conditions(&states, previous_conditions, input.generation, input.now),
        children_ready: Some(format!("{}/{}", summary.healthy, summary.total)),
        summary: Some(summary),
        children: judged.into_iter().map(|j| j.status).collect(),
        root_cause,
        inventory: input.inventory.to_vec(),
    }
}

//! Label and annotation keys that stacksmith writes and reads.

/// Set on every object stacksmith manages, with the value [`MANAGED_BY_VALUE`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] on stacksmith's objects.
pub const MANAGED_BY_VALUE: &str = "stacksmith";
/// The namespace of the `CustomerStack` a child belongs to.
pub const STACK_NAMESPACE: &str = "stacksmith.io/stack-namespace";
/// The name of the `CustomerStack` a child belongs to.
pub const STACK_NAME: &str = "stacksmith.io/stack-name";
/// The uid of the `CustomerStack` a child belongs to.
pub const STACK_UID: &str = "stacksmith.io/stack-uid";
/// The customer id of the stack a child belongs to.
pub const CUSTOMER: &str = "stacksmith.io/customer";
/// On a dedicated `Grafana` instance (`spec.dashboards.dedicatedGrafana`): the customer id it
/// serves. The stack's folder, datasource and dashboards select the instance by this label
/// (`instanceSelector: {matchLabels: {stacksmith.io/grafana-instance: <customer>}}`), in their own
/// namespace only (no cross-namespace import), so no other `Grafana` receives them.
pub const GRAFANA_INSTANCE: &str = "stacksmith.io/grafana-instance";
/// On every child: a hash of the object as planned (without this annotation). A child whose
/// hash differs from the plan's is applied again, so a field removed from the plan is removed
/// from the child too (server-side apply drops fields its manager no longer sends).
pub const PLANNED_HASH: &str = "stacksmith.io/planned-hash";
/// On a kubeconfig Secret: the `MemberCluster` it registers (informational).
pub const MEMBER_CLUSTER: &str = "stacksmith.io/member-cluster";
/// On every object stacksmith writes into a member cluster: the `MemberCluster` it was written
/// through. A member ignores objects written through another registration, so one physical
/// cluster reached through two `MemberCluster`s never has its objects pruned through the other.
pub const WRITTEN_THROUGH: &str = "stacksmith.io/written-through";

/// On a hub ConfigMap, value [`DASHBOARD_SOURCE_VALUE`]: it holds dashboard models that
/// `CustomerStack`s of its namespace name in `configMapRef`. stacksmith watches only ConfigMaps
/// so labelled (not every ConfigMap of the hub); a ConfigMap without it is not found.
pub const DASHBOARD_SOURCE: &str = "stacksmith.io/dashboard-source";
/// The value of [`DASHBOARD_SOURCE`].
pub const DASHBOARD_SOURCE_VALUE: &str = "true";

/// On a `CustomerStack`, value `"true"`: a change of `spec.metrics.cluster`,
/// `spec.dashboards.cluster` or `spec.dashboards.namespace` is a move the stack's author asked
/// for. Without it such a change is refused (`Ready=False`, reason `MoveRefused`) and nothing is
/// written or deleted. A move writes the new objects first and deletes the old ones only once
/// the new children are Healthy.
pub const ALLOW_MOVE: &str = "stacksmith.io/allow-move";
/// On a `CustomerStack`: the name of another `CustomerStack` in the same namespace (a GitOps
/// rename) or of one deleted with `deletionPolicy: Orphan`, whose objects this stack may take
/// over. Only objects at this stack's planned names that carry the named stack's labels and the
/// same customer are taken over; a stack being deleted whose objects another stack adopts
/// leaves them in place.
pub const ADOPT_FROM: &str = "stacksmith.io/adopt-from";

/// On a `MemberCluster`: held while a `CustomerStack` uses it (plans children there or still has
/// objects there in its inventory). Deleting such a `MemberCluster` waits, with its `Ready`
/// condition naming the stacks, until they have moved or are gone.
pub const MEMBER_IN_USE_FINALIZER: &str = "stacksmith.io/member-in-use";

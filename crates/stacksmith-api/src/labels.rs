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
/// On every child: a hash of the object as planned (without this annotation). A child whose
/// hash differs from the plan's is applied again, so a field removed from the plan is removed
/// from the child too (server-side apply drops fields its manager no longer sends).
pub const PLANNED_HASH: &str = "stacksmith.io/planned-hash";
/// On a kubeconfig Secret: the `MemberCluster` it registers (informational).
pub const MEMBER_CLUSTER: &str = "stacksmith.io/member-cluster";

//! The root cause of a stack that is not Ready, as data: which object (or cluster) to look at
//! first. The `Ready` condition's message says the same in prose; tools read this instead of
//! parsing the message.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the `Ready` condition's reason points at: the one object, cluster or spec field a human
/// should look at first. Absent while the stack is Ready.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    /// The `Ready` reason this cause explains, e.g. `ChildDegraded` or `ClusterUnreachable`.
    pub reason: String,
    /// The `MemberCluster` the cause is in (empty when it is not in one cluster, e.g. an invalid
    /// spec).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The kind of the object at fault (empty when the cause is a whole cluster or the spec).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Its namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The spec field at fault, for `InvalidSpec` (e.g. `spec.metrics.cluster`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

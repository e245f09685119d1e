//! stacksmith's controller: the only crate that talks to API servers.
//!
//! Where things are:
//! - [`operator`](run_with): the wiring: the `CustomerStack` controller, the member registry and
//!   the endpoints.
//! - `dashboard_sources`: the hub ConfigMaps dashboards name (`configMapRef`): the watch of
//!   those labelled `stacksmith.io/dashboard-source`, the cache the reconcile reads them from.
//! - `policies`: the hub's `TenantPolicy` cache the reconcile checks stacks against, and the
//!   watch that wakes the stacks a policy change concerns.
//! - `reconcile` and `reconcile/`: one stack's pass, as named stages (write, prune, observe,
//!   record) and the clean-up behind the finalizer.
//! - `apply`: how one planned object is written (server-side apply, only when it differs) and
//!   deleted.
//! - `member/`: the registry of member clusters, their clients, probes, connections, watch
//!   caches and who a change wakes.
//! - `leases`: which shards this replica holds, and the hub Leases that hold them (leader
//!   election with warm standbys is the case of one shard).
//! - `remote`: the one place a request is made: timeouts and how failures are described.
//! - `live_status`: a stack's status read from its members directly (`status --live`).
//! - [`api_calls`] and `telemetry/`: the operator's metrics, request counters and endpoints.
//!
//! Everything else reaches the controller through the items re-exported here.

mod apply;
mod credentials;
mod dashboard_sources;
mod invalid_object;
mod leases;
mod live_status;
mod locks;
mod member;
mod operator;
mod policies;
mod reconcile;
mod remote;
mod telemetry;

pub use apply::{contains, is_as_planned, ownership};
pub use dashboard_sources::read_dashboard_config_maps;
pub use leases::{
    DEFAULT_LEASE_DURATION, LEASE_LABEL, LeaseOptions, SHARDS_ANNOTATION, shard_lease_name,
};
pub use live_status::{LiveStatusError, live_status};
pub use member::client::{
    KubeconfigRefused, MemberClientError, client_from_kubeconfig, member_client_from_secret,
};
pub use member::member_info;
pub use member::namespace_contents::{NamespaceContentsError, namespace_contents};
pub use operator::{
    DEFAULT_CONCURRENT_RECONCILES, OperatorOptions, RunningOperator, run, run_with,
};
pub use reconcile::FINALIZER;
pub use remote::{
    HUB_TIMEOUT, RemoteError, api_error_summary, api_resource, call, now, object_api,
};
pub use stacksmith_core::observe::Ownership;
pub use stacksmith_core::policy::PolicyMode;
pub use telemetry::api_calls;

/// The field manager of every write stacksmith makes (hub and members).
pub const FIELD_MANAGER: &str = "stacksmith";

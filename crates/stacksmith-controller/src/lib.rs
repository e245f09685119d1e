//! stacksmith's controller: the only crate that talks to API servers.
//!
//! - [`member_client`] turns a `MemberCluster`'s kubeconfig Secret into a client.
//! - [`member_probe`] checks a member cluster and records what it found in its status.
//! - [`config_evidence`] reads what a member shows about rules and monitors without a status.
//! - [`metrics`] and [`endpoints`]: the operator's own metrics, `/healthz` and `/readyz`.

pub mod api_calls;
pub mod apply;
pub mod cached_object;
pub mod config_evidence;
pub mod endpoints;
pub mod fleet;
pub mod live_status;
pub mod member_client;
pub mod member_probe;
pub mod metrics;
pub mod operator;
pub mod reconcile;

/// The field manager of every write stacksmith makes (hub and members).
pub const FIELD_MANAGER: &str = "stacksmith";

//! Member clusters: the registry of `MemberCluster`s and their supervisors, the connection to
//! each (client, watch caches), who a change wakes, probing and the
//! `MemberCluster` status.
//!
//! - [`registry`]: the `MemberCluster` watch, one supervisor per member, the fleet's state.
//! - [`client`]: a member's client from its kubeconfig Secret (and what a kubeconfig may not do).
//! - [`probe`] and [`status`]: is the member usable, and what its status says about it.
//! - [`connection`]: the live connection and its watch caches.
//! - [`wake`]: which stacks a change in a member wakes.
//! - [`config_evidence`]: what a member shows about rules and monitors that have no status.
//! - [`cached_object`]: the compact form objects are cached in.
//! - [`secret_watch`]: noticing a rotated kubeconfig Secret.
//! - [`write_gate`]: how many reconciles write to a member at once, and a member whose writes
//!   time out.

pub mod cached_object;
pub mod client;
pub mod config_evidence;
pub mod connection;
pub(crate) mod namespace_contents;
pub mod probe;
pub mod registry;
mod secret_watch;
pub mod status;
pub mod wake;
pub mod write_gate;

pub use connection::{MemberConnection, Reachability};
pub use registry::{Fleet, MemberState, member_info};

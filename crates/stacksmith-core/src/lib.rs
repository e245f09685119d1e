//! stacksmith's pure core: no Kubernetes client, no I/O.
//!
//! - [`health`] reads the status a child's operator (prometheus-operator v0.93 or
//!   grafana-operator v5.24) wrote on a child object and turns it into a typed verdict.
//! - [`grafana_instances`] tells which `Grafana` instances a resource reaches, and why none.
//! - [`label_selector`] matches Kubernetes label selectors.
//! - [`member_status`] turns the result of probing a member cluster into its status.
//! - [`observe`] turns what a pass found of each planned object into observations (shared by
//!   the reconcile and the live status).
//! - [`events`] decides which Events a pass publishes on a stack.
//! - [`status_conditions`] renders typed conditions whose transition times only move on a flip.
//! - [`quantity`] reads Kubernetes resource quantities as exact values, to compare them;
//!   [`prometheus_units`] does the same for Prometheus durations and byte sizes.
//! - [`policy`] checks a stack against the platform's `TenantPolicy` objects (who may claim
//!   which customer, and what its stack may ask for).
//! - [`shards`] says which replica reconciles which stack: shards and their Leases.

pub mod aggregate;
pub mod credentials;
pub mod events;
pub mod grafana_instances;
pub mod health;
pub mod inventory;
pub mod label_selector;
pub mod member_status;
pub mod namespace_contents;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod prometheus_units;
pub mod quantity;
pub mod shards;
pub mod status_conditions;

pub use health::{
    ChildHealth, ChildKind, ConfigEvidence, HealthReason, Rejection, Verdict, assess,
    assess_with_evidence,
};

//! Stand-in child operators.
//!
//! No real prometheus-operator or grafana-operator can run on the test bed (there is no kubelet),
//! so the simulator plays them: it watches the child kinds on a remote cluster and writes their
//! status through the status subresource, shaped exactly as upstream writes it. The outcome of
//! each object is chosen by tests and the demo (see [`outcome`]).

pub mod outcome;
mod runner;
mod shared_grafana;
pub mod status;

pub use outcome::{OUTCOME_ANNOTATION, Outcome, SCENARIO_CONFIGMAP, SCENARIO_NAMESPACE, Scenario};
pub use runner::{Simulator, api_resource, set_outcome_annotation};
pub use shared_grafana::{SHARED_GRAFANA_NAME, SHARED_GRAFANA_NAMESPACE, create_shared_grafana};

//! What the operator tells about itself: its metrics, the requests it makes (counted per
//! cluster, verb and outcome) and the `/metrics`, `/healthz` and `/readyz` endpoints.

pub mod api_calls;
pub mod endpoints;
pub mod liveness;
pub mod metrics;

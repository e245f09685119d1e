//! The `Grafana` instance the tests, the demo and the benchmark select.

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use stacksmith_core::ChildKind;

use super::runner::api_resource;
use crate::error::{Result, TestBedError};
use crate::registration::ensure_namespace;

/// Namespace of the shared instance.
pub const SHARED_GRAFANA_NAMESPACE: &str = "grafana";
/// Name of the shared instance.
pub const SHARED_GRAFANA_NAME: &str = "shared";

/// Creates the `Grafana` instance `grafana/shared`, labelled `dashboards: shared`, on a Grafana
/// cluster (the simulator then reports it ready unless told otherwise).
pub async fn create_shared_grafana(grafana: &Client) -> Result<DynamicObject> {
    ensure_namespace(grafana, SHARED_GRAFANA_NAMESPACE).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        grafana.clone(),
        SHARED_GRAFANA_NAMESPACE,
        &api_resource(ChildKind::Grafana),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": ChildKind::Grafana.api_version(), "kind": ChildKind::Grafana.as_str(),
        "metadata": {"name": SHARED_GRAFANA_NAME, "labels": {"dashboards": "shared"}},
        "spec": {"version": "12.1.0"},
    }))
    .map_err(|err| TestBedError::format("the shared Grafana", err))?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(TestBedError::kube("create Grafana grafana/shared"))
}

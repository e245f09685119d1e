//! Set-up shared by the CLI suites that run against a test bed with the operator next to it.
#![allow(dead_code)]

use std::future::Future;

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use stacksmith_controller::operator::RunningOperator;
use stacksmith_core::ChildKind;
use stacksmith_testbed::harness::{Fixture, TestError};
use stacksmith_testbed::simulator::api_resource;
use stacksmith_testbed::{TestBed, ensure_namespace};

/// A test body's error as the harness reports it.
pub async fn boxed(f: impl Future<Output = anyhow::Result<()>>) -> Result<(), TestError> {
    f.await.map_err(|e| format!("{e:#}").into())
}

/// The operator, plus the shared Grafana instance the stacks select.
pub fn start_operator(
    tb: &TestBed,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Fixture, TestError>> + Send + '_>> {
    Box::pin(async move {
        let grafana = tb.cluster("grafana-1")?.client().clone();
        ensure_namespace(&grafana, "grafana").await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(grafana, "grafana", &api_resource(ChildKind::Grafana));
        let shared: DynamicObject = serde_json::from_value(json!({
            "apiVersion": ChildKind::Grafana.api_version(), "kind": "Grafana",
            "metadata": {"name": "shared", "labels": {"dashboards": "shared"}},
            "spec": {"version": "12.1.0"},
        }))?;
        api.create(&PostParams::default(), &shared).await?;
        let hub = tb.hub()?.admin_config().await?;
        let fixture: Fixture = Box::new(RunningOperator::spawn(hub));
        Ok(fixture)
    })
}

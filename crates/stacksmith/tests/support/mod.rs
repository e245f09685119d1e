//! Set-up shared by the CLI suites that run against a test bed with the operator next to it.
#![allow(dead_code)]

use std::future::Future;

use kube::api::{Api, PostParams};
use serde_json::json;
use stacksmith_controller::RunningOperator;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{Fixture, TestError};
use stacksmith_testbed::simulator::create_shared_grafana;

/// A test body's error as the harness reports it.
pub async fn boxed(f: impl Future<Output = anyhow::Result<()>>) -> Result<(), TestError> {
    f.await.map_err(|e| format!("{e:#}").into())
}

/// The operator, plus the shared Grafana instance the stacks select.
pub fn start_operator(
    tb: &TestBed,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Fixture, TestError>> + Send + '_>> {
    Box::pin(async move {
        create_shared_grafana(tb.cluster("grafana-1")?.client()).await?;
        let hub = tb.hub()?.admin_config().await?;
        let fixture: Fixture = Box::new(RunningOperator::spawn(hub));
        Ok(fixture)
    })
}

/// Registers a Prometheus member `name` that does not answer: prometheus-1's kubeconfig (its CA
/// and token) pointed at a closed port on the loopback. Returns the token, to check that nothing
/// prints it.
pub async fn register_unanswering_member(tb: &TestBed, name: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;
    use stacksmith_api::MemberCluster;
    use stacksmith_testbed::SYSTEM_NAMESPACE;

    let prometheus = tb.cluster("prometheus-1")?;
    // Whatever address stacksmith reaches prometheus-1 at (its link), a closed port instead: a
    // second registration of prometheus-1 itself would be another test altogether.
    let kubeconfig = prometheus
        .operator_kubeconfig()
        .lines()
        .map(|line| match line.split_once("server: ") {
            Some((indent, _)) => format!("{indent}server: https://127.0.0.1:1"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    anyhow::ensure!(
        kubeconfig.contains("server: https://127.0.0.1:1"),
        "the kubeconfig names no server: {kubeconfig}"
    );
    let token =
        serde_yaml::from_str::<serde_json::Value>(&kubeconfig)?["users"][0]["user"]["token"]
            .as_str()
            .context("token")?
            .to_owned();
    let hub = tb.hub()?.client().clone();
    let secret_name = format!("member-{name}-kubeconfig");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            ..ObjectMeta::default()
        },
        data: Some([("kubeconfig".to_owned(), ByteString(kubeconfig.into_bytes()))].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(hub.clone(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let member: MemberCluster = serde_json::from_value(json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {
            "kubeconfigSecretRef": {"namespace": SYSTEM_NAMESPACE, "name": secret_name},
            "roles": ["prometheus"],
            "prometheusUrlTemplate": "http://{name}.{namespace}.svc:9090",
            "requestTimeoutSeconds": 3,
        },
    }))?;
    Api::<MemberCluster>::all(hub)
        .create(&PostParams::default(), &member)
        .await?;
    Ok(token)
}

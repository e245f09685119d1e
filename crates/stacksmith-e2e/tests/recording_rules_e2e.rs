//! Recording rules for real: a stack's `spec.metrics.recordingRules` become a `PrometheusRule`
//! that the real prometheus-operator (gate off, as on a stock install) selects for the tenant's
//! Prometheus and renders into its rule files (the ConfigMaps `prometheus-<name>-rulefiles-<n>`),
//! and the file it rendered is accepted by a real `promtool check rules` (Debian's
//! `prometheus` package, see `stacksmith_testbed::data_servers`).

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::data_servers;
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

/// The Prometheus cluster (the real prometheus-operator).
const CLUSTER: &str = "prometheus-1";

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stock_prometheus_operator,
            setup: Some(start_operator),
            serial: false,
        },
        "recording-rules-e2e",
        vec![test(
            "recording_rules_are_rendered_by_the_real_operator_and_accepted_by_promtool",
            |tb| Box::pin(boxed(rendered_and_accepted(tb))),
        )],
    )
}

async fn rendered_and_accepted(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    let overrides = json!({"metrics": {"recordingRules": [{
        "name": "rates",
        "interval": "1m",
        "rules": [
            {"record": "job:up:sum", "expr": "sum by (job) (up)"},
            {"record": "job:up:ratio", "expr": "avg by (job) (up)", "labels": {"tier": "gold"}},
        ],
    }]}});
    apply_stack(&hub, "r-record", &stack_manifest("s", "record", overrides)).await?;
    let stack = wait_ready(&hub, "r-record", "s").await?;
    let rule = stack
        .status
        .as_ref()
        .and_then(|s| s.children.iter().find(|c| c.name == "record-rates"))
        .context("the recording group's PrometheusRule is a child of the stack")?;
    ensure!(rule.kind == "PrometheusRule", "{rule:?}");

    // The operator renders every selected rule into ConfigMaps named after the Prometheus.
    let config_maps: Api<ConfigMap> = Api::namespaced(member, "customer-record");
    let rendered = eventually(
        "the operator's rule file with the recording rules",
        Duration::from_secs(120),
        || {
            let config_maps = config_maps.clone();
            async move {
                let list = config_maps.list(&ListParams::default()).await?;
                let file = list
                    .items
                    .iter()
                    .flat_map(|cm| cm.data.iter().flatten())
                    .find(|(key, body)| key.contains("record-rates") && body.contains("record:"))
                    .map(|(key, body)| (key.clone(), body.clone()));
                Ok(file.ok_or_else(|| {
                    let names: Vec<String> = list
                        .items
                        .iter()
                        .flat_map(|cm| cm.data.iter().flatten().map(|(k, _)| k.clone()))
                        .collect();
                    format!("rule files: {names:?}")
                }))
            }
        },
    )
    .await?;
    let (key, body) = rendered;
    ensure!(
        body.contains("record: job:up:sum") && body.contains("tier: gold"),
        "{key}:\n{body}"
    );
    let dir = std::env::temp_dir().join(format!("stacksmith-recording-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(&key);
    std::fs::write(&file, &body)?;
    let checked = data_servers::promtool_check_rules(&file).await;
    let _ = std::fs::remove_dir_all(&dir);
    checked.with_context(|| format!("promtool on the operator's {key}:\n{body}"))?;
    Ok(())
}

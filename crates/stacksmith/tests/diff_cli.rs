//! `stacksmith diff` as users run it: the real binary as a process, against the test bed (a hub
//! and two member clusters, the simulator playing the child operators) with the operator
//! running next to it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use stacksmith_e2e as support;

use std::path::PathBuf;
use std::process::{ExitCode, Output};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use stacksmith_api::CustomerStack;
use stacksmith_core::ChildKind;
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::simulator::api_resource;
use stacksmith_testbed::{TestBed, TestBedOptions, ensure_namespace};
use support::{boxed, register_unanswering_member, start_operator};

/// The longest a test waits for the operator (a bound, not an assertion).
const WAIT: Duration = Duration::from_secs(90);

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: TestBedOptions::new,
            setup: Some(start_operator),
            serial: false,
        },
        "diff-cli",
        vec![
            test(
                "new_stack_is_all_new_converged_is_unchanged_edits_are_shown",
                |tb| Box::pin(boxed(new_converged_edited(tb))),
            ),
            test(
                "unreachable_cluster_is_reported_for_that_cluster_only",
                |tb| Box::pin(boxed(unreachable_cluster(tb))),
            ),
        ],
    )
}

/// A stack manifest as a user keeps it in a file.
fn stack_yaml(
    namespace: &str,
    customer: &str,
    prometheus: &str,
    replicas: u32,
    dashboards: &[&str],
) -> String {
    let dashboards: String = dashboards
        .iter()
        .map(|d| format!("      - name: {d}\n        json: '{{\"title\": \"{d}\"}}'\n"))
        .collect();
    format!(
        r#"apiVersion: stacksmith.io/v1alpha1
kind: CustomerStack
metadata:
  name: {customer}
  namespace: {namespace}
spec:
  customer: {customer}
  metrics:
    cluster: {prometheus}
    replicas: {replicas}
    alertingRules:
      - name: core
        rules: [{{alert: Down, expr: up == 0, for: 5m}}]
  dashboards:
    cluster: grafana-1
    instanceSelector: {{matchLabels: {{dashboards: shared}}}}
    dashboards:
{dashboards}"#
    )
}

fn write_file(name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("stacksmith-diff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs `stacksmith diff -f FILE --kubeconfig HUB ARGS`.
async fn diff(tb: &TestBed, file: &PathBuf, extra: &[&str]) -> anyhow::Result<Output> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .arg("diff")
        .arg("-f")
        .arg(file)
        .arg("--kubeconfig")
        .arg(tb.hub()?.kubeconfig_path())
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("STACKSMITH_HUB_KUBECONFIG")
        .output();
    Ok(tokio::time::timeout(WAIT, output)
        .await
        .context("stacksmith diff did not finish")??)
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The object lines (`+ Kind ns/name` ...) of a text diff, without field lines and headers.
fn object_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

async fn apply_stack(tb: &TestBed, yaml: &str) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let stack: CustomerStack = serde_yaml::from_str(yaml)?;
    let namespace = stack.metadata.namespace.clone().context("namespace")?;
    let name = stack.metadata.name.clone().context("name")?;
    ensure_namespace(&hub, &namespace).await?;
    Api::<CustomerStack>::namespaced(hub, &namespace)
        .patch(
            &name,
            &PatchParams::apply("diff-cli-test").force(),
            &Patch::Apply(&stack),
        )
        .await?;
    Ok(())
}

/// Waits until the operator reports the stack's current generation Ready with every child
/// Healthy.
async fn wait_ready(tb: &TestBed, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api: Api<CustomerStack> = Api::namespaced(tb.hub()?.client().clone(), namespace);
    let deadline = Instant::now() + WAIT;
    loop {
        let stack = api.get(name).await?;
        let ready = stack.status.as_ref().is_some_and(|s| {
            s.observed_generation == stack.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stack {namespace}/{name} not Ready: {:?}", stack.status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn new_converged_edited(tb: &TestBed) -> anyhow::Result<()> {
    let (ns, customer) = ("diff-a", "diffa");
    let original = stack_yaml(ns, customer, "prometheus-1", 2, &["overview", "latency"]);
    let file = write_file("diffa.yaml", &original)?;

    // Not on the hub yet: every planned object is new.
    let out = diff(tb, &file, &[]).await?;
    ensure!(out.status.code() == Some(1), "new stack: {}", show(&out));
    let lines = object_lines(&out);
    ensure!(lines.len() == 11, "6 + 5 objects: {}", show(&out));
    ensure!(
        lines.iter().all(|l| l.starts_with("+ ")),
        "all new: {}",
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    for expected in [
        "# cluster: prometheus-1\n+ Namespace customer-diffa\n",
        "+ Prometheus customer-diffa/diffa\n",
        "    + spec.replicas: 2\n",
        "# cluster: grafana-1\n",
        "+ GrafanaDashboard customer-diffa/diffa-latency\n",
        "# summary: 11 new\n",
    ] {
        ensure!(
            stdout.contains(expected),
            "{expected:?} missing: {}",
            show(&out)
        );
    }
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("is not on the hub yet"),
        "{}",
        show(&out)
    );

    // Applied and converged by the operator: the dry runs change nothing.
    apply_stack(tb, &original).await?;
    wait_ready(tb, ns, customer).await?;
    let out = diff(tb, &file, &[]).await?;
    ensure!(out.status.code() == Some(0), "converged: {}", show(&out));
    let lines = object_lines(&out);
    ensure!(
        lines.len() == 11
            && lines.iter().all(|l| l.starts_with("= "))
            && String::from_utf8_lossy(&out.stdout).ends_with("# summary: 11 unchanged\n"),
        "all unchanged: {}",
        show(&out)
    );

    // Edited: more replicas, one dashboard fewer.
    let edited = stack_yaml(ns, customer, "prometheus-1", 3, &["overview"]);
    let file = write_file("diffa.yaml", &edited)?;
    let out = diff(tb, &file, &[]).await?;
    ensure!(out.status.code() == Some(1), "edited: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        stdout.contains(
            "~ Prometheus customer-diffa/diffa\n    - spec.replicas: 2\n    + spec.replicas: 3\n= PrometheusRule"
        ),
        "the replica change: {}",
        show(&out)
    );
    ensure!(
        stdout.contains(
            "- GrafanaDashboard customer-diffa/diffa-latency: no longer planned: the operator deletes it\n"
        ),
        "the removed dashboard: {}",
        show(&out)
    );
    ensure!(
        stdout.contains("# summary: 1 changed, 1 deleted, 9 unchanged\n"),
        "{}",
        show(&out)
    );

    // The same as data.
    let out = diff(tb, &file, &["-o", "json"]).await?;
    ensure!(out.status.code() == Some(1), "{}", show(&out));
    let data: Value = serde_json::from_slice(&out.stdout)?;
    let prometheus = data["clusters"][0]["objects"]
        .as_array()
        .context("objects")?
        .iter()
        .find(|o| o["kind"] == "Prometheus")
        .context("the Prometheus")?
        .clone();
    ensure!(
        prometheus["change"] == "changed"
            && prometheus["fields"]
                == json!([{"path": "spec.replicas", "live": "2", "planned": "3"}]),
        "{prometheus}"
    );

    // Nothing was written by any of it.
    let live: Api<DynamicObject> = Api::namespaced_with(
        tb.cluster("prometheus-1")?.client().clone(),
        "customer-diffa",
        &api_resource(ChildKind::Prometheus),
    );
    ensure!(
        live.get("diffa").await?.data["spec"]["replicas"] == 2,
        "diff wrote nothing"
    );

    // A change the hub refuses at admission (another customer for a stored stack) is said as
    // such, not diffed as if it could be applied.
    let moved = original.replace("  customer: diffa", "  customer: other");
    let file = write_file("diffa-moved.yaml", &moved)?;
    let out = diff(tb, &file, &[]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && out.status.code() != Some(1)
            && stderr.contains("spec.customer is immutable"),
        "{}",
        show(&out)
    );
    Ok(())
}

async fn unreachable_cluster(tb: &TestBed) -> anyhow::Result<()> {
    // A member whose API server is gone: its kubeconfig points at a closed port.
    let token = register_unanswering_member(tb, "prometheus-gone").await?;

    let file = write_file(
        "diffb.yaml",
        &stack_yaml("diff-b", "diffb", "prometheus-gone", 1, &["overview"]),
    )?;
    let out = diff(tb, &file, &[]).await?;
    ensure!(out.status.code() == Some(2), "an error: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        stdout.starts_with(
            "# cluster: prometheus-gone\nx cluster prometheus-gone: Namespace customer-diffb: "
        ) && stdout.contains("# cluster: grafana-1\n+ Namespace customer-diffb\n")
            && stdout.contains("+ GrafanaDashboard customer-diffb/diffb-overview\n"),
        "the gone cluster reported, the other one diffed: {}",
        show(&out)
    );
    ensure!(!show(&out).contains(&token), "no credentials in the output");

    // A stack the hub's MemberClusters cannot carry is an error, named.
    let file = write_file(
        "diffc.yaml",
        &stack_yaml("diff-c", "diffc", "prometheus-9", 1, &[]).replace("    dashboards:\n", ""),
    )?;
    let out = diff(tb, &file, &[]).await?;
    ensure!(
        out.status.code() == Some(2)
            && String::from_utf8_lossy(&out.stderr)
                .contains("spec.metrics.cluster: MemberCluster \"prometheus-9\" not found"),
        "{}",
        show(&out)
    );
    Ok(())
}

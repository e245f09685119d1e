//! `stacksmith status` as users run it: the real binary as a process, against the test bed (a
//! hub and two member clusters with the simulator playing the child operators) and the operator
//! running next to it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use stacksmith_e2e as support;

use std::process::{ExitCode, Output};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use stacksmith_api::CustomerStack;
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::{TestBed, TestBedOptions, ensure_namespace};
use support::{boxed, register_unanswering_member, start_operator};

/// How long a test waits for the operator to get somewhere (a bound, not an assertion).
const WAIT: Duration = Duration::from_secs(60);
const MARKER: &str = "← root cause";

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: TestBedOptions::new,
            setup: Some(start_operator),
            serial: false,
        },
        "status-cli",
        vec![
            test(
                "ready_stack_is_a_tree_exit_0_without_colour_when_piped",
                |tb| Box::pin(boxed(ready_stack(tb))),
            ),
            test(
                "degraded_child_exit_1_root_cause_marked_live_agrees",
                |tb| Box::pin(boxed(degraded_child(tb))),
            ),
            test("live_unreachable_cluster_affects_only_its_children", |tb| {
                Box::pin(boxed(live_unreachable_cluster(tb)))
            }),
            test("unknown_stack_and_bad_usage_exit_2", |tb| {
                Box::pin(boxed(errors_exit_2(tb)))
            }),
        ],
    )
}

/// Runs the real binary against the hub (admin kubeconfig), stdout and stderr piped.
async fn status(tb: &TestBed, args: &[&str]) -> anyhow::Result<Output> {
    let kubeconfig = tb.hub()?.kubeconfig_path().to_owned();
    Ok(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_stacksmith"))
            .arg("status")
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .env_remove("NO_COLOR")
            .output()
            .await?,
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A stack for `customer` on `prometheus_cluster` with one replica, one rule group, one scrape
/// target and one dashboard.
fn stack_manifest(name: &str, customer: &str, prometheus_cluster: &str) -> Value {
    support::stack_manifest(
        name,
        customer,
        json!({"metrics": {"cluster": prometheus_cluster, "replicas": 1}}),
    )
}

async fn apply_stack(hub: &Client, ns: &str, manifest: &Value) -> anyhow::Result<()> {
    ensure_namespace(hub, ns).await?;
    let name = manifest["metadata"]["name"].as_str().context("name")?;
    Api::<CustomerStack>::namespaced(hub.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("status-cli-tests").force(),
            &Patch::Apply(manifest),
        )
        .await?;
    Ok(())
}

/// Waits until the stack's `Ready` condition (at its current generation) has this status and
/// reason.
async fn wait_ready_condition(
    hub: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> anyhow::Result<CustomerStack> {
    let api = Api::<CustomerStack>::namespaced(hub.clone(), ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stack = api.get(name).await?;
        let current = stack.status.as_ref().filter(|s| {
            s.observed_generation.is_some() && s.observed_generation == stack.metadata.generation
        });
        let ready = current.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        if ready.is_some_and(|c| c.status == status && c.reason == reason) {
            return Ok(stack);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{ns}/{name} never got Ready={status} ({reason}); last: {}",
                serde_json::to_string_pretty(&stack.status)?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The children of the first stack of `-o json` output, as comparable tuples.
fn children(data: &Value) -> Vec<(String, String, String, String, String, String)> {
    let field = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_owned();
    data["stacks"][0]["status"]["children"]
        .as_array()
        .map(|children| {
            children
                .iter()
                .map(|c| {
                    (
                        field(c, "cluster"),
                        field(c, "kind"),
                        field(c, "name"),
                        field(c, "verdict"),
                        field(c, "reason"),
                        field(c, "message"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn json_of(tb: &TestBed, args: &[&str]) -> anyhow::Result<(Output, Value)> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let output = status(tb, &all).await?;
    let data = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("-o json does not parse: {}", describe(&output)))?;
    Ok((output, data))
}

async fn ready_stack(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    apply_stack(
        &hub,
        "team-ready",
        &stack_manifest("acme", "acme", "prometheus-1"),
    )
    .await?;
    wait_ready_condition(&hub, "team-ready", "acme", "True", "Ready").await?;

    let output = status(tb, &["acme", "-n", "team-ready"]).await?;
    let text = stdout(&output);
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    ensure!(!text.contains('\x1b'), "ANSI escapes on a pipe: {text:?}");
    ensure!(!text.contains(MARKER), "no root cause when Ready: {text}");
    let stack_line = text
        .lines()
        .find(|l| l.starts_with("team-ready/acme (6/6)"))
        .with_context(|| format!("stack line: {text}"))?;
    ensure!(
        stack_line.contains("Ready") && stack_line.contains("all 6 children are Healthy"),
        "{text}"
    );
    for expected in [
        "├─ grafana-1",
        "│  ├─ GrafanaDashboard customer-acme/acme-overview",
        "│  ├─ GrafanaDatasource customer-acme/acme-prometheus",
        "│  └─ GrafanaFolder customer-acme/acme",
        "└─ prometheus-1",
        "   ├─ Prometheus customer-acme/acme",
        "   ├─ PrometheusRule customer-acme/acme-core",
        "   └─ ServiceMonitor customer-acme/acme-api",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(expected))
            .with_context(|| format!("no line {expected:?} in\n{text}"))?;
        if expected.contains('/') {
            ensure!(line.contains(" Healthy "), "{line}");
        }
    }

    // Colour on demand; all namespaces list it too.
    let coloured = status(tb, &["acme", "-n", "team-ready", "--color", "always"]).await?;
    ensure!(
        stdout(&coloured).contains("\x1b[32mHealthy\x1b[0m"),
        "{}",
        describe(&coloured)
    );
    let all = status(tb, &["-A"]).await?;
    ensure!(
        stdout(&all).contains("team-ready/acme (6/6)"),
        "{}",
        describe(&all)
    );

    // As data: JSON and YAML say the same; the live view agrees with the hub's.
    let (output, hub_view) = json_of(tb, &["acme", "-n", "team-ready"]).await?;
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    let stack = &hub_view["stacks"][0];
    ensure!(
        stack["ready"] == true && stack["source"] == "hub" && stack["rootCause"].is_null(),
        "{stack}"
    );
    ensure!(children(&hub_view).len() == 6, "{hub_view}");
    let yaml = status(tb, &["acme", "-n", "team-ready", "-o", "yaml"]).await?;
    let yaml: Value = serde_yaml::from_slice(&yaml.stdout)?;
    ensure!(
        yaml == hub_view,
        "YAML and JSON differ: {yaml} vs {hub_view}"
    );
    let (output, live) = json_of(tb, &["acme", "-n", "team-ready", "--live"]).await?;
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    ensure!(live["stacks"][0]["source"] == "live", "{live}");
    ensure!(
        children(&live) == children(&hub_view),
        "live {:#?} vs hub {:#?}",
        children(&live),
        children(&hub_view)
    );
    Ok(())
}

async fn degraded_child(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    apply_stack(
        &hub,
        "team-sick",
        &stack_manifest("s", "sick", "prometheus-1"),
    )
    .await?;
    wait_ready_condition(&hub, "team-sick", "s", "True", "Ready").await?;
    // The Prometheus fails: no pod ready (its pods' Ready conditions with the real operator,
    // the simulator's outcome otherwise).
    tb.set_prometheus_healthy("prometheus-1", "customer-sick", "sick", false)
        .await?;
    wait_ready_condition(&hub, "team-sick", "s", "False", "ChildDegraded").await?;
    // The pods report one after the other: wait until none is ready.
    let stacks: Api<CustomerStack> = Api::namespaced(hub.clone(), "team-sick");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stack = stacks.get("s").await?;
        let message = stack
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if message.contains("NoPodReady") {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "never NoPodReady: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let output = status(tb, &["s", "-n", "team-sick"]).await?;
    let text = stdout(&output);
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    ensure!(!text.contains('\x1b'), "ANSI escapes on a pipe: {text:?}");
    let marked: Vec<&str> = text.lines().filter(|l| l.contains(MARKER)).collect();
    ensure!(marked.len() == 1, "one root cause: {text}");
    ensure!(
        marked[0].contains("Prometheus customer-sick/sick")
            && marked[0].contains("Degraded")
            && marked[0].contains("NoPodReady"),
        "{text}"
    );
    let stack_line = text
        .lines()
        .find(|l| l.starts_with("team-sick/s (5/6)"))
        .with_context(|| format!("stack line: {text}"))?;
    ensure!(
        stack_line.contains("NotReady") && stack_line.contains("ChildDegraded"),
        "{stack_line}"
    );
    // Highlighted (bold red) on request.
    let coloured = status(tb, &["s", "-n", "team-sick", "--color", "always"]).await?;
    let line = stdout(&coloured)
        .lines()
        .find(|l| l.contains(MARKER))
        .map(str::to_owned)
        .with_context(|| describe(&coloured))?;
    ensure!(
        line.contains("\x1b[1;31mPrometheus customer-sick/sick\x1b[0m"),
        "{line:?}"
    );

    // Data and the live view say the same.
    let expected_cause = json!({"cluster": "prometheus-1", "kind": "Prometheus", "namespace": "customer-sick", "name": "sick"});
    let (output, hub_view) = json_of(tb, &["s", "-n", "team-sick"]).await?;
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    ensure!(
        hub_view["stacks"][0]["rootCause"] == expected_cause,
        "{hub_view}"
    );
    let (output, live) = json_of(tb, &["s", "-n", "team-sick", "--live"]).await?;
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    ensure!(live["stacks"][0]["rootCause"] == expected_cause, "{live}");
    ensure!(
        children(&live) == children(&hub_view),
        "live {:#?} vs hub {:#?}",
        children(&live),
        children(&hub_view)
    );
    let ready = |v: &Value| {
        v["stacks"][0]["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
            .map(|c| {
                (
                    c["status"].clone(),
                    c["reason"].clone(),
                    c["message"].clone(),
                )
            })
    };
    ensure!(ready(&live) == ready(&hub_view), "{live} vs {hub_view}");
    Ok(())
}

/// A member whose API server does not answer: the hub and the live view both say so for its
/// children only, and the live view names the cluster as the root cause.
async fn live_unreachable_cluster(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    // Port 1 on the loopback refuses connections.
    register_unanswering_member(tb, "prometheus-dead").await?;
    apply_stack(
        &hub,
        "team-dead",
        &stack_manifest("d", "dead", "prometheus-dead"),
    )
    .await?;
    wait_ready_condition(&hub, "team-dead", "d", "False", "ClusterUnreachable").await?;

    let mut views = Vec::new();
    for live in [false, true] {
        let mut args = vec!["d", "-n", "team-dead"];
        if live {
            args.push("--live");
        }
        let (output, data) = json_of(tb, &args).await?;
        ensure!(output.status.code() == Some(1), "{}", describe(&output));
        ensure!(
            data["stacks"][0]["rootCause"] == json!({"cluster": "prometheus-dead"}),
            "live={live}: {data}"
        );
        let children = children(&data);
        ensure!(children.len() == 6, "{data}");
        views.push(children.clone());
        for (cluster, kind, name, verdict, reason, _) in &children {
            let dead = cluster == "prometheus-dead";
            ensure!(
                (reason == "ClusterUnreachable") == dead && (verdict == "Unknown") == dead,
                "live={live}: {kind} {name} on {cluster}: {verdict} {reason}"
            );
        }
        let tree = status(tb, &args).await?;
        let text = stdout(&tree);
        let marked = text
            .lines()
            .find(|l| l.contains(MARKER))
            .with_context(|| describe(&tree))?;
        ensure!(
            marked.starts_with("└─ prometheus-dead") && marked.contains("Unreachable"),
            "live={live}: {text}"
        );
    }
    ensure!(
        views[0] == views[1],
        "the live view says what the hub says: {:#?} vs {:#?}",
        views[1],
        views[0]
    );
    Ok(())
}

async fn errors_exit_2(tb: &TestBed) -> anyhow::Result<()> {
    // A stack that does not exist is an error, as `kubectl get` has it.
    let output = status(tb, &["nope", "-n", "nowhere"]).await?;
    ensure!(output.status.code() == Some(2), "{}", describe(&output));
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("CustomerStack nowhere/nope not found"),
        "{}",
        describe(&output)
    );
    // An empty namespace is no problem.
    let output = status(tb, &["-n", "empty-namespace"]).await?;
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    // A name across all namespaces, an unknown format: usage errors.
    for args in [&["nope", "-A"][..], &["-o", "xml"][..]] {
        let output = status(tb, args).await?;
        ensure!(
            output.status.code() == Some(2),
            "{args:?}: {}",
            describe(&output)
        );
    }
    // No hub.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .args(["status", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .await?;
    ensure!(output.status.code() == Some(2), "{}", describe(&output));
    Ok(())
}

// End-to-end tests of reconciling CustomerStacks on the real test bed: a hub, a Prometheus
// cluster running the real prometheus-operator and a Grafana cluster where the simulator plays
// grafana-operator, the upstream CRDs as they ship, and the operator running against them.
// Built twice: `reconcile_e2e` (the operator's `StatusForConfigurationResources` gate off, as
// on a stock install) and `reconcile_e2e_config_status` (gate on).

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::MemberCluster;
use stacksmith_controller::contains;
use stacksmith_core::ChildKind;
use stacksmith_core::plan::{MemberInfo, StackIdentity, plan_stack};
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::{PrometheusOperatorRun, PrometheusSide, TestBed, TestBedOptions};
use support::*;

/// The test bed: the real prometheus-operator, its `StatusForConfigurationResources` gate off as
/// on a stock install, or on in the `reconcile_e2e_config_status` build of this suite.
fn options(name: String) -> TestBedOptions {
    let mut options = TestBedOptions::new(name);
    if env!("CARGO_CRATE_NAME") == "reconcile_e2e_config_status" {
        options.prometheus_side = PrometheusSide::Real {
            status_for_configuration_resources: true,
        };
    }
    options
}

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options,
            setup: Some(start_operator),
            serial: false,
        },
        "reconcile-e2e",
        vec![
            test(
                "stack_converges_and_every_child_survives_the_upstream_crds",
                |tb| Box::pin(boxed(converges(tb))),
            ),
            test("gitops_with_kubectl_apply_server_side_and_wait", |tb| {
                Box::pin(boxed(gitops_with_kubectl(tb)))
            }),
            test("nothing_is_written_when_nothing_changed", |tb| {
                Box::pin(boxed(no_write_when_unchanged(tb)))
            }),
            test("degraded_prometheus_is_the_named_root_cause", |tb| {
                Box::pin(boxed(degraded_prometheus(tb)))
            }),
            test("rule_the_operator_rejects_is_the_named_root_cause", |tb| {
                Box::pin(boxed(rejected_rule(tb)))
            }),
            test("datasource_without_matching_grafana_is_named", |tb| {
                Box::pin(boxed(no_matching_grafana(tb)))
            }),
            test("foreign_object_is_a_conflict_and_left_alone", |tb| {
                Box::pin(boxed(foreign_conflict(tb)))
            }),
            test("foreign_tenant_namespace_is_not_written_into", |tb| {
                Box::pin(boxed(foreign_tenant_namespace(tb)))
            }),
            test("two_stacks_for_one_customer_conflict", |tb| {
                Box::pin(boxed(same_customer_conflict(tb)))
            }),
            test("paused_stack_writes_nothing_but_reports_health", |tb| {
                Box::pin(boxed(paused(tb)))
            }),
            test("drift_is_restored_and_recorded", |tb| {
                Box::pin(boxed(drift(tb)))
            }),
            test("spec_changes_propagate_and_unplanned_children_go", |tb| {
                Box::pin(boxed(spec_change(tb)))
            }),
            test("deletion_removes_children_in_every_cluster", |tb| {
                Box::pin(boxed(deletion(tb)))
            }),
            test("orphan_policy_keeps_children", |tb| {
                Box::pin(boxed(orphan(tb)))
            }),
            test("member_without_child_crds_is_named_by_its_stacks", |tb| {
                Box::pin(boxed(missing_crds(tb)))
            }),
            test(
                "changed_instance_selector_re_creates_the_grafana_children",
                |tb| Box::pin(boxed(instance_selector_change(tb))),
            ),
            test(
                "a_refused_write_is_reported_once_and_retried_with_backoff",
                |tb| Box::pin(boxed(refused_write(tb))),
            ),
            test("invalid_spec_names_the_field", |tb| {
                Box::pin(boxed(invalid_spec(tb)))
            }),
            test(
                "member_credential_problems_are_clear_conditions_without_secrets",
                |tb| Box::pin(boxed(member_problems(tb))),
            ),
        ],
    )
}

fn clients(tb: &TestBed) -> anyhow::Result<(Client, Client, Client)> {
    Ok((
        tb.hub()?.client().clone(),
        tb.cluster("prometheus-1")?.client().clone(),
        tb.cluster("grafana-1")?.client().clone(),
    ))
}

fn members() -> Vec<MemberInfo> {
    vec![
        MemberInfo {
            name: "prometheus-1".into(),
            roles: vec![stacksmith_api::ClusterRole::Prometheus],
            prometheus_url_template: Some(
                "http://{name}.{namespace}.svc.prometheus-1.example:9090".into(),
            ),
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        },
        MemberInfo {
            name: "grafana-1".into(),
            roles: vec![stacksmith_api::ClusterRole::Grafana],
            prometheus_url_template: None,
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        },
    ]
}

async fn converges(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, graf) = clients(tb)?;
    let applied = apply_stack(
        &hub,
        "t-converge",
        &stack_manifest("s", "converge", json!({})),
    )
    .await?;
    let stack = wait_ready(&hub, "t-converge", "s").await?;
    let status = stack.status.clone().context("status")?;
    ensure!(
        status.children_ready.as_deref() == Some("6/6"),
        "children {:?}",
        status.children_ready
    );
    ensure!(
        status
            .children
            .iter()
            .all(|c| c.verdict == stacksmith_api::Verdict::Healthy),
        "all healthy"
    );
    // How the rule's and the monitor's acceptance was known: read from `status.bindings` when
    // the operator reports them (gate on, or the simulator), inferred from the Prometheus and
    // the absence of a rejection on a stock prometheus-operator. (With the gate on, the stack
    // may be Ready on the inference before the operator's first status write: it then follows.)
    let expected = match tb.prometheus_operator_on("prometheus-1") {
        Some(PrometheusOperatorRun::Real {
            status_for_configuration_resources: false,
        }) => "AcceptanceInferred",
        _ => "Accepted",
    };
    wait_stack(
        &hub,
        "t-converge",
        "s",
        &format!("rule and monitor {expected}"),
        |s| {
            s.status.as_ref().is_some_and(|st| {
                ["PrometheusRule", "ServiceMonitor"].iter().all(|kind| {
                    st.children
                        .iter()
                        .any(|c| c.kind == *kind && c.reason == expected)
                })
            })
        },
    )
    .await?;
    // Every planned object exists as planned (nothing pruned by the upstream CRDs).
    let identity = StackIdentity {
        namespace: "t-converge".into(),
        name: "s".into(),
        uid: applied.uid().context("uid")?,
    };
    let plan =
        plan_stack(&applied.spec, &identity, &members()).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    ensure!(plan.objects.len() == 11, "planned {}", plan.objects.len());
    for desired in &plan.objects {
        let client = if desired.cluster == "prometheus-1" {
            &prom
        } else {
            &graf
        };
        let resource = stacksmith_controller::api_resource(desired.kind);
        let api: Api<DynamicObject> = if desired.kind.namespaced() {
            Api::namespaced_with(client.clone(), &desired.namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let live = serde_json::to_value(
            api.get(&desired.name)
                .await
                .with_context(|| format!("{} {}", desired.kind.kind(), desired.name))?,
        )?;
        ensure!(
            contains(&live, &desired.manifest),
            "{} {}/{} differs from the plan:\n live {live}\n plan {}",
            desired.kind.kind(),
            desired.namespace,
            desired.name,
            desired.manifest
        );
    }
    let ds = get_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "customer-converge",
        "converge-prometheus",
    )
    .await?
    .context("datasource")?;
    let url = serde_json::to_value(&ds)?["spec"]["datasource"]["url"].clone();
    ensure!(
        url == "http://converge.customer-converge.svc.prometheus-1.example:9090",
        "cross-cluster URL {url}"
    );
    Ok(())
}

async fn no_write_when_unchanged(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, _) = clients(tb)?;
    apply_stack(&hub, "t-idle", &stack_manifest("s", "idle", json!({}))).await?;
    wait_ready(&hub, "t-idle", "s").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = stacks(&hub, "t-idle").get("s").await?;
    let prom_before = get_child(&prom, ChildKind::Prometheus, "customer-idle", "idle")
        .await?
        .context("prometheus")?;
    // Wake the stack without changing its spec: an annotation (a write of ours, not the operator's).
    let poke = json!({"metadata": {"annotations": {"e2e/poke": "1"}}});
    let poked = stacks(&hub, "t-idle")
        .patch("s", &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = stacks(&hub, "t-idle").get("s").await?;
    let prom_after = get_child(&prom, ChildKind::Prometheus, "customer-idle", "idle")
        .await?
        .context("prometheus")?;
    ensure!(
        after.resource_version() == poked.resource_version(),
        "the operator wrote the stack after a no-op change"
    );
    ensure!(after.status == before.status, "status changed");
    ensure!(
        prom_after.resource_version() == prom_before.resource_version(),
        "the Prometheus was written again"
    );
    Ok(())
}

async fn degraded_prometheus(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    apply_stack(&hub, "t-sick", &stack_manifest("s", "sick", json!({}))).await?;
    wait_ready(&hub, "t-sick", "s").await?;
    // Its pod stops being ready (a kubelet's report with the real operator).
    tb.set_prometheus_healthy("prometheus-1", "customer-sick", "sick", false)
        .await?;
    // The pods report one after the other: past `SomePodsNotReady`, none is ready.
    let stack = wait_stack(&hub, "t-sick", "s", "ChildDegraded, NoPodReady", |s| {
        condition(s, "Ready")
            .is_some_and(|c| c.reason == "ChildDegraded" && c.message.contains("NoPodReady"))
    })
    .await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("Prometheus customer-sick/sick")
            && ready.message.contains("NoPodReady"),
        "message: {}",
        ready.message
    );
    ensure!(
        ready.message.contains("prometheus-1"),
        "names the cluster: {}",
        ready.message
    );
    // The same root cause as data, for tools that must not parse the message.
    let cause = stack
        .status
        .as_ref()
        .and_then(|s| s.root_cause.clone())
        .context("status.rootCause")?;
    ensure!(
        (
            cause.reason.as_str(),
            cause.cluster.as_str(),
            cause.kind.as_str(),
            cause.namespace.as_str(),
            cause.name.as_str()
        ) == (
            "ChildDegraded",
            "prometheus-1",
            "Prometheus",
            "customer-sick",
            "sick"
        ),
        "rootCause: {cause:?}"
    );
    // The operator heals: status follows the child without any spec change.
    tb.set_prometheus_healthy("prometheus-1", "customer-sick", "sick", true)
        .await?;
    let healed = wait_ready(&hub, "t-sick", "s").await?;
    ensure!(
        healed
            .status
            .as_ref()
            .is_some_and(|s| s.root_cause.is_none()),
        "a Ready stack has no rootCause"
    );
    Ok(())
}

/// A rule whose PromQL does not parse passes the CRD's schema; prometheus-operator rejects it
/// (an `InvalidConfiguration` Event on a stock install, `Accepted=False` in `status.bindings`
/// with the gate on). Either way the stack names the rule as the root cause, and fixing the
/// expression makes it Ready.
async fn rejected_rule(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    let broken = json!({"metrics": {"alertingRules": [
        {"name": "core", "rules": [{"alert": "Down", "expr": "up ==", "for": "5m"}]}]}});
    apply_stack(&hub, "t-reject", &stack_manifest("s", "reject", broken)).await?;
    let expected = match tb.prometheus_operator_on("prometheus-1") {
        Some(PrometheusOperatorRun::Real {
            status_for_configuration_resources: false,
        }) => "RejectedByOperator",
        _ => "InvalidConfiguration",
    };
    // Once the Prometheus runs, the rule is what is wrong.
    let stack = wait_stack(
        &hub,
        "t-reject",
        "s",
        "the rule rejected, the rest Healthy",
        |s| {
            s.status.as_ref().is_some_and(|st| {
                st.children
                    .iter()
                    .any(|c| c.kind == "PrometheusRule" && c.reason == expected)
                    && st.children.iter().any(|c| {
                        c.kind == "Prometheus" && c.verdict == stacksmith_api::Verdict::Healthy
                    })
            }) && condition(s, "Ready").is_some_and(|c| c.reason == "ChildDegraded")
        },
    )
    .await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("PrometheusRule customer-reject/"),
        "the rule is named: {}",
        ready.message
    );
    if tb
        .prometheus_operator_on("prometheus-1")
        .is_some_and(|r| r != PrometheusOperatorRun::Simulated)
    {
        let rule = stack
            .status
            .as_ref()
            .and_then(|st| st.children.iter().find(|c| c.kind == "PrometheusRule"))
            .context("rule listed")?;
        ensure!(
            rule.message.contains("parse") || rule.message.contains("invalid"),
            "the operator's words are quoted: {}",
            rule.message
        );
    }
    // Fixed in Git: Ready again.
    apply_stack(&hub, "t-reject", &stack_manifest("s", "reject", json!({}))).await?;
    wait_ready(&hub, "t-reject", "s").await?;
    Ok(())
}

async fn no_matching_grafana(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    let manifest = stack_manifest(
        "s",
        "lonely",
        json!({"dashboards": {"instanceSelector": {"matchLabels": {"dashboards": "nobody"}}}}),
    );
    apply_stack(&hub, "t-lonely", &manifest).await?;
    // Settled: the Prometheus side Healthy, the three Grafana children Degraded.
    let stack = wait_stack(
        &hub,
        "t-lonely",
        "s",
        "ChildDegraded with 3/6 Healthy",
        |s| {
            condition(s, "Ready").is_some_and(|c| c.reason == "ChildDegraded")
                && s.status
                    .as_ref()
                    .and_then(|st| st.children_ready.as_deref())
                    == Some("3/6")
        },
    )
    .await?;
    let status = stack.status.context("status")?;
    let ds = status
        .children
        .iter()
        .find(|c| c.kind == "GrafanaDatasource")
        .context("datasource listed")?;
    ensure!(
        ds.reason == "NoMatchingInstance" && ds.message.contains("lonely-prometheus"),
        "datasource: {ds:?}"
    );
    ensure!(
        status.children_ready.as_deref() == Some("3/6"),
        "children {:?}",
        status.children_ready
    );
    ensure!(
        ds.message
            .contains("no Grafana in any namespace has labels matching"),
        "explains why: {}",
        ds.message
    );

    // A Grafana that matches but is not ready is named, with its failed stage.
    let graf = tb.cluster("grafana-1")?.client().clone();
    let labels = json!({"dashboards": "broken"});
    create_child(
        &graf,
        ChildKind::Grafana,
        "grafana",
        "broken",
        labels,
        json!({"version": "12.1.0"}),
    )
    .await?;
    let annotate =
        json!({"metadata": {"annotations": {"simulator.stacksmith.io/outcome": "degraded"}}});
    child_api(&graf, ChildKind::Grafana, "grafana")
        .patch("broken", &PatchParams::default(), &Patch::Merge(&annotate))
        .await?;
    let manifest = stack_manifest(
        "s",
        "broken",
        json!({"dashboards": {"instanceSelector": {"matchLabels": {"dashboards": "broken"}}}}),
    );
    apply_stack(&hub, "t-broken", &manifest).await?;
    // The message follows the Grafana instance as the simulator reports its failed stage.
    wait_stack(
        &hub,
        "t-broken",
        "s",
        "the not-ready Grafana named as root cause",
        |s| {
            condition(s, "Ready").is_some_and(|c| {
                c.reason == "ChildDegraded"
                    && c.message
                        .contains("Grafana grafana/broken is not ready (stage deployment: failed)")
            })
        },
    )
    .await?;
    Ok(())
}

async fn foreign_conflict(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, graf) = clients(tb)?;
    // A datasource of the planned name, made by someone else in the shared Grafana namespace.
    let foreign_spec = json!({"instanceSelector": {"matchLabels": {"dashboards": "shared"}},
        "datasource": {"name": "theirs", "type": "prometheus", "access": "proxy", "url": "http://theirs:9090"}});
    create_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "grafana",
        "foreign-prometheus",
        json!({"team": "someone-else"}),
        foreign_spec,
    )
    .await?;
    let manifest = stack_manifest(
        "s",
        "foreign",
        json!({"dashboards": {"namespace": "grafana"}}),
    );
    apply_stack(&hub, "t-foreign", &manifest).await?;
    let stack = wait_not_ready(&hub, "t-foreign", "s", "Conflict").await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready
            .message
            .contains("GrafanaDatasource grafana/foreign-prometheus"),
        "names the object: {}",
        ready.message
    );
    ensure!(
        ready.message.contains("not stacksmith"),
        "names the owner: {}",
        ready.message
    );
    let applied = condition(&stack, "ChildrenApplied").context("ChildrenApplied")?;
    ensure!(applied.reason == "Conflict", "ChildrenApplied {applied:?}");
    let after = get_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "grafana",
        "foreign-prometheus",
    )
    .await?
    .context("still there")?;
    // (The simulator writes its status; stacksmith must not have written anything.)
    let managers: Vec<String> = after
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        !managers.iter().any(|m| m == "stacksmith"),
        "stacksmith wrote the foreign object: managers {managers:?}"
    );
    ensure!(
        serde_json::to_value(&after)?["spec"]["datasource"]["url"] == "http://theirs:9090",
        "the foreign object changed"
    );
    wait_event(&hub, "t-foreign", "s", "Conflict").await?;
    // Once the foreign object is gone, the stack converges at once (no resync wait).
    child_api(&graf, ChildKind::GrafanaDatasource, "grafana")
        .delete("foreign-prometheus", &DeleteParams::default())
        .await?;
    wait_ready(&hub, "t-foreign", "s").await?;
    Ok(())
}

async fn foreign_tenant_namespace(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, _) = clients(tb)?;
    create_namespace(&prom, "customer-squatted").await?;
    apply_stack(
        &hub,
        "t-squatted",
        &stack_manifest("s", "squatted", json!({})),
    )
    .await?;
    let stack = wait_not_ready(&hub, "t-squatted", "s", "Conflict").await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains(
            "Namespace customer-squatted on prometheus-1 belongs to an owner that is not stacksmith"
        ),
        "names the namespace: {}",
        ready.message
    );
    let note = wait_event(&hub, "t-squatted", "s", "Conflict").await?;
    ensure!(
        note.contains("Namespace customer-squatted on prometheus-1"),
        "event: {note}"
    );
    ensure!(
        get_child(
            &prom,
            ChildKind::Prometheus,
            "customer-squatted",
            "squatted"
        )
        .await?
        .is_none(),
        "wrote into a foreign namespace"
    );
    Ok(())
}

async fn same_customer_conflict(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    apply_stack(
        &hub,
        "t-twin-a",
        &stack_manifest("first", "twin", json!({})),
    )
    .await?;
    wait_ready(&hub, "t-twin-a", "first").await?;
    apply_stack(
        &hub,
        "t-twin-b",
        &stack_manifest("second", "twin", json!({})),
    )
    .await?;
    let second = wait_not_ready(&hub, "t-twin-b", "second", "Conflict").await?;
    let ready = condition(&second, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("CustomerStack t-twin-a/first"),
        "names the owner: {}",
        ready.message
    );
    // The first stack is not disturbed.
    wait_ready(&hub, "t-twin-a", "first").await?;
    Ok(())
}

async fn paused(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, _) = clients(tb)?;
    apply_stack(
        &hub,
        "t-paused",
        &stack_manifest("s", "paused", json!({"paused": true})),
    )
    .await?;
    let stack = wait_stack(
        &hub,
        "t-paused",
        "s",
        "ChildrenApplied=Unknown Paused",
        |s| {
            condition(s, "ChildrenApplied")
                .is_some_and(|c| c.status == "Unknown" && c.reason == "Paused")
        },
    )
    .await?;
    ensure!(
        condition(&stack, "Ready").is_some_and(|c| c.status == "False"),
        "not ready while nothing exists"
    );
    let ns: Api<Namespace> = Api::all(prom.clone());
    ensure!(
        ns.get_opt("customer-paused").await?.is_none(),
        "a paused stack created its namespace"
    );
    // Unpause: it converges. Pause again and change the spec: nothing is written, health stays.
    apply_stack(&hub, "t-paused", &stack_manifest("s", "paused", json!({}))).await?;
    wait_ready(&hub, "t-paused", "s").await?;
    apply_stack(
        &hub,
        "t-paused",
        &stack_manifest(
            "s",
            "paused",
            json!({"paused": true, "metrics": {"replicas": 3}}),
        ),
    )
    .await?;
    let stack = wait_stack(&hub, "t-paused", "s", "paused observed", |s| {
        condition(s, "ChildrenApplied").is_some_and(|c| c.reason == "Paused")
    })
    .await?;
    ensure!(
        stack
            .status
            .as_ref()
            .and_then(|s| s.children_ready.clone())
            .as_deref()
            == Some("6/6"),
        "health still reported"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = get_child(&prom, ChildKind::Prometheus, "customer-paused", "paused")
        .await?
        .context("prometheus")?;
    ensure!(
        serde_json::to_value(&p)?["spec"]["replicas"] == 2,
        "a paused stack changed the Prometheus"
    );
    Ok(())
}

async fn drift(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, graf) = clients(tb)?;
    apply_stack(&hub, "t-drift", &stack_manifest("s", "drift", json!({}))).await?;
    wait_ready(&hub, "t-drift", "s").await?;
    let api = child_api(&prom, ChildKind::Prometheus, "customer-drift");
    api.patch(
        "drift",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 7}})),
    )
    .await?;
    wait_child(
        &prom,
        ChildKind::Prometheus,
        "customer-drift",
        "drift",
        "replicas restored to 2",
        |o| {
            o.and_then(|o| serde_json::to_value(o).ok())
                .is_some_and(|v| v["spec"]["replicas"] == 2)
        },
    )
    .await?;
    let note = wait_event(&hub, "t-drift", "s", "DriftCorrected").await?;
    ensure!(
        note.contains("Prometheus customer-drift/drift"),
        "event: {note}"
    );
    child_api(&graf, ChildKind::GrafanaDatasource, "customer-drift")
        .delete("drift-prometheus", &DeleteParams::default())
        .await?;
    wait_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "customer-drift",
        "drift-prometheus",
        "re-created",
        |o| o.is_some_and(|o| o.metadata.deletion_timestamp.is_none()),
    )
    .await?;
    wait_event(&hub, "t-drift", "s", "ChildRecreated").await?;
    wait_ready(&hub, "t-drift", "s").await?;
    Ok(())
}

/// grafana-operator's CRDs (installed as they ship, CEL rules included) refuse a changed
/// `spec.instanceSelector`: the stack's Grafana children are deleted and created again from the
/// plan, with one `ChildReplaced` Event each, and the stack gets Ready with the new selector.
async fn instance_selector_change(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, graf) = clients(tb)?;
    apply_stack(
        &hub,
        "t-selector",
        &stack_manifest("s", "selector", json!({})),
    )
    .await?;
    wait_ready(&hub, "t-selector", "s").await?;
    let datasource = || {
        get_child(
            &graf,
            ChildKind::GrafanaDatasource,
            "customer-selector",
            "selector-prometheus",
        )
    };
    let before = datasource().await?.context("the datasource")?;
    // The same Grafana instance, selected by an expression instead of a label map.
    let by_expression = json!({"dashboards": {"instanceSelector": {"matchExpressions": [
        {"key": "dashboards", "operator": "In", "values": ["shared"]}]}}});
    apply_stack(
        &hub,
        "t-selector",
        &stack_manifest("s", "selector", by_expression),
    )
    .await?;
    let note = wait_event(&hub, "t-selector", "s", "ChildReplaced").await?;
    ensure!(
        note.contains("spec.instanceSelector cannot change in place"),
        "Event: {note}"
    );
    wait_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "customer-selector",
        "selector-prometheus",
        "re-created with the new selector",
        |o| {
            o.and_then(|o| serde_json::to_value(o).ok())
                .is_some_and(|v| {
                    v["spec"]["instanceSelector"]["matchExpressions"][0]["key"] == "dashboards"
                })
        },
    )
    .await?;
    let after = datasource().await?.context("the datasource")?;
    ensure!(
        after.metadata.uid != before.metadata.uid,
        "a new object, not an update"
    );
    let stack = wait_stack(
        &hub,
        "t-selector",
        "s",
        "Ready at the new generation",
        |s| {
            s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation
                && condition(s, "Ready").is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let failed = stack
        .status
        .iter()
        .flat_map(|s| s.children.iter())
        .any(|c| c.reason == "ApplyFailed");
    ensure!(!failed, "no refused write on the way");
    Ok(())
}

/// A member's own admission policy (a ValidatingAdmissionPolicy, as a platform team would have)
/// refuses the stack's Prometheus: the stack says `ApplyFailed` with the API server's message,
/// one Warning Event says so, and the write is retried less and less often instead of every
/// 15 s; fixing the spec makes it Ready at once.
async fn refused_write(tb: &TestBed) -> anyhow::Result<()> {
    use stacksmith_controller::api_calls::{CallOutcome, Verb, delta, total};
    let (hub, prom, _) = clients(tb)?;
    let policy_api = |kind: &str, plural: &str| {
        let resource = kube::api::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<DynamicObject>::all_with(prom.clone(), &resource)
    };
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "no-seven-replicas"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["monitoring.coreos.com"],
                "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["prometheuses"]}]},
            "validations": [{"expression": "object.spec.replicas != 7",
                "message": "this platform allows no Prometheus with 7 replicas"}],
        },
    }))?;
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "no-seven-replicas"},
        "spec": {"policyName": "no-seven-replicas", "validationActions": ["Deny"]},
    }))?;
    let ssa = PatchParams::apply("e2e-tests").force();
    policy_api("ValidatingAdmissionPolicy", "validatingadmissionpolicies")
        .patch("no-seven-replicas", &ssa, &Patch::Apply(&policy))
        .await?;
    policy_api(
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    )
    .patch("no-seven-replicas", &ssa, &Patch::Apply(&binding))
    .await?;
    // The policy takes effect once the API server has loaded it: probe with a dry run.
    let probe: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "probe", "namespace": "default"}, "spec": {"replicas": 7},
    }))?;
    let prometheuses = child_api(&prom, ChildKind::Prometheus, "default");
    let deadline = tokio::time::Instant::now() + WAIT;
    while prometheuses
        .create(
            &kube::api::PostParams {
                dry_run: true,
                ..Default::default()
            },
            &probe,
        )
        .await
        .is_ok()
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the policy never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let calls = OPERATOR_CALLS.get().context("the operator's counter")?;
    let refused_patches = |counts: &_| {
        total(counts, |k| {
            k.cluster == "prometheus-1"
                && k.verb == Verb::Patch
                && k.outcome == CallOutcome::ClientError
        })
    };
    let before = calls.snapshot();
    let seven = json!({"metrics": {"replicas": 7}});
    apply_stack(&hub, "t-refused", &stack_manifest("s", "refused", seven)).await?;
    let stack = wait_stack(&hub, "t-refused", "s", "ApplyFailed", |s| {
        condition(s, "Ready").is_some_and(|c| c.reason == "ApplyFailed")
    })
    .await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready
            .message
            .contains("this platform allows no Prometheus with 7 replicas"),
        "the API server's message: {}",
        ready.message
    );
    // 70 s: with a retry every 15 s that would be 5 more refused writes or so; with the backoff
    // (15 s, 30 s, 60 s, ...) at most 4 in all, counting the write that triggered the status.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let refused = refused_patches(&delta(&before, &calls.snapshot()));
    ensure!(
        (1..=4).contains(&refused),
        "{refused} refused writes of the Prometheus in 70 s"
    );
    let events = stack_events(&hub, "t-refused", "s").await?;
    let warnings = events.iter().filter(|(r, _)| r == "ApplyFailed").count();
    ensure!(
        warnings == 1,
        "one ApplyFailed Event, not one per retry: {events:?}"
    );

    // Fixed in the spec: written at once, whatever the backoff says.
    apply_stack(
        &hub,
        "t-refused",
        &stack_manifest("s", "refused", json!({})),
    )
    .await?;
    wait_ready(&hub, "t-refused", "s").await?;
    policy_api(
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    )
    .delete("no-seven-replicas", &DeleteParams::default())
    .await?;
    policy_api("ValidatingAdmissionPolicy", "validatingadmissionpolicies")
        .delete("no-seven-replicas", &DeleteParams::default())
        .await?;
    Ok(())
}

async fn spec_change(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, graf) = clients(tb)?;
    let with_resources = json!({"metrics": {"resources": {"requests": {"memory": "1Gi"}}}});
    apply_stack(
        &hub,
        "t-change",
        &stack_manifest("s", "change", with_resources),
    )
    .await?;
    wait_ready(&hub, "t-change", "s").await?;
    let changed = stack_manifest(
        "s",
        "change",
        json!({"metrics": {"replicas": 3, "resources": {"requests": {"memory": "1Gi"}}},
            "dashboards": {"dashboards": []}}),
    );
    apply_stack(&hub, "t-change", &changed).await?;
    wait_child(
        &prom,
        ChildKind::Prometheus,
        "customer-change",
        "change",
        "replicas 3",
        |o| {
            o.and_then(|o| serde_json::to_value(o).ok())
                .is_some_and(|v| v["spec"]["replicas"] == 3)
        },
    )
    .await?;
    // A field dropped from the stack, and nothing else changed, is dropped from the child.
    let without_resources = stack_manifest(
        "s",
        "change",
        json!({"metrics": {"replicas": 3}, "dashboards": {"dashboards": []}}),
    );
    apply_stack(&hub, "t-change", &without_resources).await?;
    wait_child(
        &prom,
        ChildKind::Prometheus,
        "customer-change",
        "change",
        "resources removed",
        |o| {
            o.and_then(|o| serde_json::to_value(o).ok())
                .is_some_and(|v| v["spec"]["resources"].is_null() && v["spec"]["replicas"] == 3)
        },
    )
    .await?;
    wait_child(
        &graf,
        ChildKind::GrafanaDashboard,
        "customer-change",
        "change-overview",
        "deleted",
        |o| o.is_none(),
    )
    .await?;
    let stack = wait_ready(&hub, "t-change", "s").await?;
    ensure!(
        stack.status.and_then(|s| s.children_ready).as_deref() == Some("5/5"),
        "one child fewer"
    );
    Ok(())
}

async fn deletion(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, graf) = clients(tb)?;
    apply_stack(&hub, "t-delete", &stack_manifest("s", "gone", json!({}))).await?;
    wait_ready(&hub, "t-delete", "s").await?;
    delete_stack(&hub, "t-delete", "s").await?;
    wait_stack_gone(&hub, "t-delete", "s").await?;
    for (client, kind, name) in [
        (&prom, ChildKind::Prometheus, "gone"),
        (&prom, ChildKind::PrometheusRule, "gone-core"),
        (&graf, ChildKind::GrafanaDatasource, "gone-prometheus"),
        (&graf, ChildKind::GrafanaDashboard, "gone-overview"),
    ] {
        ensure!(
            get_child(client, kind, "customer-gone", name)
                .await?
                .is_none(),
            "{kind} {name} still exists"
        );
    }
    let ns: Api<Namespace> = Api::all(prom.clone());
    let tenant = ns.get_opt("customer-gone").await?;
    ensure!(
        tenant.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "tenant namespace not deleted"
    );
    Ok(())
}

async fn orphan(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, prom, _) = clients(tb)?;
    apply_stack(
        &hub,
        "t-orphan",
        &stack_manifest("s", "orphan", json!({"deletionPolicy": "Orphan"})),
    )
    .await?;
    wait_ready(&hub, "t-orphan", "s").await?;
    delete_stack(&hub, "t-orphan", "s").await?;
    wait_stack_gone(&hub, "t-orphan", "s").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        get_child(&prom, ChildKind::Prometheus, "customer-orphan", "orphan")
            .await?
            .is_some(),
        "Orphan deleted the Prometheus"
    );
    Ok(())
}

async fn invalid_spec(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    apply_stack(
        &hub,
        "t-invalid",
        &stack_manifest(
            "s",
            "invalid",
            json!({"metrics": {"cluster": "prometheus-9"}}),
        ),
    )
    .await?;
    let stack = wait_not_ready(&hub, "t-invalid", "s", "InvalidSpec").await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("spec.metrics.cluster") && ready.message.contains("prometheus-9"),
        "message: {}",
        ready.message
    );
    Ok(())
}

async fn member_problems(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?;
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    let register = |name: &str, secret: &str| -> anyhow::Result<MemberCluster> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": name},
            "spec": {"kubeconfigSecretRef": {"namespace": "stacksmith-system", "name": secret}, "roles": ["prometheus"],
                     "prometheusUrlTemplate": "http://{name}.{namespace}:9090", "requestTimeoutSeconds": 3},
        }))?)
    };
    let put_secret = |name: &str, kubeconfig: String| -> anyhow::Result<Secret> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "stringData": {"kubeconfig": kubeconfig}}),
        )?)
    };
    let real_token = prom
        .operator_kubeconfig()
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .context("token")?
        .to_owned();
    let bad_token = "not-a-valid-token-0123456789abcdef";
    let wrong_ca = prom.operator_kubeconfig().replace(
        prom.operator_kubeconfig()
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
            .context("ca")?,
        &base64_of(&foreign_ca()?),
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no-secret", None, "SecretNotFound"),
        (
            "garbage",
            Some("{this is: [not a kubeconfig".to_owned()),
            "KubeconfigInvalid",
        ),
        ("wrong-ca", Some(wrong_ca), "TLSVerificationFailed"),
        (
            "bad-token",
            Some(prom.operator_kubeconfig().replace(&real_token, bad_token)),
            "CredentialsRejected",
        ),
    ];
    for (name, kubeconfig, _) in &cases {
        let secret_name = format!("{name}-kubeconfig");
        if let Some(kubeconfig) = kubeconfig {
            secrets
                .create(
                    &PostParams::default(),
                    &put_secret(&secret_name, kubeconfig.clone())?,
                )
                .await?;
        }
        members
            .create(&PostParams::default(), &register(name, &secret_name)?)
            .await?;
    }
    for (name, _, reason) in &cases {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let member = members.get(name).await?;
            let ready = member
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
            if let Some(ready) = &ready
                && ready.reason == *reason
            {
                ensure!(ready.status == "False", "{name}: Ready should be False");
                let all = serde_json::to_string(&member.status)?;
                ensure!(
                    !all.contains(&real_token) && !all.contains(bad_token),
                    "{name}: a token leaked into the status"
                );
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{name}: expected Ready reason {reason}, got {ready:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for (name, _, _) in &cases {
        members.delete(name, &DeleteParams::default()).await?;
    }
    Ok(())
}

/// A CA certificate (PEM) unrelated to the test bed's.
fn foreign_ca() -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    Ok(params.self_signed(&key)?.pem())
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// What CI does: `kubectl apply --server-side`, `kubectl wait --for=condition=Ready`, and what
/// ops see in `kubectl get` (the printer columns).
async fn gitops_with_kubectl(tb: &TestBed) -> anyhow::Result<()> {
    let kubectl = tb
        .kubectl()
        .context("kubectl is installed with the test bed")?
        .to_path_buf();
    let kubeconfig = tb.hub()?.kubeconfig_path().to_path_buf();
    let run = |args: Vec<String>| {
        let kubectl = kubectl.clone();
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = tokio::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .await?;
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            ensure!(
                out.status.success(),
                "kubectl {}: {}{}",
                args.join(" "),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok(stdout)
        }
    };
    let mut stack = stack_manifest("s", "gitops", json!({}));
    stack["metadata"]["namespace"] = json!("t-gitops");
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: t-gitops}}\n---\n{}",
        serde_yaml::to_string(&stack)?
    );
    let file = tb.dir().join("gitops-stack.yaml");
    std::fs::write(&file, manifests)?;
    let file = file.to_string_lossy().to_string();
    run(vec![
        "apply".into(),
        "--server-side".into(),
        "--field-manager=ci".into(),
        "-f".into(),
        file,
    ])
    .await?;
    run([
        "wait",
        "--for=condition=Ready",
        "customerstack/s",
        "-n",
        "t-gitops",
        "--timeout=60s",
    ]
    .map(String::from)
    .to_vec())
    .await?;
    let table = run(["get", "customerstacks", "-n", "t-gitops"]
        .map(String::from)
        .to_vec())
    .await?;
    let header = table.lines().next().unwrap_or_default();
    ensure!(
        header.contains("READY") && header.contains("CHILDREN") && header.contains("REASON"),
        "columns: {table}"
    );
    let row = table.lines().nth(1).unwrap_or_default();
    ensure!(
        row.contains("gitops")
            && row.contains("True")
            && row.contains("6/6")
            && row.contains("Ready"),
        "row: {table}"
    );
    let members = run(["get", "memberclusters"].map(String::from).to_vec()).await?;
    ensure!(
        members.lines().any(|l| l.contains("prometheus-1")
            && l.contains("True")
            && l.contains(&tb.control_plane().kubernetes_version)),
        "members: {members}"
    );
    Ok(())
}

/// A member registered for a role whose CRDs it does not serve (grafana-1 as a Prometheus
/// cluster): the member says which kinds are missing, and a stack using it says why it waits.
async fn missing_crds(tb: &TestBed) -> anyhow::Result<()> {
    let (hub, _, _) = clients(tb)?;
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    // The hub itself, which serves no child CRD (a cluster not registered yet: a second
    // registration of a member would be refused as a duplicate before its CRDs are looked at).
    let kubeconfig = tb.hub()?.admin_kubeconfig().to_owned();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "no-crds-kubeconfig"}, "stringData": {"kubeconfig": kubeconfig}}),
    )?;
    secrets.create(&PostParams::default(), &secret).await?;
    let member: MemberCluster = serde_json::from_value(json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "no-crds"},
        "spec": {"kubeconfigSecretRef": {"namespace": "stacksmith-system", "name": "no-crds-kubeconfig"}, "roles": ["prometheus"],
                 "prometheusUrlTemplate": "http://{name}.{namespace}:9090"},
    }))?;
    members.create(&PostParams::default(), &member).await?;
    apply_stack(
        &hub,
        "t-no-crds",
        &stack_manifest("s", "nocrds", json!({"metrics": {"cluster": "no-crds"}})),
    )
    .await?;
    // While the new member connects the stack may say so first; it settles on the cause.
    let stack = wait_stack(
        &hub,
        "t-no-crds",
        "s",
        "ClusterUnreachable, ChildCrdsMissing",
        |s| {
            condition(s, "Ready").is_some_and(|c| {
                c.reason == "ClusterUnreachable" && c.message.contains("ChildCrdsMissing")
            })
        },
    )
    .await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("ChildCrdsMissing") && ready.message.contains("Prometheus"),
        "says why: {}",
        ready.message
    );
    let member = members.get("no-crds").await?;
    let member_ready = member
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .context("member Ready")?;
    ensure!(
        member_ready.reason == "ChildCrdsMissing" && member_ready.message.contains("Prometheus"),
        "member: {member_ready:?}"
    );
    Ok(())
}

//! Failure isolation on the real test bed: a remote API server stopped and restarted, a
//! kubeconfig Secret rotated, a deletion held by an unreachable cluster. These tests stop
//! servers, so they run one at a time on a test bed of their own with a second Prometheus
//! cluster (`prometheus-2`) that they break while `prometheus-1` stays healthy.

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use stacksmith_api::{MemberCluster, Verdict};
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: with_second_prometheus,
            setup: Some(start_operator),
            serial: true,
        },
        "failure-e2e",
        vec![
            test(
                "reconciles_read_only_from_caches_and_idle_writes_nothing",
                |tb| Box::pin(boxed(counted(tb))),
            ),
            test(
                "unreachable_cluster_affects_only_its_children_and_recovers",
                |tb| Box::pin(boxed(unreachable(tb))),
            ),
            test(
                "member_without_usable_secret_is_retried_calmly_and_picked_up",
                |tb| Box::pin(boxed(missing_secret(tb))),
            ),
            test("deletion_is_held_while_a_cluster_is_down", |tb| {
                Box::pin(boxed(deletion_held(tb)))
            }),
            test("rotated_kubeconfig_secret_is_used_without_restart", |tb| {
                Box::pin(boxed(rotation(tb)))
            }),
            test(
                "a_stack_that_does_not_deserialize_is_reported_and_the_rest_reconciled",
                |tb| Box::pin(boxed(unreadable_stack(tb))),
            ),
            test(
                "a_member_cluster_that_does_not_deserialize_is_reported_and_the_rest_served",
                |tb| Box::pin(boxed(unreadable_member(tb))),
            ),
        ],
    )
}

fn on_prometheus_2(name: &str, customer: &str) -> serde_json::Value {
    stack_manifest(
        name,
        customer,
        json!({"metrics": {"cluster": "prometheus-2"}}),
    )
}

async fn unreachable(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let down = tb.cluster("prometheus-2")?;
    apply_stack(&hub, "f-down", &on_prometheus_2("s", "down")).await?;
    apply_stack(&hub, "f-up", &stack_manifest("s", "up", json!({}))).await?;
    wait_ready(&hub, "f-down", "s").await?;
    wait_ready(&hub, "f-up", "s").await?;

    down.stop_apiserver().await?;
    let stack = wait_not_ready(&hub, "f-down", "s", "ClusterUnreachable").await?;
    let status = stack.status.context("status")?;
    let prometheus = status
        .children
        .iter()
        .find(|c| c.kind == "Prometheus")
        .context("prometheus listed")?;
    ensure!(
        prometheus.verdict == Verdict::Unknown && prometheus.reason == "ClusterUnreachable",
        "{prometheus:?}"
    );
    ensure!(
        prometheus.last_known_verdict == Some(Verdict::Healthy),
        "last known verdict kept: {prometheus:?}"
    );
    ensure!(
        prometheus.message.contains("prometheus-2"),
        "{}",
        prometheus.message
    );
    let grafana_side = status
        .children
        .iter()
        .find(|c| c.kind == "GrafanaDatasource")
        .context("datasource")?;
    ensure!(
        grafana_side.verdict == Verdict::Healthy,
        "the Grafana children stay Healthy: {grafana_side:?}"
    );

    // Stacks on healthy clusters keep converging while prometheus-2 is down.
    let started = Instant::now();
    apply_stack(&hub, "f-new", &stack_manifest("s", "new", json!({}))).await?;
    wait_ready(&hub, "f-new", "s").await?;
    println!(
        "new stack on healthy clusters Ready in {:?} while prometheus-2 is down",
        started.elapsed()
    );
    let up = stacks(&hub, "f-up").get("s").await?;
    ensure!(
        condition(&up, "Ready").is_some_and(|c| c.status == "True"),
        "the stack on prometheus-1 stays Ready"
    );

    down.start_apiserver().await?;
    wait_ready(&hub, "f-down", "s").await?;
    // Nothing was deleted because the cluster was unreachable: the same objects are back.
    let p = get_child(
        down.client(),
        ChildKind::Prometheus,
        "customer-down",
        "down",
    )
    .await?
    .context("prometheus survived")?;
    ensure!(
        p.metadata.deletion_timestamp.is_none(),
        "prometheus being deleted"
    );
    Ok(())
}

async fn deletion_held(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let down = tb.cluster("prometheus-2")?;
    apply_stack(&hub, "f-held", &on_prometheus_2("s", "held")).await?;
    wait_ready(&hub, "f-held", "s").await?;
    down.stop_apiserver().await?;
    wait_not_ready(&hub, "f-held", "s", "ClusterUnreachable").await?;
    delete_stack(&hub, "f-held", "s").await?;
    let stack = wait_stack(
        &hub,
        "f-held",
        "s",
        "DeletionBlocked naming prometheus-2",
        |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions.iter().any(|c| {
                    c.type_ == "DeletionBlocked"
                        && c.status == "True"
                        && c.message.contains("prometheus-2")
                })
            })
        },
    )
    .await?;
    ensure!(
        stack.metadata.deletion_timestamp.is_some(),
        "held, not gone"
    );
    // The Grafana side was deleted meanwhile.
    let graf = tb.cluster("grafana-1")?.client().clone();
    wait_child(
        &graf,
        ChildKind::GrafanaDatasource,
        "customer-held",
        "held-prometheus",
        "deleted",
        |o| o.is_none(),
    )
    .await?;
    down.start_apiserver().await?;
    wait_stack_gone(&hub, "f-held", "s").await?;
    ensure!(
        get_child(
            down.client(),
            ChildKind::Prometheus,
            "customer-held",
            "held"
        )
        .await?
        .is_none(),
        "prometheus deleted after recovery"
    );
    Ok(())
}

async fn rotation(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let target = tb.cluster("prometheus-2")?;
    apply_stack(&hub, "f-rotate", &on_prometheus_2("s", "rotate")).await?;
    wait_ready(&hub, "f-rotate", "s").await?;
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let good = target.operator_kubeconfig().to_owned();
    let token = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .context("token")?
        .to_owned();
    let revoked = good.replace(&token, "revoked-token-000000000000000000000");
    let put = |kubeconfig: String| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "member-prometheus-2-kubeconfig"}, "stringData": {"kubeconfig": kubeconfig}});
    secrets
        .patch(
            "member-prometheus-2-kubeconfig",
            &PatchParams::apply("e2e-rotation").force(),
            &Patch::Apply(&put(revoked)),
        )
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let member = members.get("prometheus-2").await?;
        let ready = member
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        if ready
            .as_ref()
            .is_some_and(|c| c.reason == "CredentialsRejected")
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the rotated (bad) credentials were not picked up: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_not_ready(&hub, "f-rotate", "s", "ClusterUnreachable").await?;
    // Rotate back to a valid kubeconfig: the stack recovers with no restart.
    secrets
        .patch(
            "member-prometheus-2-kubeconfig",
            &PatchParams::apply("e2e-rotation").force(),
            &Patch::Apply(&put(good)),
        )
        .await?;
    wait_ready(&hub, "f-rotate", "s").await?;
    Ok(())
}

/// Counted on the operator's own clients (this suite runs one test at a time, so the counts
/// are this test's): converging a new stack reads nothing outside the watches, and a reconcile
/// with nothing to do writes nothing.
async fn counted(tb: &TestBed) -> anyhow::Result<()> {
    use stacksmith_controller::api_calls::{delta, total};
    let hub = tb.hub()?.client().clone();
    let calls = OPERATOR_CALLS.get().context("the operator's counter")?;
    // Start from a quiet operator (start-up and earlier tests settled).
    let before = wait_quiet(calls).await?;
    apply_stack(
        &hub,
        "f-counted",
        &stack_manifest("s", "counted", json!({})),
    )
    .await?;
    wait_ready(&hub, "f-counted", "s").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let converging = delta(&before, &calls.snapshot());
    println!("requests to converge one stack: {converging:?}");
    ensure!(
        total(&converging, |k| k.verb.is_read()) == 0,
        "GET/LIST while converging: {converging:?}"
    );
    let prometheus_side = total(&converging, |k| {
        k.cluster == "prometheus-1" && k.verb.is_write()
    });
    ensure!(
        prometheus_side >= 7,
        "at least one apply per object on prometheus-1: {converging:?}"
    );

    let settled = calls.snapshot();
    let poke = json!({"metadata": {"annotations": {"e2e/poke": "1"}}});
    stacks(&hub, "f-counted")
        .patch("s", &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = delta(&settled, &calls.snapshot());
    ensure!(
        total(&idle, |k| k.verb.is_read() || k.verb.is_write()) == 0,
        "a reconcile with nothing to do made requests: {idle:?}"
    );

    // A restarted operator (a second one, started now on the settled hub) writes nothing: it
    // waits for its members before judging stacks, and finds every object as planned — the
    // built-in kinds it lists come without apiVersion/kind and are not mistaken for drift.
    let restarted = stacksmith_controller::RunningOperator::spawn(tb.hub()?.admin_config().await?);
    let restarted_calls = restarted.counter();
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_quiet(&restarted_calls).await?;
    let after_restart = restarted_calls.snapshot();
    restarted.stop().await;
    println!("requests of a restarted operator: {after_restart:?}");
    ensure!(
        total(&after_restart, |k| k.verb.is_write()) == 0,
        "a restarted operator wrote: {after_restart:?}"
    );
    ensure!(
        total(&after_restart, |k| k.verb
            == stacksmith_controller::api_calls::Verb::List)
            > 0,
        "the restarted operator did start (it listed nothing): {after_restart:?}"
    );
    Ok(())
}

/// A member whose Secret is missing is retried every few seconds, not in a tight loop, and the
/// Secret is used as soon as it appears.
async fn missing_secret(tb: &TestBed) -> anyhow::Result<()> {
    use stacksmith_controller::api_calls::{Verb, delta, total};
    let hub = tb.hub()?.client().clone();
    let calls = OPERATOR_CALLS.get().context("the operator's counter")?;
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let member: MemberCluster = serde_json::from_value(json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "late"},
        "spec": {"kubeconfigSecretRef": {"namespace": "stacksmith-system", "name": "late-kubeconfig"}, "roles": ["prometheus"],
                 "prometheusUrlTemplate": "http://{name}.{namespace}:9090"},
    }))?;
    members
        .create(&kube::api::PostParams::default(), &member)
        .await?;
    let reason = |m: &MemberCluster| {
        m.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.reason.clone())
    };
    let deadline = Instant::now() + WAIT;
    while reason(&members.get("late").await?).as_deref() != Some("SecretNotFound") {
        ensure!(Instant::now() < deadline, "no SecretNotFound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = wait_quiet(calls).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle = delta(&before, &calls.snapshot());
    // Reading and watching its Secret again: one attempt every few seconds, not a loop.
    let hub_reads = total(&idle, |k| {
        k.cluster == "hub" && matches!(k.verb, Verb::Get | Verb::List | Verb::Watch)
    });
    ensure!(
        hub_reads <= 10,
        "a member without a Secret made {hub_reads} hub reads in 6 s: {idle:?}"
    );
    // The Secret appears (a copy of prometheus-1's): the member is probed with it without a
    // restart. It reaches prometheus-1, which is registered already, so the probe that used the
    // new Secret ends in DuplicateCluster (a second registration of one cluster is refused).
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    let kubeconfig = tb.cluster("prometheus-1")?.operator_kubeconfig().to_owned();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "late-kubeconfig"}, "stringData": {"kubeconfig": kubeconfig}}),
    )?;
    secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await?;
    let deadline = Instant::now() + WAIT;
    while reason(&members.get("late").await?).as_deref() != Some("DuplicateCluster") {
        ensure!(
            Instant::now() < deadline,
            "the new Secret was not used: {:?}",
            reason(&members.get("late").await?)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    members
        .delete("late", &kube::api::DeleteParams::default())
        .await?;
    Ok(())
}

/// Waits until the operator has made no read or write for 1.5 s (start-up, earlier tests and
/// their recoveries settled); returns the counts at that point.
async fn wait_quiet(
    calls: &stacksmith_controller::api_calls::ApiCallCounter,
) -> anyhow::Result<std::collections::BTreeMap<stacksmith_controller::api_calls::CallKey, u64>> {
    use stacksmith_controller::api_calls::{delta, total};
    let mut before = calls.snapshot();
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = calls.snapshot();
        let moved = delta(&before, &now);
        before = now;
        if total(&moved, |k| k.verb.is_read() || k.verb.is_write()) == 0 {
            return Ok(before);
        }
        ensure!(
            Instant::now() < deadline,
            "the operator never went quiet: {moved:?}"
        );
    }
}

/// A `CustomerStack` stored under a looser schema (a newer CRD, a hand edit) that stacksmith's
/// types cannot read gets a Warning Event and is left alone; it does not stop the hub watch, so
/// a stack applied after it is reconciled as usual.
async fn unreadable_stack(tb: &TestBed) -> anyhow::Result<()> {
    use kube::api::DeleteParams;

    let hub = tb.hub()?.client().clone();
    create_namespace(&hub, "t-unreadable").await?;
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        hub.clone(),
        "t-unreadable",
        &kube::api::ApiResource::erase::<stacksmith_api::CustomerStack>(&()),
    );
    let unreadable = json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
        "metadata": {"name": "unreadable"},
        "spec": {"customer": "unreadable", "metrics": "not an object"},
    });
    store_unreadable(&hub, "customerstacks.stacksmith.io", &raw, unreadable).await?;

    let note = wait_event(&hub, "t-unreadable", "unreadable", "InvalidObject").await?;
    ensure!(note.contains("cannot read"), "Event: {note}");
    apply_stack(
        &hub,
        "t-readable",
        &stack_manifest("s", "readable", json!({})),
    )
    .await?;
    wait_ready(&hub, "t-readable", "s").await?;
    raw.delete("unreadable", &DeleteParams::default()).await?;
    delete_stack(&hub, "t-readable", "s").await?;
    wait_stack_gone(&hub, "t-readable", "s").await?;
    Ok(())
}

/// A `MemberCluster` stored under a looser schema gets a Warning Event (in `default`: it is
/// cluster-scoped) and is left alone; the other members go on serving their stacks.
async fn unreadable_member(tb: &TestBed) -> anyhow::Result<()> {
    use kube::api::DeleteParams;

    let hub = tb.hub()?.client().clone();
    let raw: Api<kube::api::DynamicObject> = Api::all_with(
        hub.clone(),
        &kube::api::ApiResource::erase::<MemberCluster>(&()),
    );
    let unreadable = json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": "unreadable-member"},
        "spec": {"roles": "not a list"},
    });
    store_unreadable(&hub, "memberclusters.stacksmith.io", &raw, unreadable).await?;

    let note = wait_event(&hub, "default", "unreadable-member", "InvalidObject").await;
    // Whatever happened, the unreadable object goes (no finalizer: nothing could add one).
    raw.delete("unreadable-member", &DeleteParams::default())
        .await?;
    let note = note?;
    ensure!(
        note.contains("cannot read this MemberCluster"),
        "Event: {note}"
    );
    apply_stack(
        &hub,
        "t-member-readable",
        &stack_manifest("s", "member-readable", json!({})),
    )
    .await?;
    wait_ready(&hub, "t-member-readable", "s").await?;
    delete_stack(&hub, "t-member-readable", "s").await?;
    wait_stack_gone(&hub, "t-member-readable", "s").await?;
    Ok(())
}

/// Stores `object` through `raw` under a loosened schema of the CRD `crd` (any `spec`: a newer
/// CRD, a hand edit), then puts the CRD back as it ships, whatever happened.
async fn store_unreadable(
    hub: &kube::Client,
    crd: &str,
    raw: &Api<kube::api::DynamicObject>,
    object: serde_json::Value,
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::PostParams;

    let crds: Api<CustomResourceDefinition> = Api::all(hub.clone());
    let original = crds.get(crd).await?;
    let mut loose = serde_json::to_value(&original)?;
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let loose: CustomResourceDefinition = serde_json::from_value(loose)?;
    crds.replace(crd, &PostParams::default(), &loose).await?;
    let object: kube::api::DynamicObject = serde_json::from_value(object)?;
    // The API server takes the new schema a moment after the update.
    let deadline = Instant::now() + WAIT;
    let created = loop {
        match raw.create(&PostParams::default(), &object).await {
            Ok(created) => break Ok(created),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => break Err(err),
        }
    };
    let mut restored = crds.get(crd).await?;
    restored.spec = original.spec.clone();
    crds.replace(crd, &PostParams::default(), &restored).await?;
    created.with_context(|| format!("storing an object under a loosened {crd}"))?;
    Ok(())
}

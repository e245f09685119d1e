//! Never delete what is not ours, on the real test bed: stacksmith deletes only what its
//! inventory proves it wrote (member-side uid), a deletion waits until the member has answered
//! for every inventoried object, a namespace holding someone else's things stays, a move needs
//! the stack's consent, and a stack can take back what an `Orphan` deletion or a rename left.
//!
//! The tests restart the operator and stop servers, so they run one at a time, each with an
//! operator of its own, on a test bed with a second Prometheus cluster (`prometheus-2`).

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::labels::{ADOPT_FROM, ALLOW_MOVE};
use stacksmith_controller::RunningOperator;
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: with_second_prometheus,
            setup: None,
            serial: true,
        },
        "inventory-e2e",
        vec![
            test("a_labelled_copy_of_a_tenant_namespace_survives", |tb| {
                Box::pin(boxed(labelled_copy(tb)))
            }),
            test(
                "a_deletion_after_a_restart_during_an_outage_waits_for_the_member",
                |tb| Box::pin(boxed(restart_during_outage(tb))),
            ),
            test(
                "a_deletion_right_after_a_secret_rotation_deletes_the_children_first",
                |tb| Box::pin(boxed(rotation_then_delete(tb))),
            ),
            test("someone_elses_configmap_keeps_the_tenant_namespace", |tb| {
                Box::pin(boxed(foreign_configmap(tb)))
            }),
            test(
                "a_move_is_refused_without_consent_and_finished_with_it",
                |tb| Box::pin(boxed(move_between_clusters(tb))),
            ),
            test("an_orphaned_stack_is_adopted_by_its_successor", |tb| {
                Box::pin(boxed(orphan_then_adopt(tb)))
            }),
            test(
                "a_renamed_stack_takes_over_and_the_old_one_hands_over",
                |tb| Box::pin(boxed(rename(tb))),
            ),
            test(
                "a_service_account_stacksmith_did_not_write_is_a_conflict",
                |tb| Box::pin(boxed(foreign_service_account(tb))),
            ),
        ],
    )
}

/// An operator of the test's own (the shared Grafana it selects created once).
async fn operator(tb: &TestBed) -> anyhow::Result<RunningOperator> {
    let grafana = tb.cluster("grafana-1")?.client().clone();
    if let Err(err) = stacksmith_testbed::simulator::create_shared_grafana(&grafana).await
        && !format!("{err:#}").contains("already exists")
    {
        return Err(err.into());
    }
    let hub = tb.hub()?.admin_config().await?;
    Ok(RunningOperator::spawn(hub))
}

fn namespaces(client: &Client) -> Api<Namespace> {
    Api::all(client.clone())
}

/// The uid of a namespace, if it exists and is not being deleted.
async fn live_namespace_uid(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    Ok(namespaces(client)
        .get_opt(name)
        .await?
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .and_then(|ns| ns.uid()))
}

/// Whether a namespace is gone or going.
async fn namespace_gone_or_going(client: &Client, name: &str) -> anyhow::Result<bool> {
    Ok(live_namespace_uid(client, name).await?.is_none())
}

async fn labelled_copy(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    apply_stack(&hub, "i-copy", &stack_manifest("s", "copy", json!({}))).await?;
    wait_ready(&hub, "i-copy", "s").await?;
    // A backup tool restores the tenant namespace under another name, labels and all.
    let original = namespaces(&prom).get("customer-copy").await?;
    let copy: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "customer-copy-restored", "labels": original.labels()},
    }))?;
    namespaces(&prom)
        .create(&PostParams::default(), &copy)
        .await?;
    let copy_uid = live_namespace_uid(&prom, "customer-copy-restored")
        .await?
        .context("the copy")?;
    // Drop a rule group (the prune pass runs), then delete the stack (the clean-up runs).
    apply_stack(
        &hub,
        "i-copy",
        &stack_manifest("s", "copy", json!({"metrics": {"alertingRules": []}})),
    )
    .await?;
    wait_child(
        &prom,
        ChildKind::PrometheusRule,
        "customer-copy",
        "copy-core",
        "pruned",
        |o| o.is_none(),
    )
    .await?;
    delete_stack(&hub, "i-copy", "s").await?;
    wait_stack_gone(&hub, "i-copy", "s").await?;
    ensure!(
        namespace_gone_or_going(&prom, "customer-copy").await?,
        "the stack's own namespace is deleted"
    );
    ensure!(
        live_namespace_uid(&prom, "customer-copy-restored").await? == Some(copy_uid),
        "the labelled copy must survive"
    );
    running.stop().await;
    Ok(())
}

/// Deletes the stack and waits until it is gone, checking at every look that its children went
/// first: while the stack exists nothing is asserted; the moment it is gone, its Prometheus
/// must be gone and its namespace gone or going.
async fn delete_and_check_children_first(
    hub: &Client,
    member: &Client,
    ns: &str,
    customer: &str,
) -> anyhow::Result<()> {
    wait_stack_gone(hub, ns, "s").await?;
    let prometheus = get_child(
        member,
        ChildKind::Prometheus,
        &format!("customer-{customer}"),
        customer,
    )
    .await?;
    ensure!(
        prometheus.is_none(),
        "the stack was released while its Prometheus still exists"
    );
    ensure!(
        namespace_gone_or_going(member, &format!("customer-{customer}")).await?,
        "the stack was released while its tenant namespace still exists"
    );
    Ok(())
}

async fn restart_during_outage(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let down = tb.cluster("prometheus-2")?;
    let manifest = stack_manifest(
        "s",
        "outage",
        json!({"metrics": {"cluster": "prometheus-2"}}),
    );
    apply_stack(&hub, "i-outage", &manifest).await?;
    wait_ready(&hub, "i-outage", "s").await?;
    down.stop_apiserver().await?;
    running.stop().await;
    // A fresh operator: no cache, no memory; the member does not answer.
    let running = operator(tb).await?;
    delete_stack(&hub, "i-outage", "s").await?;
    wait_stack(
        &hub,
        "i-outage",
        "s",
        "deletion held by prometheus-2",
        |s| {
            s.metadata.deletion_timestamp.is_some()
                && condition(s, "DeletionBlocked")
                    .is_some_and(|c| c.status == "True" && c.message.contains("prometheus-2"))
        },
    )
    .await?;
    down.start_apiserver().await?;
    delete_and_check_children_first(&hub, down.client(), "i-outage", "outage").await?;
    running.stop().await;
    Ok(())
}

async fn rotation_then_delete(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster("prometheus-2")?;
    let manifest = stack_manifest(
        "s",
        "rotated",
        json!({"metrics": {"cluster": "prometheus-2"}}),
    );
    apply_stack(&hub, "i-rotate", &manifest).await?;
    wait_ready(&hub, "i-rotate", "s").await?;
    // The same credentials written again (a rotation): the operator makes a new connection,
    // whose caches start empty.
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    let rotated = format!("{}\n# rotated\n", member.operator_kubeconfig());
    secrets
        .patch(
            "member-prometheus-2-kubeconfig",
            &PatchParams::apply("e2e-rotation").force(),
            &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "member-prometheus-2-kubeconfig"},
                "stringData": {"kubeconfig": rotated}})),
        )
        .await?;
    delete_stack(&hub, "i-rotate", "s").await?;
    delete_and_check_children_first(&hub, member.client(), "i-rotate", "rotated").await?;
    running.stop().await;
    Ok(())
}

async fn foreign_configmap(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    apply_stack(&hub, "i-foreign", &stack_manifest("s", "tenant", json!({}))).await?;
    wait_ready(&hub, "i-foreign", "s").await?;
    let namespace_uid = live_namespace_uid(&prom, "customer-tenant")
        .await?
        .context("tenant namespace")?;
    let configs: Api<ConfigMap> = Api::namespaced(prom.clone(), "customer-tenant");
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "team-config"}, "data": {"owner": "the customer"},
    }))?;
    configs.create(&PostParams::default(), &theirs).await?;
    // Renaming the customer would move everything: the API server refuses it, naming the field.
    let renamed = apply_stack(
        &hub,
        "i-foreign",
        &stack_manifest("s", "tenant2", json!({})),
    )
    .await;
    match renamed {
        Ok(_) => bail!("changing spec.customer was accepted"),
        Err(err) => ensure!(
            format!("{err:#}").contains("spec.customer"),
            "the refusal names the field: {err:#}"
        ),
    }
    ensure!(
        live_namespace_uid(&prom, "customer-tenant").await? == Some(namespace_uid.clone()),
        "nothing deleted"
    );
    delete_stack(&hub, "i-foreign", "s").await?;
    wait_stack_gone(&hub, "i-foreign", "s").await?;
    ensure!(
        get_child(&prom, ChildKind::Prometheus, "customer-tenant", "tenant")
            .await?
            .is_none(),
        "the stack's own children are deleted"
    );
    ensure!(
        live_namespace_uid(&prom, "customer-tenant").await? == Some(namespace_uid),
        "the namespace holding someone else's ConfigMap stays"
    );
    ensure!(
        configs.get_opt("team-config").await?.is_some(),
        "the ConfigMap stays"
    );
    let events = stack_events(&hub, "i-foreign", "s").await?;
    ensure!(
        events
            .iter()
            .any(|(reason, note)| reason == "NamespaceKept" && note.contains("team-config")),
        "a NamespaceKept Event names what kept it: {events:?}"
    );
    running.stop().await;
    Ok(())
}

async fn move_between_clusters(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let from = tb.cluster("prometheus-1")?.client().clone();
    let to = tb.cluster("prometheus-2")?.client().clone();
    apply_stack(&hub, "i-move", &stack_manifest("s", "mover", json!({}))).await?;
    wait_ready(&hub, "i-move", "s").await?;
    let old_namespace = live_namespace_uid(&from, "customer-mover")
        .await?
        .context("tenant namespace")?;
    let moved = stack_manifest(
        "s",
        "mover",
        json!({"metrics": {"cluster": "prometheus-2"}}),
    );
    apply_stack(&hub, "i-move", &moved).await?;
    let refused = wait_not_ready(&hub, "i-move", "s", "MoveRefused").await?;
    let root_cause = refused
        .status
        .as_ref()
        .and_then(|s| s.root_cause.clone())
        .context("rootCause")?;
    ensure!(
        root_cause.field == "spec.metrics.cluster",
        "the refusal names the field: {root_cause:?}"
    );
    // Nothing was written to the new cluster, nothing deleted from the old one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        live_namespace_uid(&to, "customer-mover").await?.is_none(),
        "nothing written before consent"
    );
    ensure!(
        live_namespace_uid(&from, "customer-mover").await? == Some(old_namespace),
        "nothing deleted before consent"
    );
    let mut consented = moved.clone();
    consented["metadata"]["annotations"] = json!({ ALLOW_MOVE: "true" });
    apply_stack(&hub, "i-move", &consented).await?;
    wait_ready(&hub, "i-move", "s").await?;
    wait_child(
        &from,
        ChildKind::Prometheus,
        "customer-mover",
        "mover",
        "deleted from the old cluster",
        |o| o.is_none(),
    )
    .await?;
    ensure!(
        get_child(&to, ChildKind::Prometheus, "customer-mover", "mover")
            .await?
            .is_some(),
        "the Prometheus lives on the new cluster"
    );
    delete_stack(&hub, "i-move", "s").await?;
    wait_stack_gone(&hub, "i-move", "s").await?;
    running.stop().await;
    Ok(())
}

async fn orphan_then_adopt(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    let old = stack_manifest("old", "heir", json!({"deletionPolicy": "Orphan"}));
    apply_stack(&hub, "i-adopt", &old).await?;
    wait_ready(&hub, "i-adopt", "old").await?;
    let prometheus_uid = get_child(&prom, ChildKind::Prometheus, "customer-heir", "heir")
        .await?
        .and_then(|o| o.uid())
        .context("the Prometheus")?;
    delete_stack(&hub, "i-adopt", "old").await?;
    wait_stack_gone(&hub, "i-adopt", "old").await?;
    // Without the annotation the objects are someone else's.
    apply_stack(&hub, "i-adopt", &stack_manifest("plain", "heir", json!({}))).await?;
    wait_not_ready(&hub, "i-adopt", "plain", "Conflict").await?;
    stacks(&hub, "i-adopt")
        .delete("plain", &DeleteParams::default())
        .await?;
    wait_stack_gone(&hub, "i-adopt", "plain").await?;
    let mut new = stack_manifest("new", "heir", json!({}));
    new["metadata"]["annotations"] = json!({ ADOPT_FROM: "old" });
    apply_stack(&hub, "i-adopt", &new).await?;
    wait_ready(&hub, "i-adopt", "new").await?;
    let now = get_child(&prom, ChildKind::Prometheus, "customer-heir", "heir")
        .await?
        .and_then(|o| o.uid());
    ensure!(
        now.as_deref() == Some(prometheus_uid.as_str()),
        "the Prometheus was taken over, not re-created"
    );
    delete_stack(&hub, "i-adopt", "new").await?;
    wait_stack_gone(&hub, "i-adopt", "new").await?;
    ensure!(
        get_child(&prom, ChildKind::Prometheus, "customer-heir", "heir")
            .await?
            .is_none(),
        "the adopted Prometheus is the new stack's: deleted with it"
    );
    running.stop().await;
    Ok(())
}

async fn rename(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    apply_stack(
        &hub,
        "i-rename",
        &stack_manifest("before", "renamed", json!({})),
    )
    .await?;
    wait_ready(&hub, "i-rename", "before").await?;
    let prometheus_uid = get_child(&prom, ChildKind::Prometheus, "customer-renamed", "renamed")
        .await?
        .and_then(|o| o.uid())
        .context("the Prometheus")?;
    // GitOps renames: the new stack first (it waits: the old one still lives), then the old
    // one is deleted (with the default deletionPolicy, Delete).
    let mut after = stack_manifest("after", "renamed", json!({}));
    after["metadata"]["annotations"] = json!({ ADOPT_FROM: "before" });
    apply_stack(&hub, "i-rename", &after).await?;
    wait_not_ready(&hub, "i-rename", "after", "Conflict").await?;
    delete_stack(&hub, "i-rename", "before").await?;
    wait_stack_gone(&hub, "i-rename", "before").await?;
    let events = stack_events(&hub, "i-rename", "before").await?;
    ensure!(
        events.iter().any(|(reason, _)| reason == "HandedOver"),
        "the old stack says it handed over: {events:?}"
    );
    wait_ready(&hub, "i-rename", "after").await?;
    let now = get_child(&prom, ChildKind::Prometheus, "customer-renamed", "renamed")
        .await?
        .and_then(|o| o.uid());
    ensure!(
        now.as_deref() == Some(prometheus_uid.as_str()),
        "the Prometheus was handed over, not deleted and re-created"
    );
    delete_stack(&hub, "i-rename", "after").await?;
    wait_stack_gone(&hub, "i-rename", "after").await?;
    running.stop().await;
    Ok(())
}

async fn foreign_service_account(tb: &TestBed) -> anyhow::Result<()> {
    let running = operator(tb).await?;
    let hub = tb.hub()?.client().clone();
    let prom = tb.cluster("prometheus-1")?.client().clone();
    apply_stack(&hub, "i-sa", &stack_manifest("s", "sa", json!({}))).await?;
    wait_ready(&hub, "i-sa", "s").await?;
    // Someone replaces the Prometheus' ServiceAccount with one of their own while the stack is
    // paused (so the operator does not re-create its own in between).
    let paused = stack_manifest("s", "sa", json!({"paused": true}));
    apply_stack(&hub, "i-sa", &paused).await?;
    wait_stack(&hub, "i-sa", "s", "paused", |s| {
        condition(s, "ChildrenApplied").is_some_and(|c| c.reason == "Paused")
    })
    .await?;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(prom.clone(), "customer-sa");
    accounts
        .delete("prometheus-sa", &DeleteParams::default())
        .await?;
    let theirs: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": "prometheus-sa", "labels": {"team": "theirs"}}}),
    )?;
    let created = accounts.create(&PostParams::default(), &theirs).await?;
    apply_stack(&hub, "i-sa", &stack_manifest("s", "sa", json!({}))).await?;
    wait_not_ready(&hub, "i-sa", "s", "Conflict").await?;
    let account = accounts.get("prometheus-sa").await?;
    ensure!(
        account.uid() == created.uid()
            && account
                .labels()
                .get("app.kubernetes.io/managed-by")
                .is_none(),
        "someone else's ServiceAccount is not taken over"
    );
    delete_stack(&hub, "i-sa", "s").await?;
    wait_stack_gone(&hub, "i-sa", "s").await?;
    ensure!(
        accounts.get_opt("prometheus-sa").await?.map(|a| a.uid()) == Some(created.uid()),
        "someone else's ServiceAccount is not deleted with the stack"
    );
    running.stop().await;
    Ok(())
}

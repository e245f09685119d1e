// A Grafana instance of the customer's own (`spec.dashboards.dedicatedGrafana`) on the real test
// bed: the operator creates the `Grafana` in the tenant namespace of the Grafana member (the
// upstream grafana-operator CRD as it ships, the simulator playing grafana-operator), the
// folder, datasource and dashboards select it alone, and when it fails the stack names it as
// the root cause. The hub's API server refuses a stack with both or neither of the two Grafana
// sources (the CEL rule of `spec.dashboards`).
//
// Also the dashboards users bring: a model from a ConfigMap on the hub (`configMapRef`) written
// into the `GrafanaDashboard` and following the ConfigMap's changes, a grafana.com dashboard,
// both bound to the tenant's datasource and under the tenant's own uid, as the upstream CRD
// takes them; a ConfigMap that is missing is named on the stack and nothing is written.

use stacksmith_e2e as support;

use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stacksmith_api::labels::{DASHBOARD_SOURCE, DASHBOARD_SOURCE_VALUE, GRAFANA_INSTANCE};
use stacksmith_api::validation::cel;
use stacksmith_api::{RootCause, Verdict};
use stacksmith_core::ChildKind;
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::simulator::outcome::scenario_key;
use stacksmith_testbed::{TestBed, TestBedOptions};
use support::*;

/// The Grafana member of the test bed.
const GRAFANA_MEMBER: &str = "grafana-1";

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: TestBedOptions::new,
            setup: Some(start_operator),
            serial: false,
        },
        "dedicated-grafana-e2e",
        vec![
            test(
                "a_dedicated_grafana_is_created_and_receives_the_children_alone",
                |tb| Box::pin(boxed(converges(tb))),
            ),
            test("a_failed_dedicated_grafana_is_the_named_root_cause", |tb| {
                Box::pin(boxed(failed_instance(tb)))
            }),
            test("the_hub_refuses_both_or_neither_grafana_source", |tb| {
                Box::pin(boxed(one_source_only(tb)))
            }),
            test(
                "a_dashboard_from_a_hub_config_map_follows_it_under_the_tenants_uid",
                |tb| Box::pin(boxed(config_map_dashboard(tb))),
            ),
        ],
    )
}

/// A stack for `customer` with a dedicated Grafana (pinned `version`, an Ingress for `host`)
/// instead of the shared instances.
fn dedicated_stack(customer: &str, version: &str, host: &str) -> Value {
    stack_manifest(
        "s",
        customer,
        json!({"dashboards": {
            "instanceSelector": null,
            "dedicatedGrafana": {"version": version, "ingressHost": host},
        }}),
    )
}

fn grafana_client(tb: &TestBed) -> anyhow::Result<Client> {
    Ok(tb.cluster(GRAFANA_MEMBER)?.client().clone())
}

/// The live object as JSON.
async fn live(
    client: &Client,
    kind: ChildKind,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let object = get_child(client, kind, namespace, name)
        .await?
        .with_context(|| format!("{kind} {namespace}/{name} does not exist"))?;
    Ok(serde_json::to_value(object)?)
}

async fn converges(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let graf = grafana_client(tb)?;
    let (ns, customer) = ("t-own", "own");
    let tenant = "customer-own";
    apply_stack(
        &hub,
        ns,
        &dedicated_stack(customer, "12.1.0", "own.grafana.example.com"),
    )
    .await?;
    let stack = wait_ready(&hub, ns, "s").await?;
    let status = stack.status.clone().context("status")?;
    // The six children of a stack, plus its Grafana.
    ensure!(
        status.children_ready.as_deref() == Some("7/7"),
        "children {:?}",
        status.children_ready
    );
    let instance = status
        .children
        .iter()
        .find(|c| c.kind == "Grafana")
        .context("the Grafana is one of the stack's children")?;
    ensure!(
        (
            instance.cluster.as_str(),
            instance.namespace.as_str(),
            instance.name.as_str(),
            instance.verdict,
            instance.reason.as_str()
        ) == (
            GRAFANA_MEMBER,
            tenant,
            customer,
            Verdict::Healthy,
            "GrafanaReady"
        ),
        "the Grafana child: {instance:?}"
    );
    ensure!(
        instance.message.contains("12.1.0"),
        "the ready message names the version: {}",
        instance.message
    );
    ensure!(
        status
            .inventory
            .iter()
            .any(|e| e.kind == "Grafana" && e.namespace == tenant && e.name == customer),
        "the Grafana is inventoried: {:?}",
        status.inventory
    );

    // The Grafana on the Grafana member: in the tenant namespace, the pinned version, labelled
    // for its children, an Ingress to the Service grafana-operator creates for it.
    let grafana = live(&graf, ChildKind::Grafana, tenant, customer).await?;
    ensure!(
        grafana["spec"]["version"] == "12.1.0",
        "version: {}",
        grafana["spec"]
    );
    ensure!(
        grafana["metadata"]["labels"][GRAFANA_INSTANCE] == customer,
        "labels: {}",
        grafana["metadata"]["labels"]
    );
    let rule = &grafana["spec"]["ingress"]["spec"]["rules"][0];
    ensure!(
        rule["host"] == "own.grafana.example.com"
            && rule["http"]["paths"][0]["backend"]["service"]
                == json!({"name": "own-service", "port": {"number": 3000}}),
        "ingress: {}",
        grafana["spec"]["ingress"]
    );
    ensure!(
        grafana["status"]["stage"] == "complete" && grafana["status"]["version"] == "12.1.0",
        "status as grafana-operator writes it: {}",
        grafana["status"]
    );

    // The folder, datasource and dashboard select it alone, next to it.
    let selector = json!({"matchLabels": {GRAFANA_INSTANCE: customer}});
    for (kind, name) in [
        (ChildKind::GrafanaFolder, "own"),
        (ChildKind::GrafanaDatasource, "own-prometheus"),
        (ChildKind::GrafanaDashboard, "own-overview"),
    ] {
        let child = live(&graf, kind, tenant, name).await?;
        ensure!(
            child["spec"]["instanceSelector"] == selector,
            "{kind} {name} selects {}",
            child["spec"]["instanceSelector"]
        );
        ensure!(
            child["spec"]["allowCrossNamespaceImport"] != true,
            "{kind} {name} may be imported into another namespace: {}",
            child["spec"]
        );
        // Applied to exactly one instance: not the shared one.
        let applied = child["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["status"] == "True")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        ensure!(
            applied.ends_with("successfully applied to 1 instances"),
            "{kind} {name}: {}",
            child["status"]
        );
    }

    // Deleting the stack deletes its Grafana too.
    delete_stack(&hub, ns, "s").await?;
    wait_stack_gone(&hub, ns, "s").await?;
    wait_child(
        &graf,
        ChildKind::Grafana,
        tenant,
        customer,
        "deleted with its stack",
        |o| o.is_none(),
    )
    .await?;
    Ok(())
}

async fn failed_instance(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let graf = grafana_client(tb)?;
    let (ns, customer) = ("t-own-broken", "own-broken");
    let tenant = "customer-own-broken";
    apply_stack(
        &hub,
        ns,
        &dedicated_stack(customer, "12.1.0", "own-broken.grafana.example.com"),
    )
    .await?;
    wait_ready(&hub, ns, "s").await?;

    // grafana-operator fails the instance's deployment stage.
    let key = scenario_key(ChildKind::Grafana.as_str(), tenant, customer);
    set_outcomes(&graf, &[(key.as_str(), "degraded")]).await?;
    // Settled: the instance Degraded, its three children waiting for it.
    let stack = wait_stack(
        &hub,
        ns,
        "s",
        "the Grafana and its three children Degraded",
        |s| {
            s.status.as_ref().is_some_and(|st| {
                st.summary.as_ref().is_some_and(|sum| sum.degraded == 4)
                    && st.observed_generation == s.metadata.generation
            })
        },
    )
    .await?;
    let status = stack.status.clone().context("status")?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.status == "False" && ready.reason == "ChildDegraded",
        "Ready: {ready:?}"
    );
    ensure!(
        ready
            .message
            .starts_with(&format!("Grafana {tenant}/{customer}"))
            && ready.message.contains("failed"),
        "Ready names the instance and its failed stage: {}",
        ready.message
    );
    let cause = status.root_cause.clone().context("status.rootCause")?;
    ensure!(
        cause
            == RootCause {
                reason: "ChildDegraded".into(),
                cluster: GRAFANA_MEMBER.into(),
                kind: "Grafana".into(),
                namespace: tenant.into(),
                name: customer.into(),
                field: String::new(),
            },
        "rootCause: {cause:?}"
    );
    let instance = status
        .children
        .iter()
        .find(|c| c.kind == "Grafana")
        .context("the Grafana child")?;
    ensure!(
        (instance.verdict, instance.reason.as_str()) == (Verdict::Degraded, "StageFailed"),
        "the Grafana child: {instance:?}"
    );
    for kind in ["GrafanaFolder", "GrafanaDatasource", "GrafanaDashboard"] {
        let waiting = status
            .children
            .iter()
            .find(|c| c.kind == kind)
            .with_context(|| format!("{kind} listed"))?;
        ensure!(
            (waiting.verdict, waiting.reason.as_str()) == (Verdict::Degraded, "NoMatchingInstance")
                && waiting
                    .message
                    .contains(&format!("Grafana {tenant}/{customer} is not ready")),
            "{kind} waits for the instance and says so: {waiting:?}"
        );
    }

    // grafana-operator recovers the instance: the stack follows without a spec change.
    set_outcomes(&graf, &[(key.as_str(), "healthy")]).await?;
    let healed = wait_ready(&hub, ns, "s").await?;
    ensure!(
        healed
            .status
            .as_ref()
            .is_some_and(|s| s.root_cause.is_none()),
        "a Ready stack has no rootCause"
    );
    Ok(())
}

async fn one_source_only(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let ns = "t-own-refused";
    create_namespace(&hub, ns).await?;
    let api = stacks(&hub, ns);
    let apply = PatchParams::apply("dedicated-grafana-e2e").force();
    let both = stack_manifest(
        "both",
        "own-both",
        json!({"dashboards": {"dedicatedGrafana": {"version": "12.1.0"}}}),
    );
    let neither = stack_manifest(
        "neither",
        "own-neither",
        json!({"dashboards": {"instanceSelector": null}}),
    );
    for (what, manifest) in [("both", both), ("neither", neither)] {
        let name = manifest["metadata"]["name"].as_str().context("name")?;
        match api.patch(name, &apply, &Patch::Apply(&manifest)).await {
            Err(kube::Error::Api(status)) if status.code == 422 => {
                // The message as the API server words it (docs/api.md quotes it).
                println!("{what}: {}", status.message);
                ensure!(
                    status.message.contains(&format!(
                        "spec.dashboards: Invalid value: {}",
                        cel::ONE_GRAFANA_SOURCE_MESSAGE
                    )),
                    "{what}: refused, but the message does not name the field and the rule: {}",
                    status.message
                );
            }
            Err(other) => bail!("{what}: expected 422 Invalid, got {other}"),
            Ok(accepted) => bail!(
                "{what}: accepted (is the CEL rule of spec.dashboards gone?): {}",
                serde_json::to_value(&accepted.spec.dashboards)?
            ),
        }
    }
    // A version that is not pinned is refused by the schema.
    let floating = stack_manifest(
        "floating",
        "own-floating",
        json!({"dashboards": {"instanceSelector": null, "dedicatedGrafana": {"version": "latest"}}}),
    );
    match api
        .patch("floating", &apply, &Patch::Apply(&floating))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 422 => ensure!(
            status
                .message
                .contains("spec.dashboards.dedicatedGrafana.version"),
            "the message names the field: {}",
            status.message
        ),
        Err(other) => bail!("version latest: expected 422 Invalid, got {other}"),
        Ok(_) => bail!("version latest was accepted"),
    }
    Ok(())
}

/// A dashboard-source ConfigMap on the hub holding `model` under `api.json`.
fn dashboard_config_map(model: &str) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "boards", "labels": {DASHBOARD_SOURCE: DASHBOARD_SOURCE_VALUE}},
        "data": {"api.json": model},
    }))?)
}

async fn config_map_dashboard(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let graf = grafana_client(tb)?;
    let (ns, customer) = ("t-boards", "boards");
    let tenant = "customer-boards";
    let manifest = stack_manifest(
        "s",
        customer,
        json!({"dashboards": {"dashboards": [
            {"name": "api", "configMapRef": {"name": "boards", "key": "api.json"},
             "datasources": [{"inputName": "DS_PROMETHEUS"}]},
            {"name": "nodes", "grafanaCom": {"id": 1860, "revision": 37}},
        ]}}),
    );

    // No ConfigMap yet: the stack names the reference, and nothing is written.
    apply_stack(&hub, ns, &manifest).await?;
    let stack = wait_not_ready(&hub, ns, "s", "InvalidSpec").await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready
            .message
            .contains("spec.dashboards.dashboards[0].configMapRef")
            && ready.message.contains("\"boards\" not found"),
        "Ready names the reference: {}",
        ready.message
    );
    ensure!(
        get_child(&graf, ChildKind::GrafanaDashboard, tenant, "boards-api")
            .await?
            .is_none()
            && get_child(&graf, ChildKind::GrafanaFolder, tenant, customer)
                .await?
                .is_none(),
        "nothing is written for a stack whose dashboard ConfigMap is missing"
    );

    // The ConfigMap appears: its model is written into the dashboard.
    let maps: Api<ConfigMap> = Api::namespaced(hub.clone(), ns);
    let v1 = r#"{"title": "API v1", "uid": "someone-elses"}"#;
    maps.create(&PostParams::default(), &dashboard_config_map(v1)?)
        .await
        .context("create the ConfigMap")?;
    wait_ready(&hub, ns, "s").await?;
    let api = live(&graf, ChildKind::GrafanaDashboard, tenant, "boards-api").await?;
    let expected = json!({
        "json": v1,
        "uid": "boards_api",
        "datasources": [{"inputName": "DS_PROMETHEUS", "datasourceName": "boards-prometheus"}],
    });
    for field in ["json", "uid", "datasources"] {
        ensure!(
            api["spec"][field] == expected[field],
            "spec.{field}: {}",
            api["spec"]
        );
    }
    let nodes = live(&graf, ChildKind::GrafanaDashboard, tenant, "boards-nodes").await?;
    ensure!(
        nodes["spec"]["grafanaCom"] == json!({"id": 1860, "revision": 37})
            && nodes["spec"]["uid"] == "boards_nodes"
            && nodes["spec"]["datasources"]
                == json!([{"inputName": "DS_PROMETHEUS", "datasourceName": "boards-prometheus"}]),
        "the grafana.com dashboard: {}",
        nodes["spec"]
    );

    // A change to the ConfigMap reaches the dashboard, with no change to the stack.
    let v2 = r#"{"title": "API v2"}"#;
    maps.replace("boards", &PostParams::default(), &dashboard_config_map(v2)?)
        .await
        .context("change the ConfigMap")?;
    wait_child(
        &graf,
        ChildKind::GrafanaDashboard,
        tenant,
        "boards-api",
        "the new model",
        |o| o.is_some_and(|o| o.data.pointer("/spec/json").and_then(Value::as_str) == Some(v2)),
    )
    .await?;
    let dashboard = live(&graf, ChildKind::GrafanaDashboard, tenant, "boards-api").await?;
    ensure!(
        dashboard["spec"]["uid"] == "boards_api",
        "the uid stays: {}",
        dashboard["spec"]
    );
    wait_ready(&hub, ns, "s").await?;

    delete_stack(&hub, ns, "s").await?;
    wait_stack_gone(&hub, ns, "s").await?;
    Ok(())
}

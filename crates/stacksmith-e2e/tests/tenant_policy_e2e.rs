//! Tenant policies for real: the operator runs with `--tenant-policy=required` (the chart's
//! default) and the hub holds `TenantPolicy` objects. For each rule a stack breaks (no policy
//! names its customer; a hub namespace the policy does not list; a Grafana namespace, instance
//! selector, default datasource or dashboard URL the policy does not allow; replicas, retention,
//! retention size, volume or resources over its caps) the stack is refused: `Ready` False with
//! reason `PolicyViolation`, the root cause naming the field, a `PolicyViolation` Event, and not
//! one write to either member (counted by the operator's own request counter, and no object of
//! the customer on either member). Fixing the policy (which wakes the stack at once) or the
//! stack makes it converge.
//!
//! The tests share one test bed and one operator; each uses customers and hub namespaces of its
//! own. They run one at a time, so that the write counts of a refusal are the refusal's alone.

use stacksmith_e2e as support;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use stacksmith_api::labels::CUSTOMER;
use stacksmith_api::{CustomerStack, TenantPolicy};
use stacksmith_controller::api_calls::{CallKey, delta, total};
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

const MEMBERS: [&str; 2] = ["prometheus-1", "grafana-1"];
/// The reason of a refusal.
const REFUSED: &str = "PolicyViolation";

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stacksmith_testbed::TestBedOptions::new,
            setup: Some(start_operator_requiring_policies),
            serial: true,
        },
        "tenant-policy-e2e",
        vec![
            test(
                "a_stack_no_policy_governs_is_refused_until_a_policy_names_its_customer",
                |tb| Box::pin(boxed(no_policy(tb))),
            ),
            test(
                "a_stack_in_a_hub_namespace_the_policy_does_not_list_is_refused",
                |tb| Box::pin(boxed(wrong_hub_namespace(tb))),
            ),
            test("a_customer_two_policies_name_is_refused", |tb| {
                Box::pin(boxed(two_policies(tb)))
            }),
            test(
                "grafana_namespace_selector_default_datasource_and_urls_need_the_policys_leave",
                |tb| Box::pin(boxed(grafana_rules(tb))),
            ),
            test(
                "each_cap_of_the_policy_refuses_in_turn_until_lifted",
                |tb| Box::pin(boxed(caps(tb))),
            ),
            test(
                "the_hub_refuses_an_empty_selector_and_a_url_prefix_without_a_host",
                |tb| Box::pin(boxed(refused_by_the_hub(tb))),
            ),
        ],
    )
}

/// Server-side applies a `TenantPolicy` (as the platform's GitOps does).
async fn apply_policy(hub: &Client, name: &str, spec: Value) -> anyhow::Result<()> {
    let api: Api<TenantPolicy> = Api::all(hub.clone());
    let body = json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "TenantPolicy",
        "metadata": {"name": name}, "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply("e2e-platform").force(),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("applying TenantPolicy {name}"))?;
    Ok(())
}

/// A policy for `customer`, claimed from `namespace`, allowing the shared Grafana
/// (`dashboards: shared`) that [`stack_manifest`] selects; `extra` is merged into the spec.
fn policy_for(customer: &str, namespace: &str, extra: Value) -> Value {
    let mut spec = json!({
        "customers": [customer],
        "hubNamespaces": [namespace],
        "grafana": {"instanceSelectors": [{"matchLabels": {"dashboards": "shared"}}]},
    });
    stacksmith_testbed::harness::merge_json(&mut spec, extra);
    spec
}

/// The requests the operator made so far.
fn member_writes() -> anyhow::Result<BTreeMap<CallKey, u64>> {
    Ok(OPERATOR_CALLS
        .get()
        .context("the operator's counter")?
        .snapshot())
}

/// Waits until the stack is refused with its root cause at `field`, the `Ready` message
/// containing `message`; checks that nothing of `customer` exists on either member and that
/// the operator wrote nothing to them since `before`. Returns the stack.
async fn expect_refused(
    tb: &TestBed,
    before: &BTreeMap<CallKey, u64>,
    (ns, name, customer): (&str, &str, &str),
    field: &str,
    message: &str,
) -> anyhow::Result<CustomerStack> {
    let hub = tb.hub()?.client().clone();
    let stack = wait_stack(
        &hub,
        ns,
        name,
        &format!("Ready=False ({REFUSED}) at {field}"),
        |s| {
            let refused =
                condition(s, "Ready").is_some_and(|c| c.status == "False" && c.reason == REFUSED);
            let at = s
                .status
                .as_ref()
                .and_then(|st| st.root_cause.as_ref())
                .is_some_and(|cause| cause.field == field);
            refused && at
        },
    )
    .await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.starts_with(&format!("{field}: ")) && ready.message.contains(message),
        "Ready says {:?}, expected {field}: …{message}…",
        ready.message
    );
    let applied = condition(&stack, "ChildrenApplied").context("ChildrenApplied")?;
    ensure!(
        applied.status == "False" && applied.reason == REFUSED,
        "{applied:?}"
    );
    let status = stack.status.as_ref().context("status")?;
    ensure!(status.inventory.is_empty(), "{:?}", status.inventory);
    ensure!(status.children.is_empty(), "{:?}", status.children);
    let during = delta(before, &member_writes()?);
    let writes = total(&during, |k| {
        MEMBERS.contains(&k.cluster.as_str()) && k.verb.is_write()
    });
    ensure!(
        writes == 0,
        "the operator wrote to a member for a refused stack: {during:?}"
    );
    nothing_on_the_members(tb, customer).await?;
    Ok(stack)
}

/// No object of `customer` on either member: no tenant namespace, no child labelled with the
/// customer.
async fn nothing_on_the_members(tb: &TestBed, customer: &str) -> anyhow::Result<()> {
    let by_customer = ListParams::default().labels(&format!("{CUSTOMER}={customer}"));
    for member in MEMBERS {
        let client = tb.cluster(member)?.client().clone();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        ensure!(
            namespaces
                .get_opt(&format!("customer-{customer}"))
                .await?
                .is_none(),
            "{member} has the tenant namespace of customer {customer}"
        );
        let labelled = namespaces.list(&by_customer).await?;
        ensure!(
            labelled.items.is_empty(),
            "{member} has namespaces of customer {customer}"
        );
        let prometheus_side = member.starts_with("prometheus");
        for kind in ChildKind::ALL {
            if kind.is_prometheus_operator() != prometheus_side {
                continue;
            }
            let api: Api<kube::api::DynamicObject> = Api::all_with(
                client.clone(),
                &stacksmith_testbed::simulator::api_resource(kind),
            );
            let found = api.list(&by_customer).await?;
            ensure!(
                found.items.is_empty(),
                "{member} has {kind} objects of customer {customer}: {:?}",
                found.items.iter().map(name_of).collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

/// Waits until everything the stack plans is written (`ChildrenApplied` True): the refusal is
/// lifted. (Its Prometheus cannot get Ready here: the test bed has no volume for its claims.)
async fn expect_written(hub: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let stack = wait_stack(hub, ns, name, "ChildrenApplied=True", |s| {
        condition(s, "ChildrenApplied").is_some_and(|c| c.status == "True")
    })
    .await?;
    let status = stack.status.as_ref().context("status")?;
    ensure!(!status.inventory.is_empty(), "nothing written");
    Ok(())
}

/// Waits until the stack is Ready, and its children exist.
async fn expect_converged(hub: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let stack = wait_ready(hub, ns, name).await?;
    let status = stack.status.as_ref().context("status")?;
    ensure!(!status.inventory.is_empty(), "nothing written");
    Ok(())
}

async fn no_policy(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let (ns, customer) = ("tp-none", "tpnone");
    let before = member_writes()?;
    apply_stack(&hub, ns, &stack_manifest("s", customer, json!({}))).await?;
    expect_refused(
        tb,
        &before,
        (ns, "s", customer),
        "spec.customer",
        "no TenantPolicy governs customer \"tpnone\"",
    )
    .await?;
    let note = wait_event(&hub, ns, "s", REFUSED).await?;
    ensure!(note.contains("spec.customer"), "{note}");
    // The platform names the customer: the policy's watch wakes the stack (no resync wait).
    apply_policy(&hub, "tp-none", policy_for(customer, ns, json!({}))).await?;
    expect_converged(&hub, ns, "s").await
}

async fn wrong_hub_namespace(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let customer = "tpns";
    apply_policy(
        &hub,
        "tp-ns",
        policy_for(customer, "tp-ns-owner", json!({})),
    )
    .await?;
    let before = member_writes()?;
    apply_stack(
        &hub,
        "tp-ns-other",
        &stack_manifest("s", customer, json!({})),
    )
    .await?;
    expect_refused(
        tb,
        &before,
        ("tp-ns-other", "s", customer),
        "spec.customer",
        "a stack in hub namespace \"tp-ns-other\" may not claim customer \"tpns\": TenantPolicy \
         \"tp-ns\" lets only namespace(s) tp-ns-owner claim it (hubNamespaces)",
    )
    .await?;
    apply_policy(
        &hub,
        "tp-ns",
        policy_for(
            customer,
            "tp-ns-owner",
            json!({"hubNamespaces": ["tp-ns-owner", "tp-ns-other"]}),
        ),
    )
    .await?;
    expect_converged(&hub, "tp-ns-other", "s").await
}

async fn two_policies(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let (ns, customer) = ("tp-two", "tptwo");
    apply_policy(&hub, "tp-two-a", policy_for(customer, ns, json!({}))).await?;
    apply_policy(&hub, "tp-two-b", policy_for(customer, ns, json!({}))).await?;
    let before = member_writes()?;
    apply_stack(&hub, ns, &stack_manifest("s", customer, json!({}))).await?;
    expect_refused(
        tb,
        &before,
        (ns, "s", customer),
        "spec.customer",
        "is named by more than one TenantPolicy (\"tp-two-a\", \"tp-two-b\")",
    )
    .await?;
    // Deleting one of them wakes the stack: one policy governs it again.
    Api::<TenantPolicy>::all(hub.clone())
        .delete("tp-two-b", &DeleteParams::default())
        .await?;
    expect_converged(&hub, ns, "s").await
}

async fn grafana_rules(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let ns = "tp-grafana";
    // One customer per case: a refused case must find nothing of its customer on the members,
    // and the fixed stacks of earlier cases keep theirs.
    let customers: Vec<String> = (0..6).map(|i| format!("tpgrafana{i}")).collect();
    let policy = |extra: Value| {
        let mut spec = policy_for("tpgrafana0", ns, json!({"customers": customers.clone()}));
        stacksmith_testbed::harness::merge_json(&mut spec, extra);
        spec
    };
    apply_policy(&hub, "tp-grafana", policy(json!({}))).await?;
    let cases = [
        (
            json!({"dashboards": {"namespace": "grafana"}}),
            "spec.dashboards.namespace",
            "\"grafana\" is not a Grafana namespace TenantPolicy \"tp-grafana\" allows",
        ),
        (
            json!({"dashboards": {"instanceSelector": {"matchLabels": {"dashboards": "other"}}}}),
            "spec.dashboards.instanceSelector",
            "dashboards=other is not a selector TenantPolicy \"tp-grafana\" allows",
        ),
        (
            json!({"dashboards": {"instanceSelector": {"matchLabels": null}}}),
            "spec.dashboards.instanceSelector",
            "an empty selector selects every Grafana instance",
        ),
        (
            json!({"dashboards": {"datasource": {"isDefault": true}}}),
            "spec.dashboards.datasource.isDefault",
            "(grafana.allowDefaultDatasource: false)",
        ),
        (
            json!({"dashboards": {"dashboards": [
                {"name": "overview", "url": "http://169.254.169.254/latest/meta-data/"}
            ]}}),
            "spec.dashboards.dashboards[0].url",
            "allows no URL dashboards (dashboards.urlPrefixes: none)",
        ),
    ];
    for (i, (overrides, field, message)) in cases.into_iter().enumerate() {
        let (name, customer) = (format!("s{i}"), customers[i].as_str());
        let before = member_writes()?;
        apply_stack(&hub, ns, &stack_manifest(&name, customer, overrides)).await?;
        expect_refused(tb, &before, (ns, &name, customer), field, message)
            .await
            .with_context(|| format!("case {field}"))?;
        // The stack fixed (the field back to what the policy allows): it converges.
        apply_stack(&hub, ns, &stack_manifest(&name, customer, json!({}))).await?;
        expect_converged(&hub, ns, &name)
            .await
            .with_context(|| format!("case {field}, fixed"))?;
    }
    // Fixing the policy instead: the default datasource allowed.
    let customer = customers[5].as_str();
    let before = member_writes()?;
    let default_datasource = json!({"dashboards": {"datasource": {"isDefault": true}}});
    apply_stack(&hub, ns, &stack_manifest("p", customer, default_datasource)).await?;
    expect_refused(
        tb,
        &before,
        (ns, "p", customer),
        "spec.dashboards.datasource.isDefault",
        "allowDefaultDatasource",
    )
    .await?;
    apply_policy(
        &hub,
        "tp-grafana",
        policy(json!({"grafana": {"allowDefaultDatasource": true}})),
    )
    .await?;
    expect_converged(&hub, ns, "p").await
}

async fn caps(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let (ns, customer) = ("tp-caps", "tpcaps");
    let mut limits = json!({
        "maxReplicas": 1,
        "maxRetention": "7d",
        "maxRetentionSize": "10GiB",
        "maxStorage": "10Gi",
        "maxResources": {"cpu": "500m", "memory": "1Gi"},
    });
    apply_policy(
        &hub,
        "tp-caps",
        policy_for(customer, ns, json!({"limits": limits})),
    )
    .await?;
    let overrides = json!({"metrics": {
        "replicas": 2,
        "retention": "2w",
        "retentionSize": "20GiB",
        "storage": {"size": "20Gi"},
        "resources": {"requests": {"cpu": "250m", "memory": "2Gi"}, "limits": {"cpu": "1"}},
    }});
    let before = member_writes()?;
    apply_stack(&hub, ns, &stack_manifest("s", customer, overrides)).await?;
    // Each cap in turn: the root cause names the first field still over its cap; lifting that
    // cap in the policy wakes the stack, which then names the next.
    let steps = [
        (
            "spec.metrics.replicas",
            "2 is more than TenantPolicy \"tp-caps\" allows (limits.maxReplicas: 1) (and 5 more problems)",
            "maxReplicas",
            json!(2),
        ),
        (
            "spec.metrics.retention",
            "2w is longer than TenantPolicy \"tp-caps\" allows (limits.maxRetention: 7d)",
            "maxRetention",
            json!("14d"),
        ),
        (
            "spec.metrics.retentionSize",
            "20GiB is more than TenantPolicy \"tp-caps\" allows (limits.maxRetentionSize: 10GiB)",
            "maxRetentionSize",
            json!("20GB"),
        ),
        (
            "spec.metrics.storage.size",
            "20Gi is more than TenantPolicy \"tp-caps\" allows (limits.maxStorage: 10Gi)",
            "maxStorage",
            json!("20480Mi"),
        ),
        (
            "spec.metrics.resources.requests.memory",
            "2Gi is more than TenantPolicy \"tp-caps\" allows (limits.maxResources.memory: 1Gi)",
            "memory",
            json!("2Gi"),
        ),
        (
            "spec.metrics.resources.limits.cpu",
            "1 is more than TenantPolicy \"tp-caps\" allows (limits.maxResources.cpu: 500m)",
            "cpu",
            json!("1000m"),
        ),
    ];
    for (field, message, cap, lifted) in steps {
        expect_refused(tb, &before, (ns, "s", customer), field, message).await?;
        match cap {
            "memory" | "cpu" => limits["maxResources"][cap] = lifted,
            _ => limits[cap] = lifted,
        }
        apply_policy(
            &hub,
            "tp-caps",
            policy_for(customer, ns, json!({"limits": limits.clone()})),
        )
        .await?;
    }
    expect_written(&hub, ns, "s").await
}

async fn refused_by_the_hub(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let cases = [
        (
            json!({"grafana": {"instanceSelectors": [{"matchLabels": {"a": "b"}}, {}]}}),
            "an empty selector selects every Grafana instance",
        ),
        (
            json!({"grafana": {"instanceSelectors": [{"matchLabels": {}}]}}),
            "an empty selector selects every Grafana instance",
        ),
        (
            json!({"dashboards": {"urlPrefixes": ["https://dashboards.example.com"]}}),
            "spec.dashboards.urlPrefixes[0]",
        ),
    ];
    for (extra, expected) in cases {
        let spec = policy_for("tprefused", "tp-refused", extra.clone());
        let refused = apply_policy(&hub, "tp-refused", spec)
            .await
            .err()
            .with_context(|| format!("the hub accepted {extra}"))?;
        let message = format!("{refused:#}");
        ensure!(
            message.contains(expected) && message.contains("422"),
            "{extra}: {message}"
        );
    }
    let allowed = json!({"dashboards": {"urlPrefixes": ["https://dashboards.example.com/"]}});
    apply_policy(
        &hub,
        "tp-refused",
        policy_for("tprefused", "tp-refused", allowed),
    )
    .await
}

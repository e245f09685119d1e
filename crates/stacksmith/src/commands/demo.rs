//! `stacksmith demo`: the whole product on this machine.
//!
//! Starts a local test bed (a hub plus a Prometheus cluster and a Grafana cluster, with stand-in
//! child operators), runs the operator against it (with `--tenant-policy=required`, the chart's
//! default), applies the platform's tenant policies (`examples/gitops/platform/`) and the
//! customer stacks of the GitOps example (`examples/gitops/customers/`), shows them reaching Ready with their children's health
//! aggregated, then breaks the shared Grafana instance and shows the root cause in the status of
//! the stacks that select it, while the gold-tier stack, on a Grafana of its own, stays Ready.
//!
//! The example's `MemberCluster` registrations (`examples/gitops/clusters/`) are not applied: the
//! test bed registers its clusters itself, with credentials it creates at start. The demo sets
//! the one field the platform adds for the gold tier (`spec.alertmanagers` of `prometheus-1`) and
//! then checks that every example registration has the same spec as the one the test bed made,
//! so the example cannot drift from what the demo runs.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt as _};
use serde::Deserialize as _;
use serde_json::json;
use stacksmith_api::{CustomerStack, MemberCluster, TenantPolicy};
use stacksmith_core::ChildKind;
use stacksmith_testbed::simulator::{OUTCOME_ANNOTATION, api_resource};
use stacksmith_testbed::{TestBed, TestBedOptions};

use crate::commands::testbed::wait_for_stop_signal;

/// The customer stacks of the GitOps example: (path, content).
const EXAMPLE_STACKS: [(&str, &str); 3] = [
    (
        "examples/gitops/customers/acme/customerstack.yaml",
        include_str!("../../../../examples/gitops/customers/acme/customerstack.yaml"),
    ),
    (
        "examples/gitops/customers/globex/customerstack.yaml",
        include_str!("../../../../examples/gitops/customers/globex/customerstack.yaml"),
    ),
    (
        "examples/gitops/customers/initech/customerstack.yaml",
        include_str!("../../../../examples/gitops/customers/initech/customerstack.yaml"),
    ),
];
/// The member cluster registrations of the GitOps example: (path, content).
const EXAMPLE_REGISTRATIONS: [(&str, &str); 2] = [
    (
        "examples/gitops/clusters/prometheus-1.yaml",
        include_str!("../../../../examples/gitops/clusters/prometheus-1.yaml"),
    ),
    (
        "examples/gitops/clusters/grafana-1.yaml",
        include_str!("../../../../examples/gitops/clusters/grafana-1.yaml"),
    ),
];
/// The platform's tenant policies of the GitOps example: (path, content).
const EXAMPLE_POLICIES: (&str, &str) = (
    "examples/gitops/platform/tenant-policies.yaml",
    include_str!("../../../../examples/gitops/platform/tenant-policies.yaml"),
);
const EXAMPLE_GRAFANA: &str = include_str!("../../../../examples/grafana-instance.yaml");
const EXAMPLE_ALERTMANAGER: &str = include_str!("../../../../examples/alertmanager.yaml");
/// The StorageClass the gold-tier stack names, and the size of each of its volumes.
const GOLD_STORAGE_CLASS: &str = "standard";
const GOLD_VOLUME_SIZE: &str = "50Gi";
const WAIT: Duration = Duration::from_secs(60);

/// Options of `stacksmith demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the test bed and the operator running after the demo until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    step(
        "Starting a local hub and two remote clusters (first run also builds the control plane: several minutes)",
    );
    let started = Instant::now();
    let mut options = TestBedOptions::new("demo");
    // The demo runs no kubectl of its own: one build less on a fresh machine.
    options.kubectl = false;
    let testbed = TestBed::start(options)
        .await
        .context("starting the test bed")?;
    println!(
        "  {} clusters ready in {:.1} s: {}",
        testbed.clusters().len(),
        started.elapsed().as_secs_f32(),
        testbed.control_plane()
    );
    for cluster in testbed.clusters() {
        let roles: Vec<&str> = cluster.roles().iter().map(|r| r.as_str()).collect();
        let roles = if roles.is_empty() {
            "hub".to_owned()
        } else {
            roles.join(",")
        };
        println!(
            "    {:<14} {:<12} {}",
            cluster.name(),
            roles,
            cluster.server_url()
        );
    }
    let hub = testbed.hub()?.client().clone();
    let operator = stacksmith_controller::RunningOperator::spawn_with_endpoints(
        testbed.hub()?.admin_config().await?,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        stacksmith_controller::PolicyMode::Required,
    )
    .context("serving the operator's metrics")?;
    if let Some(address) = operator.endpoints() {
        println!("  operator running; its metrics: http://{address}/metrics");
    }

    let result = scenario(&testbed, &hub).await;
    if let Err(err) = &result {
        println!("\n  demo failed: {err:#}");
    }
    print_requests(&operator.api_calls());
    if result.is_ok() && args.keep {
        step("Everything stays up; point kubectl at it with:");
        for (key, value) in testbed.env() {
            println!("  export {key}={value}");
        }
        println!("  (Ctrl-C stops it)");
        wait_for_stop_signal().await?;
    }
    step("Stopping the operator and the test bed");
    operator.stop().await;
    testbed.shutdown().await.context("stopping the test bed")?;
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn scenario(testbed: &TestBed, hub: &Client) -> anyhow::Result<()> {
    step("kubectl get memberclusters   (probed by the operator through their kubeconfig Secrets)");
    let members: Api<MemberCluster> = Api::all(hub.clone());
    wait_for(
        || async {
            Ok(members
                .list(&ListParams::default())
                .await?
                .iter()
                .all(member_ready))
        },
        "member clusters Ready",
    )
    .await?;
    print_members(&members.list(&ListParams::default()).await?.items);
    gold_tier_platform(testbed, &members).await?;
    check_example_registrations(&members.list(&ListParams::default()).await?.items)?;

    step("Creating the shared Grafana instance on grafana-1 (examples/grafana-instance.yaml)");
    let grafana_cluster = testbed.cluster("grafana-1")?.client().clone();
    stacksmith_testbed::ensure_namespace(&grafana_cluster, "grafana").await?;
    let grafana: DynamicObject = serde_yaml::from_str(EXAMPLE_GRAFANA)?;
    let grafanas: Api<DynamicObject> = Api::namespaced_with(
        grafana_cluster.clone(),
        "grafana",
        &api_resource(ChildKind::Grafana),
    );
    grafanas.create(&PostParams::default(), &grafana).await?;

    step(
        "Applying the platform's tenant policies of examples/gitops/platform/ (who may claim which customer: the operator requires one)",
    );
    apply_policies(hub).await?;

    step(
        "Applying the customer stacks of examples/gitops/customers/ to the hub (server-side apply, as GitOps does)",
    );
    stacksmith_testbed::ensure_namespace(hub, "customers").await?;
    let stacks: Api<CustomerStack> = Api::namespaced(hub.clone(), "customers");
    let mut names = Vec::new();
    for (path, text) in EXAMPLE_STACKS {
        let stack: CustomerStack =
            serde_yaml::from_str(text).with_context(|| format!("reading {path}"))?;
        let name = stack.name_any();
        stacks
            .patch(
                &name,
                &PatchParams::apply("stacksmith-demo"),
                &Patch::Apply(&stack),
            )
            .await
            .with_context(|| format!("applying {path}"))?;
        println!("  customerstack.stacksmith.io/{name} serverside-applied   ({path})");
        names.push(name);
    }
    let started = Instant::now();
    wait_for(
        || all_ready_status(&stacks, &names, "True"),
        "every example CustomerStack Ready",
    )
    .await?;
    println!("  all Ready after {:.1} s", started.elapsed().as_secs_f32());
    for name in &names {
        print_stack(&stacks.get(name).await?);
    }

    step(
        "Breaking the shared Grafana instance (its deployment fails) and watching the root cause arrive",
    );
    let mut on_shared = Vec::new();
    for name in &names {
        if stacks
            .get(name)
            .await?
            .spec
            .dashboards
            .dedicated_grafana
            .is_none()
        {
            on_shared.push(name.clone());
        }
    }
    let annotate = json!({"metadata": {"annotations": {OUTCOME_ANNOTATION: "degraded"}}});
    grafanas
        .patch("shared", &PatchParams::default(), &Patch::Merge(&annotate))
        .await?;
    wait_for(
        || all_ready_status(&stacks, &on_shared, "False"),
        "every CustomerStack on the shared Grafana to report the failure",
    )
    .await?;
    for name in &names {
        print_stack(&stacks.get(name).await?);
    }
    let on_own: Vec<String> = names
        .iter()
        .filter(|n| !on_shared.contains(n))
        .cloned()
        .collect();
    if !all_ready_status(&stacks, &on_own, "True").await? {
        bail!("a stack on a Grafana of its own lost Ready when the shared one broke: {on_own:?}");
    }
    println!(
        "\n  {} kept Ready: its Grafana is its own",
        on_own.join(", ")
    );
    Ok(())
}

/// The platform's side of the gold tier on `prometheus-1`: the Alertmanager every tenant sends
/// to (examples/alertmanager.yaml), the registration naming it, and the StorageClass and volumes
/// the gold stack's Prometheus claims (a real cluster has a provisioner; the test bed has none).
async fn gold_tier_platform(testbed: &TestBed, members: &Api<MemberCluster>) -> anyhow::Result<()> {
    step(
        "The platform's side of the gold tier on prometheus-1: its Alertmanager (examples/alertmanager.yaml), a StorageClass and two volumes",
    );
    let cluster = testbed.cluster("prometheus-1")?.client().clone();
    stacksmith_testbed::ensure_namespace(&cluster, "monitoring").await?;
    let alertmanager: DynamicObject = serde_yaml::from_str(EXAMPLE_ALERTMANAGER)?;
    let alertmanagers: Api<DynamicObject> = Api::namespaced_with(
        cluster.clone(),
        "monitoring",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Alertmanager"),
            "alertmanagers",
        ),
    );
    match alertmanagers
        .create(&PostParams::default(), &alertmanager)
        .await
    {
        Ok(_) => println!("  alertmanager.monitoring.coreos.com/main created in monitoring"),
        // A test bed whose Prometheus side is simulated serves only the kinds stacksmith writes.
        Err(kube::Error::Api(status)) if status.code == 404 => {
            println!("  (this test bed serves no Alertmanager kind: skipped)");
        }
        Err(err) => return Err(err).context("creating the Alertmanager"),
    }
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": GOLD_STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
    }))?;
    Api::<StorageClass>::all(cluster.clone())
        .create(&PostParams::default(), &class)
        .await
        .context("creating the StorageClass")?;
    for replica in 0..2 {
        let name = format!("demo-volume-{replica}");
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": GOLD_VOLUME_SIZE},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": GOLD_STORAGE_CLASS,
                "hostPath": {"path": format!("/tmp/stacksmith-demo/{name}")},
            },
        }))?;
        Api::<PersistentVolume>::all(cluster.clone())
            .create(&PostParams::default(), &volume)
            .await
            .with_context(|| format!("creating the volume {name}"))?;
    }
    println!(
        "  storageclass {GOLD_STORAGE_CLASS} and 2 volumes of {GOLD_VOLUME_SIZE} created (no provisioner here)"
    );
    let (path, text) = EXAMPLE_REGISTRATIONS[0];
    let example: MemberCluster =
        serde_yaml::from_str(text).with_context(|| format!("reading {path}"))?;
    members
        .patch(
            &example.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "alertmanagers": example.spec.alertmanagers,
                "prometheusUrlTemplate": example.spec.prometheus_url_template,
                "prometheusExposure": example.spec.prometheus_exposure,
            }})),
        )
        .await
        .context("naming the Alertmanager and the exposure in the registration of prometheus-1")?;
    println!(
        "  memberclusters/prometheus-1 patched: spec.alertmanagers and spec.prometheusExposure as in {path}"
    );
    Ok(())
}

/// Whether every named stack's `Ready` condition has `status`, for its current generation.
/// Applies the example's `TenantPolicy` objects (server-side apply, as GitOps does).
async fn apply_policies(hub: &Client) -> anyhow::Result<()> {
    let (path, text) = EXAMPLE_POLICIES;
    let policies: Api<TenantPolicy> = Api::all(hub.clone());
    for document in serde_yaml::Deserializer::from_str(text) {
        let policy =
            TenantPolicy::deserialize(document).with_context(|| format!("reading {path}"))?;
        let name = policy.name_any();
        policies
            .patch(
                &name,
                &PatchParams::apply("stacksmith-demo"),
                &Patch::Apply(&policy),
            )
            .await
            .with_context(|| format!("applying {path}"))?;
        println!(
            "  tenantpolicy.stacksmith.io/{name} serverside-applied   (customers {}; {path})",
            policy.spec.customers.join(", ")
        );
    }
    Ok(())
}

async fn all_ready_status(
    stacks: &Api<CustomerStack>,
    names: &[String],
    status: &str,
) -> anyhow::Result<bool> {
    for name in names {
        let stack = stacks.get(name).await?;
        if stack.ready_condition().map(|c| c.status.as_str()) != Some(status) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Fails unless every registration of the GitOps example has the spec of the `MemberCluster`
/// the test bed registered under that name.
fn check_example_registrations(registered: &[MemberCluster]) -> anyhow::Result<()> {
    for (path, text) in EXAMPLE_REGISTRATIONS {
        let example: MemberCluster =
            serde_yaml::from_str(text).with_context(|| format!("reading {path}"))?;
        let name = example.name_any();
        let Some(live) = registered.iter().find(|m| m.name_any() == name) else {
            bail!("{path}: the test bed registered no MemberCluster {name}");
        };
        if live.spec != example.spec {
            bail!("{path}: its spec differs from the MemberCluster {name} the test bed registered");
        }
    }
    println!(
        "  (the registrations in examples/gitops/clusters/ describe these clusters: same specs)"
    );
    Ok(())
}

fn member_ready(member: &MemberCluster) -> bool {
    member.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

async fn wait_for<F, Fut>(check: F, what: &str) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {} s waiting for {what}", WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_members(members: &[MemberCluster]) {
    println!(
        "  {:<14} {:<11} {:<6} {:<8} {:<8} MESSAGE",
        "NAME", "ROLES", "READY", "VERSION", "REASON"
    );
    for member in members {
        let status = member.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        let roles: Vec<&str> = member.spec.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<14} {:<11} {:<6} {:<8} {:<8} {}",
            member.name_any(),
            roles.join(","),
            ready.map_or("-", |c| c.status.as_str()),
            status.server_version.as_deref().unwrap_or("-"),
            ready.map_or("-", |c| c.reason.as_str()),
            ready.map_or("", |c| c.message.as_str()),
        );
    }
}

fn print_stack(stack: &CustomerStack) {
    let Some(status) = &stack.status else { return };
    println!(
        "\n  kubectl get customerstack {}\n  NAME     CUSTOMER   READY   CHILDREN   REASON",
        stack.name_any()
    );
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    println!(
        "  {:<8} {:<10} {:<7} {:<10} {}",
        stack.name_any(),
        stack.spec.customer,
        ready.map_or("-", |c| c.status.as_str()),
        status.children_ready.as_deref().unwrap_or("-"),
        ready.map_or("-", |c| c.reason.as_str())
    );
    if let Some(ready) = ready {
        println!("\n  Ready: {} — {}", ready.reason, ready.message);
    }
    println!(
        "\n  {:<12} {:<18} {:<32} {:<12} {:<20} MESSAGE",
        "CLUSTER", "KIND", "NAMESPACE/NAME", "VERDICT", "REASON"
    );
    for child in &status.children {
        let message: String = child.message.chars().take(90).collect();
        println!(
            "  {:<12} {:<18} {:<32} {:<12} {:<20} {}",
            child.cluster,
            child.kind,
            format!("{}/{}", child.namespace, child.name),
            format!("{:?}", child.verdict),
            child.reason,
            message
        );
    }
}

/// The operator's requests so far, per cluster: counted on its clients, not estimated.
fn print_requests(
    calls: &std::collections::BTreeMap<stacksmith_controller::api_calls::CallKey, u64>,
) {
    step("Requests the operator made (counted on its own clients; every watch starts with a LIST)");
    let mut clusters: Vec<&str> = calls.keys().map(|k| k.cluster.as_str()).collect();
    clusters.dedup();
    for cluster in clusters {
        let sum = |keep: &dyn Fn(stacksmith_controller::api_calls::Verb) -> bool| -> u64 {
            stacksmith_controller::api_calls::total(calls, |k| k.cluster == cluster && keep(k.verb))
        };
        println!(
            "    {cluster:<14} writes {:>4}   GET/LIST {:>3}   watches {:>3}   discovery {:>3}",
            sum(&|v| v.is_write()),
            sum(&|v| v.is_read()),
            sum(&|v| v == stacksmith_controller::api_calls::Verb::Watch),
            sum(&|v| v == stacksmith_controller::api_calls::Verb::Discovery),
        );
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

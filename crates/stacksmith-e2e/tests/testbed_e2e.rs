//! End-to-end tests of the test bed itself, on real kube-apiservers: TLS and RBAC, the hub's
//! schema validation of `CustomerStack`, member registration, and the simulator's statuses
//! against the real upstream CRDs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_core::ChildKind;
use stacksmith_e2e::boxed;
use stacksmith_testbed::harness::{self, test};
use stacksmith_testbed::simulator::status::{World, differs, simulated_status};
use stacksmith_testbed::simulator::{OUTCOME_ANNOTATION, Outcome, api_resource};
use stacksmith_testbed::{CrdSource, HUB, PrometheusSide, TestBed, TestBedOptions, kubeconfig};

/// The simulator plays both child operators here: these tests are about the simulator itself
/// (the real prometheus-operator has suites of its own).
fn options(name: String) -> TestBedOptions {
    let mut options = TestBedOptions::new(name);
    options.prometheus_side = PrometheusSide::Simulated;
    options
}

fn main() -> ExitCode {
    harness::run(
        "testbed-e2e",
        options,
        vec![
            test("clusters_answer_with_verified_tls_only", |tb| {
                Box::pin(boxed(clusters_answer_with_verified_tls_only(tb)))
            }),
            test("operator_identity_is_limited_by_rbac", |tb| {
                Box::pin(boxed(operator_identity_is_limited_by_rbac(tb)))
            }),
            test(
                "malformed_customer_stacks_are_rejected_naming_the_field",
                |tb| {
                    Box::pin(boxed(
                        malformed_customer_stacks_are_rejected_naming_the_field(tb),
                    ))
                },
            ),
            test("valid_customer_stack_is_accepted_with_defaults", |tb| {
                Box::pin(boxed(valid_customer_stack_is_accepted_with_defaults(tb)))
            }),
            test("remotes_are_registered_as_member_clusters", |tb| {
                Box::pin(boxed(remotes_are_registered_as_member_clusters(tb)))
            }),
            test(
                "simulated_prometheus_statuses_survive_the_upstream_crd",
                |tb| Box::pin(boxed(simulated_statuses_survive(tb, Family::Prometheus))),
            ),
            test(
                "simulated_grafana_statuses_survive_the_upstream_crd",
                |tb| Box::pin(boxed(simulated_statuses_survive(tb, Family::Grafana))),
            ),
            test("simulator_never_and_slow_outcomes", |tb| {
                Box::pin(boxed(simulator_never_and_slow_outcomes(tb)))
            }),
            test("separate_test_bed_leaves_nothing_behind", |_| {
                Box::pin(boxed(separate_test_bed_leaves_nothing_behind()))
            }),
        ],
    )
}

async fn clusters_answer_with_verified_tls_only(tb: &TestBed) -> anyhow::Result<()> {
    ensure!(
        tb.clusters().len() == 3,
        "expected hub + 2 remotes, got {}",
        tb.clusters().len()
    );
    for cluster in tb.clusters() {
        let version = cluster
            .client()
            .apiserver_version()
            .await
            .with_context(|| format!("version of {}", cluster.name()))?;
        ensure!(
            version.git_version == tb.control_plane().kubernetes_version,
            "{}: unexpected version {}",
            cluster.name(),
            version.git_version
        );
        ensure!(
            cluster.server_url().starts_with("https://127.0.0.1:"),
            "{} not on 127.0.0.1",
            cluster.name()
        );
    }
    // A kubeconfig that trusts another CA must fail TLS verification against the same server.
    let hub = tb.hub()?;
    let foreign_ca = rcgen_ca_pem()?;
    let token = token_of(hub.admin_kubeconfig())?;
    let yaml = kubeconfig::render("hub", &hub.server_url(), &foreign_ca, "admin", &token);
    let client = kubeconfig::client_from_yaml("hub", &yaml).await?;
    let result = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await?;
    ensure!(
        result.is_err(),
        "a client trusting a foreign CA was able to talk to the hub"
    );
    Ok(())
}

fn rcgen_ca_pem() -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    Ok(params.self_signed(&key)?.pem())
}

fn token_of(kubeconfig_yaml: &str) -> anyhow::Result<String> {
    kubeconfig_yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .map(str::to_owned)
        .context("no token in kubeconfig")
}

async fn operator_identity_is_limited_by_rbac(tb: &TestBed) -> anyhow::Result<()> {
    let remote = tb.cluster("prometheus-1")?;
    let operator =
        kubeconfig::client_from_yaml("prometheus-1", remote.operator_kubeconfig()).await?;
    let prometheuses: Api<DynamicObject> =
        Api::all_with(operator.clone(), &api_resource(ChildKind::Prometheus));
    prometheuses
        .list(&ListParams::default())
        .await
        .context("the operator identity may list Prometheuses")?;
    // It may list every kind (as the remote chart's `tenantNamespaceDeletion` grants: how a
    // tenant namespace is proven empty before it is deleted) and manage Secrets (the data path's
    // credentials, as the remote chart's `dataPath` grants: create, patch, delete), but never
    // replace a Secret (no `update`), nor read or delete a ConfigMap.
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), "kube-system");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "any"}}))?;
    match secrets
        .replace("any", &kube::api::PostParams::default(), &secret)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => {
            bail!("the operator identity replacing a Secret should be Forbidden, got {other:?}")
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(operator, "kube-system");
    match config_maps.get("kube-root-ca.crt").await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => {
            bail!("the operator identity reading a ConfigMap should be Forbidden, got {other:?}")
        }
    }
    match config_maps
        .delete("kube-root-ca.crt", &kube::api::DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        other => {
            bail!("the operator identity deleting a ConfigMap should be Forbidden, got {other:?}")
        }
    }
}

fn stack(customer: Value, overrides: Value) -> Value {
    let mut spec = json!({
        "customer": customer,
        "metrics": {"cluster": "prometheus-1"},
        "dashboards": {"cluster": "grafana-1", "instanceSelector": {"matchLabels": {"dashboards": "grafana"}}},
    });
    harness::merge_json(&mut spec, overrides);
    json!({"apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack", "metadata": {"name": "s"}, "spec": spec})
}

async fn malformed_customer_stacks_are_rejected_naming_the_field(
    tb: &TestBed,
) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    create_namespace(&hub, "validation").await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(hub, "validation", &ApiResource::erase::<CustomerStack>(&()));
    let cases = [
        (
            "missing customer",
            stack(json!("acme"), json!({"customer": null})),
            "spec.customer",
        ),
        (
            "bad customer name",
            stack(json!("Acme_Corp"), json!({})),
            "spec.customer",
        ),
        (
            "unknown deletionPolicy",
            stack(json!("acme"), json!({"deletionPolicy": "Shred"})),
            "spec.deletionPolicy",
        ),
        (
            "negative replicas",
            stack(json!("acme"), json!({"metrics": {"replicas": -1}})),
            "spec.metrics.replicas",
        ),
        (
            "bad retention",
            stack(json!("acme"), json!({"metrics": {"retention": "forever"}})),
            "spec.metrics.retention",
        ),
        (
            "missing cluster",
            stack(json!("acme"), json!({"metrics": {"cluster": null}})),
            "spec.metrics.cluster",
        ),
        (
            "bad cluster name",
            stack(
                json!("acme"),
                json!({"dashboards": {"cluster": "Grafana One"}}),
            ),
            "spec.dashboards.cluster",
        ),
        (
            "dashboard with json and url",
            stack(
                json!("acme"),
                json!({"dashboards": {"dashboards": [{"name": "d", "json": "{}", "url": "https://x"}]}}),
            ),
            "spec.dashboards.dashboards",
        ),
        ("wrong type", stack(json!(42), json!({})), "spec.customer"),
    ];
    let mut problems = Vec::new();
    for (what, object, field) in cases {
        let object: DynamicObject = serde_json::from_value(object)?;
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) if status.code == 422 => {
                if !status.message.contains(field) {
                    problems.push(format!(
                        "{what}: message does not name {field}: {}",
                        status.message
                    ));
                }
            }
            Ok(_) => {
                problems.push(format!("{what}: accepted"));
                api.delete("s", &DeleteParams::default()).await?;
            }
            Err(other) => problems.push(format!("{what}: unexpected error {other}")),
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

async fn valid_customer_stack_is_accepted_with_defaults(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    create_namespace(&hub, "defaults").await?;
    let api: Api<CustomerStack> = Api::namespaced(hub, "defaults");
    let object: CustomerStack = serde_json::from_value(stack(
        json!("acme"),
        json!({"metrics": {"alertingRules": [{"name": "core", "rules": [{"alert": "Down", "expr": "up == 0", "for": "5m"}]}]},
               "dashboards": {"dashboards": [{"name": "overview", "json": "{}"}]}}),
    ))?;
    let created = api.create(&PostParams::default(), &object).await?;
    ensure!(created.spec.metrics.replicas == 1, "replicas default");
    ensure!(created.spec.metrics.retention == "15d", "retention default");
    ensure!(
        created.spec.deletion_policy == stacksmith_api::DeletionPolicy::Delete,
        "deletionPolicy default"
    );
    let raw: Api<DynamicObject> = Api::namespaced_with(
        tb.hub()?.client().clone(),
        "defaults",
        &ApiResource::erase::<CustomerStack>(&()),
    );
    let back = serde_json::to_value(raw.get("s").await?)?;
    ensure!(
        back["spec"]["metrics"]["alertingRules"][0]["rules"][0]["for"] == "5m",
        "nothing pruned: {back}"
    );
    api.delete("s", &DeleteParams::default()).await?;
    Ok(())
}

async fn remotes_are_registered_as_member_clusters(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let listed = members.list(&ListParams::default()).await?;
    let mut names: Vec<String> = listed.iter().map(|m| m.name_any()).collect();
    names.sort();
    ensure!(names == ["grafana-1", "prometheus-1"], "members: {names:?}");
    for member in &listed {
        let reference = &member.spec.kubeconfig_secret_ref;
        let secrets: Api<Secret> = Api::namespaced(hub.clone(), &reference.namespace);
        let secret = secrets.get(&reference.name).await?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .context("kubeconfig key")?;
        let client =
            kubeconfig::client_from_yaml(&member.name_any(), std::str::from_utf8(&bytes.0)?)
                .await?;
        client
            .apiserver_version()
            .await
            .with_context(|| format!("the registered kubeconfig of {} works", member.name_any()))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Family {
    Prometheus,
    Grafana,
}

fn spec_for(kind: ChildKind) -> Value {
    let selector = json!({"matchLabels": {"dashboards": "grafana"}});
    match kind {
        // Empty selectors select every rule and monitor (an absent one would select none, and
        // the simulator, as prometheus-operator, binds only what a Prometheus selects).
        ChildKind::Prometheus => json!({"replicas": 2, "retention": "15d",
            "ruleSelector": {}, "serviceMonitorSelector": {}}),
        ChildKind::PrometheusRule => {
            json!({"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": "up == 0"}]}]})
        }
        ChildKind::ServiceMonitor => {
            json!({"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "web"}]})
        }
        ChildKind::AlertmanagerConfig => json!({"route": {"receiver": "null"},
            "receivers": [{"name": "null"}]}),
        ChildKind::Grafana => json!({"version": "12.1.0"}),
        ChildKind::GrafanaFolder => json!({"instanceSelector": selector, "title": "Acme"}),
        ChildKind::GrafanaDatasource => json!({"instanceSelector": selector,
            "datasource": {"name": "acme-prometheus", "type": "prometheus", "access": "proxy", "url": "http://p.example:9090"}}),
        ChildKind::GrafanaDashboard => json!({"instanceSelector": selector, "json": "{}"}),
    }
}

async fn create_child(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
    outcome: Outcome,
    labels: Value,
) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": kind.api_version(), "kind": kind.as_str(),
        "metadata": {"name": name, "labels": labels, "annotations": {OUTCOME_ANNOTATION: outcome.as_str()}},
        "spec": spec_for(kind),
    }))?;
    api.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("create {kind} {ns}/{name}"))?;
    Ok(())
}

async fn get(client: &Client, kind: ChildKind, ns: &str, name: &str) -> anyhow::Result<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// Waits until the object's status read back from the API server equals what the simulator
/// computes for it: anything the CRD pruned or rejected would never match.
async fn wait_for_expected_status(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
    outcome: Outcome,
    world_objects: &[(ChildKind, &str)],
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let object = get(client, kind, ns, name).await?;
        let mut grafanas = Vec::new();
        let mut prometheuses = Vec::new();
        for (k, n) in world_objects {
            let o = get(client, *k, ns, n).await?;
            if *k == ChildKind::Grafana {
                grafanas.push(o)
            } else {
                prometheuses.push(o)
            }
        }
        let world = World {
            grafanas: &grafanas,
            prometheuses: &prometheuses,
            status_for_configuration_resources: true,
        };
        let expected = simulated_status(kind, &object, outcome, &world, "2000-01-01T00:00:00Z")
            .context("expected a status")?;
        if !differs(object.get("status"), &expected) {
            return Ok(object);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{kind} {ns}/{name} ({outcome}): status read back {}\n  differs from what the simulator writes {}",
                object.get("status").unwrap_or(&Value::Null),
                expected
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WRITTEN_OUTCOMES: [Outcome; 6] = [
    Outcome::Healthy,
    Outcome::Degraded,
    Outcome::Rolling,
    Outcome::NoMatchingInstance,
    Outcome::InvalidSpec,
    Outcome::Suspended,
];

async fn simulated_statuses_survive(tb: &TestBed, family: Family) -> anyhow::Result<()> {
    if tb.crd_source() != CrdSource::Upstream {
        // A user's machine without the upstream CRDs: the statuses are checked against the
        // project's minimal CRDs (they must still be written through the status subresource
        // and read back unchanged); with the upstream CRDs present, against their schemas.
        println!(
            "upstream CRDs not found (set STACKSMITH_UPSTREAM_CRDS): checking against the minimal CRDs"
        );
    }
    let (cluster, anchor_kind, dependents, world_kind) = match family {
        Family::Prometheus => (
            "prometheus-1",
            ChildKind::Prometheus,
            [ChildKind::PrometheusRule, ChildKind::ServiceMonitor].as_slice(),
            ChildKind::Prometheus,
        ),
        Family::Grafana => (
            "grafana-1",
            ChildKind::Grafana,
            [
                ChildKind::GrafanaFolder,
                ChildKind::GrafanaDatasource,
                ChildKind::GrafanaDashboard,
            ]
            .as_slice(),
            ChildKind::Grafana,
        ),
    };
    let client = tb.cluster(cluster)?.client().clone();
    // The anchor kind itself, every outcome, each in a namespace of its own.
    for outcome in WRITTEN_OUTCOMES {
        let ns = format!(
            "sim-{}-{}",
            anchor_kind.as_str().to_lowercase(),
            outcome.as_str()
        );
        create_namespace(&client, &ns).await?;
        create_child(
            &client,
            anchor_kind,
            &ns,
            "x",
            outcome,
            json!({"dashboards": "grafana"}),
        )
        .await?;
        wait_for_expected_status(&client, anchor_kind, &ns, "x", outcome, &[]).await?;
    }
    // The dependent kinds next to one healthy anchor (a ready Grafana / a Prometheus).
    let ns = format!("sim-{}-dependents", anchor_kind.as_str().to_lowercase());
    create_namespace(&client, &ns).await?;
    create_child(
        &client,
        world_kind,
        &ns,
        "anchor",
        Outcome::Healthy,
        json!({"dashboards": "grafana"}),
    )
    .await?;
    wait_for_expected_status(&client, world_kind, &ns, "anchor", Outcome::Healthy, &[]).await?;
    for kind in dependents {
        for outcome in WRITTEN_OUTCOMES {
            let name = format!("{}-{}", kind.as_str().to_lowercase(), outcome.as_str());
            create_child(&client, *kind, &ns, &name, outcome, json!({})).await?;
            let back = wait_for_expected_status(
                &client,
                *kind,
                &ns,
                &name,
                outcome,
                &[(world_kind, "anchor")],
            )
            .await?;
            ensure!(back.get("status").is_some(), "{kind} {name}: no status");
        }
    }
    Ok(())
}

async fn simulator_never_and_slow_outcomes(tb: &TestBed) -> anyhow::Result<()> {
    let client = tb.cluster("prometheus-1")?.client().clone();
    let ns = "sim-timing";
    create_namespace(&client, ns).await?;
    let scenario: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "scenario", "namespace": "stacksmith-simulator"},
        "data": {"slowDelayMs": "1500", "Prometheus.sim-timing.from-scenario": "degraded"},
    }))?;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "stacksmith-simulator");
    cms.create(&PostParams::default(), &scenario).await?;
    // The scenario ConfigMap chooses an outcome for an object that has no annotation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::Prometheus));
    let plain: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "from-scenario"}, "spec": {"replicas": 1}}),
    )?;
    api.create(&PostParams::default(), &plain).await?;
    wait_for_expected_status(
        &client,
        ChildKind::Prometheus,
        ns,
        "from-scenario",
        Outcome::Degraded,
        &[],
    )
    .await?;

    let started = tokio::time::Instant::now();
    create_child(
        &client,
        ChildKind::Prometheus,
        ns,
        "never",
        Outcome::Never,
        json!({}),
    )
    .await?;
    create_child(
        &client,
        ChildKind::Prometheus,
        ns,
        "slow",
        Outcome::Slow,
        json!({}),
    )
    .await?;
    let back = wait_for_expected_status(
        &client,
        ChildKind::Prometheus,
        ns,
        "slow",
        Outcome::Healthy,
        &[],
    )
    .await?;
    ensure!(
        started.elapsed() >= Duration::from_millis(1400),
        "slow answered after {:?}",
        started.elapsed()
    );
    ensure!(back.get("status").is_some(), "slow has a status");
    let never = get(&client, ChildKind::Prometheus, ns, "never").await?;
    ensure!(
        never
            .get("status")
            .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty())),
        "never got a status: {never}"
    );
    cms.delete("scenario", &DeleteParams::default()).await?;
    Ok(())
}

async fn separate_test_bed_leaves_nothing_behind() -> anyhow::Result<()> {
    let mut options = TestBedOptions::new(format!("teardown-{}", std::process::id()));
    options.remotes.truncate(1);
    options.simulator = false;
    let testbed = TestBed::start(options).await?;
    let dir = testbed.dir().to_path_buf();
    let log_dir = dir.clone();
    let pids = stacksmith_testbed::process::server_pids_in(&log_dir);
    ensure!(
        pids.len() >= 3,
        "expected etcd + 2 apiservers (+ controller managers), found pids {pids:?}"
    );
    ensure!(
        pids.iter()
            .all(|p| stacksmith_testbed::process::process_exists(*p)),
        "servers running"
    );
    ensure!(
        testbed.clusters().iter().any(|c| c.name() == HUB),
        "has a hub"
    );
    testbed.shutdown().await?;
    ensure!(!dir.exists(), "{} still exists", dir.display());
    let alive: Vec<u32> = pids
        .into_iter()
        .filter(|p| stacksmith_testbed::process::process_exists(*p))
        .collect();
    ensure!(alive.is_empty(), "processes left running: {alive:?}");
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    Ok(stacksmith_testbed::ensure_namespace(client, name).await?)
}

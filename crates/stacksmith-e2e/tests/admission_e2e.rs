//! Our own API refuses bad input at admission: each CEL rule and schema bound of the
//! `CustomerStack` and `MemberCluster` CRDs, tried on a real hub API server (the test bed's
//! Kubernetes, v1.37.2). Every case is a real write that the hub refuses with `422 Invalid` and a
//! message naming the field; a valid stack (with every bound reached, not crossed) is accepted,
//! and server-side apply merges the list maps by name, spec and status alike.
//!
//! The CRDs are installed by the test bed when it starts (`child_crds::install_typed`): the API
//! server estimates the cost of every CEL rule then and refuses a CRD over its budget, so a
//! suite that starts at all has CRDs whose rules fit.
//!
//! Run with `--nocapture` to see the messages the API server returns (docs/api.md quotes them).

use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stacksmith_api::validation::bounds::{
    DASHBOARD_JSON_MAX_LENGTH, RULE_EXPR_MAX_LENGTH, RULE_MAP_MAX_PROPERTIES,
    SCRAPE_NAMESPACES_MAX_ITEMS,
};
use stacksmith_api::validation::cel;
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_e2e::boxed;
use stacksmith_testbed::harness::{self, test};
use stacksmith_testbed::{PrometheusSide, TestBed, TestBedOptions};

/// A hub and nothing else: these tests write `CustomerStack`s and `MemberCluster`s only.
fn options(name: String) -> TestBedOptions {
    let mut options = TestBedOptions::new(name);
    options.remotes.clear();
    options.controller_manager = false;
    options.simulator = false;
    options.register_members = false;
    options.upstream_crds = None;
    options.prometheus_side = PrometheusSide::Simulated;
    options.kubectl = false;
    options.member_link = None;
    options
}

fn main() -> ExitCode {
    harness::run(
        "admission-e2e",
        options,
        vec![
            test("crds_are_served_with_their_cel_rules", |tb| {
                Box::pin(boxed(crds_are_served_with_their_cel_rules(tb)))
            }),
            test("customer_is_immutable", |tb| {
                Box::pin(boxed(customer_is_immutable(tb)))
            }),
            test(
                "names_are_unique_in_scrape_alerting_rules_and_dashboards",
                |tb| Box::pin(boxed(names_are_unique(tb))),
            ),
            test("member_cluster_roles_and_url_template", |tb| {
                Box::pin(boxed(member_cluster_roles_and_url_template(tb)))
            }),
            test("bounds_refuse_oversized_input", |tb| {
                Box::pin(boxed(bounds_refuse_oversized_input(tb)))
            }),
            test("resources_hold_cpu_and_memory_only", |tb| {
                Box::pin(boxed(resources_hold_cpu_and_memory_only(tb)))
            }),
            test(
                "a_valid_stack_at_the_bounds_is_accepted_and_applies_merge_by_name",
                |tb| Box::pin(boxed(valid_stack_accepted_and_applies_merge_by_name(tb))),
            ),
        ],
    )
}

const API_VERSION: &str = "stacksmith.io/v1alpha1";

fn stacks(tb: &TestBed, namespace: &str) -> anyhow::Result<Api<DynamicObject>> {
    Ok(Api::namespaced_with(
        tb.hub()?.client().clone(),
        namespace,
        &ApiResource::erase::<CustomerStack>(&()),
    ))
}

fn members(tb: &TestBed) -> anyhow::Result<Api<DynamicObject>> {
    Ok(Api::all_with(
        tb.hub()?.client().clone(),
        &ApiResource::erase::<MemberCluster>(&()),
    ))
}

/// A valid stack named `name` for `customer`, with `overrides` merged into its spec.
fn stack(name: &str, customer: &str, overrides: Value) -> Value {
    let mut spec = json!({
        "customer": customer,
        "metrics": {"cluster": "prometheus-1"},
        "dashboards": {"cluster": "grafana-1", "instanceSelector": {"matchLabels": {"dashboards": "grafana"}}},
    });
    harness::merge_json(&mut spec, overrides);
    json!({"apiVersion": API_VERSION, "kind": "CustomerStack", "metadata": {"name": name}, "spec": spec})
}

fn member(name: &str, spec: Value) -> Value {
    let mut full = json!({
        "kubeconfigSecretRef": {"namespace": "stacksmith-system", "name": format!("{name}-kubeconfig")},
    });
    harness::merge_json(&mut full, spec);
    json!({"apiVersion": API_VERSION, "kind": "MemberCluster", "metadata": {"name": name}, "spec": full})
}

fn object(value: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(value)?)
}

/// Checks that a write was refused with `422 Invalid` and a message holding every one of
/// `expected` (the field first); returns the message. An accepted write is a problem.
fn refused(
    what: &str,
    result: Result<DynamicObject, kube::Error>,
    expected: &[&str],
) -> Result<String, String> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 422 => {
            println!("{what}: {}", status.message);
            let missing: Vec<&&str> = expected
                .iter()
                .filter(|e| !status.message.contains(**e))
                .collect();
            if missing.is_empty() {
                Ok(status.message)
            } else {
                Err(format!(
                    "{what}: the message does not say {missing:?}: {}",
                    status.message
                ))
            }
        }
        Err(other) => Err(format!("{what}: expected 422 Invalid, got {other}")),
        Ok(accepted) => Err(format!(
            "{what}: accepted (expected 422 naming {}): {}",
            expected.first().copied().unwrap_or_default(),
            accepted.data["spec"]
        )),
    }
}

/// Creates each case in `namespace` (or cluster-wide for `MemberCluster`s); every one must be
/// refused. Accepted ones are deleted again so that the next case can use the name.
async fn expect_refused(
    api: &Api<DynamicObject>,
    cases: Vec<(&str, Value, Vec<&str>)>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (what, value, expected) in cases {
        let name = value["metadata"]["name"]
            .as_str()
            .context("a case has no name")?
            .to_owned();
        let result = api.create(&PostParams::default(), &object(value)?).await;
        let accepted = result.is_ok();
        if let Err(problem) = refused(what, result, &expected) {
            problems.push(problem);
        }
        if accepted {
            api.delete(&name, &DeleteParams::default()).await?;
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

// --- the CRDs ------------------------------------------------------------------------------------

/// The hub serves both CRDs with their CEL rules and list types: they were neither dropped (an
/// API server without CEL would do that silently) nor refused for their cost (the test bed would
/// not have started).
async fn crds_are_served_with_their_cel_rules(tb: &TestBed) -> anyhow::Result<()> {
    let version = &tb.control_plane().kubernetes_version;
    println!("hub: Kubernetes {version}");
    let crds: Api<CustomResourceDefinition> = Api::all(tb.hub()?.client().clone());
    let mut rules = Vec::new();
    for name in [
        "customerstacks.stacksmith.io",
        "memberclusters.stacksmith.io",
    ] {
        let crd = crds
            .get(name)
            .await
            .with_context(|| format!("get {name}"))?;
        let served = serde_json::to_value(&crd)?;
        collect(
            &served["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            &mut rules,
        );
    }
    for expected in [
        cel::IMMUTABLE,
        cel::ONLY_CPU_AND_MEMORY,
        cel::PROMETHEUS_NEEDS_URL_TEMPLATE,
        "x-kubernetes-list-type: map",
        "x-kubernetes-list-type: set",
    ] {
        ensure!(
            rules.iter().any(|r| r == expected),
            "the hub ({version}) does not serve {expected:?}; it serves {rules:?}"
        );
    }
    Ok(())
}

/// Every CEL rule text and list type in a served schema.
fn collect(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for rule in map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(text) = rule["rule"].as_str() {
                    out.push(text.to_owned());
                }
            }
            if let Some(list_type) = map.get("x-kubernetes-list-type").and_then(Value::as_str) {
                out.push(format!("x-kubernetes-list-type: {list_type}"));
            }
            map.values().for_each(|v| collect(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

// --- CustomerStack -------------------------------------------------------------------------------

/// `spec.customer` cannot change, by apply or by update; another field can.
async fn customer_is_immutable(tb: &TestBed) -> anyhow::Result<()> {
    let ns = "admission-immutable";
    stacksmith_testbed::ensure_namespace(tb.hub()?.client(), ns).await?;
    let api = stacks(tb, ns)?;
    let apply = PatchParams::apply("admission-e2e").force();
    api.patch("s", &apply, &Patch::Apply(stack("s", "acme", json!({}))))
        .await
        .context("create the stack")?;
    api.patch(
        "s",
        &apply,
        &Patch::Apply(stack("s", "acme", json!({"metrics": {"replicas": 2}}))),
    )
    .await
    .context("another change to the spec goes through")?;
    let mut problems = Vec::new();
    let expected = ["spec.customer", cel::CUSTOMER_IMMUTABLE_MESSAGE];
    let result = api
        .patch("s", &apply, &Patch::Apply(stack("s", "globex", json!({}))))
        .await;
    if let Err(problem) = refused("apply a new customer", result, &expected) {
        problems.push(problem);
    }
    let mut current = api.get("s").await?;
    current.data["spec"]["customer"] = json!("globex");
    let result = api.replace("s", &PostParams::default(), &current).await;
    if let Err(problem) = refused("update to a new customer", result, &expected) {
        problems.push(problem);
    }
    let stored = api.get("s").await?;
    ensure!(
        stored.data["spec"]["customer"] == "acme",
        "the customer changed: {}",
        stored.data["spec"]
    );
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Checks that a server-side apply was refused with a message holding every one of `expected`.
/// A list map with a repeated key cannot even be turned into an apply patch: Kubernetes answers
/// `500` ("failed to create typed patch object … duplicate entries for key"), not `422`, but
/// names the field all the same.
fn apply_refused(
    what: &str,
    result: Result<DynamicObject, kube::Error>,
    expected: &[&str],
) -> Result<(), String> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 500 => {
            println!("{what} ({}): {}", status.code, status.message);
            let missing: Vec<&&str> = expected
                .iter()
                .filter(|e| !status.message.contains(**e))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{what}: the message does not say {missing:?}: {}",
                    status.message
                ))
            }
        }
        Err(other) => Err(format!("{what}: expected 422 or 500, got {other}")),
        Ok(accepted) => Err(format!("{what}: accepted: {}", accepted.data["spec"])),
    }
}

/// A name used twice in `scrape`, `alertingRules` or `dashboards` (list maps keyed by `name`),
/// created or server-side applied (as GitOps tools do).
async fn names_are_unique(tb: &TestBed) -> anyhow::Result<()> {
    let ns = "admission-unique";
    stacksmith_testbed::ensure_namespace(tb.hub()?.client(), ns).await?;
    let api = stacks(tb, ns)?;
    let apply = PatchParams::apply("admission-e2e").force();
    let target =
        |name: &str| json!({"name": name, "selector": {}, "endpoints": [{"port": "metrics"}]});
    let group = |name: &str| json!({"name": name, "rules": [{"alert": "Down", "expr": "up == 0"}]});
    let dashboard = |name: &str| json!({"name": name, "url": "https://dashboards.example/d.json"});
    let result = api
        .patch(
            "applied",
            &apply,
            &Patch::Apply(stack(
                "applied",
                "acme",
                json!({"dashboards": {"dashboards": [dashboard("overview"), dashboard("overview")]}}),
            )),
        )
        .await;
    apply_refused(
        "dashboards name twice, applied",
        result,
        &[
            ".spec.dashboards.dashboards",
            "duplicate entries",
            "overview",
        ],
    )
    .map_err(anyhow::Error::msg)?;
    expect_refused(
        &api,
        vec![
            (
                "scrape name twice",
                stack(
                    "s",
                    "acme",
                    json!({"metrics": {"scrape": [target("api"), target("web"), target("api")]}}),
                ),
                vec!["spec.metrics.scrape[2]", "Duplicate value", "api"],
            ),
            (
                "alertingRules name twice",
                stack(
                    "s",
                    "acme",
                    json!({"metrics": {"alertingRules": [group("core"), group("core")]}}),
                ),
                vec!["spec.metrics.alertingRules[1]", "Duplicate value", "core"],
            ),
            (
                "dashboards name twice",
                stack(
                    "s",
                    "acme",
                    json!({"dashboards": {"dashboards": [dashboard("overview"), dashboard("overview")]}}),
                ),
                vec!["spec.dashboards.dashboards[1]", "Duplicate value", "overview"],
            ),
        ],
    )
    .await
}

/// Every size bound, crossed by one.
async fn bounds_refuse_oversized_input(tb: &TestBed) -> anyhow::Result<()> {
    let ns = "admission-bounds";
    stacksmith_testbed::ensure_namespace(tb.hub()?.client(), ns).await?;
    let over = |max: u32| "x".repeat(max as usize + 1);
    let entries = |count: u32| -> Value {
        (0..count)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let rule = |extra: Value| {
        let mut rule = json!({"alert": "Down", "expr": "up == 0"});
        harness::merge_json(&mut rule, extra);
        json!({"metrics": {"alertingRules": [{"name": "core", "rules": [rule]}]}})
    };
    let scrape_namespaces = |namespaces: Value| {
        json!({"metrics": {"scrape": [{"name": "api", "selector": {}, "endpoints": [{"port": "m"}],
            "namespaces": namespaces}]}})
    };
    let many_namespaces: Vec<String> = (0..=SCRAPE_NAMESPACES_MAX_ITEMS)
        .map(|i| format!("ns-{i}"))
        .collect();
    expect_refused(
        &stacks(tb, ns)?,
        vec![
            (
                "dashboard json too long",
                stack(
                    "s",
                    "acme",
                    json!({"dashboards": {"dashboards": [{"name": "big", "json": over(DASHBOARD_JSON_MAX_LENGTH)}]}}),
                ),
                vec!["spec.dashboards.dashboards[0].json", "Too long"],
            ),
            (
                "rule expr too long",
                stack("s", "acme", rule(json!({"expr": over(RULE_EXPR_MAX_LENGTH)}))),
                vec!["spec.metrics.alertingRules[0].rules[0].expr", "Too long"],
            ),
            (
                "too many rule labels",
                stack(
                    "s",
                    "acme",
                    rule(json!({"labels": entries(RULE_MAP_MAX_PROPERTIES + 1)})),
                ),
                vec!["spec.metrics.alertingRules[0].rules[0].labels", "Too many"],
            ),
            (
                "too many rule annotations",
                stack(
                    "s",
                    "acme",
                    rule(json!({"annotations": entries(RULE_MAP_MAX_PROPERTIES + 1)})),
                ),
                vec!["spec.metrics.alertingRules[0].rules[0].annotations", "Too many"],
            ),
            (
                "too many scrape namespaces",
                stack("s", "acme", scrape_namespaces(json!(many_namespaces))),
                vec!["spec.metrics.scrape[0].namespaces", "Too many"],
            ),
            (
                "scrape namespace not a DNS-1123 label",
                stack("s", "acme", scrape_namespaces(json!(["team-a", "Team_B"]))),
                vec!["spec.metrics.scrape[0].namespaces[1]", "should match"],
            ),
        ],
    )
    .await
}

/// `resources.requests` and `resources.limits`: `cpu` and `memory`, nothing else.
async fn resources_hold_cpu_and_memory_only(tb: &TestBed) -> anyhow::Result<()> {
    let ns = "admission-resources";
    stacksmith_testbed::ensure_namespace(tb.hub()?.client(), ns).await?;
    let resources = |requests: Value, limits: Value| json!({"metrics": {"resources": {"requests": requests, "limits": limits}}});
    expect_refused(
        &stacks(tb, ns)?,
        vec![
            (
                "a GPU request",
                stack(
                    "s",
                    "acme",
                    resources(json!({"cpu": "1", "nvidia.com/gpu": "1"}), json!({})),
                ),
                vec![
                    "spec.metrics.resources.requests",
                    cel::ONLY_CPU_AND_MEMORY_MESSAGE,
                ],
            ),
            (
                "ephemeral storage limit",
                stack(
                    "s",
                    "acme",
                    resources(json!({}), json!({"ephemeral-storage": "1Gi"})),
                ),
                vec![
                    "spec.metrics.resources.limits",
                    cel::ONLY_CPU_AND_MEMORY_MESSAGE,
                ],
            ),
            (
                "three resource names",
                stack(
                    "s",
                    "acme",
                    resources(
                        json!({}),
                        json!({"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "1Gi"}),
                    ),
                ),
                vec!["spec.metrics.resources.limits", "Too many"],
            ),
        ],
    )
    .await
}

// --- MemberCluster -------------------------------------------------------------------------------

/// `roles` is a set; a cluster serving `prometheus` has a `prometheusUrlTemplate`; a Grafana-only
/// cluster needs none.
async fn member_cluster_roles_and_url_template(tb: &TestBed) -> anyhow::Result<()> {
    let api = members(tb)?;
    let template = "http://{name}.{namespace}.svc:9090";
    expect_refused(
        &api,
        vec![
            (
                "a role twice",
                member(
                    "twice",
                    json!({"roles": ["grafana", "grafana"], "prometheusUrlTemplate": template}),
                ),
                vec!["spec.roles[1]", "Duplicate value", "grafana"],
            ),
            (
                "prometheus without a URL template",
                member("no-template", json!({"roles": ["grafana", "prometheus"]})),
                vec![
                    "spec.prometheusUrlTemplate",
                    "Required value",
                    cel::PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE,
                ],
            ),
        ],
    )
    .await?;
    let result = api
        .patch(
            "twice-applied",
            &PatchParams::apply("admission-e2e").force(),
            &Patch::Apply(member(
                "twice-applied",
                json!({"roles": ["grafana", "grafana"]}),
            )),
        )
        .await;
    apply_refused(
        "a role twice, applied",
        result,
        &[".spec.roles", "duplicate entries", "grafana"],
    )
    .map_err(anyhow::Error::msg)?;
    let grafana_only = api
        .create(
            &PostParams::default(),
            &object(member("grafana-only", json!({"roles": ["grafana"]})))?,
        )
        .await
        .context("a Grafana-only cluster needs no URL template")?;
    ensure!(grafana_only.data["spec"]["roles"] == json!(["grafana"]));
    let apply = PatchParams::apply("admission-e2e").force();
    // Adding the prometheus role later needs the template too.
    let result = api
        .patch(
            "grafana-only",
            &apply,
            &Patch::Apply(member(
                "grafana-only",
                json!({"roles": ["grafana", "prometheus"]}),
            )),
        )
        .await;
    if let Err(problem) = refused(
        "prometheus role added without a template",
        result,
        &["spec.prometheusUrlTemplate", "Required value"],
    ) {
        bail!(problem);
    }
    api.patch(
        "grafana-only",
        &apply,
        &Patch::Apply(member(
            "grafana-only",
            json!({"roles": ["grafana", "prometheus"], "prometheusUrlTemplate": template}),
        )),
    )
    .await
    .context("the prometheus role with a template")?;
    // A null template is no template.
    let result = api
        .create(
            &PostParams::default(),
            &object(member(
                "null-template",
                json!({"roles": ["prometheus"], "prometheusUrlTemplate": null}),
            ))?,
        )
        .await;
    let accepted = result.is_ok();
    let null_refused = refused(
        "prometheus with a null URL template",
        result,
        &["spec.prometheusUrlTemplate"],
    );
    if accepted {
        api.delete("null-template", &DeleteParams::default())
            .await?;
    }
    null_refused.map_err(anyhow::Error::msg)?;
    Ok(())
}

// --- the valid stack and server-side apply ------------------------------------------------------

/// A stack with every bound reached (not crossed) is accepted. Then server-side apply: two
/// managers' `scrape` entries merge by name (a list map), an entry a manager drops goes, the other
/// manager's stays; the operator's status apply (status only, its own field manager) leaves the
/// spec alone.
async fn valid_stack_accepted_and_applies_merge_by_name(tb: &TestBed) -> anyhow::Result<()> {
    let ns = "admission-valid";
    stacksmith_testbed::ensure_namespace(tb.hub()?.client(), ns).await?;
    let api = stacks(tb, ns)?;
    let at = |max: u32| "x".repeat(max as usize);
    let entries = |count: u32| -> Value {
        (0..count)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let namespaces: Vec<String> = (0..SCRAPE_NAMESPACES_MAX_ITEMS)
        .map(|i| format!("ns-{i}"))
        .collect();
    let full = stack(
        "full",
        "acme",
        json!({
            "metrics": {
                "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                "scrape": [{"name": "api", "selector": {}, "endpoints": [{"port": "m"}], "namespaces": namespaces}],
                "alertingRules": [{"name": "core", "rules": [{
                    "alert": "Down", "expr": at(RULE_EXPR_MAX_LENGTH),
                    "labels": entries(RULE_MAP_MAX_PROPERTIES),
                    "annotations": entries(RULE_MAP_MAX_PROPERTIES),
                }]}],
            },
            "dashboards": {"dashboards": [
                {"name": "big", "json": at(DASHBOARD_JSON_MAX_LENGTH)},
                {"name": "small", "url": "https://dashboards.example/d.json"},
            ]},
        }),
    );
    api.create(&PostParams::default(), &object(full)?)
        .await
        .context("a stack at every bound is accepted")?;

    let target =
        |name: &str| json!({"name": name, "selector": {}, "endpoints": [{"port": "metrics"}]});
    let by = |manager: &str| PatchParams::apply(manager).force();
    let names = |object: &DynamicObject| -> Vec<String> {
        object.data["spec"]["metrics"]["scrape"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let applied = api
        .patch(
            "merge",
            &by("team-a"),
            &Patch::Apply(stack(
                "merge",
                "merge",
                json!({"metrics": {"scrape": [target("api"), target("web")]}}),
            )),
        )
        .await
        .context("team-a applies api and web")?;
    ensure!(names(&applied) == ["api", "web"], "{:?}", names(&applied));
    // Another manager applying only its own entry adds it (an atomic list would be replaced).
    let applied = api
        .patch(
            "merge",
            &by("team-b"),
            &Patch::Apply(json!({"apiVersion": API_VERSION, "kind": "CustomerStack",
                "metadata": {"name": "merge"},
                "spec": {"metrics": {"scrape": [target("jobs")]}}})),
        )
        .await
        .context("team-b applies jobs")?;
    ensure!(
        names(&applied) == ["api", "web", "jobs"],
        "team-b's apply should add its entry to team-a's: {:?}",
        names(&applied)
    );
    let applied = api
        .patch(
            "merge",
            &by("team-a"),
            &Patch::Apply(stack(
                "merge",
                "merge",
                json!({"metrics": {"scrape": [target("api")]}}),
            )),
        )
        .await
        .context("team-a drops web")?;
    ensure!(
        names(&applied) == ["api", "jobs"],
        "team-a dropped web, team-b's jobs stays: {:?}",
        names(&applied)
    );

    // The operator's status write: server-side apply of the status alone.
    let status = json!({"apiVersion": API_VERSION, "kind": "CustomerStack", "status": {
        "observedGeneration": applied.metadata.generation,
        "childrenReady": "0/1",
        "children": [{"cluster": "prometheus-1", "kind": "Prometheus", "namespace": "customer-merge",
            "name": "merge", "verdict": "Progressing", "reason": "Applying"}],
    }});
    let written = api
        .patch_status("merge", &by("stacksmith"), &Patch::Apply(&status))
        .await
        .context("the operator's status apply")?;
    ensure!(
        written.data["status"]["childrenReady"] == "0/1" && names(&written) == ["api", "jobs"],
        "status written, spec untouched: {}",
        written.data
    );
    let again = api
        .patch_status("merge", &by("stacksmith"), &Patch::Apply(&status))
        .await
        .context("the same status again")?;
    ensure!(
        again.metadata.resource_version == written.metadata.resource_version,
        "an unchanged status apply is a no-op"
    );
    Ok(())
}

//! What behaves differently on the current test bed (Kubernetes v1.37 built from Go modules, pods
//! without containers, the real prometheus-operator, member links) than on the Debian v1.20 one
//! it replaced. One test per difference; each fails if the test bed went back to the old model
//! (CEL rules and `default: ""` stripped from the upstream CRDs, no strict field validation, no
//! pods, the simulator playing prometheus-operator, members reached directly).
//!
//! One more test, [`real_operator_and_simulator_agree`], runs the same scenarios on the real
//! operator (gate off and on) and on the simulator, which still plays prometheus-operator where
//! the real one cannot run, and fails where stacksmith's verdicts differ.
//!
//! docs/testbed.md, "What behaved differently on the current release than on v1.20", lists the
//! differences with the test that covers each.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_api::ClusterRole;
use stacksmith_core::health::acceptance::REJECTION_REASON;
use stacksmith_core::{
    ChildHealth, ChildKind, ConfigEvidence, Rejection, Verdict, assess, assess_with_evidence,
};
use stacksmith_e2e::{boxed, eventually};
use stacksmith_testbed::harness::{self, test};
use stacksmith_testbed::pods::{FAKE_NODE, PROMETHEUS_NAME_LABEL, set_prometheus_pods_ready};
use stacksmith_testbed::simulator::{self, api_resource};
use stacksmith_testbed::{
    ClusterSpec, PrometheusOperatorRun, PrometheusSide, TestBed, TestBedOptions, kubeconfig,
};
use tokio::time::Instant;

/// The cluster where prometheus-operator runs as installed by default (gate off).
const STOCK: &str = "prometheus-1";
/// The cluster where prometheus-operator runs with `StatusForConfigurationResources` on.
const GATED: &str = "prometheus-2";
/// The Prometheus cluster where the simulator plays prometheus-operator (as it did everywhere on
/// v1.20), compared with the real operator by [`real_operator_and_simulator_agree`].
const SIMULATED: &str = "prometheus-sim";
/// The Grafana cluster (grafana-operator is simulated; the CRDs are upstream).
const GRAFANA: &str = "grafana-1";
/// The field manager of this suite's writes.
const MANAGER: &str = "reality-e2e";

/// The default layout with the real prometheus-operator on `prometheus-1` as a stock install
/// runs it (gate off, whatever `STACKSMITH_TESTBED_CONFIG_STATUS` says), plus `prometheus-2`
/// with the gate on, so that both behaviours are observed in one test bed, and `prometheus-sim`
/// where the simulator plays the operator, to compare the two.
fn options(name: String) -> TestBedOptions {
    let mut options = TestBedOptions::new(name);
    options.prometheus_side = PrometheusSide::Real {
        status_for_configuration_resources: false,
    };
    options.remotes.push(ClusterSpec {
        name: GATED.into(),
        roles: vec![ClusterRole::Prometheus],
    });
    options.prometheus_side_of.insert(
        GATED.into(),
        PrometheusSide::Real {
            status_for_configuration_resources: true,
        },
    );
    options.remotes.push(ClusterSpec {
        name: SIMULATED.into(),
        roles: vec![ClusterRole::Prometheus],
    });
    options
        .prometheus_side_of
        .insert(SIMULATED.into(), PrometheusSide::Simulated);
    options
}

fn main() -> ExitCode {
    harness::run(
        "reality-e2e",
        options,
        vec![
            test("cel_rules_refuse_a_changed_instance_selector", |tb| {
                Box::pin(boxed(cel_rules_refuse_a_changed_instance_selector(tb)))
            }),
            test("upstream_crds_are_served_as_they_ship", |tb| {
                Box::pin(boxed(upstream_crds_are_served_as_they_ship(tb)))
            }),
            test(
                "unknown_fields_strict_refused_default_dropped_with_a_warning",
                |tb| {
                    Box::pin(boxed(
                        unknown_fields_strict_refused_default_dropped_with_a_warning(tb),
                    ))
                },
            ),
            test(
                "deployment_pods_run_on_the_kwok_node_and_go_with_it",
                |tb| {
                    Box::pin(boxed(deployment_pods_run_on_the_kwok_node_and_go_with_it(
                        tb,
                    )))
                },
            ),
            test(
                "real_prometheus_operator_reports_pods_and_rejects_bad_rules_without_status",
                |tb| {
                    Box::pin(boxed(
                        real_prometheus_operator_reports_pods_and_rejects_bad_rules_without_status(
                            tb,
                        ),
                    ))
                },
            ),
            test("gate_on_rules_get_accepted_bindings", |tb| {
                Box::pin(boxed(gate_on_rules_get_accepted_bindings(tb)))
            }),
            test("member_link_delays_cuts_and_heals", |tb| {
                Box::pin(boxed(member_link_delays_cuts_and_heals(tb)))
            }),
            test("real_operator_and_simulator_agree", |tb| {
                Box::pin(boxed(real_operator_and_simulator_agree(tb)))
            }),
        ],
    )
}

// --- 1. CEL rules are enforced -----------------------------------------------------------------

/// grafana-operator's CRDs declare `spec.instanceSelector` immutable with a CEL transition rule
/// (`self == oldSelf`). v1.20 has no CEL (the test bed stripped the rules), so it accepted a
/// changed selector; the current API server refuses it with 422 Invalid. (Checks nothing, and
/// says so, where grafana-operator's upstream CRDs are not found: see
/// [`grafana_crds_are_upstream`].)
async fn cel_rules_refuse_a_changed_instance_selector(tb: &TestBed) -> anyhow::Result<()> {
    if !grafana_crds_are_upstream() {
        return Ok(());
    }
    let client = tb.cluster(GRAFANA)?.client().clone();
    let ns = "reality-cel";
    stacksmith_testbed::ensure_namespace(&client, ns).await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, ns, &api_resource(ChildKind::GrafanaDatasource));
    let datasource = |selector: &str, url: &str| -> anyhow::Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": ChildKind::GrafanaDatasource.api_version(),
            "kind": "GrafanaDatasource",
            "metadata": {"name": "acme", "namespace": ns},
            "spec": {
                "instanceSelector": {"matchLabels": {"dashboards": selector}},
                "datasource": {"name": "acme", "type": "prometheus", "access": "proxy", "url": url},
            },
        }))?)
    };
    api.create(
        &PostParams::default(),
        &datasource("grafana", "http://a.example:9090")?,
    )
    .await
    .context("create the GrafanaDatasource")?;
    let apply = PatchParams::apply(MANAGER).force();
    // Another change to the spec goes through: the rule is about the selector only.
    api.patch(
        "acme",
        &apply,
        &Patch::Apply(&datasource("grafana", "http://b.example:9090")?),
    )
    .await
    .context("apply the GrafanaDatasource with the same selector and another URL")?;
    match api
        .patch(
            "acme",
            &apply,
            &Patch::Apply(&datasource("other-grafana", "http://b.example:9090")?),
        )
        .await
    {
        Err(kube::Error::Api(status))
            if status.code == 422
                && status.reason == "Invalid"
                && status.message.contains("instanceSelector") => {}
        Err(kube::Error::Api(status)) => bail!(
            "a changed instanceSelector should be refused with 422 Invalid naming instanceSelector \
             (CEL `self == oldSelf`); got {} {}: {:?}",
            status.code,
            status.reason,
            status.message
        ),
        Err(other) => bail!("a changed instanceSelector: unexpected error {other}"),
        Ok(object) => bail!(
            "a changed instanceSelector was accepted (are the CRD's CEL rules gone?); the spec is now {}",
            object.data["spec"]
        ),
    }
    let back = api.get("acme").await?;
    let selector = &back.data["spec"]["instanceSelector"]["matchLabels"]["dashboards"];
    ensure!(
        selector == "grafana",
        "the refused apply changed the selector: {selector}"
    );
    Ok(())
}

// --- 2. The upstream CRDs install as they ship -------------------------------------------------

/// v1.20 refused two things in the upstream CRDs, which the test bed stripped there: CEL rules
/// (`x-kubernetes-validations`) and `default: ""`. The current API server serves the CRDs with
/// both, exactly as many as the files have; and an empty default is applied to objects.
async fn upstream_crds_are_served_as_they_ship(tb: &TestBed) -> anyhow::Result<()> {
    let dirs = crd_dirs();
    ensure!(!dirs.is_empty(), "no directory of upstream CRDs was found");
    let grafana = grafana_crds_are_upstream();
    let mut compared = Vec::new();
    let mut problems = Vec::new();
    let mut groups = vec![(STOCK, "monitoring.coreos.com")];
    if grafana {
        groups.push((GRAFANA, "grafana.integreatly.org"));
    }
    for (cluster, group) in groups {
        let crds: Api<CustomResourceDefinition> = Api::all(tb.cluster(cluster)?.client().clone());
        for crd in crds.list(&ListParams::default()).await? {
            if crd.spec.group != group {
                continue;
            }
            let file_name = format!("{group}_{}.yaml", crd.spec.names.plural);
            let Some(file) = dirs
                .iter()
                .map(|d| d.join(&file_name))
                .find(|f| f.is_file())
            else {
                problems.push(format!(
                    "{cluster}: no file {file_name} for CRD {}",
                    crd.name_any()
                ));
                continue;
            };
            let shipped: Value = serde_yaml::from_str(&std::fs::read_to_string(&file)?)
                .with_context(|| format!("parse {}", file.display()))?;
            let served = serde_json::to_value(&crd)?;
            let shipped_counts = Counts::of(&shipped["spec"]["versions"]);
            let served_counts = Counts::of(&served["spec"]["versions"]);
            if shipped_counts != served_counts {
                problems.push(format!(
                    "{cluster}: CRD {}: the file has {shipped_counts}, the API server serves {served_counts}",
                    crd.name_any()
                ));
            }
            compared.push(crd.name_any());
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let mut expected = vec![
        "prometheuses.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
    ];
    if grafana {
        expected.push("grafanadatasources.grafana.integreatly.org");
    }
    for expected in expected {
        ensure!(
            compared.iter().any(|c| c == expected),
            "CRD {expected} was not served or not compared (compared: {compared:?})"
        );
    }

    // The two properties v1.20 refused, named: the datasource's CEL rule and its empty default,
    // and the ServiceMonitor's empty defaults (the CRD v1.20 refused outright).
    if grafana {
        grafana_datasource_crd_has_cel_and_empty_default(tb).await?;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(tb.cluster(STOCK)?.client().clone());
    let monitor = served_schema(&crds, "servicemonitors.monitoring.coreos.com").await?;
    let name = &monitor["properties"]["spec"]["properties"]["endpoints"]["items"]["properties"]["authorization"]
        ["properties"]["credentials"]["properties"]["name"];
    ensure!(
        name["default"] == "",
        "ServiceMonitor spec.endpoints[].authorization.credentials.name has no `default: \"\"`: {name}"
    );

    // And the empty default is applied: a credentials reference without a name gets `name: ""`.
    let client = tb.cluster(STOCK)?.client().clone();
    let ns = "reality-defaults";
    stacksmith_testbed::ensure_namespace(&client, ns).await?;
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client, ns, &api_resource(ChildKind::ServiceMonitor));
    let created = monitors
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": ChildKind::ServiceMonitor.api_version(),
                "kind": "ServiceMonitor",
                "metadata": {"name": "token", "namespace": ns},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "endpoints": [{"port": "web", "authorization": {"credentials": {"key": "token"}}}],
                },
            }))?,
        )
        .await
        .context("create a ServiceMonitor with an unnamed credentials reference")?;
    let credentials = &created.data["spec"]["endpoints"][0]["authorization"]["credentials"];
    ensure!(
        credentials["name"] == "",
        "the empty default was not applied: credentials read back as {credentials}"
    );
    Ok(())
}

/// grafana-operator's `GrafanaDatasource` CRD as served: its CEL rule on `spec.instanceSelector`
/// and its `default: ""` on `spec.valuesFrom[].valueFrom.secretKeyRef.name`.
async fn grafana_datasource_crd_has_cel_and_empty_default(tb: &TestBed) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(tb.cluster(GRAFANA)?.client().clone());
    let datasource = served_schema(&crds, "grafanadatasources.grafana.integreatly.org").await?;
    let spec = &datasource["properties"]["spec"]["properties"];
    let rules = &spec["instanceSelector"]["x-kubernetes-validations"];
    ensure!(
        rules
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["rule"] == "self == oldSelf")),
        "GrafanaDatasource spec.instanceSelector has no CEL rule `self == oldSelf`: {rules}"
    );
    let name = &spec["valuesFrom"]["items"]["properties"]["valueFrom"]["properties"]["secretKeyRef"]
        ["properties"]["name"];
    ensure!(
        name["default"] == "",
        "GrafanaDatasource spec.valuesFrom[].valueFrom.secretKeyRef.name has no `default: \"\"`: {name}"
    );
    Ok(())
}

/// Whether grafana-1 got grafana-operator's upstream CRDs. They come only from the upstream
/// directory (`STACKSMITH_UPSTREAM_CRDS`, or `shared/crds/upstream` beside the checkout); on a
/// machine without it grafana-1 has the minimal CRDs, which have no rules to check, and the
/// Grafana checks say so and pass (as testbed_e2e does). prometheus-operator's CRDs come with
/// its release and are always checked.
fn grafana_crds_are_upstream() -> bool {
    let found = stacksmith_testbed::child_crds::upstream_dir().is_some();
    if !found {
        println!(
            "upstream CRDs not found (set STACKSMITH_UPSTREAM_CRDS): grafana-operator's CRDs are not checked"
        );
    }
    found
}

/// Where the CRD files the test bed installs are: the upstream directory, and the real
/// prometheus-operator's release (the CRDs stacksmith does not write).
fn crd_dirs() -> Vec<PathBuf> {
    let binaries = std::env::var_os("STACKSMITH_TESTBED_BINARIES")
        .or_else(|| std::env::var_os("KUBEBUILDER_ASSETS"))
        .map(PathBuf::from)
        .unwrap_or_else(stacksmith_testbed::binaries::cache_dir);
    stacksmith_testbed::child_crds::upstream_dir()
        .into_iter()
        .chain([binaries.join("crds")])
        .filter(|dir| dir.is_dir())
        .collect()
}

/// How many CEL rules and `default: ""` a CRD's versions hold.
#[derive(Debug, PartialEq, Eq, Default)]
struct Counts {
    cel_rules: usize,
    empty_defaults: usize,
}

impl Counts {
    fn of(value: &Value) -> Self {
        let mut counts = Counts::default();
        counts.add(value);
        counts
    }

    fn add(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                    self.cel_rules += rules.len();
                }
                if map.get("default") == Some(&Value::String(String::new())) {
                    self.empty_defaults += 1;
                }
                map.values().for_each(|v| self.add(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.add(v)),
            _ => {}
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CEL rules and {} `default: \"\"`",
            self.cel_rules, self.empty_defaults
        )
    }
}

/// The served `openAPIV3Schema` of a CRD's first version.
async fn served_schema(api: &Api<CustomResourceDefinition>, name: &str) -> anyhow::Result<Value> {
    let crd = serde_json::to_value(
        api.get(name)
            .await
            .with_context(|| format!("get CRD {name}"))?,
    )?;
    Ok(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

// --- 3. Unknown fields --------------------------------------------------------------------------

/// What the API server answered to a raw request.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    warnings: Vec<String>,
    body: Value,
}

impl RawAnswer {
    fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }
}

/// Sends a request as is and keeps what kube's typed calls drop: the `Warning` headers.
async fn send_raw(client: &Client, request: http::Request<Vec<u8>>) -> anyhow::Result<RawAnswer> {
    let what = format!("{} {}", request.method(), request.uri());
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .with_context(|| what.clone())?;
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let bytes = response.into_body().collect_bytes().await.context(what)?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(RawAnswer {
        status,
        warnings,
        body,
    })
}

/// What the API server does with an unknown field.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this code, the message containing this text; nothing stored.
    Refused(u16, &'static str),
    /// Stored without the field, with a `Warning` header naming it.
    DroppedWithWarning,
    /// Stored without the field, without a warning (all v1.20 ever did).
    DroppedSilently,
}

/// v1.20 had no server-side field validation: a create with an unknown field was accepted and
/// the field pruned silently, whatever the client asked. The current API server honours
/// `fieldValidation`: `Strict` (what kubectl sends by default) refuses the create, the default
/// (`Warn`) stores the object without the field and says so in a `Warning` header, `Ignore` is
/// v1.20's behaviour. A server-side apply is stricter in every mode: an unknown field fails the
/// request with 500 `field not declared in schema` (kubernetes/kubernetes#139253, still open,
/// would make it a 400; if this test then fails on the code, that was fixed).
async fn unknown_fields_strict_refused_default_dropped_with_a_warning(
    tb: &TestBed,
) -> anyhow::Result<()> {
    let client = tb.cluster(STOCK)?.client().clone();
    let ns = "reality-fields";
    stacksmith_testbed::ensure_namespace(&client, ns).await?;
    let collection = format!("/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors");
    let monitor = |name: &str| {
        json!({
            "apiVersion": ChildKind::ServiceMonitor.api_version(),
            "kind": "ServiceMonitor",
            "metadata": {"name": name, "namespace": ns},
            // `jobLabel` misspelt.
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "web"}], "jobLabell": "app"},
        })
    };
    let request = |apply: bool, name: &str, validation: Option<&str>| {
        let query = validation.map_or(String::new(), |v| format!("&fieldValidation={v}"));
        let builder = if apply {
            http::Request::patch(format!(
                "{collection}/{name}?fieldManager={MANAGER}&force=true{query}"
            ))
            .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        } else {
            http::Request::post(format!("{collection}?fieldManager={MANAGER}{query}"))
                .header(http::header::CONTENT_TYPE, "application/json")
        };
        anyhow::Ok(builder.body(serde_json::to_vec(&monitor(name))?)?)
    };
    let strict_create = "strict decoding error: unknown field \"spec.jobLabell\"";
    let apply_refusal = ".spec.jobLabell: field not declared in schema";
    let cases = [
        (false, Some("Strict"), Expect::Refused(400, strict_create)),
        (false, None, Expect::DroppedWithWarning),
        (false, Some("Warn"), Expect::DroppedWithWarning),
        (false, Some("Ignore"), Expect::DroppedSilently),
        (true, Some("Strict"), Expect::Refused(500, apply_refusal)),
        (true, None, Expect::Refused(500, apply_refusal)),
        (true, Some("Warn"), Expect::Refused(500, apply_refusal)),
        (true, Some("Ignore"), Expect::Refused(500, apply_refusal)),
    ];
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::ServiceMonitor));
    let mut problems = Vec::new();
    for (apply, validation, expect) in cases {
        let name = format!(
            "{}-{}",
            if apply { "apply" } else { "create" },
            validation.unwrap_or("default").to_lowercase()
        );
        let what = format!(
            "{} with fieldValidation={}",
            if apply { "server-side apply" } else { "create" },
            validation.unwrap_or("(default)")
        );
        let answer = send_raw(&client, request(apply, &name, validation)?).await?;
        let stored = monitors.get_opt(&name).await?;
        let observed = format!(
            "{} {:?}, warnings {:?}, stored spec {}",
            answer.status,
            answer.message(),
            answer.warnings,
            stored
                .as_ref()
                .map_or(Value::Null, |o| o.data["spec"].clone())
        );
        let as_expected = match expect {
            Expect::Refused(code, says) => {
                answer.status == code && answer.message().contains(says) && stored.is_none()
            }
            Expect::DroppedWithWarning | Expect::DroppedSilently => {
                let warned = answer
                    .warnings
                    .iter()
                    .any(|w| w.contains("unknown field \\\"spec.jobLabell\\\""));
                (200..300).contains(&answer.status)
                    && warned == matches!(expect, Expect::DroppedWithWarning)
                    && stored.as_ref().is_some_and(|o| {
                        o.data["spec"].get("jobLabell").is_none()
                            && o.data["spec"]["endpoints"][0]["port"] == "web"
                    })
            }
        };
        if !as_expected {
            problems.push(format!("{what}: expected {expect:?}, got {observed}"));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

// --- 4. Pods run ------------------------------------------------------------------------------

/// v1.20 had no scheduler and no kubelet: a Deployment never got a pod. Now the workload
/// controllers create the pod, kube-scheduler binds it to kwok's node and kwok reports it Ready;
/// deleting the Deployment removes it (garbage collection, then kwok's delete stage).
async fn deployment_pods_run_on_the_kwok_node_and_go_with_it(tb: &TestBed) -> anyhow::Result<()> {
    let client = tb.cluster(STOCK)?.client().clone();
    let ns = "reality-pods";
    stacksmith_testbed::ensure_namespace(&client, ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "idle"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "idle"}},
                    "template": {
                        "metadata": {"labels": {"app": "idle"}},
                        "spec": {"containers": [{"name": "idle", "image": "registry.example/idle:1"}]},
                    },
                },
            }))?,
        )
        .await
        .context("create Deployment idle")?;
    let pods: Api<Pod> = Api::namespaced(client, ns);
    let selector = &ListParams::default().labels("app=idle");
    let pods = &pods;
    let pod = eventually(
        "a Ready pod of Deployment idle on the kwok node",
        Duration::from_secs(90),
        move || async move {
            let listed = pods.list(selector).await?;
            let ready = listed.items.iter().find(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(FAKE_NODE)
                    && pod_condition(p, "Ready") == Some("True")
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            });
            Ok(ready
                .map(|p| p.name_any())
                .ok_or_else(|| describe_pods(&listed.items)))
        },
    )
    .await?;
    deployments
        .delete("idle", &DeleteParams::default())
        .await
        .context("delete Deployment idle")?;
    eventually(
        &format!("pod {ns}/{pod} to go with its Deployment"),
        Duration::from_secs(90),
        move || async move {
            let listed = pods.list(selector).await?;
            Ok(if listed.items.is_empty() {
                Ok(())
            } else {
                Err(describe_pods(&listed.items))
            })
        },
    )
    .await
}

fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

fn describe_pods(pods: &[Pod]) -> String {
    if pods.is_empty() {
        return "no pods".into();
    }
    pods.iter()
        .map(|p| {
            format!(
                "{} (node {:?}, phase {:?}, Ready {:?}, deleting {})",
                p.name_any(),
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                pod_condition(p, "Ready"),
                p.metadata.deletion_timestamp.is_some()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// --- 5. The real prometheus-operator (gate off) -----------------------------------------------

const PROMETHEUS: &str = "p";
const RULE_LABELS: &str = "reality-rules";
const MONITOR_LABELS: &str = "reality-monitors";

/// A namespace with a `Prometheus` (its ServiceAccount, a rule and a ServiceMonitor selector), a
/// good and a bad `PrometheusRule` and a `ServiceMonitor` it selects.
async fn prometheus_with_rules(client: &Client, ns: &str) -> anyhow::Result<()> {
    stacksmith_testbed::ensure_namespace(client, ns).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "prometheus"}}))?,
        )
        .await
        .context("create ServiceAccount prometheus")?;
    let create = async |kind: ChildKind, name: &str, labels: Value, spec: Value| {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": kind.api_version(),
            "kind": kind.as_str(),
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": spec,
        }))?;
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("create {kind} {ns}/{name}"))?;
        anyhow::Ok(())
    };
    create(
        ChildKind::Prometheus,
        PROMETHEUS,
        json!({}),
        json!({
            "replicas": 1,
            "serviceAccountName": "prometheus",
            "ruleSelector": {"matchLabels": {"suite": RULE_LABELS}},
            "serviceMonitorSelector": {"matchLabels": {"suite": MONITOR_LABELS}},
        }),
    )
    .await?;
    for (name, expr) in [("good", "up == 0"), ("bad", "up ==")] {
        create(
            ChildKind::PrometheusRule,
            name,
            json!({"suite": RULE_LABELS}),
            json!({"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": expr}]}]}),
        )
        .await?;
    }
    create(
        ChildKind::ServiceMonitor,
        "good",
        json!({"suite": MONITOR_LABELS}),
        json!({"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "web"}]}),
    )
    .await
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `Available=True/- (generation 1 of 1), Reconciled=...`, for messages.
fn describe_conditions(object: &Value) -> String {
    let generation = &object["metadata"]["generation"];
    match object["status"]["conditions"].as_array() {
        None => "no status conditions".into(),
        Some(conditions) => conditions
            .iter()
            .map(|c| {
                format!(
                    "{}={}/{} (observedGeneration {} of {generation}): {:?}",
                    c["type"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or("-"),
                    c["observedGeneration"],
                    c["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Whether the condition has this status (and reason, when given) at the object's generation.
fn has_condition(object: &Value, type_: &str, status: &str, reason: Option<&str>) -> bool {
    condition(object, type_).is_some_and(|c| {
        c["status"] == status
            && reason.is_none_or(|r| c["reason"] == r)
            && c["observedGeneration"] == object["metadata"]["generation"]
    })
}

async fn wait_for_prometheus(
    api: &Api<DynamicObject>,
    what: &str,
    available: (&str, Option<&str>),
) -> anyhow::Result<Value> {
    eventually(what, Duration::from_secs(120), move || async move {
        let object = serde_json::to_value(api.get(PROMETHEUS).await?)?;
        let done = has_condition(&object, "Available", available.0, available.1)
            && has_condition(&object, "Reconciled", "True", None);
        Ok(if done {
            Ok(object)
        } else {
            Err(describe_conditions(&object))
        })
    })
    .await
}

/// v1.20 ran no prometheus-operator (no pods): the simulator wrote the statuses it computed. The
/// real operator (v0.93.0, `StatusForConfigurationResources` off as on a stock install) makes a
/// `Prometheus` Available from its pods, reports an unparsable rule only by an Event, writes no
/// status on rules or ServiceMonitors, and follows its pods' readiness.
async fn real_prometheus_operator_reports_pods_and_rejects_bad_rules_without_status(
    tb: &TestBed,
) -> anyhow::Result<()> {
    let client = tb.cluster(STOCK)?.client().clone();
    let ns = "reality-operator";
    prometheus_with_rules(&client, ns).await?;
    let prometheuses: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::Prometheus));
    wait_for_prometheus(
        &prometheuses,
        &format!("Prometheus {ns}/{PROMETHEUS} Available=True and Reconciled=True"),
        ("True", None),
    )
    .await?;

    let events = &Api::<Event>::namespaced(client.clone(), ns);
    let event = eventually(
        "an events.k8s.io Event InvalidConfiguration regarding PrometheusRule bad",
        Duration::from_secs(60),
        move || async move {
            let listed = events.list(&ListParams::default()).await?;
            let found = listed.items.iter().find(|e| {
                e.reason.as_deref() == Some("InvalidConfiguration")
                    && e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some("PrometheusRule")
                            && r.name.as_deref() == Some("bad")
                    })
            });
            Ok(found.cloned().ok_or_else(|| {
                let seen: Vec<String> = listed
                    .items
                    .iter()
                    .map(|e| {
                        format!(
                            "{:?} regarding {:?}/{:?}",
                            e.reason,
                            e.regarding.as_ref().and_then(|r| r.kind.clone()),
                            e.regarding.as_ref().and_then(|r| r.name.clone())
                        )
                    })
                    .collect();
                format!("events: {seen:?}")
            }))
        },
    )
    .await?;
    ensure!(
        event.type_.as_deref() == Some("Warning"),
        "the InvalidConfiguration Event is not a Warning: {event:?}"
    );
    // The operator has seen both rules (it rejected one): with the gate off, none gets a status.
    for (kind, name) in [
        (ChildKind::PrometheusRule, "good"),
        (ChildKind::PrometheusRule, "bad"),
        (ChildKind::ServiceMonitor, "good"),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
        let object = api.get(name).await?;
        let status = object.data.get("status");
        ensure!(
            status.is_none_or(|s| s.is_null() || s.as_object().is_some_and(|m| m.is_empty())),
            "{kind} {ns}/{name} got a status with the gate off: {}",
            status.unwrap_or(&Value::Null)
        );
    }

    // Pods that stop being ready, as a kubelet reports it: Available=False, NoPodReady.
    set_prometheus_pods_ready(&client, ns, PROMETHEUS, false).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = ListParams::default().labels(&format!("{PROMETHEUS_NAME_LABEL}={PROMETHEUS}"));
    let unavailable = wait_for_prometheus(
        &prometheuses,
        &format!(
            "Prometheus {ns}/{PROMETHEUS} Available=False NoPodReady once its pods are not ready"
        ),
        ("False", Some("NoPodReady")),
    )
    .await?;
    // The operator quotes the pod's condition, as it would a kubelet's report.
    let message = condition(&unavailable, "Available").map_or(&Value::Null, |c| &c["message"]);
    ensure!(
        message.as_str().is_some_and(|m| m.contains(&format!(
            "pod prometheus-{PROMETHEUS}-0: containers with unready status: [prometheus config-reloader"
        ))),
        "Available=False does not quote the pod's readiness: {message}"
    );
    // kwok left the patched pods alone (it acts on Pending pods only).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed = pods.list(&selector).await?;
    ensure!(
        !listed.items.is_empty()
            && listed
                .items
                .iter()
                .all(|p| pod_condition(p, "Ready") == Some("False")),
        "the pods did not stay not ready: {}",
        describe_pods(&listed.items)
    );
    set_prometheus_pods_ready(&client, ns, PROMETHEUS, true).await?;
    let available = wait_for_prometheus(
        &prometheuses,
        &format!("Prometheus {ns}/{PROMETHEUS} Available=True once its pods are ready again"),
        ("True", None),
    )
    .await?;
    let message = condition(&available, "Available").map_or(&Value::Null, |c| &c["message"]);
    ensure!(
        message.as_str().is_none_or(str::is_empty),
        "Available=True still carries a message: {message}"
    );
    Ok(())
}

// --- 6. The gate on ---------------------------------------------------------------------------

/// With `StatusForConfigurationResources` on (prometheus-2), the operator writes
/// `status.bindings` on the rules it selects: Accepted=True for the good one, Accepted=False
/// `InvalidConfiguration` for the one that does not parse.
async fn gate_on_rules_get_accepted_bindings(tb: &TestBed) -> anyhow::Result<()> {
    let client = tb.cluster(GATED)?.client().clone();
    let ns = "reality-gate";
    prometheus_with_rules(&client, ns).await?;
    let rules: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::PrometheusRule));
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::ServiceMonitor));
    for (api, kind, name, status, reason) in [
        (&rules, ChildKind::PrometheusRule, "good", "True", None),
        (
            &rules,
            ChildKind::PrometheusRule,
            "bad",
            "False",
            Some("InvalidConfiguration"),
        ),
        (&monitors, ChildKind::ServiceMonitor, "good", "True", None),
    ] {
        eventually(
            &format!(
                "{kind} {ns}/{name}: a binding to Prometheus {PROMETHEUS} with Accepted={status}{}",
                reason.map(|r| format!(" reason {r}")).unwrap_or_default()
            ),
            Duration::from_secs(120),
            move || async move {
                let object = serde_json::to_value(api.get(name).await?)?;
                let bindings = &object["status"]["bindings"];
                let accepted = bindings.as_array().and_then(|b| {
                    b.iter()
                        .find(|b| {
                            b["resource"] == "prometheuses"
                                && b["name"] == PROMETHEUS
                                && b["namespace"] == ns
                        })
                        .and_then(|b| b["conditions"].as_array())
                        .and_then(|c| c.iter().find(|c| c["type"] == "Accepted"))
                });
                Ok(match accepted {
                    Some(c)
                        if c["status"] == status
                            && reason.is_none_or(|r| c["reason"] == r)
                            && c["observedGeneration"] == object["metadata"]["generation"] =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("status {}", object["status"])),
                })
            },
        )
        .await?;
    }
    Ok(())
}

// --- 7. The member link -----------------------------------------------------------------------

/// Puts a link back as it was, however the test ends.
struct LinkReset<'a> {
    link: &'a stacksmith_testbed::link::LinkProxy,
    delay: Duration,
}

impl Drop for LinkReset<'_> {
    fn drop(&mut self) {
        self.link.restore();
        self.link.set_delay(self.delay);
    }
}

/// v1.20's members were reached directly on 127.0.0.1. Now stacksmith's kubeconfig for a member
/// goes through a link with a delay each way, which a test can change and cut; the cluster's own
/// (admin) view is unaffected.
async fn member_link_delays_cuts_and_heals(tb: &TestBed) -> anyhow::Result<()> {
    let cluster = tb.cluster(STOCK)?;
    let link = cluster.link().context("prometheus-1 has no member link")?;
    let _reset = LinkReset {
        link,
        delay: link.conditions().delay,
    };
    let operator = kubeconfig::client_from_yaml(STOCK, cluster.operator_kubeconfig()).await?;
    let request = async || operator.apiserver_version().await;
    tokio::time::timeout(Duration::from_secs(10), request())
        .await
        .context("a request through the link (before any change) timed out")??;

    link.set_delay(Duration::from_millis(50));
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), request())
            .await
            .context("a request through the delayed link timed out")??;
        fastest = fastest.min(started.elapsed());
    }
    ensure!(
        fastest >= Duration::from_millis(100),
        "with 50 ms each way a request took only {fastest:?} (is the kubeconfig bypassing the link?)"
    );

    link.cut();
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(2), request()).await {
        Err(_) => {}
        Ok(answer) => bail!(
            "through a cut link a request ended after {:?} instead of hanging: {answer:?}",
            started.elapsed()
        ),
    }
    tokio::time::timeout(Duration::from_secs(5), cluster.client().apiserver_version())
        .await
        .context("the admin client (not through the link) did not answer while the link was cut")?
        .context("the admin client failed while the link was cut")?;

    link.restore();
    tokio::time::timeout(Duration::from_secs(10), request())
        .await
        .context("a request through the restored link timed out")?
        .context("a request through the restored link failed")?;
    Ok(())
}

// --- 8. The real operator and the simulator agree ----------------------------------------------

/// The clusters compared, and who plays prometheus-operator on each (for messages).
const COMPARED: [(&str, &str); 3] = [
    (STOCK, "real, gate off"),
    (GATED, "real, gate on"),
    (SIMULATED, "simulated"),
];
/// The namespace of the comparison, on each compared cluster.
const AGREE_NS: &str = "reality-agree";
/// How long a step may take to settle: the real operator needs seconds, and another test run may
/// be loading the machine.
const SETTLE: Duration = Duration::from_secs(60);
/// The first step also waits for the StatefulSet's pods to be created and scheduled.
const FIRST_SETTLE: Duration = Duration::from_secs(120);
/// How long every object must keep its expected verdict for a step to count as settled: the
/// real operator reports in several writes (e.g. with the gate on, a rule is judged by inference
/// until its `status.bindings` appear), and the last ones are what is compared.
const CONFIRM: Duration = Duration::from_secs(3);

/// One object judged in a step, and the verdict the step should bring it to on every cluster.
#[derive(Clone, Copy, Debug)]
struct Subject {
    kind: ChildKind,
    name: &'static str,
    expected: Verdict,
}

impl Subject {
    const fn new(kind: ChildKind, name: &'static str, expected: Verdict) -> Self {
        Subject {
            kind,
            name,
            expected,
        }
    }
}

/// What stacksmith made of one object on one cluster, or why it could not be judged.
type Judgement = Result<ChildHealth, String>;

/// The same scenarios on the real operator (gate off, gate on) and on the simulator (its
/// default scenario: `status.bindings` written, as with the gate on), judged by
/// stacksmith as its controller does (`assess`, and `assess_with_evidence` with the namespace's
/// Prometheus objects and rejection Events for a rule or monitor without `status.bindings`).
/// Fails, listing every one, where the verdicts differ between the clusters, or where all agree
/// but the scenario did not bring them where it should. Reasons and messages may differ (e.g.
/// `Accepted` with the gate on, `AcceptanceInferred` with it off); every table is printed.
async fn real_operator_and_simulator_agree(tb: &TestBed) -> anyhow::Result<()> {
    // The comparison means something only if each cluster is played as named.
    for (cluster, expected) in [
        (
            STOCK,
            PrometheusOperatorRun::Real {
                status_for_configuration_resources: false,
            },
        ),
        (
            GATED,
            PrometheusOperatorRun::Real {
                status_for_configuration_resources: true,
            },
        ),
        (SIMULATED, PrometheusOperatorRun::Simulated),
    ] {
        let run = tb.prometheus_operator_on(cluster);
        ensure!(
            run == Some(expected),
            "{cluster}: prometheus-operator is played by {run:?}, not {expected:?}"
        );
    }
    let mut agreement = Agreement::default();
    match agreement_scenarios(tb, &mut agreement).await {
        Ok(()) => agreement.verdict(),
        Err(err) => Err(err.context(format!(
            "a scenario could not be set up; compared so far:\n{}",
            agreement.summary()
        ))),
    }
}

async fn agreement_scenarios(tb: &TestBed, agreement: &mut Agreement) -> anyhow::Result<()> {
    let clients = COMPARED
        .iter()
        .map(|(cluster, _)| Ok(tb.cluster(cluster)?.client().clone()))
        .collect::<anyhow::Result<Vec<Client>>>()?;
    let prometheus = |expected| Subject::new(ChildKind::Prometheus, PROMETHEUS, expected);
    let good_rule = Subject::new(ChildKind::PrometheusRule, "good", Verdict::Healthy);
    let monitor = Subject::new(ChildKind::ServiceMonitor, "good", Verdict::Healthy);

    // 1. A Prometheus (its ServiceAccount, its rule and monitor selectors) becomes Healthy.
    for client in &clients {
        stacksmith_testbed::ensure_namespace(client, AGREE_NS).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), AGREE_NS);
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "prometheus"}}))?,
            )
            .await
            .context("create ServiceAccount prometheus")?;
        create_child(
            client,
            ChildKind::Prometheus,
            PROMETHEUS,
            json!({}),
            json!({
                "replicas": 2,
                "serviceAccountName": "prometheus",
                "ruleSelector": {"matchLabels": {"suite": RULE_LABELS}},
                "serviceMonitorSelector": {"matchLabels": {"suite": MONITOR_LABELS}},
            }),
        )
        .await?;
    }
    let subjects = [prometheus(Verdict::Healthy)];
    agreement
        .step("1. Prometheus ready", &clients, &subjects, FIRST_SETTLE)
        .await;

    // 2. No pod ready (the real lever on each cluster: pods not ready, or the outcome
    // annotation), then ready again.
    for (cluster, _) in COMPARED {
        tb.set_prometheus_healthy(cluster, AGREE_NS, PROMETHEUS, false)
            .await
            .with_context(|| {
                format!("{cluster}: make Prometheus {AGREE_NS}/{PROMETHEUS} unhealthy")
            })?;
    }
    let subjects = [prometheus(Verdict::Degraded)];
    agreement
        .step("2a. no pod ready", &clients, &subjects, SETTLE)
        .await;
    for (cluster, _) in COMPARED {
        tb.set_prometheus_healthy(cluster, AGREE_NS, PROMETHEUS, true)
            .await
            .with_context(|| {
                format!("{cluster}: make Prometheus {AGREE_NS}/{PROMETHEUS} healthy")
            })?;
    }
    let subjects = [prometheus(Verdict::Healthy)];
    agreement
        .step("2b. pods ready again", &clients, &subjects, SETTLE)
        .await;

    // 3. A good rule and a ServiceMonitor, both selected by the Prometheus.
    for client in &clients {
        create_child(
            client,
            ChildKind::PrometheusRule,
            "good",
            json!({"suite": RULE_LABELS}),
            json!({"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": "up == 0"}]}]}),
        )
        .await?;
        create_child(
            client,
            ChildKind::ServiceMonitor,
            "good",
            json!({"suite": MONITOR_LABELS}),
            json!({"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "web"}]}),
        )
        .await?;
    }
    let subjects = [good_rule, monitor, prometheus(Verdict::Healthy)];
    agreement
        .step(
            "3. a good rule and a selected ServiceMonitor",
            &clients,
            &subjects,
            SETTLE,
        )
        .await;

    // 4. A rule that does not parse: the real operator rejects it by its PromQL; the simulator
    // is told to by the outcome annotation.
    for (client, (cluster, _)) in clients.iter().zip(COMPARED) {
        let mut rule = child_object(
            ChildKind::PrometheusRule,
            "bad",
            json!({"suite": RULE_LABELS}),
            json!({"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": "up =="}]}]}),
        );
        if cluster == SIMULATED {
            rule["metadata"]["annotations"][simulator::OUTCOME_ANNOTATION] =
                json!(simulator::Outcome::InvalidSpec.as_str());
        }
        create_object(client, ChildKind::PrometheusRule, rule).await?;
    }
    let subjects = [
        Subject::new(ChildKind::PrometheusRule, "bad", Verdict::Degraded),
        good_rule,
        monitor,
        prometheus(Verdict::Healthy),
    ];
    agreement
        .step("4. a rule that does not parse", &clients, &subjects, SETTLE)
        .await;

    // 5. Objects no Prometheus selects: a rule never selected (the real operator writes no
    // status) and the ServiceMonitor relabelled out of the selector (with the gate on, its
    // bindings are emptied).
    for client in &clients {
        create_child(
            client,
            ChildKind::PrometheusRule,
            "unselected",
            json!({"suite": "elsewhere"}),
            json!({"groups": [{"name": "g", "rules": [{"alert": "Down", "expr": "up == 0"}]}]}),
        )
        .await?;
        let monitors: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            AGREE_NS,
            &api_resource(ChildKind::ServiceMonitor),
        );
        monitors
            .patch(
                "good",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"suite": "elsewhere"}}})),
            )
            .await
            .with_context(|| format!("relabel ServiceMonitor {AGREE_NS}/good"))?;
    }
    let subjects = [
        Subject::new(ChildKind::PrometheusRule, "unselected", Verdict::Unknown),
        Subject::new(ChildKind::ServiceMonitor, "good", Verdict::Unknown),
        good_rule,
    ];
    agreement
        .step(
            "5. a rule and a ServiceMonitor no Prometheus selects",
            &clients,
            &subjects,
            SETTLE,
        )
        .await;
    Ok(())
}

/// A child object of [`AGREE_NS`], as JSON.
fn child_object(kind: ChildKind, name: &str, labels: Value, spec: Value) -> Value {
    json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": AGREE_NS, "labels": labels},
        "spec": spec,
    })
}

async fn create_child(
    client: &Client,
    kind: ChildKind,
    name: &str,
    labels: Value,
    spec: Value,
) -> anyhow::Result<()> {
    create_object(client, kind, child_object(kind, name, labels, spec)).await
}

async fn create_object(client: &Client, kind: ChildKind, object: Value) -> anyhow::Result<()> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), AGREE_NS, &api_resource(kind));
    api.create(&PostParams::default(), &serde_json::from_value(object)?)
        .await
        .with_context(|| format!("create {kind} {AGREE_NS}/{name}"))?;
    Ok(())
}

/// Judges one object as stacksmith's controller does: by its status; a `PrometheusRule` or
/// `ServiceMonitor` without `status.bindings` also by the evidence of its cluster (the
/// namespace's `Prometheus` objects and labels, and the `events.k8s.io/v1` Warning Events
/// `InvalidConfiguration` of the namespace).
async fn judge(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
) -> anyhow::Result<ChildHealth> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
    let object = serde_json::to_value(
        api.get(name)
            .await
            .with_context(|| format!("get {kind} {ns}/{name}"))?,
    )?;
    let needs_evidence = matches!(kind, ChildKind::PrometheusRule | ChildKind::ServiceMonitor)
        && object
            .pointer("/status/bindings")
            .is_none_or(Value::is_null);
    if !needs_evidence {
        return Ok(assess(kind, &object));
    }
    let prometheuses: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &api_resource(ChildKind::Prometheus));
    let prometheuses = prometheuses
        .list(&ListParams::default())
        .await
        .with_context(|| format!("list the Prometheus objects of {ns}"))?
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<Value>, _>>()?;
    let namespace = Api::<Namespace>::all(client.clone())
        .get(ns)
        .await
        .with_context(|| format!("get namespace {ns}"))?;
    let namespace_labels = serde_json::to_value(namespace.labels())?;
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let rejections: Vec<Rejection> = events
        .list(&ListParams::default().fields(&format!("reason={REJECTION_REASON},type=Warning")))
        .await
        .with_context(|| format!("list the {REJECTION_REASON} Events of {ns}"))?
        .items
        .iter()
        .filter_map(|e| Rejection::from_event(&serde_json::to_value(e).ok()?))
        .collect();
    let evidence = ConfigEvidence {
        prometheuses: &prometheuses,
        namespace_labels: Some(&namespace_labels),
        rejections: Some(&rejections),
    };
    Ok(assess_with_evidence(kind, &object, &evidence))
}

/// `Degraded/NoPodReady: "message"`, or the error.
fn describe_judgement(judgement: &Judgement) -> String {
    match judgement {
        Ok(health) => format!(
            "{}/{}: {:?}",
            health.verdict.as_str(),
            health.reason,
            health.message
        ),
        Err(err) => format!("not judged: {err}"),
    }
}

/// What the comparison found so far.
#[derive(Default)]
struct Agreement {
    /// Every step's last judgements, side by side.
    tables: Vec<String>,
    /// Objects whose verdicts differ between the clusters.
    differences: Vec<String>,
    /// Objects on which all clusters agree, but not on the verdict the step should bring.
    unsettled: Vec<String>,
}

impl Agreement {
    /// Judges `subjects` on every compared cluster until each has kept its expected verdict
    /// everywhere for [`CONFIRM`], or `deadline` passes; then records the last judgements.
    async fn step(
        &mut self,
        title: &str,
        clients: &[Client],
        subjects: &[Subject],
        deadline: Duration,
    ) {
        let started = Instant::now();
        let mut settled_since: Option<Instant> = None;
        let last = loop {
            let mut judged: Vec<Vec<Judgement>> = Vec::new();
            for subject in subjects {
                let mut row = Vec::new();
                for client in clients {
                    row.push(
                        judge(client, subject.kind, AGREE_NS, subject.name)
                            .await
                            .map_err(|e| format!("{e:#}")),
                    );
                }
                judged.push(row);
            }
            let settled = judged.iter().zip(subjects).all(|(row, subject)| {
                row.iter()
                    .all(|j| j.as_ref().is_ok_and(|h| h.verdict == subject.expected))
            });
            settled_since = if settled {
                settled_since.or_else(|| Some(Instant::now()))
            } else {
                None
            };
            let confirmed = settled_since.is_some_and(|since| since.elapsed() >= CONFIRM);
            if confirmed || started.elapsed() >= deadline {
                break judged;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut table = format!(
            "== {title} (after {:.1} s) ==",
            started.elapsed().as_secs_f32()
        );
        for (subject, row) in subjects.iter().zip(&last) {
            let lines: String = COMPARED
                .iter()
                .zip(row)
                .map(|((cluster, played), judgement)| {
                    format!(
                        "\n    {cluster} ({played}): {}",
                        describe_judgement(judgement)
                    )
                })
                .collect();
            let who = format!(
                "{} {AGREE_NS}/{} (expected {})",
                subject.kind,
                subject.name,
                subject.expected.as_str()
            );
            table.push_str(&format!("\n  {who}:{lines}"));
            let verdicts: Vec<Option<Verdict>> = row
                .iter()
                .map(|j| j.as_ref().ok().map(|h| h.verdict))
                .collect();
            let first = verdicts.first().copied().flatten();
            let agree = first.is_some() && verdicts.iter().all(|v| *v == first);
            if !agree {
                self.differences
                    .push(format!("{title}: {who}: the verdicts differ:{lines}"));
            } else if first != Some(subject.expected) {
                self.unsettled.push(format!(
                    "{title}: {who}: all agree, but not on the expected verdict within {} s:{lines}",
                    deadline.as_secs()
                ));
            }
        }
        println!("{table}");
        self.tables.push(table);
    }

    fn summary(&self) -> String {
        self.tables.join("\n")
    }

    /// Fails listing every difference (and every scenario that did not settle).
    fn verdict(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if !self.differences.is_empty() {
            problems.push(format!(
                "stacksmith's verdicts differ between the real prometheus-operator and the simulator \
                 ({}):\n{}",
                self.differences.len(),
                self.differences.join("\n")
            ));
        }
        if !self.unsettled.is_empty() {
            problems.push(format!(
                "scenarios that did not settle ({}):\n{}",
                self.unsettled.len(),
                self.unsettled.join("\n")
            ));
        }
        ensure!(
            problems.is_empty(),
            "{}\n\nevery step:\n{}",
            problems.join("\n\n"),
            self.summary()
        );
        Ok(())
    }
}

// --- Waiting -----------------------------------------------------------------------------------

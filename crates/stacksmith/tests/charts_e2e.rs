//! The Helm charts `charts/stacksmith` (hub) and `charts/stacksmith-remote` (member), tested
//! for real: rendered by the official `helm` binary (installed by `scripts/install-helm.sh` when
//! missing), the rendered objects applied to the real API servers of a test bed (which validate
//! them), their RBAC checked with `kubectl auth can-i` as the charts' ServiceAccounts, and the
//! operator run as those ServiceAccounts until a stack converges and is deleted.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::Kubeconfig;
use serde::Deserialize as _;
use serde_json::{Value, json};
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_controller::{
    LEASE_LABEL, LeaseOptions, OperatorOptions, PolicyMode, RunningOperator, SHARDS_ANNOTATION,
    shard_lease_name,
};
use stacksmith_core::ChildKind;
use stacksmith_testbed::{TestBed, TestBedOptions, ensure_namespace};

/// The hub release: its namespace holds the test bed's member kubeconfig Secrets.
const HUB_NAMESPACE: &str = "stacksmith-system";
const HUB_RELEASE: &str = "stacksmith";
const HUB_SA: &str = "system:serviceaccount:stacksmith-system:stacksmith";
/// The remote release, on each member.
const REMOTE_NAMESPACE: &str = "stacksmith";
const REMOTE_RELEASE: &str = "stacksmith-remote";
const REMOTE_SA: &str = "system:serviceaccount:stacksmith:stacksmith-remote";
/// The operator's name in the Leases when it runs as the hub chart's ServiceAccount.
const REPLICA: &str = "charts-e2e-replica";
/// How long the operator may take to get somewhere.
const WAIT: Duration = Duration::from_secs(90);

/// The metric families the operator exports (the dashboard may use these and nothing else).
const METRIC_FAMILIES: &[&str] = &[
    "stacksmith_reconciles_total",
    "stacksmith_reconcile_errors_total",
    "stacksmith_reconcile_duration_seconds",
    "stacksmith_stacks",
    "stacksmith_children",
    "stacksmith_stack_ready",
    "stacksmith_stack_children",
    "stacksmith_member_cluster_reachable",
    "stacksmith_api_requests_total",
    "stacksmith_build_info",
    "stacksmith_invalid_objects",
    "stacksmith_replica_info",
    "stacksmith_shard_held",
    "stacksmith_shard_reconciles_total",
];

fn charts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts")
}

/// The `helm` binary: `STACKSMITH_HELM`, else the cache (filled by the install script).
fn helm() -> PathBuf {
    static HELM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("STACKSMITH_HELM") {
            return PathBuf::from(path);
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("stacksmith")
            .join("helm-v4.1.4");
        let status = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-helm.sh"))
            .arg(&cache)
            .stdin(Stdio::null())
            .status()
            .expect("run scripts/install-helm.sh");
        assert!(status.success(), "scripts/install-helm.sh failed: {status}");
        cache.join("helm")
    })
    .clone()
}

/// Runs helm; returns (success, stdout, stderr).
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm())
        .args(args)
        .current_dir(charts())
        .stdin(Stdio::null())
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `helm template RELEASE CHART -n NAMESPACE EXTRA...`, as YAML and as parsed objects.
fn template(release: &str, chart: &str, namespace: &str, extra: &[&str]) -> (String, Vec<Value>) {
    let mut args = vec!["template", release, chart, "--namespace", namespace];
    args.extend_from_slice(extra);
    let (ok, yaml, err) = run_helm(&args);
    assert!(ok, "helm {args:?} failed: {err}");
    let objects = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).expect("helm printed valid YAML"))
        .filter(|v| !v.is_null())
        .collect();
    (yaml, objects)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn helm_lint_passes_for_both_charts_with_default_and_custom_values() {
    for args in [
        vec!["lint", "--strict", "stacksmith"],
        vec![
            "lint",
            "--strict",
            "stacksmith",
            "--set",
            "serviceMonitor.enabled=true,dashboards.enabled=false,logFormat=text",
            "--set",
            "kubeconfigSecretNamespaces={a,b}",
            "--set",
            "replicaCount=1,shards=8,leaseDurationSeconds=60",
        ],
        vec!["lint", "--strict", "stacksmith-remote"],
        vec![
            "lint",
            "--strict",
            "stacksmith-remote",
            "--set",
            "roles={grafana},tokenSecret.create=false",
        ],
    ] {
        let (ok, out, err) = run_helm(&args);
        assert!(ok, "helm {args:?}: {out}{err}");
        assert!(out.contains("0 chart(s) failed"), "helm {args:?}: {out}");
    }
}

#[test]
fn hub_chart_renders_the_operator_as_documented() {
    let (_, objects) = template(HUB_RELEASE, "stacksmith", HUB_NAMESPACE, &[]);
    let deployment = find(&objects, "Deployment", "stacksmith");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // Two replicas sharing the stacks through Leases: rolled a new pod first, a standby is always
    // there to take a stopped pod's Leases.
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 1, "maxUnavailable": 0})
    );
    assert_eq!(pod["serviceAccountName"], "stacksmith");
    assert_eq!(
        strings(&container["args"]),
        [
            "operator",
            "--metrics-addr",
            "0.0.0.0:8080",
            "--log-format",
            "json",
            "--log-level",
            "info,kube=warn,kube_client=off",
            "--tenant-policy",
            "required",
            "--credentials-namespace",
            "stacksmith-system",
            "--shards",
            "1",
            "--lease-namespace",
            "stacksmith-system",
            "--lease-duration-seconds",
            "15"
        ]
    );
    // Each replica's name in the Leases is its pod's name.
    assert_eq!(
        container["env"],
        json!([
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "STACKSMITH_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ])
    );
    // The replicas prefer different nodes (soft: a single-node cluster still runs both).
    assert_eq!(
        pod["affinity"],
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
            },
        }]}})
    );
    assert_eq!(container["image"], "ghcr.io/stacksmith-io/stacksmith:0.1.0");
    assert_eq!(container["ports"][0]["name"], "http-metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        strings(&container["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    let service = find(&objects, "Service", "stacksmith-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http-metrics");
    assert!(!kinds(&objects).contains("ServiceMonitor"));
    // A drain takes one of the two replicas at a time.
    let budget = find(&objects, "PodDisruptionBudget", "stacksmith");
    assert_eq!(budget["metadata"]["namespace"], HUB_NAMESPACE);
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    // The memory sized from the benchmark (docs/helm.md): 470 MiB measured at 10,000 stacks.
    assert_eq!(container["resources"]["requests"]["memory"], "512Mi");
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    // The secrets Roles (the kubeconfigs, read; the stacks' credentials, written) and the
    // Leases Role live in the release namespace only.
    let roles: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Role").collect();
    assert_eq!(roles.len(), 3);
    for role in &roles {
        assert_eq!(role["metadata"]["namespace"], HUB_NAMESPACE);
    }
    let credentials = find(&objects, "Role", "stacksmith-credentials");
    assert_eq!(
        strings(&credentials["rules"][0]["verbs"]),
        ["get", "create", "update", "delete"]
    );
    // The Leases: written by replace under a resourceVersion, never patched.
    let leases = find(&objects, "Role", "stacksmith-leases");
    assert_eq!(
        leases["rules"],
        json!([{
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "delete"],
        }])
    );
    let binding = find(&objects, "RoleBinding", "stacksmith-leases");
    assert_eq!(binding["metadata"]["namespace"], HUB_NAMESPACE);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "stacksmith-leases"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "stacksmith", "namespace": HUB_NAMESPACE}])
    );
    // The dashboard ConfigMap carries the shipped JSON unchanged.
    let dashboard = find(&objects, "ConfigMap", "stacksmith-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(charts().join("stacksmith/dashboards/stacksmith.json")).unwrap(),
    )
    .unwrap();
    let rendered: Value =
        serde_json::from_str(dashboard["data"]["stacksmith.json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered, shipped);

    let (_, custom) = template(
        "ops",
        "stacksmith",
        "operators",
        &[
            "--set",
            "metrics.port=9102,logFormat=text,logLevel=stacksmith=debug,image.tag=dev,tenantPolicy=optional",
            "--set",
            "replicaCount=3,shards=4,leaseDurationSeconds=30,podDisruptionBudget.maxUnavailable=2",
            "--set",
            "serviceMonitor.enabled=true,serviceMonitor.labels.release=prom,serviceMonitor.interval=15s",
            "--set",
            "dashboards.enabled=false",
            "--set",
            "kubeconfigSecretNamespaces={operators,member-secrets}",
        ],
    );
    let deployment = find(&custom, "Deployment", "ops-stacksmith");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        strings(&container["args"]),
        [
            "operator",
            "--metrics-addr",
            "0.0.0.0:9102",
            "--log-format",
            "text",
            "--log-level",
            "stacksmith=debug,kube_client=off",
            "--tenant-policy",
            "optional",
            "--credentials-namespace",
            "operators",
            "--shards",
            "4",
            "--lease-namespace",
            "operators",
            "--lease-duration-seconds",
            "30"
        ]
    );
    assert_eq!(container["image"], "ghcr.io/stacksmith-io/stacksmith:dev");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let budget = find(&custom, "PodDisruptionBudget", "ops-stacksmith");
    assert_eq!(budget["apiVersion"], "policy/v1");
    assert_eq!(budget["metadata"]["namespace"], "operators");
    assert_eq!(budget["spec"]["maxUnavailable"], 2);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(container["ports"][0]["containerPort"], 9102);
    let monitor = find(&custom, "ServiceMonitor", "ops-stacksmith");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert!(!kinds(&custom).contains("ConfigMap"));
    let role_namespaces: BTreeSet<&str> = custom
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "RoleBinding")
        .map(|o| o["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        role_namespaces,
        BTreeSet::from(["operators", "member-secrets"])
    );
    assert_eq!(
        find(&custom, "Role", "ops-stacksmith-leases")["metadata"]["namespace"],
        "operators"
    );

    // One replica: no budget (it would protect nothing or block every drain), no anti-affinity.
    let (_, single) = template(
        HUB_RELEASE,
        "stacksmith",
        HUB_NAMESPACE,
        &["--set", "replicaCount=1"],
    );
    assert!(!kinds(&single).contains("PodDisruptionBudget"));
    let deployment = find(&single, "Deployment", "stacksmith");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(deployment["spec"]["template"]["spec"]["affinity"].is_null());
    // Both turned off with two replicas.
    let (_, off) = template(
        HUB_RELEASE,
        "stacksmith",
        HUB_NAMESPACE,
        &[
            "--set",
            "podDisruptionBudget.enabled=false,spreadReplicasAcrossNodes=false",
        ],
    );
    assert!(!kinds(&off).contains("PodDisruptionBudget"));
    let deployment = find(&off, "Deployment", "stacksmith");
    assert!(deployment["spec"]["template"]["spec"]["affinity"].is_null());
    // An `affinity` of one's own is used as given, instead of the chart's preference.
    let own = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"},
        ]}],
    }}});
    let (_, given) = template(
        HUB_RELEASE,
        "stacksmith",
        HUB_NAMESPACE,
        &["--set-json", &format!("affinity={own}")],
    );
    let deployment = find(&given, "Deployment", "stacksmith");
    assert_eq!(deployment["spec"]["template"]["spec"]["affinity"], own);
}

#[test]
fn values_outside_the_schema_are_refused() {
    for (chart, set, field) in [
        ("stacksmith", "logFormat=xml", "logFormat"),
        ("stacksmith", "metrics.port=0", "port"),
        // The chart keeps kube_client=off: a filter that could lift it is refused.
        ("stacksmith", "logLevel=kube_client=debug", "logLevel"),
        (
            "stacksmith",
            "logLevel=kube_client::client=trace",
            "logLevel",
        ),
        ("stacksmith", "logLevel=[reconcile]=trace", "logLevel"),
        ("stacksmith", "replicaCount=-1", "replicaCount"),
        // The operator's own ranges: --shards 1..=256, --lease-duration-seconds 2..=300.
        ("stacksmith", "shards=0", "shards"),
        ("stacksmith", "shards=257", "shards"),
        (
            "stacksmith",
            "leaseDurationSeconds=1",
            "leaseDurationSeconds",
        ),
        (
            "stacksmith",
            "leaseDurationSeconds=301",
            "leaseDurationSeconds",
        ),
        // A budget of 0 would block every node drain.
        (
            "stacksmith",
            "podDisruptionBudget.maxUnavailable=0",
            "maxUnavailable",
        ),
        ("stacksmith", "tenantPolicy=off", "tenantPolicy"),
        ("stacksmith-remote", "roles={loki}", "roles"),
    ] {
        let (ok, _, err) = run_helm(&["template", "x", chart, "--set", set]);
        assert!(!ok, "helm template {chart} --set {set} succeeded");
        assert!(err.contains(field), "{chart} --set {set}: {err}");
    }
}

#[test]
fn remote_chart_grants_the_kinds_of_the_selected_roles_only() {
    let rules = |set: &str| {
        let (_, objects) = template(
            REMOTE_RELEASE,
            "stacksmith-remote",
            REMOTE_NAMESPACE,
            &["--set", set],
        );
        let role = find(&objects, "ClusterRole", "stacksmith-remote");
        let mut resources = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            assert!(
                !strings(&rule["verbs"])
                    .iter()
                    .any(|v| v == "*" || v == "update" || v == "escalate" || v == "bind"),
                "{rule}"
            );
            resources.extend(strings(&rule["resources"]));
        }
        (objects, resources)
    };
    let (objects, prometheus) = rules("roles={prometheus}");
    assert!(prometheus.contains("prometheuses") && prometheus.contains("rolebindings"));
    // prometheus-operator's rejection Events: read only, and only events.k8s.io.
    let role = find(&objects, "ClusterRole", "stacksmith-remote");
    let events: Vec<&Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| strings(&r["resources"]).iter().any(|r| r == "events"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(strings(&events[0]["apiGroups"]), ["events.k8s.io"]);
    assert_eq!(strings(&events[0]["verbs"]), ["list", "watch"]);
    assert!(!prometheus.iter().any(|r| r.starts_with("grafana")));
    assert!(kinds(&objects).contains("Secret"));
    // The ClusterRole stacksmith binds in the namespaces scrape targets list: under its fixed
    // name, the discovery rules exactly, bound by nothing the chart renders.
    let discovery = find(
        &objects,
        "ClusterRole",
        stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE,
    );
    let expected: Vec<Value> = stacksmith_api::rbac::DISCOVERY_RULES
        .iter()
        .map(|r| json!({"apiGroups": r.api_groups, "resources": r.resources, "verbs": r.verbs}))
        .collect();
    assert_eq!(discovery["rules"], Value::Array(expected));
    assert!(
        !objects.iter().any(
            |o| o["roleRef"]["name"] == stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE
        ),
        "the chart binds the discovery ClusterRole itself"
    );
    let (objects, grafana) = rules("roles={grafana},tokenSecret.create=false");
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"]
                == stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE),
        "a Grafana cluster got the discovery ClusterRole"
    );
    assert!(grafana.contains("grafanadashboards") && grafana.contains("grafanas"));
    assert!(!grafana.contains("prometheuses") && !grafana.contains("serviceaccounts"));
    assert!(!grafana.contains("events"));
    assert!(!kinds(&objects).contains("Secret"));
    // Secrets only for the data path; ConfigMaps never.
    for resources in [&prometheus, &grafana] {
        assert!(resources.contains("secrets") && !resources.contains("configmaps"));
    }
    assert!(prometheus.contains("networkpolicies") && !grafana.contains("networkpolicies"));
    let (_, without) = rules("roles={prometheus,grafana},dataPath=false");
    assert!(!without.contains("secrets") && !without.contains("networkpolicies"));
}

/// Every metric the dashboard queries is one the operator exports, and every exported family
/// is on the dashboard.
#[test]
fn dashboard_queries_exactly_the_operators_metric_families() {
    let text =
        std::fs::read_to_string(charts().join("stacksmith/dashboards/stacksmith.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["uid"], "stacksmith-operator");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("stacksmith_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| f.ends_with("_seconds"))
                        .map(String::from)
                })
                .unwrap_or(name);
            assert!(
                METRIC_FAMILIES.contains(&family.as_str()),
                "the dashboard queries {family}, which the operator does not export: {expr}"
            );
            used.insert(family);
        }
    }
    let all: BTreeSet<String> = METRIC_FAMILIES.iter().map(|s| s.to_string()).collect();
    assert_eq!(used, all, "metric families missing from the dashboard");
}

/// The end-to-end part: one test bed (hub, prometheus-1, grafana-1), both charts applied, their
/// RBAC checked, and the operator running as the charts' ServiceAccounts.
#[test]
fn charts_apply_to_real_clusters_and_their_rbac_is_sufficient_and_no_more() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let name = format!("charts-e2e-{}", std::process::id());
        let tb = TestBed::start(TestBedOptions::new(name))
            .await
            .expect("the test bed starts");
        let result = charts_e2e(&tb).await;
        tb.shutdown().await.expect("the test bed shuts down");
        if let Err(err) = result {
            panic!("{err:#}");
        }
    });
}

async fn charts_e2e(tb: &TestBed) -> anyhow::Result<()> {
    install_hub_chart(tb).await?;
    install_remote_chart(tb, "prometheus-1", "prometheus").await?;
    install_remote_chart(tb, "grafana-1", "grafana").await?;
    hub_rbac_is_least_privilege(tb)?;
    remote_rbac_is_least_privilege(tb)?;
    operator_converges_as_the_charts_service_accounts(tb).await
}

/// `kubectl apply --server-side` of `yaml` to `cluster` (as its admin).
fn kubectl_apply(tb: &TestBed, cluster: &str, yaml: &str) -> anyhow::Result<String> {
    let kubectl = tb.kubectl().context("kubectl")?;
    let cluster = tb.cluster(cluster)?;
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=helm-chart-test",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "kubectl apply on {}: {stdout}{}",
        cluster.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

async fn install_hub_chart(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?;
    ensure_namespace(hub.client(), HUB_NAMESPACE).await?;
    // Default values, CRDs included: the API server validates every object (the two replicas'
    // PodDisruptionBudget, anti-affinity and Leases Role among them).
    let (yaml, objects) = template(
        HUB_RELEASE,
        "stacksmith",
        HUB_NAMESPACE,
        &["--include-crds"],
    );
    ensure!(
        kinds(&objects).contains("PodDisruptionBudget"),
        "no PodDisruptionBudget with the default two replicas"
    );
    let applied = kubectl_apply(tb, "hub", &yaml)?;
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        ensure!(
            applied
                .lines()
                .any(|l| l.starts_with(&kind) && l.contains(&format!("/{name} "))),
            "kubectl did not report {kind} {name}: {applied}"
        );
    }
    // Non-default values, in another namespace; the ServiceMonitor goes to a cluster that has
    // prometheus-operator's CRDs (the upstream schema validates it).
    ensure_namespace(hub.client(), "operators").await?;
    ensure_namespace(hub.client(), "member-secrets").await?;
    let (_, custom) = template(
        "ops",
        "stacksmith",
        "operators",
        &[
            "--set",
            "metrics.port=9102,logFormat=text,serviceMonitor.enabled=true,serviceMonitor.interval=15s",
            "--set",
            "kubeconfigSecretNamespaces={operators,member-secrets}",
            // Three replicas over four shards, a budget given as a percentage.
            "--set",
            "replicaCount=3,shards=4,leaseDurationSeconds=30,podDisruptionBudget.maxUnavailable=50%",
        ],
    );
    ensure!(
        find(&custom, "PodDisruptionBudget", "ops-stacksmith")["spec"]["maxUnavailable"] == "50%",
        "no PodDisruptionBudget with maxUnavailable 50%"
    );
    let (monitors, rest): (Vec<Value>, Vec<Value>) = custom
        .into_iter()
        .partition(|o| o["kind"] == "ServiceMonitor");
    kubectl_apply(tb, "hub", &to_yaml(&rest)?)?;
    ensure_namespace(tb.cluster("prometheus-1")?.client(), "operators").await?;
    kubectl_apply(tb, "prometheus-1", &to_yaml(&monitors)?)?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        tb.cluster("prometheus-1")?.client().clone(),
        "operators",
        &stacksmith_testbed::simulator::api_resource(ChildKind::ServiceMonitor),
    );
    let stored = serde_json::to_value(api.get("ops-stacksmith").await?)?;
    ensure!(
        stored["spec"]["endpoints"][0]["port"] == "http-metrics"
            && stored["spec"]["endpoints"][0]["interval"] == "15s",
        "the ServiceMonitor lost fields: {stored}"
    );
    Ok(())
}

fn to_yaml(objects: &[Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(out)
}

async fn install_remote_chart(tb: &TestBed, cluster: &str, role: &str) -> anyhow::Result<()> {
    ensure_namespace(tb.cluster(cluster)?.client(), REMOTE_NAMESPACE).await?;
    let (yaml, objects) = template(
        REMOTE_RELEASE,
        "stacksmith-remote",
        REMOTE_NAMESPACE,
        &["--set", &format!("roles={{{role}}}")],
    );
    ensure!(kinds(&objects).contains("Secret"), "no token Secret");
    kubectl_apply(tb, cluster, &yaml)?;
    let secrets: Api<Secret> =
        Api::namespaced(tb.cluster(cluster)?.client().clone(), REMOTE_NAMESPACE);
    let token = secrets.get("stacksmith-remote-token").await?;
    ensure!(token.type_.as_deref() == Some("kubernetes.io/service-account-token"));
    Ok(())
}

/// `kubectl auth can-i` on `cluster` as `user`; `args` are the verb, resource and flags.
fn can_i(tb: &TestBed, cluster: &str, user: &str, args: &[&str]) -> anyhow::Result<bool> {
    let kubectl = tb.kubectl().context("kubectl")?;
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(tb.cluster(cluster)?.kubeconfig_path())
        .args(["auth", "can-i"])
        .args(args)
        .arg(format!("--as={user}"))
        .stdin(Stdio::null())
        .output()?;
    let answer = String::from_utf8_lossy(&out.stdout);
    match (answer.lines().next().map(str::trim), out.status.code()) {
        (Some("yes"), Some(0)) => Ok(true),
        (Some("no"), Some(1)) => Ok(false),
        _ => bail!(
            "kubectl auth can-i {args:?} on {cluster}: {answer}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn expect_rbac(
    tb: &TestBed,
    cluster: &str,
    user: &str,
    allowed: &[&[&str]],
    denied: &[&[&str]],
) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for args in allowed {
        if !can_i(tb, cluster, user, args)? {
            wrong.push(format!("denied but needed: {}", args.join(" ")));
        }
    }
    for args in denied {
        if can_i(tb, cluster, user, args)? {
            wrong.push(format!("allowed but not needed: {}", args.join(" ")));
        }
    }
    ensure!(
        wrong.is_empty(),
        "RBAC of {user} on {cluster}:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

fn hub_rbac_is_least_privilege(tb: &TestBed) -> anyhow::Result<()> {
    expect_rbac(
        tb,
        "hub",
        HUB_SA,
        &[
            &["list", "customerstacks.stacksmith.io", "--all-namespaces"],
            &["watch", "customerstacks.stacksmith.io", "--all-namespaces"],
            &["get", "customerstacks.stacksmith.io", "-n", "team-a"],
            &["patch", "customerstacks.stacksmith.io", "-n", "team-a"],
            &[
                "patch",
                "customerstacks.stacksmith.io",
                "--subresource=status",
                "-n",
                "team-a",
            ],
            &["list", "memberclusters.stacksmith.io"],
            &["watch", "memberclusters.stacksmith.io"],
            // Its finalizer stacksmith.io/member-in-use.
            &["patch", "memberclusters.stacksmith.io"],
            &[
                "patch",
                "memberclusters.stacksmith.io",
                "--subresource=status",
            ],
            &["list", "tenantpolicies.stacksmith.io"],
            &["watch", "tenantpolicies.stacksmith.io"],
            // The dashboard-source ConfigMaps (the watch selects them by label).
            &["list", "configmaps", "--all-namespaces"],
            &["watch", "configmaps", "--all-namespaces"],
            &["create", "events.events.k8s.io", "-n", "team-a"],
            &["patch", "events.events.k8s.io", "-n", "team-a"],
            &["get", "secrets", "-n", HUB_NAMESPACE],
            &["list", "secrets", "-n", HUB_NAMESPACE],
            &["watch", "secrets", "-n", HUB_NAMESPACE],
            // The stacks' data-path credentials (tenant CAs), in its own namespace only.
            &["create", "secrets", "-n", HUB_NAMESPACE],
            &["update", "secrets", "-n", HUB_NAMESPACE],
            &["delete", "secrets", "-n", HUB_NAMESPACE],
            // The shard and replica Leases, in its own namespace only.
            &["get", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["list", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["watch", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["create", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["update", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["delete", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
        ],
        &[
            &["get", "secrets", "-n", "default"],
            &["list", "secrets", "--all-namespaces"],
            &["get", "secrets", "-n", "kube-system"],
            &["create", "secrets", "-n", "team-a"],
            &["update", "secrets", "-n", "default"],
            &["patch", "secrets", "-n", HUB_NAMESPACE],
            &["delete", "customerstacks.stacksmith.io", "-n", "team-a"],
            &["create", "customerstacks.stacksmith.io", "-n", "team-a"],
            &["update", "customerstacks.stacksmith.io", "-n", "team-a"],
            &["create", "memberclusters.stacksmith.io"],
            &["delete", "memberclusters.stacksmith.io"],
            &["create", "tenantpolicies.stacksmith.io"],
            &["patch", "tenantpolicies.stacksmith.io"],
            &["delete", "tenantpolicies.stacksmith.io"],
            &["delete", "events.events.k8s.io", "-n", "team-a"],
            &["get", "configmaps", "-n", HUB_NAMESPACE],
            &["create", "configmaps", "-n", "team-a"],
            &["patch", "configmaps", "-n", "team-a"],
            &["create", "pods", "-n", HUB_NAMESPACE],
            &["create", "rolebindings", "-n", HUB_NAMESPACE],
            // Leases are replaced under a resourceVersion, never patched; and nowhere else (not
            // the nodes' or the control plane's, not the other release's namespace).
            &["patch", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &[
                "deletecollection",
                "leases.coordination.k8s.io",
                "-n",
                HUB_NAMESPACE,
            ],
            &["list", "leases.coordination.k8s.io", "--all-namespaces"],
            &["watch", "leases.coordination.k8s.io", "--all-namespaces"],
            &["create", "leases.coordination.k8s.io", "-n", "default"],
            &["get", "leases.coordination.k8s.io", "-n", "kube-system"],
            &["update", "leases.coordination.k8s.io", "-n", "kube-system"],
            &[
                "update",
                "leases.coordination.k8s.io",
                "-n",
                "kube-node-lease",
            ],
            &["create", "leases.coordination.k8s.io", "-n", "operators"],
            &["update", "leases.coordination.k8s.io", "-n", "operators"],
            &["delete", "leases.coordination.k8s.io", "-n", "operators"],
            &["watch", "leases.coordination.k8s.io", "-n", "operators"],
            &["*", "*"],
        ],
    )?;
    // The non-default release reads Secrets in exactly the namespaces it was given.
    let ops = "system:serviceaccount:operators:ops-stacksmith";
    expect_rbac(
        tb,
        "hub",
        ops,
        &[
            &["get", "secrets", "-n", "operators"],
            &["watch", "secrets", "-n", "member-secrets"],
            &["create", "leases.coordination.k8s.io", "-n", "operators"],
            &["update", "leases.coordination.k8s.io", "-n", "operators"],
            &["delete", "leases.coordination.k8s.io", "-n", "operators"],
            &["watch", "leases.coordination.k8s.io", "-n", "operators"],
        ],
        &[
            &["get", "secrets", "-n", HUB_NAMESPACE],
            &["create", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["update", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &["watch", "leases.coordination.k8s.io", "-n", HUB_NAMESPACE],
            &[
                "create",
                "leases.coordination.k8s.io",
                "-n",
                "member-secrets",
            ],
            &["patch", "leases.coordination.k8s.io", "-n", "operators"],
        ],
    )
}

fn remote_rbac_is_least_privilege(tb: &TestBed) -> anyhow::Result<()> {
    let manage = |resource: &'static str| -> Vec<Vec<&'static str>> {
        ["get", "list", "watch", "create", "patch", "delete"]
            .into_iter()
            .map(|verb| vec![verb, resource, "-n", "customer-acme"])
            .collect()
    };
    let mut allowed = Vec::new();
    for resource in [
        "namespaces",
        "resourcequotas",
        "limitranges",
        "serviceaccounts",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "prometheuses.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
        // The data path (`dataPath: true`): the credentials, the Service and the
        // NetworkPolicy of each tenant's Prometheus.
        "secrets",
        "services",
        "networkpolicies.networking.k8s.io",
    ] {
        allowed.extend(manage(resource));
    }
    allowed.push(vec!["list", "pods", "--all-namespaces"]);
    allowed.push(vec!["watch", "services", "-n", "customer-acme"]);
    allowed.push(vec![
        "list",
        "prometheuses.monitoring.coreos.com",
        "--all-namespaces",
    ]);
    // prometheus-operator's rejection Events, read only.
    allowed.push(vec!["list", "events.events.k8s.io", "--all-namespaces"]);
    allowed.push(vec!["watch", "events.events.k8s.io", "--all-namespaces"]);
    let denied: Vec<Vec<&str>> = vec![
        vec!["create", "events.events.k8s.io", "-n", "customer-acme"],
        vec!["delete", "events.events.k8s.io", "-n", "customer-acme"],
        vec!["list", "events", "-n", "customer-acme"],
        vec!["update", "secrets", "-n", "customer-acme"],
        vec!["get", "configmaps", "-n", "customer-acme"],
        vec!["create", "pods", "-n", "customer-acme"],
        vec!["update", "resourcequotas", "-n", "customer-acme"],
        vec![
            "update",
            "prometheuses.monitoring.coreos.com",
            "-n",
            "customer-acme",
        ],
        vec![
            "escalate",
            "roles.rbac.authorization.k8s.io",
            "-n",
            "customer-acme",
        ],
        vec![
            "bind",
            "roles.rbac.authorization.k8s.io",
            "-n",
            "customer-acme",
        ],
        vec!["create", "clusterroles.rbac.authorization.k8s.io"],
        vec!["bind", "clusterroles.rbac.authorization.k8s.io"],
        vec!["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        vec![
            "create",
            "alertmanagers.monitoring.coreos.com",
            "-n",
            "customer-acme",
        ],
        vec!["*", "*"],
    ];
    expect_rbac(
        tb,
        "prometheus-1",
        REMOTE_SA,
        &allowed.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &denied.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    )?;

    let mut allowed = Vec::new();
    // `grafanas`: a stack's dedicated instance is written like the other children.
    for resource in [
        "namespaces",
        "resourcequotas",
        "limitranges",
        "grafanas.grafana.integreatly.org",
        "grafanafolders.grafana.integreatly.org",
        "grafanadatasources.grafana.integreatly.org",
        "grafanadashboards.grafana.integreatly.org",
        // The datasources' client certificates (`dataPath: true`).
        "secrets",
    ] {
        allowed.extend(manage(resource));
    }
    // The shared instances are watched in every namespace.
    for verb in ["get", "list", "watch"] {
        allowed.push(vec![
            verb,
            "grafanas.grafana.integreatly.org",
            "-n",
            "grafana",
        ]);
    }
    let denied: Vec<Vec<&str>> = vec![
        vec!["update", "secrets", "-n", "customer-acme"],
        vec!["create", "services", "-n", "customer-acme"],
        vec![
            "create",
            "networkpolicies.networking.k8s.io",
            "-n",
            "customer-acme",
        ],
        vec!["create", "serviceaccounts", "-n", "customer-acme"],
        vec![
            "create",
            "roles.rbac.authorization.k8s.io",
            "-n",
            "customer-acme",
        ],
        vec!["list", "pods", "--all-namespaces"],
        vec!["list", "events.events.k8s.io", "--all-namespaces"],
        vec!["*", "*"],
    ];
    expect_rbac(
        tb,
        "grafana-1",
        REMOTE_SA,
        &allowed.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &denied.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    )
}

/// The member's admin kubeconfig acting as the remote chart's ServiceAccount: every request
/// the operator makes there is authorized as that ServiceAccount.
fn impersonating_kubeconfig(admin: &str, user: &str) -> anyhow::Result<String> {
    let mut config: Kubeconfig = serde_yaml::from_str(admin)?;
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_owned());
        }
    }
    Ok(serde_yaml::to_string(&config)?)
}

async fn operator_converges_as_the_charts_service_accounts(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    // The registered members' Secrets now act as the remote chart's ServiceAccount.
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), HUB_NAMESPACE);
    for member in ["prometheus-1", "grafana-1"] {
        let kubeconfig =
            impersonating_kubeconfig(tb.cluster(member)?.admin_kubeconfig(), REMOTE_SA)?;
        let patch = json!({"data": {"kubeconfig": ByteString(kubeconfig.into_bytes())}});
        secrets
            .patch(
                &format!("member-{member}-kubeconfig"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    // The shared Grafana instance the stack selects.
    stacksmith_testbed::simulator::create_shared_grafana(tb.cluster("grafana-1")?.client()).await?;

    // The operator, acting on the hub as the hub chart's ServiceAccount, and as the chart runs
    // it: sharing the stacks through Leases in the release namespace (alone, it takes the one
    // shard; without the Leases Role it would take none and nothing below would converge).
    let mut config = tb.hub()?.admin_config().await?;
    config.auth_info.impersonate = Some(HUB_SA.to_owned());
    let operator = RunningOperator::spawn_with_options(
        config,
        OperatorOptions {
            tenant_policy: PolicyMode::Optional,
            leases: Some(LeaseOptions {
                identity: REPLICA.to_owned(),
                namespace: HUB_NAMESPACE.to_owned(),
                shards: 1,
                duration: Duration::from_secs(15),
            }),
            ..OperatorOptions::default()
        },
    );
    let leases: Api<Lease> = Api::namespaced(hub.clone(), HUB_NAMESPACE);
    wait_for(&format!("the shard Lease held by {REPLICA}"), || {
        let leases = leases.clone();
        async move {
            let shard = leases.get_opt(&shard_lease_name(0)).await?;
            let held = shard.as_ref().is_some_and(|l| {
                l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(REPLICA)
                    && l.labels().get(LEASE_LABEL).map(String::as_str) == Some("shard")
                    && l.annotations().get(SHARDS_ANNOTATION).map(String::as_str) == Some("1")
            });
            let replicas = replica_leases(&leases).await?;
            Ok((
                held && replicas == [REPLICA],
                format!("shard Lease {shard:?}, replica Leases held by {replicas:?}"),
            ))
        }
    })
    .await?;

    let members: Api<MemberCluster> = Api::all(hub.clone());
    for member in ["prometheus-1", "grafana-1"] {
        wait_for(&format!("MemberCluster {member} Ready"), || {
            let members = members.clone();
            async move {
                let m = members.get(member).await?;
                let ready = m.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                Ok((ready, format!("{:?}", m.status)))
            }
        })
        .await?;
    }

    ensure_namespace(&hub, "team-a").await?;
    // The scrape target also looks in a namespace of the application's: stacksmith binds the
    // discovery ClusterRole there, holding its rules itself (no `bind`).
    let prometheus_cluster = tb.cluster("prometheus-1")?.client().clone();
    ensure_namespace(&prometheus_cluster, "acme-apps").await?;
    let stacks: Api<CustomerStack> = Api::namespaced(hub.clone(), "team-a");
    let manifest = stacksmith_e2e::stack_manifest(
        "acme",
        "acme",
        json!({"metrics": {"replicas": 1, "scrape": [{
            "name": "api",
            "selector": {"matchLabels": {"app": "api"}},
            "namespaces": ["acme-apps"],
            "endpoints": [{"port": "metrics"}],
        }]}}),
    );
    stacks
        .patch(
            "acme",
            &PatchParams::apply("charts-e2e").force(),
            &Patch::Apply(&manifest),
        )
        .await?;
    wait_for("CustomerStack team-a/acme Ready with 6 children", || {
        let stacks = stacks.clone();
        async move {
            let stack = stacks.get("acme").await?;
            let ready = stack.status.as_ref().is_some_and(|s| {
                s.observed_generation == stack.metadata.generation
                    && s.children.len() == 6
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            Ok((ready, serde_json::to_string(&stack.status)?))
        }
    })
    .await?;
    // The Prometheus's identity was written too (not a child, so checked here directly; a failed
    // write of it would keep the stack from Ready with `ApplyFailed`). The
    // Role grants what the remote ServiceAccount holds itself, so no `escalate` was needed; and
    // so does the discovery ClusterRole bound in acme-apps, so no `bind` was needed.
    let roles: Api<Role> = Api::namespaced(prometheus_cluster.clone(), "customer-acme");
    let bindings: Api<RoleBinding> = Api::namespaced(prometheus_cluster.clone(), "customer-acme");
    let discovery: Api<RoleBinding> = Api::namespaced(prometheus_cluster.clone(), "acme-apps");
    let accounts: Api<ServiceAccount> = Api::namespaced(prometheus_cluster, "customer-acme");
    wait_for(
        "Role, RoleBinding, ServiceAccount prometheus-acme, RoleBinding acme-apps/stacksmith-prometheus-acme",
        || {
            let (roles, bindings, discovery, accounts) = (
                roles.clone(),
                bindings.clone(),
                discovery.clone(),
                accounts.clone(),
            );
            async move {
                let role = roles.get_opt("prometheus-acme").await?.is_some();
                let binding = bindings.get_opt("prometheus-acme").await?.is_some();
                let account = accounts.get_opt("prometheus-acme").await?.is_some();
                let elsewhere = discovery
                    .get_opt("stacksmith-prometheus-acme")
                    .await?
                    .is_some_and(|b| {
                        b.role_ref.kind == "ClusterRole"
                            && b.role_ref.name
                                == stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE
                    });
                Ok((
                    role && binding && account && elsewhere,
                    format!(
                        "role {role}, binding {binding}, account {account}, \
                         discovery binding {elsewhere}"
                    ),
                ))
            }
        },
    )
    .await?;
    // Events are written (events.k8s.io, as the hub ServiceAccount): a new stack getting Ready
    // makes none, so the Prometheus is degraded (its pod not ready with the real operator, the
    // simulator's outcome otherwise) and healed: a Warning when the stack runs into the problem,
    // a Normal `Ready` when it recovers.
    let events: Api<Event> = Api::namespaced(hub.clone(), "team-a");
    for (healthy, reason) in [(false, "ChildDegraded"), (true, "Ready")] {
        tb.set_prometheus_healthy("prometheus-1", "customer-acme", "acme", healthy)
            .await?;
        wait_for(&format!("a {reason} Event for team-a/acme"), || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await?;
                let found = list.items.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme")
                });
                Ok((found, format!("{} events", list.items.len())))
            }
        })
        .await?;
    }

    // Deletion: children deleted on both members, then the finalizer removed.
    stacks.delete("acme", &DeleteParams::default()).await?;
    wait_for("CustomerStack team-a/acme gone", || {
        let stacks = stacks.clone();
        async move {
            let stack = stacks.get_opt("acme").await?;
            let status = stack
                .as_ref()
                .map(|s| serde_json::to_string(&s.status).unwrap_or_default());
            Ok((stack.is_none(), format!("{status:?}")))
        }
    })
    .await?;
    let prometheuses: Api<DynamicObject> = Api::namespaced_with(
        tb.cluster("prometheus-1")?.client().clone(),
        "customer-acme",
        &stacksmith_testbed::simulator::api_resource(ChildKind::Prometheus),
    );
    ensure!(
        prometheuses.get_opt("acme").await?.is_none(),
        "the Prometheus outlived its stack"
    );
    let discovery: Api<RoleBinding> =
        Api::namespaced(tb.cluster("prometheus-1")?.client().clone(), "acme-apps");
    ensure!(
        discovery
            .get_opt("stacksmith-prometheus-acme")
            .await?
            .is_none(),
        "the discovery RoleBinding outlived its stack"
    );
    // A stopped operator gives its shard back at once (update) and removes its replica Lease
    // (delete), as the chart's ServiceAccount.
    operator.stop().await;
    wait_for(
        "the shard Lease released and the replica Lease gone",
        || {
            let leases = leases.clone();
            async move {
                let shard = leases.get(&shard_lease_name(0)).await?;
                let holder = shard.spec.and_then(|s| s.holder_identity);
                let replicas = replica_leases(&leases).await?;
                Ok((
                    holder.as_deref().unwrap_or_default().is_empty() && replicas.is_empty(),
                    format!("shard holder {holder:?}, replica Leases held by {replicas:?}"),
                ))
            }
        },
    )
    .await?;
    Ok(())
}

/// The holders of the replica Leases (one per live replica).
async fn replica_leases(leases: &Api<Lease>) -> anyhow::Result<Vec<String>> {
    let list = leases
        .list(&ListParams::default().labels(&format!("{LEASE_LABEL}=replica")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|l| l.spec.and_then(|s| s.holder_identity))
        .collect())
}

/// Polls `check` (returning whether it holds and what was seen) until it holds or [`WAIT`]
/// passes.
async fn wait_for<F, Fut>(what: &str, check: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(bool, String)>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let last = match check().await {
            Ok((true, _)) => return Ok(()),
            Ok((false, seen)) => seen,
            Err(err) => format!("{err:#}"),
        };
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

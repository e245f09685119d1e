//! The one support library of stacksmith's end-to-end suites (those in this crate's `tests/` and
//! the CLI suites in `crates/stacksmith/tests/`, which need that crate's binary): starting the
//! operator next to the test bed, writing and waiting for stacks, reading children.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_api::{CustomerStack, CustomerStackStatus};
use stacksmith_controller::RunningOperator;
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use tokio::io::AsyncWriteExt as _;

mod webhook;

pub use webhook::Webhook;

/// Creates a namespace unless it exists.
pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    Ok(stacksmith_testbed::ensure_namespace(client, name).await?)
}
use stacksmith_testbed::harness::{Fixture, TestError, merge_json};
use stacksmith_testbed::simulator::api_resource;

/// The request counter of the suite's operator.
pub static OPERATOR_CALLS: std::sync::OnceLock<stacksmith_controller::api_calls::ApiCallCounter> =
    std::sync::OnceLock::new();

/// The default test bed plus a second Prometheus cluster, `prometheus-2`, for suites that stop
/// a member or move stacks between members.
pub fn with_second_prometheus(name: String) -> stacksmith_testbed::TestBedOptions {
    let mut options = stacksmith_testbed::TestBedOptions::new(name);
    options.remotes.insert(
        1,
        stacksmith_testbed::ClusterSpec {
            name: "prometheus-2".into(),
            roles: vec![stacksmith_api::ClusterRole::Prometheus],
        },
    );
    options
}

/// The default layout with the real prometheus-operator on `prometheus-1`, its
/// `StatusForConfigurationResources` feature gate off (as on a stock install).
pub fn stock_prometheus_operator(name: String) -> stacksmith_testbed::TestBedOptions {
    let mut options = stacksmith_testbed::TestBedOptions::new(name);
    options.prometheus_side = stacksmith_testbed::PrometheusSide::Real {
        status_for_configuration_resources: false,
    };
    options
}

/// How long a test waits for the operator to get somewhere.
pub const WAIT: Duration = Duration::from_secs(45);

/// A test body's error as the harness reports it.
pub async fn boxed(
    f: impl std::future::Future<Output = anyhow::Result<()>>,
) -> Result<(), TestError> {
    f.await.map_err(|e| format!("{e:#}").into())
}

/// Starts the operator next to the test bed, plus the shared Grafana instance tests select. Tenant
/// policies are optional (`--tenant-policy=optional`): the suites' stacks have none.
pub fn start_operator(
    tb: &TestBed,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fixture, TestError>> + Send + '_>> {
    Box::pin(spawn_operator(tb, None))
}

/// [`start_operator`] with `--tenant-policy=required` (the chart's default): a stack needs a
/// `TenantPolicy` naming its customer. The other suites' operator runs with `optional`.
pub fn start_operator_requiring_policies(
    tb: &TestBed,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fixture, TestError>> + Send + '_>> {
    Box::pin(spawn_operator_with(
        tb,
        stacksmith_controller::OperatorOptions {
            tenant_policy: stacksmith_controller::PolicyMode::Required,
            ..stacksmith_controller::OperatorOptions::default()
        },
    ))
}

/// [`start_operator`] with `concurrent_reconciles` reconcile slots instead of the default.
pub async fn spawn_operator(
    tb: &TestBed,
    concurrent_reconciles: Option<u16>,
) -> Result<Fixture, TestError> {
    let mut options = stacksmith_controller::OperatorOptions {
        tenant_policy: stacksmith_controller::PolicyMode::Optional,
        ..stacksmith_controller::OperatorOptions::default()
    };
    if let Some(slots) = concurrent_reconciles {
        options.concurrent_reconciles = slots;
    }
    spawn_operator_with(tb, options).await
}

/// Starts the operator with `options` next to the test bed, plus the shared Grafana instance
/// tests select.
pub async fn spawn_operator_with(
    tb: &TestBed,
    options: stacksmith_controller::OperatorOptions,
) -> Result<Fixture, TestError> {
    let grafana = tb
        .cluster("grafana-1")
        .map_err(|e| e.to_string())?
        .client()
        .clone();
    stacksmith_testbed::simulator::create_shared_grafana(&grafana)
        .await
        .map_err(|e| e.to_string())?;
    let hub = tb
        .hub()
        .map_err(|e| e.to_string())?
        .admin_config()
        .await
        .map_err(|e| e.to_string())?;
    let operator = RunningOperator::spawn_with_options(hub, options);
    let _ = OPERATOR_CALLS.set(operator.counter());
    let fixture: Fixture = Box::new(operator);
    Ok(fixture)
}

/// Polls `probe` until it returns `Ok(Ok(value))`, for at most `timeout`. `Ok(Err(state))` means
/// "not yet" (and describes what was seen); an error is remembered and retried. The timeout's
/// error names what was awaited and the last observed state.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(state)) => state,
            Err(err) => format!("error: {err:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {} s waiting for {what}; last observed: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn create_child(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
    labels: Value,
    spec: Value,
) -> anyhow::Result<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource(kind));
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": kind.api_version(), "kind": kind.as_str(),
        "metadata": {"name": name, "labels": labels}, "spec": spec,
    }))?;
    api.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("create {kind} {ns}/{name}"))
}

pub fn child_api(client: &Client, kind: ChildKind, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &api_resource(kind))
}

pub async fn get_child(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<DynamicObject>> {
    Ok(child_api(client, kind, ns).get_opt(name).await?)
}

/// A stack for `customer` on prometheus-1 / grafana-1 with one rule group, one scrape target and
/// one dashboard, selecting the shared Grafana; `overrides` is merged into the spec.
pub fn stack_manifest(name: &str, customer: &str, overrides: Value) -> Value {
    let mut spec = json!({
        "customer": customer,
        "metrics": {
            "cluster": "prometheus-1",
            "replicas": 2,
            "scrape": [{"name": "api", "selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]}],
            "alertingRules": [{"name": "core", "rules": [{"alert": "Down", "expr": "up == 0", "for": "5m"}]}],
        },
        "dashboards": {
            "cluster": "grafana-1",
            "instanceSelector": {"matchLabels": {"dashboards": "shared"}},
            "dashboards": [{"name": "overview", "json": "{\"title\": \"overview\"}"}],
        },
    });
    merge_json(&mut spec, overrides);
    json!({"apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack", "metadata": {"name": name}, "spec": spec})
}

/// Server-side applies a stack (as GitOps does) into `ns` on the hub, creating `ns`.
pub async fn apply_stack(
    hub: &Client,
    ns: &str,
    manifest: &Value,
) -> anyhow::Result<CustomerStack> {
    create_namespace(hub, ns).await?;
    let api: Api<CustomerStack> = Api::namespaced(hub.clone(), ns);
    let name = manifest["metadata"]["name"].as_str().context("name")?;
    Ok(api
        .patch(
            name,
            &PatchParams::apply("e2e-tests").force(),
            &Patch::Apply(manifest),
        )
        .await?)
}

pub fn stacks(hub: &Client, ns: &str) -> Api<CustomerStack> {
    Api::namespaced(hub.clone(), ns)
}

/// A condition of the stack's status at the stack's current generation.
pub fn condition<'a>(
    stack: &'a CustomerStack,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let status = stack.status.as_ref()?;
    if status.observed_generation != stack.metadata.generation {
        return None;
    }
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Waits until `check` holds for the stack; returns it. Fails with the last status seen.
pub async fn wait_stack(
    hub: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&CustomerStack) -> bool,
) -> anyhow::Result<CustomerStack> {
    let api = stacks(hub, ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    loop {
        if let Some(stack) = api.get_opt(name).await? {
            if check(&stack) {
                return Ok(stack);
            }
            last = stack.status.clone();
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "timed out waiting for {ns}/{name}: {what}; last status: {}",
                describe(last.as_ref())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn describe(status: Option<&CustomerStackStatus>) -> String {
    status.map_or_else(
        || "none".into(),
        |s| serde_json::to_string_pretty(s).unwrap_or_default(),
    )
}

pub async fn wait_ready(hub: &Client, ns: &str, name: &str) -> anyhow::Result<CustomerStack> {
    wait_stack(hub, ns, name, "Ready=True", |s| {
        condition(s, "Ready").is_some_and(|c| c.status == "True")
    })
    .await
}

pub async fn wait_not_ready(
    hub: &Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<CustomerStack> {
    wait_stack(hub, ns, name, &format!("Ready=False ({reason})"), |s| {
        condition(s, "Ready").is_some_and(|c| c.status == "False" && c.reason == reason)
    })
    .await
}

/// Waits until `check` holds for a remote object (or its absence).
pub async fn wait_child(
    client: &Client,
    kind: ChildKind,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(Option<&DynamicObject>) -> bool,
) -> anyhow::Result<Option<DynamicObject>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let object = get_child(client, kind, ns, name).await?;
        if check(object.as_ref()) {
            return Ok(object);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "timed out waiting for {kind} {ns}/{name}: {what}; last: {:?}",
                object.map(|o| serde_json::to_value(o).unwrap_or_default())
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets simulator outcomes on a remote cluster (merged into its scenario ConfigMap).
pub async fn set_outcomes(client: &Client, entries: &[(&str, &str)]) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "stacksmith-simulator");
    let data: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scenario"}, "data": data});
    api.patch(
        "scenario",
        &PatchParams::apply(&format!(
            "e2e-{}",
            entries.first().map(|e| e.0).unwrap_or("x")
        )),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Events recorded on a stack.
pub async fn stack_events(
    hub: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(hub.clone(), ns);
    let events = api.list(&ListParams::default()).await?;
    Ok(events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}

pub async fn wait_event(
    hub: &Client,
    ns: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = stack_events(hub, ns, name).await?;
        if let Some((_, note)) = events.iter().find(|(r, _)| r == reason) {
            return Ok(note.clone());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no {reason} Event on {ns}/{name}; events: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn delete_stack(hub: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    stacks(hub, ns)
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

pub async fn wait_stack_gone(hub: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let api = stacks(hub, ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match api.get_opt(name).await? {
            None => return Ok(()),
            Some(stack) if tokio::time::Instant::now() > deadline => {
                bail!(
                    "stack {ns}/{name} still there: {}",
                    describe(stack.status.as_ref())
                )
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn name_of(object: &DynamicObject) -> String {
    object.name_any()
}

/// Registers a Prometheus member `name` that does not answer: prometheus-1's kubeconfig (its CA
/// and token) pointed at a closed port on the loopback. Returns the token, to check that nothing
/// prints it.
pub async fn register_unanswering_member(tb: &TestBed, name: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;
    use stacksmith_api::MemberCluster;
    use stacksmith_testbed::SYSTEM_NAMESPACE;

    let prometheus = tb.cluster("prometheus-1")?;
    // Whatever address stacksmith reaches prometheus-1 at (its link), a closed port instead: a
    // second registration of prometheus-1 itself would be another test altogether.
    let kubeconfig = prometheus
        .operator_kubeconfig()
        .lines()
        .map(|line| match line.split_once("server: ") {
            Some((indent, _)) => format!("{indent}server: https://127.0.0.1:1"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    anyhow::ensure!(
        kubeconfig.contains("server: https://127.0.0.1:1"),
        "the kubeconfig names no server: {kubeconfig}"
    );
    let token =
        serde_yaml::from_str::<serde_json::Value>(&kubeconfig)?["users"][0]["user"]["token"]
            .as_str()
            .context("token")?
            .to_owned();
    let hub = tb.hub()?.client().clone();
    let secret_name = format!("member-{name}-kubeconfig");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            ..ObjectMeta::default()
        },
        data: Some([("kubeconfig".to_owned(), ByteString(kubeconfig.into_bytes()))].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(hub.clone(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let member: MemberCluster = serde_json::from_value(json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {
            "kubeconfigSecretRef": {"namespace": SYSTEM_NAMESPACE, "name": secret_name},
            "roles": ["prometheus"],
            "prometheusUrlTemplate": "http://{name}.{namespace}.svc:9090",
            "requestTimeoutSeconds": 3,
        },
    }))?;
    Api::<MemberCluster>::all(hub)
        .create(&PostParams::default(), &member)
        .await?;
    Ok(token)
}

/// Waits (blocking the thread) until `check` holds, at most `timeout`; fails the test naming
/// `what` otherwise. For tests that drive the `stacksmith` binary from a plain thread.
#[allow(clippy::panic)]
pub fn wait_until_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        if std::time::Instant::now() >= deadline {
            panic!("timed out: {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The text of gzip-compressed `bytes` (prometheus-operator's rendered configurations), through
/// the system's `gzip -dc`.
pub async fn gunzip(bytes: &[u8]) -> anyhow::Result<String> {
    let mut child = tokio::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    let input = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let written = stdin.write_all(&input).await;
        drop(stdin);
        written
    });
    let output = child.wait_with_output().await?;
    writer.await??;
    ensure!(
        output.status.success(),
        "gzip -dc failed: {}",
        output.status
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// A file prometheus-operator renders into a Secret (`key`, or `key.gz` gunzipped), once it
/// exists and `ready` accepts it (`Err` says what was seen), for at most `timeout`.
pub async fn rendered_file(
    member: &Client,
    ns: &str,
    name: &str,
    key: &str,
    timeout: Duration,
    ready: impl Fn(&str) -> Result<(), String>,
) -> anyhow::Result<String> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(member.clone(), ns);
    let gz = format!("{key}.gz");
    eventually(&format!("{key} in Secret {ns}/{name}"), timeout, || async {
        let Some(secret) = secrets.get_opt(name).await? else {
            return Ok(Err("no Secret yet".to_owned()));
        };
        let data = secret.data.unwrap_or_default();
        let text = match (data.get(&gz), data.get(key)) {
            (Some(zipped), _) => gunzip(&zipped.0).await?,
            (None, Some(plain)) => String::from_utf8(plain.0.clone())?,
            _ => return Ok(Err(format!("keys {:?}", data.keys().collect::<Vec<_>>()))),
        };
        Ok(ready(&text).map(|()| text))
    })
    .await
}

/// A directory of a test's own under the system's temporary directory, emptied at creation and
/// removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// `stacksmith-<name>-<pid>`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("stacksmith-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

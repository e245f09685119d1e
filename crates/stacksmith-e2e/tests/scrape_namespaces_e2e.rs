//! `spec.metrics.scrape[].namespaces` for real: a tenant's Prometheus discovers and scrapes a
//! Service in another namespace the stack lists, with exactly the RBAC stacksmith gives it (a
//! RoleBinding of the fixed ClusterRole `stacksmith-prometheus-discovery` in that namespace), and
//! nothing in a namespace the stack does not list.
//!
//! The real prometheus-operator renders the tenant Prometheus' configuration (the Secret
//! `prometheus-<name>`, key `prometheus.yaml.gz`), but pods run without containers here (kwok),
//! so no Prometheus runs in the cluster. The test runs the real Prometheus server on 127.0.0.1
//! with the scrape configurations the operator rendered, each `kubernetes_sd_configs` entry
//! pointed at the member's API server and authenticated as the tenant's Prometheus
//! ServiceAccount (a token from the TokenRequest API): discovery is then authorized exactly as in
//! the cluster, and without the RoleBinding it gets 403 in the listed namespace.
//!
//! That Prometheus is v3.13.1, the version prometheus-operator v0.93.0 configures by default,
//! built from its Go module with Kubernetes discovery (`scripts/install-prometheus.sh`, cached
//! in `~/.cache/stacksmith/prometheus-v3.13.1-kubernetes-sd/` after a first build of a few
//! minutes): Debian's `prometheus` package, which `stacksmith_testbed::data_servers` runs, is
//! built without Kubernetes discovery.
//!
//! The scraped Service has no selector; its Endpoints, written by the test, name a documentation
//! address ([`ENDPOINT_IP`]) because the API server refuses loopback addresses in Endpoints and
//! EndpointSlices alike (`may not be in the loopback range`), and one relabelling rule, appended
//! to each job, rewrites that address to 127.0.0.1, where the test serves `/metrics`. Everything else about
//! the job (selection by Service label and port name, the `namespace` label) is the operator's.

use stacksmith_e2e as support;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE;
use stacksmith_testbed::data_servers::http_client;
use stacksmith_testbed::harness::{self, Suite, test};
use stacksmith_testbed::process::{self, ServerCommand, Supervised};
use stacksmith_testbed::{PrometheusOperatorRun, TestBed, kubeconfig};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The Prometheus cluster (the real prometheus-operator, gate off as on a stock install).
const CLUSTER: &str = "prometheus-1";
/// The address the hand-written Endpoints carry (TEST-NET-3, RFC 5737): the API server refuses
/// 127.0.0.0/8 there; the test's relabelling rule turns it into 127.0.0.1.
const ENDPOINT_IP: &str = "203.0.113.10";
/// The label the scrape target selects Services by.
const APP_LABEL: &str = "tenant-app";
/// Builds Prometheus with Kubernetes discovery into the directory it is given (exit 3: no Go).
const INSTALL_PROMETHEUS: &str = include_str!("../scripts/install-prometheus.sh");
/// The Prometheus release built (kept equal to the script).
const PROMETHEUS_VERSION: &str = "v3.13.1";
/// How long the slow steps may take on two loaded cores (a Prometheus to start, discovery to
/// list, a failed write's retry to come round).
const SLOW: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stock_prometheus_operator,
            setup: Some(start_operator),
            serial: false,
        },
        "scrape-namespaces-e2e",
        vec![
            test(
                "a_listed_namespace_is_discovered_and_scraped_and_no_other",
                |tb| Box::pin(boxed(listed_namespace_is_scraped(tb))),
            ),
            test(
                "a_listed_namespace_that_does_not_exist_is_named_until_it_does",
                |tb| Box::pin(boxed(missing_namespace(tb))),
            ),
        ],
    )
}

/// The scrape target of these tests: Services labelled `app: tenant-app`, port `metrics`, in
/// `namespaces`.
fn scrape_overrides(namespaces: &[&str]) -> Value {
    json!({"metrics": {
        "replicas": 1,
        "scrape": [{
            "name": "app",
            "selector": {"matchLabels": {"app": APP_LABEL}},
            "namespaces": namespaces,
            "endpoints": [{"port": "metrics", "interval": "2s"}],
        }],
    }})
}

async fn listed_namespace_is_scraped(tb: &TestBed) -> anyhow::Result<()> {
    let started = Instant::now();
    if !matches!(
        tb.prometheus_operator_on(CLUSTER),
        Some(PrometheusOperatorRun::Real { .. })
    ) {
        eprintln!(
            "skipped: no real prometheus-operator on {CLUSTER} ({}), so no configuration to run",
            tb.control_plane()
        );
        return Ok(());
    }
    // Built on first use (minutes): meanwhile the stack converges.
    let installing = tokio::spawn(install_prometheus());
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?;
    let admin = member.client().clone();
    let (customer, stack_ns) = ("scrape", "scrape-ns");
    let tenant = format!("customer-{customer}");
    let identity = format!("prometheus-{customer}");
    let binding = format!("stacksmith-prometheus-{customer}");
    let (listed, unlisted) = ("apps-scrape", "other-scrape");

    // The application: /metrics on the loopback, behind a Service in each of two namespaces.
    let metrics = MetricsEndpoint::start().await?;
    for ns in [listed, unlisted] {
        create_namespace(&admin, ns).await?;
        app_service(&admin, ns, metrics.port).await?;
    }

    // The stack lists one of them.
    apply_stack(
        &hub,
        stack_ns,
        &stack_manifest("s", customer, scrape_overrides(&[listed])),
    )
    .await?;
    stack_ready(&hub, stack_ns, "s").await?;
    let written = Api::<RoleBinding>::namespaced(admin.clone(), listed)
        .get(&binding)
        .await
        .with_context(|| format!("the RoleBinding {listed}/{binding}"))?;
    ensure!(
        written.role_ref.kind == "ClusterRole"
            && written.role_ref.name == PROMETHEUS_DISCOVERY_CLUSTER_ROLE,
        "the RoleBinding binds {:?}",
        written.role_ref
    );
    let subjects = written.subjects.unwrap_or_default();
    ensure!(
        subjects.len() == 1
            && subjects[0].kind == "ServiceAccount"
            && subjects[0].name == identity
            && subjects[0].namespace.as_deref() == Some(tenant.as_str()),
        "the RoleBinding's subjects: {subjects:?}"
    );
    ensure!(
        Api::<RoleBinding>::namespaced(admin.clone(), unlisted)
            .get_opt(&binding)
            .await?
            .is_none(),
        "a RoleBinding in {unlisted}, which the stack does not list"
    );
    ensure!(
        inventoried(&hub, stack_ns, listed, &binding).await?,
        "the RoleBinding in {listed} is not in the stack's inventory"
    );

    // The real Prometheus with the operator's scrape configurations, as the tenant's identity.
    let rendered = rendered_config(&admin, &tenant, customer, listed).await?;
    let token = service_account_token(&admin, &tenant, &identity).await?;
    let dir = tb.dir().join("scrape-namespaces-prometheus");
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token)?;
    let ca_file = tb.dir().join("pki").join("ca.crt");
    let config = prometheus_config(
        &rendered,
        &member.server_url(),
        &ca_file,
        &token_file,
        unlisted,
    )?;
    let Some(program) = installing.await?? else {
        eprintln!(
            "skipped after the stack's checks: no Go toolchain or module proxy to build \
             Prometheus {PROMETHEUS_VERSION} with Kubernetes discovery"
        );
        delete_stack(&hub, stack_ns, "s").await?;
        return wait_stack_gone(&hub, stack_ns, "s").await;
    };
    let prometheus = Prometheus::start(&program, &dir, &config)
        .await
        .context("the real Prometheus with the operator's scrape configurations")?;
    let client = prometheus.client.clone();

    // Discovered in the listed namespace, and up.
    let target = eventually(
        &format!("an active target in {listed}, up"),
        SLOW,
        || async {
            let targets = get_json(&client, "/api/v1/targets").await?;
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let found = active
                .iter()
                .find(|t| t["labels"]["namespace"] == listed && t["health"] == "up")
                .cloned();
            Ok(found.ok_or_else(|| format!("targets: {}", summary(&active))))
        },
    )
    .await?;
    ensure!(
        target["labels"]["service"] == "app",
        "the target is not Service {listed}/app: {target}"
    );
    // Scraped, with the namespace label the operator's relabelling gives it.
    eventually(&format!("tenant_app_up 1 from {listed}"), SLOW, || async {
        let answer = get_json(&client, "/api/v1/query?query=tenant_app_up").await?;
        let result = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let scraped = result
            .iter()
            .any(|s| s["metric"]["namespace"] == listed && s["value"][1] == "1");
        Ok(if scraped {
            Ok(())
        } else {
            Err(format!("{answer}"))
        })
    })
    .await?;

    // Least privilege: the same identity may read nothing in the namespace not listed. The
    // Prometheus tried (a job of the same shape looks there) and was refused...
    // As logfmt quotes the API server's message: `... in the namespace \"other-scrape\"`.
    let refused = [
        format!("namespace \\\"{unlisted}\\\""),
        format!("namespace \"{unlisted}\""),
    ];
    eventually(
        &format!("Prometheus' discovery refused in {unlisted} (its log)"),
        SLOW,
        || async {
            let log = std::fs::read_to_string(prometheus.server.log())?;
            let found = log
                .lines()
                .any(|line| line.contains("forbidden") && refused.iter().any(|r| line.contains(r)));
            Ok(if found {
                Ok(())
            } else {
                Err(format!("no line with `forbidden` and `{}` yet", refused[1]))
            })
        },
    )
    .await?;
    let targets = get_json(&client, "/api/v1/targets?state=any").await?;
    let from_unlisted: Vec<&Value> = ["activeTargets", "droppedTargets"]
        .iter()
        .flat_map(|state| targets["data"][*state].as_array().into_iter().flatten())
        .filter(|t| {
            t["labels"]["namespace"] == unlisted
                || t["discoveredLabels"]["__meta_kubernetes_namespace"] == unlisted
        })
        .collect();
    ensure!(
        from_unlisted.is_empty(),
        "targets discovered in {unlisted}: {from_unlisted:?}"
    );
    // ...and so is the token itself, for each kind discovery reads.
    let as_prometheus = token_client(tb, &token).await?;
    readable(&as_prometheus, listed)
        .await
        .with_context(|| format!("the tenant's Prometheus reading {listed}"))?;
    forbidden_everywhere(&as_prometheus, unlisted).await?;

    // The namespace dropped from the stack: its RoleBinding is deleted (by the inventory's uid),
    // the stack stays Ready (not a move), and the token reads nothing there any more.
    apply_stack(
        &hub,
        stack_ns,
        &stack_manifest("s", customer, scrape_overrides(&[])),
    )
    .await?;
    stack_ready(&hub, stack_ns, "s").await?;
    eventually(
        &format!("the RoleBinding {listed}/{binding} deleted"),
        SLOW,
        || async {
            let left = Api::<RoleBinding>::namespaced(admin.clone(), listed)
                .get_opt(&binding)
                .await?;
            Ok(match left {
                None => Ok(()),
                Some(left) => Err(format!(
                    "still there (deletionTimestamp {:?})",
                    left.metadata.deletion_timestamp
                )),
            })
        },
    )
    .await?;
    forbidden_everywhere(&as_prometheus, listed).await?;
    ensure!(
        !inventoried(&hub, stack_ns, listed, &binding).await?,
        "the deleted RoleBinding is still in the stack's inventory"
    );

    prometheus.stop().await?;
    delete_stack(&hub, stack_ns, "s").await?;
    wait_stack_gone(&hub, stack_ns, "s").await?;
    // The listed namespace was never the stack's: it stays, with the application.
    ensure!(
        Api::<Namespace>::all(admin.clone())
            .get(listed)
            .await?
            .metadata
            .deletion_timestamp
            .is_none(),
        "{listed} is being deleted"
    );
    eprintln!(
        "a_listed_namespace_is_discovered_and_scraped_and_no_other took {:.1} s",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

async fn missing_namespace(tb: &TestBed) -> anyhow::Result<()> {
    let started = Instant::now();
    let hub = tb.hub()?.client().clone();
    let admin = tb.cluster(CLUSTER)?.client().clone();
    let (customer, stack_ns, absent) = ("scrape-late", "scrape-late-ns", "apps-late");
    let binding = format!("stacksmith-prometheus-{customer}");
    apply_stack(
        &hub,
        stack_ns,
        &stack_manifest("s", customer, scrape_overrides(&[absent])),
    )
    .await?;
    let expected = format!(
        "writing RoleBinding {absent}/{binding} on {CLUSTER} failed: namespace {absent} does not \
         exist"
    );
    wait_stack(
        &hub,
        stack_ns,
        "s",
        &format!("Ready=False ApplyFailed: {expected}"),
        |s| {
            condition(s, "Ready").is_some_and(|c| {
                c.status == "False" && c.reason == "ApplyFailed" && c.message.contains(&expected)
            })
        },
    )
    .await?;
    // The namespace appears: a later pass writes the RoleBinding and the stack gets Ready.
    create_namespace(&admin, absent).await?;
    eventually(
        &format!("the RoleBinding {absent}/{binding}"),
        SLOW,
        || async {
            let found = Api::<RoleBinding>::namespaced(admin.clone(), absent)
                .get_opt(&binding)
                .await?;
            Ok(found.map(|_| ()).ok_or_else(|| "not yet".to_owned()))
        },
    )
    .await?;
    stack_ready(&hub, stack_ns, "s").await?;
    delete_stack(&hub, stack_ns, "s").await?;
    wait_stack_gone(&hub, stack_ns, "s").await?;
    ensure!(
        Api::<RoleBinding>::namespaced(admin, absent)
            .get_opt(&binding)
            .await?
            .is_none(),
        "the RoleBinding outlived its stack"
    );
    eprintln!(
        "a_listed_namespace_that_does_not_exist_is_named_until_it_does took {:.1} s",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// Waits (up to [`SLOW`]) until the stack is Ready at its current generation.
async fn stack_ready(hub: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
    let api = stacks(hub, ns);
    eventually(&format!("{ns}/{name} Ready"), SLOW, || async {
        let stack = api.get(name).await?;
        Ok(
            match condition(&stack, "Ready").filter(|c| c.status == "True") {
                Some(_) => Ok(()),
                None => Err(describe(stack.status.as_ref())),
            },
        )
    })
    .await
}

/// Whether the stack's inventory lists the RoleBinding `namespace/name`.
async fn inventoried(hub: &Client, ns: &str, namespace: &str, name: &str) -> anyhow::Result<bool> {
    let stack = stacks(hub, ns).get("s").await?;
    Ok(stack.status.is_some_and(|status| {
        status
            .inventory
            .iter()
            .any(|e| e.kind == "RoleBinding" && e.namespace == namespace && e.name == name)
    }))
}

/// A Service `app` without selector in `ns`, labelled for the scrape target, port `metrics`,
/// and its Endpoints at [`ENDPOINT_IP`]:`port`.
async fn app_service(admin: &Client, ns: &str, port: u16) -> anyhow::Result<()> {
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "app", "labels": {"app": APP_LABEL}},
        "spec": {"ports": [{"name": "metrics", "port": port, "targetPort": port}]},
    }))?;
    Api::<Service>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .with_context(|| format!("create Service {ns}/app"))?;
    let endpoints: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "app", "labels": {"app": APP_LABEL}},
        "subsets": [{
            "addresses": [{"ip": ENDPOINT_IP}],
            "ports": [{"name": "metrics", "port": port}],
        }],
    }))?;
    Api::<Endpoints>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &endpoints)
        .await
        .with_context(|| format!("create Endpoints {ns}/app"))?;
    Ok(())
}

/// The configuration prometheus-operator rendered for the tenant's Prometheus (gunzipped), once
/// it holds the job of the scrape target looking in `listed`.
async fn rendered_config(
    admin: &Client,
    tenant: &str,
    prometheus: &str,
    listed: &str,
) -> anyhow::Result<Value> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), tenant);
    let name = format!("prometheus-{prometheus}");
    let job = format!("serviceMonitor/{tenant}/{prometheus}-app/0");
    eventually(
        &format!("Secret {tenant}/{name} with the job {job}"),
        SLOW,
        || async {
            let Some(secret) = secrets.get_opt(&name).await? else {
                return Ok(Err("no Secret yet".to_owned()));
            };
            let gz = secret
                .data
                .as_ref()
                .and_then(|d| d.get("prometheus.yaml.gz"))
                .context("no prometheus.yaml.gz")?;
            let yaml = gunzip(&gz.0).await?;
            let config: Value = serde_yaml::from_str(&yaml)?;
            let has_job = config["scrape_configs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["job_name"] == job.as_str() && c.to_string().contains(listed));
            Ok(if has_job {
                Ok(config)
            } else {
                Err(format!("scrape configs: {}", config["scrape_configs"]))
            })
        },
    )
    .await
}

/// A token of the tenant Prometheus' ServiceAccount (TokenRequest API, one hour).
async fn service_account_token(
    admin: &Client,
    tenant: &str,
    identity: &str,
) -> anyhow::Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(admin.clone(), tenant)
        .create_token_request(identity, &PostParams::default(), &request)
        .await
        .with_context(|| format!("a token of ServiceAccount {tenant}/{identity}"))?;
    answer
        .status
        .and_then(|status| status.token)
        .context("no token in the answer")
}

/// The Prometheus configuration of the test: the operator's jobs, each discovering through the
/// member's API server as the tenant's ServiceAccount, plus a copy of the tenant's job looking
/// in `unlisted` (to show that discovery there is refused).
fn prometheus_config(
    rendered: &Value,
    api_server: &str,
    ca_file: &Path,
    token_file: &Path,
    unlisted: &str,
) -> anyhow::Result<String> {
    // The config-reloader of a real pod fills in the shard; there is one.
    let rendered: Value =
        serde_json::from_str(&serde_json::to_string(rendered)?.replace("$(SHARD)", "0"))?;
    let mut jobs = Vec::new();
    for job in rendered["scrape_configs"]
        .as_array()
        .context("no scrape_configs")?
    {
        let Value::Object(mut kept) = job.clone() else {
            bail!("a scrape config is not a map: {job}");
        };
        let Some(Value::Array(sd)) = kept.get_mut("kubernetes_sd_configs") else {
            continue;
        };
        for sd in sd.iter_mut() {
            sd["api_server"] = json!(api_server);
            sd["tls_config"] = json!({"ca_file": ca_file});
            sd["authorization"] = json!({"type": "Bearer", "credentials_file": token_file});
        }
        let relabel = kept
            .entry("relabel_configs")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .context("relabel_configs is not a list")?;
        relabel.push(json!({
            "source_labels": ["__address__"],
            "regex": format!("{}:(\\d+)", ENDPOINT_IP.replace('.', "\\.")),
            "target_label": "__address__",
            "replacement": "127.0.0.1:$1",
            "action": "replace",
        }));
        jobs.push(Value::Object(kept));
    }
    let tenant_job = jobs
        .first()
        .cloned()
        .context("the operator rendered no job with Kubernetes discovery")?;
    let mut probe = tenant_job;
    probe["job_name"] = json!(format!("unlisted/{unlisted}"));
    for sd in probe["kubernetes_sd_configs"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        sd["namespaces"] = json!({"names": [unlisted]});
    }
    jobs.push(probe);
    let config = json!({
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": jobs,
    });
    Ok(serde_yaml::to_string(&config)?)
}

/// A client of the member acting with `token`.
async fn token_client(tb: &TestBed, token: &str) -> anyhow::Result<Client> {
    let member = tb.cluster(CLUSTER)?;
    let ca = std::fs::read_to_string(tb.dir().join("pki").join("ca.crt"))?;
    let yaml = kubeconfig::render(CLUSTER, &member.server_url(), &ca, "prometheus", token);
    Ok(kubeconfig::client_from_yaml(CLUSTER, &yaml).await?)
}

/// Lists what Prometheus' discovery lists in `ns`.
async fn readable(client: &Client, ns: &str) -> anyhow::Result<()> {
    let params = ListParams::default();
    Api::<Endpoints>::namespaced(client.clone(), ns)
        .list(&params)
        .await?;
    Api::<Service>::namespaced(client.clone(), ns)
        .list(&params)
        .await?;
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&params)
        .await?;
    Ok(())
}

/// Fails unless `client` is refused (403) every list discovery makes in `ns`.
async fn forbidden_everywhere(client: &Client, ns: &str) -> anyhow::Result<()> {
    let params = ListParams::default();
    let answers = [
        (
            "endpoints",
            Api::<Endpoints>::namespaced(client.clone(), ns)
                .list(&params)
                .await
                .map(|_| ()),
        ),
        (
            "services",
            Api::<Service>::namespaced(client.clone(), ns)
                .list(&params)
                .await
                .map(|_| ()),
        ),
        (
            "pods",
            Api::<Pod>::namespaced(client.clone(), ns)
                .list(&params)
                .await
                .map(|_| ()),
        ),
    ];
    for (what, answer) in answers {
        match answer {
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            other => bail!("listing {what} in {ns} as the tenant's Prometheus: {other:?}"),
        }
    }
    Ok(())
}

/// `job namespace/service health` of each target, for messages.
fn summary(targets: &[Value]) -> String {
    let listed: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "{} {}/{} {} {}",
                t["labels"]["job"],
                t["labels"]["namespace"],
                t["labels"]["service"],
                t["health"],
                t["lastError"]
            )
        })
        .collect();
    format!("[{}]", listed.join(", "))
}

async fn get_json(client: &kube::Client, path: &str) -> anyhow::Result<Value> {
    let request = http::Request::get(path).body(Vec::new())?;
    let text = tokio::time::timeout(Duration::from_secs(10), client.request_text(request))
        .await
        .with_context(|| format!("GET {path} timed out"))?
        .with_context(|| format!("GET {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("GET {path} answered {text}"))
}

/// `/metrics` on 127.0.0.1 (any path answers): `tenant_app_up 1`.
struct MetricsEndpoint {
    port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(err) = serve_metrics(stream).await {
                        eprintln!("metrics endpoint: {err:#}");
                    }
                });
            }
        });
        Ok(MetricsEndpoint { port, server })
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads one request's head, answers with the metrics and closes.
async fn serve_metrics(mut stream: TcpStream) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed within the request head");
        head.extend_from_slice(&chunk[..n]);
    }
    let body = "# TYPE tenant_app_up gauge\ntenant_app_up 1\n";
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Installs (builds, on first use) Prometheus with Kubernetes discovery; `None` when there is no
/// Go toolchain or module proxy to build it with.
async fn install_prometheus() -> anyhow::Result<Option<std::path::PathBuf>> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("stacksmith")
        .join(format!("prometheus-{PROMETHEUS_VERSION}-kubernetes-sd"));
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(INSTALL_PROMETHEUS)
        .arg("install-prometheus.sh")
        .arg(&cache)
        .stdin(std::process::Stdio::null())
        // Never killed halfway: the script holds a lock and writes the cache.
        .kill_on_drop(false)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(1800), run)
        .await
        .context("install-prometheus.sh took more than 30 minutes")??;
    match status.code() {
        Some(0) => Ok(Some(cache.join("prometheus"))),
        Some(3) => Ok(None),
        _ => bail!("install-prometheus.sh failed ({status})"),
    }
}

/// A Prometheus server on 127.0.0.1, its configuration, data and log in `dir`, under the test
/// bed's guard (it stops when dropped, or when this process dies).
struct Prometheus {
    server: Supervised,
    client: Client,
}

impl Prometheus {
    async fn start(program: &Path, dir: &Path, config: &str) -> anyhow::Result<Self> {
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config)?;
        let port = process::free_port()?;
        let mut server = Supervised::start(&ServerCommand {
            name: "prometheus (kubernetes discovery)".into(),
            program: program.to_path_buf(),
            args: vec![
                format!("--config.file={}", config_file.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            log: dir.join("prometheus.log"),
            env: Vec::new(),
        })?;
        let client = http_client(&format!("http://127.0.0.1:{port}"), None).await?;
        let deadline = Instant::now() + SLOW;
        loop {
            let request = http::Request::get("/-/ready").body(Vec::new())?;
            let ready = tokio::time::timeout(Duration::from_secs(2), client.request_text(request))
                .await
                .is_ok_and(|answer| answer.is_ok());
            if ready {
                return Ok(Prometheus { server, client });
            }
            if !server.is_running() || Instant::now() > deadline {
                bail!(
                    "Prometheus did not become ready; the end of {}:\n{}",
                    server.log().display(),
                    server.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        Ok(self.server.stop().await?)
    }
}

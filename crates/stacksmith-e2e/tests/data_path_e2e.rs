//! The data path for real: a Prometheus cluster with `spec.prometheusExposure` on the real
//! prometheus-operator (gate off, as on a stock install), two tenants.
//!
//! - both stacks become Ready; each tenant namespace holds stacksmith's Service, NetworkPolicy
//!   and serving-certificate Secret, the Grafana cluster the datasource's client-certificate
//!   Secret, and the datasource reaches `https://<service>.<namespace>.svc:9090` with its
//!   certificate filled in by grafana-operator's `valuesFrom`;
//! - the web configuration prometheus-operator renders for the tenant's Prometheus (its
//!   `prometheus-<name>-web-config` Secret), with the files it names taken from the Secret
//!   stacksmith wrote, is run by a real Prometheus (Debian's `prometheus`) on 127.0.0.1;
//! - a query presenting the client certificate stacksmith delivered to the Grafana cluster is
//!   answered; one without a certificate, or with the other tenant's, is refused;
//! - after a rotation (the stack's `stacksmith.io/rotate-credentials`), the same with the new
//!   material; the old client certificate keeps working until it expires (same tenant CA: no
//!   gap while the clusters take the new material in turn);
//! - nothing of the material appears in the stacks' status;
//! - deleting a stack deletes its credentials on both members and its tenant CA on the hub.

use stacksmith_e2e as support;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use stacksmith_api::MemberCluster;
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::data_servers::{ClientTls, PrometheusOptions, PrometheusServer};
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

/// The Prometheus cluster (the real prometheus-operator).
const PROMETHEUS_CLUSTER: &str = "prometheus-1";
/// The Grafana cluster (the simulator).
const GRAFANA_CLUSTER: &str = "grafana-1";
/// How long the real operator may take to render what changed.
const SLOW: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stock_prometheus_operator,
            setup: Some(start_operator),
            serial: true,
        },
        "data-path-e2e",
        vec![test(
            "grafana_reaches_only_its_own_tenants_prometheus_over_mutual_tls_before_and_after_a_rotation",
            |tb| Box::pin(boxed(mutual_tls(tb))),
        )],
    )
}

/// The material a tenant's datasource received on the Grafana cluster.
#[derive(Clone, Debug, PartialEq)]
struct ClientMaterial {
    ca: String,
    cert: String,
    key: String,
}

impl ClientMaterial {
    fn tls(&self, server_name: &str) -> ClientTls {
        ClientTls {
            ca_cert_pem: self.ca.clone(),
            client_cert_pem: Some(self.cert.clone()),
            client_key_pem: Some(self.key.clone()),
            server_name: Some(server_name.to_owned()),
        }
    }
}

fn text(secret: &Secret, key: &str) -> anyhow::Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| {
            format!(
                "Secret {} has no key {key}",
                secret.metadata.name.clone().unwrap_or_default()
            )
        })?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

async fn client_material(grafana: &Client, customer: &str) -> anyhow::Result<ClientMaterial> {
    let secrets: Api<Secret> = Api::namespaced(grafana.clone(), &format!("customer-{customer}"));
    let name = format!("{customer}-datasource-tls");
    let secret = eventually(
        &format!("Secret {name} on the Grafana cluster"),
        WAIT,
        || async {
            Ok(match secrets.get_opt(&name).await? {
                Some(secret) => Ok(secret),
                None => Err("not there yet".to_owned()),
            })
        },
    )
    .await?;
    Ok(ClientMaterial {
        ca: text(&secret, "TLS_CA_CERT")?,
        cert: text(&secret, "TLS_CLIENT_CERT")?,
        key: text(&secret, "TLS_CLIENT_KEY")?,
    })
}

async fn mutual_tls(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let prometheus_member = tb.cluster(PROMETHEUS_CLUSTER)?.client().clone();
    let grafana_member = tb.cluster(GRAFANA_CLUSTER)?.client().clone();
    Api::<MemberCluster>::all(hub.clone())
        .patch(
            PROMETHEUS_CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "prometheusUrlTemplate": null,
                "prometheusExposure": {
                    "type": "ClusterIP",
                    "allowedSources": [
                        {"namespaceSelector": {"kubernetes.io/metadata.name": "grafana"}},
                        {"cidr": "203.0.113.0/28"},
                    ],
                },
            }})),
        )
        .await
        .context("expose the Prometheus cluster's tenants")?;

    let ns = "team-data-path";
    for customer in ["acme", "globex"] {
        let overrides = json!({"metrics": {"replicas": 1}});
        apply_stack(&hub, ns, &stack_manifest(customer, customer, overrides)).await?;
    }
    for customer in ["acme", "globex"] {
        wait_ready(&hub, ns, customer).await?;
    }

    // The planned exposure, in the tenant namespace.
    let tenant = "customer-acme";
    let host = "acme-prometheus.customer-acme.svc";
    let service = Api::<Service>::namespaced(prometheus_member.clone(), tenant)
        .get("acme-prometheus")
        .await
        .context("the Service of the exposure")?;
    let spec = service.spec.context("Service spec")?;
    ensure!(
        spec.type_.as_deref() == Some("ClusterIP"),
        "{:?}",
        spec.type_
    );
    ensure!(
        spec.selector
            .as_ref()
            .and_then(|s| s.get("operator.prometheus.io/name"))
            .map(String::as_str)
            == Some("acme"),
        "{:?}",
        spec.selector
    );
    let policy = Api::<NetworkPolicy>::namespaced(prometheus_member.clone(), tenant)
        .get("acme-prometheus")
        .await
        .context("the NetworkPolicy of the exposure")?;
    let policy = serde_json::to_value(policy.spec)?;
    ensure!(
        policy["ingress"][0]["from"][1]["ipBlock"]["cidr"] == "203.0.113.0/28"
            && policy["ingress"][0]["ports"][0]["port"] == 9090
            && policy["policyTypes"] == json!(["Ingress"]),
        "{policy}"
    );
    let datasource = get_child(
        &grafana_member,
        ChildKind::GrafanaDatasource,
        tenant,
        "acme-prometheus",
    )
    .await?
    .context("the GrafanaDatasource")?;
    let datasource = &datasource.data["spec"];
    ensure!(
        datasource["datasource"]["url"] == format!("https://{host}:9090")
            && datasource["datasource"]["jsonData"]["tlsAuth"] == true
            && datasource["datasource"]["secureJsonData"]["tlsClientKey"] == "${TLS_CLIENT_KEY}"
            && datasource["valuesFrom"][2]["valueFrom"]["secretKeyRef"]["name"]
                == "acme-datasource-tls",
        "{datasource}"
    );

    // The web configuration the real operator renders, run by a real Prometheus.
    let dir = TempDir::new("data-path")?;
    let web_config = rendered_web_config(&prometheus_member, tenant, "acme").await?;
    let web_config_file =
        local_web_config(&prometheus_member, tenant, &web_config, dir.path()).await?;
    let prometheus = PrometheusServer::start(
        dir.path(),
        "global:\n  scrape_interval: 15s\n",
        PrometheusOptions {
            web_config_file: Some(web_config_file.clone()),
            ..PrometheusOptions::default()
        },
    )
    .await?;

    let acme = client_material(&grafana_member, "acme").await?;
    let globex = client_material(&grafana_member, "globex").await?;
    ensure!(acme.ca != globex.ca, "each tenant has a CA of its own");
    only_its_own_tenant_is_answered(&prometheus, host, &acme, &globex)
        .await
        .context("before a rotation")?;

    // A rotation: new leaves from the same CA.
    stacks(&hub, ns)
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"stacksmith.io/rotate-credentials": "1"}}}),
            ),
        )
        .await?;
    let rotated = eventually(
        "the rotated client certificate on the Grafana cluster",
        WAIT,
        || async {
            let now = client_material(&grafana_member, "acme").await?;
            Ok(if now.cert == acme.cert {
                Err("still the first certificate".to_owned())
            } else {
                Ok(now)
            })
        },
    )
    .await?;
    ensure!(
        rotated.ca == acme.ca,
        "a rotation of the leaves keeps the tenant CA"
    );
    // The Prometheus takes the new serving certificate from the Secret stacksmith rewrote (the
    // operator's web configuration names the same files; Prometheus reads them per handshake).
    eventually(
        "the rotated serving certificate on the Prometheus cluster",
        WAIT,
        || async {
            let secret = Api::<Secret>::namespaced(prometheus_member.clone(), tenant)
                .get("acme-prometheus-tls")
                .await?;
            let served = text(&secret, "tls.crt")?;
            let before = std::fs::read_to_string(dir.path().join("web-files").join("tls.crt"))?;
            Ok(if served == before {
                Err("not rotated yet".to_owned())
            } else {
                Ok(())
            })
        },
    )
    .await?;
    local_web_config(&prometheus_member, tenant, &web_config, dir.path()).await?;
    only_its_own_tenant_is_answered(&prometheus, host, &rotated, &globex)
        .await
        .context("after the rotation")?;
    answers(&prometheus, &acme.tls(host))
        .await
        .context("the previous certificate, until it expires")?;
    wait_ready(&hub, ns, "acme").await?;

    for customer in ["acme", "globex"] {
        let stack = stacks(&hub, ns).get(customer).await?;
        let status = serde_json::to_string(&stack.status)?;
        ensure!(
            !status.contains("BEGIN"),
            "material in the status of {customer}: {status}"
        );
    }
    prometheus.stop().await?;

    // Deleting a stack deletes its credentials everywhere: the members' Secrets (from the
    // inventory) and its tenant CA on the hub.
    let uid = stacks(&hub, ns)
        .get("globex")
        .await?
        .metadata
        .uid
        .context("globex has a uid")?;
    let hub_secrets: Api<Secret> = Api::namespaced(hub.clone(), "stacksmith-system");
    let credentials = format!("stacksmith-tls-{uid}");
    ensure!(
        hub_secrets.get_opt(&credentials).await?.is_some(),
        "the tenant CA of globex is kept on the hub as {credentials}"
    );
    delete_stack(&hub, ns, "globex").await?;
    wait_stack_gone(&hub, ns, "globex").await?;
    ensure!(
        hub_secrets.get_opt(&credentials).await?.is_none(),
        "{credentials} outlived its stack"
    );
    let left = Api::<Secret>::namespaced(grafana_member.clone(), "customer-globex")
        .get_opt("globex-datasource-tls")
        .await?;
    ensure!(left.is_none(), "the datasource's Secret outlived its stack");
    let left = Api::<Secret>::namespaced(prometheus_member.clone(), "customer-globex")
        .get_opt("globex-prometheus-tls")
        .await?;
    ensure!(left.is_none(), "the Prometheus' Secret outlived its stack");
    Ok(())
}

/// A query with `tenant`'s datasource certificate is answered; one without a certificate, or
/// with `other`'s, is refused.
async fn only_its_own_tenant_is_answered(
    prometheus: &PrometheusServer,
    host: &str,
    tenant: &ClientMaterial,
    other: &ClientMaterial,
) -> anyhow::Result<()> {
    answers(prometheus, &tenant.tls(host))
        .await
        .context("the tenant's datasource certificate")?;
    let anonymous = ClientTls {
        client_cert_pem: None,
        client_key_pem: None,
        ..tenant.tls(host)
    };
    refused(prometheus, &anonymous)
        .await
        .context("no client certificate")?;
    let impostor = ClientTls {
        ca_cert_pem: tenant.ca.clone(),
        ..other.tls(host)
    };
    refused(prometheus, &impostor)
        .await
        .context("the other tenant's certificate")
}

/// A query the server must answer.
async fn answers(prometheus: &PrometheusServer, tls: &ClientTls) -> anyhow::Result<()> {
    let client = prometheus.client(Some(tls)).await?;
    let request = http::Request::get("/api/v1/query?query=vector(1)").body(Vec::new())?;
    let answer: Value = serde_json::from_str(&client.request_text(request).await?)?;
    ensure!(answer["status"] == "success", "{answer}");
    Ok(())
}

/// A query the server must refuse. The same server answers the same query with the right
/// certificate (see [`answers`]), so any failure here is the refusal: with TLS 1.3 the server's
/// verdict on the client certificate arrives after the handshake, as a failed request.
async fn refused(prometheus: &PrometheusServer, tls: &ClientTls) -> anyhow::Result<()> {
    let client = prometheus.client(Some(tls)).await?;
    let request = http::Request::get("/api/v1/query?query=vector(1)").body(Vec::new())?;
    match client.request_text(request).await {
        Ok(answer) => bail!("answered: {answer}"),
        Err(_) => Ok(()),
    }
}

/// The web configuration the operator rendered for the tenant's Prometheus.
async fn rendered_web_config(
    member: &Client,
    ns: &str,
    prometheus: &str,
) -> anyhow::Result<String> {
    let name = format!("prometheus-{prometheus}-web-config");
    rendered_file(member, ns, &name, "web-config.yaml", SLOW, |config| {
        if config.contains("tls_server_config") {
            Ok(())
        } else {
            Err(format!("no TLS in it yet:\n{config}"))
        }
    })
    .await
}

/// The rendered web configuration with the files it names (paths inside the Prometheus pod,
/// mounted from stacksmith's Secret) written under `dir/web-files/` from that Secret, named by
/// the Secret key each path ends with. Returns the configuration file.
async fn local_web_config(
    member: &Client,
    ns: &str,
    rendered: &str,
    dir: &Path,
) -> anyhow::Result<std::path::PathBuf> {
    let secret = Api::<Secret>::namespaced(member.clone(), ns)
        .get("acme-prometheus-tls")
        .await?;
    let files = dir.join("web-files");
    std::fs::create_dir_all(&files)?;
    let mut config: Value = serde_yaml::from_str(rendered)?;
    let server = config
        .get_mut("tls_server_config")
        .and_then(Value::as_object_mut)
        .context("no tls_server_config")?;
    ensure!(
        server.get("client_auth_type").and_then(Value::as_str)
            == Some("RequireAndVerifyClientCert"),
        "{rendered}"
    );
    for field in ["cert_file", "key_file", "client_ca_file"] {
        let path = server
            .get(field)
            .and_then(Value::as_str)
            .with_context(|| format!("no {field} in:\n{rendered}"))?;
        let key = ["tls.crt", "tls.key", "ca.crt"]
            .into_iter()
            .find(|key| path.ends_with(key))
            .with_context(|| format!("{field} {path} names no key of stacksmith's Secret"))?;
        let local = files.join(key);
        // Written beside and renamed, as the kubelet swaps a Secret volume's files.
        let partial = files.join(format!(".{key}.new"));
        std::fs::write(&partial, text(&secret, key)?)?;
        std::fs::rename(&partial, &local)?;
        server.insert(field.to_owned(), json!(local.display().to_string()));
    }
    let file = dir.join("web-config.yml");
    std::fs::write(&file, serde_yaml::to_string(&config)?)?;
    Ok(file)
}

//! End-to-end tests of the data servers: real Prometheus and Alertmanager (Debian's packages) on
//! 127.0.0.1, their HTTP APIs, Alertmanager's routing to webhooks of the test's own, Prometheus
//! sending alerts to Alertmanager, Prometheus behind TLS with client certificates (the web
//! configuration prometheus-operator renders), and the checkers promtool and amtool.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use serde_json::{Value, json};
use stacksmith_e2e::{TempDir, Webhook};
use stacksmith_testbed::data_servers::{
    self, AlertmanagerServer, ClientTls, DataServerError, PrometheusOptions, PrometheusServer,
};
use stacksmith_testbed::process;

/// The most any one test may take (the first one in a process may also install the packages).
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_queries_and_loads_rules() -> anyhow::Result<()> {
    bounded(async {
        let dir = TempDir::new("data-servers-prometheus")?;
        std::fs::write(dir.path().join("rules.yml"), RULES)?;
        let port = process::free_port()?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        );
        let options = PrometheusOptions {
            port: Some(port),
            ..PrometheusOptions::default()
        };
        let prometheus = PrometheusServer::start(dir.path(), &config, options).await?;
        ensure!(prometheus.url() == format!("http://127.0.0.1:{port}"));
        let client = prometheus.client(None).await?;

        let up = eventually("a sample of `up`", Duration::from_secs(30), || async {
            let answer = get_json(&client, "/api/v1/query?query=up").await?;
            let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
            Ok(result.first().cloned())
        })
        .await?;
        ensure!(up["metric"]["job"] == "self", "unexpected series: {up}");
        ensure!(up["value"][1] == "1", "the scrape of itself failed: {up}");

        let rules = get_json(&client, "/api/v1/rules").await?;
        let groups = rules["data"]["groups"].as_array().context("no rule groups")?;
        let names: Vec<&str> = groups
            .iter()
            .filter(|g| g["name"] == "stacksmith-test")
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter_map(|r| r["name"].as_str())
            .collect();
        ensure!(
            names == ["job:up:sum", "AlwaysFiring"],
            "rules loaded: {names:?} (answer {rules})"
        );
        // The recording rule is evaluated, too.
        eventually("the recording rule's series", Duration::from_secs(30), || async {
            let answer = get_json(&client, "/api/v1/query?query=job:up:sum").await?;
            Ok(answer["data"]["result"].as_array().and_then(|r| r.first()).cloned())
        })
        .await?;
        prometheus.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_routes_alerts_by_customer_label() -> anyhow::Result<()> {
    bounded(async {
        let dir = TempDir::new("data-servers-alertmanager")?;
        let (mut a, mut b) = (Webhook::start().await?, Webhook::start().await?);
        let alertmanager =
            AlertmanagerServer::start(dir.path(), &routing_config(&a.url, &b.url)).await?;
        let client = alertmanager.client().await?;
        let alerts = json!([{
            "labels": { "alertname": "TenantDown", "customer": "a" },
            "annotations": { "summary": "customer a is down" },
        }]);
        let request = http::Request::post("/api/v2/alerts")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&alerts)?)?;
        tokio::time::timeout(Duration::from_secs(10), client.request_text(request))
            .await
            .context("POST /api/v2/alerts timed out")??;

        let notification = a.next(Duration::from_secs(20)).await?;
        ensure!(notification["receiver"] == "customer-a", "{notification}");
        ensure!(notification["status"] == "firing", "{notification}");
        let labels = &notification["alerts"][0]["labels"];
        ensure!(
            labels["customer"] == "a" && labels["alertname"] == "TenantDown",
            "{notification}"
        );
        // Receiver b would have been notified after the same group_wait.
        b.nothing_for(Duration::from_secs(3)).await?;
        alertmanager.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alerts_reach_alertmanager() -> anyhow::Result<()> {
    bounded(async {
        let dir = TempDir::new("data-servers-alert-path")?;
        let (mut a, mut b) = (Webhook::start().await?, Webhook::start().await?);
        let alertmanager =
            AlertmanagerServer::start(dir.path(), &routing_config(&a.url, &b.url)).await?;
        let alertmanager_host = alertmanager
            .url()
            .strip_prefix("http://")
            .context("alertmanager URL")?
            .to_owned();
        std::fs::write(dir.path().join("rules.yml"), RULES)?;
        let config = format!(
            "global:\n  evaluation_interval: 1s\n\
             rule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager_host}']\n"
        );
        // The first evaluation may come before the notifier knows Alertmanager, which drops
        // that notification; by default it is resent a minute later.
        let options = PrometheusOptions {
            extra_args: vec!["--rules.alert.resend-delay=1s".into()],
            ..PrometheusOptions::default()
        };
        let prometheus = PrometheusServer::start(dir.path(), &config, options).await?;

        let notification = b.next(Duration::from_secs(30)).await?;
        ensure!(notification["receiver"] == "customer-b", "{notification}");
        let labels = &notification["alerts"][0]["labels"];
        ensure!(
            labels["alertname"] == "AlwaysFiring" && labels["customer"] == "b",
            "{notification}"
        );
        a.nothing_for(Duration::from_secs(2)).await?;
        prometheus.stop().await?;
        alertmanager.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_with_web_config_requires_client_certificates() -> anyhow::Result<()> {
    bounded(async {
        let dir = TempDir::new("data-servers-prometheus-tls")?;
        let pki = TestPki::generate()?;
        let file = |name: &str, content: &str| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, content)?;
            Ok(path)
        };
        let ca = file("ca.crt", &pki.ca_pem)?;
        let cert = file("tls.crt", &pki.server_cert_pem)?;
        let key = file("tls.key", &pki.server_key_pem)?;
        // As prometheus-operator renders `spec.web.tlsConfig` with a client CA.
        let web_config = file(
            "web-config.yml",
            &format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
                cert.display(),
                key.display(),
                ca.display()
            ),
        )?;
        let options = PrometheusOptions {
            web_config_file: Some(web_config),
            ..PrometheusOptions::default()
        };
        let prometheus =
            PrometheusServer::start(dir.path(), "global:\n  scrape_interval: 1s\n", options).await?;
        ensure!(prometheus.url().starts_with("https://127.0.0.1:"), "{}", prometheus.url());

        let with_cert = ClientTls {
            ca_cert_pem: pki.ca_pem.clone(),
            client_cert_pem: Some(pki.client_cert_pem.clone()),
            client_key_pem: Some(pki.client_key_pem.clone()),
            server_name: None,
        };
        let client = prometheus.client(Some(&with_cert)).await?;
        let answer = get_json(&client, "/api/v1/query?query=vector(1)").await?;
        ensure!(answer["status"] == "success", "{answer}");
        ensure!(answer["data"]["result"][0]["value"][1] == "1", "{answer}");

        let ready = get_text(&client, "/-/ready").await?;
        ensure!(ready.contains("Ready"), "/-/ready answered {ready}");

        let without_cert = ClientTls {
            ca_cert_pem: pki.ca_pem.clone(),
            ..ClientTls::default()
        };
        let anonymous = prometheus.client(Some(&without_cert)).await?;
        match get_text(&anonymous, "/-/ready").await {
            Ok(answer) => bail!("answered a client without a certificate: {answer}"),
            Err(err) => {
                // Go refuses the handshake with the alert `bad_certificate`.
                let message = format!("{err:#}");
                ensure!(message.contains("BadCertificate"), "without a certificate: {message}");
            }
        }
        let plain_url = prometheus.url().replacen("https://", "http://", 1);
        let plain = data_servers::http_client(&plain_url, None).await?;
        match get_text(&plain, "/-/ready").await {
            Ok(answer) => bail!("answered plain HTTP: {answer}"),
            Err(err) => {
                let message = format!("{err:#}");
                ensure!(message.contains("HTTPS server"), "plain HTTP: {message}");
            }
        }
        prometheus.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkers_accept_good_files_and_reject_bad_ones_with_the_message() -> anyhow::Result<()> {
    bounded(async {
        let dir = TempDir::new("data-servers-checkers")?;
        let file = |name: &str, content: &str| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, content)?;
            Ok(path)
        };
        let good_rules = file("rules.yml", RULES)?;
        let bad_rules = file(
            "bad-rules.yml",
            "groups:\n  - name: broken\n    rules:\n      - record: job:up:sum\n        expr: sum(up\n",
        )?;
        let good_config = file(
            "prometheus.yml",
            "global:\n  scrape_interval: 1s\nrule_files: [rules.yml]\n",
        )?;
        let bad_config = file("bad-prometheus.yml", "global:\n  scrape_intervall: 1s\n")?;
        let good_am = file("alertmanager.yml", &routing_config("http://127.0.0.1:1/", "http://127.0.0.1:2/"))?;
        let bad_am = file(
            "bad-alertmanager.yml",
            "route:\n  receiver: nope\nreceivers:\n  - name: someone\n",
        )?;

        data_servers::promtool_check_rules(&good_rules).await?;
        data_servers::promtool_check_config(&good_config).await?;
        data_servers::amtool_check_config(&good_am).await?;

        let rejected = data_servers::promtool_check_rules(&bad_rules).await;
        expect_rejection(rejected, "promtool check rules", "unclosed left parenthesis")?;
        let rejected = data_servers::promtool_check_config(&bad_config).await;
        expect_rejection(rejected, "promtool check config", "field scrape_intervall not found")?;
        let rejected = data_servers::amtool_check_config(&bad_am).await;
        expect_rejection(rejected, "amtool check-config", r#"undefined receiver "nope""#)?;
        Ok(())
    })
    .await
}

/// One group: a recording rule and an alert that always fires for customer b.
const RULES: &str = r#"groups:
  - name: stacksmith-test
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: AlwaysFiring
        expr: vector(1)
        labels:
          customer: b
        annotations:
          summary: always firing, for customer b
"#;

/// Alertmanager routing by the `customer` label: `a` and `b` to their webhooks, the rest nowhere.
fn routing_config(webhook_a: &str, webhook_b: &str) -> String {
    format!(
        r#"route:
  receiver: nobody
  group_by: [alertname, customer]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['customer="a"']
      receiver: customer-a
    - matchers: ['customer="b"']
      receiver: customer-b
receivers:
  - name: nobody
  - name: customer-a
    webhook_configs:
      - url: '{webhook_a}'
        send_resolved: false
  - name: customer-b
    webhook_configs:
      - url: '{webhook_b}'
        send_resolved: false
"#
    )
}

fn expect_rejection(
    result: Result<(), DataServerError>,
    tool: &str,
    message: &str,
) -> anyhow::Result<()> {
    match result {
        Err(DataServerError::Rejected {
            tool: reported,
            output,
            ..
        }) => {
            ensure!(reported == tool, "{reported} instead of {tool}");
            ensure!(output.contains(message), "{tool} said:\n{output}");
            Ok(())
        }
        Err(other) => bail!("{tool} failed otherwise: {other}"),
        Ok(()) => bail!("{tool} accepted a bad file"),
    }
}

async fn bounded(test: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let started = Instant::now();
    let result = tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .with_context(|| format!("timed out after {} s", TEST_TIMEOUT.as_secs()))?;
    eprintln!("took {:.1} s", started.elapsed().as_secs_f32());
    result
}

async fn get_json(client: &kube::Client, path: &str) -> anyhow::Result<Value> {
    let text = get_text(client, path).await?;
    serde_json::from_str(&text).with_context(|| format!("GET {path} answered {text}"))
}

async fn get_text(client: &kube::Client, path: &str) -> anyhow::Result<String> {
    let request = http::Request::get(path).body(Vec::new())?;
    tokio::time::timeout(Duration::from_secs(10), client.request_text(request))
        .await
        .with_context(|| format!("GET {path} timed out"))?
        .with_context(|| format!("GET {path}"))
}

/// Polls `probe` until it yields something.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        let last = probe().await;
        if let Ok(Some(found)) = last {
            return Ok(found);
        }
        if started.elapsed() > limit {
            bail!(
                "no {what} within {} s (last: {:?})",
                limit.as_secs(),
                last.err()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A CA, a serving certificate for 127.0.0.1 and a client certificate.
struct TestPki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl TestPki {
    fn generate() -> anyhow::Result<Self> {
        let name = |cn: &str| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            dn
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name("data-servers test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned()])?;
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server_params.distinguished_name = name("prometheus");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = name("grafana");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &ca)?;

        Ok(TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }
}

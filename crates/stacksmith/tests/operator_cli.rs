//! `stacksmith operator` as it runs in a cluster: the real binary against a test bed, its
//! `/metrics` scraped and checked for every series the operations guide lists, `/healthz`,
//! `/readyz`, JSON logs carrying the stack in the reconcile span, and a clean stop on SIGTERM.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use stacksmith_api::CustomerStack;
use stacksmith_testbed::{TestBed, TestBedOptions};

/// Stops the operator process if the test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 GET: (status code, body).
fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `series` (name with labels exactly as exposed), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

#[test]
fn operator_serves_metrics_health_and_json_logs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let name = format!("operator-cli-{}", std::process::id());
    let testbed = runtime
        .block_on(TestBed::start(TestBedOptions::new(&name)))
        .expect("test bed");
    let hub = testbed.hub().unwrap();

    // The shared Grafana instance the stack's dashboards select.
    let grafana = testbed.cluster("grafana-1").unwrap().client().clone();
    runtime
        .block_on(stacksmith_testbed::simulator::create_shared_grafana(
            &grafana,
        ))
        .unwrap();

    let mut operator = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_stacksmith"))
            .args(["operator", "--kubeconfig"])
            .arg(hub.kubeconfig_path())
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--log-level",
                "info,stacksmith_controller=debug",
                // The test bed's stacks have no TenantPolicy.
                "--tenant-policy",
                "optional",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("stacksmith operator"),
    );
    // Every log line goes through a channel; the serving address is in one of them.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stderr = operator.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logs: Vec<Value> = Vec::new();
    let mut address: Option<SocketAddr> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while address.is_none() {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the operator logs where it serves metrics");
        let entry: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
        address = entry["fields"]["address"]
            .as_str()
            .and_then(|a| a.parse().ok());
        logs.push(entry);
    }
    let address = address.unwrap();

    let (status, body) = http_get(address, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    stacksmith_e2e::wait_until_blocking("/readyz", Duration::from_secs(30), || {
        http_get(address, "/readyz").0 == 200
    });
    assert_eq!(http_get(address, "/nothing-here").0, 404);

    // A stack converges; the metrics then show it.
    let stacks: Api<CustomerStack> = Api::namespaced(hub.client().clone(), "customers");
    runtime.block_on(async {
        stacksmith_testbed::ensure_namespace(hub.client(), "customers")
            .await
            .unwrap();
        let stack: CustomerStack = serde_json::from_value(json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
            "metadata": {"name": "initech", "namespace": "customers"},
            "spec": {
                "customer": "initech",
                "metrics": {"cluster": "prometheus-1"},
                "dashboards": {"cluster": "grafana-1",
                    "instanceSelector": {"matchLabels": {"dashboards": "shared"}},
                    "dashboards": [{"name": "overview", "json": "{\"title\": \"o\"}"}]},
            },
        }))
        .unwrap();
        stacks.create(&PostParams::default(), &stack).await.unwrap();
    });
    let mut metrics = String::new();
    stacksmith_e2e::wait_until_blocking("the stack counted Ready", Duration::from_secs(60), || {
        metrics = http_get(address, "/metrics").1;
        sample(&metrics, "stacksmith_stacks{ready=\"True\"}") == Some(1.0)
    });
    let version = env!("CARGO_PKG_VERSION");
    for (series, at_least) in [
        (
            format!("stacksmith_build_info{{version=\"{version}\"}}"),
            1.0,
        ),
        (
            "stacksmith_reconciles_total{result=\"success\"}".to_owned(),
            1.0,
        ),
        (
            "stacksmith_reconciles_total{result=\"error\"}".to_owned(),
            0.0,
        ),
        (
            "stacksmith_reconcile_duration_seconds_count".to_owned(),
            1.0,
        ),
        (
            "stacksmith_reconcile_duration_seconds_bucket{le=\"+Inf\"}".to_owned(),
            1.0,
        ),
        ("stacksmith_stacks{ready=\"False\"}".to_owned(), 0.0),
        (
            "stacksmith_stack_ready{namespace=\"customers\",name=\"initech\",customer=\"initech\"}"
                .to_owned(),
            1.0,
        ),
        (
            "stacksmith_stack_children{namespace=\"customers\",name=\"initech\",verdict=\"Healthy\"}"
                .to_owned(),
            4.0,
        ),
        (
            "stacksmith_children{kind=\"Prometheus\",verdict=\"Healthy\"}".to_owned(),
            1.0,
        ),
        (
            "stacksmith_children{kind=\"GrafanaDashboard\",verdict=\"Healthy\"}".to_owned(),
            1.0,
        ),
        (
            "stacksmith_member_cluster_reachable{cluster=\"prometheus-1\"}".to_owned(),
            1.0,
        ),
        (
            "stacksmith_member_cluster_reachable{cluster=\"grafana-1\"}".to_owned(),
            1.0,
        ),
        (
            "stacksmith_api_requests_total{cluster=\"prometheus-1\",verb=\"patch\",outcome=\"success\"}"
                .to_owned(),
            1.0,
        ),
        (
            "stacksmith_api_requests_total{cluster=\"hub\",verb=\"watch\",outcome=\"success\"}"
                .to_owned(),
            1.0,
        ),
    ] {
        let value = sample(&metrics, &series)
            .unwrap_or_else(|| panic!("no series {series} in\n{metrics}"));
        assert!(value >= at_least, "{series} = {value} in\n{metrics}");
    }
    for family in [
        "stacksmith_reconcile_errors_total",
        "stacksmith_reconcile_duration_seconds",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "no family {family}"
        );
    }
    // The member applies are counted on the member's own client: 4 objects on prometheus-1 at
    // least (namespace, identity, Prometheus...), and nothing read outside the watches but the
    // probe's read of the cluster's identity (its kube-system namespace; one per probe, a probe or
    // two in this test).
    let member_reads = sample(
        &metrics,
        "stacksmith_api_requests_total{cluster=\"prometheus-1\",verb=\"get\",outcome=\"success\"}",
    )
    .unwrap_or(0.0);
    assert!(
        member_reads <= 2.0,
        "member reads outside watches and the probe:\n{metrics}"
    );

    // Logs: JSON, and a reconcile span carrying the stack's name.
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(500)) {
        logs.push(serde_json::from_str(&line).expect("JSON log line"));
    }
    assert!(
        logs.iter().any(|entry| entry["span"]["name"] == "reconcile"
            && entry["span"]["stack"] == "customers/initech"),
        "no log line inside a reconcile span naming the stack: {logs:#?}"
    );

    // SIGTERM: a clean stop with exit code 0.
    let pid = nix::unistd::Pid::from_raw(operator.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut exited = None;
    stacksmith_e2e::wait_until_blocking(
        "the operator stops on SIGTERM",
        Duration::from_secs(20),
        || {
            exited = operator.0.try_wait().unwrap();
            exited.is_some()
        },
    );
    assert!(exited.unwrap().success(), "exit status {exited:?}");
    runtime.block_on(testbed.shutdown()).unwrap();
}

//! The `stacksmith` binary as users run it (a real process), for the commands that need no
//! cluster.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn stacksmith(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stacksmith");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for stacksmith")
}

fn fixture(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stacksmith-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write fixture");
    path
}

const DEGRADED_PROMETHEUS: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: acme, namespace: customer-acme, generation: 4}
spec: {replicas: 2}
status:
  availableReplicas: 0
  replicas: 2
  updatedReplicas: 2
  conditions:
  - {type: Available, status: "False", reason: NoPodReady, message: "pod prometheus-acme-0: crash", observedGeneration: 4, lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Reconciled, status: "True", observedGeneration: 4, lastTransitionTime: "2026-01-01T00:00:00Z"}
"#;

const HEALTHY_DATASOURCE: &str = r#"{"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDatasource",
 "metadata": {"name": "acme-prometheus", "namespace": "customer-acme", "generation": 1},
 "spec": {"instanceSelector": {}, "datasource": {"name": "x"}},
 "status": {"conditions": [{"type": "DatasourceSynchronized", "status": "True", "reason": "ApplySuccessful",
   "message": "applied", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}"#;

#[test]
fn crds_prints_the_committed_chart_crds() {
    let out = stacksmith(&["crds"], None);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/stacksmith/crds/stacksmith.io.yaml"
    ))
    .expect("committed CRDs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn health_reports_a_degraded_prometheus_and_exits_1() {
    let path = fixture("degraded.yaml", DEGRADED_PROMETHEUS);
    let out = stacksmith(&["health", "-f", path.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Degraded\tNoPodReady\tPrometheus customer-acme/acme"),
        "{stdout}"
    );
}

#[test]
fn health_json_from_stdin() {
    let out = stacksmith(
        &["health", "-f", "-", "-o", "json"],
        Some(HEALTHY_DATASOURCE),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(value["verdict"], "Healthy");
    assert_eq!(value["reason"], "Synchronized");
    assert!(
        value["message"]
            .as_str()
            .is_some_and(|m| m.contains("acme-prometheus"))
    );
}

#[test]
fn health_judges_every_document_of_a_stream() {
    let stream = format!("{DEGRADED_PROMETHEUS}\n---\n{HEALTHY_DATASOURCE}\n");
    let out = stacksmith(&["health", "-f", "-", "-o", "json"], Some(&stream));
    assert_eq!(out.status.code(), Some(1));
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["verdict"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(verdicts, ["Degraded", "Healthy"]);
}

const RULE: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: acme-core, namespace: customer-acme, uid: rule-uid, resourceVersion: "7", generation: 1,
  labels: {stacksmith.io/customer: acme}}
spec: {groups: []}
"#;

const SELECTING_PROMETHEUS: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: acme, namespace: customer-acme, generation: 4}
spec: {ruleSelector: {matchLabels: {stacksmith.io/customer: acme}}}
status:
  conditions:
  - {type: Available, status: "True", observedGeneration: 4}
  - {type: Reconciled, status: "True", observedGeneration: 4}
"#;

const REJECTION_EVENT: &str = r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: acme-core.1, namespace: customer-acme}
type: Warning
reason: InvalidConfiguration
regarding: {kind: PrometheusRule, namespace: customer-acme, name: acme-core, uid: rule-uid, resourceVersion: "7"}
related: {kind: Prometheus, namespace: customer-acme, name: acme}
note: 'PrometheusRule acme-core was rejected due to invalid configuration: parse error'
"#;

/// `stacksmith health` on the given documents: (exit code, the lines as JSON).
fn health_of(documents: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = stacksmith(
        &["health", "-f", "-", "-o", "json"],
        Some(&documents.join("\n---\n")),
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (out.status.code(), lines)
}

#[test]
fn health_judges_a_rule_without_status_from_the_evidence_in_the_input() {
    // Alone: nothing to go by.
    let (code, lines) = health_of(&[RULE]);
    assert_eq!(
        (code, lines[0]["reason"].as_str()),
        (Some(1), Some("StatusNotReported"))
    );
    // With the Prometheus that selects it: acceptance inferred (the input holds no Event).
    let (code, lines) = health_of(&[SELECTING_PROMETHEUS, RULE]);
    assert_eq!(code, Some(0));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["reason"], "AcceptanceInferred");
    assert!(
        lines[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rejections not checked")),
        "{lines:?}"
    );
    // With the rejection Event of its version: rejected; the Event itself is not judged.
    let (code, lines) = health_of(&[SELECTING_PROMETHEUS, RULE, REJECTION_EVENT]);
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["verdict"], "Degraded");
    assert_eq!(lines[1]["reason"], "RejectedByOperator");
    // The same as one List, as `kubectl get prometheus,prometheusrule,events.events.k8s.io -o
    // yaml` prints it.
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        serde_yaml::from_str::<serde_json::Value>(SELECTING_PROMETHEUS).unwrap(),
        serde_yaml::from_str::<serde_json::Value>(RULE).unwrap(),
        serde_yaml::from_str::<serde_json::Value>(REJECTION_EVENT).unwrap(),
    ]});
    let (code, lines) = health_of(&[&list.to_string()]);
    assert_eq!((code, lines.len()), (Some(1), 2));
    assert_eq!(lines[1]["reason"], "RejectedByOperator");
}

#[test]
fn health_rejects_bad_input_with_exit_2() {
    let not_a_child = fixture(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let out = stacksmith(
        &["health", "-f", not_a_child.to_str().expect("utf-8 path")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"ConfigMap\" is not a child kind"));

    let out = stacksmith(&["health", "-f", "/nonexistent/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.yaml"));

    let out = stacksmith(&["health", "-f", "-"], Some("{not yaml: ["));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["crds", "--help"],
        &["health", "--help"],
        &["demo", "--help"],
        &["operator", "--help"],
        &["testbed", "--help"],
        &["testbed", "up", "--help"],
        &["testbed", "env", "--help"],
        &["testbed", "down", "--help"],
    ] {
        let out = stacksmith(args, None);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = stacksmith(&["health"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = stacksmith(&["no-such-command"], None);
    assert_eq!(out.status.code(), Some(2));
}

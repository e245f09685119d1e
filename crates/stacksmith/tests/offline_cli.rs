//! `stacksmith render` and `stacksmith validate` as users run them: the real binary, run in
//! `tests/fixtures/`, its stdout, stderr and exit code compared with `tests/fixtures/golden/`.
//! `UPDATE_GOLDEN=1 cargo test -p stacksmith --test offline_cli` rewrites the golden files
//! (review the diff before committing them).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `stacksmith ARGS` in the fixtures directory and renders what a user sees.
fn run(args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .args(args)
        .current_dir(fixtures())
        .env_remove("KUBECONFIG")
        .env_remove("STACKSMITH_LOG")
        .output()
        .expect("run stacksmith");
    let text = format!(
        "$ stacksmith {}\n--- stdout\n{}--- stderr\n{}--- exit code: {}\n",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
            .code()
            .map_or("none".to_owned(), |c| c.to_string()),
    );
    (text, out.status.code())
}

/// Compares the run with `golden/NAME.txt` (or rewrites it with `UPDATE_GOLDEN=1`), and checks
/// the exit code independently of the golden file.
fn golden(name: &str, args: &[&str], exit_code: i32) {
    let (actual, code) = run(args);
    let path = fixtures().join("golden").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write golden file");
    }
    assert_eq!(code, Some(exit_code), "exit code of {name}:\n{actual}");
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        actual == expected,
        "output of {name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

const CLUSTERS: [&str; 2] = ["--clusters", "clusters.yaml"];

fn with_clusters<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(CLUSTERS).collect()
}

#[test]
fn render_yaml() {
    golden(
        "render-acme-yaml",
        &with_clusters(&["render", "-f", "acme.yaml"]),
        0,
    );
}

#[test]
fn render_json() {
    golden(
        "render-acme-json",
        &with_clusters(&["render", "-f", "acme.yaml", "-o", "json"]),
        0,
    );
}

#[test]
fn render_output_is_the_plan_as_yaml_and_json_alike() {
    let (yaml, _) = run(&with_clusters(&["render", "-f", "acme.yaml"]));
    let (json, _) = run(&with_clusters(&["render", "-f", "acme.yaml", "-o", "json"]));
    let stdout = |text: &str| {
        text.split("--- stdout\n")
            .nth(1)
            .unwrap()
            .split("--- stderr\n")
            .next()
            .unwrap()
            .to_owned()
    };
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let mut from_yaml = serde_json::Map::new();
    let mut cluster = String::new();
    for line in stdout(&yaml).lines() {
        if let Some(name) = line.strip_prefix("# cluster: ") {
            cluster = name.to_owned();
            from_yaml.insert(cluster.clone(), serde_json::Value::Array(vec![]));
        }
    }
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in stdout(&yaml).lines() {
        if line.starts_with("# cluster: ") || line == "---" {
            if !current.trim().is_empty() {
                documents.push((cluster.clone(), std::mem::take(&mut current)));
            }
            current.clear();
            if let Some(name) = line.strip_prefix("# cluster: ") {
                cluster = name.to_owned();
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.push((cluster, current));
    for (cluster, doc) in documents {
        let value: serde_json::Value = serde_yaml::from_str(&doc).unwrap();
        from_yaml[&cluster].as_array_mut().unwrap().push(value);
    }
    assert_eq!(serde_json::Value::Object(from_yaml), json);
    assert_eq!(json["prometheus-1"].as_array().unwrap().len(), 7);
    assert_eq!(json["grafana-1"].as_array().unwrap().len(), 4);
}

#[test]
fn render_refuses_an_invalid_stack() {
    golden(
        "render-unknown-cluster",
        &with_clusters(&["render", "-f", "malformed/unknown-cluster.yaml"]),
        1,
    );
}

#[test]
fn render_needs_member_clusters() {
    golden("render-without-clusters", &["render", "-f", "acme.yaml"], 2);
}

#[test]
fn validate_a_valid_stack() {
    golden(
        "validate-acme",
        &with_clusters(&["validate", "-f", "acme.yaml"]),
        0,
    );
}

#[test]
fn validate_without_clusters_says_what_it_did_not_check() {
    golden(
        "validate-acme-no-clusters",
        &["validate", "-f", "acme.yaml"],
        0,
    );
}

#[test]
fn validate_wrong_types() {
    golden(
        "validate-wrong-types",
        &with_clusters(&["validate", "-f", "malformed/wrong-types.yaml"]),
        1,
    );
}

#[test]
fn validate_wrong_types_as_json() {
    golden(
        "validate-wrong-types-json",
        &with_clusters(&["validate", "-f", "malformed/wrong-types.yaml", "-o", "json"]),
        1,
    );
}

#[test]
fn validate_unknown_fields() {
    golden(
        "validate-unknown-fields",
        &with_clusters(&["validate", "-f", "malformed/unknown-fields.yaml"]),
        1,
    );
}

#[test]
fn validate_unknown_cluster_and_wrong_role() {
    golden(
        "validate-unknown-cluster",
        &with_clusters(&["validate", "-f", "malformed/unknown-cluster.yaml"]),
        1,
    );
}

#[test]
fn validate_duplicate_tenant() {
    golden(
        "validate-duplicate-tenant",
        &with_clusters(&["validate", "-f", "malformed/duplicate-tenant.yaml"]),
        1,
    );
}

#[test]
fn validate_syntax_error() {
    golden(
        "validate-syntax-error",
        &with_clusters(&["validate", "-f", "malformed/syntax-error.yaml"]),
        1,
    );
}

#[test]
fn validate_invalid_names() {
    golden(
        "validate-invalid-names",
        &with_clusters(&["validate", "-f", "malformed/invalid-names.yaml"]),
        1,
    );
}

#[test]
fn validate_cluster_problems() {
    golden(
        "validate-cluster-problems",
        &with_clusters(&["validate", "-f", "malformed/cluster-problems.yaml"]),
        1,
    );
}

/// The CEL rules, list types and bounds of the CRDs, checked offline as the hub would refuse
/// them (same fields); `spec.customer` being immutable is said not to be checked.
#[test]
fn validate_admission_rules() {
    golden(
        "validate-admission-rules",
        &with_clusters(&["validate", "-f", "malformed/admission-rules.yaml"]),
        1,
    );
}

#[test]
fn validate_admission_rules_as_json() {
    let (out, code) = run(&with_clusters(&[
        "validate",
        "-f",
        "malformed/admission-rules.yaml",
        "-o",
        "json",
    ]));
    assert_eq!(code, Some(1), "{out}");
    let stdout = out
        .split("--- stdout\n")
        .nth(1)
        .and_then(|s| s.split("--- stderr\n").next())
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(stdout).unwrap();
    let fields: Vec<&str> = data["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for field in [
        "spec.roles[2]",
        "spec.prometheusUrlTemplate",
        "spec.metrics.resources.requests",
        "spec.metrics.scrape[1]",
        "spec.metrics.scrape[0].namespaces[1]",
        "spec.metrics.alertingRules[1]",
        "spec.metrics.alertingRules[0].rules[0].labels",
        "spec.dashboards.dashboards[1]",
    ] {
        assert!(fields.contains(&field), "{field} not reported: {fields:?}");
    }
    let not_checked = data["notCheckedOffline"].as_array().unwrap();
    assert!(
        not_checked.iter().any(|r| r
            .as_str()
            .unwrap()
            .starts_with("spec.customer is immutable")),
        "{not_checked:?}"
    );
}

#[test]
fn validate_a_directory_across_files() {
    golden(
        "validate-directory",
        &[
            "validate",
            "-f",
            "malformed",
            "acme.yaml",
            "--clusters",
            "clusters.yaml",
        ],
        1,
    );
}

#[test]
fn validate_an_unreadable_path_is_exit_2() {
    golden(
        "validate-missing-path",
        &["validate", "-f", "missing.yaml"],
        2,
    );
}

#[test]
fn validate_accepts_the_examples() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (out, code) = run(&["validate", "-v", "-f", examples.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: "), "{out}");
    assert!(
        !out.contains("ok: 0 CustomerStack"),
        "the examples hold stacks: {out}"
    );
}

#[test]
fn every_command_has_help() {
    for command in ["render", "validate", "diff"] {
        let out = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--filename") && help.contains("--output"),
            "{help}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stacksmith"))
        .args(["validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

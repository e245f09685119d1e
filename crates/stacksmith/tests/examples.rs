//! The GitOps example (`examples/gitops/`) builds with kustomize as the test bed's kubectl v1.20
//! runs it, every manifest in it is reached from the root kustomization, the objects parse as
//! the stacksmith types, and its registrations are the ones the test bed makes.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use stacksmith_api::{ClusterRole, CustomerStack, MemberCluster, TenantPolicy};
use stacksmith_core::plan::{MemberInfo, StackIdentity, plan_stack};
use stacksmith_core::policy::{NamedPolicy, PolicyMode, check_stack};

fn gitops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gitops")
}

/// Every YAML file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read examples dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `kind namespace/name` of every object in a YAML stream.
fn objects(yaml: &str) -> Vec<(String, serde_yaml::Value)> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("YAML"))
        .filter(|v| !v.is_null())
        .map(|v| {
            let id = format!(
                "{} {}/{}",
                v["kind"].as_str().unwrap_or("?"),
                v["metadata"]["namespace"].as_str().unwrap_or(""),
                v["metadata"]["name"].as_str().unwrap_or("?")
            );
            (id, v)
        })
        .collect()
}

async fn kustomize_build() -> String {
    let binaries = stacksmith_testbed::binaries::locate_or_install(&[
        stacksmith_testbed::Component::Kubectl,
        stacksmith_testbed::Component::Etcd,
        stacksmith_testbed::Component::Kubernetes,
    ])
    .await
    .expect("the test bed's binaries (installed on first use)");
    let kubectl = binaries.kubectl.expect("kubectl comes with the test bed");
    let out = tokio::process::Command::new(&kubectl)
        .arg("kustomize")
        .arg(gitops_dir())
        .output()
        .await
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize examples/gitops failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test]
async fn gitops_example_builds_with_kubectl_kustomize_and_leaves_nothing_out() {
    let built = objects(&kustomize_build().await);
    let built_ids: BTreeSet<String> = built.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        built_ids,
        BTreeSet::from(
            [
                "Namespace /customers",
                "MemberCluster /prometheus-1",
                "MemberCluster /grafana-1",
                "TenantPolicy /standard",
                "TenantPolicy /gold",
                "CustomerStack customers/acme",
                "CustomerStack customers/globex",
                "CustomerStack customers/initech",
            ]
            .map(String::from)
        ),
        "what examples/gitops builds to"
    );

    // Every object in a file of the folder is in the build: none is forgotten by the
    // kustomizations. (Kustomizations and the all-comment Secret template hold no object.)
    let mut in_files = BTreeSet::new();
    for file in yaml_files(&gitops_dir()) {
        let text = std::fs::read_to_string(&file).expect("read");
        for (id, value) in objects(&text) {
            assert_ne!(
                value["kind"].as_str(),
                Some("Secret"),
                "{} holds a Secret: credentials do not go into Git",
                file.display()
            );
            if value["kind"].as_str() != Some("Kustomization") {
                in_files.insert(id);
            }
        }
    }
    assert_eq!(in_files, built_ids, "objects in files vs. objects built");

    // The objects are what the stacksmith types expect.
    for (id, value) in &built {
        match value["kind"].as_str() {
            Some("CustomerStack") => {
                let stack: CustomerStack =
                    serde_yaml::from_value(value.clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(stack.spec.metrics.cluster, "prometheus-1", "{id}");
                assert_eq!(stack.spec.dashboards.cluster, "grafana-1", "{id}");
            }
            Some("MemberCluster") => {
                let member: MemberCluster =
                    serde_yaml::from_value(value.clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
                let name = value["metadata"]["name"].as_str().unwrap();
                // The names the test bed registers (registration.rs).
                let reference = &member.spec.kubeconfig_secret_ref;
                assert_eq!(reference.namespace, stacksmith_testbed::SYSTEM_NAMESPACE);
                assert_eq!(reference.name, format!("member-{name}-kubeconfig"));
                assert_eq!(reference.key, "kubeconfig");
                let role = if name.starts_with("prometheus") {
                    ClusterRole::Prometheus
                } else {
                    ClusterRole::Grafana
                };
                assert_eq!(member.spec.roles, [role], "{id}");
                assert_eq!(
                    member.spec.prometheus_url_template.is_some()
                        || member.spec.prometheus_exposure.is_some(),
                    role == ClusterRole::Prometheus,
                    "{id}: a Prometheus cluster needs prometheusUrlTemplate or prometheusExposure"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn customer_stacks_plan_without_problems_on_the_example_clusters() {
    // What the operator would refuse as InvalidSpec (unknown cluster, wrong role, missing URL
    // template, duplicate names, a dashboard with both json and url) shows up here, offline.
    let dir = gitops_dir();
    let members: Vec<MemberInfo> = ["prometheus-1", "grafana-1"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("clusters/{name}.yaml"))).unwrap();
            let member: MemberCluster = serde_yaml::from_str(&text).unwrap();
            MemberInfo {
                name: name.to_string(),
                roles: member.spec.roles,
                prometheus_url_template: member.spec.prometheus_url_template,
                prometheus_exposure: member.spec.prometheus_exposure,
                alertmanagers: member.spec.alertmanagers,
                grafana_ingress_host_template: member.spec.grafana_ingress_host_template,
                tenant_quota: member.spec.tenant_quota,
            }
        })
        .collect();
    let mut customers = BTreeSet::new();
    for customer in ["acme", "globex", "initech"] {
        let path = dir.join(format!("customers/{customer}/customerstack.yaml"));
        let stack: CustomerStack =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(stack.spec.customer, customer, "{}", path.display());
        assert!(customers.insert(stack.spec.customer.clone()));
        let identity = StackIdentity {
            namespace: "customers".into(),
            name: customer.into(),
            uid: "00000000-0000-0000-0000-000000000000".into(),
        };
        let plan = plan_stack(&stack.spec, &identity, &members);
        assert!(
            plan.is_ok(),
            "{}: the operator would refuse it: {plan:?}",
            path.display()
        );
    }
}

#[test]
fn every_customer_stack_is_governed_by_a_platform_policy_it_keeps() {
    // What the operator would refuse as PolicyViolation with --tenant-policy=required (the
    // chart's default, and the demo's) shows up here, offline.
    let dir = gitops_dir();
    let text = std::fs::read_to_string(dir.join("platform/tenant-policies.yaml")).unwrap();
    let policies: Vec<TenantPolicy> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| TenantPolicy::deserialize(doc).unwrap())
        .collect();
    assert_eq!(policies.len(), 2);
    let named: Vec<NamedPolicy<'_>> = policies
        .iter()
        .map(|p| NamedPolicy {
            name: p.metadata.name.as_deref().unwrap(),
            spec: &p.spec,
        })
        .collect();
    for customer in ["acme", "globex", "initech"] {
        let path = dir.join(format!("customers/{customer}/customerstack.yaml"));
        let stack: CustomerStack =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let namespace = stack.metadata.namespace.as_deref().unwrap();
        assert_eq!(
            check_stack(&stack.spec, namespace, &named, PolicyMode::Required),
            Ok(()),
            "{}",
            path.display()
        );
    }
}

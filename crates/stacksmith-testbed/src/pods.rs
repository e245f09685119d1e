//! Pods that run, without containers: kube-scheduler binds the pods the workload controllers
//! create to a fake node, and kwok plays that node's kubelet, reporting the node Ready and its
//! pods Running and Ready (the kubelet is not what stacksmith's tests are about).
//!
//! A test that needs a pod that is not ready (a crashing Prometheus, say) patches the pod's
//! `Ready` condition itself, as a kubelet would ([`set_prometheus_pods_ready`]): kwok acts only on
//! pods that are still `Pending`, so it leaves such a patch alone.

use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::error::{Result, TestBedError};
use crate::process::ServerCommand;
use crate::{path_arg, write_private};

/// The fake node every test-bed cluster that runs pods has.
pub const FAKE_NODE: &str = "kwok-node-0";
/// The annotation kwok selects the nodes it plays by.
const FAKE_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// What kwok does, as its `Stage` objects: a node becomes Ready; a scheduled pod becomes
/// Running and Ready; a pod being deleted is removed (there is no container to stop).
const KWOK_STAGES: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: testbed-node-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      conditions:
      - type: Ready
        status: "True"
        reason: KubeletReady
        message: kwok plays this node's kubelet
        lastHeartbeatTime: {{ Now | Quote }}
        lastTransitionTime: {{ Now | Quote }}
      addresses:
      - type: InternalIP
        address: 127.0.0.1
      - type: Hostname
        address: {{ .metadata.name | Quote }}
      capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
      allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: fake
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: testbed-pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: ['Pending']
  next:
    statusTemplate: |
      phase: Running
      startTime: {{ Now | Quote }}
      hostIP: 127.0.0.1
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ Now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ Now | Quote }}}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ Now | Quote }}, finishedAt: {{ Now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: testbed-pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: Exists
  next:
    delete: true
"#;

/// kwok's command for a cluster (its stage file is written into `dir`).
pub(crate) fn kwok_command(
    kwok: &Path,
    cluster: &str,
    kubeconfig: &Path,
    dir: &Path,
) -> Result<ServerCommand> {
    let stages = dir.join("kwok-stages.yaml");
    write_private(&stages, KWOK_STAGES)?;
    Ok(ServerCommand {
        name: format!("kwok of {cluster}"),
        program: kwok.to_path_buf(),
        args: vec![
            format!("--kubeconfig={}", path_arg(kubeconfig)),
            format!("--config={}", path_arg(&stages)),
            format!("--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake"),
            "--node-ip=127.0.0.1".into(),
            // kwok serves a fake kubelet API on this address; nothing here uses it.
            "--server-address=127.0.0.1:0".into(),
        ],
        log: dir.join("kwok.log"),
        env: Vec::new(),
    })
}

/// kube-scheduler's command for a cluster.
pub(crate) fn scheduler_command(
    scheduler: &Path,
    cluster: &str,
    kubeconfig: &Path,
    dir: &Path,
) -> ServerCommand {
    ServerCommand {
        name: format!("kube-scheduler of {cluster}"),
        program: scheduler.to_path_buf(),
        args: vec![
            format!("--kubeconfig={}", path_arg(kubeconfig)),
            format!("--authentication-kubeconfig={}", path_arg(kubeconfig)),
            format!("--authorization-kubeconfig={}", path_arg(kubeconfig)),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
        ],
        log: dir.join("kube-scheduler.log"),
        env: Vec::new(),
    }
}

/// Creates the fake node kwok plays (idempotent).
pub(crate) async fn create_fake_node(client: &Client, cluster: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": FAKE_NODE,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": FAKE_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
    });
    nodes
        .patch(
            FAKE_NODE,
            &PatchParams::apply("stacksmith-testbed").force(),
            &Patch::Apply(&node),
        )
        .await
        .map_err(TestBedError::kube(format!(
            "create node {FAKE_NODE} on {cluster}"
        )))?;
    // Admission taints a new node `not-ready` until the node-lifecycle controller sees it Ready;
    // that controller would also evict pods from a node without kubelet heartbeats, so it does
    // not run here and the taint is lifted at once (kwok reports the node Ready).
    nodes
        .patch(
            FAKE_NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": null}})),
        )
        .await
        .map_err(TestBedError::kube(format!(
            "untaint node {FAKE_NODE} on {cluster}"
        )))?;
    Ok(())
}

/// The label prometheus-operator puts on the pods of a `Prometheus` (value: its name).
pub const PROMETHEUS_NAME_LABEL: &str = "operator.prometheus.io/name";

/// Makes every pod of the `Prometheus` `namespace/prometheus` ready or not ready, as its kubelet
/// would when the containers pass or fail their readiness probes: a strategic merge patch of the
/// status subresource keeps the pod `Running` and sets its `Ready` and `ContainersReady`
/// conditions and its containers' `ready` flags. kwok leaves such a pod alone (it acts on
/// `Pending` pods only); the StatefulSet controller and prometheus-operator react as they would
/// to a real kubelet.
///
/// Fails when the `Prometheus` has no pod (yet): wait for its pods before calling this.
pub async fn set_prometheus_pods_ready(
    client: &Client,
    namespace: &str,
    prometheus: &str,
    ready: bool,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{PROMETHEUS_NAME_LABEL}={prometheus}");
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(TestBedError::kube(format!(
            "list the pods of Prometheus {namespace}/{prometheus}"
        )))?;
    if listed.items.is_empty() {
        return Err(TestBedError::NotFound {
            what: format!("pod of Prometheus {namespace}/{prometheus} (label {selector})"),
        });
    }
    for pod in &listed.items {
        let name = pod.name_any();
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(readiness_status_patch(pod, ready)?),
        )
        .await
        .map_err(TestBedError::kube(format!(
            "set pod {namespace}/{name} {}",
            if ready { "ready" } else { "not ready" }
        )))?;
    }
    Ok(())
}

/// The status patch a kubelet sends for a running pod whose containers became (not) ready.
fn readiness_status_patch(pod: &Pod, ready: bool) -> Result<serde_json::Value> {
    let now = serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .map_err(|e| TestBedError::format("a timestamp", e))?;
    // A strategic merge patch keeps what it does not mention: `null` removes the reason and
    // message of an earlier not-ready report.
    let mut condition = json!({
        "status": if ready { "True" } else { "False" },
        "lastTransitionTime": now,
        "reason": null,
        "message": null,
    });
    if !ready {
        let containers: Vec<&str> = pod
            .spec
            .iter()
            .flat_map(|spec| spec.containers.iter().map(|c| c.name.as_str()))
            .collect();
        condition["reason"] = json!("ContainersNotReady");
        condition["message"] = json!(format!(
            "containers with unready status: [{}]",
            containers.join(" ")
        ));
    }
    let with_type = |type_: &str| {
        let mut c = condition.clone();
        c["type"] = json!(type_);
        c
    };
    let mut status = json!({"conditions": [with_type("ContainersReady"), with_type("Ready")]});
    // The container statuses are replaced as a whole (no merge key): keep what kwok wrote for
    // each container (image, state), change only `ready`.
    let container_statuses = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| {
            let mut c = serde_json::to_value(c)
                .map_err(|e| TestBedError::format("a container status", e))?;
            c["ready"] = json!(ready);
            Ok(c)
        })
        .collect::<Result<Vec<_>>>()?;
    if !container_statuses.is_empty() {
        status["containerStatuses"] = json!(container_statuses);
    }
    Ok(json!({"status": status}))
}

/// Waits (at most 60 s) until the `Prometheus` `namespace/prometheus` has as many pods as its
/// `spec.replicas` (default 1).
pub async fn wait_prometheus_pods(
    client: &Client,
    namespace: &str,
    prometheus: &str,
) -> Result<()> {
    let resource = crate::simulator::api_resource(stacksmith_core::ChildKind::Prometheus);
    let prometheuses: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{PROMETHEUS_NAME_LABEL}={prometheus}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let wanted = prometheuses
            .get(prometheus)
            .await
            .map_err(TestBedError::kube(format!(
                "get Prometheus {namespace}/{prometheus}"
            )))?
            .data["spec"]["replicas"]
            .as_u64()
            .unwrap_or(1);
        let found = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(TestBedError::kube(format!(
                "list the pods of Prometheus {namespace}/{prometheus}"
            )))?
            .items
            .len();
        if found as u64 >= wanted {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TestBedError::Timeout {
                what: format!(
                    "{wanted} pods of Prometheus {namespace}/{prometheus} (found {found})"
                ),
                secs: 60,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_three_yaml_documents() {
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(KWOK_STAGES)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap_or(serde_yaml::Value::Null))
            .collect();
        assert_eq!(docs.len(), 3);
        for doc in docs {
            assert_eq!(doc["kind"], serde_yaml::Value::from("Stage"));
        }
    }
    use serde::Deserialize as _;

    fn running_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "prometheus-p-0", "namespace": "t"},
            "spec": {"containers": [
                {"name": "prometheus", "image": "quay.io/prometheus/prometheus:v3"},
                {"name": "config-reloader", "image": "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.0"},
            ]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "prometheus", "image": "quay.io/prometheus/prometheus:v3", "imageID": "", "ready": true, "restartCount": 0, "started": true},
                {"name": "config-reloader", "image": "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.0", "imageID": "", "ready": true, "restartCount": 0, "started": true},
            ]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn not_ready_patch_is_what_a_kubelet_reports() -> Result<()> {
        let patch = readiness_status_patch(&running_pod(), false)?;
        let status = &patch["status"];
        assert!(
            status.get("phase").is_none(),
            "the phase stays Running: {status}"
        );
        let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
        let types: Vec<&str> = conditions
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["ContainersReady", "Ready"]);
        for condition in &conditions {
            assert_eq!(condition["status"], "False");
            assert_eq!(condition["reason"], "ContainersNotReady");
            assert_eq!(
                condition["message"],
                "containers with unready status: [prometheus config-reloader]"
            );
            assert!(condition["lastTransitionTime"].is_string());
        }
        let containers = status["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(containers.len(), 2);
        for container in &containers {
            assert_eq!(container["ready"], false);
            assert!(
                container["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("quay.io/"))
            );
        }
        Ok(())
    }

    #[test]
    fn ready_patch_removes_the_reason() -> Result<()> {
        let patch = readiness_status_patch(&running_pod(), true)?;
        let conditions = patch["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(conditions.len(), 2);
        for condition in &conditions {
            assert_eq!(condition["status"], "True");
            // Present and null: the merge patch removes an earlier not-ready reason.
            assert_eq!(condition.get("reason"), Some(&serde_json::Value::Null));
            assert_eq!(condition.get("message"), Some(&serde_json::Value::Null));
        }
        let containers = patch["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(containers.len(), 2);
        assert!(containers.iter().all(|c| c["ready"] == true));
        Ok(())
    }
}

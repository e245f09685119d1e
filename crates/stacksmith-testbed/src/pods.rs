//! Pods that run, without containers: kube-scheduler binds the pods the workload controllers
//! create to a fake node, and kwok plays that node's kubelet, reporting the node Ready and its
//! pods Running and Ready (the kubelet is not what stacksmith's tests are about).
//!
//! A test that needs a pod that is not ready (a crashing Prometheus, say) patches the pod's
//! `Ready` condition itself, as a kubelet would: kwok acts only on pods that are still
//! `Pending`, so it leaves such a patch alone.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
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
        .map_err(TestBedError::kube(format!("create node {FAKE_NODE} on {cluster}")))?;
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
        .map_err(TestBedError::kube(format!("untaint node {FAKE_NODE} on {cluster}")))?;
    Ok(())
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
}

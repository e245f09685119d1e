//! The child operators' CRDs on the remote clusters: the official upstream ones when they are
//! available (exactly as they ship; adjusted only for the v1.20 fallback), otherwise minimal
//! CRDs of our own for the kinds stacksmith writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_api::ClusterRole;
use stacksmith_core::ChildKind;

use crate::error::{Result, TestBedError};

/// Where the official CRDs are: `STACKSMITH_UPSTREAM_CRDS` if set, else `shared/crds/upstream`
/// beside the project checkout, if present.
pub fn upstream_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STACKSMITH_UPSTREAM_CRDS") {
        return Some(PathBuf::from(dir));
    }
    let beside_checkout =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds/upstream");
    beside_checkout.is_dir().then_some(beside_checkout)
}

/// Which CRDs a test bed installed on a remote cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdSource {
    /// The official CRDs of prometheus-operator / grafana-operator.
    Upstream,
    /// stacksmith's own minimal CRDs (schema-less spec and status).
    Minimal,
}

/// The child kinds of a role.
pub fn kinds_of(role: ClusterRole) -> &'static [ChildKind] {
    match role {
        ClusterRole::Prometheus => &[
            ChildKind::Prometheus,
            ChildKind::PrometheusRule,
            ChildKind::ServiceMonitor,
            ChildKind::AlertmanagerConfig,
        ],
        ClusterRole::Grafana => &[
            ChildKind::Grafana,
            ChildKind::GrafanaFolder,
            ChildKind::GrafanaDatasource,
            ChildKind::GrafanaDashboard,
        ],
    }
}

fn group_of(role: ClusterRole) -> &'static str {
    match role {
        ClusterRole::Prometheus => "monitoring.coreos.com",
        ClusterRole::Grafana => "grafana.integreatly.org",
    }
}

/// The CRD documents to install for a role.
///
/// The upstream CRDs are installed exactly as they ship, CEL rules included, unless `for_v1_20`
/// asks for the two changes the Debian fallback's v1.20 API server needs.
///
/// `also` is a second directory of upstream CRDs (the real prometheus-operator's release, which
/// watches kinds stacksmith does not write); a file of the same name in `upstream` wins.
pub fn crds_for(
    role: ClusterRole,
    upstream: Option<&Path>,
    also: Option<&Path>,
    for_v1_20: bool,
) -> Result<(CrdSource, Vec<Value>)> {
    if let Some(dir) = upstream {
        let mut docs = Vec::new();
        let prefix = format!("{}_", group_of(role));
        let mut files = crd_files(dir, &prefix)?;
        if let Some(also) = also {
            for file in crd_files(also, &prefix)? {
                if !files.iter().any(|f| f.file_name() == file.file_name()) {
                    files.push(file);
                }
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(TestBedError::io(format!("read {}", file.display())))?;
            let mut doc: Value = serde_yaml::from_str(&text)
                .map_err(|e| TestBedError::format(file.display().to_string(), e))?;
            if for_v1_20 {
                adjust_for_v1_20(&mut doc);
            }
            docs.push(doc);
        }
        if !docs.is_empty() {
            // A kind stacksmith writes whose CRD the directories lack (the official set beside
            // the checkout has no `AlertmanagerConfig`; the operator's release has) gets the
            // minimal CRD, so that the member serves every kind of its role.
            for kind in kinds_of(role) {
                let name = format!("{}.{}", kind.plural(), kind.api_group());
                if !docs
                    .iter()
                    .any(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(&name))
                {
                    docs.push(minimal_crd(*kind));
                }
            }
            return Ok((CrdSource::Upstream, docs));
        }
    }
    Ok((
        CrdSource::Minimal,
        kinds_of(role).iter().map(|k| minimal_crd(*k)).collect(),
    ))
}

/// The CRD files (`<group>_*.yaml`) in a directory.
fn crd_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .map_err(TestBedError::io(format!("read {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".yaml"))
        })
        .collect())
}

/// The two changes Kubernetes v1.20 needs: no `x-kubernetes-validations` (CEL arrived in 1.25)
/// and no `default: ""` (v1.20 reads it as null and refuses the CRD).
pub fn adjust_for_v1_20(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            if map.get("default") == Some(&Value::String(String::new())) {
                map.remove("default");
            }
            map.values_mut().for_each(adjust_for_v1_20);
        }
        Value::Array(items) => items.iter_mut().for_each(adjust_for_v1_20),
        _ => {}
    }
}

/// A minimal CRD for a child kind: any spec, any status, status subresource.
pub fn minimal_crd(kind: ChildKind) -> Value {
    let info = kind.info();
    let (group, version) = (info.group, info.version);
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{group}", kind.plural())},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind.as_str(),
                "listKind": format!("{}List", kind.as_str()),
                "plural": kind.plural(),
                "singular": kind.as_str().to_lowercase(),
            },
            "versions": [{
                "name": version,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": open.clone(), "status": open},
                }},
            }],
        },
    })
}

/// Creates (or replaces) CRDs and waits until every one is Established.
pub async fn install(client: &Client, cluster: &str, docs: &[Value]) -> Result<()> {
    let raw: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let typed: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in docs {
        let object: DynamicObject =
            serde_json::from_value(doc.clone()).map_err(|e| TestBedError::format("CRD", e))?;
        let name = object.name_any();
        match raw.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = raw
                    .get(&name)
                    .await
                    .map_err(TestBedError::kube(format!("get CRD {name} on {cluster}")))?;
                let mut replacement = object.clone();
                replacement.metadata.resource_version = existing.resource_version();
                raw.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .map_err(TestBedError::kube(format!(
                        "replace CRD {name} on {cluster}"
                    )))?;
            }
            Err(err) => {
                return Err(TestBedError::kube(format!(
                    "create CRD {name} on {cluster}"
                ))(err));
            }
        }
        names.push(name);
    }
    for name in names {
        wait_established(&typed, cluster, &name).await?;
    }
    Ok(())
}

/// Creates (or replaces) typed CRDs and waits until they are Established.
pub async fn install_typed(
    client: &Client,
    cluster: &str,
    crds: &[CustomResourceDefinition],
) -> Result<()> {
    let docs = crds
        .iter()
        .map(|c| serde_json::to_value(c).map_err(|e| TestBedError::format("CRD", e)))
        .collect::<Result<Vec<_>>>()?;
    install(client, cluster, &docs).await
}

async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    cluster: &str,
    name: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api
            .get(name)
            .await
            .map_err(TestBedError::kube(format!("get CRD {name} on {cluster}")))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TestBedError::Timeout {
                what: format!("CRD {name} on {cluster} to be Established"),
                secs: 30,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_20_adjustments() {
        let mut doc = json!({"a": {"x-kubernetes-validations": [1], "default": "", "b": [{"default": "", "type": "string"}], "c": {"default": "x"}}});
        adjust_for_v1_20(&mut doc);
        assert_eq!(
            doc,
            json!({"a": {"b": [{"type": "string"}], "c": {"default": "x"}}})
        );
    }

    #[test]
    fn minimal_crds_name_their_kind() {
        let crd = minimal_crd(ChildKind::GrafanaDatasource);
        assert_eq!(
            crd["metadata"]["name"],
            "grafanadatasources.grafana.integreatly.org"
        );
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1beta1");
    }
}

//! The CustomResourceDefinitions, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{CustomerStack, MemberCluster, TenantPolicy};

/// Every CRD: `MemberCluster`, `CustomerStack`, `TenantPolicy`.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        MemberCluster::crd(),
        CustomerStack::crd(),
        TenantPolicy::crd(),
    ]
}

/// Every CRD as one multi-document YAML stream (the content of `charts/.../crds.yaml`).
pub fn render_all() -> Result<String, serde_yaml::Error> {
    let mut out = String::from(
        "# Generated from the Rust types by `stacksmith crds`: do not edit by hand.\n",
    );
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

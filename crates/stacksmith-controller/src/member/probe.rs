//! Probing a member cluster: can we reach it, are its credentials accepted, which cluster is it
//! (its identity), are the child operator's CRDs served. The result is recorded by
//! [`super::status`].

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use stacksmith_api::MemberCluster;
use stacksmith_core::member_status::{ProbeFailure, ProbeResult};
use stacksmith_core::plan::ObjectKind;

use crate::remote::classify;

/// The namespace whose uid identifies a cluster: every cluster has one, and it is never
/// re-created.
pub const IDENTITY_NAMESPACE: &str = "kube-system";

/// What one probe of a member found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Whether the cluster answered, and what it serves.
    pub result: ProbeResult,
    /// The uid of its `kube-system` namespace, when the cluster answered and let it be read
    /// (`None` otherwise: the identity is unknown).
    pub identity: Option<String>,
}

impl Probe {
    fn failed(failure: ProbeFailure, message: String) -> Self {
        Probe {
            result: ProbeResult::Failed { failure, message },
            identity: None,
        }
    }
}

/// Probes a member through a client already built: its version, its identity, then the child
/// CRDs of its roles.
pub async fn probe_with_client(client: &Client, member: &MemberCluster) -> Probe {
    let timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let version = match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Err(_) => {
            return Probe::failed(
                ProbeFailure::Timeout,
                format!("no answer within {} s", timeout.as_secs()),
            );
        }
        Ok(Err(err)) => {
            let (failure, message) = classify(&err);
            return Probe::failed(failure, message);
        }
        Ok(Ok(info)) => info.git_version,
    };
    let identity = match read_identity(client, timeout).await {
        Ok(identity) => identity,
        Err((failure, message)) => return Probe::failed(failure, message),
    };
    let mut missing_kinds = Vec::new();
    for role in &member.spec.roles {
        for kind in ObjectKind::for_role(*role).iter().filter_map(|k| k.child()) {
            let served =
                tokio::time::timeout(timeout, client.list_api_group_resources(kind.api_version()))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .is_some_and(|list| list.resources.iter().any(|r| r.name == kind.plural()));
            if !served {
                missing_kinds.push(kind.as_str().to_owned());
            }
        }
    }
    Probe {
        result: ProbeResult::Answered {
            server_version: version,
            missing_kinds,
        },
        identity,
    }
}

/// The uid of the cluster's `kube-system` namespace: `Ok(None)` when the credentials may not
/// read it (403) or it does not exist (404), which leaves the identity unknown without failing
/// the probe; any other failure fails the probe.
async fn read_identity(
    client: &Client,
    timeout: Duration,
) -> Result<Option<String>, (ProbeFailure, String)> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match tokio::time::timeout(timeout, namespaces.get(IDENTITY_NAMESPACE)).await {
        Err(_) => Err((
            ProbeFailure::Timeout,
            format!("no answer within {} s", timeout.as_secs()),
        )),
        Ok(Ok(namespace)) => Ok(namespace.metadata.uid),
        Ok(Err(kube::Error::Api(status))) if matches!(status.code, 403 | 404) => {
            tracing::debug!(code = status.code, "the cluster's identity cannot be read");
            Ok(None)
        }
        Ok(Err(err)) => Err(classify(&err)),
    }
}

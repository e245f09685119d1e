//! Probing a member cluster: can we reach it, are its credentials accepted, are the child
//! operator's CRDs served. The result is recorded in the `MemberCluster`'s status.

use std::error::Error as _;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::{MemberCluster, MemberClusterStatus};
use stacksmith_core::member_status::{ProbeFailure, ProbeResult, member_status};
use stacksmith_core::plan::ObjectKind;

use crate::FIELD_MANAGER;

/// Probes a member through a client already built (version, then the child CRDs of its roles).
pub async fn probe_with_client(client: &Client, member: &MemberCluster) -> ProbeResult {
    let timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let version = match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Err(_) => {
            return ProbeResult::Failed {
                failure: ProbeFailure::Timeout,
                message: format!("no answer within {} s", timeout.as_secs()),
            };
        }
        Ok(Err(err)) => {
            let (failure, message) = classify(&err);
            return ProbeResult::Failed { failure, message };
        }
        Ok(Ok(info)) => info.git_version,
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
    ProbeResult::Answered {
        server_version: version,
        missing_kinds,
    }
}

/// Sorts a client error into a probe failure with a message that holds no credential.
pub fn classify(err: &kube::Error) -> (ProbeFailure, String) {
    if let kube::Error::Api(status) = err {
        return match status.code {
            401 => (
                ProbeFailure::CredentialsRejected,
                "the API server rejected the credentials (401 Unauthorized)".to_owned(),
            ),
            code => (
                ProbeFailure::Unreachable,
                format!("the API server answered {code} {}", status.reason),
            ),
        };
    }
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls") {
        (
            ProbeFailure::TlsVerificationFailed,
            "the server's TLS certificate did not verify against the kubeconfig's CA".to_owned(),
        )
    } else if lower.contains("timed out") || lower.contains("timeout") {
        (ProbeFailure::Timeout, "the request timed out".to_owned())
    } else if lower.contains("refused") {
        (ProbeFailure::Unreachable, "connection refused".to_owned())
    } else {
        let first: String = chain
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        (ProbeFailure::Unreachable, first)
    }
}

/// The current time, to the second (conditions carry second precision).
pub fn now() -> Time {
    let now = Timestamp::now();
    Time(now.round(Unit::Second).unwrap_or(now))
}

/// The timeout of each request to the hub made for a member (its Secret, its status).
pub const HUB_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a member's status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The hub refused the write.
    #[error("writing the MemberCluster status: {0}")]
    Api(#[from] kube::Error),
    /// The hub did not answer in time.
    #[error("writing the MemberCluster status: no answer within {} s", HUB_TIMEOUT.as_secs())]
    Timeout,
}

/// Writes the status for a probe result unless it equals `previous` (apart from
/// `lastProbeTime`). Returns the status now in force.
pub async fn record_status(
    hub: &Client,
    member: &MemberCluster,
    result: &ProbeResult,
    previous: Option<&MemberClusterStatus>,
) -> Result<MemberClusterStatus, RecordError> {
    let status = member_status(result, previous, member.metadata.generation, &now());
    let unchanged = previous.is_some_and(|old| {
        old.conditions == status.conditions
            && old.server_version == status.server_version
            && old.observed_generation == status.observed_generation
    });
    if unchanged {
        return Ok(previous.cloned().unwrap_or(status));
    }
    let api: Api<MemberCluster> = Api::all(hub.clone());
    let body =
        json!({"apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster", "status": status});
    let name = member.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    tokio::time::timeout(HUB_TIMEOUT, api.patch_status(&name, &params, &patch))
        .await
        .map_err(|_| RecordError::Timeout)??;
    Ok(status)
}

/// A one-line description of a watch failure (no credentials).
pub fn classify_watch_error(err: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match err {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
            let (failure, message) = classify(e);
            format!("{}: {message}", failure.reason())
        }
        W::WatchError(status) => format!("watch error {} {}", status.code, status.reason),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    }
}

//! Probing a member cluster: can we reach it, are its credentials accepted, are the child
//! operator's CRDs served. The result is recorded by [`super::status`].

use std::time::Duration;

use kube::Client;
use stacksmith_api::MemberCluster;
use stacksmith_core::member_status::{ProbeFailure, ProbeResult};
use stacksmith_core::plan::ObjectKind;

use crate::remote::classify;

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

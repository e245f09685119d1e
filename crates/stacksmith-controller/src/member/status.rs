//! Recording what the supervisor of a member knows in the `MemberCluster`'s status (written only
//! when it changed): what the last probe found, the cluster's identity, a refused second
//! registration and a held deletion. The supervisor is the only writer of this status.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::{MemberCluster, MemberClusterStatus};
use stacksmith_core::member_status::{MemberObservation, member_status_of};

use crate::FIELD_MANAGER;
use crate::remote::{HUB_TIMEOUT, now};

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

/// Writes the status for `observation` unless it equals `previous` (apart from
/// `lastProbeTime`). Returns the status now in force.
pub async fn record_status(
    hub: &Client,
    member: &MemberCluster,
    observation: &MemberObservation<'_>,
    previous: Option<&MemberClusterStatus>,
) -> Result<MemberClusterStatus, RecordError> {
    let status = member_status_of(observation, previous, member.metadata.generation, &now());
    let unchanged = previous.is_some_and(|old| {
        old.conditions == status.conditions
            && old.server_version == status.server_version
            && old.observed_generation == status.observed_generation
            && old.cluster_identity == status.cluster_identity
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

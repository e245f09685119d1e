//! The status of a `MemberCluster` from the result of probing it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use stacksmith_api::MemberClusterStatus;

use crate::status_conditions::{ConditionState, ConditionStatus, render_conditions};

/// Condition types of a `MemberCluster`.
pub mod condition_type {
    /// The cluster answers and stacksmith can use it.
    pub const READY: &str = "Ready";
    /// The API server answered (TLS verified).
    pub const REACHABLE: &str = "Reachable";
    /// The kubeconfig Secret is usable and the API server accepts its credentials.
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    /// The child operator's CRDs for the cluster's roles are installed.
    pub const CHILD_CRDS_PRESENT: &str = "ChildCrdsPresent";
}

/// Why a probe could not talk to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The kubeconfig Secret does not exist.
    SecretNotFound,
    /// The Secret has no such key.
    SecretKeyMissing,
    /// The hub refused to let stacksmith read the Secret.
    SecretUnreadable,
    /// The key's value is not a usable kubeconfig.
    KubeconfigInvalid,
    /// The server's certificate did not verify against the kubeconfig's CA.
    TlsVerificationFailed,
    /// The API server rejected the credentials (HTTP 401).
    CredentialsRejected,
    /// No answer within the request timeout.
    Timeout,
    /// The connection failed (refused, reset, DNS).
    Unreachable,
}

impl ProbeFailure {
    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            ProbeFailure::SecretNotFound => "SecretNotFound",
            ProbeFailure::SecretKeyMissing => "SecretKeyMissing",
            ProbeFailure::SecretUnreadable => "SecretUnreadable",
            ProbeFailure::KubeconfigInvalid => "KubeconfigInvalid",
            ProbeFailure::TlsVerificationFailed => "TLSVerificationFailed",
            ProbeFailure::CredentialsRejected => "CredentialsRejected",
            ProbeFailure::Timeout => "Timeout",
            ProbeFailure::Unreachable => "Unreachable",
        }
    }

    /// Whether the problem lies with the credentials (the Secret or what it holds) rather than
    /// the network or the server.
    fn is_credentials(self) -> bool {
        matches!(
            self,
            ProbeFailure::SecretNotFound
                | ProbeFailure::SecretKeyMissing
                | ProbeFailure::SecretUnreadable
                | ProbeFailure::KubeconfigInvalid
                | ProbeFailure::CredentialsRejected
        )
    }
}

/// What a probe found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The cluster answered.
    Answered {
        /// Its `gitVersion`.
        server_version: String,
        /// Child kinds of its roles whose CRD is not served, e.g. `Prometheus`.
        missing_kinds: Vec<String>,
    },
    /// The cluster could not be used.
    Failed {
        /// Why.
        failure: ProbeFailure,
        /// A message without any credential in it.
        message: String,
    },
}

/// The `MemberCluster` status for a probe result. Keeps the last known server version when the
/// probe failed and `lastTransitionTime`s of conditions that did not flip.
pub fn member_status(
    result: &ProbeResult,
    previous: Option<&MemberClusterStatus>,
    generation: Option<i64>,
    now: &Time,
) -> MemberClusterStatus {
    let states = match result {
        ProbeResult::Answered { missing_kinds, .. } => answered_states(missing_kinds),
        ProbeResult::Failed { failure, message } => failed_states(*failure, message),
    };
    let previous_conditions: &[Condition] = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    let server_version = match result {
        ProbeResult::Answered { server_version, .. } => Some(server_version.clone()),
        ProbeResult::Failed { .. } => previous.and_then(|p| p.server_version.clone()),
    };
    MemberClusterStatus {
        observed_generation: generation,
        conditions: render_conditions(&states, previous_conditions, generation, now),
        server_version,
        last_probe_time: Some(now.clone()),
        cluster_identity: previous.and_then(|p| p.cluster_identity.clone()),
    }
}

/// `Reachable=True`: the API server answered.
fn reachable_true() -> ConditionState {
    ConditionState {
        type_: condition_type::REACHABLE,
        status: ConditionStatus::True,
        reason: "Reachable",
        message: "the API server answered".to_owned(),
    }
}

/// The conditions of a cluster that answered, `missing_kinds` being the child kinds it does not
/// serve.
fn answered_states(missing_kinds: &[String]) -> Vec<ConditionState> {
    use condition_type::*;
    let crds_ok = missing_kinds.is_empty();
    let crds_message = if crds_ok {
        "all child CRDs of the cluster's roles are served".to_owned()
    } else {
        format!(
            "not served: {} (install the child operator's CRDs)",
            missing_kinds.join(", ")
        )
    };
    vec![
        ConditionState {
            type_: READY,
            status: ConditionStatus::from_bool(crds_ok),
            reason: if crds_ok { "Ready" } else { "ChildCrdsMissing" },
            message: if crds_ok {
                "the cluster answers and serves the child kinds".to_owned()
            } else {
                crds_message.clone()
            },
        },
        reachable_true(),
        ConditionState {
            type_: CREDENTIALS_VALID,
            status: ConditionStatus::True,
            reason: "Accepted",
            message: "the API server accepted the credentials".to_owned(),
        },
        ConditionState {
            type_: CHILD_CRDS_PRESENT,
            status: ConditionStatus::from_bool(crds_ok),
            reason: if crds_ok {
                "Present"
            } else {
                "ChildCrdsMissing"
            },
            message: crds_message,
        },
    ]
}

/// The conditions of a cluster that could not be used.
fn failed_states(failure: ProbeFailure, message: &str) -> Vec<ConditionState> {
    use condition_type::*;
    let credentials = failure.is_credentials();
    vec![
        failed(READY, failure, message),
        if credentials && failure != ProbeFailure::CredentialsRejected {
            not_checked(REACHABLE, failure, "no usable credentials")
        } else if credentials {
            reachable_true()
        } else {
            failed(REACHABLE, failure, message)
        },
        if credentials {
            failed(CREDENTIALS_VALID, failure, message)
        } else {
            not_checked(CREDENTIALS_VALID, failure, "the cluster did not answer")
        },
        not_checked(
            CHILD_CRDS_PRESENT,
            failure,
            "the cluster could not be queried",
        ),
    ]
}

/// A `False` condition carrying the failure's reason and message.
fn failed(type_: &'static str, failure: ProbeFailure, message: &str) -> ConditionState {
    ConditionState {
        type_,
        status: ConditionStatus::False,
        reason: failure.reason(),
        message: message.to_owned(),
    }
}

/// An `Unknown` condition the failure kept from being checked, and `why`.
fn not_checked(type_: &'static str, failure: ProbeFailure, why: &str) -> ConditionState {
    ConditionState {
        type_,
        status: ConditionStatus::Unknown,
        reason: failure.reason(),
        message: format!("not checked: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).unwrap())
    }

    fn condition<'a>(status: &'a MemberClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_healthy_cluster_is_ready() {
        let result = ProbeResult::Answered {
            server_version: "v1.20.2".into(),
            missing_kinds: vec![],
        };
        let status = member_status(&result, None, Some(1), &now());
        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(status.server_version.as_deref(), Some("v1.20.2"));
    }

    #[test]
    fn missing_crds_are_named() {
        let result = ProbeResult::Answered {
            server_version: "v1.20.2".into(),
            missing_kinds: vec!["Prometheus".into()],
        };
        let status = member_status(&result, None, Some(1), &now());
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ChildCrdsMissing")
        );
        assert!(ready.message.contains("Prometheus"));
    }

    #[test]
    fn unreachable_keeps_the_last_version_and_leaves_credentials_unknown() {
        let previous = member_status(
            &ProbeResult::Answered {
                server_version: "v1.20.2".into(),
                missing_kinds: vec![],
            },
            None,
            Some(1),
            &now(),
        );
        let result = ProbeResult::Failed {
            failure: ProbeFailure::Unreachable,
            message: "connection refused".into(),
        };
        let status = member_status(&result, Some(&previous), Some(1), &now());
        assert_eq!(status.server_version.as_deref(), Some("v1.20.2"));
        assert_eq!(condition(&status, "Reachable").status, "False");
        assert_eq!(condition(&status, "CredentialsValid").status, "Unknown");
        assert_eq!(condition(&status, "Ready").reason, "Unreachable");
    }

    #[test]
    fn rejected_credentials_mean_reachable_but_invalid() {
        let result = ProbeResult::Failed {
            failure: ProbeFailure::CredentialsRejected,
            message: "401".into(),
        };
        let status = member_status(&result, None, None, &now());
        assert_eq!(condition(&status, "Reachable").status, "True");
        assert_eq!(condition(&status, "CredentialsValid").status, "False");
    }
}

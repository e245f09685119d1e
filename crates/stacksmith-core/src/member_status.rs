//! The status of a `MemberCluster` from the result of probing it, and the decisions about a
//! registration that go beyond one probe: whether it is a second registration of a cluster
//! already registered ([`duplicated_registration`]), and whether its deletion is held because
//! stacks still use it ([`in_use_decision`], [`stacks_using`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use stacksmith_api::{CustomerStack, MemberClusterStatus};

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

/// Reasons of the `Ready` condition that are decisions of stacksmith's rather than findings of
/// a probe.
pub mod reason {
    /// Another, older `MemberCluster` reaches the same cluster: this registration is not used.
    pub const DUPLICATE_CLUSTER: &str = "DuplicateCluster";
    /// The `MemberCluster` is being deleted, and stacks still use it.
    pub const DELETION_HELD_IN_USE: &str = "DeletionHeldInUse";
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

/// Everything a `MemberCluster`'s status is rendered from.
#[derive(Clone, Copy, Debug)]
pub struct MemberObservation<'a> {
    /// What the last probe found.
    pub probe: &'a ProbeResult,
    /// The cluster's identity as last known (see [`identity_after_probe`]).
    pub identity: Option<&'a str>,
    /// The older registration of the same cluster, when this one is refused
    /// (see [`duplicated_registration`]).
    pub duplicate_of: Option<&'a str>,
    /// While the `MemberCluster` is being deleted and its deletion is held: the stacks that
    /// still use it, as `namespace/name` (see [`in_use_decision`]).
    pub held_by: &'a [String],
}

/// The `MemberCluster` status for a probe result alone: no refusal, no deletion hold, and the
/// identity recorded in `previous` kept (see [`member_status_of`] for the full picture).
pub fn member_status(
    result: &ProbeResult,
    previous: Option<&MemberClusterStatus>,
    generation: Option<i64>,
    now: &Time,
) -> MemberClusterStatus {
    let observation = MemberObservation {
        probe: result,
        identity: previous.and_then(|p| p.cluster_identity.as_deref()),
        duplicate_of: None,
        held_by: &[],
    };
    member_status_of(&observation, previous, generation, now)
}

/// The `MemberCluster` status for what was observed. Keeps the last known server version when
/// the probe failed and `lastTransitionTime`s of conditions that did not flip.
///
/// `Ready` says what matters most: a refused second registration (`DuplicateCluster`) before a
/// held deletion (`DeletionHeldInUse`) before what the probe found; the other conditions always
/// say what the probe found.
pub fn member_status_of(
    observation: &MemberObservation<'_>,
    previous: Option<&MemberClusterStatus>,
    generation: Option<i64>,
    now: &Time,
) -> MemberClusterStatus {
    let result = observation.probe;
    let mut states = match result {
        ProbeResult::Answered { missing_kinds, .. } => answered_states(missing_kinds),
        ProbeResult::Failed { failure, message } => failed_states(*failure, message),
    };
    if let Some(ready) = decided_ready(observation)
        && let Some(slot) = states.iter_mut().find(|s| s.type_ == condition_type::READY)
    {
        *slot = ready;
    }
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
        cluster_identity: observation.identity.map(str::to_owned),
    }
}

/// `Ready` when a decision of stacksmith's overrides what the probe found.
fn decided_ready(observation: &MemberObservation<'_>) -> Option<ConditionState> {
    if let Some(older) = observation.duplicate_of {
        return Some(ConditionState {
            type_: condition_type::READY,
            status: ConditionStatus::False,
            reason: reason::DUPLICATE_CLUSTER,
            message: duplicate_message(older),
        });
    }
    if !observation.held_by.is_empty() {
        return Some(ConditionState {
            type_: condition_type::READY,
            status: ConditionStatus::False,
            reason: reason::DELETION_HELD_IN_USE,
            message: format!(
                "being deleted; held while used by CustomerStack {} (it stays connected so they can clean up)",
                observation.held_by.join(", ")
            ),
        });
    }
    None
}

/// What a refused second registration says, naming the registration in use.
pub fn duplicate_message(older: &str) -> String {
    format!(
        "the same cluster as MemberCluster {older} (the same kube-system namespace uid): this registration is not used, nothing is written or deleted through it"
    )
}

/// The identity to record after a probe: the one it read when the cluster answered (`None`
/// when the `kube-system` namespace could not be read: the identity is unknown), and the last
/// one known when the cluster did not answer (it did not change for that).
pub fn identity_after_probe(
    result: &ProbeResult,
    read: Option<&str>,
    last_known: Option<&str>,
) -> Option<String> {
    match result {
        ProbeResult::Answered { .. } => read.map(str::to_owned),
        ProbeResult::Failed { .. } => last_known.map(str::to_owned),
    }
}

/// One `MemberCluster` as the duplicate check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its `metadata.creationTimestamp`.
    pub created: Option<&'a Time>,
    /// The identity of the cluster it reaches, if known: read by a probe of this operator, or
    /// recorded in its status by an earlier one.
    pub identity: Option<&'a str>,
}

impl Registration<'_> {
    /// Older first: by `creationTimestamp`, then by name.
    fn age_key(&self) -> (Option<&Time>, &str) {
        (self.created, self.name)
    }
}

/// The registration `candidate` duplicates, if any: the oldest of `others` (by
/// `creationTimestamp`, then name) that reaches the same cluster and is older than `candidate`.
/// `None`: `candidate` may be used, because its identity is unknown, no other registration
/// has the same one, or it is the oldest of those that have. A registration whose identity is
/// not known yet refuses no one; the check runs again when it becomes known.
pub fn duplicated_registration<'a>(
    candidate: &Registration<'_>,
    others: &[Registration<'a>],
) -> Option<&'a str> {
    let identity = candidate.identity?;
    others
        .iter()
        .filter(|o| o.name != candidate.name && o.identity == Some(identity))
        .filter(|o| o.age_key() < candidate.age_key())
        .min_by(|a, b| a.age_key().cmp(&b.age_key()))
        .map(|o| o.name)
}

/// The stacks that use member `member`, as sorted `namespace/name`: those whose spec names it
/// (`spec.metrics.cluster`, `spec.dashboards.cluster`) and those whose inventory still holds an
/// object written through it.
pub fn stacks_using<'a>(
    member: &str,
    stacks: impl IntoIterator<Item = &'a CustomerStack>,
) -> Vec<String> {
    let mut users: Vec<String> = stacks
        .into_iter()
        .filter(|stack| {
            stack.spec.metrics.cluster == member
                || stack.spec.dashboards.cluster == member
                || stack
                    .status
                    .as_ref()
                    .is_some_and(|s| s.inventory.iter().any(|e| e.cluster == member))
        })
        .map(|stack| {
            format!(
                "{}/{}",
                stack.metadata.namespace.as_deref().unwrap_or_default(),
                stack.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    users.sort();
    users.dedup();
    users
}

/// Where a `MemberCluster` stands in its life, as far as its deletion hold is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberLifecycle {
    /// Its deletion has started (`metadata.deletionTimestamp`).
    pub deleting: bool,
    /// It carries stacksmith's in-use finalizer.
    pub has_finalizer: bool,
    /// It is refused as a second registration of a cluster: nothing can be cleaned up through
    /// it, so holding its deletion would only hold it forever.
    pub refused: bool,
}

/// What to do with the in-use finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerAction {
    /// Add it (a `MemberCluster` not being deleted that lacks it).
    Add,
    /// Remove it: the deletion may go ahead.
    Remove,
    /// Leave it as it is.
    Keep,
}

/// The deletion hold of one `MemberCluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUseDecision {
    /// The stacks holding its deletion (empty unless it is being deleted and held).
    pub held_by: Vec<String>,
    /// What to do with the finalizer.
    pub finalizer: FinalizerAction,
}

/// Whether a `MemberCluster` in `lifecycle`, used by the stacks `users` (see [`stacks_using`]),
/// is held: every registration carries the finalizer while it is not being deleted; once it is,
/// the finalizer stays while a stack still uses it (so the stack can clean up through it) and is
/// removed when none does, or at once for a refused second registration.
pub fn in_use_decision(lifecycle: MemberLifecycle, users: Vec<String>) -> InUseDecision {
    match (lifecycle.deleting, lifecycle.has_finalizer) {
        (false, false) => InUseDecision {
            held_by: Vec::new(),
            finalizer: FinalizerAction::Add,
        },
        (false, true) | (true, false) => InUseDecision {
            held_by: Vec::new(),
            finalizer: FinalizerAction::Keep,
        },
        (true, true) if lifecycle.refused || users.is_empty() => InUseDecision {
            held_by: Vec::new(),
            finalizer: FinalizerAction::Remove,
        },
        (true, true) => InUseDecision {
            held_by: users,
            finalizer: FinalizerAction::Keep,
        },
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

    fn answered() -> ProbeResult {
        ProbeResult::Answered {
            server_version: "v1.37.2".into(),
            missing_kinds: vec![],
        }
    }

    fn observation<'a>(probe: &'a ProbeResult, identity: Option<&'a str>) -> MemberObservation<'a> {
        MemberObservation {
            probe,
            identity,
            duplicate_of: None,
            held_by: &[],
        }
    }

    #[test]
    fn records_the_identity_the_probe_read() {
        let previous = MemberClusterStatus {
            cluster_identity: Some("old-uid".into()),
            ..MemberClusterStatus::default()
        };
        let probe = answered();
        let status = member_status_of(
            &observation(&probe, Some("new-uid")),
            Some(&previous),
            Some(1),
            &now(),
        );
        assert_eq!(status.cluster_identity.as_deref(), Some("new-uid"));
        let unknown =
            member_status_of(&observation(&probe, None), Some(&previous), Some(1), &now());
        assert_eq!(
            unknown.cluster_identity, None,
            "an unreadable identity is unknown"
        );
    }

    #[test]
    fn identity_after_probe_keeps_the_last_one_only_when_the_cluster_did_not_answer() {
        let failed = ProbeResult::Failed {
            failure: ProbeFailure::Unreachable,
            message: "connection refused".into(),
        };
        assert_eq!(
            identity_after_probe(&answered(), Some("u2"), Some("u1")).as_deref(),
            Some("u2")
        );
        assert_eq!(identity_after_probe(&answered(), None, Some("u1")), None);
        assert_eq!(
            identity_after_probe(&failed, None, Some("u1")).as_deref(),
            Some("u1")
        );
        assert_eq!(identity_after_probe(&failed, None, None), None);
    }

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    #[test]
    fn duplicate_the_older_registration_keeps_the_cluster() {
        let (t1, t2) = (at(1_000), at(2_000));
        let older = Registration {
            name: "prometheus-1",
            created: Some(&t1),
            identity: Some("u"),
        };
        let newer = Registration {
            name: "a-second-name",
            created: Some(&t2),
            identity: Some("u"),
        };
        assert_eq!(
            duplicated_registration(&newer, &[older, newer]),
            Some("prometheus-1")
        );
        assert_eq!(duplicated_registration(&older, &[older, newer]), None);
    }

    #[test]
    fn duplicate_same_creation_time_is_decided_by_name() {
        let t = at(1_000);
        let a = Registration {
            name: "a",
            created: Some(&t),
            identity: Some("u"),
        };
        let b = Registration {
            name: "b",
            created: Some(&t),
            identity: Some("u"),
        };
        assert_eq!(duplicated_registration(&b, &[a]), Some("a"));
        assert_eq!(duplicated_registration(&a, &[b]), None);
    }

    #[test]
    fn duplicate_unknown_identities_refuse_no_one() {
        let (t1, t2) = (at(1_000), at(2_000));
        let older_unknown = Registration {
            name: "old",
            created: Some(&t1),
            identity: None,
        };
        let newer = Registration {
            name: "new",
            created: Some(&t2),
            identity: Some("u"),
        };
        assert_eq!(duplicated_registration(&newer, &[older_unknown]), None);
        let newer_unknown = Registration {
            identity: None,
            ..newer
        };
        let older_known = Registration {
            identity: Some("u"),
            ..older_unknown
        };
        assert_eq!(
            duplicated_registration(&newer_unknown, &[older_known]),
            None
        );
    }

    #[test]
    fn duplicate_names_the_oldest_and_ignores_other_clusters() {
        let (t1, t2, t3, t4) = (at(1), at(2), at(3), at(4));
        let other_cluster = Registration {
            name: "elsewhere",
            created: Some(&t1),
            identity: Some("v"),
        };
        let oldest = Registration {
            name: "z-oldest",
            created: Some(&t2),
            identity: Some("u"),
        };
        let middle = Registration {
            name: "a-middle",
            created: Some(&t3),
            identity: Some("u"),
        };
        let newest = Registration {
            name: "newest",
            created: Some(&t4),
            identity: Some("u"),
        };
        let all = [newest, middle, other_cluster, oldest];
        assert_eq!(duplicated_registration(&newest, &all), Some("z-oldest"));
        assert_eq!(duplicated_registration(&middle, &all), Some("z-oldest"));
        assert_eq!(duplicated_registration(&oldest, &all), None);
        assert_eq!(duplicated_registration(&other_cluster, &all), None);
    }

    #[test]
    fn duplicate_is_ready_false_naming_the_other_registration() {
        let probe = answered();
        let status = member_status_of(
            &MemberObservation {
                duplicate_of: Some("prometheus-1"),
                ..observation(&probe, Some("u"))
            },
            None,
            Some(1),
            &now(),
        );
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DuplicateCluster")
        );
        assert!(
            ready.message.contains("MemberCluster prometheus-1"),
            "{}",
            ready.message
        );
        assert_eq!(condition(&status, "Reachable").status, "True");
        assert_eq!(status.cluster_identity.as_deref(), Some("u"));
    }

    #[test]
    fn held_deletion_names_the_stacks() {
        let probe = answered();
        let held_by = vec!["ns/a".to_owned(), "ns/b".to_owned()];
        let status = member_status_of(
            &MemberObservation {
                held_by: &held_by,
                ..observation(&probe, Some("u"))
            },
            None,
            Some(1),
            &now(),
        );
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DeletionHeldInUse")
        );
        assert!(
            ready.message.contains("used by CustomerStack ns/a, ns/b"),
            "{}",
            ready.message
        );
        assert_eq!(condition(&status, "ChildCrdsPresent").status, "True");
    }

    fn stack(namespace: &str, name: &str, metrics: &str, inventory: &[&str]) -> CustomerStack {
        let inventory: Vec<serde_json::Value> = inventory
            .iter()
            .map(|cluster| {
                serde_json::json!({"cluster": cluster, "kind": "Namespace", "name": "customer-x", "uid": "1"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"customer": name, "metrics": {"cluster": metrics},
                     "dashboards": {"cluster": "grafana-1", "instanceSelector": {}}},
            "status": {"inventory": inventory},
        }))
        .unwrap()
    }

    #[test]
    fn stacks_using_a_member_by_spec_or_inventory() {
        let stacks = [
            stack("team-b", "b", "prometheus-1", &[]),
            stack("team-a", "a", "prometheus-2", &["prometheus-1"]),
            stack("team-c", "c", "prometheus-2", &["prometheus-2"]),
        ];
        assert_eq!(
            stacks_using("prometheus-1", &stacks),
            vec!["team-a/a".to_owned(), "team-b/b".to_owned()]
        );
        assert_eq!(
            stacks_using("grafana-1", &stacks).len(),
            3,
            "the dashboards' cluster counts too"
        );
        assert!(stacks_using("prometheus-9", &stacks).is_empty());
    }

    #[test]
    fn in_use_decision_adds_holds_and_releases() {
        let lifecycle = |deleting, has_finalizer, refused| MemberLifecycle {
            deleting,
            has_finalizer,
            refused,
        };
        let users = || vec!["ns/a".to_owned()];
        // Seen and not being deleted: the finalizer is added once, then kept.
        assert_eq!(
            in_use_decision(lifecycle(false, false, false), users()).finalizer,
            FinalizerAction::Add
        );
        assert_eq!(
            in_use_decision(lifecycle(false, true, false), users()),
            InUseDecision {
                held_by: vec![],
                finalizer: FinalizerAction::Keep
            }
        );
        // Being deleted and used: held, naming the stacks.
        assert_eq!(
            in_use_decision(lifecycle(true, true, false), users()),
            InUseDecision {
                held_by: users(),
                finalizer: FinalizerAction::Keep
            }
        );
        // Being deleted, used by none: released.
        assert_eq!(
            in_use_decision(lifecycle(true, true, false), vec![]).finalizer,
            FinalizerAction::Remove
        );
        // A refused second registration cannot clean anything up: released at once.
        assert_eq!(
            in_use_decision(lifecycle(true, true, true), users()),
            InUseDecision {
                held_by: vec![],
                finalizer: FinalizerAction::Remove
            }
        );
        // Being deleted without our finalizer: nothing to hold, nothing to add.
        assert_eq!(
            in_use_decision(lifecycle(true, false, false), users()),
            InUseDecision {
                held_by: vec![],
                finalizer: FinalizerAction::Keep
            }
        );
    }
}

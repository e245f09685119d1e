//! The one place an API server is called from: the typed handle for a kind in a namespace, the
//! timeout every request runs under, and how a failure is described (one line, no credential,
//! no response body).

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use stacksmith_core::member_status::ProbeFailure;
use stacksmith_core::plan::ObjectKind;

/// The timeout of each request to the hub (status writes, Events, kubeconfig Secrets).
pub const HUB_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to an API server did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The API server (or the connection to it) answered with an error.
    #[error("{}", api_error_summary(.0))]
    Failed(#[source] kube::Error),
    /// No answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl RemoteError {
    /// Whether the API server said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RemoteError::Failed(kube::Error::Api(status)) if status.code == 404)
    }

    /// Whether the API server answered 409 Conflict (for a delete with a uid precondition: the
    /// object of that name has another uid).
    pub fn is_conflict(&self) -> bool {
        matches!(self, RemoteError::Failed(kube::Error::Api(status)) if status.code == 409)
    }

    /// The probe failure this amounts to, with a message that holds no credential.
    pub fn classify(&self) -> (ProbeFailure, String) {
        match self {
            RemoteError::Failed(err) => classify(err),
            RemoteError::Timeout(timeout) => (
                ProbeFailure::Timeout,
                format!("no answer within {} s", timeout.as_secs()),
            ),
        }
    }
}

/// Runs one request under `timeout`.
pub async fn call<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, RemoteError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(RemoteError::Failed),
        Err(_) => Err(RemoteError::Timeout(timeout)),
    }
}

/// The `ApiResource` of a planned kind (from the one table of kinds).
pub fn api_resource(kind: ObjectKind) -> ApiResource {
    kind.info().api_resource()
}

/// The handle for objects of `kind` in `namespace` (ignored for cluster-scoped kinds).
pub fn object_api(client: &Client, kind: ObjectKind, namespace: &str) -> Api<DynamicObject> {
    let resource = api_resource(kind);
    if kind.namespaced() {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

/// The current time, to the second (conditions carry second precision).
pub fn now() -> Time {
    let now = Timestamp::now();
    Time(now.round(Unit::Second).unwrap_or(now))
}

/// `<Reason>: <message>`, how an unusable or unreachable member is described.
pub fn failure_message(failure: ProbeFailure, message: &str) -> String {
    format!("{}: {message}", failure.reason())
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

/// A one-line description of a watch failure (no credentials).
pub fn classify_watch_error(err: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match err {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
            let (failure, message) = classify(e);
            failure_message(failure, &message)
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

/// A one-line description of an API error: status code and reason, never a body; for a request
/// refused as invalid (400, 422) also the API server's first line about the fields at fault,
/// which is what a human needs to fix the object.
pub fn api_error_summary(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status)
            if matches!(status.code, 400 | 422) && !status.message.is_empty() =>
        {
            format!(
                "{} {}: {}",
                status.code,
                status.reason,
                first_line_clipped(&status.message, 400)
            )
        }
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => redacted_reason(&other.to_string()),
    }
}

/// Keeps only the first line of a message and cuts it short: parser and transport messages name
/// positions and types, but a long one could echo input.
pub fn redacted_reason(message: &str) -> String {
    first_line_clipped(message, 160)
}

/// The first line of `message`, at most `limit` characters (an ellipsis marks a cut).
fn first_line_clipped(message: &str, limit: usize) -> String {
    let first_line = message.lines().next().unwrap_or_default();
    let mut out: String = first_line.chars().take(limit).collect();
    if out.len() < first_line.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_to_its_first_line() {
        let long = format!("{}\nsecond line with data", "x".repeat(300));
        let cut = redacted_reason(&long);
        assert!(cut.ends_with('…'));
        assert!(!cut.contains("second line"));
        assert_eq!(cut.chars().count(), 161);
    }

    #[test]
    fn a_refusal_as_invalid_says_what_is_wrong_and_nothing_else_does() {
        let status = |code: u16, reason: &str, message: &str| {
            kube::Error::Api(
                kube::core::Status {
                    code,
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                    ..kube::core::Status::default()
                }
                .boxed(),
            )
        };
        let invalid = status(
            422,
            "Invalid",
            "Prometheus.monitoring.coreos.com \"acme\" is invalid: spec.replicas: Invalid value: 3\nmore",
        );
        assert_eq!(
            api_error_summary(&invalid),
            "422 Invalid: Prometheus.monitoring.coreos.com \"acme\" is invalid: spec.replicas: Invalid value: 3"
        );
        let forbidden = status(403, "Forbidden", "user \"x\" cannot patch; token abc");
        assert_eq!(api_error_summary(&forbidden), "403 Forbidden");
    }

    #[test]
    fn a_timeout_is_described_with_its_length() {
        let err = RemoteError::Timeout(Duration::from_secs(7));
        assert_eq!(err.to_string(), "no answer within 7 s");
        assert_eq!(err.classify().0, ProbeFailure::Timeout);
        assert!(!err.is_not_found());
    }
}

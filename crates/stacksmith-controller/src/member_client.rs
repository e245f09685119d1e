//! Clients for member clusters, built from their kubeconfig Secrets on the hub.
//!
//! No error message here ever contains Secret data: messages name the Secret and key, never
//! the kubeconfig's content.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::api_calls::{ApiCallCounter, CountingLayer};
use crate::member_probe::HUB_TIMEOUT;
use stacksmith_api::{MemberCluster, SecretKeyReference};
use stacksmith_core::member_status::ProbeFailure;

/// Why a member cluster's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MemberClientError {
    /// The Secret does not exist.
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret could not be read.
    #[error("cannot read Secret {namespace}/{name}: {reason}")]
    SecretUnreadable {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's answer (no Secret data).
        reason: String,
    },
    /// The key is absent.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The missing key.
        key: String,
        /// The Secret's `resourceVersion`.
        secret_version: Option<String>,
    },
    /// The value is not a usable kubeconfig.
    #[error("Secret {namespace}/{name} key {key:?} is not a usable kubeconfig: {reason}")]
    KubeconfigInvalid {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong (no Secret data).
        reason: String,
        /// The Secret's `resourceVersion`.
        secret_version: Option<String>,
    },
}

impl MemberClientError {
    /// The probe failure this error amounts to.
    pub fn probe_failure(&self) -> ProbeFailure {
        match self {
            MemberClientError::SecretNotFound { .. } => ProbeFailure::SecretNotFound,
            MemberClientError::SecretUnreadable { .. } => ProbeFailure::SecretUnreadable,
            MemberClientError::KeyMissing { .. } => ProbeFailure::SecretKeyMissing,
            MemberClientError::KubeconfigInvalid { .. } => ProbeFailure::KubeconfigInvalid,
        }
    }

    /// The `resourceVersion` of the Secret the error is about, when it exists.
    pub fn secret_version(&self) -> Option<String> {
        match self {
            MemberClientError::KeyMissing { secret_version, .. }
            | MemberClientError::KubeconfigInvalid { secret_version, .. } => secret_version.clone(),
            _ => None,
        }
    }
}

/// Builds a client for `member` from its kubeconfig Secret (requests counted in `counter`), also returning the Secret's `resourceVersion` (to notice rotation).
pub async fn member_client_from_secret(
    hub: &Client,
    member: &MemberCluster,
    counter: &ApiCallCounter,
) -> Result<(Client, Option<String>), MemberClientError> {
    let reference = &member.spec.kubeconfig_secret_ref;
    let (kubeconfig_yaml, version) = read_kubeconfig(hub, reference).await?;
    let timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let layer = counter.layer(member.metadata.name.clone().unwrap_or_default());
    let client = client_from_kubeconfig(&kubeconfig_yaml, timeout, &layer)
        .await
        .map_err(|reason| MemberClientError::KubeconfigInvalid {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            key: reference.key.clone(),
            reason,
            secret_version: version.clone(),
        })?;
    Ok((client, version))
}

async fn read_kubeconfig(
    hub: &Client,
    reference: &SecretKeyReference,
) -> Result<(String, Option<String>), MemberClientError> {
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), &reference.namespace);
    let read = tokio::time::timeout(HUB_TIMEOUT, secrets.get_opt(&reference.name)).await;
    let secret = match read {
        Err(_) => {
            return Err(MemberClientError::SecretUnreadable {
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
                reason: format!("the hub did not answer within {} s", HUB_TIMEOUT.as_secs()),
            });
        }
        Ok(read) => read,
    };
    let secret = match secret {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(MemberClientError::SecretNotFound {
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
            });
        }
        Err(err) => {
            return Err(MemberClientError::SecretUnreadable {
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
                reason: api_error_summary(&err),
            });
        }
    };
    let version = secret.metadata.resource_version.clone();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| MemberClientError::KeyMissing {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            key: reference.key.clone(),
            secret_version: version.clone(),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| MemberClientError::KubeconfigInvalid {
        namespace: reference.namespace.clone(),
        name: reference.name.clone(),
        key: reference.key.clone(),
        reason: "the value is not UTF-8 text".to_owned(),
        secret_version: version.clone(),
    })?;
    Ok((text, version))
}

/// Builds a client from kubeconfig text; the error is a description safe to log.
///
/// Only connecting is bounded by `timeout` here: the same client carries long-lived watches,
/// which a read timeout would cut. Every request stacksmith makes is bounded by the caller
/// (`tokio::time::timeout` with the member's request timeout).
pub async fn client_from_kubeconfig(
    yaml: &str,
    timeout: Duration,
    counting: &CountingLayer,
) -> Result<Client, String> {
    let kubeconfig =
        Kubeconfig::from_yaml(yaml).map_err(|err| redacted_reason(&err.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|err| redacted_reason(&err.to_string()))?;
    config.connect_timeout = Some(timeout);
    let builder =
        ClientBuilder::try_from(config).map_err(|err| redacted_reason(&err.to_string()))?;
    Ok(builder.with_layer(counting).build())
}

/// Keeps only the first line of a parser message and cuts it short: parser messages name
/// positions and types, but a long one could echo input.
fn redacted_reason(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or_default();
    let mut out: String = first_line.chars().take(160).collect();
    if out.len() < first_line.len() {
        out.push('…');
    }
    out
}

/// A one-line description of an API error (status code and reason, never a body).
pub fn api_error_summary(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => redacted_reason(&other.to_string()),
    }
}

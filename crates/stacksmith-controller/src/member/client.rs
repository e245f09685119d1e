//! Clients for member clusters, built from their kubeconfig Secrets on the hub.
//!
//! No error message here ever contains Secret data: messages name the Secret and key, never
//! the kubeconfig's content.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use stacksmith_api::{MemberCluster, SecretKeyReference};
use stacksmith_core::member_status::ProbeFailure;

use crate::remote::{HUB_TIMEOUT, api_error_summary, redacted_reason};
use crate::telemetry::api_calls::{ApiCallCounter, CountingLayer};

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
            reason: reason.0,
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

/// Why a kubeconfig cannot be used: a description safe to log (no kubeconfig content).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KubeconfigRefused(pub String);

/// Builds a client from kubeconfig text; the error is a description safe to log.
///
/// Only connecting is bounded by `timeout` here: the same client carries long-lived watches,
/// which a read timeout would cut. Every request stacksmith makes is bounded by the caller
/// (`tokio::time::timeout` with the member's request timeout).
pub async fn client_from_kubeconfig(
    yaml: &str,
    timeout: Duration,
    counting: &CountingLayer,
) -> Result<Client, KubeconfigRefused> {
    let refused =
        |err: &dyn std::fmt::Display| KubeconfigRefused(redacted_reason(&err.to_string()));
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|err| refused(&err))?;
    refuse_unsafe_kubeconfig(&kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|err| refused(&err))?;
    config.connect_timeout = Some(timeout);
    let builder = ClientBuilder::try_from(config).map_err(|err| refused(&err))?;
    Ok(builder.with_layer(counting).build())
}

/// Refuses what a member kubeconfig must not make the operator do: whoever can write a member's
/// kubeconfig Secret on the hub must not be able to make the operator run a command (`exec`,
/// `auth-provider`), read files from its own file system (`certificate-authority`,
/// `client-certificate`, `client-key`, `tokenFile`) or talk to a cluster without verifying its
/// certificate (`insecure-skip-tls-verify`), in the clear (`server: http://…`, whose token would
/// cross the network unencrypted) or through a proxy of the Secret writer's choosing
/// (`proxy-url`). Everything must be embedded (`*-data`, `token`).
pub fn refuse_unsafe_kubeconfig(kubeconfig: &Kubeconfig) -> Result<(), KubeconfigRefused> {
    let mut refused = Vec::new();
    for named in &kubeconfig.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        let name = &named.name;
        if cluster.insecure_skip_tls_verify == Some(true) {
            refused.push(format!(
                "cluster {name:?}: insecure-skip-tls-verify (give certificate-authority-data)"
            ));
        }
        if let Some(server) = &cluster.server
            && !server.to_ascii_lowercase().starts_with("https://")
        {
            refused.push(format!(
                "cluster {name:?}: server is not https:// (credentials would cross the network in the clear)"
            ));
        }
        if cluster.proxy_url.is_some() {
            refused.push(format!(
                "cluster {name:?}: proxy-url (the operator connects to members directly)"
            ));
        }
        if cluster.certificate_authority.is_some() {
            refused.push(format!(
                "cluster {name:?}: certificate-authority file path (embed certificate-authority-data)"
            ));
        }
    }
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let name = &named.name;
        if user.exec.is_some() {
            refused.push(format!("user {name:?}: exec credential plugin"));
        }
        if user.auth_provider.is_some() {
            refused.push(format!("user {name:?}: auth-provider"));
        }
        for (present, field) in [
            (user.token_file.is_some(), "tokenFile"),
            (user.client_certificate.is_some(), "client-certificate"),
            (user.client_key.is_some(), "client-key"),
        ] {
            if present {
                refused.push(format!(
                    "user {name:?}: {field} file path (embed the data instead)"
                ));
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(KubeconfigRefused(format!(
            "refused for safety: {}",
            refused.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAFE: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Zm9v\nusers:\n- name: u\n  user:\n    token: secret-token\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n";

    fn check(yaml: &str) -> Result<(), String> {
        refuse_unsafe_kubeconfig(&Kubeconfig::from_yaml(yaml).unwrap()).map_err(|e| e.0)
    }

    #[test]
    fn embedded_credentials_are_accepted() {
        assert_eq!(check(SAFE), Ok(()));
    }

    #[test]
    fn commands_files_and_unverified_tls_are_refused_without_echoing_secrets() {
        let cases = [
            (
                "    certificate-authority-data: Zm9v",
                "    insecure-skip-tls-verify: true",
                "insecure-skip-tls-verify",
            ),
            (
                "    certificate-authority-data: Zm9v",
                "    certificate-authority: /etc/ca.pem",
                "certificate-authority file path",
            ),
            (
                "    token: secret-token",
                "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}",
                "exec credential plugin",
            ),
            (
                "    token: secret-token",
                "    tokenFile: /var/run/token",
                "tokenFile file path",
            ),
            (
                "    token: secret-token",
                "    client-certificate: /c.pem\n    client-key: /k.pem",
                "client-certificate file path",
            ),
            (
                "    token: secret-token",
                "    auth-provider: {name: oidc}",
                "auth-provider",
            ),
            (
                "    server: https://127.0.0.1:6443",
                "    server: http://127.0.0.1:6443",
                "server is not https://",
            ),
            (
                "    server: https://127.0.0.1:6443",
                "    server: HTTP://127.0.0.1:6443",
                "server is not https://",
            ),
            (
                "    certificate-authority-data: Zm9v",
                "    certificate-authority-data: Zm9v\n    proxy-url: http://proxy.example:3128",
                "proxy-url",
            ),
        ];
        for (from, to, expected) in cases {
            let yaml = SAFE.replace(from, to);
            let err = check(&yaml).expect_err(expected);
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains("secret-token") && !err.contains("/bin/sh"),
                "{err}"
            );
        }
    }
}

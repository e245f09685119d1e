//! Issuing and keeping a tenant's data-path credentials (see `stacksmith_core::credentials`):
//! one Secret per stack on the hub, `stacksmith-tls-<stack uid>` in the credentials namespace
//! (the operator's own, where tenants have no access), holds the tenant CA with its key and the
//! current leaves. It is the evidence that survives restarts: the material is read from it once
//! per process and stack, reissued only when [`stacksmith_core::credentials::renewal`] says so,
//! and replaced under the resourceVersion it was read at, so two writers cannot both issue.
//!
//! No certificate or key is ever logged: errors name the Secret and the failed step only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Client, ResourceExt as _};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use stacksmith_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE, STACK_UID,
};
use stacksmith_core::credentials::{
    CA_LIFETIME_SECONDS, CredentialState, LEAF_LIFETIME_SECONDS, Renewal, TenantCredentials,
    renewal,
};
use stacksmith_core::plan::StackIdentity;

/// The default namespace of the credentials Secrets (the chart sets the release namespace).
pub const DEFAULT_CREDENTIALS_NAMESPACE: &str = "stacksmith-system";

/// What can go wrong while issuing or keeping credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A Secret of that name exists and is not this stack's.
    #[error(
        "the hub Secret {namespace}/{name} exists and is not this stack's credentials (its labels do not name the stack); stacksmith leaves it alone"
    )]
    Foreign {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Generating a key or certificate failed.
    #[error("issuing the tenant certificates failed: {0}")]
    Issue(#[from] rcgen::Error),
    /// A request to the hub failed.
    #[error("{step} the hub Secret {namespace}/{name}: {source}")]
    Hub {
        /// What was being done.
        step: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error (status and reason only; it carries no Secret data).
        #[source]
        source: kube::Error,
    },
}

/// Issues and keeps the credentials of the stacks whose plan wants mutual TLS.
pub struct CredentialIssuer {
    hub: Client,
    namespace: String,
    /// What was last read or written per stack uid, with the resourceVersion it has on the hub.
    known: Mutex<HashMap<String, (String, CredentialState)>>,
}

/// The hub Secret's name for a stack.
pub fn secret_name(stack_uid: &str) -> String {
    format!("stacksmith-tls-{stack_uid}")
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl CredentialIssuer {
    /// An issuer keeping its Secrets in `namespace` on the hub.
    pub fn new(hub: Client, namespace: String) -> Self {
        CredentialIssuer {
            hub,
            namespace,
            known: Mutex::default(),
        }
    }

    fn api(&self) -> Api<Secret> {
        Api::namespaced(self.hub.clone(), &self.namespace)
    }

    fn hub_error(
        &self,
        step: &'static str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> CredentialError {
        let namespace = self.namespace.clone();
        let name = name.to_owned();
        move |source| CredentialError::Hub {
            step,
            namespace,
            name,
            source,
        }
    }

    fn remembered(&self, uid: &str) -> Option<(String, CredentialState)> {
        self.known
            .lock()
            .map(|known| known.get(uid).cloned())
            .unwrap_or(None)
    }

    fn remember(&self, uid: &str, version: String, state: CredentialState) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(uid.to_owned(), (version, state));
        }
    }

    fn forget(&self, uid: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(uid);
        }
    }

    /// The stack's credentials for a serving certificate of `server_names`, issued or reissued
    /// when due (`rotation`: the stack's `stacksmith.io/rotate-credentials`).
    pub async fn ensure(
        &self,
        stack: &StackIdentity,
        customer: &str,
        server_names: &[String],
        rotation: &str,
    ) -> Result<TenantCredentials, CredentialError> {
        let name = secret_name(&stack.uid);
        let (version, state) = match self.remembered(&stack.uid) {
            Some((version, state)) => (Some(version), Some(state)),
            None => self.read(stack, &name).await?,
        };
        let renewal = renewal(state.as_ref(), server_names, rotation, now());
        let issued = match (renewal, &state) {
            (Renewal::Keep, Some(state)) => return Ok(state.credentials.clone()),
            (Renewal::Leaves(_), Some(state)) => {
                issue_leaves(state, customer, server_names, rotation)?
            }
            _ => issue_everything(customer, server_names, rotation)?,
        };
        let reason = match renewal {
            Renewal::Leaves(reason) | Renewal::Everything(reason) => reason.describe(),
            Renewal::Keep => "",
        };
        let written = match version {
            Some(version) => self.replace(stack, &name, &version, &issued).await,
            None => self.create(stack, &name, &issued).await,
        };
        match written {
            Ok(version) => {
                tracing::info!(
                    secret = %format!("{}/{name}", self.namespace),
                    serial = %issued.credentials.serial,
                    reason,
                    "issued data-path certificates"
                );
                let credentials = issued.credentials.clone();
                self.remember(&stack.uid, version, issued);
                Ok(credentials)
            }
            Err(err) => {
                // Someone else wrote it (or it went away): read it again next time.
                self.forget(&stack.uid);
                Err(err)
            }
        }
    }

    /// Reads the hub Secret: its resourceVersion and state, none when it does not exist, and
    /// no state (to be reissued over it) when it is ours but unreadable.
    async fn read(
        &self,
        stack: &StackIdentity,
        name: &str,
    ) -> Result<(Option<String>, Option<CredentialState>), CredentialError> {
        let Some(secret) = self
            .api()
            .get_opt(name)
            .await
            .map_err(self.hub_error("reading", name))?
        else {
            return Ok((None, None));
        };
        if secret.labels().get(STACK_UID).map(String::as_str) != Some(stack.uid.as_str())
            || secret.labels().get(MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE)
        {
            return Err(CredentialError::Foreign {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            });
        }
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let state = match CredentialState::from_secret_data(&data) {
            Ok(state) => Some(state),
            Err(unreadable) => {
                tracing::warn!(secret = %format!("{}/{name}", self.namespace), %unreadable, "reissuing unreadable credentials");
                None
            }
        };
        Ok((secret.metadata.resource_version, state))
    }

    fn secret(&self, stack: &StackIdentity, name: &str, state: &CredentialState) -> Secret {
        let labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (STACK_UID.to_owned(), stack.uid.clone()),
            (STACK_NAMESPACE.to_owned(), stack.namespace.clone()),
            (STACK_NAME.to_owned(), stack.name.clone()),
        ]);
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(
                state
                    .to_secret_data()
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v)))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    async fn create(
        &self,
        stack: &StackIdentity,
        name: &str,
        state: &CredentialState,
    ) -> Result<String, CredentialError> {
        let created = self
            .api()
            .create(&PostParams::default(), &self.secret(stack, name, state))
            .await
            .map_err(self.hub_error("creating", name))?;
        Ok(created.metadata.resource_version.unwrap_or_default())
    }

    async fn replace(
        &self,
        stack: &StackIdentity,
        name: &str,
        version: &str,
        state: &CredentialState,
    ) -> Result<String, CredentialError> {
        let mut secret = self.secret(stack, name, state);
        secret.metadata.resource_version = Some(version.to_owned());
        let replaced = self
            .api()
            .replace(name, &PostParams::default(), &secret)
            .await
            .map_err(self.hub_error("replacing", name))?;
        Ok(replaced.metadata.resource_version.unwrap_or_default())
    }

    /// Deletes the stack's hub Secret (the stack is gone), only while it is still the stack's.
    pub async fn delete(&self, stack: &StackIdentity) -> Result<(), CredentialError> {
        let name = secret_name(&stack.uid);
        self.forget(&stack.uid);
        let Some(secret) = self
            .api()
            .get_opt(&name)
            .await
            .map_err(self.hub_error("reading", &name))?
        else {
            return Ok(());
        };
        if secret.labels().get(STACK_UID).map(String::as_str) != Some(stack.uid.as_str()) {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api().delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(self.hub_error("deleting", &name)(err)),
        }
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "stacksmith");
    name.push(DnType::CommonName, common_name);
    name
}

/// The tenant CA's parameters: rebuilt the same from the customer id, so that a CA kept as a
/// certificate and a key can sign again (its subject and key identifier come out the same).
fn ca_params(customer: &str, not_after: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name = distinguished_name(&format!("stacksmith tenant CA {customer}"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = timestamp(not_after)?;
    Ok(params)
}

fn timestamp(unix: i64) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| rcgen::Error::Time)
}

/// A leaf certificate's parameters.
fn leaf_params(
    common_name: &str,
    names: &[String],
    usage: ExtendedKeyUsagePurpose,
    not_before: i64,
    not_after: i64,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = distinguished_name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = timestamp(not_before)?;
    params.not_after = timestamp(not_after)?;
    Ok(params)
}

/// A new tenant CA and leaves.
fn issue_everything(
    customer: &str,
    server_names: &[String],
    rotation: &str,
) -> Result<CredentialState, rcgen::Error> {
    let now = now();
    let ca_key = KeyPair::generate()?;
    let ca_not_after = now + CA_LIFETIME_SECONDS;
    let mut params = ca_params(customer, ca_not_after)?;
    // Valid from a minute ago: clocks of the member clusters may be a little behind.
    params.not_before = timestamp(now - 60)?;
    let ca_cert_pem = params.self_signed(&ca_key)?.pem();
    let ca = CaMaterial {
        cert_pem: ca_cert_pem,
        key_pem: ca_key.serialize_pem(),
        not_after: ca_not_after,
    };
    issue_from(&ca, customer, server_names, rotation, now)
}

/// New leaves from the state's CA.
fn issue_leaves(
    state: &CredentialState,
    customer: &str,
    server_names: &[String],
    rotation: &str,
) -> Result<CredentialState, rcgen::Error> {
    let ca = CaMaterial {
        cert_pem: state.credentials.ca_cert_pem.clone(),
        key_pem: state.ca_key_pem.clone(),
        not_after: state.ca_not_after,
    };
    issue_from(&ca, customer, server_names, rotation, now())
}

struct CaMaterial {
    cert_pem: String,
    key_pem: String,
    not_after: i64,
}

fn issue_from(
    ca: &CaMaterial,
    customer: &str,
    server_names: &[String],
    rotation: &str,
    now: i64,
) -> Result<CredentialState, rcgen::Error> {
    let issuer = Issuer::new(
        ca_params(customer, ca.not_after)?,
        KeyPair::from_pem(&ca.key_pem)?,
    );
    let leaves_not_after = (now + LEAF_LIFETIME_SECONDS).min(ca.not_after);
    let server_key = KeyPair::generate()?;
    let server_cert = leaf_params(
        &format!("prometheus {customer}"),
        server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
        now - 60,
        leaves_not_after,
    )?
    .signed_by(&server_key, &issuer)?;
    let client_key = KeyPair::generate()?;
    let client_cert = leaf_params(
        &format!("grafana datasource {customer}"),
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        now - 60,
        leaves_not_after,
    )?
    .signed_by(&client_key, &issuer)?;
    let server_cert_pem = server_cert.pem();
    let client_cert_pem = client_cert.pem();
    Ok(CredentialState {
        credentials: TenantCredentials {
            serial: TenantCredentials::serial_of(&ca.cert_pem, &server_cert_pem, &client_cert_pem),
            ca_cert_pem: ca.cert_pem.clone(),
            server_cert_pem,
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem,
            client_key_pem: client_key.serialize_pem(),
        },
        ca_key_pem: ca.key_pem.clone(),
        ca_not_after: ca.not_after,
        leaves_not_after,
        server_names: server_names.to_vec(),
        rotation: rotation.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["acme-prometheus.customer-acme.svc".to_owned()]
    }

    #[test]
    fn leaves_reissued_from_a_kept_ca_keep_the_ca() {
        let first = issue_everything("acme", &names(), "").unwrap();
        let second = issue_leaves(&first, "acme", &names(), "again").unwrap();
        assert_eq!(
            second.credentials.ca_cert_pem,
            first.credentials.ca_cert_pem
        );
        assert_ne!(
            second.credentials.client_cert_pem,
            first.credentials.client_cert_pem
        );
        assert_ne!(second.credentials.serial, first.credentials.serial);
        assert_eq!(second.rotation, "again");
        assert!(second.leaves_not_after <= second.ca_not_after);
    }

    #[test]
    fn two_tenants_get_two_cas() {
        let a = issue_everything("acme", &names(), "").unwrap();
        let b = issue_everything("globex", &names(), "").unwrap();
        assert_ne!(a.credentials.ca_cert_pem, b.credentials.ca_cert_pem);
    }
}

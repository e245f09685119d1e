//! The credentials of a tenant's data path (mutual TLS between its datasource and its
//! Prometheus, with a planned `prometheusExposure`): what they are, how they are kept on the
//! hub, and when they are reissued. Pure: the controller issues them (`credentials` there) and
//! stores them in one Secret per stack on the hub; this module decides.
//!
//! Per tenant there is one CA of its own, a serving certificate for the Prometheus (for the
//! names the plan gives) and a client certificate for the datasource, both signed by that CA.
//! The Prometheus accepts client certificates of its tenant's CA only, so another tenant's
//! certificate is refused.
//!
//! Rotation without a gap: the leaves are reissued from the same CA, which both sides keep
//! trusting, so the old and the new client certificate both work while the two member clusters
//! take the new material in turn. They are reissued a third of their lifetime before they
//! expire, when the server names change, and when the stack asks (the annotation
//! [`ROTATE_ANNOTATION`] set to a new value; one starting with [`ROTATE_CA_PREFIX`] reissues
//! the CA too, which is not gapless).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::plan::{client_keys, server_keys};

/// Set on a `CustomerStack` to any new value: its data-path certificates are reissued.
pub const ROTATE_ANNOTATION: &str = "stacksmith.io/rotate-credentials";

/// A new value of [`ROTATE_ANNOTATION`] that starts with this reissues the tenant CA too (a CA
/// key that may have leaked); any other new value reissues the leaves only.
pub const ROTATE_CA_PREFIX: &str = "ca-";

/// How long a serving or client certificate is valid.
pub const LEAF_LIFETIME_SECONDS: i64 = 90 * 24 * 3600;
/// How long a tenant CA is valid.
pub const CA_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// Issued material of one tenant. Its `Debug` shows no certificate or key.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantCredentials {
    /// Identifies this issue of the material (a digest of the certificates, not secret).
    pub serial: String,
    /// The tenant CA's certificate (PEM).
    pub ca_cert_pem: String,
    /// The Prometheus' serving certificate (PEM).
    pub server_cert_pem: String,
    /// Its key (PEM).
    pub server_key_pem: String,
    /// The datasource's client certificate (PEM).
    pub client_cert_pem: String,
    /// Its key (PEM).
    pub client_key_pem: String,
}

impl fmt::Debug for TenantCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCredentials")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

fn b64(text: &str) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(text))
}

impl TenantCredentials {
    /// The digest that names an issue: over the certificates (public), never the keys.
    pub fn serial_of(ca_cert_pem: &str, server_cert_pem: &str, client_cert_pem: &str) -> String {
        let mut digest = Sha256::new();
        for pem in [ca_cert_pem, server_cert_pem, client_cert_pem] {
            digest.update(pem.as_bytes());
            digest.update([0]);
        }
        digest
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The `data` of the Prometheus' Secret (base64, as the API server stores it).
    pub fn prometheus_secret_data(&self) -> Value {
        json!({
            server_keys::CERT: b64(&self.server_cert_pem),
            server_keys::KEY: b64(&self.server_key_pem),
            server_keys::CLIENT_CA: b64(&self.ca_cert_pem),
        })
    }

    /// The `data` of the datasource's Secret.
    pub fn datasource_secret_data(&self) -> Value {
        json!({
            client_keys::CA: b64(&self.ca_cert_pem),
            client_keys::CERT: b64(&self.client_cert_pem),
            client_keys::KEY: b64(&self.client_key_pem),
        })
    }
}

/// What the hub keeps per stack: the material, the CA's key, and what it was issued for.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialState {
    /// The material the members receive.
    pub credentials: TenantCredentials,
    /// The tenant CA's key (PEM); never leaves the hub.
    pub ca_key_pem: String,
    /// When the CA expires (Unix seconds).
    pub ca_not_after: i64,
    /// When the leaves expire (Unix seconds).
    pub leaves_not_after: i64,
    /// The names the serving certificate is for.
    pub server_names: Vec<String>,
    /// The stack's [`ROTATE_ANNOTATION`] when the leaves were issued.
    pub rotation: String,
}

impl fmt::Debug for CredentialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialState")
            .field("credentials", &self.credentials)
            .field("ca_not_after", &self.ca_not_after)
            .field("leaves_not_after", &self.leaves_not_after)
            .field("server_names", &self.server_names)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

/// The keys of the hub Secret.
mod state_keys {
    pub const CA_CERT: &str = "ca.crt";
    pub const CA_KEY: &str = "ca.key";
    pub const SERVER_CERT: &str = "server.crt";
    pub const SERVER_KEY: &str = "server.key";
    pub const CLIENT_CERT: &str = "client.crt";
    pub const CLIENT_KEY: &str = "client.key";
    pub const CA_NOT_AFTER: &str = "ca-not-after";
    pub const LEAVES_NOT_AFTER: &str = "leaves-not-after";
    pub const SERVER_NAMES: &str = "server-names";
    pub const ROTATION: &str = "rotation";
}

/// Why a hub Secret cannot be read as credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the credentials Secret has no usable {0:?}")]
pub struct UnreadableState(pub &'static str);

impl CredentialState {
    /// The hub Secret's `data` (raw bytes per key).
    pub fn to_secret_data(&self) -> BTreeMap<String, Vec<u8>> {
        let c = &self.credentials;
        [
            (state_keys::CA_CERT, c.ca_cert_pem.clone()),
            (state_keys::CA_KEY, self.ca_key_pem.clone()),
            (state_keys::SERVER_CERT, c.server_cert_pem.clone()),
            (state_keys::SERVER_KEY, c.server_key_pem.clone()),
            (state_keys::CLIENT_CERT, c.client_cert_pem.clone()),
            (state_keys::CLIENT_KEY, c.client_key_pem.clone()),
            (state_keys::CA_NOT_AFTER, self.ca_not_after.to_string()),
            (
                state_keys::LEAVES_NOT_AFTER,
                self.leaves_not_after.to_string(),
            ),
            (state_keys::SERVER_NAMES, self.server_names.join("\n")),
            (state_keys::ROTATION, self.rotation.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect()
    }

    /// Reads a hub Secret's `data`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, UnreadableState> {
        let text = |key: &'static str| {
            data.get(key)
                .and_then(|bytes| String::from_utf8(bytes.clone()).ok())
                .ok_or(UnreadableState(key))
        };
        let pem = |key: &'static str| {
            text(key).and_then(|t| {
                if t.contains("-----BEGIN") {
                    Ok(t)
                } else {
                    Err(UnreadableState(key))
                }
            })
        };
        let number = |key: &'static str| {
            text(key).and_then(|t| t.trim().parse::<i64>().map_err(|_| UnreadableState(key)))
        };
        let ca_cert_pem = pem(state_keys::CA_CERT)?;
        let server_cert_pem = pem(state_keys::SERVER_CERT)?;
        let client_cert_pem = pem(state_keys::CLIENT_CERT)?;
        Ok(CredentialState {
            credentials: TenantCredentials {
                serial: TenantCredentials::serial_of(
                    &ca_cert_pem,
                    &server_cert_pem,
                    &client_cert_pem,
                ),
                ca_cert_pem,
                server_cert_pem,
                server_key_pem: pem(state_keys::SERVER_KEY)?,
                client_cert_pem,
                client_key_pem: pem(state_keys::CLIENT_KEY)?,
            },
            ca_key_pem: pem(state_keys::CA_KEY)?,
            ca_not_after: number(state_keys::CA_NOT_AFTER)?,
            leaves_not_after: number(state_keys::LEAVES_NOT_AFTER)?,
            server_names: text(state_keys::SERVER_NAMES)?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            rotation: text(state_keys::ROTATION).unwrap_or_default(),
        })
    }
}

/// What to issue, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The material is good.
    Keep,
    /// New leaves from the same CA.
    Leaves(RenewalReason),
    /// A new CA and leaves.
    Everything(RenewalReason),
}

/// Why material is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalReason {
    /// There is none yet (or the hub Secret could not be read).
    Missing,
    /// The leaves are in the last third of their lifetime.
    LeavesExpiring,
    /// The CA is in the last third of its lifetime.
    CaExpiring,
    /// The serving certificate is for other names than the plan's.
    ServerNamesChanged,
    /// The stack's rotation annotation changed.
    Requested,
}

impl RenewalReason {
    /// A short text for logs and Events.
    pub fn describe(self) -> &'static str {
        match self {
            RenewalReason::Missing => "none issued yet",
            RenewalReason::LeavesExpiring => {
                "the certificates expire within a third of their lifetime"
            }
            RenewalReason::CaExpiring => "the tenant CA expires within a third of its lifetime",
            RenewalReason::ServerNamesChanged => "the Prometheus is reached under other names",
            RenewalReason::Requested => "the stack asked for it (stacksmith.io/rotate-credentials)",
        }
    }
}

/// Decides what to issue for a stack whose plan wants a serving certificate for
/// `server_names`, with its rotation annotation `rotation`, at `now` (Unix seconds).
pub fn renewal(
    state: Option<&CredentialState>,
    server_names: &[String],
    rotation: &str,
    now: i64,
) -> Renewal {
    let Some(state) = state else {
        return Renewal::Everything(RenewalReason::Missing);
    };
    if state.ca_not_after - now < CA_LIFETIME_SECONDS / 3 {
        return Renewal::Everything(RenewalReason::CaExpiring);
    }
    if state.server_names != server_names {
        return Renewal::Leaves(RenewalReason::ServerNamesChanged);
    }
    if state.rotation != rotation {
        return if rotation.starts_with(ROTATE_CA_PREFIX) {
            Renewal::Everything(RenewalReason::Requested)
        } else {
            Renewal::Leaves(RenewalReason::Requested)
        };
    }
    if state.leaves_not_after - now < LEAF_LIFETIME_SECONDS / 3 {
        return Renewal::Leaves(RenewalReason::LeavesExpiring);
    }
    Renewal::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn state() -> CredentialState {
        let credentials = TenantCredentials {
            serial: TenantCredentials::serial_of("-----BEGIN CA", "-----BEGIN S", "-----BEGIN C"),
            ca_cert_pem: "-----BEGIN CA".into(),
            server_cert_pem: "-----BEGIN S".into(),
            server_key_pem: "-----BEGIN SK".into(),
            client_cert_pem: "-----BEGIN C".into(),
            client_key_pem: "-----BEGIN CK".into(),
        };
        CredentialState {
            credentials,
            ca_key_pem: "-----BEGIN CAK".into(),
            ca_not_after: NOW + CA_LIFETIME_SECONDS,
            leaves_not_after: NOW + LEAF_LIFETIME_SECONDS,
            server_names: vec!["acme-prometheus.customer-acme.svc".into()],
            rotation: String::new(),
        }
    }

    fn names() -> Vec<String> {
        vec!["acme-prometheus.customer-acme.svc".into()]
    }

    #[test]
    fn fresh_material_is_kept() {
        assert_eq!(renewal(Some(&state()), &names(), "", NOW), Renewal::Keep);
    }

    #[test]
    fn nothing_issued_issues_everything() {
        assert_eq!(
            renewal(None, &names(), "", NOW),
            Renewal::Everything(RenewalReason::Missing)
        );
    }

    #[test]
    fn leaves_are_renewed_a_third_of_their_lifetime_before_expiry() {
        let s = state();
        let two_thirds = s.leaves_not_after - LEAF_LIFETIME_SECONDS / 3;
        assert_eq!(
            renewal(Some(&s), &names(), "", two_thirds - 1),
            Renewal::Keep
        );
        assert_eq!(
            renewal(Some(&s), &names(), "", two_thirds + 1),
            Renewal::Leaves(RenewalReason::LeavesExpiring)
        );
    }

    #[test]
    fn an_expiring_ca_renews_everything() {
        let s = state();
        let late = s.ca_not_after - CA_LIFETIME_SECONDS / 3 + 1;
        assert_eq!(
            renewal(Some(&s), &names(), "", late),
            Renewal::Everything(RenewalReason::CaExpiring)
        );
    }

    #[test]
    fn other_names_or_a_new_rotation_value_renew_the_leaves() {
        let s = state();
        assert_eq!(
            renewal(Some(&s), &["other.example".to_owned()], "", NOW),
            Renewal::Leaves(RenewalReason::ServerNamesChanged)
        );
        assert_eq!(
            renewal(Some(&s), &names(), "2026-12-02", NOW),
            Renewal::Leaves(RenewalReason::Requested)
        );
        assert_eq!(
            renewal(Some(&s), &names(), "ca-2026-12-02", NOW),
            Renewal::Everything(RenewalReason::Requested)
        );
    }

    #[test]
    fn the_hub_secret_round_trips_and_a_broken_one_says_what_is_missing() {
        let s = state();
        let data = s.to_secret_data();
        assert_eq!(CredentialState::from_secret_data(&data).unwrap(), s);
        let mut broken = data.clone();
        broken.remove("ca.key");
        assert_eq!(
            CredentialState::from_secret_data(&broken),
            Err(UnreadableState("ca.key"))
        );
        let mut garbled = data;
        garbled.insert("leaves-not-after".into(), b"soon".to_vec());
        assert_eq!(
            CredentialState::from_secret_data(&garbled),
            Err(UnreadableState("leaves-not-after"))
        );
    }

    #[test]
    fn debug_output_shows_no_material() {
        let text = format!("{:?}", state());
        assert!(!text.contains("-----BEGIN"), "{text}");
        assert!(text.contains("serial"));
    }

    #[test]
    fn member_secrets_carry_the_keys_the_operators_read() {
        let c = state().credentials;
        let server = c.prometheus_secret_data();
        assert_eq!(
            server.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["ca.crt", "tls.crt", "tls.key"]
        );
        let client = c.datasource_secret_data();
        assert_eq!(
            client.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["TLS_CA_CERT", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY"]
        );
        assert_eq!(client["TLS_CLIENT_CERT"], "LS0tLS1CRUdJTiBD");
    }
}

//! What every planned object is called and carries: deterministic names, the labels that lead
//! back to the stack, the planned-hash annotation, and the builder that assembles a manifest
//! (`Placement::object`, private to planning).

use std::collections::BTreeMap;
use std::io;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use stacksmith_api::labels::{
    CUSTOMER, MANAGED_BY, MANAGED_BY_VALUE, PLANNED_HASH, STACK_NAME, STACK_NAMESPACE, STACK_UID,
    WRITTEN_THROUGH,
};

use super::{DesiredObject, ObjectKind, StackIdentity};

/// The tenant namespace (on the Prometheus cluster, and the default on the Grafana cluster).
pub fn tenant_namespace(customer: &str) -> String {
    format!("customer-{customer}")
}
/// The `ResourceQuota` and the `LimitRange` of a tenant namespace (from the `MemberCluster`'s
/// `spec.tenantQuota`): one of each per namespace, whatever the customer.
pub const TENANT_QUOTA: &str = "stacksmith-tenant";
/// The `Prometheus` object.
pub fn prometheus(customer: &str) -> String {
    customer.to_owned()
}
/// The ServiceAccount, Role and RoleBinding of the Prometheus.
pub fn prometheus_identity(customer: &str) -> String {
    format!("prometheus-{customer}")
}
/// The RoleBinding, in each namespace a scrape target lists, of the fixed ClusterRole
/// [`stacksmith_api::rbac::PROMETHEUS_DISCOVERY_CLUSTER_ROLE`] to the Prometheus' ServiceAccount.
/// Prefixed, since it lives in someone else's namespace.
pub fn prometheus_discovery_binding(customer: &str) -> String {
    format!("stacksmith-{}", prometheus_identity(customer))
}
/// A `PrometheusRule` for an alerting-rule group.
pub fn rule(customer: &str, group: &str) -> String {
    format!("{customer}-{group}")
}
/// The `AlertmanagerConfig` holding the customer's receivers and routes.
pub fn alertmanager_config(customer: &str) -> String {
    format!("{customer}-alerts")
}
/// A `ServiceMonitor` for a scrape target.
pub fn service_monitor(customer: &str, target: &str) -> String {
    format!("{customer}-{target}")
}
/// The dedicated `Grafana` instance (`spec.dashboards.dedicatedGrafana`), named like the
/// `Prometheus`. grafana-operator names what it creates for it after it: the Service
/// [`grafana_service`], the admin-credentials Secret `<name>-admin-credentials`, the Deployment
/// `<name>-deployment`, the Ingress `<name>-ingress`.
pub fn grafana(customer: &str) -> String {
    customer.to_owned()
}
/// The Service grafana-operator v5 creates for a `Grafana` it runs: `<name>-service` (port 3000
/// unless the instance's `grafana.ini` says otherwise).
pub fn grafana_service(grafana: &str) -> String {
    format!("{grafana}-service")
}
/// The `GrafanaFolder`.
pub fn folder(customer: &str) -> String {
    customer.to_owned()
}
/// The `GrafanaDatasource`.
pub fn datasource(customer: &str) -> String {
    format!("{customer}-prometheus")
}
/// The Service through which Grafana reaches a tenant's Prometheus (with a planned exposure).
pub fn prometheus_service(customer: &str) -> String {
    format!("{customer}-prometheus")
}

/// The NetworkPolicy guarding a tenant's Prometheus.
pub fn prometheus_network_policy(customer: &str) -> String {
    format!("{customer}-prometheus")
}

/// The Secret with a tenant Prometheus' serving certificate and client CA.
pub fn prometheus_tls_secret(customer: &str) -> String {
    format!("{customer}-prometheus-tls")
}

/// The Secret with a tenant datasource's client certificate.
pub fn datasource_tls_secret(customer: &str) -> String {
    format!("{customer}-datasource-tls")
}

/// A `GrafanaDashboard`.
pub fn dashboard(customer: &str, dashboard: &str) -> String {
    format!("{customer}-{dashboard}")
}

/// The longest uid Grafana (and grafana-operator's `spec.uid`) takes.
pub const GRAFANA_UID_MAX_LENGTH: usize = 40;

/// The Grafana uid of a `GrafanaDashboard`, its `spec.uid` (which overrides a uid in the model):
/// `<customer>_<dashboard>`, the tenant's own since neither part can hold a `_`. When that is
/// longer than [`GRAFANA_UID_MAX_LENGTH`]: its first 22 characters, `__`, and 16 hex digits of
/// the SHA-256 of `<customer>/<dashboard>` (the short form never holds `__`, so the two forms
/// never meet). It never changes for a dashboard: the customer is immutable, and the
/// dashboard's name names its object.
pub fn dashboard_uid(customer: &str, dashboard: &str) -> String {
    let readable = format!("{customer}_{dashboard}");
    if readable.len() <= GRAFANA_UID_MAX_LENGTH {
        return readable;
    }
    let digest = Sha256::digest(format!("{customer}/{dashboard}").as_bytes());
    let hash: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let prefix: String = readable.chars().take(22).collect();
    format!("{prefix}__{hash}")
}

/// The labels every planned object carries (each also names the `MemberCluster` it is written
/// through, [`WRITTEN_THROUGH`], added by the object builder).
pub fn ownership_labels(stack: &StackIdentity, customer: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (STACK_NAMESPACE.to_owned(), stack.namespace.clone()),
        (STACK_NAME.to_owned(), stack.name.clone()),
        (STACK_UID.to_owned(), stack.uid.clone()),
        (CUSTOMER.to_owned(), customer.to_owned()),
    ])
}

/// Where a group of planned objects goes: one member cluster, one namespace, the stack's labels.
pub(super) struct Placement<'a> {
    /// The member cluster.
    pub cluster: &'a str,
    /// The namespace of the namespaced objects (and the name of the tenant Namespace).
    pub namespace: &'a str,
    /// [`ownership_labels`].
    pub labels: &'a BTreeMap<String, String>,
}

impl Placement<'_> {
    /// A planned object: `apiVersion`, `kind`, `metadata` (name, the namespace when the kind is
    /// namespaced, labels), then the top-level fields of `body`. Its planned hash is stamped
    /// later, by [`stamp_planned_hash`].
    pub(super) fn object(&self, kind: ObjectKind, name: &str, body: Value) -> DesiredObject {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(name));
        if kind.namespaced() {
            metadata.insert("namespace".into(), json!(self.namespace));
        }
        let mut labels = self.labels.clone();
        labels.insert(WRITTEN_THROUGH.to_owned(), self.cluster.to_owned());
        metadata.insert("labels".into(), json!(labels));
        let mut manifest = Map::new();
        manifest.insert("apiVersion".into(), json!(kind.api_version()));
        manifest.insert("kind".into(), json!(kind.kind()));
        manifest.insert("metadata".into(), Value::Object(metadata));
        if let Value::Object(body) = body {
            manifest.extend(body);
        }
        DesiredObject {
            cluster: self.cluster.to_owned(),
            kind,
            namespace: if kind.namespaced() {
                self.namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
            manifest: Value::Object(manifest),
        }
    }
}

/// Annotates an object with [`PLANNED_HASH`]: the hash of the manifest as planned, without
/// annotations. Fails only if the manifest cannot be written as JSON.
pub(super) fn stamp_planned_hash(object: &mut DesiredObject) -> Result<(), serde_json::Error> {
    let Value::Object(manifest) = &mut object.manifest else {
        return Ok(());
    };
    let hash = planned_hash(manifest)?;
    if let Some(Value::Object(metadata)) = manifest.get_mut("metadata") {
        match metadata.get_mut("annotations") {
            // A planned object's own annotations (a Service's) are part of what is hashed.
            Some(Value::Object(annotations)) => {
                annotations.insert(PLANNED_HASH.into(), json!(hash));
            }
            _ => {
                metadata.insert("annotations".into(), json!({ PLANNED_HASH: hash }));
            }
        }
    }
    Ok(())
}

/// Puts `data` (a Secret's) into a planned object whose hash was stamped without it, and stamps
/// the hash again over the object with `serial` in place of the data: the hash moves when the
/// material is reissued, and says nothing about it.
pub(super) fn stamp_planned_hash_with(object: &mut DesiredObject, data: Value, serial: &str) {
    let Value::Object(manifest) = &mut object.manifest else {
        return;
    };
    if let Some(Value::Object(metadata)) = manifest.get_mut("metadata")
        && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
    {
        annotations.remove(PLANNED_HASH);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    manifest.insert("data".into(), json!({ "serial": serial }));
    // serde_json cannot fail on a JSON value; should it ever, the object keeps no hash and is
    // written as drifted.
    let _ = stamp_planned_hash(object);
    if let Value::Object(manifest) = &mut object.manifest {
        manifest.insert("data".into(), data);
    }
}

/// A stable hash of a planned object (FNV-1a, 64 bits, over its compact JSON), as 16 hex
/// digits: the same plan gives the same hash in every build and on every machine. The hash is
/// stored in live objects, so its input bytes must never change.
fn planned_hash(manifest: &Map<String, Value>) -> Result<String, serde_json::Error> {
    let mut hasher = Fnv1a64::new();
    serde_json::to_writer(&mut hasher, manifest)?;
    Ok(format!("{:016x}", hasher.finish()))
}

/// FNV-1a, 64 bits, fed the bytes serde_json writes.
struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl io::Write for Fnv1a64 {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::plan_stack;
    use super::*;

    /// FNV-1a 64 over a whole string, as the hash was first computed.
    fn fnv1a64_of(text: &str) -> String {
        let hash = text.bytes().fold(Fnv1a64::OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(Fnv1a64::PRIME)
        });
        format!("{hash:016x}")
    }

    #[test]
    fn every_object_carries_the_hash_of_its_plan_and_it_moves_with_the_plan() {
        let mut manifest = Map::new();
        manifest.insert("kind".into(), json!("Prometheus"));
        manifest.insert("spec".into(), json!({"replicas": 2}));
        // Stable across builds and machines: a fixed value for a fixed input.
        assert_eq!(
            planned_hash(&manifest).unwrap(),
            planned_hash(&manifest.clone()).unwrap()
        );
        assert_eq!(planned_hash(&Map::new()).unwrap(), "08f44b07b5901a25"); // FNV-1a 64 of "{}"
        let before = planned_hash(&manifest).unwrap();
        manifest.insert("spec".into(), json!({}));
        assert_ne!(
            planned_hash(&manifest).unwrap(),
            before,
            "a removed field changes the hash"
        );
    }

    #[test]
    fn the_planned_hash_is_that_of_the_compact_json_without_annotations() {
        let plan = plan_stack(&spec(FULL), &identity(), &members()).unwrap();
        for object in plan.objects {
            let Value::Object(mut manifest) = object.manifest else {
                panic!("{} is not a JSON object", object.name);
            };
            let Some(Value::Object(metadata)) = manifest.get_mut("metadata") else {
                panic!("{} has no metadata", object.name);
            };
            let stamped = metadata.remove("annotations").unwrap();
            let text = serde_json::to_string(&manifest).unwrap();
            assert_eq!(stamped[PLANNED_HASH], fnv1a64_of(&text), "{}", object.name);
        }
    }

    #[test]
    fn a_dashboard_uid_is_the_tenants_own_stable_and_short_enough() {
        assert_eq!(dashboard_uid("acme", "overview"), "acme_overview");
        // Customers `a-b` and `a` with dashboards `c` and `b-c` share an object name, never a uid.
        assert_ne!(dashboard_uid("a-b", "c"), dashboard_uid("a", "b-c"));
        let customer = "a".repeat(40);
        let long = dashboard_uid(&customer, &"d".repeat(63));
        assert_eq!(long.len(), GRAFANA_UID_MAX_LENGTH);
        assert!(long.starts_with(&format!("{}__", "a".repeat(22))), "{long}");
        // Stable: a fixed value for a fixed input (it is stored in Grafana and immutable).
        assert_eq!(long, dashboard_uid(&customer, &"d".repeat(63)));
        assert_eq!(
            dashboard_uid("acme-corporation-europe-west", "kubernetes-overview"),
            "acme-corporation-europ__f9d6fd3ae91998af"
        );
        assert_ne!(long, dashboard_uid(&customer, &"d".repeat(62)));
        let pattern = regex_like_grafana_uid;
        for uid in [dashboard_uid("acme", "overview"), long] {
            assert!(pattern(&uid), "{uid}");
        }
        // At exactly 40 characters the readable form is kept.
        let at_limit = dashboard_uid(&"c".repeat(20), &"d".repeat(19));
        assert_eq!(at_limit.len(), 40);
        assert!(!at_limit.contains("__"));
    }

    /// grafana-operator's `spec.uid` pattern, `^[a-zA-Z0-9-_]+$`, and its length.
    fn regex_like_grafana_uid(uid: &str) -> bool {
        !uid.is_empty()
            && uid.len() <= GRAFANA_UID_MAX_LENGTH
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn a_cluster_scoped_object_has_no_namespace() {
        let labels = BTreeMap::new();
        let place = Placement {
            cluster: "c",
            namespace: "customer-x",
            labels: &labels,
        };
        let namespace = place.object(ObjectKind::Namespace, "customer-x", json!({}));
        assert_eq!(namespace.namespace, "");
        assert!(namespace.manifest["metadata"].get("namespace").is_none());
        let account = place.object(ObjectKind::ServiceAccount, "sa", json!({}));
        assert_eq!(account.namespace, "customer-x");
        assert_eq!(account.manifest["metadata"]["namespace"], "customer-x");
    }
}

//! Writing planned objects into a member cluster: server-side apply when an object is missing
//! or drifted, nothing when the watch cache already shows it as planned, never over an object
//! another owner holds. Deleting what a stack no longer plans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use stacksmith_api::labels::PLANNED_HASH;
use stacksmith_core::observe::{Ownership, WriteOutcome, immutable_change};
use stacksmith_core::plan::{DesiredObject, ObjectKind};

use crate::FIELD_MANAGER;
use crate::member::MemberConnection;
use crate::member::cached_object::CachedObject;
use crate::remote::{RemoteError, api_resource, call, object_api};

/// Whether `object` belongs to the stack with uid `stack_uid` (from its labels).
pub fn ownership(object: &impl kube::Resource, stack_uid: &str) -> Ownership {
    stacksmith_core::observe::ownership(object.labels(), stack_uid)
}

/// The cached object of a planned object, if any.
pub fn cached(
    connection: &MemberConnection,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> Option<Arc<CachedObject>> {
    let store = connection.store(kind)?;
    let mut reference = ObjectRef::new_with(name, api_resource(kind));
    if kind.namespaced() {
        reference = reference.within(namespace);
    }
    store.get(&reference)
}

/// How long a write is trusted while the watch cache does not show it yet.
pub const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// The objects written in the last [`CACHE_CATCH_UP`], with the plan hash written.
///
/// A stack is often reconciled again before the watches have delivered all of its own writes
/// (the first objects' events wake it while the last are still on their way); without this
/// memory such a pass would write those objects a second time.
#[derive(Debug, Default)]
pub struct RecentWrites {
    written: Mutex<HashMap<WriteKey, (String, Instant)>>,
}

/// Cluster, kind, namespace and name of a written object.
type WriteKey = (String, ObjectKind, String, String);

impl RecentWrites {
    fn key(desired: &DesiredObject) -> WriteKey {
        (
            desired.cluster.clone(),
            desired.kind,
            desired.namespace.clone(),
            desired.name.clone(),
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<WriteKey, (String, Instant)>) -> T) -> T {
        f(&mut crate::locks::lock(&self.written))
    }

    /// How much longer the cache is given to show the write of exactly this plan, if it was
    /// written recently.
    fn awaiting(&self, desired: &DesiredObject) -> Option<Duration> {
        let hash = planned_hash(desired)?;
        self.with(|written| {
            let now = Instant::now();
            written.retain(|_, (_, at)| now.duration_since(*at) < CACHE_CATCH_UP);
            written
                .get(&Self::key(desired))
                .filter(|(written_hash, _)| *written_hash == hash)
                .map(|(_, at)| CACHE_CATCH_UP.saturating_sub(now.duration_since(*at)))
        })
    }

    fn record(&self, desired: &DesiredObject) {
        if let Some(hash) = planned_hash(desired) {
            self.with(|written| {
                let now = Instant::now();
                written.retain(|_, (_, at)| now.duration_since(*at) < CACHE_CATCH_UP);
                written.insert(Self::key(desired), (hash, now))
            });
        }
    }

    fn forget(&self, desired: &DesiredObject) {
        self.with(|written| written.remove(&Self::key(desired)));
    }
}

fn planned_hash(desired: &DesiredObject) -> Option<String> {
    desired
        .manifest
        .pointer(&format!(
            "/metadata/annotations/{}",
            PLANNED_HASH.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Brings one object to its planned state.
pub async fn apply_object(
    connection: &MemberConnection,
    desired: &DesiredObject,
    stack_uid: &str,
    recent: &RecentWrites,
) -> WriteOutcome {
    let existing = cached(connection, desired.kind, &desired.namespace, &desired.name);
    let created = match &existing {
        None => true,
        Some(existing) => match ownership(existing.as_ref(), stack_uid) {
            Ownership::Foreign(owner) => return WriteOutcome::Conflict { owner },
            Ownership::Ours => {
                let live = existing.to_value();
                if is_as_planned(&live, &desired.manifest) {
                    recent.forget(desired);
                    return WriteOutcome::Unchanged(Box::new(live));
                }
                if let Some(field) = immutable_change(desired.kind, &live, &desired.manifest) {
                    return replace(connection, desired, existing, field).await;
                }
                false
            }
        },
    };
    if let Some(left) = recent.awaiting(desired) {
        return WriteOutcome::AwaitingCache { left };
    }
    let api = object_api(&connection.client, desired.kind, &desired.namespace);
    tracing::debug!(
        cluster = %connection.name,
        kind = desired.kind.kind(),
        namespace = %desired.namespace,
        name = %desired.name,
        why = if created { "not in the cache" } else { "differs from the plan" },
        "applying"
    );
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&desired.manifest);
    match call(
        connection.timeout,
        api.patch(&desired.name, &params, &patch),
    )
    .await
    {
        Ok(_) => {
            recent.record(desired);
            if created {
                WriteOutcome::Created
            } else {
                WriteOutcome::Updated
            }
        }
        Err(err) => WriteOutcome::Failed {
            message: err.to_string(),
        },
    }
}

/// Deletes an object of ours whose immutable `field` the plan changed, so the next pass creates
/// it from the plan (the API server would refuse the write); nothing while it is going away.
async fn replace(
    connection: &MemberConnection,
    desired: &DesiredObject,
    existing: &CachedObject,
    field: &'static str,
) -> WriteOutcome {
    if existing.metadata.deletion_timestamp.is_some() {
        return WriteOutcome::Replacing {
            field,
            deleted_now: false,
        };
    }
    let object = OwnedObject {
        kind: desired.kind,
        namespace: desired.namespace.clone(),
        name: desired.name.clone(),
        deleting: false,
    };
    tracing::info!(cluster = %connection.name, kind = desired.kind.kind(), namespace = %desired.namespace, name = %desired.name, field, "re-creating: an immutable field changed");
    match delete_object(connection, &object).await {
        Ok(()) => WriteOutcome::Replacing {
            field,
            deleted_now: true,
        },
        Err(err) => WriteOutcome::Failed {
            message: format!("deleting it to change {field}: {err}"),
        },
    }
}

/// Whether a cached object is as planned: every planned field has its planned value, apart from
/// `apiVersion` and `kind` (the cache is per kind already, and objects that came from a LIST of
/// a built-in kind carry neither: comparing them would re-apply every Namespace, ServiceAccount,
/// Role and RoleBinding after each restart and call it drift).
pub fn is_as_planned(live: &Value, desired: &Value) -> bool {
    match desired {
        Value::Object(fields) => fields
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "apiVersion" | "kind"))
            .all(|(key, value)| live.get(key).is_some_and(|l| contains(l, value))),
        other => contains(live, other),
    }
}

/// Whether `live` holds every field of `desired` with the same value (the API server may add
/// defaults and other managers' fields; those are not drift).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(k, v)| live.get(k).is_some_and(|l| contains(l, v))),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

/// A stack's object found in a member cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether its deletion has started.
    pub deleting: bool,
}

/// Every object of the stack with uid `stack_uid` in a member's caches, children first and the
/// namespaces last (the order to delete them in).
pub fn owned_objects(connection: &MemberConnection, stack_uid: &str) -> Vec<OwnedObject> {
    let mut found = Vec::new();
    for (kind, namespace, name) in connection.labelled_for(stack_uid) {
        let Some(store) = connection.store(kind) else {
            continue;
        };
        let mut reference = ObjectRef::new_with(&name, api_resource(kind));
        if kind.namespaced() {
            reference = reference.within(&namespace);
        }
        if let Some(object) = store.get(&reference)
            && ownership(object.as_ref(), stack_uid) == Ownership::Ours
        {
            found.push(OwnedObject {
                kind,
                namespace,
                name,
                deleting: object.metadata.deletion_timestamp.is_some(),
            });
        }
    }
    found.sort_by(|a, b| {
        b.kind
            .cmp(&a.kind)
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
    });
    found
}

/// Deletes one object; `Ok` when it is gone or going.
pub async fn delete_object(
    connection: &MemberConnection,
    object: &OwnedObject,
) -> Result<(), RemoteError> {
    let api = object_api(&connection.client, object.kind, &object.namespace);
    match call(
        connection.timeout,
        api.delete(&object.name, &DeleteParams::background()),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_foreign_fields_are_not_drift() {
        let live = json!({"spec": {"replicas": 2, "scrapeInterval": "30s", "x": [1, {"a": 1, "b": 2}]}, "status": {}});
        assert!(contains(
            &live,
            &json!({"spec": {"replicas": 2, "x": [1, {"a": 1}]}})
        ));
        assert!(!contains(&live, &json!({"spec": {"replicas": 3}})));
        assert!(!contains(&live, &json!({"spec": {"x": [1]}})));
        assert!(!contains(&live, &json!({"spec": {"missing": true}})));
    }

    #[test]
    fn an_object_listed_without_api_version_and_kind_is_still_as_planned() {
        // Items of a LIST of a built-in kind come without apiVersion and kind.
        let listed = json!({"metadata": {"name": "customer-acme", "labels": {"a": "b"}},
            "spec": {"finalizers": ["kubernetes"]}});
        let planned = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "customer-acme", "labels": {"a": "b"}}});
        assert!(is_as_planned(&listed, &planned));
        assert!(
            !contains(&listed, &planned),
            "the plain subset check would call it drift"
        );
        let relabelled = json!({"metadata": {"name": "customer-acme", "labels": {"a": "c"}}});
        assert!(!is_as_planned(&relabelled, &planned));
        assert!(contains(&json!({"n": 2.0}), &json!({"n": 2})));
    }
}

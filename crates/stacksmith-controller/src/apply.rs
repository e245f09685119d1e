//! Writing planned objects into a member cluster: server-side apply when an object is missing
//! or drifted, nothing when the watch cache already shows it as planned, never over an object
//! another owner holds. Deleting an inventoried object, only while its uid still matches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use stacksmith_api::labels::PLANNED_HASH;
use stacksmith_core::inventory::{InventoriedObject, ObjectKey};
use stacksmith_core::observe::{AdoptFrom, Ownership, WriteOutcome, adoptable, immutable_change};
use stacksmith_core::plan::{DesiredObject, ObjectKind};

use crate::FIELD_MANAGER;
use crate::member::MemberConnection;
use crate::member::cached_object::CachedObject;
use crate::member::connection::cache_holds_only_ours;
use crate::remote::{RemoteError, api_resource, call, object_api};

/// Whether `object`, seen through the `MemberCluster` `member`, belongs to the stack with uid
/// `stack_uid` (from its labels).
pub fn ownership(object: &impl kube::Resource, stack_uid: &str, member: &str) -> Ownership {
    stacksmith_core::observe::ownership(object.labels(), stack_uid, member)
}

/// Who is writing: the stack, and the stack whose objects it may take over.
#[derive(Clone, Debug)]
pub struct Claimant {
    /// The stack's uid.
    pub stack_uid: String,
    /// `stacksmith.io/adopt-from`, when the named stack is gone or going.
    pub adopt: Option<AdoptFrom>,
}

impl Claimant {
    /// Whether an existing object is the stack's to write through `member`: its own, or one of
    /// the stack it adopts from.
    pub fn ownership(&self, object: &impl kube::Resource, member: &str) -> Ownership {
        match ownership(object, &self.stack_uid, member) {
            Ownership::Foreign(_)
                if self
                    .adopt
                    .as_ref()
                    .is_some_and(|adopt| adoptable(object.labels(), adopt, member)) =>
            {
                Ownership::Ours
            }
            other => other,
        }
    }
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

/// Brings one object to its planned state. Returns the outcome and the object's uid when it is
/// now the stack's (for the inventory).
pub async fn apply_object(
    connection: &MemberConnection,
    desired: &DesiredObject,
    claimant: &Claimant,
    recent: &RecentWrites,
) -> (WriteOutcome, Option<String>) {
    let existing = cached(connection, desired.kind, &desired.namespace, &desired.name);
    let created = match &existing {
        None => true,
        Some(existing) => match claimant.ownership(existing.as_ref(), &connection.name) {
            Ownership::Foreign(owner) => return (WriteOutcome::Conflict { owner }, None),
            Ownership::Ours => {
                let live = existing.to_value();
                let uid = existing.metadata.uid.clone();
                if is_as_planned(&live, &desired.manifest) {
                    recent.forget(desired);
                    return (WriteOutcome::Unchanged(Box::new(live)), uid);
                }
                if let Some(field) = immutable_change(desired.kind, &live, &desired.manifest) {
                    return (replace(connection, desired, existing, field).await, None);
                }
                false
            }
        },
    };
    if let Some(left) = recent.awaiting(desired) {
        return (WriteOutcome::AwaitingCache { left }, None);
    }
    let api = object_api(&connection.client, desired.kind, &desired.namespace);
    if created && created_not_applied(desired.kind) {
        return create_unseen(connection, &api, desired, claimant, recent).await;
    }
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
        Ok(written) => {
            recent.record(desired);
            let outcome = if created {
                WriteOutcome::Created
            } else {
                WriteOutcome::Updated
            };
            (outcome, written.metadata.uid)
        }
        Err(err) => (
            WriteOutcome::Failed {
                message: err.to_string(),
            },
            None,
        ),
    }
}

/// Whether an object of `kind` that the cache does not show is created (POST, which fails when
/// anything of that name exists) rather than applied (which would write over whatever exists):
/// the kinds whose cache holds only stacksmith's objects ([`cache_holds_only_ours`]: absent
/// from the cache, someone else's may exist), and the tenant Namespace (someone may create it a
/// moment before the stack, and the cache may not show it yet: applying would take it over).
///
/// Created this way, an object's fields are held by stacksmith's field manager as an update
/// rather than an apply, so a field later dropped from the plan would stay on it; these kinds
/// have no optional field in the plan (the Namespace: labels and the planned-hash annotation;
/// the Prometheus' ServiceAccount, Role and RoleBinding: fixed content). Children are applied:
/// their optional fields must go when the plan drops them. A child someone else creates in the
/// moment between the cache's view and the write is written over (the cache sees every child,
/// so that moment is the watch's delay).
fn created_not_applied(kind: ObjectKind) -> bool {
    cache_holds_only_ours(kind) || kind == ObjectKind::Namespace
}

/// Creates an object the cache does not show ([`created_not_applied`]): with a POST, never
/// applied over. When something of that name exists, it is read once: the stack's (a cache
/// that has not caught up) is applied as planned, anyone else's is a `Conflict`.
async fn create_unseen(
    connection: &MemberConnection,
    api: &kube::Api<kube::api::DynamicObject>,
    desired: &DesiredObject,
    claimant: &Claimant,
    recent: &RecentWrites,
) -> (WriteOutcome, Option<String>) {
    let object: kube::api::DynamicObject = match serde_json::from_value(desired.manifest.clone()) {
        Ok(object) => object,
        Err(err) => {
            return (
                WriteOutcome::Failed {
                    message: format!("the planned object is not an object: {err}"),
                },
                None,
            );
        }
    };
    let params = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    tracing::debug!(cluster = %connection.name, kind = desired.kind.kind(), namespace = %desired.namespace, name = %desired.name, "creating");
    match call(connection.timeout, api.create(&params, &object)).await {
        Ok(created) => {
            recent.record(desired);
            return (WriteOutcome::Created, created.metadata.uid);
        }
        Err(err) if !err.is_conflict() => {
            return (
                WriteOutcome::Failed {
                    message: err.to_string(),
                },
                None,
            );
        }
        Err(_) => {}
    }
    // Something of that name exists: whose?
    let existing = match call(connection.timeout, api.get(&desired.name)).await {
        Ok(existing) => existing,
        Err(err) => {
            return (
                WriteOutcome::Failed {
                    message: format!("an object of that name exists and could not be read: {err}"),
                },
                None,
            );
        }
    };
    if let Ownership::Foreign(owner) = claimant.ownership(&existing, &connection.name) {
        return (WriteOutcome::Conflict { owner }, None);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match call(
        connection.timeout,
        api.patch(&desired.name, &params, &Patch::Apply(&desired.manifest)),
    )
    .await
    {
        Ok(written) => {
            recent.record(desired);
            (WriteOutcome::Updated, written.metadata.uid)
        }
        Err(err) => (
            WriteOutcome::Failed {
                message: err.to_string(),
            },
            None,
        ),
    }
}

/// Deletes an object of ours whose immutable `field` the plan changed, so the next pass creates
/// it from the plan (the API server would refuse the write); nothing while it is going away.
/// The delete carries the cached uid as a precondition.
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
    let Some(uid) = existing.metadata.uid.clone() else {
        return WriteOutcome::Failed {
            message: format!("cannot change {field}: the cached object has no uid"),
        };
    };
    let object = InventoriedObject {
        key: ObjectKey::of(desired),
        uid,
    };
    tracing::info!(cluster = %connection.name, kind = desired.kind.kind(), namespace = %desired.namespace, name = %desired.name, field, "re-creating: an immutable field changed");
    match delete_inventoried(connection, &object).await {
        Ok(_) => WriteOutcome::Replacing {
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

/// What a delete of an inventoried object found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// It is gone (deleted now, or already).
    Gone,
    /// Its deletion has started and it still exists (finalizers, a terminating namespace).
    Going,
    /// An object of that name exists with another uid: not the one stacksmith wrote, so it was
    /// not deleted.
    NotOurs,
}

/// Deletes one inventoried object, only if its uid is still the inventoried one (a delete
/// precondition: the API server refuses it otherwise).
pub async fn delete_inventoried(
    connection: &MemberConnection,
    object: &InventoriedObject,
) -> Result<Deleted, RemoteError> {
    let key = &object.key;
    let api = object_api(&connection.client, key.kind, &key.namespace);
    let mut params = DeleteParams::background();
    params.preconditions = Some(Preconditions {
        uid: Some(object.uid.clone()),
        resource_version: None,
    });
    match call(connection.timeout, api.delete(&key.name, &params)).await {
        // The object back: it still exists, being deleted; a Status: it is gone.
        Ok(answer) if answer.is_left() => Ok(Deleted::Going),
        Ok(_) => Ok(Deleted::Gone),
        Err(err) if err.is_not_found() => Ok(Deleted::Gone),
        Err(err) if err.is_conflict() => Ok(Deleted::NotOurs),
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

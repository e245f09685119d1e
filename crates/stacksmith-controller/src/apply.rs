//! Writing planned objects into a member cluster: server-side apply when an object is missing
//! or drifted, nothing when the watch cache already shows it as planned, never over an object
//! another owner holds; an object another writer keeps changing back is restored less and less
//! often ([`contested`]). Deleting an inventoried object, only while its uid still matches.

mod contested;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::Value;
use stacksmith_api::labels::PLANNED_HASH;
use stacksmith_core::inventory::{InventoriedObject, ObjectKey};
use stacksmith_core::observe::{
    AdoptFrom, Contest, NotWrittenReason, Ownership, WriteOutcome, adoptable, immutable_change,
};
use stacksmith_core::plan::{DesiredObject, ObjectKind};

use crate::FIELD_MANAGER;
use crate::member::MemberConnection;
use crate::member::cached_object::CachedObject;
use crate::member::connection::cache_holds_only_ours;
use crate::remote::{RemoteError, call, object_api};
use contested::{Contests, Decision};

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
    /// Whether an existing object (with `labels`) is the stack's to write through `member`: its
    /// own, or one of the stack it adopts from.
    pub fn ownership(&self, labels: &BTreeMap<String, String>, member: &str) -> Ownership {
        match stacksmith_core::observe::ownership(labels, &self.stack_uid, member) {
            Ownership::Foreign(_)
                if self
                    .adopt
                    .as_ref()
                    .is_some_and(|adopt| adoptable(labels, adopt, member)) =>
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
    store.get(if kind.namespaced() { namespace } else { "" }, name)
}

/// How long a write is trusted while the watch cache does not show it yet.
pub const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

/// The objects written in the last [`CACHE_CATCH_UP`], with the plan hash written.
///
/// A stack is often reconciled again before the watches have delivered all of its own writes
/// (the first objects' events wake it while the last are still on their way); without this
/// memory such a pass would write those objects a second time.
///
/// Beside it, the drift corrections of the last minute and the contested objects
/// ([`contested`]): what decides when an object someone else keeps changing is restored.
#[derive(Debug, Default)]
pub struct RecentWrites {
    written: Mutex<HashMap<WriteKey, (String, Instant)>>,
    contests: Contests,
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

    /// The planned objects in a contested episode (another writer keeps changing them back).
    pub(crate) fn contested(&self, planned: &[DesiredObject]) -> Vec<ObjectKey> {
        let now = Instant::now();
        planned
            .iter()
            .map(ObjectKey::of)
            .filter(|key| self.contests.is_contested(key, now))
            .collect()
    }

    /// Forgets the drift corrections of the stack `stack_uid` (it is being deleted).
    pub(crate) fn forget_stack(&self, stack_uid: &str) {
        self.contests.forget_stack(stack_uid, Instant::now());
    }
}

fn planned_hash(desired: &DesiredObject) -> Option<String> {
    planned_hash_of(&desired.manifest).map(str::to_owned)
}

/// The `stacksmith.io/planned-hash` annotation of an object (as JSON).
fn planned_hash_of(object: &Value) -> Option<&str> {
    object
        .pointer(&format!(
            "/metadata/annotations/{}",
            PLANNED_HASH.replace('/', "~1")
        ))
        .and_then(Value::as_str)
}

/// Whether a live object that is not as planned drifted (someone changed it since stacksmith
/// wrote this very plan: it still carries the plan's hash) rather than being behind a changed
/// plan (written at once, whatever the memory of corrections says).
fn drifted(live: &Value, desired: &DesiredObject) -> bool {
    planned_hash_of(&desired.manifest).is_some_and(|hash| planned_hash_of(live) == Some(hash))
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
    let key = ObjectKey::of(desired);
    // The live object and its uid, when it is the stack's and differs from the plan.
    let mut differs = None;
    let created = match &existing {
        None => true,
        Some(existing) => match claimant.ownership(&existing.labels(), &connection.name) {
            Ownership::Foreign(owner) => return (WriteOutcome::Conflict { owner }, None),
            Ownership::Ours => {
                let live = existing.to_value();
                let uid = live["metadata"]["uid"].as_str().map(str::to_owned);
                if is_as_planned(desired.kind, &live, &desired.manifest) {
                    recent.forget(desired);
                    recent.contests.as_planned(&key, Instant::now());
                    return (WriteOutcome::Unchanged(Box::new(live)), uid);
                }
                if let Some(field) = immutable_change(desired.kind, &live, &desired.manifest) {
                    return (replace(connection, desired, existing, field).await, None);
                }
                differs = Some((live, uid));
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
    // What to remember once the write succeeded: a drift correction, or a plan written.
    let mut correction = None;
    if let Some((live, uid)) = differs
        && drifted(&live, desired)
    {
        let now = Instant::now();
        match recent.contests.drifted(&key, now) {
            (Decision::Wait { left, started }, memory, mut managers) => {
                if started {
                    managers = other_writers(connection, &api, desired).await;
                    tracing::info!(
                        cluster = %connection.name,
                        kind = desired.kind.kind(),
                        namespace = %desired.namespace,
                        name = %desired.name,
                        managers = ?managers,
                        wait_s = left.as_secs(),
                        "contested: changed again right after it was restored; the next restore waits"
                    );
                }
                let fields = drifted_fields(desired.kind, &live, &desired.manifest);
                recent
                    .contests
                    .keep(&key, &claimant.stack_uid, memory, managers.clone(), now);
                let contest = Contest {
                    fields,
                    managers,
                    retry_in: left,
                    started,
                };
                let outcome = WriteOutcome::NotWritten {
                    existing: Some(Box::new(live)),
                    reason: NotWrittenReason::Contested(contest),
                };
                return (outcome, uid);
            }
            (Decision::Restore, memory, managers) => correction = Some((memory, managers)),
        }
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
            let now = Instant::now();
            match correction {
                Some((memory, managers)) => {
                    recent
                        .contests
                        .keep(&key, &claimant.stack_uid, memory, managers, now);
                }
                None if !created => recent.contests.plan_written(&key, now),
                None => {}
            }
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
/// rather than an apply, so a field later dropped from the plan would stay on it. Most of these
/// kinds have no optional field in the plan (the Namespace: labels and the planned-hash
/// annotation; the Prometheus' ServiceAccount, Role and RoleBindings, including those of the
/// discovery ClusterRole in the namespaces its scrape targets list: fixed content). The tenant
/// quota has ([`created_bare`]): its `ResourceQuota` and `LimitRange` are created bare and
/// applied at once. A RoleBinding (or quota) of that name someone else created is thus never
/// written over: a `Conflict`.
/// Children are applied: their optional fields must go when the plan drops them. A child someone else creates in the
/// moment between the cache's view and the write is written over (the cache sees every child,
/// so that moment is the watch's delay).
fn created_not_applied(kind: ObjectKind) -> bool {
    cache_holds_only_ours(kind) || kind == ObjectKind::Namespace
}

/// Whether a kind created with a POST ([`created_not_applied`]) is created bare (name,
/// namespace and labels: what the plan never drops) and then applied: the kinds whose planned
/// fields come and go (a `MemberCluster`'s `tenantQuota` changes), which the apply must own to
/// remove them later. Bare, a `ResourceQuota` limits nothing and a `LimitRange` defaults
/// nothing, for the moment between the two requests.
fn created_bare(kind: ObjectKind) -> bool {
    kind.is_tenant_quota()
}

/// The bare form of a planned object: `apiVersion`, `kind`, and of its metadata the name, the
/// namespace and the labels.
fn bare(manifest: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for field in ["name", "namespace", "labels"] {
        if let Some(value) = manifest.pointer(&format!("/metadata/{field}")) {
            metadata.insert(field.into(), value.clone());
        }
    }
    let mut object = serde_json::Map::new();
    for field in ["apiVersion", "kind"] {
        if let Some(value) = manifest.get(field) {
            object.insert(field.into(), value.clone());
        }
    }
    object.insert("metadata".into(), Value::Object(metadata));
    Value::Object(object)
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
    let body = if created_bare(desired.kind) {
        bare(&desired.manifest)
    } else {
        desired.manifest.clone()
    };
    let object: kube::api::DynamicObject = match serde_json::from_value(body) {
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
        Ok(created) if created_bare(desired.kind) => {
            // Its fields now, by apply: the uid is the stack's whatever the apply answers.
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let patch = Patch::Apply(&desired.manifest);
            return match call(
                connection.timeout,
                api.patch(&desired.name, &params, &patch),
            )
            .await
            {
                Ok(written) => {
                    recent.record(desired);
                    let uid = written.metadata.uid.or(created.metadata.uid);
                    (WriteOutcome::Created, uid)
                }
                Err(err) => (
                    WriteOutcome::Failed {
                        message: format!("created bare, then its apply failed: {err}"),
                    },
                    created.metadata.uid,
                ),
            };
        }
        Ok(created) => {
            recent.record(desired);
            return (WriteOutcome::Created, created.metadata.uid);
        }
        Err(err) if err.is_not_found() => {
            return (
                WriteOutcome::Failed {
                    message: missing_on_create(&err, &desired.namespace),
                },
                None,
            );
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
    if let Ownership::Foreign(owner) = claimant.ownership(existing.labels(), &connection.name) {
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

/// What a create answered 404 for: the namespace (one a scrape target lists that does not exist
/// yet; the next pass tries again) or the ClusterRole a RoleBinding refers to (the remote chart
/// installs `stacksmith-prometheus-discovery`; without it, an identity that may not `bind` it
/// gets 404), from the answer's details; else the answer as it is.
fn missing_on_create(err: &RemoteError, namespace: &str) -> String {
    let RemoteError::Failed(kube::Error::Api(status)) = err else {
        return err.to_string();
    };
    match status
        .details
        .as_ref()
        .map(|d| (d.kind.as_str(), d.name.as_str()))
    {
        Some(("namespaces", _)) => format!("namespace {namespace} does not exist ({err})"),
        Some(("clusterroles", name)) => format!(
            "the ClusterRole {name} it binds does not exist on this cluster ({err}); the \
             remote chart installs it"
        ),
        _ => err.to_string(),
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
    let head = existing.head();
    if head.deletion_timestamp {
        return WriteOutcome::Replacing {
            field,
            deleted_now: false,
        };
    }
    let Some(uid) = head.uid else {
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

/// The other writers of a contested object, as the API server names them: a dry run of the plan
/// without `force` is refused with a conflict naming each other field manager of the fields it
/// would take (nothing is written). One request, once per contested episode, when it starts (the
/// watch caches drop `managedFields`); empty when the answer names nobody.
async fn other_writers(
    connection: &MemberConnection,
    api: &kube::Api<kube::api::DynamicObject>,
    desired: &DesiredObject,
) -> Vec<String> {
    let params = PatchParams::apply(FIELD_MANAGER).dry_run();
    let answer = call(
        connection.timeout,
        api.patch(&desired.name, &params, &Patch::Apply(&desired.manifest)),
    )
    .await;
    match answer {
        Err(RemoteError::Failed(kube::Error::Api(status))) if status.code == 409 => {
            let causes = status.details.iter().flat_map(|d| d.causes.iter());
            let texts = std::iter::once(status.message.as_str())
                .chain(causes.map(|cause| cause.message.as_str()));
            conflicting_managers(texts)
        }
        _ => Vec::new(),
    }
}

/// The field managers an apply conflict names (`conflict with "<manager>" using …`), each once,
/// stacksmith's own aside; at most three, each at most 100 characters.
fn conflicting_managers<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    const MARK: &str = "conflict with \"";
    let mut managers: Vec<String> = Vec::new();
    for text in texts {
        for rest in text.split(MARK).skip(1) {
            let Some((name, _)) = rest.split_once('"') else {
                continue;
            };
            let name: String = name.chars().take(100).collect();
            if name != FIELD_MANAGER && !name.is_empty() && !managers.contains(&name) {
                managers.push(name);
            }
        }
    }
    managers.truncate(3);
    managers
}

/// The planned fields whose live values differ, as dotted paths (`spec.replicas`); a list is
/// named as a whole.
fn drifted_fields(kind: ObjectKind, live: &Value, desired: &Value) -> Vec<String> {
    fn walk(
        live: Option<&Value>,
        desired: &Value,
        same: SameText,
        path: String,
        out: &mut Vec<String>,
    ) {
        match (live, desired) {
            (Some(live), desired) if contains_by(live, desired, same) => {}
            (Some(Value::Object(live)), Value::Object(desired)) => {
                for (key, value) in desired {
                    walk(live.get(key), value, same, format!("{path}.{key}"), out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut fields = Vec::new();
    if let Value::Object(planned) = desired {
        for (key, value) in planned {
            if !matches!(key.as_str(), "apiVersion" | "kind") {
                let same = same_text(kind, key);
                walk(live.get(key), value, same, key.clone(), &mut fields);
            }
        }
    }
    fields
}

/// Whether a cached object of `kind` is as planned: every planned field has its planned value,
/// apart from `apiVersion` and `kind` (the cache is per kind already, and objects that came from
/// a LIST of a built-in kind carry neither: comparing them would re-apply every Namespace,
/// ServiceAccount, Role and RoleBinding after each restart and call it drift). The quantities
/// of a tenant quota's `spec` compare by value ([`same_text`]).
pub fn is_as_planned(kind: ObjectKind, live: &Value, desired: &Value) -> bool {
    match desired {
        Value::Object(fields) => fields
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "apiVersion" | "kind"))
            .all(|(key, value)| {
                live.get(key)
                    .is_some_and(|l| contains_by(l, value, same_text(kind, key)))
            }),
        other => contains(live, other),
    }
}

/// How a planned text compares with the live one.
type SameText = fn(&str, &str) -> bool;

/// How the texts of a planned object's top-level field `field` compare with the live ones:
/// equal, or, in the `spec` of a `ResourceQuota` or `LimitRange`, the same quantity. The API
/// server stores a built-in kind's quantities in canonical form (`1024Mi` as `1Gi`, `0.5` as
/// `500m`): compared as text, a quota written that way would never be as planned.
fn same_text(kind: ObjectKind, field: &str) -> SameText {
    fn equal(live: &str, planned: &str) -> bool {
        live == planned
    }
    fn equal_quantity(live: &str, planned: &str) -> bool {
        live == planned || stacksmith_core::quantity::same(live, planned)
    }
    match kind {
        kind if kind.is_tenant_quota() && field == "spec" => equal_quantity,
        _ => equal,
    }
}

/// Whether `live` holds every field of `desired` with the same value (the API server may add
/// defaults and other managers' fields; those are not drift).
pub fn contains(live: &Value, desired: &Value) -> bool {
    contains_by(live, desired, |live, planned| live == planned)
}

/// [`contains`], texts compared by `same`.
fn contains_by(live: &Value, desired: &Value, same: SameText) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(k, v)| live.get(k).is_some_and(|l| contains_by(l, v, same))),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len()
                && live
                    .iter()
                    .zip(desired)
                    .all(|(l, d)| contains_by(l, d, same))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (Value::String(l), Value::String(d)) => same(l, d),
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
    fn a_create_answered_404_names_what_is_missing() {
        let not_found = |kind: &str, name: &str| {
            let status: kube::core::Status = serde_json::from_value(json!({
                "status": "Failure", "code": 404, "reason": "NotFound",
                "message": format!("{kind} \"{name}\" not found"),
                "details": {"name": name, "kind": kind},
            }))
            .unwrap();
            RemoteError::Failed(kube::Error::Api(Box::new(status)))
        };
        assert_eq!(
            missing_on_create(&not_found("namespaces", "apps"), "apps"),
            "namespace apps does not exist (404 NotFound)"
        );
        assert_eq!(
            missing_on_create(
                &not_found("clusterroles", "stacksmith-prometheus-discovery"),
                "apps"
            ),
            "the ClusterRole stacksmith-prometheus-discovery it binds does not exist on this \
             cluster (404 NotFound); the remote chart installs it"
        );
        assert_eq!(
            missing_on_create(&not_found("rolebindings", "x"), "apps"),
            "404 NotFound"
        );
    }

    #[test]
    fn drifted_fields_are_named_by_path() {
        let planned = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"annotations": {"stacksmith.io/planned-hash": "h"}},
            "spec": {"replicas": 2, "retention": "7d", "list": [1, 2], "deep": {"a": {"b": 1}}}});
        let live = json!({"metadata": {"annotations": {"stacksmith.io/planned-hash": "h"}},
            "spec": {"replicas": 1, "retention": "7d", "list": [1], "deep": {"a": {"b": 2}}}});
        let prometheus = ObjectKind::Child(stacksmith_core::ChildKind::Prometheus);
        assert_eq!(
            drifted_fields(prometheus, &live, &planned),
            ["spec.deep.a.b", "spec.list", "spec.replicas"]
        );
        assert!(drifted_fields(prometheus, &planned, &planned).is_empty());
        let desired = DesiredObject {
            cluster: "prom-1".into(),
            kind: ObjectKind::Namespace,
            namespace: String::new(),
            name: "x".into(),
            manifest: planned.clone(),
        };
        assert!(drifted(&live, &desired), "the same plan, changed: drift");
        let replanned = json!({"metadata": {"annotations": {"stacksmith.io/planned-hash": "old"}}});
        assert!(!drifted(&replanned, &desired), "behind a changed plan");
        assert!(
            !drifted(&json!({}), &desired),
            "no hash: not known to be as planned once"
        );
    }

    #[test]
    fn an_apply_conflict_names_the_other_managers() {
        let message = "Apply failed with 2 conflicts: conflict with \"fighter\" using \
            monitoring.coreos.com/v1: .spec.replicas\nconflict with \"kubectl-edit\" using \
            monitoring.coreos.com/v1: .spec.retention";
        let causes = [
            "conflict with \"fighter\" using monitoring.coreos.com/v1",
            "conflict with \"stacksmith\" using v1",
        ];
        assert_eq!(
            conflicting_managers(std::iter::once(message).chain(causes)),
            ["fighter", "kubectl-edit"]
        );
        assert!(conflicting_managers(["409 Conflict", "conflict with \""]).is_empty());
    }

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
        assert!(is_as_planned(ObjectKind::Namespace, &listed, &planned));
        assert!(
            !contains(&listed, &planned),
            "the plain subset check would call it drift"
        );
        let relabelled = json!({"metadata": {"name": "customer-acme", "labels": {"a": "c"}}});
        assert!(!is_as_planned(ObjectKind::Namespace, &relabelled, &planned));
        assert!(contains(&json!({"n": 2.0}), &json!({"n": 2})));
    }

    #[test]
    fn a_tenant_quota_stored_in_canonical_form_is_as_planned() {
        let planned = json!({"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "stacksmith-tenant", "labels": {"a": "1"}},
            "spec": {"limits": [{"type": "Container",
                "default": {"memory": "1024Mi"}, "defaultRequest": {"cpu": "0.5"}}]}});
        // As the API server stores it: canonical quantities, defaults filled in.
        let stored = json!({"metadata": {"name": "stacksmith-tenant", "labels": {"a": "1"}},
            "spec": {"limits": [{"type": "Container",
                "default": {"memory": "1Gi"}, "defaultRequest": {"cpu": "500m"}}]}});
        assert!(is_as_planned(ObjectKind::LimitRange, &stored, &planned));
        assert!(drifted_fields(ObjectKind::LimitRange, &stored, &planned).is_empty());
        let quota = json!({"spec": {"hard": {"requests.memory": "2048Mi", "pods": "4"}}});
        let stored_quota = json!({"spec": {"hard": {"requests.memory": "2Gi", "pods": "4"}}});
        assert!(is_as_planned(
            ObjectKind::ResourceQuota,
            &stored_quota,
            &quota
        ));
        // Another value is drift; texts elsewhere and in other kinds compare as they are.
        let changed = json!({"spec": {"hard": {"requests.memory": "3Gi", "pods": "4"}}});
        assert!(!is_as_planned(ObjectKind::ResourceQuota, &changed, &quota));
        assert_eq!(
            drifted_fields(ObjectKind::ResourceQuota, &changed, &quota),
            ["spec.hard.requests.memory"]
        );
        let relabelled = json!({"metadata": {"labels": {"a": "1.0"}}, "spec": stored["spec"]});
        assert!(!is_as_planned(
            ObjectKind::LimitRange,
            &relabelled,
            &planned
        ));
        let prometheus = ObjectKind::Child(stacksmith_core::ChildKind::Prometheus);
        assert!(!is_as_planned(prometheus, &stored_quota, &quota));
    }

    #[test]
    fn a_bare_object_keeps_only_what_the_plan_never_drops() {
        let planned = json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "stacksmith-tenant", "namespace": "customer-acme",
                "labels": {"a": "1"}, "annotations": {"stacksmith.io/planned-hash": "h"}},
            "spec": {"hard": {"pods": "4"}}});
        assert_eq!(
            bare(&planned),
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "stacksmith-tenant", "namespace": "customer-acme",
                    "labels": {"a": "1"}}})
        );
        assert!(created_bare(ObjectKind::ResourceQuota) && created_bare(ObjectKind::LimitRange));
        assert!(!created_bare(ObjectKind::Namespace));
        assert!(created_not_applied(ObjectKind::ResourceQuota));
        assert!(created_not_applied(ObjectKind::LimitRange));
    }
}

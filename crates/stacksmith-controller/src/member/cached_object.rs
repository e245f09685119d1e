//! A member object as the watch caches keep it: one compact JSON text, and the cache that holds
//! such objects by namespace and name.
//!
//! The caches hold every child of every stack, so what one object costs is multiplied by tens of
//! thousands. A `DynamicObject` holds its body as a `serde_json::Value` tree (about eight times
//! the object's JSON size); a typed `ObjectMeta` costs about 2 KB for a few labels (a `BTreeMap`
//! allocates a node of eleven entries for one); kube's reflector store keys every object with a
//! copy of its `ApiResource` (five strings). Here an object is its JSON text alone, without
//! `managedFields` (never read, and most of a small object's size), keyed by `namespace/name`
//! in a map per kind and member; it is parsed when a reconcile looks at it
//! ([`CachedObject::to_value`]), and the few metadata fields asked for often (labels, uid,
//! deletion) are read from the text without building the rest ([`CachedObject::head`]).
//!
//! [`WatchedObject`] is the form a watch delivers: the text plus the name, namespace and
//! `resourceVersion` the watch itself needs; it becomes a [`CachedObject`] when stored.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::api::{ApiResource, ObjectMeta};
use kube::core::DynamicResourceScope;
use kube::runtime::watcher;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::{Map, Value};

/// A cached member object: its JSON (`apiVersion` and `kind` when the API server sent them,
/// `metadata` without `managedFields`, the rest).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedObject {
    text: Box<str>,
}

/// The metadata fields read without parsing the whole object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    #[serde(default, deserialize_with = "present")]
    pub deletion_timestamp: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(!Value::deserialize(deserializer)?.is_null())
}

#[derive(Deserialize)]
struct WithHead {
    #[serde(default)]
    metadata: Head,
}

impl CachedObject {
    /// The whole object as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Its labels, uid and whether it is being deleted.
    pub fn head(&self) -> Head {
        head_of(&self.text)
    }

    /// Its labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.head().labels
    }

    /// Bytes of text kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.text.len()
    }
}

/// A member object as a watch delivers it (see the module's documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct WatchedObject {
    /// Name, namespace and `resourceVersion` only.
    metadata: ObjectMeta,
    text: Box<str>,
}

impl WatchedObject {
    /// `namespace/name` (`/name` for a cluster-scoped object): its key in a cache.
    fn key(&self) -> String {
        key(
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The stored form.
    pub fn cached(&self) -> CachedObject {
        CachedObject {
            text: self.text.clone(),
        }
    }

    /// Its labels, uid and whether it is being deleted.
    pub fn head(&self) -> Head {
        head_of(&self.text)
    }

    /// The object's namespace (empty for a cluster-scoped one) and name.
    pub fn namespace_and_name(&self) -> (&str, &str) {
        (
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl<'de> Deserialize<'de> for WatchedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let mut metadata = ObjectMeta::default();
        if let Some(Value::Object(meta)) = fields.get_mut("metadata") {
            meta.remove("managedFields");
            let text = |field: &str| meta.get(field).and_then(Value::as_str).map(str::to_owned);
            metadata.name = text("name");
            metadata.namespace = text("namespace");
            metadata.resource_version = text("resourceVersion");
        }
        let text = serde_json::to_string(&fields)
            .map_err(D::Error::custom)?
            .into_boxed_str();
        Ok(WatchedObject { metadata, text })
    }
}

impl<'de> Deserialize<'de> for CachedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(WatchedObject::deserialize(deserializer)?.cached())
    }
}

impl Resource for WatchedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(resource: &ApiResource) -> Cow<'_, str> {
        resource.group.as_str().into()
    }

    fn version(resource: &ApiResource) -> Cow<'_, str> {
        resource.version.as_str().into()
    }

    fn kind(resource: &ApiResource) -> Cow<'_, str> {
        resource.kind.as_str().into()
    }

    fn api_version(resource: &ApiResource) -> Cow<'_, str> {
        resource.api_version.as_str().into()
    }

    fn plural(resource: &ApiResource) -> Cow<'_, str> {
        resource.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn head_of(text: &str) -> Head {
    serde_json::from_str::<WithHead>(text)
        .map(|w| w.metadata)
        .unwrap_or_default()
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The cached objects of one kind on one member, by `namespace/name`; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct ObjectCache {
    inner: Arc<RwLock<Objects>>,
}

#[derive(Debug, Default)]
struct Objects {
    objects: BTreeMap<Box<str>, Arc<CachedObject>>,
    /// While a (re)list is under way: what it delivered so far (the cache keeps showing the
    /// previous state until it is complete, as kube's reflector does).
    relisting: Option<BTreeMap<Box<str>, Arc<CachedObject>>>,
}

impl ObjectCache {
    /// The object `namespace/name` (namespace empty for a cluster-scoped kind).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<CachedObject>> {
        crate::locks::read(&self.inner)
            .objects
            .get(key(namespace, name).as_str())
            .cloned()
    }

    /// Every object.
    pub fn all(&self) -> Vec<Arc<CachedObject>> {
        crate::locks::read(&self.inner)
            .objects
            .values()
            .cloned()
            .collect()
    }

    /// The objects of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<CachedObject>> {
        let prefix = format!("{namespace}/");
        crate::locks::read(&self.inner)
            .objects
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(_, object)| Arc::clone(object))
            .collect()
    }

    /// How many objects it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        crate::locks::read(&self.inner).objects.len()
    }

    /// Applies one watch event.
    pub fn apply(&self, event: &watcher::Event<WatchedObject>) {
        let mut objects = crate::locks::write(&self.inner);
        match event {
            watcher::Event::Init => objects.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(object) => {
                let entry = (object.key().into_boxed_str(), Arc::new(object.cached()));
                match objects.relisting.as_mut() {
                    Some(relisting) => relisting.insert(entry.0, entry.1),
                    None => objects.objects.insert(entry.0, entry.1),
                };
            }
            watcher::Event::InitDone => {
                if let Some(listed) = objects.relisting.take() {
                    objects.objects = listed;
                }
            }
            watcher::Event::Apply(object) => {
                objects
                    .objects
                    .insert(object.key().into_boxed_str(), Arc::new(object.cached()));
            }
            watcher::Event::Delete(object) => {
                objects.objects.remove(object.key().as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn watched(value: Value) -> WatchedObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn round_trips_without_managed_fields() {
        let wire = json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": "acme", "namespace": "customer-acme", "labels": {"a": "b"},
                "resourceVersion": "7", "uid": "u-1",
                "managedFields": [{"manager": "stacksmith", "operation": "Apply"}]},
            "spec": {"replicas": 2}, "status": {"conditions": [{"type": "Available", "status": "True"}]},
        });
        let object = watched(wire.clone());
        assert_eq!(object.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(object.key(), "customer-acme/acme");
        let cached = object.cached();
        let mut expected = wire;
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(cached.to_value(), expected);
        assert_eq!(
            cached.len(),
            serde_json::to_string(&expected).unwrap().len()
        );
        let head = cached.head();
        assert_eq!(head.labels, BTreeMap::from([("a".into(), "b".into())]));
        assert_eq!(head.uid.as_deref(), Some("u-1"));
        assert!(!head.deletion_timestamp);
    }

    #[test]
    fn an_item_of_a_list_without_types_is_kept_without_them() {
        let cached: CachedObject = serde_json::from_value(
            json!({"metadata": {"name": "customer-acme", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}}),
        )
        .unwrap();
        assert!(cached.to_value().get("kind").is_none());
        assert_eq!(
            cached.to_value()["metadata"]["name"].as_str(),
            Some("customer-acme")
        );
        let head = cached.head();
        assert!(head.deletion_timestamp);
        assert!(head.labels.is_empty());
    }

    #[test]
    fn the_cache_follows_a_watch_and_keeps_its_state_through_a_relist() {
        let cache = ObjectCache::default();
        let object = |ns: &str, name: &str, v: u64| {
            watched(
                json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": v.to_string()}, "spec": {"v": v}}),
            )
        };
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(object("a", "x", 1)));
        assert_eq!(cache.len(), 0, "not shown before the list is complete");
        cache.apply(&watcher::Event::InitApply(object("a", "y", 1)));
        cache.apply(&watcher::Event::InitApply(object("ab", "z", 1)));
        cache.apply(&watcher::Event::InitDone);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.in_namespace("a").len(), 2);
        assert_eq!(cache.in_namespace("ab").len(), 1);
        cache.apply(&watcher::Event::Apply(object("a", "x", 2)));
        assert_eq!(cache.get("a", "x").unwrap().to_value()["spec"]["v"], 2);
        cache.apply(&watcher::Event::Delete(object("a", "y", 3)));
        assert!(cache.get("a", "y").is_none());
        // A relist: the old state stays visible until it is complete, then is replaced.
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(object("b", "w", 4)));
        assert!(cache.get("a", "x").is_some());
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.get("a", "x").is_none());
        assert_eq!(cache.all().len(), 1);
        // Cluster-scoped objects are keyed with an empty namespace.
        cache.apply(&watcher::Event::Apply(watched(
            json!({"metadata": {"name": "customer-a", "resourceVersion": "5"}}),
        )));
        assert!(cache.get("", "customer-a").is_some());
    }
}

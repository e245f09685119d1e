//! A member object as the watch caches keep it: typed metadata plus everything else as compact
//! JSON text.
//!
//! A `DynamicObject` holds its body as a `serde_json::Value` tree, which costs about eight times
//! the object's JSON size in memory (a 1.5 KB `Prometheus` takes about 11 KB). The caches hold
//! every child of every stack, so they keep the text instead and parse it when a reconcile looks
//! at an object ([`CachedObject::to_value`]). `managedFields` are dropped on the way in: they
//! are never read and are most of a small object's size.

use std::borrow::Cow;

use kube::Resource;
use kube::api::{ApiResource, ObjectMeta, TypeMeta};
use kube::core::DynamicResourceScope;
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::{Map, Value};

/// A cached member object.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedObject {
    /// `apiVersion` and `kind`, when the API server sent them (items of a LIST of a built-in
    /// kind come without).
    pub types: Option<TypeMeta>,
    /// The metadata, without `managedFields`.
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `status`, ...), as a JSON object.
    body: Box<str>,
}

impl CachedObject {
    /// The whole object as JSON (`apiVersion`, `kind` when known, `metadata`, the rest).
    pub fn to_value(&self) -> Value {
        let mut object: Map<String, Value> = serde_json::from_str(&self.body).unwrap_or_default();
        if let Some(types) = &self.types {
            object.insert(
                "apiVersion".into(),
                Value::String(types.api_version.clone()),
            );
            object.insert("kind".into(), Value::String(types.kind.clone()));
        }
        object.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
        );
        Value::Object(object)
    }

    /// Bytes of body text kept.
    #[cfg(test)]
    fn body_len(&self) -> usize {
        self.body.len()
    }
}

impl<'de> Deserialize<'de> for CachedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let mut metadata: ObjectMeta = match fields.remove("metadata") {
            Some(metadata) => serde_json::from_value(metadata).map_err(D::Error::custom)?,
            None => ObjectMeta::default(),
        };
        metadata.managed_fields = None;
        let types = match (fields.remove("apiVersion"), fields.remove("kind")) {
            (Some(Value::String(api_version)), Some(Value::String(kind))) => {
                Some(TypeMeta { api_version, kind })
            }
            _ => None,
        };
        let body = serde_json::to_string(&fields)
            .map_err(D::Error::custom)?
            .into_boxed_str();
        Ok(CachedObject {
            types,
            metadata,
            body,
        })
    }
}

impl Resource for CachedObject {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_without_managed_fields() {
        let wire = json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": "acme", "namespace": "customer-acme", "labels": {"a": "b"},
                "managedFields": [{"manager": "stacksmith", "operation": "Apply"}]},
            "spec": {"replicas": 2}, "status": {"conditions": [{"type": "Available", "status": "True"}]},
        });
        let cached: CachedObject = serde_json::from_value(wire.clone()).unwrap();
        assert!(cached.metadata.managed_fields.is_none());
        let mut expected = wire;
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(cached.to_value(), expected);
        assert_eq!(
            cached.body_len(),
            r#"{"spec":{"replicas":2},"status":{"conditions":[{"status":"True","type":"Available"}]}}"#.len()
        );
    }

    #[test]
    fn an_item_of_a_list_without_types_is_kept_without_them() {
        let cached: CachedObject =
            serde_json::from_value(json!({"metadata": {"name": "customer-acme"}, "spec": {}}))
                .unwrap();
        assert!(cached.types.is_none());
        assert_eq!(
            cached.to_value()["metadata"]["name"].as_str(),
            Some("customer-acme")
        );
    }
}

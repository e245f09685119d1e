//! Tolerant, typed access to the fields of a JSON object.
//!
//! A field that is absent or `null` reads as `None`; a field of the wrong type is an
//! [`Invalid`] that names the field, so a bad object becomes an `Unknown` verdict instead of a
//! panic or a silently wrong answer.

use serde_json::{Map, Value};

use super::HealthReason;

/// Why an object (or its status) could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Invalid {
    /// `MalformedObject` or `UnexpectedStatus`.
    pub reason: HealthReason,
    /// What is wrong, naming the field.
    pub detail: String,
}

impl Invalid {
    /// A problem with the object itself (not a JSON object, bad metadata or spec).
    pub fn object(detail: impl Into<String>) -> Self {
        Self {
            reason: HealthReason::MalformedObject,
            detail: detail.into(),
        }
    }

    /// A problem with what the operator wrote under `status`.
    pub fn status(detail: impl Into<String>) -> Self {
        Self {
            reason: HealthReason::UnexpectedStatus,
            detail: detail.into(),
        }
    }
}

/// The fields of one JSON object, with the path used to name them in error messages and the
/// reason to report when one has the wrong type.
#[derive(Clone, Debug)]
pub(super) struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    path: String,
    on_error: HealthReason,
}

impl<'a> Fields<'a> {
    /// Fields of `map` (none when `None`), named `path.<key>` in messages.
    pub fn new(
        map: Option<&'a Map<String, Value>>,
        path: impl Into<String>,
        on_error: HealthReason,
    ) -> Self {
        Self {
            map,
            path: path.into(),
            on_error,
        }
    }

    /// The path of one field of this object.
    pub fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of a field; `None` when absent or `null`.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map
            .and_then(|map| map.get(key))
            .filter(|value| !value.is_null())
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Invalid> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, Invalid> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An integer field.
    pub fn i64(&self, key: &str) -> Result<Option<i64>, Invalid> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// An array field.
    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, Invalid> {
        self.typed(key, "an array", Value::as_array)
    }

    /// An object field, as [`Fields`] of its own (absent when the field is absent).
    pub fn object(&self, key: &str) -> Result<Fields<'a>, Invalid> {
        let map = self.typed(key, "an object", Value::as_object)?;
        Ok(Fields::new(map, self.field_path(key), self.on_error))
    }

    /// The error to report for a field that is present but not what it should be.
    pub fn invalid(&self, detail: String) -> Invalid {
        Invalid {
            reason: self.on_error,
            detail,
        }
    }

    fn typed<T>(
        &self,
        key: &str,
        what: &str,
        read: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, Invalid> {
        match self.raw(key) {
            None => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .ok_or_else(|| self.invalid(format!("{} is not {what}", self.field_path(key)))),
        }
    }
}

/// Fields of the `index`th element of an array, which must be an object.
pub(super) fn element<'a>(
    parent: &Fields<'a>,
    key: &str,
    index: usize,
    value: &'a Value,
) -> Result<Fields<'a>, Invalid> {
    let path = format!("{}[{index}]", parent.field_path(key));
    match value.as_object() {
        Some(map) => Ok(Fields::new(Some(map), path, parent.on_error)),
        None => Err(parent.invalid(format!("{path} is not an object"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: &Value) -> Fields<'_> {
        Fields::new(value.as_object(), "status", HealthReason::UnexpectedStatus)
    }

    #[test]
    fn absent_and_null_read_as_none() {
        let value = json!({"a": null});
        let status = fields(&value);
        assert_eq!(status.bool("a").unwrap(), None);
        assert_eq!(status.str("b").unwrap(), None);
        assert_eq!(status.object("a").unwrap().raw("x"), None);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let value = json!({"replicas": "two"});
        let err = fields(&value).i64("replicas").unwrap_err();
        assert_eq!(err.reason, HealthReason::UnexpectedStatus);
        assert_eq!(err.detail, "status.replicas is not an integer");
    }

    #[test]
    fn array_elements_must_be_objects() {
        let value = json!({"bindings": [1]});
        let status = fields(&value);
        let items = status.array("bindings").unwrap().unwrap();
        let err = element(&status, "bindings", 0, &items[0]).unwrap_err();
        assert_eq!(err.detail, "status.bindings[0] is not an object");
    }
}

//! A structural-schema checker: an object against the `openAPIV3Schema` of a
//! CustomResourceDefinition, as the API server would judge it, plus what it would silently do.
//!
//! Checked: `type` (with `x-kubernetes-int-or-string` and `nullable`), `required`, `enum`,
//! `pattern`, `minLength`/`maxLength`, `minimum`/`maximum` (and their exclusive forms),
//! `minItems`/`maxItems`, `oneOf`/`anyOf`/`allOf`/`not` (as value validations), `properties`,
//! `additionalProperties` and `items`. Reported as well, although the API server accepts them:
//! **unknown fields**, which it prunes without a word (unless
//! `x-kubernetes-preserve-unknown-fields`), and `null` in a field that is not nullable, which it
//! drops. Formats are not checked. Pure: no I/O.

use std::fmt::Write as _;

use regex::Regex;
use serde_json::{Map, Value};

/// One thing wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaProblem {
    /// The field, e.g. `spec.metrics.replicas` or `spec.metrics.scrape[0].name`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Top-level fields every object has, which a CRD schema does not describe.
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Checks a whole object (with `apiVersion`, `kind` and `metadata`) against a CRD version's
/// `openAPIV3Schema`.
pub fn check_object(schema: &Value, object: &Value) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    let Value::Object(map) = object else {
        problems.push(SchemaProblem {
            field: String::new(),
            message: format!("expected an object, got {}", describe(object)),
        });
        return problems;
    };
    let body: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| !OBJECT_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check(schema, &Value::Object(body), "", true, &mut problems);
    problems
}

/// Checks `value` at `path` against `schema`. `structural` is false inside `oneOf`/`anyOf`/
/// `allOf`/`not` branches, which only constrain values (no unknown-field check there).
pub fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    structural: bool,
    problems: &mut Vec<SchemaProblem>,
) {
    let mut push = |message: String| {
        problems.push(SchemaProblem {
            field: path.to_owned(),
            message,
        })
    };
    if value.is_null() {
        if !flag(schema, "nullable") && structural {
            push("null is not a value here (the API server drops the field)".to_owned());
        }
        return;
    }
    if !type_matches(schema, value) {
        let expected = if flag(schema, "x-kubernetes-int-or-string") {
            "an integer or a string"
        } else {
            match schema.get("type").and_then(Value::as_str) {
                Some("object") => "an object",
                Some("array") => "an array",
                Some("string") => "a string",
                Some("integer") => "an integer",
                Some("number") => "a number",
                Some("boolean") => "a boolean",
                _ => "something else",
            }
        };
        push(format!("expected {expected}, got {}", describe(value)));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        push(format!(
            "{} is not one of the allowed values: {}",
            value,
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, &mut push),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or_default(), &mut push),
        Value::Array(items) => {
            check_count(
                schema,
                "minItems",
                "maxItems",
                items.len(),
                "items",
                &mut push,
            );
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        structural,
                        problems,
                    );
                }
            }
        }
        Value::Object(map) => check_fields(schema, map, path, structural, problems),
        _ => {}
    }
    check_combinators(schema, value, path, problems);
}

fn check_string(schema: &Value, s: &str, push: &mut impl FnMut(String)) {
    let length = s.chars().count();
    check_count(schema, "minLength", "maxLength", length, "characters", push);
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => push(format!("{s:?} does not match {pattern}")),
            Ok(_) => {}
            Err(_) => push(format!("the schema's pattern {pattern} cannot be checked")),
        }
    }
}

fn check_number(schema: &Value, n: f64, push: &mut impl FnMut(String)) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMinimum");
        if n < min || (exclusive && n <= min) {
            push(format!(
                "{} is below the minimum {}{}",
                number(n),
                number(min),
                if exclusive { " (exclusive)" } else { "" }
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(schema, "exclusiveMaximum");
        if n > max || (exclusive && n >= max) {
            push(format!(
                "{} is above the maximum {}{}",
                number(n),
                number(max),
                if exclusive { " (exclusive)" } else { "" }
            ));
        }
    }
}

fn check_count(
    schema: &Value,
    min_key: &str,
    max_key: &str,
    count: usize,
    unit: &str,
    push: &mut impl FnMut(String),
) {
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    if let Some(min) = bound(min_key)
        && count < min
    {
        push(format!("has {count} {unit}, at least {min} required"));
    }
    if let Some(max) = bound(max_key)
        && count > max
    {
        push(format!("has {count} {unit}, at most {max} allowed"));
    }
}

fn check_fields(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    structural: bool,
    problems: &mut Vec<SchemaProblem>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let Some(child) = map.get(key) else { continue };
        let child_path = join(path, key);
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check(child_schema, child, &child_path, structural, problems);
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            check(additional, child, &child_path, structural, problems);
        } else if structural && !preserve && additional != Some(&Value::Bool(true)) {
            problems.push(SchemaProblem {
                field: child_path,
                message: "unknown field (the API server would drop it without a word)".to_owned(),
            });
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let present = map.get(required).is_some_and(|v| {
            !v.is_null()
                || properties
                    .and_then(|p| p.get(required))
                    .is_some_and(|s| flag(s, "nullable"))
        });
        if !present {
            problems.push(SchemaProblem {
                field: join(path, required),
                message: "required".to_owned(),
            });
        }
    }
}

fn check_combinators(schema: &Value, value: &Value, path: &str, problems: &mut Vec<SchemaProblem>) {
    let branches = |key: &str| -> Vec<Vec<SchemaProblem>> {
        schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|branch| {
                let mut found = Vec::new();
                check(branch, value, path, false, &mut found);
                found
            })
            .collect()
    };
    for found in branches("allOf") {
        problems.extend(found);
    }
    let one_of = branches("oneOf");
    let matching = one_of.iter().filter(|p| p.is_empty()).count();
    if !one_of.is_empty() && matching != 1 {
        problems.push(SchemaProblem {
            field: path.to_owned(),
            message: combinator_message(schema, "oneOf", matching),
        });
    }
    let any_of = branches("anyOf");
    if !any_of.is_empty() && any_of.iter().all(|p| !p.is_empty()) {
        problems.push(SchemaProblem {
            field: path.to_owned(),
            message: combinator_message(schema, "anyOf", 0),
        });
    }
    if let Some(not) = schema.get("not") {
        let mut found = Vec::new();
        check(not, value, path, false, &mut found);
        if found.is_empty() {
            problems.push(SchemaProblem {
                field: path.to_owned(),
                message: "matches a schema it must not match".to_owned(),
            });
        }
    }
}

/// "set exactly one of json, url" when the branches are `{required: [x]}`, else a count.
fn combinator_message(schema: &Value, key: &str, matching: usize) -> String {
    let branches = schema
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let single_required: Option<Vec<String>> = branches
        .iter()
        .map(|b| {
            let map = b.as_object()?;
            let required = map.get("required")?.as_array()?;
            match (map.len(), required.as_slice()) {
                (1, [Value::String(field)]) => Some(field.clone()),
                _ => None,
            }
        })
        .collect();
    match (key, single_required) {
        ("oneOf", Some(fields)) => format!("set exactly one of {}", fields.join(", ")),
        ("anyOf", Some(fields)) => format!("set at least one of {}", fields.join(", ")),
        ("oneOf", None) => format!(
            "must match exactly one of {} schemas, matches {matching}",
            branches.len()
        ),
        _ => format!("must match at least one of {} schemas", branches.len()),
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        return value.is_string() || is_integer(value);
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => is_integer(value),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(_) => false,
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// "a string", "an integer", ... for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) if is_integer(value) => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The type and, for scalars, the value (cut short).
fn describe(value: &Value) -> String {
    let mut out = type_name(value).to_owned();
    if matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        let text = value.to_string();
        let short: String = text.chars().take(60).collect();
        let _ = write!(
            out,
            " ({short}{})",
            if short.len() < text.len() { "…" } else { "" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {
                "type": "object",
                "required": ["name", "items"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                    "replicas": {"type": "integer", "minimum": 0.0, "maximum": 10.0},
                    "mode": {"type": "string", "enum": ["A", "B"]},
                    "maybe": {"type": "string", "nullable": true},
                    "size": {"x-kubernetes-int-or-string": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "items": {"type": "array", "maxItems": 2, "items": {
                        "type": "object",
                        "oneOf": [{"required": ["json"]}, {"required": ["url"]}],
                        "properties": {"json": {"type": "string", "nullable": true}, "url": {"type": "string"}},
                    }},
                },
            }},
        })
    }

    fn problems(object: Value) -> Vec<String> {
        check_object(&schema(), &object)
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn a_valid_object_has_no_problem() {
        let object = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {
            "name": "abc", "replicas": 3.0, "mode": "A", "maybe": null, "size": "1Gi",
            "labels": {"a": "b"}, "free": {"anything": [1]}, "items": [{"json": "{}"}, {"url": "u"}],
        }});
        assert_eq!(problems(object), Vec::<String>::new());
    }

    #[test]
    fn every_kind_of_problem_names_its_field() {
        let object = json!({"kind": "K", "spec": {
            "name": "ABCDEFG", "replicas": "two", "mode": "C", "size": true, "labels": {"a": 1},
            "typo": 1, "items": [{"json": "{}", "url": "u"}, {}, {"url": "u", "extra": 1}],
        }});
        assert_eq!(
            problems(object),
            [
                "spec.items: has 3 items, at most 2 allowed",
                "spec.items[0]: set exactly one of json, url",
                "spec.items[1]: set exactly one of json, url",
                "spec.items[2].extra: unknown field (the API server would drop it without a word)",
                "spec.labels.a: expected a string, got an integer (1)",
                "spec.mode: \"C\" is not one of the allowed values: \"A\", \"B\"",
                "spec.name: has 7 characters, at most 5 allowed",
                "spec.name: \"ABCDEFG\" does not match ^[a-z]+$",
                "spec.replicas: expected an integer, got a string (\"two\")",
                "spec.size: expected an integer or a string, got a boolean (true)",
                "spec.typo: unknown field (the API server would drop it without a word)",
            ]
        );
    }

    #[test]
    fn missing_required_fields_and_nulls() {
        assert_eq!(problems(json!({"kind": "K"})), ["spec: required"]);
        assert_eq!(
            problems(json!({"spec": {"name": null, "items": [], "replicas": 11, "mode": null}})),
            [
                "spec.mode: null is not a value here (the API server drops the field)",
                "spec.name: null is not a value here (the API server drops the field)",
                "spec.replicas: 11 is above the maximum 10",
                "spec.name: required",
            ]
        );
    }

    #[test]
    fn the_generated_crds_are_checkable() {
        for crd in stacksmith_api::crds::all() {
            let version = &crd.spec.versions[0];
            let schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref()),
            )
            .unwrap();
            assert!(schema["properties"]["spec"].is_object());
            // An empty object is missing its spec and nothing else.
            let found = check_object(&schema, &json!({"kind": crd.spec.names.kind}));
            assert_eq!(found.len(), 1, "{found:?}");
        }
    }
}

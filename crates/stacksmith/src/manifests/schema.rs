//! A structural-schema checker: an object against the `openAPIV3Schema` of a
//! CustomResourceDefinition, as the API server would judge it, plus what it would silently do.
//!
//! Checked: `type` (with `x-kubernetes-int-or-string` and `nullable`), `required`, `enum`,
//! `pattern`, `minLength`/`maxLength`, `minimum`/`maximum` (and their exclusive forms),
//! `minItems`/`maxItems`, `minProperties`/`maxProperties`, `oneOf`/`anyOf`/`allOf`/`not` (as
//! value validations), `properties`, `additionalProperties` and `items`; the uniqueness that
//! `x-kubernetes-list-type: set` (items) and `map` (the `x-kubernetes-list-map-keys`) demand; and
//! the CEL rules of `x-kubernetes-validations`. Reported as well, although the API server accepts
//! them: **unknown fields**, which it prunes without a word (unless
//! `x-kubernetes-preserve-unknown-fields`), and `null` in a field that is not nullable, which it
//! drops. Formats are not checked. Pure: no I/O.
//!
//! CEL rules: there is no CEL interpreter here. Each rule our CRDs carry has an equivalent Rust
//! check, found by the rule's exact text ([`rule_check`]); a test fails when a rule of the
//! generated CRDs has none. Transition rules (those that read `oldSelf`, e.g. `spec.customer` is
//! immutable) need the object as stored: [`check_update`] evaluates `self == oldSelf` against it;
//! [`check_object`], which has no stored object, skips them and [`transition_rules`] lists them so
//! that the command can say what it did not check.

use std::fmt::Write as _;

use regex::Regex;
use serde_json::{Map, Value};
use stacksmith_api::validation::bounds::RESOURCE_NAMES;
use stacksmith_api::validation::{cel, is_quota_resource_name};

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

/// How the messages of duplicates start (`manifests::check` recognises them by it).
pub const DUPLICATE: &str = "duplicate";

/// Checks a whole object (with `apiVersion`, `kind` and `metadata`) against a CRD version's
/// `openAPIV3Schema`, as on creation: transition rules are not evaluated.
pub fn check_object(schema: &Value, object: &Value) -> Vec<SchemaProblem> {
    check_update(schema, object, None)
}

/// Like [`check_object`], as an update of `old` (the object as stored): transition rules
/// (`self == oldSelf`) are evaluated where the old object has a value to compare with.
pub fn check_update(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    let Value::Object(map) = object else {
        problems.push(SchemaProblem {
            field: String::new(),
            message: format!("expected an object, got {}", describe(object)),
        });
        return problems;
    };
    let body = |map: &Map<String, Value>| -> Value {
        Value::Object(
            map.iter()
                .filter(|(k, _)| !OBJECT_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    let old = old.and_then(Value::as_object).map(body);
    check_with_old(schema, &body(map), old.as_ref(), "", true, &mut problems);
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
    check_with_old(schema, value, None, path, structural, problems);
}

/// [`check`] with the value the same field had in the stored object, when known.
fn check_with_old(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    structural: bool,
    problems: &mut Vec<SchemaProblem>,
) {
    if !check_value(schema, value, structural, &mut pusher(path, problems)) {
        return;
    }
    match value {
        Value::Array(items) => check_array(schema, items, old, path, structural, problems),
        Value::Object(map) => check_map(schema, map, old, path, structural, problems),
        _ => {}
    }
    check_combinators(schema, value, path, problems);
    check_rules(schema, value, old, path, problems);
}

/// `null`, the type, `enum` and the bounds of a string or number. False when the value is null
/// or of another type: there is nothing more to check.
fn check_value(
    schema: &Value,
    value: &Value,
    structural: bool,
    push: &mut impl FnMut(String),
) -> bool {
    if value.is_null() {
        if !flag(schema, "nullable") && structural {
            push("null is not a value here (the API server drops the field)".to_owned());
        }
        return false;
    }
    if !type_matches(schema, value) {
        push(format!(
            "expected {}, got {}",
            expected_type(schema),
            describe(value)
        ));
        return false;
    }
    check_enum(schema, value, push);
    match value {
        Value::String(s) => check_string(schema, s, push),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or_default(), push),
        _ => {}
    }
    true
}

/// A function that records a problem of the field at `path`.
fn pusher<'a>(path: &'a str, problems: &'a mut Vec<SchemaProblem>) -> impl FnMut(String) + 'a {
    move |message: String| {
        problems.push(SchemaProblem {
            field: path.to_owned(),
            message,
        })
    }
}

/// What the schema's type asks for, for messages ("an integer", "an object", ...).
fn expected_type(schema: &Value) -> &'static str {
    if flag(schema, "x-kubernetes-int-or-string") {
        return "an integer or a string";
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => "an object",
        Some("array") => "an array",
        Some("string") => "a string",
        Some("integer") => "an integer",
        Some("number") => "a number",
        Some("boolean") => "a boolean",
        _ => "something else",
    }
}

fn check_enum(schema: &Value, value: &Value, push: &mut impl FnMut(String)) {
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
}

/// An array: its item count, each item (with the stored item it correlates with) and the
/// uniqueness its list type demands.
fn check_array(
    schema: &Value,
    items: &[Value],
    old: Option<&Value>,
    path: &str,
    structural: bool,
    problems: &mut Vec<SchemaProblem>,
) {
    check_count(
        schema,
        "minItems",
        "maxItems",
        items.len(),
        "items",
        &mut pusher(path, problems),
    );
    let old_items = old.and_then(Value::as_array);
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            let old_item = old_items.and_then(|o| correlated(schema, item, o));
            check_with_old(
                item_schema,
                item,
                old_item,
                &format!("{path}[{i}]"),
                structural,
                problems,
            );
        }
    }
    check_list_type(schema, items, path, problems);
}

/// An object: its entry count and its fields.
fn check_map(
    schema: &Value,
    map: &Map<String, Value>,
    old: Option<&Value>,
    path: &str,
    structural: bool,
    problems: &mut Vec<SchemaProblem>,
) {
    check_count(
        schema,
        "minProperties",
        "maxProperties",
        map.len(),
        "entries",
        &mut pusher(path, problems),
    );
    check_fields(schema, map, old, path, structural, problems);
}

/// The keys of a list map (`x-kubernetes-list-map-keys`), when the list is one.
fn list_map_keys(schema: &Value) -> Option<Vec<&str>> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    Some(
        schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect(),
    )
}

/// The key of one entry of a list map: the values of the key fields, or their defaults.
fn entry_key(schema: &Value, keys: &[&str], item: &Value) -> Vec<Value> {
    let item_schema = schema.get("items");
    keys.iter()
        .map(|key| {
            item.get(*key)
                .filter(|v| !v.is_null())
                .or_else(|| {
                    item_schema
                        .and_then(|s| s.get("properties"))
                        .and_then(|p| p.get(*key))
                        .and_then(|p| p.get("default"))
                })
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// The entry of the stored list that `item` updates: the one with the same key in a list map
/// (the API server correlates those, and only those, for transition rules).
fn correlated<'o>(schema: &Value, item: &Value, old: &'o [Value]) -> Option<&'o Value> {
    let keys = list_map_keys(schema)?;
    let key = entry_key(schema, &keys, item);
    old.iter().find(|o| entry_key(schema, &keys, o) == key)
}

/// `x-kubernetes-list-type`: the items of a `set`, and the keys of a `map`, are unique. Each
/// repeat is reported at its index, as the API server does (`spec.roles[1]: Duplicate value`).
fn check_list_type(schema: &Value, items: &[Value], path: &str, problems: &mut Vec<SchemaProblem>) {
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys = list_map_keys(schema);
    let identity = |item: &Value| -> Option<Value> {
        match (list_type, &keys) {
            (Some("set"), _) => Some(item.clone()),
            (Some("map"), Some(keys)) => Some(Value::Array(entry_key(schema, keys, item))),
            _ => None,
        }
    };
    let mut seen: Vec<(Value, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = identity(item) else {
            return;
        };
        match seen.iter().find(|(other, _)| *other == id) {
            Some((_, first)) => {
                let what = match &keys {
                    Some(keys) => keys
                        .iter()
                        .zip(id.as_array().into_iter().flatten())
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => format!("value {id}"),
                };
                let rule = match &keys {
                    Some(keys) => format!("{} must be unique in the list", keys.join(", ")),
                    None => "the items must be unique".to_owned(),
                };
                problems.push(SchemaProblem {
                    field: format!("{path}[{i}]"),
                    message: format!("{DUPLICATE} {what}, already at [{first}]: {rule}"),
                });
            }
            None => seen.push((id, i)),
        }
    }
}

/// The Rust check equivalent to a CEL rule of our CRDs (a non-transition rule), by its text:
/// whether `value`, the value the rule is on, passes. `None` for a rule this module does not
/// know.
pub fn rule_check(rule: &str) -> Option<fn(&Value) -> bool> {
    fn only_cpu_and_memory(value: &Value) -> bool {
        value
            .as_object()
            .is_none_or(|map| map.keys().all(|k| RESOURCE_NAMES.contains(&k.as_str())))
    }
    fn prometheus_needs_url_template(value: &Value) -> bool {
        let serves_prometheus = value
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().any(|r| r == "prometheus"));
        let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
        !serves_prometheus || has("prometheusUrlTemplate") || has("prometheusExposure")
    }
    fn one_prometheus_reach(value: &Value) -> bool {
        let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
        !(has("prometheusUrlTemplate") && has("prometheusExposure"))
    }
    fn load_balancer_needs_host(value: &Value) -> bool {
        value.get("type").and_then(Value::as_str) != Some("LoadBalancer")
            || value.get("hostTemplate").is_some_and(|v| !v.is_null())
    }
    fn one_grafana_source(value: &Value) -> bool {
        let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
        has("instanceSelector") != has("dedicatedGrafana")
    }
    fn no_empty_selector(value: &Value) -> bool {
        let non_empty = |selector: &Value, key: &str| {
            selector.get(key).is_some_and(|v| match v {
                Value::Object(map) => !map.is_empty(),
                Value::Array(items) => !items.is_empty(),
                _ => false,
            })
        };
        value.as_array().is_none_or(|selectors| {
            selectors
                .iter()
                .all(|s| non_empty(s, "matchLabels") || non_empty(s, "matchExpressions"))
        })
    }
    fn quota_resource_names(value: &Value) -> bool {
        value
            .as_object()
            .is_none_or(|map| map.keys().all(|k| is_quota_resource_name(k)))
    }
    match rule {
        cel::ONLY_CPU_AND_MEMORY => Some(only_cpu_and_memory),
        cel::QUOTA_RESOURCE_NAMES => Some(quota_resource_names),
        cel::PROMETHEUS_NEEDS_URL_TEMPLATE => Some(prometheus_needs_url_template),
        cel::ONE_PROMETHEUS_REACH => Some(one_prometheus_reach),
        cel::LOAD_BALANCER_NEEDS_HOST => Some(load_balancer_needs_host),
        cel::ONE_GRAFANA_SOURCE => Some(one_grafana_source),
        cel::NO_EMPTY_SELECTOR => Some(no_empty_selector),
        _ => None,
    }
}

/// Whether a CEL rule is a transition rule (compares with the stored object).
pub fn is_transition_rule(rule: &str) -> bool {
    rule.contains("oldSelf")
}

/// `x-kubernetes-validations` on `value`: the known rules by their Rust equivalent, the
/// transition rule `self == oldSelf` against the stored value when there is one.
fn check_rules(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    problems: &mut Vec<SchemaProblem>,
) {
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        let passes = if is_transition_rule(text) {
            match (text, old) {
                (cel::IMMUTABLE, Some(old)) => value == old,
                // Unknown transition rules, and creation: nothing to compare with.
                _ => true,
            }
        } else {
            rule_check(text).is_none_or(|check| check(value))
        };
        if passes {
            continue;
        }
        let field = match rule.get("fieldPath").and_then(Value::as_str) {
            Some(relative) => format!("{path}{relative}"),
            None => path.to_owned(),
        };
        let message = rule
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("failed rule: {text}"), str::to_owned);
        problems.push(SchemaProblem { field, message });
    }
}

/// A transition rule of a schema: where it is and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRule {
    /// The field, e.g. `spec.customer` (`[]` for list items).
    pub field: String,
    /// The rule's message (or its text when it has none).
    pub message: String,
}

/// Every transition rule of `schema` (the checks [`check_object`] cannot make).
pub fn transition_rules(schema: &Value) -> Vec<TransitionRule> {
    let mut found = Vec::new();
    collect_rules(schema, "", &mut |path, rule| {
        if let Some(text) = rule.get("rule").and_then(Value::as_str)
            && is_transition_rule(text)
        {
            found.push(TransitionRule {
                field: path.to_owned(),
                message: rule
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(text)
                    .to_owned(),
            });
        }
    });
    found
}

/// Calls `each` with the path and every rule of `x-kubernetes-validations` in `schema`.
pub fn collect_rules(schema: &Value, path: &str, each: &mut impl FnMut(&str, &Value)) {
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        each(path, rule);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            collect_rules(child, &join(path, key), each);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_rules(items, &format!("{path}[]"), each);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        collect_rules(values, &format!("{path}{{}}"), each);
    }
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
    old: Option<&Value>,
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
        let old_child = old.and_then(|o| o.get(key.as_str()));
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check_with_old(
                child_schema,
                child,
                old_child,
                &child_path,
                structural,
                problems,
            );
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            check_with_old(
                additional,
                child,
                old_child,
                &child_path,
                structural,
                problems,
            );
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

    fn crd_schema(kind: &str) -> Value {
        let crd = stacksmith_api::crds::all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap();
        serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref()),
        )
        .unwrap()
    }

    fn lines(found: Vec<SchemaProblem>) -> Vec<String> {
        found
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn every_cel_rule_of_our_crds_has_an_offline_check() {
        let mut rules = Vec::new();
        for kind in ["CustomerStack", "MemberCluster"] {
            collect_rules(&crd_schema(kind), "", &mut |path, rule| {
                rules.push((path.to_owned(), rule["rule"].as_str().unwrap().to_owned()));
            });
        }
        assert!(rules.len() >= 4, "{rules:?}");
        for (path, rule) in &rules {
            let known = if is_transition_rule(rule) {
                rule == cel::IMMUTABLE
            } else {
                rule_check(rule).is_some()
            };
            assert!(
                known,
                "{path}: the CEL rule {rule:?} has no Rust equivalent in manifests::schema::rule_check"
            );
        }
        assert_eq!(
            transition_rules(&crd_schema("CustomerStack")),
            [TransitionRule {
                field: "spec.customer".into(),
                message: cel::CUSTOMER_IMMUTABLE_MESSAGE.into(),
            }]
        );
    }

    #[test]
    fn sets_and_list_maps_are_unique_and_maps_bounded() {
        let schema = json!({"type": "object", "properties": {
            "roles": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "entries": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "port"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "port": {"type": "integer", "default": 80}}}},
            "labels": {"type": "object", "maxProperties": 1,
                "additionalProperties": {"type": "string"}},
        }});
        let mut found = Vec::new();
        check(
            &schema,
            &json!({
                "roles": ["a", "b", "a", "a"],
                "entries": [{"name": "x"}, {"name": "x", "port": 81}, {"name": "x", "port": 80}],
                "labels": {"a": "1", "b": "2"},
            }),
            "spec",
            true,
            &mut found,
        );
        assert_eq!(
            lines(found),
            [
                "spec.entries[2]: duplicate name \"x\", port 80, already at [0]: name, port must be unique in the list",
                "spec.labels: has 2 entries, at most 1 allowed",
                "spec.roles[2]: duplicate value \"a\", already at [0]: the items must be unique",
                "spec.roles[3]: duplicate value \"a\", already at [0]: the items must be unique",
            ]
        );
    }

    #[test]
    fn cel_rules_of_the_member_cluster_and_the_stack_are_checked_offline() {
        let member =
            |spec: Value| json!({"kind": "MemberCluster", "metadata": {"name": "m"}, "spec": spec});
        let secret = json!({"namespace": "s", "name": "k"});
        assert_eq!(
            lines(check_object(
                &crd_schema("MemberCluster"),
                &member(
                    json!({"kubeconfigSecretRef": secret, "roles": ["grafana", "prometheus", "grafana"]})
                )
            )),
            [
                "spec.roles: has 3 items, at most 2 allowed",
                "spec.roles[2]: duplicate value \"grafana\", already at [0]: the items must be unique",
                format!(
                    "spec.prometheusUrlTemplate: {}",
                    cel::PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE
                )
                .as_str(),
            ]
        );
        assert_eq!(
            lines(check_object(
                &crd_schema("MemberCluster"),
                &member(json!({"kubeconfigSecretRef": secret, "roles": ["grafana"]}))
            )),
            Vec::<String>::new()
        );
        // The data path: an exposure instead of the template, never both; a load balancer
        // needs its host.
        let reach = |spec: Value| {
            let mut full = json!({"kubeconfigSecretRef": secret, "roles": ["prometheus"]});
            if let (Value::Object(full), Value::Object(spec)) = (&mut full, spec) {
                full.extend(spec);
            }
            lines(check_object(&crd_schema("MemberCluster"), &member(full)))
        };
        assert_eq!(
            reach(json!({"prometheusExposure": {"type": "ClusterIP"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            reach(json!({"prometheusExposure": {"type": "ClusterIP"},
                "prometheusUrlTemplate": "http://{name}:9090"})),
            [format!("spec: {}", cel::ONE_PROMETHEUS_REACH_MESSAGE)]
        );
        assert_eq!(
            reach(json!({"prometheusExposure": {"type": "LoadBalancer"}})),
            [format!(
                "spec.prometheusExposure: {}",
                cel::LOAD_BALANCER_NEEDS_HOST_MESSAGE
            )]
        );
        // The tenant quota: quota names in `hard`, cpu and memory in the container defaults.
        let quota = |tenant_quota: Value| {
            lines(check_object(
                &crd_schema("MemberCluster"),
                &member(json!({"kubeconfigSecretRef": secret, "roles": ["grafana"],
                    "tenantQuota": tenant_quota})),
            ))
        };
        assert_eq!(
            quota(json!({
                "hard": {"pods": "4", "requests.memory": "2Gi", "count/deployments.apps": 2,
                    "gold.storageclass.storage.k8s.io/requests.storage": "1Ti"},
                "containerDefaults": {"defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "default": {"memory": "256Mi"}, "max": {"memory": "2Gi"},
                    "min": {"cpu": "10m"}}})),
            Vec::<String>::new()
        );
        assert_eq!(
            quota(json!({
                "hard": {"pods": "4", "requests.gpu": "1"},
                "containerDefaults": {"max": {"memory": "2Gi", "ephemeral-storage": "1Gi"}}})),
            [
                format!(
                    "spec.tenantQuota.containerDefaults.max: {}",
                    cel::ONLY_CPU_AND_MEMORY_MESSAGE
                ),
                format!(
                    "spec.tenantQuota.hard: {}",
                    cel::QUOTA_RESOURCE_NAMES_MESSAGE
                ),
            ]
        );
        let many: serde_json::Map<String, Value> = (0..33)
            .map(|i| (format!("count/things{i}"), json!("1")))
            .collect();
        assert_eq!(
            quota(json!({"hard": many})),
            ["spec.tenantQuota.hard: has 33 entries, at most 32 allowed"]
        );

        let stack = |customer: &str, metrics: Value| {
            json!({"kind": "CustomerStack", "metadata": {"name": "s"}, "spec": {
                "customer": customer, "metrics": metrics,
                "dashboards": {"cluster": "g", "instanceSelector": {}}}})
        };
        let metrics = json!({"cluster": "p",
            "resources": {"requests": {"cpu": "1", "gpu": "1"}, "limits": {"memory": "1Gi"}},
            "scrape": [
                {"name": "a", "selector": {}, "endpoints": [{"port": "m"}], "namespaces": ["ok", "Not_OK"]},
                {"name": "a", "selector": {}, "endpoints": [{"port": "m"}]}]});
        let schema = crd_schema("CustomerStack");
        assert_eq!(
            lines(check_object(&schema, &stack("acme", metrics.clone()))),
            [
                format!(
                    "spec.metrics.resources.requests: {}",
                    cel::ONLY_CPU_AND_MEMORY_MESSAGE
                )
                .as_str(),
                "spec.metrics.scrape[0].namespaces[1]: \"Not_OK\" does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                "spec.metrics.scrape[1]: duplicate name \"a\", already at [0]: name must be unique in the list",
            ]
        );
        // The customer is immutable: checked only against a stored object.
        let stored = stack("acme", json!({"cluster": "p"}));
        let changed = stack("globex", json!({"cluster": "p"}));
        assert_eq!(lines(check_object(&schema, &changed)), Vec::<String>::new());
        assert_eq!(
            lines(check_update(&schema, &changed, Some(&stored))),
            [format!(
                "spec.customer: {}",
                cel::CUSTOMER_IMMUTABLE_MESSAGE
            )]
        );
        assert_eq!(
            lines(check_update(&schema, &stored, Some(&stored))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn exactly_one_grafana_source_is_checked_offline() {
        let stack = |dashboards: Value| {
            json!({"kind": "CustomerStack", "metadata": {"name": "s"}, "spec": {
                "customer": "acme", "metrics": {"cluster": "p"}, "dashboards": dashboards}})
        };
        let schema = crd_schema("CustomerStack");
        let refused = format!("spec.dashboards: {}", cel::ONE_GRAFANA_SOURCE_MESSAGE);
        let dedicated = json!({"version": "12.1.0", "ingressHost": "acme.grafana.example.com"});
        for (dashboards, expected) in [
            (json!({"cluster": "g", "instanceSelector": {}}), vec![]),
            (
                json!({"cluster": "g", "dedicatedGrafana": dedicated.clone()}),
                vec![],
            ),
            (json!({"cluster": "g"}), vec![refused.clone()]),
            (
                json!({"cluster": "g", "instanceSelector": {}, "dedicatedGrafana": dedicated}),
                vec![refused.clone()],
            ),
            (
                json!({"cluster": "g", "instanceSelector": null}),
                vec![refused.clone()],
            ),
        ] {
            assert_eq!(
                lines(check_object(&schema, &stack(dashboards.clone()))),
                expected,
                "{dashboards}"
            );
        }
        // The version is pinned; the host is a DNS name.
        let found = lines(check_object(
            &schema,
            &stack(json!({"cluster": "g", "dedicatedGrafana":
                {"version": "latest", "ingressHost": "Not A Host"}})),
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        for field in ["ingressHost", "version"] {
            let prefix = format!("spec.dashboards.dedicatedGrafana.{field}: ");
            assert!(found.iter().any(|f| f.starts_with(&prefix)), "{found:?}");
        }
        for version in ["12.1.0", "11.6.3-ubuntu", "12.0.2-security-01", "10.4.19"] {
            let found = lines(check_object(
                &schema,
                &stack(json!({"cluster": "g", "dedicatedGrafana": {"version": version}})),
            ));
            assert_eq!(found, Vec::<String>::new(), "{version}");
        }
        for version in [
            "12",
            "12.1",
            "v12.1.0",
            "12.1.0-",
            "grafana/grafana:12.1.0",
            "12.1.0@sha256:ab",
        ] {
            let found = lines(check_object(
                &schema,
                &stack(json!({"cluster": "g", "dedicatedGrafana": {"version": version}})),
            ));
            assert!(
                found
                    .iter()
                    .any(|f| f.starts_with("spec.dashboards.dedicatedGrafana.version: ")),
                "{version}: {found:?}"
            );
        }
    }
}

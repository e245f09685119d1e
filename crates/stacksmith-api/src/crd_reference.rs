//! The CRD reference (`docs/crd-reference.md`), generated from the CRDs' OpenAPI v3 schemas.
//!
//! Walks the `openAPIV3Schema` of every version of every CRD ([`crate::crds::all`]) and writes one
//! Markdown table row per field: its path, type, whether it is required, its default, its
//! constraints (enum, pattern, lengths, ranges, item counts, `oneOf`, nullability) and its
//! description. The committed file is checked against this output by a test, so the reference
//! cannot drift from the types.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::{Map, Value};

/// Descriptions longer than this (in characters) are cut to their first paragraph.
const LONG_DESCRIPTION: usize = 400;

/// The whole reference as Markdown.
pub fn render() -> Result<String, serde_json::Error> {
    let crds = crate::crds::all();
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from the CRD schemas by `stacksmith crds --reference`: do not edit by hand. -->\n",
    );
    out.push_str("# CRD reference\n\n");
    out.push_str(
        "Every field of the stacksmith custom resources, generated from the OpenAPI v3 schemas of \
         the CRDs (the ones `stacksmith crds` prints and `charts/stacksmith/crds/` holds), so it \
         says exactly what the hub API server enforces. What the fields mean for the operator, \
         with examples: [api.md](api.md).\n\n",
    );
    out.push_str(
        "Paths: `[]` is a list element, `{}` a map value. *Required* means the field must be set \
         when its parent is. Defaults are applied by the hub API server when the field is absent. \
         Constraints are checked by the hub API server (`422 Unprocessable Entity`).\n\n",
    );
    for crd in &crds {
        let _ = writeln!(
            out,
            "- [{}](#{})",
            crd.spec.names.kind,
            anchor(&crd.spec.names.kind)
        );
    }
    for crd in &crds {
        render_crd(&mut out, crd)?;
    }
    Ok(out)
}

/// The section of one CRD: its summary table, then per version its fields and printer columns.
fn render_crd(out: &mut String, crd: &CustomResourceDefinition) -> Result<(), serde_json::Error> {
    let _ = writeln!(out, "\n## {}\n", crd.spec.names.kind);
    render_summary(out, crd);
    for version in &crd.spec.versions {
        let api_version = format!("{}/{}", crd.spec.group, version.name);
        if crd.spec.versions.len() > 1 {
            let _ = writeln!(out, "\n### {api_version}");
        }
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        if let Some(schema) = schema {
            render_fields(
                out,
                &serde_json::to_value(schema)?,
                &api_version,
                &crd.spec.names.kind,
            );
        }
        if let Some(columns) = version
            .additional_printer_columns
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            render_printer_columns(out, columns, &api_version, &crd.spec.names.kind);
        }
    }
    Ok(())
}

/// The two-column table of a CRD's name, group, scope, names and versions.
fn render_summary(out: &mut String, crd: &CustomResourceDefinition) {
    let names = &crd.spec.names;
    out.push_str("| | |\n|---|---|\n");
    let _ = writeln!(
        out,
        "| CRD | `{}` |",
        crd.metadata.name.as_deref().unwrap_or_default()
    );
    let _ = writeln!(out, "| group | `{}` |", crd.spec.group);
    let _ = writeln!(out, "| scope | {} |", crd.spec.scope);
    let _ = writeln!(out, "| plural | `{}` |", names.plural);
    if let Some(singular) = &names.singular {
        let _ = writeln!(out, "| singular | `{singular}` |");
    }
    if let Some(short) = names.short_names.as_deref().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "| short names | {} |", code_list(short));
    }
    if let Some(categories) = names.categories.as_deref().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "| categories | {} |", code_list(categories));
    }
    for version in &crd.spec.versions {
        let _ = writeln!(
            out,
            "| version `{}` | {} |",
            version.name,
            version_flags(version).join(", ")
        );
    }
}

/// What a version is: `served`, `stored`, and which subresources it has.
fn version_flags(version: &CustomResourceDefinitionVersion) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if version.served {
        flags.push("served");
    }
    if version.storage {
        flags.push("stored");
    }
    let subresources = version.subresources.as_ref();
    if subresources.is_some_and(|s| s.status.is_some()) {
        flags.push("`status` subresource");
    }
    if subresources.is_some_and(|s| s.scale.is_some()) {
        flags.push("`scale` subresource");
    }
    flags
}

/// The schema's description, then the table of its fields, one row per field.
fn render_fields(out: &mut String, schema: &Value, api_version: &str, kind: &str) {
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "\n{}", paragraphs(description));
    }
    let _ = writeln!(out, "\n### Fields of `{api_version}` `{kind}`\n");
    out.push_str("| field | type | required | default | constraints | description |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    let mut rows = Vec::new();
    walk_properties(schema, "", &mut rows);
    for row in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.path,
            cell(&row.type_),
            if row.required { "yes" } else { "" },
            cell(&row.default.map(|d| code(&d)).unwrap_or_default()),
            cell(&row.constraints.join("; ")),
            cell(&row.description)
        );
    }
}

/// The table of a version's printer columns.
fn render_printer_columns(
    out: &mut String,
    columns: &[CustomResourceColumnDefinition],
    api_version: &str,
    kind: &str,
) {
    let _ = writeln!(out, "\n### Printer columns of `{api_version}` `{kind}`\n");
    out.push_str("| column | type | JSON path | description |\n|---|---|---|---|\n");
    for column in columns {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            column.name.to_uppercase(),
            column.type_,
            cell(&code(&column.json_path)),
            cell(column.description.as_deref().unwrap_or_default())
        );
    }
}

/// One field of a schema.
struct Row {
    path: String,
    type_: String,
    required: bool,
    default: Option<String>,
    constraints: Vec<String>,
    description: String,
}

/// Adds a row for each property of `schema` (an object schema), then for their own fields.
fn walk_properties(schema: &Value, prefix: &str, rows: &mut Vec<Row>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut keys: Vec<&String> = properties.keys().collect();
    keys.sort();
    for key in keys {
        let Some(field) = properties.get(key.as_str()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        walk_field(field, path, required.contains(&key.as_str()), rows);
    }
}

/// Adds the row of one field, then the rows of what it contains (object properties, the
/// properties of list elements and map values that are objects).
fn walk_field(field: &Value, path: String, required: bool, rows: &mut Vec<Row>) {
    rows.push(Row {
        type_: type_name(field),
        required,
        default: field.get("default").map(default_text),
        constraints: constraints(field),
        description: field
            .get("description")
            .and_then(Value::as_str)
            .map(paragraphs)
            .unwrap_or_default(),
        path: path.clone(),
    });
    walk_properties(field, &path, rows);
    if let Some(items) = field.get("items").filter(|i| i.is_object()) {
        walk_contained(items, format!("{path}[]"), rows);
    }
    if let Some(values) = field.get("additionalProperties").filter(|v| v.is_object()) {
        walk_contained(values, format!("{path}{{}}"), rows);
    }
}

/// List elements and map values get their own row only when they are objects with fields or
/// lists of such; otherwise the parent's type and constraints already say everything.
fn walk_contained(schema: &Value, path: String, rows: &mut Vec<Row>) {
    let nested = schema.get("properties").is_some()
        || schema
            .get("items")
            .is_some_and(|i| i.get("properties").is_some());
    if nested {
        walk_field(schema, path, false, rows);
    }
}

fn type_name(schema: &Value) -> String {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return "int-or-string".to_owned();
    }
    let base = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    match base {
        "array" => format!(
            "[]{}",
            schema
                .get("items")
                .map(type_name)
                .unwrap_or_else(|| "any".into())
        ),
        "object" => match schema.get("additionalProperties") {
            Some(values) if values.is_object() => format!("map[string]{}", type_name(values)),
            Some(Value::Bool(true)) => "map[string]any".to_owned(),
            _ => "object".to_owned(),
        },
        _ => match schema.get("format").and_then(Value::as_str) {
            Some(format) => format!("{base} ({format})"),
            None => base.to_owned(),
        },
    }
}

fn constraints(schema: &Value) -> Vec<String> {
    let mut out = own_constraints(schema);
    // The constraints of scalar list elements and map values belong to the field's row.
    for (key, what) in [
        ("items", "each item"),
        ("additionalProperties", "each value"),
    ] {
        if let Some(inner) = schema.get(key).filter(|i| i.is_object())
            && inner.get("properties").is_none()
        {
            let inner = own_constraints(inner);
            if !inner.is_empty() {
                out.push(format!("{what}: {}", inner.join(", ")));
            }
        }
    }
    out
}

/// The constraints a schema node states itself, one line each, in a fixed order.
fn own_constraints(schema: &Value) -> Vec<String> {
    let mut out = value_constraints(schema);
    out.extend(list_type_constraint(schema));
    out.extend(cel_rules(schema));
    for (key, what) in [("oneOf", "exactly one of"), ("anyOf", "at least one of")] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            out.push(alternatives_text(what, key, alternatives));
        }
    }
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        out.push("nullable".to_owned());
    }
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.push("unknown fields kept".to_owned());
    }
    out
}

/// Enum, pattern, lengths, numeric range, item and entry counts, unique items.
fn value_constraints(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| code(&scalar_text(v))).collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        out.push(format!("pattern {}", code(pattern)));
    }
    if let Some(range) = range(schema, "minLength", "maxLength") {
        out.push(format!("length {range}"));
    }
    if let Some(range) = number_range(schema) {
        out.push(format!("value {range}"));
    }
    if let Some(range) = range(schema, "minItems", "maxItems") {
        out.push(format!("items {range}"));
    }
    if let Some(range) = range(schema, "minProperties", "maxProperties") {
        out.push(format!("entries {range}"));
    }
    if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        out.push("unique items".to_owned());
    }
    out
}

/// `minimum`/`maximum`, saying which bound is excluded.
fn number_range(schema: &Value) -> Option<String> {
    range(schema, "minimum", "maximum").map(|range| {
        let exclusive = |key| schema.get(key).and_then(Value::as_bool) == Some(true);
        match (exclusive("exclusiveMinimum"), exclusive("exclusiveMaximum")) {
            (false, false) => range,
            (min, max) => format!(
                "{range} ({} excluded)",
                match (min, max) {
                    (true, true) => "both bounds",
                    (true, false) => "minimum",
                    _ => "maximum",
                }
            ),
        }
    })
}

/// `x-kubernetes-list-type` `set` or `map` (with its keys).
fn list_type_constraint(schema: &Value) -> Option<String> {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Some("unique items (list type `set`)".to_owned()),
        Some("map") => {
            let keys: Vec<String> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(code)
                .collect();
            Some(format!(
                "unique {} (list map: server-side apply merges items by {})",
                keys.join(" + "),
                keys.join(" + ")
            ))
        }
        _ => None,
    }
}

/// Every `x-kubernetes-validations` rule: `CEL <rule> (reported at <field>): <message>`.
fn cel_rules(schema: &Value) -> Vec<String> {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|rule| {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let mut line = format!("CEL {}", code(text));
            if let Some(field) = rule.get("fieldPath").and_then(Value::as_str) {
                let _ = write!(line, " (reported at {})", code(field));
            }
            if let Some(message) = rule.get("message").and_then(Value::as_str) {
                let _ = write!(line, ": {message}");
            }
            line
        })
        .collect()
}

/// `oneOf`/`anyOf` whose alternatives each only require fields read as "exactly one of `a`,
/// `b` is set"; anything else is quoted as JSON.
fn alternatives_text(what: &str, key: &str, alternatives: &[Value]) -> String {
    let required_only: Option<Vec<String>> = alternatives
        .iter()
        .map(|alternative| {
            let object = alternative.as_object()?;
            let required = object.get("required")?.as_array()?;
            (object.len() == 1).then(|| {
                required
                    .iter()
                    .filter_map(Value::as_str)
                    .map(code)
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
        })
        .collect();
    match required_only {
        Some(sets) => format!("{what} {} is set (`{key}`)", sets.join(", ")),
        None => format!(
            "`{key}`: {}",
            code(&Value::Array(alternatives.to_vec()).to_string())
        ),
    }
}

/// `1–63`, `≥ 1`, `≤ 63`, or `1` when both bounds are equal.
fn range(schema: &Value, min_key: &str, max_key: &str) -> Option<String> {
    let number = |key| schema.get(key).map(scalar_text);
    match (number(min_key), number(max_key)) {
        (Some(min), Some(max)) if min == max => Some(min),
        (Some(min), Some(max)) => Some(format!("{min}–{max}")),
        (Some(min), None) => Some(format!("≥ {min}")),
        (None, Some(max)) => Some(format!("≤ {max}")),
        (None, None) => None,
    }
}

/// A string as itself, a whole number without `.0`, anything else as JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn default_text(value: &Value) -> String {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => scalar_text(value),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        other => compact_json(other),
    }
}

/// JSON without quotes around simple keys, e.g. `{isDefault: false}`, as YAML flow style.
fn compact_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = sorted(map)
                .into_iter()
                .map(|(k, v)| format!("{k}: {}", compact_json(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(compact_json).collect();
            format!("[{}]", items.join(", "))
        }
        other => scalar_text(other),
    }
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A description on one line: paragraphs joined; a long one cut to its first paragraph.
fn paragraphs(description: &str) -> String {
    let paragraphs: Vec<String> = description
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let joined = paragraphs.join(" ");
    if joined.chars().count() > LONG_DESCRIPTION && paragraphs.len() > 1 {
        format!("{} …", paragraphs[0])
    } else {
        joined
    }
}

/// Text for a table cell: `|` escaped (also inside code spans, as GitHub requires), no newline.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// An inline code span that holds any text (a longer fence when the text has backticks). Not
/// escaped for a table: [`cell`] does that.
fn code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

fn code_list(items: &[String]) -> String {
    items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
}

/// The GitHub anchor of a heading made of letters only.
fn anchor(heading: &str) -> String {
    heading.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_row_says_type_required_default_and_constraints() {
        let schema = json!({
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["roles"],
                    "properties": {
                        "roles": {"type": "array", "minItems": 1, "maxItems": 2,
                                  "items": {"type": "string", "enum": ["a", "b"]}},
                        "timeout": {"type": "integer", "format": "uint32", "default": 10,
                                    "minimum": 1.0, "maximum": 300.0,
                                    "description": "Seconds.\n\nPer request."},
                        "pattern": {"type": "string", "pattern": "^(0|1)$", "nullable": true},
                    }
                }
            }
        });
        let mut rows = Vec::new();
        walk_properties(&schema, "", &mut rows);
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec", "spec.pattern", "spec.roles", "spec.timeout"]
        );
        let roles = &rows[2];
        assert_eq!(roles.type_, "[]string");
        assert!(roles.required);
        assert_eq!(
            roles.constraints,
            ["items 1–2", "each item: one of `a`, `b`"]
        );
        let timeout = &rows[3];
        assert_eq!(timeout.type_, "integer (uint32)");
        assert!(!timeout.required);
        assert_eq!(timeout.default.as_deref(), Some("10"));
        assert_eq!(timeout.constraints, ["value 1–300"]);
        assert_eq!(timeout.description, "Seconds. Per request.");
        assert_eq!(
            cell(&rows[1].constraints.join("; ")),
            "pattern `^(0\\|1)$`; nullable"
        );
    }

    #[test]
    fn one_of_required_fields_reads_as_exactly_one() {
        let schema = json!({"oneOf": [{"required": ["json"]}, {"required": ["url"]}]});
        assert_eq!(
            own_constraints(&schema),
            ["exactly one of `json`, `url` is set (`oneOf`)"]
        );
    }

    #[test]
    fn list_elements_with_fields_get_their_own_rows() {
        let schema = json!({"properties": {"scrape": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}}}}});
        let mut rows = Vec::new();
        walk_properties(&schema, "", &mut rows);
        let paths: Vec<(&str, bool)> = rows.iter().map(|r| (r.path.as_str(), r.required)).collect();
        assert_eq!(
            paths,
            [
                ("scrape", false),
                ("scrape[]", false),
                ("scrape[].name", true)
            ]
        );
        assert_eq!(rows[0].type_, "[]object");
    }

    #[test]
    fn the_reference_covers_every_field_of_every_crd() {
        let text = render().unwrap();
        for needle in [
            "## MemberCluster",
            "## CustomerStack",
            "## TenantPolicy",
            "an empty selector selects every Grafana instance",
            "| `spec.kubeconfigSecretRef.key` | string |  | `kubeconfig` |",
            "| `spec.deletionPolicy` | string |  | `Delete` | one of `Delete`, `Orphan`",
            "`spec.dashboards.dashboards[].url`",
            "exactly one of `json`, `url`, `grafanaCom`, `configMapRef` is set (`oneOf`)",
            "`status.children[].lastKnownVerdict`",
            "| `spec.customer` | string | yes |  | pattern `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`; length 1–40; CEL `self == oldSelf`: spec.customer is immutable",
            "unique `name` (list map: server-side apply merges items by `name`)",
            "items 1–2; unique items (list type `set`); each item: one of `prometheus`, `grafana`",
            "CEL `self.all(k, k == 'cpu' \\|\\| k == 'memory')`: only cpu and memory can be set",
            "(reported at `.prometheusUrlTemplate`): required (or prometheusExposure) when the cluster serves the prometheus role",
            "| `CHILDREN` | string | `.status.childrenReady` |",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}

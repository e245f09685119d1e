//! The `Grafana` instances a grafana-operator resource is applied to, and why none is when
//! grafana-operator reports `NoMatchingInstance`.
//!
//! grafana-operator matches a resource's `instanceSelector` against the `Grafana` objects in the
//! resource's namespace (any namespace with `allowCrossNamespaceImport`), and skips instances
//! that are not ready (`stage` other than `complete` or `stageStatus` other than `success`). So
//! `NoMatchingInstance` may mean "no Grafana has those labels" or "the Grafana is not ready":
//! [`explain_unmatched`] tells which.

use serde_json::Value;

/// Whether a `Grafana` object is ready (`stage: complete`, `stageStatus: success`).
pub fn grafana_is_ready(grafana: &Value) -> bool {
    grafana.pointer("/status/stage").and_then(Value::as_str) == Some("complete")
        && grafana
            .pointer("/status/stageStatus")
            .and_then(Value::as_str)
            == Some("success")
}

pub use crate::label_selector::matches as selector_matches;

fn namespace(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The `Grafana` objects whose labels and namespace fit a resource (ready or not).
pub fn selected_instances<'g>(resource: &Value, grafanas: &'g [Value]) -> Vec<&'g Value> {
    let selector = resource
        .pointer("/spec/instanceSelector")
        .cloned()
        .unwrap_or(Value::Null);
    let cross = resource
        .pointer("/spec/allowCrossNamespaceImport")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ns = namespace(resource);
    grafanas
        .iter()
        .filter(|g| cross || namespace(g) == ns)
        .filter(|g| selector_matches(&selector, g.pointer("/metadata/labels")))
        .collect()
}

/// The ready `Grafana` objects a resource is applied to.
pub fn matching_instances<'g>(resource: &Value, grafanas: &'g [Value]) -> Vec<&'g Value> {
    selected_instances(resource, grafanas)
        .into_iter()
        .filter(|g| grafana_is_ready(g))
        .collect()
}

/// Why no ready `Grafana` matches a resource, from the `Grafana` objects on its cluster.
pub fn explain_unmatched(resource: &Value, grafanas: &[Value]) -> String {
    let selected = selected_instances(resource, grafanas);
    if selected.is_empty() {
        let scope = if resource
            .pointer("/spec/allowCrossNamespaceImport")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            "in any namespace".to_owned()
        } else {
            format!("in namespace {}", namespace(resource))
        };
        let selector = resource
            .pointer("/spec/instanceSelector")
            .map(Value::to_string)
            .unwrap_or_default();
        return format!("no Grafana {scope} has labels matching the instanceSelector {selector}");
    }
    let not_ready: Vec<String> = selected
        .iter()
        .filter(|g| !grafana_is_ready(g))
        .map(|g| {
            let stage = g
                .pointer("/status/stage")
                .and_then(Value::as_str)
                .unwrap_or("not reported");
            let stage_status = g
                .pointer("/status/stageStatus")
                .and_then(Value::as_str)
                .unwrap_or("not reported");
            let last = g
                .pointer("/status/lastMessage")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut text = format!(
                "Grafana {}/{} is not ready (stage {stage}: {stage_status})",
                namespace(g),
                name(g)
            );
            if !last.is_empty() {
                text.push_str(": ");
                text.extend(last.chars().take(300));
            }
            text
        })
        .collect();
    if not_ready.is_empty() {
        "a ready Grafana matches now; grafana-operator has not caught up yet".to_owned()
    } else {
        not_ready.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn grafana(ns: &str, labels: Value, stage: &str, stage_status: &str) -> Value {
        json!({"metadata": {"name": "g", "namespace": ns, "labels": labels},
               "status": {"stage": stage, "stageStatus": stage_status, "lastMessage": "image pull failed"}})
    }

    fn resource(cross: bool) -> Value {
        json!({"metadata": {"name": "ds", "namespace": "customer-a"},
               "spec": {"instanceSelector": {"matchLabels": {"dashboards": "shared"}}, "allowCrossNamespaceImport": cross}})
    }

    #[test]
    fn a_not_ready_grafana_is_named_with_its_stage() {
        let grafanas = [grafana(
            "grafana",
            json!({"dashboards": "shared"}),
            "deployment",
            "failed",
        )];
        let why = explain_unmatched(&resource(true), &grafanas);
        assert!(
            why.contains(
                "Grafana grafana/g is not ready (stage deployment: failed): image pull failed"
            ),
            "{why}"
        );
    }

    #[test]
    fn no_labelled_grafana_is_said_with_the_selector() {
        let grafanas = [grafana(
            "grafana",
            json!({"dashboards": "other"}),
            "complete",
            "success",
        )];
        let why = explain_unmatched(&resource(true), &grafanas);
        assert!(
            why.contains("no Grafana in any namespace has labels matching"),
            "{why}"
        );
        assert!(why.contains("shared"), "{why}");
    }

    #[test]
    fn namespace_rules_apply_without_cross_namespace_import() {
        let grafanas = [grafana(
            "grafana",
            json!({"dashboards": "shared"}),
            "complete",
            "success",
        )];
        assert!(matching_instances(&resource(false), &grafanas).is_empty());
        assert_eq!(matching_instances(&resource(true), &grafanas).len(), 1);
        assert!(explain_unmatched(&resource(false), &grafanas).contains("in namespace customer-a"));
    }
}

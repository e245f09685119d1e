//! Kubernetes label selectors (`matchLabels`, `matchExpressions`) as JSON, matched the way the
//! API machinery matches them (`metav1.LabelSelectorAsSelector`).

use serde_json::Value;

/// Whether a `LabelSelector` (as JSON) matches a label map. An absent selector matches nothing,
/// an empty one everything.
pub fn matches(selector: &Value, labels: Option<&Value>) -> bool {
    let Value::Object(selector) = selector else {
        return false;
    };
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                    Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                    Some("Exists") => label(key).is_some(),
                    Some("DoesNotExist") => label(key).is_none(),
                    _ => false,
                }
            })
        });
    labels_ok && expressions_ok
}

/// Whether a selector is an object with no requirement (`{}`, or empty `matchLabels` and
/// `matchExpressions`): it matches everything, whatever the labels.
pub fn is_empty(selector: &Value) -> bool {
    let Value::Object(selector) = selector else {
        return false;
    };
    let none = |key: &str| match selector.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    none("matchLabels") && none("matchExpressions")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selector_operators() {
        let labels = json!({"a": "1", "b": "2"});
        let sel = |v: Value| matches(&v, Some(&labels));
        assert!(sel(json!({})));
        assert!(!matches(&Value::Null, Some(&labels)));
        assert!(sel(
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]})
        ));
        assert!(sel(
            json!({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "c", "operator": "Exists"}]})
        ));
        assert!(!sel(json!({"matchLabels": {"a": "2"}})));
    }

    #[test]
    fn empty_selectors() {
        assert!(is_empty(&json!({})));
        assert!(is_empty(
            &json!({"matchLabels": {}, "matchExpressions": []})
        ));
        assert!(is_empty(&json!({"matchLabels": null})));
        assert!(!is_empty(&Value::Null));
        assert!(!is_empty(&json!({"matchLabels": {"a": "1"}})));
        assert!(!is_empty(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]})
        ));
        // An empty selector matches even unknown labels; a null one nothing.
        assert!(matches(&json!({}), None));
        assert!(!matches(&Value::Null, None));
    }
}

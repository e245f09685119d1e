//! Status conditions as both operators write them, read tolerantly.
//!
//! prometheus-operator's conditions may carry the status `Degraded` besides
//! `True`/`False`/`Unknown`, so the status is an enum with a catch-all, never a bool.

use std::fmt;

use super::fields::{Fields, Invalid, element};

/// The `status` of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
    /// `Degraded` (prometheus-operator's `Available` condition only).
    Degraded,
    /// Anything else, kept verbatim.
    Other(String),
}

impl ConditionStatus {
    /// Reads a status string.
    pub fn parse(status: &str) -> Self {
        match status {
            "True" => Self::True,
            "False" => Self::False,
            "Unknown" => Self::Unknown,
            "Degraded" => Self::Degraded,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::True => f.write_str("True"),
            Self::False => f.write_str("False"),
            Self::Unknown => f.write_str("Unknown"),
            Self::Degraded => f.write_str("Degraded"),
            Self::Other(other) => f.write_str(&super::clip(other)),
        }
    }
}

/// One status condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Condition {
    /// `type`.
    pub type_: String,
    /// `status`.
    pub status: ConditionStatus,
    /// `reason`, when not empty.
    pub reason: Option<String>,
    /// `message`, when not empty.
    pub message: Option<String>,
    /// `observedGeneration`, when set.
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// Whether the condition describes the object's current generation. When either the
    /// condition's `observedGeneration` or the object's `metadata.generation` is absent there is
    /// nothing to compare, and the condition counts as current.
    pub fn is_current(&self, generation: Option<i64>) -> bool {
        match (self.observed_generation, generation) {
            (Some(observed), Some(generation)) => observed == generation,
            _ => true,
        }
    }

    /// Says why a condition is not current, e.g.
    /// `Available describes generation 3, the object is at generation 4`.
    pub fn staleness(&self, generation: Option<i64>) -> String {
        let observed = self
            .observed_generation
            .map_or_else(|| "?".to_owned(), |g| g.to_string());
        let current = generation.map_or_else(|| "?".to_owned(), |g| g.to_string());
        format!(
            "{} describes generation {observed}, the object is at generation {current}",
            self.type_
        )
    }

    /// Whether the condition's status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    /// The operator's reason and message, e.g. ` (NoPodReady): pod x: not ready`; empty when it
    /// gave neither. Newlines become `; ` and each part is clipped.
    pub fn detail(&self) -> String {
        operator_detail(self.reason.as_deref(), self.message.as_deref())
    }
}

/// Formats an operator's reason and message as ` (Reason): message`, leaving out what is empty.
pub(super) fn operator_detail(reason: Option<&str>, message: Option<&str>) -> String {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let message = message.map(super::one_line).filter(|m| !m.is_empty());
    match (reason, message) {
        (Some(reason), Some(message)) => format!(" ({}): {message}", super::clip(reason)),
        (Some(reason), None) => format!(" ({})", super::clip(reason)),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => String::new(),
    }
}

/// Reads `<fields>.conditions`; absent or `null` reads as no conditions.
pub(super) fn parse_conditions(fields: &Fields<'_>) -> Result<Vec<Condition>, Invalid> {
    let Some(items) = fields.array("conditions")? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_condition(&element(fields, "conditions", index, item)?))
        .collect()
}

fn parse_condition(fields: &Fields<'_>) -> Result<Condition, Invalid> {
    let type_ = required_str(fields, "type")?;
    let status = required_str(fields, "status")?;
    Ok(Condition {
        type_: type_.to_owned(),
        status: ConditionStatus::parse(status),
        reason: non_empty(fields.str("reason")?),
        message: non_empty(fields.str("message")?),
        observed_generation: fields.i64("observedGeneration")?,
    })
}

fn required_str<'a>(fields: &Fields<'a>, key: &str) -> Result<&'a str, Invalid> {
    fields
        .str(key)?
        .ok_or_else(|| fields.invalid(format!("{} is missing", fields.field_path(key))))
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty()).map(str::to_owned)
}

/// The first condition of the given type.
pub(super) fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::HealthReason;
    use super::*;

    fn parse(value: &Value) -> Result<Vec<Condition>, Invalid> {
        parse_conditions(&Fields::new(
            value.as_object(),
            "status",
            HealthReason::UnexpectedStatus,
        ))
    }

    #[test]
    fn status_is_a_string_enum_with_catch_all() {
        let value = json!({"conditions": [
            {"type": "Available", "status": "Degraded", "reason": "SomePodsNotReady"},
            {"type": "Reconciled", "status": "True", "reason": ""},
            {"type": "X", "status": "Maybe"},
        ]});
        let conditions = parse(&value).unwrap();
        assert_eq!(conditions[0].status, ConditionStatus::Degraded);
        assert_eq!(conditions[1].reason, None);
        assert_eq!(conditions[2].status, ConditionStatus::Other("Maybe".into()));
        assert_eq!(conditions[2].status.to_string(), "Maybe");
    }

    #[test]
    fn absent_conditions_are_empty() {
        assert!(parse(&json!({})).unwrap().is_empty());
        assert!(parse(&json!({"conditions": null})).unwrap().is_empty());
    }

    #[test]
    fn bad_shapes_are_reported() {
        let err = parse(&json!({"conditions": {}})).unwrap_err();
        assert_eq!(err.detail, "status.conditions is not an array");
        let err = parse(&json!({"conditions": [{"type": "A", "status": true}]})).unwrap_err();
        assert_eq!(err.detail, "status.conditions[0].status is not a string");
        let err = parse(&json!({"conditions": [{"status": "True"}]})).unwrap_err();
        assert_eq!(err.detail, "status.conditions[0].type is missing");
        let err = parse(
            &json!({"conditions": [{"type": "A", "status": "True", "observedGeneration": "1"}]}),
        )
        .unwrap_err();
        assert_eq!(
            err.detail,
            "status.conditions[0].observedGeneration is not an integer"
        );
    }

    #[test]
    fn currency_needs_both_generations() {
        let mut condition = Condition {
            type_: "Available".into(),
            status: ConditionStatus::True,
            reason: None,
            message: None,
            observed_generation: Some(3),
        };
        assert!(condition.is_current(Some(3)));
        assert!(!condition.is_current(Some(4)));
        assert!(condition.is_current(None));
        assert_eq!(
            condition.staleness(Some(4)),
            "Available describes generation 3, the object is at generation 4"
        );
        condition.observed_generation = None;
        assert!(condition.is_current(Some(4)));
    }

    #[test]
    fn detail_joins_reason_and_one_line_message() {
        assert_eq!(operator_detail(Some("R"), Some("a\nb")), " (R): a; b");
        assert_eq!(operator_detail(Some("R"), None), " (R)");
        assert_eq!(operator_detail(None, Some("m")), ": m");
        assert_eq!(operator_detail(Some(" "), Some("")), "");
    }
}

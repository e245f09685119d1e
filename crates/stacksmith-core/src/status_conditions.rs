//! Typed conditions rendered into `metav1.Condition`s whose `lastTransitionTime` moves only when
//! the condition's status flips, so that an unchanged state produces an identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The value of a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl ConditionStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    /// `True` when `ok`, else `False`.
    pub fn from_bool(ok: bool) -> Self {
        if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// A condition before rendering: type, status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionState {
    /// The condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// Its status.
    pub status: ConditionStatus,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// What a human should know.
    pub message: String,
}

/// Renders `states` into conditions, keeping each one's `lastTransitionTime` from `previous` when
/// its status did not change, and stamping `now` otherwise. The output order is the input order.
pub fn render_conditions(
    states: &[ConditionState],
    previous: &[Condition],
    observed_generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    states
        .iter()
        .map(|state| {
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == state.type_ && p.status == state.status.as_str())
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: state.type_.to_owned(),
                status: state.status.as_str().to_owned(),
                reason: state.reason.to_owned(),
                message: state.message.clone(),
                observed_generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: ConditionStatus) -> ConditionState {
        ConditionState {
            type_: "Ready",
            status,
            reason: "R",
            message: "m".into(),
        }
    }

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let first = render_conditions(&[ready(ConditionStatus::False)], &[], Some(1), &at(10));
        assert_eq!(first[0].last_transition_time, at(10));
        let same = render_conditions(&[ready(ConditionStatus::False)], &first, Some(2), &at(20));
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = render_conditions(&[ready(ConditionStatus::True)], &same, Some(2), &at(30));
        assert_eq!(flipped[0].last_transition_time, at(30));
    }
}

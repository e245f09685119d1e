//! What the stand-in operators do with one object: chosen per object by tests and the demo.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Annotation on a child object that chooses its outcome (wins over the scenario ConfigMap).
pub const OUTCOME_ANNOTATION: &str = "simulator.stacksmith.io/outcome";
/// Namespace of the scenario ConfigMap on each remote cluster.
pub const SCENARIO_NAMESPACE: &str = "stacksmith-simulator";
/// Name of the scenario ConfigMap on each remote cluster.
///
/// Keys: `<Kind>.<namespace>.<name>` (an outcome for one object, e.g.
/// `Prometheus.tenant-acme.acme: degraded`, or `Grafana.customer-acme.acme: degraded` to fail
/// one `Grafana` instance, such as a stack's dedicated one, at its deployment stage), `default`
/// (outcome of every other object),
/// `slowDelayMs` (how long `slow` waits, default 3000) and
/// `statusForConfigurationResources` (`true`/`false`, default `true`: whether PrometheusRules and
/// ServiceMonitors get `status.bindings`, as with prometheus-operator's feature gate).
pub const SCENARIO_CONFIGMAP: &str = "scenario";

/// The outcome the simulator plays for an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Reconciled successfully.
    Healthy,
    /// The operator reports a failure (no pod ready, apply failed, Grafana stage failed...).
    Degraded,
    /// A Prometheus in a rolling update (`Available=Degraded`, `updatedReplicas < replicas`).
    Rolling,
    /// grafana-operator finds no ready Grafana matching the selector, whatever the Grafanas say.
    NoMatchingInstance,
    /// The operator rejects the spec (`InvalidSpec` / `Reconciled=False` / `Accepted=False`).
    InvalidSpec,
    /// The operator is told not to act (`Suspended=True`, `status.paused`).
    Suspended,
    /// Like `Healthy`, but only after a delay (the scenario's `slowDelayMs`).
    Slow,
    /// The operator never writes a status.
    Never,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 8] = [
        Outcome::Healthy,
        Outcome::Degraded,
        Outcome::Rolling,
        Outcome::NoMatchingInstance,
        Outcome::InvalidSpec,
        Outcome::Suspended,
        Outcome::Slow,
        Outcome::Never,
    ];

    /// The name used in annotations and the scenario ConfigMap.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::Degraded => "degraded",
            Outcome::Rolling => "rolling",
            Outcome::NoMatchingInstance => "no-matching-instance",
            Outcome::InvalidSpec => "invalid-spec",
            Outcome::Suspended => "suspended",
            Outcome::Slow => "slow",
            Outcome::Never => "never",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome name that is not one of [`Outcome::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown simulator outcome {0:?} (expected one of healthy, degraded, rolling, no-matching-instance, invalid-spec, suspended, slow, never)"
)]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s.trim())
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

/// The scenario of one remote cluster, read from its ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Outcomes by `<Kind>.<namespace>.<name>`.
    pub outcomes: BTreeMap<String, Outcome>,
    /// The outcome of objects with no entry.
    pub default: Outcome,
    /// How long `slow` waits, in milliseconds.
    pub slow_delay_ms: u64,
    /// Whether configuration resources get `status.bindings`.
    pub status_for_configuration_resources: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            outcomes: BTreeMap::new(),
            default: Outcome::Healthy,
            slow_delay_ms: 3000,
            status_for_configuration_resources: true,
        }
    }
}

impl Scenario {
    /// Reads a scenario from ConfigMap data; unknown outcomes are skipped with a warning.
    pub fn from_data(data: &BTreeMap<String, String>) -> Self {
        let mut scenario = Scenario::default();
        for (key, value) in data {
            match key.as_str() {
                "default" => match value.parse() {
                    Ok(outcome) => scenario.default = outcome,
                    Err(err) => tracing::warn!(%err, "simulator scenario: default"),
                },
                "slowDelayMs" => match value.trim().parse() {
                    Ok(ms) => scenario.slow_delay_ms = ms,
                    Err(err) => tracing::warn!(%err, "simulator scenario: slowDelayMs"),
                },
                "statusForConfigurationResources" => {
                    scenario.status_for_configuration_resources = value.trim() != "false"
                }
                _ => match value.parse() {
                    Ok(outcome) => {
                        scenario.outcomes.insert(key.clone(), outcome);
                    }
                    Err(err) => tracing::warn!(%err, key, "simulator scenario"),
                },
            }
        }
        scenario
    }

    /// The outcome for an object: its annotation, else its scenario entry, else the default.
    pub fn outcome_for(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        annotation: Option<&str>,
    ) -> Outcome {
        if let Some(outcome) = annotation.and_then(|a| a.parse().ok()) {
            return outcome;
        }
        self.outcomes
            .get(&scenario_key(kind, namespace, name))
            .copied()
            .unwrap_or(self.default)
    }
}

/// The scenario ConfigMap key of one object.
pub fn scenario_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}.{namespace}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
        }
        assert!("exploded".parse::<Outcome>().is_err());
    }

    /// A stack's dedicated `Grafana` is failed by name, like any child, while the shared instance
    /// and the other stacks' instances stay healthy.
    #[test]
    fn one_grafana_instance_can_be_failed_by_name() {
        let key = scenario_key("Grafana", "customer-acme", "acme");
        assert_eq!(key, "Grafana.customer-acme.acme");
        let scenario = Scenario::from_data(&BTreeMap::from([(key, "degraded".to_owned())]));
        assert_eq!(
            scenario.outcome_for("Grafana", "customer-acme", "acme", None),
            Outcome::Degraded
        );
        assert_eq!(
            scenario.outcome_for("Grafana", "grafana", "shared", None),
            Outcome::Healthy
        );
        assert_eq!(
            scenario.outcome_for("Grafana", "customer-globex", "globex", None),
            Outcome::Healthy
        );
        assert_eq!(
            scenario.outcome_for("GrafanaFolder", "customer-acme", "acme", None),
            Outcome::Healthy,
            "the folder of the same name is another object"
        );
    }

    #[test]
    fn annotation_beats_entry_beats_default() {
        let data = BTreeMap::from([
            ("default".to_owned(), "never".to_owned()),
            ("Prometheus.t.p".to_owned(), "degraded".to_owned()),
            ("slowDelayMs".to_owned(), "50".to_owned()),
            (
                "statusForConfigurationResources".to_owned(),
                "false".to_owned(),
            ),
        ]);
        let scenario = Scenario::from_data(&data);
        assert_eq!(scenario.slow_delay_ms, 50);
        assert!(!scenario.status_for_configuration_resources);
        assert_eq!(
            scenario.outcome_for("Prometheus", "t", "p", None),
            Outcome::Degraded
        );
        assert_eq!(
            scenario.outcome_for("Prometheus", "t", "p", Some("suspended")),
            Outcome::Suspended
        );
        assert_eq!(
            scenario.outcome_for("Prometheus", "t", "q", None),
            Outcome::Never
        );
    }
}

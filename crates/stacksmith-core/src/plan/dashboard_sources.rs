//! The dashboard models a stack's dashboards name in hub ConfigMaps (`configMapRef`): planning's
//! input from the reconcile's dereference stage. The planner does no I/O: whoever calls it reads
//! the ConfigMaps (the operator from its watch of the hub's ConfigMaps labelled
//! [`stacksmith_api::labels::DASHBOARD_SOURCE`], the offline commands from the manifests given)
//! and hands over what it found; what a reference finds (a model, or why none) is decided here.

use std::collections::BTreeMap;

use stacksmith_api::labels::{DASHBOARD_SOURCE, DASHBOARD_SOURCE_VALUE};
use stacksmith_api::{CustomerStackSpec, DashboardConfigMapKey, DashboardSource};

/// The ConfigMaps labelled [`DASHBOARD_SOURCE`] in a stack's namespace that its dashboards
/// name, by name, with their `data`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardConfigMaps {
    found: BTreeMap<String, BTreeMap<String, String>>,
}

impl DashboardConfigMaps {
    /// None found (a stack naming no ConfigMap needs none).
    pub fn none() -> Self {
        Self::default()
    }

    /// Records ConfigMap `name` with its `data`.
    pub fn insert(&mut self, name: impl Into<String>, data: BTreeMap<String, String>) {
        self.found.insert(name.into(), data);
    }

    /// Adds every ConfigMap of `other`, which wins over one of the same name here.
    pub fn overlay(&mut self, other: DashboardConfigMaps) {
        self.found.extend(other.found);
    }

    /// The ConfigMaps `spec`'s dashboards name (sorted, unique): the ones to read.
    pub fn named_by(spec: &CustomerStackSpec) -> Vec<&str> {
        let mut names: Vec<&str> = spec
            .dashboards
            .dashboards
            .iter()
            .filter_map(|d| match d.source() {
                Some(DashboardSource::ConfigMap(key)) => Some(key.name.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The model `key` names, or why there is none (a message for the stack's status).
    pub fn model(&self, key: &DashboardConfigMapKey) -> Result<&str, String> {
        let Some(data) = self.found.get(&key.name) else {
            return Err(format!(
                "ConfigMap {:?} not found in the stack's namespace (a dashboard source must carry \
                 the label {DASHBOARD_SOURCE}: \"{DASHBOARD_SOURCE_VALUE}\")",
                key.name
            ));
        };
        data.get(&key.key).map(String::as_str).ok_or_else(|| {
            format!(
                "ConfigMap {:?} has no key {:?} in its data",
                key.name, key.key
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, key: &str) -> DashboardConfigMapKey {
        DashboardConfigMapKey {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_reference_finds_its_model_or_says_what_is_missing() {
        let mut maps = DashboardConfigMaps::none();
        maps.insert(
            "boards",
            BTreeMap::from([("api.json".to_owned(), "{\"title\":\"API\"}".to_owned())]),
        );
        assert_eq!(
            maps.model(&key("boards", "api.json")),
            Ok("{\"title\":\"API\"}")
        );
        let missing_key = maps.model(&key("boards", "db.json")).unwrap_err();
        assert!(missing_key.contains("no key \"db.json\""), "{missing_key}");
        let missing_map = maps.model(&key("other", "api.json")).unwrap_err();
        assert!(
            missing_map.contains("\"other\" not found")
                && missing_map.contains("stacksmith.io/dashboard-source"),
            "{missing_map}"
        );
    }
}

//! `stacksmith health -f FILE`: the verdict stacksmith gives a child object, offline, and the
//! shape of the status it read it from (current conditions, or an older operator release's
//! shape; see `stacksmith_core::health::StatusShape`).
//!
//! The input stands for what is known of the cluster: when it holds `Prometheus` objects or
//! Events, a `PrometheusRule` or `ServiceMonitor` without a status is judged from them as the
//! operator judges it from its caches (see `stacksmith_core::health::acceptance`); Events and
//! `Namespace`s are such evidence only, never judged themselves. Alone, such an object stays
//! `StatusNotReported`.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize as _;
use serde_json::Value;
use stacksmith_core::{
    ChildHealth, ChildKind, ConfigEvidence, Rejection, Verdict, assess, assess_with_evidence,
};

use crate::output::print_stdout;

/// Options of `stacksmith health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The object(s) to judge: a YAML or JSON file (several YAML documents, or a `List`,
    /// allowed), `-` for standard input. `Prometheus` objects, `Namespace`s and Events in it are
    /// the evidence a `PrometheusRule` or `ServiceMonitor` without a status is judged from.
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// One line per object: verdict, reason, message, and the shape of the status it was read
    /// from (`Conditions`, `LegacyGrafanaSync`, `LegacyGrafanaStage`, `LegacyPrometheusReplicas`
    /// or `None`), tab-separated.
    Text,
    /// One JSON object per line: `{"verdict", "reason", "message", "shape"}`.
    Json,
}

/// Runs `stacksmith health`: exit 0 when every object is Healthy, 1 when one is not, 2 when the
/// input cannot be read.
pub fn run(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let objects = parse_objects(&text).with_context(|| format!("parsing {}", args.file))?;
    if objects.is_empty() {
        bail!("{}: no object found", args.file);
    }
    let evidence = InputEvidence::read(&objects);
    let mut all_healthy = true;
    for object in objects {
        let kind_name = kind_of(&object);
        if EVIDENCE_KINDS.contains(&kind_name) {
            continue;
        }
        let Some(kind) = ChildKind::from_kind(kind_name) else {
            bail!(
                "{}: kind {kind_name:?} is not a child kind stacksmith judges (expected one of {})",
                args.file,
                ChildKind::ALL.map(ChildKind::as_str).join(", ")
            );
        };
        let health = match &evidence {
            Some(evidence) => assess_with_evidence(kind, &object, &evidence.about(&object)),
            None => assess(kind, &object),
        };
        all_healthy &= health.verdict == Verdict::Healthy;
        print_stdout(&render(&health, args.output))?;
    }
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line of output (with its newline) for a judged object.
fn render(health: &ChildHealth, output: Output) -> String {
    match output {
        Output::Text => format!(
            "{:?}\t{}\t{}\t{}\n",
            health.verdict,
            health.reason.as_str(),
            health.message,
            health.shape.as_str()
        ),
        Output::Json => format!(
            "{}\n",
            serde_json::json!({
                "verdict": health.verdict,
                "reason": health.reason.as_str(),
                "message": health.message,
                "shape": health.shape.as_str(),
            })
        ),
    }
}

/// Kinds read as evidence about configuration resources, not judged.
const EVIDENCE_KINDS: [&str; 2] = ["Event", "Namespace"];

/// An object's `kind` (empty when it has none).
fn kind_of(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What the input says about the cluster its `PrometheusRule`s and `ServiceMonitor`s live in.
struct InputEvidence {
    /// Every `Prometheus` of the input (the judgement keeps those of the object's namespace).
    prometheuses: Vec<Value>,
    /// The labels of every `Namespace` of the input, by name.
    namespaces: Vec<(String, Value)>,
    /// The rejections its Events record; `None` when it holds no Event at all.
    rejections: Option<Vec<Rejection>>,
}

impl InputEvidence {
    /// The evidence of the input, `None` when it holds neither a `Prometheus` nor an Event.
    fn read(objects: &[Value]) -> Option<Self> {
        let of_kind = |kind: &'static str| objects.iter().filter(move |o| kind_of(o) == kind);
        let prometheuses: Vec<Value> = of_kind("Prometheus").cloned().collect();
        let events: Vec<&Value> = of_kind("Event").collect();
        if prometheuses.is_empty() && events.is_empty() {
            return None;
        }
        let namespaces = of_kind("Namespace")
            .filter_map(|ns| {
                let name = ns.pointer("/metadata/name")?.as_str()?.to_owned();
                let labels = ns
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                Some((name, labels))
            })
            .collect();
        let rejections = (!events.is_empty()).then(|| {
            events
                .iter()
                .filter_map(|e| Rejection::from_event(e))
                .collect()
        });
        Some(Self {
            prometheuses,
            namespaces,
            rejections,
        })
    }

    /// The evidence about one object.
    fn about(&self, object: &Value) -> ConfigEvidence<'_> {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        ConfigEvidence {
            prometheuses: &self.prometheuses,
            namespace_labels: self
                .namespaces
                .iter()
                .find(|(name, _)| name == namespace)
                .map(|(_, labels)| labels),
            rejections: self.rejections.as_deref(),
        }
    }
}

/// Every document of a YAML (or JSON) stream, skipping empty ones; the items of a `List` (as
/// `kubectl get -o yaml` prints several objects) are documents of their own.
fn parse_objects(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        match value.get("items").and_then(Value::as_array) {
            Some(items) if kind_of(&value).ends_with("List") => {
                objects.extend(items.iter().filter(|i| !i.is_null()).cloned());
            }
            _ => objects.push(value),
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stacksmith_core::health::StatusShape;
    use stacksmith_core::{ChildKind, HealthReason, Verdict, assess};

    use super::{Output, parse_objects, render};

    /// A `GrafanaDatasource` synchronized by a grafana-operator release before conditions.
    const LEGACY_DATASOURCE: &str = r#"
apiVersion: grafana.integreatly.org/v1beta1
kind: GrafanaDatasource
metadata: {name: acme-prometheus, namespace: customer-acme, generation: 1}
spec: {instanceSelector: {}, datasource: {name: x}}
status:
  hash: 3f1c0e2a
  lastResync: "2024-05-01T10:00:00Z"
  uid: d2c1b8b7-6a0e-4c47-9b55-0f1e0f0b0f01
"#;

    #[test]
    fn text_lines_end_with_the_status_shape() {
        let objects = parse_objects(LEGACY_DATASOURCE).unwrap();
        let health = assess(ChildKind::GrafanaDatasource, &objects[0]);
        assert_eq!(health.shape, StatusShape::LegacyGrafanaSync);
        let line = render(&health, Output::Text);
        let columns = line.trim_end_matches('\n').split('\t').collect::<Vec<_>>();
        assert_eq!(columns[..2], ["Healthy", "Synchronized"]);
        assert!(columns[2].starts_with("GrafanaDatasource customer-acme/acme-prometheus: "));
        assert_eq!(columns[3], "LegacyGrafanaSync");
        assert_eq!(columns.len(), 4);
    }

    #[test]
    fn json_lines_carry_the_status_shape() {
        let health = stacksmith_core::ChildHealth::new(
            Verdict::Degraded,
            HealthReason::NoPodReady,
            "Prometheus a/b: 0 of 2 replicas available",
        )
        .with_shape(StatusShape::Conditions);
        let line = render(&health, Output::Json);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            json!({
                "verdict": "Degraded",
                "reason": "NoPodReady",
                "message": "Prometheus a/b: 0 of 2 replicas available",
                "shape": "Conditions",
            })
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    }

    #[test]
    fn no_status_reads_as_shape_none() {
        let objects = parse_objects(
            "apiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nmetadata: {name: a, namespace: b}\n",
        )
        .unwrap();
        let health = assess(ChildKind::Prometheus, &objects[0]);
        assert!(render(&health, Output::Text).ends_with("\tNone\n"));
    }
}

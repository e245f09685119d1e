//! Tests of what is shared by every kind (kinds, reasons, status shapes, malformed objects,
//! message bounds); the judgements of each operator's kinds are in `tests/prometheus.rs` and
//! `tests/grafana.rs`, the older status shapes (and the shape of the current ones) in
//! `tests/shapes.rs`.

mod grafana;
mod prometheus;
mod shapes;

use serde_json::json;

use super::test_support::{assess_yaml, expect};
use super::*;

#[test]
fn kinds_round_trip_and_carry_their_api() {
    for kind in ChildKind::ALL {
        assert_eq!(ChildKind::from_kind(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
        assert!(kind.api_version().starts_with(kind.api_group()));
        assert!(
            kind.plural()
                .starts_with(&kind.as_str().to_lowercase()[..4])
        );
    }
    assert_eq!(ChildKind::from_kind("prometheus"), None);
    assert_eq!(ChildKind::from_kind("Alertmanager"), None);
    assert_eq!(ChildKind::Prometheus.plural(), "prometheuses");
    assert_eq!(
        ChildKind::ServiceMonitor.api_version(),
        "monitoring.coreos.com/v1"
    );
    assert_eq!(
        ChildKind::GrafanaDashboard.api_group(),
        "grafana.integreatly.org"
    );
    assert_eq!(
        ChildKind::GrafanaFolder.api_version(),
        "grafana.integreatly.org/v1beta1"
    );
    assert_eq!(ChildKind::GrafanaDatasource.plural(), "grafanadatasources");
}

#[test]
fn reasons_are_camel_case() {
    assert_eq!(
        HealthReason::FolderUidMismatch.as_str(),
        "FolderUIDMismatch"
    );
    assert_eq!(HealthReason::NoPodReady.to_string(), "NoPodReady");
}

#[test]
fn status_shapes_are_named_and_default_to_none() {
    let shapes = [
        (StatusShape::None, "None", false),
        (StatusShape::Conditions, "Conditions", false),
        (StatusShape::LegacyGrafanaSync, "LegacyGrafanaSync", true),
        (StatusShape::LegacyGrafanaStage, "LegacyGrafanaStage", true),
        (
            StatusShape::LegacyPrometheusReplicas,
            "LegacyPrometheusReplicas",
            true,
        ),
    ];
    for (shape, name, legacy) in shapes {
        assert_eq!((shape.as_str(), shape.is_legacy()), (name, legacy));
        assert_eq!(shape.to_string(), name);
    }
    assert_eq!(StatusShape::default(), StatusShape::None);
    let health = ChildHealth::new(Verdict::Healthy, HealthReason::Available, "fine");
    assert_eq!(health.shape, StatusShape::None);
    let shaped = health
        .clone()
        .with_shape(StatusShape::LegacyPrometheusReplicas);
    assert_eq!(shaped.shape, StatusShape::LegacyPrometheusReplicas);
    assert_eq!(
        (shaped.verdict, shaped.reason, shaped.message),
        (health.verdict, health.reason, health.message)
    );
}

#[test]
fn non_objects_are_malformed() {
    for value in [json!(null), json!("Prometheus"), json!([1, 2]), json!(3)] {
        for kind in ChildKind::ALL {
            let health = assess(kind, &value);
            expect(
                &health,
                Verdict::Unknown,
                HealthReason::MalformedObject,
                &[kind.as_str(), "not a JSON object"],
            );
        }
    }
}

#[test]
fn bad_metadata_and_spec_are_malformed() {
    let health = assess(ChildKind::Prometheus, &json!({"metadata": "acme"}));
    expect(
        &health,
        Verdict::Unknown,
        HealthReason::MalformedObject,
        &["metadata is not an object"],
    );
    let health = assess(
        ChildKind::Prometheus,
        &json!({"metadata": {"name": "acme", "generation": "2"}}),
    );
    expect(
        &health,
        Verdict::Unknown,
        HealthReason::MalformedObject,
        &["Prometheus acme", "generation is not an integer"],
    );
    let health = assess(
        ChildKind::GrafanaDashboard,
        &json!({"metadata": {"name": "d"}, "spec": [1]}),
    );
    expect(
        &health,
        Verdict::Unknown,
        HealthReason::MalformedObject,
        &["spec is not an object"],
    );
}

#[test]
fn another_kind_is_malformed() {
    let health = assess_yaml(
        ChildKind::Prometheus,
        "apiVersion: monitoring.coreos.com/v1\nkind: Alertmanager\nmetadata: {name: acme, namespace: acme}\n",
    );
    expect(
        &health,
        Verdict::Unknown,
        HealthReason::MalformedObject,
        &[
            "Prometheus acme/acme",
            "expected a Prometheus",
            "Alertmanager",
        ],
    );
}

#[test]
fn status_of_the_wrong_type_is_unexpected() {
    for kind in ChildKind::ALL {
        let health = assess(
            kind,
            &json!({"metadata": {"name": "x", "namespace": "acme"}, "status": "ok"}),
        );
        expect(
            &health,
            Verdict::Unknown,
            HealthReason::UnexpectedStatus,
            &["acme/x", "status is not an object but a string"],
        );
    }
}

#[test]
fn unnamed_objects_are_described() {
    assert_eq!(who(ChildKind::Grafana, None, None), "Grafana <unnamed>");
    assert_eq!(who(ChildKind::Grafana, Some(""), Some("g")), "Grafana g");
}

#[test]
fn clipping_respects_char_boundaries() {
    let long = "é".repeat(600);
    let clipped = clip(&long);
    assert_eq!(clipped.chars().count(), MAX_QUOTED_CHARS);
    assert!(clipped.ends_with('…'));
    assert_eq!(clip_to("abc", 3), "abc");
    assert_eq!(clip_to("abcd", 3), "ab…");
    assert_eq!(clip_to("", 3), "");
    assert_eq!(one_line("  a\n\n b \r\nc"), "a; b; c");
}

#[test]
fn messages_are_bounded() {
    let health = ChildHealth::new(
        Verdict::Degraded,
        HealthReason::ApplyFailed,
        "x".repeat(5000),
    );
    assert_eq!(health.message.chars().count(), MAX_MESSAGE_CHARS);
}

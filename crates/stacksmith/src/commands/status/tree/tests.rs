//! The tree and the root cause, from statuses made by the real aggregation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::jiff::Timestamp;
use stacksmith_core::aggregate::{
    AggregateInput, ChildObservation, ClusterObservation, ClusterState, ObservedState, SpecProblem,
    aggregate,
};
use stacksmith_core::{ChildHealth, ChildKind, HealthReason};

use super::*;

const PROM: &str = "prometheus-1";
const GRAF: &str = "grafana-1";

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

/// The six children of stack `acme`.
const ACME: [(&str, ChildKind, &str); 6] = [
    (PROM, ChildKind::Prometheus, "acme"),
    (PROM, ChildKind::PrometheusRule, "acme-core"),
    (PROM, ChildKind::ServiceMonitor, "acme-api"),
    (GRAF, ChildKind::GrafanaFolder, "acme"),
    (GRAF, ChildKind::GrafanaDatasource, "acme-prometheus"),
    (GRAF, ChildKind::GrafanaDashboard, "acme-overview"),
];

fn healthy(kind: ChildKind, name: &str) -> ObservedState {
    ObservedState::Live(ChildHealth::new(
        Verdict::Healthy,
        HealthReason::Synchronized,
        format!("{kind} customer-acme/{name}: ok"),
    ))
}

/// The aggregated status of `acme` at time `now`, with `change` applied to its observations.
fn status_with(
    now: i64,
    previous: Option<&CustomerStackStatus>,
    clusters: &[ClusterObservation],
    change: impl Fn(ChildKind, &str) -> Option<ObservedState>,
) -> CustomerStackStatus {
    let children: Vec<ChildObservation> = ACME
        .iter()
        .map(|(cluster, kind, name)| ChildObservation {
            cluster: (*cluster).to_owned(),
            kind: *kind,
            namespace: "customer-acme".to_owned(),
            name: (*name).to_owned(),
            state: change(*kind, name).unwrap_or_else(|| healthy(*kind, name)),
        })
        .collect();
    aggregate(&AggregateInput {
        generation: Some(1),
        paused: false,
        spec_problems: &[],
        policy_violations: &[],
        children: &children,
        clusters,
        foreign_objects: &[],
        failed_objects: &[],
        deletion: None,
        previous,
        now: &at(now),
        inventory: &[],
        refused_move: None,
    })
}

fn reachable() -> Vec<ClusterObservation> {
    [PROM, GRAF]
        .iter()
        .map(|c| ClusterObservation {
            cluster: (*c).to_owned(),
            state: ClusterState::Reachable,
        })
        .collect()
}

fn view(status: CustomerStackStatus) -> StackView {
    StackView {
        namespace: "team-a".to_owned(),
        name: "acme".to_owned(),
        generation: Some(1),
        deleting: false,
        status: Some(status),
        source: Source::Hub,
        note: None,
    }
}

fn degraded_prometheus() -> ObservedState {
    ObservedState::Live(ChildHealth::new(
        Verdict::Degraded,
        HealthReason::NoPodReady,
        "Prometheus customer-acme/acme: 0 of 2 replicas available (NoPodReady)",
    ))
}

fn line_with<'a>(tree: &'a str, needle: &str) -> &'a str {
    tree.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{tree}"))
}

#[test]
fn ready_stack_is_a_plain_tree_without_colour() {
    let status = status_with(0, None, &reachable(), |_, _| None);
    let stack = view(status);
    assert!(stack.is_ready());
    assert_eq!(stack.root_cause(), RootCause::None);
    let tree = render_tree(&[stack], &at(185), false);
    assert!(!tree.contains('\x1b'), "{tree}");
    assert!(!tree.contains(ROOT_CAUSE_MARKER), "{tree}");
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with("STACK / CLUSTER / CHILD"), "{tree}");
    assert!(lines[1].starts_with("team-a/acme (6/6)"), "{tree}");
    assert!(lines[1].contains("Ready") && lines[1].contains("all 6 children are Healthy"));
    assert!(lines[1].contains(" 3m5s "), "kubectl-like age: {tree}");
    assert!(lines[2].starts_with("├─ grafana-1"), "{tree}");
    assert!(
        lines[3].starts_with("│  ├─ GrafanaDashboard customer-acme/acme-overview "),
        "{tree}"
    );
    assert!(lines[6].starts_with("└─ prometheus-1"), "{tree}");
    assert!(
        lines[7].starts_with("   ├─ Prometheus customer-acme/acme "),
        "{tree}"
    );
    assert!(
        lines[9].starts_with("   └─ ServiceMonitor customer-acme/acme-api"),
        "{tree}"
    );
    assert_eq!(lines.len(), 10, "{tree}");
    // Columns line up: every verdict starts at the same column.
    let column = lines[0].find("VERDICT").unwrap();
    for line in &lines[1..] {
        let prefix: String = line.chars().take(column).collect();
        let rest: String = line.chars().skip(column).collect();
        assert!(prefix.ends_with("  "), "{line}");
        assert!(!rest.starts_with(' '), "{line}");
    }
}

#[test]
fn degraded_child_is_the_marked_root_cause() {
    let status = status_with(10, None, &reachable(), |kind, _| {
        (kind == ChildKind::Prometheus).then(degraded_prometheus)
    });
    let stack = view(status);
    assert!(!stack.is_ready());
    let tree = render_tree(std::slice::from_ref(&stack), &at(70), false);
    let line = line_with(&tree, ROOT_CAUSE_MARKER);
    assert!(line.contains("Prometheus customer-acme/acme "), "{tree}");
    assert!(
        line.contains("Degraded") && line.contains("NoPodReady"),
        "{line}"
    );
    assert!(line.contains(" 60s "), "{line}");
    assert_eq!(tree.matches(ROOT_CAUSE_MARKER).count(), 1, "{tree}");
    let stack_line = line_with(&tree, "team-a/acme");
    assert!(stack_line.contains("NotReady") && stack_line.contains("ChildDegraded"));
    // With colour: the root cause's line is bold red, verdicts are coloured.
    let coloured = render_tree(&[stack], &at(70), true);
    let line = line_with(&coloured, ROOT_CAUSE_MARKER);
    assert!(
        line.contains("\x1b[1;31mPrometheus customer-acme/acme\x1b[0m"),
        "{line:?}"
    );
    assert!(line.contains("\x1b[1;31m← root cause\x1b[0m"), "{line:?}");
    assert!(coloured.contains("\x1b[32mHealthy\x1b[0m"), "{coloured}");
}

#[test]
fn the_most_telling_child_wins_and_similar_names_are_not_confused() {
    // Both a dashboard and the datasource fail; Ready names the datasource.
    let status = status_with(0, None, &reachable(), |kind, name| {
        matches!(
            kind,
            ChildKind::GrafanaDatasource | ChildKind::GrafanaDashboard
        )
        .then(|| {
            ObservedState::Live(ChildHealth::new(
                Verdict::Degraded,
                HealthReason::NoMatchingInstance,
                format!("{kind} customer-acme/{name}: no matching Grafana instance"),
            ))
        })
    });
    let index = status
        .children
        .iter()
        .position(|c| c.kind == "GrafanaDatasource")
        .unwrap();
    assert_eq!(root_cause(&status), RootCause::Child(index));
    // The Prometheus `acme` must not be taken for a child whose name starts with `acme`.
    let status = status_with(0, None, &reachable(), |kind, _| {
        (kind == ChildKind::ServiceMonitor).then(|| ObservedState::ApplyFailed {
            message: "403 Forbidden".to_owned(),
        })
    });
    let index = status
        .children
        .iter()
        .position(|c| c.kind == "ServiceMonitor")
        .unwrap();
    assert_eq!(root_cause(&status), RootCause::Child(index));
}

#[test]
fn conflicting_child_is_the_root_cause() {
    let status = status_with(0, None, &reachable(), |kind, _| {
        (kind == ChildKind::GrafanaFolder).then(|| ObservedState::Conflict {
            owner: "CustomerStack team-b/other".to_owned(),
        })
    });
    let index = status
        .children
        .iter()
        .position(|c| c.kind == "GrafanaFolder")
        .unwrap();
    assert_eq!(root_cause(&status), RootCause::Child(index));
}

#[test]
fn unreachable_cluster_is_marked_and_its_children_keep_their_last_verdict() {
    let before = status_with(0, None, &reachable(), |_, _| None);
    let clusters = vec![
        ClusterObservation {
            cluster: PROM.to_owned(),
            state: ClusterState::Unreachable {
                message: "connection refused".to_owned(),
            },
        },
        ClusterObservation {
            cluster: GRAF.to_owned(),
            state: ClusterState::Reachable,
        },
    ];
    let status = status_with(30, Some(&before), &clusters, |kind, _| {
        kind.is_prometheus_operator()
            .then(|| ObservedState::ClusterUnreachable {
                message: "connection refused".to_owned(),
            })
    });
    assert_eq!(root_cause(&status), RootCause::Cluster(PROM.to_owned()));
    let tree = render_tree(&[view(status)], &at(90), false);
    let line = line_with(&tree, ROOT_CAUSE_MARKER);
    assert!(line.starts_with("└─ prometheus-1"), "{tree}");
    assert!(
        line.contains("Unreachable") && line.contains("0/3 children Healthy"),
        "{line}"
    );
    let child = line_with(&tree, "ServiceMonitor customer-acme/acme-api");
    assert!(child.contains("Unknown (was Healthy)"), "{child}");
    assert!(
        child.contains(" 90s "),
        "last seen when first observed: {child}"
    );
    let graf = line_with(&tree, "├─ grafana-1");
    assert!(
        graf.contains("Reachable") && graf.contains("3/3 children Healthy"),
        "{graf}"
    );
}

#[test]
fn invalid_spec_marks_the_stack() {
    let status = aggregate(&AggregateInput {
        generation: Some(1),
        paused: false,
        spec_problems: &[SpecProblem {
            field: "spec.metrics.cluster".to_owned(),
            message: "MemberCluster \"prom-9\" not found".to_owned(),
        }],
        policy_violations: &[],
        children: &[],
        clusters: &[],
        foreign_objects: &[],
        failed_objects: &[],
        deletion: None,
        previous: None,
        now: &at(0),
        inventory: &[],
        refused_move: None,
    });
    assert_eq!(root_cause(&status), RootCause::Stack);
    let tree = render_tree(&[view(status)], &at(0), false);
    let line = line_with(&tree, ROOT_CAUSE_MARKER);
    assert!(
        line.starts_with("team-a/acme (0/0)") && line.contains("InvalidSpec"),
        "{tree}"
    );
}

#[test]
fn stale_status_is_not_ready_and_says_so() {
    let status = status_with(0, None, &reachable(), |_, _| None);
    let mut stack = view(status);
    stack.generation = Some(2);
    assert_eq!(stack.stale(), Some((1, 2)));
    assert!(!stack.is_ready());
    let tree = render_tree(std::slice::from_ref(&stack), &at(0), false);
    assert!(
        tree.contains("STALE: this status describes generation 1; the spec is at generation 2"),
        "{tree}"
    );
    let data = serde_json::to_value(data(&[stack])).unwrap();
    assert_eq!(data["stacks"][0]["stale"], true);
    assert_eq!(data["stacks"][0]["ready"], false);
}

#[test]
fn stack_without_status_is_unknown() {
    let stack = StackView {
        status: None,
        ..view(CustomerStackStatus::default())
    };
    assert!(!stack.is_ready());
    let tree = render_tree(&[stack], &at(0), false);
    let line = line_with(&tree, "team-a/acme");
    assert!(
        line.contains("Unknown") && line.contains("NoStatus"),
        "{line}"
    );
}

#[test]
fn data_names_the_root_cause() {
    let status = status_with(0, None, &reachable(), |kind, _| {
        (kind == ChildKind::Prometheus).then(degraded_prometheus)
    });
    let data = serde_json::to_value(data(&[view(status)])).unwrap();
    let stack = &data["stacks"][0];
    assert_eq!(stack["ready"], false);
    assert_eq!(stack["source"], "hub");
    assert_eq!(
        stack["rootCause"],
        serde_json::json!({"cluster": "prometheus-1", "kind": "Prometheus", "namespace": "customer-acme", "name": "acme"})
    );
    assert_eq!(stack["status"]["childrenReady"], "5/6");
}

#[test]
fn ages_read_like_kubectl() {
    let cases = [
        (-5, "<invalid>"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (185, "3m5s"),
        (11 * 60 + 5, "11m"),
        (2 * 3600 + 60, "121m"),
        (4 * 3600 + 60, "4h1m"),
        (10 * 3600, "10h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
    ];
    for (seconds, expected) in cases {
        assert_eq!(human_age(seconds), expected, "{seconds}s");
    }
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use stacksmith_api::{ChildStatus, RootCause, StackSummary, Verdict};

use super::*;
use crate::health::HealthReason;

const PROM: &str = "prom-1";
const GRAF: &str = "graf-1";

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

fn observe(
    cluster: &str,
    kind: ChildKind,
    namespace: &str,
    name: &str,
    state: ObservedState,
) -> ChildObservation {
    ChildObservation {
        cluster: cluster.into(),
        kind,
        namespace: namespace.into(),
        name: name.into(),
        state,
    }
}

fn healthy(kind: ChildKind, namespace: &str, name: &str) -> ObservedState {
    let reason = match kind {
        ChildKind::Prometheus => HealthReason::Available,
        ChildKind::PrometheusRule | ChildKind::ServiceMonitor => HealthReason::Accepted,
        ChildKind::Grafana => HealthReason::GrafanaReady,
        _ => HealthReason::Synchronized,
    };
    ObservedState::Live(ChildHealth::new(
        Verdict::Healthy,
        reason,
        format!("{kind} {namespace}/{name}: ok"),
    ))
}

/// The six children of the `acme` stack: (cluster, kind, namespace, name).
const ACME: [(&str, ChildKind, &str, &str); 6] = [
    (PROM, ChildKind::Prometheus, "customer-acme", "acme"),
    (
        PROM,
        ChildKind::PrometheusRule,
        "customer-acme",
        "acme-alerts",
    ),
    (PROM, ChildKind::ServiceMonitor, "customer-acme", "acme-api"),
    (GRAF, ChildKind::GrafanaFolder, "customer-acme", "acme"),
    (
        GRAF,
        ChildKind::GrafanaDatasource,
        "customer-acme",
        "acme-prometheus",
    ),
    (
        GRAF,
        ChildKind::GrafanaDashboard,
        "customer-acme",
        "overview",
    ),
];

/// The owned data behind an [`AggregateInput`].
#[derive(Clone, Debug)]
struct Scenario {
    generation: Option<i64>,
    paused: bool,
    spec_problems: Vec<SpecProblem>,
    policy_violations: Vec<SpecProblem>,
    children: Vec<ChildObservation>,
    clusters: Vec<ClusterObservation>,
    foreign_objects: Vec<ForeignObject>,
    failed_objects: Vec<FailedObject>,
    deletion: Option<DeletionState>,
}

impl Scenario {
    /// The `acme` stack with every child Healthy and both clusters reachable.
    fn acme() -> Self {
        Self {
            generation: Some(3),
            paused: false,
            spec_problems: vec![],
            policy_violations: vec![],
            children: ACME
                .iter()
                .map(|&(c, k, ns, n)| observe(c, k, ns, n, healthy(k, ns, n)))
                .collect(),
            clusters: vec![
                ClusterObservation {
                    cluster: PROM.into(),
                    state: ClusterState::Reachable,
                },
                ClusterObservation {
                    cluster: GRAF.into(),
                    state: ClusterState::Reachable,
                },
            ],
            foreign_objects: Vec::new(),
            failed_objects: Vec::new(),
            deletion: None,
        }
    }

    /// Sets the state of the child named `name` of kind `kind`.
    fn with(mut self, kind: ChildKind, name: &str, state: ObservedState) -> Self {
        let child = self
            .children
            .iter_mut()
            .find(|c| c.kind == kind && c.name == name)
            .unwrap();
        child.state = state;
        self
    }

    /// Makes `cluster` and every child on it unreachable.
    fn unreachable(mut self, cluster: &str, message: &str) -> Self {
        for c in self.clusters.iter_mut().filter(|c| c.cluster == cluster) {
            c.state = ClusterState::Unreachable {
                message: message.into(),
            };
        }
        for c in self.children.iter_mut().filter(|c| c.cluster == cluster) {
            c.state = ObservedState::ClusterUnreachable {
                message: message.into(),
            };
        }
        self
    }

    fn run(&self, previous: Option<&CustomerStackStatus>, now: &Time) -> CustomerStackStatus {
        aggregate(&AggregateInput {
            generation: self.generation,
            paused: self.paused,
            spec_problems: &self.spec_problems,
            policy_violations: &self.policy_violations,
            children: &self.children,
            clusters: &self.clusters,
            foreign_objects: &self.foreign_objects,
            failed_objects: &self.failed_objects,
            deletion: self.deletion.as_ref(),
            previous,
            now,
            inventory: &[],
            refused_move: None,
        })
    }
}

fn condition<'a>(status: &'a CustomerStackStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

/// (status, reason, message) of a condition.
fn csrm<'a>(status: &'a CustomerStackStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = condition(status, type_);
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn child<'a>(status: &'a CustomerStackStatus, kind: ChildKind, name: &str) -> &'a ChildStatus {
    status
        .children
        .iter()
        .find(|c| c.kind == kind.as_str() && c.name == name)
        .unwrap()
}

fn types(status: &CustomerStackStatus) -> Vec<&str> {
    status.conditions.iter().map(|c| c.type_.as_str()).collect()
}

/// Asserts that feeding `status` back with a later `now` changes nothing.
#[track_caller]
fn assert_stable(scenario: &Scenario, status: &CustomerStackStatus) {
    let again = scenario.run(Some(status), &at(3_600));
    assert_eq!(&again, status);
}

#[test]
fn all_healthy_is_ready() {
    let scenario = Scenario::acme();
    let status = scenario.run(None, &at(0));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.children_ready.as_deref(), Some("6/6"));
    assert_eq!(
        status.summary,
        Some(StackSummary {
            total: 6,
            healthy: 6,
            ..StackSummary::default()
        })
    );
    assert_eq!(
        types(&status),
        ["Ready", "ChildrenApplied", "ClustersReachable"]
    );
    assert_eq!(
        csrm(&status, "Ready"),
        ("True", "Ready", "all 6 children are Healthy")
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        ("True", "Applied", "all 6 children written")
    );
    assert_eq!(
        csrm(&status, "ClustersReachable"),
        (
            "True",
            "Reachable",
            "all member clusters answer: graf-1, prom-1"
        )
    );
    for c in &status.conditions {
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, at(0));
    }
    let prometheus = child(&status, ChildKind::Prometheus, "acme");
    assert_eq!(
        prometheus,
        &ChildStatus {
            cluster: PROM.into(),
            kind: "Prometheus".into(),
            namespace: "customer-acme".into(),
            name: "acme".into(),
            verdict: Verdict::Healthy,
            reason: "Available".into(),
            message: "Prometheus customer-acme/acme: ok".into(),
            last_observed: Some(at(0)),
            last_known_verdict: None,
        }
    );
    assert_stable(&scenario, &status);
}

#[test]
fn same_input_gives_the_same_status() {
    let scenario = Scenario::acme().with(
        ChildKind::GrafanaDashboard,
        "overview",
        ObservedState::Applying,
    );
    let first = scenario.run(None, &at(0));
    assert_eq!(scenario.run(None, &at(0)), first);
    assert_eq!(scenario.run(Some(&first), &at(0)), first);
}

#[test]
fn children_are_sorted_by_cluster_kind_namespace_name() {
    let mut scenario = Scenario::acme();
    scenario.children.reverse();
    scenario.children.push(observe(
        GRAF,
        ChildKind::GrafanaDashboard,
        "a-namespace",
        "zz",
        ObservedState::Applying,
    ));
    scenario.children.push(observe(
        GRAF,
        ChildKind::GrafanaDashboard,
        "customer-acme",
        "errors",
        ObservedState::Applying,
    ));
    let status = scenario.run(None, &at(0));
    let order: Vec<(&str, &str, &str, &str)> = status
        .children
        .iter()
        .map(|c| {
            (
                c.cluster.as_str(),
                c.kind.as_str(),
                c.namespace.as_str(),
                c.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (GRAF, "GrafanaDashboard", "a-namespace", "zz"),
            (GRAF, "GrafanaDashboard", "customer-acme", "errors"),
            (GRAF, "GrafanaDashboard", "customer-acme", "overview"),
            (
                GRAF,
                "GrafanaDatasource",
                "customer-acme",
                "acme-prometheus"
            ),
            (GRAF, "GrafanaFolder", "customer-acme", "acme"),
            (PROM, "Prometheus", "customer-acme", "acme"),
            (PROM, "PrometheusRule", "customer-acme", "acme-alerts"),
            (PROM, "ServiceMonitor", "customer-acme", "acme-api"),
        ]
    );
    // Input order does not matter.
    let mut shuffled = scenario.clone();
    shuffled.children.rotate_left(3);
    assert_eq!(shuffled.run(None, &at(0)), status);
}

fn no_matching_instance() -> ObservedState {
    ObservedState::Live(ChildHealth::new(
        Verdict::Degraded,
        HealthReason::NoMatchingInstance,
        "GrafanaDatasource customer-acme/acme-prometheus: no ready Grafana instance matches the instanceSelector (status.NoMatchingInstances is true)",
    ))
}

#[test]
fn a_datasource_without_instance_names_the_datasource_and_cluster() {
    let scenario = Scenario::acme().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        no_matching_instance(),
    );
    let status = scenario.run(None, &at(0));
    assert_eq!(status.children_ready.as_deref(), Some("5/6"));
    assert_eq!(
        status.summary,
        Some(StackSummary {
            total: 6,
            healthy: 5,
            degraded: 1,
            ..StackSummary::default()
        })
    );
    let datasource = child(&status, ChildKind::GrafanaDatasource, "acme-prometheus");
    assert_eq!(
        (datasource.verdict, datasource.reason.as_str()),
        (Verdict::Degraded, "NoMatchingInstance")
    );
    assert_eq!(
        csrm(&status, "Ready"),
        (
            "False",
            "ChildDegraded",
            "GrafanaDatasource customer-acme/acme-prometheus: no ready Grafana instance matches the instanceSelector (status.NoMatchingInstances is true) (on graf-1)"
        )
    );
    // Nothing wrong with the writes or the clusters.
    assert_eq!(condition(&status, "ChildrenApplied").status, "True");
    assert_eq!(condition(&status, "ClustersReachable").status, "True");
    assert_stable(&scenario, &status);
}

#[test]
fn a_child_message_that_does_not_name_the_child_gets_its_name() {
    let scenario = Scenario::acme()
        .with(
            ChildKind::Prometheus,
            "acme",
            ObservedState::Live(ChildHealth::new(
                Verdict::Degraded,
                HealthReason::NoPodReady,
                "0 of 2 replicas available",
            )),
        )
        .with(
            ChildKind::GrafanaDatasource,
            "acme-prometheus",
            no_matching_instance(),
        )
        .with(
            ChildKind::GrafanaDashboard,
            "overview",
            ObservedState::Applying,
        );
    let status = scenario.run(None, &at(0));
    // The Prometheus is the most telling of the three; the other two are counted.
    let (_, reason, message) = csrm(&status, "Ready");
    assert_eq!(reason, "ChildDegraded");
    assert_eq!(
        message,
        "Prometheus customer-acme/acme on prom-1: 0 of 2 replicas available (+2 more not Healthy)"
    );

    let prometheus_only = Scenario::acme().with(
        ChildKind::Prometheus,
        "acme",
        ObservedState::Live(ChildHealth::new(
            Verdict::Degraded,
            HealthReason::NoPodReady,
            "0 of 2 replicas available",
        )),
    );
    assert_eq!(
        csrm(&prometheus_only.run(None, &at(0)), "Ready").2,
        "Prometheus customer-acme/acme on prom-1: 0 of 2 replicas available"
    );
    // A message naming a longer name is not taken for this child's.
    let lookalike = Scenario::acme().with(
        ChildKind::Prometheus,
        "acme",
        ObservedState::Live(ChildHealth::new(
            Verdict::Degraded,
            HealthReason::NoPodReady,
            "Prometheus customer-acme/acme-2: down",
        )),
    );
    assert_eq!(
        csrm(&lookalike.run(None, &at(0)), "Ready").2,
        "Prometheus customer-acme/acme on prom-1: Prometheus customer-acme/acme-2: down"
    );
}

#[test]
fn ready_names_the_worst_verdict_first() {
    let suspended = ObservedState::Live(ChildHealth::new(
        Verdict::Suspended,
        HealthReason::Suspended,
        "GrafanaDashboard customer-acme/overview: reconciliation is suspended",
    ));
    let unknown = ObservedState::Live(ChildHealth::new(
        Verdict::Unknown,
        HealthReason::StatusNotReported,
        "ServiceMonitor customer-acme/acme-api: no status",
    ));
    let scenario = Scenario::acme()
        .with(ChildKind::GrafanaFolder, "acme", ObservedState::Applying)
        .with(ChildKind::ServiceMonitor, "acme-api", unknown)
        .with(ChildKind::GrafanaDashboard, "overview", suspended);
    let status = scenario.run(None, &at(0));
    assert_eq!(
        csrm(&status, "Ready"),
        (
            "False",
            "ChildSuspended",
            "GrafanaDashboard customer-acme/overview: reconciliation is suspended (on graf-1) (+2 more not Healthy)"
        )
    );
    let scenario = scenario.with(
        ChildKind::GrafanaDashboard,
        "overview",
        ObservedState::Applying,
    );
    let status = scenario.run(None, &at(0));
    let (_, reason, message) = csrm(&status, "Ready");
    assert_eq!(reason, "ChildUnknown");
    assert!(message.starts_with("ServiceMonitor customer-acme/acme-api: no status (on prom-1)"));
}

#[test]
fn applying_children_are_progressing() {
    let scenario = Scenario::acme()
        .with(
            ChildKind::GrafanaDashboard,
            "overview",
            ObservedState::Applying,
        )
        .with(
            ChildKind::PrometheusRule,
            "acme-alerts",
            ObservedState::Applying,
        );
    let status = scenario.run(None, &at(0));
    let dashboard = child(&status, ChildKind::GrafanaDashboard, "overview");
    assert_eq!(
        (
            dashboard.verdict,
            dashboard.reason.as_str(),
            dashboard.message.as_str()
        ),
        (
            Verdict::Progressing,
            "Applying",
            "written; waiting for grafana-operator to report"
        )
    );
    let rule = child(&status, ChildKind::PrometheusRule, "acme-alerts");
    assert_eq!(
        rule.message,
        "written; waiting for prometheus-operator to report"
    );
    assert_eq!(
        csrm(&status, "Ready"),
        (
            "False",
            "ChildProgressing",
            "GrafanaDashboard customer-acme/overview on graf-1: written; waiting for grafana-operator to report (+1 more not Healthy)"
        )
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        ("True", "Applied", "all 6 children written")
    );
    assert_eq!(status.summary.as_ref().unwrap().progressing, 2);
    assert_stable(&scenario, &status);
}

#[test]
fn missing_children_are_pending() {
    let scenario = Scenario::acme()
        .with(
            ChildKind::GrafanaDashboard,
            "overview",
            ObservedState::Missing,
        )
        .with(ChildKind::GrafanaFolder, "acme", ObservedState::Missing);
    let status = scenario.run(None, &at(0));
    let folder = child(&status, ChildKind::GrafanaFolder, "acme");
    assert_eq!(
        (
            folder.verdict,
            folder.reason.as_str(),
            folder.message.as_str()
        ),
        (Verdict::Progressing, "NotCreated", "not created yet")
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        (
            "False",
            "Pending",
            "not everything could be written yet: 2 children missing"
        )
    );
    assert_eq!(csrm(&status, "Ready").1, "ChildProgressing");
}

#[test]
fn conflict_wins_over_degraded() {
    let scenario = Scenario::acme()
        .with(
            ChildKind::GrafanaDatasource,
            "acme-prometheus",
            no_matching_instance(),
        )
        .with(
            ChildKind::Prometheus,
            "acme",
            ObservedState::Conflict {
                owner: "CustomerStack team-b/acme".into(),
            },
        )
        .with(
            ChildKind::ServiceMonitor,
            "acme-api",
            ObservedState::Conflict {
                owner: "not managed by stacksmith".into(),
            },
        );
    let status = scenario.run(None, &at(0));
    let prometheus = child(&status, ChildKind::Prometheus, "acme");
    assert_eq!(
        (
            prometheus.verdict,
            prometheus.reason.as_str(),
            prometheus.message.as_str()
        ),
        (
            Verdict::Degraded,
            "Conflict",
            "Prometheus customer-acme/acme on prom-1 exists and belongs to CustomerStack team-b/acme; stacksmith will not overwrite it"
        )
    );
    assert_eq!(
        csrm(&status, "Ready"),
        ("False", "Conflict", prometheus.message.as_str())
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        (
            "False",
            "Conflict",
            "Prometheus customer-acme/acme on prom-1 (owned by CustomerStack team-b/acme); ServiceMonitor customer-acme/acme-api on prom-1 (owned by not managed by stacksmith)"
        )
    );
    assert_eq!(status.summary.as_ref().unwrap().degraded, 3);
    assert_stable(&scenario, &status);
}

#[test]
fn apply_failures_are_named() {
    let scenario = Scenario::acme()
        .with(
            ChildKind::GrafanaDatasource,
            "acme-prometheus",
            no_matching_instance(),
        )
        .with(
            ChildKind::GrafanaDashboard,
            "overview",
            ObservedState::ApplyFailed {
                message: "admission webhook denied the request".into(),
            },
        )
        .with(
            ChildKind::PrometheusRule,
            "acme-alerts",
            ObservedState::ApplyFailed {
                message: "forbidden".into(),
            },
        );
    let status = scenario.run(None, &at(0));
    let expected = "writing GrafanaDashboard customer-acme/overview on graf-1 failed: admission webhook denied the request";
    assert_eq!(
        child(&status, ChildKind::GrafanaDashboard, "overview").message,
        expected
    );
    assert_eq!(csrm(&status, "Ready"), ("False", "ApplyFailed", expected));
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        (
            "False",
            "ApplyFailed",
            format!("{expected} (and 1 more)").as_str()
        )
    );
}

#[test]
fn an_unreachable_cluster_keeps_what_was_last_known() {
    let healthy = Scenario::acme();
    let first = healthy.run(None, &at(0));

    let down = Scenario::acme().unreachable(PROM, "connection refused");
    let second = down.run(Some(&first), &at(60));
    let prometheus = child(&second, ChildKind::Prometheus, "acme");
    assert_eq!(
        prometheus,
        &ChildStatus {
            cluster: PROM.into(),
            kind: "Prometheus".into(),
            namespace: "customer-acme".into(),
            name: "acme".into(),
            verdict: Verdict::Unknown,
            reason: "ClusterUnreachable".into(),
            message:
                "cluster prom-1 unreachable (connection refused); last known: Healthy (Available)"
                    .into(),
            last_observed: Some(at(0)),
            last_known_verdict: Some(Verdict::Healthy),
        }
    );
    // Children on the reachable cluster are untouched.
    assert_eq!(
        child(&second, ChildKind::GrafanaFolder, "acme"),
        child(&first, ChildKind::GrafanaFolder, "acme")
    );
    assert_eq!(second.children_ready.as_deref(), Some("3/6"));
    assert_eq!(second.summary.as_ref().unwrap().unknown, 3);
    assert_eq!(
        csrm(&second, "Ready"),
        (
            "False",
            "ClusterUnreachable",
            "cluster prom-1 unreachable: connection refused; its children's health is unknown"
        )
    );
    assert_eq!(
        csrm(&second, "ChildrenApplied"),
        (
            "False",
            "Pending",
            "not everything could be written yet: cluster(s) prom-1 unreachable"
        )
    );
    assert_eq!(
        csrm(&second, "ClustersReachable"),
        ("False", "ClusterUnreachable", "prom-1: connection refused")
    );

    // A second pass: the last known verdict and the time it was seen survive.
    let third = down.run(Some(&second), &at(120));
    assert_eq!(third, second);
    let prometheus = child(&third, ChildKind::Prometheus, "acme");
    assert_eq!(prometheus.last_known_verdict, Some(Verdict::Healthy));
    assert_eq!(prometheus.last_observed, Some(at(0)));

    // The reason changes; what was last known does not.
    let timeout = Scenario::acme().unreachable(PROM, "timeout");
    let fourth = timeout.run(Some(&third), &at(180));
    let prometheus = child(&fourth, ChildKind::Prometheus, "acme");
    assert_eq!(
        prometheus.message,
        "cluster prom-1 unreachable (timeout); last known: Healthy (Available)"
    );
    assert_eq!(prometheus.last_known_verdict, Some(Verdict::Healthy));
    assert_eq!(prometheus.last_observed, Some(at(0)));

    // Back: the children are observed anew.
    let back = healthy.run(Some(&fourth), &at(240));
    let prometheus = child(&back, ChildKind::Prometheus, "acme");
    assert_eq!(prometheus.last_known_verdict, None);
    assert_eq!(prometheus.last_observed, Some(at(240)));
    assert_eq!(csrm(&back, "Ready").0, "True");
    assert_eq!(condition(&back, "Ready").last_transition_time, at(240));
    assert_eq!(
        condition(&back, "ClustersReachable").last_transition_time,
        at(240)
    );
}

#[test]
fn a_degraded_child_stays_known_as_degraded_while_unreachable() {
    let scenario = Scenario::acme().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        no_matching_instance(),
    );
    let first = scenario.run(None, &at(0));
    let down = scenario.clone().unreachable(GRAF, "no route to host");
    let second = down.run(Some(&first), &at(60));
    let third = down.run(Some(&second), &at(120));
    let datasource = child(&third, ChildKind::GrafanaDatasource, "acme-prometheus");
    assert_eq!(datasource.last_known_verdict, Some(Verdict::Degraded));
    assert_eq!(
        datasource.message,
        "cluster graf-1 unreachable (no route to host); last known: Degraded (NoMatchingInstance)"
    );
    assert_eq!(third, second);
}

#[test]
fn a_child_never_seen_on_an_unreachable_cluster() {
    let scenario = Scenario::acme()
        .unreachable(GRAF, "connection refused")
        .unreachable(PROM, "i/o timeout");
    let first = scenario.run(None, &at(0));
    let folder = child(&first, ChildKind::GrafanaFolder, "acme");
    assert_eq!(
        folder.message,
        "cluster graf-1 unreachable (connection refused); never observed"
    );
    assert_eq!(
        (folder.last_observed.as_ref(), folder.last_known_verdict),
        (None, None)
    );
    assert_eq!(
        csrm(&first, "Ready").2,
        "cluster graf-1 unreachable: connection refused; its children's health is unknown (also unreachable: prom-1)"
    );
    assert_eq!(
        csrm(&first, "ClustersReachable").2,
        "graf-1: connection refused; prom-1: i/o timeout"
    );
    assert_eq!(first.children_ready.as_deref(), Some("0/6"));
    let second = scenario.run(Some(&first), &at(60));
    assert_eq!(second, first);
}

#[test]
fn paused_stacks_write_nothing() {
    let mut scenario = Scenario::acme()
        .with(
            ChildKind::GrafanaDashboard,
            "overview",
            ObservedState::Missing,
        )
        .with(ChildKind::GrafanaFolder, "acme", ObservedState::Missing);
    scenario.paused = true;
    let status = scenario.run(None, &at(0));
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        (
            "Unknown",
            "Paused",
            "spec.paused is true: stacksmith writes nothing"
        )
    );
    let dashboard = child(&status, ChildKind::GrafanaDashboard, "overview");
    assert_eq!(
        (
            dashboard.verdict,
            dashboard.reason.as_str(),
            dashboard.message.as_str()
        ),
        (
            Verdict::Unknown,
            "Paused",
            "not created: the stack is paused"
        )
    );
    assert_eq!(status.summary.as_ref().unwrap().unknown, 2);
    assert_eq!(csrm(&status, "Ready").1, "ChildUnknown");
    // Existing children are still reported.
    assert_eq!(
        child(&status, ChildKind::Prometheus, "acme").verdict,
        Verdict::Healthy
    );
    assert_stable(&scenario, &status);
}

#[test]
fn spec_problems_are_invalid_spec() {
    let scenario = Scenario {
        generation: Some(7),
        paused: false,
        spec_problems: vec![
            SpecProblem {
                field: "spec.metrics.cluster".into(),
                message: "MemberCluster \"prom-9\" not found".into(),
            },
            SpecProblem {
                field: "spec.dashboards.cluster".into(),
                message: "MemberCluster \"graf-9\" not found".into(),
            },
            SpecProblem {
                field: "spec.dashboards.dashboards[0]".into(),
                message: "set exactly one of json and url".into(),
            },
        ],
        policy_violations: vec![],
        children: vec![],
        clusters: vec![],
        foreign_objects: vec![],
        failed_objects: vec![],
        deletion: None,
    };
    let status = scenario.run(None, &at(0));
    let expected = "spec.metrics.cluster: MemberCluster \"prom-9\" not found (and 2 more problems)";
    assert_eq!(csrm(&status, "Ready"), ("False", "InvalidSpec", expected));
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        ("False", "InvalidSpec", expected)
    );
    assert_eq!(csrm(&status, "ClustersReachable").0, "Unknown");
    assert_eq!(csrm(&status, "ClustersReachable").1, "NotChecked");
    assert!(status.children.is_empty());
    assert_eq!(status.children_ready.as_deref(), Some("0/0"));
    assert_eq!(status.summary, Some(StackSummary::default()));
    assert_eq!(status.observed_generation, Some(7));
    assert_stable(&scenario, &status);

    let mut one = scenario.clone();
    one.spec_problems.truncate(1);
    assert_eq!(
        csrm(&one.run(None, &at(0)), "Ready").2,
        "spec.metrics.cluster: MemberCluster \"prom-9\" not found"
    );
}

#[test]
fn policy_violations_are_their_own_reason() {
    let scenario = Scenario {
        generation: Some(4),
        policy_violations: vec![
            SpecProblem {
                field: "spec.metrics.replicas".into(),
                message: "3 is more than TenantPolicy \"gold\" allows (limits.maxReplicas: 2)"
                    .into(),
            },
            SpecProblem {
                field: "spec.dashboards.namespace".into(),
                message: "\"grafana\" is not a Grafana namespace TenantPolicy \"gold\" allows"
                    .into(),
            },
        ],
        children: vec![],
        clusters: vec![],
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    let expected = "spec.metrics.replicas: 3 is more than TenantPolicy \"gold\" allows \
                    (limits.maxReplicas: 2) (and 1 more problems)";
    assert_eq!(
        csrm(&status, "Ready"),
        ("False", "PolicyViolation", expected)
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        ("False", "PolicyViolation", expected)
    );
    assert_eq!(
        csrm(&status, "ClustersReachable"),
        (
            "Unknown",
            "NotChecked",
            "not checked: the stack breaks its tenant policy"
        )
    );
    let cause = status.root_cause.clone().unwrap();
    assert_eq!(cause.reason, "PolicyViolation");
    assert_eq!(cause.field, "spec.metrics.replicas");
    assert!(status.children.is_empty());
    assert_stable(&scenario, &status);
}

#[test]
fn nothing_planned_is_not_ready() {
    let scenario = Scenario {
        children: vec![],
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    assert_eq!(
        csrm(&status, "Ready"),
        ("False", "NoChildren", "nothing planned")
    );
    assert_eq!(
        csrm(&status, "ChildrenApplied"),
        ("True", "Applied", "all 0 children written")
    );
}

#[test]
fn deletion_in_progress() {
    let scenario = Scenario {
        deletion: Some(DeletionState::InProgress { remaining: 4 }),
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    assert_eq!(
        types(&status),
        [
            "Ready",
            "ChildrenApplied",
            "ClustersReachable",
            "DeletionBlocked"
        ]
    );
    assert_eq!(
        csrm(&status, "Ready"),
        ("False", "Deleting", "deleting: 4 children left")
    );
    assert_eq!(
        csrm(&status, "DeletionBlocked"),
        ("False", "Deleting", "4 children left to delete")
    );
    assert_stable(&scenario, &status);
}

#[test]
fn deletion_blocked_by_unreachable_clusters() {
    let scenario = Scenario {
        deletion: Some(DeletionState::Blocked {
            clusters: vec![GRAF.into(), PROM.into()],
        }),
        ..Scenario::acme()
            .unreachable(GRAF, "connection refused")
            .unreachable(PROM, "connection refused")
    };
    let status = scenario.run(None, &at(0));
    let expected = "deletion blocked: cluster(s) graf-1, prom-1 unreachable; their children are kept until they answer";
    assert_eq!(
        csrm(&status, "Ready"),
        ("False", "DeletionBlocked", expected)
    );
    assert_eq!(
        csrm(&status, "DeletionBlocked"),
        ("True", "ClusterUnreachable", expected)
    );
    assert_eq!(condition(&status, "ClustersReachable").status, "False");
    assert_stable(&scenario, &status);
}

#[test]
fn last_transition_time_moves_only_when_ready_flips() {
    let healthy = Scenario::acme();
    let degraded = Scenario::acme().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        no_matching_instance(),
    );
    let t0 = healthy.run(None, &at(0));
    let t1 = degraded.run(Some(&t0), &at(10));
    assert_eq!(condition(&t1, "Ready").last_transition_time, at(10));
    assert_eq!(
        condition(&t1, "ChildrenApplied").last_transition_time,
        at(0)
    );
    assert_eq!(
        condition(&t1, "ClustersReachable").last_transition_time,
        at(0)
    );
    // Still False, for another reason: the time stays.
    let worse = degraded.clone().with(
        ChildKind::GrafanaDashboard,
        "overview",
        ObservedState::Applying,
    );
    let t2 = worse.run(Some(&t1), &at(20));
    assert_ne!(
        condition(&t2, "Ready").message,
        condition(&t1, "Ready").message
    );
    assert_eq!(condition(&t2, "Ready").last_transition_time, at(10));
    let t3 = healthy.run(Some(&t2), &at(30));
    assert_eq!(condition(&t3, "Ready").last_transition_time, at(30));
    assert_eq!(
        condition(&t3, "ChildrenApplied").last_transition_time,
        at(0)
    );
}

#[test]
fn last_observed_moves_only_when_the_child_changes() {
    let healthy = Scenario::acme();
    let t0 = healthy.run(None, &at(0));
    let t1 = healthy.run(Some(&t0), &at(10));
    assert!(t1.children.iter().all(|c| c.last_observed == Some(at(0))));
    let degraded = Scenario::acme().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        no_matching_instance(),
    );
    let t2 = degraded.run(Some(&t1), &at(20));
    assert_eq!(
        child(&t2, ChildKind::GrafanaDatasource, "acme-prometheus").last_observed,
        Some(at(20))
    );
    assert_eq!(
        child(&t2, ChildKind::GrafanaFolder, "acme").last_observed,
        Some(at(0))
    );
    // Same verdict and reason, new message: observed anew.
    let reworded = Scenario::acme().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        ObservedState::Live(ChildHealth::new(
            Verdict::Degraded,
            HealthReason::NoMatchingInstance,
            "GrafanaDatasource customer-acme/acme-prometheus: still no instance",
        )),
    );
    let t3 = reworded.run(Some(&t2), &at(30));
    assert_eq!(
        child(&t3, ChildKind::GrafanaDatasource, "acme-prometheus").last_observed,
        Some(at(30))
    );
}

#[test]
fn cluster_scoped_children_are_named_without_namespace() {
    let scenario = Scenario {
        children: vec![observe(
            GRAF,
            ChildKind::GrafanaFolder,
            "",
            "acme",
            ObservedState::ApplyFailed {
                message: "forbidden".into(),
            },
        )],
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    assert_eq!(
        csrm(&status, "Ready").2,
        "writing GrafanaFolder acme on graf-1 failed: forbidden"
    );
}

#[test]
fn deletion_keeps_the_last_known_children() {
    let healthy = Scenario::acme().run(None, &at(0));
    let scenario = Scenario {
        deletion: Some(DeletionState::InProgress { remaining: 2 }),
        children: Vec::new(),
        ..Scenario::acme()
    };
    let status = scenario.run(Some(&healthy), &at(10));
    assert_eq!(status.children, healthy.children);
    assert_eq!(status.children_ready, healthy.children_ready);
    let (s, r, _) = csrm(&status, "ChildrenApplied");
    assert_eq!((s, r), ("Unknown", "Deleting"));
    assert_eq!(csrm(&status, "Ready").1, "Deleting");
}

#[test]
fn a_foreign_namespace_is_a_conflict_naming_it() {
    let scenario = Scenario {
        foreign_objects: vec![ForeignObject {
            cluster: PROM.into(),
            kind: "Namespace".into(),
            name: "customer-acme".into(),
            owner: "an owner that is not stacksmith".into(),
        }],
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    let (s, r, m) = csrm(&status, "Ready");
    assert_eq!((s, r), ("False", "Conflict"));
    assert_eq!(
        m,
        "Namespace customer-acme on prom-1 belongs to an owner that is not stacksmith; stacksmith writes nothing into it"
    );
    let (_, r, m) = csrm(&status, "ChildrenApplied");
    assert_eq!(r, "Conflict");
    assert!(m.contains("Namespace customer-acme on prom-1"));
}

#[test]
fn a_failed_write_of_a_non_child_object_keeps_the_stack_from_ready() {
    // Every child Healthy, but the Prometheus' Role could not be written.
    let scenario = Scenario {
        failed_objects: vec![FailedObject {
            cluster: PROM.into(),
            kind: "Role".into(),
            namespace: "customer-acme".into(),
            name: "prometheus-acme".into(),
            message: "403 Forbidden".into(),
            operation: FailedOperation::Write,
        }],
        ..Scenario::acme()
    };
    let status = scenario.run(None, &at(0));
    let (s, r, m) = csrm(&status, "Ready");
    assert_eq!((s, r), ("False", "ApplyFailed"));
    assert_eq!(
        m,
        "writing Role customer-acme/prometheus-acme on prom-1 failed: 403 Forbidden"
    );
    let (s, r, m) = csrm(&status, "ChildrenApplied");
    assert_eq!((s, r), ("False", "ApplyFailed"));
    assert!(m.contains("Role customer-acme/prometheus-acme"), "{m}");
}

#[test]
fn the_datasource_is_named_before_the_folder_and_dashboards() {
    let mut scenario = Scenario::acme();
    for child in scenario.children.iter_mut().filter(|c| c.cluster == GRAF) {
        child.state = no_matching_instance();
    }
    let status = scenario.run(None, &at(0));
    let (_, reason, message) = csrm(&status, "Ready");
    assert_eq!(reason, "ChildDegraded");
    assert!(message.starts_with("GrafanaDatasource "), "{message}");
    assert!(message.ends_with("(+2 more not Healthy)"), "{message}");
}

/// The `acme` stack with a dedicated `Grafana` instance `customer-acme/acme` on the Grafana
/// cluster (Healthy, like the rest).
fn acme_with_dedicated_grafana() -> Scenario {
    let mut scenario = Scenario::acme();
    scenario.children.push(observe(
        GRAF,
        ChildKind::Grafana,
        "customer-acme",
        "acme",
        healthy(ChildKind::Grafana, "customer-acme", "acme"),
    ));
    scenario
}

/// What the datasource, folder and dashboards report while their instance is not ready.
fn waiting_for_instance(kind: ChildKind, name: &str) -> ObservedState {
    ObservedState::Live(ChildHealth::new(
        Verdict::Degraded,
        HealthReason::NoMatchingInstance,
        format!(
            "{kind} customer-acme/{name}: no ready Grafana instance matches the instanceSelector: Grafana customer-acme/acme is not ready (stage deployment: failed)"
        ),
    ))
}

#[test]
fn a_failed_dedicated_grafana_is_the_root_cause_not_its_children() {
    let mut scenario = acme_with_dedicated_grafana().with(
        ChildKind::Grafana,
        "acme",
        ObservedState::Live(ChildHealth::new(
            Verdict::Degraded,
            HealthReason::StageFailed,
            "Grafana customer-acme/acme: stage \"deployment\" failed: image pull failed",
        )),
    );
    for child in scenario
        .children
        .iter_mut()
        .filter(|c| c.cluster == GRAF && c.kind != ChildKind::Grafana)
    {
        child.state = waiting_for_instance(child.kind, &child.name);
    }
    let status = scenario.run(None, &at(0));
    assert_eq!(status.children_ready.as_deref(), Some("3/7"));
    assert_eq!(
        child(&status, ChildKind::Grafana, "acme").verdict,
        Verdict::Degraded
    );
    for (kind, name) in [
        (ChildKind::GrafanaFolder, "acme"),
        (ChildKind::GrafanaDatasource, "acme-prometheus"),
        (ChildKind::GrafanaDashboard, "overview"),
    ] {
        let waiting = child(&status, kind, name);
        assert_eq!(
            (waiting.verdict, waiting.reason.as_str()),
            (Verdict::Degraded, "NoMatchingInstance"),
            "{kind}"
        );
    }
    assert_eq!(
        csrm(&status, "Ready"),
        (
            "False",
            "ChildDegraded",
            "Grafana customer-acme/acme: stage \"deployment\" failed: image pull failed (on graf-1) (+3 more not Healthy)"
        )
    );
    assert_eq!(
        status.root_cause,
        Some(RootCause {
            reason: reason::CHILD_DEGRADED.into(),
            cluster: GRAF.into(),
            kind: "Grafana".into(),
            namespace: "customer-acme".into(),
            name: "acme".into(),
            field: String::new(),
        })
    );
    assert_stable(&scenario, &status);
}

#[test]
fn a_dedicated_grafana_coming_up_is_named_rather_than_its_waiting_children() {
    let mut scenario =
        acme_with_dedicated_grafana().with(ChildKind::Grafana, "acme", ObservedState::Applying);
    for child in scenario
        .children
        .iter_mut()
        .filter(|c| c.cluster == GRAF && c.kind != ChildKind::Grafana)
    {
        child.state = waiting_for_instance(child.kind, &child.name);
    }
    let status = scenario.run(None, &at(0));
    // The children are Degraded, the instance only Progressing: still the instance is named.
    let (_, reason, message) = csrm(&status, "Ready");
    assert_eq!(reason, "ChildProgressing");
    assert!(
        message.starts_with("Grafana customer-acme/acme on graf-1: "),
        "{message}"
    );
    let cause = status.root_cause.unwrap();
    assert_eq!(
        (cause.kind.as_str(), cause.name.as_str()),
        ("Grafana", "acme")
    );

    // A trouble of its own on the Prometheus side is still worse than an instance coming up.
    let scenario = scenario.with(
        ChildKind::Prometheus,
        "acme",
        ObservedState::Live(ChildHealth::new(
            Verdict::Degraded,
            HealthReason::NoPodReady,
            "Prometheus customer-acme/acme: no pod ready",
        )),
    );
    let cause = scenario.run(None, &at(0)).root_cause.unwrap();
    assert_eq!(cause.kind, "Prometheus");
}

#[test]
fn with_a_healthy_dedicated_grafana_its_children_are_named_as_usual() {
    let scenario = acme_with_dedicated_grafana().with(
        ChildKind::GrafanaDatasource,
        "acme-prometheus",
        no_matching_instance(),
    );
    let cause = scenario.run(None, &at(0)).root_cause.unwrap();
    assert_eq!(
        (cause.kind.as_str(), cause.name.as_str()),
        ("GrafanaDatasource", "acme-prometheus")
    );
}

#[test]
fn the_root_cause_is_written_as_data_beside_the_message() {
    let now = at(0);
    let ready = Scenario::acme().run(None, &now);
    assert_eq!(ready.root_cause, None, "a Ready stack has no root cause");

    let degraded = Scenario::acme()
        .with(
            ChildKind::GrafanaDatasource,
            "acme-prometheus",
            ObservedState::Live(ChildHealth::new(
                Verdict::Degraded,
                HealthReason::NoMatchingInstance,
                "no Grafana",
            )),
        )
        .run(None, &now);
    assert_eq!(
        degraded.root_cause,
        Some(RootCause {
            reason: reason::CHILD_DEGRADED.into(),
            cluster: GRAF.into(),
            kind: "GrafanaDatasource".into(),
            namespace: "customer-acme".into(),
            name: "acme-prometheus".into(),
            field: String::new(),
        })
    );
    assert_eq!(
        condition(&degraded, condition_type::READY).reason,
        reason::CHILD_DEGRADED
    );

    let unreachable = Scenario::acme()
        .unreachable(PROM, "connection refused")
        .run(None, &now);
    let cause = unreachable.root_cause.unwrap();
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.cluster.as_str(),
            cause.kind.as_str()
        ),
        (reason::CLUSTER_UNREACHABLE, PROM, ""),
        "a whole cluster, no one object"
    );

    let mut invalid = Scenario::acme();
    invalid.spec_problems = vec![SpecProblem {
        field: "spec.metrics.cluster".into(),
        message: "no MemberCluster named prom-9".into(),
    }];
    let cause = invalid.run(None, &now).root_cause.unwrap();
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        (reason::INVALID_SPEC, "spec.metrics.cluster")
    );

    let mut foreign = Scenario::acme();
    foreign.foreign_objects = vec![ForeignObject {
        cluster: PROM.into(),
        kind: "ServiceAccount".into(),
        name: "customer-acme/prometheus-acme".into(),
        owner: "an owner that is not stacksmith".into(),
    }];
    let cause = foreign.run(None, &now).root_cause.unwrap();
    assert_eq!(
        (
            cause.kind.as_str(),
            cause.namespace.as_str(),
            cause.name.as_str()
        ),
        ("ServiceAccount", "customer-acme", "prometheus-acme")
    );
}

#[test]
fn a_failed_delete_of_an_unplanned_object_keeps_the_stack_from_ready() {
    let failed = FailedObject {
        cluster: GRAF.into(),
        kind: "GrafanaDashboard".into(),
        namespace: "customer-acme".into(),
        name: "acme-old".into(),
        message: "403 Forbidden".into(),
        operation: FailedOperation::Delete,
    };
    let status = Scenario {
        failed_objects: vec![failed.clone()],
        ..Scenario::acme()
    }
    .run(None, &at(0));
    let ready = condition(&status, condition_type::READY);
    assert_eq!(ready.reason, reason::APPLY_FAILED);
    assert_eq!(
        ready.message,
        "deleting GrafanaDashboard customer-acme/acme-old on graf-1 failed: 403 Forbidden"
    );
    assert_eq!(
        status.root_cause.map(|c| (c.kind, c.name)),
        Some(("GrafanaDashboard".to_owned(), "acme-old".to_owned()))
    );
}

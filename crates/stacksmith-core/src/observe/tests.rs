use serde_json::json;

use super::*;
use crate::health::Verdict;

fn desired(kind: ObjectKind, namespace: &str, name: &str) -> DesiredObject {
    DesiredObject {
        cluster: "prom-1".to_owned(),
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        manifest: json!({}),
    }
}

fn rule() -> DesiredObject {
    desired(
        ObjectKind::Child(ChildKind::PrometheusRule),
        "customer-acme",
        "acme-core",
    )
}

fn healthy(_: ChildKind, _: &Value) -> ChildHealth {
    ChildHealth::new(Verdict::Healthy, HealthReason::Accepted, "fine")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn ownership_is_read_from_the_labels() {
    let ours = labels(&[(MANAGED_BY, MANAGED_BY_VALUE), (STACK_UID, "u1")]);
    assert_eq!(ownership(&ours, "u1", "prom-1"), Ownership::Ours);
    let other = labels(&[
        (MANAGED_BY, MANAGED_BY_VALUE),
        (STACK_UID, "u2"),
        (STACK_NAMESPACE, "team-b"),
        (STACK_NAME, "globex"),
    ]);
    assert_eq!(
        ownership(&other, "u1", "prom-1"),
        Ownership::Foreign("CustomerStack team-b/globex".to_owned())
    );
    assert_eq!(
        ownership(&labels(&[(STACK_UID, "u1")]), "u1", "prom-1"),
        Ownership::Foreign("an owner that is not stacksmith".to_owned()),
        "a uid label without the managed-by label is not proof"
    );
    let through = |member: &str| {
        labels(&[
            (MANAGED_BY, MANAGED_BY_VALUE),
            (STACK_UID, "u1"),
            (STACK_NAMESPACE, "team-a"),
            (STACK_NAME, "acme"),
            (WRITTEN_THROUGH, member),
        ])
    };
    assert_eq!(
        ownership(&through("prom-1"), "u1", "prom-1"),
        Ownership::Ours
    );
    assert_eq!(
        ownership(&through("prom-1-again"), "u1", "prom-1"),
        Ownership::Foreign("CustomerStack team-a/acme through MemberCluster prom-1-again".into()),
        "the same cluster registered twice: the other registration's objects are not this one's"
    );
}

#[test]
fn only_the_named_stacks_objects_for_the_same_customer_can_be_adopted() {
    let adopt = AdoptFrom {
        namespace: "team-a".into(),
        name: "acme-old".into(),
        customer: "acme".into(),
    };
    let base = [
        (MANAGED_BY, MANAGED_BY_VALUE),
        (STACK_UID, "old-uid"),
        (STACK_NAMESPACE, "team-a"),
        (STACK_NAME, "acme-old"),
        (CUSTOMER, "acme"),
    ];
    assert!(adoptable(&labels(&base), &adopt, "prom-1"));
    let mut through = base.to_vec();
    through.push((WRITTEN_THROUGH, "prom-1"));
    assert!(adoptable(&labels(&through), &adopt, "prom-1"));
    assert!(!adoptable(&labels(&through), &adopt, "prom-2"));
    for (key, value) in [
        (STACK_NAME, "acme-other"),
        (STACK_NAMESPACE, "team-b"),
        (CUSTOMER, "globex"),
        (MANAGED_BY, "helm"),
    ] {
        let mut changed = base.to_vec();
        changed.retain(|(k, _)| *k != key);
        changed.push((key, value));
        assert!(
            !adoptable(&labels(&changed), &adopt, "prom-1"),
            "{key}={value}"
        );
    }
}

#[test]
fn each_write_outcome_reads_as_one_observation() {
    let live = WriteOutcome::Unchanged(Box::new(json!({})));
    let kind = ChildKind::PrometheusRule;
    assert!(matches!(
        observed_state(kind, &live, healthy),
        ObservedState::Live(h) if h.verdict == Verdict::Healthy
    ));
    for wrote in [
        WriteOutcome::Created,
        WriteOutcome::Updated,
        WriteOutcome::AwaitingCache {
            left: Duration::from_secs(1),
        },
    ] {
        assert!(wrote.wrote());
        assert_eq!(
            observed_state(kind, &wrote, healthy),
            ObservedState::Applying
        );
    }
    let paused = WriteOutcome::NotWritten {
        existing: None,
        reason: NotWrittenReason::Paused,
    };
    assert_eq!(
        observed_state(kind, &paused, healthy),
        ObservedState::Missing
    );
    let blocked = WriteOutcome::NotWritten {
        existing: None,
        reason: NotWrittenReason::NamespaceUnavailable("namespace x belongs to y".into()),
    };
    assert_eq!(
        observed_state(kind, &blocked, healthy),
        ObservedState::ApplyFailed {
            message: "not written: namespace x belongs to y".into()
        }
    );
    let paused_but_there = WriteOutcome::NotWritten {
        existing: Some(Box::new(json!({}))),
        reason: NotWrittenReason::Paused,
    };
    assert!(matches!(
        observed_state(kind, &paused_but_there, healthy),
        ObservedState::Live(_)
    ));
    assert_eq!(
        observed_state(kind, &WriteOutcome::Conflict { owner: "o".into() }, healthy),
        ObservedState::Conflict { owner: "o".into() }
    );
}

#[test]
fn an_unreachable_cluster_makes_its_children_unreachable_and_skips_the_rest() {
    let planned = [desired(ObjectKind::Namespace, "", "customer-acme"), rule()];
    let writes = ClusterWrites::unavailable("prom-1", &planned, "connecting");
    let children = child_observations(&writes, healthy);
    assert_eq!(children.len(), 1, "the namespace is not a child");
    assert_eq!(
        children[0].state,
        ObservedState::ClusterUnreachable {
            message: "connecting".into()
        }
    );
    assert_eq!(children, unreachable_children(&planned, "connecting"));
}

#[test]
fn a_foreign_or_failed_namespace_blocks_what_is_planned_inside_it() {
    let namespace = desired(ObjectKind::Namespace, "", "customer-acme");
    let owner = WriteOutcome::Conflict {
        owner: "CustomerStack team-b/globex".into(),
    };
    let (why, foreign) = namespace_unavailable(&namespace, &owner).unwrap();
    assert_eq!(
        why,
        "namespace customer-acme belongs to CustomerStack team-b/globex"
    );
    assert_eq!(foreign.unwrap().kind, "Namespace");
    let failed = WriteOutcome::Failed {
        message: "403 Forbidden".into(),
    };
    let (why, foreign) = namespace_unavailable(&namespace, &failed).unwrap();
    assert!(why.ends_with("could not be written: 403 Forbidden"));
    assert!(foreign.is_none());
    assert!(namespace_unavailable(&namespace, &WriteOutcome::Created).is_none());
    assert!(
        namespace_unavailable(&rule(), &failed).is_none(),
        "only a namespace blocks"
    );
}

#[test]
fn problems_of_objects_that_are_not_children_are_reported_once() {
    let role = desired(ObjectKind::Role, "customer-acme", "prometheus-acme");
    let namespace = desired(ObjectKind::Namespace, "", "customer-acme");
    let already = ForeignObject {
        cluster: "prom-1".into(),
        kind: "Namespace".into(),
        name: "customer-acme".into(),
        owner: "x".into(),
    };
    let outcomes = [
        (
            role.clone(),
            WriteOutcome::Failed {
                message: "500".into(),
            },
        ),
        (namespace, WriteOutcome::Conflict { owner: "x".into() }),
        (
            desired(ObjectKind::ServiceAccount, "customer-acme", "sa"),
            WriteOutcome::Conflict { owner: "y".into() },
        ),
        (
            rule(),
            WriteOutcome::Failed {
                message: "child failures are not listed here".into(),
            },
        ),
    ];
    let (failed, foreign) = non_child_problems(&outcomes, std::slice::from_ref(&already));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, "Role");
    assert_eq!(foreign.len(), 2, "the namespace is not reported twice");
    assert_eq!(foreign[1].name, "customer-acme/sa");
}

#[test]
fn a_read_object_is_missing_foreign_or_judged() {
    let kind = ChildKind::GrafanaDatasource;
    let object = json!({});
    assert_eq!(
        observed_from_read(kind, None, healthy),
        ObservedState::Missing
    );
    assert_eq!(
        observed_from_read(
            kind,
            Some((&object, Ownership::Foreign("o".into()))),
            healthy
        ),
        ObservedState::Conflict { owner: "o".into() }
    );
    assert!(matches!(
        observed_from_read(kind, Some((&object, Ownership::Ours)), healthy),
        ObservedState::Live(_)
    ));
}

#[test]
fn a_changed_instance_selector_means_re_creating_the_grafana_child() {
    let datasource = ObjectKind::Child(ChildKind::GrafanaDatasource);
    let live =
        json!({"spec": {"instanceSelector": {"matchLabels": {"dashboards": "shared"}}, "x": 1}});
    let same = json!({"spec": {"instanceSelector": {"matchLabels": {"dashboards": "shared"}}}});
    let moved = json!({"spec": {"instanceSelector": {"matchLabels": {"dashboards": "acme"}}}});
    assert_eq!(immutable_change(datasource, &live, &same), None);
    assert_eq!(
        immutable_change(datasource, &live, &moved),
        Some("spec.instanceSelector")
    );
    assert_eq!(
        immutable_change(ObjectKind::Child(ChildKind::Prometheus), &live, &moved),
        None,
        "a Prometheus has no immutable field of ours"
    );
    let replacing = WriteOutcome::Replacing {
        field: "spec.instanceSelector",
        deleted_now: true,
    };
    assert!(replacing.wrote());
    assert_eq!(
        observed_state(ChildKind::GrafanaDatasource, &replacing, healthy),
        ObservedState::Applying
    );
}

#[test]
fn a_dashboard_without_the_planned_uid_is_re_created_with_it() {
    let dashboard = ObjectKind::Child(ChildKind::GrafanaDashboard);
    let selector = json!({"matchLabels": {"dashboards": "shared"}});
    let planned = json!({"spec": {"instanceSelector": selector, "uid": "acme_overview"}});
    // Written before stacksmith set uids: upstream refuses to add one in place.
    let before = json!({"spec": {"instanceSelector": selector, "json": "{}"}});
    assert_eq!(
        immutable_change(dashboard, &before, &planned),
        Some("spec.uid")
    );
    let current = json!({"spec": {"instanceSelector": selector, "uid": "acme_overview"}});
    assert_eq!(immutable_change(dashboard, &current, &planned), None);
    // A folder or datasource has no uid of ours.
    let folder = ObjectKind::Child(ChildKind::GrafanaFolder);
    assert_eq!(immutable_change(folder, &before, &planned), None);
}

#[test]
fn a_contested_child_is_judged_as_it_is_and_says_who_changes_what() {
    let contest = |fields: &[&str], managers: &[&str], millis| Contest {
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        managers: managers.iter().map(|m| (*m).to_owned()).collect(),
        retry_in: Duration::from_millis(millis),
        started: false,
    };
    let outcome = WriteOutcome::NotWritten {
        existing: Some(Box::new(json!({}))),
        reason: NotWrittenReason::Contested(contest(&["spec.replicas"], &["fighter"], 29_001)),
    };
    assert!(!outcome.wrote());
    let ObservedState::Live(health) = observed_state(ChildKind::Prometheus, &outcome, healthy)
    else {
        unreachable!("a contested child is live")
    };
    assert_eq!(health.verdict, Verdict::Healthy);
    assert!(
        health.message.starts_with(
            "spec.replicas is being changed by field manager \"fighter\"; stacksmith restores it in 30 s; "
        ),
        "{}",
        health.message
    );
    assert_eq!(
        contest(&["a", "b", "c", "d", "e"], &[], 0).to_string(),
        "a, b, c and 2 more are being changed by someone else; stacksmith restores it in 0 s"
    );
    assert_eq!(
        contest(&[], &["x", "y"], 1_000).to_string(),
        "its planned fields are being changed by field managers \"x\", \"y\"; stacksmith restores it in 1 s"
    );
}

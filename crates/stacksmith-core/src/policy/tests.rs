use stacksmith_api::{CustomerStackSpec, TenantPolicySpec};

use super::*;

fn spec(yaml: &str) -> CustomerStackSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn policy(yaml: &str) -> TenantPolicySpec {
    serde_yaml::from_str(yaml).unwrap()
}

/// A stack of customer acme that asks for a little of everything.
const STACK: &str = r#"
customer: acme
metrics:
  cluster: prom-eu
  replicas: 2
  retention: 30d
  retentionSize: 40GiB
  storage: {size: 50Gi}
  resources: {requests: {cpu: 500m, memory: 2Gi}, limits: {memory: 4Gi}}
dashboards:
  cluster: graf-eu
  instanceSelector: {matchLabels: {dashboards: shared}}
  dashboards:
  - {name: overview, json: "{}"}
  - {name: remote, url: "https://dashboards.example.com/acme/overview.json"}
"#;

/// The policy that allows exactly [`STACK`].
const GOLD: &str = r#"
customers: [acme, initech]
hubNamespaces: [team-a]
grafana:
  namespaces: [grafana]
  instanceSelectors:
  - {matchLabels: {dashboards: shared}}
  - matchExpressions: [{key: tier, operator: In, values: [gold, silver]}]
dashboards:
  urlPrefixes: ["https://dashboards.example.com/acme/"]
limits:
  maxReplicas: 2
  maxRetention: 30d
  maxRetentionSize: 40GiB
  maxStorage: 50Gi
  maxResources: {cpu: "1", memory: 4Gi}
"#;

fn check(
    stack: &CustomerStackSpec,
    namespace: &str,
    policies: &[(&str, &TenantPolicySpec)],
    mode: PolicyMode,
) -> Result<(), Vec<SpecProblem>> {
    let named: Vec<NamedPolicy<'_>> = policies
        .iter()
        .map(|(name, spec)| NamedPolicy { name, spec })
        .collect();
    check_stack(stack, namespace, &named, mode)
}

/// The problems of `stack` in `team-a` under GOLD (required mode), as (field, message).
fn problems_under_gold(stack: &CustomerStackSpec) -> Vec<(String, String)> {
    let gold = policy(GOLD);
    match check(stack, "team-a", &[("gold", &gold)], PolicyMode::Required) {
        Ok(()) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| (p.field, p.message)).collect(),
    }
}

/// The one problem of `stack` under GOLD.
fn only_problem(stack: &CustomerStackSpec) -> (String, String) {
    let problems = problems_under_gold(stack);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems.into_iter().next().unwrap()
}

/// [`STACK`] with one line replaced.
fn stack_with(from: &str, to: &str) -> CustomerStackSpec {
    assert!(STACK.contains(from), "{from}");
    spec(&STACK.replacen(from, to, 1))
}

#[test]
fn a_stack_within_its_policy_passes() {
    assert_eq!(problems_under_gold(&spec(STACK)), Vec::new());
}

#[test]
fn a_customer_no_policy_names_is_refused_only_when_policies_are_required() {
    let stack = spec(&STACK.replacen("customer: acme", "customer: globex", 1));
    let gold = policy(GOLD);
    let refused = check(&stack, "team-a", &[("gold", &gold)], PolicyMode::Required).unwrap_err();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].field, "spec.customer");
    assert!(
        refused[0]
            .message
            .starts_with("no TenantPolicy governs customer \"globex\""),
        "{}",
        refused[0].message
    );
    assert!(refused[0].message.contains("--tenant-policy=required"));
    assert_eq!(check(&stack, "team-a", &[], PolicyMode::Optional), Ok(()));
    assert_eq!(
        check(&stack, "team-a", &[("gold", &gold)], PolicyMode::Optional),
        Ok(())
    );
    assert!(check(&stack, "team-a", &[], PolicyMode::Required).is_err());
}

#[test]
fn a_governing_policy_is_enforced_in_optional_mode_too() {
    let gold = policy(GOLD);
    let refused = check(
        &spec(STACK),
        "team-b",
        &[("gold", &gold)],
        PolicyMode::Optional,
    );
    assert_eq!(refused.unwrap_err()[0].field, "spec.customer");
}

#[test]
fn a_customer_two_policies_name_is_refused_naming_both() {
    let gold = policy(GOLD);
    let other = policy("customers: [acme]\nhubNamespaces: [team-a]\n");
    let unrelated = policy("customers: [globex]\nhubNamespaces: [team-g]\n");
    let problems = check(
        &spec(STACK),
        "team-a",
        &[("legacy", &other), ("globex", &unrelated), ("gold", &gold)],
        PolicyMode::Optional,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "spec.customer");
    assert_eq!(
        problems[0].message,
        "customer \"acme\" is named by more than one TenantPolicy (\"gold\", \"legacy\"): the \
         platform governs each customer by one policy"
    );
}

#[test]
fn governing_finds_the_policies_naming_the_customer() {
    let gold = policy(GOLD);
    let other = policy("customers: [globex]\nhubNamespaces: [team-g]\n");
    let named = [
        NamedPolicy {
            name: "gold",
            spec: &gold,
        },
        NamedPolicy {
            name: "other",
            spec: &other,
        },
    ];
    let names = |customer| {
        governing(customer, &named)
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("initech"), ["gold"]);
    assert_eq!(names("globex"), ["other"]);
    assert!(names("hooli").is_empty());
}

#[test]
fn a_stack_in_another_hub_namespace_may_not_claim_the_customer() {
    let gold = policy(GOLD);
    let problems = check(
        &spec(STACK),
        "team-b",
        &[("gold", &gold)],
        PolicyMode::Required,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "spec.customer");
    assert_eq!(
        problems[0].message,
        "a stack in hub namespace \"team-b\" may not claim customer \"acme\": TenantPolicy \
         \"gold\" lets only namespace(s) team-a claim it (hubNamespaces)"
    );
}

#[test]
fn grafana_children_go_only_to_the_tenant_namespace_or_an_allowed_one() {
    let cluster = "  cluster: graf-eu\n";
    for allowed in ["grafana", "customer-acme"] {
        let stack = stack_with(cluster, &format!("{cluster}  namespace: {allowed}\n"));
        assert_eq!(problems_under_gold(&stack), Vec::new(), "{allowed}");
    }
    let stack = stack_with(cluster, &format!("{cluster}  namespace: customer-globex\n"));
    assert_eq!(
        only_problem(&stack),
        (
            "spec.dashboards.namespace".into(),
            "\"customer-globex\" is not a Grafana namespace TenantPolicy \"gold\" allows \
             (grafana.namespaces: grafana; the tenant namespace customer-acme always is)"
                .into()
        )
    );
    let strict = policy("customers: [acme]\nhubNamespaces: [team-a]\n");
    let stack = stack_with(cluster, &format!("{cluster}  namespace: grafana\n"));
    let problems = check(
        &stack,
        "team-a",
        &[("strict", &strict)],
        PolicyMode::Required,
    )
    .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.field == "spec.dashboards.namespace"
                && p.message.contains("(grafana.namespaces: none;")),
        "{problems:#?}"
    );
}

#[test]
fn an_instance_selector_must_be_one_the_policy_lists() {
    let selector = "  instanceSelector: {matchLabels: {dashboards: shared}}\n";
    let listed_expressions = "  instanceSelector: {matchExpressions: \
         [{key: tier, operator: In, values: [silver, gold, gold]}]}\n";
    assert_eq!(
        problems_under_gold(&stack_with(selector, listed_expressions)),
        Vec::new(),
        "the same expression, values in another order"
    );
    let (field, message) = only_problem(&stack_with(
        selector,
        "  instanceSelector: {matchLabels: {dashboards: shared, team: a}}\n",
    ));
    assert_eq!(field, "spec.dashboards.instanceSelector");
    assert_eq!(
        message,
        "dashboards=shared,team=a is not a selector TenantPolicy \"gold\" allows \
         (grafana.instanceSelectors: dashboards=shared, tier in (gold,silver))"
    );
    let (_, message) = only_problem(&stack_with(
        selector,
        "  instanceSelector: {matchExpressions: [{key: tier, operator: Exists}]}\n",
    ));
    assert!(message.starts_with("tier is not a selector"), "{message}");
}

#[test]
fn an_empty_instance_selector_is_always_refused() {
    for empty in [
        "  instanceSelector: {}\n",
        "  instanceSelector: {matchLabels: {}, matchExpressions: []}\n",
    ] {
        let (field, message) = only_problem(&stack_with(
            "  instanceSelector: {matchLabels: {dashboards: shared}}\n",
            empty,
        ));
        assert_eq!(field, "spec.dashboards.instanceSelector");
        assert!(
            message.starts_with("an empty selector selects every Grafana instance"),
            "{message}"
        );
    }
}

#[test]
fn a_dedicated_grafana_needs_the_policys_leave() {
    let dedicated = stack_with(
        "  instanceSelector: {matchLabels: {dashboards: shared}}\n",
        "  dedicatedGrafana: {version: 12.1.0}\n  datasource: {isDefault: true}\n",
    );
    let (field, message) = only_problem(&dedicated);
    assert_eq!(field, "spec.dashboards.dedicatedGrafana");
    assert!(
        message.contains("(grafana.allowDedicatedGrafana: false)"),
        "{message}"
    );
    let mut allowing = policy(GOLD);
    allowing.grafana.allow_dedicated_grafana = true;
    assert_eq!(
        check(
            &dedicated,
            "team-a",
            &[("gold", &allowing)],
            PolicyMode::Required
        ),
        Ok(()),
        "the default datasource of a Grafana of its own concerns no one else"
    );
}

#[test]
fn the_default_datasource_of_shared_instances_needs_the_policys_leave() {
    let cluster = "  cluster: graf-eu\n";
    let stack = stack_with(
        cluster,
        &format!("{cluster}  datasource: {{isDefault: true}}\n"),
    );
    let (field, message) = only_problem(&stack);
    assert_eq!(field, "spec.dashboards.datasource.isDefault");
    assert!(
        message.contains("(grafana.allowDefaultDatasource: false)"),
        "{message}"
    );
    let mut allowing = policy(GOLD);
    allowing.grafana.allow_default_datasource = true;
    assert_eq!(
        check(
            &stack,
            "team-a",
            &[("gold", &allowing)],
            PolicyMode::Required
        ),
        Ok(())
    );
}

#[test]
fn dashboard_urls_must_start_with_an_allowed_prefix() {
    let url = "https://dashboards.example.com/acme/overview.json";
    for refused in [
        "https://dashboards.example.com/globex/overview.json",
        "https://dashboards.example.com.attacker.net/acme/overview.json",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let (field, message) = only_problem(&stack_with(url, refused));
        assert_eq!(field, "spec.dashboards.dashboards[1].url");
        assert_eq!(
            message,
            format!(
                "{refused:?} is not allowed: TenantPolicy \"gold\" allows only URLs starting \
                 with https://dashboards.example.com/acme/ (dashboards.urlPrefixes)"
            )
        );
    }
    let mut no_urls = policy(GOLD);
    no_urls.dashboards.url_prefixes.clear();
    let problems = check(
        &spec(STACK),
        "team-a",
        &[("gold", &no_urls)],
        PolicyMode::Required,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .message
            .ends_with("allows no URL dashboards (dashboards.urlPrefixes: none): use json"),
        "{}",
        problems[0].message
    );
}

#[test]
fn replicas_over_the_cap_are_refused() {
    let (field, message) = only_problem(&stack_with("replicas: 2", "replicas: 3"));
    assert_eq!(field, "spec.metrics.replicas");
    assert_eq!(
        message,
        "3 is more than TenantPolicy \"gold\" allows (limits.maxReplicas: 2)"
    );
}

#[test]
fn retention_is_compared_by_duration() {
    assert_eq!(
        problems_under_gold(&stack_with("retention: 30d", "retention: 4w2d")),
        Vec::new()
    );
    assert_eq!(
        problems_under_gold(&stack_with("retention: 30d", "retention: 720h")),
        Vec::new()
    );
    let (field, message) = only_problem(&stack_with("retention: 30d", "retention: 5w"));
    assert_eq!(field, "spec.metrics.retention");
    assert_eq!(
        message,
        "5w is longer than TenantPolicy \"gold\" allows (limits.maxRetention: 30d)"
    );
    let (_, message) = only_problem(&stack_with("retention: 30d", "retention: 1y"));
    assert!(message.starts_with("1y is longer"), "{message}");
}

#[test]
fn retention_size_is_compared_by_bytes_and_required_under_a_cap() {
    assert_eq!(
        problems_under_gold(&stack_with("retentionSize: 40GiB", "retentionSize: 40GB")),
        Vec::new(),
        "GB and GiB are both powers of 1024 in Prometheus"
    );
    let (field, message) = only_problem(&stack_with("retentionSize: 40GiB", "retentionSize: 41GB"));
    assert_eq!(field, "spec.metrics.retentionSize");
    assert_eq!(
        message,
        "41GB is more than TenantPolicy \"gold\" allows (limits.maxRetentionSize: 40GiB)"
    );
    let (field, message) = only_problem(&stack_with("  retentionSize: 40GiB\n", ""));
    assert_eq!(field, "spec.metrics.retentionSize");
    assert!(
        message.starts_with("required by TenantPolicy \"gold\""),
        "{message}"
    );
}

#[test]
fn storage_is_compared_by_quantity() {
    assert_eq!(
        problems_under_gold(&stack_with("size: 50Gi", "size: 51200Mi")),
        Vec::new()
    );
    assert_eq!(
        problems_under_gold(&stack_with("  storage: {size: 50Gi}\n", "")),
        Vec::new(),
        "no volume is not over the cap"
    );
    let (field, message) = only_problem(&stack_with("size: 50Gi", "size: 50G1"));
    assert_eq!(field, "spec.metrics.storage.size");
    assert!(message.contains("is not a quantity"), "{message}");
    let (field, message) = only_problem(&stack_with("size: 50Gi", "size: 60Gi"));
    assert_eq!(field, "spec.metrics.storage.size");
    assert_eq!(
        message,
        "60Gi is more than TenantPolicy \"gold\" allows (limits.maxStorage: 50Gi)"
    );
}

#[test]
fn requests_and_limits_are_each_compared_with_the_resource_caps() {
    let resources = "resources: {requests: {cpu: 500m, memory: 2Gi}, limits: {memory: 4Gi}}";
    assert_eq!(
        problems_under_gold(&stack_with(
            resources,
            "resources: {requests: {cpu: 1000m, memory: 4096Mi}, limits: {cpu: \"1\"}}"
        )),
        Vec::new()
    );
    let problems = problems_under_gold(&stack_with(
        resources,
        "resources: {requests: {cpu: 1500m, memory: 2Gi}, limits: {cpu: \"2\", memory: 5Gi}}",
    ));
    let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.metrics.resources.requests.cpu",
            "spec.metrics.resources.limits.cpu",
            "spec.metrics.resources.limits.memory",
        ]
    );
    assert_eq!(
        problems[2].1,
        "5Gi is more than TenantPolicy \"gold\" allows (limits.maxResources.memory: 4Gi)"
    );
}

#[test]
fn a_cap_the_policy_cannot_read_refuses() {
    let mut broken = policy(GOLD);
    if let Some(limits) = broken.limits.as_mut() {
        limits.max_storage = Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "lots".into(),
        ));
    }
    let problems = check(
        &spec(STACK),
        "team-a",
        &[("gold", &broken)],
        PolicyMode::Required,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "spec.metrics.storage.size");
    assert!(
        problems[0]
            .message
            .starts_with("TenantPolicy \"gold\" has a limits.maxStorage that cannot be read"),
        "{}",
        problems[0].message
    );
}

#[test]
fn no_limits_means_no_caps() {
    let mut uncapped = policy(GOLD);
    uncapped.limits = None;
    let big = spec(
        &STACK
            .replacen("replicas: 2", "replicas: 10", 1)
            .replacen("retention: 30d", "retention: 10y", 1)
            .replacen("size: 50Gi", "size: 10Ti", 1),
    );
    assert_eq!(
        check(&big, "team-a", &[("gold", &uncapped)], PolicyMode::Required),
        Ok(())
    );
}

#[test]
fn every_violation_is_reported() {
    let stack = spec(
        r#"
customer: acme
metrics:
  cluster: prom-eu
  replicas: 5
  retention: 60d
  storage: {size: 1Ti}
dashboards:
  cluster: graf-eu
  namespace: kube-system
  instanceSelector: {}
  datasource: {isDefault: true}
  dashboards:
  - {name: a, url: "http://10.0.0.1/"}
"#,
    );
    let gold = policy(GOLD);
    let fields: Vec<String> = check(&stack, "team-z", &[("gold", &gold)], PolicyMode::Required)
        .unwrap_err()
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.customer",
            "spec.dashboards.namespace",
            "spec.dashboards.instanceSelector",
            "spec.dashboards.datasource.isDefault",
            "spec.dashboards.dashboards[0].url",
            "spec.metrics.replicas",
            "spec.metrics.retention",
            "spec.metrics.retentionSize",
            "spec.metrics.storage.size",
        ]
    );
}

#[test]
fn a_policy_change_concerns_the_customers_it_names_before_and_after() {
    let before = policy("customers: [acme, globex]\nhubNamespaces: [team-a]\n");
    let after = policy("customers: [acme, initech]\nhubNamespaces: [team-a]\n");
    let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(customers_concerned(Some(&before), Some(&after))),
        ["acme", "globex", "initech"]
    );
    assert_eq!(
        names(customers_concerned(None, Some(&after))),
        ["acme", "initech"]
    );
    assert_eq!(
        names(customers_concerned(Some(&before), None)),
        ["acme", "globex"]
    );
    assert!(customers_concerned(Some(&before), Some(&before)).is_empty());
    assert!(customers_concerned(None, None).is_empty());
    let mut capped = before.clone();
    capped.limits = Some(PolicyLimits {
        max_replicas: Some(1),
        ..PolicyLimits::default()
    });
    assert_eq!(
        names(customers_concerned(Some(&before), Some(&capped))),
        ["acme", "globex"],
        "a changed bound concerns every customer it names"
    );
}

#[test]
fn the_mode_is_spelled_as_the_flag() {
    assert_eq!(PolicyMode::Required.as_str(), "required");
    assert_eq!(PolicyMode::Optional.as_str(), "optional");
    assert_eq!(PolicyMode::default(), PolicyMode::Required);
}

#[test]
fn a_datasource_url_of_the_stacks_own_needs_an_allowed_prefix() {
    let yaml = format!("{STACK}  datasource: {{url: \"http://10.0.0.7:9090\"}}\n");
    let (field, message) = only_problem(&spec(&yaml));
    assert_eq!(field, "spec.dashboards.datasource.url");
    assert!(
        message.ends_with("(grafana.datasourceUrlPrefixes: none): the Prometheus cluster gives it"),
        "{message}"
    );
    let mut allowing = policy(GOLD);
    allowing.grafana.datasource_url_prefixes = vec!["https://metrics.example.com/acme/".into()];
    let allowed =
        format!("{STACK}  datasource: {{url: \"https://metrics.example.com/acme/prometheus\"}}\n");
    let named = [("gold", &allowing)];
    assert_eq!(
        check(&spec(&allowed), "team-a", &named, PolicyMode::Required),
        Ok(())
    );
    let problems = check(&spec(&yaml), "team-a", &named, PolicyMode::Required).unwrap_err();
    assert!(
        problems[0].message.contains(
            "allows only datasource URLs starting with https://metrics.example.com/acme/"
        ),
        "{}",
        problems[0].message
    );
}

#[test]
fn grafana_com_dashboards_are_allowed_unless_the_policy_says_no() {
    let yaml = format!("{STACK}  - {{name: nodes, grafanaCom: {{id: 1860, revision: 37}}}}\n");
    assert!(problems_under_gold(&spec(&yaml)).is_empty());
    let mut closed = policy(GOLD);
    closed.dashboards.allow_grafana_com = false;
    let problems = check(
        &spec(&yaml),
        "team-a",
        &[("gold", &closed)],
        PolicyMode::Required,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].field,
        "spec.dashboards.dashboards[2].grafanaCom"
    );
    assert!(
        problems[0]
            .message
            .contains("(dashboards.allowGrafanaCom: false)")
    );
}

#[test]
fn a_policy_without_a_dashboards_part_allows_grafana_com() {
    let bare = policy("customers: [acme]\nhubNamespaces: [team-a]\n");
    assert!(bare.dashboards.allow_grafana_com);
    assert!(bare.dashboards.url_prefixes.is_empty());
}

#[test]
fn a_datasource_name_in_the_shared_instances_starts_with_the_customer() {
    for allowed in ["acme", "acme-metrics", "Acme Prometheus", "ACME_prod"] {
        let yaml = format!("{STACK}  datasource: {{displayName: \"{allowed}\"}}\n");
        assert!(problems_under_gold(&spec(&yaml)).is_empty(), "{allowed}");
    }
    for refused in ["globex-prometheus", "acme2-prometheus", "Prometheus"] {
        let yaml = format!("{STACK}  datasource: {{displayName: \"{refused}\"}}\n");
        let (field, message) = only_problem(&spec(&yaml));
        assert_eq!(field, "spec.dashboards.datasource.displayName", "{refused}");
        assert!(
            message.contains("(grafana.allowAnyDatasourceName: false)"),
            "{message}"
        );
    }
    let mut any = policy(GOLD);
    any.grafana.allow_any_datasource_name = true;
    let yaml = format!("{STACK}  datasource: {{displayName: \"globex-prometheus\"}}\n");
    assert_eq!(
        check(
            &spec(&yaml),
            "team-a",
            &[("gold", &any)],
            PolicyMode::Required
        ),
        Ok(())
    );
}

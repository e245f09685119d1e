//! The checks a spec passes before anything is planned: the stack's identity, the member
//! clusters it names (found, serving the right role), unique names, dashboard sources, and the
//! Prometheus URL the Grafana datasource will use.

use std::collections::BTreeSet;

use stacksmith_api::validation::is_dns1123_label;
use stacksmith_api::{ClusterRole, CustomerStackSpec};

use super::{MemberInfo, SpecProblem, StackIdentity, names};

/// What a valid spec resolves to.
#[derive(Debug)]
pub(super) struct CheckedSpec<'m> {
    /// The member cluster named by `spec.metrics.cluster`, serving the prometheus role.
    pub prometheus_cluster: &'m MemberInfo,
    /// The member cluster named by `spec.dashboards.cluster`, serving the grafana role.
    pub grafana_cluster: &'m MemberInfo,
    /// The URL Grafana uses to reach this tenant's Prometheus.
    pub datasource_url: String,
}

/// Checks a spec against the stack's identity and the registered members, or says every
/// problem found (in the order of the fields).
pub(super) fn check_spec<'m>(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    members: &'m [MemberInfo],
) -> Result<CheckedSpec<'m>, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    check_identity(spec, stack, &mut problems);
    let prometheus_cluster = find_member(
        members,
        &spec.metrics.cluster,
        ClusterRole::Prometheus,
        "spec.metrics.cluster",
        &mut problems,
    );
    let grafana_cluster = find_member(
        members,
        &spec.dashboards.cluster,
        ClusterRole::Grafana,
        "spec.dashboards.cluster",
        &mut problems,
    );
    check_unique(
        "spec.metrics.scrape",
        spec.metrics.scrape.iter().map(|s| s.name.as_str()),
        &mut problems,
    );
    check_unique(
        "spec.metrics.alertingRules",
        spec.metrics.alerting_rules.iter().map(|g| g.name.as_str()),
        &mut problems,
    );
    check_unique(
        "spec.metrics.recordingRules",
        spec.metrics.recording_rules.iter().map(|g| g.name.as_str()),
        &mut problems,
    );
    // Both kinds of group name a PrometheusRule `<customer>-<name>`.
    for (i, group) in spec.metrics.recording_rules.iter().enumerate() {
        if spec
            .metrics
            .alerting_rules
            .iter()
            .any(|a| a.name == group.name)
        {
            problems.push(problem(
                &format!("spec.metrics.recordingRules[{i}].name"),
                format!(
                    "name {:?} is used by an alerting-rule group too (both become PrometheusRule {})",
                    group.name,
                    super::names::rule(&spec.customer, &group.name)
                ),
            ));
        }
    }
    check_grafana_source(spec, &mut problems);
    check_unique(
        "spec.dashboards.dashboards",
        spec.dashboards.dashboards.iter().map(|d| d.name.as_str()),
        &mut problems,
    );
    check_dashboard_sources(spec, &mut problems);
    if let Some(member) = prometheus_cluster {
        check_alert_delivery(spec, member, &mut problems);
    }
    let datasource_url =
        prometheus_cluster.and_then(|member| datasource_url(spec, member, &mut problems));
    match (
        prometheus_cluster,
        grafana_cluster,
        datasource_url,
        problems.is_empty(),
    ) {
        (Some(prometheus_cluster), Some(grafana_cluster), Some(datasource_url), true) => {
            Ok(CheckedSpec {
                prometheus_cluster,
                grafana_cluster,
                datasource_url,
            })
        }
        _ => Err(problems),
    }
}

fn problem(field: &str, message: impl Into<String>) -> SpecProblem {
    SpecProblem {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn check_identity(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    problems: &mut Vec<SpecProblem>,
) {
    if !is_dns1123_label(&spec.customer, 40) {
        problems.push(problem(
            "spec.customer",
            "must be a DNS-1123 label of at most 40 characters",
        ));
    }
    if stack.name.len() > 63 {
        problems.push(problem(
            "metadata.name",
            "must be at most 63 characters (it is a label value on every child)",
        ));
    }
}

fn find_member<'m>(
    members: &'m [MemberInfo],
    name: &str,
    role: ClusterRole,
    field: &str,
    problems: &mut Vec<SpecProblem>,
) -> Option<&'m MemberInfo> {
    let Some(member) = members.iter().find(|m| m.name == name) else {
        problems.push(problem(field, format!("MemberCluster {name:?} not found")));
        return None;
    };
    if !member.roles.contains(&role) {
        problems.push(problem(
            field,
            format!(
                "MemberCluster {name:?} does not serve the {} role",
                role.as_str()
            ),
        ));
        return None;
    }
    Some(member)
}

fn check_unique<'a>(
    field: &str,
    names: impl Iterator<Item = &'a str>,
    problems: &mut Vec<SpecProblem>,
) {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            problems.push(problem(field, format!("name {name:?} is used twice")));
        }
    }
}

/// `spec.metrics.alertDelivery`: receiver names unique, every route's receiver and the default
/// one defined, and an Alertmanager on the Prometheus cluster to deliver to.
fn check_alert_delivery(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) {
    const FIELD: &str = "spec.metrics.alertDelivery";
    let Some(delivery) = &spec.metrics.alert_delivery else {
        return;
    };
    if member.alertmanagers.is_empty() {
        problems.push(problem(
            FIELD,
            format!(
                "MemberCluster {:?} names no alertmanagers (spec.alertmanagers): this stack's \
                 alerts would reach no Alertmanager",
                member.name
            ),
        ));
    }
    check_unique(
        &format!("{FIELD}.receivers"),
        delivery.receivers.iter().map(|r| r.name.as_str()),
        problems,
    );
    let defined = |name: &str| delivery.receivers.iter().any(|r| r.name == name);
    if !defined(&delivery.default_receiver) {
        problems.push(problem(
            &format!("{FIELD}.defaultReceiver"),
            format!(
                "receiver {:?} is not one of spec.metrics.alertDelivery.receivers",
                delivery.default_receiver
            ),
        ));
    }
    for (i, route) in delivery.routes.iter().enumerate() {
        if !defined(&route.receiver) {
            problems.push(problem(
                &format!("{FIELD}.routes[{i}].receiver"),
                format!(
                    "receiver {:?} is not one of spec.metrics.alertDelivery.receivers",
                    route.receiver
                ),
            ));
        }
    }
}

/// Exactly one of `spec.dashboards.instanceSelector` (shared instances) and
/// `spec.dashboards.dedicatedGrafana`. The CRD's CEL rule says so too, but a stack may have been
/// stored by an API server that does not evaluate CEL rules, or read from a file.
fn check_grafana_source(spec: &CustomerStackSpec, problems: &mut Vec<SpecProblem>) {
    let dashboards = &spec.dashboards;
    match (&dashboards.instance_selector, &dashboards.dedicated_grafana) {
        (Some(_), None) | (None, Some(_)) => {}
        (None, None) => problems.push(problem(
            "spec.dashboards.instanceSelector",
            "required unless spec.dashboards.dedicatedGrafana is set: set exactly one of \
             instanceSelector (the shared Grafana instances the children go to) and \
             dedicatedGrafana (a Grafana instance of the customer's own)",
        )),
        (Some(_), Some(_)) => problems.push(problem(
            "spec.dashboards.dedicatedGrafana",
            "cannot be set together with spec.dashboards.instanceSelector: set exactly one of \
             instanceSelector (the shared Grafana instances the children go to) and \
             dedicatedGrafana (a Grafana instance of the customer's own)",
        )),
    }
}

fn check_dashboard_sources(spec: &CustomerStackSpec, problems: &mut Vec<SpecProblem>) {
    for (i, dashboard) in spec.dashboards.dashboards.iter().enumerate() {
        if dashboard.source().is_none() {
            problems.push(problem(
                &format!("spec.dashboards.dashboards[{i}]"),
                "set exactly one of json and url",
            ));
        }
    }
}

/// The URL Grafana uses to reach this tenant's Prometheus, from the Prometheus cluster's template.
fn datasource_url(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) -> Option<String> {
    let Some(template) = member.prometheus_url_template.as_deref() else {
        problems.push(problem(
            "spec.metrics.cluster",
            format!("MemberCluster {:?} has no spec.prometheusUrlTemplate: Grafana could not reach the Prometheus", member.name),
        ));
        return None;
    };
    let url = render_url_template(template, &spec.customer);
    if url.contains('{') || url.contains('}') {
        problems.push(problem(
            "spec.metrics.cluster",
            format!("MemberCluster {:?}: spec.prometheusUrlTemplate has an unknown placeholder (known: {{namespace}}, {{name}}, {{customer}})", member.name),
        ));
        return None;
    }
    Some(url)
}

/// Fills `{namespace}`, `{name}` and `{customer}` of a Prometheus URL template.
pub fn render_url_template(template: &str, customer: &str) -> String {
    template
        .replace("{namespace}", &names::tenant_namespace(customer))
        .replace("{name}", &names::prometheus(customer))
        .replace("{customer}", customer)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FULL, identity, members, spec};
    use super::super::plan_stack;
    use super::*;

    #[test]
    fn problems_name_their_field() {
        let mut s = spec(FULL);
        s.metrics.cluster = "graf-eu".into();
        s.dashboards.cluster = "nowhere".into();
        s.dashboards
            .dashboards
            .push(s.dashboards.dashboards[0].clone());
        let problems = plan_stack(&s, &identity(), &members()).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.metrics.cluster",
                "spec.dashboards.cluster",
                "spec.dashboards.dashboards"
            ]
        );
        assert!(
            problems[0]
                .message
                .contains("does not serve the prometheus role")
        );
        assert!(problems[1].message.contains("not found"));
    }

    #[test]
    fn a_missing_or_broken_url_template_is_a_problem() {
        let mut m = members();
        m[0].prometheus_url_template = None;
        assert!(plan_stack(&spec(FULL), &identity(), &m).is_err());
        m[0].prometheus_url_template = Some("http://{tenant}:9090".into());
        let problems = plan_stack(&spec(FULL), &identity(), &m).unwrap_err();
        assert!(problems[0].message.contains("unknown placeholder"));
    }

    #[test]
    fn the_url_template_knows_three_placeholders() {
        assert_eq!(
            render_url_template("http://{name}.{namespace}:9090/{customer}", "acme"),
            "http://acme.customer-acme:9090/acme"
        );
    }
}

//! The checks a spec passes before anything is planned: the stack's identity, the member
//! clusters it names (found, serving the right role), unique names, dashboard sources, the
//! Prometheus URL the Grafana datasource will use, and the member clusters' tenant quota (one
//! the API server would refuse, and the Prometheus' resources outside its container bounds).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use stacksmith_api::validation::bounds::DASHBOARD_JSON_MAX_LENGTH;
use stacksmith_api::validation::is_dns1123_label;
use stacksmith_api::{ClusterRole, CustomerStackSpec, DashboardSource};

use super::{DashboardConfigMaps, MemberInfo, SpecProblem, StackIdentity, names};
use crate::quantity::{self, QuantityValue};

/// What a valid spec resolves to.
#[derive(Debug)]
pub(super) struct CheckedSpec<'m> {
    /// The member cluster named by `spec.metrics.cluster`, serving the prometheus role.
    pub prometheus_cluster: &'m MemberInfo,
    /// The member cluster named by `spec.dashboards.cluster`, serving the grafana role.
    pub grafana_cluster: &'m MemberInfo,
    /// The URL Grafana uses to reach this tenant's Prometheus.
    pub datasource_url: String,
    /// With a planned exposure (mutual TLS), the names the Prometheus' serving certificate is
    /// for: the exposure's host, and the host of the stack's own datasource URL; else empty.
    pub server_names: Vec<String>,
}

/// Checks a spec against the stack's identity and the registered members, or says every
/// problem found (in the order of the fields).
pub(super) fn check_spec<'m>(
    spec: &CustomerStackSpec,
    stack: &StackIdentity,
    members: &'m [MemberInfo],
    config_maps: &DashboardConfigMaps,
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
    check_dashboard_sources(spec, config_maps, &mut problems);
    if let Some(member) = grafana_cluster {
        check_grafana_ingress_host(spec, member, &mut problems);
    }
    if let Some(member) = prometheus_cluster {
        check_alert_delivery(spec, member, &mut problems);
        check_tenant_quota(member, "spec.metrics.cluster", &mut problems);
        check_resources_within_bounds(spec, member, &mut problems);
    }
    // The Grafana cluster's quota is written only into a tenant namespace stacksmith creates
    // there; one cluster serving both roles was checked above.
    let tenant_namespace = names::tenant_namespace(&spec.customer);
    let grafana_namespace_is_ours = spec
        .dashboards
        .namespace
        .as_ref()
        .is_none_or(|namespace| *namespace == tenant_namespace);
    if let Some(member) = grafana_cluster
        && grafana_namespace_is_ours
        && prometheus_cluster.is_none_or(|p| p.name != member.name)
    {
        check_tenant_quota(member, "spec.dashboards.cluster", &mut problems);
    }
    let reach = prometheus_cluster.and_then(|member| datasource_url(spec, member, &mut problems));
    match (
        prometheus_cluster,
        grafana_cluster,
        reach,
        problems.is_empty(),
    ) {
        (Some(prometheus_cluster), Some(grafana_cluster), Some(reach), true) => Ok(CheckedSpec {
            prometheus_cluster,
            grafana_cluster,
            datasource_url: reach.url,
            server_names: reach.server_names,
        }),
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

/// The member cluster's `spec.tenantQuota`, which this stack's tenant namespace there will get
/// (`field` is the stack's field naming the cluster): every quantity readable and not negative,
/// and container bounds the API server accepts in a `LimitRange` (`min` <= `defaultRequest` <=
/// `default` <= `max`, resource by resource). Either would fail the write of the quota and
/// leave the namespace's pods without it.
fn check_tenant_quota(member: &MemberInfo, field: &str, problems: &mut Vec<SpecProblem>) {
    let Some(quota) = &member.tenant_quota else {
        return;
    };
    let mut report = |what: String| {
        problems.push(problem(
            field,
            format!("MemberCluster {:?}: {what}", member.name),
        ));
    };
    for (key, value) in &quota.hard {
        if let Err(message) = non_negative(value) {
            report(format!("spec.tenantQuota.hard.{key}: {message}"));
        }
    }
    let Some(defaults) = &quota.container_defaults else {
        return;
    };
    // In the order the API server wants them, least first.
    let bounds: [(&str, &BTreeMap<String, Quantity>); 4] = [
        ("min", &defaults.min),
        ("defaultRequest", &defaults.default_request),
        ("default", &defaults.default),
        ("max", &defaults.max),
    ];
    let mut read: Vec<(&str, &str, &Quantity, QuantityValue)> = Vec::new();
    for (bound, resources) in bounds {
        for (resource, value) in resources {
            match non_negative(value) {
                Ok(parsed) => read.push((bound, resource, value, parsed)),
                Err(message) => report(format!(
                    "spec.tenantQuota.containerDefaults.{bound}.{resource}: {message}"
                )),
            }
        }
    }
    for (i, (lower, resource, lower_text, lower_value)) in read.iter().enumerate() {
        for (upper, other, upper_text, upper_value) in &read[i + 1..] {
            if resource == other && lower != upper && lower_value > upper_value {
                report(format!(
                    "spec.tenantQuota.containerDefaults.{lower}.{resource} ({}) is above \
                     spec.tenantQuota.containerDefaults.{upper}.{resource} ({}): the API server \
                     refuses such a LimitRange",
                    lower_text.0, upper_text.0
                ));
            }
        }
    }
}

/// A quantity that is not negative.
fn non_negative(value: &Quantity) -> Result<QuantityValue, String> {
    match quantity::parse(&value.0) {
        Ok(parsed) if parsed.nanos() < 0 => Err(format!("{:?} is negative", value.0)),
        Ok(parsed) => Ok(parsed),
        Err(err) => Err(err.to_string()),
    }
}

/// `spec.metrics.resources` within the Prometheus cluster's container bounds
/// (`spec.tenantQuota.containerDefaults`): no request or limit above `max` or below `min`, and
/// no request above the default limit when the stack sets no limit of its own (it would get
/// that one). The API server would refuse every Prometheus pod otherwise, long after the
/// stack was written.
fn check_resources_within_bounds(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) {
    let (Some(resources), Some(defaults)) = (
        &spec.metrics.resources,
        member
            .tenant_quota
            .as_ref()
            .and_then(|q| q.container_defaults.as_ref()),
    ) else {
        return;
    };
    /// One bound of `resource` (its field, text and value), when set and readable (one that is
    /// not is reported by [`check_tenant_quota`]).
    fn bound<'a>(
        name: &str,
        resources: &'a BTreeMap<String, Quantity>,
        resource: &str,
    ) -> Option<(String, &'a str, QuantityValue)> {
        let text = resources.get(resource)?;
        let value = quantity::parse(&text.0).ok()?;
        Some((
            format!("spec.tenantQuota.containerDefaults.{name}.{resource}"),
            text.0.as_str(),
            value,
        ))
    }
    for (part, values) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (resource, text) in values {
            let field = format!("spec.metrics.resources.{part}.{resource}");
            let max = bound("max", &defaults.max, resource);
            let min = bound("min", &defaults.min, resource);
            let default_limit = (part == "requests" && !resources.limits.contains_key(resource))
                .then(|| bound("default", &defaults.default, resource))
                .flatten();
            if max.is_none() && min.is_none() && default_limit.is_none() {
                continue;
            }
            let value = match quantity::parse(&text.0) {
                Ok(value) => value,
                Err(err) => {
                    problems.push(problem(&field, err.to_string()));
                    continue;
                }
            };
            if let Some((bound, bound_text, bound_value)) = max
                && value > bound_value
            {
                problems.push(problem(
                    &field,
                    format!(
                        "{} is above the most a container may have on MemberCluster {:?} \
                         ({bound}: {bound_text}): the Prometheus pods would be refused",
                        text.0, member.name
                    ),
                ));
            }
            if let Some((bound, bound_text, bound_value)) = min
                && value < bound_value
            {
                problems.push(problem(
                    &field,
                    format!(
                        "{} is below the least a container may have on MemberCluster {:?} \
                         ({bound}: {bound_text}): the Prometheus pods would be refused",
                        text.0, member.name
                    ),
                ));
            }
            if let Some((bound, bound_text, bound_value)) = default_limit
                && value > bound_value
            {
                problems.push(problem(
                    &field,
                    format!(
                        "{} is above the limit a container that sets none gets on MemberCluster \
                         {:?} ({bound}: {bound_text}): the Prometheus pods would be refused; set \
                         spec.metrics.resources.limits.{resource} too",
                        text.0, member.name
                    ),
                ));
            }
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

/// The Ingress host of a dedicated Grafana, when it comes from the Grafana cluster's template:
/// a DNS name once `{customer}` is filled in. (A stack's own `ingressHost` is checked by the
/// schema.)
fn check_grafana_ingress_host(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) {
    let Some(dedicated) = &spec.dashboards.dedicated_grafana else {
        return;
    };
    if dedicated.ingress_host.is_some() {
        return;
    }
    let Some(host) = super::grafana::ingress_host(dedicated, member, &spec.customer) else {
        return;
    };
    if !is_dns_name(&host) {
        problems.push(problem(
            "spec.dashboards.cluster",
            format!(
                "MemberCluster {:?}: its grafanaIngressHostTemplate gives the host {host:?} for \
                 this customer, which is not a DNS name (set spec.dashboards.dedicatedGrafana.\
                 ingressHost, or fix the template)",
                member.name
            ),
        ));
    }
}

fn check_dashboard_sources(
    spec: &CustomerStackSpec,
    config_maps: &DashboardConfigMaps,
    problems: &mut Vec<SpecProblem>,
) {
    for (i, dashboard) in spec.dashboards.dashboards.iter().enumerate() {
        let field = format!("spec.dashboards.dashboards[{i}]");
        match dashboard.source() {
            None => problems.push(problem(
                &field,
                "set exactly one of json, url, grafanaCom and configMapRef",
            )),
            Some(DashboardSource::ConfigMap(key)) => {
                let field = format!("{field}.configMapRef");
                match config_maps.model(key) {
                    Err(message) => problems.push(problem(&field, message)),
                    Ok(model) if model.chars().count() > DASHBOARD_JSON_MAX_LENGTH as usize => {
                        problems.push(problem(
                            &field,
                            format!(
                                "the model in ConfigMap {:?} key {:?} has {} characters, more \
                                 than the {DASHBOARD_JSON_MAX_LENGTH} a dashboard may have",
                                key.name,
                                key.key,
                                model.chars().count()
                            ),
                        ));
                    }
                    Ok(_) => {}
                }
            }
            Some(_) => {}
        }
        check_unique(
            &format!("{field}.datasources"),
            dashboard.datasources.iter().map(|d| d.input_name.as_str()),
            problems,
        );
    }
}

/// How Grafana reaches the tenant's Prometheus.
struct Reach {
    /// The datasource URL.
    url: String,
    /// The serving certificate's names (mutual TLS), or none.
    server_names: Vec<String>,
}

/// The URL Grafana uses to reach this tenant's Prometheus: the stack's own
/// `spec.dashboards.datasource.url`, else the Prometheus cluster's exposure (an `https://` URL,
/// with mutual TLS) or its URL template.
fn datasource_url(
    spec: &CustomerStackSpec,
    member: &MemberInfo,
    problems: &mut Vec<SpecProblem>,
) -> Option<Reach> {
    let own_url = spec.dashboards.datasource.url.clone();
    if let Some(exposure) = &member.prometheus_exposure {
        let host = super::exposure::host(exposure, &spec.customer);
        if !is_dns_name(&host) {
            problems.push(problem(
                "spec.metrics.cluster",
                format!(
                    "MemberCluster {:?}: its prometheusExposure.hostTemplate gives the host {host:?} \
                     for this customer, which is not a DNS name (known placeholders: {{service}}, \
                     {{namespace}}, {{customer}})",
                    member.name
                ),
            ));
            return None;
        }
        let mut server_names = vec![host];
        if let Some(url) = &own_url {
            match url_host(url) {
                Some(own) if url.starts_with("https://") && is_dns_name(own) => {
                    if !server_names.iter().any(|name| name == own) {
                        server_names.push(own.to_owned());
                    }
                }
                _ => {
                    problems.push(problem(
                        "spec.dashboards.datasource.url",
                        format!(
                            "MemberCluster {:?} serves its Prometheus over mutual TLS: the URL \
                             must be https:// with a DNS name as its host (it goes into the \
                             serving certificate)",
                            member.name
                        ),
                    ));
                    return None;
                }
            }
        }
        let url = own_url.unwrap_or_else(|| super::exposure::url(exposure, &spec.customer));
        return Some(Reach { url, server_names });
    }
    if let Some(url) = own_url {
        return Some(Reach {
            url,
            server_names: Vec::new(),
        });
    }
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
    Some(Reach {
        url,
        server_names: Vec::new(),
    })
}

/// Whether `host` is a DNS name (dot-separated DNS labels, at most 253 characters).
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| is_dns1123_label(label, 63))
}

/// The host of an `http(s)://host[:port][/path]` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    authority.split(':').next()
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

    fn with_quota(yaml: &str) -> Vec<MemberInfo> {
        let mut m = members();
        m[0].tenant_quota = Some(serde_yaml::from_str(yaml).unwrap());
        m
    }

    fn fields_and_messages(problems: &[SpecProblem]) -> Vec<(&str, &str)> {
        problems
            .iter()
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect()
    }

    #[test]
    fn resources_outside_the_prometheus_clusters_container_bounds_are_refused() {
        let m = with_quota("containerDefaults: {max: {memory: 2Gi, cpu: '2'}, min: {cpu: 10m}}");
        let mut s = spec(FULL);
        s.metrics.resources = serde_yaml::from_str(
            "{requests: {cpu: 5m, memory: 1Gi}, limits: {memory: 4Gi, cpu: 2000m}}",
        )
        .unwrap();
        let problems = plan_stack(&s, &identity(), &m).unwrap_err();
        assert_eq!(
            fields_and_messages(&problems),
            [
                (
                    "spec.metrics.resources.requests.cpu",
                    "5m is below the least a container may have on MemberCluster \"prom-eu\" \
                     (spec.tenantQuota.containerDefaults.min.cpu: 10m): the Prometheus pods \
                     would be refused"
                ),
                (
                    "spec.metrics.resources.limits.memory",
                    "4Gi is above the most a container may have on MemberCluster \"prom-eu\" \
                     (spec.tenantQuota.containerDefaults.max.memory: 2Gi): the Prometheus pods \
                     would be refused"
                ),
            ]
        );
        // Compared by value: 2048Mi is 2Gi, 2000m is 2.
        s.metrics.resources =
            serde_yaml::from_str("{requests: {cpu: 10m}, limits: {memory: 2048Mi, cpu: 2000m}}")
                .unwrap();
        assert!(plan_stack(&s, &identity(), &m).is_ok());
        // Without resources, or without bounds, nothing to compare.
        s.metrics.resources = None;
        assert!(plan_stack(&s, &identity(), &m).is_ok());
        let mut s = spec(FULL);
        s.metrics.resources = serde_yaml::from_str("{limits: {memory: 64Gi}}").unwrap();
        assert!(plan_stack(&s, &identity(), &with_quota("hard: {pods: '4'}")).is_ok());
    }

    #[test]
    fn a_request_above_the_default_limit_needs_a_limit_of_its_own() {
        let m = with_quota("containerDefaults: {default: {memory: 256Mi}}");
        // FULL requests 2Gi of memory and sets no limit: the pod would get 256Mi.
        let problems = plan_stack(&spec(FULL), &identity(), &m).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.metrics.resources.requests.memory");
        assert!(
            problems[0].message.contains(
                "(spec.tenantQuota.containerDefaults.default.memory: 256Mi): the Prometheus \
                 pods would be refused; set spec.metrics.resources.limits.memory too"
            ),
            "{}",
            problems[0].message
        );
        let mut s = spec(FULL);
        s.metrics.resources =
            serde_yaml::from_str("{requests: {memory: 2Gi}, limits: {memory: 2Gi}}").unwrap();
        assert!(plan_stack(&s, &identity(), &m).is_ok());
    }

    #[test]
    fn a_tenant_quota_the_api_server_would_refuse_is_the_clusters_problem() {
        let m = with_quota(
            "hard: {pods: '-1', requests.memory: 2Gb}\n\
             containerDefaults: {default: {memory: 4Gi}, max: {memory: 2Gi}, min: {cpu: x}}",
        );
        let problems = plan_stack(&spec(FULL), &identity(), &m).unwrap_err();
        assert_eq!(
            fields_and_messages(&problems),
            [
                (
                    "spec.metrics.cluster",
                    "MemberCluster \"prom-eu\": spec.tenantQuota.hard.pods: \"-1\" is negative"
                ),
                (
                    "spec.metrics.cluster",
                    "MemberCluster \"prom-eu\": spec.tenantQuota.hard.requests.memory: \"2Gb\" \
                     is not a quantity (a number with an optional suffix such as m, k, M, G, Ki, \
                     Mi or Gi)"
                ),
                (
                    "spec.metrics.cluster",
                    "MemberCluster \"prom-eu\": spec.tenantQuota.containerDefaults.min.cpu: \
                     \"x\" is not a quantity (a number with an optional suffix such as m, k, M, \
                     G, Ki, Mi or Gi)"
                ),
                (
                    "spec.metrics.cluster",
                    "MemberCluster \"prom-eu\": spec.tenantQuota.containerDefaults.default.memory \
                     (4Gi) is above spec.tenantQuota.containerDefaults.max.memory (2Gi): the API \
                     server refuses such a LimitRange"
                ),
            ]
        );
    }

    #[test]
    fn the_grafana_clusters_quota_is_checked_only_where_it_is_written() {
        let mut m = members();
        m[1].tenant_quota = Some(
            serde_yaml::from_str(
                "containerDefaults: {defaultRequest: {cpu: '2'}, max: {cpu: '1'}}",
            )
            .unwrap(),
        );
        let problems = plan_stack(&spec(FULL), &identity(), &m).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.dashboards.cluster");
        assert!(
            problems[0]
                .message
                .starts_with("MemberCluster \"graf-eu\": ")
        );
        let mut s = spec(FULL);
        s.dashboards.namespace = Some("grafana".into());
        assert!(plan_stack(&s, &identity(), &m).is_ok());
    }

    #[test]
    fn the_url_template_knows_three_placeholders() {
        assert_eq!(
            render_url_template("http://{name}.{namespace}:9090/{customer}", "acme"),
            "http://acme.customer-acme:9090/acme"
        );
    }

    #[test]
    fn dashboard_source_problems_name_their_field() {
        let yaml = FULL.replace(
            "  - {name: overview, json: \"{}\"}",
            "  - {name: overview, json: \"{}\", grafanaCom: {id: 1}}\n  - {name: api, configMapRef: {name: boards, key: api.json}}\n  - {name: nodes, grafanaCom: {id: 1860}, datasources: [{inputName: DS_A}, {inputName: DS_A}]}",
        );
        let mut maps = DashboardConfigMaps::none();
        maps.insert("boards", BTreeMap::new());
        let problems = check_spec(&spec(&yaml), &identity(), &members(), &maps).unwrap_err();
        assert_eq!(
            fields_and_messages(&problems),
            [
                (
                    "spec.dashboards.dashboards[0]",
                    "set exactly one of json, url, grafanaCom and configMapRef"
                ),
                (
                    "spec.dashboards.dashboards[1].configMapRef",
                    "ConfigMap \"boards\" has no key \"api.json\" in its data"
                ),
                (
                    "spec.dashboards.dashboards[2].datasources",
                    "name \"DS_A\" is used twice"
                ),
            ]
        );
        let mut big = DashboardConfigMaps::none();
        big.insert(
            "boards",
            BTreeMap::from([(
                "api.json".to_owned(),
                "x".repeat(DASHBOARD_JSON_MAX_LENGTH as usize + 1),
            )]),
        );
        let problems = check_spec(&spec(&yaml), &identity(), &members(), &big).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.field == "spec.dashboards.dashboards[1].configMapRef"
                    && p.message.contains("more than the 1048576")),
            "{problems:?}"
        );
    }
}

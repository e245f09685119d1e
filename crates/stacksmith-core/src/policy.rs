//! Tenant policies: whether a stack may claim its customer, and ask for what it asks, by the
//! platform's `TenantPolicy` objects. Pure: the controller hands over the stack's spec, the hub
//! namespace it lives in and every policy it knows.
//!
//! The rules, each reported as a [`SpecProblem`] naming the stack's field and the policy's rule:
//! - no policy names the customer: refused in [`PolicyMode::Required`], unchecked in
//!   [`PolicyMode::Optional`];
//! - two or more policies name it: refused, naming them all;
//! - otherwise the one policy that names it (the governing policy) decides: the stack's hub
//!   namespace is one of its `hubNamespaces`; `spec.dashboards.namespace` is the tenant
//!   namespace or one of `grafana.namespaces`; `instanceSelector` is not empty and is one of
//!   `grafana.instanceSelectors`; `dedicatedGrafana` only with `grafana.allowDedicatedGrafana`;
//!   `datasource.isDefault` on shared instances only with `grafana.allowDefaultDatasource`; every
//!   dashboard `url` starts with one of `dashboards.urlPrefixes`; and `spec.metrics` stays within
//!   `limits` (replicas, retention, retention size, volume size, cpu and memory requests and
//!   limits), compared by value.
//!
//! Every problem is reported, not only the first.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use stacksmith_api::{CustomerStackSpec, PolicyLimits, TenantPolicySpec};

use crate::plan::SpecProblem;
use crate::prometheus_units::{parse_duration, parse_size};
use crate::quantity;

/// Whether a customer that no policy names may be claimed at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyMode {
    /// A stack whose customer no policy names is refused (the default).
    #[default]
    Required,
    /// A stack whose customer no policy names is let through unchecked; a policy that names
    /// the customer is still enforced.
    Optional,
}

impl PolicyMode {
    /// The spelling of the operator's flag, `required` or `optional`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Required => "required",
            PolicyMode::Optional => "optional",
        }
    }
}

/// A `TenantPolicy` as the check sees it: its name and its spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NamedPolicy<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `spec`.
    pub spec: &'a TenantPolicySpec,
}

/// The policies that name `customer`, in the order given.
pub fn governing<'p, 'a>(
    customer: &str,
    policies: &'p [NamedPolicy<'a>],
) -> Vec<&'p NamedPolicy<'a>> {
    policies
        .iter()
        .filter(|policy| policy.spec.customers.iter().any(|c| c == customer))
        .collect()
}

/// Checks a stack (its `spec`, and `hub_namespace`, the namespace it lives in on the hub)
/// against the policies: `Ok` when it may be planned, otherwise every violation.
pub fn check_stack(
    spec: &CustomerStackSpec,
    hub_namespace: &str,
    policies: &[NamedPolicy<'_>],
    mode: PolicyMode,
) -> Result<(), Vec<SpecProblem>> {
    let customer = spec.customer.as_str();
    let problems = match governing(customer, policies).as_slice() {
        [] if mode == PolicyMode::Optional => Vec::new(),
        [] => vec![problem(
            "spec.customer",
            format!(
                "no TenantPolicy governs customer {customer:?}, and the operator requires one \
                 (--tenant-policy=required): the platform names the customer in a policy's \
                 customers"
            ),
        )],
        [policy] => Check {
            policy,
            spec,
            hub_namespace,
        }
        .problems(),
        several => {
            // Sorted: the cache's order is not stable, and the status must not flap.
            let mut names: Vec<String> = several.iter().map(|p| format!("{:?}", p.name)).collect();
            names.sort();
            vec![problem(
                "spec.customer",
                format!(
                    "customer {customer:?} is named by more than one TenantPolicy ({}): the \
                     platform governs each customer by one policy",
                    names.join(", ")
                ),
            )]
        }
    };
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The customers whose stacks a change of one policy concerns: every customer it names before
/// or after the change; none when its spec did not change. `None`: the policy does not exist
/// (before it was created, or after it was deleted).
pub fn customers_concerned(
    before: Option<&TenantPolicySpec>,
    after: Option<&TenantPolicySpec>,
) -> BTreeSet<String> {
    if before == after {
        return BTreeSet::new();
    }
    before
        .into_iter()
        .chain(after)
        .flat_map(|spec| spec.customers.iter().cloned())
        .collect()
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> SpecProblem {
    SpecProblem {
        field: field.into(),
        message: message.into(),
    }
}

/// One stack against its governing policy.
struct Check<'c> {
    policy: &'c NamedPolicy<'c>,
    spec: &'c CustomerStackSpec,
    hub_namespace: &'c str,
}

impl Check<'_> {
    fn problems(&self) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        self.hub_namespace(&mut problems);
        self.grafana(&mut problems);
        self.dashboard_urls(&mut problems);
        if let Some(limits) = &self.policy.spec.limits {
            self.limits(limits, &mut problems);
        }
        problems
    }

    /// `TenantPolicy "gold"`.
    fn who(&self) -> String {
        format!("TenantPolicy {:?}", self.policy.name)
    }

    fn hub_namespace(&self, problems: &mut Vec<SpecProblem>) {
        let allowed = &self.policy.spec.hub_namespaces;
        if !allowed.iter().any(|ns| ns == self.hub_namespace) {
            problems.push(problem(
                "spec.customer",
                format!(
                    "a stack in hub namespace {:?} may not claim customer {:?}: {} lets only \
                     namespace(s) {} claim it (hubNamespaces)",
                    self.hub_namespace,
                    self.spec.customer,
                    self.who(),
                    allowed.join(", ")
                ),
            ));
        }
    }

    fn grafana(&self, problems: &mut Vec<SpecProblem>) {
        let policy = &self.policy.spec.grafana;
        let dashboards = &self.spec.dashboards;
        let tenant_namespace = format!("customer-{}", self.spec.customer);
        if let Some(namespace) = &dashboards.namespace
            && *namespace != tenant_namespace
            && !policy.namespaces.contains(namespace)
        {
            problems.push(problem(
                "spec.dashboards.namespace",
                format!(
                    "{namespace:?} is not a Grafana namespace {} allows (grafana.namespaces: {}; \
                     the tenant namespace {tenant_namespace} always is)",
                    self.who(),
                    listed(&policy.namespaces)
                ),
            ));
        }
        if let Some(selector) = &dashboards.instance_selector {
            let wanted = NormalSelector::of(selector);
            let allowed: Vec<NormalSelector> = policy
                .instance_selectors
                .iter()
                .map(NormalSelector::of)
                .collect();
            let allowed_text =
                listed(&allowed.iter().map(NormalSelector::text).collect::<Vec<_>>());
            if wanted.is_empty() {
                problems.push(problem(
                    "spec.dashboards.instanceSelector",
                    format!(
                        "an empty selector selects every Grafana instance, every tenant's \
                         included: {} allows only grafana.instanceSelectors ({allowed_text})",
                        self.who()
                    ),
                ));
            } else if !allowed.contains(&wanted) {
                problems.push(problem(
                    "spec.dashboards.instanceSelector",
                    format!(
                        "{} is not a selector {} allows (grafana.instanceSelectors: \
                         {allowed_text})",
                        wanted.text(),
                        self.who()
                    ),
                ));
            }
        }
        if dashboards.dedicated_grafana.is_some() && !policy.allow_dedicated_grafana {
            problems.push(problem(
                "spec.dashboards.dedicatedGrafana",
                format!(
                    "{} does not allow a Grafana instance of the customer's own \
                     (grafana.allowDedicatedGrafana: false)",
                    self.who()
                ),
            ));
        }
        if let Some(name) = &dashboards.datasource.display_name
            && dashboards.dedicated_grafana.is_none()
            && !policy.allow_any_datasource_name
            && !names_the_customer(name, &self.spec.customer)
        {
            problems.push(problem(
                "spec.dashboards.datasource.displayName",
                format!(
                    "{name:?} does not start with the customer id {:?} and a separator, which {} \
                     requires in the shared instances (grafana.allowAnyDatasourceName: false)",
                    self.spec.customer,
                    self.who()
                ),
            ));
        }
        // On an instance of the customer's own, the default datasource concerns no one else.
        if dashboards.datasource.is_default
            && dashboards.dedicated_grafana.is_none()
            && !policy.allow_default_datasource
        {
            problems.push(problem(
                "spec.dashboards.datasource.isDefault",
                format!(
                    "{} does not allow making the datasource the default of the shared \
                     instances' organisation (grafana.allowDefaultDatasource: false)",
                    self.who()
                ),
            ));
        }
    }

    fn dashboard_urls(&self, problems: &mut Vec<SpecProblem>) {
        let prefixes = &self.policy.spec.dashboards.url_prefixes;
        if let Some(url) = &self.spec.dashboards.datasource.url {
            let allowed = &self.policy.spec.grafana.datasource_url_prefixes;
            if !allowed
                .iter()
                .any(|prefix| url.starts_with(prefix.as_str()))
            {
                let rule = if allowed.is_empty() {
                    "allows no datasource URL of the stack's own (grafana.datasourceUrlPrefixes: \
                     none): the Prometheus cluster gives it"
                        .to_owned()
                } else {
                    format!(
                        "allows only datasource URLs starting with {} \
                         (grafana.datasourceUrlPrefixes)",
                        allowed.join(", ")
                    )
                };
                problems.push(problem(
                    "spec.dashboards.datasource.url",
                    format!("{url:?} is not allowed: {} {rule}", self.who()),
                ));
            }
        }
        for (i, dashboard) in self.spec.dashboards.dashboards.iter().enumerate() {
            if dashboard.grafana_com.is_some() && !self.policy.spec.dashboards.allow_grafana_com {
                problems.push(problem(
                    format!("spec.dashboards.dashboards[{i}].grafanaCom"),
                    format!(
                        "{} does not allow dashboards from grafana.com \
                         (dashboards.allowGrafanaCom: false)",
                        self.who()
                    ),
                ));
            }
            let Some(url) = &dashboard.url else {
                continue;
            };
            if !prefixes
                .iter()
                .any(|prefix| url.starts_with(prefix.as_str()))
            {
                let rule = if prefixes.is_empty() {
                    "allows no URL dashboards (dashboards.urlPrefixes: none): use json".to_owned()
                } else {
                    format!(
                        "allows only URLs starting with {} (dashboards.urlPrefixes)",
                        prefixes.join(", ")
                    )
                };
                problems.push(problem(
                    format!("spec.dashboards.dashboards[{i}].url"),
                    format!("{url:?} is not allowed: {} {rule}", self.who()),
                ));
            }
        }
    }

    fn limits(&self, limits: &PolicyLimits, problems: &mut Vec<SpecProblem>) {
        let metrics = &self.spec.metrics;
        let who = self.who();
        if let Some(max) = limits.max_replicas
            && metrics.replicas > max
        {
            problems.push(problem(
                "spec.metrics.replicas",
                format!(
                    "{} is more than {who} allows (limits.maxReplicas: {max})",
                    metrics.replicas
                ),
            ));
        }
        if let Some(max) = &limits.max_retention {
            let bound = Bound {
                who: &who,
                rule: "limits.maxRetention",
                max,
                more: "longer",
            };
            bound.check(
                "spec.metrics.retention",
                &metrics.retention,
                parse_duration,
                problems,
            );
        }
        if let Some(max) = &limits.max_retention_size {
            match &metrics.retention_size {
                Some(size) => Bound {
                    who: &who,
                    rule: "limits.maxRetentionSize",
                    max,
                    more: "more",
                }
                .check("spec.metrics.retentionSize", size, parse_size, problems),
                None => problems.push(problem(
                    "spec.metrics.retentionSize",
                    format!(
                        "required by {who} (limits.maxRetentionSize: {max}): without it the \
                         samples may take any size"
                    ),
                )),
            }
        }
        if let (Some(max), Some(storage)) = (&limits.max_storage, &metrics.storage) {
            Bound {
                who: &who,
                rule: "limits.maxStorage",
                max: &max.0,
                more: "more",
            }
            .check(
                "spec.metrics.storage.size",
                &storage.size.0,
                quantity::parse,
                problems,
            );
        }
        if let Some(resources) = &metrics.resources {
            let sets: [(&str, &BTreeMap<_, _>); 2] = [
                ("requests", &resources.requests),
                ("limits", &resources.limits),
            ];
            for (set, values) in sets {
                for (resource, max) in &limits.max_resources {
                    let Some(value) = values.get(resource) else {
                        continue;
                    };
                    Bound {
                        who: &who,
                        rule: &format!("limits.maxResources.{resource}"),
                        max: &max.0,
                        more: "more",
                    }
                    .check(
                        &format!("spec.metrics.resources.{set}.{resource}"),
                        &value.0,
                        quantity::parse,
                        problems,
                    );
                }
            }
        }
    }
}

/// One cap of `limits`, for a value compared by `parse`.
struct Bound<'b> {
    who: &'b str,
    /// The policy's field, e.g. `limits.maxRetention`.
    rule: &'b str,
    /// The cap as written.
    max: &'b str,
    /// How going over is said: `more` or `longer`.
    more: &'b str,
}

impl Bound<'_> {
    /// Reports `value` (the stack's `field`) when it is over the cap, or either cannot be read
    /// (a cap that cannot be read refuses: the policy says nothing clear).
    fn check<T: PartialOrd, E: std::fmt::Display>(
        &self,
        field: &str,
        value: &str,
        parse: impl Fn(&str) -> Result<T, E>,
        problems: &mut Vec<SpecProblem>,
    ) {
        let (who, rule, max) = (self.who, self.rule, self.max);
        match (parse(value), parse(max)) {
            (Ok(v), Ok(m)) if v > m => problems.push(problem(
                field,
                format!("{value} is {} than {who} allows ({rule}: {max})", self.more),
            )),
            (Ok(_), Ok(_)) => {}
            (Err(err), _) => problems.push(problem(
                field,
                format!("{err}, so it cannot be held to {who} ({rule}: {max})"),
            )),
            (_, Err(err)) => problems.push(problem(
                field,
                format!("{who} has a {rule} that cannot be read ({err}): ask the platform team"),
            )),
        }
    }
}

/// `a, b`, or `none`.
fn listed(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A label selector in a form that compares equal when two selectors say the same: labels
/// sorted, expressions sorted with their values sorted and deduplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NormalSelector {
    labels: BTreeMap<String, String>,
    expressions: BTreeSet<(String, String, BTreeSet<String>)>,
}

impl NormalSelector {
    fn of(selector: &LabelSelector) -> Self {
        NormalSelector {
            labels: selector.match_labels.clone().unwrap_or_default(),
            expressions: selector
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    let values = e.values.iter().flatten().cloned().collect();
                    (e.key.clone(), e.operator.clone(), values)
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.expressions.is_empty()
    }

    /// As `kubectl` writes a selector: `a=b,c in (x,y),!d`; `{}` when empty.
    fn text(&self) -> String {
        if self.is_empty() {
            return "{}".to_owned();
        }
        let labels = self.labels.iter().map(|(k, v)| format!("{k}={v}"));
        let expressions = self.expressions.iter().map(|(key, operator, values)| {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            match operator.as_str() {
                "Exists" => key.clone(),
                "DoesNotExist" => format!("!{key}"),
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                other => format!("{key} {other} ({})", values.join(",")),
            }
        });
        labels.chain(expressions).collect::<Vec<_>>().join(",")
    }
}

/// Whether a datasource display name is the customer's: the id itself, or the id followed by a
/// separator (compared without case), so that `acme` cannot take `acme2-prometheus`.
fn names_the_customer(name: &str, customer: &str) -> bool {
    let lower = name.to_lowercase();
    match lower.strip_prefix(customer) {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '-', '_', '.', ':', '/']),
        None => false,
    }
}

#[cfg(test)]
mod tests;

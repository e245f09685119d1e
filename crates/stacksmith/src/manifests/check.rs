//! Offline checks of stacksmith manifests, shared by `validate`, `render` and `diff`. Pure: the
//! manifests are already read.
//!
//! Kinds: `CustomerStack`, `MemberCluster` and `TenantPolicy` of `stacksmith.io/v1alpha1` are
//! checked; another
//! kind or version of `stacksmith.io` is a problem; objects of other API groups (a `Grafana`,
//! a `Namespace`, ...) are ignored (listed with `--verbose`).
//!
//! Per object:
//! 1. `metadata`: a name (a DNS-1123 subdomain), a namespace (a DNS-1123 label) for a
//!    `CustomerStack`, none for the cluster-scoped `MemberCluster`;
//! 2. the CRD schema generated from the Rust types (`stacksmith_api::crds::all()`), with
//!    [`crate::manifests::schema`]: types, required fields, enums, patterns, bounds (lengths, item and
//!    entry counts), `oneOf`, unique names in list maps and unique roles, the CEL rules (by
//!    their Rust equivalents: `resources` holds `cpu` and `memory` only, a `MemberCluster`
//!    serving `prometheus` has a `prometheusUrlTemplate`, its `tenantQuota.hard` holds quota
//!    names only), and the unknown fields the API server
//!    would silently prune. Transition rules (`spec.customer` cannot change) need the stored
//!    object and are not checked here: [`not_checked_offline`] says so;
//! 3. what the controller judges invalid: the stack is planned with the very function the
//!    reconcile uses (`stacksmith_core::plan::plan_stack_with_config_maps`) against the `MemberCluster`s given,
//!    so an unknown cluster, a cluster without the role, a missing or broken URL template,
//!    duplicate names, a dashboard without exactly one source, a dashboard's `configMapRef`
//!    naming a ConfigMap not among the manifests (see [`dashboard_config_maps`]), a cluster's
//!    `tenantQuota` the API server would refuse or `spec.metrics.resources` outside its container
//!    bounds are reported as the operator would report them (`InvalidSpec`);
//! 4. a `MemberCluster`'s `prometheusUrlTemplate` has only known placeholders;
//! 5. when at least one `TenantPolicy` is given, each stack is checked against them as the
//!    operator does with `--tenant-policy=required` ([`stacksmith_core::policy`]): a stack no
//!    given policy governs, or that breaks a rule of the one that does, is reported (the
//!    operator's `PolicyViolation`). Without any policy given, this is not checked.
//!
//! Across objects: the same kind, namespace and name twice; two stacks for the same customer
//! (duplicate tenant); two stacks that would plan the same object (e.g. customers `a` and `a-b`
//! sharing a `dashboards.namespace`, with dashboards `b-c` and `c`).
//!
//! When no `MemberCluster` is given at all, cluster references cannot be checked: those
//! problems are left out and [`Checked::cluster_references_checked`] is false (the command
//! says so).

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use stacksmith_api::labels::{DASHBOARD_SOURCE, DASHBOARD_SOURCE_VALUE};
use stacksmith_api::validation::{DNS1123_SUBDOMAIN, is_dns1123_label};
use stacksmith_api::{ClusterRole, CustomerStack, GROUP, MemberCluster, TenantPolicy, VERSION};
use stacksmith_core::plan::{
    DashboardConfigMaps, MemberInfo, SpecProblem, StackIdentity, StackPlan,
    plan_stack_with_config_maps, render_url_template,
};
use stacksmith_core::policy::{NamedPolicy, PolicyMode, check_stack};

use crate::manifests::schema::{DUPLICATE, SchemaProblem, check_object, transition_rules};
use crate::manifests::{Loaded, Manifest, Origin, SyntaxProblem};

/// The namespace of a `CustomerStack` whose manifest names none (as `kubectl` would apply it
/// with the default context).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The uid planned into `stacksmith.io/stack-uid` when the manifest has no `metadata.uid`:
/// the hub assigns the real one when the stack is created.
pub const PLACEHOLDER_UID: &str = "uid-assigned-by-the-hub";

/// The object a problem is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectName {
    /// Its kind (as written; may be empty).
    pub kind: String,
    /// Its namespace (empty when cluster-scoped or not given).
    pub namespace: String,
    /// Its name (may be empty).
    pub name: String,
}

impl ObjectName {
    fn of(manifest: &Manifest) -> Self {
        ObjectName {
            kind: manifest.kind().to_owned(),
            namespace: manifest.namespace().to_owned(),
            name: manifest.name().to_owned(),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "object"
        } else {
            &self.kind
        };
        let name = if self.name.is_empty() {
            "(no name)"
        } else {
            &self.name
        };
        if self.namespace.is_empty() {
            write!(f, "{kind} {name}")
        } else {
            write!(f, "{kind} {}/{name}", self.namespace)
        }
    }
}

/// One problem: where, which object, which field, what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// The line where the object's document starts (or of a syntax error).
    pub line: usize,
    /// The document's number in the file (1-based).
    pub document: usize,
    /// The object, when the document is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectName>,
    /// The field path, e.g. `spec.metrics.cluster` (empty for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(manifest: &Manifest, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            file: manifest.origin.file.clone(),
            line: manifest.origin.line,
            document: manifest.origin.document,
            object: Some(ObjectName::of(manifest)),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `FILE:LINE: KIND NAMESPACE/NAME: FIELD: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match &self.object {
            Some(object) => write!(f, "{object}: ")?,
            None => write!(f, "document {}: ", self.document)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A `CustomerStack` that was read, with its plan when it could be planned.
#[derive(Clone, Debug)]
pub struct CheckedStack {
    /// The manifest.
    pub manifest: Manifest,
    /// The typed stack.
    pub stack: CustomerStack,
    /// The identity it was planned with.
    pub identity: StackIdentity,
    /// The dashboard-source ConfigMaps among the manifests that its dashboards name (see
    /// [`dashboard_config_maps`]).
    pub config_maps: DashboardConfigMaps,
    /// The plan (`None` when planning found problems or could not run).
    pub plan: Option<StackPlan>,
}

/// What the checks found.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// Every problem, by file and document.
    pub problems: Vec<Problem>,
    /// The stacks that could be read as `CustomerStack`s.
    pub stacks: Vec<CheckedStack>,
    /// The member clusters that could be read.
    pub members: Vec<MemberCluster>,
    /// The tenant policies that could be read.
    pub policies: Vec<TenantPolicy>,
    /// Objects of other API groups, not checked.
    pub ignored: Vec<Manifest>,
    /// False when no `MemberCluster` was given, so cluster references were not checked.
    pub cluster_references_checked: bool,
    /// How many `CustomerStack` manifests were checked (read or not).
    pub stack_count: usize,
    /// How many `MemberCluster` manifests were checked (read or not).
    pub member_count: usize,
    /// How many `TenantPolicy` manifests were checked (read or not).
    pub policy_count: usize,
}

/// Checks everything that was loaded (`stacks` and `clusters` alike: both may hold either kind).
pub fn check_all(loaded: &[&Loaded]) -> Checked {
    let mut checked = Checked::default();
    let ours = sort_out(loaded, &mut checked);
    let stacks = check_ours(ours, &mut checked);
    plan_stacks(stacks, &mut checked);
    check_policies(&mut checked);
    check_duplicates(loaded, &mut checked.problems);
    check_tenants(&checked.stacks, &mut checked.problems);
    checked
        .problems
        .sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
    checked
}

/// Records the syntax problems and the objects of other groups; returns the objects of ours.
fn sort_out<'a>(loaded: &[&'a Loaded], checked: &mut Checked) -> Vec<(&'a Manifest, OurKind)> {
    let mut ours = Vec::new();
    for l in loaded {
        checked
            .problems
            .extend(l.problems.iter().map(syntax_problem));
        for manifest in &l.manifests {
            match classify(manifest) {
                Class::Ours(kind) => ours.push((manifest, kind)),
                Class::Ignored => checked.ignored.push(manifest.clone()),
                Class::Problem(problem) => checked.problems.push(problem),
            }
        }
    }
    ours
}

fn syntax_problem(syntax: &SyntaxProblem) -> Problem {
    Problem {
        file: syntax.origin.file.clone(),
        line: syntax.origin.line,
        document: syntax.origin.document,
        object: None,
        field: String::new(),
        message: syntax.message.clone(),
    }
}

/// Checks each object of ours alone (metadata, schema, member templates), counts them and keeps
/// the members; returns the stacks that could be read.
fn check_ours<'a>(
    ours: Vec<(&'a Manifest, OurKind)>,
    checked: &mut Checked,
) -> Vec<(&'a Manifest, CustomerStack)> {
    let schemas = crd_schemas();
    checked.stack_count = ours
        .iter()
        .filter(|(_, k)| *k == OurKind::CustomerStack)
        .count();
    checked.policy_count = ours
        .iter()
        .filter(|(_, k)| *k == OurKind::TenantPolicy)
        .count();
    checked.member_count = ours.len() - checked.stack_count - checked.policy_count;
    ours.into_iter()
        .filter_map(|(manifest, kind)| {
            check_one(manifest, kind, &schemas, checked).map(|stack| (manifest, stack))
        })
        .collect()
}

/// Checks one object of ours; a `MemberCluster` that can be read is added to
/// `checked.members`, a `CustomerStack` that can be read is returned.
fn check_one(
    manifest: &Manifest,
    kind: OurKind,
    schemas: &BTreeMap<String, Value>,
    checked: &mut Checked,
) -> Option<CustomerStack> {
    check_metadata(manifest, kind, &mut checked.problems);
    let schema_problems = schemas
        .get(kind.as_str())
        .map(|schema| check_object(schema, &manifest.value))
        .unwrap_or_default();
    let schema_clean = schema_problems.is_empty();
    checked.problems.extend(
        schema_problems
            .into_iter()
            .map(|p| from_schema(manifest, p)),
    );
    let typed = match kind {
        OurKind::CustomerStack => {
            serde_json::from_value::<CustomerStack>(manifest.value.clone()).map(Some)
        }
        OurKind::MemberCluster => serde_json::from_value::<MemberCluster>(manifest.value.clone())
            .map(|member| {
                check_member(manifest, &member, &mut checked.problems);
                checked.members.push(member);
                None
            }),
        OurKind::TenantPolicy => serde_json::from_value::<TenantPolicy>(manifest.value.clone())
            .map(|policy| {
                checked.policies.push(policy);
                None
            }),
    };
    match typed {
        Ok(stack) => stack,
        Err(err) => {
            if schema_clean {
                checked.problems.push(Problem::new(
                    manifest,
                    "",
                    format!("cannot be read as a {}: {err}", kind.as_str()),
                ));
            }
            None
        }
    }
}

/// Plans each stack against the members given, as the controller would; what planning finds is
/// added to the problems, the stacks (planned or not) to `checked.stacks`.
fn plan_stacks(stacks: Vec<(&Manifest, CustomerStack)>, checked: &mut Checked) {
    let members: Vec<MemberInfo> = checked
        .members
        .iter()
        .map(stacksmith_controller::member_info)
        .collect();
    checked.cluster_references_checked = !members.is_empty();
    for (manifest, stack) in stacks {
        let identity = identity(manifest, &stack);
        let config_maps = dashboard_config_maps(&checked.ignored, &identity.namespace, &stack);
        let plan = match plan_stack_with_config_maps(&stack.spec, &identity, &members, &config_maps)
        {
            Ok(plan) => Some(plan),
            Err(problems) => {
                let new = planning_problems(manifest, problems, checked);
                checked.problems.extend(new);
                None
            }
        };
        checked.stacks.push(CheckedStack {
            manifest: manifest.clone(),
            stack,
            identity,
            config_maps,
            plan,
        });
    }
}

/// Checks each stack against the tenant policies given (none given: nothing is checked), as the
/// operator does with `--tenant-policy=required`; a field already faulted is not reported again.
fn check_policies(checked: &mut Checked) {
    let named: Vec<NamedPolicy<'_>> = checked
        .policies
        .iter()
        .map(|policy| NamedPolicy {
            name: policy.metadata.name.as_deref().unwrap_or_default(),
            spec: &policy.spec,
        })
        .collect();
    if named.is_empty() {
        return;
    }
    let mut found = Vec::new();
    for checked_stack in &checked.stacks {
        let manifest = &checked_stack.manifest;
        let namespace = &checked_stack.identity.namespace;
        if let Err(violations) = check_stack(
            &checked_stack.stack.spec,
            namespace,
            &named,
            PolicyMode::Required,
        ) {
            let faulted = faulted_fields(manifest, &checked.problems);
            found.extend(
                violations
                    .into_iter()
                    .filter(|p| !faulted.contains(&p.field))
                    .map(|p| Problem::new(manifest, p.field, p.message)),
            );
        }
    }
    checked.problems.extend(found);
}

/// The planner's problems with a stack that are still to be reported: not those about cluster
/// references when they cannot be checked, nor those about a field already faulted.
fn planning_problems(
    manifest: &Manifest,
    problems: Vec<SpecProblem>,
    checked: &Checked,
) -> Vec<Problem> {
    let faulted = faulted_fields(manifest, &checked.problems);
    problems
        .into_iter()
        .filter(|p| {
            checked.cluster_references_checked
                || !matches!(
                    p.field.as_str(),
                    "spec.metrics.cluster" | "spec.dashboards.cluster"
                )
        })
        .filter(|p| !faulted.contains(&p.field))
        .map(|p| Problem::new(manifest, p.field, p.message))
        .collect()
}

/// The fields of `manifest` the schema check already faulted (e.g. `spec.customer` against its
/// pattern, or a name repeated in a list map: then the list too), so that planning does not
/// report them twice.
fn faulted_fields(manifest: &Manifest, problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| p.file == manifest.origin.file && p.document == manifest.origin.document)
        .flat_map(|p| {
            let list = p
                .message
                .starts_with(DUPLICATE)
                .then(|| p.field.rsplit_once('[').map(|(list, _)| list.to_owned()))
                .flatten();
            std::iter::once(p.field.clone()).chain(list)
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OurKind {
    CustomerStack,
    MemberCluster,
    TenantPolicy,
}

impl OurKind {
    fn as_str(self) -> &'static str {
        match self {
            OurKind::CustomerStack => "CustomerStack",
            OurKind::MemberCluster => "MemberCluster",
            OurKind::TenantPolicy => "TenantPolicy",
        }
    }
}

enum Class {
    Ours(OurKind),
    Ignored,
    Problem(Problem),
}

fn classify(manifest: &Manifest) -> Class {
    if manifest.api_version().is_empty() {
        return Class::Problem(Problem::new(
            manifest,
            "apiVersion",
            "required: not a Kubernetes object",
        ));
    }
    if manifest.kind().is_empty() {
        return Class::Problem(Problem::new(
            manifest,
            "kind",
            "required: not a Kubernetes object",
        ));
    }
    if manifest.group() != GROUP {
        return Class::Ignored;
    }
    let expected = format!("{GROUP}/{VERSION}");
    if manifest.api_version() != expected {
        return Class::Problem(Problem::new(
            manifest,
            "apiVersion",
            format!("{} is not served (use {expected})", manifest.api_version()),
        ));
    }
    match manifest.kind() {
        "CustomerStack" => Class::Ours(OurKind::CustomerStack),
        "MemberCluster" => Class::Ours(OurKind::MemberCluster),
        "TenantPolicy" => Class::Ours(OurKind::TenantPolicy),
        other => Class::Problem(Problem::new(
            manifest,
            "kind",
            format!(
                "{other:?} is not a kind of {GROUP} (CustomerStack, MemberCluster, TenantPolicy)"
            ),
        )),
    }
}

/// The `openAPIV3Schema` of each kind, from the CRDs generated from the Rust types.
fn crd_schemas() -> BTreeMap<String, Value> {
    stacksmith_api::crds::all()
        .into_iter()
        .filter_map(|crd| {
            let version = crd.spec.versions.iter().find(|v| v.name == VERSION)?;
            let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
            Some((
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).ok()?,
            ))
        })
        .collect()
}

fn from_schema(manifest: &Manifest, problem: SchemaProblem) -> Problem {
    Problem::new(manifest, problem.field, problem.message)
}

fn check_metadata(manifest: &Manifest, kind: OurKind, problems: &mut Vec<Problem>) {
    let metadata = manifest.value.get("metadata");
    if !metadata.is_none_or(Value::is_object) {
        problems.push(Problem::new(manifest, "metadata", "must be an object"));
        return;
    }
    match metadata.and_then(|m| m.get("name")) {
        None | Some(Value::Null) => {
            problems.push(Problem::new(manifest, "metadata.name", "required"));
        }
        Some(Value::String(name)) => {
            let valid = name.len() <= 253
                && Regex::new(DNS1123_SUBDOMAIN).is_ok_and(|re| re.is_match(name));
            if !valid {
                problems.push(Problem::new(
                    manifest,
                    "metadata.name",
                    format!("{name:?} is not a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.', at most 253 characters)"),
                ));
            }
        }
        Some(_) => problems.push(Problem::new(manifest, "metadata.name", "must be a string")),
    }
    let namespace = metadata.and_then(|m| m.get("namespace"));
    match (kind, namespace) {
        (_, None | Some(Value::Null)) => {}
        (OurKind::MemberCluster | OurKind::TenantPolicy, Some(_)) => problems.push(Problem::new(
            manifest,
            "metadata.namespace",
            format!("a {} is cluster-scoped: it has no namespace", kind.as_str()),
        )),
        (OurKind::CustomerStack, Some(Value::String(ns))) if is_dns1123_label(ns, 63) => {}
        (OurKind::CustomerStack, Some(ns)) => problems.push(Problem::new(
            manifest,
            "metadata.namespace",
            format!("{ns} is not a DNS-1123 label"),
        )),
    }
}

/// What the schema's CEL rules say and the schema check could not check (a missing template is
/// the CEL rule's, checked with the schema).
fn check_member(manifest: &Manifest, member: &MemberCluster, problems: &mut Vec<Problem>) {
    if !member.spec.roles.contains(&ClusterRole::Prometheus) {
        return;
    }
    if let Some(template) = member.spec.prometheus_url_template.as_deref() {
        let url = render_url_template(template, "customer");
        if url.contains('{') || url.contains('}') {
            problems.push(Problem::new(
                manifest,
                "spec.prometheusUrlTemplate",
                "has an unknown placeholder (known: {namespace}, {name}, {customer})",
            ));
        }
    }
}

/// The rules of a kind that no offline check can apply: transition rules, which compare an
/// update with the object stored on the hub (each as its message, naming the field).
pub fn not_checked_offline(kind: &str) -> Vec<String> {
    crd_schemas()
        .get(kind)
        .map(|schema| {
            transition_rules(schema)
                .into_iter()
                .map(|rule| {
                    if rule.message.contains(&rule.field) {
                        rule.message
                    } else {
                        format!("{}: {}", rule.field, rule.message)
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The ConfigMaps among `manifests` that `stack`'s dashboards name (`configMapRef`), as the
/// operator would find them on the hub: `v1` ConfigMaps in the stack's `namespace` (a manifest
/// without one is in [`DEFAULT_NAMESPACE`]) labelled `stacksmith.io/dashboard-source: "true"`.
/// One not given is reported as not found, naming the dashboard's `configMapRef`.
pub fn dashboard_config_maps(
    manifests: &[Manifest],
    namespace: &str,
    stack: &CustomerStack,
) -> DashboardConfigMaps {
    let named = DashboardConfigMaps::named_by(&stack.spec);
    let mut found = DashboardConfigMaps::none();
    for manifest in manifests {
        let in_namespace = match manifest.namespace() {
            "" => DEFAULT_NAMESPACE,
            ns => ns,
        };
        let labelled = manifest
            .value
            .pointer(&format!(
                "/metadata/labels/{}",
                DASHBOARD_SOURCE.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str)
            == Some(DASHBOARD_SOURCE_VALUE);
        if manifest.api_version() != "v1"
            || manifest.kind() != "ConfigMap"
            || in_namespace != namespace
            || !labelled
            || !named.contains(&manifest.name())
        {
            continue;
        }
        let data = manifest
            .value
            .get("data")
            .and_then(Value::as_object)
            .map(|data| {
                data.iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        found.insert(manifest.name(), data);
    }
    found
}

/// The identity a stack is planned with: its namespace (default `default`), name and uid
/// (`metadata.uid`, else [`PLACEHOLDER_UID`]).
pub fn identity(manifest: &Manifest, stack: &CustomerStack) -> StackIdentity {
    let namespace = match manifest.namespace() {
        "" => DEFAULT_NAMESPACE,
        ns => ns,
    };
    StackIdentity {
        namespace: namespace.to_owned(),
        name: manifest.name().to_owned(),
        uid: stack
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| PLACEHOLDER_UID.to_owned()),
    }
}

fn check_duplicates(loaded: &[&Loaded], problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<(String, String, String, String), Origin> = BTreeMap::new();
    for manifest in loaded.iter().flat_map(|l| &l.manifests) {
        if manifest.name().is_empty() || manifest.kind().is_empty() {
            continue;
        }
        let namespace = if manifest.group() == GROUP && manifest.kind() == "CustomerStack" {
            match manifest.namespace() {
                "" => DEFAULT_NAMESPACE,
                ns => ns,
            }
        } else {
            manifest.namespace()
        };
        let key = (
            manifest.group().to_owned(),
            manifest.kind().to_owned(),
            namespace.to_owned(),
            manifest.name().to_owned(),
        );
        match seen.get(&key) {
            Some(first) => problems.push(Problem::new(
                manifest,
                "metadata.name",
                format!("defined twice: also at {first}"),
            )),
            None => {
                seen.insert(key, manifest.origin.clone());
            }
        }
    }
}

/// Two stacks for one customer, or two stacks that plan the same object.
fn check_tenants(stacks: &[CheckedStack], problems: &mut Vec<Problem>) {
    let mut customers: BTreeMap<&str, &CheckedStack> = BTreeMap::new();
    let mut planned: BTreeMap<(String, &str, String, String), &CheckedStack> = BTreeMap::new();
    for stack in stacks {
        let customer = stack.stack.spec.customer.as_str();
        if let Some(first) = customers.get(customer) {
            problems.push(Problem::new(
                &stack.manifest,
                "spec.customer",
                format!(
                    "duplicate tenant: customer {customer:?} is already the customer of CustomerStack {}/{} ({}): both would write the same children",
                    first.identity.namespace, first.identity.name, first.manifest.origin
                ),
            ));
            continue;
        }
        customers.insert(customer, stack);
        let mut reported = false;
        for object in stack.plan.iter().flat_map(|p| &p.objects) {
            let key = (
                object.cluster.clone(),
                object.kind.kind(),
                object.namespace.clone(),
                object.name.clone(),
            );
            match planned.get(&key) {
                // Namespaces are shared only by stacks of one customer, reported above.
                Some(first) if !reported => {
                    reported = true;
                    problems.push(Problem::new(
                        &stack.manifest,
                        "spec",
                        format!(
                            "collides with CustomerStack {}/{} ({}): both plan {} {}{} on {}",
                            first.identity.namespace,
                            first.identity.name,
                            first.manifest.origin,
                            object.kind.kind(),
                            if object.namespace.is_empty() {
                                String::new()
                            } else {
                                format!("{}/", object.namespace)
                            },
                            object.name,
                            object.cluster
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    planned.insert(key, stack);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::parse;

    const MEMBERS: &str = r#"
apiVersion: stacksmith.io/v1alpha1
kind: MemberCluster
metadata: {name: prom}
spec:
  kubeconfigSecretRef: {namespace: stacksmith-system, name: prom}
  roles: [prometheus]
  prometheusUrlTemplate: "http://{name}.{namespace}.svc:9090"
---
apiVersion: stacksmith.io/v1alpha1
kind: MemberCluster
metadata: {name: graf}
spec:
  kubeconfigSecretRef: {namespace: stacksmith-system, name: graf}
  roles: [grafana]
"#;

    fn stack(name: &str, customer: &str, extra: &str) -> String {
        format!(
            r#"
---
apiVersion: stacksmith.io/v1alpha1
kind: CustomerStack
metadata: {{name: {name}, namespace: customers}}
spec:
  customer: {customer}
  metrics: {{cluster: prom}}
  dashboards:
    cluster: graf
    instanceSelector: {{}}
    {extra}
"#
        )
    }

    fn run(text: &str) -> Checked {
        let (manifests, problems) = parse("f.yaml", text);
        check_all(&[&Loaded {
            manifests,
            problems,
            ..Loaded::default()
        }])
    }

    fn lines(checked: &Checked) -> Vec<String> {
        checked.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_stack_is_planned() {
        let checked = run(&format!("{MEMBERS}{}", stack("a", "acme", "")));
        assert_eq!(lines(&checked), Vec::<String>::new());
        assert!(checked.cluster_references_checked);
        let plan = checked.stacks[0].plan.as_ref().unwrap();
        assert_eq!(plan.clusters, ["graf", "prom"]);
    }

    #[test]
    fn duplicate_tenants_and_colliding_names() {
        let text = format!(
            "{MEMBERS}{}{}{}{}",
            stack("a", "acme", ""),
            stack("b", "acme", ""),
            stack(
                "c",
                "x",
                "namespace: shared\n    dashboards: [{name: b-c, url: u}]"
            ),
            stack(
                "d",
                "x-b",
                "namespace: shared\n    dashboards: [{name: c, url: u}]"
            ),
        );
        let found = lines(&run(&text));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("CustomerStack customers/b: spec.customer: duplicate tenant: customer \"acme\" is already the customer of CustomerStack customers/a (f.yaml:"), "{found:?}");
        assert!(
            found[1].contains(
                "CustomerStack customers/d: spec: collides with CustomerStack customers/c (f.yaml:"
            ),
            "{found:?}"
        );
        assert!(
            found[1].ends_with("both plan GrafanaDashboard shared/x-b-c on graf"),
            "{found:?}"
        );
    }

    #[test]
    fn planning_problems_are_the_controllers() {
        let text = format!(
            "{MEMBERS}{}",
            stack("a", "acme", "").replace("cluster: graf", "cluster: prom")
        );
        assert_eq!(
            lines(&run(&text))
                .iter()
                .map(|l| l.split(": ").skip(2).collect::<Vec<_>>().join(": "))
                .collect::<Vec<_>>(),
            ["spec.dashboards.cluster: MemberCluster \"prom\" does not serve the grafana role"]
        );
    }

    #[test]
    fn without_members_cluster_references_are_not_checked() {
        let checked = run(&stack("a", "acme", ""));
        assert_eq!(lines(&checked), Vec::<String>::new());
        assert!(!checked.cluster_references_checked);
    }

    #[test]
    fn stacks_are_checked_against_the_tenant_policies_given() {
        const POLICY: &str = "\n---\napiVersion: stacksmith.io/v1alpha1\nkind: TenantPolicy\nmetadata: {name: gold}\nspec:\n  customers: [acme]\n  hubNamespaces: [customers]\n  limits: {maxReplicas: 1}\n";
        let text = format!(
            "{MEMBERS}{POLICY}{}{}",
            stack("a", "acme", ""),
            stack("b", "globex", "")
        );
        let checked = run(&text);
        assert_eq!(checked.policy_count, 1);
        assert_eq!(checked.member_count, 2);
        let found: Vec<String> = lines(&checked)
            .iter()
            .map(|l| l.split(": ").skip(2).collect::<Vec<_>>().join(": "))
            .collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("spec.dashboards.instanceSelector: an empty selector"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("spec.customer: no TenantPolicy governs customer \"globex\""),
            "{found:#?}"
        );
        // Without a policy among the manifests, policies are not checked.
        let unchecked = run(&format!("{MEMBERS}{}", stack("b", "globex", "")));
        assert_eq!(lines(&unchecked), Vec::<String>::new());
        // A policy is cluster-scoped.
        let namespaced = run(&POLICY.replace("{name: gold}", "{name: gold, namespace: x}"));
        assert!(
            lines(&namespaced)
                .iter()
                .any(|l| l.contains("a TenantPolicy is cluster-scoped")),
            "{:?}",
            lines(&namespaced)
        );
    }

    #[test]
    fn other_groups_are_ignored_and_unknown_stacksmith_kinds_are_problems() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: stacksmith.io/v1alpha1\nkind: Stack\nmetadata: {name: x}\n---\napiVersion: stacksmith.io/v1\nkind: CustomerStack\nmetadata: {name: x}\n---\nfoo: bar\n";
        let checked = run(text);
        assert_eq!(checked.ignored.len(), 1);
        assert_eq!(
            lines(&checked),
            [
                "f.yaml:5: Stack x: kind: \"Stack\" is not a kind of stacksmith.io (CustomerStack, MemberCluster, TenantPolicy)",
                "f.yaml:9: CustomerStack x: apiVersion: stacksmith.io/v1 is not served (use stacksmith.io/v1alpha1)",
                "f.yaml:13: object (no name): apiVersion: required: not a Kubernetes object",
            ]
        );
    }

    #[test]
    fn a_config_map_dashboard_reads_its_model_from_the_manifests_given() {
        let dashboards = "dashboards: [{name: api, configMapRef: {name: boards, key: api.json}}]";
        let config_map = |namespace: &str, labelled: bool| {
            let labels = if labelled {
                "labels: {stacksmith.io/dashboard-source: \"true\"}"
            } else {
                "labels: {}"
            };
            format!(
                "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: boards, namespace: {namespace}, {labels}}}\ndata: {{api.json: '{{\"title\": \"API\"}}'}}\n"
            )
        };
        let given = run(&format!(
            "{MEMBERS}{}{}",
            stack("a", "acme", dashboards),
            config_map("customers", true)
        ));
        assert_eq!(lines(&given), Vec::<String>::new());
        let plan = given.stacks[0].plan.as_ref().unwrap();
        let dashboard = plan.objects.iter().find(|o| o.name == "acme-api").unwrap();
        assert_eq!(dashboard.manifest["spec"]["json"], "{\"title\": \"API\"}");
        // Not given, in another namespace, or without the label: the reference is the problem.
        for others in [
            String::new(),
            config_map("elsewhere", true),
            config_map("customers", false),
        ] {
            let found = lines(&run(&format!(
                "{MEMBERS}{}{others}",
                stack("a", "acme", dashboards)
            )));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].contains(
                    "spec.dashboards.dashboards[0].configMapRef: ConfigMap \"boards\" not found"
                ),
                "{found:?}"
            );
        }
    }
}

//! `stacksmith diff -f STACK.yaml`: what applying the stack would change in each member
//! cluster, found with server-side apply **dry runs** (nothing is written).
//!
//! Like the operator: the `MemberCluster`s and their kubeconfig Secrets are read from the hub
//! (through the controller's member client), the stack is planned by the operator's planner, and
//! every planned object is applied with the operator's field manager, forced, as a dry run. The
//! live object and the dry-run result are compared without `status`, `managedFields`,
//! `resourceVersion`, `generation`, `uid`, timestamps and the `stacksmith.io/planned-hash`
//! annotation. When the stack exists on the hub, its
//! uid is used, and objects it owns that the plan no longer holds are listed as deletions.
//!
//! Every request is under a timeout (the member's `requestTimeoutSeconds`, 10 s on the hub); a
//! cluster that cannot be reached is reported for that cluster only.
//!
//! Exit codes: 0 nothing would change, 1 something would change, 2 an error (the stack is
//! invalid, the hub or a cluster cannot be reached, a dry run was refused).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt as _};
use serde::Serialize;
use serde_json::Value;
use stacksmith_api::labels::STACK_UID;
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_controller::api_calls::ApiCallCounter;
use stacksmith_controller::{
    FIELD_MANAGER, HUB_TIMEOUT, Ownership, RemoteError, api_error_summary, api_resource, call,
    member_client_from_secret, member_info, object_api, ownership, read_dashboard_config_maps,
};
use stacksmith_core::plan::{
    DesiredObject, MemberInfo, ObjectKind, StackIdentity, StackPlan, plan_stack_with_config_maps,
};

use crate::manifests::check::{Checked, CheckedStack, PLACEHOLDER_UID, check_all};
use crate::manifests::load;
use crate::output::print_stdout;

/// Options of `stacksmith diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The CustomerStack(s): files or directories.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// Kubeconfig of the hub; default: `KUBECONFIG` / `~/.kube/config`, else in-cluster.
    #[arg(long, env = "STACKSMITH_HUB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Output formats of `diff`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// Per cluster, one line per object (`+` new, `~` changed, `=` unchanged, `-` deleted,
    /// `!` conflict, `x` error), changed fields as `- old` / `+ new` lines.
    Text,
    /// The same as data.
    Json,
}

/// What would happen to one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    /// It does not exist: it would be created.
    New,
    /// It exists and would change.
    Changed,
    /// It exists as planned.
    Unchanged,
    /// The stack owns it but no longer plans it: the operator would delete it.
    Deleted,
    /// Someone else owns it: the operator would leave it alone.
    Conflict,
    /// The dry run was refused.
    Error,
}

/// One changed field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field path.
    pub path: String,
    /// Its live value (JSON), absent when added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// Its value after applying (JSON), absent when removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<String>,
}

/// One object's diff.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectDiff {
    /// What would happen.
    pub change: Change,
    /// Its kind.
    pub kind: String,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The fields that would change (every field of a new object).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Why (conflicts, errors).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One cluster's diff.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterDiff {
    /// The `MemberCluster`.
    pub cluster: String,
    /// Set when the cluster could not be diffed (or only partly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The objects, in plan order, then the deletions.
    pub objects: Vec<ObjectDiff>,
}

/// Runs `stacksmith diff`.
pub async fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let checked = checked_stacks(&args.paths)?;
    let hub = hub_client(args.kubeconfig.as_deref()).await?;
    let members = list_members(&hub).await?;
    let infos: Vec<_> = members.iter().map(member_info).collect();
    let counter = ApiCallCounter::new();

    let mut diffs = Vec::new();
    for stack in &checked.stacks {
        let (plan, identity, stack_exists) = plan_against_hub(&hub, stack, &infos).await?;
        for cluster in &plan.clusters_in_plan_order() {
            let Some(member) = members.iter().find(|m| &m.name_any() == cluster) else {
                continue;
            };
            diffs.push(diff_cluster(&hub, member, &counter, &plan, &identity, stack_exists).await);
        }
    }

    print_diffs(args.output, &diffs)?;
    Ok(exit_code(&diffs))
}

/// The stacks in `paths`, checked offline: an error when they have problems or there is none.
fn checked_stacks(paths: &[PathBuf]) -> anyhow::Result<Checked> {
    let loaded = load(paths)?;
    let checked = check_all(&[&loaded]);
    if !checked.problems.is_empty() {
        for problem in &checked.problems {
            eprintln!("{problem}");
        }
        bail!(
            "{} problem(s) in the stack: nothing compared",
            checked.problems.len()
        );
    }
    if checked.stacks.is_empty() {
        bail!("no CustomerStack found in the paths given with -f");
    }
    Ok(checked)
}

async fn list_members(hub: &Client) -> anyhow::Result<Vec<MemberCluster>> {
    Ok(timed(
        HUB_TIMEOUT,
        Api::<MemberCluster>::all(hub.clone()).list(&ListParams::default()),
    )
    .await
    .context("listing the MemberClusters on the hub")?
    .items)
}

/// Plans a stack as the operator would against the hub: with the stored stack's uid when it
/// exists, against the hub's `MemberCluster`s. Returns the plan, the identity planned with and
/// whether the stack is stored on the hub.
async fn plan_against_hub(
    hub: &Client,
    stack: &CheckedStack,
    infos: &[MemberInfo],
) -> anyhow::Result<(StackPlan, StackIdentity, bool)> {
    let mut identity = stack.identity.clone();
    let live_stack = stored_stack(hub, &identity).await?;
    if let Some(live) = &live_stack {
        check_customer_unchanged(stack, &identity, live)?;
    }
    let known = live_stack.as_ref().and_then(|s| s.uid());
    if let Some(uid) = &known {
        identity.uid.clone_from(uid);
    }
    // The dashboards' ConfigMaps as the hub holds them, those given beside the stack winning.
    let mut config_maps = read_dashboard_config_maps(hub, &identity.namespace, &stack.stack.spec)
        .await
        .context("reading the dashboards' ConfigMaps on the hub")?;
    config_maps.overlay(stack.config_maps.clone());
    let plan = match plan_stack_with_config_maps(&stack.stack.spec, &identity, infos, &config_maps)
    {
        Ok(plan) => plan,
        Err(problems) => {
            for problem in &problems {
                eprintln!(
                    "{}: CustomerStack {}/{}: {}: {}",
                    stack.manifest.origin,
                    identity.namespace,
                    identity.name,
                    problem.field,
                    problem.message
                );
            }
            bail!("the stack is invalid against the hub's MemberClusters: nothing compared");
        }
    };
    print_notes(stack, &identity, known.is_some());
    Ok((plan, identity, known.is_some()))
}

/// The stack as stored on the hub, if it is.
async fn stored_stack(
    hub: &Client,
    identity: &StackIdentity,
) -> anyhow::Result<Option<CustomerStack>> {
    let stacks: Api<CustomerStack> = Api::namespaced(hub.clone(), &identity.namespace);
    timed(HUB_TIMEOUT, stacks.get_opt(&identity.name))
        .await
        .with_context(|| {
            format!(
                "reading CustomerStack {}/{} on the hub",
                identity.namespace, identity.name
            )
        })
}

/// The hub refuses a change of `spec.customer` at admission (a CEL transition rule): say so
/// here, where the stored stack is at hand, instead of diffing a plan that can never be applied.
fn check_customer_unchanged(
    stack: &CheckedStack,
    identity: &StackIdentity,
    live: &CustomerStack,
) -> anyhow::Result<()> {
    if live.spec.customer != stack.stack.spec.customer {
        bail!(
            "{}: CustomerStack {}/{}: spec.customer: {} (stored: {:?}, given: {:?})",
            stack.manifest.origin,
            identity.namespace,
            identity.name,
            stacksmith_api::validation::cel::CUSTOMER_IMMUTABLE_MESSAGE,
            live.spec.customer,
            stack.stack.spec.customer
        );
    }
    Ok(())
}

/// Notes on standard error: a paused stack, a stack not on the hub yet.
fn print_notes(stack: &CheckedStack, identity: &StackIdentity, stack_exists: bool) {
    if stack.stack.spec.paused {
        eprintln!(
            "note: CustomerStack {}/{} is paused: the operator would write none of this",
            identity.namespace, identity.name
        );
    }
    if !stack_exists {
        eprintln!(
            "note: CustomerStack {}/{} is not on the hub yet (uid {PLACEHOLDER_UID} planned)",
            identity.namespace, identity.name
        );
    }
}

fn print_diffs(output: Output, diffs: &[ClusterDiff]) -> anyhow::Result<()> {
    match output {
        Output::Text => print_stdout(&text(diffs))?,
        Output::Json => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({"clusters": diffs}))?
        ))?,
    }
    Ok(())
}

/// 2 when a cluster or a dry run failed, else 1 when something would change, else 0.
fn exit_code(diffs: &[ClusterDiff]) -> ExitCode {
    let error = diffs
        .iter()
        .any(|d| d.error.is_some() || d.objects.iter().any(|o| o.change == Change::Error));
    let changed = diffs
        .iter()
        .any(|d| d.objects.iter().any(|o| o.change != Change::Unchanged));
    ExitCode::from(if error {
        2
    } else if changed {
        1
    } else {
        0
    })
}

trait PlanOrder {
    fn clusters_in_plan_order(&self) -> Vec<String>;
}

impl PlanOrder for StackPlan {
    /// The clusters in the order their objects are planned (the Prometheus cluster first).
    fn clusters_in_plan_order(&self) -> Vec<String> {
        let mut clusters: Vec<String> = Vec::new();
        for object in &self.objects {
            if !clusters.contains(&object.cluster) {
                clusters.push(object.cluster.clone());
            }
        }
        clusters
    }
}

async fn hub_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no hub configuration (--kubeconfig, KUBECONFIG or in-cluster)")?,
    };
    Ok(Client::try_from(config)?)
}

/// A request under a timeout; errors carry no response body.
async fn timed<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> anyhow::Result<T> {
    Ok(call(timeout, request).await?)
}

async fn diff_cluster(
    hub: &Client,
    member: &MemberCluster,
    counter: &ApiCallCounter,
    plan: &StackPlan,
    identity: &StackIdentity,
    stack_exists: bool,
) -> ClusterDiff {
    let cluster = member.name_any();
    let mut diff = ClusterDiff {
        cluster: cluster.clone(),
        error: None,
        objects: Vec::new(),
    };
    let timeout = Duration::from_secs(u64::from(member.spec.request_timeout_seconds));
    let client = match member_client_from_secret(hub, member, counter).await {
        Ok((client, _)) => client,
        Err(err) => {
            diff.error = Some(err.to_string());
            return diff;
        }
    };
    for desired in plan.objects.iter().filter(|o| o.cluster == cluster) {
        match diff_object(&client, timeout, desired, &identity.uid).await {
            Ok(object) => diff.objects.push(object),
            Err(err) => {
                diff.error = Some(format!(
                    "{} {}: {err:#}",
                    desired.kind.kind(),
                    display_name(&desired.namespace, &desired.name)
                ));
                return diff;
            }
        }
    }
    if stack_exists {
        match unplanned(&client, timeout, member, plan, &identity.uid).await {
            Ok(deleted) => diff.objects.extend(deleted),
            Err(err) => diff.error = Some(format!("listing the stack's objects: {err:#}")),
        }
    }
    diff
}

/// Diffs one planned object; `Err` when the cluster does not answer (the rest is skipped).
async fn diff_object(
    client: &Client,
    timeout: Duration,
    desired: &DesiredObject,
    uid: &str,
) -> anyhow::Result<ObjectDiff> {
    let api: Api<DynamicObject> = object_api(client, desired.kind, &desired.namespace);
    let live = timed(timeout, api.get_opt(&desired.name)).await?;
    let mut diff = ObjectDiff {
        change: Change::Unchanged,
        kind: desired.kind.kind().to_owned(),
        namespace: desired.namespace.clone(),
        name: desired.name.clone(),
        fields: Vec::new(),
        message: String::new(),
    };
    if let Some(live) = &live
        && let Ownership::Foreign(owner) = ownership(live, uid, &desired.cluster)
    {
        diff.change = Change::Conflict;
        diff.message = format!("belongs to {owner}: the operator leaves it alone");
        return Ok(diff);
    }
    if desired.kind == ObjectKind::Secret {
        // The data-path credentials: issued and rotated by the operator, planned here without
        // their data. Never compared, so no key is ever printed.
        diff.change = if live.is_some() {
            Change::Unchanged
        } else {
            Change::New
        };
        diff.message = "credentials issued by the operator: not compared".to_owned();
        return Ok(diff);
    }
    let params = PatchParams::apply(FIELD_MANAGER).dry_run().force();
    let result = match tokio::time::timeout(
        timeout,
        api.patch(&desired.name, &params, &Patch::Apply(&desired.manifest)),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => bail!("no answer within {} s", timeout.as_secs()),
    };
    match (live, result) {
        (None, Ok(_)) => {
            diff.change = Change::New;
            diff.fields = added_fields(&desired.manifest);
        }
        // The namespace is planned before it: it does not exist yet either.
        (None, Err(kube::Error::Api(status))) if status.code == 404 => {
            diff.change = Change::New;
            diff.fields = added_fields(&desired.manifest);
        }
        (Some(live), Ok(applied)) => {
            diff.fields = compare(&comparable(&live)?, &comparable(&applied)?);
            if !diff.fields.is_empty() {
                diff.change = Change::Changed;
            }
        }
        (_, Err(err)) => {
            diff.change = Change::Error;
            diff.message = format!("the dry run was refused: {}", api_error_summary(&err));
        }
    }
    Ok(diff)
}

/// The stack's objects on this member that the plan no longer holds.
async fn unplanned(
    client: &Client,
    timeout: Duration,
    member: &MemberCluster,
    plan: &StackPlan,
    uid: &str,
) -> anyhow::Result<Vec<ObjectDiff>> {
    let mut kinds: Vec<ObjectKind> = member
        .spec
        .roles
        .iter()
        .flat_map(|role| ObjectKind::for_role(*role).iter().copied())
        .collect();
    kinds.sort();
    kinds.dedup();
    let cluster = member.name_any();
    let params = ListParams::default().labels(&format!("{STACK_UID}={uid}"));
    let mut deleted = Vec::new();
    for kind in kinds.into_iter().rev() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
        let listed = match call(timeout, api.list(&params)).await {
            Ok(listed) => listed,
            // A member whose RBAC predates the tenant quota (a remote chart not upgraded), and
            // that sets none: it holds no quota of stacksmith's.
            Err(RemoteError::Failed(kube::Error::Api(status)))
                if status.code == 403
                    && kind.is_tenant_quota()
                    && member.spec.tenant_quota.is_none() =>
            {
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        for object in listed.items {
            let namespace = object.namespace().unwrap_or_default();
            let name = object.name_any();
            let planned = plan.holds(&cluster, kind, &namespace, &name);
            if !planned && object.metadata.deletion_timestamp.is_none() {
                deleted.push(ObjectDiff {
                    change: Change::Deleted,
                    kind: kind.kind().to_owned(),
                    namespace,
                    name,
                    fields: Vec::new(),
                    message: "no longer planned: the operator deletes it".to_owned(),
                });
            }
        }
    }
    Ok(deleted)
}

/// An object as JSON without what the API server maintains by itself.
fn comparable(object: &DynamicObject) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(object)?;
    if let Value::Object(map) = &mut value {
        map.remove("status");
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for key in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
            ] {
                metadata.remove(key);
            }
            // stacksmith's own bookkeeping: it moves with every planned change, which the
            // changed fields already show.
            if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
                annotations.remove(stacksmith_api::labels::PLANNED_HASH);
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
    }
    Ok(value)
}

/// Every leaf field of an object, `path → JSON value`.
fn flatten(value: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, &child_path, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, &format!("{path}[{i}]"), out);
            }
        }
        leaf => {
            out.insert(path.to_owned(), leaf.to_string());
        }
    }
}

/// The fields that differ between `live` and `applied`.
pub fn compare(live: &Value, applied: &Value) -> Vec<FieldChange> {
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    flatten(live, "", &mut before);
    flatten(applied, "", &mut after);
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|path| {
            let (old, new) = (before.get(path), after.get(path));
            (old != new).then(|| FieldChange {
                path: path.clone(),
                live: old.cloned(),
                planned: new.cloned(),
            })
        })
        .collect()
}

fn added_fields(manifest: &Value) -> Vec<FieldChange> {
    compare(&Value::Object(serde_json::Map::new()), manifest)
}

fn display_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

fn short(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn text(diffs: &[ClusterDiff]) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for diff in diffs {
        out.push_str(&format!("# cluster: {}\n", diff.cluster));
        for object in &diff.objects {
            let (sign, word) = match object.change {
                Change::New => ("+", "new"),
                Change::Changed => ("~", "changed"),
                Change::Unchanged => ("=", "unchanged"),
                Change::Deleted => ("-", "deleted"),
                Change::Conflict => ("!", "conflict"),
                Change::Error => ("x", "error"),
            };
            *counts.entry(word).or_default() += 1;
            let mut line = format!(
                "{sign} {} {}",
                object.kind,
                display_name(&object.namespace, &object.name)
            );
            if !object.message.is_empty() {
                line.push_str(": ");
                line.push_str(&object.message);
            }
            out.push_str(&format!("{line}\n"));
            for field in &object.fields {
                if let Some(live) = &field.live {
                    out.push_str(&format!("    - {}: {}\n", field.path, short(live)));
                }
                if let Some(planned) = &field.planned {
                    out.push_str(&format!("    + {}: {}\n", field.path, short(planned)));
                }
            }
        }
        if let Some(error) = &diff.error {
            out.push_str(&format!("x cluster {}: {error}\n", diff.cluster));
            *counts.entry("cluster error").or_default() += 1;
        }
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    out.push_str(&format!(
        "# summary: {}\n",
        if summary.is_empty() {
            "nothing planned".to_owned()
        } else {
            summary.join(", ")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compare_lists_changed_added_and_removed_leaves() {
        let live = json!({"spec": {"replicas": 2, "keep": "x", "gone": [1, 2]}});
        let applied = json!({"spec": {"replicas": 3, "keep": "x", "gone": [1], "new": {}}});
        let changes: Vec<String> = compare(&live, &applied)
            .into_iter()
            .map(|c| format!("{} {:?} {:?}", c.path, c.live, c.planned))
            .collect();
        assert_eq!(
            changes,
            [
                "spec.gone[1] Some(\"2\") None",
                "spec.new None Some(\"{}\")",
                "spec.replicas Some(\"2\") Some(\"3\")",
            ]
        );
        assert!(compare(&live, &live).is_empty());
    }
}

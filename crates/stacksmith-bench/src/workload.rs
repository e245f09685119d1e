//! What the bench writes: light `CustomerStack`s, the shared `Grafana` they select, and the
//! floor (the same writes issued by a tight client with no logic).

use std::collections::BTreeMap;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_core::plan::{DesiredObject, MemberInfo, StackIdentity, plan_stack};

/// Field manager of the bench's own writes.
pub const BENCH_MANAGER: &str = "stacksmith-bench";
/// How many stacks the bench creates at once.
pub const CREATE_CONCURRENCY: usize = 32;
/// How many stacks the floor writes at once.
pub const FLOOR_CONCURRENCY: usize = 64;

/// A light stack: one scrape target, one rule group, one dashboard; the customer is the name.
pub fn stack_manifest(name: &str, prometheus_cluster: &str) -> Value {
    json!({
        "apiVersion": "stacksmith.io/v1alpha1",
        "kind": "CustomerStack",
        "metadata": {"name": name},
        "spec": {
            "customer": name,
            "metrics": {
                "cluster": prometheus_cluster,
                "replicas": 2,
                "scrape": [{"name": "api", "selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics", "interval": "30s"}]}],
                "alertingRules": [{"name": "core", "rules": [{"alert": "Down", "expr": "up == 0", "for": "5m"}]}],
            },
            "dashboards": {
                "cluster": "grafana-1",
                "instanceSelector": {"matchLabels": {"dashboards": "shared"}},
                "dashboards": [{"name": "overview", "json": "{\"title\": \"overview\", \"panels\": []}"}],
            },
            "deletionPolicy": "Delete",
        },
    })
}

/// The stacks of one phase: `<prefix>-<i>` for i in 0..n.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Server-side applies the stacks `names` into `namespace` on the hub, `CREATE_CONCURRENCY` at
/// a time, as GitOps would.
pub async fn create_stacks(
    hub: &Client,
    namespace: &str,
    names: &[String],
    prometheus_cluster: &str,
) -> anyhow::Result<()> {
    stacksmith_testbed::ensure_namespace(hub, namespace).await?;
    let api: Api<CustomerStack> = Api::namespaced(hub.clone(), namespace);
    futures::stream::iter(names.iter().map(|name| {
        let api = api.clone();
        let manifest = stack_manifest(name, prometheus_cluster);
        async move {
            api.patch(
                name,
                &PatchParams::apply(BENCH_MANAGER).force(),
                &Patch::Apply(&manifest),
            )
            .await
            .with_context(|| format!("creating stack {namespace}/{name}"))
        }
    }))
    .buffer_unordered(CREATE_CONCURRENCY)
    .try_for_each(|_| async { Ok(()) })
    .await
}

/// The registered members, as the planner needs them.
pub async fn members(hub: &Client) -> anyhow::Result<Vec<MemberInfo>> {
    let api: Api<MemberCluster> = Api::all(hub.clone());
    Ok(api
        .list(&Default::default())
        .await?
        .into_iter()
        .map(|m| MemberInfo {
            name: kube::ResourceExt::name_any(&m),
            roles: m.spec.roles.clone(),
            prometheus_url_template: m.spec.prometheus_url_template.clone(),
            prometheus_exposure: m.spec.prometheus_exposure.clone(),
            alertmanagers: m.spec.alertmanagers.clone(),
            grafana_ingress_host_template: m.spec.grafana_ingress_host_template.clone(),
            tenant_quota: m.spec.tenant_quota.clone(),
        })
        .collect())
}

/// The objects the planner gives a stack named `name` (identity invented: it is never created
/// on the hub).
pub fn plan_objects(
    name: &str,
    prometheus_cluster: &str,
    members: &[MemberInfo],
) -> anyhow::Result<Vec<DesiredObject>> {
    plan_manifest(name, stack_manifest(name, prometheus_cluster), members)
}

/// The objects the planner gives the stack `name` with `spec.metrics.replicas` set to
/// `replicas` (as a spec change of the bench makes it).
pub fn plan_objects_with_replicas(
    name: &str,
    prometheus_cluster: &str,
    members: &[MemberInfo],
    replicas: i64,
) -> anyhow::Result<Vec<DesiredObject>> {
    let mut manifest = stack_manifest(name, prometheus_cluster);
    manifest["spec"]["metrics"]["replicas"] = json!(replicas);
    plan_manifest(name, manifest, members)
}

/// How many objects of `after` are new or planned otherwise than in `before`: the writes a
/// change from one plan to the other needs.
pub fn changed_objects(before: &[DesiredObject], after: &[DesiredObject]) -> usize {
    after
        .iter()
        .filter(|object| {
            !before.iter().any(|old| {
                old.cluster == object.cluster
                    && old.kind == object.kind
                    && old.namespace == object.namespace
                    && old.name == object.name
                    && old.manifest == object.manifest
            })
        })
        .count()
}

fn plan_manifest(
    name: &str,
    manifest: Value,
    members: &[MemberInfo],
) -> anyhow::Result<Vec<DesiredObject>> {
    let spec: CustomerStack = serde_json::from_value(manifest)?;
    let identity = StackIdentity {
        namespace: "bench-floor".into(),
        name: name.into(),
        uid: format!("00000000-0000-0000-0000-{:012}", name.len()),
    };
    plan_stack(&spec.spec, &identity, members)
        .map_err(|problems| anyhow::anyhow!("the planner refused {name}: {problems:?}"))
        .map(|plan| plan.objects)
}

/// How many writes the floor issues per cluster (`hub` included).
pub type WriteBudget = BTreeMap<String, u64>;

/// The floor: for `names`, the planned objects applied by a tight client (admin identity, one
/// server-side apply per object in creation order, `FLOOR_CONCURRENCY` stacks at a time), then
/// extra applies up to each member's budget; on the hub, the stacks are created and then written
/// (finalizer, status) up to the hub's budget. No operator runs meanwhile. Returns the number of
/// writes issued.
pub async fn floor(
    clients: &BTreeMap<String, Client>,
    names: &[String],
    prometheus_cluster: &str,
    members: &[MemberInfo],
    budget: &WriteBudget,
    status_template: &Value,
) -> anyhow::Result<u64> {
    let hub = clients.get("hub").context("no hub client")?.clone();
    let mut plans = Vec::new();
    for name in names {
        plans.push((
            name.clone(),
            plan_objects(name, prometheus_cluster, members)?,
        ));
    }
    let (extra, hub_per_stack) = extra_writes(&plans, budget, names.len());
    stacksmith_testbed::ensure_namespace(&hub, "bench-floor").await?;
    let stacks: Api<CustomerStack> = Api::namespaced(hub.clone(), "bench-floor");
    let writes = futures::stream::iter(plans.into_iter().map(|(name, objects)| {
        let stack = FloorStack {
            clients,
            stacks: &stacks,
            name,
            objects,
            prometheus_cluster,
        };
        let extra = &extra;
        async move {
            let mut writes = stack.create().await?;
            writes += stack.apply_planned().await?;
            writes += stack.apply_extra(extra).await?;
            writes += stack.write_hub(hub_per_stack, status_template).await?;
            anyhow::Ok(writes)
        }
    }))
    .buffer_unordered(FLOOR_CONCURRENCY)
    .try_fold(0u64, |sum, w| async move { Ok(sum + w) })
    .await?;
    Ok(writes)
}

/// The writes beyond one per planned object that fill the budget, spread evenly over the
/// `stacks`: per member cluster and stack, and per stack on the hub (beyond its creation).
fn extra_writes(
    plans: &[(String, Vec<DesiredObject>)],
    budget: &WriteBudget,
    stacks: usize,
) -> (BTreeMap<String, u64>, u64) {
    let planned_on = |cluster: &str| -> u64 {
        plans
            .iter()
            .map(|(_, objects)| objects.iter().filter(|o| o.cluster == cluster).count() as u64)
            .sum()
    };
    let n = stacks.max(1) as u64;
    let extra: BTreeMap<String, u64> = budget
        .iter()
        .filter(|(c, _)| *c != "hub")
        .map(|(c, b)| (c.clone(), b.saturating_sub(planned_on(c)).div_ceil(n)))
        .collect();
    let hub_per_stack = budget
        .get("hub")
        .copied()
        .unwrap_or(0)
        .saturating_sub(n)
        .div_ceil(n);
    (extra, hub_per_stack)
}

/// One stack of the floor: what its writes need.
struct FloorStack<'a> {
    clients: &'a BTreeMap<String, Client>,
    stacks: &'a Api<CustomerStack>,
    name: String,
    objects: Vec<DesiredObject>,
    prometheus_cluster: &'a str,
}

impl FloorStack<'_> {
    /// The hub: the stack is created, as the bench creates the operator's. One write.
    async fn create(&self) -> anyhow::Result<u64> {
        let manifest = stack_manifest(&self.name, self.prometheus_cluster);
        self.stacks
            .patch(&self.name, &apply_params(), &Patch::Apply(&manifest))
            .await?;
        Ok(1)
    }

    /// One server-side apply per planned object, in creation order; returns the writes.
    async fn apply_planned(&self) -> anyhow::Result<u64> {
        let mut writes = 0u64;
        let params = apply_params();
        for object in &self.objects {
            let client = self.clients.get(&object.cluster).context("no client")?;
            stacksmith_controller::object_api(client, object.kind, &object.namespace)
                .patch(&object.name, &params, &Patch::Apply(&object.manifest))
                .await
                .with_context(|| {
                    format!("floor apply of {} {}", object.kind.kind(), object.name)
                })?;
            writes += 1;
        }
        Ok(writes)
    }

    /// `extra` more applies per member cluster, cycling through the stack's children there (an
    /// annotation changes each time); returns the writes.
    async fn apply_extra(&self, extra: &BTreeMap<String, u64>) -> anyhow::Result<u64> {
        let mut writes = 0u64;
        let params = apply_params();
        for (cluster, count) in extra {
            let client = self.clients.get(cluster).context("no client")?;
            let children: Vec<&DesiredObject> = self
                .objects
                .iter()
                .filter(|o| &o.cluster == cluster && o.kind.child().is_some())
                .collect();
            for i in 0..*count as usize {
                let Some(object) = children.get(i % children.len().max(1)) else {
                    break;
                };
                let mut manifest = object.manifest.clone();
                manifest["metadata"]["annotations"] =
                    json!({"bench.stacksmith.io/extra": i.to_string()});
                stacksmith_controller::object_api(client, object.kind, &object.namespace)
                    .patch(&object.name, &params, &Patch::Apply(&manifest))
                    .await?;
                writes += 1;
            }
        }
        Ok(writes)
    }

    /// The operator's hub writes of a stack: the finalizer, then status patches (from
    /// `status_template`), `count` in all; returns the writes.
    async fn write_hub(&self, count: u64, status_template: &Value) -> anyhow::Result<u64> {
        let mut writes = 0u64;
        for i in 0..count {
            let patch = if i == 0 {
                Patch::Merge(json!({"metadata": {"finalizers": ["stacksmith.io/cleanup"]}}))
            } else {
                let mut status = if status_template.is_object() {
                    status_template.clone()
                } else {
                    json!({})
                };
                status["childrenReady"] = json!(format!("{i}/6"));
                Patch::Merge(json!({"status": status}))
            };
            if i == 0 {
                self.stacks
                    .patch(&self.name, &PatchParams::default(), &patch)
                    .await?;
            } else {
                self.stacks
                    .patch_status(&self.name, &PatchParams::default(), &patch)
                    .await?;
            }
            writes += 1;
        }
        Ok(writes)
    }
}

/// The floor's server-side apply: the bench's field manager, forced.
fn apply_params() -> PatchParams {
    PatchParams::apply(BENCH_MANAGER).force()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stacksmith_api::ClusterRole;

    fn member(name: &str, role: ClusterRole) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            roles: vec![role],
            prometheus_url_template: (role == ClusterRole::Prometheus)
                .then(|| "https://{name}.{namespace}.example:9090".to_owned()),
            prometheus_exposure: None,
            alertmanagers: Vec::new(),
            grafana_ingress_host_template: None,
            tenant_quota: None,
        }
    }

    #[test]
    fn a_replicas_change_plans_one_object_otherwise() {
        let members = [
            member("prometheus-1", ClusterRole::Prometheus),
            member("grafana-1", ClusterRole::Grafana),
        ];
        let two = plan_objects("ha-0", "prometheus-1", &members).unwrap();
        let also_two = plan_objects_with_replicas("ha-0", "prometheus-1", &members, 2).unwrap();
        let three = plan_objects_with_replicas("ha-0", "prometheus-1", &members, 3).unwrap();
        assert_eq!(changed_objects(&two, &also_two), 0);
        assert_eq!(changed_objects(&two, &three), 1);
        assert_eq!(changed_objects(&[], &three), three.len());
        let changed: Vec<&DesiredObject> = three
            .iter()
            .filter(|o| !two.iter().any(|t| t.manifest == o.manifest))
            .collect();
        assert_eq!(changed[0].cluster, "prometheus-1");
        assert_eq!(changed[0].manifest["spec"]["replicas"], 3);
    }
}

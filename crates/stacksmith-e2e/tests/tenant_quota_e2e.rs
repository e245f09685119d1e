//! Tenant quotas for real: a `MemberCluster`'s `spec.tenantQuota` becomes a `ResourceQuota` and a
//! `LimitRange` in each tenant namespace stacksmith creates on it, before the `Prometheus`; the
//! pods the real prometheus-operator's StatefulSet creates are admitted by the API server's own
//! LimitRanger and ResourceQuota admission (on by default in kube-apiserver; the test bed's
//! controller-manager runs the resourcequota controller that computes the quota's usage).
//! Resources above the cluster's bound refuse the stack before anything is written; a quota of
//! that name someone else put there is never written over; removing `tenantQuota` deletes both.
//!
//! Every test changes the one `MemberCluster` `prometheus-1`: the suite runs serially.

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_api::MemberCluster;
use stacksmith_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, STACK_UID};
use stacksmith_controller::api_calls::{delta, total};
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

/// The Prometheus cluster (the real prometheus-operator).
const CLUSTER: &str = "prometheus-1";
/// The name of the quota objects.
const QUOTA: &str = "stacksmith-tenant";

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stock_prometheus_operator,
            setup: Some(start_operator),
            serial: true,
        },
        "tenant-quota-e2e",
        vec![
            test(
                "the_quota_and_container_defaults_reach_the_real_prometheus_pods",
                |tb| Box::pin(boxed(defaults_reach_the_pods(tb))),
            ),
            test(
                "resources_above_the_clusters_max_are_refused_before_anything_is_written",
                |tb| Box::pin(boxed(above_the_max(tb))),
            ),
            test("a_pod_over_the_quota_shows_in_the_stack_status", |tb| {
                Box::pin(boxed(over_the_quota(tb)))
            }),
            test(
                "a_quota_someone_else_put_there_is_never_written_over",
                |tb| Box::pin(boxed(foreign_quota(tb))),
            ),
            test("removing_the_tenant_quota_deletes_both_objects", |tb| {
                Box::pin(boxed(removed(tb)))
            }),
            test("the_hub_refuses_a_quota_kubernetes_would_not_take", |tb| {
                Box::pin(boxed(refused_by_the_hub(tb)))
            }),
        ],
    )
}

/// The quota of the issue: 4 pods, 2Gi of memory requests, and container defaults (plus a
/// `max`, for the refused stack). Two quantities are not in the canonical form the API server
/// stores (`2048Mi` is stored as `2Gi`, `0.25Gi` as `256Mi`): the operator must still find the
/// objects as planned.
fn the_quota() -> Value {
    json!({
        "hard": {"pods": "4", "requests.memory": "2048Mi"},
        "containerDefaults": {
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"memory": "0.25Gi"},
            "max": {"memory": "1Gi"},
        },
    })
}

/// Sets (or, with `null`, removes) `spec.tenantQuota` of `prometheus-1` with a merge patch, and
/// waits until the operator has seen that generation (its status says so).
async fn set_tenant_quota(hub: &Client, quota: Value) -> anyhow::Result<()> {
    let members: Api<MemberCluster> = Api::all(hub.clone());
    let patched = members
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tenantQuota": quota}})),
        )
        .await?;
    let generation = patched.metadata.generation;
    eventually(
        "the operator to observe the MemberCluster's new generation",
        WAIT,
        || {
            let members = members.clone();
            async move {
                let member = members.get(CLUSTER).await?;
                let observed = member.status.as_ref().and_then(|s| s.observed_generation);
                Ok(if observed >= generation {
                    Ok(())
                } else {
                    Err(format!("observed {observed:?}, generation {generation:?}"))
                })
            }
        },
    )
    .await
}

/// Whether an object carries stacksmith's labels for the stack with uid `uid`.
fn ours(labels: &std::collections::BTreeMap<String, String>, uid: &str) -> bool {
    labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(STACK_UID).map(String::as_str) == Some(uid)
}

fn inventoried_kinds(stack: &stacksmith_api::CustomerStack) -> Vec<String> {
    stack
        .status
        .iter()
        .flat_map(|s| &s.inventory)
        .map(|e| format!("{} {}/{}", e.kind, e.namespace, e.name))
        .collect()
}

async fn defaults_reach_the_pods(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    set_tenant_quota(&hub, the_quota()).await?;
    apply_stack(
        &hub,
        "q-defaults",
        &stack_manifest("s", "qdefaults", json!({})),
    )
    .await?;
    let stack = wait_ready(&hub, "q-defaults", "s").await?;
    let uid = stack.metadata.uid.clone().context("uid")?;
    let ns = "customer-qdefaults";

    let quota = Api::<ResourceQuota>::namespaced(member.clone(), ns)
        .get(QUOTA)
        .await?;
    ensure!(ours(quota.labels(), &uid), "{:?}", quota.metadata.labels);
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    ensure!(
        hard.get("pods").map(|q| q.0.as_str()) == Some("4")
            && hard.get("requests.memory").map(|q| q.0.as_str()) == Some("2Gi"),
        "{hard:?}"
    );
    let limits = Api::<LimitRange>::namespaced(member.clone(), ns)
        .get(QUOTA)
        .await?;
    ensure!(ours(limits.labels(), &uid), "{:?}", limits.metadata.labels);
    let inventory = inventoried_kinds(&stack);
    for expected in [
        format!("ResourceQuota {ns}/{QUOTA}"),
        format!("LimitRange {ns}/{QUOTA}"),
    ] {
        ensure!(inventory.contains(&expected), "{expected} in {inventory:?}");
    }

    // The pods of the real StatefulSet: the LimitRanger admission filled in what the Prometheus
    // container does not set (and says so in its annotation).
    let pods: Api<Pod> = Api::namespaced(member.clone(), ns);
    let listed = eventually("the Prometheus pods", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=prometheus"))
                .await?;
            Ok(if list.items.len() == 2 {
                Ok(list.items)
            } else {
                Err(format!("{} pods", list.items.len()))
            })
        }
    })
    .await?;
    for pod in &listed {
        let spec = pod.spec.as_ref().context("pod spec")?;
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "prometheus")
            .context("the prometheus container")?;
        let resources = container.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        let text = |map: &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
                    key: &str| { map.get(key).map(|q| q.0.clone()) };
        ensure!(
            text(&requests, "cpu").as_deref() == Some("100m")
                && text(&requests, "memory").as_deref() == Some("128Mi")
                && text(&limits, "memory").as_deref() == Some("256Mi"),
            "pod {}: the prometheus container's resources: requests {requests:?}, limits \
             {limits:?}",
            pod.name_any()
        );
        let annotation = pod
            .annotations()
            .get("kubernetes.io/limit-ranger")
            .cloned()
            .unwrap_or_default();
        ensure!(
            annotation.contains("LimitRanger plugin set")
                && annotation.contains("container prometheus"),
            "pod {}: limit-ranger annotation {annotation:?}",
            pod.name_any()
        );
        // Every other container too has a memory limit now (the LimitRange's `max` wants one).
        for other in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let has_limit = other
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .is_some_and(|l| l.contains_key("memory"));
            ensure!(
                has_limit,
                "pod {} container {}: no memory limit",
                pod.name_any(),
                other.name
            );
        }
    }

    // Stored in canonical form, the quota is still as planned: once the operator no longer
    // trusts its own recent writes (`CACHE_CATCH_UP`, 5 s), its passes (one of them for a
    // change on the Grafana side only) write nothing more to prometheus-1.
    let calls = OPERATOR_CALLS.get().context("the operator's counter")?;
    let before = calls.snapshot();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let retitled = json!({"dashboards": {"folder": {"title": "Quota defaults"}}});
    apply_stack(
        &hub,
        "q-defaults",
        &stack_manifest("s", "qdefaults", retitled),
    )
    .await?;
    wait_ready(&hub, "q-defaults", "s").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = delta(&before, &calls.snapshot());
    let writes = total(&during, |k| k.cluster == CLUSTER && k.verb.is_write());
    ensure!(writes == 0, "{writes} writes to {CLUSTER}: {during:?}");
    // Nor was it ever taken for drift (compared as text, every pass would restore it, and soon
    // call it contested).
    let events = stack_events(&hub, "q-defaults", "s").await?;
    ensure!(
        !events
            .iter()
            .any(|(reason, _)| reason == "DriftCorrected" || reason == "FieldContested"),
        "{events:?}"
    );

    // The quota is live: the resourcequota controller counts the pods against it.
    let quotas: Api<ResourceQuota> = Api::namespaced(member, ns);
    eventually("the quota's usage", WAIT, || {
        let quotas = quotas.clone();
        async move {
            let quota = quotas.get(QUOTA).await?;
            let used = quota.status.and_then(|s| s.used).unwrap_or_default();
            Ok(match used.get("pods") {
                Some(pods) if pods.0 == "2" => Ok(()),
                _ => Err(format!("used {used:?}")),
            })
        }
    })
    .await
}

async fn above_the_max(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    set_tenant_quota(&hub, the_quota()).await?;
    let overrides = json!({"metrics": {"resources": {"limits": {"memory": "2Gi"}}}});
    apply_stack(&hub, "q-max", &stack_manifest("s", "qmax", overrides)).await?;
    let stack = wait_not_ready(&hub, "q-max", "s", "InvalidSpec").await?;
    let status = stack.status.as_ref().context("status")?;
    let cause = status.root_cause.as_ref().context("root cause")?;
    ensure!(
        cause.field == "spec.metrics.resources.limits.memory",
        "{cause:?}"
    );
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready
            .message
            .contains("spec.metrics.resources.limits.memory")
            && ready.message.contains("MemberCluster \"prometheus-1\"")
            && ready
                .message
                .contains("spec.tenantQuota.containerDefaults.max.memory: 1Gi"),
        "{}",
        ready.message
    );
    ensure!(status.inventory.is_empty(), "{:?}", status.inventory);
    for cluster in [CLUSTER, "grafana-1"] {
        let namespaces: Api<Namespace> = Api::all(tb.cluster(cluster)?.client().clone());
        ensure!(
            namespaces.get_opt("customer-qmax").await?.is_none(),
            "nothing is written for a refused stack, yet {cluster} has its namespace"
        );
    }
    Ok(())
}

async fn over_the_quota(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    let mut quota = the_quota();
    quota["hard"]["pods"] = json!("1");
    set_tenant_quota(&hub, quota).await?;
    // Two replicas under a quota of one pod: the second pod is refused.
    apply_stack(&hub, "q-over", &stack_manifest("s", "qover", json!({}))).await?;
    let stack = wait_stack(
        &hub,
        "q-over",
        "s",
        "the Prometheus child Degraded (SomePodsNotReady), the stack ChildDegraded",
        |s| {
            let degraded = s.status.as_ref().is_some_and(|st| {
                st.children.iter().any(|c| {
                    c.kind == "Prometheus"
                        && c.verdict == stacksmith_api::Verdict::Degraded
                        && c.reason == "SomePodsNotReady"
                })
            });
            degraded
                && condition(s, "Ready")
                    .is_some_and(|c| c.status == "False" && c.reason == "ChildDegraded")
        },
    )
    .await?;
    let ns = "customer-qover";
    let pods: Api<Pod> = Api::namespaced(member.clone(), ns);
    let running = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=prometheus"))
        .await?;
    ensure!(running.items.len() == 1, "{} pods", running.items.len());
    let status = stack.status.as_ref().context("status")?;
    let prometheus = status
        .children
        .iter()
        .find(|c| c.kind == "Prometheus")
        .context("Prometheus child")?;
    // What a tenant sees (docs/operations.md quotes it): the pods that exist, not the quota.
    ensure!(
        prometheus.message
            == "Prometheus customer-qover/qover: 1 of 1 replicas available (SomePodsNotReady)",
        "{}",
        prometheus.message
    );
    // The refusal is in the StatefulSet's Events.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(member, ns);
    let refusal = eventually("the StatefulSet's FailedCreate Event", WAIT, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await?;
            let found = list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("FailedCreate")
                    && e.involved_object.kind.as_deref() == Some("StatefulSet")
            });
            Ok(found
                .and_then(|e| e.message)
                .ok_or_else(|| "none yet".to_owned()))
        }
    })
    .await?;
    ensure!(
        refusal.contains("exceeded quota: stacksmith-tenant"),
        "{refusal}"
    );
    eprintln!("the StatefulSet's Event: {refusal}");
    Ok(())
}

async fn foreign_quota(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    set_tenant_quota(&hub, Value::Null).await?;
    apply_stack(
        &hub,
        "q-foreign",
        &stack_manifest("s", "qforeign", json!({})),
    )
    .await?;
    wait_ready(&hub, "q-foreign", "s").await?;
    let ns = "customer-qforeign";
    // Someone else's quota of the very name, in the tenant namespace.
    let quotas: Api<ResourceQuota> = Api::namespaced(member.clone(), ns);
    let foreign: ResourceQuota = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": QUOTA, "labels": {"team": "platform"}},
        "spec": {"hard": {"pods": "10"}},
    }))?;
    quotas.create(&PostParams::default(), &foreign).await?;
    set_tenant_quota(&hub, the_quota()).await?;
    let stack = wait_not_ready(&hub, "q-foreign", "s", "Conflict").await?;
    let ready = condition(&stack, "Ready").context("Ready")?;
    ensure!(
        ready.message.contains("ResourceQuota"),
        "the conflict names the quota: {}",
        ready.message
    );
    // Left as it was; the LimitRange (no one else's) was written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = quotas.get(QUOTA).await?;
    ensure!(
        !kept.labels().contains_key(MANAGED_BY)
            && kept
                .spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .and_then(|h| h.get("pods"))
                .map(|q| q.0.as_str())
                == Some("10")
            && kept
                .managed_fields()
                .iter()
                .all(|f| f.manager.as_deref() != Some("stacksmith")),
        "the foreign quota was written over: {:?}",
        kept.metadata
    );
    let uid = stack.metadata.uid.clone().context("uid")?;
    let limits = Api::<LimitRange>::namespaced(member.clone(), ns)
        .get(QUOTA)
        .await?;
    ensure!(ours(limits.labels(), &uid), "{:?}", limits.metadata.labels);
    // Once it is gone, the stack's own quota takes its place at the stack's next pass. The
    // quota caches hold only stacksmith's objects, so the deletion of someone else's wakes no
    // stack: the pass comes with the periodic resync (5 min), or at once with any change of the
    // stack, as here.
    quotas.delete(QUOTA, &DeleteParams::default()).await?;
    stacks(&hub, "q-foreign")
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"e2e/nudge": "1"}}})),
        )
        .await?;
    wait_ready(&hub, "q-foreign", "s").await?;
    let ours_now = quotas.get(QUOTA).await?;
    ensure!(
        ours(ours_now.labels(), &uid),
        "{:?}",
        ours_now.metadata.labels
    );
    Ok(())
}

async fn removed(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    set_tenant_quota(&hub, the_quota()).await?;
    apply_stack(&hub, "q-prune", &stack_manifest("s", "qprune", json!({}))).await?;
    wait_ready(&hub, "q-prune", "s").await?;
    let ns = "customer-qprune";
    let quotas: Api<ResourceQuota> = Api::namespaced(member.clone(), ns);
    let limits: Api<LimitRange> = Api::namespaced(member, ns);
    ensure!(quotas.get_opt(QUOTA).await?.is_some(), "no ResourceQuota");
    ensure!(limits.get_opt(QUOTA).await?.is_some(), "no LimitRange");

    // A smaller quota: the entries it drops go from the live objects too (the objects were
    // created bare and applied, so the apply owns every planned field).
    set_tenant_quota(
        &hub,
        json!({"hard": {"requests.memory": null}, "containerDefaults": {"max": null}}),
    )
    .await?;
    eventually(
        "the dropped entries gone from the live objects",
        WAIT,
        || {
            let (quotas, limits) = (quotas.clone(), limits.clone());
            async move {
                let hard = quotas
                    .get(QUOTA)
                    .await?
                    .spec
                    .and_then(|s| s.hard)
                    .unwrap_or_default();
                let item = limits
                    .get(QUOTA)
                    .await?
                    .spec
                    .and_then(|s| s.limits.into_iter().next())
                    .context("a LimitRange item")?;
                let hard_keys: Vec<&String> = hard.keys().collect();
                Ok(
                    if hard_keys == ["pods"] && item.max.as_ref().is_none_or(|m| m.is_empty()) {
                        Ok(())
                    } else {
                        Err(format!("hard {hard_keys:?}, max {:?}", item.max))
                    },
                )
            }
        },
    )
    .await?;

    set_tenant_quota(&hub, Value::Null).await?;
    eventually("both quota objects deleted", WAIT, || {
        let (quotas, limits) = (quotas.clone(), limits.clone());
        async move {
            let left = (
                quotas.get_opt(QUOTA).await?.is_some(),
                limits.get_opt(QUOTA).await?.is_some(),
            );
            Ok(if left == (false, false) {
                Ok(())
            } else {
                Err(format!("ResourceQuota, LimitRange left: {left:?}"))
            })
        }
    })
    .await?;
    let stack = wait_stack(
        &hub,
        "q-prune",
        "s",
        "Ready, quota out of the inventory",
        |s| {
            condition(s, "Ready").is_some_and(|c| c.status == "True")
                && !inventoried_kinds(s)
                    .iter()
                    .any(|e| e.starts_with("ResourceQuota") || e.starts_with("LimitRange"))
        },
    )
    .await?;
    ensure!(
        inventoried_kinds(&stack)
            .iter()
            .any(|e| e.starts_with("Prometheus ")),
        "{:?}",
        inventoried_kinds(&stack)
    );
    Ok(())
}

/// The CEL rules of `tenantQuota` on a real API server (which accepted their cost when the CRD
/// was installed): a key that is no quota name, a container bound that is not cpu or memory.
async fn refused_by_the_hub(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let members: Api<MemberCluster> = Api::all(hub);
    for (quota, field, message) in [
        (
            json!({"hard": {"pods": "4", "requests.gpu": "1"}}),
            "spec.tenantQuota.hard",
            stacksmith_api::validation::cel::QUOTA_RESOURCE_NAMES_MESSAGE,
        ),
        (
            json!({"containerDefaults": {"max": {"ephemeral-storage": "1Gi"}}}),
            "spec.tenantQuota.containerDefaults.max",
            stacksmith_api::validation::cel::ONLY_CPU_AND_MEMORY_MESSAGE,
        ),
    ] {
        let refused = members
            .patch(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"tenantQuota": quota}})),
            )
            .await;
        let Err(kube::Error::Api(status)) = refused else {
            anyhow::bail!("{quota} was not refused: {refused:?}");
        };
        ensure!(
            status.code == 422
                && status.message.contains(field)
                && status.message.contains(message),
            "{quota}: {}",
            status.message
        );
        eprintln!("refused: {}", status.message);
    }
    Ok(())
}

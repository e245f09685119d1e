//! Never delete what is not ours, the member-cluster part, on the real test bed (current
//! kube-apiserver, the real prometheus-operator): a second `MemberCluster` for a cluster already
//! registered is refused (its status says `DuplicateCluster` naming the first, nothing goes
//! through it, and a restarted operator decides the same), and a `MemberCluster` in use is held
//! by its finalizer until the stacks using it are gone.
//!
//! Each test starts a test bed and an operator of its own (one deletes `prometheus-1`), one test
//! at a time: two test beds at once are too much for a small machine.

use stacksmith_e2e as support;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use stacksmith_api::MemberCluster;
use stacksmith_api::labels::MEMBER_IN_USE_FINALIZER;
use stacksmith_controller::RunningOperator;
use stacksmith_controller::api_calls::{CallKey, Verb, delta, total};
use stacksmith_testbed::{TestBed, TestBedOptions};
use support::*;

/// How long these tests wait for the operator to get somewhere: generous, for loaded machines.
const PATIENCE: Duration = Duration::from_secs(120);
/// How long the first registration's objects are watched after a second registration of the
/// same cluster appears.
const WATCH_FOR_HARM: Duration = Duration::from_secs(30);
/// The second registration of `prometheus-1`. It sorts after `prometheus-1`, so it is the newer
/// one even if both were created in the same second.
const SECOND: &str = "prometheus-1-again";

/// One test bed at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `body` on a fresh test bed with the operator running (the shared Grafana created), then
/// stops the operator and shuts the test bed down.
fn on_testbed<F>(name: &str, body: impl FnOnce(TestBedRun) -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<TestBedRun>>,
{
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tb = Arc::new(
            TestBed::start(TestBedOptions::new(format!(
                "{name}-{}",
                std::process::id()
            )))
            .await?,
        );
        let outcome = async {
            let fixture = start_operator(&tb).await.map_err(|e| anyhow!("{e}"))?;
            let operator = fixture
                .downcast::<RunningOperator>()
                .map_err(|_| anyhow!("the suite's fixture is not the operator"))?;
            let run = body(TestBedRun {
                tb: Arc::clone(&tb),
                operator: *operator,
            })
            .await?;
            run.operator.stop().await;
            anyhow::Ok(())
        }
        .await;
        // On a failure the body's future (and its handle on the test bed) is dropped too.
        let shutdown = match Arc::try_unwrap(tb) {
            Ok(tb) => tb.shutdown().await.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow!("the test bed is still in use: not shut down")),
        };
        outcome?;
        shutdown
    })
}

/// A test bed and the operator running against it (handed back, so a test can restart it).
struct TestBedRun {
    tb: Arc<TestBed>,
    operator: RunningOperator,
}

impl TestBedRun {
    fn hub(&self) -> anyhow::Result<Client> {
        Ok(self.tb.hub()?.client().clone())
    }

    fn prometheus(&self) -> anyhow::Result<Client> {
        Ok(self.tb.cluster("prometheus-1")?.client().clone())
    }

    /// Stops the operator and starts another against the same hub.
    async fn restart_operator(self) -> anyhow::Result<Self> {
        let TestBedRun { tb, operator } = self;
        operator.stop().await;
        let operator = RunningOperator::spawn(tb.hub()?.admin_config().await?);
        Ok(TestBedRun { tb, operator })
    }
}

fn members(hub: &Client) -> Api<MemberCluster> {
    Api::all(hub.clone())
}

fn ready(member: &MemberCluster) -> Option<&Condition> {
    member
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Polls `check` every 200 ms until it returns something, at most [`PATIENCE`].
async fn eventually<T, F>(what: &str, mut check: impl FnMut() -> F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let last = match check().await? {
            Ok(found) => return Ok(found),
            Err(last) => last,
        };
        if tokio::time::Instant::now() > deadline {
            bail!(
                "timed out after {} s: {what}; last: {last}",
                PATIENCE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `MemberCluster` `name`'s Ready condition satisfies `check`; returns the member.
async fn wait_member(
    hub: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&Condition) -> bool,
) -> anyhow::Result<MemberCluster> {
    eventually(&format!("MemberCluster {name}: {what}"), || async {
        let member = members(hub).get_opt(name).await?;
        Ok(match member {
            Some(member) if ready(&member).is_some_and(&check) => Ok(member),
            other => Err(format!(
                "{:?}",
                other.as_ref().and_then(|m| m.status.as_ref())
            )),
        })
    })
    .await
}

/// Registers `name` with the very spec of `prometheus-1`: the same kubeconfig Secret.
async fn register_again(hub: &Client, name: &str) -> anyhow::Result<()> {
    let first = members(hub).get("prometheus-1").await?;
    let second: MemberCluster = serde_json::from_value(json!({
        "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": first.spec,
    }))?;
    members(hub).create(&PostParams::default(), &second).await?;
    Ok(())
}

/// The uid of `prometheus-1`'s `kube-system` namespace: its identity.
async fn identity_of(cluster: &Client) -> anyhow::Result<String> {
    Api::<Namespace>::all(cluster.clone())
        .get("kube-system")
        .await?
        .uid()
        .context("kube-system has no uid")
}

/// Requests of `verb` (any outcome) made through `cluster` in `calls`.
fn count(calls: &std::collections::BTreeMap<CallKey, u64>, cluster: &str, verb: Verb) -> u64 {
    total(calls, |k| k.cluster == cluster && k.verb == verb)
}

/// A stack Ready on `prometheus-1`; a second `MemberCluster` with the same kubeconfig Secret.
/// For 30 s, checked every second, the tenant namespace keeps its uid; no DELETE goes to either
/// registration, and nothing at all but the probe to the second, whose status says
/// `DuplicateCluster` naming the first. A restarted operator refuses it again.
#[test]
fn a_second_registration_of_a_cluster_is_refused_and_harms_nothing() -> anyhow::Result<()> {
    on_testbed("member-identity-duplicate", |run| async move {
        let hub = run.hub()?;
        let prom = run.prometheus()?;
        apply_stack(&hub, "t-dup", &stack_manifest("s", "dup", json!({}))).await?;
        wait_ready(&hub, "t-dup", "s").await?;
        let namespaces: Api<Namespace> = Api::all(prom.clone());
        let tenant_uid = namespaces
            .get("customer-dup")
            .await?
            .uid()
            .context("tenant namespace uid")?;
        wait_member(&hub, "prometheus-1", "Ready", |c| c.status == "True").await?;

        let counter = run.operator.counter();
        let before = counter.snapshot();
        register_again(&hub, SECOND).await?;
        let started = tokio::time::Instant::now();
        let mut refused: Option<MemberCluster> = None;
        while started.elapsed() < WATCH_FOR_HARM || refused.is_none() {
            ensure!(
                started.elapsed() < PATIENCE,
                "{SECOND} never said DuplicateCluster: {:?}",
                members(&hub).get_opt(SECOND).await?.and_then(|m| m.status)
            );
            let tenant = namespaces.get_opt("customer-dup").await?;
            ensure!(
                tenant.as_ref().and_then(|ns| ns.uid()).as_deref() == Some(tenant_uid.as_str())
                    && tenant.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()),
                "the tenant namespace was deleted or replaced {} s after the second registration",
                started.elapsed().as_secs()
            );
            if refused.is_none()
                && let Some(second) = members(&hub).get_opt(SECOND).await?
                && ready(&second).is_some_and(|c| c.reason == "DuplicateCluster")
            {
                refused = Some(second);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let calls = delta(&before, &counter.snapshot());
        for cluster in ["prometheus-1", SECOND] {
            ensure!(
                count(&calls, cluster, Verb::Delete) == 0,
                "a DELETE went through {cluster}: {calls:?}"
            );
        }
        for verb in [
            Verb::Watch,
            Verb::List,
            Verb::Create,
            Verb::Patch,
            Verb::Update,
        ] {
            ensure!(
                count(&calls, SECOND, verb) == 0,
                "the refused registration was used ({verb:?}): {calls:?}"
            );
        }
        let identity = identity_of(&prom).await?;
        let first = members(&hub).get("prometheus-1").await?;
        ensure!(
            first
                .status
                .as_ref()
                .and_then(|s| s.cluster_identity.as_deref())
                == Some(identity.as_str()),
            "prometheus-1's status records the uid of its kube-system namespace {identity}: {:?}",
            first.status
        );
        let second = refused.context("refused")?;
        let condition = ready(&second).context("Ready")?;
        ensure!(
            condition.status == "False" && condition.message.contains("MemberCluster prometheus-1"),
            "the refusal names the registration in use: {condition:?}"
        );
        ensure!(
            second
                .status
                .as_ref()
                .and_then(|s| s.cluster_identity.as_deref())
                == Some(identity.as_str()),
            "{SECOND} records the same identity: {:?}",
            second.status
        );
        wait_member(&hub, "prometheus-1", "still Ready", |c| c.status == "True").await?;
        wait_ready(&hub, "t-dup", "s").await?;

        // A restarted operator has only the recorded identities to start from: it refuses the
        // same registration, before connecting it.
        let run = run.restart_operator().await?;
        let counter = run.operator.counter();
        eventually(
            "the restarted operator probes the second registration",
            || async {
                let calls = counter.snapshot();
                Ok(if count(&calls, SECOND, Verb::Get) > 0 {
                    Ok(())
                } else {
                    Err(format!("{calls:?}"))
                })
            },
        )
        .await?;
        // A registration that is used starts its watches right after the probe: watch for
        // them (and for any write) a while.
        let probed = tokio::time::Instant::now();
        while probed.elapsed() < Duration::from_secs(10) {
            let calls = counter.snapshot();
            for verb in [Verb::Watch, Verb::Delete, Verb::Patch, Verb::Create] {
                ensure!(
                    count(&calls, SECOND, verb) == 0,
                    "the restarted operator used the refused registration ({verb:?}): {calls:?}"
                );
            }
            ensure!(
                count(&calls, "prometheus-1", Verb::Delete) == 0,
                "the restarted operator deleted through prometheus-1: {calls:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        wait_ready(&hub, "t-dup", "s").await?;
        let second = members(&hub).get(SECOND).await?;
        ensure!(
            ready(&second).is_some_and(|c| c.reason == "DuplicateCluster"),
            "still refused after the restart: {:?}",
            second.status
        );
        ensure!(
            namespaces.get("customer-dup").await?.uid().as_deref() == Some(tenant_uid.as_str()),
            "the tenant namespace kept its uid across the restart"
        );
        Ok(run)
    })
}

/// Deleting the `MemberCluster` a stack uses: it stays (finalizer), connected, with a `Ready`
/// condition naming the stack; deleting the stack cleans up through it, and then it goes. A
/// second registration of the same cluster, refused all along, is used once it is gone.
#[test]
fn a_member_in_use_is_held_until_its_stacks_are_gone() -> anyhow::Result<()> {
    on_testbed("member-identity-held", |run| async move {
        let hub = run.hub()?;
        let prom = run.prometheus()?;
        apply_stack(&hub, "t-held", &stack_manifest("s", "held", json!({}))).await?;
        wait_ready(&hub, "t-held", "s").await?;
        register_again(&hub, SECOND).await?;
        wait_member(&hub, SECOND, "DuplicateCluster", |c| {
            c.reason == "DuplicateCluster"
        })
        .await?;
        eventually("prometheus-1 carries the in-use finalizer", || async {
            let member = members(&hub).get("prometheus-1").await?;
            Ok(
                if member
                    .finalizers()
                    .iter()
                    .any(|f| f == MEMBER_IN_USE_FINALIZER)
                {
                    Ok(())
                } else {
                    Err(format!("{:?}", member.finalizers()))
                },
            )
        })
        .await?;

        members(&hub)
            .delete("prometheus-1", &DeleteParams::default())
            .await?;
        let held = wait_member(&hub, "prometheus-1", "DeletionHeldInUse", |c| {
            c.status == "False" && c.reason == "DeletionHeldInUse"
        })
        .await?;
        let condition = ready(&held).context("Ready")?;
        ensure!(
            condition.message.contains("CustomerStack t-held/s"),
            "the condition names the stack: {condition:?}"
        );
        ensure!(
            held.metadata.deletion_timestamp.is_some(),
            "prometheus-1 is being deleted"
        );
        // Still connected and working: the stack stays Ready, the refused one stays refused.
        wait_ready(&hub, "t-held", "s").await?;
        let second = members(&hub).get(SECOND).await?;
        ensure!(
            ready(&second).is_some_and(|c| c.reason == "DuplicateCluster"),
            "the second registration stays refused while prometheus-1 exists: {:?}",
            second.status
        );

        delete_stack(&hub, "t-held", "s").await?;
        eventually("the stack is cleaned up and gone", || async {
            Ok(match stacks(&hub, "t-held").get_opt("s").await? {
                None => Ok(()),
                Some(stack) => Err(describe(stack.status.as_ref())),
            })
        })
        .await?;
        let tenant = Api::<Namespace>::all(prom.clone())
            .get_opt("customer-held")
            .await?;
        ensure!(
            tenant.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
            "the stack's tenant namespace was deleted through the held member"
        );
        eventually("prometheus-1 is released and gone", || async {
            Ok(match members(&hub).get_opt("prometheus-1").await? {
                None => Ok(()),
                Some(member) => Err(format!(
                    "finalizers {:?}, status {:?}",
                    member.finalizers(),
                    member.status
                )),
            })
        })
        .await?;
        // The older registration is gone: the second one is probed again and used.
        wait_member(&hub, SECOND, "Ready once prometheus-1 is gone", |c| {
            c.status == "True"
        })
        .await?;
        Ok(run)
    })
}

/// One physical cluster registered once per role: `prometheus-1` (prometheus) and a second
/// registration of the same cluster for the grafana role, which a stack uses for its dashboards
/// (in a namespace of their own). The second is refused; for 30 s, checked every second, the
/// tenant namespace keeps its uid and no DELETE goes through either registration; the stack
/// says why its dashboards cannot be written.
#[test]
fn one_cluster_registered_once_per_role_is_refused_and_harms_nothing() -> anyhow::Result<()> {
    const PER_ROLE: &str = "prometheus-1-as-grafana";
    on_testbed("member-identity-per-role", |run| async move {
        let hub = run.hub()?;
        let prom = run.prometheus()?;
        wait_member(&hub, "prometheus-1", "Ready", |c| c.status == "True").await?;
        let first = members(&hub).get("prometheus-1").await?;
        let mut spec = serde_json::to_value(&first.spec)?;
        spec["roles"] = json!(["grafana"]);
        spec.as_object_mut()
            .map(|s| s.remove("prometheusUrlTemplate"));
        let per_role: MemberCluster = serde_json::from_value(json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "MemberCluster",
            "metadata": {"name": PER_ROLE},
            "spec": spec,
        }))?;
        members(&hub)
            .create(&PostParams::default(), &per_role)
            .await?;
        wait_member(&hub, PER_ROLE, "DuplicateCluster", |c| {
            c.status == "False"
                && c.reason == "DuplicateCluster"
                && c.message.contains("MemberCluster prometheus-1")
        })
        .await?;
        let counter = run.operator.counter();
        let before = counter.snapshot();
        let manifest = stack_manifest(
            "s",
            "perrole",
            json!({"dashboards": {"cluster": PER_ROLE, "namespace": "dashboards-perrole"}}),
        );
        apply_stack(&hub, "t-per-role", &manifest).await?;
        let stack = wait_not_ready(&hub, "t-per-role", "s", "ClusterUnreachable").await?;
        let message = condition(&stack, "Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(
            message.contains("DuplicateCluster"),
            "the stack says why its dashboards cannot be written: {message}"
        );
        let namespaces: Api<Namespace> = Api::all(prom.clone());
        let tenant_uid = eventually("the tenant namespace on prometheus-1", || async {
            Ok(namespaces
                .get_opt("customer-perrole")
                .await?
                .and_then(|ns| ns.uid())
                .ok_or_else(|| "not yet".to_owned()))
        })
        .await?;
        let started = tokio::time::Instant::now();
        while started.elapsed() < WATCH_FOR_HARM {
            let tenant = namespaces.get_opt("customer-perrole").await?;
            ensure!(
                tenant.as_ref().and_then(|ns| ns.uid()).as_deref() == Some(tenant_uid.as_str())
                    && tenant.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()),
                "the tenant namespace was deleted or replaced {} s in",
                started.elapsed().as_secs()
            );
            ensure!(
                namespaces.get_opt("dashboards-perrole").await?.is_none(),
                "nothing was written through the refused registration"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let calls = delta(&before, &counter.snapshot());
        for cluster in ["prometheus-1", PER_ROLE] {
            ensure!(
                count(&calls, cluster, Verb::Delete) == 0,
                "a DELETE went through {cluster}: {calls:?}"
            );
        }
        Ok(run)
    })
}

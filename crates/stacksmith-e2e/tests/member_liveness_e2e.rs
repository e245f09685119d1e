//! One bad member never hurts the rest, on the real test bed: a member black-holed by its link
//! (connections accepted, nothing answered) is found unreachable and believed again as soon as
//! it answers; a member whose API server was down is believed within seconds of its return (its
//! stacks and a deletion it held); a member whose writes hang (a stuck admission webhook) does not
//! hold the reconcile slots of stacks on other members.
//!
//! These tests break `prometheus-2`, so they run one at a time on a test bed of their own, with
//! an operator of 4 reconcile slots (2 write slots per member) so that a member taking slots
//! shows at once.

use stacksmith_e2e as support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use stacksmith_api::CustomerStack;
use stacksmith_core::ChildKind;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::harness::{self, Fixture, Suite, TestError, test};
use support::*;

/// The operator's reconcile slots in this suite.
const SLOTS: u16 = 4;
/// The bounds: a black-holed member is found within a minute, a member back is believed
/// within 10 s.
const FOUND_WITHIN: Duration = Duration::from_secs(60);
const BELIEVED_WITHIN: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: with_second_prometheus,
            setup: Some(start_operator_with_few_slots),
            serial: true,
        },
        "member-liveness-e2e",
        vec![
            test(
                "a_black_holed_member_is_found_unreachable_and_believed_when_it_answers",
                |tb| Box::pin(boxed(black_holed(tb))),
            ),
            test(
                "a_member_back_from_a_stop_is_believed_within_seconds_with_its_held_deletion",
                |tb| Box::pin(boxed(back_from_a_stop(tb))),
            ),
            test(
                "writes_that_hang_on_one_member_leave_the_slots_to_stacks_on_others",
                |tb| Box::pin(boxed(hanging_writes(tb))),
            ),
        ],
    )
}

/// [`start_operator`], with [`SLOTS`] reconcile slots.
fn start_operator_with_few_slots(
    tb: &TestBed,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fixture, TestError>> + Send + '_>> {
    Box::pin(spawn_operator(tb, Some(SLOTS)))
}

fn on_prometheus_2(name: &str, customer: &str) -> serde_json::Value {
    stack_manifest(
        name,
        customer,
        json!({"metrics": {"cluster": "prometheus-2"}}),
    )
}

/// Waits until `check` holds for the stack, at most `limit`; returns it and how long it took.
async fn wait_stack_within(
    hub: &Client,
    ns: &str,
    name: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&CustomerStack) -> bool,
) -> anyhow::Result<(CustomerStack, Duration)> {
    let api = stacks(hub, ns);
    let started = Instant::now();
    let mut last = None;
    loop {
        if let Some(stack) = api.get_opt(name).await? {
            if check(&stack) {
                return Ok((stack, started.elapsed()));
            }
            last = stack.status.clone();
        }
        ensure!(
            started.elapsed() < limit,
            "{ns}/{name}: not {what} within {limit:?}; last status: {}",
            describe(last.as_ref())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ready(stack: &CustomerStack) -> bool {
    condition(stack, "Ready").is_some_and(|c| c.status == "True")
}

fn not_ready_because(stack: &CustomerStack, reason: &str) -> bool {
    condition(stack, "Ready").is_some_and(|c| c.status == "False" && c.reason == reason)
}

/// Puts a link back as it was, however the test ends.
struct Restore<'a>(&'a stacksmith_testbed::link::LinkProxy);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.0.restore();
    }
}

/// The link to prometheus-2 black-holed: every open connection stalls, new ones are accepted and
/// never answered. No watch fails, so only asking the member finds it; once the link carries
/// bytes again, the member is believed at once (its watches listed afresh).
async fn black_holed(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster("prometheus-2")?;
    let link = member.link().context("prometheus-2 has no member link")?;
    apply_stack(&hub, "l-hole", &on_prometheus_2("s", "hole")).await?;
    wait_ready(&hub, "l-hole", "s").await?;

    link.cut();
    let _restore = Restore(link);
    let (stack, found) = wait_stack_within(
        &hub,
        "l-hole",
        "s",
        "ClusterUnreachable",
        FOUND_WITHIN,
        |s| not_ready_because(s, "ClusterUnreachable"),
    )
    .await?;
    println!("black-holed prometheus-2 found unreachable after {found:?}");
    let message = condition(&stack, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(message.contains("prometheus-2"), "{message}");

    link.restore();
    let (_, believed) =
        wait_stack_within(&hub, "l-hole", "s", "Ready again", BELIEVED_WITHIN, ready).await?;
    println!("prometheus-2 believed {believed:?} after its link carried bytes again");
    Ok(())
}

/// prometheus-2's API server stopped long enough for every watch to back off (and a stack on it
/// deleted meanwhile, held by it), then started: its stack is Ready and the held deletion done
/// within seconds of the API server answering, not after the watches' backoff.
async fn back_from_a_stop(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster("prometheus-2")?;
    apply_stack(&hub, "l-back", &on_prometheus_2("s", "back")).await?;
    apply_stack(&hub, "l-gone", &on_prometheus_2("s", "gone")).await?;
    wait_ready(&hub, "l-back", "s").await?;
    wait_ready(&hub, "l-gone", "s").await?;

    member.stop_apiserver().await?;
    wait_not_ready(&hub, "l-back", "s", "ClusterUnreachable").await?;
    delete_stack(&hub, "l-gone", "s").await?;
    wait_stack(&hub, "l-gone", "s", "DeletionBlocked", |s| {
        condition(s, "DeletionBlocked").is_some_and(|c| c.status == "True")
    })
    .await?;
    // Long enough for the watches' backoff to reach its longest wait (30 s).
    tokio::time::sleep(Duration::from_secs(40)).await;

    member.start_apiserver().await?;
    let back = Instant::now();
    let (_, believed) =
        wait_stack_within(&hub, "l-back", "s", "Ready again", BELIEVED_WITHIN, ready).await?;
    println!("stack on prometheus-2 Ready {believed:?} after its API server answered");
    // What stacksmith held is done at once: the tenant namespace is being deleted (its contents
    // went first). The namespace's own finalization is the member's namespace controller's work,
    // and its pods' kubelet's, both recovering from the stop (from 40 s to minutes): the stack's
    // release after that is the inventory suite's subject, not this one's.
    let namespaces: Api<Namespace> = Api::all(member.client().clone());
    loop {
        let namespace = namespaces.get_opt("customer-gone").await?;
        if namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()) {
            break;
        }
        if back.elapsed() >= BELIEVED_WITHIN {
            let stack = stacks(&hub, "l-gone").get_opt("s").await?;
            let prometheus = get_child(
                member.client(),
                ChildKind::Prometheus,
                "customer-gone",
                "gone",
            )
            .await?;
            anyhow::bail!(
                "the deletion held by prometheus-2 did not go on within {BELIEVED_WITHIN:?} of its return; stack status: {}; its Prometheus: {:?}",
                describe(stack.and_then(|s| s.status).as_ref()),
                prometheus.map(|p| p.metadata)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "deletion held by prometheus-2 went on {:?} after its API server answered",
        back.elapsed()
    );
    Ok(())
}

/// An admission webhook on prometheus-2 that accepts connections and never answers: every write
/// of a Prometheus, rule or monitor there hangs (the API server waits the webhook's 30 s; stacksmith gives up after
/// its request timeout). Stacks on prometheus-2 queue up for writes; a new stack on prometheus-1
/// still converges in its normal time, because prometheus-2 gets at most half the slots, a pass
/// stops writing to it at its first write without an answer, and from then on one stack at a time
/// tries it.
async fn hanging_writes(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster("prometheus-2")?;
    let webhook = StuckWebhook::install(member.client()).await?;

    // Four times as many stacks on the stuck member as there are slots: without the write gate,
    // each of their passes holds a slot for a request timeout per Prometheus object (three), so
    // a stack queued after them waits for rounds of 30 s.
    let stuck: Vec<String> = (0..16).map(|i| format!("l-stuck-{i}")).collect();
    for ns in &stuck {
        apply_stack(&hub, ns, &on_prometheus_2("s", ns)).await?;
    }
    // Let them take what they can.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    apply_stack(&hub, "l-free", &stack_manifest("s", "free", json!({}))).await?;
    let (_, took) = wait_stack_within(
        &hub,
        "l-free",
        "s",
        "Ready while prometheus-2's writes hang",
        Duration::from_secs(30),
        ready,
    )
    .await?;
    println!(
        "a stack on prometheus-1 Ready in {took:?} ({:?} after the stuck stacks were created) while prometheus-2's writes hang",
        started.elapsed()
    );

    // The stuck stacks say why.
    let (stack, _) = wait_stack_within(
        &hub,
        &stuck[0],
        "s",
        "ApplyFailed naming the unanswered writes",
        Duration::from_secs(60),
        |s| {
            s.status.as_ref().is_some_and(|status| {
                status.children.iter().any(|c| {
                    c.kind == "Prometheus"
                        && (c.message.contains("no answer") || c.message.contains("not answered"))
                })
            })
        },
    )
    .await?;
    ensure!(
        !ready(&stack),
        "a stack whose Prometheus was never written is not Ready"
    );

    // The webhook gone, every stuck stack converges.
    webhook.remove().await?;
    for ns in &stuck {
        wait_stack_within(
            &hub,
            ns,
            "s",
            "Ready once the webhook is gone",
            Duration::from_secs(180),
            ready,
        )
        .await?;
    }
    Ok(())
}

/// A validating admission webhook for prometheus-operator's objects whose server accepts TCP
/// connections and never says a word.
struct StuckWebhook {
    client: Client,
    listener: tokio::task::JoinHandle<()>,
}

const WEBHOOK_NAME: &str = "stuck.stacksmith.test";

impl StuckWebhook {
    async fn install(client: &Client) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        // Never used: the handshake never starts. The API server only wants a CA to trust.
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
        let ca = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            ca.cert.pem().as_bytes(),
        );
        let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK_NAME},
            "webhooks": [{
                "name": WEBHOOK_NAME,
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate"), "caBundle": ca},
                "rules": [{
                    "apiGroups": ["monitoring.coreos.com"],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["prometheuses", "prometheusrules", "servicemonitors"],
                }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 30,
            }],
        }))?;
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await?;
        Ok(StuckWebhook {
            client: client.clone(),
            listener: task,
        })
    }

    async fn remove(self) -> anyhow::Result<()> {
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(WEBHOOK_NAME, &DeleteParams::default())
            .await?;
        self.listener.abort();
        Ok(())
    }
}

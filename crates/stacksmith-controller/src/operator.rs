//! Running the operator: the `CustomerStack` controller plus the fleet of member connections.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use kube::client::ClientBuilder;
use kube::runtime::{Controller, WatchStreamExt as _, controller, reflector, watcher};
use kube::{Api, Config, ResourceExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use stacksmith_core::policy::PolicyMode;

use crate::leases::{LeaseOptions, ShardHolding, keep_leases};
use crate::member::Fleet;
use crate::member::wake::{StacksListed, Waker, note_listed};
use crate::reconcile::{Context, GuardedStack, error_policy_guarded, reconcile_guarded};
use crate::telemetry::api_calls::{ApiCallCounter, CallKey};
use crate::telemetry::endpoints::{self, EndpointState};
use crate::telemetry::liveness::Liveness;
use crate::telemetry::metrics::{self, MetricsSnapshot};

/// How many stacks are reconciled at once by default.
///
/// Each reconcile writes to its clusters concurrently, one request at a time per cluster, over
/// HTTP/1.1 connections: the bound keeps the connections (and their TLS buffers) to each API
/// server in the tens instead of one per stack when thousands of stacks start at once, and
/// leaves the API servers' in-flight limits to other clients.
pub const DEFAULT_CONCURRENT_RECONCILES: u16 = 32;

/// How to run the operator beyond the hub and the counter.
#[derive(Debug)]
pub struct OperatorOptions {
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (bound by the caller, so it knows the
    /// address); `None`: no endpoints.
    pub endpoints: Option<TcpListener>,
    /// Stacks reconciled at once (0: no bound).
    pub concurrent_reconciles: u16,
    /// Whether a stack needs a `TenantPolicy` naming its customer (default: required).
    pub tenant_policy: PolicyMode,
    /// The hub namespace holding the stacks' data-path credentials (tenant CAs), one Secret per
    /// stack with a planned exposure (default `stacksmith-system`).
    pub credentials_namespace: String,
    /// How this replica shares the stacks with others through hub Leases (see `leases`);
    /// `None`: it runs alone and reconciles every stack (no Lease is read or written).
    pub leases: Option<LeaseOptions>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            endpoints: None,
            concurrent_reconciles: DEFAULT_CONCURRENT_RECONCILES,
            tenant_policy: PolicyMode::Required,
            credentials_namespace: crate::credentials::DEFAULT_CREDENTIALS_NAMESPACE.to_owned(),
            leases: None,
        }
    }
}

/// How many reconciles may write to one member at once: half the reconcile slots, so a member
/// whose writes hang cannot hold every slot (see `member::write_gate`); no bound without one.
fn member_write_slots(concurrent_reconciles: u16) -> usize {
    match concurrent_reconciles {
        0 => tokio::sync::Semaphore::MAX_PERMITS,
        n => usize::from(n / 2).max(1),
    }
}

/// Runs the operator against the hub `hub` until `shutdown` resolves; every request (to the hub
/// and to every member) is counted in `counter`. The default options: no HTTP endpoints, tenant
/// policies required (see [`run_with`]).
pub async fn run(
    hub: Config,
    counter: ApiCallCounter,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), kube::Error> {
    run_with(hub, counter, OperatorOptions::default(), shutdown).await
}

/// Runs the operator like [`run`], with `options`.
pub async fn run_with(
    hub: Config,
    counter: ApiCallCounter,
    options: OperatorOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), kube::Error> {
    // The Leases have a client of their own, counted apart: their renewals are the one write an
    // idle replica makes, and must not hide the writes that reconcile stacks.
    let lease_hub = ClientBuilder::try_from(hub.clone())?
        .with_layer(&counter.layer("hub-leases"))
        .build();
    let hub = ClientBuilder::try_from(hub)?
        .with_layer(&counter.layer("hub"))
        .build();
    let shards = match &options.leases {
        Some(leases) => ShardHolding::new(Some(leases.identity.clone()), leases.shards),
        None => ShardHolding::everything(),
    };
    let stacks: Api<GuardedStack> = Api::all(hub.clone());
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let (store, writer) = reflector::store();
    // kube's controller is the only task that waits on the store's own readiness (see
    // `StacksListed`); everything else asks this flag.
    let (listed_tx, listed) = StacksListed::new();
    let stack_events = watcher(stacks, watcher::Config::default())
        .default_backoff()
        // Never read, and each as large as the spec or larger: kept out of the cache.
        .modify(|stack| {
            stack.managed_fields_mut().clear();
            stack
                .annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .inspect_ok(move |event| note_listed(&listed_tx, event))
        .applied_objects();
    let controller = Controller::for_stream(stack_events, store.clone());
    let liveness = Liveness::default();
    let (policies, policies_task) = crate::policies::watch_policies(
        hub.clone(),
        options.tenant_policy,
        store.clone(),
        wake_tx.clone(),
        crate::invalid_object::recorder(hub.clone()),
        shards.clone(),
    );
    let (dashboard_sources, dashboard_sources_task) =
        crate::dashboard_sources::watch_dashboard_sources(
            hub.clone(),
            store.clone(),
            wake_tx.clone(),
        );
    let fleet = Fleet::new(
        hub.clone(),
        Waker::new(store.clone(), listed.clone(), wake_tx.clone()),
        counter.clone(),
        liveness.clone(),
        member_write_slots(options.concurrent_reconciles),
        shards.clone(),
    );
    let fleet_task = tokio::spawn(fleet.clone().run());
    let lease_keeper = options.leases.clone().map(|leases| {
        tracing::info!(replica = %leases.identity, shards = leases.shards, namespace = %leases.namespace, lease_s = leases.duration.as_secs(), "sharing the stacks through Leases");
        let taken = wake_shard(store.clone(), wake_tx, fleet.clone(), shards.clone());
        keep_leases(lease_hub, leases, shards.clone(), taken)
    });
    let context = Arc::new(
        Context::new(
            hub,
            fleet.clone(),
            liveness.clone(),
            store.clone(),
            policies,
            dashboard_sources,
        )
        .with_credentials_namespace(options.credentials_namespace)
        .with_shards(shards.clone()),
    );
    let endpoints_task = options.endpoints.map(|listener| {
        serve_endpoints(
            listener,
            store.clone(),
            listed,
            fleet.clone(),
            &context,
            counter,
            liveness,
        )
    });
    controller
        .with_config(controller::Config::default().concurrency(options.concurrent_reconciles))
        .reconcile_on(UnboundedReceiverStream::new(wake_rx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_guarded, error_policy_guarded, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "reconcile");
            }
        })
        .await;
    // Every reconcile has finished: the shards go to another replica at once.
    if let Some(keeper) = lease_keeper {
        let within = options
            .leases
            .as_ref()
            .map_or(Duration::ZERO, |l| l.duration);
        keeper.release(within).await;
    }
    if let Some(task) = endpoints_task {
        task.abort();
    }
    fleet_task.abort();
    policies_task.abort();
    dashboard_sources_task.abort();
    fleet.shutdown();
    Ok(())
}

/// What taking a shard does: wakes its stacks (they were left alone while another replica held
/// it) and, for shard 0, has the fleet look at its members again (their status and finalizers
/// are the leader's to write).
fn wake_shard(
    stacks: reflector::Store<GuardedStack>,
    wake: mpsc::UnboundedSender<reflector::ObjectRef<GuardedStack>>,
    fleet: Fleet,
    shards: ShardHolding,
) -> impl Fn(u16) + Send + Sync + 'static {
    move |shard| {
        for stack in stacks.state() {
            let namespace = stack.namespace().unwrap_or_default();
            if shards.shard_of(&namespace, &stack.name_any()) == shard {
                let _ = wake.send(reflector::ObjectRef::from_obj(&*stack));
            }
        }
        if shard == 0 {
            fleet.look_again_at_all();
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener`: ready once the hub's stacks have
/// been listed; the metrics read the stack cache, the fleet and the counters at each scrape.
fn serve_endpoints(
    listener: TcpListener,
    store: reflector::Store<GuardedStack>,
    listed: StacksListed,
    fleet: Fleet,
    context: &Context,
    counter: ApiCallCounter,
    liveness: Liveness,
) -> tokio::task::JoinHandle<()> {
    let shards = context.shards().clone();
    let ready = Arc::new(AtomicBool::new(false));
    let readiness = {
        let ready = Arc::clone(&ready);
        async move {
            if listed.wait().await {
                ready.store(true, Ordering::Relaxed);
            }
        }
    };
    let reconciles = context.metrics.clone();
    let metrics = move || {
        let mut snapshot = MetricsSnapshot {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            reconciles: reconciles.snapshot(),
            member_reachable: fleet.member_reachability(),
            api_calls: counter.snapshot(),
            replica: shards.identity().map(str::to_owned),
            shards: shards.shards(),
            shards_held: shards.held(),
            ..MetricsSnapshot::default()
        };
        let stacks = store.state();
        snapshot.count_stacks(stacks.iter().filter_map(|g| g.0.as_ref().ok()));
        let invalid = stacks.iter().filter(|g| g.0.is_err()).count();
        snapshot.invalid_objects = BTreeMap::from([
            (
                "CustomerStack".to_owned(),
                u64::try_from(invalid).unwrap_or(u64::MAX),
            ),
            ("MemberCluster".to_owned(), fleet.invalid_members()),
        ]);
        metrics::render(&snapshot)
    };
    let state = Arc::new(EndpointState {
        metrics: Box::new(metrics),
        ready,
        liveness,
    });
    tokio::spawn(async move {
        tokio::join!(readiness, endpoints::serve(listener, state));
    })
}

/// An operator running on the current runtime; stops when dropped or [`RunningOperator::stop`]ped.
pub struct RunningOperator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), kube::Error>>>,
    counter: ApiCallCounter,
    endpoints: Option<SocketAddr>,
}

impl RunningOperator {
    /// Starts the operator against the hub in the background (no HTTP endpoints), with tenant
    /// policies optional (`--tenant-policy=optional`: the test beds' stacks have none; a policy
    /// that names a customer is still enforced).
    pub fn spawn(hub: Config) -> Self {
        Self::start(hub, Self::optional_policies())
    }

    /// Starts the operator in the background with `concurrent_reconciles` slots (no HTTP
    /// endpoints, tenant policies optional as with [`RunningOperator::spawn`]).
    pub fn spawn_with_concurrency(hub: Config, concurrent_reconciles: u16) -> Self {
        let options = OperatorOptions {
            concurrent_reconciles,
            ..Self::optional_policies()
        };
        Self::start(hub, options)
    }

    /// Starts the operator in the background, serving `/metrics`, `/healthz` and `/readyz` on
    /// `address` (port 0: any free port; see [`RunningOperator::endpoints`]), with tenant
    /// policies `tenant_policy`.
    pub fn spawn_with_endpoints(
        hub: Config,
        address: SocketAddr,
        tenant_policy: PolicyMode,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let options = OperatorOptions {
            endpoints: Some(listener),
            tenant_policy,
            ..OperatorOptions::default()
        };
        Ok(Self::start(hub, options))
    }

    /// Starts the operator in the background with `options`.
    pub fn spawn_with_options(hub: Config, options: OperatorOptions) -> Self {
        Self::start(hub, options)
    }

    fn optional_policies() -> OperatorOptions {
        OperatorOptions {
            tenant_policy: PolicyMode::Optional,
            ..OperatorOptions::default()
        }
    }

    fn start(hub: Config, options: OperatorOptions) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = ApiCallCounter::new();
        let address = options.endpoints.as_ref().and_then(|l| l.local_addr().ok());
        let task = tokio::spawn(run_with(hub, counter.clone(), options, async {
            let _ = stopped.await;
        }));
        RunningOperator {
            stop: Some(stop),
            task: Some(task),
            counter,
            endpoints: address,
        }
    }

    /// Where the HTTP endpoints are served, if they are.
    pub fn endpoints(&self) -> Option<SocketAddr> {
        self.endpoints
    }

    /// The counter of the operator's requests (shared: it keeps counting).
    pub fn counter(&self) -> ApiCallCounter {
        self.counter.clone()
    }

    /// The requests the operator has made so far.
    pub fn api_calls(&self) -> BTreeMap<CallKey, u64> {
        self.counter.snapshot()
    }

    /// Stops the operator and waits (up to 10 s) until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for RunningOperator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

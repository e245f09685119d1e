//! Running the operator: the `CustomerStack` controller plus the fleet of member connections.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::client::ClientBuilder;
use kube::runtime::{Controller, watcher};
use kube::{Api, Config};
use stacksmith_api::CustomerStack;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::api_calls::{ApiCallCounter, CallKey};
use crate::fleet::Fleet;
use crate::reconcile::{Context, error_policy, reconcile};

/// Runs the operator against the hub `hub` until `shutdown` resolves; every request (to the hub
/// and to every member) is counted in `counter`.
pub async fn run(
    hub: Config,
    counter: ApiCallCounter,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), kube::Error> {
    let hub = ClientBuilder::try_from(hub)?
        .with_layer(&counter.layer("hub"))
        .build();
    let stacks: Api<CustomerStack> = Api::all(hub.clone());
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let controller = Controller::new(stacks, watcher::Config::default());
    let fleet = Fleet::new(hub.clone(), controller.store(), wake_tx, counter);
    let fleet_task = tokio::spawn(fleet.clone().run());
    let context = Arc::new(Context::new(hub, fleet.clone()));
    controller
        .reconcile_on(UnboundedReceiverStream::new(wake_rx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "reconcile");
            }
        })
        .await;
    fleet_task.abort();
    fleet.shutdown();
    Ok(())
}

/// An operator running on the current runtime; stops when dropped or [`RunningOperator::stop`]ped.
pub struct RunningOperator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), kube::Error>>>,
    counter: ApiCallCounter,
}

impl RunningOperator {
    /// Starts the operator against the hub in the background.
    pub fn spawn(hub: Config) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = ApiCallCounter::new();
        let task = tokio::spawn(run(hub, counter.clone(), async {
            let _ = stopped.await;
        }));
        RunningOperator {
            stop: Some(stop),
            task: Some(task),
            counter,
        }
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

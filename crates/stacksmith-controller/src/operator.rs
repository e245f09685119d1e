//! Running the operator: the `CustomerStack` controller plus the fleet of member connections.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use stacksmith_api::CustomerStack;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::fleet::Fleet;
use crate::reconcile::{Context, error_policy, reconcile};

/// Runs the operator against `hub` until `shutdown` resolves.
pub async fn run(hub: Client, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let stacks: Api<CustomerStack> = Api::all(hub.clone());
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let controller = Controller::new(stacks, watcher::Config::default());
    let fleet = Fleet::new(hub.clone(), controller.store(), wake_tx);
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
}

//! Noticing a rotated kubeconfig Secret: resolves when the Secret's `resourceVersion` is no
//! longer the one the connection was built from.

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use stacksmith_api::MemberCluster;

/// Resolves once the kubeconfig Secret's `resourceVersion` differs from `known` (`None`: the
/// Secret does not exist): it was created, changed or deleted since the connection was built.
pub(super) fn secret_version_change(
    hub: Client,
    member: &MemberCluster,
    known: Option<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let reference = member.spec.kubeconfig_secret_ref.clone();
    Box::pin(async move {
        let api: Api<Secret> = Api::namespaced(hub, &reference.namespace);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", reference.name));
        let stream = watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        let mut listed_object = false;
        while let Some(event) = stream.next().await {
            let version = match event {
                Ok(watcher::Event::Init) => {
                    listed_object = false;
                    continue;
                }
                Ok(watcher::Event::InitApply(s)) => {
                    listed_object = true;
                    s.resource_version()
                }
                Ok(watcher::Event::Apply(s)) => s.resource_version(),
                Ok(watcher::Event::Delete(_)) => None,
                Ok(watcher::Event::InitDone) if !listed_object => None,
                Ok(watcher::Event::InitDone) | Err(_) => continue,
            };
            if version != known {
                return;
            }
        }
        std::future::pending().await
    })
}

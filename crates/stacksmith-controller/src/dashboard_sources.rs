//! The hub ConfigMaps that hold dashboard models (a dashboard's `configMapRef`): a watch of the
//! ConfigMaps labelled `stacksmith.io/dashboard-source: "true"` only (not every ConfigMap of the
//! hub), the cache the reconcile's dereference stage reads them from, and the stacks a change
//! wakes (those of the ConfigMap's namespace that name it).

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use stacksmith_api::labels::{DASHBOARD_SOURCE, DASHBOARD_SOURCE_VALUE};
use stacksmith_api::{CustomerStack, CustomerStackSpec};
use stacksmith_core::plan::DashboardConfigMaps;
use tokio::sync::mpsc;

use crate::member::wake::{StacksListed, hub_cache};
use crate::reconcile::GuardedStack;
use crate::remote::{HUB_TIMEOUT, RemoteError, call};

/// The label selector of the ConfigMaps stacksmith reads dashboards from.
fn selector() -> String {
    format!("{DASHBOARD_SOURCE}={DASHBOARD_SOURCE_VALUE}")
}

/// The cache of the hub's dashboard-source ConfigMaps, shared by the reconciles.
#[derive(Clone)]
pub struct DashboardSources {
    store: Store<ConfigMap>,
    /// Whether the cache holds its first full list (a flag of our own: see [`StacksListed`]).
    listed: StacksListed,
}

/// Why a stack's dashboard ConfigMaps cannot be read yet.
#[derive(Debug, thiserror::Error)]
#[error("the hub's dashboard-source ConfigMaps are not listed yet")]
pub struct ConfigMapsNotListed;

impl DashboardSources {
    /// The dereference stage: the ConfigMaps `stack`'s dashboards name, from the cache. A stack
    /// that names none waits for nothing; one that does waits (at most `cap`) for the cache's
    /// first list, so a ConfigMap is never reported missing from a cache not filled yet.
    pub async fn of(
        &self,
        stack: &CustomerStack,
        cap: Duration,
    ) -> Result<DashboardConfigMaps, ConfigMapsNotListed> {
        let named = DashboardConfigMaps::named_by(&stack.spec);
        if named.is_empty() {
            return Ok(DashboardConfigMaps::none());
        }
        if !self.listed.is_listed() {
            let listed = tokio::time::timeout(cap, self.listed.wait()).await;
            if !matches!(listed, Ok(true)) {
                return Err(ConfigMapsNotListed);
            }
        }
        let namespace = stack.namespace().unwrap_or_default();
        let found = named.into_iter().filter_map(|name| {
            self.store
                .get(&ObjectRef::new(name).within(&namespace))
                .map(|map| (*map).clone())
        });
        Ok(collect(found))
    }
}

/// The ConfigMaps found, with their `data` (a model is text: `binaryData` is not read).
fn collect(found: impl IntoIterator<Item = ConfigMap>) -> DashboardConfigMaps {
    let mut maps = DashboardConfigMaps::none();
    for map in found {
        let name = map.name_any();
        maps.insert(name, map.data.unwrap_or_default());
    }
    maps
}

/// Reads the dashboard-source ConfigMaps that the dashboards of a stack in hub namespace
/// `namespace` name, straight from the hub (one LIST of the namespace under [`HUB_TIMEOUT`]), for
/// the commands that plan without the operator's cache (`stacksmith status --live`,
/// `stacksmith diff`).
pub async fn read_dashboard_config_maps(
    hub: &Client,
    namespace: &str,
    spec: &CustomerStackSpec,
) -> Result<DashboardConfigMaps, RemoteError> {
    let named = DashboardConfigMaps::named_by(spec);
    if named.is_empty() {
        return Ok(DashboardConfigMaps::none());
    }
    let api: Api<ConfigMap> = Api::namespaced(hub.clone(), namespace);
    let listed = call(
        HUB_TIMEOUT,
        api.list(&ListParams::default().labels(&selector())),
    )
    .await?;
    Ok(collect(
        listed
            .items
            .into_iter()
            .filter(|map| named.contains(&map.name_any().as_str())),
    ))
}

/// Starts the watch of the hub's dashboard-source ConfigMaps: returns the cache and the task
/// that feeds it and wakes, through `wake`, the stacks (found in `stacks`) that name a
/// ConfigMap that changed, appeared or went away.
pub fn watch_dashboard_sources(
    hub: Client,
    stacks: Store<GuardedStack>,
    wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
) -> (DashboardSources, tokio::task::JoinHandle<()>) {
    let (store, listed, events) = hub_cache(
        Api::<ConfigMap>::all(hub),
        watcher::Config::default().labels(&selector()),
        "watching the dashboard-source ConfigMaps",
    );
    let task = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let changed = match &event {
                watcher::Event::Apply(map)
                | watcher::Event::Delete(map)
                | watcher::Event::InitApply(map) => map,
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            wake_users(&stacks, &wake, changed);
        }
    });
    (DashboardSources { store, listed }, task)
}

/// Wakes every stack (that deserialized) of `map`'s namespace whose dashboards name it.
fn wake_users(
    stacks: &Store<GuardedStack>,
    wake: &mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
    map: &ConfigMap,
) {
    let namespace = map.namespace();
    let name = map.name_any();
    for guarded in stacks.state() {
        if let Ok(stack) = &guarded.0
            && stack.namespace() == namespace
            && DashboardConfigMaps::named_by(&stack.spec).contains(&name.as_str())
        {
            let _ = wake.send(ObjectRef::from_obj(guarded.as_ref()));
        }
    }
}

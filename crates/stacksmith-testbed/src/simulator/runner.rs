//! The simulator's I/O: watches per cluster and kind, status patches.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use stacksmith_core::ChildKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::outcome::{
    OUTCOME_ANNOTATION, Outcome, SCENARIO_CONFIGMAP, SCENARIO_NAMESPACE, Scenario,
};
use super::status::{World, differs, simulated_status};

/// The field manager of the simulator's status writes.
const FIELD_MANAGER: &str = "stacksmith-simulator";

/// The running simulator of one or more clusters; stops when dropped.
pub struct Simulator {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl Simulator {
    /// A simulator with no cluster yet.
    pub fn new() -> Self {
        Simulator { tasks: Vec::new() }
    }

    /// Starts playing the operators of `kinds` on one cluster.
    pub fn add_cluster(&mut self, cluster: &str, client: Client, kinds: &[ChildKind]) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stores = HashMap::new();
        for &kind in kinds {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
            let writer = reflector::store::Writer::new(api_resource(kind));
            let reader = writer.as_reader();
            stores.insert(kind, reader);
            let tx = tx.clone();
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .applied_objects();
            self.tasks.push(tokio::spawn(async move {
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(obj) => {
                            let key = Key {
                                kind,
                                namespace: obj.namespace().unwrap_or_default(),
                                name: obj.name_any(),
                            };
                            let follow_up = match kind {
                                ChildKind::Grafana => Some(Work::Kinds(&GRAFANA_RESOURCES)),
                                // Rules and monitors bind to the Prometheus of their namespace.
                                ChildKind::Prometheus => Some(Work::KindsIn(
                                    &CONFIGURATION_RESOURCES,
                                    key.namespace.clone(),
                                )),
                                _ => None,
                            };
                            let _ = tx.send(Work::Object(key));
                            if let Some(w) = follow_up {
                                let _ = tx.send(w);
                            }
                        }
                        Err(err) => tracing::debug!(%err, kind = kind.as_str(), "simulator watch"),
                    }
                }
            }));
        }
        let scenario_api: Api<ConfigMap> = Api::namespaced(client.clone(), SCENARIO_NAMESPACE);
        let (scenario_tx, scenario_rx) = tokio::sync::watch::channel(Scenario::default());
        let scenario_stream = watcher(
            scenario_api,
            watcher::Config::default().fields(&format!("metadata.name={SCENARIO_CONFIGMAP}")),
        )
        .default_backoff()
        .touched_objects();
        let scenario_work = tx.clone();
        self.tasks.push(tokio::spawn(async move {
            futures::pin_mut!(scenario_stream);
            while let Some(event) = scenario_stream.next().await {
                if let Ok(cm) = event {
                    let data = cm.data.unwrap_or_default();
                    let _ = scenario_tx.send(Scenario::from_data(&data));
                    let _ = scenario_work.send(Work::Kinds(&ChildKind::ALL));
                }
            }
        }));
        let worker = Worker {
            cluster: cluster.to_owned(),
            client,
            stores,
            scenario: scenario_rx,
            requeue: tx,
            slow_since: HashMap::new(),
        };
        self.tasks.push(tokio::spawn(worker.run(rx)));
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

static GRAFANA_RESOURCES: [ChildKind; 3] = [
    ChildKind::GrafanaFolder,
    ChildKind::GrafanaDatasource,
    ChildKind::GrafanaDashboard,
];
static CONFIGURATION_RESOURCES: [ChildKind; 2] =
    [ChildKind::PrometheusRule, ChildKind::ServiceMonitor];

/// The `ApiResource` of a child kind (from the table of kinds, `stacksmith_api::kinds`).
pub fn api_resource(kind: ChildKind) -> ApiResource {
    kind.info().api_resource()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: ChildKind,
    namespace: String,
    name: String,
}

enum Work {
    Object(Key),
    Kinds(&'static [ChildKind]),
    /// The objects of these kinds in one namespace.
    KindsIn(&'static [ChildKind], String),
}

/// Status writes in flight at once per cluster (the real operators write concurrently too).
const WRITES_IN_FLIGHT: usize = 32;

struct Worker {
    cluster: String,
    client: Client,
    stores: HashMap<ChildKind, Store<DynamicObject>>,
    scenario: tokio::sync::watch::Receiver<Scenario>,
    requeue: mpsc::UnboundedSender<Work>,
    slow_since: HashMap<(Key, i64), Instant>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Work>) {
        while let Some(first) = rx.recv().await {
            // Coalesce a burst of work into one pass.
            let mut keys = BTreeMap::new();
            let mut add = |w: Work, stores: &HashMap<ChildKind, Store<DynamicObject>>| match w {
                Work::Object(k) => {
                    keys.insert((k.kind, k.namespace.clone(), k.name.clone()), k);
                }
                Work::Kinds(kinds) | Work::KindsIn(kinds, _) => {
                    let only_in = match &w {
                        Work::KindsIn(_, namespace) => Some(namespace.clone()),
                        _ => None,
                    };
                    for kind in kinds {
                        for obj in stores.get(kind).map(Store::state).unwrap_or_default() {
                            if only_in
                                .as_ref()
                                .is_some_and(|ns| obj.namespace().as_ref() != Some(ns))
                            {
                                continue;
                            }
                            let k = Key {
                                kind: *kind,
                                namespace: obj.namespace().unwrap_or_default(),
                                name: obj.name_any(),
                            };
                            keys.insert((k.kind, k.namespace.clone(), k.name.clone()), k);
                        }
                    }
                }
            };
            add(first, &self.stores);
            while let Ok(more) = rx.try_recv() {
                add(more, &self.stores);
            }
            let writes: Vec<_> = keys
                .into_values()
                .filter_map(|key| self.status_write(key))
                .collect();
            futures::stream::iter(writes)
                .for_each_concurrent(WRITES_IN_FLIGHT, |write| write)
                .await;
        }
    }

    /// The objects of `kind` (in `namespace` only, when given) as JSON.
    fn objects(&self, kind: ChildKind, namespace: Option<&str>) -> Vec<Value> {
        self.stores
            .get(&kind)
            .map(|s| {
                s.state()
                    .iter()
                    .filter(|o| namespace.is_none_or(|ns| o.namespace().as_deref() == Some(ns)))
                    .filter_map(|o| serde_json::to_value(o.as_ref()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The status write `key` needs, if any (decided now, sent by the caller).
    fn status_write(&mut self, key: Key) -> Option<StatusWrite> {
        let store = self.stores.get(&key.kind)?;
        let reference = reflector::ObjectRef::new_with(&key.name, api_resource(key.kind))
            .within(&key.namespace);
        let object = store.get(&reference)?;
        let object = serde_json::to_value(object.as_ref()).ok()?;
        let scenario = self.scenario.borrow().clone();
        let outcome = outcome_of(&scenario, &key, &object);
        let generation = object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if outcome == Outcome::Slow && self.still_slow(&key, generation, scenario.slow_delay_ms) {
            return None;
        }
        let (grafanas, prometheuses) = self.world_objects(&key);
        let world = World {
            grafanas: &grafanas,
            prometheuses: &prometheuses,
            status_for_configuration_resources: scenario.status_for_configuration_resources,
        };
        let now = now_to_the_second();
        let desired = simulated_status(key.kind, &object, outcome, &world, &now)?;
        let current = object.get("status");
        if !differs(current, &desired) {
            return None;
        }
        Some(self.patch_status(key, merge_patch(current, desired)))
    }

    /// The `Grafana` and `Prometheus` objects the status of `key` depends on, only what its kind
    /// needs: Grafana resources match instances anywhere; rules and monitors bind to the
    /// Prometheus of their own namespace.
    fn world_objects(&self, key: &Key) -> (Vec<Value>, Vec<Value>) {
        let grafanas = match key.kind {
            ChildKind::GrafanaFolder
            | ChildKind::GrafanaDatasource
            | ChildKind::GrafanaDashboard => self.objects(ChildKind::Grafana, None),
            _ => Vec::new(),
        };
        let prometheuses = match key.kind {
            ChildKind::PrometheusRule | ChildKind::ServiceMonitor => {
                self.objects(ChildKind::Prometheus, Some(&key.namespace))
            }
            _ => Vec::new(),
        };
        (grafanas, prometheuses)
    }

    /// The write of `patch` into the status of `key`; on failure, `key` is queued again after
    /// half a second.
    fn patch_status(&self, key: Key, patch: Value) -> StatusWrite {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &api_resource(key.kind));
        let cluster = self.cluster.clone();
        let requeue = self.requeue.clone();
        Box::pin(async move {
            let result = api
                .patch_status(
                    &key.name,
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Merge(json!({ "status": patch })),
                )
                .await;
            if let Err(err) = result {
                tracing::debug!(%cluster, kind = key.kind.as_str(), name = %key.name, %err, "simulator status write failed; retrying");
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = requeue.send(Work::Object(key));
                });
            }
        })
    }

    /// For `slow`: whether the object's generation was first seen less than `delay_ms` ago (then
    /// it schedules another look for when the delay is over).
    fn still_slow(&mut self, key: &Key, generation: i64, delay_ms: u64) -> bool {
        let since = *self
            .slow_since
            .entry((key.clone(), generation))
            .or_insert_with(Instant::now);
        let delay = Duration::from_millis(delay_ms);
        let elapsed = since.elapsed();
        if elapsed >= delay {
            return false;
        }
        let requeue = self.requeue.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay - elapsed).await;
            let _ = requeue.send(Work::Object(key));
        });
        true
    }
}

/// A pending status write.
type StatusWrite = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The outcome the scenario chooses for `key`, given the object's outcome annotation.
fn outcome_of(scenario: &Scenario, key: &Key, object: &Value) -> Outcome {
    let annotation = object
        .pointer(&format!(
            "/metadata/annotations/{}",
            OUTCOME_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    scenario.outcome_for(key.kind.as_str(), &key.namespace, &key.name, annotation)
}

/// Now in RFC 3339, to the second.
fn now_to_the_second() -> String {
    Timestamp::now()
        .round(Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
        .to_string()
}

/// The merge patch that turns `current` into `desired`: `desired`, with `null` for every
/// top-level field of `current` that `desired` lacks.
fn merge_patch(current: Option<&Value>, desired: Value) -> Value {
    let mut patch = desired;
    if let (Some(Value::Object(current)), Value::Object(patch)) = (current, &mut patch) {
        for gone in current
            .keys()
            .filter(|k| !patch.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
        {
            patch.insert(gone, Value::Null);
        }
    }
    patch
}

/// Chooses the simulated outcome of one child object (its outcome annotation), as a test does to
/// break or heal it.
pub async fn set_outcome_annotation(
    client: &Client,
    kind: ChildKind,
    namespace: &str,
    name: &str,
    outcome: Outcome,
) -> crate::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &api_resource(kind));
    let patch = json!({"metadata": {"annotations": {OUTCOME_ANNOTATION: outcome.as_str()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(crate::TestBedError::kube(format!(
            "annotate {} {namespace}/{name} with outcome {}",
            kind.as_str(),
            outcome.as_str()
        )))?;
    Ok(())
}

//! What the bench sees, through watches (never by polling): each object's value of interest and
//! the moment it last changed, as received by the bench's own watch.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt as _;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use stacksmith_api::CustomerStack;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One watched object.
#[derive(Clone, Debug)]
pub struct Seen<V> {
    /// The value extracted from its last version.
    pub value: V,
    /// When the value last changed (or the object appeared).
    pub since: Instant,
    /// When the object appeared.
    pub first_seen: Instant,
}

struct State<V> {
    objects: HashMap<String, Seen<V>>,
    /// Per namespace: how many objects have a counted value, and when the last one got it.
    counted: HashMap<String, (usize, Instant)>,
}

/// A watch over every object of a kind, keeping `extract(object)` per `namespace/name`.
pub struct WatchMap<V> {
    state: Arc<Mutex<State<V>>>,
    changed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl<V> Drop for WatchMap<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<V: Clone + PartialEq + Send + 'static> WatchMap<V> {
    /// Starts watching `api`; `counted` selects the values counted per namespace.
    pub fn start<K>(api: Api<K>, extract: fn(&K) -> V, counted: fn(&V) -> bool) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let state = Arc::new(Mutex::new(State {
            objects: HashMap::new(),
            counted: HashMap::new(),
        }));
        let (tx, changed) = watch::channel(0u64);
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let (object, deleted) = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                    Ok(watcher::Event::Delete(o)) => (o, true),
                    Ok(_) => continue,
                    Err(err) => {
                        tracing::debug!(%err, "bench watch");
                        continue;
                    }
                };
                let ns = object.namespace().unwrap_or_default();
                let key = format!("{ns}/{}", object.name_any());
                let Ok(mut state) = shared.lock() else {
                    return;
                };
                let was = state
                    .objects
                    .get(&key)
                    .is_some_and(|seen| counted(&seen.value));
                let is = if deleted {
                    state.objects.remove(&key);
                    false
                } else {
                    let value = extract(&object);
                    let now_counted = counted(&value);
                    match state.objects.get_mut(&key) {
                        Some(seen) if seen.value == value => {}
                        Some(seen) => {
                            seen.value = value;
                            seen.since = now;
                        }
                        None => {
                            let seen = Seen {
                                value,
                                since: now,
                                first_seen: now,
                            };
                            state.objects.insert(key, seen);
                        }
                    }
                    now_counted
                };
                if was != is {
                    let entry = state.counted.entry(ns).or_insert((0, now));
                    if is {
                        entry.0 += 1;
                        entry.1 = now;
                    } else {
                        entry.0 = entry.0.saturating_sub(1);
                    }
                }
                drop(state);
                tx.send_modify(|n| *n += 1);
            }
        });
        WatchMap {
            state,
            changed,
            task,
        }
    }

    /// Every object as last seen.
    pub fn all(&self) -> Vec<Seen<V>> {
        self.state
            .lock()
            .map(|s| s.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object's value as last seen, by `namespace/name`.
    pub fn all_values(&self) -> Vec<(String, V)> {
        self.state
            .lock()
            .map(|s| {
                s.objects
                    .iter()
                    .map(|(key, seen)| (key.clone(), seen.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of the object `key` (`namespace/name`) as last seen.
    pub fn get(&self, key: &str) -> Option<V> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.objects.get(key).map(|seen| seen.value.clone()))
    }

    /// Waits until the values of all objects (by `namespace/name`) satisfy `check`; returns when
    /// the bench saw it.
    pub async fn wait_all(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&HashMap<String, V>) -> bool,
    ) -> anyhow::Result<Instant> {
        self.wait(timeout, |s| {
            let values: HashMap<String, V> = s
                .objects
                .iter()
                .map(|(key, seen)| (key.clone(), seen.value.clone()))
                .collect();
            check(&values).then(Instant::now)
        })
        .await
        .map_err(|_| anyhow::anyhow!("{what} did not happen within {timeout:?}"))
    }

    /// How many objects of `namespace` have a counted value.
    pub fn count(&self, namespace: &str) -> usize {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.counted.get(namespace).map(|c| c.0))
            .unwrap_or(0)
    }

    /// Waits until `n` objects of `namespace` have a counted value; returns when the last one
    /// got it.
    pub async fn wait_count(
        &self,
        namespace: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        self.wait(timeout, |s| {
            s.counted.get(namespace).filter(|c| c.0 >= n).map(|c| c.1)
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "after {timeout:?}, {} of {n} objects in {namespace} were there",
                self.count(namespace)
            )
        })
    }

    /// Waits until the object `key` satisfies `check`; returns when its value last changed.
    pub async fn wait_object(
        &self,
        key: &str,
        timeout: Duration,
        check: impl Fn(&V) -> bool,
    ) -> anyhow::Result<Instant> {
        self.wait(timeout, |s| {
            s.objects
                .get(key)
                .filter(|seen| check(&seen.value))
                .map(|seen| seen.since)
        })
        .await
        .map_err(|_| anyhow::anyhow!("{key} did not get there within {timeout:?}"))
    }

    async fn wait(
        &self,
        timeout: Duration,
        check: impl Fn(&State<V>) -> Option<Instant>,
    ) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.clone();
        loop {
            changed.borrow_and_update();
            if let Some(at) = self.state.lock().ok().and_then(|s| check(&s)) {
                return Ok(at);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the watch ended"),
                Err(_) => bail!("timed out"),
            }
        }
    }
}

/// A stack's `Ready` condition at its current generation: `None` while the status is for an
/// older generation or has no `Ready`.
pub fn stack_ready(stack: &CustomerStack) -> Option<bool> {
    stack.ready_condition().map(|c| c.status == "True")
}

/// Counts stacks that are Ready.
pub fn is_ready(ready: &Option<bool>) -> bool {
    *ready == Some(true)
}

//! Which stacks a change in a member wakes: the owner of a changed child (from its labels),
//! every stack on a member whose state changed, and the owners of objects prometheus-operator
//! rejected; and which stacks hold a member's deletion.

use std::collections::BTreeMap;

use crate::reconcile::GuardedStack;
use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef, Store};
use stacksmith_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE};
use stacksmith_core::member_status::stacks_using;
use stacksmith_core::plan::ObjectKind;
use tokio::sync::{mpsc, watch};

use super::cached_object::ObjectCache;
use super::config_evidence::{self, regarded_kind};

/// Whether the hub's stack cache has had its first full list: a flag of our own, turned on by
/// the hub watch once the cache holds that list (see `operator::run_with`).
///
/// Not `Store::wait_until_ready`: kube keeps a store's readiness in a oneshot receiver, which
/// keeps one waker, that of the task that polled it last, and kube's controller waits on the hub
/// store's readiness before it starts any reconcile. Any other waiter (the readiness endpoint,
/// a `now_or_never` check, which leaves a waker that wakes nothing) may take that wake, and the
/// controller then starts only at the next event that happens to wake it (after a restart on a
/// quiet fleet, possibly long after). So kube's controller stays the only waiter of that
/// readiness, and everything else asks this flag.
#[derive(Clone, Debug)]
pub struct StacksListed(watch::Receiver<bool>);

impl StacksListed {
    /// A flag that is off until the returned sender says `true`.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, StacksListed(rx))
    }

    /// Whether the first list is in the cache (registers no waker).
    pub fn is_listed(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the first list is in the cache; every waiter is woken. `false` when the
    /// hub watch is gone without having listed.
    pub async fn wait(&self) -> bool {
        let mut listed = self.0.clone();
        listed.wait_for(|done| *done).await.is_ok()
    }
}

/// What the hub watch calls with each event once the reflector has applied it: the end of a
/// full list (`InitDone`) turns the flag on.
pub fn note_listed<K>(listed: &watch::Sender<bool>, event: &kube::runtime::watcher::Event<K>) {
    if matches!(event, kube::runtime::watcher::Event::InitDone) {
        listed.send_if_modified(|done| !std::mem::replace(done, true));
    }
}

/// A cache of one kind of the hub, fed by a watch (with backoff, managed fields dropped), and the
/// flag of its first full list: returns both and the events, each after the cache has applied
/// it. A watch error is logged as `what` and the watch goes on.
pub fn hub_cache<K>(
    api: kube::Api<K>,
    config: kube::runtime::watcher::Config,
    what: &'static str,
) -> (
    Store<K>,
    StacksListed,
    impl futures::Stream<Item = kube::runtime::watcher::Event<K>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt as _;
    use kube::runtime::WatchStreamExt as _;
    let (store, writer) = kube::runtime::reflector::store();
    let (listed_tx, listed) = StacksListed::new();
    let events = kube::runtime::watcher(api, config)
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .filter_map(move |event| {
            let event = match event {
                Ok(event) => {
                    note_listed(&listed_tx, &event);
                    Some(event)
                }
                Err(err) => {
                    tracing::warn!(%err, "{what}");
                    None
                }
            };
            std::future::ready(event)
        });
    (store, listed, events)
}

/// Wakes stacks: the hub's stack cache (to find the users of a member) and the controller's
/// trigger channel.
#[derive(Clone)]
pub struct Waker {
    stacks: Store<GuardedStack>,
    listed: StacksListed,
    wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
}

impl Waker {
    /// A waker that finds stacks in `stacks` (listed once `listed` says so) and wakes them
    /// through `wake`.
    pub fn new(
        stacks: Store<GuardedStack>,
        listed: StacksListed,
        wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
    ) -> Self {
        Waker {
            stacks,
            listed,
            wake,
        }
    }

    /// Wakes every stack that uses (or used) member `member`, and every stack being deleted
    /// (a stack that does not deserialize uses nothing).
    pub fn users_of(&self, member: &str) {
        for guarded in self.stacks.state() {
            let Ok(stack) = &guarded.0 else {
                continue;
            };
            let uses = stack.spec.metrics.cluster == member
                || stack.spec.dashboards.cluster == member
                || stack.status.as_ref().is_some_and(|s| {
                    s.children.iter().any(|c| c.cluster == member)
                        || s.inventory.iter().any(|e| e.cluster == member)
                })
                || stack.metadata.deletion_timestamp.is_some();
            if uses {
                let _ = self.wake.send(ObjectRef::from_obj(guarded.as_ref()));
            }
        }
    }

    /// The stacks that use member `member` and so hold its deletion, as sorted `namespace/name`
    /// (see [`stacks_using`]; a stack that does not deserialize is left out), from the hub's
    /// stack cache; `None` until that cache has been filled by its first list (an empty cache
    /// then says nothing about who uses the member).
    pub fn stacks_using(&self, member: &str) -> Option<Vec<String>> {
        if !self.listed.is_listed() {
            return None;
        }
        let stacks = self.stacks.state();
        Some(stacks_using(
            member,
            stacks.iter().filter_map(|g| g.0.as_ref().ok()),
        ))
    }

    /// Wakes the stacks that reported the object `kind namespace/name` on `member` as someone
    /// else's (a child listed in their status, or their root cause): its deletion may free them.
    /// No other stack is concerned by an object stacksmith does not manage going away.
    pub fn blocked_by(&self, member: &str, kind: &str, namespace: &str, name: &str) {
        let names = |cluster: &str, k: &str, ns: &str, n: &str| {
            cluster == member && k == kind && ns == namespace && n == name
        };
        for guarded in self.stacks.state() {
            let Ok(stack) = &guarded.0 else {
                continue;
            };
            let Some(status) = &stack.status else {
                continue;
            };
            let listed = status
                .children
                .iter()
                .any(|c| names(&c.cluster, &c.kind, &c.namespace, &c.name));
            let cause = status
                .root_cause
                .as_ref()
                .is_some_and(|c| names(&c.cluster, &c.kind, &c.namespace, &c.name));
            if listed || cause {
                let _ = self.wake.send(ObjectRef::from_obj(guarded.as_ref()));
            }
        }
    }

    /// Wakes the stack a child belongs to (from its labels); nothing for an object stacksmith
    /// does not manage.
    pub fn owner_of(&self, labels: &BTreeMap<String, String>) {
        if !is_managed(labels) {
            return;
        }
        if let (Some(ns), Some(name)) = (labels.get(STACK_NAMESPACE), labels.get(STACK_NAME)) {
            let _ = self.wake.send(ObjectRef::new(name).within(ns));
        }
    }

    /// What the rejection watch calls on a change: wakes the stack that owns each object whose
    /// rejections changed (an Event carries no stack labels: the object's cached labels say whose
    /// it is), and every stack on the member when the Events became readable or unreadable.
    pub fn for_rejections(
        &self,
        stores: &BTreeMap<ObjectKind, ObjectCache>,
        member: &str,
    ) -> impl Fn(config_evidence::Changed) + Send + 'static {
        let stores = stores.clone();
        let member = member.to_owned();
        let waker = self.clone();
        move |changed| {
            if changed.readability {
                waker.users_of(&member);
                return;
            }
            for regarded in &changed.regarded {
                let Some(kind) = regarded_kind(regarded) else {
                    continue;
                };
                let (_, namespace, name) = regarded;
                let object = stores
                    .get(&kind)
                    .and_then(|store| store.get(namespace, name));
                if let Some(object) = object {
                    waker.owner_of(&object.labels());
                }
            }
        }
    }
}

/// Whether stacksmith manages an object with `labels`.
pub fn is_managed(labels: &BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use stacksmith_api::labels::STACK_UID;
    use stacksmith_core::ChildKind;

    use super::*;
    use crate::member::cached_object::{CachedObject, WatchedObject};

    #[test]
    fn a_rejection_wakes_the_stack_of_the_regarded_object() {
        let rule = ObjectKind::Child(ChildKind::PrometheusRule);
        let cache = ObjectCache::default();
        let labelled: WatchedObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "acme-core", "namespace": "customer-acme", "resourceVersion": "1",
                "labels": {MANAGED_BY: MANAGED_BY_VALUE, STACK_NAMESPACE: "team-a",
                STACK_NAME: "acme", STACK_UID: "u1"}},
        }))
        .unwrap();
        cache.apply(&watcher::Event::Apply(labelled));
        let stores = BTreeMap::from([(rule, cache)]);
        let mut stacks = reflector::store::Writer::<GuardedStack>::default();
        let stack: GuardedStack = serde_json::from_value(serde_json::json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
            "metadata": {"name": "acme", "namespace": "team-a"},
            "spec": {"customer": "acme", "metrics": {"cluster": "prom-1"},
                     "dashboards": {"cluster": "graf-1", "instanceSelector": {}}},
        }))
        .unwrap();
        stacks.apply_watcher_event(&watcher::Event::Apply(stack));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let waker = Waker::new(stacks.as_reader(), StacksListed::new().1, tx)
            .for_rejections(&stores, "prom-1");
        let regarded =
            |kind: &str, name: &str| (kind.to_owned(), "customer-acme".to_owned(), name.to_owned());
        waker(config_evidence::Changed {
            regarded: vec![
                regarded("PrometheusRule", "acme-core"),
                regarded("PrometheusRule", "not-cached"),
                regarded("Alertmanager", "acme-core"),
            ],
            readability: false,
        });
        let woken = rx.try_recv().unwrap();
        assert_eq!(
            (woken.name.as_str(), woken.namespace.as_deref()),
            ("acme", Some("team-a"))
        );
        assert!(rx.try_recv().is_err(), "only the owner of a cached object");
        // The Events became readable or unreadable: every stack on the member.
        waker(config_evidence::Changed {
            regarded: Vec::new(),
            readability: true,
        });
        assert_eq!(rx.try_recv().unwrap().name, "acme");
    }

    #[test]
    fn a_deleted_foreign_object_wakes_only_the_stacks_it_blocked() {
        let mut stacks = reflector::store::Writer::<GuardedStack>::default();
        let stack = |name: &str, root_cause: serde_json::Value| -> GuardedStack {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": {"customer": name, "metrics": {"cluster": "prom-1"},
                         "dashboards": {"cluster": "graf-1", "instanceSelector": {}}},
                "status": {"rootCause": root_cause},
            }))
            .unwrap()
        };
        let blocked = stack(
            "acme",
            serde_json::json!({"reason": "Conflict", "cluster": "prom-1", "kind": "Namespace", "name": "customer-acme"}),
        );
        let unrelated = stack(
            "globex",
            serde_json::json!({"reason": "ChildProgressing", "cluster": "prom-1", "kind": "Prometheus", "namespace": "customer-globex", "name": "globex"}),
        );
        stacks.apply_watcher_event(&watcher::Event::Apply(blocked));
        stacks.apply_watcher_event(&watcher::Event::Apply(unrelated));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let waker = Waker::new(stacks.as_reader(), StacksListed::new().1, tx);
        waker.blocked_by("prom-1", "ConfigMap", "default", "kube-root-ca.crt");
        assert!(
            rx.try_recv().is_err(),
            "an unrelated deletion wakes no stack"
        );
        waker.blocked_by("graf-1", "Namespace", "", "customer-acme");
        assert!(
            rx.try_recv().is_err(),
            "the same name on another member is another object"
        );
        waker.blocked_by("prom-1", "Namespace", "", "customer-acme");
        assert_eq!(rx.try_recv().unwrap().name, "acme");
        assert!(rx.try_recv().is_err(), "only the stack it blocked");
    }

    #[test]
    fn an_unmanaged_object_wakes_no_stack() {
        let stacks = reflector::store::Writer::<GuardedStack>::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let waker = Waker::new(stacks.as_reader(), StacksListed::new().1, tx);
        let foreign: CachedObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "customer-acme", "labels": {
                STACK_NAMESPACE: "team-a", STACK_NAME: "acme"}},
        }))
        .unwrap();
        waker.owner_of(&foreign.labels());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_stacks_holding_a_member_come_from_the_cache_and_skip_unreadable_ones() {
        let mut stacks = reflector::store::Writer::<GuardedStack>::default();
        let stack = |name: &str, metrics: &str, inventory: serde_json::Value| -> GuardedStack {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": {"customer": name, "metrics": {"cluster": metrics},
                         "dashboards": {"cluster": "graf-1", "instanceSelector": {}}},
                "status": {"inventory": inventory},
            }))
            .unwrap()
        };
        let moved_away = serde_json::json!([{"cluster": "prom-1", "kind": "Namespace",
            "name": "customer-b", "uid": "u"}]);
        let unreadable: GuardedStack = serde_json::from_value(serde_json::json!({
            "apiVersion": "stacksmith.io/v1alpha1", "kind": "CustomerStack",
            "metadata": {"name": "broken", "namespace": "team-a"},
            "spec": {"customer": 7},
        }))
        .unwrap();
        assert!(unreadable.0.is_err());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (listed_tx, listed) = StacksListed::new();
        let waker = Waker::new(stacks.as_reader(), listed, tx);
        stacks.apply_watcher_event(&watcher::Event::Init);
        for guarded in [
            stack("a", "prom-1", serde_json::json!([])),
            stack("b", "prom-2", moved_away),
            stack("c", "prom-2", serde_json::json!([])),
            unreadable,
        ] {
            stacks.apply_watcher_event(&watcher::Event::InitApply(guarded));
        }
        assert_eq!(
            waker.stacks_using("prom-1"),
            None,
            "nothing is known before the first list is complete"
        );
        stacks.apply_watcher_event(&watcher::Event::InitDone);
        note_listed(&listed_tx, &watcher::Event::<GuardedStack>::InitDone);
        assert_eq!(
            waker.stacks_using("prom-1"),
            Some(vec!["team-a/a".to_owned(), "team-a/b".to_owned()])
        );
        assert_eq!(waker.stacks_using("prom-9"), Some(vec![]));
        // A stack with objects left on a member is woken when that member changes.
        waker.users_of("prom-1");
        let mut woken: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.name)
            .collect();
        woken.sort();
        assert_eq!(woken, ["a", "b"]);
    }

    /// Why [`StacksListed`] exists: kube's store readiness wakes only the task that polled it
    /// last, and a `now_or_never` poll leaves a waker that wakes nothing. kube's controller waits
    /// on that readiness before its first reconcile; a second waiter can leave it asleep. (If
    /// this test starts failing, kube wakes every waiter and the flag could go.)
    #[tokio::test]
    async fn kube_store_readiness_wakes_only_its_last_waiter() {
        let mut writer = reflector::store::Writer::<GuardedStack>::default();
        let store = writer.as_reader();
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(
            futures::FutureExt::now_or_never(store.wait_until_ready()).is_none(),
            "not ready yet"
        );
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let woken = tokio::time::timeout(std::time::Duration::from_millis(200), first).await;
        assert!(
            woken.is_err(),
            "the first waiter lost its wake to the later poll"
        );
    }

    #[tokio::test]
    async fn the_stacks_listed_flag_wakes_every_waiter_and_a_look_takes_no_wake() {
        let (tx, listed) = StacksListed::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let listed = listed.clone();
                tokio::spawn(async move { listed.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!listed.is_listed());
        note_listed(&tx, &watcher::Event::<GuardedStack>::Init);
        assert!(!listed.is_listed(), "a list that has only begun");
        note_listed(&tx, &watcher::Event::<GuardedStack>::InitDone);
        assert!(listed.is_listed());
        for waiter in waiters {
            let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
            assert!(matches!(woken, Ok(Ok(true))), "every waiter is woken");
        }
    }
}

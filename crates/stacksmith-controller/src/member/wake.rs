//! Which stacks a change in a member wakes: the owner of a changed child (from its labels),
//! every stack on a member whose state changed, and the owners of objects prometheus-operator
//! rejected; and which stacks hold a member's deletion.

use std::collections::BTreeMap;

use crate::reconcile::GuardedStack;
use futures::FutureExt as _;
use kube::ResourceExt as _;
use kube::runtime::reflector::{ObjectRef, Store};
use stacksmith_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, STACK_NAME, STACK_NAMESPACE};
use stacksmith_core::member_status::stacks_using;
use stacksmith_core::plan::ObjectKind;
use tokio::sync::mpsc;

use super::cached_object::CachedObject;
use super::config_evidence::{self, regarded_kind};
use crate::remote::api_resource;

/// Wakes stacks: the hub's stack cache (to find the users of a member) and the controller's
/// trigger channel.
#[derive(Clone)]
pub struct Waker {
    stacks: Store<GuardedStack>,
    wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
}

impl Waker {
    /// A waker that finds stacks in `stacks` and wakes them through `wake`.
    pub fn new(
        stacks: Store<GuardedStack>,
        wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
    ) -> Self {
        Waker { stacks, wake }
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
        self.stacks.wait_until_ready().now_or_never()?.ok()?;
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
    pub fn owner_of(&self, object: &CachedObject) {
        if !is_managed(object) {
            return;
        }
        let labels = object.labels();
        if let (Some(ns), Some(name)) = (labels.get(STACK_NAMESPACE), labels.get(STACK_NAME)) {
            let _ = self.wake.send(ObjectRef::new(name).within(ns));
        }
    }

    /// What the rejection watch calls on a change: wakes the stack that owns each object whose
    /// rejections changed (an Event carries no stack labels: the object's cached labels say whose
    /// it is), and every stack on the member when the Events became readable or unreadable.
    pub fn for_rejections(
        &self,
        stores: &BTreeMap<ObjectKind, Store<CachedObject>>,
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
                let object = stores.get(&kind).and_then(|store| {
                    store.get(&ObjectRef::new_with(name, api_resource(kind)).within(namespace))
                });
                if let Some(object) = object {
                    waker.owner_of(&object);
                }
            }
        }
    }
}

/// Whether stacksmith manages `object` (by its label).
pub fn is_managed(object: &CachedObject) -> bool {
    object.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use stacksmith_api::labels::STACK_UID;
    use stacksmith_core::ChildKind;

    use super::*;

    #[test]
    fn a_rejection_wakes_the_stack_of_the_regarded_object() {
        let rule = ObjectKind::Child(ChildKind::PrometheusRule);
        let mut writer = reflector::store::Writer::new(api_resource(rule));
        let labelled: CachedObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "acme-core", "namespace": "customer-acme", "labels": {
                MANAGED_BY: MANAGED_BY_VALUE, STACK_NAMESPACE: "team-a", STACK_NAME: "acme",
                STACK_UID: "u1"}},
        }))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(labelled));
        let stores = BTreeMap::from([(rule, writer.as_reader())]);
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
        let waker = Waker::new(stacks.as_reader(), tx).for_rejections(&stores, "prom-1");
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
        let waker = Waker::new(stacks.as_reader(), tx);
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
        let waker = Waker::new(stacks.as_reader(), tx);
        let foreign: CachedObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "customer-acme", "labels": {
                STACK_NAMESPACE: "team-a", STACK_NAME: "acme"}},
        }))
        .unwrap();
        waker.owner_of(&foreign);
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
        let waker = Waker::new(stacks.as_reader(), tx);
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
}

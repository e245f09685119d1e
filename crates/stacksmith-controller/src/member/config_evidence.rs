//! What a member shows about its `PrometheusRule`s and `ServiceMonitor`s when prometheus-operator
//! writes no status on them (its `StatusForConfigurationResources` feature gate is off by
//! default): the `Prometheus` objects and the namespace from the watch caches, and the
//! rejections the operator records as Events, from a watch of its own
//! ([`RejectionIndex`], fed by [`watch_rejections`]).
//!
//! The rejection watch (`events.k8s.io/v1` Events, field selector
//! `reason=InvalidConfiguration,type=Warning`, all namespaces) is evidence, not a lifeline: when
//! it fails (typically because the member's RBAC does not grant `list`/`watch` on
//! `events.events.k8s.io`) the member stays reachable, the failure is logged once, and the
//! verdicts are inferred without rejections (their messages say so). Each Event is kept as a
//! compact [`Rejection`], never as the object.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::Value;
use stacksmith_core::health::acceptance::REJECTION_REASON;
use stacksmith_core::plan::ObjectKind;
use stacksmith_core::{ChildKind, ConfigEvidence, Rejection};
use tokio::sync::watch;

use super::cached_object::ObjectCache;

/// The field selector of the rejection watch (both fields are selectable on `events.k8s.io/v1`
/// Events: they map to the core Event's `reason` and `type`).
pub fn rejection_field_selector() -> String {
    format!("reason={REJECTION_REASON},type=Warning")
}

/// The `ApiResource` of `events.k8s.io/v1` Events.
pub fn events_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
        "events",
    )
}

/// What the member shows about the configuration resources of one namespace (owned; lend it as
/// a [`ConfigEvidence`] with [`NamespaceEvidence::evidence`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceEvidence {
    /// The `Prometheus` objects of the namespace.
    pub prometheuses: Vec<Value>,
    /// The namespace's labels, when the namespace is known.
    pub namespace_labels: Option<Value>,
    /// The rejections recorded in the namespace; `None` when the Events cannot be read.
    pub rejections: Option<Vec<Rejection>>,
}

impl NamespaceEvidence {
    /// The evidence, borrowed.
    pub fn evidence(&self) -> ConfigEvidence<'_> {
        ConfigEvidence {
            prometheuses: &self.prometheuses,
            namespace_labels: self.namespace_labels.as_ref(),
            rejections: self.rejections.as_deref(),
        }
    }
}

/// Whether judging `object` needs the evidence of its cluster: a `PrometheusRule` or
/// `ServiceMonitor` on which prometheus-operator wrote no `status.bindings` (its
/// `StatusForConfigurationResources` feature gate is off). Other objects are judged from their
/// own status alone, and the evidence is not gathered for them.
pub fn needs_config_evidence(kind: ChildKind, object: &Value) -> bool {
    matches!(kind, ChildKind::PrometheusRule | ChildKind::ServiceMonitor)
        && object
            .pointer("/status/bindings")
            .is_none_or(Value::is_null)
}

/// A namespace's evidence from a member's watch caches (see [`super::MemberConnection`]).
pub fn from_caches(
    prometheuses: Option<&ObjectCache>,
    namespaces: Option<&ObjectCache>,
    rejections: Option<&RejectionIndex>,
    namespace: &str,
) -> NamespaceEvidence {
    let prometheuses = prometheuses
        .map(|store| {
            store
                .in_namespace(namespace)
                .iter()
                .map(|p| p.to_value())
                .collect()
        })
        .unwrap_or_default();
    let namespace_labels = namespaces
        .and_then(|store| store.get("", namespace))
        .map(|ns| serde_json::to_value(ns.labels()).unwrap_or(Value::Null));
    NamespaceEvidence {
        prometheuses,
        namespace_labels,
        rejections: rejections.and_then(|index| index.in_namespace(namespace)),
    }
}

/// The key of an Event: (namespace, name).
type EventKey = (String, String);

/// The regarded object of a rejection: (kind, namespace, name).
pub type Regarded = (String, String, String);

/// The rejections currently recorded on one member, kept in step with the rejection watch.
#[derive(Debug)]
pub struct RejectionIndex {
    state: RwLock<IndexState>,
    /// Becomes true once the first list completed or failed: until then the index knows nothing.
    settled: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct IndexState {
    /// The rejections, by Event.
    events: HashMap<EventKey, Rejection>,
    /// While a (re)list is under way: what it listed so far (replaces `events` when done).
    relisting: Option<HashMap<EventKey, Rejection>>,
    /// Whether the Events can be read: a list completed since the last refusal.
    readable: bool,
    /// A refusal was logged and nothing has been read since (so it is logged once).
    failing: bool,
}

/// What one step of the watch changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Objects whose rejections appeared, changed or went away.
    pub regarded: Vec<Regarded>,
    /// Whether the Events became readable or unreadable (every verdict's message changes).
    pub readability: bool,
}

impl Default for RejectionIndex {
    fn default() -> Self {
        Self {
            state: RwLock::new(IndexState::default()),
            settled: watch::channel(false).0,
        }
    }
}

impl RejectionIndex {
    /// The rejections recorded in `namespace`, sorted; `None` when the Events cannot be read.
    pub fn in_namespace(&self, namespace: &str) -> Option<Vec<Rejection>> {
        self.read(|state| {
            state.readable.then(|| {
                let mut found: Vec<Rejection> = state
                    .events
                    .values()
                    .filter(|r| r.namespace == namespace)
                    .cloned()
                    .collect();
                found.sort_by(|a, b| {
                    (&a.name, &a.resource_version, &a.reporter, &a.note).cmp(&(
                        &b.name,
                        &b.resource_version,
                        &b.reporter,
                        &b.note,
                    ))
                });
                found
            })
        })
    }

    /// Waits until the first list completed or failed, at most `timeout`; whether it did.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let mut settled = self.settled.subscribe();
        tokio::time::timeout(timeout, settled.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Follows one watch event; `rejection` is what the Event reads as (`None`: not a
    /// rejection). Returns what changed.
    pub fn apply(&self, event: watcher::Event<(EventKey, Option<Rejection>)>) -> Changed {
        let mut changed = Changed::default();
        let listed = matches!(event, watcher::Event::InitDone);
        self.write(|state| match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply((key, rejection)) => {
                if let (Some(relisting), Some(rejection)) = (state.relisting.as_mut(), rejection) {
                    relisting.insert(key, rejection);
                }
            }
            watcher::Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                let old = std::mem::replace(&mut state.events, listed);
                for (key, rejection) in &old {
                    if state.events.get(key) != Some(rejection) {
                        changed.regarded.push(regarded(rejection));
                    }
                }
                for (key, rejection) in &state.events {
                    if !old.contains_key(key) {
                        changed.regarded.push(regarded(rejection));
                    }
                }
                changed.readability = !state.readable;
                state.readable = true;
                state.failing = false;
            }
            watcher::Event::Apply((key, rejection)) => {
                let before = match rejection {
                    Some(rejection) => {
                        changed.regarded.push(regarded(&rejection));
                        state.events.insert(key, rejection)
                    }
                    None => state.events.remove(&key),
                };
                changed.regarded.extend(before.as_ref().map(regarded));
            }
            watcher::Event::Delete((key, _)) => {
                changed
                    .regarded
                    .extend(state.events.remove(&key).as_ref().map(regarded));
            }
        });
        changed.regarded.sort();
        changed.regarded.dedup();
        if listed {
            self.settled.send_replace(true);
        }
        changed
    }

    /// Follows a failure of the watch. `refused`: the API server refused the request (no
    /// permission, or the resource is not served), which makes the Events unreadable; returns
    /// whether to log it (the first refusal since the Events were last read). Any other failure
    /// (the member not answering, which its other watches report) keeps what is known until the
    /// watch lists again. Returns what changed too.
    pub fn fail(&self, refused: bool) -> (bool, Changed) {
        let (log, readability) = self.write(|state| {
            if !refused {
                return (false, false);
            }
            let log = !state.failing;
            state.failing = true;
            let readability = state.readable;
            state.readable = false;
            state.events.clear();
            state.relisting = None;
            (log, readability)
        });
        self.settled.send_replace(true);
        (
            log,
            Changed {
                regarded: Vec::new(),
                readability,
            },
        )
    }

    fn read<T>(&self, f: impl FnOnce(&IndexState) -> T) -> T {
        f(&crate::locks::read(&self.state))
    }

    fn write<T>(&self, f: impl FnOnce(&mut IndexState) -> T) -> T {
        f(&mut crate::locks::write(&self.state))
    }
}

fn regarded(rejection: &Rejection) -> Regarded {
    (
        rejection.kind.clone(),
        rejection.namespace.clone(),
        rejection.name.clone(),
    )
}

/// A watch event on Events as the index follows it: each Event as its key and the rejection
/// it records (if it does), never the object.
fn compact(event: watcher::Event<DynamicObject>) -> watcher::Event<(EventKey, Option<Rejection>)> {
    let read = |event: DynamicObject| {
        let key = (event.namespace().unwrap_or_default(), event.name_any());
        let rejection = serde_json::to_value(&event)
            .ok()
            .and_then(|value| Rejection::from_event(&value));
        (key, rejection)
    };
    match event {
        watcher::Event::Apply(e) => watcher::Event::Apply(read(e)),
        watcher::Event::Delete(e) => watcher::Event::Delete(read(e)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(e) => watcher::Event::InitApply(read(e)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Whether a watch failure is the API server refusing the request (401, 403, 404) rather than
/// the member not answering (which the other watches report).
fn is_refusal(err: &watcher::Error) -> bool {
    let code = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => return false,
    };
    matches!(code, 401 | 403 | 404)
}

/// How long a rejection watch the API server refused waits before it asks again: permissions
/// rarely change, and a refused request every few seconds would be noise on the member (and
/// in the operator's request counts).
pub const REFUSED_RETRY: Duration = Duration::from_secs(300);

/// Watches the rejection Events of a member into `index` until dropped, calling `on_change`
/// with what changed. Never touches the member's reachability: other failures are retried with
/// the usual backoff, a refusal every [`REFUSED_RETRY`].
pub async fn watch_rejections(
    client: Client,
    index: Arc<RejectionIndex>,
    member: String,
    on_change: impl Fn(Changed),
) {
    let api: Api<DynamicObject> = Api::all_with(client, &events_resource());
    let config = watcher::Config::default().fields(&rejection_field_selector());
    loop {
        let stream =
            watcher(api.clone(), config.clone()).backoff(super::connection::member_watch_backoff());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let (changed, refused) = match event {
                Ok(event) => {
                    let was_failing = index.read(|s| s.failing);
                    let changed = index.apply(compact(event));
                    if was_failing && !index.read(|s| s.failing) {
                        tracing::info!(member = %member, "reading prometheus-operator's rejection Events again");
                    }
                    (changed, false)
                }
                Err(err) => {
                    let refused = is_refusal(&err);
                    let (log, changed) = index.fail(refused);
                    let error = crate::remote::classify_watch_error(&err);
                    if !refused {
                        tracing::debug!(member = %member, %error, "watching rejection Events");
                    } else if log {
                        tracing::warn!(
                            member = %member,
                            %error,
                            "cannot watch prometheus-operator's rejection Events (events.k8s.io/v1, \
                             reason=InvalidConfiguration); PrometheusRules and ServiceMonitors \
                             without status are judged without them (grant list and watch on \
                             events.events.k8s.io to the member identity)"
                        );
                    }
                    (changed, refused)
                }
            };
            on_change(changed);
            if refused {
                break;
            }
        }
        tokio::time::sleep(REFUSED_RETRY).await;
    }
}

/// The child kind a rejection is about, if it is one stacksmith creates.
pub fn regarded_kind(regarded: &Regarded) -> Option<ObjectKind> {
    ChildKind::from_kind(&regarded.0)
        .filter(|k| matches!(k, ChildKind::PrometheusRule | ChildKind::ServiceMonitor))
        .map(ObjectKind::Child)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(name: &str, regarding: &str, resource_version: &str, reason: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "customer-acme"},
            "type": "Warning", "reason": reason,
            "regarding": {"kind": "PrometheusRule", "namespace": "customer-acme", "name": regarding,
                          "uid": format!("{regarding}-uid"), "resourceVersion": resource_version},
            "related": {"kind": "Prometheus", "namespace": "customer-acme", "name": "acme"},
            "note": format!("PrometheusRule {regarding} was rejected due to invalid configuration: bad"),
        }))
        .unwrap()
    }

    fn step(index: &RejectionIndex, event: watcher::Event<DynamicObject>) -> Changed {
        index.apply(compact(event))
    }

    fn rule(name: &str) -> Regarded {
        ("PrometheusRule".into(), "customer-acme".into(), name.into())
    }

    #[test]
    fn the_index_follows_the_watch() {
        let index = RejectionIndex::default();
        assert_eq!(index.in_namespace("customer-acme"), None, "not listed yet");
        step(&index, watcher::Event::Init);
        step(
            &index,
            watcher::Event::InitApply(event("e1", "core", "7", "InvalidConfiguration")),
        );
        step(
            &index,
            watcher::Event::InitApply(event("e2", "other", "3", "SomethingElse")),
        );
        let listed = step(&index, watcher::Event::InitDone);
        assert_eq!(
            listed,
            Changed {
                regarded: vec![rule("core")],
                readability: true
            }
        );
        let found = index.in_namespace("customer-acme").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].resource_version.as_deref(), Some("7"));
        assert_eq!(index.in_namespace("customer-globex"), Some(Vec::new()));

        // A new version rejected: a new Event.
        let applied = step(
            &index,
            watcher::Event::Apply(event("e3", "core", "8", "InvalidConfiguration")),
        );
        assert_eq!(applied.regarded, vec![rule("core")]);
        assert_eq!(index.in_namespace("customer-acme").unwrap().len(), 2);
        // The old one expires.
        let deleted = step(
            &index,
            watcher::Event::Delete(event("e1", "core", "7", "InvalidConfiguration")),
        );
        assert_eq!(deleted.regarded, vec![rule("core")]);
        assert_eq!(index.in_namespace("customer-acme").unwrap().len(), 1);
        // An Event deleted while the watch was down is gone after the relist.
        step(&index, watcher::Event::Init);
        let relisted = step(&index, watcher::Event::InitDone);
        assert_eq!(
            relisted,
            Changed {
                regarded: vec![rule("core")],
                readability: false
            }
        );
        assert_eq!(index.in_namespace("customer-acme"), Some(Vec::new()));
    }

    #[test]
    fn a_refused_watch_makes_the_events_unreadable_and_is_logged_once() {
        let index = RejectionIndex::default();
        step(&index, watcher::Event::Init);
        step(
            &index,
            watcher::Event::InitApply(event("e1", "core", "7", "InvalidConfiguration")),
        );
        step(&index, watcher::Event::InitDone);
        // A dropped connection keeps what is known (the member's other watches report it).
        let (log, changed) = index.fail(false);
        assert!(!log);
        assert!(!changed.readability);
        assert_eq!(
            index.in_namespace("customer-acme").map(|r| r.len()),
            Some(1)
        );
        // A refusal forgets it: the verdicts no longer claim to have checked rejections.
        let (log, changed) = index.fail(true);
        assert!(log);
        assert!(changed.readability);
        assert_eq!(index.in_namespace("customer-acme"), None);
        let (log, changed) = index.fail(true);
        assert!(!log, "one log line per refusal episode");
        assert!(!changed.readability);
        // Readable again after a successful list; the next failure is logged again.
        step(&index, watcher::Event::Init);
        assert!(step(&index, watcher::Event::InitDone).readability);
        assert_eq!(index.in_namespace("customer-acme"), Some(Vec::new()));
        assert!(index.fail(true).0);
    }

    #[tokio::test]
    async fn settles_on_the_first_list_or_failure() {
        let index = RejectionIndex::default();
        assert!(!index.wait_settled(Duration::from_millis(10)).await);
        index.fail(true);
        assert!(index.wait_settled(Duration::from_millis(10)).await);
        let listed = RejectionIndex::default();
        step(&listed, watcher::Event::Init);
        step(&listed, watcher::Event::InitDone);
        assert!(listed.wait_settled(Duration::from_millis(10)).await);
    }

    fn store(objects: &[Value]) -> ObjectCache {
        let cache = ObjectCache::default();
        for object in objects {
            let object: crate::member::cached_object::WatchedObject =
                serde_json::from_value(object.clone()).unwrap();
            cache.apply(&watcher::Event::Apply(object));
        }
        cache
    }

    #[test]
    fn a_rule_is_judged_from_the_caches() {
        let prometheus = |namespace: &str| {
            json!({
                "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                "metadata": {"name": "acme", "namespace": namespace, "generation": 2},
                "spec": {"ruleSelector": {"matchLabels": {"stacksmith.io/customer": "acme"}},
                         "ruleNamespaceSelector": {"matchLabels": {"tenant": "acme"}}},
                "status": {"conditions": [{"type": "Reconciled", "status": "True", "observedGeneration": 2}]},
            })
        };
        let prometheuses = store(&[prometheus("customer-acme"), prometheus("customer-globex")]);
        let namespaces = store(&[json!({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": "customer-acme", "labels": {"tenant": "acme"}}})]);
        let index = RejectionIndex::default();
        step(&index, watcher::Event::Init);
        step(&index, watcher::Event::InitDone);
        let found = from_caches(
            Some(&prometheuses),
            Some(&namespaces),
            Some(&index),
            "customer-acme",
        );
        assert_eq!(found.prometheuses.len(), 1);
        assert_eq!(found.namespace_labels, Some(json!({"tenant": "acme"})));
        assert_eq!(found.rejections, Some(Vec::new()));
        let rule = json!({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "core", "namespace": "customer-acme", "uid": "core-uid",
                         "resourceVersion": "7", "labels": {"stacksmith.io/customer": "acme"}},
            "spec": {"groups": []},
        });
        assert!(needs_config_evidence(ChildKind::PrometheusRule, &rule));
        let health = stacksmith_core::assess_with_evidence(
            ChildKind::PrometheusRule,
            &rule,
            &found.evidence(),
        );
        assert_eq!(
            health.reason,
            stacksmith_core::HealthReason::AcceptanceInferred,
            "{}",
            health.message
        );
        // The rejection of this version arrives.
        step(
            &index,
            watcher::Event::Apply(event("e1", "core", "7", "InvalidConfiguration")),
        );
        let found = from_caches(
            Some(&prometheuses),
            Some(&namespaces),
            Some(&index),
            "customer-acme",
        );
        let health = stacksmith_core::assess_with_evidence(
            ChildKind::PrometheusRule,
            &rule,
            &found.evidence(),
        );
        assert_eq!(
            health.reason,
            stacksmith_core::HealthReason::RejectedByOperator,
            "{}",
            health.message
        );
        // Without the namespace in the cache its labels are unknown: the namespace selector
        // cannot be matched, and no Prometheus counts as selecting the rule.
        let unknown = from_caches(Some(&prometheuses), None, None, "customer-acme");
        assert_eq!((unknown.namespace_labels, unknown.rejections), (None, None));
    }

    #[test]
    fn only_rules_and_monitors_without_bindings_need_evidence() {
        let with = |status: Value| json!({"metadata": {"name": "x"}, "status": status});
        assert!(needs_config_evidence(
            ChildKind::ServiceMonitor,
            &with(json!({}))
        ));
        assert!(needs_config_evidence(
            ChildKind::ServiceMonitor,
            &with(json!({"bindings": null}))
        ));
        assert!(!needs_config_evidence(
            ChildKind::ServiceMonitor,
            &with(json!({"bindings": []}))
        ));
        assert!(!needs_config_evidence(
            ChildKind::Prometheus,
            &with(json!({}))
        ));
    }

    #[test]
    fn the_field_selector_names_the_rejection() {
        assert_eq!(
            rejection_field_selector(),
            "reason=InvalidConfiguration,type=Warning"
        );
        assert_eq!(events_resource().api_version, "events.k8s.io/v1");
        assert_eq!(
            regarded_kind(&rule("core")),
            Some(ObjectKind::Child(ChildKind::PrometheusRule))
        );
        assert_eq!(
            regarded_kind(&("Alertmanager".into(), "x".into(), "y".into())),
            None
        );
    }
}

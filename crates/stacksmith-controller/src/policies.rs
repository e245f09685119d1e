//! The hub's `TenantPolicy` objects: a watched cache the reconcile checks each stack against
//! ([`stacksmith_core::policy`]), and the watch that wakes the stacks a policy change concerns:
//! those of every customer the policy names before or after the change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use stacksmith_api::{CustomerStack, TenantPolicy, TenantPolicySpec};
use stacksmith_core::plan::SpecProblem;
use stacksmith_core::policy::{NamedPolicy, PolicyMode, check_stack, customers_concerned};
use tokio::sync::mpsc;

use crate::leases::ShardHolding;
use crate::member::wake::{StacksListed, hub_cache};
use crate::reconcile::GuardedStack;

/// A `TenantPolicy` as the hub watch holds it: one that does not deserialize is kept as an
/// `InvalidObject` (reported, and governing nothing), so it cannot stop the watch.
pub type GuardedPolicy = DeserializeGuard<TenantPolicy>;

/// The policy cache and the mode, shared by the reconciles.
#[derive(Clone)]
pub struct Policies {
    mode: PolicyMode,
    store: Store<GuardedPolicy>,
    /// Whether the cache holds its first full list (a flag of our own: see [`StacksListed`]).
    listed: StacksListed,
}

/// Why a stack cannot be checked against the policies yet.
#[derive(Debug, thiserror::Error)]
#[error("the hub's TenantPolicies are not listed yet (is the TenantPolicy CRD installed?)")]
pub struct PoliciesNotListed;

impl Policies {
    /// Checks `stack` against the cached policies, waiting (at most `cap`) for their first list:
    /// a stack is never judged against a cache that is not filled yet.
    pub async fn check(
        &self,
        stack: &CustomerStack,
        hub_namespace: &str,
        cap: Duration,
    ) -> Result<Result<(), Vec<SpecProblem>>, PoliciesNotListed> {
        if !self.listed.is_listed() {
            let listed = tokio::time::timeout(cap, self.listed.wait()).await;
            if !matches!(listed, Ok(true)) {
                return Err(PoliciesNotListed);
            }
        }
        let cached = self.store.state();
        let named: Vec<NamedPolicy<'_>> = cached
            .iter()
            .filter_map(|guarded| {
                let policy = guarded.0.as_ref().ok()?;
                Some(NamedPolicy {
                    name: policy.metadata.name.as_deref().unwrap_or_default(),
                    spec: &policy.spec,
                })
            })
            .collect();
        Ok(check_stack(&stack.spec, hub_namespace, &named, self.mode))
    }
}

/// Starts the watch of the hub's `TenantPolicy` objects: returns the cache and the task that
/// feeds it and wakes, through `wake`, the stacks (found in `stacks`) of the customers each
/// change concerns. An object that does not deserialize is reported once through `recorder`, by
/// the leader (`shards`).
pub fn watch_policies(
    hub: Client,
    mode: PolicyMode,
    stacks: Store<GuardedStack>,
    wake: mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
    recorder: kube::runtime::events::Recorder,
    shards: ShardHolding,
) -> (Policies, tokio::task::JoinHandle<()>) {
    let (store, listed, events) = hub_cache(
        Api::<GuardedPolicy>::all(hub),
        watcher::Config::default(),
        "watching TenantPolicies",
    );
    let mut changes = PolicyChanges::default();
    let recorder = Arc::new(recorder);
    let task = tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            for invalid in changes.invalid(&event) {
                // Reported by the leader only: one Event, not one per replica.
                if shards.is_leader() {
                    crate::invalid_object::report(&recorder, "TenantPolicy", &invalid).await;
                }
            }
            let customers = changes.apply(&event);
            if !customers.is_empty() {
                wake_customers(&stacks, &wake, &customers);
            }
        }
    });
    let policies = Policies {
        mode,
        store,
        listed,
    };
    (policies, task)
}

/// Wakes every stack (that deserialized) of one of `customers`.
fn wake_customers(
    stacks: &Store<GuardedStack>,
    wake: &mpsc::UnboundedSender<ObjectRef<GuardedStack>>,
    customers: &BTreeSet<String>,
) {
    for guarded in stacks.state() {
        if let Ok(stack) = &guarded.0
            && customers.contains(&stack.spec.customer)
        {
            let _ = wake.send(ObjectRef::from_obj(guarded.as_ref()));
        }
    }
}

/// What the policy watch remembers to tell what a change concerns: each policy's last spec
/// (`None` for one that does not deserialize), and, during a re-list, what it has listed so far.
#[derive(Default)]
struct PolicyChanges {
    known: BTreeMap<String, Option<TenantPolicySpec>>,
    relisting: Option<BTreeMap<String, Option<TenantPolicySpec>>>,
    /// Whether a first list was seen: the stacks are all reconciled at start anyway.
    listed_once: bool,
}

impl PolicyChanges {
    /// The customers whose stacks `event` concerns.
    fn apply(&mut self, event: &watcher::Event<GuardedPolicy>) -> BTreeSet<String> {
        match event {
            watcher::Event::Apply(guarded) => {
                let name = guarded.name_any();
                let after = spec_of(guarded);
                let before = self.known.insert(name, after.clone()).flatten();
                customers_concerned(before.as_ref(), after.as_ref())
            }
            watcher::Event::Delete(guarded) => {
                let before = self.known.remove(&guarded.name_any()).flatten();
                customers_concerned(before.as_ref(), None)
            }
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                BTreeSet::new()
            }
            watcher::Event::InitApply(guarded) => {
                if let Some(relisting) = self.relisting.as_mut() {
                    relisting.insert(guarded.name_any(), spec_of(guarded));
                }
                BTreeSet::new()
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let before = std::mem::replace(&mut self.known, listed);
                if !std::mem::replace(&mut self.listed_once, true) {
                    return BTreeSet::new();
                }
                let names: BTreeSet<&String> = before.keys().chain(self.known.keys()).collect();
                names
                    .into_iter()
                    .flat_map(|name| {
                        let old = before.get(name).cloned().flatten();
                        let new = self.known.get(name).cloned().flatten();
                        customers_concerned(old.as_ref(), new.as_ref())
                    })
                    .collect()
            }
        }
    }

    /// The objects of `event` that do not deserialize (the recorder folds a repeated Event
    /// into one).
    fn invalid(
        &self,
        event: &watcher::Event<GuardedPolicy>,
    ) -> Vec<kube::core::error_boundary::InvalidObject> {
        match event {
            watcher::Event::Apply(guarded) | watcher::Event::InitApply(guarded) => {
                match &guarded.0 {
                    Err(invalid) => vec![invalid.clone()],
                    Ok(_) => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }
}

fn spec_of(guarded: &GuardedPolicy) -> Option<TenantPolicySpec> {
    guarded.0.as_ref().ok().map(|policy| policy.spec.clone())
}

/// A cache that is already listed, holding `policies` (for tests without a hub).
#[cfg(test)]
pub fn listed_with(policies: Vec<TenantPolicy>, mode: PolicyMode) -> Policies {
    let (store, mut writer) = kube::runtime::reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for policy in policies {
        writer.apply_watcher_event(&watcher::Event::InitApply(DeserializeGuard(Ok(policy))));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let (listed_tx, listed) = StacksListed::new();
    // The receiver keeps the last value once the sender is gone.
    let _ = listed_tx.send(true);
    Policies {
        mode,
        store,
        listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, yaml: &str) -> GuardedPolicy {
        let spec: TenantPolicySpec = serde_yaml::from_str(yaml).unwrap();
        DeserializeGuard(Ok(TenantPolicy::new(name, spec)))
    }

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    #[test]
    fn a_change_wakes_the_customers_named_before_and_after() {
        let mut changes = PolicyChanges::default();
        let gold = policy("gold", "customers: [acme]\nhubNamespaces: [team-a]\n");
        assert!(changes.apply(&watcher::Event::Init).is_empty());
        assert!(
            changes
                .apply(&watcher::Event::InitApply(gold.clone()))
                .is_empty()
        );
        assert!(
            changes.apply(&watcher::Event::InitDone).is_empty(),
            "the first list wakes nothing: every stack is reconciled at start"
        );
        assert!(
            changes
                .apply(&watcher::Event::Apply(gold.clone()))
                .is_empty(),
            "an unchanged spec wakes nothing"
        );
        let moved = policy("gold", "customers: [globex]\nhubNamespaces: [team-a]\n");
        assert_eq!(
            names(changes.apply(&watcher::Event::Apply(moved.clone()))),
            ["acme", "globex"]
        );
        let other = policy("silver", "customers: [initech]\nhubNamespaces: [team-i]\n");
        assert_eq!(
            names(changes.apply(&watcher::Event::Apply(other.clone()))),
            ["initech"]
        );
        assert_eq!(
            names(changes.apply(&watcher::Event::Delete(moved))),
            ["globex"]
        );
        // A re-list after a disconnection: silver changed meanwhile, gold came back.
        let silver = policy(
            "silver",
            "customers: [initech, hooli]\nhubNamespaces: [team-i]\n",
        );
        changes.apply(&watcher::Event::Init);
        changes.apply(&watcher::Event::InitApply(silver));
        changes.apply(&watcher::Event::InitApply(gold));
        assert_eq!(
            names(changes.apply(&watcher::Event::InitDone)),
            ["acme", "hooli", "initech"]
        );
    }

    #[tokio::test]
    async fn a_listed_cache_checks_the_stack_against_its_policies() {
        let stack: CustomerStack = serde_yaml::from_str(
            r#"
apiVersion: stacksmith.io/v1alpha1
kind: CustomerStack
metadata: {name: acme, namespace: team-a}
spec:
  customer: acme
  metrics: {cluster: prom}
  dashboards: {cluster: graf, dedicatedGrafana: {version: 12.1.0}}
"#,
        )
        .unwrap();
        let spec: TenantPolicySpec =
            serde_yaml::from_str("customers: [acme]\nhubNamespaces: [team-a]\n").unwrap();
        let policies = listed_with(vec![TenantPolicy::new("gold", spec)], PolicyMode::Required);
        let problems = policies
            .check(&stack, "team-a", Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(problems[0].field, "spec.dashboards.dedicatedGrafana");
        let none = listed_with(Vec::new(), PolicyMode::Optional);
        assert!(
            none.check(&stack, "team-a", Duration::from_secs(1))
                .await
                .unwrap()
                .is_ok()
        );
    }
}

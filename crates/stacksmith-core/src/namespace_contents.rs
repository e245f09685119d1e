//! Whether a tenant namespace may be deleted: **a namespace is never deleted with someone else's
//! things inside.** Before deleting `customer-<id>`, stacksmith lists every namespaced kind in
//! it (metadata only) and this module decides, without any I/O, what the listing proves.
//!
//! Each object found stands in one of four ways ([`Standing`]):
//!
//! - **inventoried**: its uid is in the stack's inventory (stacksmith wrote it);
//! - **Kubernetes' own**: something Kubernetes keeps in every namespace or derives from another
//!   object in it ([`kubernetes_own`] says which, and why each);
//! - **goes with its owners**: it has owner references and the garbage collector deletes it
//!   with them — every owner is namespaced (so it is in this namespace and judged itself, or
//!   already gone, in which case the collector deletes the dependent anyway) or is this very
//!   namespace. An owner that is cluster-scoped (and not this namespace), or whose kind the
//!   API server no longer serves, would outlive the namespace: such a dependent is foreign;
//! - **foreign**: anything else — someone else's thing, which keeps the namespace.
//!
//! The verdict ([`NamespaceContents`]) is `OnlyOurs` only when every object found stands as one
//! of the first three **and** every kind could be listed. A foreign object wins over a kind that
//! could not be listed: it is a proof, not a lack of one. Either keeps the namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How many objects (or unlisted kinds) a verdict names; the rest are counted.
pub const NAMED_AT_MOST: usize = 5;

/// The ServiceAccount the service-account controller creates (and re-creates) in every
/// namespace.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The ConfigMap kube-controller-manager's root CA publisher writes into every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// API groups whose "objects" are computed views of other objects (metrics of pods and nodes),
/// not things stored in the namespace: nothing is lost with the namespace, and their pods are
/// listed themselves.
const DERIVED_VIEW_GROUPS: &[&str] = &[
    "metrics.k8s.io",
    "custom.metrics.k8s.io",
    "external.metrics.k8s.io",
];

/// A resource an API server serves, as API discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedResource {
    /// Its API group (`""` for the core group).
    pub group: String,
    /// Its kind.
    pub kind: String,
    /// Its plural (a subresource's contains a `/`, e.g. `pods/log`).
    pub plural: String,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// The verbs it supports.
    pub verbs: Vec<String>,
}

/// Whether proving a namespace empty needs a list of this resource: namespaced, listable, not
/// a subresource, not a kind whose every object is Kubernetes' own (Events), not a derived view.
pub fn must_be_listed(resource: &ServedResource) -> bool {
    resource.namespaced
        && !resource.plural.contains('/')
        && resource.verbs.iter().any(|verb| verb == "list")
        && !is_event(&resource.group, &resource.kind)
        && !is_derived_view(&resource.group)
}

/// Whether the API group's "objects" are computed views of other objects (`metrics.k8s.io`
/// and the custom and external metrics APIs).
pub fn is_derived_view(group: &str) -> bool {
    DERIVED_VIEW_GROUPS.contains(&group)
}

/// The group of an `apiVersion` (`v1` → `""`, `apps/v1` → `apps`).
pub fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or("", |(group, _version)| group)
}

/// Which kinds are namespaced, by group and kind: how an owner reference's scope is told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedKinds {
    namespaced: BTreeMap<(String, String), bool>,
}

impl ServedKinds {
    /// The kinds of everything discovery found (any version; a kind's scope does not change
    /// between versions).
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a ServedResource>) -> Self {
        let namespaced = resources
            .into_iter()
            .filter(|resource| !resource.plural.contains('/'))
            .map(|resource| {
                (
                    (resource.group.clone(), resource.kind.clone()),
                    resource.namespaced,
                )
            })
            .collect();
        ServedKinds { namespaced }
    }

    /// The scope of an owner reference's kind (`api_version` as in the reference).
    pub fn scope_of(&self, api_version: &str, kind: &str) -> OwnerScope {
        match self
            .namespaced
            .get(&(group_of(api_version).to_owned(), kind.to_owned()))
        {
            Some(true) => OwnerScope::Namespaced,
            Some(false) => OwnerScope::ClusterScoped,
            None => OwnerScope::NotServed,
        }
    }
}

/// How an owner's kind is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerScope {
    /// A namespaced kind: the owner is in the same namespace (or gone).
    Namespaced,
    /// A cluster-scoped kind: the owner lives outside every namespace.
    ClusterScoped,
    /// The API server does not serve the kind (any more): the garbage collector cannot resolve
    /// the owner, and leaves the dependent alone.
    NotServed,
}

/// One `metadata.ownerReferences` entry of a listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// How its kind is served.
    pub scope: OwnerScope,
}

/// One object found in the namespace, as a metadata-only list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    /// Its API group (`""` for the core group).
    pub group: String,
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid`.
    pub uid: String,
    /// Its owner references (empty when it has none).
    pub owners: Vec<Owner>,
}

impl ListedObject {
    /// `<Kind> <name>`, how a verdict names it.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// A kind (or a whole group version) whose objects could not be listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlisted {
    /// What could not be listed, e.g. `ConfigMap`.
    pub what: String,
    /// Why, in one line without credentials, e.g. `403 Forbidden`.
    pub reason: String,
}

/// What listing a namespace found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceListing {
    /// The namespace.
    pub namespace: String,
    /// Every object found, of every kind that could be listed.
    pub objects: Vec<ListedObject>,
    /// The kinds that could not be listed (or not completely).
    pub unlisted: Vec<Unlisted>,
}

/// Why an object found in a namespace may, or may not, go with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Its uid is in the stack's inventory.
    Inventoried,
    /// Kubernetes keeps it in every namespace or derives it from another object there.
    KubernetesOwn,
    /// The garbage collector deletes it with its owners, which go with the namespace.
    GoesWithOwners,
    /// Someone else's: keeps the namespace. Holds how a verdict names it.
    Foreign(String),
}

/// Whether every object of this kind is Kubernetes' record about other objects: Events (core
/// and `events.k8s.io`, the same objects served twice) expire on their own (one hour by
/// default) and describe, they do not configure.
fn is_event(group: &str, kind: &str) -> bool {
    kind == "Event" && (group.is_empty() || group == "events.k8s.io")
}

/// Whether Kubernetes itself keeps this object in the namespace:
///
/// - **ServiceAccount `default`**: created, and re-created when deleted, by the service-account
///   controller in every namespace;
/// - **ConfigMap `kube-root-ca.crt`**: written by the root CA publisher into every namespace;
/// - **Events** (core and `events.k8s.io`): records about other objects, which expire;
/// - **Endpoints of a Service in the namespace**: the endpoints controller keeps one per Service,
///   of the Service's name (without owner references); the Service is judged itself. Endpoints
///   without such a Service were written by someone: foreign.
///
/// Not Kubernetes' own, on purpose: EndpointSlices (the EndpointSlice controllers set owner
/// references to their Service, so they go with it; one without owners was written by hand),
/// Leases (Kubernetes keeps them only in `kube-node-lease` and `kube-system`; one in a tenant
/// namespace is some workload's leader election), ResourceQuotas and LimitRanges (set by
/// administrators or policy engines), Secrets of type `kubernetes.io/service-account-token`
/// (not made automatically since Kubernetes 1.24), and anything else.
pub fn kubernetes_own(object: &ListedObject, service_names: &BTreeSet<&str>) -> bool {
    if is_event(&object.group, &object.kind) {
        return true;
    }
    if !object.group.is_empty() {
        return false;
    }
    match object.kind.as_str() {
        "ServiceAccount" => object.name == DEFAULT_SERVICE_ACCOUNT,
        "ConfigMap" => object.name == ROOT_CA_CONFIG_MAP,
        "Endpoints" => service_names.contains(object.name.as_str()),
        _ => false,
    }
}

/// How one object stands (see the module's documentation). `service_names` are the core
/// Services found in the same namespace.
pub fn standing(
    object: &ListedObject,
    namespace: &str,
    inventory_uids: &BTreeSet<String>,
    service_names: &BTreeSet<&str>,
) -> Standing {
    if !object.uid.is_empty() && inventory_uids.contains(&object.uid) {
        return Standing::Inventoried;
    }
    if kubernetes_own(object, service_names) {
        return Standing::KubernetesOwn;
    }
    if object.owners.is_empty() {
        return Standing::Foreign(object.describe());
    }
    // The collector deletes a dependent only once every owner is gone: one owner that
    // outlives the namespace keeps the dependent alive, so the namespace must not take it.
    let outliving = object.owners.iter().find(|owner| match owner.scope {
        OwnerScope::Namespaced => false,
        OwnerScope::ClusterScoped => !(owner.kind == "Namespace" && owner.name == namespace),
        OwnerScope::NotServed => true,
    });
    match outliving {
        None => Standing::GoesWithOwners,
        Some(owner) => Standing::Foreign(format!(
            "{} (owned by {} {})",
            object.describe(),
            owner.kind,
            owner.name
        )),
    }
}

/// The first few items of a list and how many more there are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortList {
    /// At most [`NAMED_AT_MOST`] items, sorted.
    pub named: Vec<String>,
    /// How many more there are.
    pub more: usize,
}

impl ShortList {
    /// The first [`NAMED_AT_MOST`] of `items` (sorted) and a count of the rest.
    pub fn of(mut items: Vec<String>) -> Self {
        items.sort();
        let more = items.len().saturating_sub(NAMED_AT_MOST);
        items.truncate(NAMED_AT_MOST);
        ShortList { named: items, more }
    }

    /// How many items there are in all.
    pub fn total(&self) -> usize {
        self.named.len() + self.more
    }
}

impl fmt::Display for ShortList {
    /// `a, b, c and 4 more`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.named.join(", "))?;
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        Ok(())
    }
}

/// What a tenant namespace holds, as far as stacksmith can prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceContents {
    /// Only inventoried objects, Kubernetes' own and dependents that go with them: it may be
    /// deleted.
    OnlyOurs,
    /// Someone else's objects (`<Kind> <name>`, the first few and a count): keep it.
    HoldsOthers(ShortList),
    /// Some kinds could not be listed (`<Kind> (<reason>)`), so emptiness cannot be proven:
    /// keep it.
    Unknown(ShortList),
}

impl NamespaceContents {
    /// Whether the namespace may be deleted.
    pub fn may_delete(&self) -> bool {
        matches!(self, NamespaceContents::OnlyOurs)
    }
}

impl fmt::Display for NamespaceContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceContents::OnlyOurs => {
                f.write_str("holds nothing but stacksmith's objects and Kubernetes' own")
            }
            NamespaceContents::HoldsOthers(objects) => {
                write!(f, "holds objects that are not stacksmith's: {objects}")
            }
            NamespaceContents::Unknown(kinds) => write!(
                f,
                "cannot be proven to hold only stacksmith's objects: could not list {kinds}"
            ),
        }
    }
}

/// Decides what `listing` proves about its namespace, given the uids of the stack's inventory.
pub fn decide_contents(
    listing: &NamespaceListing,
    inventory_uids: &BTreeSet<String>,
) -> NamespaceContents {
    let service_names: BTreeSet<&str> = listing
        .objects
        .iter()
        .filter(|object| object.group.is_empty() && object.kind == "Service")
        .map(|object| object.name.as_str())
        .collect();
    let foreign: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|object| {
            match standing(object, &listing.namespace, inventory_uids, &service_names) {
                Standing::Foreign(description) => Some(description),
                Standing::Inventoried | Standing::KubernetesOwn | Standing::GoesWithOwners => None,
            }
        })
        .collect();
    if !foreign.is_empty() {
        return NamespaceContents::HoldsOthers(ShortList::of(foreign));
    }
    if !listing.unlisted.is_empty() {
        let kinds = listing
            .unlisted
            .iter()
            .map(|unlisted| format!("{} ({})", unlisted.what, unlisted.reason))
            .collect();
        return NamespaceContents::Unknown(ShortList::of(kinds));
    }
    NamespaceContents::OnlyOurs
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMESPACE: &str = "customer-acme";

    fn object(group: &str, kind: &str, name: &str, uid: &str) -> ListedObject {
        ListedObject {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            owners: vec![],
        }
    }

    fn owned_by(mut object: ListedObject, owners: &[(&str, &str, OwnerScope)]) -> ListedObject {
        object.owners = owners
            .iter()
            .map(|(kind, name, scope)| Owner {
                kind: (*kind).into(),
                name: (*name).into(),
                scope: *scope,
            })
            .collect();
        object
    }

    fn unlisted(what: &str, reason: &str) -> Unlisted {
        Unlisted {
            what: what.into(),
            reason: reason.into(),
        }
    }

    fn uids(uids: &[&str]) -> BTreeSet<String> {
        uids.iter().map(|uid| (*uid).to_owned()).collect()
    }

    fn listing(objects: Vec<ListedObject>, unlisted: Vec<Unlisted>) -> NamespaceListing {
        NamespaceListing {
            namespace: NAMESPACE.into(),
            objects,
            unlisted,
        }
    }

    /// What prometheus-operator and Kubernetes leave in a tenant namespace next to
    /// stacksmith's Prometheus (uid `p`) and its ServiceAccount (uid `sa`).
    fn a_tenant_namespace() -> Vec<ListedObject> {
        use OwnerScope::Namespaced;
        vec![
            object("monitoring.coreos.com", "Prometheus", "acme", "p"),
            object("", "ServiceAccount", "acme-prometheus", "sa"),
            object("", "ServiceAccount", "default", "k1"),
            object("", "ConfigMap", "kube-root-ca.crt", "k2"),
            owned_by(
                object("apps", "StatefulSet", "prometheus-acme", "o1"),
                &[("Prometheus", "acme", Namespaced)],
            ),
            owned_by(
                object("", "Secret", "prometheus-acme", "o2"),
                &[("Prometheus", "acme", Namespaced)],
            ),
            owned_by(
                object("", "Pod", "prometheus-acme-0", "o3"),
                &[("StatefulSet", "prometheus-acme", Namespaced)],
            ),
            owned_by(
                object("", "Service", "prometheus-operated", "o4"),
                &[("Prometheus", "acme", Namespaced)],
            ),
            object("", "Endpoints", "prometheus-operated", "k3"),
            owned_by(
                object(
                    "discovery.k8s.io",
                    "EndpointSlice",
                    "prometheus-operated-x7",
                    "o5",
                ),
                &[("Service", "prometheus-operated", Namespaced)],
            ),
            object("", "Event", "acme.1", "k4"),
            object("events.k8s.io", "Event", "acme.2", "k5"),
        ]
    }

    #[test]
    fn verdicts_for_each_case() {
        use NamespaceContents::{HoldsOthers, OnlyOurs, Unknown};
        let with = |extra: Vec<ListedObject>| {
            let mut objects = a_tenant_namespace();
            objects.extend(extra);
            objects
        };
        let cases: Vec<(&str, NamespaceListing, NamespaceContents)> = vec![
            ("an empty namespace", listing(vec![], vec![]), OnlyOurs),
            (
                "a tenant namespace as stacksmith and its operators leave it",
                listing(a_tenant_namespace(), vec![]),
                OnlyOurs,
            ),
            (
                "someone's ConfigMap",
                listing(
                    with(vec![object("", "ConfigMap", "team-config", "x1")]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["ConfigMap team-config".into()])),
            ),
            (
                "a Secret owned by an inventoried object goes with it",
                listing(
                    with(vec![owned_by(
                        object("", "Secret", "token", "o9"),
                        &[("ServiceAccount", "acme-prometheus", OwnerScope::Namespaced)],
                    )]),
                    vec![],
                ),
                OnlyOurs,
            ),
            (
                "a kind that could not be listed",
                listing(
                    a_tenant_namespace(),
                    vec![unlisted("ConfigMap", "403 Forbidden")],
                ),
                Unknown(ShortList::of(vec!["ConfigMap (403 Forbidden)".into()])),
            ),
            (
                "a foreign object is named even when a kind could not be listed",
                listing(
                    with(vec![object("", "Secret", "db-password", "x2")]),
                    vec![unlisted("ConfigMap", "403 Forbidden")],
                ),
                HoldsOthers(ShortList::of(vec!["Secret db-password".into()])),
            ),
            (
                "Endpoints without their Service were written by someone",
                listing(
                    with(vec![object("", "Endpoints", "external-db", "x3")]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["Endpoints external-db".into()])),
            ),
            (
                "an EndpointSlice without owners was written by someone",
                listing(
                    with(vec![object(
                        "discovery.k8s.io",
                        "EndpointSlice",
                        "manual",
                        "x4",
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["EndpointSlice manual".into()])),
            ),
            (
                "a Lease is some workload's, not Kubernetes'",
                listing(
                    with(vec![object("coordination.k8s.io", "Lease", "leader", "x5")]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["Lease leader".into()])),
            ),
            (
                "a ServiceAccount other than default is someone's",
                listing(
                    with(vec![object("", "ServiceAccount", "ci-bot", "x6")]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["ServiceAccount ci-bot".into()])),
            ),
            (
                "kube-root-ca.crt is Kubernetes' only as a ConfigMap",
                listing(
                    with(vec![object("", "Secret", "kube-root-ca.crt", "x7")]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["Secret kube-root-ca.crt".into()])),
            ),
            (
                "an object with the name of an inventoried one but another uid",
                listing(
                    with(vec![object(
                        "monitoring.coreos.com",
                        "Prometheus",
                        "acme",
                        "recreated",
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec!["Prometheus acme".into()])),
            ),
            (
                "an owner of a cluster-scoped kind outlives the namespace",
                listing(
                    with(vec![owned_by(
                        object("", "Secret", "tls", "x8"),
                        &[("ClusterIssuer", "letsencrypt", OwnerScope::ClusterScoped)],
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec![
                    "Secret tls (owned by ClusterIssuer letsencrypt)".into(),
                ])),
            ),
            (
                "an object owned by this very namespace goes with it",
                listing(
                    with(vec![owned_by(
                        object("", "ConfigMap", "marker", "o10"),
                        &[("Namespace", NAMESPACE, OwnerScope::ClusterScoped)],
                    )]),
                    vec![],
                ),
                OnlyOurs,
            ),
            (
                "an object owned by another namespace outlives this one",
                listing(
                    with(vec![owned_by(
                        object("", "ConfigMap", "marker", "x9"),
                        &[("Namespace", "team-a", OwnerScope::ClusterScoped)],
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec![
                    "ConfigMap marker (owned by Namespace team-a)".into(),
                ])),
            ),
            (
                "an owner whose kind is no longer served is not collected",
                listing(
                    with(vec![owned_by(
                        object("", "ConfigMap", "state", "x10"),
                        &[("Widget", "w", OwnerScope::NotServed)],
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec![
                    "ConfigMap state (owned by Widget w)".into(),
                ])),
            ),
            (
                "one outliving owner among several keeps the dependent",
                listing(
                    with(vec![owned_by(
                        object("", "ConfigMap", "shared", "x11"),
                        &[
                            ("Prometheus", "acme", OwnerScope::Namespaced),
                            ("ClusterThing", "t", OwnerScope::ClusterScoped),
                        ],
                    )]),
                    vec![],
                ),
                HoldsOthers(ShortList::of(vec![
                    "ConfigMap shared (owned by ClusterThing t)".into(),
                ])),
            ),
            (
                "a namespaced owner already gone: the collector deletes the dependent anyway",
                listing(
                    vec![owned_by(
                        object("apps", "StatefulSet", "prometheus-acme", "o1"),
                        &[("Prometheus", "acme", OwnerScope::Namespaced)],
                    )],
                    vec![],
                ),
                OnlyOurs,
            ),
        ];
        let inventory = uids(&["p", "sa"]);
        for (name, listing, expected) in cases {
            assert_eq!(decide_contents(&listing, &inventory), expected, "{name}");
        }
    }

    #[test]
    fn many_foreign_objects_are_named_sorted_and_counted() {
        let objects = (0..8)
            .rev()
            .map(|i| object("", "ConfigMap", &format!("cm-{i}"), &format!("x{i}")))
            .collect();
        let contents = decide_contents(&listing(objects, vec![]), &uids(&[]));
        let NamespaceContents::HoldsOthers(foreign) = &contents else {
            panic!("{contents:?}");
        };
        assert_eq!(foreign.total(), 8);
        assert_eq!(
            contents.to_string(),
            "holds objects that are not stacksmith's: ConfigMap cm-0, ConfigMap cm-1, \
             ConfigMap cm-2, ConfigMap cm-3, ConfigMap cm-4 and 3 more"
        );
        assert!(!contents.may_delete());
    }

    #[test]
    fn unlisted_kinds_are_named_with_their_reason() {
        let contents = decide_contents(
            &listing(
                vec![],
                vec![
                    unlisted("Secret", "403 Forbidden"),
                    unlisted("ConfigMap", "403 Forbidden"),
                ],
            ),
            &uids(&[]),
        );
        assert_eq!(
            contents.to_string(),
            "cannot be proven to hold only stacksmith's objects: could not list \
             ConfigMap (403 Forbidden), Secret (403 Forbidden)"
        );
        assert!(!contents.may_delete());
        assert!(NamespaceContents::OnlyOurs.may_delete());
    }

    #[test]
    fn an_empty_uid_is_never_inventoried() {
        let nameless = object("", "ConfigMap", "x", "");
        let standing = standing(&nameless, NAMESPACE, &uids(&[""]), &BTreeSet::new());
        assert_eq!(standing, Standing::Foreign("ConfigMap x".into()));
    }

    #[test]
    fn which_resources_are_listed() {
        let resource = |group: &str, kind: &str, plural: &str, namespaced: bool, verbs: &[&str]| {
            ServedResource {
                group: group.into(),
                kind: kind.into(),
                plural: plural.into(),
                namespaced,
                verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
            }
        };
        let all = ["get", "list", "watch", "create", "delete"];
        let cases = [
            (
                "a namespaced kind",
                resource("", "ConfigMap", "configmaps", true, &all),
                true,
            ),
            (
                "a custom kind",
                resource(
                    "monitoring.coreos.com",
                    "Prometheus",
                    "prometheuses",
                    true,
                    &all,
                ),
                true,
            ),
            (
                "a cluster-scoped kind",
                resource("", "Namespace", "namespaces", false, &all),
                false,
            ),
            (
                "a subresource",
                resource("", "Pod", "pods/log", true, &["get"]),
                false,
            ),
            (
                "a kind that cannot be listed",
                resource(
                    "authorization.k8s.io",
                    "LocalSubjectAccessReview",
                    "localsubjectaccessreviews",
                    true,
                    &["create"],
                ),
                false,
            ),
            (
                "core Events",
                resource("", "Event", "events", true, &all),
                false,
            ),
            (
                "events.k8s.io Events",
                resource("events.k8s.io", "Event", "events", true, &all),
                false,
            ),
            (
                "an Event kind of another group",
                resource("example.com", "Event", "events", true, &all),
                true,
            ),
            (
                "pod metrics, a view of pods",
                resource(
                    "metrics.k8s.io",
                    "PodMetrics",
                    "pods",
                    true,
                    &["get", "list"],
                ),
                false,
            ),
        ];
        for (name, resource, expected) in cases {
            assert_eq!(must_be_listed(&resource), expected, "{name}");
        }
    }

    #[test]
    fn owner_scopes_come_from_discovery() {
        let resource = |group: &str, kind: &str, plural: &str, namespaced: bool| ServedResource {
            group: group.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            verbs: vec!["list".into()],
        };
        let served = [
            resource("", "ServiceAccount", "serviceaccounts", true),
            resource("", "Namespace", "namespaces", false),
            resource("apps", "StatefulSet", "statefulsets", true),
            resource("apps", "StatefulSet", "statefulsets/scale", false),
        ];
        let kinds = ServedKinds::new(&served);
        let cases = [
            (
                "core namespaced",
                "v1",
                "ServiceAccount",
                OwnerScope::Namespaced,
            ),
            (
                "core cluster-scoped",
                "v1",
                "Namespace",
                OwnerScope::ClusterScoped,
            ),
            (
                "a group, any version",
                "apps/v1beta2",
                "StatefulSet",
                OwnerScope::Namespaced,
            ),
            (
                "a kind not served",
                "example.com/v1",
                "Widget",
                OwnerScope::NotServed,
            ),
            (
                "a kind of another group",
                "example.com/v1",
                "StatefulSet",
                OwnerScope::NotServed,
            ),
        ];
        for (name, api_version, kind, expected) in cases {
            assert_eq!(kinds.scope_of(api_version, kind), expected, "{name}");
        }
        assert_eq!(group_of("v1"), "");
        assert_eq!(
            group_of("monitoring.coreos.com/v1"),
            "monitoring.coreos.com"
        );
    }
}

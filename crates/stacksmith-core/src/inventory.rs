//! The inventory: every object stacksmith wrote for a stack, per member cluster, with the uid the
//! member gave it. It is the evidence behind every delete: an object is deleted only while it is
//! in the inventory and its uid still matches (the delete carries the uid as a precondition).
//! Kept in `status.inventory`, so it survives restarts, reconnects and relists.
//!
//! Pure: what to delete, in which order, and whether a changed spec moves the stack.

use std::collections::{BTreeMap, BTreeSet};

use stacksmith_api::InventoryEntry;

use crate::health::ChildKind;
use crate::plan::{DesiredObject, ObjectKind, SpecProblem, StackPlan};

/// Where an object is: member cluster, kind, namespace (empty for a Namespace), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The `MemberCluster` it was written through.
    pub cluster: String,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace (empty for a Namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectKey {
    /// Where a planned object goes.
    pub fn of(desired: &DesiredObject) -> Self {
        ObjectKey {
            cluster: desired.cluster.clone(),
            kind: desired.kind,
            namespace: desired.namespace.clone(),
            name: desired.name.clone(),
        }
    }

    /// The namespace the object lives in, or that it is (for a Namespace).
    pub fn placement(&self) -> (&str, &str) {
        match self.kind {
            ObjectKind::Namespace => (&self.cluster, &self.name),
            _ => (&self.cluster, &self.namespace),
        }
    }
}

/// One inventoried object: where it is and its uid in the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoriedObject {
    /// Where it is.
    pub key: ObjectKey,
    /// Its `metadata.uid` in the member cluster.
    pub uid: String,
}

/// What stacksmith wrote for one stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    objects: BTreeMap<ObjectKey, String>,
}

impl Inventory {
    /// The inventory recorded in a status. Entries of a kind this version does not know are
    /// dropped (they are never deleted by it either).
    pub fn from_entries(entries: &[InventoryEntry]) -> Self {
        let objects = entries
            .iter()
            .filter_map(|entry| {
                let kind = ObjectKind::ALL
                    .into_iter()
                    .find(|kind| kind.kind() == entry.kind)?;
                let key = ObjectKey {
                    cluster: entry.cluster.clone(),
                    kind,
                    namespace: entry.namespace.clone(),
                    name: entry.name.clone(),
                };
                Some((key, entry.uid.clone()))
            })
            .collect();
        Inventory { objects }
    }

    /// The entries as the status records them, in a stable order.
    pub fn entries(&self) -> Vec<InventoryEntry> {
        self.objects
            .iter()
            .map(|(key, uid)| InventoryEntry {
                cluster: key.cluster.clone(),
                kind: key.kind.kind().to_owned(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                uid: uid.clone(),
            })
            .collect()
    }

    /// The uid recorded for an object, if it is inventoried.
    pub fn uid(&self, key: &ObjectKey) -> Option<&str> {
        self.objects.get(key).map(String::as_str)
    }

    /// Records (or updates) the uid of an object stacksmith wrote.
    pub fn record(&mut self, key: ObjectKey, uid: String) {
        self.objects.insert(key, uid);
    }

    /// Forgets an object (it is gone, or is no longer the one stacksmith wrote).
    pub fn forget(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    /// The member-side uids of every inventoried object.
    pub fn uids(&self) -> BTreeSet<String> {
        self.objects.values().cloned().collect()
    }

    /// Whether nothing is inventoried.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// How many objects are inventoried.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Every inventoried object in delete order: children first, then the RBAC, the namespaces
    /// last.
    pub fn in_delete_order(&self) -> Vec<InventoriedObject> {
        self.select(|_| true)
    }

    /// The inventoried objects the plan no longer holds, in delete order.
    pub fn unplanned(&self, plan: &StackPlan) -> Vec<InventoriedObject> {
        self.select(|key| !plan.holds(&key.cluster, key.kind, &key.namespace, &key.name))
    }

    /// Whether an inventoried object other than the namespace itself still lives in namespace
    /// `namespace` of `cluster` (the namespace is deleted only after them).
    pub fn holds_inside(&self, cluster: &str, namespace: &str) -> bool {
        self.objects.keys().any(|key| {
            key.kind != ObjectKind::Namespace
                && key.cluster == cluster
                && key.namespace == namespace
        })
    }

    /// Whether an inventoried object is a discovery RoleBinding: a RoleBinding outside every
    /// namespace that holds the stack's Prometheus ServiceAccount (so in a namespace a scrape
    /// target listed, not in a tenant namespace).
    pub fn is_discovery_binding(&self, key: &ObjectKey) -> bool {
        key.kind == ObjectKind::RoleBinding
            && !self.objects.keys().any(|other| {
                other.kind == ObjectKind::ServiceAccount
                    && other.cluster == key.cluster
                    && other.namespace == key.namespace
            })
    }

    fn select(&self, keep: impl Fn(&ObjectKey) -> bool) -> Vec<InventoriedObject> {
        let mut selected: Vec<InventoriedObject> = self
            .objects
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, uid)| InventoriedObject {
                key: key.clone(),
                uid: uid.clone(),
            })
            .collect();
        selected.sort_by(|a, b| {
            b.key
                .kind
                .cmp(&a.key.kind)
                .then_with(|| a.key.cluster.cmp(&b.key.cluster))
                .then_with(|| a.key.namespace.cmp(&b.key.namespace))
                .then_with(|| a.key.name.cmp(&b.key.name))
        });
        selected
    }
}

/// The inventoried objects a changed spec leaves behind in a cluster or namespace the plan no
/// longer uses: the stack has moved. Objects merely dropped from the plan (a removed rule group)
/// are not a move.
///
/// Neither is a namespace dropped from a scrape target: the discovery RoleBindings
/// ([`Inventory::is_discovery_binding`]) live in namespaces that are not the stack's, so theirs
/// never counts as a place the stack left. An unplanned one moves with the stack only when the
/// stack moves out of something on its cluster (the old Prometheus keeps discovering until the
/// new one is Ready); they come last, after the objects that show the move.
pub fn moved_objects(inventory: &Inventory, plan: &StackPlan) -> Vec<InventoriedObject> {
    let placements: Vec<(&str, &str)> = plan
        .objects
        .iter()
        .map(|o| match o.kind {
            ObjectKind::Namespace => (o.cluster.as_str(), o.name.as_str()),
            _ => (o.cluster.as_str(), o.namespace.as_str()),
        })
        .collect();
    let (discovery, owned): (Vec<_>, Vec<_>) = inventory
        .unplanned(plan)
        .into_iter()
        .partition(|object| inventory.is_discovery_binding(&object.key));
    let mut moved: Vec<InventoriedObject> = owned
        .into_iter()
        .filter(|object| !placements.contains(&object.key.placement()))
        .collect();
    let left: BTreeSet<String> = moved.iter().map(|o| o.key.cluster.clone()).collect();
    moved.extend(
        discovery
            .into_iter()
            .filter(|object| left.contains(&object.key.cluster)),
    );
    moved
}

/// Whether objects of `kind` go wherever a tenant namespace goes, whichever side of the stack
/// it is on: the Namespace itself and its quota. They name no spec field of their own.
fn follows_its_namespace(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Namespace | ObjectKind::ResourceQuota | ObjectKind::LimitRange
    )
}

/// The spec field whose change moved `moved` objects (see [`moved_objects`]), as a problem that
/// refuses the move: `spec.metrics.cluster` or `spec.customer` for the Prometheus side,
/// `spec.dashboards.cluster`, `spec.dashboards.namespace` or `spec.customer` for the Grafana
/// side. `dashboards_namespace_set`: whether `spec.dashboards.namespace` is set (otherwise the
/// Grafana objects follow the customer's tenant namespace).
pub fn refused_move(
    moved: &[InventoriedObject],
    plan: &StackPlan,
    dashboards_namespace_set: bool,
    allow_move_annotation: &str,
) -> Option<SpecProblem> {
    let planned_placement = |kind: ChildKind| {
        plan.objects
            .iter()
            .find(|o| o.kind == ObjectKind::Child(kind))
            .map(|o| (o.cluster.as_str(), o.namespace.as_str()))
    };
    let prometheus = planned_placement(ChildKind::Prometheus);
    let grafana = planned_placement(ChildKind::GrafanaFolder);
    let field_of = |object: &InventoriedObject| -> Option<&'static str> {
        let (cluster, namespace) = object.key.placement();
        let grafana_side = matches!(
            object.key.kind,
            ObjectKind::Child(
                ChildKind::GrafanaFolder
                    | ChildKind::GrafanaDatasource
                    | ChildKind::GrafanaDashboard
                    | ChildKind::Grafana
            )
        );
        if follows_its_namespace(object.key.kind) {
            return None;
        }
        if grafana_side {
            let (planned_cluster, _) = grafana?;
            Some(if cluster != planned_cluster {
                "spec.dashboards.cluster"
            } else if dashboards_namespace_set {
                "spec.dashboards.namespace"
            } else {
                "spec.customer"
            })
        } else {
            let (planned_cluster, _) = prometheus?;
            let _ = namespace;
            Some(if cluster != planned_cluster {
                "spec.metrics.cluster"
            } else {
                "spec.customer"
            })
        }
    };
    let first = moved.iter().find(|o| !follows_its_namespace(o.key.kind));
    let field = first.and_then(field_of).unwrap_or("spec");
    let object = first.or_else(|| moved.first())?;
    let (cluster, namespace) = object.key.placement();
    Some(SpecProblem {
        field: field.to_owned(),
        message: format!(
            "changing {field} moves the stack's objects out of namespace {namespace} of \
             cluster {cluster}; to move them, add the annotation {allow_move_annotation}: \"true\" \
             (the new objects are written first, the old ones deleted once the new children are \
             Healthy)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(cluster: &str, kind: ObjectKind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            cluster: cluster.into(),
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn planned(key: &ObjectKey) -> DesiredObject {
        DesiredObject {
            cluster: key.cluster.clone(),
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            manifest: json!({}),
        }
    }

    fn prometheus_side(cluster: &str, namespace: &str) -> Vec<ObjectKey> {
        vec![
            key(cluster, ObjectKind::Namespace, "", namespace),
            key(
                cluster,
                ObjectKind::ServiceAccount,
                namespace,
                "prometheus-acme",
            ),
            key(
                cluster,
                ObjectKind::Child(ChildKind::Prometheus),
                namespace,
                "acme",
            ),
            key(
                cluster,
                ObjectKind::Child(ChildKind::PrometheusRule),
                namespace,
                "acme-core",
            ),
        ]
    }

    fn grafana_side(cluster: &str, namespace: &str) -> Vec<ObjectKey> {
        vec![
            key(
                cluster,
                ObjectKind::Child(ChildKind::GrafanaFolder),
                namespace,
                "acme",
            ),
            key(
                cluster,
                ObjectKind::Child(ChildKind::GrafanaDatasource),
                namespace,
                "acme-prometheus",
            ),
        ]
    }

    fn inventory_of(keys: &[ObjectKey]) -> Inventory {
        let mut inventory = Inventory::default();
        for (i, key) in keys.iter().enumerate() {
            inventory.record(key.clone(), format!("uid-{i}"));
        }
        inventory
    }

    fn plan_of(keys: &[ObjectKey]) -> StackPlan {
        StackPlan {
            objects: keys.iter().map(planned).collect(),
            ..StackPlan::default()
        }
    }

    #[test]
    fn the_inventory_round_trips_through_the_status() {
        let keys = prometheus_side("prom-1", "customer-acme");
        let inventory = inventory_of(&keys);
        let entries = inventory.entries();
        assert_eq!(entries.len(), 4);
        assert_eq!(Inventory::from_entries(&entries), inventory);
        let mut unknown = entries.clone();
        unknown.push(InventoryEntry {
            cluster: "prom-1".into(),
            kind: "Alertmanager".into(),
            namespace: "customer-acme".into(),
            name: "x".into(),
            uid: "u".into(),
        });
        assert_eq!(Inventory::from_entries(&unknown), inventory);
    }

    #[test]
    fn children_are_deleted_before_the_rbac_and_namespaces_last() {
        let inventory = inventory_of(&prometheus_side("prom-1", "customer-acme"));
        let order: Vec<&str> = inventory
            .in_delete_order()
            .iter()
            .map(|o| o.key.kind.kind())
            .collect();
        assert_eq!(
            order,
            [
                "PrometheusRule",
                "Prometheus",
                "ServiceAccount",
                "Namespace"
            ]
        );
        assert!(inventory.holds_inside("prom-1", "customer-acme"));
        assert!(!inventory.holds_inside("prom-1", "customer-other"));
    }

    #[test]
    fn only_what_the_plan_dropped_is_unplanned() {
        let keys = prometheus_side("prom-1", "customer-acme");
        let inventory = inventory_of(&keys);
        let plan = plan_of(&keys[..3]);
        let unplanned = inventory.unplanned(&plan);
        assert_eq!(unplanned.len(), 1);
        assert_eq!(unplanned[0].key.name, "acme-core");
        assert_eq!(unplanned[0].uid, "uid-3");
        assert!(
            moved_objects(&inventory, &plan).is_empty(),
            "a dropped rule is not a move"
        );
    }

    #[test]
    fn a_tenant_quota_goes_just_before_its_namespace_and_is_pruned_not_moved() {
        let quota = |cluster: &str| {
            [ObjectKind::ResourceQuota, ObjectKind::LimitRange]
                .map(|kind| key(cluster, kind, "customer-acme", "stacksmith-tenant"))
        };
        let mut keys = prometheus_side("prom-1", "customer-acme");
        keys.extend(quota("prom-1"));
        let inventory = inventory_of(&keys);
        let order: Vec<&str> = inventory
            .in_delete_order()
            .iter()
            .map(|o| o.key.kind.kind())
            .collect();
        assert_eq!(
            order,
            [
                "PrometheusRule",
                "Prometheus",
                "ServiceAccount",
                "LimitRange",
                "ResourceQuota",
                "Namespace"
            ]
        );
        // The MemberCluster's tenantQuota removed: both pruned, the stack has not moved.
        let plan = plan_of(&prometheus_side("prom-1", "customer-acme"));
        let unplanned: Vec<&str> = inventory
            .unplanned(&plan)
            .iter()
            .map(|o| o.key.kind.kind())
            .collect();
        assert_eq!(unplanned, ["LimitRange", "ResourceQuota"]);
        assert!(moved_objects(&inventory, &plan).is_empty());

        // The Grafana side moved to another cluster, quota and all: the field is the Grafana
        // side's, whichever object comes first.
        let mut keys = prometheus_side("prom-1", "customer-acme");
        keys.push(key("graf-1", ObjectKind::Namespace, "", "customer-acme"));
        keys.extend(quota("graf-1"));
        keys.extend(grafana_side("graf-1", "customer-acme"));
        let inventory = inventory_of(&keys);
        let mut after = prometheus_side("prom-1", "customer-acme");
        after.push(key("graf-2", ObjectKind::Namespace, "", "customer-acme"));
        after.extend(grafana_side("graf-2", "customer-acme"));
        let plan = plan_of(&after);
        let moved = moved_objects(&inventory, &plan);
        assert_eq!(moved.len(), 5);
        let problem = refused_move(&moved, &plan, false, "a").unwrap();
        assert_eq!(problem.field, "spec.dashboards.cluster");
        let only_quota: Vec<InventoriedObject> = moved
            .into_iter()
            .filter(|o| o.key.kind != ObjectKind::Child(ChildKind::GrafanaFolder))
            .filter(|o| o.key.kind != ObjectKind::Child(ChildKind::GrafanaDatasource))
            .collect();
        let problem = refused_move(&only_quota, &plan, false, "a").unwrap();
        assert_eq!(problem.field, "spec", "a quota names no field of its own");
    }

    /// The tenant RBAC of `prometheus_side`, and a discovery RoleBinding in each of `listed`.
    fn with_discovery(cluster: &str, namespace: &str, listed: &[&str]) -> Vec<ObjectKey> {
        let mut keys = prometheus_side(cluster, namespace);
        keys.push(key(
            cluster,
            ObjectKind::RoleBinding,
            namespace,
            "prometheus-acme",
        ));
        for listed in listed {
            keys.push(key(
                cluster,
                ObjectKind::RoleBinding,
                listed,
                "stacksmith-prometheus-acme",
            ));
        }
        keys
    }

    #[test]
    fn a_namespace_dropped_from_a_scrape_target_is_pruned_not_moved() {
        let inventory = inventory_of(&with_discovery(
            "prom-1",
            "customer-acme",
            &["apps", "batch"],
        ));
        let tenant = key(
            "prom-1",
            ObjectKind::RoleBinding,
            "customer-acme",
            "prometheus-acme",
        );
        let apps = key(
            "prom-1",
            ObjectKind::RoleBinding,
            "apps",
            "stacksmith-prometheus-acme",
        );
        assert!(!inventory.is_discovery_binding(&tenant));
        assert!(inventory.is_discovery_binding(&apps));
        let plan = plan_of(&with_discovery("prom-1", "customer-acme", &["batch"]));
        let unplanned = inventory.unplanned(&plan);
        assert_eq!(unplanned.len(), 1);
        assert_eq!(unplanned[0].key, apps);
        assert!(
            moved_objects(&inventory, &plan).is_empty(),
            "a dropped scrape namespace is not a move"
        );
        // Every listed namespace dropped: still no move.
        let plan = plan_of(&with_discovery("prom-1", "customer-acme", &[]));
        assert_eq!(inventory.unplanned(&plan).len(), 2);
        assert!(moved_objects(&inventory, &plan).is_empty());
    }

    #[test]
    fn discovery_bindings_move_with_the_stack_and_come_last() {
        let before = with_discovery("prom-1", "customer-acme", &["apps"]);
        let inventory = inventory_of(&before);
        // To another cluster: every old object moves, the discovery binding last.
        let plan = plan_of(&with_discovery("prom-2", "customer-acme", &["apps"]));
        let moved = moved_objects(&inventory, &plan);
        assert_eq!(moved.len(), before.len());
        let last = &moved[moved.len() - 1].key;
        assert_eq!(
            (last.namespace.as_str(), last.kind),
            ("apps", ObjectKind::RoleBinding)
        );
        let problem = refused_move(&moved, &plan, false, "a").unwrap();
        assert_eq!(problem.field, "spec.metrics.cluster");
        assert!(
            problem.message.contains("customer-acme"),
            "{}",
            problem.message
        );
        // Another customer on the same cluster, same listed namespace: the old binding (another
        // name in the same namespace) waits for the move too.
        let mut after = with_discovery("prom-1", "customer-acme2", &[]);
        after.push(key(
            "prom-1",
            ObjectKind::RoleBinding,
            "apps",
            "stacksmith-prometheus-acme2",
        ));
        let moved = moved_objects(&inventory, &plan_of(&after));
        assert_eq!(moved.len(), before.len());
        assert_eq!(moved[moved.len() - 1].key.namespace, "apps");
    }

    #[test]
    fn a_changed_cluster_or_namespace_is_a_move_naming_the_field() {
        // (case, inventoried before, planned after, dashboards.namespace set, field named)
        type Case = (
            &'static str,
            Vec<ObjectKey>,
            Vec<ObjectKey>,
            bool,
            &'static str,
        );
        let cases: [Case; 5] = [
            (
                "metrics cluster",
                prometheus_side("prom-1", "customer-acme"),
                prometheus_side("prom-2", "customer-acme"),
                false,
                "spec.metrics.cluster",
            ),
            (
                "customer",
                prometheus_side("prom-1", "customer-acme"),
                prometheus_side("prom-1", "customer-acme2"),
                false,
                "spec.customer",
            ),
            (
                "dashboards cluster",
                grafana_side("graf-1", "customer-acme"),
                grafana_side("graf-2", "customer-acme"),
                false,
                "spec.dashboards.cluster",
            ),
            (
                "dashboards namespace",
                grafana_side("graf-1", "customer-acme"),
                grafana_side("graf-1", "dashboards"),
                true,
                "spec.dashboards.namespace",
            ),
            (
                "grafana namespace following the customer",
                grafana_side("graf-1", "customer-acme"),
                grafana_side("graf-1", "customer-acme2"),
                false,
                "spec.customer",
            ),
        ];
        for (name, before, after, namespace_set, field) in cases {
            let inventory = inventory_of(&before);
            let plan = plan_of(&after);
            let moved = moved_objects(&inventory, &plan);
            assert_eq!(moved.len(), before.len(), "{name}");
            let problem = refused_move(&moved, &plan, namespace_set, "stacksmith.io/allow-move")
                .unwrap_or_else(|| panic!("{name}: no problem"));
            assert_eq!(problem.field, field, "{name}");
            assert!(
                problem.message.contains("stacksmith.io/allow-move"),
                "{name}: {}",
                problem.message
            );
        }
        let nothing = refused_move(&[], &plan_of(&[]), false, "a");
        assert_eq!(nothing, None);
    }
}

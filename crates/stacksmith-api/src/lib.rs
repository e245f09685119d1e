//! The stacksmith API: the `CustomerStack`, `MemberCluster` and `TenantPolicy` custom resources
//! (group `stacksmith.io`, version `v1alpha1`).
//!
//! Data only: no client, no I/O. The CRD YAML committed under `charts/` is generated from these
//! types ([`crds::render_all`]) and a test fails when the two drift apart.

pub mod crd_reference;
pub mod crds;
pub mod customer_stack;
pub mod kinds;
pub mod labels;
pub mod member_cluster;
pub mod rbac;
pub mod root_cause;
pub mod tenant_policy;
pub mod validation;

pub use customer_stack::{
    AlertDeliverySpec, AlertMatcher, AlertReceiver, AlertRoute, AlertRule, AlertRuleGroup,
    ChildStatus, CustomerStack, CustomerStackSpec, CustomerStackStatus, DEFAULT_DATASOURCE_INPUT,
    DashboardConfigMapKey, DashboardDatasourceInput, DashboardSource, DashboardSpec,
    DashboardsSpec, DatasourceSpec, DedicatedGrafanaSpec, DeletionPolicy, FolderSpec,
    GrafanaComDashboard, InventoryEntry, LocalSecretKey, MatchType, MetricsSpec, PagerDutyReceiver,
    RecordingRule, RecordingRuleGroup, ScrapeEndpoint, ScrapeTarget, SlackReceiver, StackSummary,
    StorageSpec, ThanosSpec, Verdict, WebhookReceiver,
};
pub use member_cluster::{
    AlertmanagerEndpoint, ClusterRole, ContainerDefaults, ExposureType, MemberCluster,
    MemberClusterSpec, MemberClusterStatus, NetworkSource, PrometheusExposure, SecretKeyReference,
    TenantQuota,
};
pub use root_cause::RootCause;
pub use tenant_policy::{
    DashboardsPolicy, GrafanaPolicy, PolicyLimits, TenantPolicy, TenantPolicySpec,
};

/// The API group of every stacksmith resource.
pub const GROUP: &str = "stacksmith.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

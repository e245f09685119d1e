//! Patterns shared by the schema (enforced by the API server) and by offline checks.

/// A DNS-1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain: DNS-1123 labels joined by `.`.
pub const DNS1123_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Prometheus duration such as `15d`, `1h30m` or `0`.
pub const PROMETHEUS_DURATION: &str =
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$";

/// A byte size as Prometheus' `retentionSize` takes it, e.g. `512MB` or `50GiB`.
pub const RETENTION_SIZE: &str = "^(0|([0-9]*[.])?[0-9]+((K|M|G|T|E|P)i?)?B)$";

/// A prefix a `TenantPolicy` allows dashboard URLs to start with: `http://` or `https://`, a
/// host (and port) without user information, then `/`, so that the prefix cannot be stretched to
/// another host (`https://a.example.com` would match `https://a.example.com.attacker.net/`).
pub const DASHBOARD_URL_PREFIX: &str = "^https?://[^/?#@\\s]+/[^\\s]*$";

/// The name of an alert receiver: Alertmanager takes any text, stacksmith a DNS-1123 label (the
/// name also appears in Alertmanager's generated configuration beside the namespace).
pub const ALERT_RECEIVER_NAME: &str = DNS1123_LABEL;

/// A Grafana version pinned for a dedicated instance: a release tag of `docker.io/grafana/grafana`
/// such as `12.1.0`, optionally with a suffix (`12.1.0-ubuntu`, `12.0.2-security-01`). Not
/// `latest`, not a floating `12` or `12.1`, not an image reference: the version is pinned.
pub const GRAFANA_VERSION: &str = "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z]+([.-][0-9A-Za-z]+)*)?$";

/// Bounds of the schema that keep abuse out while no real stack comes near them. They also keep
/// the API server's cost estimate of a CEL rule low: it assumes the largest value the schema
/// allows (`resources` has at most 2 entries). `stacksmith validate` reads them from the
/// generated schema.
pub mod bounds {
    /// Characters of one dashboard's inline JSON model (1 Mi). The API server refuses requests
    /// over 3 MiB and etcd stores at most 1.5 MiB per object anyway: this stops one dashboard
    /// from taking a whole stack.
    pub const DASHBOARD_JSON_MAX_LENGTH: u32 = 1024 * 1024;
    /// Characters of one alerting rule's PromQL expression (32 Ki).
    pub const RULE_EXPR_MAX_LENGTH: u32 = 32 * 1024;
    /// Entries of an alerting rule's `labels` and of its `annotations`.
    pub const RULE_MAP_MAX_PROPERTIES: u32 = 64;
    /// Namespaces one scrape target may look in.
    pub const SCRAPE_NAMESPACES_MAX_ITEMS: u32 = 128;
    /// The resource names `resources.requests` and `resources.limits` may hold.
    pub const RESOURCE_NAMES: [&str; 2] = ["cpu", "memory"];
    /// Entries of a `MemberCluster`'s `tenantQuota.hard` (Kubernetes knows about twenty
    /// standard quota names; a platform sets a handful).
    pub const TENANT_QUOTA_MAX_PROPERTIES: u32 = 32;
    /// The standard `ResourceQuota` names (Kubernetes' own list), which `tenantQuota.hard` may
    /// hold besides `count/<resource>` and the per-StorageClass names (see
    /// [`super::is_quota_resource_name`]). The CEL rule [`super::cel::QUOTA_RESOURCE_NAMES`]
    /// spells the same list (a test holds them together).
    pub const QUOTA_STANDARD_NAMES: [&str; 19] = [
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.storage",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "services.loadbalancers",
        "services.nodeports",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
    ];
    /// The suffixes of the per-StorageClass quota names: `<class>` + one of these.
    pub const QUOTA_STORAGE_CLASS_SUFFIXES: [&str; 2] = [
        ".storageclass.storage.k8s.io/requests.storage",
        ".storageclass.storage.k8s.io/persistentvolumeclaims",
    ];
    /// The prefix of the object-count quota names, `count/<resource>[.<group>]`.
    pub const QUOTA_COUNT_PREFIX: &str = "count/";
    /// Customers one `TenantPolicy` governs.
    pub const POLICY_CUSTOMERS_MAX_ITEMS: u32 = 1024;
    /// Hub namespaces one `TenantPolicy` lets claim its customers.
    pub const POLICY_HUB_NAMESPACES_MAX_ITEMS: u32 = 64;
    /// Entries of a `TenantPolicy`'s other lists (Grafana namespaces, instance selectors, URL
    /// prefixes). Also keeps the cost estimate of the selector rule low.
    pub const POLICY_LIST_MAX_ITEMS: u32 = 32;
}

/// The CEL rules (`x-kubernetes-validations`) of the CRDs, with their messages. The API server
/// evaluates them; `stacksmith validate` runs an equivalent Rust check for each one (it has no
/// CEL interpreter), keyed by the rule's text, and a test fails when a rule of the generated
/// CRDs has no such check.
pub mod cel {
    /// A transition rule: the field keeps the value it was created with.
    pub const IMMUTABLE: &str = "self == oldSelf";
    /// The message of [`IMMUTABLE`] on `spec.customer`.
    pub const CUSTOMER_IMMUTABLE_MESSAGE: &str = "spec.customer is immutable: it names the tenant and every child; to move a stack to another customer, delete the stack and create it again";
    /// On `resources.requests` and `resources.limits`: only `cpu` and `memory`.
    pub const ONLY_CPU_AND_MEMORY: &str = "self.all(k, k == 'cpu' || k == 'memory')";
    /// The message of [`ONLY_CPU_AND_MEMORY`].
    pub const ONLY_CPU_AND_MEMORY_MESSAGE: &str = "only cpu and memory can be set";
    /// On a `MemberCluster`'s spec: a cluster serving `prometheus` has a URL template.
    pub const PROMETHEUS_NEEDS_URL_TEMPLATE: &str = "!self.roles.exists(r, r == 'prometheus') || has(self.prometheusUrlTemplate) || has(self.prometheusExposure)";
    /// The field [`PROMETHEUS_NEEDS_URL_TEMPLATE`] reports (relative to the spec).
    pub const PROMETHEUS_NEEDS_URL_TEMPLATE_FIELD: &str = ".prometheusUrlTemplate";
    /// The message of [`PROMETHEUS_NEEDS_URL_TEMPLATE`] (the API server prefixes it with the field
    /// and `Required value:`).
    pub const PROMETHEUS_NEEDS_URL_TEMPLATE_MESSAGE: &str = "required (or prometheusExposure) when the cluster serves the prometheus role: Grafana could not reach the Prometheus";
    /// On a `MemberCluster`: the URL template and a planned exposure exclude each other.
    pub const ONE_PROMETHEUS_REACH: &str =
        "!(has(self.prometheusUrlTemplate) && has(self.prometheusExposure))";
    /// The message of [`ONE_PROMETHEUS_REACH`].
    pub const ONE_PROMETHEUS_REACH_MESSAGE: &str = "set at most one of prometheusUrlTemplate (the platform exposes each Prometheus itself) and prometheusExposure (stacksmith plans the exposure and its TLS)";
    /// On a `MemberCluster`'s `prometheusExposure`: a `LoadBalancer` needs the host name the
    /// platform's DNS gives it.
    pub const LOAD_BALANCER_NEEDS_HOST: &str =
        "self.type != 'LoadBalancer' || has(self.hostTemplate)";
    /// The message of [`LOAD_BALANCER_NEEDS_HOST`].
    pub const LOAD_BALANCER_NEEDS_HOST_MESSAGE: &str = "a LoadBalancer exposure needs hostTemplate: the DNS name that leads to the load balancer (it is also the serving certificate's name)";
    /// On a `CustomerStack`'s `spec.dashboards`: exactly one of `instanceSelector` (shared
    /// `Grafana` instances) and `dedicatedGrafana` (an instance of the customer's own).
    pub const ONE_GRAFANA_SOURCE: &str = "has(self.instanceSelector) != has(self.dedicatedGrafana)";
    /// The message of [`ONE_GRAFANA_SOURCE`].
    pub const ONE_GRAFANA_SOURCE_MESSAGE: &str = "set exactly one of instanceSelector (the shared Grafana instances the children go to) and dedicatedGrafana (a Grafana instance of the customer's own)";
    /// On a `MemberCluster`'s `tenantQuota.hard`: every key is a quota name Kubernetes knows
    /// ([`super::is_quota_resource_name`]). Only list membership, `startsWith`, `endsWith` and
    /// `size`: no regular expression, whose cost the API server would estimate from the
    /// largest key a request could hold.
    pub const QUOTA_RESOURCE_NAMES: &str = "self.all(k, k in ['cpu', 'memory', 'ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.storage', 'requests.ephemeral-storage', 'limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'pods', 'services', 'services.loadbalancers', 'services.nodeports', 'secrets', 'configmaps', 'persistentvolumeclaims', 'replicationcontrollers', 'resourcequotas'] || (k.startsWith('count/') && size(k) > 6) || (!k.startsWith('.') && (k.endsWith('.storageclass.storage.k8s.io/requests.storage') || k.endsWith('.storageclass.storage.k8s.io/persistentvolumeclaims'))))";
    /// On a `TenantPolicy`'s `grafana.instanceSelectors`: no selector is empty (an empty
    /// selector selects every `Grafana` instance). `size` only: constant cost per selector.
    pub const NO_EMPTY_SELECTOR: &str = "self.all(s, (has(s.matchLabels) && size(s.matchLabels) > 0) || (has(s.matchExpressions) && size(s.matchExpressions) > 0))";
    /// The message of [`NO_EMPTY_SELECTOR`].
    pub const NO_EMPTY_SELECTOR_MESSAGE: &str = "an empty selector selects every Grafana instance: give each selector matchLabels or matchExpressions";
    /// The message of [`QUOTA_RESOURCE_NAMES`].
    pub const QUOTA_RESOURCE_NAMES_MESSAGE: &str = "every key is a ResourceQuota name: a standard one (requests.cpu, requests.memory, limits.cpu, limits.memory, requests.storage, persistentvolumeclaims, pods, services, secrets, configmaps, ...), count/<resource>, or <storage-class>.storageclass.storage.k8s.io/requests.storage or .../persistentvolumeclaims";
}

/// Whether `key` may be a key of a `MemberCluster`'s `tenantQuota.hard`: a standard quota name
/// ([`bounds::QUOTA_STANDARD_NAMES`]), `count/<resource>`, or `<class>` followed by one of
/// [`bounds::QUOTA_STORAGE_CLASS_SUFFIXES`]. The Rust twin of the CEL rule
/// [`cel::QUOTA_RESOURCE_NAMES`]; the API server checks the rest of the name when the
/// `ResourceQuota` is written.
pub fn is_quota_resource_name(key: &str) -> bool {
    bounds::QUOTA_STANDARD_NAMES.contains(&key)
        || (key.starts_with(bounds::QUOTA_COUNT_PREFIX)
            && key.len() > bounds::QUOTA_COUNT_PREFIX.len())
        || (!key.starts_with('.')
            && bounds::QUOTA_STORAGE_CLASS_SUFFIXES
                .iter()
                .any(|suffix| key.ends_with(suffix)))
}

/// Whether `value` is a DNS-1123 label of at most `max_len` characters.
pub fn is_dns1123_label(value: &str, max_len: usize) -> bool {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= max_len
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        assert!(is_dns1123_label("acme", 63));
        assert!(is_dns1123_label("a-1", 63));
        assert!(!is_dns1123_label("", 63));
        assert!(!is_dns1123_label("-a", 63));
        assert!(!is_dns1123_label("a-", 63));
        assert!(!is_dns1123_label("Acme", 63));
        assert!(!is_dns1123_label("a_b", 63));
        assert!(!is_dns1123_label("abcdef", 5));
    }

    #[test]
    fn quota_names() {
        for key in [
            "requests.cpu",
            "limits.memory",
            "persistentvolumeclaims",
            "requests.storage",
            "pods",
            "count/deployments.apps",
            "gold.storageclass.storage.k8s.io/requests.storage",
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
        ] {
            assert!(is_quota_resource_name(key), "{key}");
        }
        for key in [
            "",
            "pod",
            "requests.gpu",
            "count/",
            ".storageclass.storage.k8s.io/requests.storage",
            "gold.storageclass.storage.k8s.io/limits.storage",
            "Pods",
        ] {
            assert!(!is_quota_resource_name(key), "{key}");
        }
    }

    #[test]
    fn the_cel_rule_of_quota_names_spells_the_same_names() {
        let listed = cel::QUOTA_RESOURCE_NAMES
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list)
            .unwrap_or_default();
        let names: Vec<&str> = listed
            .split(", ")
            .map(|name| name.trim_matches('\''))
            .collect();
        assert_eq!(names, bounds::QUOTA_STANDARD_NAMES);
        assert!(cel::QUOTA_RESOURCE_NAMES.contains(&format!(
            "k.startsWith('{}') && size(k) > {}",
            bounds::QUOTA_COUNT_PREFIX,
            bounds::QUOTA_COUNT_PREFIX.len()
        )));
        for suffix in bounds::QUOTA_STORAGE_CLASS_SUFFIXES {
            assert!(cel::QUOTA_RESOURCE_NAMES.contains(&format!("k.endsWith('{suffix}')")));
        }
        assert!(cel::QUOTA_RESOURCE_NAMES.contains("!k.startsWith('.')"));
    }
}

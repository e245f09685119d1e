//! Alert delivery for real. Two stacks on the real prometheus-operator (gate off, as on a stock
//! install), each with receivers whose webhook URLs are Secrets in its tenant namespace, and an
//! `Alertmanager` of the platform's that selects stacksmith's `AlertmanagerConfig`s:
//!
//! - both stacks become Ready, the first with a persistent volume (bound to a volume of the
//!   test's own), a retention size and a Thanos sidecar in the StatefulSet the operator renders;
//! - the Alertmanager configuration the operator rendered from both tenants' configs is accepted
//!   by a real `amtool check-config` and run by a real Alertmanager (Debian's
//!   `prometheus-alertmanager`) on 127.0.0.1;
//! - alerts posted to it reach the tenant's receiver their route names (webhooks of the test's
//!   own), never the other tenant's;
//! - deleting the stack with the volume leaves the volume claim, and so the tenant namespace;
//! - a tenant's alerting rule that sets `namespace` and `customer` to the other tenant's values,
//!   rendered by the operator and evaluated by a real Prometheus (Debian's `prometheus`) with the
//!   alert relabelings the operator rendered for the tenant's Prometheus, still reaches its own
//!   tenant's receiver, labelled with its own customer.
//!
//! Debian's Prometheus (2.42) predates per-Alertmanager `alert_relabel_configs`: the relabelings
//! the operator rendered for the one Alertmanager run as the global `alert_relabel_configs`,
//! which apply to every alert sent the same way.

use stacksmith_e2e as support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stacksmith_api::MemberCluster;
use stacksmith_testbed::TestBed;
use stacksmith_testbed::data_servers::{
    self, AlertmanagerServer, PrometheusOptions, PrometheusServer,
};
use stacksmith_testbed::harness::{self, Suite, test};
use support::*;

/// The Prometheus cluster (the real prometheus-operator).
const CLUSTER: &str = "prometheus-1";
/// The platform's Alertmanager on it.
const AM_NAMESPACE: &str = "monitoring";
const AM_NAME: &str = "main";
/// How long the real operator may take to render what changed.
const SLOW: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    harness::run_suite(
        Suite {
            name: "",
            options: stock_prometheus_operator,
            setup: Some(start_operator),
            serial: true,
        },
        "alert-delivery-e2e",
        vec![test(
            "alerts_reach_the_tenants_receivers_and_never_the_other_tenants",
            |tb| Box::pin(boxed(alerts_reach_their_tenant(tb))),
        )],
    )
}

/// The receivers of one tenant: one webhook each.
struct Tenant {
    customer: &'static str,
    webhooks: Vec<(&'static str, Webhook)>,
}

impl Tenant {
    fn namespace(&self) -> String {
        format!("customer-{}", self.customer)
    }

    fn webhook(&mut self, receiver: &str) -> anyhow::Result<&mut Webhook> {
        self.webhooks
            .iter_mut()
            .find(|(name, _)| *name == receiver)
            .map(|(_, webhook)| webhook)
            .with_context(|| format!("no receiver {receiver} for {}", self.customer))
    }

    /// Fails if any of its webhooks is notified within `period`.
    async fn nothing_for(&mut self, period: Duration) -> anyhow::Result<()> {
        for (_, webhook) in &mut self.webhooks {
            webhook.nothing_for(period).await?;
        }
        Ok(())
    }
}

async fn alerts_reach_their_tenant(tb: &TestBed) -> anyhow::Result<()> {
    let hub = tb.hub()?.client().clone();
    let member = tb.cluster(CLUSTER)?.client().clone();
    platform_alertmanager(&hub, &member).await?;
    persistent_volume(&member, "alert-acme-0").await?;

    let mut acme = Tenant {
        customer: "acme",
        webhooks: vec![
            ("oncall", Webhook::start().await?),
            ("team", Webhook::start().await?),
        ],
    };
    let mut other = Tenant {
        customer: "other",
        webhooks: vec![("team", Webhook::start().await?)],
    };
    let acme_overrides = json!({"metrics": {
        "replicas": 1,
        "storage": {"storageClassName": "manual", "size": "1Gi"},
        "retentionSize": "900MB",
        "thanos": {"objectStorageSecret": {"name": "acme-thanos", "key": "objstore.yml"}},
        "alertingRules": [
            {"name": "core", "rules": [{"alert": "Down", "expr": "up == 0", "for": "5m"}]},
            // A rule that claims to be the other tenant's.
            {"name": "impersonate", "interval": "1s", "rules": [{
                "alert": "Impersonation", "expr": "vector(1)",
                "labels": {"severity": "critical", "namespace": "customer-other",
                    "customer": "other"},
            }]},
        ],
        "alertDelivery": {
            "receivers": [
                {"name": "oncall", "webhooks": [{"urlSecret": {"name": "acme-oncall", "key": "url"}}]},
                {"name": "team", "webhooks": [{"urlSecret": {"name": "acme-team", "key": "url"}}]},
            ],
            "defaultReceiver": "team",
            // The test's alerts come one after another into one group (by namespace): each is
            // notified after the group interval.
            "groupWait": "1s",
            "groupInterval": "1s",
            "routes": [{"receiver": "oncall",
                "matchers": [{"name": "severity", "value": "critical"}]}],
        },
    }});
    let other_overrides = json!({"metrics": {
        "replicas": 1,
        "alertDelivery": {
            "receivers": [
                {"name": "team", "webhooks": [{"urlSecret": {"name": "other-team", "key": "url"}}]},
            ],
            "defaultReceiver": "team",
            "groupWait": "1s",
            "groupInterval": "1s",
        },
    }});
    apply_stack(
        &hub,
        "alerts",
        &stack_manifest("acme", "acme", acme_overrides),
    )
    .await?;
    apply_stack(
        &hub,
        "alerts",
        &stack_manifest("other", "other", other_overrides),
    )
    .await?;
    // The receiver Secrets go into the tenant namespaces stacksmith creates.
    for tenant in [&acme, &other] {
        for (receiver, webhook) in &tenant.webhooks {
            let name = format!("{}-{receiver}", tenant.customer);
            receiver_secret(&member, &tenant.namespace(), &name, &webhook.url).await?;
        }
    }
    for name in ["acme", "other"] {
        let stack = wait_ready(&hub, "alerts", name).await?;
        let config = stack
            .status
            .as_ref()
            .and_then(|s| s.children.iter().find(|c| c.kind == "AlertmanagerConfig"))
            .context("the AlertmanagerConfig is a child of the stack")?;
        ensure!(
            config.name == format!("{name}-alerts") && config.reason == "AcceptanceNotReported",
            "{config:?}"
        );
    }
    volume_bound(&member, &acme.namespace()).await?;
    thanos_sidecar(&member, &acme.namespace(), "acme").await?;

    let dir = TempDir::new("alert-delivery")?;
    let rendered = rendered_alertmanager_config(&member, &[&acme, &other]).await?;
    let checked = dir.path().join("rendered-alertmanager.yml");
    std::fs::write(&checked, &rendered)?;
    data_servers::amtool_check_config(&checked)
        .await
        .with_context(|| format!("amtool on the operator's configuration:\n{rendered}"))?;
    let alertmanager = AlertmanagerServer::start(dir.path(), &rendered).await?;
    let client = alertmanager.client().await?;

    // Posted alerts: routed by the tenant namespace, then by the tenant's own routes.
    post_alert(&client, "acme-critical", "customer-acme", "critical").await?;
    let notified = acme
        .webhook("oncall")?
        .next(Duration::from_secs(30))
        .await?;
    ensure!(
        notified["alerts"][0]["labels"]["alertname"] == "acme-critical",
        "{notified}"
    );
    post_alert(&client, "acme-warning", "customer-acme", "warning").await?;
    let notified = acme.webhook("team")?.next(Duration::from_secs(30)).await?;
    ensure!(
        notified["alerts"][0]["labels"]["alertname"] == "acme-warning",
        "{notified}"
    );
    post_alert(&client, "other-critical", "customer-other", "critical").await?;
    let notified = other.webhook("team")?.next(Duration::from_secs(30)).await?;
    ensure!(
        notified["alerts"][0]["labels"]["alertname"] == "other-critical",
        "{notified}"
    );
    acme.nothing_for(Duration::from_secs(3)).await?;

    // The impersonating rule, evaluated by a real Prometheus with the operator's relabelings.
    let prometheus = tenant_prometheus(&member, &acme, alertmanager.url(), dir.path()).await?;
    // Notifications carry the whole group (every firing alert of the tenant namespace).
    let impersonation = match impersonation_notified(acme.webhook("oncall")?).await {
        Ok(alert) => alert,
        Err(err) => {
            let what = diagnostics(&prometheus, &alertmanager, &client, dir.path()).await;
            return Err(err.context(what));
        }
    };
    let labels = &impersonation["labels"];
    ensure!(
        labels["namespace"] == "customer-acme"
            && labels["customer"] == "acme"
            && labels["source_namespace"] == "customer-other",
        "the tenant's own labels were not enforced: {impersonation}"
    );
    other.nothing_for(Duration::from_secs(5)).await?;
    prometheus.stop().await?;
    alertmanager.stop().await?;

    // Deleting the stack never takes its samples: the claim stays, and keeps the namespace.
    delete_stack(&hub, "alerts", "acme").await?;
    wait_stack_gone(&hub, "alerts", "acme").await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(member.clone(), &acme.namespace());
    let left = claims.list(&ListParams::default()).await?;
    ensure!(
        left.items.len() == 1,
        "the Prometheus' claim is kept: {:?}",
        left.items
            .iter()
            .map(|c| &c.metadata.name)
            .collect::<Vec<_>>()
    );
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(member.clone())
        .get_opt(&acme.namespace())
        .await?;
    ensure!(
        namespace.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
        "the tenant namespace holding the claim is kept"
    );
    Ok(())
}

/// The `Impersonation` alert, from the first notification at `webhook` that has it (within 60 s).
async fn impersonation_notified(webhook: &mut Webhook) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let notified = webhook.next(left).await?;
        let alert = notified["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == "Impersonation");
        if let Some(alert) = alert {
            return Ok(alert.clone());
        }
    }
}

/// What the servers saw, for a failure's message: Prometheus' configuration, rules, firing alerts
/// and log, Alertmanager's alerts (with the receivers it routed them to) and log.
async fn diagnostics(
    prometheus: &PrometheusServer,
    alertmanager: &AlertmanagerServer,
    alertmanager_client: &Client,
    dir: &Path,
) -> String {
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let get = |client: Client, path: &'static str| async move {
        let request = http::Request::get(path).body(Vec::new()).ok()?;
        client.request_text(request).await.ok()
    };
    let prometheus_alerts = match prometheus.client(None).await {
        Ok(client) => get(client, "/api/v1/alerts").await,
        Err(_) => None,
    };
    let alertmanager_alerts = get(alertmanager_client.clone(), "/api/v2/alerts").await;
    format!(
        "Prometheus configuration:\n{}\nrules:\n{}\nPrometheus alerts: {}\n\
         Alertmanager alerts: {}\nPrometheus log:\n{}\nAlertmanager log:\n{}",
        read(prometheus.config_file()),
        read(&dir.join("tenant-rules.yml")),
        prometheus_alerts.unwrap_or_default(),
        alertmanager_alerts.unwrap_or_default(),
        read(prometheus.log()),
        read(alertmanager.log()),
    )
}

/// The platform's Alertmanager `monitoring/main`, selecting every `AlertmanagerConfig` stacksmith
/// writes, and the Prometheus cluster's registration pointing its tenants there.
async fn platform_alertmanager(hub: &Client, member: &Client) -> anyhow::Result<()> {
    create_namespace(member, AM_NAMESPACE).await?;
    let alertmanagers: Api<kube::api::DynamicObject> = Api::namespaced_with(
        member.clone(),
        AM_NAMESPACE,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("monitoring.coreos.com", "v1", "Alertmanager"),
            "alertmanagers",
        ),
    );
    let object = serde_json::from_value(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
        "metadata": {"name": AM_NAME},
        "spec": {
            "replicas": 1,
            "alertmanagerConfigSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "stacksmith"}},
            "alertmanagerConfigNamespaceSelector": {},
        },
    }))?;
    alertmanagers
        .create(&PostParams::default(), &object)
        .await
        .context("create the Alertmanager")?;
    Api::<MemberCluster>::all(hub.clone())
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"alertmanagers": [
                {"namespace": AM_NAMESPACE, "name": "alertmanager-operated", "port": "web"},
            ]}})),
        )
        .await
        .context("name the Alertmanager in the MemberCluster")?;
    Ok(())
}

/// The operator's StatefulSet of the tenant's Prometheus: the Thanos sidecar beside it, reading
/// the object-storage configuration from the Secret the stack names; the retention size in the
/// configuration the operator rendered.
async fn thanos_sidecar(member: &Client, tenant: &str, prometheus: &str) -> anyhow::Result<()> {
    let sets: Api<StatefulSet> = Api::namespaced(member.clone(), tenant);
    let name = format!("prometheus-{prometheus}");
    let set = sets
        .get(&name)
        .await
        .with_context(|| format!("StatefulSet {name}"))?;
    let spec = serde_json::to_value(&set.spec)?;
    let containers = spec["template"]["spec"]["containers"]
        .as_array()
        .context("containers")?;
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "thanos-sidecar")
        .with_context(|| format!("no thanos-sidecar in {name}: {containers:?}"))?;
    ensure!(
        sidecar.to_string().contains("acme-thanos"),
        "the sidecar does not read the Secret acme-thanos: {sidecar}"
    );
    // Prometheus v3 takes the retention from its configuration file, not from flags.
    let config = rendered_prometheus_config(member, tenant, prometheus).await?;
    ensure!(
        config.to_string().contains("900MB"),
        "no retention size in the rendered configuration: {}",
        config["storage"]
    );
    Ok(())
}

/// A volume of the test's own for the claim of a Prometheus replica, in a StorageClass without a
/// provisioner (there is none here; prometheus-operator refuses a class that does not exist).
async fn persistent_volume(member: &Client, name: &str) -> anyhow::Result<()> {
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
    }))?;
    Api::<StorageClass>::all(member.clone())
        .create(&PostParams::default(), &class)
        .await
        .context("create StorageClass manual")?;
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": format!("/tmp/stacksmith-e2e-{name}")},
        },
    }))?;
    Api::<PersistentVolume>::all(member.clone())
        .create(&PostParams::default(), &volume)
        .await
        .with_context(|| format!("create PersistentVolume {name}"))?;
    Ok(())
}

/// The claim of the tenant's Prometheus replica, as stacksmith sized it, bound.
async fn volume_bound(member: &Client, tenant: &str) -> anyhow::Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(member.clone(), tenant);
    eventually("the Prometheus' volume claim bound", SLOW, || async {
        let list = claims.list(&ListParams::default()).await?;
        let Some(claim) = list.items.first() else {
            return Ok(Err("no claim".to_owned()));
        };
        let spec = claim.spec.as_ref().context("claim spec")?;
        let size = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        ensure!(
            spec.storage_class_name.as_deref() == Some("manual") && size.as_deref() == Some("1Gi"),
            "claim {:?}: class {:?}, size {size:?}",
            claim.metadata.name,
            spec.storage_class_name
        );
        let phase = claim.status.as_ref().and_then(|s| s.phase.clone());
        Ok(if phase.as_deref() == Some("Bound") {
            Ok(())
        } else {
            Err(format!("claim phase {phase:?}"))
        })
    })
    .await
}

async fn receiver_secret(member: &Client, ns: &str, name: &str, url: &str) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(member.clone(), ns);
    eventually(&format!("Secret {ns}/{name} created"), SLOW, || async {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {"url": url},
        }))?;
        Ok(
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(()),
                // The tenant namespace is not there yet.
                Err(kube::Error::Api(status)) if status.code == 404 => Err(status.message.clone()),
                Err(err) => return Err(err.into()),
            },
        )
    })
    .await
}

/// The Alertmanager configuration the operator generated, once it routes every tenant to its
/// receivers (their URLs read from the Secrets).
async fn rendered_alertmanager_config(
    member: &Client,
    tenants: &[&Tenant],
) -> anyhow::Result<String> {
    let name = format!("alertmanager-{AM_NAME}-generated");
    rendered_file(
        member,
        AM_NAMESPACE,
        &name,
        "alertmanager.yaml",
        SLOW,
        |yaml| {
            let missing: Vec<&str> = tenants
                .iter()
                .flat_map(|t| t.webhooks.iter().map(|(_, w)| w.url.as_str()))
                .filter(|url| !yaml.contains(url))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no receiver yet for {missing:?} in:\n{yaml}"))
            }
        },
    )
    .await
}

async fn post_alert(
    client: &Client,
    alertname: &str,
    namespace: &str,
    severity: &str,
) -> anyhow::Result<()> {
    let alerts = json!([{"labels": {
        "alertname": alertname, "namespace": namespace, "severity": severity,
    }}]);
    let request = http::Request::post("/api/v2/alerts")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&alerts)?)?;
    tokio::time::timeout(Duration::from_secs(10), client.request_text(request))
        .await
        .context("POST /api/v2/alerts timed out")??;
    Ok(())
}

/// A real Prometheus evaluating the tenant's rule file as the operator rendered it, with the
/// operator's external labels and alert relabelings for the tenant, sending to `alertmanager`.
async fn tenant_prometheus(
    member: &Client,
    tenant: &Tenant,
    alertmanager: &str,
    dir: &Path,
) -> anyhow::Result<PrometheusServer> {
    let ns = tenant.namespace();
    let config = rendered_prometheus_config(member, &ns, tenant.customer).await?;
    let relabelings = config["alerting"]["alertmanagers"][0]["alert_relabel_configs"].clone();
    ensure!(
        relabelings.as_array().is_some_and(|r| !r.is_empty()),
        "no alert relabelings rendered: {}",
        config["alerting"]
    );
    let rules = rendered_rule_file(member, &ns, "impersonate").await?;
    let rules_file: PathBuf = dir.join("tenant-rules.yml");
    std::fs::write(&rules_file, rules)?;
    let host = alertmanager
        .strip_prefix("http://")
        .context("alertmanager URL")?;
    let prometheus_config = json!({
        "global": {
            "evaluation_interval": "1s",
            "external_labels": config["global"]["external_labels"],
        },
        "rule_files": [rules_file],
        "alerting": {
            "alert_relabel_configs": relabelings,
            "alertmanagers": [{"static_configs": [{"targets": [host]}]}],
        },
    });
    let prometheus_dir = dir.join("prometheus");
    std::fs::create_dir_all(&prometheus_dir)?;
    Ok(PrometheusServer::start(
        &prometheus_dir,
        &serde_yaml::to_string(&prometheus_config)?,
        PrometheusOptions {
            extra_args: vec!["--rules.alert.resend-delay=1s".into()],
            ..PrometheusOptions::default()
        },
    )
    .await?)
}

/// The configuration the operator rendered for the tenant's Prometheus, once it has the
/// Alertmanager.
async fn rendered_prometheus_config(
    member: &Client,
    ns: &str,
    prometheus: &str,
) -> anyhow::Result<Value> {
    let name = format!("prometheus-{prometheus}");
    let yaml = rendered_file(member, ns, &name, "prometheus.yaml", SLOW, |yaml| {
        let config: Value = serde_yaml::from_str(yaml).map_err(|err| err.to_string())?;
        if config["alerting"]["alertmanagers"].is_array() {
            Ok(())
        } else {
            Err(format!("alerting: {}", config["alerting"]))
        }
    })
    .await?;
    Ok(serde_yaml::from_str(&yaml)?)
}

/// The rule file the operator rendered for the tenant's group `group`.
async fn rendered_rule_file(member: &Client, ns: &str, group: &str) -> anyhow::Result<String> {
    let config_maps: Api<ConfigMap> = Api::namespaced(member.clone(), ns);
    eventually(&format!("the rule file of {group}"), SLOW, || async {
        let list = config_maps.list(&ListParams::default()).await?;
        let file = list
            .items
            .iter()
            .flat_map(|cm| cm.data.iter().flatten())
            .find(|(key, body)| key.contains(group) && body.contains("alert:"))
            .map(|(_, body)| body.clone());
        Ok(file.ok_or_else(|| "no rule file yet".to_owned()))
    })
    .await
}

//! A namespace is never deleted with someone else's things inside: what
//! `stacksmith_controller::namespace_contents` reads of a tenant namespace on a real API server
//! holding what Kubernetes puts in every namespace (ServiceAccount `default` from the test bed's
//! kube-controller-manager; ConfigMap `kube-root-ca.crt` and a Service's Endpoints and
//! EndpointSlice written by the test as the controllers the test bed does not run would), and
//! what it proves, as an admin, as a user that may not list ConfigMaps,
//! and as the test bed's operator identity (which, like the remote chart with
//! `tenantNamespaceDeletion`, may list every kind).
//!
//! One member cluster, no operator, no simulator: a test bed of its own.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use stacksmith_controller::{NamespaceContentsError, namespace_contents};
use stacksmith_core::namespace_contents::{NamespaceContents, ShortList};
use stacksmith_testbed::{PrometheusSide, TestBed, TestBedOptions};

/// The tenant namespace the test reads.
const NAMESPACE: &str = "customer-contents";
/// The timeout of each request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long Kubernetes' controllers (and RBAC) get to catch up.
const SETTLE: Duration = Duration::from_secs(45);
/// The most the whole test may take once the test bed runs.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// A user that may list everything in the namespace but ConfigMaps.
const NO_CONFIGMAPS_USER: &str = "namespace-contents-no-configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_contents_proves_only_ours_names_others_and_admits_what_it_cannot_list()
-> anyhow::Result<()> {
    let mut options = TestBedOptions::new(format!("namespace-contents-{}", std::process::id()));
    options.remotes.truncate(1);
    options.simulator = false;
    options.register_members = false;
    options.prometheus_side = PrometheusSide::Simulated;
    options.kubectl = false;
    let testbed = TestBed::start(options).await?;
    let outcome = match tokio::time::timeout(TEST_TIMEOUT, scenario(&testbed)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!(
            "the test took more than {} s",
            TEST_TIMEOUT.as_secs()
        )),
    };
    let shutdown = testbed.shutdown().await;
    outcome?;
    Ok(shutdown?)
}

async fn scenario(testbed: &TestBed) -> anyhow::Result<()> {
    let member = testbed
        .clusters()
        .iter()
        .find(|cluster| !cluster.roles().is_empty())
        .context("a member cluster")?;
    let admin = member.client().clone();
    stacksmith_e2e::create_namespace(&admin, NAMESPACE).await?;

    // What Kubernetes puts there by itself.
    let service_accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually("ServiceAccount default", || async {
        Ok(service_accounts.get_opt("default").await?)
    })
    .await?;
    // The test bed's kube-controller-manager runs no root CA publisher: write what it would.
    create_unless_present(
        &config_maps,
        json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "(the cluster CA)"}}),
    )
    .await?;

    // What stacksmith wrote (in the inventory by uid): a ServiceAccount, and a Service whose
    // Endpoints and EndpointSlice Kubernetes then makes.
    let ours = service_accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "acme-prometheus"}}))?,
        )
        .await?;
    let services: Api<Service> = Api::namespaced(admin.clone(), NAMESPACE);
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "acme-web"},
                "spec": {"selector": {"app": "acme-web"}, "ports": [{"port": 80}]},
            }))?,
        )
        .await?;
    let inventory: BTreeSet<String> = [ours.uid(), service.uid()]
        .into_iter()
        .collect::<Option<_>>()
        .context("uids")?;
    // Nor endpoint controllers: write what they would, an Endpoints of the Service's name
    // (without owner references) and an EndpointSlice owned by the Service.
    let endpoints: Api<Endpoints> = Api::namespaced(admin.clone(), NAMESPACE);
    create_unless_present(&endpoints, json!({"metadata": {"name": "acme-web"}})).await?;
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NAMESPACE);
    let service_ref = service
        .controller_owner_ref(&())
        .context("an owner reference to the Service")?;
    create_unless_present(
        &slices,
        json!({
            "metadata": {
                "name": "acme-web-x7k2p",
                "labels": {"kubernetes.io/service-name": "acme-web"},
                "ownerReferences": [service_ref],
            },
            "addressType": "IPv4",
            "endpoints": [],
        }),
    )
    .await?;

    let read = |client: Client| {
        let inventory = inventory.clone();
        async move { namespace_contents(&client, TIMEOUT, NAMESPACE, &inventory).await }
    };
    expect(
        "only stacksmith's and Kubernetes' own",
        read(admin.clone()).await,
        &NamespaceContents::OnlyOurs,
    )?;

    // Someone else's ConfigMap keeps the namespace, and is named.
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "team-config"},
                "data": {"owner": "team-a"},
            }))?,
        )
        .await?;
    let team_config =
        NamespaceContents::HoldsOthers(ShortList::of(vec!["ConfigMap team-config".to_owned()]));
    expect(
        "a foreign ConfigMap",
        read(admin.clone()).await,
        &team_config,
    )?;

    // A Secret owned by stacksmith's ServiceAccount goes with it: still only the ConfigMap.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let owner = ours
        .controller_owner_ref(&())
        .context("an owner reference to the ServiceAccount")?;
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "acme-prometheus-extra", "ownerReferences": [owner]},
                "stringData": {"key": "value"},
            }))?,
        )
        .await?;
    expect(
        "a Secret owned by an inventoried object",
        read(admin.clone()).await,
        &team_config,
    )?;

    // An owner of a cluster-scoped kind outlives the namespace: its dependent is foreign.
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    let cluster_owner = cluster_roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "namespace-contents-owner"}}))?,
        )
        .await?;
    let cluster_owner_ref = cluster_owner
        .controller_owner_ref(&())
        .context("an owner reference to the ClusterRole")?;
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "cluster-owned", "ownerReferences": [cluster_owner_ref]},
            }))?,
        )
        .await?;
    expect(
        "a ConfigMap owned by a ClusterRole",
        read(admin.clone()).await,
        &NamespaceContents::HoldsOthers(ShortList::of(vec![
            "ConfigMap cluster-owned (owned by ClusterRole namespace-contents-owner)".to_owned(),
            "ConfigMap team-config".to_owned(),
        ])),
    )?;
    config_maps
        .delete("cluster-owned", &DeleteParams::default())
        .await?;

    // A user that may list everything but ConfigMaps cannot prove anything: Unknown, naming
    // ConfigMap (the foreign one is out of its sight).
    let no_configmaps = client_without_configmaps(member, &admin).await?;
    let expected_unknown =
        NamespaceContents::Unknown(ShortList::of(vec!["ConfigMap (403 Forbidden)".to_owned()]));
    let started = Instant::now();
    loop {
        // RBAC reaches the authorizer's cache shortly after it is written.
        let contents = read(no_configmaps.clone()).await;
        if matches!(&contents, Ok(c) if *c == expected_unknown) {
            break;
        }
        if started.elapsed() > SETTLE {
            expect(
                "a user that may not list ConfigMaps",
                contents,
                &expected_unknown,
            )?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // stacksmith's identity on the test bed may list every kind (as with the remote chart's
    // `tenantNamespaceDeletion` on): it sees what an admin sees.
    let operator = stacksmith_testbed::kubeconfig::client_from_yaml(
        member.name(),
        member.operator_kubeconfig(),
    )
    .await?;
    let as_operator = read(operator).await?;
    ensure!(
        matches!(&as_operator, NamespaceContents::HoldsOthers(objects) if objects.to_string().contains("ConfigMap team-config")),
        "the operator's identity sees the foreign ConfigMap: {as_operator:?}"
    );

    // Once the foreign ConfigMap is gone, the namespace holds only ours again.
    config_maps
        .delete("team-config", &DeleteParams::default())
        .await?;
    expect(
        "the foreign ConfigMap deleted",
        read(admin.clone()).await,
        &NamespaceContents::OnlyOurs,
    )?;
    Ok(())
}

/// Fails unless `got` is `expected`.
fn expect(
    case: &str,
    got: Result<NamespaceContents, NamespaceContentsError>,
    expected: &NamespaceContents,
) -> anyhow::Result<()> {
    match got {
        Ok(contents) if contents == *expected => Ok(()),
        Ok(contents) => bail!("{case}: expected {expected:?}, got {contents:?}"),
        Err(err) => bail!("{case}: expected {expected:?}, got the error {err:#}"),
    }
}

/// A client acting (by impersonation, as the admin) as a user that may list every namespaced
/// kind but ConfigMaps.
async fn client_without_configmaps(
    member: &stacksmith_testbed::Cluster,
    admin: &Client,
) -> anyhow::Result<Client> {
    let core: Vec<String> = admin
        .list_core_api_resources("v1")
        .await?
        .resources
        .into_iter()
        .filter(|r| r.namespaced && !r.name.contains('/') && r.verbs.iter().any(|v| v == "list"))
        .map(|r| r.name)
        .filter(|name| name != "configmaps")
        .collect();
    let groups: Vec<String> = admin
        .list_api_groups()
        .await?
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": NO_CONFIGMAPS_USER},
        "rules": [
            {"apiGroups": [""], "resources": core, "verbs": ["list"]},
            {"apiGroups": groups, "resources": ["*"], "verbs": ["list"]},
        ],
    }))?;
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": NO_CONFIGMAPS_USER},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": NO_CONFIGMAPS_USER,
        },
        "subjects": [{
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "User",
            "name": NO_CONFIGMAPS_USER,
        }],
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    let mut config = member.admin_config().await?;
    config.auth_info.impersonate = Some(NO_CONFIGMAPS_USER.to_owned());
    Ok(Client::try_from(config)?)
}

/// Creates an object unless one of its name exists (what a Kubernetes controller would have
/// written, where the test bed does not run that controller).
async fn create_unless_present<K>(api: &Api<K>, object: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize,
{
    let object: K = serde_json::from_value(object)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Waits until `check` finds something.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if started.elapsed() > SETTLE {
            bail!("{what} did not appear within {} s", SETTLE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

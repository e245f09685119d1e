//! What a tenant namespace on a member holds, read before stacksmith deletes it: API discovery of
//! every namespaced kind that can be listed, then a metadata-only list of each in the namespace.
//! What that proves is decided in [`stacksmith_core::namespace_contents`].
//!
//! Requests: discovery is two (aggregated discovery, Kubernetes 1.26 and later; one per group
//! version on older servers), then one list per namespaced kind (about 40 on a bare API server,
//! more with CRDs), a few at a time, each page of at most [`PAGE_SIZE`] objects. Every request
//! runs under the caller's timeout. This runs only when a tenant namespace is about to go.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, ObjectMeta};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::discovery::v2::APIGroupDiscovery;
use stacksmith_core::namespace_contents::{
    ListedObject, NamespaceContents, NamespaceListing, Owner, ServedKinds, ServedResource,
    Unlisted, decide_contents, is_derived_view, must_be_listed,
};

use crate::remote::{RemoteError, call};

/// Objects per page of a list.
pub const PAGE_SIZE: u32 = 500;

/// Pages read of one kind at most; a kind with more objects counts as not completely listed.
pub const MAX_PAGES_PER_KIND: u32 = 20;

/// Kinds listed at the same time.
const LISTS_AT_ONCE: usize = 4;

/// What aggregated discovery says of a group version it could not refresh.
const STALE: &str = "Stale";

/// Why the contents of a namespace could not be read (the namespace is then kept, and asked
/// about again later). A kind that may not be listed is no error: it makes the contents
/// [`NamespaceContents::Unknown`].
#[derive(Debug, thiserror::Error)]
pub enum NamespaceContentsError {
    /// API discovery failed (no answer, or an error other than a refusal for one group).
    #[error("API discovery failed: {0}")]
    Discovery(#[source] RemoteError),
    /// Listing one kind failed for a reason other than a refusal (403, 405) or its absence (404).
    #[error("listing {kind} failed: {source}")]
    List {
        /// The kind.
        kind: String,
        /// What happened.
        #[source]
        source: RemoteError,
    },
}

/// What `namespace` on the member behind `client` holds, as far as stacksmith can prove:
/// [`NamespaceContents::OnlyOurs`] (only objects whose uid is in `inventory_uids`, Kubernetes'
/// own and dependents that go with them) is the only answer that allows deleting it.
pub async fn namespace_contents(
    client: &Client,
    timeout: Duration,
    namespace: &str,
    inventory_uids: &BTreeSet<String>,
) -> Result<NamespaceContents, NamespaceContentsError> {
    let listing = list_namespace(client, timeout, namespace).await?;
    let contents = decide_contents(&listing, inventory_uids);
    tracing::debug!(
        namespace,
        objects = listing.objects.len(),
        unlisted = listing.unlisted.len(),
        contents = %contents,
        "read a tenant namespace's contents"
    );
    Ok(contents)
}

/// Every object of every listable namespaced kind in `namespace`, and the kinds that could not
/// be listed.
pub async fn list_namespace(
    client: &Client,
    timeout: Duration,
    namespace: &str,
) -> Result<NamespaceListing, NamespaceContentsError> {
    let discovered = discover(client, timeout).await?;
    let kinds = Arc::new(ServedKinds::new(
        discovered.resources.iter().map(|found| &found.served),
    ));
    // Each list owns what it needs: the futures borrow nothing, so the reconcile that awaits
    // them stays `Send` for any lifetime (a stream of borrowing futures would not be).
    let lists: Vec<_> = discovered
        .to_list()
        .into_iter()
        .map(|found| {
            let (client, namespace, found, kinds) = (
                client.clone(),
                namespace.to_owned(),
                found.clone(),
                Arc::clone(&kinds),
            );
            async move { list_kind(&client, timeout, &namespace, &found, &kinds).await }
        })
        .collect();
    let listings: Vec<KindListing> = futures::stream::iter(lists)
        .buffer_unordered(LISTS_AT_ONCE)
        .try_collect()
        .await?;
    let mut listing = NamespaceListing {
        namespace: namespace.to_owned(),
        objects: Vec::new(),
        unlisted: discovered.unlisted,
    };
    for kind_listing in listings {
        listing.objects.extend(kind_listing.objects);
        listing.unlisted.extend(kind_listing.unlisted);
    }
    Ok(listing)
}

/// A resource discovery found, with the version to address it by.
#[derive(Clone, Debug)]
struct DiscoveredResource {
    version: String,
    served: ServedResource,
}

impl DiscoveredResource {
    fn api_resource(&self) -> ApiResource {
        let group = &self.served.group;
        ApiResource {
            group: group.clone(),
            version: self.version.clone(),
            api_version: if group.is_empty() {
                self.version.clone()
            } else {
                format!("{group}/{}", self.version)
            },
            kind: self.served.kind.clone(),
            plural: self.served.plural.clone(),
        }
    }
}

/// What discovery found: every resource of every version (preferred versions first within a
/// group), and the group versions it could not read.
#[derive(Debug, Default)]
struct Discovered {
    resources: Vec<DiscoveredResource>,
    unlisted: Vec<Unlisted>,
}

impl Discovered {
    /// The resources to list: each (group, plural) once, at its most preferred version.
    fn to_list(&self) -> Vec<&DiscoveredResource> {
        let mut seen = BTreeSet::new();
        self.resources
            .iter()
            .filter(|found| must_be_listed(&found.served))
            .filter(|found| seen.insert((&found.served.group, &found.served.plural)))
            .collect()
    }

    /// Records a group version whose resources are not known for sure (`known`: what a stale
    /// document still lists, if anything), unless nothing in it would have been listed anyway:
    /// a derived view such as a stale `metrics.k8s.io`, or only cluster-scoped kinds.
    fn unknown_group_version(
        &mut self,
        group: &str,
        version: &str,
        known: &[ServedResource],
        reason: String,
    ) {
        let irrelevant =
            is_derived_view(group) || (!known.is_empty() && !known.iter().any(must_be_listed));
        if !irrelevant {
            self.unlisted.push(Unlisted {
                what: format!("the kinds of {}", group_version(group, version)),
                reason,
            });
        }
    }
}

/// Aggregated discovery (two requests) where the server offers it, else one request per group
/// version.
async fn discover(
    client: &Client,
    timeout: Duration,
) -> Result<Discovered, NamespaceContentsError> {
    match call(timeout, client.list_core_api_versions_aggregated()).await {
        // A server without aggregated discovery answers with plain `APIVersions`, which reads
        // as an empty list; the core group is never empty.
        Ok(core) if !core.items.is_empty() => {
            let groups = call(timeout, client.list_api_groups_aggregated())
                .await
                .map_err(NamespaceContentsError::Discovery)?;
            let mut discovered = Discovered::default();
            for group in core.items.into_iter().chain(groups.items) {
                add_aggregated_group(&mut discovered, group);
            }
            Ok(discovered)
        }
        Err(err @ RemoteError::Timeout(_)) => Err(NamespaceContentsError::Discovery(err)),
        Ok(_) | Err(RemoteError::Failed(_)) => discover_per_group_version(client, timeout).await,
    }
}

/// Adds one group of an aggregated discovery document (its versions in preference order).
fn add_aggregated_group(discovered: &mut Discovered, group: APIGroupDiscovery) {
    let name = group
        .metadata
        .and_then(|metadata| metadata.name)
        .unwrap_or_default();
    for version in group.versions {
        let Some(version_name) = version.version else {
            continue;
        };
        let served: Vec<ServedResource> = version
            .resources
            .into_iter()
            .filter_map(|resource| {
                Some(ServedResource {
                    group: name.clone(),
                    kind: resource.response_kind?.kind?,
                    plural: resource.resource?,
                    namespaced: resource.scope.as_deref() == Some("Namespaced"),
                    verbs: resource.verbs,
                })
            })
            .collect();
        if version.freshness.as_deref() == Some(STALE) {
            discovered.unknown_group_version(
                &name,
                &version_name,
                &served,
                "its discovery is stale: the API server serving it does not answer".to_owned(),
            );
            continue;
        }
        discovered
            .resources
            .extend(served.into_iter().map(|served| DiscoveredResource {
                version: version_name.clone(),
                served,
            }));
    }
}

/// Discovery on a server without aggregated discovery: the core versions, the groups, then
/// each group version (preferred first), one request each.
async fn discover_per_group_version(
    client: &Client,
    timeout: Duration,
) -> Result<Discovered, NamespaceContentsError> {
    let mut group_versions: Vec<(String, String)> = Vec::new();
    let core = call(timeout, client.list_core_api_versions())
        .await
        .map_err(NamespaceContentsError::Discovery)?;
    group_versions.extend(core.versions.into_iter().map(|v| (String::new(), v)));
    let groups = call(timeout, client.list_api_groups())
        .await
        .map_err(NamespaceContentsError::Discovery)?;
    for group in groups.groups {
        let preferred = group.preferred_version.map(|p| p.version);
        let mut versions: Vec<String> = group.versions.into_iter().map(|v| v.version).collect();
        versions.sort_by_key(|version| Some(version) != preferred.as_ref());
        group_versions.extend(versions.into_iter().map(|v| (group.name.clone(), v)));
    }
    let mut discovered = Discovered::default();
    for (group, version) in group_versions {
        let answer = if group.is_empty() {
            call(timeout, client.list_core_api_resources(&version)).await
        } else {
            let gv = group_version(&group, &version);
            call(timeout, client.list_api_group_resources(&gv)).await
        };
        match answer {
            Ok(list) => discovered
                .resources
                .extend(
                    list.resources
                        .into_iter()
                        .map(|resource| DiscoveredResource {
                            version: version.clone(),
                            served: served_resource(&group, resource),
                        }),
                ),
            // The group version went away between the two requests.
            Err(err) if err.is_not_found() => {}
            Err(RemoteError::Failed(kube::Error::Api(status))) => discovered.unknown_group_version(
                &group,
                &version,
                &[],
                format!("its discovery failed: {} {}", status.code, status.reason),
            ),
            Err(err) => return Err(NamespaceContentsError::Discovery(err)),
        }
    }
    Ok(discovered)
}

/// A resource of a per-group-version discovery document.
fn served_resource(group: &str, resource: APIResource) -> ServedResource {
    ServedResource {
        group: resource.group.unwrap_or_else(|| group.to_owned()),
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced,
        verbs: resource.verbs,
    }
}

/// `v1` for the core group, `<group>/<version>` otherwise.
fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// What listing one kind found.
#[derive(Debug, Default)]
struct KindListing {
    objects: Vec<ListedObject>,
    unlisted: Option<Unlisted>,
}

/// Lists one kind in `namespace`, metadata only, page by page. A refusal (403, 405) makes the
/// kind unlisted; its absence (404: its CRD went away) means it holds nothing.
async fn list_kind(
    client: &Client,
    timeout: Duration,
    namespace: &str,
    found: &DiscoveredResource,
    kinds: &ServedKinds,
) -> Result<KindListing, NamespaceContentsError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &found.api_resource());
    let kind = &found.served.kind;
    let mut listing = KindListing::default();
    let mut continue_token: Option<String> = None;
    for _ in 0..MAX_PAGES_PER_KIND {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(token) = &continue_token {
            params = params.continue_token(token);
        }
        let page = match call(timeout, api.list_metadata(&params)).await {
            Ok(page) => page,
            Err(err) if err.is_not_found() => return Ok(KindListing::default()),
            Err(RemoteError::Failed(kube::Error::Api(status)))
                if matches!(status.code, 403 | 405) =>
            {
                listing.unlisted = Some(Unlisted {
                    what: kind.clone(),
                    reason: format!("{} {}", status.code, status.reason),
                });
                return Ok(listing);
            }
            Err(source) => {
                return Err(NamespaceContentsError::List {
                    kind: kind.clone(),
                    source,
                });
            }
        };
        listing.objects.extend(
            page.items
                .into_iter()
                .map(|item| listed_object(&found.served, item.metadata, kinds)),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => continue_token = Some(token),
            _ => return Ok(listing),
        }
    }
    listing.unlisted = Some(Unlisted {
        what: kind.clone(),
        reason: format!(
            "more than {} objects, not all read",
            PAGE_SIZE * MAX_PAGES_PER_KIND
        ),
    });
    Ok(listing)
}

/// One listed object, its owners' scopes told by discovery.
fn listed_object(
    served: &ServedResource,
    metadata: ObjectMeta,
    kinds: &ServedKinds,
) -> ListedObject {
    let owners = metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|owner| Owner {
            scope: kinds.scope_of(&owner.api_version, &owner.kind),
            kind: owner.kind,
            name: owner.name,
        })
        .collect();
    ListedObject {
        group: served.group.clone(),
        kind: served.kind.clone(),
        name: metadata.name.unwrap_or_default(),
        uid: metadata.uid.unwrap_or_default(),
        owners,
    }
}

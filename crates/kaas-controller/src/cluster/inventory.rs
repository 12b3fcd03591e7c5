//! The cloud resources of all of a tenant's clusters, listed in bulk: one listing per
//! resource kind for every cluster of the tenant's project, shared out by cluster tag.
//!
//! A settled cluster is observed from the latest listing instead of one `find` per kind
//! of its own, so that the steady state costs the cloud a handful of calls per tenant
//! and period, whatever the number of clusters. A listing is used for a cluster only
//! when it was taken after the last steps executed on that cluster (so it holds what
//! those steps made: nothing is created twice) and while the cluster's last plan was
//! settled; a cluster on the move is observed afresh at every reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaas_cloud::{CloudError, CloudProvider, CloudResource, ResourceKind};

/// One listing of a tenant's project, by cluster tag.
#[derive(Debug)]
pub(crate) struct Listing {
    /// When the listing started: it holds everything made before then.
    pub taken_at: Instant,
    /// Every resource found, by the tag of the cluster it belongs to. A tag that was
    /// asked for is here even when nothing carries it.
    pub by_tag: HashMap<String, Vec<CloudResource>>,
}

impl Listing {
    /// The resources of the cluster tagged `tag`, if the listing was asked for it.
    pub fn of(&self, tag: &str) -> Option<Vec<CloudResource>> {
        self.by_tag.get(tag).cloned()
    }
}

/// The latest listing of each tenant's project.
#[derive(Default)]
pub(crate) struct Inventory {
    /// One slot per tenant; a slot's lock is held while its project is listed, so that
    /// the reconciles that want a listing at the same time share one.
    tenants: Mutex<HashMap<String, Slot>>,
}

/// A tenant's latest listing, locked while its project is listed.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Listing>>>>;

impl Inventory {
    /// A listing of `tenant`'s project no older than `max_age` that covers `tag`: the
    /// one kept, or a new one of every kind for `tags` (the tenant's clusters), made with
    /// one call per kind (`counted` is told of each).
    pub async fn listing(
        &self,
        tenant: &str,
        cloud: &dyn CloudProvider,
        max_age: Duration,
        tag: &str,
        tags: impl AsyncFnOnce() -> Vec<String>,
        counted: impl Fn(bool),
    ) -> Result<Arc<Listing>, CloudError> {
        let slot = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        let mut kept = slot.lock().await;
        if let Some(listing) = kept.as_ref()
            && listing.taken_at.elapsed() < max_age
            && listing.by_tag.contains_key(tag)
        {
            return Ok(listing.clone());
        }
        let mut tags = tags().await;
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
        let taken_at = Instant::now();
        let mut by_tag: HashMap<String, Vec<CloudResource>> =
            tags.iter().map(|t| (t.clone(), Vec::new())).collect();
        for kind in ResourceKind::ALL {
            let found = cloud.find_many(kind, &tags).await;
            counted(found.is_ok());
            for (t, resources) in found? {
                by_tag.entry(t).or_default().extend(resources);
            }
        }
        let listing = Arc::new(Listing { taken_at, by_tag });
        *kept = Some(listing.clone());
        Ok(listing)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kaas_cloud::{Capacity, Flavor, ResourceRequest, ResourceStatus};

    use super::*;

    /// A cloud that answers `find_many` from a fixed list and counts the listings.
    struct Listed {
        resources: Vec<CloudResource>,
        listings: AtomicUsize,
    }

    fn resource(kind: ResourceKind, id: &str, tag: &str) -> CloudResource {
        CloudResource {
            kind,
            id: id.to_owned(),
            name: id.to_owned(),
            tags: vec![tag.to_owned()],
            status: ResourceStatus::Active,
            address: None,
        }
    }

    #[async_trait::async_trait]
    impl CloudProvider for Listed {
        fn name(&self) -> &'static str {
            "listed"
        }
        fn auth_url(&self) -> String {
            String::new()
        }
        async fn create(&self, _: &ResourceRequest) -> Result<CloudResource, CloudError> {
            unreachable!("the inventory only lists")
        }
        async fn get(&self, _: ResourceKind, _: &str) -> Result<Option<CloudResource>, CloudError> {
            unreachable!("the inventory only lists")
        }
        async fn find(
            &self,
            kind: ResourceKind,
            tag: &str,
        ) -> Result<Vec<CloudResource>, CloudError> {
            Ok(self
                .resources
                .iter()
                .filter(|r| r.kind == kind && r.tags.iter().any(|t| t == tag))
                .cloned()
                .collect())
        }
        async fn find_many(
            &self,
            kind: ResourceKind,
            tags: &[String],
        ) -> Result<HashMap<String, Vec<CloudResource>>, CloudError> {
            self.listings.fetch_add(1, Ordering::SeqCst);
            let mut found = HashMap::new();
            for tag in tags {
                found.insert(tag.clone(), self.find(kind, tag).await?);
            }
            Ok(found)
        }
        async fn delete(&self, _: ResourceKind, _: &str) -> Result<(), CloudError> {
            unreachable!("the inventory only lists")
        }
        async fn preflight(&self, _: &Capacity) -> Result<(), CloudError> {
            Ok(())
        }
        async fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
            Ok(Vec::new())
        }
        async fn set_load_balancer_members(
            &self,
            _: &str,
            _: &[kaas_cloud::PoolMember],
        ) -> Result<(), CloudError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn one_listing_per_kind_serves_every_cluster_until_it_is_too_old() {
        let cloud = Listed {
            resources: vec![
                resource(ResourceKind::Network, "n1", "kaas-cluster=a"),
                resource(ResourceKind::Server, "s1", "kaas-cluster=a"),
                resource(ResourceKind::Server, "s2", "kaas-cluster=b"),
            ],
            listings: AtomicUsize::new(0),
        };
        let inventory = Inventory::default();
        let tags = || async { vec!["kaas-cluster=a".to_owned(), "kaas-cluster=b".to_owned()] };
        let calls = AtomicUsize::new(0);
        let count = |_ok: bool| {
            calls.fetch_add(1, Ordering::SeqCst);
        };
        let hour = Duration::from_secs(3600);
        let a = inventory
            .listing("t", &cloud, hour, "kaas-cluster=a", tags, count)
            .await
            .unwrap();
        let b = inventory
            .listing("t", &cloud, hour, "kaas-cluster=b", tags, count)
            .await
            .unwrap();
        let kinds = ResourceKind::ALL.len();
        assert_eq!(
            cloud.listings.load(Ordering::SeqCst),
            kinds,
            "one listing per kind"
        );
        assert_eq!(calls.load(Ordering::SeqCst), kinds, "each call counted");
        let ids = |l: &Listing, tag: &str| -> Vec<String> {
            l.of(tag).unwrap().into_iter().map(|r| r.id).collect()
        };
        assert_eq!(ids(&a, "kaas-cluster=a"), ["n1", "s1"]);
        assert_eq!(ids(&b, "kaas-cluster=b"), ["s2"]);

        // A cluster the listing was not asked for gets a new listing that covers it.
        let c = inventory
            .listing("t", &cloud, hour, "kaas-cluster=c", tags, count)
            .await
            .unwrap();
        assert_eq!(c.of("kaas-cluster=c"), Some(Vec::new()));
        assert_eq!(cloud.listings.load(Ordering::SeqCst), 2 * kinds);

        // Too old: listed again.
        let again = inventory
            .listing("t", &cloud, Duration::ZERO, "kaas-cluster=a", tags, count)
            .await
            .unwrap();
        assert!(again.taken_at > a.taken_at);
        assert_eq!(cloud.listings.load(Ordering::SeqCst), 3 * kinds);
        // Another tenant's project has listings of its own.
        inventory
            .listing("u", &cloud, hour, "kaas-cluster=a", tags, count)
            .await
            .unwrap();
        assert_eq!(cloud.listings.load(Ordering::SeqCst), 4 * kinds);
    }
}

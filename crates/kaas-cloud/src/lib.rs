//! The narrow traits behind which the outside world sits: the cloud that hosts a
//! cluster's infrastructure ([`CloudProvider`]) and the Kubernetes API of each workload
//! cluster ([`WorkloadClusters`]). Implementations: `kaas-sim` (simulated), and the
//! OpenStack provider.
//!
//! **Invariant:** every resource kaas creates carries the tags given in its
//! [`ResourceRequest`]; a retry finds it again with [`CloudProvider::find`] and adopts it
//! instead of creating a twin.

mod resource;
mod workload;

pub use resource::*;
pub use workload::*;

use async_trait::async_trait;

/// A cloud that hosts cluster infrastructure. All calls are quick: asynchronous
/// operations (a server booting, a load balancer provisioning) start, return, and are
/// observed later with [`CloudProvider::get`] or [`CloudProvider::find`].
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// A short name for logs and the API (`sim`, `openstack`).
    fn name(&self) -> &'static str;

    /// The cloud's identity (Keystone v3) URL, which a cluster's cloud controller and
    /// CSI driver authenticate against with the cluster's application credential.
    fn auth_url(&self) -> String;

    /// Starts creating a resource. The returned resource may still be `Pending`.
    async fn create(&self, request: &ResourceRequest) -> Result<CloudResource, CloudError>;

    /// The resource with this id, or `None` when it does not exist (any more).
    async fn get(&self, kind: ResourceKind, id: &str) -> Result<Option<CloudResource>, CloudError>;

    /// Every resource of `kind` that carries `tag`.
    async fn find(&self, kind: ResourceKind, tag: &str) -> Result<Vec<CloudResource>, CloudError>;

    /// What [`CloudProvider::find`] finds for each of `tags`, in one listing of `kind`
    /// for all of them: how the resources of many clusters are observed at once. Every
    /// tag asked for is in the answer, those with nothing found with no resources.
    async fn find_many(
        &self,
        kind: ResourceKind,
        tags: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<CloudResource>>, CloudError> {
        let mut found = std::collections::HashMap::with_capacity(tags.len());
        for tag in tags {
            found.insert(tag.clone(), self.find(kind, tag).await?);
        }
        Ok(found)
    }

    /// Starts deleting a resource. Idempotent: deleting what is gone succeeds.
    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), CloudError>;

    /// Resources of the cluster tagged `tag` that carry no tag because their creation
    /// was interrupted between the cloud making them and kaas tagging them (a cloud
    /// that takes tags only after create), found by name or by the cluster's network,
    /// and those the cluster made for itself, which kaas never tags (its cloud
    /// controller's load balancers, named after the cluster's uid). Observed when the
    /// cluster is deleted, so that nothing of it is left.
    async fn find_untagged(&self, _tag: &str) -> Result<Vec<CloudResource>, CloudError> {
        Ok(Vec::new())
    }

    /// Checks, before anything is built, that the flavors and images exist and that
    /// the project's quota holds `needs` on top of what it already uses. The error
    /// carries the cloud's own words.
    async fn preflight(&self, needs: &Capacity) -> Result<(), CloudError>;

    /// The flavors the cloud offers this project (public ones and those shared with
    /// it): what machines may be made of, and what the tenants' vCPU quotas are
    /// counted in.
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError>;

    /// Makes the load balancer's backend pool exactly `members`.
    async fn set_load_balancer_members(
        &self,
        load_balancer_id: &str,
        members: &[PoolMember],
    ) -> Result<(), CloudError>;
}

/// The cloud each tenant's clusters are built in: its own project with its own
/// credentials, or one cloud for every tenant.
#[async_trait]
pub trait TenantClouds: Send + Sync {
    async fn cloud(&self, tenant: &str) -> Result<std::sync::Arc<dyn CloudProvider>, CloudError>;
}

/// One cloud for every tenant.
pub struct SharedCloud(pub std::sync::Arc<dyn CloudProvider>);

#[async_trait]
impl TenantClouds for SharedCloud {
    async fn cloud(&self, _tenant: &str) -> Result<std::sync::Arc<dyn CloudProvider>, CloudError> {
        Ok(self.0.clone())
    }
}

/// What went wrong in a cloud call, with the cloud's own message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    #[error("{kind} {id} not found")]
    NotFound { kind: ResourceKind, id: String },
    #[error("quota exceeded: {message}")]
    QuotaExceeded { message: String },
    #[error("conflict: {message}")]
    Conflict { message: String },
    #[error("bad request: {message}")]
    BadRequest { message: String },
    /// 5xx, timeouts, connection failures: worth retrying.
    #[error("cloud unavailable: {message}")]
    Unavailable { message: String },
    /// Not a failure: the operation made progress and goes on when asked again (a
    /// load balancer built one part at a time).
    #[error("in progress: {message}")]
    InProgress { message: String },
}

impl CloudError {
    /// Whether the same call may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. } | Self::Unavailable { .. } | Self::InProgress { .. }
        )
    }

    /// A CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::QuotaExceeded { .. } => "QuotaExceeded",
            Self::Conflict { .. } => "Conflict",
            Self::BadRequest { .. } => "BadRequest",
            Self::Unavailable { .. } => "CloudUnavailable",
            Self::InProgress { .. } => "InProgress",
        }
    }
}

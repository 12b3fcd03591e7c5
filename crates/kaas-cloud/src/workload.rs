use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Enough to reach a workload cluster's Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadClusterRef {
    pub cluster_uid: String,
    /// `https://ADDRESS:6443`.
    pub api_endpoint: String,
}

/// A Kubernetes node as the workload cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    /// `openstack:///SERVER_ID`, which maps the node to its machine's server.
    pub provider_id: String,
    pub ready: bool,
    /// The kubelet's version, e.g. `v1.33.4`.
    pub kubelet_version: String,
    /// When `ready` last changed (the Ready condition's lastTransitionTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition: Option<DateTime<Utc>>,
    /// Cordoned: no new pods are scheduled here.
    #[serde(default)]
    pub unschedulable: bool,
}

impl Node {
    /// The server id in `provider_id`.
    pub fn server_id(&self) -> Option<&str> {
        self.provider_id.strip_prefix("openstack:///")
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// The API server does not answer yet (or any more).
    #[error("the cluster's API server at {endpoint} is not reachable: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("the cluster's API server answered with an error: {message}")]
    Api { message: String },
}

/// How far a drain has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum DrainProgress {
    /// Every evictable pod is gone.
    Drained,
    /// Evictions are under way.
    InProgress { pods_left: u32 },
    /// An eviction is refused, e.g. by a PodDisruptionBudget; the message says which.
    Blocked { message: String },
}

/// The Kubernetes side of each workload cluster.
#[async_trait]
pub trait WorkloadClusters: Send + Sync {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError>;

    /// Cordons the node and evicts its pods through the eviction API (so disruption
    /// budgets are respected). Quick: call again to see progress. Idempotent.
    async fn drain(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<DrainProgress, WorkloadError>;

    /// The names of the nodes whose etcd members are in the cluster's etcd.
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError>;

    /// Removes the etcd member of a control-plane node that is going away. Removing a
    /// member that is not there succeeds.
    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError>;
}

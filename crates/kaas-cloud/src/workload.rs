use async_trait::async_trait;
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

/// The Kubernetes side of each workload cluster.
#[async_trait]
pub trait WorkloadClusters: Send + Sync {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError>;
}

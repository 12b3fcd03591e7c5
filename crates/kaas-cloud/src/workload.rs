use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Enough to reach a workload cluster's Kubernetes API, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadClusterRef {
    pub cluster_uid: String,
    /// The cluster's tenant and name in kaas.
    pub tenant: String,
    pub cluster_name: String,
    /// `https://ADDRESS:6443`: where the cluster's users reach its API (the floating
    /// IP, or the VIP where the cluster has none).
    pub api_endpoint: String,
    /// `https://VIP:6443`: the API load balancer's address in the cluster's own
    /// network, for a kaas that runs inside the cloud's network; `None` until known.
    pub api_vip: Option<String>,
    /// The client certificate kaas presents; `None` where no client needs one (a
    /// simulation that answers without Kubernetes' HTTP).
    pub credentials: Option<Arc<ClientCredentials>>,
}

impl WorkloadClusterRef {
    /// A reference without credentials.
    pub fn new(cluster_uid: &str, api_endpoint: &str) -> Self {
        Self {
            cluster_uid: cluster_uid.to_owned(),
            tenant: String::new(),
            cluster_name: String::new(),
            api_endpoint: api_endpoint.to_owned(),
            api_vip: None,
            credentials: None,
        }
    }
}

/// The cluster's CA (to trust its API server) and a client certificate it issued; its
/// etcd CA (to trust its etcd members) and a client certificate from that.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub ca_cert_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub etcd_ca_cert_pem: String,
    pub etcd_client_cert_pem: String,
    pub etcd_client_key_pem: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials").finish_non_exhaustive()
    }
}

/// How to reach one workload cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The `https://HOST:PORT` to connect to.
    pub url: String,
    /// The name the API server's certificate is checked against, where it is not the
    /// URL's host: the cluster's endpoint, reached at another address (as curl's
    /// `--resolve` does).
    pub tls_server_name: Option<String>,
    /// `http://HOST:PORT` of the HTTP proxy the URL is reached through (CONNECT), as a
    /// kubeconfig's `proxy-url`; `None`: straight.
    pub proxy: Option<String>,
}

impl ApiRoute {
    /// Connect to `url` and check the certificate against its host.
    pub fn direct(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_server_name: None,
            proxy: None,
        }
    }
}

/// Where kaas reaches a workload cluster's API server: its endpoint on a real cloud (or
/// another address it is mapped to), a local gateway for a simulated one.
#[async_trait]
pub trait ApiRoutes: Send + Sync {
    /// How to reach `cluster`'s API server.
    async fn route(&self, cluster: &WorkloadClusterRef) -> Result<ApiRoute, WorkloadError>;
}

/// A workload cluster's etcd membership: the members, and removing a leaving control
/// plane's member.
#[async_trait]
pub trait EtcdMembership: Send + Sync {
    /// The names of the nodes whose etcd members are in the cluster's etcd.
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError>;

    /// Removes the etcd member of node `node`; removing one that is not there succeeds.
    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError>;
}

/// What the machines of a cluster whose Kubernetes side is simulated would tell: the
/// nodes their kubelets register, and (as [`EtcdMembership`]) the members of their etcd.
#[async_trait]
pub trait SimulatedMachines: EtcdMembership {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError>;
}

/// What applying a cluster's addons did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddonsApplied {
    pub applied: usize,
    /// Objects applied before and no longer wanted, now deleted (`Kind namespace/name`).
    pub pruned: Vec<String>,
    /// Objects deleted and created again: a field that changed cannot change.
    pub replaced: Vec<String>,
}

/// Whether one applied object is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectReadiness {
    /// `Kind namespace/name`.
    pub object: String,
    pub ready: bool,
    /// It does not exist (any more).
    pub missing: bool,
    /// Why it is not ready.
    pub message: String,
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
    /// The node's labels, e.g. `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
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
    /// kaas cannot do this for this cluster (yet); the message says what and why.
    #[error("{message}")]
    Unsupported { message: String },
}

/// A bootstrap token a machine joins its cluster with (kubeadm's `ID.SECRET`), as kaas
/// registers it in the cluster: valid until `expires`, for `machine` alone.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Six characters `[a-z0-9]`: the Secret is `bootstrap-token-<id>`.
    pub id: String,
    /// Sixteen characters `[a-z0-9]`. Secret.
    pub secret: String,
    /// The machine that joins with it.
    pub machine: String,
    pub expires: DateTime<Utc>,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("machine", &self.machine)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A bootstrap token kaas registered in a cluster, as listed (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredToken {
    pub id: String,
    /// The machine it was registered for.
    pub machine: String,
    /// `None`: it never expires, or its expiration cannot be read.
    pub expires: Option<DateTime<Utc>>,
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

/// The Kubernetes side of each workload cluster: its API, and its etcd's membership.
#[async_trait]
pub trait WorkloadClusters: EtcdMembership {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError>;

    /// Cordons the node and evicts its pods through the eviction API (so disruption
    /// budgets are respected). Quick: call again to see progress. Idempotent.
    async fn drain(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<DrainProgress, WorkloadError>;

    /// Deletes the Node object `node`, once its machine's server is gone; deleting one
    /// that is not there succeeds.
    async fn delete_node(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError>;

    /// The bootstrap tokens kaas registered in the cluster for joining machines.
    async fn bootstrap_tokens(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<RegisteredToken>, WorkloadError>;

    /// Registers `token` (or moves its expiry), so that its machine can join.
    /// Idempotent.
    async fn register_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        token: &JoinToken,
    ) -> Result<(), WorkloadError>;

    /// Removes the token `id`; removing one that is not there succeeds.
    async fn delete_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        id: &str,
    ) -> Result<(), WorkloadError>;

    /// Server-side applies `objects` as the apply set `set` and deletes what the set
    /// held before and no longer does. Idempotent.
    async fn apply(
        &self,
        cluster: &WorkloadClusterRef,
        set: &str,
        objects: &[Value],
    ) -> Result<AddonsApplied, WorkloadError>;

    /// Whether each of `objects` exists and is ready (workloads available, CRDs
    /// established).
    async fn readiness(
        &self,
        cluster: &WorkloadClusterRef,
        objects: &[Value],
    ) -> Result<Vec<ObjectReadiness>, WorkloadError>;

    /// The namespaces whose registry pull Secret `name` is missing or does not hold
    /// `digest`, or whose `default` ServiceAccount does not name it.
    async fn stale_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
        digest: &str,
    ) -> Result<Vec<String>, WorkloadError>;

    /// Writes the pull Secret `name` (a `kubernetes.io/dockerconfigjson` of
    /// `docker_config`) in `namespaces` and names it in their `default`
    /// ServiceAccount's `imagePullSecrets`. Idempotent.
    async fn put_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
        namespaces: &[String],
        docker_config: &[u8],
        digest: &str,
    ) -> Result<(), WorkloadError>;

    /// Deletes the pull Secret `name` from every namespace and takes it out of the
    /// `default` ServiceAccounts. Idempotent.
    async fn remove_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
    ) -> Result<(), WorkloadError>;
}

//! The Cluster: what a tenant asks for (spec) and what kaas observed (status).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{API_VERSION, Condition, Object, ObjectMeta};

/// The finalizer that keeps a Cluster in the store until its cloud resources are gone.
pub const CLUSTER_FINALIZER: &str = "kaas.dev/cloud-resources";

/// Condition types of a Cluster.
pub mod conditions {
    pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
    pub const CONTROL_PLANE_READY: &str = "ControlPlaneReady";
    pub const NODE_POOLS_READY: &str = "NodePoolsReady";
    pub const AVAILABLE: &str = "Available";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const SCALING_UP: &str = "ScalingUp";
    pub const SCALING_DOWN: &str = "ScalingDown";
    pub const REMEDIATING: &str = "Remediating";
    pub const DELETING: &str = "Deleting";
    pub const ADDONS_READY: &str = "AddonsReady";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "cluster_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ClusterSpec,
    /// Written by kaas only; ignored on input.
    #[serde(default)]
    pub status: ClusterStatus,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}

fn cluster_kind() -> String {
    Cluster::KIND.to_owned()
}

impl Object for Cluster {
    const KIND: &'static str = "Cluster";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Cluster {
    pub fn new(name: &str, spec: ClusterSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: cluster_kind(),
            metadata: ObjectMeta::named(name),
            spec,
            status: ClusterStatus::default(),
        }
    }
}

/// The desired state of a cluster. Every field has a default, so `{}` is a valid spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// The cluster stack (Kubernetes version, node image, addons), e.g. `scs-1.36`.
    #[serde(default = "default_stack")]
    pub stack: String,
    #[serde(default)]
    pub control_plane: ControlPlane,
    #[serde(default = "default_node_pools")]
    pub node_pools: Vec<NodePool>,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub api_access: ApiAccess,
    #[serde(default)]
    pub addons: Addons,
    #[serde(default)]
    pub rollout: Rollout,
    #[serde(default)]
    pub health: Health,
    /// The integrated registry's pull credential and the nodes' registry mirrors.
    #[serde(
        default,
        skip_serializing_if = "crate::registry::RegistrySpec::is_default"
    )]
    pub registry: crate::registry::RegistrySpec,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            stack: default_stack(),
            control_plane: ControlPlane::default(),
            node_pools: default_node_pools(),
            network: NetworkSpec::default(),
            api_access: ApiAccess::default(),
            addons: Addons::default(),
            rollout: Rollout::default(),
            health: Health::default(),
            registry: crate::registry::RegistrySpec::default(),
        }
    }
}

fn default_stack() -> String {
    crate::stack::DEFAULT_STACK.to_owned()
}

fn default_node_pools() -> Vec<NodePool> {
    vec![NodePool::new("workers", 3)]
}

fn default_flavor() -> String {
    "m1.medium".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlPlane {
    /// 1, 3 or 5: an odd number keeps etcd's quorum.
    #[serde(default = "default_cp_replicas")]
    pub replicas: u32,
    #[serde(default = "default_flavor")]
    pub flavor: String,
    /// Availability zones to spread over; empty: the cloud's default.
    #[serde(default)]
    pub zones: Vec<String>,
    /// How a rollout replaces control planes: 1 (the default) creates the new one
    /// before the old one leaves; 0 removes the old one first, for clouds with no room
    /// for one more control plane beside the others (as many hosts as control planes:
    /// their hard anti-affinity cannot place a fourth). 0 needs 3 or 5 replicas, so
    /// that etcd keeps its quorum meanwhile.
    #[serde(default = "one")]
    pub max_surge: u32,
}

fn default_cp_replicas() -> u32 {
    3
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self {
            replicas: default_cp_replicas(),
            flavor: default_flavor(),
            zones: Vec::new(),
            max_surge: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    /// DNS-1123 label, unique within the cluster.
    pub name: String,
    /// 0..=1000.
    pub replicas: u32,
    #[serde(default = "default_flavor")]
    pub flavor: String,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

impl NodePool {
    pub fn new(name: &str, replicas: u32) -> Self {
        Self {
            name: name.to_owned(),
            replicas,
            flavor: default_flavor(),
            zones: Vec::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            autoscale: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// The subnet the nodes live on.
    #[serde(default = "default_node_cidr")]
    pub node_cidr: String,
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    #[serde(default = "default_service_cidr")]
    pub service_cidr: String,
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// The external network the router's gateway and floating IPs come from.
    #[serde(default = "default_external_network")]
    pub external_network: String,
    /// 1280..=9000; unset: the cloud's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

fn default_node_cidr() -> String {
    "10.0.0.0/20".to_owned()
}
fn default_pod_cidr() -> String {
    "10.244.0.0/16".to_owned()
}
fn default_service_cidr() -> String {
    "10.96.0.0/12".to_owned()
}
fn default_external_network() -> String {
    "public".to_owned()
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            node_cidr: default_node_cidr(),
            pod_cidr: default_pod_cidr(),
            service_cidr: default_service_cidr(),
            dns_servers: Vec::new(),
            external_network: default_external_network(),
            mtu: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiAccess {
    /// Source CIDRs allowed to reach the API; empty: everyone.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// Give the API load balancer a floating IP.
    #[serde(default = "yes")]
    pub floating_ip: bool,
}

impl Default for ApiAccess {
    fn default() -> Self {
        Self {
            allowed_cidrs: Vec::new(),
            floating_ip: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addons {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressAddon>,
    /// The Gateway API and an implementation of it, with a GatewayClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayAddon>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManagerAddon>,
    #[serde(default = "yes")]
    pub metrics_server: bool,
    #[serde(default)]
    pub registry: bool,
}

impl Default for Addons {
    fn default() -> Self {
        Self {
            ingress: None,
            gateway: None,
            cert_manager: None,
            metrics_server: true,
            registry: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressAddon {
    /// PROXY protocol between the load balancer and the ingress controller, so client
    /// source IPs are visible.
    #[serde(default = "yes")]
    pub proxy_protocol: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayAddon {
    /// PROXY protocol between the load balancer and the gateway's proxies, so client
    /// source IPs are visible.
    #[serde(default = "yes")]
    pub proxy_protocol: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManagerAddon {
    pub acme_email: String,
    /// `letsencrypt-staging` or `letsencrypt-production`.
    #[serde(default = "default_issuer")]
    pub issuer: String,
}

fn default_issuer() -> String {
    "letsencrypt-staging".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    #[serde(default = "one")]
    pub max_surge: u32,
    #[serde(default)]
    pub max_unavailable: u32,
    /// How long a drain may take before the node is removed anyway, e.g. `10m`.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: String,
}

fn one() -> u32 {
    1
}
fn default_drain_timeout() -> String {
    "10m".to_owned()
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            max_surge: 1,
            max_unavailable: 0,
            drain_timeout: default_drain_timeout(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// A server that has not become a Ready node by then is replaced, e.g. `20m`.
    #[serde(default = "default_node_startup_timeout")]
    pub node_startup_timeout: String,
    /// A node NotReady for longer is replaced, e.g. `5m`.
    #[serde(default = "default_unhealthy_timeout")]
    pub unhealthy_timeout: String,
    /// Repair stops when more of a pool is unhealthy: a count (`2`) or a percentage (`40%`).
    #[serde(default = "default_max_unhealthy")]
    pub max_unhealthy: String,
}

fn default_node_startup_timeout() -> String {
    "20m".to_owned()
}
fn default_unhealthy_timeout() -> String {
    "5m".to_owned()
}
fn default_max_unhealthy() -> String {
    "40%".to_owned()
}

impl Default for Health {
    fn default() -> Self {
        Self {
            node_startup_timeout: default_node_startup_timeout(),
            unhealthy_timeout: default_unhealthy_timeout(),
            max_unhealthy: default_max_unhealthy(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClusterPhase {
    #[default]
    Pending,
    Provisioning,
    Available,
    Updating,
    Deleting,
    Failed,
}

impl std::fmt::Display for ClusterPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What kaas observed of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub phase: ClusterPhase,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// `https://ADDRESS:6443` once the API load balancer has its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    /// The Kubernetes version the control plane runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default)]
    pub control_plane: ReplicaStatus,
    #[serde(default)]
    pub node_pools: Vec<NodePoolStatus>,
    /// The cloud resources of the cluster, by role.
    #[serde(default)]
    pub infrastructure: BTreeMap<String, InfrastructureResource>,
    /// The API load balancer's members as last set (`ADDRESS:PORT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_members: Vec<String>,
    /// The addons kaas applied to the cluster, and how they stand.
    #[serde(default, skip_serializing_if = "AddonsStatus::is_empty")]
    pub addons: AddonsStatus,
    /// The generation of the spec this status describes.
    #[serde(default)]
    pub observed_generation: i64,
}

/// The addons of a cluster, as last applied and observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonsStatus {
    /// The stack whose addons were last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// A digest of the objects last applied: they are applied again when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Each addon of the stack, in apply order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<AddonStatus>,
}

impl AddonsStatus {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// One addon in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonStatus {
    pub name: String,
    pub version: String,
    /// Every object of it exists and is ready.
    pub ready: bool,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Machines that exist and are not being deleted.
    pub replicas: u32,
    /// Of those, machines whose node is Ready.
    pub ready_replicas: u32,
    /// Of those, machines with the current version, image and flavor.
    pub updated_replicas: u32,
    /// Machines both updated and ready.
    #[serde(default)]
    pub available_replicas: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    pub name: String,
    /// Machines that exist.
    pub replicas: u32,
    /// Machines whose node is Ready.
    pub ready_replicas: u32,
    /// Machines with the pool's current version, image and flavor.
    pub updated_replicas: u32,
    /// Machines both updated and ready.
    #[serde(default)]
    pub available_replicas: u32,
}

/// One cloud resource of the cluster, as last observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureResource {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

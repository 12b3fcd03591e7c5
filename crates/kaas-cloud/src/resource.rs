use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// cloud-init user data as Nova's API takes it: base64 of the bytes cloud-init reads.
/// It carries keys and tokens, so its `Debug` shows only its size.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserData(pub String);

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserData(<{} bytes of base64>)", self.0.len())
    }
}

/// A secret the cloud is given once (an application credential's secret). Its `Debug`
/// shows nothing of it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(pub String);

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// The kinds of cloud resource a cluster is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    Network,
    Subnet,
    Router,
    SecurityGroup,
    ServerGroup,
    Port,
    LoadBalancer,
    FloatingIp,
    Server,
    ApplicationCredential,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 10] = [
        Self::Network,
        Self::Subnet,
        Self::Router,
        Self::SecurityGroup,
        Self::ServerGroup,
        Self::Port,
        Self::LoadBalancer,
        Self::FloatingIp,
        Self::Server,
        Self::ApplicationCredential,
    ];

    /// The camelCase name used in the API and the inventory (`securityGroup`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Subnet => "subnet",
            Self::Router => "router",
            Self::SecurityGroup => "securityGroup",
            Self::ServerGroup => "serverGroup",
            Self::Port => "port",
            Self::LoadBalancer => "loadBalancer",
            Self::FloatingIp => "floatingIp",
            Self::Server => "server",
            Self::ApplicationCredential => "applicationCredential",
        }
    }

    /// Words for people (`security group`).
    pub fn human(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Subnet => "subnet",
            Self::Router => "router",
            Self::SecurityGroup => "security group",
            Self::ServerGroup => "server group",
            Self::Port => "port",
            Self::LoadBalancer => "load balancer",
            Self::FloatingIp => "floating IP",
            Self::Server => "server",
            Self::ApplicationCredential => "application credential",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.human())
    }
}

/// A request to create one resource: its deterministic name, its tags, and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRequest {
    pub name: String,
    pub tags: Vec<String>,
    pub spec: ResourceSpec,
}

impl ResourceRequest {
    pub fn kind(&self) -> ResourceKind {
        self.spec.kind()
    }
}

/// The kind-specific part of a [`ResourceRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ResourceSpec {
    Network {
        mtu: Option<u32>,
    },
    Subnet {
        network_id: String,
        cidr: String,
        dns_servers: Vec<String>,
    },
    /// A router with a gateway on the external network and an interface on each subnet.
    Router {
        external_network: String,
        subnet_ids: Vec<String>,
    },
    SecurityGroup {
        rules: Vec<SecurityGroupRule>,
    },
    ServerGroup {
        policy: ServerGroupPolicy,
    },
    /// A port of its own, e.g. the API load balancer's VIP: made by kaas, named and
    /// tagged, so it is found again and never leaked.
    Port {
        network_id: String,
        subnet_id: String,
        security_group_ids: Vec<String>,
    },
    /// A TCP load balancer with one listener, pool and health monitor on `port`, whose
    /// VIP is the port `vip_port_id` on `subnet_id`.
    LoadBalancer {
        subnet_id: String,
        vip_port_id: String,
        port: u16,
    },
    /// A floating IP on the external network, associated with the port `port_id`.
    FloatingIp {
        external_network: String,
        port_id: String,
    },
    /// A restricted application credential of the cluster's own (for its cloud
    /// controller and CSI): it cannot make credentials or trusts itself. kaas chooses
    /// the secret, and stores it sealed before the cloud sees it, so that a retry
    /// after a crash creates a credential whose secret is known.
    ApplicationCredential {
        secret: Credential,
        /// Role names; empty means the roles of the credential kaas itself uses.
        roles: Vec<String>,
        description: String,
    },
    /// A server on its own port (named and tagged like the server) on `network_id`.
    Server {
        flavor: String,
        image: String,
        network_id: String,
        security_group_ids: Vec<String>,
        server_group_id: Option<String>,
        availability_zone: Option<String>,
        /// cloud-init user data, as given to Nova.
        user_data: UserData,
        metadata: BTreeMap<String, String>,
    },
}

impl ResourceSpec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Network { .. } => ResourceKind::Network,
            Self::Subnet { .. } => ResourceKind::Subnet,
            Self::Router { .. } => ResourceKind::Router,
            Self::SecurityGroup { .. } => ResourceKind::SecurityGroup,
            Self::ServerGroup { .. } => ResourceKind::ServerGroup,
            Self::Port { .. } => ResourceKind::Port,
            Self::LoadBalancer { .. } => ResourceKind::LoadBalancer,
            Self::FloatingIp { .. } => ResourceKind::FloatingIp,
            Self::Server { .. } => ResourceKind::Server,
            Self::ApplicationCredential { .. } => ResourceKind::ApplicationCredential,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerGroupPolicy {
    /// Never two members on one host: the scheduler fails instead.
    AntiAffinity,
    /// Spread members over hosts where possible.
    SoftAntiAffinity,
}

/// One ingress rule (egress is open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    pub port_min: u16,
    pub port_max: u16,
    /// Where traffic may come from: a CIDR...
    pub remote_cidr: Option<String>,
    /// ...or members of a security group, by name within the same cluster.
    pub remote_group: Option<String>,
    pub description: String,
}

/// A backend of the API load balancer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolMember {
    pub address: String,
    pub port: u16,
}

/// The lifecycle state of a resource, mapped from the cloud's own status strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ResourceStatus {
    /// Being built (BUILD, PENDING_CREATE, DOWN while binding).
    Pending,
    Active,
    /// Being deleted (PENDING_DELETE, DELETING).
    Deleting,
    /// Broken for good; the cloud's message says why.
    Error {
        message: String,
    },
}

/// A resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudResource {
    pub kind: ResourceKind,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub status: ResourceStatus,
    /// The address worth knowing: a server's fixed IP, a load balancer's VIP, a
    /// floating IP's public address.
    pub address: Option<String>,
}

impl CloudResource {
    pub fn is_active(&self) -> bool {
        self.status == ResourceStatus::Active
    }
}

/// What a cluster's machines will take from the cloud, checked before anything is
/// built so that a cluster the project cannot hold is refused whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub servers: Vec<ServerNeed>,
}

/// A flavor (machine size) a cloud offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    #[serde(rename = "ramMiB")]
    pub ram_mib: u64,
    /// The root disk; 0: the server boots from a volume.
    #[serde(rename = "diskGiB")]
    pub disk_gib: u64,
}

/// `count` servers of one flavor and image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerNeed {
    pub flavor: String,
    pub image: String,
    pub count: u32,
}

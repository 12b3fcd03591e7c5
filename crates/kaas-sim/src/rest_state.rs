//! What the cloud's REST API keeps about a resource beyond the simulation's model:
//! a router's interfaces, a security group's rules, a load balancer's listener, pool
//! and health monitor, an application credential's secret hash, descriptions. It is
//! part of the resource's record, so it is written to the journal with the resource
//! and comes back with it after a restart.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RestState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A router's interfaces, one port each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<RouterInterface>,
    /// Whether a router is distributed (DVR) or highly available (HA), as Neutron's
    /// `distributed` and `ha` say: its interfaces' ports are owned accordingly.
    #[serde(skip_serializing_if = "is_false")]
    pub distributed: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub ha: bool,
    /// A security group's rules, as Neutron shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Value>,
    /// A load balancer's listeners, pools and health monitors, as Octavia shows them
    /// (without their statuses, which follow the load balancer's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_monitors: Vec<Value>,
    /// An application credential's secret, as Keystone keeps it: a SHA-256 (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// An application credential's roles and restriction, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Value>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl RestState {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A router's interface on a subnet: the port Neutron makes for it, holding the
/// subnet's gateway address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RouterInterface {
    pub port_id: String,
    pub subnet_id: String,
    pub ip_address: String,
}

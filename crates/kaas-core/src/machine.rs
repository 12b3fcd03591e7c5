//! A Machine: one node of a cluster, backed by one server. Machines are immutable:
//! a change of version, image or flavor replaces them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{API_VERSION, Object, ObjectMeta};

/// Label on every Machine: the name of its cluster.
pub const CLUSTER_LABEL: &str = "kaas.dev/cluster";
/// Label on every Machine: its node pool, or `control-plane`.
pub const POOL_LABEL: &str = "kaas.dev/pool";
/// The pool name of control-plane machines.
pub const CONTROL_PLANE_POOL: &str = "control-plane";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Machine {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "machine_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: MachineSpec,
    #[serde(default)]
    pub status: MachineStatus,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}
fn machine_kind() -> String {
    Machine::KIND.to_owned()
}

impl Object for Machine {
    const KIND: &'static str = "Machine";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Machine {
    pub fn new(metadata: ObjectMeta, spec: MachineSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: machine_kind(),
            metadata,
            spec,
            status: MachineStatus::default(),
        }
    }

    pub fn is_control_plane(&self) -> bool {
        self.spec.role != MachineRole::Worker
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MachineRole {
    /// The first control plane: runs `kubeadm init`. One per cluster, ever.
    Init,
    /// A further control plane: `kubeadm join --control-plane`.
    ControlPlane,
    /// `kubeadm join`.
    Worker,
}

impl MachineRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineSpec {
    /// The node pool, or `control-plane`.
    pub pool: String,
    pub role: MachineRole,
    /// Kubernetes version, e.g. `v1.33.4`.
    pub version: String,
    pub image: String,
    pub flavor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MachinePhase {
    /// Recorded, no server yet.
    #[default]
    Pending,
    /// The server exists and is booting.
    Provisioning,
    /// The server runs; its node has not joined yet.
    Provisioned,
    /// The node is Ready.
    Running,
    Deleting,
    Failed,
}

impl std::fmt::Display for MachinePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    #[serde(default)]
    pub phase: MachinePhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default)]
    pub ready: bool,
    /// Why the machine failed, in the cloud's or the node's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// When kaas started draining the node before removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The drain is over (done, or given up after `drainTimeout`).
    #[serde(default)]
    pub drained: bool,
    /// Why the machine is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_reason: Option<String>,
    /// The machine is being replaced because it was unhealthy.
    #[serde(default)]
    pub remediation: bool,
    /// How many of the machine's servers failed before its node joined (a failed
    /// boot: the server is deleted and another created, each time later).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub boot_failures: u32,
    /// The last server that failed so, and when kaas saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot_failure: Option<chrono::DateTime<chrono::Utc>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How long kaas waits, after the `failures`th failed boot of a machine's server,
/// before it creates the next: 10 s, doubling each time, at most 10 minutes.
pub fn boot_retry_delay(failures: u32) -> std::time::Duration {
    let doublings = failures.saturating_sub(1).min(6);
    std::time::Duration::from_secs(10 * (1u64 << doublings))
        .min(std::time::Duration::from_secs(600))
}

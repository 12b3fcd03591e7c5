//! Nodes, fed from outside: what the kubelets of a cluster's machines would register and
//! report.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::fields::timestamp;
use crate::object::{self, condition, set_path};
use crate::store::{ObjectKey, State};

/// A node as the machine it runs on says it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    /// `spec.providerID`, e.g. `openstack:///SERVER_ID`.
    pub provider_id: String,
    /// The Ready condition.
    pub ready: bool,
    /// Labels set over the node's own (`kubernetes.io/hostname`, `kubernetes.io/os`, …),
    /// e.g. `topology.kubernetes.io/zone` or `node-role.kubernetes.io/control-plane`.
    /// Labels set through the API stay.
    pub labels: BTreeMap<String, String>,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.33.4`.
    pub kubelet_version: String,
    /// `status.addresses` gets it as the `InternalIP`.
    pub internal_ip: Option<String>,
    /// `spec.taints` when the node registers, e.g. the control plane's
    /// `node-role.kubernetes.io/control-plane:NoSchedule`; afterwards taints are the API's.
    pub taints: Vec<Taint>,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// The taint kubeadm puts on control-plane nodes.
    pub fn control_plane() -> Self {
        Self {
            key: "node-role.kubernetes.io/control-plane".to_owned(),
            value: None,
            effect: "NoSchedule".to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        let mut taint = json!({"key": self.key, "effect": self.effect});
        if let Some(value) = &self.value {
            taint["value"] = json!(value);
        }
        taint
    }
}

fn node_key(name: &str) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        resource: "nodes".to_owned(),
        namespace: String::new(),
        name: name.to_owned(),
    }
}

/// A condition that keeps its transition time while its status stays.
fn condition_at(
    existing: Option<&Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> Value {
    let status = if status { "True" } else { "False" };
    let at = timestamp(now);
    let previous = existing.and_then(|node| condition(node, kind));
    let since = previous
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(at));
    let heartbeat = previous
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastHeartbeatTime").cloned())
        .unwrap_or_else(|| json!(at));
    json!({
        "type": kind,
        "status": status,
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    })
}

/// The Node a kubelet reporting `spec` makes of `existing` (or registers anew).
pub(crate) fn node_object(spec: &NodeSpec, existing: Option<&Value>, now: DateTime<Utc>) -> Value {
    let mut node = existing.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": spec.name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": timestamp(now),
                "labels": {
                    "kubernetes.io/hostname": spec.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
            },
            "spec": {},
        })
    });
    if existing.is_none() && !spec.taints.is_empty() {
        let taints = spec.taints.iter().map(Taint::to_json).collect();
        set_path(&mut node, &["spec", "taints"], taints);
    }
    if let Some(meta) = object::metadata_mut(&mut node) {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &spec.labels {
                labels.insert(k.clone(), json!(v));
            }
        }
    }
    if !spec.provider_id.is_empty() {
        set_path(&mut node, &["spec", "providerID"], json!(spec.provider_id));
    }
    let (reason, message) = if spec.ready {
        ("KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "KubeletNotReady",
            "container runtime network not ready (simulated)",
        )
    };
    let mut addresses = Vec::new();
    if let Some(ip) = &spec.internal_ip {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    addresses.push(json!({"type": "Hostname", "address": spec.name}));
    let resources = json!({"cpu": "4", "memory": "8148204Ki", "pods": "110", "ephemeral-storage": "40470732Ki"});
    let healthy = |kind: &str, reason: &str, message: &str| {
        condition_at(existing, kind, false, reason, message, now)
    };
    let status = json!({
        "conditions": [
            healthy("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            healthy("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            healthy("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition_at(existing, "Ready", spec.ready, reason, message, now),
        ],
        "addresses": addresses,
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "kubeletVersion": spec.kubelet_version,
            "kubeProxyVersion": spec.kubelet_version,
            "containerRuntimeVersion": "containerd://1.7.27",
            "osImage": "Ubuntu 24.04.2 LTS",
            "kernelVersion": "6.8.0-60-generic",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    });
    set_path(&mut node, &["status"], status);
    node
}

/// Makes the Node objects those of `nodes`: creates the new ones, updates the others
/// (labels, provider id, readiness, version; `spec.unschedulable` and taints stay as
/// the API left them) and deletes the rest. Writes only what changed.
pub(crate) fn set_nodes(state: &mut State, nodes: &[NodeSpec], now: DateTime<Utc>) {
    let wanted: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let gone: Vec<ObjectKey> = state
        .of_resource("", "nodes")
        .filter(|(k, _)| !wanted.contains(k.name.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        state.remove(&key);
    }
    for spec in nodes {
        let key = node_key(&spec.name);
        let existing = state.get(&key).cloned();
        let node = node_object(spec, existing.as_ref(), now);
        if existing.as_ref() != Some(&node) {
            state.put(key, node);
        }
    }
}

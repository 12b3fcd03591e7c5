//! The cluster's nodes, as [`kaas_cloud::Node`]s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node as KubeNode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kaas_cloud::{Node, WorkloadError};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::WorkloadClient;

impl WorkloadClient {
    /// All nodes: the Ready condition and when it last changed, `spec.providerID`, the
    /// kubelet's version, whether the node is cordoned, and its labels. A node whose
    /// lease in `kube-node-lease` ran out is not Ready, whatever its condition still
    /// says (its kubelet stopped reporting), from the moment the lease ran out.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn nodes(&self) -> Result<Vec<Node>, WorkloadError> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| self.error(e))?;
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        // Without leases (an API that serves none), the Ready condition alone decides.
        let leases: HashMap<String, DateTime<Utc>> = match leases.list(&ListParams::default()).await
        {
            Ok(list) => list.items.iter().filter_map(lease_end).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the node leases");
                HashMap::new()
            }
        };
        let now = Utc::now();
        Ok(list
            .items
            .iter()
            .map(|n| {
                with_lease(
                    node(n),
                    leases.get(n.metadata.name.as_deref().unwrap_or("")),
                    now,
                )
            })
            .collect())
    }

    /// Deletes the Node `name`; one that is not there is no error.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, node = %name))]
    pub async fn delete_node(&self, name: &str) -> Result<(), WorkloadError> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        match nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::error::api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// A Kubernetes Node as kaas sees it.
pub(crate) fn node(node: &KubeNode) -> Node {
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"));
    Node {
        name: node.metadata.name.clone().unwrap_or_default(),
        provider_id: spec.and_then(|s| s.provider_id.clone()).unwrap_or_default(),
        ready: ready.is_some_and(|c| c.status == "True"),
        kubelet_version: status
            .and_then(|s| s.node_info.as_ref())
            .map(|info| info.kubelet_version.clone())
            .unwrap_or_default(),
        last_transition: ready
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(chrono_time),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        labels: node.metadata.labels.clone().unwrap_or_default(),
    }
}

fn chrono_time(time: &Time) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(time.0.as_second(), nanos)
}

fn chrono_micro_time(time: &MicroTime) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(time.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(time.0.as_second(), nanos)
}

/// Where the kubelets renew their node leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a lease holds at least, as the node lifecycle controller's grace period.
const LEASE_GRACE_SECONDS: i64 = 40;

/// The node a lease is for, and when it runs out.
fn lease_end(lease: &Lease) -> Option<(String, DateTime<Utc>)> {
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref().and_then(chrono_micro_time)?;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0)).max(LEASE_GRACE_SECONDS);
    Some((
        lease.metadata.name.clone()?,
        renewed + chrono::Duration::seconds(duration),
    ))
}

/// A Ready node whose lease ran out is NotReady since then.
fn with_lease(mut node: Node, lease_end: Option<&DateTime<Utc>>, now: DateTime<Utc>) -> Node {
    if let Some(end) = lease_end
        && node.ready
        && *end < now
    {
        node.ready = false;
        node.last_transition = Some(*end);
    }
    node
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn kube_node(value: serde_json::Value) -> KubeNode {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("not a node: {e}"))
    }

    #[test]
    fn a_ready_cordoned_node() {
        let n = node(&kube_node(json!({
            "metadata": {"name": "worker-0", "labels": {"topology.kubernetes.io/zone": "az1"}},
            "spec": {"providerID": "openstack:///abc", "unschedulable": true},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "True",
                     "lastTransitionTime": "2026-02-03T04:05:06Z"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.35.2", "architecture": "amd64",
                    "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
                    "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux",
                    "osImage": "", "systemUUID": ""
                },
            },
        })));
        assert_eq!(
            n,
            Node {
                name: "worker-0".to_owned(),
                provider_id: "openstack:///abc".to_owned(),
                ready: true,
                kubelet_version: "v1.35.2".to_owned(),
                last_transition: DateTime::from_timestamp(1_770_091_506, 0),
                unschedulable: true,
                labels: BTreeMap::from([(
                    "topology.kubernetes.io/zone".to_owned(),
                    "az1".to_owned()
                )]),
            }
        );
    }

    #[test]
    fn a_node_whose_lease_ran_out_is_not_ready_since_then() {
        let ready = || Node {
            name: "w".to_owned(),
            provider_id: String::new(),
            ready: true,
            kubelet_version: String::new(),
            last_transition: DateTime::from_timestamp(1_000, 0),
            unschedulable: false,
            labels: BTreeMap::new(),
        };
        let now = DateTime::from_timestamp(10_000, 0).unwrap();
        let lease = |renewed: &str, seconds: i32| {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": "w", "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": "w", "leaseDurationSeconds": seconds,
                         "renewTime": renewed},
            }))
            .unwrap();
            lease_end(&lease).unwrap()
        };
        // Renewed 30 s ago, holding 40 s: Ready.
        let (name, fresh) = lease("1970-01-01T02:46:10.000000Z", 40);
        assert_eq!(name, "w");
        assert_eq!(with_lease(ready(), Some(&fresh), now), ready());
        // Renewed 100 s ago: NotReady since it ran out (renewal + 40 s).
        let (_, stale) = lease("1970-01-01T02:45:00.000000Z", 40);
        let n = with_lease(ready(), Some(&stale), now);
        assert!(!n.ready);
        assert_eq!(n.last_transition, DateTime::from_timestamp(9_940, 0));
        // A shorter lease still gets the 40 s grace; no lease: the condition decides.
        let (_, short) = lease("1970-01-01T02:46:10.000000Z", 10);
        assert!(with_lease(ready(), Some(&short), now).ready);
        assert!(with_lease(ready(), None, now).ready);
    }

    #[test]
    fn a_node_without_status_is_not_ready() {
        let n = node(&kube_node(json!({"metadata": {"name": "new"}})));
        assert!(!n.ready);
        assert!(!n.unschedulable);
        assert_eq!(n.last_transition, None);
        assert_eq!(n.provider_id, "");
    }
}

//! The cluster's nodes, as [`kaas_cloud::Node`]s.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Node as KubeNode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kaas_cloud::{Node, WorkloadError};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::WorkloadClient;

impl WorkloadClient {
    /// All nodes: the Ready condition and when it last changed, `spec.providerID`, the
    /// kubelet's version, whether the node is cordoned, and its labels.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn nodes(&self) -> Result<Vec<Node>, WorkloadError> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| self.error(e))?;
        Ok(list.items.iter().map(node).collect())
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

#[cfg(test)]
mod tests {
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
    fn a_node_without_status_is_not_ready() {
        let n = node(&kube_node(json!({"metadata": {"name": "new"}})));
        assert!(!n.ready);
        assert!(!n.unschedulable);
        assert_eq!(n.last_transition, None);
        assert_eq!(n.provider_id, "");
    }
}

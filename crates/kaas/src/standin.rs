//! Machines that stand in for the kubelets and etcd of a real cloud's servers that run
//! none (a test cloud with a fake hypervisor): `kaas server --cloud openstack
//! --simulate-workloads`. A server's node is Ready as soon as the cloud reports the
//! server ACTIVE; the API answers once a control-plane server is ACTIVE; etcd holds the
//! ACTIVE control planes whose member was not removed. The nodes are served by a
//! simulated API server (the gateway), where drains evict pods as in any cluster.
//!
//! Everything is read from the cloud (servers found by the cluster's tag, roles from
//! their `kaas-role=` tag), so nothing here needs to survive a restart except the
//! removed etcd members, which the planner removes again if a restart forgot them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use kaas_cloud::{
    CloudResource, EtcdMembership, Node, ResourceKind, ResourceStatus, SimulatedMachines,
    TenantClouds, WorkloadClusterRef, WorkloadError,
};
use kaas_controller::cluster::plan::ROLE_TAG_PREFIX;
use kaas_core::naming::cluster_tag;

/// The stand-in machines over `cloud`, in `region`.
pub struct StandInMachines {
    clouds: Arc<dyn TenantClouds>,
    region: String,
    /// Per cluster uid: etcd members removed.
    state: Mutex<BTreeMap<String, Bookkeeping>>,
}

#[derive(Debug, Default)]
struct Bookkeeping {
    removed_members: BTreeSet<String>,
}

impl StandInMachines {
    pub fn new(clouds: Arc<dyn TenantClouds>, region: &str) -> Self {
        Self {
            clouds,
            region: region.to_owned(),
            state: Mutex::new(BTreeMap::new()),
        }
    }

    async fn servers(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<CloudResource>, WorkloadError> {
        let cloud = self
            .clouds
            .cloud(&cluster.tenant)
            .await
            .map_err(|e| unreachable(cluster, e.to_string()))?;
        let servers = cloud
            .find(ResourceKind::Server, &cluster_tag(&cluster.cluster_uid))
            .await
            .map_err(|e| unreachable(cluster, e.to_string()))?;
        let control_plane_up = servers
            .iter()
            .any(|s| is_control_plane(s) && s.status == ResourceStatus::Active);
        if !control_plane_up {
            return Err(unreachable(
                cluster,
                "no control-plane server is ACTIVE yet".to_owned(),
            ));
        }
        Ok(servers)
    }

    /// What kubeadm (the role) and the cloud controller (region) label a node with.
    fn labels(&self, server: &CloudResource) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(
            "topology.kubernetes.io/region".to_owned(),
            self.region.clone(),
        )]);
        if is_control_plane(server) {
            labels.insert(
                "node-role.kubernetes.io/control-plane".to_owned(),
                String::new(),
            );
        }
        labels
    }

    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Bookkeeping) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(state.entry(uid.to_owned()).or_default())
    }
}

fn role(server: &CloudResource) -> Option<&str> {
    server
        .tags
        .iter()
        .find_map(|t| t.strip_prefix(ROLE_TAG_PREFIX))
}

fn is_control_plane(server: &CloudResource) -> bool {
    matches!(role(server), Some("init" | "control-plane"))
}

fn unreachable(cluster: &WorkloadClusterRef, message: String) -> WorkloadError {
    WorkloadError::Unreachable {
        endpoint: cluster.api_endpoint.clone(),
        message,
    }
}

#[async_trait]
impl SimulatedMachines for StandInMachines {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        let servers = self.servers(cluster).await?;
        Ok(servers
            .iter()
            .filter(|s| s.status == ResourceStatus::Active)
            .map(|s| Node {
                name: s.name.clone(),
                provider_id: format!("openstack:///{}", s.id),
                ready: true,
                kubelet_version: String::new(),
                last_transition: Some(Utc::now()),
                unschedulable: false,
                labels: self.labels(s),
            })
            .collect())
    }
}

#[async_trait]
impl EtcdMembership for StandInMachines {
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError> {
        let servers = self.servers(cluster).await?;
        let removed = self.with(&cluster.cluster_uid, |b| b.removed_members.clone());
        Ok(servers
            .iter()
            .filter(|s| is_control_plane(s) && s.status == ResourceStatus::Active)
            .map(|s| s.name.clone())
            .filter(|n| !removed.contains(n))
            .collect())
    }

    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        self.servers(cluster).await?;
        self.with(&cluster.cluster_uid, |b| {
            b.removed_members.insert(node.to_owned())
        });
        Ok(())
    }
}

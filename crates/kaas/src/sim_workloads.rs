//! The workload clusters of `kaas sim serve`: its servers boot from their user data as
//! real ones would. Once a control-plane server is `ACTIVE`, what cloud-init and
//! kubeadm would read from its user data (the kubeadm configuration, and the cluster's
//! CAs and service-account key in kubeadm's layout) says which cluster it inits or
//! joins, at which endpoint, and with which CAs; the gateway then serves that cluster's
//! API (a simulated API server with a serving certificate from the cluster's CA for
//! the names kubeadm's `certSANs` give), its nodes registered and reported by simulated
//! kubelets and its etcd answered by a stand-in, as in `kaas server`'s own simulation.
//! When and whether nodes join, go NotReady and leave etcd is the simulated cloud's
//! own model of its servers ([`SimCloud`] as [`kaas_cloud::SimulatedMachines`]).
//!
//! A cluster is served as soon as a control plane of it has booted, whether or not a
//! client has asked for it yet, so its nodes register when their machines boot.
//! Nothing here reads kaas's store: what a cluster is comes from its machines alone.
//! Its clients reach it through the cluster proxy ([`crate::sim_proxy`]), at its API
//! load balancer's floating IP (or VIP), port 6443.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kaas_bootstrap::{ApiServerSans, BootedMachine, NodeRole, read_user_data};
use kaas_cloud::WorkloadClusterRef;
use kaas_sim::{BootingServer, SimCloud};
use tracing::debug;

use crate::gateway::{BootedClusters, ClusterBoot};

/// The service network kubeadm takes when its configuration names none (a cluster
/// whose `init` server is gone is served from a joined control plane's user data,
/// which carries no ClusterConfiguration).
const KUBEADM_SERVICE_CIDR: &str = "10.96.0.0/12";

/// The port an API load balancer listens on.
pub const API_PORT: u16 = 6443;

/// What the simulated cloud's servers booted with, read from their user data once per
/// server.
pub struct MachineBoots {
    sim: SimCloud,
    /// By server id: what its user data says, or why it cannot be read.
    read: Mutex<HashMap<String, Arc<Result<BootedMachine, String>>>>,
}

impl MachineBoots {
    pub fn new(sim: SimCloud) -> Self {
        Self {
            sim,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// What `server` boots with.
    fn booted(&self, server: &BootingServer) -> Arc<Result<BootedMachine, String>> {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.entry(server.id.clone())
            .or_insert_with(|| {
                let booted = read_user_data(&server.user_data).map_err(|e| e.to_string());
                if let Err(e) = &booted {
                    debug!(server = %server.name, error = %e, "a server's user data is not kaas's: it joins no cluster");
                }
                Arc::new(booted)
            })
            .clone()
    }

    /// The `ACTIVE` servers of cluster `uid` with what they booted with, in creation
    /// order; forgets what it read of servers gone.
    fn machines(&self, uid: &str) -> Vec<(BootingServer, BootedMachine)> {
        let servers = self.sim.cluster_servers(uid);
        servers
            .into_iter()
            .filter(|s| s.active)
            .filter_map(|s| {
                let booted = self.booted(&s);
                booted.as_ref().as_ref().ok().cloned().map(|b| (s, b))
            })
            .collect()
    }

    /// The cluster whose API answers at `host` (its API load balancer's floating IP or
    /// VIP) on `port`, as its clients refer to it; `None` where no cluster's API is.
    pub fn cluster_at(&self, host: &str, port: u16) -> Option<WorkloadClusterRef> {
        if port != API_PORT {
            return None;
        }
        self.cluster(&self.sim.cluster_at(host)?)
    }

    /// Cluster `uid` as its clients refer to it, once a control plane has booted.
    pub fn cluster(&self, uid: &str) -> Option<WorkloadClusterRef> {
        let machines = self.machines(uid);
        let (_, first) = machines.iter().find(|(_, m)| m.role.is_control_plane())?;
        let name = machines
            .iter()
            .find_map(|(_, m)| m.cluster.as_ref().map(|c| c.name.clone()))
            .unwrap_or_default();
        Some(WorkloadClusterRef {
            cluster_name: name,
            ..WorkloadClusterRef::new(uid, &format!("https://{}", first.endpoint))
        })
    }

    /// Forgets what it read of servers that are gone.
    pub fn forget_gone(&self) {
        let existing: HashSet<String> = self
            .sim
            .inventory()
            .into_iter()
            .filter(|r| r.kind == "server")
            .map(|r| r.id)
            .collect();
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| existing.contains(id));
    }
}

/// `host` of a `host:port` endpoint (IPv6 in brackets).
fn endpoint_host(endpoint: &str) -> &str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[async_trait]
impl BootedClusters for MachineBoots {
    async fn boot(&self, cluster: &WorkloadClusterRef) -> Result<ClusterBoot, String> {
        let machines = self.machines(&cluster.cluster_uid);
        let control_planes: Vec<&(BootingServer, BootedMachine)> = machines
            .iter()
            .filter(|(_, m)| m.role.is_control_plane())
            .collect();
        let (_, first) = control_planes
            .first()
            .ok_or_else(|| "no control plane has booted".to_owned())?;
        let pki = first
            .pki
            .clone()
            .ok_or_else(|| "the control plane's user data has no CA".to_owned())?;
        let init = control_planes
            .iter()
            .find(|(_, m)| m.role == NodeRole::Init)
            .and_then(|(_, m)| m.cluster.clone());
        // The newest version a control plane runs: the API server's after an upgrade.
        let newest = control_planes
            .iter()
            .filter_map(|(s, _)| s.kubernetes_version.clone())
            .max_by(|a, b| version_order(a).cmp(&version_order(b)));
        let (service_cidr, cert_sans, version) = match init {
            Some(c) => (
                c.service_cidr,
                c.cert_sans,
                newest.unwrap_or(c.kubernetes_version),
            ),
            None => (
                KUBEADM_SERVICE_CIDR.to_owned(),
                Vec::new(),
                newest.unwrap_or_else(|| kaas_kube_sim::DEFAULT_VERSION.to_owned()),
            ),
        };
        Ok(ClusterBoot {
            pki,
            sans: ApiServerSans {
                service_cidr,
                load_balancer_address: endpoint_host(&first.endpoint).to_owned(),
                floating_ip: None,
                extra: cert_sans,
            },
            version,
        })
    }

    async fn exists(&self, cluster: &WorkloadClusterRef) -> bool {
        !self.sim.cluster_servers(&cluster.cluster_uid).is_empty()
    }

    async fn live(&self) -> Result<HashSet<String>, String> {
        Ok(self
            .sim
            .inventory()
            .into_iter()
            .filter(|r| r.kind == "server")
            .flat_map(|r| r.tags)
            .filter_map(|t| {
                t.strip_prefix(kaas_sim::CLUSTER_TAG_PREFIX)
                    .map(str::to_owned)
            })
            .collect())
    }
}

/// `v1.MINOR.PATCH` as numbers, for ordering (anything else sorts first).
fn version_order(version: &str) -> Vec<u64> {
    version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map_while(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_their_host() {
        assert_eq!(endpoint_host("203.0.113.7:6443"), "203.0.113.7");
        assert_eq!(endpoint_host("[2001:db8::1]:6443"), "2001:db8::1");
        assert_eq!(endpoint_host("api.example.com"), "api.example.com");
    }

    #[test]
    fn versions_order_by_number() {
        assert!(version_order("v1.36.0") > version_order("v1.9.9"));
        assert!(version_order("v1.36.10") > version_order("v1.36.9"));
    }
}

//! The workload clusters as kaas reaches them: the Kubernetes API through the kube-rs
//! client (`kaas-kube`), at the URL [`ApiRoutes`] gives, with the client certificate
//! the controller issued; etcd membership from the machines (kaas does not speak to
//! etcd itself yet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kaas_cloud::{
    AddonsApplied, ApiRoutes, DrainProgress, Node, ObjectReadiness, SimulatedMachines,
    WorkloadClusterRef, WorkloadClusters, WorkloadError,
};
use kaas_kube::{ClusterAccess, WorkloadClient};
use serde_json::Value;

pub struct KubeWorkloads {
    routes: Arc<dyn ApiRoutes>,
    etcd: Arc<dyn SimulatedMachines>,
    /// Per cluster uid: the client, with the URL and credentials it was built for.
    clients: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    url: String,
    credentials: Arc<kaas_cloud::ClientCredentials>,
    client: WorkloadClient,
}

impl KubeWorkloads {
    pub fn new(routes: Arc<dyn ApiRoutes>, etcd: Arc<dyn SimulatedMachines>) -> Self {
        Self {
            routes,
            etcd,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client(&self, cluster: &WorkloadClusterRef) -> Result<WorkloadClient, WorkloadError> {
        let credentials =
            cluster
                .credentials
                .clone()
                .ok_or_else(|| WorkloadError::Unreachable {
                    endpoint: cluster.api_endpoint.clone(),
                    message: "kaas has no client certificate for the cluster yet".to_owned(),
                })?;
        let url = self.routes.url(cluster).await?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&cluster.cluster_uid)
            && c.url == url
            && Arc::ptr_eq(&c.credentials, &credentials)
        {
            return Ok(c.client.clone());
        }
        let client = WorkloadClient::new(&ClusterAccess {
            url: url.clone(),
            ca_cert_pem: credentials.ca_cert_pem.clone(),
            client_cert_pem: credentials.client_cert_pem.clone(),
            client_key_pem: credentials.client_key_pem.clone(),
        })?;
        clients.insert(
            cluster.cluster_uid.clone(),
            Cached {
                url,
                credentials,
                client: client.clone(),
            },
        );
        Ok(client)
    }
}

#[async_trait]
impl WorkloadClusters for KubeWorkloads {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        self.client(cluster).await?.nodes().await
    }

    async fn drain(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<DrainProgress, WorkloadError> {
        self.client(cluster).await?.drain(node).await
    }

    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError> {
        self.etcd.etcd_members(cluster).await
    }

    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        self.etcd.remove_etcd_member(cluster, node).await
    }

    async fn apply(
        &self,
        cluster: &WorkloadClusterRef,
        set: &str,
        objects: &[Value],
    ) -> Result<AddonsApplied, WorkloadError> {
        let report = self.client(cluster).await?.apply(set, objects).await?;
        Ok(AddonsApplied {
            applied: report.applied,
            pruned: report
                .pruned
                .iter()
                .map(kaas_kube::ObjectRef::short)
                .collect(),
        })
    }

    async fn readiness(
        &self,
        cluster: &WorkloadClusterRef,
        objects: &[Value],
    ) -> Result<Vec<ObjectReadiness>, WorkloadError> {
        let readiness = self.client(cluster).await?.readiness(objects).await?;
        Ok(readiness
            .into_iter()
            .map(|r| ObjectReadiness {
                object: r.object.short(),
                ready: r.ready,
                missing: r.missing,
                message: r.message,
            })
            .collect())
    }
}

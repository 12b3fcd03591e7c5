//! Simulated workload clusters, served as Kubernetes: each cluster's API is a simulated
//! API server (`kaas-kube-sim`) on a port of its own on `127.0.0.1`, over TLS with a
//! serving certificate from the cluster's CA, and only for clients with a certificate
//! from that CA, as a real cluster's API. kaas's own client and `kubectl` with a
//! kubeconfig from `kaas cluster kubeconfig` reach it the same way.
//!
//! What the cluster's machines would tell their API server comes from
//! [`SimulatedMachines`], at every request: the nodes that joined, Ready or not, with
//! their labels; and no answer at all (503) while no control plane runs. Nodes whose
//! drain an operator blocked (`kaas sim node N --block-drain`) get a pod protected by a
//! PodDisruptionBudget, so evictions from them are refused as in a real cluster.
//!
//! The API servers live in memory: after a restart of kaas they come back empty, and
//! the controller, finding the addons missing, applies them again.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kaas_bootstrap::{ApiServerSans, ClusterPki, issue_apiserver_cert};
use kaas_cloud::{ApiRoutes, Node, SimulatedMachines, WorkloadClusterRef, WorkloadError};
use kaas_core::Cluster;
use kaas_core::naming::pki_secret;
use kaas_core::stack::StackCatalog;
use kaas_kube_sim::{ApiServer, NodeSpec, Taint, router, serve_tls};
use kaas_store::{SecretBox, Secrets, Store, StoreExt};
use serde_json::json;
use tokio::sync::{Mutex, watch};
use tracing::{debug, info, warn};

/// How often the simulated controllers (deployments, daemonsets, scheduler, kubelets)
/// run, in the simulation's time.
const CONTROLLER_PERIOD: Duration = Duration::from_secs(2);
/// The fastest they run, whatever the simulation's speed.
const MIN_CONTROLLER_PERIOD: Duration = Duration::from_millis(50);
/// The namespace and label of the pods that stand for protected workloads.
const PROTECTED_NAMESPACE: &str = "default";
const PROTECTED_LABEL: &str = "kaas.dev/protected-on";
/// The field manager of what the gateway writes into a simulated cluster.
const MANAGER: &str = "kaas-sim";

/// The nodes of a cluster (by uid) whose drains an operator blocked.
pub type BlockedNodes = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// The simulated API servers, by cluster uid.
pub struct Gateway {
    machines: Arc<dyn SimulatedMachines>,
    /// Nodes whose drain is blocked, by cluster uid.
    blocked: Option<BlockedNodes>,
    store: Arc<dyn Store>,
    sealer: Arc<SecretBox>,
    stacks: Arc<StackCatalog>,
    controller_period: Duration,
    shutdown: watch::Receiver<bool>,
    /// The URL of each cluster served, by uid.
    served: Mutex<HashMap<String, String>>,
}

impl Gateway {
    /// A gateway whose simulated clusters run `speed` times faster than real time and
    /// stop serving when `shutdown` turns true.
    pub fn new(
        machines: Arc<dyn SimulatedMachines>,
        blocked: Option<BlockedNodes>,
        store: Arc<dyn Store>,
        sealer: Arc<SecretBox>,
        stacks: Arc<StackCatalog>,
        speed: f64,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            machines,
            blocked,
            store,
            sealer,
            stacks,
            controller_period: CONTROLLER_PERIOD.div_f64(speed).max(MIN_CONTROLLER_PERIOD),
            shutdown,
            served: Mutex::new(HashMap::new()),
        }
    }

    /// Starts serving cluster `cluster`: a serving certificate from its CA, a port.
    async fn serve(&self, cluster: &WorkloadClusterRef) -> Result<String, WorkloadError> {
        let failed = |message: String| WorkloadError::Unreachable {
            endpoint: cluster.api_endpoint.clone(),
            message,
        };
        let stored: Cluster = self
            .store
            .get_obj(&cluster.tenant, &cluster.cluster_name)
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed(format!("cluster {} is gone", cluster.cluster_name)))?;
        let data = Secrets::new(self.store.as_ref(), &self.sealer)
            .get(&cluster.tenant, &pki_secret(&cluster.cluster_name))
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed("the cluster has no CA yet".to_owned()))?;
        let pki: ClusterPki =
            serde_json::from_value(data).map_err(|e| failed(format!("the stored PKI: {e}")))?;
        let sans = ApiServerSans {
            service_cidr: stored.spec.network.service_cidr.clone(),
            load_balancer_address: Ipv4Addr::LOCALHOST.to_string(),
            floating_ip: None,
            extra: Vec::new(),
        };
        let serving = issue_apiserver_cert(&pki, &sans, chrono::Utc::now())
            .map_err(|e| failed(e.to_string()))?;
        let version = self
            .stacks
            .find(&stored.spec.stack)
            .map(|s| s.spec.kubernetes_version.clone());
        let api = Arc::new(match version {
            Some(v) => ApiServer::with_version(&v),
            None => ApiServer::new(),
        });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| failed(format!("cannot listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| failed(format!("cannot listen: {e}")))?;
        let sync = Arc::new(ClusterSync {
            machines: self.machines.clone(),
            blocked: self.blocked.clone(),
            cluster: WorkloadClusterRef {
                credentials: None,
                ..cluster.clone()
            },
            api: api.clone(),
        });
        let app = router(api.clone()).layer(axum::middleware::from_fn_with_state(sync, sync_first));
        let controllers = api.spawn_controllers(self.controller_period);
        let mut shutdown = self.shutdown.clone();
        let ca = pki.kubernetes_ca.cert_pem.clone();
        let name = cluster.cluster_name.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            if let Err(e) = serve_tls(
                listener,
                app,
                &serving.cert_pem,
                &serving.key_pem,
                &ca,
                stop,
            )
            .await
            {
                warn!(cluster = %name, error = %e, "the simulated API server stopped");
            }
            controllers.abort();
        });
        let url = format!("https://{addr}");
        info!(cluster = %cluster.cluster_name, %url, "serving the simulated cluster's API");
        Ok(url)
    }
}

#[async_trait]
impl ApiRoutes for Gateway {
    async fn url(&self, cluster: &WorkloadClusterRef) -> Result<String, WorkloadError> {
        let mut served = self.served.lock().await;
        if let Some(url) = served.get(&cluster.cluster_uid) {
            return Ok(url.clone());
        }
        let url = self.serve(cluster).await?;
        served.insert(cluster.cluster_uid.clone(), url.clone());
        Ok(url)
    }
}

/// What a request to one simulated cluster first brings up to date.
struct ClusterSync {
    machines: Arc<dyn SimulatedMachines>,
    blocked: Option<BlockedNodes>,
    cluster: WorkloadClusterRef,
    api: Arc<ApiServer>,
}

/// Brings the nodes up to date before the request is served; no answer while the
/// machines say the API server does not run.
async fn sync_first(
    State(sync): State<Arc<ClusterSync>>,
    request: Request,
    next: Next,
) -> Response {
    match sync.machines.nodes(&sync.cluster).await {
        Ok(nodes) => {
            let specs: Vec<NodeSpec> = nodes.iter().map(node_spec).collect();
            sync.api.set_nodes(&specs);
            if let Some(blocked) = &sync.blocked {
                protect(&sync.api, &blocked(&sync.cluster.cluster_uid), &nodes);
            }
            next.run(request).await
        }
        Err(e) => {
            let message = match e {
                WorkloadError::Unreachable { message, .. } | WorkloadError::Api { message } => {
                    message
                }
            };
            let status = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "ServiceUnavailable",
                "code": 503,
            });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(status)).into_response()
        }
    }
}

fn node_spec(node: &Node) -> NodeSpec {
    let control_plane = node
        .labels
        .contains_key("node-role.kubernetes.io/control-plane");
    NodeSpec {
        name: node.name.clone(),
        provider_id: node.provider_id.clone(),
        ready: node.ready,
        labels: node.labels.clone(),
        kubelet_version: node.kubelet_version.clone(),
        internal_ip: None,
        taints: if control_plane {
            vec![Taint::control_plane()]
        } else {
            Vec::new()
        },
    }
}

/// Keeps a protected pod and its disruption budget on each node in `blocked`, and none
/// on the others.
fn protect(api: &ApiServer, blocked: &[String], nodes: &[Node]) {
    for node in nodes {
        let name = format!("protected-{}", node.name);
        let exists = api
            .get(
                "policy/v1",
                "PodDisruptionBudget",
                PROTECTED_NAMESPACE,
                &name,
            )
            .is_some();
        if blocked.contains(&node.name) {
            if exists {
                continue;
            }
            let labels = json!({ PROTECTED_LABEL: node.name });
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": { "name": name, "namespace": PROTECTED_NAMESPACE, "labels": labels },
                "spec": {
                    "nodeName": node.name,
                    "tolerations": [{ "operator": "Exists" }],
                    "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }],
                },
            });
            let budget = json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": { "name": name, "namespace": PROTECTED_NAMESPACE },
                "spec": { "maxUnavailable": 0, "selector": { "matchLabels": labels } },
            });
            for object in [pod, budget] {
                if let Err(e) = api.apply(object, MANAGER) {
                    debug!(error = %e, node = %node.name, "cannot protect the node's pod");
                }
            }
        } else if exists {
            let _ = api.delete(
                "policy/v1",
                "PodDisruptionBudget",
                PROTECTED_NAMESPACE,
                &name,
            );
        }
    }
}

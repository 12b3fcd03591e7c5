//! Simulated workload clusters, served as Kubernetes: each cluster's API is a simulated
//! API server (`kaas-kube-sim`) on a port of its own on `127.0.0.1`, over TLS with a
//! serving certificate from the cluster's CA, and only for clients with a certificate
//! from that CA, as a real cluster's API. kaas's own client and `kubectl` with a
//! kubeconfig from `kaas cluster kubeconfig` reach it the same way.
//!
//! What a cluster booted with (its CAs, the names its API server's certificate
//! carries, its Kubernetes version) and whether it still exists come from
//! [`BootedClusters`]: kaas's own store for the simulation inside `kaas server`
//! ([`StoredClusters`]), its machines' user data for `kaas sim serve`
//! (`crate::sim_workloads`).
//!
//! The nodes come as from real kubelets: once per controller period (and before a
//! request when that is longer ago), the machines
//! ([`SimulatedMachines`]) say which nodes run, Ready or not, and each node's simulated
//! kubelet ([`Kubelet`], with a `system:node:<name>` client certificate from the
//! cluster's CA) registers its Node, reports its status and renews its lease through
//! the cluster's HTTPS API. A node whose machine is gone keeps its Node until kaas
//! deletes it, as in a real cluster. While no control plane runs, the API gives no
//! answer at all (503). Nodes whose drain an operator blocked (`kaas sim node N
//! --block-drain`) get a pod protected by a PodDisruptionBudget, so evictions from them
//! are refused as in a real cluster.
//!
//! A simulated cluster outlives kaas, as a real one would: each API server's objects
//! are written to `<data-dir>/sim-clusters/<uid>.sealed` (sealed like every secret, as
//! they hold the cluster's credentials) a moment after they change, and read back when
//! kaas serves the cluster again. A snapshot that cannot be read (its key was rotated
//! away) is set aside and the cluster starts empty: the controller, finding its addons
//! missing, applies them again. When the cluster is gone, its API server stops and its
//! snapshot is removed; snapshots of clusters deleted while kaas was down are swept
//! when it starts ([`Gateway::sweep`]).
//!
//! Each control plane's etcd answers etcd's own gRPC API, as a stand-in
//! ([`StandInEtcd`], with a serving certificate from the cluster's etcd CA) that the
//! simulated API server's port-forward to the pod `kube-system/etcd-<node>`, port 2379,
//! reaches; its members are the machines' ([`SimulatedMachines`]). kaas reads and
//! changes the membership through that port-forward, as it does a real cluster's.
//!
//! Serving one cluster (reading its CA, issuing a certificate, reading its snapshot)
//! never holds up requests to another: each cluster has a slot of its own, and the
//! snapshot files are read and written off the async runtime.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use kaas_bootstrap::{
    ApiServerSans, ClusterPki, issue_apiserver_cert, issue_etcd_server_cert,
    issue_kubelet_client_cert,
};
use kaas_cloud::{ApiRoute, ApiRoutes, Node, SimulatedMachines, WorkloadClusterRef, WorkloadError};
use kaas_core::Cluster;
use kaas_core::naming::pki_secret;
use kaas_core::stack::StackCatalog;
use kaas_kube_sim::{
    ApiServer, EtcdMembers, KUBELET_USER_AGENT, Kubelet, NodeSpec, PodPorts, PodStream,
    StandInEtcd, Taint, router, serve_tls,
};
use kaas_store::{ListFilter, Sealed, SecretBox, Secrets, Store, StoreExt};
use serde_json::{Value, json};
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
/// How long a simulated kubelet's client certificate is valid (it is issued anew when
/// kaas serves the cluster again).
const KUBELET_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// The simulated controllers run after every change of their cluster, and at least
/// this often.
const CONTROLLERS_PERIOD: Duration = Duration::from_secs(5);

/// The nodes of a cluster (by uid) whose drains an operator blocked.
pub type BlockedNodes = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// The simulated API servers, by cluster uid.
#[derive(Clone)]
pub struct Gateway {
    machines: Arc<dyn SimulatedMachines>,
    /// Nodes whose drain is blocked, by cluster uid.
    blocked: Option<BlockedNodes>,
    /// What each cluster booted with, and whether it still exists.
    clusters: Arc<dyn BootedClusters>,
    /// Seals the snapshots.
    sealer: Arc<SecretBox>,
    controller_period: Duration,
    shutdown: watch::Receiver<bool>,
    /// Where the API servers' snapshots are kept; `None`: in memory only.
    state_dir: Option<PathBuf>,
    /// The URL of each cluster served, by uid.
    served: Served,
    /// The keepers of the clusters served: a stop waits for their last writes.
    keepers: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Where the simulated clusters run: their API servers, kubelets and etcds.
    runtime: tokio::runtime::Handle,
    /// How often a kubelet renews its node lease (real time).
    lease_renew: Duration,
}

/// The URL of each cluster served (`None` while it is being started), by uid. The map's
/// lock is held only to find a cluster's slot; the slot's lock, while it starts.
type Served = Arc<Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>>;

/// How often a changed API server is written down, and a served cluster is checked to
/// still exist.
const PERSIST_PERIOD: Duration = Duration::from_secs(1);

/// What the simulated clusters come from and how they run.
pub struct Simulation {
    /// What their machines say (nodes, etcd).
    pub machines: Arc<dyn SimulatedMachines>,
    /// Nodes whose drains are blocked, where the cloud can say.
    pub blocked: Option<BlockedNodes>,
    /// How much faster than real time they run.
    pub speed: f64,
    /// Where their objects are kept between runs; `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    /// How long the kubelets' node leases hold, in real time (kaas judges leases by
    /// the clock); they are renewed at a quarter of it, as a kubelet renews them.
    pub node_lease: Duration,
    /// The runtime they run on: one of their own keeps what the simulation costs apart
    /// from what kaas costs (its threads are named `kaas-sim`).
    pub runtime: tokio::runtime::Handle,
}

/// What a simulated cluster's control planes booted with: enough to serve its API.
pub struct ClusterBoot {
    /// Its CAs (the API server's certificate and the kubelets' come from its CA, the
    /// stand-in etcd's from its etcd CA).
    pub pki: ClusterPki,
    /// The names its API server's certificate carries.
    pub sans: ApiServerSans,
    /// The Kubernetes version its API server runs.
    pub version: String,
}

/// Where the gateway learns what the clusters it serves booted with, and whether they
/// still exist: kaas's own store (for the simulation inside `kaas server`), or the
/// machines' user data (for `kaas sim serve`).
#[async_trait]
pub trait BootedClusters: Send + Sync {
    /// What `cluster` booted with; an error says why it cannot be served (yet).
    async fn boot(&self, cluster: &WorkloadClusterRef) -> Result<ClusterBoot, String>;

    /// Whether `cluster` still exists (when not sure: yes).
    async fn exists(&self, cluster: &WorkloadClusterRef) -> bool;

    /// The uids of every cluster that exists.
    async fn live(&self) -> Result<HashSet<String>, String>;
}

/// The clusters in kaas's store: their PKI as the controller sealed it, their API at
/// `127.0.0.1` (where the gateway serves it) running their stack's version.
pub struct StoredClusters {
    pub store: Arc<dyn Store>,
    pub sealer: Arc<SecretBox>,
    pub stacks: Arc<StackCatalog>,
}

#[async_trait]
impl BootedClusters for StoredClusters {
    async fn boot(&self, cluster: &WorkloadClusterRef) -> Result<ClusterBoot, String> {
        let stored: Cluster = self
            .store
            .get_obj(&cluster.tenant, &cluster.cluster_name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("cluster {} is gone", cluster.cluster_name))?;
        let data = Secrets::new(self.store.as_ref(), &self.sealer)
            .get(&cluster.tenant, &pki_secret(&cluster.cluster_name))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the cluster has no CA yet".to_owned())?;
        let pki: ClusterPki =
            serde_json::from_value(data).map_err(|e| format!("the stored PKI: {e}"))?;
        let sans = ApiServerSans {
            service_cidr: stored.spec.network.service_cidr.clone(),
            load_balancer_address: Ipv4Addr::LOCALHOST.to_string(),
            floating_ip: None,
            extra: Vec::new(),
        };
        let version = self
            .stacks
            .find(&stored.spec.stack)
            .map(|s| s.spec.kubernetes_version.clone())
            .unwrap_or_else(|| kaas_kube_sim::DEFAULT_VERSION.to_owned());
        Ok(ClusterBoot { pki, sans, version })
    }

    async fn exists(&self, cluster: &WorkloadClusterRef) -> bool {
        match self
            .store
            .get_obj::<Cluster>(&cluster.tenant, &cluster.cluster_name)
            .await
        {
            Ok(Some(c)) => c.metadata.uid == cluster.cluster_uid,
            Ok(None) => false,
            // Not sure: keep it.
            Err(_) => true,
        }
    }

    async fn live(&self) -> Result<HashSet<String>, String> {
        let clusters: Vec<Cluster> = self
            .store
            .list_obj(&ListFilter::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(clusters.into_iter().map(|c| c.metadata.uid).collect())
    }
}

impl Gateway {
    /// A gateway for `simulation`'s clusters, which booted as `clusters` says; their
    /// snapshots are sealed by `sealer`; it stops serving when `shutdown` turns true.
    pub fn new(
        simulation: Simulation,
        clusters: Arc<dyn BootedClusters>,
        sealer: Arc<SecretBox>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let speed = if simulation.speed.is_finite() && simulation.speed > 0.0 {
            simulation.speed
        } else {
            1.0
        };
        Self {
            machines: simulation.machines,
            blocked: simulation.blocked,
            clusters,
            sealer,
            controller_period: CONTROLLER_PERIOD.div_f64(speed).max(MIN_CONTROLLER_PERIOD),
            shutdown,
            state_dir: simulation.state_dir,
            served: Arc::new(Mutex::new(HashMap::new())),
            keepers: Arc::default(),
            runtime: simulation.runtime,
            lease_renew: simulation.node_lease / 4,
        }
    }

    /// Once kaas stops: waits until every served cluster's keeper has written it down
    /// as it was at the stop (a stop that did not wait could lose the last changes).
    pub async fn stopped(&self) {
        let mut shutdown = self.shutdown.clone();
        let _ = shutdown.wait_for(|stop| *stop).await;
        let keepers: Vec<_> =
            std::mem::take(&mut *self.keepers.lock().unwrap_or_else(|e| e.into_inner()));
        for keeper in keepers {
            if let Err(e) = keeper.await
                && !e.is_cancelled()
            {
                warn!(error = %e, "a simulated cluster's keeper ended abnormally");
            }
        }
    }

    /// Removes the snapshots of clusters that no longer exist (deleted while kaas was
    /// down, or before their snapshot's removal was written through); returns how
    /// many. A snapshot of a cluster that exists is kept, served or not.
    pub async fn sweep(&self) -> Result<usize, String> {
        let Some(dir) = self.state_dir.clone() else {
            return Ok(0);
        };
        let live = self.clusters.live().await?;
        let swept = tokio::task::spawn_blocking(move || sweep_dir(&dir, &live))
            .await
            .map_err(|e| e.to_string())??;
        if swept > 0 {
            info!(
                swept,
                "removed the snapshots of simulated clusters that are gone"
            );
        }
        Ok(swept)
    }

    /// Starts serving cluster `cluster`: a serving certificate from its CA, a port.
    async fn serve(&self, cluster: &WorkloadClusterRef) -> Result<String, WorkloadError> {
        let failed = |message: String| WorkloadError::Unreachable {
            endpoint: cluster.api_endpoint.clone(),
            message,
        };
        let ClusterBoot { pki, sans, version } =
            self.clusters.boot(cluster).await.map_err(failed)?;
        let serving = issue_apiserver_cert(&pki, &sans, chrono::Utc::now())
            .map_err(|e| failed(e.to_string()))?;
        let restored = match &self.state_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.sealed", cluster.cluster_uid));
                let (sealer, uid, v) = (
                    self.sealer.clone(),
                    cluster.cluster_uid.clone(),
                    version.clone(),
                );
                tokio::task::spawn_blocking(move || restore(&path, &sealer, &uid, &v))
                    .await
                    .map_err(|e| failed(e.to_string()))?
            }
            None => None,
        };
        let api = Arc::new(restored.unwrap_or_else(|| ApiServer::with_version(&version)));
        let etcd_serving = issue_etcd_server_cert(&pki, "etcd", &[], chrono::Utc::now())
            .map_err(|e| failed(e.to_string()))?;
        let etcd = StandInEtcd::start(
            Arc::new(MachinesEtcd {
                machines: self.machines.clone(),
                cluster: WorkloadClusterRef {
                    credentials: None,
                    ..cluster.clone()
                },
            }),
            &etcd_serving.cert_pem,
            &etcd_serving.key_pem,
            &pki.etcd_ca.cert_pem,
        )
        .map_err(|e| failed(format!("the stand-in etcd: {e}")))?;
        api.set_pod_ports(Arc::new(ControlPlanePorts { etcd }));
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
            down: std::sync::Mutex::new(None),
            kubelets: Mutex::new(None),
            fresh_for: self.controller_period,
        });
        let app = router(api.clone()).layer(axum::middleware::from_fn_with_state(
            sync.clone(),
            sync_first,
        ));
        let controllers = api.spawn_controllers(self.controller_period.max(CONTROLLERS_PERIOD));
        let (gone_tx, mut gone) = watch::channel(false);
        let keeper = tokio::spawn(keep(
            Keeper {
                api: api.clone(),
                clusters: self.clusters.clone(),
                sealer: self.sealer.clone(),
                path: self
                    .state_dir
                    .as_ref()
                    .map(|d| d.join(format!("{}.sealed", cluster.cluster_uid))),
                cluster: cluster.clone(),
                served: self.served.clone(),
                gone: gone_tx,
            },
            self.shutdown.clone(),
        ));
        let keeper_abort = keeper.abort_handle();
        {
            let mut keepers = self.keepers.lock().unwrap_or_else(|e| e.into_inner());
            keepers.retain(|k| !k.is_finished());
            keepers.push(keeper);
        }
        let mut shutdown = self.shutdown.clone();
        let ca = pki.kubernetes_ca.cert_pem.clone();
        let name = cluster.cluster_name.clone();
        let url = format!("https://{addr}");
        // The kubelets stop with the server: when kaas stops, or the cluster is gone.
        let (kubelets_stop_tx, kubelets_stop) = watch::channel(false);
        let kubelets = Kubelets {
            url: url.clone(),
            pki,
            by_node: HashMap::new(),
            renew_every: self.lease_renew,
            reported_at: None,
        };
        let served = self.served.clone();
        let uid = cluster.cluster_uid.clone();
        tokio::spawn(async move {
            let stop = async move {
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => {}
                    _ = gone.wait_for(|gone| *gone) => {}
                }
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
                // The next request serves the cluster afresh, with a keeper of its own.
                keeper_abort.abort();
            }
            controllers.abort();
            let _ = kubelets_stop_tx.send(true);
            // Not served any more: the next request serves it afresh.
            served.lock().await.remove(&uid);
        });
        // The kubelets report before the cluster's URL is handed out, so that its first
        // reader finds the nodes that run; then every controller period, and before a
        // request when their last report is older.
        *sync.kubelets.lock().await = Some(kubelets);
        sync.refresh().await;
        tokio::spawn(run_kubelets(sync, self.controller_period, kubelets_stop));
        info!(cluster = %cluster.cluster_name, %url, "serving the simulated cluster's API");
        Ok(url)
    }
}

#[async_trait]
impl ApiRoutes for Gateway {
    async fn route(&self, cluster: &WorkloadClusterRef) -> Result<ApiRoute, WorkloadError> {
        self.url(cluster).await.map(ApiRoute::direct)
    }
}

impl Gateway {
    /// Whether cluster `uid` is served (or being started).
    pub async fn is_served(&self, uid: &str) -> bool {
        let slot = self.served.lock().await.get(uid).cloned();
        match slot {
            Some(slot) => match slot.try_lock() {
                Ok(url) => url.is_some(),
                // Being started.
                Err(_) => true,
            },
            None => false,
        }
    }

    /// The URL the cluster is served at, serving it first if it is not yet.
    pub async fn url(&self, cluster: &WorkloadClusterRef) -> Result<String, WorkloadError> {
        let slot = self
            .served
            .lock()
            .await
            .entry(cluster.cluster_uid.clone())
            .or_default()
            .clone();
        // Requests for the same cluster wait for one start; others go on.
        let mut url = slot.lock().await;
        if let Some(url) = &*url {
            return Ok(url.clone());
        }
        // Served on the simulation's runtime: everything the cluster spawns runs there.
        let (gateway, target) = (self.clone(), cluster.clone());
        let started = self
            .runtime
            .spawn(async move { gateway.serve(&target).await })
            .await
            .map_err(|e| WorkloadError::Unreachable {
                endpoint: cluster.api_endpoint.clone(),
                message: format!("the simulated cluster did not start: {e}"),
            })??;
        *url = Some(started.clone());
        Ok(started)
    }
}

/// Writes one simulated cluster down while it changes, and notices when it is gone.
struct Keeper {
    api: Arc<ApiServer>,
    clusters: Arc<dyn BootedClusters>,
    sealer: Arc<SecretBox>,
    path: Option<PathBuf>,
    cluster: WorkloadClusterRef,
    served: Served,
    gone: watch::Sender<bool>,
}

impl Keeper {
    /// Writes the API server's objects down, sealed, off the async runtime.
    async fn write(&self, path: &Path) -> Result<(), String> {
        let (api, sealer, uid, path) = (
            self.api.clone(),
            self.sealer.clone(),
            self.cluster.cluster_uid.clone(),
            path.to_owned(),
        );
        tokio::task::spawn_blocking(move || write_snapshot(&api, &sealer, &uid, &path))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Whether the cluster still exists.
    async fn exists(&self) -> bool {
        self.clusters.exists(&self.cluster).await
    }
}

async fn keep(keeper: Keeper, mut shutdown: watch::Receiver<bool>) {
    let mut written = None;
    loop {
        let stopping = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => true,
            () = tokio::time::sleep(PERSIST_PERIOD) => false,
        };
        if !stopping && !keeper.exists().await {
            keeper
                .served
                .lock()
                .await
                .remove(&keeper.cluster.cluster_uid);
            let _ = keeper.gone.send(true);
            if let Some(path) = keeper.path.clone() {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            }
            info!(cluster = %keeper.cluster.cluster_name, "the cluster is gone: its simulated API server stops");
            return;
        }
        let version = keeper.api.resource_version();
        if let Some(path) = &keeper.path
            && written != Some(version)
        {
            // The last write, as kaas stops, is made here and now: the runtime is
            // going away, and would cancel a blocking task not yet started.
            let result = if stopping {
                write_snapshot(
                    &keeper.api,
                    &keeper.sealer,
                    &keeper.cluster.cluster_uid,
                    path,
                )
            } else {
                keeper.write(path).await
            };
            match result {
                Ok(()) => written = Some(version),
                Err(e) => {
                    warn!(cluster = %keeper.cluster.cluster_name, error = %e, "cannot write the simulated cluster down")
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// The API server of cluster `uid` as written down at `path`, if it can be read. One
/// that cannot be (its key was rotated away) is set aside.
fn restore(path: &Path, sealer: &SecretBox, uid: &str, version: &str) -> Option<ApiServer> {
    let text = std::fs::read(path).ok()?;
    let restored = serde_json::from_slice::<Sealed>(&text)
        .map_err(|e| e.to_string())
        .and_then(|sealed| sealer.open(&sealed, uid).map_err(|e| e.to_string()))
        .and_then(|plain| serde_json::from_slice::<Value>(&plain).map_err(|e| e.to_string()))
        .and_then(|snapshot| ApiServer::restore(version, &snapshot));
    match restored {
        Ok(api) => {
            info!(cluster_uid = %uid, "restored the simulated cluster's objects");
            Some(api)
        }
        Err(e) => {
            let aside = path.with_extension("unreadable");
            warn!(cluster_uid = %uid, error = %e, aside = %aside.display(), "cannot restore the simulated cluster's objects; starting it empty");
            let _ = std::fs::rename(path, aside);
            None
        }
    }
}

/// Writes `api`'s objects to `path`, sealed for cluster `uid`: to a file beside it
/// first, then renamed over it, so a crash leaves the old snapshot or the new one.
fn write_snapshot(
    api: &ApiServer,
    sealer: &SecretBox,
    uid: &str,
    path: &Path,
) -> Result<(), String> {
    let plain = api.snapshot().to_string();
    let sealed = sealer
        .seal(plain.as_bytes(), uid)
        .map_err(|e| e.to_string())?;
    let text = serde_json::to_vec(&sealed).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| e.to_string())?;
        file.write_all(&text).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Removes from `dir` the snapshots (sealed, set aside or half-written) of clusters
/// whose uid is not in `live`; returns how many.
fn sweep_dir(dir: &Path, live: &HashSet<String>) -> Result<usize, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut swept = 0;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let is_snapshot = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("sealed" | "unreadable" | "tmp")
        );
        let Some(uid) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if is_snapshot && !live.contains(uid) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// A simulated cluster's etcd membership: its machines'.
struct MachinesEtcd {
    machines: Arc<dyn SimulatedMachines>,
    cluster: WorkloadClusterRef,
}

impl EtcdMembers for MachinesEtcd {
    fn members(&self) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let (machines, cluster) = (self.machines.clone(), self.cluster.clone());
        Box::pin(async move {
            machines
                .etcd_members(&cluster)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn remove(&self, name: String) -> BoxFuture<'static, Result<(), String>> {
        let (machines, cluster) = (self.machines.clone(), self.cluster.clone());
        Box::pin(async move {
            machines
                .remove_etcd_member(&cluster, &name)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The ports a simulated cluster's pods serve to port-forwards: each control plane's
/// etcd (`kube-system/etcd-<node>`, 2379), answered by the cluster's stand-in etcd.
struct ControlPlanePorts {
    etcd: StandInEtcd,
}

impl PodPorts for ControlPlanePorts {
    fn connect(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Box<dyn PodStream>, String>> {
        let connected = if namespace == "kube-system"
            && pod.starts_with("etcd-")
            && port == kaas_kube::ETCD_CLIENT_PORT
        {
            self.etcd
                .connect()
                .map(|stream| Box::new(stream) as Box<dyn PodStream>)
        } else {
            Err(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        };
        Box::pin(async move { connected })
    }
}

/// What the machines of one simulated cluster say, as its kubelets report it.
struct ClusterSync {
    machines: Arc<dyn SimulatedMachines>,
    blocked: Option<BlockedNodes>,
    cluster: WorkloadClusterRef,
    api: Arc<ApiServer>,
    /// Why the API server does not answer (no control plane runs), as the machines
    /// last said; `None` while it runs.
    down: std::sync::Mutex<Option<String>>,
    /// The cluster's kubelets, once it is served; held while they report.
    kubelets: Mutex<Option<Kubelets>>,
    /// How long what the kubelets reported holds.
    fresh_for: Duration,
}

/// The simulated kubelets of one cluster: one per node its machines run, each with a
/// client certificate of its own from the cluster's CA.
struct Kubelets {
    url: String,
    pki: ClusterPki,
    by_node: HashMap<String, Kubelet>,
    /// How often a kubelet renews its node lease.
    renew_every: Duration,
    /// When they last reported.
    reported_at: Option<Instant>,
}

impl Kubelets {
    fn kubelet(&mut self, node: &str) -> Result<&Kubelet, String> {
        if !self.by_node.contains_key(node) {
            let cert =
                issue_kubelet_client_cert(&self.pki, node, KUBELET_CERT_TTL, chrono::Utc::now())
                    .map_err(|e| e.to_string())?;
            let kubelet = Kubelet::new(
                node,
                &self.url,
                &self.pki.kubernetes_ca.cert_pem,
                &cert.cert_pem,
                &cert.key_pem,
            )?;
            self.by_node.insert(node.to_owned(), kubelet);
        }
        self.by_node
            .get(node)
            .ok_or_else(|| format!("no kubelet for {node}"))
    }
}

impl ClusterSync {
    /// Asks the machines what runs, and has each node's kubelet report it through the
    /// cluster's API; notes whether the API server runs at all.
    async fn report(&self, kubelets: &mut Kubelets) {
        match self.machines.nodes(&self.cluster).await {
            Ok(nodes) => {
                *self.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let now = chrono::Utc::now();
                // The kubelets report side by side, as real ones would.
                let mut reports = Vec::with_capacity(nodes.len());
                for node in &nodes {
                    match kubelets.kubelet(&node.name) {
                        Ok(kubelet) => {
                            let (kubelet, spec, renew) =
                                (kubelet.clone(), node_spec(node), kubelets.renew_every);
                            reports.push(async move {
                                let name = spec.name.clone();
                                (name, kubelet.report(&spec, renew, now).await)
                            });
                        }
                        Err(e) => {
                            debug!(cluster = %self.cluster.cluster_name, node = %node.name, error = %e, "no simulated kubelet for the node");
                        }
                    }
                }
                for (node, reported) in futures::future::join_all(reports).await {
                    if let Err(e) = reported {
                        debug!(cluster = %self.cluster.cluster_name, %node, error = %e, "a simulated kubelet could not report");
                    }
                }
                if let Some(blocked) = &self.blocked {
                    protect(&self.api, &blocked(&self.cluster.cluster_uid), &nodes);
                }
            }
            Err(
                WorkloadError::Unreachable { message, .. }
                | WorkloadError::Api { message }
                | WorkloadError::Unsupported { message },
            ) => *self.down.lock().unwrap_or_else(|e| e.into_inner()) = Some(message),
        }
    }
}

impl ClusterSync {
    /// Has the kubelets report unless they did within `fresh_for`. Requests arriving
    /// together wait for one report.
    async fn refresh(&self) {
        let mut kubelets = self.kubelets.lock().await;
        let Some(kubelets) = kubelets.as_mut() else {
            return;
        };
        if kubelets
            .reported_at
            .is_some_and(|at| at.elapsed() < self.fresh_for)
        {
            return;
        }
        self.report(kubelets).await;
        kubelets.reported_at = Some(Instant::now());
    }
}

/// The kubelets report every `period` until the cluster is no longer served.
async fn run_kubelets(sync: Arc<ClusterSync>, period: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(period) => {}
        }
        sync.refresh().await;
    }
}

/// What the machines say is brought up to date before a request is served, as a real
/// cluster's nodes would be by its kubelets (the kubelets' own requests pass); no
/// answer while the machines say the API server does not run.
async fn sync_first(
    State(sync): State<Arc<ClusterSync>>,
    request: Request,
    next: Next,
) -> Response {
    let from_kubelet = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|agent| agent.starts_with(KUBELET_USER_AGENT));
    if !from_kubelet {
        sync.refresh().await;
    }
    let down = sync.down.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match down {
        None => next.run(request).await,
        Some(message) => {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sweep_removes_only_the_snapshots_of_clusters_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "live.sealed",
            "gone.sealed",
            "gone.tmp",
            "other.unreadable",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(file), "{}").unwrap();
        }
        let live = HashSet::from(["live".to_owned()]);
        assert_eq!(sweep_dir(dir.path(), &live).unwrap(), 3);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["live.sealed", "notes.txt"]);
        // Nothing to sweep where nothing was ever written.
        assert_eq!(sweep_dir(&dir.path().join("none"), &live).unwrap(), 0);
    }
}

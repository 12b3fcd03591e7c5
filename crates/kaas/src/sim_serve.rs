//! `kaas sim serve`: the simulated cloud as a process of its own, serving the part of
//! OpenStack's REST API that kaas's OpenStack provider uses, so that kaas servers
//! drive it with that provider and the `openstack` CLI inspects it.
//!
//! Its servers boot from their user data as real ones would: the workload clusters
//! they make up are served as simulated Kubernetes APIs ([`crate::sim_workloads`]),
//! reached through the cluster proxy ([`crate::sim_proxy`]) at their API load
//! balancers' floating IPs, port 6443: `kaas server --cloud openstack --cluster-proxy
//! http://ADDRESS` drives the simulation as it drives a real cloud.
//!
//! Its data directory holds the cloud's state (`sim-cloud.json`, the journal the
//! in-process simulation keeps too), its one user and project with the password
//! (`identity.json`, 0600), a `clouds.yaml` (0600) naming it `kaas-sim`, the address
//! of the cluster proxy (`cluster-proxy.addr`), and the workload clusters' objects,
//! sealed with a key of its own (`sim-clusters/`, `secret-keys/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use kaas_sim::api::{ApiConfig, ApiServer, CLOUD_NAME, Identity, write_private};
use kaas_sim::{Quotas, SimCloud, SimConfig, SimFaults};
use kaas_store::SecretBox;
use tokio::sync::watch;

use crate::gateway::{BlockedNodes, Gateway, Simulation};
use crate::sim_proxy::ClusterProxy;
use crate::sim_workloads::MachineBoots;

/// How often what was read of servers that are gone is forgotten.
const FORGET_PERIOD: Duration = Duration::from_secs(60);
/// How often the servers are looked at for clusters to serve (real time).
const BOOT_PERIOD: Duration = Duration::from_secs(1);

/// How `kaas sim serve` runs.
#[derive(Debug, Clone)]
pub struct SimServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub speed: f64,
    pub quotas: Quotas,
    pub faults: SimFaults,
    pub external_network: String,
    /// Where the cluster proxy listens.
    pub proxy_listen: SocketAddr,
    /// How long the simulated kubelets' node leases hold (real time).
    pub node_lease: Duration,
}

/// Serves the simulated cloud until SIGTERM or Ctrl-C.
pub async fn run(config: SimServeConfig) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let identity_path = config.data_dir.join("identity.json");
    let identity = Identity::load_or_create(&identity_path)
        .with_context(|| format!("cannot read or write {}", identity_path.display()))?;
    let sim = SimCloud::new(SimConfig {
        speed: config.speed,
        state_file: Some(config.data_dir.join("sim-cloud.json")),
        quotas: config.quotas,
        faults: config.faults,
        ..SimConfig::default()
    })?;
    let sealer = Arc::new(
        SecretBox::load_dir(&config.data_dir)
            .context("cannot read or create the key the workload clusters are sealed with")?,
    );
    let (shutdown_tx, shutdown) = watch::channel(false);
    let blocked_sim = sim.clone();
    let blocked: BlockedNodes = Arc::new(move |uid: &str| blocked_sim.drain_blocked_nodes(uid));
    let boots = Arc::new(MachineBoots::new(sim.clone()));
    let gateway = Arc::new(Gateway::new(
        Simulation {
            machines: Arc::new(sim.clone()),
            blocked: Some(blocked),
            speed: config.speed,
            state_dir: Some(config.data_dir.join("sim-clusters")),
            node_lease: config.node_lease,
            runtime: tokio::runtime::Handle::current(),
        },
        boots.clone(),
        sealer,
        shutdown.clone(),
    ));
    if let Err(e) = gateway.sweep().await {
        tracing::warn!(error = %e, "cannot sweep the simulated clusters' snapshots");
    }
    let proxy_listener = tokio::net::TcpListener::bind(config.proxy_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.proxy_listen))?;
    let proxy_addr = proxy_listener.local_addr()?;
    let proxy = tokio::spawn(crate::sim_proxy::serve(
        proxy_listener,
        ClusterProxy {
            boots: boots.clone(),
            gateway: gateway.clone(),
        },
        shutdown.clone(),
    ));
    let api = ApiConfig {
        identity,
        external_network: config.external_network,
    };
    let server = ApiServer::start(sim, api, config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // The clusters whose machines were running when the simulation stopped are up
    // again before anyone is told where the cloud is, as a real cloud's would have
    // stayed up.
    boot_pass(&boots, &gateway).await;
    let booting = tokio::spawn(boot_clusters(boots, gateway.clone(), shutdown.clone()));
    std::fs::write(
        config.data_dir.join("cluster-proxy.addr"),
        proxy_addr.to_string(),
    )?;
    let clouds = config.data_dir.join("clouds.yaml");
    write_private(&clouds, server.clouds_yaml().as_bytes())
        .with_context(|| format!("cannot write {}", clouds.display()))?;
    // The address a script waits for, as `kaas server` writes `server.addr`.
    std::fs::write(
        config.data_dir.join("sim.addr"),
        server.address().to_string(),
    )?;
    eprintln!(
        "simulated cloud (a simulation: nothing real is created) serving OpenStack's API at {}\n\
         clouds.yaml: {}\n\
         use it with: OS_CLIENT_CONFIG_FILE={} OS_CLOUD={CLOUD_NAME} openstack server list\n\
         workload clusters' APIs through the proxy http://{proxy_addr} \
         (kaas server --cloud openstack --os-cloud {CLOUD_NAME} --cluster-proxy http://{proxy_addr})",
        server.auth_url(),
        clouds.display(),
        clouds.display(),
    );
    crate::server::wait_for_signal().await;
    tracing::info!("simulated cloud shutting down");
    server.shutdown().await?;
    let _ = shutdown_tx.send(true);
    gateway.stopped().await;
    let _ = proxy.await;
    let _ = booting.await;
    Ok(())
}

/// Serves each cluster a control plane of which has booted and that is not served yet.
async fn boot_pass(boots: &MachineBoots, gateway: &Gateway) {
    let live = match crate::gateway::BootedClusters::live(boots).await {
        Ok(live) => live,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the simulated clusters");
            return;
        }
    };
    for uid in live {
        if gateway.is_served(&uid).await {
            continue;
        }
        if let Some(cluster) = boots.cluster(&uid)
            && let Err(e) = gateway.url(&cluster).await
        {
            tracing::debug!(cluster_uid = %uid, error = %e, "the simulated cluster is not served yet");
        }
    }
}

/// Serves each cluster once a control plane of it has booted, as its machines would
/// bring its API up whether or not anyone asks for it; now and then forgets what was
/// read of servers that are gone.
async fn boot_clusters(
    boots: Arc<MachineBoots>,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut forgotten = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(BOOT_PERIOD) => {}
        }
        boot_pass(&boots, &gateway).await;
        if forgotten.elapsed() >= FORGET_PERIOD {
            boots.forget_gone();
            forgotten = tokio::time::Instant::now();
        }
    }
}

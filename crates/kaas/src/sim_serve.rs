//! `kaas sim serve`: the simulated cloud as a process of its own, serving the part of
//! OpenStack's REST API that kaas's OpenStack provider uses, so that kaas servers
//! drive it with that provider and the `openstack` CLI inspects it.
//!
//! Its data directory holds the cloud's state (`sim-cloud.json`, the journal the
//! in-process simulation keeps too), its one user and project with the password
//! (`identity.json`, 0600) and a `clouds.yaml` (0600) naming it `kaas-sim`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use kaas_sim::api::{ApiConfig, ApiServer, CLOUD_NAME, Identity, write_private};
use kaas_sim::{Quotas, SimCloud, SimConfig, SimFaults};

/// How `kaas sim serve` runs.
#[derive(Debug, Clone)]
pub struct SimServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub speed: f64,
    pub quotas: Quotas,
    pub faults: SimFaults,
    pub external_network: String,
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
    let api = ApiConfig {
        identity,
        external_network: config.external_network,
    };
    let server = ApiServer::start(sim, api, config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
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
         use it with: OS_CLIENT_CONFIG_FILE={} OS_CLOUD={CLOUD_NAME} openstack server list",
        server.auth_url(),
        clouds.display(),
        clouds.display(),
    );
    crate::server::wait_for_signal().await;
    tracing::info!("simulated cloud shutting down");
    server.shutdown().await?;
    Ok(())
}

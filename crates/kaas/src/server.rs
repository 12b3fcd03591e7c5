//! Assembles a kaas server: store, cloud, controllers and API, with graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kaas_api::AppState;
use kaas_cloud::{ApiRoutes, SharedCloud, SimulatedMachines, TenantClouds, WorkloadClusters};
use kaas_controller::{
    ClusterController, ClusterControllerConfig, ControllerConfig, Metrics, run_controller,
};
use kaas_core::FieldError;
use kaas_core::meta::DEFAULT_TENANT;
use kaas_core::stack::{ClusterStack, KubernetesVersions, StackCatalog};
use kaas_core::tenant::{QuotaChange, Quotas, Tenant, TenantSpec};
use kaas_core::{Cluster, Object};
use kaas_sim::{Latencies, Quotas as SimQuotas, SimCloud, SimConfig, SimFaults};
use kaas_store::{SecretBox, SqliteStore, Store, StoreError, StoreExt};
use prometheus_client::registry::Registry;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clouds::OpenStackTenants;
use crate::gateway::{BlockedNodes, Gateway, Simulation, StoredClusters};
use crate::workloads::{EndpointRoutes, KubeWorkloads, ReachAt, Resolve};

/// The simulated cloud's one region (OpenStack's default name).
pub const SIM_REGION: &str = "RegionOne";

/// Which cloud the server drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloudKind {
    /// The simulated cloud (a simulation: nothing real is created).
    Sim,
    /// A real OpenStack cloud, from `clouds.yaml` (`--os-cloud`) or `OS_*` variables.
    Openstack,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub cloud: CloudKind,
    /// Time-scale factor of the simulated cloud.
    pub sim_speed: f64,
    /// Fault rates of the simulated cloud at start.
    pub sim_faults: SimFaults,
    /// How much the simulated cloud's project may hold.
    pub sim_quotas: SimQuotas,
    /// The default tenant's quotas to set on start (those given; the others stay);
    /// `None`: as they are (on first start, `Quotas::default()`).
    pub default_quota: Option<QuotaChange>,
    /// Latencies of the simulated cloud; `None`: realistic ranges.
    pub sim_latencies: Option<Latencies>,
    /// How long simulated kubelets' node leases hold (real time).
    pub sim_node_lease: Duration,
    /// A folder of operator stacks (`NAME/stack.yaml`), beside the built-in ones.
    pub stacks_dir: Option<PathBuf>,
    /// The stack of clusters whose spec names none; `None`: `DEFAULT_STACK`.
    pub default_stack: Option<String>,
    /// Kubernetes release data replacing the built-in data.
    pub kubernetes_versions: Option<PathBuf>,
    /// The `clouds.yaml` entry of the OpenStack cloud; `None`: `OS_CLOUD` or `OS_*`.
    pub os_cloud: Option<String>,
    /// Stand-in workload clusters over a real cloud whose servers run no kubelet.
    pub simulate_workloads: bool,
    /// Where kaas reaches clusters' endpoints at other addresses (`--resolve`).
    pub resolve: Vec<Resolve>,
    /// Which address of each cluster's API kaas connects to.
    pub reach_clusters_at: ReachAt,
    /// The HTTP proxy kaas reaches workload clusters through (`--cluster-proxy`).
    pub cluster_proxy: Option<String>,
    /// Where the stacks' artifacts are looked for before upstream, in order.
    pub artifact_mirrors: Vec<kaas_artifacts::Mirror>,
    /// The integrated registry kaas is the token service of.
    pub registry: Option<crate::registry::RegistryOptions>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./kaas-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            cloud: CloudKind::Sim,
            sim_speed: 1.0,
            sim_faults: SimFaults::default(),
            sim_quotas: SimQuotas::default(),
            default_quota: None,
            sim_latencies: None,
            sim_node_lease: Duration::from_secs(40),
            stacks_dir: None,
            default_stack: None,
            kubernetes_versions: None,
            os_cloud: None,
            simulate_workloads: false,
            artifact_mirrors: Vec::new(),
            resolve: Vec::new(),
            reach_clusters_at: ReachAt::Endpoint,
            cluster_proxy: None,
            registry: None,
        }
    }
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub admin_token: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The simulated workload clusters stop only after the controllers: a reconcile
    /// still running must not find their APIs gone and record the cluster unreachable.
    simulation: watch::Sender<bool>,
    simulation_tasks: Vec<JoinHandle<()>>,
    /// The runtime the simulated workload clusters run on.
    _simulation_runtime: SimulationRuntime,
}

/// A runtime of its own for the simulated workload clusters, so that what they cost
/// shows apart from what kaas costs (its threads are named `kaas-sim`). Shut down
/// without waiting when the server goes: its tasks have stopped by then.
struct SimulationRuntime(Option<tokio::runtime::Runtime>);

impl SimulationRuntime {
    fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kaas-sim")
            .enable_all()
            .build()
            .context("cannot start the simulation's runtime")?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for SimulationRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting work, lets in-flight reconciles and requests finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                warn!(error = %e, "server task ended abnormally");
            }
        }
        let _ = self.simulation.send(true);
        for t in self.simulation_tasks {
            if let Err(e) = t.await {
                warn!(error = %e, "simulation task ended abnormally");
            }
        }
    }
}

/// The admin token file: created with mode 0600 on first start, read afterwards.
pub fn admin_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &format!("{token}\n"))?;
    info!(path = %path.display(), "wrote the bootstrap admin token");
    Ok(token)
}

/// Writes a file only its owner may read, atomically (temporary file, fsync, rename).
#[cfg(unix)]
pub fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Intervals scaled to the simulated cloud's speed, so a fast simulation is also
/// observed quickly.
fn intervals(speed: f64) -> (ClusterControllerConfig, ControllerConfig) {
    let scaled =
        |secs: f64, min: f64, max: f64| Duration::from_secs_f64((secs / speed).clamp(min, max));
    (
        ClusterControllerConfig {
            // One simulated second: each wait in a chain of steps costs up to this.
            poll_interval: scaled(1.0, 0.01, 5.0),
            // A settled cluster is looked at again every five minutes, jittered; a
            // change of it is reconciled at once.
            steady_interval: scaled(300.0, 1.0, 300.0),
            cloud_resync: scaled(600.0, 1.0, 600.0),
            time_scale: speed,
            region: Some(SIM_REGION.to_owned()),
            ..ClusterControllerConfig::default()
        },
        ControllerConfig {
            concurrency: 8,
            resync: scaled(300.0, 5.0, 300.0),
            backoff_base: scaled(1.0, 0.02, 1.0),
            backoff_max: scaled(300.0, 1.0, 300.0),
            // A tenant's quota raised: its clusters refused for quota try again.
            retry_on: &["Tenant"],
        },
    )
}

/// Starts a server and returns once it listens.
pub async fn start(config: ServerConfig) -> Result<RunningServer> {
    if !(config.sim_speed.is_finite() && config.sim_speed > 0.0) {
        bail!(
            "--sim-speed must be a positive number (got {})",
            config.sim_speed
        );
    }
    create_private_dir(&config.data_dir)?;
    let token = admin_token(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&config.data_dir.join("kaas.db"))
            .await
            .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?,
    );
    ensure_default_tenant(store.as_ref(), config.default_quota.as_ref()).await?;
    let mut stacks = load_stacks(config.stacks_dir.as_deref())?;
    if let Some(name) = &config.default_stack {
        stacks.set_default(name).map_err(anyhow::Error::msg)?;
    }
    let stacks = Arc::new(stacks);
    let kubernetes_versions = Arc::new(match &config.kubernetes_versions {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            KubernetesVersions::parse(&path.display().to_string(), &text)
                .map_err(anyhow::Error::msg)?
        }
        None => KubernetesVersions::builtin().map_err(anyhow::Error::msg)?,
    });
    let sealer = Arc::new(
        SecretBox::load(&config.data_dir)
            .context("cannot load the keys that seal secrets at rest")?,
    );

    // The registry's token keys, and the CA certificate it trusts, before anything runs.
    let (oci_registry, mirrors) = match &config.registry {
        None => (None, Vec::new()),
        Some(options) => {
            let pki = crate::registry::token_pki(store.as_ref(), &sealer).await?;
            let ca = crate::registry::write_token_ca(&config.data_dir, &pki)?;
            let mirrors = match &options.mirrors_file {
                Some(path) => crate::registry::load_mirrors(path)?,
                None => Vec::new(),
            };
            info!(url = %options.url, token_ca = %ca.display(), "kaas is the registry's token service");
            (
                Some(Arc::new(crate::registry::service(options, &pki)?)),
                mirrors,
            )
        }
    };

    let mut registry = Registry::default();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (simulation_tx, simulation_rx) = watch::channel(false);
    let mut keystone: Option<Arc<dyn kaas_api::auth::KeystoneTokens>> = None;
    let (cloud, machines, blocked, sim_control, speed, region) = match config.cloud {
        CloudKind::Sim => {
            let sim = SimCloud::new(SimConfig {
                speed: config.sim_speed,
                state_file: Some(config.data_dir.join("sim-cloud.json")),
                faults: config.sim_faults.clone(),
                quotas: config.sim_quotas,
                latencies: config.sim_latencies.unwrap_or_default(),
                region: SIM_REGION.to_owned(),
                ..SimConfig::default()
            })
            .context("cannot start the simulated cloud")?;
            let cloud: Arc<dyn TenantClouds> = Arc::new(SharedCloud(Arc::new(sim.clone())));
            let machines: Option<Arc<dyn SimulatedMachines>> = Some(Arc::new(sim.clone()));
            let blocked_sim = sim.clone();
            let blocked: BlockedNodes =
                Arc::new(move |uid: &str| blocked_sim.drain_blocked_nodes(uid));
            let control: Arc<dyn kaas_api::SimControl> = Arc::new(SimKnobs(sim));
            (
                cloud,
                machines,
                Some(blocked),
                Some(control),
                config.sim_speed,
                SIM_REGION.to_owned(),
            )
        }
        CloudKind::Openstack => {
            let os = kaas_openstack::CloudConfig::load(config.os_cloud.as_deref())
                .context("cannot read the OpenStack credentials")?;
            let region = os
                .region_name
                .clone()
                .unwrap_or_else(|| SIM_REGION.to_owned());
            let session = kaas_openstack::Session::new(os.clone())
                .await
                .context("cannot authenticate with the OpenStack cloud")?;
            keystone = Some(Arc::new(KeystoneValidator(session.clone())));
            let openstack = Arc::new(kaas_openstack::OpenStackCloud::new(session));
            let tenants = Arc::new(OpenStackTenants::new(
                openstack,
                os,
                store.clone(),
                sealer.clone(),
            ));
            registry.register_collector(Box::new(OpenStackCalls(tenants.clone())));
            let clouds: Arc<dyn TenantClouds> = tenants;
            // A test cloud's servers run no kubelet: stand-ins answer for them.
            let machines = config.simulate_workloads.then(|| {
                Arc::new(crate::standin::StandInMachines::new(
                    clouds.clone(),
                    &region,
                )) as Arc<dyn SimulatedMachines>
            });
            (clouds, machines, None, None, 1.0, region)
        }
    };

    // Each workload cluster's Kubernetes API is reached through the Kubernetes client:
    // a real one at its endpoint (or where `--resolve` maps it), a simulated one where
    // the gateway serves it.
    let mut gateway_stopped = None;
    let mut simulation_runtime = SimulationRuntime(None);
    let (workloads, routes): (Arc<dyn WorkloadClusters>, Arc<dyn ApiRoutes>) = match machines {
        Some(machines) => {
            simulation_runtime = SimulationRuntime::start()?;
            let runtime = simulation_runtime
                .handle()
                .context("the simulation's runtime is gone")?;
            let gateway = Arc::new(Gateway::new(
                Simulation {
                    machines: machines.clone(),
                    blocked,
                    speed,
                    state_dir: Some(config.data_dir.join("sim-clusters")),
                    node_lease: config.sim_node_lease,
                    runtime,
                },
                Arc::new(StoredClusters {
                    store: store.clone(),
                    sealer: sealer.clone(),
                    stacks: stacks.clone(),
                }),
                sealer.clone(),
                simulation_rx.clone(),
            ));
            // Before anything is served: the snapshots of clusters deleted while kaas
            // was down.
            if let Err(e) = gateway.sweep().await {
                warn!(error = %e, "cannot sweep the simulated clusters' snapshots");
            }
            let stopping = gateway.clone();
            gateway_stopped = Some(tokio::spawn(async move { stopping.stopped().await }));
            (
                Arc::new(KubeWorkloads::new(gateway.clone(), &mut registry)),
                gateway,
            )
        }
        None => (
            Arc::new(KubeWorkloads::new(
                Arc::new(
                    EndpointRoutes::reaching(config.reach_clusters_at, &config.resolve)
                        .through_proxy(config.cluster_proxy.clone()),
                ),
                &mut registry,
            )),
            // Kubeconfigs are for people: the endpoint itself, never kaas's overrides.
            Arc::new(EndpointRoutes::default()),
        ),
    };
    let metrics = Metrics::new(&mut registry);
    let api_metrics = kaas_api::ApiMetrics::new(&mut registry);
    let (mut cluster_config, controller_config) = intervals(speed);
    cluster_config.region = Some(region);
    cluster_config.default_mirrors = mirrors;
    cluster_config.registry_host = oci_registry.as_ref().map(|r| r.host.clone());
    if config.cloud == CloudKind::Openstack {
        // Every observation lists each kind of resource: poll a real cloud gently.
        cluster_config.poll_interval = Duration::from_secs(2);
    }
    let fetcher = Arc::new(
        kaas_artifacts::Fetcher::new(kaas_artifacts::Limits::default())
            .map_err(anyhow::Error::msg)?
            .with_mirrors(config.artifact_mirrors.clone()),
    );
    let controller = Arc::new(
        ClusterController::new(
            store.clone(),
            sealer.clone(),
            stacks.clone(),
            cloud.clone(),
            workloads,
            cluster_config,
            metrics.clone(),
        )
        .with_artifacts(Arc::new(crate::artifacts::CachedArtifacts {
            store: store.clone(),
            fetcher: fetcher.clone(),
        })),
    );
    let controllers = tokio::spawn(run_controller(
        Cluster::KIND,
        store.clone(),
        controller,
        controller_config,
        metrics,
        shutdown_rx.clone(),
    ));

    let state = AppState {
        artifacts: fetcher,
        store,
        admin_token: token.clone().into(),
        sealer,
        stacks,
        kubernetes_versions,
        cloud: cloud_name(config.cloud),
        sim: sim_control,
        clouds: cloud,
        routes,
        keystone,
        keystone_cache: Default::default(),
        quota_lock: Default::default(),
        registry: Arc::new(registry),
        metrics: api_metrics,
        oci_registry,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another kaas server running?)",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    std::fs::write(config.data_dir.join("server.addr"), addr.to_string())?;
    let mut stop = shutdown_rx.clone();
    let http = tokio::spawn(async move {
        let app = kaas_api::router(state);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "HTTP server failed");
        }
    });
    info!(%addr, data_dir = %config.data_dir.display(), cloud = cloud_name(config.cloud), speed, "kaas server listening");
    Ok(RunningServer {
        addr,
        admin_token: token,
        shutdown: shutdown_tx,
        tasks: [
            http,
            tokio::spawn(async move {
                if let Err(e) = controllers.await {
                    warn!(error = %e, "controllers ended abnormally");
                }
            }),
        ]
        .into_iter()
        .collect(),
        simulation: simulation_tx,
        simulation_tasks: gateway_stopped.into_iter().collect(),
        _simulation_runtime: simulation_runtime,
    })
}

fn cloud_name(kind: CloudKind) -> &'static str {
    match kind {
        CloudKind::Sim => "sim",
        CloudKind::Openstack => "openstack",
    }
}

/// `kaas_openstack_requests_total{service, method}`: every HTTP request sent to the
/// cloud's APIs, counted by the session, read at each scrape.
#[derive(Debug)]
struct OpenStackCalls(Arc<OpenStackTenants>);

impl prometheus_client::collector::Collector for OpenStackCalls {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let mut family = encoder.encode_descriptor(
            "kaas_openstack_requests",
            "HTTP requests sent to the OpenStack APIs, retries and authentication included",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut calls: std::collections::BTreeMap<String, u64> = Default::default();
        for session in self.0.sessions() {
            for (key, n) in session.calls() {
                *calls.entry(key).or_default() += n;
            }
        }
        for (key, n) in calls {
            let (service, method) = key.split_once(' ').unwrap_or((key.as_str(), ""));
            let labels = vec![
                ("service".to_owned(), service.to_owned()),
                ("method".to_owned(), method.to_owned()),
            ];
            let counter = prometheus_client::metrics::counter::ConstCounter::new(n);
            counter.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}

/// Makes the default tenant on first start, with `quota`'s quotas over the defaults;
/// on a later start, sets the quotas `quota` gives (the others stay as they are, as an
/// operator may have changed them with `kaas tenant update`).
async fn ensure_default_tenant(store: &dyn Store, quota: Option<&QuotaChange>) -> Result<()> {
    let change = quota.copied().unwrap_or_default();
    // Two attempts: another replica on the same database may write it meanwhile.
    for _ in 0..2 {
        if let Some(mut tenant) = store
            .get_obj::<Tenant>(DEFAULT_TENANT, DEFAULT_TENANT)
            .await?
        {
            let quotas = change.applied_to(&tenant.spec.quotas);
            if quotas == tenant.spec.quotas {
                return Ok(());
            }
            info!(
                before = ?tenant.spec.quotas,
                after = ?quotas,
                "setting the default tenant's quotas (--default-quota)"
            );
            tenant.spec.quotas = quotas;
            match store.update_obj(&tenant).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let tenant = Tenant::new(
            DEFAULT_TENANT,
            TenantSpec {
                display_name: "Default tenant".to_owned(),
                quotas: change.applied_to(&Quotas::default()),
                ..TenantSpec::default()
            },
        );
        match store.create_obj(DEFAULT_TENANT, &tenant).await {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("cannot set the default tenant's quotas: it changed twice meanwhile; start again")
}

/// The built-in stacks and those in `dir/*/stack.yaml`.
pub fn load_stacks(dir: Option<&Path>) -> Result<StackCatalog> {
    let mut catalog = StackCatalog::builtin().map_err(anyhow::Error::msg)?;
    let Some(dir) = dir else { return Ok(catalog) };
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the stacks folder {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("stack.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let stack =
            ClusterStack::parse(&file.display().to_string(), &text).map_err(anyhow::Error::msg)?;
        info!(stack = stack.name(), file = %file.display(), "loaded an operator stack");
        catalog.add(stack).map_err(anyhow::Error::msg)?;
    }
    Ok(catalog)
}

/// Runs a server until Ctrl-C or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<()> {
    let kind = config.cloud;
    let server = start(config).await?;
    let cloud = match kind {
        CloudKind::Sim => "simulated",
        CloudKind::Openstack => "openstack",
    };
    eprintln!("kaas server listening on {} (cloud: {cloud})", server.url());
    wait_for_signal().await;
    info!("shutting down");
    server.shutdown().await;
    Ok(())
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The simulated cloud's knobs, as the API sees them.
struct SimKnobs(SimCloud);

impl kaas_api::SimControl for SimKnobs {
    fn inventory(&self) -> serde_json::Value {
        serde_json::json!({ "items": self.0.inventory() })
    }

    fn faults(&self) -> serde_json::Value {
        serde_json::to_value(self.0.faults()).unwrap_or_default()
    }

    fn set_faults(&self, faults: serde_json::Value) -> Result<serde_json::Value, FieldError> {
        let faults: SimFaults =
            kaas_core::decode::decode_value(faults).map_err(|mut e| e.0.remove(0))?;
        self.0.set_faults(faults).map_err(|reason| FieldError {
            field: "body".to_owned(),
            reason,
        })?;
        Ok(self.faults())
    }

    fn set_node(
        &self,
        node: &str,
        ready: Option<bool>,
        drain_blocked: Option<bool>,
    ) -> Result<(), String> {
        if let Some(ready) = ready {
            self.0
                .set_node_ready(node, ready)
                .map_err(|e| e.to_string())?;
        }
        if let Some(blocked) = drain_blocked {
            self.0
                .block_drain(node, blocked)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Parses `--sim-faults apiErrors=0.1,serverErrors=0.05` (kebab-case works too).
pub fn parse_sim_faults(text: &str) -> Result<SimFaults, String> {
    let mut map = serde_json::Map::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected NAME=RATE"))?;
        let rate: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{key}: {value:?} is not a number"))?;
        map.insert(camel(key.trim()), serde_json::json!(rate));
    }
    let faults: SimFaults = kaas_core::decode::decode_value(serde_json::Value::Object(map))
        .map_err(|e| e.to_string())?;
    faults.validate()?;
    Ok(faults)
}

/// Parses `--sim-quota`: `KEY=N,…` for any of the simulated project's quotas
/// (network, subnet, router, security-group, server-group, port, load-balancer,
/// floating-ip, server, application-credential; a plural such as `servers` is taken
/// too), the others keeping their defaults. The error names the key and the reason.
pub fn parse_sim_quotas(text: &str) -> Result<SimQuotas, String> {
    let serde_json::Value::Object(mut quotas) =
        serde_json::to_value(SimQuotas::default()).map_err(|e| e.to_string())?
    else {
        return Err("the simulated cloud's quotas are not an object".to_owned());
    };
    let known: Vec<String> = quotas.keys().map(|k| kebab(k)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut any = false;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected KEY=NUMBER"))?;
        let key = key.trim();
        let camel = camel(key);
        let field = if quotas.contains_key(&camel) {
            camel
        } else if let Some(singular) = camel.strip_suffix('s').filter(|s| quotas.contains_key(*s)) {
            singular.to_owned()
        } else {
            return Err(format!(
                "{key:?}: unknown quota of the simulated cloud; the keys are {}",
                known.join(", ")
            ));
        };
        if !seen.insert(field.clone()) {
            return Err(format!("{key}: given twice"));
        }
        let value = value.trim();
        let n: u32 = value
            .parse()
            .map_err(|_| format!("{key}: {value:?} is not a whole number (0 to {})", u32::MAX))?;
        quotas.insert(field, serde_json::json!(n));
        any = true;
    }
    if !any {
        return Err(format!(
            "no quota given: expected KEY=N,… with keys {}",
            known.join(", ")
        ));
    }
    serde_json::from_value(serde_json::Value::Object(quotas)).map_err(|e| e.to_string())
}

/// `floating-ip` or `floating_ip` → `floatingIp`.
fn camel(key: &str) -> String {
    let mut camel = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            camel.extend(c.to_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    camel
}

/// `floatingIp` → `floating-ip`.
fn kebab(key: &str) -> String {
    let mut kebab = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            kebab.push('-');
            kebab.push(c.to_ascii_lowercase());
        } else {
            kebab.push(c);
        }
    }
    kebab
}

/// Keystone tokens of the cloud's users, validated with kaas's own session.
struct KeystoneValidator(kaas_openstack::Session);

#[async_trait::async_trait]
impl kaas_api::auth::KeystoneTokens for KeystoneValidator {
    async fn validate(
        &self,
        token: &str,
    ) -> std::result::Result<Option<kaas_api::auth::KeystoneIdentity>, String> {
        let Some(body) = self
            .0
            .validate_token(token)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let token = &body["token"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let project = &token["project"];
        if project.is_null() {
            // Unscoped and domain-scoped tokens name no project, hence no tenant.
            return Ok(None);
        }
        Ok(Some(kaas_api::auth::KeystoneIdentity {
            user: text(&token["user"]["name"]),
            project_id: text(&project["id"]),
            project_name: text(&project["name"]),
            roles: token["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| text(&r["name"]))
                .collect(),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sim_quotas_parse_every_key() {
        let quotas = parse_sim_quotas(
            "network=200, subnets=201,router=3,security-group=4,server_group=5,port=6,\
             load-balancers=7,floatingIp=8,servers=9,application-credential=10",
        )
        .unwrap();
        assert_eq!(
            quotas,
            SimQuotas {
                network: 200,
                subnet: 201,
                router: 3,
                security_group: 4,
                server_group: 5,
                port: 6,
                load_balancer: 7,
                floating_ip: 8,
                server: 9,
                application_credential: 10,
            }
        );
        // The others keep their defaults.
        let quotas = parse_sim_quotas("servers=1000").unwrap();
        assert_eq!(quotas.server, 1000);
        assert_eq!(quotas.network, SimQuotas::default().network);
    }

    #[test]
    fn bad_sim_quotas_name_the_key_and_the_reason() {
        let cases = [
            (
                "",
                "no quota given: expected KEY=N,… with keys application-credential",
            ),
            (
                "volumes=3",
                "\"volumes\": unknown quota of the simulated cloud; the keys are",
            ),
            ("servers=-1", "servers: \"-1\" is not a whole number"),
            ("servers", "\"servers\": expected KEY=NUMBER"),
            ("server=1,servers=2", "servers: given twice"),
        ];
        for (text, expected) in cases {
            let err = parse_sim_quotas(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        assert!(
            parse_sim_quotas("x=1")
                .unwrap_err()
                .contains("floating-ip, load-balancer, network, port, router")
        );
    }
}

//! The cluster controller, a pipeline per reconcile:
//! load (I/O) → `observe` (I/O) → [`plan`] (pure) → `execute` (I/O, idempotent
//! steps) → [`status`] (pure) → `record` status and events (I/O).
//!
//! Each stage lives in a module of its own; this one holds the controller and the
//! reconcile that strings the stages together. What machines boot with is rendered
//! and sealed in `bootstrap`; the cluster's PKI, kaas' client certificate on its API
//! and the cluster's cloud credential are issued in `credentials`.

pub mod addons;
mod bootstrap;
mod credentials;
mod error;
mod execute;
mod inventory;
pub mod machines;
mod observe;
pub mod plan;
mod record;
pub mod registry;
pub mod status;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kaas_cloud::{ClientCredentials, CloudError, CloudProvider, TenantClouds, WorkloadClusters};
use kaas_core::stack::StackCatalog;
use kaas_core::{Cluster, EventType, OwnerRef};
use kaas_store::{ObjectKey, SecretBox, Secrets, Store, StoreError, StoreExt};
use rand::Rng;
use tracing::debug;

use crate::metrics::{CloudCallLabels, Metrics};
use crate::runtime::{Action, Reconciler};

pub use bootstrap::BOOTSTRAP_SECRET_TYPE;
pub use credentials::{CLOUD_CREDENTIAL_SECRET_TYPE, PKI_SECRET_TYPE};
pub use error::{Category, StepError};

#[derive(Debug, Clone)]
pub struct ClusterControllerConfig {
    /// How soon to look again while something is in progress.
    pub poll_interval: Duration,
    /// How soon to look again at a settled cluster (health).
    pub steady_interval: Duration,
    /// How much faster than real time the cloud runs (the simulation's speed; 1 for a
    /// real cloud). The spec's timeouts are divided by it.
    pub time_scale: f64,
    /// The cloud region, for the nodes' `topology.kubernetes.io/region` label.
    pub region: Option<String>,
    /// The registry mirrors every cluster's nodes get (the operator's defaults).
    pub default_mirrors: Vec<kaas_core::registry::RegistryMirror>,
    /// The integrated registry's `host[:port]`: each cluster gets a pull credential
    /// of its own for it. `None`: the server has no registry.
    pub registry_host: Option<String>,
    /// How old a bulk listing of a tenant's project may be when a settled cluster is
    /// observed from it (see `inventory`): the period of the steady state's cloud calls.
    pub cloud_resync: Duration,
}

impl Default for ClusterControllerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            steady_interval: Duration::from_secs(300),
            time_scale: 1.0,
            region: None,
            default_mirrors: Vec::new(),
            registry_host: None,
            cloud_resync: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("failed to observe the cloud: {0}")]
    Observe(CloudError),
    #[error(transparent)]
    Step(Box<StepError>),
}

pub struct ClusterController {
    store: Arc<dyn Store>,
    /// Seals the cluster's keys and each machine's bootstrap data at rest.
    sealer: Arc<SecretBox>,
    /// The cluster stacks kaas knows.
    stacks: Arc<StackCatalog>,
    /// The cloud of each tenant's clusters.
    clouds: Arc<dyn TenantClouds>,
    workloads: Arc<dyn WorkloadClusters>,
    config: ClusterControllerConfig,
    metrics: Metrics,
    /// Where upstream addons' charts and manifests come from.
    artifacts: Arc<dyn addons::AddonArtifacts>,
    /// Upstream artifacts as loaded, by digest.
    loaded: std::sync::Mutex<HashMap<String, kaas_bootstrap::UpstreamArtifact>>,
    /// Per cluster uid: the addons as last rendered (in outline once applied), and
    /// from what.
    rendered: std::sync::Mutex<HashMap<String, (String, addons::DesiredAddons)>>,
    /// Per cluster uid: the addons' readiness as last read (when, for which digest).
    readiness: std::sync::Mutex<HashMap<String, ReadReadiness>>,
    /// Per cluster uid: the client certificate kaas uses on its API, until when.
    credentials: std::sync::Mutex<HashMap<String, IssuedCredentials>>,
    /// Per cluster uid: when its pull Secrets were last found up to date, and for which
    /// digest (they are listed again only after the steady interval).
    pull_checked: std::sync::Mutex<HashMap<String, (std::time::Instant, String)>>,
    /// Each tenant's project as last listed in bulk.
    inventory: inventory::Inventory,
    /// Per cluster uid: when steps were last executed on it.
    acted_at: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// The clusters whose last plan was not settled: they are observed afresh.
    moving: std::sync::Mutex<std::collections::HashSet<String>>,
    /// When this controller started: anything done before is in every listing after.
    started: std::time::Instant,
}

/// The addons' readiness as read at a time, for a digest.
type ReadReadiness = (std::time::Instant, String, Vec<kaas_cloud::ObjectReadiness>);

/// A client certificate, and when to issue a new one.
type IssuedCredentials = (DateTime<Utc>, Arc<ClientCredentials>);

impl ClusterController {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Arc<SecretBox>,
        stacks: Arc<StackCatalog>,
        clouds: Arc<dyn TenantClouds>,
        workloads: Arc<dyn WorkloadClusters>,
        config: ClusterControllerConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            sealer,
            stacks,
            clouds,
            workloads,
            config,
            metrics,
            credentials: std::sync::Mutex::new(HashMap::new()),
            pull_checked: std::sync::Mutex::new(HashMap::new()),
            inventory: inventory::Inventory::default(),
            acted_at: std::sync::Mutex::new(HashMap::new()),
            moving: std::sync::Mutex::new(std::collections::HashSet::new()),
            started: std::time::Instant::now(),
            readiness: std::sync::Mutex::new(HashMap::new()),
            rendered: std::sync::Mutex::new(HashMap::new()),
            artifacts: Arc::new(addons::NoArtifacts),
            loaded: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes upstream addons' charts and manifests from `artifacts`.
    pub fn with_artifacts(mut self, artifacts: Arc<dyn addons::AddonArtifacts>) -> Self {
        self.artifacts = artifacts;
        self
    }

    fn secrets(&self) -> Secrets<'_> {
        Secrets::new(self.store.as_ref(), &self.sealer)
    }

    fn count_call(&self, cloud: &dyn CloudProvider, operation: &str, ok: bool) {
        let labels = CloudCallLabels {
            provider: cloud.name().to_owned(),
            operation: operation.to_owned(),
            result: if ok { "ok" } else { "error" }.to_owned(),
        };
        self.metrics.cloud_calls.get_or_create(&labels).inc();
    }

    /// Drops what is kept in memory about a cluster that is gone.
    fn forget(&self, uid: &str) {
        self.readiness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        self.rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        self.pull_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        self.acted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        self.moving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Notes what a reconcile planned and did, for how the cluster is observed next.
    fn note_plan(&self, uid: &str, plan: &plan::Plan) {
        if !plan.steps.is_empty() {
            self.acted_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid.to_owned(), std::time::Instant::now());
        }
        let mut moving = self.moving.lock().unwrap_or_else(|e| e.into_inner());
        if plan.is_settled() {
            moving.remove(uid);
        } else {
            moving.insert(uid.to_owned());
        }
    }
}

fn owner_ref(cluster: &Cluster) -> OwnerRef {
    OwnerRef {
        kind: "Cluster".to_owned(),
        name: cluster.metadata.name.clone(),
        uid: cluster.metadata.uid.clone(),
    }
}

/// The first wait after an error that waiting will not mend; doubles per failure.
const NEEDS_A_CHANGE_FIRST: Duration = Duration::from_secs(30);
/// The longest such wait.
const NEEDS_A_CHANGE_MAX: Duration = Duration::from_secs(600);

#[async_trait]
impl Reconciler for ClusterController {
    type Error = ReconcileError;

    fn retry_after(&self, error: &ReconcileError, failures: u32) -> Option<Duration> {
        let ReconcileError::Step(step) = error else {
            return None;
        };
        if !step.needs_a_change() {
            return None;
        }
        let doubled = NEEDS_A_CHANGE_FIRST
            .saturating_mul(1 << failures.saturating_sub(1).min(10))
            .min(NEEDS_A_CHANGE_MAX);
        let jitter = rand::rng().random_range(0.8..1.2);
        Some(doubled.mul_f64(jitter / self.config.time_scale.max(1.0)))
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, ReconcileError> {
        // Load.
        let Some(cluster) = self
            .store
            .get_obj::<Cluster>(&key.tenant, &key.name)
            .await?
        else {
            return Ok(Action::await_change());
        };

        // Observe.
        let cloud = match self.clouds.cloud(&cluster.metadata.tenant).await {
            Ok(cloud) => cloud,
            Err(e) => {
                let e = ReconcileError::Observe(e);
                self.event(
                    &cluster,
                    EventType::Warning,
                    "CloudUnavailable",
                    e.to_string(),
                )
                .await;
                self.observation_failed(&cluster, &e).await?;
                return Err(e);
            }
        };
        let cloud = cloud.as_ref();
        let (observed, workload) = match self.observe(cloud, &cluster).await {
            Ok(o) => o,
            Err(e) => {
                self.event(&cluster, EventType::Warning, "ObserveFailed", e.to_string())
                    .await;
                self.observation_failed(&cluster, &e).await?;
                return Err(e);
            }
        };

        // Plan.
        let plan = plan::plan(&cluster, &observed);
        debug!(steps = plan.steps.len(), waiting = ?plan.waiting, "planned");

        // Execute, then record what each step did, in the plan's order.
        let results = self
            .execute(cloud, &cluster, workload.as_ref(), &plan)
            .await;
        // Only now: a listing taken from here on holds what the steps made.
        self.note_plan(&cluster.metadata.uid, &plan);
        let mut outcome = self.record_steps(&cluster, &plan.steps, results).await?;
        if outcome.cluster_removed {
            self.forget(&cluster.metadata.uid);
            self.record_deleted(&cluster).await;
            return Ok(Action::await_change());
        }

        // Status: of each machine and of the cluster, as observed and executed.
        self.record_machines(&cluster, &observed).await?;
        let Some(status_conflict) = self
            .record_status(key, &cluster, &observed, &plan, &mut outcome)
            .await?
        else {
            return Ok(Action::await_change());
        };

        if let Some(e) = outcome.first_error {
            return Err(ReconcileError::Step(Box::new(e)));
        }
        if outcome.store_conflict || status_conflict || !plan.is_settled() {
            return Ok(Action::requeue(self.config.poll_interval));
        }
        // Jittered, so that clusters settled together are not looked at together.
        let jitter = rand::rng().random_range(0.8..1.0);
        Ok(Action::requeue(self.config.steady_interval.mul_f64(jitter)))
    }
}

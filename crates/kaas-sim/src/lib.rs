//! A simulated OpenStack cloud, in process: networks, subnets, routers, security and
//! server groups, load balancers, floating IPs and servers that take realistic (scalable)
//! time to become active and to go away, obey quotas and dependency rules, and get
//! addresses from their subnets; and simulated workload clusters whose Kubernetes API
//! comes up and whose nodes join as kubeadm would on those servers, become NotReady,
//! drain and leave etcd when told.
//!
//! Faults can be injected at configurable rates ([`SimFaults`]): 503s, timeouts (after
//! the request was carried out), quota errors, servers that end in `ERROR` and load
//! balancers stuck in `PENDING_CREATE`.
//!
//! It is always a *simulation*: nothing is booted anywhere. With a state file it outlives
//! the process that uses it, as a real cloud outlives its clients: what each mutation
//! changed is appended to the file and flushed to disk before the call returns, and all
//! transition times are absolute.

pub mod api;
mod config;
mod flavors;
mod net;
mod persist;
mod rest_state;
mod state;
mod tracked;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kaas_cloud::{
    Capacity, CloudError, CloudProvider, CloudResource, EtcdMembership, Node, PoolMember,
    ResourceKind, ResourceRequest, ResourceStatus, SimulatedMachines, WorkloadClusterRef,
    WorkloadError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The identity URL the simulated cloud reports (a name that never resolves).
pub const SIM_AUTH_URL: &str = "https://identity.sim.invalid/v3";

pub use config::{DEFAULT_REGION, Latencies, LatencyRange, Quotas, SimConfig, SimError, SimFaults};
pub use state::{META_CLUSTER_UID, META_KUBERNETES_VERSION, META_ROLE};

use persist::Store;
use state::{CreateFaults, CreateOptions, Key, State};

/// How long an injected timeout keeps the caller waiting (real time, not scaled).
const TIMEOUT_DELAY: Duration = Duration::from_millis(50);

/// The message of an injected 503.
const INJECTED_503: &str = "503 Service Unavailable: the simulated cloud injected an error";

/// The simulated cloud. Cheap to clone: clones share one cloud.
#[derive(Clone)]
pub struct SimCloud {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    shared: Mutex<Shared>,
}

struct Shared {
    state: State,
    /// The state file, when there is one.
    store: Option<Store>,
    rng: StdRng,
    /// Creates still to fail, by kind (not persisted).
    fail_next: BTreeMap<ResourceKind, u32>,
    /// The fault rates now (not persisted).
    faults: SimFaults,
}

/// One resource of the simulated cloud, for people and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    /// [`ResourceKind::as_str`], e.g. `securityGroup`.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// `PENDING`, `ACTIVE`, `DELETING` or `ERROR`.
    pub status: String,
    /// A server's fixed IP, a load balancer's VIP, a floating IP's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The current time in unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn status_str(status: &ResourceStatus) -> &'static str {
    match status {
        ResourceStatus::Pending => "PENDING",
        ResourceStatus::Active => "ACTIVE",
        ResourceStatus::Deleting => "DELETING",
        ResourceStatus::Error { .. } => "ERROR",
    }
}

impl SimCloud {
    /// Starts the simulated cloud, with the resources in `config.state_file` if it exists.
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let (mut state, mut store) = match &config.state_file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let (state, store) = Store::open(path)?;
                (state, Some(store))
            }
            None => (State::default(), None),
        };
        state.format = state::STATE_FORMAT;
        let now = now_ms();
        state.begin();
        state.purge(now);
        state.forget_orphans();
        if config.faults.stuck_load_balancers == 0.0 {
            // The fault that held them is not there any more (rates are not persisted).
            state.release_stuck(now);
        }
        if let (Some(path), Some(store)) = (&config.state_file, &mut store) {
            // Fails early when the file cannot be written.
            store
                .write(&state.changes(), &state)
                .map_err(|source| SimError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        state.commit();
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        tracing::info!(
            speed = config.speed,
            state_file = ?config.state_file,
            resources = state.resources.len(),
            "simulated cloud started"
        );
        let faults = config.faults.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                shared: Mutex::new(Shared {
                    state,
                    store,
                    rng,
                    fail_next: BTreeMap::new(),
                    faults,
                }),
            }),
        })
    }

    /// The time-scale factor (1.0 is realistic).
    pub fn speed(&self) -> f64 {
        self.inner.config.speed
    }

    /// The configuration the cloud started with ([`SimCloud::faults`] has the fault
    /// rates now).
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Every resource that exists (including those being deleted), in creation order.
    pub fn inventory(&self) -> Vec<InventoryItem> {
        self.read(|state, now| {
            state
                .existing(now)
                .into_iter()
                .map(|r| InventoryItem {
                    kind: r.kind().as_str().to_owned(),
                    id: r.id.clone(),
                    name: r.name.clone(),
                    tags: r.tags.clone(),
                    status: status_str(&r.status(now)).to_owned(),
                    address: r.address.clone(),
                })
                .collect()
        })
    }

    /// The members last set on a load balancer, `None` when it does not exist.
    pub fn load_balancer_members(&self, load_balancer_id: &str) -> Option<Vec<PoolMember>> {
        self.read(|state, now| {
            state
                .get(ResourceKind::LoadBalancer, load_balancer_id, now)
                .map(|lb| lb.members.clone())
        })
    }

    /// Fault injection, minimal: the next `n` creates of `kind` fail with
    /// [`CloudError::Unavailable`] (as a cloud's 503 would). Not persisted.
    pub fn fail_next_creates(&self, kind: ResourceKind, n: u32) {
        let mut shared = self.lock();
        if n == 0 {
            shared.fail_next.remove(&kind);
        } else {
            shared.fail_next.insert(kind, n);
        }
    }

    /// The fault rates now.
    pub fn faults(&self) -> SimFaults {
        self.lock().faults.clone()
    }

    /// Changes the fault rates (not persisted). Setting `stuck_load_balancers` to zero
    /// lets the stuck load balancers go on: each becomes `ACTIVE` at its ready time or
    /// now, whichever is later. An error names the invalid rate.
    pub fn set_faults(&self, faults: SimFaults) -> Result<(), String> {
        faults.validate()?;
        let release = faults.stuck_load_balancers == 0.0;
        tracing::info!(?faults, "simulated cloud: fault rates changed");
        self.lock().faults = faults;
        if release {
            self.mutate(|state, _, now| {
                state.release_stuck(now);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Makes the node on server `node_name` Ready or NotReady, as a kubelet that stops
    /// (or resumes) posting its status would. [`CloudError::NotFound`] when no such
    /// server exists (or it is being deleted).
    pub fn set_node_ready(&self, node_name: &str, ready: bool) -> Result<(), CloudError> {
        self.mutate(|state, _, now| {
            workload::set_node_ready(state, node_name, ready, now).map(|_| ())
        })?;
        tracing::info!(
            node = node_name,
            ready,
            "simulated cloud: node readiness set"
        );
        Ok(())
    }

    /// Makes the evictions from node `node_name` fail, as a PodDisruptionBudget would,
    /// or lets them go on. [`CloudError::NotFound`] when no such server exists (or it is
    /// being deleted).
    pub fn block_drain(&self, node_name: &str, blocked: bool) -> Result<(), CloudError> {
        self.mutate(|state, _, now| {
            workload::block_drain(state, node_name, blocked, now).map(|_| ())
        })?;
        tracing::info!(
            node = node_name,
            blocked,
            "simulated cloud: drain blocking set"
        );
        Ok(())
    }

    /// Compacts the state file now: rewrites it as a snapshot of the state with an
    /// empty journal (which happens by itself once the journal outgrows the snapshot).
    /// Does nothing without a state file.
    pub fn compact(&self) -> Result<(), SimError> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        match (&mut shared.store, &self.inner.config.state_file) {
            (Some(store), Some(path)) => {
                store.compact(&shared.state).map_err(|source| SimError::Io {
                    path: path.clone(),
                    source,
                })
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A mutation that panicked left its changes unwritten: they are undone, so a
        // poisoned lock still guards the state as last written.
        self.inner.shared.lock().unwrap_or_else(|poisoned| {
            let mut shared = poisoned.into_inner();
            shared.state.rollback();
            shared
        })
    }

    fn read<R>(&self, f: impl FnOnce(&State, u64) -> R) -> R {
        let shared = self.lock();
        f(&shared.state, now_ms())
    }

    /// Applies `f` to the state and, when it succeeds, writes what it changed before
    /// anyone sees the change: what a call returned is on disk. When `f` fails, or the
    /// write does, its changes are undone.
    fn mutate<R>(
        &self,
        f: impl FnOnce(&mut State, &mut StdRng, u64) -> Result<R, CloudError>,
    ) -> Result<R, CloudError> {
        self.mutate_with(f, |message| CloudError::Unavailable { message })
    }

    /// [`SimCloud::mutate`] for any error type; `save_error` turns a failed save into one.
    fn mutate_with<R, E>(
        &self,
        f: impl FnOnce(&mut State, &mut StdRng, u64) -> Result<R, E>,
        save_error: impl FnOnce(String) -> E,
    ) -> Result<R, E> {
        let mut guard = self.lock();
        let shared = &mut *guard;
        let now = now_ms();
        let mut rng = shared.rng.clone();
        shared.state.begin();
        shared.state.purge(now);
        let result = match f(&mut shared.state, &mut rng, now) {
            Ok(result) => result,
            Err(e) => {
                shared.state.rollback();
                return Err(e);
            }
        };
        if let (Some(store), Some(path)) = (&mut shared.store, &self.inner.config.state_file) {
            let patch = shared.state.changes();
            if let Err(e) = store.write(&patch, &shared.state) {
                shared.state.rollback();
                tracing::error!(path = %path.display(), error = %e, "saving the simulated cloud failed");
                return Err(save_error(format!(
                    "the simulated cloud could not save its state to {}: {e}",
                    path.display()
                )));
            }
        }
        shared.state.commit();
        shared.rng = rng;
        Ok(result)
    }

    /// A workload call that changes the state.
    fn mutate_workload<R>(
        &self,
        f: impl FnOnce(&mut State, &mut StdRng, u64) -> Result<R, WorkloadError>,
    ) -> Result<R, WorkloadError> {
        self.mutate_with(f, |message| WorkloadError::Api { message })
    }

    fn take_fault(&self, kind: ResourceKind) -> bool {
        let mut shared = self.lock();
        match shared.fail_next.get_mut(&kind) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether a fault of probability `rate` happens, drawn from the seeded generator
    /// (which is not touched when the rate is zero).
    fn roll(&self, rate: impl FnOnce(&SimFaults) -> f64) -> bool {
        let mut shared = self.lock();
        let rate = rate(&shared.faults);
        rate > 0.0 && shared.rng.random::<f64>() < rate
    }

    /// The faults every cloud call may meet: an injected 503 (returned), or a timeout
    /// (`true`: the caller waits, then fails with [`timed_out`]).
    fn call_faults(&self, call: &str) -> Result<bool, CloudError> {
        if self.roll(|f| f.api_errors) {
            tracing::debug!(call, "simulated cloud: injected 503");
            return Err(CloudError::Unavailable {
                message: INJECTED_503.to_owned(),
            });
        }
        let timeout = self.roll(|f| f.timeouts);
        if timeout {
            tracing::debug!(call, "simulated cloud: injected timeout");
        }
        Ok(timeout)
    }
}

/// An injected timeout: the caller waits a little, and never learns what happened.
async fn timed_out() -> CloudError {
    tokio::time::sleep(TIMEOUT_DELAY).await;
    CloudError::Unavailable {
        message: format!(
            "timed out after {} ms waiting for the simulated cloud to answer (the request \
             may have been carried out)",
            TIMEOUT_DELAY.as_millis()
        ),
    }
}

impl fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCloud")
            .field("speed", &self.inner.config.speed)
            .field("state_file", &self.inner.config.state_file)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CloudProvider for SimCloud {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn auth_url(&self) -> String {
        SIM_AUTH_URL.to_owned()
    }

    async fn create(&self, request: &ResourceRequest) -> Result<CloudResource, CloudError> {
        let kind = request.kind();
        if self.take_fault(kind) {
            return Err(CloudError::Unavailable {
                message: format!("simulated fault: creating a {kind} failed (503)"),
            });
        }
        let timeout = self.call_faults("create")?;
        let result = self.create_now(request, &CreateOptions::default());
        if timeout {
            // The cloud did its part; the answer was lost on the way back.
            return Err(timed_out().await);
        }
        result
    }

    async fn get(&self, kind: ResourceKind, id: &str) -> Result<Option<CloudResource>, CloudError> {
        if self.call_faults("get")? {
            return Err(timed_out().await);
        }
        Ok(self.read(|state, now| state.get(kind, id, now).map(|r| r.view(now))))
    }

    async fn find(&self, kind: ResourceKind, tag: &str) -> Result<Vec<CloudResource>, CloudError> {
        if self.call_faults("find")? {
            return Err(timed_out().await);
        }
        Ok(self.read(|state, now| {
            state
                .indexed(&Key::Tag(kind, tag.to_owned()), now)
                .map(|r| r.view(now))
                .collect()
        }))
    }

    async fn find_many(
        &self,
        kind: ResourceKind,
        tags: &[String],
    ) -> Result<HashMap<String, Vec<CloudResource>>, CloudError> {
        if self.call_faults("find")? {
            return Err(timed_out().await);
        }
        // One call, answered from the tag index for each tag.
        Ok(self.read(|state, now| {
            tags.iter()
                .map(|tag| {
                    let found = state
                        .indexed(&Key::Tag(kind, tag.clone()), now)
                        .map(|r| r.view(now))
                        .collect();
                    (tag.clone(), found)
                })
                .collect()
        }))
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
        let timeout = self.call_faults("delete")?;
        let config = &self.inner.config;
        let result = self.mutate(|state, rng, now| state.delete(kind, id, config, rng, now));
        if let Ok(true) = result {
            tracing::debug!(kind = kind.as_str(), id, "simulated cloud: deleting");
        }
        if timeout {
            return Err(timed_out().await);
        }
        result.map(|_| ())
    }

    async fn flavors(&self) -> Result<Vec<kaas_cloud::Flavor>, CloudError> {
        Ok(flavors::all())
    }

    async fn preflight(&self, needs: &Capacity) -> Result<(), CloudError> {
        if self.call_faults("preflight")? {
            return Err(timed_out().await);
        }
        for need in &needs.servers {
            if need.flavor.trim().is_empty() {
                return Err(CloudError::BadRequest {
                    message: "Flavor's name must not be empty.".to_owned(),
                });
            }
            if !flavors::offered(&need.flavor) {
                return Err(CloudError::BadRequest {
                    message: flavors::not_found(&need.flavor),
                });
            }
            if need.image.trim().is_empty() {
                return Err(CloudError::BadRequest {
                    message: "Image's name must not be empty.".to_owned(),
                });
            }
        }
        let requested: u64 = needs.servers.iter().map(|n| u64::from(n.count)).sum();
        let limit = u64::from(self.inner.config.quotas.server);
        let used = self.read(|state, now| state.count(ResourceKind::Server, now) as u64);
        if used + requested > limit {
            return Err(CloudError::QuotaExceeded {
                message: format!(
                    "Quota exceeded for instances: Requested {requested}, but already used \
                     {used} of {limit} instances"
                ),
            });
        }
        Ok(())
    }

    async fn set_load_balancer_members(
        &self,
        load_balancer_id: &str,
        members: &[PoolMember],
    ) -> Result<(), CloudError> {
        let timeout = self.call_faults("set_load_balancer_members")?;
        let result = self.mutate(|state, _, now| state.set_members(load_balancer_id, members, now));
        if timeout {
            return Err(timed_out().await);
        }
        result
    }
}

#[async_trait]
impl SimulatedMachines for SimCloud {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        self.read(|state, now| {
            workload::nodes(
                state,
                &cluster.cluster_uid,
                &cluster.api_endpoint,
                &self.config().region,
                now,
            )
        })
    }
}

#[async_trait]
impl EtcdMembership for SimCloud {
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError> {
        self.read(|state, now| {
            workload::etcd_members(state, &cluster.cluster_uid, &cluster.api_endpoint, now)
        })
    }

    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        let removed = self.mutate_workload(|state, _, now| {
            workload::remove_etcd_member(
                state,
                &cluster.cluster_uid,
                &cluster.api_endpoint,
                node,
                now,
            )
        })?;
        if removed {
            tracing::debug!(node, "simulated cluster: etcd member removed");
        }
        Ok(())
    }
}

impl SimCloud {
    /// A create through the REST API, whose call faults its middleware drew: the
    /// injected failures of [`SimCloud::fail_next_creates`] and those of
    /// [`SimCloud::create_now`].
    pub(crate) fn create_rest(
        &self,
        request: &ResourceRequest,
        options: &CreateOptions,
    ) -> Result<CloudResource, CloudError> {
        let kind = request.kind();
        if self.take_fault(kind) {
            return Err(CloudError::Unavailable {
                message: format!("simulated fault: creating a {kind} failed (503)"),
            });
        }
        self.create_now(request, options)
    }

    /// A delete through the REST API: `false` when there is no such resource (the
    /// API's 404); deleting one that is being deleted changes nothing.
    pub(crate) fn delete_rest(&self, kind: ResourceKind, id: &str) -> Result<bool, CloudError> {
        let config = &self.inner.config;
        self.mutate(|state, rng, now| {
            if state.get(kind, id, now).is_none() {
                return Ok(false);
            }
            state.delete(kind, id, config, rng, now).map(|_| true)
        })
    }

    /// A create after the call's own faults: a take-fault of [`SimCloud::fail_next_creates`]
    /// is the caller's; this draws the injected quota error, the server that ends in
    /// `ERROR` and the stuck load balancer, then creates.
    pub(crate) fn create_now(
        &self,
        request: &ResourceRequest,
        options: &CreateOptions,
    ) -> Result<CloudResource, CloudError> {
        let kind = request.kind();
        if self.roll(|f| f.quota_errors) {
            tracing::debug!(
                kind = kind.as_str(),
                "simulated cloud: injected quota error"
            );
            return Err(CloudError::QuotaExceeded {
                message: format!("Quota exceeded for resources: ['{}'].", kind.as_str()),
            });
        }
        let faults = CreateFaults {
            server_error: kind == ResourceKind::Server && self.roll(|f| f.server_errors),
            stuck: kind == ResourceKind::LoadBalancer && self.roll(|f| f.stuck_load_balancers),
        };
        let config = &self.inner.config;
        let result =
            self.mutate(|state, rng, now| state.create(request, config, faults, options, rng, now));
        match &result {
            Ok(created) => tracing::debug!(
                kind = kind.as_str(),
                id = %created.id,
                name = %created.name,
                "simulated cloud: created"
            ),
            Err(error) => tracing::debug!(
                kind = kind.as_str(),
                name = %request.name,
                %error,
                "simulated cloud: create refused"
            ),
        }
        result
    }
}

/// The tag that names a resource's cluster (`kaas-cluster=<uid>`).
pub const CLUSTER_TAG_PREFIX: &str = "kaas-cluster=";

/// A server of a simulated workload cluster, with what it boots from.
#[derive(Clone)]
pub struct BootingServer {
    pub id: String,
    pub name: String,
    /// Whether it is `ACTIVE`: booted, running what its user data says.
    pub active: bool,
    /// Its user data as Nova keeps it (base64).
    pub user_data: String,
    /// The Kubernetes version its image runs ([`META_KUBERNETES_VERSION`]).
    pub kubernetes_version: Option<String>,
}

impl fmt::Debug for BootingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootingServer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl SimCloud {
    /// The servers of cluster `cluster_uid` (by the uid in their metadata) that exist
    /// and are not being deleted, in creation order.
    pub fn cluster_servers(&self, cluster_uid: &str) -> Vec<BootingServer> {
        self.read(|state, now| {
            state
                .indexed(&Key::Cluster(cluster_uid.to_owned()), now)
                .filter(|r| {
                    r.kind() == ResourceKind::Server
                        && !r.is_deleting()
                        && r.metadata(META_CLUSTER_UID) == Some(cluster_uid)
                })
                .filter_map(|r| match &r.spec {
                    kaas_cloud::ResourceSpec::Server { user_data, .. } => Some(BootingServer {
                        id: r.id.clone(),
                        name: r.name.clone(),
                        active: r.status(now) == ResourceStatus::Active,
                        user_data: user_data.0.clone(),
                        kubernetes_version: r.metadata(META_KUBERNETES_VERSION).map(str::to_owned),
                    }),
                    _ => None,
                })
                .collect()
        })
    }

    /// The uid of the cluster whose API load balancer answers at `address`: its
    /// floating IP or its VIP (the resource tagged with the cluster), while neither is
    /// being deleted.
    pub fn cluster_at(&self, address: &str) -> Option<String> {
        self.read(|state, now| {
            [ResourceKind::FloatingIp, ResourceKind::LoadBalancer]
                .into_iter()
                .find_map(|kind| {
                    state
                        .indexed(&Key::Kind(kind), now)
                        .filter(|r| !r.is_deleting() && r.address.as_deref() == Some(address))
                        .find_map(|r| {
                            r.tags
                                .iter()
                                .find_map(|t| t.strip_prefix(CLUSTER_TAG_PREFIX))
                                .map(str::to_owned)
                        })
                })
        })
    }

    /// The nodes of cluster `cluster_uid` whose drains are blocked.
    pub fn drain_blocked_nodes(&self, cluster_uid: &str) -> Vec<String> {
        self.read(|state, now| workload::drain_blocked_nodes(state, cluster_uid, now))
    }
}

#[cfg(test)]
mod tests;

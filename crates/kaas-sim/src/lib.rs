//! A simulated OpenStack cloud, in process: networks, subnets, routers, security and
//! server groups, load balancers, floating IPs and servers that take realistic (scalable)
//! time to become active and to go away, obey quotas and dependency rules, and get
//! addresses from their subnets; and simulated workload clusters whose Kubernetes API
//! comes up and whose nodes join as kubeadm would on those servers.
//!
//! It is always a *simulation*: nothing is booted anywhere. With a state file it outlives
//! the process that uses it, as a real cloud outlives its clients: every mutation is on
//! disk before the call returns, and all transition times are absolute.

mod config;
mod net;
mod persist;
mod state;
mod workload;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kaas_cloud::{
    CloudError, CloudProvider, CloudResource, Node, PoolMember, ResourceKind, ResourceRequest,
    ResourceStatus, WorkloadClusterRef, WorkloadClusters, WorkloadError,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub use config::{Latencies, LatencyRange, Quotas, SimConfig, SimError};
pub use state::{META_CLUSTER_UID, META_KUBERNETES_VERSION, META_ROLE};

use state::State;

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
    rng: StdRng,
    /// Creates still to fail, by kind (not persisted).
    faults: BTreeMap<ResourceKind, u32>,
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
        let mut state = match &config.state_file {
            Some(path) => persist::load(path)?.unwrap_or_default(),
            None => State::default(),
        };
        state.format = state::STATE_FORMAT;
        if let Some(path) = &config.state_file {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            // Fails early when the file cannot be written.
            persist::save(path, &state).map_err(|source| SimError::Io {
                path: path.clone(),
                source,
            })?;
        }
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
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                shared: Mutex::new(Shared {
                    state,
                    rng,
                    faults: BTreeMap::new(),
                }),
            }),
        })
    }

    /// The time-scale factor (1.0 is realistic).
    pub fn speed(&self) -> f64 {
        self.inner.config.speed
    }

    /// The configuration the cloud runs with.
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
            shared.faults.remove(&kind);
        } else {
            shared.faults.insert(kind, n);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Mutations replace the state only once complete, so a poisoned lock still
        // guards a consistent state.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read<R>(&self, f: impl FnOnce(&State, u64) -> R) -> R {
        let shared = self.lock();
        f(&shared.state, now_ms())
    }

    /// Applies `f` to a copy of the state and, when it succeeds and changed something,
    /// saves the copy before making it the state: what a call returned is on disk.
    fn mutate<R>(
        &self,
        f: impl FnOnce(&mut State, &mut StdRng, u64) -> Result<(R, bool), CloudError>,
    ) -> Result<R, CloudError> {
        let mut shared = self.lock();
        let now = now_ms();
        let mut state = shared.state.clone();
        let mut rng = shared.rng.clone();
        let purged = state.purge(now);
        let (result, changed) = f(&mut state, &mut rng, now)?;
        if (changed || purged)
            && let Some(path) = &self.inner.config.state_file
        {
            save(path, &state)?;
        }
        shared.state = state;
        shared.rng = rng;
        Ok(result)
    }

    fn take_fault(&self, kind: ResourceKind) -> bool {
        let mut shared = self.lock();
        match shared.faults.get_mut(&kind) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

fn save(path: &Path, state: &State) -> Result<(), CloudError> {
    persist::save(path, state).map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "saving the simulated cloud failed");
        CloudError::Unavailable {
            message: format!(
                "the simulated cloud could not save its state to {}: {e}",
                path.display()
            ),
        }
    })
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

    async fn create(&self, request: &ResourceRequest) -> Result<CloudResource, CloudError> {
        let kind = request.kind();
        if self.take_fault(kind) {
            return Err(CloudError::Unavailable {
                message: format!("simulated fault: creating a {kind} failed (503)"),
            });
        }
        let config = &self.inner.config;
        let result = self.mutate(|state, rng, now| {
            state
                .create(request, config, rng, now)
                .map(|created| (created, true))
        });
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

    async fn get(&self, kind: ResourceKind, id: &str) -> Result<Option<CloudResource>, CloudError> {
        Ok(self.read(|state, now| state.get(kind, id, now).map(|r| r.view(now))))
    }

    async fn find(&self, kind: ResourceKind, tag: &str) -> Result<Vec<CloudResource>, CloudError> {
        Ok(self.read(|state, now| {
            state
                .existing(now)
                .into_iter()
                .filter(|r| r.kind() == kind && r.tags.iter().any(|t| t == tag))
                .map(|r| r.view(now))
                .collect()
        }))
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
        let config = &self.inner.config;
        let started = self.mutate(|state, rng, now| {
            state
                .delete(kind, id, config, rng, now)
                .map(|changed| (changed, changed))
        })?;
        if started {
            tracing::debug!(kind = kind.as_str(), id, "simulated cloud: deleting");
        }
        Ok(())
    }

    async fn set_load_balancer_members(
        &self,
        load_balancer_id: &str,
        members: &[PoolMember],
    ) -> Result<(), CloudError> {
        self.mutate(|state, _, now| {
            state
                .set_members(load_balancer_id, members, now)
                .map(|()| ((), true))
        })
    }
}

#[async_trait]
impl WorkloadClusters for SimCloud {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        self.read(|state, now| {
            workload::nodes(state, &cluster.cluster_uid, &cluster.api_endpoint, now)
        })
    }
}

#[cfg(test)]
mod tests;

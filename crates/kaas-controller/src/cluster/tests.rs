//! The cluster controller itself, reconcile by reconcile, against the simulated cloud
//! (with instant latencies, so a reconcile finds what the previous one started done)
//! and a SQLite store in a temporary directory. Each test drives `reconcile` until a
//! condition holds, or fails after a bounded number of reconciles: no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kaas_cloud::{
    AddonsApplied, CloudProvider, DrainProgress, EtcdMembership, JoinToken, Node, ObjectReadiness,
    RegisteredToken, ResourceKind, SharedCloud, SimulatedMachines, WorkloadClusterRef,
    WorkloadClusters, WorkloadError,
};
use kaas_core::cluster::conditions;
use kaas_core::naming::{cluster_tag, resource_prefix};
use kaas_core::stack::StackCatalog;
use kaas_core::{
    Cluster, ClusterPhase, ClusterSpec, ConditionStatus, Event, EventType, Machine, NodePool,
    Object,
};
use kaas_sim::{DEFAULT_REGION, Latencies, SimCloud, SimConfig, SimFaults};
use kaas_store::{ListFilter, ObjectKey, SecretBox, Secrets, SqliteStore, Store, StoreExt};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tempfile::TempDir;

use super::{Category, ClusterController, ClusterControllerConfig, ReconcileError};
use crate::metrics::{Metrics, StepFailureLabels};
use crate::runtime::Reconciler;

const TENANT: &str = "default";
/// The namespaces of every simulated cluster, for its pull Secrets.
const SIM_NAMESPACES: [&str; 2] = ["default", "kube-system"];

/// How many reconciles a cluster of one control plane and one worker may take to
/// become Available (or to go) on a cloud where everything happens at once.
const MAX_RECONCILES: usize = 200;

/// The Kubernetes side of the simulated clusters, as the controller reaches it: nodes
/// and etcd members as the simulated cloud's machines report them, drains as far as
/// the simulation lets them go, bootstrap tokens and addons kept in memory (every
/// applied object is ready).
struct SimWorkloads {
    sim: SimCloud,
    tokens: Mutex<HashMap<String, BTreeMap<String, RegisteredToken>>>,
    applied: Mutex<HashMap<String, Vec<String>>>,
    /// Per cluster uid: the objects of the last apply, as sent.
    last_applied: Mutex<HashMap<String, Vec<Value>>>,
    /// Per cluster uid: the digest of the pull Secret written in each namespace.
    pull_secrets: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// etcd refuses to remove members (as it does while an alarm is raised).
    refuse_etcd_removal: AtomicBool,
}

impl SimWorkloads {
    fn new(sim: SimCloud) -> Self {
        Self {
            sim,
            tokens: Mutex::default(),
            pull_secrets: Mutex::default(),
            applied: Mutex::default(),
            last_applied: Mutex::default(),
            refuse_etcd_removal: AtomicBool::new(false),
        }
    }
}

/// `Kind namespace/name`, as the workload client names an object.
fn object_name(object: &Value) -> String {
    let meta = &object["metadata"];
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = meta["name"].as_str().unwrap_or_default();
    match meta["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[async_trait]
impl EtcdMembership for SimWorkloads {
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError> {
        self.sim.etcd_members(cluster).await
    }

    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        if self.refuse_etcd_removal.load(Ordering::SeqCst) {
            return Err(WorkloadError::Api {
                message: "etcd raises the alarm NOSPACE; no member is removed".to_owned(),
            });
        }
        self.sim.remove_etcd_member(cluster, node).await
    }
}

#[async_trait]
impl WorkloadClusters for SimWorkloads {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        SimulatedMachines::nodes(&self.sim, cluster).await
    }

    async fn drain(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<DrainProgress, WorkloadError> {
        let blocked = self.sim.drain_blocked_nodes(&cluster.cluster_uid);
        Ok(if blocked.iter().any(|n| n == node) {
            DrainProgress::Blocked {
                message: "a disruption budget refuses the eviction".to_owned(),
            }
        } else {
            DrainProgress::Drained
        })
    }

    async fn delete_node(
        &self,
        _cluster: &WorkloadClusterRef,
        _node: &str,
    ) -> Result<(), WorkloadError> {
        Ok(())
    }

    async fn bootstrap_tokens(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<RegisteredToken>, WorkloadError> {
        let tokens = self.tokens.lock().unwrap();
        Ok(tokens
            .get(&cluster.cluster_uid)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn register_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        token: &JoinToken,
    ) -> Result<(), WorkloadError> {
        self.tokens
            .lock()
            .unwrap()
            .entry(cluster.cluster_uid.clone())
            .or_default()
            .insert(
                token.id.clone(),
                RegisteredToken {
                    id: token.id.clone(),
                    machine: token.machine.clone(),
                    expires: Some(token.expires),
                },
            );
        Ok(())
    }

    async fn delete_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        id: &str,
    ) -> Result<(), WorkloadError> {
        if let Some(t) = self.tokens.lock().unwrap().get_mut(&cluster.cluster_uid) {
            t.remove(id);
        }
        Ok(())
    }

    async fn apply(
        &self,
        cluster: &WorkloadClusterRef,
        _set: &str,
        objects: &[Value],
    ) -> Result<AddonsApplied, WorkloadError> {
        let names: Vec<String> = objects.iter().map(object_name).collect();
        self.last_applied
            .lock()
            .unwrap()
            .insert(cluster.cluster_uid.clone(), objects.to_vec());
        let before = self
            .applied
            .lock()
            .unwrap()
            .insert(cluster.cluster_uid.clone(), names.clone())
            .unwrap_or_default();
        Ok(AddonsApplied {
            applied: objects.len(),
            pruned: before.into_iter().filter(|n| !names.contains(n)).collect(),
            replaced: Vec::new(),
        })
    }

    async fn stale_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        _name: &str,
        digest: &str,
    ) -> Result<Vec<String>, WorkloadError> {
        let written = self.pull_secrets.lock().unwrap();
        let written = written.get(&cluster.cluster_uid);
        Ok(SIM_NAMESPACES
            .iter()
            .filter(|ns| written.and_then(|w| w.get(**ns)).map(String::as_str) != Some(digest))
            .map(|ns| (*ns).to_owned())
            .collect())
    }

    async fn put_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        _name: &str,
        namespaces: &[String],
        _docker_config: &[u8],
        digest: &str,
    ) -> Result<(), WorkloadError> {
        let mut written = self.pull_secrets.lock().unwrap();
        let written = written.entry(cluster.cluster_uid.clone()).or_default();
        for ns in namespaces {
            written.insert(ns.clone(), digest.to_owned());
        }
        Ok(())
    }

    async fn remove_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        _name: &str,
    ) -> Result<(), WorkloadError> {
        self.pull_secrets
            .lock()
            .unwrap()
            .remove(&cluster.cluster_uid);
        Ok(())
    }

    async fn readiness(
        &self,
        cluster: &WorkloadClusterRef,
        objects: &[Value],
    ) -> Result<Vec<ObjectReadiness>, WorkloadError> {
        let applied = self.applied.lock().unwrap();
        let applied = applied.get(&cluster.cluster_uid);
        Ok(objects
            .iter()
            .map(object_name)
            .map(|object| {
                let there = applied.is_some_and(|a| a.contains(&object));
                ObjectReadiness {
                    object,
                    ready: there,
                    missing: !there,
                    message: String::new(),
                }
            })
            .collect())
    }
}

/// A store in a temporary directory, the simulated cloud, and what a controller is
/// built from; [`World::controller`] builds a fresh one (nothing kept in memory), as a
/// restarted server would.
struct World {
    _dir: TempDir,
    store: Arc<dyn Store>,
    sealer: Arc<SecretBox>,
    stacks: Arc<StackCatalog>,
    artifacts: Arc<TestArtifacts>,
    sim: SimCloud,
    workloads: Arc<SimWorkloads>,
    metrics: Metrics,
}

/// Artifacts by digest, in memory; counts how often it is asked.
#[derive(Default)]
struct TestArtifacts {
    by_digest: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    asked: AtomicUsize,
}

impl TestArtifacts {
    /// Keeps `bytes`; returns its digest.
    fn add(&self, bytes: Vec<u8>) -> String {
        let digest = format!(
            "sha256:{}",
            hex(&ring::digest::digest(&ring::digest::SHA256, &bytes))
        );
        self.by_digest
            .lock()
            .unwrap()
            .insert(digest.clone(), Arc::new(bytes));
        digest
    }
}

#[async_trait]
impl super::addons::AddonArtifacts for TestArtifacts {
    async fn artifact(&self, addon: &kaas_core::stack::StackAddon) -> Result<Arc<Vec<u8>>, String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let digest = match (&addon.chart, &addon.manifest) {
            (Some(chart), _) => &chart.digest,
            (_, Some(manifest)) => &manifest.digest,
            _ => return Err(format!("addon {}: no artifact", addon.name)),
        };
        self.by_digest
            .lock()
            .unwrap()
            .get(digest)
            .cloned()
            .ok_or_else(|| format!("addon {}: not in this source", addon.name))
    }
}

/// The built-in stacks with every addon installed from a small manifest of its own (a
/// Deployment named after it), kept in `artifacts`: these tests are about what the
/// controller does with rendered addons; the charts have tests of their own.
fn test_stacks(artifacts: &TestArtifacts) -> StackCatalog {
    let mut catalog = StackCatalog::default();
    for stack in StackCatalog::builtin().unwrap().all() {
        let mut stack = stack.clone();
        for addon in &mut stack.spec.addons {
            let namespace = addon.namespace.clone().unwrap_or("kube-system".to_owned());
            let manifest = format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {}\n  namespace: {namespace}\nspec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n    spec: {{containers: [{{name: x, image: x}}]}}\n",
                addon.name
            );
            addon.chart = None;
            addon.manifest = Some(kaas_core::stack::ManifestRef {
                url: format!("https://artifacts.invalid/{}.yaml", addon.name),
                digest: artifacts.add(manifest.into_bytes()),
            });
        }
        stack.validate().unwrap();
        catalog.add(stack).unwrap();
    }
    catalog
}

impl World {
    async fn new(faults: SimFaults) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("kaas.db"))
                .await
                .unwrap(),
        );
        let sealer = Arc::new(SecretBox::load_dir(dir.path()).unwrap());
        let sim = SimCloud::new(SimConfig {
            latencies: Latencies::instant(),
            seed: Some(7),
            faults,
            ..SimConfig::default()
        })
        .unwrap();
        let artifacts = Arc::new(TestArtifacts::default());
        Self {
            _dir: dir,
            store,
            sealer,
            stacks: Arc::new(test_stacks(&artifacts)),
            artifacts,
            workloads: Arc::new(SimWorkloads::new(sim.clone())),
            sim,
            metrics: Metrics::new(&mut Registry::default()),
        }
    }

    fn config(&self) -> ClusterControllerConfig {
        ClusterControllerConfig {
            poll_interval: Duration::from_millis(10),
            steady_interval: Duration::from_secs(60),
            time_scale: 1.0,
            region: Some(DEFAULT_REGION.to_owned()),
            ..ClusterControllerConfig::default()
        }
    }

    fn controller(&self) -> ClusterController {
        self.controller_with(self.config())
    }

    fn controller_with(&self, config: ClusterControllerConfig) -> ClusterController {
        ClusterController::new(
            self.store.clone(),
            self.sealer.clone(),
            self.stacks.clone(),
            Arc::new(SharedCloud(
                Arc::new(self.sim.clone()) as Arc<dyn CloudProvider>
            )),
            self.workloads.clone(),
            config,
            self.metrics.clone(),
        )
        .with_artifacts(self.artifacts.clone())
    }

    /// Stores a cluster of one control plane and one worker, as the API does (with
    /// its finalizer).
    async fn create_cluster(&self, name: &str) -> ObjectKey {
        let mut cluster = Cluster::new(
            name,
            ClusterSpec {
                node_pools: vec![NodePool::new("workers", 1)],
                ..ClusterSpec::default()
            },
        );
        cluster.spec.control_plane.replicas = 1;
        cluster.metadata.finalizers = vec![kaas_core::cluster::CLUSTER_FINALIZER.to_owned()];
        self.store.create_obj(TENANT, &cluster).await.unwrap();
        ObjectKey::new(Cluster::KIND, TENANT, name)
    }

    async fn cluster(&self, key: &ObjectKey) -> Option<Cluster> {
        self.store.get_obj(&key.tenant, &key.name).await.unwrap()
    }

    async fn machines(&self, cluster: &Cluster) -> Vec<Machine> {
        self.store
            .list_obj(&ListFilter {
                tenant: Some(TENANT.to_owned()),
                owner_uid: Some(cluster.metadata.uid.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn events(&self, cluster: &Cluster) -> Vec<Event> {
        self.store
            .list_events(TENANT, &cluster.metadata.uid, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.body).unwrap())
            .collect()
    }

    /// The cloud's resources tagged with the cluster.
    fn resources(&self, uid: &str) -> Vec<kaas_sim::InventoryItem> {
        let tag = cluster_tag(uid);
        self.sim
            .inventory()
            .into_iter()
            .filter(|r| r.tags.contains(&tag) || r.name.contains(uid))
            .collect()
    }

    fn failures(&self, step: &str, category: Category) -> u64 {
        self.metrics
            .step_failures
            .get_or_create(&StepFailureLabels {
                controller: Cluster::KIND.to_owned(),
                step: step.to_owned(),
                category: category.reason().to_owned(),
            })
            .get()
    }

    /// Reconciles with `controller()` until `done` holds for the stored cluster
    /// (`None` once it is gone); each reconcile's error is kept for the failure
    /// message. Panics after [`MAX_RECONCILES`].
    async fn reconcile_until(
        &self,
        key: &ObjectKey,
        mut controller: impl FnMut() -> ClusterController,
        done: impl Fn(Option<&Cluster>) -> bool,
    ) -> usize {
        let mut errors = Vec::new();
        for n in 0..MAX_RECONCILES {
            let cluster = self.cluster(key).await;
            if done(cluster.as_ref()) {
                return n;
            }
            if let Err(e) = controller().reconcile(key).await {
                errors.push(e.to_string());
            }
        }
        let cluster = self.cluster(key).await;
        panic!(
            "not done after {MAX_RECONCILES} reconciles; status: {:#?}\nlast errors: {:#?}",
            cluster.map(|c| c.status),
            &errors[errors.len().saturating_sub(5)..]
        );
    }
}

fn available(c: Option<&Cluster>) -> bool {
    c.is_some_and(|c| c.status.phase == ClusterPhase::Available)
}

fn condition(c: &Cluster, type_: &str) -> Option<(ConditionStatus, String)> {
    c.status
        .conditions
        .iter()
        .find(|k| k.type_ == type_)
        .map(|k| (k.status, k.reason.clone()))
}

/// What two runs of the same cluster must agree on: the non-machine resources by kind
/// and name, how many servers and ports its machines have, its machines per pool, its
/// phase and its conditions. Machines' names carry a random suffix, so they count.
async fn shape(world: &World, key: &ObjectKey) -> BTreeSet<String> {
    let cluster = world.cluster(key).await.unwrap();
    let mut shape = BTreeSet::new();
    let mut per_machine: BTreeMap<String, usize> = BTreeMap::new();
    // Resource names hold a piece of the cluster's uid.
    let prefix = resource_prefix(&cluster.metadata.name, &cluster.metadata.uid);
    for r in world.resources(&cluster.metadata.uid) {
        if r.tags.iter().any(|t| t.starts_with("kaas-machine=")) {
            *per_machine.entry(r.kind).or_default() += 1;
        } else {
            let name = r.name.replace(&prefix, "PREFIX");
            shape.insert(format!("{} {name} {}", r.kind, r.status));
        }
    }
    for (kind, n) in per_machine {
        shape.insert(format!("{n} machine {kind}s"));
    }
    let mut pools: BTreeMap<String, usize> = BTreeMap::new();
    for m in world.machines(&cluster).await {
        *pools
            .entry(format!("{} {}", m.spec.pool, m.status.phase))
            .or_default() += 1;
    }
    for (pool, n) in pools {
        shape.insert(format!("{n} machines in {pool}"));
    }
    shape.insert(format!("phase {}", cluster.status.phase));
    for c in &cluster.status.conditions {
        shape.insert(format!("{} {:?}", c.type_, c.status));
    }
    shape
}

/// No two resources of one kind share a name: nothing was created twice.
fn assert_no_duplicates(world: &World, uid: &str) {
    let mut seen = BTreeSet::new();
    for r in world.resources(uid) {
        assert!(
            seen.insert((r.kind.clone(), r.name.clone())),
            "{} {} twice: {:#?}",
            r.kind,
            r.name,
            world.resources(uid)
        );
    }
}

#[tokio::test]
async fn a_cluster_is_created_and_becomes_available() {
    let world = World::new(SimFaults::default()).await;
    let key = world.create_cluster("demo").await;
    let controller = world.controller();
    world
        .reconcile_until(&key, || world.controller(), available)
        .await;

    let cluster = world.cluster(&key).await.unwrap();
    for type_ in [
        conditions::INFRASTRUCTURE_READY,
        conditions::CONTROL_PLANE_READY,
        conditions::NODE_POOLS_READY,
        conditions::ADDONS_READY,
        conditions::AVAILABLE,
    ] {
        assert_eq!(
            condition(&cluster, type_).map(|c| c.0),
            Some(ConditionStatus::True),
            "{type_}: {:#?}",
            cluster.status.conditions
        );
    }
    assert!(cluster.status.api_endpoint.is_some());
    let machines = world.machines(&cluster).await;
    assert_eq!(machines.len(), 2, "{machines:#?}");
    assert!(machines.iter().all(|m| m.status.node_name.is_some()));
    // Every machine's join token was deleted once its node was Ready.
    assert!(
        world
            .workloads
            .tokens
            .lock()
            .unwrap()
            .values()
            .all(BTreeMap::is_empty)
    );
    let events = world.events(&cluster).await;
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for reason in [
        "NetworkCreated",
        "PkiCreated",
        "MachineCreated",
        "ServerCreated",
        "AddonsApplied",
        "Available",
    ] {
        assert!(reasons.contains(&reason), "no {reason}: {reasons:?}");
    }
    assert!(
        events.iter().all(|e| e.type_ == EventType::Normal),
        "{events:#?}"
    );
    assert_no_duplicates(&world, &cluster.metadata.uid);

    // Settled: another reconcile changes nothing, in the cloud or in the store.
    let before = (world.sim.inventory(), cluster.clone());
    let action = controller.reconcile(&key).await.unwrap();
    // Looked at again after the steady interval, jittered (at most a fifth earlier).
    let after = action.requeue_after.unwrap();
    assert!(
        after <= Duration::from_secs(60) && after >= Duration::from_secs(48),
        "{after:?}"
    );
    assert_eq!(world.sim.inventory(), before.0);
    let after = world.cluster(&key).await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.1.metadata.resource_version
    );
}

/// The control-plane servers of the cluster that are not being deleted.
fn control_plane_servers(world: &World, uid: &str) -> usize {
    world
        .resources(uid)
        .iter()
        .filter(|r| r.kind == "server" && r.name.contains("control-plane"))
        .filter(|r| r.status != "DELETING")
        .count()
}

/// The cloud calls the controller made, by operation (`find`, `list`, …).
fn calls(world: &World, operation: &str) -> u64 {
    world
        .metrics
        .cloud_calls
        .get_or_create(&crate::metrics::CloudCallLabels {
            provider: "sim".to_owned(),
            operation: operation.to_owned(),
            result: "ok".to_owned(),
        })
        .get()
}

#[tokio::test]
async fn settled_clusters_are_observed_from_one_listing_of_their_project() {
    let world = World::new(SimFaults::default()).await;
    let a = world.create_cluster("a").await;
    let b = world.create_cluster("b").await;
    for key in [&a, &b] {
        world
            .reconcile_until(key, || world.controller(), available)
            .await;
    }
    // One controller (as a server has), as after a restart: it knows nothing of them.
    let controller = world.controller();
    let (finds, lists) = (calls(&world, "find"), calls(&world, "list"));
    for _ in 0..3 {
        for key in [&a, &b] {
            controller.reconcile(key).await.unwrap();
        }
    }
    assert_eq!(
        calls(&world, "find"),
        finds,
        "a settled cluster was observed alone"
    );
    assert_eq!(
        calls(&world, "list") - lists,
        ResourceKind::ALL.len() as u64,
        "one listing per kind serves both clusters, six times"
    );

    // A server gone behind kaas' back is seen in the next listing, and the cluster,
    // on the move again, is observed afresh.
    let uid = world.cluster(&a).await.unwrap().metadata.uid;
    let server = world
        .resources(&uid)
        .into_iter()
        .find(|r| r.kind == ResourceKind::Server.as_str())
        .unwrap();
    world
        .sim
        .delete(ResourceKind::Server, &server.id)
        .await
        .unwrap();
    let relisting = world.controller_with(ClusterControllerConfig {
        cloud_resync: Duration::ZERO,
        ..world.config()
    });
    relisting.reconcile(&a).await.unwrap();
    let finds = calls(&world, "find");
    relisting.reconcile(&a).await.unwrap();
    assert!(
        calls(&world, "find") > finds,
        "a cluster on the move is observed afresh"
    );
}

#[tokio::test]
async fn a_control_plane_keeps_its_server_while_its_etcd_member_cannot_be_removed() {
    let world = World::new(SimFaults::default()).await;
    let key = world.create_cluster("demo").await;
    let mut cluster = world.cluster(&key).await.unwrap();
    cluster.spec.control_plane.replicas = 3;
    world.store.update_obj(&cluster).await.unwrap();
    world
        .reconcile_until(&key, || world.controller(), available)
        .await;
    let uid = world.cluster(&key).await.unwrap().metadata.uid;
    assert_eq!(control_plane_servers(&world, &uid), 3);

    // Down to one while etcd refuses: the leaving machine is drained, its removal is
    // tried and fails, and the server chained to it is not deleted.
    world
        .workloads
        .refuse_etcd_removal
        .store(true, Ordering::SeqCst);
    let mut cluster = world.cluster(&key).await.unwrap();
    cluster.spec.control_plane.replicas = 1;
    world.store.update_obj(&cluster).await.unwrap();
    for _ in 0..20 {
        let _ = world.controller().reconcile(&key).await;
    }
    assert!(world.failures("RemoveEtcdMember", Category::WorkloadApi) > 0);
    assert_eq!(control_plane_servers(&world, &uid), 3);

    // etcd lets go: member and server leave in the same reconcile, one machine at a
    // time, down to one.
    world
        .workloads
        .refuse_etcd_removal
        .store(false, Ordering::SeqCst);
    world
        .reconcile_until(
            &key,
            || world.controller(),
            |c| available(c) && c.is_some_and(|c| c.status.control_plane.replicas == 1),
        )
        .await;
    for _ in 0..MAX_RECONCILES {
        if control_plane_servers(&world, &uid) == 1 {
            break;
        }
        world.controller().reconcile(&key).await.unwrap();
    }
    assert_eq!(control_plane_servers(&world, &uid), 1);
    let events = world.events(&world.cluster(&key).await.unwrap()).await;
    let removed = events
        .iter()
        .filter(|e| e.reason == "EtcdMemberRemoved")
        .count();
    assert_eq!(removed, 2, "{events:#?}");
}

#[tokio::test]
async fn reconciles_that_lose_answers_and_memory_converge_to_the_same_cluster() {
    // One run as it should go; one where a fifth of the cloud's answers are lost
    // after the call was carried out (as a timeout loses them), every reconcile is
    // run twice, and each by a new controller (nothing kept in memory, as after a
    // crash). Both must end with the same cluster, and nothing built twice.
    let calm = World::new(SimFaults::default()).await;
    let key = calm.create_cluster("demo").await;
    calm.reconcile_until(&key, || calm.controller(), available)
        .await;

    let rough = World::new(SimFaults {
        timeouts: 0.2,
        ..SimFaults::default()
    })
    .await;
    let key = rough.create_cluster("demo").await;
    let mut settled = false;
    for _ in 0..MAX_RECONCILES {
        if available(rough.cluster(&key).await.as_ref()) {
            settled = true;
            break;
        }
        let controller = rough.controller();
        let first = controller.reconcile(&key).await;
        let again = controller.reconcile(&key).await;
        // A repeated reconcile fails only where the first did, or where the cloud
        // lost an answer.
        if let (Ok(_), Err(e)) = (&first, &again) {
            assert!(e.to_string().contains("timed out"), "{e}");
        }
    }
    assert!(
        settled,
        "{:#?}",
        rough.cluster(&key).await.map(|c| c.status)
    );
    // The answers are lost no more: whatever the lost ones left to do is done.
    rough.sim.set_faults(SimFaults::default()).unwrap();
    for _ in 0..3 {
        rough.controller().reconcile(&key).await.unwrap();
    }

    let uid = rough.cluster(&key).await.unwrap().metadata.uid;
    assert_no_duplicates(&rough, &uid);
    assert_eq!(shape(&rough, &key).await, shape(&calm, &key).await);
}

#[tokio::test]
async fn a_failing_cloud_call_is_an_event_of_its_category_and_counted() {
    // Every create is refused for want of quota: the network is the first.
    let world = World::new(SimFaults {
        quota_errors: 1.0,
        ..SimFaults::default()
    })
    .await;
    let key = world.create_cluster("demo").await;
    let controller = world.controller();
    let err = loop {
        match controller.reconcile(&key).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    world.failures("CreateResource", Category::CloudQuota) == 0,
                    "counted without an error"
                );
            }
        }
    };
    let ReconcileError::Step(step) = &err else {
        panic!("not a step's error: {err:?}");
    };
    assert_eq!(step.category(), Category::CloudQuota);
    assert!(
        matches!(
            step.cloud(),
            Some(kaas_cloud::CloudError::QuotaExceeded { .. })
        ),
        "{step:?}"
    );
    // The cloud's words are kept as the error's source.
    let source = std::error::Error::source(step.as_ref())
        .unwrap()
        .to_string();
    assert!(source.contains("quota"), "{source}");

    let cluster = world.cluster(&key).await.unwrap();
    let warnings: Vec<Event> = world
        .events(&cluster)
        .await
        .into_iter()
        .filter(|e| e.type_ == EventType::Warning)
        .collect();
    // The step's failure, then the phase it leads to: quota does not come back by
    // retrying, so the cluster is Failed until the project has room.
    let reasons: Vec<&str> = warnings.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["QuotaExceeded", "Failed"], "{warnings:#?}");
    assert!(
        warnings[0].message.starts_with("creating network ")
            && warnings[0].message.contains("Quota exceeded for resources"),
        "{}",
        warnings[0].message
    );
    assert_eq!(cluster.status.phase, ClusterPhase::Failed);
    assert_eq!(world.failures("CreateResource", Category::CloudQuota), 1);
    assert_eq!(
        condition(&cluster, conditions::INFRASTRUCTURE_READY),
        Some((ConditionStatus::False, "QuotaExceeded".to_owned()))
    );
    // Nothing was built.
    assert!(world.resources(&cluster.metadata.uid).is_empty());

    // Waiting alone does not bring quota back: minutes between attempts, doubling up
    // to ten.
    let wait = |failures| controller.retry_after(&err, failures).unwrap();
    assert!(wait(1) >= Duration::from_secs(24) && wait(1) <= Duration::from_secs(36));
    assert!(wait(2) >= Duration::from_secs(48));
    assert!(wait(30) <= Duration::from_secs(720) && wait(30) >= Duration::from_secs(480));

    // A 503 is another category; once the cloud answers, the cluster is built.
    world.sim.set_faults(SimFaults::default()).unwrap();
    world.sim.fail_next_creates(ResourceKind::Network, 1);
    let err = controller.reconcile(&key).await.unwrap_err();
    let ReconcileError::Step(step) = &err else {
        panic!("not a step's error: {err:?}");
    };
    assert_eq!(step.category(), Category::CloudUnavailable);
    // It may pass by itself: the runtime's quick backoff.
    assert_eq!(controller.retry_after(&err, 1), None);
    assert_eq!(
        world.failures("CreateResource", Category::CloudUnavailable),
        1
    );
    assert_eq!(world.failures("CreateResource", Category::CloudQuota), 1);
    let events = world.events(&cluster).await;
    let warning = events
        .iter()
        .rev()
        .find(|e| e.type_ == EventType::Warning)
        .unwrap();
    assert_eq!(warning.reason, "CloudUnavailable");
    assert!(warning.message.contains("503"), "{}", warning.message);
    world
        .reconcile_until(&key, || world.controller(), available)
        .await;
}

#[tokio::test]
async fn a_deleted_cluster_leaves_nothing_behind() {
    let world = World::new(SimFaults::default()).await;
    let key = world.create_cluster("demo").await;
    world
        .reconcile_until(&key, || world.controller(), available)
        .await;
    let cluster = world.cluster(&key).await.unwrap();
    let uid = cluster.metadata.uid.clone();
    assert!(!world.resources(&uid).is_empty());
    let secrets = Secrets::new(world.store.as_ref(), &world.sealer);
    assert!(
        !secrets
            .list_names(TENANT, Some(&uid))
            .await
            .unwrap()
            .is_empty()
    );

    // As the API deletes it: marked, kept by its finalizer until the cloud is clean.
    world
        .store
        .delete_obj::<Cluster>(TENANT, &key.name)
        .await
        .unwrap();
    world
        .reconcile_until(&key, || world.controller(), |c| c.is_none())
        .await;

    assert_eq!(world.resources(&uid), Vec::new());
    assert_eq!(world.sim.inventory(), Vec::new());
    assert!(world.machines(&cluster).await.is_empty());
    assert!(
        secrets
            .list_names(TENANT, Some(&uid))
            .await
            .unwrap()
            .is_empty()
    );
    let events = world.events(&cluster).await;
    assert_eq!(events.last().map(|e| e.reason.as_str()), Some("Deleted"));
    // Gone: a reconcile of its key does nothing.
    let action = world.controller().reconcile(&key).await.unwrap();
    assert_eq!(action.requeue_after, None);
}

/// With a registry, a cluster gets a pull credential of its own, written into every
/// namespace; renewed (the old secret still taken) when close to its expiry; removed,
/// from the store and the workload cluster, when the spec turns it off.
#[tokio::test]
async fn a_cluster_gets_its_own_pull_credential_renewed_and_removed() {
    use kaas_core::registry::{RegistryAccess, RegistryCredential};
    let world = World::new(SimFaults::default()).await;
    let host = "registry.example:5000";
    let with_registry = || {
        world.controller_with(ClusterControllerConfig {
            registry_host: Some(host.to_owned()),
            ..world.config()
        })
    };
    let key = world.create_cluster("pulls").await;
    world.reconcile_until(&key, with_registry, available).await;
    let cluster = world.cluster(&key).await.unwrap();
    let uid = cluster.metadata.uid.clone();
    let credential = || async {
        world
            .store
            .get_obj::<RegistryCredential>(TENANT, "cluster-pulls")
            .await
            .unwrap()
    };
    let written = || {
        world
            .workloads
            .pull_secrets
            .lock()
            .unwrap()
            .get(&uid)
            .cloned()
    };
    // Settle: the Secrets are written once the credential is issued.
    for _ in 0..10 {
        with_registry().reconcile(&key).await.unwrap();
    }
    let issued = credential().await.expect("the cluster's credential");
    assert_eq!(issued.spec.access, RegistryAccess::Pull);
    assert_eq!(issued.metadata.owner.as_ref().unwrap().uid, uid);
    let digest = super::registry::digest(host, &issued);
    let expected: BTreeMap<String, String> = SIM_NAMESPACES
        .iter()
        .map(|ns| ((*ns).to_owned(), digest.clone()))
        .collect();
    assert_eq!(written(), Some(expected));

    // Close to its expiry: renewed, the old secret taken until it would have expired.
    let mut expiring = issued.clone();
    let soon = chrono::Utc::now() + chrono::Duration::days(2);
    expiring.spec.expires_at = Some(soon);
    world.store.update_obj(&expiring).await.unwrap().unwrap();
    for _ in 0..10 {
        with_registry().reconcile(&key).await.unwrap();
    }
    let renewed = credential().await.unwrap();
    assert_ne!(renewed.spec.secret_sha256, issued.spec.secret_sha256);
    let previous = renewed.spec.previous.as_ref().expect("the old secret");
    assert_eq!(previous.secret_sha256, issued.spec.secret_sha256);
    assert!(previous.valid_until <= soon);
    assert!(renewed.spec.expires_at.unwrap() > soon);
    let digest = super::registry::digest(host, &renewed);
    assert!(written().unwrap().values().all(|d| *d == digest));

    // Turned off: the credential and its sealed secret go.
    let mut off = world.cluster(&key).await.unwrap();
    off.spec.registry.pull_credential = false;
    world.store.update_obj(&off).await.unwrap().unwrap();
    for _ in 0..10 {
        with_registry().reconcile(&key).await.unwrap();
    }
    assert_eq!(credential().await, None);
    assert_eq!(written(), None, "the Secrets are taken out of the cluster");
    let secrets = Secrets::new(world.store.as_ref(), &world.sealer);
    assert!(!secrets.exists(TENANT, "registry-pull-pulls").await.unwrap());
}

/// Serves one chart's `.tgz` for the digest the stack pins, counting the asks.
#[tokio::test]
async fn an_addon_from_its_upstream_chart_is_rendered_applied_and_ready() {
    // The project's own metrics-server chart, packaged, pinned by its digest in a copy
    // of the default stack whose metrics-server comes from it.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dev/charts/metrics-server"
    );
    let mut world = World::new(SimFaults::default()).await;
    let digest = world.artifacts.add(kaas_helm::package(dir).unwrap());
    let mut stack = world
        .stacks
        .find(kaas_core::stack::DEFAULT_STACK)
        .unwrap()
        .clone();
    stack.metadata.name = "charted".to_owned();
    stack.spec.upgrades_from = vec![];
    let addon = stack
        .spec
        .addons
        .iter_mut()
        .find(|a| a.name == "metrics-server")
        .unwrap();
    addon.version = "3.13.1".to_owned();
    addon.namespace = Some("kube-system".to_owned());
    addon.manifest = None;
    addon.chart = Some(kaas_core::stack::ChartRef {
        repository: "oci://registry.invalid/charts".to_owned(),
        name: "metrics-server".to_owned(),
        digest: digest.clone(),
    });
    addon.values =
        serde_json::from_value(serde_json::json!({"args": ["--kubelet-insecure-tls"]})).unwrap();
    stack.validate().unwrap();
    let mut catalog = (*world.stacks).clone();
    catalog.add(stack).unwrap();
    world.stacks = Arc::new(catalog);
    let key = world.create_cluster("demo").await;
    let mut cluster = world.cluster(&key).await.unwrap();
    cluster.spec.stack = "charted".to_owned();
    world.store.update_obj(&cluster).await.unwrap();
    let asked_before = world.artifacts.asked.load(Ordering::SeqCst);
    // One controller all the way, as a server has: the charts are rendered when their
    // inputs are known, not at every reconcile while the apply waits for the control
    // plane.
    let controller = world.controller();
    let renders_before = world.metrics.addon_renders.get();
    for _ in 0..MAX_RECONCILES {
        if available(world.cluster(&key).await.as_ref()) {
            break;
        }
        let _ = controller.reconcile(&key).await;
    }
    assert!(available(world.cluster(&key).await.as_ref()));
    let renders = world.metrics.addon_renders.get() - renders_before;
    assert!(
        (1..=3).contains(&renders),
        "{renders} renderings of the addons on the way to Available"
    );

    let cluster = world.cluster(&key).await.unwrap();
    let applied = world.workloads.applied.lock().unwrap()[&cluster.metadata.uid].clone();
    for object in [
        "Namespace kube-system",
        "Deployment kube-system/metrics-server",
        "Service kube-system/metrics-server",
        "APIService v1beta1.metrics.k8s.io",
        "ClusterRole system:metrics-server",
    ] {
        assert!(
            applied.iter().any(|o| o == object),
            "{object} not in {applied:#?}"
        );
    }
    let item = cluster
        .status
        .addons
        .items
        .iter()
        .find(|a| a.name == "metrics-server")
        .unwrap();
    assert_eq!(item.version, "3.13.1");
    // Loaded once per digest, not at every reconcile (each new controller asks once).
    assert!(world.artifacts.asked.load(Ordering::SeqCst) > asked_before);

    // Between reconciles a settled cluster's addons are kept in outline only; when an
    // object goes missing they are rendered whole again and applied.
    let uid = cluster.metadata.uid.clone();
    let deployment = "Deployment kube-system/metrics-server";
    let renders = world.metrics.addon_renders.get();
    for _ in 0..3 {
        controller.reconcile(&key).await.unwrap();
    }
    assert_eq!(
        world.metrics.addon_renders.get(),
        renders,
        "a settled cluster's addons are rendered again"
    );
    let kept = controller.rendered.lock().unwrap()[&uid].1.clone();
    assert!(kept.objects.is_none(), "{kept:?}");
    assert!(kept.refs.iter().all(|o| o.get("spec").is_none()));
    world.workloads.last_applied.lock().unwrap().clear();
    world
        .workloads
        .applied
        .lock()
        .unwrap()
        .get_mut(&uid)
        .unwrap()
        .retain(|o| o != deployment);
    // As when the steady interval has passed: the readiness is read again.
    controller.readiness.lock().unwrap().clear();
    controller.reconcile(&key).await.unwrap();
    let sent = world.workloads.last_applied.lock().unwrap()[&uid].clone();
    let sent = sent
        .iter()
        .find(|o| object_name(o) == deployment)
        .expect("the missing Deployment is applied again");
    assert!(sent["spec"]["template"].is_object(), "{sent:#}");
    assert!(
        world.workloads.applied.lock().unwrap()[&uid]
            .iter()
            .any(|o| o == deployment)
    );

    // A source that does not have the chart: the addons cannot be rendered, and the
    // condition says why.
    let empty = Arc::new(TestArtifacts::default());
    let mut cluster = world.cluster(&key).await.unwrap();
    cluster.spec.node_pools[0].replicas = 2;
    world.store.update_obj(&cluster).await.unwrap();
    world
        .controller()
        .with_artifacts(empty)
        .reconcile(&key)
        .await
        .ok();
    let cluster = world.cluster(&key).await.unwrap();
    let addons = condition(&cluster, conditions::ADDONS_READY).unwrap();
    assert_eq!(
        addons.0,
        ConditionStatus::False,
        "{:#?}",
        cluster.status.conditions
    );
    let message = cluster
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::ADDONS_READY)
        .unwrap()
        .message
        .clone();
    assert!(message.contains("not in this source"), "{message}");
}

fn hex(digest: &ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

//! The simulated cloud's state, which is what the state file holds, and the rules of
//! the simulated APIs applied to it. Everything here is pure: times come in as unix
//! milliseconds, randomness from the caller's generator.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use kaas_cloud::{
    CloudError, CloudResource, Credential, PoolMember, ResourceKind, ResourceRequest, ResourceSpec,
    ResourceStatus,
};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::config::{LatencyRange, SimConfig};
use crate::rest_state::RestState;
use crate::tracked::{Indexer, Tracked};
use crate::{net, workload};

/// The version of the state file format this code writes (3: the snapshot is followed
/// by a journal of changes, one line each; 2: workload clusters and nodes have state of
/// their own; files of formats 1 and 2 read as they are).
pub(crate) const STATE_FORMAT: u32 = 3;

/// The cursor key of the floating IP pool in [`State::next_host`].
const FLOATING_POOL_KEY: &str = "floatingIp";

/// Server metadata: the uid of the cluster a server belongs to.
pub const META_CLUSTER_UID: &str = "kaas-cluster-uid";
/// Server metadata: `init`, `control-plane` or `worker`.
pub const META_ROLE: &str = "kaas-role";
/// Server metadata: the kubelet version the node reports.
pub const META_KUBERNETES_VERSION: &str = "kaas-kubernetes-version";

/// Everything the simulated cloud holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    #[serde(default)]
    pub format: u32,
    /// Creation order, so that listings are stable.
    #[serde(default)]
    pub next_seq: u64,
    /// By id.
    #[serde(default)]
    pub resources: Tracked<SimResource, ResourceIndex>,
    /// IPAM cursors: the next host offset to try, by subnet id (and the floating pool).
    #[serde(default)]
    pub next_host: Tracked<u64>,
    /// What a workload cluster remembers beyond its servers, by cluster uid.
    #[serde(default, skip_serializing_if = "Tracked::is_empty")]
    pub clusters: Tracked<SimCluster>,
    /// `next_seq` when the mutation under way began.
    #[serde(skip)]
    seq_before: Option<u64>,
}

/// What one mutation changed: the records it touched as they are now (`None`: gone).
/// A line of the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Patch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, Option<SimResource>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_host: BTreeMap<String, Option<u64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, Option<SimCluster>>,
}

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.next_seq.is_none()
            && self.resources.is_empty()
            && self.next_host.is_empty()
            && self.clusters.is_empty()
    }
}

/// What resources are looked up by, besides their id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Kind(ResourceKind),
    Tag(ResourceKind, String),
    /// Ports and servers by name.
    Name(ResourceKind, String),
    /// Servers by the uid of their cluster.
    Cluster(String),
    /// Resources by the id of a resource they refer to (network, subnet, port, security
    /// or server group).
    Ref(String),
    /// Servers by address.
    Address(String),
}

/// Secondary indexes over the resources, kept up to date on every change. Each lists
/// ids in creation order; a resource found through one is still checked for what the
/// caller wants (e.g. that it exists at the time).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ResourceIndex {
    sets: HashMap<Key, BTreeSet<(u64, String)>>,
    /// The resources whose deletion has an end, by when they are gone.
    dying: BTreeSet<(u64, String)>,
}

impl ResourceIndex {
    fn keys(r: &SimResource) -> Vec<Key> {
        let kind = r.kind();
        let mut keys = vec![Key::Kind(kind)];
        keys.extend(r.tags.iter().map(|t| Key::Tag(kind, t.clone())));
        if matches!(kind, ResourceKind::Port | ResourceKind::Server) {
            keys.push(Key::Name(kind, r.name.clone()));
        }
        let mut refer = |id: &String| keys.push(Key::Ref(id.clone()));
        match &r.spec {
            ResourceSpec::Subnet { network_id, .. } => refer(network_id),
            ResourceSpec::Router { subnet_ids, .. } => subnet_ids.iter().for_each(refer),
            ResourceSpec::Port {
                network_id,
                subnet_id,
                security_group_ids,
            } => {
                refer(network_id);
                refer(subnet_id);
                security_group_ids.iter().for_each(refer);
            }
            ResourceSpec::LoadBalancer {
                subnet_id,
                vip_port_id,
                ..
            } => {
                refer(subnet_id);
                refer(vip_port_id);
            }
            ResourceSpec::FloatingIp { port_id, .. } => refer(port_id),
            ResourceSpec::Server {
                network_id,
                security_group_ids,
                server_group_id,
                ..
            } => {
                refer(network_id);
                security_group_ids.iter().for_each(&mut refer);
                server_group_id.iter().for_each(refer);
            }
            ResourceSpec::Network { .. }
            | ResourceSpec::SecurityGroup { .. }
            | ResourceSpec::ServerGroup { .. }
            | ResourceSpec::ApplicationCredential { .. } => {}
        }
        if let Some(subnet) = &r.port_subnet_id {
            keys.push(Key::Ref(subnet.clone()));
        }
        if kind == ResourceKind::Server {
            if let Some(uid) = r.metadata(META_CLUSTER_UID) {
                keys.push(Key::Cluster(uid.to_owned()));
            }
            if let Some(address) = &r.address {
                keys.push(Key::Address(address.clone()));
            }
        }
        keys
    }

    /// The ids under `key`, in creation order.
    pub fn ids(&self, key: &Key) -> impl Iterator<Item = &str> {
        self.sets
            .get(key)
            .into_iter()
            .flatten()
            .map(|(_, id)| id.as_str())
    }

    fn len(&self, key: &Key) -> usize {
        self.sets.get(key).map_or(0, BTreeSet::len)
    }

    /// The resources gone at `now`, soonest gone first.
    fn gone_by(&self, now: u64) -> impl Iterator<Item = &str> {
        self.dying
            .range(..(now.saturating_add(1), String::new()))
            .map(|(_, id)| id.as_str())
    }
}

impl Indexer<SimResource> for ResourceIndex {
    fn add(&mut self, id: &str, r: &SimResource) {
        for key in Self::keys(r) {
            self.sets
                .entry(key)
                .or_default()
                .insert((r.seq, id.to_owned()));
        }
        if let Some(gone) = r.gone_at_ms {
            self.dying.insert((gone, id.to_owned()));
        }
    }

    fn remove(&mut self, id: &str, r: &SimResource) {
        let entry = (r.seq, id.to_owned());
        for key in Self::keys(r) {
            if let Some(set) = self.sets.get_mut(&key) {
                set.remove(&entry);
                if set.is_empty() {
                    self.sets.remove(&key);
                }
            }
        }
        if let Some(gone) = r.gone_at_ms {
            self.dying.remove(&(gone, id.to_owned()));
        }
    }
}

/// A workload cluster's memory: what its API server and etcd know that the servers
/// alone do not tell once some of them are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimCluster {
    /// Only servers created from this one on (by [`SimResource::seq`]) belong to the
    /// cluster: a cluster whose API went down for good starts afresh with the next
    /// `init` server.
    #[serde(default)]
    pub since_seq: u64,
    /// The API that came up, remembered once its `init` server leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<SimApi>,
    /// When the last control-plane node left: the API is down for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_at_ms: Option<u64>,
    /// Etcd members whose servers are gone (or going) but which nobody removed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub departed_members: BTreeSet<String>,
}

/// The `init` server that ran kubeadm init, and when the API answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimApi {
    pub init_server_id: String,
    pub up_at_ms: u64,
}

/// A server's node, as far as it differs from a node that joined and stayed Ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SimNode {
    /// Made NotReady by [`crate::SimCloud::set_node_ready`].
    #[serde(skip_serializing_if = "is_false")]
    pub not_ready: bool,
    /// When `not_ready` last flipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_changed_at_ms: Option<u64>,
    /// Evictions are refused, as by a PodDisruptionBudget.
    #[serde(skip_serializing_if = "is_false")]
    pub drain_blocked: bool,
    /// Its etcd member was removed.
    #[serde(skip_serializing_if = "is_false")]
    pub etcd_removed: bool,
}

impl SimNode {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// Faults decided for a resource when it is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CreateFaults {
    /// A server ends in `ERROR` when its boot latency has passed.
    pub server_error: bool,
    /// A load balancer stays `PENDING_CREATE` until released.
    pub stuck: bool,
}

/// What a create through the REST API says beyond a [`ResourceRequest`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CreateOptions {
    /// A server boots on this port (Nova's `networks: [{port}]`) instead of one
    /// found or made by its name.
    pub server_port: Option<String>,
    pub rest: RestState,
}

/// The error a server marked by [`CreateFaults::server_error`] ends in.
pub(crate) const NO_VALID_HOST: &str =
    "No valid host was found. There are not enough hosts available.";

/// One resource, with absolute timestamps (unix milliseconds) for its transitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimResource {
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub spec: ResourceSpec,
    pub created_at_ms: u64,
    /// `Pending` until then, `Active` after.
    pub ready_at_ms: u64,
    /// Set when a delete started; the resource is `Deleting` from then on...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since_ms: Option<u64>,
    /// ...and gone from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at_ms: Option<u64>,
    /// A server's fixed IP, a load balancer's VIP, a floating IP's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The subnet `address` was allocated from (servers, load balancers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_subnet_id: Option<String>,
    /// A load balancer's pool members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<PoolMember>,
    /// Servers: how long kubeadm init takes on it (scaled, ms), should it be `init`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeadm_init_ms: Option<u64>,
    /// Servers: how long joining the cluster takes (scaled, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_ms: Option<u64>,
    /// Set when the resource broke for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Servers: the error the boot ends in, instead of `ACTIVE`, at `ready_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_error: Option<String>,
    /// Load balancers: stuck in `PENDING_CREATE` (until the fault is cleared).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stuck: bool,
    /// Servers: the state of the node on it.
    #[serde(default, skip_serializing_if = "SimNode::is_default")]
    pub node: SimNode,
    /// What the REST API keeps beyond this model.
    #[serde(default, skip_serializing_if = "RestState::is_empty")]
    pub rest: RestState,
}

impl SimResource {
    pub fn kind(&self) -> ResourceKind {
        self.spec.kind()
    }

    /// Whether the resource exists at `now` (possibly being deleted).
    pub fn exists(&self, now: u64) -> bool {
        self.gone_at_ms.is_none_or(|gone| now < gone)
    }

    pub fn is_deleting(&self) -> bool {
        self.deleting_since_ms.is_some()
    }

    pub fn status(&self, now: u64) -> ResourceStatus {
        if self.is_deleting() {
            ResourceStatus::Deleting
        } else if let Some(message) = &self.error {
            ResourceStatus::Error {
                message: message.clone(),
            }
        } else if self.stuck || now < self.ready_at_ms {
            ResourceStatus::Pending
        } else if let Some(message) = &self.boot_error {
            ResourceStatus::Error {
                message: message.clone(),
            }
        } else {
            ResourceStatus::Active
        }
    }

    pub fn view(&self, now: u64) -> CloudResource {
        CloudResource {
            kind: self.kind(),
            id: self.id.clone(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            status: self.status(now),
            address: self.address.clone(),
        }
    }

    /// A server's metadata value.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        match &self.spec {
            ResourceSpec::Server { metadata, .. } => metadata.get(key).map(String::as_str),
            _ => None,
        }
    }

    pub fn server_network(&self) -> Option<&str> {
        match &self.spec {
            ResourceSpec::Server { network_id, .. } => Some(network_id),
            _ => None,
        }
    }
}

/// A latency drawn from `range`, scaled by `speed`, in milliseconds.
pub(crate) fn draw_ms(rng: &mut StdRng, range: LatencyRange, speed: f64) -> u64 {
    let secs = if range.max_secs > range.min_secs {
        rng.random_range(range.min_secs..=range.max_secs)
    } else {
        range.min_secs
    };
    let ms = (secs * 1000.0 / speed).round();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

fn bad_request(message: String) -> CloudError {
    CloudError::BadRequest { message }
}

fn conflict(message: String) -> CloudError {
    CloudError::Conflict { message }
}

fn parse_cidr(cidr: &str) -> Result<IpNet, CloudError> {
    cidr.trim()
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| {
            bad_request(format!(
                "Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
            ))
        })
}

impl State {
    /// Starts a mutation: what changes from now on is listed by [`State::changes`] and
    /// undone by [`State::rollback`] until [`State::commit`].
    pub fn begin(&mut self) {
        self.seq_before = Some(self.next_seq);
    }

    /// What changed since [`State::begin`].
    pub fn changes(&self) -> Patch {
        Patch {
            next_seq: (self.seq_before != Some(self.next_seq)).then_some(self.next_seq),
            resources: self.resources.changes(),
            next_host: self.next_host.changes(),
            clusters: self.clusters.changes(),
        }
    }

    /// Keeps the changes made since [`State::begin`].
    pub fn commit(&mut self) {
        self.resources.commit();
        self.next_host.commit();
        self.clusters.commit();
        self.seq_before = None;
    }

    /// Undoes the changes made since [`State::begin`].
    pub fn rollback(&mut self) {
        self.resources.rollback();
        self.next_host.rollback();
        self.clusters.rollback();
        if let Some(seq) = self.seq_before.take() {
            self.next_seq = seq;
        }
    }

    /// Applies a mutation's changes (a line of the journal), as one that is kept.
    pub fn apply(&mut self, patch: Patch) {
        if let Some(seq) = patch.next_seq {
            self.next_seq = seq;
        }
        fn put<V: Clone + PartialEq, I: Indexer<V>>(
            map: &mut Tracked<V, I>,
            changes: BTreeMap<String, Option<V>>,
        ) {
            for (key, value) in changes {
                match value {
                    Some(value) => {
                        map.insert(key, value);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
            map.commit();
        }
        put(&mut self.resources, patch.resources);
        put(&mut self.next_host, patch.next_host);
        put(&mut self.clusters, patch.clusters);
    }

    /// The ids of the resources under `key`, in creation order.
    pub fn ids(&self, key: &Key) -> impl Iterator<Item = &str> {
        self.resources.index().ids(key)
    }

    /// The resources under `key` that exist at `now`, in creation order.
    pub fn indexed(&self, key: &Key, now: u64) -> impl Iterator<Item = &SimResource> {
        self.ids(key)
            .filter_map(|id| self.resources.get(id))
            .filter(move |r| r.exists(now))
    }

    /// The resources that exist at `now`, in creation order.
    pub fn existing(&self, now: u64) -> Vec<&SimResource> {
        let mut all: Vec<&SimResource> =
            self.resources.values().filter(|r| r.exists(now)).collect();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// The resource `id` of `kind` if it exists at `now`.
    pub fn get(&self, kind: ResourceKind, id: &str, now: u64) -> Option<&SimResource> {
        self.resources
            .get(id)
            .filter(|r| r.kind() == kind && r.exists(now))
    }

    /// Forgets resources whose deletion finished, and what only they needed.
    pub fn purge(&mut self, now: u64) {
        let gone: Vec<String> = self
            .resources
            .index()
            .gone_by(now)
            .map(str::to_owned)
            .collect();
        let mut uids = BTreeSet::new();
        for id in &gone {
            if let Some(r) = self.resources.remove(id)
                && let Some(uid) = r.metadata(META_CLUSTER_UID)
            {
                uids.insert(uid.to_owned());
            }
            self.next_host.remove(id);
        }
        // A cluster without any server left has nothing to remember: its API is down
        // and its etcd gone.
        for uid in uids {
            if self.ids(&Key::Cluster(uid.clone())).next().is_none() {
                self.clusters.remove(&uid);
            }
        }
    }

    /// Forgets what no resource needs any more: address cursors of subnets and clusters
    /// without servers (a file written by an older version may hold them).
    pub fn forget_orphans(&mut self) {
        let resources = &self.resources;
        self.next_host
            .retain(|key, _| key.starts_with(FLOATING_POOL_KEY) || resources.contains_key(key));
        let index = self.resources.index();
        self.clusters
            .retain(|uid, _| index.ids(&Key::Cluster(uid.to_owned())).next().is_some());
    }

    fn usable(&self, kind: ResourceKind, id: &str, now: u64) -> Option<&SimResource> {
        self.get(kind, id, now).filter(|r| !r.is_deleting())
    }

    fn require(
        &self,
        kind: ResourceKind,
        id: &str,
        now: u64,
        message: impl FnOnce() -> String,
    ) -> Result<&SimResource, CloudError> {
        self.usable(kind, id, now)
            .ok_or_else(|| bad_request(message()))
    }

    /// How many resources of `kind` exist at `now`.
    pub fn count(&self, kind: ResourceKind, now: u64) -> usize {
        let index = self.resources.index();
        let gone = index
            .gone_by(now)
            .filter(|id| self.resources.get(id).is_some_and(|r| r.kind() == kind))
            .count();
        index.len(&Key::Kind(kind)).saturating_sub(gone)
    }

    fn subnet_cidr(&self, subnet_id: &str, now: u64) -> Option<IpNet> {
        match &self.get(ResourceKind::Subnet, subnet_id, now)?.spec {
            ResourceSpec::Subnet { cidr, .. } => parse_cidr(cidr).ok(),
            _ => None,
        }
    }

    /// Allocates the next free address of subnet `subnet_id` for a port.
    fn allocate_port(
        &mut self,
        subnet_id: &str,
        network_id: &str,
        now: u64,
    ) -> Result<IpAddr, CloudError> {
        let cidr = self
            .subnet_cidr(subnet_id, now)
            .ok_or_else(|| bad_request(format!("Subnet {subnet_id} could not be found.")))?;
        let used: HashSet<IpAddr> = self
            .indexed(&Key::Ref(subnet_id.to_owned()), now)
            .filter(|r| r.port_subnet_id.as_deref() == Some(subnet_id))
            .filter_map(|r| r.address.as_deref()?.parse().ok())
            .collect();
        let cursor = self.next_host.get(subnet_id).copied().unwrap_or(0);
        let (address, next) = net::allocate(&cidr, &used, cursor).ok_or_else(|| {
            conflict(format!(
                "No more IP addresses available on network {network_id}."
            ))
        })?;
        self.next_host.insert(subnet_id.to_owned(), next);
        Ok(address)
    }

    fn allocate_floating(
        &mut self,
        external_network: &str,
        now: u64,
    ) -> Result<IpAddr, CloudError> {
        let used: HashSet<IpAddr> = self
            .indexed(&Key::Kind(ResourceKind::FloatingIp), now)
            .filter_map(|r| r.address.as_deref()?.parse().ok())
            .collect();
        for (i, pool) in net::FLOATING_POOLS.iter().enumerate() {
            let pool = parse_cidr(pool)?;
            // The first pool's cursor keeps the key older state files have.
            let key = match i {
                0 => FLOATING_POOL_KEY.to_owned(),
                i => format!("{FLOATING_POOL_KEY}:{i}"),
            };
            let cursor = self.next_host.get(&key).copied().unwrap_or(0);
            if let Some((address, next)) = net::allocate(&pool, &used, cursor) {
                self.next_host.insert(key, next);
                return Ok(address);
            }
        }
        Err(conflict(format!(
            "No more IP addresses available on network {external_network}."
        )))
    }

    /// Checks a create request against what exists, and says where the new resource's
    /// address comes from.
    fn validate(&self, request: &ResourceRequest, now: u64) -> Result<Address, CloudError> {
        use ResourceKind as K;
        match &request.spec {
            ResourceSpec::Network { .. }
            | ResourceSpec::SecurityGroup { .. }
            | ResourceSpec::ServerGroup { .. }
            | ResourceSpec::ApplicationCredential { .. } => Ok(Address::None),
            ResourceSpec::Subnet {
                network_id, cidr, ..
            } => {
                self.require(K::Network, network_id, now, || {
                    format!("Network {network_id} could not be found.")
                })?;
                let new = parse_cidr(cidr)?;
                let overlapping =
                    self.indexed(&Key::Ref(network_id.clone()), now)
                        .any(|r| match &r.spec {
                            ResourceSpec::Subnet {
                                network_id: other_network,
                                cidr: other,
                                ..
                            } => {
                                other_network == network_id
                                    && parse_cidr(other)
                                        .is_ok_and(|other| net::overlaps(&new, &other))
                            }
                            _ => false,
                        });
                if overlapping {
                    return Err(bad_request(format!(
                        "Invalid input for operation: Requested subnet with cidr: {new} for \
                         network: {network_id} overlaps with another subnet."
                    )));
                }
                Ok(Address::None)
            }
            ResourceSpec::Router {
                external_network,
                subnet_ids,
            } => {
                require_external(external_network)?;
                for subnet_id in subnet_ids {
                    self.require(K::Subnet, subnet_id, now, || {
                        format!("Subnet {subnet_id} could not be found.")
                    })?;
                }
                Ok(Address::None)
            }
            ResourceSpec::Port {
                network_id,
                subnet_id,
                security_group_ids,
            } => {
                self.require(K::Network, network_id, now, || {
                    format!("Network {network_id} could not be found.")
                })?;
                let subnet = self.require(K::Subnet, subnet_id, now, || {
                    format!("Subnet {subnet_id} could not be found.")
                })?;
                if !matches!(&subnet.spec, ResourceSpec::Subnet { network_id: n, .. } if n == network_id)
                {
                    return Err(bad_request(format!(
                        "Invalid input for operation: Failed to create port on network \
                         {network_id}, because fixed_ips included invalid subnet {subnet_id}."
                    )));
                }
                for group in security_group_ids {
                    self.require(K::SecurityGroup, group, now, || {
                        format!("Security group {group} does not exist")
                    })?;
                }
                Ok(Address::Allocate {
                    subnet_id: subnet_id.clone(),
                    network_id: network_id.clone(),
                })
            }
            ResourceSpec::LoadBalancer {
                subnet_id,
                vip_port_id,
                ..
            } => {
                self.require(K::Subnet, subnet_id, now, || {
                    format!("Validation failure: Subnet {subnet_id} not found.")
                })?;
                self.require(K::Port, vip_port_id, now, || {
                    format!("Validation failure: VIP port {vip_port_id} not found.")
                })?;
                Ok(Address::OfPort(vip_port_id.clone()))
            }
            ResourceSpec::FloatingIp {
                external_network,
                port_id,
            } => {
                require_external(external_network)?;
                self.require(K::Port, port_id, now, || {
                    format!("Port {port_id} could not be found.")
                })?;
                Ok(Address::Floating)
            }
            ResourceSpec::Server {
                network_id,
                security_group_ids,
                server_group_id,
                flavor,
                image,
                ..
            } => {
                if flavor.trim().is_empty() {
                    return Err(bad_request("Flavor's name must not be empty.".to_owned()));
                }
                if !crate::flavors::offered(flavor) {
                    return Err(bad_request(crate::flavors::not_found(flavor)));
                }
                if image.trim().is_empty() {
                    return Err(bad_request("Image's name must not be empty.".to_owned()));
                }
                self.require(K::Network, network_id, now, || {
                    format!("Network {network_id} could not be found.")
                })?;
                for group in security_group_ids {
                    self.require(K::SecurityGroup, group, now, || {
                        format!("Security group {group} not found.")
                    })?;
                }
                if let Some(group) = server_group_id {
                    self.require(K::ServerGroup, group, now, || {
                        format!("Server group {group} could not be found.")
                    })?;
                }
                let subnet = self
                    .indexed(&Key::Ref(network_id.clone()), now)
                    .find(|r| {
                        !r.is_deleting()
                            && matches!(&r.spec, ResourceSpec::Subnet { network_id: n, .. } if n == network_id)
                    })
                    .ok_or_else(|| {
                        bad_request(format!(
                            "Network {network_id} requires a subnet in order to boot instances on."
                        ))
                    })?;
                Ok(Address::ServerPort {
                    subnet_id: subnet.id.clone(),
                    network_id: network_id.clone(),
                })
            }
        }
    }

    /// Creates a resource: it is `Pending` until its drawn latency has passed.
    pub fn create(
        &mut self,
        request: &ResourceRequest,
        config: &SimConfig,
        faults: CreateFaults,
        options: &CreateOptions,
        rng: &mut StdRng,
        now: u64,
    ) -> Result<CloudResource, CloudError> {
        let kind = request.kind();
        let port = self.validate(request, now)?;

        let limit = config.quotas.limit(kind);
        if self.count(kind, now) >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(CloudError::QuotaExceeded {
                message: format!("Quota exceeded for resources: ['{}'].", kind.as_str()),
            });
        }

        let (address, port_subnet_id) = match (&request.spec, port) {
            (
                ResourceSpec::FloatingIp {
                    external_network, ..
                },
                _,
            ) => (
                Some(self.allocate_floating(external_network, now)?.to_string()),
                None,
            ),
            (
                _,
                Address::Allocate {
                    subnet_id,
                    network_id,
                },
            ) => {
                let address = self.allocate_port(&subnet_id, &network_id, now)?;
                (Some(address.to_string()), Some(subnet_id))
            }
            (_, Address::OfPort(port_id)) => (
                self.get(ResourceKind::Port, &port_id, now)
                    .and_then(|p| p.address.clone()),
                None,
            ),
            (_, Address::ServerPort { network_id, .. }) if options.server_port.is_some() => {
                let port_id = options.server_port.as_deref().unwrap_or_default();
                (
                    Some(self.free_port_address(port_id, &network_id, now)?),
                    None,
                )
            }
            (
                _,
                Address::ServerPort {
                    subnet_id,
                    network_id,
                },
            ) => (
                self.server_port(request, &subnet_id, &network_id, config, rng, now)?,
                None,
            ),
            (_, Address::Floating | Address::None) => (None, None),
        };
        // The cloud keeps no secret in the clear (Keystone keeps a hash).
        let mut spec = request.spec.clone();
        if let ResourceSpec::ApplicationCredential { secret, .. } = &mut spec {
            *secret = Credential::default();
        }

        let speed = config.speed;
        let ready_at_ms = now.saturating_add(draw_ms(rng, config.latencies.create(kind), speed));
        let (kubeadm_init_ms, join_ms) = if kind == ResourceKind::Server {
            (
                Some(draw_ms(rng, config.latencies.kubeadm_init, speed)),
                Some(draw_ms(rng, config.latencies.node_join, speed)),
            )
        } else {
            (None, None)
        };
        let id = uuid::Builder::from_random_bytes(rng.random())
            .into_uuid()
            .to_string();
        let resource = SimResource {
            seq: self.next_seq,
            id: id.clone(),
            name: request.name.clone(),
            tags: request.tags.clone(),
            spec,
            created_at_ms: now,
            ready_at_ms,
            deleting_since_ms: None,
            gone_at_ms: None,
            address,
            port_subnet_id,
            members: Vec::new(),
            kubeadm_init_ms,
            join_ms,
            error: None,
            boot_error: (faults.server_error && kind == ResourceKind::Server)
                .then(|| NO_VALID_HOST.to_owned()),
            stuck: faults.stuck && kind == ResourceKind::LoadBalancer,
            node: SimNode::default(),
            rest: options.rest.clone(),
        };
        self.next_seq += 1;
        if kind == ResourceKind::Server {
            workload::server_created(self, &resource);
        }
        let view = resource.view(now);
        self.resources.insert(id, resource);
        Ok(view)
    }

    /// The address of a new server: from the port of the same name and tags (left by
    /// an earlier attempt) or a new one, as the OpenStack provider does.
    fn server_port(
        &mut self,
        request: &ResourceRequest,
        subnet_id: &str,
        network_id: &str,
        config: &SimConfig,
        rng: &mut StdRng,
        now: u64,
    ) -> Result<Option<String>, CloudError> {
        let in_use = |address: &str| {
            self.indexed(&Key::Address(address.to_owned()), now)
                .any(|r| r.kind() == ResourceKind::Server)
        };
        let free = self
            .indexed(&Key::Name(ResourceKind::Port, request.name.clone()), now)
            .find(|r| {
                r.kind() == ResourceKind::Port
                    && !r.is_deleting()
                    && r.name == request.name
                    && r.tags == request.tags
                    && r.address.as_deref().is_some_and(|a| !in_use(a))
            });
        if let Some(port) = free {
            return Ok(port.address.clone());
        }
        let port = ResourceRequest {
            name: request.name.clone(),
            tags: request.tags.clone(),
            spec: ResourceSpec::Port {
                network_id: network_id.to_owned(),
                subnet_id: subnet_id.to_owned(),
                security_group_ids: match &request.spec {
                    ResourceSpec::Server {
                        security_group_ids, ..
                    } => security_group_ids.clone(),
                    _ => Vec::new(),
                },
            },
        };
        let created = self.create(
            &port,
            config,
            CreateFaults::default(),
            &CreateOptions::default(),
            rng,
            now,
        )?;
        // A port is usable at once.
        self.resources.modify(&created.id, |r| r.ready_at_ms = now);
        Ok(created.address)
    }

    /// The server a port is attached to: one on the port's network with its address.
    pub fn port_user(&self, port: &SimResource, now: u64) -> Option<&SimResource> {
        let ResourceSpec::Port { network_id, .. } = &port.spec else {
            return None;
        };
        let address = port.address.as_ref()?;
        self.indexed(&Key::Address(address.clone()), now)
            .find(|r| r.server_network() == Some(network_id.as_str()))
    }

    /// The address of port `port_id` for a server on `network_id`, which must be free.
    fn free_port_address(
        &self,
        port_id: &str,
        network_id: &str,
        now: u64,
    ) -> Result<String, CloudError> {
        let port = self.require(ResourceKind::Port, port_id, now, || {
            format!("Port {port_id} could not be found.")
        })?;
        if !matches!(&port.spec, ResourceSpec::Port { network_id: n, .. } if n == network_id) {
            return Err(bad_request(format!(
                "Port {port_id} is not on network {network_id}."
            )));
        }
        if let Some(server) = self.port_user(port, now) {
            return Err(conflict(format!(
                "Port {port_id} is still in use by server {}.",
                server.id
            )));
        }
        port.address
            .clone()
            .ok_or_else(|| bad_request(format!("Port {port_id} has no fixed IP.")))
    }

    /// Why `target` cannot be deleted now, if it cannot.
    fn delete_conflict(&self, target: &SimResource, now: u64) -> Option<String> {
        let id = target.id.as_str();
        // Whatever refers to the target (and, for a subnet, the servers on its network).
        let mut existing: Vec<&SimResource> = self.indexed(&Key::Ref(id.to_owned()), now).collect();
        if let ResourceSpec::Subnet { network_id, .. } = &target.spec {
            existing.extend(self.indexed(&Key::Ref(network_id.clone()), now));
        }
        match &target.spec {
            ResourceSpec::Network { .. } => {
                let in_use = existing.iter().any(|r| match &r.spec {
                    ResourceSpec::Subnet { network_id, .. } => network_id == id,
                    ResourceSpec::Server { network_id, .. } => network_id == id,
                    ResourceSpec::Port { network_id, .. } => network_id == id,
                    _ => false,
                });
                in_use.then(|| {
                    format!(
                        "Unable to complete operation on network {id}. There are one or more \
                         ports still in use on the network."
                    )
                })
            }
            ResourceSpec::Subnet { network_id, .. } => {
                let in_use = existing.iter().any(|r| match &r.spec {
                    ResourceSpec::Router { subnet_ids, .. } => subnet_ids.iter().any(|s| s == id),
                    ResourceSpec::LoadBalancer { subnet_id, .. } => subnet_id == id,
                    ResourceSpec::Port { .. } => r.port_subnet_id.as_deref() == Some(id),
                    ResourceSpec::Server { .. } => {
                        r.port_subnet_id.as_deref() == Some(id)
                            || r.server_network() == Some(network_id.as_str())
                    }
                    _ => false,
                });
                in_use.then(|| {
                    format!(
                        "Unable to complete operation on subnet {id}: One or more ports have an \
                         IP allocation from this subnet."
                    )
                })
            }
            ResourceSpec::SecurityGroup { .. } => {
                let in_use = existing.iter().any(|r| match &r.spec {
                    ResourceSpec::Server {
                        security_group_ids, ..
                    } => security_group_ids.iter().any(|g| g == id),
                    _ => false,
                });
                in_use.then(|| format!("Security Group {id} in use."))
            }
            ResourceSpec::ServerGroup { .. } => {
                let in_use = existing.iter().any(|r| match &r.spec {
                    ResourceSpec::Server {
                        server_group_id, ..
                    } => server_group_id.as_deref() == Some(id),
                    _ => false,
                });
                in_use.then(|| format!("Server group {id} is still in use by one or more servers."))
            }
            ResourceSpec::Port { .. } => {
                let in_use = existing.iter().any(|r| match &r.spec {
                    ResourceSpec::LoadBalancer { vip_port_id, .. } => vip_port_id == id,
                    _ => false,
                });
                in_use.then(|| format!("Port {id} is the VIP of a load balancer."))
            }
            ResourceSpec::Router { .. }
            | ResourceSpec::LoadBalancer { .. }
            | ResourceSpec::FloatingIp { .. }
            | ResourceSpec::Server { .. }
            | ResourceSpec::ApplicationCredential { .. } => None,
        }
    }

    /// Starts deleting a resource. Whether anything changed.
    pub fn delete(
        &mut self,
        kind: ResourceKind,
        id: &str,
        config: &SimConfig,
        rng: &mut StdRng,
        now: u64,
    ) -> Result<bool, CloudError> {
        let Some(target) = self.get(kind, id, now) else {
            return Ok(false);
        };
        if target.is_deleting() {
            return Ok(false);
        }
        if let Some(message) = self.delete_conflict(target, now) {
            return Err(conflict(message));
        }
        let uid = target.metadata(META_CLUSTER_UID).map(str::to_owned);
        if let Some(uid) = &uid {
            workload::server_leaving(self, uid, id, now);
        }
        let linger = match kind {
            ResourceKind::Server => Some(config.latencies.server_delete),
            ResourceKind::LoadBalancer => Some(config.latencies.load_balancer_delete),
            _ => None,
        };
        match linger {
            Some(range) => {
                let gone_at = now.saturating_add(draw_ms(rng, range, config.speed));
                self.resources.modify(id, |target| {
                    target.deleting_since_ms = Some(now);
                    target.gone_at_ms = Some(gone_at);
                });
            }
            None => {
                self.resources.remove(id);
                self.next_host.remove(id);
            }
        }
        if let Some(uid) = &uid {
            workload::server_left(self, uid, now);
        }
        Ok(true)
    }

    /// Lets stuck load balancers go on: each becomes `ACTIVE` at its ready time or now,
    /// whichever is later. Whether any was stuck.
    pub fn release_stuck(&mut self, now: u64) -> bool {
        let stuck: Vec<String> = self
            .ids(&Key::Kind(ResourceKind::LoadBalancer))
            .filter(|id| self.resources.get(id).is_some_and(|r| r.stuck))
            .map(str::to_owned)
            .collect();
        for id in &stuck {
            self.resources.modify(id, |r| {
                r.stuck = false;
                r.ready_at_ms = r.ready_at_ms.max(now);
            });
        }
        !stuck.is_empty()
    }

    /// Replaces a load balancer's pool members.
    pub fn set_members(
        &mut self,
        load_balancer_id: &str,
        members: &[PoolMember],
        now: u64,
    ) -> Result<(), CloudError> {
        let kind = ResourceKind::LoadBalancer;
        let not_found = || CloudError::NotFound {
            kind,
            id: load_balancer_id.to_owned(),
        };
        let lb = self
            .get(kind, load_balancer_id, now)
            .ok_or_else(not_found)?;
        let provisioning = match lb.status(now) {
            ResourceStatus::Active => None,
            ResourceStatus::Pending => Some("PENDING_CREATE"),
            ResourceStatus::Deleting => Some("PENDING_DELETE"),
            ResourceStatus::Error { .. } => Some("ERROR"),
        };
        if let Some(state) = provisioning {
            return Err(conflict(format!(
                "Invalid state {state} of loadbalancer resource {load_balancer_id}"
            )));
        }
        self.resources
            .modify(load_balancer_id, |lb| lb.members = members.to_vec())
            .ok_or_else(not_found)
    }
}

fn require_external(external_network: &str) -> Result<(), CloudError> {
    if external_network.trim().is_empty() {
        return Err(bad_request(
            "Invalid input: an external network is required.".to_owned(),
        ));
    }
    Ok(())
}

/// Where a new resource's address comes from.
enum Address {
    None,
    /// A fixed IP of its own on the subnet (a port).
    Allocate {
        subnet_id: String,
        network_id: String,
    },
    /// The fixed IP of an existing port (a load balancer's VIP).
    OfPort(String),
    /// The fixed IP of the server's own port, found or made.
    ServerPort {
        subnet_id: String,
        network_id: String,
    },
    /// An address from the external network.
    Floating,
}

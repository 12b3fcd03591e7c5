//! Simulated workload clusters: what kubeadm on the simulated servers would make of them.
//!
//! A cluster is its servers (those whose metadata carry its uid) plus a little memory
//! ([`SimCluster`]) for what the servers alone no longer tell once some are gone: which
//! API came up, whether it went down for good, and which etcd members are left behind.
//!
//! The timeline: the API answers once the first `init` server has been `ACTIVE` for its
//! kubeadm-init latency; it keeps answering as long as a control-plane node (`init` or
//! `control-plane`) has joined and its server is neither gone nor being deleted. Every
//! other server joins the node-join latency after it is `ACTIVE` and the API answers;
//! control-plane nodes become etcd members when they join.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kaas_cloud::{CloudError, Node, ResourceKind, ResourceSpec, WorkloadError};

use crate::state::{
    Key, META_CLUSTER_UID, META_KUBERNETES_VERSION, META_ROLE, SimApi, SimCluster, SimResource,
    State,
};

/// The kubelet version reported when a server's metadata does not say.
const UNKNOWN_VERSION: &str = "v0.0.0";

/// Roles in [`META_ROLE`].
const ROLE_INIT: &str = "init";
const ROLE_CONTROL_PLANE: &str = "control-plane";

/// The zone of a server created without one (Nova's default availability zone).
const DEFAULT_ZONE: &str = "nova";

fn is_control_plane(server: &SimResource) -> bool {
    matches!(
        server.metadata(META_ROLE),
        Some(ROLE_INIT | ROLE_CONTROL_PLANE)
    )
}

fn time(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

/// The servers of cluster `uid` at `now` that can be nodes: not being deleted, not
/// broken, and created since the cluster's current start.
fn servers<'a>(state: &'a State, uid: &str, now: u64) -> Vec<&'a SimResource> {
    let since = state.clusters.get(uid).map_or(0, |c| c.since_seq);
    state
        .indexed(&Key::Cluster(uid.to_owned()), now)
        .filter(|r| {
            r.kind() == ResourceKind::Server
                && !r.is_deleting()
                && r.error.is_none()
                && r.boot_error.is_none()
                && r.seq >= since
                && r.metadata(META_CLUSTER_UID) == Some(uid)
        })
        .collect()
}

/// The API of the cluster: remembered, or else the one its first `init` server brings
/// up (a twin `init` server would have made a cluster of its own).
fn api_of(state: &State, uid: &str, servers: &[&SimResource]) -> Option<SimApi> {
    if let Some(api) = state.clusters.get(uid).and_then(|c| c.api.clone()) {
        return Some(api);
    }
    servers
        .iter()
        .find(|r| r.metadata(META_ROLE) == Some(ROLE_INIT))
        .map(|init| SimApi {
            init_server_id: init.id.clone(),
            up_at_ms: init
                .ready_at_ms
                .saturating_add(init.kubeadm_init_ms.unwrap_or(0)),
        })
}

/// When `server`'s node joins the cluster whose API is `api`; `None` for a twin `init`.
fn joined_at(server: &SimResource, api: &SimApi) -> Option<u64> {
    if server.id == api.init_server_id {
        Some(api.up_at_ms)
    } else if server.metadata(META_ROLE) == Some(ROLE_INIT) {
        None
    } else {
        Some(
            server
                .ready_at_ms
                .max(api.up_at_ms)
                .saturating_add(server.join_ms.unwrap_or(0)),
        )
    }
}

/// A cluster as its API server sees it.
struct Cluster<'a> {
    api: SimApi,
    /// The servers whose nodes have joined, in creation order, with when they joined.
    nodes: Vec<(&'a SimResource, u64)>,
}

/// Cluster `uid` at `now`, or why its API does not answer.
fn cluster<'a>(state: &'a State, uid: &str, now: u64) -> Result<Cluster<'a>, &'static str> {
    if state
        .clusters
        .get(uid)
        .is_some_and(|c| c.down_at_ms.is_some())
    {
        return Err("connection refused: every control-plane node is gone (simulated)");
    }
    let servers = servers(state, uid, now);
    let Some(api) = api_of(state, uid, &servers) else {
        return Err("connection refused: no control plane is running (simulated)");
    };
    if now < api.up_at_ms {
        return Err("connection refused: the API server is not up yet (simulated)");
    }
    let nodes: Vec<(&SimResource, u64)> = servers
        .into_iter()
        .filter_map(|s| joined_at(s, &api).filter(|at| now >= *at).map(|at| (s, at)))
        .collect();
    if !nodes.iter().any(|(s, _)| is_control_plane(s)) {
        return Err("connection refused: no control-plane node is left (simulated)");
    }
    Ok(Cluster { api, nodes })
}

/// [`cluster`] for the workload API at `endpoint`.
fn reachable<'a>(
    state: &'a State,
    uid: &str,
    endpoint: &str,
    now: u64,
) -> Result<Cluster<'a>, WorkloadError> {
    cluster(state, uid, now).map_err(|message| WorkloadError::Unreachable {
        endpoint: endpoint.to_owned(),
        message: message.to_owned(),
    })
}

/// Called when a server of cluster `uid` is created.
pub(crate) fn server_created(state: &mut State, server: &SimResource) {
    let Some(uid) = server.metadata(META_CLUSTER_UID) else {
        return;
    };
    // An `init` server for a cluster whose API is down for good runs kubeadm init
    // afresh: a new cluster (new etcd) under the same uid.
    if server.metadata(META_ROLE) == Some(ROLE_INIT)
        && state
            .clusters
            .get(uid)
            .is_some_and(|c| c.down_at_ms.is_some())
    {
        state.clusters.insert(
            uid.to_owned(),
            SimCluster {
                since_seq: server.seq,
                ..SimCluster::default()
            },
        );
    }
}

/// Called before server `id` of cluster `uid` starts being deleted: the cluster
/// remembers its API (the `init` server may be the one going) and the etcd member the
/// server leaves behind.
pub(crate) fn server_leaving(state: &mut State, uid: &str, id: &str, now: u64) {
    let Ok(cluster) = cluster(state, uid, now) else {
        return;
    };
    let api = cluster.api;
    let member = cluster
        .nodes
        .iter()
        .find(|(s, _)| s.id == id && is_control_plane(s) && !s.node.etcd_removed)
        .map(|(s, _)| s.name.clone());
    let mut record = state.clusters.get(uid).cloned().unwrap_or_default();
    record.api.get_or_insert(api);
    if let Some(name) = member {
        record.departed_members.insert(name);
    }
    state.clusters.insert(uid.to_owned(), record);
}

/// Called after a server of cluster `uid` started being deleted: when it was the last
/// control-plane node, the API is down for good.
pub(crate) fn server_left(state: &mut State, uid: &str, now: u64) {
    let Some(api) = state
        .clusters
        .get(uid)
        .filter(|c| c.down_at_ms.is_none())
        .and_then(|c| c.api.clone())
    else {
        return;
    };
    let control_plane_left = servers(state, uid, now)
        .into_iter()
        .any(|s| is_control_plane(s) && joined_at(s, &api).is_some_and(|at| now >= at));
    if !control_plane_left {
        state
            .clusters
            .modify(uid, |record| record.down_at_ms = Some(now));
    }
}

/// The labels a node gets from kubeadm (its role) and from the cloud controller manager
/// (zone, region, instance type), which reads them from the server.
fn node_labels(server: &SimResource, region: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if is_control_plane(server) {
        labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            String::new(),
        );
    }
    labels.insert(
        "topology.kubernetes.io/region".to_owned(),
        region.to_owned(),
    );
    if let ResourceSpec::Server {
        availability_zone,
        flavor,
        ..
    } = &server.spec
    {
        // A server asked for no zone lands in the cloud's default one.
        let zone = availability_zone.as_deref().unwrap_or(DEFAULT_ZONE);
        labels.insert("topology.kubernetes.io/zone".to_owned(), zone.to_owned());
        labels.insert(
            "node.kubernetes.io/instance-type".to_owned(),
            flavor.clone(),
        );
    }
    labels
}

/// The nodes of cluster `cluster_uid` as its API server would report them at `now`.
pub(crate) fn nodes(
    state: &State,
    cluster_uid: &str,
    endpoint: &str,
    region: &str,
    now: u64,
) -> Result<Vec<Node>, WorkloadError> {
    let cluster = reachable(state, cluster_uid, endpoint, now)?;
    let mut nodes: Vec<Node> = cluster
        .nodes
        .iter()
        .map(|(server, joined)| Node {
            name: server.name.clone(),
            provider_id: format!("openstack:///{}", server.id),
            ready: !server.node.not_ready,
            kubelet_version: server
                .metadata(META_KUBERNETES_VERSION)
                .unwrap_or(UNKNOWN_VERSION)
                .to_owned(),
            last_transition: time((*joined).max(server.node.ready_changed_at_ms.unwrap_or(0))),
            unschedulable: false,
            labels: node_labels(server, region),
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.provider_id.cmp(&b.provider_id))
    });
    Ok(nodes)
}

/// The names of the nodes whose etcd members are in the cluster's etcd, sorted.
pub(crate) fn etcd_members(
    state: &State,
    cluster_uid: &str,
    endpoint: &str,
    now: u64,
) -> Result<Vec<String>, WorkloadError> {
    let cluster = reachable(state, cluster_uid, endpoint, now)?;
    let mut members: BTreeSet<String> = cluster
        .nodes
        .iter()
        .filter(|(s, _)| is_control_plane(s) && !s.node.etcd_removed)
        .map(|(s, _)| s.name.clone())
        .collect();
    if let Some(record) = state.clusters.get(cluster_uid) {
        members.extend(record.departed_members.iter().cloned());
    }
    Ok(members.into_iter().collect())
}

/// Removes the etcd member of node `name`. Whether anything changed.
pub(crate) fn remove_etcd_member(
    state: &mut State,
    cluster_uid: &str,
    endpoint: &str,
    name: &str,
    now: u64,
) -> Result<bool, WorkloadError> {
    let ids: Vec<String> = reachable(state, cluster_uid, endpoint, now)?
        .nodes
        .iter()
        .filter(|(s, _)| s.name == name && is_control_plane(s) && !s.node.etcd_removed)
        .map(|(s, _)| s.id.clone())
        .collect();
    let mut changed = false;
    for id in ids {
        changed |= state
            .resources
            .modify(&id, |server| server.node.etcd_removed = true)
            .is_some();
    }
    changed |= state
        .clusters
        .modify(cluster_uid, |record| record.departed_members.remove(name))
        .unwrap_or(false);
    Ok(changed)
}

/// The servers named `name` that exist at `now` and are not being deleted.
fn servers_named(state: &State, name: &str, now: u64) -> Result<Vec<String>, CloudError> {
    let ids: Vec<String> = state
        .indexed(&Key::Name(ResourceKind::Server, name.to_owned()), now)
        .filter(|r| r.kind() == ResourceKind::Server && !r.is_deleting() && r.name == name)
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        return Err(CloudError::NotFound {
            kind: ResourceKind::Server,
            id: name.to_owned(),
        });
    }
    Ok(ids)
}

/// Makes the node on each server named `name` Ready or NotReady. Whether anything
/// changed.
pub(crate) fn set_node_ready(
    state: &mut State,
    name: &str,
    ready: bool,
    now: u64,
) -> Result<bool, CloudError> {
    let mut changed = false;
    for id in servers_named(state, name, now)? {
        if state
            .resources
            .get(&id)
            .is_some_and(|server| server.node.not_ready == ready)
        {
            state.resources.modify(&id, |server| {
                server.node.not_ready = !ready;
                server.node.ready_changed_at_ms = Some(now);
            });
            changed = true;
        }
    }
    Ok(changed)
}

/// Blocks or unblocks evictions from the node on each server named `name`. A blocked
/// drain reports [`DrainProgress::Blocked`] whatever its timer says, so once unblocked
/// it finishes when it would have, or at once if that time has passed. Whether anything
/// changed.
pub(crate) fn block_drain(
    state: &mut State,
    name: &str,
    blocked: bool,
    now: u64,
) -> Result<bool, CloudError> {
    let mut changed = false;
    for id in servers_named(state, name, now)? {
        if state
            .resources
            .get(&id)
            .is_some_and(|server| server.node.drain_blocked != blocked)
        {
            state
                .resources
                .modify(&id, |server| server.node.drain_blocked = blocked);
            changed = true;
        }
    }
    Ok(changed)
}

/// The names of the nodes of cluster `uid` whose drains are blocked.
pub(crate) fn drain_blocked_nodes(state: &State, uid: &str, now: u64) -> Vec<String> {
    servers(state, uid, now)
        .into_iter()
        .filter(|s| s.node.drain_blocked)
        .map(|s| s.name.clone())
        .collect()
}

//! Simulated workload clusters: what kubeadm on the simulated servers would make of them.

use kaas_cloud::{Node, ResourceKind, WorkloadError};

use crate::state::{META_CLUSTER_UID, META_KUBERNETES_VERSION, META_ROLE, SimResource, State};

/// The kubelet version reported when a server's metadata does not say.
const UNKNOWN_VERSION: &str = "v0.0.0";

/// Roles in [`META_ROLE`].
const ROLE_INIT: &str = "init";

/// When a cluster's API server answers: its `init` server has been `ACTIVE` for the
/// kubeadm-init latency drawn when it was created.
fn api_up_at(init: &SimResource) -> u64 {
    init.ready_at_ms
        .saturating_add(init.kubeadm_init_ms.unwrap_or(0))
}

/// The nodes of cluster `cluster_uid` as its API server would report them at `now`.
pub(crate) fn nodes(
    state: &State,
    cluster_uid: &str,
    endpoint: &str,
    now: u64,
) -> Result<Vec<Node>, WorkloadError> {
    let unreachable = |message: String| WorkloadError::Unreachable {
        endpoint: endpoint.to_owned(),
        message,
    };
    let servers: Vec<&SimResource> = state
        .existing(now)
        .into_iter()
        .filter(|r| {
            r.kind() == ResourceKind::Server
                && !r.is_deleting()
                && r.error.is_none()
                && r.metadata(META_CLUSTER_UID) == Some(cluster_uid)
        })
        .collect();
    // The first `init` server ran kubeadm init; a twin would have made a cluster of its own.
    let Some(init) = servers
        .iter()
        .find(|r| r.metadata(META_ROLE) == Some(ROLE_INIT))
    else {
        return Err(unreachable(
            "connection refused: no control plane is running (simulated)".to_owned(),
        ));
    };
    let api_up = api_up_at(init);
    if now < api_up {
        return Err(unreachable(
            "connection refused: the API server is not up yet (simulated)".to_owned(),
        ));
    }
    let mut nodes: Vec<Node> = servers
        .iter()
        .filter_map(|server| {
            let ready_at = if server.id == init.id {
                api_up
            } else if server.metadata(META_ROLE) == Some(ROLE_INIT) {
                return None;
            } else {
                server
                    .ready_at_ms
                    .max(api_up)
                    .saturating_add(server.join_ms.unwrap_or(0))
            };
            (now >= ready_at).then(|| Node {
                name: server.name.clone(),
                provider_id: format!("openstack:///{}", server.id),
                ready: true,
                kubelet_version: server
                    .metadata(META_KUBERNETES_VERSION)
                    .unwrap_or(UNKNOWN_VERSION)
                    .to_owned(),
            })
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.provider_id.cmp(&b.provider_id))
    });
    Ok(nodes)
}

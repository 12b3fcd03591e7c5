//! The pure status step: what the cluster and its machines look like, computed from
//! what was observed and what failed in this reconcile.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kaas_cloud::{CloudResource, Node, ResourceStatus};
use kaas_core::cluster::{
    ClusterPhase, InfrastructureResource, NodePoolStatus, ReplicaStatus, conditions,
};
use kaas_core::meta::set_condition;
use kaas_core::stack::find_stack;
use kaas_core::{
    Cluster, ClusterStatus, Condition, ConditionStatus, Machine, MachinePhase, MachineStatus,
};

use super::plan::{Infrastructure, Observed, Stage, api_endpoint, node_of, wanted_roles};

/// A step that failed in this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    pub stage: Stage,
    /// CamelCase cause (`QuotaExceeded`).
    pub reason: String,
    /// What was tried and what the cloud said.
    pub message: String,
    /// Whether retrying unchanged may succeed.
    pub retryable: bool,
}

/// The status of one machine as observed.
pub fn machine_status(
    m: &Machine,
    infra: &Infrastructure<'_>,
    nodes: Option<&[Node]>,
) -> MachineStatus {
    let server = infra.servers.get(&m.metadata.uid);
    let node = node_of(m, infra, nodes);
    let ready = node.is_some_and(|n| n.ready);
    let phase = match (m.metadata.is_deleting(), server.map(|s| &s.status)) {
        (true, _) => MachinePhase::Deleting,
        (false, None) => MachinePhase::Pending,
        (false, Some(ResourceStatus::Error { .. })) => MachinePhase::Failed,
        (false, Some(ResourceStatus::Pending)) => MachinePhase::Provisioning,
        (false, Some(ResourceStatus::Deleting)) => MachinePhase::Deleting,
        (false, Some(ResourceStatus::Active)) if ready => MachinePhase::Running,
        (false, Some(ResourceStatus::Active)) => MachinePhase::Provisioned,
    };
    MachineStatus {
        phase,
        server_id: server.map(|s| s.id.clone()),
        addresses: server.and_then(|s| s.address.clone()).into_iter().collect(),
        node_name: node.map(|n| n.name.clone()),
        ready,
        failure_message: match server.map(|s| &s.status) {
            Some(ResourceStatus::Error { message }) => Some(message.clone()),
            _ => None,
        },
    }
}

fn resource_status(r: &CloudResource) -> String {
    match &r.status {
        ResourceStatus::Pending => "PENDING",
        ResourceStatus::Active => "ACTIVE",
        ResourceStatus::Deleting => "DELETING",
        ResourceStatus::Error { .. } => "ERROR",
    }
    .to_owned()
}

/// The cluster's status after this reconcile.
pub fn cluster_status(
    cluster: &Cluster,
    observed: &Observed,
    infra: &Infrastructure<'_>,
    failures: &[StepFailure],
    now: DateTime<Utc>,
) -> ClusterStatus {
    let old = &cluster.status;
    let mut status = ClusterStatus {
        phase: old.phase,
        conditions: old.conditions.clone(),
        api_endpoint: api_endpoint(cluster, infra),
        kubernetes_version: old.kubernetes_version.clone(),
        control_plane: ReplicaStatus::default(),
        node_pools: Vec::new(),
        infrastructure: BTreeMap::new(),
        api_members: old.api_members.clone(),
        observed_generation: cluster.metadata.generation,
    };
    for (role, r) in infra.roles() {
        status.infrastructure.insert(
            role.clone(),
            InfrastructureResource {
                kind: r.kind.as_str().to_owned(),
                id: r.id.clone(),
                name: r.name.clone(),
                status: resource_status(r),
                address: r.address.clone(),
            },
        );
    }
    let nodes = observed.nodes.as_deref();
    let version = find_stack(&cluster.spec.stack).map(|s| s.kubernetes_version);
    let live: Vec<&Machine> = observed
        .machines
        .iter()
        .filter(|m| !m.metadata.is_deleting())
        .collect();
    let is_ready = |m: &&&Machine| node_of(m, infra, nodes).is_some_and(|n| n.ready);
    let is_updated = |m: &&&Machine, flavor: &str| {
        Some(m.spec.version.as_str()) == version && m.spec.flavor == flavor
    };

    let cps: Vec<&Machine> = live
        .iter()
        .copied()
        .filter(|m| m.is_control_plane())
        .collect();
    let cp = &cluster.spec.control_plane;
    status.control_plane = ReplicaStatus {
        replicas: cps.len() as u32,
        ready_replicas: cps.iter().filter(is_ready).count() as u32,
        updated_replicas: cps.iter().filter(|m| is_updated(m, &cp.flavor)).count() as u32,
    };
    for pool in &cluster.spec.node_pools {
        let ms: Vec<&Machine> = live
            .iter()
            .copied()
            .filter(|m| m.spec.pool == pool.name)
            .collect();
        status.node_pools.push(NodePoolStatus {
            name: pool.name.clone(),
            replicas: ms.len() as u32,
            ready_replicas: ms.iter().filter(is_ready).count() as u32,
            updated_replicas: ms.iter().filter(|m| is_updated(m, &pool.flavor)).count() as u32,
        });
    }
    if status.control_plane.ready_replicas > 0 {
        status.kubernetes_version = version.map(str::to_owned);
    }

    let failure = |stage: Stage| failures.iter().find(|f| f.stage == stage);
    let mut conds: Vec<Condition> = Vec::new();

    // InfrastructureReady
    let wanted = wanted_roles(cluster);
    let pending: Vec<String> = wanted
        .iter()
        .filter_map(|(role, kind, name)| match infra.get(role) {
            Some(r) if r.is_active() => None,
            Some(r) => Some(format!("{kind} {name} is {}", resource_status(r))),
            None => Some(format!("{kind} {name} does not exist yet")),
        })
        .collect();
    let infra_ready = pending.is_empty();
    conds.push(match (failure(Stage::Infrastructure), infra_ready) {
        (_, true) => Condition::new(
            conditions::INFRASTRUCTURE_READY,
            ConditionStatus::True,
            "Ready",
            "all cloud resources are ACTIVE",
        ),
        (Some(f), false) => Condition::new(
            conditions::INFRASTRUCTURE_READY,
            ConditionStatus::False,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => Condition::new(
            conditions::INFRASTRUCTURE_READY,
            ConditionStatus::False,
            "Provisioning",
            summarize(&pending),
        ),
    });

    // ControlPlaneReady
    let cp_ready = status.control_plane.ready_replicas == cp.replicas
        && status.control_plane.replicas == cp.replicas;
    conds.push(match (failure(Stage::ControlPlane), cp_ready) {
        (_, true) => Condition::new(
            conditions::CONTROL_PLANE_READY,
            ConditionStatus::True,
            "Ready",
            format!(
                "{} of {} control-plane nodes ready",
                cp.replicas, cp.replicas
            ),
        ),
        (Some(f), false) => Condition::new(
            conditions::CONTROL_PLANE_READY,
            ConditionStatus::False,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => Condition::new(
            conditions::CONTROL_PLANE_READY,
            ConditionStatus::False,
            if status.control_plane.ready_replicas == 0 {
                "WaitingForInit"
            } else {
                "ScalingUp"
            },
            format!(
                "{} of {} control-plane nodes ready",
                status.control_plane.ready_replicas, cp.replicas
            ),
        ),
    });

    // NodePoolsReady
    let unready: Vec<String> = cluster
        .spec
        .node_pools
        .iter()
        .zip(&status.node_pools)
        .filter(|(spec, st)| st.ready_replicas != spec.replicas || st.replicas != spec.replicas)
        .map(|(spec, st)| {
            format!(
                "pool {}: {} of {} nodes ready",
                spec.name, st.ready_replicas, spec.replicas
            )
        })
        .collect();
    let pools_ready = unready.is_empty();
    conds.push(match (failure(Stage::NodePools), pools_ready) {
        (_, true) => Condition::new(
            conditions::NODE_POOLS_READY,
            ConditionStatus::True,
            "Ready",
            "every node pool has all its nodes ready",
        ),
        (Some(f), false) => Condition::new(
            conditions::NODE_POOLS_READY,
            ConditionStatus::False,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => Condition::new(
            conditions::NODE_POOLS_READY,
            ConditionStatus::False,
            "ScalingUp",
            summarize(&unready),
        ),
    });

    let deleting = cluster.metadata.is_deleting();
    let available = infra_ready && cp_ready && pools_ready && !deleting;
    let not_ready: Vec<&str> = conds
        .iter()
        .filter(|c| !c.is_true())
        .map(|c| c.type_.as_str())
        .collect();
    conds.push(if available {
        Condition::new(
            conditions::AVAILABLE,
            ConditionStatus::True,
            "Available",
            "the cluster is ready for workloads",
        )
    } else if deleting {
        Condition::new(
            conditions::AVAILABLE,
            ConditionStatus::False,
            "Deleting",
            "the cluster is being deleted",
        )
    } else {
        Condition::new(
            conditions::AVAILABLE,
            ConditionStatus::False,
            "NotReady",
            format!("waiting for {}", not_ready.join(", ")),
        )
    });
    if deleting {
        conds.push(match failure(Stage::Deletion) {
            Some(f) => Condition::new(
                conditions::DELETING,
                ConditionStatus::True,
                &f.reason,
                f.message.clone(),
            ),
            None => Condition::new(
                conditions::DELETING,
                ConditionStatus::True,
                "Deleting",
                format!(
                    "{} machines and {} cloud resources left",
                    observed.machines.len(),
                    observed.resources.len()
                ),
            ),
        });
    }
    for c in conds {
        set_condition(&mut status.conditions, c, now);
    }

    let hard_failure = failures.iter().any(|f| !f.retryable);
    status.phase = if deleting {
        ClusterPhase::Deleting
    } else if available {
        ClusterPhase::Available
    } else if hard_failure {
        ClusterPhase::Failed
    } else if matches!(old.phase, ClusterPhase::Available | ClusterPhase::Updating) {
        ClusterPhase::Updating
    } else {
        ClusterPhase::Provisioning
    };
    status
}

fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    text
}

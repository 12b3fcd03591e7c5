//! The pure status step: what the cluster and its machines look like, computed from
//! what was observed, what was planned and what failed in this reconcile.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kaas_cloud::{CloudResource, Node, ResourceStatus};
use kaas_core::cluster::{
    ClusterPhase, InfrastructureResource, NodePoolStatus, ReplicaStatus, conditions,
};
use kaas_core::meta::set_condition;
use kaas_core::{
    Cluster, ClusterStatus, Condition, ConditionStatus, Machine, MachinePhase, MachineSpec,
    MachineStatus,
};

use super::machines::{Targets, is_outdated, targets};
use super::plan::{Infrastructure, Observed, Plan, Stage, api_endpoint, node_of, wanted_roles};

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

/// The status of one machine as observed. What only the executor knows (drain,
/// deletion reason) is kept from `m.status`.
pub fn machine_status(
    m: &Machine,
    infra: &Infrastructure<'_>,
    nodes: Option<&[Node]>,
    now: DateTime<Utc>,
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
    // A server that failed before the node joined is counted once.
    let failed_boot = server.filter(|s| {
        matches!(s.status, ResourceStatus::Error { .. })
            && m.status.node_name.is_none()
            && m.status.last_failed_server.as_deref() != Some(s.id.as_str())
    });
    let (boot_failures, last_failed_server, last_boot_failure) = match failed_boot {
        Some(s) => (m.status.boot_failures + 1, Some(s.id.clone()), Some(now)),
        None => (
            m.status.boot_failures,
            m.status.last_failed_server.clone(),
            m.status.last_boot_failure,
        ),
    };
    let failure_message = match server.map(|s| &s.status) {
        Some(ResourceStatus::Error { message }) => Some(message.clone()),
        // Between a failed boot and the next server: why it failed.
        None if boot_failures > 0 => m.status.failure_message.clone(),
        _ if m.status.drain_started_at.is_some() && !m.status.drained => {
            m.status.failure_message.clone()
        }
        _ => None,
    };
    MachineStatus {
        phase,
        server_id: server.map(|s| s.id.clone()),
        addresses: server.and_then(|s| s.address.clone()).into_iter().collect(),
        node_name: node.map(|n| n.name.clone()),
        ready,
        failure_message,
        drain_started_at: m.status.drain_started_at,
        drained: m.status.drained,
        deletion_reason: m.status.deletion_reason.clone(),
        remediation: m.status.remediation,
        boot_failures,
        last_failed_server,
        last_boot_failure,
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

/// Counts of one part of the cluster (the control plane or a pool).
struct Part<'a> {
    name: String,
    desired: u32,
    live: Vec<&'a Machine>,
    target: Option<&'a MachineSpec>,
}

impl Part<'_> {
    fn counts(&self, ready: &dyn Fn(&Machine) -> bool) -> ReplicaStatus {
        let updated = |m: &&&Machine| self.target.is_some_and(|t| !is_outdated(m, t));
        ReplicaStatus {
            replicas: self.live.len() as u32,
            ready_replicas: self.live.iter().filter(|m| ready(m)).count() as u32,
            updated_replicas: self.live.iter().filter(updated).count() as u32,
            available_replicas: self
                .live
                .iter()
                .filter(updated)
                .filter(|m| ready(m))
                .count() as u32,
        }
    }
}

fn parts<'a>(
    cluster: &'a Cluster,
    observed: &'a Observed,
    targets: Option<&'a Targets>,
) -> Vec<Part<'a>> {
    let live: Vec<&Machine> = observed
        .machines
        .iter()
        .filter(|m| !m.metadata.is_deleting())
        .collect();
    let mut parts = vec![Part {
        name: "control plane".to_owned(),
        desired: cluster.spec.control_plane.replicas,
        live: live
            .iter()
            .copied()
            .filter(|m| m.is_control_plane())
            .collect(),
        target: targets.map(|t| &t.control_plane),
    }];
    for pool in &cluster.spec.node_pools {
        parts.push(Part {
            name: format!("pool {}", pool.name),
            desired: pool.replicas,
            live: live
                .iter()
                .copied()
                .filter(|m| !m.is_control_plane() && m.spec.pool == pool.name)
                .collect(),
            target: targets.and_then(|t| t.pool(&pool.name)),
        });
    }
    parts
}

/// The cluster's status after this reconcile.
pub fn cluster_status(
    cluster: &Cluster,
    observed: &Observed,
    infra: &Infrastructure<'_>,
    plan: &Plan,
    failures: &[StepFailure],
    addons_applied: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> ClusterStatus {
    let old = &cluster.status;
    let nodes = observed.nodes.as_deref();
    let ready = |m: &Machine| node_of(m, infra, nodes).is_some_and(|n| n.ready);
    let targets = targets(cluster, observed.stack.as_ref(), &observed.machines);
    let parts = parts(cluster, observed, targets.as_ref());
    let counts: Vec<ReplicaStatus> = parts.iter().map(|p| p.counts(&ready)).collect();

    let mut status = ClusterStatus {
        phase: old.phase,
        conditions: old.conditions.clone(),
        api_endpoint: api_endpoint(cluster, infra),
        kubernetes_version: old.kubernetes_version.clone(),
        control_plane: counts[0].clone(),
        node_pools: parts[1..]
            .iter()
            .zip(&counts[1..])
            .map(|(p, c)| NodePoolStatus {
                name: p.name.trim_start_matches("pool ").to_owned(),
                replicas: c.replicas,
                ready_replicas: c.ready_replicas,
                updated_replicas: c.updated_replicas,
                available_replicas: c.available_replicas,
            })
            .collect(),
        infrastructure: BTreeMap::new(),
        api_members: old.api_members.clone(),
        addons: old.addons.clone(),
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
    // The version the control plane runs: the oldest among its ready machines.
    let cp_versions: Vec<&str> = parts[0]
        .live
        .iter()
        .filter(|m| ready(m))
        .map(|m| m.spec.version.as_str())
        .collect();
    if let Some(v) = cp_versions
        .iter()
        .min_by_key(|v| kaas_core::stack::minor_of(v).unwrap_or((0, 0)))
    {
        status.kubernetes_version = Some((*v).to_owned());
    }

    let failure = |stage: Stage| failures.iter().find(|f| f.stage == stage);
    let c = |type_: &str, ok: bool, reason: &str, message: String| {
        Condition::new(
            type_,
            if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason,
            message,
        )
    };
    let mut conds: Vec<Condition> = Vec::new();

    // InfrastructureReady
    let pending: Vec<String> = wanted_roles(cluster)
        .iter()
        .filter_map(|(role, kind, name)| match infra.get(role) {
            Some(r) if r.is_active() => None,
            Some(r) => Some(format!("{kind} {name} is {}", resource_status(r))),
            None => Some(format!("{kind} {name} does not exist yet")),
        })
        .collect();
    let infra_ready = pending.is_empty();
    conds.push(match (failure(Stage::Infrastructure), infra_ready) {
        (_, true) => c(
            conditions::INFRASTRUCTURE_READY,
            true,
            "Ready",
            "all cloud resources are ACTIVE".to_owned(),
        ),
        (Some(f), false) => c(
            conditions::INFRASTRUCTURE_READY,
            false,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => c(
            conditions::INFRASTRUCTURE_READY,
            false,
            "Provisioning",
            summarize(&pending),
        ),
    });

    // ControlPlaneReady
    let cp = &counts[0];
    let cp_desired = parts[0].desired;
    let cp_ready = cp.ready_replicas >= cp_desired;
    let cp_text = format!(
        "{} of {} control-plane nodes ready",
        cp.ready_replicas, cp_desired
    );
    conds.push(match (failure(Stage::ControlPlane), cp_ready) {
        (_, true) => c(conditions::CONTROL_PLANE_READY, true, "Ready", cp_text),
        (Some(f), false) => c(
            conditions::CONTROL_PLANE_READY,
            false,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => match &observed.api_unreachable {
            // A cluster that has run answers no more: whether its nodes are ready is
            // not known (and nothing is replaced for it).
            Some(why) if old.kubernetes_version.is_some() => Condition::new(
                conditions::CONTROL_PLANE_READY,
                ConditionStatus::Unknown,
                "ApiUnreachable",
                why.clone(),
            ),
            Some(why) => c(
                conditions::CONTROL_PLANE_READY,
                false,
                "WaitingForApi",
                format!("{cp_text}; {why}"),
            ),
            None => {
                let reason = if cp.ready_replicas == 0 {
                    "WaitingForInit"
                } else {
                    "NotEnoughReady"
                };
                c(conditions::CONTROL_PLANE_READY, false, reason, cp_text)
            }
        },
    });

    // NodePoolsReady
    let unready: Vec<String> = parts[1..]
        .iter()
        .zip(&counts[1..])
        .filter(|(p, c)| c.ready_replicas < p.desired)
        .map(|(p, c)| {
            format!(
                "{}: {} of {} nodes ready",
                p.name, c.ready_replicas, p.desired
            )
        })
        .collect();
    let pools_ready = unready.is_empty();
    conds.push(match (failure(Stage::NodePools), pools_ready) {
        (_, true) => c(
            conditions::NODE_POOLS_READY,
            true,
            "Ready",
            "every node pool has its nodes ready".to_owned(),
        ),
        (Some(f), false) => c(
            conditions::NODE_POOLS_READY,
            false,
            &f.reason,
            f.message.clone(),
        ),
        (None, false) => c(
            conditions::NODE_POOLS_READY,
            false,
            "NotEnoughReady",
            summarize(&unready),
        ),
    });

    // RollingOut, ScalingUp, ScalingDown
    let mut rolling = Vec::new();
    let mut up = Vec::new();
    let mut down = Vec::new();
    for (p, n) in parts.iter().zip(&counts) {
        // Machines still leaving count too: a rollout or a scale-down is over when the
        // last of them is gone.
        let leaving: Vec<&Machine> = observed
            .machines
            .iter()
            .filter(|m| m.metadata.is_deleting() && !m.status.remediation)
            .filter(|m| {
                if p.name == "control plane" {
                    m.is_control_plane()
                } else {
                    !m.is_control_plane() && p.name == format!("pool {}", m.spec.pool)
                }
            })
            .collect();
        let old_leaving = leaving
            .iter()
            .any(|m| p.target.is_some_and(|t| is_outdated(m, t)));
        let outdated = n.replicas - n.updated_replicas;
        if outdated > 0 || old_leaving {
            let to = p
                .target
                .map(|t| format!(" to {} ({})", t.version, t.flavor))
                .unwrap_or_default();
            rolling.push(format!(
                "{}: {} of {} updated{to}",
                p.name,
                n.updated_replicas,
                n.replicas.max(p.desired)
            ));
        } else if n.replicas < p.desired {
            up.push(format!(
                "{}: {} of {} machines",
                p.name, n.replicas, p.desired
            ));
        } else if n.replicas > p.desired || !leaving.is_empty() {
            down.push(format!(
                "{}: {} machines, {} wanted",
                p.name, n.replicas, p.desired
            ));
        }
    }
    // Pools taken out of the spec are scaling down until their last machine is gone.
    let mut removed: BTreeMap<&str, usize> = BTreeMap::new();
    for m in observed.machines.iter().filter(|m| !m.is_control_plane()) {
        if !cluster
            .spec
            .node_pools
            .iter()
            .any(|p| p.name == m.spec.pool)
        {
            *removed.entry(m.spec.pool.as_str()).or_default() += 1;
        }
    }
    for (pool, n) in removed {
        down.push(format!(
            "pool {pool}: removed from the spec, {n} machines left"
        ));
    }
    let deleting = cluster.metadata.is_deleting();
    conds.push(if rolling.is_empty() || deleting {
        c(
            conditions::ROLLING_OUT,
            false,
            "UpToDate",
            "every machine has its current version, image and flavor".to_owned(),
        )
    } else {
        c(
            conditions::ROLLING_OUT,
            true,
            "RollingOut",
            summarize(&rolling),
        )
    });
    conds.push(if up.is_empty() || deleting {
        c(conditions::SCALING_UP, false, "NotScalingUp", String::new())
    } else {
        c(conditions::SCALING_UP, true, "ScalingUp", summarize(&up))
    });
    conds.push(if down.is_empty() || deleting {
        c(
            conditions::SCALING_DOWN,
            false,
            "NotScalingDown",
            String::new(),
        )
    } else {
        c(
            conditions::SCALING_DOWN,
            true,
            "ScalingDown",
            summarize(&down),
        )
    });

    // Remediating
    let replacing: Vec<String> = observed
        .machines
        .iter()
        .filter(|m| m.metadata.is_deleting() && m.status.remediation)
        .map(|m| {
            format!(
                "{} ({})",
                m.metadata.name,
                m.status.deletion_reason.as_deref().unwrap_or("unhealthy")
            )
        })
        .collect();
    conds.push(if !plan.remediation_blocked.is_empty() {
        c(
            conditions::REMEDIATING,
            false,
            "TooManyUnhealthy",
            summarize(&plan.remediation_blocked),
        )
    } else if !replacing.is_empty() {
        c(
            conditions::REMEDIATING,
            true,
            "Remediating",
            format!("replacing {}", summarize(&replacing)),
        )
    } else {
        c(
            conditions::REMEDIATING,
            false,
            "NoUnhealthyMachines",
            String::new(),
        )
    });

    let addons_failure = failure(Stage::Addons).map(|f| (f.reason.as_str(), f.message.as_str()));
    let (addons, addons_ready) =
        super::addons::addons_status(cluster, observed, addons_applied, addons_failure);
    status.addons = addons;
    let addons_ok = addons_ready.is_true();
    let available = infra_ready && cp_ready && pools_ready && addons_ok && !deleting;
    let mut not_ready: Vec<String> = conds
        .iter()
        .take(3)
        .filter(|c| !c.is_true())
        .map(|c| c.type_.clone())
        .collect();
    if !addons_ok {
        not_ready.push(conditions::ADDONS_READY.to_owned());
    }
    if !deleting {
        conds.push(addons_ready);
    }
    conds.push(if available {
        c(
            conditions::AVAILABLE,
            true,
            "Available",
            "the cluster is ready for workloads".to_owned(),
        )
    } else if deleting {
        c(
            conditions::AVAILABLE,
            false,
            "Deleting",
            "the cluster is being deleted".to_owned(),
        )
    } else {
        c(
            conditions::AVAILABLE,
            false,
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
    let changing =
        !rolling.is_empty() || !up.is_empty() || !down.is_empty() || !replacing.is_empty();
    for cond in conds {
        set_condition(&mut status.conditions, cond, now);
    }

    let hard_failure = failures.iter().any(|f| !f.retryable);
    let was_available = matches!(old.phase, ClusterPhase::Available | ClusterPhase::Updating);
    status.phase = if deleting {
        ClusterPhase::Deleting
    } else if hard_failure {
        ClusterPhase::Failed
    } else if available && !changing {
        ClusterPhase::Available
    } else if was_available || available {
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

//! The pure planning of a cluster's machines: control plane and node pools, scaling,
//! rolling replacement, health remediation, and the careful removal of a machine
//! (drain, etcd member, server, record).
//!
//! Rules, after Cluster API's and kubeadm's:
//! - The control plane goes first and one machine at a time, surge first: a new
//!   machine joins and is Ready before an old one leaves, so etcd never loses quorum.
//!   With `controlPlane.maxSurge: 0` (3 or 5 replicas, all Ready) the old one leaves
//!   first, for clouds with no room for one more beside the others.
//! - Workers follow the control plane; while it rolls out, new workers keep the version
//!   the control plane still runs (a kubelet must not be newer than its API server).
//! - A pool rolls out within `maxSurge` (extra machines) and `maxUnavailable` (ready
//!   machines fewer than `replicas`).
//! - Machines are never changed: an outdated or unhealthy machine is replaced.
//! - An unhealthy machine is replaced only while no more than `maxUnhealthy` of its
//!   pool is unhealthy; otherwise kaas stops and says why.
//! - Every machine but the first control plane joins with a bootstrap token kaas
//!   registers in the cluster before its server is created, extends while it joins
//!   and removes once its node is Ready (or the machine is gone): no token outlives
//!   its join, and a join works however old the cluster is.

use std::collections::BTreeSet;

use kaas_cloud::{Node, ResourceStatus};
use kaas_core::machine::CONTROL_PLANE_POOL;
use kaas_core::stack::ClusterStack;
use kaas_core::{Cluster, Machine, MachineRole, MachineSpec, NodePool};

use super::plan::{
    Infrastructure, Observed, Plan, Step, delete_resource, delete_step, node_of, node_ready,
    plan_load_balancer_members, plan_server,
};

/// A joining machine's bootstrap token is extended when it has less than this left.
pub const JOIN_TOKEN_RENEW_BEFORE: chrono::Duration = chrono::Duration::minutes(20);

/// Registers the bootstrap tokens of machines that are joining and whose token is
/// missing or about to expire, and deletes those of machines that joined or are gone.
/// Nothing while the workload API does not answer.
pub fn plan_join_tokens(observed: &Observed, infra: &Infrastructure<'_>, plan: &mut Plan) {
    let Some(tokens) = &observed.join_tokens else {
        return;
    };
    let nodes = observed.nodes.as_deref();
    let joining = |m: &Machine| {
        m.spec.role != MachineRole::Init
            && !m.metadata.is_deleting()
            && infra
                .servers
                .get(&m.metadata.uid)
                .is_some_and(|s| !matches!(s.status, ResourceStatus::Error { .. }))
            && !node_ready(m, infra, nodes)
    };
    for t in tokens {
        let still_joining = observed
            .machines
            .iter()
            .any(|m| m.metadata.name == t.machine && joining(m));
        if !still_joining {
            plan.steps.push(Step::DeleteJoinToken {
                id: t.id.clone(),
                machine: t.machine.clone(),
            });
        }
    }
    for m in observed.machines.iter().filter(|m| joining(m)) {
        let fresh = tokens.iter().any(|t| {
            t.machine == m.metadata.name
                && t.expires
                    .is_some_and(|e| e - observed.now > JOIN_TOKEN_RENEW_BEFORE)
        });
        if !fresh {
            plan.steps.push(Step::RegisterJoinToken {
                machine: m.metadata.name.clone(),
                control_plane: m.is_control_plane(),
            });
        }
    }
}

/// What new machines of each part of the cluster look like now.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub control_plane: MachineSpec,
    /// By pool name, in spec order.
    pub pools: Vec<(String, MachineSpec)>,
    /// Whether the control plane still has machines of an older spec.
    pub control_plane_rolling: bool,
}

impl Targets {
    pub fn pool(&self, name: &str) -> Option<&MachineSpec> {
        self.pools.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// The target of the part `m` belongs to.
    pub fn of(&self, m: &Machine) -> Option<&MachineSpec> {
        if m.is_control_plane() {
            Some(&self.control_plane)
        } else {
            self.pool(&m.spec.pool)
        }
    }
}

/// A machine is outdated when its version, image or flavor is not its target's.
pub fn is_outdated(m: &Machine, target: &MachineSpec) -> bool {
    m.spec.version != target.version
        || m.spec.image != target.image
        || m.spec.flavor != target.flavor
}

/// The targets, or `None` when the cluster's stack is unknown.
/// `stack` is the cluster's stack as the catalog has it.
pub fn targets(
    cluster: &Cluster,
    stack: Option<&ClusterStack>,
    machines: &[Machine],
) -> Option<Targets> {
    let stack = stack?;
    let cp = &cluster.spec.control_plane;
    let control_plane = MachineSpec {
        pool: CONTROL_PLANE_POOL.to_owned(),
        role: MachineRole::ControlPlane,
        version: stack.kubernetes_version().to_owned(),
        image: stack.image().to_owned(),
        flavor: cp.flavor.clone(),
        zone: None,
    };
    // Leaving machines count: the control plane is done only when the last old one is
    // gone.
    let cps: Vec<&Machine> = machines.iter().filter(|m| m.is_control_plane()).collect();
    let control_plane_rolling = cps.iter().any(|m| is_outdated(m, &control_plane));
    // While the control plane rolls, workers stay at the oldest version it runs.
    let (version, image) = if control_plane_rolling {
        // The oldest control plane by full version, with its own image.
        match cps.iter().min_by_key(|m| version_key(&m.spec.version)) {
            Some(oldest) => (oldest.spec.version.clone(), oldest.spec.image.clone()),
            None => (
                stack.kubernetes_version().to_owned(),
                stack.image().to_owned(),
            ),
        }
    } else {
        (
            stack.kubernetes_version().to_owned(),
            stack.image().to_owned(),
        )
    };
    let pools = cluster
        .spec
        .node_pools
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                MachineSpec {
                    pool: p.name.clone(),
                    role: MachineRole::Worker,
                    version: version.clone(),
                    image: image.clone(),
                    flavor: p.flavor.clone(),
                    zone: None,
                },
            )
        })
        .collect();
    Some(Targets {
        control_plane,
        pools,
        control_plane_rolling,
    })
}

/// `(major, minor, patch)` of `v1.33.5`, for ordering versions.
fn version_key(version: &str) -> (u32, u32, u32) {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Why a machine is unhealthy, if it is.
pub fn unhealthy(
    cluster: &Cluster,
    observed: &Observed,
    m: &Machine,
    infra: &Infrastructure<'_>,
) -> Option<String> {
    let health = &cluster.spec.health;
    if let Some(server) = infra.servers.get(&m.metadata.uid)
        && let ResourceStatus::Error { message } = &server.status
        && m.status.node_name.is_some()
    {
        return Some(format!("its server failed: {message}"));
    }
    let node = node_of(m, infra, observed.nodes.as_deref());
    match node {
        Some(n) if n.ready => None,
        Some(n) => {
            let since = n.last_transition?;
            (observed.now - since > observed.scaled(&health.unhealthy_timeout)).then(|| {
                format!(
                    "node {} has been NotReady for longer than unhealthyTimeout ({})",
                    n.name, health.unhealthy_timeout
                )
            })
        }
        None => {
            // Only while the workload API answers can a missing node be told apart from
            // an unreachable cluster.
            observed.nodes.as_ref()?;
            let created = m.metadata.created_at?;
            (observed.now - created > observed.scaled(&health.node_startup_timeout)).then(|| {
                format!(
                    "no Ready node within nodeStartupTimeout ({})",
                    health.node_startup_timeout
                )
            })
        }
    }
}

/// How many unhealthy machines of `replicas` may be replaced at once.
pub fn max_unhealthy(text: &str, replicas: u32) -> u32 {
    match text.strip_suffix('%') {
        Some(p) => p.parse::<u32>().map_or(0, |p| replicas * p / 100),
        None => text.parse().unwrap_or(0),
    }
}

struct Planner<'a, 'i> {
    cluster: &'a Cluster,
    observed: &'a Observed,
    infra: &'a Infrastructure<'i>,
    /// Machines this plan deletes: they get no server and do not count as live.
    doomed: BTreeSet<String>,
}

impl Planner<'_, '_> {
    fn nodes(&self) -> Option<&[Node]> {
        self.observed.nodes.as_deref()
    }

    fn ready(&self, m: &Machine) -> bool {
        node_ready(m, self.infra, self.nodes())
    }

    fn delete(&mut self, plan: &mut Plan, m: &Machine, reason: String, remediation: bool) {
        if self.doomed.insert(m.metadata.name.clone()) {
            plan.steps.push(Step::DeleteMachine {
                name: m.metadata.name.clone(),
                reason,
                remediation,
            });
        }
    }

    fn live<'m>(&self, machines: impl Iterator<Item = &'m Machine>) -> Vec<&'m Machine> {
        machines
            .filter(|m| !m.metadata.is_deleting() && !self.doomed.contains(&m.metadata.name))
            .collect()
    }

    /// Replaces unhealthy machines of one part (`what`), within `maxUnhealthy`.
    fn remediate(
        &mut self,
        plan: &mut Plan,
        what: &str,
        machines: &[&Machine],
        replicas: u32,
        one_at_a_time: bool,
    ) {
        let sick: Vec<(&Machine, String)> = machines
            .iter()
            .filter_map(|m| {
                unhealthy(self.cluster, self.observed, m, self.infra).map(|why| (*m, why))
            })
            .collect();
        if sick.is_empty() {
            return;
        }
        // The limit counts every node that is NotReady now, not only those past the
        // timeout: when many fail at once (a network partition, a zone outage),
        // replacing them one by one as their timeouts expire would do harm.
        let troubled = machines
            .iter()
            .filter(|m| {
                node_of(m, self.infra, self.nodes()).is_some_and(|n| !n.ready)
                    || sick.iter().any(|(s, _)| s.metadata.uid == m.metadata.uid)
            })
            .count();
        let limit = max_unhealthy(&self.cluster.spec.health.max_unhealthy, replicas.max(1));
        if troubled as u32 > limit {
            plan.remediation_blocked.push(format!(
                "{what}: {troubled} of {} machines are unhealthy, more than maxUnhealthy ({}) allows; not replacing any until some recover",
                machines.len(),
                self.cluster.spec.health.max_unhealthy
            ));
            return;
        }
        for (m, why) in sick
            .into_iter()
            .take(if one_at_a_time { 1 } else { usize::MAX })
        {
            self.delete(plan, m, format!("unhealthy: {why}"), true);
        }
    }
}

/// Plans the machines of a cluster that is not being deleted.
pub fn plan_machines(
    cluster: &Cluster,
    observed: &Observed,
    infra: &Infrastructure<'_>,
    plan: &mut Plan,
) {
    let nodes = observed.nodes.as_deref();
    let deleting: Vec<&Machine> = observed
        .machines
        .iter()
        .filter(|m| m.metadata.is_deleting())
        .collect();
    for m in &deleting {
        plan_machine_removal(cluster, observed, m, infra, plan);
    }
    let mut p = Planner {
        cluster,
        observed,
        infra,
        doomed: BTreeSet::new(),
    };

    let Some(targets) = targets(cluster, observed.stack.as_ref(), &observed.machines) else {
        let cps = p.live(observed.machines.iter().filter(|m| m.is_control_plane()));
        plan_load_balancer_members(cluster, &cps, infra, plan);
        plan.wait(format!("cluster stack {} to exist", cluster.spec.stack));
        return;
    };

    // Control plane.
    let cp = &cluster.spec.control_plane;
    let cp_leaving = deleting.iter().any(|m| m.is_control_plane());
    let cps = p.live(observed.machines.iter().filter(|m| m.is_control_plane()));
    if !cp_leaving && cp.replicas > 1 {
        // Never more than one control plane replaced at a time, and only while the
        // others keep quorum.
        let healthy = cps.iter().filter(|m| p.ready(m)).count() as u32;
        if healthy > cp.replicas / 2 {
            p.remediate(plan, "control plane", &cps, cp.replicas, true);
        } else if cps
            .iter()
            .any(|m| unhealthy(cluster, observed, m, infra).is_some())
        {
            plan.remediation_blocked.push(format!(
                "control plane: only {healthy} of {} machines are Ready; replacing one now could lose etcd quorum",
                cp.replicas
            ));
        }
    }
    let cps = p.live(observed.machines.iter().filter(|m| m.is_control_plane()));
    let all_cp_ready = cps.iter().all(|m| p.ready(m));
    let outdated_cps: Vec<&Machine> = cps
        .iter()
        .copied()
        .filter(|m| is_outdated(m, &targets.control_plane))
        .collect();
    let cp_count = cps.len() as u32;
    let ever_initialized = cluster.status.kubernetes_version.is_some();
    let cp_zone = pick_zone(&cp.zones, &cps, &[]);
    let new_cp = |role| MachineSpec {
        role,
        zone: cp_zone.clone(),
        ..targets.control_plane.clone()
    };
    if cps.is_empty() && !cp_leaving && p.doomed.is_empty() {
        if ever_initialized {
            plan.wait("a control plane: every control-plane machine is gone and the cluster's etcd with them");
        } else {
            plan.steps.push(Step::CreateMachine {
                spec: new_cp(MachineRole::Init),
            });
        }
    } else if cp_leaving || !all_cp_ready || !p.doomed.is_empty() {
        plan.wait("the control plane to settle");
    } else if cp_count < cp.replicas
        || (cp_count == cp.replicas && !outdated_cps.is_empty() && cp.max_surge > 0)
    {
        // Scale up, or surge the next replacement.
        plan.steps.push(Step::CreateMachine {
            spec: new_cp(MachineRole::ControlPlane),
        });
    } else if cp_count == cp.replicas && cp.replicas >= 3 && !outdated_cps.is_empty() {
        // maxSurge 0: the oldest outdated control plane leaves first (all are Ready,
        // so the members left keep etcd's quorum); its replacement comes as a scale-up.
        if let Some(m) = oldest(&outdated_cps) {
            p.delete(
                plan,
                m,
                format!(
                    "replaced by a machine with {} ({}), after it leaves (maxSurge 0)",
                    targets.control_plane.version, targets.control_plane.image
                ),
                false,
            );
        }
    } else if cp_count > cp.replicas {
        let victim = oldest(&outdated_cps).or_else(|| newest(&cps));
        if let Some(m) = victim {
            let reason = if outdated_cps.is_empty() {
                format!("control plane scaled down to {}", cp.replicas)
            } else {
                format!(
                    "replaced by a machine with {} ({})",
                    targets.control_plane.version, targets.control_plane.image
                )
            };
            p.delete(plan, m, reason, false);
        }
    }

    // Node pools, once the workload API answers.
    let api_up = nodes.is_some_and(|ns| ns.iter().any(|n| n.ready));
    for pool in &cluster.spec.node_pools {
        let Some(target) = targets.pool(&pool.name) else {
            continue;
        };
        plan_pool(&mut p, plan, pool, target, api_up);
    }
    for m in p.live(observed.machines.iter().filter(|m| !m.is_control_plane())) {
        if !cluster
            .spec
            .node_pools
            .iter()
            .any(|np| np.name == m.spec.pool)
        {
            p.delete(
                plan,
                m,
                format!("pool {} was removed from the spec", m.spec.pool),
                false,
            );
        }
    }

    let cps = p.live(observed.machines.iter().filter(|m| m.is_control_plane()));
    plan_load_balancer_members(cluster, &cps, infra, plan);
    for m in p.live(observed.machines.iter()) {
        plan_server(cluster, observed, m, infra, plan);
    }
}

fn plan_pool(
    p: &mut Planner<'_, '_>,
    plan: &mut Plan,
    pool: &NodePool,
    target: &MachineSpec,
    api_up: bool,
) {
    let machines = p.live(
        p.observed
            .machines
            .iter()
            .filter(|m| !m.is_control_plane() && m.spec.pool == pool.name),
    );
    let blocked_before = plan.remediation_blocked.len();
    p.remediate(
        plan,
        &format!("pool {}", pool.name),
        &machines,
        pool.replicas,
        false,
    );
    // Unready outdated machines may go without using the availability budget, but
    // only when readiness is known (the API answers) and repair is not being held
    // back by maxUnhealthy (a rollout must not do what repair refuses to).
    let unready_may_go = p.nodes().is_some() && plan.remediation_blocked.len() == blocked_before;
    let live = p.live(machines.into_iter());
    let (old, new): (Vec<&Machine>, Vec<&Machine>) =
        live.iter().partition(|m| is_outdated(m, target));
    let r = pool.replicas as usize;
    let rollout = &p.cluster.spec.rollout;
    let (surge, unavailable) = (rollout.max_surge as usize, rollout.max_unavailable as usize);

    if new.len() > r {
        // Scale down: the unready first, then the newest.
        let mut victims = new.clone();
        victims.sort_by_key(|m| {
            (
                p.ready(m),
                std::cmp::Reverse(m.metadata.created_at),
                m.metadata.name.clone(),
            )
        });
        for m in victims.into_iter().take(new.len() - r) {
            p.delete(
                plan,
                m,
                format!("pool {} scaled down to {r}", pool.name),
                false,
            );
        }
    } else {
        let wanted = r - new.len();
        let room = if old.is_empty() {
            wanted
        } else {
            (r + surge).saturating_sub(live.len())
        };
        let create = wanted.min(room);
        if create > 0 {
            if api_up {
                let mut planned: Vec<String> = Vec::new();
                for _ in 0..create {
                    let zone = pick_zone(&pool.zones, &live, &planned);
                    planned.extend(zone.clone());
                    plan.steps.push(Step::CreateMachine {
                        spec: MachineSpec {
                            zone,
                            ..target.clone()
                        },
                    });
                }
            } else {
                plan.wait(format!(
                    "the workload API before creating machines of pool {}",
                    pool.name
                ));
            }
        }
    }

    // Old machines leave while enough ready machines remain.
    let available = live.iter().filter(|m| p.ready(m)).count();
    let mut budget = available.saturating_sub(r.saturating_sub(unavailable));
    let mut old = old;
    old.sort_by_key(|m| (p.ready(m), m.metadata.created_at, m.metadata.name.clone()));
    for m in old {
        let reason = format!(
            "replaced by a machine with {} ({}, {})",
            target.version, target.image, target.flavor
        );
        if !p.ready(m) {
            if unready_may_go {
                p.delete(plan, m, reason, false);
            }
        } else if budget > 0 {
            budget -= 1;
            p.delete(plan, m, reason, false);
        }
    }
}

/// The zone for a new machine of a part: the one with the fewest machines (counting
/// those this plan creates), the first listed on a tie; `None` without zones.
pub fn pick_zone(zones: &[String], machines: &[&Machine], planned: &[String]) -> Option<String> {
    zones
        .iter()
        .min_by_key(|z| {
            let existing = machines
                .iter()
                .filter(|m| m.spec.zone.as_ref() == Some(*z))
                .count();
            existing + planned.iter().filter(|p| p == z).count()
        })
        .cloned()
}

fn newest<'a>(machines: &[&'a Machine]) -> Option<&'a Machine> {
    machines
        .iter()
        .copied()
        .max_by_key(|m| (m.metadata.created_at, m.metadata.name.clone()))
}

fn oldest<'a>(machines: &[&'a Machine]) -> Option<&'a Machine> {
    machines
        .iter()
        .copied()
        .min_by_key(|m| (m.metadata.created_at, m.metadata.name.clone()))
}

/// A machine on its way out: drain its node (unless the node is not Ready, or the whole
/// cluster goes), remove a control plane's etcd member, delete the server, then release
/// the record.
pub fn plan_machine_removal(
    cluster: &Cluster,
    observed: &Observed,
    m: &Machine,
    infra: &Infrastructure<'_>,
    plan: &mut Plan,
) {
    let whole_cluster = cluster.metadata.is_deleting();
    let node = node_of(m, infra, observed.nodes.as_deref());
    if !whole_cluster
        && let Some(node) = node
        && node.ready
        && !m.status.drained
    {
        let timeout = &cluster.spec.rollout.drain_timeout;
        let overdue = m
            .status
            .drain_started_at
            .is_some_and(|t| observed.now - t > observed.scaled(timeout));
        let (machine, node) = (m.metadata.name.clone(), node.name.clone());
        plan.steps.push(if overdue {
            Step::AbandonDrain {
                machine,
                node,
                timeout: timeout.clone(),
            }
        } else {
            Step::DrainNode { machine, node }
        });
        return;
    }
    if !whole_cluster && m.is_control_plane() {
        let node_name = node.map_or(m.metadata.name.as_str(), |n| n.name.as_str());
        // A control plane that ever joined may hold an etcd member; while membership
        // cannot be read, its server stays (deleting it would leave a dead member
        // eating into quorum).
        if observed.etcd_members.is_none() && m.status.node_name.is_some() {
            plan.wait(format!("the etcd membership of {node_name} to be readable"));
            return;
        }
        if observed
            .etcd_members
            .as_ref()
            .is_some_and(|ms| ms.iter().any(|x| x == node_name))
        {
            plan.steps.push(Step::RemoveEtcdMember {
                machine: m.metadata.name.clone(),
                node: node_name.to_owned(),
            });
            // Once the member is gone, so may the server be, in the same reconcile.
            if let Some(server) = infra
                .servers
                .get(&m.metadata.uid)
                .filter(|s| s.status != ResourceStatus::Deleting)
            {
                plan.then(delete_step(server));
            }
            return;
        }
    }
    if let Some(server) = infra.servers.get(&m.metadata.uid) {
        delete_resource(server, plan);
        return;
    }
    // The server is gone; so goes its Node from the API (as Cluster API does), unless
    // the whole cluster goes or its API does not answer, then the record.
    let lingering = m.status.node_name.as_deref().filter(|name| {
        observed
            .nodes
            .as_ref()
            .is_some_and(|nodes| nodes.iter().any(|n| n.name == *name))
    });
    match lingering {
        Some(node) if !whole_cluster => {
            plan.steps.push(Step::DeleteNode {
                machine: m.metadata.name.clone(),
                node: node.to_owned(),
            });
            // The Node gone, nothing holds the record.
            plan.then(Step::ReleaseMachine {
                name: m.metadata.name.clone(),
            });
        }
        _ => plan.steps.push(Step::ReleaseMachine {
            name: m.metadata.name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;

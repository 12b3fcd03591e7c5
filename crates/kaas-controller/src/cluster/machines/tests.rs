//! Unit tests of the machine planner.
//!
//! A small "world" (a cluster, its machines, their servers and nodes, etcd's members)
//! is built by tiny helpers; a summarizer renders a plan as short strings; tables of
//! cases pin the exact steps. A tiny simulation applies the plans to the world round
//! after round (machines are recorded, get servers, their nodes join, drains finish,
//! servers go) to check rollouts from start to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kaas_cloud::{CloudResource, ResourceKind};
use kaas_core::cluster::{CLUSTER_FINALIZER, ControlPlane};
use kaas_core::machine::{CLUSTER_LABEL, POOL_LABEL};
use kaas_core::naming::{cluster_tag, machine_tag};
use kaas_core::{ClusterSpec, ObjectMeta, OwnerRef};

use super::*;
use crate::cluster::plan::*;
use kaas_core::stack::{ClusterStack, StackCatalog, minor_of};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const UID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const LB_VIP: &str = "10.0.0.100";
const FIP: &str = "203.0.113.10";

const V132: &str = "v1.35.9";
const IMG132: &str = "ubuntu-2404-kube-v1.35.9";
const V133: &str = "v1.36.4";
const IMG133: &str = "ubuntu-2404-kube-v1.36.4";
const V134: &str = "v1.37.1";
const IMG134: &str = "ubuntu-2404-kube-v1.37.1";

/// When the static cases observe the world (seconds since the epoch).
const NOW: i64 = 1_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    at(NOW - secs)
}

/// Cluster `demo` on `stack` with `cp` control planes and the given pools; it has its
/// uid and finalizer and has been initialized once.
fn mk_cluster(stack: &str, cp: u32, pools: &[(&str, u32)]) -> Cluster {
    let spec = ClusterSpec {
        stack: stack.to_owned(),
        control_plane: ControlPlane {
            replicas: cp,
            ..ControlPlane::default()
        },
        node_pools: pools
            .iter()
            .map(|(name, n)| NodePool::new(name, *n))
            .collect(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::new("demo", spec);
    cluster.metadata.tenant = "default".to_owned();
    cluster.metadata.uid = UID.to_owned();
    cluster.metadata.generation = 1;
    cluster.metadata.created_at = Some(at(0));
    cluster.metadata.finalizers = vec![CLUSTER_FINALIZER.to_owned()];
    cluster.status.kubernetes_version = Some(V132.to_owned());
    cluster
}

fn cluster_tags() -> Vec<String> {
    vec![cluster_tag(UID), "kaas-cluster-name=demo".to_owned()]
}

/// Every wanted role, ACTIVE; the load balancer and floating IP have their addresses.
fn full_infra(cluster: &Cluster) -> Vec<CloudResource> {
    wanted_roles(cluster)
        .into_iter()
        .map(|(_, kind, name)| CloudResource {
            kind,
            id: format!("{}:{name}", kind.as_str()),
            name,
            tags: cluster_tags(),
            status: ResourceStatus::Active,
            address: match kind {
                ResourceKind::LoadBalancer => Some(LB_VIP.to_owned()),
                ResourceKind::FloatingIp => Some(FIP.to_owned()),
                _ => None,
            },
        })
        .collect()
}

fn catalog() -> &'static StackCatalog {
    static CATALOG: std::sync::OnceLock<StackCatalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| StackCatalog::builtin().unwrap())
}

/// The cluster's stack as the controller would look it up.
fn stack_of(cluster: &Cluster) -> Option<ClusterStack> {
    catalog().find(&cluster.spec.stack).cloned()
}

fn image_of(version: &str) -> String {
    catalog().for_version(version).map_or_else(
        || format!("ubuntu-2404-kube-{version}"),
        |s| s.image().to_owned(),
    )
}

fn cp_spec(cluster: &Cluster, role: MachineRole, version: &str) -> MachineSpec {
    MachineSpec {
        pool: CONTROL_PLANE_POOL.to_owned(),
        role,
        version: version.to_owned(),
        image: image_of(version),
        flavor: cluster.spec.control_plane.flavor.clone(),
        zone: None,
    }
}

fn worker_spec(cluster: &Cluster, pool: &str, version: &str) -> MachineSpec {
    let flavor = cluster
        .spec
        .node_pools
        .iter()
        .find(|p| p.name == pool)
        .map_or_else(|| "m1.medium".to_owned(), |p| p.flavor.clone());
    MachineSpec {
        pool: pool.to_owned(),
        role: MachineRole::Worker,
        version: version.to_owned(),
        image: image_of(version),
        flavor,
        zone: None,
    }
}

/// Machine `demo-POOL-UID` of `cluster`, owned by it, with the machine finalizer.
fn mk_machine(cluster: &Cluster, spec: MachineSpec, uid: &str, created: DateTime<Utc>) -> Machine {
    let metadata = ObjectMeta {
        name: format!("{}-{}-{uid}", cluster.metadata.name, spec.pool),
        tenant: cluster.metadata.tenant.clone(),
        uid: uid.to_owned(),
        generation: 1,
        labels: BTreeMap::from([
            (CLUSTER_LABEL.to_owned(), cluster.metadata.name.clone()),
            (POOL_LABEL.to_owned(), spec.pool.clone()),
        ]),
        created_at: Some(created),
        finalizers: vec![MACHINE_FINALIZER.to_owned()],
        owner: Some(OwnerRef {
            kind: "Cluster".to_owned(),
            name: cluster.metadata.name.clone(),
            uid: cluster.metadata.uid.clone(),
        }),
        ..ObjectMeta::default()
    };
    Machine::new(metadata, spec)
}

fn created(mut m: Machine, secs_ago: i64) -> Machine {
    m.metadata.created_at = Some(ago(secs_ago));
    m
}

/// Marked for deletion a minute ago.
fn leaving(mut m: Machine) -> Machine {
    m.metadata.deletion_requested_at = Some(ago(60));
    m
}

fn drained(mut m: Machine) -> Machine {
    m.status.drained = true;
    m
}

fn server_id(m: &Machine) -> String {
    format!("srv-{}", m.metadata.uid)
}

fn mk_server(m: &Machine, status: ResourceStatus, address: Option<String>) -> CloudResource {
    let mut tags = cluster_tags();
    tags.push(machine_tag(&m.metadata.uid));
    CloudResource {
        kind: ResourceKind::Server,
        id: server_id(m),
        name: m.metadata.name.clone(),
        tags,
        status,
        address,
    }
}

/// The node of `m`: named like the machine (its hostname), on its server.
fn mk_node(m: &Machine, ready: bool, since: Option<DateTime<Utc>>) -> Node {
    Node {
        name: m.metadata.name.clone(),
        provider_id: format!("openstack:///{}", server_id(m)),
        ready,
        kubelet_version: m.spec.version.clone(),
        last_transition: since,
        unschedulable: false,
        labels: Default::default(),
    }
}

fn boom() -> ResourceStatus {
    ResourceStatus::Error {
        message: "boom".to_owned(),
    }
}

/// How far a machine got.
#[derive(Debug, Clone, Copy, PartialEq)]
enum S {
    /// Recorded, no server.
    NoServer,
    /// Server ACTIVE, no node yet.
    Booting,
    /// Server ACTIVE, node Ready.
    Ready,
    /// Server ACTIVE, node NotReady for that many seconds.
    NotReadyFor(i64),
    /// Server ACTIVE, node NotReady since an unknown time.
    NotReadyUnknown,
    /// Server in ERROR; the node never joined.
    Broken,
    /// Server in ERROR after the node had joined (`status.nodeName` is set); the node is
    /// no longer listed.
    BrokenAfterJoin,
}

/// A cluster and everything observed about it, plus what the simulation needs.
struct World {
    cluster: Cluster,
    machines: Vec<Machine>,
    servers: Vec<CloudResource>,
    nodes: Vec<Node>,
    /// `None`: unknown.
    etcd: Option<Vec<String>>,
    /// Whether the workload API answers (`nodes` is observed).
    api: bool,
    now: DateTime<Utc>,
    time_scale: f64,
    /// Rounds a new server boots before its node is Ready (simulation).
    boot_delay: u32,
    /// How many of the next servers created fail to boot (simulation).
    failing_servers: u32,
    booting: BTreeMap<String, u32>,
    next: u32,
    ips: u32,
}

impl World {
    fn new(cluster: Cluster) -> Self {
        Self {
            cluster,
            machines: Vec::new(),
            servers: Vec::new(),
            nodes: Vec::new(),
            etcd: Some(Vec::new()),
            api: true,
            now: at(NOW),
            time_scale: 1.0,
            boot_delay: 0,
            failing_servers: 0,
            booting: BTreeMap::new(),
            next: 0,
            ips: 0,
        }
    }

    fn ip(&mut self) -> String {
        self.ips += 1;
        format!("10.0.{}.{}", 1 + self.ips / 200, 1 + self.ips % 200)
    }

    /// A control plane (the init machine for uid `c1`), created ten minutes ago.
    fn cp(&self, uid: &str, version: &str) -> Machine {
        let role = if uid == "c1" {
            MachineRole::Init
        } else {
            MachineRole::ControlPlane
        };
        mk_machine(
            &self.cluster,
            cp_spec(&self.cluster, role, version),
            uid,
            ago(600),
        )
    }

    /// A worker of `pool`, created ten minutes ago.
    fn worker(&self, pool: &str, uid: &str, version: &str) -> Machine {
        mk_machine(
            &self.cluster,
            worker_spec(&self.cluster, pool, version),
            uid,
            ago(600),
        )
    }

    fn add(&mut self, mut m: Machine, s: S) -> &mut Self {
        let name = m.metadata.name.clone();
        let server = match s {
            S::NoServer => None,
            S::Broken | S::BrokenAfterJoin => Some(boom()),
            _ => Some(ResourceStatus::Active),
        };
        if let Some(status) = server {
            let address = (status == ResourceStatus::Active).then(|| self.ip());
            self.servers.push(mk_server(&m, status, address));
        }
        let node = match s {
            S::Ready => Some((true, None)),
            S::NotReadyFor(secs) => Some((false, Some(self.now - chrono::Duration::seconds(secs)))),
            S::NotReadyUnknown => Some((false, None)),
            _ => None,
        };
        if let Some((ready, since)) = node {
            self.nodes.push(mk_node(&m, ready, since));
            m.status.node_name = Some(name.clone());
            if m.is_control_plane()
                && let Some(etcd) = &mut self.etcd
            {
                etcd.push(name.clone());
            }
        }
        if s == S::BrokenAfterJoin {
            m.status.node_name = Some(name);
        }
        self.machines.push(m);
        self
    }

    fn machine(&self, name: &str) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.metadata.name == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    fn machine_mut(&mut self, name: &str) -> &mut Machine {
        self.machines
            .iter_mut()
            .find(|m| m.metadata.name == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    fn has_server(&self, m: &Machine) -> bool {
        let id = server_id(m);
        self.servers.iter().any(|s| s.id == id)
    }

    fn node_ready(&self, m: &Machine) -> bool {
        let id = server_id(m);
        self.has_server(m)
            && self
                .nodes
                .iter()
                .any(|n| n.ready && n.server_id() == Some(id.as_str()))
    }

    fn live<'w>(&'w self, pool: &str) -> Vec<&'w Machine> {
        self.machines
            .iter()
            .filter(|m| m.spec.pool == pool && !m.metadata.is_deleting())
            .collect()
    }

    fn observed(&self) -> Observed {
        let mut resources = full_infra(&self.cluster);
        resources.extend(self.servers.iter().cloned());
        Observed {
            machines: self.machines.clone(),
            resources,
            nodes: self.api.then(|| self.nodes.clone()),
            api_unreachable: (!self.api).then(|| "connection refused".to_owned()),
            // Join tokens are planned on their own (plan_join_tokens, tested below).
            join_tokens: None,
            addons: None,
            registry: None,
            etcd_members: self.etcd.clone(),
            pki_exists: true,
            stack: stack_of(&self.cluster),
            now: self.now,
            time_scale: self.time_scale,
        }
    }

    /// Plans, with the load balancer's members recorded as the live control planes
    /// give them (so that only changes made by this plan show up).
    fn plan(&mut self) -> Plan {
        let observed = self.observed();
        let infra = classify(&self.cluster, &observed);
        let cps: Vec<&Machine> = observed
            .machines
            .iter()
            .filter(|m| m.is_control_plane() && !m.metadata.is_deleting())
            .collect();
        self.cluster.status.api_members = member_strings(&desired_members(&cps, &infra));
        plan(&self.cluster, &observed)
    }

    /// The removal steps of the leaving machine `name` alone.
    fn removal(&self, name: &str) -> Plan {
        let observed = self.observed();
        let infra = classify(&self.cluster, &observed);
        let m = observed
            .machines
            .iter()
            .find(|m| m.metadata.name == name)
            .unwrap();
        let mut plan = Plan::default();
        plan_machine_removal(&self.cluster, &observed, m, &infra, &mut plan);
        plan
    }

    /// Pretends the executor ran the plan.
    fn apply(&mut self, plan: &Plan) {
        for step in &plan.steps {
            match step {
                Step::CreateMachine { spec } => {
                    self.next += 1;
                    let uid = format!("n{:02}", self.next);
                    let m = mk_machine(&self.cluster, spec.clone(), &uid, self.now);
                    self.machines.push(m);
                }
                Step::CreateServer { machine, .. } => {
                    let m = self.machine(machine).clone();
                    assert!(!self.has_server(&m), "a second server for {machine}");
                    if self.failing_servers > 0 {
                        self.failing_servers -= 1;
                        self.servers.push(mk_server(&m, boom(), None));
                        continue;
                    }
                    let ip = self.ip();
                    self.servers
                        .push(mk_server(&m, ResourceStatus::Active, Some(ip)));
                    self.booting.insert(machine.clone(), self.boot_delay);
                }
                Step::DeleteMachine {
                    name,
                    reason,
                    remediation,
                } => {
                    let now = self.now;
                    let m = self.machine_mut(name);
                    assert!(!m.metadata.is_deleting(), "{name} deleted twice");
                    m.metadata.deletion_requested_at = Some(now);
                    m.status.deletion_reason = Some(reason.clone());
                    m.status.remediation = *remediation;
                }
                Step::DrainNode { machine, .. } => {
                    // The first call starts the drain, the second finds it done.
                    let now = self.now;
                    let m = self.machine_mut(machine);
                    if m.status.drain_started_at.is_none() {
                        m.status.drain_started_at = Some(now);
                    } else {
                        m.status.drained = true;
                    }
                }
                Step::AbandonDrain { machine, .. } => {
                    self.machine_mut(machine).status.drained = true
                }
                Step::RemoveEtcdMember { node, .. } => {
                    let etcd = self.etcd.as_mut().unwrap();
                    assert!(etcd.contains(node), "{node} is no etcd member");
                    etcd.retain(|n| n != node);
                }
                Step::DeleteResource {
                    kind: ResourceKind::Server,
                    id,
                    ..
                } => {
                    for s in self.servers.iter_mut().filter(|s| &s.id == id) {
                        s.status = ResourceStatus::Deleting;
                    }
                }
                Step::ReleaseMachine { name } => {
                    let m = self.machine(name);
                    assert!(!self.has_server(m), "{name} released with its server");
                    self.machines.retain(|m| &m.metadata.name != name);
                }
                Step::SetLoadBalancerMembers { .. } => {}
                other => panic!("unexpected step {other:?}"),
            }
        }
    }

    /// Thirty seconds later: servers being deleted are gone, booted nodes are Ready.
    fn tick(&mut self) {
        self.now += chrono::Duration::seconds(30);
        let gone: Vec<String> = self
            .servers
            .iter()
            .filter(|s| s.status == ResourceStatus::Deleting)
            .map(|s| s.id.clone())
            .collect();
        self.servers.retain(|s| !gone.contains(&s.id));
        self.nodes
            .retain(|n| !gone.iter().any(|id| n.server_id() == Some(id.as_str())));
        let mut joined = Vec::new();
        for (name, left) in &mut self.booting {
            if *left == 0 {
                joined.push(name.clone());
            } else {
                *left -= 1;
            }
        }
        for name in joined {
            self.booting.remove(&name);
            let Some(i) = self.machines.iter().position(|m| m.metadata.name == name) else {
                continue;
            };
            if !self.has_server(&self.machines[i]) {
                continue;
            }
            let node = mk_node(&self.machines[i], true, None);
            self.nodes.push(node);
            self.machines[i].status.node_name = Some(name.clone());
            if self.machines[i].is_control_plane()
                && let Some(etcd) = &mut self.etcd
            {
                etcd.push(name);
            }
        }
    }

    /// Plans and applies until the plan is settled; `check` sees every plan and the
    /// world right after it was applied. Returns the number of rounds.
    fn run(&mut self, max_rounds: usize, mut check: impl FnMut(&World, &Plan)) -> usize {
        for round in 0..max_rounds {
            let plan = self.plan();
            if plan.is_settled() {
                return round;
            }
            self.apply(&plan);
            check(self, &plan);
            self.tick();
        }
        let names: Vec<String> = self
            .machines
            .iter()
            .map(|m| {
                format!(
                    "{} {} {:?}",
                    m.metadata.name, m.spec.version, m.metadata.deletion_requested_at
                )
            })
            .collect();
        panic!("not settled after {max_rounds} rounds: {names:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Plans as short strings
// ---------------------------------------------------------------------------------------

fn show(step: &Step) -> String {
    match step {
        Step::CreateMachine { spec } if spec.role == MachineRole::Worker => {
            format!("create worker {} {}", spec.pool, spec.version)
        }
        Step::CreateMachine { spec } => format!("create {} {}", spec.role.as_str(), spec.version),
        Step::DeleteMachine {
            name,
            remediation: true,
            ..
        } => format!("remediate {name}"),
        Step::DeleteMachine { name, .. } => format!("delete {name}"),
        Step::DrainNode { node, .. } => format!("drain {node}"),
        Step::AbandonDrain { node, .. } => format!("abandon-drain {node}"),
        Step::RemoveEtcdMember { node, .. } => format!("remove-etcd-member {node}"),
        Step::EnsurePki => "ensure-pki".to_owned(),
        Step::DeleteResource { kind, name, .. } => format!("delete-{} {name}", kind.as_str()),
        Step::ReleaseMachine { name } => format!("release {name}"),
        Step::CreateServer { machine, .. } => format!("create-server {machine}"),
        Step::SetLoadBalancerMembers { members, .. } => format!("set-members {}", members.len()),
        other => format!("{other:?}"),
    }
}

/// The steps, sorted, so that tests compare sets (with counts); a step chained to the
/// one before it reads `then …`.
fn steps(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| match plan.chained.contains(&i) {
            true => format!("then {}", show(step)),
            false => show(step),
        })
        .collect();
    names.sort();
    names
}

#[track_caller]
fn assert_steps(plan: &Plan, expected: &[&str], what: &str) {
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(
        steps(plan),
        want,
        "{what}; waiting: {:?}; blocked: {:?}",
        plan.waiting,
        plan.remediation_blocked
    );
}

#[track_caller]
fn assert_waiting_for(plan: &Plan, needle: &str) {
    assert!(
        plan.waiting.iter().any(|w| w.contains(needle)),
        "expected to wait for {needle:?}, waiting: {:?}",
        plan.waiting
    );
}

/// `(reason, remediation)` of the DeleteMachine step for `name`.
fn deletion<'p>(plan: &'p Plan, name: &str) -> (&'p str, bool) {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::DeleteMachine {
                name: n,
                reason,
                remediation,
            } if n == name => Some((reason.as_str(), *remediation)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no DeleteMachine {name}: {:#?}", plan.steps))
}

fn created_specs(plan: &Plan) -> Vec<&MachineSpec> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateMachine { spec } => Some(spec),
            _ => None,
        })
        .collect()
}

fn deleted_names(plan: &Plan) -> Vec<&str> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::DeleteMachine { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Targets, outdated machines, maxUnhealthy
// ---------------------------------------------------------------------------------------

struct TargetCase {
    what: &'static str,
    stack: &'static str,
    /// Control planes: version, leaving.
    cps: &'static [(&'static str, bool)],
    /// What the pools' machines should be.
    version: &'static str,
    image: &'static str,
    rolling: bool,
}

#[test]
fn targets_follow_the_stack_and_keep_workers_at_the_oldest_control_plane() {
    let cases = [
        TargetCase {
            what: "no control plane yet",
            stack: "scs-1.36",
            cps: &[],
            version: V133,
            image: IMG133,
            rolling: false,
        },
        TargetCase {
            what: "every control plane current",
            stack: "scs-1.36",
            cps: &[(V133, false), (V133, false), (V133, false)],
            version: V133,
            image: IMG133,
            rolling: false,
        },
        TargetCase {
            what: "stack changed, nothing replaced yet",
            stack: "scs-1.36",
            cps: &[(V132, false), (V132, false), (V132, false)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "one replaced, listed first",
            stack: "scs-1.36",
            cps: &[(V133, false), (V132, false), (V132, false)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "two replaced, the old one listed last",
            stack: "scs-1.36",
            cps: &[(V133, false), (V133, false), (V132, false)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "the surge machine joined",
            stack: "scs-1.36",
            cps: &[(V132, false), (V132, false), (V132, false), (V133, false)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "only a leaving control plane is outdated",
            stack: "scs-1.36",
            cps: &[(V133, false), (V133, false), (V133, false), (V132, true)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "a current control plane is leaving",
            stack: "scs-1.36",
            cps: &[(V133, false), (V133, false), (V133, true)],
            version: V133,
            image: IMG133,
            rolling: false,
        },
        TargetCase {
            what: "every control plane current on scs-1.37",
            stack: "scs-1.37",
            cps: &[(V134, false), (V134, false), (V134, false)],
            version: V134,
            image: IMG134,
            rolling: false,
        },
        TargetCase {
            what: "the oldest of three versions",
            stack: "scs-1.37",
            cps: &[(V134, false), (V133, false), (V132, false)],
            version: V132,
            image: IMG132,
            rolling: true,
        },
        TargetCase {
            what: "one minor behind the new stack",
            stack: "scs-1.37",
            cps: &[(V134, false), (V133, false)],
            version: V133,
            image: IMG133,
            rolling: true,
        },
        TargetCase {
            what: "newest listed last",
            stack: "scs-1.37",
            cps: &[(V133, false), (V134, false)],
            version: V133,
            image: IMG133,
            rolling: true,
        },
    ];
    for case in cases {
        let mut cluster = mk_cluster(case.stack, 3, &[("workers", 3), ("gpu", 1)]);
        cluster.spec.node_pools[1].flavor = "g1.xlarge".to_owned();
        cluster.spec.control_plane.flavor = "m1.large".to_owned();
        let mut w = World::new(cluster);
        for (i, (version, going)) in case.cps.iter().enumerate() {
            let m = w.cp(&format!("c{}", i + 1), version);
            w.add(if *going { leaving(m) } else { m }, S::Ready);
        }
        // Workers, whatever their versions, do not move the targets.
        for (i, version) in [V132, V133, V134].iter().enumerate() {
            let m = w.worker("workers", &format!("w{i}"), version);
            w.add(m, S::Ready);
        }
        let t = targets(&w.cluster, stack_of(&w.cluster).as_ref(), &w.machines).expect(case.what);
        let stack = catalog().find(case.stack).cloned().unwrap();
        assert_eq!(
            t.control_plane,
            MachineSpec {
                pool: CONTROL_PLANE_POOL.to_owned(),
                role: MachineRole::ControlPlane,
                version: stack.kubernetes_version().to_owned(),
                image: stack.image().to_owned(),
                flavor: "m1.large".to_owned(),
                zone: None,
            },
            "{}",
            case.what
        );
        assert_eq!(t.control_plane_rolling, case.rolling, "{}", case.what);
        let pools: Vec<(String, MachineSpec)> = [("workers", "m1.medium"), ("gpu", "g1.xlarge")]
            .iter()
            .map(|(pool, flavor)| {
                (
                    (*pool).to_owned(),
                    MachineSpec {
                        pool: (*pool).to_owned(),
                        role: MachineRole::Worker,
                        version: case.version.to_owned(),
                        image: case.image.to_owned(),
                        flavor: (*flavor).to_owned(),
                        zone: None,
                    },
                )
            })
            .collect();
        assert_eq!(t.pools, pools, "{}", case.what);
    }
}

#[test]
fn a_control_plane_flavor_change_rolls_the_control_plane_but_not_the_version() {
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 3)]));
    for uid in ["c1", "c2", "c3"] {
        let m = w.cp(uid, V133);
        w.add(m, S::Ready);
    }
    w.cluster.spec.control_plane.flavor = "m1.large".to_owned();
    let t = targets(&w.cluster, stack_of(&w.cluster).as_ref(), &w.machines).unwrap();
    assert!(t.control_plane_rolling);
    assert_eq!(t.control_plane.flavor, "m1.large");
    let pool = t.pool("workers").unwrap();
    assert_eq!((pool.version.as_str(), pool.image.as_str()), (V133, IMG133));
    assert_eq!(pool.flavor, "m1.medium");
}

#[test]
fn targets_of_an_unknown_stack_are_none() {
    let w = World::new(mk_cluster("scs-0.99", 3, &[("workers", 3)]));
    assert_eq!(
        targets(&w.cluster, stack_of(&w.cluster).as_ref(), &[]),
        None
    );
}

#[test]
fn targets_of_a_machine_are_its_parts() {
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 3), ("gpu", 1)]));
    w.cluster.spec.node_pools[1].flavor = "g1.xlarge".to_owned();
    let t = targets(&w.cluster, stack_of(&w.cluster).as_ref(), &[]).unwrap();
    let init = w.cp("c1", V133);
    let cp = w.cp("c2", V133);
    let gpu = w.worker("gpu", "g1", V133);
    let stray = w.worker("gone", "x1", V133);
    assert_eq!(t.of(&init), Some(&t.control_plane));
    assert_eq!(t.of(&cp), Some(&t.control_plane));
    assert_eq!(t.of(&gpu).map(|s| s.flavor.as_str()), Some("g1.xlarge"));
    assert_eq!(t.of(&stray), None);
    assert_eq!(t.pool("nope"), None);
}

#[test]
fn a_machine_is_outdated_by_version_image_or_flavor_only() {
    let w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 3)]));
    let target = worker_spec(&w.cluster, "workers", V133);
    type Edit = fn(&mut MachineSpec);
    let cases: [(&str, Edit, bool); 7] = [
        ("same", |_| {}, false),
        ("version", |s| s.version = V132.to_owned(), true),
        ("image", |s| s.image = "custom".to_owned(), true),
        ("flavor", |s| s.flavor = "m1.large".to_owned(), true),
        ("zone", |s| s.zone = Some("az2".to_owned()), false),
        ("role", |s| s.role = MachineRole::ControlPlane, false),
        ("pool", |s| s.pool = "other".to_owned(), false),
    ];
    for (what, change, outdated) in cases {
        let mut spec = target.clone();
        change(&mut spec);
        let m = mk_machine(&w.cluster, spec, "m1", ago(10));
        assert_eq!(is_outdated(&m, &target), outdated, "{what}");
    }
}

#[test]
fn max_unhealthy_is_a_count_or_a_rounded_down_percentage() {
    for (text, replicas, expected) in [
        ("40%", 3, 1),
        ("40%", 5, 2),
        ("40%", 10, 4),
        ("40%", 2, 0),
        ("40%", 1, 0),
        ("100%", 3, 3),
        ("0%", 5, 0),
        ("67%", 3, 2),
        ("2", 3, 2),
        ("0", 3, 0),
        ("7", 3, 7),
        ("x%", 3, 0),
        ("two", 3, 0),
        ("", 3, 0),
    ] {
        assert_eq!(
            max_unhealthy(text, replicas),
            expected,
            "{text} of {replicas}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Control plane rollout
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Leave {
    No,
    Undrained,
    Drained,
}

/// A control plane of the rollout tables.
#[derive(Debug, Clone, Copy)]
struct Cp {
    uid: &'static str,
    version: &'static str,
    state: S,
    /// Created that many seconds ago.
    age: i64,
    leave: Leave,
}

fn cp_entry(uid: &'static str, version: &'static str, state: S, age: i64) -> Cp {
    Cp {
        uid,
        version,
        state,
        age,
        leave: Leave::No,
    }
}

fn add_cp(w: &mut World, cp: Cp) {
    let mut m = created(w.cp(cp.uid, cp.version), cp.age);
    match cp.leave {
        Leave::No => {}
        Leave::Undrained => m = leaving(m),
        Leave::Drained => m = drained(leaving(m)),
    }
    w.add(m, cp.state);
}

/// A cluster moved from scs-1.35 to scs-1.36: `cps` as given, up to three Ready 1.35
/// workers (pool `workers` of `workers` replicas).
fn upgrade_world(replicas: u32, workers: u32, cps: &[Cp]) -> World {
    let mut w = World::new(mk_cluster("scs-1.35", replicas, &[("workers", workers)]));
    for cp in cps {
        add_cp(&mut w, *cp);
    }
    for (i, uid) in ["w1", "w2", "w3"]
        .iter()
        .enumerate()
        .take(workers.min(3) as usize)
    {
        let m = created(w.worker("workers", uid, V132), 1000 - i as i64);
        w.add(m, S::Ready);
    }
    w.cluster.spec.stack = "scs-1.36".to_owned();
    w
}

// The old control planes: c2 is the oldest, c1 (the init machine) next, then c3.
const C1: Cp = Cp {
    uid: "c1",
    version: V132,
    state: S::Ready,
    age: 2900,
    leave: Leave::No,
};
const C2: Cp = Cp {
    uid: "c2",
    age: 3000,
    ..C1
};
const C3: Cp = Cp {
    uid: "c3",
    age: 2800,
    ..C1
};

fn new_cp(uid: &'static str, state: S) -> Cp {
    cp_entry(uid, V133, state, 100)
}

#[test]
fn a_control_plane_rollout_surges_one_then_removes_the_oldest_outdated() {
    let settle = "the control plane to settle";
    let cases = vec![
        (
            "all ready and as many as wanted: surge one",
            vec![C1, C2, C3],
            vec!["create control-plane v1.36.4"],
            None,
        ),
        (
            "the surge machine is Ready: the oldest outdated goes",
            vec![C1, C2, C3, new_cp("n1", S::Ready)],
            vec!["delete demo-control-plane-c2", "set-members 3"],
            None,
        ),
        (
            "the surge machine has no server yet",
            vec![C1, C2, C3, new_cp("n1", S::NoServer)],
            vec!["create-server demo-control-plane-n1"],
            Some(settle),
        ),
        (
            "the surge machine is booting",
            vec![C1, C2, C3, new_cp("n1", S::Booting)],
            vec![],
            Some(settle),
        ),
        (
            "the surge machine is NotReady",
            vec![C1, C2, C3, new_cp("n1", S::NotReadyFor(10))],
            vec![],
            Some(settle),
        ),
        (
            "an old one is NotReady (not long enough to be replaced)",
            vec![
                C1,
                C2,
                Cp {
                    state: S::NotReadyFor(10),
                    ..C3
                },
            ],
            vec![],
            Some(settle),
        ),
        (
            "the oldest is leaving, not drained",
            vec![
                C1,
                Cp {
                    leave: Leave::Undrained,
                    ..C2
                },
                C3,
                new_cp("n1", S::Ready),
            ],
            vec!["drain demo-control-plane-c2"],
            Some(settle),
        ),
        (
            "the oldest is leaving, drained, still an etcd member",
            vec![
                C1,
                Cp {
                    leave: Leave::Drained,
                    ..C2
                },
                C3,
                new_cp("n1", S::Ready),
            ],
            vec![
                "remove-etcd-member demo-control-plane-c2",
                "then delete-server demo-control-plane-c2",
            ],
            Some(settle),
        ),
        (
            "the oldest is leaving without a server",
            vec![
                C1,
                Cp {
                    leave: Leave::Drained,
                    state: S::NoServer,
                    ..C2
                },
                C3,
                new_cp("n1", S::Ready),
            ],
            vec!["release demo-control-plane-c2"],
            Some(settle),
        ),
        (
            "the oldest is gone: surge the next",
            vec![C1, C3, new_cp("n1", S::Ready)],
            vec!["create control-plane v1.36.4"],
            None,
        ),
        (
            "the second surge machine is Ready: the next oldest (the init machine) goes",
            vec![C1, C3, new_cp("n1", S::Ready), new_cp("n2", S::Ready)],
            vec!["delete demo-control-plane-c1", "set-members 3"],
            None,
        ),
        (
            "the last old one is gone: the workers start",
            vec![
                new_cp("n1", S::Ready),
                new_cp("n2", S::Ready),
                new_cp("n3", S::Ready),
            ],
            vec!["create worker workers v1.36.4"],
            None,
        ),
        (
            "one short of the replicas while rolling: create, do not delete",
            vec![C1, new_cp("n1", S::Ready)],
            vec!["create control-plane v1.36.4"],
            None,
        ),
    ];
    for (what, cps, expected, waiting) in cases {
        let mut w = upgrade_world(3, 3, &cps);
        let plan = w.plan();
        assert_steps(&plan, &expected, what);
        if let Some(needle) = waiting {
            assert_waiting_for(&plan, needle);
        }
        let cp_creations = created_specs(&plan)
            .iter()
            .filter(|s| s.role != MachineRole::Worker)
            .count();
        assert!(cp_creations <= 1, "{what}");
        for spec in created_specs(&plan) {
            if spec.role == MachineRole::ControlPlane {
                assert_eq!(spec, &cp_spec(&w.cluster, MachineRole::ControlPlane, V133));
            }
        }
        for name in deleted_names(&plan) {
            assert_eq!(
                deletion(&plan, name),
                (
                    "replaced by a machine with v1.36.4 (ubuntu-2404-kube-v1.36.4)",
                    false
                ),
                "{what}"
            );
        }
    }
}

#[test]
fn a_single_control_plane_is_replaced_surge_first() {
    for (what, cps, expected) in [
        (
            "the init machine is outdated",
            vec![C1],
            vec!["create control-plane v1.36.4"],
        ),
        (
            "its replacement is booting",
            vec![C1, new_cp("n1", S::Booting)],
            vec![],
        ),
        (
            "its replacement is Ready",
            vec![C1, new_cp("n1", S::Ready)],
            vec!["delete demo-control-plane-c1", "set-members 1"],
        ),
    ] {
        let mut w = upgrade_world(1, 0, &cps);
        let plan = w.plan();
        assert_steps(&plan, &expected, what);
    }
}

#[test]
fn control_plane_scaling_adds_and_removes_one_at_a_time() {
    let current = |uid, age| cp_entry(uid, V133, S::Ready, age);
    for (what, replicas, cps, expected) in [
        (
            "3 to 5: one at a time",
            5,
            vec![current("c1", 500), current("c2", 400), current("c3", 300)],
            vec!["create control-plane v1.36.4"],
        ),
        (
            "4 of 5, the fourth booting: wait",
            5,
            vec![
                current("c1", 500),
                current("c2", 400),
                current("c3", 300),
                cp_entry("c4", V133, S::Booting, 10),
            ],
            vec![],
        ),
        (
            "5 to 3: the newest goes",
            3,
            vec![
                current("c1", 500),
                current("c5", 100),
                current("c2", 400),
                current("c4", 200),
                current("c3", 300),
            ],
            vec!["delete demo-control-plane-c5", "set-members 4"],
        ),
        (
            "5 to 3 while one leaves: wait",
            3,
            vec![
                current("c1", 500),
                Cp {
                    leave: Leave::Drained,
                    state: S::NotReadyFor(10),
                    ..current("c5", 100)
                },
                current("c2", 400),
                current("c4", 200),
                current("c3", 300),
            ],
            vec![
                "remove-etcd-member demo-control-plane-c5",
                "then delete-server demo-control-plane-c5",
            ],
        ),
    ] {
        let mut w = World::new(mk_cluster("scs-1.36", replicas, &[]));
        for cp in cps {
            add_cp(&mut w, cp);
        }
        let plan = w.plan();
        assert_steps(&plan, &expected, what);
        for name in deleted_names(&plan) {
            assert_eq!(
                deletion(&plan, name),
                ("control plane scaled down to 3", false)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Workers follow the control plane
// ---------------------------------------------------------------------------------------

#[test]
fn workers_keep_the_old_version_while_the_control_plane_rolls() {
    // (what, control planes, steps with 3 workers wanted, steps with 4 wanted)
    let cases = vec![
        (
            "nothing replaced yet",
            vec![C1, C2, C3],
            vec!["create control-plane v1.36.4"],
            vec![
                "create control-plane v1.36.4",
                "create worker workers v1.35.9",
            ],
        ),
        (
            "the surge control plane is Ready",
            vec![C1, C2, C3, new_cp("n1", S::Ready)],
            vec!["delete demo-control-plane-c2", "set-members 3"],
            vec![
                "delete demo-control-plane-c2",
                "set-members 3",
                "create worker workers v1.35.9",
            ],
        ),
        (
            "two replaced",
            vec![C3, new_cp("n1", S::Ready), new_cp("n2", S::Ready)],
            vec!["create control-plane v1.36.4"],
            vec![
                "create control-plane v1.36.4",
                "create worker workers v1.35.9",
            ],
        ),
        (
            "the last old one is leaving",
            vec![
                Cp {
                    leave: Leave::Drained,
                    ..C3
                },
                new_cp("n1", S::Ready),
                new_cp("n2", S::Ready),
                new_cp("n3", S::Ready),
            ],
            vec![
                "remove-etcd-member demo-control-plane-c3",
                "then delete-server demo-control-plane-c3",
            ],
            vec![
                "remove-etcd-member demo-control-plane-c3",
                "then delete-server demo-control-plane-c3",
                "create worker workers v1.35.9",
            ],
        ),
        (
            // Scaling up while outdated machines exist stays within maxSurge: 4 + 1 - 3.
            "the control plane is done",
            vec![
                new_cp("n1", S::Ready),
                new_cp("n2", S::Ready),
                new_cp("n3", S::Ready),
            ],
            vec!["create worker workers v1.36.4"],
            vec![
                "create worker workers v1.36.4",
                "create worker workers v1.36.4",
            ],
        ),
    ];
    for (what, cps, three, four) in cases {
        for (replicas, expected) in [(3, three.clone()), (4, four)] {
            let mut w = upgrade_world(3, replicas, &cps);
            let plan = w.plan();
            assert_steps(&plan, &expected, &format!("{what}, {replicas} workers"));
            for spec in created_specs(&plan) {
                if spec.role == MachineRole::Worker {
                    assert_eq!(spec.image, image_of(&spec.version), "{what}");
                    assert_eq!(spec.flavor, "m1.medium");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The simulation: whole rollouts
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Change {
    Flavor,
    Version,
}

/// One simulated pool rollout.
#[derive(Debug, Clone, Copy)]
struct Rollout {
    max_surge: u32,
    max_unavailable: u32,
    replicas: u32,
    change: Change,
    boot_delay: u32,
    /// How many of the new servers fail to boot (and are retried).
    failing_servers: u32,
}

/// Runs `case` to its end, checking at every round that the pool stays within
/// maxSurge and maxUnavailable; returns the number of rounds.
fn simulate_pool_rollout(case: Rollout) -> usize {
    let ctx = format!("{case:?}");
    let mut cluster = mk_cluster("scs-1.36", 1, &[("workers", case.replicas)]);
    cluster.spec.rollout.max_surge = case.max_surge;
    cluster.spec.rollout.max_unavailable = case.max_unavailable;
    let mut w = World::new(cluster);
    w.boot_delay = case.boot_delay;
    w.failing_servers = case.failing_servers;
    let init = w.cp("c1", V133);
    w.add(init, S::Ready);
    let (old_version, new_flavor) = match case.change {
        Change::Flavor => (V133, "m1.large"),
        Change::Version => (V132, "m1.medium"),
    };
    for i in 0..case.replicas {
        let m = created(
            w.worker("workers", &format!("w{i}"), old_version),
            3600 - i64::from(i),
        );
        w.add(m, S::Ready);
    }
    w.cluster.spec.node_pools[0].flavor = new_flavor.to_owned();
    let updated = |m: &Machine| m.spec.version == V133 && m.spec.flavor == new_flavor;
    let replaced =
        format!("replaced by a machine with v1.36.4 (ubuntu-2404-kube-v1.36.4, {new_flavor})");

    let r = case.replicas as usize;
    let (surge, unavailable) = (case.max_surge as usize, case.max_unavailable as usize);
    let mut max_live = 0;
    let mut min_ready = r;
    let rounds = w.run(200, |w, plan| {
        let live = w.live("workers");
        let ready = live.iter().filter(|m| w.node_ready(m)).count();
        max_live = max_live.max(live.len());
        min_ready = min_ready.min(ready);
        assert!(
            live.len() <= r + surge,
            "{ctx}: {} live machines after {:#?}",
            live.len(),
            plan.steps
        );
        assert!(
            ready + unavailable >= r,
            "{ctx}: only {ready} ready machines after {:#?}",
            plan.steps
        );
        for spec in created_specs(plan) {
            assert_eq!(spec, &worker_spec(&w.cluster, "workers", V133), "{ctx}");
        }
        for name in deleted_names(plan) {
            assert!(!updated(w.machine(name)), "{ctx}: updated {name} deleted");
            assert_eq!(deletion(plan, name), (replaced.as_str(), false), "{ctx}");
        }
    });
    let workers: Vec<&Machine> = w
        .machines
        .iter()
        .filter(|m| !m.is_control_plane())
        .collect();
    assert_eq!(workers.len(), r, "{ctx}");
    assert!(
        workers
            .iter()
            .all(|m| updated(m) && w.node_ready(m) && !m.metadata.is_deleting()),
        "{ctx}"
    );
    assert_eq!(w.servers.len(), r + 1, "{ctx}");
    assert_eq!(
        w.failing_servers, 0,
        "{ctx}: not every failing server was retried"
    );
    // The rollout uses what it may...
    assert_eq!(max_live, r + surge, "{ctx}");
    assert_eq!(min_ready, r - unavailable, "{ctx}");
    // ... and takes no more than a few rounds per machine.
    let bound = r * (4 + case.boot_delay as usize) + 6 + 3 * case.failing_servers as usize;
    assert!(rounds <= bound, "{ctx}: {rounds} rounds (> {bound})");
    rounds
}

#[test]
fn pool_rollouts_stay_within_max_surge_and_max_unavailable() {
    let mut simulations = 0;
    for (max_surge, max_unavailable) in [(1, 0), (0, 1), (2, 0), (1, 1)] {
        for replicas in 3..=5 {
            for change in [Change::Flavor, Change::Version] {
                for boot_delay in [0, 2] {
                    for failing_servers in [0, 2] {
                        simulate_pool_rollout(Rollout {
                            max_surge,
                            max_unavailable,
                            replicas,
                            change,
                            boot_delay,
                            failing_servers,
                        });
                        simulations += 1;
                    }
                }
            }
        }
    }
    assert_eq!(simulations, 96);
}

#[test]
fn wider_limits_make_shorter_rollouts() {
    let rounds = |max_surge, max_unavailable| {
        simulate_pool_rollout(Rollout {
            max_surge,
            max_unavailable,
            replicas: 5,
            change: Change::Flavor,
            boot_delay: 1,
            failing_servers: 0,
        })
    };
    let (one, two, both) = (rounds(1, 0), rounds(2, 0), rounds(1, 1));
    assert!(two < one && both < one, "{one} {two} {both}");
}

#[test]
fn with_max_surge_zero_an_old_control_plane_leaves_before_its_replacement_comes() {
    for (cps, failing) in [(3u32, 0u32), (5, 0), (3, 2)] {
        let ctx = format!("{cps} control planes, {failing} failing servers");
        let mut w = World::new(mk_cluster("scs-1.35", cps, &[("workers", 1)]));
        w.cluster.spec.control_plane.max_surge = 0;
        w.failing_servers = failing;
        for i in 1..=cps {
            let m = created(w.cp(&format!("c{i}"), V132), 5000 - i64::from(i));
            w.add(m, S::Ready);
        }
        let m = created(w.worker("workers", "w1", V132), 4000);
        w.add(m, S::Ready);
        w.cluster.spec.stack = "scs-1.36".to_owned();
        let r = cps as usize;
        w.run(300, |w, plan| {
            // Never a control plane more than the replicas: no room is needed.
            let live = w.live(CONTROL_PLANE_POOL);
            assert!(live.len() <= r, "{ctx}: {} live", live.len());
            // etcd keeps its quorum throughout.
            let etcd = w.etcd.as_ref().unwrap();
            let healthy = etcd
                .iter()
                .filter(|n| w.nodes.iter().any(|x| &x.name == *n && x.ready))
                .count();
            assert!(healthy * 2 > etcd.len(), "{ctx}: {etcd:?}");
            let cp_changes = plan
                .steps
                .iter()
                .filter(|s| match s {
                    Step::CreateMachine { spec } => spec.role != MachineRole::Worker,
                    Step::DeleteMachine { name, .. } => w.machine(name).is_control_plane(),
                    _ => false,
                })
                .count();
            assert!(cp_changes <= 1, "{ctx}: {:#?}", plan.steps);
        });
        let cp_machines: Vec<&Machine> =
            w.machines.iter().filter(|m| m.is_control_plane()).collect();
        assert_eq!(cp_machines.len(), r, "{ctx}");
        assert!(
            w.machines
                .iter()
                .all(|m| m.spec.version == V133 && w.node_ready(m)),
            "{ctx}"
        );
        let mut members = w.etcd.clone().unwrap();
        members.sort();
        assert_eq!(members.len(), r, "{ctx}: {members:?}");
    }
}

#[test]
fn a_stack_upgrade_rolls_the_control_plane_one_at_a_time_then_the_workers() {
    for (cps, workers) in [(1u32, 2u32), (3, 3), (3, 0), (5, 2)] {
        for (boot_delay, failing) in [(0, 0), (2, 0), (1, 2)] {
            let ctx = format!(
                "{cps} control planes, {workers} workers, boot delay {boot_delay}, {failing} failing servers"
            );
            let mut w = World::new(mk_cluster("scs-1.35", cps, &[("workers", workers)]));
            w.boot_delay = boot_delay;
            w.failing_servers = failing;
            for i in 1..=cps {
                let m = created(w.cp(&format!("c{i}"), V132), 5000 - i64::from(i));
                w.add(m, S::Ready);
            }
            for i in 1..=workers {
                let m = created(
                    w.worker("workers", &format!("w{i}"), V132),
                    4000 - i64::from(i),
                );
                w.add(m, S::Ready);
            }
            w.cluster.spec.stack = "scs-1.36".to_owned();
            let (r, total) = (cps as usize, workers as usize);
            let rounds = w.run(300, |w, plan| {
                let cp_creations = created_specs(plan)
                    .iter()
                    .filter(|s| s.role != MachineRole::Worker)
                    .count();
                assert!(cp_creations <= 1, "{ctx}: {:#?}", plan.steps);
                let live = w.live(CONTROL_PLANE_POOL);
                assert!(live.len() <= r + 1, "{ctx}");
                let ready = live.iter().filter(|m| w.node_ready(m)).count();
                assert!(ready >= r, "{ctx}: {ready} ready control planes");
                // etcd keeps its quorum and never drops below the replicas.
                let etcd = w.etcd.as_ref().unwrap();
                let healthy = etcd
                    .iter()
                    .filter(|n| w.nodes.iter().any(|x| &x.name == *n && x.ready))
                    .count();
                assert!(healthy * 2 > etcd.len() && healthy >= r, "{ctx}: {etcd:?}");
                // No kubelet newer than any API server.
                let oldest_cp = w
                    .machines
                    .iter()
                    .filter(|m| m.is_control_plane())
                    .filter_map(|m| minor_of(&m.spec.version))
                    .min()
                    .unwrap();
                for m in w.machines.iter().filter(|m| !m.is_control_plane()) {
                    assert!(
                        minor_of(&m.spec.version).unwrap() <= oldest_cp,
                        "{ctx}: {} {}",
                        m.metadata.name,
                        m.spec.version
                    );
                }
                // Workers are not touched while an old control plane exists.
                let rolling = w
                    .machines
                    .iter()
                    .any(|m| m.is_control_plane() && m.spec.version != V133);
                if rolling {
                    assert!(
                        plan.steps.iter().all(|s| match s {
                            Step::CreateMachine { spec } => spec.role != MachineRole::Worker,
                            Step::DeleteMachine { name, .. } => w.machine(name).is_control_plane(),
                            _ => true,
                        }),
                        "{ctx}: {:#?}",
                        plan.steps
                    );
                }
            });
            let (cp_machines, worker_machines): (Vec<&Machine>, Vec<&Machine>) =
                w.machines.iter().partition(|m| m.is_control_plane());
            assert_eq!(cp_machines.len(), r, "{ctx}");
            assert_eq!(worker_machines.len(), total, "{ctx}");
            assert!(
                w.machines
                    .iter()
                    .all(|m| m.spec.version == V133 && m.spec.image == IMG133 && w.node_ready(m)),
                "{ctx}"
            );
            // Every old member left etcd before its server went.
            let mut members = w.etcd.clone().unwrap();
            members.sort();
            let mut names: Vec<String> = cp_machines
                .iter()
                .map(|m| m.metadata.name.clone())
                .collect();
            names.sort();
            assert_eq!(members, names, "{ctx}");
            assert_eq!(w.failing_servers, 0, "{ctx}");
            let bound = (r + total) * (7 + boot_delay as usize) + 10 + 3 * failing as usize;
            assert!(rounds <= bound, "{ctx}: {rounds} rounds (> {bound})");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scaling
// ---------------------------------------------------------------------------------------

/// One ready init machine on scs-1.36 and pool `workers` of `replicas`.
fn pool_world(replicas: u32) -> World {
    let mut w = World::new(mk_cluster("scs-1.36", 1, &[("workers", replicas)]));
    let init = w.cp("c1", V133);
    w.add(init, S::Ready);
    w
}

#[test]
fn scale_up_creates_every_missing_machine_at_once() {
    for (what, have, want, (surge, unavailable), api, creations) in [
        ("2 to 5", 2, 5, (1, 0), true, 3),
        ("2 to 5 without surge", 2, 5, (0, 1), true, 3),
        ("0 to 4", 0, 4, (1, 0), true, 4),
        ("3 to 3", 3, 3, (1, 0), true, 0),
        ("2 to 5, the API down", 2, 5, (1, 0), false, 0),
    ] {
        let mut w = pool_world(want);
        w.cluster.spec.rollout.max_surge = surge;
        w.cluster.spec.rollout.max_unavailable = unavailable;
        w.api = api;
        for i in 0..have {
            let m = w.worker("workers", &format!("w{i}"), V133);
            w.add(m, S::Ready);
        }
        let plan = w.plan();
        let expected = vec!["create worker workers v1.36.4"; creations];
        assert_steps(&plan, &expected, what);
        if !api {
            assert_waiting_for(
                &plan,
                "the workload API before creating machines of pool workers",
            );
        }
    }
}

#[test]
fn scale_up_of_several_pools_is_independent() {
    let mut w = World::new(mk_cluster("scs-1.36", 1, &[("a", 3), ("b", 2), ("c", 0)]));
    let init = w.cp("c1", V133);
    w.add(init, S::Ready);
    for (pool, uid) in [("a", "a1"), ("b", "b1"), ("b", "b2")] {
        let m = w.worker(pool, uid, V133);
        w.add(m, S::Ready);
    }
    let plan = w.plan();
    assert_steps(
        &plan,
        &["create worker a v1.36.4", "create worker a v1.36.4"],
        "pools",
    );
}

#[test]
fn scale_down_deletes_the_unready_first_then_the_newest() {
    // w1 oldest and Ready, w2 NotReady, w3 Ready, w4 booting, w5 newest and Ready.
    let order = [
        "demo-workers-w4",
        "demo-workers-w2",
        "demo-workers-w5",
        "demo-workers-w3",
        "demo-workers-w1",
    ];
    for replicas in (0..=5u32).rev() {
        let mut w = pool_world(replicas);
        for (uid, age, state) in [
            ("w1", 500, S::Ready),
            ("w2", 400, S::NotReadyFor(30)),
            ("w3", 300, S::Ready),
            ("w5", 100, S::Ready),
            ("w4", 200, S::Booting),
        ] {
            let m = created(w.worker("workers", uid, V133), age);
            w.add(m, state);
        }
        let plan = w.plan();
        let victims = &order[..5 - replicas as usize];
        assert_eq!(deleted_names(&plan), victims, "replicas {replicas}");
        let expected: Vec<String> = victims.iter().map(|v| format!("delete {v}")).collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_steps(&plan, &expected, &format!("replicas {replicas}"));
        for name in victims {
            assert_eq!(
                deletion(&plan, name),
                (
                    format!("pool workers scaled down to {replicas}").as_str(),
                    false
                )
            );
        }
    }
}

#[test]
fn machines_of_a_removed_pool_are_deleted() {
    let mut w = pool_world(1);
    for (pool, uid) in [("workers", "w1"), ("old", "o1"), ("old", "o2")] {
        let m = w.worker(pool, uid, V133);
        w.add(m, S::Ready);
    }
    let plan = w.plan();
    assert_steps(
        &plan,
        &["delete demo-old-o1", "delete demo-old-o2"],
        "removed pool",
    );
    assert_eq!(
        deletion(&plan, "demo-old-o1"),
        ("pool old was removed from the spec", false)
    );
}

// ---------------------------------------------------------------------------------------
// Remediation
// ---------------------------------------------------------------------------------------

struct Sick {
    what: &'static str,
    /// The three workers: state, created that many seconds ago.
    workers: [(S, i64); 3],
    max_unhealthy: &'static str,
    time_scale: f64,
    api: bool,
    expected: &'static [&'static str],
    /// A piece of the first remediation's reason.
    reason: &'static str,
    blocked: bool,
}

const FINE: (S, i64) = (S::Ready, 600);

fn sick(what: &'static str, w1: (S, i64), expected: &'static [&'static str]) -> Sick {
    Sick {
        what,
        workers: [w1, FINE, FINE],
        max_unhealthy: "40%",
        time_scale: 1.0,
        api: true,
        expected,
        reason: "",
        blocked: false,
    }
}

const REPLACED: &[&str] = &["remediate demo-workers-w1", "create worker workers v1.36.4"];
const TWO_REPLACED: &[&str] = &[
    "remediate demo-workers-w1",
    "remediate demo-workers-w2",
    "create worker workers v1.36.4",
    "create worker workers v1.36.4",
];

#[test]
fn unhealthy_workers_are_replaced_within_max_unhealthy() {
    let cases = [
        Sick {
            reason: "node demo-workers-w1 has been NotReady for longer than unhealthyTimeout (5m)",
            ..sick("NotReady past 5m", (S::NotReadyFor(301), 600), REPLACED)
        },
        sick("NotReady for exactly 5m", (S::NotReadyFor(300), 600), &[]),
        sick("NotReady for 4m59s", (S::NotReadyFor(299), 600), &[]),
        sick(
            "NotReady since an unknown time",
            (S::NotReadyUnknown, 600),
            &[],
        ),
        Sick {
            reason: "no Ready node within nodeStartupTimeout (20m)",
            ..sick("no node after 20m", (S::Booting, 1201), REPLACED)
        },
        sick("no node after 19m59s", (S::Booting, 1199), &[]),
        Sick {
            reason: "nodeStartupTimeout",
            ..sick("no server after 20m", (S::NoServer, 1201), REPLACED)
        },
        sick(
            "no server yet",
            (S::NoServer, 600),
            &["create-server demo-workers-w1"],
        ),
        Sick {
            api: false,
            ..sick("no node after 20m, the API down", (S::Booting, 1201), &[])
        },
        Sick {
            api: false,
            ..sick(
                "NotReady past 5m, the API down",
                (S::NotReadyFor(301), 600),
                &[],
            )
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600), (S::NotReadyFor(10), 600), FINE],
            blocked: true,
            ..sick(
                "two NotReady, one past 5m: more than 40% of 3",
                (S::Ready, 0),
                &[],
            )
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600), (S::Booting, 1201), FINE],
            blocked: true,
            ..sick("two unhealthy: more than 40% of 3", (S::Ready, 0), &[])
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600), (S::NotReadyFor(400), 600), FINE],
            max_unhealthy: "2",
            ..sick("two past 5m, maxUnhealthy 2", (S::Ready, 0), TWO_REPLACED)
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600), (S::NotReadyFor(400), 600), FINE],
            max_unhealthy: "67%",
            ..sick("two past 5m, maxUnhealthy 67%", (S::Ready, 0), TWO_REPLACED)
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600), (S::NotReadyFor(10), 600), FINE],
            max_unhealthy: "2",
            ..sick(
                "one past 5m of two NotReady, maxUnhealthy 2",
                (S::Ready, 0),
                REPLACED,
            )
        },
        Sick {
            workers: [(S::NotReadyFor(301), 600); 3],
            max_unhealthy: "2",
            blocked: true,
            ..sick("three past 5m, maxUnhealthy 2", (S::Ready, 0), &[])
        },
        Sick {
            max_unhealthy: "0",
            blocked: true,
            ..sick("maxUnhealthy 0", (S::NotReadyFor(301), 600), &[])
        },
        Sick {
            time_scale: 100.0,
            ..sick(
                "time scale 100: NotReady past 3s",
                (S::NotReadyFor(4), 600),
                REPLACED,
            )
        },
        Sick {
            time_scale: 100.0,
            ..sick(
                "time scale 100: NotReady for 2s",
                (S::NotReadyFor(2), 600),
                &[],
            )
        },
        sick(
            "time scale 1: NotReady for 4s",
            (S::NotReadyFor(4), 600),
            &[],
        ),
        Sick {
            time_scale: 100.0,
            ..sick(
                "time scale 100: no node after 12s",
                (S::Booting, 13),
                REPLACED,
            )
        },
        Sick {
            time_scale: 100.0,
            ..sick("time scale 100: no node for 11s", (S::Booting, 11), &[])
        },
        // A server that fails before its node joins is retried with a new server; once
        // the node had joined, the machine is replaced.
        sick(
            "server failed before the node joined",
            (S::Broken, 600),
            &["delete-server demo-workers-w1"],
        ),
        Sick {
            api: false,
            ..sick(
                "server failed before the node joined, the API down",
                (S::Broken, 600),
                &["delete-server demo-workers-w1"],
            )
        },
        Sick {
            reason: "nodeStartupTimeout",
            ..sick(
                "server failed, no node after 20m",
                (S::Broken, 1201),
                REPLACED,
            )
        },
        Sick {
            reason: "its server failed: boom",
            ..sick(
                "server failed after the node joined",
                (S::BrokenAfterJoin, 600),
                REPLACED,
            )
        },
        Sick {
            workers: [(S::BrokenAfterJoin, 600), (S::BrokenAfterJoin, 600), FINE],
            blocked: true,
            ..sick("two servers failed after joining", (S::Ready, 0), &[])
        },
    ];
    for case in cases {
        let mut w = pool_world(3);
        w.cluster.spec.health.max_unhealthy = case.max_unhealthy.to_owned();
        w.time_scale = case.time_scale;
        w.api = case.api;
        for (i, (state, age)) in case.workers.iter().enumerate() {
            let m = created(w.worker("workers", &format!("w{}", i + 1), V133), *age);
            w.add(m, *state);
        }
        let plan = w.plan();
        assert_steps(&plan, case.expected, case.what);
        for name in deleted_names(&plan) {
            let (reason, remediation) = deletion(&plan, name);
            assert!(remediation, "{}: {reason}", case.what);
            assert!(reason.starts_with("unhealthy: "), "{}: {reason}", case.what);
        }
        if !case.reason.is_empty() {
            let (reason, _) = deletion(&plan, "demo-workers-w1");
            assert!(reason.contains(case.reason), "{}: {reason}", case.what);
        }
        if case.blocked {
            assert_eq!(plan.remediation_blocked.len(), 1, "{}", case.what);
            let why = &plan.remediation_blocked[0];
            assert!(
                why.starts_with("pool workers: ")
                    && why.contains(&format!("maxUnhealthy ({})", case.max_unhealthy)),
                "{}: {why}",
                case.what
            );
        } else {
            assert_eq!(
                plan.remediation_blocked,
                Vec::<String>::new(),
                "{}",
                case.what
            );
        }
    }
}

#[test]
fn the_max_unhealthy_message_counts_every_troubled_machine() {
    let mut w = pool_world(3);
    for (uid, state) in [
        ("w1", S::NotReadyFor(301)),
        ("w2", S::NotReadyFor(10)),
        ("w3", S::Ready),
    ] {
        let m = w.worker("workers", uid, V133);
        w.add(m, state);
    }
    let plan = w.plan();
    assert_eq!(
        plan.remediation_blocked,
        vec![
            "pool workers: 2 of 3 machines are unhealthy, more than maxUnhealthy (40%) allows; not replacing any until some recover"
                .to_owned()
        ]
    );
}

#[test]
fn custom_health_timeouts_apply() {
    for (what, unhealthy, startup, state, age, replaced) in [
        (
            "unhealthyTimeout 1m, 61s",
            "1m",
            "20m",
            S::NotReadyFor(61),
            600,
            true,
        ),
        (
            "unhealthyTimeout 1m, 59s",
            "1m",
            "20m",
            S::NotReadyFor(59),
            600,
            false,
        ),
        (
            "nodeStartupTimeout 5m, 301s",
            "5m",
            "5m",
            S::Booting,
            301,
            true,
        ),
        (
            "nodeStartupTimeout 1h, 59m",
            "5m",
            "1h",
            S::Booting,
            3540,
            false,
        ),
    ] {
        let mut w = pool_world(3);
        w.cluster.spec.health.unhealthy_timeout = unhealthy.to_owned();
        w.cluster.spec.health.node_startup_timeout = startup.to_owned();
        let m = created(w.worker("workers", "w1", V133), age);
        w.add(m, state);
        for uid in ["w2", "w3"] {
            let m = w.worker("workers", uid, V133);
            w.add(m, S::Ready);
        }
        let plan = w.plan();
        assert_steps(&plan, if replaced { REPLACED } else { &[] }, what);
    }
}

#[test]
fn control_planes_are_remediated_one_at_a_time_and_only_with_a_ready_majority() {
    let sick_cp = |uid| cp_entry(uid, V133, S::NotReadyFor(301), 600);
    let fine = |uid| cp_entry(uid, V133, S::Ready, 600);
    // (what, replicas, maxUnhealthy, control planes, expected)
    let cases = vec![
        (
            "one of three NotReady past 5m",
            3,
            "40%",
            vec![sick_cp("c1"), fine("c2"), fine("c3")],
            vec!["remediate demo-control-plane-c1", "set-members 2"],
        ),
        (
            "one of three NotReady for less than 5m",
            3,
            "40%",
            vec![
                cp_entry("c1", V133, S::NotReadyFor(299), 600),
                fine("c2"),
                fine("c3"),
            ],
            vec![],
        ),
        (
            "two of five past 5m: one per plan",
            5,
            "40%",
            vec![
                sick_cp("c1"),
                fine("c2"),
                sick_cp("c3"),
                fine("c4"),
                fine("c5"),
            ],
            vec!["remediate demo-control-plane-c1", "set-members 4"],
        ),
        (
            "two of five, maxUnhealthy 100%: one per plan",
            5,
            "100%",
            vec![
                fine("c1"),
                sick_cp("c2"),
                sick_cp("c3"),
                fine("c4"),
                fine("c5"),
            ],
            vec!["remediate demo-control-plane-c2", "set-members 4"],
        ),
        (
            "two of three: no Ready majority",
            3,
            "100%",
            vec![sick_cp("c1"), sick_cp("c2"), fine("c3")],
            vec![],
        ),
        (
            "three of five: no Ready majority",
            5,
            "100%",
            vec![
                sick_cp("c1"),
                sick_cp("c2"),
                sick_cp("c3"),
                fine("c4"),
                fine("c5"),
            ],
            vec![],
        ),
        (
            "a single control plane is never replaced",
            1,
            "100%",
            vec![sick_cp("c1")],
            vec![],
        ),
        (
            "not while another control plane leaves",
            3,
            "100%",
            vec![
                sick_cp("c1"),
                fine("c2"),
                fine("c3"),
                Cp {
                    leave: Leave::Drained,
                    ..cp_entry("c4", V133, S::Ready, 900)
                },
            ],
            vec![
                "remove-etcd-member demo-control-plane-c4",
                "then delete-server demo-control-plane-c4",
            ],
        ),
        (
            "no node after 20m",
            3,
            "40%",
            vec![
                cp_entry("c1", V133, S::Booting, 1201),
                fine("c2"),
                fine("c3"),
            ],
            vec!["remediate demo-control-plane-c1", "set-members 2"],
        ),
        (
            "the server failed after joining",
            3,
            "40%",
            vec![
                cp_entry("c1", V133, S::BrokenAfterJoin, 600),
                fine("c2"),
                fine("c3"),
            ],
            vec!["remediate demo-control-plane-c1"],
        ),
        (
            "the server failed before joining: a new server",
            3,
            "40%",
            vec![cp_entry("c1", V133, S::Broken, 600), fine("c2"), fine("c3")],
            vec!["delete-server demo-control-plane-c1"],
        ),
    ];
    for (what, replicas, max, cps, expected) in cases {
        let mut w = World::new(mk_cluster("scs-1.36", replicas, &[]));
        w.cluster.spec.health.max_unhealthy = max.to_owned();
        for cp in cps {
            add_cp(&mut w, cp);
        }
        let plan = w.plan();
        assert_steps(&plan, &expected, what);
        assert!(
            created_specs(&plan).is_empty(),
            "{what}: no replacement in the same plan"
        );
        for name in deleted_names(&plan) {
            assert!(deletion(&plan, name).1, "{what}");
        }
    }
    // With the API down nothing is known to be unhealthy.
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[]));
    for cp in [sick_cp("c1"), fine("c2"), fine("c3")] {
        add_cp(&mut w, cp);
    }
    w.api = false;
    assert_steps(&w.plan(), &[], "API down");
}

#[test]
fn a_remediated_control_plane_is_replaced_once_it_is_gone() {
    let fine = |uid| cp_entry(uid, V133, S::Ready, 600);
    // c1 was remediated: leaving and NotReady, so not drained; its etcd member goes.
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[]));
    add_cp(
        &mut w,
        Cp {
            leave: Leave::Undrained,
            ..cp_entry("c1", V133, S::NotReadyFor(400), 600)
        },
    );
    add_cp(&mut w, fine("c2"));
    add_cp(&mut w, fine("c3"));
    assert_steps(
        &w.plan(),
        &[
            "remove-etcd-member demo-control-plane-c1",
            "then delete-server demo-control-plane-c1",
        ],
        "leaving",
    );
    // Gone: the control plane grows back.
    w.machines
        .retain(|m| m.metadata.name != "demo-control-plane-c1");
    w.servers.retain(|s| s.name != "demo-control-plane-c1");
    assert_steps(&w.plan(), &["create control-plane v1.36.4"], "gone");
}

#[test]
fn time_scale_divides_the_timeouts() {
    for (time_scale, not_ready_for, replaced) in [
        (1.0, 301, true),
        (1.0, 299, false),
        (10.0, 31, true),
        (10.0, 29, false),
        (100.0, 4, true),
        (100.0, 2, false),
        // Nonsense scales count as real time.
        (0.0, 301, true),
        (0.0, 299, false),
        (-5.0, 299, false),
    ] {
        let mut w = pool_world(3);
        w.time_scale = time_scale;
        let m = w.worker("workers", "w1", V133);
        w.add(m, S::NotReadyFor(not_ready_for));
        for uid in ["w2", "w3"] {
            let m = w.worker("workers", uid, V133);
            w.add(m, S::Ready);
        }
        let plan = w.plan();
        assert_steps(
            &plan,
            if replaced { REPLACED } else { &[] },
            &format!("time scale {time_scale}, NotReady for {not_ready_for}s"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Removal of a machine
// ---------------------------------------------------------------------------------------

struct Removal {
    what: &'static str,
    control_plane: bool,
    state: S,
    drained: bool,
    /// The drain started that many seconds ago.
    drain_started: Option<i64>,
    /// etcd's members; `None`: as the world has them (every control-plane node).
    etcd: Option<&'static [&'static str]>,
    expected: &'static [&'static str],
}

fn removal(
    what: &'static str,
    control_plane: bool,
    state: S,
    expected: &'static [&'static str],
) -> Removal {
    Removal {
        what,
        control_plane,
        state,
        drained: false,
        drain_started: None,
        etcd: None,
        expected,
    }
}

/// Three ready control planes, two ready workers, and the leaving machine `x`.
fn removal_world(case: &Removal) -> (World, String) {
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 2)]));
    for uid in ["c1", "c2", "c3"] {
        let m = w.cp(uid, V133);
        w.add(m, S::Ready);
    }
    for uid in ["w1", "w2"] {
        let m = w.worker("workers", uid, V133);
        w.add(m, S::Ready);
    }
    let mut m = if case.control_plane {
        w.cp("x", V133)
    } else {
        w.worker("workers", "x", V133)
    };
    m = leaving(m);
    m.status.drained = case.drained;
    m.status.drain_started_at = case.drain_started.map(ago);
    let name = m.metadata.name.clone();
    w.add(m, case.state);
    if let Some(members) = case.etcd {
        w.etcd = Some(members.iter().map(|m| (*m).to_owned()).collect());
    }
    (w, name)
}

#[test]
fn a_leaving_machine_is_drained_leaves_etcd_loses_its_server_and_is_released() {
    const W: &str = "demo-workers-x";
    const CP: &str = "demo-control-plane-x";
    let cases = [
        removal("worker, Ready", false, S::Ready, &["drain demo-workers-x"]),
        Removal {
            drain_started: Some(30),
            ..removal(
                "worker, draining",
                false,
                S::Ready,
                &["drain demo-workers-x"],
            )
        },
        Removal {
            drain_started: Some(600),
            ..removal(
                "worker, draining for exactly 10m",
                false,
                S::Ready,
                &["drain demo-workers-x"],
            )
        },
        Removal {
            drain_started: Some(601),
            ..removal(
                "worker, draining past 10m",
                false,
                S::Ready,
                &["abandon-drain demo-workers-x"],
            )
        },
        Removal {
            drained: true,
            drain_started: Some(601),
            ..removal(
                "worker, drained",
                false,
                S::Ready,
                &["delete-server demo-workers-x"],
            )
        },
        removal(
            "worker, NotReady",
            false,
            S::NotReadyFor(10),
            &["delete-server demo-workers-x"],
        ),
        Removal {
            drain_started: Some(601),
            ..removal(
                "worker, NotReady while draining",
                false,
                S::NotReadyFor(10),
                &["delete-server demo-workers-x"],
            )
        },
        removal(
            "worker, no node",
            false,
            S::Booting,
            &["delete-server demo-workers-x"],
        ),
        removal(
            "worker, server failed",
            false,
            S::Broken,
            &["delete-server demo-workers-x"],
        ),
        removal(
            "worker, no server",
            false,
            S::NoServer,
            &["release demo-workers-x"],
        ),
        Removal {
            drained: true,
            etcd: Some(&["demo-control-plane-c1", W]),
            ..removal(
                "worker named in etcd",
                false,
                S::Ready,
                &["delete-server demo-workers-x"],
            )
        },
        removal(
            "control plane, Ready",
            true,
            S::Ready,
            &["drain demo-control-plane-x"],
        ),
        Removal {
            drain_started: Some(601),
            ..removal(
                "control plane, draining past 10m",
                true,
                S::Ready,
                &["abandon-drain demo-control-plane-x"],
            )
        },
        Removal {
            drained: true,
            ..removal(
                "control plane, drained, an etcd member",
                true,
                S::Ready,
                &[
                    "remove-etcd-member demo-control-plane-x",
                    "then delete-server demo-control-plane-x",
                ],
            )
        },
        Removal {
            drained: true,
            etcd: Some(&[
                "demo-control-plane-c1",
                "demo-control-plane-c2",
                "demo-control-plane-c3",
            ]),
            ..removal(
                "control plane, drained, no etcd member",
                true,
                S::Ready,
                &["delete-server demo-control-plane-x"],
            )
        },
        removal(
            "control plane, NotReady, an etcd member",
            true,
            S::NotReadyFor(10),
            &[
                "remove-etcd-member demo-control-plane-x",
                "then delete-server demo-control-plane-x",
            ],
        ),
        Removal {
            etcd: Some(&[]),
            ..removal(
                "control plane, NotReady, no etcd member",
                true,
                S::NotReadyFor(10),
                &["delete-server demo-control-plane-x"],
            )
        },
        Removal {
            etcd: Some(&[CP]),
            ..removal(
                "control plane without a node, named in etcd",
                true,
                S::Booting,
                &[
                    "remove-etcd-member demo-control-plane-x",
                    "then delete-server demo-control-plane-x",
                ],
            )
        },
        Removal {
            etcd: Some(&[CP]),
            ..removal(
                "control plane without a server, named in etcd",
                true,
                S::NoServer,
                &["remove-etcd-member demo-control-plane-x"],
            )
        },
        removal(
            "control plane, no server",
            true,
            S::NoServer,
            &["release demo-control-plane-x"],
        ),
    ];
    for case in cases {
        let (w, name) = removal_world(&case);
        let plan = w.removal(&name);
        assert_steps(&plan, case.expected, case.what);
        for step in &plan.steps {
            match step {
                Step::DrainNode { machine, node } | Step::RemoveEtcdMember { machine, node } => {
                    assert_eq!((machine, node), (&name, &name), "{}", case.what);
                }
                Step::AbandonDrain {
                    machine,
                    node,
                    timeout,
                } => {
                    assert_eq!((machine, node), (&name, &name), "{}", case.what);
                    assert_eq!(timeout, "10m");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_server_being_deleted_is_waited_for() {
    for control_plane in [false, true] {
        let case = Removal {
            drained: true,
            etcd: Some(&[]),
            ..removal("server deleting", control_plane, S::Ready, &[])
        };
        let (mut w, name) = removal_world(&case);
        for s in w.servers.iter_mut().filter(|s| s.name == name) {
            s.status = ResourceStatus::Deleting;
        }
        let plan = w.removal(&name);
        assert_steps(&plan, &[], case.what);
        assert_waiting_for(&plan, &format!("{name} to be deleted"));
    }
}

#[test]
fn the_drain_timeout_is_the_spec_s_divided_by_the_time_scale() {
    for (timeout, time_scale, started, abandoned) in [
        ("10m", 1.0, 599, false),
        ("10m", 1.0, 601, true),
        ("1m", 1.0, 59, false),
        ("1m", 1.0, 61, true),
        ("10m", 10.0, 59, false),
        ("10m", 10.0, 61, true),
        ("1h", 1.0, 3599, false),
        ("1h", 1.0, 3601, true),
    ] {
        let case = Removal {
            drain_started: Some(started),
            ..removal("drain", false, S::Ready, &[])
        };
        let (mut w, name) = removal_world(&case);
        w.cluster.spec.rollout.drain_timeout = timeout.to_owned();
        w.time_scale = time_scale;
        let plan = w.removal(&name);
        let expected = if abandoned {
            Step::AbandonDrain {
                machine: name.clone(),
                node: name.clone(),
                timeout: timeout.to_owned(),
            }
        } else {
            Step::DrainNode {
                machine: name.clone(),
                node: name.clone(),
            }
        };
        assert_eq!(
            plan.steps,
            vec![expected],
            "{timeout} at {time_scale}x after {started}s"
        );
    }
}

#[test]
fn a_leaving_worker_is_drained_while_its_replacement_is_created() {
    let mut w = pool_world(3);
    for uid in ["w1", "w2"] {
        let m = w.worker("workers", uid, V133);
        w.add(m, S::Ready);
    }
    let m = leaving(w.worker("workers", "w3", V133));
    w.add(m, S::Ready);
    let plan = w.plan();
    assert_steps(
        &plan,
        &["drain demo-workers-w3", "create worker workers v1.36.4"],
        "replacement",
    );
}

#[test]
fn when_the_whole_cluster_goes_there_is_no_drain_and_no_etcd_step() {
    // Directly: a Ready, undrained control plane that is an etcd member.
    for control_plane in [false, true] {
        let case = removal("whole cluster", control_plane, S::Ready, &[]);
        let (mut w, name) = removal_world(&case);
        w.cluster.metadata.deletion_requested_at = Some(ago(60));
        let plan = w.removal(&name);
        assert_steps(
            &plan,
            &[format!("delete-server {name}").as_str()],
            "whole cluster",
        );
    }

    // Through the planner: workers go first, then the control planes.
    let mut w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 2)]));
    for uid in ["c1", "c2", "c3"] {
        let m = leaving(w.cp(uid, V133));
        w.add(m, S::Ready);
    }
    let m = leaving(w.worker("workers", "w1", V133));
    w.add(m, S::Ready);
    let m = w.worker("workers", "w2", V133);
    w.add(m, S::Ready);
    w.cluster.metadata.deletion_requested_at = Some(ago(60));
    assert_steps(
        &w.plan(),
        &["delete-server demo-workers-w1", "delete demo-workers-w2"],
        "workers first",
    );
    w.machines.retain(|m| m.is_control_plane());
    w.servers
        .retain(|s| s.name.starts_with("demo-control-plane"));
    assert_steps(
        &w.plan(),
        &[
            "delete-server demo-control-plane-c1",
            "delete-server demo-control-plane-c2",
            "delete-server demo-control-plane-c3",
        ],
        "then the control planes",
    );
}

// ---------------------------------------------------------------------------------------
// Regressions of bugs found by these tests
// ---------------------------------------------------------------------------------------

#[test]

fn a_leaving_control_plane_keeps_its_server_while_etcd_membership_is_unknown() {
    for (what, state, drained_already, api) in [
        ("drained, etcd not listed", S::Ready, true, true),
        ("NotReady, etcd not listed", S::NotReadyFor(10), false, true),
        ("the workload API down", S::Ready, false, false),
    ] {
        let case = Removal {
            drained: drained_already,
            ..removal(what, true, state, &[])
        };
        let (mut w, name) = removal_world(&case);
        w.etcd = None;
        w.api = api;
        let plan = w.removal(&name);
        assert_steps(&plan, &[], what);
        assert!(!plan.waiting.is_empty(), "{what}");
    }
}

#[test]

fn an_unreachable_workload_api_does_not_delete_outdated_workers() {
    let mut w = pool_world(3);
    for uid in ["w1", "w2", "w3"] {
        let m = w.worker("workers", uid, V133);
        w.add(m, S::Ready);
    }
    w.cluster.spec.node_pools[0].flavor = "m1.large".to_owned();
    w.api = false;
    let plan = w.plan();
    assert_eq!(deleted_names(&plan), Vec::<&str>::new());
}

#[test]

fn a_rollout_does_not_delete_what_max_unhealthy_holds_back() {
    let mut w = pool_world(3);
    for (uid, state) in [
        ("w1", S::NotReadyFor(301)),
        ("w2", S::NotReadyFor(10)),
        ("w3", S::Ready),
    ] {
        let m = w.worker("workers", uid, V133);
        w.add(m, state);
    }
    w.cluster.spec.node_pools[0].flavor = "m1.large".to_owned();
    let plan = w.plan();
    assert_eq!(plan.remediation_blocked.len(), 1, "{plan:#?}");
    assert_eq!(deleted_names(&plan), Vec::<&str>::new(), "{plan:#?}");
}

#[test]

fn while_a_patch_rollout_runs_workers_keep_the_oldest_patch_and_its_image() {
    const OLD: &str = "v1.36.1";
    let mut got = Vec::new();
    for new_first in [true, false] {
        let mut w = World::new(mk_cluster("scs-1.36", 3, &[("workers", 3)]));
        let mut cps = vec![w.cp("c1", OLD), w.cp("c2", OLD), w.cp("n1", V133)];
        if new_first {
            cps.rotate_right(1);
        }
        for m in cps {
            w.add(m, S::Ready);
        }
        let t = targets(&w.cluster, stack_of(&w.cluster).as_ref(), &w.machines).unwrap();
        assert!(t.control_plane_rolling);
        let pool = t.pool("workers").unwrap();
        got.push((new_first, pool.version.clone(), pool.image.clone()));
    }
    let want: Vec<(bool, String, String)> = [true, false]
        .map(|new_first| {
            (
                new_first,
                OLD.to_owned(),
                "ubuntu-2404-kube-v1.36.1".to_owned(),
            )
        })
        .into();
    assert_eq!(got, want);
}

#[test]
fn new_machines_spread_over_their_zones() {
    let zones: Vec<String> = ["az1", "az2", "az3"].map(String::from).to_vec();
    let in_zone = |zone: &str| {
        let mut m = Machine::new(
            ObjectMeta::named(format!("m-{zone}")),
            MachineSpec {
                pool: "workers".to_owned(),
                role: MachineRole::Worker,
                version: "v1.36.4".to_owned(),
                image: "img".to_owned(),
                flavor: "m1.medium".to_owned(),
                zone: Some(zone.to_owned()),
            },
        );
        m.metadata.uid = zone.to_owned();
        m
    };
    let (a, b) = (in_zone("az1"), in_zone("az2"));
    assert_eq!(pick_zone(&zones, &[], &[]).as_deref(), Some("az1"));
    assert_eq!(pick_zone(&zones, &[&a], &[]).as_deref(), Some("az2"));
    assert_eq!(pick_zone(&zones, &[&a, &b], &[]).as_deref(), Some("az3"));
    assert_eq!(
        pick_zone(&zones, &[&a, &b], &["az3".to_owned()]).as_deref(),
        Some("az1")
    );
    assert_eq!(pick_zone(&[], &[&a], &[]), None);
}

#[test]
fn a_scale_up_spreads_its_new_machines_in_one_plan() {
    let mut cluster = mk_cluster("scs-1.36", 1, &[("workers", 6)]);
    cluster.spec.node_pools[0].zones = vec!["az1".to_owned(), "az2".to_owned()];
    let mut world = World::new(cluster);
    let cp = world.cp("c1", V133);
    world.add(cp, S::Ready);
    let plan = world.plan();
    let mut zones: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateMachine { spec } if spec.role == MachineRole::Worker => spec.zone.clone(),
            _ => None,
        })
        .collect();
    zones.sort();
    assert_eq!(zones, ["az1", "az1", "az1", "az2", "az2", "az2"]);
}

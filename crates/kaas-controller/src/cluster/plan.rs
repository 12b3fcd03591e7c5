//! The pure planning step of the cluster controller: from the desired cluster and
//! what was observed, the next steps. No I/O; every decision is unit-tested here.
//!
//! Creation follows the design's order: infrastructure (network — alone, after the
//! cloud's preflight check, so a cluster the project cannot hold leaves nothing behind —
//! then subnet, router, security groups, server groups, the API load balancer on a VIP
//! port of kaas' own with its floating IP, the cluster's application credential) → first
//! control plane (kubeadm init) → the other control planes one at a time → node pools
//! in parallel once the workload API answers. Deletion runs the other way: workers →
//! control planes → load balancers (the API's, and those the cluster's cloud controller
//! made) and floating IP → router → ports → subnet → network → security groups and server
//! groups → application credential → a sweep that must find nothing tagged with the
//! cluster before the finalizer is removed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kaas_cloud::{
    CloudResource, Credential, Node, PoolMember, RegisteredToken, ResourceKind, ResourceRequest,
    ResourceSpec, ResourceStatus, SecurityGroupRule, ServerGroupPolicy, UserData,
};
use kaas_core::cluster::CLUSTER_FINALIZER;
use kaas_core::machine::CONTROL_PLANE_POOL;
use kaas_core::naming::{cluster_tag, machine_tag, resource_prefix};
use kaas_core::stack::ClusterStack;
use kaas_core::{Cluster, Machine, MachineRole, MachineSpec};

/// The Kubernetes API port on the load balancer and the control planes.
pub const API_PORT: u16 = 6443;

/// The finalizer that keeps a Machine until its server is gone.
pub const MACHINE_FINALIZER: &str = "kaas.dev/server";

/// What the controller saw of the world at the start of a reconcile.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The cluster's machines, including those being deleted.
    pub machines: Vec<Machine>,
    /// Every cloud resource tagged with the cluster's uid.
    pub resources: Vec<CloudResource>,
    /// The workload cluster's nodes; `None` while its API does not answer.
    pub nodes: Option<Vec<Node>>,
    /// Why the workload cluster's API did not answer when it was asked (it is asked
    /// once the cluster has an endpoint).
    pub api_unreachable: Option<String>,
    /// The bootstrap tokens kaas registered in the workload cluster; `None` while its
    /// API does not answer.
    pub join_tokens: Option<Vec<RegisteredToken>>,
    /// The nodes whose etcd members are in the cluster's etcd; `None` if unknown.
    pub etcd_members: Option<Vec<String>>,
    /// The cluster's stack as the catalog has it; `None` if the catalog has no such
    /// stack (any more).
    pub stack: Option<ClusterStack>,
    /// Whether the cluster's PKI (CAs and service-account key) is stored.
    pub pki_exists: bool,
    /// The addons as rendered and, while the API answers, as they stand; `None` while
    /// the API does not answer.
    pub addons: Option<super::addons::ObservedAddons>,
    /// The cluster's registry pull credential; `None` where not observed.
    pub registry: Option<super::registry::ObservedPull>,
    /// When the observation was made.
    pub now: DateTime<Utc>,
    /// How much faster than real time the cloud runs (the simulation's speed; 1 for a
    /// real cloud): the spec's timeouts are divided by it.
    pub time_scale: f64,
}

impl Observed {
    /// A duration from the spec (`10m`) in this cloud's time.
    pub fn scaled(&self, text: &str) -> chrono::Duration {
        let d = kaas_core::validation::parse_duration(text).unwrap_or_default();
        let scale = if self.time_scale > 0.0 {
            self.time_scale
        } else {
            1.0
        };
        chrono::Duration::from_std(d.div_f64(scale)).unwrap_or(chrono::Duration::MAX)
    }
}

/// One idempotent action.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    AddFinalizer,
    /// Create a cloud resource; `role` is its place in the cluster (`network`,
    /// `securityGroup/control-plane`, …).
    CreateResource {
        role: String,
        request: ResourceRequest,
    },
    DeleteResource {
        kind: ResourceKind,
        id: String,
        name: String,
    },
    SetLoadBalancerMembers {
        load_balancer_id: String,
        members: Vec<PoolMember>,
    },
    /// Record a new machine; the executor picks its random name suffix.
    CreateMachine {
        spec: MachineSpec,
    },
    /// Create a machine's server; the executor renders its bootstrap user data (which
    /// needs the cluster's keys) for the API `endpoint`.
    CreateServer {
        machine: String,
        request: ResourceRequest,
        endpoint: String,
        /// Addresses the API server's certificate must cover (VIP, floating IP).
        api_sans: Vec<String>,
    },
    /// Generate and store the cluster's CAs and service-account key (once).
    EnsurePki,
    /// Ask the store to delete a machine (it stays, marked, until its server is gone).
    DeleteMachine {
        name: String,
        reason: String,
        /// The machine is replaced because it is unhealthy.
        remediation: bool,
    },
    /// Cordon the machine's node and evict its pods (call again to see progress).
    DrainNode {
        machine: String,
        node: String,
    },
    /// The drain did not finish within `drainTimeout`: go on without it.
    AbandonDrain {
        machine: String,
        node: String,
        timeout: String,
    },
    /// Remove a leaving control plane's etcd member before its server goes.
    RemoveEtcdMember {
        machine: String,
        node: String,
    },
    /// The machine's server is gone: delete its Node from the cluster's API.
    DeleteNode {
        machine: String,
        node: String,
    },
    /// The machine's server is gone: drop its finalizer so the store removes it.
    ReleaseMachine {
        name: String,
    },
    /// Nothing tagged with the cluster remains: let the store remove the cluster.
    RemoveFinalizer,
    /// Register (or extend) the bootstrap token `machine` joins with, in the workload
    /// cluster.
    RegisterJoinToken {
        machine: String,
        control_plane: bool,
    },
    /// Remove a bootstrap token whose machine has joined or is gone.
    DeleteJoinToken {
        id: String,
        machine: String,
    },
    /// Server-side apply the addons of `stack` (and prune what they no longer hold).
    ApplyAddons {
        stack: String,
        digest: String,
        objects: super::addons::Manifests,
    },
    /// Issue (or renew) the cluster's registry pull credential.
    IssuePullCredential,
    /// Write the pull Secret into these namespaces of the workload cluster.
    SyncPullSecrets {
        namespaces: Vec<String>,
    },
    /// Remove the cluster's registry pull credential (no longer wanted), and its
    /// Secrets from the workload cluster when its API answers.
    RevokePullCredential {
        from_cluster: bool,
    },
}

impl Step {
    /// The step's name, for metrics and logs (`CreateResource`).
    pub fn operation(&self) -> &'static str {
        match self {
            Step::AddFinalizer => "AddFinalizer",
            Step::CreateResource { .. } => "CreateResource",
            Step::DeleteResource { .. } => "DeleteResource",
            Step::SetLoadBalancerMembers { .. } => "SetLoadBalancerMembers",
            Step::CreateMachine { .. } => "CreateMachine",
            Step::CreateServer { .. } => "CreateServer",
            Step::EnsurePki => "EnsurePki",
            Step::DeleteMachine { .. } => "DeleteMachine",
            Step::DrainNode { .. } => "DrainNode",
            Step::AbandonDrain { .. } => "AbandonDrain",
            Step::RemoveEtcdMember { .. } => "RemoveEtcdMember",
            Step::DeleteNode { .. } => "DeleteNode",
            Step::ReleaseMachine { .. } => "ReleaseMachine",
            Step::RemoveFinalizer => "RemoveFinalizer",
            Step::RegisterJoinToken { .. } => "RegisterJoinToken",
            Step::DeleteJoinToken { .. } => "DeleteJoinToken",
            Step::ApplyAddons { .. } => "ApplyAddons",
            Step::IssuePullCredential => "IssuePullCredential",
            Step::SyncPullSecrets { .. } => "SyncPullSecrets",
            Step::RevokePullCredential { .. } => "RevokePullCredential",
        }
    }

    /// Which condition a failure of this step belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Step::CreateServer { request, .. } => server_stage(request),
            Step::CreateMachine { spec } if spec.role == MachineRole::Worker => Stage::NodePools,
            Step::RegisterJoinToken {
                control_plane: true,
                ..
            } => Stage::ControlPlane,
            Step::RegisterJoinToken { .. } | Step::DeleteJoinToken { .. } => Stage::NodePools,
            Step::CreateMachine { .. } | Step::SetLoadBalancerMembers { .. } | Step::EnsurePki => {
                Stage::ControlPlane
            }
            Step::AddFinalizer | Step::CreateResource { .. } => Stage::Infrastructure,
            Step::ApplyAddons { .. }
            | Step::IssuePullCredential
            | Step::SyncPullSecrets { .. }
            | Step::RevokePullCredential { .. } => Stage::Addons,
            Step::DeleteResource { .. }
            | Step::DeleteMachine { .. }
            | Step::DrainNode { .. }
            | Step::AbandonDrain { .. }
            | Step::RemoveEtcdMember { .. }
            | Step::DeleteNode { .. }
            | Step::ReleaseMachine { .. }
            | Step::RemoveFinalizer => Stage::Deletion,
        }
    }
}

fn server_stage(request: &ResourceRequest) -> Stage {
    match &request.spec {
        ResourceSpec::Server { metadata, .. }
            if metadata.get(ROLE_KEY).map(String::as_str) == Some("worker") =>
        {
            Stage::NodePools
        }
        _ => Stage::ControlPlane,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Infrastructure,
    ControlPlane,
    NodePools,
    Addons,
    Deletion,
}

/// The tag that says a server's role (`kaas-role=control-plane`), so the cloud alone
/// tells which servers hold etcd.
pub const ROLE_TAG_PREFIX: &str = "kaas-role=";

/// Server metadata keys the workload side reads.
pub const CLUSTER_UID_KEY: &str = "kaas-cluster-uid";
pub const ROLE_KEY: &str = "kaas-role";
pub const VERSION_KEY: &str = "kaas-kubernetes-version";

/// The resources a cluster has, by role, as observed.
#[derive(Debug, Default)]
pub struct Infrastructure<'a> {
    by_role: BTreeMap<String, &'a CloudResource>,
    /// Resources tagged with the cluster that play no wanted role (or a role twice).
    pub unwanted: Vec<&'a CloudResource>,
    /// Servers by machine uid.
    pub servers: BTreeMap<String, &'a CloudResource>,
    /// Servers' ports by machine uid.
    pub ports: BTreeMap<String, &'a CloudResource>,
    /// Resources the workload cluster made for itself (its cloud controller's load
    /// balancers): left alone while the cluster lives, deleted with it.
    pub workload_owned: Vec<&'a CloudResource>,
}

/// The name prefix of the load balancers the OpenStack cloud controller makes for
/// Services of type LoadBalancer (`kube_service_<cluster-name>_<namespace>_<name>`);
/// kaas sets the cloud controller's cluster name to the cluster's uid.
pub const CCM_LOAD_BALANCER_PREFIX: &str = "kube_service_";

impl<'a> Infrastructure<'a> {
    pub fn get(&self, role: &str) -> Option<&'a CloudResource> {
        self.by_role.get(role).copied()
    }

    /// The resource in `role` if something may be built on it: it exists and is
    /// neither broken nor being deleted (Pending is fine: a load balancer's VIP port
    /// exists long before the load balancer is ACTIVE).
    pub fn usable(&self, role: &str) -> Option<&'a CloudResource> {
        self.get(role)
            .filter(|r| matches!(r.status, ResourceStatus::Pending | ResourceStatus::Active))
    }

    pub fn roles(&self) -> impl Iterator<Item = (&String, &&'a CloudResource)> {
        self.by_role.iter()
    }
}

/// The infrastructure roles a cluster wants, with the name of each.
pub fn wanted_roles(cluster: &Cluster) -> Vec<(String, ResourceKind, String)> {
    let prefix = prefix(cluster);
    let mut roles = vec![
        ("network".to_owned(), ResourceKind::Network, prefix.clone()),
        ("subnet".to_owned(), ResourceKind::Subnet, prefix.clone()),
        ("router".to_owned(), ResourceKind::Router, prefix.clone()),
        (
            sg_role("control-plane"),
            ResourceKind::SecurityGroup,
            format!("{prefix}-control-plane"),
        ),
        (
            sg_role("worker"),
            ResourceKind::SecurityGroup,
            format!("{prefix}-worker"),
        ),
        (
            sgroup_role(CONTROL_PLANE_POOL),
            ResourceKind::ServerGroup,
            format!("{prefix}-{CONTROL_PLANE_POOL}"),
        ),
    ];
    for pool in &cluster.spec.node_pools {
        roles.push((
            sgroup_role(&pool.name),
            ResourceKind::ServerGroup,
            format!("{prefix}-{}", pool.name),
        ));
    }
    roles.push((
        VIP_PORT_ROLE.to_owned(),
        ResourceKind::Port,
        format!("{prefix}-kubeapi-vip"),
    ));
    roles.push((
        "loadBalancer".to_owned(),
        ResourceKind::LoadBalancer,
        format!("{prefix}-kubeapi"),
    ));
    if cluster.spec.api_access.floating_ip {
        roles.push((
            "floatingIp".to_owned(),
            ResourceKind::FloatingIp,
            format!("{prefix}-kubeapi"),
        ));
    }
    roles.push((
        "applicationCredential".to_owned(),
        ResourceKind::ApplicationCredential,
        prefix,
    ));
    roles
}

/// The role of the API load balancer's VIP port.
pub const VIP_PORT_ROLE: &str = "port/kubeapi-vip";

fn sg_role(which: &str) -> String {
    format!("securityGroup/{which}")
}

fn sgroup_role(pool: &str) -> String {
    format!("serverGroup/{pool}")
}

fn prefix(cluster: &Cluster) -> String {
    resource_prefix(&cluster.metadata.name, &cluster.metadata.uid)
}

/// Sorts what was observed into roles. Twins (a role found twice) keep the oldest-named
/// id (lowest) and the rest become unwanted, so they are deleted.
pub fn classify<'a>(cluster: &Cluster, observed: &'a Observed) -> Infrastructure<'a> {
    let mut infra = Infrastructure::default();
    let wanted = wanted_roles(cluster);
    let live_machines: BTreeMap<&str, &Machine> = observed
        .machines
        .iter()
        .map(|m| (m.metadata.uid.as_str(), m))
        .collect();
    let mut resources: Vec<&CloudResource> = observed.resources.iter().collect();
    resources.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    for r in resources {
        let machine_uid = r.tags.iter().find_map(|t| t.strip_prefix("kaas-machine="));
        let per_machine = match r.kind {
            ResourceKind::Server => Some(&mut infra.servers),
            ResourceKind::Port if machine_uid.is_some() => Some(&mut infra.ports),
            _ => None,
        };
        if let Some(map) = per_machine {
            match machine_uid {
                Some(uid) if live_machines.contains_key(uid) && !map.contains_key(uid) => {
                    map.insert(uid.to_owned(), r);
                }
                _ => infra.unwanted.push(r),
            }
            continue;
        }
        if r.kind == ResourceKind::LoadBalancer && r.name.starts_with(CCM_LOAD_BALANCER_PREFIX) {
            infra.workload_owned.push(r);
            continue;
        }
        let role = wanted
            .iter()
            .find(|(_, kind, name)| *kind == r.kind && *name == r.name);
        match role {
            Some((role, _, _)) if !infra.by_role.contains_key(role) => {
                infra.by_role.insert(role.clone(), r);
            }
            _ => infra.unwanted.push(r),
        }
    }
    infra
}

/// The result of planning: steps to run now, and what is awaited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Steps to run now, side by side, except where [`Plan::chained`] orders them.
    pub steps: Vec<Step>,
    /// Indexes of steps that run only once the step just before them has succeeded,
    /// in the same reconcile: a chain the next observation would only confirm (the
    /// etcd member is gone, so the server may go), which saves a poll on the critical
    /// path. A step is skipped when the one before it fails or does not run.
    pub chained: BTreeSet<usize>,
    /// Things in progress that the controller waits for (for the requeue decision).
    pub waiting: Vec<String>,
    /// Why unhealthy machines are not being replaced (maxUnhealthy exceeded, …).
    pub remediation_blocked: Vec<String>,
}

impl Plan {
    /// Adds `step` to run once the step added just before it has succeeded.
    pub(super) fn then(&mut self, step: Step) {
        if !self.steps.is_empty() {
            self.chained.insert(self.steps.len());
        }
        self.steps.push(step);
    }

    /// The steps as chains: each runs its steps in order, the chains side by side.
    pub fn chains(&self) -> Vec<Vec<usize>> {
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for i in 0..self.steps.len() {
            match chains.last_mut() {
                Some(chain) if self.chained.contains(&i) => chain.push(i),
                _ => chains.push(vec![i]),
            }
        }
        chains
    }

    pub(super) fn wait(&mut self, what: impl Into<String>) {
        self.waiting.push(what.into());
    }

    /// Whether the world still has to move before the cluster is settled.
    pub fn is_settled(&self) -> bool {
        self.steps.is_empty() && self.waiting.is_empty()
    }
}

/// Plans the next steps for `cluster` given `observed`.
pub fn plan(cluster: &Cluster, observed: &Observed) -> Plan {
    let infra = classify(cluster, observed);
    let mut plan = Plan::default();
    if cluster.metadata.is_deleting() {
        plan_deletion(cluster, observed, &infra, &mut plan);
        return plan;
    }
    if !cluster
        .metadata
        .finalizers
        .iter()
        .any(|f| f == CLUSTER_FINALIZER)
    {
        plan.steps.push(Step::AddFinalizer);
        return plan;
    }
    plan_infrastructure(cluster, &infra, &mut plan);
    if !observed.pki_exists {
        plan.steps.push(Step::EnsurePki);
    }
    plan_unwanted(&infra, &mut plan);
    super::machines::plan_machines(cluster, observed, &infra, &mut plan);
    super::machines::plan_join_tokens(observed, &infra, &mut plan);
    super::addons::plan_addons(cluster, observed, &mut plan);
    super::registry::plan_pull_credential(observed, &mut plan);
    plan
}

fn plan_unwanted(infra: &Infrastructure<'_>, plan: &mut Plan) {
    for r in &infra.unwanted {
        delete_resource(r, plan);
    }
}

pub(super) fn delete_resource(r: &CloudResource, plan: &mut Plan) {
    if r.status == ResourceStatus::Deleting {
        plan.wait(format!("{} {} to be deleted", r.kind, r.name));
    } else {
        plan.steps.push(delete_step(r));
    }
}

pub(super) fn delete_step(r: &CloudResource) -> Step {
    Step::DeleteResource {
        kind: r.kind,
        id: r.id.clone(),
        name: r.name.clone(),
    }
}

fn tags(cluster: &Cluster) -> Vec<String> {
    vec![
        cluster_tag(&cluster.metadata.uid),
        format!("kaas-cluster-name={}", cluster.metadata.name),
    ]
}

fn request(cluster: &Cluster, name: String, spec: ResourceSpec) -> ResourceRequest {
    ResourceRequest {
        name,
        tags: tags(cluster),
        spec,
    }
}

fn plan_infrastructure(cluster: &Cluster, infra: &Infrastructure<'_>, plan: &mut Plan) {
    let net = &cluster.spec.network;
    // Nothing built yet: the network goes alone, after the preflight check, so that a
    // cluster the project's quota cannot hold is refused with nothing to clean up.
    let first = infra.by_role.is_empty() && infra.unwanted.is_empty();
    for (role, kind, name) in wanted_roles(cluster) {
        if first && kind != ResourceKind::Network {
            plan.wait(format!("{kind} {name} (after the preflight check)"));
            continue;
        }
        if let Some(r) = infra.get(&role) {
            match &r.status {
                ResourceStatus::Active => {}
                ResourceStatus::Error { .. } => delete_resource(r, plan),
                _ => plan.wait(format!("{kind} {name}")),
            }
            continue;
        }
        let spec = match kind {
            ResourceKind::Network => Some(ResourceSpec::Network { mtu: net.mtu }),
            ResourceKind::Subnet => infra.usable("network").map(|n| ResourceSpec::Subnet {
                network_id: n.id.clone(),
                cidr: net.node_cidr.clone(),
                dns_servers: net.dns_servers.clone(),
            }),
            ResourceKind::Router => infra.usable("subnet").map(|s| ResourceSpec::Router {
                external_network: net.external_network.clone(),
                subnet_ids: vec![s.id.clone()],
            }),
            ResourceKind::SecurityGroup => Some(ResourceSpec::SecurityGroup {
                rules: security_group_rules(cluster, role.ends_with("control-plane")),
            }),
            ResourceKind::ServerGroup => Some(ResourceSpec::ServerGroup {
                policy: if role == sgroup_role(CONTROL_PLANE_POOL) {
                    ServerGroupPolicy::AntiAffinity
                } else {
                    ServerGroupPolicy::SoftAntiAffinity
                },
            }),
            ResourceKind::Port => {
                infra
                    .usable("network")
                    .zip(infra.usable("subnet"))
                    .map(|(n, s)| ResourceSpec::Port {
                        network_id: n.id.clone(),
                        subnet_id: s.id.clone(),
                        security_group_ids: Vec::new(),
                    })
            }
            ResourceKind::LoadBalancer => infra
                .usable("subnet")
                .zip(infra.usable(VIP_PORT_ROLE))
                .map(|(s, p)| ResourceSpec::LoadBalancer {
                    subnet_id: s.id.clone(),
                    vip_port_id: p.id.clone(),
                    port: API_PORT,
                }),
            // Neutron reaches the port's subnet from the external network through the
            // router, and then will not take the router's interface away while the
            // floating IP needs it: the router must be whole first.
            ResourceKind::FloatingIp => infra
                .usable(VIP_PORT_ROLE)
                .filter(|_| infra.get("router").is_some_and(CloudResource::is_active))
                .map(|p| ResourceSpec::FloatingIp {
                    external_network: net.external_network.clone(),
                    port_id: p.id.clone(),
                }),
            ResourceKind::ApplicationCredential => Some(ResourceSpec::ApplicationCredential {
                secret: Credential::default(),
                roles: Vec::new(),
                description: format!(
                    "kaas cluster {} ({}): its cloud controller and CSI",
                    cluster.metadata.name, cluster.metadata.uid
                ),
            }),
            ResourceKind::Server => None,
        };
        match spec {
            Some(spec) => plan.steps.push(Step::CreateResource {
                role,
                request: request(cluster, name, spec),
            }),
            None => plan.wait(format!("{kind} {name} (needs what comes before it)")),
        }
    }
}

/// Ingress rules: the API from the allowed CIDRs, etcd between control planes, kubelet
/// and the CNI (Cilium VXLAN and health) within the node network, NodePorts on workers.
pub fn security_group_rules(cluster: &Cluster, control_plane: bool) -> Vec<SecurityGroupRule> {
    let nodes = cluster.spec.network.node_cidr.clone();
    let rule = |protocol: &str,
                min: u16,
                max: u16,
                cidr: Option<&str>,
                group: Option<&str>,
                what: &str| {
        SecurityGroupRule {
            protocol: protocol.to_owned(),
            port_min: min,
            port_max: max,
            remote_cidr: cidr.map(str::to_owned),
            remote_group: group.map(str::to_owned),
            description: what.to_owned(),
        }
    };
    let mut rules = vec![
        rule("tcp", 10250, 10250, Some(&nodes), None, "kubelet API"),
        rule("udp", 8472, 8472, Some(&nodes), None, "Cilium VXLAN"),
        rule("tcp", 4240, 4240, Some(&nodes), None, "Cilium health"),
        rule("icmp", 0, 0, Some(&nodes), None, "ICMP within the cluster"),
    ];
    if control_plane {
        let cp_group = format!("{}-control-plane", prefix(cluster));
        let mut api_sources = cluster.spec.api_access.allowed_cidrs.clone();
        if api_sources.is_empty() {
            api_sources.push("0.0.0.0/0".to_owned());
        } else {
            // The load balancer's health checks and the nodes themselves come from the
            // node network.
            api_sources.push(nodes.clone());
        }
        // Neutron refuses duplicate rules: keep each source once, in the given order.
        let mut seen = BTreeSet::new();
        api_sources.retain(|c| seen.insert(c.clone()));
        for cidr in &api_sources {
            rules.push(rule(
                "tcp",
                API_PORT,
                API_PORT,
                Some(cidr),
                None,
                "Kubernetes API",
            ));
        }
        rules.push(rule(
            "tcp",
            2379,
            2380,
            None,
            Some(&cp_group),
            "etcd between control planes",
        ));
    } else {
        rules.push(rule(
            "tcp",
            30000,
            32767,
            Some("0.0.0.0/0"),
            None,
            "NodePorts",
        ));
        rules.push(rule(
            "udp",
            30000,
            32767,
            Some("0.0.0.0/0"),
            None,
            "NodePorts",
        ));
    }
    rules
}

/// The API endpoint clients use: the floating IP, or the load balancer's VIP without one.
pub fn api_endpoint(cluster: &Cluster, infra: &Infrastructure<'_>) -> Option<String> {
    let role = if cluster.spec.api_access.floating_ip {
        "floatingIp"
    } else {
        "loadBalancer"
    };
    infra
        .get(role)
        .and_then(|r| r.address.clone())
        .map(|a| format!("https://{a}:{API_PORT}"))
}

/// Whether the node of `machine` is Ready.
pub fn node_ready(machine: &Machine, infra: &Infrastructure<'_>, nodes: Option<&[Node]>) -> bool {
    node_of(machine, infra, nodes).is_some_and(|n| n.ready)
}

pub fn node_of<'n>(
    machine: &Machine,
    infra: &Infrastructure<'_>,
    nodes: Option<&'n [Node]>,
) -> Option<&'n Node> {
    let server = infra.servers.get(&machine.metadata.uid)?;
    nodes?
        .iter()
        .find(|n| n.server_id() == Some(server.id.as_str()))
}

pub(super) fn plan_server(
    cluster: &Cluster,
    observed: &Observed,
    m: &Machine,
    infra: &Infrastructure<'_>,
    plan: &mut Plan,
) {
    let nodes = observed.nodes.as_deref();
    if let Some(server) = infra.servers.get(&m.metadata.uid) {
        match &server.status {
            // A server that failed before its node ever joined is a failed boot: try
            // again with a new server. A node that had joined and then failed is the
            // health check's business (the machine is replaced).
            ResourceStatus::Error { .. } if m.status.node_name.is_none() => {
                delete_resource(server, plan)
            }
            ResourceStatus::Error { .. } => {}
            ResourceStatus::Active if node_ready(m, infra, nodes) => {}
            _ => plan.wait(format!(
                "machine {} to become a ready node",
                m.metadata.name
            )),
        }
        return;
    }
    let pool = if m.is_control_plane() {
        CONTROL_PLANE_POOL
    } else {
        &m.spec.pool
    };
    let sg = if m.is_control_plane() {
        "control-plane"
    } else {
        "worker"
    };
    if !observed.pki_exists {
        plan.wait(format!(
            "the cluster's PKI before machine {}",
            m.metadata.name
        ));
        return;
    }
    // After a failed boot, the next server comes later each time: a cloud that cannot
    // place or boot it (no host fits the anti-affinity, a broken image) is not asked
    // again and again.
    if let Some(failed_at) = m.status.last_boot_failure {
        let delay = kaas_core::machine::boot_retry_delay(m.status.boot_failures);
        let scale = if observed.time_scale > 0.0 {
            observed.time_scale
        } else {
            1.0
        };
        let delay = chrono::Duration::from_std(delay.div_f64(scale)).unwrap_or_default();
        if observed.now < failed_at + delay {
            plan.wait(format!(
                "machine {}: its server failed {} time(s) before it joined ({}); the next is created at {}",
                m.metadata.name,
                m.status.boot_failures,
                m.status
                    .failure_message
                    .as_deref()
                    .unwrap_or("the cloud gave no reason"),
                (failed_at + delay).format("%H:%M:%S")
            ));
            return;
        }
    }
    let (Some(network), Some(_subnet), Some(group), Some(server_group), Some(endpoint)) = (
        infra.usable("network"),
        infra.usable("subnet"),
        infra.usable(&sg_role(sg)),
        infra.usable(&sgroup_role(pool)),
        api_endpoint(cluster, infra),
    ) else {
        plan.wait(format!("infrastructure for machine {}", m.metadata.name));
        return;
    };
    let metadata = BTreeMap::from([
        (CLUSTER_UID_KEY.to_owned(), cluster.metadata.uid.clone()),
        (ROLE_KEY.to_owned(), m.spec.role.as_str().to_owned()),
        (VERSION_KEY.to_owned(), m.spec.version.clone()),
        ("kaas-machine".to_owned(), m.metadata.name.clone()),
    ]);
    let mut tags = tags(cluster);
    tags.push(machine_tag(&m.metadata.uid));
    tags.push(format!("{ROLE_TAG_PREFIX}{}", m.spec.role.as_str()));
    plan.steps.push(Step::CreateServer {
        machine: m.metadata.name.clone(),
        endpoint,
        api_sans: ["loadBalancer", "floatingIp"]
            .iter()
            .filter_map(|role| infra.get(role).and_then(|r| r.address.clone()))
            .collect(),
        request: ResourceRequest {
            name: m.metadata.name.clone(),
            tags,
            spec: ResourceSpec::Server {
                flavor: m.spec.flavor.clone(),
                image: m.spec.image.clone(),
                network_id: network.id.clone(),
                security_group_ids: vec![group.id.clone()],
                server_group_id: Some(server_group.id.clone()),
                availability_zone: m.spec.zone.clone(),
                user_data: UserData::default(),
                metadata,
            },
        },
    });
}

/// The API load balancer forwards to every control plane with an address.
pub fn desired_members(cps: &[&Machine], infra: &Infrastructure<'_>) -> Vec<PoolMember> {
    let mut members: Vec<PoolMember> = cps
        .iter()
        .filter_map(|m| infra.servers.get(&m.metadata.uid))
        .filter(|s| s.status != ResourceStatus::Deleting)
        .filter_map(|s| s.address.clone())
        .map(|address| PoolMember {
            address,
            port: API_PORT,
        })
        .collect();
    members.sort();
    members
}

/// How members are recorded in `status.apiMembers`.
pub fn member_strings(members: &[PoolMember]) -> Vec<String> {
    members
        .iter()
        .map(|m| format!("{}:{}", m.address, m.port))
        .collect()
}

pub(super) fn plan_load_balancer_members(
    cluster: &Cluster,
    cps: &[&Machine],
    infra: &Infrastructure<'_>,
    plan: &mut Plan,
) {
    let Some(lb) = infra.get("loadBalancer") else {
        return;
    };
    if !lb.is_active() {
        return;
    }
    let members = desired_members(cps, infra);
    if !members.is_empty() && member_strings(&members) != cluster.status.api_members {
        plan.steps.push(Step::SetLoadBalancerMembers {
            load_balancer_id: lb.id.clone(),
            members,
        });
    }
}

fn plan_deletion(
    cluster: &Cluster,
    observed: &Observed,
    infra: &Infrastructure<'_>,
    plan: &mut Plan,
) {
    // Workers, then control planes.
    for control_plane in [false, true] {
        let machines: Vec<&Machine> = observed
            .machines
            .iter()
            .filter(|m| m.is_control_plane() == control_plane)
            .collect();
        if machines.is_empty() {
            continue;
        }
        for m in machines {
            if m.metadata.is_deleting() {
                // The whole cluster goes: no drain, no etcd bookkeeping.
                super::machines::plan_machine_removal(cluster, observed, m, infra, plan);
            } else {
                plan.steps.push(Step::DeleteMachine {
                    name: m.metadata.name.clone(),
                    reason: "the cluster is being deleted".to_owned(),
                    remediation: false,
                });
            }
        }
        return;
    }
    // Then the cloud resources, one layer at a time.
    let layers: [&[ResourceKind]; 8] = [
        &[ResourceKind::Server],
        &[ResourceKind::FloatingIp, ResourceKind::LoadBalancer],
        &[ResourceKind::Router],
        &[ResourceKind::Port],
        &[ResourceKind::Subnet],
        &[ResourceKind::Network],
        &[ResourceKind::SecurityGroup, ResourceKind::ServerGroup],
        &[ResourceKind::ApplicationCredential],
    ];
    for layer in layers {
        let mut present: Vec<&CloudResource> = observed
            .resources
            .iter()
            .filter(|r| layer.contains(&r.kind))
            .collect();
        if present.is_empty() {
            continue;
        }
        // A floating IP goes before its load balancer.
        if present.iter().any(|r| r.kind == ResourceKind::FloatingIp) {
            present.retain(|r| r.kind == ResourceKind::FloatingIp);
        }
        for r in present {
            delete_resource(r, plan);
        }
        return;
    }
    if observed.resources.is_empty()
        && cluster
            .metadata
            .finalizers
            .iter()
            .any(|f| f == CLUSTER_FINALIZER)
    {
        plan.steps.push(Step::RemoveFinalizer);
    }
}

#[cfg(test)]
mod tests;

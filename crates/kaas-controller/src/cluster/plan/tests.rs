//! Data-driven tests of the planner: tiny builders for clusters, cloud resources,
//! machines, servers and nodes, a summarizer that renders a plan as short strings, then
//! many small cases that each assert the exact set of steps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use chrono::{DateTime, Utc};
use kaas_core::cluster::ControlPlane;
use kaas_core::machine::{CLUSTER_LABEL, POOL_LABEL};
use kaas_core::{ClusterSpec, NodePool, Object, ObjectMeta, OwnerRef};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const UID: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const LB_VIP: &str = "10.0.0.100";
const FIP: &str = "203.0.113.10";
const VERSION: &str = "v1.36.4";
const IMAGE: &str = "ubuntu-2404-kube-v1.36.4";

// Ids `full_infra` gives (see `mk_resource`).
const NETWORK_ID: &str = "network:kaas-demo-1a2b3c4d";
const SUBNET_ID: &str = "subnet:kaas-demo-1a2b3c4d";
const LB_ID: &str = "loadBalancer:kaas-demo-1a2b3c4d-kubeapi";
const CP_SG_ID: &str = "securityGroup:kaas-demo-1a2b3c4d-control-plane";
const WORKER_SG_ID: &str = "securityGroup:kaas-demo-1a2b3c4d-worker";
const CP_SGROUP_ID: &str = "serverGroup:kaas-demo-1a2b3c4d-control-plane";
const WORKERS_SGROUP_ID: &str = "serverGroup:kaas-demo-1a2b3c4d-workers";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// Cluster `demo` with `cp` control planes and one pool `workers` of `workers`; it has
/// its uid and the cloud-resources finalizer.
fn mk_cluster(cp: u32, workers: u32) -> Cluster {
    let spec = ClusterSpec {
        control_plane: ControlPlane {
            replicas: cp,
            ..ControlPlane::default()
        },
        node_pools: vec![NodePool::new("workers", workers)],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::new("demo", spec);
    cluster.metadata.tenant = "default".to_owned();
    cluster.metadata.uid = UID.to_owned();
    cluster.metadata.generation = 1;
    cluster.metadata.created_at = Some(at(0));
    cluster.metadata.finalizers = vec![CLUSTER_FINALIZER.to_owned()];
    cluster
}

fn with_pools(mut cluster: Cluster, pools: &[(&str, u32)]) -> Cluster {
    cluster.spec.node_pools = pools
        .iter()
        .map(|(name, n)| NodePool::new(name, *n))
        .collect();
    cluster
}

fn without_fip(mut cluster: Cluster) -> Cluster {
    cluster.spec.api_access.floating_ip = false;
    cluster
}

fn with_members(mut cluster: Cluster, members: &[&str]) -> Cluster {
    cluster.status.api_members = members.iter().map(|m| (*m).to_owned()).collect();
    cluster
}

fn deleting<T: Object>(mut object: T) -> T {
    object.meta_mut().deletion_requested_at = Some(at(10_000));
    object
}

/// The tags the planner puts on every resource of the cluster.
fn cluster_tags() -> Vec<String> {
    vec![cluster_tag(UID), "kaas-cluster-name=demo".to_owned()]
}

fn error() -> ResourceStatus {
    ResourceStatus::Error {
        message: "boom".to_owned(),
    }
}

/// A resource tagged like the planner tags; its id is `KIND:NAME`.
fn mk_resource(
    kind: ResourceKind,
    name: &str,
    status: ResourceStatus,
    address: Option<&str>,
) -> CloudResource {
    mk_resource_id(
        kind,
        &format!("{}:{name}", kind.as_str()),
        name,
        status,
        address,
    )
}

fn mk_resource_id(
    kind: ResourceKind,
    id: &str,
    name: &str,
    status: ResourceStatus,
    address: Option<&str>,
) -> CloudResource {
    CloudResource {
        kind,
        id: id.to_owned(),
        name: name.to_owned(),
        tags: cluster_tags(),
        status,
        address: address.map(str::to_owned),
    }
}

/// Every wanted role, ACTIVE; the load balancer and floating IP have their addresses.
fn full_infra(cluster: &Cluster) -> Vec<CloudResource> {
    wanted_roles(cluster)
        .into_iter()
        .map(|(_, kind, name)| {
            let address = match kind {
                ResourceKind::LoadBalancer | ResourceKind::Port => Some(LB_VIP),
                ResourceKind::FloatingIp => Some(FIP),
                _ => None,
            };
            mk_resource(kind, &name, ResourceStatus::Active, address)
        })
        .collect()
}

fn role_of(cluster: &Cluster, role: &str) -> (ResourceKind, String) {
    let (_, kind, name) = wanted_roles(cluster)
        .into_iter()
        .find(|(r, _, _)| r == role)
        .unwrap_or_else(|| panic!("no role {role}"));
    (kind, name)
}

fn without_role(
    cluster: &Cluster,
    mut resources: Vec<CloudResource>,
    role: &str,
) -> Vec<CloudResource> {
    let (kind, name) = role_of(cluster, role);
    resources.retain(|r| !(r.kind == kind && r.name == name));
    resources
}

fn role_status(
    cluster: &Cluster,
    mut resources: Vec<CloudResource>,
    role: &str,
    status: ResourceStatus,
) -> Vec<CloudResource> {
    let (kind, name) = role_of(cluster, role);
    for r in resources
        .iter_mut()
        .filter(|r| r.kind == kind && r.name == name)
    {
        r.status = status.clone();
    }
    resources
}

/// Machine `demo-POOL-UID` of `cluster`, owned by it, with the machine finalizer.
fn mk_machine(cluster: &Cluster, pool: &str, role: MachineRole, uid: &str) -> Machine {
    let flavor = if role == MachineRole::Worker {
        cluster
            .spec
            .node_pools
            .iter()
            .find(|p| p.name == pool)
            .map_or_else(|| "m1.medium".to_owned(), |p| p.flavor.clone())
    } else {
        cluster.spec.control_plane.flavor.clone()
    };
    let metadata = ObjectMeta {
        name: format!("{}-{pool}-{uid}", cluster.metadata.name),
        tenant: cluster.metadata.tenant.clone(),
        uid: uid.to_owned(),
        generation: 1,
        labels: BTreeMap::from([
            (CLUSTER_LABEL.to_owned(), cluster.metadata.name.clone()),
            (POOL_LABEL.to_owned(), pool.to_owned()),
        ]),
        created_at: Some(at(100)),
        finalizers: vec![MACHINE_FINALIZER.to_owned()],
        owner: Some(OwnerRef {
            kind: "Cluster".to_owned(),
            name: cluster.metadata.name.clone(),
            uid: cluster.metadata.uid.clone(),
        }),
        ..ObjectMeta::default()
    };
    let spec = MachineSpec {
        pool: pool.to_owned(),
        role,
        version: VERSION.to_owned(),
        image: IMAGE.to_owned(),
        flavor,
        zone: None,
    };
    Machine::new(metadata, spec)
}

fn mk_init(cluster: &Cluster, uid: &str) -> Machine {
    mk_machine(cluster, CONTROL_PLANE_POOL, MachineRole::Init, uid)
}

fn mk_cp(cluster: &Cluster, uid: &str) -> Machine {
    mk_machine(cluster, CONTROL_PLANE_POOL, MachineRole::ControlPlane, uid)
}

fn mk_worker(cluster: &Cluster, pool: &str, uid: &str) -> Machine {
    mk_machine(cluster, pool, MachineRole::Worker, uid)
}

fn created(mut machine: Machine, secs: i64) -> Machine {
    machine.metadata.created_at = Some(at(secs));
    machine
}

fn server_id(machine: &Machine) -> String {
    format!("srv-{}", machine.metadata.uid)
}

/// The server of `machine`: tagged with the cluster and `kaas-machine=<uid>`.
fn mk_server(machine: &Machine, status: ResourceStatus, address: Option<&str>) -> CloudResource {
    let mut server = mk_resource_id(
        ResourceKind::Server,
        &server_id(machine),
        &machine.metadata.name,
        status,
        address,
    );
    server.tags.push(machine_tag(&machine.metadata.uid));
    server
}

fn mk_node(server_id: &str, ready: bool) -> Node {
    Node {
        name: format!("node-{server_id}"),
        provider_id: format!("openstack:///{server_id}"),
        ready,
        kubelet_version: VERSION.to_owned(),
        last_transition: None,
        unschedulable: false,
        labels: Default::default(),
    }
}

/// How far a machine got, for the tables.
#[derive(Debug, Clone, Copy)]
enum M {
    /// Recorded, no server.
    NoServer,
    /// Server ACTIVE with an address, no node yet.
    Booting,
    /// Server ACTIVE, node NotReady.
    NotReady,
    /// Server ACTIVE, node Ready.
    Ready,
    /// Server in ERROR.
    Broken,
}

/// Adds `machine` to `observed` in state `state`, its server at `ip`.
fn add(observed: &mut Observed, machine: Machine, state: M, ip: &str) {
    let sid = server_id(&machine);
    match state {
        M::NoServer => {}
        M::Booting => {
            observed
                .resources
                .push(mk_server(&machine, ResourceStatus::Active, Some(ip)))
        }
        M::NotReady | M::Ready => {
            observed
                .resources
                .push(mk_server(&machine, ResourceStatus::Active, Some(ip)));
            observed
                .nodes
                .get_or_insert_with(Vec::new)
                .push(mk_node(&sid, matches!(state, M::Ready)));
        }
        M::Broken => observed.resources.push(mk_server(&machine, error(), None)),
    }
    observed.machines.push(machine);
}

fn with_resources(resources: Vec<CloudResource>) -> Observed {
    Observed {
        resources,
        pki_exists: true,
        ..Observed::default()
    }
}

/// The planner, with the cluster's stack looked up in the built-in catalog as the
/// controller does.
fn plan(cluster: &Cluster, observed: &Observed) -> Plan {
    let mut observed = observed.clone();
    if observed.stack.is_none() {
        static CATALOG: std::sync::OnceLock<kaas_core::stack::StackCatalog> =
            std::sync::OnceLock::new();
        let catalog = CATALOG.get_or_init(|| kaas_core::stack::StackCatalog::builtin().unwrap());
        observed.stack = catalog.find(&cluster.spec.stack).cloned();
    }
    super::plan(cluster, &observed)
}

fn infra_only(cluster: &Cluster) -> Observed {
    with_resources(full_infra(cluster))
}

/// One short line per step; a sorted list so that tests compare sets (with counts).
fn step_name(step: &Step) -> String {
    match step {
        Step::AddFinalizer => "add-finalizer".to_owned(),
        Step::CreateResource { request, .. } => {
            format!("create {} {}", request.kind().as_str(), request.name)
        }
        Step::DeleteResource { kind, name, .. } => format!("delete {} {name}", kind.as_str()),
        Step::SetLoadBalancerMembers { members, .. } => {
            format!("set-members {}", member_strings(members).join(","))
        }
        Step::CreateMachine { spec } => match spec.role {
            MachineRole::Worker => format!("create-machine worker {}", spec.pool),
            role => format!("create-machine {}", role.as_str()),
        },
        Step::CreateServer { machine, .. } => format!("create-server {machine}"),
        Step::DeleteMachine { name, .. } => format!("delete-machine {name}"),
        Step::ReleaseMachine { name } => format!("release-machine {name}"),
        Step::DeleteNode { node, .. } => format!("delete-node {node}"),
        Step::DrainNode { node, .. } => format!("drain {node}"),
        Step::AbandonDrain { node, .. } => format!("abandon-drain {node}"),
        Step::RemoveEtcdMember { node, .. } => format!("remove-etcd-member {node}"),
        Step::EnsurePki => "ensure-pki".to_owned(),
        Step::RemoveFinalizer => "remove-finalizer".to_owned(),
        Step::ApplyAddons { stack, .. } => format!("apply-addons {stack}"),
        Step::RegisterJoinToken { machine, .. } => format!("register-token {machine}"),
        Step::DeleteJoinToken { id, .. } => format!("delete-token {id}"),
        Step::IssuePullCredential => "issue-pull-credential".to_owned(),
        Step::SyncPullSecrets { namespaces } => {
            format!("sync-pull-secrets {}", namespaces.join(","))
        }
        Step::RevokePullCredential { .. } => "revoke-pull-credential".to_owned(),
    }
}

fn step_names(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan.steps.iter().map(step_name).collect();
    names.sort();
    names
}

#[track_caller]
fn assert_steps(plan: &Plan, expected: &[&str]) {
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(step_names(plan), want, "waiting: {:?}", plan.waiting);
}

#[track_caller]
fn assert_waiting_for(plan: &Plan, needle: &str) {
    assert!(
        plan.waiting.iter().any(|w| w.contains(needle)),
        "expected to wait for {needle:?}, waiting: {:?}",
        plan.waiting
    );
}

fn create_resource(plan: &Plan, kind: ResourceKind) -> (&str, &ResourceRequest) {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::CreateResource { role, request } if request.kind() == kind => {
                Some((role.as_str(), request))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no CreateResource of {kind}: {:#?}", plan.steps))
}

fn create_server<'p>(plan: &'p Plan, machine: &str) -> &'p ResourceRequest {
    create_server_at(plan, machine).0
}

/// The request and the API endpoint its user data is rendered for.
fn create_server_at<'p>(plan: &'p Plan, machine: &str) -> (&'p ResourceRequest, &'p str) {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::CreateServer {
                machine: m,
                request,
                endpoint,
                ..
            } if m == machine => Some((request, endpoint.as_str())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no CreateServer for {machine}: {:#?}", plan.steps))
}

fn deleted_ids(plan: &Plan) -> Vec<&str> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::DeleteResource { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

/// Pretends the executor ran the plan's resource steps and the cloud finished them.
fn apply_resource_steps(plan: &Plan, resources: &mut Vec<CloudResource>) {
    for step in &plan.steps {
        match step {
            Step::CreateResource { request, .. } => {
                let kind = request.kind();
                let address = match kind {
                    ResourceKind::LoadBalancer => Some(LB_VIP),
                    ResourceKind::FloatingIp => Some(FIP),
                    _ => None,
                };
                resources.push(mk_resource(
                    kind,
                    &request.name,
                    ResourceStatus::Active,
                    address,
                ));
            }
            Step::DeleteResource { id, .. } => resources.retain(|r| &r.id != id),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Finalizer
// ---------------------------------------------------------------------------------------

#[test]
fn a_cluster_without_the_finalizer_only_gets_it() {
    for observed in [Observed::default(), infra_only(&mk_cluster(3, 3))] {
        let mut cluster = mk_cluster(3, 3);
        cluster.metadata.finalizers.clear();
        let plan = plan(&cluster, &observed);
        assert_eq!(plan.steps, vec![Step::AddFinalizer]);
        assert!(plan.waiting.is_empty(), "{:?}", plan.waiting);
    }
}

#[test]
fn other_finalizers_do_not_count() {
    let mut cluster = mk_cluster(3, 3);
    cluster.metadata.finalizers = vec!["someone.else/finalizer".to_owned()];
    assert_steps(&plan(&cluster, &Observed::default()), &["add-finalizer"]);
}

// ---------------------------------------------------------------------------------------
// Roles and infrastructure creation
// ---------------------------------------------------------------------------------------

#[test]
fn wanted_roles_name_everything_after_the_prefix() {
    let cluster = with_pools(mk_cluster(3, 0), &[("a", 1), ("b", 2)]);
    let roles: Vec<(String, ResourceKind, String)> = wanted_roles(&cluster);
    let expected = [
        ("network", ResourceKind::Network, "kaas-demo-1a2b3c4d"),
        ("subnet", ResourceKind::Subnet, "kaas-demo-1a2b3c4d"),
        ("router", ResourceKind::Router, "kaas-demo-1a2b3c4d"),
        (
            "securityGroup/control-plane",
            ResourceKind::SecurityGroup,
            "kaas-demo-1a2b3c4d-control-plane",
        ),
        (
            "securityGroup/worker",
            ResourceKind::SecurityGroup,
            "kaas-demo-1a2b3c4d-worker",
        ),
        (
            "serverGroup/control-plane",
            ResourceKind::ServerGroup,
            "kaas-demo-1a2b3c4d-control-plane",
        ),
        (
            "serverGroup/a",
            ResourceKind::ServerGroup,
            "kaas-demo-1a2b3c4d-a",
        ),
        (
            "serverGroup/b",
            ResourceKind::ServerGroup,
            "kaas-demo-1a2b3c4d-b",
        ),
        (
            "port/kubeapi-vip",
            ResourceKind::Port,
            "kaas-demo-1a2b3c4d-kubeapi-vip",
        ),
        (
            "loadBalancer",
            ResourceKind::LoadBalancer,
            "kaas-demo-1a2b3c4d-kubeapi",
        ),
        (
            "floatingIp",
            ResourceKind::FloatingIp,
            "kaas-demo-1a2b3c4d-kubeapi",
        ),
        (
            "applicationCredential",
            ResourceKind::ApplicationCredential,
            "kaas-demo-1a2b3c4d",
        ),
    ]
    .map(|(r, k, n)| (r.to_owned(), k, n.to_owned()));
    assert_eq!(roles, expected);

    let roles = wanted_roles(&without_fip(cluster));
    assert_eq!(roles.len(), expected.len() - 1);
    assert!(
        roles
            .iter()
            .all(|(_, kind, _)| *kind != ResourceKind::FloatingIp)
    );
}

#[test]
fn a_fresh_cluster_creates_its_network_alone_and_records_the_init_machine() {
    let plan = plan(&mk_cluster(3, 3), &Observed::default());
    assert_steps(
        &plan,
        &[
            "create network kaas-demo-1a2b3c4d",
            "create-machine init",
            "ensure-pki",
        ],
    );
    // The rest waits for the network, whose creation runs the preflight check: a
    // cluster the cloud cannot hold leaves nothing behind.
    for what in [
        "subnet kaas-demo-1a2b3c4d",
        "router kaas-demo-1a2b3c4d",
        "security group kaas-demo-1a2b3c4d-control-plane",
        "server group kaas-demo-1a2b3c4d-workers",
        "port kaas-demo-1a2b3c4d-kubeapi-vip",
        "load balancer kaas-demo-1a2b3c4d-kubeapi",
        "floating IP kaas-demo-1a2b3c4d-kubeapi",
        "application credential kaas-demo-1a2b3c4d",
    ] {
        assert_waiting_for(&plan, &format!("{what} (after the preflight check)"));
    }
    assert_waiting_for(
        &plan,
        "the workload API before creating machines of pool workers",
    );
    assert!(!plan.is_settled());
}

#[test]
fn every_create_request_is_tagged_with_the_cluster_and_carries_its_role() {
    let plan = plan(&mk_cluster(3, 3), &network_only());
    let mut roles = Vec::new();
    for step in &plan.steps {
        if let Step::CreateResource { role, request } = step {
            assert_eq!(request.tags, cluster_tags(), "{role}");
            roles.push(role.as_str());
        }
    }
    roles.sort_unstable();
    assert_eq!(
        roles,
        [
            "applicationCredential",
            "securityGroup/control-plane",
            "securityGroup/worker",
            "serverGroup/control-plane",
            "serverGroup/workers",
            "subnet",
        ]
    );
}

/// Only the network exists (it went first, alone).
fn network_only() -> Observed {
    with_resources(vec![mk_resource(
        ResourceKind::Network,
        "kaas-demo-1a2b3c4d",
        ResourceStatus::Active,
        None,
    )])
}

#[test]
fn server_groups_are_hard_anti_affinity_for_control_planes_and_soft_per_pool() {
    let cluster = with_pools(mk_cluster(3, 0), &[("a", 1), ("b", 0)]);
    let plan = plan(&cluster, &network_only());
    let mut policies: Vec<(String, ServerGroupPolicy)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateResource { request, .. } => match &request.spec {
                ResourceSpec::ServerGroup { policy } => Some((request.name.clone(), *policy)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        policies,
        [
            (
                "kaas-demo-1a2b3c4d-a".to_owned(),
                ServerGroupPolicy::SoftAntiAffinity
            ),
            (
                "kaas-demo-1a2b3c4d-b".to_owned(),
                ServerGroupPolicy::SoftAntiAffinity
            ),
            (
                "kaas-demo-1a2b3c4d-control-plane".to_owned(),
                ServerGroupPolicy::AntiAffinity
            ),
        ]
    );
}

#[test]
fn security_groups_are_created_with_their_rules() {
    let cluster = mk_cluster(3, 3);
    let plan = plan(&cluster, &Observed::default());
    for step in &plan.steps {
        if let Step::CreateResource { role, request } = step
            && let ResourceSpec::SecurityGroup { rules } = &request.spec
        {
            let cp = role == "securityGroup/control-plane";
            assert_eq!(*rules, security_group_rules(&cluster, cp), "{role}");
        }
    }
}

#[test]
fn network_carries_the_mtu() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.network.mtu = Some(1450);
    let plan = plan(&cluster, &Observed::default());
    let (role, request) = create_resource(&plan, ResourceKind::Network);
    assert_eq!(role, "network");
    assert_eq!(request.spec, ResourceSpec::Network { mtu: Some(1450) });
}

#[test]
fn with_a_network_the_subnet_follows() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.network.dns_servers = vec!["9.9.9.9".to_owned()];
    let observed = with_resources(vec![mk_resource(
        ResourceKind::Network,
        "kaas-demo-1a2b3c4d",
        ResourceStatus::Active,
        None,
    )]);
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        &[
            "create subnet kaas-demo-1a2b3c4d",
            "create applicationCredential kaas-demo-1a2b3c4d",
            "create securityGroup kaas-demo-1a2b3c4d-control-plane",
            "create securityGroup kaas-demo-1a2b3c4d-worker",
            "create serverGroup kaas-demo-1a2b3c4d-control-plane",
            "create serverGroup kaas-demo-1a2b3c4d-workers",
            "create-machine init",
        ],
    );
    let (role, request) = create_resource(&plan, ResourceKind::Subnet);
    assert_eq!(role, "subnet");
    assert_eq!(
        request.spec,
        ResourceSpec::Subnet {
            network_id: NETWORK_ID.to_owned(),
            cidr: "10.0.0.0/20".to_owned(),
            dns_servers: vec!["9.9.9.9".to_owned()],
        }
    );
}

#[test]
fn with_a_subnet_the_router_and_the_vip_port_follow() {
    let cluster = mk_cluster(3, 3);
    let observed = with_resources(vec![
        mk_resource(
            ResourceKind::Network,
            "kaas-demo-1a2b3c4d",
            ResourceStatus::Active,
            None,
        ),
        mk_resource(
            ResourceKind::Subnet,
            "kaas-demo-1a2b3c4d",
            ResourceStatus::Active,
            None,
        ),
    ]);
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        &[
            "create router kaas-demo-1a2b3c4d",
            "create securityGroup kaas-demo-1a2b3c4d-control-plane",
            "create securityGroup kaas-demo-1a2b3c4d-worker",
            "create serverGroup kaas-demo-1a2b3c4d-control-plane",
            "create serverGroup kaas-demo-1a2b3c4d-workers",
            "create port kaas-demo-1a2b3c4d-kubeapi-vip",
            "create applicationCredential kaas-demo-1a2b3c4d",
            "create-machine init",
        ],
    );
    assert_waiting_for(
        &plan,
        "floating IP kaas-demo-1a2b3c4d-kubeapi (needs what comes before it)",
    );
    assert_waiting_for(
        &plan,
        "load balancer kaas-demo-1a2b3c4d-kubeapi (needs what comes before it)",
    );
    let (role, port) = create_resource(&plan, ResourceKind::Port);
    assert_eq!(role, "port/kubeapi-vip");
    assert_eq!(
        port.spec,
        ResourceSpec::Port {
            network_id: "network:kaas-demo-1a2b3c4d".to_owned(),
            subnet_id: SUBNET_ID.to_owned(),
            security_group_ids: vec![],
        }
    );
    let (_, credential) = create_resource(&plan, ResourceKind::ApplicationCredential);
    match &credential.spec {
        ResourceSpec::ApplicationCredential {
            secret,
            description,
            ..
        } => {
            // The executor fills in the secret it sealed first.
            assert!(secret.0.is_empty());
            assert!(description.contains(UID), "{description}");
        }
        other => panic!("{other:?}"),
    }
    let (_, router) = create_resource(&plan, ResourceKind::Router);
    assert_eq!(
        router.spec,
        ResourceSpec::Router {
            external_network: "public".to_owned(),
            subnet_ids: vec![SUBNET_ID.to_owned()]
        }
    );
}

#[test]
fn with_the_vip_port_the_load_balancer_and_floating_ip_follow() {
    let cluster = mk_cluster(3, 0);
    // The port is still building: its id is enough.
    let resources = role_status(
        &cluster,
        without_role(
            &cluster,
            without_role(&cluster, full_infra(&cluster), "floatingIp"),
            "loadBalancer",
        ),
        "port/kubeapi-vip",
        ResourceStatus::Pending,
    );
    let plan = plan(&cluster, &with_resources(resources));
    assert_steps(
        &plan,
        &[
            "create loadBalancer kaas-demo-1a2b3c4d-kubeapi",
            "create floatingIp kaas-demo-1a2b3c4d-kubeapi",
            "create-machine init",
        ],
    );
    let (role, lb) = create_resource(&plan, ResourceKind::LoadBalancer);
    assert_eq!(role, "loadBalancer");
    assert_eq!(
        lb.spec,
        ResourceSpec::LoadBalancer {
            subnet_id: SUBNET_ID.to_owned(),
            vip_port_id: "port:kaas-demo-1a2b3c4d-kubeapi-vip".to_owned(),
            port: API_PORT
        }
    );
    let (role, fip) = create_resource(&plan, ResourceKind::FloatingIp);
    assert_eq!(role, "floatingIp");
    assert_eq!(
        fip.spec,
        ResourceSpec::FloatingIp {
            external_network: "public".to_owned(),
            port_id: "port:kaas-demo-1a2b3c4d-kubeapi-vip".to_owned()
        }
    );
}

#[test]
fn the_floating_ip_waits_for_a_whole_router() {
    let cluster = mk_cluster(3, 0);
    for status in [ResourceStatus::Pending, error()] {
        let resources = role_status(
            &cluster,
            without_role(&cluster, full_infra(&cluster), "floatingIp"),
            "router",
            status.clone(),
        );
        let plan = plan(&cluster, &with_resources(resources));
        assert!(
            !step_names(&plan).contains(&"create floatingIp kaas-demo-1a2b3c4d-kubeapi".to_owned()),
            "{status:?}: {:?}",
            step_names(&plan)
        );
        assert_waiting_for(
            &plan,
            "floating IP kaas-demo-1a2b3c4d-kubeapi (needs what comes before it)",
        );
    }
}

#[test]
fn infrastructure_comes_up_in_dependency_order() {
    // Each round, the cloud finishes whatever the previous plan created.
    for (cluster, rounds) in [
        (
            mk_cluster(3, 3),
            vec![
                // Alone, after the preflight check.
                vec!["create network kaas-demo-1a2b3c4d"],
                vec![
                    "create subnet kaas-demo-1a2b3c4d",
                    "create securityGroup kaas-demo-1a2b3c4d-control-plane",
                    "create securityGroup kaas-demo-1a2b3c4d-worker",
                    "create serverGroup kaas-demo-1a2b3c4d-control-plane",
                    "create serverGroup kaas-demo-1a2b3c4d-workers",
                    "create applicationCredential kaas-demo-1a2b3c4d",
                ],
                vec![
                    "create port kaas-demo-1a2b3c4d-kubeapi-vip",
                    "create router kaas-demo-1a2b3c4d",
                ],
                vec![
                    "create loadBalancer kaas-demo-1a2b3c4d-kubeapi",
                    "create floatingIp kaas-demo-1a2b3c4d-kubeapi",
                ],
                vec![],
            ],
        ),
        (
            without_fip(with_pools(mk_cluster(1, 0), &[])),
            vec![
                vec!["create network kaas-demo-1a2b3c4d"],
                vec![
                    "create subnet kaas-demo-1a2b3c4d",
                    "create securityGroup kaas-demo-1a2b3c4d-control-plane",
                    "create securityGroup kaas-demo-1a2b3c4d-worker",
                    "create serverGroup kaas-demo-1a2b3c4d-control-plane",
                    "create applicationCredential kaas-demo-1a2b3c4d",
                ],
                vec![
                    "create port kaas-demo-1a2b3c4d-kubeapi-vip",
                    "create router kaas-demo-1a2b3c4d",
                ],
                vec!["create loadBalancer kaas-demo-1a2b3c4d-kubeapi"],
                vec![],
            ],
        ),
    ] {
        let mut resources = Vec::new();
        for (i, expected) in rounds.into_iter().enumerate() {
            let plan = plan(&cluster, &with_resources(resources.clone()));
            let mut got: Vec<String> = step_names(&plan)
                .into_iter()
                .filter(|s| s.starts_with("create "))
                .collect();
            got.sort();
            let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
            expected.sort();
            assert_eq!(got, expected, "round {i}");
            apply_resource_steps(&plan, &mut resources);
        }
        let mut have: Vec<(ResourceKind, String)> =
            resources.iter().map(|r| (r.kind, r.name.clone())).collect();
        let mut want: Vec<(ResourceKind, String)> = full_infra(&cluster)
            .iter()
            .map(|r| (r.kind, r.name.clone()))
            .collect();
        have.sort();
        want.sort();
        assert_eq!(have, want);
    }
}

#[test]
fn without_a_floating_ip_the_api_endpoint_is_the_load_balancer_vip() {
    let cluster = without_fip(mk_cluster(3, 0));
    let observed = infra_only(&cluster);
    assert!(
        observed
            .resources
            .iter()
            .all(|r| r.kind != ResourceKind::FloatingIp)
    );
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &["create-machine init"]);
    assert_eq!(
        api_endpoint(&cluster, &classify(&cluster, &observed)),
        Some(format!("https://{LB_VIP}:6443"))
    );

    // With one, it is the floating IP.
    let cluster = mk_cluster(3, 0);
    let observed = infra_only(&cluster);
    assert_eq!(
        api_endpoint(&cluster, &classify(&cluster, &observed)),
        Some(format!("https://{FIP}:6443"))
    );
}

#[test]
fn a_floating_ip_no_longer_wanted_is_deleted() {
    let cluster = mk_cluster(3, 0);
    let observed = infra_only(&cluster); // with the floating IP
    let plan = plan(&without_fip(cluster), &observed);
    assert_steps(
        &plan,
        &[
            "create-machine init",
            "delete floatingIp kaas-demo-1a2b3c4d-kubeapi",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Adoption, broken resources, twins
// ---------------------------------------------------------------------------------------

#[test]
fn present_resources_are_adopted_whatever_their_state() {
    for status in [
        ResourceStatus::Pending,
        ResourceStatus::Active,
        ResourceStatus::Deleting,
    ] {
        let cluster = mk_cluster(3, 3);
        let mut resources = full_infra(&cluster);
        for r in &mut resources {
            r.status = status.clone();
        }
        let plan = plan(&cluster, &with_resources(resources));
        assert_steps(&plan, &["create-machine init"]);
        if status == ResourceStatus::Active {
            assert!(
                !plan.waiting.iter().any(|w| w.contains("network")),
                "{:?}",
                plan.waiting
            );
        } else {
            assert_waiting_for(&plan, "network kaas-demo-1a2b3c4d");
            assert_waiting_for(&plan, "load balancer kaas-demo-1a2b3c4d-kubeapi");
        }
    }
}

#[test]
fn a_resource_in_error_is_deleted_and_not_created_again_in_the_same_plan() {
    for (role, expected) in [
        ("network", "delete network kaas-demo-1a2b3c4d"),
        ("subnet", "delete subnet kaas-demo-1a2b3c4d"),
        ("router", "delete router kaas-demo-1a2b3c4d"),
        (
            "securityGroup/control-plane",
            "delete securityGroup kaas-demo-1a2b3c4d-control-plane",
        ),
        (
            "securityGroup/worker",
            "delete securityGroup kaas-demo-1a2b3c4d-worker",
        ),
        (
            "serverGroup/control-plane",
            "delete serverGroup kaas-demo-1a2b3c4d-control-plane",
        ),
        (
            "serverGroup/workers",
            "delete serverGroup kaas-demo-1a2b3c4d-workers",
        ),
        (
            "loadBalancer",
            "delete loadBalancer kaas-demo-1a2b3c4d-kubeapi",
        ),
        ("floatingIp", "delete floatingIp kaas-demo-1a2b3c4d-kubeapi"),
    ] {
        let cluster = mk_cluster(3, 3);
        let resources = role_status(&cluster, full_infra(&cluster), role, error());
        let plan = plan(&cluster, &with_resources(resources));
        assert_steps(&plan, &["create-machine init", expected]);
    }
}

#[test]
fn a_broken_resource_already_being_deleted_is_waited_for() {
    let cluster = mk_cluster(3, 3);
    let resources = role_status(
        &cluster,
        full_infra(&cluster),
        "router",
        ResourceStatus::Deleting,
    );
    let plan = plan(&cluster, &with_resources(resources));
    assert_steps(&plan, &["create-machine init"]);
    assert_waiting_for(&plan, "router kaas-demo-1a2b3c4d");
}

#[test]
fn of_twins_the_higher_id_is_deleted() {
    for (role, kind, name) in [
        ("network", ResourceKind::Network, "kaas-demo-1a2b3c4d"),
        (
            "loadBalancer",
            ResourceKind::LoadBalancer,
            "kaas-demo-1a2b3c4d-kubeapi",
        ),
        (
            "serverGroup/workers",
            ResourceKind::ServerGroup,
            "kaas-demo-1a2b3c4d-workers",
        ),
        (
            "securityGroup/worker",
            ResourceKind::SecurityGroup,
            "kaas-demo-1a2b3c4d-worker",
        ),
    ] {
        let cluster = mk_cluster(3, 3);
        let mut resources = without_role(&cluster, full_infra(&cluster), role);
        // The higher id comes first: order of observation does not matter.
        resources.push(mk_resource_id(
            kind,
            "id-2",
            name,
            ResourceStatus::Active,
            Some(LB_VIP),
        ));
        resources.push(mk_resource_id(
            kind,
            "id-1",
            name,
            ResourceStatus::Active,
            Some(LB_VIP),
        ));
        let observed = with_resources(resources);
        let plan = plan(&cluster, &observed);
        let delete = format!("delete {} {name}", kind.as_str());
        assert_steps(&plan, &["create-machine init", &delete]);
        assert_eq!(deleted_ids(&plan), ["id-2"], "{role}");
        let infra = classify(&cluster, &observed);
        assert_eq!(
            infra.get(role).map(|r| r.id.as_str()),
            Some("id-1"),
            "{role}"
        );
        assert_eq!(
            infra
                .unwanted
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["id-2"]
        );
    }
}

#[test]
fn resources_that_play_no_role_are_deleted() {
    for (extra, expected) in [
        // The server group of a pool removed from the spec.
        (
            mk_resource(
                ResourceKind::ServerGroup,
                "kaas-demo-1a2b3c4d-old",
                ResourceStatus::Active,
                None,
            ),
            Some("delete serverGroup kaas-demo-1a2b3c4d-old"),
        ),
        // Something tagged with the cluster under an unknown name.
        (
            mk_resource(ResourceKind::Network, "leftover", error(), None),
            Some("delete network leftover"),
        ),
        // Already going: waited for.
        (
            mk_resource(
                ResourceKind::Router,
                "leftover",
                ResourceStatus::Deleting,
                None,
            ),
            None,
        ),
    ] {
        let cluster = mk_cluster(3, 3);
        let mut observed = infra_only(&cluster);
        observed.resources.push(extra.clone());
        let plan = plan(&cluster, &observed);
        match expected {
            Some(step) => assert_steps(&plan, &["create-machine init", step]),
            None => {
                assert_steps(&plan, &["create-machine init"]);
                assert_waiting_for(
                    &plan,
                    &format!("{} {} to be deleted", extra.kind, extra.name),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Servers wait for the infrastructure
// ---------------------------------------------------------------------------------------

#[test]
fn no_server_before_its_infrastructure_exists() {
    type Mutation = fn(&Cluster, Vec<CloudResource>) -> Vec<CloudResource>;
    let cases: [(&str, bool, Mutation); 7] = [
        ("no network", true, |c, r| without_role(c, r, "network")),
        ("no subnet", true, |c, r| without_role(c, r, "subnet")),
        ("no control-plane security group", true, |c, r| {
            without_role(c, r, "securityGroup/control-plane")
        }),
        ("no control-plane server group", true, |c, r| {
            without_role(c, r, "serverGroup/control-plane")
        }),
        ("no floating IP yet", true, |c, r| {
            without_role(c, r, "floatingIp")
        }),
        ("floating IP without its address", true, |c, mut r| {
            let (kind, name) = role_of(c, "floatingIp");
            r.retain(|x| !(x.kind == kind && x.name == name));
            r.push(mk_resource(kind, &name, ResourceStatus::Pending, None));
            r
        }),
        (
            "no floating IP wanted, load balancer without a VIP",
            false,
            |c, mut r| {
                let (kind, name) = role_of(c, "loadBalancer");
                r.retain(|x| !(x.kind == kind && x.name == name));
                r.push(mk_resource(kind, &name, ResourceStatus::Pending, None));
                r
            },
        ),
    ];
    for (what, floating_ip, mutate) in cases {
        let mut cluster = mk_cluster(3, 0);
        cluster.spec.api_access.floating_ip = floating_ip;
        let mut observed = with_resources(mutate(&cluster, full_infra(&cluster)));
        add(&mut observed, mk_init(&cluster, "m1"), M::NoServer, "");
        let plan = plan(&cluster, &observed);
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::CreateServer { .. })),
            "{what}: {:?}",
            step_names(&plan)
        );
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::CreateMachine { .. })),
            "{what}"
        );
        assert_waiting_for(&plan, "infrastructure for machine demo-control-plane-m1");
    }
}

#[test]
fn after_a_failed_boot_the_next_server_comes_later_each_time() {
    let cluster = mk_cluster(1, 0);
    let failed_at = at(1_000);
    // (failures so far, seconds since the last, whether the next server is created)
    let cases = [
        (1, 5, false),
        (1, 10, true),
        (2, 15, false),
        (2, 20, true),
        (3, 39, false),
        (3, 40, true),
        (12, 599, false),
        (12, 600, true),
    ];
    for (failures, since, creates) in cases {
        let mut observed = infra_only(&cluster);
        observed.now = failed_at + chrono::Duration::seconds(since);
        let mut m = mk_init(&cluster, "m1");
        m.status.boot_failures = failures;
        m.status.last_failed_server = Some("s-old".to_owned());
        m.status.last_boot_failure = Some(failed_at);
        m.status.failure_message = Some("No valid host was found.".to_owned());
        add(&mut observed, m, M::NoServer, "");
        let plan = plan(&cluster, &observed);
        let created = plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateServer { .. }));
        assert_eq!(
            created,
            creates,
            "{failures} failures, {since} s: {:?}",
            step_names(&plan)
        );
        if !creates {
            assert_waiting_for(&plan, "No valid host was found.");
        }
    }
}

#[test]
fn a_failed_boot_is_counted_once_per_server() {
    let cluster = mk_cluster(1, 0);
    let m = mk_init(&cluster, "m1");
    let mut broken = infra_only(&cluster);
    add(&mut broken, m.clone(), M::Broken, "");
    let infra = super::classify(&cluster, &broken);
    let now = at(50);
    let first = crate::cluster::status::machine_status(&m, &infra, None, now);
    assert_eq!(first.boot_failures, 1);
    assert_eq!(first.last_failed_server, Some(server_id(&m)));
    assert_eq!(first.last_boot_failure, Some(now));
    // Seen again (the server is not deleted yet): not counted again.
    let mut again = m.clone();
    again.status = first.clone();
    let second = crate::cluster::status::machine_status(&again, &infra, None, at(60));
    assert_eq!(second.boot_failures, 1);
    assert_eq!(second.last_boot_failure, Some(now));
    // Gone: the count and the reason stay for the wait.
    let mut gone = infra_only(&cluster);
    add(&mut gone, again.clone(), M::NoServer, "");
    let infra = super::classify(&cluster, &gone);
    let third = crate::cluster::status::machine_status(&again, &infra, None, at(70));
    assert_eq!(third.boot_failures, 1);
    assert!(third.failure_message.is_some());
    assert_eq!(third.failure_message, first.failure_message);
}

// ---------------------------------------------------------------------------------------
// Control plane
// ---------------------------------------------------------------------------------------

/// The members a set of CP machines' servers make, as `status.apiMembers` records them.
fn members_of(observed: &Observed) -> Vec<String> {
    let cps: Vec<&str> = observed
        .machines
        .iter()
        .filter(|m| m.is_control_plane() && !m.metadata.is_deleting())
        .map(|m| m.metadata.uid.as_str())
        .collect();
    let mut members: Vec<String> = observed
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Server && r.status != ResourceStatus::Deleting)
        .filter(|r| {
            r.tags
                .iter()
                .any(|t| cps.iter().any(|uid| *t == machine_tag(uid)))
        })
        .filter_map(|r| r.address.as_ref().map(|a| format!("{a}:6443")))
        .collect();
    members.sort();
    members
}

/// Control-plane replicas, the machines (uid, role, state), the expected steps.
type CpCase = (u32, Vec<(&'static str, MachineRole, M)>, Vec<&'static str>);

#[test]
fn control_plane_grows_one_ready_machine_at_a_time() {
    use MachineRole::{ControlPlane as Cp, Init};
    let cases: Vec<CpCase> = vec![
        (3, vec![], vec!["create-machine init"]),
        (
            3,
            vec![("m1", Init, M::NoServer)],
            vec!["create-server demo-control-plane-m1"],
        ),
        (3, vec![("m1", Init, M::Booting)], vec![]),
        (3, vec![("m1", Init, M::NotReady)], vec![]),
        (
            3,
            vec![("m1", Init, M::Ready)],
            vec!["create-machine control-plane"],
        ),
        (
            3,
            vec![("m1", Init, M::Ready), ("m2", Cp, M::NoServer)],
            vec!["create-server demo-control-plane-m2"],
        ),
        (
            3,
            vec![("m1", Init, M::Ready), ("m2", Cp, M::Booting)],
            vec![],
        ),
        (
            3,
            vec![("m1", Init, M::Ready), ("m2", Cp, M::NotReady)],
            vec![],
        ),
        (
            3,
            vec![("m1", Init, M::Ready), ("m2", Cp, M::Ready)],
            vec!["create-machine control-plane"],
        ),
        (
            3,
            vec![
                ("m1", Init, M::Ready),
                ("m2", Cp, M::Ready),
                ("m3", Cp, M::Ready),
            ],
            vec![],
        ),
        (
            5,
            vec![
                ("m1", Init, M::Ready),
                ("m2", Cp, M::Ready),
                ("m3", Cp, M::Ready),
            ],
            vec!["create-machine control-plane"],
        ),
        (1, vec![("m1", Init, M::Ready)], vec![]),
        // Shrinking: the newest goes, only while all are ready.
        (
            1,
            vec![
                ("m1", Init, M::Ready),
                ("m2", Cp, M::Ready),
                ("m3", Cp, M::Ready),
            ],
            // The leaving machine is out of the load balancer at once.
            vec![
                "delete-machine demo-control-plane-m3",
                "set-members 10.0.0.11:6443,10.0.0.12:6443",
            ],
        ),
        (
            1,
            vec![
                ("m1", Init, M::Ready),
                ("m2", Cp, M::Ready),
                ("m3", Cp, M::NotReady),
            ],
            vec![],
        ),
        // A broken server is replaced; nothing grows meanwhile.
        (
            3,
            vec![("m1", Init, M::Broken)],
            vec!["delete server demo-control-plane-m1"],
        ),
        (
            3,
            vec![("m1", Init, M::Ready), ("m2", Cp, M::Broken)],
            vec!["delete server demo-control-plane-m2"],
        ),
    ];
    for (i, (replicas, machines, expected)) in cases.into_iter().enumerate() {
        let cluster = mk_cluster(replicas, 0);
        let mut observed = infra_only(&cluster);
        for (n, (uid, role, state)) in machines.into_iter().enumerate() {
            let m = created(
                mk_machine(&cluster, CONTROL_PLANE_POOL, role, uid),
                100 + n as i64,
            );
            add(&mut observed, m, state, &format!("10.0.0.{}", 11 + n));
        }
        let members = members_of(&observed);
        let cluster = with_members(
            cluster,
            &members.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let plan = plan(&cluster, &observed);
        let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(
            step_names(&plan),
            want,
            "case {i}, waiting {:?}",
            plan.waiting
        );
    }
}

#[test]
fn the_init_machine_spec_comes_from_the_stack_and_the_control_plane() {
    let mut cluster = mk_cluster(3, 0);
    cluster.spec.control_plane.flavor = "m1.large".to_owned();
    let plan = plan(&cluster, &infra_only(&cluster));
    assert_eq!(
        plan.steps,
        vec![Step::CreateMachine {
            spec: MachineSpec {
                pool: "control-plane".to_owned(),
                role: MachineRole::Init,
                version: VERSION.to_owned(),
                image: IMAGE.to_owned(),
                flavor: "m1.large".to_owned(),
                zone: None,
            }
        }]
    );
    assert_eq!(plan.steps[0].stage(), Stage::ControlPlane);
}

#[test]
fn a_waiting_control_plane_is_not_settled() {
    let cluster = mk_cluster(3, 0);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Booting,
        "10.0.0.11",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(&plan, &[]);
    assert_waiting_for(&plan, "the control plane to settle");
    assert_waiting_for(
        &plan,
        "machine demo-control-plane-m1 to become a ready node",
    );
    assert!(!plan.is_settled());
}

#[test]
fn a_full_ready_cluster_is_settled() {
    let cluster = mk_cluster(3, 2);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(&mut observed, mk_cp(&cluster, "m2"), M::Ready, "10.0.0.12");
    add(&mut observed, mk_cp(&cluster, "m3"), M::Ready, "10.0.0.13");
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w1"),
        M::Ready,
        "10.0.0.21",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w2"),
        M::Ready,
        "10.0.0.22",
    );
    let cluster = with_members(
        cluster,
        &["10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"],
    );
    let plan = plan(&cluster, &observed);
    assert_eq!(plan, Plan::default());
    assert!(plan.is_settled());
}

#[test]
fn no_second_init_while_the_first_is_being_deleted() {
    let cluster = mk_cluster(3, 0);
    let mut observed = infra_only(&cluster);
    let init = deleting(mk_init(&cluster, "m1"));
    observed.resources.push(mk_server(
        &init,
        ResourceStatus::Deleting,
        Some("10.0.0.11"),
    ));
    observed.machines.push(init);
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &[]);
    assert_waiting_for(&plan, "server demo-control-plane-m1 to be deleted");
    assert_waiting_for(&plan, "the control plane to settle");
}

#[test]
fn an_unknown_stack_plans_no_machines() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.stack = "scs-0.1".to_owned();
    let plan = plan(&cluster, &infra_only(&cluster));
    assert_steps(&plan, &[]);
    assert_waiting_for(&plan, "cluster stack scs-0.1 to exist");
}

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

#[test]
fn a_control_plane_server_request_has_tags_metadata_and_control_plane_groups() {
    let cluster = mk_cluster(3, 3);
    let mut observed = infra_only(&cluster);
    add(&mut observed, mk_init(&cluster, "m1"), M::NoServer, "");
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &["create-server demo-control-plane-m1"]);
    assert_eq!(plan.steps[0].stage(), Stage::ControlPlane);
    let request = create_server(&plan, "demo-control-plane-m1");
    assert_eq!(request.name, "demo-control-plane-m1");
    assert_eq!(
        request.tags,
        [
            format!("kaas-cluster={UID}"),
            "kaas-cluster-name=demo".to_owned(),
            "kaas-machine=m1".to_owned(),
            // The role, so the cloud alone tells which servers hold etcd.
            "kaas-role=init".to_owned()
        ]
    );
    let ResourceSpec::Server {
        flavor,
        image,
        network_id,
        security_group_ids,
        server_group_id,
        availability_zone,
        user_data,
        metadata,
    } = &request.spec
    else {
        panic!("not a server: {request:?}")
    };
    assert_eq!(flavor, "m1.medium");
    assert_eq!(image, IMAGE);
    assert_eq!(network_id, NETWORK_ID);
    assert_eq!(security_group_ids, &[CP_SG_ID.to_owned()]);
    assert_eq!(server_group_id.as_deref(), Some(CP_SGROUP_ID));
    assert_eq!(availability_zone, &None);
    assert_eq!(
        metadata,
        &BTreeMap::from([
            ("kaas-cluster-uid".to_owned(), UID.to_owned()),
            ("kaas-role".to_owned(), "init".to_owned()),
            ("kaas-kubernetes-version".to_owned(), VERSION.to_owned()),
            (
                "kaas-machine".to_owned(),
                "demo-control-plane-m1".to_owned()
            ),
        ])
    );
    // The executor renders the user data (it needs the cluster's keys) for the
    // endpoint the plan chose: the floating IP.
    assert_eq!(user_data, &UserData::default());
    let (_, endpoint) = create_server_at(&plan, "demo-control-plane-m1");
    assert_eq!(endpoint, format!("https://{FIP}:6443"));
}

#[test]
fn a_worker_server_request_uses_the_worker_group_and_its_pool_server_group() {
    let cluster = without_fip(with_pools(mk_cluster(1, 0), &[("a", 1), ("workers", 1)]));
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "a", "a1"),
        M::Ready,
        "10.0.0.21",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w1"),
        M::NoServer,
        "",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(&plan, &["create-server demo-workers-w1"]);
    assert_eq!(plan.steps[0].stage(), Stage::NodePools);
    let request = create_server(&plan, "demo-workers-w1");
    assert!(request.tags.contains(&cluster_tag(UID)));
    assert!(request.tags.contains(&"kaas-machine=w1".to_owned()));
    let ResourceSpec::Server {
        security_group_ids,
        server_group_id,
        metadata,
        user_data,
        ..
    } = &request.spec
    else {
        panic!("not a server: {request:?}")
    };
    assert_eq!(security_group_ids, &[WORKER_SG_ID.to_owned()]);
    assert_eq!(server_group_id.as_deref(), Some(WORKERS_SGROUP_ID));
    assert_eq!(metadata.get(ROLE_KEY).map(String::as_str), Some("worker"));
    assert_eq!(metadata.get(CLUSTER_UID_KEY).map(String::as_str), Some(UID));
    // No floating IP: the nodes join through the load balancer's VIP.
    assert_eq!(user_data, &UserData::default());
    let (_, endpoint) = create_server_at(&plan, "demo-workers-w1");
    assert_eq!(endpoint, format!("https://{LB_VIP}:6443"));
}

#[test]
fn servers_by_state() {
    for (state, expected, waiting) in [
        (M::NoServer, vec!["create-server demo-workers-w1"], None),
        (
            M::Booting,
            vec![],
            Some("machine demo-workers-w1 to become a ready node"),
        ),
        (
            M::NotReady,
            vec![],
            Some("machine demo-workers-w1 to become a ready node"),
        ),
        (M::Ready, vec![], None),
        (M::Broken, vec!["delete server demo-workers-w1"], None),
    ] {
        let cluster = mk_cluster(1, 1);
        let mut observed = infra_only(&cluster);
        add(
            &mut observed,
            mk_init(&cluster, "m1"),
            M::Ready,
            "10.0.0.11",
        );
        add(
            &mut observed,
            mk_worker(&cluster, "workers", "w1"),
            state,
            "10.0.0.21",
        );
        let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
        assert_steps(&plan, &expected);
        match waiting {
            Some(w) => assert_waiting_for(&plan, w),
            None => assert!(plan.waiting.is_empty(), "{state:?}: {:?}", plan.waiting),
        }
    }
}

#[test]
fn a_pending_server_is_waited_for() {
    let cluster = mk_cluster(1, 0);
    let mut observed = infra_only(&cluster);
    let init = mk_init(&cluster, "m1");
    observed
        .resources
        .push(mk_server(&init, ResourceStatus::Pending, None));
    observed.machines.push(init);
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &[]);
    assert_waiting_for(
        &plan,
        "machine demo-control-plane-m1 to become a ready node",
    );
}

// ---------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------

#[test]
fn workers_wait_for_a_ready_node() {
    for (init, nodes_answer) in [
        (M::NoServer, false),
        (M::Booting, false),
        (M::Booting, true),
        (M::NotReady, true),
    ] {
        let cluster = mk_cluster(1, 3);
        let mut observed = infra_only(&cluster);
        add(&mut observed, mk_init(&cluster, "m1"), init, "10.0.0.11");
        if nodes_answer {
            observed.nodes.get_or_insert_with(Vec::new);
        }
        let plan = plan(&cluster, &observed);
        assert!(
            !plan.steps.iter().any(|s| s.stage() == Stage::NodePools),
            "{init:?}: {:?}",
            step_names(&plan)
        );
        assert_waiting_for(
            &plan,
            "the workload API before creating machines of pool workers",
        );
    }
}

#[test]
fn once_the_api_answers_every_missing_worker_of_every_pool_is_planned() {
    let cluster = with_pools(
        mk_cluster(3, 0),
        &[("a", 2), ("b", 3), ("c", 1), ("empty", 0)],
    );
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "c", "c1"),
        M::Ready,
        "10.0.0.31",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "b", "b1"),
        M::NoServer,
        "",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(
        &plan,
        &[
            "create-machine control-plane",
            "create-machine worker a",
            "create-machine worker a",
            "create-machine worker b",
            "create-machine worker b",
            "create-server demo-b-b1",
        ],
    );
}

#[test]
fn worker_machines_get_the_pool_flavor_and_the_stack() {
    let mut cluster = mk_cluster(1, 1);
    cluster.spec.node_pools[0].flavor = "m1.xlarge".to_owned();
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_eq!(
        plan.steps,
        vec![Step::CreateMachine {
            spec: MachineSpec {
                pool: "workers".to_owned(),
                role: MachineRole::Worker,
                version: VERSION.to_owned(),
                image: IMAGE.to_owned(),
                flavor: "m1.xlarge".to_owned(),
                zone: None,
            }
        }]
    );
    assert_eq!(plan.steps[0].stage(), Stage::NodePools);
}

#[test]
fn scale_down_removes_unready_first_then_newest() {
    // w1 oldest and ready, w2 NotReady, w3 ready, w4 newest and still booting.
    for (replicas, expected) in [
        (4, vec![]),
        (3, vec!["delete-machine demo-workers-w4"]),
        (
            2,
            vec![
                "delete-machine demo-workers-w2",
                "delete-machine demo-workers-w4",
            ],
        ),
        (
            1,
            vec![
                "delete-machine demo-workers-w2",
                "delete-machine demo-workers-w3",
                "delete-machine demo-workers-w4",
            ],
        ),
        (
            0,
            vec![
                "delete-machine demo-workers-w1",
                "delete-machine demo-workers-w2",
                "delete-machine demo-workers-w3",
                "delete-machine demo-workers-w4",
            ],
        ),
    ] {
        let cluster = mk_cluster(1, replicas);
        let mut observed = infra_only(&cluster);
        add(
            &mut observed,
            mk_init(&cluster, "m1"),
            M::Ready,
            "10.0.0.11",
        );
        for (uid, secs, state) in [
            ("w1", 1, M::Ready),
            ("w2", 2, M::NotReady),
            ("w3", 3, M::Ready),
            ("w4", 4, M::Booting),
        ] {
            let m = created(mk_worker(&cluster, "workers", uid), 1000 + secs);
            add(&mut observed, m, state, &format!("10.0.0.2{secs}"));
        }
        let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
        let deletions: Vec<String> = step_names(&plan)
            .into_iter()
            .filter(|s| s.starts_with("delete-machine"))
            .collect();
        assert_eq!(deletions, expected, "replicas {replicas}");
        // The order is the documented one: unready (newest first), then newest.
        let ordered: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::DeleteMachine { name, reason, .. } => {
                    assert_eq!(reason, &format!("pool workers scaled down to {replicas}"));
                    Some(name.as_str())
                }
                _ => None,
            })
            .collect();
        let full = [
            "demo-workers-w4",
            "demo-workers-w2",
            "demo-workers-w3",
            "demo-workers-w1",
        ];
        assert_eq!(
            ordered,
            full[..4 - replicas as usize],
            "replicas {replicas}"
        );
    }
}

#[test]
fn scale_down_among_ready_workers_takes_the_newest() {
    let cluster = mk_cluster(1, 1);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    // Observed out of order.
    add(
        &mut observed,
        created(mk_worker(&cluster, "workers", "w2"), 2000),
        M::Ready,
        "10.0.0.22",
    );
    add(
        &mut observed,
        created(mk_worker(&cluster, "workers", "w1"), 1000),
        M::Ready,
        "10.0.0.21",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(&plan, &["delete-machine demo-workers-w2"]);
}

#[test]
fn machines_of_a_removed_pool_are_deleted() {
    let cluster = mk_cluster(1, 1);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w1"),
        M::Ready,
        "10.0.0.21",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "old", "o1"),
        M::Ready,
        "10.0.0.31",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "old", "o2"),
        M::Ready,
        "10.0.0.32",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(
        &plan,
        &["delete-machine demo-old-o1", "delete-machine demo-old-o2"],
    );
    assert!(plan.steps.iter().all(|s| match s {
        Step::DeleteMachine { reason, .. } => reason == "pool old was removed from the spec",
        _ => false,
    }));
}

#[test]
fn deleting_workers_are_replaced_and_removed() {
    for (server, expected) in [
        (
            Some(ResourceStatus::Active),
            vec![
                "create-machine worker workers",
                "delete server demo-workers-w2",
            ],
        ),
        (
            Some(error()),
            vec![
                "create-machine worker workers",
                "delete server demo-workers-w2",
            ],
        ),
        (
            Some(ResourceStatus::Deleting),
            vec!["create-machine worker workers"],
        ),
        (
            None,
            vec![
                "create-machine worker workers",
                "release-machine demo-workers-w2",
            ],
        ),
    ] {
        let cluster = mk_cluster(1, 2);
        let mut observed = infra_only(&cluster);
        add(
            &mut observed,
            mk_init(&cluster, "m1"),
            M::Ready,
            "10.0.0.11",
        );
        add(
            &mut observed,
            mk_worker(&cluster, "workers", "w1"),
            M::Ready,
            "10.0.0.21",
        );
        let w2 = deleting(mk_worker(&cluster, "workers", "w2"));
        if let Some(status) = server.clone() {
            observed
                .resources
                .push(mk_server(&w2, status, Some("10.0.0.22")));
        }
        observed.machines.push(w2);
        let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
        assert_steps(&plan, &expected);
        if server == Some(ResourceStatus::Deleting) {
            assert_waiting_for(&plan, "server demo-workers-w2 to be deleted");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Load balancer members
// ---------------------------------------------------------------------------------------

#[test]
fn load_balancer_members_follow_the_control_planes() {
    let all = "set-members 10.0.0.11:6443,10.0.0.12:6443,10.0.0.13:6443";
    let cases: Vec<(&str, &[&str], ResourceStatus, Vec<&str>)> = vec![
        ("never set", &[], ResourceStatus::Active, vec![all]),
        (
            "stale",
            &["10.0.0.11:6443"],
            ResourceStatus::Active,
            vec![all],
        ),
        (
            "equal",
            &["10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"],
            ResourceStatus::Active,
            vec![],
        ),
        (
            "load balancer building",
            &[],
            ResourceStatus::Pending,
            vec![],
        ),
    ];
    for (what, recorded, lb_status, expected) in cases {
        let cluster = mk_cluster(3, 0);
        let mut observed = with_resources(role_status(
            &cluster,
            full_infra(&cluster),
            "loadBalancer",
            lb_status,
        ));
        // Observed out of address order.
        add(&mut observed, mk_cp(&cluster, "m3"), M::Ready, "10.0.0.13");
        add(
            &mut observed,
            mk_init(&cluster, "m1"),
            M::Ready,
            "10.0.0.11",
        );
        add(&mut observed, mk_cp(&cluster, "m2"), M::Ready, "10.0.0.12");
        let plan = plan(&with_members(cluster, recorded), &observed);
        assert_steps(&plan, &expected);
        if let Some(Step::SetLoadBalancerMembers {
            load_balancer_id,
            members,
        }) = plan.steps.first()
        {
            assert_eq!(load_balancer_id, LB_ID, "{what}");
            assert!(members.iter().all(|m| m.port == API_PORT), "{what}");
        }
    }
}

#[test]
fn load_balancer_members_skip_workers_leaving_servers_and_addressless_servers() {
    let cluster = mk_cluster(3, 1);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    // A control plane whose server is being deleted.
    let m2 = mk_cp(&cluster, "m2");
    observed
        .resources
        .push(mk_server(&m2, ResourceStatus::Deleting, Some("10.0.0.12")));
    observed.machines.push(m2);
    // A control plane whose server has no address yet.
    let m3 = mk_cp(&cluster, "m3");
    observed
        .resources
        .push(mk_server(&m3, ResourceStatus::Pending, None));
    observed.machines.push(m3);
    // A worker.
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w1"),
        M::Ready,
        "10.0.0.21",
    );
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &["set-members 10.0.0.11:6443"]);
}

#[test]
fn a_deleting_control_plane_leaves_the_load_balancer() {
    let cluster = mk_cluster(3, 0);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(&mut observed, mk_cp(&cluster, "m2"), M::Ready, "10.0.0.12");
    add(
        &mut observed,
        deleting(mk_cp(&cluster, "m3")),
        M::Ready,
        "10.0.0.13",
    );
    let cluster = with_members(
        cluster,
        &["10.0.0.11:6443", "10.0.0.12:6443", "10.0.0.13:6443"],
    );
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        // Its node is drained first; no new control plane joins while one leaves.
        &[
            "drain node-srv-m3",
            "set-members 10.0.0.11:6443,10.0.0.12:6443",
        ],
    );
}

#[test]
fn no_members_no_update() {
    let cluster = mk_cluster(1, 0);
    let mut observed = infra_only(&cluster);
    let init = mk_init(&cluster, "m1");
    observed
        .resources
        .push(mk_server(&init, ResourceStatus::Active, None));
    observed.machines.push(init);
    assert_steps(&plan(&cluster, &observed), &[]);
    // Nor is a recorded member list emptied: the pool is never set to nothing.
    let cluster = with_members(cluster, &["10.0.0.11:6443"]);
    assert_steps(&plan(&cluster, &observed), &[]);
}

#[test]
fn desired_members_are_sorted_and_on_the_api_port() {
    let cluster = mk_cluster(3, 0);
    let mut observed = infra_only(&cluster);
    add(&mut observed, mk_cp(&cluster, "m2"), M::Ready, "10.0.0.9");
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.10",
    );
    let infra = classify(&cluster, &observed);
    let cps: Vec<&Machine> = observed.machines.iter().collect();
    let members = desired_members(&cps, &infra);
    assert_eq!(
        member_strings(&members),
        ["10.0.0.10:6443", "10.0.0.9:6443"]
    );
}

// ---------------------------------------------------------------------------------------
// Deletion
// ---------------------------------------------------------------------------------------

/// A deleting cluster with three ready control planes and `workers` ready workers.
fn deleting_world(workers: usize) -> (Cluster, Observed) {
    let cluster = deleting(mk_cluster(3, workers as u32));
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(&mut observed, mk_cp(&cluster, "m2"), M::Ready, "10.0.0.12");
    add(&mut observed, mk_cp(&cluster, "m3"), M::Ready, "10.0.0.13");
    for i in 1..=workers {
        add(
            &mut observed,
            mk_worker(&cluster, "workers", &format!("w{i}")),
            M::Ready,
            &format!("10.0.0.2{i}"),
        );
    }
    (cluster, observed)
}

#[test]
fn deletion_starts_with_the_workers() {
    let (cluster, observed) = deleting_world(2);
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        &[
            "delete-machine demo-workers-w1",
            "delete-machine demo-workers-w2",
        ],
    );
    assert!(plan.steps.iter().all(|s| match s {
        Step::DeleteMachine { reason, .. } => reason == "the cluster is being deleted",
        _ => false,
    }));
    assert!(plan.steps.iter().all(|s| s.stage() == Stage::Deletion));
}

#[test]
fn deleting_workers_lose_their_servers_then_their_finalizer() {
    let (cluster, mut observed) = deleting_world(0);
    let w1 = deleting(mk_worker(&cluster, "workers", "w1"));
    observed
        .resources
        .push(mk_server(&w1, ResourceStatus::Active, Some("10.0.0.21")));
    observed.machines.push(w1);
    let w2 = deleting(mk_worker(&cluster, "workers", "w2"));
    observed.machines.push(w2);
    let w3 = deleting(mk_worker(&cluster, "workers", "w3"));
    observed
        .resources
        .push(mk_server(&w3, ResourceStatus::Deleting, Some("10.0.0.23")));
    observed.machines.push(w3);
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        &[
            "delete server demo-workers-w1",
            "release-machine demo-workers-w2",
        ],
    );
    assert_waiting_for(&plan, "server demo-workers-w3 to be deleted");
}

#[test]
fn control_planes_go_once_the_workers_are_gone() {
    let (cluster, observed) = deleting_world(0);
    assert_steps(
        &plan(&cluster, &observed),
        &[
            "delete-machine demo-control-plane-m1",
            "delete-machine demo-control-plane-m2",
            "delete-machine demo-control-plane-m3",
        ],
    );

    // Deleting control planes: servers first, then the machines are released.
    let cluster = deleting(mk_cluster(3, 0));
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        deleting(mk_init(&cluster, "m1")),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        deleting(mk_cp(&cluster, "m2")),
        M::NoServer,
        "",
    );
    add(&mut observed, mk_cp(&cluster, "m3"), M::Ready, "10.0.0.13");
    assert_steps(
        &plan(&cluster, &observed),
        &[
            "delete server demo-control-plane-m1",
            "release-machine demo-control-plane-m2",
            "delete-machine demo-control-plane-m3",
        ],
    );
}

#[test]
fn deletion_takes_the_infrastructure_down_layer_by_layer() {
    for (cluster, rounds) in [
        (
            deleting(mk_cluster(3, 3)),
            vec![
                vec!["delete server orphan"],
                vec!["delete floatingIp kaas-demo-1a2b3c4d-kubeapi"],
                // The cluster's cloud controller made one for a Service.
                vec![
                    "delete loadBalancer kaas-demo-1a2b3c4d-kubeapi",
                    "delete loadBalancer kube_service_1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d_default_web",
                ],
                vec!["delete router kaas-demo-1a2b3c4d"],
                vec![
                    "delete port kaas-demo-1a2b3c4d-kubeapi-vip",
                    "delete port orphan",
                ],
                vec!["delete subnet kaas-demo-1a2b3c4d"],
                vec!["delete network kaas-demo-1a2b3c4d"],
                vec![
                    "delete securityGroup kaas-demo-1a2b3c4d-control-plane",
                    "delete securityGroup kaas-demo-1a2b3c4d-worker",
                    "delete serverGroup kaas-demo-1a2b3c4d-control-plane",
                    "delete serverGroup kaas-demo-1a2b3c4d-workers",
                ],
                vec!["delete applicationCredential kaas-demo-1a2b3c4d"],
                vec!["remove-finalizer"],
            ],
        ),
        (
            deleting(without_fip(mk_cluster(1, 0))),
            vec![
                vec!["delete server orphan"],
                vec![
                    "delete loadBalancer kaas-demo-1a2b3c4d-kubeapi",
                    "delete loadBalancer kube_service_1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d_default_web",
                ],
                vec!["delete router kaas-demo-1a2b3c4d"],
                vec![
                    "delete port kaas-demo-1a2b3c4d-kubeapi-vip",
                    "delete port orphan",
                ],
                vec!["delete subnet kaas-demo-1a2b3c4d"],
                vec!["delete network kaas-demo-1a2b3c4d"],
                vec![
                    "delete securityGroup kaas-demo-1a2b3c4d-control-plane",
                    "delete securityGroup kaas-demo-1a2b3c4d-worker",
                    "delete serverGroup kaas-demo-1a2b3c4d-control-plane",
                    "delete serverGroup kaas-demo-1a2b3c4d-workers",
                ],
                vec!["delete applicationCredential kaas-demo-1a2b3c4d"],
                vec!["remove-finalizer"],
            ],
        ),
    ] {
        let mut resources = full_infra(&cluster);
        let mut orphan = mk_resource_id(
            ResourceKind::Server,
            "srv-x",
            "orphan",
            ResourceStatus::Active,
            None,
        );
        orphan.tags.push(machine_tag("gone"));
        let mut orphan_port = orphan.clone();
        orphan_port.kind = ResourceKind::Port;
        orphan_port.id = "port-x".to_owned();
        resources.push(orphan);
        resources.push(orphan_port);
        resources.push(mk_resource(
            ResourceKind::LoadBalancer,
            &format!("kube_service_{UID}_default_web"),
            ResourceStatus::Active,
            None,
        ));
        for expected in &rounds {
            let plan = plan(&cluster, &with_resources(resources.clone()));
            assert_steps(&plan, expected);
            apply_resource_steps(&plan, &mut resources);
        }
        assert!(resources.is_empty(), "{resources:?}");
    }
}

#[test]
fn deletion_waits_for_what_is_going() {
    let cluster = deleting(mk_cluster(3, 3));
    // The floating IP is going: the load balancer waits for it.
    let resources = role_status(
        &cluster,
        full_infra(&cluster),
        "floatingIp",
        ResourceStatus::Deleting,
    );
    let going = plan(&cluster, &with_resources(resources));
    assert_steps(&going, &[]);
    assert_waiting_for(
        &going,
        "floating IP kaas-demo-1a2b3c4d-kubeapi to be deleted",
    );

    // Of a layer, what is going is waited for and the rest deleted.
    let resources = vec![
        mk_resource(
            ResourceKind::SecurityGroup,
            "kaas-demo-1a2b3c4d-worker",
            ResourceStatus::Deleting,
            None,
        ),
        mk_resource(
            ResourceKind::ServerGroup,
            "kaas-demo-1a2b3c4d-workers",
            error(),
            None,
        ),
    ];
    let plan = plan(&cluster, &with_resources(resources));
    assert_steps(&plan, &["delete serverGroup kaas-demo-1a2b3c4d-workers"]);
    assert_waiting_for(
        &plan,
        "security group kaas-demo-1a2b3c4d-worker to be deleted",
    );
}

#[test]
fn the_finalizer_goes_when_nothing_is_left() {
    let cluster = deleting(mk_cluster(3, 3));
    let plan1 = plan(&cluster, &Observed::default());
    assert_eq!(plan1.steps, vec![Step::RemoveFinalizer]);
    assert_eq!(plan1.steps[0].stage(), Stage::Deletion);

    let mut gone = cluster;
    gone.metadata.finalizers.clear();
    let plan2 = plan(&gone, &Observed::default());
    assert_eq!(plan2, Plan::default());
}

#[test]
fn a_deleting_cluster_never_adds_its_finalizer() {
    let mut cluster = deleting(mk_cluster(3, 3));
    cluster.metadata.finalizers.clear();
    let observed = infra_only(&cluster);
    assert_steps(
        &plan(&cluster, &observed),
        &["delete floatingIp kaas-demo-1a2b3c4d-kubeapi"],
    );
}

#[test]
fn no_finalizer_removal_while_anything_is_tagged() {
    let cluster = deleting(mk_cluster(3, 3));
    for status in [ResourceStatus::Deleting, ResourceStatus::Pending] {
        let resources = vec![mk_resource(
            ResourceKind::Network,
            "kaas-demo-1a2b3c4d",
            status.clone(),
            None,
        )];
        let plan = plan(&cluster, &with_resources(resources));
        assert!(!plan.steps.contains(&Step::RemoveFinalizer), "{status:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Orphans
// ---------------------------------------------------------------------------------------

#[test]
fn servers_of_no_machine_are_deleted() {
    let cluster = mk_cluster(1, 0);
    let init = mk_init(&cluster, "m1");
    let mut ghost = mk_resource_id(
        ResourceKind::Server,
        "srv-ghost",
        "demo-control-plane-ghost",
        ResourceStatus::Active,
        None,
    );
    ghost.tags.push(machine_tag("no-such-machine"));
    let untagged = mk_resource_id(
        ResourceKind::Server,
        "srv-untagged",
        "stray",
        ResourceStatus::Active,
        None,
    );
    // A second server for m1: the higher id is the twin.
    let mut twin = mk_server(&init, ResourceStatus::Active, Some("10.0.0.99"));
    twin.id = "srv-m1-twin".to_owned();
    let mut observed = infra_only(&cluster);
    add(&mut observed, init, M::Ready, "10.0.0.11");
    observed.resources.extend([ghost, untagged, twin]);
    let plan = plan(
        &with_members(cluster.clone(), &["10.0.0.11:6443"]),
        &observed,
    );
    assert_steps(
        &plan,
        &[
            "delete server demo-control-plane-ghost",
            "delete server demo-control-plane-m1",
            "delete server stray",
        ],
    );
    let mut ids = deleted_ids(&plan);
    ids.sort_unstable();
    assert_eq!(ids, ["srv-ghost", "srv-m1-twin", "srv-untagged"]);
    let infra = classify(&cluster, &observed);
    assert_eq!(
        infra.servers.get("m1").map(|s| s.id.as_str()),
        Some("srv-m1")
    );
}

#[test]
fn a_server_of_a_deleting_machine_is_not_an_orphan() {
    let cluster = mk_cluster(1, 0);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        deleting(mk_cp(&cluster, "m2")),
        M::Ready,
        "10.0.0.12",
    );
    let infra = classify(&cluster, &observed);
    assert!(infra.unwanted.is_empty());
    assert_eq!(infra.servers.len(), 2);
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    // A ready node is drained before its server goes.
    assert_steps(&plan, &["drain node-srv-m2"]);
}

// ---------------------------------------------------------------------------------------
// Security group rules
// ---------------------------------------------------------------------------------------

fn rule_strings(rules: &[SecurityGroupRule]) -> Vec<String> {
    rules
        .iter()
        .map(|r| {
            let from = match (&r.remote_cidr, &r.remote_group) {
                (Some(cidr), None) => cidr.clone(),
                (None, Some(group)) => format!("group {group}"),
                other => panic!("rule with remote {other:?}"),
            };
            format!("{} {}-{} from {from}", r.protocol, r.port_min, r.port_max)
        })
        .collect()
}

const COMMON_RULES: [&str; 4] = [
    "tcp 10250-10250 from 10.0.0.0/20",
    "udp 8472-8472 from 10.0.0.0/20",
    "tcp 4240-4240 from 10.0.0.0/20",
    "icmp 0-0 from 10.0.0.0/20",
];

#[test]
fn control_plane_rules() {
    for (allowed, api) in [
        (vec![], vec!["tcp 6443-6443 from 0.0.0.0/0"]),
        (
            vec!["192.0.2.0/24", "198.51.100.7/32"],
            vec![
                "tcp 6443-6443 from 192.0.2.0/24",
                "tcp 6443-6443 from 198.51.100.7/32",
                "tcp 6443-6443 from 10.0.0.0/20",
            ],
        ),
    ] {
        let mut cluster = mk_cluster(3, 3);
        cluster.spec.api_access.allowed_cidrs = allowed.iter().map(|s| (*s).to_owned()).collect();
        let mut expected: Vec<&str> = COMMON_RULES.to_vec();
        expected.extend(api);
        expected.push("tcp 2379-2380 from group kaas-demo-1a2b3c4d-control-plane");
        assert_eq!(
            rule_strings(&security_group_rules(&cluster, true)),
            expected,
            "{allowed:?}"
        );
    }
}

#[test]
fn worker_rules_open_node_ports_and_not_the_api() {
    let mut cluster = mk_cluster(3, 3);
    let mut expected: Vec<&str> = COMMON_RULES.to_vec();
    expected.extend([
        "tcp 30000-32767 from 0.0.0.0/0",
        "udp 30000-32767 from 0.0.0.0/0",
    ]);
    assert_eq!(
        rule_strings(&security_group_rules(&cluster, false)),
        expected
    );
    // Restricting the API does not touch the workers.
    cluster.spec.api_access.allowed_cidrs = vec!["192.0.2.0/24".to_owned()];
    assert_eq!(
        rule_strings(&security_group_rules(&cluster, false)),
        expected
    );
}

#[test]
fn rules_follow_the_node_cidr() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.network.node_cidr = "172.16.0.0/24".to_owned();
    cluster.spec.api_access.allowed_cidrs = vec!["192.0.2.0/24".to_owned()];
    for cp in [true, false] {
        let rules = security_group_rules(&cluster, cp);
        for r in rules
            .iter()
            .filter(|r| r.port_min == 10250 || r.port_min == 8472 || r.port_min == 4240)
        {
            assert_eq!(r.remote_cidr.as_deref(), Some("172.16.0.0/24"));
        }
        assert!(
            rules
                .iter()
                .all(|r| r.remote_cidr.as_deref() != Some("10.0.0.0/20"))
        );
        assert!(rules.iter().all(|r| !r.description.is_empty()));
    }
    let api: Vec<String> = rule_strings(&security_group_rules(&cluster, true))
        .into_iter()
        .filter(|r| r.starts_with("tcp 6443"))
        .collect();
    assert_eq!(
        api,
        [
            "tcp 6443-6443 from 192.0.2.0/24",
            "tcp 6443-6443 from 172.16.0.0/24"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Regressions: nothing is built on what is being torn down, a machine on its way out
// gets no server, removals go on without a known stack, and no rule is doubled.
// ---------------------------------------------------------------------------------------

#[test]
fn no_server_on_a_security_group_being_replaced() {
    let cluster = mk_cluster(3, 0);
    let resources = role_status(
        &cluster,
        full_infra(&cluster),
        "securityGroup/control-plane",
        error(),
    );
    let mut observed = with_resources(resources);
    add(&mut observed, mk_init(&cluster, "m1"), M::NoServer, "");
    let plan = plan(&cluster, &observed);
    assert_steps(
        &plan,
        &["delete securityGroup kaas-demo-1a2b3c4d-control-plane"],
    );
}

#[test]
fn no_subnet_on_a_network_being_replaced() {
    let cluster = with_pools(mk_cluster(3, 0), &[]);
    let observed = with_resources(vec![mk_resource(
        ResourceKind::Network,
        "kaas-demo-1a2b3c4d",
        error(),
        None,
    )]);
    let plan = plan(&cluster, &observed);
    assert!(
        !step_names(&plan).contains(&"create subnet kaas-demo-1a2b3c4d".to_owned()),
        "{:?}",
        step_names(&plan)
    );
}

#[test]
fn no_server_for_a_machine_deleted_in_the_same_plan() {
    let cluster = mk_cluster(1, 1);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "m1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        created(mk_worker(&cluster, "workers", "w1"), 1000),
        M::Ready,
        "10.0.0.21",
    );
    add(
        &mut observed,
        created(mk_worker(&cluster, "workers", "w2"), 2000),
        M::NoServer,
        "",
    );
    let plan = plan(&with_members(cluster, &["10.0.0.11:6443"]), &observed);
    assert_steps(&plan, &["delete-machine demo-workers-w2"]);
}

#[test]
fn deleting_machines_are_released_whatever_the_stack() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.stack = "scs-0.1".to_owned();
    let mut observed = infra_only(&cluster);
    observed
        .machines
        .push(deleting(mk_worker(&cluster, "workers", "w1")));
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &["release-machine demo-workers-w1"]);
}

#[test]
fn a_machine_whose_server_is_gone_takes_its_node_with_it() {
    let cluster = mk_cluster(1, 1);
    let mut observed = infra_only(&cluster);
    add(
        &mut observed,
        mk_init(&cluster, "i1"),
        M::Ready,
        "10.0.0.11",
    );
    let mut leaving = deleting(mk_worker(&cluster, "workers", "w1"));
    leaving.status.node_name = Some("demo-workers-w1".to_owned());
    observed.machines.push(leaving);
    let mut node = mk_node("srv-w1", false);
    node.name = "demo-workers-w1".to_owned();
    observed.nodes.get_or_insert_with(Vec::new).push(node);
    // Its Node is still in the API: deleted first, the record released only after it
    // (chained: skipped if the deletion fails).
    let steps = |c: &Cluster, o: &Observed| {
        let plan = plan(c, o);
        plan.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::DeleteNode { .. } | Step::ReleaseMachine { .. }))
            .map(|(i, s)| match plan.chained.contains(&i) {
                true => format!("then {}", step_name(s)),
                false => step_name(s),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        steps(&cluster, &observed),
        [
            "delete-node demo-workers-w1",
            "then release-machine demo-workers-w1"
        ]
    );
    // The Node is gone: the record goes.
    let mut gone = observed.clone();
    gone.nodes
        .as_mut()
        .unwrap()
        .retain(|n| n.name != "demo-workers-w1");
    assert_eq!(steps(&cluster, &gone), ["release-machine demo-workers-w1"]);
    // While the API does not answer, the record is not held back by a Node it cannot
    // see; nor when the whole cluster goes.
    let mut blind = observed.clone();
    blind.nodes = None;
    assert_eq!(steps(&cluster, &blind), ["release-machine demo-workers-w1"]);
    let mut whole = cluster.clone();
    whole.metadata.deletion_requested_at = Some(at(5_000));
    assert!(!steps(&whole, &observed).contains(&"delete-node demo-workers-w1".to_owned()));
}

#[test]
fn no_duplicate_api_rule() {
    let mut cluster = mk_cluster(3, 3);
    cluster.spec.api_access.allowed_cidrs =
        vec!["10.0.0.0/20".to_owned(), "192.0.2.0/24".to_owned()];
    let rules = rule_strings(&security_group_rules(&cluster, true));
    let api: Vec<&String> = rules.iter().filter(|r| r.starts_with("tcp 6443")).collect();
    assert_eq!(
        api,
        [
            "tcp 6443-6443 from 10.0.0.0/20",
            "tcp 6443-6443 from 192.0.2.0/24"
        ]
    );
}

#[test]
fn no_server_before_the_cluster_pki_exists() {
    let cluster = mk_cluster(1, 0);
    let mut observed = infra_only(&cluster);
    add(&mut observed, mk_init(&cluster, "m1"), M::NoServer, "");
    observed.pki_exists = false;
    let plan = plan(&cluster, &observed);
    assert_steps(&plan, &["ensure-pki"]);
    assert_waiting_for(
        &plan,
        "the cluster's PKI before machine demo-control-plane-m1",
    );
    observed.pki_exists = true;
    let with_pki = self::plan(&cluster, &observed);
    assert_steps(&with_pki, &["create-server demo-control-plane-m1"]);
}

// ---------------------------------------------------------------------------------------
// Addons
// ---------------------------------------------------------------------------------------

/// A cluster of one ready control plane (labelled as kubeadm labels it), its addons
/// rendered as one Deployment, and their readiness as given.
/// The condition `type_` of `status`.
fn condition(status: &kaas_core::ClusterStatus, type_: &str) -> kaas_core::Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
        .unwrap()
}

fn with_addons(
    cluster: &Cluster,
    version: &str,
    readiness: Option<Vec<kaas_cloud::ObjectReadiness>>,
) -> Observed {
    let mut observed = infra_only(cluster);
    observed.stack = kaas_core::stack::StackCatalog::builtin()
        .unwrap()
        .find(&cluster.spec.stack)
        .cloned();
    let mut init = mk_init(cluster, "m1");
    init.spec.version = version.to_owned();
    add(&mut observed, init, M::Ready, "10.0.0.11");
    for node in observed.nodes.iter_mut().flatten() {
        node.labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            String::new(),
        );
    }
    let rendered = vec![kaas_bootstrap::RenderedAddon {
        name: "metrics-server".to_owned(),
        version: "v0.8.0".to_owned(),
        objects: vec![serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        })],
    }];
    observed.addons = Some(super::super::addons::ObservedAddons {
        desired: Ok(super::super::addons::DesiredAddons::new(
            "scs-1.36", rendered,
        )),
        readiness,
    });
    observed
}

fn readiness(ready: bool, missing: bool) -> Option<Vec<kaas_cloud::ObjectReadiness>> {
    Some(vec![kaas_cloud::ObjectReadiness {
        object: "Deployment kube-system/metrics-server".to_owned(),
        ready,
        missing,
        message: if ready {
            String::new()
        } else {
            "Deployment kube-system/metrics-server: 0 of 1 replicas available".to_owned()
        },
    }])
}

fn desired_digest(observed: &Observed) -> String {
    match &observed.addons {
        Some(super::super::addons::ObservedAddons { desired: Ok(d), .. }) => d.digest.clone(),
        _ => panic!("no rendered addons"),
    }
}

#[test]
fn addons_are_applied_once_the_control_plane_runs_the_stack_version() {
    let cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let observed = with_addons(&cluster, VERSION, readiness(false, true));
    assert_steps(&plan(&cluster, &observed), &["apply-addons scs-1.36"]);

    // The API does not answer: nothing to apply to.
    let mut unreachable = observed.clone();
    unreachable.addons = None;
    assert_steps(&plan(&cluster, &unreachable), &[]);

    // The control plane still runs the old version (an upgrade under way): the new
    // stack's addons wait for it.
    let mut old = with_addons(&cluster, "v1.35.9", readiness(false, true));
    old.machines[0].spec.version = "v1.35.9".to_owned();
    assert!(
        !step_names(&plan(&cluster, &old)).contains(&"apply-addons scs-1.36".to_owned()),
        "{:?}",
        step_names(&plan(&cluster, &old))
    );
}

#[test]
fn addons_are_applied_again_only_when_they_change_or_go_missing() {
    let mut cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let observed = with_addons(&cluster, VERSION, readiness(false, false));
    cluster.status.addons.digest = Some(desired_digest(&observed));
    // Applied and present, if not ready yet: nothing to do but wait.
    assert_steps(&plan(&cluster, &observed), &[]);
    // An object was deleted in the cluster: applied again.
    let gone = with_addons(&cluster, VERSION, readiness(false, true));
    assert_steps(&plan(&cluster, &gone), &["apply-addons scs-1.36"]);
    // Something else was applied before (another stack, an addon since turned off).
    cluster.status.addons.digest = Some("0000000000000000".to_owned());
    assert_steps(&plan(&cluster, &observed), &["apply-addons scs-1.36"]);
}

#[test]
fn addons_ready_gates_availability() {
    let mut cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let observed = with_addons(&cluster, VERSION, readiness(false, false));
    let digest = desired_digest(&observed);
    let infra = classify(&cluster, &observed);
    let status_of = |cluster: &Cluster, observed: &Observed, applied: Option<(&str, &str)>| {
        let p = plan(cluster, observed);
        crate::cluster::status::cluster_status(cluster, observed, &infra, &p, &[], applied, at(100))
    };

    // Not applied yet.
    let status = status_of(&cluster, &observed, None);
    let addons = condition(&status, "AddonsReady");
    assert_eq!(
        (addons.status, addons.reason.as_str()),
        (kaas_core::ConditionStatus::False, "Applying")
    );
    assert!(!condition(&status, "Available").is_true());

    // Applied in this reconcile, not ready: the digest is recorded, the message says why.
    let status = status_of(&cluster, &observed, Some(("scs-1.36", &digest)));
    assert_eq!(status.addons.digest.as_deref(), Some(digest.as_str()));
    let addons = condition(&status, "AddonsReady");
    assert_eq!(addons.reason, "NotReady");
    assert!(
        addons.message.contains("0 of 1 replicas available"),
        "{}",
        addons.message
    );
    assert!(
        condition(&status, "Available")
            .message
            .contains("AddonsReady")
    );
    assert_eq!(status.addons.items.len(), 1);
    assert!(!status.addons.items[0].ready);

    // Ready: the cluster is Available.
    cluster.status.addons = status.addons.clone();
    let ready = with_addons(&cluster, VERSION, readiness(true, false));
    let status = status_of(&cluster, &ready, None);
    let addons = condition(&status, "AddonsReady");
    assert!(addons.is_true(), "{addons:?}");
    assert_eq!(addons.message, "metrics-server v0.8.0");
    assert!(status.addons.items[0].ready);
    assert!(condition(&status, "Available").is_true());
}

#[test]
fn an_api_that_does_not_answer_is_a_condition_and_never_a_reason_to_act() {
    let mut cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let mut observed = with_addons(&cluster, VERSION, readiness(true, false));
    let why = "the cluster's API server at https://203.0.113.10:6443 is not reachable: \
               connection timed out";
    observed.nodes = None;
    observed.addons = None;
    observed.api_unreachable = Some(why.to_owned());
    let status_now = |cluster: &Cluster, observed: &Observed| {
        let infra = classify(cluster, observed);
        let p = plan(cluster, observed);
        assert_steps(&p, &[]);
        crate::cluster::status::cluster_status(cluster, observed, &infra, &p, &[], None, at(1))
    };

    // A cluster still coming up: waiting for its API, which says why.
    let status = status_now(&cluster, &observed);
    let cp = condition(&status, "ControlPlaneReady");
    assert_eq!(
        (cp.status, cp.reason.as_str()),
        (kaas_core::ConditionStatus::False, "WaitingForApi")
    );
    assert!(
        cp.message.contains("0 of 1 control-plane nodes ready"),
        "{}",
        cp.message
    );
    assert!(
        cp.message.contains("connection timed out"),
        "{}",
        cp.message
    );

    // A cluster that ran: its nodes' readiness is unknown, and nothing is replaced,
    // however long the API stays away.
    cluster.status.kubernetes_version = Some(VERSION.to_owned());
    observed.now = at(100_000);
    let status = status_now(&cluster, &observed);
    let cp = condition(&status, "ControlPlaneReady");
    assert_eq!(
        (cp.status, cp.reason.as_str(), cp.message.as_str()),
        (kaas_core::ConditionStatus::Unknown, "ApiUnreachable", why)
    );
    assert!(!condition(&status, "Available").is_true());
}

#[test]
fn addons_that_cannot_be_rendered_say_why() {
    let cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let mut observed = with_addons(&cluster, VERSION, None);
    observed.addons = Some(super::super::addons::ObservedAddons {
        desired: Err("addon cert-manager: its ACME issuers need an e-mail address".to_owned()),
        readiness: None,
    });
    let infra = classify(&cluster, &observed);
    let p = plan(&cluster, &observed);
    assert_steps(&p, &[]);
    let status =
        crate::cluster::status::cluster_status(&cluster, &observed, &infra, &p, &[], None, at(1));
    let addons = status
        .conditions
        .iter()
        .find(|c| c.type_ == "AddonsReady")
        .unwrap();
    assert_eq!(addons.reason, "RenderFailed");
    assert!(addons.message.contains("e-mail"));
}

#[test]
fn turning_off_the_last_addon_prunes_it_and_unready_addons_are_waited_for() {
    let mut cluster = with_members(mk_cluster(1, 0), &["10.0.0.11:6443"]);
    let observed = with_addons(&cluster, VERSION, readiness(false, false));
    cluster.status.addons.digest = Some(desired_digest(&observed));
    let waiting = plan(&cluster, &observed);
    assert_steps(&waiting, &[]);
    assert_waiting_for(&waiting, "the addons to be ready");
    assert!(!waiting.is_settled());

    let mut none = observed.clone();
    none.addons = Some(super::super::addons::ObservedAddons {
        desired: Ok(super::super::addons::DesiredAddons::new(
            "scs-1.36",
            Vec::new(),
        )),
        readiness: Some(Vec::new()),
    });
    assert_steps(&plan(&cluster, &none), &["apply-addons scs-1.36"]);
    // Once that empty set is applied, nothing more.
    cluster.status.addons.digest = Some(desired_digest(&none));
    assert_steps(&plan(&cluster, &none), &[]);
    // A cluster that never had addons applies nothing.
    cluster.status.addons.digest = None;
    assert_steps(&plan(&cluster, &none), &[]);
}

/// A token kaas registered for `machine`, expiring at `expires` (seconds).
fn registered(id: &str, machine: &str, expires: i64) -> kaas_cloud::RegisteredToken {
    kaas_cloud::RegisteredToken {
        id: id.to_owned(),
        machine: machine.to_owned(),
        expires: Some(at(expires)),
    }
}

/// Only the join-token steps of a plan.
fn token_plan(observed: &Observed) -> Plan {
    let cluster = mk_cluster(3, 3);
    let infra = classify(&cluster, observed);
    let mut plan = Plan::default();
    super::super::machines::plan_join_tokens(observed, &infra, &mut plan);
    plan
}

#[test]
fn joining_machines_have_a_fresh_token_and_joined_or_gone_ones_none() {
    let cluster = mk_cluster(3, 3);
    let mut observed = infra_only(&cluster);
    observed.now = at(10_000);
    add(
        &mut observed,
        mk_init(&cluster, "i1"),
        M::Ready,
        "10.0.0.11",
    );
    add(
        &mut observed,
        mk_cp(&cluster, "c2"),
        M::Booting,
        "10.0.0.12",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w1"),
        M::Booting,
        "10.0.0.21",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w2"),
        M::NotReady,
        "10.0.0.22",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w3"),
        M::Ready,
        "10.0.0.23",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w4"),
        M::NoServer,
        "",
    );
    add(
        &mut observed,
        mk_worker(&cluster, "workers", "w5"),
        M::Broken,
        "",
    );

    // While the API does not answer, tokens are neither registered nor deleted.
    assert_steps(&token_plan(&observed), &[]);

    // No token yet: every machine with a server that has not joined gets one (the
    // first control plane has kubeadm init's; a machine without a server gets its own
    // when its server is created; a broken server boots nothing).
    observed.join_tokens = Some(Vec::new());
    assert_steps(
        &token_plan(&observed),
        &[
            "register-token demo-control-plane-c2",
            "register-token demo-workers-w1",
            "register-token demo-workers-w2",
        ],
    );

    // Fresh tokens stay; one about to expire is extended; those of a machine whose node
    // is Ready, of one that is gone and of one being deleted are removed.
    let mut leaving = mk_worker(&cluster, "workers", "w6");
    leaving.metadata.deletion_requested_at = Some(at(9_000));
    add(&mut observed, leaving, M::Booting, "10.0.0.26");
    observed.join_tokens = Some(vec![
        registered("aaaaaa", "demo-control-plane-c2", 10_000 + 3_600),
        registered("bbbbbb", "demo-workers-w1", 10_000 + 600),
        registered("cccccc", "demo-workers-w2", 10_000 + 3_000),
        registered("dddddd", "demo-workers-w3", 10_000 + 3_000),
        registered("eeeeee", "demo-workers-gone", 10_000 + 3_000),
        registered("ffffff", "demo-workers-w6", 10_000 + 3_000),
    ]);
    assert_steps(
        &token_plan(&observed),
        &[
            "register-token demo-workers-w1",
            "delete-token dddddd",
            "delete-token eeeeee",
            "delete-token ffffff",
        ],
    );
    // Registering a token belongs to the part of the cluster the machine is in.
    let stages: Vec<Stage> = token_plan(&observed)
        .steps
        .iter()
        .map(Step::stage)
        .collect();
    assert!(stages.iter().all(|s| *s == Stage::NodePools), "{stages:?}");
    observed.join_tokens = Some(Vec::new());
    let cp = token_plan(&observed)
        .steps
        .into_iter()
        .find(|s| {
            matches!(
                s,
                Step::RegisterJoinToken {
                    control_plane: true,
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(cp.stage(), Stage::ControlPlane);
}

//! What a mutation, a find by tag and a restart cost in a simulated cloud holding many
//! clusters, built through the public API as the controller builds them.
//!
//! `cargo bench -p kaas-sim --bench mutations -- 1000 10000` builds a cloud of 1,000
//! clusters, then one of 10,000 (the default is 1,000), each of a network, subnet,
//! router, two security groups, two server groups, a VIP port, a load balancer, a
//! floating IP (while the pool lasts), an application credential and ten servers on
//! ports of their own, in a fresh directory under `KAAS_SIM_BENCH_DIR` (or the system's
//! temporary directory). It prints figures; it asserts nothing about them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kaas_cloud::{
    CloudProvider, Credential, PoolMember, ResourceKind, ResourceRequest, ResourceSpec,
    SecurityGroupRule, ServerGroupPolicy, UserData,
};
use kaas_sim::{
    Latencies, META_CLUSTER_UID, META_KUBERNETES_VERSION, META_ROLE, Quotas, SimCloud, SimConfig,
};

const SERVERS_PER_CLUSTER: usize = 10;
const CONTROL_PLANES: usize = 3;
/// Floating IPs come from a /24: only the first clusters get one.
const FLOATING_IPS: usize = 200;
/// Mutations timed once the cloud is built: each replaces a worker and sets members.
const STEADY_ROUNDS: usize = 300;
/// Cluster reconciles timed once the cloud is built (a find per resource kind).
const RECONCILES: usize = 300;

fn main() {
    let clusters: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let clusters = if clusters.is_empty() {
        vec![1000]
    } else {
        clusters
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    for n in clusters {
        runtime.block_on(run(n));
    }
}

fn config(path: &Path) -> SimConfig {
    let many = u32::MAX;
    SimConfig {
        speed: 1.0,
        state_file: Some(path.to_owned()),
        quotas: Quotas {
            network: many,
            subnet: many,
            router: many,
            security_group: many,
            server_group: many,
            port: many,
            load_balancer: many,
            floating_ip: many,
            server: many,
            application_credential: many,
        },
        latencies: Latencies::instant(),
        seed: Some(7),
        ..SimConfig::default()
    }
}

/// Times in microseconds, sorted.
struct Timings(Vec<u128>);

impl Timings {
    fn new() -> Self {
        Self(Vec::new())
    }

    fn time<T>(&mut self, start: Instant, value: T) -> T {
        self.0.push(start.elapsed().as_micros());
        value
    }

    fn report(&mut self, what: &str) {
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
            self.0.get(i).copied().unwrap_or(0)
        };
        println!(
            "  {what}: n={} p50={} us p99={} us max={} us",
            self.0.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

fn tags(uid: &str) -> Vec<String> {
    vec![
        format!("kaas-cluster={uid}"),
        format!("kaas-cluster-name=c-{uid}"),
    ]
}

fn rule(protocol: &str, port: u16, what: &str) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol: protocol.to_owned(),
        port_min: port,
        port_max: port,
        remote_cidr: Some("10.0.0.0/24".to_owned()),
        remote_group: None,
        description: what.to_owned(),
    }
}

/// Cloud-init user data of a realistic size (base64, about 4 KiB).
fn user_data() -> UserData {
    UserData("I2Nsb3VkLWNvbmZpZwo".repeat(220))
}

struct Built {
    network: String,
    security_group: String,
    load_balancer: String,
    servers: Vec<(String, String)>,
}

async fn create(
    sim: &SimCloud,
    timings: &mut Timings,
    name: String,
    uid: &str,
    spec: ResourceSpec,
) -> kaas_cloud::CloudResource {
    let request = ResourceRequest {
        name,
        tags: tags(uid),
        spec,
    };
    let start = Instant::now();
    let created = sim.create(&request).await;
    timings.time(start, created).expect("a create")
}

fn server_spec(
    network: &str,
    groups: &[String],
    group: &str,
    uid: &str,
    role: &str,
) -> ResourceSpec {
    let metadata: BTreeMap<String, String> = [
        (META_CLUSTER_UID, uid),
        (META_ROLE, role),
        (META_KUBERNETES_VERSION, "v1.33.4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ResourceSpec::Server {
        flavor: "m1.medium".to_owned(),
        image: "ubuntu-24.04".to_owned(),
        network_id: network.to_owned(),
        security_group_ids: groups.to_vec(),
        server_group_id: Some(group.to_owned()),
        availability_zone: None,
        user_data: user_data(),
        metadata,
    }
}

async fn build_cluster(sim: &SimCloud, timings: &mut Timings, i: usize) -> Built {
    let uid = format!("uid-{i:05}");
    let network = create(
        sim,
        timings,
        format!("{uid}-net"),
        &uid,
        ResourceSpec::Network { mtu: None },
    )
    .await;
    let subnet = create(
        sim,
        timings,
        format!("{uid}-subnet"),
        &uid,
        ResourceSpec::Subnet {
            network_id: network.id.clone(),
            cidr: "10.0.0.0/24".to_owned(),
            dns_servers: vec!["9.9.9.9".to_owned()],
        },
    )
    .await;
    create(
        sim,
        timings,
        format!("{uid}-router"),
        &uid,
        ResourceSpec::Router {
            external_network: "public".to_owned(),
            subnet_ids: vec![subnet.id.clone()],
        },
    )
    .await;
    let mut groups = Vec::new();
    for role in ["control-plane", "worker"] {
        let g = create(
            sim,
            timings,
            format!("{uid}-{role}"),
            &uid,
            ResourceSpec::SecurityGroup {
                rules: vec![
                    rule("tcp", 6443, "API"),
                    rule("tcp", 10250, "kubelet API"),
                    rule("udp", 8472, "Cilium VXLAN"),
                    rule("tcp", 4240, "Cilium health"),
                ],
            },
        )
        .await;
        groups.push(g.id);
    }
    let mut server_groups = Vec::new();
    for (role, policy) in [
        ("control-plane", ServerGroupPolicy::AntiAffinity),
        ("worker", ServerGroupPolicy::SoftAntiAffinity),
    ] {
        let g = create(
            sim,
            timings,
            format!("{uid}-{role}-group"),
            &uid,
            ResourceSpec::ServerGroup { policy },
        )
        .await;
        server_groups.push(g.id);
    }
    let vip = create(
        sim,
        timings,
        format!("{uid}-api-vip"),
        &uid,
        ResourceSpec::Port {
            network_id: network.id.clone(),
            subnet_id: subnet.id.clone(),
            security_group_ids: Vec::new(),
        },
    )
    .await;
    let lb = create(
        sim,
        timings,
        format!("{uid}-api"),
        &uid,
        ResourceSpec::LoadBalancer {
            subnet_id: subnet.id.clone(),
            vip_port_id: vip.id.clone(),
            port: 6443,
        },
    )
    .await;
    if i < FLOATING_IPS {
        create(
            sim,
            timings,
            format!("{uid}-api-fip"),
            &uid,
            ResourceSpec::FloatingIp {
                external_network: "public".to_owned(),
                port_id: vip.id.clone(),
            },
        )
        .await;
    }
    create(
        sim,
        timings,
        format!("{uid}-credential"),
        &uid,
        ResourceSpec::ApplicationCredential {
            secret: Credential("s3cret".to_owned()),
            roles: Vec::new(),
            description: format!("kaas cluster {uid}"),
        },
    )
    .await;
    let mut servers = Vec::new();
    for s in 0..SERVERS_PER_CLUSTER {
        let (role, group, sg) = match s {
            0 => ("init", 0, 0),
            s if s < CONTROL_PLANES => ("control-plane", 0, 0),
            _ => ("worker", 1, 1),
        };
        let name = format!("{uid}-{role}-{s}");
        let server = create(
            sim,
            timings,
            name.clone(),
            &uid,
            server_spec(
                &network.id,
                &groups[sg..=sg],
                &server_groups[group],
                &uid,
                role,
            ),
        )
        .await;
        servers.push((server.id, name));
    }
    Built {
        network: network.id,
        security_group: groups[1].clone(),
        load_balancer: lb.id,
        servers,
    }
}

async fn run(clusters: usize) {
    let base = std::env::var_os("KAAS_SIM_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let path = dir.path().join("cloud.json");
    let config = config(&path);
    println!(
        "{clusters} clusters ({SERVERS_PER_CLUSTER} servers each) in {}",
        dir.path().display()
    );

    let sim = SimCloud::new(config.clone()).unwrap();
    let mut build = Timings::new();
    let started = Instant::now();
    let mut built = Vec::with_capacity(clusters);
    for i in 0..clusters {
        built.push(build_cluster(&sim, &mut build, i).await);
        if (i + 1) % 1000 == 0 {
            eprintln!("  ... {} clusters in {:?}", i + 1, started.elapsed());
        }
    }
    let resources = sim.inventory().len();
    println!(
        "  built {resources} resources with {} mutations in {:.1} s",
        build.0.len(),
        started.elapsed().as_secs_f64()
    );
    build.report("mutation while building (create)");

    // At full size: replace a worker (delete, create) and set the pool members.
    let mut steady = Timings::new();
    for round in 0..STEADY_ROUNDS {
        let c = &built[round * 7919 % built.len()];
        let (old_id, name) = &c.servers[SERVERS_PER_CLUSTER - 1];
        let start = Instant::now();
        sim.delete(ResourceKind::Server, old_id).await.unwrap();
        steady.time(start, ());
        let uid = format!("uid-{:05}", round * 7919 % built.len());
        let spec = server_spec(
            &c.network,
            std::slice::from_ref(&c.security_group),
            "",
            &uid,
            "worker",
        );
        let spec = match spec {
            ResourceSpec::Server {
                server_group_id: _,
                flavor,
                image,
                network_id,
                security_group_ids,
                availability_zone,
                user_data,
                metadata,
            } => ResourceSpec::Server {
                flavor,
                image,
                network_id,
                security_group_ids,
                server_group_id: None,
                availability_zone,
                user_data,
                metadata,
            },
            other => other,
        };
        create(&sim, &mut steady, format!("{name}-r{round}"), &uid, spec).await;
        let members = vec![PoolMember {
            address: format!("10.0.0.{}", 10 + round % 200),
            port: 6443,
        }];
        let start = Instant::now();
        let set = sim
            .set_load_balancer_members(&c.load_balancer, &members)
            .await;
        steady.time(start, set).unwrap();
    }
    steady.report("mutation at full size (delete, create, set members)");

    let mut finds = Timings::new();
    let kinds = [
        ResourceKind::Network,
        ResourceKind::Subnet,
        ResourceKind::Router,
        ResourceKind::SecurityGroup,
        ResourceKind::ServerGroup,
        ResourceKind::Port,
        ResourceKind::LoadBalancer,
        ResourceKind::FloatingIp,
        ResourceKind::Server,
        ResourceKind::ApplicationCredential,
    ];
    for r in 0..RECONCILES {
        let tag = format!("kaas-cluster=uid-{:05}", r * 7919 % built.len());
        for kind in kinds {
            let start = Instant::now();
            let found = sim.find(kind, &tag).await;
            finds.time(start, found).unwrap();
        }
    }
    finds.report("find by tag");

    println!(
        "  on disk before compaction: {} bytes in {:?}",
        bytes_in(dir.path()),
        files_in(dir.path())
    );
    drop(sim);
    let start = Instant::now();
    let sim = SimCloud::new(config.clone()).unwrap();
    println!(
        "  restart before compaction: {:.3} s, {} resources",
        start.elapsed().as_secs_f64(),
        sim.inventory().len(),
    );
    let start = Instant::now();
    sim.compact().unwrap();
    println!(
        "  compaction: {:.3} s; on disk after: {} bytes in {:?}",
        start.elapsed().as_secs_f64(),
        bytes_in(dir.path()),
        files_in(dir.path())
    );
    drop(sim);
    let start = Instant::now();
    let sim = SimCloud::new(config).unwrap();
    let again: Duration = start.elapsed();
    println!(
        "  restart after compaction: {:.3} s, {} resources",
        again.as_secs_f64(),
        sim.inventory().len(),
    );
}

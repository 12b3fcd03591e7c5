#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use kaas_cloud::{
    Capacity, CloudError, CloudProvider, CloudResource, EtcdMembership, PoolMember, ResourceKind,
    ResourceRequest, ResourceSpec, ResourceStatus, ServerGroupPolicy, ServerNeed,
    SimulatedMachines, WorkloadClusterRef, WorkloadError,
};

use super::*;

const SPEED: f64 = 1000.0;

/// A fast cloud where everything is instant unless a test says otherwise.
fn config(latencies: Latencies) -> SimConfig {
    SimConfig {
        speed: SPEED,
        latencies,
        seed: Some(42),
        ..SimConfig::default()
    }
}

fn sim(latencies: Latencies) -> SimCloud {
    SimCloud::new(config(latencies)).unwrap()
}

fn request(name: &str, tags: &[&str], spec: ResourceSpec) -> ResourceRequest {
    ResourceRequest {
        name: name.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        spec,
    }
}

fn network_spec() -> ResourceSpec {
    ResourceSpec::Network { mtu: None }
}

fn subnet_spec(network_id: &str, cidr: &str) -> ResourceSpec {
    ResourceSpec::Subnet {
        network_id: network_id.to_owned(),
        cidr: cidr.to_owned(),
        dns_servers: vec![],
    }
}

fn security_group_spec() -> ResourceSpec {
    ResourceSpec::SecurityGroup { rules: vec![] }
}

fn server_spec(
    network_id: &str,
    security_groups: &[&str],
    metadata: &[(&str, &str)],
) -> ResourceSpec {
    ResourceSpec::Server {
        flavor: "m1.medium".to_owned(),
        image: "ubuntu-24.04".to_owned(),
        network_id: network_id.to_owned(),
        security_group_ids: security_groups.iter().map(|s| (*s).to_owned()).collect(),
        server_group_id: None,
        availability_zone: None,
        user_data: kaas_cloud::UserData("I2Nsb3VkLWNvbmZpZwo=".to_owned()),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn cluster_server(network_id: &str, uid: &str, role: &str) -> ResourceSpec {
    server_spec(
        network_id,
        &[],
        &[
            (META_CLUSTER_UID, uid),
            (META_ROLE, role),
            (META_KUBERNETES_VERSION, "v1.33.4"),
        ],
    )
}

async fn create(sim: &SimCloud, name: &str, tags: &[&str], spec: ResourceSpec) -> CloudResource {
    sim.create(&request(name, tags, spec)).await.unwrap()
}

/// A network with a 10.0.0.0/24 subnet: (network id, subnet id).
async fn network_with_subnet(sim: &SimCloud) -> (String, String) {
    let network = create(sim, "net", &["t"], network_spec()).await;
    let subnet = create(
        sim,
        "subnet",
        &["t"],
        subnet_spec(&network.id, "10.0.0.0/24"),
    )
    .await;
    (network.id, subnet.id)
}

/// Polls `get` until `done` holds for its answer; the answer and how long it took.
async fn wait_for(
    sim: &SimCloud,
    kind: ResourceKind,
    id: &str,
    done: impl Fn(&Option<CloudResource>) -> bool,
) -> (Option<CloudResource>, Duration) {
    let start = Instant::now();
    loop {
        let got = sim.get(kind, id).await.unwrap();
        if done(&got) {
            return (got, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {kind} {id}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn stored(sim: &SimCloud, id: &str) -> state::SimResource {
    sim.lock().state.resources.get(id).cloned().unwrap()
}

#[test]
fn config_is_validated() {
    for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = SimCloud::new(SimConfig {
            speed,
            ..SimConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, SimError::InvalidConfig(_)), "{speed}: {err}");
    }
    let latencies = Latencies {
        router: LatencyRange::new(3.0, 1.0),
        ..Latencies::default()
    };
    assert!(
        SimCloud::new(SimConfig {
            latencies,
            ..SimConfig::default()
        })
        .is_err()
    );
    let sim = SimCloud::new(SimConfig {
        speed: 200.0,
        ..SimConfig::default()
    })
    .unwrap();
    assert_eq!(sim.speed(), 200.0);
    assert_eq!(sim.name(), "sim");
}

#[tokio::test]
async fn created_resources_are_pending_until_their_latency_has_passed() {
    let mut latencies = Latencies::instant();
    latencies.network = LatencyRange::fixed(300.0); // 300 ms at this speed
    let sim = sim(latencies);
    let created = create(&sim, "net", &["t"], network_spec()).await;
    assert_eq!(created.kind, ResourceKind::Network);
    assert_eq!(created.status, ResourceStatus::Pending);
    assert!(uuid::Uuid::parse_str(&created.id).is_ok(), "{}", created.id);
    let (got, _) = wait_for(&sim, ResourceKind::Network, &created.id, |g| g.is_some()).await;
    assert_eq!(got.unwrap().status, ResourceStatus::Pending);

    let stored = stored(&sim, &created.id);
    assert_eq!(stored.ready_at_ms - stored.created_at_ms, 300);
    let (got, waited) = wait_for(&sim, ResourceKind::Network, &created.id, |g| {
        g.as_ref().is_some_and(CloudResource::is_active)
    })
    .await;
    assert!(
        waited >= Duration::from_millis(80),
        "active after {waited:?}"
    );
    assert_eq!(got.unwrap().name, "net");
    // Another kind with the same id is not there.
    assert_eq!(
        sim.get(ResourceKind::Subnet, &created.id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn default_latencies_scale_with_speed() {
    let sim = SimCloud::new(SimConfig {
        speed: 10.0,
        seed: Some(1),
        ..SimConfig::default()
    })
    .unwrap();
    let (network_id, _) = network_with_subnet(&sim).await;
    let server = create(&sim, "vm", &[], server_spec(&network_id, &[], &[])).await;
    let server = stored(&sim, &server.id);
    let boot = server.ready_at_ms - server.created_at_ms;
    assert!(
        (3000..=9000).contains(&boot),
        "boot took {boot} ms at speed 10"
    );
    let init = server.kubeadm_init_ms.unwrap();
    assert!(
        (5000..=7000).contains(&init),
        "kubeadm init {init} ms at speed 10"
    );
    let join = server.join_ms.unwrap();
    assert!((2500..=3500).contains(&join), "join {join} ms at speed 10");
}

#[tokio::test]
async fn find_returns_every_resource_with_the_tag_and_names_are_not_unique() {
    let sim = sim(Latencies::instant());
    let a = create(&sim, "same", &["cluster-a", "kaas"], network_spec()).await;
    let b = create(&sim, "same", &["cluster-b", "kaas"], network_spec()).await;
    let group = create(&sim, "same", &["cluster-a"], security_group_spec()).await;
    assert_ne!(a.id, b.id);

    let found = sim.find(ResourceKind::Network, "cluster-a").await.unwrap();
    assert_eq!(
        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str()]
    );
    assert_eq!(found[0].tags, ["cluster-a", "kaas"]);
    let found = sim.find(ResourceKind::Network, "kaas").await.unwrap();
    assert_eq!(
        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str(), b.id.as_str()]
    );
    let found = sim
        .find(ResourceKind::SecurityGroup, "cluster-a")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, group.id);
    assert!(
        sim.find(ResourceKind::Network, "cluster")
            .await
            .unwrap()
            .is_empty()
    );

    let inventory = sim.inventory();
    assert_eq!(inventory.len(), 3);
    assert_eq!(inventory[2].kind, "securityGroup");
    assert_eq!(inventory[0].status, "ACTIVE");
    let json = serde_json::to_value(&inventory[0]).unwrap();
    assert_eq!(json["kind"], "network");
    assert_eq!(json["tags"][0], "cluster-a");
}

#[tokio::test]
async fn quota_exceeded_until_something_is_deleted() {
    let mut config = config(Latencies::instant());
    config.quotas.network = 2;
    let sim = SimCloud::new(config).unwrap();
    let first = create(&sim, "a", &[], network_spec()).await;
    create(&sim, "b", &[], network_spec()).await;
    let err = sim
        .create(&request("c", &[], network_spec()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::QuotaExceeded {
            message: "Quota exceeded for resources: ['network'].".to_owned()
        }
    );
    assert!(!err.is_retryable());
    // Other kinds have their own quota.
    create(&sim, "sg", &[], security_group_spec()).await;
    sim.delete(ResourceKind::Network, &first.id).await.unwrap();
    create(&sim, "c", &[], network_spec()).await;
}

#[tokio::test]
async fn preflight_counts_what_the_project_already_uses() {
    let mut config = config(Latencies::instant());
    config.quotas.server = 4;
    let sim = SimCloud::new(config).unwrap();
    let need = |count| Capacity {
        servers: vec![
            ServerNeed {
                flavor: "m1.small".to_owned(),
                image: "img".to_owned(),
                count,
            },
            ServerNeed {
                flavor: "m1.medium".to_owned(),
                image: "img".to_owned(),
                count: 1,
            },
        ],
    };
    sim.preflight(&need(3)).await.unwrap();
    let (network_id, _) = network_with_subnet(&sim).await;
    create(&sim, "vm", &[], server_spec(&network_id, &[], &[])).await;
    let err = sim.preflight(&need(3)).await.unwrap_err();
    assert_eq!(
        err,
        CloudError::QuotaExceeded {
            message: "Quota exceeded for instances: Requested 4, but already used 1 of 4 \
                      instances"
                .to_owned()
        }
    );
    sim.preflight(&need(2)).await.unwrap();
    let mut bad = need(1);
    bad.servers[0].flavor = " ".to_owned();
    assert!(matches!(
        sim.preflight(&bad).await,
        Err(CloudError::BadRequest { .. })
    ));
    bad.servers[0].flavor = "m1.huge".to_owned();
    assert_eq!(
        sim.preflight(&bad).await,
        Err(CloudError::BadRequest {
            message: "Flavor m1.huge could not be found.".to_owned()
        })
    );
    assert_eq!(sim.inventory().len(), 4, "a preflight builds nothing");
}

#[tokio::test]
async fn the_cloud_offers_the_m1_and_scs_flavors_as_their_names_say() {
    let sim = SimCloud::new(config(Latencies::instant())).unwrap();
    let flavors = sim.flavors().await.unwrap();
    let vcpus = |name: &str| flavors.iter().find(|f| f.name == name).map(|f| f.vcpus);
    assert_eq!(vcpus("m1.large"), Some(4));
    assert_eq!(vcpus("SCS-16V-32"), Some(16));
    assert_eq!(vcpus("m1.huge"), None);
    // Every flavor named by the SCS standard has the vCPUs and RAM its name says.
    for f in flavors.iter().filter(|f| f.name.starts_with("SCS-")) {
        let parts: Vec<&str> = f.name.split('-').collect();
        let cpus: u32 = parts[1].trim_end_matches(['L', 'V']).parse().unwrap();
        let gib: u64 = parts[2].parse().unwrap();
        assert_eq!((f.vcpus, f.ram_mib), (cpus, gib * 1024), "{f:?}");
    }
}

#[tokio::test]
async fn deleting_servers_still_count_against_the_quota() {
    let mut latencies = Latencies::instant();
    latencies.server_delete = LatencyRange::fixed(300.0);
    let mut config = config(latencies);
    config.quotas.server = 1;
    let sim = SimCloud::new(config).unwrap();
    let (network_id, _) = network_with_subnet(&sim).await;
    let vm = create(&sim, "vm", &[], server_spec(&network_id, &[], &[])).await;
    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    let err = sim
        .create(&request("vm2", &[], server_spec(&network_id, &[], &[])))
        .await;
    assert!(
        matches!(err, Err(CloudError::QuotaExceeded { message }) if message.contains("['server']"))
    );
    wait_for(&sim, ResourceKind::Server, &vm.id, Option::is_none).await;
    create(&sim, "vm2", &[], server_spec(&network_id, &[], &[])).await;
}

#[tokio::test]
async fn references_to_missing_resources_are_bad_requests() {
    let sim = sim(Latencies::instant());
    let missing = "00000000-0000-4000-8000-000000000000";
    let bad = |result: Result<CloudResource, CloudError>| match result {
        Err(CloudError::BadRequest { message }) => message,
        other => panic!("expected a bad request, got {other:?}"),
    };

    let message = bad(sim
        .create(&request("s", &[], subnet_spec(missing, "10.0.0.0/24")))
        .await);
    assert_eq!(message, format!("Network {missing} could not be found."));
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let message = bad(sim
        .create(&request("s", &[], subnet_spec(&network_id, "not-a-cidr")))
        .await);
    assert!(message.contains("not a valid IP subnet"), "{message}");
    let message = bad(sim
        .create(&request(
            "s",
            &[],
            subnet_spec(&network_id, "10.0.0.128/25"),
        ))
        .await);
    assert!(
        message.contains("overlaps with another subnet"),
        "{message}"
    );

    let message = bad(sim
        .create(&request(
            "r",
            &[],
            ResourceSpec::Router {
                external_network: "public".to_owned(),
                subnet_ids: vec![subnet_id.clone(), missing.to_owned()],
            },
        ))
        .await);
    assert!(message.contains(missing), "{message}");
    bad(sim
        .create(&request(
            "lb",
            &[],
            ResourceSpec::LoadBalancer {
                subnet_id: missing.to_owned(),
                vip_port_id: missing.to_owned(),
                port: 6443,
            },
        ))
        .await);
    bad(sim
        .create(&request(
            "fip",
            &[],
            ResourceSpec::FloatingIp {
                external_network: "public".to_owned(),
                port_id: missing.to_owned(),
            },
        ))
        .await);
    bad(sim
        .create(&request("vm", &[], server_spec(missing, &[], &[])))
        .await);
    let message = bad(sim
        .create(&request(
            "vm",
            &[],
            server_spec(&network_id, &[missing], &[]),
        ))
        .await);
    assert!(message.contains("Security group"), "{message}");
    let mut spec = server_spec(&network_id, &[], &[]);
    if let ResourceSpec::Server {
        server_group_id, ..
    } = &mut spec
    {
        *server_group_id = Some(missing.to_owned());
    }
    bad(sim.create(&request("vm", &[], spec)).await);
    // A network without a subnet cannot take servers.
    let bare = create(&sim, "bare", &[], network_spec()).await;
    let message = bad(sim
        .create(&request("vm", &[], server_spec(&bare.id, &[], &[])))
        .await);
    assert!(message.contains("requires a subnet"), "{message}");

    // Nothing was created by the refused calls.
    assert_eq!(sim.inventory().len(), 3);
}

#[tokio::test]
async fn deleting_what_is_in_use_is_a_conflict() {
    let sim = sim(Latencies::instant());
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let group = create(&sim, "sg", &[], security_group_spec()).await;
    let server_group = create(
        &sim,
        "sg",
        &[],
        ResourceSpec::ServerGroup {
            policy: ServerGroupPolicy::SoftAntiAffinity,
        },
    )
    .await;

    let err = sim
        .delete(ResourceKind::Network, &network_id)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            message: format!(
                "Unable to complete operation on network {network_id}. There are one or more ports \
                 still in use on the network."
            )
        }
    );
    assert!(err.is_retryable());

    let router = create(
        &sim,
        "router",
        &[],
        ResourceSpec::Router {
            external_network: "public".to_owned(),
            subnet_ids: vec![subnet_id.clone()],
        },
    )
    .await;
    let mut spec = server_spec(&network_id, &[&group.id], &[]);
    if let ResourceSpec::Server {
        server_group_id, ..
    } = &mut spec
    {
        *server_group_id = Some(server_group.id.clone());
    }
    let vm = create(&sim, "vm", &[], spec).await;

    assert!(matches!(
        sim.delete(ResourceKind::Subnet, &subnet_id).await,
        Err(CloudError::Conflict { .. })
    ));
    sim.delete(ResourceKind::Router, &router.id).await.unwrap();
    let err = sim
        .delete(ResourceKind::Subnet, &subnet_id)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message } if message.contains("ports have an IP allocation")),
        "{err}"
    );
    let err = sim
        .delete(ResourceKind::SecurityGroup, &group.id)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::Conflict {
            message: format!("Security Group {} in use.", group.id)
        }
    );
    assert!(matches!(
        sim.delete(ResourceKind::ServerGroup, &server_group.id)
            .await,
        Err(CloudError::Conflict { .. })
    ));

    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    sim.delete(ResourceKind::SecurityGroup, &group.id)
        .await
        .unwrap();
    sim.delete(ResourceKind::ServerGroup, &server_group.id)
        .await
        .unwrap();
    delete_ports(&sim).await;
    sim.delete(ResourceKind::Subnet, &subnet_id).await.unwrap();
    sim.delete(ResourceKind::Network, &network_id)
        .await
        .unwrap();
    assert!(sim.inventory().is_empty());
}

#[tokio::test]
async fn servers_and_load_balancers_go_through_deleting() {
    let mut latencies = Latencies::instant();
    latencies.server_delete = LatencyRange::fixed(300.0);
    latencies.load_balancer_delete = LatencyRange::fixed(400.0);
    let sim = sim(latencies);
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let vm = create(&sim, "vm", &["c"], server_spec(&network_id, &[], &[])).await;
    let lb = create(
        &sim,
        "lb",
        &["c"],
        lb_spec(&subnet_id, &vip_port(&sim, &network_id, &subnet_id).await),
    )
    .await;
    let router = create(
        &sim,
        "router",
        &["c"],
        ResourceSpec::Router {
            external_network: "public".to_owned(),
            subnet_ids: vec![subnet_id.clone()],
        },
    )
    .await;

    sim.delete(ResourceKind::Router, &router.id).await.unwrap();
    assert_eq!(
        sim.get(ResourceKind::Router, &router.id).await.unwrap(),
        None
    );

    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    sim.delete(ResourceKind::LoadBalancer, &lb.id)
        .await
        .unwrap();
    let got = sim
        .get(ResourceKind::Server, &vm.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.status, ResourceStatus::Deleting);
    // Still found by tag while being deleted, and deleting again is fine.
    let found = sim.find(ResourceKind::LoadBalancer, "c").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, ResourceStatus::Deleting);
    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    assert!(sim.inventory().iter().any(|i| i.status == "DELETING"));
    // Their ports still hold the subnet.
    assert!(matches!(
        sim.delete(ResourceKind::Subnet, &subnet_id).await,
        Err(CloudError::Conflict { .. })
    ));

    let (_, waited) = wait_for(&sim, ResourceKind::Server, &vm.id, Option::is_none).await;
    assert!(
        waited >= Duration::from_millis(200),
        "gone after {waited:?}"
    );
    wait_for(&sim, ResourceKind::LoadBalancer, &lb.id, Option::is_none).await;
    assert!(
        sim.find(ResourceKind::LoadBalancer, "c")
            .await
            .unwrap()
            .is_empty()
    );
    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    delete_ports(&sim).await;
    sim.delete(ResourceKind::Subnet, &subnet_id).await.unwrap();
    sim.delete(ResourceKind::Network, &network_id)
        .await
        .unwrap();
    sim.delete(ResourceKind::Network, &network_id)
        .await
        .unwrap();
    assert!(sim.inventory().is_empty());
}

/// A new floating IP on `port`, and its address.
async fn floating_ip(sim: &SimCloud, port: &str) -> IpAddr {
    let spec = ResourceSpec::FloatingIp {
        external_network: "public".to_owned(),
        port_id: port.to_owned(),
    };
    let fip = create(sim, "fip", &[], spec).await;
    fip.address.unwrap().parse().unwrap()
}

#[tokio::test]
async fn addresses_come_from_the_subnet_and_are_unique() {
    let sim = sim(Latencies::instant());
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let cidr: IpNet = "10.0.0.0/24".parse().unwrap();
    let mut seen = HashSet::new();
    let mut servers = vec![];
    for i in 0..5 {
        let vm = create(
            &sim,
            &format!("vm-{i}"),
            &[],
            server_spec(&network_id, &[], &[]),
        )
        .await;
        let address: IpAddr = vm.address.clone().unwrap().parse().unwrap();
        assert!(cidr.contains(&address), "{address}");
        assert!(seen.insert(address), "{address} handed out twice");
        servers.push(vm);
    }
    assert_eq!(servers[0].address.as_deref(), Some("10.0.0.10"));
    assert_eq!(servers[4].address.as_deref(), Some("10.0.0.14"));
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    let lb = create(&sim, "lb", &[], lb_spec(&subnet_id, &port)).await;
    let vip: IpAddr = lb.address.clone().unwrap().parse().unwrap();
    assert!(cidr.contains(&vip) && seen.insert(vip), "{vip}");

    // Freed addresses are not handed out again straight away.
    sim.delete(ResourceKind::Server, &servers[0].id)
        .await
        .unwrap();
    let vm = create(&sim, "vm-5", &[], server_spec(&network_id, &[], &[])).await;
    assert_eq!(vm.address.as_deref(), Some("10.0.0.16"));

    let public: IpNet = "203.0.113.0/24".parse().unwrap();
    let mut floating = HashSet::new();
    for _ in 0..3 {
        let address = floating_ip(&sim, &port).await;
        assert!(
            public.contains(&address) && floating.insert(address),
            "{address}"
        );
    }
    // Each network has its own address space.
    let other = create(&sim, "net2", &[], network_spec()).await;
    create(
        &sim,
        "subnet2",
        &[],
        subnet_spec(&other.id, "192.168.7.0/24"),
    )
    .await;
    let vm = create(&sim, "vm-x", &[], server_spec(&other.id, &[], &[])).await;
    assert_eq!(vm.address.as_deref(), Some("192.168.7.10"));
}

#[tokio::test]
async fn floating_ips_outlast_the_first_pool() {
    let mut config = config(Latencies::instant());
    config.quotas.floating_ip = 400;
    config.quotas.port = 10;
    let sim = SimCloud::new(config).unwrap();
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    let first: IpNet = "203.0.113.0/24".parse().unwrap();
    let second: IpNet = "198.18.0.0/15".parse().unwrap();
    let mut seen = HashSet::new();
    for _ in 0..300 {
        let address = floating_ip(&sim, &port).await;
        assert!(seen.insert(address), "{address} handed out twice");
        // The first pool is used up before the second is touched.
        if seen.len() <= 240 {
            assert!(first.contains(&address), "{address}");
        }
    }
    assert!(seen.iter().any(|a| second.contains(a)), "{seen:?}");
}

#[tokio::test]
async fn load_balancer_members_are_stored_once_it_is_active() {
    let mut latencies = Latencies::instant();
    latencies.load_balancer = LatencyRange::fixed(300.0);
    let sim = sim(latencies);
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let members = [
        PoolMember {
            address: "10.0.0.10".to_owned(),
            port: 6443,
        },
        PoolMember {
            address: "10.0.0.11".to_owned(),
            port: 6443,
        },
    ];
    let err = sim
        .set_load_balancer_members("nope", &members)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::NotFound {
            kind: ResourceKind::LoadBalancer,
            id: "nope".to_owned()
        }
    );
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    let lb = create(&sim, "lb", &[], lb_spec(&subnet_id, &port)).await;
    assert_eq!(lb.status, ResourceStatus::Pending);
    let err = sim
        .set_load_balancer_members(&lb.id, &members)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message } if message.contains("PENDING_CREATE")),
        "{err}"
    );
    wait_for(&sim, ResourceKind::LoadBalancer, &lb.id, |g| {
        g.as_ref().is_some_and(CloudResource::is_active)
    })
    .await;
    sim.set_load_balancer_members(&lb.id, &members)
        .await
        .unwrap();
    assert_eq!(sim.load_balancer_members(&lb.id).unwrap(), members);
    sim.set_load_balancer_members(&lb.id, &members[..1])
        .await
        .unwrap();
    assert_eq!(sim.load_balancer_members(&lb.id).unwrap(), members[..1]);
}

#[tokio::test]
async fn injected_faults_fail_the_next_creates() {
    let sim = sim(Latencies::instant());
    sim.fail_next_creates(ResourceKind::Network, 1);
    let err = sim
        .create(&request("n", &[], network_spec()))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Unavailable { .. }));
    create(&sim, "n", &[], network_spec()).await;
    assert_eq!(sim.inventory().len(), 1);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ids() {
    let a = sim(Latencies::default());
    let b = sim(Latencies::default());
    let x = create(&a, "n", &[], network_spec()).await;
    let y = create(&b, "n", &[], network_spec()).await;
    assert_eq!(x.id, y.id);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("cloud.json");
    let latencies = Latencies {
        server_delete: LatencyRange::fixed(3600.0),
        ..Latencies::default()
    };
    let config = SimConfig {
        speed: 1.0,
        state_file: Some(path.clone()),
        latencies,
        ..SimConfig::default()
    };

    let sim = SimCloud::new(config.clone()).unwrap();
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let vm = create(&sim, "vm", &["c"], server_spec(&network_id, &[], &[])).await;
    let doomed = create(&sim, "doomed", &["c"], server_spec(&network_id, &[], &[])).await;
    let gone = create(&sim, "gone", &["c"], security_group_spec()).await;
    sim.delete(ResourceKind::SecurityGroup, &gone.id)
        .await
        .unwrap();
    sim.delete(ResourceKind::Server, &doomed.id).await.unwrap();
    let before = sim.lock().state.resources.clone();
    let inventory = sim.inventory();
    assert_eq!(vm.status, ResourceStatus::Pending);
    drop(sim);

    let sim = SimCloud::new(config.clone()).unwrap();
    assert_eq!(sim.lock().state.resources, before);
    assert_eq!(sim.inventory(), inventory);
    let got = sim
        .get(ResourceKind::Server, &vm.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.status,
        ResourceStatus::Pending,
        "timestamps are absolute, boot continues"
    );
    assert_eq!(got.address, vm.address);
    let doomed = sim
        .get(ResourceKind::Server, &doomed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doomed.status, ResourceStatus::Deleting);
    assert_eq!(
        sim.get(ResourceKind::SecurityGroup, &gone.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(sim.find(ResourceKind::Server, "c").await.unwrap().len(), 2);
    // The address cursor survived too: no address is handed out twice.
    let next = create(&sim, "next", &[], server_spec(&network_id, &[], &[])).await;
    assert_eq!(next.address.as_deref(), Some("10.0.0.12"));
    assert!(matches!(
        sim.delete(ResourceKind::Subnet, &subnet_id).await,
        Err(CloudError::Conflict { .. })
    ));

    // Only the state file is left in the directory: no temporary files.
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["cloud.json"]);
}

#[test]
fn a_corrupt_state_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = SimCloud::new(SimConfig {
        state_file: Some(path),
        ..SimConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, SimError::Corrupt { .. }), "{err}");
}

// ---- workload clusters ----

fn cluster(uid: &str) -> WorkloadClusterRef {
    WorkloadClusterRef::new(uid, "https://203.0.113.10:6443")
}

fn node_names(nodes: &[kaas_cloud::Node]) -> Vec<&str> {
    nodes.iter().map(|n| n.name.as_str()).collect()
}

#[tokio::test]
async fn the_api_comes_up_after_kubeadm_init_and_nodes_join() {
    let sim = sim(Latencies::default()); // realistic ranges, at 1000x
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "3f1c0a4e-uid";
    let cp0 = create(
        &sim,
        "c1-cp-0",
        &[],
        cluster_server(&network_id, uid, "init"),
    )
    .await;
    let cp1 = create(
        &sim,
        "c1-cp-1",
        &[],
        cluster_server(&network_id, uid, "control-plane"),
    )
    .await;
    let worker = create(
        &sim,
        "c1-worker-0",
        &[],
        cluster_server(&network_id, uid, "worker"),
    )
    .await;
    create(
        &sim,
        "other",
        &[],
        cluster_server(&network_id, "other-uid", "init"),
    )
    .await;

    let err = sim.nodes(&cluster(uid)).await.unwrap_err();
    assert!(
        matches!(&err, WorkloadError::Unreachable { endpoint, .. } if endpoint == "https://203.0.113.10:6443"),
        "{err:?}"
    );
    assert!(matches!(
        sim.nodes(&cluster("unknown")).await,
        Err(WorkloadError::Unreachable { .. })
    ));

    let start = Instant::now();
    let nodes = loop {
        match sim.nodes(&cluster(uid)).await {
            Ok(nodes) if nodes.len() == 3 => break nodes,
            Ok(nodes) => assert!(nodes.iter().any(|n| n.name == "c1-cp-0"), "{nodes:?}"),
            Err(WorkloadError::Unreachable { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nodes never joined"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // init: up to 90 ms boot + 70 ms kubeadm init; others + up to 35 ms join.
    assert_eq!(node_names(&nodes), ["c1-cp-0", "c1-cp-1", "c1-worker-0"]);
    for (node, server) in nodes.iter().zip([&cp0, &cp1, &worker]) {
        assert_eq!(node.provider_id, format!("openstack:///{}", server.id));
        assert_eq!(node.server_id(), Some(server.id.as_str()));
        assert!(node.ready);
        assert_eq!(node.kubelet_version, "v1.33.4");
    }

    // A deleted server's node leaves; the API answers as long as a control plane is
    // left, even without the init server, and no longer once the last one goes.
    sim.delete(ResourceKind::Server, &worker.id).await.unwrap();
    let nodes = sim.nodes(&cluster(uid)).await.unwrap();
    assert_eq!(node_names(&nodes), ["c1-cp-0", "c1-cp-1"]);
    sim.delete(ResourceKind::Server, &cp0.id).await.unwrap();
    let nodes = sim.nodes(&cluster(uid)).await.unwrap();
    assert_eq!(node_names(&nodes), ["c1-cp-1"]);
    sim.delete(ResourceKind::Server, &cp1.id).await.unwrap();
    assert!(matches!(
        sim.nodes(&cluster(uid)).await,
        Err(WorkloadError::Unreachable { .. })
    ));
}

/// The timeline of a cluster, evaluated at chosen instants: no waiting, no flakiness.
#[tokio::test]
async fn nodes_follow_the_timeline() {
    let mut latencies = Latencies::instant();
    latencies.server_boot = LatencyRange::fixed(10.0);
    latencies.kubeadm_init = LatencyRange::fixed(100.0);
    latencies.node_join = LatencyRange::fixed(5.0);
    let sim = sim(latencies);
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-1";
    // The worker boots before the init server: it still cannot join before the API is up.
    let worker = create(
        &sim,
        "w",
        &[],
        server_spec(
            &network_id,
            &[],
            &[(META_CLUSTER_UID, uid), (META_ROLE, "worker")],
        ),
    )
    .await;
    let init = create(&sim, "cp", &[], cluster_server(&network_id, uid, "init")).await;
    let init_stored = stored(&sim, &init.id);
    let worker_stored = stored(&sim, &worker.id);
    assert!(worker_stored.ready_at_ms <= init_stored.ready_at_ms);
    let api_up = init_stored.ready_at_ms + 100;
    let worker_ready = api_up + 5;

    let at = |now: u64| {
        let shared = sim.lock();
        workload::nodes(&shared.state, uid, "https://x:6443", "sim-1", now)
    };
    // Worker active, init active, but kubeadm init still running.
    assert!(matches!(
        at(init_stored.ready_at_ms),
        Err(WorkloadError::Unreachable { .. })
    ));
    assert!(matches!(
        at(api_up - 1),
        Err(WorkloadError::Unreachable { .. })
    ));
    let nodes = at(api_up).unwrap();
    assert_eq!(node_names(&nodes), ["cp"]);
    assert!(nodes[0].ready);
    assert_eq!(node_names(&at(worker_ready - 1).unwrap()), ["cp"]);
    let nodes = at(worker_ready).unwrap();
    assert_eq!(node_names(&nodes), ["cp", "w"]);
    assert_eq!(nodes[1].kubelet_version, "v0.0.0");
    assert_eq!(nodes[1].provider_id, format!("openstack:///{}", worker.id));
}

// ---- the API outlives the init server ----

/// Polls `f` until it returns `Some`; fails after 10 s.
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The nodes of `c`, failing the test when the API does not answer.
async fn nodes_up(sim: &SimCloud, c: &WorkloadClusterRef, when: &str) -> Vec<kaas_cloud::Node> {
    sim.nodes(c)
        .await
        .unwrap_or_else(|e| panic!("the API is down {when}: {e}"))
}

#[tokio::test]
async fn a_rolling_replacement_of_every_control_plane_keeps_the_api_up() {
    let mut latencies = Latencies::instant();
    latencies.server_boot = LatencyRange::fixed(20.0);
    latencies.kubeadm_init = LatencyRange::fixed(20.0);
    latencies.node_join = LatencyRange::fixed(10.0);
    latencies.server_delete = LatencyRange::fixed(20.0);
    let sim = sim(latencies);
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-roll";
    let c = cluster(uid);
    let mut old = vec![];
    for (i, role) in ["init", "control-plane", "control-plane"]
        .into_iter()
        .enumerate()
    {
        let spec = cluster_server(&network_id, uid, role);
        old.push(create(&sim, &format!("cp-{i}"), &[], spec).await);
    }
    create(&sim, "w-0", &[], cluster_server(&network_id, uid, "worker")).await;
    until("the first nodes join", async || {
        sim.nodes(&c).await.ok().filter(|n| n.len() == 4)
    })
    .await;
    assert_eq!(
        sim.etcd_members(&c).await.unwrap(),
        ["cp-0", "cp-1", "cp-2"]
    );

    // Surge one, wait for it, remove an old one (the init one first); repeat.
    for (i, leaving) in old.iter().enumerate() {
        let name = format!("cp-new-{i}");
        let spec = cluster_server(&network_id, uid, "control-plane");
        create(&sim, &name, &[], spec).await;
        assert!(
            !sim.etcd_members(&c).await.unwrap().contains(&name),
            "a member before it joined"
        );
        until("the new control plane joins", async || {
            let nodes = nodes_up(&sim, &c, &format!("while {name} joins")).await;
            nodes
                .iter()
                .any(|n| n.name == name && n.ready)
                .then_some(())
        })
        .await;
        assert!(sim.etcd_members(&c).await.unwrap().contains(&name));
        sim.remove_etcd_member(&c, &leaving.name).await.unwrap();
        sim.delete(ResourceKind::Server, &leaving.id).await.unwrap();
        let nodes = nodes_up(&sim, &c, &format!("after deleting {}", leaving.name)).await;
        assert!(!nodes.iter().any(|n| n.name == leaving.name), "{nodes:?}");
    }
    // Up while the old servers finish going, and after they are gone.
    for leaving in &old {
        until("the old server is gone", async || {
            nodes_up(&sim, &c, "while the old servers go").await;
            let got = sim.get(ResourceKind::Server, &leaving.id).await.unwrap();
            got.is_none().then_some(())
        })
        .await;
    }
    let nodes = nodes_up(&sim, &c, "after the replacement").await;
    assert_eq!(
        node_names(&nodes),
        ["cp-new-0", "cp-new-1", "cp-new-2", "w-0"]
    );
    assert_eq!(
        sim.etcd_members(&c).await.unwrap(),
        ["cp-new-0", "cp-new-1", "cp-new-2"]
    );
    // Servers still join: the cluster remembers its API without the init server.
    create(&sim, "w-1", &[], cluster_server(&network_id, uid, "worker")).await;
    until("a worker joins after the replacement", async || {
        let nodes = nodes_up(&sim, &c, "while the worker joins").await;
        nodes.iter().any(|n| n.name == "w-1").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_api_goes_down_with_the_last_control_plane_and_a_new_init_starts_afresh() {
    let sim = sim(Latencies::instant());
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-down";
    let c = cluster(uid);
    let cp0 = create(&sim, "cp-0", &[], cluster_server(&network_id, uid, "init")).await;
    create(&sim, "w-0", &[], cluster_server(&network_id, uid, "worker")).await;
    assert_eq!(node_names(&sim.nodes(&c).await.unwrap()), ["cp-0", "w-0"]);

    sim.delete(ResourceKind::Server, &cp0.id).await.unwrap();
    let unreachable = |result: Result<_, WorkloadError>| match result {
        Err(WorkloadError::Unreachable { message, .. }) => message,
        other => panic!("expected Unreachable, got {other:?}"),
    };
    let message = unreachable(sim.nodes(&c).await.map(|_| ()));
    assert!(
        message.contains("every control-plane node is gone"),
        "{message}"
    );
    // A control plane cannot join a cluster whose API is gone.
    create(
        &sim,
        "cp-1",
        &[],
        cluster_server(&network_id, uid, "control-plane"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    unreachable(sim.nodes(&c).await.map(|_| ()));
    unreachable(sim.etcd_members(&c).await.map(|_| ()));
    unreachable(sim.remove_etcd_member(&c, "cp-0").await);

    // A new init server runs kubeadm init afresh: a new cluster without the old servers.
    create(&sim, "cp-2", &[], cluster_server(&network_id, uid, "init")).await;
    assert_eq!(node_names(&sim.nodes(&c).await.unwrap()), ["cp-2"]);
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-2"]);
}

// ---- node readiness ----

fn ms_time(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap())
}

fn node<'a>(nodes: &'a [kaas_cloud::Node], name: &str) -> &'a kaas_cloud::Node {
    nodes.iter().find(|n| n.name == name).unwrap()
}

#[tokio::test]
async fn nodes_report_when_they_joined_and_can_be_made_not_ready() {
    let mut latencies = Latencies::instant();
    latencies.kubeadm_init = LatencyRange::fixed(5.0);
    latencies.node_join = LatencyRange::fixed(7.0);
    let sim = sim(latencies);
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-ready";
    let c = cluster(uid);
    let cp = create(&sim, "cp-0", &[], cluster_server(&network_id, uid, "init")).await;
    let w = create(&sim, "w-0", &[], cluster_server(&network_id, uid, "worker")).await;
    let nodes = until("both nodes join", async || {
        sim.nodes(&c).await.ok().filter(|n| n.len() == 2)
    })
    .await;
    let api_up = stored(&sim, &cp.id).ready_at_ms + 5;
    let w_joined = stored(&sim, &w.id).ready_at_ms.max(api_up) + 7;
    assert_eq!(node(&nodes, "cp-0").last_transition, ms_time(api_up));
    assert_eq!(node(&nodes, "w-0").last_transition, ms_time(w_joined));
    assert!(nodes.iter().all(|n| n.ready && !n.unschedulable));

    assert_eq!(
        sim.set_node_ready("nope", false),
        Err(CloudError::NotFound {
            kind: ResourceKind::Server,
            id: "nope".to_owned()
        })
    );
    tokio::time::sleep(Duration::from_millis(3)).await;
    let before = now_ms();
    sim.set_node_ready("w-0", false).unwrap();
    let after = now_ms();
    let nodes = sim.nodes(&c).await.unwrap();
    let worker = node(&nodes, "w-0");
    assert!(!worker.ready);
    let flipped = worker.last_transition.unwrap();
    assert!(
        ms_time(before).unwrap() <= flipped && flipped <= ms_time(after).unwrap(),
        "{flipped}"
    );
    assert!(node(&nodes, "cp-0").ready);
    assert!(stored(&sim, &w.id).node.not_ready, "persisted");

    // Saying it again changes nothing; flipping back is a new transition.
    tokio::time::sleep(Duration::from_millis(3)).await;
    sim.set_node_ready("w-0", false).unwrap();
    let nodes = sim.nodes(&c).await.unwrap();
    assert_eq!(node(&nodes, "w-0").last_transition, Some(flipped));
    sim.set_node_ready("w-0", true).unwrap();
    let nodes = sim.nodes(&c).await.unwrap();
    let worker = node(&nodes, "w-0");
    assert!(worker.ready);
    assert!(worker.last_transition.unwrap() > flipped);

    // A NotReady control plane still serves the API.
    sim.set_node_ready("cp-0", false).unwrap();
    assert!(!node(&sim.nodes(&c).await.unwrap(), "cp-0").ready);
    // A server being deleted has no node any more.
    sim.delete(ResourceKind::Server, &w.id).await.unwrap();
    assert!(matches!(
        sim.set_node_ready("w-0", true),
        Err(CloudError::NotFound { .. })
    ));
}

// ---- blocked drains ----

#[tokio::test]
async fn blocked_drains_are_remembered_per_node_and_listed_per_cluster() {
    let sim = sim(Latencies::instant());
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-drain";
    create(&sim, "cp", &[], cluster_server(&network_id, uid, "init")).await;
    let w = create(&sim, "w", &[], cluster_server(&network_id, uid, "worker")).await;
    create(
        &sim,
        "x",
        &[],
        cluster_server(&network_id, "uid-other", "worker"),
    )
    .await;
    assert!(matches!(
        sim.block_drain("nope", true),
        Err(CloudError::NotFound { .. })
    ));
    assert!(sim.drain_blocked_nodes(uid).is_empty());
    sim.block_drain("w", true).unwrap();
    sim.block_drain("x", true).unwrap();
    assert_eq!(sim.drain_blocked_nodes(uid), ["w"]);
    assert!(stored(&sim, &w.id).node.drain_blocked, "persisted");
    sim.block_drain("w", false).unwrap();
    assert!(sim.drain_blocked_nodes(uid).is_empty());
    assert_eq!(sim.drain_blocked_nodes("uid-other"), ["x"]);
}

// ---- etcd ----

#[tokio::test]
async fn control_planes_are_etcd_members_until_removed() {
    let sim = sim(Latencies::instant());
    let (network_id, _) = network_with_subnet(&sim).await;
    let uid = "uid-etcd";
    let c = cluster(uid);
    create(&sim, "cp-b", &[], cluster_server(&network_id, uid, "init")).await;
    let cp_a = create(
        &sim,
        "cp-a",
        &[],
        cluster_server(&network_id, uid, "control-plane"),
    )
    .await;
    create(&sim, "w-0", &[], cluster_server(&network_id, uid, "worker")).await;
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-a", "cp-b"]);

    // Deleting the server leaves the member behind, as in real etcd.
    sim.delete(ResourceKind::Server, &cp_a.id).await.unwrap();
    assert_eq!(node_names(&sim.nodes(&c).await.unwrap()), ["cp-b", "w-0"]);
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-a", "cp-b"]);
    // Still there once the server is purged.
    create(&sim, "unrelated", &[], network_spec()).await;
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-a", "cp-b"]);
    sim.remove_etcd_member(&c, "cp-a").await.unwrap();
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-b"]);
    // Removing what is not a member is fine.
    sim.remove_etcd_member(&c, "cp-a").await.unwrap();
    sim.remove_etcd_member(&c, "w-0").await.unwrap();
    sim.remove_etcd_member(&c, "nope").await.unwrap();
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-b"]);

    // A new control plane joins etcd; removing a running one's member keeps its node.
    create(
        &sim,
        "cp-c",
        &[],
        cluster_server(&network_id, uid, "control-plane"),
    )
    .await;
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-b", "cp-c"]);
    sim.remove_etcd_member(&c, "cp-c").await.unwrap();
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-b"]);
    assert_eq!(
        node_names(&sim.nodes(&c).await.unwrap()),
        ["cp-b", "cp-c", "w-0"]
    );

    for result in [
        sim.etcd_members(&cluster("unknown")).await.map(|_| ()),
        sim.remove_etcd_member(&cluster("unknown"), "cp-b").await,
    ] {
        assert!(
            matches!(result, Err(WorkloadError::Unreachable { .. })),
            "{result:?}"
        );
    }
}

// ---- fault injection ----

#[test]
fn fault_rates_are_validated() {
    let cases = [
        (
            "apiErrors",
            SimFaults {
                api_errors: 1.5,
                ..SimFaults::default()
            },
        ),
        (
            "timeouts",
            SimFaults {
                timeouts: -0.1,
                ..SimFaults::default()
            },
        ),
        (
            "quotaErrors",
            SimFaults {
                quota_errors: f64::NAN,
                ..SimFaults::default()
            },
        ),
        (
            "serverErrors",
            SimFaults {
                server_errors: f64::INFINITY,
                ..SimFaults::default()
            },
        ),
        (
            "stuckLoadBalancers",
            SimFaults {
                stuck_load_balancers: 2.0,
                ..SimFaults::default()
            },
        ),
    ];
    let sim = sim(Latencies::instant());
    for (field, faults) in cases {
        let err = faults.validate().unwrap_err();
        assert!(err.starts_with(field), "{err}");
        let err = SimCloud::new(SimConfig {
            faults: faults.clone(),
            ..SimConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, SimError::InvalidConfig(m) if m.contains(field)),
            "{err}"
        );
        let err = sim.set_faults(faults).unwrap_err();
        assert!(err.contains(field), "{err}");
        assert_eq!(sim.faults(), SimFaults::default(), "unchanged");
    }
    let all = SimFaults {
        api_errors: 1.0,
        timeouts: 0.0,
        quota_errors: 0.5,
        server_errors: 1.0,
        stuck_load_balancers: 0.25,
    };
    all.validate().unwrap();
    sim.set_faults(all.clone()).unwrap();
    assert_eq!(sim.faults(), all);
    assert_eq!(sim.config().faults, SimFaults::default());

    let json = serde_json::to_value(&all).unwrap();
    assert_eq!(json["stuckLoadBalancers"], 0.25);
    let parsed: SimFaults = serde_json::from_str(r#"{"apiErrors": 0.5}"#).unwrap();
    assert_eq!(
        parsed,
        SimFaults {
            api_errors: 0.5,
            ..SimFaults::default()
        }
    );
}

fn lb_spec(subnet_id: &str, vip_port_id: &str) -> ResourceSpec {
    ResourceSpec::LoadBalancer {
        subnet_id: subnet_id.to_owned(),
        vip_port_id: vip_port_id.to_owned(),
        port: 6443,
    }
}

/// Deletes every port (servers' and VIPs'), as the planner does before the subnet.
async fn delete_ports(sim: &SimCloud) {
    for item in sim.inventory() {
        if item.kind == "port" {
            sim.delete(ResourceKind::Port, &item.id).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_server_gets_a_port_of_its_own_that_a_retry_reuses() {
    let sim = sim(Latencies::instant());
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let vm = create(&sim, "vm", &["c", "m"], server_spec(&network_id, &[], &[])).await;
    let ports = sim.find(ResourceKind::Port, "m").await.unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].name, "vm");
    assert_eq!(ports[0].address, vm.address);
    // The server failed and is replaced: the new one boots on the same port.
    sim.delete(ResourceKind::Server, &vm.id).await.unwrap();
    let again = create(&sim, "vm", &["c", "m"], server_spec(&network_id, &[], &[])).await;
    assert_eq!(again.address, vm.address);
    assert_eq!(sim.find(ResourceKind::Port, "m").await.unwrap().len(), 1);
    // A port in use by a server is not handed to another of the same name.
    let twin = create(&sim, "vm", &["c", "m"], server_spec(&network_id, &[], &[])).await;
    assert_ne!(twin.address, again.address);
    assert_eq!(sim.find(ResourceKind::Port, "m").await.unwrap().len(), 2);
    // A load balancer's VIP port cannot go before the load balancer.
    let vip = vip_port(&sim, &network_id, &subnet_id).await;
    let lb = create(&sim, "lb", &[], lb_spec(&subnet_id, &vip)).await;
    let vip_address = sim
        .get(ResourceKind::Port, &vip)
        .await
        .unwrap()
        .unwrap()
        .address;
    assert_eq!(lb.address, vip_address);
    assert!(matches!(
        sim.delete(ResourceKind::Port, &vip).await,
        Err(CloudError::Conflict { .. })
    ));
}

/// A VIP port for a load balancer; its id.
async fn vip_port(sim: &SimCloud, network_id: &str, subnet_id: &str) -> String {
    let spec = ResourceSpec::Port {
        network_id: network_id.to_owned(),
        subnet_id: subnet_id.to_owned(),
        security_group_ids: vec![],
    };
    create(sim, "vip", &["t"], spec).await.id
}

#[tokio::test]
async fn api_errors_fail_every_cloud_call_before_it_does_anything() {
    let sim = sim(Latencies::instant());
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    let lb = create(&sim, "lb", &["t"], lb_spec(&subnet_id, &port)).await;
    sim.set_faults(SimFaults {
        api_errors: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let injected = CloudError::Unavailable {
        message: "503 Service Unavailable: the simulated cloud injected an error".to_owned(),
    };
    let members = [PoolMember {
        address: "10.0.0.10".to_owned(),
        port: 6443,
    }];
    assert_eq!(
        sim.create(&request("n", &["t"], network_spec()))
            .await
            .unwrap_err(),
        injected
    );
    assert_eq!(
        sim.get(ResourceKind::Network, &network_id)
            .await
            .unwrap_err(),
        injected
    );
    assert_eq!(
        sim.find(ResourceKind::Network, "t").await.unwrap_err(),
        injected
    );
    assert_eq!(
        sim.delete(ResourceKind::LoadBalancer, &lb.id)
            .await
            .unwrap_err(),
        injected
    );
    assert_eq!(
        sim.set_load_balancer_members(&lb.id, &members)
            .await
            .unwrap_err(),
        injected
    );
    assert!(injected.is_retryable());

    sim.set_faults(SimFaults::default()).unwrap();
    assert_eq!(
        sim.inventory().len(),
        4,
        "nothing was created beyond the network, subnet, VIP port and load balancer"
    );
    let lb = sim
        .get(ResourceKind::LoadBalancer, &lb.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lb.status, ResourceStatus::Active, "nothing was deleted");
    assert_eq!(sim.load_balancer_members(&lb.id).unwrap(), []);
}

#[tokio::test]
async fn faults_happen_at_their_rate_and_a_seed_makes_them_repeatable() {
    async fn run(seed: u64) -> Vec<bool> {
        let sim = SimCloud::new(SimConfig {
            speed: SPEED,
            latencies: Latencies::instant(),
            seed: Some(seed),
            faults: SimFaults {
                api_errors: 0.3,
                ..SimFaults::default()
            },
            ..SimConfig::default()
        })
        .unwrap();
        let mut failed = vec![];
        for _ in 0..400 {
            failed.push(sim.find(ResourceKind::Network, "t").await.is_err());
        }
        failed
    }
    let a = run(7).await;
    let errors = a.iter().filter(|f| **f).count();
    assert!(
        (80..=160).contains(&errors),
        "{errors} errors in 400 calls at 0.3"
    );
    assert_eq!(run(7).await, a);
    assert_ne!(run(8).await, a);
}

#[tokio::test]
async fn a_timed_out_create_was_carried_out_and_is_found_by_its_tags() {
    let sim = sim(Latencies::instant());
    let (network_id, _) = network_with_subnet(&sim).await;
    let timeouts = SimFaults {
        timeouts: 1.0,
        ..SimFaults::default()
    };
    sim.set_faults(timeouts.clone()).unwrap();
    let timed_out = |err: CloudError| match err {
        CloudError::Unavailable { message } => {
            assert!(message.starts_with("timed out"), "{message}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    };

    let start = Instant::now();
    let err = sim
        .create(&request(
            "vm",
            &["cluster-x"],
            server_spec(&network_id, &[], &[]),
        ))
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(err.is_retryable());
    timed_out(err);
    assert!(
        (Duration::from_millis(50)..Duration::from_secs(5)).contains(&waited),
        "{waited:?}"
    );
    timed_out(
        sim.find(ResourceKind::Server, "cluster-x")
            .await
            .unwrap_err(),
    );
    timed_out(sim.get(ResourceKind::Server, "x").await.unwrap_err());

    // The request reached the cloud: a retry adopts the server by its tag.
    sim.set_faults(SimFaults::default()).unwrap();
    let found = sim.find(ResourceKind::Server, "cluster-x").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "vm");

    // So did a timed-out delete.
    sim.set_faults(timeouts).unwrap();
    timed_out(
        sim.delete(ResourceKind::Server, &found[0].id)
            .await
            .unwrap_err(),
    );
    sim.set_faults(SimFaults::default()).unwrap();
    assert_eq!(
        sim.get(ResourceKind::Server, &found[0].id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn quota_errors_refuse_creates() {
    let sim = sim(Latencies::instant());
    sim.set_faults(SimFaults {
        quota_errors: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let err = sim
        .create(&request("n", &[], network_spec()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::QuotaExceeded {
            message: "Quota exceeded for resources: ['network'].".to_owned()
        }
    );
    assert!(sim.inventory().is_empty());
    // Other calls are not affected.
    sim.find(ResourceKind::Network, "t").await.unwrap();
    sim.set_faults(SimFaults::default()).unwrap();
    create(&sim, "n", &[], network_spec()).await;
}

#[tokio::test]
async fn server_errors_end_the_boot_in_error() {
    let mut latencies = Latencies::instant();
    latencies.server_boot = LatencyRange::fixed(30.0); // 30 ms
    let sim = sim(latencies);
    let (network_id, _) = network_with_subnet(&sim).await;
    sim.set_faults(SimFaults {
        server_errors: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let uid = "uid-err";
    let c = cluster(uid);
    let broken = create(&sim, "cp-0", &[], cluster_server(&network_id, uid, "init")).await;
    assert_eq!(broken.status, ResourceStatus::Pending);
    // Only servers break.
    let network = create(&sim, "n2", &[], network_spec()).await;
    assert_eq!(network.status, ResourceStatus::Active);

    let (got, _) = wait_for(&sim, ResourceKind::Server, &broken.id, |g| {
        g.as_ref()
            .is_some_and(|r| r.status != ResourceStatus::Pending)
    })
    .await;
    assert_eq!(
        got.unwrap().status,
        ResourceStatus::Error {
            message: "No valid host was found. There are not enough hosts available.".to_owned()
        }
    );
    let item = sim
        .inventory()
        .into_iter()
        .find(|i| i.id == broken.id)
        .unwrap();
    assert_eq!(item.status, "ERROR");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(
        sim.nodes(&c).await,
        Err(WorkloadError::Unreachable { .. })
    ));

    // The replacement boots, and the broken one can be deleted.
    sim.set_faults(SimFaults::default()).unwrap();
    create(&sim, "cp-1", &[], cluster_server(&network_id, uid, "init")).await;
    let nodes = until("the replacement comes up", async || {
        sim.nodes(&c).await.ok()
    })
    .await;
    assert_eq!(node_names(&nodes), ["cp-1"]);
    sim.delete(ResourceKind::Server, &broken.id).await.unwrap();
    wait_for(&sim, ResourceKind::Server, &broken.id, Option::is_none).await;
}

#[tokio::test]
async fn stuck_load_balancers_converge_once_the_fault_clears() {
    let mut latencies = Latencies::instant();
    latencies.load_balancer = LatencyRange::fixed(20.0); // 20 ms
    let sim = sim(latencies);
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    sim.set_faults(SimFaults {
        stuck_load_balancers: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let lb = create(&sim, "lb", &[], lb_spec(&subnet_id, &port)).await;
    assert!(stored(&sim, &lb.id).stuck, "persisted");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let pending = |sim: &SimCloud| {
        let sim = sim.clone();
        let id = lb.id.clone();
        async move {
            sim.get(ResourceKind::LoadBalancer, &id)
                .await
                .unwrap()
                .unwrap()
                .status
                == ResourceStatus::Pending
        }
    };
    assert!(pending(&sim).await);
    let err = sim
        .set_load_balancer_members(&lb.id, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CloudError::Conflict { message } if message.contains("PENDING_CREATE")),
        "{err}"
    );
    // A lower rate is still a fault.
    sim.set_faults(SimFaults {
        stuck_load_balancers: 0.5,
        ..SimFaults::default()
    })
    .unwrap();
    assert!(pending(&sim).await);

    sim.set_faults(SimFaults::default()).unwrap();
    assert!(!pending(&sim).await, "its ready time had passed");
    assert!(!stored(&sim, &lb.id).stuck);
    // A new one is not stuck.
    let other = create(&sim, "lb2", &[], lb_spec(&subnet_id, &port)).await;
    assert!(!stored(&sim, &other.id).stuck);
}

#[test]
fn released_load_balancers_become_active_at_their_ready_time_or_now() {
    let mut state = state::State::default();
    for (id, ready_at_ms) in [("early", 100), ("late", 500)] {
        let resource = state::SimResource {
            seq: 0,
            id: id.to_owned(),
            name: id.to_owned(),
            tags: vec![],
            spec: lb_spec("s", "p"),
            created_at_ms: 0,
            ready_at_ms,
            deleting_since_ms: None,
            gone_at_ms: None,
            address: None,
            port_subnet_id: None,
            members: vec![],
            kubeadm_init_ms: None,
            join_ms: None,
            error: None,
            boot_error: None,
            stuck: true,
            node: state::SimNode::default(),
            rest: Default::default(),
        };
        assert_eq!(resource.status(1000), ResourceStatus::Pending);
        state.resources.insert(id.to_owned(), resource);
    }
    assert!(state.release_stuck(300));
    assert!(!state.release_stuck(300), "nothing left to release");
    assert_eq!(state.resources["early"].ready_at_ms, 300);
    assert_eq!(state.resources["late"].ready_at_ms, 500);
    assert_eq!(state.resources["late"].status(499), ResourceStatus::Pending);
    assert_eq!(state.resources["late"].status(500), ResourceStatus::Active);
}

// ---- persistence of the new state ----

#[tokio::test]
async fn nodes_blocked_drains_etcd_and_stuck_load_balancers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let latencies = Latencies::instant();
    let stuck = SimFaults {
        stuck_load_balancers: 1.0,
        ..SimFaults::default()
    };
    let config = SimConfig {
        speed: 1.0,
        state_file: Some(path.clone()),
        latencies,
        seed: Some(3),
        faults: stuck.clone(),
        ..SimConfig::default()
    };
    let uid = "uid-persist";
    let c = cluster(uid);

    let sim = SimCloud::new(config.clone()).unwrap();
    let (network_id, subnet_id) = network_with_subnet(&sim).await;
    let cp0 = create(&sim, "cp-0", &[], cluster_server(&network_id, uid, "init")).await;
    create(
        &sim,
        "cp-1",
        &[],
        cluster_server(&network_id, uid, "control-plane"),
    )
    .await;
    let w = create(&sim, "w-0", &[], cluster_server(&network_id, uid, "worker")).await;
    let port = vip_port(&sim, &network_id, &subnet_id).await;
    let lb = create(&sim, "lb", &[], lb_spec(&subnet_id, &port)).await;
    sim.set_node_ready("w-0", false).unwrap();
    sim.block_drain("cp-1", true).unwrap();
    sim.delete(ResourceKind::Server, &cp0.id).await.unwrap();
    let nodes = sim.nodes(&c).await.unwrap();
    let (resources, clusters) = {
        let shared = sim.lock();
        (
            shared.state.resources.clone(),
            shared.state.clusters.clone(),
        )
    };
    assert!(clusters[uid].api.is_some());
    assert!(clusters[uid].departed_members.contains("cp-0"));
    drop(sim);
    // What finished going in the meantime is forgotten at the start.
    let mut resources = resources;
    resources.retain(|_, r| r.gone_at_ms.is_none());

    // The file starts with a snapshot in the current format (a journal follows).
    let bytes = std::fs::read(&path).unwrap();
    let snapshot = bytes.split(|b| *b == b'\n').next().unwrap();
    let json: serde_json::Value = serde_json::from_slice(snapshot).unwrap();
    assert_eq!(json["format"], state::STATE_FORMAT);

    // With the fault still on, everything is as it was.
    let sim = SimCloud::new(config.clone()).unwrap();
    {
        let shared = sim.lock();
        assert_eq!(shared.state.resources, resources);
        assert_eq!(shared.state.clusters, clusters);
    }
    assert_eq!(sim.nodes(&c).await.unwrap(), nodes);
    let worker = node(&nodes, "w-0");
    assert!(!worker.ready);
    assert!(!stored(&sim, &w.id).node.drain_blocked);
    assert_eq!(sim.etcd_members(&c).await.unwrap(), ["cp-0", "cp-1"]);
    assert_eq!(sim.drain_blocked_nodes(uid), ["cp-1"]);
    let status = |sim: &SimCloud| {
        sim.inventory()
            .into_iter()
            .find(|i| i.id == lb.id)
            .unwrap()
            .status
    };
    assert_eq!(status(&sim), "PENDING");
    drop(sim);

    // Started without the fault, stuck load balancers go on.
    let sim = SimCloud::new(SimConfig {
        faults: SimFaults::default(),
        ..config
    })
    .unwrap();
    assert_eq!(status(&sim), "ACTIVE");
    assert!(!stored(&sim, &lb.id).stuck);
}

#[test]
fn a_format_1_state_file_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let old = serde_json::json!({
        "format": 1,
        "nextSeq": 1,
        "resources": {
            "n1": {
                "seq": 0, "id": "n1", "name": "net", "tags": ["t"],
                "spec": serde_json::to_value(network_spec()).unwrap(),
                "createdAtMs": 1, "readyAtMs": 2
            }
        },
        "nextHost": {}
    });
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    let sim = SimCloud::new(SimConfig {
        state_file: Some(path),
        ..SimConfig::default()
    })
    .unwrap();
    let inventory = sim.inventory();
    assert_eq!(inventory.len(), 1);
    assert_eq!(inventory[0].status, "ACTIVE");
    assert_eq!(stored(&sim, "n1").node, state::SimNode::default());
}

// ---- the state file: journal and compaction ----

/// Everything the state file keeps, as the cloud holds it now.
fn persisted(sim: &SimCloud) -> (serde_json::Value, u64) {
    let shared = sim.lock();
    assert!(
        shared.state.resources.index_is_consistent(),
        "the indexes match the resources"
    );
    let mut json = serde_json::to_value(&shared.state).unwrap();
    json["format"] = serde_json::Value::Null;
    (json, shared.state.next_seq)
}

fn file_config(path: &std::path::Path) -> SimConfig {
    SimConfig {
        speed: 1.0,
        state_file: Some(path.to_owned()),
        latencies: Latencies {
            server_delete: LatencyRange::fixed(3600.0),
            ..Latencies::instant()
        },
        // No seed: a restarted cloud seeded alike would draw the same ids again.
        seed: None,
        ..SimConfig::default()
    }
}

/// Creates, deletes and changes resources of all kinds; the ids of the load balancer
/// and of the servers.
async fn churn(sim: &SimCloud, rounds: usize) -> (String, Vec<String>) {
    let (network_id, subnet_id) = network_with_subnet(sim).await;
    let group = create(sim, "sg", &["t"], security_group_spec()).await;
    let port = vip_port(sim, &network_id, &subnet_id).await;
    let lb = create(sim, "lb", &["t"], lb_spec(&subnet_id, &port)).await;
    let uid = "uid-churn";
    let mut servers = Vec::new();
    for i in 0..rounds {
        let role = if i == 0 { "init" } else { "worker" };
        let name = format!("vm-{i}");
        let mut spec = cluster_server(&network_id, uid, role);
        if let ResourceSpec::Server {
            security_group_ids, ..
        } = &mut spec
        {
            security_group_ids.push(group.id.clone());
        }
        let vm = create(sim, &name, &["t", "vm"], spec).await;
        servers.push(vm.id.clone());
        let members = vec![PoolMember {
            address: vm.address.clone().unwrap(),
            port: 6443,
        }];
        sim.set_load_balancer_members(&lb.id, &members)
            .await
            .unwrap();
        let doomed = create(sim, &format!("gone-{i}"), &["t"], security_group_spec()).await;
        sim.delete(ResourceKind::SecurityGroup, &doomed.id)
            .await
            .unwrap();
        if i % 3 == 2 {
            sim.delete(ResourceKind::Server, &servers[i - 1])
                .await
                .unwrap();
        }
    }
    sim.block_drain("vm-0", true).unwrap();
    (lb.id, servers)
}

#[tokio::test]
async fn a_restart_after_many_mutations_finds_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let config = file_config(&path);
    let sim = SimCloud::new(config.clone()).unwrap();
    let (lb, _) = churn(&sim, 30).await;
    let before = persisted(&sim);
    let inventory = sim.inventory();
    let found = sim.find(ResourceKind::Server, "vm").await.unwrap();
    let members = sim.load_balancer_members(&lb);
    drop(sim);
    // Nothing was compacted: the changes are in the journal, a line each.
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    assert!(lines > 100, "{lines} lines");

    let sim = SimCloud::new(config).unwrap();
    assert_eq!(persisted(&sim), before);
    assert_eq!(sim.inventory(), inventory);
    assert_eq!(sim.find(ResourceKind::Server, "vm").await.unwrap(), found);
    assert_eq!(sim.load_balancer_members(&lb), members);
}

#[tokio::test]
async fn a_torn_last_line_is_ignored_and_a_bad_line_elsewhere_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let config = file_config(&path);
    let sim = SimCloud::new(config.clone()).unwrap();
    churn(&sim, 4).await;
    let before = persisted(&sim);
    drop(sim);
    let whole = std::fs::read(&path).unwrap();

    // An append cut short by a crash, with or without its newline.
    for torn in [&b"{\"resources\":{\"x\":{\"se"[..], b"{\"nextSeq\":\n"] {
        let mut bytes = whole.clone();
        bytes.extend_from_slice(torn);
        std::fs::write(&path, &bytes).unwrap();
        let sim = SimCloud::new(config.clone()).unwrap();
        assert_eq!(persisted(&sim), before);
        // The file was rewritten without the torn line: what follows is kept.
        let extra = create(&sim, "after", &["t"], network_spec()).await;
        let after = persisted(&sim);
        drop(sim);
        let sim = SimCloud::new(config.clone()).unwrap();
        assert_eq!(persisted(&sim), after);
        sim.delete(ResourceKind::Network, &extra.id).await.unwrap();
        drop(sim);
        std::fs::write(&path, &whole).unwrap();
    }

    // A bad line before the last is corruption, named by its line.
    let text = String::from_utf8(whole).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3);
    lines[2] = "{\"resources\": garbage}";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = SimCloud::new(config).unwrap_err();
    assert!(matches!(err, SimError::Corrupt { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("cloud.json"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[tokio::test]
async fn compaction_keeps_the_state_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let config = file_config(&path);
    let sim = SimCloud::new(config.clone()).unwrap();
    sim.lock().store.as_mut().unwrap().min_compact_bytes = 0;
    let (lb, servers) = churn(&sim, 5).await;
    // Many changes to one record: the journal grows, the state does not.
    let mut largest = 0;
    for i in 0..200 {
        let members = vec![PoolMember {
            address: format!("10.0.0.{}", 10 + i % 100),
            port: 6443,
        }];
        sim.set_load_balancer_members(&lb, &members).await.unwrap();
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
    }
    let snapshot = {
        let shared = sim.lock();
        serde_json::to_vec(&shared.state).unwrap().len() as u64
    };
    // Compacted once the journal outgrew twice the snapshot: never much above three
    // times the snapshot.
    assert!(
        largest <= 3 * snapshot + 4096,
        "the file grew to {largest} bytes for a {snapshot}-byte state"
    );
    let before = persisted(&sim);
    drop(sim);
    let sim = SimCloud::new(config.clone()).unwrap();
    assert_eq!(persisted(&sim), before);

    // Compacting on demand leaves the snapshot alone, and the state as it was.
    sim.set_node_ready("vm-3", false).unwrap();
    sim.delete(ResourceKind::Server, &servers[4]).await.unwrap();
    let journaled = std::fs::metadata(&path).unwrap().len();
    let before = persisted(&sim);
    sim.compact().unwrap();
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted < journaled, "{compacted} < {journaled}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        1,
        "only the snapshot"
    );
    drop(sim);
    let sim = SimCloud::new(config).unwrap();
    assert_eq!(persisted(&sim), before);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["cloud.json"], "no temporary file is left");
}

#[tokio::test]
async fn a_failed_write_leaves_the_state_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let config = file_config(&path);
    let sim = SimCloud::new(config.clone()).unwrap();
    let (lb, servers) = churn(&sim, 4).await;
    let (network_id, _) = network_with_subnet(&sim).await;
    let before = persisted(&sim);
    let inventory = sim.inventory();

    sim.lock().store.as_mut().unwrap().fail_writes = true;
    let failed = sim
        .create(&request(
            "vm-new",
            &["t", "vm"],
            cluster_server(&network_id, "uid-other", "init"),
        ))
        .await;
    assert!(
        matches!(&failed, Err(CloudError::Unavailable { message }) if message.contains("cloud.json")),
        "{failed:?}"
    );
    assert!(sim.delete(ResourceKind::Server, &servers[0]).await.is_err());
    assert!(
        sim.set_load_balancer_members(&lb, &[]).await.is_err(),
        "members unchanged"
    );
    assert!(sim.set_node_ready("vm-0", false).is_err());
    assert_eq!(persisted(&sim), before, "nothing changed in memory");
    assert_eq!(sim.inventory(), inventory);
    assert!(
        sim.find(ResourceKind::Server, "vm")
            .await
            .unwrap()
            .iter()
            .all(|s| s.name != "vm-new")
    );

    // Once writes work again, the cloud goes on from where it was.
    sim.lock().store.as_mut().unwrap().fail_writes = false;
    let vm = create(
        &sim,
        "vm-new",
        &["t", "vm"],
        cluster_server(&network_id, "uid-other", "init"),
    )
    .await;
    let after = persisted(&sim);
    drop(sim);
    let sim = SimCloud::new(config).unwrap();
    assert_eq!(persisted(&sim), after);
    assert!(
        sim.get(ResourceKind::Server, &vm.id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_format_2_state_file_is_converted_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.json");
    let config = SimConfig {
        state_file: None,
        ..file_config(&path)
    };
    // A cloud as the single-file format kept it: pretty-printed, format 2.
    let sim = SimCloud::new(config.clone()).unwrap();
    churn(&sim, 4).await;
    let before = persisted(&sim);
    let mut old = serde_json::to_value(&sim.lock().state).unwrap();
    old["format"] = 2.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    drop(sim);

    let config = file_config(&path);
    let sim = SimCloud::new(config.clone()).unwrap();
    assert_eq!(persisted(&sim), before);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "rewritten as a snapshot");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], state::STATE_FORMAT);
    let net = create(&sim, "more", &["t"], network_spec()).await;
    drop(sim);
    let sim = SimCloud::new(config).unwrap();
    assert!(
        sim.get(ResourceKind::Network, &net.id)
            .await
            .unwrap()
            .is_some()
    );
}

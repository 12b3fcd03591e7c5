#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use kaas_cloud::{
    CloudError, CloudProvider, CloudResource, PoolMember, ResourceKind, ResourceRequest,
    ResourceSpec, ResourceStatus, ServerGroupPolicy, WorkloadClusterRef, WorkloadClusters,
    WorkloadError,
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
        user_data: "#cloud-config\n".to_owned(),
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
                load_balancer_id: missing.to_owned(),
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
        ResourceSpec::LoadBalancer {
            subnet_id: subnet_id.clone(),
            port: 6443,
        },
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
    sim.delete(ResourceKind::Subnet, &subnet_id).await.unwrap();
    sim.delete(ResourceKind::Network, &network_id)
        .await
        .unwrap();
    sim.delete(ResourceKind::Network, &network_id)
        .await
        .unwrap();
    assert!(sim.inventory().is_empty());
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
    let lb = create(
        &sim,
        "lb",
        &[],
        ResourceSpec::LoadBalancer {
            subnet_id,
            port: 6443,
        },
    )
    .await;
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
        let fip = create(
            &sim,
            "fip",
            &[],
            ResourceSpec::FloatingIp {
                external_network: "public".to_owned(),
                load_balancer_id: lb.id.clone(),
            },
        )
        .await;
        let address: IpAddr = fip.address.unwrap().parse().unwrap();
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
async fn load_balancer_members_are_stored_once_it_is_active() {
    let mut latencies = Latencies::instant();
    latencies.load_balancer = LatencyRange::fixed(300.0);
    let sim = sim(latencies);
    let (_, subnet_id) = network_with_subnet(&sim).await;
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
    let lb = create(
        &sim,
        "lb",
        &[],
        ResourceSpec::LoadBalancer {
            subnet_id,
            port: 6443,
        },
    )
    .await;
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
    WorkloadClusterRef {
        cluster_uid: uid.to_owned(),
        api_endpoint: "https://203.0.113.10:6443".to_owned(),
    }
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

    // A deleted server's node leaves; deleting the init server takes the API down.
    sim.delete(ResourceKind::Server, &worker.id).await.unwrap();
    let nodes = sim.nodes(&cluster(uid)).await.unwrap();
    assert_eq!(node_names(&nodes), ["c1-cp-0", "c1-cp-1"]);
    sim.delete(ResourceKind::Server, &cp0.id).await.unwrap();
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
        workload::nodes(&shared.state, uid, "https://x:6443", now)
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

//! The simulated cloud served over OpenStack's REST API, driven by kaas's real
//! OpenStack provider (`kaas_openstack::OpenStackCloud`) on an ephemeral port: what a
//! cluster needs is built, found by its tags, and deleted without a trace; quotas and
//! injected faults come back as the provider's typed errors; application credentials
//! authenticate; the state outlives a restart; and, where the `openstack` CLI is
//! installed, it lists the simulated servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kaas_cloud::{
    Capacity, CloudError, CloudProvider, CloudResource, Credential, PoolMember, ResourceKind,
    ResourceRequest, ResourceSpec, ResourceStatus, SecurityGroupRule, ServerGroupPolicy,
    ServerNeed, UserData,
};
use kaas_openstack::{Auth, CloudConfig, OpenStackCloud, Request, Secret, Session};
use kaas_sim::api::{ApiConfig, ApiServer, CLOUD_NAME, Identity};
use kaas_sim::{Latencies, Quotas, SimCloud, SimConfig, SimFaults};

const UID: &str = "1a2b3c4d-5e6f-4a5b-8c7d-000000000001";
const SHORT: &str = "1a2b3c4d";

fn cluster_tag() -> String {
    format!("kaas-cluster={UID}")
}

fn config(quotas: Quotas) -> SimConfig {
    SimConfig {
        speed: 1000.0,
        latencies: Latencies::instant(),
        seed: Some(7),
        quotas,
        ..SimConfig::default()
    }
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The façade on a free port, and the provider on a session of its `clouds.yaml`.
async fn serve(sim: &SimCloud) -> (ApiServer, OpenStackCloud) {
    let server = ApiServer::start(sim.clone(), ApiConfig::new(Identity::generate()), local())
        .await
        .unwrap();
    let cloud = provider(&server).await;
    (server, cloud)
}

async fn provider(server: &ApiServer) -> OpenStackCloud {
    let config = CloudConfig::from_clouds_yaml(&server.clouds_yaml(), None, CLOUD_NAME).unwrap();
    OpenStackCloud::new(Session::new(config).await.unwrap())
}

fn request(name: &str, tags: &[String], spec: ResourceSpec) -> ResourceRequest {
    ResourceRequest {
        name: name.to_owned(),
        tags: tags.to_vec(),
        spec,
    }
}

fn rule(protocol: &str, port: u16, cidr: Option<&str>, group: Option<&str>) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol: protocol.to_owned(),
        port_min: port,
        port_max: port,
        remote_cidr: cidr.map(str::to_owned),
        remote_group: group.map(str::to_owned),
        description: format!("{protocol} {port}"),
    }
}

fn server_spec(
    network_id: &str,
    groups: &[String],
    server_group: Option<&str>,
    role: &str,
) -> ResourceSpec {
    ResourceSpec::Server {
        flavor: "SCS-2V-4".to_owned(),
        image: "ubuntu-capi-image-v1.35.0".to_owned(),
        network_id: network_id.to_owned(),
        security_group_ids: groups.to_vec(),
        server_group_id: server_group.map(str::to_owned),
        availability_zone: None,
        user_data: UserData("I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFtbdHJ1ZV1dCg==".to_owned()),
        metadata: BTreeMap::from([
            ("kaas-cluster-uid".to_owned(), UID.to_owned()),
            ("kaas-role".to_owned(), role.to_owned()),
            ("kaas-kubernetes-version".to_owned(), "v1.35.0".to_owned()),
        ]),
    }
}

/// What a cluster is made of, by kind.
struct Built {
    network: CloudResource,
    subnet: CloudResource,
    router: CloudResource,
    groups: Vec<CloudResource>,
    server_group: CloudResource,
    credential: CloudResource,
    vip: CloudResource,
    load_balancer: CloudResource,
    floating_ip: CloudResource,
    servers: Vec<CloudResource>,
}

/// Builds a cluster's infrastructure through `cloud` as the controller does.
async fn build_cluster(cloud: &OpenStackCloud) -> Built {
    let tags = vec![cluster_tag(), "kaas-cluster-name=demo".to_owned()];
    let network = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &tags,
            ResourceSpec::Network { mtu: Some(1400) },
        ))
        .await
        .unwrap();
    let subnet = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &tags,
            ResourceSpec::Subnet {
                network_id: network.id.clone(),
                cidr: "10.8.0.0/24".to_owned(),
                dns_servers: vec!["9.9.9.9".to_owned()],
            },
        ))
        .await
        .unwrap();
    let router = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &tags,
            ResourceSpec::Router {
                external_network: "public".to_owned(),
                subnet_ids: vec![subnet.id.clone()],
            },
        ))
        .await
        .unwrap();
    let cp_name = format!("kaas-demo-{SHORT}-control-plane");
    let worker_name = format!("kaas-demo-{SHORT}-worker");
    let control_plane = cloud
        .create(&request(
            &cp_name,
            &tags,
            ResourceSpec::SecurityGroup {
                rules: vec![
                    rule("tcp", 6443, Some("0.0.0.0/0"), None),
                    rule("tcp", 2379, None, Some(&cp_name)),
                    rule("icmp", 0, Some("10.8.0.0/24"), None),
                ],
            },
        ))
        .await
        .unwrap();
    let worker = cloud
        .create(&request(
            &worker_name,
            &tags,
            ResourceSpec::SecurityGroup {
                rules: vec![
                    rule("tcp", 10250, None, Some(&cp_name)),
                    rule("udp", 8472, None, Some(&worker_name)),
                ],
            },
        ))
        .await
        .unwrap();
    let server_group = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}-control-plane"),
            &tags,
            ResourceSpec::ServerGroup {
                policy: ServerGroupPolicy::AntiAffinity,
            },
        ))
        .await
        .unwrap();
    let credential = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &tags,
            ResourceSpec::ApplicationCredential {
                secret: Credential("s3cr3t-of-the-cluster".to_owned()),
                roles: Vec::new(),
                description: format!("kaas cluster demo ({UID}): its cloud controller"),
            },
        ))
        .await
        .unwrap();
    let vip = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}-api"),
            &tags,
            ResourceSpec::Port {
                network_id: network.id.clone(),
                subnet_id: subnet.id.clone(),
                security_group_ids: vec![control_plane.id.clone()],
            },
        ))
        .await
        .unwrap();
    let load_balancer = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}-api"),
            &tags,
            ResourceSpec::LoadBalancer {
                subnet_id: subnet.id.clone(),
                vip_port_id: vip.id.clone(),
                port: 6443,
            },
        ))
        .await
        .unwrap();
    let floating_ip = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}-api"),
            &tags,
            ResourceSpec::FloatingIp {
                external_network: "public".to_owned(),
                port_id: vip.id.clone(),
            },
        ))
        .await
        .unwrap();
    let mut servers = Vec::new();
    for (i, role) in ["init", "control-plane", "control-plane"]
        .iter()
        .enumerate()
    {
        let machine = format!("kaas-machine=00000000-0000-4000-8000-00000000000{i}");
        let mut server_tags = tags.clone();
        server_tags.push(machine);
        servers.push(
            cloud
                .create(&request(
                    &format!("kaas-demo-{SHORT}-cp-{i}"),
                    &server_tags,
                    server_spec(
                        &network.id,
                        std::slice::from_ref(&control_plane.id),
                        Some(&server_group.id),
                        role,
                    ),
                ))
                .await
                .unwrap(),
        );
    }
    Built {
        network,
        subnet,
        router,
        groups: vec![control_plane, worker],
        server_group,
        credential,
        vip,
        load_balancer,
        floating_ip,
        servers,
    }
}

/// Sets the API load balancer's members, coming back while it is built one part at a
/// time (listener, pool, health monitor), as the controller's requeues do.
async fn set_members(cloud: &OpenStackCloud, lb: &str, members: &[PoolMember]) -> u32 {
    let mut in_progress = 0;
    loop {
        match cloud.set_load_balancer_members(lb, members).await {
            Ok(()) => return in_progress,
            Err(CloudError::InProgress { .. }) if in_progress < 5 => in_progress += 1,
            Err(e) => panic!("setting members: {e}"),
        }
    }
}

async fn session_get(cloud: &OpenStackCloud, service: &str, path: &str) -> serde_json::Value {
    cloud
        .session()
        .request(Request::get(service, path))
        .await
        .unwrap()
        .body
}

#[tokio::test]
async fn a_cluster_is_built_found_and_deleted_through_the_provider() {
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (server, cloud) = serve(&sim).await;
    assert_eq!(cloud.auth_url(), server.auth_url());

    let flavors = cloud.flavors().await.unwrap();
    assert!(flavors.iter().any(|f| f.name == "SCS-2V-4" && f.vcpus == 2));
    let needs = Capacity {
        servers: vec![ServerNeed {
            flavor: "SCS-2V-4".to_owned(),
            image: "ubuntu-capi-image-v1.35.0".to_owned(),
            count: 5,
        }],
    };
    cloud.preflight(&needs).await.unwrap();

    let built = build_cluster(&cloud).await;
    let tag = cluster_tag();

    // Every resource is there, whole, and found by the cluster's tag.
    assert_eq!(
        built.router.status,
        ResourceStatus::Active,
        "{:?}",
        built.router
    );
    for group in &built.groups {
        assert_eq!(group.status, ResourceStatus::Active, "{group:?}");
    }
    assert_eq!(
        built.credential.tags,
        [tag.clone(), "kaas-cluster-name=demo".to_owned()]
    );
    assert!(
        built
            .floating_ip
            .address
            .as_deref()
            .unwrap()
            .starts_with("203.0.113.")
    );
    assert_eq!(built.load_balancer.address, built.vip.address);
    for (kind, want) in [
        (ResourceKind::Network, 1),
        (ResourceKind::Subnet, 1),
        (ResourceKind::Router, 1),
        (ResourceKind::SecurityGroup, 2),
        (ResourceKind::ServerGroup, 1),
        (ResourceKind::ApplicationCredential, 1),
        // The VIP and the servers' own ports.
        (ResourceKind::Port, 4),
        (ResourceKind::LoadBalancer, 1),
        (ResourceKind::FloatingIp, 1),
        (ResourceKind::Server, 3),
    ] {
        let found = cloud.find(kind, &tag).await.unwrap();
        assert_eq!(found.len(), want, "{kind}: {found:?}");
        assert!(
            found.iter().all(|r| r.tags.contains(&tag)),
            "{kind}: {found:?}"
        );
        let many = cloud
            .find_many(kind, &[tag.clone(), "kaas-cluster=other".to_owned()])
            .await
            .unwrap();
        assert_eq!(many[&tag].len(), want, "{kind} by find_many");
        assert!(many["kaas-cluster=other"].is_empty(), "{kind} by find_many");
    }
    assert!(cloud.find_untagged(&tag).await.unwrap().is_empty());

    // Servers: active, on their own ports, with what they were given.
    for s in &built.servers {
        let got = cloud
            .get(ResourceKind::Server, &s.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, ResourceStatus::Active);
        assert!(
            got.address.as_deref().unwrap().starts_with("10.8.0."),
            "{got:?}"
        );
        assert_eq!(got.address, s.address);
    }
    let nova = session_get(
        &cloud,
        "compute",
        &format!("/servers/{}", built.servers[0].id),
    )
    .await;
    assert_eq!(nova["server"]["metadata"]["kaas-role"], "init");
    assert_eq!(nova["server"]["image"]["id"], "ubuntu-capi-image-v1.35.0");
    let group = session_get(
        &cloud,
        "compute",
        &format!("/os-server-groups/{}", built.server_group.id),
    )
    .await;
    assert_eq!(
        group["server_group"]["members"].as_array().unwrap().len(),
        3
    );
    // The user data went in as given (the simulation keeps it).
    let inventory = sim.inventory();
    assert_eq!(inventory.iter().filter(|i| i.kind == "server").count(), 3);

    // The server's port is taken: a repeated create of the same machine says so.
    let repeat = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}-cp-0"),
            &[
                tag.clone(),
                "kaas-cluster-name=demo".to_owned(),
                "kaas-machine=00000000-0000-4000-8000-000000000000".to_owned(),
            ],
            server_spec(&built.network.id, &[], None, "init"),
        ))
        .await;
    assert!(
        matches!(repeat, Err(CloudError::Conflict { .. })),
        "{repeat:?}"
    );

    // Security group rules as Neutron keeps them: the two default egress rules and ours,
    // the self-reference resolved to the group's id.
    let cp = &built.groups[0];
    let sg = session_get(
        &cloud,
        "network",
        &format!("/v2.0/security-groups/{}", cp.id),
    )
    .await;
    let rules = sg["security_group"]["security_group_rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 5, "{rules:#?}");
    assert!(
        rules
            .iter()
            .any(|r| r["port_range_min"] == 2379 && r["remote_group_id"] == cp.id.as_str())
    );
    assert!(
        rules
            .iter()
            .any(|r| r["protocol"] == "icmp" && r["port_range_min"].is_null())
    );

    // The router's interface and its gateway.
    let ports = session_get(
        &cloud,
        "network",
        &format!(
            "/v2.0/ports?device_owner=network:router_interface&device_id={}",
            built.router.id
        ),
    )
    .await;
    assert_eq!(ports["ports"][0]["fixed_ips"][0]["ip_address"], "10.8.0.1");

    // The load balancer, built part by part, then with its members.
    let members = vec![
        PoolMember {
            address: built.servers[0].address.clone().unwrap(),
            port: 6443,
        },
        PoolMember {
            address: built.servers[1].address.clone().unwrap(),
            port: 6443,
        },
    ];
    assert_eq!(
        set_members(&cloud, &built.load_balancer.id, &members).await,
        3
    );
    assert_eq!(
        sim.load_balancer_members(&built.load_balancer.id).unwrap(),
        members
    );
    assert_eq!(
        set_members(&cloud, &built.load_balancer.id, &members[..1]).await,
        0
    );
    let listeners = session_get(
        &cloud,
        "load-balancer",
        &format!(
            "/v2/lbaas/listeners?loadbalancer_id={}",
            built.load_balancer.id
        ),
    )
    .await;
    assert_eq!(listeners["listeners"][0]["protocol_port"], 6443);
    let pools = session_get(
        &cloud,
        "load-balancer",
        &format!("/v2/lbaas/pools?loadbalancer_id={}", built.load_balancer.id),
    )
    .await;
    assert!(pools["pools"][0]["healthmonitor_id"].is_string());
    assert_eq!(pools["pools"][0]["members"].as_array().unwrap().len(), 1);

    // Deleted in the controller's order, nothing is left.
    for s in &built.servers {
        cloud.delete(ResourceKind::Server, &s.id).await.unwrap();
    }
    cloud
        .delete(ResourceKind::FloatingIp, &built.floating_ip.id)
        .await
        .unwrap();
    cloud
        .delete(ResourceKind::LoadBalancer, &built.load_balancer.id)
        .await
        .unwrap();
    cloud
        .delete(ResourceKind::Router, &built.router.id)
        .await
        .unwrap();
    for port in cloud.find(ResourceKind::Port, &tag).await.unwrap() {
        cloud.delete(ResourceKind::Port, &port.id).await.unwrap();
    }
    cloud
        .delete(ResourceKind::Subnet, &built.subnet.id)
        .await
        .unwrap();
    cloud
        .delete(ResourceKind::Network, &built.network.id)
        .await
        .unwrap();
    for group in &built.groups {
        cloud
            .delete(ResourceKind::SecurityGroup, &group.id)
            .await
            .unwrap();
    }
    cloud
        .delete(ResourceKind::ServerGroup, &built.server_group.id)
        .await
        .unwrap();
    cloud
        .delete(ResourceKind::ApplicationCredential, &built.credential.id)
        .await
        .unwrap();
    // Deleting what is gone succeeds.
    cloud
        .delete(ResourceKind::Network, &built.network.id)
        .await
        .unwrap();
    assert_eq!(
        cloud
            .get(ResourceKind::Network, &built.network.id)
            .await
            .unwrap(),
        None
    );

    for kind in ResourceKind::ALL {
        assert!(
            cloud.find(kind, &tag).await.unwrap().is_empty(),
            "{kind} left"
        );
    }
    assert!(cloud.find_untagged(&tag).await.unwrap().is_empty());
    assert_eq!(sim.inventory(), Vec::new());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_cloud_controllers_load_balancers_are_found_when_the_cluster_goes() {
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (_server, cloud) = serve(&sim).await;
    let built = build_cluster(&cloud).await;
    let tag = cluster_tag();
    // What the cluster's cloud controller makes for a Service of type LoadBalancer:
    // named after the cluster's uid (its cluster name there), without kaas's tags.
    let vip = cloud
        .create(&request(
            "kaas-demo-svc",
            std::slice::from_ref(&tag),
            ResourceSpec::Port {
                network_id: built.network.id.clone(),
                subnet_id: built.subnet.id.clone(),
                security_group_ids: vec![],
            },
        ))
        .await
        .unwrap();
    let service_lb = format!("kube_service_{UID}_default_web");
    let body = serde_json::json!({ "loadbalancer": {
        "name": service_lb,
        "vip_port_id": vip.id,
        "vip_subnet_id": built.subnet.id,
        "tags": [service_lb],
    }});
    cloud
        .session()
        .request(Request::post(
            "load-balancer",
            "/v2/lbaas/loadbalancers",
            &body,
        ))
        .await
        .unwrap();

    // Finding by the cluster's tag finds kaas's own.
    let found = cloud.find(ResourceKind::LoadBalancer, &tag).await.unwrap();
    assert_eq!(
        found.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&built.load_balancer.id]
    );
    let many = cloud
        .find_many(ResourceKind::LoadBalancer, std::slice::from_ref(&tag))
        .await
        .unwrap();
    assert_eq!(many[&tag], found);
    // The cloud controller's is found by its name when the cluster is deleted.
    let untagged = cloud.find_untagged(&tag).await.unwrap();
    let lbs: Vec<&CloudResource> = untagged
        .iter()
        .filter(|r| r.kind == ResourceKind::LoadBalancer)
        .collect();
    assert_eq!(lbs.len(), 1, "{untagged:#?}");
    assert_eq!(lbs[0].name, service_lb);
    assert_eq!(lbs[0].tags, std::slice::from_ref(&tag));
    assert!(
        cloud
            .find_untagged("kaas-cluster=1a2b3c4d-5e6f-4a5b-8c7d-000000000002")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn distributed_and_ha_routers_are_deleted_with_their_interfaces() {
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (_server, cloud) = serve(&sim).await;
    let tags = vec![cluster_tag()];
    let network = cloud
        .create(&request(
            "kaas-a",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await
        .unwrap();
    let subnet = cloud
        .create(&request(
            "kaas-a",
            &tags,
            ResourceSpec::Subnet {
                network_id: network.id.clone(),
                cidr: "10.0.0.0/24".to_owned(),
                dns_servers: vec![],
            },
        ))
        .await
        .unwrap();
    let external = session_get(&cloud, "network", "/v2.0/networks?router:external=true").await;
    let external = external["networks"][0]["id"].as_str().unwrap().to_owned();
    // The cloud's operator chooses the kind of a project's routers: their interfaces'
    // ports are owned accordingly.
    for (kind, owner) in [
        ("distributed", "network:router_interface_distributed"),
        ("ha", "network:ha_router_replicated_interface"),
    ] {
        let body = serde_json::json!({ "router": {
            "name": "kaas-a",
            "external_gateway_info": { "network_id": external },
            kind: true,
        }});
        let router = cloud
            .session()
            .request(Request::post("network", "/v2.0/routers", &body))
            .await
            .unwrap()
            .body;
        let id = router["router"]["id"].as_str().unwrap().to_owned();
        assert_eq!(router["router"][kind], true, "{router}");
        cloud
            .session()
            .request(Request::put(
                "network",
                &format!("/v2.0/routers/{id}/add_router_interface"),
                &serde_json::json!({ "subnet_id": subnet.id }),
            ))
            .await
            .unwrap();
        let ports = session_get(&cloud, "network", &format!("/v2.0/ports?device_id={id}")).await;
        assert_eq!(ports["ports"][0]["device_owner"], owner, "{ports}");

        cloud.delete(ResourceKind::Router, &id).await.unwrap();
        assert_eq!(cloud.get(ResourceKind::Router, &id).await.unwrap(), None);
        // Again, as a retry after a lost answer would.
        cloud.delete(ResourceKind::Router, &id).await.unwrap();
    }
    // Nothing of the routers is left on the subnet.
    cloud
        .delete(ResourceKind::Subnet, &subnet.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn quotas_are_the_providers_quota_errors() {
    let quotas = Quotas {
        network: 1,
        server: 1,
        load_balancer: 0,
        application_credential: 1,
        ..Quotas::default()
    };
    let sim = SimCloud::new(config(quotas)).unwrap();
    let (_server, cloud) = serve(&sim).await;
    let tags = vec![cluster_tag()];

    let needs = Capacity {
        servers: vec![ServerNeed {
            flavor: "SCS-2V-4".to_owned(),
            image: "any-image".to_owned(),
            count: 2,
        }],
    };
    let refused = cloud.preflight(&needs).await;
    assert!(
        matches!(&refused, Err(CloudError::QuotaExceeded { message }) if message.contains("instances")),
        "{refused:?}"
    );
    let unknown = cloud
        .preflight(&Capacity {
            servers: vec![ServerNeed {
                flavor: "m9.huge".to_owned(),
                image: "x".to_owned(),
                count: 1,
            }],
        })
        .await;
    assert!(
        matches!(unknown, Err(CloudError::BadRequest { .. })),
        "{unknown:?}"
    );

    let network = cloud
        .create(&request(
            "kaas-a",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await
        .unwrap();
    // Neutron's 409 OverQuota.
    let second = cloud
        .create(&request(
            "kaas-b",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await;
    assert!(
        matches!(&second, Err(CloudError::QuotaExceeded { message }) if message.contains("network")),
        "{second:?}"
    );
    let subnet = cloud
        .create(&request(
            "kaas-a",
            &tags,
            ResourceSpec::Subnet {
                network_id: network.id.clone(),
                cidr: "10.0.0.0/24".to_owned(),
                dns_servers: vec![],
            },
        ))
        .await
        .unwrap();
    let vip = cloud
        .create(&request(
            "kaas-a-api",
            &tags,
            ResourceSpec::Port {
                network_id: network.id.clone(),
                subnet_id: subnet.id.clone(),
                security_group_ids: vec![],
            },
        ))
        .await
        .unwrap();
    // Octavia's 403.
    let lb = cloud
        .create(&request(
            "kaas-a-api",
            &tags,
            ResourceSpec::LoadBalancer {
                subnet_id: subnet.id.clone(),
                vip_port_id: vip.id.clone(),
                port: 6443,
            },
        ))
        .await;
    assert!(
        matches!(lb, Err(CloudError::QuotaExceeded { .. })),
        "{lb:?}"
    );
    // Nova's 403.
    let mut machine = tags.clone();
    machine.push("kaas-machine=m1".to_owned());
    cloud
        .create(&request(
            "kaas-a-0",
            &machine,
            server_spec(&network.id, &[], None, "init"),
        ))
        .await
        .unwrap();
    machine[1] = "kaas-machine=m2".to_owned();
    let over = cloud
        .create(&request(
            "kaas-a-1",
            &machine,
            server_spec(&network.id, &[], None, "worker"),
        ))
        .await;
    assert!(
        matches!(&over, Err(CloudError::QuotaExceeded { message }) if message.contains("Quota exceeded for instances")),
        "{over:?}"
    );
    // Keystone's 403 for its limit on a user's application credentials.
    let credential = |name: &str| {
        request(
            name,
            &tags,
            ResourceSpec::ApplicationCredential {
                secret: Credential(format!("secret of {name}")),
                roles: Vec::new(),
                description: format!("kaas cluster {name}"),
            },
        )
    };
    cloud.create(&credential("kaas-a")).await.unwrap();
    let limited = cloud.create(&credential("kaas-b")).await;
    assert!(
        matches!(&limited, Err(CloudError::QuotaExceeded { message }) if message.contains("maximum of 1")),
        "{limited:?}"
    );
    // A subnet in use is Neutron's 409, the provider's conflict.
    let busy = cloud.delete(ResourceKind::Subnet, &subnet.id).await;
    assert!(matches!(busy, Err(CloudError::Conflict { .. })), "{busy:?}");
}

#[tokio::test]
async fn injected_faults_are_the_providers_unavailable_errors() {
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (_server, cloud) = serve(&sim).await;
    let tags = vec![cluster_tag()];

    // A 503 on every call: reads are retried, then fail; nothing is made.
    sim.set_faults(SimFaults {
        api_errors: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let read = cloud.find(ResourceKind::Network, &cluster_tag()).await;
    assert!(
        matches!(&read, Err(CloudError::Unavailable { message }) if message.contains("503")),
        "{read:?}"
    );
    let create = cloud
        .create(&request(
            "kaas-x",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await;
    assert!(
        matches!(create, Err(CloudError::Unavailable { .. })),
        "{create:?}"
    );
    sim.set_faults(SimFaults::default()).unwrap();
    assert!(sim.inventory().is_empty());

    // One failing create: a 503 on the POST, which the provider does not repeat.
    sim.fail_next_creates(ResourceKind::Network, 1);
    let failed = cloud
        .create(&request(
            "kaas-x",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await;
    assert!(
        matches!(failed, Err(CloudError::Unavailable { .. })),
        "{failed:?}"
    );
    assert!(sim.inventory().is_empty());

    // A timeout: the request is carried out and its answer lost. Reads are repeated
    // and then fail; a POST is not repeated. The network made all the same is found
    // again by its name when the create is repeated (adopted and tagged, not made twice).
    sim.set_faults(SimFaults {
        timeouts: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let started = Instant::now();
    let read = cloud.find(ResourceKind::Network, &cluster_tag()).await;
    assert!(
        matches!(read, Err(CloudError::Unavailable { .. })),
        "{read:?}"
    );
    let body = serde_json::json!({ "network": { "name": "kaas-x" } });
    let lost = cloud
        .session()
        .request(Request::post("network", "/v2.0/networks", &body))
        .await
        .unwrap_err();
    assert_eq!(lost.status, None, "{lost}");
    assert!(started.elapsed() < Duration::from_secs(20));
    sim.set_faults(SimFaults::default()).unwrap();
    assert_eq!(sim.inventory().len(), 1);
    let again = cloud
        .create(&request(
            "kaas-x",
            &tags,
            ResourceSpec::Network { mtu: None },
        ))
        .await
        .unwrap();
    assert_eq!(sim.inventory().len(), 1);
    assert_eq!(again.id, sim.inventory()[0].id);
    assert_eq!(again.tags, tags);

    // A server that ends in ERROR carries Nova's fault message.
    let subnet = cloud
        .create(&request(
            "kaas-x",
            &tags,
            ResourceSpec::Subnet {
                network_id: again.id.clone(),
                cidr: "10.1.0.0/24".to_owned(),
                dns_servers: vec![],
            },
        ))
        .await
        .unwrap();
    let _ = subnet;
    sim.set_faults(SimFaults {
        server_errors: 1.0,
        ..SimFaults::default()
    })
    .unwrap();
    let mut machine = tags.clone();
    machine.push("kaas-machine=m1".to_owned());
    let created = cloud
        .create(&request(
            "kaas-x-0",
            &machine,
            server_spec(&again.id, &[], None, "init"),
        ))
        .await
        .unwrap();
    let got = cloud
        .get(ResourceKind::Server, &created.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&got.status, ResourceStatus::Error { message } if message.contains("No valid host")),
        "{got:?}"
    );
}

#[tokio::test]
async fn application_credentials_authenticate_restricted() {
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (server, cloud) = serve(&sim).await;
    let credential = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &[cluster_tag()],
            ResourceSpec::ApplicationCredential {
                secret: Credential("the-secret".to_owned()),
                roles: vec!["member".to_owned()],
                description: "kaas cluster demo".to_owned(),
            },
        ))
        .await
        .unwrap();
    // The same create again (a retry after a crash) adopts it: Keystone's 409.
    let again = cloud
        .create(&request(
            &format!("kaas-demo-{SHORT}"),
            &[cluster_tag()],
            ResourceSpec::ApplicationCredential {
                secret: Credential("the-secret".to_owned()),
                roles: vec!["member".to_owned()],
                description: "kaas cluster demo".to_owned(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(again.id, credential.id);

    let with = |secret: &str| CloudConfig {
        name: None,
        auth_url: server.auth_url(),
        auth: Auth::ApplicationCredential {
            id: Some(credential.id.clone()),
            name: None,
            secret: Secret::new(secret),
            username: None,
            user_id: None,
            user_domain_name: None,
            user_domain_id: None,
        },
        region_name: None,
        interface: "public".to_owned(),
        verify: true,
        cacert: None,
        endpoint_override: BTreeMap::new(),
    };
    let session = Session::new(with("the-secret")).await.unwrap();
    assert_eq!(session.project_id(), cloud.session().project_id());
    assert_eq!(session.user_id(), cloud.session().user_id());
    // Its token is valid to Keystone, and lets it see the project.
    assert!(
        cloud
            .session()
            .validate_token(session.token().expose())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cloud
            .session()
            .validate_token("not-a-token")
            .await
            .unwrap()
            .is_none()
    );
    let by_credential = OpenStackCloud::new(session.clone());
    assert_eq!(
        by_credential
            .find(ResourceKind::ApplicationCredential, &cluster_tag())
            .await
            .unwrap()
            .len(),
        1
    );
    // Restricted: it cannot make credentials of its own.
    let refused = by_credential
        .create(&request(
            "another",
            &[],
            ResourceSpec::ApplicationCredential {
                secret: Credential("x".to_owned()),
                roles: vec![],
                description: String::new(),
            },
        ))
        .await;
    assert!(
        matches!(refused, Err(CloudError::BadRequest { .. })),
        "{refused:?}"
    );

    let wrong = Session::new(with("not-the-secret")).await;
    assert_eq!(wrong.unwrap_err().status, Some(401));

    // Deleted, its tokens stop working.
    cloud
        .delete(ResourceKind::ApplicationCredential, &credential.id)
        .await
        .unwrap();
    let after = session.request(Request::get("compute", "/limits")).await;
    assert_eq!(after.unwrap_err().status, Some(401));
}

#[tokio::test]
async fn the_rest_state_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("cloud.json");
    let mut config = config(Quotas::default());
    config.state_file = Some(state_file.clone());
    let identity = Identity::load_or_create(&dir.path().join("identity.json")).unwrap();
    let start =
        |sim: &SimCloud| ApiServer::start(sim.clone(), ApiConfig::new(identity.clone()), local());

    let sim = SimCloud::new(config.clone()).unwrap();
    let server = start(&sim).await.unwrap();
    let cloud = provider(&server).await;
    let built = build_cluster(&cloud).await;
    let members = vec![PoolMember {
        address: "10.8.0.10".to_owned(),
        port: 6443,
    }];
    set_members(&cloud, &built.load_balancer.id, &members).await;
    server.shutdown().await.unwrap();
    drop(cloud);
    drop(sim);

    // Another process: the same file, the same identity (a new port, new tokens).
    assert_eq!(
        Identity::load_or_create(&dir.path().join("identity.json")).unwrap(),
        identity
    );
    let sim = SimCloud::new(config).unwrap();
    let server = start(&sim).await.unwrap();
    let cloud = provider(&server).await;
    let router = cloud
        .get(ResourceKind::Router, &built.router.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        router.status,
        ResourceStatus::Active,
        "the router is whole: {router:?}"
    );
    let interfaces = session_get(
        &cloud,
        "network",
        &format!("/v2.0/ports?device_id={}", built.router.id),
    )
    .await;
    assert_eq!(interfaces["ports"].as_array().unwrap().len(), 1);
    let sg = session_get(
        &cloud,
        "network",
        &format!("/v2.0/security-groups/{}", built.groups[0].id),
    )
    .await;
    assert_eq!(
        sg["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // The tree is whole: setting members needs no further part.
    assert_eq!(
        set_members(&cloud, &built.load_balancer.id, &members).await,
        0
    );
    // The credential's secret still authenticates.
    let mut by_credential =
        CloudConfig::from_clouds_yaml(&server.clouds_yaml(), None, CLOUD_NAME).unwrap();
    by_credential.auth = Auth::ApplicationCredential {
        id: Some(built.credential.id.clone()),
        name: None,
        secret: Secret::new("s3cr3t-of-the-cluster"),
        username: None,
        user_id: None,
        user_domain_name: None,
        user_domain_id: None,
    };
    Session::new(by_credential).await.unwrap();
    assert_eq!(
        cloud
            .find(ResourceKind::Server, &cluster_tag())
            .await
            .unwrap()
            .len(),
        3
    );
}

/// The `openstack` CLI (python-openstackclient) against the served cloud: its
/// `clouds.yaml` works, and `server list` shows the simulated servers.
#[tokio::test]
async fn the_openstack_cli_lists_the_simulated_servers() {
    let cli = which("openstack").expect(
        "no `openstack` on the PATH: python3-openstackclient, which dev/openstack/up.sh \
         installs (dev/test.sh runs it)",
    );
    let sim = SimCloud::new(config(Quotas::default())).unwrap();
    let (server, cloud) = serve(&sim).await;
    let built = build_cluster(&cloud).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, server.clouds_yaml()).unwrap();
    let run = |args: Vec<&'static str>| {
        let cli = cli.clone();
        let clouds = clouds.clone();
        let home = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(cli)
                .args(["--os-cloud", CLOUD_NAME])
                .args(args)
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env("HOME", &home)
                .env_remove("OS_CLOUD")
                .output()
                .unwrap()
        })
    };
    let out = run(vec!["server", "list", "-f", "json"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    for s in &built.servers {
        assert!(names.contains(&s.name.as_str()), "{names:?}");
    }
    for args in [
        vec!["network", "list", "-f", "json"],
        vec!["router", "list", "-f", "json"],
        vec!["security", "group", "list", "-f", "json"],
        vec!["port", "list", "-f", "json"],
        vec!["floating", "ip", "list", "-f", "json"],
        vec!["server", "group", "list", "-f", "json"],
        vec!["flavor", "list", "-f", "json"],
    ] {
        let out = run(args.clone()).await.unwrap();
        assert!(
            out.status.success(),
            "openstack {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

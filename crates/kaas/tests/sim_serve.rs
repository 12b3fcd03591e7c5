//! `kaas sim serve`: the simulated cloud as a process of its own. The OpenStack
//! provider reads the `clouds.yaml` it writes as it reads any, builds in it, sees its
//! quotas; the process stops cleanly on SIGTERM, and a new one finds the cloud as it
//! was. A kaas server drives it as a real cloud (`--cloud openstack`), its servers
//! boot clusters from their user data, and kaas reaches their APIs through the
//! simulation's cluster proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kaas_cloud::{
    Capacity, CloudError, CloudProvider, ResourceKind, ResourceRequest, ResourceSpec, ServerNeed,
};
use kaas_openstack::{CloudConfig, OpenStackCloud, Session};

const KAAS: &str = env!("CARGO_BIN_EXE_kaas");

fn spawn(dir: &Path) -> Child {
    spawn_with(dir, &["--speed", "1000", "--quota", "servers=2"])
}

/// `kaas sim serve` on free ports with `args`, its log beside `dir`.
fn spawn_with(dir: &Path, args: &[&str]) -> Child {
    let _ = std::fs::remove_file(dir.join("sim.addr"));
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .unwrap();
    let child = Command::new(KAAS)
        .args(["sim", "serve", "--listen", "127.0.0.1:0"])
        .args(["--proxy-listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("KAAS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("sim.addr").exists() {
        assert!(Instant::now() < deadline, "kaas sim serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "kaas sim serve exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kaas sim serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The provider on the cloud `kaas-sim` of the written clouds.yaml, found as the
/// `openstack` CLI finds it (`OS_CLIENT_CONFIG_FILE`).
async fn provider(dir: &Path) -> OpenStackCloud {
    let env = BTreeMap::from([(
        "OS_CLIENT_CONFIG_FILE".to_owned(),
        dir.join("clouds.yaml").display().to_string(),
    )]);
    let config = CloudConfig::load_with(Some("kaas-sim"), &env, None).unwrap();
    OpenStackCloud::new(Session::new(config).await.unwrap())
}

#[tokio::test]
async fn a_served_simulated_cloud_outlives_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim");
    let child = spawn(&data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["clouds.yaml", "identity.json"] {
            let mode = std::fs::metadata(data.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    let cloud = provider(&data).await;
    let tag = "kaas-cluster=0b0b0b0b-0000-4000-8000-000000000001".to_owned();
    let network = cloud
        .create(&ResourceRequest {
            name: "kaas-demo-0b0b0b0b".to_owned(),
            tags: vec![tag.clone()],
            spec: ResourceSpec::Network { mtu: None },
        })
        .await
        .unwrap();
    let needs = Capacity {
        servers: vec![ServerNeed {
            flavor: "SCS-2V-4".to_owned(),
            image: "ubuntu".to_owned(),
            count: 3,
        }],
    };
    let refused = cloud.preflight(&needs).await;
    assert!(
        matches!(&refused, Err(CloudError::QuotaExceeded { message }) if message.contains("of 2 instances")),
        "{refused:?}"
    );
    stop(child);

    let child = spawn(&data);
    let cloud = provider(&data).await;
    let found = cloud.find(ResourceKind::Network, &tag).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, network.id);
    stop(child);
}

/// Every resource of cluster `uid` the provider finds in the simulation, by kind.
async fn leftovers(cloud: &OpenStackCloud, uid: &str) -> Vec<String> {
    let tag = format!("kaas-cluster={uid}");
    let mut left = Vec::new();
    for kind in ResourceKind::ALL {
        for r in cloud.find(kind, &tag).await.unwrap() {
            left.push(format!("{kind:?} {} ({})", r.name, r.id));
        }
    }
    left
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kaas_server_builds_and_deletes_a_cluster_on_a_served_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("sim");
    let sim = spawn_with(&sim_dir, &["--speed", "50"]);
    let proxy = std::fs::read_to_string(sim_dir.join("cluster-proxy.addr")).unwrap();
    let clouds = sim_dir.join("clouds.yaml");
    let server = common::Server::start_with_env(
        &dir.path().join("kaas"),
        1.0,
        &[
            "--cloud",
            "openstack",
            "--os-cloud",
            "kaas-sim",
            "--cluster-proxy",
            &format!("http://{proxy}"),
        ],
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap())],
    );
    let out = server.kaas(&[
        "cluster",
        "create",
        "demo",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--wait",
        "--timeout",
        "240s",
    ]);
    let progress = common::text(&out);
    assert!(out.status.success(), "create --wait failed: {progress}");
    let cluster = server.cluster("demo").unwrap();
    assert_eq!(cluster["status"]["phase"], "Available", "{cluster:#}");
    let endpoint = cluster["status"]["apiEndpoint"].as_str().unwrap();
    assert!(endpoint.ends_with(":6443"), "{endpoint}");
    assert_eq!(cluster["status"]["controlPlane"]["readyReplicas"], 1);
    assert_eq!(cluster["status"]["nodePools"][0]["readyReplicas"], 1);
    let addons = cluster["status"]["addons"]["items"].as_array().unwrap();
    assert!(!addons.is_empty(), "{cluster:#}");
    for addon in addons {
        assert_eq!(addon["ready"], true, "{addon:#}");
    }
    // kaas reached the cluster only through the proxy: its workload calls succeeded.
    let metrics = server.get_open("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kaas_workload_calls_total{call=\"apply\",result=\"ok\"}")),
        "{metrics}"
    );
    let uid = cluster["metadata"]["uid"].as_str().unwrap().to_owned();

    let out = server.kaas(&["cluster", "delete", "demo", "--wait", "--timeout", "240s"]);
    assert!(
        out.status.success(),
        "delete --wait failed: {}",
        common::text(&out)
    );
    let cloud = provider(&sim_dir).await;
    assert_eq!(leftovers(&cloud, &uid).await, Vec::<String>::new());
    // As the `openstack` CLI sees the project, where it is installed: nothing left.
    if let Some(cli) = which("openstack") {
        for what in ["server", "port", "floating ip", "router", "network"] {
            let out = Command::new(&cli)
                .args(["--os-cloud", "kaas-sim"])
                .args(what.split(' '))
                .args(["list", "-f", "json"])
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env("HOME", dir.path())
                .env_remove("OS_CLOUD")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openstack {what} list: {}",
                common::text(&out)
            );
            let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            // The external network is the cloud's, not the cluster's.
            let left: Vec<&serde_json::Value> = listed
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["Name"] != kaas_sim::api::DEFAULT_EXTERNAL_NETWORK)
                .collect();
            assert!(left.is_empty(), "openstack {what} list: {left:#?}");
        }
    }
    stop(sim);
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

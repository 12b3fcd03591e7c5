//! `kaas sim serve`: the simulated cloud as a process of its own. The OpenStack
//! provider reads the `clouds.yaml` it writes as it reads any, builds in it, sees its
//! quotas; the process stops cleanly on SIGTERM, and a new one finds the cloud as it
//! was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let _ = std::fs::remove_file(dir.join("sim.addr"));
    let child = Command::new(KAAS)
        .args(["sim", "serve", "--listen", "127.0.0.1:0", "--speed", "1000"])
        .args(["--quota", "servers=2"])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

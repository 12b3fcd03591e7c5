//! Day 2 on the simulated cloud, through the real binary: scale, rolling upgrades,
//! repair, and faults that heal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, text};
use serde_json::Value;

fn condition<'a>(cluster: &'a Value, type_: &str) -> Option<&'a Value> {
    cluster["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn versions(server: &Server, cluster: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in server.machines(cluster) {
        let key = format!(
            "{} {}",
            m["spec"]["pool"].as_str().unwrap(),
            m["spec"]["version"].as_str().unwrap()
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

fn servers(server: &Server) -> usize {
    server
        .inventory()
        .iter()
        .filter(|i| i["kind"] == "server")
        .count()
}

#[test]
fn scale_up_and_down_with_drain() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    server.ok(&[
        "cluster",
        "create",
        "s",
        "--control-plane",
        "1",
        "--workers",
        "2",
        "--wait",
        "--timeout",
        "60s",
    ]);

    let out = server.ok(&[
        "cluster",
        "scale",
        "s",
        "--pool",
        "workers",
        "--replicas",
        "6",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.contains("is Available"), "{out}");
    let c = server.cluster("s").unwrap();
    assert_eq!(c["status"]["nodePools"][0]["readyReplicas"], 6);
    assert_eq!(servers(&server), 7);

    let out = server.ok(&[
        "cluster",
        "scale",
        "s",
        "--pool",
        "workers",
        "--replicas",
        "1",
        "--wait",
        "--timeout",
        "60s",
    ]);
    for expected in [
        "Cordoned node",
        "is drained",
        "pool workers scaled down to 1",
    ] {
        assert!(
            out.contains(expected),
            "scale-down progress lacks {expected:?}:\n{out}"
        );
    }
    assert_eq!(server.machines("s").len(), 2);
    assert_eq!(servers(&server), 2);

    let out = server.kaas(&["cluster", "scale", "s", "--pool", "nope", "--replicas", "1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no node pool \"nope\""),
        "{}",
        text(&out)
    );
    let out = server.kaas(&[
        "cluster",
        "scale",
        "s",
        "--pool",
        "workers",
        "--replicas",
        "1001",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("spec.nodePools[0].replicas"),
        "{}",
        text(&out)
    );
}

#[test]
fn rolling_upgrade_one_minor_at_a_time_never_below_availability() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(&dir.path().join("data"), 100.0));
    let file = dir.path().join("u.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: u\nspec:\n  stack: local-1.35\n  controlPlane:\n    replicas: 3\n  nodePools:\n    - name: workers\n      replicas: 3\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n",
    )
    .unwrap();
    server.ok(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert_eq!(
        versions(&server, "u"),
        BTreeMap::from([
            ("control-plane v1.35.9".into(), 3),
            ("workers v1.35.9".into(), 3)
        ])
    );

    // Skipping a minor is refused, and nothing changes.
    let out = server.kaas(&["cluster", "upgrade", "u", "--stack", "local-1.37"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("skips a minor version"),
        "{}",
        text(&out)
    );
    assert_eq!(server.cluster("u").unwrap()["spec"]["stack"], "local-1.35");

    // Watch availability from the side while the upgrade runs.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut lowest = (u64::MAX, u64::MAX);
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(c) = server.cluster("u") {
                    let cp = c["status"]["controlPlane"]["readyReplicas"]
                        .as_u64()
                        .unwrap_or(0);
                    let w = c["status"]["nodePools"][0]["readyReplicas"]
                        .as_u64()
                        .unwrap_or(0);
                    lowest = (lowest.0.min(cp), lowest.1.min(w));
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (lowest, samples)
        })
    };
    let out = server.ok(&[
        "cluster",
        "upgrade",
        "u",
        "--stack",
        "local-1.36",
        "--wait",
        "--timeout",
        "120s",
    ]);
    stop.store(true, Ordering::SeqCst);
    let ((cp_low, workers_low), samples) = watcher.join().unwrap();
    assert!(samples > 10, "too few samples ({samples})");
    assert!(cp_low >= 3, "control plane dropped to {cp_low} ready");
    assert!(
        workers_low >= 3,
        "workers dropped to {workers_low} ready with maxUnavailable 0"
    );

    assert_eq!(
        versions(&server, "u"),
        BTreeMap::from([
            ("control-plane v1.36.4".into(), 3),
            ("workers v1.36.4".into(), 3)
        ])
    );
    assert_eq!(
        out.matches("Removed the etcd member of control-plane node")
            .count(),
        3,
        "{out}"
    );
    let c = server.cluster("u").unwrap();
    assert_eq!(c["status"]["kubernetesVersion"], "v1.36.4");
    assert_eq!(condition(&c, "RollingOut").unwrap()["status"], "False");
    // Control plane first: the first new worker came after the last old control plane left.
    let first_worker = out.find("Machine u-workers-").unwrap();
    let last_cp_etcd = out.rfind("Removed the etcd member").unwrap();
    assert!(
        last_cp_etcd < first_worker,
        "workers were replaced before the control plane was done:\n{out}"
    );
    assert_eq!(servers(&server), 6, "old servers left behind");

    // Now 1.37 is one step away.
    server.ok(&["cluster", "upgrade", "u", "--stack", "local-1.37"]);
}

#[test]
fn unhealthy_nodes_are_replaced_until_too_many_are() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    server.ok(&[
        "cluster",
        "create",
        "r",
        "--control-plane",
        "1",
        "--workers",
        "3",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let workers: Vec<String> = server
        .machines("r")
        .iter()
        .filter(|m| m["spec"]["pool"] == "workers")
        .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();

    // One NotReady node (of 3, maxUnhealthy 40%) is replaced after unhealthyTimeout.
    server.ok(&["sim", "node", &workers[0], "--ready", "false"]);
    server.wait_for("r", "repaired", 60, |c| {
        let names: Vec<String> = server
            .machines("r")
            .iter()
            .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        !names.contains(&workers[0])
            && c.is_some_and(|c| c["status"]["nodePools"][0]["readyReplicas"] == 3)
    });
    let events = server.ok(&["cluster", "events", "r"]);
    assert!(
        events.contains(&format!("Replacing machine {}", workers[0])),
        "{events}"
    );
    assert!(
        events.contains("NotReady for longer than unhealthyTimeout"),
        "{events}"
    );

    // Two of three (more than 40%) are not touched; a condition says why.
    server.ok(&["sim", "node", &workers[1], "--ready", "false"]);
    server.ok(&["sim", "node", &workers[2], "--ready", "false"]);
    server.wait_for("r", "stopped remediating", 30, |c| {
        c.and_then(|c| condition(c, "Remediating"))
            .is_some_and(|k| k["reason"] == "TooManyUnhealthy")
    });
    std::thread::sleep(Duration::from_millis(500));
    let names: Vec<String> = server
        .machines("r")
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&workers[1]) && names.contains(&workers[2]),
        "replaced despite maxUnhealthy: {names:?}"
    );
    let c = server.cluster("r").unwrap();
    assert!(
        condition(&c, "Remediating").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("maxUnhealthy")
    );

    // They recover; the cluster is whole again.
    server.ok(&["sim", "node", &workers[1], "--ready", "true"]);
    server.ok(&["sim", "node", &workers[2], "--ready", "true"]);
    server.wait_for("r", "Available", 30, |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
}

#[test]
fn injected_faults_show_in_conditions_and_heal() {
    let dir = tempfile::tempdir().unwrap();
    // First the cloud answers every call with a 503: the cluster's conditions and
    // events carry the cloud's words.
    let server = Server::start_with(
        &dir.path().join("data"),
        200.0,
        &["--sim-faults", "api-errors=1"],
    );
    server.ok(&[
        "cluster",
        "create",
        "f",
        "--control-plane",
        "3",
        "--workers",
        "3",
    ]);
    server.wait_for("f", "unable to see its cloud", 30, |c| {
        c.and_then(|c| condition(c, "InfrastructureReady"))
            .is_some_and(|k| {
                k["status"] == "Unknown"
                    && k["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("503 Service Unavailable")
            })
    });
    let events = server.ok(&["cluster", "events", "f"]);
    assert!(
        events.contains("Warning") && events.contains("503 Service Unavailable"),
        "{events}"
    );

    // Then a cloud that times out, fails servers and never finishes load balancers.
    server.ok(&[
        "sim",
        "faults",
        "--api-errors",
        "0.05",
        "--timeouts",
        "0.1",
        "--server-errors",
        "0.3",
        "--stuck-load-balancers",
        "1",
    ]);
    // The load balancer is stuck: infrastructure is not ready, and says which.
    server.wait_for("f", "stuck on its load balancer", 30, |c| {
        c.and_then(|c| condition(c, "InfrastructureReady"))
            .is_some_and(|k| {
                k["status"] == "False"
                    && k["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("load balancer")
            })
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_ne!(server.cluster("f").unwrap()["status"]["phase"], "Available");

    server.ok(&["sim", "faults", "--clear"]);
    server.wait_for("f", "Available", 90, |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
    let c = server.cluster("f").unwrap();
    assert_eq!(
        condition(&c, "InfrastructureReady").unwrap()["status"],
        "True"
    );
    // Failed servers were replaced, timed-out creates adopted: exactly 6 servers now.
    std::thread::sleep(Duration::from_millis(300));
    let items = server.inventory();
    let live_servers = items
        .iter()
        .filter(|i| i["kind"] == "server" && i["status"] != "DELETING")
        .count();
    assert_eq!(live_servers, 6, "{items:#?}");
    let mut names = std::collections::BTreeSet::new();
    for i in &items {
        if i["status"] != "DELETING" {
            assert!(
                names.insert((i["kind"].to_string(), i["name"].to_string())),
                "twin: {i}"
            );
        }
    }

    server.ok(&["cluster", "delete", "f", "--wait", "--timeout", "60s"]);
    assert_eq!(server.inventory(), Vec::<Value>::new());
}

#[test]
fn node_pools_are_added_and_removed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    let file = dir.path().join("p.yaml");
    let write = |pools: &str| {
        std::fs::write(
            &file,
            format!("apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: p\nspec:\n  controlPlane:\n    replicas: 1\n  nodePools:\n{pools}"),
        )
        .unwrap();
    };
    write("    - {name: general, replicas: 2}\n");
    server.ok(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);

    write(
        "    - {name: general, replicas: 2}\n    - {name: gpu, replicas: 2, flavor: m1.xlarge}\n",
    );
    let out = server.ok(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.contains("cluster/p configured"), "{out}");
    let pools: Vec<String> = server
        .machines("p")
        .iter()
        .map(|m| m["spec"]["pool"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pools.iter().filter(|p| *p == "gpu").count(), 2, "{pools:?}");
    let gpu_group = server
        .inventory()
        .iter()
        .any(|i| i["kind"] == "serverGroup" && i["name"].as_str().unwrap().ends_with("-gpu"));
    assert!(gpu_group, "no server group for the new pool");
    let get = server.ok(&["cluster", "get", "p"]);
    assert!(get.contains("gpu") && get.contains("AVAILABLE"), "{get}");
    assert_eq!(
        get.matches("POOL").count(),
        1,
        "the pool table is printed once: {get}"
    );

    write("    - {name: gpu, replicas: 2, flavor: m1.xlarge}\n");
    server.ok(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    let pools: Vec<String> = server
        .machines("p")
        .iter()
        .map(|m| m["spec"]["pool"].as_str().unwrap().to_owned())
        .collect();
    let mut pools = pools;
    pools.sort();
    assert_eq!(pools, ["control-plane", "gpu", "gpu"]);
    server.wait_for("p", "without the general pool's server group", 30, |_| {
        !server.inventory().iter().any(|i| {
            i["kind"] == "serverGroup" && i["name"].as_str().unwrap().ends_with("-general")
        })
    });
    assert_eq!(servers(&server), 3);
}

//! How close kaas comes to the fastest possible create, scale-up and rolling upgrade.
//!
//! On the simulated cloud with fixed latencies, each operation's *critical path* (the
//! shortest time the steps that must happen one after another can take) is known
//! exactly. This benchmark measures the wall time of each operation at a fixed time
//! scale and reports `wall × speed / critical path`: 1.00 is perfect.
//!
//! Run: `cargo bench -p kaas --bench critical_path` (a measurement, not a test), after
//! `dev/charts/publish.sh` has put the local stacks' charts into the local registry.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kaas::cli::Client;
use kaas::server::{ServerConfig, start};
use kaas_sim::{Latencies, LatencyRange};
use reqwest::Method;
use serde_json::{Value, json};

const SPEED: f64 = 50.0;
const BOOT: f64 = 60.0;
const INIT: f64 = 60.0;
const JOIN: f64 = 30.0;
const SERVER_DELETE: f64 = 3.0;

fn latencies() -> Latencies {
    let fixed = LatencyRange::fixed;
    Latencies {
        network: fixed(0.5),
        subnet: fixed(0.5),
        router: fixed(2.0),
        security_group: fixed(0.5),
        server_group: fixed(0.5),
        port: fixed(0.5),
        application_credential: fixed(0.5),
        load_balancer: fixed(90.0),
        floating_ip: fixed(2.0),
        server_boot: fixed(BOOT),
        server_delete: fixed(SERVER_DELETE),
        load_balancer_delete: fixed(10.0),
        kubeadm_init: fixed(INIT),
        node_join: fixed(JOIN),
    }
}

async fn until_settled(client: &Client, name: &str, started: Instant) -> Result<Duration> {
    loop {
        let c = client.get(&format!("/v1/clusters/{name}")).await?;
        if kaas::cli::settled(&c) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("cluster {name} did not settle: {c:#}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn change(client: &Client, name: &str, f: impl Fn(&mut Value)) -> Result<()> {
    for _ in 0..20 {
        let mut c = client.get(&format!("/v1/clusters/{name}")).await?;
        f(&mut c["spec"]);
        if client
            .request(Method::PUT, &format!("/v1/clusters/{name}"), Some(&c))
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    bail!("could not change cluster {name}")
}

struct Row {
    what: &'static str,
    critical: f64,
    wall: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(ServerConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse()?,
        sim_speed: SPEED,
        sim_latencies: Some(latencies()),
        // The project's local stacks: their addons come from the local registry.
        stacks_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dev/stacks").into()),
        ..ServerConfig::default()
    })
    .await?;
    let client = Client::new(&server.url(), Some(server.admin_token.clone()))?;
    let mut rows = Vec::new();

    // Create 3 control planes + 3 workers. The chain: the first control plane boots and
    // runs kubeadm init; the second and third each boot and join, one after another.
    // (The load balancer, 90 s, and the workers, init + boot + join, run alongside.)
    let started = Instant::now();
    let body = json!({"metadata": {"name": "bench"}, "spec": {
        "stack": "local-1.35",
        "controlPlane": {"replicas": 3},
        "nodePools": [{"name": "workers", "replicas": 3}],
        "rollout": {"maxSurge": 1, "maxUnavailable": 0}
    }});
    client
        .request(Method::POST, "/v1/clusters", Some(&body))
        .await?;
    let wall = until_settled(&client, "bench", started).await?;
    rows.push(Row {
        what: "create 3+3",
        critical: BOOT + INIT + 2.0 * (BOOT + JOIN),
        wall,
    });

    // Scale the workers 3 → 10: every new machine boots and joins at once.
    let started = Instant::now();
    change(&client, "bench", |spec| {
        spec["nodePools"][0]["replicas"] = json!(10)
    })
    .await?;
    let wall = until_settled(&client, "bench", started).await?;
    rows.push(Row {
        what: "scale-up 3→10",
        critical: BOOT + JOIN,
        wall,
    });

    // Roll 3+10 to the next Kubernetes minor with maxSurge 1, maxUnavailable 0.
    // Control plane, three times: a new machine boots and joins, then the old one is
    // drained, loses its etcd member and its server is deleted before the next starts.
    // Workers, ten times: a new machine boots and joins; the old one is drained and
    // deleted while the next boots. The last old worker's deletion ends the rollout.
    let started = Instant::now();
    change(&client, "bench", |spec| spec["stack"] = json!("local-1.36")).await?;
    let wall = until_settled(&client, "bench", started).await?;
    let control_plane = 3.0 * (BOOT + JOIN + SERVER_DELETE);
    let workers = 10.0 * (BOOT + JOIN) + SERVER_DELETE;
    rows.push(Row {
        what: "rolling upgrade 3+10",
        critical: control_plane + workers,
        wall,
    });

    println!(
        "critical-path benchmark: simulated cloud at ×{SPEED}, fixed latencies (boot {BOOT} s, kubeadm init {INIT} s, join {JOIN} s; drains are evictions on the simulated API server, at once)"
    );
    println!(
        "{:<22} {:>14} {:>14} {:>8}",
        "operation", "critical path", "measured", "ratio"
    );
    for r in &rows {
        let measured = r.wall.as_secs_f64() * SPEED;
        println!(
            "{:<22} {:>12.0} s {:>12.1} s {:>8.3}",
            r.what,
            r.critical,
            measured,
            measured / r.critical
        );
    }
    server.shutdown().await;
    Ok(())
}

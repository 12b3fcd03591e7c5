//! Whole clusters on the simulated cloud, through the real binary and CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Server, text};
use serde_json::Value;

fn conditions(cluster: &Value) -> BTreeMap<String, String> {
    cluster["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts the simulated cloud holds exactly one cluster's worth of resources, with no
/// twin of any name.
fn assert_one_cluster(server: &Server, control_planes: usize, workers: usize) {
    let items = server.inventory();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut names: BTreeMap<(String, String), usize> = BTreeMap::new();
    for i in &items {
        *by_kind
            .entry(i["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
        *names
            .entry((
                i["kind"].as_str().unwrap().to_owned(),
                i["name"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    let twins: Vec<_> = names.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twins.is_empty(), "duplicated resources: {twins:?}");
    let expected: BTreeMap<String, usize> = [
        ("network", 1),
        ("subnet", 1),
        ("router", 1),
        ("securityGroup", 2),
        ("serverGroup", 2),
        ("loadBalancer", 1),
        ("floatingIp", 1),
        ("server", control_planes + workers),
        // One per server, and the API load balancer's VIP.
        ("port", control_planes + workers + 1),
        ("applicationCredential", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(by_kind, expected, "inventory: {items:#?}");
}

#[test]
fn create_survive_restart_and_delete_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), 200.0);

    let started = Instant::now();
    let out = server.kaas(&[
        "cluster",
        "create",
        "alpha",
        "--control-plane",
        "3",
        "--workers",
        "3",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let took = started.elapsed();
    assert!(out.status.success(), "create --wait failed: {}", text(&out));
    let progress = text(&out);
    for expected in [
        "Created network",
        "Created load balancer",
        "joined and is Ready",
        "is Available at https://",
    ] {
        assert!(
            progress.contains(expected),
            "progress lacks {expected:?}:\n{progress}"
        );
    }
    assert!(took < Duration::from_secs(60), "took {took:?}");

    let cluster = server.kaas_json(&["cluster", "get", "alpha", "-o", "json"]);
    assert_eq!(cluster["status"]["phase"], "Available");
    let conds = conditions(&cluster);
    for c in [
        "InfrastructureReady",
        "ControlPlaneReady",
        "NodePoolsReady",
        "Available",
    ] {
        assert_eq!(
            conds.get(c).map(String::as_str),
            Some("True"),
            "{c} in {conds:?}"
        );
    }
    assert_eq!(cluster["status"]["controlPlane"]["readyReplicas"], 3);
    assert_eq!(cluster["status"]["nodePools"][0]["readyReplicas"], 3);
    assert!(
        cluster["status"]["apiEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://203.0.113.")
    );
    assert_one_cluster(&server, 3, 3);
    let machines = server.kaas_json(&["machine", "list", "alpha", "-o", "json"]);
    assert_eq!(machines["items"].as_array().unwrap().len(), 6);

    // A graceful restart, then a crash restart: the cluster is still there and still
    // Available, and nothing was created twice.
    server.stop();
    server.restart();
    let again = server.kaas_json(&["cluster", "get", "alpha", "-o", "json"]);
    assert_eq!(again["metadata"]["uid"], cluster["metadata"]["uid"]);
    assert_eq!(again["status"]["phase"], "Available", "{again:#}");
    let metrics = server.get_open("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "kaas_clusters{phase=\"Available\"} 1"),
        "after a restart:\n{metrics}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_one_cluster(&server, 3, 3);

    let events = server.kaas(&["cluster", "events", "alpha"]);
    assert!(events.status.success());
    assert!(
        text(&events).contains("NetworkCreated"),
        "{}",
        text(&events)
    );

    let out = server.kaas(&["cluster", "delete", "alpha", "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "delete --wait failed: {}", text(&out));
    assert_eq!(server.inventory(), Vec::<Value>::new(), "resources leaked");
    let list = server.kaas_json(&["cluster", "list", "-o", "json"]);
    assert_eq!(list["items"], Value::Array(vec![]));
    let out = server.kaas(&["cluster", "get", "alpha"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("NotFound"), "{}", text(&out));
}

#[test]
fn bad_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    let files = dir.path();
    let write = |name: &str, body: &str| {
        let p = files.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let overlap = write(
        "overlap.yaml",
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: ov\nspec:\n  network:\n    podCidr: 10.0.0.0/8\n",
    );
    let unknown = write(
        "unknown.yaml",
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: uf\nspec:\n  controlPlane:\n    replicas: 3\n    colour: red\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["cluster", "create", "Bad_Name"], "metadata.name"),
        (
            vec!["cluster", "create", "two", "--control-plane", "2"],
            "spec.controlPlane.replicas",
        ),
        (
            vec!["cluster", "create", "big", "--workers", "1001"],
            "spec.nodePools[0].replicas",
        ),
        (vec!["apply", "-f", &overlap], "spec.network.podCidr"),
        (vec!["apply", "-f", &unknown], "spec.controlPlane.colour"),
        (
            vec![
                "cluster",
                "create",
                "mail",
                "--addons",
                "cert-manager",
                "--acme-email",
                "nope",
            ],
            "spec.addons.certManager.acmeEmail",
        ),
        (
            vec!["cluster", "create", "mesh", "--addons", "istio"],
            "unknown addon",
        ),
    ];
    for (args, field) in cases {
        let out = server.kaas(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            text(&out).contains(field),
            "{args:?}: error does not name {field}: {}",
            text(&out)
        );
    }
    let list = server.kaas_json(&["cluster", "list", "-o", "json"]);
    assert_eq!(list["items"], Value::Array(vec![]), "something was stored");

    // The same flags, right, are taken into the spec.
    server.ok(&[
        "cluster",
        "create",
        "web",
        "--addons",
        "ingress,cert-manager",
        "--acme-email",
        "ops@example.com",
    ]);
    let web = server.kaas_json(&["cluster", "get", "web", "-o", "json"]);
    assert_eq!(web["spec"]["addons"]["ingress"]["proxyProtocol"], true);
    assert_eq!(
        web["spec"]["addons"]["certManager"]["acmeEmail"],
        "ops@example.com"
    );
    assert_eq!(
        web["spec"]["addons"]["certManager"]["issuer"],
        "letsencrypt-staging"
    );
    server.ok(&["cluster", "delete", "web", "--wait", "--timeout", "60s"]);
    assert_eq!(server.inventory(), Vec::<Value>::new());
}

fn wait_for(server: &Server, name: &str, what: &str, done: impl Fn(Option<&Value>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = server.kaas(&["cluster", "get", name, "-o", "json"]);
        let cluster: Option<Value> = if out.status.success() {
            serde_json::from_slice(&out.stdout).ok()
        } else {
            None
        };
        if done(cluster.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {name} never became {what}: {cluster:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_no_twins(server: &Server) {
    let mut seen = std::collections::BTreeSet::new();
    for i in server.inventory() {
        let key = (
            i["kind"].as_str().unwrap().to_owned(),
            i["name"].as_str().unwrap().to_owned(),
        );
        assert!(seen.insert(key.clone()), "twin of {key:?}");
    }
}

#[test]
fn a_server_killed_during_create_and_delete_converges_without_duplicates_or_leaks() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that the kills land in every stage of the create.
    let mut server = Server::start(&dir.path().join("data"), 40.0);
    let out = server.kaas(&[
        "cluster",
        "create",
        "crash",
        "--control-plane",
        "3",
        "--workers",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut kills = 0;
    for delay_ms in [20, 60, 120, 250, 400, 600, 900, 1300] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.restart(); // SIGKILL, then start again
        kills += 1;
        assert_no_twins(&server);
        let cluster = server.kaas_json(&["cluster", "get", "crash", "-o", "json"]);
        if cluster["status"]["phase"] == "Available" {
            break;
        }
    }
    assert!(
        kills >= 4,
        "the create finished before the kills could test anything"
    );
    wait_for(&server, "crash", "Available", |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
    assert_one_cluster(&server, 3, 2);

    let out = server.kaas(&["cluster", "delete", "crash"]);
    assert!(out.status.success(), "{}", text(&out));
    for delay_ms in [10, 40, 80] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.restart();
    }
    wait_for(&server, "crash", "deleted", |c| c.is_none());
    assert_eq!(server.inventory(), Vec::<Value>::new(), "resources leaked");
}

/// The README's first command: `kaas demo` brings up a cluster that is Available with
/// its addons, and what it made (the cluster and its simulated Kubernetes objects)
/// outlives it, written down as it stops.
#[test]
fn the_demo_makes_an_available_cluster_that_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(common::KAAS)
        .args(["demo", "--exit", "--sim-speed", "100", "--data-dir"])
        .arg(&data)
        // As dev/demo.sh runs it: the local stacks, their charts in the local registry.
        .args(["--stacks-dir", common::LOCAL_STACKS])
        .args(["--default-stack", common::DEFAULT_LOCAL_STACK])
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        // Nothing of the machine's own kaas configuration.
        .env("KAAS_CONFIG", dir.path().join("config.yaml"))
        .env_remove("KAAS_SERVER")
        .env_remove("KAAS_TOKEN")
        .env_remove("KAAS_CONTEXT")
        .env_remove("KAAS_TENANT")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cluster/demo is Available"), "{said}");
    assert!(
        !said.contains("cannot write the simulated cluster down"),
        "{said}"
    );
    let snapshots: Vec<String> = std::fs::read_dir(data.join("sim-clusters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        snapshots.len() == 1 && snapshots[0].ends_with(".sealed"),
        "{snapshots:?}"
    );

    let server = Server::start(&data, 100.0);
    server.wait_for(
        "demo",
        "Available with its addons after the demo",
        60,
        |c| {
            c.is_some_and(|c| {
                c["status"]["phase"] == "Available"
                    && c["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|k| k["type"] == "AddonsReady" && k["status"] == "True")
                    })
            })
        },
    );
}

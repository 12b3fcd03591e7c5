//! The kill-and-restart suite: SIGKILL the server at random moments during create,
//! scale, rolling upgrade and delete, start it again each time, and check that every
//! run converges with no twin and no leak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;
use serde_json::Value;

/// A tiny deterministic generator, so a failing run can be repeated with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

const KILLS_PER_PHASE: usize = 13;

/// No two live resources of a kind share a name.
fn assert_no_twins(server: &Server, when: &str) {
    let mut seen = BTreeSet::new();
    for i in server.inventory() {
        if i["status"] == "DELETING" {
            continue;
        }
        let key = (
            i["kind"].as_str().unwrap().to_owned(),
            i["name"].as_str().unwrap().to_owned(),
        );
        assert!(seen.insert(key.clone()), "{when}: twin of {key:?}");
    }
}

fn counts(server: &Server) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in server.inventory() {
        *out.entry(i["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

fn settled(c: Option<&Value>) -> bool {
    c.is_some_and(kaas::cli::settled)
}

/// Kills the server KILLS_PER_PHASE times at random moments, checking for twins
/// after every restart; returns the number of kills.
fn kill_repeatedly(server: &mut Server, rng: &mut Rng, phase: &str) -> usize {
    for i in 0..KILLS_PER_PHASE {
        std::thread::sleep(Duration::from_millis(rng.between(10, 250)));
        server.restart();
        assert_no_twins(server, &format!("{phase}, after kill {}", i + 1));
    }
    KILLS_PER_PHASE
}

#[test]
fn killed_at_random_during_create_scale_upgrade_and_delete_converges_without_twins_or_leaks() {
    let seed = std::env::var("KAAS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash suite seed {seed} (set KAAS_CRASH_SEED to repeat)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), 60.0);
    let mut kills = 0;
    let expect = |server: &Server, cp: usize, workers: usize| {
        let c = counts(server);
        let want: BTreeMap<String, usize> = [
            ("network", 1),
            ("subnet", 1),
            ("router", 1),
            ("securityGroup", 2),
            ("serverGroup", 2),
            ("loadBalancer", 1),
            ("floatingIp", 1),
            ("server", cp + workers),
            // One per server, and the API load balancer's VIP.
            ("port", cp + workers + 1),
            ("applicationCredential", 1),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
        assert_eq!(c, want, "seed {seed}");
        let machines = server.machines("chaos");
        assert_eq!(
            machines.len(),
            cp + workers,
            "seed {seed}: machines {machines:#?}"
        );
    };

    // Create.
    server.ok(&[
        "cluster",
        "create",
        "chaos",
        "--control-plane",
        "3",
        "--workers",
        "3",
    ]);
    kills += kill_repeatedly(&mut server, &mut rng, "create");
    server.wait_for("chaos", "Available after create", 120, settled);
    std::thread::sleep(Duration::from_millis(300));
    expect(&server, 3, 3);

    // Scale up.
    server.ok(&[
        "cluster",
        "scale",
        "chaos",
        "--pool",
        "workers",
        "--replicas",
        "7",
    ]);
    kills += kill_repeatedly(&mut server, &mut rng, "scale");
    server.wait_for("chaos", "Available after scale", 120, settled);
    std::thread::sleep(Duration::from_millis(300));
    expect(&server, 3, 7);

    // Rolling upgrade.
    server.ok(&["cluster", "upgrade", "chaos", "--stack", "local-1.37"]);
    kills += kill_repeatedly(&mut server, &mut rng, "upgrade");
    server.wait_for("chaos", "Available after upgrade", 240, settled);
    std::thread::sleep(Duration::from_millis(300));
    expect(&server, 3, 7);
    for m in server.machines("chaos") {
        assert_eq!(m["spec"]["version"], "v1.37.1", "seed {seed}: {m:#}");
    }

    // Delete.
    server.ok(&["cluster", "delete", "chaos"]);
    kills += kill_repeatedly(&mut server, &mut rng, "delete");
    server.wait_for("chaos", "deleted", 120, |c| c.is_none());
    assert_eq!(
        server.inventory(),
        Vec::<Value>::new(),
        "seed {seed}: leaked"
    );
    assert!(kills >= 50, "only {kills} kills");
}

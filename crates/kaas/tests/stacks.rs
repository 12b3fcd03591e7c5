//! Cluster stacks as data: built-in and operator stacks, upgrade paths, and the SCS
//! version policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{KAAS, Server, text};

#[test]
fn stacks_are_listed_checked_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let stacks = dir.path().join("stacks");
    common::copy_local_stacks(&stacks);
    let local = common::local_stack("local-1.36");
    // An operator's stacks (with the local stacks' addons): one past end of life, one a
    // patch behind, one with no path from anywhere.
    for (name, version, from) in [
        ("acme-1.34", "v1.34.7", "[]"),
        ("acme-1.35", "v1.35.7", "[acme-1.34]"),
        ("island-1.36", "v1.36.4", "[]"),
    ] {
        std::fs::create_dir_all(stacks.join(name)).unwrap();
        let text = local
            .replace("name: local-1.36", &format!("name: {name}"))
            .replace("v1.36.4", version)
            .replace(
                "upgradesFrom:\n    - local-1.35",
                &format!("upgradesFrom: {from}"),
            );
        assert!(text.contains(&format!("upgradesFrom: {from}")), "{text}");
        std::fs::write(stacks.join(name).join("stack.yaml"), text).unwrap();
    }
    // Release data of the test's own, so that the verdicts do not move with the clock:
    // 1.34 long past end of life, v1.35.9 long out, 1.36 current, and a v1.37.5 that
    // only this file knows of (so the test sees the flag is used).
    let versions = dir.path().join("kubernetes-versions.yaml");
    std::fs::write(
        &versions,
        "apiVersion: kaas.dev/v1alpha1\nkind: KubernetesVersions\npatchGraceDays: 14\nreleases:\n\
         - {minor: \"1.34\", endOfLife: 2020-01-01, patches: [{version: v1.34.7, released: 2019-06-01}]}\n\
         - {minor: \"1.35\", endOfLife: 2099-01-01, patches: [{version: v1.35.9, released: 2020-01-01}]}\n\
         - {minor: \"1.36\", endOfLife: 2099-01-01, patches: [{version: v1.36.4, released: 2020-01-01}]}\n\
         - {minor: \"1.37\", endOfLife: 2099-01-01, patches: [{version: v1.37.5, released: 2020-01-01}, {version: v1.37.1, released: 2019-12-01}]}\n",
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        200.0,
        &[
            "--stacks-dir",
            stacks.to_str().unwrap(),
            "--kubernetes-versions",
            versions.to_str().unwrap(),
        ],
    );

    let list = server.ok(&["stack", "list"]);
    for name in [
        "scs-1.35",
        "scs-1.36",
        "scs-1.37",
        "acme-1.34",
        "acme-1.35",
        "island-1.36",
    ] {
        assert!(list.contains(name), "{name} missing:\n{list}");
    }
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(line("acme-1.34").contains("past end of life"), "{list}");
    assert!(line("acme-1.35").contains("v1.35.9 was released"), "{list}");
    assert!(line("scs-1.36").trim_end().ends_with("ok"), "{list}");
    // The server's default stack (the tests' servers: the local one).
    assert!(
        line("local-1.36").starts_with("local-1.36 (default)"),
        "{list}"
    );
    assert!(!line("scs-1.36").contains("(default)"), "{list}");
    assert!(line("scs-1.37").contains("v1.37.5 was released"), "{list}");
    assert!(
        list.contains("the server's data says neither where nor when it was taken"),
        "{list}"
    );

    let show = server.ok(&["stack", "show", "scs-1.37", "-o", "json"]);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["spec"]["kubernetesVersion"], "v1.37.1");
    assert_eq!(show["spec"]["upgradesFrom"][0], "scs-1.36");
    assert!(
        show["spec"]["addons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "cilium")
    );
    // A stack's addons rendered for an example cluster, from the local registry's
    // charts; the built-in stacks' upstream charts cannot be had here (no internet):
    // refused, naming the chart and why.
    let rendered = server.ok(&[
        "stack",
        "render",
        "local-1.35",
        "--addons",
        "gateway,cert-manager",
        "--acme-email",
        "ops@example.org",
    ]);
    for want in [
        "kind: GatewayClass",
        "kind: Gateway\n",
        "gatewayHTTPRoute",
        "name: cilium-operator",
        "cluster example (uid 00000000-0000-0000-0000-000000000000)",
    ] {
        assert!(rendered.contains(want), "{want}:\n{rendered}");
    }
    let out = server.kaas(&["stack", "render", "scs-1.36"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("addon cilium") && text(&out).contains("helm.cilium.io"),
        "{}",
        text(&out)
    );
    let out = server.kaas(&[
        "stack",
        "render",
        "local-1.36",
        "--addons",
        "gateway",
        "--cluster",
        "x",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("--cluster"),
        "{}",
        text(&out)
    );

    let out = server.kaas(&["stack", "show", "nope"]);
    assert!(
        !out.status.success() && text(&out).contains("scs-1.36"),
        "{}",
        text(&out)
    );

    // A cluster on an operator stack follows that stack's version and image...
    let out = server.kaas(&[
        "cluster",
        "create",
        "c",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--stack",
        "acme-1.35",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for m in server.machines("c") {
        assert_eq!(m["spec"]["version"], "v1.35.7");
        assert_eq!(m["spec"]["image"], "ubuntu-2404-kube-v1.35.7");
    }
    // ...and moves only along upgrade paths.
    let out = server.kaas(&["cluster", "upgrade", "c", "--stack", "island-1.36"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not list acme-1.35"),
        "{}",
        text(&out)
    );
    let out = server.kaas(&["cluster", "create", "d", "--stack", "scs-1.99"]);
    assert!(
        !out.status.success() && text(&out).contains("spec.stack"),
        "{}",
        text(&out)
    );
}

/// Upstream's release schedule (data/releases/schedule.yaml of the Kubernetes website),
/// made up in its shape so that the verdicts do not move with the clock: 1.35 long past
/// end of life, a v1.36.6 long out, 1.37 current; v1.37.2 is only planned.
const SCHEDULE: &str = r#"---
schedules:
- endOfLifeDate: "2099-06-28"
  maintenanceModeStartDate: "2099-04-28"
  next:
    cherryPickDeadline: "2020-02-07"
    release: 1.37.2
    targetDate: "2020-02-11"
  previousPatches:
  - cherryPickDeadline: "2020-01-10"
    release: 1.37.1
    targetDate: "2020-01-14"
  release: "1.37"
  releaseDate: "2019-12-10"
- endOfLifeDate: "2099-02-28"
  previousPatches:
  - release: 1.36.6
    targetDate: "2020-02-01"
    note: Out of band release.
  - release: 1.36.4
    targetDate: "2020-01-14"
  release: "1.36"
  releaseDate: "2019-08-10"
- release: 1.35
  endOfLifeDate: 2020-01-01
  previousPatches:
    - release: 1.35.9
      cherryPickDeadline: ""
      targetDate: 2019-11-12
upcoming_releases:
- targetDate: "2020-02-11"
"#;

#[test]
fn release_data_is_refreshed_from_upstreams_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("schedule.yaml");
    std::fs::write(&schedule, SCHEDULE).unwrap();
    let out = dir.path().join("kubernetes-versions.yaml");
    let update = |from: &std::path::Path| {
        Command::new(KAAS)
            .args(["stack", "versions", "update", "--from"])
            .arg(from)
            .arg("--out")
            .arg(&out)
            .args([
                "--source",
                "https://mirror.example.org/schedule.yaml",
                "--taken-on",
                "2020-03-01",
            ])
            .output()
            .unwrap()
    };

    // A local copy, as on a cloud without internet access.
    let done = update(&schedule);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("newest release v1.36.6 of 2020-02-01), taken on 2020-03-01"),
        "{}",
        text(&done)
    );
    let written = std::fs::read_to_string(&out).unwrap();
    for expected in [
        "kind: KubernetesVersions\n",
        "source: \"https://mirror.example.org/schedule.yaml\"\n",
        "takenOn: 2020-03-01\n",
        "patchGraceDays: 14\n",
        "  - minor: \"1.35\"\n    endOfLife: 2020-01-01\n",
        "      - {version: v1.36.6, released: 2020-02-01}\n      - {version: v1.36.4, released: 2020-01-14}\n",
    ] {
        assert!(written.contains(expected), "{expected:?} not in\n{written}");
    }
    assert!(
        !written.contains("v1.37.2"),
        "a plan is not a release:\n{written}"
    );

    // Without --out, the data goes to stdout.
    let printed = Command::new(KAAS)
        .args(["stack", "versions", "update", "--from"])
        .arg(&schedule)
        .args(["--taken-on", "2020-03-01", "--patch-grace-days", "7"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", text(&printed));
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(stdout.contains("patchGraceDays: 7\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("source: \"{}\"", schedule.display())),
        "{stdout}"
    );

    // Bad input is refused by field, and the data written before stays.
    let broken = dir.path().join("broken.yaml");
    for (text_of_broken, expected) in [
        (
            SCHEDULE.replace(
                "- endOfLifeDate: \"2099-06-28\"\n",
                "- endOfLife: \"2099-06-28\"\n",
            ),
            "schedules[0].endOfLifeDate: missing",
        ),
        (
            SCHEDULE.replace("targetDate: \"2020-02-01\"", "targetDate: \"2020-02-31\""),
            "schedules[1].previousPatches[0].targetDate: \"2020-02-31\" is not a date",
        ),
    ] {
        std::fs::write(&broken, text_of_broken).unwrap();
        let refused = update(&broken);
        assert!(
            !refused.status.success() && text(&refused).contains(expected),
            "{expected:?} not in {}",
            text(&refused)
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), written);
    }

    // The server checks the stacks against it and says how old it is.
    let server = Server::start_with(
        &dir.path().join("data"),
        200.0,
        &["--kubernetes-versions", out.to_str().unwrap()],
    );
    let list = server.ok(&["stack", "list"]);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(line("scs-1.35").contains("past end of life"), "{list}");
    assert!(line("scs-1.36").contains("v1.36.6 was released"), "{list}");
    assert!(line("scs-1.37").trim_end().ends_with("ok"), "{list}");
    assert!(
        list.contains("Kubernetes release data taken on 2020-03-01 (")
            && list.contains(" days old) from https://mirror.example.org/schedule.yaml"),
        "{list}"
    );
    let show = server.kaas_json(&["stack", "show", "scs-1.37", "-o", "json"]);
    assert_eq!(
        show["status"]["policy"]["releaseData"]["takenOn"],
        "2020-03-01"
    );
}

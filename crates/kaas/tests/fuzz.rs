//! The REST API fuzzed from its own OpenAPI document by schemathesis (PyPI): requests
//! generated from the document, valid and invalid, against a live server as the
//! operator; every answer must be a documented status with a body that fits the
//! documented schema, never a 5xx, invalid input must be refused and authentication
//! enforced. `tests/schemathesis.toml` says where a check is relaxed, and why.
//!
//! Needs `schemathesis` on PATH: `dev/test.sh` installs it. A missing one fails the
//! test, never skips it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// Cases per operation and phase: about 4,000 requests in half a minute on two cores,
/// a handful of clusters: few enough not to flood the simulated cloud.
const MAX_EXAMPLES: &str = "50";
/// Every check of schemathesis 4 but `max_response_time`, which `--checks=all` would
/// turn on with a 10 s limit: how fast the API answers is measured by the benchmarks,
/// not asserted here, where a paused or loaded machine would fail a correct API (a
/// 44 s answer while the whole machine was suspended did once).
const CHECKS: &[&str] = &[
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
];
/// A fixed seed, so that a failure can be replayed (`--seed` in the printed command).
const SEED: &str = "20261125";
/// The run is killed, and the test fails, after this long.
const TIMEOUT: Duration = Duration::from_secs(300);

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("schemathesis"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`schemathesis` is not on PATH; this test needs it: run dev/test.sh, which \
                 installs it (python3 -m pip install schemathesis)"
            )
        });
    let version = Command::new(&found).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    // The options and check names used here are those of schemathesis 4.
    assert!(
        version.contains("version 4."),
        "{} is {version:?}; this test needs schemathesis 4: run dev/test.sh",
        found.display()
    );
    found
}

/// Schemathesis' failures and summary: its output from the first report heading on.
fn report(output: &str) -> &str {
    ["= FAILURES =", "= ERRORS =", "= WARNINGS =", "= SUMMARY ="]
        .iter()
        .filter_map(|heading| output.find(heading))
        .min()
        .and_then(|at| output[..at].rfind('\n').map(|line| &output[line + 1..]))
        .unwrap_or(output)
}

#[test]
fn the_api_keeps_to_its_openapi_document() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // With a registry that does not answer: the token service works without one, and
    // browsing answers 502, as documented.
    let server = Server::start_with(&data_dir, 200.0, &["--registry-url", "http://127.0.0.1:9"]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let log = dir.path().join("schemathesis.log");
    let args = [
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".to_owned(),
        format!("{}/openapi.json", server.url()),
        format!("--checks={}", CHECKS.join(",")),
        format!("--max-examples={MAX_EXAMPLES}"),
        format!("--seed={SEED}"),
        "--workers=2".to_owned(),
        // Nothing saved between runs (nor written into the source tree): each run
        // starts from the seed alone.
        "--generation-database=none".to_owned(),
        "--no-color".to_owned(),
    ];
    let started = Instant::now();
    let mut child = Command::new(&schemathesis)
        .args(&args)
        .args(["-H", &format!("Authorization: Bearer {}", server.token())])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("schemathesis.err")).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.path().join("schemathesis.err")).unwrap_or_default();
    let passed = status.is_some_and(|s| s.success());
    if passed {
        eprintln!(
            "schemathesis passed in {:.0?}:\n{}",
            started.elapsed(),
            report(&output)
        );
        return;
    }
    drop(server);
    // Kept for a look at what the server logged.
    let kept = dir.keep();
    let what = match status {
        None => format!("did not finish within {TIMEOUT:?}"),
        Some(status) => format!("found the API at odds with its OpenAPI document ({status})"),
    };
    panic!(
        "schemathesis {what}:\n{}\n{errors}\ncommand: {} {} -H 'Authorization: Bearer …'\n\
         server log and schemathesis' whole output: {}",
        report(&output),
        schemathesis.display(),
        args.join(" "),
        kept.display()
    );
}

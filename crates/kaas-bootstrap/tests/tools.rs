//! The rendered material checked by the real tools that will consume it: `openssl`,
//! `cloud-init` (22.4, Debian bookworm) and `kubectl`.
//!
//! These tests need the tools on `PATH`; the project's test script installs them. A
//! missing tool fails the test with the package to install: never a silent skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use kaas_bootstrap::{
    ApiServerSans, BootstrapToken, CertAndKey, ClusterPki, KubernetesVersion, MachineBootstrap,
    NOVA_USER_DATA_LIMIT, NodeBootstrap, NodeRole, UserData, ca_cert_hash, issue_admin_client_cert,
    issue_apiserver_cert, render_admin_kubeconfig, render_user_data,
};

// --- helpers ---------------------------------------------------------------------------

/// The path of `name` on `PATH`, or a failure saying how to install it.
fn tool(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH; this test needs it: install it with `{install}`")
        })
}

fn openssl() -> PathBuf {
    tool("openssl", "apt-get install -y openssl")
}

fn cloud_init() -> PathBuf {
    tool(
        "cloud-init",
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cloud-init",
    )
}

fn kubectl() -> PathBuf {
    tool(
        "kubectl",
        "apt-get install -y kubectl (from the Kubernetes package repository pkgs.k8s.io)",
    )
}

/// The Python that runs cloud-init (its script's `#!` line), which can import `cloudinit`.
fn cloud_init_python() -> PathBuf {
    let script = cloud_init();
    let text = std::fs::read_to_string(&script)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
    let interpreter = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("#!"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} has no #! line", script.display()));
    PathBuf::from(interpreter)
}

/// Runs `program args…`, returning its output whatever its exit status.
fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", program.display()))
}

/// Runs `program args…` and returns its stdout, failing the test on a non-zero exit.
fn run_ok(program: &Path, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{} {} failed ({}):\nstdout: {}\nstderr: {}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout).unwrap()
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

fn sans(extra: &[&str]) -> ApiServerSans {
    ApiServerSans {
        service_cidr: "10.96.0.0/12".to_string(),
        load_balancer_address: "192.0.2.10".to_string(),
        floating_ip: Some("203.0.113.7".to_string()),
        extra: extra.iter().map(|s| s.to_string()).collect(),
    }
}

fn node(pki: &ClusterPki, version: &str, role: NodeRole, name: &str) -> NodeBootstrap {
    let now = Utc::now();
    NodeBootstrap {
        cluster_name: "demo".to_string(),
        kubernetes_version: KubernetesVersion::parse(version).unwrap(),
        control_plane_endpoint: "203.0.113.7:6443".to_string(),
        pod_cidr: "192.168.0.0/16".to_string(),
        service_cidr: "10.96.0.0/12".to_string(),
        node_name: name.to_string(),
        role,
        zone: Some("nova".to_string()),
        region: Some("RegionOne".to_string()),
        token: BootstrapToken::generate(now, Duration::from_secs(2 * 3600)).unwrap(),
        ca_cert_hash: ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap(),
        cert_sans: sans(&[]).cert_sans(),
    }
}

/// What cloud-init will read: the document itself, decompressed if it was gzipped.
fn plain(user_data: &UserData) -> String {
    if user_data.compressed {
        let mut text = String::new();
        flate2::read::GzDecoder::new(user_data.bytes.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8(user_data.bytes.clone()).unwrap()
    }
}

fn assert_cloud_init_schema_accepts(dir: &Path, name: &str, document: &str) {
    let path = write(dir, name, document);
    let output = run(&cloud_init(), &["schema", "--config-file", &path]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("Valid cloud-config"),
        "cloud-init schema rejected {name} ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
}

/// `notAfter=Mar 14 23:09:26 2025 GMT` → a time.
fn openssl_date(line: &str, field: &str) -> DateTime<Utc> {
    let value = line
        .trim()
        .strip_prefix(field)
        .and_then(|rest| rest.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {field} in {line:?}"));
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&value, "%b %d %H:%M:%S %Y GMT")
        .unwrap_or_else(|e| panic!("cannot parse {value:?}: {e}"))
        .and_utc()
}

// --- openssl ---------------------------------------------------------------------------

#[test]
fn openssl_verifies_the_pki() {
    let openssl = openssl();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = Utc::now();
    let pki = ClusterPki::generate("demo", now).unwrap();
    let apiserver = issue_apiserver_cert(&pki, &sans(&["demo-cp-0", "10.0.0.11"]), now).unwrap();
    let ttl = Duration::from_secs(8 * 3600);
    let admin = issue_admin_client_cert(&pki, "alice", ttl, now).unwrap();

    let ca = write(d, "ca.crt", &pki.kubernetes_ca.cert_pem);
    let etcd_ca = write(d, "etcd-ca.crt", &pki.etcd_ca.cert_pem);
    let front_proxy_ca = write(d, "front-proxy-ca.crt", &pki.front_proxy_ca.cert_pem);
    let apiserver_crt = write(d, "apiserver.crt", &apiserver.cert_pem);
    let admin_crt = write(d, "admin.crt", &admin.cert_pem);

    // Each CA is a valid self-signed root.
    for ca_file in [&ca, &etcd_ca, &front_proxy_ca] {
        let out = run_ok(&openssl, &["verify", "-CAfile", ca_file, ca_file]);
        assert!(out.trim_end().ends_with(": OK"), "{out}");
    }
    // The leaves chain to the Kubernetes CA, for their purpose.
    let out = run_ok(
        &openssl,
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            &ca,
            &apiserver_crt,
        ],
    );
    assert!(out.trim_end().ends_with(": OK"), "{out}");
    let out = run_ok(
        &openssl,
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            &ca,
            &admin_crt,
        ],
    );
    assert!(out.trim_end().ends_with(": OK"), "{out}");
    // …and to no other CA.
    let wrong = run(&openssl, &["verify", "-CAfile", &etcd_ca, &apiserver_crt]);
    assert!(
        !wrong.status.success(),
        "apiserver.crt verified against the etcd CA"
    );

    // The API server certificate names the load balancer, the floating IP, the service IP.
    let out = run_ok(
        &openssl,
        &[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            &apiserver_crt,
        ],
    );
    for expected in [
        "IP Address:192.0.2.10",
        "IP Address:203.0.113.7",
        "IP Address:10.96.0.1",
        "IP Address:127.0.0.1",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:demo-cp-0",
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }

    // The admin certificate ends within its TTL (X.509 keeps whole seconds).
    let end = openssl_date(
        &run_ok(&openssl, &["x509", "-noout", "-enddate", "-in", &admin_crt]),
        "notAfter",
    );
    let ttl = chrono::Duration::from_std(ttl).unwrap();
    assert!(end <= now + ttl, "{end} is after {}", now + ttl);
    assert!(end > now + ttl - chrono::Duration::seconds(2), "{end}");
    let start = openssl_date(
        &run_ok(
            &openssl,
            &["x509", "-noout", "-startdate", "-in", &admin_crt],
        ),
        "notBefore",
    );
    assert!(start < now - chrono::Duration::minutes(4), "{start}");
    let subject = run_ok(&openssl, &["x509", "-noout", "-subject", "-in", &admin_crt]);
    assert!(
        subject.contains("O = kubeadm:cluster-admins") && subject.contains("CN = alice"),
        "{subject}"
    );

    // openssl reads every key, and each key is its certificate's.
    for (name, pair) in [
        ("ca", &pki.kubernetes_ca),
        ("etcd-ca", &pki.etcd_ca),
        ("front-proxy-ca", &pki.front_proxy_ca),
        ("apiserver", &apiserver),
        ("admin", &admin),
    ] {
        let key = write(d, &format!("{name}.key"), &pair.key_pem);
        let crt = write(d, &format!("{name}.pem"), &pair.cert_pem);
        let from_key = run_ok(&openssl, &["pkey", "-in", &key, "-pubout"]);
        let from_crt = run_ok(&openssl, &["x509", "-noout", "-pubkey", "-in", &crt]);
        assert_eq!(from_key, from_crt, "{name}: key and certificate differ");
    }
    let sa_pub = write(d, "sa.pub", &pki.service_account.public_pem);
    let sa_key = write(d, "sa.key", &pki.service_account.key_pem);
    let from_key = run_ok(&openssl, &["pkey", "-in", &sa_key, "-pubout"]);
    let from_pub = run_ok(&openssl, &["pkey", "-pubin", "-in", &sa_pub]);
    assert_eq!(from_key, from_pub, "service-account key pair");
}

#[test]
fn ca_cert_hash_matches_kubeadms_openssl_recipe() {
    // kubeadm's documented recipe: openssl x509 -pubkey -in ca.crt | openssl rsa -pubin
    // -outform der | openssl dgst -sha256 -hex (here with `pkey`, which reads EC keys).
    let openssl = openssl();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
    let ca = write(d, "ca.crt", &pki.kubernetes_ca.cert_pem);
    let public_pem = run_ok(&openssl, &["x509", "-noout", "-pubkey", "-in", &ca]);
    let public_pem = write(d, "ca.pub", public_pem);
    let public_der = d.join("ca.pub.der");
    let public_der = public_der.to_str().unwrap();
    run_ok(
        &openssl,
        &[
            "pkey",
            "-pubin",
            "-in",
            &public_pem,
            "-outform",
            "der",
            "-out",
            public_der,
        ],
    );
    let digest = run_ok(&openssl, &["dgst", "-sha256", "-r", public_der]);
    let hex = digest.split_whitespace().next().unwrap();
    assert_eq!(
        ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap(),
        format!("sha256:{hex}")
    );
}

// --- cloud-init ------------------------------------------------------------------------

/// The user data of each kind of machine, for both kubeadm API versions.
fn user_data_of_every_kind(pki: &ClusterPki) -> Vec<(String, UserData)> {
    let now = Utc::now();
    let mut out = Vec::new();
    for version in ["v1.30.2", "v1.33.1"] {
        for (role, name) in [
            (NodeRole::Init, "demo-cp-0"),
            (NodeRole::JoinControlPlane, "demo-cp-1"),
            (NodeRole::Worker, "demo-workers-0"),
        ] {
            let n = node(pki, version, role, name);
            let user_data = if role.is_control_plane() {
                let apiserver = issue_apiserver_cert(pki, &sans(&[name]), now).unwrap();
                render_user_data(&MachineBootstrap::control_plane(&n, pki, Some(&apiserver)))
                    .unwrap()
            } else {
                render_user_data(&MachineBootstrap::worker(&n)).unwrap()
            };
            out.push((format!("{version}-{name}.yaml"), user_data));
        }
    }
    out
}

#[test]
fn cloud_init_schema_accepts_the_user_data() {
    cloud_init();
    let dir = tempfile::tempdir().unwrap();
    let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
    for (name, user_data) in user_data_of_every_kind(&pki) {
        assert_cloud_init_schema_accepts(dir.path(), &name, &plain(&user_data));
    }
}

#[test]
fn cloud_init_unpacks_gzipped_user_data() {
    // Thousands of extra certSANs push the init document past Nova's limit, so it is
    // gzipped; cloud-init's own decompression (`util.decomp_gzip`, which it applies to
    // all user data) must give back a valid cloud-config.
    let python3 = cloud_init_python();
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let pki = ClusterPki::generate("demo", now).unwrap();
    let mut n = node(&pki, "v1.33.1", NodeRole::Init, "demo-cp-0");
    n.cert_sans
        .extend((0..4000).map(|i| format!("api-{i:04}.demo.example")));
    let apiserver = issue_apiserver_cert(&pki, &sans(&["demo-cp-0"]), now).unwrap();
    let user_data =
        render_user_data(&MachineBootstrap::control_plane(&n, &pki, Some(&apiserver))).unwrap();
    assert!(user_data.compressed, "expected gzipped user data");
    assert!(user_data.nova_base64().len() <= NOVA_USER_DATA_LIMIT);
    let gz = write(dir.path(), "user-data.gz", &user_data.bytes);
    let unpacked = run_ok(
        &python3,
        &[
            "-c",
            "import sys; from cloudinit import util; \
             sys.stdout.write(util.decomp_gzip(open(sys.argv[1], 'rb').read(), quiet=False))",
            &gz,
        ],
    );
    assert_eq!(unpacked, plain(&user_data));
    assert!(unpacked.starts_with("#cloud-config\n"));
    assert_cloud_init_schema_accepts(dir.path(), "unpacked.yaml", &unpacked);
}

// --- Nova's limit ------------------------------------------------------------------------

#[test]
fn five_control_plane_user_data_fits_nova() {
    let now = Utc::now();
    let pki = ClusterPki::generate("demo", now).unwrap();
    // One API server certificate valid on all five control-plane nodes: the worst case.
    let names: Vec<String> = (0..5).map(|i| format!("demo-control-plane-{i}")).collect();
    let addresses: Vec<String> = (0..5).map(|i| format!("10.0.0.{}", 11 + i)).collect();
    let extra: Vec<&str> = names
        .iter()
        .chain(addresses.iter())
        .map(String::as_str)
        .collect();
    let apiserver = issue_apiserver_cert(&pki, &sans(&extra), now).unwrap();
    let one_cp_apiserver =
        issue_apiserver_cert(&pki, &sans(&[&names[0], &addresses[0]]), now).unwrap();

    let mut report = Vec::new();
    for (label, role, cert) in [
        ("1 control plane, init", NodeRole::Init, &one_cp_apiserver),
        ("5 control planes, init", NodeRole::Init, &apiserver),
        (
            "5 control planes, control-plane join",
            NodeRole::JoinControlPlane,
            &apiserver,
        ),
    ] {
        let mut n = node(&pki, "v1.33.1", role, &names[1]);
        if cert == &apiserver {
            n.cert_sans.extend(extra.iter().map(|s| s.to_string()));
        }
        let user_data =
            render_user_data(&MachineBootstrap::control_plane(&n, &pki, Some(cert))).unwrap();
        let base64 = user_data.nova_base64().len();
        assert!(
            base64 <= NOVA_USER_DATA_LIMIT,
            "{label}: {base64} bytes of base64"
        );
        report.push(format!(
            "{label}: {} bytes raw, {base64} bytes base64, compressed: {}",
            user_data.bytes.len(),
            user_data.compressed
        ));
    }
    let worker = node(&pki, "v1.33.1", NodeRole::Worker, "demo-workers-0");
    let user_data = render_user_data(&MachineBootstrap::worker(&worker)).unwrap();
    report.push(format!(
        "worker join: {} bytes raw, {} bytes base64, compressed: {}",
        user_data.bytes.len(),
        user_data.nova_base64().len(),
        user_data.compressed
    ));
    println!("user data sizes (Nova limit {NOVA_USER_DATA_LIMIT} bytes of base64):");
    for line in report {
        println!("  {line}");
    }
}

#[test]
fn nova_base64_decodes_to_the_user_data() {
    let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
    let n = node(&pki, "v1.30.2", NodeRole::Worker, "w");
    let user_data = render_user_data(&MachineBootstrap::worker(&n)).unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(user_data.nova_base64())
        .unwrap();
    assert_eq!(decoded, user_data.bytes);
}

// --- workers never receive keys --------------------------------------------------------

#[test]
fn no_worker_user_data_contains_a_private_key() {
    let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
    let mut workers = 0;
    for (name, user_data) in user_data_of_every_kind(&pki) {
        let text = plain(&user_data);
        if name.contains("workers") {
            workers += 1;
            assert!(!text.contains("PRIVATE KEY"), "{name} holds a private key");
            assert!(!text.contains(&pki.kubernetes_ca.key_pem));
            assert!(
                !text.contains("/etc/kubernetes/pki"),
                "{name} writes PKI files"
            );
        } else {
            assert!(text.contains("PRIVATE KEY"), "{name} lacks the PKI");
        }
    }
    assert_eq!(workers, 2);
}

// --- kubectl ---------------------------------------------------------------------------

#[test]
fn kubectl_reads_the_admin_kubeconfig() {
    let kubectl = kubectl();
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let pki = ClusterPki::generate("demo", now).unwrap();
    let admin: CertAndKey =
        issue_admin_client_cert(&pki, "alice", Duration::from_secs(3600), now).unwrap();
    let server = "https://203.0.113.7:6443";
    let kubeconfig =
        render_admin_kubeconfig("demo", server, &pki.kubernetes_ca.cert_pem, &admin).unwrap();
    let path = write(dir.path(), "kubeconfig", &kubeconfig);

    let view: serde_json::Value = serde_json::from_str(&run_ok(
        &kubectl,
        &["config", "view", "--kubeconfig", &path, "-o", "json"],
    ))
    .unwrap();
    assert_eq!(view["current-context"], "kaas-demo");
    assert_eq!(view["clusters"][0]["name"], "kaas-demo");
    assert_eq!(view["clusters"][0]["cluster"]["server"], server);
    assert_eq!(view["users"][0]["name"], "kaas-demo-admin");
    assert_eq!(view["contexts"][0]["context"]["user"], "kaas-demo-admin");

    // With --raw, kubectl hands back exactly the embedded PEMs.
    let raw: serde_json::Value = serde_json::from_str(&run_ok(
        &kubectl,
        &[
            "config",
            "view",
            "--kubeconfig",
            &path,
            "-o",
            "json",
            "--raw",
        ],
    ))
    .unwrap();
    let decode = |v: &serde_json::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        decode(&raw["clusters"][0]["cluster"]["certificate-authority-data"]),
        pki.kubernetes_ca.cert_pem
    );
    assert_eq!(
        decode(&raw["users"][0]["user"]["client-certificate-data"]),
        admin.cert_pem
    );
    assert_eq!(
        decode(&raw["users"][0]["user"]["client-key-data"]),
        admin.key_pem
    );

    let context = run_ok(
        &kubectl,
        &["config", "current-context", "--kubeconfig", &path],
    );
    assert_eq!(context.trim(), "kaas-demo");
}

//! What kaas hands to servers and people, checked with the tools that read it:
//! cloud-init's schema validator, openssl and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::{Server, text};

/// Runs a tool the test setup installs; fails clearly when it is missing.
fn tool(program: &str, args: &[&str], package: &str) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{program} is needed ({e}); ./dev/test.sh installs it (Debian package {package})"
            )
        })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn kubeconfig_user_data_and_keys_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, 200.0);
    let spec = write(
        dir.path(),
        "b.yaml",
        b"apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: b\nspec:\n  controlPlane:\n    replicas: 3\n    zones: [az1, az2, az3]\n  nodePools:\n    - {name: workers, replicas: 2}\n",
    );
    server.ok(&["apply", "-f", &spec, "--wait", "--timeout", "60s"]);
    let status = server.cluster("b").unwrap()["status"].clone();
    let endpoint = status["apiEndpoint"].as_str().unwrap().to_owned();
    let vip = status["infrastructure"]["loadBalancer"]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let fip = status["infrastructure"]["floatingIp"]["address"]
        .as_str()
        .unwrap()
        .to_owned();

    // kubeconfig: kubectl reads it; the client certificate is the cluster CA's, for the
    // cluster admins, and expires within the TTL.
    let kubeconfig = server.kaas(&["cluster", "kubeconfig", "b", "--ttl", "1h"]);
    assert!(kubeconfig.status.success(), "{}", text(&kubeconfig));
    let path = write(dir.path(), "kubeconfig", &kubeconfig.stdout);
    let view = tool(
        "kubectl",
        &[
            "config",
            "view",
            "--kubeconfig",
            &path,
            "--raw",
            "-o",
            "json",
        ],
        "kubernetes-client",
    );
    assert!(view.status.success(), "kubectl: {}", text(&view));
    let view: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
    // A simulated cluster's API is served on this machine; the cluster's endpoint is
    // its load balancer's floating IP in the simulated cloud.
    let server_url = view["clusters"][0]["cluster"]["server"].as_str().unwrap();
    assert!(server_url.starts_with("https://127.0.0.1:"), "{server_url}");
    assert_ne!(server_url, endpoint.as_str());
    let nodes = tool(
        "kubectl",
        &[
            "--kubeconfig",
            &path,
            "get",
            "nodes",
            "-L",
            "topology.kubernetes.io/zone",
        ],
        "kubernetes-client",
    );
    assert!(nodes.status.success(), "kubectl: {}", text(&nodes));
    let nodes = text(&nodes);
    for zone in ["az1", "az2", "az3"] {
        assert!(nodes.contains(zone), "{nodes}");
    }
    assert_eq!(nodes.matches(" Ready ").count(), 5, "{nodes}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let ca = b64
        .decode(
            view["clusters"][0]["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let cert = b64
        .decode(
            view["users"][0]["user"]["client-certificate-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let key = b64
        .decode(
            view["users"][0]["user"]["client-key-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&key).contains("PRIVATE KEY"));
    let (ca, cert) = (
        write(dir.path(), "ca.crt", &ca),
        write(dir.path(), "client.crt", &cert),
    );
    let verify = tool("openssl", &["verify", "-CAfile", &ca, &cert], "openssl");
    assert!(verify.status.success(), "openssl verify: {}", text(&verify));
    let subject = tool(
        "openssl",
        &["x509", "-noout", "-subject", "-in", &cert],
        "openssl",
    );
    assert!(
        text(&subject).contains("kubeadm:cluster-admins"),
        "{}",
        text(&subject)
    );
    let within = |secs: &str| {
        tool(
            "openssl",
            &["x509", "-noout", "-checkend", secs, "-in", &cert],
            "openssl",
        )
        .status
        .success()
    };
    assert!(within("3300"), "the certificate expires before 55 minutes");
    assert!(!within("3700"), "the certificate outlives its 1h TTL");

    // Bad TTLs are refused, naming the field.
    let out = server.kaas(&["cluster", "kubeconfig", "b", "--ttl", "30d"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("ttl"), "{}", text(&out));

    // --merge keeps what the kubeconfig had.
    let existing = write(
        dir.path(),
        "merged",
        b"apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://other:6443'}\nusers: []\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n",
    );
    let out = Command::new(common::KAAS)
        .args(["cluster", "kubeconfig", "b", "--merge"])
        .env("KAAS_SERVER", server.url())
        .env("KAAS_TOKEN", server.token())
        .env("KUBECONFIG", &existing)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let contexts = tool(
        "kubectl",
        &[
            "config",
            "get-contexts",
            "-o",
            "name",
            "--kubeconfig",
            &existing,
        ],
        "kubernetes-client",
    );
    let contexts = text(&contexts);
    assert!(
        contexts.contains("other") && contexts.contains("kaas-b"),
        "{contexts}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&existing).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // User data: valid for cloud-init; one kubeadm init in the whole cluster; workers
    // get no private key; control planes get the CAs.
    let mut inits = 0;
    let mut zones = std::collections::BTreeSet::new();
    for m in server.machines("b") {
        let name = m["metadata"]["name"].as_str().unwrap();
        let role = m["spec"]["role"].as_str().unwrap();
        let out = server.kaas(&["machine", "user-data", "b", name]);
        assert!(out.status.success(), "{}", text(&out));
        let doc = String::from_utf8(out.stdout.clone())
            .expect("user data of this size is not compressed");
        assert!(doc.starts_with("#cloud-config"), "{name}: {doc}");
        let file = write(dir.path(), &format!("{name}.yaml"), &out.stdout);
        let schema = tool(
            "cloud-init",
            &["schema", "--config-file", &file],
            "cloud-init",
        );
        assert!(
            schema.status.success(),
            "{name}: cloud-init schema: {}",
            text(&schema)
        );
        if doc.contains("kubeadm init") {
            inits += 1;
            // kubeadm issues the API server certificate for these, beside the service IP.
            let sans = &doc[doc
                .find("certSANs")
                .expect("no certSANs in the init configuration")..];
            let sans = &sans[..sans.find("kubernetesVersion").unwrap_or(sans.len())];
            for address in [&vip, &fip] {
                assert!(
                    sans.contains(address.as_str()),
                    "certSANs lacks {address}: {sans}"
                );
            }
        }
        match role {
            "worker" => {
                assert!(
                    !doc.contains("PRIVATE KEY"),
                    "{name}: a worker got a private key"
                );
                assert!(doc.contains("kubeadm join"), "{name}");
            }
            _ => {
                assert!(
                    doc.contains("/etc/kubernetes/pki/ca.key"),
                    "{name}: a control plane without its CA"
                );
                let zone = doc
                    .split("topology.kubernetes.io/zone=")
                    .nth(1)
                    .expect("no zone label");
                zones.insert(zone[..3].to_owned());
            }
        }
        assert!(
            doc.contains("topology.kubernetes.io/region=RegionOne"),
            "{name}: no region label"
        );
        assert!(
            doc.contains(endpoint.trim_start_matches("https://")),
            "{name}: not joined to {endpoint}"
        );
    }
    assert_eq!(inits, 1, "exactly one machine runs kubeadm init");
    assert_eq!(
        zones.into_iter().collect::<Vec<_>>(),
        ["az1", "az2", "az3"],
        "control planes not spread over zones"
    );
    let out = server.kaas(&["machine", "user-data", "b", "nope"]);
    assert!(!out.status.success());

    // Keys at rest: not in the database files in clear text.
    for file in ["kaas.db", "kaas.db-wal"] {
        if let Ok(bytes) = std::fs::read(data.join(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("PRIVATE KEY"),
                "{file} holds a private key in clear text"
            );
            assert!(
                !text.contains("kubeadm join"),
                "{file} holds user data in clear text"
            );
        }
    }
    server.ok(&["cluster", "delete", "b", "--wait", "--timeout", "60s"]);
}

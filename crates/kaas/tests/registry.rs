//! The integrated registry through the real binary, with Debian's `docker-registry`
//! (CNCF Distribution 2.8) wired to kaas as its token service, checked with skopeo and
//! containerd's `ctr`: tenants' credentials, their isolation enforced by the registry
//! itself, revocation, token expiry, public repositories, browsing, a cluster's own
//! pull Secret, and its nodes' mirror configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{KAAS, Server, free_port, text};
use serde_json::Value;

/// A Distribution registry configured by `kaas registry config`, killed on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(server: &Server, data_dir: &Path, port: u16, dir: &Path) -> Registry {
        let out = Command::new(KAAS)
            .args(["registry", "config", "--data-dir"])
            .arg(data_dir)
            .args([
                "--kaas-url",
                &server.url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--storage",
            ])
            .arg(dir.join("storage"))
            .output()
            .unwrap();
        assert!(out.status.success(), "kaas registry config: {}", text(&out));
        let config = dir.join("registry.yml");
        std::fs::write(&config, &out.stdout).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian's package; dev/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn image(&self, repository: &str) -> String {
        format!("docker://{}/{repository}", self.host())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small OCI image (one layer with one file) as an OCI layout, tagged `1`.
fn make_image(dir: &Path) {
    let script = r#"
import hashlib, io, json, os, sys, tarfile, gzip
out = sys.argv[1]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d, len(b)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"hello from kaas\n"
    info = tarfile.TarInfo("hello.txt"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
raw = buf.getvalue()
layer, layer_size = blob(gzip.compress(raw, mtime=0))
config, config_size = blob(json.dumps({"architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    "config": {}}).encode())
manifest, manifest_size = blob(json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]}).encode())
open(out + "/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
open(out + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
     "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "making the image: {}", text(&out));
}

fn skopeo(args: &[&str]) -> Output {
    Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo (Debian's package; dev/test.sh installs it)")
}

/// Pushes the test image to `repository:tag` with `creds` (`user:secret`).
fn push(registry: &Registry, image: &Path, creds: &str, reference: &str) -> Output {
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        &format!("oci:{}:1", image.display()),
        &registry.image(reference),
    ])
}

/// Reads the manifest of `reference` with `creds` (`None`: anonymously).
fn inspect(registry: &Registry, creds: Option<&str>, reference: &str) -> Output {
    let image = registry.image(reference);
    let mut args = vec!["inspect", "--tls-verify=false", "--raw"];
    match creds {
        Some(c) => args.extend(["--creds", c]),
        None => args.push("--no-creds"),
    }
    args.push(&image);
    skopeo(&args)
}

fn denied(out: &Output) -> bool {
    !out.status.success() && text(out).contains("denied")
}

/// `kaas registry credential create` in `tenant`: `user:secret`.
fn credential(server: &Server, tenant: &str, name: &str, access: &str) -> String {
    let out = server.kaas(&[
        "--tenant",
        tenant,
        "registry",
        "credential",
        "create",
        name,
        "--access",
        access,
    ]);
    assert!(out.status.success(), "credential create: {}", text(&out));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    format!("{tenant}+{name}:{secret}")
}

/// A raw GET of the registry with a bearer token: the status.
fn registry_get(registry: &Registry, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\r\n",
        registry.host()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response[9..12].parse().unwrap()
}

#[test]
fn the_registry_keeps_tenants_apart_and_clusters_pull_with_their_own_credential() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mirrors = dir.path().join("mirrors.yaml");
    std::fs::write(
        &mirrors,
        format!("- registry: docker.io\n  endpoints: [{{url: \"{url}\"}}]\n  fallback: false\n"),
    )
    .unwrap();
    let server = Server::start_with(
        &data_dir,
        50.0,
        &[
            "--registry-url",
            &url,
            "--registry-token-ttl",
            "2s",
            "--registry-mirrors",
            mirrors.to_str().unwrap(),
        ],
    );
    let registry = Registry::start(&server, &data_dir, port, dir.path());
    let image = dir.path().join("image");
    make_image(&image);
    for tenant in ["alpha", "beta"] {
        server.ok(&["tenant", "create", tenant]);
    }
    let alpha_push = credential(&server, "alpha", "ci", "push");
    let alpha_pull = credential(&server, "alpha", "reader", "pull");
    let beta_push = credential(&server, "beta", "ci", "push");

    // Alpha pushes and pulls its own; its pull credential cannot push.
    let out = push(&registry, &image, &alpha_push, "alpha/app:1");
    assert!(out.status.success(), "push: {}", text(&out));
    let out = inspect(&registry, Some(&alpha_pull), "alpha/app:1");
    assert!(out.status.success(), "pull: {}", text(&out));
    assert!(denied(&push(&registry, &image, &alpha_pull, "alpha/app:2")));

    // Beta is refused by the registry itself, both ways; so is an anonymous pull.
    assert!(denied(&inspect(&registry, Some(&beta_push), "alpha/app:1")));
    assert!(denied(&push(&registry, &image, &beta_push, "alpha/app:3")));
    assert!(denied(&inspect(&registry, None, "alpha/app:1")));

    // A wrong secret is refused at the token service, with kaas' reason.
    let out = inspect(&registry, Some("alpha+reader:wrong"), "alpha/app:1");
    assert!(!out.status.success());
    assert!(text(&out).contains("alpha+reader"), "{}", text(&out));

    // A token, to check expiry later: it works now.
    let basic = base64::engine::general_purpose::STANDARD.encode(&alpha_pull);
    let (status, body) = server.http(
        "GET",
        "/v2/token?service=kaas-registry&scope=repository:alpha/app:pull",
        &[("Authorization", &format!("Basic {basic}"))],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let issued = Instant::now();
    assert_eq!(
        registry_get(&registry, "/v2/alpha/app/manifests/1", &token),
        200
    );

    // A revoked credential is refused.
    server.ok(&[
        "--tenant",
        "alpha",
        "registry",
        "credential",
        "revoke",
        "reader",
    ]);
    assert!(
        !inspect(&registry, Some(&alpha_pull), "alpha/app:1")
            .status
            .success()
    );

    // Public: anyone pulls, nobody else pushes.
    server.ok(&["--tenant", "alpha", "registry", "public", "alpha/app"]);
    let out = inspect(&registry, None, "alpha/app:1");
    assert!(
        out.status.success(),
        "anonymous pull of a public repository: {}",
        text(&out)
    );
    assert!(denied(&push(&registry, &image, &beta_push, "alpha/app:4")));

    // Browsing: alpha sees its repository with the tag and its size; beta does not.
    let list = server.kaas_json(&[
        "--tenant",
        "alpha",
        "registry",
        "list",
        "alpha/app",
        "-o",
        "json",
    ]);
    let tags = list["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 1, "{list}");
    assert_eq!(tags[0]["tag"], "1");
    assert!(tags[0]["size"].as_u64().unwrap() > 100, "{list}");
    let out = server.kaas(&["--tenant", "beta", "registry", "list", "alpha/app"]);
    assert!(!out.status.success());

    // The operator's library/ is readable by every tenant.
    let operator = format!("admin:{}", server.token());
    let out = push(&registry, &image, &operator, "library/app:1");
    assert!(out.status.success(), "operator push: {}", text(&out));
    assert!(
        inspect(&registry, Some(&beta_push), "library/app:1")
            .status
            .success()
    );
    assert!(denied(&push(
        &registry,
        &image,
        &beta_push,
        "library/app:5"
    )));

    // A cluster gets its own pull credential, in every namespace.
    server.ok(&[
        "--tenant",
        "alpha",
        "cluster",
        "create",
        "shop",
        "--control-plane",
        "1",
        "--workers",
        "1",
    ]);
    let kubeconfig = dir.path().join("kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(300);
    let auth = loop {
        let out = server.kaas(&["--tenant", "alpha", "cluster", "kubeconfig", "shop"]);
        if out.status.success() {
            std::fs::write(&kubeconfig, &out.stdout).unwrap();
            let secret = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args([
                    "get",
                    "secret",
                    "kaas-registry",
                    "-n",
                    "default",
                    "-o",
                    "json",
                ])
                .output()
                .expect("kubectl (dev/test.sh installs it)");
            if secret.status.success() {
                let secret: Value = serde_json::from_slice(&secret.stdout).unwrap();
                assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
                let config = base64::engine::general_purpose::STANDARD
                    .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
                    .unwrap();
                break config;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the cluster's pull Secret never came"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let authfile = dir.path().join("auth.json");
    std::fs::write(&authfile, &auth).unwrap();
    let pull_with_secret = || {
        skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            "--authfile",
            authfile.to_str().unwrap(),
            &registry.image("alpha/app:1"),
        ])
    };
    // (Private again, so that only a credential pulls.)
    server.ok(&[
        "--tenant",
        "alpha",
        "registry",
        "public",
        "alpha/app",
        "--off",
    ]);
    let out = pull_with_secret();
    assert!(
        out.status.success(),
        "the cluster's credential pulls: {}",
        text(&out)
    );
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        authfile.to_str().unwrap(),
        &format!("oci:{}:1", image.display()),
        &registry.image("alpha/app:6"),
    ]);
    assert!(
        denied(&out),
        "the cluster's credential must not push: {}",
        text(&out)
    );
    let sa = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "serviceaccount",
            "default",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.imagePullSecrets[*].name}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sa.stdout),
        "kaas-registry",
        "{}",
        text(&sa)
    );

    // The nodes' user data carries the mirror's hosts.toml, which containerd's own
    // resolver takes: it fetches docker.io/library/app:1 from the mirror only.
    let machines =
        server.kaas_json(&["--tenant", "alpha", "machine", "list", "shop", "-o", "json"]);
    let machine = machines["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, user_data) = server.request(
        "GET",
        &format!("/v1/clusters/shop/machines/{machine}/user-data"),
        &[
            ("Authorization", &format!("Bearer {}", server.token())),
            ("Kaas-Tenant", "alpha"),
        ],
        None,
    );
    assert_eq!(status, 200, "{user_data}");
    let cloud_config: Value =
        serde_saphyr::from_str(user_data.trim_start_matches("#cloud-config\n")).unwrap();
    let hosts = cloud_config["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/containerd/certs.d/docker.io/hosts.toml")
        .unwrap_or_else(|| panic!("no hosts.toml in {user_data}"));
    let hosts_dir = dir.path().join("certs.d");
    std::fs::create_dir_all(hosts_dir.join("docker.io")).unwrap();
    std::fs::write(
        hosts_dir.join("docker.io/hosts.toml"),
        hosts["content"].as_str().unwrap(),
    )
    .unwrap();
    let out = Command::new("ctr")
        .args(["content", "fetch-object", "--hosts-dir"])
        .arg(&hosts_dir)
        .arg("docker.io/library/app:1")
        .output()
        .expect("ctr (Debian's containerd; dev/test.sh installs it)");
    assert!(out.status.success(), "ctr: {}", text(&out));
    assert!(
        !text(&out).contains("failed to decode hosts.toml"),
        "{}",
        text(&out)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["schemaVersion"], 2, "{manifest}");

    // Deleting the cluster revokes its credential.
    server.ok(&["--tenant", "alpha", "cluster", "delete", "shop"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pull_with_secret().status.success() {
        assert!(
            Instant::now() < deadline,
            "the deleted cluster's credential still pulls"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The token from before has expired (2 s, plus the registry's 60 s of leeway).
    let deadline = issued + Duration::from_secs(120);
    while registry_get(&registry, "/v2/alpha/app/manifests/1", &token) == 200 {
        assert!(Instant::now() < deadline, "an expired token is still taken");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        registry_get(&registry, "/v2/alpha/app/manifests/1", &token),
        401
    );

    // Deleting a tag (editor): it is gone from the registry.
    server.ok(&["--tenant", "alpha", "registry", "delete", "alpha/app:1"]);
    assert!(
        !inspect(&registry, Some(&alpha_push), "alpha/app:1")
            .status
            .success()
    );
}

//! Helpers of the artifact tests: charts made here, a real registry, small servers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kaas_artifacts::{Artifact, ArtifactKind, Digest};

/// A chart `.tgz` made from a small folder: Chart.yaml, values, one template, and
/// `padding` bytes of incompressible data (to make it large).
pub fn make_chart(name: &str, version: &str, padding: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"1.0\"\ndescription: A chart of the tests\ntype: application\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("values.yaml"), "replicas: 1\n").unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    if padding > 0 {
        // A simple generator: gzip cannot shrink it much.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..padding)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(dir.path().join("noise.bin"), noise).unwrap();
    }
    kaas_helm::package(dir.path()).unwrap()
}

pub fn artifact(
    kind: ArtifactKind,
    location: &str,
    name: &str,
    version: &str,
    digest: &Digest,
) -> Artifact {
    Artifact {
        addon: name.to_owned(),
        kind,
        location: location.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        digest: digest.clone(),
    }
}

pub fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address nothing listens on.
pub fn closed_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Serves `router` on a loopback port for the rest of the test.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The CNCF Distribution registry of Debian's docker-registry package, on a loopback
/// port, storing into a temporary folder; stopped when dropped.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

impl Registry {
    /// Starts one, or fails saying how to install it (never a silent skip).
    pub fn start() -> Self {
        assert!(
            Path::new(REGISTRY_BINARY).is_file(),
            "{REGISTRY_BINARY} is missing; these tests need Debian's docker-registry package: `apt-get install -y docker-registry` (dev/test.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut registry = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return registry;
            }
            if let Some(status) = registry.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(registry._dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("the registry exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `oci://127.0.0.1:PORT/PATH`.
    pub fn at(&self, path: &str) -> String {
        format!("oci://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

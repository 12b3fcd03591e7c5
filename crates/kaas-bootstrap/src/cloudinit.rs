//! cloud-init user data: the `#cloud-config` document a machine boots with.
//!
//! It writes the kubeadm configuration (and, on control-plane machines, the cluster's
//! CAs, the service-account key pair, the API server's certificate and the files the API
//! server reads), sets the kernel parameters the hardened kubelet insists on, runs
//! `kubeadm init` or `kubeadm join`, and, only if that succeeded, leaves Cluster API's
//! success marker `/run/cluster-api/bootstrap-success.complete`.
//!
//! **Invariant:** a worker's user data holds no private key: [`render_user_data`] refuses
//! to render a worker that was handed the cluster PKI.
//!
//! Nova accepts at most 65535 bytes of base64-encoded user data. A document whose
//! base64 would exceed that is gzipped (cloud-init recognizes gzip by its magic bytes);
//! one that exceeds it even then is an error.

use std::fmt;
use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::BootstrapError;
use crate::kubeadm::{NodeBootstrap, NodeRole, api_server_files, render_kubeadm_config, yaml};
use crate::pki::{CertAndKey, ClusterPki};

/// Nova's limit on the size of base64-encoded user data, in bytes.
pub const NOVA_USER_DATA_LIMIT: usize = 65535;

/// Where the kubeadm configuration is written (tmpfs: gone after the first boot).
pub const KUBEADM_CONFIG_PATH: &str = "/run/kubeadm/kubeadm.yaml";
/// Cluster API's marker of a successful bootstrap.
pub const BOOTSTRAP_SUCCESS_PATH: &str = "/run/cluster-api/bootstrap-success.complete";
/// Kernel parameters the kubelet checks with `protectKernelDefaults: true`.
pub const KUBELET_SYSCTL_PATH: &str = "/etc/sysctl.d/90-kubelet.conf";

const PKI_DIR: &str = "/etc/kubernetes/pki";
const SECRET: &str = "0600";
const PUBLIC: &str = "0644";

/// The values `protectKernelDefaults` makes the kubelet verify (it refuses to start if
/// they differ), so they are set before kubeadm starts it.
const KUBELET_SYSCTLS: &str = "\
# Written by kaas: the kubelet runs with protectKernelDefaults and checks these.
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
";

/// What one machine is bootstrapped with.
#[derive(Debug, Clone, Copy)]
pub struct MachineBootstrap<'a> {
    /// The machine's kubeadm inputs, including its role.
    pub node: &'a NodeBootstrap,
    /// For control-plane machines (and only for them): the PKI to write to disk.
    pub control_plane: Option<ControlPlaneMaterial<'a>>,
    /// Registries containerd pulls through mirrors: each gets its `hosts.toml` under
    /// `/etc/containerd/certs.d` (the CRI plugin's `config_path` in the node image).
    pub mirrors: &'a [kaas_core::registry::RegistryMirror],
}

impl<'a> MachineBootstrap<'a> {
    /// A control-plane machine (`Init` or `JoinControlPlane`).
    pub fn control_plane(
        node: &'a NodeBootstrap,
        pki: &'a ClusterPki,
        api_server: Option<&'a CertAndKey>,
    ) -> MachineBootstrap<'a> {
        MachineBootstrap {
            node,
            control_plane: Some(ControlPlaneMaterial { pki, api_server }),
            mirrors: &[],
        }
    }

    /// A worker machine.
    pub fn worker(node: &'a NodeBootstrap) -> MachineBootstrap<'a> {
        MachineBootstrap {
            node,
            control_plane: None,
            mirrors: &[],
        }
    }

    /// The same machine, pulling through `mirrors`.
    pub fn with_mirrors(self, mirrors: &'a [kaas_core::registry::RegistryMirror]) -> Self {
        Self { mirrors, ..self }
    }
}

/// The certificates and keys a control-plane machine needs before kubeadm runs.
#[derive(Debug, Clone, Copy)]
pub struct ControlPlaneMaterial<'a> {
    /// The cluster's CAs and service-account key pair.
    pub pki: &'a ClusterPki,
    /// The API server's serving certificate ([`crate::pki::issue_apiserver_cert`]), or
    /// `None` to let kubeadm issue it on the node from the CA and `certSANs` (as Cluster
    /// API does). kubeadm keeps a certificate it finds on disk only if it covers every
    /// name kubeadm wants, including the node's name and address: give one only when
    /// the node's address is known before it boots.
    pub api_server: Option<&'a CertAndKey>,
}

/// Rendered user data.
#[derive(Clone, PartialEq, Eq)]
pub struct UserData {
    /// What cloud-init reads: the `#cloud-config` document, or its gzip.
    pub bytes: Vec<u8>,
    /// Whether `bytes` is gzipped.
    pub compressed: bool,
}

impl UserData {
    /// What Nova's API receives as `user_data`: `bytes`, base64-encoded.
    pub fn nova_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserData")
            .field(
                "bytes",
                &format_args!("<{} bytes redacted>", self.bytes.len()),
            )
            .field("compressed", &self.compressed)
            .finish()
    }
}

/// Renders the `#cloud-config` user data for `machine`, gzipped if it would not fit
/// Nova's limit otherwise.
pub fn render_user_data(machine: &MachineBootstrap<'_>) -> Result<UserData, BootstrapError> {
    encode(render_cloud_config(machine)?, NOVA_USER_DATA_LIMIT)
}

#[derive(Serialize)]
struct CloudConfig<'a> {
    hostname: &'a str,
    fqdn: &'a str,
    write_files: Vec<WriteFile>,
    runcmd: Vec<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: String,
    owner: &'static str,
    permissions: &'static str,
    content: String,
}

fn file(
    path: impl Into<String>,
    permissions: &'static str,
    content: impl Into<String>,
) -> WriteFile {
    WriteFile {
        path: path.into(),
        owner: "root:root",
        permissions,
        content: content.into(),
    }
}

/// The plain `#cloud-config` document.
fn render_cloud_config(machine: &MachineBootstrap<'_>) -> Result<String, BootstrapError> {
    let node = machine.node;
    let mut write_files = Vec::new();
    match (node.role.is_control_plane(), &machine.control_plane) {
        (true, Some(material)) => write_files.extend(control_plane_files(material)),
        (true, None) => {
            return Err(BootstrapError::MissingControlPlaneMaterial {
                node: node.node_name.clone(),
            });
        }
        (false, Some(_)) => {
            return Err(BootstrapError::WorkerWithControlPlaneMaterial {
                node: node.node_name.clone(),
            });
        }
        (false, None) => {}
    }
    write_files.push(file(KUBELET_SYSCTL_PATH, PUBLIC, KUBELET_SYSCTLS));
    for mirror in machine.mirrors {
        write_files.push(file(
            crate::registry::hosts_toml_path(&mirror.registry),
            PUBLIC,
            crate::registry::render_hosts_toml(mirror),
        ));
    }
    write_files.push(file(
        KUBEADM_CONFIG_PATH,
        SECRET,
        render_kubeadm_config(node)?,
    ));

    let kubeadm = match node.role {
        NodeRole::Init => "init",
        NodeRole::JoinControlPlane | NodeRole::Worker => "join",
    };
    let config = CloudConfig {
        hostname: &node.node_name,
        fqdn: &node.node_name,
        write_files,
        runcmd: vec![
            "sysctl --system".to_string(),
            // runcmd does not stop at a failed command: signal success only after kubeadm's.
            format!(
                "kubeadm {kubeadm} --config {KUBEADM_CONFIG_PATH} && mkdir -p /run/cluster-api && echo success > {BOOTSTRAP_SUCCESS_PATH}"
            ),
        ],
    };
    Ok(format!("#cloud-config\n{}", yaml("cloud-config", &config)?))
}

/// kubeadm's file layout under `/etc/kubernetes/pki`, and the API server's configuration.
fn control_plane_files(material: &ControlPlaneMaterial<'_>) -> Vec<WriteFile> {
    let pki = material.pki;
    let pem = |name: &str, permissions, content: &str| {
        file(format!("{PKI_DIR}/{name}"), permissions, content)
    };
    let mut files = vec![
        pem("ca.crt", PUBLIC, &pki.kubernetes_ca.cert_pem),
        pem("ca.key", SECRET, &pki.kubernetes_ca.key_pem),
        pem("etcd/ca.crt", PUBLIC, &pki.etcd_ca.cert_pem),
        pem("etcd/ca.key", SECRET, &pki.etcd_ca.key_pem),
        pem("front-proxy-ca.crt", PUBLIC, &pki.front_proxy_ca.cert_pem),
        pem("front-proxy-ca.key", SECRET, &pki.front_proxy_ca.key_pem),
        pem("sa.key", SECRET, &pki.service_account.key_pem),
        pem("sa.pub", PUBLIC, &pki.service_account.public_pem),
    ];
    if let Some(api_server) = material.api_server {
        files.push(pem("apiserver.crt", PUBLIC, &api_server.cert_pem));
        files.push(pem("apiserver.key", SECRET, &api_server.key_pem));
    }
    files.extend(
        api_server_files()
            .into_iter()
            .map(|f| file(f.path, SECRET, f.content)),
    );
    files
}

/// The length of the base64 (padded) encoding of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// `document` as is if its base64 fits `limit`, else gzipped if that fits, else an error.
fn encode(document: String, limit: usize) -> Result<UserData, BootstrapError> {
    if base64_len(document.len()) <= limit {
        return Ok(UserData {
            bytes: document.into_bytes(),
            compressed: false,
        });
    }
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(document.as_bytes())
        .map_err(BootstrapError::Compress)?;
    let gzipped = encoder.finish().map_err(BootstrapError::Compress)?;
    let bytes = base64_len(gzipped.len());
    if bytes > limit {
        return Err(BootstrapError::UserDataTooLarge { bytes, limit });
    }
    Ok(UserData {
        bytes: gzipped,
        compressed: true,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::kubeadm::KubernetesVersion;
    use crate::pki::{ApiServerSans, ca_cert_hash, issue_apiserver_cert};
    use crate::token::BootstrapToken;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::Value;
    use std::io::Read;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, 15, 0, 0).unwrap()
    }

    fn node(pki: &ClusterPki, role: NodeRole, name: &str) -> NodeBootstrap {
        NodeBootstrap {
            cluster_name: "demo".to_string(),
            kubernetes_version: KubernetesVersion::parse("v1.33.1").unwrap(),
            control_plane_endpoint: "203.0.113.7:6443".to_string(),
            pod_cidr: "192.168.0.0/16".to_string(),
            service_cidr: "10.96.0.0/12".to_string(),
            node_name: name.to_string(),
            role,
            zone: Some("nova".to_string()),
            region: None,
            token: BootstrapToken {
                id: "abcdef".to_string(),
                secret: "0123456789abcdef".to_string(),
                expires: now() + chrono::Duration::hours(2),
            },
            ca_cert_hash: ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap(),
            cert_sans: vec!["192.0.2.10".to_string(), "203.0.113.7".to_string()],
        }
    }

    fn sans(name: &str) -> ApiServerSans {
        ApiServerSans {
            service_cidr: "10.96.0.0/12".to_string(),
            load_balancer_address: "192.0.2.10".to_string(),
            floating_ip: Some("203.0.113.7".to_string()),
            extra: vec![name.to_string(), "10.0.0.11".to_string()],
        }
    }

    /// The document with every secret and every random value replaced by a placeholder.
    fn redacted(
        text: &str,
        pki: &ClusterPki,
        api_server: Option<&CertAndKey>,
        node: &NodeBootstrap,
    ) -> String {
        let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
        let mut text = text.to_string();
        let mut pems = vec![
            (&pki.kubernetes_ca.cert_pem, "<kubernetes CA certificate>"),
            (&pki.kubernetes_ca.key_pem, "<kubernetes CA key>"),
            (&pki.etcd_ca.cert_pem, "<etcd CA certificate>"),
            (&pki.etcd_ca.key_pem, "<etcd CA key>"),
            (&pki.front_proxy_ca.cert_pem, "<front-proxy CA certificate>"),
            (&pki.front_proxy_ca.key_pem, "<front-proxy CA key>"),
            (&pki.service_account.key_pem, "<service-account key>"),
            (
                &pki.service_account.public_pem,
                "<service-account public key>",
            ),
        ];
        if let Some(cert) = api_server {
            pems.push((&cert.cert_pem, "<API server certificate>"));
            pems.push((&cert.key_pem, "<API server key>"));
        }
        for (pem, placeholder) in pems {
            text = text.replace(&indent(pem), placeholder);
        }
        text.replace(&node.token.token(), "<token>")
            .replace(&node.ca_cert_hash, "<ca-cert-hash>")
    }

    fn cloud_config(user_data: &UserData) -> Value {
        assert!(!user_data.compressed);
        let text = std::str::from_utf8(&user_data.bytes).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        serde_saphyr::from_str(text).unwrap()
    }

    fn paths(config: &Value) -> Vec<(String, String)> {
        config["write_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["owner"], "root:root");
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["permissions"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn control_plane_gets_the_pki_in_kubeadm_layout() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let api_server = issue_apiserver_cert(&pki, &sans("demo-cp-0"), now()).unwrap();
        let n = node(&pki, NodeRole::Init, "demo-cp-0");
        let user_data = render_user_data(&MachineBootstrap::control_plane(
            &n,
            &pki,
            Some(&api_server),
        ))
        .unwrap();
        let config = cloud_config(&user_data);
        assert_eq!(config["hostname"], "demo-cp-0");
        assert_eq!(config["fqdn"], "demo-cp-0");
        let expected = [
            ("/etc/kubernetes/pki/ca.crt", "0644"),
            ("/etc/kubernetes/pki/ca.key", "0600"),
            ("/etc/kubernetes/pki/etcd/ca.crt", "0644"),
            ("/etc/kubernetes/pki/etcd/ca.key", "0600"),
            ("/etc/kubernetes/pki/front-proxy-ca.crt", "0644"),
            ("/etc/kubernetes/pki/front-proxy-ca.key", "0600"),
            ("/etc/kubernetes/pki/sa.key", "0600"),
            ("/etc/kubernetes/pki/sa.pub", "0644"),
            ("/etc/kubernetes/pki/apiserver.crt", "0644"),
            ("/etc/kubernetes/pki/apiserver.key", "0600"),
            ("/etc/kubernetes/admission/admission.yaml", "0600"),
            ("/etc/kubernetes/admission/eventratelimit.yaml", "0600"),
            ("/etc/kubernetes/audit/policy.yaml", "0600"),
            ("/etc/sysctl.d/90-kubelet.conf", "0644"),
            ("/run/kubeadm/kubeadm.yaml", "0600"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
        assert_eq!(paths(&config), expected);
        // Contents survive the YAML round trip byte for byte.
        let files = config["write_files"].as_array().unwrap();
        assert_eq!(files[1]["content"], pki.kubernetes_ca.key_pem.as_str());
        assert_eq!(files[8]["content"], api_server.cert_pem.as_str());
        assert_eq!(
            files[14]["content"],
            render_kubeadm_config(&n).unwrap().as_str()
        );
        assert_eq!(
            config["runcmd"],
            serde_json::json!([
                "sysctl --system",
                "kubeadm init --config /run/kubeadm/kubeadm.yaml && mkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete",
            ])
        );
    }

    #[test]
    fn workers_get_no_pki_and_no_private_key() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let n = node(&pki, NodeRole::Worker, "demo-workers-0");
        let user_data = render_user_data(&MachineBootstrap::worker(&n)).unwrap();
        let text = String::from_utf8(user_data.bytes.clone()).unwrap();
        assert!(!text.contains("PRIVATE KEY"));
        let config = cloud_config(&user_data);
        let files: Vec<_> = paths(&config).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            files,
            ["/etc/sysctl.d/90-kubelet.conf", "/run/kubeadm/kubeadm.yaml"]
        );
        assert!(
            config["runcmd"][1]
                .as_str()
                .unwrap()
                .starts_with("kubeadm join --config")
        );
    }

    #[test]
    fn roles_and_material_must_agree() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let api_server = issue_apiserver_cert(&pki, &sans("x"), now()).unwrap();
        let worker = node(&pki, NodeRole::Worker, "w");
        assert!(matches!(
            render_user_data(&MachineBootstrap::control_plane(
                &worker,
                &pki,
                Some(&api_server)
            )),
            Err(BootstrapError::WorkerWithControlPlaneMaterial { .. })
        ));
        for role in [NodeRole::Init, NodeRole::JoinControlPlane] {
            let cp = node(&pki, role, "cp");
            assert!(matches!(
                render_user_data(&MachineBootstrap::worker(&cp)),
                Err(BootstrapError::MissingControlPlaneMaterial { .. })
            ));
        }
    }

    #[test]
    fn snapshot_control_plane_join() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let api_server = issue_apiserver_cert(&pki, &sans("demo-cp-1"), now()).unwrap();
        let n = node(&pki, NodeRole::JoinControlPlane, "demo-cp-1");
        let user_data = render_user_data(&MachineBootstrap::control_plane(
            &n,
            &pki,
            Some(&api_server),
        ))
        .unwrap();
        let text = String::from_utf8(user_data.bytes).unwrap();
        let text = redacted(&text, &pki, Some(&api_server), &n);
        assert!(!text.contains("-----BEGIN"), "unredacted PEM left:\n{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn snapshot_worker() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let n = node(&pki, NodeRole::Worker, "demo-workers-0");
        let user_data = render_user_data(&MachineBootstrap::worker(&n)).unwrap();
        let text = String::from_utf8(user_data.bytes).unwrap();
        insta::assert_snapshot!(redacted(&text, &pki, None, &n));
    }

    #[test]
    fn oversized_documents_are_gzipped_then_refused() {
        let document = format!("#cloud-config\nruncmd:\n{}", "- echo hello\n".repeat(1000));
        let plain = encode(document.clone(), NOVA_USER_DATA_LIMIT).unwrap();
        assert!(!plain.compressed);
        assert_eq!(plain.bytes, document.as_bytes());

        let small_limit = base64_len(document.len()) - 1;
        let gzipped = encode(document.clone(), small_limit).unwrap();
        assert!(gzipped.compressed);
        assert_eq!(&gzipped.bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(gzipped.nova_base64().len() <= small_limit);
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(gzipped.bytes.as_slice())
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, document);

        match encode(document, 100) {
            Err(BootstrapError::UserDataTooLarge { bytes, limit }) => {
                assert_eq!(limit, 100);
                assert!(bytes > 100);
            }
            other => panic!("expected UserDataTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn base64_length_is_exact() {
        for n in 0..100 {
            assert_eq!(base64_len(n), BASE64.encode(vec![0u8; n]).len());
        }
    }

    #[test]
    fn debug_redacts_user_data() {
        let user_data = UserData {
            bytes: b"#cloud-config\nsecret".to_vec(),
            compressed: false,
        };
        let debug = format!("{user_data:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("20 bytes"));
    }
}

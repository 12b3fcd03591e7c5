//! What a machine makes of the user data it boots with, as cloud-init and kubeadm read
//! it: the inverse of [`crate::cloudinit::render_user_data`]. Nova's base64 is decoded,
//! gzip (recognized by its magic bytes, as cloud-init does) unpacked, the files
//! cloud-init would write are read back, and the kubeadm configuration among them says
//! the node's name, whether it runs `kubeadm init` or joins (as a control plane or a
//! worker), the endpoint it inits or joins the cluster at, and, for `init`, the
//! cluster's own configuration. A control plane's files carry the cluster's CAs and
//! service-account key in kubeadm's layout.
//!
//! Whatever reads a real cloud's user data (a simulation that boots machines as real
//! ones would) finds here what kubeadm on the machine would find.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::read::GzDecoder;
use serde_json::Value;

use crate::BootstrapError;
use crate::cloudinit::KUBEADM_CONFIG_PATH;
use crate::kubeadm::NodeRole;
use crate::pki::{CertAndKey, ClusterPki, KeyPairPem};

/// The most a gzipped document may unpack to: Nova's 64 KiB hold no more than this
/// (kaas's documents compress by a factor of 3 or 4).
const MAX_UNPACKED: u64 = 4 << 20;

/// A machine's bootstrap as its user data says it.
#[derive(Clone, PartialEq, Eq)]
pub struct BootedMachine {
    /// `nodeRegistration.name`.
    pub node_name: String,
    pub role: NodeRole,
    /// `host:port` of the cluster's API: `controlPlaneEndpoint` for `init`, the
    /// discovery's `apiServerEndpoint` for a join.
    pub endpoint: String,
    /// For `init`: the cluster's configuration.
    pub cluster: Option<BootedCluster>,
    /// For control planes: the CAs and the service-account key cloud-init writes.
    pub pki: Option<ClusterPki>,
}

impl fmt::Debug for BootedMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PKI's own Debug redacts its keys.
        f.debug_struct("BootedMachine")
            .field("node_name", &self.node_name)
            .field("role", &self.role)
            .field("endpoint", &self.endpoint)
            .field("cluster", &self.cluster)
            .field("pki", &self.pki)
            .finish()
    }
}

/// What `kubeadm init` reads from its ClusterConfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootedCluster {
    /// `clusterName`.
    pub name: String,
    /// `kubernetesVersion`.
    pub kubernetes_version: String,
    /// `networking.serviceSubnet`.
    pub service_cidr: String,
    /// `apiServer.certSANs`: the names the API server's certificate carries besides the
    /// node's own.
    pub cert_sans: Vec<String>,
}

fn unreadable(reason: impl Into<String>) -> BootstrapError {
    BootstrapError::ReadUserData {
        reason: reason.into(),
    }
}

/// Reads `user_data` as Nova hands it to the machine (base64).
pub fn read_user_data(user_data: &str) -> Result<BootedMachine, BootstrapError> {
    let bytes = BASE64
        .decode(user_data.trim())
        .map_err(|_| unreadable("not base64"))?;
    let document = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        GzDecoder::new(bytes.as_slice())
            .take(MAX_UNPACKED)
            .read_to_string(&mut text)
            .map_err(|_| unreadable("not gzipped UTF-8"))?;
        text
    } else {
        String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8"))?
    };
    read_cloud_config(&document)
}

/// Reads a `#cloud-config` document.
pub fn read_cloud_config(document: &str) -> Result<BootedMachine, BootstrapError> {
    if !document.starts_with("#cloud-config") {
        return Err(unreadable("not a #cloud-config document"));
    }
    let config: Value =
        serde_saphyr::from_str(document).map_err(|_| unreadable("#cloud-config is not YAML"))?;
    let files: BTreeMap<&str, &str> = config["write_files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| Some((f["path"].as_str()?, f["content"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let kubeadm = files
        .get(KUBEADM_CONFIG_PATH)
        .ok_or_else(|| unreadable(format!("no {KUBEADM_CONFIG_PATH}")))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(kubeadm)
        .map_err(|_| unreadable(format!("{KUBEADM_CONFIG_PATH} is not YAML")))?;
    let of_kind = |kind: &str| documents.iter().find(|d| d["kind"] == kind);
    let text = |v: &Value, what: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| unreadable(format!("{KUBEADM_CONFIG_PATH}: no {what}")))
    };
    let (role, node, endpoint, cluster) = if let Some(init) = of_kind("InitConfiguration") {
        let cluster = of_kind("ClusterConfiguration")
            .ok_or_else(|| unreadable("InitConfiguration without ClusterConfiguration"))?;
        let booted = BootedCluster {
            name: text(&cluster["clusterName"], "clusterName")?,
            kubernetes_version: text(&cluster["kubernetesVersion"], "kubernetesVersion")?,
            service_cidr: text(
                &cluster["networking"]["serviceSubnet"],
                "networking.serviceSubnet",
            )?,
            cert_sans: cluster["apiServer"]["certSANs"]
                .as_array()
                .map(|sans| {
                    sans.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        (
            NodeRole::Init,
            text(&init["nodeRegistration"]["name"], "nodeRegistration.name")?,
            text(&cluster["controlPlaneEndpoint"], "controlPlaneEndpoint")?,
            Some(booted),
        )
    } else if let Some(join) = of_kind("JoinConfiguration") {
        let role = if join.get("controlPlane").is_some_and(|c| !c.is_null()) {
            NodeRole::JoinControlPlane
        } else {
            NodeRole::Worker
        };
        (
            role,
            text(&join["nodeRegistration"]["name"], "nodeRegistration.name")?,
            text(
                &join["discovery"]["bootstrapToken"]["apiServerEndpoint"],
                "discovery.bootstrapToken.apiServerEndpoint",
            )?,
            None,
        )
    } else {
        return Err(unreadable(format!(
            "{KUBEADM_CONFIG_PATH} has neither an InitConfiguration nor a JoinConfiguration"
        )));
    };
    let pki = if role.is_control_plane() {
        Some(read_pki(&files)?)
    } else {
        None
    };
    Ok(BootedMachine {
        node_name: node,
        role,
        endpoint,
        cluster,
        pki,
    })
}

/// The cluster's CAs and service-account key from kubeadm's layout.
fn read_pki(files: &BTreeMap<&str, &str>) -> Result<ClusterPki, BootstrapError> {
    let file = |name: &str| {
        files
            .get(format!("/etc/kubernetes/pki/{name}").as_str())
            .map(|c| (*c).to_owned())
            .ok_or_else(|| {
                unreadable(format!(
                    "a control plane without /etc/kubernetes/pki/{name}"
                ))
            })
    };
    let pair = |name: &str| -> Result<CertAndKey, BootstrapError> {
        Ok(CertAndKey {
            cert_pem: file(&format!("{name}.crt"))?,
            key_pem: file(&format!("{name}.key"))?,
        })
    };
    Ok(ClusterPki {
        kubernetes_ca: pair("ca")?,
        etcd_ca: pair("etcd/ca")?,
        front_proxy_ca: pair("front-proxy-ca")?,
        service_account: KeyPairPem {
            key_pem: file("sa.key")?,
            public_pem: file("sa.pub")?,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::cloudinit::{MachineBootstrap, UserData, render_user_data};
    use crate::kubeadm::{KubernetesVersion, NodeBootstrap};
    use crate::pki::ca_cert_hash;
    use crate::token::BootstrapToken;

    fn node(pki: &ClusterPki, version: &str, role: NodeRole, name: &str) -> NodeBootstrap {
        let now = Utc.with_ymd_and_hms(2025, 3, 14, 15, 0, 0).unwrap();
        NodeBootstrap {
            cluster_name: "demo".to_owned(),
            kubernetes_version: KubernetesVersion::parse(version).unwrap(),
            control_plane_endpoint: "203.0.113.7:6443".to_owned(),
            pod_cidr: "192.168.0.0/16".to_owned(),
            service_cidr: "10.96.0.0/12".to_owned(),
            node_name: name.to_owned(),
            role,
            zone: None,
            region: None,
            token: BootstrapToken::generate(now, std::time::Duration::from_secs(3600)).unwrap(),
            ca_cert_hash: ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap(),
            cert_sans: vec!["10.0.0.5".to_owned(), "203.0.113.7".to_owned()],
        }
    }

    fn render(pki: &ClusterPki, node: &NodeBootstrap) -> UserData {
        let machine = if node.role.is_control_plane() {
            MachineBootstrap::control_plane(node, pki, None)
        } else {
            MachineBootstrap::worker(node)
        };
        render_user_data(&machine).unwrap()
    }

    #[test]
    fn an_init_reads_back_as_rendered_in_both_kubeadm_api_versions() {
        let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
        for version in ["v1.30.4", "v1.36.0"] {
            let n = node(&pki, version, NodeRole::Init, "demo-cp-0");
            let booted = read_user_data(&render(&pki, &n).nova_base64()).unwrap();
            assert_eq!(booted.node_name, "demo-cp-0");
            assert_eq!(booted.role, NodeRole::Init);
            assert_eq!(booted.endpoint, "203.0.113.7:6443");
            assert_eq!(
                booted.cluster,
                Some(BootedCluster {
                    name: "demo".to_owned(),
                    kubernetes_version: version.to_owned(),
                    service_cidr: "10.96.0.0/12".to_owned(),
                    cert_sans: vec!["10.0.0.5".to_owned(), "203.0.113.7".to_owned()],
                })
            );
            assert_eq!(booted.pki.as_ref(), Some(&pki));
        }
    }

    #[test]
    fn joins_read_back_with_their_role_and_only_control_planes_with_the_pki() {
        let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
        let cp = node(&pki, "v1.36.0", NodeRole::JoinControlPlane, "demo-cp-1");
        let booted = read_user_data(&render(&pki, &cp).nova_base64()).unwrap();
        assert_eq!(booted.role, NodeRole::JoinControlPlane);
        assert_eq!(booted.endpoint, "203.0.113.7:6443");
        assert_eq!(booted.cluster, None);
        assert_eq!(booted.pki.as_ref(), Some(&pki));
        let worker = node(&pki, "v1.36.0", NodeRole::Worker, "demo-workers-0");
        let booted = read_user_data(&render(&pki, &worker).nova_base64()).unwrap();
        assert_eq!(booted.node_name, "demo-workers-0");
        assert_eq!(booted.role, NodeRole::Worker);
        assert_eq!(booted.pki, None);
    }

    #[test]
    fn gzipped_user_data_reads_as_the_plain_one() {
        let pki = ClusterPki::generate("demo", Utc::now()).unwrap();
        let n = node(&pki, "v1.36.0", NodeRole::Init, "demo-cp-0");
        let plain = render(&pki, &n);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain.bytes).unwrap();
        let gzipped = UserData {
            bytes: gz.finish().unwrap(),
            compressed: true,
        };
        assert_eq!(
            read_user_data(&gzipped.nova_base64()).unwrap(),
            read_user_data(&plain.nova_base64()).unwrap()
        );
    }

    #[test]
    fn what_is_not_kaas_user_data_is_refused_without_quoting_it() {
        for (data, why) in [
            ("not base64!", "not base64"),
            (&BASE64.encode("#!/bin/sh\necho secret"), "#cloud-config"),
            (
                &BASE64.encode("#cloud-config\nwrite_files: []\n"),
                KUBEADM_CONFIG_PATH,
            ),
        ] {
            let e = read_user_data(data).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}

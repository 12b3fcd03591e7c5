//! A simulated workload cluster served over TLS on 127.0.0.1, its test PKI, and a
//! client for it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::Utc;
use kaas_kube::{ClusterAccess, WorkloadClient};
use kaas_kube_sim::{ApiServer, NodeSpec, router, serve_tls};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, date_time_ymd,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA, the serving certificate it issued for 127.0.0.1, and an admin client
/// certificate (CN admin, O system:masters).
pub struct TestPki {
    pub ca: Pem,
    pub server: Pem,
    pub admin: Pem,
}

fn name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        dn.push(kind.clone(), *value);
    }
    dn
}

fn valid(params: &mut CertificateParams) {
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2044, 1, 1);
}

fn ca(cn: &str) -> (Pem, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&[(DnType::CommonName, cn)]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    valid(&mut params);
    let cert = params.self_signed(&key).unwrap();
    let pem = Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    (pem, Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'_, KeyPair>, subject: &[(DnType, &str)], server: bool) -> Pem {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(subject);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if server {
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    params.use_authority_key_identifier_extension = true;
    valid(&mut params);
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A fresh PKI: one CA issuing both the server and the client certificate.
pub fn pki() -> TestPki {
    let (ca, issuer) = ca("kaas-kube-test-ca");
    TestPki {
        server: leaf(&issuer, &[(DnType::CommonName, "kube-apiserver")], true),
        admin: leaf(
            &issuer,
            &[
                (DnType::OrganizationName, "system:masters"),
                (DnType::CommonName, "kaas"),
            ],
            false,
        ),
        ca,
    }
}

/// A simulated cluster served over TLS until dropped.
pub struct Cluster {
    pub api: Arc<ApiServer>,
    pub pki: TestPki,
    pub access: ClusterAccess,
    pub client: WorkloadClient,
    server: JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Cluster {
    /// Runs the simulated controllers a few times, as time passes.
    pub fn settle(&self) {
        for _ in 0..5 {
            self.api.tick(Utc::now());
        }
    }

    /// The object as the API server has it.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        self.api.get(api_version, kind, namespace, name)
    }
}

/// A simulated cluster with `nodes`, served over TLS on 127.0.0.1, and a client for it.
pub async fn cluster(nodes: &[NodeSpec]) -> Cluster {
    let pki = pki();
    let api = Arc::new(ApiServer::with_version("v1.35.2"));
    api.set_nodes(nodes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cert, key, ca) = (
        pki.server.cert.clone(),
        pki.server.key.clone(),
        pki.ca.cert.clone(),
    );
    let app = router(Arc::clone(&api));
    let server = tokio::spawn(async move {
        serve_tls(listener, app, &cert, &key, &ca, std::future::pending())
            .await
            .unwrap();
    });
    let access = ClusterAccess {
        url: format!("https://{addr}"),
        ca_cert_pem: pki.ca.cert.clone(),
        client_cert_pem: pki.admin.cert.clone(),
        client_key_pem: pki.admin.key.clone(),
    };
    let client = WorkloadClient::new(&access).unwrap();
    Cluster {
        api,
        pki,
        access,
        client,
        server,
    }
}

/// A Ready worker node.
pub fn node(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        provider_id: format!("openstack:///{name}"),
        ready: true,
        kubelet_version: "v1.35.2".to_owned(),
        labels: BTreeMap::new(),
        ..NodeSpec::default()
    }
}

//! A simulated workload cluster served over TLS on 127.0.0.1, its test PKI, and a
//! client for it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kaas_bootstrap::{
    ApiServerSans, CertAndKey, ClusterPki, issue_admin_client_cert, issue_apiserver_cert,
};
use kaas_kube::{ClusterAccess, WorkloadClient};
use kaas_kube_sim::{ApiServer, NodeSpec, router, serve_tls};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA, the serving certificate it issued for 127.0.0.1, and an admin client
/// certificate (CN kaas, O kubeadm:cluster-admins).
pub struct TestPki {
    /// All of the cluster's CAs (etcd's too).
    pub cluster: ClusterPki,
    pub ca: Pem,
    pub server: Pem,
    pub admin: Pem,
}

impl From<CertAndKey> for Pem {
    fn from(c: CertAndKey) -> Self {
        Pem {
            cert: c.cert_pem,
            key: c.key_pem,
        }
    }
}

/// A fresh PKI, as kaas makes one for a cluster: its Kubernetes CA, the API server's
/// serving certificate (127.0.0.1 among its names) and an admin client certificate.
pub fn pki() -> TestPki {
    let now = Utc::now();
    let cluster = ClusterPki::generate("kaas-kube-test", now).unwrap();
    let sans = ApiServerSans {
        service_cidr: "10.96.0.0/12".to_owned(),
        load_balancer_address: Ipv4Addr::LOCALHOST.to_string(),
        floating_ip: None,
        extra: Vec::new(),
    };
    TestPki {
        server: issue_apiserver_cert(&cluster, &sans, now).unwrap().into(),
        admin: issue_admin_client_cert(&cluster, "kaas", Duration::from_secs(3600), now)
            .unwrap()
            .into(),
        ca: cluster.kubernetes_ca.clone().into(),
        cluster,
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
        tls_server_name: None,
        ca_cert_pem: pki.ca.cert.clone(),
        client_cert_pem: pki.admin.cert.clone(),
        client_key_pem: pki.admin.key.clone(),
        proxy_url: None,
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

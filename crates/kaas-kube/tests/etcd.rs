//! kaas's etcd code (member list, the quorum guard, member remove) through a simulated
//! API server's port-forward to the control planes' etcd pods, with the same cases
//! against two etcds: a real three-member etcd cluster (Debian's `etcd-server`, on
//! loopback, TLS from a kaas-made etcd CA, client certificates required) and the
//! stand-in the simulation serves. The stand-in is trusted where these cases pass
//! against both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use kaas_bootstrap::{ClusterPki, issue_etcd_client_cert, issue_etcd_server_cert};
use kaas_cloud::WorkloadError;
use kaas_kube::{EtcdAccess, etcd_pod};
use kaas_kube_sim::{EtcdMembers, NodeSpec, PodPorts, PodStream, StandInEtcd};
use serde_json::json;

const NODES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];

/// The etcd behind the pods' port-forwards, and stopping one member.
trait Etcd: PodPorts {
    fn stop(&self, node: &str);
}

// ---- the real etcd ------------------------------------------------------------

struct RealEtcd {
    /// Client port of each node's member.
    client_ports: BTreeMap<String, u16>,
    members: Mutex<BTreeMap<String, Child>>,
    _dir: tempfile::TempDir,
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        for child in self.members.lock().unwrap().values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

impl RealEtcd {
    /// Three members on loopback, peers and clients over TLS with certificates from the
    /// etcd CA of `pki`, client certificates required.
    fn start(pki: &ClusterPki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.crt", &pki.etcd_ca.cert_pem);
        let ports: Vec<(String, u16, u16)> = NODES
            .iter()
            .map(|n| (n.to_string(), free_port(), free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .map(|(n, _, peer)| format!("{n}=https://127.0.0.1:{peer}"))
            .collect();
        let mut members = BTreeMap::new();
        for (name, client, peer) in &ports {
            let cert =
                issue_etcd_server_cert(pki, name, &["127.0.0.1".to_owned()], Utc::now()).unwrap();
            let crt = write(dir.path(), &format!("{name}.crt"), &cert.cert_pem);
            let key = write(dir.path(), &format!("{name}.key"), &cert.key_pem);
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            let child = Command::new("etcd")
                .args([
                    "--name",
                    name,
                    "--data-dir",
                    dir.path().join(name).to_str().unwrap(),
                    "--listen-client-urls",
                    &format!("https://127.0.0.1:{client}"),
                    "--advertise-client-urls",
                    &format!("https://127.0.0.1:{client}"),
                    "--listen-peer-urls",
                    &format!("https://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls",
                    &format!("https://127.0.0.1:{peer}"),
                    "--initial-cluster",
                    &initial.join(","),
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "kaas-kube-test",
                    "--client-cert-auth",
                    "--trusted-ca-file",
                    &ca,
                    "--cert-file",
                    &crt,
                    "--key-file",
                    &key,
                    "--peer-client-cert-auth",
                    "--peer-trusted-ca-file",
                    &ca,
                    "--peer-cert-file",
                    &crt,
                    "--peer-key-file",
                    &key,
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{}", free_port()),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("etcd from Debian's etcd-server runs (dev/test.sh installs it)");
            members.insert(name.clone(), child);
        }
        RealEtcd {
            client_ports: ports.iter().map(|(n, c, _)| (n.clone(), *c)).collect(),
            members: Mutex::new(members),
            _dir: dir,
        }
    }
}

impl PodPorts for RealEtcd {
    fn connect(
        &self,
        _namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Box<dyn PodStream>, String>> {
        let target = NODES
            .iter()
            .find(|n| etcd_pod(n) == pod && port == kaas_kube::ETCD_CLIENT_PORT)
            .and_then(|n| self.client_ports.get(*n).copied());
        Box::pin(async move {
            let port = target.ok_or("no such port")?;
            let stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Box::new(stream) as Box<dyn PodStream>)
        })
    }
}

impl Etcd for RealEtcd {
    fn stop(&self, node: &str) {
        if let Some(mut child) = self.members.lock().unwrap().remove(node) {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

// ---- the stand-in -------------------------------------------------------------

struct Membership(Mutex<Vec<String>>);

impl EtcdMembers for Membership {
    fn members(&self) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let names = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(names) })
    }

    fn remove(&self, name: String) -> BoxFuture<'static, Result<(), String>> {
        self.0.lock().unwrap().retain(|n| *n != name);
        Box::pin(async { Ok(()) })
    }
}

struct StandIn {
    etcd: StandInEtcd,
    stopped: Mutex<HashSet<String>>,
}

impl StandIn {
    fn start(pki: &ClusterPki) -> Self {
        let cert = issue_etcd_server_cert(pki, "etcd", &[], Utc::now()).unwrap();
        let members = Membership(Mutex::new(NODES.iter().map(|n| n.to_string()).collect()));
        let etcd = StandInEtcd::start(
            Arc::new(members),
            &cert.cert_pem,
            &cert.key_pem,
            &pki.etcd_ca.cert_pem,
        )
        .unwrap();
        StandIn {
            etcd,
            stopped: Mutex::default(),
        }
    }
}

impl PodPorts for StandIn {
    fn connect(
        &self,
        _namespace: &str,
        pod: &str,
        _port: u16,
    ) -> BoxFuture<'static, Result<Box<dyn PodStream>, String>> {
        let stopped = self
            .stopped
            .lock()
            .unwrap()
            .iter()
            .any(|n| etcd_pod(n) == pod);
        let connected = if stopped {
            Err("connection refused".to_owned())
        } else {
            self.etcd
                .connect()
                .map(|s| Box::new(s) as Box<dyn PodStream>)
        };
        Box::pin(async move { connected })
    }
}

impl Etcd for StandIn {
    fn stop(&self, node: &str) {
        self.stopped.lock().unwrap().insert(node.to_owned());
    }
}

// ---- the cases ----------------------------------------------------------------

fn control_plane(name: &str) -> NodeSpec {
    let mut node = common::node(name);
    node.labels.insert(
        "node-role.kubernetes.io/control-plane".to_owned(),
        String::new(),
    );
    node
}

/// A cluster whose control planes run the etcd pods that `etcd` answers for.
async fn cluster_with(
    make: impl FnOnce(&ClusterPki) -> Arc<dyn Etcd>,
) -> (common::Cluster, Arc<dyn Etcd>, EtcdAccess) {
    let nodes: Vec<NodeSpec> = NODES.iter().map(|n| control_plane(n)).collect();
    let cluster = common::cluster(&nodes).await;
    let etcd = make(&cluster.pki.cluster);
    let ports: Arc<dyn PodPorts> = Arc::new(Forward(etcd.clone()));
    cluster.api.set_pod_ports(ports);
    for node in NODES {
        cluster
            .api
            .apply(
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": etcd_pod(node), "namespace": "kube-system"},
                    "spec": {"nodeName": node, "containers": [{"name": "etcd", "image": "etcd"}]},
                }),
                "test",
            )
            .unwrap();
    }
    cluster.settle();
    let client = issue_etcd_client_cert(
        &cluster.pki.cluster,
        "kaas",
        Duration::from_secs(3600),
        Utc::now(),
    )
    .unwrap();
    let access = EtcdAccess {
        ca_cert_pem: cluster.pki.cluster.etcd_ca.cert_pem.clone(),
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
    };
    (cluster, etcd, access)
}

/// `Arc<dyn Etcd>` as the API server's `PodPorts`.
struct Forward(Arc<dyn Etcd>);

impl PodPorts for Forward {
    fn connect(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Box<dyn PodStream>, String>> {
        self.0.connect(namespace, pod, port)
    }
}

async fn names(cluster: &common::Cluster, access: &EtcdAccess) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .client
        .etcd_members(access, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    names
}

/// Waits until every member is listed by name (a real cluster elects and publishes
/// its members' names shortly after it starts).
async fn until_all_started(cluster: &common::Cluster, access: &EtcdAccess) {
    for _ in 0..300 {
        if let Ok(members) = cluster.client.etcd_members(access, None).await
            && members.len() == NODES.len()
            && members.iter().all(|m| !m.name.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the etcd members never all started");
}

async fn the_cases(cluster: common::Cluster, etcd: Arc<dyn Etcd>, access: EtcdAccess) {
    until_all_started(&cluster, &access).await;

    // Members are listed through a port-forward, named after their nodes.
    assert_eq!(names(&cluster, &access).await, NODES);
    let members = cluster.client.etcd_members(&access, None).await.unwrap();
    assert!(members.iter().all(|m| m.id != 0 && !m.learner));

    // A leaving control plane's member is removed (through another node's etcd),
    // and removing it again is no error. A real etcd refuses to reconfigure until its
    // peers have been connected for a while ("unhealthy cluster"): a passing refusal
    // that kaas's controller retries, and so does this test.
    let mut attempts = 0;
    loop {
        match cluster.client.remove_etcd_member(&access, "cp-3").await {
            Ok(()) => break,
            Err(WorkloadError::Unreachable { message, .. })
                if message.contains("unhealthy cluster") && attempts < 200 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("removing cp-3's member: {e:?}"),
        }
    }
    assert_eq!(names(&cluster, &access).await, ["cp-1", "cp-2"]);
    cluster
        .client
        .remove_etcd_member(&access, "cp-3")
        .await
        .unwrap();

    // With cp-2's etcd down, removing cp-1 would leave no member that answers: refused,
    // saying why, and nothing is removed.
    etcd.stop("cp-2");
    match cluster.client.remove_etcd_member(&access, "cp-1").await {
        Err(WorkloadError::Api { message }) => {
            assert!(message.contains("quorum"), "{message}");
            assert!(message.contains("cp-2"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let left = cluster
        .client
        .etcd_members(&access, Some("cp-2"))
        .await
        .unwrap();
    let mut left: Vec<String> = left.into_iter().map(|m| m.name).collect();
    left.sort();
    assert_eq!(left, ["cp-1", "cp-2"]);

    // An etcd whose certificate the given CA did not issue is not trusted: unreachable.
    let err = cluster
        .client
        .etcd_members(
            &EtcdAccess {
                ca_cert_pem: cluster.pki.ca.cert.clone(),
                ..access.clone()
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WorkloadError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn against_real_etcd() {
    let (cluster, etcd, access) =
        cluster_with(|pki| Arc::new(RealEtcd::start(pki)) as Arc<dyn Etcd>).await;
    the_cases(cluster, etcd, access).await;
}

#[tokio::test]
async fn against_the_stand_in() {
    let (cluster, etcd, access) =
        cluster_with(|pki| Arc::new(StandIn::start(pki)) as Arc<dyn Etcd>).await;
    the_cases(cluster, etcd, access).await;
}

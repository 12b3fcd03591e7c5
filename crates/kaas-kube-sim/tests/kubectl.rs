//! The real kubectl against a simulated API server over TLS with a client certificate.
//!
//! Needs `kubectl` on the PATH (Debian: `kubernetes-client`); the test fails without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kaas_kube_sim::{ApiServer, NodeSpec, Taint, router, serve_tls};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  colour: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: csi-cinder
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: cinder.csi.openstack.org
allowVolumeExpansion: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
"#;

const WIDGET: &str = r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: demo
spec:
  size: 3
"#;

/// A CRD and an object of its kind in one file.
const GADGETS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {kind: Gadget, plural: gadgets}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: example.com/v1alpha1
kind: Gadget
metadata:
  name: g1
spec:
  colour: red
"#;

fn node(name: &str, zone: &str, control_plane: bool) -> NodeSpec {
    let mut labels = BTreeMap::from([
        ("topology.kubernetes.io/zone".to_owned(), zone.to_owned()),
        (
            "topology.kubernetes.io/region".to_owned(),
            "region-1".to_owned(),
        ),
    ]);
    let mut taints = Vec::new();
    if control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            String::new(),
        );
        taints.push(Taint::control_plane());
    }
    NodeSpec {
        name: name.to_owned(),
        provider_id: format!("openstack:///{name}-server"),
        ready: true,
        labels,
        kubelet_version: "v1.33.1".to_owned(),
        internal_ip: Some("10.0.0.10".to_owned()),
        taints,
    }
}

struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(server: &str, pki: &common::TestPki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let b64 = |pem: &str| STANDARD.encode(pem);
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: admin@sim\n  context: {{cluster: sim, user: admin}}\ncurrent-context: admin@sim\n",
            b64(&pki.ca.cert),
            b64(&pki.admin.cert),
            b64(&pki.admin.key),
        );
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).unwrap();
        Self {
            kubeconfig: path,
            dir,
        }
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl must be installed for this test (Debian: kubernetes-client)")
    }

    /// Runs kubectl and returns its output; fails the test if kubectl does.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }
}

/// The whitespace-separated rows of kubectl's table output, header included.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_a_simulated_api_server() {
    let pki = common::pki();
    let api = Arc::new(ApiServer::with_version("v1.33.1"));
    api.set_nodes(&[
        node("cp-0", "zone-a", true),
        node("worker-0", "zone-a", false),
        node("worker-1", "zone-b", false),
    ]);
    let controllers = api.spawn_controllers(Duration::from_millis(200));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(Arc::clone(&api));
    let (cert, key, ca) = (
        pki.server.cert.clone(),
        pki.server.key.clone(),
        pki.ca.cert.clone(),
    );
    let server = tokio::spawn(async move {
        serve_tls(listener, app, &cert, &key, &ca, async {
            let _ = stopped.await;
        })
        .await
    });
    let kubectl = Kubectl::new(&format!("https://127.0.0.1:{port}"), &pki);

    let version = kubectl.json(&["version", "-o", "json"]).await;
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.33.1");

    // The seeded nodes, with their zones.
    let nodes = kubectl.json(&["get", "nodes", "-o", "json"]).await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let zones: BTreeMap<&str, &str> = items
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap(),
                n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        zones,
        BTreeMap::from([
            ("cp-0", "zone-a"),
            ("worker-0", "zone-a"),
            ("worker-1", "zone-b")
        ])
    );
    assert_eq!(
        items[1]["spec"]["providerID"],
        "openstack:///worker-0-server"
    );
    let table = kubectl.ok(&["get", "nodes"]).await;
    assert_eq!(
        rows(&table)[0],
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    assert_eq!(rows(&table)[1][..3], ["cp-0", "Ready", "control-plane"]);
    assert_eq!(rows(&table)[2][4], "v1.33.1");

    // Server-side apply of several kinds, a CRD among them; then an object of the CRD's
    // kind.
    let manifest = kubectl.write("manifest.yaml", MANIFEST);
    let applied = kubectl
        .ok(&["apply", "--server-side", "-f", &manifest])
        .await;
    assert_eq!(
        applied.lines().collect::<Vec<_>>(),
        [
            "namespace/demo serverside-applied",
            "configmap/settings serverside-applied",
            "deployment.apps/web serverside-applied",
            "storageclass.storage.k8s.io/csi-cinder serverside-applied",
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied",
        ]
    );
    let widget = kubectl.write("widget.yaml", WIDGET);
    let applied = kubectl.ok(&["apply", "--server-side", "-f", &widget]).await;
    assert_eq!(applied.trim(), "widget.example.com/w1 serverside-applied");
    // Both in one file, now that the CRD exists: a second run changes nothing and works.
    let both = kubectl.write("both.yaml", &format!("{MANIFEST}---\n{WIDGET}"));
    let applied = kubectl.ok(&["apply", "--server-side", "-f", &both]).await;
    assert_eq!(applied.lines().count(), 6);

    // A new CRD and its object in one file: as with a real API server, kubectl maps all
    // objects before applying any, so the first run applies the CRD and reports the
    // object's kind unknown; the second run applies the object.
    let gadgets = kubectl.write("gadgets.yaml", GADGETS);
    let first = kubectl
        .run(&["apply", "--server-side", "-f", &gadgets])
        .await;
    if !first.status.success() {
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            stderr.contains("ensure CRDs are installed first"),
            "{stderr}"
        );
        kubectl
            .ok(&["apply", "--server-side", "-f", &gadgets])
            .await;
    }
    let gadget = kubectl.json(&["get", "gadgets", "g1", "-o", "json"]).await;
    assert_eq!(gadget["spec"]["colour"], "red");

    // The simulated controllers make the deployment available; `kubectl wait` watches.
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "-n",
            "demo",
            "--timeout=30s",
        ])
        .await;
    let deployments = kubectl.ok(&["get", "deploy", "-A"]).await;
    let rows_ = rows(&deployments);
    assert_eq!(
        rows_[0],
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ]
    );
    assert_eq!(rows_[1][..5], ["demo", "web", "2/2", "2", "2"]);

    let classes = kubectl.ok(&["get", "storageclass"]).await;
    let rows_ = rows(&classes);
    assert_eq!(rows_[0][..3], ["NAME", "PROVISIONER", "RECLAIMPOLICY"]);
    assert_eq!(
        rows_[1][..4],
        [
            "csi-cinder",
            "(default)",
            "cinder.csi.openstack.org",
            "Delete"
        ]
    );

    // The pods run on the workers: the control plane's taint keeps them off it.
    let pods = kubectl.json(&["get", "pods", "-A", "-o", "json"]).await;
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod["status"]["phase"], "Running");
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .unwrap()
                .starts_with("worker-")
        );
    }
    let table = kubectl.ok(&["get", "pods", "-A"]).await;
    assert!(
        rows(&table)[1..]
            .iter()
            .all(|r| r[0] == "demo" && r[2] == "1/1" && r[3] == "Running"),
        "{table}"
    );

    // Custom resources print their columns; apply recorded kubectl as the manager.
    let widgets = kubectl.ok(&["get", "wd", "-n", "demo"]).await;
    assert_eq!(rows(&widgets)[0], ["NAME", "SIZE", "AGE"]);
    assert_eq!(rows(&widgets)[1][..2], ["w1", "3"]);
    let settings = kubectl
        .json(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "demo",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(
        settings["metadata"]["managedFields"][0]["manager"],
        "kubectl"
    );
    assert_eq!(
        settings["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );

    // Draining a worker evicts its pod; the deployment brings it back on the other one.
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_owned();
    let drained = kubectl
        .ok(&["drain", &node, "--ignore-daemonsets", "--timeout=30s"])
        .await;
    assert!(
        drained.contains(&format!("node/{node} drained")),
        "{drained}"
    );
    kubectl
        .ok(&[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=2",
            "deployment/web",
            "-n",
            "demo",
            "--timeout=30s",
        ])
        .await;
    let on_drained = kubectl
        .json(&[
            "get",
            "pods",
            "-A",
            "-o",
            "json",
            "--field-selector",
            &format!("spec.nodeName={node}"),
        ])
        .await;
    assert!(on_drained["items"].as_array().unwrap().is_empty());
    let table = kubectl.ok(&["get", "node", &node]).await;
    assert_eq!(rows(&table)[1][1], "Ready,SchedulingDisabled");

    // Delete.
    let deleted = kubectl.ok(&["delete", "-f", &widget]).await;
    // kubectl 1.37 goes on to name the namespace ("… deleted from demo namespace").
    assert!(
        deleted
            .trim()
            .starts_with("widget.example.com \"w1\" deleted"),
        "{deleted}"
    );
    let none = kubectl.run(&["get", "widgets", "-n", "demo"]).await;
    assert!(none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found in demo namespace.")
    );
    kubectl.ok(&["delete", "namespace", "demo"]).await;
    let gone = kubectl
        .run(&["get", "configmap", "settings", "-n", "demo"])
        .await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));

    controllers.abort();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

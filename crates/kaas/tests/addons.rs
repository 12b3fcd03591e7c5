//! A simulated cluster seen through kubectl (a client nobody here wrote): its nodes, the
//! addons of its stack ready to use, server-side apply of one's own objects, and an
//! upgrade to a stack that changes one addon and drops another.
//!
//! Needs `kubectl` on the PATH (Debian: `kubernetes-client`), and the official Python
//! Kubernetes client (`kubernetes` from PyPI) importable by `python3` (or by
//! `$KAAS_TEST_PYTHON`), as `dev/test.sh` installs both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use kaas_core::stack::ClusterStack;
use serde_json::Value;

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl must be installed for this test (Debian: kubernetes-client)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn items(&self, args: &[&str]) -> Vec<Value> {
        self.json(args)["items"].as_array().unwrap().clone()
    }

    /// The `namespace/name` of each item listed.
    fn names(&self, args: &[&str]) -> Vec<String> {
        self.items(args).iter().map(name).collect()
    }
}

/// The kubeconfig `kaas cluster kubeconfig` hands out, in a file.
fn kubectl_for(server: &Server, cluster: &str, dir: &Path) -> Kubectl {
    let out = server.kaas(&["cluster", "kubeconfig", cluster, "--ttl", "1h"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let kubeconfig = dir.join(format!("{cluster}.kubeconfig"));
    std::fs::write(&kubeconfig, &out.stdout).unwrap();
    Kubectl { kubeconfig }
}

fn name(o: &Value) -> String {
    let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
    format!("{ns}/{}", o["metadata"]["name"].as_str().unwrap())
}

fn image(o: &Value) -> String {
    o["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every Deployment and DaemonSet in the cluster has all its pods ready.
fn assert_workloads_ready(kubectl: &Kubectl) {
    for d in kubectl.items(&["get", "deployments", "-A"]) {
        let want = d["spec"]["replicas"].as_u64().unwrap();
        assert!(want > 0, "{}", name(&d));
        assert_eq!(
            d["status"]["availableReplicas"].as_u64(),
            Some(want),
            "deployment {} is not available: {}",
            name(&d),
            d["status"]
        );
    }
    for d in kubectl.items(&["get", "daemonsets", "-A"]) {
        let desired = d["status"]["desiredNumberScheduled"].as_u64().unwrap();
        assert!(desired > 0, "daemonset {} runs nowhere", name(&d));
        assert_eq!(
            d["status"]["numberReady"].as_u64(),
            Some(desired),
            "daemonset {}: {}",
            name(&d),
            d["status"]
        );
    }
}

fn condition(cluster: &Value, type_: &str) -> Value {
    cluster["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Creates cluster `name` from `scs-1.36`, one control plane and two workers, with the
/// ingress and cert-manager addons, and waits until it is Available.
fn create_with_addons(server: &Server, name: &str) {
    server.ok(&[
        "cluster",
        "create",
        name,
        "--stack",
        "local-1.36",
        "--control-plane",
        "1",
        "--workers",
        "2",
        "--addons",
        "ingress,cert-manager",
        "--acme-email",
        "ops@example.org",
        "--wait",
    ]);
}

/// The Python interpreter with the official Kubernetes client: `$KAAS_TEST_PYTHON`, or
/// `python3` on the PATH (dev/test.sh puts its test environment first there).
fn python_with_kubernetes_client() -> String {
    let python = std::env::var("KAAS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        probe.status.success(),
        "{python} cannot import the Kubernetes client (`kubernetes` from PyPI): run \
         dev/test.sh, which installs it, or set KAAS_TEST_PYTHON\n{}",
        common::text(&probe)
    );
    eprintln!(
        "Python Kubernetes client {}",
        String::from_utf8_lossy(&probe.stdout).trim()
    );
    python
}

/// The official Python client (a third client, after kubectl and kube-rs) against a
/// simulated cluster: version, discovery, CRUD, watch, server-side apply, eviction,
/// custom resources and the addons' kinds, each held to what a real API server
/// answers (crates/kaas/tests/python/kube_client.py says what each check asks).
#[test]
fn the_official_python_client_works_against_a_simulated_cluster() {
    let python = python_with_kubernetes_client();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 100.0);
    // An ACME e-mail that is not an address is refused before anything is stored.
    let out = server.kaas(&[
        "cluster",
        "create",
        "bad",
        "--addons",
        "cert-manager",
        "--acme-email",
        "x\"@y.z",
    ]);
    let said = common::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("(400)") && said.contains("spec.addons.certManager.acmeEmail"),
        "{said}"
    );
    assert!(server.cluster("bad").is_none());

    create_with_addons(&server, "py");
    let version = server.cluster("py").unwrap()["status"]["kubernetesVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let kubectl = kubectl_for(&server, "py", dir.path());

    // Each machine but the first control plane joined with a bootstrap token of its
    // own, registered in the cluster before its server was created and deleted once
    // its node was Ready: none is left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = server.ok(&["cluster", "events", "py"]);
        let registered = events.matches("it joins with bootstrap token").count();
        let deleted = events.matches("Deleted bootstrap token").count();
        let left = kubectl.names(&[
            "get",
            "secrets",
            "-n",
            "kube-system",
            "-l",
            "kaas.dev/machine",
        ]);
        if (registered, deleted) == (2, 2) && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tokens registered {registered}, deleted {deleted}, left {left:?}:\n{events}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kube_client.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&kubectl.kubeconfig)
        .arg(&version)
        .args(["1", "2"])
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let said = common::text(&out);
    assert!(
        out.status.success(),
        "the Python client's checks failed:\n{said}"
    );
    let passed: Vec<&str> = said.lines().filter_map(|l| l.strip_prefix("ok ")).collect();
    assert_eq!(
        passed,
        [
            "version",
            "discovery",
            "nodes",
            "namespaced_crud",
            "invalid_objects_are_refused_with_a_status",
            "watch_sees_changes",
            "server_side_apply_and_dynamic_client",
            "eviction_honours_disruption_budgets",
            "custom_resources",
            "the_addons_kinds",
            "cleanup",
        ],
        "{said}"
    );
}

/// The Gateway API option: the standard CRDs, NGINX Gateway Fabric with its
/// GatewayClass, a data plane that speaks PROXY protocol with its load balancer and
/// trusts it from the nodes only, kaas's shared Gateway, and cert-manager solving
/// through that Gateway.
#[test]
fn a_cluster_with_the_gateway_api_gets_a_class_a_gateway_and_issuers_that_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 100.0);
    server.ok(&[
        "cluster",
        "create",
        "gw",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--addons",
        "gateway,cert-manager",
        "--acme-email",
        "ops@example.org",
        "--wait",
    ]);
    let cluster = server.cluster("gw").unwrap();
    assert_eq!(
        cluster["spec"]["stack"], "local-1.36",
        "the server's default"
    );
    assert_eq!(condition(&cluster, "AddonsReady")["status"], "True");
    let kubectl = kubectl_for(&server, "gw", dir.path());
    assert_workloads_ready(&kubectl);
    let deployments = kubectl.names(&["get", "deployments", "-A"]);
    for want in [
        "nginx-gateway/nginx-gateway-fabric",
        "cert-manager/cert-manager",
        "cert-manager/cert-manager-cainjector",
        "cert-manager/cert-manager-webhook",
    ] {
        assert!(
            deployments.contains(&want.to_owned()),
            "{want}: {deployments:?}"
        );
    }
    assert!(
        !kubectl.ok(&["get", "ingressclasses"]).contains("nginx"),
        "no ingress was asked for"
    );
    // The standard channel's CRDs, with their schemas.
    for crd in [
        "gatewayclasses.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
    ] {
        let crd = kubectl.json(&["get", "crd", crd]);
        assert_eq!(
            crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
            "standard"
        );
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(schema["properties"]["spec"].is_object(), "{crd:#}");
    }
    let class = kubectl.json(&["get", "gatewayclass", "nginx"]);
    assert_eq!(
        class["spec"]["controllerName"],
        "gateway.nginx.org/nginx-gateway-controller"
    );
    let proxy = kubectl.json(&[
        "get",
        "nginxproxy",
        "-n",
        "nginx-gateway",
        "nginx-gateway-fabric-proxy-config",
    ]);
    assert_eq!(
        proxy["spec"]["rewriteClientIP"],
        serde_json::json!({
            "mode": "ProxyProtocol",
            "setIPRecursively": true,
            "trustedAddresses": [{"type": "CIDR", "value": "10.0.0.0/20"}],
        })
    );
    assert_eq!(
        proxy["spec"]["kubernetes"]["service"]["patches"][0]["value"]["metadata"]["annotations"]["loadbalancer.openstack.org/proxy-protocol"],
        "true"
    );
    let gateway = kubectl.json(&["get", "gateway", "-n", "nginx-gateway", "shared"]);
    assert_eq!(gateway["spec"]["gatewayClassName"], "nginx");
    assert_eq!(gateway["spec"]["listeners"][0]["port"], 80);
    // cert-manager solves HTTP-01 through the shared Gateway, with its Gateway API
    // support on.
    let issuers = kubectl.items(&["get", "clusterissuers"]);
    assert_eq!(issuers.len(), 2, "{issuers:#?}");
    for issuer in &issuers {
        let parent =
            &issuer["spec"]["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"]["parentRefs"][0];
        assert_eq!(parent["name"], "shared", "{issuer:#}");
        assert_eq!(parent["namespace"], "nginx-gateway", "{issuer:#}");
    }
    let config = kubectl.json(&["get", "configmap", "-n", "cert-manager", "cert-manager"]);
    assert!(
        config["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("enableGatewayAPI: true"),
        "{config:#}"
    );
}

/// ingress-nginx as a stack of an older kaas installed it (abridged: what the move
/// touches), served as a manifest.
const LEGACY_INGRESS_NGINX: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: ingress-nginx}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ingress-nginx}}
    spec:
      containers:
        - {name: controller, image: "registry.k8s.io/ingress-nginx/controller:v1.13.3"}
---
apiVersion: v1
kind: Service
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  type: LoadBalancer
  selector: {app.kubernetes.io/name: ingress-nginx}
  ports: [{name: http, port: 80}]
"#;

/// Serves `body` over plain HTTP on a loopback port, to any path, until the test ends.
fn serve(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A cluster on a stack with the retired ingress-nginx moves to F5's controller by an
/// ordinary stack upgrade: the IngressClass `nginx` keeps its name and gets the new
/// controller (the API server will not change a class's controller: kaas replaces it),
/// the cluster's Ingress objects stay with their class, the old controller is pruned.
#[test]
fn a_cluster_moves_from_ingress_nginx_to_the_maintained_controller_by_a_stack_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let port = serve(LEGACY_INGRESS_NGINX);
    let digest = kaas_artifacts::Digest::of(LEGACY_INGRESS_NGINX.as_bytes());
    let stacks = dir.path().join("stacks");
    common::copy_local_stacks(&stacks);
    let mut legacy = ClusterStack::parse("local-1.35", &common::local_stack("local-1.35")).unwrap();
    legacy.metadata.name = "legacy-1.35".to_owned();
    legacy.spec.upgrades_from = vec![];
    let ingress = legacy
        .spec
        .addons
        .iter_mut()
        .find(|a| a.name == "nginx-ingress")
        .unwrap();
    *ingress = serde_saphyr::from_str(&format!(
        "name: ingress-nginx\nversion: v1.13.3\noptional: true\nnamespace: ingress-nginx\n\
         manifest: {{url: \"http://127.0.0.1:{port}/deploy.yaml\", digest: \"{digest}\"}}\n"
    ))
    .unwrap();
    std::fs::create_dir_all(stacks.join("legacy-1.35")).unwrap();
    std::fs::write(
        stacks.join("legacy-1.35/stack.yaml"),
        serde_saphyr::to_string(&legacy).unwrap(),
    )
    .unwrap();
    let mut next = ClusterStack::parse("local-1.36", &common::local_stack("local-1.36")).unwrap();
    next.spec.upgrades_from.push("legacy-1.35".to_owned());
    std::fs::write(
        stacks.join("local-1.36/stack.yaml"),
        serde_saphyr::to_string(&next).unwrap(),
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        100.0,
        &["--stacks-dir", stacks.to_str().unwrap()],
    );
    server.ok(&[
        "cluster",
        "create",
        "mig",
        "--stack",
        "legacy-1.35",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--addons",
        "ingress",
        "--wait",
    ]);
    let kubectl = kubectl_for(&server, "mig", dir.path());
    let class = kubectl.json(&["get", "ingressclass", "nginx"]);
    assert_eq!(class["spec"]["controller"], "k8s.io/ingress-nginx");
    let app = dir.path().join("ingress.yaml");
    std::fs::write(
        &app,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: apps}\n\
         spec:\n  ingressClassName: nginx\n  rules:\n  - host: web.example.org\n    http:\n      \
         paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n",
    )
    .unwrap();
    kubectl.ok(&["apply", "--server-side", "-f", app.to_str().unwrap()]);

    server.ok(&[
        "cluster",
        "upgrade",
        "mig",
        "--stack",
        "local-1.36",
        "--wait",
    ]);
    let cluster = server.cluster("mig").unwrap();
    assert_eq!(cluster["status"]["addons"]["stack"], "local-1.36");
    assert_eq!(condition(&cluster, "AddonsReady")["status"], "True");
    let class = kubectl.json(&["get", "ingressclass", "nginx"]);
    assert_eq!(class["spec"]["controller"], "nginx.org/ingress-controller");
    let ingress = kubectl.json(&["get", "ingress", "-n", "apps", "web"]);
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_workloads_ready(&kubectl);
    let deployments = kubectl.names(&["get", "deployments", "-A"]);
    assert!(
        deployments.contains(&"nginx-ingress/nginx-ingress-controller".to_owned()),
        "{deployments:?}"
    );
    assert!(
        !deployments.iter().any(|d| d.starts_with("ingress-nginx/")),
        "{deployments:?}"
    );
    let events = server.ok(&["cluster", "events", "mig"]);
    let applied = events
        .lines()
        .find(|l| l.contains("Applied the addons of stack local-1.36"))
        .unwrap_or_else(|| panic!("{events}"));
    assert!(
        applied.contains("replaced IngressClass nginx (a changed field is immutable)"),
        "{applied}"
    );
    for pruned in [
        "Deployment ingress-nginx/ingress-nginx-controller",
        "Service ingress-nginx/ingress-nginx-controller",
        "Namespace ingress-nginx",
    ] {
        assert!(applied.contains(pruned), "{pruned}: {applied}");
    }
}

#[test]
fn addons_are_ready_through_kubectl_and_follow_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    // An operator's stack for 1.37 that drops metrics-server: upgrading to it must
    // prune what metrics-server had in the cluster. It sits beside the local stacks.
    let stacks = dir.path().join("stacks");
    common::copy_local_stacks(&stacks);
    let mut lean = ClusterStack::parse("local-1.37", &common::local_stack("local-1.37")).unwrap();
    lean.metadata.name = "lean-1.37".to_owned();
    let before = lean.spec.addons.len();
    lean.spec.addons.retain(|a| a.name != "metrics-server");
    assert_eq!(lean.spec.addons.len(), before - 1);
    std::fs::create_dir_all(stacks.join("lean-1.37")).unwrap();
    std::fs::write(
        stacks.join("lean-1.37/stack.yaml"),
        serde_saphyr::to_string(&lean).unwrap(),
    )
    .unwrap();
    let mut server = Server::start_with(
        &dir.path().join("data"),
        100.0,
        &["--stacks-dir", stacks.to_str().unwrap()],
    );

    let started = Instant::now();
    create_with_addons(&server, "web");
    let available_after = started.elapsed();
    let cluster = server.cluster("web").unwrap();
    let addons_ready = condition(&cluster, "AddonsReady");
    assert_eq!(addons_ready["status"], "True", "{cluster:#}");
    for addon in [
        "cilium",
        "openstack-cloud-controller-manager",
        "cinder-csi",
        "metrics-server",
        "nginx-ingress",
        "cert-manager",
    ] {
        let item = cluster["status"]["addons"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == addon)
            .unwrap_or_else(|| panic!("no {addon} in {:#}", cluster["status"]["addons"]));
        assert_eq!(item["ready"], true, "{item}");
    }
    eprintln!("Available with its addons after {available_after:?}");

    let kubectl = kubectl_for(&server, "web", dir.path());

    // Nodes, with their zone and region.
    let nodes = kubectl.items(&["get", "nodes"]);
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    for node in &nodes {
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["topology.kubernetes.io/zone"], "nova", "{labels}");
        assert_eq!(
            labels["topology.kubernetes.io/region"], "RegionOne",
            "{labels}"
        );
        assert!(
            node["spec"]["providerID"]
                .as_str()
                .unwrap()
                .starts_with("openstack:///")
        );
    }
    let table = kubectl.ok(&["get", "nodes"]);
    assert_eq!(table.matches(" Ready ").count(), 3, "{table}");

    // The addons' workloads run and are ready.
    assert_workloads_ready(&kubectl);
    // Every component of each addon's chart.
    let expected: [(&str, &[&str]); 6] = [
        (
            "deployments",
            &[
                "kube-system/cilium-operator",
                "kube-system/metrics-server",
                "kube-system/openstack-cinder-csi-controllerplugin",
                "nginx-ingress/nginx-ingress-controller",
                "cert-manager/cert-manager",
                "cert-manager/cert-manager-cainjector",
                "cert-manager/cert-manager-webhook",
            ],
        ),
        (
            "daemonsets",
            &[
                "kube-system/cilium",
                "kube-system/openstack-cinder-csi-nodeplugin",
                "kube-system/openstack-cloud-controller-manager",
            ],
        ),
        ("jobs", &["cert-manager/cert-manager-startupapicheck"]),
        ("apiservices", &["/v1beta1.metrics.k8s.io"]),
        (
            "validatingwebhookconfigurations",
            &["/cert-manager-webhook"],
        ),
        ("csidrivers", &["/cinder.csi.openstack.org"]),
    ];
    for (kind, wanted) in expected {
        let found = kubectl.names(&["get", kind, "-A"]);
        for want in wanted {
            assert!(found.contains(&(*want).to_owned()), "{want}: {found:?}");
        }
    }

    // Exactly one default StorageClass.
    let defaults: Vec<String> = kubectl
        .items(&["get", "storageclasses"])
        .iter()
        .filter(|sc| {
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        })
        .map(name)
        .collect();
    assert_eq!(defaults, ["/csi-cinder-sc-delete"]);
    assert!(kubectl.ok(&["get", "storageclasses"]).contains("(default)"));

    // The CRDs, with their schemas.
    for crd in [
        "clusterissuers.cert-manager.io",
        "ciliumnetworkpolicies.cilium.io",
        "virtualservers.k8s.nginx.org",
    ] {
        let crd = kubectl.json(&["get", "crd", crd]);
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(schema["type"], "object", "{crd:#}");
        assert!(schema["properties"]["spec"].is_object(), "{crd:#}");
    }

    // Ingress behind the load balancer with PROXY protocol, both ends: IngressClass
    // nginx of F5's controller, which trusts PROXY headers from the nodes only.
    let class = kubectl.json(&["get", "ingressclass", "nginx"]);
    assert_eq!(class["spec"]["controller"], "nginx.org/ingress-controller");
    let service = kubectl.json(&[
        "get",
        "service",
        "-n",
        "nginx-ingress",
        "nginx-ingress-controller",
    ]);
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["metadata"]["annotations"]["loadbalancer.openstack.org/proxy-protocol"], "true",
        "{service:#}"
    );
    let config = kubectl.json(&["get", "configmap", "-n", "nginx-ingress", "nginx-ingress"]);
    assert_eq!(config["data"]["proxy-protocol"], "true", "{config:#}");
    assert_eq!(config["data"]["real-ip-header"], "proxy_protocol");
    assert_eq!(config["data"]["set-real-ip-from"], "10.0.0.0/20");

    // The cloud controller's cloud.conf: the cluster's own application credential.
    let cloud_conf = kubectl.json(&["get", "secret", "-n", "kube-system", "cloud-config"]);
    let conf = base64_decode(cloud_conf["data"]["cloud.conf"].as_str().unwrap());
    assert!(conf.contains("application-credential-id"), "{conf}");
    let uid = cluster["metadata"]["uid"].as_str().unwrap();
    let ccm = kubectl.json(&[
        "get",
        "daemonset",
        "-n",
        "kube-system",
        "openstack-cloud-controller-manager",
    ]);
    assert!(
        ccm.to_string().contains(&format!("--cluster-name={uid}")),
        "the cloud controller must name load balancers after the cluster uid: {ccm:#}"
    );
    // The chart's own image: its appVersion.
    assert!(image(&ccm).ends_with(":v1.36.0"), "{}", image(&ccm));

    // cert-manager's ClusterIssuers, with the spec's e-mail, solving through the
    // ingress.
    let issuers = kubectl.items(&["get", "clusterissuers"]);
    let mut issuer_names: Vec<String> = issuers.iter().map(name).collect();
    issuer_names.sort();
    assert_eq!(
        issuer_names,
        ["/letsencrypt-production", "/letsencrypt-staging"]
    );
    assert!(
        issuers
            .iter()
            .all(|i| i["spec"]["acme"]["email"] == "ops@example.org")
    );
    assert!(issuers.iter().all(|i| i["spec"]["acme"]["solvers"]
        == serde_json::json!([{"http01": {"ingress": {"ingressClassName": "nginx"}}}])));

    // `kaas stack render` prints what the cluster got: the same objects kubectl sees,
    // the cluster's own values in them, its credential's secret not among them.
    let rendered = server.ok(&["stack", "render", "local-1.36", "--cluster", "web"]);
    let objects: Vec<Value> =
        serde_saphyr::from_multiple(&rendered).unwrap_or_else(|e| panic!("{e}:\n{rendered}"));
    let refs: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                name(o).trim_start_matches('/')
            )
        })
        .collect();
    for want in [
        "Deployment nginx-ingress/nginx-ingress-controller",
        "DaemonSet kube-system/cilium",
        "ClusterIssuer letsencrypt-production",
        "CustomResourceDefinition clusterissuers.cert-manager.io",
        "Job cert-manager/cert-manager-startupapicheck",
    ] {
        assert!(refs.contains(&want.to_owned()), "{want}: {refs:#?}");
    }
    for (kind, listed) in [("deployments", "Deployment"), ("daemonsets", "DaemonSet")] {
        for found in kubectl.names(&["get", kind, "-A"]) {
            assert!(
                refs.contains(&format!("{listed} {found}")),
                "{found}: {refs:#?}"
            );
        }
    }
    assert!(rendered.contains(&format!("--cluster-name={uid}")));
    let secret = kubectl.json(&["get", "secret", "-n", "kube-system", "cloud-config"]);
    let conf = base64_decode(secret["data"]["cloud.conf"].as_str().unwrap());
    let secret_line = conf
        .lines()
        .find(|l| l.starts_with("application-credential-secret"))
        .unwrap();
    let real = secret_line.split('"').nth(1).unwrap();
    let shown = objects
        .iter()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "cloud-config")
        .unwrap();
    let shown = base64_decode(shown["data"]["cloud.conf"].as_str().unwrap());
    assert!(real.len() > 8 && !shown.contains(real), "{secret_line}");
    assert!(
        shown.contains("application-credential-secret = \"<kept by kaas>\""),
        "{shown}"
    );

    // kaas applied all of it server-side as field manager kaas, in its apply set.
    let metrics = kubectl.json(&[
        "get",
        "deployment",
        "-n",
        "kube-system",
        "metrics-server",
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = metrics["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kaas"), "{managers:?}");
    assert!(
        metrics["metadata"]["labels"]["applyset.kubernetes.io/part-of"]
            .as_str()
            .is_some_and(|id| id.starts_with("applyset-")),
        "{:#}",
        metrics["metadata"]["labels"]
    );

    // One's own objects, applied server-side with kubectl, run on the workers.
    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, APP).unwrap();
    let applied = kubectl.ok(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]);
    assert!(
        applied.contains("deployment.apps/hello serverside-applied"),
        "{applied}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hello = kubectl.json(&["get", "deployment", "-n", "apps", "hello"]);
        if hello["status"]["availableReplicas"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "hello never ran: {hello:#}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Upgrade to the lean stack: metrics-server is pruned, one's own objects stay.
    server.ok(&[
        "cluster",
        "upgrade",
        "web",
        "--stack",
        "lean-1.37",
        "--wait",
    ]);
    let cluster = server.cluster("web").unwrap();
    assert_eq!(
        cluster["status"]["addons"]["stack"], "lean-1.37",
        "{cluster:#}"
    );
    assert_eq!(condition(&cluster, "AddonsReady")["status"], "True");
    let gone = kubectl.run(&["get", "deployment", "-n", "kube-system", "metrics-server"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    let services = kubectl.names(&["get", "services", "-n", "kube-system"]);
    assert!(
        !services.contains(&"kube-system/metrics-server".to_owned()),
        "{services:?}"
    );
    assert!(
        cluster["status"]["addons"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "metrics-server")
    );
    kubectl.ok(&["get", "deployment", "-n", "apps", "hello"]);
    assert_workloads_ready(&kubectl);
    let events = server.ok(&["cluster", "events", "web"]);
    let applied = events
        .lines()
        .find(|l| l.contains("Applied the addons of stack lean-1.37"))
        .unwrap_or_else(|| panic!("{events}"));
    assert!(applied.contains("pruned "), "{applied}");
    for pruned in [
        "Deployment kube-system/metrics-server",
        "Service kube-system/metrics-server",
        "APIService v1beta1.metrics.k8s.io",
    ] {
        assert!(applied.contains(pruned), "{pruned}: {applied}");
    }
    assert!(!applied.contains("cilium"), "{applied}");
    // Through the whole upgrade the cluster's addons stayed ready.
    assert!(!events.contains("AddonsReady is False"), "{events}");
    let get = server.ok(&["cluster", "get", "web"]);
    assert!(get.contains("ADDON") && get.contains("cinder-csi"), "{get}");
    assert!(!get.contains("metrics-server"), "{get}");

    // A graceful stop writes each simulated cluster down as it is at that moment, even
    // what changed just before.
    let last_word = dir.path().join("last-word.yaml");
    std::fs::write(
        &last_word,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: last-word, namespace: apps}\n\
         data: {said: before-the-stop}\n",
    )
    .unwrap();
    kubectl.ok(&["apply", "--server-side", "-f", last_word.to_str().unwrap()]);
    server.stop();
    let log = std::fs::read_to_string(dir.path().join("data.log")).unwrap();
    assert!(
        !log.contains("cannot write the simulated cluster down"),
        "{log}"
    );
    server.spawn();
    server.wait_for("web", "back after a graceful stop", 60, |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
    let kubectl = kubectl_for(&server, "web", dir.path());
    kubectl.ok(&["get", "configmap", "-n", "apps", "last-word"]);

    // A killed kaas finds its simulated clusters as they were, as a real cluster
    // outlives its management: the addons, and one's own objects. The snapshots of
    // clusters deleted while it was down (left here by hand) are swept at its start.
    server.kill();
    let snapshot_dir = dir.path().join("data/sim-clusters");
    for stray in ["0f4b1d6e-gone.sealed", "0f4b1d6e-gone.unreadable"] {
        std::fs::write(snapshot_dir.join(stray), "{}").unwrap();
    }
    server.spawn();
    server.wait_for("web", "ready with its addons again", 60, |c| {
        c.is_some_and(|c| {
            c["status"]["phase"] == "Available" && condition(c, "AddonsReady")["status"] == "True"
        })
    });
    let kubectl = kubectl_for(&server, "web", dir.path());
    assert_workloads_ready(&kubectl);
    kubectl.ok(&["get", "deployment", "-n", "apps", "hello"]);
    assert!(
        !kubectl
            .ok(&["get", "deployments", "-n", "kube-system"])
            .contains("metrics-server")
    );
    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join("data/sim-clusters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        snapshots,
        [format!(
            "{}.sealed",
            cluster["metadata"]["uid"].as_str().unwrap()
        )]
    );
    let sealed =
        std::fs::read_to_string(dir.path().join("data/sim-clusters").join(&snapshots[0])).unwrap();
    assert!(!sealed.contains("cloud-config") && !sealed.contains("application-credential"));

    // A drain a disruption budget blocks: kaas waits, says why, and goes on once the
    // budget allows.
    let workers: Vec<String> = kubectl
        .items(&[
            "get",
            "nodes",
            "-l",
            "!node-role.kubernetes.io/control-plane",
        ])
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for w in &workers {
        server.ok(&["sim", "node", w, "--drain-blocked", "true"]);
    }
    server.ok(&[
        "cluster",
        "scale",
        "web",
        "--pool",
        "workers",
        "--replicas",
        "1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let blocked = loop {
        let events = server.ok(&["cluster", "events", "web"]);
        if let Some(line) = events.lines().find(|l| l.contains("DrainBlocked")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no DrainBlocked event: {events}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        blocked.contains("Cannot evict pod") && blocked.contains("protected-"),
        "{blocked}"
    );
    let budgets = kubectl.items(&["get", "poddisruptionbudgets", "-n", "default"]);
    assert_eq!(budgets.len(), 2, "{budgets:#?}");
    assert_eq!(
        kubectl.items(&["get", "nodes"]).len(),
        3,
        "no node went while blocked"
    );
    for w in &workers {
        server.ok(&["sim", "node", w, "--drain-blocked", "false"]);
    }
    server.wait_for("web", "scaled down to one worker", 60, |c| {
        c.is_some_and(|c| {
            c["status"]["phase"] == "Available" && c["status"]["nodePools"][0]["replicas"] == 1
        })
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubectl.items(&["get", "nodes"]).len() != 2 {
        assert!(Instant::now() < deadline, "the drained node stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its kubelet stopped with its server; kaas deleted the Node it left behind.
    let events = server.ok(&["cluster", "events", "web"]);
    assert!(
        events.contains("Deleted node") && events.contains("server of machine"),
        "{events}"
    );

    // Deleted: its API server stops and its snapshot goes.
    server.ok(&["cluster", "delete", "web", "--wait"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(dir.path().join("data/sim-clusters"))
        .unwrap()
        .next()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the deleted cluster's snapshot stayed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!kubectl.run(&["get", "nodes"]).status.success());
}

fn base64_decode(text: &str) -> String {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: apps
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: apps
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: hello
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
"#;

//! Whole clusters on real OpenStack services: the test cloud of `dev/openstack/up.sh`
//! (Keystone, Nova with a fake hypervisor on three hosts, Neutron without a data plane,
//! Octavia with no-op drivers), with stand-in workload clusters because its servers run
//! no kubelet. What kaas built is checked with the `openstack` CLI, a client nobody here
//! wrote.
//!
//! These tests need the test cloud: `dev/test.sh` brings it up; on their own, run
//! `dev/openstack/up.sh` first. They fail (they do not skip) without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, text};
use serde_json::{Value, json};

const CLOUD: &str = "devstack";
const ADMIN: &str = "devstack-admin";

/// `openstack --os-cloud CLOUD ARGS -f json`, parsed.
fn openstack(cloud: &str, args: &[&str]) -> Value {
    let out = Command::new("/usr/bin/openstack")
        .args(["--os-cloud", cloud])
        .args(args)
        .args(["-f", "json"])
        .output()
        .expect("the openstack CLI (python3-openstackclient) is installed by dev/openstack/up.sh");
    assert!(
        out.status.success(),
        "openstack {args:?} failed:\n{}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn openstack_ok(cloud: &str, args: &[&str]) {
    let out = Command::new("/usr/bin/openstack")
        .args(["--os-cloud", cloud])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack {args:?} failed:\n{}",
        text(&out)
    );
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn field<'a>(v: &'a Value, names: &[&str]) -> &'a Value {
    names
        .iter()
        .map(|n| &v[*n])
        .find(|f| !f.is_null())
        .unwrap_or(&Value::Null)
}

/// The test cloud answers, and the default stack's node image is in the project.
fn prepare_cloud() {
    assert!(
        std::path::Path::new("/etc/openstack/clouds.yaml").exists(),
        "no /etc/openstack/clouds.yaml: run dev/openstack/up.sh to bring up the test cloud"
    );
    ensure_node_image(|args| openstack(CLOUD, args));
    ensure_stack_image(UPGRADE_STACK, |args| openstack(CLOUD, args));
}

/// The servers of every project that carry `tag`, as the admin lists them (`--long`).
fn servers_tagged(tag: &str) -> Vec<Value> {
    items(&openstack(
        ADMIN,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "list",
            "--all-projects",
            "--tags",
            tag,
            "--long",
        ],
    ))
}

/// The node image name of `stack`, a local stack (the servers' default ones).
fn node_image(stack: &str) -> String {
    kaas_core::stack::ClusterStack::parse(stack, &common::local_stack(stack))
        .unwrap()
        .image()
        .to_owned()
}

/// The stack the default stack upgrades to.
const UPGRADE_STACK: &str = "local-1.37";

/// Uploads a fake node image (1 MiB of zeros) under the default stack's image name
/// where `openstack` (the CLI, in some project) does not see one.
fn ensure_node_image(openstack: impl Fn(&[&str]) -> Value) {
    ensure_stack_image(common::DEFAULT_LOCAL_STACK, openstack);
}

/// The same for `stack`'s image.
fn ensure_stack_image(stack: &str, openstack: impl Fn(&[&str]) -> Value) {
    let image = node_image(stack);
    if !items(&openstack(&["image", "list", "--name", &image])).is_empty() {
        return;
    }
    let file =
        std::env::temp_dir().join(format!("kaas-fake-node-image-{}.raw", std::process::id()));
    std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
    openstack(&[
        "image",
        "create",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--file",
        file.to_str().unwrap(),
        &image,
    ]);
}

fn start_server(dir: &std::path::Path) -> Server {
    Server::start_with(
        &dir.join("data"),
        1.0,
        &[
            "--cloud",
            "openstack",
            "--os-cloud",
            CLOUD,
            "--simulate-workloads",
        ],
    )
}

fn uid(server: &Server, name: &str) -> String {
    server.cluster(name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The sum of `kaas_openstack_requests_total` on `/metrics`.
fn api_calls(server: &Server) -> u64 {
    server
        .get_open("/metrics")
        .lines()
        .filter(|l| l.starts_with("kaas_openstack_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Everything of the cluster `uid` in any project, as the admin sees it.
fn leftovers(uid: &str, short: &str, cluster: &str) -> Vec<String> {
    let tag = format!("kaas-cluster={uid}");
    let mut left = Vec::new();
    for (what, args) in [
        (
            "server",
            vec![
                "--os-compute-api-version 2.64",
                "server",
                "list",
                "--all-projects",
                "--tags",
                &tag,
            ],
        ),
        ("network", vec!["network", "list", "--tags", &tag]),
        ("subnet", vec!["subnet", "list", "--tags", &tag]),
        ("router", vec!["router", "list", "--tags", &tag]),
        ("port", vec!["port", "list", "--tags", &tag]),
        ("floating ip", vec!["floating ip", "list", "--tags", &tag]),
        (
            "security group",
            vec!["security group", "list", "--all-projects", "--tags", &tag],
        ),
    ] {
        let args: Vec<&str> = args.iter().flat_map(|a| a.split(' ')).collect();
        for item in items(&openstack(ADMIN, &args)) {
            left.push(format!("{what} {}", item["ID"]));
        }
    }
    // Untagged, by name: what an interrupted create made before kaas could tag it.
    for (what, args) in [
        ("network", vec!["network", "list"]),
        ("router", vec!["router", "list"]),
        ("port", vec!["port", "list"]),
        ("security group", vec!["security", "group", "list"]),
    ] {
        for item in items(&openstack(CLOUD, &args)) {
            let name = item["Name"].as_str().unwrap_or_default();
            if name.contains(short) || name.starts_with(&format!("{cluster}-")) {
                left.push(format!("{what} {name} {}", item["ID"]));
            }
        }
    }
    for lb in items(&openstack(ADMIN, &["loadbalancer", "list"])) {
        let name = lb["name"].as_str().unwrap_or_default();
        if name.contains(short) || name.contains(uid) {
            left.push(format!("load balancer {name}"));
        }
    }
    for group in items(&openstack(
        ADMIN,
        &["server", "group", "list", "--all-projects"],
    )) {
        let name = group["Name"].as_str().unwrap_or_default();
        if name.contains(&format!("-{short}-")) {
            left.push(format!("server group {name}"));
        }
    }
    for credential in items(&openstack(CLOUD, &["application", "credential", "list"])) {
        let name = credential["Name"].as_str().unwrap_or_default();
        if name.ends_with(short) {
            left.push(format!("application credential {name}"));
        }
    }
    left
}

/// A failed test still deletes its cluster, so the shared project does not fill up.
struct DeleteOnFailure<'a>(&'a Server, &'a str);

impl Drop for DeleteOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = self
                .0
                .kaas(&["cluster", "delete", self.1, "--wait", "--timeout", "5m"]);
            eprintln!("cleaning up after the failure: {}", text(&out));
        }
    }
}

fn short(uid: &str) -> String {
    uid.chars().filter(|c| *c != '-').take(8).collect()
}

#[test]
fn a_cluster_on_real_openstack_apis_is_built_as_designed_and_deleted_without_leaks() {
    prepare_cloud();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let _cleanup = DeleteOnFailure(&server, "os1");

    let started = Instant::now();
    // The test cloud has three compute hosts: the control planes' hard anti-affinity
    // leaves no room for a fourth, so a rollout removes an old one first.
    let file = dir.path().join("os1.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata: {name: os1}\n\
         spec:\n  controlPlane: {replicas: 3, maxSurge: 0}\n",
    )
    .unwrap();
    server.ok(&[
        "cluster",
        "create",
        "-f",
        file.to_str().unwrap(),
        "--workers",
        "2",
        "--wait",
        "--timeout",
        "10m",
    ]);
    let create_calls = api_calls(&server);
    eprintln!(
        "create 3+2 on the test cloud: Available after {:.1} s, {create_calls} OpenStack API calls",
        started.elapsed().as_secs_f64()
    );
    let uid = uid(&server, "os1");
    let short = short(&uid);
    let tag = format!("kaas-cluster={uid}");
    let prefix = format!("kaas-os1-{short}");

    // Network, subnet, router with its gateway on the external network.
    let networks = items(&openstack(CLOUD, &["network", "list", "--tags", &tag]));
    assert_eq!(networks.len(), 1, "{networks:#?}");
    assert_eq!(networks[0]["Name"], prefix.as_str());
    let routers = items(&openstack(
        CLOUD,
        &["router", "list", "--tags", &tag, "--long"],
    ));
    assert_eq!(routers.len(), 1, "{routers:#?}");
    let gateway = field(
        &routers[0],
        &["External gateway info", "external_gateway_info"],
    );
    assert!(
        gateway.to_string().contains("network_id"),
        "the router has a gateway: {gateway}"
    );
    // Security groups for control planes and workers, with the API port open.
    let groups = items(&openstack(
        CLOUD,
        &["security", "group", "list", "--tags", &tag],
    ));
    let mut names: Vec<&str> = groups.iter().filter_map(|g| g["Name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            format!("{prefix}-control-plane"),
            format!("{prefix}-worker")
        ]
    );
    let cp_group = groups
        .iter()
        .find(|g| g["Name"] == format!("{prefix}-control-plane").as_str())
        .unwrap();
    let rules = items(&openstack(
        CLOUD,
        &[
            "security",
            "group",
            "rule",
            "list",
            cp_group["ID"].as_str().unwrap(),
            "--long",
        ],
    ));
    let rules_text = serde_json::to_string(&rules).unwrap();
    assert!(rules_text.contains("6443:6443"), "{rules_text}");
    assert!(rules_text.contains("2379:2380"), "{rules_text}");

    // The control planes' server group: hard anti-affinity, three members, each
    // ACTIVE on a different host.
    let server_groups = items(&openstack(
        CLOUD,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "group",
            "list",
            "--long",
        ],
    ));
    let cp_server_group = server_groups
        .iter()
        .find(|g| g["Name"] == format!("{prefix}-control-plane").as_str())
        .unwrap_or_else(|| panic!("no control-plane server group in {server_groups:#?}"));
    let policy = field(cp_server_group, &["Policy", "Policies"]).to_string();
    assert!(
        policy.contains("anti-affinity") && !policy.contains("soft"),
        "{policy}"
    );
    let members = field(cp_server_group, &["Members"]).to_string();
    let servers = servers_tagged(&tag);
    assert_eq!(servers.len(), 5, "{servers:#?}");
    assert!(
        servers.iter().all(|s| s["Status"] == "ACTIVE"),
        "{servers:#?}"
    );
    let mut cp_hosts: Vec<String> = servers
        .iter()
        .filter(|s| members.contains(s["ID"].as_str().unwrap()))
        .map(|s| field(s, &["Host", "OS-EXT-SRV-ATTR:host"]).to_string())
        .collect();
    assert_eq!(cp_hosts.len(), 3, "members {members} of {servers:#?}");
    cp_hosts.sort();
    cp_hosts.dedup();
    assert_eq!(cp_hosts.len(), 3, "three different hosts: {cp_hosts:?}");

    // The API load balancer on kaas' own VIP port, ACTIVE, with the floating IP on it.
    let vip_ports = items(&openstack(
        CLOUD,
        &["port", "list", "--name", &format!("{prefix}-kubeapi-vip")],
    ));
    assert_eq!(vip_ports.len(), 1, "{vip_ports:#?}");
    let vip_port = vip_ports[0]["ID"].as_str().unwrap();
    let lb = openstack(
        CLOUD,
        &["loadbalancer", "show", &format!("{prefix}-kubeapi")],
    );
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb:#?}");
    assert_eq!(lb["vip_port_id"], vip_port, "{lb:#?}");
    let fips = items(&openstack(
        CLOUD,
        &["floating", "ip", "list", "--port", vip_port],
    ));
    assert_eq!(fips.len(), 1, "{fips:#?}");
    let fip = fips[0]["Floating IP Address"].as_str().unwrap();
    let cluster = server.cluster("os1").unwrap();
    assert_eq!(
        cluster["status"]["apiEndpoint"],
        format!("https://{fip}:6443").as_str(),
        "{cluster:#?}"
    );
    // The pool forwards to the three control planes.
    let pool = openstack(
        CLOUD,
        &["loadbalancer", "pool", "show", &format!("{prefix}-kubeapi")],
    );
    let pool_members = items(&openstack(
        CLOUD,
        &[
            "loadbalancer",
            "member",
            "list",
            pool["id"].as_str().unwrap(),
        ],
    ));
    assert_eq!(pool_members.len(), 3, "{pool_members:#?}");

    // The cluster's own application credential.
    let credentials = items(&openstack(CLOUD, &["application", "credential", "list"]));
    assert!(
        credentials.iter().any(|c| c["Name"] == prefix.as_str()),
        "{credentials:#?}"
    );

    // The Kubernetes side, through the cluster's API as kubectl and etcdctl see it.
    workload_side(&server, "os1", dir.path(), &servers);

    // A load balancer the cluster's cloud controller made for a Service (named after
    // the cluster uid, its cluster name there) goes with the cluster.
    let subnets = items(&openstack(CLOUD, &["subnet", "list", "--tags", &tag]));
    let service_lb = format!("kube_service_{uid}_default_web");
    openstack_ok(
        CLOUD,
        &[
            "loadbalancer",
            "create",
            "--name",
            &service_lb,
            "--vip-subnet-id",
            subnets[0]["ID"].as_str().unwrap(),
        ],
    );

    // Delete: nothing of it is left in any project.
    let deleting = Instant::now();
    server.ok(&["cluster", "delete", "os1", "--wait", "--timeout", "10m"]);
    eprintln!(
        "delete on the test cloud: {:.1} s; {} OpenStack API calls since the start",
        deleting.elapsed().as_secs_f64(),
        api_calls(&server)
    );
    let left = leftovers(&uid, &short, "os1");
    assert!(left.is_empty(), "left behind: {left:#?}");
    let lbs = openstack(ADMIN, &["loadbalancer", "list", "--name", &service_lb]);
    assert!(items(&lbs).is_empty(), "{lbs:#?}");
}

/// `kubectl --kubeconfig KUBECONFIG ARGS -o json`, parsed.
fn kubectl_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl (dev/test.sh installs it)");
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A loopback port whose connections go, each through a port-forward of the cluster's
/// API (as `kubectl port-forward` opens them), to port 2379 of pod `kube-system/POD`.
fn forward_etcd(kubeconfig: &Path, pod: &str) -> u16 {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let pod = pod.to_owned();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(client, "kube-system");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let (pods, pod) = (pods.clone(), pod.clone());
                tokio::spawn(async move {
                    let mut forward = pods.portforward(&pod, &[2379]).await.unwrap();
                    let mut stream = forward.take_stream(2379).unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream).await;
                });
            }
        });
    });
    port_rx.recv().unwrap()
}

/// One file's content from cloud-init user data.
fn written_file(user_data: &str, path: &str) -> String {
    let doc: Value = serde_saphyr::from_str(user_data).unwrap();
    let file = doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in the user data"));
    assert!(file.get("encoding").is_none(), "{file}");
    file["content"].as_str().unwrap().to_owned()
}

/// The Kubernetes side of a 3+2 cluster, as its users see it: five nodes (the servers
/// OpenStack lists, by providerID) registered by kubelets over HTTPS; no bootstrap
/// token left once all joined; three etcd members as real `etcdctl` lists them through
/// a port-forward; a worker scaled away leaves no Node behind; after a rolling upgrade,
/// three etcd members, all new.
fn workload_side(server: &Server, cluster: &str, dir: &Path, servers: &[Value]) {
    let out = server.kaas(&["cluster", "kubeconfig", cluster, "--ttl", "1h"]);
    assert!(out.status.success(), "{}", text(&out));
    let kubeconfig = dir.join(format!("{cluster}.kubeconfig"));
    std::fs::write(&kubeconfig, &out.stdout).unwrap();

    let nodes = kubectl_json(&kubeconfig, &["get", "nodes"]);
    let mut provider_ids: Vec<String> = items(&nodes["items"])
        .iter()
        .map(|n| n["spec"]["providerID"].as_str().unwrap().to_owned())
        .collect();
    provider_ids.sort();
    let mut server_ids: Vec<String> = servers
        .iter()
        .map(|s| format!("openstack:///{}", s["ID"].as_str().unwrap()))
        .collect();
    server_ids.sort();
    assert_eq!(provider_ids, server_ids);
    let leases = kubectl_json(&kubeconfig, &["get", "leases", "-n", "kube-node-lease"]);
    assert_eq!(items(&leases["items"]).len(), 5, "{leases:#}");

    // Each machine that joined after the first control plane had a token of its own,
    // deleted once its node was Ready.
    let events = server.ok(&["cluster", "events", cluster]);
    assert_eq!(
        events.matches("it joins with bootstrap token").count(),
        4,
        "{events}"
    );
    assert_eq!(
        events.matches("Deleted bootstrap token").count(),
        4,
        "{events}"
    );
    let secrets = kubectl_json(&kubeconfig, &["get", "secrets", "-n", "kube-system"]);
    let tokens: Vec<String> = items(&secrets["items"])
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .filter(|n| n.starts_with("bootstrap-token-"))
        .map(str::to_owned)
        .collect();
    assert!(tokens.is_empty(), "{tokens:?}");

    // etcdctl, with a client certificate that openssl issues from the etcd CA kaas put
    // on the control planes.
    let pki = etcdctl_pki(server, cluster, dir);
    assert_eq!(
        etcd_member_names(&kubeconfig, &pki, &control_planes(server, cluster)[0]),
        control_planes(server, cluster)
    );

    // Scaling the workers down removes the leaving worker's Node from the API.
    server.ok(&[
        "cluster",
        "scale",
        cluster,
        "--pool",
        "workers",
        "--replicas",
        "1",
    ]);
    server.wait_for(cluster, "scaled to 4 machines", 600, |_| {
        server.machines(cluster).len() == 4
    });
    let nodes = kubectl_json(&kubeconfig, &["get", "nodes"]);
    assert_eq!(items(&nodes["items"]).len(), 4, "{nodes:#}");

    // A rolling upgrade replaces every machine; etcd is left with three members, all
    // of them the new control planes'.
    let before = control_planes(server, cluster);
    let out = server.ok(&[
        "cluster",
        "upgrade",
        cluster,
        "--stack",
        UPGRADE_STACK,
        "--wait",
        "--timeout",
        "15m",
    ]);
    assert_eq!(
        out.matches("Removed the etcd member of control-plane node")
            .count(),
        3,
        "{out}"
    );
    let after = control_planes(server, cluster);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after.iter().all(|n| !before.contains(n)),
        "{before:?} {after:?}"
    );
    assert_eq!(etcd_member_names(&kubeconfig, &pki, &after[0]), after);
    let nodes = kubectl_json(&kubeconfig, &["get", "nodes"]);
    assert_eq!(items(&nodes["items"]).len(), 4, "{nodes:#}");
}

/// The node names of the cluster's control planes, sorted.
fn control_planes(server: &Server, cluster: &str) -> Vec<String> {
    let mut names: Vec<String> = server
        .machines(cluster)
        .iter()
        .filter(|m| m["spec"]["pool"] == "control-plane")
        .filter_map(|m| m["status"]["nodeName"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// A directory with the cluster's etcd CA (from a control plane's user data) and a
/// client certificate that openssl issues from it.
fn etcdctl_pki(server: &Server, cluster: &str, dir: &Path) -> std::path::PathBuf {
    let machines = server.machines(cluster);
    let cp = machines
        .iter()
        .find(|m| m["spec"]["pool"] == "control-plane")
        .unwrap();
    let cp_name = cp["metadata"]["name"].as_str().unwrap();
    let user_data = server.ok(&["machine", "user-data", cluster, cp_name]);
    let pki = dir.join("etcd-pki");
    std::fs::create_dir_all(&pki).unwrap();
    for file in ["ca.crt", "ca.key"] {
        let content = written_file(&user_data, &format!("/etc/kubernetes/pki/etcd/{file}"));
        std::fs::write(pki.join(file), content).unwrap();
    }
    std::fs::write(pki.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(&pki)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=etcdctl",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "client.ext",
        "-out",
        "client.crt",
    ]);
    pki
}

/// The names of etcd's members, sorted, as real `etcdctl member list` gives them
/// through a port-forward to the etcd pod of control-plane node `node`.
fn etcd_member_names(kubeconfig: &Path, pki: &Path, node: &str) -> Vec<String> {
    let port = forward_etcd(kubeconfig, &format!("etcd-{node}"));
    let out = Command::new("etcdctl")
        .current_dir(pki)
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &format!("https://127.0.0.1:{port}"),
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "member",
            "list",
            "-w",
            "json",
        ])
        .output()
        .expect("etcdctl (Debian's etcd-client; dev/test.sh installs it)");
    assert!(out.status.success(), "etcdctl member list: {}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut members: Vec<String> = items(&listed["members"])
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    members
}

/// Restores the demo project's instance quota however the test ends.
struct QuotaGuard;

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/openstack")
            .args([
                "--os-cloud",
                ADMIN,
                "quota",
                "set",
                "--instances",
                "10",
                "demo",
            ])
            .status();
    }
}

/// With no simulation at all, kaas reaches each cluster's API where it is: at the API
/// load balancer's floating IP. The test cloud has no data plane, so every cluster's
/// endpoint is mapped (`--resolve *:6443:…`, as curl's) to a loopback port where
/// nothing listens; no packet leaves this machine. The cluster is built, then waits
/// for its API with a condition that says why, and its machine is not replaced however
/// long that lasts.
#[test]
fn without_simulated_workloads_a_cluster_waits_for_its_api_and_nothing_is_replaced() {
    prepare_cloud();
    let dir = tempfile::tempdir().unwrap();
    let closed = common::free_port();
    let resolve = format!("*:6443:127.0.0.1:{closed}");
    let server = Server::start_with(
        &dir.path().join("data"),
        1.0,
        &[
            "--cloud",
            "openstack",
            "--os-cloud",
            CLOUD,
            "--resolve",
            &resolve,
        ],
    );
    let _cleanup = DeleteOnFailure(&server, "real");
    let file = dir.path().join("real.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata: {name: real}\n\
         spec:\n  controlPlane: {replicas: 1}\n  nodePools: [{name: workers, replicas: 1}]\n\
         \x20 health: {nodeStartupTimeout: 20s}\n",
    )
    .unwrap();
    server.ok(&["apply", "-f", file.to_str().unwrap()]);

    let deadline = Instant::now() + Duration::from_secs(180);
    let waiting = loop {
        let cluster = server.cluster("real").unwrap();
        let cp = items(&cluster["status"]["conditions"])
            .into_iter()
            .find(|c| c["type"] == "ControlPlaneReady");
        let machines = server.machines("real");
        let booted = machines.len() == 1
            && machines[0]["status"]["phase"]
                .as_str()
                .is_some_and(|p| p != "Pending" && p != "Provisioning");
        if let Some(c) = cp.filter(|c| c["reason"] == "WaitingForApi")
            && booted
        {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "not waiting for its API: {cluster:#}\n{machines:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let message = waiting["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("https://127.0.0.1:{closed}"))
            && message.contains("not reachable"),
        "{message}"
    );
    let machine = server.machines("real")[0].clone();
    let name = machine["metadata"]["name"].as_str().unwrap().to_owned();
    eprintln!(
        "waiting for its API: {message}; machine {name} is {}",
        machine["status"]["phase"]
    );

    // Past nodeStartupTimeout (20 s from the machine's creation) and a few reconciles
    // more: the machine without a node is not replaced, as its node cannot be seen.
    let created: chrono::DateTime<chrono::Utc> = machine["metadata"]["createdAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    while chrono::Utc::now() < created + chrono::Duration::seconds(35) {
        let names: Vec<String> = server
            .machines("real")
            .iter()
            .map(|m| m["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            std::slice::from_ref(&name),
            "a machine was added or replaced"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let events = server.ok(&["cluster", "events", "real"]);
    assert!(!events.contains("Remediat"), "{events}");
    let uid = uid(&server, "real");
    server.ok(&["cluster", "delete", "real", "--wait", "--timeout", "5m"]);
    let left = leftovers(&uid, &short(&uid), "real");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn a_cluster_over_the_instance_quota_is_refused_with_the_clouds_message_and_builds_nothing() {
    prepare_cloud();
    let _restore = QuotaGuard;
    // Room for two more servers than the project has (Nova refuses a quota below use).
    let limits = items(&openstack(CLOUD, &["limits", "show", "--absolute"]));
    let used = limits
        .iter()
        .find(|l| l["Name"] == "totalInstancesUsed")
        .and_then(|l| l["Value"].as_u64())
        .unwrap();
    let quota = (used + 2).to_string();
    openstack_ok(ADMIN, &["quota", "set", "--instances", &quota, "demo"]);
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let _cleanup = DeleteOnFailure(&server, "big");
    server.ok(&[
        "cluster",
        "create",
        "big",
        "--control-plane",
        "3",
        "--workers",
        "2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let condition = loop {
        let cluster = server.cluster("big").unwrap();
        let infra = items(&cluster["status"]["conditions"])
            .into_iter()
            .find(|c| c["type"] == "InfrastructureReady");
        if let Some(c) = infra.filter(|c| c["reason"] == "QuotaExceeded") {
            break c;
        }
        assert!(Instant::now() < deadline, "no quota error: {cluster:#?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("Quota exceeded for instances: Requested 5, but already used"),
        "{message}"
    );
    let events = server.ok(&["cluster", "events", "big"]);
    assert!(events.contains("Quota exceeded for instances"), "{events}");
    let uid = uid(&server, "big");
    let short = short(&uid);
    let left = leftovers(&uid, &short, "big");
    assert!(left.is_empty(), "built despite the quota: {left:#?}");
    server.ok(&["cluster", "delete", "big", "--wait", "--timeout", "5m"]);

    // A flavor the cloud does not have: refused before anything is stored, by field.
    let file = dir.path().join("odd.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata: {name: odd}\n\
         spec: {controlPlane: {replicas: 1, flavor: m1.nope}, nodePools: []}\n",
    )
    .unwrap();
    let out = server.kaas(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("spec.controlPlane.flavor: flavor \"m1.nope\" is not offered by the cloud"),
        "{}",
        text(&out)
    );
    assert!(server.cluster("odd").is_none());

    // vCPU quotas count what Nova says a flavor has, whatever its name.
    let flavors = items(&openstack(ADMIN, &["flavor", "list", "--all"]));
    if !flavors.iter().any(|f| f["Name"] == "kaas-test.3c") {
        openstack_ok(
            ADMIN,
            &[
                "flavor",
                "create",
                "--vcpus",
                "3",
                "--ram",
                "512",
                "--disk",
                "1",
                "kaas-test.3c",
            ],
        );
    }
    let listed = server.ok(&["flavor", "list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let custom = items(&listed["items"])
        .into_iter()
        .find(|f| f["name"] == "kaas-test.3c")
        .unwrap_or_else(|| panic!("kaas flavor list lacks kaas-test.3c: {listed:#}"));
    assert_eq!(
        (&custom["vcpus"], &custom["ramMiB"]),
        (&json!(3), &json!(512))
    );
    server.ok(&["tenant", "create", "sized", "--max-vcpus", "2"]);
    std::fs::write(
        &file,
        "apiVersion: kaas.dev/v1alpha1\nkind: Cluster\nmetadata: {name: sized}\n\
         spec: {controlPlane: {replicas: 1, flavor: kaas-test.3c}, nodePools: []}\n",
    )
    .unwrap();
    let out = server.kaas(&["--tenant", "sized", "apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("vCPUs: 0 in use + 3 requested > quota 2"),
        "{}",
        text(&out)
    );
}

/// The names of everything tagged with the cluster, by kind, as the project's member
/// sees them (server groups and the application credential found by name).
fn inventory(uid: &str) -> Vec<(String, String)> {
    let tag = format!("kaas-cluster={uid}");
    let short = short(uid);
    let mut all = Vec::new();
    for (kind, args) in [
        ("network", vec!["network", "list", "--tags", &tag]),
        ("subnet", vec!["subnet", "list", "--tags", &tag]),
        ("router", vec!["router", "list", "--tags", &tag]),
        ("port", vec!["port", "list", "--tags", &tag]),
        (
            "security group",
            vec!["security", "group", "list", "--tags", &tag],
        ),
        (
            "server",
            vec![
                "--os-compute-api-version",
                "2.64",
                "server",
                "list",
                "--tags",
                &tag,
            ],
        ),
    ] {
        for item in items(&openstack(CLOUD, &args)) {
            all.push((
                kind.to_owned(),
                item["Name"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    for fip in items(&openstack(
        CLOUD,
        &["floating", "ip", "list", "--tags", &tag],
    )) {
        all.push((
            "floating ip".to_owned(),
            fip["ID"].as_str().unwrap().to_owned(),
        ));
    }
    for lb in items(&openstack(CLOUD, &["loadbalancer", "list"])) {
        let name = lb["name"].as_str().unwrap_or_default();
        if name.contains(&short) {
            all.push(("load balancer".to_owned(), name.to_owned()));
        }
    }
    for group in items(&openstack(
        CLOUD,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "group",
            "list",
        ],
    )) {
        let name = group["Name"].as_str().unwrap_or_default();
        if name.contains(&format!("-{short}-")) {
            all.push(("server group".to_owned(), name.to_owned()));
        }
    }
    all.sort();
    all
}

#[test]
fn killed_during_create_and_delete_on_real_openstack_it_converges_without_twins_or_leaks() {
    prepare_cloud();
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    server.ok(&[
        "cluster",
        "create",
        "crash",
        "--control-plane",
        "1",
        "--workers",
        "2",
    ]);
    // SIGKILL at moments spread over the build: each restart must adopt what the
    // interrupted calls made (untagged Neutron resources, half-built routers and
    // groups, a server's port) and never build a twin.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut kills = Vec::new();
    for i in 0..6u32 {
        let ms = 300 + (nanos / (i + 1)) % 1700;
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
        server.restart();
        kills.push(ms);
    }
    eprintln!("killed after {kills:?} ms");
    server.wait_for("crash", "Available", 600, |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
    let uid = uid(&server, "crash");
    let all = inventory(&uid);
    let mut names = all.clone();
    names.dedup();
    assert_eq!(names, all, "twins after {kills:?}: {all:#?}");
    let count = |kind: &str| all.iter().filter(|(k, _)| k == kind).count();
    for (kind, want) in [
        ("network", 1),
        ("subnet", 1),
        ("router", 1),
        ("security group", 2),
        ("server group", 2),
        ("server", 3),
        // One per server, and the API load balancer's VIP.
        ("port", 4),
        ("load balancer", 1),
        ("floating ip", 1),
    ] {
        assert_eq!(count(kind), want, "{kind} after {kills:?}: {all:#?}");
    }

    let _ = server.kaas(&["cluster", "delete", "crash"]);
    for ms in [700, 1500] {
        std::thread::sleep(Duration::from_millis(ms));
        server.restart();
    }
    server.ok(&["cluster", "delete", "crash", "--wait", "--timeout", "10m"]);
    let left = leftovers(&uid, &short(&uid), "crash");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn keystone_tokens_act_in_the_tenant_bound_to_their_project() {
    prepare_cloud();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let issued = openstack(CLOUD, &["token", "issue"]);
    let token = issued["id"].as_str().unwrap().to_owned();
    let project = issued["project_id"].as_str().unwrap().to_owned();
    let user = openstack(
        CLOUD,
        &["user", "show", issued["user_id"].as_str().unwrap()],
    );
    let user = user["name"].as_str().unwrap().to_owned();

    // Keystone vouches for the token, but no tenant is bound to its project yet.
    let (status, body) = server.http("GET", "/v1/clusters", &[("X-Auth-Token", &token)], None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is not bound to any tenant"),
        "{body}"
    );

    server.ok(&["tenant", "create", "dev-team", "--project", &project]);
    for headers in [
        vec![("X-Auth-Token", token.as_str())],
        vec![("Authorization", &*format!("Bearer {token}"))],
    ] {
        let (status, body) = server.http("GET", "/v1/clusters", &headers, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"], serde_json::json!([]), "{body}");
    }
    // The project's member is an editor there: no tokens, which need an admin.
    let (status, body) = server.http(
        "POST",
        "/v1/tokens",
        &[("X-Auth-Token", &token)],
        Some(&json!({})),
    );
    assert_eq!(status, 403, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("keystone:{user} is editor in tenant \"dev-team\"")),
        "{message}"
    );
    // A token Keystone does not know.
    let (status, body) = server.http(
        "GET",
        "/v1/clusters",
        &[("X-Auth-Token", "gAAAAABnot-a-real-token")],
        None,
    );
    assert_eq!(status, 401, "{body}");
    // The audit log names the Keystone user.
    let audit = server.kaas_json(&["audit", "list", "--tenant", "dev-team", "-o", "json"]);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["who"] == format!("keystone:{user}") && e["status"] == 403),
        "{audit:#}"
    );
}

/// `openstack ARGS -f json` as the demo user in `project` (a clouds.yaml of its own:
/// `--os-project-name` does not win over the file's project).
fn openstack_in(project: &str, args: &[&str]) -> Value {
    let mut clouds: Value =
        serde_saphyr::from_str(&std::fs::read_to_string("/etc/openstack/clouds.yaml").unwrap())
            .unwrap();
    let mut cloud = clouds["clouds"][CLOUD].clone();
    cloud["auth"]["project_name"] = Value::from(project);
    clouds["clouds"]["tenant"] = cloud;
    let file = std::env::temp_dir().join(format!("kaas-clouds-{project}.yaml"));
    std::fs::write(&file, serde_json::to_string(&clouds).unwrap()).unwrap();
    let out = Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", &file)
        .args(["--os-cloud", "tenant"])
        .args(args)
        .args(if args.contains(&"delete") {
            &[][..]
        } else {
            &["-f", "json"][..]
        })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack {args:?} in {project}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn a_tenants_clusters_are_built_in_its_own_project_with_its_credential() {
    prepare_cloud();
    // The tenant's project, with the demo user as member, the node image, and an
    // (unrestricted, so kaas may make each cluster's own) application credential.
    const PROJECT: &str = "kaas-tenant-b";
    let exists = items(&openstack(ADMIN, &["project", "list"]))
        .iter()
        .any(|p| p["Name"] == PROJECT);
    if !exists {
        openstack_ok(ADMIN, &["project", "create", PROJECT]);
    }
    let project = openstack(ADMIN, &["project", "show", PROJECT])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Octavia's default policy wants load-balancer_member besides member.
    for role in ["member", "load-balancer_member"] {
        openstack_ok(
            ADMIN,
            &["role", "add", "--project", PROJECT, "--user", "demo", role],
        );
    }
    ensure_node_image(|args| openstack_in(PROJECT, args));
    let credential_name = format!("kaas-tenant-b-{}", std::process::id());
    let credential = openstack_in(
        PROJECT,
        &[
            "application",
            "credential",
            "create",
            "--unrestricted",
            &credential_name,
        ],
    );
    assert_eq!(credential["project_id"], project.as_str(), "{credential:#}");
    let (credential_id, credential_secret) = (
        credential["id"].as_str().unwrap().to_owned(),
        credential["secret"].as_str().unwrap().to_owned(),
    );

    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    // Bound to the project without a credential: refused before anything is stored.
    server.ok(&["tenant", "create", "nocred", "--project", &project]);
    let out = server.kaas(&[
        "--tenant",
        "nocred",
        "cluster",
        "create",
        "x",
        "--control-plane",
        "1",
        "--workers",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no application credential"),
        "{}",
        text(&out)
    );
    // A project binds one tenant at most.
    server.ok(&["tenant", "delete", "nocred"]);

    let out = server.kaas_as(
        &server.token(),
        &[("KAAS_APPLICATION_CREDENTIAL_SECRET", &credential_secret)],
        &[
            "tenant",
            "create",
            "b",
            "--project",
            &project,
            "--application-credential-id",
            &credential_id,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let _cleanup = DeleteOnFailureIn(&server, "b", "bc");
    server.ok(&[
        "--tenant",
        "b",
        "cluster",
        "create",
        "bc",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--wait",
        "--timeout",
        "5m",
    ]);
    let cluster = server.kaas_json(&["--tenant", "b", "cluster", "get", "bc", "-o", "json"]);
    let uid = cluster["metadata"]["uid"].as_str().unwrap().to_owned();
    let tag = format!("kaas-cluster={uid}");
    let servers = servers_tagged(&tag);
    assert_eq!(servers.len(), 2, "{servers:#?}");
    for s in &servers {
        let shown = openstack(ADMIN, &["server", "show", s["ID"].as_str().unwrap()]);
        assert_eq!(shown["project_id"], project.as_str(), "{shown:#}");
    }
    let networks = openstack(ADMIN, &["network", "list", "--tags", &tag, "--long"]);
    assert_eq!(items(&networks).len(), 1);
    assert_eq!(items(&networks)[0]["Project"], project.as_str());
    // Nothing of it in the server's own project.
    assert!(items(&openstack(CLOUD, &["network", "list", "--tags", &tag])).is_empty());

    server.ok(&[
        "--tenant",
        "b",
        "cluster",
        "delete",
        "bc",
        "--wait",
        "--timeout",
        "5m",
    ]);
    let left = leftovers(&uid, &short(&uid), "bc");
    assert!(left.is_empty(), "left behind: {left:#?}");
    openstack_in(
        PROJECT,
        &["application", "credential", "show", &credential_name],
    );
    openstack_in(
        PROJECT,
        &["application", "credential", "delete", &credential_name],
    );
}

/// A failed test still deletes its cluster in tenant `.1`.
struct DeleteOnFailureIn<'a>(&'a Server, &'a str, &'a str);

impl Drop for DeleteOnFailureIn<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = self.0.kaas(&[
                "--tenant",
                self.1,
                "cluster",
                "delete",
                self.2,
                "--wait",
                "--timeout",
                "5m",
            ]);
            eprintln!("cleaning up after the failure: {}", text(&out));
        }
    }
}

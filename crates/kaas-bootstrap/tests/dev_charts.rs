//! kaas' own charts (`dev/charts`), which stand in for the upstream ones when tests and
//! the demo run offline, rendered as kaas renders an upstream addon: the addons of the
//! local stacks (`dev/stacks/local-*`), each chart loaded from its folder, the cluster's
//! values set where the entries say. The digests the stacks pin are checked against the
//! charts as kaas packages them. Each addon's parts and the values that reached
//! them are checked, then every object against the Kubernetes schemas of 1.35 and 1.36
//! (`kubernetes-validate --strict`).
//!
//! `kubernetes-validate` has no schema for custom kinds (GatewayClass, NginxProxy,
//! NginxGateway): it reports each as a `WARN ... Couldn't find schema` and passes it.
//! The test runs it without `--no-warn` and requires every such warning to name a kind
//! one of the rendered CRDs defines, so a built-in kind can never slip through unchecked.
//! The CRDs themselves are checked (they are `apiextensions.k8s.io/v1` objects).
//!
//! The project's test script installs the tool; without it the test fails, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use kaas_bootstrap::upstream::cloud_conf;
use kaas_bootstrap::{
    AddonValues, KubernetesVersion, RenderedAddon, UpstreamArtifact, object_ref,
    render_upstream_addon,
};
use kaas_core::stack::{ClusterStack, StackAddon};
use serde_json::{Value, json};

// --- helpers ---------------------------------------------------------------------------

fn charts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev/charts")
}

fn stacks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev/stacks")
}

/// Every local stack, by name.
fn local_stacks() -> BTreeMap<String, ClusterStack> {
    let mut stacks = BTreeMap::new();
    for entry in std::fs::read_dir(stacks_dir()).unwrap() {
        let file = entry.unwrap().path().join("stack.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let stack = ClusterStack::parse(&file.display().to_string(), &text).unwrap();
        stacks.insert(stack.name().to_owned(), stack);
    }
    stacks
}

/// The addons of the local stack of Kubernetes 1.36 (the others' are checked to be
/// the same).
fn stack_addons() -> Vec<StackAddon> {
    local_stacks()["local-1.36"].spec.addons.clone()
}

fn load_chart(name: &str) -> kaas_helm::Chart {
    kaas_helm::Chart::from_dir(charts_dir().join(name))
        .unwrap_or_else(|e| panic!("chart {name}: {e}"))
}

/// The artifact an entry names: its chart's folder, or the Gateway API manifest.
fn artifact(addon: &StackAddon) -> UpstreamArtifact {
    match (&addon.chart, &addon.manifest) {
        (Some(chart), None) => UpstreamArtifact::Chart(Arc::new(load_chart(&chart.name))),
        (None, Some(_)) => {
            let path = charts_dir().join(&addon.name).join("standard-install.yaml");
            UpstreamArtifact::Manifest(std::fs::read_to_string(path).unwrap().into())
        }
        _ => panic!("{}: neither a chart nor a manifest", addon.name),
    }
}

fn values(version: &str) -> AddonValues {
    AddonValues {
        cluster_name: "prod".to_owned(),
        cluster_uid: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".to_owned(),
        pod_cidr: "10.244.0.0/16".to_owned(),
        service_cidr: "10.96.0.0/12".to_owned(),
        node_cidr: "10.0.0.0/20".to_owned(),
        api_server_host: Some("10.0.0.10".to_owned()),
        kubernetes_version: KubernetesVersion::parse(version).unwrap(),
        auth_url: "https://keystone.example:5000/v3".to_owned(),
        region: "RegionOne".to_owned(),
        application_credential_id: "ac-id".to_owned(),
        application_credential_secret: "s3cr3t-value".to_owned(),
        proxy_protocol: true,
        acme_email: Some("ops@example.org".to_owned()),
        ingress: true,
        gateway_namespace: Some("nginx-gateway".to_owned()),
    }
}

/// Every addon of the file rendered for `version`, by name, in the file's order.
fn render_all(version: &str) -> Vec<RenderedAddon> {
    let values = values(version);
    stack_addons()
        .iter()
        .map(|addon| {
            render_upstream_addon(addon, &artifact(addon), &values)
                .unwrap_or_else(|e| panic!("{}: {e}", addon.name))
        })
        .collect()
}

fn rendered(name: &str) -> RenderedAddon {
    render_all("v1.35.2")
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no addon {name}"))
}

/// The object of `kind` and `name`, or a failure listing what there is.
fn find<'a>(addon: &'a RenderedAddon, kind: &str, name: &str) -> &'a Value {
    addon
        .objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{}: no {kind} {name} in {addon:?}", addon.name))
}

fn count(addon: &RenderedAddon, kind: &str) -> usize {
    addon.objects.iter().filter(|o| o["kind"] == kind).count()
}

fn container<'a>(pod_owner: &'a Value, name: &str) -> &'a Value {
    pod_owner["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {pod_owner}"))
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// A chart rendered on its own with `extra` over the stack's values.
fn render_chart(
    addon_name: &str,
    extra: Value,
) -> Result<kaas_helm::Rendered, kaas_helm::ChartError> {
    let addon = stack_addons()
        .into_iter()
        .find(|a| a.name == addon_name)
        .unwrap();
    let chart = load_chart(&addon.chart.as_ref().unwrap().name);
    kaas_helm::render(
        &chart,
        &kaas_helm::RenderOptions {
            release_name: addon.name.clone(),
            namespace: addon.namespace.clone().unwrap(),
            kube_version: "v1.35.2".to_owned(),
            api_versions: Vec::new(),
            values: vec![Value::Object(addon.values.clone()), extra],
            include_crds: true,
        },
    )
}

// --- the stack entries -----------------------------------------------------------------

#[test]
fn the_stack_entries_are_valid_and_name_the_charts_in_this_folder() {
    let addons = stack_addons();
    let names: Vec<&str> = addons.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cilium",
            "openstack-cloud-controller-manager",
            "cinder-csi",
            "metrics-server",
            "nginx-ingress",
            "gateway-api",
            "nginx-gateway-fabric",
            "cert-manager",
        ]
    );
    for addon in &addons {
        addon
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", addon.name));
        if let Some(chart) = &addon.chart {
            assert_eq!(chart.repository, "oci://127.0.0.1:5100/charts");
            let loaded = load_chart(&chart.name);
            assert_eq!(loaded.metadata.name, chart.name);
            assert_eq!(loaded.metadata.api_version, "v2", "{}", chart.name);
            assert_eq!(
                loaded.metadata.version, addon.version,
                "{}: the entry's version is the chart's",
                addon.name
            );
        }
    }
    let optional: Vec<&str> = addons
        .iter()
        .filter(|a| a.optional)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        optional,
        [
            "nginx-ingress",
            "gateway-api",
            "nginx-gateway-fabric",
            "cert-manager"
        ]
    );
}

#[test]
fn the_local_stacks_pin_the_charts_as_packaged_and_share_their_addons() {
    let stacks = local_stacks();
    assert_eq!(
        stacks.keys().map(String::as_str).collect::<Vec<_>>(),
        ["local-1.35", "local-1.36", "local-1.37"]
    );
    let mut wrong = Vec::new();
    for (name, stack) in &stacks {
        stack.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            stack.spec.addons, stacks["local-1.36"].spec.addons,
            "{name}: the local stacks install the same addons"
        );
        for addon in &stack.spec.addons {
            let (pinned, actual) = match (&addon.chart, &addon.manifest) {
                (Some(chart), _) => {
                    let tgz = kaas_helm::package(charts_dir().join(&chart.name)).unwrap();
                    (&chart.digest, sha256(&tgz))
                }
                (_, Some(manifest)) => {
                    let path = charts_dir().join(&addon.name).join("standard-install.yaml");
                    let digest = sha256(&std::fs::read(path).unwrap());
                    assert!(
                        manifest.url.ends_with(&digest),
                        "{name}: {}: the local registry serves the blob by its digest",
                        manifest.url
                    );
                    (&manifest.digest, digest)
                }
                _ => panic!("{name}: {}: neither a chart nor a manifest", addon.name),
            };
            if *pinned != actual {
                wrong.push(format!(
                    "{name}: {}: pins {pinned}, is {actual}",
                    addon.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the stacks' digests are not the charts' (update dev/stacks):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_pinned_chart_must_be_the_chart_and_version_the_stack_names() {
    let addon = stack_addons()
        .into_iter()
        .find(|a| a.name == "metrics-server")
        .unwrap();
    let tgz = kaas_helm::package(charts_dir().join("metrics-server")).unwrap();
    assert!(matches!(
        UpstreamArtifact::load(&addon, &tgz),
        Ok(UpstreamArtifact::Chart(_))
    ));
    let mut wrong = addon.clone();
    wrong.version = "3.12.0".to_owned();
    let e = UpstreamArtifact::load(&wrong, &tgz).unwrap_err();
    assert!(
        e.contains("metrics-server 3.13.1") && e.contains("metrics-server 3.12.0"),
        "{e}"
    );
    let mut other = addon;
    other.chart.as_mut().unwrap().name = "metrics".to_owned();
    assert!(UpstreamArtifact::load(&other, &tgz).is_err());
    assert!(UpstreamArtifact::load(&other, b"not a chart").is_err());
}

fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

// --- per addon -------------------------------------------------------------------------

#[test]
fn cilium_runs_its_agent_everywhere_and_reaches_the_api_at_its_vip() {
    let cilium = rendered("cilium");
    let agent = find(&cilium, "DaemonSet", "cilium");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(agent["metadata"]["namespace"], "kube-system");

    let operator = find(&cilium, "Deployment", "cilium-operator");
    assert_eq!(operator["spec"]["replicas"], 2);
    let pdb = find(&cilium, "PodDisruptionBudget", "cilium-operator");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        operator["spec"]["selector"]["matchLabels"]
    );

    let config = &find(&cilium, "ConfigMap", "cilium-config")["data"];
    assert_eq!(config["ipam"], "kubernetes");
    assert_eq!(config["kube-proxy-replacement"], "false");
    assert_eq!(config["k8s-service-host"], "10.0.0.10");
    assert_eq!(config["k8s-service-port"], "6443");

    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"] {
        assert_eq!(count(&cilium, kind), 2, "{kind}");
    }
    for crd in [
        "ciliumnetworkpolicies.cilium.io",
        "ciliumnodes.cilium.io",
        "ciliumendpoints.cilium.io",
    ] {
        find(&cilium, "CustomResourceDefinition", crd);
    }
}

#[test]
fn cilium_refuses_kube_proxy_replacement_without_the_api_address() {
    let err = render_chart(
        "cilium",
        json!({"kubeProxyReplacement": "true", "k8sServiceHost": ""}),
    )
    .unwrap_err();
    assert!(
        err.failure().is_some_and(|m| m.contains("k8sServiceHost")),
        "{err}"
    );
}

#[test]
fn the_cloud_controller_gets_the_clusters_cloud_conf_and_name() {
    let occm = rendered("openstack-cloud-controller-manager");
    let manager = find(&occm, "DaemonSet", "openstack-cloud-controller-manager");
    let pod = &manager["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        json!({"node-role.kubernetes.io/control-plane": ""})
    );
    assert!(
        pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.cloudprovider.kubernetes.io/uninitialized")
    );
    let args = args(container(manager, "openstack-cloud-controller-manager"));
    // Named after the uid: two tenants' clusters may share a name in one project.
    assert!(
        args.contains(&"--cluster-name=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
        "{args:?}"
    );
    assert!(args.contains(&"--cloud-config=$(CLOUD_CONFIG)"), "{args:?}");
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "cloud-config");
    // The common library chart's labels.
    assert_eq!(
        manager["metadata"]["labels"]["app.kubernetes.io/name"],
        "openstack-cloud-controller-manager"
    );

    let secret = find(&occm, "Secret", "cloud-config");
    let conf = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["cloud.conf"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(conf).unwrap(),
        cloud_conf(&values("v1.35.2"))
    );
    find(
        &occm,
        "ClusterRole",
        "system:openstack-cloud-controller-manager",
    );
    find(
        &occm,
        "ClusterRoleBinding",
        "system:openstack-cloud-controller-manager",
    );
}

#[test]
fn cinder_csi_uses_the_cloud_controllers_secret_and_tags_volumes_with_the_cluster() {
    let cinder = rendered("cinder-csi");
    assert_eq!(
        count(&cinder, "Secret"),
        0,
        "the Secret is the cloud controller's"
    );
    let controller = find(
        &cinder,
        "Deployment",
        "openstack-cinder-csi-controllerplugin",
    );
    let names: Vec<&str> = controller["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "csi-attacher",
            "csi-provisioner",
            "csi-snapshotter",
            "csi-resizer",
            "liveness-probe",
            "cinder-csi-plugin"
        ]
    );
    let plugin = container(controller, "cinder-csi-plugin");
    assert!(args(plugin).contains(&"--cluster=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"));
    assert_eq!(plugin["env"][1]["value"], "/etc/kubernetes/cloud.conf");
    let volumes = &controller["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "cloud-config")
    );
    find(&cinder, "DaemonSet", "openstack-cinder-csi-nodeplugin");
    find(&cinder, "CSIDriver", "cinder.csi.openstack.org");

    let delete = find(&cinder, "StorageClass", "csi-cinder-sc-delete");
    assert_eq!(
        delete["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(delete["allowVolumeExpansion"], true);
    assert_eq!(delete["reclaimPolicy"], "Delete");
    let retain = find(&cinder, "StorageClass", "csi-cinder-sc-retain");
    assert!(retain["metadata"]["annotations"].is_null());
    assert_eq!(retain["reclaimPolicy"], "Retain");
}

#[test]
fn exactly_one_default_storage_class_across_all_addons() {
    let defaults: Vec<String> = render_all("v1.35.2")
        .iter()
        .flat_map(|a| a.objects.iter())
        .filter(|o| {
            o["kind"] == "StorageClass"
                && o["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                    == "true"
        })
        .map(object_ref)
        .collect();
    assert_eq!(defaults, ["StorageClass csi-cinder-sc-delete"]);
}

#[test]
fn metrics_server_registers_the_metrics_api_with_its_service() {
    let ms = rendered("metrics-server");
    let api = find(&ms, "APIService", "v1beta1.metrics.k8s.io");
    assert_eq!(
        api["spec"]["service"],
        json!({"name": "metrics-server", "namespace": "kube-system", "port": 443})
    );
    find(&ms, "Service", "metrics-server");
    let deployment = find(&ms, "Deployment", "metrics-server");
    let args = args(container(deployment, "metrics-server"));
    assert_eq!(
        args,
        [
            "--cert-dir=/tmp",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
            "--kubelet-insecure-tls",
            "--secure-port=10250",
        ]
    );
    let reader = find(
        &ms,
        "ClusterRole",
        "system:metrics-server-aggregated-reader",
    );
    assert_eq!(
        reader["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    find(&ms, "RoleBinding", "metrics-server-auth-reader");
    find(
        &ms,
        "ClusterRoleBinding",
        "metrics-server:system:auth-delegator",
    );
    assert_eq!(count(&ms, "PodDisruptionBudget"), 0);

    let with_pdb = render_chart(
        "metrics-server",
        json!({"podDisruptionBudget": {"enabled": true, "minAvailable": 1}}),
    )
    .unwrap();
    let pdb = with_pdb
        .objects
        .iter()
        .find(|o| o["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(pdb["spec"]["maxUnavailable"].is_null());
}

#[test]
fn nginx_ingress_is_the_default_class_and_trusts_proxy_protocol_from_the_nodes() {
    let ingress = rendered("nginx-ingress");
    let class = find(&ingress, "IngressClass", "nginx");
    assert_eq!(class["spec"]["controller"], "nginx.org/ingress-controller");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    let config = &find(&ingress, "ConfigMap", "nginx-ingress")["data"];
    assert_eq!(config["proxy-protocol"], "true");
    assert_eq!(config["set-real-ip-from"], "10.0.0.0/20");
    assert_eq!(config["real-ip-header"], "proxy_protocol");

    let service = find(&ingress, "Service", "nginx-ingress-controller");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(
        service["metadata"]["annotations"]["loadbalancer.openstack.org/proxy-protocol"],
        "true"
    );
    let deployment = find(&ingress, "Deployment", "nginx-ingress-controller");
    let args = args(container(deployment, "nginx-ingress"));
    assert!(args.contains(&"-nginx-configmaps=$(POD_NAMESPACE)/nginx-ingress"));
    assert!(args.contains(&"-ingress-class=nginx"));
    for crd in [
        "virtualservers",
        "virtualserverroutes",
        "transportservers",
        "policies",
        "globalconfigurations",
    ] {
        find(
            &ingress,
            "CustomResourceDefinition",
            &format!("{crd}.k8s.nginx.org"),
        );
    }
    assert_eq!(count(&ingress, "ValidatingWebhookConfiguration"), 0);
    find(&ingress, "ClusterRole", "nginx-ingress");
}

#[test]
fn nginx_gateway_fabric_class_points_at_a_proxy_config_that_trusts_the_nodes() {
    let ngf = rendered("nginx-gateway-fabric");
    let class = find(&ngf, "GatewayClass", "nginx");
    assert_eq!(
        class["spec"]["controllerName"],
        "gateway.nginx.org/nginx-gateway-controller"
    );
    assert_eq!(
        class["spec"]["parametersRef"],
        json!({
            "group": "gateway.nginx.org",
            "kind": "NginxProxy",
            "name": "nginx-gateway-fabric-proxy-config",
            "namespace": "nginx-gateway",
        })
    );
    let proxy = find(&ngf, "NginxProxy", "nginx-gateway-fabric-proxy-config");
    assert_eq!(proxy["apiVersion"], "gateway.nginx.org/v1alpha2");
    assert_eq!(
        proxy["spec"]["rewriteClientIP"],
        json!({
            "mode": "ProxyProtocol",
            "setIPRecursively": true,
            "trustedAddresses": [{"type": "CIDR", "value": "10.0.0.0/20"}],
        })
    );
    let service = &proxy["spec"]["kubernetes"]["service"];
    assert_eq!(service["type"], "LoadBalancer");
    assert_eq!(service["externalTrafficPolicy"], "Cluster");
    assert_eq!(
        service["patches"],
        json!([{
            "type": "StrategicMerge",
            "value": {"metadata": {"annotations": {"loadbalancer.openstack.org/proxy-protocol": "true"}}},
        }])
    );
    find(&ngf, "Deployment", "nginx-gateway-fabric");
    find(&ngf, "NginxGateway", "nginx-gateway-fabric-config");
    // kaas's shared Gateway, of that class, open to routes of every namespace.
    let gateway = find(&ngf, "Gateway", "shared");
    assert_eq!(gateway["metadata"]["namespace"], "nginx-gateway");
    assert_eq!(gateway["spec"]["gatewayClassName"], "nginx");
    assert_eq!(
        gateway["spec"]["listeners"],
        json!([{"name": "http", "protocol": "HTTP", "port": 80,
                "allowedRoutes": {"namespaces": {"from": "All"}}}])
    );
    let job = find(&ngf, "Job", "nginx-gateway-fabric-cert-generator");
    assert!(
        job["metadata"]["annotations"]["helm.sh/hook"]
            .as_str()
            .unwrap()
            .contains("pre-install")
    );
    for crd in ["nginxproxies", "nginxgateways", "clientsettingspolicies"] {
        find(
            &ngf,
            "CustomResourceDefinition",
            &format!("{crd}.gateway.nginx.org"),
        );
    }
}

#[test]
fn nginx_gateway_fabrics_schema_refuses_an_unknown_client_ip_mode() {
    let err = render_chart(
        "nginx-gateway-fabric",
        json!({"nginx": {"config": {"rewriteClientIP": {"mode": "Guess"}}}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rewriteClientIP"), "{err}");
}

#[test]
fn the_gateway_api_manifest_holds_the_standard_channels_crds() {
    let gateway_api = rendered("gateway-api");
    for crd in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "referencegrants",
    ] {
        let o = find(
            &gateway_api,
            "CustomResourceDefinition",
            &format!("{crd}.gateway.networking.k8s.io"),
        );
        let annotations = &o["metadata"]["annotations"];
        assert_eq!(
            annotations["gateway.networking.k8s.io/bundle-version"],
            "v1.5.1"
        );
        assert_eq!(annotations["gateway.networking.k8s.io/channel"], "standard");
        assert!(
            o["metadata"]["namespace"].is_null(),
            "CRDs are cluster-scoped"
        );
    }
}

#[test]
fn cert_manager_runs_three_deployments_behind_its_webhooks() {
    let cm = rendered("cert-manager");
    for name in [
        "cert-manager",
        "cert-manager-cainjector",
        "cert-manager-webhook",
    ] {
        find(&cm, "Deployment", name);
    }
    assert_eq!(count(&cm, "Deployment"), 3);
    find(&cm, "Service", "cert-manager-webhook");
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let hook = find(&cm, kind, "cert-manager-webhook");
        assert_eq!(
            hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from-secret"],
            "cert-manager/cert-manager-webhook-ca"
        );
        assert_eq!(
            hook["webhooks"][0]["clientConfig"]["service"]["name"],
            "cert-manager-webhook"
        );
    }
    let crds: Vec<&Value> = cm
        .objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 6);
    for crd in &crds {
        assert!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
            "crds.keep is false: {}",
            object_ref(crd)
        );
    }
    let job = find(&cm, "Job", "cert-manager-startupapicheck");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install"
    );
    // The cluster has the Gateway API option (values()): cert-manager solves through
    // Gateways too.
    let config = find(&cm, "ConfigMap", "cert-manager")["data"]["config.yaml"]
        .as_str()
        .unwrap();
    assert!(config.contains("enableGatewayAPI: true"), "{config}");
}

#[test]
fn cert_manager_gets_acme_issuers_that_solve_through_the_ingress_and_the_gateway() {
    let cm = rendered("cert-manager");
    for (name, server) in [
        (
            "letsencrypt-staging",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        ),
        (
            "letsencrypt-production",
            "https://acme-v02.api.letsencrypt.org/directory",
        ),
    ] {
        let acme = &find(&cm, "ClusterIssuer", name)["spec"]["acme"];
        assert_eq!(acme["server"], server);
        assert_eq!(acme["email"], "ops@example.org");
        assert_eq!(
            acme["privateKeySecretRef"]["name"],
            format!("{name}-account")
        );
        assert_eq!(
            acme["solvers"],
            json!([
                {"http01": {"ingress": {"ingressClassName": "nginx"}}},
                {"http01": {"gatewayHTTPRoute": {"parentRefs": [{
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": "shared",
                    "namespace": "nginx-gateway",
                    "sectionName": "http",
                }]}}},
            ])
        );
    }
    // The issuers come after cert-manager's CRDs, as they are applied.
    let position = |kind: &str| cm.objects.iter().position(|o| o["kind"] == kind).unwrap();
    assert!(position("CustomResourceDefinition") < position("ClusterIssuer"));

    // Without the gateway, only the ingress solves; with neither, nothing could.
    let addon = stack_addons()
        .into_iter()
        .find(|a| a.name == "cert-manager")
        .unwrap();
    let mut values = values("v1.36.4");
    values.gateway_namespace = None;
    let solvers = |values: &AddonValues| {
        render_upstream_addon(&addon, &artifact(&addon), values)
            .unwrap()
            .objects
            .into_iter()
            .filter(|o| o["kind"] == "ClusterIssuer")
            .map(|o| o["spec"]["acme"]["solvers"].clone())
            .collect::<Vec<_>>()
    };
    let ingress_only = json!([{"http01": {"ingress": {"ingressClassName": "nginx"}}}]);
    assert_eq!(solvers(&values), [ingress_only.clone(), ingress_only]);
    values.ingress = false;
    assert!(solvers(&values).is_empty());
}

#[test]
fn cert_manager_keeps_its_crds_and_enables_the_gateway_api_when_asked() {
    let out = render_chart(
        "cert-manager",
        json!({"crds": {"keep": true}, "config": {"gatewayAPI": {"enabled": true}}}),
    )
    .unwrap();
    let crds: Vec<&Value> = out
        .objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 6);
    for crd in crds {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    let config = out
        .objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .unwrap()["data"]["config.yaml"]
        .as_str()
        .unwrap();
    let config: Value = serde_saphyr::from_str(config).unwrap();
    assert_eq!(
        config,
        json!({
            "apiVersion": "controller.config.cert-manager.io/v1alpha1",
            "kind": "ControllerConfiguration",
            "enableGatewayAPI": true,
        })
    );

    let without = render_chart("cert-manager", json!({"crds": {"enabled": false}})).unwrap();
    assert!(
        without
            .objects
            .iter()
            .chain(&without.crds)
            .all(|o| o["kind"] != "CustomResourceDefinition")
    );

    let err = render_chart("cert-manager", json!({"crds": {"enabled": "yes"}})).unwrap_err();
    assert!(err.to_string().contains("crds"), "{err}");
}

// --- all addons ------------------------------------------------------------------------

#[test]
fn every_addon_puts_its_namespace_then_its_crds_first_each_with_a_schema() {
    for addon in render_all("v1.35.2") {
        assert_eq!(addon.objects[0]["kind"], "Namespace", "{}", addon.name);
        let first_other = addon
            .objects
            .iter()
            .skip(1)
            .position(|o| o["kind"] != "CustomResourceDefinition")
            .map_or(addon.objects.len(), |i| i + 1);
        for o in &addon.objects[first_other..] {
            assert_ne!(
                o["kind"],
                "CustomResourceDefinition",
                "{}: {} after other objects",
                addon.name,
                object_ref(o)
            );
        }
        for crd in &addon.objects[1..first_other] {
            for version in crd["spec"]["versions"].as_array().unwrap() {
                assert_eq!(
                    version["schema"]["openAPIV3Schema"]["type"],
                    "object",
                    "{}: {} {}",
                    addon.name,
                    object_ref(crd),
                    version["name"]
                );
            }
        }
    }
}

/// The kinds the CRDs of every addon define, by `apiVersion` and kind.
fn custom_kinds(addons: &[RenderedAddon]) -> BTreeSet<(String, String)> {
    addons
        .iter()
        .flat_map(|a| a.objects.iter())
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .flat_map(|crd| {
            let group = crd["spec"]["group"].as_str().unwrap().to_owned();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| {
                    (
                        format!("{group}/{}", v["name"].as_str().unwrap()),
                        kind.clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_addons_objects_validate_against_kubernetes_1_35_and_1_36() {
    let dir = tempfile::tempdir().unwrap();
    for version in ["v1.35.2", "v1.36.0"] {
        let addons = render_all(version);
        let custom = custom_kinds(&addons);
        let minor = format!("1.{}.0", KubernetesVersion::parse(version).unwrap().minor());
        let mut checked = 0;
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        for addon in &addons {
            let docs: Vec<String> = addon
                .objects
                .iter()
                .map(|o| serde_json::to_string(o).unwrap())
                .collect();
            let file = dir.path().join(format!("{minor}-{}.yaml", addon.name));
            std::fs::write(&file, docs.join("\n---\n")).unwrap();
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "--quiet", "-k", &minor])
                .arg(&file)
                .output()
                .expect(
                    "`kubernetes-validate` is not on PATH: install it with \
                     `python3 -m pip install kubernetes-validate` (dev/test.sh does)",
                );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{} against Kubernetes {minor}:\n{stdout}{}",
                addon.name,
                String::from_utf8_lossy(&out.stderr)
            );
            // A kind without a schema passes with a warning: only custom kinds may.
            for line in stdout.lines().filter(|l| l.starts_with("WARN")) {
                let skipped_kind = custom.iter().find(|(api_version, kind)| {
                    line.contains(&format!("kind {kind} with api version {api_version} "))
                });
                let (_, kind) = skipped_kind.unwrap_or_else(|| {
                    panic!(
                        "{}: a kind no CRD defines went unchecked: {line}",
                        addon.name
                    )
                });
                *skipped.entry(kind.clone()).or_default() += 1;
            }
            checked += addon.objects.len();
        }
        assert_eq!(
            skipped,
            BTreeMap::from([
                ("ClusterIssuer".to_owned(), 2),
                ("Gateway".to_owned(), 1),
                ("GatewayClass".to_owned(), 1),
                ("NginxGateway".to_owned(), 1),
                ("NginxProxy".to_owned(), 1),
            ]),
            "Kubernetes {minor}: the custom objects left to their CRDs"
        );
        assert!(checked > 100, "only {checked} objects for {minor}");
    }
}

//! The addons of a cluster, rendered from their templates (`stacks/addons/NAME.yaml`)
//! with the cluster's values into Kubernetes objects, ready for server-side apply.
//!
//! Templates are multi-document YAML with `{{ key }}` placeholders. A placeholder the
//! values do not know, or a template that is not valid YAML once rendered, is an
//! error naming the addon: nothing is half-rendered.
//!
//! Rendered objects may hold the cluster's application credential secret (the cloud
//! controller's `cloud.conf`): [`RenderedAddon`]'s `Debug` shows object names only.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::BootstrapError;
use crate::kubeadm::KubernetesVersion;

/// The built-in templates, by addon name.
const TEMPLATES: &[(&str, &str)] = &[
    ("cilium", include_str!("../../../stacks/addons/cilium.yaml")),
    (
        "openstack-cloud-controller-manager",
        include_str!("../../../stacks/addons/openstack-cloud-controller-manager.yaml"),
    ),
    (
        "cinder-csi",
        include_str!("../../../stacks/addons/cinder-csi.yaml"),
    ),
    (
        "metrics-server",
        include_str!("../../../stacks/addons/metrics-server.yaml"),
    ),
    (
        "ingress-nginx",
        include_str!("../../../stacks/addons/ingress-nginx.yaml"),
    ),
    (
        "cert-manager",
        include_str!("../../../stacks/addons/cert-manager.yaml"),
    ),
];

/// The Kubernetes minor from which Services report load-balancer addresses with
/// `ipMode: Proxy`, so pods reach a PROXY-protocol load balancer through it.
pub const IP_MODE_PROXY_MINOR: u32 = 32;

/// An addon to install: its name (a template) and version (from the stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRef {
    pub name: String,
    pub version: String,
}

/// The cluster's values the templates draw on.
#[derive(Clone)]
pub struct AddonValues {
    pub cluster_name: String,
    pub cluster_uid: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub kubernetes_version: KubernetesVersion,
    /// The cloud's Keystone URL and region, for the cloud controller and CSI.
    pub auth_url: String,
    pub region: String,
    /// The cluster's own application credential.
    pub application_credential_id: String,
    pub application_credential_secret: String,
    /// PROXY protocol between the load balancer and ingress-nginx.
    pub proxy_protocol: bool,
    /// The ACME account's e-mail (cert-manager's issuers).
    pub acme_email: Option<String>,
}

impl fmt::Debug for AddonValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddonValues")
            .field("cluster_name", &self.cluster_name)
            .field("cluster_uid", &self.cluster_uid)
            .field("kubernetes_version", &self.kubernetes_version)
            .finish_non_exhaustive()
    }
}

/// One addon's objects, in apply order.
#[derive(Clone, PartialEq)]
pub struct RenderedAddon {
    pub name: String,
    pub version: String,
    pub objects: Vec<Value>,
}

impl fmt::Debug for RenderedAddon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.objects.iter().map(object_ref).collect();
        f.debug_struct("RenderedAddon")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("objects", &names)
            .finish()
    }
}

/// `Kind namespace/name` of an object (`Kind name` without a namespace, an empty one
/// included): the names the cluster's client reports readiness and pruning under
/// (`kaas_kube::ObjectRef::short`), so the two must agree.
pub fn object_ref(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("?");
    let name = o["metadata"]["name"].as_str().unwrap_or("?");
    match o["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty())
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn addon_error(addon: &str, reason: impl Into<String>) -> BootstrapError {
    BootstrapError::Addon {
        addon: addon.to_owned(),
        reason: reason.into(),
    }
}

impl AddonValues {
    fn map(&self, addon: &AddonRef) -> BTreeMap<&'static str, String> {
        let ip_mode_proxy = self.kubernetes_version.minor() >= IP_MODE_PROXY_MINOR;
        BTreeMap::from([
            ("clusterName", self.cluster_name.clone()),
            ("clusterUid", self.cluster_uid.clone()),
            ("podCidr", self.pod_cidr.clone()),
            ("serviceCidr", self.service_cidr.clone()),
            ("authUrl", self.auth_url.clone()),
            ("region", self.region.clone()),
            (
                "applicationCredentialId",
                self.application_credential_id.clone(),
            ),
            (
                "applicationCredentialSecret",
                self.application_credential_secret.clone(),
            ),
            ("proxyProtocol", self.proxy_protocol.to_string()),
            ("enableIngressHostname", (!ip_mode_proxy).to_string()),
            ("acmeEmail", self.acme_email.clone().unwrap_or_default()),
            ("version", addon.version.clone()),
        ])
    }
}

/// Substitutes `{{ key }}` placeholders; an unknown key or an unclosed one is an error.
fn substitute(
    addon: &str,
    template: &str,
    values: &BTreeMap<&str, String>,
) -> Result<String, BootstrapError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| addon_error(addon, "a placeholder is not closed with }}"))?;
        let key = after[..end].trim();
        let value = values
            .get(key)
            .ok_or_else(|| addon_error(addon, format!("unknown placeholder {{{{ {key} }}}}")))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders `addons` (in order) with `values`.
pub fn render_addons(
    addons: &[AddonRef],
    values: &AddonValues,
) -> Result<Vec<RenderedAddon>, BootstrapError> {
    addons
        .iter()
        .map(|addon| {
            let template = TEMPLATES
                .iter()
                .find(|(name, _)| *name == addon.name)
                .map(|(_, t)| *t)
                .ok_or_else(|| addon_error(&addon.name, "kaas has no template for it"))?;
            if addon.name == "cert-manager"
                && values.acme_email.as_deref().is_none_or(str::is_empty)
            {
                return Err(addon_error(
                    &addon.name,
                    "its ACME issuers need an e-mail address (spec.addons.certManager.acmeEmail)",
                ));
            }
            let text = substitute(&addon.name, template, &values.map(addon))?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .map_err(|e| addon_error(&addon.name, format!("not valid YAML: {e}")))?;
            let objects: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
            for o in &objects {
                for field in ["apiVersion", "kind"] {
                    if o[field].as_str().is_none_or(str::is_empty) {
                        return Err(addon_error(
                            &addon.name,
                            format!("an object has no {field}: {}", object_ref(o)),
                        ));
                    }
                }
                if o["metadata"]["name"].as_str().is_none_or(str::is_empty) {
                    return Err(addon_error(&addon.name, "an object has no metadata.name"));
                }
            }
            Ok(RenderedAddon {
                name: addon.name.clone(),
                version: addon.version.clone(),
                objects,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn objects_are_named_with_their_namespace_if_they_have_one() {
        let named = |o: serde_json::Value| object_ref(&o);
        assert_eq!(
            named(
                serde_json::json!({"kind": "Deployment", "metadata": {"name": "a", "namespace": "ns"}})
            ),
            "Deployment ns/a"
        );
        // As the cluster's client names them: an empty namespace is none.
        for metadata in [
            serde_json::json!({"name": "b"}),
            serde_json::json!({"name": "b", "namespace": ""}),
        ] {
            assert_eq!(
                named(serde_json::json!({"kind": "StorageClass", "metadata": metadata})),
                "StorageClass b"
            );
        }
    }

    fn values(version: &str) -> AddonValues {
        AddonValues {
            cluster_name: "prod".to_owned(),
            cluster_uid: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".to_owned(),
            pod_cidr: "10.244.0.0/16".to_owned(),
            service_cidr: "10.96.0.0/12".to_owned(),
            kubernetes_version: KubernetesVersion::parse(version).unwrap(),
            auth_url: "https://keystone.example:5000/v3".to_owned(),
            region: "RegionOne".to_owned(),
            application_credential_id: "ac-id".to_owned(),
            application_credential_secret: "s3cr3t-value".to_owned(),
            proxy_protocol: true,
            acme_email: Some("ops@example.org".to_owned()),
        }
    }

    fn all() -> Vec<AddonRef> {
        [
            ("cilium", "1.18.2"),
            ("openstack-cloud-controller-manager", "v1.36.0"),
            ("cinder-csi", "v1.36.0"),
            ("metrics-server", "v0.8.0"),
            ("ingress-nginx", "v1.13.3"),
            ("cert-manager", "v1.18.2"),
        ]
        .iter()
        .map(|(n, v)| AddonRef {
            name: (*n).to_owned(),
            version: (*v).to_owned(),
        })
        .collect()
    }

    fn objects<'a>(rendered: &'a [RenderedAddon], kind: &str) -> Vec<&'a Value> {
        rendered
            .iter()
            .flat_map(|a| &a.objects)
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    #[test]
    fn every_addon_renders_to_named_objects_with_the_stacks_versions() {
        let rendered = render_addons(&all(), &values("v1.36.4")).unwrap();
        assert_eq!(rendered.len(), 6);
        let text = serde_json::to_string(&rendered.iter().map(|a| &a.objects).collect::<Vec<_>>())
            .unwrap();
        assert!(!text.contains("{{"), "a placeholder is left");
        assert!(text.contains("quay.io/cilium/cilium:v1.18.2"));
        assert!(text.contains("openstack-cloud-controller-manager:v1.36.0"));
        assert!(text.contains("metrics-server:v0.8.0"));
        assert!(text.contains("ingress-nginx/controller:v1.13.3"));
        // The pod CIDR reaches the CNI.
        let config = objects(&rendered, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == "cilium-config")
            .unwrap();
        assert_eq!(config["data"]["cluster-pool-ipv4-cidr"], "10.244.0.0/16");
    }

    #[test]
    fn the_cloud_controller_knows_the_cluster_by_its_uid_and_signs_in_with_its_credential() {
        let rendered = render_addons(&all()[1..2], &values("v1.36.4")).unwrap();
        let ds = objects(&rendered, "DaemonSet")[0];
        let args = ds["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains("--cluster-name=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
            "{args}"
        );
        let conf = objects(&rendered, "Secret")[0]["stringData"]["cloud.conf"]
            .as_str()
            .unwrap();
        assert!(conf.contains("application-credential-id = ac-id"), "{conf}");
        assert!(conf.contains("application-credential-secret = s3cr3t-value"));
        assert!(conf.contains("region = RegionOne"));
        // The secret stays out of Debug output.
        let debug = format!("{rendered:?} {:?}", values("v1.36.4"));
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn exactly_one_default_storage_class() {
        let rendered = render_addons(&all(), &values("v1.36.4")).unwrap();
        let defaults: Vec<_> = objects(&rendered, "StorageClass")
            .into_iter()
            .filter(|s| {
                s["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                    == "true"
            })
            .collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0]["provisioner"], "cinder.csi.openstack.org");
    }

    #[test]
    fn ingress_speaks_proxy_protocol_and_keeps_the_hairpin_working() {
        for (version, hostname) in [("v1.36.4", "false"), ("v1.31.2", "true")] {
            let rendered = render_addons(&all(), &values(version)).unwrap();
            let service = objects(&rendered, "Service")
                .into_iter()
                .find(|s| s["metadata"]["name"] == "ingress-nginx-controller")
                .unwrap();
            assert_eq!(
                service["metadata"]["annotations"]["loadbalancer.openstack.org/proxy-protocol"],
                "true"
            );
            assert_eq!(service["spec"]["type"], "LoadBalancer");
            let config = objects(&rendered, "ConfigMap")
                .into_iter()
                .find(|c| c["metadata"]["name"] == "ingress-nginx-controller")
                .unwrap();
            assert_eq!(config["data"]["use-proxy-protocol"], "true");
            // Before 1.32 there is no ipMode Proxy: the cloud controller reports a
            // hostname so in-cluster clients go through the load balancer.
            let conf = objects(&rendered, "Secret")[0]["stringData"]["cloud.conf"]
                .as_str()
                .unwrap();
            assert!(
                conf.contains(&format!("enable-ingress-hostname = {hostname}")),
                "{version}: {conf}"
            );
        }
    }

    #[test]
    fn cert_manager_gets_staging_and_production_issuers_with_the_acme_email() {
        let rendered = render_addons(&all(), &values("v1.36.4")).unwrap();
        let issuers = objects(&rendered, "ClusterIssuer");
        let mut names: Vec<&str> = issuers
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["letsencrypt-production", "letsencrypt-staging"]);
        for i in issuers {
            assert_eq!(i["spec"]["acme"]["email"], "ops@example.org");
            assert_eq!(
                i["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"],
                "nginx"
            );
        }
        let mut no_email = values("v1.36.4");
        no_email.acme_email = None;
        let err = render_addons(&all(), &no_email).unwrap_err().to_string();
        assert!(
            err.contains("cert-manager") && err.contains("acmeEmail"),
            "{err}"
        );
    }

    #[test]
    fn unknown_addons_and_placeholders_are_errors() {
        let err = render_addons(
            &[AddonRef {
                name: "nope".to_owned(),
                version: "1".to_owned(),
            }],
            &values("v1.36.4"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope"), "{err}");
        let map = BTreeMap::from([("a", "1".to_owned())]);
        assert_eq!(substitute("x", "v={{ a }}!", &map).unwrap(), "v=1!");
        assert!(substitute("x", "v={{ b }}", &map).is_err());
        assert!(substitute("x", "v={{ a", &map).is_err());
    }
}

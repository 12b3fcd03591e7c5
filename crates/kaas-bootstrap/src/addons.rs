//! The addons of a cluster, rendered from their templates (`stacks/addons/NAME.yaml`)
//! with the cluster's values into Kubernetes objects, ready for server-side apply.
//!
//! Templates are multi-document YAML with `{{ key }}` placeholders in string values
//! (`{{ key | ini }}` inside an INI file held in a string). A template is parsed before
//! any value goes in, and values are set into the parsed strings as data: a value can
//! never add, remove or reshape anything. Each value is checked where it enters
//! ([`AddonValues`]), and an error names it. A placeholder the values do not know is an
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
    /// The nodes' subnet: where the load balancers' PROXY protocol headers come from.
    pub node_cidr: String,
    /// The API server's address inside the cluster's network (the load balancer's
    /// VIP), once it has one.
    pub api_server_host: Option<String>,
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

pub(crate) fn addon_error(addon: &str, reason: impl Into<String>) -> BootstrapError {
    BootstrapError::Addon {
        addon: addon.to_owned(),
        reason: reason.into(),
    }
}

/// The longest value kaas puts into a manifest where no tighter grammar applies.
const MAX_VALUE_LEN: usize = 4096;

fn value_error(field: &'static str, reason: impl Into<String>) -> BootstrapError {
    BootstrapError::AddonValue {
        field,
        reason: reason.into(),
    }
}

/// `field` holds no control character (a newline, a NUL, an escape) and is not too
/// long. For secrets the reason never quotes the value.
fn check_plain(field: &'static str, value: &str, max: usize) -> Result<(), BootstrapError> {
    if value.len() > max {
        return Err(value_error(
            field,
            format!("must be at most {max} bytes (got {})", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(value_error(field, "must not contain control characters"));
    }
    Ok(())
}

/// An address block `ADDRESS/PREFIX`, IPv4 or IPv6.
pub(crate) fn check_cidr(field: &'static str, value: &str) -> Result<(), BootstrapError> {
    let parsed = value.split_once('/').and_then(|(addr, prefix)| {
        let addr: std::net::IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max && value.len() <= 43).then_some(())
    });
    parsed.ok_or_else(|| value_error(field, "is not a CIDR such as 10.244.0.0/16"))
}

impl AddonValues {
    /// Checks every value where it enters a manifest, naming the value (and the spec
    /// field it comes from) in the error. What passes is set into the objects as data.
    pub(crate) fn check(&self) -> Result<(), BootstrapError> {
        kaas_core::validation::check_dns_label(&self.cluster_name)
            .map_err(|reason| value_error("clusterName (metadata.name)", reason))?;
        let uid_ok = self.cluster_uid.len() == 36
            && self.cluster_uid.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if !uid_ok {
            return Err(value_error("clusterUid (metadata.uid)", "is not a UUID"));
        }
        check_cidr("podCidr (spec.network.podCidr)", &self.pod_cidr)?;
        check_cidr("serviceCidr (spec.network.serviceCidr)", &self.service_cidr)?;
        check_cidr("nodeCidr (spec.network.nodeCidr)", &self.node_cidr)?;
        if let Some(host) = &self.api_server_host
            && host.parse::<std::net::IpAddr>().is_err()
        {
            return Err(value_error(
                "apiServerHost (the API's VIP)",
                "is not an IP address",
            ));
        }
        check_plain("authUrl (the cloud's Keystone URL)", &self.auth_url, 2048)?;
        let url_ok = (self.auth_url.starts_with("https://")
            || self.auth_url.starts_with("http://"))
            && self.auth_url.chars().all(|c| c.is_ascii_graphic());
        if !url_ok {
            return Err(value_error(
                "authUrl (the cloud's Keystone URL)",
                "is not an http(s) URL without spaces",
            ));
        }
        check_plain("region (the cloud's region)", &self.region, 255)?;
        check_plain(
            "applicationCredentialId (the cluster's application credential)",
            &self.application_credential_id,
            MAX_VALUE_LEN,
        )?;
        check_plain(
            "applicationCredentialSecret (the cluster's application credential)",
            &self.application_credential_secret,
            MAX_VALUE_LEN,
        )?;
        if let Some(email) = &self.acme_email {
            kaas_core::validation::check_email(email).map_err(|reason| {
                value_error("acmeEmail (spec.addons.certManager.acmeEmail)", reason)
            })?;
        }
        Ok(())
    }

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

/// An addon's version as the stack gives it: it ends up in image references, so it
/// must be an image tag (letters, digits, `_`, `.`, `-`; at most 128).
fn check_version(addon: &AddonRef) -> Result<(), BootstrapError> {
    let v = &addon.version;
    let ok = !v.is_empty()
        && v.len() <= 128
        && !v.starts_with(['.', '-'])
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        return Ok(());
    }
    let shown: String = v.chars().take(64).collect();
    let more = if shown.len() < v.len() { "…" } else { "" };
    Err(addon_error(
        &addon.name,
        format!(
            "its version {shown:?}{more} (the stack's addons[].version) is not an image tag: letters, digits, '_', '.' and '-', at most 128"
        ),
    ))
}

/// `value` quoted as a string of the INI dialect the cloud controller and Cinder CSI
/// read `cloud.conf` in (gcfg): in double quotes, with `\\` and `\"` escaped, so `;`,
/// `#`, `=` and brackets are data. Control characters are refused before this.
pub(crate) fn ini_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Fills the `{{ key }}` placeholders of one string of a parsed template. `{{ key | ini
/// }}` quotes the value for an INI file held in the string. An unknown key, an
/// unknown filter or an unclosed placeholder is an error. Values are not scanned
/// again: a value holding `{{` stays as it is.
fn fill_str(
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
        let (key, filter) = match after[..end].split_once('|') {
            Some((key, filter)) => (key.trim(), Some(filter.trim())),
            None => (after[..end].trim(), None),
        };
        let value = values
            .get(key)
            .ok_or_else(|| addon_error(addon, format!("unknown placeholder {{{{ {key} }}}}")))?;
        match filter {
            None => out.push_str(value),
            Some("ini") => out.push_str(&ini_quoted(value)),
            Some(other) => {
                return Err(addon_error(
                    addon,
                    format!("unknown filter {other:?} in {{{{ {key} | {other} }}}}"),
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills the placeholders in every string of a parsed template, in place. Only
/// values are filled: a placeholder in a mapping key is an error.
fn fill(
    addon: &str,
    node: &mut Value,
    values: &BTreeMap<&str, String>,
) -> Result<(), BootstrapError> {
    match node {
        Value::String(s) if s.contains("{{") => *s = fill_str(addon, s, values)?,
        Value::Array(items) => {
            for item in items {
                fill(addon, item, values)?;
            }
        }
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| k.contains("{{")) {
                return Err(addon_error(
                    addon,
                    format!("a mapping key holds a placeholder: {key:?}"),
                ));
            }
            for item in map.values_mut() {
                fill(addon, item, values)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Renders `addons` (in order) with `values`. Each template is parsed as YAML first,
/// with its placeholders still in it, and the values are then set into the strings of
/// the parsed objects: no value is ever parsed as YAML, so none can change a
/// manifest's shape.
pub fn render_addons(
    addons: &[AddonRef],
    values: &AddonValues,
) -> Result<Vec<RenderedAddon>, BootstrapError> {
    values.check()?;
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
            check_version(addon)?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(template)
                .map_err(|e| addon_error(&addon.name, format!("not valid YAML: {e}")))?;
            let mut objects: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
            let map = values.map(addon);
            for o in &mut objects {
                fill(&addon.name, o, &map)?;
            }
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
            node_cidr: "10.0.0.0/20".to_owned(),
            api_server_host: Some("10.0.0.10".to_owned()),
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
        assert!(
            conf.contains("application-credential-id = \"ac-id\""),
            "{conf}"
        );
        assert!(conf.contains("application-credential-secret = \"s3cr3t-value\""));
        assert!(conf.contains("region = \"RegionOne\""));
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
        assert_eq!(fill_str("x", "v={{ a }}!", &map).unwrap(), "v=1!");
        assert_eq!(fill_str("x", "v={{a|ini}}", &map).unwrap(), "v=\"1\"");
        assert!(fill_str("x", "v={{ b }}", &map).is_err());
        assert!(fill_str("x", "v={{ a", &map).is_err());
        assert!(fill_str("x", "v={{ a | yaml }}", &map).is_err());
    }

    /// The INI files kaas writes, read as the cloud controller's gcfg reads them:
    /// `[section]` headers, `key = value` with a quoted or bare value, comments.
    fn read_ini(text: &str) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                section = name.strip_suffix(']').expect("a closed section").to_owned();
                continue;
            }
            let (key, raw) = line.split_once('=').expect("key = value");
            let raw = raw.trim();
            let value = if let Some(quoted) = raw.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.chars();
                loop {
                    match chars.next().expect("a closing quote") {
                        '"' => break,
                        '\\' => value.push(chars.next().expect("an escaped character")),
                        c => value.push(c),
                    }
                }
                let after: String = chars.collect();
                assert!(
                    after.trim().is_empty() || after.trim().starts_with(['#', ';']),
                    "nothing but a comment after a quoted value: {line:?}"
                );
                value
            } else {
                raw.split(['#', ';']).next().unwrap_or("").trim().to_owned()
            };
            assert!(
                out.insert((section.clone(), key.trim().to_owned()), value)
                    .is_none(),
                "a key is set twice: {line:?}"
            );
        }
        out
    }

    /// Walks `base` and `got` together: they must be the same tree, except that each
    /// string holding `probe` in `base` holds `value` in its place in `got` (inside an
    /// INI file: the INI values, as read back). Returns how many places held the probe.
    fn same_but_probe(base: &Value, got: &Value, probe: &str, value: &str, at: &str) -> usize {
        match (base, got) {
            (Value::String(b), Value::String(g)) if b.contains(probe) => {
                if at.ends_with("cloud.conf") {
                    let want: BTreeMap<_, _> = read_ini(b)
                        .into_iter()
                        .map(|(k, v)| (k, v.replace(probe, value)))
                        .collect();
                    assert_eq!(read_ini(g), want, "{at}");
                } else {
                    assert!(*g == b.replace(probe, value), "{at}: {g:?}");
                }
                1
            }
            (Value::Array(b), Value::Array(g)) => {
                assert_eq!(b.len(), g.len(), "{at}: items added or removed");
                b.iter()
                    .zip(g)
                    .enumerate()
                    .map(|(i, (b, g))| same_but_probe(b, g, probe, value, &format!("{at}[{i}]")))
                    .sum()
            }
            (Value::Object(b), Value::Object(g)) => {
                assert!(
                    b.keys().eq(g.keys()),
                    "{at}: keys changed: {:?} -> {:?}",
                    b.keys().collect::<Vec<_>>(),
                    g.keys().collect::<Vec<_>>()
                );
                b.iter()
                    .map(|(k, b)| same_but_probe(b, &g[k], probe, value, &format!("{at}.{k}")))
                    .sum()
            }
            (b, g) => {
                assert_eq!(b, g, "{at}");
                0
            }
        }
    }

    type SetValue = fn(&mut AddonValues, &mut [AddonRef], String);

    #[test]
    fn hostile_values_are_refused_by_name_or_land_exactly_where_they_belong() {
        // Every string placeholder: its name, a valid probe value, and where it is set.
        // (proxyProtocol and enableIngressHostname are booleans kaas computes.)
        let placeholders: [(&str, &str, SetValue); 10] = [
            ("clusterName", "probe-name", |v, _, s| v.cluster_name = s),
            (
                "clusterUid",
                "9c3e1d2a-7b4f-4e6a-8d1c-5f0b2a9e3c71",
                |v, _, s| {
                    v.cluster_uid = s;
                },
            ),
            ("podCidr", "10.123.0.0/16", |v, _, s| v.pod_cidr = s),
            ("serviceCidr", "172.31.0.0/16", |v, _, s| v.service_cidr = s),
            ("authUrl", "https://probe.example:5000/v3", |v, _, s| {
                v.auth_url = s;
            }),
            ("region", "ProbeRegion", |v, _, s| v.region = s),
            (
                "applicationCredentialId",
                "probe-credential-id",
                |v, _, s| {
                    v.application_credential_id = s;
                },
            ),
            (
                "applicationCredentialSecret",
                "probe-credential-secret",
                |v, _, s| v.application_credential_secret = s,
            ),
            ("acmeEmail", "probe@example.org", |v, _, s| {
                v.acme_email = Some(s);
            }),
            ("version", "v9.9.9-probe", |_, addons, s| {
                addons[4].version = s;
            }),
        ];
        let long = "x".repeat(100_000);
        let hostile: Vec<&str> = vec![
            "x\"@y.z",
            "it's",
            "\"quoted\"",
            "back\\slash",
            "ends with \\",
            "line\nbreak",
            "cr\rreturn",
            "tab\there",
            "nul\0byte",
            "esc\u{1b}[31m",
            "{{ clusterUid }}",
            "{{",
            "}}",
            "{{ nope | ini }}",
            "&anchor value",
            "*alias",
            "<<: *merge",
            "!!binary aGk=",
            "- item",
            "key: value",
            "? complex",
            "# comment",
            "; comment",
            "[Global]",
            "a = b",
            "--flag=1",
            " leading",
            "trailing ",
            "",
            "ünïcödé",
            "日本語",
            "\u{202e}rtl",
            "😀",
            "ops@example.org\n[Global]\nauth-url = \"evil\"",
            "https://x.example/{{a}}?q=\"1\";#[x]",
            &long,
        ];
        let mut landed = BTreeMap::<&str, usize>::new();
        for (name, probe, set) in placeholders {
            let mut base_values = values("v1.36.4");
            let mut base_addons = all();
            set(&mut base_values, &mut base_addons, probe.to_owned());
            let base = render_addons(&base_addons, &base_values).unwrap();
            let base =
                serde_json::to_value(base.iter().map(|a| &a.objects).collect::<Vec<_>>()).unwrap();
            for value in &hostile {
                let mut v = values("v1.36.4");
                let mut addons = all();
                set(&mut v, &mut addons, (*value).to_owned());
                match render_addons(&addons, &v) {
                    Err(e) => {
                        let e = e.to_string();
                        assert!(e.contains(name), "{name} = {value:.60?}: {e}");
                        assert!(e.len() < 400, "the error repeats a long value: {e:.80}");
                        assert!(!e.contains("probe-credential"), "{e}");
                    }
                    Ok(got) => {
                        let got = serde_json::to_value(
                            got.iter().map(|a| &a.objects).collect::<Vec<_>>(),
                        )
                        .unwrap();
                        let places = same_but_probe(&base, &got, probe, value, name);
                        assert!(places > 0, "{name}: the probe is found nowhere");
                        *landed.entry(name).or_default() += 1;
                    }
                }
            }
        }
        // Free-text values land as data, quotes, brackets, `{{` and all; values with a
        // grammar of their own refuse every hostile value.
        for name in [
            "region",
            "applicationCredentialId",
            "applicationCredentialSecret",
        ] {
            assert!(
                landed.get(name).copied().unwrap_or(0) >= 25,
                "{name}: {landed:?}"
            );
        }
        assert!(
            landed.get("authUrl").copied().unwrap_or(0) >= 1,
            "{landed:?}"
        );
        for name in [
            "clusterName",
            "clusterUid",
            "podCidr",
            "serviceCidr",
            "acmeEmail",
        ] {
            assert_eq!(landed.get(name), None, "{name}: {landed:?}");
        }
    }
}

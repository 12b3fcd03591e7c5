//! What a cluster's addons are rendered from and into: the cluster's values
//! ([`AddonValues`], each checked where it enters and named in the error) and the
//! rendered objects ([`RenderedAddon`]), ready for server-side apply. The addons
//! themselves are upstream charts and manifests ([`crate::upstream`]).
//!
//! Rendered objects may hold the cluster's application credential secret (the cloud
//! controller's `cloud.conf`): [`RenderedAddon`]'s `Debug` shows object names only.

use std::fmt;

use serde_json::Value;

use kaas_core::cluster::ClusterSpec;
use kaas_core::stack::{ClusterStack, Feature};

use crate::BootstrapError;
use crate::kubeadm::KubernetesVersion;

/// The cluster's values that stacks set into their addons' charts
/// (`kaas_core::stack::ClusterValueSource`).
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
    /// Whether the cluster has the ingress (IngressClass `nginx`): cert-manager's
    /// issuers solve HTTP-01 challenges through it.
    pub ingress: bool,
    /// The namespace of the Gateway API implementation, when the cluster has the Gateway
    /// API option: kaas's shared Gateway goes there, and cert-manager's issuers solve
    /// HTTP-01 challenges through it.
    pub gateway_namespace: Option<String>,
}

/// What only the cloud knows of a cluster: its Keystone URL and region, and the
/// cluster's own application credential.
pub struct CloudValues {
    pub auth_url: String,
    pub region: String,
    pub application_credential_id: String,
    pub application_credential_secret: String,
}

impl AddonValues {
    /// The values of the cluster `name` (`uid`) with `spec`, on `stack`, whose API's
    /// VIP is `api_server_host` (once it has one).
    pub fn for_cluster(
        name: &str,
        uid: &str,
        spec: &ClusterSpec,
        stack: &ClusterStack,
        api_server_host: Option<String>,
        cloud: CloudValues,
    ) -> Result<Self, BootstrapError> {
        let chosen = stack.addons_for(&spec.addons);
        Ok(AddonValues {
            cluster_name: name.to_owned(),
            cluster_uid: uid.to_owned(),
            pod_cidr: spec.network.pod_cidr.clone(),
            service_cidr: spec.network.service_cidr.clone(),
            node_cidr: spec.network.node_cidr.clone(),
            api_server_host,
            kubernetes_version: KubernetesVersion::parse(stack.kubernetes_version())?,
            auth_url: cloud.auth_url,
            region: cloud.region,
            application_credential_id: cloud.application_credential_id,
            application_credential_secret: cloud.application_credential_secret,
            proxy_protocol: spec
                .addons
                .ingress
                .as_ref()
                .is_some_and(|i| i.proxy_protocol),
            acme_email: spec
                .addons
                .cert_manager
                .as_ref()
                .map(|c| c.acme_email.clone()),
            ingress: spec.addons.ingress.is_some(),
            // Where the Gateway API implementation (a chart, beside the CRDs'
            // manifest) is installed.
            gateway_namespace: chosen
                .iter()
                .find(|a| a.feature() == Some(Feature::Gateway) && a.chart.is_some())
                .map(|a| crate::upstream::release_namespace(a).to_owned()),
        })
    }
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
            ingress: true,
            gateway_namespace: None,
        }
    }

    #[test]
    fn values_that_would_reshape_what_they_enter_are_refused_by_name() {
        values("v1.36.4").check().unwrap();
        type Spoil = fn(&mut AddonValues);
        let cases: [(&str, Spoil); 9] = [
            ("clusterName", |v| {
                v.cluster_name = "prod\nkind: Secret".into()
            }),
            ("clusterUid", |v| v.cluster_uid = "not-a-uid".into()),
            ("podCidr", |v| v.pod_cidr = "10.244.0.0/16 # x".into()),
            ("nodeCidr", |v| v.node_cidr = "10.0.0.0/33".into()),
            ("apiServerHost", |v| v.api_server_host = Some("a b".into())),
            ("authUrl", |v| v.auth_url = "file:///etc/passwd".into()),
            ("region", |v| v.region = "One\n[Global]".into()),
            ("applicationCredentialSecret", |v| {
                v.application_credential_secret = "s\0".into();
            }),
            ("acmeEmail", |v| v.acme_email = Some("x\"@y.z".into())),
        ];
        for (field, spoil) in cases {
            let mut v = values("v1.36.4");
            spoil(&mut v);
            let e = v.check().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
            // A secret is never quoted back.
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn ini_strings_are_quoted_with_their_quotes_and_backslashes_escaped() {
        assert_eq!(ini_quoted("plain"), "\"plain\"");
        assert_eq!(ini_quoted("a;b#c=d[e]"), "\"a;b#c=d[e]\"");
        assert_eq!(ini_quoted("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    }
}

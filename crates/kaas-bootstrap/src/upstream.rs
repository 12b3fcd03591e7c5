//! Addons from their upstream releases: a Helm chart rendered as `helm template` does
//! (with the stack's values and the cluster's values set at the paths the stack names),
//! or a plain manifest, each already fetched and checked against its digest.
//!
//! The cluster's values go into the chart's values as data (strings, booleans,
//! numbers, lists), never into template text; the chart's own templates decide where
//! they end up. Everything rendered lands in the addon's release namespace unless it
//! names its own, and that namespace is created with it.

use std::sync::Arc;

use kaas_core::stack::{ClusterValueSource, Feature, StackAddon};
use serde_json::{Map, Value, json};

use crate::BootstrapError;
use crate::addons::{AddonValues, RenderedAddon, addon_error, ini_quoted, object_ref};

/// What an addon is installed from, fetched and verified.
#[derive(Debug, Clone)]
pub enum UpstreamArtifact {
    Chart(Arc<kaas_helm::Chart>),
    /// A multi-document YAML manifest.
    Manifest(Arc<str>),
}

impl UpstreamArtifact {
    /// An addon's artifact from its bytes (already checked against its digest): a
    /// chart's `.tgz`, or a manifest.
    pub fn load(addon: &StackAddon, bytes: &[u8]) -> Result<Self, String> {
        if let Some(reference) = &addon.chart {
            let chart = kaas_helm::Chart::from_archive(bytes)
                .map_err(|e| format!("addon {}: {e}", addon.name))?;
            // The digest says which archive; the stack must also say what it holds.
            let (name, version) = (&chart.metadata.name, &chart.metadata.version);
            if *name != reference.name || *version != addon.version {
                return Err(format!(
                    "addon {}: the pinned chart is {name} {version}, but the stack names {} {}",
                    addon.name, reference.name, addon.version
                ));
            }
            Ok(UpstreamArtifact::Chart(Arc::new(chart)))
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| format!("addon {}: the manifest is not UTF-8", addon.name))?;
            Ok(UpstreamArtifact::Manifest(Arc::from(text)))
        }
    }
}

/// The API server's port on the load balancer.
const API_SERVER_PORT: u16 = 6443;

/// The IngressClass of the stacks' ingress controller.
pub const INGRESS_CLASS: &str = "nginx";
/// The GatewayClass of the stacks' Gateway API implementation.
pub const GATEWAY_CLASS: &str = "nginx";
/// kaas's shared Gateway, in the implementation's namespace: an HTTP listener on port
/// 80 that routes of every namespace may attach to.
pub const SHARED_GATEWAY: &str = "shared";

/// Let's Encrypt's ACME directories, as kaas's ClusterIssuers name them.
const ACME_ISSUERS: [(&str, &str); 2] = [
    (
        "letsencrypt-staging",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    (
        "letsencrypt-production",
        "https://acme-v02.api.letsencrypt.org/directory",
    ),
];

/// cert-manager's ClusterIssuers for Let's Encrypt (staging and production), for the
/// cluster's ACME e-mail, solving HTTP-01 challenges through the ingress and through
/// the shared Gateway, whichever the cluster has. None without an e-mail, or with
/// neither (nothing could answer a challenge).
pub fn acme_issuers(values: &AddonValues) -> Vec<Value> {
    let Some(email) = values.acme_email.as_deref().filter(|e| !e.is_empty()) else {
        return Vec::new();
    };
    let mut solvers = Vec::new();
    if values.ingress {
        solvers.push(json!({"http01": {"ingress": {"ingressClassName": INGRESS_CLASS}}}));
    }
    if let Some(namespace) = &values.gateway_namespace {
        solvers.push(json!({"http01": {"gatewayHTTPRoute": {"parentRefs": [{
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": SHARED_GATEWAY,
            "namespace": namespace,
            "sectionName": "http",
        }]}}}));
    }
    if solvers.is_empty() {
        return Vec::new();
    }
    ACME_ISSUERS
        .iter()
        .map(|(name, server)| {
            json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "ClusterIssuer",
                "metadata": {"name": name},
                "spec": {"acme": {
                    "server": server,
                    "email": email,
                    "privateKeySecretRef": {"name": format!("{name}-account")},
                    "solvers": solvers,
                }},
            })
        })
        .collect()
}

/// kaas's shared Gateway, in `namespace`.
pub fn shared_gateway(namespace: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": SHARED_GATEWAY, "namespace": namespace},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [{
                "name": "http",
                "protocol": "HTTP",
                "port": 80,
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }],
        },
    })
}

/// The namespace an addon's release goes into: the stack's, else the addon's name.
pub fn release_namespace(addon: &StackAddon) -> &str {
    addon.namespace.as_deref().unwrap_or(&addon.name)
}

/// The cloud controller's and Cinder CSI's `cloud.conf`: the cluster's application
/// credential, quoted for INI.
pub fn cloud_conf(values: &AddonValues) -> String {
    format!(
        "[Global]\nauth-url = {}\napplication-credential-id = {}\napplication-credential-secret = {}\nregion = {}\n\n[LoadBalancer]\nlb-provider = amphora\n",
        ini_quoted(&values.auth_url),
        ini_quoted(&values.application_credential_id),
        ini_quoted(&values.application_credential_secret),
        ini_quoted(&values.region),
    )
}

/// One of the cluster's values, as chart data.
pub fn cluster_value(
    addon: &str,
    source: ClusterValueSource,
    values: &AddonValues,
) -> Result<Value, BootstrapError> {
    Ok(match source {
        ClusterValueSource::ClusterName => json!(values.cluster_name),
        ClusterValueSource::ClusterUid => json!(values.cluster_uid),
        ClusterValueSource::PodCidr => json!(values.pod_cidr),
        ClusterValueSource::ServiceCidr => json!(values.service_cidr),
        ClusterValueSource::ApiServerHost => match &values.api_server_host {
            Some(host) => json!(host),
            None => {
                return Err(addon_error(
                    addon,
                    "its values need the API server's address, and the cluster has no load balancer VIP yet",
                ));
            }
        },
        ClusterValueSource::ApiServerPort => json!(API_SERVER_PORT),
        ClusterValueSource::CloudConf => json!(cloud_conf(values)),
        ClusterValueSource::ProxyProtocol => json!(values.proxy_protocol),
        ClusterValueSource::ProxyProtocolString => json!(values.proxy_protocol.to_string()),
        ClusterValueSource::NodeCidr => json!(values.node_cidr),
        ClusterValueSource::TrustedProxyAddresses => {
            json!([{"type": "CIDR", "value": values.node_cidr}])
        }
        ClusterValueSource::GatewayApi => json!(values.gateway_namespace.is_some()),
        ClusterValueSource::AcmeEmail => match values.acme_email.as_deref() {
            Some(email) if !email.is_empty() => json!(email),
            _ => {
                return Err(addon_error(
                    addon,
                    "its ACME issuers need an e-mail address (spec.addons.certManager.acmeEmail)",
                ));
            }
        },
    })
}

/// The values kaas gives the chart: the stack's, with the cluster's set at their paths
/// (creating the maps on the way; a path through something that is not a map is an
/// error naming the path).
pub fn chart_values(addon: &StackAddon, values: &AddonValues) -> Result<Value, BootstrapError> {
    let mut root = Value::Object(addon.values.clone());
    for (i, set) in addon.cluster_values.iter().enumerate() {
        let value = cluster_value(&addon.name, set.value, values)?;
        let Some((last, parents)) = set.path.split_last() else {
            return Err(addon_error(
                &addon.name,
                format!("clusterValues[{i}].path is empty"),
            ));
        };
        let mut at = &mut root;
        for key in parents {
            let Value::Object(map) = at else {
                return Err(addon_error(
                    &addon.name,
                    format!(
                        "clusterValues[{i}].path {:?}: {key:?} is inside a value that is not a map",
                        set.path
                    ),
                ));
            };
            at = map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        let Value::Object(map) = at else {
            return Err(addon_error(
                &addon.name,
                format!(
                    "clusterValues[{i}].path {:?}: its parent is not a map",
                    set.path
                ),
            ));
        };
        map.insert(last.clone(), value);
    }
    Ok(root)
}

/// Renders an upstream addon for the cluster: its namespace first, then the chart's
/// CRDs, objects and install hooks (which kaas applies with the rest and waits for), or
/// the manifest's objects.
pub fn render_upstream_addon(
    addon: &StackAddon,
    artifact: &UpstreamArtifact,
    values: &AddonValues,
) -> Result<RenderedAddon, BootstrapError> {
    values.check()?;
    let namespace = release_namespace(addon);
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace},
    })];
    match artifact {
        UpstreamArtifact::Chart(chart) => {
            let options = kaas_helm::RenderOptions {
                release_name: addon.name.clone(),
                namespace: namespace.to_owned(),
                kube_version: values.kubernetes_version.to_string(),
                api_versions: Vec::new(),
                values: vec![chart_values(addon, values)?],
                include_crds: true,
            };
            let mut rendered = kaas_helm::render(chart, &options)
                .map_err(|e| addon_error(&addon.name, e.to_string()))?;
            rendered.set_default_namespace(namespace);
            objects.extend(rendered.crds);
            // CRDs a chart renders from its templates (as cert-manager's does) come in
            // Helm's install order after ServiceAccounts, Secrets and ConfigMaps; they go
            // with the chart's other CRDs, before every object, as they are applied.
            let (crds, others): (Vec<Value>, Vec<Value>) = rendered
                .objects
                .into_iter()
                .partition(|o| o["kind"] == "CustomResourceDefinition");
            objects.extend(crds);
            objects.extend(others);
            objects.extend(
                rendered
                    .hooks
                    .into_iter()
                    .filter(|h| {
                        h.events
                            .iter()
                            .any(|e| e == "pre-install" || e == "post-install")
                    })
                    .map(|h| h.object),
            );
        }
        UpstreamArtifact::Manifest(text) => {
            let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
                addon_error(&addon.name, format!("the manifest is not valid YAML: {e}"))
            })?;
            let mut docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
            let scope = kaas_helm::ClusterScope::from_objects(&docs);
            kaas_helm::set_default_namespace(&mut docs, namespace, |api_version, kind| {
                scope.is_cluster_scoped(api_version, kind)
            });
            objects.extend(docs);
        }
    }
    // What kaas adds from the cluster's spec: cert-manager's ACME issuers, and the
    // shared Gateway with the Gateway API implementation (not with its CRDs).
    match (addon.feature(), artifact) {
        (Some(Feature::CertManager), _) => objects.extend(acme_issuers(values)),
        (Some(Feature::Gateway), UpstreamArtifact::Chart(_)) => {
            objects.push(shared_gateway(namespace));
        }
        _ => {}
    }
    // The release namespace is kaas's: a chart's own Namespace object of that name
    // would be a second copy in the apply set.
    let mut seen = std::collections::BTreeSet::new();
    objects.retain(|o| seen.insert(object_ref(o)));
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
            return Err(addon_error(
                &addon.name,
                format!("an object has no metadata.name: {}", object_ref(o)),
            ));
        }
    }
    Ok(RenderedAddon {
        name: addon.name.clone(),
        version: addon.version.clone(),
        objects,
    })
}

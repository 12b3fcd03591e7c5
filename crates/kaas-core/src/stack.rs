//! Cluster stacks: versioned bundles of a Kubernetes version, a node image and addons,
//! kept as data (a folder with a `stack.yaml`), and the SCS version policy that says
//! which of them are past end of life or behind on patches.
//!
//! The built-in stacks and release data live in the repository's `stacks/` folder and
//! are compiled in; an operator adds stacks from a folder at run time.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::API_VERSION;

/// The stack a cluster gets when its spec names none, unless the operator chose
/// another ([`StackCatalog::set_default`]).
pub const DEFAULT_STACK: &str = "scs-1.36";

/// The stacks compiled into kaas, from `stacks/*/stack.yaml`.
const BUILTIN_STACK_FILES: [(&str, &str); 3] = [
    (
        "stacks/scs-1.35/stack.yaml",
        include_str!("../../../stacks/scs-1.35/stack.yaml"),
    ),
    (
        "stacks/scs-1.36/stack.yaml",
        include_str!("../../../stacks/scs-1.36/stack.yaml"),
    ),
    (
        "stacks/scs-1.37/stack.yaml",
        include_str!("../../../stacks/scs-1.37/stack.yaml"),
    ),
];

/// The Kubernetes release data compiled into kaas.
pub const BUILTIN_KUBERNETES_VERSIONS: &str =
    include_str!("../../../stacks/kubernetes-versions.yaml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterStack {
    pub api_version: String,
    pub kind: String,
    pub metadata: StackMeta,
    pub spec: StackSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackMeta {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackSpec {
    /// The stack's own version (`v1`, `v2`): a stack changes when an addon or the image
    /// does, even at the same Kubernetes version.
    pub version: String,
    /// The exact Kubernetes version, e.g. `v1.36.4`.
    pub kubernetes_version: String,
    pub node_image: NodeImage,
    /// Addons in the order they are applied.
    #[serde(default)]
    pub addons: Vec<StackAddon>,
    /// The stacks a cluster may be upgraded from to this one.
    #[serde(default)]
    pub upgrades_from: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeImage {
    /// The image's name in the cloud.
    pub name: String,
    /// Where the image can be downloaded from, for clouds that do not have it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `sha256:<64 hex>` of the image file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Glance image properties (`os_distro`, `hw_disk_bus`, …).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackAddon {
    pub name: String,
    /// The upstream release: the chart's version, or the manifest's release.
    pub version: String,
    /// Installed only when the cluster's spec asks for it.
    #[serde(default)]
    pub optional: bool,
    /// The cluster feature that turns an optional addon on (`ingress`, `gateway`,
    /// `certManager`, `metricsServer`, `registry`); by default its name decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<Feature>,
    /// The upstream Helm chart it is installed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartRef>,
    /// The upstream plain manifest it is installed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestRef>,
    /// The namespace the chart is installed into (its release namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Values the stack sets over the chart's defaults.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Values kaas sets from the cluster, each at a path of the chart's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_values: Vec<ClusterValue>,
}

/// An optional part of a cluster that its spec turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Feature {
    Ingress,
    Gateway,
    CertManager,
    MetricsServer,
    Registry,
}

/// A Helm chart, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartRef {
    /// `oci://HOST/PATH` (the chart is `PATH/NAME` in that registry) or the
    /// `https://` address of a chart repository (its `index.yaml`).
    pub repository: String,
    /// The chart's name.
    pub name: String,
    /// `sha256:<64 hex digits>` of the chart's `.tgz`, wherever it is published: the
    /// digest a chart repository's `index.yaml` records, and the chart layer of the
    /// same release in an OCI registry.
    pub digest: String,
}

/// A plain multi-document YAML manifest, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestRef {
    /// `https://…` (or `http://` for a local mirror).
    pub url: String,
    /// `sha256:<64 hex digits>` of the file.
    pub digest: String,
}

/// One value kaas sets in a chart's values from what it knows of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterValue {
    /// Where in the chart's values, one key per element (keys may hold dots:
    /// `[controller, service, annotations, loadbalancer.openstack.org/proxy-protocol]`).
    pub path: Vec<String>,
    /// Which of the cluster's values goes there.
    pub value: ClusterValueSource,
}

/// The cluster's values a stack can set into charts. Each goes in as data (a string,
/// a boolean or a list), never spliced into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClusterValueSource {
    /// The cluster's name.
    ClusterName,
    /// The cluster's uid: unique in the cloud, where two tenants' clusters may share a
    /// name (the cloud controller names load balancers after it).
    ClusterUid,
    /// The pods' CIDR (`10.244.0.0/16`).
    PodCidr,
    /// The services' CIDR.
    ServiceCidr,
    /// The API server's address inside the cluster's network (the VIP).
    ApiServerHost,
    /// The API server's port (6443), as a string.
    ApiServerPort,
    /// The cloud controller's and Cinder CSI's `cloud.conf` (holds the cluster's
    /// application credential).
    CloudConf,
    /// Whether the ingress's load balancer speaks PROXY protocol to it.
    ProxyProtocol,
    /// `"true"`/`"false"` of the same, for annotations and config maps.
    ProxyProtocolString,
    /// The nodes' subnet (`10.0.0.0/20`), where the load balancers' PROXY protocol
    /// headers come from.
    NodeCidr,
    /// The same as a list of Gateway API-style trusted addresses:
    /// `[{type: CIDR, value: 10.0.0.0/20}]`.
    TrustedProxyAddresses,
    /// The ACME account's e-mail.
    AcmeEmail,
    /// Whether the cluster has the Gateway API option (cert-manager's
    /// `config.enableGatewayAPI`).
    GatewayApi,
}

/// Whether `digest` is `sha256:<64 lower-case hex digits>`.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl StackAddon {
    /// Checks one addon; the error starts with the field (`chart.digest: …`).
    pub fn validate(&self) -> Result<(), String> {
        crate::validation::check_dns_label(&self.name)
            .map_err(|e| format!("name: {:?} {e}", self.name))?;
        if self.version.trim().is_empty() {
            return Err("version: must not be empty".to_owned());
        }
        match (&self.chart, &self.manifest) {
            (Some(_), Some(_)) => {
                return Err("chart: an addon comes from a chart or a manifest, not both".to_owned());
            }
            (Some(chart), None) => {
                let oci = chart.repository.strip_prefix("oci://");
                let https = chart.repository.starts_with("https://")
                    || chart.repository.starts_with("http://");
                if oci.is_none_or(|rest| rest.is_empty()) && !https {
                    return Err(format!(
                        "chart.repository: {:?} is neither oci://HOST/PATH nor an http(s):// chart repository",
                        chart.repository
                    ));
                }
                crate::validation::check_dns_label(&chart.name)
                    .map_err(|e| format!("chart.name: {:?} {e}", chart.name))?;
                if !is_sha256_digest(&chart.digest) {
                    return Err(format!(
                        "chart.digest: {:?} is not sha256:<64 lower-case hex digits>",
                        chart.digest
                    ));
                }
            }
            (None, Some(manifest)) => {
                if !(manifest.url.starts_with("https://") || manifest.url.starts_with("http://")) {
                    return Err(format!(
                        "manifest.url: {:?} is not an http(s) URL",
                        manifest.url
                    ));
                }
                if !is_sha256_digest(&manifest.digest) {
                    return Err(format!(
                        "manifest.digest: {:?} is not sha256:<64 lower-case hex digits>",
                        manifest.digest
                    ));
                }
            }
            (None, None) => {
                return Err(
                    "chart: an addon comes from an upstream chart or manifest; this names neither"
                        .to_owned(),
                );
            }
        }
        if let Some(ns) = &self.namespace {
            crate::validation::check_dns_label(ns).map_err(|e| format!("namespace: {ns:?} {e}"))?;
        }
        for (i, v) in self.cluster_values.iter().enumerate() {
            if v.path.is_empty() || v.path.iter().any(|k| k.is_empty()) {
                return Err(format!(
                    "clusterValues[{i}].path: must be one or more non-empty keys"
                ));
            }
        }
        Ok(())
    }

    /// The feature that turns this addon on, if it is optional.
    pub fn feature(&self) -> Option<Feature> {
        if let Some(feature) = self.feature {
            return Some(feature);
        }
        match self.name.as_str() {
            "metrics-server" => Some(Feature::MetricsServer),
            "ingress-nginx" | "nginx-ingress" => Some(Feature::Ingress),
            "cert-manager" => Some(Feature::CertManager),
            "registry" => Some(Feature::Registry),
            _ => None,
        }
    }
}

impl ClusterStack {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn kubernetes_version(&self) -> &str {
        &self.spec.kubernetes_version
    }

    pub fn image(&self) -> &str {
        &self.spec.node_image.name
    }

    /// The addons a cluster with `chosen` runs, in the stack's order: every required
    /// one (metrics-server unless turned off) and the optional ones it asks for.
    pub fn addons_for(&self, chosen: &crate::cluster::Addons) -> Vec<&StackAddon> {
        self.spec
            .addons
            .iter()
            .filter(|a| match a.feature() {
                Some(Feature::MetricsServer) => chosen.metrics_server,
                Some(Feature::Ingress) => chosen.ingress.is_some(),
                Some(Feature::Gateway) => chosen.gateway.is_some(),
                Some(Feature::CertManager) => chosen.cert_manager.is_some(),
                Some(Feature::Registry) => chosen.registry,
                None => !a.optional,
            })
            .collect()
    }

    /// Reads a `stack.yaml`; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<ClusterStack, String> {
        let stack: ClusterStack =
            serde_saphyr::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        stack.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(stack)
    }

    /// Checks what serde cannot: names, versions, checksums.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_version != API_VERSION || self.kind != "ClusterStack" {
            return Err(format!(
                "must be apiVersion {API_VERSION}, kind ClusterStack"
            ));
        }
        // A DNS-1123 subdomain: labels joined by dots (`scs-1.36`).
        let name = &self.metadata.name;
        if name.len() > 63
            || name
                .split('.')
                .any(|label| crate::validation::check_dns_label(label).is_err())
        {
            return Err(format!(
                "metadata.name: {name:?} must be lower-case letters, digits, '-' and '.', at most 63 characters"
            ));
        }
        if version_triple(&self.spec.kubernetes_version).is_none() {
            return Err(format!(
                "spec.kubernetesVersion: {:?} is not an exact version such as v1.36.4",
                self.spec.kubernetes_version
            ));
        }
        if self.spec.node_image.name.trim().is_empty() {
            return Err("spec.nodeImage.name: must not be empty".to_owned());
        }
        if let Some(sum) = &self.spec.node_image.checksum {
            let hex = sum.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "spec.nodeImage.checksum: {sum:?} is not sha256:<64 hex digits>"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, addon) in self.spec.addons.iter().enumerate() {
            if !seen.insert(addon.name.as_str()) {
                return Err(format!(
                    "spec.addons[{i}].name: {:?} is listed twice",
                    addon.name
                ));
            }
            addon
                .validate()
                .map_err(|e| format!("spec.addons[{i}].{e}"))?;
        }
        Ok(())
    }
}

/// Every stack kaas knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackCatalog {
    stacks: Vec<ClusterStack>,
    /// The operator's default stack, if not [`DEFAULT_STACK`].
    default: Option<String>,
}

impl StackCatalog {
    /// The stacks compiled into kaas.
    pub fn builtin() -> Result<StackCatalog, String> {
        let mut catalog = StackCatalog::default();
        for (origin, text) in BUILTIN_STACK_FILES {
            catalog.add(ClusterStack::parse(origin, text)?)?;
        }
        Ok(catalog)
    }

    /// Adds a stack; a second stack of the same name is refused.
    pub fn add(&mut self, stack: ClusterStack) -> Result<(), String> {
        if self.find(stack.name()).is_some() {
            return Err(format!("stack {} is defined twice", stack.name()));
        }
        self.stacks.push(stack);
        self.stacks
            .sort_by_key(|s| (version_triple(s.kubernetes_version()), s.name().to_owned()));
        Ok(())
    }

    pub fn find(&self, name: &str) -> Option<&ClusterStack> {
        self.stacks.iter().find(|s| s.name() == name)
    }

    /// The stack a cluster gets when its spec names none.
    pub fn default_stack(&self) -> &str {
        self.default.as_deref().unwrap_or(DEFAULT_STACK)
    }

    /// Makes `name`, a stack of the catalog, the default.
    pub fn set_default(&mut self, name: &str) -> Result<(), String> {
        if self.find(name).is_none() {
            return Err(format!(
                "the default stack {name:?} is not a known stack; known: {}",
                self.names().join(", ")
            ));
        }
        self.default = Some(name.to_owned());
        Ok(())
    }

    /// The stack whose Kubernetes version is `version`.
    pub fn for_version(&self, version: &str) -> Option<&ClusterStack> {
        self.stacks
            .iter()
            .find(|s| s.kubernetes_version() == version)
    }

    /// Oldest Kubernetes first.
    pub fn all(&self) -> &[ClusterStack] {
        &self.stacks
    }

    pub fn names(&self) -> Vec<&str> {
        self.stacks.iter().map(|s| s.name()).collect()
    }

    /// Whether a cluster on `from` may move to `to` (running `running` now, if known):
    /// `to` lists `from` in `upgradesFrom` (or only its version changes within the same
    /// stack name), and Kubernetes moves by at most one minor, never down.
    pub fn check_change(
        &self,
        from: &ClusterStack,
        to: &ClusterStack,
        running: Option<&str>,
    ) -> Result<(), String> {
        check_upgrade(from.kubernetes_version(), to.kubernetes_version())?;
        if let Some(running) = running {
            check_upgrade(running, to.kubernetes_version())?;
        }
        let same_minor = minor_of(from.kubernetes_version()) == minor_of(to.kubernetes_version());
        if !same_minor && !to.spec.upgrades_from.iter().any(|f| f == from.name()) {
            return Err(format!(
                "stack {} does not list {} among the stacks it upgrades from ({})",
                to.name(),
                from.name(),
                if to.spec.upgrades_from.is_empty() {
                    "none".to_owned()
                } else {
                    to.spec.upgrades_from.join(", ")
                }
            ));
        }
        Ok(())
    }
}

/// Where kaas's built-in release data comes from: the release schedule of the
/// Kubernetes website (kubernetes.io/releases is built from it).
pub const UPSTREAM_SCHEDULE_URL: &str =
    "https://raw.githubusercontent.com/kubernetes/website/main/data/releases/schedule.yaml";

/// Kubernetes release data: end of life per minor, and patch releases, with where and
/// when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesVersions {
    pub api_version: String,
    pub kind: String,
    /// Where the data was taken from (a URL, or the file it was read from). Files
    /// written before kaas recorded it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The day the data was taken from `source`: how old it is. Releases after it are
    /// missing unless added by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_on: Option<NaiveDate>,
    /// How many days a newer patch release may go unprovided.
    pub patch_grace_days: u32,
    pub releases: Vec<KubernetesRelease>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesRelease {
    /// `1.36`.
    pub minor: String,
    pub end_of_life: NaiveDate,
    /// Newest first.
    #[serde(default)]
    pub patches: Vec<PatchRelease>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchRelease {
    pub version: String,
    pub released: NaiveDate,
}

/// The longest patch grace the data may set: a year, beyond which the policy would say
/// nothing.
const MAX_PATCH_GRACE_DAYS: u32 = 365;

impl KubernetesVersions {
    pub fn parse(origin: &str, text: &str) -> Result<KubernetesVersions, String> {
        let v: KubernetesVersions =
            serde_saphyr::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        v.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(v)
    }

    pub fn builtin() -> Result<KubernetesVersions, String> {
        Self::parse(
            "stacks/kubernetes-versions.yaml",
            BUILTIN_KUBERNETES_VERSIONS,
        )
    }

    /// Checks what serde cannot: kind, provenance, minors and versions that agree, no
    /// release listed twice.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_version != API_VERSION || self.kind != "KubernetesVersions" {
            return Err(format!(
                "must be apiVersion {API_VERSION}, kind KubernetesVersions"
            ));
        }
        match (&self.source, self.taken_on) {
            (Some(source), Some(_)) => {
                if source.trim().is_empty() {
                    return Err("source: must not be empty".to_owned());
                }
                if source.chars().any(char::is_control) {
                    return Err(format!(
                        "source: {source:?} must be one line without control characters"
                    ));
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err("takenOn: missing; source and takenOn go together".to_owned());
            }
            (None, Some(_)) => {
                return Err("source: missing; source and takenOn go together".to_owned());
            }
        }
        if self.patch_grace_days > MAX_PATCH_GRACE_DAYS {
            return Err(format!(
                "patchGraceDays: {} is more than {MAX_PATCH_GRACE_DAYS}",
                self.patch_grace_days
            ));
        }
        let mut minors = std::collections::BTreeSet::new();
        for (i, release) in self.releases.iter().enumerate() {
            let minor = minor_number(&release.minor).ok_or_else(|| {
                format!(
                    "releases[{i}].minor: {:?} is not a minor version such as \"1.36\"",
                    release.minor
                )
            })?;
            if !minors.insert(minor) {
                return Err(format!(
                    "releases[{i}].minor: {:?} is listed twice",
                    release.minor
                ));
            }
            let mut versions = std::collections::BTreeSet::new();
            for (j, patch) in release.patches.iter().enumerate() {
                let field = format!("releases[{i}].patches[{j}]");
                match version_triple(&patch.version) {
                    Some((major, minor_n, _)) if (major, minor_n) == minor => {}
                    Some(_) => {
                        return Err(format!(
                            "{field}.version: {} is not a release of {}",
                            patch.version, release.minor
                        ));
                    }
                    None => {
                        return Err(format!(
                            "{field}.version: {:?} is not an exact version such as v{}.0",
                            patch.version, release.minor
                        ));
                    }
                }
                if !versions.insert(patch.version.as_str()) {
                    return Err(format!(
                        "{field}.version: {} is listed twice",
                        patch.version
                    ));
                }
            }
        }
        Ok(())
    }

    /// The document as YAML, in the layout of `stacks/kubernetes-versions.yaml`: minors
    /// oldest first, patches newest first, one line each. [`KubernetesVersions::parse`]
    /// reads it back unchanged; versions go unquoted, as `validate` lets through
    /// nothing but `v` and digits and dots.
    pub fn to_yaml(&self) -> String {
        use std::fmt::Write as _;
        let mut releases = self.releases.clone();
        releases.sort_by_key(|r| minor_number(&r.minor));
        for release in &mut releases {
            release
                .patches
                .sort_by_key(|p| std::cmp::Reverse(version_triple(&p.version)));
        }
        let mut out = String::from(
            "# Kubernetes release series, for the SCS version policy (which stacks are past end of\n\
             # life, which lag behind a patch release). Written by\n\
             # `kaas stack versions update`; load it with `kaas server --kubernetes-versions FILE`.\n",
        );
        let _ = writeln!(out, "apiVersion: {}", self.api_version);
        let _ = writeln!(out, "kind: {}", self.kind);
        if let Some(source) = &self.source {
            let _ = writeln!(out, "source: {}", yaml_quoted(source));
        }
        if let Some(taken_on) = self.taken_on {
            let _ = writeln!(out, "takenOn: {taken_on}");
        }
        let _ = writeln!(out, "patchGraceDays: {}", self.patch_grace_days);
        out.push_str("releases:\n");
        for release in &releases {
            let _ = writeln!(out, "  - minor: {}", yaml_quoted(&release.minor));
            let _ = writeln!(out, "    endOfLife: {}", release.end_of_life);
            if release.patches.is_empty() {
                out.push_str("    patches: []\n");
                continue;
            }
            out.push_str("    patches:\n");
            for p in &release.patches {
                let _ = writeln!(
                    out,
                    "      - {{version: {}, released: {}}}",
                    p.version, p.released
                );
            }
        }
        out
    }

    /// What the SCS version policy says about `stack` on `today`; empty: compliant.
    pub fn assess(&self, stack: &ClusterStack, today: NaiveDate) -> Vec<PolicyFinding> {
        let version = stack.kubernetes_version();
        let Some((major, minor, patch)) = version_triple(version) else {
            return Vec::new();
        };
        let Some(release) = self
            .releases
            .iter()
            .find(|r| r.minor == format!("{major}.{minor}"))
        else {
            return vec![PolicyFinding::Unknown {
                minor: format!("{major}.{minor}"),
            }];
        };
        let mut findings = Vec::new();
        if today > release.end_of_life {
            findings.push(PolicyFinding::EndOfLife {
                minor: release.minor.clone(),
                since: release.end_of_life,
            });
        }
        let overdue = release
            .patches
            .iter()
            .filter(|p| version_triple(&p.version).is_some_and(|(_, _, n)| n > patch))
            .filter(|p| (today - p.released).num_days() > i64::from(self.patch_grace_days))
            .max_by_key(|p| version_triple(&p.version));
        if let Some(p) = overdue {
            findings.push(PolicyFinding::PatchBehind {
                newer: p.version.clone(),
                released: p.released,
                days: (today - p.released).num_days(),
                grace_days: self.patch_grace_days,
            });
        }
        findings
    }
}

/// One way a stack falls short of the SCS version policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PolicyFinding {
    /// The minor version no longer receives fixes.
    EndOfLife { minor: String, since: NaiveDate },
    /// A newer patch release has been out longer than the policy allows.
    PatchBehind {
        newer: String,
        released: NaiveDate,
        days: i64,
        grace_days: u32,
    },
    /// kaas has no release data for this minor.
    Unknown { minor: String },
}

impl std::fmt::Display for PolicyFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EndOfLife { minor, since } => {
                write!(f, "Kubernetes {minor} is past end of life (since {since})")
            }
            Self::PatchBehind {
                newer,
                released,
                days,
                grace_days,
            } => write!(
                f,
                "{newer} was released on {released}, {days} days ago (the policy allows {grace_days})"
            ),
            Self::Unknown { minor } => write!(f, "no release data for Kubernetes {minor}"),
        }
    }
}

/// `(major, minor, patch)` of `v1.36.4`.
pub fn version_triple(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.strip_prefix('v')?.split('.');
    let t = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(t)
}

/// `(major, minor)` of a minor version such as `1.36`; nothing else.
pub fn minor_number(minor: &str) -> Option<(u32, u32)> {
    let (major, minor) = minor.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `text` as a double-quoted YAML scalar (YAML's escapes for `\\` and `"`; control
/// characters are refused before anything is written).
fn yaml_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `(major, minor)` of a version such as `v1.33.5`.
pub fn minor_of(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether a cluster running `from` may move to `to` in one step: the same minor
/// (a patch update) or the next one. Kubernetes supports nothing else.
pub fn check_upgrade(from: &str, to: &str) -> Result<(), String> {
    let (Some(a), Some(b)) = (minor_of(from), minor_of(to)) else {
        return Err(format!(
            "cannot compare Kubernetes versions {from:?} and {to:?}"
        ));
    };
    if b < a {
        return Err(format!(
            "downgrading Kubernetes from {}.{} to {}.{} is not supported",
            a.0, a.1, b.0, b.1
        ));
    }
    if b.0 != a.0 || b.1 > a.1 + 1 {
        return Err(format!(
            "upgrading Kubernetes from {}.{} to {}.{} skips a minor version; upgrade one minor version at a time (to {}.{} first)",
            a.0,
            a.1,
            b.0,
            b.1,
            a.0,
            a.1 + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_cluster_runs_the_required_addons_and_the_optional_ones_it_chose() {
        let catalog = StackCatalog::builtin().unwrap();
        let stack = catalog.find(DEFAULT_STACK).unwrap();
        let names = |addons: &crate::cluster::Addons| -> Vec<String> {
            stack
                .addons_for(addons)
                .iter()
                .map(|a| a.name.clone())
                .collect()
        };
        let mut chosen = crate::cluster::Addons::default();
        assert_eq!(
            names(&chosen),
            [
                "cilium",
                "openstack-cloud-controller-manager",
                "cinder-csi",
                "metrics-server"
            ]
        );
        chosen.metrics_server = false;
        chosen.ingress = Some(crate::cluster::IngressAddon {
            proxy_protocol: true,
        });
        chosen.cert_manager = Some(crate::cluster::CertManagerAddon {
            acme_email: "ops@example.org".to_owned(),
            issuer: "letsencrypt-staging".to_owned(),
        });
        assert_eq!(
            names(&chosen),
            [
                "cilium",
                "openstack-cloud-controller-manager",
                "cinder-csi",
                "nginx-ingress",
                "cert-manager"
            ]
        );
    }

    #[test]
    fn the_default_stack_is_the_operators_choice_among_known_ones() {
        let mut catalog = StackCatalog::builtin().unwrap();
        assert_eq!(catalog.default_stack(), DEFAULT_STACK);
        let e = catalog.set_default("nope-1.0").unwrap_err();
        assert!(e.contains("\"nope-1.0\"") && e.contains("scs-1.35"), "{e}");
        assert_eq!(catalog.default_stack(), DEFAULT_STACK);
        catalog.set_default("scs-1.37").unwrap();
        assert_eq!(catalog.default_stack(), "scs-1.37");
    }

    #[test]
    fn upgrades_move_one_minor_at_a_time() {
        assert!(check_upgrade("v1.35.9", "v1.35.10").is_ok());
        assert!(check_upgrade("v1.35.9", "v1.36.4").is_ok());
        let skip = check_upgrade("v1.35.9", "v1.37.1").unwrap_err();
        assert!(
            skip.contains("skips a minor version") && skip.contains("1.36 first"),
            "{skip}"
        );
        assert!(
            check_upgrade("v1.36.4", "v1.35.9")
                .unwrap_err()
                .contains("downgrading")
        );
        assert!(check_upgrade("v1.36.4", "v2.0.0").is_err());
        assert!(check_upgrade("x", "v1.36.4").is_err());
    }

    #[test]
    fn builtin_stacks_parse_and_cover_consecutive_minors_with_upgrade_paths() {
        let catalog = StackCatalog::builtin().unwrap();
        let minors: Vec<u32> = catalog
            .all()
            .iter()
            .filter_map(|s| minor_of(s.kubernetes_version()))
            .map(|m| m.1)
            .collect();
        assert!(
            minors.len() >= 2 && minors.windows(2).all(|w| w[1] == w[0] + 1),
            "{minors:?}"
        );
        assert!(catalog.find(DEFAULT_STACK).is_some());
        for pair in catalog.all().windows(2) {
            assert!(
                catalog.check_change(&pair[0], &pair[1], None).is_ok(),
                "{} -> {}",
                pair[0].name(),
                pair[1].name()
            );
        }
        let all = catalog.all();
        assert!(
            catalog
                .check_change(&all[0], &all[2], None)
                .unwrap_err()
                .contains("skips")
        );
    }

    #[test]
    fn a_stack_must_list_where_it_upgrades_from() {
        let catalog = StackCatalog::builtin().unwrap();
        let mut lonely = catalog.find("scs-1.37").unwrap().clone();
        lonely.metadata.name = "lonely-1.37".to_owned();
        lonely.spec.upgrades_from.clear();
        let from = catalog.find("scs-1.36").unwrap();
        assert!(
            catalog
                .check_change(from, &lonely, None)
                .unwrap_err()
                .contains("does not list scs-1.36")
        );
    }

    #[test]
    fn stack_files_are_validated() {
        let good = BUILTIN_STACK_FILES[0].1;
        assert!(ClusterStack::parse("x", good).is_ok());
        let bad = good.replace("kubernetesVersion: v1.35.9", "kubernetesVersion: 1.35");
        assert!(
            ClusterStack::parse("x", &bad)
                .unwrap_err()
                .contains("spec.kubernetesVersion")
        );
        let unknown = good.replace("  version: v2\n", "  version: v2\n  colour: red\n");
        assert!(
            ClusterStack::parse("x", &unknown)
                .unwrap_err()
                .contains("colour")
        );
        let sum = good.replace(
            "    name: ubuntu",
            "    checksum: md5:abc\n    name: ubuntu",
        );
        assert!(
            ClusterStack::parse("x", &sum)
                .unwrap_err()
                .contains("checksum")
        );
        let mut catalog = StackCatalog::builtin().unwrap();
        assert!(
            catalog
                .add(ClusterStack::parse("x", good).unwrap())
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn an_addons_upstream_reference_is_checked_field_by_field() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let chart = |repository: &str, name: &str, digest: &str| StackAddon {
            name: "ingress".to_owned(),
            version: "2.3.1".to_owned(),
            optional: true,
            feature: Some(Feature::Ingress),
            chart: Some(ChartRef {
                repository: repository.to_owned(),
                name: name.to_owned(),
                digest: digest.to_owned(),
            }),
            manifest: None,
            namespace: Some("nginx-ingress".to_owned()),
            values: serde_json::Map::new(),
            cluster_values: vec![ClusterValue {
                path: vec!["controller".to_owned(), "a.b/c".to_owned()],
                value: ClusterValueSource::ProxyProtocolString,
            }],
        };
        assert_eq!(
            chart("oci://ghcr.io/nginx/charts", "nginx-ingress", &digest).validate(),
            Ok(())
        );
        assert_eq!(
            chart("https://charts.example", "nginx-ingress", &digest).validate(),
            Ok(())
        );
        let cases = [
            (
                chart("ftp://x", "nginx-ingress", &digest),
                "chart.repository",
            ),
            (
                chart("oci://", "nginx-ingress", &digest),
                "chart.repository",
            ),
            (chart("oci://r/c", "Nginx_Ingress", &digest), "chart.name"),
            (
                chart("oci://r/c", "nginx-ingress", "sha256:abc"),
                "chart.digest",
            ),
            (
                chart("oci://r/c", "nginx-ingress", &digest.to_uppercase()),
                "chart.digest",
            ),
            (
                StackAddon {
                    manifest: Some(ManifestRef {
                        url: "https://x/a.yaml".to_owned(),
                        digest: digest.clone(),
                    }),
                    ..chart("oci://r/c", "nginx-ingress", &digest)
                },
                "not both",
            ),
            (
                StackAddon {
                    chart: None,
                    manifest: Some(ManifestRef {
                        url: "file:///etc/passwd".to_owned(),
                        digest: digest.clone(),
                    }),
                    ..chart("oci://r/c", "nginx-ingress", &digest)
                },
                "manifest.url",
            ),
            (
                StackAddon {
                    chart: None,
                    ..chart("oci://r/c", "nginx-ingress", &digest)
                },
                "names neither",
            ),
            (
                StackAddon {
                    namespace: Some("Kube System".to_owned()),
                    ..chart("oci://r/c", "nginx-ingress", &digest)
                },
                "namespace",
            ),
            (
                StackAddon {
                    cluster_values: vec![ClusterValue {
                        path: vec![],
                        value: ClusterValueSource::ClusterName,
                    }],
                    ..chart("oci://r/c", "nginx-ingress", &digest)
                },
                "clusterValues[0].path",
            ),
        ];
        for (addon, field) in cases {
            let e = addon.validate().unwrap_err();
            assert!(e.contains(field), "{field}: {e}");
        }
        // In a stack file, the error names the addon's index.
        let good = BUILTIN_STACK_FILES[0].1;
        let bad = good.replacen("        digest: sha256:", "        digest: sha256:0", 1);
        assert_ne!(bad, good);
        let e = ClusterStack::parse("x", &bad).unwrap_err();
        assert!(e.contains("spec.addons[0].chart.digest"), "{e}");
    }

    #[test]
    fn the_builtin_release_data_says_where_and_when_it_was_taken() {
        let versions = KubernetesVersions::builtin().unwrap();
        assert_eq!(versions.source.as_deref(), Some(UPSTREAM_SCHEDULE_URL));
        assert!(versions.taken_on.is_some());
        assert_eq!(versions.patch_grace_days, 14);
        // What kaas writes, it reads back unchanged.
        let again = KubernetesVersions::parse("again", &versions.to_yaml()).unwrap();
        assert_eq!(again, versions);
    }

    #[test]
    fn release_data_is_validated_field_by_field() {
        let good = BUILTIN_KUBERNETES_VERSIONS;
        let refused = |from: &str, to: &str, expected: &str| {
            assert!(good.contains(from), "{from}");
            let error =
                KubernetesVersions::parse("v.yaml", &good.replacen(from, to, 1)).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        };
        refused(
            "kind: KubernetesVersions",
            "kind: Versions",
            "v.yaml: must be apiVersion",
        );
        refused("takenOn: ", "takenOnn: ", "takenOnn");
        refused(
            "takenOn: 2026-05-13\n",
            "",
            "takenOn: missing; source and takenOn go together",
        );
        refused("source: \"https:", "sourceless: \"https:", "sourceless");
        refused("takenOn: 2026-05-13", "takenOn: 2026-13-01", "takenOn");
        refused(
            "patchGraceDays: 14",
            "patchGraceDays: 400",
            "patchGraceDays: 400 is more than 365",
        );
        refused(
            "minor: \"1.33\"",
            "minor: \"1.33.0\"",
            "releases[0].minor: \"1.33.0\" is not a minor version",
        );
        refused(
            "minor: \"1.34\"",
            "minor: \"1.33\"",
            "releases[1].minor: \"1.33\" is listed twice",
        );
        refused(
            "version: v1.33.11,",
            "version: v1.34.11,",
            "releases[0].patches[1].version: v1.34.11 is not a release of 1.33",
        );
        refused(
            "version: v1.33.11,",
            "version: 1.33.11,",
            "releases[0].patches[1].version: \"1.33.11\" is not an exact version",
        );
        refused(
            "version: v1.33.11,",
            "version: v1.33.12,",
            "releases[0].patches[1].version: v1.33.12 is listed twice",
        );
        refused("released: 2026-05-12}", "released: 12.05.2026}", "released");

        // Data written before kaas recorded its provenance still loads.
        let mut old = KubernetesVersions::builtin().unwrap();
        old.source = None;
        old.taken_on = None;
        let yaml = old.to_yaml();
        assert!(
            !yaml.contains("source") && !yaml.contains("takenOn"),
            "{yaml}"
        );
        assert_eq!(KubernetesVersions::parse("old", &yaml).unwrap(), old);
        let mut lone = old.clone();
        lone.taken_on = Some(day("2026-01-01"));
        assert!(
            lone.validate()
                .unwrap_err()
                .contains("source: missing; source and takenOn go together")
        );
        let mut odd = KubernetesVersions::builtin().unwrap();
        odd.source = Some("https://example.org/\"quoted\"\\path".to_owned());
        assert_eq!(
            KubernetesVersions::parse("odd", &odd.to_yaml()).unwrap(),
            odd
        );
        odd.source = Some("two\nlines".to_owned());
        assert!(
            odd.validate()
                .unwrap_err()
                .contains("must be one line without control characters")
        );
        odd.source = Some(" ".to_owned());
        assert!(
            odd.validate()
                .unwrap_err()
                .contains("source: must not be empty")
        );
    }

    #[test]
    fn the_version_policy_marks_end_of_life_and_late_patches() {
        let versions = KubernetesVersions::builtin().unwrap();
        let catalog = StackCatalog::builtin().unwrap();
        let s136 = catalog.find("scs-1.36").unwrap();
        assert_eq!(versions.assess(s136, day("2026-08-20")), vec![]);
        let mut old = s136.clone();
        old.spec.kubernetes_version = "v1.36.2".to_owned();
        // v1.36.3 (2026-07-14) is 10 days old on 2026-07-24: within the grace.
        assert_eq!(versions.assess(&old, day("2026-07-24")), vec![]);
        let findings = versions.assess(&old, day("2026-09-01"));
        assert!(
            matches!(&findings[..], [PolicyFinding::PatchBehind { newer, .. }] if newer == "v1.36.4"),
            "{findings:?}"
        );
        let mut eol = s136.clone();
        eol.spec.kubernetes_version = "v1.34.9".to_owned();
        assert!(matches!(
            versions.assess(&eol, day("2026-11-25"))[..],
            [PolicyFinding::EndOfLife { .. }]
        ));
        let mut unknown = s136.clone();
        unknown.spec.kubernetes_version = "v1.99.0".to_owned();
        assert!(matches!(
            versions.assess(&unknown, day("2026-11-25"))[..],
            [PolicyFinding::Unknown { .. }]
        ));
    }
}

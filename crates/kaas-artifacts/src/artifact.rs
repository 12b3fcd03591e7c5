//! Which artifacts a stack names, and what getting one yields.

use std::fmt;

use kaas_core::stack::{ClusterStack, StackAddon};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::ArtifactError;

/// Where an addon comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A Helm chart in an OCI registry, pinned by its `.tgz` (the chart layer).
    ChartOci,
    /// A Helm chart in a chart repository (`index.yaml`), pinned by its `.tgz`'s digest.
    ChartRepo,
    /// A plain manifest file, pinned by its digest.
    Manifest,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChartOci => "chart-oci",
            Self::ChartRepo => "chart-repo",
            Self::Manifest => "manifest",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One upstream artifact of a stack, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// The addon it belongs to.
    pub addon: String,
    pub kind: ArtifactKind,
    /// `oci://HOST/PATH`, the chart repository's URL, or the manifest's URL.
    pub location: String,
    /// The chart's name; a manifest's addon name.
    pub name: String,
    /// The chart's version; a manifest's release.
    pub version: String,
    /// What the stack pins (see [`ArtifactKind`]).
    pub digest: Digest,
}

impl Artifact {
    /// The artifact `addon` names, if it names one.
    pub fn of_addon(addon: &StackAddon) -> Result<Option<Self>, ArtifactError> {
        let reference_error = |reason: String| ArtifactError::Reference {
            artifact: format!("addon {}", addon.name),
            reason,
        };
        match (&addon.chart, &addon.manifest) {
            (Some(chart), None) => {
                let kind = if chart.repository.starts_with("oci://") {
                    ArtifactKind::ChartOci
                } else {
                    ArtifactKind::ChartRepo
                };
                if kind == ArtifactKind::ChartOci {
                    OciLocation::parse(&chart.repository).map_err(reference_error)?;
                }
                Ok(Some(Self {
                    addon: addon.name.clone(),
                    kind,
                    location: chart.repository.trim_end_matches('/').to_owned(),
                    name: chart.name.clone(),
                    version: addon.version.clone(),
                    digest: Digest::parse(&chart.digest).map_err(reference_error)?,
                }))
            }
            (None, Some(manifest)) => Ok(Some(Self {
                addon: addon.name.clone(),
                kind: ArtifactKind::Manifest,
                location: manifest.url.clone(),
                name: addon.name.clone(),
                version: addon.version.clone(),
                digest: Digest::parse(&manifest.digest).map_err(reference_error)?,
            })),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(reference_error(
                "names both a chart and a manifest".to_owned(),
            )),
        }
    }

    /// Every artifact of `stack`'s addons, optional ones included, in the stack's order.
    pub fn of_stack(stack: &ClusterStack) -> Result<Vec<Self>, ArtifactError> {
        let mut all = Vec::new();
        for addon in &stack.spec.addons {
            all.extend(Self::of_addon(addon)?);
        }
        Ok(all)
    }

    /// How people name it: `oci://HOST/PATH/NAME:VERSION`, `NAME-VERSION.tgz of
    /// REPOSITORY`, or the manifest's URL.
    pub fn reference(&self) -> String {
        match self.kind {
            ArtifactKind::ChartOci => {
                format!("{}/{}:{}", self.location, self.name, oci_tag(&self.version))
            }
            ArtifactKind::ChartRepo => {
                format!("{}-{}.tgz of {}", self.name, self.version, self.location)
            }
            ArtifactKind::Manifest => self.location.clone(),
        }
    }

    /// How errors name it: the addon and the reference.
    pub fn describe(&self) -> String {
        format!("addon {} ({})", self.addon, self.reference())
    }
}

/// The tag a chart version is pushed under: OCI tags cannot hold `+`, so Helm writes
/// `_` instead.
pub fn oci_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// A place in an OCI registry: `oci://HOST[:PORT]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciLocation {
    /// `HOST[:PORT]`.
    pub host: String,
    /// The repositories' prefix, without slashes around it; may be empty.
    pub path: String,
}

impl OciLocation {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| format!("{text:?} is not oci://HOST/PATH"))?;
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid_host {
            return Err(format!("{text:?} has no valid registry host"));
        }
        let valid_path = path.split('/').all(|component| {
            path.is_empty()
                || (!component.is_empty()
                    && component.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    }))
        });
        if !valid_path {
            return Err(format!(
                "{text:?}: a repository path is lower-case letters, digits, '.', '_' and '-' between slashes"
            ));
        }
        Ok(Self {
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The repository of chart `name` here: `PATH/NAME`.
    pub fn repository(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// Whether the registry is on this machine (spoken to over plain HTTP, as Docker
    /// and Helm do for `localhost`).
    pub fn is_loopback(&self) -> bool {
        let host = match self.host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => &self.host,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "oci://{}", self.host)
        } else {
            write!(f, "oci://{}/{}", self.host, self.path)
        }
    }
}

/// A place tried before upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// An OCI registry holding charts as `PATH/NAME:VERSION` (what `kaas stack mirror`
    /// pushes). Manifests are not kept there.
    Oci(OciLocation),
    /// An HTTP(S) server holding every blob by digest, at `BASE/blobs/sha256/<hex>`:
    /// an OCI image layout, such as an unpacked `kaas stack pull` bundle, served as
    /// files.
    Http(String),
}

impl Mirror {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("oci://") {
            return OciLocation::parse(text).map(Self::Oci);
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            return reqwest::Url::parse(text)
                .map(|_| Self::Http(text.trim_end_matches('/').to_owned()))
                .map_err(|e| format!("{text:?} is not a URL: {e}"));
        }
        Err(format!(
            "{text:?}: a mirror is oci://HOST/PATH or an http(s):// URL"
        ))
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oci(location) => location.fmt(f),
            Self::Http(base) => f.write_str(base),
        }
    }
}

impl std::str::FromStr for Mirror {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// What one stored blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobKind {
    /// An OCI image manifest (of a chart).
    OciManifest,
    /// An OCI config blob (a chart's Chart.yaml as JSON).
    OciConfig,
    /// A Helm chart, `.tgz`.
    Chart,
    /// A plain manifest file.
    Manifest,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OciManifest => "oci-manifest",
            Self::OciConfig => "oci-config",
            Self::Chart => "chart",
            Self::Manifest => "manifest",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        [
            Self::OciManifest,
            Self::OciConfig,
            Self::Chart,
            Self::Manifest,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a kind of artifact (oci-manifest, oci-config, chart, manifest)"
            )
        })
    }
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Content-addressed bytes: what the store caches and bundles carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub kind: BlobKind,
    /// Where it came from, for people.
    pub reference: String,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("digest", &self.digest)
            .field("kind", &self.kind)
            .field("reference", &self.reference)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// An artifact got and verified: every blob it takes (an OCI chart: manifest, config
/// and chart; otherwise the one file), each checked against its digest.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub artifact: Artifact,
    /// Where it was got: a mirror or upstream.
    pub source: String,
    pub blobs: Vec<Blob>,
}

impl Fetched {
    /// What is installed: the chart's `.tgz` or the manifest.
    pub fn content(&self) -> Option<&Blob> {
        self.blobs
            .iter()
            .find(|b| matches!(b.kind, BlobKind::Chart | BlobKind::Manifest))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kaas_core::stack::{ChartRef, ManifestRef};

    fn addon(chart: Option<ChartRef>, manifest: Option<ManifestRef>) -> StackAddon {
        StackAddon {
            name: "ingress".to_owned(),
            version: "2.3.1+up1".to_owned(),
            optional: false,
            feature: None,
            chart,
            manifest,
            namespace: None,
            values: Default::default(),
            cluster_values: Vec::new(),
        }
    }

    fn digest() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn an_addon_names_its_artifact() {
        let oci = addon(
            Some(ChartRef {
                repository: "oci://ghcr.io/nginx/charts/".to_owned(),
                name: "nginx-ingress".to_owned(),
                digest: digest(),
            }),
            None,
        );
        let a = Artifact::of_addon(&oci).unwrap().unwrap();
        assert_eq!(a.kind, ArtifactKind::ChartOci);
        assert_eq!(
            a.reference(),
            "oci://ghcr.io/nginx/charts/nginx-ingress:2.3.1_up1"
        );
        let repo = addon(
            Some(ChartRef {
                repository: "https://charts.example/stable".to_owned(),
                name: "nginx-ingress".to_owned(),
                digest: digest(),
            }),
            None,
        );
        let a = Artifact::of_addon(&repo).unwrap().unwrap();
        assert_eq!(a.kind, ArtifactKind::ChartRepo);
        let manifest = addon(
            None,
            Some(ManifestRef {
                url: "https://example.org/a.yaml".to_owned(),
                digest: digest(),
            }),
        );
        let a = Artifact::of_addon(&manifest).unwrap().unwrap();
        assert_eq!(a.kind, ArtifactKind::Manifest);
        assert_eq!(a.reference(), "https://example.org/a.yaml");
        assert_eq!(Artifact::of_addon(&addon(None, None)).unwrap(), None);
        let bad = addon(
            Some(ChartRef {
                repository: "oci://ghcr.io/nginx/charts".to_owned(),
                name: "nginx-ingress".to_owned(),
                digest: "sha256:0".to_owned(),
            }),
            None,
        );
        let e = Artifact::of_addon(&bad).unwrap_err().to_string();
        assert!(e.contains("addon ingress") && e.contains("sha256:0"), "{e}");
    }

    #[test]
    fn oci_locations_and_mirrors_parse() {
        let l = OciLocation::parse("oci://127.0.0.1:5000/kaas/charts").unwrap();
        assert_eq!(l.host, "127.0.0.1:5000");
        assert_eq!(l.repository("cilium"), "kaas/charts/cilium");
        assert!(l.is_loopback());
        assert_eq!(l.to_string(), "oci://127.0.0.1:5000/kaas/charts");
        let bare = OciLocation::parse("oci://registry.example").unwrap();
        assert_eq!(bare.repository("cilium"), "cilium");
        assert!(!bare.is_loopback());
        for bad in [
            "oci://",
            "https://x/y",
            "oci://x/Upper",
            "oci://x//y",
            "oci://a b/c",
        ] {
            assert!(OciLocation::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Mirror::parse("oci://r.example/m").unwrap(),
            Mirror::Oci(_)
        ));
        assert_eq!(
            Mirror::parse("http://10.0.0.5/kaas/").unwrap(),
            Mirror::Http("http://10.0.0.5/kaas".to_owned())
        );
        assert!(Mirror::parse("ftp://x").is_err());
    }

    #[test]
    fn blob_kinds_round_trip() {
        for k in [
            BlobKind::OciManifest,
            BlobKind::OciConfig,
            BlobKind::Chart,
            BlobKind::Manifest,
        ] {
            assert_eq!(BlobKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert!(BlobKind::parse("image").is_err());
    }
}

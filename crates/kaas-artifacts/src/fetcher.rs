//! [`Fetcher`]: gets a stack's artifacts, mirrors first, then upstream, each verified
//! against the digest the stack pins; and puts charts into an operator's registry.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::artifact::{
    Artifact, ArtifactKind, Blob, BlobKind, Fetched, Mirror, OciLocation, oci_tag,
};
use crate::chart;
use crate::digest::Digest;
use crate::error::ArtifactError;
use crate::http::{self, Attempt, Limits, MAX_SMALL_BYTES};
use crate::oci::{
    self, Credentials, Descriptor, HELM_CHART_LAYER, HELM_CONFIG, ImageManifest, OCI_MANIFEST,
    Registries,
};

/// Where artifacts come from, as the API and the controllers see it.
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    /// The artifact's blobs, each verified; see [`Fetcher::fetch`].
    async fn fetch(&self, artifact: &Artifact) -> Result<Fetched, ArtifactError>;
}

/// A chart put into a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `oci://HOST/PATH/NAME:TAG`.
    pub reference: String,
    /// The chart's `.tgz` digest: what a stack pins.
    pub digest: Digest,
    /// The OCI manifest's digest, as the registry names it.
    pub manifest_digest: Digest,
}

/// Gets artifacts over HTTP. See the crate documentation for the order and checks.
pub struct Fetcher {
    http: reqwest::Client,
    limits: Limits,
    mirrors: Vec<Mirror>,
    registries: Registries,
}

impl Fetcher {
    pub fn new(limits: Limits) -> Result<Self, String> {
        let http = http::client(&limits)?;
        Ok(Self {
            registries: Registries::new(http.clone(), HashMap::new(), false),
            http,
            limits,
            mirrors: Vec::new(),
        })
    }

    /// Mirrors tried before upstream, in this order.
    pub fn with_mirrors(mut self, mirrors: Vec<Mirror>) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Credentials for the registry at `host` (`HOST[:PORT]`), sent to it and to the
    /// token service it names.
    pub fn with_credentials(mut self, host: &str, credentials: Credentials) -> Self {
        self.registries
            .credentials
            .insert(host.to_owned(), credentials);
        self
    }

    /// Speaks plain HTTP to every registry (else only to those on loopback).
    pub fn with_plain_http(mut self, plain_http: bool) -> Self {
        self.registries.plain_http = plain_http;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gets `artifact`: from each mirror in order, then from upstream; the first source
    /// whose bytes match the pinned digest wins. When all fail, the error lists each
    /// place and why.
    pub async fn fetch(&self, artifact: &Artifact) -> Result<Fetched, ArtifactError> {
        let mut attempts = Vec::new();
        for mirror in &self.mirrors {
            match self.pull_from_mirror(artifact, mirror).await {
                Ok(Some(blobs)) => {
                    debug!(artifact = %artifact.describe(), %mirror, "fetched from a mirror");
                    return Ok(Fetched {
                        artifact: artifact.clone(),
                        source: mirror.to_string(),
                        blobs,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "mirror failed; trying the next source");
                    attempts.push(e);
                }
            }
        }
        match self.pull_from_upstream(artifact).await {
            Ok(blobs) => Ok(Fetched {
                artifact: artifact.clone(),
                source: upstream_place(artifact),
                blobs,
            }),
            Err(e) if attempts.is_empty() => Err(e),
            Err(e) => {
                attempts.push(e);
                Err(ArtifactError::AllFailed {
                    artifact: artifact.describe(),
                    attempts,
                })
            }
        }
    }

    /// `None`: this mirror cannot hold this kind of artifact.
    async fn pull_from_mirror(
        &self,
        artifact: &Artifact,
        mirror: &Mirror,
    ) -> Result<Option<Vec<Blob>>, ArtifactError> {
        match (mirror, artifact.kind) {
            (Mirror::Oci(_), ArtifactKind::Manifest) => Ok(None),
            (Mirror::Oci(location), ArtifactKind::ChartOci | ArtifactKind::ChartRepo) => {
                let tag = oci_tag(&artifact.version);
                self.pull_chart(artifact, location, &tag).await.map(Some)
            }
            (Mirror::Http(base), _) => {
                let bytes = self
                    .by_digest(artifact, base, &artifact.digest, self.limits.max_bytes)
                    .await?;
                Ok(Some(vec![single_blob(artifact, bytes)]))
            }
        }
    }

    async fn pull_from_upstream(&self, artifact: &Artifact) -> Result<Vec<Blob>, ArtifactError> {
        match artifact.kind {
            ArtifactKind::ChartOci => {
                let location = OciLocation::parse(&artifact.location).map_err(|reason| {
                    ArtifactError::Reference {
                        artifact: artifact.describe(),
                        reason,
                    }
                })?;
                let tag = oci_tag(&artifact.version);
                self.pull_chart(artifact, &location, &tag).await
            }
            ArtifactKind::ChartRepo => {
                let bytes = self.pull_from_chart_repository(artifact).await?;
                Ok(vec![single_blob(artifact, bytes)])
            }
            ArtifactKind::Manifest => {
                let attempt = Attempt::new(artifact.describe(), &artifact.location);
                let bytes = self
                    .download(&attempt, &artifact.location, self.limits.max_bytes)
                    .await?;
                verify(&attempt, &artifact.digest, &bytes)?;
                Ok(vec![single_blob(artifact, bytes)])
            }
        }
    }

    /// A chart from a registry: its manifest by `reference` (a tag), then its chart
    /// layer, which must be the `.tgz` the stack pins.
    async fn pull_chart(
        &self,
        artifact: &Artifact,
        location: &OciLocation,
        reference: &str,
    ) -> Result<Vec<Blob>, ArtifactError> {
        let repository = location.repository(&artifact.name);
        let place = format!("{location}/{}:{reference}", artifact.name);
        let attempt = Attempt::new(artifact.describe(), &place);
        let manifest = self
            .registries
            .manifest(&attempt, location, &repository, reference, MAX_SMALL_BYTES)
            .await?;
        let parsed = oci::parse_manifest(&manifest).map_err(|e| attempt.invalid(e))?;
        let (layer, _config) = chart_descriptors(&attempt, &parsed, self.limits.max_bytes)?;
        let layer_attempt = attempt.at(format!("the chart layer of {place}"));
        if layer != artifact.digest {
            return Err(layer_attempt.mismatch(artifact.digest.as_str(), layer.as_str()));
        }
        let chart = self
            .registries
            .blob(
                &layer_attempt,
                location,
                &repository,
                &layer,
                self.limits.max_bytes,
            )
            .await?;
        verify(&layer_attempt, &artifact.digest, &chart)?;
        Ok(vec![single_blob(artifact, chart)])
    }

    /// A chart from a chart repository: `index.yaml`, the entry of the chart's name and
    /// version, its first URL (relative to the repository), the `.tgz`.
    async fn pull_from_chart_repository(
        &self,
        artifact: &Artifact,
    ) -> Result<Vec<u8>, ArtifactError> {
        let base = format!("{}/", artifact.location.trim_end_matches('/'));
        let index_url = format!("{base}index.yaml");
        let attempt = Attempt::new(artifact.describe(), &index_url);
        let index = self
            .download(&attempt, &index_url, self.limits.max_bytes)
            .await?;
        let index =
            std::str::from_utf8(&index).map_err(|_| attempt.invalid("index.yaml is not UTF-8"))?;
        let index: RepositoryIndex = serde_saphyr::from_str(index)
            .map_err(|e| attempt.invalid(format!("index.yaml cannot be read: {e}")))?;
        let entries = index.entries.get(&artifact.name).ok_or_else(|| {
            attempt.invalid(format!("index.yaml has no chart {:?}", artifact.name))
        })?;
        let wanted = artifact.version.trim_start_matches('v');
        let entry = entries
            .iter()
            .find(|e| e.version == artifact.version)
            .or_else(|| {
                entries
                    .iter()
                    .find(|e| e.version.trim_start_matches('v') == wanted)
            })
            .ok_or_else(|| {
                attempt.invalid(format!(
                    "index.yaml has no version {:?} of chart {:?}",
                    artifact.version, artifact.name
                ))
            })?;
        if let Some(listed) = entry.digest.as_deref().filter(|d| !d.is_empty()) {
            let listed = if listed.starts_with("sha256:") {
                listed.to_owned()
            } else {
                format!("sha256:{listed}")
            };
            if listed != artifact.digest.as_str() {
                return Err(attempt.mismatch(artifact.digest.as_str(), &listed));
            }
        }
        let first = entry.urls.first().ok_or_else(|| {
            attempt.invalid(format!(
                "the index entry of {} {} has no URL",
                artifact.name, artifact.version
            ))
        })?;
        let url = reqwest::Url::parse(&base)
            .and_then(|b| b.join(first))
            .map_err(|e| attempt.invalid(format!("the chart's URL {first:?} is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(attempt.invalid(format!("the chart's URL {url} is not http(s)")));
        }
        let chart_attempt = attempt.at(url.as_str());
        let bytes = self
            .download(&chart_attempt, url.as_str(), self.limits.max_bytes)
            .await?;
        verify(&chart_attempt, &artifact.digest, &bytes)?;
        Ok(bytes)
    }

    /// `BASE/blobs/sha256/<hex>` from an HTTP mirror, checked against `digest`.
    async fn by_digest(
        &self,
        artifact: &Artifact,
        base: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let url = blob_url(base, digest);
        let attempt = Attempt::new(artifact.describe(), &url);
        let bytes = self.download(&attempt, &url, limit).await?;
        verify(&attempt, digest, &bytes)?;
        Ok(bytes)
    }

    /// A plain GET, at most `limit` bytes.
    async fn download(
        &self,
        attempt: &Attempt,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| attempt.send_failed(&e))?;
        if !response.status().is_success() {
            return Err(attempt.failure(response).await);
        }
        attempt.body(response, limit).await
    }

    /// Pushes a chart `.tgz` to `to` as `PATH/NAME:VERSION` (name and version from its
    /// Chart.yaml), the way `helm push` lays it out: a config blob (Chart.yaml as JSON),
    /// the chart layer, an OCI image manifest. Returns the manifest's digest.
    pub async fn push_chart(&self, to: &OciLocation, tgz: &[u8]) -> Result<Pushed, ArtifactError> {
        let attempt = Attempt::new("a chart", to.to_string());
        let metadata = chart::read_metadata(tgz).map_err(|e| attempt.invalid(e))?;
        let attempt = Attempt::new(
            format!("chart {} {}", metadata.name, metadata.version),
            to.to_string(),
        );
        let config = serde_json::to_vec(&metadata.json)
            .map_err(|e| attempt.invalid(format!("Chart.yaml cannot be written as JSON: {e}")))?;
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(
            "org.opencontainers.image.title".to_owned(),
            metadata.name.clone(),
        );
        annotations.insert(
            "org.opencontainers.image.version".to_owned(),
            metadata.version.clone(),
        );
        if let Some(description) = &metadata.description {
            annotations.insert(
                "org.opencontainers.image.description".to_owned(),
                description.clone(),
            );
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_owned()),
            config: Descriptor {
                media_type: HELM_CONFIG.to_owned(),
                digest: Digest::of(&config).to_string(),
                size: config.len() as u64,
            },
            layers: vec![Descriptor {
                media_type: HELM_CHART_LAYER.to_owned(),
                digest: Digest::of(tgz).to_string(),
                size: tgz.len() as u64,
            }],
            annotations,
        };
        let manifest = serde_json::to_vec(&manifest)
            .map_err(|e| attempt.invalid(format!("the manifest cannot be written: {e}")))?;
        let pushed = self
            .push_blobs(
                &attempt,
                to,
                &metadata.name,
                &oci_tag(&metadata.version),
                &[&config, tgz],
                &manifest,
            )
            .await?;
        Ok(Pushed {
            digest: Digest::of(tgz),
            ..pushed
        })
    }

    /// Puts a chart got from upstream into the registry at `to`, as
    /// `PATH/NAME:VERSION`, pushed as `helm push` would: its `.tgz` is the same bytes,
    /// so the pinned digest finds it there. Manifests are not kept in registries.
    pub async fn mirror_to(
        &self,
        fetched: &Fetched,
        to: &OciLocation,
    ) -> Result<Pushed, ArtifactError> {
        let artifact = &fetched.artifact;
        let attempt = Attempt::new(artifact.describe(), to.to_string());
        let blob = |kind: BlobKind| {
            fetched
                .blobs
                .iter()
                .find(|b| b.kind == kind)
                .ok_or_else(|| attempt.invalid(format!("the fetched artifact has no {kind} blob")))
        };
        match artifact.kind {
            ArtifactKind::ChartOci | ArtifactKind::ChartRepo => {
                self.push_chart(to, &blob(BlobKind::Chart)?.bytes).await
            }
            ArtifactKind::Manifest => Err(attempt.invalid(
                "a plain manifest is not kept in an OCI registry; serve it from an http(s) mirror",
            )),
        }
    }

    async fn push_blobs(
        &self,
        attempt: &Attempt,
        to: &OciLocation,
        name: &str,
        tag: &str,
        blobs: &[&[u8]],
        manifest: &[u8],
    ) -> Result<Pushed, ArtifactError> {
        let repository = to.repository(name);
        for bytes in blobs {
            self.registries
                .push_blob(attempt, to, &repository, bytes)
                .await?;
        }
        let digest = self
            .registries
            .push_manifest(attempt, to, &repository, tag, manifest)
            .await?;
        Ok(Pushed {
            reference: format!("{to}/{name}:{tag}"),
            digest: digest.clone(),
            manifest_digest: digest,
        })
    }
}

#[async_trait]
impl ArtifactSource for Fetcher {
    async fn fetch(&self, artifact: &Artifact) -> Result<Fetched, ArtifactError> {
        Fetcher::fetch(self, artifact).await
    }
}

#[derive(Deserialize)]
struct RepositoryIndex {
    #[serde(default)]
    entries: HashMap<String, Vec<IndexEntry>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    /// The `.tgz`'s sha256, hex.
    #[serde(default)]
    digest: Option<String>,
}

fn verify(attempt: &Attempt, expected: &Digest, bytes: &[u8]) -> Result<(), ArtifactError> {
    let actual = Digest::of(bytes);
    if actual == *expected {
        Ok(())
    } else {
        Err(attempt.mismatch(expected.as_str(), actual.as_str()))
    }
}

/// The chart layer's and the config's digests, the layer within the size limit.
fn chart_descriptors(
    attempt: &Attempt,
    manifest: &ImageManifest,
    limit: u64,
) -> Result<(Digest, Digest), ArtifactError> {
    let layer = manifest.chart_layer().ok_or_else(|| {
        attempt.invalid(format!(
            "the manifest has no layer of type {HELM_CHART_LAYER}"
        ))
    })?;
    if layer.size > limit {
        return Err(attempt.too_large(limit));
    }
    let digest = |d: &Descriptor| {
        Digest::parse(&d.digest).map_err(|e| attempt.invalid(format!("the manifest names {e}")))
    };
    Ok((digest(layer)?, digest(&manifest.config)?))
}

fn blob_url(base: &str, digest: &Digest) -> String {
    format!(
        "{}/blobs/sha256/{}",
        base.trim_end_matches('/'),
        digest.hex()
    )
}

fn upstream_place(artifact: &Artifact) -> String {
    artifact.location.clone()
}

fn single_blob(artifact: &Artifact, bytes: Vec<u8>) -> Blob {
    Blob {
        digest: Digest::of(&bytes),
        kind: match artifact.kind {
            ArtifactKind::Manifest => BlobKind::Manifest,
            ArtifactKind::ChartOci | ArtifactKind::ChartRepo => BlobKind::Chart,
        },
        reference: artifact.reference(),
        bytes,
    }
}

//! The integrated registry on the server's side: the token service's keys (sealed in
//! the store, made once), the CA certificate the registry trusts (written to
//! `<data-dir>/registry/token-ca.crt`), the registry's configuration for Distribution,
//! and the registry's HTTP API as kaas uses it (catalog, tags, manifests, deletes),
//! with tokens kaas signs for itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use kaas_api::registry::{ManifestInfo, RegistryBackend, RegistryError, RegistryService};
use kaas_bootstrap::registry::{TokenAccess, TokenPki, TokenSigner};
use kaas_core::registry::RegistryMirror;
use kaas_store::{SecretBox, Secrets, Store, StoreError};
use serde_json::Value;

/// Where kaas keeps what is its own rather than a tenant's: not a DNS label, so no
/// tenant can be named so.
pub const SYSTEM_TENANT: &str = "_kaas";
/// The sealed secret holding the token service's keys.
const TOKEN_PKI_SECRET: &str = "registry-token-pki";
const TOKEN_PKI_TYPE: &str = "kaas.dev/registry-token-pki";
/// The issuer of kaas' registry tokens (the registry's `auth.token.issuer`).
pub const TOKEN_ISSUER: &str = "kaas";
/// The service name of the registry by default (`auth.token.service`).
pub const DEFAULT_SERVICE: &str = "kaas-registry";
/// The subject of the tokens kaas signs for itself.
const SELF_SUBJECT: &str = "kaas";
/// Manifests kaas reads.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Repositories per page of the catalog.
const CATALOG_PAGE: usize = 1000;
/// The most manifests of an index whose sizes are added up.
const MAX_INDEX_ENTRIES: usize = 64;

/// How the server is wired to its registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Where clients and nodes reach the registry.
    pub url: String,
    /// The registry's `auth.token.service`.
    pub service: String,
    /// How long tokens are valid.
    pub token_ttl: Duration,
    /// The mirrors every cluster's nodes get (the operator's defaults), if any.
    pub mirrors_file: Option<PathBuf>,
}

impl RegistryOptions {
    /// The registry at `url`, with the default service name and token lifetime and no
    /// default mirrors.
    pub fn new(url: String) -> Self {
        Self {
            url,
            service: DEFAULT_SERVICE.to_owned(),
            token_ttl: DEFAULT_TOKEN_TTL,
            mirrors_file: None,
        }
    }
}

/// How long a registry token is valid unless the operator says.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The path of the token CA certificate the registry trusts.
pub fn token_ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registry").join("token-ca.crt")
}

/// The token service's keys: read from the store, or made and stored once (a racing
/// replica's keys win; both then read the same).
pub async fn token_pki(store: &dyn Store, sealer: &SecretBox) -> Result<TokenPki> {
    let secrets = Secrets::new(store, sealer);
    for _ in 0..2 {
        if let Some(data) = secrets.get(SYSTEM_TENANT, TOKEN_PKI_SECRET).await? {
            return serde_json::from_value(data)
                .context("the stored registry token keys cannot be read");
        }
        let pki = TokenPki::generate(chrono::Utc::now()).map_err(anyhow::Error::msg)?;
        let data = serde_json::to_value(&pki)?;
        match secrets
            .put(SYSTEM_TENANT, TOKEN_PKI_SECRET, None, TOKEN_PKI_TYPE, &data)
            .await
        {
            Ok(()) => return Ok(pki),
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("cannot store the registry token keys")
}

/// Writes the token CA certificate where the registry's configuration points.
pub fn write_token_ca(data_dir: &Path, pki: &TokenPki) -> Result<PathBuf> {
    let path = token_ca_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &pki.ca.cert_pem)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Distribution's configuration for a registry whose token service is kaas at
/// `kaas_url`, listening on `listen`, storing under `storage`, trusting `token_ca`.
pub fn distribution_config(
    kaas_url: &str,
    service: &str,
    listen: &str,
    storage: &Path,
    token_ca: &Path,
) -> Value {
    serde_json::json!({
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": storage.display().to_string()},
            "delete": {"enabled": true},
        },
        "http": {"addr": listen},
        "auth": {"token": {
            "realm": format!("{}/v2/token", kaas_url.trim_end_matches('/')),
            "service": service,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": token_ca.display().to_string(),
        }},
    })
}

/// The operator's default mirrors, from a YAML (or JSON) list of mirrors, checked.
pub fn load_mirrors(path: &Path) -> Result<Vec<RegistryMirror>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mirrors: Vec<RegistryMirror> = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not a list of registry mirrors", path.display()))?;
    let mut errs = kaas_core::ValidationErrors::default();
    kaas_core::registry::validate_mirrors(&mirrors, "mirrors", &mut errs);
    if !errs.0.is_empty() {
        bail!("{}: {errs}", path.display());
    }
    Ok(mirrors)
}

/// The registry service the API serves, from the stored keys.
pub fn service(options: &RegistryOptions, pki: &TokenPki) -> Result<RegistryService> {
    let host = RegistryService::host_of(&options.url).with_context(|| {
        format!(
            "--registry-url {:?} must be http:// or https:// with a host",
            options.url
        )
    })?;
    let signer = pki
        .signer(TOKEN_ISSUER, &options.service)
        .map_err(anyhow::Error::msg)?;
    let backend = HttpRegistry::new(
        &options.url,
        pki.signer(TOKEN_ISSUER, &options.service)
            .map_err(anyhow::Error::msg)?,
    )?;
    Ok(RegistryService {
        host,
        signer,
        token_ttl: chrono::Duration::from_std(options.token_ttl)?,
        backend: Arc::new(backend),
    })
}

/// The registry's HTTP API, with tokens kaas signs for itself.
pub struct HttpRegistry {
    client: reqwest::Client,
    url: String,
    signer: TokenSigner,
}

impl HttpRegistry {
    pub fn new(url: &str, signer: TokenSigner) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            client,
            url: url.trim_end_matches('/').to_owned(),
            signer,
        })
    }

    fn token(
        &self,
        resource_type: &str,
        name: &str,
        action: &str,
    ) -> Result<String, RegistryError> {
        let access = [TokenAccess {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: vec![action.to_owned()],
        }];
        let jti = format!("kaas-{:016x}", rand::random::<u64>());
        self.signer
            .sign(
                SELF_SUBJECT,
                &access,
                chrono::Utc::now(),
                chrono::Duration::minutes(1),
                &jti,
            )
            .map_err(|e| RegistryError::Signing(e.to_string()))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        request
            .send()
            .await
            .map_err(|e| RegistryError::Unreachable {
                url: self.url.clone(),
                reason: error_chain(&e),
            })
    }
}

/// An error with its sources, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The registry's own message from an error answer (`{"errors": [{code, message}]}`).
async fn refused(response: reqwest::Response) -> RegistryError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            let errors = v["errors"].as_array()?.clone();
            Some(
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or("ERROR"),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    RegistryError::Refused { status, message }
}

/// The `next` link of a paginated answer (`<…?last=x&n=y>; rel="next"`).
fn next_link(response: &reqwest::Response) -> Option<String> {
    let link = response.headers().get("link")?.to_str().ok()?;
    let target = link.split(';').next()?.trim();
    target
        .strip_prefix('<')?
        .strip_suffix('>')
        .map(str::to_owned)
}

#[async_trait]
impl RegistryBackend for HttpRegistry {
    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        // The catalog is sorted: start right before the prefix, stop past it.
        let mut out = Vec::new();
        // A tenant's prefix is a DNS label and '/': only the '/' needs escaping.
        let start = prefix.replace('/', "%2F");
        let mut next = Some(format!("/v2/_catalog?n={CATALOG_PAGE}&last={start}"));
        while let Some(path) = next.take() {
            let token = self.token("registry", "catalog", "*")?;
            let response = self
                .send(
                    self.client
                        .get(format!("{}{path}", self.url))
                        .bearer_auth(token),
                )
                .await?;
            if !response.status().is_success() {
                return Err(refused(response).await);
            }
            next = next_link(&response);
            let body: Value = response
                .json()
                .await
                .map_err(|e| RegistryError::Unreadable(format!("the catalog: {e}")))?;
            for name in body["repositories"].as_array().into_iter().flatten() {
                let Some(name) = name.as_str() else { continue };
                if !name.starts_with(prefix) {
                    return Ok(out);
                }
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let token = self.token("repository", repository, "pull")?;
        let response = self
            .send(
                self.client
                    .get(format!("{}/v2/{repository}/tags/list", self.url))
                    .bearer_auth(token),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| RegistryError::Unreadable(format!("the tag list of {repository}: {e}")))?;
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tags.sort();
        Ok(tags)
    }

    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        let Some((digest, media_type, body)) = self.get_manifest(repository, reference).await?
        else {
            return Ok(None);
        };
        let mut size = body.len() as u64;
        let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(manifests) = document["manifests"].as_array() {
            for entry in manifests.iter().take(MAX_INDEX_ENTRIES) {
                let Some(child) = entry["digest"].as_str() else {
                    continue;
                };
                if let Some((_, _, child_body)) = self.get_manifest(repository, child).await? {
                    size += child_body.len() as u64 + blob_sizes(&child_body);
                }
            }
        } else {
            size += blob_sizes(&body);
        }
        Ok(Some(ManifestInfo {
            digest,
            media_type,
            size,
        }))
    }

    async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<(), RegistryError> {
        let token = self.token("repository", repository, "delete")?;
        let response = self
            .send(
                self.client
                    .delete(format!("{}/v2/{repository}/manifests/{digest}", self.url))
                    .bearer_auth(token),
            )
            .await?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        Ok(())
    }
}

impl HttpRegistry {
    /// A manifest's digest, media type and bytes; `None` if there is no such manifest.
    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<(String, String, Vec<u8>)>, RegistryError> {
        let token = self.token("repository", repository, "pull")?;
        let response = self
            .send(
                self.client
                    .get(format!(
                        "{}/v2/{repository}/manifests/{reference}",
                        self.url
                    ))
                    .header(reqwest::header::ACCEPT, MANIFEST_TYPES)
                    .bearer_auth(token),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header("content-type").unwrap_or_default();
        let digest = header("docker-content-digest");
        let body = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?
            .to_vec();
        let digest = digest.unwrap_or_else(|| kaas_store::sha256_digest(&body));
        Ok(Some((digest, media_type, body)))
    }
}

/// The sizes of an image manifest's config and layers.
fn blob_sizes(manifest: &[u8]) -> u64 {
    let Ok(document) = serde_json::from_slice::<Value>(manifest) else {
        return 0;
    };
    let config = document["config"]["size"].as_u64().unwrap_or(0);
    let layers: u64 = document["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .sum();
    config + layers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_add_config_and_layers() {
        let manifest = br#"{"config": {"size": 10}, "layers": [{"size": 5}, {"size": 7}]}"#;
        assert_eq!(blob_sizes(manifest), 22);
        assert_eq!(blob_sizes(b"not json"), 0);
    }

    #[test]
    fn the_registry_config_points_at_kaas() {
        let config = distribution_config(
            "http://127.0.0.1:7443/",
            "kaas-registry",
            "127.0.0.1:5101",
            Path::new("/var/lib/registry"),
            Path::new("/d/registry/token-ca.crt"),
        );
        assert_eq!(
            config["auth"]["token"]["realm"],
            "http://127.0.0.1:7443/v2/token"
        );
        assert_eq!(config["auth"]["token"]["issuer"], TOKEN_ISSUER);
        assert_eq!(config["storage"]["delete"]["enabled"], true);
    }
}

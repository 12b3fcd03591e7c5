//! The OCI distribution protocol, as far as charts need it: manifests and blobs pulled
//! and pushed, with the registry's token flow (an anonymous or credentialed bearer
//! token from the realm its `WWW-Authenticate` challenge names) or basic credentials.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::artifact::OciLocation;
use crate::digest::Digest;
use crate::error::ArtifactError;
use crate::http::{Attempt, MAX_SMALL_BYTES};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// What Helm's first OCI support called the chart layer; still found in old pushes.
const LEGACY_HELM_CHART_LAYER: &str = "application/tar+gzip";

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl ImageManifest {
    /// The chart's layer: the one of Helm's chart media type.
    pub fn chart_layer(&self) -> Option<&Descriptor> {
        self.layers
            .iter()
            .find(|l| l.media_type == HELM_CHART_LAYER)
            .or_else(|| {
                self.layers
                    .iter()
                    .find(|l| l.media_type == LEGACY_HELM_CHART_LAYER)
            })
    }
}

/// Parses a manifest, or says why it is none.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, String> {
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not an OCI image manifest: {e}"))?;
    if manifest.schema_version != 2 {
        return Err(format!(
            "schemaVersion {} is not 2",
            manifest.schema_version
        ));
    }
    Ok(manifest)
}

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower-cased.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (quoted values may hold commas).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Talks to registries: bearer tokens kept per registry, repository and access.
pub(crate) struct Registries {
    pub http: reqwest::Client,
    pub credentials: HashMap<String, Credentials>,
    /// Speak plain HTTP to every registry (else only to loopback ones).
    pub plain_http: bool,
    tokens: Mutex<HashMap<String, String>>,
}

/// Whether a request reads or writes a repository: the token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

impl Registries {
    pub fn new(
        http: reqwest::Client,
        credentials: HashMap<String, Credentials>,
        plain_http: bool,
    ) -> Self {
        Self {
            http,
            credentials,
            plain_http,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// `http(s)://HOST/v2/`.
    pub fn base(&self, location: &OciLocation) -> String {
        let scheme = if self.plain_http || location.is_loopback() {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/", location.host)
    }

    fn token_key(location: &OciLocation, repository: &str, access: Access) -> String {
        format!("{} {repository} {access:?}", location.host)
    }

    /// Sends `build`'s request, authenticating as the registry asks: once more after a
    /// 401 with a bearer token (or basic credentials) the challenge calls for.
    pub async fn send(
        &self,
        attempt: &Attempt,
        location: &OciLocation,
        repository: &str,
        access: Access,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, ArtifactError> {
        let key = Self::token_key(location, repository, access);
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let first = match &cached {
            Some(token) => build().bearer_auth(token),
            None => build(),
        };
        let response = first.send().await.map_err(|e| attempt.send_failed(&e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let credentials = self.credentials.get(&location.host);
        let retry = match challenge {
            Some(c) if c.scheme == "bearer" => {
                let token = self
                    .token(attempt, &c, repository, access, credentials)
                    .await?;
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, token.clone());
                build().bearer_auth(token)
            }
            Some(c) if c.scheme == "basic" => match credentials {
                Some(creds) => build().basic_auth(&creds.username, Some(&creds.password)),
                None => {
                    return Err(attempt.status(
                        401,
                        "the registry asks for credentials and none are set for it".to_owned(),
                    ));
                }
            },
            _ => return Err(attempt.failure(response).await),
        };
        retry.send().await.map_err(|e| attempt.send_failed(&e))
    }

    /// A bearer token from the challenge's realm, anonymous or with the registry's
    /// credentials.
    async fn token(
        &self,
        attempt: &Attempt,
        challenge: &Challenge,
        repository: &str,
        access: Access,
        credentials: Option<&Credentials>,
    ) -> Result<String, ArtifactError> {
        let realm = challenge
            .params
            .get("realm")
            .filter(|r| r.starts_with("https://") || r.starts_with("http://"))
            .ok_or_else(|| {
                attempt.invalid("the registry's bearer challenge names no http(s) realm")
            })?;
        let at = attempt.at(format!("token service {realm}"));
        let scope = challenge.params.get("scope").cloned().unwrap_or_else(|| {
            let actions = match access {
                Access::Pull => "pull",
                Access::Push => "pull,push",
            };
            format!("repository:{repository}:{actions}")
        });
        let mut query = vec![("scope", scope)];
        if let Some(service) = challenge.params.get("service") {
            query.push(("service", service.clone()));
        }
        let mut request = self.http.get(realm.as_str()).query(&query);
        if let Some(creds) = credentials {
            request = request.basic_auth(&creds.username, Some(&creds.password));
        }
        let response = request.send().await.map_err(|e| at.send_failed(&e))?;
        if !response.status().is_success() {
            return Err(at.failure(response).await);
        }
        let body = at.body(response, MAX_SMALL_BYTES).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| at.invalid(format!("the token answer is not JSON: {e}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| at.invalid("the token answer holds no token"))
    }

    /// A manifest's bytes, at most `limit`.
    pub async fn manifest(
        &self,
        attempt: &Attempt,
        location: &OciLocation,
        repository: &str,
        reference: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let url = format!("{}{repository}/manifests/{reference}", self.base(location));
        let build = || self.http.get(&url).header(ACCEPT, OCI_MANIFEST);
        let response = self
            .send(attempt, location, repository, Access::Pull, &build)
            .await?;
        if !response.status().is_success() {
            return Err(attempt.failure(response).await);
        }
        attempt.body(response, limit).await
    }

    /// A blob's bytes, checked against its digest.
    pub async fn blob(
        &self,
        attempt: &Attempt,
        location: &OciLocation,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let url = format!("{}{repository}/blobs/{digest}", self.base(location));
        let build = || self.http.get(&url);
        let response = self
            .send(attempt, location, repository, Access::Pull, &build)
            .await?;
        if !response.status().is_success() {
            return Err(attempt.failure(response).await);
        }
        let bytes = attempt.body(response, limit).await?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(attempt.mismatch(digest.as_str(), actual.as_str()));
        }
        Ok(bytes)
    }

    /// Uploads a blob unless the repository has it: monolithic, POST then PUT.
    pub async fn push_blob(
        &self,
        attempt: &Attempt,
        location: &OciLocation,
        repository: &str,
        bytes: &[u8],
    ) -> Result<Digest, ArtifactError> {
        let digest = Digest::of(bytes);
        let base = self.base(location);
        let head_url = format!("{base}{repository}/blobs/{digest}");
        let head = || self.http.head(&head_url);
        let response = self
            .send(attempt, location, repository, Access::Push, &head)
            .await?;
        if response.status().is_success() {
            return Ok(digest);
        }
        let start_url = format!("{base}{repository}/blobs/uploads/");
        let start = || self.http.post(&start_url).header("content-length", "0");
        let response = self
            .send(attempt, location, repository, Access::Push, &start)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(attempt.failure(response).await);
        }
        let upload = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| attempt.invalid("the upload was started without a Location"))?;
        let mut upload = reqwest::Url::parse(&start_url)
            .and_then(|u| u.join(upload))
            .map_err(|e| attempt.invalid(format!("the upload Location is not a URL: {e}")))?;
        upload
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let body = bytes.to_vec();
        let put = || {
            self.http
                .request(Method::PUT, upload.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        };
        let response = self
            .send(attempt, location, repository, Access::Push, &put)
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(attempt.failure(response).await);
        }
        Ok(digest)
    }

    /// Puts a manifest under `tag`; returns its digest (checked against what the
    /// registry reports).
    pub async fn push_manifest(
        &self,
        attempt: &Attempt,
        location: &OciLocation,
        repository: &str,
        tag: &str,
        bytes: &[u8],
    ) -> Result<Digest, ArtifactError> {
        let digest = Digest::of(bytes);
        let url = format!("{}{repository}/manifests/{tag}", self.base(location));
        let body = bytes.to_vec();
        let put = || {
            self.http
                .put(&url)
                .header(CONTENT_TYPE, OCI_MANIFEST)
                .body(body.clone())
        };
        let response = self
            .send(attempt, location, repository, Access::Push, &put)
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(attempt.failure(response).await);
        }
        if let Some(reported) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && reported != digest.as_str()
        {
            return Err(attempt.mismatch(digest.as_str(), reported));
        }
        Ok(digest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge("Bearer realm=https://a/t, service=x").unwrap();
        assert_eq!(c.params["realm"], "https://a/t");
        assert_eq!(c.params["service"], "x");
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn the_chart_layer_is_found_by_media_type() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{HELM_CONFIG}","digest":"sha256:{a}","size":1}},
               "layers":[{{"mediaType":"application/vnd.example.other","digest":"sha256:{b}","size":2}},
                         {{"mediaType":"{HELM_CHART_LAYER}","digest":"sha256:{c}","size":3}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        );
        let m = parse_manifest(manifest.as_bytes()).unwrap();
        assert_eq!(m.chart_layer().unwrap().size, 3);
        assert!(parse_manifest(b"{}").is_err());
        assert!(
            parse_manifest(
                manifest
                    .replace("\"schemaVersion\":2", "\"schemaVersion\":1")
                    .as_bytes()
            )
            .unwrap_err()
            .contains("schemaVersion")
        );
    }
}

//! The integrated registry: kaas is its token service (`GET /v2/token`, the Docker
//! registry token protocol) and its control plane (`/v1/registry/…`: robot
//! credentials, repositories and their tags, public repositories).
//!
//! The registry (CNCF Distribution) trusts kaas' token CA and asks its clients to get
//! a token here. A token grants, for each scope asked, the intersection of what was
//! asked and what the caller may do (`kaas_core::registry::granted`); a caller without
//! the right gets a token that grants less, and the registry itself refuses the request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{SecondsFormat, Utc};
use kaas_bootstrap::registry::{TokenAccess, TokenSigner};
use kaas_core::ValidationErrors;
use kaas_core::access::Role;
use kaas_core::decode::decode_json;
use kaas_core::meta::API_VERSION;
use kaas_core::registry::{
    CLUSTER_CREDENTIAL_PREFIX, RegistryAccess, RegistryCaller, RegistryCredential,
    RegistryCredentialSpec, RegistryRepository, RegistryRepositorySpec, Scope, check_repository,
    check_tag, granted, parse_credential_username, repository_namespace,
};
use kaas_core::validation::{check_dns_label, parse_duration};
use kaas_store::{ListFilter, StoreError, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::info;

use crate::auth::{Principal, sha256_hex};
use crate::clusters::PageQuery;
use crate::{ApiError, AppState};

/// The longest a robot credential may live.
const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(3 * 366 * 24 * 3600);
/// How long a rotated-out secret is still taken, unless the rotation says.
const DEFAULT_OVERLAP: &str = "24h";
/// The longest overlap.
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most scopes one token request may name.
const MAX_SCOPES: usize = 32;

/// What the API needs of the registry itself: what it holds, and deleting a manifest.
/// Implemented over the registry's HTTP API with kaas' own tokens.
#[async_trait]
pub trait RegistryBackend: Send + Sync {
    /// The repositories whose names start with `prefix` (`<tenant>/`), in order: the
    /// catalog from there on.
    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, RegistryError>;
    /// The tags of `repository` (empty if it has none or does not exist).
    async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError>;
    /// The manifest `reference` (tag or digest) of `repository`: its digest and the size
    /// of what it references.
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError>;
    /// Deletes the manifest `digest` (and so every tag pointing at it).
    async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<(), RegistryError>;
}

/// A manifest as `kaas registry list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestInfo {
    pub digest: String,
    pub media_type: String,
    /// The bytes of the manifest, its config and its layers (of an index: of each
    /// manifest it lists, with theirs).
    pub size: u64,
}

/// Why the registry could not do what kaas asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the registry refused: {status} {message}")]
    Refused { status: u16, message: String },
    #[error("the registry answered what kaas cannot read: {0}")]
    Unreadable(String),
    #[error("kaas cannot sign its own token for the registry: {0}")]
    Signing(String),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "RegistryUnavailable",
            e.to_string(),
        )
    }
}

/// The registry kaas is the token service of.
pub struct RegistryService {
    /// Its `host[:port]`, as image references and docker configs name it.
    pub host: String,
    pub signer: TokenSigner,
    /// How long a token is valid.
    pub token_ttl: chrono::Duration,
    pub backend: Arc<dyn RegistryBackend>,
}

impl RegistryService {
    /// The registry's `host[:port]` from its URL.
    pub fn host_of(url: &str) -> Option<String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))?;
        let host = rest.split('/').next()?;
        (!host.is_empty()).then(|| host.to_owned())
    }
}

fn registry(state: &AppState) -> Result<&RegistryService, ApiError> {
    state.oci_registry.as_deref().ok_or_else(|| {
        ApiError::not_found("this kaas has no registry (kaas server --registry-url)")
    })
}

/// A new secret: 32 random bytes, base64url.
fn random_secret() -> Result<String, ApiError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::tokens::random(32)?))
}

/// A refusal of the token endpoint: kaas' error, plus the `errors` list registry
/// clients (docker, skopeo, containerd) show their users.
fn unauthorized(message: impl Into<String>) -> Response {
    let message = message.into();
    let mut body = serde_json::to_value(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        message.clone(),
    ))
    .unwrap_or(Value::Null);
    body["errors"] = json!([{"code": "UNAUTHORIZED", "message": message}]);
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"kaas registry\""),
    );
    response
}

/// The user name and password of a Basic `Authorization` header; `Ok(None)` without
/// one.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let encoded = text
        .strip_prefix("Basic ")
        .ok_or("the Authorization header must be Basic (user name and password)")?;
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("the Basic credentials have no ':' between user name and password")?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

/// Who the token request's credentials say the caller is.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, RegistryCaller), Response> {
    let credentials = basic_credentials(headers).map_err(unauthorized)?;
    let Some((user, password)) = credentials else {
        return Ok(("anonymous".to_owned(), RegistryCaller::Anonymous));
    };
    if let Some((tenant, name)) = parse_credential_username(&user) {
        let refused = || {
            unauthorized(format!(
                "registry credential {user} is unknown, revoked or expired, or the password is wrong"
            ))
        };
        let credential = state
            .store
            .get_obj::<RegistryCredential>(tenant, name)
            .await
            .map_err(|e| ApiError::from(e).into_response())?
            .ok_or_else(refused)?;
        if credential.metadata.is_deleting()
            || !credential.accepts(&sha256_hex(&password), Utc::now())
        {
            return Err(refused());
        }
        // A cluster's own credential dies with its cluster, at once.
        if let Some(owner) = &credential.metadata.owner {
            let cluster = state
                .store
                .get_obj::<kaas_core::Cluster>(tenant, &owner.name)
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            if !cluster.is_some_and(|c| c.metadata.uid == owner.uid && !c.metadata.is_deleting()) {
                return Err(unauthorized(format!(
                    "registry credential {user} belonged to cluster {}, which is deleted",
                    owner.name
                )));
            }
        }
        return Ok((
            user.clone(),
            RegistryCaller::Tenant {
                tenant: tenant.to_owned(),
                access: credential.spec.access,
            },
        ));
    }
    // Otherwise the password is a kaas token (any user name), as for the API.
    let principal = crate::auth::principal_of_token(state, &password)
        .await
        .map_err(|e| {
            if e.status == StatusCode::UNAUTHORIZED {
                unauthorized(format!(
                    "{user:?} is no registry credential (<tenant>+<name>) and the password is no valid kaas token"
                ))
            } else {
                e.into_response()
            }
        })?;
    if principal.operator {
        return Ok((principal.subject, RegistryCaller::Operator));
    }
    let access = if principal.role >= Role::Editor {
        RegistryAccess::Push
    } else {
        RegistryAccess::Pull
    };
    Ok((
        principal.subject,
        RegistryCaller::Tenant {
            tenant: principal.tenant,
            access,
        },
    ))
}

/// The query of a token request: `service`, and any number of `scope`s (each may hold
/// several, separated by spaces).
fn token_query(query: &str) -> (Option<String>, Vec<String>) {
    let mut service = None;
    let mut scopes = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "service" => service = Some(value.into_owned()),
            "scope" => scopes.extend(
                value
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    (service, scopes)
}

/// `GET /v2/token`: a token for the registry, per the Docker registry token
/// specification. Bad credentials are refused (401); scopes the caller may not have
/// are granted less, or nothing.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let registry = match registry(&state) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (service, scopes) = token_query(query.as_deref().unwrap_or_default());
    if let Some(service) = &service
        && service != registry.signer.service()
    {
        return ApiError::bad_request(format!(
            "service {service:?} is not this registry's ({:?})",
            registry.signer.service()
        ))
        .into_response();
    }
    if scopes.len() > MAX_SCOPES {
        return ApiError::bad_request(format!("at most {MAX_SCOPES} scopes per request"))
            .into_response();
    }
    let (subject, caller) = match caller(&state, &headers).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let mut access: Vec<TokenAccess> = Vec::new();
    for text in &scopes {
        let Some(scope) = Scope::parse(text) else {
            continue;
        };
        let public = scope.resource_type == "repository"
            && check_repository(&scope.name).is_ok()
            && match state
                .store
                .get_obj::<RegistryRepository>(repository_namespace(&scope.name), &scope.name)
                .await
            {
                Ok(repo) => repo.is_some_and(|r| r.spec.public),
                Err(e) => return ApiError::from(e).into_response(),
            };
        let actions = granted(&caller, &scope, public);
        if actions.is_empty() {
            continue;
        }
        match access
            .iter_mut()
            .find(|a| a.resource_type == scope.resource_type && a.name == scope.name)
        {
            Some(entry) => {
                for a in actions {
                    if !entry.actions.contains(&a) {
                        entry.actions.push(a);
                    }
                }
            }
            None => access.push(TokenAccess {
                resource_type: scope.resource_type.clone(),
                name: scope.name.clone(),
                actions: actions.into_iter().collect(),
            }),
        }
    }
    let now = Utc::now();
    let jti = match random_secret() {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    let token = match registry
        .signer
        .sign(&subject, &access, now, registry.token_ttl, &jti)
    {
        Ok(t) => t,
        Err(e) => return ApiError::internal(e.to_string()).into_response(),
    };
    info!(target: "kaas::registry", subject, asked = scopes.len(), granted = access.len(), "registry token issued");
    Json(json!({
        "token": token,
        "access_token": token,
        "expires_in": registry.token_ttl.num_seconds(),
        "issued_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
    .into_response()
}

/// What the API shows of a credential: never a hash.
fn shown(credential: &RegistryCredential) -> Value {
    let mut value = serde_json::to_value(credential).unwrap_or(Value::Null);
    if let Some(spec) = value["spec"].as_object_mut() {
        spec.remove("secretSha256");
        if let Some(previous) = spec.get_mut("previous").and_then(Value::as_object_mut) {
            previous.remove("secretSha256");
        }
    }
    value["username"] = json!(credential.username());
    value
}

/// `POST /v1/registry/credentials`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialRequest {
    name: String,
    access: RegistryAccess,
    #[serde(default)]
    description: String,
    /// How long it is valid (`30d`, `12h`); default: until revoked.
    ttl: Option<String>,
}

fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::invalid(ValidationErrors::single(field, reason))
}

/// Makes a robot credential in `tenant`; the answer carries the secret, once.
pub async fn create_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    let request: CredentialRequest = decode_json(&body).map_err(ApiError::invalid)?;
    if let Err(reason) = check_dns_label(&request.name) {
        return Err(invalid("name", reason));
    }
    if request.name.starts_with(CLUSTER_CREDENTIAL_PREFIX) {
        return Err(invalid(
            "name",
            format!(
                "names starting with {CLUSTER_CREDENTIAL_PREFIX:?} are kept for clusters' own credentials"
            ),
        ));
    }
    if request.description.chars().count() > 256 {
        return Err(invalid("description", "must be at most 256 characters"));
    }
    let now = Utc::now();
    let expires_at = match &request.ttl {
        None => None,
        Some(text) => Some(now + crate::tokens::ttl_of("ttl", text, MAX_CREDENTIAL_TTL)?),
    };
    let secret = random_secret()?;
    let credential = RegistryCredential::new(
        &request.name,
        RegistryCredentialSpec {
            access: request.access,
            description: request.description,
            created_by: principal.subject.clone(),
            expires_at,
            secret_sha256: sha256_hex(&secret),
            rotated_at: None,
            previous: None,
        },
    );
    let created = match state.store.create_obj(&principal.tenant, &credential).await {
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!(
                    "registry credential {:?} already exists in tenant {:?}",
                    request.name, principal.tenant
                ),
            ));
        }
        other => other?,
    };
    let mut body = shown(&created);
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list_credentials(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::lists::ListAnswer<Value>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (credentials, next) = crate::lists::page::<RegistryCredential>(
        &state,
        ListFilter::tenant(&principal.tenant),
        query.limit,
        query.continue_token.as_deref(),
        &["registryCredentials", &principal.tenant],
    )
    .await?;
    let items: Vec<Value> = credentials.iter().map(shown).collect();
    Ok(crate::lists::answer("RegistryCredential", items, next))
}

async fn own_credential(
    state: &AppState,
    principal: &Principal,
    name: &str,
) -> Result<RegistryCredential, ApiError> {
    let credential = state
        .store
        .get_obj::<RegistryCredential>(&principal.tenant, name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "registry credential {name:?} not found in tenant {:?}",
                principal.tenant
            ))
        })?;
    if let Some(owner) = &credential.metadata.owner {
        return Err(ApiError::conflict(format!(
            "registry credential {name:?} belongs to cluster {:?}: kaas renews it; set the cluster's spec.registry.pullCredential to false to remove it",
            owner.name
        )));
    }
    Ok(credential)
}

pub async fn revoke_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    own_credential(&state, &principal, &name).await?;
    match state
        .store
        .delete_obj::<RegistryCredential>(&principal.tenant, &name)
        .await
    {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/registry/credentials/{name}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the secret before is still taken (default 24h; `0s`: not at all).
    overlap: Option<String>,
}

/// A new secret for a credential; the one before is still taken for the overlap.
pub async fn rotate_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        decode_json(&body).map_err(ApiError::invalid)?
    };
    let overlap_text = request.overlap.as_deref().unwrap_or(DEFAULT_OVERLAP);
    let overlap = parse_duration(overlap_text).map_err(|r| invalid("overlap", r))?;
    if overlap > MAX_OVERLAP {
        return Err(invalid(
            "overlap",
            format!("{overlap_text:?} must be at most 30d"),
        ));
    }
    let mut credential = own_credential(&state, &principal, &name).await?;
    let now = Utc::now();
    if credential.expired(now) {
        return Err(ApiError::conflict(format!(
            "registry credential {name:?} has expired; make a new one"
        )));
    }
    let secret = random_secret()?;
    let overlap =
        chrono::Duration::from_std(overlap).map_err(|e| invalid("overlap", e.to_string()))?;
    credential.spec.rotate(sha256_hex(&secret), now, overlap);
    let updated = state.store.update_obj(&credential).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "registry credential {name:?} changed meanwhile; try again"
        ))
    })?;
    let mut body = shown(&updated);
    body["secret"] = json!(secret);
    Ok(Json(body).into_response())
}

/// A repository named in a path: the caller's tenant's own.
fn own_repository(principal: &Principal, repository: &str) -> Result<(), ApiError> {
    if let Err(reason) = check_repository(repository) {
        return Err(invalid("repository", reason));
    }
    if repository_namespace(repository) != principal.tenant {
        return Err(ApiError::not_found(format!(
            "repository {repository:?} not found in tenant {:?} (its repositories are under {}/)",
            principal.tenant, principal.tenant
        )));
    }
    Ok(())
}

/// `GET /v1/registry/repositories`: the tenant's repositories with their tags.
pub async fn list_repositories(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state)?;
    let prefix = format!("{}/", principal.tenant);
    let configured: Vec<RegistryRepository> = state
        .store
        .list_obj(&ListFilter {
            tenant: Some(principal.tenant.clone()),
            owner_uid: None,
            ..Default::default()
        })
        .await?;
    let mut items = Vec::new();
    for name in registry.backend.repositories(&prefix).await? {
        let tags = registry.backend.tags(&name).await?;
        let public = configured
            .iter()
            .any(|r| r.metadata.name == name && r.spec.public);
        items.push(json!({"name": name, "tags": tags, "public": public}));
    }
    Ok(Json(
        json!({"apiVersion": API_VERSION, "kind": "RegistryRepositoryList", "items": items}),
    ))
}

/// `GET /v1/registry/repositories/{repository}`: its tags with digests and sizes.
pub async fn get_repository(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(repository): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let registry = registry(&state)?;
    own_repository(&principal, &repository)?;
    let mut tags = Vec::new();
    for tag in registry.backend.tags(&repository).await? {
        if let Some(manifest) = registry.backend.manifest(&repository, &tag).await? {
            tags.push(json!({"tag": tag, "digest": manifest.digest, "mediaType": manifest.media_type, "size": manifest.size}));
        }
    }
    let public = state
        .store
        .get_obj::<RegistryRepository>(&principal.tenant, &repository)
        .await?
        .is_some_and(|r| r.spec.public);
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": "RegistryRepositoryTags",
        "name": repository,
        "public": public,
        "tags": tags,
    })))
}

/// `PUT /v1/registry/repositories/{repository}`: whether it is public (editor).
pub async fn set_repository(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(repository): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Editor)?;
    registry(&state)?;
    own_repository(&principal, &repository)?;
    let spec: RegistryRepositorySpec = decode_json(&body).map_err(ApiError::invalid)?;
    let stored = match state
        .store
        .get_obj::<RegistryRepository>(&principal.tenant, &repository)
        .await?
    {
        Some(mut existing) => {
            existing.spec = spec;
            state.store.update_obj(&existing).await?.ok_or_else(|| {
                ApiError::conflict(format!(
                    "repository {repository:?} changed meanwhile; try again"
                ))
            })?
        }
        None => {
            state
                .store
                .create_obj(
                    &principal.tenant,
                    &RegistryRepository::new(&repository, spec),
                )
                .await?
        }
    };
    Ok(Json(serde_json::to_value(&stored).unwrap_or(Value::Null)))
}

/// `DELETE /v1/registry/repositories/{repository}/tags/{tag}` (editor): deletes the
/// tag's manifest, and with it every tag that points at the same manifest.
pub async fn delete_tag(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((repository, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    let registry = registry(&state)?;
    own_repository(&principal, &repository)?;
    if let Err(reason) = check_tag(&tag) {
        return Err(invalid("tag", reason));
    }
    let Some(manifest) = registry.backend.manifest(&repository, &tag).await? else {
        return Err(ApiError::not_found(format!(
            "tag {tag:?} not found in repository {repository:?}"
        )));
    };
    registry
        .backend
        .delete_manifest(&repository, &manifest.digest)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_queries_take_every_scope() {
        let (service, scopes) = token_query(
            "service=kaas-registry&scope=repository%3Aalpha%2Fapp%3Apull%2Cpush&scope=repository:a/b:pull%20registry:catalog:*&account=x",
        );
        assert_eq!(service.as_deref(), Some("kaas-registry"));
        assert_eq!(
            scopes,
            [
                "repository:alpha/app:pull,push",
                "repository:a/b:pull",
                "registry:catalog:*"
            ]
        );
    }

    #[test]
    fn basic_credentials_are_decoded_or_refused_with_a_reason() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), Ok(None));
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("alpha+ci:pa:ss"))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Ok(Some(("alpha+ci".to_owned(), "pa:ss".to_owned())))
        );
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert!(basic_credentials(&headers).is_err());
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_overlap_only() {
        let now = Utc::now();
        let mut spec = RegistryCredentialSpec {
            access: RegistryAccess::Pull,
            description: String::new(),
            created_by: String::new(),
            expires_at: Some(now + chrono::Duration::minutes(30)),
            secret_sha256: sha256_hex("old"),
            rotated_at: None,
            previous: None,
        };
        spec.rotate(sha256_hex("new"), now, chrono::Duration::hours(1));
        let credential = RegistryCredential::new("c", spec.clone());
        assert!(credential.accepts(&sha256_hex("new"), now));
        assert!(credential.accepts(&sha256_hex("old"), now));
        // Capped at the credential's expiry.
        assert_eq!(
            spec.previous.as_ref().unwrap().valid_until,
            now + chrono::Duration::minutes(30)
        );
        spec.rotate(sha256_hex("newer"), now, chrono::Duration::zero());
        assert!(spec.previous.is_none());
    }

    #[test]
    fn hosts_come_from_urls() {
        assert_eq!(
            RegistryService::host_of("https://registry.example:5000/x").as_deref(),
            Some("registry.example:5000")
        );
        assert_eq!(RegistryService::host_of("ftp://x"), None);
    }
}

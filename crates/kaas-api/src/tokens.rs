//! `/v1/tokens`: a tenant's API tokens. Made by the tenant's admins (or the operator,
//! for any tenant), shown once, stored only as a hash, listed without it, revoked by
//! deleting them.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kaas_core::ValidationErrors;
use kaas_core::access::{ApiToken, ApiTokenSpec, Role};
use kaas_core::decode::decode_json;
use kaas_core::tenant::Tenant;
use kaas_core::validation::parse_duration;
use kaas_store::{ListFilter, StoreError, StoreExt};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, TOKEN_PREFIX, sha256_hex};
use crate::clusters::PageQuery;
use crate::{ApiError, AppState};

/// The longest a token may live.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The tenant; default: the caller's.
    tenant: Option<String>,
    role: Role,
    #[serde(default)]
    description: String,
    /// How long it is valid (`30d`, `12h`); default: until revoked.
    ttl: Option<String>,
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
}

pub(crate) fn random(bytes: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| ApiError::internal("the system random number generator failed"))?;
    Ok(out)
}

/// A duration from field `field` of a request, between one minute and `max`.
pub(crate) fn ttl_of(field: &str, text: &str, max: Duration) -> Result<chrono::Duration, ApiError> {
    let invalid = |reason: String| ApiError::invalid(ValidationErrors::single(field, reason));
    let ttl = parse_duration(text).map_err(invalid)?;
    if ttl < Duration::from_secs(60) || ttl > max {
        return Err(invalid(format!(
            "{text:?} must be between 1m and {}d",
            max.as_secs() / 86400
        )));
    }
    chrono::Duration::from_std(ttl).map_err(|e| invalid(e.to_string()))
}

/// A token's id: 10 lower-case letters and digits.
fn new_id() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    Ok(random(10)?
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// What the API shows of a token: never its hash.
fn shown(token: &ApiToken) -> Value {
    let mut value = serde_json::to_value(token).unwrap_or(Value::Null);
    if let Some(spec) = value["spec"].as_object_mut() {
        spec.remove("secretSha256");
    }
    value
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let request: TokenRequest = decode_json(&body).map_err(ApiError::invalid)?;
    let tenant = request.tenant.unwrap_or_else(|| principal.tenant.clone());
    if tenant != principal.tenant && !principal.operator {
        return Err(ApiError::not_found(format!("tenant {tenant:?} not found")));
    }
    // Held to the write: a token made while its tenant is deleted would outlive it.
    let _tenants = state.quota_lock.lock().await;
    if state
        .store
        .get_obj::<Tenant>(&tenant, &tenant)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid(ValidationErrors::single(
            "tenant",
            format!("tenant {tenant:?} does not exist"),
        )));
    }
    if request.role > principal.role {
        return Err(forbidden(format!(
            "{} is {} and cannot make a token with more rights ({})",
            principal.subject, principal.role, request.role
        )));
    }
    let now = chrono::Utc::now();
    let expires_at = match &request.ttl {
        None => None,
        Some(text) => Some(now + ttl_of("ttl", text, MAX_TTL)?),
    };
    if request.description.chars().count() > 256 {
        return Err(ApiError::invalid(ValidationErrors::single(
            "description",
            "must be at most 256 characters",
        )));
    }
    // A token cannot outlive the one it was made with.
    let expires_at = match (expires_at, principal.expires_at) {
        (Some(wanted), Some(limit)) if wanted > limit => {
            return Err(ApiError::invalid(ValidationErrors::single(
                "ttl",
                format!("must end by {limit}, when the caller's own token expires"),
            )));
        }
        (None, Some(limit)) => Some(limit),
        (wanted, _) => wanted,
    };
    let id = new_id()?;
    let secret = URL_SAFE_NO_PAD.encode(random(32)?);
    let token = ApiToken::new(
        &id,
        ApiTokenSpec {
            role: request.role,
            description: request.description,
            created_by: principal.subject.clone(),
            expires_at,
            secret_sha256: sha256_hex(&secret),
        },
    );
    let created = state.store.create_obj(&tenant, &token).await?;
    let mut body = shown(&created);
    body["token"] = json!(format!("{TOKEN_PREFIX}{tenant}_{id}_{secret}"));
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(crate::audit::AuditTenant(tenant));
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::lists::ListAnswer<Value>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    principal.require(Role::Admin)?;
    let (tokens, next) = crate::lists::page::<ApiToken>(
        &state,
        ListFilter::tenant(&principal.tenant),
        query.limit,
        query.continue_token.as_deref(),
        &["tokens", &principal.tenant],
    )
    .await?;
    let items: Vec<Value> = tokens.iter().map(shown).collect();
    Ok(crate::lists::answer("ApiToken", items, next))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    match state
        .store
        .delete_obj::<ApiToken>(&principal.tenant, &id)
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "token {id:?} not found in tenant {:?}",
            principal.tenant
        ))),
        Err(e) => Err(e.into()),
    }
}

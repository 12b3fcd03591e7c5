//! Who is calling: every `/v1` request carries a token, which becomes a [`Principal`]
//! (a subject, the tenant it acts in, its role there) or a 401.
//!
//! Three kinds of token are taken:
//! - the **bootstrap admin token** (`Authorization: Bearer …`): the operator, admin in
//!   every tenant and the only one who manages tenants and the simulated cloud; it acts
//!   in the tenant named by the `Kaas-Tenant` header (default `default`);
//! - **API tokens** of a tenant (`Bearer kaas_<tenant>_<id>_<secret>`), made with
//!   `POST /v1/tokens`; only the secret's SHA-256 is stored; they expire or are revoked;
//! - **Keystone tokens** (`X-Auth-Token`, or a Bearer token that is neither of the
//!   above), validated against the cloud's Keystone when the server has one, and mapped
//!   to the tenant bound to their project, with the role their Keystone roles give
//!   (`admin` → admin, `member` → editor, `reader` → viewer). Validations are cached
//!   briefly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kaas_core::access::{ApiToken, Role};
use kaas_core::meta::DEFAULT_TENANT;
use kaas_core::tenant::Tenant;
use kaas_store::{ListFilter, StoreExt};

use crate::{ApiError, AppState};

/// The header with which the operator picks the tenant to act in.
pub const TENANT_HEADER: &str = "kaas-tenant";
/// The prefix of kaas API tokens.
pub const TOKEN_PREFIX: &str = "kaas_";
/// How long a Keystone token's validation is trusted without asking Keystone again.
const KEYSTONE_CACHE_TTL: Duration = Duration::from_secs(60);
/// The most validations kept.
const KEYSTONE_CACHE_MAX: usize = 10_000;

/// The caller of a request, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who: `admin` (the bootstrap token), `token:<id>`, `keystone:<user>`.
    pub subject: String,
    /// The tenant the request acts in.
    pub tenant: String,
    pub role: Role,
    /// The bootstrap admin: every tenant, and the operator's endpoints.
    pub operator: bool,
    /// When the credential the caller used expires (an API token's expiry).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    /// 403 unless the caller has at least `role` in its tenant.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} is {} in tenant {:?}; this needs {role}",
                self.subject, self.role, self.tenant
            ),
        ))
    }

    /// 403 unless the caller is the operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.operator {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} is not the operator; only the operator's token may do this",
                self.subject
            ),
        ))
    }
}

/// Who a Keystone token belongs to, as Keystone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneIdentity {
    pub user: String,
    pub project_id: String,
    pub project_name: String,
    pub roles: Vec<String>,
}

/// Validates Keystone tokens (`GET /v3/auth/tokens`), for servers on a real cloud.
#[async_trait]
pub trait KeystoneTokens: Send + Sync {
    /// The token's identity; `Ok(None)` when Keystone does not accept it.
    async fn validate(&self, token: &str) -> Result<Option<KeystoneIdentity>, String>;
}

/// Keystone validations by a hash of the token, until when they are trusted.
#[derive(Default)]
pub struct KeystoneCache {
    entries: Mutex<HashMap<String, (Instant, Option<KeystoneIdentity>)>>,
}

impl KeystoneCache {
    fn get(&self, key: &str) -> Option<Option<KeystoneIdentity>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, identity)| identity.clone())
    }

    fn put(&self, key: String, identity: Option<KeystoneIdentity>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if entries.len() >= KEYSTONE_CACHE_MAX {
            entries.retain(|_, (until, _)| *until > now);
        }
        if entries.len() >= KEYSTONE_CACHE_MAX {
            // Flooded with tokens: start over rather than grow without bound.
            entries.clear();
        }
        entries.insert(key, (now + KEYSTONE_CACHE_TTL, identity));
    }
}

/// Authenticates every request; the [`Principal`] goes into the request's extensions
/// for the handlers, and into the response's for the audit log.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match principal(&state, request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal.clone());
            let mut response = next.run(request).await;
            response.extensions_mut().insert(principal);
            response
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let bearer = header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let keystone = header_text(headers, "x-auth-token");
    match (bearer, keystone) {
        (Some(token), _) if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) => {
            operator(state, headers).await
        }
        (Some(token), _) if token.starts_with(TOKEN_PREFIX) => api_token(state, token).await,
        (Some(token), _) | (None, Some(token)) => keystone_token(state, token).await,
        (None, None) => Err(unauthorized(
            "missing Authorization: Bearer TOKEN (or X-Auth-Token) header",
        )),
    }
}

/// The principal a kaas token (the bootstrap token, an API token or a Keystone token)
/// stands for, outside a `/v1` request: the operator acts in the default tenant.
pub(crate) async fn principal_of_token(
    state: &AppState,
    token: &str,
) -> Result<Principal, ApiError> {
    if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
        return operator(state, &HeaderMap::new()).await;
    }
    if token.starts_with(TOKEN_PREFIX) {
        return api_token(state, token).await;
    }
    keystone_token(state, token).await
}

async fn operator(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let tenant = header_text(headers, TENANT_HEADER).unwrap_or(DEFAULT_TENANT);
    if tenant != DEFAULT_TENANT
        && state
            .store
            .get_obj::<Tenant>(tenant, tenant)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found(format!(
            "tenant {tenant:?} (from the {TENANT_HEADER} header) not found"
        )));
    }
    Ok(Principal {
        subject: "admin".to_owned(),
        tenant: tenant.to_owned(),
        role: Role::Admin,
        operator: true,
        expires_at: None,
    })
}

/// `kaas_<tenant>_<id>_<secret>` into its parts.
pub fn split_token(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.strip_prefix(TOKEN_PREFIX)?.splitn(3, '_');
    let tenant = parts.next().filter(|s| !s.is_empty())?;
    let id = parts.next().filter(|s| !s.is_empty())?;
    let secret = parts.next().filter(|s| !s.is_empty())?;
    Some((tenant, id, secret))
}

pub use kaas_store::sha256_hex;

async fn api_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let invalid = || unauthorized("the API token is not valid (unknown, revoked or malformed)");
    let (tenant, id, secret) = split_token(token).ok_or_else(invalid)?;
    let stored = state
        .store
        .get_obj::<ApiToken>(tenant, id)
        .await?
        .ok_or_else(invalid)?;
    if !constant_time_eq(
        sha256_hex(secret).as_bytes(),
        stored.spec.secret_sha256.as_bytes(),
    ) {
        return Err(invalid());
    }
    if stored.expired(chrono::Utc::now()) {
        return Err(unauthorized(format!("the API token {id} has expired")));
    }
    Ok(Principal {
        subject: format!("token:{id}"),
        tenant: tenant.to_owned(),
        role: stored.spec.role,
        operator: false,
        expires_at: stored.spec.expires_at,
    })
}

/// The role Keystone roles give: the highest of them.
pub fn keystone_role(roles: &[String]) -> Option<Role> {
    roles
        .iter()
        .filter_map(|r| match r.to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "member" | "_member_" => Some(Role::Editor),
            "reader" => Some(Role::Viewer),
            _ => None,
        })
        .max()
}

async fn keystone_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let Some(keystone) = &state.keystone else {
        return Err(unauthorized("the bearer token is not valid"));
    };
    let key = sha256_hex(token);
    let identity = match state.keystone_cache.get(&key) {
        Some(identity) => identity,
        None => {
            let identity = keystone.validate(token).await.map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    format!("cannot validate the token with Keystone: {e}"),
                )
            })?;
            state.keystone_cache.put(key, identity.clone());
            identity
        }
    };
    let identity = identity.ok_or_else(|| unauthorized("Keystone does not accept the token"))?;
    let tenants: Vec<Tenant> = state.store.list_obj(&ListFilter::default()).await?;
    let tenant = tenants
        .iter()
        // By id only: project names are unique only within a domain.
        .find(|t| t.spec.project.as_deref() == Some(identity.project_id.as_str()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "project {} ({}) is not bound to any tenant of kaas",
                    identity.project_name, identity.project_id
                ),
            )
        })?;
    let role = keystone_role(&identity.roles).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "user {} has none of the roles reader, member or admin in project {}",
                identity.user, identity.project_name
            ),
        )
    })?;
    Ok(Principal {
        subject: format!("keystone:{}", identity.user),
        tenant: tenant.metadata.name.clone(),
        role,
        operator: false,
        expires_at: None,
    })
}

/// Compares without an early exit, so the time taken does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn tokens_split_into_tenant_id_and_secret() {
        assert_eq!(
            split_token("kaas_acme_k3x9_s3_cr-et"),
            Some(("acme", "k3x9", "s3_cr-et"))
        );
        for bad in [
            "kaas_acme_k3x9",
            "kaas__id_s",
            "kaas_acme__s",
            "other_acme_id_s",
        ] {
            assert_eq!(split_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_hash_to_hex_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keystone_roles_map_to_the_highest_kaas_role() {
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(keystone_role(&roles(&["reader"])), Some(Role::Viewer));
        assert_eq!(
            keystone_role(&roles(&["reader", "member"])),
            Some(Role::Editor)
        );
        assert_eq!(
            keystone_role(&roles(&["member", "admin"])),
            Some(Role::Admin)
        );
        assert_eq!(keystone_role(&roles(&["load-balancer_member"])), None);
    }
}

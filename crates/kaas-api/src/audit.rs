//! The audit log: every mutating request (who, tenant, what, when, result) appended to
//! the store's append-only audit table and written as a structured log line (target
//! `kaas::audit`), whether it succeeded, was refused or failed. `GET /v1/audit` reads
//! it: the operator every tenant's (or one's, with `?tenant=`), a tenant's admins their
//! tenant's.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use kaas_core::access::Role;
use kaas_core::meta::API_VERSION;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// Whether a request is audited: every change, the reads that hand out secrets (a
/// kubeconfig's admin certificate, a machine's user data), and browsing the registry.
fn audited(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || path.ends_with("/kubeconfig")
        || path.ends_with("/user-data")
        || path.starts_with("/v1/registry/")
}

/// Set by a handler whose request acts in another tenant than the caller's (the
/// operator making a tenant or a token for one): the audit entry is filed there.
#[derive(Debug, Clone)]
pub struct AuditTenant(pub String);

/// Records each mutating request once its answer is known. Outside authentication, so
/// that refused tokens are recorded too.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !audited(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let principal = response.extensions().get::<Principal>();
    let acted_in = response.extensions().get::<AuditTenant>();
    let (who, tenant) = match principal {
        Some(p) => (
            p.subject.as_str(),
            acted_in.map_or(p.tenant.as_str(), |t| t.0.as_str()),
        ),
        None => ("anonymous", ""),
    };
    let status = response.status().as_u16();
    let result = match status {
        200..=299 => "success",
        401 => "unauthenticated",
        403 => "forbidden",
        400..=499 => "refused",
        _ => "error",
    };
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    info!(target: "kaas::audit", who, tenant, method, path, status, result, "audit");
    let entry = json!({
        "at": at,
        "who": who,
        "tenant": tenant,
        "method": method,
        "path": path,
        "status": status,
        "result": result,
    });
    if principal.is_none() {
        // Anyone can send those: the log line records them, the table (which cannot
        // be trimmed) does not, so they cannot fill it.
        return response;
    }
    if let Err(e) = state.store.append_audit(tenant, entry).await {
        warn!(error = %e, who, method, path, "cannot append to the audit log");
    }
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries after this seq.
    #[serde(default)]
    since: i64,
    #[serde(default = "default_limit")]
    limit: u32,
    /// The operator: only this tenant's entries.
    tenant: Option<String>,
}

fn default_limit() -> u32 {
    500
}

pub async fn list(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    principal.require(Role::Admin)?;
    let tenant = if principal.operator {
        query.tenant.clone()
    } else {
        match &query.tenant {
            Some(t) if *t != principal.tenant => {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "{} may read only tenant {:?}'s audit log",
                        principal.subject, principal.tenant
                    ),
                ));
            }
            _ => Some(principal.tenant.clone()),
        }
    };
    let limit = query.limit.clamp(1, 5000);
    let entries = state
        .store
        .list_audit(tenant.as_deref(), query.since.max(0), limit)
        .await?;
    let items: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut body = e.body;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("seq".to_owned(), json!(e.seq));
            }
            body
        })
        .collect();
    Ok(Json(
        json!({ "apiVersion": API_VERSION, "kind": "AuditEntryList", "items": items }),
    ))
}

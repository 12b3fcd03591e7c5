//! Ways into a cluster: an admin kubeconfig with a short-lived client certificate, and
//! (for administrators) the exact user data a machine was given.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use kaas_bootstrap::{ClusterPki, issue_admin_client_cert, render_admin_kubeconfig};
use kaas_cloud::WorkloadClusterRef;
use kaas_core::access::Role;
use kaas_core::naming::{bootstrap_secret, pki_secret};
use kaas_core::validation::parse_duration;
use kaas_core::{Cluster, Machine, ValidationErrors};
use kaas_store::{Secrets, StoreExt};
use serde::Deserialize;

use crate::auth::Principal;
use crate::clusters::load;
use crate::{ApiError, AppState};

/// The longest a kubeconfig's client certificate may live: it cannot be revoked.
pub const MAX_KUBECONFIG_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigQuery {
    /// How long the client certificate is valid, e.g. `1h`, `24h` (at most 7d).
    ttl: Option<String>,
}

fn ttl(query: &KubeconfigQuery) -> Result<Duration, ApiError> {
    let Some(text) = &query.ttl else {
        return Ok(DEFAULT_TTL);
    };
    let invalid = |reason: String| ApiError::invalid(ValidationErrors::single("ttl", reason));
    let ttl = parse_duration(text).map_err(invalid)?;
    if ttl < Duration::from_secs(60) {
        return Err(invalid(format!("{text:?} is shorter than one minute")));
    }
    if ttl > MAX_KUBECONFIG_TTL {
        return Err(invalid(format!(
            "{text:?} is longer than 7d: a client certificate cannot be revoked"
        )));
    }
    Ok(ttl)
}

pub async fn kubeconfig(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<KubeconfigQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ttl = ttl(&query)?;
    // Admin credentials to the cluster: more than a viewer may have.
    principal.require(Role::Editor)?;
    let cluster: Cluster = load(&state, &principal, &name).await?;
    let endpoint = cluster.status.api_endpoint.clone().ok_or_else(|| {
        ApiError::conflict(format!("cluster {name:?} has no API endpoint yet; try again once its load balancer has an address"))
    })?;
    let secrets = Secrets::new(state.store.as_ref(), &state.sealer);
    let data = secrets
        .get(&principal.tenant, &pki_secret(&name))
        .await?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "cluster {name:?} has no certificate authority yet; try again shortly"
            ))
        })?;
    let pki: ClusterPki = serde_json::from_value(data)
        .map_err(|e| ApiError::internal(format!("the stored PKI cannot be read: {e}")))?;
    let route = WorkloadClusterRef {
        cluster_uid: cluster.metadata.uid.clone(),
        tenant: cluster.metadata.tenant.clone(),
        cluster_name: name.clone(),
        api_endpoint: endpoint,
        api_vip: None,
        credentials: None,
    };
    let server = state
        .routes
        .route(&route)
        .await
        .map(|r| r.url)
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                format!("cluster {name:?} cannot be reached now: {e}"),
            )
        })?;
    let client = issue_admin_client_cert(&pki, "kaas-admin", ttl, chrono::Utc::now())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let config = render_admin_kubeconfig(&name, &server, &pki.kubernetes_ca.cert_pem, &client)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/yaml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        config,
    )
        .into_response())
}

pub async fn user_data(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, machine)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let cluster = load(&state, &principal, &name).await?;
    let owned = state
        .store
        .get_obj::<Machine>(&principal.tenant, &machine)
        .await?
        .is_some_and(|m| {
            m.metadata
                .owner
                .is_some_and(|o| o.uid == cluster.metadata.uid)
        });
    if !owned {
        return Err(ApiError::not_found(format!(
            "cluster {name:?} has no machine {machine:?}"
        )));
    }
    let secrets = Secrets::new(state.store.as_ref(), &state.sealer);
    let data = secrets
        .get(&principal.tenant, &bootstrap_secret(&machine))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "machine {machine:?} has no user data yet: its server has not been created"
            ))
        })?;
    let encoded = data["userData"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| ApiError::internal(format!("stored user data is not base64: {e}")))?;
    let content_type = if data["compressed"].as_bool() == Some(true) {
        "application/gzip"
    } else {
        "text/cloud-config"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

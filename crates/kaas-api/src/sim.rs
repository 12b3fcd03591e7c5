//! `/v1/sim/*`: the simulated cloud's inventory, fault injection and node states.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use kaas_core::ValidationErrors;
use kaas_core::decode::decode_json;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Principal;
use crate::{ApiError, AppState, SimControl};
use axum::Extension;

fn sim<'s>(state: &'s AppState, principal: &Principal) -> Result<&'s dyn SimControl, ApiError> {
    principal.require_operator()?;
    state
        .sim
        .as_deref()
        .ok_or_else(|| ApiError::not_found("this server does not run the simulated cloud"))
}

pub async fn inventory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(sim(&state, &principal)?.inventory()))
}

pub async fn faults(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(sim(&state, &principal)?.faults()))
}

pub async fn set_faults(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let sim = sim(&state, &principal)?;
    let value: Value = decode_json(&body).map_err(ApiError::invalid)?;
    sim.set_faults(value)
        .map(Json)
        .map_err(|e| ApiError::invalid(ValidationErrors(vec![e])))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeChange {
    ready: Option<bool>,
    drain_blocked: Option<bool>,
}

pub async fn set_node(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let sim = sim(&state, &principal)?;
    let change: NodeChange = decode_json(&body).map_err(ApiError::invalid)?;
    sim.set_node(&name, change.ready, change.drain_blocked)
        .map_err(ApiError::not_found)?;
    Ok(Json(
        serde_json::json!({"name": name, "ready": change.ready, "drainBlocked": change.drain_blocked}),
    ))
}

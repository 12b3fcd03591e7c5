//! `/v1/clusters`: create, list, get, replace, delete; events and machines.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaas_core::cluster::CLUSTER_FINALIZER;
use kaas_core::decode::decode_json;
use kaas_core::meta::{API_VERSION, DEFAULT_TENANT};
use kaas_core::validation::{validate_cluster, validate_cluster_update};
use kaas_core::{Cluster, ClusterStatus, Machine, ObjectMeta, ValidationErrors};
use kaas_store::{ListFilter, StoreExt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Every caller works in the default tenant until tenants are managed.
pub(crate) fn tenant() -> &'static str {
    DEFAULT_TENANT
}

fn list_of(kind: &str, items: Value) -> Json<Value> {
    Json(json!({ "apiVersion": API_VERSION, "kind": format!("{kind}List"), "items": items }))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let filter = ListFilter {
        tenant: Some(tenant().to_owned()),
        owner_uid: None,
    };
    let clusters: Vec<Cluster> = state.store.list_obj(&filter).await?;
    Ok(list_of(
        "Cluster",
        serde_json::to_value(clusters).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

pub(crate) async fn load(state: &AppState, name: &str) -> Result<Cluster, ApiError> {
    state
        .store
        .get_obj::<Cluster>(tenant(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("cluster {name:?} not found")))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    Ok(Json(load(&state, &name).await?))
}

/// Decodes and validates a cluster from a request body; keeps only what clients own.
fn accept(state: &AppState, body: &[u8]) -> Result<Cluster, ApiError> {
    let sent: Cluster = decode_json(body).map_err(ApiError::invalid)?;
    validate_cluster(&sent, &state.stacks).map_err(ApiError::invalid)?;
    Ok(sent)
}

pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let sent = accept(&state, &body)?;
    let mut metadata = ObjectMeta::named(&sent.metadata.name);
    metadata.labels = sent.metadata.labels;
    metadata.finalizers = vec![CLUSTER_FINALIZER.to_owned()];
    let cluster = Cluster {
        metadata,
        status: ClusterStatus::default(),
        ..sent
    };
    let created = state.store.create_obj(tenant(), &cluster).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn replace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Cluster>, ApiError> {
    let sent = accept(&state, &body)?;
    if sent.metadata.name != name {
        return Err(ApiError::invalid(ValidationErrors::single(
            "metadata.name",
            format!(
                "{:?} does not match the name in the path ({name:?})",
                sent.metadata.name
            ),
        )));
    }
    let mut current = load(&state, &name).await?;
    if current.metadata.is_deleting() {
        return Err(ApiError::conflict(format!(
            "cluster {name:?} is being deleted"
        )));
    }
    let given = &sent.metadata.resource_version;
    if !given.is_empty() && *given != current.metadata.resource_version {
        return Err(ApiError::conflict(format!(
            "cluster {name:?} was changed by someone else (resourceVersion {given} is not the current {}); read it again and retry",
            current.metadata.resource_version
        )));
    }
    validate_cluster_update(
        &current.spec,
        &sent.spec,
        current.status.kubernetes_version.as_deref(),
        &state.stacks,
    )
    .map_err(ApiError::invalid)?;
    current.spec = sent.spec;
    current.metadata.labels = sent.metadata.labels;
    let updated = state.store.update_obj(&current).await?;
    updated
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("cluster {name:?} not found")))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.delete_obj::<Cluster>(tenant(), &name).await {
        Ok(Some(marked)) => Ok((StatusCode::ACCEPTED, Json(marked)).into_response()),
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(kaas_store::StoreError::NotFound { .. }) => {
            Err(ApiError::not_found(format!("cluster {name:?} not found")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events after this seq.
    #[serde(default)]
    since: i64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    500
}

pub async fn events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let cluster = load(&state, &name).await?;
    let limit = query.limit.clamp(1, 5000);
    let stored = state
        .store
        .list_events(tenant(), &cluster.metadata.uid, query.since, limit)
        .await?;
    let items: Vec<Value> = stored
        .into_iter()
        .map(|e| {
            let mut body = e.body;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("seq".to_owned(), json!(e.seq));
            }
            body
        })
        .collect();
    Ok(list_of("Event", Value::Array(items)))
}

pub async fn machines(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cluster = load(&state, &name).await?;
    let filter = ListFilter {
        tenant: Some(tenant().to_owned()),
        owner_uid: Some(cluster.metadata.uid),
    };
    let machines: Vec<Machine> = state.store.list_obj(&filter).await?;
    Ok(list_of(
        "Machine",
        serde_json::to_value(machines).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

//! The stacks' upstream artifacts, cached in the store by digest: `GET /v1/artifacts`
//! lists them, `PUT /v1/artifacts/{digest}` takes one uploaded (a cloud without
//! internet: `kaas stack import`), `POST /v1/stacks/{name}/pull` has the server get a
//! stack's artifacts itself, mirrors first, side by side, and cache them (the operator
//! only).
//! `GET /v1/artifacts/{digest}` hands one out to anyone signed in: they are public
//! releases, and `kaas stack render` renders a stack's addons from them.

use std::collections::HashSet;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use kaas_artifacts::{Artifact, ArtifactKind, BlobKind, Digest, FailureKind, parse_manifest};
use kaas_core::access::Role;
use kaas_core::meta::API_VERSION;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// The largest artifact taken: the fetcher's own limit.
pub const MAX_ARTIFACT_BYTES: usize = 50 << 20;
/// The longest reference kept with an artifact.
const MAX_REFERENCE: usize = 1024;

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    principal.require_operator()?;
    let items = state.store.list_artifacts().await?;
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": "ArtifactList",
        "items": items,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    kind: String,
    #[serde(default)]
    reference: String,
}

pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(digest): Path<String>,
    Query(query): Query<PutQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require_operator()?;
    let digest = Digest::parse(&digest).map_err(ApiError::bad_request)?;
    let kind =
        BlobKind::parse(&query.kind).map_err(|e| ApiError::bad_request(format!("kind: {e}")))?;
    if query.reference.chars().count() > MAX_REFERENCE
        || query.reference.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "reference: at most {MAX_REFERENCE} characters, none of them control characters"
        )));
    }
    let actual = Digest::of(&body);
    if actual != digest {
        return Err(mismatch(&digest, &actual));
    }
    let stored = state
        .store
        .put_artifact(digest.as_str(), kind.as_str(), &query.reference, &body)
        .await?;
    Ok(Json(serde_json::to_value(stored).unwrap_or(Value::Null)))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Viewer)?;
    let digest = Digest::parse(&digest).map_err(ApiError::bad_request)?;
    let bytes = state
        .store
        .get_artifact(digest.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "artifact {digest} is not cached; the operator can get a stack's with `kaas stack pull STACK`"
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

fn mismatch(digest: &Digest, actual: &Digest) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "DigestMismatch",
        format!("artifact {digest}: the body's digest is {actual}, not {digest}"),
    )
}

pub async fn pull(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_operator()?;
    let stack = state.stacks.find(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no cluster stack {name:?}; known: {}",
            state.stacks.names().join(", ")
        ))
    })?;
    let artifacts = Artifact::of_stack(stack).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ArtifactUnacceptable",
            e.to_string(),
        )
    })?;
    let cached: HashSet<String> = state
        .store
        .list_artifacts()
        .await?
        .into_iter()
        .map(|a| a.digest)
        .collect();
    // What is cached already is not got again; the rest is got side by side.
    let mut items = Vec::with_capacity(artifacts.len());
    let mut wanted = Vec::new();
    for (index, artifact) in artifacts.iter().enumerate() {
        let mut item = json!({
            "addon": artifact.addon,
            "kind": artifact.kind,
            "reference": artifact.reference(),
            "digest": artifact.digest,
        });
        if is_cached(&state, &cached, artifact).await? {
            item["status"] = json!("cached");
        } else {
            wanted.push(index);
        }
        items.push(item);
    }
    let got = join_all(
        wanted
            .iter()
            .map(|&index| state.artifacts.fetch(&artifacts[index])),
    )
    .await;
    let mut failures = Vec::new();
    for (&index, result) in wanted.iter().zip(got) {
        let item = &mut items[index];
        match result {
            Ok(fetched) => {
                for blob in &fetched.blobs {
                    state
                        .store
                        .put_artifact(
                            blob.digest.as_str(),
                            blob.kind.as_str(),
                            &blob.reference,
                            &blob.bytes,
                        )
                        .await?;
                }
                item["status"] = json!("fetched");
                item["source"] = json!(fetched.source);
            }
            Err(e) => {
                tracing::warn!(error = %e, stack = name, "cannot get an artifact");
                item["status"] = json!("failed");
                item["reason"] = json!(e.to_string());
                failures.push((artifacts[index].reference(), e));
            }
        }
    }
    if failures.is_empty() {
        return Ok(Json(json!({
            "apiVersion": API_VERSION,
            "kind": "StackPull",
            "stack": name,
            "items": items,
        })));
    }
    let unacceptable = failures
        .iter()
        .any(|(_, e)| e.kind() == FailureKind::Unacceptable);
    let (status, code) = if unacceptable {
        (StatusCode::UNPROCESSABLE_ENTITY, "ArtifactUnacceptable")
    } else {
        (StatusCode::BAD_GATEWAY, "ArtifactUnavailable")
    };
    let mut error = ApiError::new(
        status,
        code,
        format!(
            "{} of the {} artifacts of stack {name} cannot be had; first: {}",
            failures.len(),
            artifacts.len(),
            failures[0].1
        ),
    );
    error.details = failures
        .iter()
        .map(|(reference, e)| json!({"field": reference, "reason": e.to_string()}))
        .collect();
    Err(error)
}

/// Whether every blob the artifact takes is in the store: an OCI chart's manifest,
/// config and chart layer; otherwise the one file.
async fn is_cached(
    state: &AppState,
    cached: &HashSet<String>,
    artifact: &Artifact,
) -> Result<bool, ApiError> {
    if !cached.contains(artifact.digest.as_str()) {
        return Ok(false);
    }
    if artifact.kind != ArtifactKind::ChartOci {
        return Ok(true);
    }
    let Some(manifest) = state.store.get_artifact(artifact.digest.as_str()).await? else {
        return Ok(false);
    };
    let Ok(manifest) = parse_manifest(&manifest) else {
        return Ok(false);
    };
    Ok(cached.contains(&manifest.config.digest)
        && manifest
            .chart_layer()
            .is_some_and(|layer| cached.contains(&layer.digest)))
}

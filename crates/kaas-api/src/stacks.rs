//! `/v1/stacks`: the cluster stacks clusters may use, each with what the SCS version
//! policy says about it today.

use axum::Json;
use axum::extract::{Path, State};
use kaas_core::meta::API_VERSION;
use kaas_core::stack::ClusterStack;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

fn with_policy(state: &AppState, stack: &ClusterStack) -> Value {
    let today = chrono::Utc::now().date_naive();
    let findings = state.kubernetes_versions.assess(stack, today);
    let mut value = serde_json::to_value(stack).unwrap_or(Value::Null);
    // What the verdict rests on: where the release data comes from and how old it is.
    let mut release_data = serde_json::Map::new();
    if let Some(source) = &state.kubernetes_versions.source {
        release_data.insert("source".into(), json!(source));
    }
    if let Some(taken_on) = state.kubernetes_versions.taken_on {
        release_data.insert("takenOn".into(), json!(taken_on));
    }
    value["status"] = json!({
        "default": state.stacks.default_stack() == stack.name(),
        "policy": {
            "compliant": findings.is_empty(),
            "findings": findings.iter().map(|f| json!({"finding": f, "message": f.to_string()})).collect::<Vec<_>>(),
            "checkedOn": today,
            "releaseData": release_data,
        }
    });
    value
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = state
        .stacks
        .all()
        .iter()
        .map(|s| with_policy(&state, s))
        .collect();
    Json(json!({"apiVersion": API_VERSION, "kind": "ClusterStackList", "items": items}))
}

pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stack = state.stacks.find(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no cluster stack {name:?}; known: {}",
            state.stacks.names().join(", ")
        ))
    })?;
    Ok(Json(with_policy(&state, stack)))
}

//! `/v1/flavors`: the machine sizes the caller's tenant's cloud offers, which its
//! clusters' machines are made of and its vCPU quota is counted in.

use axum::extract::State;
use axum::{Extension, Json};
use kaas_cloud::Flavor;
use kaas_core::access::Role;
use kaas_core::meta::API_VERSION;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// The flavors `tenant`'s cloud offers, smallest first; 409 when the tenant's cloud
/// refuses its setup (no or a refused credential), 503 when it cannot say.
pub(crate) async fn offered(state: &AppState, tenant: &str) -> Result<Vec<Flavor>, ApiError> {
    let cloud = state.clouds.cloud(tenant).await?;
    let mut flavors = cloud.flavors().await?;
    flavors.sort_by(|a, b| {
        (a.vcpus, a.ram_mib, a.disk_gib, &a.name).cmp(&(b.vcpus, b.ram_mib, b.disk_gib, &b.name))
    });
    Ok(flavors)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let items = offered(&state, &principal.tenant).await?;
    Ok(Json(
        json!({"apiVersion": API_VERSION, "kind": "FlavorList", "items": items}),
    ))
}

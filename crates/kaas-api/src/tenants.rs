//! `/v1/tenants`: the operator's customers. Each is bound to an OpenStack project, may
//! carry an application credential for it (sealed in the store, never returned) and has
//! quotas that every cluster create or change is checked against.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kaas_core::access::ApiToken;
use kaas_core::decode::decode_json;
use kaas_core::meta::{API_VERSION, DEFAULT_TENANT};
use kaas_core::tenant::{MAX_QUOTA, Tenant, TenantCredentials};
use kaas_core::validation::check_dns_label;
use kaas_core::{Cluster, FieldError, Object, ObjectMeta, ValidationErrors};
use kaas_store::{ListFilter, Secrets, StoreError, StoreExt};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::clusters::{PageQuery, tenant_clusters};
use crate::{ApiError, AppState};

/// The Secret that holds a tenant's application credential.
pub const CREDENTIALS_SECRET: &str = kaas_core::naming::TENANT_CREDENTIALS_SECRET;
const CREDENTIALS_SECRET_TYPE: &str = "kaas.dev/openstack-credentials";

fn validate(tenant: &Tenant) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if tenant.api_version != API_VERSION {
        errors.push(FieldError {
            field: "apiVersion".to_owned(),
            reason: format!("must be {API_VERSION:?} (got {:?})", tenant.api_version),
        });
    }
    if tenant.kind != "Tenant" {
        errors.push(FieldError {
            field: "kind".to_owned(),
            reason: format!("must be \"Tenant\" (got {:?})", tenant.kind),
        });
    }
    if let Err(reason) = check_dns_label(&tenant.metadata.name) {
        errors.push(FieldError {
            field: "metadata.name".to_owned(),
            reason,
        });
    }
    let spec = &tenant.spec;
    if spec.display_name.chars().count() > 256 {
        errors.push(FieldError {
            field: "spec.displayName".to_owned(),
            reason: "must be at most 256 characters".to_owned(),
        });
    }
    if let Some(project) = &spec.project
        && (project.trim().is_empty() || project.chars().count() > 255)
    {
        errors.push(FieldError {
            field: "spec.project".to_owned(),
            reason: "must be an OpenStack project id or name (1 to 255 characters)".to_owned(),
        });
    }
    for (field, value) in [
        ("clusters", spec.quotas.clusters),
        ("machines", spec.quotas.machines),
        ("vcpus", spec.quotas.vcpus),
    ] {
        if value > MAX_QUOTA {
            errors.push(FieldError {
                field: format!("spec.quotas.{field}"),
                reason: format!("must be at most {MAX_QUOTA}"),
            });
        }
    }
    if let Some(c) = &spec.credentials {
        for (field, value) in [
            ("applicationCredentialId", &c.application_credential_id),
            (
                "applicationCredentialSecret",
                &c.application_credential_secret,
            ),
        ] {
            if value.trim().is_empty() || value.chars().count() > 1024 {
                errors.push(FieldError {
                    field: format!("spec.credentials.{field}"),
                    reason: "must be 1 to 1024 characters".to_owned(),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(ValidationErrors(errors)))
    }
}

/// The tenant as the API shows it, with whether credentials are stored and how many
/// clusters it has.
async fn shown(state: &AppState, tenant: &Tenant) -> Result<Value, ApiError> {
    let name = &tenant.metadata.name;
    let secrets = Secrets::new(state.store.as_ref(), &state.sealer);
    let credentials = secrets.exists(name, CREDENTIALS_SECRET).await?;
    let clusters = state
        .store
        .count(Cluster::KIND, &ListFilter::tenant(name))
        .await?;
    let mut value = serde_json::to_value(tenant).map_err(|e| ApiError::internal(e.to_string()))?;
    value["status"] = json!({ "credentialsStored": credentials, "clusters": clusters });
    Ok(value)
}

async fn store_credentials(
    state: &AppState,
    tenant: &str,
    credentials: &TenantCredentials,
) -> Result<(), ApiError> {
    let secrets = Secrets::new(state.store.as_ref(), &state.sealer);
    let data = json!({
        "applicationCredentialId": credentials.application_credential_id,
        "applicationCredentialSecret": credentials.application_credential_secret,
    });
    secrets.delete(tenant, CREDENTIALS_SECRET).await?;
    secrets
        .put(
            tenant,
            CREDENTIALS_SECRET,
            None,
            CREDENTIALS_SECRET_TYPE,
            &data,
        )
        .await?;
    Ok(())
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("tenant {name:?} not found"))
}

/// A project is bound to one tenant at most: Keystone tokens of it map to that tenant.
async fn check_project_free(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    let Some(project) = &tenant.spec.project else {
        return Ok(());
    };
    let tenants: Vec<Tenant> = state.store.list_obj(&ListFilter::default()).await?;
    if let Some(other) = tenants.iter().find(|t| {
        t.metadata.name != tenant.metadata.name && t.spec.project.as_ref() == Some(project)
    }) {
        return Err(ApiError::invalid(ValidationErrors::single(
            "spec.project",
            format!(
                "project {project} is bound to tenant {:?} already",
                other.metadata.name
            ),
        )));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let sent: Tenant = decode_json(&body).map_err(ApiError::invalid)?;
    validate(&sent)?;
    check_project_free(&state, &sent).await?;
    let name = sent.metadata.name.clone();
    let tenant = Tenant {
        metadata: ObjectMeta::named(&name),
        ..sent
    };
    let created = state.store.create_obj(&name, &tenant).await?;
    if let Some(credentials) = &tenant.spec.credentials {
        store_credentials(&state, &name, credentials).await?;
    }
    let mut response = (StatusCode::CREATED, Json(shown(&state, &created).await?)).into_response();
    response
        .extensions_mut()
        .insert(crate::audit::AuditTenant(name));
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::lists::ListAnswer<Value>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // A tenant is stored in its own name: anyone but the operator sees only their own.
    let filter = if principal.operator {
        ListFilter::default()
    } else {
        ListFilter::tenant(&principal.tenant)
    };
    let (tenants, next) = crate::lists::page::<Tenant>(
        &state,
        filter.clone(),
        query.limit,
        query.continue_token.as_deref(),
        &["tenants", filter.tenant.as_deref().unwrap_or("*")],
    )
    .await?;
    let mut items = Vec::new();
    for t in &tenants {
        items.push(shown(&state, t).await?);
    }
    Ok(crate::lists::answer("Tenant", items, next))
}

async fn load(state: &AppState, principal: &Principal, name: &str) -> Result<Tenant, ApiError> {
    if !principal.operator && principal.tenant != name {
        return Err(not_found(name));
    }
    state
        .store
        .get_obj::<Tenant>(name, name)
        .await?
        .ok_or_else(|| not_found(name))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = load(&state, &principal, &name).await?;
    Ok(Json(shown(&state, &tenant).await?))
}

pub async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let sent: Tenant = decode_json(&body).map_err(ApiError::invalid)?;
    validate(&sent)?;
    if sent.metadata.name != name {
        return Err(ApiError::invalid(ValidationErrors::single(
            "metadata.name",
            format!(
                "{:?} does not match the name in the path ({name:?})",
                sent.metadata.name
            ),
        )));
    }
    check_project_free(&state, &sent).await?;
    let mut current = load(&state, &principal, &name).await?;
    current.spec = sent.spec;
    let updated = state
        .store
        .update_obj(&current)
        .await?
        .ok_or_else(|| not_found(&name))?;
    if let Some(credentials) = &current.spec.credentials {
        store_credentials(&state, &name, credentials).await?;
    }
    // Audited under the tenant changed (its quotas, its project), as its create is.
    let mut response = Json(shown(&state, &updated).await?).into_response();
    response
        .extensions_mut()
        .insert(crate::audit::AuditTenant(name));
    Ok(response)
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    load(&state, &principal, &name).await?;
    // No cluster may be created while the tenant goes.
    let _quota = state.quota_lock.lock().await;
    if name == DEFAULT_TENANT {
        return Err(ApiError::conflict("the default tenant cannot be deleted"));
    }
    let clusters = tenant_clusters(&state, &name).await?;
    if !clusters.is_empty() {
        let names: Vec<&str> = clusters.iter().map(|c| c.metadata.name.as_str()).collect();
        return Err(ApiError::conflict(format!(
            "tenant {name:?} still has {} cluster(s): {}; delete them first",
            names.len(),
            names.join(", ")
        )));
    }
    let tokens: Vec<ApiToken> = state
        .store
        .list_obj(&ListFilter {
            tenant: Some(name.clone()),
            owner_uid: None,
            ..Default::default()
        })
        .await?;
    for token in tokens {
        match state
            .store
            .delete_obj::<ApiToken>(&name, &token.metadata.name)
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let secrets = Secrets::new(state.store.as_ref(), &state.sealer);
    for secret in secrets.list_names(&name, None).await? {
        secrets.delete(&name, &secret).await?;
    }
    match state.store.delete_obj::<Tenant>(&name, &name).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response
                .extensions_mut()
                .insert(crate::audit::AuditTenant(name));
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

//! `/v1/clusters`: create, list, get, replace, delete; events and machines.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::{BTreeSet, HashMap};

use kaas_core::access::{Role, Usage, flavor_vcpus};
use kaas_core::cluster::CLUSTER_FINALIZER;
use kaas_core::decode::decode_json;
use kaas_core::list::parse_label_selector;
use kaas_core::meta::API_VERSION;
use kaas_core::tenant::Tenant;
use kaas_core::validation::FieldError;
use kaas_core::validation::{validate_cluster, validate_cluster_update};
use kaas_core::{
    Cluster, ClusterPhase, ClusterSpec, ClusterStatus, Machine, ObjectMeta, ValidationErrors,
};
use kaas_store::{ListFilter, StoreExt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// The tenant's clusters.
pub(crate) async fn tenant_clusters(
    state: &AppState,
    tenant: &str,
) -> Result<Vec<Cluster>, ApiError> {
    Ok(state.store.list_obj(&ListFilter::tenant(tenant)).await?)
}

/// The flavors `spec` names, each with the field that names it.
fn flavor_fields(spec: &ClusterSpec) -> Vec<(String, &str)> {
    std::iter::once((
        "spec.controlPlane.flavor".to_owned(),
        spec.control_plane.flavor.as_str(),
    ))
    .chain(
        spec.node_pools
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("spec.nodePools[{i}].flavor"), p.flavor.as_str())),
    )
    .collect()
}

/// The vCPUs of flavors, as the tenant's cloud offers them: what its quota is counted
/// in.
struct FlavorSizes(HashMap<String, u32>);

impl FlavorSizes {
    /// Asks the tenant's cloud (one call), by flavor name or id.
    async fn of(state: &AppState, tenant: &str) -> Result<Self, ApiError> {
        let flavors = crate::flavors::offered(state, tenant).await?;
        // Names win over ids, as the cloud resolves them.
        let by_id = flavors.iter().map(|f| (f.id.clone(), f.vcpus));
        let by_name = flavors.iter().map(|f| (f.name.clone(), f.vcpus));
        Ok(Self(by_id.chain(by_name).collect()))
    }

    /// The vCPUs of `flavor`; of one the cloud no longer offers (machines of it may
    /// still run), what its name says, if anything.
    fn vcpus(&self, flavor: &str) -> u32 {
        self.0
            .get(flavor)
            .copied()
            .or_else(|| flavor_vcpus(flavor))
            .unwrap_or(0)
    }

    fn usage(&self, spec: &ClusterSpec) -> Usage {
        Usage::of(spec, |flavor| self.vcpus(flavor))
    }

    /// Refuses flavors that `after` chooses and the cloud does not offer; one that
    /// `before` already has is let be (the cloud may have retired it since), so that
    /// such a cluster can still be scaled down or deleted.
    fn check_offered(
        &self,
        before: Option<&ClusterSpec>,
        after: &ClusterSpec,
    ) -> Result<(), ApiError> {
        let had: BTreeSet<&str> = before
            .map(|b| flavor_fields(b).into_iter().map(|(_, f)| f).collect())
            .unwrap_or_default();
        let errors: Vec<FieldError> = flavor_fields(after)
            .into_iter()
            .filter(|(_, flavor)| !self.0.contains_key(*flavor) && !had.contains(flavor))
            .map(|(field, flavor)| FieldError {
                field,
                reason: format!("flavor {flavor:?} is not offered by the cloud"),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(ValidationErrors(errors)))
        }
    }
}

/// Refuses a cluster going from `before` to `after` that would take the tenant over
/// its quota (403 QuotaExceeded, naming the quota). Called under the quota lock.
async fn check_quota(
    state: &AppState,
    tenant: &str,
    name: &str,
    sizes: &FlavorSizes,
    before: Usage,
    after: Usage,
) -> Result<(), ApiError> {
    let Some(t) = state.store.get_obj::<Tenant>(tenant, tenant).await? else {
        return Err(ApiError::not_found(format!("tenant {tenant:?} not found")));
    };
    // Only the specs are read: a create is checked against thousands of clusters.
    let mut others = Usage::default();
    for (other, spec) in state
        .store
        .list_field_text(
            <Cluster as kaas_core::Object>::KIND,
            &ListFilter::tenant(tenant),
            "spec",
        )
        .await?
    {
        if other != name {
            let spec: ClusterSpec = serde_json::from_str(&spec).map_err(|e| {
                ApiError::internal(format!("cluster {other:?}: its stored spec: {e}"))
            })?;
            others = others.plus(sizes.usage(&spec));
        }
    }
    kaas_core::access::check_quota(tenant, &t.spec.quotas, others, before, after)
        .map_err(|message| ApiError::new(StatusCode::FORBIDDEN, "QuotaExceeded", message))
}

fn list_of(kind: &str, items: Value) -> Json<Value> {
    Json(json!({ "apiVersion": API_VERSION, "kind": format!("{kind}List"), "items": items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListQuery {
    /// The operator: every tenant's clusters, not only those of the tenant acted in.
    #[serde(default)]
    all_tenants: bool,
    /// Only clusters whose labels satisfy this Kubernetes label selector.
    label_selector: Option<String>,
    /// Only clusters in this phase.
    phase: Option<String>,
    /// At most this many clusters; more follow when `metadata.continue` is set.
    limit: Option<u32>,
    /// The `metadata.continue` of the page before.
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// A cluster phase's name, or why it is none (naming the parameter).
fn parse_phase(text: &str) -> Result<ClusterPhase, ApiError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| {
        crate::lists::invalid_param(
            "phase",
            format!(
                "{text:?} is not a phase: one of Pending, Provisioning, Available, Updating, Deleting, Failed"
            ),
        )
    })
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::lists::ListAnswer<Cluster>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    principal.require(Role::Viewer)?;
    if query.all_tenants && !principal.operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "only the operator may list every tenant's clusters (allTenants=true); {} acts in tenant {:?} only",
                principal.subject, principal.tenant
            ),
        ));
    }
    let selector = parse_label_selector(query.label_selector.as_deref().unwrap_or(""))
        .map_err(|reason| crate::lists::invalid_param("labelSelector", reason))?;
    let phase = query.phase.as_deref().map(parse_phase).transpose()?;
    let tenant = (!query.all_tenants).then(|| principal.tenant.clone());
    let filter = ListFilter {
        tenant: tenant.clone(),
        labels: selector.requirements.clone(),
        phase: phase.map(|p| p.to_string()),
        ..ListFilter::default()
    };
    // As `kubectl get -A` orders namespaces: by tenant, then by name (the store's order).
    let selector_text = selector.to_string();
    let phase_text = phase.map(|p| p.to_string()).unwrap_or_default();
    let (clusters, next) = crate::lists::page::<Cluster>(
        &state,
        filter,
        query.limit,
        query.continue_token.as_deref(),
        &[
            "clusters",
            tenant.as_deref().unwrap_or("*"),
            &selector_text,
            &phase_text,
        ],
    )
    .await?;
    Ok(crate::lists::answer("Cluster", clusters, next))
}

/// The caller's tenant's cluster `name`; another tenant's is not found.
pub(crate) async fn load(
    state: &AppState,
    principal: &Principal,
    name: &str,
) -> Result<Cluster, ApiError> {
    state
        .store
        .get_obj::<Cluster>(&principal.tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("cluster {name:?} not found")))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(load(&state, &principal, &name).await?))
}

/// Decodes and validates a cluster from a request body; keeps only what clients own.
/// A spec that names no stack gets the server's default one.
fn accept(state: &AppState, body: &[u8]) -> Result<Cluster, ApiError> {
    let mut sent: Cluster = decode_json(body).map_err(ApiError::invalid)?;
    let names_stack = serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v["spec"].get("stack").is_some());
    if !names_stack {
        state
            .stacks
            .default_stack()
            .clone_into(&mut sent.spec.stack);
    }
    validate_cluster(&sent, &state.stacks).map_err(ApiError::invalid)?;
    Ok(sent)
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    let sent = accept(&state, &body)?;
    if state
        .store
        .get_obj::<Cluster>(&principal.tenant, &sent.metadata.name)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("cluster {:?} already exists", sent.metadata.name),
        ));
    }
    // The cloud is asked before the quota lock is taken, so that one tenant's slow
    // cloud holds up no other tenant. A tenant bound to a project without a (valid)
    // credential is refused here (409): its cluster would land in the server's project.
    let sizes = FlavorSizes::of(&state, &principal.tenant).await?;
    sizes.check_offered(None, &sent.spec)?;
    let _quota = state.quota_lock.lock().await;
    check_quota(
        &state,
        &principal.tenant,
        &sent.metadata.name,
        &sizes,
        Usage::default(),
        sizes.usage(&sent.spec),
    )
    .await?;
    let mut metadata = ObjectMeta::named(&sent.metadata.name);
    metadata.labels = sent.metadata.labels;
    metadata.finalizers = vec![CLUSTER_FINALIZER.to_owned()];
    let cluster = Cluster {
        metadata,
        status: ClusterStatus::default(),
        ..sent
    };
    let created = state.store.create_obj(&principal.tenant, &cluster).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Cluster>, ApiError> {
    principal.require(Role::Editor)?;
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
    let sizes = FlavorSizes::of(&state, &principal.tenant).await?;
    // Without a resourceVersion the client asks for its spec whatever the current
    // version: a status the controller writes meanwhile is no conflict, so the change
    // is made again on the newer version (a few times at most).
    let unconditional = sent.metadata.resource_version.is_empty();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut current = load(&state, &principal, &name).await?;
        if current.metadata.is_deleting() {
            return Err(ApiError::conflict(format!(
                "cluster {name:?} is being deleted"
            )));
        }
        let given = &sent.metadata.resource_version;
        if !unconditional && *given != current.metadata.resource_version {
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
        sizes.check_offered(Some(&current.spec), &sent.spec)?;
        let _quota = state.quota_lock.lock().await;
        check_quota(
            &state,
            &principal.tenant,
            &name,
            &sizes,
            sizes.usage(&current.spec),
            Usage {
                clusters: 1,
                ..sizes.usage(&sent.spec)
            },
        )
        .await?;
        current.spec = sent.spec.clone();
        current.metadata.labels = sent.metadata.labels.clone();
        match state.store.update_obj(&current).await {
            Ok(updated) => {
                return updated
                    .map(Json)
                    .ok_or_else(|| ApiError::not_found(format!("cluster {name:?} not found")));
            }
            Err(kaas_store::StoreError::Conflict { .. }) if unconditional && attempts < 5 => {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Editor)?;
    match state
        .store
        .delete_obj::<Cluster>(&principal.tenant, &name)
        .await
    {
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
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    principal.require(Role::Viewer)?;
    let cluster = load(&state, &principal, &name).await?;
    let limit = query.limit.clamp(1, 5000);
    let stored = state
        .store
        .list_events(&principal.tenant, &cluster.metadata.uid, query.since, limit)
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

/// `limit` and `continue` of a list that takes nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many items; more follow when `metadata.continue` is set.
    pub limit: Option<u32>,
    /// The `metadata.continue` of the page before.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

pub async fn machines(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<crate::lists::ListAnswer<Machine>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    principal.require(Role::Viewer)?;
    let cluster = load(&state, &principal, &name).await?;
    let filter = ListFilter::owned_by(&principal.tenant, &cluster.metadata.uid);
    let (machines, next) = crate::lists::page::<Machine>(
        &state,
        filter,
        query.limit,
        query.continue_token.as_deref(),
        &["machines", &principal.tenant, &cluster.metadata.uid],
    )
    .await?;
    Ok(crate::lists::answer("Machine", machines, next))
}

//! The kaas REST API: `/v1` resources behind bearer-token authentication, the OpenAPI
//! document at `/openapi.json`, and `/healthz`, `/readyz`, `/metrics`.
//!
//! **Architecture invariant:** the API only records desired state and reads observed
//! state; it never calls the cloud. Whatever it refuses, it refuses before anything is
//! stored.

mod access;
mod artifacts;
mod audit;
pub mod auth;
mod clusters;
mod error;
mod flavors;
mod lists;
mod openapi;
pub mod registry;
mod sim;
mod stacks;
mod tenants;
mod tokens;

pub use artifacts::MAX_ARTIFACT_BYTES;
pub use error::ApiError;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use kaas_core::FieldError;
use kaas_store::Store;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The knobs of the simulated cloud, for `/v1/sim/*` (admin). Kept abstract so the API
/// does not depend on the simulation.
pub trait SimControl: Send + Sync {
    /// Every resource: `{"items": [{kind, id, name, tags, status}, …]}`.
    fn inventory(&self) -> Value;
    /// The fault rates now.
    fn faults(&self) -> Value;
    /// Sets the fault rates; an error names the field and the reason.
    fn set_faults(&self, faults: Value) -> Result<Value, FieldError>;
    /// Makes a node Ready or NotReady, or its drain blocked by a disruption budget.
    fn set_node(
        &self,
        node: &str,
        ready: Option<bool>,
        drain_blocked: Option<bool>,
    ) -> Result<(), String>;
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The bootstrap admin token.
    pub admin_token: Arc<str>,
    /// Opens the secrets kaas keeps (cluster CAs for kubeconfigs, bootstrap data).
    pub sealer: Arc<kaas_store::SecretBox>,
    /// `sim` or `openstack`.
    pub cloud: &'static str,
    /// The cluster stacks clusters may use.
    pub stacks: Arc<kaas_core::stack::StackCatalog>,
    /// Kubernetes release data for the SCS version policy.
    pub kubernetes_versions: Arc<kaas_core::stack::KubernetesVersions>,
    /// Set when the cloud is the simulation.
    pub sim: Option<Arc<dyn SimControl>>,
    /// Each tenant's cloud, asked for the flavors that quotas are counted in.
    pub clouds: Arc<dyn kaas_cloud::TenantClouds>,
    /// Where each cluster's API is reached (its endpoint, or the local gateway of a
    /// simulated cluster): the server of the kubeconfigs handed out.
    pub routes: Arc<dyn kaas_cloud::ApiRoutes>,
    /// Validates Keystone tokens, on a server with a real cloud.
    pub keystone: Option<Arc<dyn auth::KeystoneTokens>>,
    /// Where the stacks' artifacts come from when the operator has the server pull
    /// them (the operator's mirrors, then upstream).
    pub artifacts: Arc<dyn kaas_artifacts::ArtifactSource>,
    pub keystone_cache: Arc<auth::KeystoneCache>,
    /// Held from a quota check to the write it allows, so that two requests cannot
    /// both take the last of a quota, and from a check that a tenant exists to the
    /// write that needs it, so that nothing is made for a tenant being deleted
    /// (within this server).
    pub quota_lock: Arc<tokio::sync::Mutex<()>>,
    pub registry: Arc<Registry>,
    pub metrics: ApiMetrics,
    /// The integrated registry kaas is the token service of, if the server has one.
    pub oci_registry: Option<Arc<registry::RegistryService>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

/// Metrics the API computes when scraped, from the store.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    clusters: prometheus_client::metrics::family::Family<
        PhaseLabels,
        prometheus_client::metrics::gauge::Gauge,
    >,
}

impl ApiMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            clusters: Default::default(),
        };
        registry.register(
            "kaas_clusters",
            "Clusters by phase",
            metrics.clusters.clone(),
        );
        metrics
    }

    /// Counts the clusters of every tenant by phase, as the store has them now.
    async fn refresh(&self, store: &dyn Store) -> Result<(), kaas_store::StoreError> {
        use kaas_core::ClusterPhase::*;
        use kaas_core::Object;
        // Counted by the store, through its phase index: no cluster is read.
        for phase in [Pending, Provisioning, Available, Updating, Deleting, Failed] {
            let filter = kaas_store::ListFilter {
                phase: Some(phase.to_string()),
                ..kaas_store::ListFilter::default()
            };
            let n = store.count(kaas_core::Cluster::KIND, &filter).await?;
            self.clusters
                .get_or_create(&PhaseLabels {
                    phase: phase.to_string(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/info", get(info))
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route(
            "/clusters/{name}",
            get(clusters::get)
                .put(clusters::replace)
                .delete(clusters::delete),
        )
        .route("/clusters/{name}/events", get(clusters::events))
        .route("/clusters/{name}/machines", get(clusters::machines))
        .route("/clusters/{name}/kubeconfig", get(access::kubeconfig))
        .route(
            "/clusters/{name}/machines/{machine}/user-data",
            get(access::user_data),
        )
        .route("/flavors", get(flavors::list))
        .route("/stacks", get(stacks::list))
        .route("/stacks/{name}", get(stacks::get))
        .route("/stacks/{name}/pull", post(artifacts::pull))
        .route("/artifacts", get(artifacts::list))
        .route(
            "/artifacts/{digest}",
            get(artifacts::get)
                .put(artifacts::put)
                .layer(DefaultBodyLimit::max(MAX_ARTIFACT_BYTES)),
        )
        .route("/sim/inventory", get(sim::inventory))
        .route("/sim/faults", get(sim::faults).put(sim::set_faults))
        .route("/sim/nodes/{name}", put(sim::set_node))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/tenants/{name}",
            get(tenants::get)
                .put(tenants::replace)
                .delete(tenants::delete),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/audit", get(audit::list))
        .route(
            "/registry/credentials",
            get(registry::list_credentials).post(registry::create_credential),
        )
        .route(
            "/registry/credentials/{name}",
            axum::routing::delete(registry::revoke_credential),
        )
        .route(
            "/registry/credentials/{name}/rotate",
            post(registry::rotate_credential),
        )
        .route("/registry/repositories", get(registry::list_repositories))
        .route(
            "/registry/repositories/{repository}",
            get(registry::get_repository).put(registry::set_repository),
        )
        .route(
            "/registry/repositories/{repository}/tags/{tag}",
            axum::routing::delete(registry::delete_tag),
        )
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/v2/token", get(registry::token))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_document))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "this method is not allowed here",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn info(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "cloud": state.cloud,
        "simulated": state.sim.is_some(),
    }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not ready: {e}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Err(e) = state.metrics.refresh(state.store.as_ref()).await {
        return ApiError::internal(format!("cannot count clusters: {e}")).into_response();
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot encode metrics: {e}")).into_response(),
    }
}

async fn openapi_document() -> axum::Json<Value> {
    axum::Json(openapi::document())
}

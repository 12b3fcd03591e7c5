//! Lists that page and filter, in process against a SQLite store: `limit` and
//! `continue` on every list of stored objects, `labelSelector` and `phase` on the
//! clusters, and the refusals of bad parameters (status, code and the parameter named).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kaas_api::AppState;
use kaas_artifacts::{Artifact, ArtifactError, ArtifactSource, Fetched};
use kaas_cloud::{
    ApiRoute, ApiRoutes, CloudError, CloudProvider, TenantClouds, WorkloadClusterRef, WorkloadError,
};
use kaas_core::stack::{KubernetesVersions, StackCatalog};
use kaas_store::{SecretBox, SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "operator-token";
/// A viewer's API token of tenant `acme`, and an admin's.
const ACME_VIEWER: &str = "kaas_acme_viewer0001_secret-of-the-viewer";
const ACME_ADMIN: &str = "kaas_acme_admin00001_secret-of-the-admin";

struct NoClouds;

#[async_trait]
impl TenantClouds for NoClouds {
    async fn cloud(&self, _tenant: &str) -> Result<Arc<dyn CloudProvider>, CloudError> {
        Err(CloudError::Unavailable {
            message: "no cloud in these tests".to_owned(),
        })
    }
}

#[async_trait]
impl ApiRoutes for NoClouds {
    async fn route(&self, _cluster: &WorkloadClusterRef) -> Result<ApiRoute, WorkloadError> {
        Err(WorkloadError::Unsupported {
            message: "no clusters in these tests".to_owned(),
        })
    }
}

#[async_trait]
impl ArtifactSource for NoClouds {
    async fn fetch(&self, artifact: &Artifact) -> Result<Fetched, ArtifactError> {
        Err(ArtifactError::Unreachable {
            artifact: artifact.describe(),
            place: artifact.location.clone(),
            reason: "no artifacts in these tests".to_owned(),
        })
    }
}

struct App {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    router: axum::Router,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("kaas.db"))
            .await
            .unwrap(),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = kaas_api::ApiMetrics::new(&mut registry);
    let state = AppState {
        store: store.clone(),
        admin_token: TOKEN.into(),
        sealer: Arc::new(SecretBox::from_keys(vec![("k1".to_owned(), [7; 32])], "k1").unwrap()),
        cloud: "sim",
        stacks: Arc::new(StackCatalog::builtin().unwrap()),
        kubernetes_versions: Arc::new(KubernetesVersions::builtin().unwrap()),
        sim: None,
        clouds: Arc::new(NoClouds),
        routes: Arc::new(NoClouds),
        keystone: None,
        keystone_cache: Default::default(),
        artifacts: Arc::new(NoClouds),
        quota_lock: Default::default(),
        registry: Arc::new(registry),
        metrics,
        oci_registry: None,
    };
    for tenant in ["default", "acme", "beta"] {
        let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": tenant},
                          "spec": {"quotas": {"clusters": 20, "machines": 500, "vcpus": 2000}}});
        store.create("Tenant", tenant, body).await.unwrap();
    }
    for (token, role) in [(ACME_VIEWER, "viewer"), (ACME_ADMIN, "admin")] {
        let parts: Vec<&str> = token.splitn(4, '_').collect();
        let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "ApiToken", "metadata": {"name": parts[2]},
                          "spec": {"role": role, "secretSha256": kaas_store::sha256_hex(parts[3])}});
        store.create("ApiToken", "acme", body).await.unwrap();
    }
    App {
        _dir: dir,
        store,
        router: kaas_api::router(state),
    }
}

impl App {
    async fn get_as(&self, token: &str, tenant: Option<&str>, uri: &str) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method("GET")
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(tenant) = tenant {
            request = request.header("kaas-tenant", tenant);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_as(TOKEN, None, uri).await
    }

    /// A cluster stored as the controller would leave it: in `phase`, with `labels`.
    async fn cluster(&self, tenant: &str, name: &str, phase: &str, labels: Value) -> Value {
        let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "Cluster",
                          "metadata": {"name": name, "labels": labels},
                          "spec": {}, "status": {"phase": phase}});
        self.store.create("Cluster", tenant, body).await.unwrap()
    }

    /// Follows `uri` page by page (`limit` each): every item's `tenant/name`, and the
    /// number of pages.
    async fn page_through(&self, token: &str, uri: &str, limit: u32) -> (Vec<String>, usize) {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        let join = if uri.contains('?') { '&' } else { '?' };
        loop {
            let mut page_uri = format!("{uri}{join}limit={limit}");
            if let Some(token) = &next {
                page_uri.push_str(&format!("&continue={token}"));
            }
            let (status, body) = self.get_as(token, None, &page_uri).await;
            assert_eq!(status, StatusCode::OK, "{page_uri}: {body}");
            pages += 1;
            let items = body["items"].as_array().unwrap();
            assert!(items.len() <= limit as usize);
            seen.extend(items.iter().map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["tenant"].as_str().unwrap_or("-"),
                    i["metadata"]["name"].as_str().unwrap()
                )
            }));
            match body["metadata"]["continue"].as_str() {
                Some(token) => {
                    assert!(!items.is_empty(), "a page before others is never empty");
                    next = Some(token.to_owned());
                }
                None => return (seen, pages),
            }
            assert!(pages < 1000, "no end to {uri}");
        }
    }
}

/// A refusal: its status, its code and the parameter its details name.
fn assert_refused(answer: &(StatusCode, Value), code: &str, parameter: &str, reason: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(parameter), "{message}");
    assert!(message.contains(reason), "{message}");
    if code == "Invalid" {
        assert_eq!(body["details"][0]["field"], parameter, "{body}");
    }
}

#[tokio::test]
async fn clusters_come_page_by_page_each_once() {
    let app = app().await;
    for i in 0..25 {
        app.cluster("default", &format!("c-{i:02}"), "Available", json!({}))
            .await;
    }
    // Without a limit: every cluster, as before, and no continue token.
    let (status, all) = app.get("/v1/clusters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["kind"], "ClusterList");
    assert_eq!(all["items"].as_array().unwrap().len(), 25);
    assert_eq!(all["metadata"], json!({}));

    let (seen, pages) = app.page_through(TOKEN, "/v1/clusters", 10).await;
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("default/c-{i:02}")).collect();
    assert_eq!(seen, expected);

    // A page that ends exactly at the last cluster says no more follow.
    let (seen, pages) = app.page_through(TOKEN, "/v1/clusters", 5).await;
    assert_eq!((seen.len(), pages), (25, 5));

    // Clusters made between pages: those there all along come exactly once.
    let (_, first) = app.get("/v1/clusters?limit=10").await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    app.cluster("default", "a-new", "Pending", json!({})).await; // before the place
    app.cluster("default", "c-10a", "Pending", json!({})).await; // after it
    let (_, second) = app
        .get(&format!("/v1/clusters?limit=10&continue={token}"))
        .await;
    let names: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "c-10");
    assert_eq!(names[1], "c-10a");
    assert!(!names.contains(&"a-new"));
    // An empty continue is the first page.
    let (status, again) = app.get("/v1/clusters?limit=10&continue=").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["items"][0]["metadata"]["name"], "a-new");
}

#[tokio::test]
async fn clusters_are_filtered_by_label_selector_and_phase() {
    let app = app().await;
    app.cluster(
        "default",
        "web-prod",
        "Available",
        json!({"env": "prod", "team": "web"}),
    )
    .await;
    app.cluster(
        "default",
        "web-dev",
        "Failed",
        json!({"env": "dev", "team": "web"}),
    )
    .await;
    app.cluster(
        "default",
        "db-prod",
        "Available",
        json!({"env": "prod", "kaas.dev/tier": "db"}),
    )
    .await;
    app.cluster("default", "scratch", "Pending", json!({}))
        .await;
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases = [
        ("labelSelector=env%3Dprod", vec!["db-prod", "web-prod"]),
        ("labelSelector=env%3D%3Dprod", vec!["db-prod", "web-prod"]),
        ("labelSelector=env!%3Dprod", vec!["scratch", "web-dev"]),
        (
            "labelSelector=env%20in%20(dev,prod)",
            vec!["db-prod", "web-dev", "web-prod"],
        ),
        (
            "labelSelector=env%20notin%20(prod)",
            vec!["scratch", "web-dev"],
        ),
        ("labelSelector=kaas.dev%2Ftier", vec!["db-prod"]),
        ("labelSelector=!team", vec!["db-prod", "scratch"]),
        ("labelSelector=team%3Dweb,env%3Ddev", vec!["web-dev"]),
        ("phase=Available", vec!["db-prod", "web-prod"]),
        ("phase=Failed", vec!["web-dev"]),
        ("phase=Deleting", vec![]),
        ("phase=Available&labelSelector=team", vec!["web-prod"]),
        (
            "labelSelector=",
            vec!["db-prod", "scratch", "web-dev", "web-prod"],
        ),
    ];
    for (query, expected) in cases {
        let (status, body) = app.get(&format!("/v1/clusters?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(names(&body), expected, "{query}");
    }
    // Filters and pages together.
    let (seen, pages) = app
        .page_through(TOKEN, "/v1/clusters?labelSelector=env%3Dprod", 1)
        .await;
    assert_eq!(seen, ["default/db-prod", "default/web-prod"]);
    assert_eq!(pages, 2);

    // Bad filters: 400 naming the parameter and the reason.
    assert_refused(
        &app.get("/v1/clusters?labelSelector=env%20in%20(prod").await,
        "Invalid",
        "labelSelector",
        "lack a closing ')'",
    );
    assert_refused(
        &app.get("/v1/clusters?labelSelector=replicas%3E3").await,
        "Invalid",
        "labelSelector",
        "'>'",
    );
    assert_refused(
        &app.get("/v1/clusters?phase=Running").await,
        "Invalid",
        "phase",
        "\"Running\" is not a phase",
    );
}

#[tokio::test]
async fn bad_limits_and_continue_tokens_are_refused() {
    let app = app().await;
    for i in 0..3 {
        app.cluster(
            "default",
            &format!("c-{i}"),
            "Available",
            json!({"env": "prod"}),
        )
        .await;
    }
    assert_refused(
        &app.get("/v1/clusters?limit=0").await,
        "Invalid",
        "limit",
        "at least 1",
    );
    assert_refused(
        &app.get("/v1/clusters?limit=ten").await,
        "BadRequest",
        "limit",
        "invalid digit",
    );
    assert_refused(
        &app.get("/v1/clusters?limit=-1").await,
        "BadRequest",
        "limit",
        "",
    );
    assert_refused(
        &app.get("/v1/clusters?continue=not-a-token").await,
        "Invalid",
        "continue",
        "is not a continue token",
    );
    // A token is for the listing that issued it: not with another filter, not for
    // another tenant's or every tenant's listing, not for another kind of list.
    let (_, first) = app.get("/v1/clusters?limit=1").await;
    let token = first["metadata"]["continue"].as_str().unwrap();
    for other in [
        format!("/v1/clusters?limit=1&labelSelector=env%3Dprod&continue={token}"),
        format!("/v1/clusters?limit=1&phase=Available&continue={token}"),
        format!("/v1/clusters?limit=1&allTenants=true&continue={token}"),
        format!("/v1/tenants?limit=1&continue={token}"),
    ] {
        assert_refused(
            &app.get(&other).await,
            "Invalid",
            "continue",
            "other filters",
        );
    }
    let (status, _) = app
        .get_as(
            TOKEN,
            Some("acme"),
            &format!("/v1/clusters?continue={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Every list of stored objects refuses the same way, and unknown parameters.
    for path in [
        "/v1/clusters/c-0/machines",
        "/v1/tenants",
        "/v1/tokens",
        "/v1/registry/credentials",
    ] {
        assert_refused(
            &app.get(&format!("{path}?limit=0")).await,
            "Invalid",
            "limit",
            "at least 1",
        );
        assert_refused(
            &app.get(&format!("{path}?continue=x")).await,
            "Invalid",
            "continue",
            "is not a continue token",
        );
        assert_refused(
            &app.get(&format!("{path}?colour=red")).await,
            "BadRequest",
            "colour",
            "unknown field",
        );
    }
}

#[tokio::test]
async fn every_tenants_clusters_page_in_tenant_order_for_the_operator_only() {
    let app = app().await;
    for tenant in ["beta", "acme", "default"] {
        for name in ["z", "a", "m"] {
            app.cluster(tenant, name, "Available", json!({})).await;
        }
    }
    let (seen, pages) = app
        .page_through(TOKEN, "/v1/clusters?allTenants=true", 2)
        .await;
    assert_eq!(pages, 5);
    assert_eq!(
        seen,
        [
            "acme/a",
            "acme/m",
            "acme/z",
            "beta/a",
            "beta/m",
            "beta/z",
            "default/a",
            "default/m",
            "default/z"
        ]
    );
    // A tenant's viewer pages through its own, and may not use the operator's token.
    let (seen, _) = app.page_through(ACME_VIEWER, "/v1/clusters", 2).await;
    assert_eq!(seen, ["acme/a", "acme/m", "acme/z"]);
    let (_, first) = app.get("/v1/clusters?allTenants=true&limit=4").await;
    let token = first["metadata"]["continue"].as_str().unwrap();
    let (status, body) = app
        .get_as(ACME_VIEWER, None, &format!("/v1/clusters?continue={token}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .get_as(ACME_VIEWER, None, "/v1/clusters?allTenants=true&limit=1")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn machines_tenants_tokens_and_credentials_page() {
    let app = app().await;
    let cluster = app.cluster("acme", "web", "Available", json!({})).await;
    let other = app.cluster("acme", "db", "Available", json!({})).await;
    for (owner, n) in [(&cluster, 5), (&other, 2)] {
        let owner_name = owner["metadata"]["name"].as_str().unwrap();
        for i in 0..n {
            let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "Machine",
                "metadata": {"name": format!("{owner_name}-m{i}"),
                             "owner": {"kind": "Cluster", "name": owner_name, "uid": owner["metadata"]["uid"]}},
                "spec": {"pool": "workers", "role": "worker", "version": "v1.36.0", "image": "ubuntu", "flavor": "m1.small"}});
            app.store.create("Machine", "acme", body).await.unwrap();
        }
    }
    let (machines, pages) = app
        .page_through(ACME_VIEWER, "/v1/clusters/web/machines", 2)
        .await;
    assert_eq!(pages, 3);
    assert_eq!(
        machines,
        [
            "acme/web-m0",
            "acme/web-m1",
            "acme/web-m2",
            "acme/web-m3",
            "acme/web-m4"
        ]
    );
    // A machine list's token is for that cluster's machines only.
    let (_, first) = app
        .get_as(ACME_VIEWER, None, "/v1/clusters/web/machines?limit=1")
        .await;
    let token = first["metadata"]["continue"].as_str().unwrap();
    let (status, _) = app
        .get_as(
            ACME_VIEWER,
            None,
            &format!("/v1/clusters/db/machines?continue={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (tenants, pages) = app.page_through(TOKEN, "/v1/tenants", 2).await;
    assert_eq!(tenants, ["acme/acme", "beta/beta", "default/default"]);
    assert_eq!(pages, 2);
    let (_, acme) = app.get("/v1/tenants?limit=1").await;
    assert_eq!(acme["items"][0]["status"]["clusters"], 2);
    // Anyone else sees only their own tenant.
    let (own, _) = app.page_through(ACME_VIEWER, "/v1/tenants", 1).await;
    assert_eq!(own, ["acme/acme"]);

    let (tokens, pages) = app.page_through(ACME_ADMIN, "/v1/tokens", 1).await;
    assert_eq!(tokens, ["acme/admin00001", "acme/viewer0001"]);
    assert_eq!(pages, 2);

    for name in ["ci", "deploy", "backup"] {
        let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "RegistryCredential",
                          "metadata": {"name": name}, "spec": {"access": "pull", "secretSha256": "00"}});
        app.store
            .create("RegistryCredential", "acme", body)
            .await
            .unwrap();
    }
    let (credentials, pages) = app
        .page_through(ACME_ADMIN, "/v1/registry/credentials", 2)
        .await;
    assert_eq!(credentials, ["acme/backup", "acme/ci", "acme/deploy"]);
    assert_eq!(pages, 2);
}

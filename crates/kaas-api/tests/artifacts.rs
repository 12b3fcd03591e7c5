//! The artifact routes in process: uploads checked against their digest, the listing,
//! and a stack's pull through a scripted artifact source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kaas_api::AppState;
use kaas_artifacts::{Artifact, ArtifactError, ArtifactSource, Blob, BlobKind, Digest, Fetched};
use kaas_cloud::{
    ApiRoute, ApiRoutes, CloudError, CloudProvider, TenantClouds, WorkloadClusterRef, WorkloadError,
};
use kaas_core::stack::{ClusterStack, KubernetesVersions, StackCatalog};
use kaas_store::{SecretBox, SqliteStore, Store};
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "operator-token";

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

/// Answers each artifact as the test scripts it, and counts the calls.
#[derive(Default)]
struct ScriptedSource {
    /// Manifest bytes by addon; an addon not here fails as unreachable.
    manifests: Mutex<Vec<(String, Vec<u8>)>>,
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl ArtifactSource for ScriptedSource {
    async fn fetch(&self, artifact: &Artifact) -> Result<Fetched, ArtifactError> {
        self.calls.lock().unwrap().push(artifact.addon.clone());
        let found = self
            .manifests
            .lock()
            .unwrap()
            .iter()
            .find(|(addon, _)| *addon == artifact.addon)
            .map(|(_, bytes)| bytes.clone());
        let Some(bytes) = found else {
            return Err(ArtifactError::Unreachable {
                artifact: artifact.describe(),
                place: artifact.location.clone(),
                reason: "connection refused".to_owned(),
            });
        };
        if Digest::of(&bytes) != artifact.digest {
            return Err(ArtifactError::DigestMismatch {
                artifact: artifact.describe(),
                place: artifact.location.clone(),
                expected: artifact.digest.to_string(),
                actual: Digest::of(&bytes).to_string(),
            });
        }
        Ok(Fetched {
            artifact: artifact.clone(),
            source: artifact.location.clone(),
            blobs: vec![Blob {
                digest: Digest::of(&bytes),
                kind: BlobKind::Manifest,
                reference: artifact.reference(),
                bytes,
            }],
        })
    }
}

const CRDS: &[u8] = b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n";
const OPERATOR: &[u8] = b"apiVersion: apps/v1\nkind: Deployment\n";

/// A stack whose two addons come from manifests (and no others).
fn stack_with_manifests() -> ClusterStack {
    let builtin = StackCatalog::builtin().unwrap();
    let mut stack = builtin.find("scs-1.36").unwrap().clone();
    stack.metadata.name = "pinned".to_owned();
    stack.spec.addons.clear();
    let yaml = format!(
        "name: crds\nversion: v1.0.0\nmanifest: {{url: \"https://example.org/crds.yaml\", digest: \"{}\"}}\n",
        Digest::of(CRDS)
    );
    stack
        .spec
        .addons
        .push(serde_saphyr::from_str(&yaml).unwrap());
    let yaml = format!(
        "name: operator\nversion: v1.0.0\nmanifest: {{url: \"https://example.org/operator.yaml\", digest: \"{}\"}}\n",
        Digest::of(OPERATOR)
    );
    stack
        .spec
        .addons
        .push(serde_saphyr::from_str(&yaml).unwrap());
    stack.validate().unwrap();
    stack
}

async fn app(source: Arc<ScriptedSource>) -> (tempfile::TempDir, Arc<SqliteStore>, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("kaas.db"))
            .await
            .unwrap(),
    );
    let mut stacks = StackCatalog::builtin().unwrap();
    stacks.add(stack_with_manifests()).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = kaas_api::ApiMetrics::new(&mut registry);
    let state = AppState {
        store: store.clone(),
        admin_token: TOKEN.into(),
        sealer: Arc::new(SecretBox::from_keys(vec![("k1".to_owned(), [7; 32])], "k1").unwrap()),
        cloud: "sim",
        stacks: Arc::new(stacks),
        kubernetes_versions: Arc::new(KubernetesVersions::builtin().unwrap()),
        sim: None,
        clouds: Arc::new(NoClouds),
        routes: Arc::new(NoClouds),
        keystone: None,
        keystone_cache: Default::default(),
        artifacts: source,
        quota_lock: Default::default(),
        registry: Arc::new(registry),
        metrics,
        oci_registry: None,
    };
    (dir, store, kaas_api::router(state))
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_upload_is_kept_only_under_its_own_digest() {
    let (_dir, store, app) = app(Arc::default()).await;
    let chart = b"a chart, as bytes".to_vec();
    let digest = Digest::of(&chart);

    let uri = format!("/v1/artifacts/{digest}?kind=chart&reference=hello-1.0.0.tgz");
    let (status, body) = send(&app, "PUT", &uri, Some(TOKEN), chart.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["digest"], digest.as_str());
    assert_eq!(body["kind"], "chart");
    assert_eq!(body["size"], chart.len());
    assert_eq!(
        store.get_artifact(digest.as_str()).await.unwrap(),
        Some(chart.clone())
    );

    // Other bytes under that digest, or these under another: 422 naming both.
    let other = Digest::of(b"something else");
    let uri = format!("/v1/artifacts/{other}?kind=chart");
    let (status, body) = send(&app, "PUT", &uri, Some(TOKEN), chart.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "DigestMismatch");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(other.as_str()) && message.contains(digest.as_str()),
        "{message}"
    );
    assert_eq!(store.get_artifact(other.as_str()).await.unwrap(), None);

    // Not a digest; not a kind; no token.
    let (status, body) = send(
        &app,
        "PUT",
        "/v1/artifacts/sha256:abc?kind=chart",
        Some(TOKEN),
        chart.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let uri = format!("/v1/artifacts/{digest}?kind=image");
    let (status, body) = send(&app, "PUT", &uri, Some(TOKEN), chart.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let uri = format!("/v1/artifacts/{digest}?kind=chart");
    let (status, _) = send(&app, "PUT", &uri, None, chart.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Charts are larger than other requests may be.
    let big = vec![7u8; 3 << 20];
    let uri = format!("/v1/artifacts/{}?kind=chart", Digest::of(&big));
    let (status, body) = send(&app, "PUT", &uri, Some(TOKEN), big).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, list) = send(&app, "GET", "/v1/artifacts", Some(TOKEN), Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["kind"], "ArtifactList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["reference"] == "hello-1.0.0.tgz")
    );
}

#[tokio::test]
async fn a_pull_names_each_artifact_that_cannot_be_had() {
    let source = Arc::new(ScriptedSource::default());
    source
        .manifests
        .lock()
        .unwrap()
        .push(("crds".to_owned(), CRDS.to_vec()));
    let (_dir, store, app) = app(source.clone()).await;

    // The operator's manifest is unreachable: 502, naming it.
    let (status, body) = send(
        &app,
        "POST",
        "/v1/stacks/pinned/pull",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], "ArtifactUnavailable");
    let details = body["details"].as_array().unwrap();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0]["field"], "https://example.org/operator.yaml");
    assert!(
        details[0]["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
    // What could be had was kept.
    assert_eq!(
        store.get_artifact(Digest::of(CRDS).as_str()).await.unwrap(),
        Some(CRDS.to_vec())
    );

    // Upstream now has other bytes than the pinned: 422 with both digests.
    source
        .manifests
        .lock()
        .unwrap()
        .push(("operator".to_owned(), b"kind: Impostor\n".to_vec()));
    let (status, body) = send(
        &app,
        "POST",
        "/v1/stacks/pinned/pull",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "ArtifactUnacceptable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(Digest::of(OPERATOR).as_str()),
        "{body}"
    );

    source
        .manifests
        .lock()
        .unwrap()
        .retain(|(a, _)| a != "operator");
    source
        .manifests
        .lock()
        .unwrap()
        .push(("operator".to_owned(), OPERATOR.to_vec()));
    source.calls.lock().unwrap().clear();
    let (status, body) = send(
        &app,
        "POST",
        "/v1/stacks/pinned/pull",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<(&str, &str)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["addon"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("crds", "cached"), ("operator", "fetched")]);
    // The cached one was not got again.
    assert_eq!(*source.calls.lock().unwrap(), ["operator"]);

    let (status, _) = send(
        &app,
        "POST",
        "/v1/stacks/nope/pull",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

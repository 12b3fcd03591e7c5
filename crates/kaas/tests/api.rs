//! The REST API's contract: authentication, status codes, error shape, optimistic
//! concurrency, the OpenAPI document, health and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kaas::server::{CloudKind, RunningServer, ServerConfig, start};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

async fn server(dir: &std::path::Path) -> RunningServer {
    start(ServerConfig {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        cloud: CloudKind::Sim,
        sim_speed: 500.0,
        sim_faults: Default::default(),
        sim_latencies: None,
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

struct Api {
    http: Client,
    url: String,
    token: String,
}

impl Api {
    fn new(s: &RunningServer) -> Self {
        Self {
            http: Client::new(),
            url: s.url(),
            token: s.admin_token.clone(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn cluster(name: &str) -> Value {
    json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
           "spec": {"controlPlane": {"replicas": 1}, "nodePools": [{"name": "workers", "replicas": 1}]}})
}

#[tokio::test]
async fn every_v1_call_needs_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let http = Client::new();
    let no_token = http
        .get(format!("{}/v1/clusters", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["code"], "Unauthorized");
    let wrong = http
        .get(format!("{}/v1/clusters", s.url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = http
        .get(format!("{}/v1/clusters", s.url()))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    // The token file is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Open endpoints.
    for path in ["/healthz", "/readyz", "/openapi.json", "/metrics"] {
        let r = http.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn status_codes_and_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let api = Api::new(&s);
    use reqwest::Method;

    let (st, created) = api
        .call(Method::POST, "/v1/clusters", Some(cluster("one")))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(!created["metadata"]["uid"].as_str().unwrap().is_empty());
    assert_eq!(
        created["metadata"]["finalizers"][0],
        "kaas.dev/cloud-resources"
    );

    let (st, err) = api
        .call(Method::POST, "/v1/clusters", Some(cluster("one")))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(err["code"], "AlreadyExists");

    let (st, err) = api.call(Method::GET, "/v1/clusters/missing", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "NotFound");
    assert!(err["message"].as_str().unwrap().contains("missing"));
    assert!(err["details"].is_array());

    let mut bad = cluster("bad");
    bad["spec"]["network"] = json!({"nodeCidr": "10.0.0.0/16", "serviceCidr": "10.0.128.0/17"});
    let (st, err) = api.call(Method::POST, "/v1/clusters", Some(bad)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], "Invalid");
    assert_eq!(err["details"][0]["field"], "spec.network.serviceCidr");

    let (st, _) = api
        .call(Method::POST, "/v1/clusters", Some(json!("not an object")))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Optimistic concurrency: an update carrying a current resourceVersion succeeds (the
    // controller writes status too, so a client retries on 409 after reading again);
    // one carrying an old resourceVersion is refused.
    let stale = created.clone();
    let mut updated = Value::Null;
    for _ in 0..20 {
        let (_, mut current) = api.call(Method::GET, "/v1/clusters/one", None).await;
        current["spec"]["nodePools"][0]["replicas"] = json!(2);
        let (st, body) = api
            .call(Method::PUT, "/v1/clusters/one", Some(current))
            .await;
        if st == StatusCode::OK {
            updated = body;
            break;
        }
        assert_eq!(st, StatusCode::CONFLICT, "{body}");
    }
    assert_eq!(updated["metadata"]["generation"], 2, "{updated}");
    let mut old = stale.clone();
    old["spec"]["nodePools"][0]["replicas"] = json!(3);
    let (st, err) = api.call(Method::PUT, "/v1/clusters/one", Some(old)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "Conflict");
    let (_, now) = api.call(Method::GET, "/v1/clusters/one", None).await;
    assert_eq!(
        now["spec"]["nodePools"][0]["replicas"], 2,
        "a refused update changed something"
    );

    // The network cannot change after creation (no resourceVersion: last writer wins).
    let mut update = now.clone();
    update["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    update["spec"]["network"]["podCidr"] = json!("10.200.0.0/16");
    let (st, err) = api
        .call(Method::PUT, "/v1/clusters/one", Some(update))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(err["details"][0]["field"], "spec.network.podCidr");

    // Name in body and path must agree.
    let (st, _) = api
        .call(Method::PUT, "/v1/clusters/one", Some(cluster("other")))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, _) = api.call(Method::PATCH, "/v1/clusters/one", None).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);

    let huge = json!({"metadata": {"name": "x", "labels": {"a": "b".repeat(2 << 20)}}, "spec": {}});
    let (st, _) = api.call(Method::POST, "/v1/clusters", Some(huge)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);

    let (st, marked) = api.call(Method::DELETE, "/v1/clusters/one", None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert!(marked["metadata"]["deletionRequestedAt"].is_string());
    let (st, _) = api.call(Method::DELETE, "/v1/clusters/missing", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, events) = api
        .call(Method::GET, "/v1/clusters/one/events?since=-1", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(events["items"].is_array());
    let (st, _) = api
        .call(Method::GET, "/v1/clusters/one/events?since=abc", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    s.shutdown().await;
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", s.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/clusters",
        "/v1/clusters/{name}",
        "/v1/clusters/{name}/events",
        "/v1/clusters/{name}/machines",
        "/v1/sim/inventory",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let cluster = &doc["components"]["schemas"]["Cluster"];
    assert_eq!(
        cluster["additionalProperties"], false,
        "unknown fields must be refused: {cluster}"
    );
    let spec = &doc["components"]["schemas"]["ClusterSpec"];
    assert!(spec["properties"]["controlPlane"].is_object(), "{spec}");
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn metrics_count_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let api = Api::new(&s);
    api.call(reqwest::Method::POST, "/v1/clusters", Some(cluster("m")))
        .await;
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(format!("{}/metrics", s.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("kaas_reconciles_total{controller=\"Cluster\",result=\"ok\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        text.contains("kaas_reconciles_total{controller=\"Cluster\",result=\"ok\"}"),
        "{text}"
    );
    // Every metric is named kaas_*, nothing prefixed.
    for name in [
        "kaas_reconciles_total{",
        "kaas_cloud_api_calls_total{",
        "kaas_clusters{phase=",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}:\n{text}");
    }
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("kaas_")),
        "{text}"
    );
    s.shutdown().await;
}

/// A replace without `resourceVersion` asks for the spec whatever the current version:
/// the status writes of a cluster being built (many a second at this speed) are no
/// conflict for it. With a stale `resourceVersion`, a replace is refused (409).
#[tokio::test]
async fn a_replace_without_resource_version_wins_over_status_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let api = Api::new(&s);
    let (code, created) = api
        .call(reqwest::Method::POST, "/v1/clusters", Some(cluster("busy")))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let stale = created["metadata"]["resourceVersion"].clone();
    let mut body = cluster("busy");
    let mut versions_seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        body["metadata"]["labels"] = json!({"round": i.to_string()});
        let (code, replaced) = api
            .call(
                reqwest::Method::PUT,
                "/v1/clusters/busy",
                Some(body.clone()),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "round {i}: {replaced}");
        assert_eq!(replaced["metadata"]["labels"]["round"], i.to_string());
        versions_seen.insert(replaced["metadata"]["resourceVersion"].to_string());
    }
    assert_eq!(versions_seen.len(), 40);
    body["metadata"]["resourceVersion"] = stale;
    let (code, refused) = api
        .call(reqwest::Method::PUT, "/v1/clusters/busy", Some(body))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{refused}");
}

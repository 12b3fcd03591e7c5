//! The Kubernetes API of a simulated API server, in process: requests through the
//! router as a client would send them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use chrono::Utc;
use futures::StreamExt;
use kaas_kube_sim::{ApiServer, NodeSpec, Taint, router};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Cluster {
    api: Arc<ApiServer>,
    app: Router,
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

fn node(name: &str, zone: &str, ready: bool) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        provider_id: format!("openstack:///{name}-id"),
        ready,
        labels: BTreeMap::from([
            ("topology.kubernetes.io/zone".to_owned(), zone.to_owned()),
            (
                "topology.kubernetes.io/region".to_owned(),
                "region-1".to_owned(),
            ),
        ]),
        kubelet_version: "v1.33.1".to_owned(),
        internal_ip: Some("10.0.0.5".to_owned()),
        taints: Vec::new(),
    }
}

fn workers(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| node(&format!("worker-{i}"), &format!("zone-{i}"), true))
        .collect()
}

impl Cluster {
    fn new() -> Self {
        let api = Arc::new(ApiServer::new());
        let app = router(Arc::clone(&api));
        Self { api, app }
    }

    fn with_nodes(nodes: &[NodeSpec]) -> Self {
        let cluster = Self::new();
        cluster.api.set_nodes(nodes);
        cluster
    }

    fn tick(&self) {
        self.api.tick(Utc::now());
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        accept: &str,
        body: String,
    ) -> Response<Body> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .header("accept", accept)
            .header("user-agent", "router-test/v0.0.0")
            .body(Body::from(body))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let response = self.raw(method, uri, content_type, JSON, body).await;
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {bytes:?}"))
        };
        (code, value)
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        self.send("GET", uri, JSON, String::new()).await
    }

    async fn post(&self, uri: &str, body: Value) -> (u16, Value) {
        self.send("POST", uri, JSON, body.to_string()).await
    }

    async fn put(&self, uri: &str, body: Value) -> (u16, Value) {
        self.send("PUT", uri, JSON, body.to_string()).await
    }

    async fn patch(&self, uri: &str, content_type: &str, body: &str) -> (u16, Value) {
        self.send("PATCH", uri, content_type, body.to_owned()).await
    }

    async fn delete(&self, uri: &str) -> (u16, Value) {
        self.send("DELETE", uri, JSON, String::new()).await
    }

    /// Applies a YAML document as `manager`.
    async fn apply(&self, uri: &str, manager: &str, yaml: &str) -> (u16, Value) {
        let sep = if uri.contains('?') { '&' } else { '?' };
        self.patch(&format!("{uri}{sep}fieldManager={manager}"), APPLY, yaml)
            .await
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Reads `n` watch events (or fewer, if the stream ends first) from a watch response.
async fn events(response: Response<Body>, n: usize) -> Vec<Value> {
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a watch event within 5 s");
        let Some(chunk) = chunk else { break };
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            out.push(serde_json::from_str(line.trim()).unwrap());
        }
    }
    out
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn pod(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": app}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[tokio::test]
async fn paths_answer_with_and_without_a_trailing_slash() {
    let c = Cluster::new();
    for uri in [
        "/version",
        "/version/",
        "/api",
        "/api/",
        "/apis",
        "/apis/",
        "/api/v1/",
    ] {
        let (code, body) = c.get(uri).await;
        assert_eq!(code, 200, "{uri}: {body}");
    }
    let (code, body) = c.get("/nope/").await;
    assert_eq!(
        (code, body["kind"].as_str()),
        (404, Some("Status")),
        "{body}"
    );
}

#[tokio::test]
async fn names_are_validated_as_the_api_server_validates_them() {
    let c = Cluster::new();
    let (code, _) = c
        .post("/api/v1/namespaces", json!({"metadata": {"name": "demo"}}))
        .await;
    assert_eq!(code, 201);
    let long_label = "a".repeat(64);
    for (uri, name, ok) in [
        ("/api/v1/namespaces/demo/configmaps", "a.b-c", true),
        ("/api/v1/namespaces/demo/configmaps", "Not_A_Name", false),
        ("/api/v1/namespaces/demo/configmaps", "-a", false),
        ("/api/v1/namespaces/demo/configmaps", "a..b", false),
        ("/api/v1/namespaces", "has.dot", false),
        ("/api/v1/namespaces", long_label.as_str(), false),
        ("/api/v1/namespaces/demo/services", "web.1", false),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "system:kaas-reader",
            true,
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "a/b",
            false,
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "..",
            false,
        ),
    ] {
        let (code, body) = c.post(uri, json!({"metadata": {"name": name}})).await;
        if ok {
            assert_eq!(code, 201, "{uri} {name}: {body}");
            continue;
        }
        assert_eq!(code, 422, "{uri} {name}: {body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(body["details"]["name"], name);
        assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    }
}

#[tokio::test]
async fn discovery_lists_the_built_in_resources() {
    let c = Cluster::new();
    let (code, version) = c.get("/version").await;
    assert_eq!(code, 200);
    assert_eq!(version["gitVersion"], "v1.33.0");
    let (_, api) = c.get("/api").await;
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, core) = c.get("/api/v1").await;
    let resources: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in [
        "namespaces",
        "nodes",
        "pods",
        "pods/eviction",
        "services",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "events",
    ] {
        assert!(resources.contains(&r), "{r} missing");
    }
    let nodes = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nodes")
        .unwrap();
    assert_eq!(nodes["namespaced"], false);
    let (_, groups) = c.get("/apis").await;
    assert_eq!(groups["kind"], "APIGroupList");
    let group_names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in ["apps", "storage.k8s.io", "apiextensions.k8s.io", "policy"] {
        assert!(group_names.contains(&g), "{g} missing");
    }
    let (_, apps) = c.get("/apis/apps/v1").await;
    let apps: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        apps.contains(&"deployments")
            && apps.contains(&"daemonsets")
            && apps.contains(&"deployments/scale")
    );
    let (_, sc) = c.get("/apis/storage.k8s.io/v1").await;
    assert_eq!(sc["resources"][0]["name"], "storageclasses");
    let (code, missing) = c.get("/apis/nope.example.com/v1").await;
    assert_eq!(code, 404);
    assert_eq!(missing["kind"], "Status");
}

#[tokio::test]
async fn crd_kinds_appear_in_discovery_and_can_be_used() {
    let c = Cluster::new();
    let (code, crd) = c
        .apply(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            "test",
            WIDGET_CRD,
        )
        .await;
    assert_eq!(code, 201, "{crd}");
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established);
    let (_, groups) = c.get("/apis").await;
    let example = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap();
    assert_eq!(
        example["preferredVersion"]["groupVersion"],
        "example.com/v1"
    );
    let (code, list) = c.get("/apis/example.com/v1").await;
    assert_eq!(code, 200);
    let widgets = &list["resources"][0];
    assert_eq!(widgets["name"], "widgets");
    assert_eq!(widgets["kind"], "Widget");
    assert_eq!(widgets["namespaced"], true);
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(list["resources"][1]["name"], "widgets/status");

    let (code, w) = c
        .post("/apis/example.com/v1/namespaces/default/widgets", json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}))
        .await;
    assert_eq!(code, 201, "{w}");
    assert_eq!(w["metadata"]["generation"], 1);
    let (code, _) = c
        .get("/apis/example.com/v1/namespaces/default/widgets/w1")
        .await;
    assert_eq!(code, 200);
    // The OpenAPI document of the new group serves the CRD's schema.
    let (code, doc) = c.get("/openapi/v3/apis/example.com/v1").await;
    assert_eq!(code, 200);
    assert_eq!(
        doc["components"]["schemas"]["com.example.v1.Widget"]["x-kubernetes-preserve-unknown-fields"],
        true
    );

    // Deleting the CRD deletes its objects and its API.
    let (code, _) = c
        .delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await;
    assert_eq!(code, 200);
    let (code, _) = c.get("/apis/example.com/v1").await;
    assert_eq!(code, 404);
    assert!(c.api.list("example.com/v1", "Widget", None).is_empty());
}

#[tokio::test]
async fn invalid_crds_are_refused() {
    let c = Cluster::new();
    let yaml = WIDGET_CRD.replace("name: widgets.example.com", "name: gadgets.example.com");
    let (code, status) = c
        .apply(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com",
            "test",
            &yaml,
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
}

#[tokio::test]
async fn create_get_replace_delete_with_status_errors() {
    let c = Cluster::new();
    let base = "/api/v1/namespaces/default/configmaps";
    let (code, created) = c.post(base, cm("c", json!({"k": "v"}))).await;
    assert_eq!(code, 201);
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());

    let (code, status) = c.post(base, cm("c", json!({}))).await;
    assert_eq!(code, 409);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["message"], "configmaps \"c\" already exists");
    assert_eq!(status["details"]["name"], "c");

    let (code, got) = c.get(&format!("{base}/c")).await;
    assert_eq!(code, 200);
    assert_eq!(got["data"]["k"], "v");

    // A replacement at the current version succeeds; the old version is then stale.
    let mut update = got.clone();
    update["data"]["k"] = json!("w");
    let (code, replaced) = c.put(&format!("{base}/c"), update.clone()).await;
    assert_eq!(code, 200);
    assert_ne!(replaced["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    let (code, status) = c.put(&format!("{base}/c"), update).await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "Conflict");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    // Resource versions are cluster-wide: a later write anywhere has a higher one.
    let (_, other) = c.post(base, cm("d", json!({}))).await;
    let v = |o: &Value| {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(v(&other) > v(&replaced));

    let (code, deleted) = c.delete(&format!("{base}/c")).await;
    assert_eq!(code, 200);
    assert_eq!(deleted["kind"], "Status");
    assert_eq!(deleted["status"], "Success");
    let (code, status) = c.get(&format!("{base}/c")).await;
    assert_eq!(code, 404);
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["message"], "configmaps \"c\" not found");
    let (code, _) = c.delete(&format!("{base}/c")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn requests_the_api_does_not_take_are_refused() {
    let c = Cluster::new();
    let (code, status) = c
        .post("/api/v1/namespaces/missing/configmaps", cm("c", json!({})))
        .await;
    assert_eq!(
        (code, status["message"].as_str().unwrap()),
        (404, "namespaces \"missing\" not found")
    );
    let (code, status) = c
        .send(
            "PUT",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            "{}".to_owned(),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str().unwrap()),
        (405, "MethodNotAllowed")
    );
    let (code, status) = c
        .patch(
            "/api/v1/namespaces/default/configmaps/c",
            "text/plain",
            "{}",
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str().unwrap()),
        (415, "UnsupportedMediaType")
    );
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/configmaps",
            json!({"kind": "Secret", "metadata": {"name": "x"}}),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str().unwrap()),
        (400, "BadRequest")
    );
    let (code, status) = c
        .post("/api/v1/namespaces/default/configmaps", json!({"data": {}}))
        .await;
    assert_eq!((code, status["reason"].as_str().unwrap()), (422, "Invalid"));
    let (code, _) = c.get("/api/v1/namespaces/default/nodes").await;
    assert_eq!(code, 404, "nodes are not namespaced");
    let (code, _) = c.get("/apis/apps/v1/namespaces/default/widgets").await;
    assert_eq!(code, 404);
    let (code, status) = c.get("/nothing/here").await;
    assert_eq!((code, status["kind"].as_str().unwrap()), (404, "Status"));
    let (code, status) = c
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            "{not json".to_owned(),
        )
        .await;
    assert_eq!(
        (code, status["reason"].as_str().unwrap()),
        (400, "BadRequest")
    );
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let c = Cluster::with_nodes(&workers(2));
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let (code, _) = c
            .post("/api/v1/namespaces/default/pods", pod(name, app))
            .await;
        assert_eq!(code, 201);
    }
    c.tick();
    let (_, all) = c.get("/api/v1/pods").await;
    assert_eq!(all["kind"], "PodList");
    assert!(all["metadata"]["resourceVersion"].is_string());
    assert_eq!(Cluster::names(&all), ["a", "b", "c"]);
    let (_, web) = c
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await;
    assert_eq!(Cluster::names(&web), ["a", "b"]);
    let (_, not_web) = c.get("/api/v1/pods?labelSelector=app!%3Dweb").await;
    assert_eq!(Cluster::names(&not_web), ["c"]);
    let (_, set) = c
        .get("/api/v1/pods?labelSelector=app%20in%20(db,cache)")
        .await;
    assert_eq!(Cluster::names(&set), ["c"]);
    let (_, by_name) = c
        .get("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Db")
        .await;
    assert_eq!(Cluster::names(&by_name), ["b"]);
    // The scheduler spread the pods over both nodes.
    let (_, on_node) = c
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-0")
        .await;
    let (_, on_other) = c
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-1")
        .await;
    assert_eq!(
        Cluster::names(&on_node).len() + Cluster::names(&on_other).len(),
        3
    );
    assert!(!Cluster::names(&on_node).is_empty() && !Cluster::names(&on_other).is_empty());
    let (_, both) = c.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-0,metadata.name!%3Da&labelSelector=app").await;
    assert!(!Cluster::names(&both).contains(&"a".to_owned()));
    let (code, _) = c.get("/api/v1/pods?labelSelector=app%20in%20web").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_records_managers() {
    let c = Cluster::new();
    let url = "/api/v1/namespaces/default/configmaps/settings";
    let first = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {team: a}\ndata:\n  colour: blue\n  size: large\n";
    let (code, created) = c.apply(url, "deployer", first).await;
    assert_eq!(code, 201, "{created}");
    let managed = &created["metadata"]["managedFields"][0];
    assert_eq!(managed["manager"], "deployer");
    assert_eq!(managed["operation"], "Apply");
    assert_eq!(managed["fieldsType"], "FieldsV1");
    assert_eq!(
        managed["fieldsV1"]["f:data"],
        json!({"f:colour": {}, "f:size": {}})
    );

    // Applying the same again changes nothing, not even the resource version.
    let (code, same) = c.apply(url, "deployer", first).await;
    assert_eq!(code, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // Another manager adds a field with a merge patch; it owns that field.
    let (code, patched) = c
        .patch(
            &format!("{url}?fieldManager=editor"),
            MERGE,
            r#"{"data": {"owner": "ops"}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(patched["data"]["owner"], "ops");
    let editor = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "editor")
        .unwrap();
    assert_eq!(editor["operation"], "Update");

    // The applier drops `size` and changes `colour` (JSON body this time): `size` goes,
    // the editor's field stays.
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"colour": "green"}});
    let (code, updated) = c.apply(url, "deployer", &second.to_string()).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["data"], json!({"colour": "green", "owner": "ops"}));
    assert!(
        updated["metadata"]["labels"].get("team").is_none(),
        "dropped labels go too"
    );

    // Applying a field another manager owns with another value is a conflict…
    let takeover =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {owner: dev}\n";
    let (code, conflict) = c.apply(url, "other", takeover).await;
    assert_eq!(code, 409);
    assert_eq!(conflict["reason"], "Conflict");
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"editor\""),
        "{conflict}"
    );
    assert_eq!(conflict["details"]["causes"][0]["field"], ".data.owner");
    // …unless forced.
    let (code, forced) = c
        .apply(&format!("{url}?force=true"), "other", takeover)
        .await;
    assert_eq!(code, 200);
    assert_eq!(forced["data"]["owner"], "dev");

    // Apply needs a field manager.
    let (code, status) = c.patch(url, APPLY, takeover).await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager is required")
    );
    // The name in the body must be the one in the URL.
    let (code, _) = c
        .apply("/api/v1/namespaces/default/configmaps/other", "x", first)
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn patches_merge_and_generation_counts_spec_changes() {
    let c = Cluster::with_nodes(&workers(1));
    let url = "/apis/apps/v1/namespaces/default/deployments/web";
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx:1.27, ports: [{containerPort: 80}]}\n";
    let (code, created) = c.apply(url, "test", deployment).await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["spec"]["strategy"]["type"], "RollingUpdate",
        "defaulted"
    );

    let (_, labelled) = c
        .patch(url, MERGE, r#"{"metadata": {"labels": {"tier": "front"}}}"#)
        .await;
    assert_eq!(labelled["metadata"]["labels"]["tier"], "front");
    assert_eq!(
        labelled["metadata"]["generation"], 1,
        "metadata changes keep the generation"
    );

    let (_, scaled) = c.patch(url, MERGE, r#"{"spec": {"replicas": 3}}"#).await;
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert_eq!(scaled["metadata"]["generation"], 2);

    // Strategic merge patch merges containers by name (what `kubectl set image` sends).
    let (code, image) = c
        .patch(url, STRATEGIC, r#"{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}"#)
        .await;
    assert_eq!(code, 200, "{image}");
    let container = &image["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(image["metadata"]["generation"], 3);

    let (code, json_patched) = c
        .patch(url, JSON_PATCH, r#"[{"op": "replace", "path": "/spec/replicas", "value": 2}, {"op": "add", "path": "/metadata/labels/x", "value": "y"}]"#)
        .await;
    assert_eq!(code, 200);
    assert_eq!(json_patched["spec"]["replicas"], 2);
    assert_eq!(json_patched["metadata"]["labels"]["x"], "y");

    // A patch carrying a stale resource version is a conflict.
    let stale = format!(
        r#"{{"metadata": {{"resourceVersion": "{}"}}, "spec": {{"replicas": 5}}}}"#,
        created["metadata"]["resourceVersion"].as_str().unwrap()
    );
    let (code, _) = c.patch(url, MERGE, &stale).await;
    assert_eq!(code, 409);
    let (code, _) = c
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/missing",
            MERGE,
            "{}",
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn status_and_scale_subresources() {
    let c = Cluster::new();
    let (_, _) = c
        .apply(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            "t",
            WIDGET_CRD,
        )
        .await;
    let url = "/apis/example.com/v1/namespaces/default/widgets/w";
    let (code, _) = c.apply(url, "t", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\nstatus: {phase: ignored}\n").await;
    assert_eq!(code, 201);
    let (_, w) = c.get(url).await;
    assert!(
        w.get("status").is_none(),
        "status is not set through the object"
    );
    let mut with_status = w.clone();
    with_status["status"] = json!({"phase": "Ready"});
    with_status["spec"]["size"] = json!(9);
    let (code, updated) = c.put(&format!("{url}/status"), with_status).await;
    assert_eq!(code, 200);
    assert_eq!(updated["status"]["phase"], "Ready");
    assert_eq!(updated["spec"]["size"], 1, "a status write leaves the spec");
    let (_, merged) = c
        .patch(
            url,
            MERGE,
            r#"{"spec": {"size": 2}, "status": {"phase": "Lost"}}"#,
        )
        .await;
    assert_eq!(merged["spec"]["size"], 2);
    assert_eq!(
        merged["status"]["phase"], "Ready",
        "an object write leaves the status"
    );
    let (code, _) = c
        .get("/api/v1/namespaces/default/configmaps/x/status")
        .await;
    assert_eq!(code, 404, "configmaps have no status subresource");

    let deploy = "/apis/apps/v1/namespaces/default/deployments/web";
    c.apply(deploy, "t", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}\n").await;
    let (code, scale) = c.get(&format!("{deploy}/scale")).await;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, scaled) = c
        .patch(
            &format!("{deploy}/scale"),
            MERGE,
            r#"{"spec": {"replicas": 4}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(scaled["spec"]["replicas"], 4);
    let (_, d) = c.get(deploy).await;
    assert_eq!(d["spec"]["replicas"], 4);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let c = Cluster::new();
    let mut obj = cm("held", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    c.post("/api/v1/namespaces/default/configmaps", obj).await;
    let url = "/api/v1/namespaces/default/configmaps/held";
    let (code, marked) = c.delete(url).await;
    assert_eq!(code, 202);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = c.get(url).await;
    assert_eq!(code, 200, "still there");
    let (code, _) = c
        .patch(url, MERGE, r#"{"metadata": {"finalizers": null}}"#)
        .await;
    assert_eq!(code, 200);
    let (code, _) = c.get(url).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn watches_stream_changes_as_json_lines() {
    let c = Cluster::new();
    let base = "/api/v1/namespaces/default/configmaps";
    let (_, list) = c.get(base).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = c
        .raw(
            "GET",
            &format!("{base}?watch=true&resourceVersion={rv}"),
            JSON,
            JSON,
            String::new(),
        )
        .await;
    assert_eq!(watch.status().as_u16(), 200);
    c.post(base, cm("w", json!({"a": "1"}))).await;
    c.patch(&format!("{base}/w"), MERGE, r#"{"data": {"a": "2"}}"#)
        .await;
    c.post(
        "/api/v1/namespaces/kube-system/configmaps",
        cm("elsewhere", json!({})),
    )
    .await;
    c.delete(&format!("{base}/w")).await;
    let got = events(watch, 3).await;
    let kinds: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    assert_eq!(got[1]["object"]["data"]["a"], "2");
    assert_eq!(got[2]["object"]["metadata"]["name"], "w");

    // Without a resource version the watch starts with the existing objects; a label
    // selector filters; timeoutSeconds ends the stream.
    c.post(
        base,
        json!({"metadata": {"name": "x", "labels": {"app": "web"}}}),
    )
    .await;
    c.post(
        base,
        json!({"metadata": {"name": "y", "labels": {"app": "db"}}}),
    )
    .await;
    let watch = c
        .raw(
            "GET",
            &format!("{base}?watch=1&labelSelector=app%3Dweb&timeoutSeconds=1"),
            JSON,
            JSON,
            String::new(),
        )
        .await;
    let got = events(watch, 10).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0]["type"].as_str(),
            got[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("x"))
    );

    // A watch of one object (kubectl's way: a field selector on its name).
    let watch = c
        .raw("GET", &format!("{base}?watch=true&fieldSelector=metadata.name%3Dy&resourceVersion={rv}&timeoutSeconds=1"), JSON, JSON, String::new())
        .await;
    let got = events(watch, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["object"]["metadata"]["name"], "y");

    // sendInitialEvents ends the initial objects with a bookmark.
    let watch = c
        .raw("GET", &format!("{base}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"), JSON, JSON, String::new())
        .await;
    let got = events(watch, 10).await;
    let last = got.last().unwrap();
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn tables_for_kubectl() {
    let c = Cluster::with_nodes(&[node("cp-0", "a", true)]);
    let response = c
        .raw(
            "GET",
            "/api/v1/nodes",
            JSON,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            String::new(),
        )
        .await;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let table: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&columns[..5], ["Name", "Status", "Roles", "Age", "Version"]);
    assert_eq!(table["rows"][0]["cells"][0], "cp-0");
    assert_eq!(table["rows"][0]["cells"][1], "Ready");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn eviction_respects_disruption_budgets() {
    let c = Cluster::with_nodes(&workers(2));
    for name in ["web-0", "web-1"] {
        c.post("/api/v1/namespaces/default/pods", pod(name, "web"))
            .await;
    }
    c.post("/api/v1/namespaces/default/pods", pod("lonely", "other"))
        .await;
    c.tick();
    let eviction = |name: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});

    // No budget: the pod goes.
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/pods/lonely/eviction",
            eviction("lonely"),
        )
        .await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["status"], "Success");
    let (code, _) = c.get("/api/v1/namespaces/default/pods/lonely").await;
    assert_eq!(code, 404);

    // A budget that needs both pods refuses.
    c.apply("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web", "t",
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n").await;
    c.tick();
    let (_, pdb) = c
        .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web")
        .await;
    assert_eq!(pdb["status"]["currentHealthy"], 2);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/pods/web-0/eviction",
            eviction("web-0"),
        )
        .await;
    assert_eq!(code, 429);
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
    let (code, _) = c.get("/api/v1/namespaces/default/pods/web-0").await;
    assert_eq!(code, 200, "still there");

    // One more healthy pod makes room for one eviction.
    c.post("/api/v1/namespaces/default/pods", pod("web-2", "web"))
        .await;
    c.tick();
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/pods/web-0/eviction",
            eviction("web-0"),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/pods/web-1/eviction",
            eviction("web-1"),
        )
        .await;
    assert_eq!(code, 429);

    // A percentage budget: maxUnavailable 50% of 2 pods allows one.
    c.patch(
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web",
        MERGE,
        r#"{"spec": {"minAvailable": null, "maxUnavailable": "50%"}}"#,
    )
    .await;
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/pods/web-1/eviction",
            eviction("web-1"),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/pods/missing/eviction",
            eviction("missing"),
        )
        .await;
    assert_eq!(code, 404);
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx}]\n";

#[tokio::test]
async fn deployments_get_pods_and_status() {
    let c = Cluster::with_nodes(&workers(3));
    let url = "/apis/apps/v1/namespaces/default/deployments/web";
    c.apply(url, "t", DEPLOYMENT).await;
    c.tick();
    let (_, d) = c.get(url).await;
    let status = &d["status"];
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["availableReplicas"], 3);
    assert_eq!(status["updatedReplicas"], 3);
    assert_eq!(status["observedGeneration"], 1);
    let available = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap();
    assert_eq!(available["status"], "True");
    let (_, rs) = c.get("/apis/apps/v1/namespaces/default/replicasets").await;
    assert_eq!(rs["items"].as_array().unwrap().len(), 1);
    let (_, pods) = c
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await;
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
    let nodes: std::collections::BTreeSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3, "spread over the nodes");

    // A second pass changes nothing.
    let rv = c.api.resource_version();
    c.tick();
    assert_eq!(c.api.resource_version(), rv);

    // A node going NotReady makes its pod unready and the deployment short of one.
    c.api.set_nodes(&[
        node("worker-0", "zone-0", false),
        node("worker-1", "zone-1", true),
        node("worker-2", "zone-2", true),
    ]);
    c.tick();
    let (_, d) = c.get(url).await;
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["unavailableReplicas"], 1);

    // A new template rolls out; the generation is observed.
    c.patch(url, STRATEGIC, r#"{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}"#).await;
    c.tick();
    let (_, d) = c.get(url).await;
    assert_eq!(d["status"]["observedGeneration"], 2);
    assert_eq!(d["status"]["updatedReplicas"], 3);
    let (_, pods) = c.get("/api/v1/namespaces/default/pods").await;
    assert!(
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "nginx:2")
    );

    // Deleting the deployment collects its replica sets and pods.
    c.delete(url).await;
    c.tick();
    c.tick();
    let (_, pods) = c.get("/api/v1/namespaces/default/pods").await;
    assert!(pods["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn daemonsets_run_on_every_node_they_fit() {
    let mut cp = node("cp-0", "zone-0", true);
    cp.labels.insert(
        "node-role.kubernetes.io/control-plane".to_owned(),
        String::new(),
    );
    cp.taints.push(Taint::control_plane());
    let c = Cluster::with_nodes(&[
        cp.clone(),
        node("worker-0", "zone-1", true),
        node("worker-1", "zone-2", true),
    ]);
    let url = "/apis/apps/v1/namespaces/kube-system/daemonsets/agent";
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      containers: [{name: agent, image: busybox}]\n";
    c.apply(url, "t", ds).await;
    c.tick();
    let (_, d) = c.get(url).await;
    let s = &d["status"];
    assert_eq!(
        s["desiredNumberScheduled"], 2,
        "the control plane's taint keeps it away"
    );
    assert_eq!(s["currentNumberScheduled"], 2);
    assert_eq!(s["numberReady"], 2);
    assert_eq!(s["numberAvailable"], 2);
    assert_eq!(s["updatedNumberScheduled"], 2);

    // Tolerating the taint brings it to the control plane too.
    c.patch(url, MERGE, r#"{"spec": {"template": {"spec": {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}}}"#).await;
    c.tick();
    let (_, d) = c.get(url).await;
    assert_eq!(d["status"]["desiredNumberScheduled"], 3);
    assert_eq!(d["status"]["numberReady"], 3);

    // A cordoned node keeps its daemon pod; a NotReady one's pod is not ready; a node
    // that is gone takes its pod with it.
    c.patch(
        "/api/v1/nodes/worker-0",
        STRATEGIC,
        r#"{"spec": {"unschedulable": true}}"#,
    )
    .await;
    c.api.set_nodes(&[
        cp,
        node("worker-0", "zone-1", true),
        node("worker-1", "zone-2", false),
    ]);
    c.tick();
    let (_, d) = c.get(url).await;
    assert_eq!(d["status"]["desiredNumberScheduled"], 3);
    assert_eq!(d["status"]["numberReady"], 2);
    c.api.set_nodes(&[node("worker-0", "zone-1", true)]);
    c.tick();
    let (_, d) = c.get(url).await;
    assert_eq!(d["status"]["desiredNumberScheduled"], 1);
    let (_, pods) = c.get("/api/v1/namespaces/kube-system/pods").await;
    assert_eq!(pods["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn nodes_are_fed_from_outside_and_keep_their_cordon() {
    let c = Cluster::with_nodes(&workers(2));
    let (_, n) = c.get("/api/v1/nodes/worker-0").await;
    assert_eq!(n["spec"]["providerID"], "openstack:///worker-0-id");
    assert_eq!(
        n["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "zone-0"
    );
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/hostname"],
        "worker-0"
    );
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.33.1");
    let ready = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");

    // Nothing changed, nothing written.
    let rv = c.api.resource_version();
    c.api.set_nodes(&workers(2));
    assert_eq!(c.api.resource_version(), rv);

    // kubectl cordon; kubectl label.
    c.patch(
        "/api/v1/nodes/worker-0",
        STRATEGIC,
        r#"{"spec": {"unschedulable": true}}"#,
    )
    .await;
    c.patch(
        "/api/v1/nodes/worker-0",
        MERGE,
        r#"{"metadata": {"labels": {"custom": "yes"}}}"#,
    )
    .await;
    let mut changed = workers(2);
    changed[0].ready = false;
    changed[0].labels.insert(
        "topology.kubernetes.io/zone".to_owned(),
        "zone-9".to_owned(),
    );
    c.api.set_nodes(&changed);
    let (_, n) = c.get("/api/v1/nodes/worker-0").await;
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(n["metadata"]["labels"]["custom"], "yes");
    assert_eq!(
        n["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "zone-9"
    );
    let ready = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");

    // Pods only go to Ready, schedulable nodes: worker-1 here.
    c.post("/api/v1/namespaces/default/pods", pod("p", "x"))
        .await;
    c.tick();
    let (_, p) = c.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(p["spec"]["nodeName"], "worker-1");

    // A node left out is deleted, and so are its pods.
    c.api.set_nodes(&changed[..1]);
    let (code, _) = c.get("/api/v1/nodes/worker-1").await;
    assert_eq!(code, 404);
    c.tick();
    let (code, _) = c.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn controllers_run_in_the_background() {
    let c = Cluster::with_nodes(&workers(2));
    let task = c.api.spawn_controllers(Duration::from_secs(60));
    let url = "/apis/apps/v1/namespaces/default/deployments/web";
    c.apply(url, "t", DEPLOYMENT).await;
    let mut ready = Value::Null;
    for _ in 0..100 {
        let (_, d) = c.get(url).await;
        ready = d["status"]["readyReplicas"].clone();
        if ready == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 3);
    task.abort();
}

/// Passes that change nothing come ever less often; a change brings a pass at once.
#[tokio::test]
async fn quiet_controllers_back_off_and_a_change_wakes_them() {
    let c = Cluster::with_nodes(&workers(1));
    let period = Duration::from_millis(10);
    let task = c.api.spawn_controllers(period);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Every 10 ms would be about 100 passes in a second; doubling from 10 ms, at most 7
    // (10, 20, 40, … 640 ms); a slow machine makes fewer, never more.
    let before = c.api.passes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet = c.api.passes() - before;
    assert!(quiet <= 8, "{quiet} passes in a quiet second");
    let url = "/apis/apps/v1/namespaces/default/deployments/web";
    c.apply(url, "t", DEPLOYMENT).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, d) = c.get(url).await;
        if d["status"]["readyReplicas"] == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ready: {d:#}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let c = Cluster::new();
    c.post("/api/v1/namespaces", json!({"metadata": {"name": "team"}}))
        .await;
    let (_, ns) = c.get("/api/v1/namespaces/team").await;
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    c.post("/api/v1/namespaces/team/configmaps", cm("c", json!({})))
        .await;
    c.post(
        "/api/v1/namespaces/team/secrets",
        json!({"metadata": {"name": "s"}, "stringData": {"p": "hunter2"}}),
    )
    .await;
    let (_, s) = c.get("/api/v1/namespaces/team/secrets/s").await;
    assert_eq!(s["data"]["p"], "aHVudGVyMg==");
    assert_eq!(s["type"], "Opaque");
    let (code, _) = c.delete("/api/v1/namespaces/team").await;
    assert_eq!(code, 200);
    let (code, _) = c.get("/api/v1/namespaces/team/configmaps/c").await;
    assert_eq!(code, 404);
    assert!(c.api.list("v1", "Secret", Some("team")).is_empty());
}

#[tokio::test]
async fn delete_collection_and_dry_run() {
    let c = Cluster::new();
    let base = "/api/v1/namespaces/default/configmaps";
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        c.post(
            base,
            json!({"metadata": {"name": name, "labels": {"app": app}}}),
        )
        .await;
    }
    let (code, _) = c
        .post(&format!("{base}?dryRun=All"), cm("d", json!({})))
        .await;
    assert_eq!(code, 201);
    let (code, _) = c.get(&format!("{base}/d")).await;
    assert_eq!(code, 404, "a dry run stores nothing");
    let (code, deleted) = c
        .send(
            "DELETE",
            &format!("{base}?labelSelector=app%3Dx"),
            JSON,
            String::new(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2);
    let (_, left) = c.get(base).await;
    assert_eq!(Cluster::names(&left), ["c"]);
}

const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: gen}\nspec:\n  completions: 2\n  parallelism: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: gen, image: busybox}]\n";

#[tokio::test]
async fn jobs_run_their_pods_to_completion() {
    let c = Cluster::with_nodes(&workers(2));
    let url = "/apis/batch/v1/namespaces/default/jobs/gen";
    c.apply(url, "t", JOB).await;
    let complete = |job: &Value| {
        job["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        })
    };
    // One pod at a time, each running for a pass and exiting 0 on the next.
    c.tick();
    let (_, job) = c.get(url).await;
    assert_eq!(job["status"]["active"], 1, "{job:#}");
    assert!(!complete(&job));
    let mut passes = 1;
    while !complete(&c.get(url).await.1) {
        c.tick();
        passes += 1;
        assert!(passes <= 6, "not complete after {passes} passes");
    }
    let (_, job) = c.get(url).await;
    assert_eq!(job["status"]["succeeded"], 2);
    assert_eq!(job["status"]["active"], 0);
    assert!(job["status"]["completionTime"].is_string());
    let (_, pods) = c
        .get("/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3Dgen")
        .await;
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Succeeded"));
    // Complete stays complete: no more pods.
    c.tick();
    let (_, pods) = c.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(pods["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_api_service_is_available_once_a_ready_pod_backs_its_service() {
    let c = Cluster::with_nodes(&workers(1));
    let api_service = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io";
    c.apply(
        api_service,
        "t",
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\nspec:\n  group: metrics.k8s.io\n  version: v1beta1\n  groupPriorityMinimum: 100\n  versionPriority: 100\n  service: {name: web, namespace: default}\n",
    )
    .await;
    let available = |s: &Value| {
        let c = s["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available").cloned())
            .unwrap_or_default();
        (
            c["status"].as_str().unwrap_or_default().to_owned(),
            c["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    c.tick();
    assert_eq!(
        available(&c.get(api_service).await.1),
        ("False".into(), "ServiceNotFound".into())
    );
    c.apply(
        "/api/v1/namespaces/default/services/web",
        "t",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 443}]\n",
    )
    .await;
    c.tick();
    assert_eq!(
        available(&c.get(api_service).await.1),
        ("False".into(), "MissingEndpoints".into())
    );
    c.apply(
        "/apis/apps/v1/namespaces/default/deployments/web",
        "t",
        DEPLOYMENT,
    )
    .await;
    c.tick();
    c.tick();
    assert_eq!(
        available(&c.get(api_service).await.1),
        ("True".into(), "Passed".into())
    );
}

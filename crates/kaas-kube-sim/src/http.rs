//! The HTTP surface: paths as the Kubernetes API lays them out, query parameters and
//! media types as its clients send them, answers (objects, lists, tables, `Status`
//! errors, watch streams) as it gives them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use chrono::Utc;
use serde_json::{Value, json};

use crate::discovery;
use crate::error::{ApiError, Reason};
use crate::openapi;
use crate::patch::PatchType;
use crate::portforward;
use crate::resources::{Catalog, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::ApiServer;
use crate::store::{Deleted, Selectors, Target, Update, WriteOptions};
use crate::table::{self, IncludeObject};
use crate::watch;

/// The Kubernetes API of `api`: discovery, OpenAPI, every resource, `/version`,
/// `/healthz`, `/livez`, `/readyz`.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        // A real API server answers these with and without a trailing slash, and some
        // clients (the official Python client) ask with one.
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*path}", get(openapi_v3))
        .route("/api", any(api_request))
        .route("/api/", any(api_request))
        .route("/apis", any(api_request))
        .route("/apis/", any(api_request))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            any(portforward),
        )
        .route("/api/{*rest}", any(api_request))
        .route("/apis/{*rest}", any(api_request))
        .fallback(not_found)
        .with_state(api)
}

fn json_response(code: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code(), &error.status())
}

/// `pods/{name}/portforward`: the pod must exist and run; then the WebSocket upgrade.
async fn portforward(
    State(api): State<Arc<ApiServer>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ports = match portforward::ports(&query) {
        Ok(ports) => ports,
        Err(message) => return error_response(&ApiError::bad_request(message)),
    };
    let Some(pod) = api.get("v1", "Pod", &namespace, &name) else {
        return error_response(&ApiError::not_found("", "pods", &name));
    };
    if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
        return error_response(&ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} is not running"
        )));
    }
    match ws {
        Ok(ws) => portforward::upgrade(ws, api.pod_ports(), namespace, name, ports),
        Err(rejection) => error_response(&ApiError::bad_request(format!(
            "unable to upgrade connection: {rejection}"
        ))),
    }
}

async fn not_found() -> Response {
    error_response(&ApiError::no_such_path())
}

async fn ok() -> &'static str {
    "ok"
}

async fn version(State(api): State<Arc<ApiServer>>) -> Response {
    json_response(200, &discovery::version(api.git_version()))
}

/// An empty OpenAPI v2 document: protobuf (what kubectl asks for) or JSON. kubectl
/// falls back to v2 to validate kinds the v3 documents do not cover yet (custom
/// resources whose CRD is applied in the same run); kinds missing from v2 are not
/// validated on the client.
async fn openapi_v2(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        // The empty protobuf message is the empty `openapi_v2.Document`.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
            Vec::<u8>::new(),
        )
            .into_response();
    }
    json_response(200, &openapi::v2(api.git_version()))
}

async fn openapi_v3_index(State(api): State<Arc<ApiServer>>) -> Response {
    json_response(200, &openapi::index(&api.catalog(), api.git_version()))
}

async fn openapi_v3(State(api): State<Arc<ApiServer>>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches("/openapi/v3/");
    match openapi::document(&api.catalog(), path, api.git_version()) {
        Some(doc) => json_response(200, &doc),
        None => error_response(&ApiError::no_such_path()),
    }
}

/// A path under `/api` or `/apis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`.
    Resources { group: String, version: String },
    /// Anything below that.
    Resource(ResourcePath),
}

/// `…/namespaces/{namespace}/{resource}/{name}/{subresource}`, or less of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a request path; `None` for paths no resource could live at.
pub fn parse_path(path: &str) -> Option<ApiPath> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(ApiPath::CoreVersions),
        ["apis"] => return Some(ApiPath::Groups),
        ["apis", group] => return Some(ApiPath::Group((*group).to_owned())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let namespaced_rest = match rest {
        [] => {
            return Some(ApiPath::Resources {
                group: group.to_owned(),
                version: version.to_owned(),
            });
        }
        // `namespaces/{name}/status` and `/finalize` are the namespace's subresources.
        ["namespaces", _, "status" | "finalize"] if group.is_empty() => None,
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => Some((*namespace, rest)),
        _ => None,
    };
    let (namespace, rest) = match namespaced_rest {
        Some((namespace, rest)) => (Some((*namespace).to_owned()), rest),
        None => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    if resource.is_empty() || name.is_some_and(str::is_empty) {
        return None;
    }
    Some(ApiPath::Resource(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    }))
}

/// What a handler answers with.
enum Reply {
    Json(u16, Value),
    Watch(Body),
}

async fn api_request(
    State(api): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let request = Request {
        api: &api,
        method: &method,
        headers: &headers,
        query: &query,
        body: &body,
    };
    let reply = match parse_path(uri.path()) {
        None => Err(ApiError::no_such_path()),
        Some(path) => request.handle(path, &host(&headers)),
    };
    match reply {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Watch(body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-cache, private"),
            ],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::debug!(%method, path = uri.path(), code = error.code(), message = %error.message, "request failed");
            error_response(&error)
        }
    }
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

struct Request<'a> {
    api: &'a ApiServer,
    method: &'a Method,
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
    body: &'a Bytes,
}

fn truthy(value: Option<&String>) -> bool {
    matches!(value.map(String::as_str), Some("true" | "1"))
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn wants_table(&self) -> bool {
        self.header(header::ACCEPT).contains("as=Table")
    }

    fn handle(&self, path: ApiPath, host: &str) -> Result<Reply, ApiError> {
        let resource = match path {
            ApiPath::Resource(resource) => resource,
            discovery_path => {
                if *self.method != Method::GET {
                    return Err(ApiError::method_not_allowed());
                }
                let catalog = self.api.catalog();
                return discovery::answer(&catalog, &discovery_path, host)
                    .map(|v| Reply::Json(200, v))
                    .ok_or_else(ApiError::no_such_path);
            }
        };
        let catalog = self.api.catalog();
        let rt = self.resolve(&catalog, &resource)?;
        match (&resource.name, &resource.subresource) {
            (None, _) => self.collection(rt, &resource),
            (Some(name), None) => self.object(rt, &resource, name, None),
            (Some(name), Some(sub)) if sub == "status" && rt.status_subresource => {
                self.object(rt, &resource, name, Some("status"))
            }
            (Some(name), Some(sub)) if sub == "eviction" && rt.is_core() && rt.plural == "pods" => {
                self.evict(rt, &resource, name)
            }
            (Some(name), Some(sub)) if sub == "scale" && rt.scale.is_some() => {
                self.scale(rt, &resource, name)
            }
            _ => Err(ApiError::no_such_path()),
        }
    }

    fn resolve(&self, catalog: &Catalog, path: &ResourcePath) -> Result<ResourceType, ApiError> {
        let rt = catalog
            .by_resource(&path.group, &path.version, &path.resource)
            .ok_or_else(ApiError::no_such_path)?;
        if path.namespace.is_some() && !rt.namespaced {
            return Err(ApiError::no_such_path());
        }
        Ok(rt.clone())
    }

    fn selectors(&self) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(self.param("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.param("fieldSelector").unwrap_or(""))?,
        })
    }

    fn options(&self) -> WriteOptions {
        let manager = self.param("fieldManager").map(str::to_owned).or_else(|| {
            let agent = self.header(header::USER_AGENT);
            let prefix = agent.split('/').next().unwrap_or("").trim();
            (!prefix.is_empty()).then(|| prefix.to_owned())
        });
        WriteOptions {
            field_manager: manager,
            force: truthy(self.query.get("force")),
            dry_run: self.param("dryRun").is_some_and(|d| !d.is_empty()),
        }
    }

    /// The request body as JSON (or YAML, when the content type says so).
    fn body_value(&self) -> Result<Value, ApiError> {
        let content_type = self.header(header::CONTENT_TYPE);
        if content_type.contains("protobuf") || content_type.contains("cbor") {
            return Err(ApiError::unsupported_media_type(content_type));
        }
        parse_body(self.body, content_type.contains("yaml"))
    }

    fn present(&self, rt: &ResourceType, target: &Target, object: &Value) -> Value {
        let object = target.present(object);
        if self.wants_table() {
            table::table(
                rt,
                std::slice::from_ref(&object),
                None,
                IncludeObject::parse(self.param("includeObject")),
                Utc::now(),
            )
        } else {
            object
        }
    }

    fn collection(&self, rt: ResourceType, path: &ResourcePath) -> Result<Reply, ApiError> {
        let target = Target::new(rt.clone(), &path.version, path.namespace.as_deref());
        match *self.method {
            Method::GET if truthy(self.query.get("watch")) => self.watch(target),
            Method::GET => {
                let selectors = self.selectors()?;
                let (items, rv) = {
                    let state = self.api.lock();
                    (state.list(&target, &selectors), state.revision.to_string())
                };
                if self.wants_table() {
                    let include = IncludeObject::parse(self.param("includeObject"));
                    return Ok(Reply::Json(
                        200,
                        table::table(&rt, &items, Some(&rv), include, Utc::now()),
                    ));
                }
                Ok(Reply::Json(
                    200,
                    json!({
                        "kind": format!("{}List", rt.kind),
                        "apiVersion": target.api_version(),
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    }),
                ))
            }
            Method::POST => {
                let body = self.body_value()?;
                let namespace = path.namespace.clone().unwrap_or_default();
                let options = self.options();
                let created = self.api.lock().create(
                    &rt,
                    &path.version,
                    &namespace,
                    body,
                    &options,
                    Utc::now(),
                )?;
                Ok(Reply::Json(201, self.present(&rt, &target, &created)))
            }
            Method::DELETE => {
                let selectors = self.selectors()?;
                let options = self.body_value().unwrap_or(Value::Null);
                let dry_run = self.options().dry_run;
                let mut state = self.api.lock();
                let keys: Vec<_> = state
                    .list(&target, &selectors)
                    .iter()
                    .map(|o| target.key_of(o))
                    .collect();
                let mut items = Vec::new();
                for key in keys {
                    if let Ok(Deleted::Gone(o) | Deleted::Marked(o)) =
                        state.delete(&rt, &key, &options, dry_run, Utc::now())
                    {
                        items.push(target.present(&o));
                    }
                }
                Ok(Reply::Json(
                    200,
                    json!({
                        "kind": format!("{}List", rt.kind),
                        "apiVersion": target.api_version(),
                        "metadata": {"resourceVersion": state.revision.to_string()},
                        "items": items,
                    }),
                ))
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    fn watch(&self, target: Target) -> Result<Reply, ApiError> {
        let selectors = self.selectors()?;
        let send_initial = truthy(self.query.get("sendInitialEvents"));
        let start = self.api.lock().watch(
            &target,
            &selectors,
            self.param("resourceVersion"),
            send_initial,
        )?;
        let timeout = self
            .param("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        let render: watch::Render = if self.wants_table() {
            let rt = target.resource.clone();
            let include = IncludeObject::parse(self.param("includeObject"));
            Box::new(move |o| table::table(&rt, &[o], None, include, Utc::now()))
        } else {
            Box::new(|o| o)
        };
        let stream = watch::stream(start, target, selectors, timeout, render);
        Ok(Reply::Watch(Body::from_stream(stream)))
    }

    fn object(
        &self,
        rt: ResourceType,
        path: &ResourcePath,
        name: &str,
        subresource: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let target = Target::new(rt.clone(), &path.version, path.namespace.as_deref());
        if rt.namespaced && target.namespace.is_none() {
            return Err(ApiError::no_such_path());
        }
        let key = target.key(name);
        let now = Utc::now();
        match *self.method {
            Method::GET if truthy(self.query.get("watch")) => {
                let mut query = self.query.clone();
                query.insert("fieldSelector".to_owned(), format!("metadata.name={name}"));
                let by_name = Request {
                    query: &query,
                    ..*self
                };
                by_name.watch(target)
            }
            Method::GET => {
                let state = self.api.lock();
                let object = state
                    .get(&key)
                    .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
                Ok(Reply::Json(200, self.present(&rt, &target, object)))
            }
            Method::PUT => {
                let body = self.body_value()?;
                let options = self.options();
                let update = Update {
                    rt: &rt,
                    version: &path.version,
                    key: &key,
                    subresource,
                    options: &options,
                    now,
                };
                let updated = self.api.lock().replace(&update, body)?;
                Ok(Reply::Json(200, self.present(&rt, &target, &updated)))
            }
            Method::PATCH => {
                let content_type = self.header(header::CONTENT_TYPE);
                let patch_type = PatchType::from_content_type(content_type)
                    .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
                let body = parse_body(self.body, patch_type == PatchType::Apply)?;
                let mut options = self.options();
                if patch_type == PatchType::Apply {
                    // Apply takes its manager from the query only.
                    options.field_manager = self.param("fieldManager").map(str::to_owned);
                }
                let update = Update {
                    rt: &rt,
                    version: &path.version,
                    key: &key,
                    subresource,
                    options: &options,
                    now,
                };
                let (created, patched) = self.api.lock().patch(&update, patch_type, body)?;
                let code = if created { 201 } else { 200 };
                Ok(Reply::Json(code, self.present(&rt, &target, &patched)))
            }
            Method::DELETE if subresource.is_none() => {
                let options = if self.body.is_empty() {
                    Value::Null
                } else {
                    self.body_value()?
                };
                let dry_run = self.options().dry_run
                    || options
                        .get("dryRun")
                        .and_then(Value::as_array)
                        .is_some_and(|d| !d.is_empty());
                let deleted = self.api.lock().delete(&rt, &key, &options, dry_run, now)?;
                Ok(match deleted {
                    Deleted::Marked(object) => {
                        Reply::Json(202, self.present(&rt, &target, &object))
                    }
                    Deleted::Gone(object) if rt.is_core() && rt.plural == "pods" => {
                        Reply::Json(200, self.present(&rt, &target, &object))
                    }
                    Deleted::Gone(object) => {
                        let mut details = json!({
                            "name": name,
                            "kind": rt.plural,
                            "uid": crate::object::uid(&object),
                        });
                        if !rt.group.is_empty() {
                            details["group"] = json!(rt.group);
                        }
                        Reply::Json(
                            200,
                            json!({
                                "kind": "Status",
                                "apiVersion": "v1",
                                "metadata": {},
                                "status": "Success",
                                "details": details,
                            }),
                        )
                    }
                })
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    fn scale(&self, rt: ResourceType, path: &ResourcePath, name: &str) -> Result<Reply, ApiError> {
        let target = Target::new(rt.clone(), &path.version, path.namespace.as_deref());
        let key = target.key(name);
        let scale = match *self.method {
            Method::GET => self.api.lock().scale(&rt, &key)?,
            Method::PUT | Method::PATCH => {
                let patch_type = if *self.method == Method::PUT {
                    None
                } else {
                    let content_type = self.header(header::CONTENT_TYPE);
                    Some(
                        PatchType::from_content_type(content_type)
                            .ok_or_else(|| ApiError::unsupported_media_type(content_type))?,
                    )
                };
                let body = parse_body(self.body, false)?;
                let options = self.options();
                let update = Update {
                    rt: &rt,
                    version: &path.version,
                    key: &key,
                    subresource: Some("scale"),
                    options: &options,
                    now: Utc::now(),
                };
                self.api.lock().write_scale(&update, patch_type, body)?
            }
            _ => return Err(ApiError::method_not_allowed()),
        };
        Ok(Reply::Json(200, scale))
    }

    fn evict(
        &self,
        pods: ResourceType,
        path: &ResourcePath,
        name: &str,
    ) -> Result<Reply, ApiError> {
        if *self.method != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let Some(namespace) = path.namespace.as_deref() else {
            return Err(ApiError::no_such_path());
        };
        let body = if self.body.is_empty() {
            json!({})
        } else {
            self.body_value()?
        };
        if let Some(evicted) = body.pointer("/metadata/name").and_then(Value::as_str)
            && evicted != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} != {evicted}"
            )));
        }
        self.api.lock().evict(&pods, namespace, name, Utc::now())?;
        Ok(Reply::Json(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }
}

/// A body as JSON, or as YAML when `yaml` (JSON first: it is YAML too, and faster).
fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Ok(value),
        Err(json_error) if yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is neither JSON ({json_error}) nor YAML ({e})"
                ))
            })
        }
        Err(e) => Err(ApiError::new(
            Reason::BadRequest,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn resource(
        group: &str,
        version: &str,
        namespace: Option<&str>,
        resource: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<ApiPath> {
        Some(ApiPath::Resource(ResourcePath {
            group: group.to_owned(),
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            resource: resource.to_owned(),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        }))
    }

    #[test]
    fn paths_parse_as_the_api_lays_them_out() {
        assert_eq!(parse_path("/api"), Some(ApiPath::CoreVersions));
        assert_eq!(parse_path("/apis"), Some(ApiPath::Groups));
        assert_eq!(
            parse_path("/apis/apps"),
            Some(ApiPath::Group("apps".to_owned()))
        );
        assert_eq!(
            parse_path("/api/v1"),
            Some(ApiPath::Resources {
                group: String::new(),
                version: "v1".to_owned()
            })
        );
        assert_eq!(
            parse_path("/api/v1/nodes"),
            resource("", "v1", None, "nodes", None, None)
        );
        assert_eq!(
            parse_path("/api/v1/nodes/n1"),
            resource("", "v1", None, "nodes", Some("n1"), None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces"),
            resource("", "v1", None, "namespaces", None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/default"),
            resource("", "v1", None, "namespaces", Some("default"), None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/default/status"),
            resource(
                "",
                "v1",
                None,
                "namespaces",
                Some("default"),
                Some("status")
            )
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/default/pods"),
            resource("", "v1", Some("default"), "pods", None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/default/pods/web-0/eviction"),
            resource(
                "",
                "v1",
                Some("default"),
                "pods",
                Some("web-0"),
                Some("eviction")
            )
        );
        assert_eq!(
            parse_path("/apis/apps/v1/namespaces/kube-system/deployments/coredns"),
            resource(
                "apps",
                "v1",
                Some("kube-system"),
                "deployments",
                Some("coredns"),
                None
            )
        );
        assert_eq!(
            parse_path("/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Aadmin"),
            resource(
                "rbac.authorization.k8s.io",
                "v1",
                None,
                "clusterroles",
                Some("system:admin"),
                None
            )
        );
        assert_eq!(parse_path("/api/v1/namespaces/a/pods/b/c/d"), None);
        assert_eq!(parse_path("/other"), None);
    }

    #[test]
    fn bodies_may_be_yaml_when_applied() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n";
        let v = parse_body(yaml, true).unwrap();
        assert_eq!(v["data"]["a"], "1");
        assert_eq!(parse_body(yaml, false).unwrap_err().code(), 400);
        assert_eq!(parse_body(br#"{"a": 1}"#, true).unwrap(), json!({"a": 1}));
    }
}

//! The simulated cloud served over the part of OpenStack's REST API that kaas's
//! OpenStack provider uses, so that the provider, and the `openstack` CLI, drive it as
//! they drive a real cloud: Keystone v3 (tokens, the catalog, application
//! credentials), Nova (servers, flavors, limits, server groups), Neutron (networks,
//! subnets, routers and their interfaces, security groups and rules, ports, floating
//! IPs, tags), Octavia (load balancers, listeners, pools, members, health monitors) and
//! Glance (images).
//!
//! One user in one project. Every answer comes from the simulated cloud's state; what
//! the REST API keeps beyond the simulation's model (a router's interfaces, a security
//! group's rules, a load balancer's listener, pool and health monitor) is part of the
//! resource's record and written to the same journal, so a killed server finds it as
//! it was after the last call that returned. Tokens live in memory only: after a
//! restart clients authenticate again, as after a Keystone key rotation.
//!
//! Errors come in each service's own shape (Nova's `itemNotFound`, Neutron's
//! `NeutronError`, Octavia's `faultstring`, Keystone's `error`), with the statuses the
//! services give (404, 409, 400, Nova's and Octavia's 403 and Neutron's 409 for quota,
//! 503 for an injected fault). An injected timeout carries out the request and then
//! loses the answer: its body fails half-way.
//!
//! Not served: anything the provider does not use (volumes, keypairs, updates of
//! existing resources other than tags, router routes, a port's own fixed IP).

mod compute;
mod identity;
mod image;
mod load_balancer;
mod network;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use kaas_cloud::CloudError;
use rand::Rng;
use serde_json::{Value, json};

use crate::SimCloud;
use crate::state::SimResource;

pub use identity::{Identity, write_private};

/// The name of the external network unless configured otherwise (kaas's default).
pub const DEFAULT_EXTERNAL_NETWORK: &str = "public";

/// The name a served cloud has in the `clouds.yaml` it writes.
pub const CLOUD_NAME: &str = "kaas-sim";

/// What the API serves beyond the simulated cloud itself.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The one user and project, and the user's password.
    pub identity: Identity,
    /// The name of the one external network: routers' gateways and floating IPs are
    /// on it.
    pub external_network: String,
}

impl ApiConfig {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            external_network: DEFAULT_EXTERNAL_NETWORK.to_owned(),
        }
    }
}

/// The state every handler shares.
pub(crate) struct Api {
    sim: SimCloud,
    config: ApiConfig,
    /// `http://HOST:PORT`, what the catalog's endpoints start with.
    base_url: String,
    tokens: Mutex<HashMap<String, identity::TokenRecord>>,
}

type Shared = Arc<Api>;

impl Api {
    fn project_id(&self) -> &str {
        &self.config.identity.project_id
    }
}

/// The application: every service's routes behind authentication, fault injection
/// and request ids.
pub fn router(sim: SimCloud, config: ApiConfig, base_url: &str) -> Router {
    let api = Arc::new(Api {
        sim,
        config,
        base_url: base_url.trim_end_matches('/').to_owned(),
        tokens: Mutex::new(HashMap::new()),
    });
    Router::new()
        .merge(identity::routes())
        .merge(compute::routes())
        .merge(network::routes())
        .merge(load_balancer::routes())
        .merge(image::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(api.clone(), faults))
        .layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .layer(middleware::from_fn(request_id))
        .with_state(api)
}

async fn not_found(request: Request) -> Response {
    let service = Service::of(request.uri().path());
    Fault::new(
        service,
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("The resource could not be found: {}", request.uri().path()),
    )
    .into_response()
}

/// The served API on its own port.
pub struct ApiServer {
    address: SocketAddr,
    url: String,
    identity: Identity,
    region: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ApiServer {
    /// Serves `sim` on `listen` (`127.0.0.1:0` for any free port).
    pub async fn start(
        sim: SimCloud,
        config: ApiConfig,
        listen: SocketAddr,
    ) -> std::io::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let url = format!("http://{address}");
        let identity = config.identity.clone();
        let region = sim.config().region.clone();
        let app = router(sim, config, &url);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%url, "simulated cloud serving OpenStack's API");
        Ok(ApiServer {
            address,
            url,
            identity,
            region,
            stop: Some(stop),
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Keystone's URL, as `auth_url` takes it.
    pub fn auth_url(&self) -> String {
        format!("{}/v3", self.url)
    }

    /// A `clouds.yaml` with this cloud as [`CLOUD_NAME`], password auth.
    pub fn clouds_yaml(&self) -> String {
        clouds_yaml(&self.auth_url(), &self.identity, &self.region)
    }

    /// Stops accepting connections, finishes the requests under way, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A `clouds.yaml` naming the cloud [`CLOUD_NAME`], as the `openstack` CLI and
/// kaas's provider read it.
pub fn clouds_yaml(auth_url: &str, identity: &Identity, region: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "# The simulated cloud of `kaas sim serve` (a simulation: nothing real is created).\n\
         clouds:\n  {CLOUD_NAME}:\n    auth_type: password\n    auth:\n      auth_url: {}\n      \
         username: {}\n      password: {}\n      project_name: {}\n      \
         user_domain_name: {}\n      project_domain_name: {}\n    region_name: {}\n    \
         interface: public\n    identity_api_version: 3\n",
        quote(auth_url),
        quote(&identity.user_name),
        quote(&identity.password),
        quote(&identity.project_name),
        quote(&identity.domain_name),
        quote(&identity.domain_name),
        quote(region),
    )
}

// --- services and their error shapes ---------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Identity,
    Compute,
    Network,
    LoadBalancer,
    Image,
}

impl Service {
    fn of(path: &str) -> Service {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "compute" => Service::Compute,
            "network" => Service::Network,
            "load-balancer" => Service::LoadBalancer,
            "image" => Service::Image,
            _ => Service::Identity,
        }
    }
}

/// An error answer in the shape of the service that gives it.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    service: Service,
    status: StatusCode,
    /// Neutron's `type` (`NetworkNotFound`, `OverQuota`, ...).
    kind: &'static str,
    message: String,
}

impl Fault {
    pub fn new(
        service: Service,
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            service,
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn not_found(service: Service, kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::NOT_FOUND, kind, message)
    }

    pub fn bad_request(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn conflict(service: Service, message: impl Into<String>) -> Self {
        Self::new(service, StatusCode::CONFLICT, "Conflict", message)
    }

    /// A simulated cloud's error, with the status the service gives it. Quota is
    /// Neutron's 409 `OverQuota`, and 403 elsewhere, in the service's words
    /// (`quota_message`).
    pub fn from_cloud(service: Service, error: CloudError) -> Self {
        match error {
            CloudError::NotFound { kind, id } => Self::not_found(
                service,
                "NotFound",
                format!("{} {id} could not be found.", capitalized(kind.human())),
            ),
            CloudError::QuotaExceeded { message } => match service {
                Service::Network => Self::new(service, StatusCode::CONFLICT, "OverQuota", message),
                _ => Self::new(service, StatusCode::FORBIDDEN, "OverQuota", message),
            },
            CloudError::Conflict { message } => Self::conflict(service, message),
            CloudError::BadRequest { message } => Self::bad_request(service, message),
            CloudError::Unavailable { message } | CloudError::InProgress { message } => Self::new(
                service,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
            ),
        }
    }

    pub fn unauthorized(service: Service) -> Self {
        Self::new(
            service,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The request you have made requires authentication.",
        )
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = match self.service {
            Service::Identity => json!({ "error": {
                "code": code, "title": title, "message": self.message,
            }}),
            Service::Compute => {
                let key = match code {
                    400 => "badRequest",
                    401 => "unauthorized",
                    403 => "forbidden",
                    404 => "itemNotFound",
                    409 => "conflictingRequest",
                    413 => "overLimit",
                    _ => "computeFault",
                };
                json!({ key: { "code": code, "message": self.message } })
            }
            Service::Network => json!({ "NeutronError": {
                "type": self.kind, "message": self.message, "detail": "",
            }}),
            Service::LoadBalancer => json!({
                "faultcode": if code < 500 { "Client" } else { "Server" },
                "faultstring": self.message,
                "debuginfo": null,
            }),
            Service::Image => json!({ "code": code, "title": title, "message": self.message }),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

pub(crate) type ApiResult<T = Response> = Result<T, Fault>;

/// A JSON answer with `status`.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

// --- middleware -------------------------------------------------------------------

/// Every answer carries a request id, as OpenStack's services give one.
async fn request_id(request: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}

/// Paths answered without a token: version documents and getting a token.
fn is_open(method: &axum::http::Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let versions = [
        "",
        "/v3",
        "/compute",
        "/compute/v2.1",
        "/network",
        "/load-balancer",
        "/load-balancer/v2",
        "/image",
    ];
    versions.contains(&path) || (path == "/v3/auth/tokens" && method == axum::http::Method::POST)
}

/// Requests other than [`is_open`] ones need a valid `X-Auth-Token`; the token's
/// record goes into the request's extensions for the handlers.
async fn authenticate(State(api): State<Shared>, mut request: Request, next: Next) -> Response {
    if is_open(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let service = Service::of(request.uri().path());
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let record = token.and_then(|t| api.token(&t));
    match record {
        Some(record) => {
            request.extensions_mut().insert(record);
            next.run(request).await
        }
        None => Fault::unauthorized(service).into_response(),
    }
}

/// The faults every call to a service may meet: an injected 503 before anything is
/// done, or a timeout after the request was carried out (the answer's body fails).
/// Version documents and Keystone's tokens are spared.
async fn faults(State(api): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let service = Service::of(&path);
    let spared = is_open(request.method(), &path)
        || (service == Service::Identity && !path.contains("application_credentials"));
    if spared {
        return next.run(request).await;
    }
    let timeout = match api.sim.call_faults(&path) {
        Ok(timeout) => timeout,
        Err(error) => return Fault::from_cloud(service, error).into_response(),
    };
    let response = next.run(request).await;
    if !timeout {
        return response;
    }
    // The cloud did its part; the answer is lost on the way back.
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let lost = futures::stream::once(async {
        tokio::time::sleep(crate::TIMEOUT_DELAY).await;
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the simulated cloud lost this answer (an injected timeout)",
        ))
    });
    Response::from_parts(parts, Body::from_stream(lost))
}

// --- helpers for handlers ----------------------------------------------------------

/// An RFC 3339 time (seconds, `Z`) from unix milliseconds.
pub(crate) fn time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A resource's creation time, RFC 3339.
pub(crate) fn created(r: &SimResource) -> String {
    time(r.created_at_ms)
}

/// A new id, as the simulated cloud makes them.
pub(crate) fn new_id(rng: &mut impl Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// A query string's pairs, in order (repeated keys kept).
pub(crate) type Query = Vec<(String, String)>;

pub(crate) fn query_value<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Query keys that are not filters on a field.
const NOT_FILTERS: &[&str] = &[
    "limit",
    "marker",
    "fields",
    "sort_key",
    "sort_dir",
    "page_reverse",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "cascade",
    "is_public",
];

/// Whether `item` passes the query's field filters (a key given more than once
/// matches any of its values; a key the item does not have filters nothing) and its
/// tag filters (`tags`: all of them, `tags-any`: one of them, `not-tags`,
/// `not-tags-any`; comma-separated).
pub(crate) fn matches(item: &Value, query: &Query) -> bool {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in query {
        if !NOT_FILTERS.contains(&key.as_str()) {
            by_key.entry(key).or_default().push(value);
        }
    }
    let fields_match = by_key.iter().all(|(key, wanted)| match item.get(*key) {
        None => true,
        Some(have) => wanted.iter().any(|w| scalar_is(have, w)),
    });
    if !fields_match {
        return false;
    }
    let tags: Vec<&str> = item
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let list = |key: &str| -> Vec<&str> {
        query
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .filter(|t| !t.is_empty())
            .collect()
    };
    let all = list("tags");
    let any = list("tags-any");
    let not_all = list("not-tags");
    let not_any = list("not-tags-any");
    all.iter().all(|t| tags.contains(t))
        && (any.is_empty() || any.iter().any(|t| tags.contains(t)))
        && (not_all.is_empty() || !not_all.iter().all(|t| tags.contains(t)))
        && !not_any.iter().any(|t| tags.contains(t))
}

fn scalar_is(have: &Value, wanted: &str) -> bool {
    match have {
        Value::String(s) => s == wanted,
        Value::Bool(b) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == wanted,
        Value::Null => wanted.is_empty() || wanted.eq_ignore_ascii_case("none"),
        _ => false,
    }
}

/// The first tag a query asks for, to find candidates through the tag index.
pub(crate) fn first_tag(query: &Query) -> Option<String> {
    query_value(query, "tags")
        .and_then(|t| t.split(',').find(|t| !t.is_empty()))
        .map(str::to_owned)
}

/// A page of `items` as Nova, Neutron and Octavia give them: `{key: [...]}` with
/// `{key}_links` holding the next page's link when `limit` cut the list short.
pub(crate) fn page(items: Vec<Value>, query: &Query, key: &str, url: &str) -> Value {
    let marker = query_value(query, "marker");
    let start = match marker {
        Some(marker) => items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(marker))
            .map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let limit = query_value(query, "limit").and_then(|l| l.parse::<usize>().ok());
    let rest = items.len().saturating_sub(start);
    let take = limit.map_or(rest, |l| l.min(rest));
    let page: Vec<Value> = items.into_iter().skip(start).take(take).collect();
    let mut body = json!({ key: page });
    if let Some(limit) = limit.filter(|_| take < rest)
        && let Some(last) = body[key]
            .as_array()
            .and_then(|p| p.last())
            .and_then(|l| l.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    {
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "marker" && k != "limit") {
            next.append_pair(k, v);
        }
        next.append_pair("limit", &limit.to_string());
        next.append_pair("marker", &last);
        body[format!("{key}_links")] = json!([{
            "rel": "next",
            "href": format!("{url}?{}", next.finish()),
        }]);
    } else {
        body[format!("{key}_links")] = json!([]);
    }
    body
}

/// A compute microversion from the request's headers (`OpenStack-API-Version:
/// compute 2.64` or `X-OpenStack-Nova-API-Version: 2.64`); 2.1 without one.
pub(crate) fn microversion(headers: &HeaderMap, service: &str, max: (u32, u32)) -> (u32, u32) {
    let text = headers
        .get_all("openstack-api-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (name, version) = v.trim().split_once(' ')?;
            (name == service).then(|| version.trim().to_owned())
        })
        .or_else(|| {
            headers
                .get("x-openstack-nova-api-version")
                .and_then(|v| v.to_str().ok())
                .filter(|_| service == "compute")
                .map(str::to_owned)
        });
    match text.as_deref() {
        None => (2, 1),
        Some("latest") => max,
        Some(text) => {
            let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
            match (major.parse(), minor.parse()) {
                (Ok(major), Ok(minor)) => (major, minor),
                _ => (2, 1),
            }
        }
    }
}

/// The body's JSON object under `key`, or Nova's or Neutron's words for a body that
/// has none.
pub(crate) fn body_object<'a>(
    service: Service,
    body: &'a Value,
    key: &str,
) -> ApiResult<&'a Value> {
    body.get(key)
        .filter(|v| v.is_object())
        .ok_or_else(|| Fault::bad_request(service, format!("Missing '{key}' in the request body.")))
}

pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(crate) fn string_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Api {
    /// The record of a token that is valid now: not expired, and not made from an
    /// application credential that has since been deleted (Keystone revokes those).
    fn token(&self, value: &str) -> Option<identity::TokenRecord> {
        let record = {
            let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            tokens
                .get(value)
                .filter(|t| t.expires_at > Utc::now())
                .cloned()?
        };
        if let Some((id, _, _)) = &record.credential {
            let exists = self.sim.read(|state, now| {
                state
                    .get(kaas_cloud::ResourceKind::ApplicationCredential, id, now)
                    .is_some_and(|r| !r.is_deleting())
            });
            if !exists {
                return None;
            }
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests;

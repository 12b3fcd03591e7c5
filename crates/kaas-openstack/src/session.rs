//! An authenticated Keystone v3 session: it holds the token and its service catalog,
//! renews the token before it expires (and once more on a 401), picks endpoints from
//! the catalog, sends requests with bounded, jittered retries, follows pagination, and
//! counts every HTTP request it sends.
//!
//! Tokens, passwords and request bodies never reach a log line or an error.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Auth, CloudConfig, Scope, Secret, normalize_auth_url, normalize_interface};
use crate::error::{OsError, error_message};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A token is renewed this long before it expires (or halfway through a shorter life).
const RENEW_BEFORE: TimeDelta = TimeDelta::minutes(5);
/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;
const BACKOFF_BASE: Duration = if cfg!(test) {
    Duration::from_millis(2)
} else {
    Duration::from_millis(250)
};
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// The most pages [`Session::list_all`] follows before it calls the listing a loop.
const MAX_PAGES: usize = 10_000;

/// Service types that name the same service, the preferred one first.
const SERVICE_TYPES: &[&[&str]] = &[
    &[
        "block-storage",
        "volumev3",
        "volumev2",
        "volume",
        "block-store",
    ],
    &["load-balancer"],
    &["compute"],
    &["network"],
    &["image"],
    &["identity"],
    &["placement"],
];

/// The catalog types to look for when asked for `service`.
fn service_types(service: &str) -> Vec<&str> {
    SERVICE_TYPES
        .iter()
        .find(|group| group.contains(&service))
        .map(|group| group.to_vec())
        .unwrap_or_else(|| vec![service])
}

/// The preferred name of `service` (`volumev3` -> `block-storage`).
fn canonical_service(service: &str) -> &str {
    SERVICE_TYPES
        .iter()
        .find(|group| group.contains(&service))
        .map(|group| group[0])
        .unwrap_or(service)
}

/// One service in the token's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a catalog service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub url: String,
}

/// A request to one service. `path` is appended to the service's endpoint URL (which
/// for compute already ends in `/v2.1`, for identity in `/v3`, while network, image
/// and load-balancer endpoints carry no version: `/v2.0/networks`, `/v2/images`,
/// `/v2/lbaas/loadbalancers`); it may carry a query string.
///
/// `Debug` leaves the body out: it may hold an application credential's secret or a
/// server's user data.
#[derive(Clone)]
pub struct Request<'a> {
    pub service: &'a str,
    pub method: Method,
    pub path: &'a str,
    pub body: Option<&'a Value>,
    /// `2.64` becomes `OpenStack-API-Version: compute 2.64` (and, for compute,
    /// `X-OpenStack-Nova-API-Version: 2.64`).
    pub microversion: Option<&'a str>,
    /// Keystone's `X-Subject-Token`: the token a token validation asks about.
    pub subject_token: Option<&'a str>,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("service", &self.service)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body", &self.body.map(|_| "<omitted>"))
            .field("microversion", &self.microversion)
            .field("subject_token", &self.subject_token.map(|_| "<omitted>"))
            .finish()
    }
}

impl<'a> Request<'a> {
    pub fn new(method: Method, service: &'a str, path: &'a str) -> Self {
        Self {
            service,
            method,
            path,
            body: None,
            microversion: None,
            subject_token: None,
        }
    }

    pub fn get(service: &'a str, path: &'a str) -> Self {
        Self::new(Method::GET, service, path)
    }

    pub fn post(service: &'a str, path: &'a str, body: &'a Value) -> Self {
        Self::new(Method::POST, service, path).body(body)
    }

    pub fn put(service: &'a str, path: &'a str, body: &'a Value) -> Self {
        Self::new(Method::PUT, service, path).body(body)
    }

    pub fn delete(service: &'a str, path: &'a str) -> Self {
        Self::new(Method::DELETE, service, path)
    }

    pub fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn microversion(mut self, version: &'a str) -> Self {
        self.microversion = Some(version);
        self
    }
}

/// A successful answer (status below 400).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// The JSON body; `Null` when the body is empty or not JSON.
    pub body: Value,
    pub request_id: Option<String>,
}

/// An authenticated Keystone v3 session. Cheap to clone: clones share the token, the
/// connection pool and the call counts.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    config: CloudConfig,
    http: Http,
    token: RwLock<Arc<Token>>,
    /// Held while authenticating, so concurrent requests renew the token once.
    renewal: tokio::sync::Mutex<()>,
}

struct Token {
    value: Secret,
    expires_at: DateTime<Utc>,
    renew_at: DateTime<Utc>,
    user_id: String,
    project_id: Option<String>,
    catalog: Vec<CatalogService>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.current();
        f.debug_struct("Session")
            .field("auth_url", &self.inner.config.auth_url)
            .field("user_id", &token.user_id)
            .field("project_id", &token.project_id)
            .field("expires_at", &token.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Authenticates to Keystone with `config` and returns the session.
    pub async fn new(config: CloudConfig) -> Result<Session, OsError> {
        let http = Http::new(&config).await?;
        let token = authenticate(&http, &config).await?;
        Ok(Session {
            inner: Arc::new(Inner {
                config,
                http,
                token: RwLock::new(Arc::new(token)),
                renewal: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn current(&self) -> Arc<Token> {
        self.inner
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn config(&self) -> &CloudConfig {
        &self.inner.config
    }

    /// The id of the user the current token belongs to.
    pub fn user_id(&self) -> String {
        self.current().user_id.clone()
    }

    /// The id of the project the current token is scoped to.
    pub fn project_id(&self) -> Option<String> {
        self.current().project_id.clone()
    }

    /// The current token (for `Auth::Token` elsewhere, or for a tool that needs one).
    pub fn token(&self) -> Secret {
        self.current().value.clone()
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.current().expires_at
    }

    /// The current token's service catalog.
    pub fn catalog(&self) -> Vec<CatalogService> {
        self.current().catalog.clone()
    }

    /// The URL of `service`: the configured override, else the catalog's endpoint of
    /// that type (or an alias: `volumev3` for `block-storage`) for the configured
    /// interface and region. The identity endpoint always ends in `/v3`.
    pub async fn endpoint(&self, service: &str) -> Result<Url, OsError> {
        let token = self.current();
        select_endpoint(&token.catalog, &self.inner.config, service)
            .map_err(|message| OsError::local(canonical_service(service), "", "", message))
    }

    /// Every HTTP request sent so far, by `"<service> <METHOD>"` (auth and retries
    /// included).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner
            .http
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The number of HTTP requests sent so far.
    pub fn total_calls(&self) -> u64 {
        self.calls().values().sum()
    }

    /// Sends `req` and returns the answer; every status of 400 and above is an error
    /// carrying the service's message. Retries 409, 429, 5xx and transport failures up
    /// to three more times, except that a POST is never repeated after it may have
    /// reached the service and acted (5xx, timeout): the caller finds what it created
    /// by its tags. A 401 renews the token once and repeats the request.
    pub async fn request(&self, req: Request<'_>) -> Result<Response, OsError> {
        let service = canonical_service(req.service);
        let base = self.endpoint(req.service).await?;
        let url = join_url(&base, req.path)
            .map_err(|message| OsError::local(service, req.method.as_str(), req.path, message))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(version) = req.microversion {
            for (name, value) in microversion_headers(service, version) {
                let value = HeaderValue::from_str(&value).map_err(|_| {
                    OsError::local(
                        service,
                        req.method.as_str(),
                        req.path,
                        format!("microversion '{version}' is not a valid header value"),
                    )
                })?;
                headers.insert(name, value);
            }
        }

        if let Some(subject) = req.subject_token {
            let mut value = HeaderValue::from_str(subject).map_err(|_| {
                OsError::local(
                    service,
                    req.method.as_str(),
                    req.path,
                    "the token to validate has characters a header cannot carry",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-subject-token"), value);
        }
        let mut renewed = false;
        loop {
            let token = self.fresh_token().await?;
            let mut headers = headers.clone();
            headers.insert(X_AUTH_TOKEN, token_header(&token.value)?);
            let call = Call {
                service,
                method: req.method.clone(),
                url: url.clone(),
                path: req.path,
                body: req.body,
                headers,
            };
            let answer = self.inner.http.send(&call).await?;
            if answer.status == StatusCode::UNAUTHORIZED && !renewed {
                if self.inner.config.auth.can_renew() {
                    self.renew(Some(&token.value)).await?;
                    renewed = true;
                    continue;
                }
                let mut error = answer.error(&call);
                error.message.push_str(
                    " (the session's token was given in the configuration and cannot be renewed)",
                );
                return Err(error);
            }
            if !answer.status.is_success() {
                return Err(answer.error(&call));
            }
            let body = if answer.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
            };
            return Ok(Response {
                status: answer.status.as_u16(),
                body,
                request_id: answer.request_id,
            });
        }
    }

    /// Asks Keystone about another token (`GET /v3/auth/tokens` with
    /// `X-Subject-Token`): its body (`token.user`, `token.project`, `token.roles`), or
    /// `None` when Keystone does not accept it (404, or 401 for a malformed one). The
    /// session's user needs the right to validate others' tokens (Keystone's
    /// `identity:validate_token` policy: a service or admin role), except for its own.
    pub async fn validate_token(&self, subject: &str) -> Result<Option<Value>, OsError> {
        let request = Request {
            subject_token: Some(subject),
            ..Request::get("identity", "/auth/tokens")
        };
        match self.request(request).await {
            Ok(answer) => Ok(Some(answer.body)),
            Err(e) if matches!(e.status, Some(401 | 404)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a paginated listing: the `key` array of each page, following
    /// `<key>_links` with `rel: next` (Nova, Neutron, Octavia) or a top-level `next`
    /// (Glance). The next page keeps `path` and its query, with the parameters of the
    /// next link (the marker) taking the place of the same ones, so a link with a
    /// wrong host or scheme (a proxy in front of the service) does no harm.
    pub async fn list_all(
        &self,
        service: &str,
        path: &str,
        key: &str,
        microversion: Option<&str>,
    ) -> Result<Vec<Value>, OsError> {
        let mut items = Vec::new();
        let mut current = path.to_owned();
        let mut seen = HashSet::new();
        loop {
            let mut req = Request::get(service, &current);
            if let Some(version) = microversion {
                req = req.microversion(version);
            }
            let response = self.request(req).await?;
            let next = next_link(&response.body, key);
            let Value::Object(mut body) = response.body else {
                return Err(OsError::local(
                    canonical_service(service),
                    "GET",
                    &current,
                    format!("the answer is not a JSON object with a '{key}' list"),
                ));
            };
            let Some(Value::Array(page)) = body.remove(key) else {
                return Err(OsError::local(
                    canonical_service(service),
                    "GET",
                    &current,
                    format!("the answer has no '{key}' list"),
                ));
            };
            let empty = page.is_empty();
            items.extend(page);
            let Some(link) = next.filter(|_| !empty) else {
                return Ok(items);
            };
            let next_path = next_request_path(path, &link);
            if !seen.insert(next_path.clone()) || seen.len() > MAX_PAGES {
                return Err(OsError::local(
                    canonical_service(service),
                    "GET",
                    &next_path,
                    "pagination does not advance (the next link repeats)",
                ));
            }
            current = next_path;
        }
    }

    /// Re-authenticates now, whatever the current token's expiry.
    pub async fn reauthenticate(&self) -> Result<(), OsError> {
        let seen = self.current().value.clone();
        self.renew(Some(&seen)).await.map(|_| ())
    }

    /// The current token, renewed first if it expires soon.
    async fn fresh_token(&self) -> Result<Arc<Token>, OsError> {
        let current = self.current();
        let now = Utc::now();
        if now < current.renew_at {
            return Ok(current);
        }
        if self.inner.config.auth.can_renew() {
            return self.renew(None).await;
        }
        if now >= current.expires_at {
            return Err(OsError::local(
                "identity",
                "",
                "",
                format!(
                    "the token given in the configuration expired at {}; token auth cannot \
                     renew it: use password or application credential auth",
                    current.expires_at.to_rfc3339()
                ),
            ));
        }
        Ok(current)
    }

    /// Authenticates again, unless another task did while this one waited: the token
    /// changed since `rejected` was used, or (without `rejected`) it is fresh again.
    async fn renew(&self, rejected: Option<&Secret>) -> Result<Arc<Token>, OsError> {
        let _renewal = self.inner.renewal.lock().await;
        let current = self.current();
        let done = match rejected {
            Some(rejected) => current.value != *rejected,
            None => Utc::now() < current.renew_at,
        };
        if done {
            return Ok(current);
        }
        let token = Arc::new(authenticate(&self.inner.http, &self.inner.config).await?);
        *self
            .inner
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner) = token.clone();
        tracing::debug!(expires_at = %token.expires_at, "renewed the OpenStack token");
        Ok(token)
    }
}

const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
const X_SUBJECT_TOKEN: HeaderName = HeaderName::from_static("x-subject-token");

fn token_header(token: &Secret) -> Result<HeaderValue, OsError> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
        OsError::local(
            "identity",
            "",
            "",
            "the token has characters a header cannot carry",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn microversion_headers(service: &str, version: &str) -> Vec<(HeaderName, String)> {
    let api_version = HeaderName::from_static("openstack-api-version");
    match service {
        "compute" => vec![
            (api_version, format!("compute {version}")),
            (
                HeaderName::from_static("x-openstack-nova-api-version"),
                version.to_owned(),
            ),
        ],
        // Cinder names itself `volume` in the header.
        "block-storage" => vec![(api_version, format!("volume {version}"))],
        other => vec![(api_version, format!("{other} {version}"))],
    }
}

/// `path` (with its query) appended to the endpoint URL, without a doubled `/`.
fn join_url(base: &Url, path: &str) -> Result<Url, String> {
    let base = base.as_str();
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let base = base.trim_end_matches('/');
    let joined = if path.is_empty() || path.starts_with('/') || path.starts_with('?') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    };
    Url::parse(&joined).map_err(|e| format!("'{joined}' is not a URL: {e}"))
}

/// The next page's link: `<key>_links[rel=next].href`, or Glance's `next`.
fn next_link(body: &Value, key: &str) -> Option<String> {
    let from_links = body
        .get(format!("{key}_links"))
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("href"))
        .and_then(Value::as_str);
    from_links
        .or_else(|| body.get("next").and_then(Value::as_str))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

fn query_key(pair: &str) -> &str {
    pair.split('=').next().unwrap_or(pair)
}

/// The request path of the next page: the first page's path and query, with the
/// parameters the next link carries in place of the same ones.
fn next_request_path(first: &str, link: &str) -> String {
    let (path, query) = first.split_once('?').unwrap_or((first, ""));
    let link_query = link.split_once('?').map(|(_, q)| q).unwrap_or("");
    let link_query = link_query.split('#').next().unwrap_or(link_query);
    let next: Vec<&str> = link_query.split('&').filter(|p| !p.is_empty()).collect();
    let keys: HashSet<&str> = next.iter().map(|p| query_key(p)).collect();
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !keys.contains(query_key(p)))
        .collect();
    pairs.extend(next);
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

fn endpoint_region_matches(endpoint: &CatalogEndpoint, region: Option<&str>) -> bool {
    region.is_none_or(|r| {
        endpoint.region_id.as_deref() == Some(r) || endpoint.region.as_deref() == Some(r)
    })
}

fn parse_endpoint(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| format!("endpoint '{url}' is not a URL: {e}"))
}

/// The identity endpoint in its v3 form, as for `auth_url`.
fn identity_v3(url: &str) -> Result<Url, String> {
    parse_endpoint(&normalize_auth_url(url)?)
}

fn select_endpoint(
    catalog: &[CatalogService],
    config: &CloudConfig,
    service: &str,
) -> Result<Url, String> {
    let types = service_types(service);
    let is_identity = types.first() == Some(&"identity");
    for service_type in &types {
        if let Some(url) = config.endpoint_override.get(*service_type) {
            return parse_endpoint(url);
        }
    }
    let interface = normalize_interface(&config.interface);
    let region = config.region_name.as_deref();
    for service_type in &types {
        let found = catalog
            .iter()
            .filter(|s| s.service_type == *service_type)
            .flat_map(|s| &s.endpoints)
            .find(|e| {
                normalize_interface(&e.interface) == interface && endpoint_region_matches(e, region)
            });
        if let Some(endpoint) = found {
            return if is_identity {
                identity_v3(&endpoint.url)
            } else {
                parse_endpoint(&endpoint.url)
            };
        }
    }
    if is_identity {
        return parse_endpoint(&config.auth_url);
    }

    let wanted = format!(
        "no {} endpoint for '{service}'{}{}",
        config.interface,
        if types.len() > 1 {
            format!(" (or {})", types[1..].join(", "))
        } else {
            String::new()
        },
        region
            .map(|r| format!(" in region {r}"))
            .unwrap_or_default(),
    );
    if catalog.is_empty() {
        return Err(format!(
            "{wanted}: the catalog is empty (is the token scoped to a project?)"
        ));
    }
    let have: Vec<String> = catalog
        .iter()
        .map(|s| {
            let endpoints: Vec<String> = s
                .endpoints
                .iter()
                .map(|e| {
                    let region = e.region_id.as_deref().or(e.region.as_deref());
                    format!("{} {}", e.interface, region.unwrap_or("-"))
                })
                .collect();
            format!("{} ({})", s.service_type, endpoints.join(", "))
        })
        .collect();
    Err(format!("{wanted}; the catalog has: {}", have.join(", ")))
}

/// A delay before retry `retry` (1-based): exponential from the base, capped, with the
/// upper half jittered so that clients that failed together do not retry together.
fn backoff(retry: u32) -> Duration {
    let exponential = BACKOFF_BASE.saturating_mul(1 << retry.saturating_sub(1).min(16));
    let ceiling = exponential.min(BACKOFF_CAP);
    let half = ceiling / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

// --- HTTP ------------------------------------------------------------------------------

/// The client and the call counts, shared by authentication and requests.
struct Http {
    client: reqwest::Client,
    calls: Mutex<BTreeMap<String, u64>>,
}

struct Call<'a> {
    /// The canonical service type.
    service: &'a str,
    method: Method,
    url: Url,
    /// As requested, for logs and errors.
    path: &'a str,
    body: Option<&'a Value>,
    headers: HeaderMap,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    request_id: Option<String>,
}

impl Answer {
    fn error(&self, call: &Call<'_>) -> OsError {
        OsError::from_response(
            call.service,
            call.method.as_str(),
            call.path,
            self.status.as_u16(),
            &self.body,
            self.request_id.clone(),
        )
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-openstack-request-id", "x-compute-request-id"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether an answer with `status` is worth sending the request again for.
fn retryable_status(status: StatusCode, method: &Method, body: &[u8]) -> bool {
    match status.as_u16() {
        // Rate limited: the service did not act.
        429 => true,
        // A conflict (a load balancer busy updating) passes; a quota (Neutron says
        // OverQuota with 409) does not. The service refused, so even a POST is safe.
        409 => {
            let message = error_message(409, body).to_ascii_lowercase();
            !message.contains("quota")
        }
        // The service may have acted: only what is idempotent is repeated.
        500..=599 => *method != Method::POST,
        _ => false,
    }
}

/// Whether a request that got no answer is worth sending again: always when the
/// connection was never made; otherwise only when repeating it is harmless.
fn retryable_transport(error: &reqwest::Error, method: &Method) -> bool {
    if error.is_builder() {
        return false;
    }
    error.is_connect() || *method != Method::POST
}

/// A transport error with its causes, without the URL.
fn transport_message(error: reqwest::Error) -> String {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    let message = parts.join(": ");
    if timed_out {
        format!("timed out: {message}")
    } else {
        message
    }
}

impl Http {
    async fn new(config: &CloudConfig) -> Result<Http, OsError> {
        let fail = |message: String| OsError::local("identity", "", "", message);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("kaas-openstack/", env!("CARGO_PKG_VERSION")));
        if !config.verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(path) = &config.cacert {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| fail(format!("cannot read cacert {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                fail(format!(
                    "cacert {} is not a PEM bundle: {}",
                    path.display(),
                    transport_message(e)
                ))
            })?;
            if certs.is_empty() {
                return Err(fail(format!(
                    "cacert {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            fail(format!(
                "cannot build the HTTP client: {}",
                transport_message(e)
            ))
        })?;
        Ok(Http {
            client,
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    fn count(&self, service: &str, method: &Method) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        *calls.entry(format!("{service} {method}")).or_default() += 1;
    }

    /// Sends `call`, retrying what is worth retrying; any status is an `Ok` answer.
    async fn send(&self, call: &Call<'_>) -> Result<Answer, OsError> {
        let mut retry = 0;
        loop {
            self.count(call.service, &call.method);
            let started = Instant::now();
            let mut builder = self
                .client
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if let Some(body) = call.body {
                builder = builder.json(body);
            }
            let result = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    response.bytes().await.map(|body| (status, headers, body))
                }
                Err(error) => Err(error),
            };
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok((status, headers, body)) => {
                    let request_id = request_id(&headers);
                    tracing::debug!(
                        service = call.service,
                        method = %call.method,
                        path = call.path,
                        status = status.as_u16(),
                        elapsed_ms,
                        request_id = request_id.as_deref().unwrap_or("-"),
                        retry,
                        "OpenStack request"
                    );
                    if retry < MAX_RETRIES && retryable_status(status, &call.method, &body) {
                        retry += 1;
                        tokio::time::sleep(backoff(retry)).await;
                        continue;
                    }
                    return Ok(Answer {
                        status,
                        headers,
                        body: body.to_vec(),
                        request_id,
                    });
                }
                Err(error) => {
                    let retryable = retryable_transport(&error, &call.method);
                    let message = transport_message(error);
                    tracing::debug!(
                        service = call.service,
                        method = %call.method,
                        path = call.path,
                        elapsed_ms,
                        error = %message,
                        retry,
                        "OpenStack request failed"
                    );
                    if retry < MAX_RETRIES && retryable {
                        retry += 1;
                        tokio::time::sleep(backoff(retry)).await;
                        continue;
                    }
                    return Err(OsError::local(
                        call.service,
                        call.method.as_str(),
                        call.path,
                        message,
                    ));
                }
            }
        }
    }
}

// --- Keystone --------------------------------------------------------------------------

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    user: IdRef,
    #[serde(default)]
    project: Option<IdRef>,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct IdRef {
    id: String,
}

fn domain_ref(id: &Option<String>, name: &Option<String>) -> Option<Value> {
    match (id, name) {
        (Some(id), _) => Some(json!({ "id": id })),
        (None, Some(name)) => Some(json!({ "name": name })),
        (None, None) => None,
    }
}

fn user_ref(
    username: &Option<String>,
    user_id: &Option<String>,
    domain_id: &Option<String>,
    domain_name: &Option<String>,
) -> Result<Value, String> {
    if let Some(id) = user_id {
        return Ok(json!({ "id": id }));
    }
    let Some(name) = username else {
        return Err("a username or user id is needed".to_owned());
    };
    let domain = domain_ref(domain_id, domain_name).ok_or_else(|| {
        format!("user '{name}' is given by name: a user domain (id or name) is needed")
    })?;
    Ok(json!({ "name": name, "domain": domain }))
}

fn scope_body(scope: &Scope) -> Result<Option<Value>, String> {
    if let Some(id) = &scope.project_id {
        return Ok(Some(json!({ "project": { "id": id } })));
    }
    if let Some(name) = &scope.project_name {
        let domain =
            domain_ref(&scope.project_domain_id, &scope.project_domain_name).ok_or_else(|| {
                format!(
                    "project '{name}' is given by name: a project domain (id or name) is needed"
                )
            })?;
        return Ok(Some(
            json!({ "project": { "name": name, "domain": domain } }),
        ));
    }
    Ok(domain_ref(&scope.domain_id, &scope.domain_name).map(|d| json!({ "domain": d })))
}

/// The body of `POST /v3/auth/tokens` for `auth`.
fn auth_body(auth: &Auth) -> Result<Value, String> {
    let (identity, scope) = match auth {
        Auth::Password {
            username,
            user_id,
            password,
            user_domain_name,
            user_domain_id,
            scope,
        } => {
            let mut user = user_ref(username, user_id, user_domain_id, user_domain_name)?;
            user["password"] = json!(password.expose());
            (
                json!({ "methods": ["password"], "password": { "user": user } }),
                scope_body(scope)?,
            )
        }
        Auth::ApplicationCredential {
            id,
            name,
            secret,
            username,
            user_id,
            user_domain_name,
            user_domain_id,
        } => {
            let credential = match (id, name) {
                (Some(id), _) => json!({ "id": id, "secret": secret.expose() }),
                (None, Some(name)) => json!({
                    "name": name,
                    "secret": secret.expose(),
                    "user": user_ref(username, user_id, user_domain_id, user_domain_name)?,
                }),
                (None, None) => {
                    return Err("an application credential id or name is needed".to_owned());
                }
            };
            (
                json!({
                    "methods": ["application_credential"],
                    "application_credential": credential,
                }),
                None,
            )
        }
        Auth::Token { token, scope } => (
            json!({ "methods": ["token"], "token": { "id": token.expose() } }),
            scope_body(scope)?,
        ),
    };
    let mut body = json!({ "auth": { "identity": identity } });
    if let Some(scope) = scope {
        body["auth"]["scope"] = scope;
    }
    Ok(body)
}

/// A token's expiry. Keystone writes `2026-11-25T07:35:26.000000Z`, but a token from
/// an application credential expires when the credential does, written as it was given
/// on creation: maybe without a zone (then UTC) or without fractions.
fn parse_expires_at(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let naive = text.trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|time| time.and_utc())
}

/// A new token for `config`: `POST /auth/tokens`; or, for a token to be used as it is
/// (no scope asked), `GET /auth/tokens` to read its catalog.
async fn authenticate(http: &Http, config: &CloudConfig) -> Result<Token, OsError> {
    let path = "/auth/tokens";
    let url = Url::parse(&format!("{}{path}", config.auth_url))
        .map_err(|e| OsError::local("identity", "POST", path, format!("bad auth_url: {e}")))?;
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

    let reuse = match &config.auth {
        Auth::Token { token, scope } if scope.is_empty() => Some(token.clone()),
        _ => None,
    };
    let body;
    let call = match &reuse {
        Some(token) => {
            let value = token_header(token)?;
            headers.insert(X_AUTH_TOKEN, value.clone());
            headers.insert(X_SUBJECT_TOKEN, value);
            Call {
                service: "identity",
                method: Method::GET,
                url,
                path,
                body: None,
                headers,
            }
        }
        None => {
            body = auth_body(&config.auth)
                .map_err(|message| OsError::local("identity", "POST", path, message))?;
            Call {
                service: "identity",
                method: Method::POST,
                url,
                path,
                body: Some(&body),
                headers,
            }
        }
    };
    let answer = http.send(&call).await?;
    if !answer.status.is_success() {
        return Err(answer.error(&call));
    }
    let bad = |message: String| OsError::local("identity", call.method.as_str(), path, message);
    let value = match reuse {
        Some(token) => token,
        None => answer
            .headers
            .get(&X_SUBJECT_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(Secret::new)
            .ok_or_else(|| bad("the answer has no X-Subject-Token header".to_owned()))?,
    };
    let info = serde_json::from_slice::<TokenBody>(&answer.body)
        .map_err(|e| bad(format!("unexpected token body: {e}")))?
        .token;
    let expires_at = parse_expires_at(&info.expires_at)
        .ok_or_else(|| bad(format!("unexpected expires_at '{}'", info.expires_at)))?;
    let life = expires_at - Utc::now();
    let margin = (life / 2).clamp(TimeDelta::zero(), RENEW_BEFORE);
    Ok(Token {
        value,
        expires_at,
        renew_at: expires_at - margin,
        user_id: info.user.id,
        project_id: info.project.map(|p| p.id),
        catalog: info.catalog,
    })
}

#[cfg(test)]
mod tests;

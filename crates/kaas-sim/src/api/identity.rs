//! Keystone v3: tokens (password, application credential and token methods, scoped
//! to the one project), their validation, the catalog, and the user's application
//! credentials.

use std::path::Path;
use std::sync::PoisonError;

use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use kaas_cloud::{Credential, ResourceKind, ResourceRequest, ResourceSpec};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiResult, Fault, Query, Service, Shared, created, query_value, reply, str_field};
use crate::rest_state::RestState;
use crate::state::{CreateOptions, Key, SimResource};

const SERVICE: Service = Service::Identity;

/// How long a token lives (Keystone's default).
const TOKEN_LIFE: Duration = Duration::hours(1);

/// The one user and project of the simulated cloud. Its `Debug` leaves the password
/// out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub domain_id: String,
    pub domain_name: String,
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub password: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user_name", &self.user_name)
            .field("user_id", &self.user_id)
            .field("project_name", &self.project_name)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// 32 hex digits, as Keystone's ids are.
fn hex_id(rng: &mut impl Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Identity {
    /// A user `kaas` in project `kaas` of the `Default` domain, with new ids and a new
    /// random password.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        Self {
            domain_id: "default".to_owned(),
            domain_name: "Default".to_owned(),
            user_id: hex_id(&mut rng),
            user_name: "kaas".to_owned(),
            project_id: hex_id(&mut rng),
            project_name: "kaas".to_owned(),
            password: hex_id(&mut rng),
        }
    }

    /// The identity kept in `path` (JSON, mode 0600), made and written there the first
    /// time, so that the cloud's user, project and password outlive restarts.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                let bytes = serde_json::to_vec_pretty(&identity).map_err(std::io::Error::other)?;
                write_private(path, &bytes)?;
                Ok(identity)
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes `bytes` to `path` readable by its owner only, through a temporary file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

/// What a token stands for.
#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    pub expires_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub methods: Vec<String>,
    /// Scoped to the project (else unscoped: no catalog).
    pub scoped: bool,
    /// The application credential it was made from: id, name, restricted.
    pub credential: Option<(String, String, bool)>,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            get(validate).head(check).post(issue).delete(revoke),
        )
        .route(
            "/v3/users/{user_id}/application_credentials",
            get(list_credentials).post(create_credential),
        )
        .route(
            "/v3/users/{user_id}/application_credentials/{id}",
            get(get_credential).delete(delete_credential),
        )
}

fn version_doc(api: &super::Api) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{ "rel": "self", "href": format!("{}/v3/", api.base_url) }],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.identity-v3+json" }],
    })
}

async fn versions(State(api): State<Shared>) -> Response {
    reply(
        StatusCode::MULTIPLE_CHOICES,
        json!({ "versions": { "values": [version_doc(&api)] } }),
    )
}

async fn version(State(api): State<Shared>) -> Response {
    reply(StatusCode::OK, json!({ "version": version_doc(&api) }))
}

fn catalog(api: &super::Api) -> Value {
    let region = &api.sim.config().region;
    let base = &api.base_url;
    let services = [
        ("identity", "keystone", format!("{base}/v3")),
        ("compute", "nova", format!("{base}/compute/v2.1")),
        ("network", "neutron", format!("{base}/network")),
        ("load-balancer", "octavia", format!("{base}/load-balancer")),
        ("image", "glance", format!("{base}/image")),
    ];
    let entries: Vec<Value> = services
        .iter()
        .enumerate()
        .map(|(i, (service_type, name, url))| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .enumerate()
                .map(|(j, interface)| {
                    json!({
                        "id": format!("{:032x}", (i + 1) * 16 + j),
                        "interface": interface,
                        "region_id": region,
                        "region": region,
                        "url": url,
                    })
                })
                .collect();
            json!({
                "id": format!("{:032x}", i + 1),
                "type": service_type,
                "name": name,
                "endpoints": endpoints,
            })
        })
        .collect();
    json!(entries)
}

fn keystone_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn token_body(api: &super::Api, record: &TokenRecord) -> Value {
    let id = &api.config.identity;
    let domain = json!({ "id": id.domain_id, "name": id.domain_name });
    let mut token = json!({
        "methods": record.methods,
        "user": {
            "id": id.user_id, "name": id.user_name, "domain": domain,
            "password_expires_at": null,
        },
        "audit_ids": [],
        "expires_at": keystone_time(record.expires_at),
        "issued_at": keystone_time(record.issued_at),
    });
    if record.scoped {
        token["project"] =
            json!({ "id": id.project_id, "name": id.project_name, "domain": domain });
        token["is_domain"] = json!(false);
        token["roles"] = json!([
            { "id": "0000000000000000000000000000000a", "name": "member" },
            { "id": "0000000000000000000000000000000b", "name": "reader" },
            { "id": "0000000000000000000000000000000c", "name": "load-balancer_member" },
        ]);
        token["catalog"] = catalog(api);
    }
    if let Some((cred_id, name, restricted)) = &record.credential {
        token["application_credential"] =
            json!({ "id": cred_id, "name": name, "restricted": restricted });
    }
    json!({ "token": token })
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `user` (`{id}` or `{name, domain: {id | name}}`) is the cloud's user.
fn is_our_user(api: &super::Api, user: &Value) -> bool {
    let id = &api.config.identity;
    if let Some(user_id) = str_field(user, "id") {
        return user_id == id.user_id;
    }
    let domain = &user["domain"];
    let domain_ok = str_field(domain, "id").is_some_and(|d| d == id.domain_id)
        || str_field(domain, "name").is_some_and(|d| d == id.domain_name);
    str_field(user, "name") == Some(id.user_name.as_str()) && domain_ok
}

/// Whether the request's scope is the cloud's project (`None`: no scope asked).
fn scope_ok(api: &super::Api, scope: &Value) -> Option<bool> {
    let project = scope.get("project")?;
    let id = &api.config.identity;
    if let Some(project_id) = str_field(project, "id") {
        return Some(project_id == id.project_id);
    }
    let domain = &project["domain"];
    let domain_ok = str_field(domain, "id").is_some_and(|d| d == id.domain_id)
        || str_field(domain, "name").is_some_and(|d| d == id.domain_name);
    Some(str_field(project, "name") == Some(id.project_name.as_str()) && domain_ok)
}

/// The application credential `credential` names, if its secret is right.
fn credential_by(api: &super::Api, credential: &Value) -> Option<(String, String, bool)> {
    let secret = str_field(credential, "secret")?;
    let by_id = str_field(credential, "id");
    let by_name = str_field(credential, "name");
    if by_id.is_none() && !credential.get("user").is_some_and(|u| is_our_user(api, u)) {
        return None;
    }
    let hash = sha256_hex(secret);
    api.sim.read(|state, now| {
        state
            .indexed(&Key::Kind(ResourceKind::ApplicationCredential), now)
            .filter(|r| !r.is_deleting())
            .find(|r| match by_id {
                Some(id) => r.id == id,
                None => by_name == Some(r.name.as_str()),
            })
            .filter(|r| r.rest.secret_sha256.as_deref() == Some(hash.as_str()))
            .map(|r| (r.id.clone(), r.name.clone(), !unrestricted(r)))
    })
}

fn unrestricted(r: &SimResource) -> bool {
    r.rest
        .credential
        .as_ref()
        .and_then(|c| c["unrestricted"].as_bool())
        .unwrap_or(false)
}

/// `POST /v3/auth/tokens`.
async fn issue(State(api): State<Shared>, Json(body): Json<Value>) -> ApiResult {
    let auth = &body["auth"];
    let identity = &auth["identity"];
    let methods = super::string_list(identity, "methods");
    let method = methods.first().map(String::as_str).unwrap_or_default();
    let denied = || Fault::unauthorized(SERVICE);
    let scope = scope_ok(&api, &auth["scope"]);
    if scope == Some(false) || auth["scope"].get("domain").is_some() {
        return Err(denied());
    }
    let (scoped, credential) = match method {
        "password" => {
            let user = &identity["password"]["user"];
            let password_ok =
                str_field(user, "password") == Some(api.config.identity.password.as_str());
            if !(is_our_user(&api, user) && password_ok) {
                return Err(denied());
            }
            (scope.is_some(), None)
        }
        "application_credential" => {
            let credential =
                credential_by(&api, &identity["application_credential"]).ok_or_else(denied)?;
            (true, Some(credential))
        }
        "token" => {
            let given = str_field(&identity["token"], "id").unwrap_or_default();
            let record = api.token(given).ok_or_else(denied)?;
            (scope.is_some() || record.scoped, record.credential.clone())
        }
        _ => {
            return Err(Fault::bad_request(
                SERVICE,
                format!("Unsupported authentication method: '{method}'."),
            ));
        }
    };
    let now = Utc::now();
    let record = TokenRecord {
        expires_at: now + TOKEN_LIFE,
        issued_at: now,
        methods: vec![method.to_owned()],
        scoped,
        credential,
    };
    let value: String = {
        let bytes: [u8; 32] = rand::rng().random();
        format!(
            "gAAAAA{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    };
    let body = token_body(&api, &record);
    {
        let mut tokens = api.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, t| t.expires_at > now);
        tokens.insert(value.clone(), record);
    }
    let mut response = reply(StatusCode::CREATED, body);
    let header = HeaderValue::from_str(&value).map_err(|_| denied())?;
    response.headers_mut().insert("x-subject-token", header);
    Ok(response)
}

fn subject(api: &super::Api, headers: &HeaderMap) -> Result<(String, TokenRecord), Fault> {
    let value = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match api.token(&value) {
        Some(record) => Ok((value, record)),
        None => Err(Fault::not_found(
            SERVICE,
            "NotFound",
            "Could not find token.".to_owned(),
        )),
    }
}

/// `GET /v3/auth/tokens`: the subject token's body.
async fn validate(State(api): State<Shared>, headers: HeaderMap) -> ApiResult {
    let (value, record) = subject(&api, &headers)?;
    let mut response = reply(StatusCode::OK, token_body(&api, &record));
    if let Ok(header) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("x-subject-token", header);
    }
    Ok(response)
}

async fn check(State(api): State<Shared>, headers: HeaderMap) -> Response {
    match subject(&api, &headers) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn revoke(State(api): State<Shared>, headers: HeaderMap) -> ApiResult {
    let (value, _) = subject(&api, &headers)?;
    api.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&value);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- application credentials -------------------------------------------------------

fn our_user(api: &super::Api, user_id: &str) -> Result<(), Fault> {
    if user_id == api.config.identity.user_id {
        Ok(())
    } else {
        Err(Fault::not_found(
            SERVICE,
            "NotFound",
            format!("Could not find user: {user_id}."),
        ))
    }
}

fn view_credential(api: &super::Api, r: &SimResource) -> Value {
    let given = r.rest.credential.clone().unwrap_or_else(|| json!({}));
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.rest.description,
        "user_id": api.config.identity.user_id,
        "project_id": api.project_id(),
        "expires_at": null,
        "unrestricted": unrestricted(r),
        "roles": given.get("roles").cloned().unwrap_or_else(|| json!([])),
        "access_rules": [],
        "created_at": created(r),
        "links": { "self": format!(
            "{}/v3/users/{}/application_credentials/{}",
            api.base_url, api.config.identity.user_id, r.id
        )},
    })
}

fn credential_not_found(id: &str) -> Fault {
    Fault::not_found(
        SERVICE,
        "NotFound",
        format!("Could not find application credential: {id}."),
    )
}

async fn list_credentials(
    State(api): State<Shared>,
    UrlPath(user_id): UrlPath<String>,
    UrlQuery(query): UrlQuery<Query>,
) -> ApiResult {
    our_user(&api, &user_id)?;
    let name = query_value(&query, "name");
    let items: Vec<Value> = api.sim.read(|state, now| {
        state
            .indexed(&Key::Kind(ResourceKind::ApplicationCredential), now)
            .filter(|r| !r.is_deleting())
            .filter(|r| name.is_none_or(|n| n == r.name))
            .map(|r| view_credential(&api, r))
            .collect()
    });
    Ok(reply(
        StatusCode::OK,
        json!({
            "application_credentials": items,
            "links": { "self": format!("{}/v3/users/{user_id}/application_credentials", api.base_url), "previous": null, "next": null },
        }),
    ))
}

async fn get_credential(
    State(api): State<Shared>,
    UrlPath((user_id, id)): UrlPath<(String, String)>,
) -> ApiResult {
    our_user(&api, &user_id)?;
    let found = api.sim.read(|state, now| {
        state
            .get(ResourceKind::ApplicationCredential, &id, now)
            .filter(|r| !r.is_deleting())
            .map(|r| view_credential(&api, r))
    });
    let credential = found.ok_or_else(|| credential_not_found(&id))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "application_credential": credential }),
    ))
}

async fn create_credential(
    State(api): State<Shared>,
    Extension(token): Extension<TokenRecord>,
    UrlPath(user_id): UrlPath<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    our_user(&api, &user_id)?;
    if token
        .credential
        .as_ref()
        .is_some_and(|(_, _, restricted)| *restricted)
    {
        return Err(Fault::new(
            SERVICE,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Using method 'application_credential' is not allowed for managing additional \
             application credentials.",
        ));
    }
    let given = super::body_object(SERVICE, &body, "application_credential")?;
    let name = str_field(given, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Fault::bad_request(SERVICE, "'name' is a required property"))?
        .to_owned();
    let secret = match str_field(given, "secret") {
        Some(secret) => secret.to_owned(),
        None => {
            let bytes: [u8; 32] = rand::rng().random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let roles: Vec<Value> = given
        .get("roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| {
            vec![
                json!({ "id": "0000000000000000000000000000000a", "name": "member" }),
                json!({ "id": "0000000000000000000000000000000c", "name": "load-balancer_member" }),
            ]
        });
    let role_names = roles
        .iter()
        .filter_map(|r| str_field(r, "name"))
        .map(str::to_owned)
        .collect();
    let description = str_field(given, "description").map(str::to_owned);
    let unrestricted = given["unrestricted"].as_bool().unwrap_or(false);
    let request = ResourceRequest {
        name: name.clone(),
        tags: Vec::new(),
        spec: ResourceSpec::ApplicationCredential {
            secret: Credential(secret.clone()),
            roles: role_names,
            description: description.clone().unwrap_or_default(),
        },
    };
    let options = CreateOptions {
        server_port: None,
        rest: RestState {
            description,
            secret_sha256: Some(sha256_hex(&secret)),
            credential: Some(json!({ "roles": roles, "unrestricted": unrestricted })),
            ..RestState::default()
        },
    };
    let duplicate = api.sim.read(|state, now| {
        state
            .indexed(&Key::Kind(ResourceKind::ApplicationCredential), now)
            .any(|r| !r.is_deleting() && r.name == name)
    });
    if duplicate {
        return Err(Fault::conflict(
            SERVICE,
            format!(
                "Conflict occurred attempting to store application_credential - Duplicate \
                 name, {name}."
            ),
        ));
    }
    let limit = api.sim.config().quotas.application_credential;
    let created = api
        .sim
        .create_rest(&request, &options)
        .map_err(|e| match e {
            kaas_cloud::CloudError::QuotaExceeded { .. } => Fault::new(
                SERVICE,
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "Unable to create additional application credentials, maximum of {limit} \
                 already exceeded for user."
                ),
            ),
            other => Fault::from_cloud(SERVICE, other),
        })?;
    let mut view = api
        .sim
        .read(|state, now| {
            state
                .get(ResourceKind::ApplicationCredential, &created.id, now)
                .map(|r| view_credential(&api, r))
        })
        .ok_or_else(|| credential_not_found(&created.id))?;
    view["secret"] = json!(secret);
    Ok(reply(
        StatusCode::CREATED,
        json!({ "application_credential": view }),
    ))
}

async fn delete_credential(
    State(api): State<Shared>,
    UrlPath((user_id, id)): UrlPath<(String, String)>,
) -> ApiResult {
    our_user(&api, &user_id)?;
    api.sim
        .delete_rest(ResourceKind::ApplicationCredential, &id)
        .map_err(|e| Fault::from_cloud(SERVICE, e))?
        .then_some(())
        .ok_or_else(|| credential_not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

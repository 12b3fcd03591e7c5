//! Octavia: load balancers on a VIP port, their listeners, pools, members and health
//! monitors. The children's provisioning status follows the load balancer's; a child
//! is made only while the load balancer is `ACTIVE`, as Octavia takes one change at a
//! time.

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kaas_cloud::{
    CloudError, PoolMember, ResourceKind, ResourceRequest, ResourceSpec, ResourceStatus,
};
use serde_json::{Value, json};

use super::{
    ApiResult, Fault, Query, Service, Shared, body_object, created, first_tag, matches, new_id,
    page, query_value, reply, str_field, string_list, time,
};
use crate::rest_state::RestState;
use crate::state::{CreateOptions, Key, SimResource, State as SimState};

const SERVICE: Service = Service::LoadBalancer;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/load-balancer", get(versions))
        .route("/load-balancer/", get(versions))
        .route("/load-balancer/v2", get(version))
        .route("/load-balancer/v2/", get(version))
        .route(
            "/load-balancer/v2/lbaas/loadbalancers",
            get(list_load_balancers).post(create_load_balancer),
        )
        .route(
            "/load-balancer/v2/lbaas/loadbalancers/{id}",
            get(get_load_balancer).delete(delete_load_balancer),
        )
        .route(
            "/load-balancer/v2/lbaas/{children}",
            get(list_children).post(create_child),
        )
        .route("/load-balancer/v2/lbaas/{children}/{id}", get(get_child))
        .route(
            "/load-balancer/v2/lbaas/pools/{id}/members",
            get(list_members).put(replace_members),
        )
}

fn version_doc(api: &super::Api) -> Value {
    json!({
        "id": "v2.0",
        "status": "CURRENT",
        "updated": "2023-01-01T00:00:00Z",
        "links": [{ "rel": "self", "href": format!("{}/load-balancer/v2", api.base_url) }],
    })
}

async fn versions(State(api): State<Shared>) -> Response {
    reply(StatusCode::OK, json!({ "versions": [version_doc(&api)] }))
}

async fn version(State(api): State<Shared>) -> Response {
    reply(StatusCode::OK, json!({ "version": version_doc(&api) }))
}

fn provisioning(r: &SimResource, now: u64) -> &'static str {
    match r.status(now) {
        ResourceStatus::Pending => "PENDING_CREATE",
        ResourceStatus::Active => "ACTIVE",
        ResourceStatus::Deleting => "PENDING_DELETE",
        ResourceStatus::Error { .. } => "ERROR",
    }
}

fn operating(r: &SimResource, now: u64) -> &'static str {
    if r.status(now) == ResourceStatus::Active {
        "ONLINE"
    } else {
        "OFFLINE"
    }
}

fn ids(children: &[Value]) -> Vec<Value> {
    children.iter().map(|c| json!({ "id": c["id"] })).collect()
}

fn view(api: &super::Api, state: &SimState, r: &SimResource, now: u64) -> Value {
    let ResourceSpec::LoadBalancer {
        subnet_id,
        vip_port_id,
        ..
    } = &r.spec
    else {
        return json!({});
    };
    let network = state
        .get(ResourceKind::Subnet, subnet_id, now)
        .and_then(|s| match &s.spec {
            ResourceSpec::Subnet { network_id, .. } => Some(network_id.clone()),
            _ => None,
        });
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.rest.description.clone().unwrap_or_default(),
        "provisioning_status": provisioning(r, now),
        "operating_status": operating(r, now),
        "vip_address": r.address,
        "vip_port_id": vip_port_id,
        "vip_subnet_id": subnet_id,
        "vip_network_id": network,
        "vip_qos_policy_id": null,
        "listeners": ids(&r.rest.listeners),
        "pools": ids(&r.rest.pools),
        "tags": r.tags,
        "provider": "amphora",
        "flavor_id": null,
        "availability_zone": null,
        "admin_state_up": true,
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "created_at": created(r),
        "updated_at": created(r),
    })
}

fn lb_not_found(id: &str) -> Fault {
    Fault::not_found(
        SERVICE,
        "NotFound",
        format!("Load Balancer {id} could not be found."),
    )
}

async fn list_load_balancers(
    State(api): State<Shared>,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> Response {
    let items: Vec<Value> = api.sim.read(|state, now| {
        let key = match first_tag(&query) {
            Some(tag) => Key::Tag(ResourceKind::LoadBalancer, tag),
            None => Key::Kind(ResourceKind::LoadBalancer),
        };
        state
            .indexed(&key, now)
            .filter(|r| r.kind() == ResourceKind::LoadBalancer)
            .map(|r| view(&api, state, r, now))
            .filter(|v| matches(v, &query))
            .collect()
    });
    let url = format!("{}{}", api.base_url, uri.path());
    reply(StatusCode::OK, page(items, &query, "loadbalancers", &url))
}

async fn get_load_balancer(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let found = api.sim.read(|state, now| {
        state
            .get(ResourceKind::LoadBalancer, &id, now)
            .map(|r| view(&api, state, r, now))
    });
    let lb = found.ok_or_else(|| lb_not_found(&id))?;
    Ok(reply(StatusCode::OK, json!({ "loadbalancer": lb })))
}

fn quota_or(error: CloudError) -> Fault {
    match error {
        CloudError::QuotaExceeded { .. } => Fault::new(
            SERVICE,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Quota has been met for resources: Load Balancer",
        ),
        other => Fault::from_cloud(SERVICE, other),
    }
}

async fn create_load_balancer(State(api): State<Shared>, Json(body): Json<Value>) -> ApiResult {
    let given = body_object(SERVICE, &body, "loadbalancer")?;
    let vip_port_id = str_field(given, "vip_port_id").ok_or_else(|| {
        Fault::bad_request(
            SERVICE,
            "The simulated cloud's load balancers are made on a VIP port (vip_port_id).",
        )
    })?;
    let subnet_id = match str_field(given, "vip_subnet_id") {
        Some(subnet) => subnet.to_owned(),
        None => api
            .sim
            .read(
                |state, now| match state.get(ResourceKind::Port, vip_port_id, now) {
                    Some(SimResource {
                        spec: ResourceSpec::Port { subnet_id, .. },
                        ..
                    }) => Some(subnet_id.clone()),
                    _ => None,
                },
            )
            .ok_or_else(|| {
                Fault::bad_request(
                    SERVICE,
                    format!("Validation failure: VIP port {vip_port_id} not found."),
                )
            })?,
    };
    let request = ResourceRequest {
        name: str_field(given, "name").unwrap_or_default().to_owned(),
        tags: string_list(given, "tags"),
        spec: ResourceSpec::LoadBalancer {
            subnet_id,
            vip_port_id: vip_port_id.to_owned(),
            port: 0,
        },
    };
    let options = CreateOptions {
        server_port: None,
        rest: RestState {
            description: str_field(given, "description").map(str::to_owned),
            ..RestState::default()
        },
    };
    let created = api.sim.create_rest(&request, &options).map_err(quota_or)?;
    let lb = api
        .sim
        .read(|state, now| {
            state
                .get(ResourceKind::LoadBalancer, &created.id, now)
                .map(|r| view(&api, state, r, now))
        })
        .ok_or_else(|| lb_not_found(&created.id))?;
    Ok(reply(StatusCode::CREATED, json!({ "loadbalancer": lb })))
}

async fn delete_load_balancer(
    State(api): State<Shared>,
    Path(id): Path<String>,
    UrlQuery(query): UrlQuery<Query>,
) -> ApiResult {
    let cascade = query_value(&query, "cascade").is_some_and(|c| c.eq_ignore_ascii_case("true"));
    let has_children = api.sim.read(|state, now| {
        state
            .get(ResourceKind::LoadBalancer, &id, now)
            .is_some_and(|r| !r.rest.listeners.is_empty() || !r.rest.pools.is_empty())
    });
    if has_children && !cascade {
        return Err(Fault::conflict(
            SERVICE,
            format!("Cannot delete Load Balancer {id} - it has children"),
        ));
    }
    let existed = api
        .sim
        .delete_rest(ResourceKind::LoadBalancer, &id)
        .map_err(|e| Fault::from_cloud(SERVICE, e))?;
    if !existed {
        return Err(lb_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- listeners, pools, health monitors ---------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Listener,
    Pool,
    HealthMonitor,
}

impl Child {
    fn parse(path: &str) -> ApiResult<Self> {
        match path {
            "listeners" => Ok(Self::Listener),
            "pools" => Ok(Self::Pool),
            "healthmonitors" => Ok(Self::HealthMonitor),
            _ => Err(Fault::not_found(
                SERVICE,
                "NotFound",
                "The resource could not be found.",
            )),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Listener => "listener",
            Self::Pool => "pool",
            Self::HealthMonitor => "healthmonitor",
        }
    }

    fn list_key(self) -> &'static str {
        match self {
            Self::Listener => "listeners",
            Self::Pool => "pools",
            Self::HealthMonitor => "healthmonitors",
        }
    }

    fn human(self) -> &'static str {
        match self {
            Self::Listener => "Listener",
            Self::Pool => "Pool",
            Self::HealthMonitor => "Health Monitor",
        }
    }

    fn of(self, rest: &RestState) -> &Vec<Value> {
        match self {
            Self::Listener => &rest.listeners,
            Self::Pool => &rest.pools,
            Self::HealthMonitor => &rest.health_monitors,
        }
    }

    fn of_mut(self, rest: &mut RestState) -> &mut Vec<Value> {
        match self {
            Self::Listener => &mut rest.listeners,
            Self::Pool => &mut rest.pools,
            Self::HealthMonitor => &mut rest.health_monitors,
        }
    }

    fn not_found(self, id: &str) -> Fault {
        Fault::not_found(
            SERVICE,
            "NotFound",
            format!("{} {id} could not be found.", self.human()),
        )
    }
}

/// A child as Octavia shows it: its record, its load balancer, its statuses.
fn child_view(api: &super::Api, child: Child, lb: &SimResource, record: &Value, now: u64) -> Value {
    let mut v = record.clone();
    v["provisioning_status"] = json!(provisioning(lb, now));
    v["operating_status"] = json!(operating(lb, now));
    v["project_id"] = json!(api.project_id());
    v["tenant_id"] = json!(api.project_id());
    v["loadbalancers"] = json!([{ "id": lb.id }]);
    match child {
        Child::Pool => {
            v["members"] = json!(
                lb.members
                    .iter()
                    .map(|m| json!({ "id": member_id(m) }))
                    .collect::<Vec<_>>()
            );
            if let Some(listener) = str_field(record, "listener_id") {
                v["listeners"] = json!([{ "id": listener }]);
            }
        }
        Child::HealthMonitor => {
            v["pools"] = json!([{ "id": record["pool_id"] }]);
        }
        Child::Listener => {}
    }
    v
}

fn member_id(m: &PoolMember) -> String {
    format!("member-{}-{}", m.address, m.port)
}

/// The load balancer that holds `child`'s record `id`.
fn holder<'a>(state: &'a SimState, child: Child, id: &str, now: u64) -> Option<&'a SimResource> {
    state
        .indexed(&Key::Kind(ResourceKind::LoadBalancer), now)
        .find(|lb| {
            child
                .of(&lb.rest)
                .iter()
                .any(|c| str_field(c, "id") == Some(id))
        })
}

async fn list_children(
    State(api): State<Shared>,
    Path(children): Path<String>,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> ApiResult {
    let child = Child::parse(&children)?;
    let lb_id = query_value(&query, "loadbalancer_id").map(str::to_owned);
    let filters: Query = query
        .iter()
        .filter(|(k, _)| k != "loadbalancer_id")
        .cloned()
        .collect();
    let api_ref: &super::Api = &api;
    let items: Vec<Value> = api.sim.read(|state, now| {
        let lbs: Vec<&SimResource> = match &lb_id {
            Some(id) => state
                .get(ResourceKind::LoadBalancer, id, now)
                .into_iter()
                .collect(),
            None => state
                .indexed(&Key::Kind(ResourceKind::LoadBalancer), now)
                .collect(),
        };
        lbs.into_iter()
            .flat_map(|lb| {
                child
                    .of(&lb.rest)
                    .iter()
                    .map(move |record| child_view(api_ref, child, lb, record, now))
            })
            .filter(|v| matches(v, &filters))
            .collect()
    });
    let url = format!("{}{}", api.base_url, uri.path());
    Ok(reply(
        StatusCode::OK,
        page(items, &query, child.list_key(), &url),
    ))
}

async fn get_child(
    State(api): State<Shared>,
    Path((children, id)): Path<(String, String)>,
) -> ApiResult {
    let child = Child::parse(&children)?;
    let found = api.sim.read(|state, now| {
        let lb = holder(state, child, &id, now)?;
        let record = child
            .of(&lb.rest)
            .iter()
            .find(|c| str_field(c, "id") == Some(id.as_str()))?;
        Some(child_view(&api, child, lb, record, now))
    });
    let item = found.ok_or_else(|| child.not_found(&id))?;
    Ok(reply(StatusCode::OK, json!({ child.key(): item })))
}

/// Octavia's refusal of a change while the load balancer is not `ACTIVE`.
fn require_active(lb: &SimResource, now: u64) -> Result<(), Fault> {
    let state = provisioning(lb, now);
    if state == "ACTIVE" {
        return Ok(());
    }
    Err(Fault::conflict(
        SERVICE,
        format!("Invalid state {state} of loadbalancer resource {}", lb.id),
    ))
}

async fn create_child(
    State(api): State<Shared>,
    Path(children): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let child = Child::parse(&children)?;
    let given = body_object(SERVICE, &body, child.key())?.clone();
    let answer = api.sim.mutate_with(
        |state, rng, now| -> Result<Value, Fault> {
            // The load balancer this child goes on, and the parent record it names.
            let (lb_id, parent) = match child {
                Child::Listener => {
                    let lb = str_field(&given, "loadbalancer_id").unwrap_or_default();
                    (lb.to_owned(), None)
                }
                Child::Pool => match str_field(&given, "listener_id") {
                    Some(listener) => {
                        let lb = holder(state, Child::Listener, listener, now)
                            .ok_or_else(|| Child::Listener.not_found(listener))?;
                        (lb.id.clone(), Some(listener.to_owned()))
                    }
                    None => (
                        str_field(&given, "loadbalancer_id")
                            .unwrap_or_default()
                            .to_owned(),
                        None,
                    ),
                },
                Child::HealthMonitor => {
                    let pool = str_field(&given, "pool_id").unwrap_or_default();
                    let lb = holder(state, Child::Pool, pool, now)
                        .ok_or_else(|| Child::Pool.not_found(pool))?;
                    (lb.id.clone(), Some(pool.to_owned()))
                }
            };
            let lb = state
                .get(ResourceKind::LoadBalancer, &lb_id, now)
                .ok_or_else(|| lb_not_found(&lb_id))?;
            require_active(lb, now)?;
            let id = new_id(rng);
            let field = |key: &str| given.get(key).cloned().unwrap_or(Value::Null);
            let mut record = json!({
                "id": id,
                "name": given.get("name").cloned().unwrap_or_else(|| json!("")),
                "description": given.get("description").cloned().unwrap_or_else(|| json!("")),
                "admin_state_up": true,
                "tags": given.get("tags").cloned().unwrap_or_else(|| json!([])),
                "created_at": time(now),
                "updated_at": time(now),
            });
            match child {
                Child::Listener => {
                    let port = given["protocol_port"].as_u64().unwrap_or(0);
                    if lb.rest.listeners.iter().any(|l| l["protocol_port"].as_u64() == Some(port)) {
                        return Err(Fault::conflict(
                            SERVICE,
                            format!("Another Listener on this Load Balancer is already using protocol_port {port}"),
                        ));
                    }
                    record["protocol"] = field("protocol");
                    record["protocol_port"] = json!(port);
                    record["default_pool_id"] = Value::Null;
                    record["connection_limit"] = json!(-1);
                }
                Child::Pool => {
                    record["protocol"] = field("protocol");
                    record["lb_algorithm"] = field("lb_algorithm");
                    record["listener_id"] = json!(parent);
                    record["healthmonitor_id"] = Value::Null;
                    record["session_persistence"] = Value::Null;
                }
                Child::HealthMonitor => {
                    let pool = parent.clone().unwrap_or_default();
                    let taken = lb.rest.pools.iter().any(|p| {
                        str_field(p, "id") == Some(pool.as_str())
                            && str_field(p, "healthmonitor_id").is_some_and(|h| !h.is_empty())
                    });
                    if taken {
                        return Err(Fault::conflict(
                            SERVICE,
                            format!("Pool {pool} already has a health monitor"),
                        ));
                    }
                    for key in ["type", "delay", "timeout", "max_retries"] {
                        record[key] = field(key);
                    }
                    record["max_retries_down"] = given.get("max_retries_down").cloned().unwrap_or_else(|| json!(3));
                    record["pool_id"] = json!(pool);
                }
            }
            state.resources.modify(&lb_id, |lb| {
                child.of_mut(&mut lb.rest).push(record.clone());
                match (child, &parent) {
                    (Child::Listener, _) => {
                        if let ResourceSpec::LoadBalancer { port, .. } = &mut lb.spec {
                            *port = u16::try_from(record["protocol_port"].as_u64().unwrap_or(0))
                                .unwrap_or(0);
                        }
                    }
                    (Child::Pool, Some(listener)) => {
                        for l in &mut lb.rest.listeners {
                            if str_field(l, "id") == Some(listener.as_str()) {
                                l["default_pool_id"] = json!(id);
                            }
                        }
                    }
                    (Child::HealthMonitor, Some(pool)) => {
                        for p in &mut lb.rest.pools {
                            if str_field(p, "id") == Some(pool.as_str()) {
                                p["healthmonitor_id"] = json!(id);
                            }
                        }
                    }
                    _ => {}
                }
            });
            let lb = state
                .get(ResourceKind::LoadBalancer, &lb_id, now)
                .ok_or_else(|| lb_not_found(&lb_id))?;
            Ok(child_view(&api, child, lb, &record, now))
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    Ok(reply(StatusCode::CREATED, json!({ child.key(): answer })))
}

// --- members -----------------------------------------------------------------------

fn member_view(api: &super::Api, lb: &SimResource, m: &PoolMember, now: u64) -> Value {
    let subnet = match &lb.spec {
        ResourceSpec::LoadBalancer { subnet_id, .. } => subnet_id.clone(),
        _ => String::new(),
    };
    json!({
        "id": member_id(m),
        "name": format!("{}:{}", m.address, m.port),
        "address": m.address,
        "protocol_port": m.port,
        "subnet_id": subnet,
        "weight": 1,
        "backup": false,
        "admin_state_up": true,
        "provisioning_status": provisioning(lb, now),
        "operating_status": operating(lb, now),
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "tags": [],
    })
}

async fn list_members(
    State(api): State<Shared>,
    Path(pool_id): Path<String>,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> ApiResult {
    let found = api.sim.read(|state, now| {
        let lb = holder(state, Child::Pool, &pool_id, now)?;
        Some(
            lb.members
                .iter()
                .map(|m| member_view(&api, lb, m, now))
                .filter(|v| matches(v, &query))
                .collect::<Vec<_>>(),
        )
    });
    let items = found.ok_or_else(|| Child::Pool.not_found(&pool_id))?;
    let url = format!("{}{}", api.base_url, uri.path());
    Ok(reply(StatusCode::OK, page(items, &query, "members", &url)))
}

/// `PUT /pools/{id}/members`: the pool's members become exactly these.
async fn replace_members(
    State(api): State<Shared>,
    Path(pool_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let given = body
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| Fault::bad_request(SERVICE, "Missing 'members' in the request body."))?;
    let mut members = Vec::new();
    for m in given {
        let address = str_field(m, "address").unwrap_or_default();
        let port = m["protocol_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let (false, Some(port)) = (address.is_empty(), port) else {
            return Err(Fault::bad_request(
                SERVICE,
                "Invalid input: each member needs an address and a protocol_port (1-65535).",
            ));
        };
        members.push(PoolMember {
            address: address.to_owned(),
            port,
        });
    }
    api.sim.mutate_with(
        |state, _, now| -> Result<(), Fault> {
            let lb_id = holder(state, Child::Pool, &pool_id, now)
                .map(|lb| lb.id.clone())
                .ok_or_else(|| Child::Pool.not_found(&pool_id))?;
            state
                .set_members(&lb_id, &members, now)
                .map_err(|e| Fault::from_cloud(SERVICE, e))
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    Ok(StatusCode::ACCEPTED.into_response())
}

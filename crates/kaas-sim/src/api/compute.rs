//! Nova: servers (on a port of their own or a network, with user data, metadata, tags
//! and a server group hint), flavors, the project's limits, and server groups.

use std::collections::BTreeMap;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kaas_cloud::{
    CloudError, ResourceKind, ResourceRequest, ResourceSpec, ResourceStatus, ServerGroupPolicy,
    UserData,
};
use serde_json::{Value, json};

use super::{
    ApiResult, Fault, Query, Service, Shared, body_object, created, first_tag, matches,
    microversion, page, query_value, reply, str_field, string_list, time,
};
use crate::state::{CreateOptions, Key, SimResource, State as SimState};

const SERVICE: Service = Service::Compute;
/// The newest microversion whose shapes are served.
const MAX_MICROVERSION: (u32, u32) = (2, 95);
/// Nova's limit on the (base64) user data.
const MAX_USER_DATA: usize = 65535;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/compute", get(versions))
        .route("/compute/", get(versions))
        .route("/compute/v2.1", get(version))
        .route("/compute/v2.1/", get(version))
        .route("/compute/v2.1/flavors", get(flavors))
        .route("/compute/v2.1/flavors/detail", get(flavors_detail))
        .route("/compute/v2.1/flavors/{id}", get(flavor))
        .route(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            get(extra_specs),
        )
        .route("/compute/v2.1/limits", get(limits))
        .route("/compute/v2.1/servers", get(servers).post(create_server))
        .route("/compute/v2.1/servers/detail", get(servers_detail))
        .route(
            "/compute/v2.1/servers/{id}",
            get(get_server).delete(delete_server),
        )
        .route(
            "/compute/v2.1/os-server-groups",
            get(server_groups).post(create_server_group),
        )
        .route(
            "/compute/v2.1/os-server-groups/{id}",
            get(get_server_group).delete(delete_server_group),
        )
}

fn version_doc(api: &super::Api) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": format!("{}.{}", MAX_MICROVERSION.0, MAX_MICROVERSION.1),
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{ "rel": "self", "href": format!("{}/compute/v2.1/", api.base_url) }],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1" }],
    })
}

async fn versions(State(api): State<Shared>) -> Response {
    reply(StatusCode::OK, json!({ "versions": [version_doc(&api)] }))
}

async fn version(State(api): State<Shared>) -> Response {
    reply(StatusCode::OK, json!({ "version": version_doc(&api) }))
}

// --- flavors and limits ------------------------------------------------------------

fn flavor_view(api: &super::Api, f: &kaas_cloud::Flavor, detail: bool) -> Value {
    let links = json!([{ "rel": "self", "href": format!("{}/compute/v2.1/flavors/{}", api.base_url, f.id) }]);
    if !detail {
        return json!({ "id": f.id, "name": f.name, "links": links, "description": null });
    }
    json!({
        "id": f.id,
        "name": f.name,
        "vcpus": f.vcpus,
        "ram": f.ram_mib,
        "disk": f.disk_gib,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": false,
        "swap": 0,
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": true,
        "description": null,
        "extra_specs": {},
        "links": links,
    })
}

async fn flavors(State(api): State<Shared>) -> Response {
    let all: Vec<Value> = crate::flavors::all()
        .iter()
        .map(|f| flavor_view(&api, f, false))
        .collect();
    reply(StatusCode::OK, json!({ "flavors": all }))
}

async fn flavors_detail(State(api): State<Shared>) -> Response {
    let all: Vec<Value> = crate::flavors::all()
        .iter()
        .map(|f| flavor_view(&api, f, true))
        .collect();
    reply(StatusCode::OK, json!({ "flavors": all }))
}

async fn flavor(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let flavor = crate::flavors::all()
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| Fault::not_found(SERVICE, "NotFound", crate::flavors::not_found(&id)))?;
    Ok(reply(
        StatusCode::OK,
        json!({ "flavor": flavor_view(&api, &flavor, true) }),
    ))
}

async fn extra_specs(Path(id): Path<String>) -> ApiResult {
    if !crate::flavors::offered(&id) {
        return Err(Fault::not_found(
            SERVICE,
            "NotFound",
            crate::flavors::not_found(&id),
        ));
    }
    Ok(reply(StatusCode::OK, json!({ "extra_specs": {} })))
}

fn flavor_of(server: &SimResource) -> Option<kaas_cloud::Flavor> {
    let ResourceSpec::Server { flavor, .. } = &server.spec else {
        return None;
    };
    crate::flavors::all().into_iter().find(|f| f.id == *flavor)
}

/// The project's limits: instances from the simulated quota, cores and RAM unlimited
/// (the simulation counts servers only), with what the servers use.
async fn limits(State(api): State<Shared>) -> Response {
    let quotas = api.sim.config().quotas;
    let (instances, cores, ram, groups) = api.sim.read(|state, now| {
        let servers: Vec<&SimResource> = state
            .indexed(&Key::Kind(ResourceKind::Server), now)
            .collect();
        let cores: u64 = servers
            .iter()
            .filter_map(|s| flavor_of(s))
            .map(|f| u64::from(f.vcpus))
            .sum();
        let ram: u64 = servers
            .iter()
            .filter_map(|s| flavor_of(s))
            .map(|f| f.ram_mib)
            .sum();
        (
            servers.len(),
            cores,
            ram,
            state.count(ResourceKind::ServerGroup, now),
        )
    });
    reply(
        StatusCode::OK,
        json!({ "limits": { "rate": [], "absolute": {
            "maxTotalInstances": quotas.server,
            "totalInstancesUsed": instances,
            "maxTotalCores": -1,
            "totalCoresUsed": cores,
            "maxTotalRAMSize": -1,
            "totalRAMUsed": ram,
            "maxServerGroups": quotas.server_group,
            "totalServerGroupsUsed": groups,
            "maxServerGroupMembers": -1,
            "maxServerMeta": 128,
            "maxTotalKeypairs": 100,
            "maxImageMeta": 128,
            "maxPersonality": 5,
            "maxPersonalitySize": 10240,
        }}}),
    )
}

// --- servers -----------------------------------------------------------------------

fn server_links(api: &super::Api, id: &str) -> Value {
    json!([
        { "rel": "self", "href": format!("{}/compute/v2.1/servers/{id}", api.base_url) },
        { "rel": "bookmark", "href": format!("{}/compute/servers/{id}", api.base_url) },
    ])
}

fn server_view(
    api: &super::Api,
    state: &SimState,
    r: &SimResource,
    now: u64,
    version: (u32, u32),
) -> Value {
    let ResourceSpec::Server {
        flavor,
        image,
        network_id,
        security_group_ids,
        availability_zone,
        metadata,
        ..
    } = &r.spec
    else {
        return json!({});
    };
    let status = r.status(now);
    let (status_text, vm_state, task_state, power_state) = match &status {
        ResourceStatus::Pending => ("BUILD", "building", Value::from("spawning"), 0),
        ResourceStatus::Active => ("ACTIVE", "active", Value::Null, 1),
        ResourceStatus::Deleting => ("ACTIVE", "active", Value::from("deleting"), 1),
        ResourceStatus::Error { .. } => ("ERROR", "error", Value::Null, 0),
    };
    let network_name = state
        .get(ResourceKind::Network, network_id, now)
        .map_or_else(|| network_id.clone(), |n| n.name.clone());
    let mut addresses = serde_json::Map::new();
    if let Some(address) = &r.address {
        addresses.insert(
            network_name,
            json!([{
                "version": 4,
                "addr": address,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": super::network::mac_of(&r.id),
            }]),
        );
    }
    let groups: Vec<Value> = security_group_ids
        .iter()
        .filter_map(|g| state.get(ResourceKind::SecurityGroup, g, now))
        .map(|g| json!({ "name": g.name }))
        .collect();
    let flavor_value = if version >= (2, 47) {
        match crate::flavors::all().into_iter().find(|f| f.id == *flavor) {
            Some(f) => json!({
                "original_name": f.name, "vcpus": f.vcpus, "ram": f.ram_mib, "disk": f.disk_gib,
                "ephemeral": 0, "swap": 0, "extra_specs": {},
            }),
            None => json!({ "original_name": flavor }),
        }
    } else {
        json!({ "id": flavor, "links": [] })
    };
    let mut server = json!({
        "id": r.id,
        "name": r.name,
        "status": status_text,
        "tenant_id": api.project_id(),
        "user_id": api.config.identity.user_id,
        "metadata": metadata,
        "hostId": if r.address.is_some() { format!("{:x}", r.seq + 1) } else { String::new() },
        "image": { "id": image, "links": [] },
        "flavor": flavor_value,
        "created": created(r),
        "updated": time(r.ready_at_ms.min(now).max(r.created_at_ms)),
        "addresses": addresses,
        "accessIPv4": "",
        "accessIPv6": "",
        "links": server_links(api, &r.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": availability_zone.as_deref().unwrap_or("nova"),
        "config_drive": "",
        "key_name": null,
        "OS-SRV-USG:launched_at": (status == ResourceStatus::Active).then(|| time(r.ready_at_ms)),
        "OS-SRV-USG:terminated_at": null,
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": groups,
        "locked": false,
    });
    if version >= (2, 19) {
        server["description"] = Value::Null;
    }
    if version >= (2, 26) {
        server["tags"] = json!(r.tags);
    }
    if let ResourceStatus::Error { message } = &status {
        server["fault"] =
            json!({ "code": 500, "message": message, "created": time(r.ready_at_ms) });
    }
    server
}

fn server_not_found(id: &str) -> Fault {
    Fault::not_found(
        SERVICE,
        "NotFound",
        format!("Instance {id} could not be found."),
    )
}

/// Every server that passes the query (Nova's `tags`, `tags-any`, `name` as a part
/// of the name, `status`), in creation order.
fn list_servers(api: &super::Api, query: &Query, version: (u32, u32)) -> Vec<Value> {
    let name = query_value(query, "name").map(str::to_owned);
    let status = query_value(query, "status").map(str::to_ascii_uppercase);
    let filters: Query = query
        .iter()
        .filter(|(k, _)| k.starts_with("tags") || k.starts_with("not-tags"))
        .cloned()
        .collect();
    api.sim.read(|state, now| {
        let key = match first_tag(query) {
            Some(tag) => Key::Tag(ResourceKind::Server, tag),
            None => Key::Kind(ResourceKind::Server),
        };
        state
            .indexed(&key, now)
            .filter(|r| r.kind() == ResourceKind::Server)
            .filter(|r| name.as_deref().is_none_or(|n| r.name.contains(n)))
            .filter(|r| matches(&json!({ "tags": r.tags }), &filters))
            .map(|r| server_view(api, state, r, now, version))
            .filter(|v| {
                status
                    .as_deref()
                    .is_none_or(|s| v["status"].as_str() == Some(s))
            })
            .collect()
    })
}

async fn servers(
    State(api): State<Shared>,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> Response {
    let brief: Vec<Value> = list_servers(&api, &query, MAX_MICROVERSION)
        .into_iter()
        .map(|s| json!({ "id": s["id"], "name": s["name"], "links": s["links"] }))
        .collect();
    let url = format!("{}{}", api.base_url, uri.path());
    reply(StatusCode::OK, page(brief, &query, "servers", &url))
}

async fn servers_detail(
    State(api): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> Response {
    let version = microversion(&headers, "compute", MAX_MICROVERSION);
    let all = list_servers(&api, &query, version);
    let url = format!("{}{}", api.base_url, uri.path());
    reply(StatusCode::OK, page(all, &query, "servers", &url))
}

async fn get_server(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let version = microversion(&headers, "compute", MAX_MICROVERSION);
    let found = api.sim.read(|state, now| {
        state
            .get(ResourceKind::Server, &id, now)
            .map(|r| server_view(&api, state, r, now, version))
    });
    let server = found.ok_or_else(|| server_not_found(&id))?;
    Ok(reply(StatusCode::OK, json!({ "server": server })))
}

/// Whether `text` could be base64 (Nova refuses user data that is not).
fn is_base64(text: &str) -> bool {
    let trimmed = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - trimmed.len() <= 2
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The server a `POST /servers` asks for, and the port it boots on.
fn server_request(api: &super::Api, body: &Value) -> ApiResult<(ResourceRequest, Option<String>)> {
    let server = body_object(SERVICE, body, "server")?;
    let bad = |message: String| Fault::bad_request(SERVICE, message);
    let name = str_field(server, "name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("Invalid input for field/attribute name.".to_owned()))?;
    let flavor = str_field(server, "flavorRef").ok_or_else(|| {
        bad("Invalid input for field/attribute flavorRef. Value: None.".to_owned())
    })?;
    if !crate::flavors::offered(flavor) {
        return Err(bad(format!("Flavor {flavor} could not be found.")));
    }
    let image = str_field(server, "imageRef").unwrap_or_default();
    if image.is_empty() {
        return Err(bad("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.".to_owned()));
    }
    let user_data = str_field(server, "user_data").unwrap_or_default();
    if user_data.len() > MAX_USER_DATA || !is_base64(user_data) {
        return Err(bad(
            "Invalid input for field/attribute user_data. Value: <omitted>. The value is not \
             base64 of at most 65535 bytes."
                .to_owned(),
        ));
    }
    let mut metadata = BTreeMap::new();
    if let Some(given) = server.get("metadata").and_then(Value::as_object) {
        for (key, value) in given {
            let Some(value) = value.as_str() else {
                return Err(bad(format!(
                    "Invalid input for field/attribute metadata. Value: {key} is not a string."
                )));
            };
            if key.is_empty() || key.len() > 255 || value.len() > 255 {
                return Err(bad(format!(
                    "Invalid input for field/attribute metadata. {key}: keys and values are \
                     at most 255 characters."
                )));
            }
            metadata.insert(key.clone(), value.to_owned());
        }
    }
    let tags = string_list(server, "tags");
    if tags.len() > 50 {
        return Err(bad(
            "Invalid input for field/attribute tags: at most 50 tags.".to_owned(),
        ));
    }
    if let Some(tag) = tags
        .iter()
        .find(|t| t.is_empty() || t.len() > 60 || t.contains('/') || t.contains(','))
    {
        return Err(bad(format!(
            "Invalid input for field/attribute tags. Value: {tag}. Tags are 1 to 60 \
             characters without '/' or ','."
        )));
    }
    let networks = server.get("networks").and_then(Value::as_array);
    let Some(first) = networks.and_then(|n| n.first()) else {
        return Err(bad(
            "The simulated cloud needs 'networks': [{\"port\": ID}] or [{\"uuid\": ID}]."
                .to_owned(),
        ));
    };
    let (network_id, security_group_ids, port) = if let Some(port_id) = str_field(first, "port") {
        let port = api.sim.read(|state, now| {
            state
                .get(ResourceKind::Port, port_id, now)
                .map(|p| p.spec.clone())
        });
        match port {
            Some(ResourceSpec::Port {
                network_id,
                security_group_ids,
                ..
            }) => (network_id, security_group_ids, Some(port_id.to_owned())),
            _ => {
                return Err(bad(format!("Port id {port_id} could not be found.")));
            }
        }
    } else if let Some(network_id) = str_field(first, "uuid") {
        (network_id.to_owned(), Vec::new(), None)
    } else {
        return Err(bad(
            "The simulated cloud needs 'networks': [{\"port\": ID}] or [{\"uuid\": ID}]."
                .to_owned(),
        ));
    };
    let server_group_id = body
        .get("os:scheduler_hints")
        .and_then(|h| str_field(h, "group"))
        .map(str::to_owned);
    let request = ResourceRequest {
        name: name.to_owned(),
        tags,
        spec: ResourceSpec::Server {
            flavor: flavor.to_owned(),
            image: image.to_owned(),
            network_id,
            security_group_ids,
            server_group_id,
            availability_zone: str_field(server, "availability_zone").map(str::to_owned),
            user_data: UserData(user_data.to_owned()),
            metadata,
        },
    };
    Ok((request, port))
}

async fn create_server(State(api): State<Shared>, Json(body): Json<Value>) -> ApiResult {
    let (request, port) = server_request(&api, &body)?;
    let limit = api.sim.config().quotas.server;
    let options = CreateOptions {
        server_port: port,
        ..CreateOptions::default()
    };
    let created = api
        .sim
        .create_rest(&request, &options)
        .map_err(|e| match e {
            CloudError::QuotaExceeded { .. } => {
                let used = api
                    .sim
                    .read(|state, now| state.count(ResourceKind::Server, now));
                Fault::new(
                    SERVICE,
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "Quota exceeded for instances: Requested 1, but already used {used} of \
                     {limit} instances"
                    ),
                )
            }
            other => Fault::from_cloud(SERVICE, other),
        })?;
    let groups: Vec<Value> = match &request.spec {
        ResourceSpec::Server {
            security_group_ids, ..
        } => api.sim.read(|state, now| {
            security_group_ids
                .iter()
                .filter_map(|g| state.get(ResourceKind::SecurityGroup, g, now))
                .map(|g| json!({ "name": g.name }))
                .collect()
        }),
        _ => Vec::new(),
    };
    Ok(reply(
        StatusCode::ACCEPTED,
        json!({ "server": {
            "id": created.id,
            "links": server_links(&api, &created.id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": groups,
        }}),
    ))
}

async fn delete_server(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let existed = api
        .sim
        .delete_rest(ResourceKind::Server, &id)
        .map_err(|e| Fault::from_cloud(SERVICE, e))?;
    if !existed {
        return Err(server_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- server groups -----------------------------------------------------------------

fn policy_name(policy: ServerGroupPolicy) -> &'static str {
    match policy {
        ServerGroupPolicy::AntiAffinity => "anti-affinity",
        ServerGroupPolicy::SoftAntiAffinity => "soft-anti-affinity",
    }
}

fn server_group_view(
    api: &super::Api,
    state: &SimState,
    r: &SimResource,
    now: u64,
    version: (u32, u32),
) -> Value {
    let ResourceSpec::ServerGroup { policy } = &r.spec else {
        return json!({});
    };
    let members: Vec<&str> = state
        .indexed(&Key::Ref(r.id.clone()), now)
        .filter(|s| s.kind() == ResourceKind::Server)
        .map(|s| s.id.as_str())
        .collect();
    let mut group = json!({
        "id": r.id,
        "name": r.name,
        "members": members,
        "project_id": api.project_id(),
        "user_id": api.config.identity.user_id,
    });
    if version >= (2, 64) {
        group["policy"] = json!(policy_name(*policy));
        group["rules"] = json!({});
    } else {
        group["policies"] = json!([policy_name(*policy)]);
        group["metadata"] = json!({});
    }
    group
}

fn group_not_found(id: &str) -> Fault {
    Fault::not_found(
        SERVICE,
        "NotFound",
        format!("Server group {id} could not be found."),
    )
}

async fn server_groups(
    State(api): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> Response {
    let version = microversion(&headers, "compute", MAX_MICROVERSION);
    let all: Vec<Value> = api.sim.read(|state, now| {
        state
            .indexed(&Key::Kind(ResourceKind::ServerGroup), now)
            .filter(|r| !r.is_deleting())
            .map(|r| server_group_view(&api, state, r, now, version))
            .collect()
    });
    let url = format!("{}{}", api.base_url, uri.path());
    let mut body = page(all, &query, "server_groups", &url);
    // Nova gives server groups no links, only `limit` and `offset`.
    if let Some(map) = body.as_object_mut()
        && map
            .get("server_groups_links")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        map.remove("server_groups_links");
    }
    reply(StatusCode::OK, body)
}

async fn get_server_group(
    State(api): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let version = microversion(&headers, "compute", MAX_MICROVERSION);
    let found = api.sim.read(|state, now| {
        state
            .get(ResourceKind::ServerGroup, &id, now)
            .filter(|r| !r.is_deleting())
            .map(|r| server_group_view(&api, state, r, now, version))
    });
    let group = found.ok_or_else(|| group_not_found(&id))?;
    Ok(reply(StatusCode::OK, json!({ "server_group": group })))
}

async fn create_server_group(
    State(api): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult {
    let version = microversion(&headers, "compute", MAX_MICROVERSION);
    let given = body_object(SERVICE, &body, "server_group")?;
    let name = str_field(given, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Fault::bad_request(SERVICE, "Invalid input for field/attribute name."))?;
    let policy = str_field(given, "policy")
        .map(str::to_owned)
        .or_else(|| string_list(given, "policies").into_iter().next())
        .unwrap_or_default();
    let policy = match policy.as_str() {
        "anti-affinity" => ServerGroupPolicy::AntiAffinity,
        "soft-anti-affinity" => ServerGroupPolicy::SoftAntiAffinity,
        other => {
            return Err(Fault::bad_request(
                SERVICE,
                format!(
                    "Invalid input for field/attribute policy. Value: {other}. The simulated \
                     cloud has anti-affinity and soft-anti-affinity."
                ),
            ));
        }
    };
    let request = ResourceRequest {
        name: name.to_owned(),
        tags: Vec::new(),
        spec: ResourceSpec::ServerGroup { policy },
    };
    let created = api
        .sim
        .create_rest(&request, &CreateOptions::default())
        .map_err(|e| match e {
            CloudError::QuotaExceeded { .. } => Fault::new(
                SERVICE,
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Quota exceeded, too many server groups.",
            ),
            other => Fault::from_cloud(SERVICE, other),
        })?;
    let view = api
        .sim
        .read(|state, now| {
            state
                .get(ResourceKind::ServerGroup, &created.id, now)
                .map(|r| server_group_view(&api, state, r, now, version))
        })
        .ok_or_else(|| group_not_found(&created.id))?;
    Ok(reply(StatusCode::OK, json!({ "server_group": view })))
}

async fn delete_server_group(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let existed = api
        .sim
        .delete_rest(ResourceKind::ServerGroup, &id)
        .map_err(|e| Fault::from_cloud(SERVICE, e))?;
    if !existed {
        return Err(group_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! Neutron: networks (and the one external network), subnets, routers with their
//! gateway and interfaces (legacy, distributed or HA, which owns their ports
//! accordingly), security groups and their rules, ports, floating IPs; tags on each,
//! `?tags=` and field filters, pagination.

use std::net::IpAddr;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use ipnet::IpNet;
use kaas_cloud::{CloudError, ResourceKind, ResourceRequest, ResourceSpec, ResourceStatus};
use serde_json::{Value, json};

use super::{
    ApiResult, Fault, Query, Service, Shared, body_object, created, first_tag, matches, new_id,
    page, query_value, reply, str_field, string_list, time,
};
use crate::rest_state::{RestState, RouterInterface};
use crate::state::{CreateOptions, Key, SimResource, State as SimState};

const SERVICE: Service = Service::Network;

/// The id of the one external network.
pub(crate) const EXTERNAL_NETWORK_ID: &str = "0e6c1f7a-5a1e-4c3b-9d2e-7f0000000001";

/// Neutron's default MTU on a tunnelled network.
const DEFAULT_MTU: u32 = 1450;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/network", get(versions))
        .route("/network/", get(versions))
        .route("/network/v2.0", get(resources))
        .route("/network/v2.0/", get(resources))
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/{collection}", get(list).post(create))
        .route("/network/v2.0/{collection}/{id}", get(show).delete(delete))
        .route(
            "/network/v2.0/{collection}/{id}/tags",
            get(get_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/network/v2.0/{collection}/{id}/tags/{tag}",
            get(has_tag).put(add_tag).delete(remove_tag),
        )
        .route(
            "/network/v2.0/routers/{id}/add_router_interface",
            put(add_interface),
        )
        .route(
            "/network/v2.0/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
}

async fn versions(State(api): State<Shared>) -> Response {
    reply(
        StatusCode::OK,
        json!({ "versions": [{
            "id": "v2.0",
            "status": "CURRENT",
            "links": [{ "rel": "self", "href": format!("{}/network/v2.0/", api.base_url) }],
        }]}),
    )
}

async fn resources(State(api): State<Shared>) -> Response {
    let resources: Vec<Value> = Collection::ALL
        .iter()
        .map(|c| {
            json!({
                "name": c.key(), "collection": c.path(),
                "links": [{ "rel": "self", "href": format!("{}/network/v2.0/{}", api.base_url, c.path()) }],
            })
        })
        .collect();
    reply(StatusCode::OK, json!({ "resources": resources }))
}

async fn extensions() -> Response {
    let aliases = [
        ("external-net", "Neutron external network"),
        ("router", "Neutron L3 Router"),
        ("security-group", "security-group"),
        (
            "standard-attr-tag",
            "Tag support for resources with standard attribute",
        ),
        ("standard-attr-description", "standard-attr-description"),
        ("quotas", "Quota management support"),
        ("binding", "Port Binding"),
    ];
    let extensions: Vec<Value> = aliases
        .iter()
        .map(|(alias, name)| {
            json!({ "alias": alias, "name": name, "description": name, "links": [], "updated": "2013-01-01T00:00:00-00:00" })
        })
        .collect();
    reply(StatusCode::OK, json!({ "extensions": extensions }))
}

/// A Neutron collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Networks,
    Subnets,
    Routers,
    SecurityGroups,
    SecurityGroupRules,
    Ports,
    FloatingIps,
}

impl Collection {
    const ALL: [Collection; 7] = [
        Self::Networks,
        Self::Subnets,
        Self::Routers,
        Self::SecurityGroups,
        Self::SecurityGroupRules,
        Self::Ports,
        Self::FloatingIps,
    ];

    fn parse(text: &str) -> ApiResult<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.path() == text)
            .ok_or_else(|| {
                Fault::not_found(
                    SERVICE,
                    "HTTPNotFound",
                    "The resource could not be found.".to_owned(),
                )
            })
    }

    fn path(self) -> &'static str {
        match self {
            Self::Networks => "networks",
            Self::Subnets => "subnets",
            Self::Routers => "routers",
            Self::SecurityGroups => "security-groups",
            Self::SecurityGroupRules => "security-group-rules",
            Self::Ports => "ports",
            Self::FloatingIps => "floatingips",
        }
    }

    /// The JSON key of one item.
    fn key(self) -> &'static str {
        match self {
            Self::Networks => "network",
            Self::Subnets => "subnet",
            Self::Routers => "router",
            Self::SecurityGroups => "security_group",
            Self::SecurityGroupRules => "security_group_rule",
            Self::Ports => "port",
            Self::FloatingIps => "floatingip",
        }
    }

    /// The JSON key of a list.
    fn list_key(self) -> &'static str {
        match self {
            Self::Networks => "networks",
            Self::Subnets => "subnets",
            Self::Routers => "routers",
            Self::SecurityGroups => "security_groups",
            Self::SecurityGroupRules => "security_group_rules",
            Self::Ports => "ports",
            Self::FloatingIps => "floatingips",
        }
    }

    fn kind(self) -> Option<ResourceKind> {
        Some(match self {
            Self::Networks => ResourceKind::Network,
            Self::Subnets => ResourceKind::Subnet,
            Self::Routers => ResourceKind::Router,
            Self::SecurityGroups => ResourceKind::SecurityGroup,
            Self::Ports => ResourceKind::Port,
            Self::FloatingIps => ResourceKind::FloatingIp,
            Self::SecurityGroupRules => return None,
        })
    }

    /// Neutron's name of the resource in quota errors.
    fn quota_name(self) -> &'static str {
        self.key()
    }

    fn not_found(self, id: &str) -> Fault {
        let (kind, message) = match self {
            Self::Networks => (
                "NetworkNotFound",
                format!("Network {id} could not be found."),
            ),
            Self::Subnets => ("SubnetNotFound", format!("Subnet {id} could not be found.")),
            Self::Routers => ("RouterNotFound", format!("Router {id} could not be found.")),
            Self::SecurityGroups => (
                "SecurityGroupNotFound",
                format!("Security group {id} does not exist"),
            ),
            Self::SecurityGroupRules => (
                "SecurityGroupRuleNotFound",
                format!("Security group rule {id} does not exist"),
            ),
            Self::Ports => ("PortNotFound", format!("Port {id} could not be found.")),
            Self::FloatingIps => (
                "FloatingIPNotFound",
                format!("Floating IP {id} could not be found"),
            ),
        };
        Fault::not_found(SERVICE, kind, message)
    }

    fn in_use(self) -> &'static str {
        match self {
            Self::Networks => "NetworkInUse",
            Self::Subnets => "SubnetInUse",
            Self::Routers => "RouterInUse",
            Self::SecurityGroups => "SecurityGroupInUse",
            Self::Ports => "PortInUse",
            _ => "Conflict",
        }
    }

    /// A simulated cloud's error on this collection, as Neutron words it.
    fn fault(self, error: CloudError) -> Fault {
        match error {
            CloudError::QuotaExceeded { .. } => Fault::new(
                SERVICE,
                StatusCode::CONFLICT,
                "OverQuota",
                format!("Quota exceeded for resources: ['{}'].", self.quota_name()),
            ),
            CloudError::Conflict { message } => {
                Fault::new(SERVICE, StatusCode::CONFLICT, self.in_use(), message)
            }
            CloudError::NotFound { id, .. } => self.not_found(&id),
            other => Fault::from_cloud(SERVICE, other),
        }
    }
}

// --- views -------------------------------------------------------------------------

/// A MAC address of OpenStack's prefix, from an id.
pub(crate) fn mac_of(id: &str) -> String {
    let hex: Vec<char> = id.chars().filter(char::is_ascii_hexdigit).take(6).collect();
    let pair = |i: usize| -> String { hex.iter().skip(i).take(2).collect() };
    format!("fa:16:3e:{}:{}:{}", pair(0), pair(2), pair(4))
}

fn status(r: &SimResource, now: u64) -> &'static str {
    match r.status(now) {
        ResourceStatus::Pending => "BUILD",
        ResourceStatus::Active | ResourceStatus::Deleting => "ACTIVE",
        ResourceStatus::Error { .. } => "ERROR",
    }
}

/// The fields every Neutron resource has.
fn standard(api: &super::Api, r: &SimResource) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "tags": r.tags,
        "description": r.rest.description.clone().unwrap_or_default(),
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "created_at": created(r),
        "updated_at": created(r),
        "revision_number": 1,
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The gateway (first host) of a subnet, and its allocation pool.
fn gateway_and_pool(cidr: &str) -> Option<(IpAddr, IpAddr, IpAddr)> {
    let net: IpNet = cidr.parse().ok()?;
    match net.trunc() {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            let last = u32::from(n.broadcast());
            (last > base.saturating_add(2)).then(|| {
                (
                    IpAddr::from(std::net::Ipv4Addr::from(base + 1)),
                    IpAddr::from(std::net::Ipv4Addr::from(base + 2)),
                    IpAddr::from(std::net::Ipv4Addr::from(last - 1)),
                )
            })
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            let last = u128::from(n.broadcast());
            (last > base.saturating_add(2)).then(|| {
                (
                    IpAddr::from(std::net::Ipv6Addr::from(base + 1)),
                    IpAddr::from(std::net::Ipv6Addr::from(base + 2)),
                    IpAddr::from(std::net::Ipv6Addr::from(last)),
                )
            })
        }
    }
}

fn external_network(api: &super::Api) -> Value {
    json!({
        "id": EXTERNAL_NETWORK_ID,
        "name": api.config.external_network,
        "status": "ACTIVE",
        "admin_state_up": true,
        "mtu": 1500,
        "subnets": [],
        "tags": [],
        "router:external": true,
        "shared": false,
        "is_default": true,
        "description": "The simulated cloud's external network (floating IPs and router gateways)",
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "port_security_enabled": true,
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "revision_number": 1,
    })
}

fn view(api: &super::Api, state: &SimState, r: &SimResource, now: u64) -> Value {
    let base = standard(api, r);
    let extra = match &r.spec {
        ResourceSpec::Network { mtu } => {
            let subnets: Vec<&str> = state
                .indexed(&Key::Ref(r.id.clone()), now)
                .filter(|s| matches!(&s.spec, ResourceSpec::Subnet { network_id, .. } if *network_id == r.id))
                .map(|s| s.id.as_str())
                .collect();
            json!({
                "status": status(r, now),
                "admin_state_up": true,
                "mtu": mtu.unwrap_or(DEFAULT_MTU),
                "subnets": subnets,
                "router:external": false,
                "shared": false,
                "is_default": false,
                "port_security_enabled": true,
                "availability_zones": ["nova"],
                "availability_zone_hints": [],
            })
        }
        ResourceSpec::Subnet {
            network_id,
            cidr,
            dns_servers,
        } => {
            let net: Option<IpNet> = cidr.parse().ok().map(|n: IpNet| n.trunc());
            let (gateway, pools) = match gateway_and_pool(cidr) {
                Some((gateway, start, end)) => (
                    json!(gateway.to_string()),
                    json!([{ "start": start.to_string(), "end": end.to_string() }]),
                ),
                None => (Value::Null, json!([])),
            };
            json!({
                "network_id": network_id,
                "cidr": net.map_or_else(|| cidr.clone(), |n| n.to_string()),
                "ip_version": if matches!(net, Some(IpNet::V6(_))) { 6 } else { 4 },
                "gateway_ip": gateway,
                "allocation_pools": pools,
                "dns_nameservers": dns_servers,
                "host_routes": [],
                "enable_dhcp": true,
                "subnetpool_id": null,
                "ipv6_ra_mode": null,
                "ipv6_address_mode": null,
                "service_types": [],
            })
        }
        ResourceSpec::Router { .. } => json!({
            "status": status(r, now),
            "admin_state_up": true,
            "external_gateway_info": {
                "network_id": EXTERNAL_NETWORK_ID,
                "enable_snat": true,
                "external_fixed_ips": [],
            },
            "routes": [],
            "distributed": r.rest.distributed,
            "ha": r.rest.ha,
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
        }),
        ResourceSpec::SecurityGroup { .. } => json!({
            "security_group_rules": rules_of(r),
            "stateful": true,
        }),
        ResourceSpec::Port {
            network_id,
            subnet_id,
            security_group_ids,
        } => {
            let user = state.port_user(r, now);
            json!({
                "network_id": network_id,
                "fixed_ips": r.address.as_ref().map_or_else(Vec::new, |a| vec![json!({ "subnet_id": subnet_id, "ip_address": a })]),
                "security_groups": security_group_ids,
                "device_id": user.map_or("", |s| s.id.as_str()),
                "device_owner": if user.is_some() { "compute:nova" } else { "" },
                "status": if user.is_some() { "ACTIVE" } else { "DOWN" },
                "admin_state_up": true,
                "mac_address": mac_of(&r.id),
                "binding:vnic_type": "normal",
                "port_security_enabled": true,
                "allowed_address_pairs": [],
                "extra_dhcp_opts": [],
            })
        }
        ResourceSpec::FloatingIp { port_id, .. } => {
            let fixed = state
                .get(ResourceKind::Port, port_id, now)
                .and_then(|p| p.address.clone());
            json!({
                "name": Value::Null,
                "description": r.name,
                "floating_ip_address": r.address,
                "floating_network_id": EXTERNAL_NETWORK_ID,
                "port_id": port_id,
                "fixed_ip_address": fixed,
                "router_id": null,
                "status": if r.status(now) == ResourceStatus::Active { "ACTIVE" } else { "DOWN" },
            })
        }
        _ => json!({}),
    };
    merge(base, extra)
}

/// A security group's rules, each naming its group.
fn rules_of(group: &SimResource) -> Vec<Value> {
    group
        .rest
        .rules
        .iter()
        .map(|rule| merge(rule.clone(), json!({ "security_group_id": group.id })))
        .collect()
}

/// The owner Neutron gives the ports of a router's interfaces: a distributed (DVR)
/// router's are `network:router_interface_distributed`, an HA router's
/// `network:ha_router_replicated_interface`, any other's `network:router_interface`.
fn interface_owner(router: &SimResource) -> &'static str {
    if router.rest.distributed {
        "network:router_interface_distributed"
    } else if router.rest.ha {
        "network:ha_router_replicated_interface"
    } else {
        "network:router_interface"
    }
}

/// The ports Neutron makes for router interfaces: of the router `device_id` only, when
/// given. A query by tag never matches one (they carry none), so it gets none.
fn interface_ports(api: &super::Api, state: &SimState, query: &Query, now: u64) -> Vec<Value> {
    if first_tag(query).is_some() {
        return Vec::new();
    }
    let routers: Vec<&SimResource> = match query_value(query, "device_id") {
        Some(id) => state
            .get(ResourceKind::Router, id, now)
            .into_iter()
            .collect(),
        None => state
            .indexed(&Key::Kind(ResourceKind::Router), now)
            .collect(),
    };
    routers
        .into_iter()
        .flat_map(|router| {
            router
                .rest
                .interfaces
                .iter()
                .map(move |i| interface_port(api, state, router, i, now))
        })
        .collect()
}

/// The port of a router interface with this id, if there is one.
fn interface_port_by_id(api: &super::Api, state: &SimState, id: &str, now: u64) -> Option<Value> {
    state
        .indexed(&Key::Kind(ResourceKind::Router), now)
        .find_map(|router| {
            router
                .rest
                .interfaces
                .iter()
                .find(|i| i.port_id == id)
                .map(|i| interface_port(api, state, router, i, now))
        })
}

fn interface_port(
    api: &super::Api,
    state: &SimState,
    router: &SimResource,
    interface: &RouterInterface,
    now: u64,
) -> Value {
    let network_id = match state
        .get(ResourceKind::Subnet, &interface.subnet_id, now)
        .map(|s| &s.spec)
    {
        Some(ResourceSpec::Subnet { network_id, .. }) => network_id.clone(),
        _ => String::new(),
    };
    json!({
        "id": interface.port_id,
        "name": "",
        "network_id": network_id,
        "fixed_ips": [{ "subnet_id": interface.subnet_id, "ip_address": interface.ip_address }],
        "security_groups": [],
        "device_id": router.id,
        "device_owner": interface_owner(router),
        "status": "ACTIVE",
        "admin_state_up": true,
        "mac_address": mac_of(&interface.port_id),
        "tags": [],
        "description": "",
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "binding:vnic_type": "normal",
        "created_at": created(router),
        "updated_at": created(router),
        "revision_number": 1,
    })
}

/// Every item of `collection` that passes the query, in creation order (the
/// external network first).
fn list_items(api: &super::Api, collection: Collection, query: &Query) -> Vec<Value> {
    api.sim.read(|state, now| {
        let mut items = Vec::new();
        let Some(kind) = collection.kind() else {
            for group in state.indexed(&Key::Kind(ResourceKind::SecurityGroup), now) {
                items.extend(rules_of(group));
            }
            items.retain(|v| matches(v, query));
            return items;
        };
        let name = query_value(query, "name");
        let key = if let Some(tag) = first_tag(query) {
            Key::Tag(kind, tag)
        } else if let (Some(name), ResourceKind::Port) = (name, kind) {
            Key::Name(kind, name.to_owned())
        } else if let (Some(network), ResourceKind::Port | ResourceKind::Subnet) =
            (query_value(query, "network_id"), kind)
        {
            Key::Ref(network.to_owned())
        } else if let (Some(port), ResourceKind::FloatingIp) = (query_value(query, "port_id"), kind)
        {
            Key::Ref(port.to_owned())
        } else {
            Key::Kind(kind)
        };
        if collection == Collection::Networks {
            items.push(external_network(api));
        }
        items.extend(
            state
                .indexed(&key, now)
                .filter(|r| r.kind() == kind && !r.is_deleting())
                .filter(|r| kind == ResourceKind::FloatingIp || name.is_none_or(|n| r.name == n))
                .map(|r| view(api, state, r, now)),
        );
        if collection == Collection::Ports {
            items.extend(interface_ports(api, state, query, now));
        }
        items.retain(|v| matches(v, query));
        items
    })
}

async fn list(
    State(api): State<Shared>,
    Path(collection): Path<String>,
    uri: Uri,
    UrlQuery(query): UrlQuery<Query>,
) -> ApiResult {
    let collection = Collection::parse(&collection)?;
    let items = list_items(&api, collection, &query);
    let url = format!("{}{}", api.base_url, uri.path());
    Ok(reply(
        StatusCode::OK,
        page(items, &query, collection.list_key(), &url),
    ))
}

/// One item of `collection` as Neutron shows it.
fn find(api: &super::Api, collection: Collection, id: &str) -> Option<Value> {
    api.sim.read(|state, now| match collection.kind() {
        None => state
            .indexed(&Key::Kind(ResourceKind::SecurityGroup), now)
            .flat_map(rules_of)
            .find(|rule| str_field(rule, "id") == Some(id)),
        Some(kind) => {
            if collection == Collection::Networks && id == EXTERNAL_NETWORK_ID {
                return Some(external_network(api));
            }
            if let Some(r) = state.get(kind, id, now).filter(|r| !r.is_deleting()) {
                return Some(view(api, state, r, now));
            }
            if collection == Collection::Ports {
                return interface_port_by_id(api, state, id, now);
            }
            None
        }
    })
}

async fn show(
    State(api): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult {
    let collection = Collection::parse(&collection)?;
    let item = find(&api, collection, &id).ok_or_else(|| collection.not_found(&id))?;
    Ok(reply(StatusCode::OK, json!({ collection.key(): item })))
}

// --- create ------------------------------------------------------------------------

fn policy_refuses(what: &str) -> Fault {
    Fault::new(
        SERVICE,
        StatusCode::FORBIDDEN,
        "PolicyNotAuthorized",
        format!("({what}) is disallowed by policy"),
    )
}

/// The request a `POST` of one item of `collection` makes.
fn request_for(
    api: &super::Api,
    collection: Collection,
    item: &Value,
) -> ApiResult<(ResourceRequest, RestState)> {
    let name = str_field(item, "name").unwrap_or_default().to_owned();
    let tags = string_list(item, "tags");
    let mut rest = RestState {
        description: str_field(item, "description")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        ..RestState::default()
    };
    let bad = |message: String| Fault::bad_request(SERVICE, message);
    let external = |id: &str| -> ApiResult<String> {
        if id == EXTERNAL_NETWORK_ID || id == api.config.external_network {
            Ok(api.config.external_network.clone())
        } else {
            Err(Fault::not_found(
                SERVICE,
                "ExternalNetworkNotFound",
                format!("External network {id} could not be found."),
            ))
        }
    };
    let spec = match collection {
        Collection::Networks => {
            if item["router:external"].as_bool() == Some(true) {
                return Err(policy_refuses("rule:create_network:router:external"));
            }
            ResourceSpec::Network {
                mtu: item["mtu"].as_u64().and_then(|m| u32::try_from(m).ok()),
            }
        }
        Collection::Subnets => {
            let network_id = str_field(item, "network_id").ok_or_else(|| {
                bad("Invalid input for network_id. Reason: a network_id is required.".to_owned())
            })?;
            if network_id == EXTERNAL_NETWORK_ID {
                return Err(policy_refuses("rule:create_subnet"));
            }
            ResourceSpec::Subnet {
                network_id: network_id.to_owned(),
                cidr: str_field(item, "cidr")
                    .ok_or_else(|| {
                        bad("Invalid input for cidr. Reason: a cidr is required.".to_owned())
                    })?
                    .to_owned(),
                dns_servers: string_list(item, "dns_nameservers"),
            }
        }
        Collection::Routers => {
            let gateway = str_field(&item["external_gateway_info"], "network_id").ok_or_else(|| {
                bad("The simulated cloud's routers need an external gateway (external_gateway_info.network_id).".to_owned())
            })?;
            // Legacy unless asked otherwise (on a real cloud its operator's defaults,
            // `router_distributed` and `l3_ha`, choose).
            rest.distributed = item["distributed"].as_bool().unwrap_or(false);
            rest.ha = item["ha"].as_bool().unwrap_or(false);
            ResourceSpec::Router {
                external_network: external(gateway)?,
                subnet_ids: Vec::new(),
            }
        }
        Collection::SecurityGroups => ResourceSpec::SecurityGroup { rules: Vec::new() },
        Collection::Ports => {
            let network_id = str_field(item, "network_id").ok_or_else(|| {
                bad("Invalid input for network_id. Reason: a network_id is required.".to_owned())
            })?;
            let fixed = item["fixed_ips"].as_array().and_then(|f| f.first());
            if fixed.is_some_and(|f| f.get("ip_address").is_some()) {
                return Err(bad("The simulated cloud chooses a port's fixed IP itself: give fixed_ips a subnet_id only.".to_owned()));
            }
            let subnet_id = match fixed.and_then(|f| str_field(f, "subnet_id")) {
                Some(subnet) => subnet.to_owned(),
                None => api
                    .sim
                    .read(|state, now| {
                        state
                            .indexed(&Key::Ref(network_id.to_owned()), now)
                            .find(|r| !r.is_deleting() && matches!(&r.spec, ResourceSpec::Subnet { network_id: n, .. } if n == network_id))
                            .map(|r| r.id.clone())
                    })
                    .ok_or_else(|| bad(format!(
                        "Network {network_id} has no subnet: the simulated cloud gives every port a fixed IP."
                    )))?,
            };
            ResourceSpec::Port {
                network_id: network_id.to_owned(),
                subnet_id,
                security_group_ids: string_list(item, "security_groups"),
            }
        }
        Collection::FloatingIps => {
            let network = str_field(item, "floating_network_id").ok_or_else(|| {
                bad("Invalid input for floating_network_id. Reason: a floating_network_id is required.".to_owned())
            })?;
            let port_id = str_field(item, "port_id").ok_or_else(|| {
                bad("The simulated cloud's floating IPs are made on a port (port_id).".to_owned())
            })?;
            let request = ResourceRequest {
                // A floating IP has no name: its description is what kaas names it by.
                name: str_field(item, "description")
                    .unwrap_or_default()
                    .to_owned(),
                tags,
                spec: ResourceSpec::FloatingIp {
                    external_network: external(network)?,
                    port_id: port_id.to_owned(),
                },
            };
            return Ok((request, RestState::default()));
        }
        Collection::SecurityGroupRules => {
            return Err(bad("not a resource of its own".to_owned()));
        }
    };
    Ok((ResourceRequest { name, tags, spec }, rest))
}

/// Neutron's two default egress rules of a new security group.
fn default_rules(rng: &mut impl rand::Rng, now: u64) -> Vec<Value> {
    ["IPv4", "IPv6"]
        .iter()
        .map(|ethertype| {
            rule_record(
                new_id(rng),
                &json!({ "direction": "egress", "ethertype": ethertype }),
                now,
            )
        })
        .collect()
}

async fn create(
    State(api): State<Shared>,
    Path(collection): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let collection = Collection::parse(&collection)?;
    if collection == Collection::SecurityGroupRules {
        return create_rules(&api, &body);
    }
    let item = body_object(SERVICE, &body, collection.key())?;
    let (request, mut rest) = request_for(&api, collection, item)?;
    if collection == Collection::SecurityGroups {
        rest.rules = default_rules(&mut rand::rng(), crate::now_ms());
    }
    let options = CreateOptions {
        server_port: None,
        rest,
    };
    let created = api
        .sim
        .create_rest(&request, &options)
        .map_err(|e| collection.fault(e))?;
    let item =
        find(&api, collection, &created.id).ok_or_else(|| collection.not_found(&created.id))?;
    Ok(reply(
        StatusCode::CREATED,
        json!({ collection.key(): item }),
    ))
}

/// A rule as kept: Neutron's fields, without its group's id (which its view adds).
fn rule_record(id: String, given: &Value, now: u64) -> Value {
    let field = |key: &str| given.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "id": id,
        "direction": field("direction"),
        "ethertype": given.get("ethertype").cloned().unwrap_or_else(|| json!("IPv4")),
        "protocol": field("protocol"),
        "port_range_min": field("port_range_min"),
        "port_range_max": field("port_range_max"),
        "remote_ip_prefix": field("remote_ip_prefix"),
        "remote_group_id": field("remote_group_id"),
        "remote_address_group_id": null,
        "description": given.get("description").cloned().unwrap_or_else(|| json!("")),
        "tags": [],
        "created_at": time(now),
        "updated_at": time(now),
        "revision_number": 0,
    })
}

/// Whether two rules allow the same traffic (Neutron refuses the second).
fn same_rule(a: &Value, b: &Value) -> bool {
    [
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
    ]
    .iter()
    .all(|k| a.get(*k).unwrap_or(&Value::Null) == b.get(*k).unwrap_or(&Value::Null))
}

/// `POST /security-group-rules`, one rule or many at once (all or none).
fn create_rules(api: &super::Api, body: &Value) -> ApiResult {
    let (given, bulk) = match (
        body.get("security_group_rules").and_then(Value::as_array),
        body.get("security_group_rule"),
    ) {
        (Some(rules), _) => (rules.clone(), true),
        (None, Some(rule)) if rule.is_object() => (vec![rule.clone()], false),
        _ => {
            return Err(Fault::bad_request(
                SERVICE,
                "Missing 'security_group_rule' in the request body.",
            ));
        }
    };
    let project = api.project_id().to_owned();
    let created = api.sim.mutate_with(
        |state, rng, now| -> Result<Vec<Value>, Fault> {
            let mut made = Vec::new();
            for rule in &given {
                let group_id = str_field(rule, "security_group_id").unwrap_or_default();
                let group = state
                    .get(ResourceKind::SecurityGroup, group_id, now)
                    .filter(|g| !g.is_deleting())
                    .ok_or_else(|| Collection::SecurityGroups.not_found(group_id))?;
                let direction = str_field(rule, "direction").unwrap_or_default();
                if direction != "ingress" && direction != "egress" {
                    return Err(Fault::bad_request(
                        SERVICE,
                        format!("Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."),
                    ));
                }
                if let Some(remote) = str_field(rule, "remote_group_id")
                    && state.get(ResourceKind::SecurityGroup, remote, now).is_none()
                {
                    return Err(Collection::SecurityGroups.not_found(remote));
                }
                let record = rule_record(new_id(rng), rule, now);
                if let Some(existing) = group.rest.rules.iter().find(|r| same_rule(r, &record)) {
                    return Err(Fault::new(
                        SERVICE,
                        StatusCode::CONFLICT,
                        "SecurityGroupRuleExists",
                        format!(
                            "Security group rule already exists. Rule id is {}.",
                            str_field(existing, "id").unwrap_or_default()
                        ),
                    ));
                }
                let group_id = group.id.clone();
                state
                    .resources
                    .modify(&group_id, |g| g.rest.rules.push(record.clone()));
                made.push(merge(
                    record,
                    json!({ "security_group_id": group_id, "project_id": project, "tenant_id": project }),
                ));
            }
            Ok(made)
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    let body = if bulk {
        json!({ "security_group_rules": created })
    } else {
        json!({ "security_group_rule": created.into_iter().next() })
    };
    Ok(reply(StatusCode::CREATED, body))
}

// --- delete ------------------------------------------------------------------------

async fn delete(
    State(api): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult {
    let collection = Collection::parse(&collection)?;
    let Some(kind) = collection.kind() else {
        return delete_rule(&api, &id);
    };
    if collection == Collection::Networks && id == EXTERNAL_NETWORK_ID {
        return Err(policy_refuses("rule:delete_network"));
    }
    let (interfaces, interface_owner) = api.sim.read(|state, now| {
        let interfaces = state
            .get(kind, &id, now)
            .map_or(0, |r| r.rest.interfaces.len());
        let interface_owner = if collection == Collection::Ports {
            interface_port_by_id(&api, state, &id, now)
                .as_ref()
                .and_then(|p| str_field(p, "device_owner"))
                .map(str::to_owned)
        } else {
            None
        };
        (interfaces, interface_owner)
    });
    if let Some(owner) = interface_owner {
        return Err(Fault::new(
            SERVICE,
            StatusCode::CONFLICT,
            "PortInUse",
            format!(
                "Port {id} cannot be deleted directly via the port API: has device owner \
                 {owner}."
            ),
        ));
    }
    if collection == Collection::Routers && interfaces > 0 {
        return Err(Fault::new(
            SERVICE,
            StatusCode::CONFLICT,
            "RouterInUse",
            format!("Router {id} still has ports"),
        ));
    }
    let existed = api
        .sim
        .delete_rest(kind, &id)
        .map_err(|e| collection.fault(e))?;
    if !existed {
        return Err(collection.not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn delete_rule(api: &super::Api, id: &str) -> ApiResult {
    api.sim.mutate_with(
        |state, _, now| -> Result<(), Fault> {
            let group = state
                .indexed(&Key::Kind(ResourceKind::SecurityGroup), now)
                .find(|g| g.rest.rules.iter().any(|r| str_field(r, "id") == Some(id)))
                .map(|g| g.id.clone())
                .ok_or_else(|| Collection::SecurityGroupRules.not_found(id))?;
            state.resources.modify(&group, |g| {
                g.rest.rules.retain(|r| str_field(r, "id") != Some(id));
            });
            Ok(())
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- tags --------------------------------------------------------------------------

/// Changes the tags of `collection`'s item `id` with `change`; its tags after.
fn change_tags(
    api: &super::Api,
    collection: &str,
    id: &str,
    change: impl FnOnce(&mut Vec<String>) -> Result<(), Fault>,
) -> ApiResult<Vec<String>> {
    let collection = Collection::parse(collection)?;
    let kind = collection.kind().ok_or_else(|| collection.not_found(id))?;
    api.sim.mutate_with(
        |state, _, now| -> Result<Vec<String>, Fault> {
            let mut tags = state
                .get(kind, id, now)
                .filter(|r| !r.is_deleting())
                .map(|r| r.tags.clone())
                .ok_or_else(|| collection.not_found(id))?;
            let before = tags.clone();
            change(&mut tags)?;
            if tags != before {
                state.resources.modify(id, |r| r.tags = tags.clone());
            }
            Ok(tags)
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )
}

fn check_tag(tag: &str) -> Result<(), Fault> {
    if tag.is_empty() || tag.len() > 255 || tag.contains(',') {
        return Err(Fault::bad_request(
            SERVICE,
            format!(
                "Invalid input for operation: '{tag}' is not a valid tag (1 to 255 characters, no ',')."
            ),
        ));
    }
    Ok(())
}

async fn get_tags(
    State(api): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult {
    let tags = change_tags(&api, &collection, &id, |_| Ok(()))?;
    Ok(reply(StatusCode::OK, json!({ "tags": tags })))
}

async fn replace_tags(
    State(api): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult {
    let wanted = string_list(&body, "tags");
    for tag in &wanted {
        check_tag(tag)?;
    }
    let tags = change_tags(&api, &collection, &id, |tags| {
        let mut unique = Vec::new();
        for tag in wanted {
            if !unique.contains(&tag) {
                unique.push(tag);
            }
        }
        *tags = unique;
        Ok(())
    })?;
    Ok(reply(StatusCode::OK, json!({ "tags": tags })))
}

async fn clear_tags(
    State(api): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult {
    change_tags(&api, &collection, &id, |tags| {
        tags.clear();
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn has_tag(
    State(api): State<Shared>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    let tags = change_tags(&api, &collection, &id, |_| Ok(()))?;
    if tags.contains(&tag) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(tag_not_found(&tag, &id))
    }
}

fn tag_not_found(tag: &str, id: &str) -> Fault {
    Fault::not_found(
        SERVICE,
        "TagNotFound",
        format!("Tag {tag} could not be found for resource {id}."),
    )
}

async fn add_tag(
    State(api): State<Shared>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    check_tag(&tag)?;
    change_tags(&api, &collection, &id, |tags| {
        if !tags.contains(&tag) {
            tags.push(tag.clone());
        }
        Ok(())
    })?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_tag(
    State(api): State<Shared>,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult {
    change_tags(&api, &collection, &id, |tags| {
        let before = tags.len();
        tags.retain(|t| *t != tag);
        if tags.len() == before {
            return Err(tag_not_found(&tag, &id));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- router interfaces -------------------------------------------------------------

fn interface_answer(
    api: &super::Api,
    router_id: &str,
    interface: &RouterInterface,
    network_id: &str,
) -> Value {
    json!({
        "id": router_id,
        "subnet_id": interface.subnet_id,
        "subnet_ids": [interface.subnet_id],
        "port_id": interface.port_id,
        "network_id": network_id,
        "project_id": api.project_id(),
        "tenant_id": api.project_id(),
        "tags": [],
    })
}

async fn add_interface(
    State(api): State<Shared>,
    Path(router_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let subnet_id = str_field(&body, "subnet_id")
        .ok_or_else(|| {
            Fault::bad_request(
                SERVICE,
                "The simulated cloud adds a router interface by subnet_id.",
            )
        })?
        .to_owned();
    let answer = api.sim.mutate_with(
        |state, rng, now| -> Result<Value, Fault> {
            let router = state
                .get(ResourceKind::Router, &router_id, now)
                .filter(|r| !r.is_deleting())
                .ok_or_else(|| Collection::Routers.not_found(&router_id))?;
            let subnet = state
                .get(ResourceKind::Subnet, &subnet_id, now)
                .filter(|r| !r.is_deleting())
                .ok_or_else(|| Collection::Subnets.not_found(&subnet_id))?;
            if router
                .rest
                .interfaces
                .iter()
                .any(|i| i.subnet_id == subnet_id)
            {
                return Err(Fault::bad_request(
                    SERVICE,
                    format!("Bad router request: Router already has a port on subnet {subnet_id}."),
                ));
            }
            let ResourceSpec::Subnet {
                network_id, cidr, ..
            } = &subnet.spec
            else {
                return Err(Collection::Subnets.not_found(&subnet_id));
            };
            let network_id = network_id.clone();
            let (gateway, _, _) = gateway_and_pool(cidr).ok_or_else(|| {
                Fault::bad_request(SERVICE, format!("Subnet {subnet_id} has no gateway IP."))
            })?;
            let interface = RouterInterface {
                port_id: new_id(rng),
                subnet_id: subnet_id.clone(),
                ip_address: gateway.to_string(),
            };
            state.resources.modify(&router_id, |r| {
                r.rest.interfaces.push(interface.clone());
                if let ResourceSpec::Router { subnet_ids, .. } = &mut r.spec {
                    subnet_ids.push(subnet_id.clone());
                }
            });
            Ok(interface_answer(&api, &router_id, &interface, &network_id))
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    Ok(reply(StatusCode::OK, answer))
}

async fn remove_interface(
    State(api): State<Shared>,
    Path(router_id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let port_id = str_field(&body, "port_id").map(str::to_owned);
    let subnet_id = str_field(&body, "subnet_id").map(str::to_owned);
    let answer = api.sim.mutate_with(
        |state, _, now| -> Result<Value, Fault> {
            let router = state
                .get(ResourceKind::Router, &router_id, now)
                .filter(|r| !r.is_deleting())
                .ok_or_else(|| Collection::Routers.not_found(&router_id))?;
            let interface = router
                .rest
                .interfaces
                .iter()
                .find(|i| {
                    port_id.as_deref().is_none_or(|p| p == i.port_id)
                        && subnet_id.as_deref().is_none_or(|s| s == i.subnet_id)
                        && (port_id.is_some() || subnet_id.is_some())
                })
                .cloned()
                .ok_or_else(|| {
                    Fault::not_found(
                        SERVICE,
                        "RouterInterfaceNotFound",
                        format!(
                            "Router {router_id} does not have an interface with id {}",
                            port_id
                                .as_deref()
                                .or(subnet_id.as_deref())
                                .unwrap_or_default()
                        ),
                    )
                })?;
            let network_id = match state
                .get(ResourceKind::Subnet, &interface.subnet_id, now)
                .map(|s| &s.spec)
            {
                Some(ResourceSpec::Subnet { network_id, .. }) => network_id.clone(),
                _ => String::new(),
            };
            state.resources.modify(&router_id, |r| {
                r.rest.interfaces.retain(|i| i.port_id != interface.port_id);
                if let ResourceSpec::Router { subnet_ids, .. } = &mut r.spec {
                    subnet_ids.retain(|s| *s != interface.subnet_id);
                }
            });
            Ok(interface_answer(&api, &router_id, &interface, &network_id))
        },
        |message| Fault::from_cloud(SERVICE, CloudError::Unavailable { message }),
    )?;
    Ok(reply(StatusCode::OK, answer))
}

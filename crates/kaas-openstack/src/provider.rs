//! The OpenStack cloud provider: each [`ResourceKind`] mapped onto Neutron, Octavia,
//! Nova and Keystone.
//!
//! Every resource is named deterministically and tagged with the cluster's uid where the
//! API has tags (Neutron, Octavia, Nova servers). Server groups have no tags: they are
//! found by the uid in their name. Application credentials have none either: their tags
//! are written into their description.
//!
//! Creations that take more than one call (a router and its interfaces, a security
//! group and its rules) end by tagging the resource [`COMPLETE_TAG`]. One found without
//! it was interrupted half-way: it is reported as `Error`, so the planner deletes it and
//! builds it again. A server's port is found again by its name and the machine's tag,
//! so a retry boots on the same port.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use kaas_cloud::{
    Capacity, CloudError, CloudProvider, CloudResource, Flavor, PoolMember, ResourceKind,
    ResourceRequest, ResourceSpec, ResourceStatus, SecurityGroupRule, ServerGroupPolicy,
};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::error::OsError;
use crate::session::{Request, Session};

/// The compute API microversion kaas speaks: server tags (2.52) and a server group's
/// single `policy` (2.64).
pub const COMPUTE_MICROVERSION: &str = "2.64";

/// The tag that marks a multi-call creation as finished.
pub const COMPLETE_TAG: &str = "kaas-complete";

/// The flavor `name` (a name, else an id) among `flavors`, as Nova resolves a flavor
/// reference; Nova's words when there is none.
fn find_flavor<'a>(flavors: &'a [Flavor], name: &str) -> Result<&'a Flavor> {
    flavors
        .iter()
        .find(|f| f.name == name)
        .or_else(|| flavors.iter().find(|f| f.id == name))
        .ok_or_else(|| CloudError::BadRequest {
            message: format!("Flavor {name} could not be found."),
        })
}

/// The owners Neutron gives the ports of a router's interfaces: on a legacy router,
/// a distributed (DVR) one and a highly available (HA) one.
const ROUTER_INTERFACE_OWNERS: [&str; 3] = [
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
];

/// Nova refuses longer tags.
const NOVA_TAG_MAX: usize = 60;

/// The OpenStack cloud behind one authenticated session.
pub struct OpenStackCloud {
    session: Session,
    /// Names (and ids) of flavors, images and external networks, to their ids.
    ids: Mutex<HashMap<(Lookup, String), String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lookup {
    Flavor,
    Image,
    ExternalNetwork,
}

impl std::fmt::Debug for OpenStackCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackCloud").finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, CloudError>;

/// What a call was about, for mapping the cloud's errors.
fn cloud(kind: ResourceKind, id: &str) -> impl Fn(OsError) -> CloudError + '_ {
    move |e| e.to_cloud(kind, id)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn tags_of(v: &Value) -> Vec<String> {
    v.get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// When a resource was made (RFC 3339 `created_at`), if it says.
fn created_at(v: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(str_of(v, "created_at")).ok()
}

/// An image's Glance status, for a message.
fn status_of_image(v: &Value) -> &str {
    Some(str_of(v, "status"))
        .filter(|s| !s.is_empty())
        .unwrap_or("without a status")
}

/// `a=b` → `a%3Db`: a tag as a query value.
fn query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The cluster uid in a `kaas-cluster=UID` tag.
fn cluster_uid(tag: &str) -> Option<&str> {
    tag.strip_prefix("kaas-cluster=")
}

/// The first 8 hex digits of a uid, as resource names carry them.
fn short_uid(uid: &str) -> String {
    uid.chars().filter(|c| *c != '-').take(8).collect()
}

/// A Neutron resource: its URL collection name and JSON key.
fn neutron(kind: ResourceKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        ResourceKind::Network => ("networks", "network"),
        ResourceKind::Subnet => ("subnets", "subnet"),
        ResourceKind::Router => ("routers", "router"),
        ResourceKind::SecurityGroup => ("security-groups", "security_group"),
        ResourceKind::Port => ("ports", "port"),
        ResourceKind::FloatingIp => ("floatingips", "floatingip"),
        _ => return None,
    })
}

impl OpenStackCloud {
    pub fn new(session: Session) -> Self {
        Self {
            session,
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The session, e.g. for its call counts.
    pub fn session(&self) -> &Session {
        &self.session
    }

    async fn call(&self, req: Request<'_>, kind: ResourceKind, id: &str) -> Result<Value> {
        self.session
            .request(req)
            .await
            .map(|r| r.body)
            .map_err(cloud(kind, id))
    }

    /// GET that answers `None` on 404.
    async fn get_opt(
        &self,
        req: Request<'_>,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<Value>> {
        match self.session.request(req).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e.to_cloud(kind, id)),
        }
    }

    /// DELETE that succeeds on 404: deleting what is gone is done.
    async fn delete_call(&self, req: Request<'_>, kind: ResourceKind, id: &str) -> Result<()> {
        match self.session.request(req).await {
            Ok(_) => Ok(()),
            Err(e) if e.status == Some(404) => Ok(()),
            Err(e) => Err(e.to_cloud(kind, id)),
        }
    }

    async fn list(
        &self,
        service: &str,
        path: &str,
        key: &str,
        kind: ResourceKind,
        microversion: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.session
            .list_all(service, path, key, microversion)
            .await
            .map_err(cloud(kind, ""))
    }

    // ---------------------------------------------------------------- lookups

    async fn resolve(&self, what: Lookup, name: &str) -> Result<String> {
        if let Some(id) = self.ids.lock().await.get(&(what, name.to_owned())) {
            return Ok(id.clone());
        }
        let id = match what {
            Lookup::Flavor => self.flavor(name).await?.id,
            Lookup::Image => self.image_id(name).await?,
            Lookup::ExternalNetwork => self.external_network_id(name).await?,
        };
        self.ids
            .lock()
            .await
            .insert((what, name.to_owned()), id.clone());
        Ok(id)
    }

    /// A flavor by name or id.
    async fn flavor(&self, name: &str) -> Result<Flavor> {
        find_flavor(&self.flavors().await?, name).cloned()
    }

    /// The image `name` (a name, else an id) that a server boots from: of several of
    /// that name the newest active one. One that is not active (still uploading,
    /// deactivated) cannot be booted, and the error says what it is instead.
    async fn image_id(&self, name: &str) -> Result<String> {
        let mut by_name = self
            .list(
                "image",
                &format!("/v2/images?name={}", query(name)),
                "images",
                ResourceKind::Server,
                None,
            )
            .await?;
        if !by_name.is_empty() {
            by_name.sort_by_key(|i| std::cmp::Reverse(created_at(i)));
            if let Some(image) = by_name.iter().find(|i| str_of(i, "status") == "active") {
                return Ok(str_of(image, "id").to_owned());
            }
            let statuses: Vec<String> = by_name
                .iter()
                .map(|i| format!("{} is {}", str_of(i, "id"), status_of_image(i)))
                .collect();
            return Err(CloudError::BadRequest {
                message: format!(
                    "Image {name} cannot be booted: none of that name is active ({}).",
                    statuses.join(", ")
                ),
            });
        }
        let by_id = self
            .get_opt(
                Request::get("image", &format!("/v2/images/{}", query(name))),
                ResourceKind::Server,
                name,
            )
            .await;
        match by_id {
            Ok(Some(image)) if !str_of(&image, "id").is_empty() => {
                if str_of(&image, "status") == "active" {
                    Ok(str_of(&image, "id").to_owned())
                } else {
                    Err(CloudError::BadRequest {
                        message: format!(
                            "Image {name} cannot be booted: it is {}, not active.",
                            status_of_image(&image)
                        ),
                    })
                }
            }
            _ => Err(CloudError::BadRequest {
                message: format!("Image {name} could not be found."),
            }),
        }
    }

    async fn external_network_id(&self, name: &str) -> Result<String> {
        let nets = self
            .list(
                "network",
                "/v2.0/networks?router:external=true",
                "networks",
                ResourceKind::Network,
                None,
            )
            .await?;
        nets.iter()
            .find(|n| str_of(n, "name") == name)
            .or_else(|| nets.iter().find(|n| str_of(n, "id") == name))
            .map(|n| str_of(n, "id").to_owned())
            .ok_or_else(|| CloudError::BadRequest {
                message: format!("External network {name} could not be found."),
            })
    }

    // ---------------------------------------------------------------- neutron

    /// Creates a Neutron resource with its tags. Neutron takes tags only after the
    /// resource exists, so an interrupted attempt may leave it untagged: a resource of
    /// the same name (a floating IP: on the same port) that carries no tags or ours is
    /// adopted instead of made again.
    async fn neutron_create(
        &self,
        kind: ResourceKind,
        tags: &[String],
        body: Value,
    ) -> Result<Value> {
        let (collection, key) = neutron(kind).ok_or_else(|| unsupported(kind))?;
        let filter = match kind {
            ResourceKind::FloatingIp => format!("port_id={}", query(str_of(&body, "port_id"))),
            _ => format!("name={}", query(str_of(&body, "name"))),
        };
        let mut same: Vec<Value> = self
            .list(
                "network",
                &format!("/v2.0/{collection}?{filter}"),
                collection_key(collection),
                kind,
                None,
            )
            .await?
            .into_iter()
            .filter(|r| {
                let have = tags_of(r);
                have.iter().all(|t| tags.contains(t) || t == COMPLETE_TAG)
            })
            .collect();
        same.sort_by(|a, b| str_of(a, "id").cmp(str_of(b, "id")));
        let mut resource = match same.into_iter().next() {
            Some(existing) => existing,
            None => {
                let created = self
                    .call(
                        Request::post(
                            "network",
                            &format!("/v2.0/{collection}"),
                            &json!({ key: body }),
                        ),
                        kind,
                        "",
                    )
                    .await?;
                created[key].clone()
            }
        };
        let id = str_of(&resource, "id").to_owned();
        let have = tags_of(&resource);
        if !tags.iter().all(|t| have.contains(t)) {
            // PUT .../tags replaces them all: keep the completion marker if it is there.
            let mut all: Vec<String> = tags.to_vec();
            all.extend(have.into_iter().filter(|t| t == COMPLETE_TAG));
            self.call(
                Request::put(
                    "network",
                    &format!("/v2.0/{collection}/{id}/tags"),
                    &json!({ "tags": all }),
                ),
                kind,
                &id,
            )
            .await?;
            resource["tags"] = json!(all);
        }
        Ok(resource)
    }

    async fn neutron_tag(&self, kind: ResourceKind, id: &str, tag: &str) -> Result<()> {
        let (collection, _) = neutron(kind).ok_or_else(|| unsupported(kind))?;
        self.call(
            Request::put(
                "network",
                &format!("/v2.0/{collection}/{id}/tags/{}", query(tag)),
                &Value::Null,
            ),
            kind,
            id,
        )
        .await
        .map(|_| ())
    }

    async fn neutron_find(&self, kind: ResourceKind, tag: &str) -> Result<Vec<Value>> {
        let (collection, _) = neutron(kind).ok_or_else(|| unsupported(kind))?;
        self.list(
            "network",
            &format!("/v2.0/{collection}?tags={}", query(tag)),
            collection_key(collection),
            kind,
            None,
        )
        .await
    }

    async fn neutron_get(&self, kind: ResourceKind, id: &str) -> Result<Option<Value>> {
        let (collection, key) = neutron(kind).ok_or_else(|| unsupported(kind))?;
        Ok(self
            .get_opt(
                Request::get("network", &format!("/v2.0/{collection}/{id}")),
                kind,
                id,
            )
            .await?
            .map(|body| body[key].clone()))
    }

    async fn neutron_delete(&self, kind: ResourceKind, id: &str) -> Result<()> {
        let (collection, _) = neutron(kind).ok_or_else(|| unsupported(kind))?;
        self.delete_call(
            Request::delete("network", &format!("/v2.0/{collection}/{id}")),
            kind,
            id,
        )
        .await
    }

    /// The ports of the router's interfaces, whatever kind of router it is. Its other
    /// ports (its gateway, an HA router's on its HA network, a distributed router's
    /// SNAT ports) are Neutron's own and go with the router.
    async fn router_interfaces(&self, router_id: &str) -> Result<Vec<Value>> {
        let ports = self
            .list(
                "network",
                &format!("/v2.0/ports?device_id={}", query(router_id)),
                "ports",
                ResourceKind::Router,
                None,
            )
            .await?;
        Ok(ports
            .into_iter()
            .filter(|p| ROUTER_INTERFACE_OWNERS.contains(&str_of(p, "device_owner")))
            .collect())
    }

    async fn create_router(
        &self,
        request: &ResourceRequest,
        external_network: &str,
        subnet_ids: &[String],
    ) -> Result<Value> {
        let external = self
            .resolve(Lookup::ExternalNetwork, external_network)
            .await?;
        let router = self
            .neutron_create(
                ResourceKind::Router,
                &request.tags,
                json!({
                    "name": request.name,
                    "description": format!("kaas: interfaces on {}", subnet_ids.join(",")),
                    "external_gateway_info": { "network_id": external },
                }),
            )
            .await?;
        let id = str_of(&router, "id").to_owned();
        for subnet in subnet_ids {
            let added = self
                .session
                .request(Request::put(
                    "network",
                    &format!("/v2.0/routers/{id}/add_router_interface"),
                    &json!({ "subnet_id": subnet }),
                ))
                .await;
            match added {
                Ok(_) => {}
                // Already there (a retry): fine.
                Err(e) if e.status == Some(400) && e.message.contains("already has") => {}
                Err(e) => return Err(e.to_cloud(ResourceKind::Router, &id)),
            }
        }
        self.neutron_tag(ResourceKind::Router, &id, COMPLETE_TAG)
            .await?;
        let mut router = router;
        if let Some(tags) = router["tags"].as_array_mut() {
            tags.push(json!(COMPLETE_TAG));
        }
        Ok(router)
    }

    async fn delete_router(&self, id: &str) -> Result<()> {
        for port in self.router_interfaces(id).await? {
            let removed = self
                .session
                .request(Request::put(
                    "network",
                    &format!("/v2.0/routers/{id}/remove_router_interface"),
                    &json!({ "port_id": str_of(&port, "id") }),
                ))
                .await;
            match removed {
                Ok(_) => {}
                Err(e) if e.status == Some(404) => {}
                Err(e) => return Err(e.to_cloud(ResourceKind::Router, id)),
            }
        }
        self.neutron_delete(ResourceKind::Router, id).await
    }

    async fn create_security_group(
        &self,
        request: &ResourceRequest,
        rules: &[SecurityGroupRule],
    ) -> Result<Value> {
        let group = self
            .neutron_create(
                ResourceKind::SecurityGroup,
                &request.tags,
                json!({
                    "name": request.name,
                    "description": "kaas: managed with the cluster",
                }),
            )
            .await?;
        let id = str_of(&group, "id").to_owned();
        let mut bodies = Vec::new();
        for rule in rules {
            let remote_group_id = match &rule.remote_group {
                None => None,
                Some(name) if *name == request.name => Some(id.clone()),
                Some(name) => Some(self.security_group_id(name, &request.tags).await?),
            };
            let ports = rule.protocol != "icmp";
            bodies.push(json!({
                "security_group_id": id,
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": rule.protocol,
                "port_range_min": ports.then_some(rule.port_min),
                "port_range_max": ports.then_some(rule.port_max),
                "remote_ip_prefix": rule.remote_cidr,
                "remote_group_id": remote_group_id,
                "description": rule.description,
            }));
        }
        if !bodies.is_empty() {
            let created = self
                .session
                .request(Request::post(
                    "network",
                    "/v2.0/security-group-rules",
                    &json!({ "security_group_rules": bodies }),
                ))
                .await;
            match created {
                Ok(_) => {}
                // A retry that finds its rules made (Neutron makes a bulk all or none):
                // fine. Any other refusal, Neutron's 409 `OverQuota` among them, leaves
                // the group unfinished.
                Err(e) if e.status == Some(409) && e.is_code("SecurityGroupRuleExists") => {}
                Err(e) => return Err(e.to_cloud(ResourceKind::SecurityGroup, &id)),
            }
        }
        self.neutron_tag(ResourceKind::SecurityGroup, &id, COMPLETE_TAG)
            .await?;
        let mut group = group;
        if let Some(tags) = group["tags"].as_array_mut() {
            tags.push(json!(COMPLETE_TAG));
        }
        Ok(group)
    }

    async fn security_group_id(&self, name: &str, tags: &[String]) -> Result<String> {
        let tag = tags.first().map(String::as_str).unwrap_or_default();
        self.neutron_find(ResourceKind::SecurityGroup, tag)
            .await?
            .iter()
            .find(|g| str_of(g, "name") == name)
            .map(|g| str_of(g, "id").to_owned())
            .ok_or_else(|| CloudError::BadRequest {
                message: format!("Security group {name} could not be found."),
            })
    }

    fn view_neutron(kind: ResourceKind, v: &Value) -> CloudResource {
        let tags = tags_of(v);
        let status = str_of(v, "status");
        let multi_call = matches!(kind, ResourceKind::Router | ResourceKind::SecurityGroup);
        let status = if status == "ERROR" {
            ResourceStatus::Error {
                message: format!("{kind} is in ERROR"),
            }
        } else if multi_call && !tags.iter().any(|t| t == COMPLETE_TAG) {
            ResourceStatus::Error {
                message: format!(
                    "{kind} {} was left half-built (its creation was interrupted)",
                    str_of(v, "name")
                ),
            }
        } else if status == "BUILD" || status == "ALLOCATING" {
            ResourceStatus::Pending
        } else {
            // Ports are DOWN until bound, floating IPs until associated: they exist and
            // may be used, which is what matters here.
            ResourceStatus::Active
        };
        let address = match kind {
            ResourceKind::Port => v["fixed_ips"]
                .as_array()
                .and_then(|ips| ips.first())
                .map(|ip| str_of(ip, "ip_address").to_owned()),
            ResourceKind::FloatingIp => Some(str_of(v, "floating_ip_address").to_owned()),
            _ => None,
        };
        let name = match kind {
            ResourceKind::FloatingIp => str_of(v, "description"),
            _ => str_of(v, "name"),
        };
        CloudResource {
            kind,
            id: str_of(v, "id").to_owned(),
            name: name.to_owned(),
            tags: tags.into_iter().filter(|t| t != COMPLETE_TAG).collect(),
            status,
            address: address.filter(|a| !a.is_empty()),
        }
    }

    // ---------------------------------------------------------------- octavia

    async fn create_load_balancer(
        &self,
        request: &ResourceRequest,
        subnet_id: &str,
        vip_port_id: &str,
        port: u16,
    ) -> Result<Value> {
        let vip = self
            .neutron_get(ResourceKind::Port, vip_port_id)
            .await?
            .ok_or_else(|| CloudError::BadRequest {
                message: format!("VIP port {vip_port_id} could not be found."),
            })?;
        let vip_address = vip["fixed_ips"]
            .as_array()
            .and_then(|ips| {
                ips.iter()
                    .find(|ip| str_of(ip, "subnet_id") == subnet_id)
                    .or(ips.first())
            })
            .map(|ip| str_of(ip, "ip_address").to_owned())
            .unwrap_or_default();
        // The listener, pool and health monitor follow one at a time once it is ACTIVE
        // (see `ensure_api_tree`): Octavia takes one change of a load balancer at a
        // time, and each is found again by its parent after an interruption.
        let body = json!({ "loadbalancer": {
            "name": request.name,
            "description": format!("kaas: the cluster's Kubernetes API on port {port}"),
            "vip_port_id": vip_port_id,
            "vip_subnet_id": subnet_id,
            "vip_address": vip_address,
            "tags": request.tags,
        }});
        let created = self
            .call(
                Request::post("load-balancer", "/v2/lbaas/loadbalancers", &body),
                ResourceKind::LoadBalancer,
                "",
            )
            .await?;
        Ok(created["loadbalancer"].clone())
    }

    /// Makes sure the API load balancer has its TCP listener on `port`, a pool and a
    /// health monitor, creating the first that is missing. Octavia refuses a second
    /// change while the load balancer is busy with one, so after a creation this
    /// answers `InProgress` and the caller comes back later (a requeue, not a sleep).
    /// The pool's id once the whole tree is there.
    async fn ensure_api_tree(&self, lb: &Value, port: u16) -> Result<String> {
        let kind = ResourceKind::LoadBalancer;
        let lb_id = str_of(lb, "id");
        let name = str_of(lb, "name");
        let busy = |what: &str| CloudError::InProgress {
            message: format!("building the load balancer {name}: {what} is being created"),
        };
        let listeners = self
            .list(
                "load-balancer",
                &format!("/v2/lbaas/listeners?loadbalancer_id={lb_id}"),
                "listeners",
                kind,
                None,
            )
            .await?;
        let Some(listener) = listeners.first() else {
            let body = json!({ "listener": {
                "name": name,
                "loadbalancer_id": lb_id,
                "protocol": "TCP",
                "protocol_port": port,
            }});
            self.call(
                Request::post("load-balancer", "/v2/lbaas/listeners", &body),
                kind,
                lb_id,
            )
            .await?;
            return Err(busy("its listener"));
        };
        let pools = self
            .list(
                "load-balancer",
                &format!("/v2/lbaas/pools?loadbalancer_id={lb_id}"),
                "pools",
                kind,
                None,
            )
            .await?;
        let Some(pool) = pools.first() else {
            let body = json!({ "pool": {
                "name": name,
                "listener_id": str_of(listener, "id"),
                "protocol": "TCP",
                "lb_algorithm": "ROUND_ROBIN",
            }});
            self.call(
                Request::post("load-balancer", "/v2/lbaas/pools", &body),
                kind,
                lb_id,
            )
            .await?;
            return Err(busy("its pool"));
        };
        let pool_id = str_of(pool, "id").to_owned();
        if pool["healthmonitor_id"].as_str().is_none_or(str::is_empty) {
            let body = json!({ "healthmonitor": {
                "name": name,
                "pool_id": pool_id,
                "type": "TCP",
                "delay": 10,
                "timeout": 5,
                "max_retries": 3,
            }});
            self.call(
                Request::post("load-balancer", "/v2/lbaas/healthmonitors", &body),
                kind,
                lb_id,
            )
            .await?;
            return Err(busy("its health monitor"));
        }
        Ok(pool_id)
    }

    fn view_load_balancer(v: &Value) -> CloudResource {
        let status = match str_of(v, "provisioning_status") {
            // An update (a listener, pool or member being added) does not stop it
            // from serving.
            "ACTIVE" | "PENDING_UPDATE" => ResourceStatus::Active,
            "PENDING_DELETE" | "DELETED" => ResourceStatus::Deleting,
            "ERROR" => ResourceStatus::Error {
                message: format!(
                    "load balancer in ERROR (operating status {})",
                    str_of(v, "operating_status")
                ),
            },
            _ => ResourceStatus::Pending,
        };
        CloudResource {
            kind: ResourceKind::LoadBalancer,
            id: str_of(v, "id").to_owned(),
            name: str_of(v, "name").to_owned(),
            tags: tags_of(v),
            status,
            address: Some(str_of(v, "vip_address").to_owned()).filter(|a| !a.is_empty()),
        }
    }

    /// kaas's own load balancers that carry `tag`, as Octavia filters them. Those the
    /// cluster's cloud controller made carry none of kaas's tags: they are found by
    /// name when the cluster is deleted ([`CloudProvider::find_untagged`]).
    async fn find_load_balancers(&self, tag: &str) -> Result<Vec<CloudResource>> {
        let tagged = self
            .list(
                "load-balancer",
                &format!("/v2/lbaas/loadbalancers?tags={}", query(tag)),
                "loadbalancers",
                ResourceKind::LoadBalancer,
                None,
            )
            .await?;
        Ok(tagged
            .iter()
            .filter(|lb| tags_of(lb).iter().any(|t| t == tag))
            .map(Self::view_load_balancer)
            .collect())
    }

    async fn delete_load_balancer(&self, id: &str) -> Result<()> {
        let kind = ResourceKind::LoadBalancer;
        let Some(lb) = self
            .get_opt(
                Request::get("load-balancer", &format!("/v2/lbaas/loadbalancers/{id}")),
                kind,
                id,
            )
            .await?
        else {
            return Ok(());
        };
        let lb = &lb["loadbalancer"];
        if str_of(lb, "provisioning_status") == "PENDING_DELETE" {
            return Ok(());
        }
        // A load balancer of the cluster's cloud controller may carry a floating IP
        // kaas did not make: it goes too.
        if str_of(lb, "name").starts_with("kube_service_") {
            let port = str_of(lb, "vip_port_id");
            if !port.is_empty() {
                let fips = self
                    .list(
                        "network",
                        &format!("/v2.0/floatingips?port_id={port}"),
                        "floatingips",
                        ResourceKind::FloatingIp,
                        None,
                    )
                    .await?;
                for fip in fips {
                    self.neutron_delete(ResourceKind::FloatingIp, str_of(&fip, "id"))
                        .await?;
                }
            }
        }
        self.delete_call(
            Request::delete(
                "load-balancer",
                &format!("/v2/lbaas/loadbalancers/{id}?cascade=true"),
            ),
            kind,
            id,
        )
        .await
    }

    // ---------------------------------------------------------------- nova

    fn view_server(v: &Value) -> CloudResource {
        let status = str_of(v, "status");
        let task = str_of(v, "OS-EXT-STS:task_state");
        let status = if task == "deleting" || matches!(status, "DELETED" | "SOFT_DELETED") {
            ResourceStatus::Deleting
        } else {
            match status {
                "ACTIVE" => ResourceStatus::Active,
                "ERROR" => ResourceStatus::Error {
                    message: v["fault"]["message"]
                        .as_str()
                        .map_or_else(|| "server in ERROR".to_owned(), str::to_owned),
                },
                _ => ResourceStatus::Pending,
            }
        };
        let address = v["addresses"].as_object().and_then(|nets| {
            nets.values()
                .filter_map(Value::as_array)
                .flatten()
                .find(|a| a["version"].as_u64() == Some(4))
                .map(|a| str_of(a, "addr").to_owned())
        });
        CloudResource {
            kind: ResourceKind::Server,
            id: str_of(v, "id").to_owned(),
            name: str_of(v, "name").to_owned(),
            tags: tags_of(v),
            status,
            address,
        }
    }

    /// The server's own port: the free one of its name and machine tag (left by an
    /// earlier attempt), or a new one.
    async fn server_port(
        &self,
        request: &ResourceRequest,
        network_id: &str,
        security_group_ids: &[String],
    ) -> Result<Value> {
        let machine_tag = request
            .tags
            .iter()
            .find(|t| t.starts_with("kaas-machine="))
            .or(request.tags.first())
            .cloned()
            .unwrap_or_default();
        let mut ports: Vec<Value> = self
            .neutron_find(ResourceKind::Port, &machine_tag)
            .await?
            .into_iter()
            .filter(|p| str_of(p, "name") == request.name)
            .collect();
        ports.sort_by(|a, b| str_of(a, "id").cmp(str_of(b, "id")));
        if let Some(port) = ports.first() {
            let device = str_of(port, "device_id");
            if device.is_empty() {
                return Ok(port.clone());
            }
            // Still held by an earlier server of this machine that is going away.
            return Err(CloudError::Conflict {
                message: format!(
                    "port {} of {} is still attached to server {device}",
                    str_of(port, "id"),
                    request.name
                ),
            });
        }
        self.neutron_create(
            ResourceKind::Port,
            &request.tags,
            json!({
                "name": request.name,
                "network_id": network_id,
                "security_groups": security_group_ids,
                "description": "kaas: the server's port",
            }),
        )
        .await
    }

    async fn create_server(&self, request: &ResourceRequest) -> Result<CloudResource> {
        let ResourceSpec::Server {
            flavor,
            image,
            network_id,
            security_group_ids,
            server_group_id,
            availability_zone,
            user_data,
            metadata,
        } = &request.spec
        else {
            return Err(unsupported(ResourceKind::Server));
        };
        let flavor_id = self.resolve(Lookup::Flavor, flavor).await?;
        let image_id = self.resolve(Lookup::Image, image).await?;
        let port = self
            .server_port(request, network_id, security_group_ids)
            .await?;
        let port_id = str_of(&port, "id");
        let tags: Vec<&String> = request
            .tags
            .iter()
            .filter(|t| t.len() <= NOVA_TAG_MAX && !t.contains('/') && !t.contains(','))
            .collect();
        // Nova keeps metadata values to 255 characters.
        let metadata: BTreeMap<&String, String> = metadata
            .iter()
            .map(|(k, v)| (k, v.chars().take(255).collect()))
            .collect();
        let mut server = json!({
            "name": request.name,
            "flavorRef": flavor_id,
            "imageRef": image_id,
            "networks": [{ "port": port_id }],
            "user_data": user_data.0,
            "metadata": metadata,
            "tags": tags,
        });
        if let Some(zone) = availability_zone {
            server["availability_zone"] = json!(zone);
        }
        let mut body = json!({ "server": server });
        if let Some(group) = server_group_id {
            body["os:scheduler_hints"] = json!({ "group": group });
        }
        let created = self
            .call(
                Request::post("compute", "/servers", &body).microversion(COMPUTE_MICROVERSION),
                ResourceKind::Server,
                "",
            )
            .await?;
        let id = str_of(&created["server"], "id").to_owned();
        Ok(CloudResource {
            kind: ResourceKind::Server,
            id,
            name: request.name.clone(),
            tags: request.tags.clone(),
            status: ResourceStatus::Pending,
            address: port["fixed_ips"]
                .as_array()
                .and_then(|ips| ips.first())
                .map(|ip| str_of(ip, "ip_address").to_owned()),
        })
    }

    /// Every load balancer of the project (page by page).
    async fn list_load_balancers(&self) -> Result<Vec<Value>> {
        self.list(
            "load-balancer",
            "/v2/lbaas/loadbalancers",
            "loadbalancers",
            ResourceKind::LoadBalancer,
            None,
        )
        .await
    }

    /// Every server group of the project.
    async fn list_server_groups(&self) -> Result<Vec<Value>> {
        self.list(
            "compute",
            "/os-server-groups",
            "server_groups",
            ResourceKind::ServerGroup,
            Some(COMPUTE_MICROVERSION),
        )
        .await
    }

    /// Every application credential of kaas' user (they carry no tags of their own).
    async fn list_credentials(&self) -> Result<Vec<Value>> {
        self.list(
            "identity",
            &self.credentials_path(),
            "application_credentials",
            ResourceKind::ApplicationCredential,
            None,
        )
        .await
    }

    async fn find_server_groups(&self, tag: &str) -> Result<Vec<CloudResource>> {
        let Some(uid) = cluster_uid(tag) else {
            return Ok(Vec::new());
        };
        let marker = format!("-{}-", short_uid(uid));
        let groups = self.list_server_groups().await?;
        Ok(groups
            .iter()
            .filter(|g| {
                let name = str_of(g, "name");
                name.starts_with("kaas-") && name.contains(&marker)
            })
            .map(|g| view_server_group(g, vec![tag.to_owned()]))
            .collect())
    }

    // ---------------------------------------------------------------- keystone

    fn credentials_path(&self) -> String {
        format!("/users/{}/application_credentials", self.session.user_id())
    }

    async fn create_application_credential(
        &self,
        request: &ResourceRequest,
    ) -> Result<CloudResource> {
        let ResourceSpec::ApplicationCredential {
            secret,
            roles,
            description,
        } = &request.spec
        else {
            return Err(unsupported(ResourceKind::ApplicationCredential));
        };
        let kind = ResourceKind::ApplicationCredential;
        let mut body = json!({
            "name": request.name,
            "secret": secret.0,
            "description": format!("{description} [{}]", request.tags.join(" ")),
            // It cannot make credentials or trusts of its own.
            "unrestricted": false,
        });
        if !roles.is_empty() {
            body["roles"] = json!(
                roles
                    .iter()
                    .map(|r| json!({ "name": r }))
                    .collect::<Vec<_>>()
            );
        }
        let path = self.credentials_path();
        let created = self
            .session
            .request(Request::post(
                "identity",
                &path,
                &json!({ "application_credential": body }),
            ))
            .await;
        match created {
            Ok(r) => Ok(view_credential(&r.body["application_credential"])),
            // Made by an interrupted attempt with the same (sealed) secret: adopt it.
            Err(e) if e.status == Some(409) => self
                .list(
                    "identity",
                    &format!("{path}?name={}", query(&request.name)),
                    "application_credentials",
                    kind,
                    None,
                )
                .await?
                .first()
                .map(view_credential)
                .ok_or_else(|| e.to_cloud(kind, "")),
            Err(e) => Err(e.to_cloud(kind, "")),
        }
    }
}

fn view_server_group(v: &Value, tags: Vec<String>) -> CloudResource {
    CloudResource {
        kind: ResourceKind::ServerGroup,
        id: str_of(v, "id").to_owned(),
        name: str_of(v, "name").to_owned(),
        tags,
        status: ResourceStatus::Active,
        address: None,
    }
}

/// An application credential; its tags are the bracketed end of its description.
fn view_credential(v: &Value) -> CloudResource {
    let description = str_of(v, "description");
    let tags = description
        .rsplit_once('[')
        .and_then(|(_, t)| t.strip_suffix(']'))
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    CloudResource {
        kind: ResourceKind::ApplicationCredential,
        id: str_of(v, "id").to_owned(),
        name: str_of(v, "name").to_owned(),
        tags,
        status: ResourceStatus::Active,
        address: None,
    }
}

fn collection_key(collection: &str) -> &str {
    match collection {
        "security-groups" => "security_groups",
        other => other,
    }
}

fn unsupported(kind: ResourceKind) -> CloudError {
    CloudError::BadRequest {
        message: format!("{kind}: not an operation of this resource kind"),
    }
}

#[async_trait]
impl CloudProvider for OpenStackCloud {
    fn name(&self) -> &'static str {
        "openstack"
    }

    fn auth_url(&self) -> String {
        self.session.config().auth_url.clone()
    }

    async fn create(&self, request: &ResourceRequest) -> Result<CloudResource> {
        let kind = request.kind();
        let resource = match &request.spec {
            ResourceSpec::Network { mtu } => {
                let mut body = json!({ "name": request.name });
                if let Some(mtu) = mtu {
                    body["mtu"] = json!(mtu);
                }
                self.neutron_create(kind, &request.tags, body).await?
            }
            ResourceSpec::Subnet {
                network_id,
                cidr,
                dns_servers,
            } => {
                self.neutron_create(
                    kind,
                    &request.tags,
                    json!({
                        "name": request.name,
                        "network_id": network_id,
                        "cidr": cidr,
                        "ip_version": 4,
                        "dns_nameservers": dns_servers,
                    }),
                )
                .await?
            }
            ResourceSpec::Router {
                external_network,
                subnet_ids,
            } => {
                self.create_router(request, external_network, subnet_ids)
                    .await?
            }
            ResourceSpec::SecurityGroup { rules } => {
                self.create_security_group(request, rules).await?
            }
            ResourceSpec::Port {
                network_id,
                subnet_id,
                security_group_ids,
            } => {
                self.neutron_create(
                    kind,
                    &request.tags,
                    json!({
                        "name": request.name,
                        "network_id": network_id,
                        "fixed_ips": [{ "subnet_id": subnet_id }],
                        "security_groups": security_group_ids,
                        "description": "kaas: the API load balancer's VIP",
                    }),
                )
                .await?
            }
            ResourceSpec::FloatingIp {
                external_network,
                port_id,
            } => {
                let external = self
                    .resolve(Lookup::ExternalNetwork, external_network)
                    .await?;
                self.neutron_create(
                    kind,
                    &request.tags,
                    json!({
                        "floating_network_id": external,
                        "port_id": port_id,
                        "description": request.name,
                    }),
                )
                .await?
            }
            ResourceSpec::LoadBalancer {
                subnet_id,
                vip_port_id,
                port,
            } => {
                let lb = self
                    .create_load_balancer(request, subnet_id, vip_port_id, *port)
                    .await?;
                return Ok(Self::view_load_balancer(&lb));
            }
            ResourceSpec::ServerGroup { policy } => {
                let policy = match policy {
                    ServerGroupPolicy::AntiAffinity => "anti-affinity",
                    ServerGroupPolicy::SoftAntiAffinity => "soft-anti-affinity",
                };
                let created = self
                    .call(
                        Request::post(
                            "compute",
                            "/os-server-groups",
                            &json!({ "server_group": { "name": request.name, "policy": policy } }),
                        )
                        .microversion(COMPUTE_MICROVERSION),
                        kind,
                        "",
                    )
                    .await?;
                return Ok(view_server_group(
                    &created["server_group"],
                    request.tags.clone(),
                ));
            }
            ResourceSpec::Server { .. } => return self.create_server(request).await,
            ResourceSpec::ApplicationCredential { .. } => {
                return self.create_application_credential(request).await;
            }
        };
        Ok(Self::view_neutron(kind, &resource))
    }

    async fn get(&self, kind: ResourceKind, id: &str) -> Result<Option<CloudResource>> {
        match kind {
            ResourceKind::Network
            | ResourceKind::Subnet
            | ResourceKind::Router
            | ResourceKind::SecurityGroup
            | ResourceKind::Port
            | ResourceKind::FloatingIp => Ok(self
                .neutron_get(kind, id)
                .await?
                .map(|v| Self::view_neutron(kind, &v))),
            ResourceKind::LoadBalancer => Ok(self
                .get_opt(
                    Request::get("load-balancer", &format!("/v2/lbaas/loadbalancers/{id}")),
                    kind,
                    id,
                )
                .await?
                .map(|v| Self::view_load_balancer(&v["loadbalancer"]))),
            ResourceKind::Server => Ok(self
                .get_opt(
                    Request::get("compute", &format!("/servers/{id}"))
                        .microversion(COMPUTE_MICROVERSION),
                    kind,
                    id,
                )
                .await?
                .map(|v| Self::view_server(&v["server"]))),
            ResourceKind::ServerGroup => Ok(self
                .get_opt(
                    Request::get("compute", &format!("/os-server-groups/{id}"))
                        .microversion(COMPUTE_MICROVERSION),
                    kind,
                    id,
                )
                .await?
                .map(|v| view_server_group(&v["server_group"], Vec::new()))),
            ResourceKind::ApplicationCredential => Ok(self
                .get_opt(
                    Request::get("identity", &format!("{}/{id}", self.credentials_path())),
                    kind,
                    id,
                )
                .await?
                .map(|v| view_credential(&v["application_credential"]))),
        }
    }

    async fn find(&self, kind: ResourceKind, tag: &str) -> Result<Vec<CloudResource>> {
        match kind {
            ResourceKind::Network
            | ResourceKind::Subnet
            | ResourceKind::Router
            | ResourceKind::SecurityGroup
            | ResourceKind::Port
            | ResourceKind::FloatingIp => Ok(self
                .neutron_find(kind, tag)
                .await?
                .iter()
                .map(|v| Self::view_neutron(kind, v))
                .collect()),
            ResourceKind::LoadBalancer => self.find_load_balancers(tag).await,
            ResourceKind::Server => Ok(self
                .list(
                    "compute",
                    &format!("/servers/detail?tags={}", query(tag)),
                    "servers",
                    kind,
                    Some(COMPUTE_MICROVERSION),
                )
                .await?
                .iter()
                .map(Self::view_server)
                .collect()),
            ResourceKind::ServerGroup => self.find_server_groups(tag).await,
            ResourceKind::ApplicationCredential => Ok(self
                .list_credentials()
                .await?
                .iter()
                .map(view_credential)
                .filter(|c| c.tags.iter().any(|t| t == tag))
                .collect()),
        }
    }

    async fn find_many(
        &self,
        kind: ResourceKind,
        tags: &[String],
    ) -> Result<HashMap<String, Vec<CloudResource>>> {
        let mut found: HashMap<String, Vec<CloudResource>> =
            tags.iter().map(|t| (t.clone(), Vec::new())).collect();
        // One listing of the whole project (page by page), shared out by tag, or by
        // the short uid in a server group's name, as `find` matches each.
        let all = match kind {
            ResourceKind::Network
            | ResourceKind::Subnet
            | ResourceKind::Router
            | ResourceKind::SecurityGroup
            | ResourceKind::Port
            | ResourceKind::FloatingIp => {
                let (collection, _) = neutron(kind).ok_or_else(|| unsupported(kind))?;
                self.list(
                    "network",
                    &format!("/v2.0/{collection}"),
                    collection_key(collection),
                    kind,
                    None,
                )
                .await?
            }
            ResourceKind::Server => {
                self.list(
                    "compute",
                    "/servers/detail",
                    "servers",
                    kind,
                    Some(COMPUTE_MICROVERSION),
                )
                .await?
            }
            ResourceKind::LoadBalancer => self.list_load_balancers().await?,
            ResourceKind::ServerGroup => {
                let groups = self.list_server_groups().await?;
                let mut by_short: HashMap<String, Vec<&String>> = HashMap::new();
                for tag in tags {
                    if let Some(uid) = cluster_uid(tag) {
                        by_short.entry(short_uid(uid)).or_default().push(tag);
                    }
                }
                for g in &groups {
                    let name = str_of(g, "name");
                    if !name.starts_with("kaas-") {
                        continue;
                    }
                    let mut owners: Vec<&String> = Vec::new();
                    for part in name.split('-') {
                        for tag in by_short.get(part).into_iter().flatten() {
                            if !owners.contains(tag) {
                                owners.push(tag);
                            }
                        }
                    }
                    for tag in owners {
                        if let Some(list) = found.get_mut(tag.as_str()) {
                            list.push(view_server_group(g, vec![tag.clone()]));
                        }
                    }
                }
                return Ok(found);
            }
            ResourceKind::ApplicationCredential => self.list_credentials().await?,
        };
        for v in &all {
            let resource = match kind {
                ResourceKind::Server => Self::view_server(v),
                ResourceKind::LoadBalancer => Self::view_load_balancer(v),
                ResourceKind::ApplicationCredential => view_credential(v),
                _ => Self::view_neutron(kind, v),
            };
            for tag in &resource.tags {
                if let Some(list) = found.get_mut(tag) {
                    list.push(resource.clone());
                }
            }
        }
        Ok(found)
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<()> {
        match kind {
            ResourceKind::Router => self.delete_router(id).await,
            ResourceKind::Network
            | ResourceKind::Subnet
            | ResourceKind::SecurityGroup
            | ResourceKind::Port
            | ResourceKind::FloatingIp => self.neutron_delete(kind, id).await,
            ResourceKind::LoadBalancer => self.delete_load_balancer(id).await,
            ResourceKind::Server => {
                self.delete_call(
                    Request::delete("compute", &format!("/servers/{id}"))
                        .microversion(COMPUTE_MICROVERSION),
                    kind,
                    id,
                )
                .await
            }
            ResourceKind::ServerGroup => {
                self.delete_call(
                    Request::delete("compute", &format!("/os-server-groups/{id}"))
                        .microversion(COMPUTE_MICROVERSION),
                    kind,
                    id,
                )
                .await
            }
            ResourceKind::ApplicationCredential => {
                self.delete_call(
                    Request::delete("identity", &format!("{}/{id}", self.credentials_path())),
                    kind,
                    id,
                )
                .await
            }
        }
    }

    async fn find_untagged(&self, tag: &str) -> Result<Vec<CloudResource>> {
        let Some(uid) = cluster_uid(tag) else {
            return Ok(Vec::new());
        };
        let marker = format!("-{}", short_uid(uid));
        let ours = |name: &str| {
            name.starts_with("kaas-")
                && (name.ends_with(&marker) || name.contains(&format!("{marker}-")))
        };
        let untagged = |v: &Value| !tags_of(v).iter().any(|t| t.starts_with("kaas-cluster="));
        let mut found = Vec::new();
        let mut networks = Vec::new();
        for kind in [
            ResourceKind::Network,
            ResourceKind::Subnet,
            ResourceKind::Router,
            ResourceKind::SecurityGroup,
            ResourceKind::FloatingIp,
        ] {
            let (collection, _) = neutron(kind).ok_or_else(|| unsupported(kind))?;
            let all = self
                .list(
                    "network",
                    &format!("/v2.0/{collection}"),
                    collection_key(collection),
                    kind,
                    None,
                )
                .await?;
            for v in &all {
                let mut r = Self::view_neutron(kind, v);
                let mine = tags_of(v).iter().any(|t| t == tag);
                if kind == ResourceKind::Network && mine {
                    networks.push(r.id.clone());
                }
                if untagged(v) && ours(&r.name) {
                    if kind == ResourceKind::Network {
                        networks.push(r.id.clone());
                    }
                    r.tags = vec![tag.to_owned()];
                    found.push(r);
                }
            }
        }
        // The load balancers the cluster's cloud controller made for its Services: named
        // after the cluster's uid (kaas gives it the uid as its cluster name), without
        // kaas's tags, they go with the cluster.
        let service_prefix = format!("kube_service_{uid}_");
        for lb in self.list_load_balancers().await? {
            if str_of(&lb, "name").starts_with(&service_prefix) && untagged(&lb) {
                let mut r = Self::view_load_balancer(&lb);
                r.tags = vec![tag.to_owned()];
                found.push(r);
            }
        }
        // Ports are named after machines, not the cluster: any port on the cluster's
        // networks without tags that no router or DHCP agent owns is one.
        for network in networks {
            let ports = self
                .list(
                    "network",
                    &format!("/v2.0/ports?network_id={network}"),
                    "ports",
                    ResourceKind::Port,
                    None,
                )
                .await?;
            for v in ports.iter().filter(|p| untagged(p)) {
                if str_of(v, "device_owner").starts_with("network:") {
                    continue;
                }
                let mut r = Self::view_neutron(ResourceKind::Port, v);
                r.tags = vec![tag.to_owned()];
                found.push(r);
            }
        }
        Ok(found)
    }

    async fn flavors(&self) -> Result<Vec<Flavor>> {
        let flavors = self
            .list(
                "compute",
                "/flavors/detail?is_public=None",
                "flavors",
                ResourceKind::Server,
                Some(COMPUTE_MICROVERSION),
            )
            .await?;
        Ok(flavors
            .iter()
            .map(|f| Flavor {
                id: str_of(f, "id").to_owned(),
                name: str_of(f, "name").to_owned(),
                vcpus: f["vcpus"]
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
                ram_mib: f["ram"].as_u64().unwrap_or(0),
                disk_gib: f["disk"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    async fn preflight(&self, needs: &Capacity) -> Result<()> {
        let (mut instances, mut cores, mut ram) = (0u64, 0u64, 0u64);
        // One listing for every need.
        let flavors = self.flavors().await?;
        for need in &needs.servers {
            let flavor = find_flavor(&flavors, &need.flavor)?;
            self.ids
                .lock()
                .await
                .insert((Lookup::Flavor, need.flavor.clone()), flavor.id.clone());
            self.resolve(Lookup::Image, &need.image).await?;
            let n = u64::from(need.count);
            instances += n;
            cores += n * u64::from(flavor.vcpus);
            ram += n * flavor.ram_mib;
        }
        let limits = self
            .call(
                Request::get("compute", "/limits").microversion(COMPUTE_MICROVERSION),
                ResourceKind::Server,
                "",
            )
            .await?;
        let absolute = &limits["limits"]["absolute"];
        for (resource, requested, max, used) in [
            (
                "instances",
                instances,
                "maxTotalInstances",
                "totalInstancesUsed",
            ),
            ("cores", cores, "maxTotalCores", "totalCoresUsed"),
            ("ram", ram, "maxTotalRAMSize", "totalRAMUsed"),
        ] {
            let (Some(max), Some(used)) = (absolute[max].as_i64(), absolute[used].as_i64()) else {
                continue;
            };
            // -1: unlimited.
            if max >= 0 && used.max(0) as u64 + requested > max as u64 {
                return Err(CloudError::QuotaExceeded {
                    message: format!(
                        "Quota exceeded for {resource}: Requested {requested}, but already used \
                         {used} of {max} {resource}"
                    ),
                });
            }
        }
        Ok(())
    }

    async fn set_load_balancer_members(
        &self,
        load_balancer_id: &str,
        members: &[PoolMember],
    ) -> Result<()> {
        let kind = ResourceKind::LoadBalancer;
        let lb = self
            .call(
                Request::get(
                    "load-balancer",
                    &format!("/v2/lbaas/loadbalancers/{load_balancer_id}"),
                ),
                kind,
                load_balancer_id,
            )
            .await?;
        let lb = &lb["loadbalancer"];
        let port = members.first().map_or(6443, |m| m.port);
        let pool_id = self.ensure_api_tree(lb, port).await?;
        let subnet = str_of(lb, "vip_subnet_id");
        let members: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "address": m.address,
                    "protocol_port": m.port,
                    "subnet_id": subnet,
                    "name": format!("{}:{}", m.address, m.port),
                })
            })
            .collect();
        // A batch update makes the pool exactly these members.
        self.call(
            Request::put(
                "load-balancer",
                &format!("/v2/lbaas/pools/{pool_id}/members"),
                &json!({ "members": members }),
            ),
            kind,
            load_balancer_id,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::TimeDelta;

    use super::*;
    use crate::scripted::{Fake, reply};

    /// The provider on a scripted cloud: every service is the fake.
    async fn scripted() -> (Fake, OpenStackCloud) {
        let fake = Fake::start().await;
        let mut config = fake.config();
        for service in ["load-balancer", "image"] {
            config
                .endpoint_override
                .insert(service.to_owned(), format!("{}/", fake.url));
        }
        fake.push(fake.token("t1", TimeDelta::hours(1)));
        let cloud = OpenStackCloud::new(Session::new(config).await.unwrap());
        (fake, cloud)
    }

    /// The calls made after authenticating, as `METHOD PATH`.
    fn calls(fake: &Fake) -> Vec<String> {
        fake.seen()[1..]
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn neutron_error(kind: &str, message: &str) -> String {
        json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}).to_string()
    }

    const TAG: &str = "kaas-cluster=1a2b3c4d-0000-4000-8000-000000000001";

    fn group_request() -> ResourceRequest {
        ResourceRequest {
            name: "kaas-demo-1a2b3c4d-nodes".to_owned(),
            tags: vec![TAG.to_owned()],
            spec: ResourceSpec::SecurityGroup {
                rules: vec![SecurityGroupRule {
                    protocol: "tcp".to_owned(),
                    port_min: 22,
                    port_max: 22,
                    remote_cidr: Some("10.0.0.0/8".to_owned()),
                    remote_group: None,
                    description: "ssh".to_owned(),
                }],
            },
        }
    }

    /// The group as an earlier attempt left it: made and tagged, its rules not complete.
    fn push_existing_group(fake: &Fake) {
        let group = json!({"id": "sg1", "name": "kaas-demo-1a2b3c4d-nodes", "tags": [TAG]});
        fake.push(reply(
            200,
            &json!({ "security_groups": [group] }).to_string(),
        ));
    }

    /// Each of the session's attempts at a rule (the first and its three retries) is
    /// refused with this conflict.
    fn push_rule_conflicts(fake: &Fake, kind: &str, message: &str) {
        for _ in 0..4 {
            fake.push(reply(409, &neutron_error(kind, message)));
        }
    }

    #[tokio::test]
    async fn a_group_whose_rules_are_over_quota_is_not_marked_complete() {
        let (fake, cloud) = scripted().await;
        fake.push(reply(200, r#"{"security_groups": []}"#));
        fake.push(reply(
            201,
            r#"{"security_group": {"id": "sg1", "name": "kaas-demo-1a2b3c4d-nodes", "tags": []}}"#,
        ));
        fake.push(reply(200, &json!({ "tags": [TAG] }).to_string()));
        fake.push(reply(
            409,
            &neutron_error(
                "OverQuota",
                "Quota exceeded for resources: ['security_group_rule'].",
            ),
        ));
        let created = cloud.create(&group_request()).await;
        assert!(
            matches!(&created, Err(CloudError::QuotaExceeded { message }) if message.contains("security_group_rule")),
            "{created:?}"
        );
        let calls = calls(&fake);
        assert_eq!(
            calls.last().map(String::as_str),
            Some("POST /v2.0/security-group-rules"),
            "{calls:#?}"
        );
        assert!(
            !calls.iter().any(|c| c.contains(COMPLETE_TAG)),
            "{calls:#?}"
        );
    }

    #[tokio::test]
    async fn a_group_whose_rules_conflict_otherwise_is_not_marked_complete() {
        let (fake, cloud) = scripted().await;
        push_existing_group(&fake);
        // Neutron's conflicts other than quota are retried by the session, then given up.
        push_rule_conflicts(&fake, "Conflict", "Security group sg1 is being changed.");
        let created = cloud.create(&group_request()).await;
        assert!(
            matches!(&created, Err(CloudError::Conflict { .. })),
            "{created:?}"
        );
        let calls = calls(&fake);
        assert!(
            !calls.iter().any(|c| c.contains(COMPLETE_TAG)),
            "{calls:#?}"
        );
    }

    #[tokio::test]
    async fn rules_made_by_an_earlier_attempt_finish_the_group() {
        let (fake, cloud) = scripted().await;
        // The earlier attempt made and tagged the group and its rules, then stopped.
        push_existing_group(&fake);
        // Each of the session's attempts at the rules hears the same.
        push_rule_conflicts(
            &fake,
            "SecurityGroupRuleExists",
            "Security group rule already exists. Rule id is r1.",
        );
        fake.push(reply(201, ""));
        let created = cloud.create(&group_request()).await.unwrap();
        assert_eq!(created.status, ResourceStatus::Active, "{created:?}");
        assert_eq!(
            calls(&fake),
            [
                "GET /v2.0/security-groups?name=kaas-demo-1a2b3c4d-nodes",
                "POST /v2.0/security-group-rules",
                "POST /v2.0/security-group-rules",
                "POST /v2.0/security-group-rules",
                "POST /v2.0/security-group-rules",
                "PUT /v2.0/security-groups/sg1/tags/kaas-complete",
            ]
        );
    }

    #[test]
    fn tags_are_query_encoded() {
        assert_eq!(query("kaas-cluster=1a-2b"), "kaas-cluster%3D1a-2b");
        assert_eq!(query("a b/c"), "a%20b%2Fc");
    }

    #[tokio::test]
    async fn a_router_goes_with_the_interfaces_of_every_kind_of_router() {
        let (fake, cloud) = scripted().await;
        let port =
            |id: &str, owner: &str| json!({"id": id, "device_id": "r1", "device_owner": owner});
        fake.push(reply(
            200,
            &json!({"ports": [
                port("p-dvr", "network:router_interface_distributed"),
                port("p-ha", "network:ha_router_replicated_interface"),
                port("p-legacy", "network:router_interface"),
                port("p-gw", "network:router_gateway"),
                port("p-snat", "network:router_centralized_snat"),
                port("p-ha-net", "network:router_ha_interface"),
            ]})
            .to_string(),
        ));
        fake.push(reply(200, r#"{"id": "r1", "port_id": "p-dvr"}"#));
        // Removed already (a retry after a lost answer): fine.
        fake.push(reply(
            404,
            &neutron_error(
                "RouterInterfaceNotFound",
                "Router r1 does not have an interface with id p-ha",
            ),
        ));
        fake.push(reply(200, r#"{"id": "r1", "port_id": "p-legacy"}"#));
        fake.push(reply(204, ""));
        cloud.delete(ResourceKind::Router, "r1").await.unwrap();
        let remove = "PUT /v2.0/routers/r1/remove_router_interface";
        assert_eq!(
            calls(&fake),
            [
                "GET /v2.0/ports?device_id=r1",
                remove,
                remove,
                remove,
                "DELETE /v2.0/routers/r1",
            ]
        );
        let removed: Vec<String> = fake.seen()[2..5]
            .iter()
            .map(|s| serde_json::from_str::<Value>(&s.body).unwrap()["port_id"].to_string())
            .collect();
        assert_eq!(removed, [r#""p-dvr""#, r#""p-ha""#, r#""p-legacy""#]);
    }

    fn image(id: &str, status: &str, created_at: &str) -> Value {
        json!({"id": id, "name": "ubuntu-capi", "status": status, "created_at": created_at})
    }

    #[tokio::test]
    async fn the_newest_active_image_of_a_name_is_booted() {
        let (fake, cloud) = scripted().await;
        fake.push(reply(
            200,
            &json!({"images": [
                image("old", "active", "2024-01-01T00:00:00Z"),
                image("uploading", "queued", "2026-03-01T00:00:00Z"),
                image("new", "active", "2025-06-01T00:00:00Z"),
                image("withdrawn", "deactivated", "2025-12-01T00:00:00Z"),
            ]})
            .to_string(),
        ));
        assert_eq!(cloud.image_id("ubuntu-capi").await.unwrap(), "new");
        assert_eq!(calls(&fake), ["GET /v2/images?name=ubuntu-capi"]);
    }

    #[tokio::test]
    async fn an_image_that_is_not_active_is_refused_with_its_status() {
        let (fake, cloud) = scripted().await;
        fake.push(reply(
            200,
            &json!({"images": [
                image("uploading", "queued", "2026-03-01T00:00:00Z"),
                image("withdrawn", "deactivated", "2025-12-01T00:00:00Z"),
            ]})
            .to_string(),
        ));
        let refused = cloud.image_id("ubuntu-capi").await;
        assert!(
            matches!(&refused, Err(CloudError::BadRequest { message })
                if message.contains("ubuntu-capi") && message.contains("queued") && message.contains("deactivated")),
            "{refused:?}"
        );
        // By id: the same.
        fake.push(reply(200, r#"{"images": []}"#));
        fake.push(reply(
            200,
            &image("withdrawn", "deactivated", "2025-12-01T00:00:00Z").to_string(),
        ));
        let refused = cloud.image_id("withdrawn").await;
        assert!(
            matches!(&refused, Err(CloudError::BadRequest { message })
                if message.contains("withdrawn") && message.contains("deactivated")),
            "{refused:?}"
        );
        fake.push(reply(200, r#"{"images": []}"#));
        fake.push(reply(
            200,
            &image("ok", "active", "2025-12-01T00:00:00Z").to_string(),
        ));
        assert_eq!(cloud.image_id("ok").await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn kaas_load_balancers_are_found_by_octavias_tag_filter() {
        let (fake, cloud) = scripted().await;
        fake.push(reply(
            200,
            &json!({"loadbalancers": [{
                "id": "lb1", "name": "kaas-demo-1a2b3c4d-api", "provisioning_status": "ACTIVE",
                "vip_address": "10.0.0.3", "tags": [TAG],
            }]})
            .to_string(),
        ));
        let found = cloud.find(ResourceKind::LoadBalancer, TAG).await.unwrap();
        assert_eq!(
            found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["lb1"]
        );
        assert_eq!(
            calls(&fake),
            [format!("GET /v2/lbaas/loadbalancers?tags={}", query(TAG))]
        );
    }

    #[test]
    fn half_built_routers_and_groups_are_errors() {
        let with_tags = |tags: Value| json!({"id": "r1", "name": "kaas-x-1a2b3c4d", "status": "ACTIVE", "tags": tags});
        for kind in [ResourceKind::Router, ResourceKind::SecurityGroup] {
            let half = OpenStackCloud::view_neutron(kind, &with_tags(json!(["kaas-cluster=u"])));
            assert!(
                matches!(&half.status, ResourceStatus::Error { message } if message.contains("half-built")),
                "{half:?}"
            );
            let whole = OpenStackCloud::view_neutron(
                kind,
                &with_tags(json!(["kaas-cluster=u", COMPLETE_TAG])),
            );
            assert_eq!(whole.status, ResourceStatus::Active);
            // The marker is the provider's business, not the planner's.
            assert_eq!(whole.tags, ["kaas-cluster=u"]);
        }
        // A network needs no marker; a port that is DOWN (unbound) exists all the same.
        let net = OpenStackCloud::view_neutron(ResourceKind::Network, &with_tags(json!([])));
        assert_eq!(net.status, ResourceStatus::Active);
        let port = OpenStackCloud::view_neutron(
            ResourceKind::Port,
            &json!({"id": "p", "name": "vip", "status": "DOWN",
                    "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.7"}]}),
        );
        assert_eq!(port.status, ResourceStatus::Active);
        assert_eq!(port.address.as_deref(), Some("10.0.0.7"));
    }

    #[test]
    fn credentials_keep_their_tags_in_the_description() {
        let c = view_credential(&json!({
            "id": "ac1",
            "name": "kaas-demo-1a2b3c4d",
            "description": "kaas cluster demo (uid): its cloud controller [kaas-cluster=uid kaas-cluster-name=demo]",
        }));
        assert_eq!(c.tags, ["kaas-cluster=uid", "kaas-cluster-name=demo"]);
        let c = view_credential(&json!({"id": "x", "name": "other", "description": null}));
        assert!(c.tags.is_empty());
    }

    #[test]
    fn servers_map_nova_states() {
        let s = OpenStackCloud::view_server(&json!({
            "id": "s1", "name": "m", "status": "ERROR",
            "fault": {"message": "No valid host was found. There are not enough hosts available."},
            "tags": ["kaas-cluster=u"],
            "addresses": {"net": [{"version": 4, "addr": "10.0.0.5"}]},
        }));
        assert_eq!(
            s.status,
            ResourceStatus::Error {
                message: "No valid host was found. There are not enough hosts available."
                    .to_owned()
            }
        );
        assert_eq!(s.address.as_deref(), Some("10.0.0.5"));
        let s = OpenStackCloud::view_server(&json!({
            "id": "s1", "status": "ACTIVE", "OS-EXT-STS:task_state": "deleting"
        }));
        assert_eq!(s.status, ResourceStatus::Deleting);
        let s = OpenStackCloud::view_server(&json!({"id": "s1", "status": "BUILD"}));
        assert_eq!(s.status, ResourceStatus::Pending);
    }

    #[test]
    fn load_balancers_map_provisioning_states() {
        for (state, want) in [
            ("ACTIVE", ResourceStatus::Active),
            ("PENDING_CREATE", ResourceStatus::Pending),
            ("PENDING_UPDATE", ResourceStatus::Active),
            ("PENDING_DELETE", ResourceStatus::Deleting),
        ] {
            let lb = OpenStackCloud::view_load_balancer(
                &json!({"id": "l", "provisioning_status": state, "vip_address": "10.0.0.3"}),
            );
            assert_eq!(lb.status, want, "{state}");
            assert_eq!(lb.address.as_deref(), Some("10.0.0.3"));
        }
        let lb = OpenStackCloud::view_load_balancer(
            &json!({"id": "l", "provisioning_status": "ERROR", "operating_status": "OFFLINE"}),
        );
        assert!(matches!(lb.status, ResourceStatus::Error { .. }));
    }
}

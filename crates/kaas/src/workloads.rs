//! The workload clusters as kaas reaches them: the Kubernetes API through the kube-rs
//! client (`kaas-kube`), by the route [`ApiRoutes`] gives (a real cluster's endpoint,
//! or the address it is mapped to: [`EndpointRoutes`]), with the client certificate
//! the controller issued; its etcd over etcd's own gRPC API, through the API server's
//! port-forward to a control plane's etcd pod, with a client certificate from the
//! cluster's etcd CA. A simulated cluster answers both the same way (its simulated API
//! server forwards to a stand-in etcd), so this code does not know which it talks to.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kaas_cloud::{
    AddonsApplied, ApiRoute, ApiRoutes, DrainProgress, EtcdMembership, JoinToken, Node,
    ObjectReadiness, RegisteredToken, WorkloadClusterRef, WorkloadClusters, WorkloadError,
};
use kaas_kube::{ClusterAccess, EtcdAccess, WorkloadClient};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::Value;

/// Where a real cluster's API is reached: at its endpoint (`https://HOST:PORT`, the API
/// load balancer's floating IP or VIP), unless an override maps that host and port to
/// another address, in the manner of curl's `--resolve`: kaas connects to the address
/// and checks the API server's certificate against the endpoint's host. Overrides serve
/// a kaas that reaches the clusters through another address than their endpoint (from
/// inside the cloud's network, through a tunnel), and tests.
#[derive(Debug, Clone, Default)]
pub struct EndpointRoutes {
    /// `(host, port)` of an endpoint → `(address, port)` to connect to.
    overrides: BTreeMap<(String, u16), (String, u16)>,
    /// Which of a cluster's addresses kaas connects to.
    reach: ReachAt,
    /// `http://HOST:PORT` of the HTTP proxy every cluster is reached through
    /// (`--cluster-proxy`); `None`: straight.
    proxy: Option<String>,
}

/// Which of a cluster's API addresses kaas connects to: chosen per kaas server, by
/// where it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReachAt {
    /// The cluster's endpoint (its floating IP, or its VIP where it has none): for a
    /// kaas outside the cloud's networks.
    #[default]
    Endpoint,
    /// The API load balancer's VIP in the cluster's network: for a kaas that runs
    /// inside the cloud's network and reaches the clusters' networks directly. The
    /// API server's certificate names the VIP too.
    Vip,
}

/// One `--resolve` override: `HOST:PORT:ADDRESS[:PORT]`; HOST `*` stands for every host
/// (as in curl's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub host: String,
    pub port: u16,
    pub address: String,
    pub address_port: u16,
}

impl std::str::FromStr for Resolve {
    type Err = String;

    /// `HOST:PORT:ADDRESS[:PORT]`; an IPv6 address goes in brackets (`[::1]`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{text:?} is not HOST:PORT:ADDRESS[:PORT] (as curl's --resolve): {why}")
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (part, after) = if let Some(inner) = rest.strip_prefix('[') {
                let end = inner.find(']').ok_or_else(|| bad("an unclosed '['"))?;
                let after = &inner[end + 1..];
                (&inner[..end], after.strip_prefix(':').unwrap_or(after))
            } else {
                match rest.split_once(':') {
                    Some((part, after)) => (part, after),
                    None => (rest, ""),
                }
            };
            parts.push(part);
            rest = after;
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port")))
        };
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
        };
        let (host, host_port, address, address_port) = match parts.as_slice() {
            [host, p, address] => (*host, port(p)?, *address, port(p)?),
            [host, p, address, ap] => (*host, port(p)?, *address, port(ap)?),
            _ => return Err(bad("expected three or four parts")),
        };
        if !(name_ok(host) || host == "*") || !name_ok(address) {
            return Err(bad("a host or address is empty or not a name"));
        }
        Ok(Self {
            host: host.to_owned(),
            port: host_port,
            address: address.to_owned(),
            address_port,
        })
    }
}

/// `host` as it goes into a URL: IPv6 addresses in brackets.
fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl EndpointRoutes {
    pub fn new(overrides: &[Resolve]) -> Self {
        Self::reaching(ReachAt::Endpoint, overrides)
    }

    /// Routes to each cluster's address `reach`, mapped by `overrides`.
    pub fn reaching(reach: ReachAt, overrides: &[Resolve]) -> Self {
        Self {
            reach,
            proxy: None,
            overrides: overrides
                .iter()
                .map(|r| {
                    (
                        (r.host.clone(), r.port),
                        (r.address.clone(), r.address_port),
                    )
                })
                .collect(),
        }
    }
}

impl EndpointRoutes {
    /// The same routes, each through the HTTP proxy at `proxy` (`http://HOST:PORT`).
    pub fn through_proxy(self, proxy: Option<String>) -> Self {
        Self { proxy, ..self }
    }
}

/// `(host, port)` of an `https://HOST[:PORT][/]` endpoint (port 443 by default).
fn endpoint_host_port(endpoint: &str) -> Option<(String, u16)> {
    let rest = endpoint.strip_prefix("https://")?.trim_end_matches('/');
    if rest.contains('/') {
        return None;
    }
    if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 443,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match rest.split_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((rest.to_owned(), 443)),
    }
}

#[async_trait]
impl ApiRoutes for EndpointRoutes {
    async fn route(&self, cluster: &WorkloadClusterRef) -> Result<ApiRoute, WorkloadError> {
        let endpoint = match (self.reach, &cluster.api_vip) {
            (ReachAt::Vip, Some(vip)) => vip,
            (ReachAt::Vip, None) => {
                return Err(WorkloadError::Unreachable {
                    endpoint: cluster.api_endpoint.clone(),
                    message: "the API load balancer has no VIP yet".to_owned(),
                });
            }
            (ReachAt::Endpoint, _) => &cluster.api_endpoint,
        };
        let (host, port) =
            endpoint_host_port(endpoint).ok_or_else(|| WorkloadError::Unreachable {
                endpoint: endpoint.clone(),
                message: "the cluster has no https://HOST:PORT endpoint yet".to_owned(),
            })?;
        let mapped = self
            .overrides
            .get(&(host.clone(), port))
            .or_else(|| self.overrides.get(&("*".to_owned(), port)));
        let route = match mapped {
            Some((address, address_port)) => ApiRoute {
                url: format!("https://{}:{address_port}", url_host(address)),
                tls_server_name: Some(host),
                proxy: None,
            },
            None => ApiRoute::direct(format!("https://{}:{port}", url_host(&host))),
        };
        Ok(ApiRoute {
            proxy: self.proxy.clone(),
            ..route
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadCallLabels {
    call: String,
    result: String,
}

pub struct KubeWorkloads {
    routes: Arc<dyn ApiRoutes>,
    /// `kaas_workload_calls`: calls to the clusters' APIs (etcd's included).
    calls: Family<WorkloadCallLabels, Counter>,
    /// Per cluster uid: the client, with the route and credentials it was built for.
    clients: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    route: ApiRoute,
    credentials: Arc<kaas_cloud::ClientCredentials>,
    client: WorkloadClient,
}

impl KubeWorkloads {
    /// Reaches clusters by `routes`; counts its calls in `registry`.
    pub fn new(routes: Arc<dyn ApiRoutes>, registry: &mut Registry) -> Self {
        let calls = Family::<WorkloadCallLabels, Counter>::default();
        registry.register(
            "kaas_workload_calls",
            "Calls to the workload clusters' Kubernetes and etcd APIs, by call and result",
            calls.clone(),
        );
        Self {
            routes,
            calls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one call, counting it by name and result.
    async fn counted<T>(
        &self,
        call: &'static str,
        run: impl Future<Output = Result<T, WorkloadError>>,
    ) -> Result<T, WorkloadError> {
        let result = run.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(WorkloadError::Unreachable { .. }) => "unreachable",
            Err(WorkloadError::Api { .. }) => "error",
            Err(WorkloadError::Unsupported { .. }) => "unsupported",
        };
        self.calls
            .get_or_create(&WorkloadCallLabels {
                call: call.to_owned(),
                result: outcome.to_owned(),
            })
            .inc();
        result
    }

    async fn client(&self, cluster: &WorkloadClusterRef) -> Result<WorkloadClient, WorkloadError> {
        let credentials =
            cluster
                .credentials
                .clone()
                .ok_or_else(|| WorkloadError::Unreachable {
                    endpoint: cluster.api_endpoint.clone(),
                    message: "kaas has no client certificate for the cluster yet".to_owned(),
                })?;
        let route = self.routes.route(cluster).await?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&cluster.cluster_uid)
            && c.route == route
            && Arc::ptr_eq(&c.credentials, &credentials)
        {
            return Ok(c.client.clone());
        }
        let client = WorkloadClient::new(&ClusterAccess {
            url: route.url.clone(),
            tls_server_name: route.tls_server_name.clone(),
            ca_cert_pem: credentials.ca_cert_pem.clone(),
            client_cert_pem: credentials.client_cert_pem.clone(),
            client_key_pem: credentials.client_key_pem.clone(),
            proxy_url: route.proxy.clone(),
        })?;
        clients.insert(
            cluster.cluster_uid.clone(),
            Cached {
                route,
                credentials,
                client: client.clone(),
            },
        );
        Ok(client)
    }
}

/// The cluster's etcd CA and kaas's client certificate from it.
fn etcd_access(cluster: &WorkloadClusterRef) -> Result<EtcdAccess, WorkloadError> {
    let credentials = cluster
        .credentials
        .as_ref()
        .ok_or_else(|| WorkloadError::Unreachable {
            endpoint: cluster.api_endpoint.clone(),
            message: "kaas has no etcd client certificate for the cluster yet".to_owned(),
        })?;
    Ok(EtcdAccess {
        ca_cert_pem: credentials.etcd_ca_cert_pem.clone(),
        client_cert_pem: credentials.etcd_client_cert_pem.clone(),
        client_key_pem: credentials.etcd_client_key_pem.clone(),
    })
}

#[async_trait]
impl EtcdMembership for KubeWorkloads {
    async fn etcd_members(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<String>, WorkloadError> {
        self.counted("etcd_members", async {
            let access = etcd_access(cluster)?;
            let members = self
                .client(cluster)
                .await?
                .etcd_members(&access, None)
                .await?;
            // A member that never started has no name yet; it is not a node's.
            Ok(members
                .into_iter()
                .filter(|m| !m.name.is_empty())
                .map(|m| m.name)
                .collect())
        })
        .await
    }

    async fn remove_etcd_member(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        self.counted("remove_etcd_member", async {
            let access = etcd_access(cluster)?;
            self.client(cluster)
                .await?
                .remove_etcd_member(&access, node)
                .await
        })
        .await
    }
}

#[async_trait]
impl WorkloadClusters for KubeWorkloads {
    async fn nodes(&self, cluster: &WorkloadClusterRef) -> Result<Vec<Node>, WorkloadError> {
        self.counted("nodes", async { self.client(cluster).await?.nodes().await })
            .await
    }

    async fn drain(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<DrainProgress, WorkloadError> {
        self.counted("drain", async {
            self.client(cluster).await?.drain(node).await
        })
        .await
    }

    async fn delete_node(
        &self,
        cluster: &WorkloadClusterRef,
        node: &str,
    ) -> Result<(), WorkloadError> {
        self.counted("delete_node", async {
            self.client(cluster).await?.delete_node(node).await
        })
        .await
    }

    async fn bootstrap_tokens(
        &self,
        cluster: &WorkloadClusterRef,
    ) -> Result<Vec<RegisteredToken>, WorkloadError> {
        self.counted("bootstrap_tokens", async {
            self.client(cluster).await?.bootstrap_tokens().await
        })
        .await
    }

    async fn register_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        token: &JoinToken,
    ) -> Result<(), WorkloadError> {
        self.counted("register_bootstrap_token", async {
            self.client(cluster)
                .await?
                .register_bootstrap_token(token)
                .await
        })
        .await
    }

    async fn delete_bootstrap_token(
        &self,
        cluster: &WorkloadClusterRef,
        id: &str,
    ) -> Result<(), WorkloadError> {
        self.counted("delete_bootstrap_token", async {
            self.client(cluster).await?.delete_bootstrap_token(id).await
        })
        .await
    }

    async fn apply(
        &self,
        cluster: &WorkloadClusterRef,
        set: &str,
        objects: &[Value],
    ) -> Result<AddonsApplied, WorkloadError> {
        let report = self
            .counted("apply", async {
                self.client(cluster).await?.apply(set, objects).await
            })
            .await?;
        Ok(AddonsApplied {
            applied: report.applied,
            pruned: report
                .pruned
                .iter()
                .map(kaas_kube::ObjectRef::short)
                .collect(),
            replaced: report
                .replaced
                .iter()
                .map(kaas_kube::ObjectRef::short)
                .collect(),
        })
    }

    async fn stale_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
        digest: &str,
    ) -> Result<Vec<String>, WorkloadError> {
        self.counted("stale_pull_secrets", async {
            self.client(cluster)
                .await?
                .stale_pull_secrets(name, digest)
                .await
        })
        .await
    }

    async fn put_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
        namespaces: &[String],
        docker_config: &[u8],
        digest: &str,
    ) -> Result<(), WorkloadError> {
        self.counted("put_pull_secrets", async {
            self.client(cluster)
                .await?
                .put_pull_secrets(name, namespaces, docker_config, digest)
                .await
        })
        .await
    }

    async fn remove_pull_secrets(
        &self,
        cluster: &WorkloadClusterRef,
        name: &str,
    ) -> Result<(), WorkloadError> {
        self.counted("remove_pull_secrets", async {
            self.client(cluster).await?.remove_pull_secrets(name).await
        })
        .await
    }

    async fn readiness(
        &self,
        cluster: &WorkloadClusterRef,
        objects: &[Value],
    ) -> Result<Vec<ObjectReadiness>, WorkloadError> {
        let readiness = self
            .counted("readiness", async {
                self.client(cluster).await?.readiness(objects).await
            })
            .await?;
        Ok(readiness
            .into_iter()
            .map(|r| ObjectReadiness {
                object: r.object.short(),
                ready: r.ready,
                missing: r.missing,
                message: r.message,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolve(text: &str) -> Resolve {
        text.parse().unwrap()
    }

    #[test]
    fn resolve_overrides_parse_as_curl_writes_them() {
        assert_eq!(
            resolve("203.0.113.10:6443:127.0.0.1:39105"),
            Resolve {
                host: "203.0.113.10".to_owned(),
                port: 6443,
                address: "127.0.0.1".to_owned(),
                address_port: 39105,
            }
        );
        // Without a second port, the endpoint's port.
        assert_eq!(resolve("api.example:6443:10.0.0.5").address_port, 6443);
        let v6 = resolve("[2001:db8::10]:6443:[::1]:7000");
        assert_eq!(
            (v6.host.as_str(), v6.address.as_str()),
            ("2001:db8::10", "::1")
        );
        for bad in [
            "",
            "host",
            "host:6443",
            "host:0:addr",
            "host:port:addr",
            "host:6443:addr:70000",
            ":6443:addr",
            "host:6443:",
            "a:1:b:2:c",
            "[::1:6443:addr",
            "ho st:6443:addr",
        ] {
            let err = bad.parse::<Resolve>().unwrap_err();
            assert!(err.contains("HOST:PORT:ADDRESS"), "{bad:?}: {err}");
        }
    }

    fn cluster(endpoint: &str) -> WorkloadClusterRef {
        WorkloadClusterRef::new("uid", endpoint)
    }

    #[tokio::test]
    async fn endpoints_are_reached_directly_unless_mapped() {
        let routes = EndpointRoutes::new(&[
            resolve("203.0.113.10:6443:127.0.0.1:39105"),
            resolve("[2001:db8::10]:6443:[::1]:7000"),
            resolve("*:7443:10.0.0.5"),
        ]);
        let route = |e: &str| {
            let routes = routes.clone();
            let c = cluster(e);
            async move { routes.route(&c).await }
        };
        assert_eq!(
            route("https://203.0.113.10:6443").await.unwrap(),
            ApiRoute {
                url: "https://127.0.0.1:39105".to_owned(),
                tls_server_name: Some("203.0.113.10".to_owned()),
                proxy: None,
            }
        );
        assert_eq!(
            route("https://[2001:db8::10]:6443/").await.unwrap(),
            ApiRoute {
                url: "https://[::1]:7000".to_owned(),
                tls_server_name: Some("2001:db8::10".to_owned()),
                proxy: None,
            }
        );
        // Any host on a port with a wildcard override.
        assert_eq!(
            route("https://api.example:7443").await.unwrap(),
            ApiRoute {
                url: "https://10.0.0.5:7443".to_owned(),
                tls_server_name: Some("api.example".to_owned()),
                proxy: None,
            }
        );
        // Another port of the same host, another host: as they are.
        for direct in ["https://203.0.113.10:443", "https://203.0.113.11:6443"] {
            assert_eq!(route(direct).await.unwrap(), ApiRoute::direct(direct));
        }
        for none in ["", "http://203.0.113.10:6443", "https://h:6443/path"] {
            let err = route(none).await.unwrap_err();
            assert!(matches!(err, WorkloadError::Unreachable { .. }), "{none:?}");
        }
    }

    #[tokio::test]
    async fn every_route_goes_through_the_cluster_proxy_where_there_is_one() {
        let proxy = Some("http://127.0.0.1:7481".to_owned());
        let routes = EndpointRoutes::new(&[resolve("203.0.113.10:6443:10.0.0.5")])
            .through_proxy(proxy.clone());
        for (endpoint, url, name) in [
            (
                "https://203.0.113.11:6443",
                "https://203.0.113.11:6443",
                None,
            ),
            (
                "https://203.0.113.10:6443",
                "https://10.0.0.5:6443",
                Some("203.0.113.10".to_owned()),
            ),
        ] {
            assert_eq!(
                routes.route(&cluster(endpoint)).await.unwrap(),
                ApiRoute {
                    url: url.to_owned(),
                    tls_server_name: name,
                    proxy: proxy.clone(),
                }
            );
        }
    }

    #[tokio::test]
    async fn a_kaas_inside_the_cloud_reaches_clusters_at_their_vip() {
        let mut c = cluster("https://203.0.113.10:6443");
        let inside = EndpointRoutes::reaching(ReachAt::Vip, &[]);
        // No VIP known yet: unreachable, saying why; the floating IP is not tried.
        match inside.route(&c).await {
            Err(WorkloadError::Unreachable { message, .. }) => {
                assert!(message.contains("VIP"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        c.api_vip = Some("https://10.8.0.4:6443".to_owned());
        assert_eq!(
            inside.route(&c).await.unwrap(),
            ApiRoute::direct("https://10.8.0.4:6443")
        );
        // Overrides apply to the VIP as to any address.
        let mapped =
            EndpointRoutes::reaching(ReachAt::Vip, &[resolve("10.8.0.4:6443:127.0.0.1:39105")]);
        assert_eq!(
            mapped.route(&c).await.unwrap(),
            ApiRoute {
                url: "https://127.0.0.1:39105".to_owned(),
                tls_server_name: Some("10.8.0.4".to_owned()),
                proxy: None,
            }
        );
        // From outside, the endpoint, whatever the VIP.
        assert_eq!(
            EndpointRoutes::new(&[]).route(&c).await.unwrap(),
            ApiRoute::direct("https://203.0.113.10:6443")
        );
    }
}

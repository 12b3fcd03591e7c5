//! [`ClusterAccess`] and building a [`WorkloadClient`] from it.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kaas_cloud::WorkloadError;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use crate::error::invalid;

/// How long connecting, sending a request and waiting for its answer may take each, so
/// an unreachable cluster does not hold up a controller.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to reach one workload cluster's API server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The name to check the API server's certificate against where it is not the
    /// URL's host (the cluster's endpoint reached at another address).
    pub tls_server_name: Option<String>,
    /// The cluster CA: the only one trusted for the API server's certificate.
    pub ca_cert_pem: String,
    /// The client certificate kaas presents, and its key.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// `http://HOST:PORT` of an HTTP proxy to reach the API server through (CONNECT);
    /// `None`: straight.
    pub proxy_url: Option<String>,
}

impl fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("url", &self.url)
            .field("tls_server_name", &self.tls_server_name)
            .field("proxy_url", &self.proxy_url)
            .finish_non_exhaustive()
    }
}

/// The Kubernetes API of one workload cluster. Cheap to clone (clones share connections).
#[derive(Clone)]
pub struct WorkloadClient {
    pub(crate) client: kube::Client,
    /// The URL, for [`WorkloadError::Unreachable`].
    pub(crate) endpoint: String,
}

impl fmt::Debug for WorkloadClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The client kube's `Client::try_from` would build, but with `TCP_NODELAY` on its
/// connections, as Go's clients have it: a port-forward carries etcd's gRPC as many
/// small writes, and with Nagle's algorithm each would wait on the API server's
/// delayed ACK (some 40 ms a call). No retries: a refused eviction (429) is an answer
/// for the caller, and the controllers retry on their own schedule. Through `proxy`
/// (CONNECT) where one is given.
fn client(config: kube::Config, proxy: Option<hyper::Uri>) -> Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt as _;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let connector = crate::proxy::Connector::new(
        http,
        proxy,
        config.connect_timeout.unwrap_or(REQUEST_TIMEOUT),
    );
    let https = config.rustls_https_connector_with_connector(connector)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

impl WorkloadClient {
    /// Builds a client without any I/O: it trusts only `ca_cert_pem` and presents the
    /// client certificate. Requests time out after [`REQUEST_TIMEOUT`] (connect, write,
    /// read each), are not retried, and go straight to the URL, or through the access's
    /// proxy (never one from the environment).
    ///
    /// Call it within a Tokio runtime (the client's request queue is a task); outside
    /// one, and for unusable certificates or URLs, the error is
    /// [`WorkloadError::Api`].
    pub fn new(access: &ClusterAccess) -> Result<Self, WorkloadError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(invalid(
                "a workload cluster client needs a Tokio runtime to run in",
            ));
        }
        let mut config = kube::Config::try_from(kubeconfig(access)).map_err(|e| {
            invalid(format!(
                "invalid access to the cluster at {}: {e}",
                access.url
            ))
        })?;
        config.connect_timeout = Some(REQUEST_TIMEOUT);
        config.write_timeout = Some(REQUEST_TIMEOUT);
        config.read_timeout = Some(REQUEST_TIMEOUT);
        // Pooled connections idle before a request; count the read timeout from the write.
        config.reset_reader_on_write = true;
        config.proxy_url = None;
        let proxy = access
            .proxy_url
            .as_deref()
            .map(crate::proxy::proxy_uri)
            .transpose()
            .map_err(invalid)?;
        let client = client(config, proxy).map_err(|e| {
            invalid(format!(
                "invalid access to the cluster at {}: {e}",
                access.url
            ))
        })?;
        Ok(Self {
            client,
            endpoint: access.url.clone(),
        })
    }

    /// The API server's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn error(&self, error: kube::Error) -> WorkloadError {
        crate::error::from_kube(&self.endpoint, error)
    }
}

/// The kubeconfig `access` amounts to; kube reads its PEM from base64 there.
fn kubeconfig(access: &ClusterAccess) -> Kubeconfig {
    const NAME: &str = "workload";
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.to_owned(),
            cluster: Some(Cluster {
                server: Some(access.url.clone()),
                tls_server_name: access.tls_server_name.clone(),
                certificate_authority_data: Some(STANDARD.encode(&access.ca_cert_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.to_owned(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(&access.client_cert_pem)),
                client_key_data: Some(STANDARD.encode(&access.client_key_pem).into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.to_owned(),
            context: Some(Context {
                cluster: NAME.to_owned(),
                user: Some(NAME.to_owned()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.to_owned()),
        ..Kubeconfig::default()
    }
}

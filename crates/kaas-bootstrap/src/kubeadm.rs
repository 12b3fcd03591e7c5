//! kubeadm configuration for one machine, with the SCS robustness and hardening
//! settings, and the files the API server reads (admission and audit configuration).
//!
//! The kubeadm API version follows the Kubernetes version: `kubeadm.k8s.io/v1beta3`
//! below 1.31, `kubeadm.k8s.io/v1beta4` from 1.31. The two differ in one way that
//! matters here: v1beta3 takes extra arguments as a map (`{name: value}`), v1beta4 as a
//! list of `{name, value}` (so that a flag can repeat).
//!
//! What each role gets:
//!
//! | role               | InitConfiguration | ClusterConfiguration | JoinConfiguration | KubeletConfiguration |
//! |--------------------|-------------------|----------------------|-------------------|----------------------|
//! | `Init`             | yes               | yes                  |                   | yes                  |
//! | `JoinControlPlane` |                   | (read from cluster)  | with controlPlane | yes (see below)      |
//! | `Worker`           |                   | (read from cluster)  | yes               | yes (see below)      |
//!
//! `kubeadm join` takes the cluster-wide ClusterConfiguration and KubeletConfiguration
//! from the cluster (`kubeadm-config` and `kubelet-config` ConfigMaps, written by `init`)
//! and ignores, with a warning, a KubeletConfiguration in its file; it is rendered for
//! every node anyway so that each machine's file says what its kubelet runs with.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::BootstrapError;
use crate::token::BootstrapToken;

/// Where cloud-init writes the AdmissionConfiguration the API server reads.
pub const ADMISSION_CONFIG_PATH: &str = "/etc/kubernetes/admission/admission.yaml";
/// Where cloud-init writes the EventRateLimit configuration.
pub const EVENT_RATE_LIMIT_CONFIG_PATH: &str = "/etc/kubernetes/admission/eventratelimit.yaml";
/// Where cloud-init writes the audit policy.
pub const AUDIT_POLICY_PATH: &str = "/etc/kubernetes/audit/policy.yaml";
/// Where the API server writes its audit log.
pub const AUDIT_LOG_PATH: &str = "/var/log/kubernetes/audit/audit.log";

const ADMISSION_DIR: &str = "/etc/kubernetes/admission";
const AUDIT_DIR: &str = "/etc/kubernetes/audit";
const AUDIT_LOG_DIR: &str = "/var/log/kubernetes/audit";
const API_SERVER_BIND_PORT: u16 = 6443;

/// A Kubernetes release, `v1.MINOR.PATCH` with an optional pre-release suffix
/// (`v1.31.0-rc.1`). Parsed once; [`fmt::Display`] gives it back with its `v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesVersion {
    minor: u32,
    patch: u32,
    suffix: String,
}

impl KubernetesVersion {
    /// Parses `v1.30.2` or `1.30.2` (and pre-releases such as `v1.31.0-rc.1`).
    /// Refuses anything older than 1.22, the first release with kubeadm's v1beta3.
    pub fn parse(version: &str) -> Result<KubernetesVersion, BootstrapError> {
        let invalid = || BootstrapError::InvalidKubernetesVersion {
            version: version.to_string(),
        };
        let rest = version.strip_prefix('v').unwrap_or(version);
        let (core, suffix) = match rest.find(['-', '+']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let mut parts = core.split('.');
        let number = |part: Option<&str>| -> Result<u32, BootstrapError> {
            let part = part.ok_or_else(invalid)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse().map_err(|_| invalid())
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = number(parts.next())?;
        if parts.next().is_some() || major != 1 || suffix == "-" || suffix == "+" {
            return Err(invalid());
        }
        if minor < 22 {
            return Err(BootstrapError::UnsupportedKubernetesVersion {
                version: version.to_string(),
            });
        }
        Ok(KubernetesVersion {
            minor,
            patch,
            suffix: suffix.to_string(),
        })
    }

    /// The minor release (`30` for `v1.30.2`).
    pub fn minor(&self) -> u32 {
        self.minor
    }

    /// The kubeadm configuration API this release reads.
    pub fn kubeadm_api(&self) -> KubeadmApiVersion {
        KubeadmApiVersion::for_kubernetes(self)
    }
}

impl FromStr for KubernetesVersion {
    type Err = BootstrapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KubernetesVersion::parse(s)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1.{}.{}{}", self.minor, self.patch, self.suffix)
    }
}

/// kubeadm's configuration API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApiVersion {
    /// `kubeadm.k8s.io/v1beta3`, Kubernetes 1.22 to 1.30: extra arguments are maps.
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4`, Kubernetes 1.31 on: extra arguments are lists of
    /// `{name, value}`.
    V1Beta4,
}

impl KubeadmApiVersion {
    /// The API version kubeadm of this Kubernetes release should be given: v1beta4 from
    /// 1.31 (where v1beta3 is deprecated), v1beta3 before (where v1beta4 does not exist).
    pub fn for_kubernetes(version: &KubernetesVersion) -> KubeadmApiVersion {
        if version.minor >= 31 {
            KubeadmApiVersion::V1Beta4
        } else {
            KubeadmApiVersion::V1Beta3
        }
    }

    /// The `apiVersion` of the documents.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeadmApiVersion::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApiVersion::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// What a machine does when it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// The first control-plane node: `kubeadm init`.
    Init,
    /// A further control-plane node: `kubeadm join` with `controlPlane`.
    JoinControlPlane,
    /// A worker: `kubeadm join`.
    Worker,
}

impl NodeRole {
    /// Whether the node runs the control plane (and so receives the cluster PKI).
    pub fn is_control_plane(self) -> bool {
        matches!(self, NodeRole::Init | NodeRole::JoinControlPlane)
    }
}

/// Everything kubeadm needs to know about one machine and its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBootstrap {
    /// The cluster's name (`clusterName`).
    pub cluster_name: String,
    /// The Kubernetes release to run; selects the kubeadm API version.
    pub kubernetes_version: KubernetesVersion,
    /// `host:port` of the API load balancer (or its floating IP): the
    /// `controlPlaneEndpoint`, and where joining nodes discover the cluster.
    pub control_plane_endpoint: String,
    /// The pod network (`podSubnet`).
    pub pod_cidr: String,
    /// The service network (`serviceSubnet`).
    pub service_cidr: String,
    /// The node's name (`nodeRegistration.name`), also its hostname.
    pub node_name: String,
    /// What the machine does.
    pub role: NodeRole,
    /// The failure domain, labelled `topology.kubernetes.io/zone` if given.
    pub zone: Option<String>,
    /// The region, labelled `topology.kubernetes.io/region` if given.
    pub region: Option<String>,
    /// For `Init`: the token to create; for joins: the token to join with.
    pub token: BootstrapToken,
    /// The Kubernetes CA's hash ([`crate::pki::ca_cert_hash`]); joins pin the CA with it.
    /// Not used by `Init`.
    pub ca_cert_hash: String,
    /// Extra names for the API server certificate (`certSANs`; see
    /// [`crate::pki::ApiServerSans::cert_sans`]). Used by `Init`.
    pub cert_sans: Vec<String>,
}

/// A file the API server reads, to be written on every control-plane machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServerFile {
    /// Absolute path on the machine.
    pub path: &'static str,
    /// The file's content.
    pub content: &'static str,
}

/// The files `--admission-control-config-file` and `--audit-policy-file` point to: the
/// AdmissionConfiguration, the EventRateLimit configuration it references, and the
/// audit policy. The same on every control-plane node, so static.
pub fn api_server_files() -> [ApiServerFile; 3] {
    [
        ApiServerFile {
            path: ADMISSION_CONFIG_PATH,
            content: ADMISSION_CONFIGURATION,
        },
        ApiServerFile {
            path: EVENT_RATE_LIMIT_CONFIG_PATH,
            content: EVENT_RATE_LIMIT_CONFIGURATION,
        },
        ApiServerFile {
            path: AUDIT_POLICY_PATH,
            content: AUDIT_POLICY,
        },
    ]
}

/// Renders the kubeadm configuration file (`kubeadm init|join --config`) for `node`:
/// YAML documents separated by `---` (see the module documentation for which).
pub fn render_kubeadm_config(node: &NodeBootstrap) -> Result<String, BootstrapError> {
    let api = node.kubernetes_version.kubeadm_api();
    let mut documents = Vec::new();
    match node.role {
        NodeRole::Init => {
            documents.push(yaml("InitConfiguration", &init_configuration(node, api))?);
            documents.push(yaml(
                "ClusterConfiguration",
                &cluster_configuration(node, api),
            )?);
        }
        NodeRole::JoinControlPlane | NodeRole::Worker => {
            if node.ca_cert_hash.is_empty() {
                return Err(BootstrapError::MissingCaCertHash {
                    node: node.node_name.clone(),
                });
            }
            documents.push(yaml("JoinConfiguration", &join_configuration(node, api))?);
        }
    }
    documents.push(yaml("KubeletConfiguration", &kubelet_configuration())?);
    Ok(documents.join("---\n"))
}

/// Serializes one YAML document. Strings with newlines (PEMs, embedded files) become
/// literal blocks (`|`); long one-line strings stay on one line rather than being folded
/// (`>`), so that commands and flags read and grep as they run.
pub(crate) fn yaml<T: Serialize>(what: &'static str, value: &T) -> Result<String, BootstrapError> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: 1 << 16 };
    serde_saphyr::to_string_with_options(value, options)
        .map_err(|source| BootstrapError::RenderYaml { what, source })
}

// --- kubeadm documents -------------------------------------------------------------

/// Command-line arguments of a component, in the shape of the kubeadm API version.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ExtraArgs {
    /// v1beta3: `{name: value}`.
    Map(BTreeMap<&'static str, String>),
    /// v1beta4: `[{name, value}]`, in the given order.
    List(Vec<Arg>),
}

#[derive(Debug, Serialize)]
struct Arg {
    name: &'static str,
    value: String,
}

fn extra_args(api: KubeadmApiVersion, args: Vec<(&'static str, String)>) -> ExtraArgs {
    match api {
        KubeadmApiVersion::V1Beta3 => ExtraArgs::Map(args.into_iter().collect()),
        KubeadmApiVersion::V1Beta4 => ExtraArgs::List(
            args.into_iter()
                .map(|(name, value)| Arg { name, value })
                .collect(),
        ),
    }
}

fn args(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapTokenSpec>,
    node_registration: NodeRegistration<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenSpec {
    token: String,
    description: &'static str,
    /// Absolute, so that the token dies when kaas recorded it would, however long the
    /// machine took to boot (a `ttl` would start counting at `kubeadm init`).
    expires: String,
    usages: [&'static str; 2],
    groups: [&'static str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration<'a> {
    name: &'a str,
    kubelet_extra_args: ExtraArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: &'a str,
    kubernetes_version: String,
    control_plane_endpoint: &'a str,
    networking: Networking<'a>,
    api_server: ApiServer<'a>,
    controller_manager: Component,
    scheduler: Component,
    etcd: Etcd,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking<'a> {
    pod_subnet: &'a str,
    service_subnet: &'a str,
    dns_domain: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer<'a> {
    #[serde(rename = "certSANs")]
    cert_sans: &'a [String],
    extra_args: ExtraArgs,
    extra_volumes: Vec<HostPathMount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HostPathMount {
    name: &'static str,
    host_path: &'static str,
    mount_path: &'static str,
    read_only: bool,
    path_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    extra_args: ExtraArgs,
}

#[derive(Serialize)]
struct Etcd {
    local: Component,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery<'a>,
    node_registration: NodeRegistration<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery<'a> {
    bootstrap_token: BootstrapTokenDiscovery<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery<'a> {
    api_server_endpoint: &'a str,
    token: String,
    ca_cert_hashes: [&'a str; 1],
}

/// No `certificateKey`: cloud-init writes the shared certificates to disk.
#[derive(Serialize)]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: LocalApiEndpoint,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalApiEndpoint {
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    authentication: KubeletAuthentication,
    authorization: KubeletAuthorization,
    read_only_port: u16,
    cgroup_driver: &'static str,
    rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: bool,
    protect_kernel_defaults: bool,
    #[serde(rename = "eventRecordQPS")]
    event_record_qps: u32,
    tls_min_version: &'static str,
}

#[derive(Serialize)]
struct KubeletAuthentication {
    anonymous: Enabled,
    webhook: Enabled,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
struct KubeletAuthorization {
    mode: &'static str,
}

/// The kubelet's flags: the cloud controller manager initializes the node, and the
/// topology labels are set from the start (NodeRestriction allows kubelets to set
/// `topology.kubernetes.io/*`).
fn node_registration(node: &NodeBootstrap, api: KubeadmApiVersion) -> NodeRegistration<'_> {
    let mut kubelet = args(&[("cloud-provider", "external")]);
    let labels: Vec<String> = [
        ("topology.kubernetes.io/zone", &node.zone),
        ("topology.kubernetes.io/region", &node.region),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.as_ref().map(|v| format!("{label}={v}")))
    .collect();
    if !labels.is_empty() {
        kubelet.push(("node-labels", labels.join(",")));
    }
    NodeRegistration {
        name: &node.node_name,
        kubelet_extra_args: extra_args(api, kubelet),
    }
}

fn init_configuration(node: &NodeBootstrap, api: KubeadmApiVersion) -> InitConfiguration<'_> {
    InitConfiguration {
        api_version: api.as_str(),
        kind: "InitConfiguration",
        bootstrap_tokens: vec![BootstrapTokenSpec {
            token: node.token.token(),
            description: "kaas machine bootstrap",
            expires: node
                .token
                .expires
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            usages: ["signing", "authentication"],
            groups: ["system:bootstrappers:kubeadm:default-node-token"],
        }],
        node_registration: node_registration(node, api),
    }
}

fn cluster_configuration(node: &NodeBootstrap, api: KubeadmApiVersion) -> ClusterConfiguration<'_> {
    let api_server_args = args(&[
        // SCS robustness: bound concurrent requests and long-running request lifetimes.
        ("max-requests-inflight", "400"),
        ("max-mutating-requests-inflight", "200"),
        ("min-request-timeout", "300"),
        // PodSecurity is on by default; NodeRestriction and EventRateLimit are not.
        ("enable-admission-plugins", "NodeRestriction,EventRateLimit"),
        ("admission-control-config-file", ADMISSION_CONFIG_PATH),
        ("audit-policy-file", AUDIT_POLICY_PATH),
        ("audit-log-path", AUDIT_LOG_PATH),
        ("audit-log-maxage", "30"),
        ("audit-log-maxbackup", "10"),
        ("audit-log-maxsize", "100"),
        ("profiling", "false"),
    ]);
    ClusterConfiguration {
        api_version: api.as_str(),
        kind: "ClusterConfiguration",
        cluster_name: &node.cluster_name,
        kubernetes_version: node.kubernetes_version.to_string(),
        control_plane_endpoint: &node.control_plane_endpoint,
        networking: Networking {
            pod_subnet: &node.pod_cidr,
            service_subnet: &node.service_cidr,
            dns_domain: "cluster.local",
        },
        api_server: ApiServer {
            cert_sans: &node.cert_sans,
            extra_args: extra_args(api, api_server_args),
            extra_volumes: vec![
                HostPathMount {
                    name: "admission",
                    host_path: ADMISSION_DIR,
                    mount_path: ADMISSION_DIR,
                    read_only: true,
                    path_type: "Directory",
                },
                HostPathMount {
                    name: "audit-policy",
                    host_path: AUDIT_DIR,
                    mount_path: AUDIT_DIR,
                    read_only: true,
                    path_type: "Directory",
                },
                HostPathMount {
                    name: "audit-log",
                    host_path: AUDIT_LOG_DIR,
                    mount_path: AUDIT_LOG_DIR,
                    read_only: false,
                    path_type: "DirectoryOrCreate",
                },
            ],
        },
        controller_manager: Component {
            extra_args: extra_args(
                api,
                args(&[
                    ("cloud-provider", "external"),
                    ("profiling", "false"),
                    ("terminated-pod-gc-threshold", "100"),
                ]),
            ),
        },
        scheduler: Component {
            extra_args: extra_args(api, args(&[("profiling", "false")])),
        },
        etcd: Etcd {
            local: Component {
                extra_args: extra_args(
                    api,
                    args(&[
                        // SCS robustness: compact history every 8 h, 8 GiB backend quota.
                        ("auto-compaction-mode", "periodic"),
                        ("auto-compaction-retention", "8h"),
                        ("quota-backend-bytes", "8589934592"),
                    ]),
                ),
            },
        },
    }
}

fn join_configuration(node: &NodeBootstrap, api: KubeadmApiVersion) -> JoinConfiguration<'_> {
    JoinConfiguration {
        api_version: api.as_str(),
        kind: "JoinConfiguration",
        discovery: Discovery {
            bootstrap_token: BootstrapTokenDiscovery {
                api_server_endpoint: &node.control_plane_endpoint,
                token: node.token.token(),
                ca_cert_hashes: [&node.ca_cert_hash],
            },
        },
        node_registration: node_registration(node, api),
        control_plane: (node.role == NodeRole::JoinControlPlane).then_some(JoinControlPlane {
            local_api_endpoint: LocalApiEndpoint {
                bind_port: API_SERVER_BIND_PORT,
            },
        }),
    }
}

/// The kubelet, hardened: no anonymous access, every request authorized by the API
/// server, no read-only port, rotated client certificates, TLS 1.2 or newer, and
/// kernel settings checked rather than changed (cloud-init sets them beforehand).
fn kubelet_configuration() -> KubeletConfiguration {
    KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        authentication: KubeletAuthentication {
            anonymous: Enabled { enabled: false },
            webhook: Enabled { enabled: true },
        },
        authorization: KubeletAuthorization { mode: "Webhook" },
        read_only_port: 0,
        cgroup_driver: "systemd",
        rotate_certificates: true,
        server_tls_bootstrap: false,
        protect_kernel_defaults: true,
        event_record_qps: 5,
        tls_min_version: "VersionTLS12",
    }
}

// --- files the API server reads ------------------------------------------------------

/// The admission plugins' configuration: EventRateLimit (from its own file) and Pod
/// Security Admission (inline): `baseline` enforced everywhere but `kube-system`,
/// `restricted` audited and warned about, so that workloads see what they would need to
/// change for the stricter level.
const ADMISSION_CONFIGURATION: &str = "\
# Written by kaas. Read by kube-apiserver (--admission-control-config-file).
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: EventRateLimit
  path: /etc/kubernetes/admission/eventratelimit.yaml
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      audit: restricted
      audit-version: latest
      warn: restricted
      warn-version: latest
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces:
      - kube-system
";

/// Event rate limits, so that a crash-looping workload cannot flood etcd with events:
/// overall, per namespace and per user.
const EVENT_RATE_LIMIT_CONFIGURATION: &str = "\
# Written by kaas. Read by the EventRateLimit admission plugin.
apiVersion: eventratelimit.admission.k8s.io/v1alpha1
kind: Configuration
limits:
- type: Server
  qps: 50
  burst: 100
- type: Namespace
  qps: 50
  burst: 100
  cacheSize: 2000
- type: User
  qps: 10
  burst: 50
  cacheSize: 2000
";

/// The audit policy. Rules are matched in order, the first match wins:
/// 1. nothing for health, readiness, version and metrics probes (noise);
/// 2. nothing for kube-proxy's watches on endpoints and services (constant, harmless);
/// 3. nothing for reads and renewals of leader-election and node-heartbeat leases;
/// 4. metadata only for Secrets, ConfigMaps and TokenReviews, whose bodies hold secrets;
/// 5. metadata for everything else: who did what to which object and when, without
///    request or response bodies (which would multiply the log's size).
///
/// The `RequestReceived` stage is omitted: every request is logged once it has a response.
const AUDIT_POLICY: &str = "\
# Written by kaas. Read by kube-apiserver (--audit-policy-file).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
# Probes and scrapes.
- level: None
  nonResourceURLs:
  - /healthz*
  - /livez*
  - /readyz*
  - /metrics
  - /version
# kube-proxy watching endpoints and services.
- level: None
  users:
  - system:kube-proxy
  verbs:
  - watch
  resources:
  - group: \"\"
    resources:
    - endpoints
    - services
    - services/status
  - group: discovery.k8s.io
    resources:
    - endpointslices
# Lease reads and renewals: node heartbeats and leader election.
- level: None
  verbs:
  - get
  - update
  resources:
  - group: coordination.k8s.io
    resources:
    - leases
# Objects whose bodies are secret: who touched them, not what they hold.
- level: Metadata
  resources:
  - group: \"\"
    resources:
    - secrets
    - configmaps
  - group: authentication.k8s.io
    resources:
    - tokenreviews
# Everything else.
- level: Metadata
";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    const TEST_TOKEN_ID: &str = "abcdef";
    const TEST_TOKEN_SECRET: &str = "0123456789abcdef";
    const TEST_HASH: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn node(version: &str, role: NodeRole) -> NodeBootstrap {
        NodeBootstrap {
            cluster_name: "demo".to_string(),
            kubernetes_version: KubernetesVersion::parse(version).unwrap(),
            control_plane_endpoint: "203.0.113.7:6443".to_string(),
            pod_cidr: "192.168.0.0/16".to_string(),
            service_cidr: "10.96.0.0/12".to_string(),
            node_name: match role {
                NodeRole::Init => "demo-control-plane-0",
                NodeRole::JoinControlPlane => "demo-control-plane-1",
                NodeRole::Worker => "demo-workers-0",
            }
            .to_string(),
            role,
            zone: Some("nova-a".to_string()),
            region: Some("RegionOne".to_string()),
            token: BootstrapToken {
                id: TEST_TOKEN_ID.to_string(),
                secret: TEST_TOKEN_SECRET.to_string(),
                expires: Utc.with_ymd_and_hms(2025, 3, 14, 17, 0, 0).unwrap(),
            },
            ca_cert_hash: TEST_HASH.to_string(),
            cert_sans: vec!["192.0.2.10".to_string(), "203.0.113.7".to_string()],
        }
    }

    /// The rendered configuration with the token and the CA hash replaced.
    fn redacted(node: &NodeBootstrap) -> String {
        render_kubeadm_config(node)
            .unwrap()
            .replace(&node.token.token(), "<token>")
            .replace(&node.ca_cert_hash, "<ca-cert-hash>")
    }

    fn documents(node: &NodeBootstrap) -> Vec<Value> {
        let rendered = render_kubeadm_config(node).unwrap();
        serde_saphyr::from_multiple(&rendered).unwrap()
    }

    fn document<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
    }

    #[test]
    fn kubeadm_api_follows_kubernetes_version() {
        let api = |v: &str| KubernetesVersion::parse(v).unwrap().kubeadm_api();
        assert_eq!(api("v1.22.0"), KubeadmApiVersion::V1Beta3);
        assert_eq!(api("v1.30.2"), KubeadmApiVersion::V1Beta3);
        assert_eq!(api("1.30.14"), KubeadmApiVersion::V1Beta3);
        assert_eq!(api("v1.31.0"), KubeadmApiVersion::V1Beta4);
        assert_eq!(api("v1.31.0-rc.1"), KubeadmApiVersion::V1Beta4);
        assert_eq!(api("v1.33.1"), KubeadmApiVersion::V1Beta4);
        assert_eq!(
            KubeadmApiVersion::V1Beta3.as_str(),
            "kubeadm.k8s.io/v1beta3"
        );
        assert_eq!(
            KubeadmApiVersion::V1Beta4.as_str(),
            "kubeadm.k8s.io/v1beta4"
        );
    }

    #[test]
    fn kubernetes_versions_parse_strictly() {
        assert_eq!(
            KubernetesVersion::parse("1.30.2").unwrap().to_string(),
            "v1.30.2"
        );
        assert_eq!(
            "v1.31.0-rc.1"
                .parse::<KubernetesVersion>()
                .unwrap()
                .to_string(),
            "v1.31.0-rc.1"
        );
        for bad in [
            "",
            "v1.30",
            "v1.30.x",
            "v2.0.0",
            "v1.30.2.1",
            "v1..2",
            "v1.30.2-",
            "latest",
        ] {
            assert!(
                matches!(
                    KubernetesVersion::parse(bad),
                    Err(BootstrapError::InvalidKubernetesVersion { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            KubernetesVersion::parse("v1.21.14"),
            Err(BootstrapError::UnsupportedKubernetesVersion { .. })
        ));
    }

    #[test]
    fn snapshot_init_v1beta3() {
        insta::assert_snapshot!(redacted(&node("v1.30.2", NodeRole::Init)));
    }

    #[test]
    fn snapshot_init_v1beta4() {
        insta::assert_snapshot!(redacted(&node("v1.33.1", NodeRole::Init)));
    }

    #[test]
    fn snapshot_join_control_plane_v1beta3() {
        insta::assert_snapshot!(redacted(&node("v1.30.2", NodeRole::JoinControlPlane)));
    }

    #[test]
    fn snapshot_join_control_plane_v1beta4() {
        insta::assert_snapshot!(redacted(&node("v1.33.1", NodeRole::JoinControlPlane)));
    }

    #[test]
    fn snapshot_worker_v1beta3() {
        insta::assert_snapshot!(redacted(&node("v1.30.2", NodeRole::Worker)));
    }

    #[test]
    fn snapshot_worker_v1beta4() {
        insta::assert_snapshot!(redacted(&node("v1.33.1", NodeRole::Worker)));
    }

    #[test]
    fn documents_per_role() {
        let kinds = |role| {
            documents(&node("v1.33.1", role))
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(NodeRole::Init),
            [
                "InitConfiguration",
                "ClusterConfiguration",
                "KubeletConfiguration"
            ]
        );
        assert_eq!(
            kinds(NodeRole::JoinControlPlane),
            ["JoinConfiguration", "KubeletConfiguration"]
        );
        assert_eq!(
            kinds(NodeRole::Worker),
            ["JoinConfiguration", "KubeletConfiguration"]
        );
    }

    #[test]
    fn v1beta3_takes_extra_args_as_maps() {
        let docs = documents(&node("v1.30.2", NodeRole::Init));
        let init = document(&docs, "InitConfiguration");
        let cluster = document(&docs, "ClusterConfiguration");
        assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert_eq!(
            init["nodeRegistration"]["kubeletExtraArgs"],
            json!({
                "cloud-provider": "external",
                "node-labels": "topology.kubernetes.io/zone=nova-a,topology.kubernetes.io/region=RegionOne",
            })
        );
        let api_args = &cluster["apiServer"]["extraArgs"];
        assert!(api_args.is_object(), "{api_args}");
        assert_eq!(api_args["max-requests-inflight"], "400");
        assert_eq!(
            api_args["enable-admission-plugins"],
            "NodeRestriction,EventRateLimit"
        );
        assert_eq!(api_args["profiling"], "false");
        assert_eq!(
            cluster["controllerManager"]["extraArgs"],
            json!({"cloud-provider": "external", "profiling": "false", "terminated-pod-gc-threshold": "100"})
        );
        assert_eq!(
            cluster["scheduler"]["extraArgs"],
            json!({"profiling": "false"})
        );
        assert_eq!(
            cluster["etcd"]["local"]["extraArgs"],
            json!({
                "auto-compaction-mode": "periodic",
                "auto-compaction-retention": "8h",
                "quota-backend-bytes": "8589934592",
            })
        );

        let join = documents(&node("v1.30.2", NodeRole::Worker));
        let join = document(&join, "JoinConfiguration");
        assert_eq!(join["apiVersion"], "kubeadm.k8s.io/v1beta3");
        assert!(join["nodeRegistration"]["kubeletExtraArgs"].is_object());
    }

    #[test]
    fn v1beta4_takes_extra_args_as_lists_of_name_value() {
        let docs = documents(&node("v1.33.1", NodeRole::Init));
        let init = document(&docs, "InitConfiguration");
        let cluster = document(&docs, "ClusterConfiguration");
        assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(cluster["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(
            init["nodeRegistration"]["kubeletExtraArgs"],
            json!([
                {"name": "cloud-provider", "value": "external"},
                {"name": "node-labels", "value": "topology.kubernetes.io/zone=nova-a,topology.kubernetes.io/region=RegionOne"},
            ])
        );
        let api_args = cluster["apiServer"]["extraArgs"].as_array().unwrap();
        for arg in api_args {
            let keys: Vec<_> = arg.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, ["name", "value"]);
        }
        assert!(api_args.contains(&json!({"name": "max-requests-inflight", "value": "400"})));
        assert!(api_args.contains(&json!({
            "name": "admission-control-config-file",
            "value": "/etc/kubernetes/admission/admission.yaml",
        })));
        assert_eq!(
            cluster["controllerManager"]["extraArgs"],
            json!([
                {"name": "cloud-provider", "value": "external"},
                {"name": "profiling", "value": "false"},
                {"name": "terminated-pod-gc-threshold", "value": "100"},
            ])
        );
        assert_eq!(
            cluster["scheduler"]["extraArgs"],
            json!([{"name": "profiling", "value": "false"}])
        );
        assert_eq!(
            cluster["etcd"]["local"]["extraArgs"],
            json!([
                {"name": "auto-compaction-mode", "value": "periodic"},
                {"name": "auto-compaction-retention", "value": "8h"},
                {"name": "quota-backend-bytes", "value": "8589934592"},
            ])
        );

        let join = documents(&node("v1.33.1", NodeRole::JoinControlPlane));
        let join = document(&join, "JoinConfiguration");
        assert_eq!(join["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert!(join["nodeRegistration"]["kubeletExtraArgs"].is_array());
    }

    #[test]
    fn init_creates_the_bootstrap_token() {
        let n = node("v1.33.1", NodeRole::Init);
        let docs = documents(&n);
        let init = document(&docs, "InitConfiguration");
        assert_eq!(
            init["bootstrapTokens"],
            json!([{
                "token": "abcdef.0123456789abcdef",
                "description": "kaas machine bootstrap",
                "expires": "2025-03-14T17:00:00Z",
                "usages": ["signing", "authentication"],
                "groups": ["system:bootstrappers:kubeadm:default-node-token"],
            }])
        );
        let cluster = document(&docs, "ClusterConfiguration");
        assert_eq!(cluster["kubernetesVersion"], "v1.33.1");
        assert_eq!(cluster["clusterName"], "demo");
        assert_eq!(cluster["controlPlaneEndpoint"], "203.0.113.7:6443");
        assert_eq!(
            cluster["networking"],
            json!({"podSubnet": "192.168.0.0/16", "serviceSubnet": "10.96.0.0/12", "dnsDomain": "cluster.local"})
        );
        assert_eq!(
            cluster["apiServer"]["certSANs"],
            json!(["192.0.2.10", "203.0.113.7"])
        );
        let volumes = cluster["apiServer"]["extraVolumes"].as_array().unwrap();
        let mounts: Vec<_> = volumes
            .iter()
            .map(|v| {
                (
                    v["hostPath"].as_str().unwrap(),
                    v["readOnly"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("/etc/kubernetes/admission", true),
                ("/etc/kubernetes/audit", true),
                ("/var/log/kubernetes/audit", false)
            ]
        );
        assert_eq!(volumes[2]["pathType"], "DirectoryOrCreate");
    }

    #[test]
    fn joins_discover_with_token_and_pinned_ca() {
        for role in [NodeRole::JoinControlPlane, NodeRole::Worker] {
            let docs = documents(&node("v1.30.2", role));
            let join = document(&docs, "JoinConfiguration");
            assert_eq!(
                join["discovery"]["bootstrapToken"],
                json!({
                    "apiServerEndpoint": "203.0.113.7:6443",
                    "token": "abcdef.0123456789abcdef",
                    "caCertHashes": [TEST_HASH],
                })
            );
            let control_plane = &join["controlPlane"];
            if role == NodeRole::JoinControlPlane {
                assert_eq!(
                    *control_plane,
                    json!({"localAPIEndpoint": {"bindPort": 6443}})
                );
            } else {
                assert!(control_plane.is_null());
            }
        }
        let mut no_hash = node("v1.30.2", NodeRole::Worker);
        no_hash.ca_cert_hash.clear();
        assert!(matches!(
            render_kubeadm_config(&no_hash),
            Err(BootstrapError::MissingCaCertHash { .. })
        ));
    }

    #[test]
    fn node_labels_only_for_what_is_known() {
        let mut n = node("v1.30.2", NodeRole::Worker);
        n.region = None;
        let docs = documents(&n);
        assert_eq!(
            document(&docs, "JoinConfiguration")["nodeRegistration"]["kubeletExtraArgs"],
            json!({"cloud-provider": "external", "node-labels": "topology.kubernetes.io/zone=nova-a"})
        );
        n.zone = None;
        let docs = documents(&n);
        assert_eq!(
            document(&docs, "JoinConfiguration")["nodeRegistration"]["kubeletExtraArgs"],
            json!({"cloud-provider": "external"})
        );
    }

    #[test]
    fn kubelet_is_hardened_on_every_node() {
        for role in [NodeRole::Init, NodeRole::JoinControlPlane, NodeRole::Worker] {
            let docs = documents(&node("v1.33.1", role));
            let kubelet = document(&docs, "KubeletConfiguration");
            assert_eq!(
                *kubelet,
                json!({
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "authentication": {"anonymous": {"enabled": false}, "webhook": {"enabled": true}},
                    "authorization": {"mode": "Webhook"},
                    "readOnlyPort": 0,
                    "cgroupDriver": "systemd",
                    "rotateCertificates": true,
                    "serverTLSBootstrap": false,
                    "protectKernelDefaults": true,
                    "eventRecordQPS": 5,
                    "tlsMinVersion": "VersionTLS12",
                })
            );
        }
    }

    #[test]
    fn api_server_files_parse_and_say_what_they_should() {
        let files = api_server_files();
        let parsed: Vec<Value> = files
            .iter()
            .map(|f| serde_saphyr::from_str(f.content).unwrap())
            .collect();

        let admission = &parsed[0];
        assert_eq!(admission["kind"], "AdmissionConfiguration");
        assert_eq!(admission["apiVersion"], "apiserver.config.k8s.io/v1");
        assert_eq!(admission["plugins"][0]["name"], "EventRateLimit");
        assert_eq!(admission["plugins"][0]["path"], files[1].path);
        let pss = &admission["plugins"][1];
        assert_eq!(pss["name"], "PodSecurity");
        assert_eq!(
            pss["configuration"]["apiVersion"],
            "pod-security.admission.config.k8s.io/v1"
        );
        assert_eq!(
            pss["configuration"]["defaults"],
            json!({
                "enforce": "baseline", "enforce-version": "latest",
                "audit": "restricted", "audit-version": "latest",
                "warn": "restricted", "warn-version": "latest",
            })
        );
        assert_eq!(
            pss["configuration"]["exemptions"]["namespaces"],
            json!(["kube-system"])
        );

        let limits = &parsed[1];
        assert_eq!(
            limits["apiVersion"],
            "eventratelimit.admission.k8s.io/v1alpha1"
        );
        assert_eq!(
            limits["limits"],
            json!([
                {"type": "Server", "qps": 50, "burst": 100},
                {"type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000},
                {"type": "User", "qps": 10, "burst": 50, "cacheSize": 2000},
            ])
        );

        let audit = &parsed[2];
        assert_eq!(audit["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(audit["kind"], "Policy");
        assert_eq!(audit["omitStages"], json!(["RequestReceived"]));
        let rules = audit["rules"].as_array().unwrap();
        assert_eq!(rules[0]["level"], "None");
        assert!(
            rules[0]["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/healthz*"))
        );
        assert_eq!(rules[1]["users"], json!(["system:kube-proxy"]));
        assert_eq!(rules[3]["level"], "Metadata");
        assert_eq!(rules[3]["resources"][0]["group"], "");
        assert_eq!(rules.last().unwrap(), &json!({"level": "Metadata"}));
    }
}

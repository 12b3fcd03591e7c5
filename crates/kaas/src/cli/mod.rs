//! The `kaas` command line: kubectl-style verbs against the REST API, plus `server`
//! and `demo`.

mod admin;
mod artifacts;
mod client;
mod context;
mod demo;
mod kubeconfig;
mod output;
mod registry;
mod release_data;
mod render;
mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

pub use client::{ApiFailure, Client};
use output::{CLUSTER_HEADERS, Format, cluster_row, print_list, print_value, table};
pub use wait::settled;

use crate::server::{CloudKind, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "kaas",
    version,
    about = "Kubernetes-as-a-Service for OpenStack clouds"
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Connection {
    /// The kaas server's URL (else $KAAS_SERVER, the context's, or http://127.0.0.1:7443).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// API token (else $KAAS_TOKEN, the context's, or ./kaas-data/admin.token when it
    /// exists).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The saved context to use instead of the current one (else $KAAS_CONTEXT; see
    /// `kaas context`).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The tenant to act in, for the operator's token (sent as the Kaas-Tenant
    /// header); other tokens belong to one tenant.
    #[arg(long, global = true, env = "KAAS_TENANT")]
    pub tenant: Option<String>,
    /// Log filter for server and demo (RUST_LOG syntax).
    #[arg(long, global = true, env = "KAAS_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the kaas server.
    Server(Box<ServerArgs>),
    /// Start an embedded server on the simulated cloud, create a cluster and keep serving.
    Demo(DemoArgs),
    /// Check a server and token (--server URL --token TOKEN), save them as a context and
    /// make it current.
    Login(context::LoginArgs),
    /// Forget a saved context and its token (default: the current one).
    Logout(context::LogoutArgs),
    /// List, switch and delete the saved contexts (server and token).
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Create, inspect and delete clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Inspect a cluster's machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Create a cluster from a file, or replace the spec of an existing one.
    Apply {
        /// YAML or JSON file with a Cluster.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The cluster stacks clusters may use.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Helm charts in OCI registries.
    #[command(subcommand)]
    Chart(artifacts::ChartCommand),
    /// The stacks' upstream artifacts the server has cached.
    #[command(subcommand)]
    Artifact(artifacts::ArtifactCommand),
    /// The flavors (machine sizes) the cloud offers.
    #[command(subcommand)]
    Flavor(FlavorCommand),
    /// The simulated cloud (a simulation: nothing real is created).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Tenants: the operator's customers, their projects and quotas.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// API tokens of a tenant.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// The audit log of mutating requests.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// The keys that seal secrets at rest.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// The integrated container registry: credentials, repositories, tags.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Print a shell completion script: `source <(kaas completion bash)` (bash, zsh),
    /// `kaas completion fish | source` (fish).
    Completion {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlavorCommand {
    /// List the flavors clusters' machines may be made of, smallest first, with the
    /// vCPUs that quotas count.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// List the stacks, marking those the SCS version policy objects to.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show one stack: Kubernetes version, node image, addons, upgrade paths, policy.
    Show {
        name: String,
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// The Kubernetes release data the SCS version policy is checked against.
    #[command(subcommand)]
    Versions(release_data::VersionsCommand),
    /// Get every upstream artifact (chart, manifest) of a stack, each checked against
    /// its pinned digest: into a tar bundle with -o (got by this command), or into the
    /// server's cache (got by the server).
    Pull(artifacts::PullArgs),
    /// Upload a bundle's artifacts to the server (for clouds without internet).
    Import {
        /// A bundle written by `kaas stack pull -o`.
        bundle: PathBuf,
    },
    /// Get a stack's charts and push them to an operator's OCI registry, the mirror a
    /// server's --artifact-mirror names.
    Mirror(artifacts::MirrorArgs),
    /// Print what a cluster would get from a stack's addons: every object, rendered as
    /// kaas renders it, as YAML (the cloud's Keystone URL and region and the cluster's
    /// credential secret as placeholders).
    Render {
        /// The stack.
        stack: String,
        /// The cluster whose spec and values to render with (else an example cluster
        /// with the --addons given).
        #[arg(long, conflicts_with_all = ["addons", "acme_email"])]
        cluster: Option<String>,
        /// Optional addons, comma-separated, as `kaas cluster create --addons`.
        #[arg(long, value_delimiter = ',')]
        addons: Vec<String>,
        /// The e-mail address for Let's Encrypt (with cert-manager).
        #[arg(long)]
        acme_email: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[arg(long, default_value = "./kaas-data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: std::net::SocketAddr,
    #[arg(long, value_enum, default_value = "sim")]
    pub cloud: CloudKind,
    /// Time-scale factor of the simulated cloud (200: two hundred times faster).
    #[arg(long, default_value_t = 1.0)]
    pub sim_speed: f64,
    /// Fault rates of the simulated cloud, e.g. `api-errors=0.05,server-errors=0.1`
    /// (also timeouts, quota-errors, stuck-load-balancers).
    #[arg(long, value_parser = crate::server::parse_sim_faults)]
    pub sim_faults: Option<kaas_sim::SimFaults>,
    /// Quotas of the simulated cloud's project, e.g. `networks=500,servers=5000`
    /// (keys: network, subnet, router, security-group, server-group, port,
    /// load-balancer, floating-ip, server, application-credential; plurals are taken
    /// too); the others keep their defaults. Applies from each start.
    #[arg(long, value_name = "KEY=N,…", value_parser = crate::server::parse_sim_quotas)]
    pub sim_quota: Option<kaas_sim::Quotas>,
    /// How long the simulated kubelets' node leases hold, in seconds of real time; they
    /// renew them at a quarter of it, as a kubelet does. Longer leases make thousands
    /// of simulated nodes cheaper (kubelet's default: 40).
    #[arg(long, value_name = "SECONDS", default_value_t = 40, value_parser = clap::value_parser!(u64).range(40..=86400))]
    pub sim_node_lease: u64,
    /// The default tenant's quotas, e.g. `clusters=100,machines=2000,vcpus=8000`
    /// (any of them). Set on every start that gives the flag; a quota it does not
    /// name keeps its value (on the first start, the default: clusters=20,
    /// machines=500, vcpus=2000). Without the flag the quotas stay as they are, e.g.
    /// as `kaas tenant update default --quota …` set them.
    #[arg(long, value_name = "KEY=N,…", value_parser = kaas_core::tenant::parse_quota_change)]
    pub default_quota: Option<kaas_core::tenant::QuotaChange>,
    /// A folder of operator stacks (`NAME/stack.yaml`), offered beside the built-in ones.
    #[arg(long)]
    pub stacks_dir: Option<PathBuf>,
    /// The stack of clusters whose spec names none (default: scs-1.36).
    #[arg(long)]
    pub default_stack: Option<String>,
    /// Kubernetes release data for the SCS version policy, replacing the built-in data.
    #[arg(long)]
    pub kubernetes_versions: Option<PathBuf>,
    /// The cloud in `clouds.yaml` (with `--cloud openstack`); without it, `OS_CLOUD` or
    /// the `OS_*` variables, like the openstack CLI.
    #[arg(long)]
    pub os_cloud: Option<String>,
    /// Let simulated workload clusters stand in for the Kubernetes side (a node joins
    /// when its server is ACTIVE): for test clouds whose servers run no kubelet.
    #[arg(long)]
    pub simulate_workloads: bool,
    /// Reach the clusters whose API endpoint is HOST:PORT at ADDRESS[:PORT] instead,
    /// checking the API server's certificate against HOST (as curl's --resolve), e.g.
    /// from inside the cloud's network: `--resolve 203.0.113.10:6443:10.0.0.5`. HOST
    /// `*` maps every host on that port. Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDRESS[:PORT]")]
    pub resolve: Vec<crate::workloads::Resolve>,
    /// Which address of each cluster's API kaas connects to: its endpoint (the
    /// floating IP), or the API load balancer's VIP, for a kaas that runs inside the
    /// cloud's network.
    #[arg(long, value_enum, default_value = "endpoint")]
    pub reach_clusters_at: crate::workloads::ReachAt,
    /// Reach every workload cluster's API through this HTTP proxy (CONNECT), e.g. a
    /// bastion's in front of the clusters' networks, or `kaas sim serve`'s: the TLS
    /// runs end to end, the certificate still checked against the cluster's endpoint.
    #[arg(long, value_name = "http://HOST:PORT", value_parser = parse_cluster_proxy)]
    pub cluster_proxy: Option<String>,
    /// Where the stacks' artifacts are looked for before upstream, in order:
    /// oci://HOST/PATH (charts as PATH/NAME:VERSION, as `kaas stack mirror` pushes
    /// them) or http(s)://BASE (every blob at BASE/blobs/sha256/<hex>, as an unpacked
    /// bundle). Each is checked against the stack's pinned digest. Repeatable.
    #[arg(long = "artifact-mirror", value_name = "URL")]
    pub artifact_mirrors: Vec<kaas_artifacts::Mirror>,
    /// The integrated registry's URL, as clients and nodes reach it
    /// (`https://registry.example`): kaas is its token service at `/v2/token`.
    /// Configure the registry with `kaas registry config`.
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
    /// The registry's service name (its `auth.token.service`).
    #[arg(long, default_value = crate::registry::DEFAULT_SERVICE)]
    pub registry_service: String,
    /// How long registry tokens are valid (e.g. 5m).
    #[arg(long, default_value = "5m", value_parser = parse_ttl)]
    pub registry_token_ttl: std::time::Duration,
    /// A YAML list of registry mirrors every cluster's nodes get
    /// (`[{registry: docker.io, endpoints: [{url: https://mirror.example}]}]`).
    #[arg(long, value_name = "FILE")]
    pub registry_mirrors: Option<PathBuf>,
    /// Log lines as JSON.
    #[arg(long)]
    pub log_json: bool,
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = kaas_core::validation::parse_duration(text)?;
    if ttl.is_zero() {
        return Err("must be longer than 0s".to_owned());
    }
    Ok(ttl)
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "./kaas-data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: std::net::SocketAddr,
    /// Time-scale factor of the simulated cloud.
    #[arg(long, default_value_t = 20.0)]
    pub sim_speed: f64,
    /// Quotas of the simulated cloud's project, as `kaas server --sim-quota`.
    #[arg(long, value_name = "KEY=N,…", value_parser = crate::server::parse_sim_quotas)]
    pub sim_quota: Option<kaas_sim::Quotas>,
    /// The demo cluster's name.
    #[arg(long, default_value = "demo")]
    pub name: String,
    /// Create the cluster, then stop instead of serving.
    #[arg(long)]
    pub exit: bool,
    /// A folder of operator stacks (`NAME/stack.yaml`), offered beside the built-in
    /// ones: `dev/demo.sh` passes the local stacks, whose charts it publishes to the
    /// local registry.
    #[arg(long)]
    pub stacks_dir: Option<PathBuf>,
    /// The stack of the demo cluster, and of clusters whose spec names none.
    #[arg(long)]
    pub default_stack: Option<String>,
    /// The integrated registry kaas is the token service of (`dev/demo.sh` starts one
    /// configured by `kaas registry config`).
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
}

/// How a list that pages is fetched.
#[derive(Debug, Args, Clone, Copy)]
pub struct Paging {
    /// Fetch the list this many items at a time, page after page, as kubectl's
    /// --chunk-size (0: in one request).
    #[arg(long, alias = "limit", value_name = "N", default_value_t = 500)]
    pub chunk_size: u32,
}

#[derive(Debug, Args, Clone)]
pub struct WaitArgs {
    /// Show live progress and return when done (non-zero on failure or timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 30m, 90s.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{apply_addon_flags, is_loopback_url, parse_cluster_proxy};
    use serde_json::json;

    #[test]
    fn cluster_proxies_are_plain_http_host_and_port() {
        assert_eq!(
            parse_cluster_proxy("http://127.0.0.1:7481/").unwrap(),
            "http://127.0.0.1:7481"
        );
        assert_eq!(
            parse_cluster_proxy("http://bastion.example:3128").unwrap(),
            "http://bastion.example:3128"
        );
        for bad in [
            "https://bastion:3128",
            "socks5://bastion:1080",
            "http://bastion",
            "http://:3128",
            "http://bastion:3128/path",
        ] {
            assert!(parse_cluster_proxy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addon_flags_fill_the_spec() {
        let mut spec = json!({});
        let addons = ["ingress".to_owned(), "cert-manager".to_owned()];
        apply_addon_flags(&mut spec, &addons, Some("ops@example.com")).unwrap();
        assert_eq!(spec["addons"]["ingress"]["proxyProtocol"], true);
        assert_eq!(
            spec["addons"]["certManager"]["acmeEmail"],
            "ops@example.com"
        );
        let err =
            apply_addon_flags(&mut json!({}), &["cert-manager".to_owned()], None).unwrap_err();
        assert!(err.to_string().contains("--acme-email"));
        let err = apply_addon_flags(&mut json!({}), &["istio".to_owned()], None).unwrap_err();
        assert!(err.to_string().contains("unknown addon \"istio\""));
        assert!(apply_addon_flags(&mut json!({}), &[], Some("a@b.c")).is_err());
    }

    #[test]
    fn only_loopback_servers_get_the_local_token() {
        for url in [
            "http://127.0.0.1:7443",
            "http://localhost:7443/",
            "http://[::1]:7443",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://kaas.example:7443",
            "https://10.0.0.1",
            "http://127.0.0.1.example.com:7443",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    kaas_core::validation::parse_duration(text)
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster.
    Create {
        /// The cluster's name (may come from -f instead).
        name: Option<String>,
        /// Control-plane machines: 1, 3 or 5.
        #[arg(long)]
        control_plane: Option<u32>,
        /// Machines of the `workers` node pool.
        #[arg(long)]
        workers: Option<u32>,
        /// The control plane's flavor (`kaas flavor list` shows the cloud's).
        #[arg(long)]
        control_plane_flavor: Option<String>,
        /// The flavor of the `workers` node pool.
        #[arg(long)]
        worker_flavor: Option<String>,
        /// Cluster stack, e.g. scs-1.36.
        #[arg(long)]
        stack: Option<String>,
        /// Optional addons, comma-separated: ingress (an NGINX ingress controller
        /// behind the load balancer with PROXY protocol), gateway (the Gateway API
        /// with an NGINX implementation, the same way), cert-manager (with Let's
        /// Encrypt issuers), registry.
        #[arg(long, value_delimiter = ',')]
        addons: Vec<String>,
        /// The e-mail address for Let's Encrypt (needed with cert-manager).
        #[arg(long)]
        acme_email: Option<String>,
        /// YAML or JSON file with a Cluster; flags override it.
        #[arg(short = 'f', long = "filename")]
        file: Option<PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List clusters.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        /// Every tenant's clusters, with a TENANT column (the operator's token only).
        #[arg(short = 'A', long)]
        all_tenants: bool,
        /// Only clusters whose labels match this Kubernetes label selector, e.g.
        /// `env=prod,team in (web,db),!legacy` (=, ==, !=, in, notin, KEY, !KEY).
        #[arg(short = 'l', long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// Only clusters in this phase (Pending, Provisioning, Available, Updating,
        /// Deleting, Failed).
        #[arg(long)]
        phase: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a cluster.
    Get {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a cluster and everything it has in the cloud.
    Delete {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// A cluster's events, oldest first.
    Events { name: String },
    /// Set the number of machines of a node pool (or of the control plane).
    Scale {
        name: String,
        /// The node pool to scale.
        #[arg(
            long,
            required_unless_present = "control_plane",
            conflicts_with = "control_plane"
        )]
        pool: Option<String>,
        /// The pool's new number of machines (0..1000).
        #[arg(long, requires = "pool")]
        replicas: Option<u32>,
        /// The control plane's new number of machines (1, 3 or 5).
        #[arg(long)]
        control_plane: Option<u32>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Move a cluster to another cluster stack (one Kubernetes minor version at a time).
    Upgrade {
        name: String,
        #[arg(long)]
        stack: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Follow a cluster's events and status until Ctrl-C (or until it is gone).
    Watch { name: String },
    /// An admin kubeconfig with a short-lived client certificate.
    Kubeconfig {
        name: String,
        /// How long the client certificate is valid (1m to 7d).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Merge into $KUBECONFIG (or ~/.kube/config) instead of printing.
        #[arg(long)]
        merge: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// List a cluster's machines.
    List {
        cluster: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        #[command(flatten)]
        paging: Paging,
    },
    /// The user data a machine's server was created with, as cloud-init reads it
    /// (administrators only: it holds keys).
    UserData { cluster: String, machine: String },
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run a simulated cloud as a process of its own, serving OpenStack's REST API
    /// (Keystone, Nova, Neutron, Octavia, Glance) as kaas's OpenStack provider and the
    /// `openstack` CLI use it; writes DATA_DIR/clouds.yaml (cloud `kaas-sim`). A
    /// simulation: nothing real is created.
    Serve {
        #[arg(long, default_value = "127.0.0.1:7480")]
        listen: std::net::SocketAddr,
        /// Where the cloud's state, its user's credentials and clouds.yaml are kept.
        #[arg(long, default_value = "./kaas-sim-data")]
        data_dir: PathBuf,
        /// Time-scale factor (200: two hundred times faster).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Quotas of the simulated project, as `kaas server --sim-quota`.
        #[arg(long, value_name = "KEY=N,…", value_parser = crate::server::parse_sim_quotas)]
        quota: Option<kaas_sim::Quotas>,
        /// Fault rates, as `kaas server --sim-faults`.
        #[arg(long, value_parser = crate::server::parse_sim_faults)]
        faults: Option<kaas_sim::SimFaults>,
        /// The name of the external network (router gateways, floating IPs).
        #[arg(long, default_value = kaas_sim::api::DEFAULT_EXTERNAL_NETWORK)]
        external_network: String,
        /// Where the cluster proxy listens: an HTTP proxy (CONNECT) to the workload
        /// clusters' APIs at their floating IPs, port 6443 (`kaas server
        /// --cluster-proxy`); port 0 picks a free one (`<data-dir>/cluster-proxy.addr`).
        #[arg(long, default_value = "127.0.0.1:7481")]
        proxy_listen: std::net::SocketAddr,
        /// How long the simulated kubelets' node leases hold, in seconds of real time.
        #[arg(long, default_value_t = 40)]
        node_lease: u64,
    },
    /// Every resource in the simulated cloud.
    Inventory {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show or set the simulated cloud's fault rates (probabilities 0..1).
    Faults {
        #[arg(long)]
        api_errors: Option<f64>,
        #[arg(long)]
        timeouts: Option<f64>,
        #[arg(long)]
        quota_errors: Option<f64>,
        #[arg(long)]
        server_errors: Option<f64>,
        #[arg(long)]
        stuck_load_balancers: Option<f64>,
        /// Set every rate to 0.
        #[arg(long)]
        clear: bool,
    },
    /// Make a simulated node Ready or NotReady, or block its drain.
    Node {
        name: String,
        #[arg(long)]
        ready: Option<bool>,
        #[arg(long)]
        drain_blocked: Option<bool>,
    },
}

pub fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    // Which server and token: flags, environment, context, defaults (`context::resolve`).
    let client = || {
        let target = context::target(&cli.conn)?;
        Client::new(&target.server, target.token).map(|c| c.tenant(cli.conn.tenant.clone()))
    };
    match cli.command {
        Command::Server(args) => {
            let args = *args;
            init_logging(&cli.conn.log, args.log_json);
            crate::server::run(ServerConfig {
                data_dir: args.data_dir,
                listen: args.listen,
                cloud: args.cloud,
                sim_speed: args.sim_speed,
                sim_faults: args.sim_faults.unwrap_or_default(),
                sim_quotas: args.sim_quota.unwrap_or_default(),
                default_quota: args.default_quota,
                sim_node_lease: std::time::Duration::from_secs(args.sim_node_lease),
                sim_latencies: None,
                stacks_dir: args.stacks_dir,
                default_stack: args.default_stack,
                kubernetes_versions: args.kubernetes_versions,
                os_cloud: args.os_cloud,
                simulate_workloads: args.simulate_workloads,
                resolve: args.resolve,
                reach_clusters_at: args.reach_clusters_at,
                cluster_proxy: args.cluster_proxy,
                artifact_mirrors: args.artifact_mirrors,
                registry: args
                    .registry_url
                    .map(|url| crate::registry::RegistryOptions {
                        url,
                        service: args.registry_service,
                        token_ttl: args.registry_token_ttl,
                        mirrors_file: args.registry_mirrors,
                    }),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo::run(args, &cli.conn.log).await,
        Command::Login(args) => context::login(&cli.conn, args).await,
        Command::Logout(args) => context::logout(&cli.conn, args),
        Command::Context(cmd) => context::run(&cli.conn, cmd),
        Command::Cluster(cmd) => cluster(&client()?, cmd).await,
        Command::Tenant(cmd) => admin::tenant(&client()?, cmd).await,
        Command::Token(cmd) => admin::token(&client()?, cmd).await,
        Command::Audit(cmd) => admin::audit(&client()?, cmd).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Registry(cmd) => registry::run(client, cmd).await,
        Command::Stack(StackCommand::Versions(cmd)) => release_data::run(cmd).await,
        Command::Stack(StackCommand::Pull(args)) => artifacts::pull(&client, args).await,
        Command::Stack(StackCommand::Import { bundle }) => {
            artifacts::import(&client()?, &bundle).await
        }
        Command::Stack(StackCommand::Mirror(args)) => artifacts::mirror(&client, args).await,
        Command::Artifact(cmd) => artifacts::artifacts(&client()?, cmd).await,
        Command::Chart(cmd) => artifacts::chart(cmd).await,
        Command::Completion { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Rendered whole first: the generator panics on a failed write, and a reader
            // that stops early (`| head`) is no error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kaas", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow::anyhow!("cannot write the completion script: {e}"))
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Machine(MachineCommand::UserData { cluster, machine }) => {
            use std::io::Write;
            let bytes = client()?
                .get_bytes(&format!(
                    "/v1/clusters/{cluster}/machines/{machine}/user-data"
                ))
                .await?;
            std::io::stdout().write_all(&bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Machine(MachineCommand::List {
            cluster,
            output,
            paging,
        }) => {
            let list = client()?
                .get_all(
                    &format!("/v1/clusters/{cluster}/machines"),
                    &[],
                    paging.chunk_size,
                )
                .await?;
            print_list(
                &list,
                output,
                &[
                    "NAME", "POOL", "ROLE", "PHASE", "VERSION", "ADDRESS", "SERVER",
                ],
                |m| {
                    let s = &m["status"];
                    vec![
                        m["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        m["spec"]["pool"].as_str().unwrap_or("").to_owned(),
                        m["spec"]["role"].as_str().unwrap_or("").to_owned(),
                        s["phase"].as_str().unwrap_or("Pending").to_owned(),
                        m["spec"]["version"].as_str().unwrap_or("").to_owned(),
                        s["addresses"][0].as_str().unwrap_or("-").to_owned(),
                        s["serverId"].as_str().unwrap_or("-").to_owned(),
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply { file, wait } => {
            let client = client()?;
            let body = read_cluster_file(&file)?;
            let name = body["metadata"]["name"]
                .as_str()
                .map(str::to_owned)
                .context("the file has no metadata.name")?;
            let existing = client.get_opt(&format!("/v1/clusters/{name}")).await?;
            let from = if existing.is_some() && wait.wait {
                wait::latest_seq(&client, &name).await?
            } else {
                0
            };
            match existing {
                None => {
                    client
                        .request(Method::POST, "/v1/clusters", Some(&body))
                        .await?;
                    println!("cluster/{name} created");
                }
                Some(current) => {
                    let mut body = body;
                    // Apply means "make it so": the spec in the file wins over whatever
                    // version the server has.
                    if let Some(meta) = body["metadata"].as_object_mut() {
                        meta.remove("resourceVersion");
                    }
                    let updated = client
                        .request(Method::PUT, &format!("/v1/clusters/{name}"), Some(&body))
                        .await?;
                    let changed = updated.as_ref().map(|u| &u["metadata"]["generation"])
                        != Some(&current["metadata"]["generation"]);
                    println!(
                        "cluster/{name} {}",
                        if changed { "configured" } else { "unchanged" }
                    );
                }
            }
            if wait.wait {
                return wait::until_available_from(&client, &name, from, wait.timeout).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Faults {
            api_errors,
            timeouts,
            quota_errors,
            server_errors,
            stuck_load_balancers,
            clear,
        }) => {
            let client = client()?;
            let mut faults = if clear {
                json!({})
            } else {
                client.get("/v1/sim/faults").await?
            };
            for (key, value) in [
                ("apiErrors", api_errors),
                ("timeouts", timeouts),
                ("quotaErrors", quota_errors),
                ("serverErrors", server_errors),
                ("stuckLoadBalancers", stuck_load_balancers),
            ] {
                if let Some(v) = value {
                    faults[key] = json!(v);
                }
            }
            let changed = clear
                || [
                    api_errors,
                    timeouts,
                    quota_errors,
                    server_errors,
                    stuck_load_balancers,
                ]
                .iter()
                .any(Option::is_some);
            let now = if changed {
                client
                    .request(Method::PUT, "/v1/sim/faults", Some(&faults))
                    .await?
                    .unwrap_or_default()
            } else {
                faults
            };
            print_value(&now, Format::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Node {
            name,
            ready,
            drain_blocked,
        }) => {
            let body = json!({"ready": ready, "drainBlocked": drain_blocked});
            client()?
                .request(Method::PUT, &format!("/v1/sim/nodes/{name}"), Some(&body))
                .await?;
            println!("node/{name} changed in the simulated cloud");
            Ok(ExitCode::SUCCESS)
        }
        Command::Stack(StackCommand::List { output }) => {
            let list = client()?.get("/v1/stacks").await?;
            if output != Format::Table {
                print_value(&list, output)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&list)
                .iter()
                .map(|s| {
                    let policy = &s["status"]["policy"];
                    let verdict = if policy["compliant"] == true {
                        "ok".to_owned()
                    } else {
                        policy["findings"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|f| f["message"].as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    // As kubectl marks the default StorageClass.
                    let mut name = s["metadata"]["name"].as_str().unwrap_or("").to_owned();
                    if s["status"]["default"] == true {
                        name.push_str(" (default)");
                    }
                    vec![
                        name,
                        s["spec"]["version"].as_str().unwrap_or("").to_owned(),
                        s["spec"]["kubernetesVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        s["spec"]["nodeImage"]["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        s["spec"]["upgradesFrom"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        verdict,
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "NAME",
                        "VERSION",
                        "KUBERNETES",
                        "IMAGE",
                        "UPGRADES-FROM",
                        "SCS-POLICY"
                    ],
                    &rows
                )
            );
            if let Some(first) = items(&list).first() {
                eprintln!("{}", release_data_line(&first["status"]["policy"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Flavor(FlavorCommand::List { output }) => {
            let list = client()?.get("/v1/flavors").await?;
            print_list(&list, output, &["NAME", "VCPUS", "RAM", "DISK"], |f| {
                let number = |v: &Value| v.as_u64().unwrap_or(0);
                vec![
                    f["name"].as_str().unwrap_or("").to_owned(),
                    number(&f["vcpus"]).to_string(),
                    format!("{}Mi", number(&f["ramMiB"])),
                    match number(&f["diskGiB"]) {
                        0 => "volume".to_owned(),
                        disk => format!("{disk}Gi"),
                    },
                ]
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stack(StackCommand::Render {
            stack,
            cluster,
            addons,
            acme_email,
        }) => {
            render::render(
                &client()?,
                render::RenderArgs {
                    stack,
                    cluster,
                    addons,
                    acme_email,
                },
            )
            .await
        }
        Command::Stack(StackCommand::Show { name, output }) => {
            let stack = client()?.get(&format!("/v1/stacks/{name}")).await?;
            print_value(
                &stack,
                if output == Format::Table {
                    Format::Yaml
                } else {
                    output
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Serve {
            listen,
            data_dir,
            speed,
            quota,
            faults,
            external_network,
            proxy_listen,
            node_lease,
        }) => {
            init_logging(&cli.conn.log, false);
            crate::sim_serve::run(crate::sim_serve::SimServeConfig {
                listen,
                data_dir,
                speed,
                quotas: quota.unwrap_or_default(),
                faults: faults.unwrap_or_default(),
                external_network,
                proxy_listen,
                node_lease: std::time::Duration::from_secs(node_lease),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(SimCommand::Inventory { output }) => {
            let inv = client()?.get("/v1/sim/inventory").await?;
            if output != Format::Table {
                print_value(&inv, output)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&inv)
                .iter()
                .map(|r| {
                    vec![
                        r["kind"].as_str().unwrap_or("").to_owned(),
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["status"].as_str().unwrap_or("").to_owned(),
                        r["address"].as_str().unwrap_or("-").to_owned(),
                        r["id"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["KIND", "NAME", "STATUS", "ADDRESS", "ID"], &rows)
            );
            eprintln!("{} resources in the simulated cloud", rows.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where the release data behind a policy verdict comes from and how old it was then.
fn release_data_line(policy: &Value) -> String {
    let data = &policy["releaseData"];
    let date = |v: &Value| v.as_str().and_then(|s| s.parse::<chrono::NaiveDate>().ok());
    match (data["source"].as_str(), date(&data["takenOn"])) {
        (Some(source), Some(taken_on)) => {
            let age = date(&policy["checkedOn"])
                .map(|checked| format!(" ({} days old)", (checked - taken_on).num_days()))
                .unwrap_or_default();
            format!("Kubernetes release data taken on {taken_on}{age} from {source}")
        }
        _ => "Kubernetes release data: the server's data says neither where nor when it was taken"
            .to_owned(),
    }
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Reads the cluster, changes its spec, and writes it back with its resourceVersion;
/// reads again and retries when someone else (the controller's status) came between.
async fn change_spec(
    client: &Client,
    name: &str,
    change: impl Fn(&mut Value) -> Result<()>,
) -> Result<Value> {
    let mut attempt = 0;
    loop {
        let mut cluster = client.get(&format!("/v1/clusters/{name}")).await?;
        change(&mut cluster["spec"])?;
        match client
            .request(Method::PUT, &format!("/v1/clusters/{name}"), Some(&cluster))
            .await
        {
            Ok(updated) => return Ok(updated.unwrap_or_default()),
            Err(e) if client::is_status(&e, reqwest::StatusCode::CONFLICT) && attempt < 10 => {
                let being_deleted = e.to_string().contains("being deleted");
                if being_deleted {
                    return Err(e);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `--addons ingress,gateway,cert-manager,registry --acme-email ADDR` into the spec.
fn apply_addon_flags(spec: &mut Value, addons: &[String], acme_email: Option<&str>) -> Result<()> {
    for addon in addons.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        match addon {
            "ingress" => spec["addons"]["ingress"] = json!({"proxyProtocol": true}),
            "gateway" => spec["addons"]["gateway"] = json!({"proxyProtocol": true}),
            "cert-manager" => {
                let Some(email) = acme_email else {
                    bail!(
                        "--addons cert-manager needs --acme-email ADDRESS (Let's Encrypt writes there about expiring certificates)"
                    );
                };
                spec["addons"]["certManager"] = json!({"acmeEmail": email});
            }
            "registry" => spec["addons"]["registry"] = json!(true),
            "metrics-server" => spec["addons"]["metricsServer"] = json!(true),
            other => bail!(
                "--addons: unknown addon {other:?}; choose from ingress, gateway, cert-manager, registry, metrics-server"
            ),
        }
    }
    if acme_email.is_some() && !addons.iter().any(|a| a.trim() == "cert-manager") {
        bail!("--acme-email is only used with --addons cert-manager");
    }
    Ok(())
}

/// Reads a Cluster from YAML or JSON.
pub fn read_cluster_file(path: &Path) -> Result<Value> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let v: Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is neither JSON nor YAML", path.display()))?;
    Ok(v)
}

async fn cluster(client: &Client, cmd: ClusterCommand) -> Result<ExitCode> {
    match cmd {
        ClusterCommand::Create {
            name,
            control_plane,
            workers,
            control_plane_flavor,
            worker_flavor,
            stack,
            addons,
            acme_email,
            file,
            wait,
        } => {
            let mut body = match &file {
                Some(path) => read_cluster_file(path)?,
                None => {
                    json!({"apiVersion": kaas_core::meta::API_VERSION, "kind": "Cluster", "metadata": {}, "spec": {}})
                }
            };
            if !body.is_object() {
                bail!("the file must hold a Cluster object");
            }
            if let Some(name) = &name {
                body["metadata"]["name"] = json!(name);
            }
            let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
                bail!("give the cluster a name: kaas cluster create NAME");
            };
            if let Some(n) = control_plane {
                body["spec"]["controlPlane"]["replicas"] = json!(n);
            }
            if let Some(flavor) = control_plane_flavor {
                body["spec"]["controlPlane"]["flavor"] = json!(flavor);
            }
            if workers.is_some() || worker_flavor.is_some() {
                let spec = &mut body["spec"];
                if spec["nodePools"].as_array().is_none_or(Vec::is_empty) {
                    // The server's default pool.
                    spec["nodePools"] =
                        serde_json::to_value(kaas_core::ClusterSpec::default().node_pools)?;
                }
                let pool = &mut spec["nodePools"][0];
                if let Some(n) = workers {
                    pool["replicas"] = json!(n);
                }
                if let Some(flavor) = worker_flavor {
                    pool["flavor"] = json!(flavor);
                }
            }
            if let Some(s) = stack {
                body["spec"]["stack"] = json!(s);
            }
            apply_addon_flags(&mut body["spec"], &addons, acme_email.as_deref())?;
            client
                .request(Method::POST, "/v1/clusters", Some(&body))
                .await?;
            println!("cluster/{name} created");
            if wait.wait {
                return wait::until_available(client, &name, wait.timeout).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::List {
            output,
            all_tenants,
            selector,
            phase,
            paging,
        } => {
            let mut params = Vec::new();
            if all_tenants {
                params.push(("allTenants", "true".to_owned()));
            }
            if let Some(selector) = selector {
                params.push(("labelSelector", selector));
            }
            if let Some(phase) = phase {
                params.push(("phase", phase));
            }
            let list = client.get_all("/v1/clusters", &params, paging.chunk_size);
            let list = if all_tenants {
                list.await.context("--all-tenants")?
            } else {
                list.await?
            };
            if output != Format::Table {
                print_value(&list, output)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = items(&list)
                .iter()
                .map(|c| {
                    let mut row = cluster_row(c);
                    if all_tenants {
                        let tenant = c["metadata"]["tenant"].as_str().unwrap_or("-");
                        row.insert(0, tenant.to_owned());
                    }
                    row
                })
                .collect();
            let headers: Vec<&str> = all_tenants
                .then_some("TENANT")
                .into_iter()
                .chain(CLUSTER_HEADERS)
                .collect();
            match (rows.is_empty(), all_tenants) {
                (true, false) => eprintln!("No clusters."),
                (true, true) => eprintln!("No clusters in any tenant."),
                (false, _) => print!("{}", table(&headers, &rows)),
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Get { name, output } => {
            let c = client.get(&format!("/v1/clusters/{name}")).await?;
            if output != Format::Table {
                print_value(&c, output)?;
                return Ok(ExitCode::SUCCESS);
            }
            print!("{}", table(&CLUSTER_HEADERS, &[cluster_row(&c)]));
            let conds: Vec<Vec<String>> = c["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    vec![
                        k["type"].as_str().unwrap_or("").to_owned(),
                        k["status"].as_str().unwrap_or("").to_owned(),
                        k["reason"].as_str().unwrap_or("").to_owned(),
                        k["message"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            if !conds.is_empty() {
                println!();
                print!(
                    "{}",
                    table(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &conds)
                );
            }
            let mut parts: Vec<Vec<String>> = Vec::new();
            let status = &c["status"];
            let count = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0).to_string();
            let cp = &status["controlPlane"];
            parts.push(vec![
                "control-plane".to_owned(),
                c["spec"]["controlPlane"]["replicas"]
                    .as_u64()
                    .unwrap_or(0)
                    .to_string(),
                count(cp, "replicas"),
                count(cp, "readyReplicas"),
                count(cp, "updatedReplicas"),
                count(cp, "availableReplicas"),
            ]);
            for spec in c["spec"]["nodePools"].as_array().into_iter().flatten() {
                let st = status["nodePools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|st| st["name"] == spec["name"])
                    .unwrap_or(&Value::Null);
                parts.push(vec![
                    spec["name"].as_str().unwrap_or("").to_owned(),
                    spec["replicas"].as_u64().unwrap_or(0).to_string(),
                    count(st, "replicas"),
                    count(st, "readyReplicas"),
                    count(st, "updatedReplicas"),
                    count(st, "availableReplicas"),
                ]);
            }
            println!();
            print!(
                "{}",
                table(
                    &[
                        "POOL",
                        "DESIRED",
                        "MACHINES",
                        "READY",
                        "UPDATED",
                        "AVAILABLE"
                    ],
                    &parts
                )
            );
            let addons: Vec<Vec<String>> = status["addons"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    vec![
                        a["name"].as_str().unwrap_or("").to_owned(),
                        a["version"].as_str().unwrap_or("").to_owned(),
                        if a["ready"] == true { "yes" } else { "no" }.to_owned(),
                        a["message"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            if !addons.is_empty() {
                println!();
                print!(
                    "{}",
                    table(&["ADDON", "VERSION", "READY", "MESSAGE"], &addons)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Delete { name, wait } => {
            let from = if wait.wait {
                wait::latest_seq(client, &name).await?
            } else {
                0
            };
            client
                .request(Method::DELETE, &format!("/v1/clusters/{name}"), None)
                .await?;
            println!("cluster/{name} deletion requested");
            if wait.wait {
                return wait::until_gone(client, &name, from, wait.timeout).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Scale {
            name,
            pool,
            replicas,
            control_plane,
            wait,
        } => {
            let from = if wait.wait {
                wait::latest_seq(client, &name).await?
            } else {
                0
            };
            let what = match (&pool, replicas, control_plane) {
                (_, _, Some(n)) => format!("control plane to {n}"),
                (Some(p), Some(n), None) => format!("pool {p} to {n}"),
                _ => bail!("give --pool P --replicas N, or --control-plane N"),
            };
            change_spec(client, &name, |spec| {
                if let Some(n) = control_plane {
                    spec["controlPlane"]["replicas"] = json!(n);
                    return Ok(());
                }
                let (Some(pool), Some(n)) = (&pool, replicas) else { return Ok(()) };
                let pools = spec["nodePools"].as_array_mut().context("the cluster has no node pools")?;
                let Some(p) = pools.iter_mut().find(|p| p["name"] == pool.as_str()) else {
                    let names: Vec<&str> = pools.iter().filter_map(|p| p["name"].as_str()).collect();
                    bail!("cluster {name} has no node pool {pool:?} (pools: {}); add pools with kaas apply -f", names.join(", "));
                };
                p["replicas"] = json!(n);
                Ok(())
            })
            .await?;
            println!("cluster/{name} scaled: {what}");
            if wait.wait {
                return wait::until_available_from(client, &name, from, wait.timeout).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Upgrade { name, stack, wait } => {
            let from = if wait.wait {
                wait::latest_seq(client, &name).await?
            } else {
                0
            };
            change_spec(client, &name, |spec| {
                spec["stack"] = json!(stack);
                Ok(())
            })
            .await?;
            println!("cluster/{name} upgrading to stack {stack}");
            if wait.wait {
                return wait::until_available_from(client, &name, from, wait.timeout).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Watch { name } => wait::watch(client, &name).await,
        ClusterCommand::Kubeconfig { name, ttl, merge } => {
            let bytes = client
                .get_bytes(&format!("/v1/clusters/{name}/kubeconfig?ttl={ttl}"))
                .await?;
            let text = String::from_utf8(bytes).context("the kubeconfig is not UTF-8")?;
            if merge {
                let path = kubeconfig::merge(&text)?;
                println!(
                    "merged cluster {name} into {} (context kaas-{name})",
                    path.display()
                );
            } else {
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Events { name } => {
            let mut all = Vec::new();
            let mut since = 0;
            loop {
                let page = client
                    .get(&format!(
                        "/v1/clusters/{name}/events?since={since}&limit=1000"
                    ))
                    .await?;
                let page = items(&page);
                let Some(last) = page.last().and_then(|e| e["seq"].as_i64()) else {
                    break;
                };
                let full = page.len() == 1000;
                all.extend(page);
                if !full {
                    break;
                }
                since = last;
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|e| {
                    vec![
                        e["time"].as_str().map(wait::clock).unwrap_or_default(),
                        e["type"].as_str().unwrap_or("").to_owned(),
                        e["reason"].as_str().unwrap_or("").to_owned(),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            print!("{}", table(&["TIME", "TYPE", "REASON", "MESSAGE"], &rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--cluster-proxy`: an `http://HOST:PORT` URL.
fn parse_cluster_proxy(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("http://").ok_or_else(|| {
        format!("{text:?} is not http://HOST:PORT (only HTTP proxies are supported)")
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !authority.contains('/') && port.parse::<u16>().is_ok() =>
        {
            Ok(format!("http://{authority}"))
        }
        _ => Err(format!("{text:?} is not http://HOST:PORT")),
    }
}

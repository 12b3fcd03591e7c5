use std::path::PathBuf;

use kaas_cloud::ResourceKind;
use serde::{Deserialize, Serialize};

/// How the simulated cloud behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimConfig {
    /// Time-scale factor: `1.0` is realistic, `200.0` makes everything 200 times faster.
    pub speed: f64,
    /// Where the simulated cloud keeps its resources, so that they outlive the process
    /// (as a real cloud outlives its clients). `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
    pub quotas: Quotas,
    pub latencies: Latencies,
    /// Seed for ids, latencies and faults; `None` draws one from the operating system.
    pub seed: Option<u64>,
    /// The fault rates the cloud starts with ([`crate::SimCloud::set_faults`] changes
    /// them at run time).
    pub faults: SimFaults,
    /// The region the cloud reports, as the cloud controller manager labels nodes with
    /// it (`topology.kubernetes.io/region`).
    pub region: String,
}

/// The region of a simulated cloud unless configured otherwise.
pub const DEFAULT_REGION: &str = "sim-1";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            speed: 1.0,
            state_file: None,
            quotas: Quotas::default(),
            latencies: Latencies::default(),
            seed: None,
            faults: SimFaults::default(),
            region: DEFAULT_REGION.to_owned(),
        }
    }
}

impl SimConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(SimError::InvalidConfig(format!(
                "speed must be a positive number, not {}",
                self.speed
            )));
        }
        for (name, range) in self.latencies.named() {
            let valid = range.min_secs.is_finite()
                && range.max_secs.is_finite()
                && range.min_secs >= 0.0
                && range.min_secs <= range.max_secs;
            if !valid {
                return Err(SimError::InvalidConfig(format!(
                    "latency {name} must satisfy 0 <= minSecs <= maxSecs, not {}..{}",
                    range.min_secs, range.max_secs
                )));
            }
        }
        self.faults
            .validate()
            .map_err(|e| SimError::InvalidConfig(format!("faults: {e}")))
    }
}

/// Fault injection: the probability (`0.0..=1.0`) of each kind of trouble, per call or
/// per resource created. All zero (the default) is a well-behaved cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SimFaults {
    /// A cloud call fails with a 503 before doing anything.
    pub api_errors: f64,
    /// A cloud call times out: the caller waits a little, then gets an error; a create,
    /// delete or member update was carried out all the same (only the answer was lost).
    pub timeouts: f64,
    /// A create fails with a quota error although the quota is not used up.
    pub quota_errors: f64,
    /// A new server ends in `ERROR` ("No valid host was found") instead of `ACTIVE`.
    pub server_errors: f64,
    /// A new load balancer stays `PENDING_CREATE` until this rate is set back to zero.
    pub stuck_load_balancers: f64,
}

impl SimFaults {
    /// Each rate must be a probability; the error names the first field that is not.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in self.named() {
            if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
                return Err(format!(
                    "{name} must be a probability between 0.0 and 1.0, not {rate}"
                ));
            }
        }
        Ok(())
    }

    fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("apiErrors", self.api_errors),
            ("timeouts", self.timeouts),
            ("quotaErrors", self.quota_errors),
            ("serverErrors", self.server_errors),
            ("stuckLoadBalancers", self.stuck_load_balancers),
        ]
    }
}

/// How many resources of each kind the simulated project may hold. Resources being
/// deleted still count, as in OpenStack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quotas {
    pub network: u32,
    pub subnet: u32,
    pub router: u32,
    pub security_group: u32,
    pub server_group: u32,
    pub port: u32,
    pub load_balancer: u32,
    pub floating_ip: u32,
    pub server: u32,
    pub application_credential: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            network: 100,
            subnet: 100,
            router: 50,
            security_group: 100,
            server_group: 100,
            port: 1000,
            load_balancer: 50,
            floating_ip: 50,
            server: 500,
            application_credential: 100,
        }
    }
}

impl Quotas {
    /// The limit for `kind`.
    pub fn limit(&self, kind: ResourceKind) -> u32 {
        match kind {
            ResourceKind::Network => self.network,
            ResourceKind::Subnet => self.subnet,
            ResourceKind::Router => self.router,
            ResourceKind::SecurityGroup => self.security_group,
            ResourceKind::ServerGroup => self.server_group,
            ResourceKind::Port => self.port,
            ResourceKind::LoadBalancer => self.load_balancer,
            ResourceKind::FloatingIp => self.floating_ip,
            ResourceKind::Server => self.server,
            ResourceKind::ApplicationCredential => self.application_credential,
        }
    }
}

/// A latency drawn uniformly from `min_secs..=max_secs`, in seconds at speed 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyRange {
    pub min_secs: f64,
    pub max_secs: f64,
}

impl LatencyRange {
    pub const fn new(min_secs: f64, max_secs: f64) -> Self {
        Self { min_secs, max_secs }
    }

    /// Always exactly `secs`.
    pub const fn fixed(secs: f64) -> Self {
        Self::new(secs, secs)
    }
}

/// How long things take in the simulated cloud, in seconds at speed 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Latencies {
    pub network: LatencyRange,
    pub subnet: LatencyRange,
    pub router: LatencyRange,
    pub security_group: LatencyRange,
    pub server_group: LatencyRange,
    pub port: LatencyRange,
    pub load_balancer: LatencyRange,
    pub floating_ip: LatencyRange,
    pub application_credential: LatencyRange,
    /// From create until the server is `ACTIVE`.
    pub server_boot: LatencyRange,
    /// How long a server stays `DELETING`.
    pub server_delete: LatencyRange,
    /// How long a load balancer stays `PENDING_DELETE`.
    pub load_balancer_delete: LatencyRange,
    /// From the `init` server being `ACTIVE` until the cluster's API answers.
    pub kubeadm_init: LatencyRange,
    /// From a server being `ACTIVE` (and the API answering) until its node is `Ready`.
    pub node_join: LatencyRange,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            network: LatencyRange::new(0.2, 1.0),
            subnet: LatencyRange::new(0.2, 1.0),
            router: LatencyRange::new(1.0, 3.0),
            security_group: LatencyRange::new(0.2, 1.0),
            server_group: LatencyRange::new(0.2, 1.0),
            port: LatencyRange::new(0.2, 1.0),
            load_balancer: LatencyRange::new(60.0, 120.0),
            floating_ip: LatencyRange::new(1.0, 3.0),
            application_credential: LatencyRange::new(0.1, 0.5),
            server_boot: LatencyRange::new(30.0, 90.0),
            server_delete: LatencyRange::new(2.0, 5.0),
            load_balancer_delete: LatencyRange::new(5.0, 15.0),
            kubeadm_init: LatencyRange::new(50.0, 70.0),
            node_join: LatencyRange::new(25.0, 35.0),
        }
    }
}

impl Latencies {
    /// Everything happens at once: resources are `Active` when created and gone when
    /// deleted. Handy in tests that do not care about time.
    pub const fn instant() -> Self {
        let zero = LatencyRange::fixed(0.0);
        Self {
            network: zero,
            subnet: zero,
            router: zero,
            security_group: zero,
            server_group: zero,
            port: zero,
            load_balancer: zero,
            floating_ip: zero,
            application_credential: zero,
            server_boot: zero,
            server_delete: zero,
            load_balancer_delete: zero,
            kubeadm_init: zero,
            node_join: zero,
        }
    }

    /// How long creating a resource of `kind` takes.
    pub fn create(&self, kind: ResourceKind) -> LatencyRange {
        match kind {
            ResourceKind::Network => self.network,
            ResourceKind::Subnet => self.subnet,
            ResourceKind::Router => self.router,
            ResourceKind::SecurityGroup => self.security_group,
            ResourceKind::ServerGroup => self.server_group,
            ResourceKind::Port => self.port,
            ResourceKind::LoadBalancer => self.load_balancer,
            ResourceKind::FloatingIp => self.floating_ip,
            ResourceKind::Server => self.server_boot,
            ResourceKind::ApplicationCredential => self.application_credential,
        }
    }

    fn named(&self) -> [(&'static str, LatencyRange); 14] {
        [
            ("network", self.network),
            ("subnet", self.subnet),
            ("router", self.router),
            ("securityGroup", self.security_group),
            ("serverGroup", self.server_group),
            ("port", self.port),
            ("loadBalancer", self.load_balancer),
            ("floatingIp", self.floating_ip),
            ("applicationCredential", self.application_credential),
            ("serverBoot", self.server_boot),
            ("serverDelete", self.server_delete),
            ("loadBalancerDelete", self.load_balancer_delete),
            ("kubeadmInit", self.kubeadm_init),
            ("nodeJoin", self.node_join),
        ]
    }
}

/// Why the simulated cloud could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation config: {0}")]
    InvalidConfig(String),
    #[error("simulation state file {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulation state file {} is not valid: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
}

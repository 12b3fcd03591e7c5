//! Why a step failed: one variant per failed operation, each keeping its source (the
//! cloud's, the workload cluster's or the store's own error), and each with a
//! [`Category`] that becomes the event's reason, the condition's reason and a label of
//! the step-failure metric.

use std::fmt;

use kaas_bootstrap::BootstrapError;
use kaas_cloud::{CloudError, ResourceKind, WorkloadError};
use kaas_store::StoreError;

use super::plan::Stage;
use super::status::StepFailure;

/// What kind of trouble a failed step met: a small closed set, so that an event's
/// reason and a metric label say the same and a dashboard can group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The cloud refused for want of quota.
    CloudQuota,
    /// The cloud's state is not what the plan assumed (a conflict, a resource gone):
    /// the next observation sees it.
    CloudConflict,
    /// The cloud did not answer, or answered with a 5xx or a timeout.
    CloudUnavailable,
    /// The request cannot succeed as sent: the cloud refused it as invalid, or the
    /// workload cluster cannot do it (as kaas reaches it).
    Invalid,
    /// The workload cluster's API does not answer (or has no endpoint yet).
    WorkloadUnreachable,
    /// The workload cluster's API answered with an error.
    WorkloadApi,
    /// What a machine boots with, or kaas' credentials for the cluster, could not be
    /// generated, rendered or read back.
    Bootstrap,
    /// The store failed.
    Internal,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::CloudQuota,
        Category::CloudConflict,
        Category::CloudUnavailable,
        Category::Invalid,
        Category::WorkloadUnreachable,
        Category::WorkloadApi,
        Category::Bootstrap,
        Category::Internal,
    ];

    /// The CamelCase reason of events and conditions, and the metric label. Where a
    /// reason was already shown to users (`QuotaExceeded`, `CloudUnavailable`,
    /// `BootstrapFailed`), it is kept.
    pub fn reason(self) -> &'static str {
        match self {
            Category::CloudQuota => "QuotaExceeded",
            Category::CloudConflict => "CloudConflict",
            Category::CloudUnavailable => "CloudUnavailable",
            Category::Invalid => "Invalid",
            Category::WorkloadUnreachable => "WorkloadUnreachable",
            Category::WorkloadApi => "WorkloadApiError",
            Category::Bootstrap => "BootstrapFailed",
            Category::Internal => "Internal",
        }
    }

    fn of_cloud(e: &CloudError) -> Self {
        match e {
            CloudError::QuotaExceeded { .. } => Category::CloudQuota,
            CloudError::Conflict { .. } | CloudError::NotFound { .. } => Category::CloudConflict,
            CloudError::Unavailable { .. } | CloudError::InProgress { .. } => {
                Category::CloudUnavailable
            }
            CloudError::BadRequest { .. } => Category::Invalid,
        }
    }

    fn of_workload(e: &WorkloadError) -> Self {
        match e {
            WorkloadError::Unreachable { .. } => Category::WorkloadUnreachable,
            WorkloadError::Api { .. } => Category::WorkloadApi,
            WorkloadError::Unsupported { .. } => Category::Invalid,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A step that failed, named after what it tried.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    // The cloud.
    #[error("checking the cloud before building: {source}")]
    Preflight {
        #[source]
        source: CloudError,
    },
    #[error("creating {kind} {name}: {source}")]
    CreateResource {
        kind: ResourceKind,
        name: String,
        #[source]
        source: CloudError,
    },
    #[error("deleting {kind} {name}: {source}")]
    DeleteResource {
        kind: ResourceKind,
        name: String,
        #[source]
        source: CloudError,
    },
    #[error("updating the API load balancer's members: {source}")]
    SetLoadBalancerMembers {
        #[source]
        source: CloudError,
    },

    // The workload cluster.
    #[error("the workload cluster: the cluster has no API endpoint yet")]
    NoApiEndpoint,
    #[error("draining node {node}: {source}")]
    DrainNode {
        node: String,
        #[source]
        source: WorkloadError,
    },
    #[error("removing the etcd member of node {node}: {source}")]
    RemoveEtcdMember {
        node: String,
        #[source]
        source: WorkloadError,
    },
    #[error("deleting node {node}: {source}")]
    DeleteNode {
        node: String,
        #[source]
        source: WorkloadError,
    },
    #[error("registering the bootstrap token of machine {machine}: {source}")]
    RegisterJoinToken {
        machine: String,
        #[source]
        source: WorkloadError,
    },
    #[error("deleting bootstrap token {id}: {source}")]
    DeleteJoinToken {
        id: String,
        #[source]
        source: WorkloadError,
    },
    #[error("writing the registry pull Secrets: {source}")]
    SyncPullSecrets {
        #[source]
        source: WorkloadError,
    },
    #[error("applying the addons of stack {stack}: {source}")]
    ApplyAddons {
        stack: String,
        #[source]
        source: WorkloadError,
    },

    // What machines boot with, and kaas' credentials for the cluster.
    #[error("bootstrap data: generating the cluster's PKI: {source}")]
    GeneratePki {
        #[source]
        source: BootstrapError,
    },
    #[error("bootstrap data: encoding the cluster's PKI: {source}")]
    EncodePki {
        #[source]
        source: serde_json::Error,
    },
    #[error("bootstrap data: the cluster's PKI is not stored yet")]
    PkiNotStored,
    #[error("bootstrap data: the stored PKI: {source}")]
    ReadPki {
        #[source]
        source: serde_json::Error,
    },
    #[error("bootstrap data: issuing kaas' client certificate: {source}")]
    IssueClientCertificate {
        #[source]
        source: BootstrapError,
    },
    #[error("bootstrap data: machine {machine} is gone")]
    MachineGone { machine: String },
    #[error("bootstrap data: rendering the user data of {machine}: {source}")]
    RenderUserData {
        machine: String,
        #[source]
        source: BootstrapError,
    },
    #[error("bootstrap data: stored bootstrap data has no user data")]
    NoStoredUserData,
    #[error("bootstrap data: the bootstrap data of {machine} vanished")]
    BootstrapDataVanished { machine: String },
    #[error("bootstrap data: the stored token of {machine}: {source}")]
    ReadJoinToken {
        machine: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("bootstrap data: secret {name} has no secret")]
    NoCloudCredentialSecret { name: String },
    #[error("bootstrap data: secret {name} vanished")]
    CloudCredentialSecretVanished { name: String },

    // The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StepError {
    pub fn category(&self) -> Category {
        match self {
            StepError::Preflight { source }
            | StepError::CreateResource { source, .. }
            | StepError::DeleteResource { source, .. }
            | StepError::SetLoadBalancerMembers { source } => Category::of_cloud(source),
            StepError::NoApiEndpoint => Category::WorkloadUnreachable,
            StepError::DrainNode { source, .. }
            | StepError::RemoveEtcdMember { source, .. }
            | StepError::DeleteNode { source, .. }
            | StepError::RegisterJoinToken { source, .. }
            | StepError::DeleteJoinToken { source, .. }
            | StepError::ApplyAddons { source, .. }
            | StepError::SyncPullSecrets { source } => Category::of_workload(source),
            StepError::GeneratePki { .. }
            | StepError::EncodePki { .. }
            | StepError::PkiNotStored
            | StepError::ReadPki { .. }
            | StepError::IssueClientCertificate { .. }
            | StepError::MachineGone { .. }
            | StepError::RenderUserData { .. }
            | StepError::NoStoredUserData
            | StepError::BootstrapDataVanished { .. }
            | StepError::ReadJoinToken { .. }
            | StepError::NoCloudCredentialSecret { .. }
            | StepError::CloudCredentialSecretVanished { .. } => Category::Bootstrap,
            StepError::Store(_) => Category::Internal,
        }
    }

    /// The cloud's error, when the cloud refused.
    /// Whether waiting alone will not mend it: the cloud refused for want of quota, or
    /// refused the request as invalid, or the preflight check found no such flavor or
    /// image. Retried only after minutes, or when the spec or the tenant changes.
    pub fn needs_a_change(&self) -> bool {
        matches!(self.category(), Category::CloudQuota | Category::Invalid)
            || matches!(
                self,
                StepError::Preflight {
                    source: CloudError::NotFound { .. }
                }
            )
    }

    pub fn cloud(&self) -> Option<&CloudError> {
        match self {
            StepError::Preflight { source }
            | StepError::CreateResource { source, .. }
            | StepError::DeleteResource { source, .. }
            | StepError::SetLoadBalancerMembers { source } => Some(source),
            _ => None,
        }
    }

    /// Whether the same step may succeed later without any change: the cloud says
    /// so for its own errors; anything else is worth another try.
    pub fn is_retryable(&self) -> bool {
        self.cloud().is_none_or(CloudError::is_retryable)
    }

    /// What a failed step means for the cluster's conditions.
    pub fn failure(&self, stage: Stage) -> StepFailure {
        StepFailure {
            stage,
            reason: self.category().reason().to_owned(),
            message: self.to_string(),
            retryable: self.is_retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_camel_case() {
        let reasons: std::collections::BTreeSet<_> =
            Category::ALL.iter().map(|c| c.reason()).collect();
        assert_eq!(reasons.len(), Category::ALL.len());
        for r in reasons {
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
            assert!(r.starts_with(|c: char| c.is_ascii_uppercase()), "{r}");
        }
    }

    #[test]
    fn cloud_errors_keep_their_words_and_say_whether_to_retry() {
        let e = StepError::CreateResource {
            kind: ResourceKind::Network,
            name: "k-net".to_owned(),
            source: CloudError::QuotaExceeded {
                message: "Quota exceeded for resources: ['network']".to_owned(),
            },
        };
        assert_eq!(e.category(), Category::CloudQuota);
        assert_eq!(e.category().reason(), "QuotaExceeded");
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "creating network k-net: quota exceeded: Quota exceeded for resources: ['network']"
        );
        let failure = e.failure(Stage::Infrastructure);
        assert_eq!(failure.reason, "QuotaExceeded");
        assert!(!failure.retryable);

        let e = StepError::SetLoadBalancerMembers {
            source: CloudError::Unavailable {
                message: "503".to_owned(),
            },
        };
        assert_eq!(e.category(), Category::CloudUnavailable);
        assert!(e.is_retryable());
        let e = StepError::DeleteResource {
            kind: ResourceKind::Port,
            name: "p".to_owned(),
            source: CloudError::BadRequest {
                message: "no".to_owned(),
            },
        };
        assert_eq!(e.category(), Category::Invalid);
        assert!(!e.is_retryable());
    }

    #[test]
    fn workload_and_bootstrap_errors_are_retried() {
        let e = StepError::DrainNode {
            node: "n".to_owned(),
            source: WorkloadError::Unreachable {
                endpoint: "https://203.0.113.1:6443".to_owned(),
                message: "connection refused".to_owned(),
            },
        };
        assert_eq!(e.category(), Category::WorkloadUnreachable);
        assert!(e.is_retryable());
        assert!(std::error::Error::source(&e).is_some());
        let e = StepError::ApplyAddons {
            stack: "s".to_owned(),
            source: WorkloadError::Api {
                message: "admission webhook denied".to_owned(),
            },
        };
        assert_eq!(e.category(), Category::WorkloadApi);
        assert_eq!(
            StepError::NoApiEndpoint.category(),
            Category::WorkloadUnreachable
        );
        assert_eq!(
            StepError::PkiNotStored.category().reason(),
            "BootstrapFailed"
        );
        assert!(StepError::PkiNotStored.is_retryable());
    }
}

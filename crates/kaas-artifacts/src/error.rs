//! What can go wrong getting an artifact: each error names the artifact, where it was
//! tried and why.

/// Why an artifact could not be had from one place (or from any).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The stack's reference itself cannot be used.
    #[error("{artifact}: {reason}")]
    Reference { artifact: String, reason: String },
    #[error("{artifact}: not found at {place}")]
    NotFound { artifact: String, place: String },
    /// The bytes got are not the pinned ones.
    #[error("{artifact}: {place} has digest {actual}, not the pinned {expected}")]
    DigestMismatch {
        artifact: String,
        place: String,
        expected: String,
        actual: String,
    },
    #[error("{artifact}: {place} answered HTTP {status}{}", detail(.message))]
    Status {
        artifact: String,
        place: String,
        status: u16,
        message: String,
    },
    #[error("{artifact}: {place} is larger than the limit of {limit} bytes")]
    TooLarge {
        artifact: String,
        place: String,
        limit: u64,
    },
    #[error("{artifact}: cannot reach {place}: {reason}")]
    Unreachable {
        artifact: String,
        place: String,
        reason: String,
    },
    /// An answer that is not what the protocol says (a manifest without a chart layer,
    /// an index without the version, a chart without Chart.yaml).
    #[error("{artifact}: {place}: {reason}")]
    Invalid {
        artifact: String,
        place: String,
        reason: String,
    },
    /// Every place tried failed: mirrors first, then upstream, in that order.
    #[error("{artifact}: no source had it:{}", list(.attempts))]
    AllFailed {
        artifact: String,
        attempts: Vec<ArtifactError>,
    },
}

/// What kind of failure, as the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not reachable, not there, refused by the source: worth trying again later or
    /// through a mirror (502).
    Unavailable,
    /// Got, but not the pinned bytes, or not a valid artifact (422).
    Unacceptable,
}

impl ArtifactError {
    /// Whether the artifact is unavailable or was got but cannot be accepted.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::DigestMismatch { .. } | Self::Invalid { .. } | Self::Reference { .. } => {
                FailureKind::Unacceptable
            }
            Self::AllFailed { attempts, .. }
                if attempts
                    .iter()
                    .any(|a| a.kind() == FailureKind::Unacceptable) =>
            {
                FailureKind::Unacceptable
            }
            _ => FailureKind::Unavailable,
        }
    }

    /// The artifact the error is about.
    pub fn artifact(&self) -> &str {
        match self {
            Self::Reference { artifact, .. }
            | Self::NotFound { artifact, .. }
            | Self::DigestMismatch { artifact, .. }
            | Self::Status { artifact, .. }
            | Self::TooLarge { artifact, .. }
            | Self::Unreachable { artifact, .. }
            | Self::Invalid { artifact, .. }
            | Self::AllFailed { artifact, .. } => artifact,
        }
    }
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn list(attempts: &[ArtifactError]) -> String {
    attempts.iter().map(|a| format!("\n  - {a}")).collect()
}

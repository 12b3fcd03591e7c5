//! The one error type of this crate.
//!
//! Variants are named after the operation that failed. None of them carries secret
//! material: messages name the artifact ("Kubernetes CA key"), never its contents.

/// Why bootstrap material could not be generated or rendered.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The system random number generator failed (key, serial or token generation).
    #[error("failed to draw random bytes for {what}")]
    Random {
        /// What the randomness was for.
        what: &'static str,
    },

    /// rcgen could not generate a key pair.
    #[error("failed to generate the {what} key")]
    GenerateKey {
        /// Which key.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },

    /// A stored private key could not be read back.
    #[error("failed to load the {what} key")]
    LoadKey {
        /// Which key.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },

    /// rcgen could not build or sign a certificate.
    #[error("failed to issue the {what} certificate")]
    IssueCertificate {
        /// Which certificate.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },

    /// An addon could not be rendered from its template.
    #[error("addon {addon}: {reason}")]
    Addon {
        /// Which addon.
        addon: String,
        /// Why; never the rendered values.
        reason: String,
    },

    /// A value bound for an addon manifest is not what its field takes.
    #[error("addon value {field}: {reason}")]
    AddonValue {
        /// The value, and the spec field it comes from.
        field: &'static str,
        /// Why; a secret's value is never quoted.
        reason: String,
    },

    /// A PEM certificate could not be parsed.
    #[error("failed to parse the {what} certificate: {reason}")]
    ParseCertificate {
        /// Which certificate.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },

    /// A CA's stored private key does not belong to its certificate.
    #[error("the {what} key does not match its certificate")]
    CaKeyMismatch {
        /// Which CA.
        what: &'static str,
    },

    /// A validity period could not be represented (out of range, or not after its start).
    #[error("invalid validity for the {what}: {reason}")]
    InvalidValidity {
        /// Which certificate or token.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A CIDR (service or pod network) could not be parsed or has no host addresses.
    #[error("invalid CIDR {cidr:?}: {reason}")]
    InvalidCidr {
        /// The CIDR as given.
        cidr: String,
        /// Why.
        reason: &'static str,
    },

    /// A Kubernetes version string is not of the form `v1.MINOR.PATCH`.
    #[error("invalid Kubernetes version {version:?}: expected v1.MINOR.PATCH")]
    InvalidKubernetesVersion {
        /// The version as given.
        version: String,
    },

    /// A Kubernetes version older than kubeadm's v1beta3 configuration (1.22).
    #[error(
        "Kubernetes {version} is not supported: kubeadm configuration v1beta3 needs v1.22 or newer"
    )]
    UnsupportedKubernetesVersion {
        /// The version as given.
        version: String,
    },

    /// A joining node has no CA certificate hash to discover the cluster with.
    #[error("node {node} joins the cluster but has no CA certificate hash for discovery")]
    MissingCaCertHash {
        /// The node's name.
        node: String,
    },

    /// A control-plane machine was given no PKI to write.
    #[error("control-plane node {node} needs the cluster PKI and an API server certificate")]
    MissingControlPlaneMaterial {
        /// The node's name.
        node: String,
    },

    /// A worker machine was given control-plane material (CA keys must never reach a worker).
    #[error("worker node {node} must not receive the cluster PKI")]
    WorkerWithControlPlaneMaterial {
        /// The node's name.
        node: String,
    },

    /// A document could not be serialized to YAML.
    #[error("failed to render {what} as YAML")]
    RenderYaml {
        /// Which document.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_saphyr::SerializeError,
    },

    /// gzip compression of user data failed.
    #[error("failed to gzip the user data")]
    Compress(#[source] std::io::Error),

    /// User data could not be read back as kaas renders it.
    #[error("cannot read the user data: {reason}")]
    ReadUserData {
        /// Why; never the user data's content.
        reason: String,
    },

    /// The user data does not fit Nova's limit even when gzipped.
    #[error("user data is {bytes} bytes of base64 even when gzipped; Nova accepts at most {limit}")]
    UserDataTooLarge {
        /// Size of the base64 encoding of the gzipped document.
        bytes: usize,
        /// Nova's limit on base64-encoded user data.
        limit: usize,
    },
}

//! Bootstrap material for kaas workload clusters.
//!
//! Per cluster: the Kubernetes, etcd and front-proxy CAs and the service-account key
//! pair ([`pki`]), short-lived admin client certificates and their kubeconfigs
//! ([`kubeconfig`]). Per machine: a bootstrap token ([`token`]), the kubeadm
//! configuration with the SCS hardening settings ([`kubeadm`]) and the cloud-init user
//! data that carries it all and fits Nova's limit ([`cloudinit`]). Per cluster again:
//! its addons rendered from their templates into Kubernetes objects ([`addons`]).
//!
//! **Architecture invariant:** this crate does no I/O. It renders documents and
//! generates keys (drawing on the system random number generator); storing, encrypting
//! and shipping them is someone else's job.
//!
//! **Architecture invariant:** secret material never appears in a `Debug` output or an
//! error message, and a worker's user data never contains a private key.

pub mod addons;
pub mod boot;
pub mod cloudinit;
mod error;
pub mod kubeadm;
pub mod kubeconfig;
pub mod pki;
pub mod registry;
pub mod token;
pub mod upstream;

pub use addons::{AddonValues, CloudValues, RenderedAddon, object_ref};
pub use boot::{BootedCluster, BootedMachine, read_user_data};
pub use cloudinit::{
    ControlPlaneMaterial, MachineBootstrap, NOVA_USER_DATA_LIMIT, UserData, render_user_data,
};
pub use error::BootstrapError;
pub use kubeadm::{
    ApiServerFile, KubeadmApiVersion, KubernetesVersion, NodeBootstrap, NodeRole, api_server_files,
    render_kubeadm_config,
};
pub use kubeconfig::render_admin_kubeconfig;
pub use pki::{
    ApiServerSans, CertAndKey, ClusterPki, KeyPairPem, ca_cert_hash, issue_admin_client_cert,
    issue_apiserver_cert, issue_etcd_client_cert, issue_etcd_server_cert,
    issue_kubelet_client_cert,
};
pub use token::BootstrapToken;
pub use upstream::{UpstreamArtifact, release_namespace, render_upstream_addon};

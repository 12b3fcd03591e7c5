//! A small OpenStack client that speaks plain REST to Keystone v3, Nova, Neutron,
//! Octavia and Glance (and any other service in the catalog), and the OpenStack
//! implementation of kaas' cloud provider on top of it.
//!
//! - [`config`]: where credentials come from — a cloud in `clouds.yaml` (with
//!   `secure.yaml`) or the `OS_*` variables, read as the `openstack` CLI reads them.
//! - [`session`]: an authenticated Keystone session — token renewal, endpoint choice
//!   from the catalog, requests with microversions, bounded retries that never repeat
//!   a create that may have happened, pagination, and a count of every call.
//! - [`error`]: a failed call with the service's own message, whatever body shape the
//!   service uses, and its mapping onto [`kaas_cloud::CloudError`].
//! - [`provider`]: the [`kaas_cloud::CloudProvider`] of OpenStack — networks, ports,
//!   routers, security groups and floating IPs on Neutron, the API load balancer on
//!   Octavia, servers and server groups on Nova, application credentials on Keystone.
//!
//! **Invariant:** passwords, secrets and tokens never appear in `Debug` output, logs or
//! errors; request bodies are never logged.

// `OsError` carries what was called and the service's message as plain strings (about
// 130 bytes): next to an HTTP round trip, moving it costs nothing worth a `Box`.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod error;
pub mod provider;
pub mod session;

#[cfg(test)]
mod scripted;

pub use config::{Auth, CloudConfig, ConfigError, Scope, Secret};
pub use error::OsError;
pub use provider::OpenStackCloud;
pub use session::{CatalogEndpoint, CatalogService, Request, Response, Session};

//! The client kaas talks to each workload cluster's Kubernetes API with, on kube-rs.
//!
//! A [`WorkloadClient`] is built from a [`ClusterAccess`] (the API server's URL, the
//! cluster CA, which is the only CA trusted, and the client certificate kaas presents)
//! and does four things:
//!
//! - [`WorkloadClient::nodes`]: the nodes as [`kaas_cloud::Node`]s (Ready and since when,
//!   provider id, kubelet version, cordoned, labels).
//! - [`WorkloadClient::drain`]: cordon a node and evict its pods through the eviction API
//!   (so PodDisruptionBudgets hold), as `kubectl drain --ignore-daemonsets
//!   --delete-emptydir-data` does, one quick step per call: it reports
//!   [`kaas_cloud::DrainProgress`] and never waits.
//! - [`WorkloadClient::apply`]: server-side apply (field manager `kaas`) of a set of
//!   manifests of any kind, custom resources included, then pruning of what the set no
//!   longer holds.
//! - [`WorkloadClient::readiness`]: whether applied objects are ready (Deployments,
//!   DaemonSets and StatefulSets rolled out, CRDs established, anything else present).
//!
//! - [`WorkloadClient::etcd_members`] and [`WorkloadClient::remove_etcd_member`]: the
//!   cluster's etcd over its v3 gRPC API (etcd-client), through the API server's
//!   port-forward to a control-plane node's etcd pod, with a client certificate from
//!   the etcd CA; a removal is refused while etcd raises an alarm or would lose quorum.
//!
//! Failures are [`kaas_cloud::WorkloadError`]s: `Unreachable` for connection, TLS and
//! timeout failures ([`REQUEST_TIMEOUT`] each for connecting, sending and waiting for the
//! answer) and for `502`/`503`/`504` answers; `Api` with the API server's own `Status`
//! message for other answers, and for requests that cannot be made (an unusable
//! certificate, a manifest without a name).
//!
//! # Pruning: ApplySets
//!
//! An apply set is recorded in the cluster, the way KEP-3659 specifies and
//! `kubectl apply --prune --applyset` does, not in kaas's database:
//!
//! - The **parent** is a ConfigMap named after the set in `kube-system`, labelled
//!   `applyset.kubernetes.io/id: applyset-<base64url(sha256("<name>.kube-system.ConfigMap."))>-v1`
//!   ([`applyset_id`]) and annotated `applyset.kubernetes.io/tooling: kaas/v1`,
//!   `applyset.kubernetes.io/contains-group-kinds` (the members' `Kind.group`s, sorted)
//!   and, when members are in namespaces other than `kube-system`,
//!   `applyset.kubernetes.io/additional-namespaces`.
//! - Every **member** is labelled `applyset.kubernetes.io/part-of: <id>`.
//! - An apply (1) widens the parent's group-kinds to the old and the new ones, (2) applies
//!   the objects, (3) lists, for each of those group-kinds, the objects labelled as
//!   members (in all namespaces) and deletes those not applied now (background
//!   propagation; CRDs last; group-kinds no longer served are skipped), (4) narrows the
//!   parent to the new group-kinds. Each step may be interrupted and redone: the next
//!   apply still finds every member.
//!
//! A ConfigMap of the set's name that is not a parent, or a parent of another tool, is
//! refused.
//!
//! # What it does not do
//!
//! No watches, no caching between calls (each call runs the discovery it needs), no
//! retries and no waiting loops except the bounded wait for freshly applied CRDs to be
//! served ([`CRD_WAIT`]); the controllers call again. No client-side validation or
//! defaulting of manifests; no owner-reference checks on pruned objects; no
//! authentication but client certificates; HTTP proxies (CONNECT) only, given per
//! cluster, never from the environment. Drains evict pods without a
//! controller too (the eviction API still guards them) and do not wait for graceful
//! termination: pods being deleted count as left.
//!
//! **Architecture invariant:** the only crate of kaas that speaks Kubernetes HTTP to
//! workload clusters; its types at the boundary are kaas's (`kaas_cloud`), JSON
//! manifests and [`ObjectRef`], never kube's or k8s-openapi's.

mod apply;
mod applyset;
mod bootstrap_tokens;
mod client;
mod discovery;
mod drain;
mod error;
mod etcd;
mod nodes;
mod object_ref;
mod proxy;
mod pull_secrets;
mod readiness;

pub use apply::{ApplyReport, CRD_WAIT, FIELD_MANAGER};
pub use applyset::{
    ADDITIONAL_NAMESPACES_ANNOTATION, CONTAINS_GROUP_KINDS_ANNOTATION, ID_LABEL, PARENT_NAMESPACE,
    PART_OF_LABEL, TOOLING, TOOLING_ANNOTATION, applyset_id,
};
pub use bootstrap_tokens::{MACHINE_LABEL, token_secret};
pub use client::{ClusterAccess, REQUEST_TIMEOUT, WorkloadClient};
pub use etcd::{ETCD_CLIENT_PORT, ETCD_TIMEOUT, EtcdAccess, EtcdMember, etcd_pod};
pub use object_ref::ObjectRef;
pub use readiness::ObjectReadiness;

//! Simulated Kubernetes API servers that speak real Kubernetes HTTP, so that real
//! clients (kubectl, kube-rs) can run against a simulated workload cluster.
//!
//! An [`ApiServer`] holds the objects of one cluster in memory; [`router`] serves them as
//! the Kubernetes API does; [`serve_tls`] serves that router over TLS and accepts only
//! clients with a certificate from the cluster's client CA, like a real API server. The
//! machines of the cluster are fed in from outside ([`ApiServer::set_nodes`]), and
//! simulated controllers ([`ApiServer::tick`], or [`ApiServer::spawn_controllers`])
//! make Deployments, ReplicaSets and DaemonSets run pods on them.
//!
//! ```no_run
//! # async fn run(cert: &str, key: &str, client_ca: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kaas_kube_sim::{ApiServer, NodeSpec, router, serve_tls};
//!
//! let api = Arc::new(ApiServer::with_version("v1.33.4"));
//! api.set_nodes(&[NodeSpec {
//!     name: "worker-0".into(),
//!     provider_id: "openstack:///4c1e…".into(),
//!     ready: true,
//!     kubelet_version: "v1.33.4".into(),
//!     ..NodeSpec::default()
//! }]);
//! let _controllers = api.spawn_controllers(std::time::Duration::from_secs(1));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6443").await?;
//! serve_tls(listener, router(api), cert, key, client_ca, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! # What is implemented
//!
//! - **Discovery** (the unaggregated kind, which clients fall back to): `/version`,
//!   `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`, for the
//!   built-in resources (core `v1` namespaces, nodes, pods with `pods/eviction`,
//!   services, endpoints, configmaps, secrets, serviceaccounts, events, persistent
//!   volumes and claims, limit ranges, quotas; `apps/v1` deployments, daemonsets,
//!   statefulsets, replicasets; `batch/v1`; `policy/v1` poddisruptionbudgets;
//!   `storage.k8s.io/v1`; `apiextensions.k8s.io/v1` customresourcedefinitions;
//!   `rbac.authorization.k8s.io/v1`; `coordination.k8s.io/v1` leases;
//!   `scheduling.k8s.io/v1`; `networking.k8s.io/v1`; admission webhooks; API services)
//!   and, as soon as a CRD is stored, for the kind it defines (group, served versions,
//!   plural, kind, scope, short names, status and scale subresources).
//! - **OpenAPI**: a v3 document per group-version (`/openapi/v3`) with every resource's
//!   paths, enough for kubectl to leave validation to the server
//!   (`fieldValidation=Strict`); schemas are minimal except for custom resources. An
//!   empty v2 document. See the `openapi` module for why.
//! - **Every resource**: list (`labelSelector` with `=`, `==`, `!=`, `in`, `notin`,
//!   exists and not-exists; `fieldSelector` with `=`, `==`, `!=` on any dotted path,
//!   such as `metadata.name` or `spec.nodeName`), get, create (`409 AlreadyExists`;
//!   `generateName`; the namespace must exist), replace (`409 Conflict` on a stale
//!   `resourceVersion`), delete (a `Status`, or the object for pods and for objects
//!   held by finalizers), deletecollection, and patch: JSON merge patch, JSON patch,
//!   strategic merge patch (see below) and **server-side apply**
//!   (`application/apply-patch+yaml`, body YAML or JSON, `fieldManager` required,
//!   `force`; creates a missing object). `dryRun` is honoured. `/status` and
//!   `/scale` subresources. Objects carry `uid`, a cluster-wide `resourceVersion`,
//!   `creationTimestamp`, `generation` (grows when anything but metadata and status
//!   changes) and `managedFields`.
//! - **Watch** (`?watch=true`): newline-delimited `{"type", "object"}` events, chunked,
//!   from a `resourceVersion` (or the current state first), with selectors,
//!   `timeoutSeconds`, `sendInitialEvents` and its bookmark, `410 Expired` for versions
//!   older than the change log. Tables too (`kubectl get -w`).
//! - **Tables** (`Accept: …;as=Table`), with kubectl's columns for nodes, pods,
//!   namespaces, services, configmaps, secrets, deployments, daemonsets, replicasets,
//!   storage classes (`(default)`), disruption budgets, CRDs, and CRDs' printer columns.
//! - **Eviction** (`pods/{name}/eviction`): deletes the pod, or answers
//!   `429 TooManyRequests` when the `policy/v1` PodDisruptionBudget selecting it
//!   (`minAvailable` or `maxUnavailable`, integer or percentage) allows no disruption.
//! - **Errors** as `Status` objects with the real server's codes, reasons and wording.
//! - **Controllers** (one pass per [`ApiServer::tick`]): garbage collection by owner
//!   references, Deployments (a ReplicaSet per pod template, status with replicas,
//!   ready, available, updated, observed generation, `Available`/`Progressing`),
//!   ReplicaSets, DaemonSets (a pod on every node that fits the node selector and the
//!   taints, cordoned nodes included; `desiredNumberScheduled`, `numberReady`, …), a
//!   scheduler (Ready, schedulable nodes that fit, fewest pods first), kubelets (pods
//!   Running, Ready while their node is), disruption budget status. Defaults as the
//!   API server sets them (deployment replicas and strategy, service cluster IPs,
//!   secrets' `stringData`, namespaces' phase and name label, CRDs established).
//! - **Nodes** from outside ([`ApiServer::set_nodes`]), with the Ready condition,
//!   labels, provider id, addresses, node info; cordons (`spec.unschedulable`) and
//!   taints set through the API stay.
//! - **TLS** with client-certificate authentication ([`serve_tls`]), HTTP/1.1.
//!
//! # What is not
//!
//! Authorization (every authenticated client may do everything), admission webhooks,
//! aggregated discovery, protobuf and CBOR, `limit`/`continue` pagination (everything
//! comes in one page), HTTP/2, conversion between versions (all versions of a resource
//! share one stored object), schema validation (unknown fields are kept), immutable
//! fields, graceful pod termination (deleted pods go at once), namespace termination
//! (deleting a namespace deletes its objects at once), foreground and orphan deletion
//! (dependents are collected in the background), field selectors restricted to the
//! fields the real server supports, the legacy `/api/v1/watch/…` paths, logs, exec,
//! port-forward, and controllers other than those above (no StatefulSet or Job pods,
//! no endpoints, no service load balancers). Server-side apply is simplified: a field
//! is a path of object keys down to a scalar or a list, lists are atomic (whoever sets
//! a list owns all of it), and apply merges the applied configuration over the object,
//! removing the fields the same manager applied before and no longer applies. Strategic
//! merge patch merges lists by the merge key their field name implies (`containers`
//! and `env` by `name`, `volumeMounts` by `mountPath`, …) instead of the types' schemas.
//! Rollouts are instant: a template change replaces all pods in one pass.

mod controllers;
mod defaults;
mod discovery;
mod disruption;
mod error;
mod etcd;
mod fields;
mod http;
mod kubelet;
mod nodes;
mod object;
mod openapi;
mod patch;
mod portforward;
mod resources;
mod selector;
mod server;
mod store;
mod table;
mod tls;
mod watch;

pub use error::{ApiError, Reason};
pub use etcd::{EtcdMembers, STAND_IN_ETCD_VERSION, StandInEtcd, member_id};
pub use http::router;
pub use kubelet::{KUBELET_USER_AGENT, Kubelet};
pub use nodes::{NodeSpec, Taint};
pub use portforward::{PORT_FORWARD_PROTOCOL, PodPorts, PodStream};
pub use resources::{Catalog, ResourceType, ScalePaths};
pub use server::{ApiServer, DEFAULT_VERSION};
pub use store::Deleted;
pub use tls::{ServeError, serve_tls, server_config};

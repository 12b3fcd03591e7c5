//! Controllers: the runtime that schedules reconciles ([`runtime`]) and the
//! reconcilers that move the world towards the store's desired state ([`cluster`]).
//!
//! **Architecture invariants:**
//! - A reconcile is level-triggered: it reads the whole desired and observed state each
//!   time, may run twice, and may be interrupted at any line.
//! - Planning is pure (`cluster::plan`): no I/O, unit-tested on plain values.
//! - Nothing here sleeps waiting for the cloud: it starts an operation and requeues.
//! - Every cloud resource is named deterministically and tagged with its cluster's uid
//!   before it exists; observation finds it by tag, so a retry adopts instead of
//!   duplicating.

pub mod cluster;
pub mod metrics;
pub mod runtime;

pub use cluster::{ClusterController, ClusterControllerConfig};
pub use metrics::Metrics;
pub use runtime::{Action, ControllerConfig, Reconciler, run_controller};

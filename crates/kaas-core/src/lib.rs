//! The kaas resource model and the pure logic around it: validation, decoding with
//! field paths, conditions, naming.
//!
//! **Architecture invariant:** this crate does no I/O and depends on no runtime,
//! database, HTTP, Kubernetes or OpenStack crate. Everything here is a plain function
//! of its arguments and is tested with plain `#[test]`s.

pub mod access;
pub mod cluster;
pub mod decode;
pub mod event;
pub mod list;
pub mod machine;
pub mod meta;
pub mod naming;
pub mod registry;
pub mod release_schedule;
pub mod stack;
pub mod tenant;
pub mod validation;

pub use cluster::{
    AddonStatus, AddonsStatus, Cluster, ClusterPhase, ClusterSpec, ClusterStatus, NodePool,
};
pub use event::{Event, EventType, ObjectReference};
pub use machine::{Machine, MachinePhase, MachineRole, MachineSpec, MachineStatus};
pub use meta::{Condition, ConditionStatus, Object, ObjectMeta, OwnerRef};
pub use tenant::Tenant;
pub use validation::{FieldError, ValidationErrors};

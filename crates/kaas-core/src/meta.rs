//! Object metadata, conditions and the `Object` trait every stored kind implements.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The API group and version of every kaas object.
pub const API_VERSION: &str = "kaas.dev/v1alpha1";

/// The tenant every object belongs to until tenants are managed.
pub const DEFAULT_TENANT: &str = "default";

/// Kubernetes-style object metadata. Only `name` and `labels` are set by clients;
/// the rest is owned by the server and ignored on input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// DNS-1123 label, unique per kind within a tenant.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Incremented on every change of `spec`.
    #[serde(default)]
    pub generation: i64,
    /// Opaque version for optimistic concurrency; an update carrying a stale value
    /// is refused with 409.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Set when deletion was asked for; the object stays until `finalizers` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_requested_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// The object this one belongs to (a Machine's Cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
}

impl ObjectMeta {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    pub fn is_deleting(&self) -> bool {
        self.deletion_requested_at.is_some()
    }
}

/// A reference to the owning object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// Every stored kind: a Kubernetes-style object with metadata.
pub trait Object: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: &'static str;
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// An observation of one aspect of an object, as in Kubernetes and Cluster API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase machine-readable cause.
    pub reason: String,
    /// What a person needs to know.
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
            last_transition_time: None,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Sets `new` in `conditions`, keeping the transition time when the status did not change.
/// Returns true when the status changed (a transition worth an event).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    mut new: Condition,
    now: DateTime<Utc>,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            let transitioned = old.status != new.status;
            new.last_transition_time = if transitioned {
                Some(now)
            } else {
                old.last_transition_time.or(Some(now))
            };
            *old = new;
            transitioned
        }
        None => {
            new.last_transition_time = Some(now);
            conditions.push(new);
            true
        }
    }
}

pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_transition_time_while_status_is_unchanged() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap_or_default();
        let mut conds = Vec::new();
        let c = |s| Condition::new("Ready", s, "Because", "");
        assert!(set_condition(&mut conds, c(ConditionStatus::False), t0));
        assert!(!set_condition(&mut conds, c(ConditionStatus::False), t1));
        assert_eq!(conds[0].last_transition_time, Some(t0));
        assert!(set_condition(&mut conds, c(ConditionStatus::True), t1));
        assert_eq!(conds[0].last_transition_time, Some(t1));
        assert_eq!(conds.len(), 1);
    }
}

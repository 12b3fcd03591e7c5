//! Events: an append-only log per object, the source of progress output.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::API_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub api_version: String,
    pub kind: String,
    /// Position in the store's event log; increases over time.
    #[serde(default)]
    pub seq: i64,
    pub involved_object: ObjectReference,
    #[serde(rename = "type")]
    pub type_: EventType,
    /// CamelCase cause, e.g. `NetworkCreated`.
    pub reason: String,
    pub message: String,
    pub time: DateTime<Utc>,
}

impl Event {
    pub fn new(
        involved_object: ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: "Event".to_owned(),
            seq: 0,
            involved_object,
            type_,
            reason: reason.to_owned(),
            message: message.into(),
            time,
        }
    }
}

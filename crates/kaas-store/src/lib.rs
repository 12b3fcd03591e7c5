//! The store: where desired state (what the API accepted) and observed state (status,
//! events) live, with optimistic concurrency and a change feed.
//!
//! The [`Store`] trait works on JSON documents of any kind so that it stays
//! dyn-compatible and backend-neutral; [`StoreExt`] adds typed access for every
//! [`kaas_core::Object`]. Implementations: [`SqliteStore`] (embedded default); a
//! PostgreSQL one implements the same trait. Sensitive data is stored as kind `Secret`
//! through [`Secrets`], sealed with envelope encryption (see [`SecretBox`]). The
//! stacks' upstream artifacts are cached by digest ([`Store::put_artifact`]), checked
//! against it on the way in and out.
//!
//! **Invariants:**
//! - `metadata.resourceVersion` is the sequence number of the object's last change in
//!   the feed; an update whose resourceVersion is not the current one fails with
//!   [`StoreError::Conflict`] and changes nothing.
//! - `metadata.generation` grows by one exactly when `spec` changes.
//! - `uid`, `tenant`, `createdAt` are set once, by the store, on create.
//! - Deleting an object with finalizers only sets `deletionRequestedAt`; the object
//!   disappears when an update leaves it with no finalizers.

mod secrets;
mod sqlite;
mod typed;

pub use secrets::{
    ENV_KEY_ID, KEY_DIR, KEY_ENV_VAR, KEY_LEN, SECRET_KIND, Sealed, SecretBox, SecretError,
    Secrets, add_key, rewrap_all,
};
pub use sqlite::SqliteStore;
pub use typed::StoreExt;

use async_trait::async_trait;
pub use kaas_core::list::{Operator, Requirement};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// Identifies one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: String,
    pub tenant: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: &str, tenant: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.tenant, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Strictly increasing over the whole store.
    pub seq: i64,
    pub key: ObjectKey,
    pub uid: String,
    pub op: ChangeOp,
}

/// What [`Store::delete`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone.
    Removed,
    /// The object has finalizers: it is marked for deletion and returned as it is now.
    Marked(Value),
}

/// Which objects [`Store::list`] returns: every filter set must hold. Lists are
/// ordered by tenant, then name, so that a page goes on where the one before ended
/// (`after`), however many objects are added or removed meanwhile.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// `None`: every tenant.
    pub tenant: Option<String>,
    /// Only objects whose `metadata.owner.uid` is this.
    pub owner_uid: Option<String>,
    /// Only objects whose `metadata.labels` satisfy every requirement (a label
    /// selector's, see [`kaas_core::list::parse_label_selector`]).
    pub labels: Vec<Requirement>,
    /// Only objects whose `status.phase` is this.
    pub phase: Option<String>,
    /// Only objects after this key in the list's order: where a page goes on.
    pub after: Option<ListPosition>,
    /// At most this many objects; `None`: all of them.
    pub limit: Option<u32>,
}

impl ListFilter {
    /// The objects of one tenant.
    pub fn tenant(tenant: &str) -> Self {
        Self {
            tenant: Some(tenant.to_owned()),
            ..Self::default()
        }
    }

    /// The objects of one tenant owned by the object with `owner_uid`.
    pub fn owned_by(tenant: &str, owner_uid: &str) -> Self {
        Self {
            owner_uid: Some(owner_uid.to_owned()),
            ..Self::tenant(tenant)
        }
    }
}

/// A place in a list: the key of an object without its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListPosition {
    pub tenant: String,
    pub name: String,
}

/// One page of a list: its objects, and where the next page starts if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last item's place, when more objects follow it.
    pub next: Option<ListPosition>,
}

/// An event as stored: `body` is the serialized `kaas_core::Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub body: Value,
}

/// A cached artifact, as listed (its bytes are read with [`Store::get_artifact`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredArtifact {
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// What the bytes are (`chart`, `manifest`, `oci-manifest`, `oci-config`).
    pub kind: String,
    /// Where they came from, for people.
    pub reference: String,
    pub size: u64,
    /// RFC 3339, when first stored.
    pub created_at: String,
}

/// The hex SHA-256 of `text`, as the secrets of tokens and credentials are stored.
pub fn sha256_hex(text: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for b in hash.as_ref() {
        text.push_str(&format!("{b:02x}"));
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: String, name: String },
    #[error(
        "{kind} {name:?} was changed by someone else (resourceVersion {given} is not the current {current}); read it again and retry"
    )]
    Conflict {
        kind: String,
        name: String,
        given: String,
        current: String,
    },
    #[error("invalid object: {0}")]
    Invalid(String),
    /// Bytes offered under a digest that is not theirs.
    #[error("the bytes have digest {actual}, not {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// Persistent objects with optimistic concurrency and a change feed.
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new object. Sets `metadata.{uid, tenant, generation = 1,
    /// resourceVersion, createdAt}`; the caller sets name, labels, finalizers, owner.
    async fn create(&self, kind: &str, tenant: &str, object: Value) -> Result<Value, StoreError>;

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError>;

    /// Objects of one kind that `filter` selects, ordered by tenant, then name.
    async fn list(&self, kind: &str, filter: &ListFilter) -> Result<Vec<Value>, StoreError>;

    /// [`Store::get`] as the object's JSON text: for callers that decode it into a type
    /// of their own, without a [`Value`] in between.
    async fn get_text(&self, key: &ObjectKey) -> Result<Option<String>, StoreError> {
        Ok(self.get(key).await?.map(|v| v.to_string()))
    }

    /// [`Store::list`] as each object's JSON text (see [`Store::get_text`]).
    async fn list_text(&self, kind: &str, filter: &ListFilter) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list(kind, filter)
            .await?
            .iter()
            .map(Value::to_string)
            .collect())
    }

    /// The name and the member `field` of each object [`Store::list`] would return
    /// (`field` a top-level member such as `spec`, as JSON text; `null` when missing):
    /// for callers that need one part of many objects, such as the specs a tenant's
    /// quota usage is summed from, without reading and decoding the rest.
    async fn list_field_text(
        &self,
        kind: &str,
        filter: &ListFilter,
        field: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .list(kind, filter)
            .await?
            .iter()
            .map(|v| {
                let name = v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (name, v.get(field).unwrap_or(&Value::Null).to_string())
            })
            .collect())
    }

    /// How many objects [`Store::list`] would return for `filter` without its limit.
    async fn count(&self, kind: &str, filter: &ListFilter) -> Result<u64, StoreError> {
        let filter = ListFilter {
            limit: None,
            ..filter.clone()
        };
        Ok(self.list(kind, &filter).await?.len() as u64)
    }

    /// Replaces an object whose `metadata.resourceVersion` is current. Keeps uid,
    /// tenant, createdAt and deletionRequestedAt from the stored object; bumps
    /// generation when spec changed. If the object is marked for deletion and the update
    /// leaves no finalizers, it is removed and `Ok(None)` is returned.
    async fn update(&self, key: &ObjectKey, object: Value) -> Result<Option<Value>, StoreError>;

    /// Asks for deletion: see [`Deleted`].
    async fn delete(&self, key: &ObjectKey) -> Result<Deleted, StoreError>;

    /// Changes after `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError>;

    /// The newest change seq; it moves whenever a change is committed by this process.
    fn latest_change(&self) -> watch::Receiver<i64>;

    /// Appends an event about the object with `object_uid`; returns its seq.
    async fn append_event(
        &self,
        tenant: &str,
        object_uid: &str,
        body: Value,
    ) -> Result<i64, StoreError>;

    /// Events about `object_uid` after `since`, oldest first, at most `limit`.
    async fn list_events(
        &self,
        tenant: &str,
        object_uid: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Appends an entry to the audit log (append-only: entries are never changed or
    /// removed); returns its seq.
    async fn append_audit(&self, tenant: &str, body: Value) -> Result<i64, StoreError>;

    /// Audit entries of `tenant` (of every tenant if `None`) after `since`, oldest
    /// first, at most `limit`.
    async fn list_audit(
        &self,
        tenant: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Caches an upstream artifact under its digest (`sha256:<hex>`), after checking
    /// that the bytes have it ([`StoreError::DigestMismatch`] otherwise). A digest
    /// stored already keeps its first row.
    async fn put_artifact(
        &self,
        digest: &str,
        kind: &str,
        reference: &str,
        bytes: &[u8],
    ) -> Result<StoredArtifact, StoreError>;

    /// The bytes stored under `digest`, checked again on the way out.
    async fn get_artifact(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every cached artifact, without its bytes, ordered by digest.
    async fn list_artifacts(&self) -> Result<Vec<StoredArtifact>, StoreError>;

    /// Whether the backend answers (for /readyz).
    async fn ping(&self) -> Result<(), StoreError>;
}

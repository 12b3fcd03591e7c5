//! The embedded [`Store`]: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so a write transaction never has
//! to upgrade a read lock against another writer of this process (no `SQLITE_BUSY` in the
//! middle of a transaction) and writes are serialized in commit order. Reads use a
//! separate small pool; in WAL mode they never block the writer nor wait for it.
//!
//! Every object write is one transaction that appends a row to `changes` and uses that
//! row's `seq` as the object's new `resourceVersion`. After the commit the seq is
//! published on a [`watch`] channel, see [`Store::latest_change`].
//!
//! The schema is created by the ordered `MIGRATIONS`, each applied once in its own
//! transaction and recorded in `schema_migrations`. They are plain SQL so that a
//! PostgreSQL implementation can follow them (with `BIGSERIAL`/identity columns instead of
//! `AUTOINCREMENT`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::watch;

use crate::{
    Change, ChangeOp, Deleted, ListFilter, ObjectKey, Operator, Store, StoreError, StoredArtifact,
    StoredEvent,
};

/// The schema, in order. Migration `i` (0-based) has version `i + 1`. Never edit an
/// applied migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: objects, the change feed and events.
    r#"
CREATE TABLE objects (
    kind             TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    uid              TEXT    NOT NULL UNIQUE,
    owner_uid        TEXT    NULL,
    resource_version INTEGER NOT NULL,
    generation       INTEGER NOT NULL,
    body             TEXT    NOT NULL,
    PRIMARY KEY (kind, tenant, name)
);
CREATE INDEX objects_kind_owner ON objects (kind, owner_uid);
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind   TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    uid    TEXT NOT NULL,
    op     TEXT NOT NULL,
    at     TEXT NOT NULL
);
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     TEXT NOT NULL,
    object_uid TEXT NOT NULL,
    body       TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX events_tenant_object ON events (tenant, object_uid, seq);
"#,
    // 2: the audit log, append-only: the database itself refuses to change or delete a
    // row.
    r#"
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    body   TEXT NOT NULL,
    at     TEXT NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    // 3: the stacks' upstream artifacts (charts, manifests, OCI manifests and configs),
    // content-addressed: the key is the sha256 of the bytes.
    r#"
CREATE TABLE artifacts (
    digest     TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    reference  TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    bytes      BLOB    NOT NULL,
    created_at TEXT    NOT NULL
);
"#,
    // 4: lists that page. Every list is ordered by (tenant, name), the primary key's
    // order after the kind, and a page goes on after a key; a cluster's machines and
    // the objects of one phase get indexes in that order too, so that a page costs what
    // it returns, not what the kind holds.
    r#"
CREATE INDEX objects_kind_owner_tenant_name ON objects (kind, owner_uid, tenant, name);
DROP INDEX objects_kind_owner;
CREATE INDEX objects_kind_phase_tenant_name
    ON objects (kind, json_extract(body, '$.status.phase'), tenant, name);
"#,
];

/// Connections of the read pool.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// [`Store`] on a SQLite file. See the module documentation.
#[derive(Debug)]
pub struct SqliteStore {
    /// Exactly one connection: every write transaction.
    write: SqlitePool,
    /// Plain reads outside transactions.
    read: SqlitePool,
    /// The newest committed change seq.
    latest: watch::Sender<i64>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it is missing, and applies the
    /// migrations it has not seen yet.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let latest: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM changes")
            .fetch_one(&write)
            .await
            .and_then(|row| row.try_get("seq"))
            .map_err(backend)?;
        let (latest, _) = watch::channel(latest);
        Ok(Self {
            write,
            read,
            latest,
        })
    }

    /// Closes every connection, waiting for the ones in use to be returned. Later calls
    /// fail with [`StoreError::Backend`].
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Publishes `seq` as the newest change, unless a newer one was published already
    /// (two writers may finish their post-commit work in either order).
    fn publish(&self, seq: i64) {
        self.latest.send_if_modified(|latest| {
            if seq > *latest {
                *latest = seq;
                true
            } else {
                false
            }
        });
    }
}

/// Applies every migration newer than the newest recorded one, each in its own transaction.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version INTEGER PRIMARY KEY, \
             applied_at TEXT NOT NULL\
         )",
    )
    .execute(pool)
    .await
    .map_err(backend)?;
    let current: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get("version"))
            .map_err(backend)?;
    for (version, sql) in (1_i64..).zip(MIGRATIONS) {
        if version <= current {
            continue;
        }
        let mut tx = pool.begin().await.map_err(backend)?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Backend(format!("migration {version} failed: {e}")))?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(version, "applied store migration");
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(&self, kind: &str, tenant: &str, object: Value) -> Result<Value, StoreError> {
        if kind.is_empty() {
            return Err(StoreError::Invalid("kind must not be empty".into()));
        }
        if tenant.is_empty() {
            return Err(StoreError::Invalid("tenant must not be empty".into()));
        }
        let mut object = object;
        let meta = metadata_mut(&mut object)?;
        let name = match meta.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                return Err(StoreError::Invalid(
                    "metadata.name must be a non-empty string".into(),
                ));
            }
        };
        let uid = uuid::Uuid::new_v4().to_string();
        meta.insert("uid".into(), Value::String(uid.clone()));
        meta.insert("tenant".into(), Value::String(tenant.to_owned()));
        meta.insert("generation".into(), Value::from(1_i64));
        meta.insert("createdAt".into(), Value::String(now()));
        meta.remove("deletionRequestedAt");
        meta.remove("resourceVersion");
        let owner = owner_uid(meta);
        let key = ObjectKey::new(kind, tenant, &name);

        let mut tx = self.write.begin().await.map_err(backend)?;
        let exists =
            sqlx::query("SELECT 1 FROM objects WHERE kind = ? AND tenant = ? AND name = ?")
                .bind(kind)
                .bind(tenant)
                .bind(&name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if exists.is_some() {
            return Err(already_exists(&key));
        }
        let seq = record_change(&mut tx, &key, &uid, ChangeOp::Created).await?;
        set_resource_version(&mut object, seq)?;
        let body = to_text(&object)?;
        sqlx::query(
            "INSERT INTO objects \
             (kind, tenant, name, uid, owner_uid, resource_version, generation, body) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(kind)
        .bind(tenant)
        .bind(&name)
        .bind(&uid)
        .bind(owner)
        .bind(seq)
        .bind(1_i64)
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e.as_database_error() {
            // Only possible when another process wrote the same key meanwhile.
            Some(db) if db.is_unique_violation() => already_exists(&key),
            _ => backend(e),
        })?;
        tx.commit().await.map_err(backend)?;
        self.publish(seq);
        Ok(object)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        self.get_text(key)
            .await?
            .as_deref()
            .map(parse_body)
            .transpose()
    }

    async fn list(&self, kind: &str, filter: &ListFilter) -> Result<Vec<Value>, StoreError> {
        self.list_text(kind, filter)
            .await?
            .iter()
            .map(|body| parse_body(body))
            .collect()
    }

    async fn get_text(&self, key: &ObjectKey) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT body FROM objects WHERE kind = ? AND tenant = ? AND name = ?")
                .bind(&key.kind)
                .bind(&key.tenant)
                .bind(&key.name)
                .fetch_optional(&self.read)
                .await
                .map_err(backend)?;
        row.map(|row| row.try_get("body").map_err(backend))
            .transpose()
    }

    async fn list_text(&self, kind: &str, filter: &ListFilter) -> Result<Vec<String>, StoreError> {
        let (sql, binds) = list_sql("body", kind, filter, true);
        let rows = bound(sqlx::query(&sql), binds)
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| row.try_get("body").map_err(backend))
            .collect()
    }

    async fn list_field_text(
        &self,
        kind: &str,
        filter: &ListFilter,
        field: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // A member's name goes into the JSON path quoted, as data: `$."spec"`.
        let path = format!("$.{}", serde_json::Value::String(field.to_owned()));
        // json_quote(json_extract(…)): the member as JSON text, whatever its type.
        let (sql, binds) = list_sql(
            "name, json_quote(json_extract(body, ?)) AS part",
            kind,
            filter,
            true,
        );
        let rows = bound(sqlx::query(&sql).bind(path), binds)
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name").map_err(backend)?;
                let part: Option<String> = row.try_get("part").map_err(backend)?;
                Ok((name, part.unwrap_or_else(|| "null".to_owned())))
            })
            .collect()
    }

    async fn count(&self, kind: &str, filter: &ListFilter) -> Result<u64, StoreError> {
        let (sql, binds) = list_sql("COUNT(*) AS n", kind, filter, false);
        let n: i64 = bound(sqlx::query(&sql), binds)
            .fetch_one(&self.read)
            .await
            .and_then(|row| row.try_get("n"))
            .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update(&self, key: &ObjectKey, object: Value) -> Result<Option<Value>, StoreError> {
        let mut object = object;
        let meta = metadata_mut(&mut object)?;
        match meta.get("name") {
            None => {}
            Some(Value::String(name)) if name.is_empty() || *name == key.name => {}
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "metadata.name {other} does not match the name {:?} being updated",
                    key.name
                )));
            }
        }
        meta.insert("name".into(), Value::String(key.name.clone()));
        let given = match meta.get("resourceVersion") {
            Some(Value::String(rv)) => rv.clone(),
            Some(Value::Number(rv)) => rv.to_string(),
            _ => String::new(),
        };

        let mut tx = self.write.begin().await.map_err(backend)?;
        let Some(stored) = fetch_stored(&mut tx, key).await? else {
            return Err(not_found(key));
        };
        let current = stored.resource_version.to_string();
        if given != current {
            return Err(StoreError::Conflict {
                kind: key.kind.clone(),
                name: key.name.clone(),
                given,
                current,
            });
        }

        let stored_meta = stored.body.get("metadata").and_then(Value::as_object);
        let kept = |field: &str| stored_meta.and_then(|m| m.get(field)).cloned();
        let deletion_requested = kept("deletionRequestedAt").filter(|v| !v.is_null());
        let generation = if object.get("spec") == stored.body.get("spec") {
            stored.generation
        } else {
            stored.generation + 1
        };
        let meta = metadata_mut(&mut object)?;
        meta.insert("uid".into(), Value::String(stored.uid.clone()));
        meta.insert("tenant".into(), Value::String(key.tenant.clone()));
        meta.insert("generation".into(), Value::from(generation));
        match kept("createdAt") {
            Some(created) => meta.insert("createdAt".into(), created),
            None => meta.remove("createdAt"),
        };
        match &deletion_requested {
            Some(at) => meta.insert("deletionRequestedAt".into(), at.clone()),
            None => meta.remove("deletionRequestedAt"),
        };

        if deletion_requested.is_some() && !has_finalizers(meta) {
            let seq = record_change(&mut tx, key, &stored.uid, ChangeOp::Deleted).await?;
            remove_object(&mut tx, key).await?;
            tx.commit().await.map_err(backend)?;
            self.publish(seq);
            return Ok(None);
        }

        let owner = owner_uid(meta);
        let seq = record_change(&mut tx, key, &stored.uid, ChangeOp::Updated).await?;
        set_resource_version(&mut object, seq)?;
        write_object(&mut tx, key, owner, seq, generation, &object).await?;
        tx.commit().await.map_err(backend)?;
        self.publish(seq);
        Ok(Some(object))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Deleted, StoreError> {
        let mut tx = self.write.begin().await.map_err(backend)?;
        let Some(stored) = fetch_stored(&mut tx, key).await? else {
            return Err(not_found(key));
        };
        let mut object = stored.body;
        let meta = metadata_mut(&mut object)?;
        if !has_finalizers(meta) {
            let seq = record_change(&mut tx, key, &stored.uid, ChangeOp::Deleted).await?;
            remove_object(&mut tx, key).await?;
            tx.commit().await.map_err(backend)?;
            self.publish(seq);
            return Ok(Deleted::Removed);
        }
        if meta
            .get("deletionRequestedAt")
            .is_some_and(|v| !v.is_null())
        {
            // Already marked: nothing changes, so no new change either.
            return Ok(Deleted::Marked(object));
        }
        meta.insert("deletionRequestedAt".into(), Value::String(now()));
        let owner = owner_uid(meta);
        let seq = record_change(&mut tx, key, &stored.uid, ChangeOp::Updated).await?;
        set_resource_version(&mut object, seq)?;
        write_object(&mut tx, key, owner, seq, stored.generation, &object).await?;
        tx.commit().await.map_err(backend)?;
        self.publish(seq);
        Ok(Deleted::Marked(object))
    }

    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, tenant, name, uid, op FROM changes \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let op: String = row.try_get("op").map_err(backend)?;
                Ok(Change {
                    seq: row.try_get("seq").map_err(backend)?,
                    key: ObjectKey {
                        kind: row.try_get("kind").map_err(backend)?,
                        tenant: row.try_get("tenant").map_err(backend)?,
                        name: row.try_get("name").map_err(backend)?,
                    },
                    uid: row.try_get("uid").map_err(backend)?,
                    op: parse_op(&op)?,
                })
            })
            .collect()
    }

    fn latest_change(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    async fn append_event(
        &self,
        tenant: &str,
        object_uid: &str,
        body: Value,
    ) -> Result<i64, StoreError> {
        let body = to_text(&body)?;
        let row = sqlx::query(
            "INSERT INTO events (tenant, object_uid, body, at) VALUES (?, ?, ?, ?) RETURNING seq",
        )
        .bind(tenant)
        .bind(object_uid)
        .bind(body)
        .bind(now())
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        row.try_get("seq").map_err(backend)
    }

    async fn list_events(
        &self,
        tenant: &str,
        object_uid: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, body FROM events \
             WHERE tenant = ? AND object_uid = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(tenant)
        .bind(object_uid)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        stored_events(&rows)
    }

    async fn append_audit(&self, tenant: &str, body: Value) -> Result<i64, StoreError> {
        let body = to_text(&body)?;
        let row =
            sqlx::query("INSERT INTO audit (tenant, body, at) VALUES (?, ?, ?) RETURNING seq")
                .bind(tenant)
                .bind(body)
                .bind(now())
                .fetch_one(&self.write)
                .await
                .map_err(backend)?;
        row.try_get("seq").map_err(backend)
    }

    async fn list_audit(
        &self,
        tenant: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Two statements, not `(?1 IS NULL OR tenant = ?1)`: SQLite would not use the
        // audit_tenant index for that, and would scan the whole log for one tenant.
        let query = match tenant {
            Some(tenant) => sqlx::query(
                "SELECT seq, body FROM audit WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(tenant),
            None => sqlx::query("SELECT seq, body FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"),
        };
        let rows = query
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        stored_events(&rows)
    }

    async fn put_artifact(
        &self,
        digest: &str,
        kind: &str,
        reference: &str,
        bytes: &[u8],
    ) -> Result<StoredArtifact, StoreError> {
        let actual = crate::sha256_digest(bytes);
        if !kaas_core::stack::is_sha256_digest(digest) {
            return Err(StoreError::Invalid(format!(
                "artifact digest {digest:?} is not sha256:<64 lower-case hex digits>"
            )));
        }
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_owned(),
                actual,
            });
        }
        if kind.is_empty() {
            return Err(StoreError::Invalid(
                "an artifact's kind must not be empty".into(),
            ));
        }
        // The same digest is the same bytes: a second put keeps the first row.
        sqlx::query(
            "INSERT INTO artifacts (digest, kind, reference, size, bytes, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(kind)
        .bind(reference)
        .bind(bytes.len() as i64)
        .bind(bytes)
        .bind(now())
        .execute(&self.write)
        .await
        .map_err(backend)?;
        let row = sqlx::query(
            "SELECT digest, kind, reference, size, created_at FROM artifacts WHERE digest = ?",
        )
        .bind(digest)
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        stored_artifact(&row)
    }

    async fn get_artifact(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM artifacts WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.try_get("bytes").map_err(backend)?;
        let actual = crate::sha256_digest(&bytes);
        if actual != digest {
            return Err(StoreError::Backend(format!(
                "the stored artifact {digest} has changed: its bytes have digest {actual}"
            )));
        }
        Ok(Some(bytes))
    }

    async fn list_artifacts(&self) -> Result<Vec<StoredArtifact>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, kind, reference, size, created_at FROM artifacts ORDER BY digest",
        )
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(stored_artifact).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// A value bound to a `?` of a statement.
#[derive(Debug, Clone, PartialEq)]
enum Bind {
    Text(String),
    Int(i64),
}

/// `query` with `binds` bound, in order, after what it has already.
fn bound<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    binds
        .into_iter()
        .fold(query, |query, bind| bind.onto(query))
}

impl Bind {
    fn onto<'q>(
        self,
        query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        match self {
            Bind::Text(text) => query.bind(text),
            Bind::Int(n) => query.bind(n),
        }
    }
}

/// The statement that selects `what` of the objects of `kind` that `filter` selects,
/// and the values bound to its `?`s: every value is bound, never written into the
/// text. Ordered by (tenant, name) and limited when `ordered`.
///
/// The phase is compared with the very expression `objects_kind_phase_tenant_name`
/// indexes; labels are looked up in `metadata.labels` with `json_each`, whose key and
/// value are bound.
fn list_sql(what: &str, kind: &str, filter: &ListFilter, ordered: bool) -> (String, Vec<Bind>) {
    let mut sql = format!("SELECT {what} FROM objects WHERE kind = ?");
    let mut binds = vec![Bind::Text(kind.to_owned())];
    if let Some(tenant) = &filter.tenant {
        sql.push_str(" AND tenant = ?");
        binds.push(Bind::Text(tenant.clone()));
    }
    if let Some(owner) = &filter.owner_uid {
        sql.push_str(" AND owner_uid = ?");
        binds.push(Bind::Text(owner.clone()));
    }
    if let Some(phase) = &filter.phase {
        sql.push_str(" AND json_extract(body, '$.status.phase') = ?");
        binds.push(Bind::Text(phase.clone()));
    }
    if let Some(after) = &filter.after {
        sql.push_str(" AND (tenant, name) > (?, ?)");
        binds.push(Bind::Text(after.tenant.clone()));
        binds.push(Bind::Text(after.name.clone()));
    }
    for requirement in &filter.labels {
        const LABEL: &str = "EXISTS (SELECT 1 FROM json_each(objects.body, '$.metadata.labels') AS label \
             WHERE label.key = ?";
        binds.push(Bind::Text(requirement.key.clone()));
        let (negated, values): (bool, &[String]) = match &requirement.operator {
            Operator::Exists => (false, &[]),
            Operator::DoesNotExist => (true, &[]),
            Operator::Equals(v) => (false, std::slice::from_ref(v)),
            Operator::NotEquals(v) => (true, std::slice::from_ref(v)),
            Operator::In(set) => (false, set),
            Operator::NotIn(set) => (true, set),
        };
        sql.push_str(if negated { " AND NOT " } else { " AND " });
        sql.push_str(LABEL);
        if !values.is_empty() {
            let marks = vec!["?"; values.len()].join(", ");
            sql.push_str(&format!(" AND label.value IN ({marks})"));
            binds.extend(values.iter().cloned().map(Bind::Text));
        }
        sql.push(')');
    }
    if ordered {
        sql.push_str(" ORDER BY tenant, name");
        if let Some(limit) = filter.limit {
            sql.push_str(" LIMIT ?");
            binds.push(Bind::Int(i64::from(limit)));
        }
    }
    (sql, binds)
}

/// Rows of `seq, body` (events, audit entries) as [`StoredEvent`]s.
fn stored_events(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(StoredEvent {
                seq: row.try_get("seq").map_err(backend)?,
                body: body_of(row)?,
            })
        })
        .collect()
}

fn stored_artifact(row: &sqlx::sqlite::SqliteRow) -> Result<StoredArtifact, StoreError> {
    let size: i64 = row.try_get("size").map_err(backend)?;
    Ok(StoredArtifact {
        digest: row.try_get("digest").map_err(backend)?,
        kind: row.try_get("kind").map_err(backend)?,
        reference: row.try_get("reference").map_err(backend)?,
        size: u64::try_from(size).unwrap_or(0),
        created_at: row.try_get("created_at").map_err(backend)?,
    })
}

/// The columns of a stored object that a write needs.
struct StoredObject {
    uid: String,
    resource_version: i64,
    generation: i64,
    body: Value,
}

async fn fetch_stored(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ObjectKey,
) -> Result<Option<StoredObject>, StoreError> {
    let row = sqlx::query(
        "SELECT uid, resource_version, generation, body FROM objects \
         WHERE kind = ? AND tenant = ? AND name = ?",
    )
    .bind(&key.kind)
    .bind(&key.tenant)
    .bind(&key.name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(StoredObject {
        uid: row.try_get("uid").map_err(backend)?,
        resource_version: row.try_get("resource_version").map_err(backend)?,
        generation: row.try_get("generation").map_err(backend)?,
        body: body_of(&row)?,
    }))
}

/// Appends to the change feed; the returned seq is the object's new resourceVersion.
async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ObjectKey,
    uid: &str,
    op: ChangeOp,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO changes (kind, tenant, name, uid, op, at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(&key.kind)
    .bind(&key.tenant)
    .bind(&key.name)
    .bind(uid)
    .bind(op_name(op))
    .bind(now())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    row.try_get("seq").map_err(backend)
}

async fn write_object(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ObjectKey,
    owner_uid: Option<String>,
    resource_version: i64,
    generation: i64,
    object: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE objects SET owner_uid = ?, resource_version = ?, generation = ?, body = ? \
         WHERE kind = ? AND tenant = ? AND name = ?",
    )
    .bind(owner_uid)
    .bind(resource_version)
    .bind(generation)
    .bind(to_text(object)?)
    .bind(&key.kind)
    .bind(&key.tenant)
    .bind(&key.name)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn remove_object(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ObjectKey,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM objects WHERE kind = ? AND tenant = ? AND name = ?")
        .bind(&key.kind)
        .bind(&key.tenant)
        .bind(&key.name)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// `object.metadata`, which must be a JSON object.
fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, StoreError> {
    object
        .as_object_mut()
        .ok_or_else(|| StoreError::Invalid("an object must be a JSON object".into()))?
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StoreError::Invalid("metadata must be a JSON object".into()))
}

fn set_resource_version(object: &mut Value, seq: i64) -> Result<(), StoreError> {
    metadata_mut(object)?.insert("resourceVersion".into(), Value::String(seq.to_string()));
    Ok(())
}

fn owner_uid(meta: &Map<String, Value>) -> Option<String> {
    meta.get("owner")?.get("uid")?.as_str().map(str::to_owned)
}

fn has_finalizers(meta: &Map<String, Value>) -> bool {
    meta.get("finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn body_of(row: &sqlx::sqlite::SqliteRow) -> Result<Value, StoreError> {
    let body: String = row.try_get("body").map_err(backend)?;
    parse_body(&body)
}

fn parse_body(body: &str) -> Result<Value, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("stored body is not valid JSON: {e}")))
}

fn to_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot encode: {e}")))
}

fn op_name(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Created => "created",
        ChangeOp::Updated => "updated",
        ChangeOp::Deleted => "deleted",
    }
}

fn parse_op(op: &str) -> Result<ChangeOp, StoreError> {
    match op {
        "created" => Ok(ChangeOp::Created),
        "updated" => Ok(ChangeOp::Updated),
        "deleted" => Ok(ChangeOp::Deleted),
        other => Err(StoreError::Backend(format!(
            "unknown change op {other:?} in the store"
        ))),
    }
}

/// Now, as RFC 3339 UTC.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn not_found(key: &ObjectKey) -> StoreError {
    StoreError::NotFound {
        kind: key.kind.clone(),
        name: key.name.clone(),
    }
}

fn already_exists(key: &ObjectKey) -> StoreError {
    StoreError::AlreadyExists {
        kind: key.kind.clone(),
        name: key.name.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_are_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kaas.db");
        for _ in 0..2 {
            let store = SqliteStore::open(&path).await.unwrap();
            let versions: Vec<i64> =
                sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
                    .fetch_all(&store.read)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.try_get("version").unwrap())
                    .collect();
            let expected: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
            assert_eq!(versions, expected);
            let mode: String = sqlx::query("PRAGMA journal_mode")
                .fetch_one(&store.write)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(mode, "wal");
            store.close().await;
        }
    }

    /// What SQLite plans for a list: every row it reads, and whether it sorts.
    async fn plan(store: &SqliteStore, filter: &ListFilter) -> String {
        let (sql, binds) = list_sql("body", "Cluster", filter, true);
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        bound(sqlx::query(&explain), binds)
            .fetch_all(&store.read)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>("detail").unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Each page is read through an index in the list's order: no scan of the table,
    /// no sort of every object the kind holds.
    #[tokio::test]
    async fn pages_are_read_through_indexes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kaas.db"))
            .await
            .unwrap();
        let after = Some(crate::ListPosition {
            tenant: "acme".into(),
            name: "c-0100".into(),
        });
        let labels = vec![crate::Requirement {
            key: "env".into(),
            operator: Operator::In(vec!["prod".into(), "test".into()]),
        }];
        let cases = [
            (ListFilter::default(), "PRIMARY KEY"),
            (ListFilter::tenant("acme"), "PRIMARY KEY"),
            (
                ListFilter {
                    after: after.clone(),
                    limit: Some(100),
                    labels: labels.clone(),
                    ..ListFilter::default()
                },
                "PRIMARY KEY",
            ),
            (
                ListFilter {
                    after: after.clone(),
                    limit: Some(100),
                    ..ListFilter::tenant("acme")
                },
                "PRIMARY KEY",
            ),
            (
                ListFilter {
                    after: after.clone(),
                    limit: Some(100),
                    ..ListFilter::owned_by("acme", "uid-1")
                },
                "objects_kind_owner_tenant_name",
            ),
            (
                ListFilter {
                    phase: Some("Failed".into()),
                    after: after.clone(),
                    limit: Some(100),
                    ..ListFilter::default()
                },
                "objects_kind_phase_tenant_name",
            ),
            (
                ListFilter {
                    phase: Some("Failed".into()),
                    after,
                    limit: Some(100),
                    labels,
                    ..ListFilter::tenant("acme")
                },
                "objects_kind_phase_tenant_name",
            ),
        ];
        // The primary key's index, by the name SQLite gave it.
        let primary_key: String =
            sqlx::query("SELECT name FROM pragma_index_list('objects') WHERE origin = 'pk'")
                .fetch_one(&store.read)
                .await
                .unwrap()
                .try_get("name")
                .unwrap();
        for (filter, index) in cases {
            let index = if index == "PRIMARY KEY" {
                primary_key.as_str()
            } else {
                index
            };
            let plan = plan(&store, &filter).await;
            let outer = plan.split("; ").next().unwrap();
            assert!(
                outer.starts_with("SEARCH objects USING") && outer.contains(index),
                "{filter:?}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts: {plan}");
        }
        store.close().await;
    }

    #[test]
    fn change_ops_round_trip() {
        for op in [ChangeOp::Created, ChangeOp::Updated, ChangeOp::Deleted] {
            assert_eq!(parse_op(op_name(op)).unwrap(), op);
            // Same spelling as the serde form used in the API.
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                Value::String(op_name(op).into())
            );
        }
        assert!(parse_op("bogus").is_err());
    }
}

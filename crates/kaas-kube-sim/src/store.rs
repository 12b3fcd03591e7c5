//! The object store of one simulated API server: objects of every kind as JSON, a
//! cluster-wide resource version, a change log for watches, and the write paths
//! (create, replace, patch, server-side apply, delete, evict) with the rules the real
//! API server applies on them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::{ApiError, Reason};
use crate::fields::{self, Scope, Writer};
use crate::object::{
    self, finalizers, is_deleting, meta_str, random_suffix, remove_meta, set_meta,
};
use crate::patch::{self, PatchType};
use crate::resources::{Catalog, ResourceType, split_api_version};
use crate::selector::{FieldSelector, LabelSelector};

/// How many changes the log keeps for watches that resume from a resource version.
const LOG_CAPACITY: usize = 10_000;
const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_RESOURCE: &str = "customresourcedefinitions";

/// How long the log keeps a change, as the API server's storage compacts its history
/// every five minutes: a quiet cluster holds no history.
const LOG_RETENTION: Duration = Duration::from_secs(300);
/// How many changes a slow watcher may fall behind before its watch ends.
const BROADCAST_CAPACITY: usize = 1_024;

/// Where an object lives: its group and resource, namespace (`""` when cluster-scoped)
/// and name. All versions of a resource share one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    fn of(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What a change did, as a watch event's `type` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub key: ObjectKey,
    pub event: EventType,
    /// The object after the change (for a deletion: its last state, at `revision`).
    pub object: Value,
    /// The object before the change, for selectors that stop or start matching.
    pub previous: Option<Value>,
}

/// What a collection request (list, watch, deletecollection) is about.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: ResourceType,
    /// The version the client asked for; objects are returned as of this version.
    pub version: String,
    /// `None` for cluster-scoped types and for requests across all namespaces.
    pub namespace: Option<String>,
}

impl Target {
    pub fn new(resource: ResourceType, version: &str, namespace: Option<&str>) -> Self {
        let namespace = namespace.filter(|_| resource.namespaced).map(str::to_owned);
        Self {
            resource,
            version: version.to_owned(),
            namespace,
        }
    }

    pub fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(
            &self.resource,
            self.namespace.as_deref().unwrap_or(""),
            name,
        )
    }

    pub fn api_version(&self) -> String {
        self.resource.api_version(&self.version)
    }

    /// A copy of `object` as of the requested version.
    pub fn present(&self, object: &Value) -> Value {
        let mut out = object.clone();
        out["apiVersion"] = json!(self.api_version());
        out
    }

    /// The key of `object` (of this target's type).
    pub fn key_of(&self, object: &Value) -> ObjectKey {
        ObjectKey::new(
            &self.resource,
            object::namespace(object),
            object::name(object),
        )
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.group == self.resource.group
            && key.resource == self.resource.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}

/// Label and field selectors of a collection request.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

/// How a write is made.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The manager recorded in `managedFields`; required for apply.
    pub field_manager: Option<String>,
    /// Apply: take fields over from other managers instead of failing on conflicts.
    pub force: bool,
    /// `dryRun=All`: everything but the write.
    pub dry_run: bool,
}

impl WriteOptions {
    fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }
}

/// A deletion's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object has finalizers: it is only marked for deletion.
    Marked(Value),
}

/// A watch, started: the events the client gets first, then the live changes.
pub struct WatchStart {
    pub initial: Vec<(String, Value)>,
    pub receiver: broadcast::Receiver<Arc<Change>>,
    /// The requested resource version is older than the log: the watch gets only this
    /// `410 Expired` error.
    pub expired: Option<ApiError>,
}

/// The mutable state behind the lock.
pub(crate) struct State {
    pub objects: BTreeMap<ObjectKey, Value>,
    pub revision: u64,
    /// The changes, oldest first, with when each was made.
    log: VecDeque<(Instant, Arc<Change>)>,
    /// The highest revision dropped from the log: watches from older ones are expired.
    log_floor: u64,
    changes: broadcast::Sender<Arc<Change>>,
    /// For generated addresses (cluster IPs, pod IPs).
    pub serial: u32,
    /// The resource types, built-in and from the CRDs: made again only after a CRD
    /// changed, not at every request.
    catalog: std::sync::OnceLock<Arc<Catalog>>,
}

impl State {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            objects: BTreeMap::new(),
            revision: 0,
            log: VecDeque::new(),
            log_floor: 0,
            changes,
            serial: 0,
            catalog: std::sync::OnceLock::new(),
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .get_or_init(|| {
                Arc::new(Catalog::new(
                    self.of_resource(CRD_GROUP, CRD_RESOURCE)
                        .map(|(_, crd)| crd),
                ))
            })
            .clone()
    }

    /// After `key` changed: a CRD's change changes the catalog.
    fn changed(&mut self, key: &ObjectKey) {
        if key.group == CRD_GROUP && key.resource == CRD_RESOURCE {
            self.catalog = std::sync::OnceLock::new();
        }
    }

    /// Stores `object` as it is under `key`, at no new revision and telling no one:
    /// how a snapshot is restored.
    pub fn restore_object(&mut self, key: ObjectKey, object: Value) {
        self.changed(&key);
        self.objects.insert(key, object);
    }

    /// The objects of one resource, in key order.
    pub fn of_resource<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = ObjectKey::of(group, resource, "", "");
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.group == group && k.resource == resource)
    }

    /// Watches from revisions up to `revision` are told `410 Expired` (their changes
    /// are not in the log).
    pub fn expire_log_before(&mut self, revision: u64) {
        self.log.clear();
        self.log_floor = revision;
    }

    /// Drops the changes older than the log's retention: watches from before them are
    /// expired.
    pub fn compact_log(&mut self, now: Instant) {
        while let Some((at, change)) = self.log.front() {
            if now.duration_since(*at) < LOG_RETENTION {
                break;
            }
            self.log_floor = change.revision;
            self.log.pop_front();
        }
    }

    /// The changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        if self.log.len() >= LOG_CAPACITY
            && let Some((_, dropped)) = self.log.pop_front()
        {
            self.log_floor = dropped.revision;
        }
        self.log.push_back((Instant::now(), Arc::clone(&change)));
        // Nobody watching is not an error.
        let _ = self.changes.send(change);
    }

    /// Stores `object` under `key` at the next revision and tells the watchers.
    pub fn put(&mut self, key: ObjectKey, mut object: Value) -> Value {
        self.revision += 1;
        set_meta(
            &mut object,
            "resourceVersion",
            json!(self.revision.to_string()),
        );
        self.changed(&key);
        let previous = self.objects.insert(key.clone(), object.clone());
        self.record(Change {
            revision: self.revision,
            key,
            event: if previous.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object: object.clone(),
            previous,
        });
        object
    }

    /// Removes the object under `key` at the next revision and tells the watchers.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.changed(key);
        self.revision += 1;
        set_meta(
            &mut object,
            "resourceVersion",
            json!(self.revision.to_string()),
        );
        self.record(Change {
            revision: self.revision,
            key: key.clone(),
            event: EventType::Deleted,
            object: object.clone(),
            previous: None,
        });
        Some(object)
    }

    /// Removes `key` and what goes with it: a namespace's objects, a CRD's objects.
    fn remove_cascading(&mut self, key: &ObjectKey) -> Option<Value> {
        let removed = self.remove(key)?;
        let dependents: Vec<ObjectKey> = if key.group.is_empty() && key.resource == "namespaces" {
            self.objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect()
        } else if key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions"
        {
            match crate::resources::from_crd(&removed) {
                Some(rt) => self
                    .of_resource(&rt.group, &rt.plural)
                    .map(|(k, _)| k.clone())
                    .collect(),
                None => Vec::new(),
            }
        } else {
            Vec::new()
        };
        for dependent in dependents {
            self.remove(&dependent);
        }
        Some(removed)
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .contains_key(&ObjectKey::of("", "namespaces", "", namespace))
    }

    pub fn next_ip(&mut self, prefix: &str) -> String {
        self.serial = self.serial.wrapping_add(1);
        format!(
            "{prefix}.{}.{}",
            (self.serial >> 8) & 0xff,
            (self.serial & 0xff).max(1)
        )
    }

    /// Creates `body` as an object of `rt` in `namespace`.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        version: &str,
        namespace: &str,
        body: Value,
        options: &WriteOptions,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut object = self.prepare_create(rt, version, namespace, body, now)?;
        let api_version = rt.api_version(version);
        let writer = writer(options, &api_version, None, now);
        fields::record_update(&Value::Null, &mut object, writer, main_scope(rt));
        self.finish_create(rt, object, options)
    }

    /// The object a create of `body` makes, before field ownership is recorded.
    fn prepare_create(
        &mut self,
        rt: &ResourceType,
        version: &str,
        namespace: &str,
        mut body: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        check_type(rt, version, &body)?;
        let name = match meta_str(&body, "name").filter(|n| !n.is_empty()) {
            Some(name) => name.to_owned(),
            None => match meta_str(&body, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", random_suffix(5)),
                None => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        check_name(rt, &name)?;
        if rt.namespaced {
            match meta_str(&body, "namespace").filter(|n| !n.is_empty()) {
                Some(ns) if ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace \
                         sent on the request",
                    ));
                }
                _ => {}
            }
            if namespace.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: create it in a namespace",
                    rt.plural
                )));
            }
            if !self.namespace_exists(namespace) {
                return Err(ApiError::not_found("", "namespaces", namespace));
            }
        }
        let key = ObjectKey::new(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        body["apiVersion"] = json!(rt.api_version(version));
        body["kind"] = json!(rt.kind);
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            remove_meta(&mut body, field);
        }
        set_meta(&mut body, "name", json!(name));
        if rt.namespaced {
            set_meta(&mut body, "namespace", json!(namespace));
        } else {
            remove_meta(&mut body, "namespace");
        }
        set_meta(&mut body, "uid", json!(uuid::Uuid::new_v4().to_string()));
        set_meta(
            &mut body,
            "creationTimestamp",
            json!(fields::timestamp(now)),
        );
        set_meta(&mut body, "generation", json!(1));
        if rt.status_subresource
            && let Some(map) = body.as_object_mut()
        {
            map.remove("status");
        }
        crate::defaults::on_create(self, rt, &mut body, now)?;
        Ok(body)
    }

    fn finish_create(
        &mut self,
        rt: &ResourceType,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if options.dry_run {
            return Ok(object);
        }
        let key = ObjectKey::new(rt, object::namespace(&object), object::name(&object));
        Ok(self.put(key, object))
    }

    fn existing(&self, rt: &ResourceType, key: &ObjectKey) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &key.name))
    }

    /// `PUT`: replaces the object (or, for `subresource == Some("status")`, its status).
    pub fn replace(&mut self, update: &Update<'_>, body: Value) -> Result<Value, ApiError> {
        let (rt, key) = (update.rt, update.key);
        check_type(rt, update.version, &body)?;
        if let Some(name) = meta_str(&body, "name")
            && name != key.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let existing = self.existing(rt, key)?;
        self.finish_update(update, &existing, body, Ownership::Update)
    }

    /// `PATCH` with a merge, strategic merge or JSON patch, or server-side apply.
    pub fn patch(
        &mut self,
        update: &Update<'_>,
        patch_type: PatchType,
        body: Value,
    ) -> Result<(bool, Value), ApiError> {
        let (rt, key) = (update.rt, update.key);
        if patch_type == PatchType::Apply {
            return self.apply(update, body);
        }
        let existing = self.existing(rt, key)?;
        let candidate = match patch_type {
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                let mut candidate = existing.clone();
                patch::merge_patch(&mut candidate, &body);
                candidate
            }
            PatchType::Strategic => {
                if rt.custom {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json (not supported for custom resources)",
                    ));
                }
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                let mut candidate = existing.clone();
                patch::strategic_merge(&mut candidate, &body);
                candidate
            }
            PatchType::Json | PatchType::Apply => {
                patch::json_patch(&existing, &body).map_err(|e| {
                    ApiError::new(Reason::Invalid, format!("the JSON patch failed: {e}"))
                })?
            }
        };
        self.finish_update(update, &existing, candidate, Ownership::Update)
            .map(|v| (false, v))
    }

    /// Server-side apply: creates the object if it is missing, else merges the applied
    /// configuration over it. `true` when it created.
    fn apply(&mut self, update: &Update<'_>, applied: Value) -> Result<(bool, Value), ApiError> {
        let rt = update.rt;
        let Some(manager) = update
            .options
            .field_manager
            .as_deref()
            .filter(|m| !m.is_empty())
        else {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
            ));
        };
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "an applied configuration must be an object",
            ));
        }
        check_type(rt, update.version, &applied)?;
        if applied.get("apiVersion").is_none() || applied.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        match meta_str(&applied, "name") {
            Some(name) if name == update.key.name => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    other.unwrap_or(""),
                    update.key.name
                )));
            }
        }
        if rt.namespaced
            && let Some(ns) = meta_str(&applied, "namespace")
            && ns != update.key.namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the \
                 request",
            ));
        }
        let api_version = rt.api_version(update.version);
        let writer = Writer {
            manager,
            api_version: &api_version,
            subresource: update.subresource,
            now: update.now,
        };
        let scope = scope(rt, update.subresource);
        let Some(existing) = self.objects.get(update.key).cloned() else {
            if update.subresource.is_some() {
                return Err(ApiError::not_found(&rt.group, &rt.plural, &update.key.name));
            }
            let mut object = self.prepare_create(
                rt,
                update.version,
                &update.key.namespace,
                applied.clone(),
                update.now,
            )?;
            let plan = fields::plan_apply(&Value::Null, &applied, writer, scope, true)
                .map_err(|conflicts| apply_conflict(&conflicts))?;
            fields::set_entries(&mut object, &plan.entries);
            return self
                .finish_create(rt, object, update.options)
                .map(|v| (true, v));
        };
        let plan = fields::plan_apply(&existing, &applied, writer, scope, update.options.force)
            .map_err(|conflicts| apply_conflict(&conflicts))?;
        let mut candidate = existing.clone();
        for path in &plan.remove {
            fields::remove_at(&mut candidate, path);
        }
        let mut overlay = applied;
        if let Some(map) = overlay.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        patch::deep_merge(&mut candidate, &overlay);
        fields::set_entries(&mut candidate, &plan.entries);
        self.finish_update(update, &existing, candidate, Ownership::Recorded)
            .map(|v| (false, v))
    }

    /// The shared tail of every update: server-owned fields kept, status or the rest
    /// kept by subresource, optimistic concurrency, generation, ownership, no-op
    /// detection, finalization.
    fn finish_update(
        &mut self,
        update: &Update<'_>,
        existing: &Value,
        mut candidate: Value,
        ownership: Ownership,
    ) -> Result<Value, ApiError> {
        let rt = update.rt;
        if !candidate.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if let Some(rv) = meta_str(&candidate, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != object::resource_version(existing)
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &update.key.name));
        }
        let status_write = update.subresource == Some("status");
        if status_write {
            let status = candidate.get("status").cloned();
            let managed = candidate.pointer("/metadata/managedFields").cloned();
            candidate = existing.clone();
            match (status, candidate.as_object_mut()) {
                (Some(status), Some(map)) => {
                    map.insert("status".to_owned(), status);
                }
                (None, Some(map)) => {
                    map.remove("status");
                }
                _ => {}
            }
            if let (Ownership::Recorded, Some(managed)) = (ownership, managed) {
                set_meta(&mut candidate, "managedFields", managed);
            }
        } else if rt.status_subresource {
            match (existing.get("status").cloned(), candidate.as_object_mut()) {
                (Some(status), Some(map)) => {
                    map.insert("status".to_owned(), status);
                }
                (None, Some(map)) => {
                    map.remove("status");
                }
                _ => {}
            }
        }
        candidate["apiVersion"] = existing
            .get("apiVersion")
            .cloned()
            .unwrap_or_else(|| json!(rt.api_version(update.version)));
        candidate["kind"] = json!(rt.kind);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ] {
            match existing.get("metadata").and_then(|m| m.get(field)) {
                Some(value) => set_meta(&mut candidate, field, value.clone()),
                None => remove_meta(&mut candidate, field),
            }
        }
        if is_deleting(existing) {
            // Finalizers may only be removed from an object being deleted.
            let before = finalizers(existing);
            if finalizers(&candidate).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &update.key.name,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if spec_of(&candidate) != spec_of(existing) {
            let generation = existing
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            set_meta(&mut candidate, "generation", json!(generation + 1));
        }
        if ownership == Ownership::Update {
            let api_version = rt.api_version(update.version);
            let writer = writer(update.options, &api_version, update.subresource, update.now);
            fields::record_update(
                existing,
                &mut candidate,
                writer,
                scope(rt, update.subresource),
            );
        }
        crate::defaults::on_update(rt, existing, &mut candidate);
        crate::defaults::check_immutable(rt, existing, &candidate)?;
        if without_times(&candidate) == without_times(existing) {
            return Ok(existing.clone());
        }
        if update.options.dry_run {
            return Ok(candidate);
        }
        if is_deleting(&candidate) && finalizers(&candidate).is_empty() {
            return Ok(self.remove_cascading(update.key).unwrap_or(candidate));
        }
        Ok(self.put(update.key.clone(), candidate))
    }

    /// The `autoscaling/v1` Scale of an object whose type has a scale subresource.
    pub fn scale(&self, rt: &ResourceType, key: &ObjectKey) -> Result<Value, ApiError> {
        let object = self.existing(rt, key)?;
        to_scale(rt, &object).ok_or_else(ApiError::no_such_path)
    }

    /// `PUT` or `PATCH` of `/scale`: sets the desired replicas.
    pub fn write_scale(
        &mut self,
        update: &Update<'_>,
        patch_type: Option<PatchType>,
        body: Value,
    ) -> Result<Value, ApiError> {
        let (rt, key) = (update.rt, update.key);
        let paths = rt.scale.clone().ok_or_else(ApiError::no_such_path)?;
        let existing = self.existing(rt, key)?;
        let current = to_scale(rt, &existing).ok_or_else(ApiError::no_such_path)?;
        let wanted = match patch_type {
            None => body,
            Some(PatchType::Merge) => {
                let mut wanted = current;
                patch::merge_patch(&mut wanted, &body);
                wanted
            }
            Some(PatchType::Strategic) => {
                let mut wanted = current;
                patch::strategic_merge(&mut wanted, &body);
                wanted
            }
            Some(PatchType::Json) => patch::json_patch(&current, &body).map_err(|e| {
                ApiError::new(Reason::Invalid, format!("the JSON patch failed: {e}"))
            })?,
            Some(PatchType::Apply) => {
                return Err(ApiError::bad_request(
                    "server-side apply of the scale subresource is not simulated",
                ));
            }
        };
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|r| *r >= 0)
            .ok_or_else(|| {
                ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    &key.name,
                    "spec.replicas",
                    "Invalid value: must be a non-negative integer",
                )
            })?;
        if let Some(rv) = meta_str(&wanted, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != object::resource_version(&existing)
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &key.name));
        }
        let segments: Vec<&str> = paths
            .spec_replicas
            .trim_start_matches('/')
            .split('/')
            .collect();
        let mut candidate = existing.clone();
        object::set_path(&mut candidate, &segments, json!(replicas));
        let whole = Update {
            subresource: None,
            ..*update
        };
        let updated = self.finish_update(&whole, &existing, candidate, Ownership::Update)?;
        to_scale(rt, &updated).ok_or_else(ApiError::no_such_path)
    }

    /// `DELETE`: removes the object, or marks it when it has finalizers.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        key: &ObjectKey,
        options: &Value,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Deleted, ApiError> {
        let existing = self.existing(rt, key)?;
        let preconditions = options.get("preconditions");
        let expect = |field: &str| {
            preconditions
                .and_then(|p| p.get(field))
                .and_then(Value::as_str)
        };
        if let Some(rv) = expect("resourceVersion")
            && rv != object::resource_version(&existing)
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &key.name));
        }
        if let Some(uid) = expect("uid")
            && uid != object::uid(&existing)
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &key.name));
        }
        if !finalizers(&existing).is_empty() {
            if is_deleting(&existing) {
                return Ok(Deleted::Marked(existing));
            }
            let mut marked = existing;
            set_meta(
                &mut marked,
                "deletionTimestamp",
                json!(fields::timestamp(now)),
            );
            set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
            if dry_run {
                return Ok(Deleted::Marked(marked));
            }
            return Ok(Deleted::Marked(self.put(key.clone(), marked)));
        }
        if dry_run {
            return Ok(Deleted::Gone(existing));
        }
        Ok(Deleted::Gone(
            self.remove_cascading(key).unwrap_or(existing),
        ))
    }

    /// The objects of a collection request, in key order.
    pub fn list(&self, target: &Target, selectors: &Selectors) -> Vec<Value> {
        self.of_resource(&target.resource.group, &target.resource.plural)
            .filter(|(k, o)| target.contains(k) && selectors.matches(o))
            .map(|(_, o)| target.present(o))
            .collect()
    }

    /// Evicts a pod, unless a disruption budget forbids it.
    pub fn evict(
        &mut self,
        pods: &ResourceType,
        namespace: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let key = ObjectKey::new(pods, namespace, name);
        let pod = self.existing(pods, &key)?;
        crate::disruption::check_eviction(self, &pod)?;
        self.delete(pods, &key, &Value::Null, false, now)?;
        Ok(())
    }

    /// Starts a watch of `target` from `resource_version` (see the module docs of
    /// `watch` for the semantics).
    pub fn watch(
        &self,
        target: &Target,
        selectors: &Selectors,
        resource_version: Option<&str>,
        send_initial_events: bool,
    ) -> Result<WatchStart, ApiError> {
        let receiver = self.changes.subscribe();
        let from = resource_version.filter(|rv| !rv.is_empty() && *rv != "0");
        let mut initial = Vec::new();
        let mut expired = None;
        match from {
            None => {
                for object in self.list(target, selectors) {
                    initial.push((EventType::Added.as_str().to_owned(), object));
                }
            }
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?;
                if send_initial_events {
                    for object in self.list(target, selectors) {
                        initial.push((EventType::Added.as_str().to_owned(), object));
                    }
                } else if rv < self.log_floor {
                    expired = Some(ApiError::new(
                        Reason::Expired,
                        format!("too old resource version: {rv} ({})", self.log_floor + 1),
                    ));
                } else {
                    for (_, change) in self.log.iter().filter(|(_, c)| c.revision > rv) {
                        if let Some(event) = crate::watch::event_for(target, selectors, change) {
                            initial.push(event);
                        }
                    }
                }
            }
        }
        if send_initial_events {
            initial.push((
                "BOOKMARK".to_owned(),
                json!({
                    "kind": target.resource.kind,
                    "apiVersion": target.api_version(),
                    "metadata": {
                        "resourceVersion": self.revision.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }),
            ));
        }
        Ok(WatchStart {
            initial,
            receiver,
            expired,
        })
    }
}

/// One write to one object: its type, the version it is written in, where it is, the
/// subresource (`status`), how, and when.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    pub rt: &'a ResourceType,
    pub version: &'a str,
    pub key: &'a ObjectKey,
    pub subresource: Option<&'a str>,
    pub options: &'a WriteOptions,
    pub now: DateTime<Utc>,
}

/// Whether `finish_update` still has to record field ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Update,
    /// Apply has already set `managedFields`.
    Recorded,
}

fn writer<'a>(
    options: &'a WriteOptions,
    api_version: &'a str,
    subresource: Option<&'a str>,
    now: DateTime<Utc>,
) -> Writer<'a> {
    Writer {
        manager: options.manager(),
        api_version,
        subresource,
        now,
    }
}

fn main_scope(rt: &ResourceType) -> Scope {
    if rt.status_subresource {
        Scope::WithoutStatus
    } else {
        Scope::Whole
    }
}

fn scope(rt: &ResourceType, subresource: Option<&str>) -> Scope {
    if subresource == Some("status") {
        Scope::Status
    } else {
        main_scope(rt)
    }
}

/// A body's `apiVersion` and `kind`, when given, must be those of the URL.
fn check_type(rt: &ResourceType, version: &str, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str) {
        let (group, v) = split_api_version(api_version);
        if group != rt.group || !rt.serves(v) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API \
                 version ({})",
                rt.api_version(version)
            )));
        }
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

/// What `generation` counts changes of: everything but `metadata` and `status`.
fn spec_of(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
    }
    out
}

/// The object without what changes on every write (times in `managedFields`), to find
/// no-op writes.
fn without_times(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(entries) = out
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for entry in entries {
            if let Some(map) = entry.as_object_mut() {
                map.remove("time");
            }
        }
    }
    if let Some(map) = out.as_object_mut() {
        map.remove("apiVersion");
    }
    out
}

/// The `autoscaling/v1` Scale of `object`, if its type has one.
fn to_scale(rt: &ResourceType, object: &Value) -> Option<Value> {
    let paths = rt.scale.as_ref()?;
    let selector = match &paths.label_selector {
        Some(pointer) => object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        None => object
            .pointer("/spec/selector")
            .and_then(LabelSelector::from_object)
            .map(|s| s.to_query())
            .unwrap_or_default(),
    };
    let meta = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut metadata = json!({
        "name": meta("name"),
        "uid": meta("uid"),
        "resourceVersion": meta("resourceVersion"),
        "creationTimestamp": meta("creationTimestamp"),
    });
    if rt.namespaced {
        metadata["namespace"] = meta("namespace");
    }
    Some(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer(&paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": object.pointer(&paths.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    }))
}

fn apply_conflict(conflicts: &[fields::Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                "field": fields::dotted(&c.path),
            })
        })
        .collect();
    ApiError {
        reason: Reason::Conflict,
        message: fields::conflict_message(conflicts),
        details: Some(json!({"causes": causes})),
    }
}

/// Checks a new object's name as the real API server does: a DNS-1123 label for
/// namespaces and services, a path segment for RBAC objects and custom resources, a
/// DNS-1123 subdomain for everything else. The reasons are the API server's own.
fn check_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let invalid = |reason: String| {
        Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            "metadata.name",
            &format!("Invalid value: {name:?}: {reason}"),
        ))
    };
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| alnum(c) || c == '-')
            && l.starts_with(alnum)
            && l.ends_with(alnum)
    };
    if rt.custom || rt.group == "rbac.authorization.k8s.io" {
        for bad in [".", ".."] {
            if name == bad {
                return invalid(format!("may not be '{bad}'"));
            }
        }
        for bad in ['/', '%'] {
            if name.contains(bad) {
                return invalid(format!("may not contain '{bad}'"));
            }
        }
        return Ok(());
    }
    let dns_label = rt.group.is_empty() && matches!(rt.plural.as_str(), "namespaces" | "services");
    if dns_label {
        if name.len() > 63 {
            return invalid("must be no more than 63 characters".to_owned());
        }
        if !label_ok(name) {
            return invalid(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
                 or '-', and must start and end with an alphanumeric character (e.g. 'my-name', \
                 or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                    .to_owned(),
            );
        }
        return Ok(());
    }
    if name.len() > 253 {
        return invalid("must be no more than 253 characters".to_owned());
    }
    if !name.split('.').all(label_ok) {
        return invalid(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn rt(catalog: &Catalog, group: &str, plural: &str) -> ResourceType {
        catalog.by_resource(group, "v1", plural).unwrap().clone()
    }

    fn cm(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            field_manager: Some(manager.to_owned()),
            ..WriteOptions::default()
        }
    }

    #[test]
    fn create_sets_server_fields_and_refuses_duplicates() {
        let mut state = State::new();
        let catalog = state.catalog();
        let ns = rt(&catalog, "", "namespaces");
        let cms = rt(&catalog, "", "configmaps");
        let now = Utc::now();
        state
            .create(
                &ns,
                "v1",
                "",
                json!({"metadata": {"name": "a"}}),
                &opts("t"),
                now,
            )
            .unwrap();
        let created = state
            .create(&cms, "v1", "a", cm("c", json!({"k": "v"})), &opts("t"), now)
            .unwrap();
        assert_eq!(created["metadata"]["namespace"], "a");
        assert_eq!(created["metadata"]["resourceVersion"], "2");
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(created["metadata"]["uid"].as_str().unwrap().len() >= 32);
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "t");
        let again = state
            .create(&cms, "v1", "a", cm("c", json!({})), &opts("t"), now)
            .unwrap_err();
        assert_eq!(again.code(), 409);
        assert_eq!(again.reason, Reason::AlreadyExists);
        let missing_ns = state
            .create(&cms, "v1", "nope", cm("c", json!({})), &opts("t"), now)
            .unwrap_err();
        assert_eq!(missing_ns.message, "namespaces \"nope\" not found");
        let generated = state
            .create(
                &cms,
                "v1",
                "a",
                json!({"metadata": {"generateName": "x-"}}),
                &opts("t"),
                now,
            )
            .unwrap();
        assert!(object::name(&generated).starts_with("x-"));
        assert_eq!(object::name(&generated).len(), 7);
    }

    #[test]
    fn watches_from_revisions_older_than_the_log_are_expired() {
        let mut state = State::new();
        state.log_floor = 5;
        let catalog = state.catalog();
        let target = Target::new(rt(&catalog, "", "configmaps"), "v1", None);
        let start = state
            .watch(&target, &Selectors::default(), Some("3"), false)
            .unwrap();
        assert_eq!(start.expired.unwrap().code(), 410);
        let start = state
            .watch(&target, &Selectors::default(), Some("5"), false)
            .unwrap();
        assert!(start.expired.is_none());
    }

    #[test]
    fn the_log_keeps_five_minutes_of_changes() {
        let mut state = State::new();
        let catalog = state.catalog();
        let (ns, cms) = (
            rt(&catalog, "", "namespaces"),
            rt(&catalog, "", "configmaps"),
        );
        let target = Target::new(cms.clone(), "v1", None);
        let now = Utc::now();
        state
            .create(
                &ns,
                "v1",
                "",
                json!({"metadata": {"name": "a"}}),
                &opts("t"),
                now,
            )
            .unwrap();
        let first = state
            .create(&cms, "v1", "a", cm("c", json!({})), &opts("t"), now)
            .unwrap();
        let rv = object::meta_str(&first, "resourceVersion")
            .unwrap()
            .to_owned();
        let replay = |state: &State| {
            state
                .watch(&target, &Selectors::default(), Some("1"), false)
                .unwrap()
        };
        // Within the retention a watch from an older revision gets what followed.
        state.compact_log(Instant::now() + LOG_RETENTION / 2);
        let start = replay(&state);
        assert!(start.expired.is_none());
        assert_eq!(start.initial.len(), 1, "the configmap's creation");
        // Past it the history is gone: such a watch must list again.
        state.compact_log(Instant::now() + LOG_RETENTION);
        assert_eq!(replay(&state).expired.unwrap().code(), 410);
        let latest = state
            .watch(&target, &Selectors::default(), Some(&rv), false)
            .unwrap();
        assert!(latest.expired.is_none(), "a watch from now on still starts");
    }
}

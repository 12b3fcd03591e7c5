//! Field ownership for server-side apply: which manager set which fields
//! (`metadata.managedFields`), conflicts between managers, and the fields an applier
//! stopped applying.
//!
//! Simplified from the real structured-merge-diff: a field is a path of object keys down
//! to a leaf (a scalar, a list or an empty object). Lists are atomic: whoever set a list
//! owns all of it, there is no merging of list items by key.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// Keys of an object path, outermost first.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything the server does not own.
    Whole,
    /// Everything but `status` (the object of a type with a status subresource).
    WithoutStatus,
    /// Only `status` (writes to the `/status` subresource).
    Status,
}

/// Fields only the server sets.
const SERVER_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn in_scope(path: &[String], scope: Scope) -> bool {
    match path {
        [] => false,
        [top, ..] if top == "apiVersion" || top == "kind" => false,
        [top, field, ..] if top == "metadata" && SERVER_FIELDS.contains(&field.as_str()) => false,
        [top, ..] if top == "status" => scope != Scope::WithoutStatus,
        _ => scope != Scope::Status,
    }
}

fn collect(value: &Value, path: &mut FieldPath, scope: Scope, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                collect(v, path, scope, out);
                path.pop();
            }
        }
        _ => {
            if in_scope(path, scope) {
                out.insert(path.clone());
            }
        }
    }
}

/// The leaf fields of `object` in `scope`.
pub fn leaves(object: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    collect(object, &mut Vec::new(), scope, &mut out);
    out
}

/// The value at `path`, if there is one.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// Removes the field at `path`, if it is there.
pub fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for k in parents {
        match current.get_mut(k) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Value::Object(map) = current {
        map.remove(last);
    }
}

/// One path lies within the other (or they are the same).
pub fn overlap(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.spec.replicas`, as conflicts name fields.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// The `fieldsV1` form of a set: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for k in path {
            let entry = node
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(next) => node = next,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// The set a `fieldsV1` value describes. Keys other than `f:` ones (list items, `.`) make
/// their parent a leaf.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let children: Vec<(&str, &Value)> = value
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("f:")?, v)))
                    .collect()
            })
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, v) in children {
            path.push(k.to_owned());
            walk(v, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if let Some(sub) = &self.subresource {
            entry["subresource"] = json!(sub);
        }
        entry
    }
}

/// The entries of an object's `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<ManagedEntry> {
    let Some(list) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    list.iter()
        .map(|e| ManagedEntry {
            manager: text(e, "manager"),
            operation: text(e, "operation"),
            api_version: text(e, "apiVersion"),
            time: text(e, "time"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_owned),
            fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

/// Writes `entries` (those that own something) to `object`'s `metadata.managedFields`.
pub fn set_entries(object: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(ManagedEntry::to_json)
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

pub fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Who writes, for bookkeeping.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// The `apiVersion` the write used.
    pub api_version: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Records an update (create, replace, patch) of `old` (`Null` for a create) into `new`
/// by `writer`: the fields it changed become its own and nobody else's; removed fields
/// are nobody's.
pub fn record_update(old: &Value, new: &mut Value, writer: Writer<'_>, scope: Scope) {
    let mut entries = entries(old);
    let changed: FieldSet = leaves(new, scope)
        .into_iter()
        .filter(|p| value_at(old, p) != value_at(new, p))
        .collect();
    let removed: FieldSet = leaves(old, scope)
        .into_iter()
        .filter(|p| value_at(new, p).is_none())
        .collect();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, &entries);
        return;
    }
    for entry in &mut entries {
        entry.fields.retain(|owned| {
            !removed.iter().any(|r| overlap(r, owned)) && !changed.iter().any(|c| overlap(c, owned))
        });
    }
    let position = entries
        .iter()
        .position(|e| e.is(writer.manager, "Update", writer.subresource));
    let entry = match position {
        Some(i) => &mut entries[i],
        None => {
            entries.push(ManagedEntry {
                manager: writer.manager.to_owned(),
                operation: "Update".to_owned(),
                api_version: writer.api_version.to_owned(),
                time: String::new(),
                subresource: writer.subresource.map(str::to_owned),
                fields: FieldSet::new(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    entry.fields.extend(changed);
    entry.api_version = writer.api_version.to_owned();
    entry.time = timestamp(writer.now);
    set_entries(new, &entries);
}

/// A field another manager owns with a different value than the applier wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: FieldPath,
}

/// The outcome of an apply, once conflicts are settled.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyPlan {
    /// Fields the applier applied before, no longer applies, and nobody else owns.
    pub remove: Vec<FieldPath>,
    pub entries: Vec<ManagedEntry>,
}

/// Works out an apply of `applied` (the applier's configuration) over `existing`
/// (`Null` if there is no object yet) by `writer`. Without `force`, fields other managers
/// own with other values are conflicts; with it they change hands.
pub fn plan_apply(
    existing: &Value,
    applied: &Value,
    writer: Writer<'_>,
    scope: Scope,
    force: bool,
) -> Result<ApplyPlan, Vec<Conflict>> {
    let mut entries = entries(existing);
    let applied_set = leaves(applied, scope);
    let mut conflicts = Vec::new();
    for entry in entries.iter().filter(|e| e.manager != writer.manager) {
        for path in &applied_set {
            if entry.fields.iter().any(|owned| overlap(owned, path))
                && value_at(existing, path) != value_at(applied, path)
            {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    path: path.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for entry in entries.iter_mut().filter(|e| e.manager != writer.manager) {
        entry.fields.retain(|owned| {
            !conflicts
                .iter()
                .any(|c| c.manager == entry.manager && overlap(&c.path, owned))
        });
    }
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.is(writer.manager, "Apply", writer.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let remove: Vec<FieldPath> = previous
        .into_iter()
        .filter(|p| !applied_set.iter().any(|a| overlap(a, p)))
        .filter(|p| {
            !entries
                .iter()
                .filter(|e| !e.is(writer.manager, "Apply", writer.subresource))
                .any(|e| e.fields.iter().any(|owned| overlap(owned, p)))
        })
        .collect();
    entries.retain(|e| !e.is(writer.manager, "Apply", writer.subresource));
    entries.push(ManagedEntry {
        manager: writer.manager.to_owned(),
        operation: "Apply".to_owned(),
        api_version: writer.api_version.to_owned(),
        time: timestamp(writer.now),
        subresource: writer.subresource.map(str::to_owned),
        fields: applied_set,
    });
    Ok(ApplyPlan { remove, entries })
}

/// `Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "" } else { "s" };
    let details: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager,
                c.api_version,
                dotted(&c.path)
            )
        })
        .collect();
    format!(
        "Apply failed with {n} conflict{plural}: {}",
        details.join("\n")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn path(p: &str) -> FieldPath {
        p.split('.').map(str::to_owned).collect()
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: None,
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn leaves_leave_out_server_fields_and_respect_the_scope() {
        let obj = json!({"apiVersion": "v1", "kind": "X",
                         "metadata": {"name": "a", "resourceVersion": "3", "labels": {"k": "v"}},
                         "spec": {"list": [1], "empty": {}}, "status": {"phase": "Running"}});
        let whole: Vec<FieldPath> = leaves(&obj, Scope::Whole).into_iter().collect();
        assert_eq!(
            whole,
            [
                path("metadata.labels.k"),
                path("spec.empty"),
                path("spec.list"),
                path("status.phase")
            ]
        );
        assert!(!leaves(&obj, Scope::WithoutStatus).contains(&path("status.phase")));
        assert_eq!(leaves(&obj, Scope::Status).len(), 1);
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: FieldSet = [path("data.a"), path("metadata.labels.app"), path("data.b")].into();
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn updates_take_over_the_fields_they_change() {
        let mut old = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        record_update(&Value::Null, &mut old, writer("creator"), Scope::Whole);
        let mut new = json!({"metadata": {"name": "c", "managedFields": old["metadata"]["managedFields"]},
                             "data": {"a": "9", "b": "2"}});
        record_update(&old, &mut new, writer("editor"), Scope::Whole);
        let e = entries(&new);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].manager, "creator");
        assert_eq!(e[0].fields, [path("data.b")].into());
        assert_eq!(e[1].manager, "editor");
        assert_eq!(e[1].operation, "Update");
        assert_eq!(e[1].fields, [path("data.a")].into());
    }

    #[test]
    fn apply_conflicts_with_other_owners_unless_forced() {
        let mut existing = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        record_update(&Value::Null, &mut existing, writer("creator"), Scope::Whole);
        let applied = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "3"}});
        let conflicts =
            plan_apply(&existing, &applied, writer("ssa"), Scope::Whole, false).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].path, path("data.b"));
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"creator\" using v1: .data.b"
        );
        let plan = plan_apply(&existing, &applied, writer("ssa"), Scope::Whole, true).unwrap();
        assert_eq!(
            plan.entries[0].fields,
            [path("data.a")].into(),
            "a is shared, b moved"
        );
        assert_eq!(
            plan.entries[1].fields,
            [path("data.a"), path("data.b")].into()
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
        let existing = json!({"metadata": {"name": "c", "managedFields": [
            {"manager": "ssa", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}}},
            {"manager": "other", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:c": {}}}},
        ]}, "data": {"a": "1", "b": "2", "c": "3"}});
        let applied = json!({"data": {"a": "1"}});
        let plan = plan_apply(&existing, &applied, writer("ssa"), Scope::Whole, false).unwrap();
        assert_eq!(plan.remove, [path("data.b")]);
    }

    #[test]
    fn remove_at_removes_nested_fields() {
        let mut v = json!({"a": {"b": 1, "c": 2}});
        remove_at(&mut v, &path("a.b"));
        remove_at(&mut v, &path("x.y"));
        assert_eq!(v, json!({"a": {"c": 2}}));
    }
}

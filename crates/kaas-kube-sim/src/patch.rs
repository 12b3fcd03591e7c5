//! The patch formats of `PATCH`: JSON merge patch (RFC 7386), strategic merge patch
//! (simplified to a merge patch) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// How the body of a `PATCH` is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`: see [`strategic_merge`].
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The merge key of the items of a list field, as the built-in types' `patchMergeKey`
/// tags say it (by field name: the simulation has no schemas).
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// Primitive lists whose patch strategy is `merge` (the others are replaced).
const MERGED_PRIMITIVE_LISTS: &[&str] = &["finalizers"];

fn directive(item: &Value) -> Option<&str> {
    item.get("$patch").and_then(Value::as_str)
}

fn stripped(value: &Value) -> Value {
    let mut value = value.clone();
    strip_directives(&mut value);
    value
}

fn merge_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) {
    if patch.iter().any(|p| directive(p) == Some("replace")) {
        *target = patch
            .iter()
            .filter(|p| directive(p).is_none())
            .map(stripped)
            .collect();
        return;
    }
    if patch.iter().all(|p| !p.is_object()) {
        if MERGED_PRIMITIVE_LISTS.contains(&field) {
            for p in patch {
                if !target.contains(p) {
                    target.push(p.clone());
                }
            }
        } else {
            *target = patch.to_vec();
        }
        return;
    }
    let Some(key) = merge_key(field, patch) else {
        *target = patch
            .iter()
            .filter(|p| directive(p) != Some("delete"))
            .map(stripped)
            .collect();
        return;
    };
    for p in patch {
        let position = p
            .get(key)
            .and_then(|k| target.iter().position(|t| t.get(key) == Some(k)));
        match (directive(p), position) {
            (Some("delete"), Some(i)) => {
                target.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_merge(&mut target[i], p),
            (_, None) => target.push(stripped(p)),
        }
    }
}

/// A strategic merge patch, as far as it can be done without the built-in types'
/// schemas: maps merge as in a merge patch; lists of objects merge by the merge key their
/// field name implies (`containers` by `name`, `volumeMounts` by `mountPath`, …) and
/// other lists are replaced; `finalizers` merge as a set; the `$patch` (`replace`,
/// `delete`), `$retainKeys` and `$deleteFromPrimitiveList/…` directives are honoured and
/// `$setElementOrder/…` is ignored (merged items keep their place, new ones go last).
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if directive(patch) == Some("replace") {
        *target = stripped(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") else {
            continue;
        };
        if let (Some(Value::Array(list)), Some(remove)) =
            (target_map.get_mut(field), value.as_array())
        {
            list.retain(|item| !remove.contains(item));
        }
    }
    for (key, value) in patch_map.iter().filter(|(k, _)| !k.starts_with('$')) {
        if value.is_null() || directive(value) == Some("delete") {
            target_map.remove(key);
            continue;
        }
        match (target_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                strategic_merge(existing, value)
            }
            (Some(Value::Array(existing)), Value::Array(items)) => merge_list(key, existing, items),
            _ => {
                let mut fresh = Value::Null;
                if let Value::Array(items) = value {
                    let mut list = Vec::new();
                    merge_list(key, &mut list, items);
                    fresh = Value::Array(list);
                } else {
                    strategic_merge(&mut fresh, value);
                }
                target_map.insert(key.clone(), fresh);
            }
        }
    }
    if let Some(retain) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        target_map.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

/// Drops strategic-merge-patch directives (`$patch`, `$setElementOrder/…`,
/// `$retainKeys`, `$deleteFromPrimitiveList/…`) so the rest can be merged.
pub fn strip_directives(patch: &mut Value) {
    match patch {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => {
            items.retain(|item| {
                item.as_object()
                    .is_none_or(|m| !(m.len() == 1 && m.contains_key("$patch")))
            });
            items.iter_mut().for_each(strip_directives);
        }
        _ => {}
    }
}

/// Merges `overlay` over `base`: objects recursively, everything else replaced (lists
/// included); `null` in `overlay` removes. What server-side apply here does.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    merge_patch(base, overlay);
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The tokens of a JSON pointer.
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {pointer:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_and_last<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = tokens(path)?;
    let last = tokens
        .pop()
        .ok_or_else(|| "the whole document cannot be the target".to_owned())?;
    let mut current = doc;
    for t in &tokens {
        current = match current {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {path:?} does not exist"))?;
    }
    Ok((current, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let index = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("index {last:?} is out of range in {path:?}"))?
            };
            a.insert(index, value);
            Ok(())
        }
        _ => Err(format!("path {path:?} does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    }
    .ok_or_else(|| format!("unable to remove nonexistent key {path:?}"))
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, String> {
    let pointer = tokens(path)?
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect::<String>();
    doc.pointer(&pointer)
        .ok_or_else(|| format!("path {path:?} does not exist"))
}

/// RFC 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`, all or nothing.
pub fn json_patch(doc: &Value, operations: &Value) -> Result<Value, String> {
    let operations = operations
        .as_array()
        .ok_or_else(|| "a JSON patch must be a list of operations".to_owned())?;
    let mut doc = doc.clone();
    for op in operations {
        let field = |name: &str| -> Result<&str, String> {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {op} has no {name:?}"))
        };
        let value = || -> Result<Value, String> {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {op} has no \"value\""))
        };
        let path = field("path")?;
        match field("op")? {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut doc, field("from")?)?;
                add(&mut doc, path, moved)?;
            }
            "copy" => {
                let copied = get(&doc, field("from")?)?.clone();
                add(&mut doc, path, copied)?;
            }
            "test" => {
                if *get(&doc, path)? != value()? {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
        let mut scalar = json!({"a": 1});
        merge_patch(&mut scalar, &json!([1]));
        assert_eq!(scalar, json!([1]));
    }

    #[test]
    fn strategic_directives_are_dropped() {
        let mut patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}],
                                        "containers": [{"name": "a", "image": "x"}, {"$patch": "delete"}],
                                        "unschedulable": true}});
        strip_directives(&mut patch);
        assert_eq!(
            patch,
            json!({"spec": {"containers": [{"name": "a", "image": "x"}], "unschedulable": true}})
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "envoy"},
        ]}}}});
        strategic_merge(
            &mut deployment,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "web", "image": "nginx:1.28"}, {"name": "sidecar", "$patch": "delete"}, {"name": "new", "image": "x"}],
            }}}}),
        );
        assert_eq!(
            deployment,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.28", "ports": [{"containerPort": 80}]},
                {"name": "new", "image": "x"},
            ]}}}})
        );
    }

    #[test]
    fn strategic_merge_directives() {
        let mut obj = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
                             "spec": {"args": ["1", "2"], "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        strategic_merge(
            &mut obj,
            &json!({"metadata": {"finalizers": ["b"], "labels": {"y": null}},
                    "spec": {"args": ["3"], "$deleteFromPrimitiveList/args": ["1"],
                             "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}},
                   "spec": {"args": ["3"], "strategy": {"type": "Recreate"}}})
        );
        let mut replaced = json!({"data": {"a": "1"}});
        strategic_merge(
            &mut replaced,
            &json!({"data": {"$patch": "replace", "b": "2"}}),
        );
        assert_eq!(replaced, json!({"data": {"b": "2"}}));
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x/y": "1"}}});
        let patched = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
                {"op": "replace", "path": "/metadata/labels/x~1y", "value": "2"},
                {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
                {"op": "move", "from": "/metadata/annotations", "path": "/spec"},
            ]),
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"finalizers": ["b", "c"], "labels": {"x/y": "2"}}, "spec": {"x/y": "2"}})
        );
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "z"}])
            )
            .is_err()
        );
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn patch_types_from_content_types() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}

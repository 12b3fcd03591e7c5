//! Small accessors for objects kept as JSON.

use serde_json::{Map, Value, json};

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

pub fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

pub fn namespace(object: &Value) -> &str {
    meta_str(object, "namespace").unwrap_or("")
}

pub fn uid(object: &Value) -> &str {
    meta_str(object, "uid").unwrap_or("")
}

pub fn resource_version(object: &Value) -> &str {
    meta_str(object, "resourceVersion").unwrap_or("")
}

/// `metadata`, created if missing (and made an object if it is not one); `None` when
/// `object` is not an object (the store only holds objects).
pub fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

pub fn set_meta(object: &mut Value, field: &str, value: Value) {
    if let Some(meta) = metadata_mut(object) {
        meta.insert(field.to_owned(), value);
    }
}

pub fn remove_meta(object: &mut Value, field: &str) {
    if let Some(meta) = metadata_mut(object) {
        meta.remove(field);
    }
}

/// Sets the value at `path`, turning whatever is in the way into objects. Never panics,
/// whatever shape a client gave the object.
pub fn set_path(object: &mut Value, path: &[&str], value: Value) {
    let mut current = object;
    for key in path {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        current = match current {
            Value::Object(map) => map.entry((*key).to_owned()).or_insert(Value::Null),
            _ => return,
        };
    }
    *current = value;
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// The uids in `metadata.ownerReferences`.
pub fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The uid of the owner reference marked `controller: true`.
pub fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")?
        .as_str()
}

/// An owner reference to `owner` that marks it the controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The condition of `type` in `status.conditions`.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Whether the condition of `type` is `True`.
pub fn condition_true(object: &Value, kind: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// The characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random characters as in `web-7d4b9c8f5-x2x7k`.
pub fn random_suffix(n: usize) -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .cycle()
        .take(n)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A stable short hash of `value` in the suffix alphabet: the `pod-template-hash`.
pub fn short_hash(value: &Value) -> String {
    // FNV-1a over the JSON text: stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let base = ALPHABET.len() as u64;
    (0..10)
        .map(|_| {
            let c = ALPHABET[usize::try_from(hash % base).unwrap_or(0)];
            hash /= base;
            char::from(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_hashes_use_the_kubernetes_alphabet() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
        let h = short_hash(&json!({"a": 1}));
        assert_eq!(h.len(), 10);
        assert_eq!(h, short_hash(&json!({"a": 1})));
        assert_ne!(h, short_hash(&json!({"a": 2})));
    }

    #[test]
    fn set_path_makes_room() {
        let mut v = json!({"spec": "oops"});
        set_path(&mut v, &["spec", "template", "labels"], json!({"a": "b"}));
        assert_eq!(v, json!({"spec": {"template": {"labels": {"a": "b"}}}}));
    }

    #[test]
    fn metadata_is_created_when_missing() {
        let mut v = json!({"kind": "X"});
        set_meta(&mut v, "name", json!("a"));
        assert_eq!(name(&v), "a");
        let mut bad_metadata = json!({"metadata": 3});
        set_meta(&mut bad_metadata, "name", json!("b"));
        assert_eq!(name(&bad_metadata), "b");
    }
}

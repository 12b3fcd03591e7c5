//! What the real API server adds to objects of some kinds when they are written:
//! defaults, server-assigned fields, validation of CustomResourceDefinitions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::fields::timestamp;
use crate::object;
use crate::resources::ResourceType;
use crate::store::State;

fn is(rt: &ResourceType, group: &str, plural: &str) -> bool {
    rt.group == group && rt.plural == plural
}

/// Sets `object[field]` to `value` unless it is set.
fn default(object: &mut Value, pointer: &str, value: Value) {
    if object.pointer(pointer).is_some() {
        return;
    }
    let mut current = object;
    let segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    for segment in parents {
        let Some(map) = current.as_object_mut() else {
            return;
        };
        current = map
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = current.as_object_mut() {
        map.insert((*last).to_owned(), value);
    }
}

/// Defaults and server-assigned fields of a new object.
pub(crate) fn on_create(
    state: &mut State,
    rt: &ResourceType,
    object: &mut Value,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if is(rt, "", "namespaces") {
        let name = object::name(object).to_owned();
        if let Some(meta) = object::metadata_mut(object) {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
            }
        }
        object["status"] = json!({"phase": "Active"});
    } else if is(rt, "", "services") {
        default(object, "/spec/type", json!("ClusterIP"));
        let external = object.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
        let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        if !external && !headless && object.pointer("/spec/clusterIP").is_none() {
            let ip = state.next_ip("10.96");
            default(object, "/spec/clusterIP", json!(ip));
            default(object, "/spec/clusterIPs", json!([ip]));
        }
        object["status"] = json!({"loadBalancer": {}});
    } else if is(rt, "", "pods") {
        object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    } else if is(rt, "", "secrets") {
        default(object, "/type", json!("Opaque"));
        fold_string_data(object);
    } else if is(rt, "apps", "deployments") {
        default(object, "/spec/replicas", json!(1));
        default(object, "/spec/revisionHistoryLimit", json!(10));
        default(object, "/spec/progressDeadlineSeconds", json!(600));
        default(
            object,
            "/spec/strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        );
    } else if is(rt, "apps", "statefulsets") || is(rt, "apps", "replicasets") {
        default(object, "/spec/replicas", json!(1));
    } else if is(rt, "apps", "daemonsets") {
        default(
            object,
            "/spec/updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        );
    } else if is(rt, "storage.k8s.io", "storageclasses") {
        default(object, "/reclaimPolicy", json!("Delete"));
        default(object, "/volumeBindingMode", json!("Immediate"));
    } else if is(rt, "apiextensions.k8s.io", "customresourcedefinitions") {
        validate_crd(object)?;
        object["status"] = crd_status(object, now);
    }
    Ok(())
}

/// Fields the real API server refuses to change once an object exists (`field is
/// immutable`), by group and resource: JSON pointers into the object.
const IMMUTABLE: &[(&str, &str, &[&str])] = &[
    ("networking.k8s.io", "ingressclasses", &["/spec/controller"]),
    ("batch", "jobs", &["/spec/selector", "/spec/template"]),
    ("apps", "deployments", &["/spec/selector"]),
    ("apps", "daemonsets", &["/spec/selector"]),
    ("apps", "statefulsets", &["/spec/selector"]),
    ("apps", "replicasets", &["/spec/selector"]),
    (
        "storage.k8s.io",
        "storageclasses",
        &[
            "/provisioner",
            "/parameters",
            "/reclaimPolicy",
            "/volumeBindingMode",
        ],
    ),
];

/// Refuses an update that changes an immutable field, as the real server does (422
/// Invalid, naming the field).
pub(crate) fn check_immutable(
    rt: &ResourceType,
    existing: &Value,
    candidate: &Value,
) -> Result<(), ApiError> {
    let Some((_, _, pointers)) = IMMUTABLE
        .iter()
        .find(|(group, plural, _)| is(rt, group, plural))
    else {
        return Ok(());
    };
    for pointer in *pointers {
        let (before, after) = (existing.pointer(pointer), candidate.pointer(pointer));
        if before.is_some() && before != after {
            let field = pointer.trim_start_matches('/').replace('/', ".");
            let shown = after.map_or("null".to_owned(), |v| {
                let text = v.to_string();
                text.chars().take(200).collect()
            });
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                existing
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                &field,
                &format!("Invalid value: {shown}: field is immutable"),
            ));
        }
    }
    Ok(())
}

/// Rules of updates that defaults alone do not cover.
pub(crate) fn on_update(rt: &ResourceType, existing: &Value, candidate: &mut Value) {
    if is(rt, "", "secrets") {
        fold_string_data(candidate);
    } else if is(rt, "", "services") {
        // The cluster IP is immutable; a replacement that leaves it out keeps it.
        for field in ["clusterIP", "clusterIPs"] {
            if candidate.pointer(&format!("/spec/{field}")).is_none()
                && let Some(value) = existing.pointer(&format!("/spec/{field}"))
            {
                default(candidate, &format!("/spec/{field}"), value.clone());
            }
        }
    }
}

/// `stringData` goes into `data`, base64-encoded, as the real API server does.
fn fold_string_data(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            if let Some(s) = v.as_str() {
                data.insert(k, json!(STANDARD.encode(s)));
            }
        }
    }
}

fn invalid_crd(object: &Value, field: &str, reason: &str) -> ApiError {
    ApiError::invalid(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        object::name(object),
        field,
        reason,
    )
}

fn validate_crd(crd: &Value) -> Result<(), ApiError> {
    let text = |pointer: &str| crd.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    if group.is_empty() {
        return Err(invalid_crd(crd, "spec.group", "Required value"));
    }
    if plural.is_empty() {
        return Err(invalid_crd(crd, "spec.names.plural", "Required value"));
    }
    if text("/spec/names/kind").is_empty() {
        return Err(invalid_crd(crd, "spec.names.kind", "Required value"));
    }
    if !matches!(text("/spec/scope"), "Namespaced" | "Cluster") {
        return Err(invalid_crd(
            crd,
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let expected = format!("{plural}.{group}");
    if object::name(crd) != expected {
        return Err(invalid_crd(
            crd,
            "metadata.name",
            &format!(
                "Invalid value: \"{}\": must be spec.names.plural+\".\"+spec.group",
                object::name(crd)
            ),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid_crd(
            crd,
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        return Err(invalid_crd(
            crd,
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    Ok(())
}

/// A CRD is accepted and established at once.
fn crd_status(crd: &Value, now: DateTime<Utc>) -> Value {
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    default(&mut names, "/singular", json!(kind.to_lowercase()));
    default(&mut names, "/listKind", json!(format!("{kind}List")));
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let at = timestamp(now);
    let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "lastTransitionTime": at, "reason": reason, "message": message});
    json!({
        "acceptedNames": names,
        "storedVersions": storage,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut v = json!({"spec": {"replicas": 3}});
        default(&mut v, "/spec/replicas", json!(1));
        default(&mut v, "/spec/strategy/type", json!("Recreate"));
        assert_eq!(
            v,
            json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}})
        );
    }

    #[test]
    fn string_data_is_folded_into_data() {
        let mut secret = json!({"stringData": {"password": "hunter2"}, "data": {"a": "Yg=="}});
        fold_string_data(&mut secret);
        assert_eq!(
            secret,
            json!({"data": {"a": "Yg==", "password": "aHVudGVyMg=="}})
        );
    }

    #[test]
    fn crds_are_validated() {
        let good = json!({"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]}});
        validate_crd(&good).unwrap();
        let mut misnamed = good.clone();
        misnamed["metadata"]["name"] = json!("widget.example.com");
        assert_eq!(validate_crd(&misnamed).unwrap_err().code(), 422);
        let mut two_storage = good.clone();
        two_storage["spec"]["versions"] =
            json!([{"name": "v1", "storage": true}, {"name": "v2", "storage": true}]);
        assert_eq!(validate_crd(&two_storage).unwrap_err().code(), 422);
        let status = crd_status(&good, Utc::now());
        assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(status["storedVersions"], json!(["v1"]));
    }
}

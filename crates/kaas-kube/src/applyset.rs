//! The ApplySet conventions of KEP-3659 (what `kubectl apply --prune --applyset` uses):
//! the parent object, its id, and its labels and annotations. Pure; the I/O is in
//! `apply`.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// On the parent: the set's id.
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
/// On every member: the id of the set it belongs to.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// On the parent: the tool that manages the set.
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
/// On the parent: the members' group-kinds, `Kind.group`, sorted, comma-separated.
pub const CONTAINS_GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
/// On the parent: the namespaces other than its own that members are in.
pub const ADDITIONAL_NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
/// The tooling value kaas writes.
pub const TOOLING: &str = "kaas/v1";
/// Where kaas keeps its parent ConfigMaps.
pub const PARENT_NAMESPACE: &str = "kube-system";

/// The id of the set whose parent is the ConfigMap `name` in [`PARENT_NAMESPACE`]:
/// `applyset-` + base64url (no padding) of SHA-256 of `<name>.<namespace>.<Kind>.<group>`
/// + `-v1`, with the core group empty.
pub fn applyset_id(name: &str) -> String {
    id_of(name, PARENT_NAMESPACE, "ConfigMap", "")
}

fn id_of(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let key = format!("{name}.{namespace}.{kind}.{group}");
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(hash.as_ref()))
}

/// What the parent says about its members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contents {
    /// `Kind.group` (or `Kind` for the core group).
    pub(crate) group_kinds: BTreeSet<String>,
    /// Namespaces of members other than [`PARENT_NAMESPACE`].
    pub(crate) namespaces: BTreeSet<String>,
}

impl Contents {
    /// What an existing parent (a ConfigMap as JSON) records.
    pub(crate) fn of_parent(parent: &Value) -> Self {
        let list = |key: &str| {
            parent
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            group_kinds: list(CONTAINS_GROUP_KINDS_ANNOTATION),
            namespaces: list(ADDITIONAL_NAMESPACES_ANNOTATION),
        }
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        Self {
            group_kinds: self
                .group_kinds
                .union(&other.group_kinds)
                .cloned()
                .collect(),
            namespaces: self.namespaces.union(&other.namespaces).cloned().collect(),
        }
    }
}

/// The parent ConfigMap `name` recording `contents`, to server-side apply. An empty
/// namespace list is left out (the KEP reserves the empty value).
pub(crate) fn parent(name: &str, contents: &Contents) -> Value {
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    let mut annotations = json!({
        TOOLING_ANNOTATION: TOOLING,
        CONTAINS_GROUP_KINDS_ANNOTATION: join(&contents.group_kinds),
    });
    if !contents.namespaces.is_empty() {
        annotations[ADDITIONAL_NAMESPACES_ANNOTATION] = json!(join(&contents.namespaces));
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": PARENT_NAMESPACE,
            "labels": {ID_LABEL: applyset_id(name)},
            "annotations": annotations,
        },
    })
}

/// Why an existing object named like the parent cannot be taken as kaas's parent of
/// set `name`, if it cannot.
pub(crate) fn foreign_parent(name: &str, existing: &Value) -> Option<String> {
    let what = format!("ConfigMap {PARENT_NAMESPACE}/{name}");
    let id = existing
        .pointer("/metadata/labels")
        .and_then(|l| l.get(ID_LABEL))
        .and_then(Value::as_str);
    let tooling = existing
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TOOLING_ANNOTATION))
        .and_then(Value::as_str);
    match (id, tooling) {
        (None, _) => Some(format!("{what} exists and is not an apply set parent")),
        (Some(id), _) if id != applyset_id(name) => Some(format!(
            "{what} has apply set id {id}, not the {} its name gives",
            applyset_id(name)
        )),
        (Some(_), Some(tooling)) if !tooling.starts_with("kaas/") => Some(format!(
            "{what} is an apply set managed by {tooling}, not kaas"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_kep_hash_of_the_parent() {
        let id = id_of("prod", "default", "ConfigMap", "");
        assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
        // 32 bytes in base64 without padding: 43 characters.
        assert_eq!(id.len(), "applyset-".len() + 43 + "-v1".len());
        assert!(!id.contains('=') && !id.contains('+') && !id.contains('/'));
        assert_eq!(
            applyset_id("addons"),
            id_of("addons", "kube-system", "ConfigMap", "")
        );
        assert_ne!(applyset_id("addons"), applyset_id("addons2"));
    }

    #[test]
    fn the_parent_records_sorted_group_kinds_and_other_namespaces() {
        let contents = Contents {
            group_kinds: [
                "StorageClass.storage.k8s.io",
                "ConfigMap",
                "Deployment.apps",
            ]
            .map(str::to_owned)
            .into(),
            namespaces: BTreeSet::new(),
        };
        let parent = parent("addons", &contents);
        assert_eq!(
            parent["metadata"]["annotations"],
            json!({
                TOOLING_ANNOTATION: "kaas/v1",
                CONTAINS_GROUP_KINDS_ANNOTATION:
                    "ConfigMap,Deployment.apps,StorageClass.storage.k8s.io",
            })
        );
        assert_eq!(
            parent["metadata"]["labels"][ID_LABEL],
            json!(applyset_id("addons"))
        );
        assert_eq!(Contents::of_parent(&parent), contents);

        let wider = contents.union(&Contents {
            group_kinds: ["Namespace".to_owned()].into(),
            namespaces: ["monitoring".to_owned(), "default".to_owned()].into(),
        });
        let parent = super::parent("addons", &wider);
        assert_eq!(
            parent["metadata"]["annotations"][ADDITIONAL_NAMESPACES_ANNOTATION],
            "default,monitoring"
        );
        assert_eq!(Contents::of_parent(&parent), wider);
    }

    #[test]
    fn parents_of_others_are_refused() {
        let ours = parent("addons", &Contents::default());
        assert_eq!(foreign_parent("addons", &ours), None);
        let plain = json!({"metadata": {"name": "addons"}});
        assert_eq!(
            foreign_parent("addons", &plain).as_deref(),
            Some("ConfigMap kube-system/addons exists and is not an apply set parent")
        );
        let mut kubectl = ours.clone();
        kubectl["metadata"]["annotations"][TOOLING_ANNOTATION] = json!("kubectl/v1.35");
        assert!(foreign_parent("addons", &kubectl).is_some_and(|m| m.contains("kubectl/v1.35")));
        let mut other_id = ours;
        other_id["metadata"]["labels"][ID_LABEL] = json!("applyset-x-v1");
        assert!(foreign_parent("addons", &other_id).is_some());
    }
}

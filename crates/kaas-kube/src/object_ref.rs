//! [`ObjectRef`]: which object, as kaas records what it applied.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object reference as kaas records what it applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `v1`, `apps/v1`, `storage.k8s.io/v1`, …
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (and for namespaced ones given without a
    /// namespace, which then go to `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a manifest: its `apiVersion`, `kind`, `metadata.name` (all
    /// non-empty) and `metadata.namespace` (if non-empty).
    pub fn of(object: &Value) -> Option<ObjectRef> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(ObjectRef {
            api_version: text("/apiVersion")?,
            kind: text("/kind")?,
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name")?,
        })
    }

    /// The API group: empty for the core group.
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// `Kind.group`, or `Kind` for the core group, as ApplySets name group-kinds.
    pub fn group_kind(&self) -> String {
        group_kind(self.group(), &self.kind)
    }

    /// `namespace/name`, or `name` without a namespace.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// `Kind namespace/name` (`Kind name` when cluster-scoped): how kaas names an
    /// object to people, as `kaas_bootstrap::object_ref` names a rendered manifest.
    pub fn short(&self) -> String {
        format!("{} {}", self.kind, self.qualified_name())
    }
}

impl fmt::Display for ObjectRef {
    /// `apps/v1 Deployment kube-system/metrics-server`,
    /// `storage.k8s.io/v1 StorageClass csi-cinder-sc-delete`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.api_version,
            self.kind,
            self.qualified_name()
        )
    }
}

/// The group of an `apiVersion`: `apps` of `apps/v1`, empty of `v1`.
pub(crate) fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// `Kind.group`, or `Kind` for the core group.
pub(crate) fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn of_reads_the_type_and_the_name() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        });
        let reference = ObjectRef::of(&deployment).unwrap_or_else(|| panic!("no reference"));
        assert_eq!(
            reference.to_string(),
            "apps/v1 Deployment kube-system/metrics-server"
        );
        assert_eq!(reference.group_kind(), "Deployment.apps");
        let class = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "csi-cinder-sc-delete", "namespace": ""},
        });
        let reference = ObjectRef::of(&class).unwrap_or_else(|| panic!("no reference"));
        assert_eq!(
            reference.to_string(),
            "storage.k8s.io/v1 StorageClass csi-cinder-sc-delete"
        );
        assert_eq!(reference.group_kind(), "StorageClass.storage.k8s.io");
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        let reference = ObjectRef::of(&map).unwrap_or_else(|| panic!("no reference"));
        assert_eq!(reference.group_kind(), "ConfigMap");
        assert_eq!(reference.group(), "");
    }

    #[test]
    fn of_needs_api_version_kind_and_name() {
        assert_eq!(
            ObjectRef::of(&json!({"kind": "ConfigMap", "metadata": {"name": "x"}})),
            None
        );
        assert_eq!(
            ObjectRef::of(&json!({"apiVersion": "v1", "metadata": {"name": "x"}})),
            None
        );
        assert_eq!(
            ObjectRef::of(&json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            None
        );
        assert_eq!(
            ObjectRef::of(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}})
            ),
            None
        );
    }
}

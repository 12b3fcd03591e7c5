//! The resource types an API server serves: the built-in ones, and those the stored
//! CustomResourceDefinitions define.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A resource type as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: String,
    /// The served versions, the preferred one first.
    pub versions: Vec<String>,
    pub kind: String,
    /// The resource name in paths: `deployments`.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: writes to the object leave `status` alone, writes to
    /// `/status` change nothing else.
    pub status_subresource: bool,
    /// Has a `/scale` subresource (`autoscaling/v1` Scale).
    pub scale: Option<ScalePaths>,
    /// For custom resources: the CRD's printer columns (`name`, `type`, `jsonPath`).
    pub printer_columns: Vec<Value>,
    /// Defined by a CustomResourceDefinition.
    pub custom: bool,
    /// For custom resources: the `openAPIV3Schema` of each version that has one.
    pub schemas: BTreeMap<String, Value>,
}

impl ResourceType {
    pub fn is_core(&self) -> bool {
        self.group.is_empty()
    }

    /// `apps/v1` or `v1`.
    pub fn api_version(&self, version: &str) -> String {
        api_version(&self.group, version)
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The preferred version.
    pub fn preferred_version(&self) -> &str {
        self.versions.first().map_or("v1", String::as_str)
    }

    /// `deployments.apps`, or `pods`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The `APIResource` entries of this type (and its subresources) in an
    /// `APIResourceList`.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        let mut entries = vec![entry];
        if self.status_subresource {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.scale.is_some() {
            entries.push(json!({
                "name": format!("{}/scale", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.is_core() && self.plural == "pods" {
            entries.push(json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
        entries
    }
}

/// Where a type with a `/scale` subresource keeps its replica counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// JSON pointer of the desired replicas: `/spec/replicas`.
    pub spec_replicas: String,
    /// JSON pointer of the observed replicas: `/status/replicas`.
    pub status_replicas: String,
    /// JSON pointer of the selector as a string (custom resources), or `None` to print
    /// the `spec.selector` label selector object (built-ins).
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn builtin() -> Self {
        Self {
            spec_replicas: "/spec/replicas".to_owned(),
            status_replicas: "/status/replicas".to_owned(),
            label_selector: None,
        }
    }
}

/// `.spec.replicas` as a JSON pointer.
fn pointer(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .split('.')
        .map(|s| format!("/{s}"))
        .collect()
}

/// `apps/v1` or `v1`.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits `apps/v1` into `("apps", "v1")` and `v1` into `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// One built-in resource: group, version, kind, plural, namespaced, short names,
/// categories, status subresource.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

const ALL: &[&str] = &["all"];

/// The built-in resources. Generic storage serves all of them; the simulated controllers
/// give some of them life (nodes, pods, deployments, daemonsets, disruption budgets).
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", false, &["ns"], &[], true),
    ("", "v1", "Node", "nodes", false, &["no"], &[], true),
    ("", "v1", "Pod", "pods", true, &["po"], ALL, true),
    ("", "v1", "Service", "services", true, &["svc"], ALL, true),
    ("", "v1", "Endpoints", "endpoints", true, &["ep"], &[], false),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[], false),
    ("", "v1", "Secret", "secrets", true, &[], &[], false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], &[], false),
    ("", "v1", "Event", "events", true, &["ev"], &[], false),
    ("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], &[], true),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], &[], true),
    ("", "v1", "LimitRange", "limitranges", true, &["limits"], &[], false),
    ("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], &[], true),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"], ALL, true),
    ("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], ALL, true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], ALL, true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], ALL, true),
    ("batch", "v1", "Job", "jobs", true, &[], ALL, true),
    ("batch", "v1", "CronJob", "cronjobs", true, &["cj"], ALL, true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], &[], true),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], &[], false),
    ("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false, &[], &[], false),
    ("storage.k8s.io", "v1", "CSINode", "csinodes", false, &[], &[], false),
    ("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", false, &[], &[], true),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], &["api-extensions"], true),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], &[], false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], &[], false),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], &[], false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], &[], false),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, &[], &[], false),
    ("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], &[], false),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], &[], false),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], &[], true),
    ("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], &[], false),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, &[], &["api-extensions"], false),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, &[], &["api-extensions"], false),
    ("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[], &["api-extensions"], true),
];

fn builtin(entry: &Builtin) -> ResourceType {
    let (group, version, kind, plural, namespaced, short_names, categories, status) = *entry;
    ResourceType {
        group: group.to_owned(),
        versions: vec![version.to_owned()],
        kind: kind.to_owned(),
        plural: plural.to_owned(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: categories.iter().map(|s| (*s).to_owned()).collect(),
        status_subresource: status,
        scale: (group == "apps"
            && matches!(plural, "deployments" | "replicasets" | "statefulsets"))
        .then(ScalePaths::builtin),
        printer_columns: Vec::new(),
        custom: false,
        schemas: BTreeMap::new(),
    }
}

/// The built-in resource types.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS.iter().map(builtin).collect()
}

/// How Kubernetes orders versions: GA before beta before alpha, higher numbers first,
/// anything else last, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> (u8, u64, u64, String) {
        let parsed = v.strip_prefix('v').and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let major: u64 = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((0, major, 0));
            }
            let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
                (1, n)
            } else if let Some(n) = tail.strip_prefix("alpha") {
                (2, n)
            } else {
                return None;
            };
            Some((level, major, n.parse().ok()?))
        });
        match parsed {
            // Higher major and minor first: order by their complements.
            Some((level, major, minor)) => {
                (level, u64::MAX - major, u64::MAX - minor, String::new())
            }
            None => (3, 0, 0, v.to_owned()),
        }
    }
    rank(a).cmp(&rank(b))
}

/// The resource type a CustomResourceDefinition defines, if its spec is complete.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let names = spec.get("names")?;
    let kind = names.get("kind")?.as_str()?;
    let plural = names.get("plural")?.as_str()?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map_or_else(|| kind.to_lowercase(), str::to_owned);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let all_versions = spec.get("versions").and_then(Value::as_array)?;
    let served: Vec<&Value> = all_versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .collect();
    let mut versions: Vec<String> = served
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if versions.is_empty() {
        return None;
    }
    versions.sort_by(|a, b| compare_versions(a, b));
    let storage = served
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| served.first())?;
    Some(ResourceType {
        group: group.to_owned(),
        versions,
        kind: kind.to_owned(),
        plural: plural.to_owned(),
        singular,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        status_subresource: served.iter().any(|v| {
            v.get("subresources")
                .and_then(|s| s.get("status"))
                .is_some()
        }),
        scale: served
            .iter()
            .find_map(|v| v.pointer("/subresources/scale"))
            .map(|scale| {
                let path = |k: &str| scale.get(k).and_then(Value::as_str).map(pointer);
                ScalePaths {
                    spec_replicas: path("specReplicasPath")
                        .unwrap_or_else(|| "/spec/replicas".to_owned()),
                    status_replicas: path("statusReplicasPath")
                        .unwrap_or_else(|| "/status/replicas".to_owned()),
                    label_selector: path("labelSelectorPath"),
                }
            }),
        printer_columns: storage
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        custom: true,
        schemas: served
            .iter()
            .filter_map(|v| {
                let name = v.get("name")?.as_str()?.to_owned();
                Some((name, v.pointer("/schema/openAPIV3Schema")?.clone()))
            })
            .collect(),
    })
}

/// The resource types served at one moment: the built-ins and those of the stored CRDs.
#[derive(Debug, Clone)]
pub struct Catalog {
    types: Vec<ResourceType>,
}

impl Catalog {
    /// The built-ins plus the types of `crds`; a CRD cannot shadow a built-in.
    pub fn new<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut types = builtins();
        for crd in crds {
            if let Some(t) = from_crd(crd)
                && !types
                    .iter()
                    .any(|b| b.group == t.group && (b.plural == t.plural || b.kind == t.kind))
            {
                types.push(t);
            }
        }
        Self { types }
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group`/`version` under the resource name `plural`.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    /// The type of objects whose `apiVersion` and `kind` are these.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind && t.serves(version))
    }

    /// The API groups other than the core group, each with its versions in preference
    /// order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.is_core()) {
            let index = match groups.iter().position(|(g, _)| *g == t.group) {
                Some(i) => i,
                None => {
                    groups.push((t.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            for v in &t.versions {
                if !groups[index].1.contains(v) {
                    groups[index].1.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_versions(a, b));
        }
        groups
    }

    /// The types served at `group`/`version`.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.serves(version))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v1alpha1", "served": false, "storage": false},
                ],
            },
        })
    }

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut v = vec![
            "v1alpha1", "foo", "v2beta1", "v1", "v1beta2", "v2", "v1beta1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn a_crd_defines_a_type_with_its_served_versions() {
        let t = from_crd(&crd()).unwrap();
        assert_eq!(t.group, "example.com");
        assert_eq!(t.versions, ["v1", "v1beta1"]);
        assert_eq!(t.singular, "widget");
        assert!(t.namespaced);
        assert!(t.status_subresource);
        assert_eq!(t.printer_columns.len(), 1);
        assert_eq!(t.short_names, ["wd"]);
    }

    #[test]
    fn the_catalog_finds_builtins_and_crd_types() {
        let crd = crd();
        let catalog = Catalog::new([&crd]);
        assert_eq!(
            catalog
                .by_resource("apps", "v1", "deployments")
                .unwrap()
                .kind,
            "Deployment"
        );
        assert!(catalog.by_resource("apps", "v2", "deployments").is_none());
        assert_eq!(
            catalog
                .by_kind("example.com/v1beta1", "Widget")
                .unwrap()
                .plural,
            "widgets"
        );
        assert_eq!(catalog.by_kind("v1", "Pod").unwrap().plural, "pods");
        let groups = catalog.groups();
        let example = groups.iter().find(|(g, _)| g == "example.com").unwrap();
        assert_eq!(example.1, ["v1", "v1beta1"]);
    }

    #[test]
    fn a_crd_cannot_shadow_a_builtin() {
        let shadow = json!({"spec": {"group": "apps", "names": {"kind": "Deployment", "plural": "deployments"},
                                     "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let catalog = Catalog::new([&shadow]);
        assert_eq!(
            catalog
                .types()
                .iter()
                .filter(|t| t.plural == "deployments")
                .count(),
            1
        );
    }
}

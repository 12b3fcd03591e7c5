//! Rendered text into Kubernetes objects as Helm's `releaseutil` does it: documents
//! split on `---`, hooks set apart, objects sorted in install order; and the release
//! namespace set on namespaced objects.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// Helm's `InstallOrder`: the kinds it creates first. Other kinds come after these,
/// by kind name. This is the newest list (Helm 4), whose last two entries put admission
/// webhooks after everything they could block; Helm 3 ends at `APIService` and sorts
/// the webhook configurations among the other kinds by name.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The built-in kinds that are not namespaced, plus the cluster-scoped kinds of the
/// CRDs kaas's addons bring (cert-manager's `ClusterIssuer`, Gateway API's
/// `GatewayClass`, the snapshot controller's `VolumeSnapshotClass` and
/// `VolumeSnapshotContent`, Cilium's cluster-wide kinds).
pub const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "StorageClass",
    "StorageVersionMigration",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
    "DeviceClass",
    "ClusterTrustBundle",
    "ClusterIssuer",
    "GatewayClass",
    "VolumeSnapshotClass",
    "VolumeSnapshotContent",
    "CiliumClusterwideNetworkPolicy",
    "CiliumClusterwideEnvoyConfig",
    "CiliumExternalWorkload",
    "CiliumIdentity",
    "CiliumNode",
    "CiliumLoadBalancerIPPool",
    "CiliumBGPClusterConfig",
    "CiliumBGPPeerConfig",
    "CiliumBGPAdvertisement",
    "CiliumBGPNodeConfig",
    "CiliumBGPNodeConfigOverride",
    "CiliumCIDRGroup",
    "CiliumL2AnnouncementPolicy",
    "CiliumPodIPPool",
    "CiliumNodeConfig",
];

/// Which kinds are cluster-scoped: [`CLUSTER_SCOPED_KINDS`], and the kinds of CRDs
/// with `scope: Cluster` among the objects it was built from.
#[derive(Debug, Clone, Default)]
pub struct ClusterScope {
    /// `(group, kind)` of cluster-scoped custom resources.
    custom: BTreeSet<(String, String)>,
}

impl ClusterScope {
    /// The built-in list plus the cluster-scoped CRDs among `objects`.
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut custom = BTreeSet::new();
        for o in objects {
            if o.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let spec = o.get("spec");
            let field = |k: &str| spec.and_then(|s| s.get(k));
            if field("scope").and_then(Value::as_str) != Some("Cluster") {
                continue;
            }
            let group = field("group").and_then(Value::as_str).unwrap_or("");
            if let Some(kind) = field("names")
                .and_then(|n| n.get("kind"))
                .and_then(Value::as_str)
            {
                custom.insert((group.to_owned(), kind.to_owned()));
            }
        }
        ClusterScope { custom }
    }

    /// Whether objects of this `apiVersion` and `kind` live outside namespaces.
    pub fn is_cluster_scoped(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        CLUSTER_SCOPED_KINDS.contains(&kind)
            || self.custom.contains(&(group.to_owned(), kind.to_owned()))
    }
}

/// Sets `metadata.namespace` to `namespace` on every object that has none and whose
/// kind `is_cluster_scoped(apiVersion, kind)` says is namespaced.
pub fn set_default_namespace(
    objects: &mut [Value],
    namespace: &str,
    is_cluster_scoped: impl Fn(&str, &str) -> bool,
) {
    for o in objects {
        let api_version = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
        if is_cluster_scoped(api_version, kind) {
            continue;
        }
        let Some(obj) = o.as_object_mut() else {
            continue;
        };
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            let has = meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !has {
                meta.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
        }
    }
}

#[allow(clippy::expect_used)] // a constant pattern, covered by tests
static SEPARATOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|\s*\n)---\s*").expect("separator pattern"));

/// Helm's `SplitManifests`: the documents of one rendered file, trimmed, empty ones
/// dropped, in order.
pub fn split_manifests(text: &str) -> Vec<String> {
    SEPARATOR
        .split(text.trim())
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

/// A hook: an object with a `helm.sh/hook` annotation, run around install rather
/// than applied with the release.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub object: Value,
    /// The template it came from (`chart/templates/job.yaml`).
    pub template: String,
    /// `pre-install`, `post-install`, ... as written (lower case, trimmed).
    pub events: Vec<String>,
    /// `helm.sh/hook-weight` (0 when absent or not a number, as in Helm).
    pub weight: i64,
    /// `helm.sh/hook-delete-policy` entries.
    pub delete_policies: Vec<String>,
}

pub(crate) fn kind_of(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn annotation<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The hook described by `object`'s annotations, if it is one.
pub(crate) fn hook_of(object: &Value, template: &str) -> Option<Hook> {
    let events = annotation(object, "helm.sh/hook")?;
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect()
    };
    Some(Hook {
        object: object.clone(),
        template: template.to_owned(),
        events: list(events),
        weight: annotation(object, "helm.sh/hook-weight")
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0),
        delete_policies: annotation(object, "helm.sh/hook-delete-policy")
            .map(list)
            .unwrap_or_default(),
    })
}

/// Helm's kind order: known kinds by [`INSTALL_ORDER`], unknown kinds after them by
/// name; stable otherwise.
pub(crate) fn sort_by_kind<T>(items: &mut [T], kind: impl Fn(&T) -> &str) {
    let rank = |k: &str| INSTALL_ORDER.iter().position(|o| *o == k);
    items.sort_by(|a, b| {
        let (ka, kb) = (kind(a), kind(b));
        match (rank(ka), rank(kb)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => ka.cmp(kb),
        }
    });
}

/// Hooks in the order Helm runs those of one event: by kind, then by weight and name.
pub(crate) fn sort_hooks(hooks: &mut [Hook]) {
    sort_by_kind(hooks, |h| kind_of(&h.object));
    hooks.sort_by(|a, b| {
        a.weight
            .cmp(&b.weight)
            .then_with(|| name_of(&a.object).cmp(name_of(&b.object)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_as_helm() {
        assert_eq!(split_manifests("a: 1\n---\nb: 2\n"), ["a: 1", "b: 2"]);
        // The first separator eats the blank lines the second needs, so "---" stays a
        // document of its own, as in Helm (it parses to nothing and is dropped later).
        assert_eq!(
            split_manifests("---\na: 1\n---   \n\n---\n"),
            ["a: 1", "---"]
        );
        assert_eq!(
            split_manifests("a: |\n  x\n  ---\n  y\n"),
            ["a: |\n  x\n  ---\n  y"]
        );
        assert_eq!(split_manifests("a: 1\n---b: 2"), ["a: 1", "b: 2"]);
        assert_eq!(
            split_manifests("# c\n--- # doc\nb: 2"),
            ["# c", "# doc\nb: 2"]
        );
        assert_eq!(split_manifests("  \n"), Vec::<String>::new());
    }

    #[test]
    fn kinds_sort_in_install_order() {
        let mut kinds = vec![
            "Deployment",
            "Zed",
            "Service",
            "Alpha",
            "Namespace",
            "Service",
        ];
        sort_by_kind(&mut kinds, |k| k);
        assert_eq!(
            kinds,
            [
                "Namespace",
                "Service",
                "Service",
                "Deployment",
                "Alpha",
                "Zed"
            ]
        );
    }

    #[test]
    fn namespaces_are_set_on_namespaced_objects_only() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget"}}});
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "c"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "d"}}),
            json!({"apiVersion": "other.com/v1", "kind": "Widget", "metadata": {"name": "e"}}),
        ];
        let scope = ClusterScope::from_objects([&crd]);
        set_default_namespace(&mut objects, "ns", |a, k| scope.is_cluster_scoped(a, k));
        let ns: Vec<Option<&str>> = objects
            .iter()
            .map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
            .collect();
        assert_eq!(ns, [Some("ns"), Some("other"), None, None, Some("ns")]);
    }
}

//! The cluster's addons: rendered from its stack with its values (in observe), applied
//! once its control plane runs the stack's Kubernetes version and again whenever what
//! is rendered changes (a stack change, an addon turned on or off), and re-applied when
//! an object went missing. What the apply set held before and no longer does is pruned
//! by the apply itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use kaas_cloud::ObjectReadiness;
use kaas_core::cluster::conditions;
use kaas_core::stack::StackAddon;
use kaas_core::{AddonStatus, Cluster, Condition, ConditionStatus};
use serde_json::Value;

use super::plan::{Observed, Plan, Step};

/// Where the addons' upstream artifacts come from: kaas's cache, filled from the
/// operator's mirrors or from upstream, every artifact checked against the digest its
/// stack pins.
#[async_trait::async_trait]
pub trait AddonArtifacts: Send + Sync {
    /// The verified bytes of the addon's chart (`.tgz`) or manifest, or why they
    /// cannot be had.
    async fn artifact(&self, addon: &StackAddon) -> Result<Arc<Vec<u8>>, String>;
}

/// No source: every upstream addon is refused with the reason.
pub struct NoArtifacts;

#[async_trait::async_trait]
impl AddonArtifacts for NoArtifacts {
    async fn artifact(&self, addon: &StackAddon) -> Result<Arc<Vec<u8>>, String> {
        Err(format!(
            "addon {}: this kaas has no source for upstream artifacts",
            addon.name
        ))
    }
}

/// The apply set (a ConfigMap in `kube-system`) that holds every object of the addons.
pub const ADDON_SET: &str = "kaas-addons";

/// Rendered objects. They may hold the cluster's cloud credential: `Debug` shows how
/// many there are, never what they say.
#[derive(Clone, PartialEq)]
pub struct Manifests(pub Arc<Vec<Value>>);

impl fmt::Debug for Manifests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Manifests({} objects)", self.0.len())
    }
}

/// The addons the cluster's stack and spec call for, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredAddons {
    pub stack: String,
    /// `(name, version)` in apply order, with the objects of each.
    pub addons: Vec<(String, String, Vec<String>)>,
    /// Each object's `apiVersion`, `kind` and `metadata.name`/`namespace`: all that
    /// reading their readiness takes.
    pub refs: Arc<Vec<Value>>,
    /// The objects themselves; `None` in an outline ([`DesiredAddons::outline`]).
    pub objects: Option<Manifests>,
    pub digest: String,
}

impl DesiredAddons {
    pub fn new(stack: &str, rendered: Vec<kaas_bootstrap::RenderedAddon>) -> Self {
        let mut objects = Vec::new();
        let mut addons = Vec::new();
        for addon in rendered {
            let refs = addon
                .objects
                .iter()
                .map(kaas_bootstrap::object_ref)
                .collect();
            addons.push((addon.name, addon.version, refs));
            objects.extend(addon.objects);
        }
        let digest = digest(&objects);
        let refs = objects.iter().map(outline).collect();
        Self {
            stack: stack.to_owned(),
            addons,
            refs: Arc::new(refs),
            objects: Some(Manifests(Arc::new(objects))),
            digest,
        }
    }

    /// The same addons without their objects: what a settled cluster keeps between
    /// reconciles.
    pub fn outline(&self) -> Self {
        Self {
            objects: None,
            ..self.clone()
        }
    }

    /// Whether applying them is due: they are not the ones applied last, or an object
    /// of them is missing from the cluster.
    pub fn apply_due(&self, applied: Option<&str>, readiness: Option<&[ObjectReadiness]>) -> bool {
        applied != Some(self.digest.as_str())
            || readiness.is_some_and(|r| r.iter().any(|o| o.missing))
    }
}

/// An object's identity only: `apiVersion`, `kind`, `metadata.name` and
/// `metadata.namespace`.
fn outline(object: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = object["metadata"].get(key) {
            metadata.insert(key.to_owned(), v.clone());
        }
    }
    serde_json::json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": metadata,
    })
}

/// A digest of the objects, to notice any change. SHA-256, not the standard library's
/// hasher, whose output may change between Rust releases: the digest is kept in the
/// cluster's status, and a new kaas build must not take unchanged addons for changed.
fn digest(objects: &[Value]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for o in objects {
        context.update(o.to_string().as_bytes());
        context.update(b"\n");
    }
    context.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The addons as observed: what is wanted (or why it cannot be rendered) and, when the
/// cluster's API answered, how each wanted object stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAddons {
    pub desired: Result<DesiredAddons, String>,
    pub readiness: Option<Vec<ObjectReadiness>>,
}

/// Whether the control plane is ready for the stack's addons: a node of it is Ready
/// and every control-plane machine runs the stack's Kubernetes version (addons follow an
/// upgrade of the control plane, never lead it).
pub fn control_plane_settled(observed: &Observed) -> bool {
    let Some(stack) = &observed.stack else {
        return false;
    };
    let version = &stack.spec.kubernetes_version;
    let control_planes: Vec<_> = observed
        .machines
        .iter()
        .filter(|m| m.is_control_plane() && !m.metadata.is_deleting())
        .collect();
    let nodes = observed.nodes.as_deref().unwrap_or_default();
    let ready = nodes.iter().any(|n| {
        n.ready
            && n.labels
                .contains_key("node-role.kubernetes.io/control-plane")
    });
    ready && !control_planes.is_empty() && control_planes.iter().all(|m| &m.spec.version == version)
}

/// Adds the apply of the addons to `plan` when they are due.
pub fn plan_addons(cluster: &Cluster, observed: &Observed, plan: &mut Plan) {
    let Some(ObservedAddons {
        desired: Ok(desired),
        readiness: Some(readiness),
    }) = &observed.addons
    else {
        return;
    };
    let applied = cluster.status.addons.digest.as_deref() == Some(desired.digest.as_str());
    // Observe renders the objects whenever an apply is due; an outline here would be a
    // bug, and waiting for the next observe mends it.
    let apply = |plan: &mut Plan| match &desired.objects {
        Some(objects) => plan.steps.push(Step::ApplyAddons {
            stack: desired.stack.clone(),
            digest: desired.digest.clone(),
            objects: objects.clone(),
        }),
        None => plan.wait("the addons to be rendered"),
    };
    if desired.addons.is_empty() {
        // No addon wanted any more: an empty apply prunes what the set still holds.
        if !applied && cluster.status.addons.digest.is_some() {
            apply(plan);
        }
        return;
    }
    if !control_plane_settled(observed) {
        return;
    }
    if readiness.iter().any(|r| !r.ready) {
        plan.wait("the addons to be ready");
    }
    if desired.apply_due(cluster.status.addons.digest.as_deref(), Some(readiness)) {
        apply(plan);
    }
}

/// The addons' part of the status: each addon's readiness and the AddonsReady
/// condition. `applied` is the digest applied in this reconcile, if any.
pub fn addons_status(
    cluster: &Cluster,
    observed: &Observed,
    applied: Option<(&str, &str)>,
    failure: Option<(&str, &str)>,
) -> (kaas_core::AddonsStatus, Condition) {
    let mut status = cluster.status.addons.clone();
    if let Some((stack, digest)) = applied {
        status.stack = Some(stack.to_owned());
        status.digest = Some(digest.to_owned());
    }
    let condition = |ok: bool, reason: &str, message: String| {
        let s = if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        Condition::new(conditions::ADDONS_READY, s, reason, message)
    };
    let Some(observed_addons) = &observed.addons else {
        let old = cluster
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::ADDONS_READY)
            .cloned();
        return (
            status,
            old.unwrap_or_else(|| {
                condition(
                    false,
                    "WaitingForControlPlane",
                    "the cluster's API does not answer yet".to_owned(),
                )
            }),
        );
    };
    let desired = match &observed_addons.desired {
        Ok(d) => d,
        Err(e) => return (status, condition(false, "RenderFailed", e.clone())),
    };
    if desired.addons.is_empty() {
        status.items.clear();
        return (
            status,
            condition(
                true,
                "NoAddons",
                format!("stack {} has no addons", desired.stack),
            ),
        );
    }
    let by_object: BTreeMap<&str, &ObjectReadiness> = observed_addons
        .readiness
        .iter()
        .flatten()
        .map(|r| (r.object.as_str(), r))
        .collect();
    let up_to_date = status.digest.as_deref() == Some(desired.digest.as_str());
    if !up_to_date
        && failure.is_none()
        && !control_plane_settled(observed)
        && let Some(applied) = status.stack.clone()
    {
        // An upgrade under way: the addons applied before keep running until the
        // control plane runs the new stack's version.
        return (
            status,
            condition(
                true,
                "UpgradePending",
                format!(
                    "the addons of stack {applied} run; those of stack {} follow the control plane",
                    desired.stack
                ),
            ),
        );
    }
    status.items = desired
        .addons
        .iter()
        .map(|(name, version, objects)| {
            let not_ready: Vec<String> = objects
                .iter()
                .filter_map(|o| match by_object.get(o.as_str()) {
                    Some(r) if r.ready => None,
                    Some(r) => Some(r.message.clone()),
                    None => Some(format!("{o}: not observed")),
                })
                .collect();
            AddonStatus {
                name: name.clone(),
                version: version.clone(),
                ready: up_to_date && not_ready.is_empty(),
                message: if !up_to_date {
                    "not applied yet".to_owned()
                } else {
                    not_ready.first().cloned().unwrap_or_default()
                },
            }
        })
        .collect();
    let cond = if let Some((reason, message)) = failure {
        condition(false, reason, message.to_owned())
    } else if !up_to_date {
        if control_plane_settled(observed) {
            condition(
                false,
                "Applying",
                format!("applying the addons of stack {}", desired.stack),
            )
        } else {
            condition(
                false,
                "WaitingForControlPlane",
                format!(
                    "the addons of stack {} wait for the control plane to run {}",
                    desired.stack,
                    observed
                        .stack
                        .as_ref()
                        .map_or("its version", |s| s.spec.kubernetes_version.as_str())
                ),
            )
        }
    } else if observed_addons.readiness.is_none() {
        condition(
            false,
            "Unknown",
            "the cluster's API does not answer".to_owned(),
        )
    } else {
        let not_ready: Vec<String> = status
            .items
            .iter()
            .filter(|a| !a.ready)
            .map(|a| format!("{}: {}", a.name, a.message))
            .collect();
        if not_ready.is_empty() {
            let list: Vec<String> = status
                .items
                .iter()
                .map(|a| format!("{} {}", a.name, a.version))
                .collect();
            condition(true, "Ready", list.join(", "))
        } else {
            let mut text = not_ready
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if not_ready.len() > 3 {
                text.push_str(&format!("; and {} more", not_ready.len() - 3));
            }
            condition(false, "NotReady", text)
        }
    };
    (status, cond)
}

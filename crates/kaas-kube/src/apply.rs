//! Server-side apply of a set of objects, and pruning what the set no longer holds, the
//! ApplySet way (see [`crate::applyset`]).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kaas_cloud::WorkloadError;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Scope, verbs};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::applyset::{
    self, Contents, PARENT_NAMESPACE, PART_OF_LABEL, applyset_id, foreign_parent,
};
use crate::discovery::{Discovered, Served};
use crate::error::{api_code, invalid};
use crate::{ObjectRef, WorkloadClient};

/// The field manager of everything kaas applies.
pub const FIELD_MANAGER: &str = "kaas";
/// How long to wait for the API server to serve the kinds of CRDs just applied.
pub const CRD_WAIT: Duration = Duration::from_secs(10);
/// How often to look meanwhile.
const CRD_POLL: Duration = Duration::from_millis(200);
/// How long to wait for an object deleted to be replaced to be gone.
pub const REPLACE_WAIT: Duration = Duration::from_secs(30);

const CRD_GROUP_KIND: &str = "CustomResourceDefinition.apiextensions.k8s.io";

/// What [`WorkloadClient::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Objects applied (all of them; server-side apply of an unchanged object changes
    /// nothing).
    pub applied: usize,
    /// Members of the set that were deleted because the set no longer holds them.
    pub pruned: Vec<ObjectRef>,
    /// Objects deleted and created again because the change was to a field the API
    /// server does not let change (an IngressClass's controller, a Job's template).
    pub replaced: Vec<ObjectRef>,
}

/// In which round an object is applied: Namespaces, then CRDs, then the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Round {
    Namespaces,
    Definitions,
    Rest,
}

/// An object to apply, where it goes and what it will look like.
struct Member {
    /// With the namespace it is applied in (`default` for a namespaced object given
    /// without one), `None` for cluster-scoped objects.
    reference: ObjectRef,
    /// Whether a CRD of this set defines its kind (so discovery may not serve it yet).
    defined_here: bool,
    /// The manifest with the namespace and the part-of label set.
    manifest: Value,
    round: Round,
}

impl Member {
    /// Group, kind, namespace and name: what a listed object is matched on when pruning.
    fn key(&self) -> MemberKey {
        (
            self.reference.group().to_owned(),
            self.reference.kind.clone(),
            self.reference.namespace.clone(),
            self.reference.name.clone(),
        )
    }
}

type MemberKey = (String, String, Option<String>, String);

impl WorkloadClient {
    /// Server-side applies (field manager `kaas`, forcing conflicts) every one of
    /// `objects` as a member of the apply set `set_name`, then deletes the members of the
    /// set that `objects` no longer holds.
    ///
    /// Kinds are resolved through discovery, so custom resources work, and so is whether
    /// a kind is namespaced (namespaced objects without a namespace go to `default`).
    /// Namespaces and CustomResourceDefinitions go first; objects of the kinds those CRDs
    /// define are applied once discovery serves them (waiting up to [`CRD_WAIT`]).
    ///
    /// The set lives in the cluster, as KEP-3659 ApplySets do: a parent ConfigMap
    /// `set_name` in `kube-system` lists the members' group-kinds, and each member is
    /// labelled `applyset.kubernetes.io/part-of`. Steps, each safe to interrupt and
    /// redo: the parent is widened to the old and new group-kinds; the objects are
    /// applied; the members of each of those group-kinds that are not among `objects`
    /// are deleted (in the background; CRDs last; kinds no longer served skipped); the
    /// parent is narrowed to the new group-kinds.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, set = set_name))]
    pub async fn apply(
        &self,
        set_name: &str,
        objects: &[Value],
    ) -> Result<ApplyReport, WorkloadError> {
        if set_name.is_empty() {
            return Err(invalid("an apply set needs a name"));
        }
        let id = applyset_id(set_name);
        let mut discovered = Discovered::new(self.client.clone());
        let mut members = self.members(&id, objects, &mut discovered).await?;
        members.sort_by_key(|m| m.round);
        let wanted = Contents {
            group_kinds: members.iter().map(|m| m.reference.group_kind()).collect(),
            namespaces: members
                .iter()
                .filter_map(|m| m.reference.namespace.clone())
                .filter(|ns| ns != PARENT_NAMESPACE)
                .collect(),
        };

        let recorded = self.recorded(set_name).await?;
        let widened = recorded
            .as_ref()
            .map_or(wanted.clone(), |r| r.union(&wanted));
        if recorded.as_ref() != Some(&widened) {
            self.write_parent(set_name, &widened).await?;
        }

        let mut replaced = Vec::new();
        for member in &members {
            if self.apply_member(member, &mut discovered).await? {
                replaced.push(member.reference.clone());
            }
        }

        let keep: HashSet<MemberKey> = members.iter().map(Member::key).collect();
        let pruned = self
            .prune(&id, &widened.group_kinds, &keep, &mut discovered)
            .await?;

        if widened != wanted {
            self.write_parent(set_name, &wanted).await?;
        }
        Ok(ApplyReport {
            applied: members.len(),
            pruned,
            replaced,
        })
    }

    /// The objects as members of set `id`: checked, placed and labelled.
    async fn members(
        &self,
        id: &str,
        objects: &[Value],
        discovered: &mut Discovered,
    ) -> Result<Vec<Member>, WorkloadError> {
        let definitions: Vec<Definition> = objects.iter().filter_map(Definition::of).collect();
        let mut members = Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            let mut reference = ObjectRef::of(object).ok_or_else(|| {
                invalid(format!(
                    "object {index} has no apiVersion, kind or metadata.name"
                ))
            })?;
            let label = object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(PART_OF_LABEL));
            if label.is_some_and(|l| l != id) {
                return Err(invalid(format!(
                    "{reference} is labelled as a member of another apply set ({PART_OF_LABEL})"
                )));
            }
            let definition = definitions
                .iter()
                .find(|d| d.group == reference.group() && d.kind == reference.kind);
            let namespaced = match definition {
                Some(d) => d.namespaced,
                None => {
                    let served = discovered
                        .kind(&reference.api_version, &reference.kind)
                        .await
                        .map_err(|e| self.error(e))?;
                    let (_, capabilities) = served.ok_or_else(|| {
                        invalid(format!(
                            "{reference}: the API server does not serve kind {} in {}",
                            reference.kind, reference.api_version
                        ))
                    })?;
                    capabilities.scope == Scope::Namespaced
                }
            };
            reference.namespace = if namespaced {
                Some(reference.namespace.unwrap_or_else(|| "default".to_owned()))
            } else {
                None
            };
            let mut manifest = object.clone();
            let metadata = &mut manifest["metadata"];
            match &reference.namespace {
                Some(namespace) => metadata["namespace"] = json!(namespace),
                None => {
                    if let Some(m) = metadata.as_object_mut() {
                        m.remove("namespace");
                    }
                }
            }
            if !metadata["labels"].is_object() {
                metadata["labels"] = json!({});
            }
            metadata["labels"][PART_OF_LABEL] = json!(id);
            let round = match reference.group_kind().as_str() {
                "Namespace" => Round::Namespaces,
                CRD_GROUP_KIND => Round::Definitions,
                _ => Round::Rest,
            };
            members.push(Member {
                reference,
                defined_here: definition.is_some(),
                manifest,
                round,
            });
        }
        Ok(members)
    }

    /// What the parent of `set_name` records now; `None` when there is no parent yet.
    /// An object of that name that is not kaas's parent of that set is an error.
    async fn recorded(&self, set_name: &str) -> Result<Option<Contents>, WorkloadError> {
        let parents: Api<ConfigMap> = Api::namespaced(self.client.clone(), PARENT_NAMESPACE);
        let Some(existing) = parents.get_opt(set_name).await.map_err(|e| self.error(e))? else {
            return Ok(None);
        };
        let existing = serde_json::to_value(existing)
            .map_err(|e| invalid(format!("apply set parent {set_name}: {e}")))?;
        if let Some(why) = foreign_parent(set_name, &existing) {
            return Err(invalid(why));
        }
        Ok(Some(Contents::of_parent(&existing)))
    }

    async fn write_parent(&self, set_name: &str, contents: &Contents) -> Result<(), WorkloadError> {
        tracing::debug!(group_kinds = ?contents.group_kinds, "recording the apply set");
        let parents: Api<ConfigMap> = Api::namespaced(self.client.clone(), PARENT_NAMESPACE);
        let parent = applyset::parent(set_name, contents);
        parents
            .patch(set_name, &apply_params(), &Patch::Apply(&parent))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Applies one member; `true` when it had to be deleted and created again.
    async fn apply_member(
        &self,
        member: &Member,
        discovered: &mut Discovered,
    ) -> Result<bool, WorkloadError> {
        let reference = &member.reference;
        let (resource, _) = if member.defined_here {
            self.await_kind(reference, discovered).await?
        } else {
            discovered
                .kind(&reference.api_version, &reference.kind)
                .await
                .map_err(|e| self.error(e))?
                .ok_or_else(|| invalid(format!("{reference}: kind no longer served")))?
        };
        let api: Api<DynamicObject> = match &reference.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        tracing::debug!(object = %reference, "applying");
        let applied = api
            .patch(
                &reference.name,
                &apply_params(),
                &Patch::Apply(&member.manifest),
            )
            .await;
        let replace = match applied {
            Ok(_) => return Ok(false),
            Err(e) if is_immutable(&e) => e,
            Err(e) => return Err(self.applying(reference, e)),
        };
        // A field that cannot change (an IngressClass's controller, a Job's template):
        // the object goes and comes back as the set now has it, as `kubectl apply
        // --force` does. Interrupted in between, the next apply creates it.
        tracing::info!(object = %reference, reason = %replace, "replacing: a changed field is immutable");
        match api
            .delete(&reference.name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => return Err(self.applying(reference, e)),
        }
        let deadline = Instant::now() + REPLACE_WAIT;
        while api
            .get_opt(&reference.name)
            .await
            .map_err(|e| self.applying(reference, e))?
            .is_some()
        {
            if Instant::now() >= deadline {
                return Err(invalid(format!(
                    "{reference}: deleted to be replaced (a changed field is immutable), but still there after {} s",
                    REPLACE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(CRD_POLL).await;
        }
        api.patch(
            &reference.name,
            &apply_params(),
            &Patch::Apply(&member.manifest),
        )
        .await
        .map_err(|e| self.applying(reference, e))?;
        Ok(true)
    }

    /// An error of applying `reference`, naming it.
    fn applying(&self, reference: &ObjectRef, e: kube::Error) -> WorkloadError {
        match self.error(e) {
            WorkloadError::Api { message } => WorkloadError::Api {
                message: format!("applying {reference}: {message}"),
            },
            unreachable => unreachable,
        }
    }

    /// The resource of a kind a CRD of this set defines, once discovery serves it.
    async fn await_kind(
        &self,
        reference: &ObjectRef,
        discovered: &mut Discovered,
    ) -> Result<Served, WorkloadError> {
        let deadline = Instant::now() + CRD_WAIT;
        loop {
            let served = discovered
                .kind(&reference.api_version, &reference.kind)
                .await
                .map_err(|e| self.error(e))?;
            if let Some(served) = served {
                return Ok(served);
            }
            if Instant::now() >= deadline {
                return Err(invalid(format!(
                    "{reference}: the API server does not serve kind {} in {} {} s after its \
                     CustomResourceDefinition was applied",
                    reference.kind,
                    reference.api_version,
                    CRD_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(CRD_POLL).await;
            discovered.forget(&reference.api_version);
        }
    }

    /// Deletes the objects of `group_kinds` labelled as members of set `id` that are not
    /// in `keep`; CRDs last (their custom resources go with them), Namespaces just before.
    async fn prune(
        &self,
        id: &str,
        group_kinds: &BTreeSet<String>,
        keep: &HashSet<MemberKey>,
        discovered: &mut Discovered,
    ) -> Result<Vec<ObjectRef>, WorkloadError> {
        let mut ordered: Vec<&String> = group_kinds.iter().collect();
        ordered.sort_by_key(|gk| match gk.as_str() {
            CRD_GROUP_KIND => 2,
            "Namespace" => 1,
            _ => 0,
        });
        let selector = format!("{PART_OF_LABEL}={id}");
        let mut pruned = Vec::new();
        for gk in ordered {
            let (kind, group) = gk.split_once('.').unwrap_or((gk.as_str(), ""));
            let served = discovered
                .group_kind(group, kind)
                .await
                .map_err(|e| self.error(e))?;
            let Some((resource, capabilities)) = served else {
                tracing::debug!(group_kind = %gk, "not served; nothing to prune");
                continue;
            };
            if !capabilities.supports_operation(verbs::LIST)
                || !capabilities.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let all: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let listed = all
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| self.error(e))?;
            for object in listed.items {
                let namespace = object.metadata.namespace.clone();
                let Some(name) = object.metadata.name.clone() else {
                    continue;
                };
                let key = (group.to_owned(), kind.to_owned(), namespace.clone(), name);
                if keep.contains(&key) {
                    continue;
                }
                let (_, _, namespace, name) = key;
                let api: Api<DynamicObject> = match (&namespace, &capabilities.scope) {
                    (Some(ns), Scope::Namespaced) => {
                        Api::namespaced_with(self.client.clone(), ns, &resource)
                    }
                    _ => Api::all_with(self.client.clone(), &resource),
                };
                let reference = ObjectRef {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                    namespace,
                    name,
                };
                tracing::debug!(object = %reference, "pruning");
                match api
                    .delete(&reference.name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => pruned.push(reference),
                    // Gone meanwhile.
                    Err(e) if api_code(&e) == Some(404) => {}
                    Err(e) => return Err(self.error(e)),
                }
            }
        }
        Ok(pruned)
    }
}

/// Whether the API server refused a change to a field that cannot change.
fn is_immutable(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.code == 422 && status.message.contains("field is immutable"))
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The kind a CustomResourceDefinition among the objects defines.
struct Definition {
    group: String,
    kind: String,
    namespaced: bool,
}

impl Definition {
    fn of(object: &Value) -> Option<Self> {
        let reference = ObjectRef::of(object)?;
        if reference.group_kind() != CRD_GROUP_KIND {
            return None;
        }
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        Some(Self {
            group: text("/spec/group")?.to_owned(),
            kind: text("/spec/names/kind")?.to_owned(),
            namespaced: text("/spec/scope") != Some("Cluster"),
        })
    }
}

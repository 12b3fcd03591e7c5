//! Draining a node: cordon it, then evict its pods through the eviction API, as
//! `kubectl drain --ignore-daemonsets --delete-emptydir-data` does.

use k8s_openapi::api::core::v1::{Node, Pod};
use kaas_cloud::{DrainProgress, WorkloadError};
use kube::Api;
use kube::api::{EvictParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::WorkloadClient;
use crate::error::{api_code, status_message};

/// The annotation the kubelet puts on the API copy of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

impl WorkloadClient {
    /// Cordons `node` (`spec.unschedulable`, written only if not set yet), then asks the
    /// eviction API (`policy/v1`, so disruption budgets hold) to evict each of its pods
    /// that a drain moves: all but DaemonSet pods, mirror pods, pods that have finished
    /// (`Succeeded`, `Failed`) and pods already being deleted. Pods without a controller
    /// and pods with `emptyDir` volumes are evicted too.
    ///
    /// Quick, no waiting: [`DrainProgress::Drained`] when no such pod is left (pods being
    /// deleted count as left), [`DrainProgress::InProgress`] while some are, and
    /// [`DrainProgress::Blocked`] when an eviction is refused (`429`), with the API's
    /// message naming the pod. Call again to see progress.
    ///
    /// A node that does not exist is a [`WorkloadError::Api`] with the server's message.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, node))]
    pub async fn drain(&self, node: &str) -> Result<DrainProgress, WorkloadError> {
        self.cordon(node).await?;
        let pods = self.pods_on(node).await?;
        let evictable: Vec<&Pod> = pods.iter().filter(|p| evictable(p)).collect();
        if evictable.is_empty() {
            return Ok(progress(pods.iter().filter(|p| must_leave(p)).count()));
        }
        let mut refusals = Vec::new();
        for pod in evictable {
            if let Some(refusal) = self.evict(pod).await? {
                refusals.push(refusal);
            }
        }
        if !refusals.is_empty() {
            return Ok(DrainProgress::Blocked {
                message: refusals.join("; "),
            });
        }
        let pods = self.pods_on(node).await?;
        Ok(progress(pods.iter().filter(|p| must_leave(p)).count()))
    }

    async fn cordon(&self, node: &str) -> Result<(), WorkloadError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let current = nodes.get(node).await.map_err(|e| self.error(e))?;
        let cordoned = current
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            tracing::debug!("cordoning");
            let patch = json!({"spec": {"unschedulable": true}});
            nodes
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, WorkloadError> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={node}");
        let list = pods
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(|e| self.error(e))?;
        Ok(list.items)
    }

    /// Evicts `pod`: `None` when evicted (or gone already), the refusal when the API
    /// answers `429 TooManyRequests`.
    async fn evict(&self, pod: &Pod) -> Result<Option<String>, WorkloadError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match pods.evict(name, &EvictParams::default()).await {
            Ok(_) => {
                tracing::debug!(pod = %format!("{namespace}/{name}"), "evicted");
                Ok(None)
            }
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 429 => {
                let mut message = format!(
                    "cannot evict pod {namespace}/{name}: {}",
                    status_message(&status)
                );
                let causes = status.details.iter().flat_map(|d| &d.causes);
                for cause in causes.filter(|c| !c.message.is_empty()) {
                    message.push(' ');
                    message.push_str(&cause.message);
                }
                Ok(Some(message))
            }
            Err(e) => Err(self.error(e)),
        }
    }
}

fn progress(pods_left: usize) -> DrainProgress {
    match pods_left {
        0 => DrainProgress::Drained,
        n => DrainProgress::InProgress {
            pods_left: u32::try_from(n).unwrap_or(u32::MAX),
        },
    }
}

/// Whether a drain must see `pod` gone: not a DaemonSet's pod (it would come back), not
/// a mirror pod (the kubelet owns it), not finished.
fn must_leave(pod: &Pod) -> bool {
    let daemon = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    !daemon && !mirror && !finished
}

/// Whether the drain asks to evict `pod`: it must leave and is not being deleted yet.
fn evictable(pod: &Pod) -> bool {
    must_leave(pod) && pod.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn pod(extra_metadata: Value, phase: &str) -> Pod {
        let mut metadata = json!({"name": "p", "namespace": "default"});
        if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra_metadata.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(json!({"metadata": metadata, "status": {"phase": phase}}))
            .unwrap_or_else(|e| panic!("not a pod: {e}"))
    }

    fn owner(kind: &str, controller: bool) -> Value {
        json!({"ownerReferences": [{
            "apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u",
            "controller": controller,
        }]})
    }

    #[test]
    fn replica_set_and_bare_pods_are_evicted() {
        assert!(evictable(&pod(owner("ReplicaSet", true), "Running")));
        assert!(evictable(&pod(json!({}), "Pending")));
    }

    #[test]
    fn daemon_set_pods_stay() {
        assert!(!must_leave(&pod(owner("DaemonSet", true), "Running")));
        // Owned but not controlled by a DaemonSet: evicted.
        assert!(evictable(&pod(owner("DaemonSet", false), "Running")));
    }

    #[test]
    fn mirror_pods_stay() {
        let mirror = json!({"annotations": {MIRROR_ANNOTATION: "abc"}});
        assert!(!must_leave(&pod(mirror, "Running")));
    }

    #[test]
    fn finished_pods_need_not_leave() {
        assert!(!must_leave(&pod(json!({}), "Succeeded")));
        assert!(!must_leave(&pod(json!({}), "Failed")));
    }

    #[test]
    fn pods_being_deleted_are_left_but_not_evicted_again() {
        let deleting = pod(
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
            "Running",
        );
        assert!(must_leave(&deleting));
        assert!(!evictable(&deleting));
    }

    #[test]
    fn progress_counts_what_is_left() {
        assert_eq!(progress(0), DrainProgress::Drained);
        assert_eq!(progress(3), DrainProgress::InProgress { pods_left: 3 });
    }
}

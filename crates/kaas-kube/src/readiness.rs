//! Whether applied objects are ready: rollouts done, CRDs established, the rest present.

use futures::future::join_all;
use kaas_cloud::WorkloadError;
use kube::Api;
use kube::api::DynamicObject;
use kube::discovery::Scope;
use serde_json::Value;

use crate::discovery::Discovered;
use crate::error::invalid;
use crate::{ObjectRef, WorkloadClient};

/// Readiness of one applied object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectReadiness {
    pub object: ObjectRef,
    pub ready: bool,
    /// Why not ready, e.g. `Deployment kube-system/metrics-server: 0 of 1 replicas
    /// available`, or `not found`; empty when ready.
    pub message: String,
    /// The object (or its kind) does not exist.
    pub missing: bool,
}

impl WorkloadClient {
    /// Readiness of each of `objects` (manifests), in their order (each result's
    /// `object` is [`ObjectRef::of`] the manifest): a Deployment when its
    /// controller has seen the latest generation and all replicas are updated and
    /// available; a DaemonSet when seen and its pods are updated and ready on every node
    /// it should run on; a StatefulSet when all replicas are ready; a
    /// CustomResourceDefinition when `Established`; anything else when it exists.
    /// Namespaced objects without a namespace are looked for in `default`.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn readiness(
        &self,
        objects: &[Value],
    ) -> Result<Vec<ObjectReadiness>, WorkloadError> {
        // Discovery first (one request per group-version), then every read at once.
        let mut discovered = Discovered::new(self.client.clone());
        let mut planned = Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            let reference = ObjectRef::of(object).ok_or_else(|| {
                invalid(format!(
                    "object {index} has no apiVersion, kind or metadata.name"
                ))
            })?;
            let served = discovered
                .kind(&reference.api_version, &reference.kind)
                .await
                .map_err(|e| self.error(e))?;
            let Some((resource, capabilities)) = served else {
                planned.push((reference, None));
                continue;
            };
            // Where the object really is, for the request and the message.
            let mut placed = reference.clone();
            placed.namespace = match capabilities.scope {
                Scope::Cluster => None,
                Scope::Namespaced => Some(
                    reference
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_owned()),
                ),
            };
            let api: Api<DynamicObject> = match &placed.namespace {
                None => Api::all_with(self.client.clone(), &resource),
                Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            };
            planned.push((reference, Some((placed, api))));
        }
        let reads = join_all(planned.iter().map(|(reference, plan)| async move {
            match plan {
                Some((_, api)) => api.get_opt(&reference.name).await,
                None => Ok(None),
            }
        }))
        .await;
        let mut readiness = Vec::with_capacity(planned.len());
        for ((reference, plan), read) in planned.into_iter().zip(reads) {
            let found = read.map_err(|e| self.error(e))?;
            let (Some((placed, _)), Some(found)) = (plan, found) else {
                readiness.push(missing(reference));
                continue;
            };
            let found = serde_json::to_value(found)
                .map_err(|e| invalid(format!("{reference}: unreadable: {e}")))?;
            let (ready, message) = match assess(&placed, &found) {
                Ok(()) => (true, String::new()),
                Err(why) => (false, why),
            };
            readiness.push(ObjectReadiness {
                object: reference,
                ready,
                message,
                missing: false,
            });
        }
        Ok(readiness)
    }
}

fn missing(object: ObjectRef) -> ObjectReadiness {
    ObjectReadiness {
        object,
        ready: false,
        message: "not found".to_owned(),
        missing: true,
    }
}

/// `Ok` when `object` (as the server has it) is ready, else why not.
pub(crate) fn assess(reference: &ObjectRef, object: &Value) -> Result<(), String> {
    let count = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64);
    let prefix = || reference.short();
    let observed = || {
        let generation = count("/metadata/generation").unwrap_or(0);
        let observed = count("/status/observedGeneration").unwrap_or(0);
        if observed < generation {
            Err(format!(
                "{}: generation {generation} not yet observed (at {observed})",
                prefix()
            ))
        } else {
            Ok(())
        }
    };
    match (reference.group(), reference.kind.as_str()) {
        ("apps", "Deployment") => {
            observed()?;
            let wanted = count("/spec/replicas").unwrap_or(1);
            let updated = count("/status/updatedReplicas").unwrap_or(0);
            let available = count("/status/availableReplicas").unwrap_or(0);
            if updated < wanted {
                return Err(format!(
                    "{}: {updated} of {wanted} replicas updated",
                    prefix()
                ));
            }
            if available < wanted {
                return Err(format!(
                    "{}: {available} of {wanted} replicas available",
                    prefix()
                ));
            }
            Ok(())
        }
        ("apps", "DaemonSet") => {
            observed()?;
            let desired = count("/status/desiredNumberScheduled").unwrap_or(0);
            let updated = count("/status/updatedNumberScheduled").unwrap_or(0);
            let ready = count("/status/numberReady").unwrap_or(0);
            if updated < desired {
                return Err(format!("{}: {updated} of {desired} pods updated", prefix()));
            }
            if ready < desired {
                return Err(format!("{}: {ready} of {desired} pods ready", prefix()));
            }
            Ok(())
        }
        ("apps", "StatefulSet") => {
            let wanted = count("/spec/replicas").unwrap_or(1);
            let ready = count("/status/readyReplicas").unwrap_or(0);
            if ready < wanted {
                return Err(format!("{}: {ready} of {wanted} replicas ready", prefix()));
            }
            Ok(())
        }
        ("batch", "Job") => {
            let holds = |kind: &str| condition(object, kind).filter(|c| c["status"] == "True");
            if let Some(failed) = holds("Failed") {
                let message = failed["message"].as_str().unwrap_or_default();
                return Err(format!("{}: failed: {message}", prefix()));
            }
            if holds("Complete").is_some() {
                Ok(())
            } else {
                Err(format!("{}: not complete", prefix()))
            }
        }
        ("apiregistration.k8s.io", "APIService") => match condition(object, "Available") {
            Some(c) if c["status"] == "True" => Ok(()),
            Some(c) => Err(format!(
                "{}: not available: {}",
                prefix(),
                c["message"].as_str().unwrap_or_default()
            )),
            None => Err(format!("{}: not available", prefix())),
        },
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let established =
                condition(object, "Established").is_some_and(|c| c["status"] == "True");
            if established {
                Ok(())
            } else {
                Err(format!("{}: not established", prefix()))
            }
        }
        _ => Ok(()),
    }
}

/// The status condition of type `kind`, if the object reports one.
fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == kind)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(object: Value) -> Result<(), String> {
        let reference = ObjectRef::of(&object).unwrap_or_else(|| panic!("no reference"));
        assess(&reference, &object)
    }

    fn deployment(generation: i64, replicas: i64, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "metrics-server", "namespace": "kube-system", "generation": generation},
            "spec": {"replicas": replicas},
            "status": status,
        })
    }

    #[test]
    fn deployments_are_ready_when_rolled_out_and_available() {
        let status = json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(check(deployment(2, 2, status)), Ok(()));
        assert_eq!(
            check(deployment(1, 1, json!({}))),
            Err(
                "Deployment kube-system/metrics-server: generation 1 not yet observed (at 0)"
                    .into()
            )
        );
        let status = json!({"observedGeneration": 1, "updatedReplicas": 1});
        assert_eq!(
            check(deployment(1, 1, status)),
            Err("Deployment kube-system/metrics-server: 0 of 1 replicas available".into())
        );
        let status = json!({"observedGeneration": 3, "updatedReplicas": 1, "availableReplicas": 2});
        assert_eq!(
            check(deployment(3, 2, status)),
            Err("Deployment kube-system/metrics-server: 1 of 2 replicas updated".into())
        );
    }

    #[test]
    fn daemon_sets_are_ready_when_every_pod_is_updated_and_ready() {
        let ds = |status: Value| {
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "csi", "namespace": "kube-system", "generation": 1},
                "status": status,
            })
        };
        let done = json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                          "updatedNumberScheduled": 3, "numberReady": 3});
        assert_eq!(check(ds(done)), Ok(()));
        let starting = json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                              "updatedNumberScheduled": 3, "numberReady": 1});
        assert_eq!(
            check(ds(starting)),
            Err("DaemonSet kube-system/csi: 1 of 3 pods ready".into())
        );
    }

    #[test]
    fn stateful_sets_are_ready_when_all_replicas_are() {
        let sts = |ready: i64| {
            json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "x"},
                "spec": {"replicas": 2},
                "status": {"readyReplicas": ready},
            })
        };
        assert_eq!(check(sts(2)), Ok(()));
        assert_eq!(
            check(sts(1)),
            Err("StatefulSet x/db: 1 of 2 replicas ready".into())
        );
    }

    #[test]
    fn crds_are_ready_when_established() {
        let crd = |status: &str| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "status": {"conditions": [{"type": "Established", "status": status}]},
            })
        };
        assert_eq!(check(crd("True")), Ok(()));
        assert_eq!(
            check(crd("False")),
            Err("CustomResourceDefinition widgets.example.com: not established".into())
        );
    }

    #[test]
    fn jobs_are_ready_when_complete_and_say_why_they_failed() {
        let job = |conditions: Value| {
            json!({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": "gen", "namespace": "ngf"},
                   "status": {"conditions": conditions}})
        };
        assert_eq!(
            check(job(json!([{"type": "Complete", "status": "True"}]))),
            Ok(())
        );
        assert_eq!(
            check(job(json!([]))),
            Err("Job ngf/gen: not complete".to_owned())
        );
        assert_eq!(
            check(job(
                json!([{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}])
            )),
            Err("Job ngf/gen: failed: BackoffLimitExceeded".to_owned())
        );
    }

    #[test]
    fn api_services_are_ready_when_available() {
        let svc = |conditions: Value| {
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": "v1beta1.metrics.k8s.io"},
                   "status": {"conditions": conditions}})
        };
        assert_eq!(
            check(svc(json!([{"type": "Available", "status": "True"}]))),
            Ok(())
        );
        assert_eq!(
            check(svc(json!([{"type": "Available", "status": "False", "message": "endpoints for service have no addresses"}]))),
            Err("APIService v1beta1.metrics.k8s.io: not available: endpoints for service have no addresses".to_owned())
        );
        assert_eq!(
            check(svc(json!([]))),
            Err("APIService v1beta1.metrics.k8s.io: not available".to_owned())
        );
    }

    #[test]
    fn anything_else_is_ready_when_it_exists() {
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(check(map), Ok(()));
    }
}

//! The simulated control plane and kubelets, one pass at a time ([`tick`]): garbage
//! collection, Deployments (through ReplicaSets), ReplicaSets, DaemonSets, Jobs, a
//! scheduler, kubelets that run what is scheduled on Ready nodes (a pod that must not
//! restart runs to completion on the pass after it started), and the status of
//! Deployments, DaemonSets, Jobs, PodDisruptionBudgets and APIServices (Available once
//! a Ready pod backs their Service).
//!
//! Everything happens at once: a new Deployment has its pods scheduled and Ready after
//! one pass (when there are Ready nodes). A template change replaces all pods at once.
//! Pods on a node that is not Ready are not Ready; pods on a node that is gone are
//! deleted, and their controllers make new ones elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::disruption::{budget_status, pod_healthy};
use crate::fields::timestamp;
use crate::object::{
    self, condition, condition_true, controller_ref, controller_uid, is_deleting, owner_uids,
    random_suffix, set_meta, set_path, short_hash,
};
use crate::selector::labels;
use crate::store::{ObjectKey, State};

/// How many garbage-collection rounds one pass makes (one per level of ownership).
const GC_ROUNDS: usize = 4;

/// One pass of every simulated controller.
pub(crate) fn tick(state: &mut State, now: DateTime<Utc>) {
    collect_garbage(state);
    collect_orphaned_pods(state);
    run_service_accounts(state, now);
    run_deployments(state, now);
    run_replica_sets(state, now);
    run_daemon_sets(state, now);
    run_jobs(state, now);
    schedule(state, now);
    run_kubelets(state, now);
    replica_set_status(state);
    deployment_status(state, now);
    daemon_set_status(state);
    job_statuses(state, now);
    budget_statuses(state, now);
    api_service_statuses(state, now);
}

fn key(group: &str, resource: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Stores `object` under `key` if it differs from what is stored.
fn put_if_changed(state: &mut State, key: ObjectKey, object: Value) {
    if state.get(&key) != Some(&object) {
        state.put(key, object);
    }
}

/// The objects of a resource, cloned, so the state can be changed while going through
/// them.
fn all(state: &State, group: &str, resource: &str) -> Vec<(ObjectKey, Value)> {
    state
        .of_resource(group, resource)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Creates an object a controller makes, with the fields the API server would set.
fn create(state: &mut State, key: ObjectKey, mut object: Value, now: DateTime<Utc>) {
    set_meta(&mut object, "uid", json!(uuid::Uuid::new_v4().to_string()));
    set_meta(&mut object, "creationTimestamp", json!(timestamp(now)));
    set_meta(&mut object, "generation", json!(1));
    state.put(key, object);
}

fn int(value: &Value, pointer: &str, default: i64) -> i64 {
    value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Deletes objects whose owners are all gone (background propagation).
fn collect_garbage(state: &mut State) {
    for _ in 0..GC_ROUNDS {
        let uids: BTreeSet<String> = state
            .objects
            .values()
            .map(|o| object::uid(o).to_owned())
            .collect();
        let orphans: Vec<ObjectKey> = state
            .objects
            .iter()
            .filter(|(_, o)| {
                let owners = owner_uids(o);
                !owners.is_empty() && owners.iter().all(|u| !uids.contains(*u))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if orphans.is_empty() {
            return;
        }
        for key in orphans {
            state.remove(&key);
        }
    }
}

/// The service-account controller: every namespace has a `default` ServiceAccount.
fn run_service_accounts(state: &mut State, now: DateTime<Utc>) {
    for (ns_key, namespace) in all(state, "", "namespaces") {
        if is_deleting(&namespace) {
            continue;
        }
        let sa = key("", "serviceaccounts", &ns_key.name, "default");
        if state.get(&sa).is_none() {
            let object = json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": ns_key.name},
            });
            create(state, sa, object, now);
        }
    }
}

/// A node as the scheduler and the kubelets see it.
#[derive(Debug, Clone)]
struct NodeView {
    name: String,
    ready: bool,
    unschedulable: bool,
    labels: BTreeMap<String, String>,
    taints: Vec<Value>,
    internal_ip: Option<String>,
}

fn nodes(state: &State) -> Vec<NodeView> {
    state
        .of_resource("", "nodes")
        .map(|(k, n)| NodeView {
            name: k.name.clone(),
            ready: condition_true(n, "Ready"),
            unschedulable: n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true),
            labels: labels(n),
            taints: n
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            internal_ip: n
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
                })
                .and_then(|a| a.get("address"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect()
}

fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (key, value, effect) = (
        text(taint, "key"),
        text(taint, "value"),
        text(taint, "effect"),
    );
    tolerations.iter().any(|t| {
        let operator = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        let t_key = text(t, "key");
        let t_effect = text(t, "effect");
        let key_ok = (t_key.is_empty() && operator == "Exists") || t_key == key;
        let value_ok = operator == "Exists" || text(t, "value") == value;
        key_ok && value_ok && (t_effect.is_empty() || t_effect == effect)
    })
}

/// Whether a pod with `spec` may run on `node`: node selector and taints (those that
/// keep pods away: `NoSchedule`, `NoExecute`).
fn fits(spec: &Value, node: &NodeView, extra_tolerations: &[Value]) -> bool {
    let selector_ok = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str())
        });
    let mut tolerations: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tolerations.extend_from_slice(extra_tolerations);
    let taints_ok = node.taints.iter().all(|taint| {
        !matches!(
            taint.get("effect").and_then(Value::as_str),
            Some("NoSchedule" | "NoExecute")
        ) || tolerates(&tolerations, taint)
    });
    selector_ok && taints_ok
}

/// Deletes pods bound to nodes that no longer exist.
fn collect_orphaned_pods(state: &mut State) {
    let names: BTreeSet<String> = state
        .of_resource("", "nodes")
        .map(|(k, _)| k.name.clone())
        .collect();
    let orphaned: Vec<ObjectKey> = state
        .of_resource("", "pods")
        .filter(|(_, p)| {
            p.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty() && !names.contains(n))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in orphaned {
        state.remove(&key);
    }
}

/// The live (not deleting) pods `owner` controls.
fn owned_pods(state: &State, owner: &Value) -> Vec<(ObjectKey, Value)> {
    let uid = object::uid(owner);
    let namespace = object::namespace(owner);
    state
        .of_resource("", "pods")
        .filter(|(k, p)| {
            k.namespace == namespace && controller_uid(p) == Some(uid) && !is_deleting(p)
        })
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect()
}

/// A pod from `template` for `owner`, named `prefix` plus a random suffix.
fn pod_from_template(owner: &Value, template: &Value, prefix: &str) -> (String, Value) {
    let name = format!("{prefix}{}", random_suffix(5));
    let mut metadata = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_path(&mut metadata, &["name"], json!(name));
    set_path(&mut metadata, &["generateName"], json!(prefix));
    set_path(
        &mut metadata,
        &["namespace"],
        json!(object::namespace(owner)),
    );
    set_path(
        &mut metadata,
        &["ownerReferences"],
        json!([controller_ref(owner)]),
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    (name, pod)
}

/// Pods least worth keeping first: unscheduled, then not ready, then the newest.
fn scale_down_order(pods: &mut [(ObjectKey, Value)]) {
    pods.sort_by_key(|(k, p)| {
        (
            p.pointer("/spec/nodeName").is_some(),
            pod_healthy(p),
            std::cmp::Reverse(
                object::meta_str(p, "creationTimestamp")
                    .unwrap_or("")
                    .to_owned(),
            ),
            k.name.clone(),
        )
    });
}

/// Deployments own one ReplicaSet per pod template; the current one runs all replicas,
/// the older ones none.
fn run_deployments(state: &mut State, now: DateTime<Utc>) {
    for (_, deployment) in all(state, "apps", "deployments") {
        if is_deleting(&deployment) {
            continue;
        }
        let namespace = object::namespace(&deployment).to_owned();
        let name = object::name(&deployment).to_owned();
        let uid = object::uid(&deployment).to_owned();
        let replicas = int(&deployment, "/spec/replicas", 1);
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = short_hash(&template);
        set_path(
            &mut template,
            &["metadata", "labels", "pod-template-hash"],
            json!(hash),
        );
        let owned: Vec<(ObjectKey, Value)> = state
            .of_resource("apps", "replicasets")
            .filter(|(k, rs)| k.namespace == namespace && controller_uid(rs) == Some(&uid))
            .map(|(k, rs)| (k.clone(), rs.clone()))
            .collect();
        let revision = owned.len() + 1;
        let mut current_found = false;
        for (key, rs) in owned {
            let current = rs
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str());
            current_found |= current;
            let mut updated = rs.clone();
            set_path(
                &mut updated,
                &["spec", "replicas"],
                json!(if current { replicas } else { 0 }),
            );
            put_if_changed(state, key, updated);
        }
        if current_found {
            continue;
        }
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        set_path(
            &mut selector,
            &["matchLabels", "pod-template-hash"],
            json!(hash),
        );
        let rs_name = format!("{name}-{hash}");
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": template["metadata"]["labels"],
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                "ownerReferences": [controller_ref(&deployment)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        });
        create(
            state,
            key("apps", "replicasets", &namespace, &rs_name),
            rs,
            now,
        );
    }
}

/// ReplicaSets keep `spec.replicas` pods.
fn run_replica_sets(state: &mut State, now: DateTime<Utc>) {
    for (_, rs) in all(state, "apps", "replicasets") {
        if is_deleting(&rs) {
            continue;
        }
        let replicas = usize::try_from(int(&rs, "/spec/replicas", 1)).unwrap_or(0);
        let mut pods = owned_pods(state, &rs);
        if pods.len() > replicas {
            scale_down_order(&mut pods);
            for (key, _) in pods.iter().take(pods.len() - replicas) {
                state.remove(key);
            }
        }
        let template = rs
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let prefix = format!("{}-", object::name(&rs));
        for _ in pods.len()..replicas {
            let (name, pod) = pod_from_template(&rs, &template, &prefix);
            create(
                state,
                key("", "pods", object::namespace(&rs), &name),
                pod,
                now,
            );
        }
    }
}

/// What the DaemonSet controller adds to its pods, so they run on cordoned and
/// struggling nodes.
fn daemon_tolerations() -> Vec<Value> {
    [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
    ]
    .iter()
    .map(|k| json!({"key": k, "operator": "Exists"}))
    .collect()
}

/// The nodes a DaemonSet with pod `spec` runs on: those whose selector and taints it
/// fits; cordoned nodes included, as the real DaemonSet controller does.
fn daemon_nodes<'a>(spec: &Value, nodes: &'a [NodeView]) -> Vec<&'a NodeView> {
    let tolerations = daemon_tolerations();
    nodes
        .iter()
        .filter(|n| fits(spec, n, &tolerations))
        .collect()
}

/// DaemonSets keep one pod on each node they fit.
fn run_daemon_sets(state: &mut State, now: DateTime<Utc>) {
    let nodes = nodes(state);
    for (_, ds) in all(state, "apps", "daemonsets") {
        if is_deleting(&ds) {
            continue;
        }
        let mut template = ds
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = short_hash(&template);
        set_path(
            &mut template,
            &["metadata", "labels", "controller-revision-hash"],
            json!(hash),
        );
        let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let wanted: BTreeSet<&str> = daemon_nodes(&spec, &nodes)
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let mut covered = BTreeSet::new();
        for (key, pod) in owned_pods(state, &ds) {
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let current = pod
                .pointer("/metadata/labels/controller-revision-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str());
            if current && wanted.contains(node) && covered.insert(node.to_owned()) {
                continue;
            }
            state.remove(&key);
        }
        let prefix = format!("{}-", object::name(&ds));
        for node in wanted.iter().filter(|n| !covered.contains(**n)) {
            let (name, mut pod) = pod_from_template(&ds, &template, &prefix);
            set_path(&mut pod, &["spec", "nodeName"], json!(node));
            let mut tolerations = pod
                .pointer("/spec/tolerations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            tolerations.extend(daemon_tolerations());
            set_path(
                &mut pod,
                &["spec", "tolerations"],
                Value::Array(tolerations),
            );
            create(
                state,
                key("", "pods", object::namespace(&ds), &name),
                pod,
                now,
            );
        }
    }
}

/// A condition that keeps its transition time while its status stays.
fn condition_of(
    object: &Value,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> Value {
    let status = if status { "True" } else { "False" };
    let since = condition(object, kind)
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(timestamp(now)));
    let mut c = json!({"type": kind, "status": status, "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// Binds pending pods to the Ready, schedulable node they fit with the fewest pods.
fn schedule(state: &mut State, now: DateTime<Utc>) {
    let nodes = nodes(state);
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for (_, pod) in state.of_resource("", "pods") {
        if let Some(node) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            *load.entry(node.to_owned()).or_default() += 1;
        }
    }
    for (key, pod) in all(state, "", "pods") {
        if is_deleting(&pod)
            || pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        {
            continue;
        }
        let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
        let chosen = nodes
            .iter()
            .filter(|n| n.ready && !n.unschedulable && fits(&spec, n, &[]))
            .min_by_key(|n| (load.get(&n.name).copied().unwrap_or(0), n.name.clone()));
        let mut updated = pod.clone();
        match chosen {
            Some(node) => {
                set_path(&mut updated, &["spec", "nodeName"], json!(node.name));
                *load.entry(node.name.clone()).or_default() += 1;
                set_path(
                    &mut updated,
                    &["status", "conditions"],
                    json!([condition_of(&pod, "PodScheduled", true, "", "", now)]),
                );
            }
            None => {
                let message = format!(
                    "0/{} nodes are available: no Ready, schedulable node fits the pod (simulated).",
                    nodes.len()
                );
                let unschedulable =
                    condition_of(&pod, "PodScheduled", false, "Unschedulable", &message, now);
                set_path(
                    &mut updated,
                    &["status", "conditions"],
                    json!([unschedulable]),
                );
            }
        }
        put_if_changed(state, key, updated);
    }
}

/// Runs the pods bound to nodes: Running, and Ready while their node is.
fn run_kubelets(state: &mut State, now: DateTime<Utc>) {
    let nodes: BTreeMap<String, NodeView> = nodes(state)
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect();
    for (key, pod) in all(state, "", "pods") {
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .and_then(|n| nodes.get(n))
        else {
            continue;
        };
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let ready = node.ready && !is_deleting(&pod);
        if ready && phase == Some("Running") && runs_to_completion(&pod) {
            put_if_changed(state, key, completed(&pod, now));
            continue;
        }
        let old_status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
        let started = old_status
            .get("startTime")
            .cloned()
            .unwrap_or_else(|| json!(timestamp(now)));
        let pod_ip = match old_status.get("podIP").and_then(Value::as_str) {
            Some(ip) => ip.to_owned(),
            None => state.next_ip("10.244"),
        };
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                        json!({
                            "name": name,
                            "image": c.get("image").cloned().unwrap_or(Value::Null),
                            "imageID": "",
                            "containerID": format!("containerd://{}", short_hash(&json!([object::uid(&pod), name]))),
                            "ready": ready,
                            "started": true,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": started}},
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut status = json!({
            "phase": "Running",
            "conditions": [
                condition_of(&pod, "PodReadyToStartContainers", true, "", "", now),
                condition_of(&pod, "Initialized", true, "", "", now),
                condition_of(&pod, "Ready", ready, "", "", now),
                condition_of(&pod, "ContainersReady", ready, "", "", now),
                condition_of(&pod, "PodScheduled", true, "", "", now),
            ],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": started,
            "containerStatuses": containers,
            "qosClass": old_status.get("qosClass").cloned().unwrap_or_else(|| json!("BestEffort")),
        });
        if let Some(ip) = &node.internal_ip {
            status["hostIP"] = json!(ip);
            status["hostIPs"] = json!([{"ip": ip}]);
        }
        let mut updated = pod.clone();
        set_path(&mut updated, &["status"], status);
        put_if_changed(state, key, updated);
    }
}

/// Whether the pod's containers exit rather than restart (a Job's pods, or
/// `restartPolicy: Never`/`OnFailure`).
fn runs_to_completion(pod: &Value) -> bool {
    matches!(
        pod.pointer("/spec/restartPolicy").and_then(Value::as_str),
        Some("Never" | "OnFailure")
    )
}

/// The pod with every container exited 0.
fn completed(pod: &Value, now: DateTime<Utc>) -> Value {
    let mut done = pod.clone();
    let at = json!(timestamp(now));
    if let Some(statuses) = done
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in statuses {
            let started = c
                .pointer("/state/running/startedAt")
                .cloned()
                .unwrap_or_else(|| at.clone());
            c["ready"] = json!(false);
            c["started"] = json!(false);
            c["state"] = json!({"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": at,
            }});
        }
    }
    set_path(&mut done, &["status", "phase"], json!("Succeeded"));
    if let Some(conditions) = done
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conditions {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                c["status"] = json!("False");
                c["reason"] = json!("PodCompleted");
            }
        }
    }
    done
}

/// Jobs run pods until `completions` of them have succeeded, `parallelism` at a time.
fn run_jobs(state: &mut State, now: DateTime<Utc>) {
    for (_, job) in all(state, "batch", "jobs") {
        if is_deleting(&job) || condition_true(&job, "Complete") {
            continue;
        }
        let completions = int(&job, "/spec/completions", 1);
        let parallelism = int(&job, "/spec/parallelism", 1);
        let pods = owned_pods(state, &job);
        let succeeded = count(pods.iter().filter(|(_, p)| phase(p) == "Succeeded").count());
        let active = count(
            pods.iter()
                .filter(|(_, p)| !matches!(phase(p), "Succeeded" | "Failed"))
                .count(),
        );
        let wanted = parallelism.min(completions - succeeded).max(0);
        let mut template = job
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let name = object::name(&job).to_owned();
        for (label, value) in [
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("job-name", name.as_str()),
            ("batch.kubernetes.io/controller-uid", object::uid(&job)),
            ("controller-uid", object::uid(&job)),
        ] {
            set_path(&mut template, &["metadata", "labels", label], json!(value));
        }
        let prefix = format!("{name}-");
        for _ in active..wanted {
            let (pod_name, pod) = pod_from_template(&job, &template, &prefix);
            create(
                state,
                key("", "pods", object::namespace(&job), &pod_name),
                pod,
                now,
            );
        }
    }
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// A Job's counts, and `Complete` (with `SuccessCriteriaMet`) once enough succeeded.
fn job_statuses(state: &mut State, now: DateTime<Utc>) {
    for (key, job) in all(state, "batch", "jobs") {
        let pods = owned_pods(state, &job);
        let succeeded = count(pods.iter().filter(|(_, p)| phase(p) == "Succeeded").count());
        let active = count(
            pods.iter()
                .filter(|(_, p)| !matches!(phase(p), "Succeeded" | "Failed"))
                .count(),
        );
        let old = job.get("status").cloned().unwrap_or_else(|| json!({}));
        let start = old
            .get("startTime")
            .cloned()
            .unwrap_or_else(|| json!(timestamp(now)));
        let mut status = json!({
            "startTime": start,
            "active": active,
            "succeeded": succeeded,
            "failed": 0,
            "ready": count(pods.iter().filter(|(_, p)| pod_healthy(p)).count()),
            "terminating": 0,
            "uncountedTerminatedPods": {},
        });
        let complete =
            condition_true(&job, "Complete") || succeeded >= int(&job, "/spec/completions", 1);
        if complete {
            let at = old
                .get("completionTime")
                .cloned()
                .unwrap_or_else(|| json!(timestamp(now)));
            status["active"] = json!(0);
            status["completionTime"] = at;
            status["conditions"] = json!([
                condition_of(
                    &job,
                    "SuccessCriteriaMet",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now
                ),
                condition_of(
                    &job,
                    "Complete",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now
                ),
            ]);
        }
        set_status(state, key, &job, status);
    }
}

/// An APIService is Available when it is served locally, or when a Ready pod backs the
/// Service it names (as the aggregator finds it reachable).
fn api_service_statuses(state: &mut State, now: DateTime<Utc>) {
    for (service_key, service) in all(state, "apiregistration.k8s.io", "apiservices") {
        let (available, reason, message) = match service.pointer("/spec/service") {
            None | Some(Value::Null) => (true, "Local", "Local APIServices are always available"),
            Some(target) => {
                let namespace = target["namespace"].as_str().unwrap_or_default();
                let name = target["name"].as_str().unwrap_or_default();
                match state.get(&key("", "services", namespace, name)) {
                    None => (false, "ServiceNotFound", "service is not present"),
                    Some(svc) => {
                        let selector = svc
                            .pointer("/spec/selector")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default();
                        let backed = !selector.is_empty()
                            && state.of_resource("", "pods").any(|(k, p)| {
                                k.namespace == namespace
                                    && pod_healthy(p)
                                    && selector.iter().all(|(label, value)| {
                                        p.pointer("/metadata/labels").and_then(|l| l.get(label))
                                            == Some(value)
                                    })
                            });
                        if backed {
                            (true, "Passed", "all checks passed")
                        } else {
                            (
                                false,
                                "MissingEndpoints",
                                "endpoints for service have no addresses",
                            )
                        }
                    }
                }
            }
        };
        let status = json!({"conditions": [
            condition_of(&service, "Available", available, reason, message, now),
        ]});
        set_status(state, service_key, &service, status);
    }
}

/// Sets `status` on the object under `key`, if it changed.
fn set_status(state: &mut State, key: ObjectKey, object: &Value, status: Value) {
    let mut updated = object.clone();
    set_path(&mut updated, &["status"], status);
    put_if_changed(state, key, updated);
}

fn replica_set_status(state: &mut State) {
    for (key, rs) in all(state, "apps", "replicasets") {
        let pods = owned_pods(state, &rs);
        let ready = count(pods.iter().filter(|(_, p)| pod_healthy(p)).count());
        let status = json!({
            "replicas": count(pods.len()),
            "fullyLabeledReplicas": count(pods.len()),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": int(&rs, "/metadata/generation", 1),
        });
        set_status(state, key, &rs, status);
    }
}

/// An int-or-percent of `total`, percentages rounded down (as `maxUnavailable` is).
fn scaled_down(value: Option<&Value>, total: i64, default: i64) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
            .map_or(default, |p| p * total / 100),
        _ => default,
    }
}

fn deployment_status(state: &mut State, now: DateTime<Utc>) {
    for (key, deployment) in all(state, "apps", "deployments") {
        let uid = object::uid(&deployment).to_owned();
        let namespace = key.namespace.clone();
        let desired = int(&deployment, "/spec/replicas", 1);
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = short_hash(&template);
        set_path(
            &mut template,
            &["metadata", "labels", "pod-template-hash"],
            json!(hash),
        );
        let sets: Vec<Value> = state
            .of_resource("apps", "replicasets")
            .filter(|(k, rs)| k.namespace == namespace && controller_uid(rs) == Some(&uid))
            .map(|(_, rs)| rs.clone())
            .collect();
        let (mut replicas, mut updated, mut ready) = (0, 0, 0);
        for rs in &sets {
            let pods = owned_pods(state, rs);
            let healthy = count(pods.iter().filter(|(_, p)| pod_healthy(p)).count());
            replicas += count(pods.len());
            ready += healthy;
            if rs
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str())
            {
                updated += count(pods.len());
            }
        }
        let max_unavailable = scaled_down(
            deployment.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
            desired,
            0,
        );
        let available = ready >= desired - max_unavailable;
        let complete = updated == desired && ready == desired && replicas == desired;
        let rs_name = format!("{}-{hash}", object::name(&deployment));
        let mut status = json!({
            "observedGeneration": int(&deployment, "/metadata/generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                condition_of(
                    &deployment,
                    "Available",
                    available,
                    if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                    now,
                ),
                condition_of(
                    &deployment,
                    "Progressing",
                    true,
                    if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                    &if complete {
                        format!("ReplicaSet \"{rs_name}\" has successfully progressed.")
                    } else {
                        format!("ReplicaSet \"{rs_name}\" is progressing.")
                    },
                    now,
                ),
            ],
        });
        if desired > ready {
            status["unavailableReplicas"] = json!(desired - ready);
        }
        set_status(state, key, &deployment, status);
    }
}

fn daemon_set_status(state: &mut State) {
    let nodes = nodes(state);
    for (key, ds) in all(state, "apps", "daemonsets") {
        let template = ds
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = short_hash(&template);
        let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let desired = count(daemon_nodes(&spec, &nodes).len());
        let pods = owned_pods(state, &ds);
        let ready = count(pods.iter().filter(|(_, p)| pod_healthy(p)).count());
        let updated = count(
            pods.iter()
                .filter(|(_, p)| {
                    p.pointer("/metadata/labels/controller-revision-hash")
                        .and_then(Value::as_str)
                        == Some(hash.as_str())
                })
                .count(),
        );
        let mut status = json!({
            "observedGeneration": int(&ds, "/metadata/generation", 1),
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": count(pods.len()),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": updated,
        });
        if desired > ready {
            status["numberUnavailable"] = json!(desired - ready);
        }
        set_status(state, key, &ds, status);
    }
}

fn budget_statuses(state: &mut State, now: DateTime<Utc>) {
    for (key, pdb) in all(state, "policy", "poddisruptionbudgets") {
        let s = budget_status(state, &pdb);
        let allowed = s.disruptions_allowed > 0;
        let generation = int(&pdb, "/metadata/generation", 1);
        // A budget's conditions are `metav1.Condition`s, whose message, reason and
        // observedGeneration are always there (clients that check types need them).
        let mut allowed_condition = condition_of(
            &pdb,
            "DisruptionAllowed",
            allowed,
            if allowed {
                "SufficientPods"
            } else {
                "InsufficientPods"
            },
            "",
            now,
        );
        allowed_condition["message"] = json!("");
        allowed_condition["observedGeneration"] = json!(generation);
        let status = json!({
            "observedGeneration": generation,
            "expectedPods": s.expected_pods,
            "currentHealthy": s.current_healthy,
            "desiredHealthy": s.desired_healthy,
            "disruptionsAllowed": s.disruptions_allowed,
            "conditions": [allowed_condition],
        });
        set_status(state, key, &pdb, status);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn node(taints: Value) -> NodeView {
        NodeView {
            name: "n".to_owned(),
            ready: true,
            unschedulable: false,
            labels: [("zone".to_owned(), "a".to_owned())].into(),
            taints: taints.as_array().cloned().unwrap_or_default(),
            internal_ip: None,
        }
    }

    #[test]
    fn taints_keep_pods_away_unless_tolerated() {
        let cp =
            node(json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]));
        assert!(!fits(&json!({}), &cp, &[]));
        let tolerating = json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]});
        assert!(fits(&tolerating, &cp, &[]));
        assert!(fits(
            &json!({"tolerations": [{"operator": "Exists"}]}),
            &cp,
            &[]
        ));
        let soft = node(json!([{"key": "k", "effect": "PreferNoSchedule"}]));
        assert!(fits(&json!({}), &soft, &[]));
    }

    #[test]
    fn node_selectors_must_match() {
        let n = node(json!([]));
        assert!(fits(&json!({"nodeSelector": {"zone": "a"}}), &n, &[]));
        assert!(!fits(&json!({"nodeSelector": {"zone": "b"}}), &n, &[]));
    }

    #[test]
    fn max_unavailable_rounds_down() {
        assert_eq!(scaled_down(Some(&json!("25%")), 3, 0), 0);
        assert_eq!(scaled_down(Some(&json!("25%")), 4, 0), 1);
        assert_eq!(scaled_down(Some(&json!(2)), 4, 0), 2);
        assert_eq!(scaled_down(None, 4, 0), 0);
    }
}

//! Draining nodes through the eviction API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use kaas_cloud::{DrainProgress, WorkloadError};
use serde_json::{Value, json};

fn deployment(name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "registry.example/web:1"}]},
            },
        },
    })
}

fn daemon_set(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "registry.example/agent:1"}]},
            },
        },
    })
}

/// `(namespace/name, owner kind)` of the pods on `node`.
fn pods_on(cluster: &common::Cluster, node: &str) -> Vec<(String, String)> {
    cluster
        .api
        .list("v1", "Pod", None)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap(),
                    p["metadata"]["name"].as_str().unwrap()
                ),
                p["metadata"]["ownerReferences"][0]["kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

fn owners(pods: &[(String, String)]) -> Vec<&str> {
    let mut kinds: Vec<&str> = pods.iter().map(|(_, kind)| kind.as_str()).collect();
    kinds.sort_unstable();
    kinds
}

fn unschedulable(cluster: &common::Cluster, node: &str) -> bool {
    let node = cluster.get("v1", "Node", "", node).unwrap();
    node["spec"]["unschedulable"] == true
}

#[tokio::test]
async fn a_drain_cordons_and_evicts_all_but_daemon_set_pods_and_respects_budgets() {
    let cluster = common::cluster(&[common::node("worker-0"), common::node("worker-1")]).await;
    cluster.api.apply(deployment("web", 2), "test").unwrap();
    cluster.api.apply(daemon_set("agent"), "test").unwrap();
    cluster.settle();
    // One web pod per node (the scheduler spreads), one agent pod per node.
    assert_eq!(
        owners(&pods_on(&cluster, "worker-0")),
        ["DaemonSet", "ReplicaSet"]
    );
    assert_eq!(
        owners(&pods_on(&cluster, "worker-1")),
        ["DaemonSet", "ReplicaSet"]
    );

    let progress = cluster.client.drain("worker-0").await.unwrap();
    assert!(
        matches!(
            progress,
            DrainProgress::Drained | DrainProgress::InProgress { .. }
        ),
        "{progress:?}"
    );
    assert!(unschedulable(&cluster, "worker-0"));
    assert_eq!(owners(&pods_on(&cluster, "worker-0")), ["DaemonSet"]);
    // Nothing left to evict: drained, and still cordoned.
    assert_eq!(
        cluster.client.drain("worker-0").await.unwrap(),
        DrainProgress::Drained
    );
    assert!(unschedulable(&cluster, "worker-0"));

    // The replacement goes to the other node; a budget that needs both web pods then
    // blocks draining it, naming the pods.
    cluster.settle();
    assert_eq!(
        owners(&pods_on(&cluster, "worker-1")),
        ["DaemonSet", "ReplicaSet", "ReplicaSet"]
    );
    let budget = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    });
    cluster.api.apply(budget, "test").unwrap();
    cluster.settle();
    let progress = cluster.client.drain("worker-1").await.unwrap();
    let DrainProgress::Blocked { message } = progress else {
        panic!("not blocked: {progress:?}")
    };
    let web_pod = pods_on(&cluster, "worker-1")
        .into_iter()
        .find(|(_, kind)| kind == "ReplicaSet")
        .unwrap()
        .0;
    assert!(message.contains(&format!("pod {web_pod}")), "{message}");
    assert!(message.contains("disruption budget"), "{message}");
    assert!(unschedulable(&cluster, "worker-1"));
    assert_eq!(
        owners(&pods_on(&cluster, "worker-1")),
        ["DaemonSet", "ReplicaSet", "ReplicaSet"]
    );

    cluster
        .api
        .delete("policy/v1", "PodDisruptionBudget", "default", "web")
        .unwrap();
    assert_eq!(
        cluster.client.drain("worker-1").await.unwrap(),
        DrainProgress::Drained
    );
    assert_eq!(owners(&pods_on(&cluster, "worker-1")), ["DaemonSet"]);
}

#[tokio::test]
async fn draining_a_node_that_does_not_exist_is_an_api_error() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    let error = cluster.client.drain("worker-9").await.unwrap_err();
    let WorkloadError::Api { message } = &error else {
        panic!("not an API error: {error:?}")
    };
    assert!(message.contains("\"worker-9\" not found"), "{message}");
}

//! Nodes as kaas sees them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use kaas_cloud::DrainProgress;
use kaas_kube_sim::NodeSpec;

#[tokio::test]
async fn nodes_are_mapped_with_readiness_provider_id_labels_and_cordon() {
    let zone = "topology.kubernetes.io/zone";
    let cluster = common::cluster(&[
        NodeSpec {
            name: "worker-a".into(),
            provider_id: "openstack:///abc".into(),
            ready: true,
            kubelet_version: "v1.35.2".into(),
            labels: BTreeMap::from([(zone.to_owned(), "az-1".to_owned())]),
            ..NodeSpec::default()
        },
        NodeSpec {
            name: "worker-b".into(),
            provider_id: "openstack:///def".into(),
            ready: false,
            kubelet_version: "v1.35.1".into(),
            ..NodeSpec::default()
        },
    ])
    .await;

    let mut nodes = cluster.client.nodes().await.unwrap();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let [a, b] = nodes.as_slice() else {
        panic!("two nodes expected: {nodes:?}")
    };
    assert_eq!(a.name, "worker-a");
    assert!(a.ready);
    assert_eq!(a.provider_id, "openstack:///abc");
    assert_eq!(a.server_id(), Some("abc"));
    assert_eq!(a.kubelet_version, "v1.35.2");
    assert_eq!(a.labels.get(zone).map(String::as_str), Some("az-1"));
    assert!(a.last_transition.is_some());
    assert!(!a.unschedulable);

    assert_eq!(b.name, "worker-b");
    assert!(!b.ready);
    assert_eq!(b.provider_id, "openstack:///def");
    assert_eq!(b.kubelet_version, "v1.35.1");
    assert!(b.last_transition.is_some());
    assert!(!b.unschedulable);

    // Cordoning (the first step of a drain) shows; nothing runs there, so it is drained.
    assert_eq!(
        cluster.client.drain("worker-b").await.unwrap(),
        DrainProgress::Drained
    );
    let nodes = cluster.client.nodes().await.unwrap();
    let cordoned: Vec<(&str, bool)> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.unschedulable))
        .collect();
    assert!(cordoned.contains(&("worker-b", true)), "{cordoned:?}");
    assert!(cordoned.contains(&("worker-a", false)), "{cordoned:?}");
}

/// Joining machines' bootstrap tokens: registered as kubeadm's Secrets, extended by a
/// second registration, listed without their secret, deleted (twice is fine).
#[tokio::test]
async fn bootstrap_tokens_are_registered_extended_listed_and_deleted() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    let client = &cluster.client;
    assert!(client.bootstrap_tokens().await.unwrap().is_empty());
    let mut token = kaas_cloud::JoinToken {
        id: "abcdef".to_owned(),
        secret: "0123456789abcdef".to_owned(),
        machine: "demo-workers-x7k2p".to_owned(),
        expires: "2026-12-04T16:00:00Z".parse().unwrap(),
    };
    client.register_bootstrap_token(&token).await.unwrap();
    token.expires = "2026-12-04T17:00:00Z".parse().unwrap();
    client.register_bootstrap_token(&token).await.unwrap();
    let stored = cluster
        .get("v1", "Secret", "kube-system", "bootstrap-token-abcdef")
        .unwrap();
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token");
    assert_eq!(
        stored["metadata"]["labels"]["kaas.dev/machine"],
        "demo-workers-x7k2p"
    );
    assert_eq!(
        client.bootstrap_tokens().await.unwrap(),
        [kaas_cloud::RegisteredToken {
            id: "abcdef".to_owned(),
            machine: "demo-workers-x7k2p".to_owned(),
            expires: Some(token.expires),
        }]
    );
    client.delete_bootstrap_token("abcdef").await.unwrap();
    client.delete_bootstrap_token("abcdef").await.unwrap();
    assert!(client.bootstrap_tokens().await.unwrap().is_empty());
    assert!(
        cluster
            .get("v1", "Secret", "kube-system", "bootstrap-token-abcdef")
            .is_none()
    );
}

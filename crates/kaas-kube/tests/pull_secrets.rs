//! A cluster's registry pull Secret: written into every namespace and named by each
//! `default` ServiceAccount, found stale when its digest changes, and taken out again,
//! leaving what others put in the ServiceAccounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use serde_json::json;

const NAME: &str = "kaas-registry";

fn pull_secrets_of(cluster: &common::Cluster, namespace: &str) -> serde_json::Value {
    cluster
        .get("v1", "ServiceAccount", namespace, "default")
        .unwrap()["imagePullSecrets"]
        .clone()
}

#[tokio::test]
async fn pull_secrets_go_into_every_namespace_and_come_out_again() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    cluster.settle();
    let all = ["default", "kube-node-lease", "kube-public", "kube-system"];
    let stale = cluster.client.stale_pull_secrets(NAME, "d1").await.unwrap();
    assert_eq!(stale, all);

    // Someone else's pull secret in one ServiceAccount stays.
    cluster
        .client
        .apply(
            "others",
            &[json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": "kube-public"},
                "imagePullSecrets": [{"name": "theirs"}],
            })],
        )
        .await
        .unwrap();

    let config = br#"{"auths": {"registry.example": {"auth": "dTpw"}}}"#;
    for _ in 0..2 {
        // Twice: the second time changes nothing.
        cluster
            .client
            .put_pull_secrets(NAME, &stale, config, "d1")
            .await
            .unwrap();
    }
    assert!(
        cluster
            .client
            .stale_pull_secrets(NAME, "d1")
            .await
            .unwrap()
            .is_empty()
    );
    // A renewed credential has another digest: every namespace is stale again.
    assert_eq!(
        cluster.client.stale_pull_secrets(NAME, "d2").await.unwrap(),
        all
    );
    let secret = cluster.get("v1", "Secret", "kube-system", NAME).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, config);
    assert_eq!(
        pull_secrets_of(&cluster, "kube-system"),
        json!([{"name": NAME}])
    );
    assert_eq!(
        pull_secrets_of(&cluster, "kube-public"),
        json!([{"name": "theirs"}, {"name": NAME}])
    );

    cluster.client.remove_pull_secrets(NAME).await.unwrap();
    cluster.client.remove_pull_secrets(NAME).await.unwrap();
    for namespace in all {
        assert_eq!(
            cluster.get("v1", "Secret", namespace, NAME),
            None,
            "{namespace}"
        );
    }
    assert_eq!(pull_secrets_of(&cluster, "kube-system"), json!([]));
    assert_eq!(
        pull_secrets_of(&cluster, "kube-public"),
        json!([{"name": "theirs"}])
    );
    assert_eq!(
        cluster.client.stale_pull_secrets(NAME, "d1").await.unwrap(),
        all
    );
}

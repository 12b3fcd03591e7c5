//! Readiness of applied objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use kaas_kube::ObjectRef;
use serde_json::json;

#[tokio::test]
async fn a_deployment_is_ready_once_the_controllers_rolled_it_out_and_missing_objects_say_so() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "metrics-server"}},
            "template": {
                "metadata": {"labels": {"app": "metrics-server"}},
                "spec": {"containers": [{"name": "m", "image": "registry.k8s.io/metrics-server:v0.8.0"}]},
            },
        },
    });
    let absent = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "absent", "namespace": "default"},
    });
    let unserved = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default"},
    });
    let objects = [deployment.clone(), absent.clone(), unserved.clone()];
    cluster
        .client
        .apply("addons", std::slice::from_ref(&deployment))
        .await
        .unwrap();

    let readiness = cluster.client.readiness(&objects).await.unwrap();
    assert_eq!(readiness.len(), 3);
    let first = &readiness[0];
    assert_eq!(first.object, ObjectRef::of(&deployment).unwrap());
    assert!(!first.ready && !first.missing, "{first:?}");
    assert!(
        first
            .message
            .starts_with("Deployment kube-system/metrics-server: "),
        "{first:?}"
    );
    for (r, object) in readiness[1..].iter().zip([&absent, &unserved]) {
        assert_eq!(r.object, ObjectRef::of(object).unwrap());
        assert!(!r.ready && r.missing, "{r:?}");
        assert_eq!(r.message, "not found");
    }

    cluster.settle();
    let readiness = cluster.client.readiness(&objects[..1]).await.unwrap();
    assert!(readiness[0].ready, "{:?}", readiness[0]);
    assert!(!readiness[0].missing);
    assert_eq!(readiness[0].message, "");
}

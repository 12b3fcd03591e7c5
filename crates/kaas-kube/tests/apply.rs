//! Server-side apply of sets of objects, with ApplySet pruning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kaas_cloud::WorkloadError;
use kaas_kube::{ApplyReport, ObjectRef};
use serde_json::{Value, json};

const SET: &str = "addons";

/// The ApplySet id of the ConfigMap parent `name` in kube-system, straight from KEP-3659:
/// base64url (no padding) of SHA-256 of `<name>.<namespace>.<Kind>.<group>`, as kubectl
/// formats it (`applyset-%s-v1`).
fn kep_id(name: &str) -> String {
    let gknn = format!("{name}.kube-system.ConfigMap.");
    let hash = ring::digest::digest(&ring::digest::SHA256, gknn.as_bytes());
    format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(hash.as_ref()))
}

fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "addons"}})
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

fn widget() -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "addons"},
        "spec": {"size": 3},
    })
}

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "metrics-server"}},
            "template": {
                "metadata": {"labels": {"app": "metrics-server"}},
                "spec": {"containers": [{"name": "metrics-server", "image": image}]},
            },
        },
    })
}

fn config_map() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "addons", "labels": {"tier": "addons"}},
        "data": {"level": "info"},
    })
}

fn storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "csi-cinder-sc-delete"},
        "provisioner": "cinder.csi.openstack.org",
        "reclaimPolicy": "Delete",
    })
}

/// `(apiVersion, kind, namespace, name)` of each object.
fn coordinates(object: &Value) -> (String, String, String, String) {
    let r = ObjectRef::of(object).unwrap();
    (
        r.api_version,
        r.kind,
        r.namespace.unwrap_or_default(),
        r.name,
    )
}

fn stored(cluster: &common::Cluster, object: &Value) -> Option<Value> {
    let (api_version, kind, namespace, name) = coordinates(object);
    cluster.get(&api_version, &kind, &namespace, &name)
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn managers(object: &Value) -> Vec<&str> {
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect()
}

fn parent(cluster: &common::Cluster) -> Value {
    cluster.get("v1", "ConfigMap", "kube-system", SET).unwrap()
}

#[tokio::test]
async fn a_set_is_applied_in_order_reapplied_idempotently_and_pruned() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    let id = kep_id(SET);
    // The custom resource comes before its CRD, the Namespace after what goes in it.
    let all = vec![
        widget(),
        deployment("registry.k8s.io/metrics-server:v0.8.0"),
        config_map(),
        storage_class(),
        crd(),
        namespace(),
    ];

    let report = cluster.client.apply(SET, &all).await.unwrap();
    assert_eq!(
        report,
        ApplyReport {
            applied: 6,
            pruned: vec![],
            replaced: vec![],
        }
    );
    for object in &all {
        let found = stored(&cluster, object).unwrap_or_else(|| panic!("missing: {object}"));
        assert_eq!(
            found["metadata"]["labels"]["applyset.kubernetes.io/part-of"], id,
            "{found}"
        );
        assert!(managers(&found).contains(&"kaas"), "{found}");
    }
    // The manifest's own labels stay.
    assert_eq!(
        stored(&cluster, &config_map()).unwrap()["metadata"]["labels"]["tier"],
        "addons"
    );
    // The parent, as KEP-3659 has it.
    let recorded = parent(&cluster);
    assert_eq!(
        recorded["metadata"]["labels"]["applyset.kubernetes.io/id"],
        id
    );
    assert_eq!(kaas_kube::applyset_id(SET), id);
    assert_eq!(
        recorded["metadata"]["annotations"],
        json!({
            "applyset.kubernetes.io/tooling": "kaas/v1",
            "applyset.kubernetes.io/contains-group-kinds":
                "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Deployment.apps,\
                 Namespace,StorageClass.storage.k8s.io,Widget.example.com",
            "applyset.kubernetes.io/additional-namespaces": "addons",
        })
    );
    assert!(managers(&recorded).contains(&"kaas"), "{recorded}");

    // Again: nothing changes.
    let before: Vec<String> = all
        .iter()
        .map(|o| resource_version(&stored(&cluster, o).unwrap()))
        .collect();
    let parent_before = resource_version(&parent(&cluster));
    let report = cluster.client.apply(SET, &all).await.unwrap();
    assert_eq!(
        report,
        ApplyReport {
            applied: 6,
            pruned: vec![],
            replaced: vec![],
        }
    );
    let after: Vec<String> = all
        .iter()
        .map(|o| resource_version(&stored(&cluster, o).unwrap()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(resource_version(&parent(&cluster)), parent_before);

    // A new image is applied.
    let mut changed = all.clone();
    changed[1] = deployment("registry.k8s.io/metrics-server:v0.8.1");
    cluster.client.apply(SET, &changed).await.unwrap();
    let found = stored(&cluster, &changed[1]).unwrap();
    assert_eq!(
        found["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/metrics-server:v0.8.1"
    );
    assert_eq!(found["metadata"]["generation"], 2);

    // Without the ConfigMap and the StorageClass: exactly those two are pruned.
    let fewer = vec![changed[0].clone(), changed[1].clone(), crd(), namespace()];
    let report = cluster.client.apply(SET, &fewer).await.unwrap();
    assert_eq!(
        report,
        ApplyReport {
            applied: 4,
            pruned: vec![
                ObjectRef::of(&config_map()).unwrap(),
                ObjectRef::of(&storage_class()).unwrap(),
            ],
            replaced: vec![],
        }
    );
    assert_eq!(
        report
            .pruned
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "v1 ConfigMap addons/settings",
            "storage.k8s.io/v1 StorageClass csi-cinder-sc-delete"
        ]
    );
    assert!(stored(&cluster, &config_map()).is_none());
    assert!(stored(&cluster, &storage_class()).is_none());
    for object in &fewer {
        assert!(
            stored(&cluster, object).is_some(),
            "pruned too much: {object}"
        );
    }
    // Other ConfigMaps (the parent, those of others) are left alone.
    assert!(cluster.get("v1", "ConfigMap", "kube-system", SET).is_some());
    let recorded = parent(&cluster);
    assert_eq!(
        recorded["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "CustomResourceDefinition.apiextensions.k8s.io,Deployment.apps,Namespace,Widget.example.com"
    );

    // An empty set prunes everything, CRDs last, and records nothing.
    let report = cluster.client.apply(SET, &[]).await.unwrap();
    let pruned: Vec<String> = report.pruned.iter().map(ToString::to_string).collect();
    assert_eq!(
        pruned,
        [
            "apps/v1 Deployment kube-system/metrics-server",
            "example.com/v1 Widget addons/w1",
            "v1 Namespace addons",
            "apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com",
        ]
    );
    let recorded = parent(&cluster);
    assert_eq!(
        recorded["metadata"]["annotations"],
        json!({
            "applyset.kubernetes.io/tooling": "kaas/v1",
            "applyset.kubernetes.io/contains-group-kinds": "",
        })
    );
    let report = cluster.client.apply(SET, &[]).await.unwrap();
    assert_eq!(report, ApplyReport::default());
}

#[tokio::test]
async fn kinds_no_longer_served_are_skipped_when_pruning() {
    let cluster = common::cluster(&[]).await;
    cluster
        .client
        .apply(SET, &[namespace(), crd(), widget(), storage_class()])
        .await
        .unwrap();
    // Someone deletes the CRD (and so the widget) behind kaas's back.
    cluster
        .api
        .delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "widgets.example.com",
        )
        .unwrap();
    let report = cluster.client.apply(SET, &[namespace()]).await.unwrap();
    assert_eq!(report.pruned, [ObjectRef::of(&storage_class()).unwrap()]);
    assert_eq!(
        parent(&cluster)["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"],
        "Namespace"
    );
}

#[tokio::test]
async fn sets_do_not_prune_each_other() {
    let cluster = common::cluster(&[]).await;
    cluster
        .client
        .apply("one", &[namespace(), config_map()])
        .await
        .unwrap();
    let mut other_map = config_map();
    other_map["metadata"]["namespace"] = json!("kube-system");
    let others = [other_map, storage_class()];
    cluster.client.apply("two", &others).await.unwrap();
    let report = cluster.client.apply("one", &[]).await.unwrap();
    assert_eq!(
        report.pruned,
        [
            ObjectRef::of(&config_map()).unwrap(),
            ObjectRef::of(&namespace()).unwrap()
        ]
    );
    for object in &others {
        assert!(stored(&cluster, object).is_some(), "{object}");
    }
}

fn ingress_class(controller: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "nginx"},
        "spec": {"controller": controller},
    })
}

fn job(image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "check", "namespace": "kube-system"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "check", "image": image}],
        }}},
    })
}

#[tokio::test]
async fn objects_whose_immutable_fields_change_are_replaced_and_the_rest_patched() {
    let cluster = common::cluster(&[]).await;
    let before = [
        ingress_class("k8s.io/ingress-nginx"),
        job("example.org/check:1"),
        config_map(),
        namespace(),
    ];
    let report = cluster.client.apply(SET, &before).await.unwrap();
    assert!(report.replaced.is_empty());
    let class_uid = stored(&cluster, &before[0]).unwrap()["metadata"]["uid"].clone();
    let map_uid = stored(&cluster, &before[2]).unwrap()["metadata"]["uid"].clone();

    // The API server refuses the new controller (the field is immutable) ...
    let mut map = config_map();
    map["data"] = json!({"changed": "yes"});
    let after = [
        ingress_class("nginx.org/ingress-controller"),
        job("example.org/check:2"),
        map,
        namespace(),
    ];
    // ... so the class and the Job go and come back; the ConfigMap is patched.
    let report = cluster.client.apply(SET, &after).await.unwrap();
    assert_eq!(
        report.replaced,
        [
            ObjectRef::of(&after[0]).unwrap(),
            ObjectRef::of(&after[1]).unwrap()
        ]
    );
    assert!(report.pruned.is_empty());
    let class = stored(&cluster, &after[0]).unwrap();
    assert_eq!(class["spec"]["controller"], "nginx.org/ingress-controller");
    assert_ne!(class["metadata"]["uid"], class_uid, "a new object");
    assert_eq!(
        class["metadata"]["labels"]["applyset.kubernetes.io/part-of"],
        kep_id(SET)
    );
    let job = stored(&cluster, &after[1]).unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "example.org/check:2"
    );
    let map = stored(&cluster, &after[2]).unwrap();
    assert_eq!(map["metadata"]["uid"], map_uid, "patched in place");
    assert_eq!(map["data"]["changed"], "yes");

    // Applied again, nothing is replaced.
    let report = cluster.client.apply(SET, &after).await.unwrap();
    assert!(report.replaced.is_empty());
}

#[tokio::test]
async fn namespaced_objects_without_a_namespace_go_to_default_and_are_kept() {
    let cluster = common::cluster(&[]).await;
    let mut map = config_map();
    map["metadata"].as_object_mut().unwrap().remove("namespace");
    cluster.client.apply(SET, &[map.clone()]).await.unwrap();
    assert!(
        cluster
            .get("v1", "ConfigMap", "default", "settings")
            .is_some()
    );
    let report = cluster.client.apply(SET, &[map]).await.unwrap();
    assert_eq!(report.pruned, []);
    assert_eq!(
        parent(&cluster)["metadata"]["annotations"]["applyset.kubernetes.io/additional-namespaces"],
        "default"
    );
}

#[tokio::test]
async fn a_configmap_that_is_not_a_kaas_parent_is_refused() {
    let cluster = common::cluster(&[]).await;
    let plain = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
    });
    cluster.api.apply(plain, "kubeadm").unwrap();
    let error = cluster
        .client
        .apply("kube-proxy", &[storage_class()])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        WorkloadError::Api {
            message: "ConfigMap kube-system/kube-proxy exists and is not an apply set parent"
                .to_owned()
        }
    );
    assert!(stored(&cluster, &storage_class()).is_none());
}

#[tokio::test]
async fn unknown_kinds_are_refused_before_anything_is_applied() {
    let cluster = common::cluster(&[]).await;
    let gadget = json!({
        "apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "default"},
    });
    let error = cluster
        .client
        .apply(SET, &[storage_class(), gadget])
        .await
        .unwrap_err();
    let WorkloadError::Api { message } = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("does not serve kind Gadget in example.com/v1"),
        "{message}"
    );
    assert!(stored(&cluster, &storage_class()).is_none());
    assert!(cluster.get("v1", "ConfigMap", "kube-system", SET).is_none());
}

//! The SQLite store against a real file in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kaas_store::{
    ChangeOp, Deleted, ListFilter, ListPosition, ObjectKey, Operator, Requirement, SqliteStore,
    Store, StoreError,
};
use serde_json::{Value, json};

const KIND: &str = "Cluster";

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kaas.db"))
        .await
        .unwrap();
    (dir, store)
}

fn object(name: &str, spec: Value) -> Value {
    json!({ "apiVersion": "kaas.dev/v1alpha1", "kind": KIND, "metadata": { "name": name }, "spec": spec })
}

fn meta<'a>(object: &'a Value, field: &str) -> &'a Value {
    &object["metadata"][field]
}

fn rv(object: &Value) -> String {
    meta(object, "resourceVersion").as_str().unwrap().to_owned()
}

async fn all_changes(store: &SqliteStore) -> Vec<kaas_store::Change> {
    store.changes_since(0, 1000).await.unwrap()
}

#[tokio::test]
async fn create_sets_server_owned_metadata() {
    let (_dir, store) = open().await;
    let mut input = object("a", json!({"replicas": 1}));
    input["metadata"]["labels"] = json!({"team": "x"});
    input["metadata"]["finalizers"] = json!(["kaas.dev/cleanup"]);
    input["metadata"]["owner"] = json!({"kind": "Tenant", "name": "t", "uid": "owner-1"});
    // Server-owned fields in the input are ignored.
    input["metadata"]["uid"] = json!("client-uid");
    input["metadata"]["generation"] = json!(7);
    input["metadata"]["resourceVersion"] = json!("99");
    input["metadata"]["deletionRequestedAt"] = json!("2020-01-01T00:00:00Z");
    let before = chrono::Utc::now();

    let created = store.create(KIND, "acme", input).await.unwrap();

    let uid = meta(&created, "uid").as_str().unwrap();
    assert_ne!(uid, "client-uid");
    assert_eq!(uuid::Uuid::parse_str(uid).unwrap().get_version_num(), 4);
    assert_eq!(meta(&created, "tenant"), "acme");
    assert_eq!(meta(&created, "name"), "a");
    assert_eq!(meta(&created, "generation"), 1);
    assert!(meta(&created, "deletionRequestedAt").is_null());
    let created_at: chrono::DateTime<chrono::Utc> = meta(&created, "createdAt")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(created_at >= before - chrono::Duration::seconds(1));
    assert!(meta(&created, "createdAt").as_str().unwrap().ends_with('Z'));
    assert_eq!(meta(&created, "labels"), &json!({"team": "x"}));
    assert_eq!(meta(&created, "finalizers"), &json!(["kaas.dev/cleanup"]));
    assert_eq!(meta(&created, "owner")["uid"], "owner-1");
    assert_eq!(created["spec"], json!({"replicas": 1}));

    let changes = all_changes(&store).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(rv(&created), changes[0].seq.to_string());
    assert_eq!(changes[0].op, ChangeOp::Created);
    assert_eq!(changes[0].uid, uid);
    assert_eq!(changes[0].key, ObjectKey::new(KIND, "acme", "a"));

    let got = store
        .get(&ObjectKey::new(KIND, "acme", "a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, created);
    // It decodes as the core metadata type.
    let decoded: kaas_core::ObjectMeta =
        serde_json::from_value(created["metadata"].clone()).unwrap();
    assert_eq!(decoded.generation, 1);
    assert_eq!(decoded.tenant, "acme");
}

#[tokio::test]
async fn create_rejects_missing_name() {
    let (_dir, store) = open().await;
    for bad in [
        json!({"metadata": {"name": ""}}),
        json!({"metadata": {}}),
        json!({"metadata": {"name": 3}}),
        json!({"spec": {}}),
        json!("not an object"),
    ] {
        let err = store.create(KIND, "acme", bad.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err:?}");
    }
    assert!(all_changes(&store).await.is_empty());
}

#[tokio::test]
async fn create_twice_is_already_exists() {
    let (_dir, store) = open().await;
    store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap();
    let err = store
        .create(KIND, "acme", object("a", json!({"x": 1})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(all_changes(&store).await.len(), 1);
    // The same name in another tenant or of another kind is another object.
    store
        .create(KIND, "other", object("a", json!({})))
        .await
        .unwrap();
    store
        .create("Machine", "acme", object("a", json!({})))
        .await
        .unwrap();
    let got = store
        .get(&ObjectKey::new(KIND, "acme", "a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["spec"], json!({}));
}

#[tokio::test]
async fn stale_resource_version_conflicts_and_changes_nothing() {
    let (_dir, store) = open().await;
    let key = ObjectKey::new(KIND, "acme", "a");
    let v1 = store
        .create(KIND, "acme", object("a", json!({"n": 1})))
        .await
        .unwrap();
    let mut next = v1.clone();
    next["spec"] = json!({"n": 2});
    let v2 = store.update(&key, next).await.unwrap().unwrap();
    assert_ne!(rv(&v1), rv(&v2));

    let mut stale = v1.clone();
    stale["spec"] = json!({"n": 3});
    let err = store.update(&key, stale.clone()).await.unwrap_err();
    match err {
        StoreError::Conflict { given, current, .. } => {
            assert_eq!(given, rv(&v1));
            assert_eq!(current, rv(&v2));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // A missing resourceVersion is a conflict as well.
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let err = store.update(&key, stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    assert_eq!(store.get(&key).await.unwrap().unwrap(), v2);
    assert_eq!(all_changes(&store).await.len(), 2);

    let mut missing = v2;
    missing["metadata"]["name"] = json!("nope");
    let err = store
        .update(&ObjectKey::new(KIND, "acme", "nope"), missing)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn generation_moves_only_with_spec_and_server_fields_are_kept() {
    let (_dir, store) = open().await;
    let key = ObjectKey::new(KIND, "acme", "a");
    let v1 = store
        .create(KIND, "acme", object("a", json!({"n": 1})))
        .await
        .unwrap();

    let mut status_only = v1.clone();
    status_only["status"] = json!({"phase": "Provisioning"});
    // Attempts to change server-owned fields are ignored.
    status_only["metadata"]["uid"] = json!("forged");
    status_only["metadata"]["createdAt"] = json!("2000-01-01T00:00:00Z");
    status_only["metadata"]["generation"] = json!(40);
    status_only["metadata"]["deletionRequestedAt"] = json!("2000-01-01T00:00:00Z");
    let v2 = store.update(&key, status_only).await.unwrap().unwrap();
    assert_eq!(meta(&v2, "generation"), 1);
    assert_ne!(rv(&v2), rv(&v1));
    assert_eq!(meta(&v2, "uid"), meta(&v1, "uid"));
    assert_eq!(meta(&v2, "createdAt"), meta(&v1, "createdAt"));
    assert_eq!(meta(&v2, "tenant"), "acme");
    assert!(meta(&v2, "deletionRequestedAt").is_null());
    assert_eq!(v2["status"]["phase"], "Provisioning");

    let mut spec_change = v2.clone();
    spec_change["spec"] = json!({"n": 2});
    let v3 = store.update(&key, spec_change).await.unwrap().unwrap();
    assert_eq!(meta(&v3, "generation"), 2);

    let v4 = store.update(&key, v3.clone()).await.unwrap().unwrap();
    assert_eq!(meta(&v4, "generation"), 2);
    assert_eq!(store.get(&key).await.unwrap().unwrap(), v4);

    let ops: Vec<ChangeOp> = all_changes(&store).await.iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        [
            ChangeOp::Created,
            ChangeOp::Updated,
            ChangeOp::Updated,
            ChangeOp::Updated
        ]
    );
}

#[tokio::test]
async fn update_with_another_name_is_invalid() {
    let (_dir, store) = open().await;
    let v1 = store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap();
    store
        .create(KIND, "acme", object("b", json!({})))
        .await
        .unwrap();
    let err = store
        .update(&ObjectKey::new(KIND, "acme", "b"), v1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn delete_without_finalizers_removes() {
    let (_dir, store) = open().await;
    let key = ObjectKey::new(KIND, "acme", "a");
    let created = store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap();
    assert_eq!(store.delete(&key).await.unwrap(), Deleted::Removed);
    assert_eq!(store.get(&key).await.unwrap(), None);
    let last = all_changes(&store).await.pop().unwrap();
    assert_eq!(last.op, ChangeOp::Deleted);
    assert_eq!(last.uid, meta(&created, "uid").as_str().unwrap());
    assert!(matches!(
        store.delete(&key).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    // The name is free again, for a new object with a new uid.
    let again = store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap();
    assert_ne!(meta(&again, "uid"), meta(&created, "uid"));
}

#[tokio::test]
async fn delete_with_finalizers_marks_until_they_are_gone() {
    let (_dir, store) = open().await;
    let key = ObjectKey::new(KIND, "acme", "a");
    let mut input = object("a", json!({}));
    input["metadata"]["finalizers"] = json!(["kaas.dev/cloud", "kaas.dev/dns"]);
    let created = store.create(KIND, "acme", input).await.unwrap();

    let Deleted::Marked(marked) = store.delete(&key).await.unwrap() else {
        panic!("expected Marked");
    };
    assert!(meta(&marked, "deletionRequestedAt").is_string());
    assert_ne!(rv(&marked), rv(&created));
    assert_eq!(meta(&marked, "generation"), 1);
    assert_eq!(store.get(&key).await.unwrap().unwrap(), marked);
    let changes_after_mark = all_changes(&store).await.len();
    assert_eq!(changes_after_mark, 2);

    // Asking again changes nothing.
    assert_eq!(
        store.delete(&key).await.unwrap(),
        Deleted::Marked(marked.clone())
    );
    assert_eq!(all_changes(&store).await.len(), changes_after_mark);

    // One finalizer left: still there, still marked, even if the client drops the mark.
    let mut one_left = marked.clone();
    one_left["metadata"]["finalizers"] = json!(["kaas.dev/dns"]);
    one_left["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("deletionRequestedAt");
    let v3 = store.update(&key, one_left).await.unwrap().unwrap();
    assert_eq!(
        meta(&v3, "deletionRequestedAt"),
        meta(&marked, "deletionRequestedAt")
    );

    // No finalizer left: gone.
    let mut none_left = v3.clone();
    none_left["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    assert_eq!(store.update(&key, none_left).await.unwrap(), None);
    assert_eq!(store.get(&key).await.unwrap(), None);
    let last = all_changes(&store).await.pop().unwrap();
    assert_eq!(last.op, ChangeOp::Deleted);
    assert_eq!(last.key, key);
    assert_eq!(last.uid, meta(&created, "uid").as_str().unwrap());
}

#[tokio::test]
async fn changes_are_ordered_and_announced() {
    let (_dir, store) = open().await;
    let mut rx = store.latest_change();
    assert_eq!(*rx.borrow_and_update(), 0);

    let a = store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rx.borrow_and_update().to_string(), rv(&a));

    let b = store
        .create(KIND, "acme", object("b", json!({})))
        .await
        .unwrap();
    let a2 = store
        .update(&ObjectKey::new(KIND, "acme", "a"), a.clone())
        .await
        .unwrap()
        .unwrap();
    store
        .delete(&ObjectKey::new(KIND, "acme", "b"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap()
        .unwrap();
    let latest = *rx.borrow_and_update();

    let changes = all_changes(&store).await;
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), latest);
    let summary: Vec<(&str, ChangeOp)> = changes
        .iter()
        .map(|c| (c.key.name.as_str(), c.op))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", ChangeOp::Created),
            ("b", ChangeOp::Created),
            ("a", ChangeOp::Updated),
            ("b", ChangeOp::Deleted),
        ]
    );
    assert_eq!(seqs[1].to_string(), rv(&b));
    assert_eq!(seqs[2].to_string(), rv(&a2));

    assert_eq!(
        store.changes_since(seqs[1], 1000).await.unwrap(),
        changes[2..]
    );
    assert_eq!(store.changes_since(0, 2).await.unwrap(), changes[..2]);
    assert!(store.changes_since(latest, 10).await.unwrap().is_empty());

    // Failed writes announce nothing.
    store
        .create(KIND, "acme", object("a", json!({})))
        .await
        .unwrap_err();
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test]
async fn list_filters_by_tenant_and_owner_ordered_by_name() {
    let (_dir, store) = open().await;
    let owned = |name: &str, owner: &str| {
        let mut o = object(name, json!({}));
        o["metadata"]["owner"] = json!({"kind": KIND, "name": "c", "uid": owner});
        o
    };
    store
        .create("Machine", "acme", owned("m-2", "u1"))
        .await
        .unwrap();
    store
        .create("Machine", "acme", owned("m-1", "u1"))
        .await
        .unwrap();
    store
        .create("Machine", "acme", owned("m-3", "u2"))
        .await
        .unwrap();
    store
        .create("Machine", "beta", owned("m-0", "u1"))
        .await
        .unwrap();
    store
        .create("Machine", "beta", object("m-1", json!({})))
        .await
        .unwrap();
    store
        .create(KIND, "acme", object("c", json!({})))
        .await
        .unwrap();

    let names = |objs: Vec<Value>| -> Vec<(String, String)> {
        objs.iter()
            .map(|o| {
                (
                    meta(o, "name").as_str().unwrap().to_owned(),
                    meta(o, "tenant").as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |n: &str, t: &str| (n.to_owned(), t.to_owned());

    let all = store.list("Machine", &ListFilter::default()).await.unwrap();
    // By tenant, then name.
    assert_eq!(
        names(all),
        [
            pair("m-1", "acme"),
            pair("m-2", "acme"),
            pair("m-3", "acme"),
            pair("m-0", "beta"),
            pair("m-1", "beta")
        ]
    );
    let acme = ListFilter {
        tenant: Some("acme".into()),
        owner_uid: None,
        ..Default::default()
    };
    assert_eq!(
        names(store.list("Machine", &acme).await.unwrap()),
        [
            pair("m-1", "acme"),
            pair("m-2", "acme"),
            pair("m-3", "acme")
        ]
    );
    let u1 = ListFilter {
        tenant: None,
        owner_uid: Some("u1".into()),
        ..Default::default()
    };
    assert_eq!(
        names(store.list("Machine", &u1).await.unwrap()),
        [
            pair("m-1", "acme"),
            pair("m-2", "acme"),
            pair("m-0", "beta")
        ]
    );
    let acme_u1 = ListFilter {
        tenant: Some("acme".into()),
        owner_uid: Some("u1".into()),
        ..Default::default()
    };
    assert_eq!(
        names(store.list("Machine", &acme_u1).await.unwrap()),
        [pair("m-1", "acme"), pair("m-2", "acme")]
    );
    assert_eq!(
        names(store.list(KIND, &ListFilter::default()).await.unwrap()),
        [pair("c", "acme")]
    );
    assert!(
        store
            .list("Nothing", &ListFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn events_are_appended_and_listed_since() {
    let (_dir, store) = open().await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(
            store
                .append_event("acme", "uid-1", json!({"n": i}))
                .await
                .unwrap(),
        );
        store
            .append_event("acme", "uid-2", json!({"other": i}))
            .await
            .unwrap();
        store
            .append_event("beta", "uid-1", json!({"tenant": "beta"}))
            .await
            .unwrap();
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let all = store.list_events("acme", "uid-1", 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(
        all.iter().map(|e| e.body["n"].clone()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    let tail = store
        .list_events("acme", "uid-1", seqs[2], 100)
        .await
        .unwrap();
    assert_eq!(tail, all[3..]);
    let limited = store
        .list_events("acme", "uid-1", seqs[0], 2)
        .await
        .unwrap();
    assert_eq!(limited, all[1..3]);
    assert!(
        store
            .list_events("acme", "uid-3", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_events("beta", "uid-1", 0, 100)
            .await
            .unwrap()
            .len(),
        5
    );
    // Events are not object changes.
    assert!(all_changes(&store).await.is_empty());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kaas.db");
    let key = ObjectKey::new(KIND, "acme", "a");
    let (v2, event_seq, last_seq) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let v1 = store
            .create(KIND, "acme", object("a", json!({"n": 1})))
            .await
            .unwrap();
        let mut next = v1.clone();
        next["spec"] = json!({"n": 2});
        let v2 = store.update(&key, next).await.unwrap().unwrap();
        let event_seq = store
            .append_event("acme", "uid", json!({"reason": "Created"}))
            .await
            .unwrap();
        let last_seq = *store.latest_change().borrow();
        store.close().await;
        (v2, event_seq, last_seq)
    };
    assert_eq!(last_seq.to_string(), rv(&v2));

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap(), v2);
    assert_eq!(*store.latest_change().borrow(), last_seq);
    assert_eq!(all_changes(&store).await.len(), 2);
    let events = store.list_events("acme", "uid", 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, event_seq);
    // Sequences continue after a restart.
    let b = store
        .create(KIND, "acme", object("b", json!({})))
        .await
        .unwrap();
    assert!(rv(&b).parse::<i64>().unwrap() > last_seq);
    // And the reopened store still enforces optimistic concurrency.
    let err = store
        .update(&key, object("a", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_one_winner_per_resource_version() {
    let (_dir, store) = open().await;
    let store = Arc::new(store);
    let key = ObjectKey::new(KIND, "acme", "a");
    store
        .create(KIND, "acme", object("a", json!({"writer": -1})))
        .await
        .unwrap();

    const TASKS: i64 = 16;
    for round in 0..5 {
        let current = store.get(&key).await.unwrap().unwrap();
        let mut tasks = Vec::new();
        for writer in 0..TASKS {
            let store = Arc::clone(&store);
            let key = key.clone();
            let mut next = current.clone();
            next["spec"] = json!({"writer": writer, "round": round});
            tasks.push(tokio::spawn(async move { store.update(&key, next).await }));
        }
        let mut winners = Vec::new();
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(Some(v)) => winners.push(v),
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                other => panic!("unexpected result {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(conflicts, TASKS - 1, "round {round}");
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(stored, winners[0]);
        assert_eq!(meta(&stored, "generation"), round + 2);
    }
    assert_eq!(all_changes(&store).await.len(), 6);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Widget {
    metadata: kaas_core::ObjectMeta,
    spec: WidgetSpec,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct WidgetSpec {
    size: u32,
}

impl kaas_core::Object for Widget {
    const KIND: &'static str = "Widget";
    fn meta(&self) -> &kaas_core::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kaas_core::ObjectMeta {
        &mut self.metadata
    }
}

#[tokio::test]
async fn typed_access_round_trips_core_metadata() {
    use kaas_store::StoreExt;
    let (_dir, store) = open().await;
    let mut w = Widget {
        metadata: kaas_core::ObjectMeta::named("w"),
        spec: WidgetSpec { size: 1 },
    };
    w.metadata.finalizers = vec!["kaas.dev/test".into()];
    let created = store.create_obj("acme", &w).await.unwrap();
    assert_eq!(created.metadata.tenant, "acme");
    assert_eq!(created.metadata.generation, 1);
    assert!(created.metadata.created_at.is_some());

    let mut next = created.clone();
    next.spec.size = 2;
    let updated = store.update_obj(&next).await.unwrap().unwrap();
    assert_eq!(updated.metadata.generation, 2);
    assert_eq!(
        store.get_obj::<Widget>("acme", "w").await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        store
            .list_obj::<Widget>(&ListFilter::default())
            .await
            .unwrap(),
        std::slice::from_ref(&updated)
    );

    let marked = store
        .delete_obj::<Widget>("acme", "w")
        .await
        .unwrap()
        .unwrap();
    assert!(marked.metadata.is_deleting());
    let mut done = marked;
    done.metadata.finalizers.clear();
    assert_eq!(store.update_obj(&done).await.unwrap(), None);
    assert_eq!(store.get_obj::<Widget>("acme", "w").await.unwrap(), None);
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_kept_per_tenant() {
    let (dir, store) = open().await;
    let a1 = store
        .append_audit("acme", json!({"verb": "create", "who": "alice"}))
        .await
        .unwrap();
    let b1 = store
        .append_audit("globex", json!({"verb": "delete", "who": "bob"}))
        .await
        .unwrap();
    let a2 = store
        .append_audit("acme", json!({"verb": "update", "who": "alice"}))
        .await
        .unwrap();
    assert!(a1 < b1 && b1 < a2);
    let acme: Vec<i64> = store
        .list_audit(Some("acme"), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(acme, [a1, a2]);
    let all = store.list_audit(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].body["who"], "bob");
    assert_eq!(store.list_audit(None, a1, 1).await.unwrap()[0].seq, b1);

    // The database itself refuses to change or remove an entry.
    let path = dir.path().join("kaas.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in [
        "UPDATE audit SET body = '{}' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 1",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.list_audit(None, 0, 100).await.unwrap().len(), 3);
}

#[tokio::test]
async fn artifacts_are_kept_by_their_digest_and_checked_against_it() {
    let (dir, store) = open().await;
    let chart = b"a chart's bytes".to_vec();
    let digest = kaas_store::sha256_digest(&chart);
    assert_eq!(store.get_artifact(&digest).await.unwrap(), None);

    let stored = store
        .put_artifact(&digest, "chart", "oci://r.example/c/hello:1.0.0", &chart)
        .await
        .unwrap();
    assert_eq!(stored.digest, digest);
    assert_eq!(stored.kind, "chart");
    assert_eq!(stored.size, chart.len() as u64);
    assert_eq!(
        store.get_artifact(&digest).await.unwrap(),
        Some(chart.clone())
    );

    // Bytes under another digest than theirs are refused, naming both.
    let other = kaas_store::sha256_digest(b"other bytes");
    let err = store
        .put_artifact(&other, "chart", "x", &chart)
        .await
        .unwrap_err();
    match &err {
        StoreError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, &other);
            assert_eq!(actual, &digest);
        }
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains(&other) && err.to_string().contains(&digest));
    assert_eq!(store.get_artifact(&other).await.unwrap(), None);
    for bad in ["", "sha256:abc", "md5:0", &digest.to_uppercase()] {
        let err = store
            .put_artifact(bad, "chart", "x", &chart)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Invalid(_) | StoreError::DigestMismatch { .. }
            ),
            "{bad}: {err:?}"
        );
    }

    // A second put of the same digest keeps the first row.
    let again = store
        .put_artifact(&digest, "chart", "another reference", &chart)
        .await
        .unwrap();
    assert_eq!(again, stored);

    let manifest = b"kind: Namespace\n".to_vec();
    let manifest_digest = kaas_store::sha256_digest(&manifest);
    store
        .put_artifact(&manifest_digest, "manifest", "https://x/a.yaml", &manifest)
        .await
        .unwrap();
    let listed = store.list_artifacts().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.windows(2).all(|w| w[0].digest < w[1].digest));
    assert!(listed.contains(&stored));
    let created: chrono::DateTime<chrono::Utc> = stored.created_at.parse().unwrap();
    assert!(created <= chrono::Utc::now());

    // They survive a restart.
    store.close().await;
    let store = SqliteStore::open(&dir.path().join("kaas.db"))
        .await
        .unwrap();
    assert_eq!(store.get_artifact(&digest).await.unwrap(), Some(chart));
    assert_eq!(store.list_artifacts().await.unwrap(), listed);
}

#[tokio::test]
async fn a_stored_artifact_that_changed_is_not_handed_out() {
    let (dir, store) = open().await;
    let bytes = b"original".to_vec();
    let digest = kaas_store::sha256_digest(&bytes);
    store
        .put_artifact(&digest, "manifest", "x", &bytes)
        .await
        .unwrap();
    store.close().await;
    // Changed behind the store's back.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("kaas.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE artifacts SET bytes = ? WHERE digest = ?")
        .bind(b"tampered".to_vec())
        .bind(&digest)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&dir.path().join("kaas.db"))
        .await
        .unwrap();
    let err = store.get_artifact(&digest).await.unwrap_err();
    assert!(err.to_string().contains(&digest), "{err}");
}

/// The (tenant, name) of each object.
fn keys(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| {
            (
                meta(o, "tenant").as_str().unwrap().to_owned(),
                meta(o, "name").as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Pages through every tenant's objects of KIND, `limit` at a time, calling `between`
/// after each page; returns every object returned and how many pages it took.
async fn page_through(
    store: &SqliteStore,
    filter: &ListFilter,
    limit: u32,
    mut between: impl AsyncFnMut(usize),
) -> (Vec<(String, String)>, usize) {
    let mut seen = Vec::new();
    let mut after: Option<ListPosition> = None;
    let mut pages = 0;
    loop {
        let page = ListFilter {
            after: after.clone(),
            limit: Some(limit + 1),
            ..filter.clone()
        };
        let mut objects = store.list(KIND, &page).await.unwrap();
        let more = objects.len() > limit as usize;
        objects.truncate(limit as usize);
        pages += 1;
        let got = keys(&objects);
        seen.extend(got.iter().cloned());
        between(pages).await;
        if !more {
            return (seen, pages);
        }
        let (tenant, name) = got.last().unwrap().clone();
        after = Some(ListPosition { tenant, name });
    }
}

#[tokio::test]
async fn pages_return_every_object_once_while_others_are_inserted() {
    let (_dir, store) = open().await;
    let mut before = Vec::new();
    for tenant in ["acme", "beta", "gamma"] {
        for i in (0..40).step_by(2) {
            let name = format!("c-{i:03}");
            store
                .create(KIND, tenant, object(&name, json!({})))
                .await
                .unwrap();
            before.push((tenant.to_owned(), name));
        }
    }
    before.sort();
    // Between pages, objects are added in each tenant: before and after the place the
    // listing has reached (odd names fall between the even ones).
    let mut added = Vec::new();
    let (seen, pages) = page_through(&store, &ListFilter::default(), 7, async |page| {
        for tenant in ["acme", "beta", "gamma"] {
            let name = format!("c-{:03}", page * 4 % 40 + 1);
            if store
                .create(KIND, tenant, object(&name, json!({})))
                .await
                .is_ok()
            {
                added.push((tenant.to_owned(), name));
            }
        }
    })
    .await;
    assert!(pages > 5, "{pages} pages");
    // In order, each at most once.
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "out of order or twice");
    // Every object that was there all along, exactly once.
    for key in &before {
        assert_eq!(seen.iter().filter(|k| *k == key).count(), 1, "{key:?}");
    }
    // Only objects that exist.
    for key in &seen {
        assert!(before.contains(key) || added.contains(key), "{key:?}");
    }
    assert!(!added.is_empty());
}

#[tokio::test]
async fn pages_of_one_tenant_stay_in_it() {
    let (_dir, store) = open().await;
    for tenant in ["acme", "beta"] {
        for i in 0..10 {
            store
                .create(KIND, tenant, object(&format!("c-{i}"), json!({})))
                .await
                .unwrap();
        }
    }
    let (seen, pages) = page_through(&store, &ListFilter::tenant("beta"), 3, async |_| {}).await;
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|(t, _)| t == "beta"), "{seen:?}");
    // A page that ends exactly at the end says no more.
    let (seen, pages) = page_through(&store, &ListFilter::tenant("beta"), 5, async |_| {}).await;
    assert_eq!((seen.len(), pages), (10, 2));
}

#[tokio::test]
async fn lists_filter_by_phase_and_labels() {
    let (_dir, store) = open().await;
    let specs = [
        (
            "acme",
            "a",
            "Available",
            json!({"env": "prod", "team": "web"}),
        ),
        ("acme", "b", "Failed", json!({"env": "prod"})),
        (
            "acme",
            "c",
            "Available",
            json!({"env": "dev", "kaas.dev/owned": ""}),
        ),
        ("acme", "d", "Pending", json!({})),
        ("beta", "a", "Available", json!({"env": "prod"})),
    ];
    for (tenant, name, phase, labels) in specs {
        let mut o = object(name, json!({}));
        o["metadata"]["labels"] = labels;
        o["status"] = json!({"phase": phase});
        store.create(KIND, tenant, o).await.unwrap();
    }
    let selected = async |filter: ListFilter| -> Vec<String> {
        let objects = store.list(KIND, &filter).await.unwrap();
        let count = store.count(KIND, &filter).await.unwrap();
        assert_eq!(count, objects.len() as u64, "{filter:?}");
        keys(&objects)
            .into_iter()
            .map(|(t, n)| format!("{t}/{n}"))
            .collect()
    };
    let labelled = |requirements: &[(&str, Operator)]| ListFilter {
        labels: requirements
            .iter()
            .map(|(key, operator)| Requirement {
                key: (*key).to_owned(),
                operator: operator.clone(),
            })
            .collect(),
        ..ListFilter::tenant("acme")
    };
    let s = |v: &str| v.to_owned();
    assert_eq!(
        selected(labelled(&[("env", Operator::Equals(s("prod")))])).await,
        ["acme/a", "acme/b"]
    );
    // Without the label is "not equal" and "not in", as in Kubernetes.
    assert_eq!(
        selected(labelled(&[("env", Operator::NotEquals(s("prod")))])).await,
        ["acme/c", "acme/d"]
    );
    assert_eq!(
        selected(labelled(&[(
            "env",
            Operator::In(vec![s("dev"), s("prod")])
        )]))
        .await,
        ["acme/a", "acme/b", "acme/c"]
    );
    assert_eq!(
        selected(labelled(&[("env", Operator::NotIn(vec![s("dev")]))])).await,
        ["acme/a", "acme/b", "acme/d"]
    );
    assert_eq!(
        selected(labelled(&[("kaas.dev/owned", Operator::Exists)])).await,
        ["acme/c"]
    );
    assert_eq!(
        selected(labelled(&[("env", Operator::DoesNotExist)])).await,
        ["acme/d"]
    );
    assert_eq!(
        selected(labelled(&[
            ("env", Operator::Equals(s("prod"))),
            ("team", Operator::Exists)
        ]))
        .await,
        ["acme/a"]
    );
    // A label's value is compared as it is: no pattern, no injection.
    assert!(
        selected(labelled(&[("env", Operator::Equals(s("' OR 1=1 --")))]))
            .await
            .is_empty()
    );
    let phase = |tenant: Option<&str>, phase: &str| ListFilter {
        tenant: tenant.map(str::to_owned),
        phase: Some(phase.to_owned()),
        ..ListFilter::default()
    };
    assert_eq!(
        selected(phase(None, "Available")).await,
        ["acme/a", "acme/c", "beta/a"]
    );
    assert_eq!(
        selected(phase(Some("acme"), "Available")).await,
        ["acme/a", "acme/c"]
    );
    assert!(selected(phase(None, "Deleting")).await.is_empty());
    assert_eq!(
        selected(ListFilter {
            labels: labelled(&[("env", Operator::Equals(s("prod")))]).labels,
            ..phase(None, "Available")
        })
        .await,
        ["acme/a", "beta/a"]
    );
    // A phase that changes moves the object between the lists.
    let mut b = store
        .get(&ObjectKey::new(KIND, "acme", "b"))
        .await
        .unwrap()
        .unwrap();
    b["status"]["phase"] = json!("Available");
    store
        .update(&ObjectKey::new(KIND, "acme", "b"), b)
        .await
        .unwrap();
    assert_eq!(
        selected(phase(Some("acme"), "Available")).await,
        ["acme/a", "acme/b", "acme/c"]
    );
    assert!(selected(phase(None, "Failed")).await.is_empty());
}

#[tokio::test]
async fn a_field_of_each_object_is_listed_as_its_json() {
    let (_dir, store) = open().await;
    store
        .create(
            KIND,
            "acme",
            object("a", json!({"replicas": 1, "pools": [{"n": 2}]})),
        )
        .await
        .unwrap();
    store
        .create(KIND, "acme", object("b", json!("just a \"string\"")))
        .await
        .unwrap();
    store
        .create(KIND, "acme", json!({"metadata": {"name": "c"}}))
        .await
        .unwrap();
    store
        .create(KIND, "other", object("d", json!(4)))
        .await
        .unwrap();
    let specs = store
        .list_field_text(KIND, &ListFilter::tenant("acme"), "spec")
        .await
        .unwrap();
    let parsed: Vec<(&str, Value)> = specs
        .iter()
        .map(|(name, text)| (name.as_str(), serde_json::from_str(text).unwrap()))
        .collect();
    assert_eq!(
        parsed,
        vec![
            ("a", json!({"replicas": 1, "pools": [{"n": 2}]})),
            ("b", json!("just a \"string\"")),
            ("c", Value::Null),
        ]
    );
    // The same as the generic way (a whole listing) gives.
    let everyone = ListFilter::default();
    let kinds = store
        .list_field_text(KIND, &everyone, "kind")
        .await
        .unwrap();
    assert_eq!(kinds.len(), 4);
    assert_eq!(kinds[3], ("d".to_owned(), "\"Cluster\"".to_owned()));
    // A member's name is data, not part of the query.
    let odd = store
        .list_field_text(KIND, &everyone, "spec') OR 1=1 --")
        .await
        .unwrap();
    assert!(odd.iter().all(|(_, text)| text == "null"), "{odd:?}");
}

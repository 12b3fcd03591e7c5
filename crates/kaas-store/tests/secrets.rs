//! Secrets at rest: sealing, key loading and rotation, against real files and a real
//! SQLite store in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kaas_core::OwnerRef;
use kaas_store::{
    Change, Deleted, ListFilter, ObjectKey, Sealed, SecretBox, SecretError, Secrets, SqliteStore,
    Store, StoreError, StoredEvent, add_key, rewrap_all,
};
use serde_json::{Value, json};
use tokio::sync::watch;

const MARKER: &str = "-----BEGIN PRIVATE KEY-----TESTMARKER";
const AAD: &str = "Secret/default/demo-pki";

fn sealer(keys: &[(&str, u8)], current: &str) -> SecretBox {
    let keys = keys
        .iter()
        .map(|(id, byte)| ((*id).to_owned(), [*byte; 32]))
        .collect();
    SecretBox::from_keys(keys, current).unwrap()
}

async fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("kaas.db")).await.unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn flip_first_byte(b64: &str) -> String {
    let mut bytes = B64.decode(b64).unwrap();
    bytes[0] ^= 1;
    B64.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Sealing

#[test]
fn seal_open_round_trip() {
    let sealer = sealer(&[("k1", 1)], "k1");
    for plaintext in [&b""[..], b"x", MARKER.as_bytes(), &[0_u8; 10_000]] {
        let sealed = sealer.seal(plaintext, AAD).unwrap();
        assert_eq!(sealed.kek_id, "k1");
        assert_eq!(sealer.open(&sealed, AAD).unwrap(), plaintext);
        // Survives its JSON form, as it is stored.
        let back: Sealed = serde_json::from_value(serde_json::to_value(&sealed).unwrap()).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(sealer.open(&back, AAD).unwrap(), plaintext);
    }
}

#[test]
fn tampering_fails() {
    let sealer = sealer(&[("k1", 1)], "k1");
    let sealed = sealer.seal(MARKER.as_bytes(), AAD).unwrap();
    let decrypt_failure = |result: Result<Vec<u8>, SecretError>| {
        let err = result.unwrap_err();
        assert!(matches!(err, SecretError::Decrypt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("wrong key or tampered data"), "{msg}");
        assert!(!msg.contains("TESTMARKER"), "{msg}");
    };

    let mut t = sealed.clone();
    t.ciphertext = flip_first_byte(&t.ciphertext);
    decrypt_failure(sealer.open(&t, AAD));

    let mut t = sealed.clone();
    t.nonce = flip_first_byte(&t.nonce);
    decrypt_failure(sealer.open(&t, AAD));

    let mut t = sealed.clone();
    t.wrapped_key = flip_first_byte(&t.wrapped_key);
    decrypt_failure(sealer.open(&t, AAD));

    let mut t = sealed.clone();
    t.key_nonce = flip_first_byte(&t.key_nonce);
    decrypt_failure(sealer.open(&t, AAD));

    // Moved to another object.
    decrypt_failure(sealer.open(&sealed, "Secret/default/other"));
    decrypt_failure(sealer.open(&sealed, "Secret/other/demo-pki"));

    // Truncated ciphertext (tag cut off).
    let mut t = sealed.clone();
    let bytes = B64.decode(&t.ciphertext).unwrap();
    t.ciphertext = B64.encode(&bytes[..bytes.len() - 1]);
    decrypt_failure(sealer.open(&t, AAD));

    // Not even well formed.
    let mut t = sealed.clone();
    t.nonce = B64.encode([0_u8; 11]);
    assert!(matches!(
        sealer.open(&t, AAD),
        Err(SecretError::Malformed(_))
    ));
    let mut t = sealed.clone();
    t.ciphertext = "%%%".into();
    assert!(matches!(
        sealer.open(&t, AAD),
        Err(SecretError::Malformed(_))
    ));

    // The untouched blob still opens.
    assert_eq!(sealer.open(&sealed, AAD).unwrap(), MARKER.as_bytes());
}

#[test]
fn other_key_sets_cannot_open() {
    let sealed = sealer(&[("k1", 1)], "k1").seal(b"data", AAD).unwrap();

    // Same id, other key bytes.
    let err = sealer(&[("k1", 2)], "k1").open(&sealed, AAD).unwrap_err();
    assert!(
        matches!(err, SecretError::Decrypt { what: "data key" }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cannot decrypt the data key: wrong key or tampered data"
    );

    // The key is not loaded at all.
    let err = sealer(&[("k2", 1), ("k3", 3)], "k3")
        .open(&sealed, AAD)
        .unwrap_err();
    assert!(matches!(err, SecretError::UnknownKek { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"sealed with key "k1", which is not loaded (loaded keys: k2, k3)"#
    );

    // Relabelled kek_id: the wrapped key is bound to the id it was wrapped under.
    let mut relabelled = sealed.clone();
    relabelled.kek_id = "k2".into();
    let err = sealer(&[("k1", 1), ("k2", 1)], "k2")
        .open(&relabelled, AAD)
        .unwrap_err();
    assert!(matches!(err, SecretError::Decrypt { .. }), "{err:?}");
}

#[test]
fn rewrap_changes_only_the_wrapping() {
    let old = sealer(&[("k1", 1)], "k1");
    let both = sealer(&[("k1", 1), ("k2", 2)], "k2");
    let sealed = old.seal(MARKER.as_bytes(), AAD).unwrap();
    let rewrapped = both.rewrap(&sealed).unwrap();
    assert_eq!(rewrapped.kek_id, "k2");
    assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
    assert_eq!(rewrapped.nonce, sealed.nonce);
    assert_ne!(rewrapped.wrapped_key, sealed.wrapped_key);
    let only_new = sealer(&[("k2", 2)], "k2");
    assert_eq!(only_new.open(&rewrapped, AAD).unwrap(), MARKER.as_bytes());
    assert!(only_new.open(&sealed, AAD).is_err());
    // The old box cannot open the re-wrapped blob.
    assert!(matches!(
        old.open(&rewrapped, AAD),
        Err(SecretError::UnknownKek { .. })
    ));
}

#[test]
fn debug_shows_no_key_material_nor_ciphertext() {
    let key = [0x41_u8; 32];
    let sealer =
        SecretBox::from_keys(vec![("k1".into(), key), ("k2".into(), [0x42; 32])], "k2").unwrap();
    let debug = format!("{sealer:?} {sealer:#?}");
    assert!(debug.contains("k1") && debug.contains("k2"), "{debug}");
    for secret in [
        B64.encode(key),
        B64.encode([0x42_u8; 32]),
        "65, 65".to_owned(),
        "66, 66".to_owned(),
        "AAAA".to_owned(),
        "0x41".to_owned(),
    ] {
        assert!(!debug.contains(&secret), "{secret} in {debug}");
    }

    let sealed = sealer.seal(MARKER.as_bytes(), AAD).unwrap();
    let debug = format!("{sealed:?} {sealed:#?}");
    assert!(debug.contains("k2"), "{debug}");
    for field in [
        &sealed.ciphertext,
        &sealed.wrapped_key,
        &sealed.nonce,
        &sealed.key_nonce,
    ] {
        assert!(!debug.contains(field.as_str()), "{field} in {debug}");
        // Not even a prefix of it.
        assert!(!debug.contains(&field[..8]), "{field} in {debug}");
    }
    assert!(!debug.contains("TESTMARKER"));
}

// ---------------------------------------------------------------------------------------
// Key loading

#[test]
fn key_directory_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = SecretBox::load_dir(&data_dir).unwrap();
    assert_eq!(first.current_key_id(), "k1");
    assert_eq!(first.key_ids(), ["k1"]);

    let keys = data_dir.join("secret-keys");
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("k1.key")), 0o600);
    assert_eq!(mode(&keys.join("current")), 0o600);
    assert_eq!(
        std::fs::read_to_string(keys.join("current"))
            .unwrap()
            .trim(),
        "k1"
    );
    let key = B64
        .decode(std::fs::read_to_string(keys.join("k1.key")).unwrap().trim())
        .unwrap();
    assert_eq!(key.len(), 32);
    // Nothing but the keys: no temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret-keys"]);
    let mut names: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["current", "k1.key"]);

    // A second load finds the same key.
    let sealed = first.seal(b"x", AAD).unwrap();
    let second = SecretBox::load_dir(&data_dir).unwrap();
    assert_eq!(second.open(&sealed, AAD).unwrap(), b"x");
    let from_file =
        SecretBox::from_keys(vec![("k1".into(), key.try_into().unwrap())], "k1").unwrap();
    assert_eq!(from_file.open(&sealed, AAD).unwrap(), b"x");
}

#[test]
fn empty_key_directory_is_initialized() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secret-keys")).unwrap();
    let sealer = SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(sealer.current_key_id(), "k1");
    assert_eq!(mode(&dir.path().join("secret-keys/k1.key")), 0o600);
}

#[test]
fn malformed_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    SecretBox::load_dir(dir.path()).unwrap();
    let keys = dir.path().join("secret-keys");
    let k1 = keys.join("k1.key");
    let good = std::fs::read_to_string(&k1).unwrap();

    std::fs::write(&k1, "this is not base64!!\n").unwrap();
    let err = SecretBox::load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, SecretError::BadKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&k1.display().to_string()), "{msg}");
    assert!(msg.contains("not valid base64"), "{msg}");
    assert!(!msg.contains("this is not"), "{msg}");

    std::fs::write(&k1, B64.encode([1_u8; 16])).unwrap();
    let msg = SecretBox::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(&k1.display().to_string()) && msg.contains("16 bytes"),
        "{msg}"
    );

    // A malformed non-current key is an error too, naming that file.
    std::fs::write(&k1, &good).unwrap();
    let k0 = keys.join("k0.key");
    std::fs::write(&k0, "").unwrap();
    let msg = SecretBox::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(&k0.display().to_string()) && msg.contains("empty"),
        "{msg}"
    );
    std::fs::remove_file(&k0).unwrap();

    // `current` naming a missing key, and a missing `current`.
    let current = keys.join("current");
    std::fs::write(&current, "k9\n").unwrap();
    let msg = SecretBox::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(&current.display().to_string()) && msg.contains("k9.key"),
        "{msg}"
    );
    std::fs::remove_file(&current).unwrap();
    let msg = SecretBox::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(&current.display().to_string()) && msg.contains("missing"),
        "{msg}"
    );

    // Repaired, it loads again.
    std::fs::write(&current, "k1").unwrap();
    assert_eq!(SecretBox::load_dir(dir.path()).unwrap().key_ids(), ["k1"]);
}

/// `SecretBox::load` reads `KAAS_SECRET_KEY` from the process environment, which tests
/// cannot set without `unsafe`: this test runs itself again as a child process with the
/// variable set (or removed) and the child does the checks.
#[test]
fn env_var_wins_over_key_directory() {
    if let Ok(case) = std::env::var("KAAS_STORE_TEST_CHILD") {
        let data_dir = std::env::var("KAAS_STORE_TEST_DIR").unwrap();
        let data_dir = Path::new(&data_dir);
        let from_dir: Sealed =
            serde_json::from_str(&std::env::var("KAAS_STORE_TEST_SEALED").unwrap()).unwrap();
        match case.as_str() {
            "env" => {
                let sealer = SecretBox::load(data_dir).unwrap();
                assert_eq!(sealer.key_ids(), ["env"]);
                assert_eq!(sealer.current_key_id(), "env");
                let sealed = sealer.seal(b"x", AAD).unwrap();
                assert_eq!(sealed.kek_id, "env");
                let expected = SecretBox::from_keys(vec![("env".into(), [5; 32])], "env").unwrap();
                assert_eq!(expected.open(&sealed, AAD).unwrap(), b"x");
                assert!(sealer.open(&from_dir, AAD).is_err());
            }
            "bad" => {
                let msg = SecretBox::load(data_dir).unwrap_err().to_string();
                assert!(
                    msg.contains("KAAS_SECRET_KEY") && msg.contains("31 bytes"),
                    "{msg}"
                );
            }
            "unset" => {
                let sealer = SecretBox::load(data_dir).unwrap();
                assert_eq!(sealer.key_ids(), ["k1"]);
                assert_eq!(sealer.open(&from_dir, AAD).unwrap(), b"from dir");
            }
            other => panic!("unknown case {other}"),
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let sealed = SecretBox::load_dir(dir.path())
        .unwrap()
        .seal(b"from dir", AAD)
        .unwrap();
    let sealed = serde_json::to_string(&sealed).unwrap();
    let exe = std::env::current_exe().unwrap();
    for (case, env) in [
        ("env", Some(B64.encode([5_u8; 32]))),
        ("bad", Some(B64.encode([5_u8; 31]))),
        ("unset", None),
    ] {
        let mut child = Command::new(&exe);
        child
            .args([
                "--exact",
                "env_var_wins_over_key_directory",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KAAS_STORE_TEST_CHILD", case)
            .env("KAAS_STORE_TEST_DIR", dir.path())
            .env("KAAS_STORE_TEST_SEALED", &sealed);
        match env {
            Some(value) => child.env("KAAS_SECRET_KEY", value),
            None => child.env_remove("KAAS_SECRET_KEY"),
        };
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "case {case} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The child really ran the test (and did not filter it out).
        assert!(stdout.contains("1 passed"), "case {case}:\n{stdout}");
    }
    // The directory was not touched by the env-var runs.
    assert_eq!(SecretBox::load_dir(dir.path()).unwrap().key_ids(), ["k1"]);
}

#[test]
fn add_key_numbers_keys_and_switches_current() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        add_key(dir.path()),
        Err(SecretError::BadKey { .. })
    ));
    SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(add_key(dir.path()).unwrap(), "k2");
    let keys = dir.path().join("secret-keys");
    assert_eq!(mode(&keys.join("k2.key")), 0o600);
    assert_eq!(mode(&keys.join("current")), 0o600);
    // After the highest kN, even with gaps and other ids around.
    std::fs::remove_file(keys.join("k1.key")).unwrap();
    std::fs::copy(keys.join("k2.key"), keys.join("k7.key")).unwrap();
    std::fs::copy(keys.join("k2.key"), keys.join("backup.key")).unwrap();
    assert_eq!(add_key(dir.path()).unwrap(), "k8");
    let sealer = SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(sealer.current_key_id(), "k8");
    assert_eq!(sealer.key_ids(), ["backup", "k2", "k7", "k8"]);
    let names: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

// ---------------------------------------------------------------------------------------
// Secrets in the store

/// Every stored secret's name and sealed data, by name.
async fn stored(store: &dyn Store) -> Vec<(String, Sealed)> {
    let mut all = Vec::new();
    for object in store.list("Secret", &ListFilter::default()).await.unwrap() {
        let sealed: Sealed = serde_json::from_value(object["sealed"].clone()).unwrap();
        all.push((
            object["metadata"]["name"].as_str().unwrap().to_owned(),
            sealed,
        ));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn owner() -> OwnerRef {
    OwnerRef {
        kind: "Cluster".into(),
        name: "demo".into(),
        uid: "cluster-uid-1".into(),
    }
}

#[tokio::test]
async fn plaintext_never_reaches_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sealer = SecretBox::load_dir(dir.path()).unwrap();
    let secrets = Secrets::new(&store, &sealer);
    let data = json!({ "tls.key": MARKER, "tls.crt": "certificate" });
    secrets
        .put("default", "demo-pki", Some(owner()), "kaas.dev/pki", &data)
        .await
        .unwrap();

    let mut bytes = Vec::new();
    let mut files = Vec::new();
    for name in ["kaas.db", "kaas.db-wal", "kaas.db-shm"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            files.push(name);
            bytes.extend(b);
        }
    }
    assert!(files.contains(&"kaas.db"));
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The scan sees what was written: the secret's name and type are in plain sight...
    assert!(
        contains("demo-pki") && contains("kaas.dev/pki"),
        "files: {files:?}"
    );
    // ...but not its data.
    for needle in ["TESTMARKER", "BEGIN PRIVATE KEY", "certificate"] {
        assert!(!contains(needle), "{needle:?} found in {files:?}");
    }

    assert_eq!(
        secrets.get("default", "demo-pki").await.unwrap(),
        Some(data)
    );
    assert_eq!(secrets.get("default", "missing").await.unwrap(), None);

    // The stored object has the documented shape.
    let raw = store
        .get(&ObjectKey::new("Secret", "default", "demo-pki"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw["apiVersion"], "kaas.dev/v1alpha1");
    assert_eq!(raw["kind"], "Secret");
    assert_eq!(raw["type"], "kaas.dev/pki");
    assert_eq!(raw["metadata"]["owner"]["uid"], "cluster-uid-1");
    assert_eq!(raw["sealed"]["kekId"], "k1");
    assert!(raw.get("data").is_none());
    store.close().await;
}

#[tokio::test]
async fn secrets_are_created_once_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sealer = sealer(&[("k1", 1)], "k1");
    let secrets = Secrets::new(&store, &sealer);
    secrets
        .put("default", "a", Some(owner()), "t", &json!({"v": 1}))
        .await
        .unwrap();
    let err = secrets
        .put("default", "a", Some(owner()), "t", &json!({"v": 2}))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        secrets.get("default", "a").await.unwrap(),
        Some(json!({"v": 1}))
    );

    secrets
        .put("default", "b", None, "t", &json!("b"))
        .await
        .unwrap();
    secrets
        .put("other", "c", Some(owner()), "t", &json!(null))
        .await
        .unwrap();
    assert_eq!(
        secrets.list_names("default", None).await.unwrap(),
        ["a", "b"]
    );
    assert_eq!(
        secrets
            .list_names("default", Some("cluster-uid-1"))
            .await
            .unwrap(),
        ["a"]
    );
    assert_eq!(secrets.list_names("other", None).await.unwrap(), ["c"]);
    assert_eq!(secrets.get("other", "c").await.unwrap(), Some(Value::Null));
    assert!(secrets.exists("other", "c").await.unwrap());
    assert!(!secrets.exists("default", "c").await.unwrap());

    assert!(secrets.delete("default", "a").await.unwrap());
    assert!(!secrets.delete("default", "a").await.unwrap());
    assert!(!secrets.exists("default", "a").await.unwrap());
    assert_eq!(secrets.get("default", "a").await.unwrap(), None);
    assert_eq!(secrets.list_names("default", None).await.unwrap(), ["b"]);

    // Names that would make the associated data ambiguous are refused.
    for (tenant, name) in [("default", "x/y"), ("a/b", "x"), ("default", "")] {
        let err = secrets
            .put(tenant, name, None, "t", &json!(1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn a_sealed_blob_moved_to_another_secret_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let sealer = sealer(&[("k1", 1)], "k1");
    let secrets = Secrets::new(&store, &sealer);
    secrets
        .put("default", "a", None, "t", &json!(MARKER))
        .await
        .unwrap();
    secrets
        .put("default", "b", None, "t", &json!("b"))
        .await
        .unwrap();

    let a = store
        .get(&ObjectKey::new("Secret", "default", "a"))
        .await
        .unwrap()
        .unwrap();
    let key_b = ObjectKey::new("Secret", "default", "b");
    let mut b = store.get(&key_b).await.unwrap().unwrap();
    b["sealed"] = a["sealed"].clone();
    store.update(&key_b, b).await.unwrap();

    let err = secrets.get("default", "b").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(
        msg.contains("Secret default/b") && msg.contains("wrong key or tampered data"),
        "{msg}"
    );
    assert!(!msg.contains("TESTMARKER"), "{msg}");
    store.close().await;
}

#[tokio::test]
async fn rotation_rewraps_every_secret_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let k1 = SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(k1.current_key_id(), "k1");
    let names = [("default", "one"), ("default", "two"), ("acme", "three")];
    for (tenant, name) in names {
        Secrets::new(&store, &k1)
            .put(
                tenant,
                name,
                None,
                "t",
                &json!({ "name": name, "key": MARKER }),
            )
            .await
            .unwrap();
    }
    let before = stored(&store).await;
    assert!(before.iter().all(|(_, s)| s.kek_id == "k1"));

    assert_eq!(add_key(dir.path()).unwrap(), "k2");
    let both = SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(both.current_key_id(), "k2");
    assert_eq!(both.key_ids(), ["k1", "k2"]);
    assert_eq!(rewrap_all(&store, &both).await.unwrap(), 3);

    let after = stored(&store).await;
    assert_eq!(after.len(), 3);
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(new.kek_id, "k2", "{name}");
        assert_eq!(new.ciphertext, old.ciphertext, "{name}");
        assert_eq!(new.nonce, old.nonce, "{name}");
        assert_ne!(new.wrapped_key, old.wrapped_key, "{name}");
    }
    // Nothing left to do.
    assert_eq!(rewrap_all(&store, &both).await.unwrap(), 0);

    // Retire k1: only k2 is left, and every secret still opens.
    std::fs::remove_file(dir.path().join("secret-keys/k1.key")).unwrap();
    let k2 = SecretBox::load_dir(dir.path()).unwrap();
    assert_eq!(k2.key_ids(), ["k2"]);
    for (tenant, name) in names {
        let data = Secrets::new(&store, &k2).get(tenant, name).await.unwrap();
        assert_eq!(data, Some(json!({ "name": name, "key": MARKER })));
    }
    // The old box alone can no longer read them.
    let err = Secrets::new(&store, &k1)
        .get("default", "one")
        .await
        .unwrap_err();
    assert!(err.to_string().contains(r#"sealed with key "k2""#), "{err}");
    store.close().await;
}

#[tokio::test]
async fn rewrap_all_fails_naming_a_secret_it_cannot_unwrap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    Secrets::new(&store, &sealer(&[("k1", 1)], "k1"))
        .put("default", "old", None, "t", &json!(1))
        .await
        .unwrap();
    let err = rewrap_all(&store, &sealer(&[("k2", 2)], "k2"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Secret default/old") && msg.contains(r#"key "k1""#),
        "{msg}"
    );
    store.close().await;
}

/// A store whose first update of each call races with another writer: it changes the
/// object itself first, so the caller's update carries a stale resourceVersion.
struct Racing {
    inner: SqliteStore,
    raced: AtomicBool,
}

#[async_trait]
impl Store for Racing {
    async fn create(&self, kind: &str, tenant: &str, object: Value) -> Result<Value, StoreError> {
        self.inner.create(kind, tenant, object).await
    }
    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: &str, filter: &ListFilter) -> Result<Vec<Value>, StoreError> {
        self.inner.list(kind, filter).await
    }
    async fn update(&self, key: &ObjectKey, object: Value) -> Result<Option<Value>, StoreError> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let mut current = self.inner.get(key).await?.unwrap();
            current["metadata"]["labels"] = json!({ "touched": "yes" });
            self.inner.update(key, current).await?;
        }
        self.inner.update(key, object).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<Deleted, StoreError> {
        self.inner.delete(key).await
    }
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.inner.changes_since(seq, limit).await
    }
    fn latest_change(&self) -> watch::Receiver<i64> {
        self.inner.latest_change()
    }
    async fn append_event(
        &self,
        tenant: &str,
        object_uid: &str,
        body: Value,
    ) -> Result<i64, StoreError> {
        self.inner.append_event(tenant, object_uid, body).await
    }
    async fn list_events(
        &self,
        tenant: &str,
        object_uid: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner
            .list_events(tenant, object_uid, since, limit)
            .await
    }
    async fn append_audit(&self, tenant: &str, body: Value) -> Result<i64, StoreError> {
        self.inner.append_audit(tenant, body).await
    }
    async fn list_audit(
        &self,
        tenant: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<kaas_store::StoredEvent>, StoreError> {
        self.inner.list_audit(tenant, since, limit).await
    }
    async fn put_artifact(
        &self,
        digest: &str,
        kind: &str,
        reference: &str,
        bytes: &[u8],
    ) -> Result<kaas_store::StoredArtifact, StoreError> {
        self.inner
            .put_artifact(digest, kind, reference, bytes)
            .await
    }
    async fn get_artifact(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_artifact(digest).await
    }
    async fn list_artifacts(&self) -> Result<Vec<kaas_store::StoredArtifact>, StoreError> {
        self.inner.list_artifacts().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn rewrap_all_retries_on_conflict_and_keeps_the_other_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Racing {
        inner: open_store(dir.path()).await,
        raced: AtomicBool::new(true),
    };
    let old = sealer(&[("k1", 1)], "k1");
    Secrets::new(&store, &old)
        .put("default", "s", None, "t", &json!(MARKER))
        .await
        .unwrap();
    store.raced.store(false, Ordering::SeqCst);

    let new = sealer(&[("k1", 1), ("k2", 2)], "k2");
    assert_eq!(rewrap_all(&store, &new).await.unwrap(), 1);
    assert!(
        store.raced.load(Ordering::SeqCst),
        "the race did not happen"
    );
    let raw = store
        .get(&ObjectKey::new("Secret", "default", "s"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw["sealed"]["kekId"], "k2");
    // The concurrent writer's change survived the retry.
    assert_eq!(raw["metadata"]["labels"]["touched"], "yes");
    assert_eq!(
        Secrets::new(&store, &sealer(&[("k2", 2)], "k2"))
            .get("default", "s")
            .await
            .unwrap(),
        Some(json!(MARKER))
    );
    store.inner.close().await;
}

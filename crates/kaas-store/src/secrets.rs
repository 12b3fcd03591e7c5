//! Secrets at rest: envelope encryption for sensitive objects (cluster PKI keys,
//! kubeconfigs, bootstrap tokens) kept in the [`Store`].
//!
//! **Envelope encryption.** [`SecretBox::seal`] encrypts each plaintext with a fresh
//! random 256-bit data key (AES-256-GCM, random 96-bit nonce, the caller's `aad` bound as
//! associated data) and stores that data key wrapped (AES-256-GCM again, its own nonce)
//! under the current key-encryption key (KEK). Because every data key encrypts exactly one
//! plaintext, random nonces are safe. The `aad` (for stored secrets
//! `Secret/<tenant>/<name>`) makes a sealed blob useless anywhere but in the object it was
//! sealed for.
//!
//! **Keys.** [`SecretBox::load`] takes the KEK from `KAAS_SECRET_KEY` (base64 of 32
//! bytes, key id `env`) or else from `<data_dir>/secret-keys/`: one `<id>.key` file (base64
//! of 32 bytes, mode 0600) per key and a `current` file naming the key new secrets are
//! sealed with. A missing directory is created (mode 0700) with a fresh key `k1`. Losing
//! the keys loses every secret: back the directory up apart from the database.
//!
//! **Rotation.** [`add_key`] writes the next key (`k2`, `k3`, …) and makes it current;
//! [`rewrap_all`] then re-wraps every stored secret's data key under it without touching
//! the ciphertext. Every process that seals secrets must be restarted with the new key
//! before the old `.key` file is retired (and a last `rewrap_all` run after that restart
//! catches secrets created meanwhile under the old key).
//!
//! Key bytes, data keys and plaintexts are never logged nor put into error messages;
//! `Debug` of [`SecretBox`] and [`Sealed`] shows only key ids and lengths.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kaas_core::OwnerRef;
use kaas_core::meta::API_VERSION;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Deleted, ListFilter, ObjectKey, Store, StoreError};

/// The stored kind of a secret.
pub const SECRET_KIND: &str = "Secret";
/// The environment variable holding a KEK (base64 of 32 bytes); it wins over the key
/// directory.
pub const KEY_ENV_VAR: &str = "KAAS_SECRET_KEY";
/// The key id of the KEK taken from [`KEY_ENV_VAR`].
pub const ENV_KEY_ID: &str = "env";
/// The key directory, under the data directory.
pub const KEY_DIR: &str = "secret-keys";
/// The file in [`KEY_DIR`] naming the current key id.
const CURRENT_FILE: &str = "current";
/// AES-256 key length, for KEKs and data keys.
pub const KEY_LEN: usize = 32;
/// How often [`rewrap_all`] retries one secret that keeps changing under it.
const MAX_REWRAP_ATTEMPTS: usize = 10;
/// Longest key id.
const MAX_ID_LEN: usize = 64;

/// What went wrong with secret keys or sealed data. Never carries key bytes nor plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A key (file, environment variable, or argument) is unusable.
    #[error("bad secret key material in {origin}: {reason}")]
    BadKey { origin: String, reason: String },
    /// The data was sealed with a key that is not loaded (retired or another installation's).
    #[error("sealed with key {id:?}, which is not loaded (loaded keys: {loaded})")]
    UnknownKek { id: String, loaded: String },
    /// Authentication failed: the key does not match or the data was changed or moved.
    #[error("cannot decrypt the {what}: wrong key or tampered data")]
    Decrypt { what: &'static str },
    /// A sealed blob is not well formed (bad base64, wrong nonce length, …).
    #[error("malformed sealed data: {0}")]
    Malformed(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The random number generator or the cipher failed.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
}

impl From<SecretError> for StoreError {
    fn from(e: SecretError) -> Self {
        StoreError::Invalid(format!("secret: {e}"))
    }
}

/// A sealed plaintext: the ciphertext, and its data key wrapped under KEK `kek_id`.
/// Binary fields are standard base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sealed {
    pub kek_id: String,
    /// The data key, encrypted (with its tag) under the KEK.
    pub wrapped_key: String,
    /// The nonce used to wrap the data key.
    pub key_nonce: String,
    /// The nonce used to encrypt the plaintext.
    pub nonce: String,
    /// The plaintext encrypted under the data key, with its tag.
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("kek_id", &self.kek_id)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Key-encryption keys by id, one of them current. See the module documentation.
pub struct SecretBox {
    keks: BTreeMap<String, LessSafeKey>,
    current: String,
    rng: SystemRandom,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("current", &self.current)
            .field("keys", &self.key_ids())
            .finish()
    }
}

impl SecretBox {
    /// A box with these KEKs; `current` must be one of their ids.
    pub fn from_keys(
        keys: Vec<(String, [u8; KEY_LEN])>,
        current: &str,
    ) -> Result<Self, SecretError> {
        let mut keks = BTreeMap::new();
        for (id, bytes) in keys {
            let origin = format!("key {id:?}");
            check_id(&id, &origin)?;
            if keks.insert(id, aead_key(&bytes)?).is_some() {
                return Err(bad_key(origin, "the id is given twice"));
            }
        }
        let this = Self {
            keks,
            current: current.to_owned(),
            rng: SystemRandom::new(),
        };
        this.kek(current)?;
        Ok(this)
    }

    /// The KEKs from [`KEY_ENV_VAR`] if it is set, else from `<data_dir>/secret-keys/`
    /// (see [`SecretBox::load_dir`]).
    pub fn load(data_dir: &Path) -> Result<Self, SecretError> {
        match std::env::var_os(KEY_ENV_VAR) {
            Some(value) => Self::from_env_value(&value),
            None => Self::load_dir(data_dir),
        }
    }

    /// The KEKs from `<data_dir>/secret-keys/`, ignoring [`KEY_ENV_VAR`]. Creates the
    /// directory (mode 0700) with a fresh current key `k1` (mode 0600) when it is missing
    /// or empty.
    pub fn load_dir(data_dir: &Path) -> Result<Self, SecretError> {
        let dir = data_dir.join(KEY_DIR);
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(bad_key(
                    dir.display().to_string(),
                    "exists but is not a directory",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_key_dir(data_dir, &dir)?,
            Err(e) => return Err(io_error(&dir, e)),
        }
        let (keys, current) = match read_key_dir(&dir)? {
            Some(found) => found,
            None => {
                let id = add_key_in(&dir)?;
                tracing::info!(dir = %dir.display(), key_id = %id, "created the first secret key in an empty key directory");
                read_key_dir(&dir)?.ok_or_else(|| {
                    bad_key(dir.display().to_string(), "no key after creating one")
                })?
            }
        };
        check_private(&dir);
        Self::from_keys(keys, &current)
    }

    fn from_env_value(value: &OsStr) -> Result<Self, SecretError> {
        let origin = format!("environment variable {KEY_ENV_VAR}");
        let text = value
            .to_str()
            .ok_or_else(|| bad_key(origin.clone(), "not valid UTF-8"))?;
        let key = decode_key(text, &origin)?;
        Self::from_keys(vec![(ENV_KEY_ID.to_owned(), key)], ENV_KEY_ID)
    }

    /// The id of the KEK new data keys are wrapped with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// The ids of every loaded KEK, sorted.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keks.keys().map(String::as_str).collect()
    }

    /// Encrypts `plaintext` under a fresh data key bound to `aad`, and wraps the data key
    /// under the current KEK.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<Sealed, SecretError> {
        let mut data_key = [0_u8; KEY_LEN];
        self.fill(&mut data_key)?;
        let nonce = self.nonce()?;
        let mut ciphertext = plaintext.to_vec();
        let sealed = aead_key(&data_key).and_then(|key| {
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut ciphertext,
            )
            .map_err(|_| SecretError::Crypto("encryption failed"))
        });
        let wrapped = sealed.and_then(|()| self.wrap(&data_key));
        data_key.fill(0);
        let (wrapped_key, key_nonce) = wrapped?;
        Ok(Sealed {
            kek_id: self.current.clone(),
            wrapped_key,
            key_nonce,
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        })
    }

    /// Decrypts what [`SecretBox::seal`] sealed with the same `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &str) -> Result<Vec<u8>, SecretError> {
        let mut data_key = self.unwrap_key(sealed)?;
        let opened = self.open_with(&data_key, sealed, aad);
        data_key.fill(0);
        opened
    }

    /// The same data and ciphertext with the data key wrapped under the current KEK
    /// (for key rotation). Always wraps anew, even when `sealed` already uses it.
    pub fn rewrap(&self, sealed: &Sealed) -> Result<Sealed, SecretError> {
        let mut data_key = self.unwrap_key(sealed)?;
        let wrapped = self.wrap(&data_key);
        data_key.fill(0);
        let (wrapped_key, key_nonce) = wrapped?;
        Ok(Sealed {
            kek_id: self.current.clone(),
            wrapped_key,
            key_nonce,
            nonce: sealed.nonce.clone(),
            ciphertext: sealed.ciphertext.clone(),
        })
    }

    fn open_with(
        &self,
        data_key: &[u8; KEY_LEN],
        sealed: &Sealed,
        aad: &str,
    ) -> Result<Vec<u8>, SecretError> {
        let nonce = decode_nonce(&sealed.nonce, "nonce")?;
        let mut buf = decode_b64(&sealed.ciphertext, "ciphertext")?;
        let len = aead_key(data_key)?
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Decrypt { what: "data" })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Wraps `data_key` under the current KEK: (wrapped key, key nonce), in base64.
    fn wrap(&self, data_key: &[u8; KEY_LEN]) -> Result<(String, String), SecretError> {
        let kek = self.kek(&self.current)?;
        let nonce = self.nonce()?;
        let mut wrapped = data_key.to_vec();
        let aad = wrap_aad(&self.current);
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut wrapped,
        )
        .map_err(|_| SecretError::Crypto("wrapping the data key failed"))?;
        Ok((B64.encode(wrapped), B64.encode(nonce)))
    }

    fn unwrap_key(&self, sealed: &Sealed) -> Result<[u8; KEY_LEN], SecretError> {
        let kek = self.kek(&sealed.kek_id)?;
        let nonce = decode_nonce(&sealed.key_nonce, "keyNonce")?;
        let mut buf = decode_b64(&sealed.wrapped_key, "wrappedKey")?;
        let aad = wrap_aad(&sealed.kek_id);
        let opened = kek
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Decrypt { what: "data key" })
            .and_then(|key| {
                <[u8; KEY_LEN]>::try_from(&*key)
                    .map_err(|_| SecretError::Malformed("the data key is not 32 bytes".into()))
            });
        buf.fill(0);
        opened
    }

    fn kek(&self, id: &str) -> Result<&LessSafeKey, SecretError> {
        self.keks.get(id).ok_or_else(|| SecretError::UnknownKek {
            id: id.to_owned(),
            loaded: self.key_ids().join(", "),
        })
    }

    fn fill(&self, buf: &mut [u8]) -> Result<(), SecretError> {
        self.rng
            .fill(buf)
            .map_err(|_| SecretError::Crypto("the system random number generator failed"))
    }

    fn nonce(&self) -> Result<[u8; NONCE_LEN], SecretError> {
        let mut nonce = [0_u8; NONCE_LEN];
        self.fill(&mut nonce)?;
        Ok(nonce)
    }
}

/// Associated data of a wrapped data key: binds it to the KEK id it claims.
fn wrap_aad(kek_id: &str) -> String {
    format!("kaas-data-key/v1/{kek_id}")
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey, SecretError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SecretError::Crypto("cannot make an AES-256-GCM key"))
}

fn decode_b64(text: &str, field: &str) -> Result<Vec<u8>, SecretError> {
    B64.decode(text)
        .map_err(|_| SecretError::Malformed(format!("{field} is not valid base64")))
}

fn decode_nonce(text: &str, field: &str) -> Result<Nonce, SecretError> {
    let bytes = decode_b64(text, field)?;
    Nonce::try_assume_unique_for_key(&bytes).map_err(|_| {
        SecretError::Malformed(format!(
            "{field} is {} bytes, expected {NONCE_LEN}",
            bytes.len()
        ))
    })
}

/// A KEK from its base64 text. Errors name `origin` and never quote the text.
fn decode_key(text: &str, origin: &str) -> Result<[u8; KEY_LEN], SecretError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad_key(origin, "empty; expected base64 of 32 bytes"));
    }
    let bytes = B64
        .decode(text)
        .map_err(|_| bad_key(origin, "not valid base64; expected base64 of 32 bytes"))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        bad_key(
            origin,
            format!("decodes to {} bytes, expected {KEY_LEN}", bytes.len()),
        )
    })
}

/// Key ids are file names: letters, digits, `-` and `_`.
fn check_id(id: &str, origin: &str) -> Result<(), SecretError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(bad_key(
            origin,
            format!("key id {id:?} must be 1 to {MAX_ID_LEN} letters, digits, '-' or '_'"),
        ))
    }
}

fn bad_key(origin: impl Into<String>, reason: impl Into<String>) -> SecretError {
    SecretError::BadKey {
        origin: origin.into(),
        reason: reason.into(),
    }
}

fn io_error(path: &Path, source: io::Error) -> SecretError {
    SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Adds the next key (`k<N+1>`, N the highest `k<N>` present) to
/// `<data_dir>/secret-keys/`, writes it with mode 0600 and makes it current; returns its
/// id. The directory must exist (see [`SecretBox::load_dir`]). Only the directory is
/// changed: a process whose keys come from [`KEY_ENV_VAR`] keeps using that key.
pub fn add_key(data_dir: &Path) -> Result<String, SecretError> {
    let dir = data_dir.join(KEY_DIR);
    if !dir.is_dir() {
        return Err(bad_key(
            dir.display().to_string(),
            "no such key directory; SecretBox::load creates it on first start",
        ));
    }
    let id = add_key_in(&dir)?;
    tracing::info!(dir = %dir.display(), key_id = %id, "added a secret key and made it current");
    Ok(id)
}

/// Writes a fresh key under the next free `k<N>` id in `dir`, durably, then points
/// `current` at it.
fn add_key_in(dir: &Path) -> Result<String, SecretError> {
    let mut next = key_files(dir)?
        .iter()
        .filter_map(|(id, _)| id.strip_prefix('k')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let mut key = [0_u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| SecretError::Crypto("the system random number generator failed"))?;
    let contents = format!("{}\n", B64.encode(key));
    key.fill(0);
    loop {
        let id = format!("k{next}");
        let path = dir.join(format!("{id}.key"));
        // Written completely under a temporary name, then linked to its final name: the
        // link fails if the name is taken, so a key file is never partial nor replaced.
        let tmp = dir.join(format!(".{id}.key.tmp-{}", uuid::Uuid::new_v4().simple()));
        write_new_file(&tmp, contents.as_bytes())?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                next = next.saturating_add(1);
                continue;
            }
            Err(e) => return Err(io_error(&path, e)),
        }
        sync_dir(dir)?;
        replace_file(&dir.join(CURRENT_FILE), format!("{id}\n").as_bytes())?;
        return Ok(id);
    }
}

/// Creates `dir` with one fresh key, atomically: the key is written into a private
/// temporary directory that is then renamed. If another process created `dir`
/// meanwhile, its keys are kept.
fn create_key_dir(data_dir: &Path, dir: &Path) -> Result<(), SecretError> {
    fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
    let tmp = data_dir.join(format!(".{KEY_DIR}.tmp-{}", uuid::Uuid::new_v4().simple()));
    create_private_dir(&tmp)?;
    let result = add_key_in(&tmp).and_then(|id| match fs::rename(&tmp, dir) {
        Ok(()) => {
            sync_dir(data_dir)?;
            tracing::warn!(
                dir = %dir.display(),
                key_id = %id,
                "created a new secret key directory; back it up apart from the database, without it no secret can be read"
            );
            Ok(())
        }
        // Lost a race with another process: use its keys.
        Err(_) if dir.is_dir() => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Every `<id>.key` file in `dir` (temporary `.`-files skipped), by id.
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, SecretError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(id) = name.strip_suffix(".key") {
            check_id(id, &path.display().to_string())?;
            found.push((id.to_owned(), path));
        }
    }
    found.sort();
    Ok(found)
}

/// Every key in `dir` and the current id; `None` when the directory holds neither keys
/// nor a `current` file.
#[allow(clippy::type_complexity)]
fn read_key_dir(dir: &Path) -> Result<Option<(Vec<(String, [u8; KEY_LEN])>, String)>, SecretError> {
    let files = key_files(dir)?;
    let current_path = dir.join(CURRENT_FILE);
    let current = match fs::read_to_string(&current_path) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&current_path, e)),
    };
    let Some(current) = current else {
        if files.is_empty() {
            return Ok(None);
        }
        return Err(bad_key(
            current_path.display().to_string(),
            "missing; it must name the id of the current key",
        ));
    };
    let mut keys = Vec::with_capacity(files.len());
    for (id, path) in files {
        let origin = path.display().to_string();
        let text = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        check_private(&path);
        keys.push((id, decode_key(&text, &origin)?));
    }
    if !keys.iter().any(|(id, _)| *id == current) {
        return Err(bad_key(
            current_path.display().to_string(),
            format!("names key {current:?} but there is no {current}.key"),
        ));
    }
    Ok(Some((keys, current)))
}

/// Warns when a key file or directory can be read by others than its owner.
fn check_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "secret key material is accessible to group or others; restrict it to its owner"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn create_private_dir(path: &Path) -> Result<(), SecretError> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|e| io_error(path, e))?;
    set_mode(path, 0o700)
}

/// Creates `path` (which must not exist) with mode 0600 and `contents`, synced to disk.
fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    let written = set_mode(path, 0o600).and_then(|()| {
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(path, e))
    });
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Replaces `path` atomically with a new 0600 file holding `contents`.
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    let name = path.file_name().and_then(OsStr::to_str).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    write_new_file(&tmp, contents)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Sets the permission bits exactly, whatever the umask.
fn set_mode(path: &Path, mode: u32) -> Result<(), SecretError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Makes renames and new names in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SecretError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Secrets kept in a [`Store`] as kind [`SECRET_KIND`], sealed with a [`SecretBox`]:
///
/// ```json
/// {"apiVersion": "kaas.dev/v1alpha1", "kind": "Secret", "metadata": {…},
///  "type": "…", "sealed": {"kekId": "k1", "wrappedKey": "…", …}}
/// ```
///
/// The whole `data` JSON is sealed with associated data `Secret/<tenant>/<name>`.
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    store: &'a dyn Store,
    sealer: &'a SecretBox,
}

impl fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("sealer", self.sealer)
            .finish_non_exhaustive()
    }
}

impl<'a> Secrets<'a> {
    pub fn new(store: &'a dyn Store, sealer: &'a SecretBox) -> Self {
        Self { store, sealer }
    }

    /// Creates secret `name`. Fails with [`StoreError::AlreadyExists`] if it exists (create
    /// once: a caller that crashed after creating it finds it on retry).
    pub async fn put(
        &self,
        tenant: &str,
        name: &str,
        owner: Option<OwnerRef>,
        type_: &str,
        data: &Value,
    ) -> Result<(), StoreError> {
        check_part("tenant", tenant)?;
        check_part("name", name)?;
        let plaintext = serde_json::to_vec(data)
            .map_err(|e| StoreError::Invalid(format!("cannot encode secret data: {e}")))?;
        let sealed = self
            .sealer
            .seal(&plaintext, &secret_aad(tenant, name))
            .map_err(|e| secret_error(tenant, name, e))?;
        let mut metadata = Map::new();
        metadata.insert("name".into(), Value::String(name.to_owned()));
        if let Some(owner) = owner {
            metadata.insert("owner".into(), encode(&owner)?);
        }
        let mut object = Map::new();
        object.insert("apiVersion".into(), Value::String(API_VERSION.to_owned()));
        object.insert("kind".into(), Value::String(SECRET_KIND.to_owned()));
        object.insert("metadata".into(), Value::Object(metadata));
        object.insert("type".into(), Value::String(type_.to_owned()));
        object.insert("sealed".into(), encode(&sealed)?);
        self.store
            .create(SECRET_KIND, tenant, Value::Object(object))
            .await?;
        Ok(())
    }

    /// The decrypted data of secret `name`, `None` if there is no such secret.
    pub async fn get(&self, tenant: &str, name: &str) -> Result<Option<Value>, StoreError> {
        let key = ObjectKey::new(SECRET_KIND, tenant, name);
        let Some(object) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let sealed = sealed_of(&object, &key)?;
        let mut plaintext = self
            .sealer
            .open(&sealed, &secret_aad(tenant, name))
            .map_err(|e| secret_error(tenant, name, e))?;
        let data = serde_json::from_slice(&plaintext).map_err(|e| {
            StoreError::Invalid(format!(
                "Secret {tenant}/{name}: decrypted data is not JSON: {e}"
            ))
        });
        plaintext.fill(0);
        data.map(Some)
    }

    /// Whether secret `name` exists (nothing is decrypted).
    pub async fn exists(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&ObjectKey::new(SECRET_KIND, tenant, name))
            .await?
            .is_some())
    }

    /// Deletes secret `name`; false if there was none.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        match self
            .store
            .delete(&ObjectKey::new(SECRET_KIND, tenant, name))
            .await
        {
            Ok(Deleted::Removed | Deleted::Marked(_)) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Names of the secrets of `tenant` (owned by `owner_uid` if given), sorted.
    pub async fn list_names(
        &self,
        tenant: &str,
        owner_uid: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let filter = ListFilter {
            tenant: Some(tenant.to_owned()),
            owner_uid: owner_uid.map(str::to_owned),
            ..Default::default()
        };
        self.store
            .list(SECRET_KIND, &filter)
            .await?
            .iter()
            .map(|object| key_of(object).map(|key| key.name))
            .collect()
    }
}

/// Re-wraps the data key of every stored secret not yet under `sealer`'s current KEK
/// (ciphertexts unchanged); returns how many were re-wrapped. Each update carries the
/// resourceVersion it read and is retried on [`StoreError::Conflict`]; secrets deleted
/// meanwhile are skipped. Stops at the first secret it cannot unwrap (its KEK is not
/// loaded, or it was tampered with), naming it.
pub async fn rewrap_all(store: &dyn Store, sealer: &SecretBox) -> Result<usize, StoreError> {
    let mut rewrapped = 0;
    for object in store.list(SECRET_KIND, &ListFilter::default()).await? {
        let key = key_of(&object)?;
        if rewrap_one(store, sealer, &key, object).await? {
            rewrapped += 1;
        }
    }
    Ok(rewrapped)
}

/// Re-wraps one secret, starting from `object` as read; true if it was re-wrapped.
async fn rewrap_one(
    store: &dyn Store,
    sealer: &SecretBox,
    key: &ObjectKey,
    mut object: Value,
) -> Result<bool, StoreError> {
    let mut attempts = 0;
    loop {
        let sealed = sealed_of(&object, key)?;
        if sealed.kek_id == sealer.current_key_id() {
            return Ok(false);
        }
        let sealed = sealer
            .rewrap(&sealed)
            .map_err(|e| secret_error(&key.tenant, &key.name, e))?;
        let fields = object.as_object_mut().ok_or_else(|| {
            StoreError::Invalid(format!(
                "Secret {}/{} is not a JSON object",
                key.tenant, key.name
            ))
        })?;
        fields.insert("sealed".into(), encode(&sealed)?);
        match store.update(key, object).await {
            Ok(updated) => return Ok(updated.is_some()),
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(StoreError::Conflict { .. }) if attempts < MAX_REWRAP_ATTEMPTS => {
                attempts += 1;
                match store.get(key).await? {
                    Some(fresh) => object = fresh,
                    None => return Ok(false),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The associated data a secret's payload is bound to.
fn secret_aad(tenant: &str, name: &str) -> String {
    format!("{SECRET_KIND}/{tenant}/{name}")
}

/// Tenant and name may not contain `/`, which would make the associated data ambiguous.
fn check_part(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.contains('/') {
        return Err(StoreError::Invalid(format!(
            "secret {what} {value:?} must be non-empty and contain no '/'"
        )));
    }
    Ok(())
}

fn secret_error(tenant: &str, name: &str, e: SecretError) -> StoreError {
    StoreError::Invalid(format!("Secret {tenant}/{name}: {e}"))
}

fn encode<T: Serialize>(value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Invalid(format!("cannot encode: {e}")))
}

fn sealed_of(object: &Value, key: &ObjectKey) -> Result<Sealed, StoreError> {
    let sealed = object.get("sealed").ok_or_else(|| {
        StoreError::Invalid(format!(
            "Secret {}/{} has no sealed data",
            key.tenant, key.name
        ))
    })?;
    Sealed::deserialize(sealed).map_err(|e| {
        StoreError::Invalid(format!(
            "Secret {}/{}: malformed sealed data: {e}",
            key.tenant, key.name
        ))
    })
}

fn key_of(object: &Value) -> Result<ObjectKey, StoreError> {
    let meta = object.get("metadata");
    let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
    match (field("tenant"), field("name")) {
        (Some(tenant), Some(name)) => Ok(ObjectKey::new(SECRET_KIND, tenant, name)),
        _ => Err(StoreError::Invalid(
            "stored Secret without metadata.tenant and metadata.name".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sealer() -> SecretBox {
        SecretBox::from_keys(vec![("k1".into(), [7; KEY_LEN])], "k1").unwrap()
    }

    #[test]
    fn key_ids_are_checked() {
        for bad in ["", "a/b", "../x", "a.b", "k 1", &"k".repeat(MAX_ID_LEN + 1)] {
            assert!(check_id(bad, "test").is_err(), "{bad:?} accepted");
        }
        for good in ["k1", "env", "k-2_b", "K9"] {
            check_id(good, "test").unwrap();
        }
        assert!(SecretBox::from_keys(vec![("k1".into(), [0; KEY_LEN])], "k2").is_err());
        assert!(
            SecretBox::from_keys(
                vec![("k1".into(), [0; KEY_LEN]), ("k1".into(), [1; KEY_LEN])],
                "k1"
            )
            .is_err()
        );
    }

    #[test]
    fn key_text_is_checked_without_quoting_it() {
        let good = B64.encode([9_u8; KEY_LEN]);
        assert_eq!(decode_key(&format!("{good}\n"), "x").unwrap(), [9; KEY_LEN]);
        let short = B64.encode([9_u8; 31]);
        let err = decode_key(&short, "the origin").unwrap_err().to_string();
        assert!(
            err.contains("the origin") && err.contains("31 bytes"),
            "{err}"
        );
        assert!(!err.contains(&short), "{err}");
        let err = decode_key("not*base64!", "o").unwrap_err().to_string();
        assert!(
            err.contains("not valid base64") && !err.contains("not*base64"),
            "{err}"
        );
    }

    #[test]
    fn sealed_layout_is_as_documented() {
        let sealed = sealer().seal(b"hello", "Secret/t/n").unwrap();
        assert_eq!(B64.decode(&sealed.nonce).unwrap().len(), NONCE_LEN);
        assert_eq!(B64.decode(&sealed.key_nonce).unwrap().len(), NONCE_LEN);
        // Data key and payload each carry a 16-byte tag.
        assert_eq!(B64.decode(&sealed.wrapped_key).unwrap().len(), KEY_LEN + 16);
        assert_eq!(B64.decode(&sealed.ciphertext).unwrap().len(), 5 + 16);
        let json = serde_json::to_value(&sealed).unwrap();
        let fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            ["ciphertext", "kekId", "keyNonce", "nonce", "wrappedKey"]
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_data_key_and_nonce() {
        let sealer = sealer();
        let a = sealer.seal(b"same", "aad").unwrap();
        let b = sealer.seal(b"same", "aad").unwrap();
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }
}

//! [`ApiServer`]: one simulated API server, as its embedder (and the HTTP layer) use it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use crate::error::{ApiError, Reason};
use crate::nodes::NodeSpec;
use crate::object;
use crate::patch::PatchType;
use crate::portforward::PodPorts;
use crate::resources::{Catalog, split_api_version};
use crate::store::{Deleted, ObjectKey, Selectors, State, Target, Update, WriteOptions};

/// The Kubernetes version reported by default.
pub const DEFAULT_VERSION: &str = "v1.33.0";
/// How long the controller task lets a burst of changes settle before a pass.
const SETTLE: Duration = Duration::from_millis(5);
/// The longest a quiet cluster's controllers go without a pass.
const MAX_IDLE_PERIOD: Duration = Duration::from_secs(60);
/// Namespaces every cluster has.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// One simulated Kubernetes API server: the objects of one workload cluster.
///
/// Share it as `Arc<ApiServer>` between its [`crate::router`] and whoever runs its
/// controllers ([`ApiServer::tick`]). Nodes come through the HTTP API, from kubelets
/// ([`crate::Kubelet`]); tests may seed them with [`ApiServer::set_nodes`].
pub struct ApiServer {
    state: Mutex<State>,
    git_version: String,
    /// Where pods' port-forwards go; none: every forward fails, naming the port.
    pod_ports: Mutex<Option<Arc<dyn PodPorts>>>,
    /// How many passes the controllers made.
    passes: std::sync::atomic::AtomicU64,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("git_version", &self.git_version)
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// An API server of Kubernetes [`DEFAULT_VERSION`] with the namespaces every cluster
    /// has.
    pub fn new() -> Self {
        Self::with_version(DEFAULT_VERSION)
    }

    /// An API server that reports `git_version` (e.g. `v1.32.4`) at `/version`.
    pub fn with_version(git_version: &str) -> Self {
        let mut state = State::new();
        let now = Utc::now();
        let namespaces = crate::resources::builtins()
            .into_iter()
            .find(|t| t.is_core() && t.plural == "namespaces");
        if let Some(rt) = namespaces {
            for ns in INITIAL_NAMESPACES {
                let body = json!({"metadata": {"name": ns}});
                // Creating a namespace in an empty store cannot fail.
                let _ = state.create(&rt, "v1", "", body, &system_writer(), now);
            }
        }
        Self {
            state: Mutex::new(state),
            git_version: git_version.to_owned(),
            pod_ports: Mutex::new(None),
            passes: Default::default(),
        }
    }

    /// Everything the server holds (objects, resource version, address serial) as JSON,
    /// for [`ApiServer::restore`]: a simulated cluster outlives the process that serves
    /// it. The watch log is not kept: watches from before are told `410 Expired`.
    pub fn snapshot(&self) -> Value {
        let state = self.lock();
        let objects: Vec<Value> = state
            .objects
            .iter()
            .map(|(key, object)| {
                json!({
                    "group": key.group,
                    "resource": key.resource,
                    "namespace": key.namespace,
                    "name": key.name,
                    "object": object,
                })
            })
            .collect();
        json!({
            "revision": state.revision,
            "serial": state.serial,
            "objects": objects,
        })
    }

    /// An API server of `git_version` holding what `snapshot` (from
    /// [`ApiServer::snapshot`]) held.
    pub fn restore(git_version: &str, snapshot: &Value) -> Result<Self, String> {
        let number = |field: &str| {
            snapshot[field]
                .as_u64()
                .ok_or_else(|| format!("the snapshot has no {field}"))
        };
        let mut state = State::new();
        state.revision = number("revision")?;
        state.serial = u32::try_from(number("serial")?).map_err(|e| e.to_string())?;
        for entry in snapshot["objects"]
            .as_array()
            .ok_or("the snapshot has no objects")?
        {
            let text = |field: &str| {
                entry[field]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("an object of the snapshot has no {field}"))
            };
            let key = ObjectKey {
                group: text("group")?,
                resource: text("resource")?,
                namespace: text("namespace")?,
                name: text("name")?,
            };
            state.restore_object(key, entry["object"].clone());
        }
        state.expire_log_before(state.revision);
        Ok(Self {
            state: Mutex::new(state),
            git_version: git_version.to_owned(),
            pod_ports: Mutex::new(None),
            passes: Default::default(),
        })
    }

    /// The Kubernetes version reported at `/version`, e.g. `v1.33.0`.
    pub fn git_version(&self) -> &str {
        &self.git_version
    }

    /// Sends pods' port-forwards to `ports` (as a kubelet connects them inside the pod).
    pub fn set_pod_ports(&self, ports: Arc<dyn PodPorts>) {
        *self
            .pod_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(ports);
    }

    /// Where pods' port-forwards go.
    pub(crate) fn pod_ports(&self) -> Option<Arc<dyn PodPorts>> {
        self.pod_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current (cluster-wide) resource version.
    pub fn resource_version(&self) -> u64 {
        self.lock().revision
    }

    /// The resource types served now: the built-ins and those of the stored CRDs.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.lock().catalog()
    }

    /// The object of `kind` in `api_version` named `name` (in `namespace`, for
    /// namespaced kinds), as the API would return it.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        let catalog = state.catalog();
        let rt = catalog.by_kind(api_version, kind)?;
        let key = ObjectKey::new(rt, namespace, name);
        let (_, version) = split_api_version(api_version);
        state
            .get(&key)
            .map(|o| Target::new(rt.clone(), version, None).present(o))
    }

    /// The objects of `kind` in `api_version`, in `namespace` or (with `None`) in all.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.lock();
        let catalog = state.catalog();
        let Some(rt) = catalog.by_kind(api_version, kind) else {
            return Vec::new();
        };
        let (_, version) = split_api_version(api_version);
        state.list(
            &Target::new(rt.clone(), version, namespace),
            &Selectors::default(),
        )
    }

    /// Server-side applies `object` (its `apiVersion`, `kind`, name and namespace say
    /// where) as `field_manager`, forcing conflicts: how an embedder seeds a cluster.
    pub fn apply(&self, object: Value, field_manager: &str) -> Result<Value, ApiError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let mut state = self.lock();
        let catalog = state.catalog();
        let rt = catalog
            .by_kind(&api_version, kind)
            .ok_or_else(|| {
                ApiError::new(
                    Reason::NotFound,
                    format!("the server doesn't have a resource type {kind} in {api_version}"),
                )
            })?
            .clone();
        let (_, version) = split_api_version(&api_version);
        let key = ObjectKey::new(&rt, object::namespace(&object), object::name(&object));
        let options = WriteOptions {
            field_manager: Some(field_manager.to_owned()),
            force: true,
            dry_run: false,
        };
        let update = Update {
            rt: &rt,
            version,
            key: &key,
            subresource: None,
            options: &options,
            now: Utc::now(),
        };
        state
            .patch(&update, PatchType::Apply, object)
            .map(|(_, v)| v)
    }

    /// Makes the Node objects those of `nodes` (see [`NodeSpec`]): new ones are created,
    /// the others updated (`spec.unschedulable` and taints stay as the API left them),
    /// the rest deleted. Only changes are written. For tests that seed a cluster; a
    /// cluster kaas serves gets its nodes from [`crate::Kubelet`]s, over HTTP.
    pub fn set_nodes(&self, nodes: &[NodeSpec]) {
        crate::nodes::set_nodes(&mut self.lock(), nodes, Utc::now());
    }

    /// One pass of the simulated controllers at `now` (see the crate docs); the change
    /// log's history older than five minutes goes with it.
    pub fn tick(&self, now: DateTime<Utc>) {
        let mut state = self.lock();
        crate::controllers::tick(&mut state, now);
        state.compact_log(std::time::Instant::now());
        drop(state);
        self.passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many passes the simulated controllers have made.
    pub fn passes(&self) -> u64 {
        self.passes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs [`ApiServer::tick`] after every change, and every `period` anyway, until
    /// the API server is dropped or the task is aborted. A pass acts on the objects as
    /// they are, never on the time alone, so while passes change nothing the period
    /// doubles, up to a minute: a thousand quiet clusters cost next to nothing. Call it
    /// within a Tokio runtime.
    pub fn spawn_controllers(self: &Arc<Self>, period: Duration) -> JoinHandle<()> {
        let mut changes = self.lock().subscribe();
        let api = Arc::downgrade(self);
        let mut idle = period;
        tokio::spawn(async move {
            loop {
                // Changes that arrived meanwhile (the last pass's own included) are seen
                // by this pass.
                while let Ok(_) | Err(TryRecvError::Lagged(_)) = changes.try_recv() {}
                let Some(server) = api.upgrade() else {
                    return;
                };
                server.tick(Utc::now());
                drop(server);
                tokio::select! {
                    received = changes.recv() => {
                        if matches!(received, Err(RecvError::Closed)) {
                            return;
                        }
                        // Let a burst of changes settle into one pass.
                        tokio::time::sleep(SETTLE).await;
                        idle = period;
                    }
                    () = tokio::time::sleep(idle) => {
                        idle = (idle * 2).min(MAX_IDLE_PERIOD.max(period));
                    }
                }
            }
        })
    }

    /// Deletes the object of `kind` named `name` (as `kubectl delete` would).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Deleted, ApiError> {
        let mut state = self.lock();
        let catalog = state.catalog();
        let rt = catalog
            .by_kind(api_version, kind)
            .ok_or_else(ApiError::no_such_path)?
            .clone();
        let key = ObjectKey::new(&rt, namespace, name);
        state.delete(&rt, &key, &Value::Null, false, Utc::now())
    }
}

/// The manager of what the simulation itself writes.
pub(crate) fn system_writer() -> WriteOptions {
    WriteOptions {
        field_manager: Some("kube-sim".to_owned()),
        force: true,
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::resources::ResourceType;

    fn rt(catalog: &Catalog, group: &str, plural: &str) -> ResourceType {
        catalog.by_resource(group, "v1", plural).unwrap().clone()
    }

    fn cm(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    }

    fn opts(manager: &str) -> WriteOptions {
        WriteOptions {
            field_manager: Some(manager.to_owned()),
            ..WriteOptions::default()
        }
    }

    #[test]
    fn a_snapshot_restores_objects_custom_kinds_and_the_resource_version() {
        let api = ApiServer::with_version("v1.34.2");
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Cluster",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        });
        api.apply(crd, "test").unwrap();
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
        api.apply(widget, "test").unwrap();
        let mut settings = cm("settings", json!({"colour": "blue"}));
        settings["metadata"]["namespace"] = json!("default");
        api.apply(settings, "test").unwrap();
        let before = api.resource_version();

        let text = api.snapshot().to_string();
        let restored =
            ApiServer::restore("v1.34.2", &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(restored.resource_version(), before);
        assert_eq!(restored.git_version(), "v1.34.2");
        let got = restored
            .get("v1", "ConfigMap", "default", "settings")
            .unwrap();
        assert_eq!(got["data"]["colour"], "blue");
        assert_eq!(
            got,
            api.get("v1", "ConfigMap", "default", "settings").unwrap()
        );
        assert!(
            restored
                .catalog()
                .by_kind("example.com/v1", "Widget")
                .is_some()
        );
        assert_eq!(
            restored.get("example.com/v1", "Widget", "", "w").unwrap()["spec"]["size"],
            3
        );
        // Writes go on from the restored resource version.
        let mut more = cm("more", json!({}));
        more["metadata"]["namespace"] = json!("default");
        let written = restored.apply(more, "test").unwrap();
        let rv: u64 = written["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rv, before + 1);
        assert!(ApiServer::restore("v1", &json!({"objects": []})).is_err());
    }

    #[test]
    fn a_new_server_has_the_initial_namespaces() {
        let api = ApiServer::new();
        let names: Vec<String> = api
            .list("v1", "Namespace", None)
            .iter()
            .map(|n| object::name(n).to_owned())
            .collect();
        assert_eq!(
            names,
            ["default", "kube-node-lease", "kube-public", "kube-system"]
        );
        assert_eq!(api.resource_version(), 4);
    }

    #[test]
    fn finalizers_hold_a_deletion_until_they_are_removed() {
        let api = ApiServer::new();
        let mut obj = cm("c", json!({}));
        obj["metadata"]["namespace"] = json!("default");
        obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
        api.apply(obj, "t").unwrap();
        let marked = api.delete("v1", "ConfigMap", "default", "c").unwrap();
        let Deleted::Marked(marked) = marked else {
            panic!("not marked: {marked:?}")
        };
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        let mut state = api.lock();
        let catalog = state.catalog();
        let cms = rt(&catalog, "", "configmaps");
        let key = ObjectKey::new(&cms, "default", "c");
        let patch = json!({"metadata": {"finalizers": null}});
        let options = opts("t");
        let update = Update {
            rt: &cms,
            version: "v1",
            key: &key,
            subresource: None,
            options: &options,
            now: Utc::now(),
        };
        state.patch(&update, PatchType::Merge, patch).unwrap();
        assert!(state.get(&key).is_none());
    }

    #[test]
    fn deleting_a_namespace_deletes_what_is_in_it() {
        let api = ApiServer::new();
        api.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
            "t",
        )
        .unwrap();
        let mut obj = cm("c", json!({}));
        obj["metadata"]["namespace"] = json!("x");
        api.apply(obj, "t").unwrap();
        api.delete("v1", "Namespace", "", "x").unwrap();
        assert!(api.get("v1", "ConfigMap", "x", "c").is_none());
    }
}

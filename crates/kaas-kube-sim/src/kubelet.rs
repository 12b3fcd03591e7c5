//! Simulated kubelets. Each registers its Node, reports its status and renews its node
//! lease through a cluster's Kubernetes HTTP API, over TLS with a client certificate of
//! its own (`system:node:<name>`), as a real kubelet does and as KWOK's do. Whoever
//! reads the cluster's nodes (kaas's controller, kubectl) reads what they wrote, as
//! from real kubelets.
//!
//! A kubelet that stops reporting leaves its Node behind, as a real one would: whoever
//! deletes the machine deletes the Node.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fields::timestamp;
use crate::nodes::{NodeSpec, node_object};

/// The User-Agent of a simulated kubelet's requests, as a real kubelet's begins.
pub const KUBELET_USER_AGENT: &str = "kubelet/";

/// The namespace of the node leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The label of control-plane nodes, whose kubelets run kubeadm's static pods.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// Where static pods' mirror pods are.
const STATIC_POD_NAMESPACE: &str = "kube-system";
/// kubeadm's static pods on a control plane.
const STATIC_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
/// How long a lease holds at least, as the kubelet sets it (kubelet's default).
const LEASE_DURATION_SECONDS: u32 = 40;

/// How long a lease renewed every `renew_every` holds: four renewals, as a kubelet
/// renews at a quarter of its lease's duration, and never less than kubelet's default.
fn lease_duration(renew_every: Duration) -> u32 {
    let four = renew_every.as_secs().saturating_mul(4);
    u32::try_from(four)
        .unwrap_or(u32::MAX)
        .max(LEASE_DURATION_SECONDS)
}

/// One node's kubelet, talking to its cluster's API server.
#[derive(Debug, Clone)]
pub struct Kubelet {
    name: String,
    base: String,
    http: reqwest::Client,
    /// What it last reported in full, and when: until the spec changes or the lease is
    /// due, there is nothing to say (a real kubelet, too, posts its status only every
    /// so often).
    last: std::sync::Arc<std::sync::Mutex<Option<Reported>>>,
    /// Whether the mirror pods of its static pods are posted (a control plane's).
    mirrored: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What a kubelet last reported in full, and when.
type Reported = (NodeSpec, DateTime<Utc>);

impl Kubelet {
    /// The kubelet of node `name`, reaching the API server at `base` (`https://HOST:PORT`)
    /// that `ca_pem` vouches for, with its client certificate and key (PEM).
    pub fn new(
        name: &str,
        base: &str,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self, String> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| format!("the cluster CA: {e}"))?;
        let identity = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
            .map_err(|e| format!("the kubelet's client certificate: {e}"))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .user_agent(format!("{KUBELET_USER_AGENT}kaas-sim"))
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the kubelet's HTTP client: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            http,
            last: Default::default(),
            mirrored: Default::default(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Registers the node if it is not registered, writes its labels, provider id and
    /// status where they differ from `spec`, and renews its lease when the last renewal
    /// is older than `renew_every`. A conflict with another writer waits for the next
    /// report. Sends nothing while `spec` is what it last reported and the lease is not
    /// due.
    pub async fn report(
        &self,
        spec: &NodeSpec,
        renew_every: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let unchanged = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(last, at)| {
                last == spec && (now - *at).to_std().unwrap_or(Duration::ZERO) < renew_every
            });
        if unchanged {
            return Ok(());
        }
        self.report_now(spec, renew_every, now).await?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((spec.clone(), now));
        Ok(())
    }

    async fn report_now(
        &self,
        spec: &NodeSpec,
        renew_every: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let path = format!("/api/v1/nodes/{}", self.name);
        let existing = match self.call(Method::GET, &path, None).await? {
            (StatusCode::OK, node) => node,
            (StatusCode::NOT_FOUND, _) => {
                let node = node_object(spec, None, now);
                let (code, created) = self
                    .call(Method::POST, "/api/v1/nodes", Some(&node))
                    .await?;
                match code {
                    StatusCode::CREATED | StatusCode::OK => created,
                    StatusCode::CONFLICT => return Ok(()),
                    code => {
                        return Err(format!("registering node {}: {code} {created}", self.name));
                    }
                }
            }
            (code, body) => return Err(format!("reading node {}: {code} {body}", self.name)),
        };
        let mut desired = node_object(spec, Some(&existing), now);
        let mut current = existing.clone();
        if desired["metadata"]["labels"] != existing["metadata"]["labels"]
            || desired["spec"]["providerID"] != existing["spec"]["providerID"]
        {
            let (code, updated) = self.call(Method::PUT, &path, Some(&desired)).await?;
            match code {
                StatusCode::OK => current = updated,
                StatusCode::CONFLICT => return Ok(()),
                code => return Err(format!("updating node {}: {code} {updated}", self.name)),
            }
        }
        if desired["status"] != current["status"] {
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            let status_path = format!("{path}/status");
            let (code, body) = self.call(Method::PUT, &status_path, Some(&desired)).await?;
            match code {
                StatusCode::OK | StatusCode::CONFLICT => {}
                code => {
                    return Err(format!(
                        "reporting the status of node {}: {code} {body}",
                        self.name
                    ));
                }
            }
        }
        if spec.labels.contains_key(CONTROL_PLANE_LABEL)
            && !self.mirrored.load(std::sync::atomic::Ordering::Relaxed)
        {
            self.post_mirror_pods(&current).await?;
            self.mirrored
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.renew_lease(renew_every, now).await
    }

    /// Posts the mirror pods of a control plane's static pods (kubeadm's manifests in
    /// `/etc/kubernetes/manifests`), as a kubelet does: `<component>-<node>` in
    /// `kube-system`, bound to the node, annotated as mirrors and owned by the Node.
    /// Ones already there stay.
    async fn post_mirror_pods(&self, node: &Value) -> Result<(), String> {
        let collection = format!("/api/v1/namespaces/{STATIC_POD_NAMESPACE}/pods");
        for component in STATIC_PODS {
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": format!("{component}-{}", self.name),
                    "namespace": STATIC_POD_NAMESPACE,
                    "labels": {"component": component, "tier": "control-plane"},
                    "annotations": {
                        "kubernetes.io/config.mirror": format!("{component}-{}", self.name),
                        "kubernetes.io/config.source": "file",
                    },
                    "ownerReferences": [{
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.name,
                        "uid": node["metadata"]["uid"],
                        "controller": true,
                    }],
                },
                "spec": {
                    "nodeName": self.name,
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                    "containers": [{"name": component, "image": format!("registry.k8s.io/{component}")}],
                },
            });
            let (code, body) = self.call(Method::POST, &collection, Some(&pod)).await?;
            if !matches!(
                code,
                StatusCode::CREATED | StatusCode::OK | StatusCode::CONFLICT
            ) {
                return Err(format!(
                    "posting the mirror pod {component}-{}: {code} {body}",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// Renews the node's lease in `kube-node-lease` (creating it the first time).
    async fn renew_lease(&self, renew_every: Duration, now: DateTime<Utc>) -> Result<(), String> {
        let collection =
            format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases");
        let path = format!("{collection}/{}", self.name);
        let renew = timestamp(now);
        match self.call(Method::GET, &path, None).await? {
            (StatusCode::OK, mut lease) => {
                let last = lease["spec"]["renewTime"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let due = last
                    .is_none_or(|t| (now - t).to_std().unwrap_or(Duration::ZERO) >= renew_every);
                if due {
                    lease["spec"]["renewTime"] = json!(renew);
                    lease["spec"]["leaseDurationSeconds"] = json!(lease_duration(renew_every));
                    let (code, body) = self.call(Method::PUT, &path, Some(&lease)).await?;
                    if !matches!(code, StatusCode::OK | StatusCode::CONFLICT) {
                        return Err(format!(
                            "renewing the lease of {}: {code} {body}",
                            self.name
                        ));
                    }
                }
                Ok(())
            }
            (StatusCode::NOT_FOUND, _) => {
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                    "spec": {
                        "holderIdentity": self.name,
                        "leaseDurationSeconds": lease_duration(renew_every),
                        "renewTime": renew,
                    },
                });
                let (code, body) = self.call(Method::POST, &collection, Some(&lease)).await?;
                if !matches!(
                    code,
                    StatusCode::CREATED | StatusCode::OK | StatusCode::CONFLICT
                ) {
                    return Err(format!("taking the lease of {}: {code} {body}", self.name));
                }
                Ok(())
            }
            (code, body) => Err(format!("reading the lease of {}: {code} {body}", self.name)),
        }
    }
}

//! The cluster's registry pull credential: a `kubernetes.io/dockerconfigjson` Secret in
//! every namespace, named in the `imagePullSecrets` of each namespace's `default`
//! ServiceAccount, so that pods pull from the integrated registry without anyone
//! naming a secret. The Secret carries the digest of what it holds, so a renewed
//! credential is noticed and written again.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kaas_cloud::WorkloadError;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::WorkloadClient;
use crate::apply::FIELD_MANAGER;

/// The label on the pull Secrets kaas writes.
pub const PULL_SECRET_LABEL: &str = "kaas.dev/registry-pull";
/// The annotation with the digest of the Secret's content.
pub const DIGEST_ANNOTATION: &str = "kaas.dev/digest";
const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";

impl WorkloadClient {
    /// The namespaces whose pull Secret `name` is missing or does not hold `digest`, or
    /// whose `default` ServiceAccount does not name it (a namespace whose `default`
    /// ServiceAccount does not exist yet is left for later).
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn stale_pull_secrets(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Vec<String>, WorkloadError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let secrets: Api<Secret> = Api::all(self.client.clone());
        let accounts: Api<ServiceAccount> = Api::all(self.client.clone());
        let namespaces = namespaces
            .list(&ListParams::default())
            .await
            .map_err(|e| self.error(e))?;
        let current: BTreeSet<String> = secrets
            .list(
                &ListParams::default()
                    .labels(PULL_SECRET_LABEL)
                    .fields(&format!("metadata.name={name}")),
            )
            .await
            .map_err(|e| self.error(e))?
            .items
            .into_iter()
            .filter(|s| {
                s.metadata.name.as_deref() == Some(name)
                    && s.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(DIGEST_ANNOTATION))
                        .is_some_and(|d| d == digest)
            })
            .filter_map(|s| s.metadata.namespace)
            .collect();
        let defaults: BTreeMap<String, bool> = accounts
            .list(&ListParams::default().fields("metadata.name=default"))
            .await
            .map_err(|e| self.error(e))?
            .items
            .into_iter()
            .filter(|a| a.metadata.name.as_deref() == Some("default"))
            .filter_map(|a| {
                let names = a
                    .image_pull_secrets
                    .iter()
                    .flatten()
                    .any(|r| r.name == name);
                a.metadata.namespace.map(|ns| (ns, names))
            })
            .collect();
        Ok(namespaces
            .items
            .into_iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| n.metadata.name)
            .filter(|ns| {
                let account = defaults.get(ns);
                account.is_some() && (!current.contains(ns) || account == Some(&false))
            })
            .collect())
    }

    /// Writes the pull Secret `name` with `docker_config` (server-side apply) in each of
    /// `namespaces`, and adds it to the `imagePullSecrets` of their `default`
    /// ServiceAccount (a JSON patch guarded by the account's resourceVersion, so that
    /// what others put there stays).
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, namespaces = namespaces.len()))]
    pub async fn put_pull_secrets(
        &self,
        name: &str,
        namespaces: &[String],
        docker_config: &[u8],
        digest: &str,
    ) -> Result<(), WorkloadError> {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(docker_config);
        for namespace in namespaces {
            let secret = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {PULL_SECRET_LABEL: "true"},
                    "annotations": {DIGEST_ANNOTATION: digest},
                },
                "type": DOCKER_CONFIG_TYPE,
                "data": {".dockerconfigjson": data},
            });
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            secrets
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(secret),
                )
                .await
                .map_err(|e| self.error(e))?;
            let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            let Some(account) = accounts
                .get_opt("default")
                .await
                .map_err(|e| self.error(e))?
            else {
                continue;
            };
            let listed = account.image_pull_secrets.as_deref().unwrap_or_default();
            if listed.iter().any(|r| r.name == name) {
                continue;
            }
            // The whole list, with the resourceVersion read: a change made meanwhile
            // makes this one fail (409), and the next reconcile reads again.
            let mut names: Vec<serde_json::Value> =
                listed.iter().map(|r| json!({"name": r.name})).collect();
            names.push(json!({"name": name}));
            let patch = json!({
                "metadata": {"resourceVersion": account.metadata.resource_version},
                "imagePullSecrets": names,
            });
            accounts
                .patch("default", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Deletes the pull Secret `name` from every namespace and takes it out of each
    /// `default` ServiceAccount's `imagePullSecrets` (what others put there stays).
    /// Idempotent.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn remove_pull_secrets(&self, name: &str) -> Result<(), WorkloadError> {
        let accounts: Api<ServiceAccount> = Api::all(self.client.clone());
        for account in accounts
            .list(&ListParams::default().fields("metadata.name=default"))
            .await
            .map_err(|e| self.error(e))?
            .items
        {
            let listed = account.image_pull_secrets.as_deref().unwrap_or_default();
            if !listed.iter().any(|r| r.name == name) {
                continue;
            }
            let Some(namespace) = account.metadata.namespace.as_deref() else {
                continue;
            };
            let kept: Vec<serde_json::Value> = listed
                .iter()
                .filter(|r| r.name != name)
                .map(|r| json!({"name": r.name}))
                .collect();
            let patch = json!({
                "metadata": {"resourceVersion": account.metadata.resource_version},
                "imagePullSecrets": kept,
            });
            Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
                .patch("default", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| self.error(e))?;
        }
        let secrets: Api<Secret> = Api::all(self.client.clone());
        for secret in secrets
            .list(
                &ListParams::default()
                    .labels(PULL_SECRET_LABEL)
                    .fields(&format!("metadata.name={name}")),
            )
            .await
            .map_err(|e| self.error(e))?
            .items
        {
            let Some(namespace) = secret.metadata.namespace.as_deref() else {
                continue;
            };
            match Api::<Secret>::namespaced(self.client.clone(), namespace)
                .delete(name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(())
    }
}

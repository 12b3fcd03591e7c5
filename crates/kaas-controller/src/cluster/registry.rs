//! The cluster's own pull credential for the integrated registry: a robot credential
//! (`cluster-<name>`, pull only, owned by the cluster) whose secret kaas keeps sealed,
//! delivered into the workload cluster as a `kubernetes.io/dockerconfigjson` Secret in
//! every namespace and named by each `default` ServiceAccount. It lives
//! [`CREDENTIAL_TTL_DAYS`] days and is rotated [`RENEW_BEFORE_DAYS`] days before it
//! expires, the old secret still taken until then, so pods never meet a dead one. The
//! token service refuses it once its cluster is being deleted; the cluster's last step
//! deletes it.

use chrono::{DateTime, Duration, Utc};
use kaas_core::Cluster;
use kaas_core::registry::{RegistryAccess, RegistryCredential, RegistryCredentialSpec};
use kaas_store::{StoreExt, sha256_hex};

use super::plan::{Observed, Plan, Step};
use super::{ClusterController, StepError, owner_ref};

/// The name of the pull Secret in each namespace of the workload cluster.
pub const PULL_SECRET: &str = "kaas-registry";
/// How long a cluster's pull credential is valid.
pub const CREDENTIAL_TTL_DAYS: i64 = 30;
/// How long before its expiry it is rotated.
pub const RENEW_BEFORE_DAYS: i64 = 10;
const SEALED_TYPE: &str = "kaas.dev/registry-pull-credential";

/// The name of the cluster's credential.
fn credential_name(cluster: &Cluster) -> String {
    kaas_core::registry::cluster_credential_name(&cluster.metadata.name)
}

fn sealed_name(cluster: &Cluster) -> String {
    format!("registry-pull-{}", cluster.metadata.name)
}

/// The pull credential as observed: no secret in it, only hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedPull {
    /// Whether the cluster should have a pull credential (the server has a registry,
    /// and the spec wants one).
    pub wanted: bool,
    pub credential: Option<RegistryCredential>,
    /// The SHA-256 of the sealed secret, if one is sealed.
    pub sealed_sha256: Option<String>,
    /// What the workload cluster's Secrets must carry: a digest of registry, user and
    /// secret hash.
    pub digest: Option<String>,
    /// The namespaces whose Secret or `default` ServiceAccount is not up to date;
    /// `None` while unknown (the API does not answer, or nothing is issued yet).
    pub stale: Option<Vec<String>>,
}

/// The digest the workload cluster's pull Secrets carry.
pub fn digest(host: &str, credential: &RegistryCredential) -> String {
    let text = format!(
        "{host}\n{}\n{}",
        credential.username(),
        credential.spec.secret_sha256
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the credential must be issued (again): missing, its sealed secret missing or
/// not the current one (a rotation interrupted), or close to its expiry.
fn needs_issue(pull: &ObservedPull, now: DateTime<Utc>) -> bool {
    let Some(credential) = &pull.credential else {
        return true;
    };
    pull.sealed_sha256.as_deref() != Some(credential.spec.secret_sha256.as_str())
        || credential
            .spec
            .expires_at
            .is_some_and(|at| at - now < Duration::days(RENEW_BEFORE_DAYS))
}

/// Adds the pull credential's steps to `plan`: issue or renew it, write it into the
/// namespaces that lack it, or remove it when it is no longer wanted.
pub fn plan_pull_credential(observed: &Observed, plan: &mut Plan) {
    let Some(pull) = &observed.registry else {
        return;
    };
    if !pull.wanted {
        if pull.credential.is_some() || pull.sealed_sha256.is_some() {
            plan.steps.push(Step::RevokePullCredential {
                from_cluster: observed.nodes.is_some(),
            });
        }
        return;
    }
    if needs_issue(pull, observed.now) {
        plan.steps.push(Step::IssuePullCredential);
        return;
    }
    if let Some(stale) = &pull.stale
        && !stale.is_empty()
    {
        plan.steps.push(Step::SyncPullSecrets {
            namespaces: stale.clone(),
        });
    }
}

impl ClusterController {
    /// The pull credential as it stands (reads only).
    pub(super) async fn observe_pull(
        &self,
        cluster: &Cluster,
        target: Option<&kaas_cloud::WorkloadClusterRef>,
        api_answers: bool,
    ) -> Result<ObservedPull, StepError> {
        let tenant = &cluster.metadata.tenant;
        let wanted = self.config.registry_host.is_some() && cluster.spec.registry.pull_credential;
        let credential = self
            .store
            .get_obj::<RegistryCredential>(tenant, &credential_name(cluster))
            .await?
            .filter(|c| {
                c.metadata
                    .owner
                    .as_ref()
                    .is_some_and(|o| o.uid == cluster.metadata.uid)
            });
        let sealed_sha256 = self
            .secrets()
            .get(tenant, &sealed_name(cluster))
            .await?
            .and_then(|data| data["secret"].as_str().map(sha256_hex));
        let digest = match (&self.config.registry_host, &credential) {
            (Some(host), Some(c)) => Some(digest(host, c)),
            _ => None,
        };
        let mut pull = ObservedPull {
            wanted,
            credential,
            sealed_sha256,
            digest,
            stale: None,
        };
        if wanted
            && api_answers
            && !needs_issue(&pull, Utc::now())
            && let (Some(target), Some(digest)) = (target, &pull.digest)
        {
            // Found up to date for this digest within the steady interval: not listed
            // again (a new namespace waits for the next health check).
            let uid = &cluster.metadata.uid;
            let fresh = self
                .pull_checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(uid)
                .is_some_and(|(at, d)| d == digest && at.elapsed() < self.config.steady_interval);
            if fresh {
                pull.stale = Some(Vec::new());
                return Ok(pull);
            }
            match self
                .workloads
                .stale_pull_secrets(target, PULL_SECRET, digest)
                .await
            {
                Ok(stale) => {
                    let mut checked = self.pull_checked.lock().unwrap_or_else(|e| e.into_inner());
                    if stale.is_empty() {
                        checked.insert(uid.clone(), (std::time::Instant::now(), digest.clone()));
                    } else {
                        checked.remove(uid);
                    }
                    pull.stale = Some(stale);
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the cluster's pull Secrets"),
            }
        }
        Ok(pull)
    }

    /// Issues the cluster's credential, or rotates it: the new secret is sealed first,
    /// then its hash becomes the credential's (an interruption in between is seen as a
    /// mismatch and issued again; the old secret stays valid until it would expire).
    pub(super) async fn issue_pull_credential(
        &self,
        cluster: &Cluster,
    ) -> Result<Option<(String, String)>, StepError> {
        let tenant = &cluster.metadata.tenant;
        let secret = {
            use base64::Engine;
            use ring::rand::SecureRandom;
            let mut bytes = [0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| {
                    StepError::Store(kaas_store::StoreError::Invalid(
                        "the system random number generator failed".to_owned(),
                    ))
                })?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let secrets = self.secrets();
        secrets.delete(tenant, &sealed_name(cluster)).await?;
        secrets
            .put(
                tenant,
                &sealed_name(cluster),
                Some(owner_ref(cluster)),
                SEALED_TYPE,
                &serde_json::json!({"secret": secret}),
            )
            .await?;
        let now = Utc::now();
        let expires_at = now + Duration::days(CREDENTIAL_TTL_DAYS);
        let name = credential_name(cluster);
        let rotated = match self
            .store
            .get_obj::<RegistryCredential>(tenant, &name)
            .await?
        {
            Some(mut credential)
                if credential
                    .metadata
                    .owner
                    .as_ref()
                    .is_some_and(|o| o.uid == cluster.metadata.uid) =>
            {
                let overlap = credential
                    .spec
                    .expires_at
                    .map_or(Duration::zero(), |at| (at - now).max(Duration::zero()));
                credential.spec.rotate(sha256_hex(&secret), now, overlap);
                credential.spec.expires_at = Some(expires_at);
                self.store.update_obj(&credential).await?;
                true
            }
            stale => {
                if stale.is_some() {
                    // A credential of the same name left by an earlier cluster.
                    let _ = self
                        .store
                        .delete_obj::<RegistryCredential>(tenant, &name)
                        .await;
                }
                let mut credential = RegistryCredential::new(
                    &name,
                    RegistryCredentialSpec {
                        access: RegistryAccess::Pull,
                        description: format!(
                            "the pull credential of cluster {}",
                            cluster.metadata.name
                        ),
                        created_by: format!("cluster:{}", cluster.metadata.name),
                        expires_at: Some(expires_at),
                        secret_sha256: sha256_hex(&secret),
                        rotated_at: None,
                        previous: None,
                    },
                );
                credential.metadata.owner = Some(owner_ref(cluster));
                self.store.create_obj(tenant, &credential).await?;
                false
            }
        };
        let text = if rotated {
            format!(
                "Renewed the registry pull credential {name} (valid until {expires_at}); the one before is taken until it expires"
            )
        } else {
            format!("Issued the registry pull credential {name} (valid until {expires_at})")
        };
        Ok(Some(("PullCredentialIssued".to_owned(), text)))
    }

    /// Writes the pull Secret into `namespaces` and names it in their `default`
    /// ServiceAccounts.
    pub(super) async fn sync_pull_secrets(
        &self,
        cluster: &Cluster,
        target: &kaas_cloud::WorkloadClusterRef,
        namespaces: &[String],
    ) -> Result<Option<(String, String)>, StepError> {
        let tenant = &cluster.metadata.tenant;
        let Some(host) = &self.config.registry_host else {
            return Ok(None);
        };
        let Some(credential) = self
            .store
            .get_obj::<RegistryCredential>(tenant, &credential_name(cluster))
            .await?
        else {
            return Ok(None);
        };
        let Some(secret) = self
            .secrets()
            .get(tenant, &sealed_name(cluster))
            .await?
            .and_then(|d| d["secret"].as_str().map(str::to_owned))
        else {
            return Ok(None);
        };
        let config =
            kaas_bootstrap::registry::docker_config_json(host, &credential.username(), &secret);
        let bytes = serde_json::to_vec(&config).unwrap_or_default();
        self.workloads
            .put_pull_secrets(
                target,
                PULL_SECRET,
                namespaces,
                &bytes,
                &digest(host, &credential),
            )
            .await
            .map_err(|source| StepError::SyncPullSecrets { source })?;
        Ok(Some((
            "PullSecretsWritten".to_owned(),
            format!(
                "Wrote the registry pull Secret {PULL_SECRET} in {} namespace(s): {}",
                namespaces.len(),
                namespaces.join(", ")
            ),
        )))
    }

    /// Takes the pull Secrets out of the workload cluster (while it has an API), then
    /// removes the cluster's credential and its sealed secret.
    pub(super) async fn revoke_pull_credential(
        &self,
        cluster: &Cluster,
        workload: Option<&kaas_cloud::WorkloadClusterRef>,
    ) -> Result<Option<(String, String)>, StepError> {
        let tenant = &cluster.metadata.tenant;
        let name = credential_name(cluster);
        if let Some(target) = workload {
            self.workloads
                .remove_pull_secrets(target, PULL_SECRET)
                .await
                .map_err(|source| StepError::SyncPullSecrets { source })?;
        }
        self.pull_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cluster.metadata.uid);
        match self
            .store
            .delete_obj::<RegistryCredential>(tenant, &name)
            .await
        {
            Ok(_) | Err(kaas_store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.secrets().delete(tenant, &sealed_name(cluster)).await?;
        Ok(Some((
            "PullCredentialRevoked".to_owned(),
            format!(
                "Revoked the registry pull credential {name} and took its Secrets out of the cluster"
            ),
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn credential(expires_in_days: i64, sha: &str) -> RegistryCredential {
        RegistryCredential::new(
            "cluster-a",
            RegistryCredentialSpec {
                access: RegistryAccess::Pull,
                description: String::new(),
                created_by: String::new(),
                expires_at: Some(Utc::now() + Duration::days(expires_in_days)),
                secret_sha256: sha.to_owned(),
                rotated_at: None,
                previous: None,
            },
        )
    }

    fn pull(credential: Option<RegistryCredential>, sealed: Option<&str>) -> ObservedPull {
        ObservedPull {
            wanted: true,
            credential,
            sealed_sha256: sealed.map(str::to_owned),
            digest: None,
            stale: None,
        }
    }

    #[test]
    fn credentials_are_issued_when_missing_mismatched_or_expiring() {
        let now = Utc::now();
        assert!(needs_issue(&pull(None, None), now));
        assert!(needs_issue(&pull(Some(credential(30, "a")), None), now));
        assert!(needs_issue(
            &pull(Some(credential(30, "a")), Some("b")),
            now
        ));
        assert!(needs_issue(&pull(Some(credential(5, "a")), Some("a")), now));
        assert!(!needs_issue(
            &pull(Some(credential(30, "a")), Some("a")),
            now
        ));
    }

    #[test]
    fn the_digest_follows_the_secret() {
        let a = digest("r.example", &credential(30, "a"));
        assert_eq!(a, digest("r.example", &credential(30, "a")));
        assert_ne!(a, digest("r.example", &credential(30, "b")));
        assert_ne!(a, digest("s.example", &credential(30, "a")));
    }
}

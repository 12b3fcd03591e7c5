//! kubeadm bootstrap tokens in a workload cluster: the `bootstrap-token-<id>` Secrets
//! in `kube-system` (type `bootstrap.kubernetes.io/token`) that `kubeadm token create`
//! makes, with which a new machine authenticates its join and checks the cluster's
//! `cluster-info`. kaas labels each with the machine it is for.

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Secret;
use kaas_cloud::{JoinToken, RegisteredToken, WorkloadError};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::WorkloadClient;
use crate::apply::FIELD_MANAGER;
use crate::error::api_code;

/// The label that names the machine a token is for.
pub const MACHINE_LABEL: &str = "kaas.dev/machine";
const NAMESPACE: &str = "kube-system";
const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group kubeadm's RBAC lets join (`kubeadm:kubelet-bootstrap`, node CSR approval).
const JOIN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// The Secret `kubeadm token create` would make for `token`, labelled with its machine.
pub fn token_secret(token: &JoinToken) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(&token.id),
            "namespace": NAMESPACE,
            "labels": {MACHINE_LABEL: token.machine},
        },
        "type": TOKEN_TYPE,
        "stringData": {
            "description": format!("kaas: joins machine {}", token.machine),
            "token-id": token.id,
            "token-secret": token.secret,
            "expiration": token.expires.to_rfc3339_opts(SecondsFormat::Secs, true),
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": JOIN_GROUP,
        },
    })
}

impl WorkloadClient {
    fn token_secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// The bootstrap tokens kaas registered (those with [`MACHINE_LABEL`]).
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn bootstrap_tokens(&self) -> Result<Vec<RegisteredToken>, WorkloadError> {
        let list = self
            .token_secrets()
            .list(&ListParams::default().labels(MACHINE_LABEL))
            .await
            .map_err(|e| self.error(e))?;
        Ok(list
            .items
            .iter()
            .filter(|s| s.type_.as_deref() == Some(TOKEN_TYPE))
            .filter_map(registered)
            .collect())
    }

    /// Creates the token's Secret, or moves its expiry (server-side apply, field manager
    /// `kaas`).
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, token = %token.id))]
    pub async fn register_bootstrap_token(&self, token: &JoinToken) -> Result<(), WorkloadError> {
        self.token_secrets()
            .patch(
                &secret_name(&token.id),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(token_secret(token)),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Deletes the token `id`; one that is not there is no error.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, token = %id))]
    pub async fn delete_bootstrap_token(&self, id: &str) -> Result<(), WorkloadError> {
        match self
            .token_secrets()
            .delete(&secret_name(id), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// A listed token Secret, without its secret half.
fn registered(secret: &Secret) -> Option<RegisteredToken> {
    let machine = secret.metadata.labels.as_ref()?.get(MACHINE_LABEL)?.clone();
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(RegisteredToken {
        id: text("token-id")?,
        machine,
        expires: text("expiration")
            .and_then(|e| DateTime::parse_from_rfc3339(&e).ok())
            .map(|e| e.with_timezone(&Utc)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_secret_is_what_kubeadm_makes_and_reads_back() {
        let token = JoinToken {
            id: "abcdef".to_owned(),
            secret: "0123456789abcdef".to_owned(),
            machine: "prod-workers-x7k2p".to_owned(),
            expires: "2026-12-04T16:00:00Z".parse().unwrap(),
        };
        let secret = token_secret(&token);
        assert_eq!(secret["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(secret["metadata"]["namespace"], "kube-system");
        assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
        let data = &secret["stringData"];
        assert_eq!(data["token-id"], "abcdef");
        assert_eq!(data["token-secret"], "0123456789abcdef");
        assert_eq!(data["expiration"], "2026-12-04T16:00:00Z");
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["usage-bootstrap-signing"], "true");
        assert_eq!(
            data["auth-extra-groups"],
            "system:bootstrappers:kubeadm:default-node-token"
        );
        // As the API server stores it (stringData folded into data), it lists as the
        // token it was, without its secret.
        let stored: Secret = serde_json::from_value(json!({
            "metadata": secret["metadata"],
            "type": secret["type"],
            "data": data.as_object().unwrap().iter().map(|(k, v)| {
                use base64::Engine as _;
                (k.clone(), json!(base64::engine::general_purpose::STANDARD
                    .encode(v.as_str().unwrap())))
            }).collect::<serde_json::Map<_, _>>(),
        }))
        .unwrap();
        assert_eq!(
            registered(&stored),
            Some(RegisteredToken {
                id: "abcdef".to_owned(),
                machine: "prod-workers-x7k2p".to_owned(),
                expires: Some(token.expires),
            })
        );
        // The token's secret is not in its Debug output.
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
    }
}

//! What kaas issues for a cluster: its PKI (generated once, sealed at rest), the
//! client certificate kaas presents to its API (issued from the cluster's CA, kept in
//! memory for most of its day of validity), and the secret of its application
//! credential (chosen by kaas and sealed before the cloud sees it).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kaas_bootstrap::{ClusterPki, issue_admin_client_cert, issue_etcd_client_cert};
use kaas_cloud::{ClientCredentials, Credential};
use kaas_core::Cluster;
use kaas_store::StoreError;
use rand::Rng;

use super::error::StepError;
use super::{ClusterController, owner_ref};

/// The type of the Secret that holds a cluster's CAs and service-account key.
pub const PKI_SECRET_TYPE: &str = "kaas.dev/cluster-pki";
/// The type of the Secret that holds a cluster's application credential secret.
pub const CLOUD_CREDENTIAL_SECRET_TYPE: &str = "kaas.dev/cloud-credential";
/// The user (CN) of the client certificate kaas uses on a cluster's API.
const CLIENT_USER: &str = "kaas";
/// How long that certificate is valid; it is renewed halfway.
const CLIENT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The Secret holding the cluster's CAs and service-account key.
pub(super) fn pki_secret(cluster: &Cluster) -> String {
    kaas_core::naming::pki_secret(&cluster.metadata.name)
}

/// The Secret holding the secret of the cluster's application credential.
pub(super) fn cloud_credential_secret(cluster: &Cluster) -> String {
    format!("{}-cloud-credential", cluster.metadata.name)
}

impl ClusterController {
    /// Generates and stores the cluster's CAs and service-account key, unless an
    /// earlier attempt stored them (`Ok(false)`: that one is kept).
    pub(super) async fn ensure_pki(&self, cluster: &Cluster) -> Result<bool, StepError> {
        let pki = ClusterPki::generate(&cluster.metadata.name, Utc::now())
            .map_err(|source| StepError::GeneratePki { source })?;
        let data = serde_json::to_value(&pki).map_err(|source| StepError::EncodePki { source })?;
        let owner = Some(owner_ref(cluster));
        match self
            .secrets()
            .put(
                &cluster.metadata.tenant,
                &pki_secret(cluster),
                owner,
                PKI_SECRET_TYPE,
                &data,
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The client certificate kaas presents to the cluster's API (group
    /// `kubeadm:cluster-admins`), issued from the cluster's CA and kept in memory for
    /// most of its day of validity.
    pub(super) async fn client_credentials(
        &self,
        cluster: &Cluster,
    ) -> Result<Arc<ClientCredentials>, StepError> {
        let uid = &cluster.metadata.uid;
        let now = Utc::now();
        {
            let cache = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((renew_at, c)) = cache.get(uid)
                && *renew_at > now
            {
                return Ok(c.clone());
            }
        }
        let data = self
            .secrets()
            .get(&cluster.metadata.tenant, &pki_secret(cluster))
            .await?
            .ok_or(StepError::PkiNotStored)?;
        let pki: ClusterPki =
            serde_json::from_value(data).map_err(|source| StepError::ReadPki { source })?;
        let client = issue_admin_client_cert(&pki, CLIENT_USER, CLIENT_CERT_TTL, now)
            .map_err(|source| StepError::IssueClientCertificate { source })?;
        let etcd_client = issue_etcd_client_cert(&pki, CLIENT_USER, CLIENT_CERT_TTL, now)
            .map_err(|source| StepError::IssueClientCertificate { source })?;
        let credentials = Arc::new(ClientCredentials {
            ca_cert_pem: pki.kubernetes_ca.cert_pem,
            client_cert_pem: client.cert_pem,
            client_key_pem: client.key_pem,
            etcd_ca_cert_pem: pki.etcd_ca.cert_pem,
            etcd_client_cert_pem: etcd_client.cert_pem,
            etcd_client_key_pem: etcd_client.key_pem,
        });
        let renew_at = now + chrono::Duration::from_std(CLIENT_CERT_TTL / 2).unwrap_or_default();
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), (renew_at, credentials.clone()));
        Ok(credentials)
    }

    /// The secret of the cluster's application credential: chosen by kaas and sealed
    /// in the store before the cloud sees it, so a retry after a crash uses the same.
    pub(super) async fn cloud_credential_secret(
        &self,
        cluster: &Cluster,
    ) -> Result<Credential, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let name = cloud_credential_secret(cluster);
        let secrets = self.secrets();
        let read = |data: serde_json::Value| {
            data["secret"]
                .as_str()
                .map(|s| Credential(s.to_owned()))
                .ok_or_else(|| StepError::NoCloudCredentialSecret { name: name.clone() })
        };
        if let Some(data) = secrets.get(tenant, &name).await? {
            return read(data);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes[..]);
        let secret =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
        let data = serde_json::json!({ "secret": secret });
        match secrets
            .put(
                tenant,
                &name,
                Some(owner_ref(cluster)),
                CLOUD_CREDENTIAL_SECRET_TYPE,
                &data,
            )
            .await
        {
            Ok(()) => read(data),
            Err(StoreError::AlreadyExists { .. }) => match secrets.get(tenant, &name).await? {
                Some(data) => read(data),
                None => Err(StepError::CloudCredentialSecretVanished { name }),
            },
            Err(e) => Err(e.into()),
        }
    }
}

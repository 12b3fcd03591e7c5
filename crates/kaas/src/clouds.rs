//! Each tenant's clusters in the tenant's own OpenStack project: a tenant with an
//! application credential (sealed in the store) gets a session of its own, made on first
//! use and again when the credential changes; the default tenant, and a tenant bound
//! to no project, use the server's own credentials. A tenant bound to a project without
//! a credential is refused: its clusters would otherwise land in the server's project.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kaas_cloud::{CloudError, CloudProvider, TenantClouds};
use kaas_core::naming::TENANT_CREDENTIALS_SECRET;
use kaas_core::tenant::Tenant;
use kaas_openstack::{Auth, CloudConfig, OpenStackCloud, Secret, Session};
use kaas_store::{SecretBox, Secrets, Store, StoreExt};
use tracing::info;

pub struct OpenStackTenants {
    /// The server's own cloud.
    default: Arc<OpenStackCloud>,
    /// The server's configuration: each tenant's session uses its endpoint settings.
    config: CloudConfig,
    store: Arc<dyn Store>,
    sealer: Arc<SecretBox>,
    /// By tenant: the credential id and bound project it was made with, and the cloud.
    /// Never held across an await.
    sessions: Mutex<HashMap<String, SessionFor>>,
}

impl std::fmt::Debug for OpenStackTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackTenants").finish_non_exhaustive()
    }
}

impl OpenStackTenants {
    pub fn new(
        default: Arc<OpenStackCloud>,
        config: CloudConfig,
        store: Arc<dyn Store>,
        sealer: Arc<SecretBox>,
    ) -> Self {
        Self {
            default,
            config,
            store,
            sealer,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Every session, for the metrics: the server's and the tenants'.
    pub fn sessions(&self) -> Vec<Session> {
        let mut all = vec![self.default.session().clone()];
        all.extend(
            self.lock_sessions()
                .values()
                .map(|(_, c)| c.session().clone()),
        );
        all
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionFor>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A tenant's session: the credential id and bound project it was made with, and the
/// cloud it reaches.
type SessionFor = ((String, Option<String>), Arc<OpenStackCloud>);

fn unavailable(message: String) -> CloudError {
    CloudError::Unavailable { message }
}

#[async_trait]
impl TenantClouds for OpenStackTenants {
    async fn cloud(&self, tenant: &str) -> Result<Arc<dyn CloudProvider>, CloudError> {
        let bound = self
            .store
            .get_obj::<Tenant>(tenant, tenant)
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .and_then(|t| t.spec.project);
        let secrets = Secrets::new(self.store.as_ref(), &self.sealer);
        let credential = secrets
            .get(tenant, TENANT_CREDENTIALS_SECRET)
            .await
            .map_err(|e| unavailable(format!("cannot read tenant {tenant}'s credential: {e}")))?;
        let Some(credential) = credential else {
            return match bound {
                Some(project) => Err(CloudError::BadRequest {
                    message: format!(
                        "tenant {tenant} is bound to project {project} but has no application credential for it (kaas tenant update {tenant} --application-credential-id ID)"
                    ),
                }),
                None => Ok(self.default.clone()),
            };
        };
        let text = |field: &str| credential[field].as_str().unwrap_or_default().to_owned();
        let (id, secret) = (
            text("applicationCredentialId"),
            text("applicationCredentialSecret"),
        );
        // A session holds while the credential and the project it is bound to do.
        let made_with = (id.clone(), bound.clone());
        if let Some((key, cloud)) = self.lock_sessions().get(tenant)
            && *key == made_with
        {
            return Ok(cloud.clone());
        }
        // Signed in without holding the lock: one tenant's slow Keystone answer must not
        // hold up the others.
        let config = CloudConfig {
            name: None,
            auth: Auth::ApplicationCredential {
                id: Some(id.clone()),
                name: None,
                secret: Secret::new(secret),
                username: None,
                user_id: None,
                user_domain_name: None,
                user_domain_id: None,
            },
            ..self.config.clone()
        };
        let session = Session::new(config).await.map_err(|e| match e.status {
            // Keystone refused the credential; anything else (no answer, a 5xx) passes.
            Some(400..=499) => CloudError::BadRequest {
                message: format!("tenant {tenant}'s application credential {id} is refused: {e}"),
            },
            _ => unavailable(format!(
                "cannot sign in with tenant {tenant}'s application credential {id}: {e}"
            )),
        })?;
        let signed_into = session.project_id();
        if bound.is_some() && bound != signed_into {
            return Err(CloudError::BadRequest {
                message: format!(
                    "tenant {tenant}'s application credential {id} signs into project {} but the tenant is bound to project {}",
                    signed_into.as_deref().unwrap_or("(none)"),
                    bound.as_deref().unwrap_or_default()
                ),
            });
        }
        info!(tenant, credential = %id, project = ?signed_into, "signed in with the tenant's application credential");
        let cloud = Arc::new(OpenStackCloud::new(session));
        self.lock_sessions()
            .insert(tenant.to_owned(), (made_with, cloud.clone()));
        Ok(cloud)
    }
}

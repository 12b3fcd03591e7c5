//! What a machine boots with: its bootstrap token and user data, rendered once and
//! sealed in the store before its server is created (so a retry boots the same node),
//! and the join token registered in the workload cluster before the machine can boot
//! with it.

use std::time::Duration;

use chrono::Utc;
use kaas_bootstrap::{
    BootstrapToken, ClusterPki, KubernetesVersion, MachineBootstrap, NodeBootstrap, NodeRole,
    ca_cert_hash, render_user_data,
};
use kaas_cloud::{JoinToken, UserData, WorkloadClusterRef};
use kaas_core::naming::bootstrap_secret;
use kaas_core::{Cluster, Machine};
use kaas_store::{StoreError, StoreExt};

use super::credentials::pki_secret;
use super::error::StepError;
use super::{ClusterController, owner_ref};

/// The type of the Secret that holds a machine's bootstrap token and user data.
pub const BOOTSTRAP_SECRET_TYPE: &str = "kaas.dev/machine-bootstrap";
/// How long a machine's bootstrap token is accepted.
const BOOTSTRAP_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a joining machine's token is registered for, each time it is (re)registered.
const JOIN_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);

impl ClusterController {
    /// The user data of a machine, rendered once and sealed before its server is
    /// created, so that a retry boots with the same token and files.
    pub(super) async fn bootstrap_data(
        &self,
        cluster: &Cluster,
        machine: &str,
        endpoint: &str,
        api_sans: &[String],
    ) -> Result<UserData, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let secrets = self.secrets();
        let name = bootstrap_secret(machine);
        if let Some(data) = secrets.get(tenant, &name).await? {
            return sealed_user_data(&data);
        }
        let bootstrap_err = |source| StepError::RenderUserData {
            machine: machine.to_owned(),
            source,
        };
        let m = self
            .store
            .get_obj::<Machine>(tenant, machine)
            .await?
            .ok_or_else(|| StepError::MachineGone {
                machine: machine.to_owned(),
            })?;
        let pki_data = secrets
            .get(tenant, &pki_secret(cluster))
            .await?
            .ok_or(StepError::PkiNotStored)?;
        let pki: ClusterPki =
            serde_json::from_value(pki_data).map_err(|source| StepError::ReadPki { source })?;
        let now = Utc::now();
        let token = BootstrapToken::generate(now, BOOTSTRAP_TOKEN_TTL).map_err(bootstrap_err)?;
        let node = NodeBootstrap {
            cluster_name: cluster.metadata.name.clone(),
            kubernetes_version: KubernetesVersion::parse(&m.spec.version).map_err(bootstrap_err)?,
            control_plane_endpoint: endpoint.trim_start_matches("https://").to_owned(),
            pod_cidr: cluster.spec.network.pod_cidr.clone(),
            service_cidr: cluster.spec.network.service_cidr.clone(),
            node_name: machine.to_owned(),
            role: match m.spec.role {
                kaas_core::MachineRole::Init => NodeRole::Init,
                kaas_core::MachineRole::ControlPlane => NodeRole::JoinControlPlane,
                kaas_core::MachineRole::Worker => NodeRole::Worker,
            },
            zone: m.spec.zone.clone(),
            region: self.config.region.clone(),
            token: token.clone(),
            ca_cert_hash: ca_cert_hash(&pki.kubernetes_ca.cert_pem).map_err(bootstrap_err)?,
            cert_sans: api_sans.to_vec(),
        };
        let mirrors = kaas_core::registry::effective_mirrors(
            &self.config.default_mirrors,
            &cluster.spec.registry.mirrors,
        );
        let rendered = if m.is_control_plane() {
            // kubeadm issues each node's API server certificate from the CA and
            // certSANs: only the node knows its own address for sure.
            render_user_data(
                &MachineBootstrap::control_plane(&node, &pki, None).with_mirrors(&mirrors),
            )
        } else {
            render_user_data(&MachineBootstrap::worker(&node).with_mirrors(&mirrors))
        }
        .map_err(bootstrap_err)?;
        let data = serde_json::json!({
            "token": token,
            "userData": rendered.nova_base64(),
            "compressed": rendered.compressed,
        });
        match secrets
            .put(
                tenant,
                &name,
                Some(owner_ref(cluster)),
                BOOTSTRAP_SECRET_TYPE,
                &data,
            )
            .await
        {
            Ok(()) => sealed_user_data(&data),
            Err(StoreError::AlreadyExists { .. }) => match secrets.get(tenant, &name).await? {
                Some(data) => sealed_user_data(&data),
                None => Err(StepError::BootstrapDataVanished {
                    machine: machine.to_owned(),
                }),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Registers (or extends) the bootstrap token of a machine that joins the cluster,
    /// valid for [`JOIN_TOKEN_TTL`] from now; the first control plane's is
    /// kubeadm init's own. `Ok(None)`: nothing to register.
    pub(super) async fn register_join_token(
        &self,
        cluster: &Cluster,
        workload: Option<&WorkloadClusterRef>,
        machine: &str,
    ) -> Result<Option<JoinToken>, StepError> {
        let tenant = cluster.metadata.tenant.as_str();
        let Some(m) = self.store.get_obj::<Machine>(tenant, machine).await? else {
            return Ok(None);
        };
        if m.spec.role == kaas_core::MachineRole::Init {
            return Ok(None);
        }
        let Some(data) = self
            .secrets()
            .get(tenant, &bootstrap_secret(machine))
            .await?
        else {
            return Ok(None);
        };
        let token: BootstrapToken =
            serde_json::from_value(data["token"].clone()).map_err(|source| {
                StepError::ReadJoinToken {
                    machine: machine.to_owned(),
                    source,
                }
            })?;
        let target = workload.ok_or(StepError::NoApiEndpoint)?;
        let join = JoinToken {
            id: token.id,
            secret: token.secret,
            machine: machine.to_owned(),
            expires: Utc::now() + JOIN_TOKEN_TTL,
        };
        self.workloads
            .register_bootstrap_token(target, &join)
            .await
            .map_err(|source| StepError::RegisterJoinToken {
                machine: machine.to_owned(),
                source,
            })?;
        Ok(Some(join))
    }
}

fn sealed_user_data(data: &serde_json::Value) -> Result<UserData, StepError> {
    data["userData"]
        .as_str()
        .map(|s| UserData(s.to_owned()))
        .ok_or(StepError::NoStoredUserData)
}

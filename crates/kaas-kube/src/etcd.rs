//! A workload cluster's etcd, over etcd's own v3 gRPC API, reached as Cluster API's
//! control-plane provider reaches it: through the API server's port-forward to the
//! etcd static pod (`kube-system/etcd-<node>`, port 2379) of a control-plane node, with
//! a client certificate from the cluster's etcd CA. Nothing but the API server's port
//! needs to be open; the etcd members' own certificates (kubeadm's `etcd/server.crt`,
//! which names `localhost`) are checked against the etcd CA.

use std::fmt;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType, Certificate, Identity, TlsOptions};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use kaas_cloud::WorkloadError;
use kube::Api;
use kube::api::ListParams;
use tonic::transport::{Endpoint, Uri};

use crate::WorkloadClient;

/// The namespace of the control plane's static pods.
const STATIC_POD_NAMESPACE: &str = "kube-system";
/// etcd's client port in its pod.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// The label kubeadm puts on control-plane nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The name the etcd members' serving certificates are checked against: kubeadm's
/// `etcd/server.crt` always names `localhost`, and a port-forward arrives there.
const ETCD_SERVER_NAME: &str = "localhost";
/// How long one etcd operation (connecting through the port-forward included) may take.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(10);

/// The etcd CA (the only one trusted for the members' certificates) and the client
/// certificate kaas presents.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdAccess {
    pub ca_cert_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdAccess").finish_non_exhaustive()
    }
}

/// One member of the cluster's etcd, as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub id: u64,
    /// kubeadm names each member after its node; empty for a member that never started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
}

/// The etcd pod of control-plane node `node`.
pub fn etcd_pod(node: &str) -> String {
    format!("etcd-{node}")
}

impl WorkloadClient {
    /// The control-plane nodes whose etcd pods can be reached: Ready, by name, without
    /// `avoid`.
    async fn etcd_nodes(&self, avoid: Option<&str>) -> Result<Vec<String>, WorkloadError> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default().labels(CONTROL_PLANE_LABEL))
            .await
            .map_err(|e| self.error(e))?;
        let mut names: Vec<String> = list
            .items
            .iter()
            .filter(|n| crate::nodes::node(n).ready)
            .filter_map(|n| n.metadata.name.clone())
            .filter(|n| Some(n.as_str()) != avoid)
            .collect();
        names.sort();
        Ok(names)
    }

    /// An etcd client connected to the etcd of control-plane node `node`, through the
    /// API server's port-forward to its pod.
    async fn etcd_via(
        &self,
        access: &EtcdAccess,
        node: &str,
    ) -> Result<etcd_client::Client, WorkloadError> {
        let pod = etcd_pod(node);
        let unreachable = |message: String| WorkloadError::Unreachable {
            endpoint: format!("{} (etcd of {node})", self.endpoint),
            message,
        };
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&access.ca_cert_pem))
            .identity(Identity::from_pem(
                &access.client_cert_pem,
                &access.client_key_pem,
            ))
            .domain_name(ETCD_SERVER_NAME);
        let endpoint = Endpoint::from_static("https://localhost:2379")
            .tls_config(tls)
            .map_err(|e| crate::error::invalid(format!("etcd's TLS settings: {e}")))?
            .connect_timeout(ETCD_TIMEOUT)
            .timeout(ETCD_TIMEOUT);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), STATIC_POD_NAMESPACE);
        let cluster = self.endpoint.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let (pods, pod, cluster) = (pods.clone(), pod.clone(), cluster.clone());
            async move {
                let mut forward = pods
                    .portforward(&pod, &[ETCD_CLIENT_PORT])
                    .await
                    .map_err(|e| crate::error::from_kube(&cluster, e).to_string())?;
                let stream = forward
                    .take_stream(ETCD_CLIENT_PORT)
                    .ok_or_else(|| format!("the port-forward to {pod} has no stream"))?;
                // The forward runs until either side closes the stream.
                tokio::spawn(async move {
                    if let Err(e) = forward.join().await {
                        tracing::debug!(%pod, error = %e, "the port-forward to etcd ended");
                    }
                });
                Ok::<_, String>(TokioIo::new(stream))
            }
        });
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| unreachable(crate::error::chain(&e)))?;
        etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| unreachable(crate::error::chain(&e)))
    }

    /// The members of the cluster's etcd, read through the etcd of the first Ready
    /// control-plane node (by name) that answers, `avoid` last of all.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint))]
    pub async fn etcd_members(
        &self,
        access: &EtcdAccess,
        avoid: Option<&str>,
    ) -> Result<Vec<EtcdMember>, WorkloadError> {
        let mut nodes = self.etcd_nodes(avoid).await?;
        nodes.extend(avoid.map(str::to_owned));
        let mut last = None;
        for node in &nodes {
            match self.members_via(access, node).await {
                Ok(members) => return Ok(members),
                Err(e) => {
                    tracing::debug!(%node, error = %e, "cannot read etcd's members there");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| WorkloadError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: "no control-plane node is Ready, so etcd cannot be reached".to_owned(),
        }))
    }

    async fn members_via(
        &self,
        access: &EtcdAccess,
        node: &str,
    ) -> Result<Vec<EtcdMember>, WorkloadError> {
        within(async {
            let mut etcd = self.etcd_via(access, node).await?;
            let list = etcd.member_list().await.map_err(grpc_error)?;
            Ok(list.members().iter().map(member).collect())
        })
        .await
    }

    /// Whether the etcd of node `node` answers (its status, read through its own pod),
    /// and the leader it knows.
    async fn etcd_status(&self, access: &EtcdAccess, node: &str) -> Result<u64, WorkloadError> {
        within(async {
            let mut etcd = self.etcd_via(access, node).await?;
            let status = etcd.status().await.map_err(grpc_error)?;
            if !status.errors().is_empty() {
                return Err(WorkloadError::Api {
                    message: format!(
                        "the etcd member of {node} reports: {}",
                        status.errors().join("; ")
                    ),
                });
            }
            Ok(status.leader())
        })
        .await
    }

    /// Removes the etcd member of node `node`, as the control plane's machine leaves:
    /// through another control-plane node's etcd; leadership moves off it first. A
    /// member that is not there is no error. Refused (an [`WorkloadError::Api`] that says
    /// why) while etcd raises an alarm, or when the members left would not all answer
    /// in a number that keeps quorum.
    #[tracing::instrument(skip_all, fields(cluster = %self.endpoint, %node))]
    pub async fn remove_etcd_member(
        &self,
        access: &EtcdAccess,
        node: &str,
    ) -> Result<(), WorkloadError> {
        let mut via = self.etcd_nodes(Some(node)).await?;
        via.push(node.to_owned());
        // One connection, through the first node whose etcd answers (the leaving one
        // last), for the member list, the alarms and the removal.
        let mut last = None;
        let mut connected = None;
        for through in &via {
            match within(self.etcd_via(access, through)).await {
                Ok(etcd) => {
                    connected = Some(etcd);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut etcd) = connected else {
            return Err(last.unwrap_or_else(|| WorkloadError::Unreachable {
                endpoint: self.endpoint.clone(),
                message: "no control-plane node is Ready, so etcd cannot be reached".to_owned(),
            }));
        };
        within(async {
            let list = etcd.member_list().await.map_err(grpc_error)?;
            let members: Vec<EtcdMember> = list.members().iter().map(member).collect();
            let Some(leaving) = members.iter().find(|m| m.name == node).cloned() else {
                return Ok(());
            };
            let voters: Vec<&EtcdMember> = members
                .iter()
                .filter(|m| !m.learner && m.id != leaving.id)
                .collect();
            if voters.is_empty() {
                return Err(WorkloadError::Api {
                    message: format!("the etcd member of {node} is the last one; it stays"),
                });
            }
            // Each member left must answer through its own pod (asked side by side):
            // quorum after the removal is counted among those that do.
            let statuses =
                futures::future::join_all(voters.iter().map(|m| self.etcd_status(access, &m.name)))
                    .await;
            let mut healthy = 0;
            let mut leader = None;
            let mut silent = Vec::new();
            for (m, status) in voters.iter().zip(statuses) {
                match status {
                    Ok(l) => {
                        healthy += 1;
                        leader = Some(l);
                    }
                    Err(e) => silent.push(format!("{} ({e})", m.name)),
                }
            }
            let quorum = voters.len() / 2 + 1;
            if healthy < quorum {
                return Err(WorkloadError::Api {
                    message: format!(
                        "removing the etcd member of {node} would leave {healthy} of {} members \
                         answering, fewer than the {quorum} a quorum needs; not answering: {}",
                        voters.len(),
                        silent.join(", ")
                    ),
                });
            }
            let alarms = etcd
                .alarm(AlarmAction::Get, AlarmType::None, None)
                .await
                .map_err(grpc_error)?;
            if let Some(alarm) = alarms.alarms().first() {
                return Err(WorkloadError::Api {
                    message: format!(
                        "etcd raises the alarm {:?} (member {:x}); no member is removed until it \
                         is cleared",
                        alarm.alarm(),
                        alarm.member_id()
                    ),
                });
            }
            if leader == Some(leaving.id)
                && let Some(next) = voters.first()
            {
                // The leader is asked through its own pod; a failure here still leaves the
                // removal to etcd's own election.
                match self.etcd_via(access, node).await {
                    Ok(mut on_leader) => {
                        if let Err(e) = on_leader.move_leader(next.id).await {
                            tracing::debug!(error = %e, "cannot move etcd's leadership first");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot reach the leaving leader"),
                }
            }
            match etcd.member_remove(leaving.id).await {
                Ok(_) => {
                    tracing::info!(member = %format!("{:x}", leaving.id), "etcd member removed");
                    Ok(())
                }
                // Removed in the meantime (by an earlier, interrupted call).
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => {
                    Ok(())
                }
                Err(e) => Err(grpc_error(e)),
            }
        })
        .await
    }
}

fn member(m: &etcd_client::Member) -> EtcdMember {
    EtcdMember {
        id: m.id(),
        name: m.name().to_owned(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        learner: m.is_learner(),
    }
}

/// Runs `call` within [`ETCD_TIMEOUT`] twice over (connecting, then asking).
async fn within<T>(
    call: impl Future<Output = Result<T, WorkloadError>>,
) -> Result<T, WorkloadError> {
    match tokio::time::timeout(ETCD_TIMEOUT * 2, call).await {
        Ok(result) => result,
        Err(_) => Err(WorkloadError::Unreachable {
            endpoint: "etcd".to_owned(),
            message: format!("no answer within {} s", (ETCD_TIMEOUT * 2).as_secs()),
        }),
    }
}

/// etcd's answer as an error: transport failures are `Unreachable`, refusals `Api`.
fn grpc_error(error: etcd_client::Error) -> WorkloadError {
    match error {
        etcd_client::Error::GRpcStatus(status)
            if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ) =>
        {
            WorkloadError::Unreachable {
                endpoint: "etcd".to_owned(),
                message: status.message().to_owned(),
            }
        }
        etcd_client::Error::GRpcStatus(status) => WorkloadError::Api {
            message: format!("etcd: {}", status.message()),
        },
        e @ (etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_)) => {
            WorkloadError::Unreachable {
                endpoint: "etcd".to_owned(),
                message: crate::error::chain(&e),
            }
        }
        e => WorkloadError::Api {
            message: format!("etcd: {}", crate::error::chain(&e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etcd_pod_of_a_node_is_kubeadms_static_pod() {
        assert_eq!(etcd_pod("prod-cp-1"), "etcd-prod-cp-1");
    }
}

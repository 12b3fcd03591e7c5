//! A stand-in for a simulated control plane's etcd: etcd's own v3 gRPC services
//! (etcd-client's generated server side) over TLS with client certificates from the
//! cluster's etcd CA, as a real member serves them. It answers the calls kaas and
//! `etcdctl member list` make: the Cluster service (member list and remove) and the
//! Maintenance service (status, alarms, leader moves); the rest are `Unimplemented`.
//!
//! The membership is the embedder's ([`EtcdMembers`]): which control planes' members
//! are in, and removing one. Connections come from port-forwards
//! ([`StandInEtcd::connect`]): each is one end of an in-memory stream whose other end
//! this server accepts, TLS and then HTTP/2, as etcd would on port 2379.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{
    PbAlarmRequest, PbClusterServer, PbClusterService, PbDefragmentRequest, PbDowngradeRequest,
    PbHashKvRequest, PbHashRequest, PbMaintenanceServer, PbMaintenanceService, PbMemberAddRequest,
    PbMemberListRequest, PbMemberPromoteRequest, PbMemberRemoveRequest, PbMemberUpdateRequest,
    PbMoveLeaderRequest, PbSnapshotRequest, PbStatusRequest,
};
use etcd_client::proto::{
    PbAlarmResponse, PbDefragmentResponse, PbDowngradeResponse, PbHashKvResponse, PbHashResponse,
    PbMember, PbMemberAddResponse, PbMemberListResponse, PbMemberPromoteResponse,
    PbMemberRemoveResponse, PbMemberUpdateResponse, PbMoveLeaderResponse, PbResponseHeader,
    PbSnapshotResponse, PbStatusResponse,
};
use futures::future::BoxFuture;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::{Request, Response, Status};

use crate::tls::ServeError;

/// The etcd version the stand-in reports.
pub const STAND_IN_ETCD_VERSION: &str = "3.5.21";
/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much a port-forwarded stream buffers each way.
const STREAM_BUFFER: usize = 256 * 1024;

/// A simulated cluster's etcd membership, as its embedder keeps it: the names (the
/// control-plane nodes) of the members, and removing one.
pub trait EtcdMembers: Send + Sync + 'static {
    /// The members' names; an error when etcd would not answer (no control plane).
    fn members(&self) -> BoxFuture<'static, Result<Vec<String>, String>>;
    /// Removes member `name`; removing one that is not there succeeds.
    fn remove(&self, name: String) -> BoxFuture<'static, Result<(), String>>;
}

/// A member's id: stable for its name, never 0 (FNV-1a, 64 bits).
pub fn member_id(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// One simulated cluster's stand-in etcd, serving until it is dropped.
pub struct StandInEtcd {
    connections: mpsc::UnboundedSender<DuplexStream>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for StandInEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandInEtcd").finish_non_exhaustive()
    }
}

impl Drop for StandInEtcd {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandInEtcd {
    /// Starts serving `members` with the serving certificate `cert_pem`/`key_pem`,
    /// requiring client certificates signed by `etcd_ca_pem`. Needs a Tokio runtime.
    pub fn start(
        members: Arc<dyn EtcdMembers>,
        cert_pem: &str,
        key_pem: &str,
        etcd_ca_pem: &str,
    ) -> Result<Self, ServeError> {
        let mut config = crate::tls::server_config(cert_pem, key_pem, etcd_ca_pem)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (connections, mut accepted) = mpsc::unbounded_channel::<DuplexStream>();
        let (handshaken, incoming) =
            mpsc::unbounded_channel::<Result<TlsStream<DuplexStream>, std::io::Error>>();
        let service = Members { members };
        let server = tokio::spawn(async move {
            let handshakes = async move {
                while let Some(stream) = accepted.recv().await {
                    let (acceptor, handshaken) = (acceptor.clone(), handshaken.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let _ = handshaken.send(Ok(tls));
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "stand-in etcd: TLS handshake failed")
                            }
                            Err(_) => tracing::debug!("stand-in etcd: TLS handshake timed out"),
                        }
                    });
                }
            };
            let serve = tonic::transport::Server::builder()
                .add_service(PbClusterServer::new(service.clone()))
                .add_service(PbMaintenanceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::UnboundedReceiverStream::new(
                    incoming,
                ));
            tokio::select! {
                () = handshakes => {}
                served = serve => {
                    if let Err(e) = served {
                        tracing::warn!(error = %e, "the stand-in etcd stopped");
                    }
                }
            }
        });
        Ok(Self {
            connections,
            server,
        })
    }

    /// A new connection to the member's client port, as a port-forward opens one.
    pub fn connect(&self) -> Result<DuplexStream, String> {
        let (client, server) = tokio::io::duplex(STREAM_BUFFER);
        self.connections
            .send(server)
            .map_err(|_| "the stand-in etcd does not run".to_owned())?;
        Ok(client)
    }
}

/// The gRPC services over the embedder's membership.
#[derive(Clone)]
struct Members {
    members: Arc<dyn EtcdMembers>,
}

/// The same cluster id for every stand-in: one etcd cluster per simulated cluster.
const CLUSTER_ID: u64 = 0x6b61_6173_6574_6364;

impl Members {
    async fn names(&self) -> Result<Vec<String>, Status> {
        self.members.members().await.map_err(Status::unavailable)
    }

    fn header(names: &[String]) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: CLUSTER_ID,
            member_id: names.first().map(|n| member_id(n)).unwrap_or_default(),
            revision: 1,
            raft_term: 2,
        })
    }

    fn listed(names: &[String]) -> Vec<PbMember> {
        names
            .iter()
            .map(|name| PbMember {
                id: member_id(name),
                name: name.clone(),
                peer_ur_ls: vec![format!("https://{name}:2380")],
                client_ur_ls: vec![format!("https://{name}:2379")],
                is_learner: false,
            })
            .collect()
    }
}

fn unimplemented<T>(what: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{what} is not served by the stand-in etcd"
    )))
}

#[tonic::async_trait]
impl PbClusterService for Members {
    async fn member_add(
        &self,
        _request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        unimplemented("MemberAdd")
    }

    async fn member_remove(
        &self,
        request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        let names = self.names().await?;
        let Some(name) = names.iter().find(|n| member_id(n) == id).cloned() else {
            return Err(Status::not_found("etcdserver: member not found"));
        };
        if names.len() == 1 {
            return Err(Status::failed_precondition(
                "etcdserver: re-configuration failed due to not enough started members",
            ));
        }
        self.members
            .remove(name.clone())
            .await
            .map_err(Status::unavailable)?;
        let left: Vec<String> = names.into_iter().filter(|n| *n != name).collect();
        Ok(Response::new(PbMemberRemoveResponse {
            header: Self::header(&left),
            members: Self::listed(&left),
        }))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        unimplemented("MemberUpdate")
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let names = self.names().await?;
        Ok(Response::new(PbMemberListResponse {
            header: Self::header(&names),
            members: Self::listed(&names),
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        unimplemented("MemberPromote")
    }
}

type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<PbSnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl PbMaintenanceService for Members {
    async fn alarm(
        &self,
        _request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        let names = self.names().await?;
        Ok(Response::new(PbAlarmResponse {
            header: Self::header(&names),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let names = self.names().await?;
        Ok(Response::new(PbStatusResponse {
            header: Self::header(&names),
            version: STAND_IN_ETCD_VERSION.to_owned(),
            leader: names.first().map(|n| member_id(n)).unwrap_or_default(),
            raft_index: 1,
            raft_term: 2,
            raft_applied_index: 1,
            ..PbStatusResponse::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        unimplemented("Defragment")
    }

    async fn hash(
        &self,
        _request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        unimplemented("Hash")
    }

    async fn hash_kv(
        &self,
        _request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        unimplemented("HashKV")
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        unimplemented("Snapshot")
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        let names = self.names().await?;
        Ok(Response::new(PbMoveLeaderResponse {
            header: Self::header(&names),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        unimplemented("Downgrade")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_stable_distinct_and_never_zero() {
        assert_eq!(member_id("prod-cp-1"), member_id("prod-cp-1"));
        assert_ne!(member_id("prod-cp-1"), member_id("prod-cp-2"));
        assert_ne!(member_id(""), 0);
    }
}

//! Serving a router over TLS with client-certificate authentication, as a real API
//! server does with `--client-ca-file`: a client without a certificate signed by the
//! client CA does not get past the handshake.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why TLS serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to read the server certificate PEM: {0}")]
    ServerCertificate(#[source] rustls::pki_types::pem::Error),
    #[error("the server certificate PEM holds no certificate")]
    NoServerCertificate,
    #[error("failed to read the server key PEM: {0}")]
    ServerKey(#[source] rustls::pki_types::pem::Error),
    #[error("failed to read the client CA PEM: {0}")]
    ClientCa(#[source] rustls::pki_types::pem::Error),
    #[error("the client CA PEM holds no usable certificate")]
    NoClientCa,
    #[error("failed to build the client certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("failed to build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The rustls configuration: the server's certificate chain and key, client
/// certificates required and checked against `client_ca_pem`, HTTP/1.1.
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    client_ca_pem: &str,
) -> Result<rustls::ServerConfig, ServeError> {
    let chain = CertificateDer::pem_slice_iter(server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::ServerCertificate)?;
    if chain.is_empty() {
        return Err(ServeError::NoServerCertificate);
    }
    let key =
        PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(ServeError::ServerKey)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(ServeError::ClientCa)?;
        roots.add(cert).map_err(|_| ServeError::NoClientCa)?;
    }
    if roots.is_empty() {
        return Err(ServeError::NoClientCa);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(ServeError::Verifier)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServeError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(ServeError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `router` on `listener` over TLS until `shutdown` completes; then stops
/// accepting and cuts the open connections (watches included).
///
/// Clients must present a certificate signed by `client_ca_pem`. Fails only when the
/// certificates or key cannot be used; failed handshakes and connections are logged at
/// debug level and do not stop the server.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    server_cert_pem: &str,
    server_key_pem: &str,
    client_ca_pem: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let config = server_config(server_cert_pem, server_key_pem, client_ca_pem)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "failed to accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                // As the real API server (Go's default): no Nagle delay, which would
                // stall every small write of a port-forward's stream behind the
                // peer's delayed ACK.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                }
                let acceptor = acceptor.clone();
                let router = router.clone();
                connections.spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let service = TowerToHyperService::new(router);
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        // Port-forwards are WebSocket upgrades.
                        .with_upgrades()
                        .await
                    {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}

//! The cluster proxy of `kaas sim serve`: an HTTP proxy that takes `CONNECT HOST:6443`
//! to the API of the simulated cluster whose API load balancer has that floating IP (or
//! VIP), as a bastion's proxy in front of a real cloud's cluster networks would. The
//! TLS inside is the client's with the cluster's API server, end to end: the proxy
//! sees only bytes, and the client checks the API server's certificate against the
//! address it asked for. kaas reaches the simulated clusters through it with
//! `--cluster-proxy http://ADDRESS`, kubectl with a kubeconfig's `proxy-url`.
//!
//! Addresses where no cluster's API answers get `502 Bad Gateway`, as a proxy answers
//! for a host it cannot connect to; anything but `CONNECT` gets `405`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::gateway::Gateway;
use crate::sim_workloads::MachineBoots;

/// The most a CONNECT request's head may take.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send it.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a CONNECT goes.
#[derive(Clone)]
pub struct ClusterProxy {
    pub boots: Arc<MachineBoots>,
    pub gateway: Arc<Gateway>,
}

/// Serves `proxy` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    proxy: ClusterProxy,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let proxy = proxy.clone();
                tokio::spawn(async move {
                    if let Err(e) = proxy.tunnel(stream).await {
                        debug!(%peer, error = %e, "a cluster proxy connection ended");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "the cluster proxy cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The request line's method and target, once the head is complete.
fn parse_head(head: &[u8]) -> Result<(String, String), &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "the request is not text")?;
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            Ok((method.to_owned(), target.to_owned()))
        }
        _ => Err("not an HTTP/1 request line"),
    }
}

/// `HOST:PORT` (IPv6 in brackets) as host and port.
fn authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| Some((host.to_owned(), port.parse().ok()?)))?
}

impl ClusterProxy {
    async fn tunnel(&self, mut client: TcpStream) -> std::io::Result<()> {
        let _ = client.set_nodelay(true);
        let mut head = Vec::new();
        let read = tokio::time::timeout(HEAD_TIMEOUT, async {
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                if head.len() > MAX_HEAD {
                    return Err(std::io::Error::other("the request head is too large"));
                }
                let n = client.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                head.extend_from_slice(&buf[..n]);
            }
            Ok(())
        })
        .await;
        match read {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return answer(&mut client, 408, "Request Timeout", "").await,
        }
        // A CONNECT's client waits for the answer before it sends: nothing follows the
        // head.
        let (method, target) = match parse_head(&head) {
            Ok(request) => request,
            Err(why) => return answer(&mut client, 400, "Bad Request", why).await,
        };
        if method != "CONNECT" {
            return answer(
                &mut client,
                405,
                "Method Not Allowed",
                "this proxy only tunnels (CONNECT) to workload clusters' APIs",
            )
            .await;
        }
        let Some((host, port)) = authority(&target) else {
            return answer(&mut client, 400, "Bad Request", "CONNECT needs HOST:PORT").await;
        };
        let upstream = match self.connect(&host, port).await {
            Ok(upstream) => upstream,
            Err(why) => {
                debug!(%target, %why, "the cluster proxy cannot connect");
                return answer(&mut client, 502, "Bad Gateway", &why).await;
            }
        };
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        let mut upstream = upstream;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        Ok(())
    }

    /// A connection to the API of the cluster at `host:port`.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let cluster = self
            .boots
            .cluster_at(host, port)
            .ok_or_else(|| format!("no cluster's API answers at {host}:{port}"))?;
        let url = self
            .gateway
            .url(&cluster)
            .await
            .map_err(|e| e.to_string())?;
        let addr: SocketAddr = url
            .trim_start_matches("https://")
            .parse()
            .map_err(|e| format!("the gateway's address {url}: {e}"))?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

async fn answer(
    client: &mut TcpStream,
    code: u16,
    reason: &str,
    message: &str,
) -> std::io::Result<()> {
    let body = format!("{message}\n");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connect_targets_parse_as_host_and_port() {
        assert_eq!(
            authority("203.0.113.7:6443"),
            Some(("203.0.113.7".to_owned(), 6443))
        );
        assert_eq!(
            authority("[2001:db8::1]:6443"),
            Some(("2001:db8::1".to_owned(), 6443))
        );
        assert_eq!(authority("203.0.113.7"), None);
        assert_eq!(authority(":6443"), None);
        assert_eq!(authority("host:http"), None);
    }

    #[test]
    fn request_lines_give_method_and_target() {
        assert_eq!(
            parse_head(b"CONNECT 203.0.113.7:6443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
            ("CONNECT".to_owned(), "203.0.113.7:6443".to_owned())
        );
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}

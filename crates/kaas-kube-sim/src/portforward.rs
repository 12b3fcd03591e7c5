//! `pods/{name}/portforward`: a WebSocket upgrade in the `v4.channel.k8s.io` framing a
//! real API server speaks to kube-rs and client-go. Each forwarded port has two
//! channels, data (`2i`) and error (`2i + 1`); every binary message starts with its
//! channel's byte, and the server's first message on each channel is the port number
//! (two bytes, little-endian). Where the connections go is the embedder's
//! ([`PodPorts`]), as a kubelet would open them inside the pod.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The subprotocol served.
pub const PORT_FORWARD_PROTOCOL: &str = "v4.channel.k8s.io";
/// How much one data message carries at most.
const CHUNK: usize = 32 * 1024;

/// A connection to a pod's port.
pub trait PodStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PodStream for T {}

/// Where port-forwards go: a connection to `port` of pod `namespace/pod`, or why none.
pub trait PodPorts: Send + Sync + 'static {
    fn connect(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<Box<dyn PodStream>, String>>;
}

/// The ports of a `ports` query (`ports=2379`, `ports=80,443`, or repeated).
pub(crate) fn ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (key, value) in query {
        if key != "ports" {
            continue;
        }
        for port in value.split(',') {
            let port: u16 = port
                .trim()
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port {port:?}: must be 1-65535"))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be given (?ports=PORT)".to_owned());
    }
    Ok(ports)
}

/// Upgrades to the forwarding WebSocket.
pub(crate) fn upgrade(
    ws: WebSocketUpgrade,
    backend: Option<Arc<dyn PodPorts>>,
    namespace: String,
    pod: String,
    ports: Vec<u16>,
) -> axum::response::Response {
    ws.protocols([PORT_FORWARD_PROTOCOL])
        .on_upgrade(move |socket| forward(socket, backend, namespace, pod, ports))
}

fn framed(channel: u8, bytes: &[u8]) -> Message {
    let mut message = Vec::with_capacity(bytes.len() + 1);
    message.push(channel);
    message.extend_from_slice(bytes);
    Message::Binary(message.into())
}

async fn forward(
    socket: WebSocket,
    backend: Option<Arc<dyn PodPorts>>,
    namespace: String,
    pod: String,
    ports: Vec<u16>,
) {
    let (mut sink, mut stream) = socket.split();
    let (to_client, mut outgoing) = mpsc::channel::<Message>(16);
    let mut writers = Vec::with_capacity(ports.len());
    for (index, port) in ports.iter().enumerate() {
        let Ok(data) = u8::try_from(index * 2) else {
            break;
        };
        let error = data + 1;
        let number = port.to_le_bytes();
        if sink.send(framed(data, &number)).await.is_err()
            || sink.send(framed(error, &number)).await.is_err()
        {
            return;
        }
        let connected = match &backend {
            Some(backend) => backend.connect(&namespace, &pod, *port).await,
            None => Err(format!("pod {namespace}/{pod} serves no port {port}")),
        };
        match connected {
            Ok(conn) => {
                let (mut read, write) = tokio::io::split(conn);
                writers.push(Some(write));
                let to_client = to_client.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; CHUNK];
                    loop {
                        match read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if to_client.send(framed(data, &buffer[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
            Err(message) => {
                writers.push(None);
                let text =
                    format!("error forwarding port {port} to pod {namespace}/{pod}: {message}");
                if sink.send(framed(error, text.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(to_client);
    loop {
        tokio::select! {
            received = stream.next() => match received {
                Some(Ok(Message::Binary(bytes))) if bytes.len() > 1 => {
                    let channel = usize::from(bytes[0]);
                    if channel % 2 == 0
                        && let Some(Some(writer)) = writers.get_mut(channel / 2)
                        && writer.write_all(&bytes[1..]).await.is_err()
                    {
                        writers[channel / 2] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            sent = outgoing.recv() => match sent {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                // Every pod connection is closed: so is the forward.
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    for writer in writers.iter_mut().flatten() {
        let _ = writer.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ports_come_from_one_or_more_ports_parameters() {
        assert_eq!(ports(&query(&[("ports", "2379")])), Ok(vec![2379]));
        assert_eq!(
            ports(&query(&[("ports", "80,443"), ("ports", "8080")])),
            Ok(vec![80, 443, 8080])
        );
        assert!(ports(&query(&[])).is_err());
        assert!(ports(&query(&[("ports", "0")])).is_err());
        assert!(
            ports(&query(&[("ports", "http")]))
                .unwrap_err()
                .contains("http")
        );
    }
}

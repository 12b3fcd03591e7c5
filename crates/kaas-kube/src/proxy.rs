//! Connections to a cluster's API server straight or through an HTTP proxy: for a
//! proxy, a TCP connection to it and `CONNECT HOST:PORT`, after which the proxy relays
//! bytes and TLS runs end to end with the API server, its certificate checked against
//! the cluster's own name (as kubectl's `proxy-url` does). Providers put clusters'
//! networks behind bastions that way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::BoxError;

/// The most a proxy's answer to CONNECT may take (its head and a short message).
const MAX_ANSWER: usize = 8 * 1024;

/// Connects to the URI asked for, directly or through `proxy`.
#[derive(Clone)]
pub(crate) struct Connector {
    direct: HttpConnector,
    /// `http://HOST:PORT` of the proxy.
    proxy: Option<Uri>,
    /// How long the proxy may take to answer CONNECT.
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(direct: HttpConnector, proxy: Option<Uri>, timeout: Duration) -> Self {
        Self {
            direct,
            proxy,
            timeout,
        }
    }
}

/// `http://HOST:PORT[/]` as the proxy's URI; anything else is refused, naming it.
pub(crate) fn proxy_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("the proxy URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "the proxy URL {url:?} is not http://HOST[:PORT] (only HTTP proxies are supported)"
        ));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("the proxy URL {url:?} has a path"));
    }
    Ok(uri)
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        let (proxy, timeout) = (self.proxy.clone(), self.timeout);
        Box::pin(async move {
            let Some(proxy) = proxy else {
                return direct.call(destination).await.map_err(Into::into);
            };
            let host = destination
                .host()
                .ok_or_else(|| format!("{destination} has no host"))?;
            let port =
                destination
                    .port_u16()
                    .unwrap_or(if destination.scheme_str() == Some("http") {
                        80
                    } else {
                        443
                    });
            // IPv6 addresses stay in the brackets the URI has them in.
            let authority = format!("{host}:{port}");
            let stream = direct
                .call(proxy.clone())
                .await
                .map_err(|e| format!("the proxy {proxy}: {e}"))?;
            let mut tcp = stream.into_inner();
            tokio::time::timeout(timeout, tunnel(&mut tcp, &authority))
                .await
                .map_err(|_| format!("the proxy {proxy} did not answer CONNECT {authority}"))?
                .map_err(|e| format!("the proxy {proxy}: {e}"))?;
            Ok(TokioIo::new(tcp))
        })
    }
}

/// Asks the proxy on `tcp` for a tunnel to `authority`; an answer other than 2xx is an
/// error with the proxy's status line and the first line of its message.
async fn tunnel(tcp: &mut TcpStream, authority: &str) -> Result<(), String> {
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // A proxy sends nothing after a 2xx head until the client speaks, so reading up to
    // the head's end takes nothing of the tunnel's.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > MAX_ANSWER {
            return Err("its answer to CONNECT is too long".to_owned());
        }
        let n = tcp.read(&mut byte).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let code = status_line.split(' ').nth(1).unwrap_or_default();
    if code.starts_with('2') && answer.ends_with(b"\r\n\r\n") {
        return Ok(());
    }
    // The message, if any, follows the head; read what comes promptly.
    let mut body = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut body))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let message = String::from_utf8_lossy(&body[..n]);
    let message = message.lines().next().unwrap_or_default();
    Err(format!(
        "CONNECT {authority}: {status_line}{}{message}",
        if message.is_empty() { "" } else { ": " }
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_plain_http_proxies_are_taken() {
        assert!(proxy_uri("http://127.0.0.1:7481").is_ok());
        assert!(proxy_uri("http://proxy.example.com:3128/").is_ok());
        for bad in [
            "https://proxy:3128",
            "socks5://proxy:1080",
            "proxy:3128",
            "http://proxy:3128/path",
        ] {
            assert!(proxy_uri(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_refused_connect_says_what_the_proxy_said() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 30\r\n\r\nno cluster's API answers there\n",
            )
            .await
            .unwrap();
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let e = tunnel(&mut tcp, "203.0.113.7:6443").await.unwrap_err();
        assert_eq!(
            e,
            "CONNECT 203.0.113.7:6443: HTTP/1.1 502 Bad Gateway: no cluster's API answers there"
        );
    }
}

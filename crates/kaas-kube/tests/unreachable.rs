//! Clusters that cannot be reached, or not safely.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use std::net::Ipv4Addr;
use std::sync::Arc;

use chrono::Utc;
use kaas_bootstrap::{ApiServerSans, ClusterPki, issue_admin_client_cert, issue_apiserver_cert};
use kaas_cloud::WorkloadError;
use kaas_kube::{ClusterAccess, WorkloadClient};
use kaas_kube_sim::{ApiServer, router, serve_tls};
use tokio::net::TcpListener;

#[tokio::test]
async fn nothing_listening_is_unreachable_at_once() {
    let pki = common::pki();
    // A port that was free a moment ago.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("https://{addr}");
    let client = WorkloadClient::new(&ClusterAccess {
        url: url.clone(),
        tls_server_name: None,
        ca_cert_pem: pki.ca.cert,
        client_cert_pem: pki.admin.cert,
        client_key_pem: pki.admin.key,
        proxy_url: None,
    })
    .unwrap();
    let started = Instant::now();
    let error = client.nodes().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let WorkloadError::Unreachable { endpoint, message } = &error else {
        panic!("not unreachable: {error:?}")
    };
    assert_eq!(endpoint, &url);
    assert!(!message.is_empty());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_unreachable() {
    let cluster = common::cluster(&[common::node("worker-0")]).await;
    let stranger = common::pki();
    let client = WorkloadClient::new(&ClusterAccess {
        ca_cert_pem: stranger.ca.cert,
        ..cluster.access.clone()
    })
    .unwrap();
    let error = client.nodes().await.unwrap_err();
    let WorkloadError::Unreachable { endpoint, message } = &error else {
        panic!("not unreachable: {error:?}")
    };
    assert_eq!(endpoint, &cluster.access.url);
    assert!(message.contains("certificate"), "{message}");
    // With the right CA, the same server answers.
    assert_eq!(cluster.client.nodes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn unusable_certificates_are_refused_when_building_the_client() {
    let pki = common::pki();
    let access = ClusterAccess {
        url: "https://127.0.0.1:6443".to_owned(),
        tls_server_name: None,
        ca_cert_pem: pki.ca.cert,
        client_cert_pem: pki.admin.cert,
        client_key_pem: "not a key".to_owned(),
        proxy_url: None,
    };
    let error = WorkloadClient::new(&access).unwrap_err();
    assert!(matches!(error, WorkloadError::Api { .. }), "{error:?}");
}

/// An endpoint reached at another address, as curl's `--resolve` does: the connection
/// goes to the address, the certificate is checked against the endpoint's name.
#[tokio::test]
async fn an_endpoint_is_reached_at_another_address_under_its_own_name() {
    let now = Utc::now();
    let pki = ClusterPki::generate("resolve-test", now).unwrap();
    // A certificate for the cluster's endpoint and VIP (and 127.0.0.1, as every API
    // server's).
    let sans = ApiServerSans {
        service_cidr: "10.96.0.0/12".to_owned(),
        load_balancer_address: "10.0.0.5".to_owned(),
        floating_ip: Some("203.0.113.10".to_owned()),
        extra: Vec::new(),
    };
    let serving = issue_apiserver_cert(&pki, &sans, now).unwrap();
    let admin = issue_admin_client_cert(&pki, "kaas", Duration::from_secs(600), now).unwrap();
    let api = Arc::new(ApiServer::with_version("v1.35.2"));
    api.set_nodes(&[common::node("worker-0")]);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ca = pki.kubernetes_ca.cert_pem.clone();
    let app = router(Arc::clone(&api));
    let (cert, key, client_ca) = (serving.cert_pem, serving.key_pem, ca.clone());
    let server = tokio::spawn(async move {
        serve_tls(
            listener,
            app,
            &cert,
            &key,
            &client_ca,
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let access = |name: Option<&str>| ClusterAccess {
        url: format!("https://{addr}"),
        tls_server_name: name.map(str::to_owned),
        ca_cert_pem: ca.clone(),
        client_cert_pem: admin.cert_pem.clone(),
        client_key_pem: admin.key_pem.clone(),
        proxy_url: None,
    };
    // Under the endpoint's name (the floating IP, or the VIP), the server is trusted.
    for name in [Some("203.0.113.10"), Some("10.0.0.5"), None] {
        let client = WorkloadClient::new(&access(name)).unwrap();
        assert_eq!(client.nodes().await.unwrap().len(), 1, "{name:?}");
    }
    // Under a name the certificate lacks, it is not.
    for name in [Some("203.0.113.99"), Some("api.other.example")] {
        let error = WorkloadClient::new(&access(name))
            .unwrap()
            .nodes()
            .await
            .unwrap_err();
        let WorkloadError::Unreachable { message, .. } = &error else {
            panic!("{name:?}: not unreachable: {error:?}")
        };
        assert!(message.contains("certificate"), "{name:?}: {message}");
    }
    server.abort();
}

/// A tiny HTTP proxy: every CONNECT to `endpoint` goes to `to`; any other answers 502.
async fn proxy(endpoint: &'static str, to: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.ends_with(b"\r\n\r\n") {
                    let n = client.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8(head).unwrap();
                if !head.starts_with(&format!("CONNECT {endpoint} HTTP/1.1\r\n")) {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 7\r\n\r\nnowhere")
                        .await;
                    return;
                }
                let mut upstream = tokio::net::TcpStream::connect(to).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_endpoint_is_reached_through_a_proxy_under_its_own_name() {
    let now = Utc::now();
    let pki = ClusterPki::generate("proxy-test", now).unwrap();
    let sans = ApiServerSans {
        service_cidr: "10.96.0.0/12".to_owned(),
        load_balancer_address: "10.0.0.5".to_owned(),
        floating_ip: Some("203.0.113.10".to_owned()),
        extra: Vec::new(),
    };
    let serving = issue_apiserver_cert(&pki, &sans, now).unwrap();
    let admin = issue_admin_client_cert(&pki, "kaas", Duration::from_secs(600), now).unwrap();
    let api = Arc::new(ApiServer::with_version("v1.35.2"));
    api.set_nodes(&[common::node("worker-0")]);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ca = pki.kubernetes_ca.cert_pem.clone();
    let app = router(Arc::clone(&api));
    let (cert, key, client_ca) = (serving.cert_pem, serving.key_pem, ca.clone());
    let server = tokio::spawn(async move {
        serve_tls(
            listener,
            app,
            &cert,
            &key,
            &client_ca,
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let proxy = proxy("203.0.113.10:6443", addr).await;
    let access = |url: &str, proxy_url: &str| ClusterAccess {
        url: url.to_owned(),
        tls_server_name: None,
        ca_cert_pem: ca.clone(),
        client_cert_pem: admin.cert_pem.clone(),
        client_key_pem: admin.key_pem.clone(),
        proxy_url: Some(proxy_url.to_owned()),
    };
    // The endpoint itself, through the proxy, checked against the endpoint's address.
    let client = WorkloadClient::new(&access(
        "https://203.0.113.10:6443",
        &format!("http://{proxy}"),
    ))
    .unwrap();
    assert_eq!(client.nodes().await.unwrap().len(), 1);
    // Where the proxy reaches nothing, the cluster is unreachable, saying why.
    let error = WorkloadClient::new(&access(
        "https://203.0.113.99:6443",
        &format!("http://{proxy}"),
    ))
    .unwrap()
    .nodes()
    .await
    .unwrap_err();
    let WorkloadError::Unreachable { message, .. } = &error else {
        panic!("not unreachable: {error:?}")
    };
    assert!(message.contains("502 Bad Gateway: nowhere"), "{message}");
    // A proxy URL that is not http://HOST:PORT is refused at once.
    let refused = WorkloadClient::new(&access("https://203.0.113.10:6443", "socks5://proxy:1080"));
    assert!(refused.is_err());
    server.abort();
}

//! Clusters that cannot be reached, or not safely.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use kaas_cloud::WorkloadError;
use kaas_kube::{ClusterAccess, WorkloadClient};
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
        ca_cert_pem: pki.ca.cert,
        client_cert_pem: pki.admin.cert,
        client_key_pem: pki.admin.key,
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
        ca_cert_pem: pki.ca.cert,
        client_cert_pem: pki.admin.cert,
        client_key_pem: "not a key".to_owned(),
    };
    let error = WorkloadClient::new(&access).unwrap_err();
    assert!(matches!(error, WorkloadError::Api { .. }), "{error:?}");
}

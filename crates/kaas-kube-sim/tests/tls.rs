//! Serving over TLS: clients need a certificate from the client CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use kaas_kube_sim::{ApiServer, ServeError, router, serve_tls};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test]
async fn only_clients_with_a_certificate_from_the_client_ca_get_in() {
    let pki = common::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(Arc::new(ApiServer::with_version("v1.32.4")));
    let (cert, key, ca) = (
        pki.server.cert.clone(),
        pki.server.key.clone(),
        pki.ca.cert.clone(),
    );
    let server = tokio::spawn(async move {
        serve_tls(listener, app, &cert, &key, &ca, async {
            let _ = stopped.await;
        })
        .await
    });

    let response = common::https_get(addr, &pki.ca.cert, Some(&pki.admin), "/version")
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"gitVersion\":\"v1.32.4\""),
        "{response}"
    );
    let response = common::https_get(
        addr,
        &pki.ca.cert,
        Some(&pki.admin),
        "/api/v1/namespaces/default",
    )
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // No client certificate, or one from another CA: no answer.
    let anonymous = common::https_get(addr, &pki.ca.cert, None, "/version").await;
    let refused = anonymous.unwrap_err().to_string();
    assert!(refused.contains("CertificateRequired"), "{refused}");
    let stranger = common::stranger();
    let foreign = common::https_get(addr, &pki.ca.cert, Some(&stranger), "/version").await;
    let refused = foreign.unwrap_err().to_string();
    assert!(
        refused.contains("UnknownCA") || refused.contains("BadCertificate"),
        "{refused}"
    );

    // Still serving after those.
    let response = common::https_get(addr, &pki.ca.cert, Some(&pki.admin), "/healthz")
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn unusable_certificates_are_reported() {
    let pki = common::pki();
    let app = router(Arc::new(ApiServer::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = serve_tls(
        listener,
        app.clone(),
        "",
        &pki.server.key,
        &pki.ca.cert,
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(result, Err(ServeError::NoServerCertificate)),
        "{result:?}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = serve_tls(
        listener,
        app.clone(),
        &pki.server.cert,
        "no key",
        &pki.ca.cert,
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(result, Err(ServeError::ServerKey(_))),
        "{result:?}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = serve_tls(
        listener,
        app,
        &pki.server.cert,
        &pki.server.key,
        "",
        std::future::pending(),
    )
    .await;
    assert!(matches!(result, Err(ServeError::NoClientCa)), "{result:?}");
}

/// A simulated kubelet registers its Node, reports its status and takes its lease over
/// HTTPS, writes nothing when nothing changed, and reports a change of readiness.
#[tokio::test]
async fn a_kubelet_registers_its_node_and_lease_over_https() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kaas_kube_sim::{Kubelet, NodeSpec, Taint};

    let pki = common::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = Arc::new(ApiServer::with_version("v1.36.4"));
    let app = router(api.clone());
    let (cert, key, ca) = (
        pki.server.cert.clone(),
        pki.server.key.clone(),
        pki.ca.cert.clone(),
    );
    let server = tokio::spawn(async move {
        serve_tls(listener, app, &cert, &key, &ca, std::future::pending()).await
    });
    let kubelet = Kubelet::new(
        "cp-0",
        &format!("https://{addr}"),
        &pki.ca.cert,
        &pki.admin.cert,
        &pki.admin.key,
    )
    .unwrap();
    let mut spec = NodeSpec {
        name: "cp-0".to_owned(),
        provider_id: "openstack:///srv-1".to_owned(),
        ready: true,
        labels: BTreeMap::from([("topology.kubernetes.io/zone".to_owned(), "nova".to_owned())]),
        kubelet_version: "v1.36.4".to_owned(),
        internal_ip: Some("10.0.0.11".to_owned()),
        taints: vec![Taint::control_plane()],
    };
    let hour = Duration::from_secs(3600);
    let now = chrono::Utc::now();
    kubelet.report(&spec, hour, now).await.unwrap();
    let node = api.get("v1", "Node", "", "cp-0").unwrap();
    assert_eq!(node["spec"]["providerID"], "openstack:///srv-1");
    assert_eq!(
        node["metadata"]["labels"]["topology.kubernetes.io/zone"],
        "nova"
    );
    assert_eq!(
        node["spec"]["taints"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.36.4");
    let ready = |node: &serde_json::Value| {
        node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(ready(&node), "True");
    let lease = api
        .get("coordination.k8s.io/v1", "Lease", "kube-node-lease", "cp-0")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "cp-0");

    // Nothing changed, the lease is fresh: nothing is written.
    let version = api.resource_version();
    kubelet.report(&spec, hour, now).await.unwrap();
    assert_eq!(api.resource_version(), version);
    // The lease is renewed once due.
    kubelet
        .report(&spec, hour, now + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert!(api.resource_version() > version);

    // NotReady is reported as the Ready condition.
    spec.ready = false;
    kubelet.report(&spec, hour, now).await.unwrap();
    let node = api.get("v1", "Node", "", "cp-0").unwrap();
    assert_eq!(ready(&node), "False");
    server.abort();
}

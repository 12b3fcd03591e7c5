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

//! The fetcher against small in-process servers: a chart repository, plain manifests,
//! an HTTP mirror of blobs, a registry that wants a bearer token, redirect loops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{artifact, closed_address, make_chart, serve};
use kaas_artifacts::{
    ArtifactError, ArtifactKind, BlobKind, Credentials, Digest, FailureKind, Fetcher,
    HELM_CHART_LAYER, HELM_CONFIG, Limits, Mirror,
};

fn fetcher() -> Fetcher {
    Fetcher::new(Limits::default()).unwrap()
}

/// Files by path.
type Files = Arc<HashMap<String, Vec<u8>>>;

async fn serve_files(State(files): State<Files>, request: Request) -> Response {
    match files.get(request.uri().path()) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn file_server(entries: Vec<(&str, Vec<u8>)>) -> String {
    let files: Files = Arc::new(
        entries
            .into_iter()
            .map(|(p, b)| (p.to_owned(), b))
            .collect(),
    );
    let addr = serve(Router::new().fallback(serve_files).with_state(files)).await;
    format!("http://{addr}")
}

fn index_yaml(name: &str, version: &str, url: &str, digest: Option<&Digest>) -> Vec<u8> {
    let digest = digest
        .map(|d| format!("      digest: {}\n", d.hex()))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nentries:\n  {name}:\n    - name: {name}\n      version: 9.9.9\n      urls: [elsewhere.tgz]\n    - name: {name}\n      version: {version}\n{digest}      urls:\n        - {url}\ngenerated: \"2026-01-01T00:00:00Z\"\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_repository_chart_comes_from_its_index_entry() {
    let tgz = make_chart("hello", "1.0.0", 0);
    let digest = Digest::of(&tgz);
    let base = file_server(vec![
        (
            "/stable/index.yaml",
            index_yaml("hello", "1.0.0", "charts/hello-1.0.0.tgz", Some(&digest)),
        ),
        ("/stable/charts/hello-1.0.0.tgz", tgz.clone()),
    ])
    .await;
    let repo = format!("{base}/stable");
    // The stack may write the version with a leading v.
    for version in ["1.0.0", "v1.0.0"] {
        let wanted = artifact(ArtifactKind::ChartRepo, &repo, "hello", version, &digest);
        let fetched = fetcher().fetch(&wanted).await.unwrap();
        assert_eq!(fetched.blobs.len(), 1);
        assert_eq!(fetched.blobs[0].kind, BlobKind::Chart);
        assert_eq!(fetched.blobs[0].bytes, tgz);
        assert_eq!(fetched.source, repo);
    }
    // The index lists another digest than the stack pins: refused at the index.
    let pinned = Digest::of(b"something else");
    let wanted = artifact(ArtifactKind::ChartRepo, &repo, "hello", "1.0.0", &pinned);
    let e = fetcher().fetch(&wanted).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&format!("{repo}/index.yaml")), "{text}");
    assert!(
        text.contains(pinned.as_str()) && text.contains(digest.as_str()),
        "{text}"
    );
    assert_eq!(e.kind(), FailureKind::Unacceptable);
    // No such version.
    let wanted = artifact(ArtifactKind::ChartRepo, &repo, "hello", "2.0.0", &digest);
    let e = fetcher().fetch(&wanted).await.unwrap_err().to_string();
    assert!(e.contains("no version \"2.0.0\" of chart \"hello\""), "{e}");
    // No such chart.
    let wanted = artifact(ArtifactKind::ChartRepo, &repo, "bye", "1.0.0", &digest);
    let e = fetcher().fetch(&wanted).await.unwrap_err().to_string();
    assert!(e.contains("no chart \"bye\""), "{e}");
}

#[tokio::test]
async fn a_repository_chart_without_an_index_digest_is_checked_itself() {
    let tgz = make_chart("hello", "1.0.0", 0);
    let other = make_chart("hello", "1.0.0", 10);
    let base = file_server(vec![
        (
            "/index.yaml",
            index_yaml("hello", "1.0.0", "/files/hello.tgz", None),
        ),
        ("/files/hello.tgz", other.clone()),
    ])
    .await;
    let wanted = artifact(
        ArtifactKind::ChartRepo,
        &base,
        "hello",
        "1.0.0",
        &Digest::of(&tgz),
    );
    let e = fetcher().fetch(&wanted).await.unwrap_err();
    let ArtifactError::DigestMismatch {
        place,
        expected,
        actual,
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(place, &format!("{base}/files/hello.tgz"));
    assert_eq!(expected, Digest::of(&tgz).as_str());
    assert_eq!(actual, Digest::of(&other).as_str());
}

#[tokio::test]
async fn a_manifest_is_downloaded_and_verified() {
    let yaml = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n".to_vec();
    let base = file_server(vec![("/release/v1/x.yaml", yaml.clone())]).await;
    let url = format!("{base}/release/v1/x.yaml");
    let wanted = artifact(ArtifactKind::Manifest, &url, "x", "v1", &Digest::of(&yaml));
    let fetched = fetcher().fetch(&wanted).await.unwrap();
    assert_eq!(fetched.blobs[0].kind, BlobKind::Manifest);
    assert_eq!(fetched.blobs[0].bytes, yaml);

    let pinned = Digest::of(b"kind: Other\n");
    let e = fetcher()
        .fetch(&artifact(ArtifactKind::Manifest, &url, "x", "v1", &pinned))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(pinned.as_str()) && e.contains(Digest::of(&yaml).as_str()),
        "{e}"
    );
    assert!(e.contains("addon x") && e.contains(&url), "{e}");

    let missing = format!("{base}/release/v2/x.yaml");
    let e = fetcher()
        .fetch(&artifact(
            ArtifactKind::Manifest,
            &missing,
            "x",
            "v2",
            &pinned,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ArtifactError::NotFound { .. }), "{e}");

    let small = Fetcher::new(Limits {
        max_bytes: 10,
        ..Limits::default()
    })
    .unwrap();
    let e = small.fetch(&wanted).await.unwrap_err();
    assert!(matches!(e, ArtifactError::TooLarge { .. }), "{e}");

    let gone = format!("http://{}/x.yaml", closed_address());
    let e = fetcher()
        .fetch(&artifact(ArtifactKind::Manifest, &gone, "x", "v1", &pinned))
        .await
        .unwrap_err();
    assert!(matches!(e, ArtifactError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&gone), "{e}");
}

#[tokio::test]
async fn an_http_mirror_serves_blobs_by_digest() {
    let yaml = b"kind: A\n".to_vec();
    let tgz = make_chart("hello", "1.0.0", 0);
    let config = br#"{"name":"hello","version":"1.0.0"}"#.to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": HELM_CONFIG, "digest": Digest::of(&config), "size": config.len()},
        "layers": [{"mediaType": HELM_CHART_LAYER, "digest": Digest::of(&tgz), "size": tgz.len()}],
    }))
    .unwrap();
    let path = |bytes: &[u8]| format!("/mirror/blobs/sha256/{}", Digest::of(bytes).hex());
    let base = file_server(vec![
        (&path(&yaml), yaml.clone()),
        (&path(&tgz), tgz.clone()),
        (&path(&config), config.clone()),
        (&path(&manifest), manifest.clone()),
    ])
    .await;
    let mirror = fetcher().with_mirrors(vec![Mirror::parse(&format!("{base}/mirror")).unwrap()]);
    let offline = closed_address();

    let m = artifact(
        ArtifactKind::Manifest,
        &format!("http://{offline}/a.yaml"),
        "a",
        "v1",
        &Digest::of(&yaml),
    );
    assert_eq!(mirror.fetch(&m).await.unwrap().blobs[0].bytes, yaml);

    // An OCI chart is pinned by its .tgz, as a repository's is: the mirror serves it
    // by that digest.
    let chart = artifact(
        ArtifactKind::ChartOci,
        &format!("oci://{offline}/charts"),
        "hello",
        "1.0.0",
        &Digest::of(&tgz),
    );
    let fetched = mirror.fetch(&chart).await.unwrap();
    assert_eq!(fetched.source, format!("{base}/mirror"));
    assert_eq!(fetched.content().unwrap().bytes, tgz);
    assert_eq!(fetched.blobs.len(), 1);

    // Not in the mirror, upstream unreachable: both places are named.
    let absent = artifact(
        ArtifactKind::Manifest,
        &format!("http://{offline}/b.yaml"),
        "b",
        "v1",
        &Digest::of(b"b"),
    );
    let e = mirror.fetch(&absent).await.unwrap_err();
    let ArtifactError::AllFailed { attempts, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(matches!(attempts[0], ArtifactError::NotFound { .. }), "{e}");
    assert!(
        matches!(attempts[1], ArtifactError::Unreachable { .. }),
        "{e}"
    );
    assert_eq!(e.kind(), FailureKind::Unavailable);
}

/// A registry that answers only with a bearer token from its token service, which
/// hands one out anonymously (or, when it wants credentials, for them only).
#[derive(Clone)]
struct TokenRegistry {
    blobs: Arc<HashMap<String, Vec<u8>>>,
    realm: Arc<Mutex<String>>,
    token_requests: Arc<AtomicUsize>,
    /// `user:password` the token service wants, if any.
    wanted_basic: Option<&'static str>,
    scopes: Arc<Mutex<Vec<String>>>,
}

const TOKEN: &str = "opaque-token-42";

async fn token_service(
    State(registry): State<TokenRegistry>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    registry.token_requests.fetch_add(1, Ordering::SeqCst);
    if query.get("service").map(String::as_str) != Some("test-registry") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    registry
        .scopes
        .lock()
        .unwrap()
        .push(query.get("scope").cloned().unwrap_or_default());
    if let Some(wanted) = registry.wanted_basic {
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(wanted)
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    axum::Json(serde_json::json!({"token": TOKEN})).into_response()
}

async fn token_registry_v2(State(registry): State<TokenRegistry>, request: Request) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        let realm = registry.realm.lock().unwrap().clone();
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!(
                    r#"Bearer realm="{realm}",service="test-registry",scope="repository:charts/hello:pull""#
                ),
            )],
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        )
            .into_response();
    }
    let path = request.uri().path();
    let key = path
        .rsplit_once('/')
        .map(|(_, last)| last.to_owned())
        .unwrap_or_default();
    match registry.blobs.get(&key) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_token_registry(
    wanted_basic: Option<&'static str>,
) -> (TokenRegistry, String, Digest, Vec<u8>) {
    let tgz = make_chart("hello", "1.0.0", 0);
    let config = br#"{"name":"hello","version":"1.0.0"}"#.to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": HELM_CONFIG, "digest": Digest::of(&config), "size": config.len()},
        "layers": [{"mediaType": HELM_CHART_LAYER, "digest": Digest::of(&tgz), "size": tgz.len()}],
    }))
    .unwrap();
    // The stack pins the chart's .tgz; the manifest is found by its tag.
    let digest = Digest::of(&tgz);
    let blobs: HashMap<String, Vec<u8>> = [
        ("1.0.0".to_owned(), manifest),
        (Digest::of(&tgz).to_string(), tgz.clone()),
        (Digest::of(&config).to_string(), config),
    ]
    .into_iter()
    .collect();
    let registry = TokenRegistry {
        blobs: Arc::new(blobs),
        realm: Arc::new(Mutex::new(String::new())),
        token_requests: Arc::new(AtomicUsize::new(0)),
        wanted_basic,
        scopes: Arc::new(Mutex::new(Vec::new())),
    };
    let router = Router::new()
        .route("/token", get(token_service))
        .fallback(token_registry_v2)
        .with_state(registry.clone());
    let addr = serve(router).await;
    *registry.realm.lock().unwrap() = format!("http://{addr}/token");
    (registry, format!("oci://{addr}/charts"), digest, tgz)
}

#[tokio::test]
async fn a_registry_that_challenges_gets_an_anonymous_bearer_token() {
    let (registry, location, digest, tgz) = start_token_registry(None).await;
    let wanted = artifact(ArtifactKind::ChartOci, &location, "hello", "1.0.0", &digest);
    let fetcher = fetcher();
    let fetched = fetcher.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.content().unwrap().bytes, tgz);
    assert_eq!(
        registry.scopes.lock().unwrap().first().map(String::as_str),
        Some("repository:charts/hello:pull")
    );
    // The token is kept: a second pull asks the token service no more.
    let asked = registry.token_requests.load(Ordering::SeqCst);
    assert_eq!(asked, 1, "one token for the manifest and its blobs");
    fetcher.fetch(&wanted).await.unwrap();
    assert_eq!(registry.token_requests.load(Ordering::SeqCst), asked);
}

#[tokio::test]
async fn credentials_go_to_the_token_service() {
    let (_registry, location, digest, tgz) = start_token_registry(Some("robot:s3cret")).await;
    let wanted = artifact(ArtifactKind::ChartOci, &location, "hello", "1.0.0", &digest);
    // Anonymous: the token service refuses, and the error says where.
    let e = fetcher().fetch(&wanted).await.unwrap_err();
    assert!(
        matches!(e, ArtifactError::Status { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("token service http://"), "{e}");
    let host = location
        .trim_start_matches("oci://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let with_credentials = fetcher().with_credentials(
        &host,
        Credentials {
            username: "robot".to_owned(),
            password: "s3cret".to_owned(),
        },
    );
    let fetched = with_credentials.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.content().unwrap().bytes, tgz);
    // Credentials never show in Debug output.
    let shown = format!(
        "{:?}",
        Credentials {
            username: "robot".to_owned(),
            password: "s3cret".to_owned()
        }
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[tokio::test]
async fn redirects_are_followed_a_bounded_number_of_times() {
    let yaml = b"kind: A\n".to_vec();
    let served = yaml.clone();
    let router = Router::new()
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/file")]) }),
        )
        .route("/file", get(move || async move { served.clone() }));
    let addr = serve(router).await;
    let moved = artifact(
        ArtifactKind::Manifest,
        &format!("http://{addr}/moved"),
        "a",
        "v1",
        &Digest::of(&yaml),
    );
    assert_eq!(fetcher().fetch(&moved).await.unwrap().blobs[0].bytes, yaml);
    let looping = artifact(
        ArtifactKind::Manifest,
        &format!("http://{addr}/loop"),
        "a",
        "v1",
        &Digest::of(&yaml),
    );
    let e = fetcher().fetch(&looping).await.unwrap_err();
    assert!(matches!(e, ArtifactError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("redirect"), "{e}");
}

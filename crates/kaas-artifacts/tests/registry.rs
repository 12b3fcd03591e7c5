//! The fetcher and the push against a real registry: the CNCF Distribution registry of
//! Debian's `docker-registry` package, started by each test on a loopback port. The
//! charts are made by the tests from small folders.
//!
//! Without the package these tests fail saying how to install it (never a silent skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Registry, artifact, closed_address, make_chart};
use kaas_artifacts::{
    ArtifactError, ArtifactKind, BlobKind, Digest, FailureKind, Fetcher, HELM_CHART_LAYER,
    HELM_CONFIG, Limits, Mirror, OCI_MANIFEST, OciLocation, parse_manifest,
};

fn fetcher() -> Fetcher {
    Fetcher::new(Limits::default()).unwrap()
}

fn location(text: &str) -> OciLocation {
    OciLocation::parse(text).unwrap()
}

#[tokio::test]
async fn a_pushed_chart_is_pulled_by_its_digest_as_helm_lays_it_out() {
    let registry = Registry::start();
    let tgz = make_chart("hello", "0.1.0", 0);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("charts")), &tgz)
        .await
        .unwrap();
    assert_eq!(
        pushed.reference,
        format!("{}/hello:0.1.0", registry.at("charts"))
    );
    // Pushing the same chart again gives the same manifest.
    let again = fetcher()
        .push_chart(&location(&registry.at("charts")), &tgz)
        .await
        .unwrap();
    assert_eq!(again.digest, pushed.digest);

    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("charts"),
        "hello",
        "0.1.0",
        &pushed.digest,
    );
    let fetched = fetcher().fetch(&wanted).await.unwrap();
    assert_eq!(fetched.source, registry.at("charts"));
    assert_eq!(fetched.content().unwrap().bytes, tgz);
    // The stack pins the .tgz: that is all a fetch keeps.
    let kinds: Vec<BlobKind> = fetched.blobs.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, [BlobKind::Chart]);
    assert_eq!(fetched.blobs[0].digest, pushed.digest);
    assert_eq!(Digest::of(&fetched.blobs[0].bytes), pushed.digest);
    // In the registry, as Helm lays a chart out: the manifest under the tag, its
    // config and its one chart layer.
    let http = registry.at("charts").replacen("oci://", "http://", 1);
    let (host, path) = http["http://".len()..].split_once('/').unwrap();
    let client = reqwest::Client::new();
    let manifest_bytes = client
        .get(format!("http://{host}/v2/{path}/hello/manifests/0.1.0"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Digest::of(&manifest_bytes), pushed.manifest_digest);
    let manifest = parse_manifest(&manifest_bytes).unwrap();
    assert_eq!(manifest.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(manifest.config.media_type, HELM_CONFIG);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, HELM_CHART_LAYER);
    assert_eq!(manifest.layers[0].size, tgz.len() as u64);
    assert_eq!(manifest.layers[0].digest, pushed.digest.as_str());
    let config_bytes = client
        .get(format!(
            "http://{host}/v2/{path}/hello/blobs/{}",
            manifest.config.digest
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["name"], "hello");
    assert_eq!(config["version"], "0.1.0");
    assert_eq!(config["appVersion"], "1.0");
}

#[tokio::test]
async fn a_mirror_is_tried_first_and_upstream_after_it() {
    let registry = Registry::start();
    let tgz = make_chart("hello", "0.2.0", 0);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("mirror")), &tgz)
        .await
        .unwrap();
    // Upstream does not answer: the mirror has it.
    let upstream = format!("oci://{}/charts", closed_address());
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &upstream,
        "hello",
        "0.2.0",
        &pushed.digest,
    );
    let through_mirror =
        fetcher().with_mirrors(vec![Mirror::parse(&registry.at("mirror")).unwrap()]);
    let fetched = through_mirror.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.source, registry.at("mirror"));
    assert_eq!(fetched.content().unwrap().bytes, tgz);
    // Without the mirror, upstream is all there is, and it is unreachable.
    let e = fetcher().fetch(&wanted).await.unwrap_err();
    assert!(matches!(e, ArtifactError::Unreachable { .. }), "{e}");
    assert_eq!(e.kind(), FailureKind::Unavailable);

    // An empty mirror: upstream has it.
    fetcher()
        .push_chart(&location(&registry.at("upstream")), &tgz)
        .await
        .unwrap();
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("upstream"),
        "hello",
        "0.2.0",
        &pushed.digest,
    );
    let empty_mirror = fetcher().with_mirrors(vec![Mirror::parse(&registry.at("empty")).unwrap()]);
    let fetched = empty_mirror.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.source, registry.at("upstream"));
}

#[tokio::test]
async fn other_bytes_under_the_tag_are_refused_naming_both_digests() {
    let registry = Registry::start();
    let good = make_chart("hello", "0.3.0", 0);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("upstream")), &good)
        .await
        .unwrap();
    // The mirror holds another chart under the same name and version.
    let other = make_chart("hello", "0.3.0", 100);
    let impostor = fetcher()
        .push_chart(&location(&registry.at("mirror")), &other)
        .await
        .unwrap();
    assert_ne!(impostor.digest, pushed.digest);

    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("upstream"),
        "hello",
        "0.3.0",
        &pushed.digest,
    );
    let with_mirror = fetcher().with_mirrors(vec![Mirror::parse(&registry.at("mirror")).unwrap()]);
    // The mirror's is refused; upstream's is taken.
    let fetched = with_mirror.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.source, registry.at("upstream"));
    assert_eq!(fetched.content().unwrap().bytes, good);

    // Pinned to the impostor's digest, upstream has no such manifest; with the good
    // digest but the mirror only (upstream gone), the mismatch is the answer.
    let unreachable_upstream = artifact(
        ArtifactKind::ChartOci,
        &format!("oci://{}/charts", closed_address()),
        "hello",
        "0.3.0",
        &pushed.digest,
    );
    let e = with_mirror.fetch(&unreachable_upstream).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains(pushed.digest.as_str()), "{text}");
    assert!(text.contains(impostor.digest.as_str()), "{text}");
    assert!(text.contains("not the pinned"), "{text}");
    assert!(text.contains(&registry.at("mirror")), "{text}");
    assert_eq!(e.kind(), FailureKind::Unacceptable);
    let ArtifactError::AllFailed { attempts, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(matches!(
        &attempts[0],
        ArtifactError::DigestMismatch { expected, actual, .. }
            if *expected == pushed.digest.as_str() && *actual == impostor.digest.as_str()
    ));
}

#[tokio::test]
async fn a_missing_tag_or_digest_is_not_found() {
    let registry = Registry::start();
    let tgz = make_chart("hello", "0.4.0", 0);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("charts")), &tgz)
        .await
        .unwrap();
    // Another chart pinned than the one under the tag: refused, naming both.
    let absent = Digest::of(b"no such chart");
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("charts"),
        "hello",
        "0.4.0",
        &absent,
    );
    let e = fetcher().fetch(&wanted).await.unwrap_err();
    assert!(matches!(e, ArtifactError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(absent.as_str()), "{e}");
    assert!(e.to_string().contains(pushed.digest.as_str()), "{e}");
    // No such tag in the mirror; no such repository upstream.
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("elsewhere"),
        "hello",
        "9.9.9",
        &pushed.digest,
    );
    let e = fetcher()
        .with_mirrors(vec![Mirror::parse(&registry.at("charts")).unwrap()])
        .fetch(&wanted)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "not found at {}/hello:9.9.9",
            registry.at("charts")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "not found at {}/hello:9.9.9",
            registry.at("elsewhere")
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_chart_over_the_size_limit_is_refused() {
    let registry = Registry::start();
    let tgz = make_chart("big", "1.0.0", 256 << 10);
    assert!(tgz.len() > 200 << 10);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("charts")), &tgz)
        .await
        .unwrap();
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("charts"),
        "big",
        "1.0.0",
        &pushed.digest,
    );
    let small = Fetcher::new(Limits {
        max_bytes: 100 << 10,
        ..Limits::default()
    })
    .unwrap();
    let e = small.fetch(&wanted).await.unwrap_err();
    assert!(
        matches!(e, ArtifactError::TooLarge { limit, .. } if limit == 100 << 10),
        "{e}"
    );
    assert!(e.to_string().contains("larger than the limit"), "{e}");
    assert_eq!(
        fetcher()
            .fetch(&wanted)
            .await
            .unwrap()
            .content()
            .unwrap()
            .bytes,
        tgz
    );
}

#[tokio::test]
async fn a_chart_mirrored_into_another_registry_keeps_its_digest() {
    let registry = Registry::start();
    let tgz = make_chart("hello", "1.2.3+build.4", 0);
    let pushed = fetcher()
        .push_chart(&location(&registry.at("upstream")), &tgz)
        .await
        .unwrap();
    // `+` is not allowed in tags: Helm's `_` stands for it.
    assert!(
        pushed.reference.ends_with("/hello:1.2.3_build.4"),
        "{}",
        pushed.reference
    );
    let wanted = artifact(
        ArtifactKind::ChartOci,
        &registry.at("upstream"),
        "hello",
        "1.2.3+build.4",
        &pushed.digest,
    );
    let fetched = fetcher().fetch(&wanted).await.unwrap();
    let mirrored = fetcher()
        .mirror_to(&fetched, &location(&registry.at("operator/kaas")))
        .await
        .unwrap();
    assert_eq!(mirrored.digest, pushed.digest);
    let offline = artifact(
        ArtifactKind::ChartOci,
        &format!("oci://{}/charts", closed_address()),
        "hello",
        "1.2.3+build.4",
        &pushed.digest,
    );
    let again = fetcher()
        .with_mirrors(vec![Mirror::parse(&registry.at("operator/kaas")).unwrap()])
        .fetch(&offline)
        .await
        .unwrap();
    assert_eq!(again.content().unwrap().bytes, tgz);
}

#[tokio::test]
async fn a_repository_chart_in_an_oci_mirror_is_checked_by_its_chart_layer() {
    let registry = Registry::start();
    let tgz = make_chart("hello", "2.0.0", 0);
    fetcher()
        .push_chart(&location(&registry.at("mirror")), &tgz)
        .await
        .unwrap();
    let upstream = format!("http://{}/charts", closed_address());
    let mirror = fetcher().with_mirrors(vec![Mirror::parse(&registry.at("mirror")).unwrap()]);
    let wanted = artifact(
        ArtifactKind::ChartRepo,
        &upstream,
        "hello",
        "2.0.0",
        &Digest::of(&tgz),
    );
    let fetched = mirror.fetch(&wanted).await.unwrap();
    assert_eq!(fetched.blobs.len(), 1);
    assert_eq!(fetched.blobs[0].bytes, tgz);
    // Pinned to other bytes: the layer's digest is refused before it is downloaded.
    let other = Digest::of(b"another chart");
    let wrong = artifact(ArtifactKind::ChartRepo, &upstream, "hello", "2.0.0", &other);
    let e = mirror.fetch(&wrong).await.unwrap_err().to_string();
    assert!(
        e.contains(other.as_str()) && e.contains(Digest::of(&tgz).as_str()),
        "{e}"
    );
    assert!(e.contains("the chart layer of"), "{e}");
}

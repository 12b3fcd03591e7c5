//! The session against a real OpenStack: the test cloud that `dev/openstack/up.sh`
//! brings up on this machine (Keystone on 127.0.0.1:5000, the `devstack` cloud in
//! /etc/openstack/clouds.yaml: user demo in project demo).
//!
//! When that cloud is not there these tests fail, saying how to bring it up: never a
//! silent skip. Whatever they create they delete, also when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;

use kaas_openstack::{Auth, CloudConfig, OsError, Request, Scope, Secret, Session};
use serde_json::{Value, json};

const CLOUDS_YAML: &str = "/etc/openstack/clouds.yaml";
const CLOUD: &str = "devstack";
const HINT: &str = "the OpenStack test cloud is not up: run `sudo dev/openstack/up.sh`";

/// The `devstack` cloud, read the way `CloudConfig::load` reads it, from
/// /etc/openstack/clouds.yaml only (no environment).
fn config() -> CloudConfig {
    assert!(
        std::path::Path::new(CLOUDS_YAML).is_file(),
        "{CLOUDS_YAML} does not exist: {HINT}"
    );
    CloudConfig::load_with(Some(CLOUD), &BTreeMap::new(), None)
        .unwrap_or_else(|e| panic!("cannot read cloud '{CLOUD}': {e} ({HINT})"))
}

async fn session() -> Session {
    session_with(config()).await
}

async fn session_with(config: CloudConfig) -> Session {
    match Session::new(config).await {
        Ok(session) => session,
        Err(e) if e.status.is_none() => {
            panic!("no token from Keystone: {e} (if Keystone is not reachable, {HINT})")
        }
        Err(e) => panic!("authentication failed: {e}"),
    }
}

fn unique(prefix: &str) -> String {
    format!("kaas-it-{prefix}-{:08x}", rand::random::<u32>())
}

/// Runs `test`, then `cleanup` whatever happened, then reports the test's failure.
async fn with_cleanup<T, C>(test: T, cleanup: C)
where
    T: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    // A spawned task's panic comes back as an error instead of unwinding through here.
    let outcome = tokio::spawn(test).await.map_err(|e| e.into_panic());
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn password_auth_from_clouds_yaml() {
    let config = config();
    assert_eq!(config.auth_url, "http://127.0.0.1:5000/v3");
    assert!(matches!(config.auth, Auth::Password { .. }));
    let session = session_with(config).await;
    assert!(!session.user_id().is_empty());
    assert!(session.project_id().is_some_and(|p| !p.is_empty()));
    assert!(session.expires_at() > chrono::Utc::now() + chrono::TimeDelta::minutes(10));
    assert_eq!(
        session.calls(),
        BTreeMap::from([("identity POST".to_owned(), 1)])
    );
}

#[tokio::test]
async fn the_catalog_has_the_services_kaas_uses() {
    let session = session().await;
    for service in [
        "compute",
        "network",
        "load-balancer",
        "image",
        "identity",
        "placement",
    ] {
        let url = session
            .endpoint(service)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!(url.host_str(), Some("127.0.0.1"), "{service}: {url}");
    }
    assert_eq!(
        session.endpoint("identity").await.unwrap().as_str(),
        "http://127.0.0.1:5000/v3"
    );
    assert!(
        session
            .endpoint("compute")
            .await
            .unwrap()
            .path()
            .ends_with("/v2.1")
    );
    let err = session.endpoint("baremetal").await.unwrap_err();
    assert!(
        err.message.starts_with(
            "no public endpoint for 'baremetal' in region RegionOne; the catalog has: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn requests_reach_neutron_nova_glance_and_octavia() {
    let session = session().await;
    let response = session
        .request(Request::get("network", "/v2.0/networks"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body["networks"].is_array(), "{}", response.body);
    assert!(response.request_id.is_some_and(|id| id.starts_with("req-")));

    let response = session
        .request(Request::get("compute", "/servers?limit=1").microversion("2.64"))
        .await
        .unwrap();
    assert!(response.body["servers"].is_array(), "{}", response.body);

    session
        .list_all("image", "/v2/images?limit=1", "images", None)
        .await
        .unwrap();
    session
        .list_all(
            "load-balancer",
            "/v2/lbaas/loadbalancers?limit=1",
            "loadbalancers",
            None,
        )
        .await
        .unwrap();

    let err = session
        .request(Request::get(
            "network",
            "/v2.0/networks/00000000-0000-0000-0000-000000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(404));
    assert_eq!(
        err.message,
        "Network 00000000-0000-0000-0000-000000000000 could not be found."
    );

    let err = session
        .request(Request::get(
            "compute",
            "/servers/00000000-0000-0000-0000-000000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(404));
    assert_eq!(
        err.message,
        "Instance 00000000-0000-0000-0000-000000000000 could not be found."
    );
    assert!(err.request_id.is_some());

    let calls = session.calls();
    assert_eq!(calls["network GET"], 2);
    assert_eq!(calls["compute GET"], 2);
    assert_eq!(session.total_calls(), calls.values().sum::<u64>());
}

#[tokio::test]
async fn list_all_follows_nova_pagination() {
    let session = session().await;
    let all = session
        .list_all("compute", "/flavors", "flavors", None)
        .await
        .unwrap();
    assert!(
        all.len() >= 2,
        "the test cloud has several flavors: {all:?}"
    );
    let before = session.calls()["compute GET"];
    let paged = session
        .list_all("compute", "/flavors?limit=1", "flavors", None)
        .await
        .unwrap();
    let ids = |items: &[Value]| items.iter().map(|f| f["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));
    // One page per flavor, and one more that comes back empty or without a next link.
    let pages = session.calls()["compute GET"] - before;
    assert!(
        pages >= all.len() as u64,
        "{pages} pages for {} flavors",
        all.len()
    );
}

#[tokio::test]
async fn list_all_follows_neutron_pagination() {
    let session = session().await;
    let name = unique("net");
    let mut created = Vec::new();
    for _ in 0..3 {
        let body = json!({"network": {"name": name}});
        let response = session
            .request(Request::post("network", "/v2.0/networks", &body))
            .await
            .unwrap();
        created.push(response.body["network"]["id"].as_str().unwrap().to_owned());
    }
    let cleanup_session = session.clone();
    let cleanup_ids = created.clone();
    with_cleanup(
        async move {
            let path = format!("/v2.0/networks?name={name}&limit=1");
            let before = session.calls().get("network GET").copied().unwrap_or(0);
            let listed = session
                .list_all("network", &path, "networks", None)
                .await
                .unwrap();
            let mut ids: Vec<String> = listed
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            let mut expected = created;
            expected.sort();
            assert_eq!(ids, expected);
            assert!(session.calls()["network GET"] - before >= 3);
        },
        async move {
            for id in cleanup_ids {
                let path = format!("/v2.0/networks/{id}");
                if let Err(e) = cleanup_session
                    .request(Request::delete("network", &path))
                    .await
                {
                    eprintln!("cleanup: {e}");
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_wrong_password_gives_keystones_401() {
    let mut config = config();
    let Auth::Password { password, .. } = &mut config.auth else {
        panic!("{:?}", config.auth)
    };
    *password = Secret::new("not-the-password");
    let err: OsError = Session::new(config).await.unwrap_err();
    assert_eq!(err.status, Some(401), "{err}");
    assert_eq!(err.service, "identity");
    assert_eq!(err.method, "POST");
    assert_eq!(err.path, "/auth/tokens");
    assert_eq!(
        err.message,
        "The request you have made requires authentication."
    );
    assert!(err.request_id.is_some(), "{err}");
    assert!(!err.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn application_credential_auth() {
    let session = session().await;
    let user_id = session.user_id();
    let secret = format!("kaas-{:032x}", rand::random::<u128>());
    let name = unique("appcred");
    let body = json!({"application_credential": {
        "name": name,
        "secret": secret,
        "description": "kaas-openstack integration test; deleted at its end",
        // Named, not taken from the token: Keystone then checks just this one.
        "roles": [{"name": "member"}],
        "expires_at": (chrono::Utc::now() + chrono::TimeDelta::hours(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
    }});
    let path = format!("/users/{user_id}/application_credentials");
    let response = session
        .request(Request::post("identity", &path, &body))
        .await
        .unwrap();
    assert_eq!(response.status, 201);
    let credential_id = response.body["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Keystone keeps only a hash of the secret we chose, and gives it back once.
    assert_eq!(
        response.body["application_credential"]["secret"],
        secret.as_str()
    );

    let owner = session.clone();
    let delete_path = format!("{path}/{credential_id}");
    let auth_url = owner.config().auth_url.clone();
    let project_id = owner.project_id();
    with_cleanup(
        async move {
            let by_id = CloudConfig {
                auth: Auth::ApplicationCredential {
                    id: Some(credential_id.clone()),
                    name: None,
                    secret: Secret::new(secret.clone()),
                    username: None,
                    user_id: None,
                    user_domain_name: None,
                    user_domain_id: None,
                },
                ..session.config().clone()
            };
            let app = session_with(by_id).await;
            assert_eq!(app.user_id(), user_id);
            assert_eq!(app.project_id(), project_id);
            app.request(Request::get("network", "/v2.0/networks"))
                .await
                .unwrap();

            let by_name = CloudConfig {
                name: None,
                auth_url,
                auth: Auth::ApplicationCredential {
                    id: None,
                    name: Some(name),
                    secret: Secret::new(secret),
                    username: Some("demo".into()),
                    user_id: None,
                    user_domain_name: None,
                    user_domain_id: Some("default".into()),
                },
                ..session.config().clone()
            };
            let app = session_with(by_name).await;
            assert_eq!(app.user_id(), user_id);
            app.request(Request::get("compute", "/flavors"))
                .await
                .unwrap();
        },
        async move {
            let response = owner
                .request(Request::delete("identity", &delete_path))
                .await
                .unwrap();
            assert_eq!(response.status, 204);
        },
    )
    .await;
}

#[tokio::test]
async fn token_auth() {
    let first = session().await;

    // The token as it is: validated, its catalog read.
    let as_is = CloudConfig {
        auth: Auth::Token {
            token: first.token(),
            scope: Scope::default(),
        },
        ..first.config().clone()
    };
    let session = session_with(as_is).await;
    assert_eq!(session.token(), first.token());
    assert_eq!(session.user_id(), first.user_id());
    assert_eq!(session.project_id(), first.project_id());
    assert_eq!(
        session.calls(),
        BTreeMap::from([("identity GET".to_owned(), 1)])
    );
    session
        .request(Request::get("network", "/v2.0/networks"))
        .await
        .unwrap();

    // Exchanged for a new token scoped to the project.
    let scoped = CloudConfig {
        auth: Auth::Token {
            token: first.token(),
            scope: Scope::project(first.project_id().unwrap()),
        },
        ..first.config().clone()
    };
    let session = session_with(scoped).await;
    assert_ne!(session.token(), first.token());
    assert_eq!(session.project_id(), first.project_id());
    session
        .request(Request::get("compute", "/flavors"))
        .await
        .unwrap();

    let bad = CloudConfig {
        auth: Auth::Token {
            token: Secret::new("gAAAAA-not-a-token"),
            scope: Scope::default(),
        },
        ..first.config().clone()
    };
    let err = Session::new(bad).await.unwrap_err();
    assert!(matches!(err.status, Some(401 | 404)), "{err}");
}

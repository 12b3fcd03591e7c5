#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::scripted::{Fake, Reply, reply};
use tokio::net::TcpListener;

// --- authentication ----------------------------------------------------------------------

#[tokio::test]
async fn authenticates_and_sends_requests_with_the_token() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    assert_eq!(session.user_id(), "u1");
    assert_eq!(session.project_id().as_deref(), Some("p1"));
    assert_eq!(session.token().expose(), "t1");

    fake.push(reply(200, r#"{"networks": []}"#));
    let response = session
        .request(Request::get(
            "network",
            "/v2.0/networks?tags=kaas-cluster%3Dx",
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, json!({"networks": []}));
    assert_eq!(response.request_id.as_deref(), Some("req-200"));

    let seen = fake.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/identity/v3/auth/tokens");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"id": "u1", "password": "pw"}}},
            "scope": {"project": {"id": "p1"}},
        }})
    );
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].path, "/v2.0/networks?tags=kaas-cluster%3Dx");
    assert_eq!(seen[1].headers["x-auth-token"], "t1");
    assert_eq!(seen[1].headers["accept"], "application/json");
    assert_eq!(
        session.calls(),
        BTreeMap::from([("identity POST".into(), 1), ("network GET".into(), 1)])
    );
    assert_eq!(session.total_calls(), 2);
}

#[tokio::test]
async fn microversions_bodies_and_paths() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    fake.push(reply(202, r#"{"server": {"id": "s1"}}"#));
    let body = json!({"server": {"name": "n"}});
    let response = session
        .request(Request::post("compute", "/servers", &body).microversion("2.64"))
        .await
        .unwrap();
    assert_eq!(response.body["server"]["id"], "s1");
    fake.push(reply(204, ""));
    let response = session
        .request(Request::delete("compute", "servers/s1"))
        .await
        .unwrap();
    assert_eq!((response.status, response.body), (204, Value::Null));

    let seen = fake.seen();
    // The public endpoint of the region, its trailing `/` not doubled.
    assert_eq!(seen[1].path, "/compute/v2.1/servers");
    assert_eq!(seen[1].headers["openstack-api-version"], "compute 2.64");
    assert_eq!(seen[1].headers["x-openstack-nova-api-version"], "2.64");
    assert_eq!(seen[1].headers["content-type"], "application/json");
    assert_eq!(serde_json::from_str::<Value>(&seen[1].body).unwrap(), body);
    assert_eq!(seen[2].path, "/compute/v2.1/servers/s1");
    assert!(!seen[2].headers.contains_key("openstack-api-version"));
}

#[tokio::test]
async fn a_401_renews_the_token_once() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    fake.push(reply(401, r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#));
    fake.push(fake.token("t2", TimeDelta::hours(1)));
    fake.push(reply(200, "{}"));
    session
        .request(Request::get("network", "/v2.0/ports"))
        .await
        .unwrap();
    let seen = fake.seen();
    assert_eq!(seen[1].headers["x-auth-token"], "t1");
    assert_eq!(seen[2].path, "/identity/v3/auth/tokens");
    assert_eq!(seen[3].headers["x-auth-token"], "t2");
    assert_eq!(session.token().expose(), "t2");

    // A second 401 right after a renewal is the answer.
    fake.push(reply(401, r#"{"error": {"code": 401, "message": "nope"}}"#));
    fake.push(fake.token("t3", TimeDelta::hours(1)));
    fake.push(reply(
        401,
        r#"{"error": {"code": 401, "message": "still nope"}}"#,
    ));
    let err = session
        .request(Request::get("network", "/v2.0/ports"))
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(401));
    assert_eq!(err.message, "still nope");
    assert_eq!(session.calls()["identity POST"], 3);
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_before_the_request() {
    let fake = Fake::start().await;
    fake.push(fake.token("old", TimeDelta::seconds(-1)));
    let session = Session::new(fake.config()).await.unwrap();
    fake.push(fake.token("new", TimeDelta::hours(1)));
    fake.push(reply(200, "{}"));
    session.request(Request::get("network", "/")).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[1].path, "/identity/v3/auth/tokens");
    assert_eq!(seen[2].headers["x-auth-token"], "new");
}

#[tokio::test]
async fn a_given_token_is_validated_and_cannot_be_renewed() {
    let fake = Fake::start().await;
    let mut config = fake.config();
    config.auth = Auth::Token {
        token: Secret::new("given"),
        scope: Scope::default(),
    };
    let mut answer = fake.token("ignored", TimeDelta::hours(1));
    answer.status = 200;
    fake.push(answer);
    let session = Session::new(config.clone()).await.unwrap();
    assert_eq!(session.token().expose(), "given");
    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/identity/v3/auth/tokens");
    assert_eq!(seen[0].headers["x-auth-token"], "given");
    assert_eq!(seen[0].headers["x-subject-token"], "given");

    fake.push(reply(401, r#"{"error": {"code": 401, "message": "The request you have made requires authentication."}}"#));
    let err = session
        .request(Request::get("network", "/v2.0/networks"))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "The request you have made requires authentication. (the session's token was given in \
         the configuration and cannot be renewed)"
    );

    // Expired: said plainly, without a request.
    let mut answer = fake.token("ignored", TimeDelta::seconds(-5));
    answer.status = 200;
    fake.push(answer);
    let session = Session::new(config).await.unwrap();
    let before = session.total_calls();
    let err = session
        .request(Request::get("network", "/v2.0/networks"))
        .await
        .unwrap_err();
    assert!(err.message.contains("token auth cannot renew it"), "{err}");
    assert_eq!(session.total_calls(), before);
}

#[tokio::test]
async fn wrong_credentials_give_keystones_message() {
    let fake = Fake::start().await;
    fake.push(Reply {
        status: 401,
        headers: vec![("x-openstack-request-id".into(), "req-k".into())],
        body: r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#.into(),
    });
    let err = Session::new(fake.config()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "identity POST /auth/tokens: 401 The request you have made requires authentication. (request req-k)"
    );
}

// --- retries -----------------------------------------------------------------------------

#[tokio::test]
async fn idempotent_requests_are_retried_on_5xx_and_409() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    fake.push(reply(503, ""));
    fake.push(reply(409, r#"{"faultstring": "busy"}"#));
    fake.push(reply(200, "{}"));
    session
        .request(Request::get("network", "/x"))
        .await
        .unwrap();
    assert_eq!(session.calls()["network GET"], 3);

    for _ in 0..4 {
        fake.push(reply(500, "<html><body><h1>500</h1>Boom</body></html>"));
    }
    let err = session
        .request(Request::delete("network", "/x"))
        .await
        .unwrap_err();
    assert_eq!((err.status, err.message.as_str()), (Some(500), "500 Boom"));
    assert_eq!(session.calls()["network DELETE"], 4);
}

#[tokio::test]
async fn a_post_is_not_repeated_after_a_5xx() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    fake.push(reply(503, ""));
    let body = json!({});
    let err = session
        .request(Request::post("network", "/v2.0/networks", &body))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.message.as_str()),
        (Some(503), "503 Service Unavailable")
    );
    assert_eq!(session.calls()["network POST"], 1);

    // A conflict is refused work, so it is repeated; a quota is not.
    fake.push(reply(
        409,
        r#"{"faultstring": "Load Balancer x is immutable"}"#,
    ));
    fake.push(reply(201, r#"{"member": {}}"#));
    session
        .request(Request::post("network", "/members", &body))
        .await
        .unwrap();
    assert_eq!(session.calls()["network POST"], 3);
    fake.push(reply(
        409,
        r#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['network'].", "detail": ""}}"#,
    ));
    let err = session
        .request(Request::post("network", "/v2.0/networks", &body))
        .await
        .unwrap_err();
    assert!(err.is_quota());
    assert_eq!(session.calls()["network POST"], 4);
}

#[tokio::test]
async fn connection_failures_are_retried_even_for_a_post() {
    let fake = Fake::start().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    fake.push(fake.token("t1", TimeDelta::hours(1)));
    let mut config = fake.config();
    config
        .endpoint_override
        .insert("load-balancer".into(), format!("http://127.0.0.1:{port}/"));
    let session = Session::new(config).await.unwrap();
    let body = json!({});
    let err = session
        .request(Request::post(
            "load-balancer",
            "/v2/lbaas/loadbalancers",
            &body,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status, None);
    assert!(
        err.to_string()
            .starts_with("load-balancer POST /v2/lbaas/loadbalancers: "),
        "{err}"
    );
    assert_eq!(session.calls()["load-balancer POST"], 4);
}

#[test]
fn backoff_grows_jittered_and_capped() {
    for retry in 1..=10 {
        let delay = backoff(retry);
        let ceiling = BACKOFF_BASE
            .saturating_mul(1 << (retry - 1))
            .min(BACKOFF_CAP);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "{retry}: {delay:?}"
        );
    }
}

// --- pagination --------------------------------------------------------------------------

#[tokio::test]
async fn list_all_follows_links_and_next() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    // Nova: an absolute link, here with a host the client cannot reach (a proxy).
    fake.push(reply(200, r#"{"flavors": [{"id": "1"}], "flavors_links": [{"rel": "next", "href": "https://proxy.invalid/v2.1/flavors?limit=1&marker=1"}]}"#));
    fake.push(reply(200, r#"{"flavors": [{"id": "2"}], "flavors_links": [{"rel": "next", "href": "https://proxy.invalid/v2.1/flavors?limit=1&marker=2"}]}"#));
    fake.push(reply(200, r#"{"flavors": []}"#));
    let flavors = session
        .list_all(
            "compute",
            "/flavors?limit=1&is_public=true",
            "flavors",
            Some("2.61"),
        )
        .await
        .unwrap();
    assert_eq!(flavors, vec![json!({"id": "1"}), json!({"id": "2"})]);
    let paths: Vec<String> = fake.seen()[1..].iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/compute/v2.1/flavors?limit=1&is_public=true",
            "/compute/v2.1/flavors?is_public=true&limit=1&marker=1",
            "/compute/v2.1/flavors?is_public=true&limit=1&marker=2",
        ]
    );
    assert!(
        fake.seen()[2..]
            .iter()
            .all(|s| s.headers["x-openstack-nova-api-version"] == "2.61")
    );

    // Glance: a relative `next`.
    fake.push(reply(
        200,
        r#"{"images": [{"id": "a"}], "next": "/v2/images?marker=a&limit=1"}"#,
    ));
    fake.push(reply(
        200,
        r#"{"images": [{"id": "b"}], "first": "/v2/images"}"#,
    ));
    let images = session
        .list_all("network", "/v2/images?limit=1", "images", None)
        .await
        .unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(
        fake.seen().last().unwrap().path,
        "/v2/images?marker=a&limit=1"
    );
}

#[tokio::test]
async fn list_all_stops_a_loop_and_needs_the_key() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    let page = r#"{"ports": [{"id": "1"}], "ports_links": [{"rel": "next", "href": "http://x/v2.0/ports?marker=1"}]}"#;
    // The second page links to itself.
    fake.push(reply(200, page));
    fake.push(reply(200, page));
    let err = session
        .list_all("network", "/v2.0/ports", "ports", None)
        .await
        .unwrap_err();
    assert!(err.message.contains("pagination does not advance"), "{err}");

    fake.push(reply(200, r#"{"networks": []}"#));
    let err = session
        .list_all("network", "/v2.0/ports", "ports", None)
        .await
        .unwrap_err();
    assert_eq!(err.message, "the answer has no 'ports' list");
}

#[test]
fn next_request_paths() {
    let cases = [
        (
            "/flavors?limit=1",
            "http://h/v2.1/flavors?limit=1&marker=m",
            "/flavors?limit=1&marker=m",
        ),
        (
            "/v2.0/ports?tags=a&tags=b&limit=2",
            "/v2.0/ports?limit=2&marker=p",
            "/v2.0/ports?tags=a&tags=b&limit=2&marker=p",
        ),
        ("/v2/images", "/v2/images?marker=x", "/v2/images?marker=x"),
        ("/v2/images?limit=5", "/v2/images", "/v2/images?limit=5"),
    ];
    for (first, link, expected) in cases {
        assert_eq!(next_request_path(first, link), expected, "{first} {link}");
    }
}

// --- endpoints and paths -------------------------------------------------------------------

fn catalog() -> Vec<CatalogService> {
    serde_json::from_value(json!([
        {"type": "compute", "endpoints": [
            {"interface": "public", "region_id": "RegionOne", "url": "https://nova.one/v2.1"},
            {"interface": "public", "region_id": "RegionTwo", "url": "https://nova.two/v2.1"},
            {"interface": "internal", "region_id": "RegionOne", "url": "http://nova.internal/v2.1"},
        ]},
        {"type": "volumev3", "endpoints": [
            {"interface": "public", "region": "RegionOne", "url": "https://cinder/v3/p1"},
        ]},
        {"type": "identity", "endpoints": [
            {"interface": "public", "region_id": "RegionOne", "url": "https://keystone/identity"},
        ]},
    ]))
    .unwrap()
}

fn config(region: Option<&str>, interface: &str) -> CloudConfig {
    CloudConfig {
        name: None,
        auth_url: "https://auth/v3".into(),
        auth: Auth::Token {
            token: Secret::new("t"),
            scope: Scope::default(),
        },
        region_name: region.map(str::to_owned),
        interface: interface.into(),
        verify: true,
        cacert: None,
        endpoint_override: BTreeMap::new(),
    }
}

#[test]
fn endpoints_by_type_alias_region_interface_and_override() {
    let catalog = catalog();
    let pick = |config: &CloudConfig, service: &str| {
        select_endpoint(&catalog, config, service).map(|u| u.to_string())
    };
    let one = config(Some("RegionOne"), "public");
    assert_eq!(pick(&one, "compute").unwrap(), "https://nova.one/v2.1");
    assert_eq!(
        pick(&config(Some("RegionTwo"), "public"), "compute").unwrap(),
        "https://nova.two/v2.1"
    );
    assert_eq!(
        pick(&config(Some("RegionOne"), "internalURL"), "compute").unwrap(),
        "http://nova.internal/v2.1"
    );
    assert_eq!(pick(&one, "block-storage").unwrap(), "https://cinder/v3/p1");
    assert_eq!(pick(&one, "volume").unwrap(), "https://cinder/v3/p1");
    assert_eq!(
        pick(&one, "identity").unwrap(),
        "https://keystone/identity/v3"
    );
    assert_eq!(
        pick(&config(Some("RegionTwo"), "public"), "identity").unwrap(),
        "https://auth/v3"
    );

    let mut overridden = one.clone();
    overridden
        .endpoint_override
        .insert("volumev3".into(), "http://cinder.local/v3".into());
    assert_eq!(
        pick(&overridden, "block-storage").unwrap(),
        "http://cinder.local/v3"
    );

    assert_eq!(
        pick(&one, "load-balancer").unwrap_err(),
        "no public endpoint for 'load-balancer' in region RegionOne; the catalog has: compute \
         (public RegionOne, public RegionTwo, internal RegionOne), volumev3 (public RegionOne), \
         identity (public RegionOne)"
    );
    assert_eq!(
        select_endpoint(&[], &config(None, "public"), "network").unwrap_err(),
        "no public endpoint for 'network': the catalog is empty (is the token scoped to a project?)"
    );
    assert_eq!(
        select_endpoint(&[], &config(None, "public"), "block-storage").unwrap_err(),
        "no public endpoint for 'block-storage' (or volumev3, volumev2, volume, block-store): the \
         catalog is empty (is the token scoped to a project?)"
    );
}

#[test]
fn paths_join_without_double_slashes() {
    let cases = [
        (
            "http://h:8774/v2.1",
            "/servers/detail",
            "http://h:8774/v2.1/servers/detail",
        ),
        (
            "http://h:8774/v2.1/",
            "/servers/detail?limit=2",
            "http://h:8774/v2.1/servers/detail?limit=2",
        ),
        (
            "http://h:9696",
            "/v2.0/networks?name=a%20b",
            "http://h:9696/v2.0/networks?name=a%20b",
        ),
        (
            "http://h:9696/",
            "v2.0/networks",
            "http://h:9696/v2.0/networks",
        ),
        ("http://h/image", "", "http://h/image"),
        ("http://h/image/", "?x=1", "http://h/image?x=1"),
    ];
    for (base, path, expected) in cases {
        let joined = join_url(&Url::parse(base).unwrap(), path).unwrap();
        assert_eq!(joined.as_str(), expected, "{base} + {path}");
    }
}

#[test]
fn microversion_header_per_service() {
    let show = |service: &str| {
        microversion_headers(service, "3.1")
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        show("compute"),
        [
            "openstack-api-version: compute 3.1",
            "x-openstack-nova-api-version: 3.1"
        ]
    );
    assert_eq!(show("block-storage"), ["openstack-api-version: volume 3.1"]);
    assert_eq!(show("placement"), ["openstack-api-version: placement 3.1"]);
}

// --- auth bodies ---------------------------------------------------------------------------

#[test]
fn auth_bodies_per_method() {
    let password = Auth::Password {
        username: Some("demo".into()),
        user_id: None,
        password: Secret::new("pw"),
        user_domain_name: None,
        user_domain_id: Some("default".into()),
        scope: Scope {
            project_name: Some("demo".into()),
            project_domain_name: Some("Default".into()),
            ..Scope::default()
        },
    };
    assert_eq!(
        auth_body(&password).unwrap(),
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"id": "default"}, "password": "pw"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}},
        }})
    );

    let domain_scoped = Auth::Password {
        username: None,
        user_id: Some("u".into()),
        password: Secret::new("pw"),
        user_domain_name: None,
        user_domain_id: None,
        scope: Scope {
            domain_name: Some("Default".into()),
            ..Scope::default()
        },
    };
    assert_eq!(
        auth_body(&domain_scoped).unwrap()["auth"]["scope"],
        json!({"domain": {"name": "Default"}})
    );

    let by_id = Auth::ApplicationCredential {
        id: Some("ac".into()),
        name: Some("ignored".into()),
        secret: Secret::new("s"),
        username: None,
        user_id: None,
        user_domain_name: None,
        user_domain_id: None,
    };
    assert_eq!(
        auth_body(&by_id).unwrap(),
        json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": "ac", "secret": "s"},
        }}})
    );

    let by_name = Auth::ApplicationCredential {
        id: None,
        name: Some("kaas".into()),
        secret: Secret::new("s"),
        username: Some("alice".into()),
        user_id: None,
        user_domain_name: Some("Default".into()),
        user_domain_id: None,
    };
    assert_eq!(
        auth_body(&by_name).unwrap()["auth"]["identity"]["application_credential"],
        json!({"name": "kaas", "secret": "s", "user": {"name": "alice", "domain": {"name": "Default"}}})
    );

    let token = Auth::Token {
        token: Secret::new("t"),
        scope: Scope::project("p"),
    };
    assert_eq!(
        auth_body(&token).unwrap(),
        json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": "t"}},
            "scope": {"project": {"id": "p"}},
        }})
    );

    let unnamed = Auth::Password {
        username: Some("demo".into()),
        user_id: None,
        password: Secret::new("pw"),
        user_domain_name: None,
        user_domain_id: None,
        scope: Scope::default(),
    };
    assert_eq!(
        auth_body(&unnamed).unwrap_err(),
        "user 'demo' is given by name: a user domain (id or name) is needed"
    );
}

#[test]
fn expiry_formats() {
    let expected = "2026-11-25T07:35:26Z";
    for text in [
        "2026-11-25T07:35:26.000000Z",
        "2026-11-25T07:35:26Z",
        "2026-11-25T07:35:26",
        "2026-11-25T07:35:26.000000",
        "2026-11-25T08:35:26+01:00",
    ] {
        let parsed =
            parse_expires_at(text).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        assert_eq!(parsed.as_deref(), Some(expected), "{text}");
    }
    assert_eq!(parse_expires_at("tomorrow"), None);
}

#[test]
fn request_debug_leaves_the_body_out() {
    let body = json!({"application_credential": {"secret": "hunter2"}});
    let shown = format!(
        "{:?}",
        Request::post("identity", "/users/u/application_credentials", &body)
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<omitted>"), "{shown}");
}

#[tokio::test]
async fn debug_output_shows_no_token() {
    let fake = Fake::start().await;
    let session = fake.session().await;
    let shown = format!("{session:?}");
    assert!(shown.contains("u1") && !shown.contains("t1"), "{shown}");
}

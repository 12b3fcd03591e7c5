//! Tenants, tokens, roles, quotas and the audit log, through the real binary: two
//! tenants never see each other's clusters, roles and quotas are enforced, revoked
//! tokens stop working, secrets stay sealed and every mutating call is audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::{KAAS, Server, text};
use serde_json::{Value, json};

/// The CLI as the holder of `token`.
fn kaas_as(server: &Server, token: &str, args: &[&str]) -> Output {
    server.kaas_as(token, &[], args)
}

/// `kaas tenant create ARGS` as the operator, with the application credential's secret
/// in the environment as the CLI takes it.
fn create_tenant_with_secret(server: &Server, secret: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = ["tenant", "create"].iter().chain(args).copied().collect();
    server.kaas_as(
        &server.token(),
        &[("KAAS_APPLICATION_CREDENTIAL_SECRET", secret)],
        &args,
    )
}

fn ok_as(server: &Server, token: &str, args: &[&str]) -> String {
    let out = kaas_as(server, token, args);
    assert!(out.status.success(), "kaas {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A raw HTTP request as the holder of `token`: (status, body).
fn http(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    server.http(method, path, &headers, body)
}

fn names(list: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(list).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The names of the clusters the holder of `token` sees.
fn clusters_seen_by(server: &Server, token: &str) -> Vec<String> {
    names(&ok_as(server, token, &["cluster", "list", "-o", "json"]))
}

/// The secret part of `kaas_<tenant>_<id>_<secret>`.
fn secret_of(token: &str) -> &str {
    let secret = token.splitn(4, '_').nth(3).unwrap();
    assert!(secret.len() >= 40, "{token}");
    secret
}

fn new_token(server: &Server, tenant: &str, role: &str) -> String {
    let out = server.kaas(&["token", "create", "--tenant", tenant, "--role", role]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with(&format!("kaas_{tenant}_")), "{token}");
    token
}

#[test]
fn tenants_are_isolated_roles_and_quotas_hold_and_everything_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, 200.0);
    let admin = server.token();

    // The operator makes two tenants; globex brings an application credential.
    server.ok(&[
        "tenant",
        "create",
        "acme",
        "--project",
        "p-acme",
        "--max-clusters",
        "1",
    ]);
    let credential_secret = "sup3r-s3cret-credential-value";
    let out = create_tenant_with_secret(
        &server,
        credential_secret,
        &[
            "globex",
            "--max-machines",
            "4",
            "--application-credential-id",
            "ac-globex",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let tenants = server.ok(&["tenant", "list"]);
    assert!(
        tenants.contains("acme") && tenants.contains("globex"),
        "{tenants}"
    );
    let globex = server.kaas_json(&["tenant", "get", "globex", "-o", "json"]);
    assert_eq!(globex["status"]["credentialsStored"], true, "{globex}");
    assert!(!globex.to_string().contains(credential_secret));

    let acme = new_token(&server, "acme", "editor");
    let acme_viewer = new_token(&server, "acme", "viewer");
    let acme_admin = new_token(&server, "acme", "admin");
    let globex_editor = new_token(&server, "globex", "editor");

    // Each tenant creates a cluster and sees only its own.
    ok_as(
        &server,
        &acme,
        &[
            "cluster",
            "create",
            "a1",
            "--control-plane",
            "1",
            "--workers",
            "1",
        ],
    );
    ok_as(
        &server,
        &globex_editor,
        &[
            "cluster",
            "create",
            "g1",
            "--control-plane",
            "1",
            "--workers",
            "1",
        ],
    );
    assert_eq!(clusters_seen_by(&server, &acme), ["a1"]);
    assert_eq!(clusters_seen_by(&server, &globex_editor), ["g1"]);
    assert!(
        names(&server.ok(&["cluster", "list", "-o", "json"])).is_empty(),
        "the operator's default tenant has none"
    );

    // The other tenant's cluster does not exist for them: 404 on get, update, delete.
    let g1 = http(
        &server,
        "GET",
        "/v1/clusters/g1",
        Some(&globex_editor),
        None,
    )
    .1;
    for (method, body) in [("GET", None), ("PUT", Some(&g1)), ("DELETE", None)] {
        let (status, answer) = http(&server, method, "/v1/clusters/g1", Some(&acme), body);
        assert_eq!(status, 404, "{method}: {answer}");
    }
    for path in [
        "/v1/clusters/g1/events",
        "/v1/clusters/g1/machines",
        "/v1/clusters/g1/kubeconfig",
    ] {
        assert_eq!(
            http(&server, "GET", path, Some(&acme), None).0,
            404,
            "{path}"
        );
    }
    let out = kaas_as(&server, &acme, &["cluster", "delete", "g1"]);
    assert!(
        !out.status.success() && text(&out).contains("NotFound"),
        "{}",
        text(&out)
    );
    assert_eq!(clusters_seen_by(&server, &globex_editor), ["g1"]);

    // Roles: a viewer reads but may not create (403); only admins make tokens.
    assert_eq!(clusters_seen_by(&server, &acme_viewer), ["a1"]);
    let out = kaas_as(
        &server,
        &acme_viewer,
        &[
            "cluster",
            "create",
            "v1",
            "--control-plane",
            "1",
            "--workers",
            "0",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Forbidden (403)") && text(&out).contains("viewer"),
        "{}",
        text(&out)
    );
    let out = kaas_as(&server, &acme, &["token", "create", "--role", "viewer"]);
    assert!(text(&out).contains("Forbidden (403)"), "{}", text(&out));
    let out = kaas_as(&server, &acme_admin, &["tenant", "create", "evil"]);
    assert!(text(&out).contains("Forbidden (403)"), "{}", text(&out));
    let out = kaas_as(
        &server,
        &acme_admin,
        &["token", "create", "--tenant", "globex", "--role", "admin"],
    );
    assert!(text(&out).contains("NotFound (404)"), "{}", text(&out));
    assert_eq!(
        http(&server, "GET", "/v1/sim/inventory", Some(&acme_admin), None).0,
        403
    );

    // Quotas: refused with the reason, nothing created.
    let out = kaas_as(
        &server,
        &acme,
        &[
            "cluster",
            "create",
            "a2",
            "--control-plane",
            "1",
            "--workers",
            "0",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("QuotaExceeded (403)")
            && text(&out).contains("clusters: 1 in use + 1 requested > quota 1"),
        "{}",
        text(&out)
    );
    let out = kaas_as(
        &server,
        &globex_editor,
        &[
            "cluster",
            "create",
            "g2",
            "--control-plane",
            "1",
            "--workers",
            "2",
        ],
    );
    assert!(
        text(&out).contains("machines: 2 in use + 3 requested > quota 4"),
        "{}",
        text(&out)
    );
    let out = kaas_as(
        &server,
        &globex_editor,
        &[
            "cluster",
            "scale",
            "g1",
            "--pool",
            "workers",
            "--replicas",
            "4",
        ],
    );
    assert!(
        text(&out).contains("machines: 2 in use + 3 requested > quota 4"),
        "{}",
        text(&out)
    );
    assert_eq!(clusters_seen_by(&server, &acme), ["a1"]);
    assert_eq!(clusters_seen_by(&server, &globex_editor), ["g1"]);

    // No token, a bad one, a revoked one: 401.
    assert_eq!(http(&server, "GET", "/v1/clusters", None, None).0, 401);
    assert_eq!(
        http(&server, "POST", "/v1/clusters", None, Some(&json!({}))).0,
        401
    );
    assert_eq!(
        http(
            &server,
            "GET",
            "/v1/clusters",
            Some("kaas_acme_nope_nope"),
            None
        )
        .0,
        401
    );
    let forged = format!("{}x", &acme[..acme.len() - 1]);
    assert_eq!(
        http(&server, "GET", "/v1/clusters", Some(&forged), None).0,
        401
    );
    let listed = ok_as(&server, &acme_admin, &["token", "list", "-o", "json"]);
    assert!(
        !listed.contains("secretSha256") && !listed.contains(secret_of(&acme)),
        "{listed}"
    );
    let acme_id = acme.split('_').nth(2).unwrap();
    ok_as(&server, &acme_admin, &["token", "revoke", acme_id]);
    let (status, answer) = http(&server, "GET", "/v1/clusters", Some(&acme), None);
    assert_eq!(status, 401, "{answer}");
    let out = kaas_as(&server, &acme, &["cluster", "list"]);
    assert!(
        !out.status.success() && text(&out).contains("Unauthorized (401)"),
        "{}",
        text(&out)
    );

    // A token cannot outlive the token it was made with.
    let out = server.kaas(&[
        "token", "create", "--tenant", "acme", "--role", "admin", "--ttl", "1h",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let short_lived = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = kaas_as(
        &server,
        &short_lived,
        &["token", "create", "--role", "viewer", "--ttl", "30d"],
    );
    assert!(
        text(&out).contains("when the caller's own token expires"),
        "{}",
        text(&out)
    );
    ok_as(
        &server,
        &short_lived,
        &["token", "create", "--role", "viewer"],
    );
    let tokens: Value = serde_json::from_str(&ok_as(
        &server,
        &acme_admin,
        &["token", "list", "-o", "json"],
    ))
    .unwrap();
    let expiring = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["spec"]["expiresAt"].is_string())
        .count();
    assert_eq!(expiring, 2, "{tokens:#}");

    // A project is bound to one tenant at most.
    let out = server.kaas(&["tenant", "create", "copycat", "--project", "p-acme"]);
    assert!(
        text(&out).contains("bound to tenant \"acme\" already"),
        "{}",
        text(&out)
    );

    // A tenant with clusters stays.
    let out = server.kaas(&["tenant", "delete", "acme"]);
    assert!(
        text(&out).contains("still has 1 cluster(s): a1"),
        "{}",
        text(&out)
    );

    // The operator raises the quota; the operator's token acts in the tenant.
    server.ok(&["tenant", "update", "acme", "--max-clusters", "2"]);
    assert_eq!(
        server.kaas_json(&["tenant", "get", "acme", "-o", "json"])["spec"]["quotas"]["clusters"],
        2
    );
    server.ok(&[
        "--tenant",
        "acme",
        "cluster",
        "create",
        "a2",
        "--control-plane",
        "1",
        "--workers",
        "0",
    ]);
    assert_eq!(clusters_seen_by(&server, &acme_viewer), ["a1", "a2"]);

    // The audit log: every mutating call, who, tenant, result.
    let audit = server.kaas_json(&["audit", "list", "-o", "json"]);
    let entries = audit["items"].as_array().unwrap();
    let find = |who: &str, method: &str, path: &str, status: u16| {
        entries.iter().any(|e| {
            e["who"].as_str().unwrap().starts_with(who)
                && e["method"] == method
                && e["path"] == path
                && e["status"] == status
        })
    };
    assert!(find("admin", "POST", "/v1/tenants", 201), "{audit:#}");
    assert!(find("token:", "POST", "/v1/clusters", 201));
    assert!(
        find("token:", "POST", "/v1/clusters", 403),
        "quota and role refusals"
    );
    assert!(find("token:", "DELETE", "/v1/clusters/g1", 404));
    // Unauthenticated calls go to the log, not to the table anyone could fill.
    assert!(!entries.iter().any(|e| e["who"] == "anonymous"));
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains("\"anonymous\"") && log.contains("kaas::audit"),
        "no audit line for the anonymous call"
    );
    // Reads that hand out secrets are audited too, refused ones included.
    assert!(
        find("token:", "GET", "/v1/clusters/g1/kubeconfig", 404),
        "kubeconfigs are audited"
    );
    // The operator's token for tenant acme is filed under acme.
    assert!(
        entries
            .iter()
            .any(|e| e["who"] == "admin" && e["path"] == "/v1/tokens" && e["tenant"] == "acme")
    );
    assert!(find(
        "token:",
        "DELETE",
        &format!("/v1/tokens/{acme_id}"),
        204
    ));
    assert!(
        entries
            .iter()
            .all(|e| e["method"] != "GET" || e["path"].as_str().unwrap().ends_with("/kubeconfig")),
        "plain reads are not audited"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["at"].as_str().is_some_and(|a| a.ends_with('Z')))
    );
    // A tenant's admin reads only its tenant's entries.
    let own = ok_as(&server, &acme_admin, &["audit", "list", "-o", "json"]);
    let own: Value = serde_json::from_str(&own).unwrap();
    let own = own["items"].as_array().unwrap();
    assert!(
        !own.is_empty() && own.iter().all(|e| e["tenant"] == "acme"),
        "{own:#?}"
    );
    let out = kaas_as(
        &server,
        &acme_admin,
        &["audit", "list", "--tenant", "globex"],
    );
    assert!(text(&out).contains("Forbidden (403)"), "{}", text(&out));

    // No secret in clear text: not in the database (and its WAL), not in the log.
    let mut stored = Vec::new();
    for file in ["kaas.db", "kaas.db-wal"] {
        if let Ok(bytes) = std::fs::read(data.join(file)) {
            stored.extend(bytes);
        }
    }
    let log = std::fs::read(data.with_extension("log")).unwrap();
    for secret in [
        credential_secret.to_owned(),
        secret_of(&acme).to_owned(),
        secret_of(&globex_editor).to_owned(),
        admin.clone(),
    ] {
        let needle = secret.as_bytes();
        for (what, haystack) in [("database", &stored), ("log", &log)] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "a secret is in the {what} in clear text"
            );
        }
    }
}

#[test]
fn rotating_the_key_reseals_every_secret_so_the_old_key_can_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, 200.0);
    server.ok(&[
        "cluster",
        "create",
        "r",
        "--control-plane",
        "1",
        "--workers",
        "1",
        "--wait",
    ]);
    let out = create_tenant_with_secret(
        &server,
        "rotate-me-secret",
        &["acme", "--application-credential-id", "ac-1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    server.stop();

    let out = Command::new(KAAS)
        .args(["keys", "rotate", "--data-dir"])
        .arg(&data)
        .env_remove("KAAS_SECRET_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("added key k2"), "{said}");
    let rewrapped: u32 = said
        .split("re-wrapped ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    // The cluster's CA, its cloud credential, the machine's bootstrap data, the tenant's.
    assert!(rewrapped >= 4, "{said}");
    // Every secret is sealed under k2 now: the old key can go.
    std::fs::remove_file(data.join("secret-keys").join("k1.key")).unwrap();

    server.restart();
    server.wait_for("r", "Available with the new key", 60, |c| {
        c.is_some_and(|c| c["status"]["phase"] == "Available")
    });
    let kubeconfig = server.kaas(&["cluster", "kubeconfig", "r"]);
    assert!(kubeconfig.status.success(), "{}", text(&kubeconfig));
    let acme = server.kaas_json(&["tenant", "get", "acme", "-o", "json"]);
    assert_eq!(acme["status"]["credentialsStored"], true);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        !log.contains("cannot open"),
        "a secret could not be opened: {log}"
    );
}

/// A cluster body: a control plane of `cp` and one pool of `workers`, of these flavors.
fn cluster_body(name: &str, cp: (u32, &str), workers: (u32, &str)) -> Value {
    json!({
        "apiVersion": "kaas.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "controlPlane": {"replicas": cp.0, "flavor": cp.1},
            "nodePools": [{"name": "workers", "replicas": workers.0, "flavor": workers.1}]
        }
    })
}

#[test]
fn vcpu_quotas_count_the_clouds_flavors_and_flavors_it_lacks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    server.ok(&["tenant", "create", "initech", "--max-vcpus", "10"]);
    let editor = new_token(&server, "initech", "editor");

    // 1 × m1.medium (2 vCPUs) + 2 × SCS-4V-16 (4 vCPUs): exactly the quota.
    let (status, body) = http(
        &server,
        "POST",
        "/v1/clusters",
        Some(&editor),
        Some(&cluster_body("one", (1, "m1.medium"), (2, "SCS-4V-16"))),
    );
    assert_eq!(status, 201, "{body}");

    // One more vCPU, in another cluster or in this one, is refused.
    let out = kaas_as(
        &server,
        &editor,
        &[
            "cluster",
            "create",
            "two",
            "--control-plane",
            "1",
            "--control-plane-flavor",
            "m1.tiny",
            "--workers",
            "1",
            "--worker-flavor",
            "m1.tiny",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "QuotaExceeded (403): tenant \"initech\" would exceed its quota: vCPUs: 10 in use + 2 requested > quota 10"
        ),
        "{}",
        text(&out)
    );
    let (_, mut one) = http(&server, "GET", "/v1/clusters/one", Some(&editor), None);
    one["metadata"]["resourceVersion"] = json!("");
    // The controller writes the status meanwhile: replace whatever version is current.
    one["metadata"]["resourceVersion"] = json!("");
    one["spec"]["nodePools"][0]["flavor"] = json!("SCS-8V-32");
    let (status, body) = http(
        &server,
        "PUT",
        "/v1/clusters/one",
        Some(&editor),
        Some(&one),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("vCPUs: 10 in use + 8 requested > quota 10"),
        "{body}"
    );

    // A flavor the cloud does not offer is refused by name and field, whatever its name
    // seems to say, and nothing is created.
    let (status, body) = http(
        &server,
        "POST",
        "/v1/clusters",
        Some(&editor),
        Some(&cluster_body("three", (1, "x1.custom"), (1, "SCS-64V-256"))),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "Invalid");
    assert_eq!(
        body["details"],
        json!([
            {"field": "spec.controlPlane.flavor", "reason": "flavor \"x1.custom\" is not offered by the cloud"},
            {"field": "spec.nodePools[0].flavor", "reason": "flavor \"SCS-64V-256\" is not offered by the cloud"}
        ])
    );
    assert_eq!(clusters_seen_by(&server, &editor), ["one"]);

    // The tenant sees what its cloud offers, smallest first, as quotas count it.
    let flavors: Value =
        serde_json::from_str(&ok_as(&server, &editor, &["flavor", "list", "-o", "json"])).unwrap();
    let items = flavors["items"].as_array().unwrap();
    assert_eq!(items[0]["name"], "m1.tiny", "{flavors}");
    let scs = items.iter().find(|f| f["name"] == "SCS-4V-16").unwrap();
    assert_eq!(
        (&scs["vcpus"], &scs["ramMiB"], &scs["diskGiB"]),
        (&json!(4), &json!(16384), &json!(0))
    );
    let vcpus: Vec<u64> = items.iter().map(|f| f["vcpus"].as_u64().unwrap()).collect();
    assert!(vcpus.is_sorted(), "{vcpus:?}");
    let table = ok_as(&server, &editor, &["flavor", "list"]);
    assert!(
        table.starts_with("NAME") && table.contains("SCS-4V-16") && table.contains("volume"),
        "{table}"
    );

    // Fewer vCPUs are always allowed. (Without its resourceVersion, the replace does
    // not race the controller's status writes.)
    let (_, mut one) = http(&server, "GET", "/v1/clusters/one", Some(&editor), None);
    one["spec"]["nodePools"][0]["replicas"] = json!(1);
    one["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (status, body) = http(
        &server,
        "PUT",
        "/v1/clusters/one",
        Some(&editor),
        Some(&one),
    );
    assert_eq!(status, 200, "{body}");
}

/// The (tenant, name) of each row of a `cluster list --all-tenants` table, after
/// checking that its columns are the usual ones behind a TENANT column.
fn tenant_rows(table: &str) -> Vec<(String, String)> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "TENANT",
            "NAME",
            "PHASE",
            "CONTROL-PLANE",
            "WORKERS",
            "VERSION",
            "ENDPOINT",
            "AGE"
        ],
        "{table}"
    );
    lines
        .map(|line| {
            let mut cells = line.split_whitespace();
            let tenant = cells.next().unwrap().to_owned();
            let name = cells.next().unwrap().to_owned();
            (tenant, name)
        })
        .collect()
}

#[test]
fn the_operator_lists_every_tenants_clusters_and_no_tenant_can() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    let admin = server.token();
    server.ok(&["tenant", "create", "acme"]);
    server.ok(&["tenant", "create", "globex"]);
    let acme = new_token(&server, "acme", "editor");
    let globex = new_token(&server, "globex", "editor");
    let create = |token: &str, name: &str| {
        ok_as(
            &server,
            token,
            &[
                "cluster",
                "create",
                name,
                "--control-plane",
                "1",
                "--workers",
                "0",
            ],
        );
    };
    create(&acme, "a1");
    create(&acme, "shared");
    create(&globex, "shared");
    create(&admin, "d1");

    // The operator's table: every tenant's clusters, by tenant then name, TENANT first.
    let expected: Vec<(String, String)> = [
        ("acme", "a1"),
        ("acme", "shared"),
        ("default", "d1"),
        ("globex", "shared"),
    ]
    .iter()
    .map(|(t, n)| ((*t).to_owned(), (*n).to_owned()))
    .collect();
    for flag in ["--all-tenants", "-A"] {
        let table = ok_as(&server, &admin, &["cluster", "list", flag]);
        assert_eq!(tenant_rows(&table), expected, "{flag}:\n{table}");
    }
    // Without it, the operator still sees the tenant it acts in, without the column.
    let own = ok_as(&server, &admin, &["cluster", "list"]);
    assert!(own.starts_with("NAME "), "{own}");
    assert_eq!(clusters_seen_by(&server, &admin), ["d1"]);
    let acme_own = ok_as(&server, &admin, &["--tenant", "acme", "cluster", "list"]);
    assert!(
        acme_own.contains("a1") && !acme_own.contains("d1"),
        "{acme_own}"
    );

    // JSON and YAML carry each cluster's tenant.
    let list: Value = serde_json::from_str(&ok_as(
        &server,
        &admin,
        &["cluster", "list", "-A", "-o", "json"],
    ))
    .unwrap();
    let seen: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["metadata"]["tenant"].as_str().unwrap().to_owned(),
                c["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, expected, "{list}");
    let yaml = ok_as(&server, &admin, &["cluster", "list", "-A", "-o", "yaml"]);
    for tenant in ["acme", "default", "globex"] {
        assert!(yaml.contains(&format!("tenant: {tenant}")), "{yaml}");
    }

    // A tenant's token may not look across tenants: 403 with a clear message, and the
    // CLI fails naming the flag.
    let out = kaas_as(&server, &acme, &["cluster", "list", "--all-tenants"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(out.stdout.is_empty(), "{said}");
    for part in [
        "--all-tenants",
        "Forbidden (403)",
        "only the operator may list every tenant's clusters",
        "tenant \"acme\"",
    ] {
        assert!(said.contains(part), "{part:?} not in {said}");
    }
    let (status, answer) = http(
        &server,
        "GET",
        "/v1/clusters?allTenants=true",
        Some(&acme),
        None,
    );
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["code"], "Forbidden", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("allTenants"),
        "{answer}"
    );
    // Asking for one's own tenant only is still fine, and so is `false`.
    let (status, answer) = http(
        &server,
        "GET",
        "/v1/clusters?allTenants=false",
        Some(&acme),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"].as_array().unwrap().len(), 2, "{answer}");
    // A value that is no boolean, or a parameter the API does not know, is refused.
    for path in [
        "/v1/clusters?allTenants=yes-please",
        "/v1/clusters?all=true",
    ] {
        let (status, answer) = http(&server, "GET", path, Some(&admin), None);
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["code"], "BadRequest", "{path}: {answer}");
    }

    // get and delete reach another tenant's cluster with --tenant, as before.
    let out = server.kaas(&["cluster", "get", "a1"]);
    assert!(
        !out.status.success() && text(&out).contains("NotFound"),
        "{}",
        text(&out)
    );
    let got = server.kaas_json(&[
        "--tenant", "globex", "cluster", "get", "shared", "-o", "json",
    ]);
    assert_eq!(got["metadata"]["tenant"], "globex", "{got}");
    server.ok(&[
        "cluster", "delete", "shared", "--tenant", "globex", "--wait",
    ]);
    let out = server.kaas(&["--tenant", "globex", "cluster", "get", "shared"]);
    assert!(
        !out.status.success() && text(&out).contains("NotFound"),
        "{}",
        text(&out)
    );
    // acme's cluster of the same name is untouched.
    let table = ok_as(&server, &admin, &["cluster", "list", "-A"]);
    assert_eq!(
        tenant_rows(&table),
        expected[..3].to_vec(),
        "after deleting globex/shared:\n{table}"
    );
}

/// Lists through the CLI page after page (`--chunk-size`), by label selector and by
/// phase; and the operator's quotas: the default tenant's from `--default-quota` (on
/// each start that gives it), any tenant's with `tenant update --quota`, the simulated
/// cloud's from `--sim-quota`.
#[test]
fn the_cli_pages_and_filters_lists_and_the_operator_sets_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = [
        "--default-quota",
        "clusters=12,vcpus=300",
        "--sim-quota",
        "servers=2",
    ];
    let mut server = Server::start_with(&data, 200.0, &flags);
    let admin = server.token();
    let quotas = |server: &Server, tenant: &str| {
        server.kaas_json(&["tenant", "get", tenant, "-o", "json"])["spec"]["quotas"].clone()
    };
    assert_eq!(
        quotas(&server, "default"),
        json!({"clusters": 12, "machines": 500, "vcpus": 300})
    );

    // Seven clusters of one control plane each, labelled by parity.
    let expected: Vec<String> = (0..7).map(|i| format!("c-{i}")).collect();
    for (i, name) in expected.iter().enumerate() {
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        let body = json!({"apiVersion": "kaas.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "labels": {"env": env}},
            "spec": {"controlPlane": {"replicas": 1}, "nodePools": [{"name": "workers", "replicas": 0}]}});
        let (status, answer) = http(&server, "POST", "/v1/clusters", Some(&admin), Some(&body));
        assert_eq!(status, 201, "{answer}");
    }
    let list = |args: &[&str]| {
        let args: Vec<&str> = ["cluster", "list", "-o", "json"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        names(&ok_as(&server, &admin, &args))
    };
    // Page after page, whatever the page's size, each cluster once and in order.
    for args in [
        &["--chunk-size", "2"][..],
        &["--chunk-size", "1"],
        &["--limit", "3"],
        &["--chunk-size", "0"],
        &[],
    ] {
        assert_eq!(list(args), expected, "{args:?}");
    }
    let table = ok_as(&server, &admin, &["cluster", "list", "--chunk-size", "2"]);
    assert_eq!(table.lines().count(), 8, "{table}");
    // By label selector, with pages too.
    assert_eq!(
        list(&["-l", "env=prod", "--chunk-size", "1"]),
        ["c-0", "c-2", "c-4", "c-6"]
    );
    assert_eq!(
        list(&["--selector", "env notin (prod)", "--chunk-size", "2"]),
        ["c-1", "c-3", "c-5"]
    );
    assert!(list(&["-l", "!env"]).is_empty());
    // Bad filters: non-zero, naming the parameter and the reason.
    for (args, said) in [
        (
            &["-l", "env in (prod"][..],
            ["labelSelector", "lack a closing ')'"],
        ),
        (
            &["--phase", "Running"],
            ["phase", "\"Running\" is not a phase"],
        ),
    ] {
        let args: Vec<&str> = ["cluster", "list"].iter().chain(args).copied().collect();
        let out = server.kaas(&args);
        assert!(!out.status.success(), "{args:?}");
        for part in said {
            assert!(text(&out).contains(part), "{part:?} not in {}", text(&out));
        }
    }

    // The simulated project holds two servers: the others are refused by its quota.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let refused = expected.iter().any(|name| {
            server
                .ok(&["cluster", "events", name])
                .contains("Quota exceeded")
        });
        let servers = server
            .inventory()
            .iter()
            .filter(|r| r["kind"] == "server")
            .count();
        assert!(servers <= 2, "{servers} servers");
        if refused {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cluster was refused by the simulated cloud's quota of 2 servers"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // By phase: the clusters the cloud's quota refused have failed (a quota is no
    // trouble that passes by itself); only they are listed, page after page.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let failed = loop {
        let failed: Value = serde_json::from_str(&ok_as(
            &server,
            &admin,
            &[
                "cluster",
                "list",
                "--phase",
                "Failed",
                "--chunk-size",
                "1",
                "-o",
                "json",
            ],
        ))
        .unwrap();
        let items = failed["items"].as_array().unwrap().clone();
        if items.len() >= 2 {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than two clusters failed: {failed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for cluster in &failed {
        assert_eq!(cluster["status"]["phase"], "Failed", "{cluster}");
    }
    assert!(list(&["--phase", "Deleting"]).is_empty());
    let failed_prod = list(&["--phase", "Failed", "-l", "env=prod"]);
    assert!(
        failed_prod
            .iter()
            .all(|name| ["c-0", "c-2", "c-4", "c-6"].contains(&name.as_str())),
        "{failed_prod:?}"
    );

    // Any tenant's quotas, from the CLI; the change is audited.
    server.ok(&["tenant", "create", "acme"]);
    server.ok(&[
        "tenant",
        "update",
        "acme",
        "--quota",
        "clusters=3,machines=9",
    ]);
    assert_eq!(
        quotas(&server, "acme"),
        json!({"clusters": 3, "machines": 9, "vcpus": 2000})
    );
    let out = server.kaas(&["tenant", "update", "acme", "--quota", "cpus=3"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("\"cpus\": unknown quota; the keys are clusters, machines and vcpus"),
        "{}",
        text(&out)
    );
    let audit: Value = serde_json::from_str(&ok_as(
        &server,
        &admin,
        &["audit", "list", "--tenant", "acme", "-o", "json"],
    ))
    .unwrap();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["method"] == "PUT" && e["path"] == "/v1/tenants/acme" && e["status"] == 200),
        "{audit}"
    );
    assert_eq!(
        names(&ok_as(
            &server,
            &admin,
            &["tenant", "list", "--chunk-size", "1", "-o", "json"]
        )),
        ["acme", "default"]
    );

    // The default tenant's quotas follow the flag on each start that gives it; what it
    // does not name stays as the operator set it.
    server.ok(&["tenant", "update", "default", "--quota", "machines=77"]);
    server.kill();
    let mut server = Server::start_with(&data, 200.0, &["--default-quota", "clusters=15"]);
    assert_eq!(
        quotas(&server, "default"),
        json!({"clusters": 15, "machines": 77, "vcpus": 300})
    );
    server.kill();
    let server = Server::start(&data, 200.0);
    assert_eq!(
        quotas(&server, "default"),
        json!({"clusters": 15, "machines": 77, "vcpus": 300})
    );
    drop(server);

    // Bad quota flags: the server does not start, and says which key and why.
    for (flag, value, said) in [
        (
            "--default-quota",
            "clusters=lots",
            "clusters: \"lots\" is not a whole number",
        ),
        (
            "--default-quota",
            "clusters=1,nodes=2",
            "\"nodes\": unknown quota",
        ),
        (
            "--sim-quota",
            "volumes=3",
            "\"volumes\": unknown quota of the simulated cloud",
        ),
        (
            "--sim-quota",
            "servers=-2",
            "servers: \"-2\" is not a whole number",
        ),
    ] {
        let out = Command::new(KAAS)
            .args(["server", "--data-dir"])
            .arg(dir.path().join("never"))
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        assert!(text(&out).contains(said), "{flag} {value}: {}", text(&out));
        assert!(text(&out).contains(flag), "{}", text(&out));
    }
    assert!(!dir.path().join("never").exists());
}

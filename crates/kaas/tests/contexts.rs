//! Contexts: `kaas login` saves a server and token, later commands use them without
//! KAAS_SERVER or KAAS_TOKEN, `kaas context use` switches, `kaas logout` forgets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{KAAS, Server, text};

/// The CLI as a user with saved contexts runs it: no KAAS_* connection variables, its
/// own config file, and a working directory without a ./kaas-data/admin.token.
struct User {
    config: PathBuf,
    home: PathBuf,
}

impl User {
    fn new(dir: &Path) -> Self {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Self {
            config: dir.join("kaas").join("config.yaml"),
            home,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KAAS);
        cmd.args(args)
            .env_remove("KAAS_SERVER")
            .env_remove("KAAS_TOKEN")
            .env_remove("KAAS_CONTEXT")
            .env("KAAS_CONFIG", &self.config)
            .current_dir(&self.home);
        cmd
    }

    fn kaas(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// With standard input (`--token-stdin`).
    fn kaas_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kaas(args);
        assert!(
            out.status.success(),
            "kaas {args:?} failed:\n{}",
            text(&out)
        );
        text(&out)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.kaas(args);
        assert!(
            !out.status.success(),
            "kaas {args:?} succeeded:\n{}",
            text(&out)
        );
        text(&out)
    }

    fn mode(&self) -> u32 {
        std::fs::metadata(&self.config)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }
}

#[test]
fn login_saves_a_private_context_that_later_commands_use() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    let user = User::new(dir.path());
    let url = server.url();
    let token = server.token();
    server.ok(&["cluster", "create", "web", "--workers", "1"]);

    // Without a context (and no local token in the working directory) the server
    // refuses.
    let out = user.fails(&["--server", &url, "cluster", "list"]);
    assert!(out.contains("401"), "{out}");

    let out = user.fails(&["login", "--server", &url, "--token", "not-the-token"]);
    assert!(out.contains("refused the token"), "{out}");
    assert!(out.contains("nothing was saved"), "{out}");
    assert!(!user.config.exists(), "a failed login saved a config");

    let out = user.ok(&["login", "--server", &url, "--token", &token]);
    let name = format!("127.0.0.1:{}", server.port);
    assert!(
        out.contains(&format!("Logged in to {url} as context {name}")),
        "{out}"
    );
    assert_eq!(user.mode(), 0o600);
    assert_eq!(
        std::fs::metadata(user.config.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let saved = std::fs::read_to_string(&user.config).unwrap();
    assert!(
        saved.contains(&format!("currentContext: {name}")),
        "{saved}"
    );

    let list = user.ok(&["cluster", "list"]);
    assert!(list.contains("web"), "{list}");
    assert_eq!(user.ok(&["context", "current"]).trim(), name);

    // A config file that does not parse is reported, and left alone.
    std::fs::write(&user.config, "contexts: [ {name: \n").unwrap();
    let out = user.fails(&["cluster", "list"]);
    assert!(out.contains(&user.config.display().to_string()), "{out}");
    let out = user.fails(&["login", "--server", &url, "--token", &token]);
    assert!(out.contains("is not a kaas config file"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&user.config).unwrap(),
        "contexts: [ {name: \n"
    );
}

#[test]
fn contexts_are_switched_listed_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 200.0);
    let user = User::new(dir.path());
    let url = server.url();
    let token = server.token();

    // The token from standard input: not in the shell's history.
    let out = user.kaas_stdin(
        &["login", "--server", &url, "--token-stdin", "--name", "good"],
        &format!("{token}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    // A second context for the same server whose token no longer works (as after the
    // token was revoked): written into the file as it would be left.
    let saved = std::fs::read_to_string(&user.config).unwrap();
    let mut file: serde_json::Value = serde_saphyr::from_str(&saved).unwrap();
    file["contexts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "stale", "server": url, "token": "revoked"}));
    std::fs::write(&user.config, serde_saphyr::to_string(&file).unwrap()).unwrap();

    user.ok(&["cluster", "list"]);
    let list = user.ok(&["context", "list"]);
    assert!(!list.contains(&token), "the token was shown:\n{list}");
    assert!(!list.contains("revoked"), "the token was shown:\n{list}");
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("CURRENT"), "{list}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('*') && l.contains("good") && l.contains(&url)),
        "{list}"
    );
    assert!(
        lines
            .iter()
            .any(|l| !l.starts_with('*') && l.contains("stale")),
        "{list}"
    );

    assert!(user.ok(&["context", "use", "stale"]).contains("stale"));
    assert_eq!(user.ok(&["context", "current"]).trim(), "stale");
    let out = user.fails(&["cluster", "list"]);
    assert!(out.contains("401"), "{out}");
    user.ok(&["--context", "good", "cluster", "list"]);
    let out = user.fails(&["context", "use", "nope"]);
    assert!(out.contains("no context \"nope\""), "{out}");
    assert!(out.contains("good, stale"), "{out}");
    assert_eq!(user.ok(&["context", "current"]).trim(), "stale");

    user.ok(&["context", "use", "good"]);
    user.ok(&["cluster", "list"]);
    let mut with_env = user.command(&["cluster", "list"]);
    let out = with_env.env("KAAS_CONTEXT", "stale").output().unwrap();
    assert!(!out.status.success(), "KAAS_CONTEXT was ignored");
    // The environment outranks the contexts.
    let mut with_env = user.command(&["cluster", "list"]);
    let out = with_env
        .env("KAAS_CONTEXT", "stale")
        .env("KAAS_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Another server named on the command line never gets the context's token.
    let (other, request) = one_request();
    let out = user.fails(&["--server", &other, "cluster", "list"]);
    assert!(out.contains("401"), "{out}");
    let request = request.join().unwrap().to_ascii_lowercase();
    assert!(request.starts_with("get /v1/clusters"), "{request}");
    assert!(!request.contains("authorization"), "{request}");

    assert!(user.ok(&["logout"]).contains("good"));
    assert_eq!(user.mode(), 0o600);
    let list = user.ok(&["context", "list"]);
    assert!(!list.contains("good"), "{list}");
    assert!(
        user.fails(&["context", "current"])
            .contains("no current context")
    );
    user.ok(&["context", "delete", "stale"]);
    let out = user.fails(&["logout"]);
    assert!(out.contains("no current context"), "{out}");
    let saved = std::fs::read_to_string(&user.config).unwrap();
    assert!(!saved.contains(&token), "{saved}");
}

/// A server that answers one request with 401 and hands the request over.
fn one_request() -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"code":"Unauthorized","message":"no token"}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (url, handle)
}

//! A kaas server process and the CLI, driven as a user would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KAAS: &str = env!("CARGO_BIN_EXE_kaas");

/// The project's local stacks (`dev/stacks`), whose addons come from its own charts in
/// the local registry: every test server offers them, and clusters whose spec names no
/// stack get [`DEFAULT_LOCAL_STACK`].
pub const LOCAL_STACKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dev/stacks");
pub const DEFAULT_LOCAL_STACK: &str = "local-1.36";
/// Where `dev/charts/publish.sh` puts the local stacks' charts.
const LOCAL_REGISTRY: &str = "127.0.0.1:5100";

/// Copies the local stacks into `dir`, for a test that adds stacks of its own beside
/// them (`--stacks-dir dir`).
pub fn copy_local_stacks(dir: &Path) {
    for entry in std::fs::read_dir(LOCAL_STACKS).unwrap() {
        let from = entry.unwrap().path();
        let to = dir.join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(from.join("stack.yaml"), to.join("stack.yaml")).unwrap();
    }
}

/// A local stack's `stack.yaml`, for a test that derives a stack of its own from it.
pub fn local_stack(name: &str) -> String {
    std::fs::read_to_string(Path::new(LOCAL_STACKS).join(name).join("stack.yaml")).unwrap()
}

/// Fails, saying what to run, unless the local registry serves the local stacks'
/// charts: without them no cluster's addons would ever be ready.
fn require_local_charts() {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(LOCAL_REGISTRY)
            .map_err(|e| format!("nothing answers at {LOCAL_REGISTRY}: {e}"))?;
        write!(
            stream,
            "GET /v2/charts/cilium/tags/list HTTP/1.1\r\nHost: {LOCAL_REGISTRY}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        if answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!(
                "{LOCAL_REGISTRY} has no charts/cilium: {}",
                answer.lines().next().unwrap_or("")
            ))
        }
    });
    if let Err(e) = checked {
        panic!(
            "the local stacks' charts are not in the local registry ({e}): run \
             `dev/charts/publish.sh target/debug/kaas` (dev/test.sh does)"
        );
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub data_dir: PathBuf,
    pub port: u16,
    pub speed: f64,
    extra: Vec<String>,
    /// Environment variables the server runs with.
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    pub fn start(data_dir: &Path, speed: f64) -> Self {
        Self::start_with(data_dir, speed, &[])
    }

    /// A server with extra flags (`--sim-faults …`).
    pub fn start_with(data_dir: &Path, speed: f64, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, speed, extra, &[])
    }

    /// A server with extra flags and environment variables (`OS_CLIENT_CONFIG_FILE`).
    pub fn start_with_env(
        data_dir: &Path,
        speed: f64,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut s = Self {
            data_dir: data_dir.to_owned(),
            port: free_port(),
            speed,
            extra: extra.iter().map(|e| (*e).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        s.spawn();
        s
    }

    /// Starts the server (again, after [`Server::kill`]) on the same port and data.
    pub fn spawn(&mut self) {
        require_local_charts();
        let stacks: &[&str] = if self.extra.iter().any(|e| e == "--stacks-dir") {
            &["--default-stack", DEFAULT_LOCAL_STACK]
        } else {
            &[
                "--stacks-dir",
                LOCAL_STACKS,
                "--default-stack",
                DEFAULT_LOCAL_STACK,
            ]
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(KAAS)
            .args(["server", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--sim-speed", &self.speed.to_string()])
            .args(stacks)
            .args(&self.extra)
            .env("KAAS_LOG", "info,kaas_controller=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not start; see {}",
                self.data_dir.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The CLI's config file (saved contexts) for this test, beside the data directory.
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.with_extension("config.yaml")
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs the CLI against this server.
    pub fn kaas(&self, args: &[&str]) -> Output {
        self.kaas_as(&self.token(), &[], args)
    }

    /// Runs the CLI against this server as the holder of `token`, with `env` set.
    pub fn kaas_as(&self, token: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(KAAS)
            .args(args)
            .env("KAAS_SERVER", self.url())
            .env("KAAS_TOKEN", token)
            // Never the developer's own contexts (~/.config/kaas/config.yaml).
            .env("KAAS_CONFIG", self.config_file())
            .env_remove("KAAS_CONTEXT")
            .env_remove("KAAS_TENANT")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs the CLI and parses its JSON output; panics with stderr on failure.
    pub fn kaas_json(&self, args: &[&str]) -> Value {
        let out = self.kaas(args);
        assert!(
            out.status.success(),
            "kaas {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn cluster(&self, name: &str) -> Option<Value> {
        let out = self.kaas(&["cluster", "get", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn machines(&self, cluster: &str) -> Vec<Value> {
        self.kaas_json(&["machine", "list", cluster, "-o", "json"])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls until `done` holds for the cluster (None: gone), or panics after `secs`.
    pub fn wait_for(
        &self,
        name: &str,
        what: &str,
        secs: u64,
        done: impl Fn(Option<&Value>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let cluster = self.cluster(name);
            if done(cluster.as_ref()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster {name} never became {what}: {cluster:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the CLI and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kaas(args);
        assert!(
            out.status.success(),
            "kaas {args:?} failed:\n{}",
            text(&out)
        );
        text(&out)
    }

    /// A plain HTTP GET of an open endpoint (`/metrics`), body only.
    pub fn get_open(&self, path: &str) -> String {
        self.request("GET", path, &[], None).1
    }

    /// A raw HTTP/1.1 request to the server with extra `headers` and a JSON `body`:
    /// the status and the body's text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// [`Server::request`] with the answer parsed as JSON (`Null` when it is not).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, body) = self.request(method, path, headers, body);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn inventory(&self) -> Vec<Value> {
        self.kaas_json(&["sim", "inventory", "-o", "json"])["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

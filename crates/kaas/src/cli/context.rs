//! Contexts, as kubectl has them: `kaas login` checks a server and token and saves them
//! under a name in the user's config file; `kaas context` lists, switches and forgets
//! them. Every command that connects goes through [`resolve`], the one place that decides
//! which server and token to use.
//!
//! **Invariant:** a context's token is only ever sent to that context's server.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::Connection;
use super::client::{self, Client};
use super::output::table;

/// Where a local `kaas server` listens unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7443";

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Read the token from standard input instead of --token (keeps it out of the
    /// shell's history).
    #[arg(long)]
    pub token_stdin: bool,
    /// The context's name (default: the server's host:port).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The context to forget (default: the current one).
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// The saved contexts, the current one marked `*` (tokens are never shown).
    List,
    /// Make a context the current one.
    Use { name: String },
    /// Forget a context and its token.
    Delete { name: String },
    /// The name of the context commands use.
    Current,
}

/// The config file: the saved contexts and which one is current.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<SavedContext>,
}

/// A server and the token to send it, under a name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedContext {
    pub name: String,
    pub server: String,
    pub token: String,
}

impl fmt::Debug for SavedContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedContext")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ContextFile {
    /// The context of this name; the error names it and lists the known ones.
    pub fn find(&self, name: &str) -> Result<&SavedContext> {
        self.contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> anyhow::Error {
        if self.contexts.is_empty() {
            return anyhow::anyhow!(
                "no context {name:?}: there are no contexts yet; save one with kaas login --server URL --token TOKEN"
            );
        }
        let known: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
        anyhow::anyhow!("no context {name:?}; known contexts: {}", known.join(", "))
    }

    /// Adds the context, or replaces the one of the same name, and makes it current.
    pub fn save_current(&mut self, context: SavedContext) {
        self.current_context = Some(context.name.clone());
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(existing) => *existing = context,
            None => self.contexts.push(context),
        }
    }

    /// Removes a context; the current context is unset when it was this one.
    pub fn remove(&mut self, name: &str) -> Result<SavedContext> {
        let Some(index) = self.contexts.iter().position(|c| c.name == name) else {
            return Err(self.unknown(name));
        };
        let removed = self.contexts.remove(index);
        if self.current_context.as_deref() == Some(name) {
            self.current_context = None;
        }
        Ok(removed)
    }
}

/// What the command line asked for: `--server`, `--token`, `--context`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub server: Option<&'a str>,
    pub token: Option<&'a str>,
    pub context: Option<&'a str>,
}

impl<'a> From<&'a Connection> for Flags<'a> {
    fn from(conn: &'a Connection) -> Self {
        Self {
            server: conn.server.as_deref(),
            token: conn.token.as_deref(),
            context: conn.context.as_deref(),
        }
    }
}

/// Where a command connects, and with which token.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
    /// The context that gave the server or the token, if one did.
    pub context: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("context", &self.context)
            .finish()
    }
}

/// An environment: the variable's value, `None` when it is unset or empty.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// This process's environment.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The server and token to use, first found wins:
/// 1. `--server` / `--token`;
/// 2. `KAAS_SERVER` / `KAAS_TOKEN`;
/// 3. the context `--context` (or `KAAS_CONTEXT`) names, else the current context; its
///    token only when its own server is the one used;
/// 4. `http://127.0.0.1:7443`, and the token `local_token` finds for the server.
///
/// The config file is loaded only when flags and environment leave something open, so a
/// fully given server and token never depend on it.
pub fn resolve(
    flags: Flags<'_>,
    env: Env<'_>,
    load: impl FnOnce() -> Result<ContextFile>,
    local_token: impl FnOnce(&str) -> Option<String>,
) -> Result<Target> {
    let server = flags
        .server
        .map(str::to_owned)
        .or_else(|| env("KAAS_SERVER"));
    let token = flags.token.map(str::to_owned).or_else(|| env("KAAS_TOKEN"));
    if let (Some(server), Some(token)) = (&server, &token) {
        return Ok(Target {
            server: server.clone(),
            token: Some(token.clone()),
            context: None,
        });
    }
    let file = load()?;
    let wanted = flags
        .context
        .map(str::to_owned)
        .or_else(|| env("KAAS_CONTEXT"));
    let context = match wanted.as_deref().or(file.current_context.as_deref()) {
        Some(name) => Some(file.find(name)?),
        None => None,
    };
    let mut used = None;
    let server = match server {
        Some(server) => server,
        None => match context {
            Some(c) => {
                used = Some(c.name.clone());
                c.server.clone()
            }
            None => DEFAULT_SERVER.to_owned(),
        },
    };
    let token = match token {
        Some(token) => Some(token),
        None => match context.filter(|c| same_server(&c.server, &server)) {
            Some(c) => {
                used = Some(c.name.clone());
                Some(c.token.clone())
            }
            None => local_token(&server),
        },
    };
    Ok(Target {
        server,
        token,
        context: used,
    })
}

/// Whether two server URLs name the same server (`HTTP://Host:80/` is `http://host`).
fn same_server(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.trim_end_matches('/') == b.trim_end_matches('/'),
    }
}

/// The config file: `$KAAS_CONFIG`, else `$XDG_CONFIG_HOME/kaas/config.yaml`, else
/// `~/.config/kaas/config.yaml`.
pub fn config_path(env: Env<'_>) -> Result<PathBuf> {
    if let Some(path) = env("KAAS_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    // The XDG spec: a relative XDG_CONFIG_HOME is to be ignored.
    if let Some(dir) = env("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(Path::new(&dir).join("kaas").join("config.yaml"));
    }
    let home = env("HOME")
        .context("cannot place the kaas config file: set KAAS_CONFIG, XDG_CONFIG_HOME or HOME")?;
    Ok(Path::new(&home)
        .join(".config")
        .join("kaas")
        .join("config.yaml"))
}

/// Reads the config file; none (or an empty one) holds no contexts. A file that does not
/// parse is an error naming it, never replaced.
pub fn load(path: &Path) -> Result<ContextFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ContextFile::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(ContextFile::default());
    }
    serde_saphyr::from_str(&text).with_context(|| {
        format!(
            "{} is not a kaas config file; fix or remove it",
            path.display()
        )
    })
}

/// Writes the config file atomically, readable by its owner only (0600; a directory it
/// creates is 0700).
pub fn save(path: &Path, file: &ContextFile) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let yaml = serde_saphyr::to_string(file).context("cannot encode the kaas config")?;
    crate::server::write_private(path, &yaml)
}

/// The token of a server on this machine: the one a local server wrote to
/// `./kaas-data/admin.token`.
fn local_admin_token(server: &str) -> Option<String> {
    if !super::is_loopback_url(server) {
        return None;
    }
    std::fs::read_to_string(Path::new("kaas-data").join("admin.token"))
        .ok()
        .map(|t| t.trim().to_owned())
}

/// The server and token for this command line, in this process's environment.
pub fn target(conn: &Connection) -> Result<Target> {
    resolve(
        conn.into(),
        &process_env,
        || load(&config_path(&process_env)?),
        local_admin_token,
    )
}

/// The context commands use: `--context`, else `KAAS_CONTEXT`, else the file's current.
fn selected(conn: &Connection, file: &ContextFile) -> Option<String> {
    conn.context
        .clone()
        .or_else(|| process_env("KAAS_CONTEXT"))
        .or_else(|| file.current_context.clone())
}

/// Tells (on stderr) which environment variables outrank the contexts.
fn note_env_overrides() {
    let set: Vec<&str> = ["KAAS_SERVER", "KAAS_TOKEN"]
        .into_iter()
        .filter(|k| process_env(k).is_some())
        .collect();
    if !set.is_empty() {
        eprintln!(
            "note: {} set in the environment; it takes precedence over contexts",
            set.join(" and ")
        );
    }
}

/// The name a server's context gets unless told: its host:port.
fn default_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or("server");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `kaas login`: checks the server and token with `GET /v1/info`, then saves them as a
/// context and makes it current. Nothing is saved when the check fails.
pub async fn login(conn: &Connection, args: LoginArgs) -> Result<ExitCode> {
    if conn.context.is_some() {
        bail!("kaas login names the context with --name, not --context");
    }
    let Some(server) = conn.server.as_deref() else {
        bail!("kaas login needs --server URL (and --token TOKEN or --token-stdin)");
    };
    let server = server.trim_end_matches('/');
    let url = Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--server {server:?} must be an http:// or https:// URL");
    }
    let token = match (conn.token.as_deref(), args.token_stdin) {
        (Some(_), true) => bail!("give --token or --token-stdin, not both"),
        (Some(token), false) => token.trim().to_owned(),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the token from standard input")?;
            text.trim().to_owned()
        }
        (None, false) => bail!("kaas login needs --token TOKEN or --token-stdin"),
    };
    if token.is_empty() {
        bail!("the token is empty");
    }
    let name = args.name.unwrap_or_else(|| default_name(&url));
    if name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    // A config file that does not parse fails the login before anything is sent.
    let path = config_path(&process_env)?;
    let mut file = load(&path)?;
    let check = Client::new(server, Some(token.clone()))?
        .get("/v1/info")
        .await;
    match check {
        Ok(_) => {}
        Err(e) if client::is_status(&e, StatusCode::UNAUTHORIZED) => {
            bail!("the server at {server} refused the token (401 Unauthorized); nothing was saved")
        }
        Err(e) => return Err(e.context(format!("cannot log in to {server}; nothing was saved"))),
    }
    file.save_current(SavedContext {
        name: name.clone(),
        server: server.to_owned(),
        token,
    });
    save(&path, &file)?;
    println!("Logged in to {server} as context {name}");
    note_env_overrides();
    Ok(ExitCode::SUCCESS)
}

/// `kaas logout [NAME]`: forgets the named context, or the one commands use.
pub fn logout(conn: &Connection, args: LogoutArgs) -> Result<ExitCode> {
    let path = config_path(&process_env)?;
    let mut file = load(&path)?;
    let Some(name) = args.name.or_else(|| selected(conn, &file)) else {
        bail!("there is no current context to log out of; name one: kaas logout NAME");
    };
    file.remove(&name)?;
    save(&path, &file)?;
    println!("Logged out: deleted context {name}");
    Ok(ExitCode::SUCCESS)
}

/// `kaas context …`.
pub fn run(conn: &Connection, cmd: ContextCommand) -> Result<ExitCode> {
    let path = config_path(&process_env)?;
    let mut file = load(&path)?;
    match cmd {
        ContextCommand::List => {
            if file.contexts.is_empty() {
                eprintln!("No contexts; save one with kaas login --server URL --token TOKEN");
                return Ok(ExitCode::SUCCESS);
            }
            let current = selected(conn, &file);
            let rows: Vec<Vec<String>> = file
                .contexts
                .iter()
                .map(|c| {
                    let marker = if current.as_deref() == Some(c.name.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    vec![marker.to_owned(), c.name.clone(), c.server.clone()]
                })
                .collect();
            print!("{}", table(&["CURRENT", "NAME", "SERVER"], &rows));
        }
        ContextCommand::Use { name } => {
            let context = file.find(&name)?.clone();
            file.current_context = Some(context.name);
            save(&path, &file)?;
            println!("Switched to context {name}");
            if let Some(other) = process_env("KAAS_CONTEXT").filter(|o| *o != name) {
                eprintln!("note: KAAS_CONTEXT={other} takes precedence over the current context");
            }
            note_env_overrides();
        }
        ContextCommand::Delete { name } => {
            file.remove(&name)?;
            save(&path, &file)?;
            println!("Deleted context {name}");
        }
        ContextCommand::Current => {
            let Some(name) = selected(conn, &file) else {
                bail!("there is no current context; choose one with kaas context use NAME");
            };
            let context = file.find(&name)?;
            println!("{}", context.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx(name: &str, server: &str, token: &str) -> SavedContext {
        SavedContext {
            name: name.to_owned(),
            server: server.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Two contexts, `prod` current.
    fn file() -> ContextFile {
        ContextFile {
            current_context: Some("prod".to_owned()),
            contexts: vec![
                ctx("prod", "https://prod.example:7443", "prod-token"),
                ctx("dev", "http://127.0.0.1:7443", "dev-token"),
            ],
        }
    }

    /// Environment variables, as (name, value) pairs.
    type Vars<'a> = &'a [(&'a str, &'a str)];

    fn env_of(vars: Vars<'_>) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// Resolves over the flags, environment and file; the local token is `local:SERVER`.
    fn check(flags: Flags<'_>, env: Vars<'_>, file: ContextFile) -> Result<Target> {
        resolve(
            flags,
            &env_of(env),
            || Ok(file),
            |s| Some(format!("local:{s}")),
        )
    }

    fn target(server: &str, token: &str, context: Option<&str>) -> Target {
        Target {
            server: server.to_owned(),
            token: Some(token.to_owned()),
            context: context.map(str::to_owned),
        }
    }

    #[test]
    fn the_file_round_trips_through_yaml() {
        let yaml = serde_saphyr::to_string(&file()).unwrap();
        assert!(yaml.contains("currentContext: prod"), "{yaml}");
        assert_eq!(
            serde_saphyr::from_str::<ContextFile>(&yaml).unwrap(),
            file()
        );
        let written = "currentContext: a\ncontexts:\n- name: a\n  server: http://a\n  token: t\n";
        let parsed: ContextFile = serde_saphyr::from_str(written).unwrap();
        assert_eq!(parsed.contexts, vec![ctx("a", "http://a", "t")]);
        let debug = format!("{parsed:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("\"t\""),
            "{debug}"
        );
    }

    #[test]
    fn the_file_is_written_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("kaas").join("config.yaml");
        assert_eq!(load(&path).unwrap(), ContextFile::default());
        save(&path, &file()).unwrap();
        assert_eq!(load(&path).unwrap(), file());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let mut changed = file();
        changed.remove("dev").unwrap();
        save(&path, &changed).unwrap();
        assert_eq!(load(&path).unwrap(), changed);
        assert_eq!(mode(&path), 0o600);
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "only the config file is left");
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "contexts: [ {name: a\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "contexts: [ {name: a\n"
        );
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load(&path).unwrap(), ContextFile::default());
    }

    #[test]
    fn the_config_file_is_found_like_xdg_says() {
        let path = |vars: &[(&str, &str)]| config_path(&env_of(vars)).ok();
        assert_eq!(
            path(&[("KAAS_CONFIG", "/k.yaml"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/k.yaml"))
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/x/kaas/config.yaml"))
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.config/kaas/config.yaml"))
        );
        assert_eq!(path(&[]), None);
    }

    #[test]
    fn flags_beat_environment_beat_context_beat_defaults() {
        let flags = Flags {
            server: Some("http://flag"),
            token: Some("flag-token"),
            context: Some("dev"),
        };
        let env = [
            ("KAAS_SERVER", "http://env"),
            ("KAAS_TOKEN", "env-token"),
            ("KAAS_CONTEXT", "dev"),
        ];
        let cases: Vec<(Flags<'_>, Vars<'_>, Target)> = vec![
            (flags, &env, target("http://flag", "flag-token", None)),
            (
                Flags::default(),
                &env,
                target("http://env", "env-token", None),
            ),
            (
                Flags {
                    server: Some("http://flag"),
                    ..Flags::default()
                },
                &env,
                target("http://flag", "env-token", None),
            ),
            (
                Flags {
                    token: Some("flag-token"),
                    ..Flags::default()
                },
                &env,
                target("http://env", "flag-token", None),
            ),
            (
                Flags::default(),
                &[],
                target("https://prod.example:7443", "prod-token", Some("prod")),
            ),
            (
                Flags::default(),
                &[("KAAS_CONTEXT", "dev")],
                target("http://127.0.0.1:7443", "dev-token", Some("dev")),
            ),
            (
                Flags {
                    context: Some("prod"),
                    ..Flags::default()
                },
                &[("KAAS_CONTEXT", "dev")],
                target("https://prod.example:7443", "prod-token", Some("prod")),
            ),
            // A token given, the server from the context.
            (
                Flags::default(),
                &[("KAAS_TOKEN", "env-token")],
                target("https://prod.example:7443", "env-token", Some("prod")),
            ),
            // The same server spelled differently still gets the context's token.
            (
                Flags {
                    server: Some("HTTPS://prod.example:7443/"),
                    ..Flags::default()
                },
                &[],
                target("HTTPS://prod.example:7443/", "prod-token", Some("prod")),
            ),
        ];
        for (flags, env, want) in cases {
            assert_eq!(
                check(flags, env, file()).unwrap(),
                want,
                "{flags:?} {env:?}"
            );
        }
    }

    #[test]
    fn a_context_token_goes_to_its_own_server_only() {
        let other = Flags {
            server: Some("https://elsewhere.example"),
            ..Flags::default()
        };
        let got = check(other, &[], file()).unwrap();
        assert_eq!(got.server, "https://elsewhere.example");
        assert_eq!(
            got.token.as_deref(),
            Some("local:https://elsewhere.example")
        );
        assert_eq!(got.context, None);
        let got = check(Flags::default(), &[("KAAS_SERVER", "http://env")], file()).unwrap();
        assert_eq!(got.token.as_deref(), Some("local:http://env"));
    }

    #[test]
    fn without_contexts_the_local_defaults_apply() {
        assert_eq!(
            check(Flags::default(), &[], ContextFile::default()).unwrap(),
            target(DEFAULT_SERVER, &format!("local:{DEFAULT_SERVER}"), None)
        );
        let mut no_current = file();
        no_current.current_context = None;
        assert_eq!(
            check(Flags::default(), &[], no_current).unwrap().server,
            DEFAULT_SERVER
        );
    }

    #[test]
    fn a_full_server_and_token_never_read_the_file() {
        let got = resolve(
            Flags {
                context: Some("missing"),
                ..Flags::default()
            },
            &env_of(&[("KAAS_SERVER", "http://env"), ("KAAS_TOKEN", "t")]),
            || bail!("the file was read"),
            |_| None,
        )
        .unwrap();
        assert_eq!(got, target("http://env", "t", None));
    }

    #[test]
    fn an_unknown_context_is_an_error_listing_the_known_ones() {
        let flags = Flags {
            context: Some("staging"),
            ..Flags::default()
        };
        let err = check(flags, &[], file()).unwrap_err().to_string();
        assert_eq!(err, "no context \"staging\"; known contexts: prod, dev");
        let err = check(flags, &[], ContextFile::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no context \"staging\""), "{err}");
        assert!(err.contains("kaas login"), "{err}");
        let mut dangling = file();
        dangling.current_context = Some("gone".to_owned());
        let err = check(Flags::default(), &[], dangling)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no context \"gone\""), "{err}");
    }

    #[test]
    fn saving_replaces_by_name_and_removing_unsets_current() {
        let mut f = file();
        f.save_current(ctx("dev", "http://127.0.0.1:7444", "new"));
        assert_eq!(f.current_context.as_deref(), Some("dev"));
        assert_eq!(f.contexts.len(), 2);
        assert_eq!(f.find("dev").unwrap().token, "new");
        f.remove("dev").unwrap();
        assert_eq!(f.current_context, None);
        assert!(f.remove("dev").is_err());
        assert_eq!(f.contexts.len(), 1);
    }

    #[test]
    fn contexts_are_named_after_host_and_port() {
        let name = |u: &str| default_name(&Url::parse(u).unwrap());
        assert_eq!(name("http://127.0.0.1:7443"), "127.0.0.1:7443");
        assert_eq!(name("https://kaas.example"), "kaas.example:443");
        assert_eq!(name("http://[::1]:7443/"), "[::1]:7443");
    }
}

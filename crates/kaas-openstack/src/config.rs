//! Where credentials come from, read the way the `openstack` CLI and openstacksdk read
//! them: a named cloud in `clouds.yaml` (with `secure.yaml` merged over it), or the
//! `OS_*` variables of an openrc file.
//!
//! Every error names where the setting was looked for and the field, in the words of
//! that source (`auth.auth_url` in a clouds.yaml, `OS_AUTH_URL` in the environment).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::Url;
use serde_json::{Map, Value};

/// A password, application credential secret or token. Never shown by `Debug` or
/// `Display`; [`Secret::expose`] is for the one place that sends it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, to put into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// What a token is scoped to: a project (by id, or by name within a domain), a domain,
/// or nothing (an unscoped token has no catalog).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
}

impl Scope {
    /// A scope to the project with this id.
    pub fn project(project_id: impl Into<String>) -> Self {
        Self {
            project_id: Some(project_id.into()),
            ..Self::default()
        }
    }

    /// Whether nothing is set (the token will be unscoped, or keep its scope).
    pub fn is_empty(&self) -> bool {
        self.project_id.is_none()
            && self.project_name.is_none()
            && self.domain_id.is_none()
            && self.domain_name.is_none()
    }
}

/// How to authenticate to Keystone v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Password {
        username: Option<String>,
        user_id: Option<String>,
        password: Secret,
        user_domain_name: Option<String>,
        user_domain_id: Option<String>,
        scope: Scope,
    },
    /// An application credential, by id, or by name together with its user. Its scope
    /// is the project it was created in.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        secret: Secret,
        username: Option<String>,
        user_id: Option<String>,
        user_domain_name: Option<String>,
        user_domain_id: Option<String>,
    },
    /// An existing token. It cannot be renewed: the session ends when it expires.
    Token { token: Secret, scope: Scope },
}

impl Auth {
    /// The Keystone method name (`password`, `application_credential`, `token`).
    pub fn method(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::ApplicationCredential { .. } => "application_credential",
            Self::Token { .. } => "token",
        }
    }

    /// Whether a new token can be had when the current one expires.
    pub fn can_renew(&self) -> bool {
        !matches!(self, Self::Token { .. })
    }
}

/// One cloud: where Keystone is, how to authenticate, and how to pick endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    /// The clouds.yaml entry this came from; `None` for the environment.
    pub name: Option<String>,
    /// Keystone's v3 URL, normalised: no trailing `/`, ending in a version (`.../v3`).
    pub auth_url: String,
    pub auth: Auth,
    pub region_name: Option<String>,
    /// `public` (the default), `internal` or `admin`.
    pub interface: String,
    /// Whether to verify TLS certificates (default `true`).
    pub verify: bool,
    /// A PEM bundle of extra CA certificates to trust.
    pub cacert: Option<PathBuf>,
    /// Endpoint URLs by service type (`compute`, `load-balancer`) that win over the
    /// catalog.
    pub endpoint_override: BTreeMap<String, String>,
}

/// A cloud configuration that cannot be used, saying where and which field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cloud '{cloud}' requested but no clouds.yaml found (looked for {})",
        show_paths(searched)
    )]
    NoCloudsFile {
        cloud: String,
        searched: Vec<PathBuf>,
    },
    #[error(
        "cloud '{cloud}' not found in {file} (clouds there: {})",
        show_list(available)
    )]
    CloudNotFound {
        cloud: String,
        file: String,
        available: Vec<String>,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is not valid YAML: {message}")]
    Parse { file: String, message: String },
    #[error("{origin}: {field} is missing")]
    Missing { origin: String, field: String },
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

impl CloudConfig {
    /// Reads the configuration the way the `openstack` CLI does: the named cloud (or
    /// `OS_CLOUD`) from the first clouds.yaml found, with secure.yaml merged over it;
    /// without a cloud name, the `OS_*` variables.
    ///
    /// clouds.yaml is looked for at `$OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
    /// `${XDG_CONFIG_HOME:-~/.config}/openstack/clouds.yaml` and
    /// `/etc/openstack/clouds.yaml` (also `.yml` and `.json`); secure.yaml at
    /// `$OS_CLIENT_SECURE_FILE` and then the same places.
    pub fn load(cloud: Option<&str>) -> Result<CloudConfig, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let cwd = std::env::current_dir().ok();
        Self::load_with(cloud, &env, cwd.as_deref())
    }

    /// [`CloudConfig::load`] with the environment and working directory given.
    pub fn load_with(
        cloud: Option<&str>,
        env: &BTreeMap<String, String>,
        cwd: Option<&Path>,
    ) -> Result<CloudConfig, ConfigError> {
        let from_env = env.get("OS_CLOUD").map(String::as_str);
        let Some(cloud) = cloud.or(from_env).filter(|c| !c.is_empty()) else {
            return Self::from_env_map(env);
        };
        let clouds_candidates = candidates("OS_CLIENT_CONFIG_FILE", "clouds", env, cwd);
        let Some(clouds_path) = clouds_candidates.iter().find(|p| p.is_file()) else {
            return Err(ConfigError::NoCloudsFile {
                cloud: cloud.to_owned(),
                searched: clouds_candidates,
            });
        };
        let clouds_text = read(clouds_path)?;
        let secure_path = candidates("OS_CLIENT_SECURE_FILE", "secure", env, cwd)
            .into_iter()
            .find(|p| p.is_file());
        let secure = match &secure_path {
            Some(path) => Some((path.display().to_string(), read(path)?)),
            None => None,
        };
        from_yaml_files(
            &clouds_path.display().to_string(),
            &clouds_text,
            secure
                .as_ref()
                .map(|(label, text)| (label.as_str(), text.as_str())),
            cloud,
        )
    }

    /// The cloud `cloud` from the text of a clouds.yaml, with the text of a secure.yaml
    /// merged over it.
    pub fn from_clouds_yaml(
        text: &str,
        secure_text: Option<&str>,
        cloud: &str,
    ) -> Result<CloudConfig, ConfigError> {
        from_yaml_files(
            "clouds.yaml",
            text,
            secure_text.map(|s| ("secure.yaml", s)),
            cloud,
        )
    }

    /// The configuration from `OS_*` variables (as an openrc file sets them).
    pub fn from_env_map(env: &BTreeMap<String, String>) -> Result<CloudConfig, ConfigError> {
        build(&EnvSource { env }, None)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The places a `clouds`/`secure` file is looked for, in order.
fn candidates(
    file_var: &str,
    stem: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(cwd) = cwd {
        dirs.push(cwd.to_owned());
    }
    let config_home = env
        .get("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env.get("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(home).join(".config"))
        });
    if let Some(config_home) = config_home {
        dirs.push(config_home.join("openstack"));
    }
    dirs.push(PathBuf::from("/etc/openstack"));

    let mut paths = Vec::new();
    if let Some(file) = env.get(file_var).filter(|v| !v.is_empty()) {
        paths.push(PathBuf::from(file));
    }
    for dir in dirs {
        for ext in ["yaml", "yml", "json"] {
            paths.push(dir.join(format!("{stem}.{ext}")));
        }
    }
    paths
}

fn parse_yaml(file: &str, text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    // Without the source snippet: the lines around an error may hold a password.
    serde_saphyr::from_str::<Value>(text).map_err(|e| ConfigError::Parse {
        file: file.to_owned(),
        message: e.without_snippet().to_string(),
    })
}

/// Merges `overlay` into `base`: maps key by key, anything else replaced.
fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, Value::Null) if !base.is_null() => {}
        (base, overlay) => *base = overlay,
    }
}

fn from_yaml_files(
    clouds_label: &str,
    clouds_text: &str,
    secure: Option<(&str, &str)>,
    cloud: &str,
) -> Result<CloudConfig, ConfigError> {
    let mut doc = parse_yaml(clouds_label, clouds_text)?;
    if let Some((secure_label, secure_text)) = secure {
        let overlay = parse_yaml(secure_label, secure_text)?;
        deep_merge(&mut doc, overlay);
    }
    let clouds = doc.get("clouds").and_then(Value::as_object);
    let Some(entry) = clouds.and_then(|c| c.get(cloud)).and_then(Value::as_object) else {
        return Err(ConfigError::CloudNotFound {
            cloud: cloud.to_owned(),
            file: clouds_label.to_owned(),
            available: clouds
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default(),
        });
    };
    let source = YamlSource {
        origin: format!("{clouds_label} cloud '{cloud}'"),
        entry,
    };
    build(&source, Some(cloud))
}

/// Settings by their clouds.yaml key (`auth.username`, `region_name`), wherever they
/// come from.
trait Source {
    /// Where the settings come from, for errors.
    fn origin(&self) -> &str;
    /// The value of a setting; empty values count as absent.
    fn get(&self, key: &str) -> Option<String>;
    /// The name of a setting in this source, for errors.
    fn field(&self, key: &str) -> String;
    /// Endpoint overrides: service type, URL, and the field they came from.
    fn endpoint_overrides(&self) -> Vec<(String, String, String)>;
    /// Whether the entry names a vendor profile (which this crate does not know).
    fn uses_profile(&self) -> bool {
        false
    }
}

struct YamlSource<'a> {
    origin: String,
    entry: &'a Map<String, Value>,
}

fn scalar(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

impl Source for YamlSource<'_> {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn get(&self, key: &str) -> Option<String> {
        let mut value = None;
        let mut map = Some(self.entry);
        for part in key.split('.') {
            value = map.and_then(|m| m.get(part));
            map = value.and_then(Value::as_object);
        }
        let found = value.and_then(scalar);
        if found.is_none() && key == "region_name" {
            // `regions: [RegionOne, {name: RegionTwo}]`: the first one.
            let first = self.entry.get("regions")?.as_array()?.first()?;
            return scalar(first).or_else(|| first.get("name").and_then(scalar));
        }
        found
    }

    fn field(&self, key: &str) -> String {
        key.to_owned()
    }

    fn endpoint_overrides(&self) -> Vec<(String, String, String)> {
        self.entry
            .iter()
            .filter_map(|(key, value)| {
                let service = key.strip_suffix("_endpoint_override")?;
                Some((service.replace('_', "-"), scalar(value)?, key.clone()))
            })
            .collect()
    }

    fn uses_profile(&self) -> bool {
        self.entry.contains_key("profile") || self.entry.contains_key("cloud")
    }
}

struct EnvSource<'a> {
    env: &'a BTreeMap<String, String>,
}

impl Source for EnvSource<'_> {
    fn origin(&self) -> &str {
        "environment (OS_CLOUD not set)"
    }

    fn get(&self, key: &str) -> Option<String> {
        let value = self.env.get(&self.field(key))?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    fn field(&self, key: &str) -> String {
        // `auth.project_domain_id` -> `OS_PROJECT_DOMAIN_ID`.
        let bare = key.strip_prefix("auth.").unwrap_or(key);
        format!("OS_{}", bare.to_ascii_uppercase())
    }

    fn endpoint_overrides(&self) -> Vec<(String, String, String)> {
        self.env
            .iter()
            .filter_map(|(key, value)| {
                let service = key
                    .strip_prefix("OS_")?
                    .strip_suffix("_ENDPOINT_OVERRIDE")?;
                let value = value.trim();
                (!value.is_empty()).then(|| {
                    (
                        service.to_ascii_lowercase().replace('_', "-"),
                        value.to_owned(),
                        key.clone(),
                    )
                })
            })
            .collect()
    }
}

fn missing(source: &dyn Source, key: &str) -> ConfigError {
    ConfigError::Missing {
        origin: source.origin().to_owned(),
        field: source.field(key),
    }
}

fn missing_any(source: &dyn Source, keys: &[&str]) -> ConfigError {
    ConfigError::Missing {
        origin: source.origin().to_owned(),
        field: keys
            .iter()
            .map(|k| source.field(k))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn invalid(source: &dyn Source, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: source.origin().to_owned(),
        field: source.field(key),
        message: message.into(),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// `public`, `internal` or `admin` from any of the spellings in use (`publicURL`).
pub fn normalize_interface(text: &str) -> Option<&'static str> {
    let lower = text.trim().to_ascii_lowercase();
    match lower.strip_suffix("url").unwrap_or(&lower) {
        "public" => Some("public"),
        "internal" => Some("internal"),
        "admin" => Some("admin"),
        _ => None,
    }
}

fn is_version_segment(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let minor_ok = parts
        .next()
        .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    major_ok && minor_ok
}

/// Keystone's v3 URL from what users write: no trailing `/`; `/v3` appended when the
/// path names no version (as keystoneauth does for v3); a `/v2.0` URL (Keystone v2 is
/// gone since Queens, the v3 API lives beside it) becomes `/v3`.
pub fn normalize_auth_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| format!("'{raw}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{raw}' is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{raw}' has a query or fragment"));
    }
    let last = url
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        .unwrap_or("");
    if is_version_segment(last) {
        if last.starts_with("v2") {
            let base = &trimmed[..trimmed.len() - last.len()];
            return Ok(format!("{base}v3"));
        }
        Ok(trimmed.to_owned())
    } else {
        Ok(format!("{trimmed}/v3"))
    }
}

/// A user's domain, falling back to `default_domain_*`.
fn domain(source: &dyn Source, id_key: &str, name_key: &str) -> (Option<String>, Option<String>) {
    let id = source.get(id_key);
    let name = source.get(name_key);
    if id.is_some() || name.is_some() {
        return (id, name);
    }
    (
        source.get("auth.default_domain_id"),
        source.get("auth.default_domain_name"),
    )
}

fn scope(source: &dyn Source) -> Result<Scope, ConfigError> {
    let project_id = source
        .get("auth.project_id")
        .or_else(|| source.get("auth.tenant_id"));
    let project_name = source
        .get("auth.project_name")
        .or_else(|| source.get("auth.tenant_name"));
    let (project_domain_id, project_domain_name) =
        domain(source, "auth.project_domain_id", "auth.project_domain_name");
    if project_id.is_none()
        && project_name.is_some()
        && project_domain_id.is_none()
        && project_domain_name.is_none()
    {
        return Err(invalid(
            source,
            "auth.project_domain_name",
            format!(
                "is needed with {} (or set {})",
                source.field("auth.project_name"),
                source.field("auth.project_domain_id")
            ),
        ));
    }
    Ok(Scope {
        project_id,
        project_name,
        project_domain_id,
        project_domain_name,
        domain_id: source.get("auth.domain_id"),
        domain_name: source.get("auth.domain_name"),
    })
}

fn user_domain_check(
    source: &dyn Source,
    username: &Option<String>,
    user_id: &Option<String>,
    user_domain: &(Option<String>, Option<String>),
) -> Result<(), ConfigError> {
    if username.is_some() && user_id.is_none() && user_domain.0.is_none() && user_domain.1.is_none()
    {
        return Err(invalid(
            source,
            "auth.user_domain_name",
            format!(
                "is needed with {} (or set {})",
                source.field("auth.username"),
                source.field("auth.user_domain_id")
            ),
        ));
    }
    Ok(())
}

fn build(source: &dyn Source, name: Option<&str>) -> Result<CloudConfig, ConfigError> {
    let raw_url = source.get("auth.auth_url").ok_or_else(|| {
        if source.uses_profile() {
            invalid(
                source,
                "auth.auth_url",
                "is missing, and vendor profiles (profile:) are not supported: set auth.auth_url",
            )
        } else {
            missing(source, "auth.auth_url")
        }
    })?;
    let auth_url = normalize_auth_url(&raw_url).map_err(|m| invalid(source, "auth.auth_url", m))?;

    let auth_type = source
        .get("auth_type")
        .unwrap_or_else(|| "password".to_owned());
    let auth = match auth_type.to_ascii_lowercase().as_str() {
        "password" | "v3password" => {
            let password = source
                .get("auth.password")
                .ok_or_else(|| missing(source, "auth.password"))?;
            let username = source.get("auth.username");
            let user_id = source.get("auth.user_id");
            if username.is_none() && user_id.is_none() {
                return Err(missing_any(source, &["auth.username", "auth.user_id"]));
            }
            let user_domain = domain(source, "auth.user_domain_id", "auth.user_domain_name");
            user_domain_check(source, &username, &user_id, &user_domain)?;
            Auth::Password {
                username,
                user_id,
                password: Secret(password),
                user_domain_name: user_domain.1,
                user_domain_id: user_domain.0,
                scope: scope(source)?,
            }
        }
        "v3applicationcredential"
        | "applicationcredential"
        | "application_credential"
        | "v3_application_credential" => {
            let secret = source
                .get("auth.application_credential_secret")
                .ok_or_else(|| missing(source, "auth.application_credential_secret"))?;
            let id = source.get("auth.application_credential_id");
            let name = source.get("auth.application_credential_name");
            let username = source.get("auth.username");
            let user_id = source.get("auth.user_id");
            let user_domain = domain(source, "auth.user_domain_id", "auth.user_domain_name");
            if id.is_none() {
                if name.is_none() {
                    return Err(missing_any(
                        source,
                        &[
                            "auth.application_credential_id",
                            "auth.application_credential_name",
                        ],
                    ));
                }
                if username.is_none() && user_id.is_none() {
                    return Err(invalid(
                        source,
                        "auth.user_id",
                        format!(
                            "{} or {} is needed with {}",
                            source.field("auth.user_id"),
                            source.field("auth.username"),
                            source.field("auth.application_credential_name")
                        ),
                    ));
                }
                user_domain_check(source, &username, &user_id, &user_domain)?;
            }
            Auth::ApplicationCredential {
                id,
                name,
                secret: Secret(secret),
                username,
                user_id,
                user_domain_name: user_domain.1,
                user_domain_id: user_domain.0,
            }
        }
        "token" | "v3token" => {
            let token = source
                .get("auth.token")
                .ok_or_else(|| missing(source, "auth.token"))?;
            Auth::Token {
                token: Secret(token),
                scope: scope(source)?,
            }
        }
        other => {
            return Err(invalid(
                source,
                "auth_type",
                format!(
                    "'{other}' is not supported (supported: password, v3applicationcredential, token)"
                ),
            ));
        }
    };

    let interface = match source
        .get("interface")
        .map(|v| (v, "interface"))
        .or_else(|| source.get("endpoint_type").map(|v| (v, "endpoint_type")))
    {
        None => "public",
        Some((text, key)) => normalize_interface(&text).ok_or_else(|| {
            invalid(
                source,
                key,
                format!("'{text}' is not one of public, internal, admin"),
            )
        })?,
    };

    let mut cacert = source.get("cacert").map(PathBuf::from);
    let mut verify = true;
    if let Some(text) = source.get("verify") {
        match parse_bool(&text) {
            Some(v) => verify = v,
            // `verify: /path/to/ca.pem`, as requests takes it.
            None => cacert = cacert.or_else(|| Some(PathBuf::from(text))),
        }
    }
    if let Some(text) = source.get("insecure") {
        let insecure = parse_bool(&text)
            .ok_or_else(|| invalid(source, "insecure", format!("'{text}' is not a boolean")))?;
        verify = verify && !insecure;
    }

    let mut endpoint_override = BTreeMap::new();
    for (service, url, field) in source.endpoint_overrides() {
        Url::parse(&url).map_err(|e| ConfigError::Invalid {
            origin: source.origin().to_owned(),
            field,
            message: format!("'{url}' is not a URL: {e}"),
        })?;
        endpoint_override.insert(service, url);
    }

    Ok(CloudConfig {
        name: name.map(str::to_owned),
        auth_url,
        auth,
        region_name: source.get("region_name"),
        interface: interface.to_owned(),
        verify,
        cacert,
        endpoint_override,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const CLOUDS: &str = r#"
clouds:
  devstack:
    auth:
      auth_url: http://10.0.0.5/identity/
      username: demo
      password: secret
      project_name: demo
      user_domain_id: default
      project_domain_id: default
    region_name: RegionOne
    identity_api_version: 3
  appcred-id:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.com:5000/v3
      application_credential_id: 0123abcd
      application_credential_secret: s3cr3t
    interface: internalURL
    verify: false
  appcred-name:
    auth_type: applicationcredential
    auth:
      auth_url: https://keystone.example.com:5000
      application_credential_name: kaas
      application_credential_secret: s3cr3t
      username: alice
      user_domain_name: Default
    regions:
      - name: RegionTwo
      - RegionThree
  token:
    auth_type: v3token
    auth:
      auth_url: https://keystone.example.com/v2.0/
      token: gAAAA
      project_id: 42
    cacert: /etc/ssl/private-ca.pem
    compute_endpoint_override: https://nova.example.com/v2.1
    load_balancer_endpoint_override: https://octavia.example.com
  nopassword:
    auth:
      auth_url: http://10.0.0.5:5000/v3
      username: demo
      project_name: demo
      user_domain_id: default
      project_domain_id: default
"#;

    fn cloud(name: &str) -> CloudConfig {
        CloudConfig::from_clouds_yaml(CLOUDS, None, name).unwrap()
    }

    fn cloud_err(name: &str) -> String {
        CloudConfig::from_clouds_yaml(CLOUDS, None, name)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn password_cloud() {
        let config = cloud("devstack");
        assert_eq!(config.name.as_deref(), Some("devstack"));
        assert_eq!(config.auth_url, "http://10.0.0.5/identity/v3");
        assert_eq!(config.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(config.interface, "public");
        assert!(config.verify);
        assert_eq!(
            config.auth,
            Auth::Password {
                username: Some("demo".into()),
                user_id: None,
                password: Secret::new("secret"),
                user_domain_name: None,
                user_domain_id: Some("default".into()),
                scope: Scope {
                    project_name: Some("demo".into()),
                    project_domain_id: Some("default".into()),
                    ..Scope::default()
                },
            }
        );
    }

    #[test]
    fn application_credential_by_id() {
        let config = cloud("appcred-id");
        assert_eq!(config.auth_url, "https://keystone.example.com:5000/v3");
        assert_eq!(config.interface, "internal");
        assert!(!config.verify);
        assert_eq!(config.region_name, None);
        let Auth::ApplicationCredential {
            id, name, secret, ..
        } = &config.auth
        else {
            panic!("{:?}", config.auth)
        };
        assert_eq!(id.as_deref(), Some("0123abcd"));
        assert_eq!(name, &None);
        assert_eq!(secret.expose(), "s3cr3t");
    }

    #[test]
    fn application_credential_by_name_and_user() {
        let config = cloud("appcred-name");
        assert_eq!(config.auth_url, "https://keystone.example.com:5000/v3");
        assert_eq!(config.region_name.as_deref(), Some("RegionTwo"));
        assert_eq!(
            config.auth,
            Auth::ApplicationCredential {
                id: None,
                name: Some("kaas".into()),
                secret: Secret::new("s3cr3t"),
                username: Some("alice".into()),
                user_id: None,
                user_domain_name: Some("Default".into()),
                user_domain_id: None,
            }
        );
    }

    #[test]
    fn token_cloud_with_overrides() {
        let config = cloud("token");
        assert_eq!(config.auth_url, "https://keystone.example.com/v3");
        assert_eq!(
            config.auth,
            Auth::Token {
                token: Secret::new("gAAAA"),
                scope: Scope::project("42"),
            }
        );
        assert!(!config.auth.can_renew());
        assert_eq!(
            config.cacert,
            Some(PathBuf::from("/etc/ssl/private-ca.pem"))
        );
        assert_eq!(
            config.endpoint_override,
            BTreeMap::from([
                ("compute".into(), "https://nova.example.com/v2.1".into()),
                ("load-balancer".into(), "https://octavia.example.com".into()),
            ])
        );
    }

    #[test]
    fn secure_yaml_is_merged_over_clouds_yaml() {
        let secure = r#"
clouds:
  nopassword:
    auth:
      password: from-secure
  devstack:
    auth:
      password: overridden
"#;
        let config = CloudConfig::from_clouds_yaml(CLOUDS, Some(secure), "nopassword").unwrap();
        let Auth::Password {
            password, username, ..
        } = &config.auth
        else {
            panic!("{:?}", config.auth)
        };
        assert_eq!(password.expose(), "from-secure");
        assert_eq!(username.as_deref(), Some("demo"));
        let config = CloudConfig::from_clouds_yaml(CLOUDS, Some(secure), "devstack").unwrap();
        let Auth::Password { password, .. } = &config.auth else {
            panic!()
        };
        assert_eq!(password.expose(), "overridden");
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        assert_eq!(
            cloud_err("x"),
            "cloud 'x' not found in clouds.yaml (clouds there: appcred-id, appcred-name, devstack, nopassword, token)"
        );
        assert_eq!(
            cloud_err("nopassword"),
            "clouds.yaml cloud 'nopassword': auth.password is missing"
        );
        let cases = [
            (
                "{auth: {username: a, password: b}}",
                "auth.auth_url is missing",
            ),
            (
                "{auth: {auth_url: 'not a url', username: a, password: b}}",
                "auth.auth_url: 'not a url' is not a URL: relative URL without a base",
            ),
            (
                "{auth: {auth_url: 'http://k', password: b}}",
                "auth.username or auth.user_id is missing",
            ),
            (
                "{auth: {auth_url: 'http://k', username: a, password: b}}",
                "auth.user_domain_name: is needed with auth.username (or set auth.user_domain_id)",
            ),
            (
                "{auth: {auth_url: 'http://k', user_id: a, password: b, project_name: p}}",
                "auth.project_domain_name: is needed with auth.project_name (or set auth.project_domain_id)",
            ),
            (
                "{auth_type: v3applicationcredential, auth: {auth_url: 'http://k', application_credential_secret: s}}",
                "auth.application_credential_id or auth.application_credential_name is missing",
            ),
            (
                "{auth_type: v3applicationcredential, auth: {auth_url: 'http://k', application_credential_name: n, application_credential_secret: s}}",
                "auth.user_id: auth.user_id or auth.username is needed with auth.application_credential_name",
            ),
            (
                "{auth_type: token, auth: {auth_url: 'http://k'}}",
                "auth.token is missing",
            ),
            (
                "{auth_type: v2password, auth: {auth_url: 'http://k'}}",
                "auth_type: 'v2password' is not supported (supported: password, v3applicationcredential, token)",
            ),
            (
                "{interface: outside, auth: {auth_url: 'http://k', user_id: u, password: p}}",
                "interface: 'outside' is not one of public, internal, admin",
            ),
            (
                "{insecure: maybe, auth: {auth_url: 'http://k', user_id: u, password: p}}",
                "insecure: 'maybe' is not a boolean",
            ),
            (
                "{compute_endpoint_override: nope, auth: {auth_url: 'http://k', user_id: u, password: p}}",
                "compute_endpoint_override: 'nope' is not a URL: relative URL without a base",
            ),
            (
                "{profile: vexxhost, auth: {username: u, password: p}}",
                "auth.auth_url: is missing, and vendor profiles (profile:) are not supported: set auth.auth_url",
            ),
        ];
        for (entry, expected) in cases {
            let text = format!("clouds:\n  c: {entry}\n");
            let err = CloudConfig::from_clouds_yaml(&text, None, "c").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("clouds.yaml cloud 'c': {expected}")
            );
        }
        let err = CloudConfig::from_clouds_yaml(
            "clouds:\n  c: {auth: {password: hunter2 ]}}\n",
            None,
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("clouds.yaml is not valid YAML: "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = CloudConfig::from_clouds_yaml("", None, "c").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cloud 'c' not found in clouds.yaml (clouds there: none)"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn password_from_environment() {
        let config = CloudConfig::from_env_map(&env(&[
            ("OS_AUTH_URL", "http://10.0.0.5:5000/v3/"),
            ("OS_USERNAME", "admin"),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_NAME", "admin"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_ID", "default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_ENDPOINT_TYPE", "adminURL"),
            ("OS_INSECURE", "true"),
            ("OS_CACERT", "/ca.pem"),
            ("OS_DOMAIN_ID", ""),
            ("OS_NETWORK_ENDPOINT_OVERRIDE", "http://neutron:9696"),
        ]))
        .unwrap();
        assert_eq!(config.name, None);
        assert_eq!(config.auth_url, "http://10.0.0.5:5000/v3");
        assert_eq!(config.interface, "admin");
        assert!(!config.verify);
        assert_eq!(config.cacert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(config.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(
            config.endpoint_override.get("network").map(String::as_str),
            Some("http://neutron:9696")
        );
        assert_eq!(
            config.auth,
            Auth::Password {
                username: Some("admin".into()),
                user_id: None,
                password: Secret::new("pw"),
                user_domain_name: Some("Default".into()),
                user_domain_id: None,
                scope: Scope {
                    project_name: Some("admin".into()),
                    project_domain_id: Some("default".into()),
                    ..Scope::default()
                },
            }
        );
    }

    #[test]
    fn application_credential_and_token_from_environment() {
        let config = CloudConfig::from_env_map(&env(&[
            ("OS_AUTH_URL", "https://k"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "xyz"),
            ("OS_INTERFACE", "public"),
        ]))
        .unwrap();
        assert_eq!(config.auth_url, "https://k/v3");
        assert!(matches!(
            &config.auth,
            Auth::ApplicationCredential { id: Some(id), secret, .. } if id == "abc" && secret.expose() == "xyz"
        ));

        let config = CloudConfig::from_env_map(&env(&[
            ("OS_AUTH_URL", "https://k/identity/v3"),
            ("OS_AUTH_TYPE", "token"),
            ("OS_TOKEN", "tok"),
            ("OS_PROJECT_ID", "p1"),
        ]))
        .unwrap();
        assert_eq!(
            config.auth,
            Auth::Token {
                token: Secret::new("tok"),
                scope: Scope::project("p1")
            }
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let err = |pairs: &[(&str, &str)]| {
            CloudConfig::from_env_map(&env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[]),
            "environment (OS_CLOUD not set): OS_AUTH_URL is missing"
        );
        assert_eq!(
            err(&[("OS_AUTH_URL", "http://k"), ("OS_PASSWORD", "p")]),
            "environment (OS_CLOUD not set): OS_USERNAME or OS_USER_ID is missing"
        );
        assert_eq!(
            err(&[
                ("OS_AUTH_URL", "http://k"),
                ("OS_PASSWORD", "p"),
                ("OS_USERNAME", "u"),
                ("OS_PROJECT_NAME", "p"),
                ("OS_USER_DOMAIN_NAME", "Default"),
            ]),
            "environment (OS_CLOUD not set): OS_PROJECT_DOMAIN_NAME: is needed with OS_PROJECT_NAME (or set OS_PROJECT_DOMAIN_ID)"
        );
    }

    #[test]
    fn default_domain_fills_user_and_project_domains() {
        let config = CloudConfig::from_env_map(&env(&[
            ("OS_AUTH_URL", "http://k"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
            ("OS_PROJECT_NAME", "proj"),
            ("OS_DEFAULT_DOMAIN_ID", "default"),
        ]))
        .unwrap();
        let Auth::Password {
            user_domain_id,
            scope,
            ..
        } = &config.auth
        else {
            panic!()
        };
        assert_eq!(user_domain_id.as_deref(), Some("default"));
        assert_eq!(scope.project_domain_id.as_deref(), Some("default"));
    }

    #[test]
    fn auth_url_normalisation() {
        let ok = |raw: &str| normalize_auth_url(raw).unwrap();
        assert_eq!(ok("http://k:5000"), "http://k:5000/v3");
        assert_eq!(ok("http://k:5000/"), "http://k:5000/v3");
        assert_eq!(ok("http://k:5000/v3/"), "http://k:5000/v3");
        assert_eq!(ok("http://k/identity"), "http://k/identity/v3");
        assert_eq!(ok("http://k/identity/v3.14"), "http://k/identity/v3.14");
        assert_eq!(ok("http://k/identity/v2.0"), "http://k/identity/v3");
        assert_eq!(ok("http://k/version"), "http://k/version/v3");
        assert!(normalize_auth_url("ftp://k").is_err());
    }

    #[test]
    fn interfaces() {
        for (text, expected) in [
            ("public", Some("public")),
            ("publicURL", Some("public")),
            ("internalURL", Some("internal")),
            ("Admin", Some("admin")),
            ("private", None),
        ] {
            assert_eq!(normalize_interface(text), expected, "{text}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        let config = cloud("devstack");
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("Secret(<redacted>)"));
        assert_eq!(Secret::new("x").to_string(), "<redacted>");
    }

    #[test]
    fn load_finds_files_in_order_and_merges_secure_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("cwd");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(home.join(".config/openstack")).unwrap();
        std::fs::write(home.join(".config/openstack/clouds.yaml"), CLOUDS).unwrap();
        std::fs::write(
            home.join(".config/openstack/secure.yml"),
            "clouds: {nopassword: {auth: {password: pw}}}",
        )
        .unwrap();
        let mut vars = env(&[("HOME", home.to_str().unwrap()), ("OS_CLOUD", "nopassword")]);
        let config = CloudConfig::load_with(None, &vars, Some(&cwd)).unwrap();
        assert_eq!(config.name.as_deref(), Some("nopassword"));

        // The named cloud wins over OS_CLOUD; ./clouds.yaml over ~/.config. (secure.yml
        // from ~/.config is still merged in, as openstacksdk does.)
        std::fs::write(
            cwd.join("clouds.yaml"),
            "clouds: {local: {auth: {auth_url: 'http://local', user_id: u, password: p}}}",
        )
        .unwrap();
        let config = CloudConfig::load_with(Some("local"), &vars, Some(&cwd)).unwrap();
        assert_eq!(config.auth_url, "http://local/v3");
        let err = CloudConfig::load_with(Some("devstack"), &vars, Some(&cwd)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cloud 'devstack' not found in {} (clouds there: local, nopassword)",
                cwd.join("clouds.yaml").display()
            )
        );

        // OS_CLIENT_CONFIG_FILE wins over everything.
        let explicit = dir.path().join("explicit.yaml");
        std::fs::write(&explicit, CLOUDS).unwrap();
        vars.insert(
            "OS_CLIENT_CONFIG_FILE".into(),
            explicit.display().to_string(),
        );
        let config = CloudConfig::load_with(Some("devstack"), &vars, Some(&cwd)).unwrap();
        assert_eq!(config.auth_url, "http://10.0.0.5/identity/v3");

        // Without a cloud name, the environment.
        vars.remove("OS_CLOUD");
        vars.insert("OS_AUTH_URL".into(), "http://env".into());
        vars.insert("OS_USER_ID".into(), "u".into());
        vars.insert("OS_PASSWORD".into(), "p".into());
        let config = CloudConfig::load_with(None, &vars, Some(&cwd)).unwrap();
        assert_eq!(
            (config.name, config.auth_url.as_str()),
            (None, "http://env/v3")
        );
    }

    #[test]
    fn load_without_any_clouds_yaml_lists_the_places() {
        let dir = tempfile::tempdir().unwrap();
        let vars = env(&[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())]);
        let err = CloudConfig::load_with(Some("nowhere"), &vars, Some(dir.path()));
        // /etc/openstack/clouds.yaml may exist on this machine; only check the error.
        if let Err(ConfigError::NoCloudsFile { cloud, searched }) = err {
            assert_eq!(cloud, "nowhere");
            assert_eq!(searched[0], dir.path().join("clouds.yaml"));
            assert!(searched.contains(&dir.path().join("openstack/clouds.yaml")));
            assert!(searched.contains(&PathBuf::from("/etc/openstack/clouds.yaml")));
        }
    }
}

//! The integrated container registry's model: robot credentials, repositories a tenant
//! made public, the scopes of the Docker registry token protocol and who is granted
//! what, and the containerd mirrors a cluster's nodes pull through.
//!
//! kaas is the registry's token service. Each tenant owns the namespace `<tenant>/`;
//! the operator's `library/` is readable by everyone; a repository its owner marked
//! public is readable anonymously. Everything else is refused.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{API_VERSION, Object, ObjectMeta};
use crate::validation::ValidationErrors;

/// The namespace of the operator's images, which every caller may pull.
pub const LIBRARY_NAMESPACE: &str = "library";
/// The longest repository name the registry takes (Distribution's limit).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// The most mirrored registries a cluster may name.
pub const MAX_MIRRORED_REGISTRIES: usize = 16;
/// The most endpoints one mirrored registry may have.
pub const MAX_MIRROR_ENDPOINTS: usize = 4;
/// The longest URL of a mirror endpoint.
pub const MAX_MIRROR_URL_LEN: usize = 512;

/// What a robot credential may do in its tenant's namespace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RegistryAccess {
    /// Pull only.
    Pull,
    /// Pull and push.
    Push,
}

impl RegistryAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryAccess::Pull => "pull",
            RegistryAccess::Push => "push",
        }
    }
}

impl fmt::Display for RegistryAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A robot credential of a tenant for the registry. Its user name is
/// `<tenant>+<name>`; its secret is shown once and stored only as a SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCredential {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "credential_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: RegistryCredentialSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCredentialSpec {
    pub access: RegistryAccess,
    /// What the credential is for, as its creator said.
    #[serde(default)]
    pub description: String,
    /// Who made it (`cluster:<name>` for a cluster's own pull credential).
    #[serde(default)]
    pub created_by: String,
    /// After this the credential is refused; `None`: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the current secret.
    #[serde(default)]
    pub secret_sha256: String,
    /// When the secret was last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
    /// The secret before the last rotation, still taken until its time is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret, taken until `validUntil` so that whoever uses it has time to
/// take the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviousSecret {
    pub secret_sha256: String,
    pub valid_until: DateTime<Utc>,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}
fn credential_kind() -> String {
    RegistryCredential::KIND.to_owned()
}
fn repository_kind() -> String {
    RegistryRepository::KIND.to_owned()
}

impl Object for RegistryCredential {
    const KIND: &'static str = "RegistryCredential";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl RegistryCredential {
    pub fn new(name: &str, spec: RegistryCredentialSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: credential_kind(),
            metadata: ObjectMeta::named(name),
            spec,
        }
    }

    /// The user name the registry's clients log in with: `<tenant>+<name>`.
    pub fn username(&self) -> String {
        credential_username(&self.metadata.tenant, &self.metadata.name)
    }

    /// Whether the credential is past its expiry at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.spec.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether a secret with this SHA-256 is taken at `now`: the current one, or the
    /// one before the last rotation within its overlap. Compared in constant time.
    pub fn accepts(&self, secret_sha256: &str, now: DateTime<Utc>) -> bool {
        if self.expired(now) {
            return false;
        }
        let current = constant_time_eq(secret_sha256, &self.spec.secret_sha256);
        let previous = self.spec.previous.as_ref().is_some_and(|p| {
            p.valid_until > now && constant_time_eq(secret_sha256, &p.secret_sha256)
        });
        current | previous
    }
}

impl RegistryCredentialSpec {
    /// Makes the secret with hash `secret_sha256` the current one; the one before stays
    /// valid for `overlap` (never past the credential's expiry; not at all for zero).
    pub fn rotate(&mut self, secret_sha256: String, now: DateTime<Utc>, overlap: chrono::Duration) {
        let mut valid_until = now + overlap;
        if let Some(expires) = self.expires_at {
            valid_until = valid_until.min(expires);
        }
        self.previous = (overlap > chrono::Duration::zero()).then(|| PreviousSecret {
            secret_sha256: std::mem::take(&mut self.secret_sha256),
            valid_until,
        });
        self.secret_sha256 = secret_sha256;
        self.rotated_at = Some(now);
    }
}

/// The prefix of the credentials kaas makes for clusters; refused for any other.
pub const CLUSTER_CREDENTIAL_PREFIX: &str = "cluster-";

/// The name of cluster `cluster`'s own pull credential.
pub fn cluster_credential_name(cluster: &str) -> String {
    format!("{CLUSTER_CREDENTIAL_PREFIX}{cluster}")
}

/// `<tenant>+<name>`, the user name of a robot credential.
pub fn credential_username(tenant: &str, name: &str) -> String {
    format!("{tenant}+{name}")
}

/// The tenant and name in a robot credential's user name, if it is one.
pub fn parse_credential_username(username: &str) -> Option<(&str, &str)> {
    let (tenant, name) = username.split_once('+')?;
    (crate::validation::check_dns_label(tenant).is_ok()
        && crate::validation::check_dns_label(name).is_ok())
    .then_some((tenant, name))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A repository of a tenant that its owner configured: today, whether it is public
/// (anyone may pull it, without logging in). Named by the repository's full name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryRepository {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "repository_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: RegistryRepositorySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryRepositorySpec {
    /// Anyone may pull it, without credentials.
    #[serde(default)]
    pub public: bool,
}

impl Object for RegistryRepository {
    const KIND: &'static str = "RegistryRepository";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl RegistryRepository {
    pub fn new(name: &str, spec: RegistryRepositorySpec) -> Self {
        Self {
            api_version: api_version(),
            kind: repository_kind(),
            metadata: ObjectMeta::named(name),
            spec,
        }
    }
}

/// Checks a repository name as the registry takes it: path components of lower-case
/// letters and digits, separated by `.`, `_`, `__` or dashes, joined by `/`, at most
/// [`MAX_REPOSITORY_LEN`] characters.
pub fn check_repository(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "must be at most {MAX_REPOSITORY_LEN} characters (got {})",
            name.len()
        ));
    }
    for component in name.split('/') {
        if !path_component_ok(component) {
            return Err(format!(
                "{name:?} is not a repository name: each part between '/' is lower-case letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(alnum) || !component.ends_with(alnum) {
        return false;
    }
    // Separators between alphanumeric runs: '.', '_', '__' or any number of '-'.
    let mut separator = String::new();
    for c in component.chars() {
        if alnum(c) {
            if !separator.is_empty() {
                let ok = separator == "."
                    || separator == "_"
                    || separator == "__"
                    || separator.chars().all(|s| s == '-');
                if !ok {
                    return false;
                }
                separator.clear();
            }
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    true
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(format!(
            "{tag:?} is not a tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// The tenant that owns a repository: its first path component.
pub fn repository_namespace(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

/// An action on a repository, as the token protocol names it.
pub const PULL: &str = "pull";
pub const PUSH: &str = "push";
pub const DELETE: &str = "delete";

/// One `scope` of a token request: `repository:<name>:<actions>` or
/// `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry`.
    pub resource_type: String,
    pub name: String,
    pub actions: BTreeSet<String>,
}

impl Scope {
    /// Parses one scope; `None` for what is not a scope (it is then granted nothing).
    pub fn parse(text: &str) -> Option<Scope> {
        let (resource_type, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // `repository(plugin):name` names a resource class; kaas grants none of them.
        if !matches!(resource_type, "repository" | "registry") || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// Who asks the token service for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCaller {
    /// No credentials: public repositories and `library/` only.
    Anonymous,
    /// A robot credential or an API token of a tenant.
    Tenant {
        tenant: String,
        access: RegistryAccess,
    },
    /// The operator (and kaas itself): everything.
    Operator,
}

/// What `caller` may do under `scope`, given whether the repository is public: the
/// intersection of what was asked and what is allowed. A tenant pulls and (with push
/// access) pushes in its own namespace; everyone pulls `library/` and public
/// repositories; only the operator pushes to `library/`, deletes and lists the catalog.
pub fn granted(caller: &RegistryCaller, scope: &Scope, public: bool) -> BTreeSet<String> {
    let mut allowed: BTreeSet<&str> = BTreeSet::new();
    match scope.resource_type.as_str() {
        "registry" if scope.name == "catalog" && *caller == RegistryCaller::Operator => {
            allowed.insert("*");
        }
        "repository" => {
            if check_repository(&scope.name).is_err() {
                return BTreeSet::new();
            }
            let namespace = repository_namespace(&scope.name);
            if public || namespace == LIBRARY_NAMESPACE {
                allowed.insert(PULL);
            }
            match caller {
                RegistryCaller::Operator => {
                    allowed.extend([PULL, PUSH, DELETE]);
                }
                RegistryCaller::Tenant { tenant, access } if tenant == namespace => {
                    allowed.insert(PULL);
                    if *access == RegistryAccess::Push {
                        allowed.insert(PUSH);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    // `*` asks for everything (skopeo's delete asks so): it gets what is allowed.
    if scope.actions.contains("*") {
        return allowed.into_iter().map(str::to_owned).collect();
    }
    scope
        .actions
        .iter()
        .filter(|a| allowed.contains(a.as_str()))
        .cloned()
        .collect()
}

/// How a cluster uses the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySpec {
    /// A pull credential of the cluster's own, as a `kubernetes.io/dockerconfigjson`
    /// Secret in every namespace and an imagePullSecret of each default
    /// ServiceAccount (when the server has a registry).
    #[serde(default = "yes")]
    pub pull_credential: bool,
    /// Registries the nodes' containerd pulls through mirrors (containerd's
    /// `hosts.toml`), in addition to the operator's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<RegistryMirror>,
}

impl Default for RegistrySpec {
    fn default() -> Self {
        Self {
            pull_credential: true,
            mirrors: Vec::new(),
        }
    }
}

impl RegistrySpec {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn yes() -> bool {
    true
}

/// The mirrors of one upstream registry, tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryMirror {
    /// The registry mirrored, as images name it: `docker.io`, `registry.k8s.io`,
    /// `ghcr.io`, `quay.io`, `registry.example:5000`.
    pub registry: String,
    /// The mirrors, tried in order.
    pub endpoints: Vec<MirrorEndpoint>,
    /// Whether containerd falls back to the registry itself when no mirror has the
    /// image. `false`: the mirrors only.
    #[serde(default = "yes")]
    pub fallback: bool,
}

/// One mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MirrorEndpoint {
    /// `https://mirror.example` or `http://10.0.0.5:5000`, optionally with a path
    /// (see `overridePath`).
    pub url: String,
    /// What containerd may use it for: `pull`, `resolve` (tags to digests), `push`.
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<MirrorCapability>,
    /// The URL's path replaces `/v2` (for mirrors that serve the API under another
    /// path).
    #[serde(default)]
    pub override_path: bool,
}

fn default_capabilities() -> Vec<MirrorCapability> {
    vec![MirrorCapability::Pull, MirrorCapability::Resolve]
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MirrorCapability {
    Pull,
    Resolve,
    Push,
}

impl MirrorCapability {
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorCapability::Pull => "pull",
            MirrorCapability::Resolve => "resolve",
            MirrorCapability::Push => "push",
        }
    }
}

/// Checks a registry host as images name it: a DNS name (lower case) with an optional
/// port, or an IPv4 address with an optional port.
pub fn check_registry_host(host: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{host:?} is not a registry host: a DNS name or IPv4 address, optionally with ':port'"
        ))
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return bad();
    }
    if name.is_empty() || name.len() > 253 {
        return bad();
    }
    if !name
        .split('.')
        .all(|label| crate::validation::check_dns_label(label).is_ok())
    {
        return bad();
    }
    Ok(())
}

/// Checks a mirror URL: `http` or `https`, a host, an optional port and path, no user
/// information, query or fragment, and no character that would need quoting.
pub fn check_mirror_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{url:?} is not a mirror URL: {why}"));
    if url.len() > MAX_MIRROR_URL_LEN {
        return Err(format!(
            "must be at most {MAX_MIRROR_URL_LEN} characters (got {})",
            url.len()
        ));
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return bad("it must start with http:// or https://");
    };
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return bad("only printable ASCII without spaces is allowed");
    }
    if url.contains(['?', '#', '@', '"', '\\', '\'']) {
        return bad("no user information, query, fragment or quotes are allowed");
    }
    let host = rest.split('/').next().unwrap_or_default();
    check_registry_host(&host.to_ascii_lowercase()).or_else(|_| bad("its host is not valid"))
}

/// Checks a list of mirrors; errors name `field` (`spec.registry.mirrors`) and the
/// entry.
pub fn validate_mirrors(mirrors: &[RegistryMirror], field: &str, errs: &mut ValidationErrors) {
    if mirrors.len() > MAX_MIRRORED_REGISTRIES {
        errs.push(
            field,
            format!("at most {MAX_MIRRORED_REGISTRIES} registries may be mirrored"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, mirror) in mirrors.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Err(reason) = check_registry_host(&mirror.registry) {
            errs.push(format!("{at}.registry"), reason);
        } else if !seen.insert(mirror.registry.as_str()) {
            errs.push(
                format!("{at}.registry"),
                format!("{:?} is mirrored twice", mirror.registry),
            );
        }
        if mirror.endpoints.is_empty() {
            errs.push(format!("{at}.endpoints"), "needs at least one mirror");
        }
        if mirror.endpoints.len() > MAX_MIRROR_ENDPOINTS {
            errs.push(
                format!("{at}.endpoints"),
                format!("at most {MAX_MIRROR_ENDPOINTS} mirrors per registry"),
            );
        }
        for (j, endpoint) in mirror.endpoints.iter().enumerate() {
            let at = format!("{at}.endpoints[{j}]");
            if let Err(reason) = check_mirror_url(&endpoint.url) {
                errs.push(format!("{at}.url"), reason);
            }
            if endpoint.capabilities.is_empty() {
                errs.push(
                    format!("{at}.capabilities"),
                    "needs at least one of pull, resolve, push",
                );
            }
        }
    }
}

/// The mirrors a cluster's nodes get: the operator's defaults, then the cluster's own
/// (a cluster's entry for a registry replaces the default one).
pub fn effective_mirrors(
    defaults: &[RegistryMirror],
    own: &[RegistryMirror],
) -> Vec<RegistryMirror> {
    let mut out: Vec<RegistryMirror> = defaults
        .iter()
        .filter(|d| !own.iter().any(|m| m.registry == d.registry))
        .cloned()
        .collect();
    out.extend(own.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    fn tenant(name: &str, access: RegistryAccess) -> RegistryCaller {
        RegistryCaller::Tenant {
            tenant: name.to_owned(),
            access,
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_parse_with_names_and_actions() {
        let s = scope("repository:alpha/app:pull,push");
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "alpha/app");
        assert_eq!(s.actions, set(&["pull", "push"]));
        assert_eq!(scope("registry:catalog:*").actions, set(&["*"]));
        assert_eq!(Scope::parse("repository"), None);
        assert_eq!(Scope::parse("repository(plugin):x:pull"), None);
        assert_eq!(Scope::parse("repository::pull"), None);
    }

    #[test]
    fn a_tenant_gets_its_own_namespace_only() {
        let alpha_push = tenant("alpha", RegistryAccess::Push);
        let alpha_pull = tenant("alpha", RegistryAccess::Pull);
        let want = scope("repository:alpha/app:pull,push,delete");
        assert_eq!(granted(&alpha_push, &want, false), set(&["pull", "push"]));
        assert_eq!(granted(&alpha_pull, &want, false), set(&["pull"]));
        let everything = scope("repository:alpha/app:*");
        assert_eq!(
            granted(&alpha_push, &everything, false),
            set(&["pull", "push"])
        );
        let other = scope("repository:beta/app:pull,push");
        assert!(granted(&alpha_push, &other, false).is_empty());
        // A repository named like the tenant but not under it is not the tenant's.
        let lookalike = scope("repository:alpha-x/app:pull");
        assert!(granted(&alpha_push, &lookalike, false).is_empty());
    }

    #[test]
    fn public_and_library_repositories_are_pulled_by_anyone() {
        let want = scope("repository:beta/app:pull,push");
        assert_eq!(
            granted(&RegistryCaller::Anonymous, &want, true),
            set(&["pull"])
        );
        assert!(granted(&RegistryCaller::Anonymous, &want, false).is_empty());
        let library = scope("repository:library/busybox:pull,push");
        assert_eq!(
            granted(&tenant("alpha", RegistryAccess::Push), &library, false),
            set(&["pull"])
        );
        assert_eq!(
            granted(&RegistryCaller::Operator, &library, false),
            set(&["pull", "push"])
        );
    }

    #[test]
    fn only_the_operator_lists_the_catalog() {
        let catalog = scope("registry:catalog:*");
        assert_eq!(
            granted(&RegistryCaller::Operator, &catalog, false),
            set(&["*"])
        );
        assert!(granted(&tenant("alpha", RegistryAccess::Push), &catalog, false).is_empty());
    }

    #[test]
    fn repository_names_follow_the_registry_grammar() {
        for ok in [
            "alpha/app",
            "alpha/a.b/c_d/e__f/g--h",
            "library/busybox",
            "a",
        ] {
            assert_eq!(check_repository(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Alpha/app",
            "alpha//app",
            "alpha/app/",
            "alpha/-app",
            "a/b___c",
            "a/b._c",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
        assert!(check_repository(&"a".repeat(256)).is_err());
        assert!(check_tag("v1.0-rc_1").is_ok());
        assert!(check_tag(".hidden").is_err());
        assert!(check_tag(&"t".repeat(129)).is_err());
    }

    #[test]
    fn rotated_secrets_are_taken_until_their_overlap_ends() {
        let now = Utc::now();
        let mut credential = RegistryCredential::new(
            "ci",
            RegistryCredentialSpec {
                access: RegistryAccess::Pull,
                description: String::new(),
                created_by: "admin".into(),
                expires_at: None,
                secret_sha256: "new".into(),
                rotated_at: Some(now),
                previous: Some(PreviousSecret {
                    secret_sha256: "old".into(),
                    valid_until: now + chrono::Duration::hours(1),
                }),
            },
        );
        assert!(credential.accepts("new", now));
        assert!(credential.accepts("old", now));
        assert!(!credential.accepts("old", now + chrono::Duration::hours(2)));
        assert!(!credential.accepts("", now));
        credential.spec.expires_at = Some(now);
        assert!(!credential.accepts("new", now));
    }

    #[test]
    fn usernames_carry_tenant_and_name() {
        assert_eq!(parse_credential_username("alpha+ci"), Some(("alpha", "ci")));
        assert_eq!(parse_credential_username("alpha"), None);
        assert_eq!(parse_credential_username("Alpha+ci"), None);
    }

    fn mirror(registry: &str, url: &str) -> RegistryMirror {
        RegistryMirror {
            registry: registry.into(),
            endpoints: vec![MirrorEndpoint {
                url: url.into(),
                capabilities: default_capabilities(),
                override_path: false,
            }],
            fallback: true,
        }
    }

    #[test]
    fn mirrors_are_checked_by_field() {
        let mut errs = ValidationErrors::default();
        validate_mirrors(
            &[
                mirror("docker.io", "https://mirror.example"),
                mirror("docker.io", "https://mirror.example"),
                mirror("Bad Host", "ftp://x"),
                mirror("quay.io", "https://m.example/\"\n"),
            ],
            "spec.registry.mirrors",
            &mut errs,
        );
        let fields: Vec<String> = errs.0.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "spec.registry.mirrors[1].registry",
                "spec.registry.mirrors[2].registry",
                "spec.registry.mirrors[2].endpoints[0].url",
                "spec.registry.mirrors[3].endpoints[0].url",
            ]
        );
        for ok in ["registry.k8s.io", "127.0.0.1:5100", "ghcr.io"] {
            assert_eq!(check_registry_host(ok), Ok(()), "{ok}");
        }
        assert!(check_registry_host("x:0").is_err());
    }

    #[test]
    fn a_cluster_s_mirror_replaces_the_default_for_its_registry() {
        let defaults = [
            mirror("docker.io", "https://a.example"),
            mirror("quay.io", "https://q.example"),
        ];
        let own = [mirror("docker.io", "https://b.example")];
        let effective = effective_mirrors(&defaults, &own);
        let urls: Vec<&str> = effective
            .iter()
            .map(|m| m.endpoints[0].url.as_str())
            .collect();
        assert_eq!(urls, ["https://q.example", "https://b.example"]);
    }
}

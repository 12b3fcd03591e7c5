//! Helm's Go objects for the chart layer to put in the render context: `.Files` and
//! `.Capabilities`, with the methods charts call on them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::value::{Object, Value};
use crate::yaml::to_yaml;

/// A chart's non-template files, as `.Files`: `Get`, `GetBytes`, `Glob`, `AsConfig`,
/// `AsSecrets` and `Lines`. Ranging over it yields names and contents.
#[derive(Debug, Clone, Default)]
pub struct Files {
    files: BTreeMap<String, String>,
}

impl Files {
    /// Files by path relative to the chart root (`files/config.yaml`).
    pub fn new(files: impl IntoIterator<Item = (String, String)>) -> Self {
        Files {
            files: files.into_iter().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// The files whose names match a glob (`*`, `**`, `?`, `[a-z]`, `{a,b}`, with `/`
    /// as separator, as gobwas/glob which Helm uses).
    pub fn glob(&self, pattern: &str) -> Files {
        let pat: Vec<char> = pattern.chars().collect();
        Files {
            files: self
                .files
                .iter()
                .filter(|(k, _)| {
                    let name: Vec<char> = k.chars().collect();
                    glob_match(&pat, &name)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn by_base_name(&self, encode: bool) -> String {
        if self.files.is_empty() {
            return String::new();
        }
        let m = crate::value::Map::new();
        for (k, v) in &self.files {
            let base = k.rsplit('/').next().unwrap_or(k).to_owned();
            let v = if encode {
                STANDARD.encode(v)
            } else {
                v.clone()
            };
            m.insert(base, Value::String(v));
        }
        to_yaml(&Value::Map(m))
    }
}

impl Object for Files {
    fn type_name(&self) -> String {
        "engine.files".into()
    }

    fn member(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let arg = || match args.first() {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!(
                "wrong number of args for {name}: want 1 got {}",
                args.len()
            )),
        };
        let v = match name {
            "Get" | "GetBytes" => {
                arg().map(|n| Value::String(self.get(&n).unwrap_or("").to_owned()))
            }
            "Glob" => arg().map(|p| Value::object(self.glob(&p))),
            "AsConfig" => Ok(Value::String(self.by_base_name(false))),
            "AsSecrets" => Ok(Value::String(self.by_base_name(true))),
            "Lines" => arg().map(|n| match self.get(&n) {
                Some(text) => Value::list(text.split('\n').map(Value::string).collect()),
                None => Value::list(Vec::new()),
            }),
            _ => return None,
        };
        Some(v)
    }

    fn as_data(&self) -> Option<Value> {
        Some(Value::map(
            self.files
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
        ))
    }

    fn to_text(&self) -> String {
        crate::fmt::format_v(&self.as_data().unwrap_or_default())
    }
}

fn glob_match(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') if pat.get(1) == Some(&'*') => {
            let rest = &pat[2..];
            (0..=name.len()).any(|i| glob_match(rest, &name[i..]))
        }
        Some('*') => {
            let rest = &pat[1..];
            for i in 0..=name.len() {
                if glob_match(rest, &name[i..]) {
                    return true;
                }
                if i < name.len() && name[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => !name.is_empty() && name[0] != '/' && glob_match(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(close) = pat.iter().position(|&c| c == ']') else {
                return !name.is_empty() && name[0] == '[' && glob_match(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else { return false };
            let class = &pat[1..close];
            let (negate, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(&pat[close + 1..], &name[1..])
        }
        Some('{') => {
            let Some(close) = pat.iter().position(|&c| c == '}') else {
                return !name.is_empty() && name[0] == '{' && glob_match(&pat[1..], &name[1..]);
            };
            let rest = &pat[close + 1..];
            pat[1..close].split(|&c| c == ',').any(|alt| {
                let mut p = alt.to_vec();
                p.extend_from_slice(rest);
                glob_match(&p, name)
            })
        }
        Some('\\') if pat.len() > 1 => {
            !name.is_empty() && name[0] == pat[1] && glob_match(&pat[2..], &name[1..])
        }
        Some(&c) => !name.is_empty() && name[0] == c && glob_match(&pat[1..], &name[1..]),
    }
}

/// `.Capabilities`: the Kubernetes version and API versions the chart renders for.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub kube_version: KubeVersion,
    pub api_versions: ApiVersions,
    /// `.Capabilities.HelmVersion.Version`, e.g. `v3.18.4`.
    pub helm_version: String,
}

impl Capabilities {
    /// Capabilities for a cluster version such as `v1.33.2` and the API versions it
    /// serves (`apps/v1`, `apps/v1/Deployment`, ...).
    pub fn new(kube_version: &str, api_versions: Vec<String>) -> Result<Self, String> {
        Ok(Capabilities {
            kube_version: KubeVersion::parse(kube_version)?,
            api_versions: ApiVersions(api_versions),
            helm_version: "v3.18.4".into(),
        })
    }
}

impl Object for Capabilities {
    fn type_name(&self) -> String {
        "*common.Capabilities".into()
    }

    fn member(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        let v = match name {
            "KubeVersion" => Value::object(self.kube_version.clone()),
            "APIVersions" => Value::object(self.api_versions.clone()),
            "HelmVersion" => Value::map([
                ("Version", Value::string(self.helm_version.clone())),
                ("GitCommit", Value::string("")),
                ("GitTreeState", Value::string("")),
                ("GoVersion", Value::string("")),
            ]),
            _ => return None,
        };
        Some(Ok(v))
    }

    fn to_text(&self) -> String {
        format!(
            "{{{} {} {}}}",
            self.kube_version.version,
            crate::fmt::format_v(&self.api_versions.data()),
            self.helm_version
        )
    }
}

/// `.Capabilities.KubeVersion`: `Version` and `GitVersion` (`v1.33.2`), `Major`
/// (`1`), `Minor` (`33`).
#[derive(Debug, Clone)]
pub struct KubeVersion {
    pub version: String,
    pub major: String,
    pub minor: String,
}

impl KubeVersion {
    pub fn parse(version: &str) -> Result<Self, String> {
        let v = crate::semver::Version::parse(version)
            .map_err(|e| format!("invalid Kubernetes version {version:?}: {e}"))?;
        let version = if version.starts_with('v') {
            version.to_owned()
        } else {
            format!("v{version}")
        };
        Ok(KubeVersion {
            version,
            major: v.major.to_string(),
            minor: v.minor.to_string(),
        })
    }
}

impl Object for KubeVersion {
    fn type_name(&self) -> String {
        "*common.KubeVersion".into()
    }

    fn member(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        let v = match name {
            "Version" | "GitVersion" | "String" => Value::string(self.version.clone()),
            "Major" => Value::string(self.major.clone()),
            "Minor" => Value::string(self.minor.clone()),
            _ => return None,
        };
        Some(Ok(v))
    }

    fn to_text(&self) -> String {
        self.version.clone()
    }
}

/// `.Capabilities.APIVersions`, with `Has "apps/v1"` (or `"apps/v1/Deployment"`).
#[derive(Debug, Clone)]
pub struct ApiVersions(pub Vec<String>);

impl ApiVersions {
    fn data(&self) -> Value {
        Value::list(self.0.iter().map(|s| Value::string(s.clone())).collect())
    }
}

impl Object for ApiVersions {
    fn type_name(&self) -> String {
        "common.VersionSet".into()
    }

    fn member(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            "Has" => Some(match args {
                [Value::String(v)] => Ok(Value::Bool(self.0.iter().any(|a| a == v))),
                _ => Err(format!(
                    "wrong number of args for Has: want 1 got {}",
                    args.len()
                )),
            }),
            _ => None,
        }
    }

    fn as_data(&self) -> Option<Value> {
        Some(self.data())
    }

    fn to_text(&self) -> String {
        crate::fmt::format_v(&self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_gobwas() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("files/*.yaml", "files/a.yaml"));
        assert!(!m("files/*.yaml", "files/sub/a.yaml"));
        assert!(m("files/**.yaml", "files/sub/a.yaml"));
        assert!(m("{a,b}/x", "b/x"));
        assert!(m("f?le[0-9]", "file7"));
    }
}

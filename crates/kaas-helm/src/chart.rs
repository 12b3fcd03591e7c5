//! A chart as Helm's loader (`pkg/chart/loader`) reads it: `Chart.yaml`, values,
//! schema, templates, other files and subcharts.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::archive;
use crate::error::ChartError;
use crate::ignore::IgnoreRules;

/// A loaded chart with its subcharts (from `charts/`, folders or archives).
#[derive(Debug, Clone)]
pub struct Chart {
    pub metadata: Metadata,
    /// `values.yaml` (empty when the chart has none).
    pub values: Map<String, Value>,
    /// `values.schema.json`, when present.
    pub schema: Option<Value>,
    /// Files under `templates/`, named from the chart root (`templates/x.yaml`).
    pub templates: Vec<ChartFile>,
    /// Every other file (`crds/`, `files/`, `README.md`, ...): what `.Files` serves.
    pub files: Vec<ChartFile>,
    /// The charts found in `charts/`, ordered by their entry name there.
    pub subcharts: Vec<Chart>,
}

/// One file of a chart, named relative to the chart root with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// `Chart.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// `v2`, or `v1` for Helm 2 charts (dependencies then come from
    /// `requirements.yaml`).
    pub api_version: String,
    pub name: String,
    pub version: String,
    pub app_version: String,
    pub description: String,
    /// A semver constraint on the Kubernetes version (`>=1.25.0-0`).
    pub kube_version: String,
    pub chart_type: ChartType,
    pub home: String,
    pub icon: String,
    pub sources: Vec<String>,
    pub keywords: Vec<String>,
    pub maintainers: Vec<Maintainer>,
    pub annotations: BTreeMap<String, String>,
    pub deprecated: bool,
    /// Helm 2's chart-level `condition` and `tags` (kept for `.Chart`).
    pub condition: String,
    pub tags: String,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartType {
    #[default]
    Application,
    /// Renders nothing of its own; its `define`s serve the charts that depend on it.
    Library,
}

impl ChartType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartType::Application => "application",
            ChartType::Library => "library",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintainer {
    pub name: String,
    pub email: String,
    pub url: String,
}

/// One entry of `dependencies:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dependency {
    pub name: String,
    /// A semver constraint the subchart's version must meet.
    pub version: String,
    pub repository: String,
    /// Comma-separated value paths; the first that holds a bool decides.
    pub condition: String,
    pub tags: Vec<String>,
    pub alias: String,
    /// `import-values` (refused at render time when not empty).
    pub import_values: Vec<Value>,
}

impl Chart {
    /// Loads a `.tgz` as `helm package` makes it: one top directory holding the chart.
    /// Refuses links, absolute paths, paths leaving the chart, files over
    /// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES) and archives unpacking to more than
    /// [`MAX_UNPACKED_BYTES`](crate::MAX_UNPACKED_BYTES).
    pub fn from_archive(bytes: &[u8]) -> Result<Chart, ChartError> {
        let files = archive::unpack(bytes, "(archive)")?;
        load_files(files, "(archive)")
    }

    /// Loads a chart kept in a folder, leaving out what its `.helmignore` names.
    pub fn from_dir(path: impl AsRef<Path>) -> Result<Chart, ChartError> {
        let path = path.as_ref();
        let files = read_dir_files(path)?;
        Chart::from_files(files)
    }

    /// Loads a chart from its files, named relative to the chart root
    /// (`Chart.yaml`, `templates/deployment.yaml`, `charts/sub/Chart.yaml`), leaving
    /// out what its `.helmignore` names, as Helm does for a folder.
    pub fn from_files(files: Vec<(String, Vec<u8>)>) -> Result<Chart, ChartError> {
        let files = apply_helmignore(files, "(files)")?;
        load_files(files, "(files)")
    }

    /// The chart's name from `Chart.yaml`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Whether this is a library chart.
    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == ChartType::Library
    }
}

/// Reads every regular file under `root`, sorted by path as Go's `filepath.Walk` visits
/// them, with the total size limited as for archives.
pub(crate) fn read_dir_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, ChartError> {
    let origin = root.display().to_string();
    let mut out = Vec::new();
    let mut total = 0u64;
    walk(root, "", &origin, &mut out, &mut total, 0)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    origin: &str,
    out: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
    depth: usize,
) -> Result<(), ChartError> {
    let io = |file: &str, e: std::io::Error| ChartError::load(origin, file, e.to_string());
    if depth > 32 {
        return Err(ChartError::load(origin, prefix, "folders nest too deeply"));
    }
    let shown = if prefix.is_empty() { "." } else { prefix };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io(shown, e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| io(shown, e))?;
    names.sort();
    for name in names {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = dir.join(&name);
        let meta = std::fs::metadata(&path).map_err(|e| io(&rel, e))?;
        if meta.is_dir() {
            walk(&path, &rel, origin, out, total, depth + 1)?;
        } else if meta.is_file() {
            if meta.len() > archive::MAX_FILE_BYTES {
                return Err(ChartError::load(
                    origin,
                    &rel,
                    format!(
                        "file is larger than the limit of {} bytes",
                        archive::MAX_FILE_BYTES
                    ),
                ));
            }
            *total += meta.len();
            if *total > archive::MAX_UNPACKED_BYTES {
                return Err(ChartError::load(
                    origin,
                    shown,
                    format!(
                        "chart is larger than the limit of {} bytes",
                        archive::MAX_UNPACKED_BYTES
                    ),
                ));
            }
            let data = std::fs::read(&path).map_err(|e| io(&rel, e))?;
            out.push((rel, data));
        }
    }
    Ok(())
}

/// Drops the files the chart's `.helmignore` (and Helm's default rule) names.
pub(crate) fn apply_helmignore(
    files: Vec<(String, Vec<u8>)>,
    origin: &str,
) -> Result<Vec<(String, Vec<u8>)>, ChartError> {
    let text = files
        .iter()
        .find(|(n, _)| n == ".helmignore")
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let rules =
        IgnoreRules::parse(&text).map_err(|e| ChartError::load(origin, ".helmignore", e))?;
    Ok(files
        .into_iter()
        .filter(|(n, _)| !rules.ignores_file(n))
        .collect())
}

/// Helm's `LoadFiles`: sorts files into the parts of a chart and loads subcharts.
fn load_files(files: Vec<(String, Vec<u8>)>, origin: &str) -> Result<Chart, ChartError> {
    let chart_yaml = files
        .iter()
        .find(|(n, _)| n == "Chart.yaml")
        .ok_or_else(|| ChartError::load(origin, "Chart.yaml", "Chart.yaml file is missing"))?;
    let mut metadata =
        parse_metadata(&chart_yaml.1).map_err(|e| ChartError::load(origin, "Chart.yaml", e))?;
    let chart = metadata.name.clone();
    let mut values = Map::new();
    let mut schema = None;
    let mut templates = Vec::new();
    let mut other = Vec::new();
    let mut subchart_files: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (name, data) in files {
        match name.as_str() {
            "Chart.yaml" | "Chart.lock" | "requirements.lock" => {}
            "values.yaml" => {
                values =
                    parse_values(&data).map_err(|e| ChartError::load(&chart, "values.yaml", e))?;
            }
            "values.schema.json" => {
                let v: Value = serde_json::from_slice(&data).map_err(|e| {
                    ChartError::load(&chart, "values.schema.json", format!("invalid JSON: {e}"))
                })?;
                schema = Some(v);
            }
            "requirements.yaml" if metadata.api_version == "v1" => {
                let req = yaml_to_json(&data).map_err(|e| ChartError::load(&chart, &name, e))?;
                metadata.dependencies = dependencies(req.get("dependencies"))
                    .map_err(|e| ChartError::load(&chart, &name, e))?;
            }
            n if n.starts_with("templates/") => templates.push(ChartFile { name, data }),
            n if n.starts_with("charts/") && !n.ends_with(".prov") => {
                let rest = &n["charts/".len()..];
                let entry = rest.split('/').next().unwrap_or(rest).to_owned();
                subchart_files
                    .entry(entry)
                    .or_default()
                    .push((rest.to_owned(), data));
            }
            _ => other.push(ChartFile { name, data }),
        }
    }
    let mut subcharts = Vec::new();
    for (entry, files) in subchart_files {
        if entry.starts_with('_') || entry.starts_with('.') {
            continue;
        }
        let where_ = format!("charts/{entry}");
        // Errors inside a subchart keep their file, placed under `charts/<entry>`.
        let nest = |e: ChartError| match e {
            ChartError::Load { file, reason, .. } => ChartError::Load {
                chart: chart.clone(),
                file: format!("{where_}/{file}"),
                reason,
            },
            other => other,
        };
        let sub = if entry.ends_with(".tgz") {
            let Some((_, data)) = files.iter().find(|(n, _)| *n == entry) else {
                return Err(ChartError::load(&chart, &where_, "not a chart archive"));
            };
            let files = archive::unpack(data, &where_).map_err(nest)?;
            load_files(files, &where_)
        } else {
            let files: Vec<(String, Vec<u8>)> = files
                .into_iter()
                .filter_map(|(n, d)| n.split_once('/').map(|(_, rest)| (rest.to_owned(), d)))
                .collect();
            load_files(files, &where_)
        };
        let sub = sub.map_err(nest);
        subcharts.push(sub?);
    }
    Ok(Chart {
        metadata,
        values,
        schema,
        templates,
        files: other,
        subcharts,
    })
}

/// YAML read as Helm reads it (through JSON); an empty file is `{}`.
pub(crate) fn yaml_to_json(data: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_saphyr::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    Ok(match v {
        Value::Null => Value::Object(Map::new()),
        v => v,
    })
}

fn parse_values(data: &[u8]) -> Result<Map<String, Value>, String> {
    match yaml_to_json(data)? {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "cannot load values.yaml: a map is needed, not {}",
            json_kind(&other)
        )),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A scalar as the string a Go string field gets from it (sigs.k8s.io/yaml converts
/// `appVersion: 1.16` to `"1.16"`).
fn string_of(v: Option<&Value>, key: &str) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(other) => Err(format!(
            "{key}: a string is needed, not {}",
            json_kind(other)
        )),
    }
}

fn strings_of(v: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|i| string_of(Some(i), key)).collect(),
        Some(other) => Err(format!("{key}: a list is needed, not {}", json_kind(other))),
    }
}

fn parse_metadata(data: &[u8]) -> Result<Metadata, String> {
    let doc = yaml_to_json(data)?;
    let Value::Object(m) = doc else {
        return Err(format!("a map is needed, not {}", json_kind(&doc)));
    };
    let s = |k: &str| string_of(m.get(k), k);
    let mut api_version = s("apiVersion")?;
    if api_version.is_empty() {
        api_version = "v1".into();
    }
    let chart_type = match s("type")?.as_str() {
        "" | "application" => ChartType::Application,
        "library" => ChartType::Library,
        _ => return Err("chart.metadata.type must be application or library".into()),
    };
    let mut annotations = BTreeMap::new();
    match m.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            for (k, v) in a {
                annotations.insert(k.clone(), string_of(Some(v), "annotations")?);
            }
        }
        Some(other) => {
            return Err(format!(
                "annotations: a map is needed, not {}",
                json_kind(other)
            ));
        }
    }
    let mut maintainers = Vec::new();
    if let Some(Value::Array(items)) = m.get("maintainers") {
        for item in items {
            let get = |k: &str| string_of(item.get(k), k);
            maintainers.push(Maintainer {
                name: get("name")?,
                email: get("email")?,
                url: get("url")?,
            });
        }
    }
    let md = Metadata {
        api_version,
        name: s("name")?,
        version: s("version")?,
        app_version: s("appVersion")?,
        description: s("description")?,
        kube_version: s("kubeVersion")?,
        chart_type,
        home: s("home")?,
        icon: s("icon")?,
        sources: strings_of(m.get("sources"), "sources")?,
        keywords: strings_of(m.get("keywords"), "keywords")?,
        maintainers,
        annotations,
        deprecated: matches!(m.get("deprecated"), Some(Value::Bool(true))),
        condition: s("condition")?,
        tags: s("tags")?,
        dependencies: dependencies(m.get("dependencies"))?,
    };
    validate_metadata(&md)?;
    Ok(md)
}

fn dependencies(v: Option<&Value>) -> Result<Vec<Dependency>, String> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "dependencies: a list is needed, not {}",
                json_kind(other)
            ));
        }
    };
    let mut out = Vec::new();
    for item in items {
        let get = |k: &str| string_of(item.get(k), &format!("dependencies: {k}"));
        let import_values = match item.get("import-values") {
            Some(Value::Array(v)) => v.clone(),
            _ => Vec::new(),
        };
        let dep = Dependency {
            name: get("name")?,
            version: get("version")?,
            repository: get("repository")?,
            condition: get("condition")?,
            tags: strings_of(item.get("tags"), "dependencies: tags")?,
            alias: get("alias")?,
            import_values,
        };
        if dep.name.is_empty() {
            return Err("dependencies: each dependency needs a name".into());
        }
        out.push(dep);
    }
    Ok(out)
}

/// Helm's `Metadata.Validate`.
fn validate_metadata(md: &Metadata) -> Result<(), String> {
    if md.api_version != "v1" && md.api_version != "v2" {
        return Err(format!(
            "chart.metadata.apiVersion {:?} is not supported (v1 or v2)",
            md.api_version
        ));
    }
    if md.name.is_empty() {
        return Err("chart.metadata.name is required".into());
    }
    if md.name.contains('/') || md.name.contains('\\') || md.name == "." || md.name == ".." {
        return Err(format!("chart.metadata.name {:?} is invalid", md.name));
    }
    if md.version.is_empty() {
        return Err("chart.metadata.version is required".into());
    }
    if kaas_gotmpl::semver::Version::parse(&md.version).is_err() {
        return Err(format!(
            "chart.metadata.version {:?} is invalid",
            md.version
        ));
    }
    if md.chart_type == ChartType::Library && md.api_version == "v1" {
        return Err("chart.metadata.type library needs apiVersion v2".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_chart_yaml_become_strings() {
        let md = parse_metadata(b"apiVersion: v2\nname: a\nversion: 1.2.3\nappVersion: 1.16\n");
        assert_eq!(md.map(|m| m.app_version), Ok("1.16".to_owned()));
    }

    #[test]
    fn chart_yaml_is_validated() {
        let err = |y: &str| parse_metadata(y.as_bytes()).err().unwrap_or_default();
        assert_eq!(
            err("apiVersion: v2\nversion: 1.0.0\n"),
            "chart.metadata.name is required"
        );
        assert_eq!(
            err("apiVersion: v2\nname: a\n"),
            "chart.metadata.version is required"
        );
        assert_eq!(
            err("apiVersion: v2\nname: a\nversion: one\n"),
            "chart.metadata.version \"one\" is invalid"
        );
        assert_eq!(
            err("apiVersion: v2\nname: a\nversion: 1.0.0\ntype: app\n"),
            "chart.metadata.type must be application or library"
        );
    }
}

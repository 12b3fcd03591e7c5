//! Helm charts as files: a chart's `Chart.yaml` read from its `.tgz`, and a folder
//! packaged into a `.tgz` as `helm package` lays it out (every file under
//! `<name>/`).

use std::io::Read;
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

/// The most bytes of a `Chart.yaml` read.
const MAX_CHART_YAML: u64 = 1 << 20;
/// The most entries of a chart archive looked through for its `Chart.yaml`.
const MAX_ENTRIES: usize = 10_000;

/// What a chart says about itself in its `Chart.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartMetadata {
    pub name: String,
    pub version: String,
    pub app_version: Option<String>,
    pub description: Option<String>,
    /// The whole `Chart.yaml` as JSON: Helm's OCI config blob.
    pub json: Value,
}

/// Reads `<name>/Chart.yaml` out of a chart's `.tgz`.
pub fn read_metadata(tgz: &[u8]) -> Result<ChartMetadata, String> {
    let mut archive = tar::Archive::new(GzDecoder::new(tgz));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a gzipped tar archive: {e}"))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            break;
        }
        let entry = entry.map_err(|e| format!("not a gzipped tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry's path cannot be read: {e}"))?
            .into_owned();
        let components: Vec<_> = path.components().collect();
        if components.len() != 2 || path.file_name().is_none_or(|n| n != "Chart.yaml") {
            continue;
        }
        let mut text = String::new();
        entry
            .take(MAX_CHART_YAML)
            .read_to_string(&mut text)
            .map_err(|e| format!("{} cannot be read as text: {e}", path.display()))?;
        return parse_metadata(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    Err("the archive holds no <chart>/Chart.yaml".to_owned())
}

fn parse_metadata(text: &str) -> Result<ChartMetadata, String> {
    let json: Value = serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let field = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let name = field("name").ok_or("no name")?;
    let version = field("version").ok_or("no version")?;
    if name.is_empty() || version.is_empty() {
        return Err("an empty name or version".to_owned());
    }
    Ok(ChartMetadata {
        app_version: field("appVersion"),
        description: field("description"),
        name,
        version,
        json,
    })
}

/// Packages the chart in `dir` (which holds `Chart.yaml`) as a `.tgz` whose entries are
/// `<name>/…`, with fixed times, owners and modes, so the same folder always gives the
/// same bytes.
pub fn package(dir: &Path) -> Result<Vec<u8>, String> {
    let chart_yaml = std::fs::read_to_string(dir.join("Chart.yaml"))
        .map_err(|e| format!("{}/Chart.yaml: {e}", dir.display()))?;
    let metadata = parse_metadata(&chart_yaml)?;
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for relative in files {
        let bytes = std::fs::read(dir.join(&relative))
            .map_err(|e| format!("{}: {e}", dir.join(&relative).display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let path = Path::new(&metadata.name).join(&relative);
        builder
            .append_data(&mut header, &path, bytes.as_slice())
            .map_err(|e| format!("cannot add {}: {e}", path.display()))?;
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| format!("cannot write the archive: {e}"))
}

/// The regular files under `dir/relative`, as paths relative to `dir`.
fn collect(dir: &Path, relative: &Path, files: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let here = dir.join(relative);
    let entries = std::fs::read_dir(&here).map_err(|e| format!("{}: {e}", here.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", here.display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        let path = relative.join(entry.file_name());
        if kind.is_dir() {
            collect(dir, &path, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_packaged_folder_reads_back_and_is_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.2\"\ndescription: A test\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
        let tgz = package(dir.path()).unwrap();
        assert_eq!(tgz, package(dir.path()).unwrap());
        let meta = read_metadata(&tgz).unwrap();
        assert_eq!(meta.name, "hello");
        assert_eq!(meta.version, "0.1.0");
        assert_eq!(meta.app_version.as_deref(), Some("1.2"));
        assert_eq!(meta.json["apiVersion"], "v2");
    }

    #[test]
    fn an_archive_without_chart_yaml_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder
            .append_data(&mut header, "x/values.yaml", &b"{}"[..])
            .unwrap();
        let tgz = builder.into_inner().unwrap().finish().unwrap();
        assert!(read_metadata(&tgz).unwrap_err().contains("Chart.yaml"));
        assert!(read_metadata(b"not gzip").is_err());
        assert!(package(dir.path()).unwrap_err().contains("Chart.yaml"));
    }
}

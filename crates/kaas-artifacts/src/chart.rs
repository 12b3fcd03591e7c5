//! Helm charts as files: a chart's `Chart.yaml` read from its `.tgz` (packaged as
//! `helm package` lays it out, every file under `<name>/`; `kaas_helm::package`
//! makes one from a folder).

use std::io::Read;

use flate2::read::GzDecoder;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    #[test]
    fn a_packaged_folder_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.2\"\ndescription: A test\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(
            dir.path().join("templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        )
        .unwrap();
        let tgz = kaas_helm::package(dir.path()).unwrap();
        let meta = read_metadata(&tgz).unwrap();
        assert_eq!(meta.name, "hello");
        assert_eq!(meta.version, "0.1.0");
        assert_eq!(meta.app_version.as_deref(), Some("1.2"));
        assert_eq!(meta.json["apiVersion"], "v2");
    }

    #[test]
    fn an_archive_without_chart_yaml_is_refused() {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder
            .append_data(&mut header, "x/values.yaml", &b"{}"[..])
            .unwrap();
        let tgz = builder.into_inner().unwrap().finish().unwrap();
        assert!(read_metadata(&tgz).unwrap_err().contains("Chart.yaml"));
        assert!(read_metadata(b"not gzip").is_err());
    }
}

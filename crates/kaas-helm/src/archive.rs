//! Chart archives (`.tgz`): unpacked with Helm's checks plus limits of kaas's own, and
//! written deterministically as `helm package` lays them out.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::error::ChartError;

/// The most an archive may unpack to, all files together (Helm allows 100 MiB; the
/// addons kaas installs are well under 2 MiB, so 20 MiB leaves room without letting a
/// compressed bomb fill memory).
pub const MAX_UNPACKED_BYTES: u64 = 20 * 1024 * 1024;

/// The most one file of an archive may unpack to (Helm's own limit).
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// Modification time written on every entry of a packaged chart (2000-01-01T00:00:00Z),
/// so packaging the same folder twice gives the same bytes.
pub const PACKAGE_MTIME: u64 = 946_684_800;

/// The files of a chart archive, named relative to the chart root (the archive's top
/// directory removed), in archive order. `origin` names the archive in errors.
pub(crate) fn unpack(bytes: &[u8], origin: &str) -> Result<Vec<(String, Vec<u8>)>, ChartError> {
    let bad = |file: &str, reason: String| ChartError::load(origin, file, reason);
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| bad("(archive)", format!("not a gzipped tar archive: {e}")))?;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| bad("(archive)", format!("not a gzipped tar archive: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(bad(&raw, "links are not allowed in a chart archive".into()));
            }
            other => {
                return Err(bad(
                    &raw,
                    format!("entry type {other:?} is not allowed in a chart archive"),
                ));
            }
        }
        let name = chart_relative(&raw).map_err(|reason| bad(&raw, reason))?;
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_FILE_BYTES {
            return Err(bad(
                &raw,
                format!("file is larger than the limit of {MAX_FILE_BYTES} bytes"),
            ));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(&raw, format!("cannot read: {e}")))?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(bad(
                &raw,
                format!("file is larger than the limit of {MAX_FILE_BYTES} bytes"),
            ));
        }
        total += data.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            return Err(bad(
                "(archive)",
                format!("unpacks to more than the limit of {MAX_UNPACKED_BYTES} bytes"),
            ));
        }
        files.push((name, data));
    }
    if files.is_empty() {
        return Err(bad("(archive)", "no files in chart archive".into()));
    }
    Ok(files)
}

/// The path of an archive entry relative to the chart root: the top directory removed,
/// cleaned, and refused if it leaves the chart.
fn chart_relative(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') || raw.starts_with('\\') || has_drive(raw) {
        return Err("chart illegally contains absolute paths".into());
    }
    let parts: Vec<&str> = raw.split('/').collect();
    if parts.len() < 2 {
        if parts.first() == Some(&"Chart.yaml") {
            return Err("chart yaml not in base directory".into());
        }
        return Err("file is not inside the chart's directory".into());
    }
    let mut clean: Vec<&str> = Vec::new();
    for part in &parts[1..] {
        match *part {
            "" | "." => {}
            ".." => {
                if clean.pop().is_none() {
                    return Err("chart illegally references parent directory".into());
                }
            }
            p => clean.push(p),
        }
    }
    if parts.contains(&"..") {
        return Err("chart illegally references parent directory".into());
    }
    if clean.is_empty() {
        return Err("chart illegally contains content outside the base directory".into());
    }
    Ok(clean.join("/"))
}

fn has_drive(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// A gzipped tar of `files` under the top directory `top`, entries sorted by name,
/// owned by root, mode 0644, modified at [`PACKAGE_MTIME`].
pub(crate) fn pack(top: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, std::io::Error> {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    for (name, data) in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(PACKAGE_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, format!("{top}/{name}"), data.as_slice())?;
    }
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_cleaned_or_refused() {
        assert_eq!(
            chart_relative("c/templates/a.yaml"),
            Ok("templates/a.yaml".into())
        );
        assert_eq!(chart_relative("c/./x//y"), Ok("x/y".into()));
        assert!(chart_relative("c/../../etc/passwd").is_err());
        assert!(chart_relative("c/templates/../../x").is_err());
        assert!(chart_relative("/etc/passwd").is_err());
        assert!(chart_relative("C:/x/y").is_err());
        assert!(chart_relative("Chart.yaml").is_err());
    }
}

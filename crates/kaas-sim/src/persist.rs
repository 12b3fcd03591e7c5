//! The state file: loaded at start, rewritten atomically after every mutation.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::SimError;
use crate::state::{STATE_FORMAT, State};

/// The state in `path`, or `None` when there is no such file yet.
pub(crate) fn load(path: &Path) -> Result<Option<State>, SimError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SimError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| SimError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if state.format > STATE_FORMAT {
        return Err(SimError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "format {} was written by a newer version (this one reads up to {STATE_FORMAT})",
                state.format
            ),
        });
    }
    Ok(Some(state))
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(".tmp");
    Ok(path.with_file_name(name))
}

/// Replaces the file at `path` with `state`: a temporary file in the same directory,
/// flushed to disk, then renamed over the old one, so that a reader (or a restart after
/// a crash) sees either the old state or the new one, never a torn write.
pub(crate) fn save(path: &Path, state: &State) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let temp = temp_path(path)?;
    {
        let mut file = File::create(&temp)?;
        file.write_all(&bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    fs::rename(&temp, path)?;
    // Make the rename itself durable; not every platform can open a directory.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

//! The state file: a snapshot of the whole state on its first line, then a journal of
//! what each mutation changed, one line per mutation, appended and flushed to disk
//! before the mutation returns. When the journal outgrows the snapshot, the file is
//! rewritten as a new snapshot (compaction), atomically.
//!
//! Loading applies the journal to the snapshot. A last line without its newline, or one
//! that does not parse, is an append a crash interrupted (its call never returned): it
//! is ignored, and the file rewritten. A bad line anywhere else is an error that names
//! the line. A file in the older single-snapshot format (pretty-printed, no journal)
//! loads as a snapshot and is rewritten in the current format.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::SimError;
use crate::state::{Patch, STATE_FORMAT, State};

/// The journal is compacted once it is this many times the snapshot's size...
const COMPACT_FACTOR: u64 = 2;
/// ...and at least this many bytes.
const MIN_COMPACT_BYTES: u64 = 4 << 20;

/// The state file, open for appending.
pub(crate) struct Store {
    path: PathBuf,
    /// Where changes are appended; `None` when the file must be rewritten first (it
    /// was never written in the current format, or an append failed half-way).
    file: Option<File>,
    snapshot_bytes: u64,
    journal_bytes: u64,
    /// The journal size below which it is never compacted.
    pub(crate) min_compact_bytes: u64,
    /// Makes every write fail, as a full or broken disk would.
    #[cfg(test)]
    pub(crate) fail_writes: bool,
}

impl Store {
    /// Loads the state in `path` (an empty one when there is no such file yet), and
    /// opens the file to append to it.
    pub(crate) fn open(path: &Path) -> Result<(State, Self), SimError> {
        let io_error = |source| SimError::Io {
            path: path.to_owned(),
            source,
        };
        let mut store = Self {
            path: path.to_owned(),
            file: None,
            snapshot_bytes: 0,
            journal_bytes: 0,
            min_compact_bytes: MIN_COMPACT_BYTES,
            #[cfg(test)]
            fail_writes: false,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((State::default(), store)),
            Err(source) => return Err(io_error(source)),
        };
        let loaded = parse(path, &bytes)?;
        store.snapshot_bytes = loaded.snapshot_bytes;
        store.journal_bytes = loaded.journal_bytes;
        if loaded.appendable {
            // Fails early when the file cannot be written.
            let file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(io_error)?;
            store.file = Some(file);
        }
        Ok((loaded.state, store))
    }

    fn wants_compaction(&self) -> bool {
        self.journal_bytes
            > COMPACT_FACTOR.saturating_mul(self.snapshot_bytes.max(self.min_compact_bytes))
    }

    fn check_writable(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_writes {
            return Err(io::Error::other("writes fail (injected)"));
        }
        Ok(())
    }

    /// Makes a mutation durable: `patch` is what it changed, `state` the state with
    /// the change. Appends the patch and flushes it to disk, or rewrites the file when
    /// it cannot be appended to; then compacts the journal if it has grown too big.
    /// When this fails, the file holds the state before the mutation (as far as a
    /// restart is concerned) and the next write rewrites it whole.
    pub(crate) fn write(&mut self, patch: &Patch, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let Some(file) = self.file.as_mut() else {
            return self.compact(state);
        };
        if patch.is_empty() {
            return Ok(());
        }
        let mut line = serde_json::to_vec(patch).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
            // What reached the file is unknown: never append after it.
            self.file = None;
            return Err(e);
        }
        self.journal_bytes += line.len() as u64;
        if self.wants_compaction()
            && let Err(e) = self.compact(state)
        {
            // The change itself is on disk; the journal is compacted another time.
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "compacting the simulated cloud's state file failed"
            );
        }
        Ok(())
    }

    /// Rewrites the file as a snapshot of `state` with an empty journal: a temporary
    /// file in the same directory, flushed to disk, then renamed over the old one, so
    /// that a restart after a crash finds either the old file or the new one.
    pub(crate) fn compact(&mut self, state: &State) -> io::Result<()> {
        self.check_writable()?;
        let mut bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let temp = temp_path(&self.path)?;
        let written = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)?;
            Ok(file)
        })();
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        };
        // Make the rename itself durable; not every platform can open a directory.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        // The new file's handle is at its end: appends go after the snapshot.
        self.file = Some(file);
        self.snapshot_bytes = bytes.len() as u64;
        self.journal_bytes = 0;
        Ok(())
    }
}

/// A state file, read.
struct Loaded {
    state: State,
    snapshot_bytes: u64,
    journal_bytes: u64,
    /// Whether appending to the file as it is keeps it valid: it is in the current
    /// format and ends with a whole line.
    appendable: bool,
}

fn corrupt(path: &Path, message: String) -> SimError {
    SimError::Corrupt {
        path: path.to_owned(),
        message,
    }
}

/// A parse error's message, without serde's own position (a line of the journal is
/// parsed on its own).
fn reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rsplit_once(" at line ") {
        Some((reason, _)) => reason.to_owned(),
        None => message,
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded, SimError> {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<State>();
    let mut state = match stream.next() {
        Some(Ok(state)) => state,
        Some(Err(e)) => return Err(corrupt(path, e.to_string())),
        None => return Err(corrupt(path, "the file is empty".to_owned())),
    };
    if state.format > STATE_FORMAT {
        return Err(corrupt(
            path,
            format!(
                "format {} was written by a newer version (this one reads up to {STATE_FORMAT})",
                state.format
            ),
        ));
    }
    // The snapshot's line ends at the first newline after it.
    let after = stream.byte_offset();
    let rest = &bytes[after..];
    let snapshot_end = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => after + i + 1,
        None => bytes.len(),
    };
    if !bytes[after..snapshot_end]
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        let line = 1 + bytes[..after].iter().filter(|b| **b == b'\n').count();
        return Err(corrupt(
            path,
            format!("line {line}: unexpected characters after the snapshot"),
        ));
    }
    let mut appendable = state.format == STATE_FORMAT && bytes.ends_with(b"\n");
    let mut line_no = 1 + bytes[..snapshot_end]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let mut start = snapshot_end;
    let mut journal_end = snapshot_end;
    while start < bytes.len() {
        let (line, end, whole) = match bytes[start..].iter().position(|b| *b == b'\n') {
            Some(i) => (&bytes[start..start + i], start + i + 1, true),
            None => (&bytes[start..], bytes.len(), false),
        };
        let last = end == bytes.len();
        match serde_json::from_slice::<Patch>(line) {
            Ok(patch) if whole => {
                state.apply(patch);
                journal_end = end;
            }
            result => {
                if !last {
                    let message = match result {
                        Err(e) => format!("line {line_no}: {}", reason(&e)),
                        Ok(_) => format!("line {line_no}: not a whole line"),
                    };
                    return Err(corrupt(path, message));
                }
                tracing::warn!(
                    path = %path.display(),
                    line = line_no,
                    "the last change in the simulated cloud's state file was cut short (a \
                     crash while it was written); it is ignored"
                );
                appendable = false;
            }
        }
        start = end;
        line_no += 1;
    }
    Ok(Loaded {
        state,
        snapshot_bytes: snapshot_end as u64,
        journal_bytes: (journal_end - snapshot_end) as u64,
        appendable,
    })
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

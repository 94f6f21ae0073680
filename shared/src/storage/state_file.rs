//! The last good config snapshot on disk (`--state-dir`), so a node restarted while etcd is
//! unreachable can serve at once (controlplane.md, step 6).
//!
//! The file is `louailink-state.json`: one header line
//! `louailink-state v1 sha256=<hex> bytes=<n>` followed by `n` bytes of JSON (revision,
//! hash, time, source, config). It is written atomically (temp file, fsync, rename, fsync of
//! the directory) with mode 0600 (certificates may hold private keys), and a file whose
//! length or checksum does not match is refused with a clear error.

use crate::model::Config;
use crate::storage::digest::{config_hash, sha256_hex};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The file name inside the state directory.
pub const FILE_NAME: &str = "louailink-state.json";
/// The start of the header line.
const MAGIC: &str = "louailink-state v1";

/// Why the state file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// A file-system operation failed.
    #[error("state file {}: cannot {action}: {error}", path.display())]
    Io {
        /// What was being done (`write`, `rename`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file exists but is damaged, truncated or not a state file.
    #[error("state file {} is corrupt ({reason}); delete it or let the node rewrite it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// The snapshot could not be encoded.
    #[error("state file {}: cannot encode the snapshot: {error}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The serializer's error.
        error: serde_json::Error,
    },
}

/// A config known to be good, with where and when it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// The etcd revision it reflects (0 for a file source).
    pub revision: i64,
    /// Its [`config_hash`] (recomputed on load).
    pub hash: String,
    /// When it was saved (RFC 3339, UTC).
    pub saved_at: String,
    /// Where it came from (the `-c` value, password redacted).
    pub source: String,
    /// The config.
    pub config: Config,
}

impl StateSnapshot {
    /// A snapshot of `config` at `revision`, from `source`, saved now.
    pub fn new(config: Config, revision: i64, source: impl Into<String>) -> Self {
        StateSnapshot {
            revision,
            hash: config_hash(&config),
            saved_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            source: source.into(),
            config,
        }
    }
}

/// The state file of one state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFile {
    dir: PathBuf,
}

/// Distinguishes temp files of concurrent saves in one process.
static SAVES: AtomicU64 = AtomicU64::new(0);

impl StateFile {
    /// The state file in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateFile { dir: dir.into() }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Writes `snapshot` atomically: a reader sees the old file or the new one, never a mix,
    /// even across a crash or power loss.
    pub fn save(&self, snapshot: &StateSnapshot) -> Result<(), StateFileError> {
        let path = self.path();
        let body = serde_json::to_vec_pretty(snapshot).map_err(|error| StateFileError::Encode {
            path: path.clone(),
            error,
        })?;
        let header = format!(
            "{MAGIC} sha256={} bytes={}\n",
            sha256_hex(&body),
            body.len()
        );
        fs::create_dir_all(&self.dir).map_err(|e| io("create directory", &self.dir, e))?;
        let n = SAVES.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{FILE_NAME}.{}.{n}.tmp", std::process::id()));
        let written = write_synced(&tmp, header.as_bytes(), &body)
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| io("rename into place", &path, e)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync directory", &self.dir, e))
    }

    /// Reads the snapshot back; `Ok(None)` when there is no file yet.
    pub fn load(&self) -> Result<Option<StateSnapshot>, StateFileError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path, e)),
        };
        let corrupt = |reason: String| StateFileError::Corrupt {
            path: path.clone(),
            reason,
        };
        let newline = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let header = std::str::from_utf8(&bytes[..newline])
            .map_err(|_| corrupt("header is not text".into()))?;
        let body = &bytes[newline + 1..];
        let (sum, len) = parse_header(header).ok_or_else(|| {
            corrupt(format!(
                "header {header:?} is not \"{MAGIC} sha256=<hex> bytes=<n>\""
            ))
        })?;
        if body.len() != len {
            return Err(corrupt(format!(
                "{} bytes of data where the header says {len}",
                body.len()
            )));
        }
        let actual = sha256_hex(body);
        if actual != sum {
            return Err(corrupt(format!(
                "checksum {actual} does not match the header's {sum}"
            )));
        }
        let mut snapshot: StateSnapshot = serde_json::from_slice(body)
            .map_err(|e| corrupt(format!("data does not decode: {e}")))?;
        snapshot.hash = config_hash(&snapshot.config);
        Ok(Some(snapshot))
    }
}

/// `(sha256, bytes)` from the header line.
fn parse_header(header: &str) -> Option<(String, usize)> {
    let rest = header.strip_prefix(MAGIC)?.strip_prefix(" sha256=")?;
    let (sum, len) = rest.split_once(" bytes=")?;
    let valid = sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit());
    valid.then_some(())?;
    Some((sum.to_ascii_lowercase(), len.parse().ok()?))
}

/// Creates `path` (mode 0600), writes both parts and fsyncs it.
fn write_synced(path: &Path, header: &[u8], body: &[u8]) -> Result<(), StateFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create", path, e))?;
    file.write_all(header)
        .and_then(|()| file.write_all(body))
        .map_err(|e| io("write", path, e))?;
    file.sync_all().map_err(|e| io("sync", path, e))
}

fn io(action: &'static str, path: &Path, error: std::io::Error) -> StateFileError {
    StateFileError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StateFile::new(dir.path().join("sub"))
            .load()
            .unwrap()
            .is_none());
    }

    #[test]
    fn header_parsing() {
        let sum = "a".repeat(64);
        assert_eq!(
            parse_header(&format!("{MAGIC} sha256={sum} bytes=12")),
            Some((sum.clone(), 12))
        );
        assert_eq!(parse_header(&format!("{MAGIC} sha256=abc bytes=12")), None);
        assert_eq!(parse_header(&format!("v0 sha256={sum} bytes=12")), None);
        assert_eq!(parse_header(&format!("{MAGIC} sha256={sum} bytes=x")), None);
    }
}

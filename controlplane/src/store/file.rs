//! The directory store (`--storage ./conf`), for single-node users: the config is the
//! directory's TOML/YAML/JSON files (what `louailink -c ./conf --autoreload` follows).
//!
//! - An item the API writes goes to its own file, `<kind>/<name>.toml` (`basic/basic.toml`;
//!   `.json` when TOML cannot hold the value); if it was written elsewhere before, it is
//!   taken out of that file first (TOML files keep their comments and layout).
//! - Every file is written atomically (a hidden temporary file, fsync, rename), so the data
//!   plane never reads half a file.
//! - Revisions are content versions: an item's revision is a hash of its value and the
//!   snapshot's revision a hash of the generation and every item, so `If-Match` and the
//!   "nothing changed since" check also notice hand edits.
//! - `meta/generation` and the history live in `<dir>/.louailink-control/` (hidden, so the
//!   loader skips it).

use crate::history::{key_segment, Record};
use crate::store::{Snapshot, StoreError, Stored, Write};
use louailink_shared::bounded::{read_regular_text, MAX_CONFIG_FILE};
use louailink_shared::storage::digest::sha256_hex;
use louailink_shared::storage::etcd::item_json;
use louailink_shared::storage::{Change, Committed, Expected, ItemKey};
use louailink_shared::{parse_text, Format};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The hidden directory holding the generation and the history.
const META_DIR: &str = ".louailink-control";

/// The directory back end.
#[derive(Clone, Debug)]
pub struct FileBackend {
    dir: PathBuf,
    history_limit: usize,
    lock: Arc<Mutex<()>>,
}

/// What a scan of the directory found.
struct Scan {
    snapshot: Snapshot,
    /// The file each item is written in.
    places: BTreeMap<ItemKey, PathBuf>,
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{what} {}: {e}", path.display()))
}

/// A positive 60-bit number from a hash, used as a revision.
fn version_of(text: &str) -> i64 {
    let hex = sha256_hex(text.as_bytes());
    i64::from_str_radix(&hex[..15], 16).unwrap_or(1).max(1)
}

impl FileBackend {
    /// A store on `dir` (created if missing, but not its parent).
    pub fn open(dir: &Path, history_limit: usize) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            std::fs::create_dir(dir).map_err(|e| io_error("cannot create", dir, e))?;
        }
        std::fs::create_dir_all(dir.join(META_DIR).join("history"))
            .map_err(|e| io_error("cannot create", dir, e))?;
        Ok(FileBackend {
            dir: dir.to_path_buf(),
            history_limit: history_limit.max(1),
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// How many history records are kept.
    pub fn history_limit(&self) -> usize {
        self.history_limit
    }

    /// Every item in the directory.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let this = self.clone();
        blocking(move || this.scan().map(|s| s.snapshot)).await
    }

    /// Applies a guarded write: refused (`None`) when the directory changed since the
    /// snapshot or an `If-Match` revision no longer holds.
    pub async fn commit(&self, write: &Write<'_>) -> Result<Option<Committed>, StoreError> {
        let this = self.clone();
        let changes = write.changes.to_vec();
        let expected = write.expected;
        let since = write.since;
        let if_match = write.if_match.to_vec();
        let record = write.record.cloned();
        blocking(move || {
            let _guard = this.lock.lock().unwrap_or_else(|p| p.into_inner());
            let scan = this.scan()?;
            let current = &scan.snapshot;
            if current.expected != expected || current.revision != since {
                return Ok(None);
            }
            for (key, revision) in &if_match {
                if current.items.get(key).map_or(0, |s| s.revision) != *revision {
                    return Ok(None);
                }
            }
            for change in &changes {
                this.apply(change, &scan.places)?;
            }
            let generation = expected.generation + 1;
            if let Some(record) = &record {
                this.write_record(record)?;
            }
            let meta = this.dir.join(META_DIR).join("generation");
            write_atomic(&meta, generation.to_string().as_bytes())?;
            let after = this.scan()?;
            Ok(Some(Committed {
                revision: after.snapshot.revision,
                generation,
            }))
        })
        .await
    }

    /// The newest `limit` records, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<Record>, StoreError> {
        let dir = self.dir.join(META_DIR).join("history");
        blocking(move || {
            let mut files = record_files(&dir)?;
            files.reverse();
            let mut records = Vec::new();
            for file in files.into_iter().take(limit) {
                let text = std::fs::read(&file).map_err(|e| io_error("cannot read", &file, e))?;
                match serde_json::from_slice::<Record>(&text) {
                    Ok(mut r) => {
                        r.revision = r.id;
                        records.push(r);
                    }
                    Err(e) => tracing::warn!("history {} does not decode: {e}", file.display()),
                }
            }
            Ok(records)
        })
        .await
    }

    fn scan(&self) -> Result<Scan, StoreError> {
        let files = config_files(&self.dir)?;
        let mut items = BTreeMap::new();
        let mut places = BTreeMap::new();
        for file in files {
            let Some(format) = Format::from_path(&file) else {
                continue;
            };
            // Bounded, and only a regular file (a FIFO put in its place must not hang the API).
            let text = read_regular_text(&file, MAX_CONFIG_FILE)
                .map_err(|e| io_error("cannot read", &file, e))?;
            let loaded = parse_text(&text, format, Some(&file)).map_err(|e| {
                StoreError::Failed(format!("the config directory does not parse:\n{e}"))
            })?;
            for (kind, name, item) in loaded.written_items() {
                let key = ItemKey::of(kind, name);
                let value =
                    item_json(&item).map_err(|e| io_error("cannot encode an item of", &file, e))?;
                let revision = version_of(&value.to_string());
                let stored = Stored {
                    value,
                    revision,
                    not_json: None,
                };
                if items.insert(key.clone(), stored).is_some() {
                    return Err(StoreError::Failed(format!(
                        "{key} is defined twice (again in {})",
                        file.display()
                    )));
                }
                places.insert(key, file.clone());
            }
        }
        let generation = self.generation()?;
        let digest: String = items
            .iter()
            .map(|(k, s): (&ItemKey, &Stored)| format!("{k}={};", s.revision))
            .collect();
        let snapshot = Snapshot {
            revision: version_of(&format!("{generation};{digest}")),
            expected: Expected {
                generation,
                generation_revision: generation,
            },
            items,
            staged: None,
        };
        Ok(Scan { snapshot, places })
    }

    fn generation(&self) -> Result<i64, StoreError> {
        let path = self.dir.join(META_DIR).join("generation");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }

    /// The file an item written by the API lives in.
    fn own_file(&self, key: &ItemKey, ext: &str) -> PathBuf {
        let kind = key.kind.as_str();
        let name = if key.kind.is_named() { &key.name } else { kind };
        self.dir.join(kind).join(format!("{name}.{ext}"))
    }

    fn apply(
        &self,
        change: &Change,
        places: &BTreeMap<ItemKey, PathBuf>,
    ) -> Result<(), StoreError> {
        let key = change.item_key();
        if let Some(file) = places.get(key) {
            remove_item(file, key)?;
        }
        let Change::Put { value, .. } = change else {
            return Ok(());
        };
        let mut doc = Map::new();
        key.put_in(&mut doc, value.clone());
        let doc = Value::Object(doc);
        let (path, text) = match toml::to_string(&doc) {
            Ok(text) => (self.own_file(key, "toml"), text),
            Err(_) => {
                let text = serde_json::to_string_pretty(&doc)
                    .map_err(|e| StoreError::Failed(format!("cannot encode {key}: {e}")))?;
                (self.own_file(key, "json"), text)
            }
        };
        if path.exists() {
            return Err(StoreError::Failed(format!(
                "{} holds other items; move them to other files first",
                path.display()
            )));
        }
        write_atomic(&path, text.as_bytes())
    }

    fn write_record(&self, record: &Record) -> Result<(), StoreError> {
        let dir = self.dir.join(META_DIR).join("history");
        let path = dir.join(format!("{}.json", key_segment(record.id)));
        let text = serde_json::to_vec(record)
            .map_err(|e| StoreError::Failed(format!("cannot encode history: {e}")))?;
        write_atomic(&path, &text)?;
        let files = record_files(&dir)?;
        let excess = files.len().saturating_sub(self.history_limit);
        for old in files.into_iter().take(excess) {
            std::fs::remove_file(&old).map_err(|e| io_error("cannot remove", &old, e))?;
        }
        Ok(())
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Failed(format!("file store task failed: {e}")))?
}

/// Every config file under `dir` (recursively, hidden entries skipped), sorted.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read", dir, e))?;
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| io_error("cannot read", &path, e))?;
        if meta.is_dir() {
            collect(&path, files)?;
        } else if meta.is_file() && Format::from_path(&path).is_some() {
            files.push(path);
        }
    }
    Ok(())
}

/// The history files, oldest first.
fn record_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error("cannot read", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Takes one item out of a file; the file is removed when nothing is left in it.
fn remove_item(file: &Path, key: &ItemKey) -> Result<(), StoreError> {
    let text = std::fs::read_to_string(file).map_err(|e| io_error("cannot read", file, e))?;
    let rest = match Format::from_path(file) {
        Some(Format::Toml) => {
            let mut doc: toml_edit::DocumentMut = text
                .parse()
                .map_err(|e| io_error("cannot parse", file, e))?;
            let kind = key.kind.as_str();
            if !key.kind.is_named() {
                doc.remove(kind);
            } else if let Some(table) = doc.get_mut(kind).and_then(|t| t.as_table_like_mut()) {
                table.remove(&key.name);
                if table.is_empty() {
                    doc.remove(kind);
                }
            }
            (!doc.as_table().is_empty()).then(|| doc.to_string())
        }
        Some(format) => {
            let mut root: Value = match format {
                Format::Yaml => {
                    serde_yaml::from_str(&text).map_err(|e| io_error("cannot parse", file, e))?
                }
                _ => serde_json::from_str(&text).map_err(|e| io_error("cannot parse", file, e))?,
            };
            if let Value::Object(obj) = &mut root {
                key.take_from(obj);
            }
            let empty = root.as_object().is_some_and(|o| o.is_empty());
            let encoded = match format {
                Format::Yaml => serde_yaml::to_string(&root).map_err(|e| e.to_string()),
                _ => serde_json::to_string_pretty(&root).map_err(|e| e.to_string()),
            };
            let encoded = encoded.map_err(|e| io_error("cannot encode", file, e))?;
            (!empty).then_some(encoded)
        }
        None => return Ok(()),
    };
    match rest {
        Some(text) => write_atomic(file, text.as_bytes()),
        None => std::fs::remove_file(file).map_err(|e| io_error("cannot remove", file, e)),
    }
}

/// Writes `bytes` to `path` atomically: a hidden temporary file beside it, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_taken_out_of_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(
            &f,
            "[upstreams.u]\naddrs = [\"127.0.0.1:1\"]\n\n# keep me\n[upstreams.v]\naddrs = [\"127.0.0.1:2\"]\n",
        )
        .unwrap();
        remove_item(&f, &ItemKey::new("upstreams", "u").unwrap()).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.contains("# keep me")
                && text.contains("upstreams.v")
                && !text.contains("127.0.0.1:1"),
            "{text}"
        );
        remove_item(&f, &ItemKey::new("upstreams", "v").unwrap()).unwrap();
        assert!(!f.exists());
        let j = dir.path().join("b.json");
        std::fs::write(
            &j,
            r#"{"basic": {"threads": 1}, "plugins": {"p": {"category": "ping", "path": "/p"}}}"#,
        )
        .unwrap();
        remove_item(&j, &ItemKey::basic()).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"plugins": {"p": {"category": "ping", "path": "/p"}}})
        );
    }
}

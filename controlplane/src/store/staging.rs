//! Staging a change split over several etcd transactions, so that nodes never apply part of
//! it (docs/controlplane.md, "Changes over several transactions"): the first transaction
//! also writes the marker `<prefix>/meta/import`, every transaction but the last stashes the
//! values its items replace under `<prefix>/meta/import-undo/<id>/`, and the last one deletes
//! marker and stash. Nodes apply nothing while the marker exists. A change that fails midway
//! is rolled back from the stash (see `service/recover.rs`), the marker deleted last.

use crate::history::Recorded;
use louailink_shared::storage::{Expected, RawOp};
use serde::{Deserialize, Serialize};

/// What `<prefix>/meta/import` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Unique among staged changes: the generation and revision it started from.
    pub id: String,
    /// The store revision the change was planned against.
    pub base_revision: i64,
    /// `meta/generation` then.
    pub base_generation: i64,
    /// Who wrote it.
    pub actor: String,
    /// When it started (RFC 3339, UTC).
    pub time: String,
}

/// A marker with the exact bytes stored: later steps compare them (the marker is still ours).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMarker {
    /// The marker.
    pub marker: Marker,
    /// Its stored JSON.
    pub bytes: Vec<u8>,
}

impl StoredMarker {
    /// The marker of a change planned against `revision` and `expected`.
    pub fn new(revision: i64, expected: Expected, actor: &str) -> Self {
        let marker = Marker {
            id: format!("g{}-r{revision}", expected.generation),
            base_revision: revision,
            base_generation: expected.generation,
            actor: actor.to_string(),
            time: crate::history::now(),
        };
        Self::of(marker)
    }

    /// `marker` with its JSON.
    pub fn of(marker: Marker) -> Self {
        // A struct of strings and numbers always encodes.
        let bytes = serde_json::to_vec(&marker).unwrap_or_default();
        StoredMarker { marker, bytes }
    }
}

/// What one transaction of a staged change does besides its items.
#[derive(Clone, Copy, Debug)]
pub struct Staging<'a> {
    /// The change's marker.
    pub marker: &'a StoredMarker,
    /// The first transaction: writes the marker (which must not exist).
    pub begin: bool,
    /// The last transaction: deletes the marker and the stash.
    pub end: bool,
    /// Stash `(step, values replaced)`: what to restore if the change fails later.
    pub undo: Option<(usize, &'a [Recorded])>,
}

/// A staged change found in the store: its marker and every value to restore.
#[derive(Clone, Debug)]
pub struct Staged {
    /// The marker as stored.
    pub marker: StoredMarker,
    /// The values replaced by the steps written so far (`after` unset).
    pub undo: Vec<Recorded>,
}

/// The operations `staging` adds to a transaction, given the marker key and the stash
/// directory.
pub fn staging_ops(
    staging: &Staging<'_>,
    marker_key: &str,
    undo_dir: &str,
) -> Result<Vec<RawOp>, serde_json::Error> {
    let mut ops = Vec::new();
    if staging.begin {
        ops.push(RawOp::Put {
            key: marker_key.to_string(),
            value: staging.marker.bytes.clone(),
        });
    }
    if let Some((step, values)) = staging.undo {
        ops.push(RawOp::Put {
            key: format!("{undo_dir}{step:06}"),
            value: serde_json::to_vec(values)?,
        });
    }
    if staging.end {
        ops.push(RawOp::DeleteRange {
            start: marker_key.to_string(),
            end: format!("{marker_key}\0"),
        });
        ops.push(RawOp::DeleteRange {
            start: undo_dir.to_string(),
            end: range_end(undo_dir),
        });
    }
    Ok(ops)
}

/// The end of the range of keys under `dir` (which ends with `/`).
fn range_end(dir: &str) -> String {
    let end = louailink_shared::storage::etcd::prefix_end(dir.as_bytes());
    String::from_utf8_lossy(&end).into_owned()
}

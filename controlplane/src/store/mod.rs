//! Where the config lives: etcd ([`etcd`]) or a directory of files
//! ([`mod@file`]). The service reads a [`Snapshot`], validates, and commits its
//! changes guarded by that snapshot, so a write lands on exactly the state it was checked
//! against or not at all.

pub mod etcd;
pub mod file;
pub mod staging;

use crate::error::ApiError;
use crate::history::Record;
use etcd::EtcdBackend;
use file::FileBackend;
use louailink_shared::storage::{Change, Committed, Expected, ItemKey, NodeStatus};
use louailink_shared::{decode_item, Config, ConfigError};
use serde_json::Value;
use staging::{Staged, Staging};
use std::collections::BTreeMap;

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (etcd down or too slow).
    #[error("{0}")]
    Unavailable(String),
    /// The change is refused before it is sent (too many operations or bytes).
    #[error("{0}")]
    TooLarge(String),
    /// Anything else (an etcd error answer, a file that cannot be written).
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::TooLarge(m) => ApiError::invalid(m),
            StoreError::Failed(m) => ApiError::Internal(m),
        }
    }
}

/// One stored item value.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The JSON value (a string holding the raw text when it is not JSON).
    pub value: Value,
    /// Its revision (etcd mod revision; in file mode a content version).
    pub revision: i64,
    /// Why the value is not JSON, if it is not.
    pub not_json: Option<String>,
}

/// Everything the config is made of, at one revision.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The store revision of the read.
    pub revision: i64,
    /// `meta/generation` as read: a guarded commit expects it unchanged.
    pub expected: Expected,
    /// Every item.
    pub items: BTreeMap<ItemKey, Stored>,
    /// The id of a staged change whose marker exists (being written or rolled back).
    pub staged: Option<String>,
}

impl Snapshot {
    /// The revision of the newest config change (items and `meta/generation`).
    pub fn latest_revision(&self) -> i64 {
        self.items
            .values()
            .map(|s| s.revision)
            .chain([self.expected.generation_revision])
            .max()
            .unwrap_or(0)
    }

    /// The config made of every item that decodes, and the problems of those that do not.
    pub fn config(&self) -> (Config, Vec<ConfigError>) {
        let mut config = Config::default();
        let mut errors = Vec::new();
        for (key, stored) in &self.items {
            if let Some(e) = &stored.not_json {
                errors.push(ConfigError::new(key.label(), None, e.clone()));
                continue;
            }
            match decode_item(key.kind, &key.name, stored.value.clone()) {
                Ok(item) => item.insert_into(&mut config, &key.name),
                Err(e) => errors.extend(e),
            }
        }
        (config, errors)
    }
}

/// A guarded write: the changes, the state they were checked against, and the history
/// record that goes with them.
#[derive(Clone, Debug)]
pub struct Write<'a> {
    /// The item changes.
    pub changes: &'a [Change],
    /// The generation the snapshot saw.
    pub expected: Expected,
    /// The snapshot's revision: no config key may have changed after it.
    pub since: i64,
    /// Compare-and-swap conditions: item and the revision it must still have (0 = absent).
    pub if_match: &'a [(ItemKey, i64)],
    /// The history record, its id the next generation.
    pub record: Option<&'a Record>,
    /// Part of a change staged over several transactions (etcd only).
    pub staging: Option<Staging<'a>>,
}

/// A data-plane node's status key as read.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    /// The node id (the last key segment).
    pub id: String,
    /// The decoded status, or why it does not decode.
    pub status: Result<NodeStatus, String>,
}

/// The config store.
#[derive(Clone, Debug)]
pub enum Store {
    /// etcd, under one prefix.
    Etcd(Box<EtcdBackend>),
    /// A directory of config files.
    File(FileBackend),
}

impl Store {
    /// `etcd` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Etcd(_) => "etcd",
            Store::File(_) => "file",
        }
    }

    /// Reads every item at one revision.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        match self {
            Store::Etcd(s) => s.snapshot().await,
            Store::File(s) => s.snapshot().await,
        }
    }

    /// Commits `write` as one change; `None` when its conditions no longer hold (nothing
    /// was written).
    pub async fn commit(&self, write: &Write<'_>) -> Result<Option<Committed>, StoreError> {
        match self {
            Store::Etcd(s) => s.commit(write).await,
            Store::File(s) => s.commit(write).await,
        }
    }

    /// A staged change left in the store (etcd only), if any.
    pub async fn staged(&self) -> Result<Option<Staged>, StoreError> {
        match self {
            Store::Etcd(s) => s.staged().await,
            Store::File(_) => Ok(None),
        }
    }

    /// Whether changes over several transactions are staged (nodes apply them at once).
    pub fn stages(&self) -> bool {
        matches!(self, Store::Etcd(_))
    }

    /// The generation and revision a write that follows `committed` is guarded by.
    pub fn after(&self, committed: &Committed) -> (Expected, i64) {
        let generation_revision = match self {
            // The generation key was written by that very transaction.
            Store::Etcd(_) => committed.revision,
            Store::File(_) => committed.generation,
        };
        let expected = Expected {
            generation: committed.generation,
            generation_revision,
        };
        (expected, committed.revision)
    }

    /// The newest `limit` history records, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Etcd(s) => s.history(limit).await,
            Store::File(s) => s.history(limit).await,
        }
    }

    /// The data-plane nodes' status keys (none in file mode).
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, StoreError> {
        match self {
            Store::Etcd(s) => s.nodes().await,
            Store::File(_) => Ok(Vec::new()),
        }
    }

    /// The history size limit.
    pub fn history_limit(&self) -> usize {
        match self {
            Store::Etcd(s) => s.history_limit(),
            Store::File(s) => s.history_limit(),
        }
    }
}

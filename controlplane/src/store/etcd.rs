//! The etcd store: snapshots from shared's paged prefix read, guarded commits through
//! shared's `EtcdStore::commit_guarded` (items, the `meta/generation` bump and the history
//! record in one transaction), history and node keys. Every call is bounded by the store's
//! timeout, so an unreachable etcd is a fast [`StoreError::Unavailable`].

use crate::history::{key_segment, Record, Recorded};
use crate::store::staging::{staging_ops, Marker, Staged, StoredMarker};
use crate::store::{NodeEntry, Snapshot, StoreError, Stored, Write};
use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget};
use louailink_shared::storage::etcd::parse_generation;
use louailink_shared::storage::{
    Committed, EtcdError, EtcdSpec, EtcdStore, Expected, KeyKind, NodeStatus, RawOp,
};
use louailink_shared::{check_name, Kind};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// Largest history response accepted (records are bounded, but many may be read at once).
const HISTORY_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

/// The etcd back end.
#[derive(Clone, Debug)]
pub struct EtcdBackend {
    store: EtcdStore,
    history_limit: usize,
}

/// Maps an etcd failure: unreachable → unavailable, refused before sending → too large.
pub fn store_error(e: EtcdError) -> StoreError {
    if e.is_unavailable() {
        return StoreError::Unavailable(format!("etcd is unavailable: {e}"));
    }
    match e {
        EtcdError::Txn(m) => StoreError::TooLarge(format!("the change is too large: {m}")),
        other => StoreError::Failed(other.to_string()),
    }
}

impl EtcdBackend {
    /// Sets up the client (without auth this does not contact etcd yet); reads are bounded by
    /// the spec's timeout, writes by `write_timeout`.
    pub async fn connect(
        spec: &EtcdSpec,
        write_timeout: Duration,
        history_limit: usize,
    ) -> Result<Self, StoreError> {
        let store = EtcdStore::connect(spec)
            .await
            .map_err(store_error)?
            .with_write_timeout(write_timeout);
        Ok(EtcdBackend {
            store,
            history_limit: history_limit.max(1),
        })
    }

    /// The underlying shared store.
    pub fn store(&self) -> &EtcdStore {
        &self.store
    }

    /// How many history records are kept.
    pub fn history_limit(&self) -> usize {
        self.history_limit
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.store.timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(store_error(EtcdError::Request {
                op: "get",
                key: what.to_string(),
                error,
            })),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd is unavailable: no answer for {what} within {:?}",
                self.store.timeout()
            ))),
        }
    }

    /// Every item under the prefix, and `meta/generation`, at one revision.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let read = self.store.read_prefix().await.map_err(store_error)?;
        let keys = self.store.keys();
        let mut snapshot = Snapshot {
            revision: read.revision,
            ..Snapshot::default()
        };
        for entry in read.entries {
            match keys.parse(&entry.key) {
                Some(KeyKind::Item(key)) => {
                    // A hand-written key with a bad name is not an item the API can name.
                    if key.kind.is_named() && check_name(&key.name).is_err() {
                        continue;
                    }
                    let (value, not_json) = match serde_json::from_slice::<Value>(&entry.value) {
                        Ok(v) => (v, None),
                        Err(e) => (
                            Value::String(String::from_utf8_lossy(&entry.value).into_owned()),
                            Some(format!("value is not JSON: {e}")),
                        ),
                    };
                    let stored = Stored {
                        value,
                        revision: entry.mod_revision,
                        not_json,
                    };
                    snapshot.items.insert(key, stored);
                }
                Some(KeyKind::ImportMarker) => {
                    let id = serde_json::from_slice::<Marker>(&entry.value)
                        .map_or_else(|_| "?".to_string(), |m| m.id);
                    snapshot.staged = Some(id);
                }
                Some(KeyKind::Generation) => {
                    snapshot.expected = Expected {
                        generation: parse_generation(&entry.value).unwrap_or(0),
                        generation_revision: entry.mod_revision,
                    };
                }
                _ => {}
            }
        }
        Ok(snapshot)
    }

    /// One guarded transaction: the changes, the generation bump, the history record and
    /// the pruning of old records; only if nothing changed since the snapshot.
    pub async fn commit(&self, write: &Write<'_>) -> Result<Option<Committed>, StoreError> {
        let keys = self.store.keys();
        let mut compares = Vec::new();
        for (key, revision) in write.if_match {
            compares.push(Compare::mod_revision(
                keys.item(key),
                CompareOp::Equal,
                *revision,
            ));
        }
        // No config key was written after the snapshot (also by hand, outside the API).
        let next = write.since.saturating_add(1);
        compares.push(Compare::mod_revision(keys.basic(), CompareOp::Less, next));
        for kind in Kind::NAMED {
            compares.push(
                Compare::mod_revision(keys.kind_dir(kind), CompareOp::Less, next).with_prefix(),
            );
        }
        let mut extra = Vec::new();
        if let Some(record) = write.record {
            let value = serde_json::to_vec(record)
                .map_err(|e| StoreError::Failed(format!("cannot encode history: {e}")))?;
            extra.push(RawOp::Put {
                key: self.history_key(record.id),
                value,
            });
            let limit = i64::try_from(self.history_limit).unwrap_or(i64::MAX);
            if record.id > limit {
                extra.push(RawOp::DeleteRange {
                    start: self.history_dir(),
                    end: self.history_key(record.id - limit + 1),
                });
            }
        }
        if let Some(staging) = &write.staging {
            let marker_key = keys.import_marker();
            let bytes = staging.marker.bytes.clone();
            compares.push(if staging.begin {
                Compare::version(marker_key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::value(marker_key.clone(), CompareOp::Equal, bytes)
            });
            let undo_dir = keys.import_undo_dir(&staging.marker.marker.id);
            let ops = staging_ops(staging, &marker_key, &undo_dir)
                .map_err(|e| StoreError::Failed(format!("cannot encode the undo values: {e}")))?;
            extra.extend(ops);
        }
        self.store
            .commit_guarded(write.changes, write.expected, compares, &extra)
            .await
            .map_err(store_error)
    }

    fn history_dir(&self) -> String {
        format!("{}/history/", self.store.keys().prefix())
    }

    fn history_key(&self, id: i64) -> String {
        format!("{}{}", self.history_dir(), key_segment(id))
    }

    /// A KV client for reads of many records at once.
    fn history_kv(&self) -> etcd_client::KvClient {
        self.store
            .client()
            .kv_client()
            .max_decoding_message_size(HISTORY_MESSAGE_LIMIT)
    }

    /// The newest `limit` records, newest first (with their store revision).
    pub async fn history(&self, limit: usize) -> Result<Vec<Record>, StoreError> {
        let dir = self.history_dir();
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut kv = self.history_kv();
        let mut resp = self.timed(&dir, kv.get(dir.clone(), Some(options))).await?;
        let mut records = Vec::new();
        for kv in resp.take_kvs() {
            match serde_json::from_slice::<Record>(kv.value()) {
                Ok(mut record) => {
                    record.revision = kv.mod_revision();
                    records.push(record);
                }
                Err(e) => tracing::warn!(
                    "history record {} does not decode: {e}",
                    String::from_utf8_lossy(kv.key())
                ),
            }
        }
        Ok(records)
    }

    /// The staged change left in the store, if its marker exists: the marker and the values
    /// its steps replaced, in step order.
    pub async fn staged(&self) -> Result<Option<Staged>, StoreError> {
        let keys = self.store.keys();
        let Some(entry) = self
            .store
            .get(&keys.import_marker())
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let marker = serde_json::from_slice::<Marker>(&entry.value).map_err(|e| {
            StoreError::Failed(format!("{} does not decode: {e}", keys.import_marker()))
        })?;
        let marker = StoredMarker {
            marker,
            bytes: entry.value,
        };
        let dir = keys.import_undo_dir(&marker.marker.id);
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let mut kv = self.history_kv();
        let mut resp = self.timed(&dir, kv.get(dir.clone(), Some(options))).await?;
        let mut undo = Vec::new();
        for kv in resp.take_kvs() {
            let values: Vec<Recorded> = serde_json::from_slice(kv.value()).map_err(|e| {
                StoreError::Failed(format!(
                    "{} does not decode: {e}",
                    String::from_utf8_lossy(kv.key())
                ))
            })?;
            undo.extend(values);
        }
        Ok(Some(Staged { marker, undo }))
    }

    /// Every node status key.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, StoreError> {
        let dir = self.store.keys().nodes_dir();
        let mut client = self.store.client();
        let options = GetOptions::new().with_prefix();
        let mut resp = self
            .timed(&dir, client.get(dir.clone(), Some(options)))
            .await?;
        let mut nodes = Vec::new();
        for kv in resp.take_kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let id = key.strip_prefix(&dir).unwrap_or(&key).to_string();
            let status = serde_json::from_slice::<NodeStatus>(kv.value())
                .map_err(|e| format!("status is not a node status: {e}"));
            nodes.push(NodeEntry { id, status });
        }
        Ok(nodes)
    }

    /// The stored `basic` value, if any (for the webhook setting).
    pub async fn basic(&self) -> Result<Option<Value>, StoreError> {
        let key = self.store.keys().basic();
        let entry = self.store.get(&key).await.map_err(store_error)?;
        Ok(entry.and_then(|e| serde_json::from_slice(&e.value).ok()))
    }

    /// Whether etcd answers now (a count-only read of the prefix).
    pub async fn ping(&self) -> Result<i64, StoreError> {
        self.store.current_revision().await.map_err(store_error)
    }
}

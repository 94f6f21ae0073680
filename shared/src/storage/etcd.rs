//! The etcd client: connect (optionally with user/password and TLS through rustls + ring),
//! a paged, consistent read of the whole prefix, and the writes the control plane and the
//! tests need: one item, a multi-item transaction that also bumps `meta/generation`, delete.
//!
//! Every request is bounded by the spec's timeout. Item values are the compact JSON of the
//! model types, so `etcdctl get --prefix /louailink/locations/` shows readable JSON.

use crate::items::Item;
use crate::storage::keys::{ItemKey, KeyError, Keys};
use crate::storage::source::EtcdSpec;
use etcd_client::{
    Certificate, Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions,
    GetOptions, Identity, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most operations etcd accepts in one transaction (its default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;
/// Largest request etcd accepts (its default `--max-request-bytes`, 1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Items per page of the initial read (halved while a page is over [`MESSAGE_LIMIT`]).
pub const DEFAULT_PAGE_SIZE: usize = 500;
/// Largest read response or watch message accepted (the client's default is 4 MiB, below
/// what etcd may hold: one value may be as large as etcd's `--max-request-bytes`, which
/// operators raise, and etcd batches many revisions into one watch message).
pub(crate) const MESSAGE_LIMIT: usize = 64 * 1024 * 1024;
/// Attempts of a generation-bumping commit when another writer bumps it meanwhile.
const COMMIT_ATTEMPTS: u32 = 8;

/// An etcd failure, naming the operation and key.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The client could not be set up or could not authenticate.
    #[error("etcd {endpoints}: cannot connect: {error}")]
    Connect {
        /// The endpoints, comma separated.
        endpoints: String,
        /// The client's error.
        error: etcd_client::Error,
    },
    /// A TLS file could not be read.
    #[error("etcd: cannot read TLS {what} file {}: {error}", path.display())]
    TlsFile {
        /// `ca`, `cert` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("etcd {op} {key:?}: no answer within {timeout:?}")]
    Timeout {
        /// The operation (`get`, `put`, `txn`, …).
        op: &'static str,
        /// The key or range start.
        key: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A write got no answer within the write timeout: it may or may not have been applied.
    #[error("etcd {op} {key:?}: no answer within {timeout:?}; the write may still be applied")]
    WriteTimeout {
        /// The operation (`put`, `delete`, `txn`).
        op: &'static str,
        /// The key or range start.
        key: String,
        /// The write timeout.
        timeout: Duration,
    },
    /// etcd (or the transport) answered with an error.
    #[error("etcd {op} {key:?}: {error}")]
    Request {
        /// The operation.
        op: &'static str,
        /// The key or range start.
        key: String,
        /// The client's error.
        error: etcd_client::Error,
    },
    /// The revision asked for is compacted.
    #[error("etcd {op} {key:?}: revision {revision} is compacted")]
    Compacted {
        /// The operation.
        op: &'static str,
        /// The key or range start.
        key: String,
        /// The revision asked for.
        revision: i64,
    },
    /// A lease expired or could not be kept alive.
    #[error("etcd lease for {key:?}: {message}")]
    Lease {
        /// The key bound to the lease.
        key: String,
        /// What happened.
        message: String,
    },
    /// A transaction that etcd would refuse (too many operations, too large, duplicate keys).
    #[error("etcd transaction refused before sending: {0}")]
    Txn(String),
    /// `meta/generation` kept changing under concurrent writers.
    #[error("etcd commit: meta/generation changed under us {0} times in a row; giving up")]
    Conflict(u32),
    /// An item could not be encoded.
    #[error("cannot encode {key} as JSON: {error}")]
    Encode {
        /// The item.
        key: String,
        /// The serializer's error.
        error: serde_json::Error,
    },
    /// A bad prefix, kind or name.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl EtcdError {
    /// True when etcd could not be reached (as opposed to refusing a request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            EtcdError::Timeout { .. }
            | EtcdError::WriteTimeout { .. }
            | EtcdError::Connect { .. } => true,
            EtcdError::Request { error, .. } => {
                matches!(
                    error,
                    etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_)
                ) || matches!(error, etcd_client::Error::GRpcStatus(s)
                    if s.code() == tonic::Code::Unavailable)
            }
            _ => false,
        }
    }
}

/// One key and its value as read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// The full key (lossily decoded if not UTF-8).
    pub key: String,
    /// The value bytes.
    pub value: Vec<u8>,
    /// The revision of the last change of this key.
    pub mod_revision: i64,
}

/// The result of reading the whole prefix at one revision.
#[derive(Clone, Debug, Default)]
pub struct PrefixRead {
    /// The store revision the read saw.
    pub revision: i64,
    /// etcd's cluster id (changes when etcd is rebuilt from scratch).
    pub cluster_id: u64,
    /// Every key under the prefix, sorted by key.
    pub entries: Vec<RawEntry>,
    /// Keys whose value alone is over the read limit (value left empty): rejected, so that
    /// one such value never keeps a node from reading the rest.
    pub oversized: Vec<RawEntry>,
    /// How many responses the read took.
    pub pages: usize,
}

/// One change of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Create or replace an item with this JSON value.
    Put {
        /// The item.
        key: ItemKey,
        /// Its JSON value.
        value: Value,
    },
    /// Delete an item.
    Delete(ItemKey),
}

impl Change {
    /// A put of a decoded item (its kind must match the key's).
    pub fn put(key: ItemKey, item: &Item) -> Result<Change, EtcdError> {
        if item.kind() != key.kind {
            return Err(EtcdError::Txn(format!(
                "{key} cannot hold a {} item",
                item.kind()
            )));
        }
        let value = item_json(item).map_err(|error| EtcdError::Encode {
            key: key.label(),
            error,
        })?;
        Ok(Change::Put { key, value })
    }

    /// The item this change is about.
    pub fn item_key(&self) -> &ItemKey {
        match self {
            Change::Put { key, .. } | Change::Delete(key) => key,
        }
    }
}

/// The JSON value stored for an item: the model type's own serialization.
pub fn item_json(item: &Item) -> Result<Value, serde_json::Error> {
    match item {
        Item::Basic(v) => serde_json::to_value(v),
        Item::Server(v) => serde_json::to_value(v),
        Item::Location(v) => serde_json::to_value(v),
        Item::Upstream(v) => serde_json::to_value(v),
        Item::Plugin(v) => serde_json::to_value(v),
        Item::Certificate(v) => serde_json::to_value(v),
    }
}

/// The `meta/generation` a guarded commit expects to find (see
/// [`EtcdStore::commit_guarded`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Its value (0 when absent).
    pub generation: i64,
    /// Its mod revision (0 when absent).
    pub generation_revision: i64,
}

/// An operation on a key outside the config, added to a guarded commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOp {
    /// Write `value` at `key`.
    Put {
        /// The full key.
        key: String,
        /// The bytes.
        value: Vec<u8>,
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        /// First key deleted.
        start: String,
        /// First key kept.
        end: String,
    },
}

/// What a committed change produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The revision of the transaction.
    pub revision: i64,
    /// The new value of `meta/generation`.
    pub generation: i64,
}

/// A connection to etcd, scoped to one prefix.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    timeout: Duration,
    write_timeout: Duration,
    page_size: usize,
    /// Largest response accepted ([`MESSAGE_LIMIT`] unless a test lowers it).
    message_limit: usize,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("keys", &self.keys)
            .field("timeout", &self.timeout)
            .field("write_timeout", &self.write_timeout)
            .field("page_size", &self.page_size)
            .field("message_limit", &self.message_limit)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the endpoints of `spec`. Without auth this does not contact etcd yet (the
    /// first request does); with user/password it authenticates, within the timeout.
    pub async fn connect(spec: &EtcdSpec) -> Result<Self, EtcdError> {
        let keys = Keys::new(&spec.prefix)?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(spec.timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10))
            .with_keep_alive_while_idle(true);
        if let (Some(user), Some(password)) = (&spec.user, &spec.password) {
            options = options
                .with_user(user.clone(), password.expose())
                .with_auto_token_refresh(true);
        }
        if let Some(files) = &spec.tls {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &files.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read_file("ca", ca)?));
            }
            if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
                let identity = Identity::from_pem(read_file("cert", cert)?, read_file("key", key)?);
                tls = tls.identity(identity);
            }
            options = options.with_tls(tls);
        }
        let endpoints = spec.endpoints.join(",");
        let connect = Client::connect(spec.endpoints.clone(), Some(options));
        let client = match tokio::time::timeout(spec.timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(EtcdError::Connect { endpoints, error }),
            Err(_) => {
                return Err(EtcdError::Timeout {
                    op: "connect",
                    key: endpoints,
                    timeout: spec.timeout,
                })
            }
        };
        Ok(EtcdStore {
            client,
            keys,
            timeout: spec.timeout,
            write_timeout: spec.timeout,
            page_size: DEFAULT_PAGE_SIZE,
            message_limit: MESSAGE_LIMIT,
        })
    }

    /// The same store reading `page_size` keys per page (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The same store accepting responses up to `bytes` (tests lower it to see paging).
    pub fn with_message_limit(mut self, bytes: usize) -> Self {
        self.message_limit = bytes;
        self
    }

    /// The same store giving writes `timeout` (reads keep theirs): a write waits for etcd's
    /// disk, which a busy machine may slow far more than a read.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The key layout of this store's prefix.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The underlying client, for operations not wrapped here.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one request within the timeout, naming the operation and key in errors.
    pub(crate) async fn timed<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        self.bounded(false, op, key, fut).await
    }

    /// Runs one write within the write timeout.
    async fn timed_write<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        self.bounded(true, op, key, fut).await
    }

    async fn bounded<T>(
        &self,
        write: bool,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        let timeout = if write {
            self.write_timeout
        } else {
            self.timeout
        };
        let key = || key.to_string();
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(EtcdError::Request {
                op,
                key: key(),
                error,
            }),
            Err(_) if write => Err(EtcdError::WriteTimeout {
                op,
                key: key(),
                timeout,
            }),
            Err(_) => Err(EtcdError::Timeout {
                op,
                key: key(),
                timeout,
            }),
        }
    }

    /// Reads every key under the prefix at one revision, in pages of at most `page_size`
    /// keys, each response under the client's 4 MiB limit (a page that is too large is asked
    /// again at half the size). Retried from scratch if compaction overtakes the read.
    pub async fn read_prefix(&self) -> Result<PrefixRead, EtcdError> {
        let mut attempt = 0;
        loop {
            match self.read_prefix_once().await {
                Err(EtcdError::Compacted { .. }) if attempt < 3 => attempt += 1,
                other => return other,
            }
        }
    }

    async fn read_prefix_once(&self) -> Result<PrefixRead, EtcdError> {
        let root = self.keys.root();
        let end = prefix_end(root.as_bytes());
        let mut start = root.as_bytes().to_vec();
        let mut limit = self.page_size;
        let mut read = PrefixRead::default();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
            if read.revision > 0 {
                options = options.with_revision(read.revision);
            }
            let shown = String::from_utf8_lossy(&start).into_owned();
            let result = self
                .timed(
                    "get",
                    &shown,
                    self.kv().get(start.clone(), Some(options.clone())),
                )
                .await;
            let (mut resp, oversized) = match result {
                Ok(resp) => (resp, false),
                Err(e) if is_too_large(&e) && limit > 1 => {
                    limit = (limit / 2).max(1);
                    continue;
                }
                Err(e) if is_too_large(&e) => {
                    // One value alone is over the limit: take its key and go on past it.
                    let keys_only = options.with_keys_only();
                    let resp = self
                        .timed("get", &shown, self.kv().get(start.clone(), Some(keys_only)))
                        .await?;
                    (resp, true)
                }
                Err(e) if is_compacted(&e) => {
                    return Err(EtcdError::Compacted {
                        op: "get",
                        key: shown,
                        revision: read.revision,
                    })
                }
                Err(e) => return Err(e),
            };
            read.pages += 1;
            if read.revision == 0 {
                if let Some(header) = resp.header() {
                    read.revision = header.revision();
                    read.cluster_id = header.cluster_id();
                }
            }
            let more = resp.more();
            for kv in resp.take_kvs() {
                let mod_revision = kv.mod_revision();
                let (key, value) = kv.into_key_value();
                start = key.clone();
                let entry = RawEntry {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    value,
                    mod_revision,
                };
                if oversized {
                    tracing::warn!(
                        key = entry.key,
                        "etcd value over the {}-byte read limit: rejected",
                        self.message_limit
                    );
                    read.oversized.push(entry);
                } else {
                    read.entries.push(entry);
                }
            }
            if oversized {
                // Back to full pages after the one value that was too large.
                limit = self.page_size;
            }
            if !more {
                return Ok(read);
            }
            start.push(0);
        }
    }

    /// A KV client that accepts responses up to the message limit.
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(self.message_limit)
    }

    /// The current value of one key.
    pub async fn get(&self, key: &str) -> Result<Option<RawEntry>, EtcdError> {
        let mut resp = self.timed("get", key, self.kv().get(key, None)).await?;
        Ok(resp.take_kvs().into_iter().next().map(|kv| {
            let mod_revision = kv.mod_revision();
            let (k, value) = kv.into_key_value();
            RawEntry {
                key: String::from_utf8_lossy(&k).into_owned(),
                value,
                mod_revision,
            }
        }))
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> Result<i64, EtcdError> {
        let mut client = self.client.clone();
        let root = self.keys.root();
        let options = GetOptions::new().with_prefix().with_count_only();
        let resp = self
            .timed("get", &root, client.get(root.clone(), Some(options)))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Writes raw bytes at `key` (no generation bump): what a hand-made `etcdctl put` does.
    /// Returns the revision.
    pub async fn put_raw(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<i64, EtcdError> {
        let mut client = self.client.clone();
        let resp = self
            .timed_write("put", key, client.put(key, value.into(), None))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Deletes `key` (no generation bump). Returns the revision.
    pub async fn delete_raw(&self, key: &str) -> Result<i64, EtcdError> {
        let mut client = self.client.clone();
        let resp = self
            .timed_write("delete", key, client.delete(key, None))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Deletes every key under the prefix in one revision (a "wipe"). Returns the revision.
    pub async fn delete_prefix(&self) -> Result<i64, EtcdError> {
        let mut client = self.client.clone();
        let root = self.keys.root();
        let options = DeleteOptions::new().with_prefix();
        let resp = self
            .timed_write("delete", &root, client.delete(root.clone(), Some(options)))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Compacts etcd's history up to `revision` (waits until it is physically applied).
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        let options = CompactionOptions::new().with_physical();
        let shown = format!("revision {revision}");
        self.timed("compact", &shown, client.compact(revision, Some(options)))
            .await?;
        Ok(())
    }

    /// Creates or replaces one item, bumping `meta/generation` in the same transaction.
    pub async fn put_item(&self, key: &ItemKey, item: &Item) -> Result<Committed, EtcdError> {
        self.commit(&[Change::put(key.clone(), item)?]).await
    }

    /// Deletes one item, bumping `meta/generation` in the same transaction.
    pub async fn delete_item(&self, key: &ItemKey) -> Result<Committed, EtcdError> {
        self.commit(&[Change::Delete(key.clone())]).await
    }

    /// Applies `changes` as one transaction (one revision) that also bumps
    /// `meta/generation` (a JSON number, compare-and-swapped so concurrent writers never
    /// lose a bump). Refused before sending when etcd's limits (128 operations, 1.5 MiB)
    /// would be exceeded or a key appears twice.
    pub async fn commit(&self, changes: &[Change]) -> Result<Committed, EtcdError> {
        let ops = self.txn_ops(changes, &[])?;
        let gen_key = self.keys.generation();
        for _ in 0..COMMIT_ATTEMPTS {
            let current = self.get(&gen_key).await?;
            let (value, mod_revision) = match &current {
                Some(e) => (parse_generation(&e.value).unwrap_or(0), e.mod_revision),
                None => (0, 0),
            };
            let expected = Expected {
                generation: value,
                generation_revision: mod_revision,
            };
            if let Some(committed) = self.try_commit(&ops, expected, Vec::new()).await? {
                return Ok(committed);
            }
        }
        Err(EtcdError::Conflict(COMMIT_ATTEMPTS))
    }

    /// Like [`EtcdStore::commit`], but once, and only if `meta/generation` is still as
    /// `expected` and every one of `compares` holds (e.g. an item's mod revision for
    /// compare-and-swap); `extra` adds operations on keys outside the config (history).
    /// Returns `None`, changing nothing, when a condition failed: the caller re-reads and
    /// decides again. This is how a writer that validated against a read makes sure its
    /// write lands on exactly that state.
    pub async fn commit_guarded(
        &self,
        changes: &[Change],
        expected: Expected,
        compares: Vec<Compare>,
        extra: &[RawOp],
    ) -> Result<Option<Committed>, EtcdError> {
        let ops = self.txn_ops(changes, extra)?;
        self.try_commit(&ops, expected, compares).await
    }

    /// The operations of `changes` and `extra`, checked against etcd's limits (one
    /// operation and some bytes are kept for `meta/generation`).
    fn txn_ops(&self, changes: &[Change], extra: &[RawOp]) -> Result<Vec<TxnOp>, EtcdError> {
        let mut ops = Vec::with_capacity(changes.len() + extra.len() + 1);
        let mut size = 4096;
        let mut seen = std::collections::BTreeSet::new();
        for change in changes {
            let key = self.keys.item(change.item_key());
            if !seen.insert(key.clone()) {
                return Err(EtcdError::Txn(format!("{key} appears twice")));
            }
            match change {
                Change::Put { value, .. } => {
                    let bytes = serde_json::to_vec(value).map_err(|error| EtcdError::Encode {
                        key: key.clone(),
                        error,
                    })?;
                    size += key.len() + bytes.len() + 32;
                    ops.push(TxnOp::put(key, bytes, None));
                }
                Change::Delete(_) => {
                    size += key.len() + 32;
                    ops.push(TxnOp::delete(key, None));
                }
            }
        }
        for op in extra {
            match op {
                RawOp::Put { key, value } => {
                    size += key.len() + value.len() + 32;
                    ops.push(TxnOp::put(key.clone(), value.clone(), None));
                }
                RawOp::DeleteRange { start, end } => {
                    size += start.len() + end.len() + 32;
                    let options = DeleteOptions::new().with_range(end.clone());
                    ops.push(TxnOp::delete(start.clone(), Some(options)));
                }
            }
        }
        if ops.len() + 1 > MAX_TXN_OPS {
            return Err(EtcdError::Txn(format!(
                "{} changes; etcd accepts at most {} per transaction (one is meta/generation)",
                ops.len(),
                MAX_TXN_OPS - 1
            )));
        }
        if size > MAX_REQUEST_BYTES {
            return Err(EtcdError::Txn(format!(
                "about {size} bytes; etcd accepts at most {MAX_REQUEST_BYTES} per request"
            )));
        }
        Ok(ops)
    }

    /// One attempt: `ops` plus the generation bump, if the generation is as expected and
    /// `compares` hold.
    async fn try_commit(
        &self,
        ops: &[TxnOp],
        expected: Expected,
        mut compares: Vec<Compare>,
    ) -> Result<Option<Committed>, EtcdError> {
        let gen_key = self.keys.generation();
        let next = expected.generation + 1;
        let mut all = ops.to_vec();
        all.push(TxnOp::put(gen_key.clone(), next.to_string(), None));
        compares.push(Compare::mod_revision(
            gen_key.clone(),
            CompareOp::Equal,
            expected.generation_revision,
        ));
        let txn = Txn::new().when(compares).and_then(all);
        let mut client = self.client.clone();
        let resp = self.timed_write("txn", &gen_key, client.txn(txn)).await?;
        Ok(resp.succeeded().then(|| Committed {
            revision: resp.header().map_or(0, |h| h.revision()),
            generation: next,
        }))
    }

    /// Opens the one watch stream on the prefix, from `start_revision`, with progress
    /// notifications and a message limit large enough for batched revisions.
    pub(crate) async fn watch(&self, start_revision: i64) -> Result<WatchStream, EtcdError> {
        let root = self.keys.root();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_revision)
            .with_progress_notify();
        let mut watch = self
            .client
            .watch_client()
            .max_decoding_message_size(self.message_limit);
        self.timed("watch", &root, watch.watch(root.clone(), Some(options)))
            .await
    }
}

/// The value of `meta/generation` (a JSON number), if it is one.
pub fn parse_generation(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefix` rule).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn grpc_status(e: &EtcdError) -> Option<&tonic::Status> {
    match e {
        EtcdError::Request {
            error: etcd_client::Error::GRpcStatus(s),
            ..
        } => Some(s),
        _ => None,
    }
}

/// A response over the client's message limit.
fn is_too_large(e: &EtcdError) -> bool {
    grpc_status(e).is_some_and(|s| {
        s.code() == tonic::Code::ResourceExhausted
            || (s.code() == tonic::Code::OutOfRange && s.message().contains("too large"))
    })
}

/// etcd's "required revision has been compacted".
fn is_compacted(e: &EtcdError) -> bool {
    grpc_status(e).is_some_and(|s| s.message().contains("compacted"))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|error| EtcdError::TlsFile {
        what,
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/louailink/"), b"/louailink0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn generation_values() {
        assert_eq!(parse_generation(b"42"), Some(42));
        assert_eq!(parse_generation(b" 7\n"), Some(7));
        assert_eq!(parse_generation(b"x"), None);
    }

    #[test]
    fn put_checks_the_kind() {
        let item = Item::Basic(Default::default());
        let key = ItemKey::new("locations", "a").unwrap();
        assert!(Change::put(key, &item).is_err());
        assert!(Change::put(ItemKey::basic(), &item).is_ok());
    }
}

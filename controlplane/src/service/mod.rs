//! The one service layer behind REST and gRPC: reads, validated writes, dry runs,
//! import/export, history and rollback, nodes and events.
//!
//! A write goes: read a [`Snapshot`](crate::store::Snapshot) → plan the item changes (unchanged values dropped) →
//! validate the resulting config with the same code as `louailink -t` (every item, every
//! cross-item reference; only problems the change introduces count, so a hand-made broken
//! item elsewhere does not block unrelated writes) → commit as one transaction guarded by
//! the snapshot (generation, "no config key changed since", `If-Match`), with its history
//! record → emit `diff_config`. A guard that fails means someone else wrote meanwhile: the
//! write starts again from a fresh snapshot. A change too large for one etcd transaction
//! (128 operations, 1.5 MiB) is split into steps in dependency order, each checked to be a
//! valid config before anything is written.
//!
//! | module | concept |
//! |---|---|
//! | this one | the [`Service`] facade: reads, writes, dry runs, import/export, history, nodes, events |
//! | [`types`] | what it answers ([`ItemView`], [`WriteOutcome`], ...) and what a dry run checks ([`Check`]) |
//! | `plan` | the write planner: item changes in dependency order, split and validated |
//! | `write` | the write path: guarded commits, retries, staging over several transactions, the `diff_config` event |
//! | `recover` | rolling back a staged change that failed midway (or was left by a crash) |

mod plan;
mod recover;
pub mod types;
mod write;

pub use types::{Check, EventsView, Exported, ItemList, ItemView, ValidateOutcome, WriteOutcome};

use crate::auth::Caller;
use crate::diff::redact;
use crate::error::ApiError;
use crate::events::{Event, Events};
use crate::history::{rollback_targets, Record, RecordView};
use crate::nodes::{view, NodesView};
use crate::store::Store;
use crate::webhook::Stats;
use louailink_shared::storage::ItemKey;
use louailink_shared::{Format, Kind, UnknownKind};
use plan::{check_plan, decode, import_spec, plan, Spec, PUT_ORDER};
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// The service.
pub struct Service {
    store: Store,
    events: Events,
    webhook: OnceLock<Arc<Stats>>,
    write_lock: tokio::sync::Mutex<()>,
    /// Wakes the task that rolls back a staged change that failed ([`Service::run_recovery`]).
    recovery: tokio::sync::Notify,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

/// The kind named `word`; 404 (with a "did you mean") otherwise.
pub fn kind_of(word: &str) -> Result<Kind, ApiError> {
    word.parse()
        .map_err(|e: UnknownKind| ApiError::NotFound(e.to_string()))
}

fn key_of(kind: &str, name: &str) -> Result<ItemKey, ApiError> {
    ItemKey::checked(kind_of(kind)?, name).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Runs parsing and validation on the blocking pool: a large body costs CPU time that must
/// not hold an async worker (and with it other callers' requests).
pub(crate) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("validation did not finish: {e}")))
}

/// `toml`, `json`, `yaml`/`yml`.
pub fn format_of(name: &str) -> Result<Format, ApiError> {
    match name.to_ascii_lowercase().as_str() {
        "" | "toml" => Ok(Format::Toml),
        "json" => Ok(Format::Json),
        "yaml" | "yml" => Ok(Format::Yaml),
        other => Err(ApiError::invalid(format!(
            "unknown format {other:?}; one of toml, json, yaml"
        ))),
    }
}

impl Service {
    /// A service on `store`, emitting to `events`.
    pub fn new(store: Store, events: Events) -> Self {
        Service {
            store,
            events,
            webhook: OnceLock::new(),
            write_lock: tokio::sync::Mutex::new(()),
            recovery: tokio::sync::Notify::new(),
        }
    }

    /// Attaches the webhook sender's counters.
    pub fn set_webhook_stats(&self, stats: Arc<Stats>) {
        let _ = self.webhook.set(stats);
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The event hub.
    pub fn events_hub(&self) -> &Events {
        &self.events
    }

    fn item_view(caller: &Caller, key: &ItemKey, value: &Value, revision: i64) -> ItemView {
        let value = if caller.sees_secrets() {
            value.clone()
        } else {
            redact(key.kind.as_str(), value)
        };
        ItemView {
            kind: key.kind,
            name: key.name.clone(),
            revision,
            value,
        }
    }

    /// The items of `kind` (`basic`: the one basic item).
    pub async fn list(&self, caller: &Caller, kind: &str) -> Result<ItemList, ApiError> {
        let kind = kind_of(kind)?;
        let snap = self.store.snapshot().await?;
        let mut items: Vec<ItemView> = snap
            .items
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .map(|(k, s)| Self::item_view(caller, k, &s.value, s.revision))
            .collect();
        if !kind.is_named() && items.is_empty() {
            items.push(Self::item_view(caller, &ItemKey::basic(), &json!({}), 0));
        }
        Ok(ItemList {
            items,
            revision: snap.revision,
        })
    }

    /// One item (`basic` always exists: `{}` at revision 0 until written).
    pub async fn get(&self, caller: &Caller, kind: &str, name: &str) -> Result<ItemView, ApiError> {
        let key = key_of(kind, name)?;
        let snap = self.store.snapshot().await?;
        match snap.items.get(&key) {
            Some(s) => Ok(Self::item_view(caller, &key, &s.value, s.revision)),
            None if !key.kind.is_named() => Ok(Self::item_view(caller, &key, &json!({}), 0)),
            None => Err(ApiError::NotFound(format!("{key} does not exist"))),
        }
    }

    /// Creates or replaces an item; with `if_match`, only if it is still at that revision
    /// (0 = does not exist yet).
    pub async fn put(
        &self,
        caller: &Caller,
        kind: &str,
        name: &str,
        value: Value,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, ApiError> {
        caller.require_admin()?;
        let key = key_of(kind, name)?;
        let value = decode(&key, value)?;
        let spec = Spec {
            if_match: if_match.map(|r| (key.clone(), r)).into_iter().collect(),
            puts: vec![(key, value)],
            action: "put",
            ..Spec::default()
        };
        self.write(caller, spec).await
    }

    /// Deletes an item; refused (409) while others refer to it.
    pub async fn delete(
        &self,
        caller: &Caller,
        kind: &str,
        name: &str,
        if_match: Option<i64>,
    ) -> Result<WriteOutcome, ApiError> {
        caller.require_admin()?;
        let key = key_of(kind, name)?;
        let spec = Spec {
            if_match: if_match.map(|r| (key.clone(), r)).into_iter().collect(),
            deletes: vec![key],
            strict_delete: true,
            action: "delete",
            ..Spec::default()
        };
        self.write(caller, spec).await
    }

    /// Replaces the whole config with `text` (or merges it in), as one change.
    pub async fn import(
        &self,
        caller: &Caller,
        text: &str,
        format: Format,
        merge: bool,
    ) -> Result<WriteOutcome, ApiError> {
        caller.require_admin()?;
        let text = text.to_string();
        let mut spec = off_thread(move || import_spec(&text, format, !merge)).await??;
        spec.action = "import";
        self.write(caller, spec).await
    }

    /// Dry run: what a change would do, or the error it would get. Writes nothing.
    pub async fn validate(
        &self,
        _caller: &Caller,
        check: Check,
    ) -> Result<ValidateOutcome, ApiError> {
        let spec = match check {
            Check::Config {
                text,
                format,
                replace,
            } => off_thread(move || import_spec(&text, format, replace)).await??,
            Check::Item { kind, name, value } => {
                let key = key_of(&kind, &name)?;
                let value = decode(&key, value)?;
                Spec {
                    puts: vec![(key, value)],
                    ..Spec::default()
                }
            }
        };
        let snap = self.store.snapshot().await?;
        let plan = off_thread(move || {
            let plan = plan(&snap, &spec)?;
            check_plan(&snap, &plan)?;
            Ok::<_, ApiError>(plan)
        })
        .await??;
        Ok(ValidateOutcome {
            valid: true,
            steps: plan.steps.len(),
            added: plan.added,
            modified: plan.modified,
            removed: plan.removed,
        })
    }

    /// The whole config as `toml` or `json` text (secrets hashed for viewers).
    pub async fn export(&self, caller: &Caller, format: &str) -> Result<Exported, ApiError> {
        let format = match format_of(format)? {
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Yaml => return Err(ApiError::invalid("export is toml or json")),
        };
        let snap = self.store.snapshot().await?;
        let mut root = Map::new();
        for kind in PUT_ORDER {
            for (key, stored) in snap.items.iter().filter(|(k, _)| k.kind == kind) {
                if stored.not_json.is_some() {
                    continue;
                }
                let value = Self::item_view(caller, key, &stored.value, 0).value;
                key.put_in(&mut root, value);
            }
        }
        let root = Value::Object(root);
        let text = if format == "json" {
            serde_json::to_string_pretty(&root).map_err(|e| ApiError::Internal(e.to_string()))?
        } else {
            toml::to_string(&root).map_err(|e| {
                ApiError::Internal(format!(
                    "the config cannot be written as TOML ({e}); export it as json"
                ))
            })?
        };
        Ok(Exported {
            text,
            format: format.into(),
            revision: snap.revision,
        })
    }

    /// The newest `limit` history records (only those touching `item`, when given).
    pub async fn history(
        &self,
        _caller: &Caller,
        limit: usize,
        item: Option<&str>,
    ) -> Result<Vec<RecordView>, ApiError> {
        let limit = limit.clamp(1, self.store.history_limit());
        let read = if item.is_some() {
            self.store.history_limit()
        } else {
            limit
        };
        let records = self.store.history(read).await?;
        Ok(records
            .iter()
            .filter(|r| item.is_none_or(|i| r.changes.iter().any(|c| c.item == i)))
            .take(limit)
            .map(Record::view)
            .collect())
    }

    /// Brings every item changed after history record `to` back to its value at `to`.
    pub async fn rollback(&self, caller: &Caller, to: i64) -> Result<WriteOutcome, ApiError> {
        caller.require_admin()?;
        let records = self.store.history(self.store.history_limit()).await?;
        let snap = self.store.snapshot().await?;
        let targets = rollback_targets(&records, to, snap.expected.generation)?;
        let mut spec = Spec {
            action: "rollback",
            ..Spec::default()
        };
        for (label, value) in targets {
            let key = ItemKey::from_label(&label)
                .ok_or_else(|| ApiError::Internal(format!("history names {label:?}")))?;
            match value {
                Some(v) => spec.puts.push((key, v)),
                None => spec.deletes.push(key),
            }
        }
        self.write(caller, spec).await
    }

    /// The data-plane nodes.
    pub async fn nodes(&self, _caller: &Caller) -> Result<NodesView, ApiError> {
        let entries = self.store.nodes().await?;
        let snap = self.store.snapshot().await?;
        Ok(view(&entries, snap.latest_revision()))
    }

    /// Recent events after `after` (at most `limit`).
    pub fn events(&self, _caller: &Caller, after: u64, limit: usize) -> EventsView {
        EventsView {
            events: self.events.recent(after, limit),
            webhook: self.webhook.get().map(|s| s.view()).unwrap_or_default(),
        }
    }

    /// Recent events after `after`, then the live ones.
    pub fn watch(&self, _caller: &Caller, after: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        self.events.replay_and_subscribe(after)
    }
}

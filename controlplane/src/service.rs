//! The one service layer behind REST and gRPC: reads, validated writes, dry runs,
//! import/export, history and rollback, nodes and events.
//!
//! A write goes: read a [`Snapshot`] → plan the item changes (unchanged values dropped) →
//! validate the resulting config with the same code as `louailink -t` (every item, every
//! cross-item reference; only problems the change introduces count, so a hand-made broken
//! item elsewhere does not block unrelated writes) → commit as one transaction guarded by
//! the snapshot (generation, "no config key changed since", `If-Match`), with its history
//! record → emit `diff_config`. A guard that fails means someone else wrote meanwhile: the
//! write starts again from a fresh snapshot. A change too large for one etcd transaction
//! (128 operations, 1.5 MiB) is split into steps in dependency order, each checked to be a
//! valid config before anything is written.

use crate::auth::Caller;
use crate::diff::{item_change, redact, render, ItemChange};
use crate::error::{ApiError, Detail};
use crate::events::{Event, Events};
use crate::history::{rollback_targets, Record, RecordView, Recorded, MAX_RECORD_BYTES};
use crate::nodes::{view, NodesView};
use crate::store::{Snapshot, Store, Write};
use crate::webhook::{Stats, StatsView};
use louailink_shared::storage::etcd::{item_json, MAX_REQUEST_BYTES, MAX_TXN_OPS};
use louailink_shared::storage::{Change, ItemKey};
use louailink_shared::{
    decode_item, parse_text, validate, Config, ConfigError, Format, Item, SourceMap, KINDS,
};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// Fresh snapshots tried when concurrent writers keep winning.
const ATTEMPTS: usize = 5;
/// Item changes per transaction: the rest of etcd's 128 operations are the generation
/// bump, the history record and the pruning of old records.
const STEP_OPS: usize = MAX_TXN_OPS - 3;
/// Bytes of item values per transaction, leaving room for the history record.
const STEP_BYTES: usize = MAX_REQUEST_BYTES - MAX_RECORD_BYTES - 32 * 1024;
/// Kinds in the order a split change writes them (what is referred to first).
const PUT_ORDER: [&str; 6] = [
    "basic",
    "certificates",
    "plugins",
    "upstreams",
    "locations",
    "servers",
];

/// One item as read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemView {
    /// `basic` or a kind.
    pub kind: String,
    /// The name (`""` for `basic`).
    pub name: String,
    /// Its revision (the `ETag`); 0 when `basic` was never written.
    pub revision: i64,
    /// The value (secrets hashed for viewers).
    pub value: Value,
}

/// The items of one kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemList {
    /// The items, by name.
    pub items: Vec<ItemView>,
    /// The store revision read.
    pub revision: i64,
}

/// What a write did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WriteOutcome {
    /// Revision of the (last) transaction; the snapshot's when nothing changed.
    pub revision: i64,
    /// `meta/generation` after it.
    pub generation: i64,
    /// History records written, one per transaction.
    pub history_ids: Vec<i64>,
    /// Items added.
    pub added: Vec<String>,
    /// Items modified.
    pub modified: Vec<String>,
    /// Items removed.
    pub removed: Vec<String>,
    /// Transactions used (0 when nothing changed).
    pub steps: usize,
}

/// A dry run that passed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValidateOutcome {
    /// Always true (an invalid change fails with the error the write would get).
    pub valid: bool,
    /// Items that would be added.
    pub added: Vec<String>,
    /// Items that would be modified.
    pub modified: Vec<String>,
    /// Items that would be removed.
    pub removed: Vec<String>,
    /// Transactions it would take.
    pub steps: usize,
}

/// An exported config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exported {
    /// The text.
    pub text: String,
    /// `toml` or `json`.
    pub format: String,
    /// The store revision read.
    pub revision: i64,
}

/// Recent events and the webhook counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventsView {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Webhook delivery counters.
    pub webhook: StatsView,
}

/// What a dry run checks.
#[derive(Clone, Debug)]
pub enum Check {
    /// A whole config text, replacing (or merged into) the stored one.
    Config {
        /// The text.
        text: String,
        /// Its format.
        format: Format,
        /// Replace the stored config (else merge into it).
        replace: bool,
    },
    /// One item, against the stored config.
    Item {
        /// `basic` or a kind.
        kind: String,
        /// The name.
        name: String,
        /// The value.
        value: Value,
    },
}

/// A requested change.
#[derive(Clone, Debug, Default)]
struct Spec {
    puts: Vec<(ItemKey, Value)>,
    deletes: Vec<ItemKey>,
    /// Every stored item not in `puts` is deleted.
    replace_all: bool,
    /// Deleting an absent item is a 404.
    strict_delete: bool,
    if_match: Vec<(ItemKey, i64)>,
    action: &'static str,
}

/// A planned change, split into transactions.
#[derive(Debug, Default)]
struct Plan {
    steps: Vec<Vec<Change>>,
    recorded: Vec<Vec<Recorded>>,
    added: Vec<String>,
    modified: Vec<String>,
    removed: Vec<String>,
}

/// The service.
pub struct Service {
    store: Store,
    events: Events,
    webhook: OnceLock<Arc<Stats>>,
    write_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

/// `basic` or one of the kinds, as a static string; 404 otherwise.
pub fn kind_of(kind: &str) -> Result<&'static str, ApiError> {
    if kind == "basic" {
        return Ok("basic");
    }
    KINDS.iter().copied().find(|k| *k == kind).ok_or_else(|| {
        ApiError::NotFound(format!(
            "unknown kind {kind:?}; one of basic, {}",
            KINDS.join(", ")
        ))
    })
}

fn key_of(kind: &str, name: &str) -> Result<ItemKey, ApiError> {
    let kind = kind_of(kind)?;
    ItemKey::new(kind, name).map_err(|e| ApiError::invalid(e.to_string()))
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
            redact(key.kind, value)
        };
        ItemView {
            kind: key.kind.to_string(),
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
        if kind == "basic" && items.is_empty() {
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
            None if key.kind == "basic" => Ok(Self::item_view(caller, &key, &json!({}), 0)),
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
        let mut spec = import_spec(text, format, !merge)?;
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
            } => import_spec(&text, format, replace)?,
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
        let plan = plan(&snap, &spec)?;
        check_plan(&snap, &plan)?;
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
                if kind == "basic" {
                    root.insert("basic".into(), value);
                } else if let Value::Object(items) = root
                    .entry(kind.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    items.insert(key.name.clone(), value);
                }
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

    async fn write(&self, caller: &Caller, spec: Spec) -> Result<WriteOutcome, ApiError> {
        let _one_at_a_time = self.write_lock.lock().await;
        for _ in 0..ATTEMPTS {
            let snap = self.store.snapshot().await?;
            for (key, want) in &spec.if_match {
                let current = snap.items.get(key).map_or(0, |s| s.revision);
                if current != *want {
                    return Err(ApiError::RevisionMismatch {
                        message: format!("{key} is at revision {current}, not {want}"),
                        details: vec![Detail::item(
                            key.label(),
                            format!("current revision {current}"),
                        )],
                    });
                }
            }
            let plan = plan(&snap, &spec)?;
            if plan.steps.is_empty() {
                // Nothing to change: the revision the written items stand at.
                let revision = spec
                    .puts
                    .iter()
                    .filter_map(|(k, _)| snap.items.get(k).map(|s| s.revision))
                    .max()
                    .unwrap_or(snap.revision);
                return Ok(WriteOutcome {
                    revision,
                    generation: snap.expected.generation,
                    ..WriteOutcome::default()
                });
            }
            let after = check_plan(&snap, &plan)?;
            if let Some(outcome) = self.commit(caller, &spec, &snap, &plan).await? {
                self.events.set_webhook(after.basic.webhook.clone());
                return Ok(outcome);
            }
        }
        Err(ApiError::Conflict {
            message: "the config kept changing during this write; try again".into(),
            details: Vec::new(),
        })
    }

    /// Commits the steps; `None` when the first step's guard failed (nothing written).
    async fn commit(
        &self,
        caller: &Caller,
        spec: &Spec,
        snap: &Snapshot,
        plan: &Plan,
    ) -> Result<Option<WriteOutcome>, ApiError> {
        let (mut expected, mut since) = (snap.expected, snap.revision);
        let mut outcome = WriteOutcome {
            added: plan.added.clone(),
            modified: plan.modified.clone(),
            removed: plan.removed.clone(),
            ..WriteOutcome::default()
        };
        let total = plan.steps.len();
        let mut applied: Vec<&Recorded> = Vec::new();
        let mut failure = None;
        for (i, (step, recorded)) in plan.steps.iter().zip(&plan.recorded).enumerate() {
            let record = Record::new(
                expected.generation + 1,
                &caller.actor,
                spec.action,
                recorded.clone(),
            );
            let write = Write {
                changes: step,
                expected,
                since,
                if_match: if i == 0 { &spec.if_match } else { &[] },
                record: Some(&record),
            };
            match self.store.commit(&write).await {
                Ok(Some(c)) => {
                    outcome.revision = c.revision;
                    outcome.generation = c.generation;
                    outcome.history_ids.push(record.id);
                    outcome.steps += 1;
                    applied.extend(recorded);
                    (expected, since) = self.store.after(&c);
                }
                Ok(None) if i == 0 => return Ok(None),
                Ok(None) => {
                    failure = Some(ApiError::Conflict {
                        message: format!(
                            "the change needed {total} transactions; {i} were applied, then the config changed meanwhile"
                        ),
                        details: vec![Detail::message(format!("applied: {:?}", outcome.history_ids))],
                    });
                    break;
                }
                Err(e) if i == 0 => return Err(e.into()),
                Err(e) => {
                    failure = Some(ApiError::Unavailable(format!(
                        "the change needed {total} transactions; {i} were applied, then: {e}"
                    )));
                    break;
                }
            }
        }
        self.emit_diff(caller, spec.action, &outcome, &applied);
        match failure {
            Some(e) => Err(e),
            None => Ok(Some(outcome)),
        }
    }

    fn emit_diff(
        &self,
        caller: &Caller,
        action: &str,
        outcome: &WriteOutcome,
        applied: &[&Recorded],
    ) {
        let changes: Vec<ItemChange> = applied
            .iter()
            .filter_map(|c| {
                let kind = ItemKey::from_label(&c.item).map_or("", |k| k.kind);
                item_change(kind, &c.item, c.before.as_ref(), c.after.as_ref())
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let message = format!(
            "{action} by {} (generation {}, revision {}):\n{}",
            caller.actor,
            outcome.generation,
            outcome.revision,
            render(&changes)
        );
        let details = json!({
            "actor": caller.actor,
            "action": action,
            "revision": outcome.revision,
            "generation": outcome.generation,
            "history_ids": outcome.history_ids,
            "changes": changes,
        });
        self.events.emit("diff_config", message, "", details);
    }
}

/// Decodes an item value with the loader's rules; returns its normalized JSON.
fn decode(key: &ItemKey, value: Value) -> Result<Value, ApiError> {
    let item = decode_item(key.kind, &key.name, value).map_err(|errors| ApiError::Invalid {
        message: format!("{key} is invalid"),
        details: errors.iter().map(Detail::from).collect(),
    })?;
    item_json(&item).map_err(|e| ApiError::Internal(format!("cannot encode {key}: {e}")))
}

/// The items of a config text, as a replace (or merge) spec.
fn import_spec(text: &str, format: Format, replace: bool) -> Result<Spec, ApiError> {
    let loaded = parse_text(text, format, None)
        .map_err(|e| ApiError::config("the config does not parse", &e))?;
    let mut spec = Spec {
        replace_all: replace,
        ..Spec::default()
    };
    let c = &loaded.config;
    if loaded.sources.has_item("basic", "") {
        spec.puts
            .push((ItemKey::basic(), encode(&Item::Basic(c.basic.clone()))?));
    }
    let mut add = |kind: &'static str, name: &String, item: Item| -> Result<(), ApiError> {
        let key = ItemKey {
            kind,
            name: name.clone(),
        };
        spec.puts.push((key, encode(&item)?));
        Ok(())
    };
    for (n, v) in &c.servers {
        add("servers", n, Item::Server(v.clone()))?;
    }
    for (n, v) in &c.locations {
        add("locations", n, Item::Location(v.clone()))?;
    }
    for (n, v) in &c.upstreams {
        add("upstreams", n, Item::Upstream(v.clone()))?;
    }
    for (n, v) in &c.plugins {
        add("plugins", n, Item::Plugin(v.clone()))?;
    }
    for (n, v) in &c.certificates {
        add("certificates", n, Item::Certificate(v.clone()))?;
    }
    Ok(spec)
}

fn encode(item: &Item) -> Result<Value, ApiError> {
    item_json(item).map_err(|e| ApiError::Internal(format!("cannot encode an item: {e}")))
}

fn order(kind: &str) -> usize {
    PUT_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(PUT_ORDER.len())
}

/// The changes `spec` makes to `snap`, in dependency order, split into transactions.
fn plan(snap: &Snapshot, spec: &Spec) -> Result<Plan, ApiError> {
    let mut targets: BTreeMap<ItemKey, Option<Value>> = BTreeMap::new();
    for key in &spec.deletes {
        if spec.strict_delete && !snap.items.contains_key(key) {
            return Err(ApiError::NotFound(format!("{key} does not exist")));
        }
        targets.insert(key.clone(), None);
    }
    for (key, value) in &spec.puts {
        targets.insert(key.clone(), Some(value.clone()));
    }
    if spec.replace_all {
        for key in snap.items.keys() {
            targets.entry(key.clone()).or_insert(None);
        }
    }
    let mut puts = Vec::new();
    let mut deletes = Vec::new();
    let mut out = Plan::default();
    for (key, target) in targets {
        let current = snap.items.get(&key);
        let before = current.map(|s| s.value.clone());
        match (&before, &target) {
            (Some(a), Some(b)) if a == b && current.is_some_and(|s| s.not_json.is_none()) => {
                continue
            }
            (None, None) => continue,
            (None, Some(_)) => out.added.push(key.label()),
            (Some(_), Some(_)) => out.modified.push(key.label()),
            (Some(_), None) => out.removed.push(key.label()),
        }
        let recorded = Recorded {
            item: key.label(),
            before,
            after: target.clone(),
        };
        let change = match target {
            Some(value) => Change::Put {
                key: key.clone(),
                value,
            },
            None => Change::Delete(key.clone()),
        };
        if matches!(change, Change::Put { .. }) {
            puts.push((key, change, recorded));
        } else {
            deletes.push((key, change, recorded));
        }
    }
    puts.sort_by_key(|(k, _, _)| (order(k.kind), k.name.clone()));
    deletes.sort_by_key(|(k, _, _)| (std::cmp::Reverse(order(k.kind)), k.name.clone()));
    let mut bytes = 0;
    for (key, change, recorded) in puts.into_iter().chain(deletes) {
        let size = match &change {
            Change::Put { value, .. } => value.to_string().len() + key.label().len() + 64,
            Change::Delete(_) => key.label().len() + 64,
        };
        if size > STEP_BYTES {
            return Err(ApiError::invalid(format!(
                "{key} is {size} bytes: more than one etcd transaction can carry ({STEP_BYTES} bytes)"
            )));
        }
        let full = out
            .steps
            .last()
            .is_none_or(|s| s.len() >= STEP_OPS || bytes + size > STEP_BYTES);
        if full {
            out.steps.push(Vec::new());
            out.recorded.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let (Some(s), Some(r)) = (out.steps.last_mut(), out.recorded.last_mut()) {
            s.push(change);
            r.push(recorded);
        }
    }
    Ok(out)
}

fn error_set(errors: &[ConfigError]) -> BTreeSet<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn validation_errors(config: &Config) -> Vec<ConfigError> {
    validate(config, &SourceMap::new())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

/// Validates the config after each step; returns the final config. Only problems the
/// change introduces (or that remain on items it writes) count.
fn check_plan(snap: &Snapshot, plan: &Plan) -> Result<Config, ApiError> {
    let (mut config, decode_errors) = snap.config();
    let mut before = error_set(&decode_errors);
    before.extend(error_set(&validation_errors(&config)));
    let written: BTreeSet<String> = plan
        .recorded
        .iter()
        .flatten()
        .map(|r| r.item.clone())
        .collect();
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        for change in step {
            apply(&mut config, change);
        }
        let new: Vec<ConfigError> = validation_errors(&config)
            .into_iter()
            .filter(|e| written.contains(&e.item) || !before.contains(&e.to_string()))
            .collect();
        if new.is_empty() {
            continue;
        }
        let details: Vec<Detail> = new.iter().map(Detail::from).collect();
        if i + 1 < total {
            return Err(ApiError::Invalid {
                message: format!(
                    "the change is too large for one etcd transaction and cannot be split into valid steps (step {} of {total} does not validate); make it in smaller parts",
                    i + 1
                ),
                details,
            });
        }
        let only_others = new.iter().all(|e| !written.contains(&e.item));
        if only_others && !plan.removed.is_empty() {
            let referrers: BTreeSet<&str> = new.iter().map(|e| e.item.as_str()).collect();
            return Err(ApiError::Referenced {
                message: format!(
                    "{} still referred to by {}",
                    plan.removed.join(", "),
                    referrers.into_iter().collect::<Vec<_>>().join(", ")
                ),
                details,
            });
        }
        return Err(ApiError::Invalid {
            message: "the change does not validate".into(),
            details,
        });
    }
    Ok(config)
}

fn apply(config: &mut Config, change: &Change) {
    match change {
        Change::Put { key, value } => {
            if let Ok(item) = decode_item(key.kind, &key.name, value.clone()) {
                item.insert_into(config, &key.name);
            }
        }
        Change::Delete(key) => {
            let name = &key.name;
            match key.kind {
                "basic" => config.basic = Default::default(),
                "servers" => drop(config.servers.remove(name)),
                "locations" => drop(config.locations.remove(name)),
                "upstreams" => drop(config.upstreams.remove(name)),
                "plugins" => drop(config.plugins.remove(name)),
                "certificates" => drop(config.certificates.remove(name)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Stored;

    fn snap(items: &[(&str, &str, Value)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (i, (kind, name, value)) in items.iter().enumerate() {
            s.items.insert(
                ItemKey::new(kind, name).unwrap(),
                Stored {
                    value: value.clone(),
                    revision: i as i64 + 1,
                    not_json: None,
                },
            );
        }
        s
    }

    fn base() -> Snapshot {
        snap(&[
            ("upstreams", "u", json!({"addrs": ["127.0.0.1:9"]})),
            ("locations", "a", json!({"path": "/a", "upstream": "u"})),
        ])
    }

    #[test]
    fn delete_of_a_referenced_item_names_the_referrers() {
        let spec = Spec {
            deletes: vec![ItemKey::new("upstreams", "u").unwrap()],
            strict_delete: true,
            ..Spec::default()
        };
        let s = base();
        let e = check_plan(&s, &plan(&s, &spec).unwrap()).unwrap_err();
        assert_eq!(e.status(), 409, "{e:?}");
        assert_eq!(e.details()[0].item.as_deref(), Some("locations.a"));
    }

    #[test]
    fn unchanged_values_are_no_change_and_new_problems_are_400() {
        let s = base();
        let same = Spec {
            puts: vec![(
                ItemKey::new("upstreams", "u").unwrap(),
                json!({"addrs": ["127.0.0.1:9"]}),
            )],
            ..Spec::default()
        };
        assert!(plan(&s, &same).unwrap().steps.is_empty());
        let bad = Spec {
            puts: vec![(
                ItemKey::new("locations", "b").unwrap(),
                json!({"path": "/b", "upstream": "nope"}),
            )],
            ..Spec::default()
        };
        let e = check_plan(&s, &plan(&s, &bad).unwrap()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.details()[0].message.contains("unknown upstream"), "{e:?}");
    }

    #[test]
    fn large_changes_split_in_dependency_order() {
        let mut spec = Spec {
            replace_all: true,
            ..Spec::default()
        };
        for i in 0..200 {
            spec.puts.push((
                ItemKey::new("locations", &format!("l{i:03}")).unwrap(),
                json!({"path": format!("/{i}"), "upstream": "v"}),
            ));
        }
        spec.puts.push((
            ItemKey::new("upstreams", "v").unwrap(),
            json!({"addrs": ["127.0.0.1:1"]}),
        ));
        let s = base();
        let p = plan(&s, &spec).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert!(matches!(&p.steps[0][0], Change::Put { key, .. } if key.kind == "upstreams"));
        // The deletes of the old location and upstream come last, location first.
        let last: Vec<String> = p.steps[1]
            .iter()
            .rev()
            .take(2)
            .map(|c| c.item_key().label())
            .collect();
        assert_eq!(last, ["upstreams.u", "locations.a"]);
        assert!(check_plan(&s, &p).is_ok());
        let big = Spec {
            puts: vec![(
                ItemKey::new("plugins", "p").unwrap(),
                json!({"category": "mock", "data": "x".repeat(STEP_BYTES)}),
            )],
            ..Spec::default()
        };
        assert_eq!(plan(&s, &big).unwrap_err().status(), 400);
    }
}

//! The write planner: a requested change ([`Spec`]) against a snapshot becomes item changes
//! in dependency order, split into transactions within etcd's limits ([`Plan`]), and every
//! intermediate config is validated before anything is written.

use crate::error::{ApiError, Detail};
use crate::history::{Recorded, MAX_RECORD_BYTES};
use crate::store::Snapshot;
use louailink_shared::storage::etcd::{item_json, MAX_REQUEST_BYTES, MAX_TXN_OPS};
use louailink_shared::storage::{Change, ItemKey};
use louailink_shared::{
    decode_item, parse_text, validate_without_files, Config, ConfigError, Format, Kind, SourceMap,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Item changes per transaction: the rest of etcd's 128 operations are the generation
/// bump, the history record, the pruning of old records, and the staging of a change over
/// several transactions (the marker and the undo stash, or their deletion).
const STEP_OPS: usize = MAX_TXN_OPS - 5;
/// Bytes of item values (new and, for the undo stash, replaced) per transaction, leaving
/// room for the history record.
const STEP_BYTES: usize = MAX_REQUEST_BYTES - MAX_RECORD_BYTES - 32 * 1024;
/// Largest stored value of one item, in bytes of its JSON: well below etcd's 1.5 MiB request
/// limit, so an item always fits one transaction with its history record and every node's
/// etcd client can read it.
pub const MAX_ITEM_BYTES: usize = 512 * 1024;
/// Kinds in the order a split change writes them (what is referred to first).
pub(super) const PUT_ORDER: [Kind; 6] = [
    Kind::Basic,
    Kind::Certificates,
    Kind::Plugins,
    Kind::Upstreams,
    Kind::Locations,
    Kind::Servers,
];

/// A requested change.
#[derive(Clone, Debug, Default)]
pub(super) struct Spec {
    pub(super) puts: Vec<(ItemKey, Value)>,
    pub(super) deletes: Vec<ItemKey>,
    /// Every stored item not in `puts` is deleted.
    pub(super) replace_all: bool,
    /// Deleting an absent item is a 404.
    pub(super) strict_delete: bool,
    pub(super) if_match: Vec<(ItemKey, i64)>,
    pub(super) action: &'static str,
    /// Values restored as they were stored (a rollback of a staged change): not held to the
    /// per-item limit.
    pub(super) restore: bool,
}

/// A planned change, split into transactions.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) steps: Vec<Vec<Change>>,
    pub(super) recorded: Vec<Vec<Recorded>>,
    pub(super) added: Vec<String>,
    pub(super) modified: Vec<String>,
    pub(super) removed: Vec<String>,
}

/// Decodes an item value with the loader's rules; returns its normalized JSON.
pub(super) fn decode(key: &ItemKey, value: Value) -> Result<Value, ApiError> {
    let item = decode_item(key.kind, &key.name, value).map_err(|errors| ApiError::Invalid {
        message: format!("{key} is invalid"),
        details: errors.iter().map(Detail::from).collect(),
    })?;
    item_json(&item).map_err(|e| ApiError::Internal(format!("cannot encode {key}: {e}")))
}

/// The items of a config text, as a replace (or merge) spec.
pub(super) fn import_spec(text: &str, format: Format, replace: bool) -> Result<Spec, ApiError> {
    let loaded = parse_text(text, format, None)
        .map_err(|e| ApiError::config("the config does not parse", &e))?;
    let mut spec = Spec {
        replace_all: replace,
        ..Spec::default()
    };
    for (kind, name, item) in loaded.written_items() {
        let value = item_json(&item)
            .map_err(|e| ApiError::Internal(format!("cannot encode an item: {e}")))?;
        spec.puts.push((ItemKey::of(kind, name), value));
    }
    Ok(spec)
}

fn order(kind: Kind) -> usize {
    PUT_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(PUT_ORDER.len())
}

/// The changes `spec` makes to `snap`, in dependency order, split into transactions.
pub(super) fn plan(snap: &Snapshot, spec: &Spec) -> Result<Plan, ApiError> {
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
        if let (Some(value), false) = (&target, spec.restore) {
            check_size(&key, value)?;
        }
        // The replaced value goes to the undo stash in the same transaction.
        let undo_size = before.as_ref().map_or(0, |v| v.to_string().len());
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
            puts.push((key, change, recorded, undo_size));
        } else {
            deletes.push((key, change, recorded, undo_size));
        }
    }
    puts.sort_by_key(|(k, _, _, _)| (order(k.kind), k.name.clone()));
    deletes.sort_by_key(|(k, _, _, _)| (std::cmp::Reverse(order(k.kind)), k.name.clone()));
    let mut bytes = 0;
    for (key, change, recorded, undo_size) in puts.into_iter().chain(deletes) {
        let size = undo_size
            + match &change {
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

/// Refuses a value over [`MAX_ITEM_BYTES`], naming the item.
fn check_size(key: &ItemKey, value: &Value) -> Result<(), ApiError> {
    let size = value.to_string().len();
    if size <= MAX_ITEM_BYTES {
        return Ok(());
    }
    let message = format!(
        "{key} is {size} bytes as JSON: more than the control plane's per-item limit of {MAX_ITEM_BYTES} bytes (512 KiB)"
    );
    Err(ApiError::Invalid {
        message: message.clone(),
        details: vec![Detail::item(key.label(), message)],
    })
}

fn error_set(errors: &[ConfigError]) -> BTreeSet<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn validation_errors(config: &Config) -> Vec<ConfigError> {
    // Never reads a file: what arrives through the API holds PEM text (see the docs).
    validate_without_files(config, &SourceMap::new())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}

/// Validates the config after each step; returns the final config. Only problems the
/// change introduces (or that remain on items it writes) count.
pub(super) fn check_plan(snap: &Snapshot, plan: &Plan) -> Result<Config, ApiError> {
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

/// Applies one change to a config (a put that does not decode changes nothing).
fn apply(config: &mut Config, change: &Change) {
    match change {
        Change::Put { key, value } => {
            if let Ok(item) = decode_item(key.kind, &key.name, value.clone()) {
                item.insert_into(config, &key.name);
            }
        }
        Change::Delete(key) => {
            config.remove_item(key.kind, &key.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Stored;
    use serde_json::json;

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
        assert!(matches!(&p.steps[0][0], Change::Put { key, .. } if key.kind == Kind::Upstreams));
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
        let e = plan(&s, &big).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.details()[0].item.as_deref(), Some("plugins.p"), "{e:?}");
        let over = Spec {
            puts: vec![(
                ItemKey::new("plugins", "q").unwrap(),
                json!({"category": "mock", "data": "x".repeat(MAX_ITEM_BYTES)}),
            )],
            ..Spec::default()
        };
        let e = plan(&s, &over).unwrap_err();
        assert!(e.to_string().contains("per-item limit"), "{e:?}");
    }
}

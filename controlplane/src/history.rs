//! History: every change the control plane commits carries a [`Record`] of the values it
//! replaced and wrote, stored in the same transaction under `<prefix>/history/<id>` (the id
//! is the new `meta/generation`), bounded to the newest N records. From records come the
//! field-level diffs shown by `GET /api/v1/history` (secrets hashed) and rollbacks.

use crate::diff::{item_change, ItemChange};
use crate::error::{ApiError, Detail};
use louailink_shared::storage::ItemKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The default number of records kept.
pub const DEFAULT_LIMIT: usize = 200;

/// Largest record kept with its values; a larger one keeps only which items changed.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;

/// One item's values around a change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// `locations.api` or `basic`.
    pub item: String,
    /// The value before (absent: the item did not exist).
    #[serde(default)]
    pub before: Option<Value>,
    /// The value after (absent: the item was deleted).
    #[serde(default)]
    pub after: Option<Value>,
}

/// One committed change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The `meta/generation` the change produced.
    pub id: i64,
    /// The store revision of the change (filled in when read back).
    #[serde(default)]
    pub revision: i64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who: the token's role and a hash of it, or `local`.
    pub actor: String,
    /// `put`, `delete`, `import`, `rollback`.
    pub action: String,
    /// The items changed.
    pub changes: Vec<Recorded>,
    /// The values were dropped because they were too large to keep.
    #[serde(default)]
    pub truncated: bool,
}

impl Record {
    /// A record for change `id`, now, with values kept unless they are too large.
    pub fn new(id: i64, actor: &str, action: &str, changes: Vec<Recorded>) -> Self {
        let mut record = Record {
            id,
            revision: 0,
            time: now(),
            actor: actor.to_string(),
            action: action.to_string(),
            changes,
            truncated: false,
        };
        let size = serde_json::to_vec(&record).map_or(usize::MAX, |v| v.len());
        if size > MAX_RECORD_BYTES {
            record.truncated = true;
            for c in &mut record.changes {
                // Keep presence (added / removed / modified), drop the values.
                c.before = c.before.as_ref().map(|_| Value::Null);
                c.after = c.after.as_ref().map(|_| Value::Null);
            }
        }
        record
    }

    /// The field-level view: which items changed and how, secrets hashed.
    pub fn view(&self) -> RecordView {
        let changes = self
            .changes
            .iter()
            .filter_map(|c| {
                if self.truncated {
                    let action = match (c.before.is_some(), c.after.is_some()) {
                        (false, true) => "added",
                        (true, false) => "removed",
                        _ => "modified",
                    };
                    return Some(ItemChange {
                        item: c.item.clone(),
                        action: action.to_string(),
                        fields: Vec::new(),
                    });
                }
                let kind = ItemKey::from_label(&c.item).map_or("", |k| k.kind.as_str());
                item_change(kind, &c.item, c.before.as_ref(), c.after.as_ref())
            })
            .collect();
        RecordView {
            id: self.id,
            revision: self.revision,
            time: self.time.clone(),
            actor: self.actor.clone(),
            action: self.action.clone(),
            changes,
            truncated: self.truncated,
        }
    }
}

/// A record as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// The generation the change produced.
    pub id: i64,
    /// Its store revision.
    pub revision: i64,
    /// When.
    pub time: String,
    /// Who.
    pub actor: String,
    /// What kind of write.
    pub action: String,
    /// Field-level diffs.
    pub changes: Vec<ItemChange>,
    /// Values were too large to keep.
    pub truncated: bool,
}

/// The zero-padded key segment of record `id` (so keys sort by id).
pub fn key_segment(id: i64) -> String {
    format!("{:020}", id.max(0))
}

/// For a rollback to record `to`: each item changed after it and the value it had right
/// after `to` (`None` = it did not exist). `records` is any order; every record after `to`
/// must be present and complete.
pub fn rollback_targets(
    records: &[Record],
    to: i64,
    newest: i64,
) -> Result<BTreeMap<String, Option<Value>>, ApiError> {
    if to >= newest {
        return Err(ApiError::invalid(format!(
            "history entry {to} is the newest change (or later): nothing to roll back"
        )));
    }
    let mut later: Vec<&Record> = records.iter().filter(|r| r.id > to).collect();
    later.sort_by_key(|r| r.id);
    let oldest_kept = records.iter().map(|r| r.id).min().unwrap_or(newest + 1);
    if to + 1 < oldest_kept {
        return Err(ApiError::NotFound(format!(
            "history entry {to} is no longer kept (the oldest is {oldest_kept})"
        )));
    }
    let ids: Vec<i64> = later.iter().map(|r| r.id).collect();
    let expected: Vec<i64> = (to + 1..=newest).collect();
    if ids != expected {
        let missing: Vec<String> = expected
            .iter()
            .filter(|i| !ids.contains(i))
            .map(ToString::to_string)
            .collect();
        return Err(ApiError::Conflict {
            message: format!("cannot roll back to {to}: history entries are missing"),
            details: vec![Detail::message(format!("missing: {}", missing.join(", ")))],
        });
    }
    let mut targets: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for record in later {
        if record.truncated {
            return Err(ApiError::Conflict {
                message: format!(
                    "cannot roll back past history entry {}: its values were too large to keep",
                    record.id
                ),
                details: Vec::new(),
            });
        }
        for c in &record.changes {
            // The first change after `to` holds the value the item had at `to`.
            targets
                .entry(c.item.clone())
                .or_insert_with(|| c.before.clone());
        }
    }
    Ok(targets)
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(id: i64, item: &str, before: Option<Value>, after: Option<Value>) -> Record {
        Record::new(
            id,
            "admin",
            "put",
            vec![Recorded {
                item: item.into(),
                before,
                after,
            }],
        )
    }

    #[test]
    fn rollback_takes_the_value_before_the_first_later_change() {
        let records = vec![
            rec(1, "upstreams.u", None, Some(json!({"addrs": ["a:1"]}))),
            rec(
                2,
                "upstreams.u",
                Some(json!({"addrs": ["a:1"]})),
                Some(json!({"addrs": ["b:1"]})),
            ),
            rec(3, "upstreams.v", None, Some(json!({"addrs": ["c:1"]}))),
            rec(4, "upstreams.u", Some(json!({"addrs": ["b:1"]})), None),
        ];
        let t = rollback_targets(&records, 1, 4).unwrap();
        assert_eq!(t["upstreams.u"], Some(json!({"addrs": ["a:1"]})));
        assert_eq!(t["upstreams.v"], None);
        assert!(rollback_targets(&records, 4, 4).is_err());
        let gap: Vec<Record> = records.iter().filter(|r| r.id != 3).cloned().collect();
        assert_eq!(rollback_targets(&gap, 1, 4).unwrap_err().status(), 409);
        assert_eq!(
            rollback_targets(&records[2..], 0, 4).unwrap_err().status(),
            404
        );
    }

    #[test]
    fn large_records_drop_values() {
        let big = json!({"category": "mock", "body": "x".repeat(MAX_RECORD_BYTES)});
        let r = rec(1, "plugins.p", None, Some(big));
        assert!(r.truncated);
        assert_eq!(r.changes[0].after, Some(Value::Null));
        assert_eq!(key_segment(42), "00000000000000000042");
    }
}

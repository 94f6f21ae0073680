//! Building the desired config from the values seen under the etcd prefix: pure logic, no
//! I/O, so every rule is unit-tested here and the follower only feeds it events and reads.
//!
//! Rules (controlplane.md, "How a data plane follows etcd", steps 5 and 7):
//!
//! 1. **Per item.** Every value is decoded on its own ([`decode_item`]). A value that does
//!    not decode is rejected (`{key, revision, error}`) and the item keeps its last good
//!    version, or stays absent if it never had one. A deleted key is dropped, good version
//!    included: it is never brought back.
//! 2. **Whole config.** The items are then validated together ([`validate`]: references,
//!    duplicate listen addresses, …). When that fails, each item named by an error that
//!    differs from the last published config is put back to its published version (or left
//!    out if it is new), is reported as rejected, and validation runs again. So a new
//!    location that names a missing upstream is held back while everything else applies, and
//!    it applies by itself once the upstream arrives (nothing is forgotten: the next build
//!    starts again from every item's last good version).
//! 3. **Held.** If errors remain on items that did not change (say a referenced upstream was
//!    deleted straight in etcd: the error names the unchanged location, and the deletion
//!    cannot be undone without bringing a deleted key back), nothing is published: the last
//!    published config stays, every pending change waits, the errors are reported and the
//!    [`Alarm::ChangesHeld`] alarm is raised until a later change makes the whole valid. This
//!    mirrors the file mode ("a config that fails validation is not applied"); the control
//!    plane refuses such writes (409), so only hand-made etcd writes get here.
//! 4. **Wiped prefix.** No item keys and no `meta/generation`: nothing is published (no
//!    "delete everything") and [`Alarm::WipedPrefix`] is raised. A config with no items is
//!    published only when `meta/generation` exists.
//! 5. **Unbuildable.** An item that validates but that a node cannot build (its snapshot
//!    refuses it) is reported back ([`Mirror::unbuildable`]) and from then on handled like a
//!    value that does not decode (rule 1): rejected per key, everything else still applies.

use crate::error::ConfigError;
use crate::items::{decode_item, unknown_kind, Item};
use crate::kind::Kind;
use crate::model::Config;
use crate::sources::SourceMap;
use crate::storage::digest::config_hash;
use crate::storage::etcd::{parse_generation, PrefixRead, RawEntry, MESSAGE_LIMIT};
use crate::storage::keys::{ItemKey, KeyKind, Keys};
use crate::validate::validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An item value that was not applied, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The etcd key.
    pub key: String,
    /// The revision of the rejected value.
    pub revision: i64,
    /// Every problem, `; `-separated.
    pub error: String,
}

/// A condition an operator should look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alarm {
    /// The prefix holds no items and no `meta/generation`: not applied, last config kept.
    WipedPrefix,
    /// The items fail whole-config validation in a way no single changed item explains:
    /// every pending change is held back, the last published config kept.
    ChangesHeld,
}

/// One change seen on the watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A key was written.
    Put(RawEntry),
    /// A key was deleted at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion.
        revision: i64,
    },
}

/// The result of a build.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// The config to publish, with its hash; `None` keeps what was published before.
    pub config: Option<(Config, String)>,
    /// Every rejected value, sorted by key.
    pub rejected: Vec<Rejected>,
    /// Raised alarms.
    pub alarms: Vec<Alarm>,
}

/// A decoded item with its identity.
type Entry = (ItemKey, Item);

/// What the prefix holds and what was made of it.
#[derive(Clone, Debug)]
pub(crate) struct Mirror {
    keys: Keys,
    /// Config keys (items and unknown kinds) as etcd holds them now.
    raw: BTreeMap<String, RawEntry>,
    /// `meta/generation`, if present.
    generation: Option<RawEntry>,
    /// Per key: the newest version that decoded.
    good: BTreeMap<String, Entry>,
    /// Per key: why its newest value does not decode.
    bad: BTreeMap<String, Rejected>,
    /// Items of the config last published: the fallback for whole-config failures.
    published: BTreeMap<String, Entry>,
    /// Newest revision applied.
    revision: i64,
    /// `meta/import` exists: a change staged over several transactions is being written or
    /// rolled back, so nothing is built until it is gone (then all of it at once).
    staged: bool,
}

impl Mirror {
    /// An empty mirror: nothing read, nothing published.
    pub fn new(keys: Keys) -> Self {
        Mirror {
            keys,
            raw: BTreeMap::new(),
            generation: None,
            good: BTreeMap::new(),
            bad: BTreeMap::new(),
            published: BTreeMap::new(),
            revision: 0,
            staged: false,
        }
    }

    /// A mirror that starts from a config published earlier (the state file): its items
    /// count as their last good versions until etcd says otherwise.
    pub fn seeded(keys: Keys, config: &Config, revision: i64) -> Self {
        let items = items_of(&keys, config);
        Mirror {
            good: items.clone(),
            published: items,
            revision,
            ..Mirror::new(keys)
        }
    }

    /// Newest revision applied.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Whether a staged change is in progress (`meta/import` exists): do not build.
    pub fn staged(&self) -> bool {
        self.staged
    }

    /// The value of `meta/generation`, if present and a number.
    pub fn generation(&self) -> Option<i64> {
        self.generation
            .as_ref()
            .and_then(|g| parse_generation(&g.value))
    }

    /// Applies the events of one or more revisions. Returns whether anything the config is
    /// built from changed.
    pub fn apply(&mut self, events: &[Event]) -> bool {
        let mut changed = false;
        for event in events {
            match event {
                Event::Put(entry) => {
                    self.revision = self.revision.max(entry.mod_revision);
                    changed |= self.put(entry.clone());
                }
                Event::Delete { key, revision } => {
                    self.revision = self.revision.max(*revision);
                    changed |= self.delete(key);
                }
            }
        }
        changed
    }

    /// Replaces everything by a full read, applying only the differences. Returns whether
    /// anything the config is built from changed. The revision becomes the read's, even if
    /// it went backwards (etcd restored or wiped).
    pub fn replace(&mut self, read: &PrefixRead) -> bool {
        let was_staged = std::mem::take(&mut self.staged);
        let mut changed = false;
        let mut present = std::collections::BTreeSet::new();
        for entry in &read.entries {
            present.insert(entry.key.as_str());
            changed |= self.put(entry.clone());
        }
        for entry in &read.oversized {
            present.insert(entry.key.as_str());
            changed |= self.oversized(entry);
        }
        let known: Vec<String> = self
            .raw
            .keys()
            .chain(self.good.keys())
            .chain(self.bad.keys())
            .chain(self.generation.iter().map(|g| &g.key))
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        for key in known {
            changed |= self.delete(&key);
        }
        self.revision = read.revision;
        changed || was_staged != self.staged
    }

    fn put(&mut self, entry: RawEntry) -> bool {
        let Some(kind) = self.keys.parse(&entry.key) else {
            return false;
        };
        if kind == KeyKind::ImportMarker {
            return !std::mem::replace(&mut self.staged, true);
        }
        if kind == KeyKind::Generation {
            let changed = self.generation.as_ref().map(|g| &g.value) != Some(&entry.value);
            self.generation = Some(entry);
            return changed;
        }
        if !kind.is_config() {
            return false;
        }
        let key = entry.key.clone();
        if let Some(old) = self.raw.get(&key) {
            if old.value == entry.value {
                // Same bytes rewritten: nothing to decode again.
                self.raw.insert(key, entry);
                return false;
            }
        }
        match decode(&kind, &entry) {
            Ok(decoded) => {
                self.good.insert(key.clone(), decoded);
                self.bad.remove(&key);
            }
            Err(error) => {
                let rejected = Rejected {
                    key: key.clone(),
                    revision: entry.mod_revision,
                    error,
                };
                self.bad.insert(key.clone(), rejected);
            }
        }
        self.raw.insert(key, entry);
        true
    }

    /// A value too large to read: rejected like one that does not decode (rule 1).
    fn oversized(&mut self, entry: &RawEntry) -> bool {
        if !self.keys.parse(&entry.key).is_some_and(|k| k.is_config()) {
            return false;
        }
        let rejected = Rejected {
            key: entry.key.clone(),
            revision: entry.mod_revision,
            error: format!(
                "the value is larger than the {MESSAGE_LIMIT} bytes a node reads from etcd at once"
            ),
        };
        if self.bad.get(&entry.key) == Some(&rejected) {
            return false;
        }
        self.raw.insert(entry.key.clone(), entry.clone());
        self.bad.insert(entry.key.clone(), rejected);
        true
    }

    fn delete(&mut self, key: &str) -> bool {
        if self.keys.parse(key) == Some(KeyKind::ImportMarker) {
            return std::mem::take(&mut self.staged);
        }
        if self.generation.as_ref().is_some_and(|g| g.key == key) {
            self.generation = None;
            return true;
        }
        let a = self.raw.remove(key).is_some();
        let b = self.good.remove(key).is_some();
        let c = self.bad.remove(key).is_some();
        a || b || c
    }

    /// Takes the items a node could not build (validation passed, its snapshot did not):
    /// each is rejected at its current revision and keeps the version the node serves
    /// (`applied`), or is left out if the node serves none, exactly as a value that does not
    /// decode would be; a new value of the key tries again. `applied` also becomes the
    /// published config, the fallback of whole-config failures. Returns whether anything
    /// changed (so the caller builds again; the same report twice changes nothing).
    pub fn unbuildable(&mut self, applied: &Config, items: &[(ItemKey, String)]) -> bool {
        let served = items_of(&self.keys, applied);
        let mut changed = false;
        for (item, error) in items {
            let key = self.keys.item(item);
            let Some(raw) = self.raw.get(&key) else {
                continue; // deleted meanwhile: nothing left to hold back
            };
            let rejected = Rejected {
                key: key.clone(),
                revision: raw.mod_revision,
                error: error.clone(),
            };
            if self.bad.get(&key) == Some(&rejected) {
                continue;
            }
            match served.get(&key) {
                Some(entry) => self.good.insert(key.clone(), entry.clone()),
                None => self.good.remove(&key),
            };
            self.bad.insert(key, rejected);
            changed = true;
        }
        if changed {
            self.published = served;
        }
        changed
    }

    /// Builds the desired config from the last good version of every item, following the
    /// rules in the module doc. When a config is returned it becomes the published one.
    pub fn build(&mut self) -> Outcome {
        let mut rejected = self.bad.clone();
        let has_items = self
            .raw
            .keys()
            .any(|k| matches!(self.keys.parse(k), Some(KeyKind::Item(_))));
        if !has_items && self.generation.is_none() {
            return Outcome {
                config: None,
                rejected: rejected.into_values().collect(),
                alarms: vec![Alarm::WipedPrefix],
            };
        }
        let mut candidate = self.good.clone();
        // Each round leaves out or puts back at least one item, so this ends.
        for _ in 0..=candidate.len() + 1 {
            let config = assemble(&candidate);
            let Err(errors) = validate(&config, &SourceMap::new()) else {
                let hash = config_hash(&config);
                self.published = candidate;
                return Outcome {
                    config: Some((config, hash)),
                    rejected: rejected.into_values().collect(),
                    alarms: Vec::new(),
                };
            };
            let mut by_key: BTreeMap<String, Vec<ConfigError>> = BTreeMap::new();
            for e in errors {
                let key = ItemKey::from_label(&e.item)
                    .map_or_else(|| self.keys.root(), |item| self.keys.item(&item));
                by_key.entry(key).or_default().push(e);
            }
            let mut put_back = false;
            for (key, errors) in &by_key {
                let now = candidate.get(key).map(|e| &e.1);
                let before = self.published.get(key);
                if now.is_none() || now == before.map(|e| &e.1) {
                    continue;
                }
                match before {
                    Some(old) => candidate.insert(key.clone(), old.clone()),
                    None => candidate.remove(key),
                };
                let revision = self.raw.get(key).map_or(self.revision, |e| e.mod_revision);
                add_rejection(&mut rejected, key, revision, errors);
                put_back = true;
            }
            if !put_back {
                for (key, errors) in &by_key {
                    add_rejection(&mut rejected, key, self.revision, errors);
                }
                break;
            }
        }
        Outcome {
            config: None,
            rejected: rejected.into_values().collect(),
            alarms: vec![Alarm::ChangesHeld],
        }
    }
}

/// Records `errors` against `key`, after any rejection already recorded for it.
fn add_rejection(
    rejected: &mut BTreeMap<String, Rejected>,
    key: &str,
    revision: i64,
    errors: &[ConfigError],
) {
    let text = join(errors);
    rejected
        .entry(key.to_string())
        .and_modify(|r| {
            r.error = format!("{}; {text}", r.error);
        })
        .or_insert_with(|| Rejected {
            key: key.to_string(),
            revision,
            error: text,
        });
}

/// Decodes one value: JSON first, then the item rules shared with the file loader.
fn decode(kind: &KeyKind, entry: &RawEntry) -> Result<Entry, String> {
    let item_key = match kind {
        KeyKind::Item(item_key) => item_key,
        KeyKind::Unknown { kind, .. } => {
            return Err(match kind.parse::<Kind>() {
                // `basic/<name>`: basic is one item, with no names under it.
                Ok(_) => format!("{kind}: not a config kind"),
                Err(_) => unknown_kind(kind).to_string(),
            });
        }
        _ => return Err("not a config key".into()),
    };
    let value: Value = serde_json::from_slice(&entry.value)
        .map_err(|e| format!("{}: value is not JSON: {e}", item_key.label()))?;
    let item = decode_item(item_key.kind, &item_key.name, value).map_err(|e| join(&e))?;
    Ok((item_key.clone(), item))
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The config made of these items.
fn assemble(items: &BTreeMap<String, Entry>) -> Config {
    let mut config = Config::default();
    for (item_key, item) in items.values() {
        item.clone().insert_into(&mut config, &item_key.name);
    }
    config
}

/// Every item of `config`, keyed by its etcd key (`basic` only when not the default).
pub(crate) fn items_of(keys: &Keys, config: &Config) -> BTreeMap<String, Entry> {
    let with_basic = config.basic != Default::default();
    config
        .items()
        .filter(|(kind, _, _)| kind.is_named() || with_basic)
        .map(|(kind, name, item)| {
            let key = ItemKey::of(kind, name);
            (keys.item(&key), (key, item))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("/l").unwrap()
    }

    fn put(key: &str, value: &str, revision: i64) -> Event {
        Event::Put(RawEntry {
            key: format!("/l/{key}"),
            value: value.as_bytes().to_vec(),
            mod_revision: revision,
        })
    }

    fn del(key: &str, revision: i64) -> Event {
        Event::Delete {
            key: format!("/l/{key}"),
            revision,
        }
    }

    const UP: &str = r#"{"addrs": "127.0.0.1:1"}"#;

    /// A mirror holding upstream u, location a -> u, server s -> a, and a generation.
    fn base() -> Mirror {
        let mut m = Mirror::new(keys());
        m.apply(&[
            put("meta/generation", "1", 1),
            put("upstreams/u", UP, 1),
            put("locations/a", r#"{"path": "/a", "upstream": "u"}"#, 1),
            put(
                "servers/s",
                r#"{"addr": "127.0.0.1:8080", "locations": "a"}"#,
                1,
            ),
        ]);
        let out = m.build();
        assert!(out.config.is_some(), "{out:?}");
        m
    }

    fn published(out: &Outcome) -> &Config {
        &out.config.as_ref().expect("a config").0
    }

    #[test]
    fn an_item_the_node_cannot_build_is_rejected_while_others_apply() {
        let mut m = base();
        let applied = published(&m.build()).clone();
        // Two changes; the node's snapshot refuses the first.
        m.apply(&[
            put("locations/a", r#"{"path": "/changed", "upstream": "u"}"#, 2),
            put("locations/b", r#"{"path": "/b", "upstream": "u"}"#, 2),
        ]);
        assert!(m.build().config.is_some());
        let a = ItemKey::of(Kind::Locations, "a");
        let report = [(a.clone(), "cannot build".to_string())];
        assert!(m.unbuildable(&applied, &report));
        let out = m.build();
        let c = published(&out);
        assert_eq!(
            c.locations["a"].path.as_deref(),
            Some("/a"),
            "kept as served"
        );
        assert!(c.locations.contains_key("b"), "the other change applies");
        assert_eq!(out.rejected.len(), 1, "{out:?}");
        assert_eq!(
            (out.rejected[0].key.as_str(), out.rejected[0].revision),
            ("/l/locations/a", 2)
        );
        assert!(out.rejected[0].error.contains("cannot build"));
        // The same report again changes nothing; a new value tries again.
        assert!(!m.unbuildable(&applied, &report));
        m.apply(&[put(
            "locations/a",
            r#"{"path": "/new", "upstream": "u"}"#,
            3,
        )]);
        let out = m.build();
        assert_eq!(published(&out).locations["a"].path.as_deref(), Some("/new"));
        assert!(out.rejected.is_empty(), "{out:?}");
    }

    #[test]
    fn a_value_too_large_to_read_is_rejected_while_the_rest_applies() {
        let mut m = Mirror::new(keys());
        let entry = |key: &str, value: &str| RawEntry {
            key: format!("/l/{key}"),
            value: value.as_bytes().to_vec(),
            mod_revision: 4,
        };
        let read = PrefixRead {
            revision: 4,
            entries: vec![
                entry("meta/generation", "1"),
                entry("upstreams/u", UP),
                entry("locations/a", r#"{"path": "/a", "upstream": "u"}"#),
            ],
            oversized: vec![entry("locations/big", "")],
            ..PrefixRead::default()
        };
        assert!(m.replace(&read));
        let out = m.build();
        assert!(published(&out).locations.contains_key("a"));
        assert_eq!(out.rejected.len(), 1, "{out:?}");
        assert_eq!(out.rejected[0].key, "/l/locations/big");
        assert!(out.rejected[0].error.contains("larger than"), "{out:?}");
        // Read again unchanged: nothing to build.
        assert!(!m.replace(&read));
    }

    #[test]
    fn invalid_item_keeps_last_good_while_others_apply() {
        let mut m = base();
        assert!(m.apply(&[
            put("locations/a", r#"{"paht": "/x", "upstream": "u"}"#, 2),
            put("locations/b", r#"{"path": "/b", "upstream": "u"}"#, 2),
            put("locations/c", r#"{"path": 5}"#, 2),
        ]));
        let out = m.build();
        let c = published(&out);
        assert_eq!(c.locations["a"].path.as_deref(), Some("/a"));
        assert_eq!(c.locations["b"].path.as_deref(), Some("/b"));
        assert!(!c.locations.contains_key("c"));
        let keys: Vec<(&str, i64)> = out
            .rejected
            .iter()
            .map(|r| (r.key.as_str(), r.revision))
            .collect();
        assert_eq!(keys, [("/l/locations/a", 2), ("/l/locations/c", 2)]);
        assert!(
            out.rejected[0].error.contains("did you mean \"path\""),
            "{out:?}"
        );
        // Fixing the item applies it and clears the rejection.
        m.apply(&[put("locations/a", r#"{"path": "/z", "upstream": "u"}"#, 3)]);
        let out = m.build();
        assert_eq!(published(&out).locations["a"].path.as_deref(), Some("/z"));
        assert_eq!(out.rejected.len(), 1);
    }

    #[test]
    fn a_staged_change_is_held_until_its_marker_goes() {
        let mut m = base();
        assert!(!m.staged());
        m.apply(&[
            put("meta/import", "{}", 2),
            put("locations/b", r#"{"path": "/b", "upstream": "u"}"#, 2),
        ]);
        assert!(m.staged());
        m.apply(&[put("locations/c", r#"{"path": "/c", "upstream": "u"}"#, 3)]);
        assert!(m.staged());
        // The marker's deletion is a change: the whole is built then.
        assert!(m.apply(&[del("meta/import", 4)]));
        assert!(!m.staged());
        let out = m.build();
        assert!(published(&out).locations.contains_key("b"));
        assert!(published(&out).locations.contains_key("c"));
        // A full read sees the marker too, and its absence.
        let read = |with_marker: bool| PrefixRead {
            revision: 9,
            entries: with_marker
                .then(|| RawEntry {
                    key: "/l/meta/import".into(),
                    value: b"{}".to_vec(),
                    mod_revision: 9,
                })
                .into_iter()
                .collect(),
            ..PrefixRead::default()
        };
        m.replace(&read(true));
        assert!(m.staged());
        assert!(m.replace(&read(false)));
        assert!(!m.staged());
    }

    #[test]
    fn a_deleted_key_is_never_brought_back() {
        let mut m = base();
        m.apply(&[put("locations/b", r#"{"path": "/b"}"#, 2)]);
        m.apply(&[put("locations/b", "not json", 3)]);
        m.apply(&[del("locations/b", 4)]);
        let out = m.build();
        assert!(!published(&out).locations.contains_key("b"));
        assert!(out.rejected.is_empty(), "{out:?}");
        assert_eq!(m.revision(), 4);
    }

    #[test]
    fn unknown_kinds_and_bad_names_are_rejected() {
        let mut m = base();
        m.apply(&[
            put("locaitons/x", "{}", 2),
            put("locations/a%2Fb", "{}", 2),
            put("acme/challenges/t", "secret", 2),
            put("nodes/n1", "{}", 2),
        ]);
        let out = m.build();
        let errors: Vec<&str> = out.rejected.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("did you mean \"locations\""),
            "{errors:?}"
        );
        assert!(errors[1].contains("'%'"), "{errors:?}");
    }

    #[test]
    fn a_new_item_with_a_missing_reference_waits_for_it() {
        let mut m = base();
        m.apply(&[
            put("locations/b", r#"{"path": "/b", "upstream": "ghost"}"#, 2),
            put("locations/c", r#"{"path": "/c", "upstream": "u"}"#, 2),
        ]);
        let out = m.build();
        let c = published(&out);
        assert!(!c.locations.contains_key("b") && c.locations.contains_key("c"));
        assert_eq!(out.rejected.len(), 1);
        assert!(
            out.rejected[0].error.contains("unknown upstream \"ghost\""),
            "{out:?}"
        );
        // A changed item whose new version is invalid keeps its published version.
        m.apply(&[put(
            "locations/c",
            r#"{"path": "/c2", "upstream": "nope"}"#,
            3,
        )]);
        let out = m.build();
        assert_eq!(published(&out).locations["c"].path.as_deref(), Some("/c"));
        // The missing upstream arrives: b applies by itself.
        m.apply(&[put("upstreams/ghost", UP, 4)]);
        let out = m.build();
        assert!(published(&out).locations.contains_key("b"));
        assert_eq!(out.rejected.len(), 1, "{out:?}");
        assert_eq!(out.rejected[0].key, "/l/locations/c");
    }

    #[test]
    fn deleting_a_referenced_item_holds_changes() {
        let mut m = base();
        m.apply(&[
            del("upstreams/u", 2),
            put("plugins/p", r#"{"category": "ping", "path": "/ping"}"#, 2),
        ]);
        let out = m.build();
        assert!(out.config.is_none(), "{out:?}");
        assert_eq!(out.alarms, [Alarm::ChangesHeld]);
        assert_eq!(out.rejected.len(), 1, "{out:?}");
        assert_eq!(
            (out.rejected[0].key.as_str(), out.rejected[0].revision),
            ("/l/locations/a", 2)
        );
        // Removing the location that used it makes the whole valid again.
        m.apply(&[
            del("locations/a", 3),
            put("servers/s", r#"{"addr": "127.0.0.1:8080"}"#, 3),
        ]);
        let out = m.build();
        let c = published(&out);
        assert!(c.upstreams.is_empty() && c.locations.is_empty());
        assert!(c.plugins.contains_key("p"));
        assert!(out.alarms.is_empty() && out.rejected.is_empty());
    }

    #[test]
    fn wiped_prefix_and_intended_empty_config() {
        let mut m = base();
        m.apply(&[
            del("meta/generation", 2),
            del("upstreams/u", 2),
            del("locations/a", 2),
            del("servers/s", 2),
            put("nodes/n1", "{}", 3),
        ]);
        let out = m.build();
        assert!(out.config.is_none());
        assert_eq!(out.alarms, [Alarm::WipedPrefix]);
        // The control plane writes an empty config on purpose: generation present.
        m.apply(&[put("meta/generation", "2", 4)]);
        let out = m.build();
        assert_eq!(published(&out), &Config::default());
        assert!(out.alarms.is_empty());
        assert_eq!(m.generation(), Some(2));
        // A fresh mirror on an empty prefix publishes nothing.
        let mut fresh = Mirror::new(keys());
        assert_eq!(fresh.build().alarms, [Alarm::WipedPrefix]);
    }

    #[test]
    fn replace_applies_only_differences() {
        let mut m = base();
        let read = |entries: Vec<(&str, &str)>, revision| PrefixRead {
            revision,
            entries: entries
                .into_iter()
                .map(|(k, v)| RawEntry {
                    key: format!("/l/{k}"),
                    value: v.as_bytes().to_vec(),
                    mod_revision: 1,
                })
                .collect(),
            ..Default::default()
        };
        let same = read(
            vec![
                ("locations/a", r#"{"path": "/a", "upstream": "u"}"#),
                ("meta/generation", "1"),
                ("nodes/x", "{}"),
                (
                    "servers/s",
                    r#"{"addr": "127.0.0.1:8080", "locations": "a"}"#,
                ),
                ("upstreams/u", UP),
            ],
            9,
        );
        assert!(!m.replace(&same));
        assert_eq!(m.revision(), 9);
        let mut fewer = same.clone();
        fewer.entries.retain(|e| !e.key.ends_with("/x"));
        fewer.entries.push(fewer.entries[0].clone());
        fewer.entries[0].key = "/l/locations/z".into();
        assert!(m.replace(&fewer));
        let out = m.build();
        let names: Vec<&String> = published(&out).locations.keys().collect();
        assert_eq!(names, ["a", "z"]);
    }

    #[test]
    fn seeded_items_are_last_good_versions() {
        let mut m = base();
        let seed = published(&m.build()).clone();
        let mut s = Mirror::seeded(keys(), &seed, 5);
        let read = PrefixRead {
            revision: 7,
            entries: vec![
                RawEntry {
                    key: "/l/locations/a".into(),
                    value: b"{\"path\": 1}".to_vec(),
                    mod_revision: 6,
                },
                RawEntry {
                    key: "/l/servers/s".into(),
                    value: br#"{"addr": "127.0.0.1:8080", "locations": "a"}"#.to_vec(),
                    mod_revision: 1,
                },
                RawEntry {
                    key: "/l/upstreams/u".into(),
                    value: UP.as_bytes().to_vec(),
                    mod_revision: 1,
                },
            ],
            ..Default::default()
        };
        assert!(s.replace(&read));
        let out = s.build();
        let c = published(&out);
        assert_eq!(c.locations["a"].path.as_deref(), Some("/a"));
        assert_eq!(out.rejected[0].revision, 6);
        // Deleted while the node was away: gone.
        let mut read2 = read.clone();
        read2.entries.remove(0);
        read2.entries[0].value = br#"{"addr": "127.0.0.1:8080"}"#.to_vec();
        let mut s = Mirror::seeded(keys(), &seed, 5);
        s.replace(&read2);
        let out = s.build();
        assert!(published(&out).locations.is_empty(), "{out:?}");
    }

    #[test]
    fn items_of_round_trips() {
        let mut m = base();
        let c = published(&m.build()).clone();
        let items = items_of(&keys(), &c);
        assert_eq!(assemble(&items), c);
        assert!(items.contains_key("/l/locations/a"));
    }
}

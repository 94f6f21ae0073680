//! The etcd key layout (see `controlplane.md`, "etcd layout"): everything under one prefix,
//! one JSON value per item.
//!
//! | key | value |
//! |---|---|
//! | `<prefix>/basic` | the `basic` item |
//! | `<prefix>/<kind>/<name>` | one item of `servers`, `locations`, `upstreams`, `plugins`, `certificates` |
//! | `<prefix>/meta/generation` | bumped by every change the control plane makes |
//! | `<prefix>/meta/import` | present while a change split over several transactions is being written (or rolled back): nodes apply nothing until it is gone |
//! | `<prefix>/meta/import-undo/<id>/…` | the values such a change replaced, to roll it back |
//! | `<prefix>/nodes/<node-id>` | a node's status, bound to its lease |
//! | `<prefix>/acme/…`, `<prefix>/history/…` | not config; ignored by the follower |

use crate::items::check_name;
use crate::kind::{Kind, UnknownKind};
use crate::sources::item_label;
use serde_json::{Map, Value};
use std::fmt;

/// The prefix used when an `etcd://` URL names none.
pub const DEFAULT_PREFIX: &str = "/louailink";

/// Top-level names under the prefix that hold no config items.
const NOT_CONFIG: [&str; 4] = ["meta", "nodes", "acme", "history"];

/// A bad prefix, kind or item name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The prefix cannot be used.
    #[error("prefix {prefix:?}: {message}")]
    Prefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong.
        message: String,
    },
    /// The kind is not `basic` or one of the item kinds.
    #[error(transparent)]
    Kind(#[from] UnknownKind),
    /// The item or node name is not allowed.
    #[error("{0}")]
    Name(String),
}

/// Normalizes a prefix: leading `/` added, trailing `/` removed; no empty segments.
pub fn normalize_prefix(prefix: &str) -> Result<String, KeyError> {
    let err = |message: &str| KeyError::Prefix {
        prefix: prefix.to_string(),
        message: message.to_string(),
    };
    let trimmed = prefix.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(err("is empty; write e.g. /louailink"));
    }
    if trimmed.split('/').any(str::is_empty) {
        return Err(err("has an empty segment (\"//\")"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("contains white space or control characters"));
    }
    Ok(format!("/{trimmed}"))
}

/// One config item's identity: `basic` (name `""`) or `<kind>/<name>`. Ordered by kind
/// name, then item name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    /// The kind.
    pub kind: Kind,
    /// The item name (`""` for `basic`).
    pub name: String,
}

impl ItemKey {
    /// The `basic` item.
    pub fn basic() -> Self {
        Self::of(Kind::Basic, "")
    }

    /// Item `name` of `kind` (`basic` whatever the name), the name not checked: for the items
    /// of a decoded config, whose names were.
    pub fn of(kind: Kind, name: &str) -> Self {
        let name = if kind.is_named() { name } else { "" };
        ItemKey {
            kind,
            name: name.to_string(),
        }
    }

    /// An item of `kind` named `name`, both checked.
    pub fn new(kind: &str, name: &str) -> Result<Self, KeyError> {
        Self::checked(kind.parse()?, name)
    }

    /// Item `name` of `kind` (`basic` whatever the name), the name checked.
    pub fn checked(kind: Kind, name: &str) -> Result<Self, KeyError> {
        if kind.is_named() {
            check_name(name).map_err(KeyError::Name)?;
        }
        Ok(Self::of(kind, name))
    }

    /// `"basic"` or `"locations.api"`, as in config errors.
    pub fn label(&self) -> String {
        item_label(self.kind.as_str(), &self.name)
    }

    /// The item named by a config error's label (`"basic"`, `"locations.api"`).
    pub fn from_label(label: &str) -> Option<Self> {
        if label == Kind::Basic.as_str() {
            return Some(Self::basic());
        }
        let (kind, name) = label.split_once('.')?;
        Some(Self::of(named_kind(kind)?, name))
    }

    /// Puts `value` at this item's place in a config document (`{"basic": …}`,
    /// `{"<kind>": {"<name>": …}}`); returns the value that was there.
    pub fn put_in(&self, document: &mut Map<String, Value>, value: Value) -> Option<Value> {
        if !self.kind.is_named() {
            return document.insert(self.kind.as_str().to_string(), value);
        }
        let table = document
            .entry(self.kind.as_str())
            .or_insert_with(|| Value::Object(Map::new()));
        if !table.is_object() {
            *table = Value::Object(Map::new());
        }
        table
            .as_object_mut()
            .and_then(|t| t.insert(self.name.clone(), value))
    }

    /// Takes this item out of a config document (a kind's table is removed once empty);
    /// returns its value.
    pub fn take_from(&self, document: &mut Map<String, Value>) -> Option<Value> {
        let kind = self.kind.as_str();
        if !self.kind.is_named() {
            return document.remove(kind);
        }
        let table = document.get_mut(kind)?.as_object_mut()?;
        let value = table.remove(&self.name);
        if table.is_empty() {
            document.remove(kind);
        }
        value
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// What a key under the prefix is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A config item (its name is not checked here: a bad name is reported when decoding).
    Item(ItemKey),
    /// A key in a place no config kind lives (e.g. a misspelt kind): reported, not applied.
    Unknown {
        /// The first path segment after the prefix.
        kind: String,
        /// The rest.
        name: String,
    },
    /// `<prefix>/meta/generation`.
    Generation,
    /// `<prefix>/meta/import`: a staged change is in progress.
    ImportMarker,
    /// `<prefix>/nodes/<id>`.
    Node(String),
    /// Anything else that is not config (`meta/…`, `acme/…`, `history/…`).
    Other,
}

impl KeyKind {
    /// True for the keys the desired config is built from (items and unknown kinds).
    pub fn is_config(&self) -> bool {
        matches!(self, KeyKind::Item(_) | KeyKind::Unknown { .. })
    }
}

/// The key layout under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` (normalized, see [`normalize_prefix`]).
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        Ok(Keys {
            prefix: normalize_prefix(prefix)?,
        })
    }

    /// The normalized prefix, e.g. `/louailink`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/`: the range read and watched (so `/louailink2/…` is not included).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `<prefix>/<kind>/` (or `<prefix>/basic` for `basic`): the range of one kind.
    pub fn kind_dir(&self, kind: Kind) -> String {
        if kind.is_named() {
            format!("{}/{kind}/", self.prefix)
        } else {
            self.basic()
        }
    }

    /// The key of one item.
    pub fn item(&self, key: &ItemKey) -> String {
        if key.kind.is_named() {
            format!("{}/{}/{}", self.prefix, key.kind, key.name)
        } else {
            self.basic()
        }
    }

    /// `<prefix>/basic`.
    pub fn basic(&self) -> String {
        format!("{}/{}", self.prefix, Kind::Basic)
    }

    /// `<prefix>/meta/generation`.
    pub fn generation(&self) -> String {
        format!("{}/meta/generation", self.prefix)
    }

    /// `<prefix>/meta/import`: present while a staged change is written or rolled back.
    pub fn import_marker(&self) -> String {
        format!("{}/meta/import", self.prefix)
    }

    /// `<prefix>/meta/import-undo/<id>/`: the undo values of staged change `id`.
    pub fn import_undo_dir(&self, id: &str) -> String {
        format!("{}/meta/import-undo/{id}/", self.prefix)
    }

    /// `<prefix>/nodes/`.
    pub fn nodes_dir(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// `<prefix>/nodes/<id>`; the id follows the item name rules.
    pub fn node(&self, id: &str) -> Result<String, KeyError> {
        check_name(id).map_err(|e| KeyError::Name(format!("node id: {e}")))?;
        Ok(format!("{}/nodes/{id}", self.prefix))
    }

    /// What `key` is, or `None` when it is not under the prefix.
    pub fn parse(&self, key: &str) -> Option<KeyKind> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        if rest == Kind::Basic.as_str() {
            return Some(KeyKind::Item(ItemKey::basic()));
        }
        let (first, name) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some(kind) = named_kind(first) {
            // Not `of`: the name is kept as written (a bad one is reported when decoding).
            return Some(KeyKind::Item(ItemKey {
                kind,
                name: name.to_string(),
            }));
        }
        Some(match first {
            "meta" if name == "generation" => KeyKind::Generation,
            "meta" if name == "import" => KeyKind::ImportMarker,
            "nodes" if !name.is_empty() => KeyKind::Node(name.to_string()),
            _ if NOT_CONFIG.contains(&first) => KeyKind::Other,
            _ => KeyKind::Unknown {
                kind: first.to_string(),
                name: name.to_string(),
            },
        })
    }
}

/// The kind of named items called `word` (not `basic`).
fn named_kind(word: &str) -> Option<Kind> {
    word.parse().ok().filter(|k: &Kind| k.is_named())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let keys = Keys::new("louailink/").unwrap();
        assert_eq!(keys.prefix(), "/louailink");
        let api = ItemKey::new("locations", "api").unwrap();
        assert_eq!(keys.item(&api), "/louailink/locations/api");
        assert_eq!(keys.item(&ItemKey::basic()), "/louailink/basic");
        assert_eq!(keys.generation(), "/louailink/meta/generation");
        assert_eq!(keys.node("n-1").unwrap(), "/louailink/nodes/n-1");
        assert_eq!(keys.kind_dir(Kind::Locations), "/louailink/locations/");
        assert_eq!(
            keys.parse("/louailink/locations/api"),
            Some(KeyKind::Item(api.clone()))
        );
        assert_eq!(
            keys.parse("/louailink/basic"),
            Some(KeyKind::Item(ItemKey::basic()))
        );
        assert_eq!(
            keys.parse("/louailink/meta/generation"),
            Some(KeyKind::Generation)
        );
        assert_eq!(
            keys.parse("/louailink/nodes/n1"),
            Some(KeyKind::Node("n1".into()))
        );
        assert_eq!(
            keys.parse("/louailink/acme/challenges/t"),
            Some(KeyKind::Other)
        );
        assert_eq!(keys.parse("/louailink/meta/other"), Some(KeyKind::Other));
        assert_eq!(
            keys.parse(&keys.import_marker()),
            Some(KeyKind::ImportMarker)
        );
        assert_eq!(
            keys.parse(&format!("{}0", keys.import_undo_dir("x"))),
            Some(KeyKind::Other)
        );
        assert_eq!(
            keys.parse("/louailink/locaitons/x"),
            Some(KeyKind::Unknown {
                kind: "locaitons".into(),
                name: "x".into()
            })
        );
        // A name with a slash is still an item key; decoding reports the bad name.
        assert_eq!(
            keys.parse("/louailink/locations/a/b"),
            Some(KeyKind::Item(ItemKey {
                kind: Kind::Locations,
                name: "a/b".into()
            }))
        );
        assert_eq!(keys.parse("/louailink2/locations/api"), None);
        assert_eq!(keys.parse("/louailink"), None);
        assert_eq!(ItemKey::from_label("locations.a.b").unwrap().name, "a.b");
        assert_eq!(ItemKey::from_label("basic"), Some(ItemKey::basic()));
        assert_eq!(ItemKey::from_label("routes.x"), None);
    }

    #[test]
    fn items_find_their_place_in_a_document() {
        let mut doc = Map::new();
        let api = ItemKey::new("locations", "api").unwrap();
        assert_eq!(api.put_in(&mut doc, serde_json::json!({"path": "/"})), None);
        assert_eq!(
            ItemKey::basic().put_in(&mut doc, serde_json::json!({})),
            None
        );
        let again = api.put_in(&mut doc, serde_json::json!({"path": "/v2"}));
        assert_eq!(
            again,
            Some(serde_json::json!({"path": "/"})),
            "a second put says so"
        );
        assert_eq!(
            Value::Object(doc.clone()),
            serde_json::json!({"basic": {}, "locations": {"api": {"path": "/v2"}}})
        );
        assert!(api.take_from(&mut doc).is_some());
        assert_eq!(Value::Object(doc.clone()), serde_json::json!({"basic": {}}));
        assert!(ItemKey::basic().take_from(&mut doc).is_some() && doc.is_empty());
    }

    #[test]
    fn bad_names() {
        let e = ItemKey::new("location", "x").unwrap_err().to_string();
        assert!(e.contains("did you mean \"locations\""), "{e}");
        assert!(ItemKey::new("locations", "a/b").is_err());
        assert!(ItemKey::new("locations", "").is_err());
        assert!(Keys::new("/").is_err());
        assert!(Keys::new("/a//b").is_err());
        assert!(Keys::new("/a b").is_err());
        assert!(Keys::new("/louailink").unwrap().node("a/b").is_err());
    }
}

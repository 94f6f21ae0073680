//! Where each item and key of a configuration was written, so that errors found long after
//! parsing (validation, a rejected reload) can still name the file and line.

use crate::error::ConfigError;
use crate::kind::Kind;
use ahash::HashMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a config file. The file is shared by every key written in it, so a big
/// config costs one path per file rather than one per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Place {
    file: Option<Arc<Path>>,
    line: Option<usize>,
}

/// What was recorded about one item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ItemSources {
    /// Where the item was written; `None` while only its keys were recorded.
    place: Option<Place>,
    /// Key (nested keys dotted) → where it was written.
    keys: BTreeMap<String, Place>,
    /// Primary key → the alias it was written as.
    spelled: BTreeMap<String, String>,
    /// The item was written but could not be decoded at all.
    broken: bool,
}

/// For each item `(kind, name)` and each key `(kind, name, key)`, the file and 1-based line
/// where it was written. `basic` is recorded with the name `""`; nested keys are dotted
/// (`"webhook.url"`). Empty for configs that did not come from files.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    /// Kind → name → what was recorded (nested, so lookups by `&str` need no allocation).
    items: HashMap<String, HashMap<String, ItemSources>>,
    /// Some source could not be read or parsed, so any item may be missing.
    incomplete: bool,
    /// The file of the last place recorded, reused while the next ones are in the same file.
    last_file: Option<Arc<Path>>,
}

impl PartialEq for SourceMap {
    fn eq(&self, other: &Self) -> bool {
        // `last_file` is only a cache.
        self.items == other.items && self.incomplete == other.incomplete
    }
}

impl Eq for SourceMap {}

/// The user-facing label of an item: `"basic"` or `"locations.api"`.
pub fn item_label(kind: &str, name: &str) -> String {
    if kind == Kind::Basic.as_str() {
        kind.to_string()
    } else {
        format!("{kind}.{name}")
    }
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn item(&self, kind: &str, name: &str) -> Option<&ItemSources> {
        self.items.get(kind)?.get(name)
    }

    /// Runs `f` on the entry of item `(kind, name)`, creating it if needed.
    fn with_item(&mut self, kind: &str, name: &str, f: impl FnOnce(&mut ItemSources)) {
        // `entry` alone would allocate the kind and name on every call, not only the first.
        let names = match self.items.get_mut(kind) {
            Some(names) => names,
            None => self.items.entry(kind.to_string()).or_default(),
        };
        match names.get_mut(name) {
            Some(item) => f(item),
            None => f(names.entry(name.to_string()).or_default()),
        }
    }

    fn place(&mut self, file: Option<&Path>, line: Option<usize>) -> Place {
        let file = file.map(|file| match &self.last_file {
            // Compared byte for byte: `locate` returns the path exactly as it was given.
            Some(last) if last.as_os_str() == file.as_os_str() => last.clone(),
            _ => {
                let file: Arc<Path> = file.into();
                self.last_file = Some(file.clone());
                file
            }
        });
        Place { file, line }
    }

    /// Records where item `(kind, name)` was written.
    pub fn record_item(
        &mut self,
        kind: &str,
        name: &str,
        file: Option<&Path>,
        line: Option<usize>,
    ) {
        let place = self.place(file, line);
        self.with_item(kind, name, |item| item.place = Some(place));
    }

    /// Every item `(kind, name)` whose place was recorded (`basic` has the name `""`).
    pub fn items(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().flat_map(|(kind, names)| {
            names
                .iter()
                .filter(|(_, item)| item.place.is_some())
                .map(move |(name, _)| (kind.as_str(), name.as_str()))
        })
    }

    /// Records where `key` of item `(kind, name)` was written.
    pub fn record_key(
        &mut self,
        kind: &str,
        name: &str,
        key: &str,
        file: Option<&Path>,
        line: Option<usize>,
    ) {
        let place = self.place(file, line);
        self.with_item(kind, name, |item| {
            item.keys.insert(key.into(), place);
        });
    }

    /// Records that `primary` of item `(kind, name)` was written as its alias `written`.
    pub fn record_alias(&mut self, kind: &str, name: &str, primary: &str, written: &str) {
        self.with_item(kind, name, |item| {
            item.spelled.insert(primary.into(), written.into());
        });
    }

    /// Records that item `(kind, name)` was written but could not be decoded (its errors are
    /// already reported; validation treats it as existing so references to it add no noise).
    pub fn mark_broken(&mut self, kind: &str, name: &str) {
        self.with_item(kind, name, |item| item.broken = true);
    }

    /// True when item `(kind, name)` was written but could not be decoded.
    pub fn is_broken(&self, kind: &str, name: &str) -> bool {
        self.item(kind, name).is_some_and(|i| i.broken)
    }

    /// Records that some source could not be read or parsed: items may be missing, so
    /// validation does not report references to items it cannot see.
    pub fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// True when some source could not be read or parsed.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    /// True when item `(kind, name)` was recorded.
    pub fn has_item(&self, kind: &str, name: &str) -> bool {
        self.item(kind, name).is_some_and(|i| i.place.is_some())
    }

    /// File and line of `key` in item `(kind, name)`, falling back to the item's own position.
    pub fn locate(
        &self,
        kind: &str,
        name: &str,
        key: Option<&str>,
    ) -> (Option<PathBuf>, Option<usize>) {
        let Some(item) = self.item(kind, name) else {
            return (None, None);
        };
        let key_place = key.and_then(|mut k| {
            // "webhook.url" falls back to "webhook" before falling back to the item.
            loop {
                if let Some(p) = item.keys.get(k) {
                    return Some(p);
                }
                k = k.rsplit_once('.')?.0;
            }
        });
        match key_place.or(item.place.as_ref()) {
            Some(p) => (p.file.as_deref().map(Path::to_path_buf), p.line),
            None => (None, None),
        }
    }

    /// How `key` of item `(kind, name)` was written (its alias, if one was used).
    pub fn spelled<'a>(&'a self, kind: &str, name: &str, key: &'a str) -> &'a str {
        self.item(kind, name)
            .and_then(|i| i.spelled.get(key))
            .map_or(key, String::as_str)
    }

    /// An error about `key` of item `(kind, name)`, placed where it was written.
    pub fn error(
        &self,
        kind: &str,
        name: &str,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (file, line) = self.locate(kind, name, key);
        let key = key.map(|k| self.spelled(kind, name, k));
        ConfigError::new(item_label(kind, name), key, message).at(file, line)
    }

    /// Adds everything recorded in `other` (its entries win).
    pub fn extend(&mut self, other: SourceMap) {
        for (kind, names) in other.items {
            let mine = self.items.entry(kind).or_default();
            for (name, theirs) in names {
                let item = mine.entry(name).or_default();
                if theirs.place.is_some() {
                    item.place = theirs.place;
                }
                item.keys.extend(theirs.keys);
                item.spelled.extend(theirs.spelled);
                item.broken |= theirs.broken;
            }
        }
        self.incomplete |= other.incomplete;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_falls_back_from_key_to_item() {
        let mut s = SourceMap::new();
        let f = Path::new("a.toml");
        s.record_item("locations", "api", Some(f), Some(3));
        s.record_key("locations", "api", "path", Some(f), Some(5));
        s.record_item("basic", "", Some(f), Some(10));
        s.record_key("basic", "", "webhook", Some(f), Some(12));
        assert_eq!(
            s.locate("locations", "api", Some("path")),
            (Some(f.into()), Some(5))
        );
        assert_eq!(
            s.locate("locations", "api", Some("host")),
            (Some(f.into()), Some(3))
        );
        assert_eq!(
            s.locate("locations", "api", None),
            (Some(f.into()), Some(3))
        );
        assert_eq!(
            s.locate("basic", "", Some("webhook.url")),
            (Some(f.into()), Some(12))
        );
        assert_eq!(s.locate("locations", "nope", Some("path")), (None, None));
    }

    #[test]
    fn errors_use_the_spelling_written() {
        let mut s = SourceMap::new();
        s.record_key(
            "locations",
            "a",
            "response_headers",
            Some(Path::new("x.yaml")),
            Some(4),
        );
        s.record_alias("locations", "a", "response_headers", "headers");
        let e = s.error("locations", "a", Some("response_headers"), "bad");
        assert_eq!(e.to_string(), "x.yaml:4: locations.a: key \"headers\": bad");
        assert_eq!(s.error("basic", "", None, "m").to_string(), "basic: m");
    }

    #[test]
    fn keys_alone_do_not_make_an_item_and_extend_merges_key_by_key() {
        let (a, b) = (Path::new("a.toml"), Path::new("b.toml"));
        let mut s = SourceMap::new();
        s.record_key("upstreams", "u", "addrs", Some(a), Some(2));
        s.mark_broken("upstreams", "v");
        assert!(!s.has_item("upstreams", "u") && !s.has_item("upstreams", "v"));
        assert!(s.is_broken("upstreams", "v") && !s.is_broken("upstreams", "u"));
        assert_eq!(s.locate("upstreams", "u", None), (None, None));
        let mut other = SourceMap::new();
        other.record_item("upstreams", "u", Some(b), Some(7));
        other.record_key("upstreams", "u", "algo", Some(b), Some(8));
        other.mark_incomplete();
        s.extend(other);
        assert!(s.has_item("upstreams", "u") && s.is_incomplete());
        assert_eq!(
            s.locate("upstreams", "u", Some("addrs")),
            (Some(a.into()), Some(2))
        );
        assert_eq!(
            s.locate("upstreams", "u", Some("algo")),
            (Some(b.into()), Some(8))
        );
    }
}

//! Where each item and key of a configuration was written, so that errors found long after
//! parsing (validation, a rejected reload) can still name the file and line.

use crate::error::ConfigError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A position in a config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Place {
    file: Option<PathBuf>,
    line: Option<usize>,
}

/// For each item `(kind, name)` and each key `(kind, name, key)`, the file and 1-based line
/// where it was written. `basic` is recorded with the name `""`; nested keys are dotted
/// (`"webhook.url"`). Empty for configs that did not come from files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    items: BTreeMap<(String, String), Place>,
    keys: BTreeMap<(String, String, String), Place>,
    /// Keys written under an alias: (kind, name, primary key) → the alias as written.
    spelled: BTreeMap<(String, String, String), String>,
    /// Items that were written but could not be decoded at all.
    broken: BTreeSet<(String, String)>,
    /// Some source could not be read or parsed, so any item may be missing.
    incomplete: bool,
}

/// The user-facing label of an item: `"basic"` or `"locations.api"`.
pub fn item_label(kind: &str, name: &str) -> String {
    if kind == "basic" {
        "basic".to_string()
    } else {
        format!("{kind}.{name}")
    }
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records where item `(kind, name)` was written.
    pub fn record_item(
        &mut self,
        kind: &str,
        name: &str,
        file: Option<&Path>,
        line: Option<usize>,
    ) {
        let place = Place {
            file: file.map(Path::to_path_buf),
            line,
        };
        self.items.insert((kind.into(), name.into()), place);
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
        let place = Place {
            file: file.map(Path::to_path_buf),
            line,
        };
        self.keys
            .insert((kind.into(), name.into(), key.into()), place);
    }

    /// Records that `primary` of item `(kind, name)` was written as its alias `written`.
    pub fn record_alias(&mut self, kind: &str, name: &str, primary: &str, written: &str) {
        self.spelled
            .insert((kind.into(), name.into(), primary.into()), written.into());
    }

    /// Records that item `(kind, name)` was written but could not be decoded (its errors are
    /// already reported; validation treats it as existing so references to it add no noise).
    pub fn mark_broken(&mut self, kind: &str, name: &str) {
        self.broken.insert((kind.into(), name.into()));
    }

    /// True when item `(kind, name)` was written but could not be decoded.
    pub fn is_broken(&self, kind: &str, name: &str) -> bool {
        self.broken.contains(&(kind.to_string(), name.to_string()))
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
        self.items
            .contains_key(&(kind.to_string(), name.to_string()))
    }

    /// File and line of `key` in item `(kind, name)`, falling back to the item's own position.
    pub fn locate(
        &self,
        kind: &str,
        name: &str,
        key: Option<&str>,
    ) -> (Option<PathBuf>, Option<usize>) {
        let key_place = key.and_then(|k| {
            // "webhook.url" falls back to "webhook" before falling back to the item.
            let mut k = k;
            loop {
                if let Some(p) = self
                    .keys
                    .get(&(kind.to_string(), name.to_string(), k.to_string()))
                {
                    return Some(p);
                }
                k = k.rsplit_once('.')?.0;
            }
        });
        match key_place.or_else(|| self.items.get(&(kind.to_string(), name.to_string()))) {
            Some(p) => (p.file.clone(), p.line),
            None => (None, None),
        }
    }

    /// How `key` of item `(kind, name)` was written (its alias, if one was used).
    pub fn spelled<'a>(&'a self, kind: &str, name: &str, key: &'a str) -> &'a str {
        self.spelled
            .get(&(kind.to_string(), name.to_string(), key.to_string()))
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
        self.items.extend(other.items);
        self.keys.extend(other.keys);
        self.spelled.extend(other.spelled);
        self.broken.extend(other.broken);
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
}

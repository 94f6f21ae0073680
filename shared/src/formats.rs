//! Reading TOML, YAML and JSON text into one generic tree (`serde_json::Value`) plus a line
//! index: for each key path (`["locations", "api", "path"]`) the 1-based line where it is
//! written. TOML lines come from `toml_edit` spans; YAML and JSON lines from a light scan of
//! the text (keys by indentation, resp. by nesting), which is exact for ordinary files.

use crate::depth::{check_json, check_toml, check_yaml};
use crate::error::ConfigError;
use crate::fields::clean_message;
use ahash::HashMap;
use serde_json::{Map, Number, Value};
use std::path::Path;

/// A config file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format of a file, from its extension (`toml`, `yaml`, `yml`, `json`; any case).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A key path (`["locations", "api", "path"]`) encoded as one byte string, so that indexing a
/// big file costs one allocation per key rather than one per path segment, and a path can be
/// extended and cut back in place.
///
/// Each segment is written as its length (LEB128) followed by its bytes: no two different
/// paths share an encoding, whatever characters their keys contain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<u8>);

impl KeyPath {
    /// The path of `segments`.
    pub fn of(segments: &[&str]) -> Self {
        let mut path = KeyPath::default();
        for segment in segments {
            path.push(segment);
        }
        path
    }

    /// Appends a segment; returns the mark to [`KeyPath::truncate`] back to.
    pub fn push(&mut self, segment: &str) -> usize {
        let mark = self.0.len();
        let mut len = segment.len();
        while len >= 0x80 {
            self.0.push(0x80 | (len & 0x7f) as u8);
            len >>= 7;
        }
        self.0.push(len as u8);
        self.0.extend_from_slice(segment.as_bytes());
        mark
    }

    /// Cuts the path back to a mark returned by [`KeyPath::push`].
    pub fn truncate(&mut self, mark: usize) {
        self.0.truncate(mark);
    }
}

/// A parsed document: its value and where each key path was written.
#[derive(Debug, Default)]
pub struct Tree {
    /// The whole document.
    pub root: Value,
    /// Key path → 1-based line of its first occurrence.
    lines: HashMap<KeyPath, usize>,
    /// Keys written twice in the same object, which the parser silently merged (JSON):
    /// `(path, first line, second line)`.
    pub duplicates: Vec<(Vec<String>, usize, usize)>,
}

impl Tree {
    /// The line of a key path, if known.
    pub fn line(&self, path: &[&str]) -> Option<usize> {
        self.line_of(&KeyPath::of(path))
    }

    /// The line of an encoded key path, if known (no allocation, for hot loops).
    pub fn line_of(&self, path: &KeyPath) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// Parses `text` in `format`; a syntax error is returned with its line.
pub fn parse_tree(text: &str, format: Format) -> Result<Tree, ConfigError> {
    // Bounded before any parser or line scan runs: their cost grows faster than the depth.
    match format {
        Format::Toml => check_toml(text)?,
        Format::Yaml => check_yaml(text)?,
        Format::Json => check_json(text)?,
    }
    match format {
        Format::Toml => parse_toml(text),
        Format::Yaml => parse_yaml(text),
        Format::Json => parse_json(text),
    }
}

/// Byte offsets → 1-based line numbers.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts.collect())
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

fn syntax_error(message: &str, line: Option<usize>) -> ConfigError {
    ConfigError::new(
        "",
        None,
        format!("syntax error: {}", clean_message(message)),
    )
    .at(None, line)
}

// ---------------------------------------------------------------- TOML

fn parse_toml(text: &str) -> Result<Tree, ConfigError> {
    let index = LineIndex::new(text);
    let doc = toml_edit::ImDocument::parse(text)
        .map_err(|e| syntax_error(e.message(), e.span().map(|s| index.line(s.start))))?;
    let mut walk = TomlWalk {
        index: &index,
        path: KeyPath::default(),
        lines: HashMap::default(),
    };
    let root = walk.table(doc.as_table());
    Ok(Tree {
        root,
        lines: walk.lines,
        duplicates: Vec::new(),
    })
}

/// Converts a `toml_edit` document to a `Value`, noting each key's line on the way.
struct TomlWalk<'a> {
    index: &'a LineIndex,
    /// The path of the key being converted; one buffer, extended and cut back.
    path: KeyPath,
    lines: HashMap<KeyPath, usize>,
}

impl TomlWalk<'_> {
    fn table(&mut self, table: &dyn toml_edit::TableLike) -> Value {
        let mut entries = Vec::new();
        for (key, item) in table.iter() {
            let mark = self.path.push(key);
            let span = table
                .key(key)
                .and_then(toml_edit::Key::span)
                .or_else(|| item.span());
            if let Some(span) = span {
                // The first occurrence wins (arrays of tables repeat their keys).
                let index = self.index;
                self.lines
                    .entry(self.path.clone())
                    .or_insert_with(|| index.line(span.start));
            }
            if let Some(v) = self.item(item) {
                entries.push((key.to_owned(), v));
            }
            self.path.truncate(mark);
        }
        // Built at once (sorted, then laid out in full nodes): much cheaper than inserting
        // the keys one by one into a big table such as 10,000 locations.
        Value::Object(entries.into_iter().collect())
    }

    fn item(&mut self, item: &toml_edit::Item) -> Option<Value> {
        Some(match item {
            toml_edit::Item::None => return None,
            toml_edit::Item::Value(v) => self.value(v),
            toml_edit::Item::Table(t) => self.table(t),
            toml_edit::Item::ArrayOfTables(a) => {
                Value::Array(a.iter().map(|t| self.table(t)).collect())
            }
        })
    }

    fn value(&mut self, v: &toml_edit::Value) -> Value {
        use toml_edit::Value as T;
        match v {
            T::String(s) => Value::String(s.value().clone()),
            T::Integer(i) => Value::from(*i.value()),
            T::Float(f) => Number::from_f64(*f.value())
                .map_or_else(|| Value::String(f.to_string()), Value::Number),
            T::Boolean(b) => Value::Bool(*b.value()),
            T::Datetime(d) => Value::String(d.value().to_string()),
            T::Array(a) => Value::Array(a.iter().map(|v| self.value(v)).collect()),
            T::InlineTable(t) => self.table(t),
        }
    }
}

// ---------------------------------------------------------------- YAML

fn parse_yaml(text: &str) -> Result<Tree, ConfigError> {
    let root: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        let mut yaml: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| syntax_error(&e.to_string(), e.location().map(|l| l.line())))?;
        // Anchors are resolved by the parser; `<<: *anchor` merge keys are applied here.
        yaml.apply_merge()
            .map_err(|e| syntax_error(&e.to_string(), e.location().map(|l| l.line())))?;
        serde_json::to_value(yaml).map_err(|e| syntax_error(&e.to_string(), None))?
    };
    // An empty YAML document (only comments) is null: treat it as an empty config.
    let root = if root.is_null() {
        Value::Object(Map::new())
    } else {
        root
    };
    let lines = yaml_lines(text);
    Ok(Tree {
        root,
        lines,
        duplicates: Vec::new(),
    })
}

/// Key lines of a block-style YAML document, found by indentation.
fn yaml_lines(text: &str) -> HashMap<KeyPath, usize> {
    let mut lines = HashMap::default();
    let mut path = KeyPath::default();
    // One entry per enclosing key: its indentation and the path mark before it.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let body = raw.trim_start();
        let indent = raw.len() - body.len();
        if body.is_empty()
            || body.starts_with('#')
            || body.starts_with("---")
            || body.starts_with("- ")
        {
            continue;
        }
        let Some(key) = yaml_key(body) else { continue };
        while let Some(&(i, mark)) = stack.last() {
            if i < indent {
                break;
            }
            path.truncate(mark);
            stack.pop();
        }
        let mark = path.push(key);
        lines.entry(path.clone()).or_insert(n + 1);
        stack.push((indent, mark));
    }
    lines
}

/// The key of a `key: value` / `"key": value` line.
fn yaml_key(body: &str) -> Option<&str> {
    if let Some(q) = body.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let rest = &body[1..];
        let end = rest.find(q)?;
        return rest[end + 1..]
            .trim_start()
            .starts_with(':')
            .then_some(&rest[..end]);
    }
    let colon = body
        .find(": ")
        .or_else(|| body.strip_suffix(':').map(str::len))?;
    let key = body[..colon].trim_end();
    (!key.is_empty() && !key.contains(['{', '[', '#'])).then_some(key)
}

// ---------------------------------------------------------------- JSON

fn parse_json(text: &str) -> Result<Tree, ConfigError> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| syntax_error(&e.to_string(), Some(e.line())))?;
    let (lines, duplicates) = json_lines(text);
    Ok(Tree {
        root,
        lines,
        duplicates,
    })
}

/// Key lines of a JSON document, found by following its nesting, and the keys written twice
/// in one object (outside arrays).
#[allow(clippy::type_complexity)]
fn json_lines(text: &str) -> (HashMap<KeyPath, usize>, Vec<(Vec<String>, usize, usize)>) {
    let mut lines = HashMap::default();
    let mut duplicates = Vec::new();
    let mut path = KeyPath::default();
    // One entry per open container: the key under which it was opened and the path mark
    // before that key (None in arrays).
    let mut stack: Vec<Option<(String, usize)>> = Vec::new();
    let mut pending: Option<String> = None; // the last key read, until its value opens or ends
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '{' | '[' => stack.push(pending.take().map(|key| {
                let mark = path.push(&key);
                (key, mark)
            })),
            '}' | ']' => {
                if let Some(Some((_, mark))) = stack.pop() {
                    path.truncate(mark);
                }
                pending = None;
            }
            ',' => pending = None,
            '"' => {
                let start_line = line;
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        '\n' => {
                            line += 1;
                            s.push(c);
                        }
                        _ => s.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    if chars.next() == Some('\n') {
                        line += 1;
                    }
                }
                if chars.peek() == Some(&':') {
                    let mark = path.push(&s);
                    let in_array = stack.iter().skip(1).any(Option::is_none);
                    match lines.get(&path) {
                        Some(first) if !in_array => {
                            let mut keys: Vec<String> =
                                stack.iter().flatten().map(|(k, _)| k.clone()).collect();
                            keys.push(s.clone());
                            duplicates.push((keys, *first, start_line));
                        }
                        Some(_) => {}
                        None => {
                            lines.insert(path.clone(), start_line);
                        }
                    }
                    path.truncate(mark);
                    pending = Some(s);
                }
            }
            _ => {}
        }
    }
    (lines, duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[upstreams.charts]
addrs = ["127.0.0.1:5000"]

[locations.lo]
upstream = "charts"
path = "/"

[servers.test]
addr = "0.0.0.0:6188"
locations = ["lo"]

[basic.webhook]
url = "http://x"
"#;

    #[test]
    fn toml_values_and_lines() {
        let t = parse_tree(TOML, Format::Toml).unwrap();
        assert_eq!(t.root["servers"]["test"]["addr"], "0.0.0.0:6188");
        assert_eq!(t.line(&["upstreams", "charts"]), Some(2));
        assert_eq!(t.line(&["locations", "lo"]), Some(5));
        assert_eq!(t.line(&["locations", "lo", "path"]), Some(7));
        assert_eq!(t.line(&["servers", "test", "locations"]), Some(11));
        assert_eq!(t.line(&["basic", "webhook", "url"]), Some(14));
    }

    #[test]
    fn toml_inline_and_dotted() {
        let t = parse_tree(
            "locations.a.path = \"/\"\n\n[servers]\nb = { addr = \"x\" }\n",
            Format::Toml,
        )
        .unwrap();
        assert_eq!(t.root["locations"]["a"]["path"], "/");
        assert_eq!(t.line(&["locations", "a", "path"]), Some(1));
        assert_eq!(t.line(&["servers", "b", "addr"]), Some(4));
    }

    #[test]
    fn yaml_values_and_lines() {
        let text = "# comment\nlocations:\n  lo:\n    upstream: charts\n    \"path\": /\nservers:\n  test:\n    addr: 0.0.0.0:6188\n    locations:\n      - lo\n";
        let t = parse_tree(text, Format::Yaml).unwrap();
        assert_eq!(t.root["servers"]["test"]["locations"][0], "lo");
        assert_eq!(t.line(&["locations", "lo"]), Some(3));
        assert_eq!(t.line(&["locations", "lo", "path"]), Some(5));
        assert_eq!(t.line(&["servers", "test", "addr"]), Some(8));
        assert_eq!(
            parse_tree("# nothing\n", Format::Yaml).unwrap().root,
            serde_json::json!({})
        );
    }

    #[test]
    fn json_values_and_lines() {
        let text = "{\n  \"locations\": {\n    \"lo\": {\"upstream\": \"charts\",\n      \"path\": \"/a\\\"b\"}\n  },\n  \"servers\": {\"test\": {\"addr\": \"x\"}}\n}";
        let t = parse_tree(text, Format::Json).unwrap();
        assert_eq!(t.root["locations"]["lo"]["path"], "/a\"b");
        assert_eq!(t.line(&["locations", "lo"]), Some(3));
        assert_eq!(t.line(&["locations", "lo", "path"]), Some(4));
        assert_eq!(t.line(&["servers", "test", "addr"]), Some(6));
    }

    #[test]
    fn json_duplicates_are_found() {
        let text = "{\"servers\": {\"a\": {\"addr\": \"x\"},\n \"a\": {}},\n \"l\": [{\"k\": 1}, {\"k\": 2}]}";
        let t = parse_tree(text, Format::Json).unwrap();
        assert_eq!(
            t.duplicates,
            vec![(vec!["servers".to_string(), "a".to_string()], 1, 2)]
        );
    }

    #[test]
    fn yaml_merge_keys() {
        let text = "x-common: &common\n  addrs: 127.0.0.1:1\nupstreams:\n  a:\n    <<: *common\n    algo: random\n";
        let t = parse_tree(text, Format::Yaml).unwrap();
        assert_eq!(
            t.root["upstreams"]["a"],
            serde_json::json!({"addrs": "127.0.0.1:1", "algo": "random"})
        );
        assert!(
            parse_tree("a: 1\na: 2\n", Format::Yaml).is_err(),
            "YAML duplicate keys are syntax errors"
        );
    }

    #[test]
    fn syntax_errors_carry_lines() {
        let e = parse_tree("[servers.a]\naddr = \n", Format::Toml).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = parse_tree("{\n\"a\": 1,\n}", Format::Json).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse_tree("a:\n  b: 1\n c: [\n", Format::Yaml).unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn key_paths_never_collide() {
        let long = "x".repeat(200);
        let paths: &[&[&str]] = &[
            &[],
            &[""],
            &["", ""],
            &["a"],
            &["a", "b"],
            &["ab"],
            &["", "a"],
            &["\u{1}a"],
            &["\u{0}"],
            &[&long],
            &[&long[..128], &long[128..]],
            &[&long[..127], &long[127..]],
        ];
        for (i, a) in paths.iter().enumerate() {
            for (j, b) in paths.iter().enumerate() {
                assert_eq!(KeyPath::of(a) == KeyPath::of(b), i == j, "{a:?} {b:?}");
            }
        }
        let t = parse_tree("[a]\n\"b.c\" = 1\n[a.b]\nc = 2\n", Format::Toml).unwrap();
        assert_eq!(t.line(&["a", "b.c"]), Some(2));
        assert_eq!(t.line(&["a", "b", "c"]), Some(4));
    }

    #[test]
    fn formats_from_extensions() {
        assert_eq!(Format::from_path(Path::new("a/b.YML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
    }
}

//! Loading a file config again while re-parsing only what changed, so that a one-line edit of
//! a 10,000-location file costs milliseconds instead of a full parse.
//!
//! Each file's text is cut into segments: a TOML file at its top-level item headers
//! (`[basic]`, `[kind]`, `[kind.name]`), a YAML or JSON file as a whole. A segment whose text
//! is the same as at the last load contributes the items it produced then, copied from the
//! config that load produced (the running one); only new segments are parsed, each on its own.
//! Whenever the fast path is unsure (a segment that does not parse on its own, an item in two
//! segments, a header written twice, a validation error), the config is loaded the ordinary
//! way, so the result and every error message are exactly those of [`load`].

use crate::bounded::{read_regular_text, MAX_CONFIG_FILE};
use crate::error::ConfigErrors;
use crate::formats::Format;
use crate::kind::Kind;
use crate::loader::{collect_files, load, parse_text};
use crate::model::Config;
use crate::sources::SourceMap;
use crate::validate::validate_since;
use ahash::{HashMap, HashSet, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An item's kind and name (`""` for `basic`).
type ItemKey = (Kind, Box<str>);

/// What the last load made of each segment: the items it defined, by a keyed hash of the
/// segment's format and text (the key is random per index, so texts cannot be crafted to
/// collide).
#[derive(Debug, Default)]
pub struct SegmentIndex {
    segments: HashMap<u64, Arc<[ItemKey]>>,
    hasher: RandomState,
}

impl SegmentIndex {
    fn key(&self, format: Format, text: &str) -> u64 {
        self.hasher.hash_one((format as u8, text))
    }

    /// How many segments it knows.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True when it knows no segment (the next load parses everything).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// The result of [`load_reusing`].
#[derive(Debug)]
pub struct Reloaded {
    /// The validated config, equal to what [`load`] returns for the same files.
    pub config: Config,
    /// The segments of this load, for the next one (its base must be `config`).
    pub index: SegmentIndex,
    /// Segments parsed by this load (the rest were reused).
    pub parsed: usize,
}

/// Loads `path` like [`load`], parsing only the segments that `index` does not know; the items
/// of known segments are copied from `base`, the config of the load that made `index` (with an
/// empty index, any config that passed validation: locations equal to its own are not
/// checked again, only their references).
pub fn load_reusing(
    path: &Path,
    index: &SegmentIndex,
    base: &Config,
) -> Result<Reloaded, ConfigErrors> {
    match fast_path(path, index, base) {
        Some(reloaded) => Ok(reloaded),
        None => load(path).map(|loaded| Reloaded {
            config: loaded.config,
            index: SegmentIndex::default(),
            parsed: 0,
        }),
    }
}

/// The whole load from segments, or `None` for anything the ordinary load must judge.
fn fast_path(path: &Path, index: &SegmentIndex, base: &Config) -> Option<Reloaded> {
    let files = config_files(path)?;
    let mut next = SegmentIndex {
        segments: HashMap::default(),
        hasher: index.hasher.clone(),
    };
    let mut config = Config::default();
    // Items written, to find one written in two segments (the second would replace the first).
    let (mut written, mut basics) = (0, 0);
    let mut parsed = 0;
    for file in &files {
        let format = Format::from_path(file)?;
        let text = read_regular_text(file, MAX_CONFIG_FILE).ok()?;
        for segment in segments(&text, format) {
            let key = index.key(format, segment);
            let items = match index.segments.get(&key) {
                Some(items) => {
                    for (kind, name) in items.iter() {
                        base.item(*kind, name)?.insert_into(&mut config, name);
                    }
                    Arc::clone(items)
                }
                None => {
                    parsed += 1;
                    let loaded = parse_text(segment, format, None).ok()?;
                    let items = segment_items(&loaded.sources)?;
                    for (kind, name) in items.iter() {
                        loaded
                            .config
                            .item(*kind, name)?
                            .insert_into(&mut config, name);
                    }
                    items
                }
            };
            written += items.len();
            basics += items.iter().filter(|(kind, _)| !kind.is_named()).count();
            next.segments.insert(key, items);
        }
    }
    if basics > 1 || written != config.named_count() + basics {
        return None;
    }
    validate_since(&config, &SourceMap::default(), Some(base)).ok()?;
    Some(Reloaded {
        config,
        index: next,
        parsed,
    })
}

/// The files of `path` in load order, or `None` if any cannot be listed.
fn config_files(path: &Path) -> Option<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(vec![path.to_path_buf()]);
    }
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    collect_files(path, &mut files, &mut errors, &mut Default::default());
    files.sort();
    errors.is_empty().then_some(files)
}

/// The items a segment defined.
fn segment_items(sources: &SourceMap) -> Option<Arc<[ItemKey]>> {
    sources
        .items()
        .map(|(kind, name)| Some((kind.parse().ok()?, name.into())))
        .collect()
}

/// The segments of a file's text (together exactly the text). A TOML file is cut before each
/// header of at most two keys; one that holds anything else (root keys before the first
/// header, an array of tables, a header written twice) stays whole.
fn segments(text: &str, format: Format) -> Vec<&str> {
    let whole = vec![text];
    if format != Format::Toml {
        return whole;
    }
    let mut starts = Vec::new();
    let mut headers = HashSet::default();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.trim_start();
        let at = offset;
        offset += line.len();
        if code.is_empty() || code.starts_with('#') {
            continue;
        }
        if code.starts_with("[[") {
            return whole;
        }
        if !code.starts_with('[') {
            if starts.is_empty() {
                // A key before the first header: root-level dotted keys mix with headers in
                // ways only the whole document can judge.
                return whole;
            }
            continue;
        }
        match header_keys(code) {
            Some(keys) if keys.len() <= 2 => {
                if !headers.insert(keys) {
                    return whole;
                }
                starts.push(at);
            }
            Some(_) => {}
            None => return whole,
        }
    }
    if starts.len() < 2 {
        return whole;
    }
    let mut out = Vec::with_capacity(starts.len());
    let mut from = 0;
    for &start in &starts[1..] {
        out.push(&text[from..start]);
        from = start;
    }
    out.push(&text[from..]);
    out
}

/// The keys of a TOML table header line (`[a . "b c"]  # note`), or `None` for anything this
/// simple reader does not understand (escapes in quoted keys, text after the header), which
/// keeps the file whole.
fn header_keys(line: &str) -> Option<Vec<&str>> {
    let mut rest = line.strip_prefix('[')?;
    let mut keys = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let (key, after) = match rest.as_bytes().first()? {
            quote @ (b'"' | b'\'') => {
                let body = &rest[1..];
                let end = body.find(*quote as char)?;
                let key = &body[..end];
                if key.contains('\\') {
                    return None;
                }
                (key, &body[end + 1..])
            }
            _ => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                (&rest[..end], &rest[end..])
            }
        };
        keys.push(key);
        rest = after.trim_start_matches([' ', '\t']);
        match rest.as_bytes().first()? {
            b'.' => rest = &rest[1..],
            b']' => break,
            _ => return None,
        }
    }
    let tail = rest[1..].trim();
    (tail.is_empty() || tail.starts_with('#')).then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const BASE: &str = r#"# a comment before the first header stays with it
[basic]
log_level = "info"

[upstreams.u]
addrs = ["127.0.0.1:5000"]

[locations.a]
upstream = "u"
path = "/a"

[locations.b]
upstream = "u"
path = "~^/b/(?<id>[0-9]+)$"
rewrite = "^/b/(.*) /$1"

[ locations . "c" ]  # quoted, spaced
upstream = "u"
path = "/c"

[servers.s]
addr = "127.0.0.1:6188"
locations = ["a", "b", "c"]
"#;

    /// `load` and `load_reusing` on the same files: configs, or error texts, equal.
    fn same_as_load(path: &Path, index: &SegmentIndex, base: &Config) -> Option<Reloaded> {
        let reused = load_reusing(path, index, base);
        let full = load(path);
        match (&reused, &full) {
            (Ok(r), Ok(l)) => assert_eq!(r.config, l.config),
            (Err(r), Err(l)) => assert_eq!(r.to_string(), l.to_string()),
            _ => panic!(
                "load_reusing {:?} but load {:?}",
                reused.is_ok(),
                full.is_ok()
            ),
        }
        reused.ok()
    }

    #[test]
    fn only_changed_segments_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        fs::write(&file, BASE).unwrap();
        let first = same_as_load(&file, &SegmentIndex::default(), &Config::default()).unwrap();
        assert_eq!((first.parsed, first.index.len()), (6, 6));

        fs::write(&file, BASE.replace("path = \"/a\"", "path = \"/a2\"")).unwrap();
        let second = same_as_load(&file, &first.index, &first.config).unwrap();
        assert_eq!(second.parsed, 1);
        assert_eq!(second.config.locations["a"].path.as_deref(), Some("/a2"));

        // A new item and a removed one: the new one is parsed, the removed one is gone.
        let edited = BASE
            .replace("[locations.a]\nupstream = \"u\"\npath = \"/a\"\n\n", "")
            .replace("\"a\", ", "")
            + "\n[locations.d]\nupstream = \"u\"\npath = \"/d\"\n";
        fs::write(&file, edited).unwrap();
        let third = same_as_load(&file, &second.index, &second.config).unwrap();
        assert_eq!(third.parsed, 2, "the server's list and locations.d");
        assert!(!third.config.locations.contains_key("a"));

        // Unchanged text: nothing parsed.
        let fourth = same_as_load(&file, &third.index, &third.config).unwrap();
        assert_eq!(fourth.parsed, 0);
    }

    #[test]
    fn a_directory_reparses_only_the_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.toml"), BASE).unwrap();
        let extra = dir.path().join("b.yaml");
        fs::write(&extra, "locations:\n  y:\n    upstream: u\n    path: /y\n").unwrap();
        let first = same_as_load(dir.path(), &SegmentIndex::default(), &Config::default()).unwrap();
        fs::write(&extra, "locations:\n  y:\n    upstream: u\n    path: /y2\n").unwrap();
        let second = same_as_load(dir.path(), &first.index, &first.config).unwrap();
        assert_eq!(second.parsed, 1);
        assert_eq!(second.config.locations["y"].path.as_deref(), Some("/y2"));
        // The same item in another file: the ordinary load's "defined twice", with both files.
        let again = r#"{"locations": {"y": {"upstream": "u", "path": "/y3"}}}"#;
        fs::write(dir.path().join("c.json"), again).unwrap();
        assert!(same_as_load(dir.path(), &second.index, &second.config).is_none());
    }

    #[test]
    fn whatever_the_segments_cannot_judge_is_loaded_the_ordinary_way() {
        let upstream = "[upstreams.u]\naddrs = [\"127.0.0.1:5000\"]\n";
        let cases = [
            // A kind table written twice: one document refuses it, each half alone would not.
            format!("{upstream}[locations]\na.path = \"/a\"\na.upstream = \"u\"\n[locations]\nb.path = \"/b\"\nb.upstream = \"u\"\n"),
            // An item written twice.
            format!("{upstream}[locations.a]\npath = \"/a\"\nupstream = \"u\"\n[locations.a]\npath = \"/b\"\n"),
            // A header-looking line inside a multi-line string.
            format!("{upstream}[locations.a]\npath = \"/a\"\nupstream = \"u\"\nset_headers = [\"\"\"X: 1\n[locations.z]\n\"\"\"]\n"),
            // Root-level dotted keys before the headers.
            format!("locations.r.path = \"/r\"\nlocations.r.upstream = \"u\"\n{upstream}"),
            // One item split over two segments.
            format!("{upstream}[locations]\na.path = \"/a\"\n[locations.b]\npath = \"/b\"\nupstream = \"u\"\n[locations.a.x]\ny = 1\n"),
            // An array of tables, a broken header, a missing reference, a bad key.
            format!("{upstream}[[locations.a]]\npath = \"/a\"\n"),
            format!("{upstream}[locations.a\npath = \"/a\"\n"),
            "[locations.a]\npath = \"/a\"\nupstream = \"missing\"\n".to_string(),
            format!("{upstream}[locations.a]\npaht = \"/a\"\nupstream = \"u\"\n"),
            // Escapes in a quoted header key.
            format!("{upstream}[locations.\"\\u0061\"]\npath = \"/a\"\nupstream = \"u\"\n"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        for text in cases {
            fs::write(&file, &text).unwrap();
            let fresh = same_as_load(&file, &SegmentIndex::default(), &Config::default());
            // Again with an index whose base is gone: still exactly what `load` says.
            fs::write(&file, BASE).unwrap();
            let known = load_reusing(&file, &SegmentIndex::default(), &Config::default()).unwrap();
            fs::write(&file, &text).unwrap();
            same_as_load(&file, &known.index, &Config::default());
            drop(fresh);
        }
    }

    #[test]
    fn header_keys_read_toml_headers() {
        assert_eq!(header_keys("[basic]\n"), Some(vec!["basic"]));
        assert_eq!(
            header_keys("[ locations . 'a.b' ] # x"),
            Some(vec!["locations", "a.b"])
        );
        assert_eq!(
            header_keys("[locations.\"a b\".c]"),
            Some(vec!["locations", "a b", "c"])
        );
        assert_eq!(header_keys("[locations.a] x"), None);
        assert_eq!(header_keys("[locations.\"a\\\"b\"]"), None);
        assert_eq!(header_keys("[locations.]"), None);
    }
}

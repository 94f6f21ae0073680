//! Loading a configuration from a file or a directory of files: parse each file, decode each
//! item key by key, merge, validate, and report every problem found with its file and line.
//!
//! Items are decoded one at a time ([`decode_item`]), so the etcd back end, which stores one
//! JSON value per item, shares exactly the same rules.

use crate::bounded::{read_regular_text, MAX_CONFIG_FILE};
use crate::error::{ConfigError, ConfigErrors};
use crate::formats::{parse_tree, KeyPath, Tree};
use crate::items::{decode_partial, type_name, unknown_kind};
use crate::kind::{Kind, KINDS};
use crate::model::Config;
use crate::sources::item_label;
use crate::validate::validate;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

pub use crate::formats::Format;
pub use crate::items::{check_name, decode_item, Item, ALIASES};
pub use crate::sources::SourceMap;

/// A decoded configuration and where each of its parts was written.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// File and line of each item and key.
    pub sources: SourceMap,
}

impl Loaded {
    /// The items the sources wrote, with the table's order (see [`Config::items`]): every
    /// named item, and `basic` only when a source wrote it.
    pub fn written_items(&self) -> impl Iterator<Item = (Kind, &str, Item)> + '_ {
        let with_basic = self.sources.has_item(Kind::Basic.as_str(), "");
        self.config
            .items()
            .filter(move |(kind, _, _)| kind.is_named() || with_basic)
    }
}

/// Everything gathered so far while loading: the partial config and all errors.
#[derive(Default)]
struct Parsed {
    loaded: Loaded,
    errors: Vec<ConfigError>,
}

impl Parsed {
    fn finish(mut self, validate_too: bool) -> Result<Loaded, ConfigErrors> {
        if validate_too {
            if let Err(more) = validate(&self.loaded.config, &self.loaded.sources) {
                // A key that did not decode is reported once, not again as "missing".
                let seen: BTreeSet<(String, Option<String>)> = self
                    .errors
                    .iter()
                    .map(|e| (e.item.clone(), e.key.clone()))
                    .collect();
                let fresh = more
                    .into_iter()
                    .filter(|e| !seen.contains(&(e.item.clone(), e.key.clone())));
                self.errors.extend(fresh.collect::<Vec<_>>());
            }
        }
        if self.errors.is_empty() {
            Ok(self.loaded)
        } else {
            let mut all = ConfigErrors(self.errors);
            all.sort();
            Err(all)
        }
    }

    /// Parses one document and adds its items.
    fn add_text(&mut self, text: &str, format: Format, file: Option<&Path>) {
        let tree = match parse_tree(text, format) {
            Ok(tree) => tree,
            Err(e) => {
                let line = e.line;
                self.errors.push(e.at(file.map(Path::to_path_buf), line));
                self.loaded.sources.mark_incomplete();
                return;
            }
        };
        let at = |path: &[&str]| (file.map(Path::to_path_buf), tree.line(path));
        for (path, first, second) in &tree.duplicates {
            let e = duplicate_key(path, *first).at(file.map(Path::to_path_buf), Some(*second));
            self.errors.push(e);
        }
        let Value::Object(root) = &tree.root else {
            let msg = format!(
                "a config must be a table of kinds (basic, {})",
                KINDS.join(", ")
            );
            let (f, l) = at(&[]);
            self.errors.push(ConfigError::new("", None, msg).at(f, l));
            self.loaded.sources.mark_incomplete();
            return;
        };
        for (word, value) in root {
            match word.parse::<Kind>() {
                Ok(Kind::Basic) => self.add_item(&tree, file, Kind::Basic, "", value),
                Ok(kind) => match value {
                    Value::Object(items) => {
                        for (name, item) in items {
                            self.add_item(&tree, file, kind, name, item);
                        }
                    }
                    Value::Null => {}
                    other => {
                        let msg =
                            format!("must be a table of named items, not {}", type_name(other));
                        let (f, l) = at(&[word]);
                        self.errors
                            .push(ConfigError::new(word.as_str(), None, msg).at(f, l));
                    }
                },
                Err(_) => {
                    let (f, l) = at(&[word]);
                    self.errors.push(unknown_kind(word).at(f, l));
                }
            }
        }
    }

    /// Records where an item and its keys are written, decodes it and merges it in.
    fn add_item(
        &mut self,
        tree: &Tree,
        file: Option<&Path>,
        kind: Kind,
        name: &str,
        value: &Value,
    ) {
        // The source map is keyed by the kind's name.
        let k = kind.as_str();
        // One path buffer, extended and cut back for each key: no allocation per lookup.
        let mut path = KeyPath::default();
        path.push(k);
        if kind.is_named() {
            path.push(name);
        }
        let line = tree.line_of(&path);
        let sources = &mut self.loaded.sources;
        if sources.has_item(k, name) {
            let (first_file, first_line) = sources.locate(k, name, None);
            let first = match (first_file, first_line) {
                (Some(f), Some(l)) => format!("{}:{l}", f.display()),
                (Some(f), None) => f.display().to_string(),
                (None, Some(l)) => format!("line {l}"),
                (None, None) => "another source".to_string(),
            };
            let msg = format!("defined twice: already defined at {first}");
            let e = ConfigError::new(item_label(k, name), None, msg)
                .at(file.map(Path::to_path_buf), line);
            self.errors.push(e);
            return;
        }
        sources.record_item(k, name, file, line);
        if let Value::Object(obj) = value {
            for (key, v) in obj {
                let key_mark = path.push(key);
                let key_line = tree.line_of(&path).or(line);
                sources.record_key(k, name, key, file, key_line);
                if let Some((_, _, primary)) =
                    ALIASES.iter().find(|(of, a, _)| *of == kind && a == key)
                {
                    sources.record_key(k, name, primary, file, key_line);
                    sources.record_alias(k, name, primary, key);
                }
                if let Value::Object(inner) = v {
                    for sub in inner.keys() {
                        let sub_mark = path.push(sub);
                        let sub_line = tree.line_of(&path).or(key_line);
                        sources.record_key(k, name, &format!("{key}.{sub}"), file, sub_line);
                        path.truncate(sub_mark);
                    }
                }
                path.truncate(key_mark);
            }
        }
        let (item, errors) = decode_partial(kind, name, value);
        for e in errors {
            let (f, l) = sources.locate(k, name, e.key.as_deref());
            self.errors.push(e.at(f, l));
        }
        match item {
            Some(item) => item.insert_into(&mut self.loaded.config, name),
            None => sources.mark_broken(k, name),
        }
    }

    /// Reads and adds one file.
    fn add_file(&mut self, path: &Path) {
        let Some(format) = Format::from_path(path) else {
            let msg = "unknown config format; use a .toml, .yaml, .yml or .json file";
            self.errors
                .push(ConfigError::new("", None, msg).at(Some(path.into()), None));
            self.loaded.sources.mark_incomplete();
            return;
        };
        // Bounded, and only a regular file: a FIFO or a device in the config directory must
        // not hang or exhaust the reader.
        match read_regular_text(path, MAX_CONFIG_FILE) {
            Ok(text) => self.add_text(&text, format, Some(path)),
            Err(e) => {
                let e = ConfigError::new("", None, format!("cannot read: {e}"))
                    .at(Some(path.into()), None);
                self.errors.push(e);
                self.loaded.sources.mark_incomplete();
            }
        }
    }
}

/// The error for a key path written twice in one file (which the parser silently merged).
fn duplicate_key(path: &[String], first_line: usize) -> ConfigError {
    let (item, key): (String, &[String]) = match path {
        [basic, rest @ ..] if basic == Kind::Basic.as_str() => (basic.clone(), rest),
        [kind, name, rest @ ..] if kind.parse().is_ok_and(Kind::is_named) => {
            (item_label(kind, name), rest)
        }
        _ => (String::new(), path),
    };
    if key.is_empty() {
        ConfigError::new(
            item,
            None,
            format!("defined twice: already defined at line {first_line}"),
        )
    } else {
        let msg = format!("written twice (also at line {first_line})");
        ConfigError::new(item, Some(&key.join(".")), msg)
    }
}

/// Parses one document (no semantic validation): syntax, kinds, names, keys and value types.
pub fn parse_text(text: &str, format: Format, file: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let mut parsed = Parsed::default();
    parsed.add_text(text, format, file);
    parsed.finish(false)
}

/// Loads a config file, or every config file under a directory (recursively, in sorted
/// order), merges them and validates the result. Returns every error found.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let mut parsed = Parsed::default();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut files = Vec::new();
            let mut visited = HashSet::new();
            collect_files(path, &mut files, &mut parsed.errors, &mut visited);
            if !parsed.errors.is_empty() {
                parsed.loaded.sources.mark_incomplete();
            }
            files.sort();
            for file in &files {
                parsed.add_file(file);
            }
        }
        Ok(_) => parsed.add_file(path),
        Err(e) => {
            let e = ConfigError::new("", None, format!("cannot read config: {e}"))
                .at(Some(path.into()), None);
            return Err(e.into());
        }
    }
    parsed.finish(true)
}

/// Every config file under `dir`; hidden entries (`.name`) are skipped, symlink loops broken.
pub(crate) fn collect_files(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<ConfigError>,
    visited: &mut HashSet<PathBuf>,
) {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !visited.insert(real) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(
                ConfigError::new("", None, format!("cannot read directory: {e}"))
                    .at(Some(dir.into()), None),
            );
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(
                    ConfigError::new("", None, format!("cannot read directory: {e}"))
                        .at(Some(dir.into()), None),
                );
                continue;
            }
        };
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'))
        {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect_files(&path, files, errors, visited),
            Ok(meta) if meta.is_file() && Format::from_path(&path).is_some() => files.push(path),
            Ok(_) => {}
            Err(e) => errors
                .push(ConfigError::new("", None, format!("cannot read: {e}")).at(Some(path), None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LocationConf, ServerConf, UpstreamConf};
    use crate::validate::summary;
    use std::fs;

    const SMALLEST: &str = r#"[upstreams.charts]
addrs = ["127.0.0.1:5000"]

[locations.lo]
upstream = "charts"
path = "/"

[servers.test]
addr = "0.0.0.0:6188"
locations = ["lo"]
"#;

    fn smallest_config() -> Config {
        let mut c = Config::default();
        c.upstreams.insert(
            "charts".into(),
            UpstreamConf {
                addrs: crate::values::StrList(vec!["127.0.0.1:5000".into()]),
                ..Default::default()
            },
        );
        c.locations.insert(
            "lo".into(),
            LocationConf {
                upstream: Some("charts".into()),
                path: Some("/".into()),
                ..Default::default()
            },
        );
        c.servers.insert(
            "test".into(),
            ServerConf {
                addr: crate::values::StrList(vec!["0.0.0.0:6188".into()]),
                locations: crate::values::StrList(vec!["lo".into()]),
                ..Default::default()
            },
        );
        c
    }

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn smallest_config_loads_exactly_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "louailink.toml", SMALLEST);
        let loaded = load(&file).unwrap();
        assert_eq!(loaded.config, smallest_config());
        assert_eq!(
            summary(&loaded.config),
            "1 server, 1 location, 1 upstream, 0 plugins, 0 certificates"
        );
        assert_eq!(
            loaded.sources.locate("locations", "lo", Some("path")),
            (Some(file.clone()), Some(6))
        );
        assert_eq!(
            loaded.sources.locate("servers", "test", None),
            (Some(file), Some(8))
        );
    }

    #[test]
    fn yaml_and_json_equivalents_load() {
        let yaml = "upstreams:\n  charts:\n    addrs: [\"127.0.0.1:5000\"]\nlocations:\n  lo:\n    upstream: charts\n    path: /\nservers:\n  test:\n    addr: 0.0.0.0:6188\n    locations:\n      - lo\n";
        let json = r#"{"upstreams": {"charts": {"addrs": ["127.0.0.1:5000"]}},
 "locations": {"lo": {"upstream": "charts", "path": "/"}},
 "servers": {"test": {"addr": "0.0.0.0:6188", "locations": ["lo"]}}}"#;
        let y = parse_text(yaml, Format::Yaml, None).unwrap();
        assert_eq!(y.config, smallest_config());
        assert_eq!(
            y.sources.locate("locations", "lo", Some("path")),
            (None, Some(7))
        );
        let j = parse_text(json, Format::Json, None).unwrap();
        assert_eq!(j.config, smallest_config());
        assert_eq!(
            j.sources.locate("servers", "test", Some("locations")),
            (None, Some(3))
        );
    }

    #[test]
    fn yaml_and_json_errors_have_lines() {
        let yaml = "locations:\n  lo:\n    upstream: charts\n    paht: /\n";
        let e = parse_text(yaml, Format::Yaml, Some(Path::new("c.yaml"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yaml:4: locations.lo: key \"paht\": unknown key (did you mean \"path\"?)"
        );
        let json = "{\"servers\": {\n  \"s\": {\n    \"threads\": \"two\"\n  }\n}}";
        let e = parse_text(json, Format::Json, Some(Path::new("c.json"))).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(
            (e.0[0].line, e.0[0].key.as_deref()),
            (Some(3), Some("threads")),
            "{e}"
        );
    }

    #[test]
    fn one_file_with_many_errors_reports_them_all_with_lines() {
        let text = r#"[basic]
log_level = "loud"
threads = 0

[servers.web]
addr = "0.0.0.0:8080, nonsense"
locations = "api, ghost"
enabled_h2 = "yes"
access_log = "{stauts}"
treads = 4

[servers.other]
addr = "0.0.0.0:8080"
metrics = "metrics"

[locations.api]
paht = "/api"
upstream = "backend"
headers = ["nocolon"]
max_processing = "lots"
rewrite = "^/(x /y"
plugins = "nope"

[upstreams.backends]
addrs = ["10.0.0.1"]
algo = "fastest"
health_check = "ftp://x"
connection_timeout = "0s"

[plugins.pong]
category = "ping"
paht = "/ping"

[certificates.c]
tls_cert = "/nonexistent/c.pem"
tls_key = "/nonexistent/k.pem"
acme = "zerossl"
domains = "a.com"

[locaitons.x]
path = "/"
"#;
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "a.toml", text);
        let errors = load(&file).unwrap_err();
        let expected: &[(usize, &str, Option<&str>, &str)] = &[
            (2, "basic", Some("log_level"), "unknown log level \"loud\""),
            (3, "basic", Some("threads"), "must be at least 1"),
            (
                6,
                "servers.web",
                Some("addr"),
                "\"nonsense\" is not a socket address",
            ),
            (
                7,
                "servers.web",
                Some("locations"),
                "unknown location \"ghost\"",
            ),
            (8, "servers.web", Some("enabled_h2"), "invalid type"),
            (
                9,
                "servers.web",
                Some("access_log"),
                "did you mean {status}?",
            ),
            (
                10,
                "servers.web",
                Some("treads"),
                "unknown key (did you mean \"threads\"?)",
            ),
            (
                6,
                "servers.web",
                Some("addr"),
                "0.0.0.0:8080 is also the listen address of servers.other",
            ),
            (14, "servers.other", Some("metrics"), "must start with '/'"),
            (
                17,
                "locations.api",
                Some("paht"),
                "unknown key (did you mean \"path\"?)",
            ),
            (
                18,
                "locations.api",
                Some("upstream"),
                "unknown upstream \"backend\" (did you mean \"backends\"?)",
            ),
            (
                19,
                "locations.api",
                Some("headers"),
                "must be written \"Name: value\"",
            ),
            (20, "locations.api", Some("max_processing"), "invalid type"),
            (
                21,
                "locations.api",
                Some("rewrite"),
                "rewrite regex \"^/(x\" does not compile: unclosed group",
            ),
            (
                22,
                "locations.api",
                Some("plugins"),
                "unknown plugin \"nope\"",
            ),
            (25, "upstreams.backends", Some("addrs"), "has no port"),
            (
                26,
                "upstreams.backends",
                Some("algo"),
                "unknown algo \"fastest\"",
            ),
            (
                27,
                "upstreams.backends",
                Some("health_check"),
                "must be http or tcp",
            ),
            (
                28,
                "upstreams.backends",
                Some("connection_timeout"),
                "must be above 0",
            ),
            (30, "plugins.pong", Some("path"), "is required"),
            (
                32,
                "plugins.pong",
                Some("paht"),
                "unknown key (did you mean \"path\"?)",
            ),
            (
                35,
                "certificates.c",
                Some("tls_cert"),
                "cannot read tls_cert file",
            ),
            (
                37,
                "certificates.c",
                Some("acme"),
                "unknown ACME provider \"zerossl\"",
            ),
            (
                40,
                "",
                Some("locaitons"),
                "unknown kind (did you mean \"locations\"?)",
            ),
        ];
        for (line, item, key, text) in expected {
            let found = errors.iter().any(|e| {
                e.line == Some(*line)
                    && e.item == *item
                    && e.key.as_deref() == *key
                    && e.message.contains(text)
                    && e.file.as_deref() == Some(file.as_path())
            });
            assert!(found, "missing {line} {item} {key:?} {text:?} in\n{errors}");
        }
        assert_eq!(
            errors.len(),
            expected.len(),
            "unexpected extra errors:\n{errors}"
        );
        let lines: Vec<usize> = errors.iter().filter_map(|e| e.line).collect();
        assert!(
            lines.windows(2).all(|w| w[0] <= w[1]),
            "not sorted by line: {lines:?}"
        );
    }

    #[test]
    fn every_syntax_error_of_every_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "[servers.a\n");
        write(dir.path(), "b.json", "{\"servers\": }");
        write(dir.path(), "c.yaml", "servers:\n  a: [\n");
        let errors = load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors}");
        for (e, name) in errors.iter().zip(["a.toml", "b.json", "c.yaml"]) {
            assert_eq!(e.file.as_deref(), Some(dir.path().join(name).as_path()));
            assert!(
                e.line.is_some() && e.message.starts_with("syntax error"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_broken_file_does_not_cause_reference_noise() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            "[upstreams.u\naddrs = \"127.0.0.1:1\"\n",
        );
        write(dir.path(), "b.toml", "[locations.l]\nupstream = \"u\"\n[servers.s]\naddr = \"0.0.0.0:1\"\nlocations = \"l\"\ntls = true\n");
        let errors = load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(errors.0[0].message.starts_with("syntax error"), "{errors}");
    }

    #[test]
    fn directory_is_merged_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "10-upstreams.toml",
            "[upstreams.charts]\naddrs = \"127.0.0.1:5000\"\n",
        );
        write(
            dir.path(),
            "sub/20-locations.yml",
            "locations:\n  lo:\n    upstream: charts\n    path: /\n",
        );
        write(
            dir.path(),
            "30-servers.json",
            "{\"servers\": {\"test\": {\"addr\": \"0.0.0.0:6188\", \"locations\": \"lo\"}}}",
        );
        write(dir.path(), "notes.txt", "not config");
        write(dir.path(), ".hidden.toml", "this is not toml");
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.config, smallest_config());
        let (file, line) = loaded.sources.locate("locations", "lo", Some("path"));
        assert_eq!(
            (file, line),
            (Some(dir.path().join("sub/20-locations.yml")), Some(4))
        );
    }

    #[test]
    fn an_item_defined_in_two_files_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.toml",
            "[upstreams.u]\naddrs = \"127.0.0.1:1\"\n\n[basic]\nthreads = 1\n",
        );
        let b = write(
            dir.path(),
            "b.json",
            "{\n\"upstreams\": {\n\"u\": {\"addrs\": \"127.0.0.1:2\"}},\n\"basic\": {}}",
        );
        let errors = load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors}");
        let text = errors.to_string();
        let b_shown = b.display().to_string();
        let a_shown = a.display().to_string();
        assert!(
            text.contains(&format!(
                "{b_shown}:3: upstreams.u: defined twice: already defined at {a_shown}:1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{b_shown}:4: basic: defined twice: already defined at {a_shown}:4"
            )),
            "{text}"
        );
    }

    /// What `-t` does with a directory: load, then validate.
    fn check_dir(dir: &Path) -> Result<(), String> {
        let l = load(dir).map_err(|e| e.to_string())?;
        crate::validate::validate(&l.config, &l.sources).map_err(|e| e.to_string())
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let n = 100_000;
        for (file, text) in [
            (
                "a.yaml",
                format!("upstreams: {}{}\n", "[".repeat(n), "]".repeat(n)),
            ),
            (
                "b.json",
                format!("{{\"plugins\": {}{}}}", "[".repeat(n), "]".repeat(n)),
            ),
            (
                "c.toml",
                format!("x = {}{}\n", "[".repeat(n), "]".repeat(n)),
            ),
            ("d.yaml", format!("basic:\n  x:\n    {}1\n", "- ".repeat(n))),
        ] {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let started = std::time::Instant::now();
        let e = check_dir(dir.path()).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        for shown in ["a.yaml:1:", "b.json:1:", "c.toml:1:", "d.yaml:3:"] {
            assert!(e.contains(shown), "{shown} not in {e}");
        }
        assert!(e.contains("nests deeper than 128 levels"), "{e}");
    }

    #[test]
    fn certificate_paths_to_devices_and_fifos_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        let text = format!(
            "[certificates.c]\ntls_cert = \"/dev/zero\"\ntls_key = {:?}\n",
            fifo.to_str().unwrap()
        );
        std::fs::write(conf.join("c.toml"), text).unwrap();
        let started = std::time::Instant::now();
        let e = check_dir(&conf).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(
            e.contains("certificates.c: key \"tls_cert\"") && e.contains("a device"),
            "{e}"
        );
        // A FIFO as the key: refused without blocking.
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let text = format!(
            "[certificates.c]\ntls_cert = {pem:?}\ntls_key = {:?}\n",
            fifo.to_str().unwrap()
        );
        std::fs::write(conf.join("c.toml"), text).unwrap();
        let e = check_dir(&conf).unwrap_err();
        assert!(e.contains("key \"tls_key\"") && e.contains("a FIFO"), "{e}");
        // A FIFO in the config directory itself is skipped, not read.
        let c = std::ffi::CString::new(conf.join("f.toml").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(check_dir(&conf).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn json_duplicates_are_errors() {
        let json = "{\"upstreams\": {\n\"u\": {\"addrs\": \"127.0.0.1:1\", \"algo\": \"random\",\n \"algo\": \"least_conn\"},\n\"u\": {}}}";
        let e = parse_text(json, Format::Json, Some(Path::new("d.json"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.json:3: upstreams.u: key \"algo\": written twice (also at line 2)\n\
             d.json:4: upstreams.u: defined twice: already defined at line 2"
        );
    }

    #[test]
    fn aliases_and_comma_lists() {
        let text = r#"[locations.a]
proxy_headers = ["X-A: 1"]
headers = "X-B: 2, 3"
proxy_plugins = "p1, p2"
proxy_add_headers = ["X-C: c"]

[servers.s]
addr = "0.0.0.0:80,[::]:80"
locations = "a"
"#;
        let l = parse_text(text, Format::Toml, None).unwrap();
        let a = &l.config.locations["a"];
        assert_eq!(a.proxy_set_headers.0, ["X-A: 1"]);
        assert_eq!(a.response_headers.0, ["X-B: 2, 3"]);
        assert_eq!(a.plugins.0, ["p1", "p2"]);
        assert_eq!(l.config.servers["s"].addr.0, ["0.0.0.0:80", "[::]:80"]);
        // Errors on aliased keys use the name as written, with its line.
        let e = crate::validate::validate(&l.config, &l.sources).unwrap_err();
        assert!(e.iter().any(|e| e.to_string() == "line 4: locations.a: key \"proxy_plugins\": unknown plugin \"p1\": there is no plugins.p1"), "{e}");
        let e = parse_text(
            "[locations.a]\nheaders = [\"A: 1\"]\nresponse_headers = []\n",
            Format::Toml,
            None,
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "line 3: locations.a: key \"response_headers\": \"response_headers\" and \"headers\" are the same key; write only one"
        );
    }

    #[test]
    fn nested_webhook_keys_are_checked() {
        let text = "[basic.webhook]\nurll = \"http://x\"\ntype = \"slack\"\n";
        let e = parse_text(text, Format::Toml, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: basic: key \"webhook.urll\": unknown key (did you mean \"url\"?)"
        );
        let ok = parse_text(
            "[basic.webhook]\nurl = \"http://x\"\ntype = \"slack\"\n",
            Format::Toml,
            None,
        )
        .unwrap();
        assert_eq!(
            ok.config.basic.webhook.unwrap().kind.as_deref(),
            Some("slack")
        );
    }

    #[test]
    fn items_that_are_not_tables() {
        let e = parse_text(
            "[locations]\na = 5\n\n[servers.s]\nlocations = \"a\"\n",
            Format::Toml,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: locations.a: must be a table of keys, not a number"
        );
        // The broken location still counts as existing: no extra "unknown location" error.
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "a.toml",
            "[locations]\na = 5\n\n[servers.s]\naddr = \"0.0.0.0:1\"\nlocations = \"a\"\n",
        );
        assert_eq!(load(&f).unwrap_err().len(), 1);
        let e = parse_text("servers = 1\n", Format::Toml, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: servers: must be a table of named items, not a number"
        );
        let e = parse_text("[1, 2]", Format::Json, None).unwrap_err();
        assert!(e.to_string().contains("must be a table of kinds"), "{e}");
    }

    #[test]
    fn bad_values_are_not_reported_twice() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "a.toml", "[servers.s]\naddr = 80\n");
        let e = load(&f).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        assert_eq!(
            (e.0[0].line, e.0[0].key.as_deref()),
            (Some(2), Some("addr"))
        );
    }

    #[test]
    fn missing_paths_and_unknown_extensions() {
        let e = load(Path::new("/nonexistent/louailink")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/louailink: cannot read config"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "a.conf", "");
        assert!(load(&f)
            .unwrap_err()
            .to_string()
            .contains("unknown config format"));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(load(empty.path()).unwrap().config, Config::default());
    }
}

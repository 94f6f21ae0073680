//! Config errors: each names the file and line (when known), the item, the key and what is wrong,
//! and a loader or validator always returns all of them together.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration, e.g. `conf/a.toml:12: locations.api: key "paht": unknown key`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file the problem is in (absent for etcd or in-memory text).
    pub file: Option<PathBuf>,
    /// 1-based line in `file`.
    pub line: Option<usize>,
    /// `"locations.api"`, `"basic"`, or `""` for file-level problems.
    pub item: String,
    /// The key within the item (`"path"`, `"webhook.url"`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `item` (and `key`), without a file position. A multi-line message is
    /// folded into one line, so that a list of errors stays one error per line.
    pub fn new(item: impl Into<String>, key: Option<&str>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.contains('\n') {
            let lines: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            lines.join("; ")
        } else {
            message
        };
        ConfigError {
            file: None,
            line: None,
            item: item.into(),
            key: key.map(String::from),
            message,
        }
    }

    /// The same error placed at `file` and `line`.
    pub fn at(mut self, file: Option<PathBuf>, line: Option<usize>) -> Self {
        self.file = file;
        self.line = line;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.item.is_empty() {
            write!(f, "{}: ", self.item)?;
        }
        if let Some(key) = &self.key {
            write!(f, "key {key:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration; displayed one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Sorts by file, then line (errors without a file last); the sort is stable.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (a.file.is_none(), &a.file, a.line).cmp(&(b.file.is_none(), &b.file, b.line))
        });
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(v: Vec<ConfigError>) -> Self {
        ConfigErrors(v)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_omits_absent_parts() {
        let e = ConfigError::new(
            "locations.api",
            Some("paht"),
            "unknown key (did you mean \"path\"?)",
        )
        .at(Some("conf/a.toml".into()), Some(12));
        assert_eq!(
            e.to_string(),
            "conf/a.toml:12: locations.api: key \"paht\": unknown key (did you mean \"path\"?)"
        );
        assert_eq!(
            ConfigError::new("basic", None, "bad").to_string(),
            "basic: bad"
        );
        assert_eq!(ConfigError::new("", None, "bad").to_string(), "bad");
        let e = ConfigError::new("", None, "syntax").at(Some("x.json".into()), None);
        assert_eq!(e.to_string(), "x.json: syntax");
        let e = ConfigError::new("", None, "syntax").at(None, Some(3));
        assert_eq!(e.to_string(), "line 3: syntax");
        assert_eq!(ConfigError::new("x", None, "a\n  b\n").message, "a; b");
    }

    #[test]
    fn many_errors_one_per_line_sorted() {
        let mut all = ConfigErrors(vec![
            ConfigError::new("a", None, "no file"),
            ConfigError::new("b", None, "late").at(Some("f.toml".into()), Some(9)),
            ConfigError::new("c", None, "early").at(Some("f.toml".into()), Some(2)),
        ]);
        all.sort();
        assert_eq!(
            all.to_string(),
            "f.toml:2: c: early\nf.toml:9: b: late\na: no file"
        );
        assert_eq!(all.len(), 3);
    }
}

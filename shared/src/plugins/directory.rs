//! `directory`: static files from a folder (MIME types, validators, ranges, index file,
//! optional listing).

use super::{PluginSpec, Problems};
use crate::values::Dur;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `directory` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct DirectoryOptions {
    /// The folder served (absolute; required). The data plane refuses it when it is not a
    /// directory there: the control plane cannot see the nodes' disks.
    pub path: String,
    /// File answered for a directory (default `index.html`; empty = none).
    pub index: String,
    /// An HTML listing of a directory without an index file (default false: 403).
    pub autoindex: bool,
    /// `Cache-Control: max-age` of the files served (absent = no Cache-Control).
    pub max_age: Option<Dur>,
    /// Charset added to `text/*` types (e.g. `utf-8`; empty = none).
    pub charset: String,
    /// Send files as downloads (`Content-Disposition: attachment`).
    pub download: bool,
}

impl Default for DirectoryOptions {
    fn default() -> Self {
        DirectoryOptions {
            path: String::new(),
            index: "index.html".into(),
            autoindex: false,
            max_age: None,
            charset: String::new(),
            download: false,
        }
    }
}

/// A single file name: no separator, not `.` or `..`, no NUL.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl PluginSpec for DirectoryOptions {
    const CATEGORY: &'static str = "directory";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        let mut problem = |key: &str, msg: String| problems.push((Some(key.to_string()), msg));
        if self.path.is_empty() {
            problem(
                "path",
                "is required: the folder to serve, e.g. \"/srv/www\"".into(),
            );
        } else if !self.path.starts_with('/') || self.path.contains('\0') {
            let msg = format!("{:?} must be an absolute path", self.path);
            problem("path", msg);
        }
        if !self.index.is_empty() && !is_file_name(&self.index) {
            let msg = format!("{:?} must be a file name, without '/'", self.index);
            problem("index", msg);
        }
        let token = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
        if !self.charset.chars().all(token) {
            let msg = format!("{:?} is not a charset name such as \"utf-8\"", self.charset);
            problem("charset", msg);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn options(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_and_values() {
        let o: DirectoryOptions = decode(&options(serde_json::json!({"path": "/srv"}))).unwrap();
        assert_eq!(
            (o.index.as_str(), o.autoindex, o.download),
            ("index.html", false, false)
        );
        let o: DirectoryOptions = decode(&options(serde_json::json!({
            "path": "/srv", "index": "", "max_age": "1h", "charset": "utf-8", "autoindex": true
        })))
        .unwrap();
        assert_eq!(o.max_age.map(|d| d.0.as_secs()), Some(3600));
        assert_eq!((o.index.as_str(), o.autoindex), ("", true));
    }

    #[test]
    fn bad_options_name_their_key() {
        let e = decode::<DirectoryOptions>(&options(serde_json::json!({
            "path": "srv", "index": "../x", "charset": "utf 8", "max_age": "soon"
        })))
        .unwrap_err();
        let mut keys: Vec<_> = e.iter().filter_map(|(k, _)| k.as_deref()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["charset", "index", "max_age", "path"], "{e:?}");
        let e = decode::<DirectoryOptions>(&Map::new()).unwrap_err();
        assert!(e[0].1.contains("is required"), "{e:?}");
    }
}

//! `response_headers`: renames, removes, sets and appends response headers (values with
//! request variables), on upstream responses and on replies made here alike.

use super::{PluginSpec, Problems};
use crate::values::{split_header_line, HeaderList, StrList};
use crate::vars::{header_name, parse_template};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `response_headers` options, applied in this order: rename, remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ResponseHeadersOptions {
    /// `"Name: value"` appended (a header already there keeps its values).
    pub add_headers: HeaderList,
    /// `"Name: value"` replacing every value of the header.
    pub set_headers: HeaderList,
    /// Header names removed.
    pub remove_headers: StrList,
    /// `"Old: New"`: the values of `Old` move to `New` (replacing it).
    pub rename_headers: HeaderList,
}

/// Checks `"Name: value"` lines and their variables.
fn check_lines(key: &str, list: &HeaderList, problems: &mut Problems) {
    for line in &list.0 {
        let checked = split_header_line(line).and_then(|(_, value)| parse_template(value));
        if let Err(e) = checked {
            problems.push((Some(key.into()), e));
        }
    }
}

impl PluginSpec for ResponseHeadersOptions {
    const CATEGORY: &'static str = "response_headers";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        check_lines("add_headers", &self.add_headers, &mut problems);
        check_lines("set_headers", &self.set_headers, &mut problems);
        for name in self.remove_headers.iter() {
            if header_name(name).is_none() {
                let msg = format!("{name:?} is not a header name");
                problems.push((Some("remove_headers".into()), msg));
            }
        }
        for line in &self.rename_headers.0 {
            let to = split_header_line(line).map(|(_, to)| to);
            match to {
                Err(e) => problems.push((Some("rename_headers".into()), e)),
                Ok(to) if header_name(to).is_none() => {
                    let msg = format!("{to:?} in {line:?} is not a header name (\"Old: New\")");
                    problems.push((Some("rename_headers".into()), msg));
                }
                Ok(_) => {}
            }
        }
        let nothing = [&self.add_headers, &self.set_headers, &self.rename_headers]
            .iter()
            .all(|l| l.0.is_empty())
            && self.remove_headers.is_empty();
        if nothing {
            let msg = "set add_headers, set_headers, remove_headers or rename_headers";
            problems.push((None, msg.into()));
        }
        problems
    }
}

//! `mock`: answers a fixed response (status, headers, body), optionally after a delay.

use super::{check_path, PluginSpec, Problems};
use crate::values::{split_header_line, Dur, HeaderList};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `mock` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct MockOptions {
    /// Exact path answered; empty = every path.
    pub path: String,
    /// Response status (default 200).
    pub status: u16,
    /// Response headers, `"Name: value"`.
    pub headers: HeaderList,
    /// Response body.
    pub data: String,
    /// Wait this long before answering.
    pub delay: Option<Dur>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            path: String::new(),
            status: 200,
            headers: HeaderList::default(),
            data: String::new(),
            delay: None,
        }
    }
}

impl PluginSpec for MockOptions {
    const CATEGORY: &'static str = "mock";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if !self.path.is_empty() {
            if let Err(e) = check_path(&self.path) {
                problems.push((Some("path".into()), e));
            }
        }
        if !(100..=599).contains(&self.status) {
            problems.push((
                Some("status".into()),
                format!("{} is not an HTTP status (100-599)", self.status),
            ));
        }
        for line in &self.headers.0 {
            if let Err(e) = split_header_line(line) {
                problems.push((Some("headers".into()), e));
            }
        }
        problems
    }
}

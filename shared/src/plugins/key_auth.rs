//! `key_auth`: API keys in a request header or a query parameter.

use super::{PluginSpec, Problems};
use crate::values::StrList;
use crate::vars::header_name;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `key_auth` options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeyAuthOptions {
    /// The header holding the key (default `X-API-Key` when no `query` is set).
    pub header: String,
    /// A query parameter holding the key (checked after the header).
    pub query: String,
    /// The accepted keys (a secret: hashed in diffs, events and viewer reads).
    pub keys: StrList,
    /// Remove the key (header or query parameter) before the request goes upstream.
    pub hide_credentials: bool,
}

impl KeyAuthOptions {
    /// The header to read: `header`, else `X-API-Key` unless only `query` is set.
    pub fn header_or_default(&self) -> Option<&str> {
        match (self.header.is_empty(), self.query.is_empty()) {
            (false, _) => Some(&self.header),
            (true, true) => Some("X-API-Key"),
            (true, false) => None,
        }
    }
}

impl PluginSpec for KeyAuthOptions {
    const CATEGORY: &'static str = "key_auth";
    const SECRETS: &'static [&'static str] = &["keys"];

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if self.keys.is_empty() {
            problems.push((Some("keys".into()), "keys is empty".into()));
        }
        if self.keys.iter().any(|k| k.is_empty()) {
            problems.push((Some("keys".into()), "a key is empty".into()));
        }
        if !self.header.is_empty() && header_name(&self.header).is_none() {
            let msg = format!("{:?} is not a header name", self.header);
            problems.push((Some("header".into()), msg));
        }
        if self.query.contains(['&', '=', '#', ' ']) {
            let msg = format!("{:?} is not a query parameter name", self.query);
            problems.push((Some("query".into()), msg));
        }
        problems
    }
}

//! `basic_auth`: HTTP basic authentication against a list of `user:password` pairs.

use super::{PluginSpec, Problems};
use crate::values::StrList;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `basic_auth` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct BasicAuthOptions {
    /// `user:password` pairs (a secret: hashed in diffs, events and viewer reads).
    pub authorizations: StrList,
    /// The realm the 401 answer names.
    pub realm: String,
    /// Remove the `Authorization` header before the request goes upstream.
    pub hide_credentials: bool,
}

impl Default for BasicAuthOptions {
    fn default() -> Self {
        BasicAuthOptions {
            authorizations: StrList::default(),
            realm: "louailink".into(),
            hide_credentials: false,
        }
    }
}

impl PluginSpec for BasicAuthOptions {
    const CATEGORY: &'static str = "basic_auth";
    const SECRETS: &'static [&'static str] = &["authorizations"];

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if self.authorizations.is_empty() {
            let msg = "authorizations is empty: list \"user:password\" pairs".into();
            problems.push((Some("authorizations".into()), msg));
        }
        // The entry itself is a secret: say which one by position only.
        for (i, pair) in self.authorizations.iter().enumerate() {
            if !pair
                .split_once(':')
                .is_some_and(|(u, p)| !u.is_empty() && !p.is_empty())
            {
                let msg = format!("entry {} is not \"user:password\"", i + 1);
                problems.push((Some("authorizations".into()), msg));
            }
        }
        if self.realm.contains(['"', '\\', '\r', '\n']) {
            problems.push((
                Some("realm".into()),
                "realm must not hold quotes, backslashes or line breaks".into(),
            ));
        }
        problems
    }
}

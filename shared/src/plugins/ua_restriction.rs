//! `ua_restriction`: allows or denies requests by their `User-Agent`, matched against regexes.

use super::{check_restriction_type, PluginSpec, Problems};
use crate::patterns::check_regex;
use crate::values::StrList;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `ua_restriction` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct UaRestrictionOptions {
    /// `deny` (default): a matching User-Agent is refused; `allow`: only matching ones pass.
    #[serde(rename = "type")]
    pub kind: String,
    /// Regexes, each searched in the User-Agent (`"(?i)curl"`, `"^Mozilla/"`).
    pub ua_list: StrList,
    /// The body of the 403 answer.
    pub message: String,
}

impl Default for UaRestrictionOptions {
    fn default() -> Self {
        UaRestrictionOptions {
            kind: "deny".into(),
            ua_list: StrList::default(),
            message: "Forbidden".into(),
        }
    }
}

impl PluginSpec for UaRestrictionOptions {
    const CATEGORY: &'static str = "ua_restriction";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        check_restriction_type(&self.kind, &mut problems);
        if self.ua_list.is_empty() {
            problems.push((Some("ua_list".into()), "ua_list is empty".into()));
        }
        for re in self.ua_list.iter() {
            if let Err(e) = check_regex(re) {
                let msg = format!("regex {re:?} does not compile: {e}");
                problems.push((Some("ua_list".into()), msg));
            }
        }
        problems
    }
}

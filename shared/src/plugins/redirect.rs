//! `redirect`: sends the client elsewhere, keeping path and query: from http to https, and/or
//! under a path prefix.

use super::{check_path, PluginSpec, Problems};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The statuses a redirect may use.
pub const REDIRECT_STATUSES: [u16; 4] = [301, 302, 307, 308];

/// `redirect` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RedirectOptions {
    /// Redirect plain-HTTP requests to `https://` on the same host (default false).
    pub http_to_https: bool,
    /// Redirect requests whose path does not start with this prefix to the prefixed path.
    pub prefix: String,
    /// 301 (default), 302, 307 or 308 (307/308 keep the method and body).
    pub status: u16,
}

impl Default for RedirectOptions {
    fn default() -> Self {
        RedirectOptions {
            http_to_https: false,
            prefix: String::new(),
            status: 301,
        }
    }
}

impl PluginSpec for RedirectOptions {
    const CATEGORY: &'static str = "redirect";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if !REDIRECT_STATUSES.contains(&self.status) {
            let msg = format!(
                "status {} is not a redirect; one of 301, 302, 307, 308",
                self.status
            );
            problems.push((Some("status".into()), msg));
        }
        if !self.prefix.is_empty() {
            if let Err(e) = check_path(&self.prefix) {
                problems.push((Some("prefix".into()), e));
            } else if self.prefix.ends_with('/') || self.prefix.contains(['?', '#', ' ']) {
                let msg = format!(
                    "prefix {:?} must not end with '/' or hold '?', '#' or spaces",
                    self.prefix
                );
                problems.push((Some("prefix".into()), msg));
            }
        }
        if !self.http_to_https && self.prefix.is_empty() {
            let msg = "set http_to_https = true, a prefix, or both".to_string();
            problems.push((None, msg));
        }
        problems
    }
}

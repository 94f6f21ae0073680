//! `referer_restriction`: allows or denies requests by the host of their `Referer`.

use super::{check_restriction_type, PluginSpec, Problems};
use crate::values::StrList;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `referer_restriction` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RefererRestrictionOptions {
    /// `deny` (default): a listed referer host is refused; `allow`: only listed ones pass.
    #[serde(rename = "type")]
    pub kind: String,
    /// Hosts: `a.com` (exact) or `*.a.com` (any subdomain, not `a.com` itself).
    pub referer_list: StrList,
    /// The body of the 403 answer.
    pub message: String,
}

impl Default for RefererRestrictionOptions {
    fn default() -> Self {
        RefererRestrictionOptions {
            kind: "deny".into(),
            referer_list: StrList::default(),
            message: "Forbidden".into(),
        }
    }
}

/// The lower-case host of a `Referer` URL (`https://A.com:8443/x` → `a.com`).
pub fn referer_host(referer: &str) -> Option<String> {
    let rest = referer.split_once("://").map_or(referer, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl PluginSpec for RefererRestrictionOptions {
    const CATEGORY: &'static str = "referer_restriction";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        check_restriction_type(&self.kind, &mut problems);
        if self.referer_list.is_empty() {
            problems.push((Some("referer_list".into()), "referer_list is empty".into()));
        }
        for host in self.referer_list.iter() {
            let name = host.strip_prefix("*.").unwrap_or(host);
            if name.is_empty() || name.contains(['*', '/', ' ', ':']) {
                let msg = format!("{host:?} is not a host; write \"a.com\" or \"*.a.com\"");
                problems.push((Some("referer_list".into()), msg));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_hosts() {
        for (referer, host) in [
            ("https://A.com:8443/x?y", Some("a.com")),
            ("http://user@b.a.com/", Some("b.a.com")),
            ("http://[::1]:80/", Some("::1")),
            ("a.com/path", Some("a.com")),
            ("https:///x", None),
        ] {
            assert_eq!(referer_host(referer).as_deref(), host, "{referer}");
        }
    }
}

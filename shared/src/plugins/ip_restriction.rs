//! `ip_restriction`: allows or denies requests by the client's IP (which honours
//! `basic.trusted_proxies`), against a list of addresses and CIDR ranges.

use super::{check_restriction_type, PluginSpec, Problems};
use crate::values::StrList;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// `ip_restriction` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct IpRestrictionOptions {
    /// `deny` (default): the listed addresses are refused; `allow`: only they pass.
    #[serde(rename = "type")]
    pub kind: String,
    /// IPs and CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
    pub ip_list: StrList,
    /// The body of the 403 answer.
    pub message: String,
}

impl Default for IpRestrictionOptions {
    fn default() -> Self {
        IpRestrictionOptions {
            kind: "deny".into(),
            ip_list: StrList::default(),
            message: "Forbidden".into(),
        }
    }
}

/// Parses `10.0.0.0/8` or a bare IP (a /32 or /128).
pub fn parse_ip_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl PluginSpec for IpRestrictionOptions {
    const CATEGORY: &'static str = "ip_restriction";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        check_restriction_type(&self.kind, &mut problems);
        if self.ip_list.0.is_empty() {
            let msg = "ip_list is empty: list the IPs or CIDR ranges to allow or deny".into();
            problems.push((Some("ip_list".into()), msg));
        }
        for entry in &self.ip_list.0 {
            if parse_ip_net(entry).is_none() {
                let msg = format!("{entry:?} is not an IP or CIDR range");
                problems.push((Some("ip_list".into()), msg));
            }
        }
        problems
    }
}

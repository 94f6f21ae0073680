//! `cache`: an HTTP cache in memory, bounded by `max_size`, honouring the response's
//! `Cache-Control` / `Expires` / `Vary`, with request coalescing and `PURGE`.

use super::{parse_ip_net, PluginSpec, Problems};
use crate::values::{Dur, Size, StrList};
use crate::vars::header_name;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// `cache` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct CacheOptions {
    /// Upper bound on how long a response is served from the cache (default 1h).
    pub max_ttl: Dur,
    /// Memory the stored responses may use (default 100mb); least recently used go first.
    pub max_size: Size,
    /// A response bigger than this is passed through and never buffered (default 1mb).
    pub max_entry_size: Size,
    /// A disk store: not available yet (an error says so).
    pub directory: Option<String>,
    /// IPs and CIDR ranges allowed to send `PURGE` (empty: `PURGE` is refused with 405).
    pub purge_ip_list: StrList,
    /// Methods answered from the cache: `GET` and/or `HEAD` (default both).
    pub methods: StrList,
    /// Response header telling HIT, MISS, EXPIRED or BYPASS (empty: none).
    pub cache_status_header: String,
    /// How long concurrent misses for one key wait for the first one (0s: they do not wait).
    pub lock_timeout: Dur,
    /// A request with `Cache-Control: no-cache` or `Pragma: no-cache` skips the stored
    /// response (BYPASS) and refreshes it (default false: clients cannot force origin fetches).
    pub request_no_cache: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            max_ttl: Dur(Duration::from_secs(3600)),
            max_size: Size(100 << 20),
            max_entry_size: Size(1 << 20),
            directory: None,
            purge_ip_list: StrList::default(),
            methods: StrList(vec!["GET".into(), "HEAD".into()]),
            cache_status_header: "x-cache-status".into(),
            lock_timeout: Dur(Duration::from_secs(5)),
            request_no_cache: false,
        }
    }
}

impl PluginSpec for CacheOptions {
    const CATEGORY: &'static str = "cache";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        let mut problem = |key: &str, msg: String| problems.push((Some(key.into()), msg));
        if self.max_ttl.0.is_zero() {
            problem("max_ttl", "max_ttl must be more than 0s".into());
        }
        if self.max_size.0 == 0 {
            problem("max_size", "max_size must be more than 0".into());
        }
        if self.max_entry_size.0 == 0 || self.max_entry_size.0 > self.max_size.0 {
            let msg = format!(
                "max_entry_size ({}) must be more than 0 and at most max_size ({})",
                self.max_entry_size, self.max_size
            );
            problem("max_entry_size", msg);
        }
        if self.directory.is_some() {
            let msg = "the disk store is not available yet: leave directory out (memory only)";
            problem("directory", msg.into());
        }
        for entry in self.purge_ip_list.iter() {
            if parse_ip_net(entry).is_none() {
                problem(
                    "purge_ip_list",
                    format!("{entry:?} is not an IP or CIDR range"),
                );
            }
        }
        if self.methods.is_empty() {
            problem("methods", "methods is empty: list GET and/or HEAD".into());
        }
        for m in self.methods.iter() {
            if m != "GET" && m != "HEAD" {
                problem(
                    "methods",
                    format!("{m:?} cannot be cached: use GET or HEAD"),
                );
            }
        }
        if !self.methods.iter().any(|m| m == "GET") && !self.methods.is_empty() {
            let msg = "HEAD is answered from what GET stored: list GET too".into();
            problem("methods", msg);
        }
        let status = &self.cache_status_header;
        if !status.is_empty() && header_name(status).is_none() {
            problem(
                "cache_status_header",
                format!("{status:?} is not a header name"),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn check(json: serde_json::Value) -> Result<CacheOptions, Problems> {
        let serde_json::Value::Object(map) = json else {
            unreachable!("the tests pass objects")
        };
        decode::<CacheOptions>(&map)
    }

    #[test]
    fn defaults_are_a_memory_cache_for_get_and_head() {
        let o = check(serde_json::json!({})).unwrap();
        assert_eq!(o.max_size, Size(100 << 20));
        assert_eq!(o.methods.0, ["GET", "HEAD"]);
        assert_eq!(o.cache_status_header, "x-cache-status");
        let o = check(serde_json::json!({"max_size": "10mb", "max_ttl": "10m",
            "purge_ip_list": "127.0.0.1, 10.0.0.0/8", "methods": ["GET"]}))
        .unwrap();
        assert_eq!(
            (o.max_size, o.max_ttl.0),
            (Size(10 << 20), Duration::from_secs(600))
        );
        assert_eq!(o.purge_ip_list.0, ["127.0.0.1", "10.0.0.0/8"]);
    }

    #[test]
    fn bad_options_name_their_key() {
        let e = check(serde_json::json!({"max_ttl": "0s", "max_size": "1kb",
            "max_entry_size": "2kb", "directory": "/var/cache", "purge_ip_list": ["nope"],
            "methods": ["POST"], "cache_status_header": "bad header"}))
        .unwrap_err();
        let mut keys: Vec<&str> = e.iter().filter_map(|(k, _)| k.as_deref()).collect();
        keys.sort_unstable();
        keys.dedup();
        let want = [
            "cache_status_header",
            "directory",
            "max_entry_size",
            "max_ttl",
            "methods",
            "purge_ip_list",
        ];
        assert_eq!(keys, want, "{e:?}");
    }
}

//! `limit`: a rate (sliding window) or in-flight limit per key (client IP, header, cookie or
//! query parameter); a request over it gets `status` (429) with `Retry-After`.

use super::request_key::RequestKey;
use super::{PluginSpec, Problems};
use crate::values::Dur;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// The largest `max`: keeps the window arithmetic far from overflow.
pub const LIMIT_MAX: u64 = 1_000_000_000;
/// The longest `interval`.
pub const LIMIT_MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// `limit` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct LimitOptions {
    /// `rate` (default): at most `max` requests per `interval`, sliding; `inflight`: at most
    /// `max` requests of one key at a time.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the budget is per: `ip` (default), `header:X`, `cookie:X`, `query:X`.
    pub key: String,
    /// Requests allowed (per interval for `rate`, at once for `inflight`); required.
    pub max: u64,
    /// The window of `rate` (default 1s).
    pub interval: Option<Dur>,
    /// Status of a refused request (default 429).
    pub status: u16,
    /// Body of a refused request (`text/plain`).
    pub message: String,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            kind: "rate".into(),
            key: "ip".into(),
            max: 0,
            interval: None,
            status: 429,
            message: "Too Many Requests".into(),
        }
    }
}

impl LimitOptions {
    /// True for `type = "inflight"`.
    pub fn is_inflight(&self) -> bool {
        self.kind == "inflight"
    }

    /// The rate window: `interval`, else one second.
    pub fn window(&self) -> Duration {
        self.interval.map_or(Duration::from_secs(1), Dur::get)
    }
}

impl PluginSpec for LimitOptions {
    const CATEGORY: &'static str = "limit";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        let mut bad = |key: &str, msg: String| problems.push((Some(key.to_string()), msg));
        if self.kind != "rate" && self.kind != "inflight" {
            bad(
                "type",
                format!("type {:?} must be \"rate\" or \"inflight\"", self.kind),
            );
        }
        if let Err(e) = RequestKey::parse(&self.key) {
            bad("key", e);
        }
        if !(1..=LIMIT_MAX).contains(&self.max) {
            bad("max", format!("max must be 1 to {LIMIT_MAX} (requests)"));
        }
        match self.interval {
            Some(_) if self.is_inflight() => bad(
                "interval",
                "interval applies only to type = \"rate\"".to_string(),
            ),
            Some(Dur(d)) if d < Duration::from_millis(1) || d > LIMIT_MAX_INTERVAL => {
                bad("interval", "interval must be 1ms to 24h".to_string())
            }
            _ => {}
        }
        if !(400..=599).contains(&self.status) {
            let msg = format!("{} is not an error status (400-599)", self.status);
            bad("status", msg);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn bad_keys(json: Value) -> Vec<String> {
        crate::plugins::bad_keys::<LimitOptions>(json)
    }

    fn options(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults_are_a_rate_per_ip_per_second_answered_429() {
        let o: LimitOptions = decode(&options(serde_json::json!({"max": 5}))).unwrap();
        assert!(!o.is_inflight());
        assert_eq!((o.key.as_str(), o.status), ("ip", 429));
        assert_eq!(o.window(), Duration::from_secs(1));
        let o: LimitOptions = decode(&options(serde_json::json!({
            "type": "inflight", "key": "header:X-User", "max": 2, "status": 503, "message": "busy"
        })))
        .unwrap();
        assert!(o.is_inflight());
    }

    #[test]
    fn every_bad_option_is_named() {
        assert_eq!(bad_keys(serde_json::json!({})), ["max"]);
        assert_eq!(
            bad_keys(serde_json::json!({
                "type": "bucket", "key": "path", "max": 0, "interval": "0s", "status": 200
            })),
            ["interval", "key", "max", "status", "type"]
        );
        assert_eq!(
            bad_keys(serde_json::json!({"type": "inflight", "max": 1, "interval": "1s"})),
            ["interval"]
        );
        assert_eq!(
            bad_keys(serde_json::json!({"max": 1, "interval": "2d"})),
            ["interval"]
        );
    }
}

//! `traffic_split`: sends a share of a location's requests to another upstream, at random or
//! sticky by a header, cookie, query parameter or the client IP.

use super::request_key::RequestKey;
use super::{PluginSpec, Problems};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `traffic_split` options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TrafficSplitOptions {
    /// The other upstream's name; required.
    pub upstream: String,
    /// Percent (0-100) of the requests sent to `upstream`; required.
    pub weight: u32,
    /// `header:X`, `cookie:X`, `query:X` or `ip`: the same value always goes the same way.
    pub sticky: String,
}

impl PluginSpec for TrafficSplitOptions {
    const CATEGORY: &'static str = "traffic_split";

    fn upstreams(&self) -> Vec<(&'static str, &str)> {
        vec![("upstream", self.upstream.as_str())]
    }

    fn check(&self, written: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if self.upstream.is_empty() {
            let msg = "upstream is required: the upstream that gets `weight` percent".into();
            problems.push((Some("upstream".into()), msg));
        }
        if !written.contains_key("weight") {
            let msg = "weight is required: the percent (0-100) sent to `upstream`".into();
            problems.push((Some("weight".into()), msg));
        } else if self.weight > 100 {
            let msg = format!("weight {} is over 100 (percent)", self.weight);
            problems.push((Some("weight".into()), msg));
        }
        if !self.sticky.is_empty() {
            if let Err(e) = RequestKey::parse(&self.sticky) {
                problems.push((Some("sticky".into()), e));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn bad_keys(json: Value) -> Vec<String> {
        crate::plugins::bad_keys::<TrafficSplitOptions>(json)
    }

    #[test]
    fn upstream_and_weight_are_required_and_checked() {
        let json = serde_json::json!({"upstream": "canary", "weight": 0, "sticky": "cookie:sid"});
        let o: TrafficSplitOptions = decode(json.as_object().unwrap()).unwrap();
        assert_eq!((o.upstream.as_str(), o.weight), ("canary", 0));
        assert_eq!(bad_keys(serde_json::json!({})), ["upstream", "weight"]);
        assert_eq!(
            bad_keys(serde_json::json!({"upstream": "c", "weight": 101, "sticky": "header:"})),
            ["sticky", "weight"]
        );
        assert_eq!(
            bad_keys(serde_json::json!({"upstream": "c", "weight": -1})),
            ["weight"]
        );
    }
}

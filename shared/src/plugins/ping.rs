//! `ping`: answers `200 pong` on one exact path, for load balancer probes.

use super::{check_path, PluginSpec, Problems};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `ping` options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PingOptions {
    /// Exact path answered with `pong` (required).
    pub path: String,
}

impl PluginSpec for PingOptions {
    const CATEGORY: &'static str = "ping";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        if self.path.is_empty() {
            return vec![(Some("path".into()), "is required, e.g. \"/ping\"".into())];
        }
        match check_path(&self.path) {
            Err(e) => vec![(Some("path".into()), e)],
            Ok(()) => vec![],
        }
    }
}

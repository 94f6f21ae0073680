//! `request_id`: keeps the client's request id (when it is a sane token) or makes one, and
//! passes it upstream and back to the client.

use super::{PluginSpec, Problems};
use crate::vars::header_name;
use serde::Deserialize;
use serde_json::{Map, Value};

/// How ids are made.
pub const ALGORITHMS: [&str; 2] = ["uuid", "hex"];

/// `request_id` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RequestIdOptions {
    /// The header carrying the id (default `X-Request-Id`).
    pub header_name: String,
    /// `uuid` (random, version 4; default) or `hex` (32 hex digits).
    pub algorithm: String,
}

impl Default for RequestIdOptions {
    fn default() -> Self {
        RequestIdOptions {
            header_name: "X-Request-Id".into(),
            algorithm: "uuid".into(),
        }
    }
}

impl PluginSpec for RequestIdOptions {
    const CATEGORY: &'static str = "request_id";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if header_name(&self.header_name).is_none() {
            let msg = format!("{:?} is not a header name", self.header_name);
            problems.push((Some("header_name".into()), msg));
        }
        if !ALGORITHMS.contains(&self.algorithm.as_str()) {
            let msg = format!(
                "unknown algorithm {:?}; one of {}",
                self.algorithm,
                ALGORITHMS.join(", ")
            );
            problems.push((Some("algorithm".into()), msg));
        }
        problems
    }
}

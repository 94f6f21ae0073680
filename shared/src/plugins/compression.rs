//! `compression`: gzip, br or zstd, chosen by the request's `Accept-Encoding`, flushed chunk
//! by chunk so a streamed response is never held back.

use super::{PluginSpec, Problems};
use crate::values::{Size, StrList};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The media types compressed when `content_types` is not set.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/ld+json",
    "application/problem+json",
    "application/manifest+json",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
];

/// `compression` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct CompressionOptions {
    /// gzip level 1-9; 0 disables gzip (default 6).
    pub gzip_level: u32,
    /// brotli quality 1-11; 0 disables br (default 4: on-the-fly, not 11).
    pub br_level: u32,
    /// zstd level 1-22; 0 disables zstd (default 3).
    pub zstd_level: u32,
    /// A response whose known `Content-Length` is below this is left alone (default 256).
    pub min_length: Size,
    /// Media types compressed: `type/subtype` or `type/*` (default [`DEFAULT_CONTENT_TYPES`]).
    pub content_types: Option<StrList>,
    /// Also compress `text/event-stream` (default false: streams are left untouched).
    pub event_stream: bool,
}

impl Default for CompressionOptions {
    fn default() -> Self {
        CompressionOptions {
            gzip_level: 6,
            br_level: 4,
            zstd_level: 3,
            min_length: Size(256),
            content_types: None,
            event_stream: false,
        }
    }
}

impl CompressionOptions {
    /// The media types compressed, lower case: the option, else the defaults.
    pub fn types(&self) -> Vec<String> {
        match &self.content_types {
            Some(list) => list.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
            None => DEFAULT_CONTENT_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }
}

/// A `type/subtype` or `type/*` media type pattern.
fn media_type_ok(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.split_once('/') {
        Some((kind, "*")) => token(kind),
        Some((kind, sub)) => token(kind) && token(sub),
        None => false,
    }
}

impl PluginSpec for CompressionOptions {
    const CATEGORY: &'static str = "compression";

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        for (key, level, max) in [
            ("gzip_level", self.gzip_level, 9),
            ("br_level", self.br_level, 11),
            ("zstd_level", self.zstd_level, 22),
        ] {
            if level > max {
                let msg = format!("{level} is out of range (0 disables, 1-{max})");
                problems.push((Some(key.into()), msg));
            }
        }
        if self.gzip_level == 0 && self.br_level == 0 && self.zstd_level == 0 {
            let msg = "every codec is disabled (gzip_level, br_level and zstd_level are 0)";
            problems.push((None, msg.into()));
        }
        if let Some(list) = &self.content_types {
            if list.is_empty() {
                problems.push((Some("content_types".into()), "is empty".into()));
            }
        }
        for t in self.types() {
            if !media_type_ok(&t) {
                let msg = format!("{t:?} is not a media type (\"type/subtype\" or \"type/*\")");
                problems.push((Some("content_types".into()), msg));
            } else if t == "text/event-stream" {
                let msg = "list text/event-stream by setting event_stream = true".to_string();
                problems.push((Some("content_types".into()), msg));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::decode;

    fn decoded(json: serde_json::Value) -> Result<CompressionOptions, Vec<String>> {
        let serde_json::Value::Object(map) = json else {
            unreachable!("an object")
        };
        decode::<CompressionOptions>(&map)
            .map_err(|p| p.into_iter().map(|(k, _)| k.unwrap_or_default()).collect())
    }

    #[test]
    fn defaults_and_ranges() {
        let o = decoded(serde_json::json!({})).unwrap();
        assert_eq!(
            (o.gzip_level, o.br_level, o.zstd_level, o.min_length.0),
            (6, 4, 3, 256)
        );
        assert!(o.types().contains(&"application/json".to_string()));
        let o = decoded(serde_json::json!({"min_length": "1kb"})).unwrap();
        assert_eq!(o.min_length.0, 1024);
        let e = decoded(serde_json::json!({"gzip_level": 10, "content_types": "text/*, bad"}));
        assert_eq!(e.unwrap_err(), ["gzip_level", "content_types"]);
        let e = decoded(serde_json::json!({"gzip_level": 0, "br_level": 0, "zstd_level": 0}));
        assert_eq!(e.unwrap_err(), [""]);
    }
}

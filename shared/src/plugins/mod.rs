//! Plugin options: each built-in plugin's typed options and its own checks, one file per
//! plugin; the data plane builds the plugin's behaviour from the same type.
//!
//! Adding a plugin: write `<name>.rs` with its options struct (`Deserialize + Default`,
//! `#[serde(default)]`) implementing [`PluginSpec`] (category name, secret options, own
//! checks), then add `mod <name>;` and one `entry::<T>()` line to `REGISTRY` below.

use crate::fields::{decode_fields, unknown_message};
use crate::model::PluginConf;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

mod basic_auth;
mod cache;
mod compression;
mod cors;
mod directory;
mod forward_auth;
mod ip_restriction;
mod jwt;
mod key_auth;
mod limit;
mod mock;
mod ping;
mod redirect;
mod referer_restriction;
mod request_id;
mod request_key;
mod response_headers;
mod stats;
mod traffic_split;
mod ua_restriction;
pub use basic_auth::BasicAuthOptions;
pub use cache::CacheOptions;
pub use compression::{CompressionOptions, DEFAULT_CONTENT_TYPES};
pub use cors::{origin_ok, CorsOptions, REFLECT_ORIGIN};
pub use directory::DirectoryOptions;
pub use forward_auth::ForwardAuthOptions;
pub use ip_restriction::{parse_ip_net, IpRestrictionOptions};
pub use jwt::{JwtKeys, JwtOptions};
pub use key_auth::KeyAuthOptions;
pub use limit::LimitOptions;
pub use mock::MockOptions;
pub use ping::PingOptions;
pub use redirect::RedirectOptions;
pub use referer_restriction::{referer_host, RefererRestrictionOptions};
pub use request_id::RequestIdOptions;
pub use request_key::RequestKey;
pub use response_headers::ResponseHeadersOptions;
pub use stats::StatsOptions;
pub use traffic_split::TrafficSplitOptions;
pub use ua_restriction::UaRestrictionOptions;

/// Every built-in plugin: its category and how its options are checked.
const REGISTRY: &[Entry] = &[
    entry::<PingOptions>(),
    entry::<MockOptions>(),
    entry::<RequestIdOptions>(),
    entry::<IpRestrictionOptions>(),
    entry::<UaRestrictionOptions>(),
    entry::<RefererRestrictionOptions>(),
    entry::<RedirectOptions>(),
    entry::<BasicAuthOptions>(),
    entry::<KeyAuthOptions>(),
    entry::<JwtOptions>(),
    entry::<DirectoryOptions>(),
    entry::<StatsOptions>(),
    entry::<CacheOptions>(),
    entry::<CompressionOptions>(),
    entry::<ResponseHeadersOptions>(),
    entry::<CorsOptions>(),
    entry::<LimitOptions>(),
    entry::<TrafficSplitOptions>(),
    entry::<ForwardAuthOptions>(),
];

/// Problems found in a plugin's options: `(key, message)`, key `None` for the whole plugin.
pub type Problems = Vec<(Option<String>, String)>;

/// Upstreams named by a plugin's options: `(key, upstream)`.
pub type UpstreamRefs = Vec<(&'static str, String)>;

/// What every plugin's options type provides.
pub trait PluginSpec: DeserializeOwned + Default {
    /// The `category` that selects this plugin.
    const CATEGORY: &'static str;
    /// Options holding secrets (API keys, passwords), hashed in diffs, events and viewer
    /// reads. A dotted path reaches into tables and lists of tables: `"targets.api_key"`.
    const SECRETS: &'static [&'static str] = &[];
    /// The plugin's own checks, given the options as written.
    fn check(&self, written: &Map<String, Value>) -> Problems;

    /// The upstreams the options name, as `(key, upstream)`: validation checks they exist, so
    /// the control plane refuses what the nodes could not build.
    fn upstreams(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
}

/// A path option must start with `/`.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("path {path:?} must start with '/'"))
    }
}

/// The `type` of the restriction plugins: `allow` (only the listed pass) or `deny`.
pub(crate) fn check_restriction_type(kind: &str, problems: &mut Problems) {
    if kind != "allow" && kind != "deny" {
        let msg = format!("type {kind:?} must be \"allow\" or \"deny\"");
        problems.push((Some("type".into()), msg));
    }
}

/// One registered plugin.
struct Entry {
    category: &'static str,
    secrets: &'static [&'static str],
    /// The problems of the options, or the upstreams they name.
    check: fn(&Map<String, Value>) -> Result<UpstreamRefs, Problems>,
}

const fn entry<T: PluginSpec>() -> Entry {
    Entry {
        category: T::CATEGORY,
        secrets: T::SECRETS,
        check: |options| {
            decode::<T>(options).map(|o| {
                o.upstreams()
                    .into_iter()
                    .map(|(key, name)| (key, name.to_string()))
                    .collect()
            })
        },
    }
}

/// Decodes options as `T`, with every problem: unknown or mistyped keys, then the plugin's
/// own checks on the keys that decoded (so nothing is reported twice).
pub fn decode<T: PluginSpec>(options: &Map<String, Value>) -> Result<T, Problems> {
    let (value, mut problems) = decode_fields::<T>(options, &[]);
    let bad: Vec<Option<String>> = problems.iter().map(|(k, _)| k.clone()).collect();
    problems.extend(
        value
            .check(options)
            .into_iter()
            .filter(|(k, _)| !bad.contains(k)),
    );
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems)
    }
}

/// The category names of all built-in plugins.
pub fn categories() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.category).collect()
}

/// The secret options a category declares, `None` for an unknown category.
pub fn secret_options(category: &str) -> Option<&'static [&'static str]> {
    REGISTRY
        .iter()
        .find(|e| e.category == category)
        .map(|e| e.secrets)
}

/// Checks a plugin item: a known category, and its options by that plugin's own rules; `Ok`
/// holds the upstreams it names, as `(key, upstream)`.
pub fn check_plugin(conf: &PluginConf) -> Result<UpstreamRefs, Problems> {
    let known = categories();
    if conf.category.is_empty() {
        let msg = format!("is required; one of {}", known.join(", "));
        return Err(vec![(Some("category".into()), msg)]);
    }
    match REGISTRY.iter().find(|e| e.category == conf.category) {
        Some(e) => (e.check)(&conf.options),
        None => Err(vec![(
            Some("category".into()),
            unknown_message(
                &format!("plugin category {:?}", conf.category),
                &conf.category,
                &known,
            ),
        )]),
    }
}

/// The keys named by `T`'s problems with `json` as options, sorted (for the plugins' tests).
#[cfg(test)]
pub(crate) fn bad_keys<T: PluginSpec + std::fmt::Debug>(json: Value) -> Vec<String> {
    let options = json.as_object().cloned().unwrap_or_default();
    let problems = decode::<T>(&options).unwrap_err();
    let mut keys: Vec<String> = problems
        .into_iter()
        .map(|(k, _)| k.unwrap_or_default())
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Dur;
    use std::time::Duration;

    fn options(json: serde_json::Value) -> Map<String, Value> {
        let conf: PluginConf = serde_json::from_value(json).unwrap();
        conf.options
    }

    fn conf(json: serde_json::Value) -> PluginConf {
        serde_json::from_value(json).unwrap()
    }

    fn keys(p: &Problems) -> Vec<&str> {
        p.iter().map(|(k, _)| k.as_deref().unwrap_or("")).collect()
    }

    #[test]
    fn ping() {
        let o: PingOptions = decode(&options(
            serde_json::json!({"category": "ping", "path": "/ping"}),
        ))
        .unwrap();
        assert_eq!(
            o,
            PingOptions {
                path: "/ping".into()
            }
        );
        let e = check_plugin(&conf(serde_json::json!({"category": "ping"}))).unwrap_err();
        assert_eq!(keys(&e), ["path"]);
        assert!(e[0].1.contains("required"));
        let e = check_plugin(&conf(
            serde_json::json!({"category": "ping", "path": "ping"}),
        ))
        .unwrap_err();
        assert!(e[0].1.contains("must start with '/'"), "{e:?}");
    }

    #[test]
    fn mock_defaults_and_values() {
        let m: MockOptions = decode(&options(serde_json::json!({"category": "mock"}))).unwrap();
        assert_eq!((m.status, m.path.as_str(), m.delay), (200, "", None));
        let m: MockOptions = decode(&options(serde_json::json!({
            "category": "mock", "path": "/m", "status": 201, "headers": ["X-A: 1"], "data": "hi", "delay": "50ms"
        })))
        .unwrap();
        assert_eq!(m.status, 201);
        assert_eq!(m.headers.0, ["X-A: 1"]);
        assert_eq!(m.delay, Some(Dur(Duration::from_millis(50))));
    }

    #[test]
    fn mock_reports_every_bad_option() {
        let e = check_plugin(&conf(serde_json::json!({
            "category": "mock", "status": 999, "headers": ["nocolon"], "delay": "soon", "dta": "x"
        })))
        .unwrap_err();
        let mut k = keys(&e);
        k.sort();
        assert_eq!(k, ["delay", "dta", "headers", "status"], "{e:?}");
        let dta = e.iter().find(|(k, _)| k.as_deref() == Some("dta")).unwrap();
        assert_eq!(dta.1, "unknown key (did you mean \"data\"?)");
    }

    #[test]
    fn categories_are_checked() {
        let e = check_plugin(&conf(serde_json::json!({"category": "mokc"}))).unwrap_err();
        assert_eq!(keys(&e), ["category"]);
        assert!(e[0].1.contains("did you mean \"mock\""), "{e:?}");
        let e = check_plugin(&conf(serde_json::json!({"category": "zzzzzzzz"}))).unwrap_err();
        assert!(e[0].1.contains("known: ping, mock, request_id"), "{e:?}");
        let e = check_plugin(&conf(serde_json::json!({"path": "/"}))).unwrap_err();
        assert!(
            e[0].1.contains("required; one of ping, mock, request_id"),
            "{e:?}"
        );
    }

    #[test]
    fn secrets_are_declared_per_category() {
        assert_eq!(secret_options("ping"), Some(&[][..]));
        assert_eq!(secret_options("nope"), None);
    }
}

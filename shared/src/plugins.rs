//! Typed options of the built-in plugins, each validated by the plugin's own code.
//!
//! Adding a plugin: write its options struct (`Deserialize + Default`, `#[serde(default)]`),
//! implement [`PluginSpec`] for it (category name, wrapping variant, own checks), add one
//! variant to [`PluginOptions`] and one `entry::<T>()` line to `REGISTRY`.

use crate::keys::{decode_fields, unknown_message};
use crate::model::PluginConf;
use crate::values::{split_header_line, Dur, HeaderList};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Problems found in a plugin's options: `(key, message)`, key `None` for the whole plugin.
pub type Problems = Vec<(Option<String>, String)>;

/// The decoded options of one plugin instance.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginOptions {
    /// `ping`: answers `200 pong` on an exact path.
    Ping(PingOptions),
    /// `mock`: answers a fixed response.
    Mock(MockOptions),
}

impl PluginOptions {
    /// The plugin's category name.
    pub fn category(&self) -> &'static str {
        match self {
            PluginOptions::Ping(_) => PingOptions::CATEGORY,
            PluginOptions::Mock(_) => MockOptions::CATEGORY,
        }
    }
}

/// What every plugin's options type provides.
pub trait PluginSpec: DeserializeOwned + Default {
    /// The `category` that selects this plugin.
    const CATEGORY: &'static str;
    /// Wraps the options in their [`PluginOptions`] variant.
    fn wrap(self) -> PluginOptions;
    /// The plugin's own checks, given the options as written.
    fn check(&self, written: &Map<String, Value>) -> Problems;
}

/// `ping` options.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PingOptions {
    /// Exact path answered with `pong` (required).
    pub path: String,
}

impl PluginSpec for PingOptions {
    const CATEGORY: &'static str = "ping";

    fn wrap(self) -> PluginOptions {
        PluginOptions::Ping(self)
    }

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

/// `mock` options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct MockOptions {
    /// Exact path answered; empty = every path.
    pub path: String,
    /// Response status (default 200).
    pub status: u16,
    /// Response headers, `"Name: value"`.
    pub headers: HeaderList,
    /// Response body.
    pub data: String,
    /// Wait this long before answering.
    pub delay: Option<Dur>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            path: String::new(),
            status: 200,
            headers: HeaderList::default(),
            data: String::new(),
            delay: None,
        }
    }
}

impl PluginSpec for MockOptions {
    const CATEGORY: &'static str = "mock";

    fn wrap(self) -> PluginOptions {
        PluginOptions::Mock(self)
    }

    fn check(&self, _: &Map<String, Value>) -> Problems {
        let mut problems = Vec::new();
        if !self.path.is_empty() {
            if let Err(e) = check_path(&self.path) {
                problems.push((Some("path".into()), e));
            }
        }
        if !(100..=599).contains(&self.status) {
            problems.push((
                Some("status".into()),
                format!("{} is not an HTTP status (100-599)", self.status),
            ));
        }
        for line in &self.headers.0 {
            if let Err(e) = split_header_line(line) {
                problems.push((Some("headers".into()), e));
            }
        }
        problems
    }
}

fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("path {path:?} must start with '/'"))
    }
}

type Decoder = fn(&Map<String, Value>) -> Result<PluginOptions, Problems>;

/// Every built-in plugin: category → decoder.
const REGISTRY: &[(&str, Decoder)] = &[entry::<PingOptions>(), entry::<MockOptions>()];

const fn entry<T: PluginSpec>() -> (&'static str, Decoder) {
    (T::CATEGORY, decode::<T>)
}

fn decode<T: PluginSpec>(options: &Map<String, Value>) -> Result<PluginOptions, Problems> {
    let (value, mut problems) = decode_fields::<T>(options, &[]);
    // The plugin's own checks only look at keys that decoded, so nothing is reported twice.
    let bad: Vec<Option<String>> = problems.iter().map(|(k, _)| k.clone()).collect();
    problems.extend(
        value
            .check(options)
            .into_iter()
            .filter(|(k, _)| !bad.contains(k)),
    );
    if problems.is_empty() {
        Ok(value.wrap())
    } else {
        Err(problems)
    }
}

/// The category names of all built-in plugins.
pub fn categories() -> Vec<&'static str> {
    REGISTRY.iter().map(|(c, _)| *c).collect()
}

/// Decodes and checks a plugin's options with that plugin's own rules.
pub fn plugin_options(conf: &PluginConf) -> Result<PluginOptions, Problems> {
    let known = categories();
    if conf.category.is_empty() {
        let msg = format!("is required; one of {}", known.join(", "));
        return Err(vec![(Some("category".into()), msg)]);
    }
    match REGISTRY.iter().find(|(c, _)| *c == conf.category) {
        Some((_, decoder)) => decoder(&conf.options),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conf(json: serde_json::Value) -> PluginConf {
        serde_json::from_value(json).unwrap()
    }

    fn keys(p: &Problems) -> Vec<&str> {
        p.iter().map(|(k, _)| k.as_deref().unwrap_or("")).collect()
    }

    #[test]
    fn ping() {
        let o = plugin_options(&conf(
            serde_json::json!({"category": "ping", "path": "/ping"}),
        ))
        .unwrap();
        assert_eq!(
            o,
            PluginOptions::Ping(PingOptions {
                path: "/ping".into()
            })
        );
        assert_eq!(o.category(), "ping");
        let e = plugin_options(&conf(serde_json::json!({"category": "ping"}))).unwrap_err();
        assert_eq!(keys(&e), ["path"]);
        assert!(e[0].1.contains("required"));
        let e = plugin_options(&conf(
            serde_json::json!({"category": "ping", "path": "ping"}),
        ))
        .unwrap_err();
        assert!(e[0].1.contains("must start with '/'"), "{e:?}");
    }

    #[test]
    fn mock_defaults_and_values() {
        let o = plugin_options(&conf(serde_json::json!({"category": "mock"}))).unwrap();
        let PluginOptions::Mock(m) = o else {
            panic!("not mock")
        };
        assert_eq!((m.status, m.path.as_str(), m.delay), (200, "", None));
        let o = plugin_options(&conf(serde_json::json!({
            "category": "mock", "path": "/m", "status": 201, "headers": ["X-A: 1"], "data": "hi", "delay": "50ms"
        })))
        .unwrap();
        let PluginOptions::Mock(m) = o else {
            panic!("not mock")
        };
        assert_eq!(m.status, 201);
        assert_eq!(m.headers.0, ["X-A: 1"]);
        assert_eq!(m.delay, Some(Dur(Duration::from_millis(50))));
    }

    #[test]
    fn mock_reports_every_bad_option() {
        let e = plugin_options(&conf(serde_json::json!({
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
        let e = plugin_options(&conf(serde_json::json!({"category": "mokc"}))).unwrap_err();
        assert_eq!(keys(&e), ["category"]);
        assert!(e[0].1.contains("did you mean \"mock\""), "{e:?}");
        let e = plugin_options(&conf(serde_json::json!({"category": "zzzzzzzz"}))).unwrap_err();
        assert!(e[0].1.contains("known: ping, mock"), "{e:?}");
        let e = plugin_options(&conf(serde_json::json!({"path": "/"}))).unwrap_err();
        assert!(e[0].1.contains("required; one of ping, mock"), "{e:?}");
    }
}

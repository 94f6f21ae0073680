//! Decoding one item of any kind from its generic (JSON) value, key by key: the rules shared
//! by the file loader and the etcd back end, which stores one JSON value per item.

use crate::error::ConfigError;
use crate::fields::{decode_fields, fields_of, unknown_message};
use crate::kind::{Kind, KIND_NAMES};
use crate::model::{Basic, PluginConf, Webhook};
use crate::sources::item_label;
pub use crate::table::Item;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Keys accepted under another name: `(kind, alias, primary)`.
pub const ALIASES: &[(Kind, &str, &str)] = &[
    (Kind::Locations, "proxy_headers", "proxy_set_headers"),
    (Kind::Locations, "headers", "response_headers"),
    (Kind::Locations, "proxy_plugins", "plugins"),
];

pub(crate) fn aliases_of(kind: Kind) -> Vec<(&'static str, &'static str)> {
    ALIASES
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, alias, primary)| (*alias, *primary))
        .collect()
}

/// Longest item name: names become etcd keys, file names (`<name>.toml`, at most 255 bytes)
/// and log fields, and nobody names a route with a paragraph.
pub const MAX_NAME_LEN: usize = 128;

/// Checks an item name: 1 to [`MAX_NAME_LEN`] bytes of `A-Z a-z 0-9 _ . : -`, and no `..`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("item name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        let start: String = name.chars().take(16).collect();
        return Err(format!(
            "item name {start:?}... is {} bytes long; at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.contains("..") {
        return Err(format!("item name {name:?} must not contain \"..\""));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:-".contains(*c)))
    {
        return Err(format!(
            "item name {name:?} contains {bad:?}; use only letters, digits, '_', '.', ':' and '-'"
        ));
    }
    Ok(())
}

/// The error for a top-level word of a config (or etcd key segment) that is not a kind.
pub fn unknown_kind(word: &str) -> ConfigError {
    ConfigError::new("", Some(word), unknown_message("kind", word, &KIND_NAMES))
}

/// Decodes one item of `kind` named `name` (ignored for `basic`) from its JSON value. Every
/// bad key gets its own error.
pub fn decode_item(kind: Kind, name: &str, value: Value) -> Result<Item, Vec<ConfigError>> {
    match decode_partial(kind, name, &value) {
        (Some(item), errors) if errors.is_empty() => Ok(item),
        (_, errors) => Err(errors),
    }
}

/// Decodes what can be decoded: the item (`None` when it is not an object at all) and the
/// errors of its bad keys (without file positions).
pub(crate) fn decode_partial(
    kind: Kind,
    name: &str,
    value: &Value,
) -> (Option<Item>, Vec<ConfigError>) {
    let label = item_label(kind.as_str(), name);
    let mut errors = Vec::new();
    if kind.is_named() {
        if let Err(e) = check_name(name) {
            errors.push(ConfigError::new(&label, None, e));
        }
    }
    let empty = Map::new();
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Null => &empty,
        other => {
            let msg = format!("must be a table of keys, not {}", type_name(other));
            errors.push(ConfigError::new(&label, None, msg));
            return (None, errors);
        }
    };
    let mut push = |problems: Vec<(Option<String>, String)>| {
        for (key, message) in problems {
            errors.push(ConfigError::new(&label, key.as_deref(), message));
        }
    };
    let item = match kind {
        Kind::Basic => {
            let (basic, problems) = decode_basic(obj);
            push(problems);
            Item::Basic(basic)
        }
        Kind::Servers => Item::Server(decode_kind(kind, obj, &mut push)),
        Kind::Locations => Item::Location(decode_kind(kind, obj, &mut push)),
        Kind::Upstreams => Item::Upstream(decode_kind(kind, obj, &mut push)),
        Kind::Certificates => Item::Certificate(decode_kind(kind, obj, &mut push)),
        Kind::Plugins => {
            let (plugin, problems) = decode_plugin(obj);
            push(problems);
            Item::Plugin(plugin)
        }
    };
    (Some(item), errors)
}

fn decode_kind<T: DeserializeOwned + Default>(
    kind: Kind,
    obj: &Map<String, Value>,
    push: &mut impl FnMut(Vec<(Option<String>, String)>),
) -> T {
    // Fast path for the common case: when every key is known and the whole item decodes,
    // decoding key by key finds no problem and gives the same value, at several times the
    // cost (each key is cloned and decoded on its own, then all are decoded again).
    let known = fields_of::<T>();
    if obj.keys().all(|key| known.contains(&key.as_str())) {
        if let Ok(value) = T::deserialize(obj) {
            return value;
        }
    }
    let (value, problems) = decode_fields::<T>(obj, &aliases_of(kind));
    push(problems);
    value
}

/// `basic`, with the keys of the nested `webhook` table checked one by one too.
fn decode_basic(obj: &Map<String, Value>) -> (Basic, Vec<(Option<String>, String)>) {
    let mut problems = Vec::new();
    let mut obj = obj.clone();
    if let Some(Value::Object(webhook)) = obj.get("webhook") {
        let (hook, inner) = decode_fields::<Webhook>(webhook, &[]);
        for (key, message) in inner {
            let key = key.map_or_else(|| "webhook".to_string(), |k| format!("webhook.{k}"));
            problems.push((Some(key), message));
        }
        if let Ok(clean) = serde_json::to_value(hook) {
            obj.insert("webhook".into(), clean);
        }
    }
    let (basic, outer) = decode_fields::<Basic>(&obj, &[]);
    problems.extend(outer);
    (basic, problems)
}

/// A plugin: `category` plus free options (checked later by the plugin itself).
fn decode_plugin(obj: &Map<String, Value>) -> (PluginConf, Vec<(Option<String>, String)>) {
    let mut plugin = PluginConf::default();
    let mut problems = Vec::new();
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("category", Value::String(c)) => plugin.category = c.clone(),
            ("category", other) => problems.push((
                Some(key.clone()),
                format!("must be a string, not {}", type_name(other)),
            )),
            _ => {
                plugin.options.insert(key.clone(), value.clone());
            }
        }
    }
    (plugin, problems)
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;
    use crate::loader::parse_text;
    use crate::model::{Config, LocationConf};

    #[test]
    fn whole_item_decoding_matches_key_by_key_decoding() {
        let v = serde_json::json!({
            "path": "/a", "headers": ["X: 1"], "proxy_plugins": "p1, p2", "weight": 3,
            "max_retry_window": "2s", "client_max_body_size": "1m"
        });
        let Value::Object(obj) = &v else {
            panic!("not an object")
        };
        let (slow, problems) = decode_fields::<LocationConf>(obj, &aliases_of(Kind::Locations));
        assert_eq!(problems, []);
        assert_eq!(
            decode_item(Kind::Locations, "a", v),
            Ok(Item::Location(slow))
        );
    }

    #[test]
    fn decode_item_for_etcd() {
        let v = serde_json::json!({"path": "/api", "upstream": "u", "proxy_plugins": ["p"]});
        let Item::Location(l) = decode_item(Kind::Locations, "api", v).unwrap() else {
            panic!("not a location")
        };
        assert_eq!(
            (l.path.as_deref(), l.plugins.0.as_slice()),
            (Some("/api"), ["p".to_string()].as_slice())
        );
        let e = decode_item(
            Kind::Locations,
            "api",
            serde_json::json!({"paht": "/", "weight": "high"}),
        )
        .unwrap_err();
        let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(
                &"locations.api: key \"paht\": unknown key (did you mean \"path\"?)".to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("locations.api: key \"weight\": invalid type")),
            "{shown:?}"
        );
        let b = decode_item(Kind::Basic, "", serde_json::json!({"threads": 2})).unwrap();
        assert_eq!(b.kind(), Kind::Basic);
        let p = decode_item(
            Kind::Plugins,
            "m",
            serde_json::json!({"category": "mock", "status": 204}),
        )
        .unwrap();
        let Item::Plugin(p) = p else {
            panic!("not a plugin")
        };
        assert_eq!(
            (p.category.as_str(), &p.options["status"]),
            ("mock", &serde_json::json!(204))
        );
        assert!(decode_item(Kind::Plugins, "m", serde_json::json!({"category": 1})).is_err());
        assert_eq!(
            unknown_kind("routes").to_string(),
            "key \"routes\": unknown kind; known: basic, servers, locations, upstreams, plugins, certificates"
        );
        assert!(decode_item(Kind::Servers, "a/b", serde_json::json!({})).is_err());
        let mut config = Config::default();
        decode_item(
            Kind::Upstreams,
            "u",
            serde_json::json!({"addrs": "1.2.3.4:80"}),
        )
        .unwrap()
        .insert_into(&mut config, "u");
        assert_eq!(config.upstreams["u"].addrs.0, ["1.2.3.4:80"]);
    }

    #[test]
    fn names_are_checked() {
        let e = parse_text(
            "[locations.\"a..b\"]\n[upstreams.\"x/y\"]\n[plugins.\"\"]\n",
            Format::Toml,
            None,
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e}");
        assert!(
            e.iter()
                .any(|e| e.item == "locations.a..b" && e.message.contains("\"..\"")),
            "{e}"
        );
        assert!(
            e.iter()
                .any(|e| e.item == "upstreams.x/y" && e.message.contains("'/'")),
            "{e}"
        );
        assert!(
            e.iter()
                .any(|e| e.item == "plugins." && e.message.contains("empty")),
            "{e}"
        );
        assert!(check_name("api-v1_2.x:y").is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        let long = check_name(&"a".repeat(10_000)).unwrap_err();
        assert!(long.contains("10000 bytes long; at most 128"), "{long}");
    }
}

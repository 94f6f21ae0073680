//! Decoding one item of any kind from its generic (JSON) value, key by key: the rules shared
//! by the file loader and the etcd back end, which stores one JSON value per item.

use crate::error::ConfigError;
use crate::fields::{decode_fields, fields_of, unknown_message};
use crate::model::{
    Basic, CertificateConf, Config, LocationConf, PluginConf, ServerConf, UpstreamConf, Webhook,
    KINDS,
};
use crate::sources::item_label;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One decoded item of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// The `basic` item.
    Basic(Basic),
    /// A `servers` item.
    Server(ServerConf),
    /// A `locations` item.
    Location(LocationConf),
    /// An `upstreams` item.
    Upstream(UpstreamConf),
    /// A `plugins` item.
    Plugin(PluginConf),
    /// A `certificates` item.
    Certificate(CertificateConf),
}

impl Item {
    /// The kind this item belongs to (`"basic"`, `"servers"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Basic(_) => "basic",
            Item::Server(_) => "servers",
            Item::Location(_) => "locations",
            Item::Upstream(_) => "upstreams",
            Item::Plugin(_) => "plugins",
            Item::Certificate(_) => "certificates",
        }
    }

    /// A copy of item `(kind, name)` of `config` (`basic` for the kind `"basic"`), if it has one.
    pub fn cloned_from(config: &Config, kind: &str, name: &str) -> Option<Item> {
        Some(match kind {
            "basic" => Item::Basic(config.basic.clone()),
            "servers" => Item::Server(config.servers.get(name)?.clone()),
            "locations" => Item::Location(config.locations.get(name)?.clone()),
            "upstreams" => Item::Upstream(config.upstreams.get(name)?.clone()),
            "plugins" => Item::Plugin(config.plugins.get(name)?.clone()),
            "certificates" => Item::Certificate(config.certificates.get(name)?.clone()),
            _ => return None,
        })
    }

    /// Puts the item into `config` under `name` (ignored for `basic`), replacing any previous one.
    pub fn insert_into(self, config: &mut Config, name: &str) {
        let name = name.to_string();
        match self {
            Item::Basic(b) => config.basic = b,
            Item::Server(s) => {
                config.servers.insert(name, s);
            }
            Item::Location(l) => {
                config.locations.insert(name, l);
            }
            Item::Upstream(u) => {
                config.upstreams.insert(name, u);
            }
            Item::Plugin(p) => {
                config.plugins.insert(name, p);
            }
            Item::Certificate(c) => {
                config.certificates.insert(name, c);
            }
        }
    }
}

/// Keys accepted under another name: `(kind, alias, primary)`.
pub const ALIASES: &[(&str, &str, &str)] = &[
    ("locations", "proxy_headers", "proxy_set_headers"),
    ("locations", "headers", "response_headers"),
    ("locations", "proxy_plugins", "plugins"),
];

pub(crate) fn aliases_of(kind: &str) -> Vec<(&'static str, &'static str)> {
    ALIASES
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, alias, primary)| (*alias, *primary))
        .collect()
}

/// Checks an item name: non-empty, only `A-Z a-z 0-9 _ . : -`, and no `..`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("item name is empty".into());
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

/// Decodes one item of `kind` (`"basic"`, `"servers"`, ...) named `name` (ignored for
/// `basic`) from its JSON value. Every bad key gets its own error.
pub fn decode_item(kind: &str, name: &str, value: Value) -> Result<Item, Vec<ConfigError>> {
    match decode_partial(kind, name, &value) {
        (Some(item), errors) if errors.is_empty() => Ok(item),
        (_, errors) => Err(errors),
    }
}

/// Decodes what can be decoded: the item (`None` when it is not an object at all) and the
/// errors of its bad keys (without file positions).
pub(crate) fn decode_partial(
    kind: &str,
    name: &str,
    value: &Value,
) -> (Option<Item>, Vec<ConfigError>) {
    let label = item_label(kind, name);
    let mut errors = Vec::new();
    if kind != "basic" && KINDS.contains(&kind) {
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
        "basic" => {
            let (basic, problems) = decode_basic(obj);
            push(problems);
            Item::Basic(basic)
        }
        "servers" => Item::Server(decode_kind(kind, obj, &mut push)),
        "locations" => Item::Location(decode_kind(kind, obj, &mut push)),
        "upstreams" => Item::Upstream(decode_kind(kind, obj, &mut push)),
        "certificates" => Item::Certificate(decode_kind(kind, obj, &mut push)),
        "plugins" => {
            let (plugin, problems) = decode_plugin(obj);
            push(problems);
            Item::Plugin(plugin)
        }
        other => {
            let mut known = vec!["basic"];
            known.extend(KINDS);
            errors.push(ConfigError::new(
                "",
                Some(other),
                unknown_message("kind", other, &known),
            ));
            return (None, errors);
        }
    };
    (Some(item), errors)
}

fn decode_kind<T: DeserializeOwned + Default>(
    kind: &str,
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

    #[test]
    fn whole_item_decoding_matches_key_by_key_decoding() {
        let v = serde_json::json!({
            "path": "/a", "headers": ["X: 1"], "proxy_plugins": "p1, p2", "weight": 3,
            "max_retry_window": "2s", "client_max_body_size": "1m"
        });
        let Value::Object(obj) = &v else {
            panic!("not an object")
        };
        let (slow, problems) = decode_fields::<LocationConf>(obj, &aliases_of("locations"));
        assert_eq!(problems, []);
        assert_eq!(decode_item("locations", "a", v), Ok(Item::Location(slow)));
    }

    #[test]
    fn decode_item_for_etcd() {
        let v = serde_json::json!({"path": "/api", "upstream": "u", "proxy_plugins": ["p"]});
        let Item::Location(l) = decode_item("locations", "api", v).unwrap() else {
            panic!("not a location")
        };
        assert_eq!(
            (l.path.as_deref(), l.plugins.0.as_slice()),
            (Some("/api"), ["p".to_string()].as_slice())
        );
        let e = decode_item(
            "locations",
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
        let b = decode_item("basic", "", serde_json::json!({"threads": 2})).unwrap();
        assert_eq!(b.kind(), "basic");
        let p = decode_item(
            "plugins",
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
        assert!(decode_item("plugins", "m", serde_json::json!({"category": 1})).is_err());
        assert!(decode_item("routes", "m", serde_json::json!({})).is_err());
        assert!(decode_item("servers", "a/b", serde_json::json!({})).is_err());
        let mut config = Config::default();
        decode_item("upstreams", "u", serde_json::json!({"addrs": "1.2.3.4:80"}))
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
    }
}

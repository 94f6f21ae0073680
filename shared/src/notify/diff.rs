//! Field-level diffs between item versions, and secret redaction: private keys, webhook URLs
//! and plugin credentials are shown as `sha256:<hash>` in diffs, events, logs and viewer
//! reads, so two versions can still be told apart without revealing either.

use crate::model::{Config, KINDS};
use crate::storage::digest::{canonical_json, sha256_hex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Plugin option names (and nested keys) that hold secrets.
const SECRET_NAMES: [&str; 15] = [
    "secret",
    "secrets",
    "password",
    "passwd",
    "token",
    "tokens",
    "keys",
    "api_key",
    "api_keys",
    "apikey",
    "private_key",
    "client_secret",
    "authorization",
    "credentials",
    "tls_key",
];
/// Name endings that hold secrets (`upstream_api_key`, `hmac_secret`).
const SECRET_SUFFIXES: [&str; 6] = [
    "_secret",
    "_password",
    "_token",
    "_tokens",
    "_api_key",
    "_api_keys",
];

/// True when an option named `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&lower.as_str()) || SECRET_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// `sha256:<16 hex>` of a value's canonical JSON.
pub fn hash_value(value: &Value) -> String {
    let hex = sha256_hex(canonical_json(value).as_bytes());
    format!("sha256:{}", &hex[..16])
}

/// A hash of a secret string for logs (`sha256:<16 hex>`).
pub fn hash_str(secret: &str) -> String {
    hash_value(&Value::String(secret.to_string()))
}

/// The item value with every secret replaced by its hash. `kind` is `basic`, `servers`, ….
pub fn redact(kind: &str, value: &Value) -> Value {
    let mut value = value.clone();
    let Value::Object(obj) = &mut value else {
        return value;
    };
    match kind {
        "certificates" => hash_field(obj, "tls_key"),
        "basic" => {
            if let Some(Value::Object(hook)) = obj.get_mut("webhook") {
                hash_field(hook, "url");
            }
        }
        "plugins" => redact_plugin(obj),
        _ => {}
    }
    value
}

fn hash_field(obj: &mut Map<String, Value>, name: &str) {
    if let Some(v) = obj.get_mut(name) {
        if !v.is_null() {
            *v = Value::String(hash_value(v));
        }
    }
}

/// Hashes the options the plugin's category declares secret. An unknown category (an item
/// that will be refused) falls back to hashing secret-looking names, so a typo never leaks.
fn redact_plugin(obj: &mut Map<String, Value>) {
    let category = obj.get("category").and_then(Value::as_str).unwrap_or("");
    match crate::plugins::secret_options(category) {
        Some(secrets) => {
            for path in secrets {
                hash_path(obj, path);
            }
        }
        None => redact_named(obj),
    }
}

/// Hashes the value at a dotted path; each step enters a table or every table of a list.
fn hash_path(obj: &mut Map<String, Value>, path: &str) {
    let (first, rest) = match path.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let Some(rest) = rest else {
        return hash_field(obj, first);
    };
    match obj.get_mut(first) {
        Some(Value::Object(inner)) => hash_path(inner, rest),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::Object(inner) = item {
                    hash_path(inner, rest);
                }
            }
        }
        _ => {}
    }
}

/// Hashes every secret-named key, at any depth.
fn redact_named(obj: &mut Map<String, Value>) {
    for (name, v) in obj.iter_mut() {
        if is_secret_name(name) && !v.is_null() {
            *v = Value::String(hash_value(v));
            continue;
        }
        match v {
            Value::Object(inner) => redact_named(inner),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        redact_named(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One changed field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted path (`addrs`, `webhook.url`); empty for a whole-item change of a non-table.
    pub path: String,
    /// The old value (absent when added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The new value (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// How one item changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemChange {
    /// `locations.api`.
    pub item: String,
    /// `added`, `removed` or `modified`.
    pub action: String,
    /// The fields that differ (every field for added and removed items).
    pub fields: Vec<FieldChange>,
}

/// The field-level diff of one item between two versions, secrets hashed; `None` when
/// both are equal (or both absent).
pub fn item_change(
    kind: &str,
    label: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Option<ItemChange> {
    let before = before.map(|v| redact(kind, v));
    let after = after.map(|v| redact(kind, v));
    let action = match (&before, &after) {
        (None, None) => return None,
        (Some(a), Some(b)) if a == b => return None,
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        (Some(_), Some(_)) => "modified",
    };
    let mut fields = Vec::new();
    diff_values("", before.as_ref(), after.as_ref(), &mut fields);
    Some(ItemChange {
        item: label.to_string(),
        action: action.to_string(),
        fields,
    })
}

fn diff_values(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            diff_objects(path, Some(x), Some(y), out)
        }
        (Some(Value::Object(x)), None) => diff_objects(path, Some(x), None, out),
        (None, Some(Value::Object(y))) => diff_objects(path, None, Some(y), out),
        (x, y) if x != y => out.push(FieldChange {
            path: path.to_string(),
            before: x.cloned(),
            after: y.cloned(),
        }),
        _ => {}
    }
}

fn diff_objects(
    path: &str,
    a: Option<&Map<String, Value>>,
    b: Option<&Map<String, Value>>,
    out: &mut Vec<FieldChange>,
) {
    let mut names: Vec<&String> = a.iter().chain(b.iter()).flat_map(|m| m.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let sub = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        diff_values(
            &sub,
            a.and_then(|m| m.get(name)),
            b.and_then(|m| m.get(name)),
            out,
        );
    }
}

/// Every item that differs between two whole configs (`basic` first, then the kinds in
/// [`KINDS`] order, items by name), field by field, secrets hashed.
pub fn config_changes(before: &Config, after: &Config) -> Vec<ItemChange> {
    let as_json = |c: &Config| serde_json::to_value(c).unwrap_or(Value::Null);
    let (a, b) = (as_json(before), as_json(after));
    let mut out = Vec::new();
    if before.basic != after.basic {
        out.extend(item_change(
            "basic",
            "basic",
            a.get("basic"),
            b.get("basic"),
        ));
    }
    for kind in KINDS {
        let items = |v: &Value| v.get(kind).and_then(Value::as_object).cloned();
        let (x, y) = (items(&a).unwrap_or_default(), items(&b).unwrap_or_default());
        let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let label = format!("{kind}.{name}");
            out.extend(item_change(kind, &label, x.get(name), y.get(name)));
        }
    }
    out
}

/// A readable rendering of changes, one item per block:
///
/// ```text
/// + upstreams.u
///     addrs: ["127.0.0.1:9"]
/// ~ locations.api
///     path: "/api" -> "/v2"
/// - plugins.p
/// ```
pub fn render(changes: &[ItemChange]) -> String {
    let mut out = String::new();
    for change in changes {
        let sign = match change.action.as_str() {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        let _ = writeln!(out, "{sign} {}", change.item);
        if change.action == "removed" {
            continue;
        }
        for field in &change.fields {
            let show =
                |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), Value::to_string);
            let name = if field.path.is_empty() {
                "value"
            } else {
                field.path.as_str()
            };
            if change.action == "added" {
                let _ = writeln!(out, "    {name}: {}", show(&field.after));
            } else {
                let _ = writeln!(
                    out,
                    "    {name}: {} -> {}",
                    show(&field.before),
                    show(&field.after)
                );
            }
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_hashed() {
        let cert = json!({"tls_cert": "CERT", "tls_key": "-----BEGIN PRIVATE KEY-----"});
        let r = redact("certificates", &cert);
        assert_eq!(r["tls_cert"], "CERT");
        assert!(r["tls_key"].as_str().unwrap().starts_with("sha256:"));
        let basic = json!({"webhook": {"url": "https://hooks/x?token=abc", "type": "json"}});
        let r = redact("basic", &basic);
        assert!(!r.to_string().contains("token=abc"));
        // A category this build does not know: secrets are guessed from the option names.
        let plugin = json!({"category": "from_a_newer_build", "keys": ["k1"], "key": "ip",
            "targets": [{"upstream_api_key": "sk-1", "name": "a"}]});
        let r = redact("plugins", &plugin);
        assert!(!r.to_string().contains("k1") && !r.to_string().contains("sk-1"));
        // A known one hashes what it declares.
        let known = redact("plugins", &json!({"category": "key_auth", "keys": ["k1"]}));
        assert!(!known.to_string().contains("k1"), "{known}");
        assert_eq!(
            (r["key"].as_str(), r["targets"][0]["name"].as_str()),
            (Some("ip"), Some("a"))
        );
        assert_ne!(hash_value(&json!("a")), hash_value(&json!("b")));
    }

    #[test]
    fn declared_secret_paths_are_hashed_in_tables_and_lists() {
        let mut obj = json!({"key": "k", "auth": {"password": "pw"},
            "targets": [{"api_key": "sk-1", "name": "a"}, {"api_key": "sk-2"}]});
        let Value::Object(map) = &mut obj else {
            unreachable!()
        };
        for path in ["key", "auth.password", "targets.api_key", "missing.x"] {
            hash_path(map, path);
        }
        let text = obj.to_string();
        for secret in ["\"k\"", "pw", "sk-1", "sk-2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(obj["targets"][0]["name"], "a");
        // A known category hashes only what it declares: `mock` declares nothing.
        let r = redact("plugins", &json!({"category": "mock", "data": "token"}));
        assert_eq!(r["data"], "token");
    }

    #[test]
    fn field_level_diff() {
        let a = json!({"path": "/a", "upstream": "u", "plugins": ["p"]});
        let b = json!({"path": "/b", "upstream": "u", "weight": 3});
        let c = item_change("locations", "locations.x", Some(&a), Some(&b)).unwrap();
        assert_eq!(c.action, "modified");
        let paths: Vec<&str> = c.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["path", "plugins", "weight"]);
        assert!(item_change("locations", "l", Some(&a), Some(&a)).is_none());
        let added = item_change(
            "upstreams",
            "upstreams.u",
            None,
            Some(&json!({"addrs": ["x:1"]})),
        );
        let text = render(&[added.unwrap(), c]);
        assert_eq!(
            text,
            "+ upstreams.u\n    addrs: [\"x:1\"]\n~ locations.x\n    path: \"/a\" -> \"/b\"\n    plugins: [\"p\"] -> (none)\n    weight: (none) -> 3"
        );
        let k1 = json!({"tls_key": "one"});
        let k2 = json!({"tls_key": "two"});
        let c = item_change("certificates", "certificates.c", Some(&k1), Some(&k2)).unwrap();
        assert!(!render(&[c]).contains("one"));
    }

    #[test]
    fn whole_config_diff() {
        let parse = |text: &str| {
            crate::loader::parse_text(text, crate::Format::Toml, None)
                .expect("valid test config")
                .config
        };
        let base = "[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n\
                    [locations.l]\npath = \"/a\"\nupstream = \"u\"\n\
                    [servers.s]\naddr = \"127.0.0.1:1\"\nlocations = [\"l\"]\n";
        let a = parse(base);
        let b = parse(&format!(
            "{base}[upstreams.v]\naddrs = [\"127.0.0.1:10\"]\n\
             [basic.webhook]\nurl = \"http://h/x?token=abc\"\n"
        ));
        assert!(config_changes(&a, &a).is_empty());
        let changes = config_changes(&a, &b);
        let items: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.item.as_str(), c.action.as_str()))
            .collect();
        assert_eq!(items, [("basic", "modified"), ("upstreams.v", "added")]);
        let text = render(&changes);
        assert!(
            text.contains("+ upstreams.v") && text.contains("127.0.0.1:10"),
            "{text}"
        );
        assert!(!text.contains("token=abc"), "{text}");
    }
}

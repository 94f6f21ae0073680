//! Key-by-key decoding of a JSON object into a serde struct: every unknown key and every key
//! with a bad value gets its own error (with a "did you mean" for near misses), and the good
//! keys still decode. The known keys are read from the struct's own `Deserialize` impl, so
//! they can never drift from the model.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// Keys (and aliases) accepted by struct `T`, as its derived `Deserialize` declares them.
/// Empty for types that are not plain structs (e.g. with `#[serde(flatten)]`).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(Introspect) {
        Err(Stop(Some(fields))) => fields,
        _ => &[],
    }
}

/// The closest of `candidates` to `word`, if one is close enough to suggest.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| {
            (
                strsim::jaro_winkler(&lower, c),
                strsim::levenshtein(&lower, c),
                c,
            )
        })
        .filter(|(jw, lev, c)| *jw >= 0.8 || (*lev <= 2 && *lev < c.len().max(lower.len())))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// `"unknown <what> (did you mean \"x\"?)"`, or the list of known names when none is close.
pub fn unknown_message(what: &str, word: &str, known: &[&str]) -> String {
    match suggest(word, known.iter().copied()) {
        Some(s) => format!("unknown {what} (did you mean {s:?}?)"),
        None => format!("unknown {what}; known: {}", known.join(", ")),
    }
}

/// The result of [`decode_fields`]: the struct decoded from the good keys, and one
/// `(key, message)` per bad key (`key` is `None` for problems of the whole object).
pub type Decoded<T> = (T, Vec<(Option<String>, String)>);

/// Decodes `obj` into `T` key by key. `aliases` lists `(alias, primary)` pairs of `T`, so that
/// writing both spellings is reported instead of failing the whole object.
pub fn decode_fields<T: DeserializeOwned + Default>(
    obj: &Map<String, Value>,
    aliases: &[(&str, &str)],
) -> Decoded<T> {
    let known = fields_of::<T>();
    let mut errors = Vec::new();
    let mut good = Map::new();
    let mut seen_primary: Vec<(&str, &str)> = Vec::new();
    for (key, value) in obj {
        if !known.contains(&key.as_str()) {
            errors.push((Some(key.clone()), unknown_message("key", key, known)));
            continue;
        }
        let primary = aliases
            .iter()
            .find(|(alias, _)| alias == key)
            .map_or(key.as_str(), |(_, p)| p);
        if let Some((_, first)) = seen_primary.iter().find(|(p, _)| *p == primary) {
            errors.push((
                Some(key.clone()),
                format!("{key:?} and {first:?} are the same key; write only one"),
            ));
            continue;
        }
        let single = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        match serde_json::from_value::<T>(single) {
            Ok(_) => {
                seen_primary.push((primary, key));
                good.insert(key.clone(), value.clone());
            }
            Err(e) => errors.push((Some(key.clone()), clean_message(&e.to_string()))),
        }
    }
    let value = match serde_json::from_value::<T>(Value::Object(good)) {
        Ok(v) => v,
        Err(e) => {
            errors.push((None, clean_message(&e.to_string())));
            T::default()
        }
    };
    (value, errors)
}

/// Strips serde's position suffix (" at line 1 column 5") and flattens multi-line messages.
pub fn clean_message(message: &str) -> String {
    let one_line = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match one_line.rfind(" at line ") {
        Some(i) if one_line[i + 9..].contains(" column ") => one_line[..i].to_string(),
        _ => one_line,
    }
}

/// A deserializer that only answers "which fields does this struct have?".
struct Introspect;

/// The introspection "error": carries the field list when a struct asked for it.
#[derive(Debug)]
struct Stop(Option<&'static [&'static str]>);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("introspection")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop(None)
    }
}

impl<'de> de::Deserializer<'de> for Introspect {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        Err(Stop(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LocationConf, PluginConf, ServerConf};

    #[test]
    fn fields_include_aliases() {
        let f = fields_of::<LocationConf>();
        for k in [
            "host",
            "path",
            "proxy_set_headers",
            "proxy_headers",
            "headers",
            "proxy_plugins",
        ] {
            assert!(f.contains(&k), "{k} missing from {f:?}");
        }
        assert!(fields_of::<ServerConf>().contains(&"addr"));
        assert!(fields_of::<PluginConf>().is_empty());
    }

    #[test]
    fn suggestions() {
        let known = ["path", "host", "upstream", "rewrite"];
        assert_eq!(suggest("paht", known), Some("path"));
        assert_eq!(suggest("upstrem", known), Some("upstream"));
        assert_eq!(suggest("zzzzzz", known), None);
        assert!(unknown_message("key", "qqqq", &known).contains("known: path, host"));
    }

    #[test]
    fn every_bad_key_is_reported_and_good_keys_survive() {
        let obj = serde_json::json!({
            "addr": "0.0.0.0:80", "threads": "many", "tls": "yes", "adr": 1, "access_log": "tiny"
        });
        let Value::Object(obj) = obj else {
            unreachable!()
        };
        let (s, errors) = decode_fields::<ServerConf>(&obj, &[]);
        assert_eq!(s.addr.0, ["0.0.0.0:80"]);
        assert_eq!(s.access_log.as_deref(), Some("tiny"));
        let mut keys: Vec<_> = errors
            .iter()
            .map(|(k, _)| k.clone().unwrap_or_default())
            .collect();
        keys.sort();
        assert_eq!(keys, ["adr", "threads", "tls"]);
        let adr = errors
            .iter()
            .find(|(k, _)| k.as_deref() == Some("adr"))
            .map(|(_, m)| m.as_str());
        assert_eq!(adr, Some("unknown key (did you mean \"addr\"?)"));
    }

    #[test]
    fn alias_and_primary_together_is_an_error() {
        let obj = serde_json::json!({"headers": ["A: 1"], "response_headers": ["B: 2"]});
        let Value::Object(obj) = obj else {
            unreachable!()
        };
        let (l, errors) = decode_fields::<LocationConf>(&obj, &[("headers", "response_headers")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0.as_deref(), Some("response_headers"));
        assert_eq!(l.response_headers.0, ["A: 1"]);
    }

    #[test]
    fn messages_lose_positions() {
        assert_eq!(
            clean_message("invalid type at line 1 column 5"),
            "invalid type"
        );
        assert_eq!(clean_message("a\n  b"), "a; b");
    }
}

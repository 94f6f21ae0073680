//! SHA-256 (from `ring`, the crypto provider already in the build) and the config hash: the
//! SHA-256 of the config's canonical JSON (object keys sorted at every level, no spaces), so
//! two nodes with the same config report the same hash whatever order it was built in.

use crate::model::Config;
use serde_json::Value;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The canonical JSON text of a value: keys sorted at every level, no white space.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The config hash: hex SHA-256 of the canonical JSON of `config`.
pub fn config_hash(config: &Config) -> String {
    // Serializing the model cannot fail (string keys, no non-finite floats); fall back to
    // the Debug text rather than panic should that ever change.
    let text = match serde_json::to_value(config) {
        Ok(value) => canonical_json(&value),
        Err(_) => format!("{config:?}"),
    };
    sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_value() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn canonical_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":"x"}],"x":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"c":"x","d":2}]},"b":1}"#
        );
    }

    #[test]
    fn hash_changes_with_config() {
        let mut c = Config::default();
        let h0 = config_hash(&c);
        assert_eq!(h0, config_hash(&Config::default()));
        c.basic.threads = Some(2);
        assert_ne!(h0, config_hash(&c));
    }
}

//! Value types used by the config model: durations, sizes and lists, each with the
//! user-facing spelling preserved when serialized back (etcd, API export).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written as `"500ms"`, `"3s"`, `"1m"`, `"1h"` (or a plain number of seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

/// Parses `"500ms"`, `"3s"`, `"1m"`, `"1h30m"`, `"0s"`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"500ms\", \"3s\", \"1m\"")
    })
}

impl Dur {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            let s = d.as_secs();
            if s != 0 && s % 3600 == 0 {
                write!(f, "{}h", s / 3600)
            } else if s != 0 && s % 60 == 0 {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        } else {
            write!(f, "{}ms", d.as_millis())
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"3s\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|v| Dur(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes written as `"10kb"`, `"1mb"`, `"2gb"` (1 kb = 1024 bytes) or a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Size(pub u64);

/// Parses `"10kb"`, `"1mb"`, `"512b"`, `"1024"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}; write e.g. \"512\", \"10kb\", \"1mb\""))?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}; use b, kb, mb or gb"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n != 0 && n % (1 << 30) == 0 {
            write!(f, "{}gb", n >> 30)
        } else if n != 0 && n % (1 << 20) == 0 {
            write!(f, "{}mb", n >> 20)
        } else if n != 0 && n % (1 << 10) == 0 {
            write!(f, "{}kb", n >> 10)
        } else {
            write!(f, "{n}")
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1024, \"10kb\" or \"1mb\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of names or addresses: a TOML/JSON array, or one comma-separated string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StrList(pub Vec<String>);

impl StrList {
    /// Iterates over the entries.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for StrList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn split_commas(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(
            match Raw::deserialize(d).map_err(|_| {
                de::Error::custom("expected a list of strings or one comma-separated string")
            })? {
                Raw::One(s) => StrList(split_commas(&s)),
                Raw::Many(v) => StrList(v.iter().flat_map(|s| split_commas(s)).collect()),
            },
        )
    }
}

/// A list of header lines (`"Name: value"`): an array, or one string holding a single line.
/// Unlike [`StrList`] it is never split on commas, since header values may contain them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeaderList(pub Vec<String>);

impl Serialize for HeaderList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(
            match Raw::deserialize(d)
                .map_err(|_| de::Error::custom("expected a list of \"Name: value\" strings"))?
            {
                Raw::One(s) => HeaderList(vec![s]),
                Raw::Many(v) => HeaderList(v),
            },
        )
    }
}

/// Splits `"Name: value"` into a trimmed name and value.
pub fn split_header_line(line: &str) -> Result<(&str, &str), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header {line:?} must be written \"Name: value\""))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("invalid header name {name:?} in {line:?}"));
    }
    Ok((name, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(Dur(Duration::from_secs(120)).to_string(), "2m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10kb").unwrap(), 10 * 1024);
        assert_eq!(parse_size("1MB").unwrap(), 1 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("12parsecs").is_err());
        assert_eq!(Size(2048).to_string(), "2kb");
    }

    #[test]
    fn lists() {
        let l: StrList = serde_json::from_str("\"a, b,c\"").unwrap();
        assert_eq!(l.0, ["a", "b", "c"]);
        let l: StrList = serde_json::from_str("[\"a\", \"b\"]").unwrap();
        assert_eq!(l.0, ["a", "b"]);
        let h: HeaderList = serde_json::from_str("\"Accept: a, b\"").unwrap();
        assert_eq!(h.0, ["Accept: a, b"]);
        assert_eq!(split_header_line("X-A:  1, 2 ").unwrap(), ("X-A", "1, 2"));
        assert!(split_header_line("nocolon").is_err());
    }
}

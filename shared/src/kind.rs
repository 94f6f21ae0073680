//! The kinds of config items: `basic` (one item) and the five kinds of named items, with
//! their user-facing names (`"servers"`, ...). Everything that lists, parses or matches kinds
//! goes through [`Kind`]; the item table of a config (get, put, remove, every item) is the
//! `table` module.

use crate::fields::suggest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A kind of config item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Process-wide settings: one item, named `""`.
    Basic,
    /// Listeners.
    Servers,
    /// Routing rules.
    Locations,
    /// Backend groups.
    Upstreams,
    /// Plugin instances.
    Plugins,
    /// TLS certificates.
    Certificates,
}

impl Kind {
    /// Every kind, `basic` first, then the named kinds in [`Kind::NAMED`] order.
    pub const ALL: [Kind; 6] = [
        Kind::Basic,
        Kind::Servers,
        Kind::Locations,
        Kind::Upstreams,
        Kind::Plugins,
        Kind::Certificates,
    ];

    /// The kinds of named items (everything but `basic`), in the order a config lists them.
    pub const NAMED: [Kind; 5] = [
        Kind::Servers,
        Kind::Locations,
        Kind::Upstreams,
        Kind::Plugins,
        Kind::Certificates,
    ];

    /// The name as written in config files, etcd keys and the API (`"servers"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Basic => "basic",
            Kind::Servers => "servers",
            Kind::Locations => "locations",
            Kind::Upstreams => "upstreams",
            Kind::Plugins => "plugins",
            Kind::Certificates => "certificates",
        }
    }

    /// True for the kinds of named items (everything but `basic`).
    pub const fn is_named(self) -> bool {
        !matches!(self, Kind::Basic)
    }
}

/// The names of every kind, `"basic"` first (see [`Kind::ALL`]).
pub const KIND_NAMES: [&str; Kind::ALL.len()] = names(Kind::ALL);

/// The names of the kinds of named items (see [`Kind::NAMED`]).
pub const KINDS: [&str; Kind::NAMED.len()] = names(Kind::NAMED);

const fn names<const N: usize>(kinds: [Kind; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = kinds[i].as_str();
        i += 1;
    }
    out
}

/// A word that is not the name of a kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {word:?}{hint}", hint = hint(word))]
pub struct UnknownKind {
    /// The word as given.
    pub word: String,
}

/// `" (did you mean \"locations\"?)"`, or the list of kinds when none is close.
fn hint(word: &str) -> String {
    match suggest(word, KIND_NAMES) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => format!("; one of {}", KIND_NAMES.join(", ")),
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .ok_or_else(|| UnknownKind {
                word: word.to_string(),
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered by name, like the strings kinds were before: maps keyed by kind (and item keys)
/// keep listing `basic`, `certificates`, `locations`, ... in that order.
impl Ord for Kind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_order_by_name() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(
            KINDS,
            [
                "servers",
                "locations",
                "upstreams",
                "plugins",
                "certificates"
            ]
        );
        assert_eq!(KIND_NAMES[0], "basic");
        assert!(Kind::NAMED.iter().all(|k| k.is_named()) && !Kind::Basic.is_named());
        let mut sorted = Kind::ALL;
        sorted.sort();
        let names: Vec<&str> = sorted.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "basic",
                "certificates",
                "locations",
                "plugins",
                "servers",
                "upstreams"
            ]
        );
    }

    #[test]
    fn unknown_kinds_say_what_was_meant() {
        let e = "locaitons".parse::<Kind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown kind \"locaitons\" (did you mean \"locations\"?)"
        );
        let e = "routes".parse::<Kind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown kind \"routes\"; one of basic, servers, locations, upstreams, plugins, certificates"
        );
        assert!(
            "Servers".parse::<Kind>().is_err(),
            "names are case-sensitive"
        );
    }

    #[test]
    fn serde_uses_the_plural_name() {
        let json = serde_json::to_string(&Kind::Upstreams).unwrap();
        assert_eq!(json, "\"upstreams\"");
        assert_eq!(
            serde_json::from_str::<Kind>("\"basic\"").unwrap(),
            Kind::Basic
        );
        let e = serde_json::from_str::<Kind>("\"plugin\"").unwrap_err();
        assert!(e.to_string().contains("did you mean \"plugins\""), "{e}");
    }
}

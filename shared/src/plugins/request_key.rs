//! What a keyed plugin reads from the request: `ip`, `header:X`, `cookie:X` or `query:X`
//! (`limit`'s `key`, `traffic_split`'s `sticky`).

use crate::vars::header_name;

/// A part of the request a plugin keys on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKey {
    /// The client IP (honouring `basic.trusted_proxies`).
    Ip,
    /// A request header (lower-case name).
    Header(String),
    /// A cookie, by name.
    Cookie(String),
    /// A query parameter, by name (its value as sent).
    Query(String),
}

impl RequestKey {
    /// Parses `ip`, `header:X-User`, `cookie:session` or `query:user`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected ip, header:<name>, cookie:<name> or query:<name>";
        let (kind, name) = match text.split_once(':') {
            None if text == "ip" => return Ok(RequestKey::Ip),
            None => return Err(format!("{text:?}: {expected}")),
            Some((kind, name)) => (kind, name),
        };
        if name.is_empty() {
            return Err(format!("{text:?} names no {kind}"));
        }
        match kind {
            "header" => header_name(name)
                .map(RequestKey::Header)
                .ok_or_else(|| format!("{name:?} is not a header name")),
            "cookie" if !name.contains([';', '=', ' ', ',']) => {
                Ok(RequestKey::Cookie(name.to_string()))
            }
            "query" if !name.contains(['&', '=', '#', ' ']) => {
                Ok(RequestKey::Query(name.to_string()))
            }
            "cookie" | "query" => Err(format!("{name:?} is not a {kind} name")),
            _ => Err(format!("{text:?}: {expected}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_names_what_is_wrong() {
        assert_eq!(RequestKey::parse("ip"), Ok(RequestKey::Ip));
        assert_eq!(
            RequestKey::parse("header:X-User"),
            Ok(RequestKey::Header("x-user".into()))
        );
        assert_eq!(
            RequestKey::parse("cookie:sid"),
            Ok(RequestKey::Cookie("sid".into()))
        );
        assert_eq!(
            RequestKey::parse("query:u"),
            Ok(RequestKey::Query("u".into()))
        );
        for (bad, says) in [
            ("", "expected ip"),
            ("ipv4", "expected ip"),
            ("header:", "names no header"),
            ("header:bad name", "not a header name"),
            ("cookie:a;b", "not a cookie name"),
            ("query:a&b", "not a query name"),
            ("path:x", "expected ip"),
        ] {
            let e = RequestKey::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}

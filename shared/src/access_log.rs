//! Access-log specs: a preset (`tiny`, `short`, `common`, `combined`) or a template of text and
//! `{tags}`, parsed once into parts. The data plane formats the parts; a missing value prints `-`.
//!
//! Template syntax: `{name}` is a tag, `{>Header}` a request header, `{<Header}` a response
//! header, `{~name}` a cookie, `{$NAME}` an environment variable; `{{` and `}}` are literal braces.

use crate::keys::suggest;

/// A value the data plane fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogTag {
    /// Request host (without port).
    Host,
    /// Request method.
    Method,
    /// Path as received.
    Path,
    /// Path sent upstream (after rewrite).
    UpstreamPath,
    /// Query string.
    Query,
    /// Path and query as received.
    Uri,
    /// `HTTP/1.1`, `HTTP/2`.
    Proto,
    /// `http` or `https`.
    Scheme,
    /// Response status.
    Status,
    /// Response body bytes.
    Size,
    /// Response body size, human readable.
    SizeHuman,
    /// Request body bytes.
    PayloadSize,
    /// Latency in ms.
    Latency,
    /// Latency, human readable.
    LatencyHuman,
    /// TCP peer address.
    Remote,
    /// Client IP (honours `trusted_proxies`).
    ClientIp,
    /// `Referer` header.
    Referer,
    /// `User-Agent` header.
    UserAgent,
    /// Request id.
    RequestId,
    /// Local time of the request.
    When,
    /// UTC time, ISO 8601.
    WhenUtcIso,
    /// Unix time (seconds).
    WhenUnix,
    /// Matched location name.
    Location,
    /// Chosen upstream name.
    Upstream,
    /// Backend address used.
    UpstreamAddr,
    /// Status the upstream answered.
    UpstreamStatus,
    /// Upstream connect time (ms).
    UpstreamConnectTime,
    /// Upstream response time (ms).
    UpstreamResponseTime,
    /// Whether the upstream connection was reused.
    ConnectionReused,
    /// Client TLS version.
    TlsVersion,
}

/// Every tag with its template name.
pub const TAGS: &[(&str, LogTag)] = &[
    ("host", LogTag::Host),
    ("method", LogTag::Method),
    ("path", LogTag::Path),
    ("upstream_path", LogTag::UpstreamPath),
    ("query", LogTag::Query),
    ("uri", LogTag::Uri),
    ("proto", LogTag::Proto),
    ("scheme", LogTag::Scheme),
    ("status", LogTag::Status),
    ("size", LogTag::Size),
    ("size_human", LogTag::SizeHuman),
    ("payload_size", LogTag::PayloadSize),
    ("latency", LogTag::Latency),
    ("latency_human", LogTag::LatencyHuman),
    ("remote", LogTag::Remote),
    ("client_ip", LogTag::ClientIp),
    ("referer", LogTag::Referer),
    ("user_agent", LogTag::UserAgent),
    ("request_id", LogTag::RequestId),
    ("when", LogTag::When),
    ("when_utc_iso", LogTag::WhenUtcIso),
    ("when_unix", LogTag::WhenUnix),
    ("location", LogTag::Location),
    ("upstream", LogTag::Upstream),
    ("upstream_addr", LogTag::UpstreamAddr),
    ("upstream_status", LogTag::UpstreamStatus),
    ("upstream_connect_time", LogTag::UpstreamConnectTime),
    ("upstream_response_time", LogTag::UpstreamResponseTime),
    ("connection_reused", LogTag::ConnectionReused),
    ("tls_version", LogTag::TlsVersion),
];

impl LogTag {
    /// The tag for a template name.
    pub fn from_name(name: &str) -> Option<LogTag> {
        TAGS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// The template name of the tag.
    pub fn name(self) -> &'static str {
        TAGS.iter().find(|(_, t)| *t == self).map_or("", |(n, _)| n)
    }
}

/// One piece of a parsed access-log template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogPart {
    /// Literal text.
    Text(String),
    /// A built-in value.
    Tag(LogTag),
    /// `{>Name}`: a request header.
    RequestHeader(String),
    /// `{<Name}`: a response header.
    ResponseHeader(String),
    /// `{~name}`: a request cookie.
    Cookie(String),
    /// `{$NAME}`: an environment variable.
    Env(String),
}

/// Presets and the templates they stand for. `combined` and `common` are nginx's formats
/// (the remote user is always `-`); `{when}` should print nginx's `[10/Oct/2000:13:55:36 -0700]`.
pub const PRESETS: &[(&str, &str)] = &[
    ("tiny", "{method} {uri} {status} {size_human} - {latency}ms"),
    (
        "short",
        "{client_ip} {method} {uri} {proto} {status} {size_human} - {latency}ms",
    ),
    (
        "common",
        "{client_ip} - - [{when}] \"{method} {uri} {proto}\" {status} {size}",
    ),
    (
        "combined",
        "{client_ip} - - [{when}] \"{method} {uri} {proto}\" {status} {size} \"{referer}\" \"{user_agent}\"",
    ),
];

/// Parses an access-log spec (a preset name or a template) into parts.
pub fn parse_access_log(spec: &str) -> Result<Vec<LogPart>, String> {
    let trimmed = spec.trim();
    if let Some((_, template)) = PRESETS.iter().find(|(name, _)| *name == trimmed) {
        return parse_template(template);
    }
    if trimmed.is_empty() {
        return Err(
            "empty access_log; use a preset (tiny, short, common, combined) or a template".into(),
        );
    }
    let parts = parse_template(spec)?;
    // A lone word with no tags is almost certainly a misspelt preset, not a template.
    let word = trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if word && parts.iter().all(|p| matches!(p, LogPart::Text(_))) {
        let presets: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(match suggest(trimmed, presets.iter().copied()) {
            Some(s) => format!("unknown access_log preset {trimmed:?} (did you mean {s:?}?)"),
            None => format!(
                "unknown access_log preset {trimmed:?}; use one of {} or a template with {{tags}}",
                presets.join(", ")
            ),
        });
    }
    Ok(parts)
}

fn parse_template(template: &str) -> Result<Vec<LogPart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let brace = &rest[i..i + 1];
        let after = &rest[i + 1..];
        if after.starts_with(brace) {
            // `{{` or `}}`: a literal brace.
            text.push_str(brace);
            rest = &after[1..];
            continue;
        }
        if brace == "}" {
            return Err(format!(
                "unmatched '}}' in access_log {template:?}; write '}}}}' for a literal brace"
            ));
        }
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in access_log {template:?}"))?;
        let tag = parse_tag(&after[..end])?;
        if !text.is_empty() {
            parts.push(LogPart::Text(std::mem::take(&mut text)));
        }
        parts.push(tag);
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(LogPart::Text(text));
    }
    Ok(parts)
}

fn parse_tag(tag: &str) -> Result<LogPart, String> {
    let named = |name: &str, what: &str, make: fn(String) -> LogPart| -> Result<LogPart, String> {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(make(name.to_string()))
        } else {
            Err(format!(
                "invalid {what} name {name:?} in access_log tag {{{tag}}}"
            ))
        }
    };
    match tag.chars().next() {
        Some('>') => named(&tag[1..], "request header", LogPart::RequestHeader),
        Some('<') => named(&tag[1..], "response header", LogPart::ResponseHeader),
        Some('~') => named(&tag[1..], "cookie", LogPart::Cookie),
        Some('$') => named(&tag[1..], "environment variable", LogPart::Env),
        _ => LogTag::from_name(tag).map(LogPart::Tag).ok_or_else(|| {
            let hint = suggest(tag, TAGS.iter().map(|(n, _)| *n))
                .map(|s| format!(" (did you mean {{{s}}}?)"))
                .unwrap_or_default();
            format!("unknown access_log tag {{{tag}}}{hint}")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand() {
        for (name, _) in PRESETS {
            let parts = parse_access_log(name).unwrap();
            assert!(parts.contains(&LogPart::Tag(LogTag::Status)), "{name}");
        }
        let combined = parse_access_log(" combined ").unwrap();
        assert_eq!(combined[0], LogPart::Tag(LogTag::ClientIp));
        assert_eq!(combined.last(), Some(&LogPart::Text("\"".into())));
        assert!(combined.contains(&LogPart::Tag(LogTag::UserAgent)));
    }

    #[test]
    fn templates() {
        let parts =
            parse_access_log("{host} \"{>X-Req}\" {<Content-Type} {~sid} {$HOME} {{x}}").unwrap();
        assert_eq!(
            parts,
            vec![
                LogPart::Tag(LogTag::Host),
                LogPart::Text(" \"".into()),
                LogPart::RequestHeader("X-Req".into()),
                LogPart::Text("\" ".into()),
                LogPart::ResponseHeader("Content-Type".into()),
                LogPart::Text(" ".into()),
                LogPart::Cookie("sid".into()),
                LogPart::Text(" ".into()),
                LogPart::Env("HOME".into()),
                LogPart::Text(" {x}".into()),
            ]
        );
        assert_eq!(
            parse_access_log("plain text").unwrap(),
            vec![LogPart::Text("plain text".into())]
        );
    }

    #[test]
    fn every_tag_round_trips() {
        for (name, tag) in TAGS {
            assert_eq!(
                parse_access_log(&format!("{{{name}}}")).unwrap(),
                vec![LogPart::Tag(*tag)]
            );
            assert_eq!(tag.name(), *name);
        }
        assert_eq!(TAGS.len(), 30);
    }

    #[test]
    fn errors() {
        let e = parse_access_log("{stauts}").unwrap_err();
        assert_eq!(
            e,
            "unknown access_log tag {stauts} (did you mean {status}?)"
        );
        assert!(parse_access_log("{method")
            .unwrap_err()
            .contains("unclosed"));
        assert!(parse_access_log("a } b").unwrap_err().contains("unmatched"));
        assert!(parse_access_log("{>}")
            .unwrap_err()
            .contains("request header"));
        assert!(parse_access_log("{}")
            .unwrap_err()
            .contains("unknown access_log tag {}"));
        assert!(parse_access_log("").is_err());
        let e = parse_access_log("combinde").unwrap_err();
        assert!(e.contains("did you mean \"combined\""), "{e}");
    }
}

//! The request-variable vocabulary: one set of names for header templates (`$host`,
//! `${client_ip}`, `$http_x_user`), access-log tags (`{host}`, `{>X-User}`) and hash keys
//! (`hash:header:X-User`). Each syntax is parsed here into [`Var`]s; the data plane renders a
//! `Var` in one place.
//!
//! Environment variables (`${NAME}` in upper case, `{$NAME}` in a log template) are read when
//! the template is parsed, never per request.

use std::sync::Arc;

/// A value read from the request, its response or its handling, at request time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// Request host (lower case, without port).
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
    /// TCP peer address.
    Remote,
    /// TCP peer port.
    RemotePort,
    /// Local address the request came in on.
    ServerAddr,
    /// Local port the request came in on.
    ServerPort,
    /// Client IP (honours `trusted_proxies`).
    ClientIp,
    /// `Referer` header.
    Referer,
    /// `User-Agent` header.
    UserAgent,
    /// Request id.
    RequestId,
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
    /// Local time of the request.
    When,
    /// UTC time, ISO 8601.
    WhenUtcIso,
    /// Unix time (milliseconds).
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
    /// A request header (lower-case name).
    RequestHeader(String),
    /// A response header (lower-case name).
    ResponseHeader(String),
    /// A request cookie.
    Cookie(String),
    /// A query parameter.
    QueryParam(String),
    /// A named capture of the location's host, path or rewrite regex.
    Capture(Arc<str>),
}

/// Every named variable. The same name works as `$name` in a header value and `{name}` in an
/// access-log template.
pub const NAMES: &[(&str, Var)] = &[
    ("host", Var::Host),
    ("method", Var::Method),
    ("path", Var::Path),
    ("upstream_path", Var::UpstreamPath),
    ("query", Var::Query),
    ("uri", Var::Uri),
    ("proto", Var::Proto),
    ("scheme", Var::Scheme),
    ("remote", Var::Remote),
    ("remote_addr", Var::Remote),
    ("remote_port", Var::RemotePort),
    ("server_addr", Var::ServerAddr),
    ("server_port", Var::ServerPort),
    ("client_ip", Var::ClientIp),
    ("referer", Var::Referer),
    ("user_agent", Var::UserAgent),
    ("request_id", Var::RequestId),
    ("status", Var::Status),
    ("size", Var::Size),
    ("size_human", Var::SizeHuman),
    ("payload_size", Var::PayloadSize),
    ("latency", Var::Latency),
    ("latency_human", Var::LatencyHuman),
    ("when", Var::When),
    ("when_utc_iso", Var::WhenUtcIso),
    ("when_unix", Var::WhenUnix),
    ("location", Var::Location),
    ("upstream", Var::Upstream),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_connect_time", Var::UpstreamConnectTime),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("connection_reused", Var::ConnectionReused),
    ("tls_version", Var::TlsVersion),
];

impl Var {
    /// The variable for a name of [`NAMES`].
    pub fn from_name(name: &str) -> Option<Var> {
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
}

/// One piece of a template: literal text or a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// A value rendered per request.
    Var(Var),
}

/// Collects parts, merging adjacent text.
#[derive(Default)]
pub(crate) struct Parts(Vec<Part>);

impl Parts {
    pub(crate) fn text(&mut self, s: &str) {
        match self.0.last_mut() {
            Some(Part::Text(t)) => t.push_str(s),
            _ if s.is_empty() => {}
            _ => self.0.push(Part::Text(s.to_string())),
        }
    }

    pub(crate) fn var(&mut self, v: Var) {
        self.0.push(Part::Var(v));
    }

    pub(crate) fn done(self) -> Vec<Part> {
        self.0
    }
}

/// A header name as a variable takes it: valid, lower case.
pub(crate) fn header_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

/// Parses a header value template: `$name` or `${name}` from [`NAMES`], `$http_x_user` (the
/// request header `X-User`), `${NAME}` in upper case from the environment, and any other name
/// as a named capture. A `$` with no name is literal.
pub fn parse_template(value: &str) -> Result<Vec<Part>, String> {
    let mut parts = Parts::default();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        parts.text(&rest[..i]);
        rest = &rest[i + 1..];
        let (name, after, braced) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed \"${{\" in {value:?}"))?;
            (&braced[..end], &braced[end + 1..], true)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..], false)
        };
        rest = after;
        let is_env = braced
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if name.is_empty() {
            parts.text("$");
        } else if is_env {
            parts.text(&std::env::var(name).unwrap_or_default());
        } else if let Some(v) = Var::from_name(name) {
            parts.var(v);
        } else if let Some(h) = name.strip_prefix("http_") {
            let header = header_name(&h.replace('_', "-"))
                .ok_or_else(|| format!("invalid header variable ${name}"))?;
            parts.var(Var::RequestHeader(header));
        } else {
            parts.var(Var::Capture(Arc::from(name)));
        }
    }
    parts.text(rest);
    Ok(parts.done())
}

/// True when the parts read a named capture.
pub fn uses_captures(parts: &[Part]) -> bool {
    parts
        .iter()
        .any(|p| matches!(p, Part::Var(Var::Capture(_))))
}

/// True when the parts read the variable `var`.
pub fn uses(parts: &[Part], var: &Var) -> bool {
    parts.iter().any(|p| matches!(p, Part::Var(v) if v == var))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_the_shared_vocabulary() {
        assert_eq!(
            parse_template("pre-$host-${client_ip}$http_x_user $tenant $ $method").unwrap(),
            vec![
                Part::Text("pre-".into()),
                Part::Var(Var::Host),
                Part::Text("-".into()),
                Part::Var(Var::ClientIp),
                Part::Var(Var::RequestHeader("x-user".into())),
                Part::Text(" ".into()),
                Part::Var(Var::Capture("tenant".into())),
                Part::Text(" $ ".into()),
                Part::Var(Var::Method),
            ]
        );
        assert_eq!(
            parse_template("plain").unwrap(),
            vec![Part::Text("plain".into())]
        );
        assert!(parse_template("${host").unwrap_err().contains("unclosed"));
        assert!(uses_captures(&parse_template("${tenant}x").unwrap()));
        assert!(uses(
            &parse_template("$request_id").unwrap(),
            &Var::RequestId
        ));
    }

    #[test]
    fn environment_is_read_when_parsed() {
        std::env::set_var("LOUAILINK_VARS_TEST", "xyz");
        assert_eq!(
            parse_template("a-${LOUAILINK_VARS_TEST}-b").unwrap(),
            vec![Part::Text("a-xyz-b".into())]
        );
    }
}

//! Rendering the request-variable vocabulary (`louailink_shared::vars`): [`write_var`] is the
//! one place a variable becomes text, for header values, access-log lines and hash keys.
//! Header templates are compiled once per snapshot; values without variables are kept as a
//! ready `HeaderValue` so the request path only clones it.

use crate::request::ctx::RequestCtx;
use crate::request::params::{cookie, query_param};
use http::HeaderValue;
use louailink_shared::vars::{self, Part, Var};
use pingora_proxy::Session;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Mutex;

/// Writes the value of `var` for this request to `out`; nothing when it has none.
pub fn write_var(var: &Var, session: &Session, ctx: &RequestCtx, out: &mut String) {
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let text = |out: &mut String, v: Option<&str>| out.push_str(v.unwrap_or(""));
    let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet()).copied()
    };
    let since_start =
        |t: Option<std::time::Instant>| t.map(|t| (t - ctx.start).as_secs_f64() * 1000.0);
    let _ = match var {
        Var::Host => return out.push_str(&ctx.host),
        Var::Method => return out.push_str(req.method.as_str()),
        Var::Path => return out.push_str(req.uri.path()),
        Var::UpstreamPath => {
            return out.push_str(ctx.upstream_path.as_deref().unwrap_or(req.uri.path()))
        }
        Var::Query => return text(out, req.uri.query()),
        Var::Uri => {
            return out.push_str(
                req.uri
                    .path_and_query()
                    .map_or(req.uri.path(), |p| p.as_str()),
            )
        }
        Var::Proto => write!(out, "{:?}", req.version),
        Var::Scheme => return out.push_str(ctx.scheme()),
        Var::Remote => match inet(session.client_addr()) {
            Some(a) => write!(out, "{}", a.ip()),
            None => return,
        },
        Var::RemotePort => match inet(session.client_addr()) {
            Some(a) => write!(out, "{}", a.port()),
            None => return,
        },
        Var::ServerAddr => match inet(session.server_addr()) {
            Some(a) => write!(out, "{}", a.ip()),
            None => return,
        },
        Var::ServerPort => match inet(session.server_addr()) {
            Some(a) => write!(out, "{}", a.port()),
            None => return,
        },
        Var::ClientIp => match ctx.client_ip {
            Some(ip) => write!(out, "{ip}"),
            None => return,
        },
        Var::Referer => return text(out, header("referer")),
        Var::UserAgent => return text(out, header("user-agent")),
        Var::RequestId => return out.push_str(&ctx.request_id),
        Var::Status => {
            let status = session
                .response_written()
                .map_or(ctx.status, |r| r.status.as_u16());
            write!(out, "{status}")
        }
        Var::Size => write!(out, "{}", session.body_bytes_sent()),
        Var::SizeHuman => return human_bytes(out, session.body_bytes_sent()),
        Var::PayloadSize => write!(out, "{}", session.body_bytes_read()),
        Var::Latency => write!(out, "{}", ctx.elapsed().as_millis()),
        Var::LatencyHuman => write!(out, "{:?}", ctx.elapsed()),
        Var::When => return write_when(out, false),
        Var::WhenUtcIso => return write_when(out, true),
        Var::WhenUnix => write!(out, "{}", chrono::Utc::now().timestamp_millis()),
        Var::Location => return text(out, ctx.location.as_deref()),
        Var::Upstream => return text(out, ctx.upstream.as_ref().map(|u| &*u.name)),
        Var::UpstreamAddr => match ctx.backend {
            Some(a) => write!(out, "{a}"),
            None => return,
        },
        Var::UpstreamStatus => match ctx.upstream_status {
            0 => return,
            s => write!(out, "{s}"),
        },
        Var::UpstreamConnectTime => match since_start(ctx.upstream_connected) {
            Some(ms) => write!(out, "{ms:.3}"),
            None => return,
        },
        Var::UpstreamResponseTime => match since_start(ctx.upstream_responded) {
            Some(ms) => write!(out, "{ms:.3}"),
            None => return,
        },
        Var::ConnectionReused => write!(out, "{}", ctx.connection_reused),
        Var::TlsVersion => {
            return text(
                out,
                session
                    .digest()
                    .and_then(|d| d.ssl_digest.as_ref())
                    .map(|s| s.version.as_ref()),
            )
        }
        Var::RequestHeader(name) => return text(out, header(name)),
        Var::ResponseHeader(name) => {
            return text(
                out,
                session
                    .response_written()
                    .and_then(|r| r.headers.get(name.as_str()))
                    .and_then(|v| v.to_str().ok()),
            )
        }
        Var::Cookie(name) => return text(out, cookie(req, name)),
        Var::QueryParam(name) => return text(out, query_param(req.uri.query(), name)),
        Var::Capture(name) => return text(out, ctx.var(name)),
    };
}

/// The text a consistent hash is keyed on (`hash:ip`, `hash:header:X`, ...).
pub fn hash_input(key: &Var, session: &Session, ctx: &RequestCtx) -> String {
    let mut out = String::new();
    write_var(key, session, ctx, &mut out);
    out
}

fn human_bytes(out: &mut String, n: usize) {
    let _ = match n {
        n if n >= 1 << 20 => write!(out, "{:.1}MB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => write!(out, "{:.1}KB", n as f64 / 1024.0),
        n => write!(out, "{n}B"),
    };
}

thread_local! {
    /// The last formatted second, per thread: formatting a date costs more than a line.
    static WHEN_CACHE: std::cell::RefCell<[(i64, String); 2]> =
        const { std::cell::RefCell::new([(i64::MIN, String::new()), (i64::MIN, String::new())]) };
}

/// `{when}` (local, nginx style) or `{when_utc_iso}` (UTC, with milliseconds).
fn write_when(out: &mut String, utc_iso: bool) {
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    WHEN_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (cached_secs, text) = &mut cache[usize::from(utc_iso)];
        if *cached_secs != secs {
            text.clear();
            let _ = if utc_iso {
                write!(text, "{}", now.format("%Y-%m-%dT%H:%M:%S"))
            } else {
                write!(
                    text,
                    "{}",
                    now.with_timezone(&chrono::Local)
                        .format("%d/%b/%Y:%H:%M:%S %z")
                )
            };
            *cached_secs = secs;
        }
        out.push_str(text);
    });
    if utc_iso {
        let _ = write!(out, ".{:03}Z", now.timestamp_subsec_millis());
    }
}

/// A header value with variables, compiled.
#[derive(Debug, Clone)]
pub enum Template {
    /// No variables: the value is ready.
    Fixed(HeaderValue),
    /// Rendered per request.
    Dynamic(Vec<Part>),
}

impl Template {
    /// Compiles a value. Errors name the offending variable.
    pub fn compile(value: &str) -> Result<Self, String> {
        let parts = vars::parse_template(value)?;
        match parts.as_slice() {
            [] => Ok(Template::Fixed(HeaderValue::from_static(""))),
            [Part::Text(text)] => HeaderValue::from_str(text)
                .map(Template::Fixed)
                .map_err(|_| format!("invalid header value {value:?}")),
            _ => Ok(Template::Dynamic(parts)),
        }
    }

    /// True when the template reads named captures.
    pub fn uses_captures(&self) -> bool {
        matches!(self, Template::Dynamic(p) if vars::uses_captures(p))
    }

    /// True when the template reads `$request_id`.
    pub fn uses_request_id(&self) -> bool {
        matches!(self, Template::Dynamic(p) if vars::uses(p, &Var::RequestId))
    }

    /// Renders the value for this request.
    pub fn render(&self, session: &Session, ctx: &RequestCtx) -> Option<HeaderValue> {
        match self {
            Template::Fixed(v) => Some(v.clone()),
            Template::Dynamic(parts) => {
                let mut out = String::with_capacity(64);
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Var(v) => write_var(v, session, ctx, &mut out),
                    }
                }
                HeaderValue::from_str(&out).ok()
            }
        }
    }
}

/// A `Name: value` header with a compiled value.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    /// Name, with the case the user wrote (HTTP/1.1 keeps it).
    pub name: &'static str,
    /// Lower-case name, for removal and lookups.
    pub key: http::HeaderName,
    /// The value.
    pub value: Template,
}

impl HeaderRule {
    /// Compiles a `"Name: value"` line.
    pub fn compile(line: &str) -> Result<Self, String> {
        let (name, value) = louailink_shared::values::split_header_line(line)?;
        Ok(HeaderRule {
            name: intern(name),
            key: http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?,
            value: Template::compile(value)?,
        })
    }
}

/// Header names are few and reused across config swaps: keep each distinct one once, so
/// the request path passes a `&'static str` to pingora instead of allocating per request.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(existing) = set.get(name) {
        return existing;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Compiles a list of header lines.
pub fn compile_headers(lines: &[String]) -> Result<Vec<HeaderRule>, String> {
    lines.iter().map(|l| HeaderRule::compile(l)).collect()
}

/// Names of `$name` / `${name}` references in a rewrite replacement that are not groups of
/// the rewrite regex itself (they come from the host or path regex).
pub fn outer_vars(replacement: &str, re: &regex::Regex) -> Vec<String> {
    let own: Vec<&str> = re.capture_names().flatten().collect();
    let mut out = Vec::new();
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let (name, after) = match rest.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], &b[end + 1..]),
                None => break,
            },
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        rest = after;
        if !name.is_empty() && !name.bytes().all(|b| b.is_ascii_digit()) && !own.contains(&name) {
            out.push(name.to_string());
        }
    }
    out
}

/// Substitutes outer variables (see [`outer_vars`]) into a rewrite replacement.
pub fn expand_outer_vars<'a>(
    replacement: &'a str,
    re: &regex::Regex,
    ctx: &RequestCtx,
) -> std::borrow::Cow<'a, str> {
    let names = outer_vars(replacement, re);
    if names.is_empty() {
        return std::borrow::Cow::Borrowed(replacement);
    }
    let mut s = replacement.to_string();
    for name in names {
        // `$$` is a literal `$` in regex replacement syntax, so escape values.
        let value = ctx.var(&name).unwrap_or("").replace('$', "$$");
        s = s
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    std::borrow::Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_fixed_and_dynamic() {
        assert!(matches!(
            Template::compile("plain").unwrap(),
            Template::Fixed(_)
        ));
        assert!(matches!(Template::compile("").unwrap(), Template::Fixed(_)));
        let Template::Dynamic(parts) = Template::compile("pre-$host-post").unwrap() else {
            panic!("expected dynamic")
        };
        assert_eq!(parts[1], Part::Var(Var::Host));
        assert!(Template::compile("$tenant").unwrap().uses_captures());
        assert!(Template::compile("${request_id}")
            .unwrap()
            .uses_request_id());
        assert!(Template::compile("cost $").is_ok());
    }

    #[test]
    fn outer_vars_of_rewrite() {
        let re = regex::Regex::new("^/api/(?<rest>.*)$").unwrap();
        assert_eq!(
            outer_vars("/$tenant/${rest}/$1", &re),
            vec!["tenant".to_string()]
        );
        assert!(outer_vars("/$rest", &re).is_empty());
    }
}

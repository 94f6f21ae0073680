//! Header value templates: `"pre-$host-post"`, `$http_x_user`, `${ENV}`, named captures.
//!
//! A template is compiled once per snapshot; values without variables are kept as a ready
//! `HeaderValue` so the request path only clones it.

use crate::ctx::RequestCtx;
use http::HeaderValue;
use pingora_proxy::Session;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;

/// One piece of a template.
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Host,
    Scheme,
    RemoteAddr,
    RemotePort,
    ServerAddr,
    ServerPort,
    RequestId,
    ClientIp,
    Header(http::HeaderName),
    Capture(Arc<str>),
}

/// A header value with variables, compiled.
#[derive(Debug, Clone)]
pub enum Template {
    /// No variables: the value is ready.
    Fixed(HeaderValue),
    /// Rendered per request.
    Dynamic(Vec<Part>),
}

/// Expands `${NAME}` from the environment at compile time (missing = empty).
fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

impl Template {
    /// Compiles a value. Errors name the offending variable.
    pub fn compile(value: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = value;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("unclosed \"${{\" in {value:?}"))?;
                let name = &braced[..end];
                if name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && !name.is_empty()
                {
                    // `${ENV_NAME}` comes from the environment.
                    text.push_str(&env_var(name));
                    rest = &braced[end + 1..];
                    continue;
                }
                (name, &braced[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            rest = after;
            if name.is_empty() {
                text.push('$');
                continue;
            }
            let part = match name {
                "host" => Part::Host,
                "scheme" => Part::Scheme,
                "remote_addr" => Part::RemoteAddr,
                "remote_port" => Part::RemotePort,
                "server_addr" => Part::ServerAddr,
                "server_port" => Part::ServerPort,
                "request_id" => Part::RequestId,
                "client_ip" => Part::ClientIp,
                _ => match name.strip_prefix("http_") {
                    Some(h) => Part::Header(
                        http::HeaderName::from_bytes(h.replace('_', "-").as_bytes())
                            .map_err(|_| format!("invalid header variable ${name}"))?,
                    ),
                    None => Part::Capture(Arc::from(name)),
                },
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
        }
        text.push_str(rest);
        if parts.is_empty() {
            return HeaderValue::from_str(&text)
                .map(Template::Fixed)
                .map_err(|_| format!("invalid header value {value:?}"));
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template::Dynamic(parts))
    }

    /// True when the template reads named captures.
    pub fn uses_captures(&self) -> bool {
        matches!(self, Template::Dynamic(p) if p.iter().any(|p| matches!(p, Part::Capture(_))))
    }

    /// True when the template reads `$request_id`.
    pub fn uses_request_id(&self) -> bool {
        matches!(self, Template::Dynamic(p) if p.iter().any(|p| matches!(p, Part::RequestId)))
    }

    /// Renders the value for this request.
    pub fn render(&self, session: &Session, ctx: &RequestCtx) -> Option<HeaderValue> {
        match self {
            Template::Fixed(v) => Some(v.clone()),
            Template::Dynamic(parts) => {
                let mut out = String::with_capacity(64);
                for p in parts {
                    render_part(p, session, ctx, &mut out);
                }
                HeaderValue::from_str(&out).ok()
            }
        }
    }
}

fn render_part(part: &Part, session: &Session, ctx: &RequestCtx, out: &mut String) {
    match part {
        Part::Text(t) => out.push_str(t),
        Part::Host => out.push_str(ctx.host(session)),
        Part::Scheme => out.push_str(ctx.scheme()),
        Part::RemoteAddr => {
            if let Some(a) = session.client_addr().and_then(|a| a.as_inet()) {
                let _ = write!(out, "{}", a.ip());
            }
        }
        Part::RemotePort => {
            if let Some(a) = session.client_addr().and_then(|a| a.as_inet()) {
                let _ = write!(out, "{}", a.port());
            }
        }
        Part::ServerAddr => {
            if let Some(a) = session.server_addr().and_then(|a| a.as_inet()) {
                let _ = write!(out, "{}", a.ip());
            }
        }
        Part::ServerPort => {
            if let Some(a) = session.server_addr().and_then(|a| a.as_inet()) {
                let _ = write!(out, "{}", a.port());
            }
        }
        Part::RequestId => out.push_str(&ctx.request_id),
        Part::ClientIp => {
            if let Some(ip) = ctx.client_ip {
                let _ = write!(out, "{ip}");
            }
        }
        Part::Header(name) => {
            if let Some(v) = session
                .req_header()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
            {
                out.push_str(v);
            }
        }
        Part::Capture(name) => {
            if let Some(v) = ctx.var(name) {
                out.push_str(v);
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
        let t = Template::compile("pre-$host-post").unwrap();
        let Template::Dynamic(parts) = t else {
            panic!("expected dynamic")
        };
        assert!(matches!(parts[0], Part::Text(ref s) if s == "pre-"));
        assert!(matches!(parts[1], Part::Host));
        assert!(matches!(parts[2], Part::Text(ref s) if s == "-post"));
        assert!(Template::compile("$tenant").unwrap().uses_captures());
        assert!(Template::compile("${tenant}x").unwrap().uses_captures());
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

    #[test]
    fn env_expands_at_compile_time() {
        std::env::set_var("LOUAILINK_VARS_TEST", "xyz");
        let Template::Fixed(v) = Template::compile("a-${LOUAILINK_VARS_TEST}-b").unwrap() else {
            panic!("expected fixed")
        };
        assert_eq!(v, "a-xyz-b");
    }
}

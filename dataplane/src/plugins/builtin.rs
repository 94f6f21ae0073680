//! The location's own request handling, as plugins on the same chain as the configured ones:
//! request id, `client_max_body_size`, `max_processing`, `rewrite`, the reverse-proxy headers,
//! `proxy_set_headers` / `proxy_add_headers` (before the configured plugins) and
//! `response_headers` (after them, so they have the last word).

use super::response_headers::ResponseHeaders;
use super::{Flow, Phases, Plugin};
use crate::request::ctx::{state_key, RequestCtx};
use crate::request::inspect::ensure_request_id;
use crate::request::reply::{message_for, status_error};
use crate::request::vars::{compile_headers, expand_outer_vars, outer_vars, HeaderRule};
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::patterns::{self, compile_regex};
use louailink_shared::LocationConf;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use regex::Regex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A location's built-in plugins, and what the request path must collect for them.
pub struct Builtins {
    /// Run before the configured plugins.
    pub before: Vec<Arc<dyn Plugin>>,
    /// Run after the configured plugins.
    pub after: Vec<Arc<dyn Plugin>>,
    /// Named captures of the location's regexes are read (by rewrite or a header value).
    pub needs_captures: bool,
    /// The rewrite regex when it names groups: the location takes captures from it too.
    pub rewrite_captures: Option<Regex>,
}

/// Compiles the built-ins a location's config asks for (none when it asks for none).
pub fn compile(conf: &LocationConf) -> Result<Builtins, String> {
    let rewrite = match conf.rewrite.as_deref() {
        None => None,
        Some(r) => {
            let r = patterns::parse_rewrite(r)?;
            let regex = compile_regex(&r.regex)?;
            Some(Rewrite {
                regex,
                replacement: r.replacement,
            })
        }
    };
    let proxy_headers = ProxyHeaders {
        set: compile_headers(&conf.proxy_set_headers.0)?,
        add: compile_headers(&conf.proxy_add_headers.0)?,
    };
    let response_headers = compile_headers(&conf.response_headers.0)?;
    let rules = || {
        proxy_headers
            .set
            .iter()
            .chain(&proxy_headers.add)
            .chain(&response_headers)
    };
    let needs_captures = rules().any(|r| r.value.uses_captures())
        || rewrite
            .as_ref()
            .is_some_and(|r| !outer_vars(&r.replacement, &r.regex).is_empty());
    let needs_request_id = rules().any(|r| r.value.uses_request_id());
    // A compiled regex is shared by clones, not compiled again.
    let rewrite_captures = rewrite
        .as_ref()
        .map(|r| r.regex.clone())
        .filter(|re| re.capture_names().flatten().next().is_some());

    let mut before: Vec<Arc<dyn Plugin>> = Vec::new();
    if needs_request_id {
        before.push(Arc::new(RequestId));
    }
    if let Some(max) = conf.client_max_body_size {
        before.push(Arc::new(BodyLimit(max.0)));
    }
    if let Some(max) = conf.max_processing {
        before.push(Arc::new(MaxProcessing {
            max,
            now: AtomicU64::new(0),
        }));
    }
    if let Some(rewrite) = rewrite {
        before.push(Arc::new(rewrite));
    }
    if conf.enable_reverse_proxy_headers {
        before.push(Arc::new(ForwardedHeaders));
    }
    if !proxy_headers.set.is_empty() || !proxy_headers.add.is_empty() {
        before.push(Arc::new(proxy_headers));
    }
    let mut after: Vec<Arc<dyn Plugin>> = Vec::new();
    if !response_headers.is_empty() {
        after.push(Arc::new(ResponseHeaders::builtin(response_headers)));
    }
    Ok(Builtins {
        before,
        after,
        needs_captures,
        rewrite_captures,
    })
}

/// Takes the client's `X-Request-Id`, or generates one, for the variables that read it.
struct RequestId;

#[async_trait]
impl Plugin for RequestId {
    fn category(&self) -> &'static str {
        "request_id (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }
    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        ensure_request_id(session, ctx);
        Ok(Flow::Continue)
    }
}

/// `client_max_body_size`: 413 for a declared length over the limit, and for a body (also
/// chunked) that grows past it.
struct BodyLimit(u64);

#[async_trait]
impl Plugin for BodyLimit {
    fn category(&self) -> &'static str {
        "client_max_body_size (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::REQUEST_BODY
    }
    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let declared = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.0) {
            // The unread body would be taken for the next request.
            session.set_keepalive(None);
            return Ok(Flow::Error(413, message_for(413).into()));
        }
        Ok(Flow::Continue)
    }
    fn request_body(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(chunk) = body {
            let seen = ctx.plugin_states.get_mut::<BodySeen>(state_key(self));
            seen.0 += chunk.len() as u64;
            if seen.0 > self.0 {
                return Err(status_error(413, "request body too large"));
            }
        }
        Ok(())
    }
}

/// Per request: body bytes seen so far.
#[derive(Default)]
struct BodySeen(u64);

/// `max_processing`: at most this many requests of the location in flight; 429 beyond.
struct MaxProcessing {
    max: u64,
    now: AtomicU64,
}

/// Per request: this request holds one of the slots.
#[derive(Default)]
struct HoldsSlot(bool);

#[async_trait]
impl Plugin for MaxProcessing {
    fn category(&self) -> &'static str {
        "max_processing (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::LOGGING
    }
    async fn request(&self, _session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if self.now.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.now.fetch_sub(1, Ordering::AcqRel);
            return Ok(Flow::Error(429, message_for(429).into()));
        }
        ctx.plugin_states.get_mut::<HoldsSlot>(state_key(self)).0 = true;
        Ok(Flow::Continue)
    }
    fn logging(&self, _session: &mut Session, ctx: &mut RequestCtx) {
        let held = ctx.plugin_states.get_mut::<HoldsSlot>(state_key(self));
        if std::mem::take(&mut held.0) {
            self.now.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// `rewrite`: the path sent upstream, with numbered and named captures.
struct Rewrite {
    regex: Regex,
    replacement: String,
}

impl Plugin for Rewrite {
    fn category(&self) -> &'static str {
        "rewrite (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::UPSTREAM_REQUEST
    }
    fn upstream_request(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let path = session.req_header().uri.path();
        if !self.regex.is_match(path) {
            return Ok(());
        }
        let replacement = expand_outer_vars(&self.replacement, &self.regex, ctx);
        let mut new_path = self.regex.replacen(path, 1, &*replacement).into_owned();
        if let Some(q) = session.req_header().uri.query() {
            new_path.push('?');
            new_path.push_str(q);
        }
        let uri = new_path
            .parse::<http::Uri>()
            .map_err(|_| status_error(500, "rewrite produced an invalid path"))?;
        ctx.upstream_path = Some(uri.path().to_string());
        request.set_uri(uri);
        Ok(())
    }
}

/// `enable_reverse_proxy_headers`: `X-Forwarded-For/-Proto/-Host` and `X-Real-IP`.
struct ForwardedHeaders;

impl Plugin for ForwardedHeaders {
    fn category(&self) -> &'static str {
        "reverse proxy headers (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::UPSTREAM_REQUEST
    }
    fn upstream_request(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            let xff = match request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {peer}"),
                None => peer.to_string(),
            };
            request.insert_header("X-Forwarded-For", xff)?;
        }
        request.insert_header("X-Forwarded-Proto", ctx.scheme())?;
        if let Some(host) = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .cloned()
        {
            request.insert_header("X-Forwarded-Host", host)?;
        }
        if let Some(ip) = ctx.client_ip {
            request.insert_header("X-Real-IP", ip.to_string())?;
        }
        Ok(())
    }
}

/// `proxy_set_headers` (an empty value removes the header) and `proxy_add_headers`.
struct ProxyHeaders {
    set: Vec<HeaderRule>,
    add: Vec<HeaderRule>,
}

impl Plugin for ProxyHeaders {
    fn category(&self) -> &'static str {
        "proxy headers (built-in)"
    }
    fn phases(&self) -> Phases {
        Phases::UPSTREAM_REQUEST
    }
    fn upstream_request(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for h in &self.set {
            match h.value.render(session, ctx) {
                Some(v) => request.insert_header(h.name, v)?,
                None => {
                    request.remove_header(&h.key);
                }
            }
        }
        for h in &self.add {
            if let Some(v) = h.value.render(session, ctx) {
                request.append_header(h.name, v)?;
            }
        }
        Ok(())
    }
}

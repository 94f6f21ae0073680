//! The request path: pingora's `ProxyHttp` phases mapped onto locations, plugins and upstreams.

use crate::ctx::RequestCtx;
use crate::errors::{error_reply, message_for, status_error, status_for};
use crate::location::UpstreamRef;
use crate::plugins::{Flow, Reply};
use crate::snapshot::{ServerRuntime, Snapshot};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use ipnet::IpNet;
use louailink_shared::patterns::HashKey;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The proxy logic of one server (listener group).
pub struct Proxy {
    /// The server's name in the config.
    pub server: Arc<str>,
    /// The live config.
    pub state: Arc<ArcSwap<Snapshot>>,
    /// Listener is TLS.
    pub tls: bool,
}

/// The request host without port, from the absolute URI / `:authority`, else `Host`.
fn request_host(req: &RequestHeader) -> Option<&str> {
    let raw = match req
        .uri
        .host()
        .or_else(|| absolute_form_authority(req.raw_path()))
    {
        Some(h) => h,
        None => req.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// The authority of an absolute-form request target (`GET http://a.com/x HTTP/1.1`), which
/// pingora keeps only in the raw target.
fn absolute_form_authority(target: &[u8]) -> Option<&str> {
    let rest = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = std::str::from_utf8(&rest[..end]).ok()?;
    // Drop any userinfo; it is not part of the host.
    Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

/// Requests whose header block is larger than this get 431 (pingora's own cap is 1 MiB).
const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

/// Approximate size of the request line and headers as received.
fn header_bytes(req: &RequestHeader) -> usize {
    req.raw_path().len()
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// The client IP: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most untrusted address of `X-Forwarded-For`.
fn client_ip(session: &Session, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = session.client_addr()?.as_inet()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// The location's `response` plugins, then its `response_headers`: the same for upstream,
/// plugin and error responses.
fn response_phase(
    session: &mut Session,
    header: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let Some(loc) = ctx.location.clone() else {
        return Ok(());
    };
    for p in &loc.plugins {
        p.response(session, header, ctx)?;
    }
    for h in &loc.response_headers {
        if let Some(v) = h.value.render(session, ctx) {
            header.insert_header(h.name, v)?;
        }
    }
    Ok(())
}

/// Takes the client's `X-Request-Id`, or generates one.
fn set_request_id(session: &Session, ctx: &mut RequestCtx) {
    match session
        .req_header()
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => ctx.request_id.push_str(id),
        None => {
            use std::fmt::Write;
            let _ = write!(ctx.request_id, "{:032x}", fastrand::u128(..));
        }
    }
}

/// A query parameter's value.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The bytes a consistent hash is keyed on.
fn hash_input(key: &HashKey, session: &Session, ctx: &RequestCtx) -> Vec<u8> {
    let req = session.req_header();
    match key {
        HashKey::Ip => ctx
            .client_ip
            .map(|ip| ip.to_string().into_bytes())
            .unwrap_or_default(),
        HashKey::Header(name) => req
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default(),
        HashKey::Cookie(name) => crate::access_log::cookie(session, name)
            .unwrap_or("")
            .as_bytes()
            .to_vec(),
        HashKey::Query(name) => query_param(req.uri.query(), name)
            .unwrap_or("")
            .as_bytes()
            .to_vec(),
        HashKey::Path => req.uri.path().as_bytes().to_vec(),
        HashKey::Url => req
            .uri
            .path_and_query()
            .map_or(req.uri.path(), |p| p.as_str())
            .as_bytes()
            .to_vec(),
    }
}

impl Proxy {
    fn server<'a>(&self, snap: &'a Snapshot) -> Option<&'a ServerRuntime> {
        snap.servers.get(&*self.server)
    }

    /// Writes a reply after the location's response plugins and `response_headers`.
    async fn send_reply(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut reply: Reply,
    ) -> Result<()> {
        response_phase(session, &mut reply.header, ctx)?;
        ctx.status = reply.header.status.as_u16();
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(reply.header), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(reply.body), true).await?;
        }
        Ok(())
    }

    /// Answers with an error status; `Ok(true)` tells pingora the request is done.
    async fn reply_error(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        message: &str,
    ) -> Result<bool> {
        let template = ctx.snapshot.as_ref().and_then(|s| s.error_template.clone());
        let reply = error_reply(session, status, message, template.as_deref())?;
        self.send_reply(session, ctx, reply).await?;
        Ok(true)
    }

    /// Picks a backend for `ctx.upstream`, skipping those that failed.
    fn choose_backend(&self, session: &Session, ctx: &mut RequestCtx) -> bool {
        let Some(up) = ctx.upstream.clone() else {
            return false;
        };
        let key = up
            .hash_key()
            .map(|k| hash_input(k, session, ctx))
            .unwrap_or_default();
        match up.select(&key, &ctx.failed) {
            Some((addr, guard)) => {
                ctx.backend = Some(addr);
                ctx.backend_guard = guard;
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // No pingora modules: compression and the like are our plugins, and an empty module
        // list saves per-request module state.
    }

    fn new_ctx(&self) -> RequestCtx {
        let mut ctx = RequestCtx::new();
        ctx.tls = self.tls;
        ctx
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.start = Instant::now();
        let snap = self.state.load_full();
        ctx.snapshot = Some(snap.clone());
        let Some(server) = self.server(&snap) else {
            return self
                .reply_error(session, ctx, 503, "this server is being reconfigured")
                .await;
        };
        if header_bytes(session.req_header()) > MAX_REQUEST_HEADER_BYTES {
            session.set_keepalive(None);
            return self
                .reply_error(session, ctx, 431, "request header fields too large")
                .await;
        }
        if let Some(t) = server.keepalive_timeout {
            session.set_keepalive(Some(t.as_secs()));
        }
        if crate::server::draining() {
            session.set_keepalive(None);
        }
        if server.read_timeout.is_some() {
            session.set_read_timeout(server.read_timeout);
        }
        if server.write_timeout.is_some() {
            session.set_write_timeout(server.write_timeout);
        }
        let host = request_host(session.req_header());
        if let Some(h) = host {
            ctx.host.push_str(h);
            ctx.host.make_ascii_lowercase();
        }
        ctx.client_ip = client_ip(session, &snap.trusted_proxies);
        let path = session.req_header().uri.path();
        let hit = server.router.find(host.map(|_| ctx.host.as_str()), path);
        let Some(hit) = hit else {
            let msg = format!("no location matches host {:?} path {:?}", ctx.host, path);
            return self.reply_error(session, ctx, 404, &msg).await;
        };
        let loc = server.router.locations[hit.location as usize].clone();
        if loc.needs_captures {
            let path = session.req_header().uri.path();
            loc.captures(hit.host_pattern, &ctx.host, path, &mut ctx.vars);
        }
        if loc.needs_request_id || server.log_uses_request_id {
            set_request_id(session, ctx);
        }
        ctx.host_pattern = hit.host_pattern;
        ctx.location = Some(loc.clone());

        if let Some(max) = loc.client_max_body_size {
            let declared = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                session.set_keepalive(None);
                return self.reply_error(session, ctx, 413, message_for(413)).await;
            }
        }
        if let Some(max) = loc.max_processing {
            if loc.processing.fetch_add(1, Ordering::AcqRel) >= max {
                loc.processing.fetch_sub(1, Ordering::AcqRel);
                return self.reply_error(session, ctx, 429, message_for(429)).await;
            }
            ctx.holds_slot = true;
        }

        for plugin in &loc.plugins {
            if let Flow::Reply(reply) = plugin.request(session, ctx).await? {
                tracing::trace!(plugin = plugin.category(), "plugin answered");
                self.send_reply(session, ctx, *reply).await?;
                return Ok(true);
            }
        }

        let upstream = match &loc.upstream {
            UpstreamRef::Fixed(u) => Some(u.clone()),
            UpstreamRef::Var(v) => ctx
                .var(v)
                .and_then(|name| snap.upstreams.get(name))
                .cloned(),
            UpstreamRef::None => None,
        };
        let Some(upstream) = upstream else {
            return self
                .reply_error(session, ctx, 503, "no upstream for this location")
                .await;
        };
        ctx.upstream = Some(upstream);
        if !self.choose_backend(session, ctx) {
            return self.reply_error(session, ctx, 503, message_for(503)).await;
        }

        for plugin in &loc.plugins {
            if let Flow::Reply(reply) = plugin.proxy_upstream(session, ctx).await? {
                self.send_reply(session, ctx, *reply).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if ctx.backend.is_none() && !self.choose_backend(session, ctx) {
            return Err(status_error(503, "no healthy backend left to retry"));
        }
        match (&ctx.upstream, ctx.backend) {
            (Some(up), Some(addr)) => Ok(up.peer(addr)),
            _ => Err(status_error(503, "no upstream")),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(addr) = ctx.backend.take() {
            ctx.failed.push(addr);
        }
        ctx.backend_guard = None;
        if let Some(loc) = &ctx.location {
            let in_window = loc.max_retry_window.is_none_or(|w| ctx.start.elapsed() < w);
            if ctx.retries < loc.max_retries && in_window {
                ctx.retries += 1;
                e.set_retry(true);
            }
        }
        e
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(chunk), Some(loc)) = (body.as_ref(), ctx.location.as_ref()) {
            ctx.body_bytes += chunk.len() as u64;
            if loc
                .client_max_body_size
                .is_some_and(|max| ctx.body_bytes > max)
            {
                return Err(status_error(413, "request body too large"));
            }
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_connected = Some(Instant::now());
        ctx.connection_reused = reused;
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(loc) = ctx.location.clone() else {
            return Ok(());
        };
        if let Some((re, replacement)) = &loc.rewrite {
            let path = session.req_header().uri.path();
            if re.is_match(path) {
                let replacement = crate::vars::expand_outer_vars(replacement, re, ctx);
                let mut new_path = re.replacen(path, 1, &*replacement).into_owned();
                if let Some(q) = session.req_header().uri.query() {
                    new_path.push('?');
                    new_path.push_str(q);
                }
                let uri = new_path
                    .parse::<http::Uri>()
                    .map_err(|_| status_error(500, "rewrite produced an invalid path"))?;
                ctx.upstream_path = Some(uri.path().to_string());
                upstream_request.set_uri(uri);
            }
        }
        if loc.reverse_proxy_headers {
            let peer = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip());
            if let Some(peer) = peer {
                let xff = match upstream_request
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(prev) => format!("{prev}, {peer}"),
                    None => peer.to_string(),
                };
                upstream_request.insert_header("X-Forwarded-For", xff)?;
            }
            upstream_request.insert_header("X-Forwarded-Proto", ctx.scheme())?;
            if let Some(host) = session
                .req_header()
                .headers
                .get(http::header::HOST)
                .cloned()
            {
                upstream_request.insert_header("X-Forwarded-Host", host)?;
            }
            if let Some(ip) = ctx.client_ip {
                upstream_request.insert_header("X-Real-IP", ip.to_string())?;
            }
        }
        if ctx.upstream.as_ref().is_some_and(|u| u.no_reuse()) {
            upstream_request.insert_header(http::header::CONNECTION, "close")?;
        }
        for h in &loc.proxy_set_headers {
            match h.value.render(session, ctx) {
                Some(v) => upstream_request.insert_header(h.name, v)?,
                None => {
                    upstream_request.remove_header(&h.key);
                }
            }
        }
        for h in &loc.proxy_add_headers {
            if let Some(v) = h.value.render(session, ctx) {
                upstream_request.append_header(h.name, v)?;
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_responded = Some(Instant::now());
        ctx.upstream_status = upstream_response.status.as_u16();
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response_phase(session, resp, ctx)
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(loc) = ctx.location.clone() {
            for p in &loc.plugins {
                p.response_body(session, body, end_of_stream, ctx)?;
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let status = status_for(e);
        if status > 0 && session.response_written().is_none() {
            // pingora will not reuse this connection: say so instead of promising keep-alive.
            session.set_keepalive(None);
            let message = match e.etype() {
                pingora::ErrorType::HTTPStatus(_) => {
                    e.context.as_ref().map(|c| c.as_str().to_string())
                }
                _ => None,
            }
            .unwrap_or_else(|| message_for(status).to_string());
            if let Err(err) = self.reply_error(session, ctx, status, &message).await {
                tracing::debug!(error = %err, "could not send the error response");
            }
        }
        ctx.status = status;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.holds_slot {
            if let Some(loc) = &ctx.location {
                loc.processing.fetch_sub(1, Ordering::AcqRel);
            }
            ctx.holds_slot = false;
        }
        ctx.backend_guard = None;
        if let Some(snap) = &ctx.snapshot {
            if let Some(log) = self.server(snap).and_then(|s| s.access_log.as_ref()) {
                log.log(session, ctx);
            }
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        // Client-side hiccups (closed connections, bad requests) are not server errors.
        matches!(e.esource(), pingora::ErrorSource::Downstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "Example.com:8080").unwrap();
        assert_eq!(request_host(&req), Some("Example.com"));
        req.insert_header("Host", "[::1]:80").unwrap();
        assert_eq!(request_host(&req), Some("::1"));
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.set_uri("http://abs.com:81/x".parse().unwrap());
        assert_eq!(request_host(&req), Some("abs.com"));
        assert_eq!(
            absolute_form_authority(b"http://u@abs.com:81/x?y"),
            Some("abs.com:81")
        );
        assert_eq!(absolute_form_authority(b"/x"), None);
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&b=2"), "b"), Some("2"));
        assert_eq!(query_param(Some("a=1"), "c"), None);
    }
}

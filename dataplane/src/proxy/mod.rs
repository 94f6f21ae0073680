//! The request path: pingora's `ProxyHttp` phases, each dispatched to the server (routing,
//! client timeouts), the matched location's plugin [`Chain`](crate::plugins::Chain) and the
//! upstream. What a request does beyond that lives in the plugins.

mod ctx;
mod exchange;
mod upstream_request;

pub use ctx::ProxyCtx;

use crate::conn::Deadlined;
use crate::counters::PROCESS;
use crate::plugins::Flow;
use crate::request::inspect::{
    client_ip, ensure_request_id, header_bytes, request_host, MAX_REQUEST_HEADER_BYTES,
};
use crate::request::path::normalize;
use crate::request::reply::{error_reply, message_for, status_error, status_for, Reply};
use crate::request::stream::write_body;
use crate::request::strict;
use crate::runtime::location::UpstreamRef;
use crate::runtime::snapshot::{ServerRuntime, Snapshot};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::TransportConnector;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Set when the process hands over its sockets: responses then say `Connection: close`, so
/// busy keep-alive clients move to the new process before pingora drops idle connections.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// From now on, ask every client to close its connection after the response.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Relaxed);
}

/// Which upstream exchange carries the requests that LouAILink's own can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// LouAILink's own straight-sequence exchange (HTTP/1.1 backends, no upgrade).
    Own,
    /// pingora's `proxy_to_upstream` for every request.
    Pingora,
}

impl Exchange {
    /// The environment variable that forces pingora's path (`pingora`), for tests and as an
    /// escape hatch.
    pub const ENV: &'static str = "LOUAILINK_UPSTREAM_EXCHANGE";

    /// The exchange chosen by [`Self::ENV`] (own unless it says `pingora`).
    pub fn from_env() -> Self {
        match std::env::var(Self::ENV).as_deref() {
            Ok("pingora") => Exchange::Pingora,
            _ => Exchange::Own,
        }
    }
}

/// The proxy logic of one server (listener group).
pub struct Proxy {
    /// The server's name in the config.
    pub server: Arc<str>,
    /// The live config.
    pub state: Arc<ArcSwap<Snapshot>>,
    /// Listener is TLS.
    pub tls: bool,
    /// Which exchange carries HTTP/1.1 upstream requests.
    pub exchange: Exchange,
    /// Connects to backends for the own exchange (TCP, TLS).
    pub connector: TransportConnector,
}

/// Replaces the request's path (keeping its query, and scheme and authority if absolute).
fn set_path(session: &mut Session, path: &str) -> Result<()> {
    let uri = &session.req_header().uri;
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| status_error(400, "the normalised path is not a valid URI"))?,
    );
    let uri = http::Uri::from_parts(parts)
        .map_err(|_| status_error(400, "the normalised path is not a valid URI"))?;
    session.req_header_mut().set_uri(uri);
    Ok(())
}

/// The client stream's header clock (h1 only: h2 streams share one connection).
fn deadlined(session: &Session) -> Option<&Deadlined> {
    session
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<Deadlined>())
}

impl Proxy {
    /// Whether LouAILink's own exchange carries this request: an HTTP/1.1 backend, and no
    /// upgrade or tunnel (those take pingora's path).
    fn own_exchange_carries(&self, session: &Session, ctx: &ProxyCtx) -> bool {
        self.exchange == Exchange::Own
            && ctx
                .req
                .upstream
                .as_ref()
                .is_some_and(|u| u.speaks_h1_only())
            && !session.is_upgrade_req()
            && !session
                .req_header()
                .headers
                .contains_key(http::header::UPGRADE)
            && session.req_header().method != http::Method::CONNECT
    }

    fn server<'a>(&self, snap: &'a Snapshot) -> Option<&'a ServerRuntime> {
        snap.servers.get(&*self.server)
    }

    /// Writes a reply after the location's `response` phase; its body (a streamed one chunk by
    /// chunk) passes the `response_body` phase, so a plugin that changed the header for it
    /// (compression) also changes the body.
    async fn send_reply(
        &self,
        session: &mut Session,
        ctx: &mut ProxyCtx,
        mut reply: Reply,
    ) -> Result<()> {
        if let Some(loc) = &ctx.location {
            loc.chain
                .response(session, &mut reply.header, &mut ctx.req)?;
        }
        ctx.req.status = reply.header.status.as_u16();
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(reply.header), head_only)
            .await?;
        if !head_only {
            let (location, req) = (&ctx.location, &mut ctx.req);
            write_body(
                session,
                reply.body,
                reply.stream,
                |s, chunk, end| match location {
                    Some(loc) => loc.chain.response_body(s, chunk, end, req),
                    None => Ok(()),
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Answers with an error status; `Ok(true)` tells pingora the request is done.
    async fn reply_error(
        &self,
        session: &mut Session,
        ctx: &mut ProxyCtx,
        status: u16,
        message: &str,
    ) -> Result<bool> {
        let template = ctx.snapshot.as_ref().and_then(|s| s.error_template.clone());
        let reply = error_reply(session, status, message, template.as_deref())?;
        self.send_reply(session, ctx, reply).await?;
        Ok(true)
    }

    /// Answers as a plugin decided; `Ok(false)` when it let the request go on.
    async fn answer(&self, session: &mut Session, ctx: &mut ProxyCtx, flow: Flow) -> Result<bool> {
        match flow {
            Flow::Continue => Ok(false),
            Flow::Reply(reply) => {
                self.send_reply(session, ctx, *reply).await?;
                Ok(true)
            }
            Flow::Error(status, message) => self.reply_error(session, ctx, status, &message).await,
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ProxyCtx;

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // No pingora modules: compression and the like are our plugins, and an empty module
        // list saves per-request module state.
    }

    fn new_ctx(&self) -> ProxyCtx {
        ProxyCtx::new(self.tls)
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut ProxyCtx) -> Result<()> {
        if let Some(stream) = deadlined(session) {
            stream.header_done();
        }
        // Answer pipelined HTTP/1.1 requests in order (RFC 9112 9.3.2) instead of dropping
        // the connection after the first; pingora carries the flag to the next request.
        session.set_pipelining_enabled(true);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut ProxyCtx) -> Result<bool> {
        ctx.req.start = Instant::now();
        PROCESS.begin();
        ctx.counting = true;
        let snap = self.state.load_full();
        ctx.snapshot = Some(snap.clone());
        let Some(server) = self.server(&snap) else {
            session.set_keepalive(None);
            return self
                .reply_error(session, ctx, 503, "this server is being reconfigured")
                .await;
        };
        // pingora turns keep-alive on ("forever") for every HTTP/1.1 request that does not say
        // `Connection: close`: bound it by the server's timeout, never turn it on. On h1 the
        // connection wrapper bounds the wait with one timer it reuses, so pingora is told
        // "forever" (`Some(0)`) and registers no timer of its own for every request.
        if session.get_keepalive().is_some() {
            let keepalive = match server.keepalive {
                Some(_) if deadlined(session).is_some() => Some(0),
                other => other,
            };
            session.set_keepalive(keepalive);
        }
        if DRAINING.load(Ordering::Relaxed) {
            session.set_keepalive(None);
        }
        session.set_read_timeout(Some(server.read_timeout));
        session.set_write_timeout(Some(server.write_timeout));
        if header_bytes(session.req_header()) > MAX_REQUEST_HEADER_BYTES {
            session.set_keepalive(None);
            return self
                .reply_error(session, ctx, 431, "request header fields too large")
                .await;
        }
        if let Err(refused) = strict::check(session.req_header()) {
            session.set_keepalive(None);
            return self
                .reply_error(session, ctx, refused.status, refused.message)
                .await;
        }
        let has_host = match request_host(session.req_header()) {
            Some(h) => {
                ctx.req.host.push_str(h);
                ctx.req.host.make_ascii_lowercase();
                true
            }
            None => false,
        };
        if server.normalize_path {
            let normal = normalize(session.req_header().uri.path())
                .map(|p| matches!(p, Cow::Owned(_)).then(|| p.into_owned()));
            match normal {
                Ok(None) => {}
                Ok(Some(path)) => set_path(session, &path)?,
                Err(bad) => {
                    session.set_keepalive(None);
                    return self.reply_error(session, ctx, 400, bad.message()).await;
                }
            }
        }
        let req = &mut ctx.req;
        req.client_ip = client_ip(session, &snap.trusted_proxies);
        let path = session.req_header().uri.path();
        let hit = server
            .router
            .find(has_host.then_some(req.host.as_str()), path);
        let Some(hit) = hit else {
            let msg = format!("no location matches host {:?} path {:?}", req.host, path);
            return self.reply_error(session, ctx, 404, &msg).await;
        };
        let loc = server.router.locations[hit.location as usize].clone();
        if loc.needs_captures {
            loc.captures(hit.host_pattern, &req.host, path, &mut req.vars);
        }
        if server.log_uses_request_id {
            ensure_request_id(session, req);
        }
        req.location = Some(loc.name.clone());
        req.prefix_len = loc.prefix_len;
        // Counted begun here, ended with the process's count (`end_count`).
        loc.counters.begin();
        ctx.location = Some(loc.clone());

        let flow = loc.chain.request(session, &mut ctx.req).await?;
        if self.answer(session, ctx, flow).await? {
            return Ok(true);
        }

        let upstream = loc
            .chain
            .upstream(session, &mut ctx.req)
            .or_else(|| match &loc.upstream {
                UpstreamRef::Fixed(u) => Some(u.clone()),
                UpstreamRef::Var(v) => ctx
                    .req
                    .var(v)
                    .and_then(|name| snap.upstreams.get(name))
                    .cloned(),
                UpstreamRef::None => None,
            });
        let Some(upstream) = upstream else {
            return self
                .reply_error(session, ctx, 503, "no upstream for this location")
                .await;
        };
        ctx.req.upstream = Some(upstream);
        if !ctx.choose_backend(session) {
            return self.reply_error(session, ctx, 503, message_for(503)).await;
        }

        let flow = loc.chain.proxy_upstream(session, &mut ctx.req).await?;
        if self.answer(session, ctx, flow).await? {
            return Ok(true);
        }
        if self.own_exchange_carries(session, ctx) {
            exchange::run(&self.connector, session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut ProxyCtx,
    ) -> Result<Box<HttpPeer>> {
        if ctx.req.backend.is_none() && !ctx.choose_backend(session) {
            return Err(status_error(503, "no healthy backend left to retry"));
        }
        match (&ctx.req.upstream, ctx.req.backend) {
            (Some(up), Some(addr)) => Ok(up.peer(addr)),
            _ => Err(status_error(503, "no upstream")),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut ProxyCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if ctx.connect_failed() {
            e.set_retry(true);
        }
        e
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        match &ctx.location {
            Some(loc) => loc
                .chain
                .request_body(session, body, end_of_stream, &mut ctx.req),
            None => Ok(()),
        }
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        ctx.req.upstream_connected = Some(Instant::now());
        ctx.req.connection_reused = reused;
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        if ctx.req.upstream.as_ref().is_some_and(|u| u.no_reuse()) {
            upstream_request.insert_header(http::header::CONNECTION, "close")?;
        }
        match &ctx.location {
            Some(loc) => loc
                .chain
                .upstream_request(session, upstream_request, &mut ctx.req),
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        ctx.req.upstream_responded = Some(Instant::now());
        ctx.req.upstream_status = upstream_response.status.as_u16();
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        match &ctx.location {
            Some(loc) => loc.chain.response(session, resp, &mut ctx.req),
            None => Ok(()),
        }
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(loc) = &ctx.location {
            loc.chain
                .response_body(session, body, end_of_stream, &mut ctx.req)?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut ProxyCtx,
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
        ctx.req.status = status;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut ProxyCtx) {
        if let Some(stream) = deadlined(session) {
            stream.between_requests();
        }
        if let Some(loc) = &ctx.location {
            loc.chain.logging(session, &mut ctx.req);
        }
        ctx.backend_guard = None;
        let status = session
            .response_written()
            .map_or(ctx.req.status, |r| r.status.as_u16());
        ctx.end_count(status);
        if let Some(snap) = &ctx.snapshot {
            if let Some(log) = self.server(snap).and_then(|s| s.access_log.as_ref()) {
                log.log(session, &ctx.req);
            }
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &ProxyCtx, e: &Error) -> bool {
        // Client-side hiccups (closed connections, bad requests) are not server errors.
        matches!(e.esource(), pingora::ErrorSource::Downstream)
    }
}

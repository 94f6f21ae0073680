//! LouAILink's own upstream exchange for the common case: HTTP/1.1 to the backend (plain or
//! TLS) from an HTTP/1.1 or HTTP/2 client. One straight sequence on the request's task — write
//! the request head, stream the request body, read the response head, run the response
//! phases, stream the body chunk by chunk as it arrives, return the connection to the pool —
//! on pingora's connector and HTTP/1 client, with no task or channel per request (while it
//! waits for the backend, one biased select also watches whether the client left).
//! Upgrades and h2 backends take pingora's proxy path (decided in `request_filter`).

use super::ctx::ProxyCtx;
use super::upstream_request;
use crate::request::reply::status_error;
use crate::runtime::location::Location;
use crate::upstream::Upstream;
use bytes::Bytes;
use pingora::connectors::TransportConnector;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::{Error, ErrorType, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a backend may take to answer `Expect: 100-continue` before the body is sent
/// anyway (a backend that ignores `Expect` would otherwise wait for a body that never comes).
const EXPECT_WAIT: Duration = Duration::from_secs(1);

/// The most request body kept to replay on a fresh connection when a reused one turns out
/// to be closed (pingora's proxy path keeps as much).
const REPLAY_LIMIT: usize = 64 * 1024;

/// The request body sent so far, kept while small enough to send again.
#[derive(Default)]
struct Replay {
    chunks: Vec<Bytes>,
    len: usize,
    /// More was sent than kept: the body cannot be replayed.
    truncated: bool,
    /// The whole body was read from the client.
    done: bool,
}

impl Replay {
    fn keep(&mut self, chunk: &Bytes) {
        self.len += chunk.len();
        if self.len > REPLAY_LIMIT {
            self.truncated = true;
            self.chunks = Vec::new();
        } else if !self.truncated {
            self.chunks.push(chunk.clone());
        }
    }
}

/// Proxies the request to the chosen backend and writes the response to the client.
pub(super) async fn run(
    connector: &TransportConnector,
    session: &mut Session,
    ctx: &mut ProxyCtx,
) -> Result<()> {
    let (Some(up), Some(loc)) = (ctx.req.upstream.clone(), ctx.location.clone()) else {
        return Err(status_error(503, "no upstream for this location"));
    };
    let has_body = !session.is_body_empty();
    let mut replay = Replay::default();
    let mut fresh_only = up.no_reuse();
    let (mut client, addr, sent_whole) = loop {
        let Some(addr) = ctx.req.backend else {
            if ctx.choose_backend(session) {
                continue;
            }
            return Err(status_error(503, "no healthy backend left to retry"));
        };
        let pooled = if fresh_only { None } else { up.pool.take(addr) };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => match connector.new_stream(&*up.peer(addr)).await {
                Ok(s) => s,
                Err(e) if ctx.connect_failed() => {
                    tracing::debug!(backend = %addr, error = %e, "connect failed, trying another backend");
                    continue;
                }
                Err(e) => return Err(e.into_up()),
            },
        };
        ctx.req.upstream_connected = Some(Instant::now());
        ctx.req.connection_reused = reused;
        let mut client = HttpSession::new(stream);
        (client.read_timeout, client.write_timeout) = up.io_timeouts();
        match send(session, ctx, &loc, &up, &mut client, has_body, &mut replay).await {
            Ok(sent_whole) => break (client, addr, sent_whole),
            // A pooled connection the backend had closed: once more on a new one, if the
            // body (if any) can be sent again.
            Err(e) if reused && closed_before_answer(&e) && can_replay(has_body, &replay) => {
                tracing::debug!(backend = %addr, error = %e, "pooled connection was closed, retrying on a new one");
                fresh_only = true;
            }
            Err(e) => return Err(e),
        }
    };
    respond(session, ctx, &loc, &mut client).await?;
    client.respect_keepalive();
    if sent_whole && !up.no_reuse() {
        if let Some(stream) = client.reuse().await {
            up.pool.put(addr, stream);
        }
    }
    Ok(())
}

/// Whether a request may be sent again after its connection failed.
fn can_replay(has_body: bool, replay: &Replay) -> bool {
    !has_body || replay.len == 0 || replay.done && !replay.truncated
}

/// The failure of a reused connection that the backend closed while it was idle: nothing
/// was answered on it, so the request did not reach the application.
fn closed_before_answer(e: &Error) -> bool {
    matches!(e.retry, RetryType::ReusedOnly)
        || matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ConnectionClosed
        )
}

/// Sends the request head and body and reads the final response head. `false`: the backend
/// answered `Expect: 100-continue` with a final status, so the body was not sent (and the
/// connection cannot carry another request).
async fn send(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    loc: &Arc<Location>,
    up: &Upstream,
    client: &mut HttpSession,
    has_body: bool,
    replay: &mut Replay,
) -> Result<bool> {
    let mut req = upstream_request::build(session.req_header())?;
    if up.no_reuse() {
        req.insert_header(http::header::CONNECTION, "close")?;
    }
    loc.chain
        .upstream_request(session, &mut req, &mut ctx.req)?;
    upstream_request::frame(&mut req, has_body)?;
    let expect = has_body && expects_continue(&req);
    client
        .write_request_header(req)
        .await
        .map_err(|e| e.into_up())?;
    if expect && !replay.done {
        // The backend may refuse before the body is sent; its answer, if any, decides.
        match tokio::time::timeout(EXPECT_WAIT, client.read_response()).await {
            Ok(Ok(_)) => {
                if !relay_informational(session, client).await? {
                    // A final answer: the client's body is not read, so the client
                    // connection cannot be reused.
                    session.set_keepalive(None);
                    return Ok(false);
                }
            }
            Ok(Err(e)) => return Err(e.into_up()),
            Err(_) => {}
        }
    }
    if has_body {
        send_body(session, ctx, loc, client, replay).await?;
    }
    read_final_head(session, client).await?;
    Ok(true)
}

/// Streams the request body: each chunk read from the client passes the `request_body`
/// phase and is written to the backend at once (or the kept body, on a retry).
async fn send_body(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    loc: &Arc<Location>,
    client: &mut HttpSession,
    replay: &mut Replay,
) -> Result<()> {
    if replay.done {
        for chunk in &replay.chunks {
            client.write_body(chunk).await.map_err(|e| e.into_up())?;
        }
    } else {
        loop {
            let data = session
                .read_request_body()
                .await
                .map_err(|e| e.into_down())?;
            let end = data.is_none() || session.is_body_done();
            let mut data = data;
            loc.chain
                .request_body(session, &mut data, end, &mut ctx.req)?;
            if let Some(chunk) = data.filter(|c| !c.is_empty()) {
                replay.keep(&chunk);
                client.write_body(&chunk).await.map_err(|e| e.into_up())?;
            }
            if end {
                replay.done = true;
                break;
            }
        }
    }
    client.finish_body().await.map_err(|e| e.into_up())?;
    Ok(())
}

/// Reads response heads until the final one, passing informational ones (103, 100) on.
async fn read_final_head(session: &mut Session, client: &mut HttpSession) -> Result<()> {
    // After `Expect`, a 100 may already be read and passed on.
    if client
        .resp_header()
        .is_none_or(|h| h.status.is_informational())
    {
        unless_client_gone(session, client.read_response()).await?;
    }
    while relay_informational(session, client).await? {
        unless_client_gone(session, client.read_response()).await?;
    }
    Ok(())
}

/// Passes an informational response head to the client; `false` if the head is final.
async fn relay_informational(session: &mut Session, client: &HttpSession) -> Result<bool> {
    let Some(head) = client.resp_header() else {
        return Ok(false);
    };
    match head.status.as_u16() {
        101 => Err(Error::explain(
            ErrorType::InvalidHTTPHeader,
            "101 Switching Protocols to a request that did not ask to upgrade",
        )
        .into_up()),
        100..=199 => {
            session
                .write_response_header(Box::new(head.clone()), false)
                .await
                .map_err(|e| e.into_down())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Runs the response phases on the final head and streams the body to the client.
async fn respond(
    session: &mut Session,
    ctx: &mut ProxyCtx,
    loc: &Arc<Location>,
    client: &mut HttpSession,
) -> Result<()> {
    let mut head = response_head(session, client)?;
    ctx.req.upstream_responded = Some(Instant::now());
    ctx.req.upstream_status = head.status.as_u16();
    let mut end = client.is_body_done();
    loc.chain.response(session, &mut head, &mut ctx.req)?;
    session
        .write_response_header(head, end)
        .await
        .map_err(|e| e.into_down())?;
    while !end {
        let mut data = unless_client_gone(session, client.read_body_bytes()).await?;
        end = data.is_none() || client.is_body_done();
        loc.chain
            .response_body(session, &mut data, end, &mut ctx.req)?;
        session
            .write_response_body(data, end)
            .await
            .map_err(|e| e.into_down())?;
    }
    Ok(())
}

/// The final response head for the client: a body of unknown length (HTTP/1.0 style, until
/// the backend closes) goes to the client chunked, so its connection can stay open.
fn response_head(session: &Session, client: &mut HttpSession) -> Result<Box<ResponseHeader>> {
    let end = client.is_body_done();
    let Some(head) = client.resp_header() else {
        return Err(Error::explain(ErrorType::InvalidHTTPHeader, "no response head").into_up());
    };
    let mut head = Box::new(head.clone());
    let bodiless = session.req_header().method == http::Method::HEAD
        || matches!(head.status.as_u16(), 204 | 304);
    if !bodiless
        && !end
        && !head.headers.contains_key(http::header::TRANSFER_ENCODING)
        && !head.headers.contains_key(http::header::CONTENT_LENGTH)
    {
        head.set_version(http::Version::HTTP_11);
        head.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(head)
}

/// Waits for the backend (`op`) while watching the client: a client that closes its
/// connection (or resets its h2 stream) ends the exchange at once, as pingora's path and
/// nginx do, instead of holding the backend busy for an answer nobody reads. The watch is
/// a read of at most one byte, once the request body is read; a pipelined next request's
/// first byte is kept for it by pingora.
async fn unless_client_gone<T>(
    session: &mut Session,
    op: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if !session.is_body_done() {
        return op.await.map_err(|e| e.into_up());
    }
    tokio::pin!(op);
    loop {
        tokio::select! {
            biased;
            done = &mut op => return done.map_err(|e| e.into_up()),
            gone = session.read_body_or_idle(true) => {
                if let Err(e) = gone {
                    return Err(e.into_down());
                }
            }
        }
    }
}

/// `Expect: 100-continue` on the request.
fn expects_continue(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

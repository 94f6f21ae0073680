//! A client stream with a deadline on the request header (`client_header_timeout`).
//!
//! pingora 0.9 times each *read* of a request header (60 s, or the keep-alive timeout), never the
//! header as a whole, so a client sending one byte per second is never cut. Its API has no hook
//! between accepting a connection and parsing a header, so the deadline lives in the stream
//! pingora reads from: [`Deadlined`] wraps the accepted stream and, while a header is being read,
//! races every read that has to wait against one timer (set at the header's first wait, so a
//! header that arrives whole costs no timer). The proxy tells it where a header ends
//! ([`Deadlined::header_done`], in `early_request_filter`) and where the next one may begin
//! ([`Deadlined::between_requests`], in `logging`); it reaches the wrapper through
//! `Session::stream()` and a downcast. Between requests the clock waits for the first byte of
//! the next request (the idle time is the keep-alive timeout's business).

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Reading a header: the deadline applies.
const RUNNING: u8 = 0;
/// Between requests: the clock starts at the next byte.
const WAITING: u8 = 1;
/// Reading a body or writing a response (or h2): the per-read/write timeouts apply.
const STOPPED: u8 = 2;
/// The deadline passed: every read is end-of-stream.
const EXPIRED: u8 = 3;
/// [`Deadlined::armed_for`] when the timer is set for no phase.
const UNARMED: u8 = u8::MAX;

/// Sent when a client that had started a header runs out of time (best effort: never waited for).
const TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// An accepted client stream whose request headers must arrive within a deadline.
pub struct Deadlined {
    inner: Stream,
    phase: AtomicU8,
    limit: Duration,
    /// Longest wait for the next request between requests (`keepalive_timeout`).
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// The phase `timer` is set for ([`RUNNING`]: this header; [`WAITING`]: this idle wait).
    armed_for: u8,
    /// Bytes of the current header arrived (so a 408 is owed, not a silent close).
    started: bool,
    /// Bytes read by [`Peek::try_peek`], served again by the next reads.
    peeked: Vec<u8>,
}

impl Deadlined {
    /// Wraps `inner`; a header must be complete within `header` of its first wait, and a
    /// kept-alive connection may wait `idle` for the next request. A TLS stream that
    /// negotiated h2 gets neither (h2 has its own framing and timeouts).
    pub fn new(inner: Stream, header: Duration, idle: Duration) -> Self {
        let phase = match inner.selected_alpn_proto() {
            Some(ALPN::H2) => STOPPED,
            _ => RUNNING,
        };
        Deadlined {
            inner,
            phase: AtomicU8::new(phase),
            limit: header,
            idle,
            timer: Box::pin(tokio::time::sleep(header)),
            armed_for: UNARMED,
            started: false,
            peeked: Vec::new(),
        }
    }

    /// The request header was read: stop the clock.
    pub fn header_done(&self) {
        self.phase.store(STOPPED, Ordering::Relaxed);
    }

    /// The request is over: the next header's clock starts with its first byte.
    pub fn between_requests(&self) {
        let _ = self
            .phase
            .compare_exchange(STOPPED, WAITING, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The deadline passed: owe the client a 408 if it had started a request, then end.
    fn expire(&mut self, cx: &mut Context<'_>) {
        self.phase.store(EXPIRED, Ordering::Relaxed);
        if self.started {
            // One non-blocking attempt: a client too slow to send is not waited for to read.
            let inner = Pin::new(&mut self.inner);
            if let Poll::Ready(Ok(_)) = inner.poll_write(cx, TIMEOUT_RESPONSE) {
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
        }
    }
}

impl AsyncRead for Deadlined {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut phase = this.phase.load(Ordering::Relaxed);
        if phase == EXPIRED {
            return Poll::Ready(Ok(()));
        }
        if !this.peeked.is_empty() {
            let n = this.peeked.len().min(buf.remaining());
            buf.put_slice(&this.peeked[..n]);
            this.peeked.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if phase == WAITING {
                    this.phase.store(RUNNING, Ordering::Relaxed);
                    this.armed_for = UNARMED;
                    phase = RUNNING;
                }
                this.started |= phase == RUNNING;
                polled
            }
            // A header waiting for more bytes, or a kept-alive connection waiting for the next
            // request: only now is the clock needed. A header that arrives whole (nearly every
            // one) never touches the timer, so its deadline runs from its first wait rather
            // than its first byte, a read's worth later.
            Poll::Pending if phase == RUNNING || phase == WAITING => {
                if this.armed_for != phase {
                    this.armed_for = phase;
                    let limit = if phase == RUNNING {
                        this.limit
                    } else {
                        this.idle
                    };
                    this.timer.as_mut().reset(Instant::now() + limit);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    if phase == RUNNING {
                        this.expire(cx);
                    } else {
                        // Idle past keepalive_timeout: closed quietly, as nginx does.
                        this.phase.store(EXPIRED, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            _ => polled,
        }
    }
}

impl AsyncWrite for Deadlined {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Peek for Deadlined {
    /// pingora peeks for the h2c preface with a blocking `read_exact`; done here through our
    /// own reads, the peek is under the header deadline too, and the bytes are served again.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        use tokio::io::AsyncReadExt;
        let mut got = std::mem::take(&mut self.peeked);
        let mut filled = got.len().min(buf.len());
        buf[..filled].copy_from_slice(&got[..filled]);
        if filled == buf.len() {
            // Already peeked that much: keep every peeked byte for the reads.
            self.peeked = got;
            return Ok(true);
        }
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
        }
        got.truncate(0);
        got.extend_from_slice(buf);
        self.peeked = got;
        if buf.starts_with(b"PRI * HTTP/2.0") {
            // h2 prior knowledge: the h2 layer has its own timeouts.
            self.header_done();
        }
        Ok(true)
    }
}

#[async_trait]
impl Shutdown for Deadlined {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Deadlined {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadlined {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Deadlined {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Deadlined {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Deadlined {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

impl std::fmt::Debug for Deadlined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlined")
            .field("inner", &self.inner)
            .field("phase", &self.phase.load(Ordering::Relaxed))
            .finish()
    }
}

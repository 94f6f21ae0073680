//! The connection gate of one server: `max_connections`, and the header deadline put on
//! every accepted stream ([`Deadlined`]).
//!
//! pingora's listener accepts without limit, so past the open-file limit `accept()` fails and
//! clients wait in the backlog while the upstream side cannot open sockets either. [`Gate`]
//! wraps the proxy's `ServerApp`: it counts the connections it runs (one atomic per server),
//! and closes a new one at once when the count is at the limit, before it costs more than the
//! accepted descriptor. Limits are read per connection, so a reload changes them.

use crate::conn::deadline::Deadlined;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a server allows a client connection, as of now.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Total time for a request header.
    pub header_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection (`keepalive_timeout`).
    pub idle_timeout: Duration,
}

/// Where the gate reads the current limits (the live config).
pub trait LimitSource: Send + Sync {
    /// The limits for a connection accepted now.
    fn limits(&self) -> ConnLimits;
}

/// A `ServerApp` in front of `A` that enforces [`ConnLimits`].
pub struct Gate<A> {
    inner: Arc<A>,
    source: Box<dyn LimitSource>,
    open: AtomicUsize,
}

impl<A> Gate<A> {
    /// Gates `inner` with the limits `source` gives.
    pub fn new(inner: A, source: Box<dyn LimitSource>) -> Self {
        Gate {
            inner: Arc::new(inner),
            source,
            open: AtomicUsize::new(0),
        }
    }
}

/// One counted connection; uncounted when dropped, however the connection ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = self.source.limits();
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        let _slot = Slot(&self.open);
        if before >= limits.max_connections {
            // Dropping the stream closes it: the client learns at once instead of hanging.
            return None;
        }
        let stream: Stream = Box::new(Deadlined::new(
            stream,
            limits.header_timeout,
            limits.idle_timeout,
        ));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// `max_connections` when the config has none: half the open-file limit, leaving the other
/// half for upstream connections, logs and the config (at least 16, at most 65,536 without
/// a limit).
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return 65_536;
    }
    usize::try_from(lim.rlim_cur / 2).map_or(65_536, |n| n.max(16))
}

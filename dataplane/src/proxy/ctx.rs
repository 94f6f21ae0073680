//! The per-request context of the proxy: the request's state, and the parts of the snapshot
//! it runs on (kept here so that nothing below the snapshot needs to know them).

use crate::counters::PROCESS;
use crate::request::ctx::RequestCtx;
use crate::request::vars::hash_input;
use crate::runtime::location::Location;
use crate::runtime::snapshot::Snapshot;
use crate::upstream::UpstreamGuard;
use pingora_proxy::Session;
use std::net::SocketAddr;
use std::sync::Arc;

/// pingora's per-request context.
pub struct ProxyCtx {
    /// What plugins, variables and the access log read.
    pub req: RequestCtx,
    /// The snapshot this request started on; it finishes on it.
    pub(super) snapshot: Option<Arc<Snapshot>>,
    /// The matched location.
    pub(super) location: Option<Arc<Location>>,
    /// Backends that failed to connect, not to be tried again.
    pub(super) failed: Vec<SocketAddr>,
    /// Connect retries done.
    pub(super) retries: u32,
    /// In-flight accounting of the chosen backend (least_conn).
    pub(super) backend_guard: Option<UpstreamGuard>,
    /// The request was counted as begun and its end is not counted yet.
    pub(super) counting: bool,
}

impl ProxyCtx {
    /// Counts the request's end with `status` (0: no response), once, in the process's and
    /// the matched location's counters.
    pub(super) fn end_count(&mut self, status: u16) {
        if std::mem::take(&mut self.counting) {
            PROCESS.end(status);
            if let Some(loc) = &self.location {
                loc.counters.end(status);
            }
        }
    }
}

impl ProxyCtx {
    /// A context for a new request on a listener (`tls`: it is a TLS one).
    pub(super) fn new(tls: bool) -> Self {
        ProxyCtx {
            req: RequestCtx::new(tls),
            snapshot: None,
            location: None,
            failed: Vec::new(),
            retries: 0,
            backend_guard: None,
            counting: false,
        }
    }

    /// Picks a backend of the chosen upstream, skipping those that failed.
    pub(super) fn choose_backend(&mut self, session: &Session) -> bool {
        let Some(up) = self.req.upstream.clone() else {
            return false;
        };
        let key = up
            .hash_key()
            .map(|k| hash_input(k, session, &self.req))
            .unwrap_or_default();
        match up.select(key.as_bytes(), &self.failed) {
            Some((addr, guard)) => {
                self.req.backend = Some(addr);
                self.backend_guard = guard;
                true
            }
            None => false,
        }
    }

    /// The chosen backend failed to connect: it is not tried again. Whether the location
    /// allows one more attempt (on another backend), counted as done.
    pub(super) fn connect_failed(&mut self) -> bool {
        if let Some(addr) = self.req.backend.take() {
            self.failed.push(addr);
        }
        self.backend_guard = None;
        let Some(loc) = &self.location else {
            return false;
        };
        let in_window = loc
            .max_retry_window
            .is_none_or(|w| self.req.start.elapsed() < w);
        let retry = self.retries < loc.max_retries && in_window;
        if retry {
            self.retries += 1;
        }
        retry
    }
}

impl Drop for ProxyCtx {
    /// A request dropped before its logging phase still ends its count.
    fn drop(&mut self) {
        self.end_count(0);
    }
}

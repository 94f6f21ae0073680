//! Per-request state shared by the proxy phases, the plugins and the access log.

use crate::location::Location;
use crate::snapshot::Snapshot;
use crate::upstream::{Upstream, UpstreamGuard};
use pingora_proxy::Session;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one request carries from phase to phase.
pub struct RequestCtx {
    /// When the request began (after its header was read).
    pub start: Instant,
    /// The snapshot this request started on; it finishes on it.
    pub snapshot: Option<Arc<Snapshot>>,
    /// The matched location.
    pub location: Option<Arc<Location>>,
    /// Which host pattern of the location matched.
    pub host_pattern: u16,
    /// Lower-case request host without port (empty when none).
    pub host: String,
    /// `https` on TLS listeners.
    pub tls: bool,
    /// Named captures.
    pub vars: Vec<(Arc<str>, String)>,
    /// The client's IP (honouring `trusted_proxies`).
    pub client_ip: Option<IpAddr>,
    /// Request id (generated or taken from `X-Request-Id`).
    pub request_id: String,
    /// Path sent upstream when rewritten.
    pub upstream_path: Option<String>,
    /// The upstream chosen.
    pub upstream: Option<Arc<Upstream>>,
    /// The backend chosen (last attempt).
    pub backend: Option<SocketAddr>,
    /// Backends that failed to connect, not to be tried again.
    pub failed: Vec<SocketAddr>,
    /// Connect retries done.
    pub retries: u32,
    /// In-flight accounting of the chosen backend (least_conn).
    pub backend_guard: Option<UpstreamGuard>,
    /// Holds one of the location's `max_processing` slots.
    pub holds_slot: bool,
    /// Request body bytes seen.
    pub body_bytes: u64,
    /// Status of a response a plugin or an error produced here.
    pub status: u16,
    /// Time the upstream connection became ready.
    pub upstream_connected: Option<Instant>,
    /// Time the upstream response header arrived.
    pub upstream_responded: Option<Instant>,
    /// Upstream status code.
    pub upstream_status: u16,
    /// The upstream connection was reused.
    pub connection_reused: bool,
}

impl RequestCtx {
    /// A fresh context.
    pub fn new() -> Self {
        RequestCtx {
            start: Instant::now(),
            snapshot: None,
            location: None,
            host_pattern: 0,
            host: String::new(),
            tls: false,
            vars: Vec::new(),
            client_ip: None,
            request_id: String::new(),
            upstream_path: None,
            upstream: None,
            backend: None,
            failed: Vec::new(),
            retries: 0,
            backend_guard: None,
            holds_slot: false,
            body_bytes: 0,
            status: 0,
            upstream_connected: None,
            upstream_responded: None,
            upstream_status: 0,
            connection_reused: false,
        }
    }

    /// The request host (lower-case, no port), or "" when absent.
    pub fn host(&self, _session: &Session) -> &str {
        &self.host
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// A named capture.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Milliseconds since the request began.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

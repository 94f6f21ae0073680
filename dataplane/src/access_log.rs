//! Access log: per-server templates formatted on the request path into one line, handed to a
//! writer thread through a bounded channel. When the channel is full the line is dropped and
//! counted, so a slow disk never slows requests.

use crate::ctx::RequestCtx;
use louailink_shared::access_log::{parse_access_log, LogPart, LogTag};
use pingora_proxy::Session;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Lines waiting for the writer, at most.
const CHANNEL_CAPACITY: usize = 64 * 1024;

/// Where access lines go: a bounded channel to one writer thread.
pub struct Sink {
    tx: crossbeam_channel::Sender<String>,
    rx: Mutex<Option<crossbeam_channel::Receiver<String>>>,
    /// Lines dropped because the writer could not keep up.
    pub dropped: AtomicU64,
    path: Option<String>,
}

impl Sink {
    /// A sink writing to `path` (append), or to stderr.
    pub fn new(path: Option<String>) -> Arc<Self> {
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        Arc::new(Sink {
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            path,
        })
    }

    /// Starts the writer thread (after daemonizing, since a fork keeps no threads).
    pub fn start_writer(&self) -> std::io::Result<()> {
        let Some(rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return Ok(());
        };
        let mut out: Box<dyn std::io::Write + Send> = match &self.path {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Box::new(std::io::stderr()),
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                while let Ok(line) = rx.recv() {
                    buf.extend_from_slice(line.as_bytes());
                    // Batch whatever else is already queued into one write.
                    while buf.len() < 256 * 1024 {
                        match rx.try_recv() {
                            Ok(l) => buf.extend_from_slice(l.as_bytes()),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = out.write_all(&buf).and_then(|_| out.flush()) {
                        tracing::error!(error = %e, "writing the access log failed");
                    }
                    buf.clear();
                }
            })?;
        Ok(())
    }

    fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A compiled access log format of one server.
pub struct AccessLog {
    parts: Vec<LogPart>,
    sink: Arc<Sink>,
}

impl AccessLog {
    /// Compiles a preset or template.
    pub fn new(spec: &str, sink: Arc<Sink>) -> Result<Self, String> {
        let parts = parse_access_log(spec)?
            .into_iter()
            .map(|p| match p {
                // Environment values are fixed for the process: resolve them once.
                LogPart::Env(name) => {
                    LogPart::Text(std::env::var(&name).unwrap_or_else(|_| "-".into()))
                }
                other => other,
            })
            .collect();
        Ok(AccessLog { parts, sink })
    }

    /// True when lines show the request id.
    pub fn uses_request_id(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, LogPart::Tag(LogTag::RequestId)))
    }

    /// Formats and queues the line for this request.
    pub fn log(&self, session: &Session, ctx: &RequestCtx) {
        let mut line = String::with_capacity(256);
        for part in &self.parts {
            match part {
                LogPart::Text(t) => line.push_str(t),
                LogPart::Tag(tag) => write_tag(&mut line, *tag, session, ctx),
                LogPart::RequestHeader(name) => or_dash(
                    &mut line,
                    session
                        .req_header()
                        .headers
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok()),
                ),
                LogPart::ResponseHeader(name) => or_dash(
                    &mut line,
                    session
                        .response_written()
                        .and_then(|r| r.headers.get(name.as_str()))
                        .and_then(|v| v.to_str().ok()),
                ),
                LogPart::Cookie(name) => or_dash(&mut line, cookie(session, name)),
                LogPart::Env(_) => line.push('-'),
            }
        }
        line.push('\n');
        self.sink.send(line);
    }
}

fn or_dash(out: &mut String, v: Option<&str>) {
    out.push_str(match v {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    });
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
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

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn write_tag(out: &mut String, tag: LogTag, session: &Session, ctx: &RequestCtx) {
    let req = session.req_header();
    let status = session
        .response_written()
        .map_or(ctx.status, |r| r.status.as_u16());
    let _ = match tag {
        LogTag::Host => return or_dash(out, Some(&ctx.host)),
        LogTag::Method => return out.push_str(req.method.as_str()),
        LogTag::Path => return out.push_str(req.uri.path()),
        LogTag::UpstreamPath => {
            return out.push_str(ctx.upstream_path.as_deref().unwrap_or(req.uri.path()))
        }
        LogTag::Query => return or_dash(out, req.uri.query()),
        LogTag::Uri => {
            return out.push_str(
                req.uri
                    .path_and_query()
                    .map_or(req.uri.path(), |p| p.as_str()),
            )
        }
        LogTag::Proto => write!(out, "{:?}", req.version),
        LogTag::Scheme => return out.push_str(ctx.scheme()),
        LogTag::Status => write!(out, "{status}"),
        LogTag::Size => write!(out, "{}", session.body_bytes_sent()),
        LogTag::SizeHuman => return human_bytes(out, session.body_bytes_sent()),
        LogTag::PayloadSize => write!(out, "{}", session.body_bytes_read()),
        LogTag::Latency => write!(out, "{}", ctx.elapsed().as_millis()),
        LogTag::LatencyHuman => write!(out, "{:?}", ctx.elapsed()),
        LogTag::Remote => match session.client_addr().and_then(|a| a.as_inet()) {
            Some(a) => write!(out, "{}", a.ip()),
            None => return out.push('-'),
        },
        LogTag::ClientIp => match ctx.client_ip {
            Some(ip) => write!(out, "{ip}"),
            None => return out.push('-'),
        },
        LogTag::Referer => {
            return or_dash(
                out,
                req.headers
                    .get(http::header::REFERER)
                    .and_then(|v| v.to_str().ok()),
            )
        }
        LogTag::UserAgent => {
            return or_dash(
                out,
                req.headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            )
        }
        LogTag::RequestId => return or_dash(out, Some(&ctx.request_id)),
        LogTag::When => return write_when(out, false),
        LogTag::WhenUtcIso => return write_when(out, true),
        LogTag::WhenUnix => write!(out, "{}", chrono::Utc::now().timestamp_millis()),
        LogTag::Location => return or_dash(out, ctx.location.as_ref().map(|l| &*l.name)),
        LogTag::Upstream => return or_dash(out, ctx.upstream.as_ref().map(|u| &*u.name)),
        LogTag::UpstreamAddr => match ctx.backend {
            Some(a) => write!(out, "{a}"),
            None => return out.push('-'),
        },
        LogTag::UpstreamStatus => match ctx.upstream_status {
            0 => return out.push('-'),
            s => write!(out, "{s}"),
        },
        LogTag::UpstreamConnectTime => match ctx.upstream_connected {
            Some(t) => write!(out, "{:.3}", millis(t - ctx.start)),
            None => return out.push('-'),
        },
        LogTag::UpstreamResponseTime => match ctx.upstream_responded {
            Some(t) => write!(out, "{:.3}", millis(t - ctx.start)),
            None => return out.push('-'),
        },
        LogTag::ConnectionReused => write!(out, "{}", ctx.connection_reused),
        LogTag::TlsVersion => {
            return or_dash(
                out,
                session
                    .digest()
                    .and_then(|d| d.ssl_digest.as_ref())
                    .map(|s| s.version.as_ref()),
            )
        }
    };
}

//! Access log: per-server templates formatted on the request path into one line, handed to a
//! writer thread through a bounded channel. When the channel is full the line is dropped and
//! counted, so a slow disk never slows requests.

use crate::request::ctx::RequestCtx;
use crate::request::vars::write_var;
use louailink_shared::access_log::parse_access_log;
use louailink_shared::vars::{Part, Var};
use pingora_proxy::Session;
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
    parts: Vec<Part>,
    sink: Arc<Sink>,
}

impl AccessLog {
    /// Compiles a preset or template.
    pub fn new(spec: &str, sink: Arc<Sink>) -> Result<Self, String> {
        Ok(AccessLog {
            parts: parse_access_log(spec)?,
            sink,
        })
    }

    /// True when lines show the request id.
    pub fn uses_request_id(&self) -> bool {
        louailink_shared::vars::uses(&self.parts, &Var::RequestId)
    }

    /// Formats and queues the line for this request; a missing or empty value prints `-`.
    pub fn log(&self, session: &Session, ctx: &RequestCtx) {
        let mut line = String::with_capacity(256);
        for part in &self.parts {
            match part {
                Part::Text(t) => line.push_str(t),
                Part::Var(v) => {
                    let before = line.len();
                    write_var(v, session, ctx, &mut line);
                    if line.len() == before {
                        line.push('-');
                    }
                }
            }
        }
        line.push('\n');
        self.sink.send(line);
    }
}

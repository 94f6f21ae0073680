//! Real backends: hyper servers on loopback, each on its own thread and runtime.
//!
//! A backend speaks HTTP/1.1 and h2c (prior knowledge) on the same port, or TLS with ALPN
//! (`h2`, `http/1.1`). Its default answer is a JSON description of the request it received
//! (see [`crate::Echo`]). Behaviour is selected per request:
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` or 500 `unhealthy`, per [`Backend::set_healthy`] (not counted as a hit) |
//! | `?status=418` | that status (with the echo body) |
//! | `?delay_ms=1500` | waits that long before answering |
//! | `/sse...?chunks=5&interval_ms=100` | `text/event-stream`, `data: <i>` chunks with pauses |
//! | `/gated...?chunks=3` | like `/sse`, but chunk *i* > 0 is only sent after [`Backend::release_chunk`] |
//!
//! or for every request by the builder ([`BackendBuilder::status`], [`BackendBuilder::delay`],
//! [`BackendBuilder::header`]).
//! Every response carries `x-backend: <id>`.

use crate::certs::CertPair;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

type ResBody = BoxBody<Bytes, Infallible>;

/// One request as the backend saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub version: String,
    /// Lower-case header names with their values.
    pub headers: BTreeMap<String, Vec<String>>,
}

#[derive(Clone)]
struct Options {
    id: String,
    tls: Option<CertPair>,
    alpn: Vec<Vec<u8>>,
    status: Option<u16>,
    delay: Option<Duration>,
    headers: Vec<(String, String)>,
}

struct Shared {
    opts: Options,
    healthy: Arc<AtomicBool>,
    hits: AtomicUsize,
    health_hits: AtomicUsize,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    gate: Semaphore,
}

/// Configures and starts a [`Backend`].
pub struct BackendBuilder {
    opts: Options,
    port: Option<u16>,
}

impl BackendBuilder {
    /// Listens on this port instead of a fresh one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Serves TLS with this certificate; ALPN offers `h2` and `http/1.1`.
    pub fn tls(mut self, cert: &CertPair) -> Self {
        self.opts.tls = Some(cert.clone());
        self
    }

    /// TLS ALPN protocols offered (e.g. `&["http/1.1"]` for an HTTP/1.1-only backend).
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.opts.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Answers every request with this status.
    pub fn status(mut self, status: u16) -> Self {
        self.opts.status = Some(status);
        self
    }

    /// Waits this long before answering every request.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.opts.delay = Some(delay);
        self
    }

    /// Adds this header to every response (e.g. `cache-control: max-age=60`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.opts
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Binds and starts serving; the port accepts connections when this returns.
    pub fn start(self) -> Backend {
        crate::init();
        let port = self.port.unwrap_or_else(crate::free_port);
        let shared = Arc::new(Shared {
            opts: self.opts,
            healthy: Arc::new(AtomicBool::new(true)),
            hits: AtomicUsize::new(0),
            health_hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
        });
        let mut backend = Backend {
            shared,
            port,
            running: None,
        };
        backend.resume();
        backend
    }
}

struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running (or stopped) backend. Dropping it stops it and closes its connections.
pub struct Backend {
    shared: Arc<Shared>,
    port: u16,
    running: Option<Running>,
}

impl Backend {
    /// A builder for a backend reporting `id`.
    pub fn builder(id: &str) -> BackendBuilder {
        BackendBuilder {
            opts: Options {
                id: id.to_string(),
                tls: None,
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                status: None,
                delay: None,
                headers: Vec::new(),
            },
            port: None,
        }
    }

    /// A plain HTTP/1.1 + h2c echo backend on a fresh port.
    pub fn start(id: &str) -> Backend {
        Self::builder(id).start()
    }

    /// The id reported in echoes and `x-backend`.
    pub fn id(&self) -> &str {
        &self.shared.opts.id
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests received, not counting `/healthz`.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// `/healthz` requests received.
    pub fn health_hits(&self) -> usize {
        self.shared.health_hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (the TLS handshake need not have succeeded).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests currently being answered (not counting `/healthz`).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Every request received so far (not counting `/healthz`), in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What `/healthz` answers: 200 when true, 500 when false.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::SeqCst);
    }

    /// The flag behind `/healthz` (true = 200), for tests that flip it from elsewhere.
    pub fn health_flag(&self) -> Arc<AtomicBool> {
        self.shared.healthy.clone()
    }

    /// Lets a `/gated` stream send its next chunk.
    pub fn release_chunk(&self) {
        self.shared.gate.add_permits(1);
    }

    /// Stops listening and closes every connection; counters are kept.
    pub fn stop(&mut self) {
        self.running = None;
    }

    /// Starts again on the same port with the same behaviour (after [`Backend::stop`]).
    pub fn resume(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener = bind_retrying(self.port);
        let shared = self.shared.clone();
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("backend-{}", shared.opts.id))
            .spawn(move || serve(listener, shared, rx))
            .expect("spawn backend thread");
        self.running = Some(Running {
            shutdown: Some(tx),
            thread: Some(thread),
        });
    }
}

fn bind_retrying(port: u16) -> StdListener {
    let mut last = None;
    for _ in 0..100 {
        match StdListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("backend cannot bind 127.0.0.1:{port}: {last:?}");
}

fn serve(listener: StdListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("backend runtime");
    rt.block_on(async move {
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let acceptor = shared.opts.tls.as_ref().map(|cert| {
            let mut cfg = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert_der()], cert.key_der())
                .expect("backend TLS config");
            cfg.alpn_protocols = shared.opts.alpn.clone();
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
            };
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve_conn(stream, shared, None).await,
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let sni = tls.get_ref().1.server_name().map(str::to_string);
                            serve_conn(tls, shared, Some(sni)).await;
                        }
                    }
                }
            });
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// `tls`: `None` for plain TCP, `Some(sni)` for TLS.
async fn serve_conn<S>(io: S, shared: Arc<Shared>, tls: Option<Option<String>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let tls = tls.clone();
        async move { Ok::<_, Infallible>(handle(shared, tls, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn version_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

async fn handle(
    shared: Arc<Shared>,
    tls: Option<Option<String>>,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let opts = &shared.opts;
    if req.uri().path() == "/healthz" {
        shared.health_hits.fetch_add(1, Ordering::SeqCst);
        let healthy = shared.healthy.load(Ordering::SeqCst);
        let (status, body) = if healthy {
            (200, "ok")
        } else {
            (500, "unhealthy")
        };
        return respond(
            opts,
            status,
            "text/plain",
            Full::new(Bytes::from(body)).boxed(),
        );
    }
    shared.hits.fetch_add(1, Ordering::SeqCst);
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&shared.in_flight);

    let (parts, body) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body_len = body
        .collect()
        .await
        .map(|b| b.to_bytes().len() as i64)
        .unwrap_or(-1);
    let seen = Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        version: version_name(parts.version).to_string(),
        headers: headers.clone(),
    };
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(seen);

    let params = query_params(parts.uri.query());
    let delay = params
        .get("delay_ms")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .or(opts.delay);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let status = params
        .get("status")
        .and_then(|v| v.parse().ok())
        .or(opts.status)
        .unwrap_or(200);

    let path = parts.uri.path();
    let gated = path.starts_with("/gated");
    if gated || path.starts_with("/sse") {
        let chunks: usize = params
            .get("chunks")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let interval = Duration::from_millis(
            params
                .get("interval_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(50),
        );
        let (tx, rx) = mpsc::channel(4);
        let shared = shared.clone();
        tokio::spawn(async move {
            for i in 0..chunks {
                if i > 0 {
                    if gated {
                        match shared.gate.acquire().await {
                            Ok(permit) => permit.forget(),
                            Err(_) => return,
                        }
                    } else {
                        tokio::time::sleep(interval).await;
                    }
                }
                let chunk = Bytes::from(format!("data: {i}\n\n"));
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        return respond(opts, status, "text/event-stream", ChannelBody(rx).boxed());
    }

    let mut echo = serde_json::json!({
        "backend": opts.id,
        "method": parts.method.as_str(),
        "uri": uri,
        "version": version_name(parts.version),
        "headers": headers,
        "body_len": body_len,
        "tls": tls.is_some(),
    });
    if let Some(sni) = tls.flatten() {
        echo["sni"] = serde_json::Value::String(sni);
    }
    let body = Full::new(Bytes::from(echo.to_string())).boxed();
    respond(opts, status, "application/json", body)
}

fn respond(opts: &Options, status: u16, content_type: &str, body: ResBody) -> Response<ResBody> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-backend", opts.id.as_str());
    for (name, value) in &opts.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(body).expect("valid response")
}

/// A response body fed chunk by chunk from a channel (nothing is buffered here).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

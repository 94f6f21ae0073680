//! Bare pingora: the framework ceiling LouAILink is measured against (see `tests/bench/run.sh`
//! and `docs/benchmarks.md`).
//!
//! No routing, no plugins, no logging: the least a pingora 0.9 program can do per request.
//!
//! ```text
//! bare_pingora --listen 127.0.0.1:6188 --answer                 # answer "pong" from request_filter
//! bare_pingora --listen 127.0.0.1:6188 --proxy 127.0.0.1:8080   # proxy everything, upstream keepalive
//! ```
//!
//! Defaults match what the product runs with: one worker thread (`ServerConf { threads: 1, .. }`),
//! pingora's own runtime and connection pool, the mimalloc global allocator and the workspace's
//! release profile. The other flags exist to measure the knobs pingora, tokio and Rust offer
//! (`docs/benchmarks.md`, "Where the time goes"); each one is off by default.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use mimalloc::MiMalloc;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::Service as _;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};

// ---------------------------------------------------------------------------------------------
// Allocator: mimalloc through the `mimalloc` crate's `MiMalloc` (as the product), unless the
// environment says otherwise:
//   BARE_PINGORA_ALLOC=system   glibc malloc
//   BARE_PINGORA_ALLOC=mi-fast  mimalloc, calling mi_malloc/mi_zalloc/mi_realloc directly when the
//                               alignment is the natural one (MiMalloc always calls the *_aligned
//                               entry points, a slower path in mimalloc v3)
// The choice is made once, before the first allocation (libc getenv does not allocate), so every
// block is freed by the allocator that made it. The cost of the switch is one well-predicted
// branch per call.
// ---------------------------------------------------------------------------------------------

struct SwitchAlloc;

const MODE_MIMALLOC: u8 = 1;
const MODE_SYSTEM: u8 = 2;
const MODE_MI_FAST: u8 = 3;
static ALLOC_MODE: AtomicU8 = AtomicU8::new(0); // 0 = undecided

// The symbols of the mimalloc library that the `mimalloc` crate links in.
extern "C" {
    fn mi_malloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_zalloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_realloc(p: *mut std::ffi::c_void, newsize: usize) -> *mut std::ffi::c_void;
}
/// mimalloc's MI_MAX_ALIGN_SIZE: malloc'd blocks are at least this aligned.
const MI_MAX_ALIGN: usize = 16;

#[inline(always)]
fn mode() -> u8 {
    match ALLOC_MODE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: getenv with a NUL-terminated name; reads the environment without allocating.
            let v = unsafe { libc::getenv(c"BARE_PINGORA_ALLOC".as_ptr()) };
            let m = if v.is_null() {
                MODE_MIMALLOC
            } else {
                // SAFETY: a non-null getenv result is a NUL-terminated C string.
                match unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes() {
                    b"system" => MODE_SYSTEM,
                    b"mi-fast" => MODE_MI_FAST,
                    _ => MODE_MIMALLOC,
                }
            };
            ALLOC_MODE.store(m, Ordering::Relaxed);
            m
        }
        m => m,
    }
}

#[inline(always)]
fn natural(layout: &Layout) -> bool {
    layout.align() <= MI_MAX_ALIGN && layout.align() <= layout.size()
}

unsafe impl GlobalAlloc for SwitchAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match mode() {
            MODE_SYSTEM => System.alloc(layout),
            MODE_MI_FAST if natural(&layout) => mi_malloc(layout.size()) as *mut u8,
            _ => MiMalloc.alloc(layout),
        }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match mode() {
            MODE_SYSTEM => System.alloc_zeroed(layout),
            MODE_MI_FAST if natural(&layout) => mi_zalloc(layout.size()) as *mut u8,
            _ => MiMalloc.alloc_zeroed(layout),
        }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match mode() {
            MODE_SYSTEM => System.dealloc(ptr, layout),
            _ => MiMalloc.dealloc(ptr, layout),
        }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match mode() {
            MODE_SYSTEM => System.realloc(ptr, layout, new_size),
            MODE_MI_FAST if layout.align() <= MI_MAX_ALIGN && layout.align() <= new_size => {
                mi_realloc(ptr as *mut std::ffi::c_void, new_size) as *mut u8
            }
            _ => MiMalloc.realloc(ptr, layout, new_size),
        }
    }
}

#[global_allocator]
static GLOBAL: SwitchAlloc = SwitchAlloc;

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// pingora's own runtime (multi-thread tokio, or current-thread with --no-work-stealing)
    Pingora,
    /// our own tokio current-thread runtime (allows --event-interval)
    Current,
    /// our own tokio multi-thread runtime with --threads workers (allows --event-interval,
    /// --global-queue-interval)
    Multi,
}

#[derive(Parser, Debug)]
#[command(
    name = "bare_pingora",
    about = "Bare pingora 0.9: the framework ceiling"
)]
struct Args {
    /// Listen address
    #[arg(long, default_value = "127.0.0.1:6188")]
    listen: String,
    /// Answer every request from request_filter with `200 text/plain "pong"`
    #[arg(long, conflicts_with = "proxy")]
    answer: bool,
    /// Proxy every request to this upstream (plain HTTP/1.1, keepalive)
    #[arg(long, value_name = "ADDR")]
    proxy: Option<String>,
    /// Worker threads of the service
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// ServerConf.work_stealing = false (pingora runtime only)
    #[arg(long)]
    no_work_stealing: bool,
    /// ServerConf.listener_tasks_per_fd
    #[arg(long, default_value_t = 1)]
    listener_tasks: usize,
    /// ServerConf.upstream_keepalive_pool_size (pingora default 128)
    #[arg(long, default_value_t = 128)]
    keepalive_pool: usize,
    /// Set HttpServerOptions on the proxy (keepalive_request_limit = this, h2c = false)
    #[arg(long, value_name = "N")]
    keepalive_request_limit: Option<u32>,
    /// Which runtime hosts the service
    #[arg(long, value_enum, default_value_t = RuntimeKind::Pingora)]
    runtime: RuntimeKind,
    /// tokio Builder::event_interval (own runtimes only; tokio default 61)
    #[arg(long)]
    event_interval: Option<u32>,
    /// tokio Builder::global_queue_interval (own runtimes only)
    #[arg(long)]
    global_queue_interval: Option<u32>,
    /// Answer with a ResponseHeader built once at start and cloned per request
    #[arg(long)]
    prebuilt_header: bool,
    /// Answer with write_response_header_ref + body instead of a boxed header
    #[arg(long)]
    header_ref: bool,
    /// Proxy with an HttpPeer built once at start and cloned per request
    #[arg(long)]
    prebuilt_peer: bool,
    /// Upstream idle_timeout in seconds set on the peer (pingora default: none)
    #[arg(long)]
    upstream_idle_timeout: Option<u64>,
    /// Experiment: with --proxy, do the upstream exchange in request_filter with pingora's
    /// HTTP/1 client session over connections from a plain LIFO pool (no idle watcher task, no
    /// proxy_to_upstream machinery). A measurement prototype, not a complete proxy: request
    /// bodies are not forwarded and a pooled connection closed by the upstream fails the request.
    #[arg(long, requires = "proxy")]
    proxy_direct: bool,
    /// Register no downstream HTTP modules (pingora's default registers a disabled
    /// ResponseCompression module, which still runs per request)
    #[arg(long)]
    no_default_modules: bool,
    /// Directory for the pid file and upgrade socket
    #[arg(long, default_value = "/tmp")]
    run_dir: String,
}

// ---------------------------------------------------------------------------------------------
// The ProxyHttp implementation
// ---------------------------------------------------------------------------------------------

static PONG: &[u8] = b"pong";

struct Bare {
    answer: bool,
    upstream: String,
    prebuilt_header: Option<ResponseHeader>,
    header_ref: bool,
    prebuilt_peer: Option<HttpPeer>,
    idle_timeout: Option<std::time::Duration>,
    no_default_modules: bool,
    direct: Option<DirectPool>,
}

/// The idle upstream connections of the --proxy-direct experiment.
struct DirectPool {
    addr: std::net::SocketAddr,
    idle: std::sync::Mutex<Vec<pingora_core::protocols::Stream>>,
}

impl DirectPool {
    async fn proxy(&self, session: &mut Session) -> Result<()> {
        use pingora_core::protocols::http::v1::client::HttpSession;
        use pingora_core::{Error, ErrorType};
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let stream = match pooled {
            Some(s) => s,
            None => {
                let tcp = tokio::net::TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| Error::because(ErrorType::ConnectError, "connect", e))?;
                tcp.set_nodelay(true)
                    .map_err(|e| Error::because(ErrorType::ConnectError, "nodelay", e))?;
                let s: pingora_core::protocols::Stream =
                    Box::new(pingora_core::protocols::l4::stream::Stream::from(tcp));
                s
            }
        };
        let mut up = HttpSession::new(stream);
        up.write_request_header(Box::new(session.req_header().clone()))
            .await?;
        let resp = up.read_resp_header_parts().await?;
        session.write_response_header(resp, false).await?;
        while let Some(b) = up.read_body_bytes().await? {
            session.write_response_body(Some(b), false).await?;
        }
        session.write_response_body(None, true).await?;
        up.respect_keepalive();
        if let Some(s) = up.reuse().await {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }
        Ok(())
    }
}

fn pong_header() -> Result<ResponseHeader> {
    let mut h = ResponseHeader::build(200, Some(2))?;
    h.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
    h.insert_header(http::header::CONTENT_LENGTH, "4")?;
    Ok(h)
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    fn init_downstream_modules(&self, modules: &mut pingora_core::modules::http::HttpModules) {
        if !self.no_default_modules {
            // pingora's default: a disabled response-compression module
            modules.add_module(
                pingora_core::modules::http::compression::ResponseCompressionBuilder::enable(0),
            );
        }
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> Result<bool> {
        if let Some(direct) = &self.direct {
            direct.proxy(session).await?;
            return Ok(true);
        }
        if !self.answer {
            return Ok(false);
        }
        if self.header_ref {
            let h = match &self.prebuilt_header {
                Some(h) => session.write_response_header_ref(h, false).await,
                None => {
                    session
                        .write_response_header_ref(&pong_header()?, false)
                        .await
                }
            };
            h?;
        } else {
            let h = match &self.prebuilt_header {
                Some(h) => Box::new(h.clone()),
                None => Box::new(pong_header()?),
            };
            session.write_response_header(h, false).await?;
        }
        session
            .write_response_body(Some(Bytes::from_static(PONG)), true)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = match &self.prebuilt_peer {
            Some(p) => Box::new(p.clone()),
            None => Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())),
        };
        if self.idle_timeout.is_some() {
            peer.options.idle_timeout = self.idle_timeout;
        }
        Ok(peer)
    }
}

fn main() {
    let args = Args::parse();
    if !args.answer && args.proxy.is_none() {
        eprintln!("bare_pingora: one of --answer or --proxy <ADDR> is required");
        std::process::exit(2);
    }

    let conf = ServerConf {
        threads: args.threads,
        work_stealing: !args.no_work_stealing,
        listener_tasks_per_fd: args.listener_tasks,
        upstream_keepalive_pool_size: args.keepalive_pool,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: format!("{}/bare_pingora.pid", args.run_dir),
        upgrade_sock: format!("{}/bare_pingora_upgrade.sock", args.run_dir),
        ..Default::default()
    };

    let upstream = args.proxy.clone().unwrap_or_default();
    let prebuilt_peer = (args.prebuilt_peer && !upstream.is_empty())
        .then(|| HttpPeer::new(upstream.as_str(), false, String::new()));
    let app = Bare {
        answer: args.answer,
        upstream,
        prebuilt_header: args
            .prebuilt_header
            .then(|| pong_header().expect("pong header")),
        header_ref: args.header_ref,
        prebuilt_peer,
        idle_timeout: args
            .upstream_idle_timeout
            .map(std::time::Duration::from_secs),
        no_default_modules: args.no_default_modules,
        direct: args.proxy_direct.then(|| DirectPool {
            addr: args
                .proxy
                .as_deref()
                .unwrap_or_default()
                .parse()
                .expect("--proxy-direct needs --proxy IP:PORT"),
            idle: std::sync::Mutex::new(Vec::new()),
        }),
    };

    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora_proxy::http_proxy_service(&server.configuration, app);
    if let Some(limit) = args.keepalive_request_limit {
        let mut opts = HttpServerOptions::default();
        opts.keepalive_request_limit = Some(limit);
        service.app_logic_mut().expect("app").server_options = Some(opts);
    }
    service.add_tcp(&args.listen);

    match args.runtime {
        RuntimeKind::Pingora => {
            server.add_service(service);
            server.run_forever();
        }
        RuntimeKind::Current | RuntimeKind::Multi => {
            // Host the service on a runtime we build ourselves, to try tokio knobs pingora does
            // not expose. No signal handling: SIGINT/SIGTERM end the process at once.
            let mut builder = if args.runtime == RuntimeKind::Current {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(args.threads);
                if let Some(n) = args.global_queue_interval {
                    b.global_queue_interval(n);
                }
                b
            };
            builder.enable_all();
            if let Some(n) = args.event_interval {
                builder.event_interval(n);
            }
            let rt = builder.build().expect("tokio runtime");
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let listener_tasks = args.listener_tasks;
            let mut service = service;
            rt.block_on(async move {
                service.start_service(None, rx, listener_tasks).await;
            });
        }
    }
}

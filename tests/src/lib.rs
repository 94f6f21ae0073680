//! End-to-end test harness for LouAILink.
//!
//! Everything here is real: the `louailink` binary runs as a child process ([`Louailink`]),
//! backends are small hyper servers on loopback sockets ([`Backend`]), certificates come from a
//! throw-away CA ([`TestCa`]), clients talk HTTP/1.1, h2c, TLS or raw bytes ([`Client`],
//! [`RawConn`]), a real etcd ([`Etcd`], [`Fleet`]) holds fleet configs, and [`Load`] keeps
//! traffic flowing while config changes or upgrades happen. Each test allocates its own ports
//! ([`free_port`]) and temp dirs, and every process or thread a test starts is stopped when
//! its handle is dropped, so tests run in parallel.

pub mod backend;
pub mod certs;
pub mod client;
pub mod etcd;
pub mod fleet;
pub mod link;
pub mod load;
pub mod proxy;
pub mod routes;
pub mod sse;

pub use backend::{Backend, BackendBuilder};
pub use certs::{CertPair, TestCa};
pub use client::{peer_certificate, Client, Echo, RawConn, RawResponse, Reply};
pub use etcd::Etcd;
pub use fleet::{Fleet, NodeStatus, Op};
pub use link::Link;
pub use load::{assert_no_failures, Load, Report};
pub use proxy::{CmdOutput, Louailink, LouailinkBuilder};
pub use routes::{OneRoute, Routes, Single};
pub use sse::SseStream;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// Generous upper bound for anything a test waits for (never a timing assertion).
pub const WAIT: Duration = Duration::from_secs(20);

/// Installs the `ring` rustls provider once per process (ignores "already installed").
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A loopback TCP port that is free right now.
///
/// Ports come from 20000..32000, below the kernel's ephemeral range, so outgoing connections
/// (the proxy's to its backends, the clients') never take a port a test is about to bind.
/// A per-process counter starting at a pid-derived offset keeps parallel tests apart.
pub fn free_port() -> u16 {
    const BASE: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: OnceLock<u32> = OnceLock::new();
    let start = *START.get_or_init(|| (std::process::id().wrapping_mul(7919)) % SPAN);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (BASE + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {BASE}..{}", BASE + SPAN);
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `louailink` binary: `$LOUAILINK_BIN`, else `<workspace>/target/debug/louailink`.
pub fn louailink_bin() -> PathBuf {
    let path = match std::env::var_os("LOUAILINK_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            target.join("debug").join("louailink")
        }
    };
    assert!(
        path.is_file(),
        "louailink binary not found at {}: run `cargo build -p louailink` first \
         (or set LOUAILINK_BIN)",
        path.display()
    );
    path
}

/// Polls `probe` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match wait_until_or_none(timeout, probe).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `probe` until it returns `Some`, at most `timeout`.
pub async fn wait_until_or_none<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `["127.0.0.1:1", "127.0.0.1:2"]`: a TOML array of the backends' addresses.
pub fn addrs(backends: &[&Backend]) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    format!("[{}]", list.join(", "))
}

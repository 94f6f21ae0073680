//! Loopback ports for the servers a test starts.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

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

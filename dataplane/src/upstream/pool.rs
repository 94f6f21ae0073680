//! Idle upstream connections of one upstream, per backend, for LouAILink's own exchange.
//!
//! A plain LIFO stack per backend behind one short lock: the newest connection is the one
//! least likely to have been closed by the backend. Unlike pingora's pool there is no task per
//! idle connection; a connection is checked when it is taken (a closed or chatty one is
//! dropped), and a sweeper closes the expired and the closed ones every few seconds.

use pingora::protocols::Stream;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};

/// How often the sweeper looks at idle connections at most.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Idle {
    stream: Stream,
    since: Instant,
}

/// The idle connections of one upstream.
pub struct Pool {
    /// Backends with their idle connections, newest last. A short list: a linear scan is
    /// cheaper than hashing a socket address.
    idle: Mutex<Vec<(SocketAddr, Vec<Idle>)>>,
    /// Idle connections kept per backend.
    cap: usize,
    /// How long a connection may stay idle (`None`: until the backend closes it).
    idle_timeout: Option<Duration>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Pool {
    /// A pool keeping at most `cap` idle connections per backend.
    pub fn new(cap: usize, idle_timeout: Option<Duration>) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            cap,
            idle_timeout,
            sweeping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SocketAddr, Vec<Idle>)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to `addr` that is still open, if any.
    pub fn take(&self, addr: SocketAddr) -> Option<Stream> {
        let now = Instant::now();
        loop {
            let idle = {
                let mut all = self.lock();
                let (_, list) = all.iter_mut().find(|(a, _)| *a == addr)?;
                list.pop()?
            };
            // Dropped outside the lock: closing a socket is a system call.
            let mut stream = idle.stream;
            if !self.expired(idle.since, now) && still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for the next request to `addr`.
    pub fn put(self: &Arc<Self>, addr: SocketAddr, stream: Stream) {
        if self.cap == 0 {
            return;
        }
        let idle = Idle {
            stream,
            since: Instant::now(),
        };
        let evicted = {
            let mut all = self.lock();
            let list = match all.iter().position(|(a, _)| *a == addr) {
                Some(i) => &mut all[i].1,
                None => {
                    all.push((addr, Vec::new()));
                    let last = all.len() - 1;
                    &mut all[last].1
                }
            };
            list.push(idle);
            (list.len() > self.cap).then(|| list.remove(0))
        };
        drop(evicted);
        if !self
            .sweeping
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    fn expired(&self, since: Instant, now: Instant) -> bool {
        self.idle_timeout
            .is_some_and(|t| now.saturating_duration_since(since) >= t)
    }

    /// Idle connections to `addr` (for tests and status).
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        self.lock()
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or(0, |(_, l)| l.len())
    }

    /// Drops expired and closed connections; returns how many are left.
    fn sweep_once(&self) -> usize {
        let now = Instant::now();
        let mut closed = Vec::new();
        let left = {
            let mut all = self.lock();
            for (_, list) in all.iter_mut() {
                let mut i = 0;
                while i < list.len() {
                    let open = !self.expired(list[i].since, now) && still_open(&mut list[i].stream);
                    if open {
                        i += 1;
                    } else {
                        closed.push(list.remove(i));
                    }
                }
            }
            all.retain(|(_, l)| !l.is_empty());
            all.iter().map(|(_, l)| l.len()).sum()
        };
        drop(closed);
        left
    }
}

/// Closes what expired or was closed by the backend, until the pool is empty or gone.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let every = match pool.upgrade() {
            Some(p) => p.idle_timeout.map_or(SWEEP_EVERY, |t| {
                t.clamp(Duration::from_millis(100), SWEEP_EVERY)
            }),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(p) = pool.upgrade() else { return };
        if p.sweep_once() == 0 {
            p.sweeping
                .store(false, std::sync::atomic::Ordering::Relaxed);
            return;
        }
    }
}

/// Whether an idle connection is still open and silent: one read attempt that must not
/// be ready. EOF means the backend closed it; bytes mean it sent something unasked (an
/// error or a late response), so it cannot carry a new request either. tokio answers
/// "not ready" from its cached readiness without a system call when nothing arrived.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

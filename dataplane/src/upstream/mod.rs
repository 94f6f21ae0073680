//! Upstreams: backend discovery, selection (pingora's load balancers plus least_conn),
//! health checks and the peer handed to pingora for each attempt.

use crate::events::Notifier;
use async_trait::async_trait;
use louailink_shared::patterns::{self, Algo, BackendAddr};
use louailink_shared::vars::Var;
use louailink_shared::{Alpn, Discovery, UpstreamConf};
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{consistent::KetamaHashing, BackendIter, BackendSelection};
use pingora::lb::selection::{Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

mod pool;
pub use pool::Pool;

/// Resolves the configured addresses, once (`static`) or every refresh (`dns`).
struct Resolver {
    addrs: Vec<BackendAddr>,
    ipv4_only: bool,
}

#[async_trait]
impl ServiceDiscovery for Resolver {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut set = BTreeSet::new();
        for a in &self.addrs {
            if let Ok(ip) = a.host.parse::<std::net::IpAddr>() {
                set.insert(backend(SocketAddr::new(ip, a.port), a.weight));
                continue;
            }
            match tokio::net::lookup_host((a.host.as_str(), a.port)).await {
                Ok(found) => {
                    for sa in found.filter(|sa| !self.ipv4_only || sa.is_ipv4()) {
                        set.insert(backend(sa, a.weight));
                    }
                }
                Err(e) => tracing::warn!(host = %a.host, error = %e, "dns lookup failed"),
            }
        }
        Ok((set, HashMap::new()))
    }
}

fn backend(addr: SocketAddr, weight: usize) -> Backend {
    Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight,
        ext: http::Extensions::new(),
    }
}

/// The selection algorithm with its load balancer.
enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Hash(LoadBalancer<KetamaHashing>, Var),
    LeastConn(LoadBalancer<RoundRobin>),
}

impl Selector {
    fn backends(&self) -> &Backends {
        match self {
            Selector::RoundRobin(lb) | Selector::LeastConn(lb) => lb.backends(),
            Selector::Random(lb) => lb.backends(),
            Selector::Hash(lb, _) => lb.backends(),
        }
    }

    async fn update(&self) -> pingora::Result<()> {
        match self {
            Selector::RoundRobin(lb) | Selector::LeastConn(lb) => lb.update().await,
            Selector::Random(lb) => lb.update().await,
            Selector::Hash(lb, _) => lb.update().await,
        }
    }
}

fn make_lb<S>(
    discovery: Resolver,
    hc: Option<Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync>>,
) -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut backends = Backends::new(Box::new(discovery));
    if let Some(hc) = hc {
        backends.set_health_check(hc);
    }
    LoadBalancer::from_backends(backends)
}

/// A counter slot held while a request uses a backend (least_conn).
pub struct UpstreamGuard(Arc<AtomicUsize>);

impl Drop for UpstreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A compiled upstream.
pub struct Upstream {
    /// Item name.
    pub name: Arc<str>,
    /// The config it was built from (unchanged config = reuse, keeping pools and health).
    pub conf: UpstreamConf,
    selector: Selector,
    tls: bool,
    sni: String,
    verify_cert: bool,
    alpn: ALPN,
    connection_timeout: Option<Duration>,
    total_connection_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    health_interval: Option<Duration>,
    dns_refresh: Option<Duration>,
    /// In-flight requests per backend, for least_conn.
    inflight: arc_swap::ArcSwap<HashMap<SocketAddr, Arc<AtomicUsize>>>,
    maintenance_started: AtomicBool,
    /// Idle connections for LouAILink's own exchange (pingora's path keeps its own).
    pub pool: Arc<Pool>,
}

/// Idle connections kept per backend when `keepalive_pool_size` is not set.
const DEFAULT_POOL_SIZE: usize = 128;

/// Timeout for a health-check probe when none is given.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Upstream {
    /// Builds an upstream and resolves its backends once.
    pub async fn build(name: &str, conf: &UpstreamConf) -> Result<Self, String> {
        let addrs = conf
            .addrs
            .iter()
            .map(|a| patterns::parse_backend(a))
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err("addrs is empty".into());
        }
        let tls = conf.tls || addrs.iter().any(|a| a.tls);
        // Default SNI: the first backend's host (a name, or an IP that rustls then checks
        // against the certificate's IP SANs without sending SNI).
        let sni = conf
            .sni
            .clone()
            .unwrap_or_else(|| addrs.first().map(|a| a.host.clone()).unwrap_or_default());
        let health = conf
            .health_check
            .as_deref()
            .map(patterns::parse_health_check)
            .transpose()?;
        let hc: Option<Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync>> =
            health.as_ref().map(
                |h| -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
                    match &h.http {
                        Some((host, path)) => {
                            let mut check = HttpHealthCheck::new(host, tls);
                            if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None)
                            {
                                let _ = req.append_header("Host", host.as_str());
                                let _ = req.append_header("User-Agent", "louailink-health-check");
                                check.req = req;
                            }
                            check.consecutive_success = h.success;
                            check.consecutive_failure = h.failure;
                            check.peer_template.options.connection_timeout = Some(h.timeout);
                            check.peer_template.options.read_timeout = Some(h.timeout);
                            check.peer_template.options.verify_cert =
                                conf.verify_cert.unwrap_or(true);
                            check.peer_template.options.verify_hostname =
                                conf.verify_cert.unwrap_or(true);
                            if tls && !sni.is_empty() {
                                check.peer_template.sni = sni.clone();
                            }
                            Box::new(check)
                        }
                        None => {
                            let mut check = TcpHealthCheck::new();
                            check.consecutive_success = h.success;
                            check.consecutive_failure = h.failure;
                            check.peer_template.options.connection_timeout = Some(h.timeout);
                            check
                        }
                    }
                },
            );
        let discovery = Resolver {
            addrs,
            ipv4_only: conf.ipv4_only,
        };
        let selector = match patterns::parse_algo(conf.algo.as_deref())? {
            Algo::RoundRobin => Selector::RoundRobin(make_lb(discovery, hc)),
            Algo::Random => Selector::Random(make_lb(discovery, hc)),
            Algo::LeastConn => Selector::LeastConn(make_lb(discovery, hc)),
            Algo::Hash(key) => Selector::Hash(make_lb(discovery, hc), key),
        };
        selector
            .update()
            .await
            .map_err(|e| format!("resolving backends failed: {e}"))?;
        let up = Upstream {
            name: Arc::from(name),
            conf: conf.clone(),
            selector,
            tls,
            sni,
            verify_cert: conf.verify_cert.unwrap_or(true),
            alpn: match conf.alpn.unwrap_or_default() {
                Alpn::H1 => ALPN::H1,
                Alpn::H2 => ALPN::H2,
                Alpn::H2h1 => ALPN::H2H1,
            },
            connection_timeout: conf.connection_timeout.map(|d| d.0),
            total_connection_timeout: conf.total_connection_timeout.map(|d| d.0),
            read_timeout: conf.read_timeout.map(|d| d.0),
            write_timeout: conf.write_timeout.map(|d| d.0),
            idle_timeout: conf.idle_timeout.map(|d| d.0),
            health_interval: health.map(|h| h.interval),
            dns_refresh: (conf.discovery == Some(Discovery::Dns))
                .then(|| conf.dns_refresh.map_or(Duration::from_secs(30), |d| d.0)),
            inflight: arc_swap::ArcSwap::from_pointee(HashMap::new()),
            maintenance_started: AtomicBool::new(false),
            pool: Arc::new(Pool::new(
                conf.keepalive_pool_size.unwrap_or(DEFAULT_POOL_SIZE),
                conf.idle_timeout.map(|d| d.0),
            )),
        };
        up.refresh_inflight();
        Ok(up)
    }

    fn refresh_inflight(&self) {
        if !matches!(self.selector, Selector::LeastConn(_)) {
            return;
        }
        let old = self.inflight.load();
        let map = self
            .selector
            .backends()
            .get_backend()
            .iter()
            .filter_map(|b| b.addr.as_inet().copied())
            .map(|a| (a, old.get(&a).cloned().unwrap_or_default()))
            .collect();
        self.inflight.store(Arc::new(map));
    }

    /// Chooses a healthy backend not in `failed`; `key` feeds consistent hashing.
    pub fn select(
        &self,
        key: &[u8],
        failed: &[SocketAddr],
    ) -> Option<(SocketAddr, Option<UpstreamGuard>)> {
        let accept = |b: &Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_some_and(|a| !failed.contains(a))
        };
        const MAX_ITER: usize = 256;
        let chosen = match &self.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, MAX_ITER, accept),
            Selector::Random(lb) => lb.select_with(key, MAX_ITER, accept),
            Selector::Hash(lb, _) => lb.select_with(key, MAX_ITER, accept),
            Selector::LeastConn(lb) => {
                let counts = self.inflight.load();
                let backends = lb.backends();
                let best = backends
                    .get_backend()
                    .iter()
                    .filter(|b| accept(b, backends.ready(b)))
                    .filter_map(|b| {
                        let addr = *b.addr.as_inet()?;
                        let n = counts.get(&addr)?.load(Ordering::Relaxed);
                        Some((n * 1024 / b.weight.max(1), addr))
                    })
                    .min_by_key(|(load, _)| *load)?;
                let slot = counts.get(&best.1)?.clone();
                slot.fetch_add(1, Ordering::Relaxed);
                return Some((best.1, Some(UpstreamGuard(slot))));
            }
        }?;
        Some((*chosen.addr.as_inet()?, None))
    }

    /// The hash key this upstream's algorithm uses, if it hashes.
    pub fn hash_key(&self) -> Option<&Var> {
        match &self.selector {
            Selector::Hash(_, k) => Some(k),
            _ => None,
        }
    }

    /// The peer for one attempt at `addr`.
    pub fn peer(&self, addr: SocketAddr) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(addr, self.tls, self.sni.clone());
        let o = &mut peer.options;
        o.connection_timeout = self.connection_timeout.or(Some(DEFAULT_CONNECT_TIMEOUT));
        o.total_connection_timeout = self.total_connection_timeout;
        o.read_timeout = self.read_timeout;
        o.write_timeout = self.write_timeout;
        o.idle_timeout = self.idle_timeout;
        o.verify_cert = self.verify_cert;
        o.verify_hostname = self.verify_cert;
        o.alpn = self.alpn.clone();
        if self.alpn != ALPN::H1 {
            o.max_h2_streams = 128;
        }
        Box::new(peer)
    }

    /// HTTP/1.1 only to the backends: LouAILink's own exchange can carry the request.
    pub fn speaks_h1_only(&self) -> bool {
        self.alpn == ALPN::H1
    }

    /// Read and write timeouts for one exchange with a backend.
    pub fn io_timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.read_timeout, self.write_timeout)
    }

    /// `idle_timeout = "0s"`: every request gets a fresh connection.
    pub fn no_reuse(&self) -> bool {
        self.idle_timeout.is_some_and(|d| d.is_zero())
    }

    /// Health of every backend (address, healthy), for status and metrics.
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        let backends = self.selector.backends();
        backends
            .get_backend()
            .iter()
            .filter_map(|b| Some((*b.addr.as_inet()?, backends.ready(b))))
            .collect()
    }

    /// Starts health checks and DNS refresh once per upstream; they stop when it is dropped.
    /// Health transitions go to `notifier` (one event per transition).
    pub fn start_maintenance(self: &Arc<Self>, notifier: &Arc<Notifier>) {
        if self.health_interval.is_none() && self.dns_refresh.is_none() {
            return;
        }
        if self.maintenance_started.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(maintain(Arc::downgrade(self), notifier.clone()));
    }
}

/// Runs health checks and DNS refreshes until the upstream is gone.
async fn maintain(up: Weak<Upstream>, notifier: Arc<Notifier>) {
    let mut next_check = tokio::time::Instant::now();
    let mut next_dns = tokio::time::Instant::now();
    loop {
        let Some(u) = up.upgrade() else { return };
        let now = tokio::time::Instant::now();
        if let Some(every) = u.dns_refresh {
            if now >= next_dns {
                if let Err(e) = u.selector.update().await {
                    tracing::warn!(upstream = %u.name, error = %e, "dns refresh failed");
                }
                u.refresh_inflight();
                next_dns = now + every;
            }
        }
        if let Some(every) = u.health_interval {
            if now >= next_check {
                let before = u.health();
                u.selector.backends().run_health_check(true).await;
                for ((addr, was), (_, is)) in before.iter().zip(u.health()) {
                    if *was != is {
                        tracing::warn!(upstream = %u.name, backend = %addr, healthy = is, "backend health changed");
                        notifier.backend_health(&u.name, &addr.to_string(), is);
                    }
                }
                next_check = tokio::time::Instant::now() + every;
            }
        }
        let wake = match (u.health_interval, u.dns_refresh) {
            (Some(_), Some(_)) => next_check.min(next_dns),
            (Some(_), None) => next_check,
            _ => next_dns,
        };
        drop(u);
        tokio::time::sleep_until(wake).await;
    }
}

//! `cache`: an HTTP cache in memory. A fresh stored response answers in the `request` phase
//! (HIT); a miss goes upstream while concurrent misses for the same key wait for it
//! (coalescing); the `response` phase decides whether the response may be stored and the
//! `response_body` phase copies its chunks as they pass (nothing is held back).
//!
//! pingora-cache's own proxy integration is not used: it needs `&'static` storage, eviction
//! and lock objects (one per plugin instance would leak on every config change), its only
//! memory storage is marked "for testing only", and it would put a second set of cache
//! phases into the proxy beside the plugin chain. Its `Cache-Control` rules are used.

mod coalesce;
mod policy;
mod store;

use super::ip_restriction::parse_nets;
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::{state_key, RequestCtx};
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use coalesce::{Claim, Fill, Locks};
use http::{HeaderName, Method};
use ipnet::IpNet;
use louailink_shared::plugins::CacheOptions;
use pingora::protocols::http::conditional_filter::{not_modified_filter, to_304};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use policy::NotStored;
use std::time::{Duration, Instant};
use store::{Lookup, Object, Store};

/// How long misses for a key stop waiting for each other after a response that could not
/// be stored (so an uncacheable URL or a stream does not queue its requests).
const PASS_FOR: Duration = Duration::from_secs(30);

/// The `cache` plugin.
pub struct Cache {
    store: Store,
    locks: Locks,
    max_ttl: Duration,
    max_entry_size: usize,
    purgers: Vec<IpNet>,
    get: bool,
    head: bool,
    status_header: Option<HeaderName>,
    lock_timeout: Duration,
    request_no_cache: bool,
}

/// What the status header says.
#[derive(Clone, Copy)]
enum Status {
    Hit,
    Miss,
    Expired,
    Bypass,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "HIT",
            Status::Miss => "MISS",
            Status::Expired => "EXPIRED",
            Status::Bypass => "BYPASS",
        }
    }
}

/// A response being copied into the store as it passes.
struct Tee {
    header: ResponseHeader,
    body: Vec<u8>,
    ttl: Duration,
    age: u64,
}

/// One request's cache state.
#[derive(Default)]
struct State {
    /// Set when the request is looked up in the cache.
    status: Option<Status>,
    /// The cache key and its hash.
    key: Option<(u64, String)>,
    /// The response came from the cache: nothing to store.
    served: bool,
    /// A GET whose response may be stored.
    may_store: bool,
    /// Held while this request fetches the key for the waiting ones.
    fill: Option<Fill>,
    tee: Option<Tee>,
    /// An unsafe method: a successful response drops the stored one (RFC 9111 4.4).
    invalidate: bool,
}

impl Build for Cache {
    type Options = CacheOptions;

    fn build(o: CacheOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let status_header = match o.cache_status_header.as_str() {
            "" => None,
            name => Some(
                HeaderName::try_from(name).map_err(|_| format!("{name:?} is not a header name"))?,
            ),
        };
        let size = |s: u64| usize::try_from(s).unwrap_or(usize::MAX);
        Ok(Cache {
            store: Store::new(size(o.max_size.0)),
            locks: Locks::default(),
            max_ttl: o.max_ttl.0,
            max_entry_size: size(o.max_entry_size.0),
            purgers: parse_nets(&o.purge_ip_list)?,
            get: o.methods.iter().any(|m| m == "GET"),
            head: o.methods.iter().any(|m| m == "HEAD"),
            status_header,
            lock_timeout: o.lock_timeout.0,
            request_no_cache: o.request_no_cache,
        })
    }
}

/// The cache key: scheme, host, (normalised) path and query.
fn cache_key(req: &RequestHeader, ctx: &RequestCtx) -> String {
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{}://{}{}", ctx.scheme(), ctx.host, pq)
}

impl Cache {
    fn state<'a>(&self, ctx: &'a mut RequestCtx) -> &'a mut State {
        ctx.plugin_states.get_mut::<State>(state_key(self))
    }

    /// The stored response for this request, if any.
    fn lookup(&self, req: &RequestHeader, hash: u64, key: &str, now: Instant) -> Lookup {
        let values = |vary: &[String]| policy::vary_values(req, vary);
        self.store.get(hash, key, values, now)
    }

    /// The answer from a stored response (`304` when the request's validators match).
    fn hit(&self, req: &RequestHeader, object: &Object, now: Instant) -> pingora::Result<Flow> {
        let mut header = object.header.clone();
        header.insert_header(http::header::AGE, object.age(now))?;
        let mut body = object.body.clone();
        if not_modified_filter(req, &header) {
            to_304(&mut header);
            body = Bytes::new();
        }
        Ok(Flow::Reply(Box::new(Reply::with_header(header, body))))
    }

    /// `PURGE <path>`: drops the key from the listed addresses; 403 from others, 405 when
    /// no address is listed.
    fn purge(&self, req: &RequestHeader, ctx: &RequestCtx) -> pingora::Result<Flow> {
        if self.purgers.is_empty() {
            return Ok(Flow::Error(405, "PURGE is not enabled here".into()));
        }
        let allowed = ctx
            .client_ip
            .is_some_and(|ip| self.purgers.iter().any(|n| n.contains(&ip)));
        if !allowed {
            return Ok(Flow::Error(
                403,
                "PURGE is not allowed from this address".into(),
            ));
        }
        let key = cache_key(req, ctx);
        let reply = if self.store.remove(self.store.hash(&key), &key) {
            Reply::new(200, "text/plain", Bytes::from_static(b"purged\n"))?
        } else {
            Reply::new(404, "text/plain", Bytes::from_static(b"not in the cache\n"))?
        };
        Ok(Flow::Reply(Box::new(reply)))
    }

    /// Ends this request's part in filling the key: waiters go; `pass` makes the next misses
    /// skip waiting for a while.
    fn release(&self, state: &mut State, pass: bool) {
        if let (Some(_), Some((hash, key))) = (state.fill.take(), &state.key) {
            if pass {
                self.store.pass(*hash, key, PASS_FOR, Instant::now());
            }
        }
    }
}

#[async_trait]
impl Plugin for Cache {
    fn category(&self) -> &'static str {
        "cache"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE | Phases::RESPONSE_BODY
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let req = session.req_header();
        let (get, head) = (req.method == Method::GET, req.method == Method::HEAD);
        if req.method.as_str() == "PURGE" {
            return self.purge(req, ctx);
        }
        if !(get && self.get || head && self.head) {
            if matches!(
                req.method,
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                let key = cache_key(req, ctx);
                let state = self.state(ctx);
                state.key = Some((self.store.hash(&key), key));
                state.invalidate = true;
            }
            return Ok(Flow::Continue);
        }
        let key = cache_key(req, ctx);
        let hash = self.store.hash(&key);
        let now = Instant::now();
        let bypass = self.request_no_cache && policy::request_says_no_cache(req);
        let (status, pass) = match self.lookup(req, hash, &key, now) {
            _ if bypass => (Status::Bypass, true),
            Lookup::Found(o) if o.is_fresh(now) => {
                let state = self.state(ctx);
                state.status = Some(Status::Hit);
                state.served = true;
                return self.hit(req, &o, now);
            }
            Lookup::Found(_) => (Status::Expired, false),
            Lookup::Missing { pass } => (Status::Miss, pass),
        };
        // A HEAD miss has no body to store, so it neither fills the key nor waits.
        let mut fill = None;
        if get && !pass && !self.lock_timeout.is_zero() {
            match self.locks.claim(hash) {
                Claim::Fetch(f) => fill = Some(f),
                Claim::Wait(lock) => {
                    // Bounded: a slow fetch does not hold the others past lock_timeout.
                    let _ = tokio::time::timeout(self.lock_timeout, coalesce::wait(lock)).await;
                    let now = Instant::now();
                    let req = session.req_header();
                    if let Lookup::Found(o) = self.lookup(req, hash, &key, now) {
                        if o.is_fresh(now) {
                            let state = self.state(ctx);
                            state.status = Some(Status::Hit);
                            state.served = true;
                            return self.hit(req, &o, now);
                        }
                    }
                }
            }
        }
        let state = self.state(ctx);
        state.status = Some(status);
        state.key = Some((hash, key));
        state.may_store = get;
        state.fill = fill;
        Ok(Flow::Continue)
    }

    fn response(
        &self,
        session: &mut Session,
        header: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // Requests the plugin did not look at have no state: none is made for them.
        if ctx.plugin_states.get::<State>(state_key(self)).is_none() {
            return Ok(());
        }
        let state = self.state(ctx);
        if state.invalidate {
            if let (true, Some((hash, key))) = (header.status.as_u16() < 400, &state.key) {
                self.store.remove(*hash, key);
            }
            return Ok(());
        }
        let Some(status) = state.status else {
            return Ok(());
        };
        if state.may_store && !state.served {
            let req = session.req_header();
            match policy::freshness(req, header, self.max_ttl, self.max_entry_size) {
                Ok((ttl, age)) => {
                    state.tee = Some(Tee {
                        header: header.clone(),
                        body: Vec::new(),
                        ttl,
                        age,
                    })
                }
                // A 304 answers this client's validators, not the URL: others may still
                // wait for a storable response.
                Err(NotStored::Uncacheable) if header.status.as_u16() == 304 => {
                    self.release(state, false)
                }
                // An upstream failure says nothing about the URL: waiting goes on next time.
                Err(_) => self.release(state, header.status.as_u16() < 500),
            }
        }
        if let Some(name) = &self.status_header {
            header.insert_header(name.clone(), status.as_str())?;
        }
        Ok(())
    }

    fn response_body(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let Some(state) = ctx.plugin_states.get::<State>(state_key(self)) else {
            return Ok(());
        };
        if state.tee.is_none() {
            return Ok(());
        }
        let state = self.state(ctx);
        let Some(tee) = state.tee.as_mut() else {
            return Ok(());
        };
        if let Some(chunk) = body {
            if tee.body.len() + chunk.len() > self.max_entry_size {
                // Too big after all (no Content-Length): stop copying, let it stream on.
                state.tee = None;
                self.release(state, true);
                return Ok(());
            }
            tee.body.extend_from_slice(chunk);
        }
        if !end_of_stream {
            return Ok(());
        }
        if let (Some(tee), Some((hash, key))) = (state.tee.take(), &state.key) {
            let req = session.req_header();
            let vary = policy::vary_names(&tee.header);
            let values = policy::vary_values(req, &vary);
            let now = Instant::now();
            let object = Object {
                header: policy::stored_header(&tee.header, tee.body.len()),
                body: Bytes::from(tee.body),
                stored: now,
                age_at_store: tee.age,
                fresh_until: now + tee.ttl,
            };
            self.store.put(*hash, key, vary, values, object);
        }
        self.release(state, false);
        Ok(())
    }
}

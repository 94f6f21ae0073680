//! Reading a [`RequestKey`] (`ip`, `header:X`, `cookie:X`, `query:X`) out of a request, without
//! copying it: the keyed plugins (`limit`, `traffic_split`) hash what they get.

use crate::request::ctx::RequestCtx;
use crate::request::params::{cookie, query_param};
use http::HeaderName;
use louailink_shared::plugins::RequestKey;
use pingora_proxy::Session;
use std::net::IpAddr;

/// A [`RequestKey`] ready to read: the header name parsed once.
pub enum Key {
    /// The client IP (honouring `trusted_proxies`).
    Ip,
    /// A request header (its first value).
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query parameter, as sent.
    Query(String),
}

impl Key {
    /// Compiles `text` (checked by the options already; errors name it anyway).
    pub fn compile(text: &str) -> Result<Key, String> {
        Ok(match RequestKey::parse(text)? {
            RequestKey::Ip => Key::Ip,
            RequestKey::Header(h) => Key::Header(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("{h:?} is not a header name"))?,
            ),
            RequestKey::Cookie(c) => Key::Cookie(c),
            RequestKey::Query(q) => Key::Query(q),
        })
    }

    /// Calls `f` with the request's value of this key as bytes (an IP as its octets), or
    /// `None` when the request has none.
    pub fn with_value<R>(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        let req = session.req_header();
        match self {
            Key::Ip => match ctx.client_ip {
                Some(IpAddr::V4(ip)) => f(Some(&ip.octets())),
                Some(IpAddr::V6(ip)) => f(Some(&ip.octets())),
                None => f(None),
            },
            Key::Header(h) => f(req.headers.get(h).map(|v| v.as_bytes())),
            Key::Cookie(c) => f(cookie(req, c).map(str::as_bytes)),
            Key::Query(q) => f(query_param(req.uri.query(), q).map(str::as_bytes)),
        }
    }
}

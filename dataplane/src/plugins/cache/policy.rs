//! What may be stored and for how long (RFC 9111 for a shared cache, through pingora-cache's
//! `Cache-Control` parser), and what a request's `Vary` values are.

use crate::request::vary::tokens;
use http::header::{self, HeaderName};
use pingora_cache::cache_control::CacheControl;
use pingora_cache::filters::calculate_fresh_until;
use pingora_cache::CacheMetaDefaults;
use pingora_http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Statuses that may be stored (RFC 9110's heuristically cacheable ones, less 206: ranges
/// are passed through), always with an explicit freshness.
const STORABLE: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// No freshness is guessed: a response says how long it is fresh, or it is not stored.
const NO_GUESS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

/// Headers that describe one connection, not the response: never stored.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    // Computed on each hit instead.
    "age",
];

/// Why a response is passed through instead of stored.
#[derive(Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Status, `Cache-Control`, `Expires`, `Set-Cookie`, `Vary: *`, a stream, or no freshness.
    Uncacheable,
    /// `Content-Length` over `max_entry_size`.
    TooBig,
}

/// How long `resp` (to `req`) may be served from the cache, capped by `max_ttl`, and the
/// `Age` it already had; `Err` when it must not be stored.
pub fn freshness(
    req: &RequestHeader,
    resp: &ResponseHeader,
    max_ttl: Duration,
    max_entry_size: usize,
) -> Result<(Duration, u64), NotStored> {
    let headers = &resp.headers;
    let stream = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let vary_all = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|n| n.trim_ascii() == b"*")
    });
    if !STORABLE.contains(&resp.status.as_u16())
        || headers.contains_key(header::SET_COOKIE)
        || stream
        || vary_all
    {
        return Err(NotStored::Uncacheable);
    }
    let too_big = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max_entry_size as u64);
    if too_big {
        return Err(NotStored::TooBig);
    }
    let now = SystemTime::now();
    let cc = CacheControl::from_resp_headers(resp);
    let authorized = req.headers.contains_key(header::AUTHORIZATION);
    let fresh_until = calculate_fresh_until(now, cc.as_ref(), resp, authorized, &NO_GUESS)
        .ok_or(NotStored::Uncacheable)?;
    let ttl = fresh_until
        .duration_since(now)
        .map_err(|_| NotStored::Uncacheable)?;
    // Freshness counts from when the origin made the response (RFC 9111 4.2.3).
    let age: u64 = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let ttl = ttl.saturating_sub(Duration::from_secs(age)).min(max_ttl);
    if ttl < Duration::from_secs(1) {
        return Err(NotStored::Uncacheable);
    }
    Ok((ttl, age))
}

/// The header to store: hop-by-hop headers and `Age` removed, `Content-Length` set to the
/// body kept.
pub fn stored_header(resp: &ResponseHeader, body_len: usize) -> ResponseHeader {
    let mut header = resp.clone();
    for name in HOP_BY_HOP {
        header.remove_header(*name);
    }
    // A `Connection: x-foo` response also names x-foo as hop-by-hop; that is rare enough
    // to keep (pingora already consumed the upstream's Connection header).
    let _ = header.insert_header(header::CONTENT_LENGTH, body_len);
    header
}

/// The response's `Vary` header names, lower case, sorted, without duplicates.
pub fn vary_names(resp: &ResponseHeader) -> Arc<[String]> {
    let mut names: Vec<String> = tokens(&resp.headers, header::VARY).collect();
    names.sort_unstable();
    names.dedup();
    Arc::from(names)
}

/// The request's values of the `vary` headers, as one byte string that tells variants apart.
pub fn vary_values(req: &RequestHeader, vary: &[String]) -> Box<[u8]> {
    let mut out = Vec::new();
    for name in vary {
        out.extend_from_slice(name.as_bytes());
        for value in req.headers.get_all(name.as_str()) {
            // A byte that cannot occur in a header value separates them unambiguously.
            out.push(0);
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    out.into_boxed_slice()
}

/// A request header's `Cache-Control: no-cache`, or `Pragma: no-cache`.
pub fn request_says_no_cache(req: &RequestHeader) -> bool {
    let no_cache = |name: HeaderName| {
        req.headers.get_all(name).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
        })
    };
    no_cache(header::CACHE_CONTROL) || no_cache(header::PRAGMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn get(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn ttl(r: &ResponseHeader) -> Result<u64, NotStored> {
        freshness(&get(&[]), r, Duration::from_secs(3600), 1000).map(|(t, _)| t.as_secs())
    }

    #[test]
    fn only_explicitly_fresh_storable_responses_are_stored() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=60")])), Ok(60));
        let shared = resp(200, &[("cache-control", "max-age=60, s-maxage=30")]);
        assert_eq!(ttl(&shared), Ok(30), "s-maxage wins for a shared cache");
        let capped = resp(200, &[("cache-control", "max-age=999999")]);
        assert_eq!(ttl(&capped), Ok(3600));
        let aged = resp(200, &[("cache-control", "max-age=60"), ("age", "50")]);
        assert_eq!(ttl(&aged), Ok(10));
        assert_eq!(ttl(&resp(404, &[("cache-control", "max-age=5")])), Ok(5));
        for (status, headers) in [
            (200, vec![]),
            (200, vec![("cache-control", "no-store, max-age=60")]),
            (200, vec![("cache-control", "private, max-age=60")]),
            (200, vec![("cache-control", "no-cache, max-age=60")]),
            (200, vec![("cache-control", "max-age=0")]),
            (200, vec![("expires", "Thu, 01 Jan 1970 00:00:00 GMT")]),
            (
                200,
                vec![("cache-control", "max-age=60"), ("set-cookie", "a=1")],
            ),
            (
                200,
                vec![("cache-control", "max-age=60"), ("vary", "Accept, *")],
            ),
            (
                200,
                vec![
                    ("cache-control", "max-age=60"),
                    ("content-type", "text/event-stream"),
                ],
            ),
            (206, vec![("cache-control", "max-age=60")]),
            (500, vec![("cache-control", "max-age=60")]),
        ] {
            assert_eq!(
                ttl(&resp(status, &headers)),
                Err(NotStored::Uncacheable),
                "{headers:?}"
            );
        }
        let big = resp(
            200,
            &[("cache-control", "max-age=60"), ("content-length", "1001")],
        );
        assert_eq!(ttl(&big), Err(NotStored::TooBig));
    }

    #[test]
    fn an_authorized_request_is_stored_only_when_the_response_allows_it() {
        let auth = get(&[("authorization", "Bearer x")]);
        let max = Duration::from_secs(3600);
        let plain = resp(200, &[("cache-control", "max-age=60")]);
        assert!(freshness(&auth, &plain, max, 1000).is_err());
        let public = resp(200, &[("cache-control", "public, max-age=60")]);
        assert!(freshness(&auth, &public, max, 1000).is_ok());
    }

    #[test]
    fn vary_values_tell_variants_apart() {
        let vary = vary_names(&resp(
            200,
            &[("vary", "Accept-Encoding, accept"), ("vary", "ACCEPT")],
        ));
        assert_eq!(&*vary, ["accept", "accept-encoding"]);
        let gzip = vary_values(&get(&[("accept-encoding", "gzip")]), &vary);
        let none = vary_values(&get(&[]), &vary);
        let empty = vary_values(&get(&[("accept-encoding", "")]), &vary);
        assert_ne!(gzip, none);
        assert_ne!(none, empty, "an empty header is not a missing one");
        assert_eq!(
            gzip,
            vary_values(&get(&[("accept-encoding", "gzip")]), &vary)
        );
    }

    #[test]
    fn the_stored_header_has_no_connection_headers() {
        let r = resp(
            200,
            &[("transfer-encoding", "chunked"), ("age", "3"), ("x-a", "1")],
        );
        let h = stored_header(&r, 42);
        assert!(h.headers.get("transfer-encoding").is_none() && h.headers.get("age").is_none());
        assert_eq!(h.headers["content-length"], "42");
        assert_eq!(h.headers["x-a"], "1");
    }
}

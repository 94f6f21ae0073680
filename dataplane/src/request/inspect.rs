//! Reading facts out of the request as received: host, size of the header block, client IP,
//! request id.

use crate::request::ctx::RequestCtx;
use ipnet::IpNet;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use std::net::IpAddr;

/// The request host without port, from the absolute URI / `:authority`, else `Host`.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    let raw = match req
        .uri
        .host()
        .or_else(|| absolute_form_authority(req.raw_path()))
    {
        Some(h) => h,
        None => req.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// The authority of an absolute-form request target (`GET http://a.com/x HTTP/1.1`), which
/// pingora keeps only in the raw target.
fn absolute_form_authority(target: &[u8]) -> Option<&str> {
    let rest = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = std::str::from_utf8(&rest[..end]).ok()?;
    // Drop any userinfo; it is not part of the host.
    Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

/// Requests whose header block is larger than this get 431 (pingora's own cap is 1 MiB).
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

/// Approximate size of the request line and headers as received.
pub fn header_bytes(req: &RequestHeader) -> usize {
    req.raw_path().len()
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// The client IP: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most untrusted address of `X-Forwarded-For`.
pub fn client_ip(session: &Session, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = session.client_addr()?.as_inet()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// Takes the client's `X-Request-Id`, or generates one, unless the request has one already.
pub fn ensure_request_id(session: &Session, ctx: &mut RequestCtx) {
    if !ctx.request_id.is_empty() {
        return;
    }
    match session
        .req_header()
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => ctx.request_id.push_str(id),
        None => push_ascii(&mut ctx.request_id, &hex32(fastrand::u128(..))),
    }
}

/// The 32 lower-case hex digits of `n`, most significant first (by table: `core::fmt` costs
/// about ten times as much on every request).
pub fn hex32(n: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 32];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    digits
}

/// Appends ASCII bytes.
pub fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "Example.com:8080").unwrap();
        assert_eq!(request_host(&req), Some("Example.com"));
        req.insert_header("Host", "[::1]:80").unwrap();
        assert_eq!(request_host(&req), Some("::1"));
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.set_uri("http://abs.com:81/x".parse().unwrap());
        assert_eq!(request_host(&req), Some("abs.com"));
        assert_eq!(
            absolute_form_authority(b"http://u@abs.com:81/x?y"),
            Some("abs.com:81")
        );
        assert_eq!(absolute_form_authority(b"/x"), None);
    }
}

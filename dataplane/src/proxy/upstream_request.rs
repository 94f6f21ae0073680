//! The HTTP/1.1 request header sent to a backend by LouAILink's own exchange, built from the
//! client's request by the rules pingora's proxy path applies (so both paths send the same
//! bytes): HTTP/1.1, `Host` from an HTTP/2 `:authority`, hop-by-hop fields and the fields the
//! client's `Connection` names removed, and a body without a length sent chunked.

use crate::request::reply::status_error;
use http::header::{self, HeaderName};
use http::Version;
use pingora::Result;
use pingora_http::RequestHeader;

/// More `Connection` tokens than this is refused (a bound on work per request).
const MAX_NOMINATIONS: usize = 10;

/// Hop-by-hop fields (RFC 9110 7.6.1, plus the legacy ones proxies drop).
const HOP_BY_HOP: [&str; 10] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "connection",
    "upgrade",
    "http2-settings",
];

/// The client's request made ready for the backend, before the `upstream_request` phase.
pub fn build(client: &RequestHeader) -> Result<Box<RequestHeader>> {
    let mut req = Box::new(client.clone());
    req.set_version(Version::HTTP_11);
    if client.version == Version::HTTP_2 {
        host_from_authority(&mut req)?;
    }
    if req.headers.contains_key(header::CONNECTION) {
        for name in nominated(&req)?.into_iter().flatten() {
            req.remove_header(&name);
        }
    }
    for name in HOP_BY_HOP {
        if req.headers.contains_key(name) {
            req.remove_header(name);
        }
    }
    Ok(req)
}

/// After the `upstream_request` phase: a body-bearing request without a length is sent
/// chunked.
pub fn frame(req: &mut RequestHeader, has_body: bool) -> Result<()> {
    if has_body
        && !req.headers.contains_key(header::CONTENT_LENGTH)
        && !req.headers.contains_key(header::TRANSFER_ENCODING)
    {
        req.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(())
}

/// `Host` for an HTTP/1.1 backend from an HTTP/2 request's `:authority`.
fn host_from_authority(req: &mut RequestHeader) -> Result<()> {
    let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) else {
        if !req.headers.contains_key(header::HOST) {
            req.insert_header(header::HOST, "")?;
        }
        return Ok(());
    };
    if authority.contains('@') {
        return Err(status_error(400, "userinfo in the request authority"));
    }
    let mut hosts = req.headers.get_all(header::HOST).iter();
    let same = hosts
        .next()
        .is_some_and(|h| h.as_bytes() == authority.as_bytes())
        && hosts.next().is_none();
    if !same {
        req.insert_header(header::HOST, authority)?;
    }
    Ok(())
}

/// The fields the client's `Connection` header names, to be removed. Naming `Host` or the
/// forwarding fields (to strip what the proxy adds or checks), a pseudo-header or a
/// malformed token is refused.
fn nominated(req: &RequestHeader) -> Result<[Option<HeaderName>; MAX_NOMINATIONS]> {
    let mut names: [Option<HeaderName>; MAX_NOMINATIONS] = Default::default();
    let tokens = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    for (i, token) in tokens.enumerate() {
        if i + 1 >= MAX_NOMINATIONS {
            return Err(status_error(400, "too many Connection header tokens"));
        }
        if !token.iter().all(|b| is_tchar(*b)) {
            return Err(status_error(400, "invalid token in the Connection header"));
        }
        let name = HeaderName::from_bytes(token)
            .map_err(|_| status_error(400, "invalid token in the Connection header"))?;
        if matches!(
            name.as_str(),
            "host" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
        ) {
            return Err(status_error(
                400,
                "the Connection header names a protected header",
            ));
        }
        names[i] = Some(name);
    }
    Ok(names)
}

/// A `tchar` of RFC 9110 5.6.2 (a header name or `Connection` token byte).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        for (k, v) in lines {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn hop_by_hop_and_nominated_fields_are_removed() {
        let r = request(&[
            ("Host", "a"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("X-Kept", "2"),
        ]);
        let mut out = build(&r).unwrap();
        frame(&mut out, true).unwrap();
        let names: Vec<_> = out.headers.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["host", "x-kept", "transfer-encoding"]);
        assert_eq!(out.headers["transfer-encoding"], "chunked");
    }

    #[test]
    fn protected_or_malformed_nominations_are_refused() {
        for bad in ["X-Forwarded-For", "host", "\"x\"", "a,b,c,d,e,f,g,h,i,j,k"] {
            let r = request(&[("Connection", bad)]);
            assert!(build(&r).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_length_is_kept_and_no_body_means_no_framing() {
        let r = request(&[("Content-Length", "3")]);
        let mut out = build(&r).unwrap();
        frame(&mut out, true).unwrap();
        assert!(!out.headers.contains_key("transfer-encoding"));
        let mut out = build(&request(&[])).unwrap();
        frame(&mut out, false).unwrap();
        assert!(out.headers.is_empty());
    }
}

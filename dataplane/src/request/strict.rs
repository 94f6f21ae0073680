//! What a client may send beyond what pingora's parser accepts: the checks nginx makes on a
//! request line and its framing headers, answered as nginx answers them (docs/security.md,
//! "What a client may send").

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Method, Version};
use pingora_http::RequestHeader;

/// Why a request is refused: the status and the message of the error page.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// Short reason for the error body.
    pub message: &'static str,
}

const fn refuse(status: u16, message: &'static str) -> Result<(), Refused> {
    Err(Refused { status, message })
}

/// Checks the request line and framing headers; `Err` says how to answer instead.
pub fn check(req: &RequestHeader) -> Result<(), Refused> {
    // nginx: a method is upper-case letters, `_` and `-` (`get` is not GET).
    let method = req.method.as_str().as_bytes();
    if !method
        .iter()
        .all(|b| b.is_ascii_uppercase() || *b == b'_' || *b == b'-')
    {
        return refuse(400, "invalid method");
    }
    // TRACE echoes the request (headers and cookies included) back: nginx never allows it.
    if req.method == Method::TRACE {
        return refuse(405, "method not allowed");
    }
    if req.version < Version::HTTP_2 {
        let raw = req.raw_path();
        let absolute = raw.len() > 8
            && (raw[..7].eq_ignore_ascii_case(b"http://")
                || raw[..8].eq_ignore_ascii_case(b"https://"));
        if !raw.starts_with(b"/") && !absolute {
            return refuse(400, "the request target must start with '/'");
        }
        let hosts = req.headers.get_all(HOST).iter().count();
        if hosts > 1 {
            return refuse(400, "more than one Host header");
        }
        if hosts == 0 && req.version == Version::HTTP_11 && !absolute {
            return refuse(400, "an HTTP/1.1 request needs a Host header");
        }
    }
    // pingora accepts `Content-Length: 3,3` and duplicates of one value, and forwards them as
    // sent: one header of digits only, as nginx, so that no hop can read it differently.
    if !req.headers.contains_key(TRANSFER_ENCODING) {
        let mut lengths = req.headers.get_all(CONTENT_LENGTH).iter();
        if let Some(first) = lengths.next() {
            let digits = first.as_bytes();
            if lengths.next().is_some() {
                return refuse(400, "more than one Content-Length header");
            }
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return refuse(400, "invalid Content-Length");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn status(r: &RequestHeader) -> u16 {
        check(r).err().map_or(0, |e| e.status)
    }

    #[test]
    fn nginx_answers() {
        let host = [("Host", "x")];
        assert_eq!(status(&req("GET", "/a", &host)), 0);
        assert_eq!(status(&req("PROPFIND", "/a", &host)), 0);
        assert_eq!(status(&req("get", "/a", &host)), 400);
        assert_eq!(status(&req("TRACE", "/a", &host)), 405);
        assert_eq!(status(&req("GET", "/a", &[])), 400);
        assert_eq!(status(&req("GET", "http://x/a", &[])), 0);
        assert_eq!(status(&req("GET", "a", &host)), 400);
        assert_eq!(status(&req("GET", "*", &host)), 400);
        assert_eq!(
            status(&req("GET", "/", &[("Host", "x"), ("Host", "y")])),
            400
        );
        let cl = |v: &'static str| [("Host", "x"), ("Content-Length", v)];
        assert_eq!(status(&req("POST", "/", &cl("3"))), 0);
        assert_eq!(status(&req("POST", "/", &cl("3,3"))), 400);
        assert_eq!(status(&req("POST", "/", &cl("+3"))), 400);
        let two = [
            ("Host", "x"),
            ("Content-Length", "3"),
            ("Content-Length", "3"),
        ];
        assert_eq!(status(&req("POST", "/", &two)), 400);
        let mut old = req("GET", "/", &[]);
        old.set_version(Version::HTTP_10);
        assert_eq!(status(&old), 0);
    }
}

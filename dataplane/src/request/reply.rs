//! Responses produced here instead of by the upstream: a plugin's [`Reply`], and the error
//! responses of the proxy itself (404, 413, 429, 502, 503, 504, ...): a short HTML body, JSON
//! when the client accepts it, or `basic.error_template`.

use super::stream::Part;
use bytes::Bytes;
use pingora::{Error, ErrorType};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

/// A response produced by a plugin or the proxy instead of the upstream.
#[derive(Clone)]
pub struct Reply {
    /// Status and headers.
    pub header: ResponseHeader,
    /// Body held in memory.
    pub body: Bytes,
    /// Body read as it is sent, after `body` (ranges of files): the proxy writes it chunk by
    /// chunk once the location's `response` phase has seen the header.
    pub stream: Vec<Part>,
}

impl Reply {
    /// A reply with this header and body, as they are.
    pub fn with_header(header: ResponseHeader, body: Bytes) -> Self {
        Reply {
            header,
            body,
            stream: Vec::new(),
        }
    }

    /// A reply with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: Bytes) -> pingora::Result<Self> {
        let mut header = ResponseHeader::build(status, Some(3))?;
        header.insert_header(http::header::CONTENT_TYPE, content_type)?;
        header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        Ok(Reply::with_header(header, body))
    }

    /// A reply whose body is `parts`, streamed; `Content-Length` is their total length.
    pub fn streamed(status: u16, content_type: &str, parts: Vec<Part>) -> pingora::Result<Self> {
        let len: u64 = parts.iter().map(Part::len).sum();
        let mut reply = Reply::new(status, content_type, Bytes::new())?;
        reply
            .header
            .insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
        reply.stream = parts;
        Ok(reply)
    }
}

/// Builds the error reply for `status`. `message` is shown to the client.
pub fn error_reply(
    session: &Session,
    status: u16,
    message: &str,
    template: Option<&str>,
) -> pingora::Result<Reply> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let wants_json = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let (content_type, body) = if let Some(t) = template {
        let body = t
            .replace("{status}", &status.to_string())
            .replace("{reason}", reason)
            .replace("{message}", &html_escape(message));
        ("text/html; charset=utf-8", body)
    } else if wants_json {
        let body = serde_json::json!({"status": status, "error": reason, "message": message});
        ("application/json", body.to_string())
    } else {
        let body = format!(
            "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1><p>{}</p><hr><p>louailink</p></body></html>\n",
            html_escape(message)
        );
        ("text/html; charset=utf-8", body)
    };
    let mut reply = Reply::new(status, content_type, Bytes::from(body))?;
    reply
        .header
        .insert_header(http::header::CACHE_CONTROL, "no-store")?;
    Ok(reply)
}

/// `s` with `<`, `>`, `&` and `"` escaped, for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// An error that makes pingora answer `status` (through `fail_to_proxy`).
pub fn status_error(status: u16, message: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), message)
}

/// The status a proxy failure maps to, or 0 when the client is gone.
pub fn status_for(e: &Error) -> u16 {
    use pingora::ErrorSource;
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
            if e.esource() == &ErrorSource::Downstream {
                408
            } else {
                504
            }
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// A short client-facing message for a status.
pub fn message_for(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        408 => "request timed out",
        413 => "request body too large",
        429 => "too many requests",
        502 => "the upstream refused or reset the connection",
        503 => "no healthy backend available",
        504 => "the upstream timed out",
        _ => "request failed",
    }
}

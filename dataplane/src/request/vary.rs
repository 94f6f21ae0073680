//! Comma-separated header lists (`Vary`, `Cache-Control`, `Connection`): their tokens,
//! finding one, adding one to `Vary`.

use http::header::{HeaderMap, VARY};
use pingora_http::ResponseHeader;

/// The tokens of a comma-separated header (all its lines), trimmed and lower-case.
pub fn tokens(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// True when a comma-separated header (any of its lines) holds `token`, ignoring case.
pub fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Adds `field` to `Vary` unless it (or `*`) is there already.
pub fn add_vary(header: &mut ResponseHeader, field: &'static str) -> pingora::Result<()> {
    if has_token(&header.headers, VARY, field) || has_token(&header.headers, VARY, "*") {
        return Ok(());
    }
    header.append_header(VARY, field).map(|_| ())
}

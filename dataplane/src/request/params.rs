//! Credentials and keys carried in query parameters and cookies: read one by name, or take it
//! out of the request before it goes upstream.

use http::header::COOKIE;
use pingora_http::RequestHeader;

/// The value of query parameter `name`, as sent (not percent-decoded; `""` for `?name`).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v)
    })
}

/// Removes every query parameter `name` from the request's URI.
pub fn remove_query_param(request: &mut RequestHeader, name: &str) -> pingora::Result<()> {
    if query_param(request.uri.query(), name).is_none() {
        return Ok(());
    }
    let kept: Vec<&str> = request
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(n, _)| n) != name)
        .collect();
    let path = request.uri.path();
    let uri = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let uri = uri.parse().map_err(|e| {
        pingora::Error::because(pingora::ErrorType::InternalError, "removing a parameter", e)
    })?;
    request.set_uri(uri);
    Ok(())
}

/// The `(name, value)` pairs of every `Cookie` header (h2 may split them over several).
fn cookies(request: &RequestHeader) -> impl Iterator<Item = (&str, &str)> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some((n.trim(), v.trim()))
        })
}

/// The value of cookie `name`.
pub fn cookie<'a>(request: &'a RequestHeader, name: &str) -> Option<&'a str> {
    cookies(request).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Removes cookie `name`, keeping the others (the header goes when none is left).
pub fn remove_cookie(request: &mut RequestHeader, name: &str) -> pingora::Result<()> {
    if cookie(request, name).is_none() {
        return Ok(());
    }
    let kept: Vec<String> = cookies(request)
        .filter(|(n, _)| *n != name)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    request.remove_header(&COOKIE);
    if !kept.is_empty() {
        request.insert_header(COOKIE, kept.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, cookies: &[&str]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for c in cookies {
            req.append_header(COOKIE, *c).unwrap();
        }
        req
    }

    #[test]
    fn a_query_parameter_is_found_and_removed_by_its_exact_name() {
        let mut req = request("/x?a=1&tok=s&xtok=2&tok=t", &[]);
        assert_eq!(query_param(req.uri.query(), "tok"), Some("s"));
        assert_eq!(query_param(req.uri.query(), "to"), None);
        assert_eq!(query_param(Some("a&tok"), "tok"), Some(""));
        remove_query_param(&mut req, "tok").unwrap();
        assert_eq!(req.uri.to_string(), "/x?a=1&xtok=2");
        let mut req = request("/x?tok=s", &[]);
        remove_query_param(&mut req, "tok").unwrap();
        assert_eq!(req.uri.to_string(), "/x");
    }

    #[test]
    fn a_cookie_is_found_in_any_cookie_header_and_removed_alone() {
        let mut req = request("/", &["a=1; sess=xyz", "b=2"]);
        assert_eq!(cookie(&req, "sess"), Some("xyz"));
        assert_eq!(cookie(&req, "b"), Some("2"));
        assert_eq!(cookie(&req, "ses"), None);
        remove_cookie(&mut req, "sess").unwrap();
        let left: Vec<_> = req.headers.get_all(COOKIE).iter().collect();
        assert_eq!(left, ["a=1; b=2"]);
        let mut req = request("/", &["sess=xyz"]);
        remove_cookie(&mut req, "sess").unwrap();
        assert!(req.headers.get(COOKIE).is_none());
    }
}

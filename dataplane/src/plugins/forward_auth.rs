//! `forward_auth`: asks an auth service (`auth_url`, a `GET` with the chosen client headers and
//! `X-Forwarded-Method` / `-Uri` / `-Host` / `-Proto` / `-For`) about each request, as Traefik
//! does. A 2xx answer lets the request on, with the chosen answer headers put on it (replacing
//! whatever the client sent under those names); any other answer goes back to the client as it
//! came (hop-by-hop headers dropped, body cut at 64 KiB); no answer in time is a 503.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use crate::request::vary::tokens;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use louailink_shared::plugins::ForwardAuthOptions;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

/// The most of an auth answer's body passed on to the client.
const MAX_BODY: usize = 64 * 1024;

/// Headers of one connection only (RFC 9110 7.6.1), never passed on.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The `forward_auth` plugin.
pub struct ForwardAuth {
    /// One client per instance: its connections to the auth service are kept and reused.
    client: reqwest::Client,
    url: reqwest::Url,
    request_headers: Box<[HeaderName]>,
    response_headers: Box<[HeaderName]>,
}

fn header_names(names: &[String]) -> Result<Box<[HeaderName]>, String> {
    names
        .iter()
        .map(|n| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"))
        })
        .collect()
}

impl Build for ForwardAuth {
    type Options = ForwardAuthOptions;

    fn build(o: ForwardAuthOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        // reqwest takes the process's rustls provider; make sure there is one (ring, as
        // everywhere here), also where `main` did not run (unit tests).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            // Redirects are answers for the client, not for us to follow.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(o.timeout.get())
            .build()
            .map_err(|e| format!("auth client: {e}"))?;
        Ok(ForwardAuth {
            client,
            url: reqwest::Url::parse(&o.auth_url).map_err(|e| format!("auth_url: {e}"))?,
            request_headers: header_names(&o.request_headers.0)?,
            response_headers: header_names(&o.response_headers.0)?,
        })
    }
}

impl ForwardAuth {
    /// What the auth service is told: the chosen client headers and the `X-Forwarded-*` facts.
    fn auth_headers(&self, session: &Session, ctx: &RequestCtx) -> HeaderMap {
        let req = session.req_header();
        let mut out = HeaderMap::new();
        for name in self.request_headers.iter() {
            for v in req.headers.get_all(name) {
                out.append(name.clone(), v.clone());
            }
        }
        let uri = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let client_ip = ctx.client_ip.map(|ip| ip.to_string());
        let facts = [
            ("x-forwarded-method", Some(req.method.as_str())),
            ("x-forwarded-uri", Some(uri)),
            ("x-forwarded-host", host),
            ("x-forwarded-proto", Some(ctx.scheme())),
            ("x-forwarded-for", client_ip.as_deref()),
        ];
        for (name, value) in facts {
            // Each value was a valid header or URI part already; an odd one is left out.
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                out.insert(name, v);
            }
        }
        out
    }

    /// A 2xx: the chosen headers of the answer replace the client's under those names (a
    /// client cannot send its own `X-User` past an answer that has none).
    fn copy_onto_request(&self, session: &mut Session, answer: &HeaderMap) -> pingora::Result<()> {
        let req = session.req_header_mut();
        for name in self.response_headers.iter() {
            req.remove_header(name);
            for v in answer.get_all(name) {
                req.append_header(name.clone(), v.clone())?;
            }
        }
        Ok(())
    }
}

/// Up to [`MAX_BODY`] of the answer's body (the rest is not read).
async fn bounded_body(answer: &mut reqwest::Response) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = answer.chunk().await? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_BODY {
            break;
        }
    }
    Ok(body.freeze())
}

/// The auth service's refusal as the client's answer: status, end-to-end headers, body.
fn pass_back(answer: &reqwest::Response, body: Bytes) -> pingora::Result<Reply> {
    let headers = answer.headers();
    let named_by_connection: Vec<String> = tokens(headers, header::CONNECTION).collect();
    let mut header = ResponseHeader::build(answer.status(), Some(headers.len() + 1))?;
    for (name, value) in headers {
        let n = name.as_str();
        let skip = HOP_BY_HOP.contains(&n)
            || n == "content-length"
            || named_by_connection.iter().any(|c| c == n);
        if !skip {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    Ok(Reply::with_header(header, body))
}

#[async_trait]
impl Plugin for ForwardAuth {
    fn category(&self) -> &'static str {
        "forward_auth"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let asked = self
            .client
            .get(self.url.clone())
            .headers(self.auth_headers(session, ctx))
            .send()
            .await;
        let mut answer = match asked {
            Ok(a) => a,
            Err(e) => return Ok(unavailable(e)),
        };
        if answer.status().is_success() {
            self.copy_onto_request(session, answer.headers())?;
            // A short body read to its end lets the connection go back to the pool.
            if answer
                .content_length()
                .is_some_and(|n| n <= MAX_BODY as u64)
            {
                let _ = bounded_body(&mut answer).await;
            }
            return Ok(Flow::Continue);
        }
        match bounded_body(&mut answer).await {
            Ok(body) => Ok(Flow::Reply(Box::new(pass_back(&answer, body)?))),
            Err(e) => Ok(unavailable(e)),
        }
    }
}

/// No (whole) answer from the auth service in time: 503. The URL may hold a secret, so the
/// log line leaves it out.
fn unavailable(e: reqwest::Error) -> Flow {
    tracing::debug!(error = %e.without_url(), "forward_auth: no answer from the auth service");
    Flow::Error(503, "the auth service did not answer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_end_to_end_headers_and_gets_its_own_length() {
        let answer = http::Response::builder()
            .status(401)
            .header("www-authenticate", "Basic realm=\"x\"")
            .header("connection", "close, X-Hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("transfer-encoding", "chunked")
            .header("content-length", "999")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(Bytes::new())
            .unwrap();
        let reply = pass_back(&reqwest::Response::from(answer), Bytes::from_static(b"no")).unwrap();
        let h = &reply.header;
        assert_eq!(h.status, 401);
        assert_eq!(h.headers["www-authenticate"], "Basic realm=\"x\"");
        assert_eq!(h.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(h.headers["content-length"], "2");
        for gone in ["connection", "x-hop", "keep-alive", "transfer-encoding"] {
            assert!(h.headers.get(gone).is_none(), "{gone}");
        }
    }
}

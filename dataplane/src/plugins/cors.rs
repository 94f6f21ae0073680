//! `cors`: answers a CORS preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) itself with 204, and adds `Access-Control-Allow-Origin`
//! and the rest to the responses for an allowed origin. A disallowed origin gets no CORS
//! header at all (its preflight a bare 204), so the browser refuses the real request.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use crate::request::vary::add_vary;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderValue, Method};
use louailink_shared::patterns::{compile_regex, parse_path, PathPattern};
use louailink_shared::plugins::{origin_ok, CorsOptions, REFLECT_ORIGIN};
use louailink_shared::values::StrList;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use regex::Regex;

/// Which origins are allowed.
enum Origins {
    /// `*`: every origin, answered with `*`.
    Any,
    /// `$http_origin`: every well-formed origin, answered with itself.
    Reflect,
    /// These origins, answered with themselves.
    List(Vec<String>),
}

/// Which paths the plugin handles.
enum Paths {
    Any,
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

/// The `cors` plugin.
pub struct Cors {
    paths: Paths,
    origins: Origins,
    /// `None`: `*`, the method (or headers) the preflight asks for is allowed.
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    credentials: bool,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// A list option as one header value; `None` for `*` (reflect what is asked).
fn joined(list: &StrList, key: &str) -> Result<Option<HeaderValue>, String> {
    if list.iter().any(|m| m == "*") {
        return Ok(None);
    }
    let text = list.0.join(", ");
    HeaderValue::from_str(&text)
        .map(Some)
        .map_err(|_| format!("{key}: {text:?} is not a header value"))
}

impl Build for Cors {
    type Options = CorsOptions;

    fn build(o: CorsOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let paths = match parse_path(Some(&o.path))? {
            PathPattern::Any => Paths::Any,
            PathPattern::Exact(p) => Paths::Exact(p),
            PathPattern::Prefix(p) => Paths::Prefix(p),
            PathPattern::Regex(r) => Paths::Regex(compile_regex(&r)?),
        };
        let origins = match o.allow_origin.0.first().map(String::as_str) {
            Some("*") => Origins::Any,
            Some(REFLECT_ORIGIN) => Origins::Reflect,
            _ => Origins::List(o.allow_origin.0.clone()),
        };
        let expose = match o.expose_headers.is_empty() {
            true => None,
            false => Some(
                HeaderValue::from_str(&o.expose_headers.0.join(", "))
                    .map_err(|_| "expose_headers: not a header value".to_string())?,
            ),
        };
        Ok(Cors {
            paths,
            origins,
            methods: joined(&o.allow_methods, "allow_methods")?,
            headers: joined(&o.allow_headers, "allow_headers")?,
            credentials: o.allow_credentials,
            expose,
            max_age: o.max_age.map(|d| HeaderValue::from(d.0.as_secs())),
        })
    }
}

fn is_preflight(req: &RequestHeader) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(ORIGIN)
        && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

impl Cors {
    fn handles(&self, path: &str) -> bool {
        match &self.paths {
            Paths::Any => true,
            Paths::Exact(p) => path == p,
            Paths::Prefix(p) => path.starts_with(p.as_str()),
            Paths::Regex(re) => re.is_match(path),
        }
    }

    /// The `Access-Control-Allow-Origin` value for this request, if its origin is allowed.
    fn allow_origin(&self, req: &RequestHeader) -> Option<HeaderValue> {
        if let Origins::Any = self.origins {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = req.headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        let allowed = match &self.origins {
            Origins::Any => true,
            // Only a well-formed origin is echoed: never `null`, lists or odd bytes.
            Origins::Reflect => origin_ok(text),
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(text)),
        };
        allowed.then(|| origin.clone())
    }

    /// The headers every answer to an allowed origin carries.
    fn origin_headers(&self, h: &mut ResponseHeader, origin: HeaderValue) -> pingora::Result<()> {
        h.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, origin)?;
        if self.credentials {
            h.insert_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
        }
        if !matches!(self.origins, Origins::Any) {
            add_vary(h, "Origin")?;
        }
        Ok(())
    }

    /// The answer to a preflight.
    fn preflight(&self, req: &RequestHeader) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(204, Some(8))?;
        let Some(origin) = self.allow_origin(req) else {
            if !matches!(self.origins, Origins::Any) {
                add_vary(&mut h, "Origin")?;
            }
            return Ok(h);
        };
        self.origin_headers(&mut h, origin)?;
        let asked = |name| req.headers.get(name).cloned();
        let methods = self
            .methods
            .clone()
            .or_else(|| asked(ACCESS_CONTROL_REQUEST_METHOD));
        if let Some(m) = methods {
            h.insert_header(ACCESS_CONTROL_ALLOW_METHODS, m)?;
        }
        let headers = self
            .headers
            .clone()
            .or_else(|| asked(ACCESS_CONTROL_REQUEST_HEADERS));
        if let Some(v) = headers {
            h.insert_header(ACCESS_CONTROL_ALLOW_HEADERS, v)?;
        }
        if let Some(age) = &self.max_age {
            h.insert_header(ACCESS_CONTROL_MAX_AGE, age.clone())?;
        }
        Ok(h)
    }
}

#[async_trait]
impl Plugin for Cors {
    fn category(&self) -> &'static str {
        "cors"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::RESPONSE
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let req = session.req_header();
        if !is_preflight(req) || !self.handles(req.uri.path()) {
            return Ok(Flow::Continue);
        }
        let header = self.preflight(req)?;
        Ok(Flow::Reply(Box::new(Reply::with_header(
            header,
            Bytes::new(),
        ))))
    }

    fn response(
        &self,
        session: &mut Session,
        header: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let req = session.req_header();
        // A preflight was answered in full by `request` (or refused by a plugin before it).
        if is_preflight(req) || !self.handles(req.uri.path()) {
            return Ok(());
        }
        match self.allow_origin(req) {
            Some(origin) => {
                self.origin_headers(header, origin)?;
                if let Some(expose) = &self.expose {
                    header.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone())?;
                }
                Ok(())
            }
            None => add_vary(header, "Origin"),
        }
    }
}

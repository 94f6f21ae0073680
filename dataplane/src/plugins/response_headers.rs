//! `response_headers`: renames, removes, sets and appends response headers, in that order,
//! with request variables in the values. It runs in the `response` phase, so it also changes
//! replies made by plugins (`mock`) and the proxy's error pages. The location's own
//! `response_headers` option is this plugin with only `set`.

use super::{Build, BuildCtx, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::inspect::ensure_request_id;
use crate::request::vars::{compile_headers, HeaderRule};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use louailink_shared::plugins::ResponseHeadersOptions;
use louailink_shared::values::split_header_line;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

/// One `"Old: New"` rename.
struct Rename {
    from: HeaderName,
    to: HeaderName,
    /// `New` as written, so HTTP/1.1 keeps its case.
    to_case: Bytes,
}

/// The `response_headers` plugin (and the location option of the same name).
pub struct ResponseHeaders {
    category: &'static str,
    rename: Vec<Rename>,
    remove: Vec<HeaderName>,
    set: Vec<HeaderRule>,
    add: Vec<HeaderRule>,
    /// A value reads `$request_id`: make sure the request has one.
    request_id: bool,
    captures: bool,
}

impl ResponseHeaders {
    fn new(category: &'static str, set: Vec<HeaderRule>, add: Vec<HeaderRule>) -> Self {
        let rules = || set.iter().chain(&add);
        ResponseHeaders {
            category,
            request_id: rules().any(|r| r.value.uses_request_id()),
            captures: rules().any(|r| r.value.uses_captures()),
            rename: Vec::new(),
            remove: Vec::new(),
            set,
            add,
        }
    }

    /// The location's `response_headers` option: each header set (replaced).
    pub fn builtin(set: Vec<HeaderRule>) -> Self {
        Self::new("response headers (built-in)", set, Vec::new())
    }
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
}

impl Build for ResponseHeaders {
    type Options = ResponseHeadersOptions;

    fn build(o: ResponseHeadersOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let set = compile_headers(&o.set_headers.0)?;
        let add = compile_headers(&o.add_headers.0)?;
        let mut plugin = Self::new("response_headers", set, add);
        plugin.remove = o
            .remove_headers
            .iter()
            .map(|n| header_name(n))
            .collect::<Result<_, _>>()?;
        for line in &o.rename_headers.0 {
            let (from, to) = split_header_line(line)?;
            plugin.rename.push(Rename {
                from: header_name(from)?,
                to: header_name(to)?,
                to_case: Bytes::from(to.to_string()),
            });
        }
        Ok(plugin)
    }
}

impl Plugin for ResponseHeaders {
    fn category(&self) -> &'static str {
        self.category
    }

    fn phases(&self) -> Phases {
        Phases::RESPONSE
    }

    fn needs_captures(&self) -> bool {
        self.captures
    }

    fn response(
        &self,
        session: &mut Session,
        header: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for r in &self.rename {
            if !header.headers.contains_key(&r.from) {
                continue;
            }
            let values: Vec<HeaderValue> =
                header.headers.get_all(&r.from).iter().cloned().collect();
            header.remove_header(&r.from);
            header.remove_header(&r.to);
            for v in values {
                header.append_header(r.to_case.clone(), v)?;
            }
        }
        for name in &self.remove {
            header.remove_header(name);
        }
        if self.request_id {
            ensure_request_id(session, ctx);
        }
        for h in &self.set {
            if let Some(v) = h.value.render(session, ctx) {
                header.insert_header(h.name, v)?;
            }
        }
        for h in &self.add {
            if let Some(v) = h.value.render(session, ctx) {
                header.append_header(h.name, v)?;
            }
        }
        Ok(())
    }
}

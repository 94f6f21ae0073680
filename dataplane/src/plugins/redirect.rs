//! `redirect`: answers a redirect (301 by default) that keeps the path and query, to
//! `https://` on the same host for plain-HTTP requests, and/or under a path prefix.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::RedirectOptions;
use pingora_proxy::Session;

/// The `redirect` plugin.
pub struct Redirect {
    http_to_https: bool,
    prefix: String,
    status: u16,
}

impl Build for Redirect {
    type Options = RedirectOptions;

    fn build(options: RedirectOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(Redirect {
            http_to_https: options.http_to_https,
            prefix: options.prefix,
            status: options.status,
        })
    }
}

impl Redirect {
    /// Where to send this request, if anywhere.
    fn target(&self, session: &Session, ctx: &RequestCtx) -> Option<String> {
        let uri = &session.req_header().uri;
        let path = uri.path();
        // `/api` is under the prefix `/api` as `/api/x` is; `/apix` is not.
        let under_prefix = path
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let to_https = self.http_to_https && !ctx.tls && !ctx.host.is_empty();
        if !to_https && (self.prefix.is_empty() || under_prefix) {
            return None;
        }
        let mut target = String::new();
        if to_https {
            target.push_str("https://");
            target.push_str(&ctx.host);
        }
        if !under_prefix {
            target.push_str(&self.prefix);
        }
        target.push_str(path);
        if let Some(query) = uri.query() {
            target.push('?');
            target.push_str(query);
        }
        Some(target)
    }
}

#[async_trait]
impl Plugin for Redirect {
    fn category(&self) -> &'static str {
        "redirect"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        let Some(target) = self.target(session, ctx) else {
            return Ok(Flow::Continue);
        };
        let mut reply = Reply::new(self.status, "text/plain", Bytes::new())?;
        reply.header.insert_header(http::header::LOCATION, target)?;
        Ok(Flow::Reply(Box::new(reply)))
    }
}

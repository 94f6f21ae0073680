//! `ping`: answers `200 pong` on one exact path, for load balancer probes.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::PingOptions;
use pingora_proxy::Session;

/// The `ping` plugin.
pub struct Ping {
    path: String,
    /// Built once: cloning a header costs a fraction of building it per request.
    reply: Reply,
}

impl Build for Ping {
    type Options = PingOptions;

    fn build(options: PingOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let reply = Reply::new(200, "text/plain", Bytes::from_static(b"pong"))
            .map_err(|e| format!("cannot build the ping response: {e}"))?;
        Ok(Ping {
            path: options.path,
            reply,
        })
    }
}

#[async_trait]
impl Plugin for Ping {
    fn category(&self) -> &'static str {
        "ping"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if session.req_header().uri.path() != self.path {
            return Ok(Flow::Continue);
        }
        Ok(Flow::Reply(Box::new(self.reply.clone())))
    }
}

//! `mock`: answers a fixed response (status, headers, body), optionally after a delay.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use crate::request::vars::{compile_headers, HeaderRule};
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::MockOptions;
use pingora_proxy::Session;
use std::time::Duration;

/// The `mock` plugin.
pub struct Mock {
    path: String,
    status: u16,
    headers: Vec<HeaderRule>,
    data: Bytes,
    delay: Option<Duration>,
}

impl Build for Mock {
    type Options = MockOptions;

    fn build(options: MockOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(Mock {
            path: options.path,
            status: options.status,
            headers: compile_headers(&options.headers.0)?,
            data: Bytes::from(options.data),
            delay: options.delay.map(|d| d.0),
        })
    }
}

#[async_trait]
impl Plugin for Mock {
    fn category(&self) -> &'static str {
        "mock"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if !self.path.is_empty() && session.req_header().uri.path() != self.path {
            return Ok(Flow::Continue);
        }
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let content_type = if self.data.first() == Some(&b'{') || self.data.first() == Some(&b'[') {
            "application/json"
        } else {
            "text/plain"
        };
        let mut reply = Reply::new(self.status, content_type, self.data.clone())?;
        for h in &self.headers {
            if let Some(v) = h.value.render(session, ctx) {
                reply.header.insert_header(h.name, v)?;
            }
        }
        Ok(Flow::Reply(Box::new(reply)))
    }
}

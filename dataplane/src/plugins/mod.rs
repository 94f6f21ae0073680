//! The plugin model: a plugin acts in one or more phases of a request (plugins.md).
//!
//! The proxy calls each phase of a location's plugins in order; a plugin that answers in
//! `request` or `proxy_upstream` ends the chain with a [`Reply`], which still passes through
//! the `response` phase and the location's `response_headers`. A new plugin is one file here
//! and one arm in [`build`].

mod mock;
mod ping;

use crate::ctx::RequestCtx;
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::PluginOptions;
use louailink_shared::PluginConf;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::sync::Arc;

/// A response produced by a plugin instead of the upstream.
#[derive(Clone)]
pub struct Reply {
    /// Status and headers.
    pub header: ResponseHeader,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// A reply with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: Bytes) -> pingora::Result<Self> {
        let mut header = ResponseHeader::build(status, Some(3))?;
        header.insert_header(http::header::CONTENT_TYPE, content_type)?;
        header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        Ok(Reply { header, body })
    }
}

/// What a plugin decided in a phase that can answer.
pub enum Flow {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client with this response; no upstream is contacted.
    Reply(Box<Reply>),
}

/// A configured plugin instance. Every phase has a no-op default.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// The plugin's category name (`ping`, `mock`, ...).
    fn category(&self) -> &'static str;

    /// After the location matched, before an upstream is chosen.
    async fn request(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// After the upstream peer is chosen, before connecting.
    async fn proxy_upstream(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// Response header from the upstream or from a plugin's reply.
    fn response(
        &self,
        _session: &mut Session,
        _header: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }

    /// Each response body chunk.
    fn response_body(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }
}

/// Builds a plugin instance from its item.
pub fn build(conf: &PluginConf) -> Result<Arc<dyn Plugin>, String> {
    let options = louailink_shared::plugins::plugin_options(conf).map_err(|errs| {
        errs.into_iter()
            .map(|(key, msg)| match key {
                Some(k) => format!("{k}: {msg}"),
                None => msg,
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok(match options {
        PluginOptions::Ping(o) => Arc::new(ping::Ping::new(o)?),
        PluginOptions::Mock(o) => Arc::new(mock::Mock::new(o)?),
    })
}

//! A location's plugins split by phase when the snapshot is compiled: each phase runs only
//! the plugins that declared it, so a phase nobody uses costs one empty loop.

use super::{Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::upstream::Upstream;
use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::sync::Arc;

type List = Box<[Arc<dyn Plugin>]>;

/// The per-phase lists of one location, in the location's order.
#[derive(Default)]
pub struct Chain {
    request: List,
    upstream: List,
    proxy_upstream: List,
    request_body: List,
    upstream_request: List,
    response: List,
    response_body: List,
    logging: List,
}

impl Chain {
    /// Splits `plugins` (in order) into the lists of the phases each declares.
    pub fn new<'a>(plugins: impl Iterator<Item = &'a Arc<dyn Plugin>> + Clone) -> Self {
        let list = |phase: Phases| -> List {
            plugins
                .clone()
                .filter(|p| p.phases().contains(phase))
                .cloned()
                .collect()
        };
        Chain {
            request: list(Phases::REQUEST),
            upstream: list(Phases::UPSTREAM),
            proxy_upstream: list(Phases::PROXY_UPSTREAM),
            request_body: list(Phases::REQUEST_BODY),
            upstream_request: list(Phases::UPSTREAM_REQUEST),
            response: list(Phases::RESPONSE),
            response_body: list(Phases::RESPONSE_BODY),
            logging: list(Phases::LOGGING),
        }
    }

    /// The `request` phase; stops at the first plugin that answers.
    pub async fn request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        for p in self.request.iter() {
            if let flow @ (Flow::Reply(_) | Flow::Error(..)) = p.request(session, ctx).await? {
                tracing::trace!(plugin = p.category(), "plugin answered");
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    /// The upstream a plugin chose instead of the location's, if any.
    pub fn upstream(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Arc<Upstream>> {
        self.upstream.iter().find_map(|p| p.upstream(session, ctx))
    }

    /// The `proxy_upstream` phase; stops at the first plugin that answers.
    pub async fn proxy_upstream(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        for p in self.proxy_upstream.iter() {
            if let flow @ (Flow::Reply(_) | Flow::Error(..)) =
                p.proxy_upstream(session, ctx).await?
            {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    /// The `request_body` phase, for one chunk.
    pub fn request_body(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for p in self.request_body.iter() {
            p.request_body(session, body, end_of_stream, ctx)?;
        }
        Ok(())
    }

    /// The `upstream_request` phase.
    pub fn upstream_request(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for p in self.upstream_request.iter() {
            p.upstream_request(session, request, ctx)?;
        }
        Ok(())
    }

    /// The `response` phase.
    pub fn response(
        &self,
        session: &mut Session,
        header: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for p in self.response.iter() {
            p.response(session, header, ctx)?;
        }
        Ok(())
    }

    /// The `response_body` phase, for one chunk.
    pub fn response_body(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for p in self.response_body.iter() {
            p.response_body(session, body, end_of_stream, ctx)?;
        }
        Ok(())
    }

    /// The `logging` phase.
    pub fn logging(&self, session: &mut Session, ctx: &mut RequestCtx) {
        for p in self.logging.iter() {
            p.logging(session, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Declares(Phases);

    impl Plugin for Declares {
        fn category(&self) -> &'static str {
            "test"
        }
        fn phases(&self) -> Phases {
            self.0
        }
    }

    #[test]
    fn each_phase_lists_only_the_plugins_that_declare_it_in_order() {
        let headers: Arc<dyn Plugin> = Arc::new(Declares(Phases::REQUEST | Phases::RESPONSE));
        let body: Arc<dyn Plugin> = Arc::new(Declares(Phases::RESPONSE_BODY | Phases::LOGGING));
        let answer: Arc<dyn Plugin> = Arc::new(Declares(Phases::REQUEST));
        let plugins = [headers.clone(), body.clone(), answer.clone()];
        let chain = Chain::new(plugins.iter());
        let same = |list: &List, want: &[&Arc<dyn Plugin>]| {
            list.len() == want.len() && list.iter().zip(want).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        assert!(same(&chain.request, &[&headers, &answer]));
        assert!(same(&chain.response, &[&headers]));
        assert!(same(&chain.response_body, &[&body]));
        assert!(same(&chain.logging, &[&body]));
        for empty in [
            &chain.upstream,
            &chain.proxy_upstream,
            &chain.request_body,
            &chain.upstream_request,
        ] {
            assert!(empty.is_empty());
        }
    }
}

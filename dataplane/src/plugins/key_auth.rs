//! `key_auth`: lets a request on only with one of the configured API keys in its header or
//! query parameter (compared in constant time, every key every time); otherwise 401.

use super::auth::{matches_any, refuse};
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::params::{query_param, remove_query_param};
use async_trait::async_trait;
use http::HeaderName;
use louailink_shared::plugins::KeyAuthOptions;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

/// The `key_auth` plugin.
pub struct KeyAuth {
    header: Option<HeaderName>,
    query: String,
    keys: Vec<Vec<u8>>,
    hide_credentials: bool,
}

impl Build for KeyAuth {
    type Options = KeyAuthOptions;

    fn build(options: KeyAuthOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let header = options
            .header_or_default()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("{h:?} is not a header name"))
            })
            .transpose()?;
        Ok(KeyAuth {
            header,
            query: options.query,
            keys: options.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            hide_credentials: options.hide_credentials,
        })
    }
}

impl KeyAuth {
    /// The key in the query parameter, as sent.
    fn query_param<'a>(&self, query: Option<&'a str>) -> Option<&'a str> {
        if self.query.is_empty() {
            return None;
        }
        query_param(query, &self.query)
    }

    fn authorized(&self, req: &RequestHeader) -> bool {
        let sent = self
            .header
            .as_ref()
            .and_then(|h| req.headers.get(h))
            .map(|v| v.as_bytes())
            .or_else(|| self.query_param(req.uri.query()).map(str::as_bytes));
        let Some(sent) = sent else {
            return false;
        };
        matches_any(&self.keys, sent)
    }
}

#[async_trait]
impl Plugin for KeyAuth {
    fn category(&self) -> &'static str {
        "key_auth"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::UPSTREAM_REQUEST
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if self.authorized(session.req_header()) {
            return Ok(Flow::Continue);
        }
        refuse(None)
    }

    fn upstream_request(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if !self.hide_credentials {
            return Ok(());
        }
        if let Some(h) = &self.header {
            request.remove_header(h);
        }
        if !self.query.is_empty() {
            remove_query_param(request, &self.query)?;
        }
        Ok(())
    }
}

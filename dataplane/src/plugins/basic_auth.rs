//! `basic_auth`: lets a request on only with `Authorization: Basic` credentials that equal one
//! of the configured `user:password` pairs (compared in constant time, every pair every
//! time); otherwise 401 with a `WWW-Authenticate` challenge.

use super::auth::{matches_any, refuse};
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use async_trait::async_trait;
use base64::Engine;
use http::header::AUTHORIZATION;
use louailink_shared::plugins::BasicAuthOptions;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

/// The longest `Authorization` value decoded (longer ones are refused unread).
const MAX_CREDENTIALS: usize = 4096;

/// The `basic_auth` plugin.
pub struct BasicAuth {
    /// `user:password` pairs.
    pairs: Vec<Vec<u8>>,
    challenge: String,
    hide_credentials: bool,
}

impl Build for BasicAuth {
    type Options = BasicAuthOptions;

    fn build(options: BasicAuthOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(BasicAuth {
            pairs: options
                .authorizations
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            challenge: format!("Basic realm=\"{}\", charset=\"UTF-8\"", options.realm),
            hide_credentials: options.hide_credentials,
        })
    }
}

impl BasicAuth {
    fn authorized(&self, header: &RequestHeader) -> bool {
        let Some(value) = header.headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        if value.len() > MAX_CREDENTIALS
            || value.len() < 6
            || !value[..6].eq_ignore_ascii_case(b"basic ")
        {
            return false;
        }
        let Ok(sent) = base64::engine::general_purpose::STANDARD.decode(value[6..].trim_ascii())
        else {
            return false;
        };
        matches_any(&self.pairs, &sent)
    }
}

#[async_trait]
impl Plugin for BasicAuth {
    fn category(&self) -> &'static str {
        "basic_auth"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST | Phases::UPSTREAM_REQUEST
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if self.authorized(session.req_header()) {
            return Ok(Flow::Continue);
        }
        refuse(Some(&self.challenge))
    }

    fn upstream_request(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if self.hide_credentials {
            request.remove_header(&AUTHORIZATION);
        }
        Ok(())
    }
}

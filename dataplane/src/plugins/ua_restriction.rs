//! `ua_restriction`: answers 403 with the configured message when the `User-Agent` matches a
//! denied regex, or matches no allowed one.

use super::ip_restriction::restrict;
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::USER_AGENT;
use louailink_shared::patterns::compile_regex;
use louailink_shared::plugins::UaRestrictionOptions;
use pingora_proxy::Session;
use regex::Regex;

/// The `ua_restriction` plugin.
pub struct UaRestriction {
    allow: bool,
    list: Vec<Regex>,
    message: Bytes,
}

impl Build for UaRestriction {
    type Options = UaRestrictionOptions;

    fn build(options: UaRestrictionOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(UaRestriction {
            allow: options.kind == "allow",
            list: options
                .ua_list
                .iter()
                .map(|re| compile_regex(re))
                .collect::<Result<_, _>>()?,
            message: Bytes::from(options.message),
        })
    }
}

#[async_trait]
impl Plugin for UaRestriction {
    fn category(&self) -> &'static str {
        "ua_restriction"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        // No (or a non-UTF-8) User-Agent is listed nowhere.
        let listed = session
            .req_header()
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| self.list.iter().any(|re| re.is_match(ua)));
        restrict(listed, self.allow, &self.message)
    }
}

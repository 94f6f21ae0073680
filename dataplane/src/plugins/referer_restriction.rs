//! `referer_restriction`: answers 403 with the configured message when the `Referer`'s host
//! is denied, or is not allowed.

use super::ip_restriction::restrict;
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::REFERER;
use louailink_shared::plugins::{referer_host, RefererRestrictionOptions};
use pingora_proxy::Session;

/// The `referer_restriction` plugin.
pub struct RefererRestriction {
    allow: bool,
    /// Exact hosts, lower-case.
    exact: Vec<String>,
    /// Suffixes of `*.a.com` entries (`.a.com`), lower-case.
    suffixes: Vec<String>,
    message: Bytes,
}

impl Build for RefererRestriction {
    type Options = RefererRestrictionOptions;

    fn build(options: RefererRestrictionOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let (mut exact, mut suffixes) = (Vec::new(), Vec::new());
        for host in options.referer_list.iter() {
            let host = host.to_ascii_lowercase();
            match host.strip_prefix('*') {
                Some(suffix) => suffixes.push(suffix.to_string()),
                None => exact.push(host),
            }
        }
        Ok(RefererRestriction {
            allow: options.kind == "allow",
            exact,
            suffixes,
            message: Bytes::from(options.message),
        })
    }
}

#[async_trait]
impl Plugin for RefererRestriction {
    fn category(&self) -> &'static str {
        "referer_restriction"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        // No Referer (typed URLs, privacy settings) is listed nowhere.
        let listed = session
            .req_header()
            .headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(referer_host)
            .is_some_and(|host| {
                self.exact.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s))
            });
        restrict(listed, self.allow, &self.message)
    }
}

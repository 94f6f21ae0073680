//! `ip_restriction`: answers 403 with the configured message when the client's IP (the TCP
//! peer, or the address a trusted proxy forwarded) is denied, or is not allowed.

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use ipnet::IpNet;
use louailink_shared::plugins::{parse_ip_net, IpRestrictionOptions};
use louailink_shared::values::StrList;
use pingora_proxy::Session;

/// The `ip_restriction` plugin.
pub struct IpRestriction {
    /// Only the listed pass (`allow`), or the listed are refused (`deny`).
    allow: bool,
    nets: Vec<IpNet>,
    message: Bytes,
}

impl Build for IpRestriction {
    type Options = IpRestrictionOptions;

    fn build(options: IpRestrictionOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(IpRestriction {
            allow: options.kind == "allow",
            nets: parse_nets(&options.ip_list)?,
            message: Bytes::from(options.message),
        })
    }
}

#[async_trait]
impl Plugin for IpRestriction {
    fn category(&self) -> &'static str {
        "ip_restriction"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, _session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        // No client IP (a Unix socket peer): an allow list refuses it, a deny list lets it by.
        let listed = ctx
            .client_ip
            .is_some_and(|ip| self.nets.iter().any(|n| n.contains(&ip)));
        restrict(listed, self.allow, &self.message)
    }
}

/// IPs and CIDR ranges from a config list (also `cache`'s `purge_ip_list`).
pub(super) fn parse_nets(list: &StrList) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|e| parse_ip_net(e).ok_or_else(|| format!("{e:?} is not an IP or CIDR range")))
        .collect()
}

/// What a restriction plugin answers: on when the request is `listed` as `allow` says it
/// should be, else 403 with `message` (also for `ua_restriction` and `referer_restriction`).
pub(super) fn restrict(listed: bool, allow: bool, message: &Bytes) -> pingora::Result<Flow> {
    if listed == allow {
        return Ok(Flow::Continue);
    }
    let reply = Reply::new(403, "text/plain", message.clone())?;
    Ok(Flow::Reply(Box::new(reply)))
}

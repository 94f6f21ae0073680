//! `limit`: a sliding-window rate or an in-flight limit per key (client IP honouring
//! `trusted_proxies`, a header, a cookie or a query parameter); a request over it gets the
//! configured status (429) with `Retry-After`, and never reaches the upstream. Requests
//! without the key (no such header, cookie or parameter) share one budget.
//!
//! The counts are kept here, not in `pingora-limits`: its estimators are count-min sketches
//! whose cells every key shares, so a flood of made-up keys would raise the counts of real
//! clients and get them refused; here each key has its own exact count, in a bounded table.

mod inflight;
mod rate;
mod shards;

use super::request_key::Key;
use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::request::ctx::{state_key, RequestCtx};
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use inflight::{Held, InflightTable};
use louailink_shared::plugins::LimitOptions;
use pingora_proxy::Session;
use rate::RateTable;
use std::sync::Arc;
use std::time::Duration;

/// The `limit` plugin.
pub struct Limit {
    key: Key,
    counts: Counts,
    status: u16,
    message: Bytes,
}

enum Counts {
    Rate(RateTable),
    Inflight(Arc<InflightTable>),
}

/// Per request: the in-flight slot it holds, if any.
#[derive(Default)]
struct Slot(Option<Held>);

impl Build for Limit {
    type Options = LimitOptions;

    fn build(o: LimitOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        let counts = if o.is_inflight() {
            Counts::Inflight(InflightTable::new(o.max))
        } else {
            Counts::Rate(RateTable::new(o.max, o.window()))
        };
        Ok(Limit {
            key: Key::compile(&o.key)?,
            counts,
            status: o.status,
            message: Bytes::from(o.message),
        })
    }
}

impl Limit {
    /// The refusal: `status`, `Retry-After` in whole seconds (at least 1), the message.
    fn refuse(&self, wait: Duration) -> pingora::Result<Flow> {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut reply = Reply::new(self.status, "text/plain", self.message.clone())?;
        reply
            .header
            .insert_header(http::header::RETRY_AFTER, secs.max(1).to_string())?;
        Ok(Flow::Reply(Box::new(reply)))
    }
}

#[async_trait]
impl Plugin for Limit {
    fn category(&self) -> &'static str {
        "limit"
    }

    fn phases(&self) -> Phases {
        match self.counts {
            Counts::Rate(_) => Phases::REQUEST,
            Counts::Inflight(_) => Phases::REQUEST | Phases::LOGGING,
        }
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        match &self.counts {
            Counts::Rate(table) => {
                let key = self
                    .key
                    .with_value(session, ctx, |v| table.hash(v.unwrap_or_default()));
                match table.take(key) {
                    Ok(()) => Ok(Flow::Continue),
                    Err(wait) => self.refuse(wait),
                }
            }
            Counts::Inflight(table) => {
                let key = self
                    .key
                    .with_value(session, ctx, |v| table.hash(v.unwrap_or_default()));
                match table.acquire(key) {
                    Some(held) => {
                        ctx.plugin_states.get_mut::<Slot>(state_key(self)).0 = Some(held);
                        Ok(Flow::Continue)
                    }
                    // When a slot frees is not known: ask for a retry in a second.
                    None => self.refuse(Duration::from_secs(1)),
                }
            }
        }
    }

    fn logging(&self, _session: &mut Session, ctx: &mut RequestCtx) {
        // Dropping the slot releases it (it would be released with the request's state too).
        ctx.plugin_states.get_mut::<Slot>(state_key(self)).0 = None;
    }
}

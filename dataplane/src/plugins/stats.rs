//! `stats`: answers JSON with the process's facts and request counters on one path, like
//! nginx's `stub_status` with per-location numbers (`docs/plugins.md` shows the shape).

use super::{Build, BuildCtx, Flow, Phases, Plugin};
use crate::counters::{self, process, Tally, CLASSES, PROCESS};
use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::StatsOptions;
use pingora_proxy::Session;
use serde_json::{json, Map, Value};

/// The `stats` plugin.
pub struct Stats {
    path: String,
}

impl Build for Stats {
    type Options = StatsOptions;

    fn build(options: StatsOptions, _ctx: &BuildCtx) -> Result<Self, String> {
        Ok(Stats { path: options.path })
    }
}

/// A tally as JSON; `this_one` takes out the request being answered, which has begun and not
/// ended (it is counted in the next answer).
fn tally_json(t: Tally, this_one: bool) -> Value {
    let less = u64::from(this_one);
    let responses: Map<String, Value> = CLASSES
        .iter()
        .zip(t.responses)
        .map(|(class, n)| (class.to_string(), json!(n)))
        .collect();
    json!({
        "total": t.requests.saturating_sub(less),
        "in_flight": t.in_flight.saturating_sub(less),
        "responses": responses,
    })
}

/// The whole answer.
fn body(facts: process::ProcessFacts, location: Option<&str>) -> Value {
    let locations: Map<String, Value> = counters::locations()
        .into_iter()
        .map(|(name, t)| {
            let this_one = location == Some(&*name);
            (name.to_string(), tally_json(t, this_one))
        })
        .collect();
    json!({
        "process": {
            "pid": std::process::id(),
            "uptime_seconds": facts.uptime_seconds,
            "rss_bytes": facts.rss_bytes,
            "cpu_user_seconds": facts.cpu_user_seconds,
            "cpu_system_seconds": facts.cpu_system_seconds,
            "open_fds": facts.open_fds,
            "threads": facts.threads,
        },
        "requests": tally_json(PROCESS.tally(), true),
        "locations": locations,
    })
}

#[async_trait]
impl Plugin for Stats {
    fn category(&self) -> &'static str {
        "stats"
    }

    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Flow> {
        if session.req_header().uri.path() != self.path {
            return Ok(Flow::Continue);
        }
        // /proc reads are small but are still file I/O: off the async worker.
        let facts = tokio::task::spawn_blocking(process::read)
            .await
            .unwrap_or_default();
        let text = body(facts, ctx.location.as_deref()).to_string();
        let mut reply = Reply::new(200, "application/json", Bytes::from(text))?;
        reply
            .header
            .insert_header(http::header::CACHE_CONTROL, "no-store")?;
        Ok(Flow::Reply(Box::new(reply)))
    }
}

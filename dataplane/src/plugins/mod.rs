//! The plugin API (`docs/plugins.md`): a plugin acts in the phases it declares, and the proxy calls
//! each phase's list of a location's [`Chain`], built when the snapshot is compiled.
//!
//! Adding a plugin: its options and checks in `shared/src/plugins/<name>.rs`, its behaviour
//! in `<name>.rs` here (a type implementing [`Plugin`] and [`Build`]), then `mod <name>;` and
//! one `builder::<T>()` line in `REGISTRY`. Nothing in the proxy changes.

mod auth;
mod basic_auth;
pub mod builtin;
mod cache;
mod chain;
mod compression;
mod cors;
mod directory;
mod forward_auth;
mod ip_restriction;
mod jwt;
mod key_auth;
mod limit;
mod mock;
mod ping;
mod redirect;
mod referer_restriction;
mod request_id;
mod request_key;
mod response_headers;
mod stats;
mod traffic_split;
mod ua_restriction;

pub use chain::Chain;

use crate::request::ctx::RequestCtx;
use crate::request::reply::Reply;
use crate::upstream::Upstream;
use async_trait::async_trait;
use bytes::Bytes;
use louailink_shared::plugins::{decode, PluginSpec, Problems};
use louailink_shared::PluginConf;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Every built-in plugin's behaviour, by category (the options side is
/// `louailink_shared::plugins::REGISTRY`; a test checks both list the same categories).
const REGISTRY: &[(&str, Builder)] = &[
    builder::<ping::Ping>(),
    builder::<mock::Mock>(),
    builder::<request_id::RequestId>(),
    builder::<ip_restriction::IpRestriction>(),
    builder::<ua_restriction::UaRestriction>(),
    builder::<referer_restriction::RefererRestriction>(),
    builder::<redirect::Redirect>(),
    builder::<basic_auth::BasicAuth>(),
    builder::<key_auth::KeyAuth>(),
    builder::<jwt::Jwt>(),
    builder::<directory::Directory>(),
    builder::<stats::Stats>(),
    builder::<cache::Cache>(),
    builder::<compression::Compression>(),
    builder::<response_headers::ResponseHeaders>(),
    builder::<cors::Cors>(),
    builder::<limit::Limit>(),
    builder::<traffic_split::TrafficSplit>(),
    builder::<forward_auth::ForwardAuth>(),
];

/// The phases a plugin takes part in; it is put only in those phases' lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases(u8);

impl Phases {
    /// [`Plugin::request`].
    pub const REQUEST: Phases = Phases(1);
    /// [`Plugin::upstream`].
    pub const UPSTREAM: Phases = Phases(1 << 1);
    /// [`Plugin::proxy_upstream`].
    pub const PROXY_UPSTREAM: Phases = Phases(1 << 2);
    /// [`Plugin::request_body`].
    pub const REQUEST_BODY: Phases = Phases(1 << 3);
    /// [`Plugin::upstream_request`].
    pub const UPSTREAM_REQUEST: Phases = Phases(1 << 4);
    /// [`Plugin::response`].
    pub const RESPONSE: Phases = Phases(1 << 5);
    /// [`Plugin::response_body`].
    pub const RESPONSE_BODY: Phases = Phases(1 << 6);
    /// [`Plugin::logging`].
    pub const LOGGING: Phases = Phases(1 << 7);

    /// True when every phase of `other` is in `self`.
    pub fn contains(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Phases {
    type Output = Phases;
    fn bitor(self, rhs: Phases) -> Phases {
        Phases(self.0 | rhs.0)
    }
}

/// What a plugin decided in a phase that can answer.
pub enum Flow {
    /// Go on with the next plugin, then the upstream.
    Continue,
    /// Answer the client with this response; no upstream is contacted.
    Reply(Box<Reply>),
    /// Answer with the proxy's error response for this status (`basic.error_template`,
    /// JSON or HTML) and this message.
    Error(u16, Cow<'static, str>),
}

/// A configured plugin instance. Each phase has a no-op default; [`Plugin::phases`] says
/// which ones the instance uses, so the others cost nothing per request.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// The plugin's category name (`ping`, `mock`, ...).
    fn category(&self) -> &'static str;

    /// The phases this instance acts in.
    fn phases(&self) -> Phases;

    /// True when the instance's header values read named captures of the location's regexes
    /// (the location then collects them for every request).
    fn needs_captures(&self) -> bool {
        false
    }

    /// After the location matched, before an upstream is chosen: read or change the request,
    /// or answer it.
    async fn request(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// Choose the upstream instead of the location's: the first plugin that returns one wins.
    fn upstream(&self, _session: &Session, _ctx: &mut RequestCtx) -> Option<Arc<Upstream>> {
        None
    }

    /// After the backend is chosen, before connecting: answer instead, or go on.
    async fn proxy_upstream(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Flow> {
        Ok(Flow::Continue)
    }

    /// Each request body chunk on its way to the upstream (`None` at the end of an empty
    /// body); may change or hold back the chunk.
    fn request_body(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }

    /// The request header about to go upstream (e.g. an injected key).
    fn upstream_request(
        &self,
        _session: &mut Session,
        _request: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }

    /// The response header, from the upstream or from a reply made here.
    fn response(
        &self,
        _session: &mut Session,
        _header: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }

    /// Each response body chunk, as it passes (never hold a stream back without reason).
    fn response_body(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        Ok(())
    }

    /// After the response, whatever happened: counters, limits released, tokens counted.
    fn logging(&self, _session: &mut Session, _ctx: &mut RequestCtx) {}
}

/// What a plugin may resolve while it is built: other items of the snapshot being built.
pub struct BuildCtx<'a> {
    upstreams: &'a HashMap<String, Arc<Upstream>>,
    used: RefCell<Vec<Arc<Upstream>>>,
}

impl<'a> BuildCtx<'a> {
    /// A context over the snapshot's upstreams.
    pub fn new(upstreams: &'a HashMap<String, Arc<Upstream>>) -> Self {
        BuildCtx {
            upstreams,
            used: RefCell::new(Vec::new()),
        }
    }

    /// The upstream named `name`; the plugin is rebuilt when that upstream changes.
    pub fn upstream(&self, name: &str) -> Result<Arc<Upstream>, String> {
        let up = self
            .upstreams
            .get(name)
            .cloned()
            .ok_or_else(|| format!("upstream {name:?} does not exist"))?;
        self.used.borrow_mut().push(up.clone());
        Ok(up)
    }

    /// The upstreams the plugins built with this context resolved.
    pub fn into_used(self) -> Vec<Arc<Upstream>> {
        self.used.into_inner()
    }
}

/// Builds a plugin's behaviour from its typed options.
pub trait Build: Plugin + Sized + 'static {
    /// The options type, from `louailink_shared::plugins`.
    type Options: PluginSpec;
    /// A plugin instance; errors name what is wrong.
    fn build(options: Self::Options, ctx: &BuildCtx) -> Result<Self, String>;
}

type Builder = fn(&PluginConf, &BuildCtx) -> Result<Arc<dyn Plugin>, String>;

const fn builder<P: Build>() -> (&'static str, Builder) {
    (P::Options::CATEGORY, |conf, ctx| {
        let options = decode::<P::Options>(&conf.options).map_err(describe)?;
        Ok(Arc::new(P::build(options, ctx)?))
    })
}

/// Options problems as one message: `key: problem; ...`.
fn describe(problems: Problems) -> String {
    problems
        .into_iter()
        .map(|(key, msg)| match key {
            Some(k) => format!("{k}: {msg}"),
            None => msg,
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Builds a plugin instance from its item.
pub fn build(conf: &PluginConf, ctx: &BuildCtx) -> Result<Arc<dyn Plugin>, String> {
    match REGISTRY.iter().find(|(c, _)| *c == conf.category) {
        Some((_, build)) => build(conf, ctx),
        None => Err(format!("unknown plugin category {:?}", conf.category)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_of_the_options_side_has_a_behaviour() {
        let mut ours: Vec<&str> = REGISTRY.iter().map(|(c, _)| *c).collect();
        let mut theirs = louailink_shared::plugins::categories();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }
}

//! What one request carries from phase to phase: the facts plugins, variables and the access
//! log read. It names no part of the compiled snapshot (the proxy keeps those beside it), so
//! everything below the snapshot can use it.

use crate::upstream::Upstream;
use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request state of the plugins, one slot per plugin instance that asked for one.
#[derive(Default)]
pub struct PluginStates(Vec<(usize, Box<dyn Any + Send + Sync>)>);

impl PluginStates {
    /// The state of the plugin instance `owner` (see [`state_key`]), created on first use.
    pub fn get_mut<T: Default + Send + Sync + 'static>(&mut self, owner: usize) -> &mut T {
        let pos = match self.0.iter().position(|(k, v)| *k == owner && v.is::<T>()) {
            Some(pos) => pos,
            None => {
                self.0.push((owner, Box::<T>::default()));
                self.0.len() - 1
            }
        };
        match self.0[pos].1.downcast_mut::<T>() {
            Some(state) => state,
            None => unreachable!("the slot was found or made for this type"),
        }
    }

    /// The state of `owner`, if it made one.
    pub fn get<T: Send + Sync + 'static>(&self, owner: usize) -> Option<&T> {
        self.0
            .iter()
            .find(|(k, _)| *k == owner)
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }
}

/// The key of a plugin instance's per-request state: its address, unique while the instance
/// lives (the request holds the location, which holds the instance).
pub fn state_key<P>(plugin: &P) -> usize {
    plugin as *const P as usize
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    /// When the request began (after its header was read).
    pub start: Instant,
    /// The matched location's name.
    pub location: Option<Arc<str>>,
    /// Bytes at the start of the path that the location's prefix matched (0 when it is not a
    /// prefix location): plugins that map the rest of the path to something strip them.
    pub prefix_len: usize,
    /// Lower-case request host without port (empty when none).
    pub host: String,
    /// `https` on TLS listeners.
    pub tls: bool,
    /// Named captures of the location's host, path and rewrite regexes.
    pub vars: Vec<(Arc<str>, String)>,
    /// The client's IP (honouring `trusted_proxies`).
    pub client_ip: Option<IpAddr>,
    /// Request id (generated or taken from `X-Request-Id`), when something reads it.
    pub request_id: String,
    /// Path sent upstream when rewritten.
    pub upstream_path: Option<String>,
    /// The upstream chosen.
    pub upstream: Option<Arc<Upstream>>,
    /// The backend chosen (last attempt).
    pub backend: Option<SocketAddr>,
    /// Status of a response a plugin or an error produced here.
    pub status: u16,
    /// Time the upstream connection became ready.
    pub upstream_connected: Option<Instant>,
    /// Time the upstream response header arrived.
    pub upstream_responded: Option<Instant>,
    /// Upstream status code.
    pub upstream_status: u16,
    /// The upstream connection was reused.
    pub connection_reused: bool,
    /// Plugins' own per-request state.
    pub plugin_states: PluginStates,
}

impl RequestCtx {
    /// A fresh context.
    pub fn new(tls: bool) -> Self {
        RequestCtx {
            start: Instant::now(),
            location: None,
            prefix_len: 0,
            host: String::new(),
            tls,
            vars: Vec::new(),
            client_ip: None,
            request_id: String::new(),
            upstream_path: None,
            upstream: None,
            backend: None,
            status: 0,
            upstream_connected: None,
            upstream_responded: None,
            upstream_status: 0,
            connection_reused: false,
            plugin_states: PluginStates::default(),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// A named capture.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Time since the request began.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plugin_instance_keeps_its_own_state() {
        let (a, b) = (1u8, 2u8);
        let mut states = PluginStates::default();
        *states.get_mut::<u32>(state_key(&a)) += 5;
        *states.get_mut::<u32>(state_key(&b)) += 1;
        *states.get_mut::<u32>(state_key(&a)) += 2;
        assert_eq!(states.get::<u32>(state_key(&a)), Some(&7));
        assert_eq!(states.get::<u32>(state_key(&b)), Some(&1));
        assert_eq!(states.get::<String>(state_key(&a)), None);
    }
}

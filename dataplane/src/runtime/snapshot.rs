//! The running config as one immutable snapshot: routers, upstreams, plugins, certificates.
//!
//! A snapshot is built off the request path from a validated [`Config`] and swapped in
//! whole (`ArcSwap`). Upstreams and plugins whose config did not change are carried over
//! from the previous snapshot, keeping connection pools, health state and counters.

use crate::events::Notifier;
use crate::plugins::{self, BuildCtx, Plugin};
use crate::request::access_log::{AccessLog, Sink};
use crate::runtime::location::Location;
use crate::runtime::router::Router;
use crate::runtime::tls::CertStore;
use crate::upstream::Upstream;
use ahash::AHashMap;
use ipnet::IpNet;
use louailink_shared::plugins::parse_ip_net;
use louailink_shared::storage::ItemKey;
use louailink_shared::{Config, Kind, PluginConf, ServerConf};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a snapshot could not be built with an item (validation passed, building did not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// The item at fault; `None` when no single item is.
    pub item: Option<ItemKey>,
    /// The problem.
    pub message: String,
}

impl BuildError {
    fn of(kind: Kind, name: &str, message: impl Into<String>) -> Self {
        BuildError {
            item: Some(ItemKey::of(kind, name)),
            message: message.into(),
        }
    }

    /// An error no single item explains.
    pub fn general(message: impl Into<String>) -> Self {
        BuildError {
            item: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}: {}", item.label(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One server's request-time state.
pub struct ServerRuntime {
    /// Location index.
    pub router: Router,
    /// Access log, when configured.
    pub access_log: Option<AccessLog>,
    /// The access log shows `{request_id}`.
    pub log_uses_request_id: bool,
    /// Client keep-alive timeout in seconds as pingora takes it; `None` disables keep-alive.
    pub keepalive: Option<u64>,
    /// The same timeout, exact, for the connection wrapper that enforces it on h1.
    pub idle_timeout: Duration,
    /// Total time a client has to send a request header (`client_header_timeout`).
    pub header_timeout: Duration,
    /// Concurrent client connections accepted (`max_connections`).
    pub max_connections: usize,
    /// Client read timeout, between reads of a request body.
    pub read_timeout: Duration,
    /// Client write timeout, between writes of a response.
    pub write_timeout: Duration,
    /// Match and forward normalised paths (`normalize_path`, default true).
    pub normalize_path: bool,
}

/// Everything a request needs, immutable once built.
pub struct Snapshot {
    /// Servers by name.
    pub servers: AHashMap<String, ServerRuntime>,
    /// Upstreams by name (also for `upstream = "$var"`).
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Plugins by name, with what each was built from.
    pub plugins: HashMap<String, BuiltPlugin>,
    /// TLS certificates.
    pub certs: CertStore,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `basic.error_template`.
    pub error_template: Option<String>,
    /// The config this snapshot was built from (shared with whoever built it: no copy).
    pub config: Arc<Config>,
}

/// A plugin instance and what it was built from, to tell whether the next snapshot can keep it.
#[derive(Clone)]
pub struct BuiltPlugin {
    /// Its config.
    pub conf: PluginConf,
    /// The instance.
    pub plugin: Arc<dyn Plugin>,
    /// The upstreams it resolved while being built.
    pub upstreams: Vec<Arc<Upstream>>,
}

impl BuiltPlugin {
    /// True when the same config over the same upstreams would build the same plugin.
    fn still_valid(&self, conf: &PluginConf, upstreams: &HashMap<String, Arc<Upstream>>) -> bool {
        self.conf == *conf
            && self
                .upstreams
                .iter()
                .all(|u| upstreams.get(&*u.name).is_some_and(|n| Arc::ptr_eq(n, u)))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("servers", &self.servers.len())
            .finish()
    }
}

impl Snapshot {
    /// Builds a snapshot of `config`, reusing unchanged upstreams, plugins, locations and
    /// router indexes of `previous`. Errors are collected, each naming its item.
    pub async fn build(
        config: Arc<Config>,
        previous: Option<&Snapshot>,
        sink: &Arc<Sink>,
    ) -> Result<Self, Vec<BuildError>> {
        let mut errors = Vec::new();

        let mut upstreams = HashMap::new();
        for (name, conf) in &config.upstreams {
            let reused = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|u| u.conf == *conf)
                .cloned();
            match reused {
                Some(u) => {
                    upstreams.insert(name.clone(), u);
                }
                None => match Upstream::build(name, conf).await {
                    Ok(u) => {
                        upstreams.insert(name.clone(), Arc::new(u));
                    }
                    Err(e) => errors.push(BuildError::of(Kind::Upstreams, name, e)),
                },
            }
        }

        let mut plugins = HashMap::new();
        for (name, conf) in &config.plugins {
            let reused = previous
                .and_then(|p| p.plugins.get(name))
                .filter(|b| b.still_valid(conf, &upstreams));
            if let Some(b) = reused {
                plugins.insert(name.clone(), b.clone());
                continue;
            }
            let ctx = BuildCtx::new(&upstreams);
            match plugins::build(conf, &ctx) {
                Ok(plugin) => {
                    let built = BuiltPlugin {
                        conf: conf.clone(),
                        plugin,
                        upstreams: ctx.into_used(),
                    };
                    plugins.insert(name.clone(), built);
                }
                Err(e) => errors.push(BuildError::of(Kind::Plugins, name, e)),
            }
        }
        let plugin_refs: HashMap<String, Arc<dyn Plugin>> = plugins
            .iter()
            .map(|(k, b)| (k.clone(), b.plugin.clone()))
            .collect();

        let mut locations = HashMap::new();
        // Unchanged locations whose upstream and plugins were carried over are kept whole,
        // so their in-flight counters (max_processing) stay exact across a swap.
        let previous_locations: HashMap<&str, &Arc<Location>> = previous
            .map(|p| {
                p.servers
                    .values()
                    .flat_map(|s| s.router.locations.iter())
                    .map(|l| (&*l.name, l))
                    .collect()
            })
            .unwrap_or_default();
        for (name, conf) in &config.locations {
            if let Some(l) = previous_locations
                .get(name.as_str())
                .filter(|l| l.conf == *conf && l.same_references(&upstreams, &plugin_refs))
            {
                locations.insert(name.as_str(), Arc::clone(l));
                continue;
            }
            match Location::compile(name, conf, &upstreams, &plugin_refs) {
                Ok(l) => {
                    locations.insert(name.as_str(), Arc::new(l));
                }
                Err(e) => errors.push(BuildError::of(Kind::Locations, name, e)),
            }
        }

        let mut servers = AHashMap::new();
        for (name, conf) in &config.servers {
            let previous_router = previous
                .and_then(|p| p.servers.get(name))
                .map(|s| &s.router);
            match build_server(name, conf, &locations, previous_router, sink) {
                Ok(s) => {
                    servers.insert(name.clone(), s);
                }
                Err(e) => errors.push(e),
            }
        }

        let certs = CertStore::build(config.certificates.iter()).unwrap_or_else(|(name, e)| {
            errors.push(BuildError::of(Kind::Certificates, &name, e));
            CertStore::default()
        });

        let trusted_proxies = config
            .basic
            .trusted_proxies
            .iter()
            .filter_map(|p| match parse_ip_net(p) {
                Some(n) => Some(n),
                None => {
                    errors.push(BuildError::of(
                        Kind::Basic,
                        "",
                        format!("trusted_proxies: {p:?} is not an IP or CIDR"),
                    ));
                    None
                }
            })
            .collect();

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            servers,
            upstreams,
            plugins,
            certs,
            trusted_proxies,
            error_template: config.basic.error_template.clone(),
            config,
        })
    }

    /// Starts health checks and DNS refresh of upstreams that have none running yet.
    /// Health transitions are reported to `notifier`.
    pub fn start_maintenance(&self, notifier: &Arc<Notifier>) {
        for u in self.upstreams.values() {
            u.start_maintenance(notifier);
        }
    }
}

/// Builds one server; a regex that does not compile is the fault of the location holding it.
fn build_server(
    name: &str,
    conf: &ServerConf,
    locations: &HashMap<&str, Arc<Location>>,
    previous_router: Option<&Router>,
    sink: &Arc<Sink>,
) -> Result<ServerRuntime, BuildError> {
    let server_error = |e: String| BuildError::of(Kind::Servers, name, e);
    let locs = conf
        .locations
        .iter()
        .map(|l| {
            locations
                .get(l.as_str())
                .cloned()
                .ok_or_else(|| server_error(format!("location {l:?} does not exist")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let access_log = conf
        .access_log
        .as_deref()
        .map(|spec| AccessLog::new(spec, sink.clone()))
        .transpose()
        .map_err(|e| server_error(format!("access_log: {e}")))?;
    let router = Router::rebuild(locs, previous_router)
        .map_err(|(location, e)| BuildError::of(Kind::Locations, &location, e))?;
    Ok(ServerRuntime {
        router,
        log_uses_request_id: access_log.as_ref().is_some_and(|l| l.uses_request_id()),
        access_log,
        keepalive: keepalive_secs(conf.keepalive_timeout.map_or(DEFAULT_KEEPALIVE, |d| d.0)),
        idle_timeout: conf.keepalive_timeout.map_or(DEFAULT_KEEPALIVE, |d| d.0),
        header_timeout: conf
            .client_header_timeout
            .map_or(DEFAULT_HEADER_TIMEOUT, |d| d.0),
        max_connections: conf
            .max_connections
            .unwrap_or_else(crate::conn::default_max_connections),
        read_timeout: conf
            .downstream_read_timeout
            .map_or(DEFAULT_IO_TIMEOUT, |d| d.0),
        write_timeout: conf
            .downstream_write_timeout
            .map_or(DEFAULT_IO_TIMEOUT, |d| d.0),
        normalize_path: conf.normalize_path.unwrap_or(true),
    })
}

/// `keepalive_timeout` when absent, as nginx.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(75);
/// `downstream_read_timeout` / `downstream_write_timeout` when absent (nginx's
/// `client_body_timeout` and `send_timeout`): a client that stops reading does not pin a
/// connection forever.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// `client_header_timeout` when absent.
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// pingora counts keep-alive in whole seconds and reads `Some(0)` as "forever": `0s` means
/// off here, and a sub-second timeout rounds up to one second rather than to forever.
fn keepalive_secs(d: Duration) -> Option<u64> {
    if d.is_zero() {
        return None;
    }
    Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mock_data: &str, backend: &str) -> Config {
        let text = format!(
            r#"
[upstreams.app]
addrs = ["{backend}"]
[plugins.m]
category = "mock"
data = "{mock_data}"
[locations.api]
path = "/api"
upstream = "app"
[locations.mocked]
path = "/m"
plugins = ["m"]
[servers.main]
addr = "127.0.0.1:1"
locations = ["api", "mocked"]
"#
        );
        louailink_shared::loader::parse_text(&text, louailink_shared::Format::Toml, None)
            .expect("valid test config")
            .config
    }

    fn location<'a>(s: &'a Snapshot, name: &str) -> &'a Arc<Location> {
        let router = &s.servers["main"].router;
        router
            .locations
            .iter()
            .find(|l| &*l.name == name)
            .expect("location exists")
    }

    #[tokio::test]
    async fn unchanged_items_survive_a_rebuild() {
        let sink = Sink::new(None);
        let first = Snapshot::build(config("a", "127.0.0.1:9").into(), None, &sink)
            .await
            .unwrap();
        let same = Snapshot::build(config("a", "127.0.0.1:9").into(), Some(&first), &sink)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first.upstreams["app"], &same.upstreams["app"]));
        assert!(Arc::ptr_eq(location(&first, "api"), location(&same, "api")));
        assert!(Arc::ptr_eq(
            location(&first, "mocked"),
            location(&same, "mocked")
        ));

        // A changed plugin is rebuilt, and so is the location using it; the rest is kept.
        let plugin_changed = Snapshot::build(config("b", "127.0.0.1:9").into(), Some(&same), &sink)
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(
            location(&same, "mocked"),
            location(&plugin_changed, "mocked")
        ));
        assert!(Arc::ptr_eq(
            location(&same, "api"),
            location(&plugin_changed, "api")
        ));

        // A changed upstream is rebuilt, and so is the location using it.
        let upstream_changed = Snapshot::build(
            config("b", "127.0.0.1:10").into(),
            Some(&plugin_changed),
            &sink,
        )
        .await
        .unwrap();
        assert!(!Arc::ptr_eq(
            &plugin_changed.upstreams["app"],
            &upstream_changed.upstreams["app"]
        ));
        assert!(!Arc::ptr_eq(
            location(&plugin_changed, "api"),
            location(&upstream_changed, "api")
        ));
    }

    #[test]
    fn keepalive_zero_is_off_and_sub_second_rounds_up() {
        assert_eq!(keepalive_secs(Duration::ZERO), None);
        assert_eq!(keepalive_secs(Duration::from_millis(500)), Some(1));
        assert_eq!(keepalive_secs(Duration::from_secs(75)), Some(75));
        assert_eq!(keepalive_secs(Duration::from_millis(1500)), Some(2));
    }
}

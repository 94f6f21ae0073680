//! Turns the config into a running pingora server: one proxy service per `servers` item,
//! TLS with SNI-selected certificates, h2/h2c, and the background work (health checks,
//! access log writer) started after daemonizing.

use crate::conn::{ConnLimits, Gate, LimitSource};
use crate::events::Notifier;
use crate::lifecycle::admin::Admin;
use crate::lifecycle::node::NodeView;
use crate::lifecycle::reload::Reloader;
use crate::proxy::{Exchange, Proxy};
use crate::request::access_log::Sink;
use crate::runtime::snapshot::Snapshot;
use crate::runtime::tls::SniResolver;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use louailink_shared::{Config, TlsVersion};
use pingora::apps::HttpServerOptions;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::sync::Arc;
use std::time::Duration;

/// Process-level settings from the command line.
pub struct ProcessOptions {
    /// Run in the background.
    pub daemon: bool,
    /// Take over the sockets of a running instance.
    pub upgrade: bool,
    /// Log file (also receives stderr when daemonized).
    pub log: Option<String>,
    /// Pid file.
    pub pid_file: String,
    /// Upgrade socket.
    pub upgrade_sock: String,
    /// Watch this config file or directory and apply changes.
    pub watch: Option<std::path::PathBuf>,
    /// Upgrade ourselves for listener changes (`-a`).
    pub autorestart: bool,
    /// Follow etcd (fleet mode).
    pub fleet: Option<crate::lifecycle::fleet::Fleet>,
    /// Admin listener address.
    pub admin_addr: Option<String>,
    /// This node's status.
    pub node: Arc<NodeView>,
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// SIGQUIT hands the sockets over and drains; SIGTERM and SIGINT stop at once.
struct Signals;

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = quit.recv() => {
                crate::proxy::start_draining();
                tracing::info!("SIGQUIT: graceful shutdown (handing sockets to a new process if one waits)");
                ShutdownSignal::GracefulUpgrade
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: fast shutdown");
                ShutdownSignal::FastShutdown
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: fast shutdown");
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// A server's connection limits, read from the live snapshot for each new connection.
struct LiveLimits {
    server: Arc<str>,
    state: Arc<ArcSwap<Snapshot>>,
}

impl LimitSource for LiveLimits {
    fn limits(&self) -> ConnLimits {
        let snap = self.state.load();
        match snap.servers.get(&*self.server) {
            Some(s) => ConnLimits {
                max_connections: s.max_connections,
                header_timeout: s.header_timeout,
                idle_timeout: s.idle_timeout,
            },
            // Being reconfigured away: the proxy answers 503; do not refuse meanwhile.
            None => ConnLimits {
                max_connections: usize::MAX,
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(10),
            },
        }
    }
}

/// Background work that must run in the (possibly daemonized) serving process.
struct Maintenance {
    state: Arc<ArcSwap<Snapshot>>,
    sink: Arc<Sink>,
    reloader: Arc<Reloader>,
    watch: Option<std::path::PathBuf>,
    fleet: Option<crate::lifecycle::fleet::Fleet>,
    node: Arc<NodeView>,
    notifier: Arc<Notifier>,
}

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Err(e) = self.sink.start_writer() {
            tracing::error!(error = %e, "cannot open the access log");
        }
        // Health checks started by a reload run here, not on the config runtime.
        self.reloader
            .set_maintenance(tokio::runtime::Handle::current());
        if let Some(source) = &self.watch {
            crate::lifecycle::config_runtime::spawn(crate::lifecycle::watch::watch_files(
                source.clone(),
                self.reloader.clone(),
            ));
        }
        if let Some(fleet) = &self.fleet {
            crate::lifecycle::config_runtime::spawn(crate::lifecycle::fleet::follow(
                fleet.clone(),
                self.reloader.clone(),
                self.state.clone(),
                self.node.clone(),
            ));
        }
        // Building the webhook client loads root certificates: off this runtime, so the
        // watcher above is not held up.
        let notifier = self.notifier.clone();
        tokio::task::spawn_blocking(move || notifier.start());
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.state.load().start_maintenance(&self.notifier),
            }
        }
    }
}

/// Builds the pingora server for `config` and runs it until shutdown.
pub fn run(
    config: &Config,
    snapshot: Snapshot,
    sink: Arc<Sink>,
    opts: ProcessOptions,
) -> anyhow::Result<()> {
    let basic = &config.basic;
    let conf = ServerConf {
        daemon: opts.daemon,
        error_log: opts.log.clone(),
        pid_file: opts.pid_file.clone(),
        upgrade_sock: opts.upgrade_sock.clone(),
        threads: basic.threads.unwrap_or_else(num_cpus),
        grace_period_seconds: Some(basic.grace_period.map_or(30, |d| secs_ceil(d.0))),
        graceful_shutdown_timeout_seconds: Some(
            basic
                .graceful_shutdown_timeout
                .map_or(10, |d| secs_ceil(d.0)),
        ),
        upstream_keepalive_pool_size: keepalive_pool_size(config),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let state = Arc::new(ArcSwap::from_pointee(snapshot));
    for (name, sc) in &config.servers {
        let proxy = Proxy {
            server: Arc::from(name.as_str()),
            state: state.clone(),
            tls: sc.tls,
            exchange: Exchange::from_env(),
            connector: TransportConnector::new(Some(ConnectorOptions::from_server_conf(
                &server.configuration,
            ))),
        };
        let mut app = pingora_proxy::http_proxy(&server.configuration, proxy);
        let mut options = HttpServerOptions::default();
        options.h2c = sc.enabled_h2 && !sc.tls;
        // An h2 connection without streams is idle as an h1 keep-alive one is (set at start).
        options.h2_idle_timeout = Some(
            sc.keepalive_timeout
                .map_or(Duration::from_secs(75), |d| d.0)
                .max(Duration::from_secs(1)),
        );
        app.server_options = Some(options);
        let limits = LiveLimits {
            server: Arc::from(name.as_str()),
            state: state.clone(),
        };
        let gate = Gate::new(app, Box::new(limits));
        let mut service =
            pingora::services::listening::Service::new(format!("server {name}"), gate);
        for addr in sc.addr.iter() {
            if sc.tls {
                let mut tls = TlsSettings::intermediate("", "")?;
                tls.set_cert_resolver(Arc::new(SniResolver {
                    state: state.clone(),
                    require_tls13: sc.tls_min_version == Some(TlsVersion::Tls13),
                }));
                if sc.enabled_h2 {
                    tls.enable_h2();
                }
                service.add_tls_with_settings(addr, Some(socket_options()), tls);
            } else {
                service.add_tcp_with_settings(addr, socket_options());
            }
        }
        if sc.tls && sc.tls_max_version == Some(TlsVersion::Tls12) {
            tracing::warn!(server = %name, "tls_max_version = \"tls1.2\" is not enforced yet: clients offering TLS 1.3 get it");
        }
        service.threads = sc.threads.or(basic.threads);
        server.add_service(service);
    }
    if let Some(addr) = &opts.admin_addr {
        let admin = Admin {
            state: state.clone(),
            node: opts.node.clone(),
        };
        let mut service = pingora::services::listening::Service::new("admin".into(), admin);
        service.add_tcp(addr);
        service.threads = Some(1);
        server.add_service(service);
    }
    // Single-node mode sends its own events; in etcd mode the control plane does.
    let notifier = if opts.fleet.is_some() {
        Notifier::off()
    } else {
        let source = opts.watch.as_ref().map(|p| p.display().to_string());
        Notifier::new(
            &opts.node.id(),
            source.as_deref().unwrap_or_default(),
            config.basic.webhook.clone(),
        )
    };
    let reloader = Arc::new(Reloader::new(
        state.clone(),
        sink.clone(),
        config,
        opts.autorestart,
        opts.node.clone(),
        notifier.clone(),
    ));
    server.add_service(background_service(
        "maintenance",
        Maintenance {
            state,
            sink,
            reloader,
            watch: opts.watch.clone(),
            fleet: opts.fleet.clone(),
            node: opts.node.clone(),
            notifier,
        },
    ));

    if !opts.daemon {
        write_pid_file(&opts.pid_file);
    }
    tracing::info!(servers = config.servers.len(), "louailink started");
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals),
    });
    Ok(())
}

/// Listening sockets use SO_REUSEPORT, so several nodes of a fleet sharing one config can run
/// on one machine (the kernel spreads connections between them), as nginx's `reuseport`.
fn socket_options() -> pingora::listeners::TcpSocketOptions {
    let mut options = pingora::listeners::TcpSocketOptions::default();
    options.so_reuseport = Some(true);
    options
}

/// pingora keeps one idle-connection pool per server process: size it for the sum of the
/// upstreams' `keepalive_pool_size` per backend, unless `basic` sets it outright.
fn keepalive_pool_size(config: &Config) -> usize {
    const DEFAULT: usize = 128;
    config
        .basic
        .upstream_keepalive_pool_size
        .unwrap_or_else(|| {
            let wanted: usize = config
                .upstreams
                .values()
                .map(|u| u.keepalive_pool_size.unwrap_or(0) * u.addrs.0.len())
                .sum();
            wanted.max(DEFAULT)
        })
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes our pid (pingora writes it itself only when daemonizing).
fn write_pid_file(path: &str) {
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!(path, error = %e, "cannot write the pid file");
    }
}

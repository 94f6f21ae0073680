//! `louailink`: the LouAILink data plane's command line.

use louailink::lifecycle::node::NodeView;
use louailink::lifecycle::{fleet, server};
use louailink::request::access_log;
use louailink::runtime::snapshot;
use louailink_shared::storage::{ConfigSource, EtcdSpec, StateFile, StateSnapshot};
use louailink_shared::Config;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// LouAILink: a low-latency reverse proxy and AI gateway.
#[derive(Parser, Debug)]
#[command(name = "louailink", version, about)]
struct Cli {
    /// Config source: a file, a directory, or etcd://… (default $HOME/.louailink).
    #[arg(short = 'c', long = "conf")]
    conf: Option<String>,
    /// Validate the config and exit (0 = ok).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Append logs (and access logs) to this file instead of stderr.
    #[arg(long = "log")]
    log: Option<String>,
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    /// Watch the config; hot-swap changes and self-upgrade for listener changes.
    #[arg(short = 'a', long = "autorestart")]
    autorestart: bool,
    /// Watch the config; hot-swap changes and report what needs a restart.
    #[arg(long = "autoreload")]
    autoreload: bool,
    /// This node's id in a fleet.
    #[arg(long = "node-id")]
    node_id: Option<String>,
    /// Where the node keeps its last good config snapshot (etcd mode).
    #[arg(long = "state-dir")]
    state_dir: Option<PathBuf>,
    /// Admin listener for /_louailink/ready and /status (default basic.admin_addr; in etcd
    /// mode 127.0.0.1:6190).
    #[arg(long = "admin")]
    admin: Option<String>,
    /// Pid file (default basic.pid_file, then $HOME/.louailink/louailink.pid).
    #[arg(long = "pid-file")]
    pid_file: Option<String>,
    /// Upgrade socket (default basic.upgrade_sock, then /tmp/louailink_upgrade.sock).
    #[arg(long = "upgrade-sock")]
    upgrade_sock: Option<String>,
}

/// Admin listener of etcd-mode nodes when none is configured.
const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:6190";

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

fn init_logging(log: Option<&str>, level: Option<&str>) -> anyhow::Result<()> {
    louailink_shared::logging::init(log.map(Path::new), level, false)
        .with_context(|| format!("cannot open the log file {}", log.unwrap_or_default()))
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("louailink: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints config errors the way `-t` does.
fn print_errors<E: std::fmt::Display>(source: &str, errors: &[E]) {
    eprintln!("config invalid: {source}");
    for e in errors {
        eprintln!("  {e}");
    }
    eprintln!("{} error(s)", errors.len());
}

/// The config to start with, and how the process follows it afterwards.
struct Start {
    config: Config,
    watch: Option<PathBuf>,
    fleet: Option<fleet::Fleet>,
    node: NodeView,
    /// etcd mode: the last good config of the state dir, should `config` not build.
    fallback: Option<StateSnapshot>,
}

fn start_from_files(cli: &Cli, path: &Path) -> Result<Start, i32> {
    let config = match louailink_shared::loader::load(path) {
        Ok(l) => l.config,
        Err(errors) => {
            print_errors(&path.display().to_string(), &errors.0);
            return Err(1);
        }
    };
    let id = cli
        .node_id
        .clone()
        .unwrap_or_else(louailink_shared::storage::node_status::host_name);
    Ok(Start {
        config,
        watch: (cli.autoreload || cli.autorestart).then(|| path.to_path_buf()),
        fleet: None,
        node: NodeView::new(fleet::new_status(&id), true),
        fallback: None,
    })
}

fn start_from_etcd(cli: &Cli, spec: EtcdSpec) -> anyhow::Result<Start> {
    let state_dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| home_dir().join(".louailink").join("state"));
    let state_file = Arc::new(StateFile::new(&state_dir));
    let initial = fleet::initial_config(&spec, &state_file)?;
    let id = cli
        .node_id
        .clone()
        .unwrap_or_else(|| fleet::node_id(&state_dir));
    Ok(Start {
        config: initial.config,
        watch: None,
        fleet: Some(fleet::Fleet {
            spec,
            state_file,
            seed: initial.seed,
        }),
        node: NodeView::new(fleet::new_status(&id), initial.ready),
        fallback: initial.last_good,
    })
}

/// Builds the first snapshot. In etcd mode a config that cannot be built falls back to the
/// state dir's last good one (the follower then rejects the items at fault, per key), and
/// etcd's config is saved as the last good one once it is built.
fn first_snapshot(
    start: &mut Start,
    config: Arc<Config>,
    sink: &Arc<access_log::Sink>,
) -> anyhow::Result<Result<snapshot::Snapshot, Vec<snapshot::BuildError>>> {
    // Building resolves backend addresses, which needs a runtime; pingora's own start later.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut built = runtime.block_on(snapshot::Snapshot::build(config, None, sink));
    if let (Err(errors), Some(last_good), Some(fleet)) =
        (&built, start.fallback.take(), start.fleet.as_mut())
    {
        for e in errors {
            tracing::error!(error = %e, "the config from etcd cannot be built");
        }
        tracing::warn!("serving the last good config from the state dir until etcd's builds");
        let config = Arc::new(last_good.config.clone());
        fleet.seed = Some(last_good);
        // Not ready: ready means serving etcd's config, which the follower brings later.
        start.node = NodeView::new(fleet::new_status(&start.node.id()), false);
        built = runtime.block_on(snapshot::Snapshot::build(config, None, sink));
    }
    if let (Ok(_), Some(fleet)) = (&built, &start.fleet) {
        if let Some(seed) = fleet.seed.as_ref().filter(|_| start.node.is_ready()) {
            if let Err(e) = fleet.state_file.save(seed) {
                tracing::warn!(error = %e, "cannot save the config snapshot");
            }
        }
    }
    Ok(built)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let source_text = cli
        .conf
        .clone()
        .unwrap_or_else(|| home_dir().join(".louailink").display().to_string());
    let source = ConfigSource::parse(&source_text)?;
    // rustls needs one process-wide crypto provider; ring is the only one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut start = match source {
        ConfigSource::Etcd(ref spec) => {
            // Logging first: reaching etcd may take a while and has things to say.
            init_logging(cli.log.as_deref(), None)?;
            start_from_etcd(&cli, spec.clone())?
        }
        ConfigSource::File(ref path) | ConfigSource::Dir(ref path) => {
            if !path.exists() {
                anyhow::bail!(
                    "config source {} does not exist (create it, or pass -c <file or dir>)",
                    path.display()
                );
            }
            match start_from_files(&cli, path) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            }
        }
    };
    // One copy of the config, shared with the first snapshot.
    let config = Arc::new(std::mem::take(&mut start.config));
    if start.fleet.is_none() && !cli.test {
        init_logging(cli.log.as_deref(), config.basic.log_level.as_deref())?;
    }

    let sink = access_log::Sink::new(cli.log.clone());
    let snapshot = match first_snapshot(&mut start, config, &sink)? {
        Ok(s) => s,
        Err(errors) => {
            print_errors(&source.to_string(), &errors);
            return Ok(1);
        }
    };
    let config = Arc::clone(&snapshot.config);
    // `-t` builds the snapshot too: it refuses exactly what starting would refuse.
    if cli.test {
        println!("config ok: {source}");
        println!("{}", louailink_shared::validate::summary(&config));
        return Ok(0);
    }
    louailink::lifecycle::config_runtime::release_memory();

    let default_dir = home_dir().join(".louailink");
    let basic = &config.basic;
    let opts = server::ProcessOptions {
        daemon: cli.daemon,
        upgrade: cli.upgrade,
        log: cli.log.clone(),
        pid_file: cli
            .pid_file
            .clone()
            .or_else(|| basic.pid_file.clone())
            .unwrap_or_else(|| default_dir.join("louailink.pid").display().to_string()),
        upgrade_sock: cli
            .upgrade_sock
            .clone()
            .or_else(|| basic.upgrade_sock.clone())
            .unwrap_or_else(|| "/tmp/louailink_upgrade.sock".into()),
        watch: start.watch,
        autorestart: cli.autorestart,
        admin_addr: cli
            .admin
            .clone()
            .or_else(|| basic.admin_addr.clone())
            .or_else(|| start.fleet.as_ref().map(|_| DEFAULT_ADMIN_ADDR.to_string())),
        fleet: start.fleet,
        node: Arc::new(start.node),
    };
    server::run(&config, snapshot, sink, opts)?;
    Ok(0)
}

//! `louailink`: the LouAILink data plane's command line.

use louailink::{access_log, server, snapshot};

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
    /// Where the node keeps its last good config snapshot.
    #[arg(long = "state-dir")]
    state_dir: Option<PathBuf>,
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

fn init_logging(log: Option<&str>, level: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {path}"))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
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

fn run(cli: Cli) -> anyhow::Result<i32> {
    let source = cli
        .conf
        .clone()
        .unwrap_or_else(|| home_dir().join(".louailink").display().to_string());
    if source.starts_with("etcd://") {
        anyhow::bail!("etcd config sources are not supported yet (files and directories are)");
    }
    let path = PathBuf::from(&source);
    if !path.exists() {
        anyhow::bail!(
            "config source {source} does not exist (create it, or pass -c <file or dir>)"
        );
    }
    let loaded = match louailink_shared::loader::load(&path) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("config invalid: {source}");
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            return Ok(1);
        }
    };
    let config = loaded.config;
    if cli.test {
        println!("config ok: {source}");
        println!("{}", louailink_shared::validate::summary(&config));
        return Ok(0);
    }

    // rustls needs one process-wide crypto provider; ring is the only one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(cli.log.as_deref(), config.basic.log_level.as_deref())?;
    if cli.node_id.is_some() || cli.state_dir.is_some() {
        tracing::info!("--node-id and --state-dir only matter in etcd mode");
    }

    let sink = access_log::Sink::new(cli.log.clone());
    // Building resolves backend addresses, which needs a runtime; pingora's own start later.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let snapshot = match runtime.block_on(snapshot::Snapshot::build(&config, None, &sink)) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("config invalid: {source}");
            for e in &errors {
                eprintln!("  {e}");
            }
            return Ok(1);
        }
    };
    drop(runtime);

    let default_dir = home_dir().join(".louailink");
    let opts = server::ProcessOptions {
        daemon: cli.daemon,
        upgrade: cli.upgrade,
        log: cli.log,
        pid_file: config
            .basic
            .pid_file
            .clone()
            .unwrap_or_else(|| default_dir.join("louailink.pid").display().to_string()),
        upgrade_sock: config
            .basic
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| "/tmp/louailink_upgrade.sock".into()),
        watch: (cli.autoreload || cli.autorestart).then(|| path.clone()),
        autorestart: cli.autorestart,
    };
    server::run(&config, snapshot, sink, opts)?;
    Ok(0)
}

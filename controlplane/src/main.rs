//! `louailink-control`: the control plane (REST + gRPC API over etcd or a directory), and
//! `louailink-control ctl …`, its command-line client.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use louailink_control::ctl::{self, CtlArgs};
use louailink_control::history::DEFAULT_LIMIT;
use louailink_control::server::{self, Options, StoreSpec};
use louailink_control::webhook::Retry;
use louailink_shared::values::parse_duration;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "louailink-control",
    version,
    about = "LouAILink control plane",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to a running control plane (get, apply, delete, nodes, events, validate, …).
    Ctl(CtlArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// REST listen address (`off` = none).
    #[arg(long, default_value = "127.0.0.1:7000")]
    http: String,
    /// gRPC listen address (`off` = none).
    #[arg(long, default_value = "127.0.0.1:7001")]
    grpc: String,
    /// The etcd cluster and prefix: etcd://host:2379[,host2:2379]/prefix?user=…&password=…&ca=…
    #[arg(long)]
    etcd: Option<String>,
    /// Where the config lives, like the data plane's -c: etcd://… (as --etcd) or a directory
    /// of config files (single node; created if only the last directory is missing).
    #[arg(long)]
    storage: Option<String>,
    /// An admin token (reads and writes); repeatable. LOUAILINK_TOKEN adds one more.
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// A viewer token (reads only); repeatable.
    #[arg(long = "viewer-token")]
    viewer_tokens: Vec<String>,
    /// History records kept.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    history_limit: usize,
    /// How often node keys and etcd reachability are polled.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    poll: Duration,
    /// Bound of every etcd read (an unreachable etcd is a 503 within about this: every write
    /// reads first).
    #[arg(long, default_value = "800ms", value_parser = parse_duration)]
    etcd_timeout: Duration,
    /// Bound of every etcd write, which waits for etcd's disk (on timeout the write may
    /// still be applied).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    etcd_write_timeout: Duration,
    /// Append logs to this file (default: stderr).
    #[arg(long)]
    log: Option<PathBuf>,
}

fn listen(value: &str, flag: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("--{flag} {value:?}: not an address like 127.0.0.1:7000"))
}

fn init_logs(log: Option<&PathBuf>) -> anyhow::Result<()> {
    louailink_shared::logging::init(log.map(PathBuf::as_path), None, true).with_context(|| {
        format!(
            "--log {}",
            log.map(|p| p.display().to_string()).unwrap_or_default()
        )
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log.as_ref())?;
    let store = StoreSpec::from_flags(args.etcd.as_deref(), args.storage.as_deref())?;
    let mut tokens = args.tokens;
    if let Ok(t) = std::env::var("LOUAILINK_TOKEN") {
        if !t.is_empty() {
            tokens.push(t);
        }
    }
    let opts = Options {
        http: listen(&args.http, "http")?,
        grpc: listen(&args.grpc, "grpc")?,
        store,
        admin_tokens: tokens,
        viewer_tokens: args.viewer_tokens,
        history_limit: args.history_limit,
        poll: args.poll,
        etcd_timeout: args.etcd_timeout,
        etcd_write_timeout: args.etcd_write_timeout,
        retry: Retry::default(),
    };
    server::run(opts, shutdown_signal()).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // One crypto provider, ring (etcd TLS, the webhook client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Some(Command::Ctl(args)) => {
            let code = runtime.block_on(ctl::run(args))?;
            std::process::exit(code);
        }
        None => runtime.block_on(serve(cli.serve)),
    }
}

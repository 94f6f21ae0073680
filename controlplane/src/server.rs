//! Wiring: the store, the event hub, the webhook sender, the node monitor, and the REST and
//! gRPC listeners, until shutdown.

use crate::api::{grpc, rest};
use crate::auth::Auth;
use crate::events::{Events, DEFAULT_RECENT};
use crate::service::Service;
use crate::store::{Store, StoreError};
use crate::store_etcd::EtcdBackend;
use crate::store_file::FileBackend;
use crate::webhook::{self, Retry};
use louailink_shared::storage::EtcdSpec;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Where the config lives.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// etcd (`--etcd etcd://…`).
    Etcd(EtcdSpec),
    /// A directory (`--storage ./conf`).
    Dir(PathBuf),
}

/// Everything `louailink-control` is started with.
#[derive(Clone, Debug)]
pub struct Options {
    /// REST listener.
    pub http: Option<SocketAddr>,
    /// gRPC listener.
    pub grpc: Option<SocketAddr>,
    /// The store.
    pub store: StoreSpec,
    /// Admin tokens.
    pub admin_tokens: Vec<String>,
    /// Viewer tokens.
    pub viewer_tokens: Vec<String>,
    /// History records kept.
    pub history_limit: usize,
    /// Node and etcd polling interval.
    pub poll: Duration,
    /// Bound of every etcd read (keeps a 503 fast when etcd is down: every write reads first).
    pub etcd_timeout: Duration,
    /// Bound of every etcd write (a write waits for etcd's disk).
    pub etcd_write_timeout: Duration,
    /// Webhook retries.
    pub retry: Retry,
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
    /// No token, and a listener that is not loopback.
    #[error("no token is configured, so the API may listen on loopback only, not {0}; add --token (or LOUAILINK_TOKEN) or listen on 127.0.0.1")]
    OpenNotLoopback(SocketAddr),
    /// Nothing to listen on.
    #[error("neither --http nor --grpc is set")]
    NoListener,
    /// The webhook client could not be built.
    #[error("webhook client: {0}")]
    Webhook(#[from] reqwest::Error),
    /// A server stopped with an error.
    #[error("{0}")]
    Serve(String),
}

/// Opens the store.
pub async fn open_store(
    spec: &StoreSpec,
    history_limit: usize,
    etcd_timeout: Duration,
    etcd_write_timeout: Duration,
) -> Result<Store, StoreError> {
    Ok(match spec {
        StoreSpec::Etcd(spec) => {
            let mut spec = spec.clone();
            spec.timeout = spec.timeout.min(etcd_timeout);
            let write_timeout = etcd_write_timeout.max(spec.timeout);
            let backend = EtcdBackend::connect(&spec, write_timeout, history_limit).await?;
            Store::Etcd(Box::new(backend))
        }
        StoreSpec::Dir(dir) => Store::File(FileBackend::open(dir, history_limit)?),
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind { addr, error })
}

/// Runs until `shutdown` completes.
pub async fn run(
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let auth = Arc::new(Auth::new(&opts.admin_tokens, &opts.viewer_tokens));
    let addrs: Vec<SocketAddr> = opts.http.iter().chain(opts.grpc.iter()).copied().collect();
    if addrs.is_empty() {
        return Err(ServeError::NoListener);
    }
    if auth.is_open() {
        if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(ServeError::OpenNotLoopback(*bad));
        }
        tracing::warn!(
            "no token configured: the API is open to local clients and listens on loopback only"
        );
    }
    let store = open_store(
        &opts.store,
        opts.history_limit,
        opts.etcd_timeout,
        opts.etcd_write_timeout,
    )
    .await?;
    let events = Events::new(DEFAULT_RECENT);
    let service = Arc::new(Service::new(store.clone(), events.clone()));
    service.set_webhook_stats(webhook::spawn(&events, opts.retry)?);
    crate::nodes::spawn(store.clone(), events.clone(), opts.poll);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = opts.http {
        let listener = bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!(
            "REST API on http://{local}/api/v1 (store: {})",
            store.kind()
        );
        let app = rest::router(service.clone(), auth.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let signal = stopped(stop_rx.clone());
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
                .map_err(|e| ServeError::Serve(format!("REST server: {e}")))
        });
    }
    if let Some(addr) = opts.grpc {
        let listener = bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        tracing::info!("gRPC API on {local}");
        let server = grpc::server(service.clone(), auth.clone());
        let signal = stopped(stop_rx.clone());
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                .await
                .map_err(|e| ServeError::Serve(format!("gRPC server: {e}")))
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(ServeError::Serve(format!("server task: {e}"))),
        }
    }
    Ok(())
}

//! Wiring: the store, the event hub, the webhook sender, the node monitor, and the REST and
//! gRPC listeners, until shutdown.

use crate::api::{grpc, rest};
use crate::auth::Auth;
use crate::events::{Events, DEFAULT_RECENT};
use crate::service::Service;
use crate::store::etcd::EtcdBackend;
use crate::store::file::FileBackend;
use crate::store::{Store, StoreError};
use crate::webhook::{self, Retry};
use louailink_shared::storage::{ConfigSource, EtcdSpec, SourceError};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Where the config lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// etcd (`--etcd etcd://…` or `--storage etcd://…`).
    Etcd(EtcdSpec),
    /// A directory (`--storage ./conf`).
    Dir(PathBuf),
}

/// What `--storage` takes, for error messages.
const STORAGE_TAKES: &str =
    "--storage takes etcd://host:2379[,host2:2379]/prefix?user=…&password=…&ca=… \
(the same URL as --etcd and the data plane's -c) or a directory of config files";

/// Why `--etcd` / `--storage` do not name a store the control plane can open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreArgError {
    /// Neither flag was given.
    #[error("no store: give --etcd etcd://host:2379/prefix or --storage <dir|etcd://…>")]
    Missing,
    /// `--storage ""`.
    #[error("--storage is empty; {STORAGE_TAKES}")]
    Empty,
    /// Both flags were given.
    #[error("--etcd and --storage both name a store; give one (--storage also takes etcd://…)")]
    Both,
    /// An `etcd://` URL that does not parse.
    #[error("--{flag}: {error}")]
    Etcd {
        /// `etcd` or `storage`.
        flag: &'static str,
        /// What is wrong with the URL.
        error: SourceError,
    },
    /// A URL of another scheme, or a path that reads like one (`etcd:/x`, `file://…`).
    #[error("--storage {value:?}: {message}; {STORAGE_TAKES}")]
    NotUrlOrPath {
        /// The value as given.
        value: String,
        /// What it looks like.
        message: String,
    },
    /// An existing path that is not a directory.
    #[error("--storage {value:?}: is {what}, not a directory (the control plane writes each item to its own file under it); {STORAGE_TAKES}")]
    NotDirectory {
        /// The value as given.
        value: String,
        /// `a file` or `not a file`.
        what: &'static str,
    },
    /// A directory to create whose parent does not exist.
    #[error("--storage {value:?}: {parent} does not exist (only the last directory is created); {STORAGE_TAKES}")]
    NoParent {
        /// The value as given.
        value: String,
        /// The parent directory, as shown.
        parent: String,
    },
}

impl StoreSpec {
    /// The store named by `--etcd` and `--storage` (exactly one of them).
    pub fn from_flags(etcd: Option<&str>, storage: Option<&str>) -> Result<Self, StoreArgError> {
        match (etcd, storage) {
            (Some(_), Some(_)) => Err(StoreArgError::Both),
            (None, None) => Err(StoreArgError::Missing),
            (Some(url), None) => {
                EtcdSpec::parse(url)
                    .map(StoreSpec::Etcd)
                    .map_err(|error| StoreArgError::Etcd {
                        flag: "etcd",
                        error,
                    })
            }
            (None, Some(value)) => Self::storage(value),
        }
    }

    /// A `--storage` value: an `etcd://` URL (parsed as the data plane's `-c` does), an
    /// existing directory, or a directory to create in an existing one. Never a directory
    /// made from what reads like a URL.
    pub fn storage(value: &str) -> Result<Self, StoreArgError> {
        if value.is_empty() {
            return Err(StoreArgError::Empty);
        }
        if let Some(scheme) = url_scheme(value) {
            if !value.starts_with("etcd://") {
                return Err(StoreArgError::NotUrlOrPath {
                    value: value.to_string(),
                    message: not_url_or_path(value, scheme),
                });
            }
        }
        let source = ConfigSource::parse(value).map_err(|error| StoreArgError::Etcd {
            flag: "storage",
            error,
        })?;
        let path = match source {
            ConfigSource::Etcd(spec) => return Ok(StoreSpec::Etcd(spec)),
            ConfigSource::Dir(dir) => return Ok(StoreSpec::Dir(dir)),
            ConfigSource::File(path) => path,
        };
        if let Ok(meta) = std::fs::metadata(&path) {
            let what = if meta.is_file() {
                "a file"
            } else {
                "not a file"
            };
            return Err(StoreArgError::NotDirectory {
                value: value.to_string(),
                what,
            });
        }
        let parent = match path.parent() {
            Some(p) if p.as_os_str().is_empty() => Path::new("."),
            Some(p) => p,
            None => Path::new("/"),
        };
        if !parent.is_dir() {
            return Err(StoreArgError::NoParent {
                value: value.to_string(),
                parent: parent.display().to_string(),
            });
        }
        Ok(StoreSpec::Dir(path))
    }
}

/// The scheme of a value that starts like a URL (`etcd:`, `file:`, `http:`): letters,
/// digits, `+`, `-` or `.` from a letter to the first `:`. A path meant to start that way
/// is written `./name:…`.
fn url_scheme(value: &str) -> Option<&str> {
    let (scheme, _) = value.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(scheme)
}

/// What a URL-like `--storage` value that is not `etcd://…` seems to be.
fn not_url_or_path(value: &str, scheme: &str) -> String {
    let rest = &value[scheme.len() + 1..];
    match scheme.to_ascii_lowercase().as_str() {
        "etcd" => format!(
            "not an etcd URL (write etcd://{}); a directory whose name starts with \"etcd:\" is written ./{value}",
            rest.trim_start_matches('/')
        ),
        "file" => format!(
            "file:// URLs are not taken; give the directory itself ({})",
            rest.strip_prefix("//").unwrap_or(rest)
        ),
        _ => format!(
            "unknown scheme {scheme:?}; a directory whose name has a colon is written ./{value}"
        ),
    }
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
    // A staged change a previous run left unfinished is rolled back (retried until etcd
    // answers), as is any that fails from now on.
    tokio::spawn(service.clone().run_recovery());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(value: &str) -> String {
        let e = StoreSpec::storage(value).unwrap_err().to_string();
        assert!(e.starts_with("--storage"), "{e}");
        e
    }

    #[test]
    fn storage_takes_etcd_urls_like_etcd_does() {
        let url = "etcd://127.0.0.1:2379,127.0.0.2:2379/fleet?user=u&password=p&timeout=2s";
        let by_storage = StoreSpec::from_flags(None, Some(url)).unwrap();
        let by_etcd = StoreSpec::from_flags(Some(url), None).unwrap();
        assert_eq!(by_storage, by_etcd);
        let StoreSpec::Etcd(spec) = by_storage else {
            panic!("not etcd")
        };
        assert_eq!(spec.prefix, "/fleet");
        let e = StoreSpec::from_flags(None, Some("etcd://127.0.0.1/x")).unwrap_err();
        assert!(e.to_string().starts_with("--storage: etcd URL"), "{e}");
        assert!(e.to_string().contains("has no port"), "{e}");
    }

    #[test]
    fn storage_takes_directories_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            StoreSpec::storage(d.to_str().unwrap()).unwrap(),
            StoreSpec::Dir(d.into())
        );
        let new = d.join("new");
        assert_eq!(
            StoreSpec::storage(new.to_str().unwrap()).unwrap(),
            StoreSpec::Dir(new.clone())
        );
        assert!(!new.exists(), "parsing creates nothing");
        let file = d.join("a.toml");
        std::fs::write(&file, "").unwrap();
        assert!(refused(file.to_str().unwrap()).contains("is a file, not a directory"));
        let deep = d.join("missing").join("conf");
        assert!(refused(deep.to_str().unwrap()).contains("does not exist"));
        for (value, want) in [
            (
                "etcd:/127.0.0.1:2379/louailink",
                "write etcd://127.0.0.1:2379/louailink",
            ),
            ("etcd:127.0.0.1:2379", "not an etcd URL"),
            ("file:///srv/conf", "give the directory itself (/srv/conf)"),
            ("http://127.0.0.1:2379/x", "unknown scheme \"http\""),
            ("localhost:2379", "unknown scheme"),
        ] {
            let e = refused(value);
            assert!(
                e.contains(want) && e.contains("--storage takes etcd://"),
                "{e}"
            );
        }
        assert_eq!(
            StoreSpec::storage("./etcd:x").unwrap(),
            StoreSpec::Dir("./etcd:x".into()),
            "a path written as a path"
        );
    }

    #[test]
    fn exactly_one_store_flag() {
        let both = StoreSpec::from_flags(Some("etcd://h:1"), Some("/tmp"));
        assert_eq!(both, Err(StoreArgError::Both));
        assert_eq!(
            StoreSpec::from_flags(None, None),
            Err(StoreArgError::Missing)
        );
        assert_eq!(StoreSpec::storage(""), Err(StoreArgError::Empty));
    }
}

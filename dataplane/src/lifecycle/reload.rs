//! Applying a new config to a running process: validate, build a complete snapshot off the
//! request path (reusing unchanged upstreams and plugins), and swap it in one step. Listener
//! changes cannot be hot-swapped: with `-a` the process upgrades itself without downtime
//! (a new process takes the sockets over), otherwise the change is reported as pending.

use crate::events::Notifier;
use crate::lifecycle::config_runtime::run_when_idle;
use crate::lifecycle::node::NodeView;
use crate::request::access_log::Sink;
use crate::runtime::snapshot::{BuildError, Snapshot};
use arc_swap::ArcSwap;
use louailink_shared::{Config, ServerConf};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What applying a config did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed.
    Unchanged,
    /// The new snapshot serves.
    Applied,
    /// Applied, but listener changes wait for a restart (named servers).
    RestartPending(Vec<String>),
    /// Applied what could be; a zero-downtime self-upgrade was started for the listeners.
    Restarting,
    /// Not applied; the running config keeps serving.
    Rejected(Vec<BuildError>),
}

/// The listener-level settings of a server, which only a restart can change.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Listener {
    addr: Vec<String>,
    tls: bool,
    enabled_h2: bool,
    threads: Option<usize>,
}

impl From<&ServerConf> for Listener {
    fn from(s: &ServerConf) -> Self {
        Listener {
            addr: s.addr.0.clone(),
            tls: s.tls,
            enabled_h2: s.enabled_h2,
            threads: s.threads,
        }
    }
}

fn listeners(config: &Config) -> BTreeMap<String, Listener> {
    config
        .servers
        .iter()
        .map(|(n, s)| (n.clone(), Listener::from(s)))
        .collect()
}

/// Servers whose listeners differ between the running process and `config`.
fn listener_changes(started: &BTreeMap<String, Listener>, config: &Config) -> Vec<String> {
    let wanted = listeners(config);
    let mut changed: Vec<String> = wanted
        .iter()
        .filter(|(name, l)| started.get(*name) != Some(l))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(started.keys().filter(|n| !wanted.contains_key(*n)).cloned());
    changed
}

/// Swaps configs into the live state.
pub struct Reloader {
    state: Arc<ArcSwap<Snapshot>>,
    sink: Arc<Sink>,
    /// Listeners as this process opened them.
    started: BTreeMap<String, Listener>,
    /// `-a`: upgrade ourselves for listener changes.
    autorestart: bool,
    restarting: AtomicBool,
    /// Serialises builds so two changes never race.
    lock: tokio::sync::Mutex<()>,
    node: Arc<NodeView>,
    /// Events of a single node (off in etcd mode).
    notifier: Arc<Notifier>,
    /// The runtime that runs health checks (builds run elsewhere, at a lower priority).
    maintenance: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Reloader {
    /// A reloader for the process started with `config`.
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        sink: Arc<Sink>,
        config: &Config,
        autorestart: bool,
        node: Arc<NodeView>,
        notifier: Arc<Notifier>,
    ) -> Self {
        Reloader {
            state,
            sink,
            started: listeners(config),
            autorestart,
            restarting: AtomicBool::new(false),
            lock: tokio::sync::Mutex::new(()),
            node,
            notifier,
            maintenance: std::sync::OnceLock::new(),
        }
    }

    /// Sets the runtime on which health checks of new upstreams start.
    pub fn set_maintenance(&self, handle: tokio::runtime::Handle) {
        let _ = self.maintenance.set(handle);
    }

    /// The snapshot serving now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.state.load_full()
    }

    /// This process's event sender.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Builds and swaps in `config` (already validated by the loader).
    pub async fn apply(&self, config: Arc<Config>) -> Outcome {
        let _guard = self.lock.lock().await;
        let current = self.state.load_full();
        if current.config == config {
            return Outcome::Unchanged;
        }
        let (previous, sink) = (Arc::clone(&current), Arc::clone(&self.sink));
        let built = run_when_idle(move || build_snapshot(Arc::clone(&config), &previous, &sink));
        let snapshot = match built.await {
            Some(Ok(s)) => s,
            None => {
                return Outcome::Rejected(vec![BuildError::general("building the snapshot failed")])
            }
            Some(Err(errors)) => {
                for e in &errors {
                    tracing::error!(error = %e, "config rejected; the running config keeps serving");
                }
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                self.notifier.config_rejected(&messages);
                return Outcome::Rejected(errors);
            }
        };
        let snapshot = Arc::new(snapshot);
        self.state.store(Arc::clone(&snapshot));
        {
            let _on_maintenance = self.maintenance.get().map(|h| h.enter());
            snapshot.start_maintenance(&self.notifier);
        }
        let config = &snapshot.config;
        self.notifier.set_webhook(config.basic.webhook.clone());
        self.notifier.config_changed(&current.config, config);
        retire(current);
        let changed = listener_changes(&self.started, config);
        if changed.is_empty() {
            tracing::info!("config applied");
            return Outcome::Applied;
        }
        self.node.update(|s| s.set_restart_pending(true));
        if !self.autorestart {
            tracing::warn!(servers = ?changed, "config applied; listener changes need a restart (restart_pending)");
            self.notifier.restart_pending(&changed);
            return Outcome::RestartPending(changed);
        }
        if self.restarting.swap(true, Ordering::AcqRel) {
            return Outcome::Restarting;
        }
        tracing::info!(servers = ?changed, "listener changes: zero-downtime self-upgrade");
        match self_upgrade() {
            Ok(()) => {
                self.notifier.restarting(&changed);
                Outcome::Restarting
            }
            Err(e) => {
                self.restarting.store(false, Ordering::Release);
                tracing::error!(error = %e, "self-upgrade failed; listener changes are pending");
                self.notifier.restart_pending(&changed);
                Outcome::RestartPending(changed)
            }
        }
    }
}

/// Builds a snapshot on the calling (config) thread: resolving backends needs a runtime.
fn build_snapshot(
    config: Arc<Config>,
    previous: &Snapshot,
    sink: &Arc<Sink>,
) -> Result<Snapshot, Vec<BuildError>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            vec![BuildError::general(format!(
                "cannot start a runtime to build the snapshot: {e}"
            ))]
        })?;
    runtime.block_on(Snapshot::build(config, Some(previous), sink))
}

/// Frees a replaced snapshot once the last request using it has finished, rather than in that
/// request's thread (tearing down a large config takes milliseconds), and in idle CPU time.
fn retire(old: Arc<Snapshot>) {
    tokio::spawn(async move {
        while Arc::strong_count(&old) > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        crate::lifecycle::config_runtime::drop_when_idle(old);
    });
}

/// Starts a copy of this process with `-u` (it waits for our sockets), then asks ourselves
/// to hand them over and drain (SIGQUIT).
fn self_upgrade() -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "-u" || a == "--upgrade") {
        args.push("--upgrade".into());
    }
    std::process::Command::new(exe).args(&args).spawn()?;
    // SAFETY: sending a signal to our own pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGQUIT) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

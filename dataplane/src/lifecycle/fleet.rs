//! etcd mode: start from etcd (or from the last good snapshot on disk when etcd is
//! unreachable), follow the prefix, apply every new desired config, persist it, and keep the
//! node's lease-bound status key current.

use crate::lifecycle::node::{backend_health, NodeView};
use crate::lifecycle::reload::{Outcome, Reloader};
use crate::runtime::snapshot::{BuildError, Snapshot};
use arc_swap::ArcSwap;
use louailink_shared::storage::{
    EtcdSpec, FollowState, Follower, FollowerOptions, NodeKeeper, NodeStatus, StateFile,
    StateSnapshot,
};
use louailink_shared::Config;
use std::sync::Arc;
use std::time::Duration;

/// Lease time-to-live of the node status key.
const NODE_TTL: Duration = Duration::from_secs(10);

/// Where this node follows its config from.
#[derive(Clone)]
pub struct Fleet {
    /// The etcd endpoints and prefix.
    pub spec: EtcdSpec,
    /// The last good config on disk.
    pub state_file: Arc<StateFile>,
    /// The config the process started with, and the revision it came from.
    pub seed: Option<StateSnapshot>,
}

/// What a node starts from in etcd mode.
pub struct Initial {
    /// The config to serve.
    pub config: Config,
    /// Its snapshot for the follower to start from (revision included), if any.
    pub seed: Option<StateSnapshot>,
    /// True when `config` came from etcd (else from the state file, or empty).
    pub ready: bool,
    /// The last good config saved in the state dir, if it differs from `config`: the fallback
    /// when `config` cannot be built.
    pub last_good: Option<StateSnapshot>,
}

/// The config to start with: etcd's when it answers within its timeout, else the state
/// file's (served as stale).
pub fn initial_config(spec: &EtcdSpec, state_file: &StateFile) -> anyhow::Result<Initial> {
    let saved = match state_file.load() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the saved config snapshot");
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let wait = spec.timeout.max(Duration::from_secs(2));
    let state = runtime.block_on(async {
        let follower = Follower::spawn(spec.clone(), saved.as_ref(), FollowerOptions::default())?;
        let mut rx = follower.subscribe();
        let fresh =
            tokio::time::timeout(wait, rx.wait_for(|s| !s.stale && s.config.is_some())).await;
        let state = match fresh {
            Ok(Ok(s)) => s.clone(),
            _ => follower.state(),
        };
        // Let the abort take effect while the runtime still runs: a task torn down by the
        // runtime's shutdown instead may panic creating a timer (an abort with panic=abort).
        follower.stop();
        drop(follower);
        tokio::time::sleep(Duration::from_millis(50)).await;
        anyhow::Ok(state)
    })?;
    drop(runtime);
    Ok(match (&state.config, state.stale) {
        (Some(config), false) => {
            let snapshot = StateSnapshot::new((**config).clone(), state.revision, spec.to_string());
            let last_good = saved.filter(|s| s.hash != snapshot.hash);
            Initial {
                config: (**config).clone(),
                seed: Some(snapshot),
                ready: true,
                last_good,
            }
        }
        (Some(config), true) => {
            tracing::warn!(
                "etcd unreachable: serving the last good config from the state dir (stale)"
            );
            Initial {
                config: (**config).clone(),
                seed: saved,
                ready: false,
                last_good: None,
            }
        }
        (None, _) => {
            tracing::warn!(
                error = state
                    .last_error
                    .as_deref()
                    .unwrap_or("no config under the prefix"),
                "no config from etcd and none saved: starting empty until etcd has one"
            );
            Initial {
                config: Config::default(),
                seed: None,
                ready: false,
                last_good: None,
            }
        }
    })
}

/// Follows etcd until the process ends.
pub async fn follow(
    fleet: Fleet,
    reloader: Arc<Reloader>,
    state: Arc<ArcSwap<Snapshot>>,
    node: Arc<NodeView>,
) {
    let follower = match Follower::spawn(
        fleet.spec.clone(),
        fleet.seed.as_ref(),
        FollowerOptions::default(),
    ) {
        Ok(f) => f,
        Err(e) => return tracing::error!(error = %e, "cannot follow etcd"),
    };
    let keeper = match NodeKeeper::spawn(fleet.spec.clone(), node.status(&state.load()), NODE_TTL) {
        Ok(k) => k,
        Err(e) => return tracing::error!(error = %e, "cannot publish the node status"),
    };
    let saver = spawn_saver(&fleet);
    let mut rx = follower.subscribe();
    // The state published before we subscribed (e.g. the seed, stale while etcd is down)
    // counts too: apply it once so the status says so.
    let current = rx.borrow_and_update().clone();
    apply(&reloader, &node, &saver, &current, &follower).await;
    let status = node.status(&state.load());
    keeper.update(|s| *s = status);
    let mut health_tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_health = backend_health(&state.load());
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return tracing::error!("the etcd follower stopped");
                }
                let followed = rx.borrow_and_update().clone();
                apply(&reloader, &node, &saver, &followed, &follower).await;
                let status = node.status(&state.load());
                keeper.update(|s| *s = status);
            }
            _ = health_tick.tick() => {
                let health = backend_health(&state.load());
                if health != last_health {
                    last_health = health.clone();
                    keeper.update(|s| s.upstreams = health);
                }
            }
        }
    }
}

/// Applies one followed state, then records in the node's status what it now serves: the
/// revision and hash change only once the new snapshot is swapped in. Items the snapshot
/// refuses go back to the follower, which rejects them per key and publishes the rest.
async fn apply(
    reloader: &Reloader,
    node: &NodeView,
    saver: &Saver,
    followed: &FollowState,
    follower: &Follower,
) {
    let Some(config) = followed.config.as_ref() else {
        return node.update(|s| s.follow(followed));
    };
    let outcome = reloader.apply(Arc::clone(config)).await;
    node.update(|s| {
        let served = (s.applied_revision, std::mem::take(&mut s.config_hash));
        s.follow(followed);
        if matches!(outcome, Outcome::Rejected(_)) {
            // Still serving the previous config: the status must say so.
            (s.applied_revision, s.config_hash) = served;
        }
    });
    match outcome {
        Outcome::Rejected(errors) => {
            tracing::error!(
                revision = followed.revision,
                "config from etcd not applied: {}",
                join(&errors)
            );
            let items = errors
                .into_iter()
                .filter_map(|e| Some((e.item?, e.message)))
                .collect();
            follower.unbuildable(Arc::clone(&reloader.current().config), items);
        }
        outcome => {
            if !followed.stale {
                node.set_ready();
                if outcome != Outcome::Unchanged {
                    saver.send_replace(Some((Arc::clone(config), followed.revision)));
                }
            }
        }
    }
}

fn join(errors: &[BuildError]) -> String {
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

/// The newest applied config and its revision, for the state file.
type Saver = tokio::sync::watch::Sender<Option<(Arc<Config>, i64)>>;

/// Saves the newest applied config to the state dir off the follow loop: the two fsyncs
/// can take long on a busy disk, and only the newest config matters.
fn spawn_saver(fleet: &Fleet) -> Saver {
    let state_file = Arc::clone(&fleet.state_file);
    let source = fleet.spec.to_string();
    let (tx, mut rx) = tokio::sync::watch::channel::<Option<(Arc<Config>, i64)>>(None);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let Some((config, revision)) = rx.borrow_and_update().clone() else {
                continue;
            };
            let (state_file, source) = (Arc::clone(&state_file), source.clone());
            let saved = tokio::task::spawn_blocking(move || {
                state_file.save(&StateSnapshot::new((*config).clone(), revision, source))
            })
            .await;
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the config snapshot"),
                Err(e) => tracing::warn!(error = %e, "the config snapshot save failed"),
            }
        }
    });
    tx
}

/// A node id: the host name plus a short random suffix, kept in the state dir.
pub fn node_id(state_dir: &std::path::Path) -> String {
    let file = state_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&file) {
        let id = id.trim();
        if !id.is_empty() {
            return id.to_string();
        }
    }
    let id = format!(
        "{}-{:06x}",
        louailink_shared::storage::node_status::host_name(),
        fastrand::u32(..0x100_0000)
    );
    if let Err(e) = std::fs::create_dir_all(state_dir).and_then(|_| std::fs::write(&file, &id)) {
        tracing::warn!(error = %e, "cannot keep the node id in the state dir");
    }
    id
}

/// A fresh status for this node.
pub fn new_status(id: &str) -> NodeStatus {
    NodeStatus::new(id, env!("CARGO_PKG_VERSION"))
}

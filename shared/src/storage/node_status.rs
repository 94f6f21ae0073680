//! A data-plane node's status key `<prefix>/nodes/<node-id>` (dataplane.md, "Node identity
//! and status"): JSON bound to a lease (TTL about 10 s) kept alive by a task, rewritten
//! whenever the status changes, gone within the TTL once the node stops. [`NodeStatus`] lives
//! here so the control plane reads exactly what nodes write.

use crate::storage::desired::{Alarm, Rejected};
use crate::storage::etcd::{EtcdError, EtcdStore};
use crate::storage::follow::FollowState;
use crate::storage::keys::{KeyError, Keys};
use crate::storage::source::EtcdSpec;
use etcd_client::PutOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The default lease TTL of a node key.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// A node's overall status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Following etcd, nothing pending.
    #[default]
    Ok,
    /// etcd unreachable: serving the last good config.
    Stale,
    /// A listener change waits for a restart.
    RestartPending,
}

/// The health of one backend as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// `host:port`.
    pub addr: String,
    /// Whether health checks pass.
    pub healthy: bool,
}

/// What a node writes at `<prefix>/nodes/<node-id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    /// The node id (`--node-id`).
    pub id: String,
    /// Host name.
    pub host: String,
    /// `louailink` version.
    pub version: String,
    /// Process start (RFC 3339, UTC).
    pub started_at: String,
    /// Last write of this key (RFC 3339, UTC).
    pub updated_at: String,
    /// The etcd revision of the config being served.
    pub applied_revision: i64,
    /// The hash of the config being served.
    pub config_hash: String,
    /// `ok`, `stale` or `restart_pending` (stale wins).
    pub status: NodeState,
    /// etcd unreachable.
    pub stale: bool,
    /// A listener change waits for a restart.
    pub restart_pending: bool,
    /// Values not applied, and why.
    pub rejected: Vec<Rejected>,
    /// Raised alarms.
    pub alarms: Vec<Alarm>,
    /// Per upstream, its backends' health.
    pub upstreams: BTreeMap<String, Vec<BackendHealth>>,
}

impl NodeStatus {
    /// A fresh status for node `id` running `version`, started now on this host.
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        NodeStatus {
            id: id.into(),
            host: host_name(),
            version: version.into(),
            started_at: now(),
            ..NodeStatus::default()
        }
    }

    /// Takes the revision, hash, rejections, alarms and staleness of a follower state
    /// (call it once that state's config is applied).
    pub fn follow(&mut self, state: &FollowState) {
        self.applied_revision = state.revision;
        self.config_hash = state.hash.clone().unwrap_or_default();
        self.rejected = state.rejected.clone();
        self.alarms = state.alarms.clone();
        self.stale = state.stale;
        self.status = self.computed_state();
    }

    /// Marks a restart as pending (or not).
    pub fn set_restart_pending(&mut self, pending: bool) {
        self.restart_pending = pending;
        self.status = self.computed_state();
    }

    fn computed_state(&self) -> NodeState {
        if self.stale {
            NodeState::Stale
        } else if self.restart_pending {
            NodeState::RestartPending
        } else {
            NodeState::Ok
        }
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`, else `unknown`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Keeps a node's status key alive; dropping it stops the task (the key then expires).
#[derive(Debug)]
pub struct NodeKeeper {
    status: watch::Sender<NodeStatus>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl NodeKeeper {
    /// Starts writing `status` at `<prefix>/nodes/<status.id>` with a lease of `ttl` (at least
    /// 2 s), kept alive every third of it; reconnects and re-registers after failures. Must be
    /// called inside a Tokio runtime.
    pub fn spawn(spec: EtcdSpec, status: NodeStatus, ttl: Duration) -> Result<Self, KeyError> {
        let key = Keys::new(&spec.prefix)?.node(&status.id)?;
        let (status_tx, status_rx) = watch::channel(status);
        let (stop_tx, stop_rx) = watch::channel(false);
        let timeout = spec.timeout;
        let task = KeeperTask {
            spec,
            key,
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(2),
            status: status_rx,
            stop: stop_rx,
        };
        Ok(NodeKeeper {
            status: status_tx,
            stop: stop_tx,
            task: Some(tokio::spawn(task.run())),
            timeout,
        })
    }

    /// Changes the status; the key is rewritten at once (changes made meanwhile coalesce).
    pub fn update(&self, change: impl FnOnce(&mut NodeStatus)) {
        self.status.send_modify(change);
    }

    /// The current status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// Stops and revokes the lease, so the key disappears now rather than after the TTL.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            let wait = self.timeout + Duration::from_secs(1);
            if tokio::time::timeout(wait, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for NodeKeeper {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct KeeperTask {
    spec: EtcdSpec,
    key: String,
    ttl: i64,
    status: watch::Receiver<NodeStatus>,
    stop: watch::Receiver<bool>,
}

impl KeeperTask {
    async fn run(mut self) {
        let min = Duration::from_millis(250);
        let mut backoff = min;
        loop {
            if *self.stop.borrow() {
                return;
            }
            match self.session(&mut backoff, min).await {
                Ok(()) => return,
                Err(e) => tracing::warn!("node status {}: {e}; registering again", self.key),
            }
            let jitter = 0.5 + fastrand::f64() * 0.5;
            tokio::select! {
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                _ = self.stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One lease: grant, write, keep alive and rewrite until stopped (Ok) or failed.
    async fn session(&mut self, backoff: &mut Duration, min: Duration) -> Result<(), EtcdError> {
        let store = EtcdStore::connect(&self.spec).await?;
        let mut client = store.client();
        let key = self.key.clone();
        let lease = store
            .timed("lease grant", &key, client.lease_grant(self.ttl, None))
            .await?
            .id();
        self.status.mark_changed();
        let (mut keeper, mut responses) = store
            .timed("lease keep-alive", &key, client.lease_keep_alive(lease))
            .await?;
        *backoff = min;
        let period = Duration::from_secs(u64::try_from(self.ttl).unwrap_or(2)) / 3;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.changed() => {
                    let revoked = store.timed("lease revoke", &key, client.lease_revoke(lease)).await;
                    if let Err(e) = revoked {
                        tracing::warn!("node status {key}: {e}; the key expires with its lease");
                    }
                    return Ok(());
                }
                changed = self.status.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let mut status = self.status.borrow_and_update().clone();
                    status.updated_at = now();
                    let value = serde_json::to_vec(&status)
                        .map_err(|error| EtcdError::Encode { key: key.clone(), error })?;
                    let options = PutOptions::new().with_lease(lease);
                    store.timed("put", &key, client.put(key.clone(), value, Some(options))).await?;
                }
                _ = tick.tick() => {
                    store.timed("lease keep-alive", &key, keeper.keep_alive()).await?;
                    let answer = store.timed("lease keep-alive", &key, responses.message()).await?;
                    match answer {
                        Some(r) if r.ttl() > 0 => {}
                        _ => {
                            return Err(EtcdError::Lease {
                                key,
                                message: format!("lease {lease:x} expired"),
                            })
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_follower() {
        let mut s = NodeStatus::new("n1", "0.1.0");
        assert!(!s.host.is_empty() && !s.started_at.is_empty());
        s.set_restart_pending(true);
        assert_eq!(s.status, NodeState::RestartPending);
        let state = FollowState {
            revision: 7,
            hash: Some("h".into()),
            stale: true,
            ..FollowState::default()
        };
        s.follow(&state);
        assert_eq!(
            (s.status, s.applied_revision, s.config_hash.as_str()),
            (NodeState::Stale, 7, "h")
        );
        s.follow(&FollowState::default());
        assert_eq!(s.status, NodeState::RestartPending);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["status"], "restart_pending");
        let back: NodeStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}

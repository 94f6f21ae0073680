//! What this node reports about itself: readiness and status (id, revision, config hash,
//! restart_pending, rejected items, backend health), shown on the admin listener and, in
//! etcd mode, published in the node's lease-bound key.

use crate::runtime::snapshot::Snapshot;
use louailink_shared::storage::{BackendHealth, NodeStatus};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// This process's view of itself, shared by the reloader, the etcd loop and the admin API.
pub struct NodeView {
    ready: AtomicBool,
    status: Mutex<NodeStatus>,
}

impl NodeView {
    /// A node that is ready at once (file mode) or once the first full config applies.
    pub fn new(status: NodeStatus, ready: bool) -> Self {
        NodeView {
            ready: AtomicBool::new(ready),
            status: Mutex::new(status),
        }
    }

    /// True once a full config from the source of truth is applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the node ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The node id.
    pub fn id(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .id
            .clone()
    }

    /// Changes the status.
    pub fn update(&self, change: impl FnOnce(&mut NodeStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut s);
    }

    /// The status with fresh backend health from `snapshot`.
    pub fn status(&self, snapshot: &Snapshot) -> NodeStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.upstreams = backend_health(snapshot);
        s
    }
}

/// Health of every backend of every upstream.
pub fn backend_health(snapshot: &Snapshot) -> BTreeMap<String, Vec<BackendHealth>> {
    snapshot
        .upstreams
        .iter()
        .map(|(name, u)| {
            let backends = u
                .health()
                .into_iter()
                .map(|(addr, healthy)| BackendHealth {
                    addr: addr.to_string(),
                    healthy,
                })
                .collect();
            (name.clone(), backends)
        })
        .collect()
}

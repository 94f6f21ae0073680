//! The data-plane nodes, from their lease-bound status keys `<prefix>/nodes/<id>`
//! (`shared::storage::NodeStatus`): the list `GET /api/v1/nodes` shows, and the [`Tracker`]
//! that turns successive observations into events, one per transition:
//!
//! - `node_online` / `node_offline`: a key appeared / disappeared (its lease expired or
//!   was revoked); `restart`: same id, new `started_at`; `restart_pending`: a node's
//!   `restart_pending` turned on.
//! - `backend_unhealthy` / `backend_healthy`: per upstream backend, across the fleet: it is
//!   unhealthy while any node sees it unhealthy. One event per change of that fleet view,
//!   not one per node or per check.
//! - `config_rejected`: once per rejected `(key, revision)`, however many nodes reject it.
//! - `etcd_unavailable` / `etcd_recovered`: the control plane lost or regained etcd.
//!
//! The first observation after start only seeds the state (no events for what was
//! already there). The [`spawn`]ed monitor polls the store every interval.

use crate::events::Events;
use crate::store::{NodeEntry, Store};
use louailink_shared::storage::{NodeState, NodeStatus, Rejected};
use louailink_shared::{decode_item, Item, Kind};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One backend as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendView {
    /// The upstream.
    pub upstream: String,
    /// `host:port`.
    pub addr: String,
    /// Whether its health checks pass.
    pub healthy: bool,
}

/// One node as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// `louailink` version.
    pub version: String,
    /// The revision of the config it serves.
    pub applied_revision: i64,
    /// Whether that is the latest config revision.
    pub in_sync: bool,
    /// Hash of the config it serves.
    pub config_hash: String,
    /// `ok`, `stale`, `restart_pending`.
    pub status: String,
    /// Items it did not apply, and why.
    pub rejected: Vec<Rejected>,
    /// Raised alarms.
    pub alarms: Vec<String>,
    /// Its backends' health.
    pub backends: Vec<BackendView>,
    /// Process start.
    pub started_at: String,
    /// Its last status write.
    pub last_seen: String,
    /// Set when the status key does not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/nodes`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodesView {
    /// The nodes, by id.
    pub nodes: Vec<NodeView>,
    /// The revision of the latest config change.
    pub latest_revision: i64,
}

fn state_name(s: NodeState) -> String {
    match serde_json::to_value(s) {
        Ok(Value::String(s)) => s,
        _ => "ok".into(),
    }
}

/// The API's view of the node keys.
pub fn view(entries: &[NodeEntry], latest_revision: i64) -> NodesView {
    let mut nodes: Vec<NodeView> = entries
        .iter()
        .map(|entry| match &entry.status {
            Ok(s) => NodeView {
                id: entry.id.clone(),
                host: s.host.clone(),
                version: s.version.clone(),
                applied_revision: s.applied_revision,
                in_sync: s.applied_revision >= latest_revision,
                config_hash: s.config_hash.clone(),
                status: state_name(s.status),
                rejected: s.rejected.clone(),
                alarms: s
                    .alarms
                    .iter()
                    .map(|a| match serde_json::to_value(a) {
                        Ok(Value::String(s)) => s,
                        _ => format!("{a:?}"),
                    })
                    .collect(),
                backends: backends(s),
                started_at: s.started_at.clone(),
                last_seen: s.updated_at.clone(),
                error: None,
            },
            Err(e) => NodeView {
                id: entry.id.clone(),
                host: String::new(),
                version: String::new(),
                applied_revision: 0,
                in_sync: false,
                config_hash: String::new(),
                status: "unknown".into(),
                rejected: Vec::new(),
                alarms: Vec::new(),
                backends: Vec::new(),
                started_at: String::new(),
                last_seen: String::new(),
                error: Some(e.clone()),
            },
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    NodesView {
        nodes,
        latest_revision,
    }
}

fn backends(s: &NodeStatus) -> Vec<BackendView> {
    s.upstreams
        .iter()
        .flat_map(|(upstream, list)| {
            list.iter().map(move |b| BackendView {
                upstream: upstream.clone(),
                addr: b.addr.clone(),
                healthy: b.healthy,
            })
        })
        .collect()
}

/// An event to emit: name, message, node, details.
pub type Pending = (&'static str, String, String, Value);

/// Turns successive observations of the node keys into transition events.
#[derive(Debug, Default)]
pub struct Tracker {
    seeded: bool,
    nodes: BTreeMap<String, NodeStatus>,
    /// (upstream, addr) → unhealthy in the fleet view.
    backends: BTreeMap<(String, String), bool>,
    rejected: BTreeSet<(String, i64)>,
    etcd_up: Option<bool>,
}

impl Tracker {
    /// The events since the last observation.
    pub fn observe(&mut self, entries: &[NodeEntry]) -> Vec<Pending> {
        let mut out = Vec::new();
        let now: BTreeMap<String, NodeStatus> = entries
            .iter()
            .filter_map(|e| e.status.as_ref().ok().map(|s| (e.id.clone(), s.clone())))
            .collect();
        let seeded = self.seeded;
        for (id, status) in &now {
            match self.nodes.get(id) {
                None if seeded => out.push((
                    "node_online",
                    format!("node {id} ({}, {}) is online", status.host, status.version),
                    id.clone(),
                    json!({"host": status.host, "version": status.version}),
                )),
                Some(old) if old.started_at != status.started_at => out.push((
                    "restart",
                    format!("node {id} restarted (version {})", status.version),
                    id.clone(),
                    json!({"version": status.version, "started_at": status.started_at}),
                )),
                _ => {}
            }
            let was_pending = self.nodes.get(id).is_some_and(|o| o.restart_pending);
            if seeded && status.restart_pending && !was_pending {
                out.push((
                    "restart_pending",
                    format!("node {id} needs a restart for a listener change"),
                    id.clone(),
                    json!({}),
                ));
            }
        }
        for id in self.nodes.keys() {
            if !now.contains_key(id) {
                out.push((
                    "node_offline",
                    format!("node {id} is offline (its status key expired)"),
                    id.clone(),
                    json!({}),
                ));
            }
        }
        // Backends: the fleet view.
        let mut seen: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
        for (id, status) in &now {
            for (upstream, list) in &status.upstreams {
                for b in list {
                    let entry = seen
                        .entry((upstream.clone(), b.addr.clone()))
                        .or_insert((false, Vec::new()));
                    if !b.healthy {
                        entry.0 = true;
                        entry.1.push(id.clone());
                    }
                }
            }
        }
        for ((upstream, addr), (unhealthy, by)) in &seen {
            let before = self
                .backends
                .get(&(upstream.clone(), addr.clone()))
                .copied();
            let changed = match before {
                Some(b) => b != *unhealthy,
                None => *unhealthy,
            };
            if seeded && changed {
                let (name, message) = if *unhealthy {
                    (
                        "backend_unhealthy",
                        format!(
                            "backend {addr} of upstream {upstream} is unhealthy (seen by {})",
                            by.join(", ")
                        ),
                    )
                } else {
                    (
                        "backend_healthy",
                        format!("backend {addr} of upstream {upstream} is healthy again"),
                    )
                };
                out.push((
                    name,
                    message,
                    String::new(),
                    json!({"upstream": upstream, "addr": addr, "nodes": by}),
                ));
            }
        }
        self.backends = seen.into_iter().map(|(k, (u, _))| (k, u)).collect();
        // Rejections: once per (key, revision).
        let mut reported = BTreeSet::new();
        for (id, status) in &now {
            for r in &status.rejected {
                let k = (r.key.clone(), r.revision);
                if seeded && !self.rejected.contains(&k) && !reported.contains(&k) {
                    out.push((
                        "config_rejected",
                        format!(
                            "node {id} rejected {} at revision {}: {}",
                            r.key, r.revision, r.error
                        ),
                        id.clone(),
                        json!({"key": r.key, "revision": r.revision, "error": r.error}),
                    ));
                }
                reported.insert(k);
            }
        }
        self.rejected = reported;
        self.nodes = now;
        self.seeded = true;
        out
    }

    /// The event for an etcd reachability observation, if it is a transition.
    pub fn etcd(&mut self, up: bool, error: &str) -> Option<Pending> {
        let before = self.etcd_up.replace(up);
        match (before, up) {
            (Some(true) | None, false) => Some((
                "etcd_unavailable",
                format!("the control plane cannot reach etcd: {error}"),
                String::new(),
                json!({"error": error}),
            )),
            (Some(false), true) => Some((
                "etcd_recovered",
                "the control plane reaches etcd again".into(),
                String::new(),
                json!({}),
            )),
            _ => None,
        }
    }
}

/// Polls the store every `interval`: node keys (etcd) and `basic.webhook` (both stores);
/// emits the tracker's events.
pub fn spawn(store: Store, events: Events, interval: Duration) {
    tokio::spawn(async move {
        let mut tracker = Tracker::default();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pending = poll(&store, &events, &mut tracker).await;
            for (name, message, node, details) in pending {
                events.emit(name, message, &node, details);
            }
        }
    });
}

async fn poll(store: &Store, events: &Events, tracker: &mut Tracker) -> Vec<Pending> {
    let mut out = Vec::new();
    let basic = match store {
        Store::Etcd(etcd) => {
            match etcd.nodes().await {
                Ok(nodes) => {
                    out.extend(tracker.etcd(true, ""));
                    out.extend(tracker.observe(&nodes));
                }
                Err(e) => {
                    out.extend(tracker.etcd(false, &e.to_string()));
                    return out;
                }
            }
            etcd.basic().await.ok().flatten()
        }
        Store::File(_) => match store.snapshot().await {
            Ok(s) => s
                .items
                .get(&louailink_shared::storage::ItemKey::basic())
                .map(|s| s.value.clone()),
            Err(_) => return out,
        },
    };
    let webhook = basic
        .and_then(|v| decode_item(Kind::Basic, "", v).ok())
        .and_then(|item| match item {
            Item::Basic(b) => b.webhook,
            _ => None,
        });
    events.set_webhook(webhook);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use louailink_shared::storage::BackendHealth;

    fn node(
        id: &str,
        started: &str,
        backends: &[(&str, bool)],
        rejected: &[(&str, i64)],
    ) -> NodeEntry {
        let mut s = NodeStatus {
            id: id.into(),
            host: "h".into(),
            version: "v".into(),
            started_at: started.into(),
            ..NodeStatus::default()
        };
        s.upstreams.insert(
            "u".into(),
            backends
                .iter()
                .map(|(a, h)| BackendHealth {
                    addr: a.to_string(),
                    healthy: *h,
                })
                .collect(),
        );
        s.rejected = rejected
            .iter()
            .map(|(k, r)| Rejected {
                key: k.to_string(),
                revision: *r,
                error: "bad".into(),
            })
            .collect();
        NodeEntry {
            id: id.into(),
            status: Ok(s),
        }
    }

    fn names(p: &[Pending]) -> Vec<&str> {
        p.iter().map(|e| e.0).collect()
    }

    #[test]
    fn one_event_per_transition() {
        let mut t = Tracker::default();
        assert!(t
            .observe(&[node("a", "1", &[("x:1", true)], &[])])
            .is_empty());
        let p = t.observe(&[
            node("a", "1", &[("x:1", false)], &[]),
            node("b", "1", &[("x:1", false)], &[("/l/locations/z", 7)]),
        ]);
        assert_eq!(
            names(&p),
            ["node_online", "backend_unhealthy", "config_rejected"]
        );
        // Same state again, and the second node's view: nothing new.
        let p = t.observe(&[
            node("a", "1", &[("x:1", false)], &[("/l/locations/z", 7)]),
            node("b", "1", &[("x:1", false)], &[("/l/locations/z", 7)]),
        ]);
        assert!(p.is_empty(), "{p:?}");
        // One node recovers: still unhealthy in the fleet view.
        assert!(t
            .observe(&[
                node("a", "1", &[("x:1", true)], &[]),
                node("b", "1", &[("x:1", false)], &[])
            ])
            .is_empty());
        let p = t.observe(&[
            node("a", "2", &[("x:1", true)], &[]),
            node("b", "1", &[("x:1", true)], &[]),
        ]);
        assert_eq!(names(&p), ["restart", "backend_healthy"]);
        let p = t.observe(&[node("a", "2", &[("x:1", true)], &[])]);
        assert_eq!(names(&p), ["node_offline"]);
        assert_eq!(t.etcd(true, "").map(|e| e.0), None);
        assert_eq!(t.etcd(false, "x").map(|e| e.0), Some("etcd_unavailable"));
        assert_eq!(t.etcd(false, "x").map(|e| e.0), None);
        assert_eq!(t.etcd(true, "").map(|e| e.0), Some("etcd_recovered"));
    }

    #[test]
    fn view_marks_sync() {
        let v = view(&[node("a", "1", &[("x:1", true)], &[])], 5);
        assert!(!v.nodes[0].in_sync);
        assert_eq!(v.nodes[0].backends.len(), 1);
        assert_eq!(v.nodes[0].status, "ok");
    }
}

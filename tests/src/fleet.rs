//! Fleet mode: a real etcd holding a config under a prefix, written with `etcdctl` as an
//! operator would, and `louailink -c etcd://…` nodes following it.
//!
//! Items are JSON at `<prefix>/<kind>/<name>` (`upstreams/u`, `locations/root`, …) and
//! `<prefix>/basic`; `<prefix>/meta/generation` marks the config as intended (see
//! controlplane.md, "etcd layout"). Nodes report at `<prefix>/nodes/<id>` and on their admin
//! listener ([`NodeStatus`]).

use crate::LouailinkBuilder;
use louailink_testkit::{Etcd, Link, TxnOp};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The prefix the tests use (each test has its own etcd anyway).
pub const PREFIX: &str = "/louailink";

/// A value not applied by a node, and why.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Rejected {
    /// The etcd key.
    pub key: String,
    /// The revision of the rejected value.
    pub revision: i64,
    /// Why.
    pub error: String,
}

/// The health of one backend as a node sees it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BackendHealth {
    /// `host:port`.
    pub addr: String,
    /// Whether it passes its health checks.
    pub healthy: bool,
}

/// A node's status, as `GET /_louailink/status` and `<prefix>/nodes/<id>` show it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NodeStatus {
    /// Node id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// `louailink` version.
    pub version: String,
    /// Process start.
    pub started_at: String,
    /// etcd revision of the config being served.
    pub applied_revision: i64,
    /// Hash of the config being served.
    pub config_hash: String,
    /// `ok`, `stale` or `restart_pending`.
    pub status: String,
    /// etcd unreachable.
    pub stale: bool,
    /// A listener change waits for a restart.
    pub restart_pending: bool,
    /// Values not applied.
    pub rejected: Vec<Rejected>,
    /// Raised alarms (`wiped_prefix`, …).
    pub alarms: Vec<String>,
    /// Per upstream, its backends' health.
    pub upstreams: BTreeMap<String, Vec<BackendHealth>>,
}

impl NodeStatus {
    /// The rejection recorded for `key`, if any.
    pub fn rejected_key(&self, key: &str) -> Option<&Rejected> {
        self.rejected.iter().find(|r| r.key == key)
    }
}

/// One write of a transaction ([`Fleet::txn`]): `item` is relative to the prefix
/// (`"locations/root"`, `"basic"`).
pub enum Op {
    /// Put this JSON.
    Put(&'static str, Value),
    /// Put these bytes as they are (e.g. something that is not JSON).
    PutRaw(&'static str, String),
    /// Delete.
    Delete(&'static str),
}

/// A real etcd holding one fleet's config, optionally reached by the nodes through a [`Link`]
/// a test can cut.
pub struct Fleet {
    /// The etcd.
    pub etcd: Etcd,
    link: Option<Link>,
}

impl Fleet {
    /// Starts etcd and writes `basic` (1 thread, 1 s grace period) and `meta/generation`.
    pub fn start() -> Fleet {
        Self::start_on(Etcd::start())
    }

    /// Like [`Fleet::start`], on an etcd started by the caller.
    pub fn start_on(etcd: Etcd) -> Fleet {
        let fleet = Fleet { etcd, link: None };
        fleet.txn(&[
            Op::Put(
                "basic",
                json!({"threads": 1, "grace_period": "1s", "graceful_shutdown_timeout": "1s"}),
            ),
            Op::PutRaw("meta/generation", "1".into()),
        ]);
        fleet
    }

    /// Makes the nodes started from now on reach etcd through a link ([`Self::link`]).
    pub async fn with_link(mut self) -> Fleet {
        self.link = Some(Link::start(self.etcd.endpoint()).await);
        self
    }

    /// The link between the nodes and etcd ([`Self::with_link`]).
    pub fn link(&self) -> &Link {
        self.link.as_ref().expect("started without with_link()")
    }

    /// The full key of `item` (`"locations/root"` → `/louailink/locations/root`).
    pub fn key(item: &str) -> String {
        format!("{PREFIX}/{item}")
    }

    /// `etcd://<endpoint>/louailink?timeout=2s`: what a node's `-c` gets.
    pub fn url(&self) -> String {
        let endpoint = match &self.link {
            Some(link) => link.endpoint(),
            None => self.etcd.endpoint(),
        };
        format!("etcd://{endpoint}{PREFIX}?timeout=2s")
    }

    /// `etcdctl put` of one item as JSON; returns the revision.
    pub fn put(&self, item: &str, value: Value) -> i64 {
        self.etcd.put(&Self::key(item), &value.to_string())
    }

    /// `etcdctl put` of raw bytes; returns the revision.
    pub fn put_raw(&self, item: &str, value: &str) -> i64 {
        self.etcd.put(&Self::key(item), value)
    }

    /// `etcdctl del` of one item; returns the revision.
    pub fn delete(&self, item: &str) -> i64 {
        self.etcd.del(&Self::key(item))
    }

    /// `etcdctl txn`: every op in one revision, which is returned.
    pub fn txn(&self, ops: &[Op]) -> i64 {
        let ops: Vec<TxnOp> = ops
            .iter()
            .map(|op| match op {
                Op::Put(item, v) => TxnOp::Put(Self::key(item), v.to_string()),
                Op::PutRaw(item, v) => TxnOp::Put(Self::key(item), v.clone()),
                Op::Delete(item) => TxnOp::Delete(Self::key(item)),
            })
            .collect();
        self.etcd.txn(&ops)
    }

    /// The status node `id` keeps at `<prefix>/nodes/<id>`, if present.
    pub fn node_key(&self, id: &str) -> Option<NodeStatus> {
        let value = self.etcd.get(&Self::key(&format!("nodes/{id}")))?;
        Some(
            serde_json::from_str(&value)
                .unwrap_or_else(|e| panic!("nodes/{id} is not a node status ({e}): {value}")),
        )
    }

    /// A node following this fleet: `-c etcd://…`, `--node-id <id>`, `--state-dir
    /// <state_dir>`, an admin listener; waits for `ports` (and the admin port) on start.
    pub fn node(&self, id: &str, state_dir: &Path, ports: &[u16]) -> LouailinkBuilder {
        crate::Louailink::builder()
            .source(&self.url())
            .arg(&format!("--node-id={id}"))
            .arg(&format!("--state-dir={}", state_dir.display()))
            .admin()
            .listen_ports(ports)
    }
}

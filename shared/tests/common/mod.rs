//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use louailink_testkit::{etcd, WAIT as LIMIT};

use louailink_shared::storage::{
    Change, EtcdSpec, EtcdStore, FollowState, FollowerOptions, ItemKey,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The prefix the tests use.
pub const PREFIX: &str = "/louailink";

/// A plain spec for `endpoint` with a short request timeout.
pub fn spec(endpoint: &str) -> EtcdSpec {
    let mut spec = EtcdSpec::new(vec![endpoint.to_string()], PREFIX).expect("spec");
    spec.timeout = Duration::from_secs(2);
    spec
}

/// A connected store.
pub async fn store(endpoint: &str) -> EtcdStore {
    EtcdStore::connect(&spec(endpoint)).await.expect("connect")
}

/// Follower options that make failures show quickly in tests.
pub fn fast() -> FollowerOptions {
    FollowerOptions {
        progress_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(2),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..FollowerOptions::default()
    }
}

/// A put of `kind/name` with a JSON value.
pub fn put(kind: &str, name: &str, value: Value) -> Change {
    Change::Put {
        key: ItemKey::new(kind, name).expect("item key"),
        value,
    }
}

/// A delete of `kind/name`.
pub fn del(kind: &str, name: &str) -> Change {
    Change::Delete(ItemKey::new(kind, name).expect("item key"))
}

/// Upstream `u`, location `a` on it, server `s` serving `a`.
pub fn base() -> Vec<Change> {
    vec![
        put("upstreams", "u", json!({"addrs": ["127.0.0.1:9"]})),
        put("locations", "a", json!({"path": "/a", "upstream": "u"})),
        put(
            "servers",
            "s",
            json!({"addr": "127.0.0.1:8080", "locations": ["a"]}),
        ),
    ]
}

/// A one-line description of a state, for failure messages.
pub fn summary(s: &FollowState) -> String {
    let names = s.config.as_ref().map(|c| {
        (
            c.locations.keys().cloned().collect::<Vec<_>>(),
            c.upstreams.keys().cloned().collect::<Vec<_>>(),
        )
    });
    format!(
        "revision {} stale {} builds {} reads {} alarms {:?} rejected {:?} (locations, upstreams) {:?} last error {:?}",
        s.revision, s.stale, s.builds, s.reads, s.alarms, s.rejected, names, s.last_error
    )
}

/// Polls the newest state until `pred` holds; panics after [`LIMIT`].
pub async fn wait_for(
    rx: &watch::Receiver<Arc<FollowState>>,
    what: &str,
    pred: impl Fn(&FollowState) -> bool,
) -> Arc<FollowState> {
    wait_within(rx, what, LIMIT, pred).await
}

/// Polls the newest state until `pred` holds; panics after `limit`.
pub async fn wait_within(
    rx: &watch::Receiver<Arc<FollowState>>,
    what: &str,
    limit: Duration,
    pred: impl Fn(&FollowState) -> bool,
) -> Arc<FollowState> {
    let deadline = Instant::now() + limit;
    loop {
        let state = rx.borrow().clone();
        if pred(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}; last state: {}",
            summary(&state)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The location names of a state's config.
pub fn locations(s: &FollowState) -> Vec<String> {
    s.config
        .as_ref()
        .map(|c| c.locations.keys().cloned().collect())
        .unwrap_or_default()
}

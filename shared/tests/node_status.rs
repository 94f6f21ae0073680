//! The node status key against a real etcd: written as JSON, bound to a lease kept alive,
//! rewritten on update, removed on shutdown, expiring when the node dies.

mod common;

use common::etcd::Etcd;
use common::{spec, store, LIMIT};
use louailink_shared::storage::{
    BackendHealth, FollowState, NodeKeeper, NodeState, NodeStatus, Rejected,
};
use std::time::{Duration, Instant};

const KEY: &str = "/louailink/nodes/node-1";

/// The lease `KEY` is bound to (`None` when absent, `Some(0)` when not bound).
async fn lease_of(endpoint: &str) -> Option<i64> {
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect");
    let resp = client.get(KEY, None).await.expect("get");
    resp.kvs().first().map(|kv| kv.lease())
}

/// Polls `KEY` until `pred` holds on its decoded value (`None` = absent).
async fn wait_key(
    s: &louailink_shared::storage::EtcdStore,
    what: &str,
    pred: impl Fn(Option<&NodeStatus>) -> bool,
) -> Option<NodeStatus> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let entry = s.get(KEY).await.expect("get");
        let status = entry.map(|e| serde_json::from_slice::<NodeStatus>(&e.value).expect("JSON"));
        if pred(status.as_ref()) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_key_lives_with_its_lease() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let keeper = NodeKeeper::spawn(
        spec(&etcd.endpoint()),
        NodeStatus::new("node-1", "0.1.0"),
        Duration::from_secs(2),
    )
    .expect("spawn");
    let first = wait_key(&s, "the key", |v| v.is_some())
        .await
        .expect("status");
    assert_eq!(
        (first.id.as_str(), first.version.as_str()),
        ("node-1", "0.1.0")
    );
    assert_eq!(first.status, NodeState::Ok);
    let lease = lease_of(&etcd.endpoint()).await.expect("key");
    assert_ne!(lease, 0, "not bound to a lease");

    // Updates are written.
    keeper.update(|st| {
        st.follow(&FollowState {
            revision: 42,
            hash: Some("abc".into()),
            stale: true,
            rejected: vec![Rejected {
                key: "/louailink/locations/x".into(),
                revision: 41,
                error: "bad".into(),
            }],
            ..FollowState::default()
        });
        st.upstreams.insert(
            "u".into(),
            vec![BackendHealth {
                addr: "127.0.0.1:9".into(),
                healthy: false,
            }],
        );
    });
    let st = wait_key(&s, "the update", |v| {
        v.is_some_and(|v| v.applied_revision == 42)
    })
    .await
    .expect("status");
    assert_eq!(st.status, NodeState::Stale);
    assert_eq!(st.rejected[0].revision, 41);
    assert!(!st.upstreams["u"][0].healthy);

    // Kept alive past several TTLs: still there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        s.get(KEY).await.expect("get").is_some(),
        "the lease was not kept alive"
    );

    // Shutdown revokes the lease: the key goes now, not after the TTL.
    keeper.shutdown().await;
    assert!(s.get(KEY).await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_key_expires_and_a_restarted_etcd_gets_it_back() {
    let mut etcd = Etcd::start();
    let keeper = NodeKeeper::spawn(
        spec(&etcd.endpoint()),
        NodeStatus::new("node-1", "0.1.0"),
        Duration::from_secs(2),
    )
    .expect("spawn");
    let s = store(&etcd.endpoint()).await;
    wait_key(&s, "the key", |v| v.is_some()).await;
    let first = lease_of(&etcd.endpoint()).await.expect("key");
    // etcd restarts (keeping its leases): the node's keep-alive stream breaks, so it
    // registers again under a new lease, which it keeps alive.
    etcd.stop();
    etcd.restart();
    let deadline = Instant::now() + LIMIT;
    let second = loop {
        match lease_of(&etcd.endpoint()).await {
            Some(l) if l != first && l != 0 => break l,
            other => assert!(Instant::now() < deadline, "not registered again: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        lease_of(&etcd.endpoint()).await,
        Some(second),
        "lease not kept"
    );
    let s = store(&etcd.endpoint()).await;
    // The node dies without shutting down: the key expires with the lease.
    drop(keeper);
    wait_key(&s, "expiry", |v| v.is_none()).await;
}

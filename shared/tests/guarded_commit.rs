//! `EtcdStore::commit_guarded`: a write lands only on the state it was checked against.

mod common;

use common::etcd::Etcd;
use common::{base, put, store};
use etcd_client::{Compare, CompareOp};
use louailink_shared::storage::{Expected, RawOp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_commit_needs_the_expected_generation_and_its_compares() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let first = s.commit(&base()).await.expect("commit");
    let expected = Expected {
        generation: first.generation,
        generation_revision: first.revision,
    };
    let history = RawOp::Put {
        key: "/louailink/history/1".into(),
        value: b"{}".to_vec(),
    };
    // A compare that fails: nothing written.
    let failing = vec![Compare::mod_revision(
        "/louailink/upstreams/u",
        CompareOp::Equal,
        1,
    )];
    let change = [put("upstreams", "v", json!({"addrs": ["127.0.0.1:1"]}))];
    let none = s
        .commit_guarded(&change, expected, failing, std::slice::from_ref(&history))
        .await
        .expect("txn");
    assert_eq!(none, None);
    assert!(s.get("/louailink/upstreams/v").await.unwrap().is_none());
    assert!(s.get("/louailink/history/1").await.unwrap().is_none());
    // The right state: written with the extra operation, generation bumped once.
    let done = s
        .commit_guarded(
            &change,
            expected,
            Vec::new(),
            std::slice::from_ref(&history),
        )
        .await
        .expect("txn")
        .expect("guard holds");
    assert_eq!(done.generation, first.generation + 1);
    assert!(s.get("/louailink/history/1").await.unwrap().is_some());
    // The same expectation again is stale now.
    let stale = s
        .commit_guarded(&change, expected, Vec::new(), &[])
        .await
        .expect("txn");
    assert_eq!(stale, None);
    // A range delete removes old records.
    let prune = RawOp::DeleteRange {
        start: "/louailink/history/".into(),
        end: "/louailink/history/2".into(),
    };
    let after = Expected {
        generation: done.generation,
        generation_revision: done.revision,
    };
    s.commit_guarded(&[], after, Vec::new(), &[prune])
        .await
        .expect("txn")
        .expect("guard holds");
    assert!(s.get("/louailink/history/1").await.unwrap().is_none());
}

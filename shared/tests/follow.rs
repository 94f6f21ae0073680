//! The follower against a real etcd: initial read, transactions, coalescing, per-item and
//! whole-config rejection, deletion, compaction, wiped prefix, etcd restarts, dead watches,
//! and starting from a seed while etcd is down.

mod common;

use common::etcd::Etcd;
use common::{base, del, fast, locations, put, spec, store, wait_for, wait_within, PREFIX};
use louailink_shared::storage::{Alarm, Follower, StateSnapshot};
use louailink_testkit::{Link as Proxy, Mode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn has(s: &louailink_shared::storage::FollowState, location: &str) -> bool {
    locations(s).iter().any(|l| l == location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_seen_as_one_change() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    let first = wait_for(&rx, "the initial config", |s| has(s, "a") && !s.stale).await;
    assert_eq!((first.generation, first.reads), (Some(1), 1));
    // Record every state subscribers are woken for.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut sub = follower.subscribe();
    sub.borrow_and_update();
    let record = seen.clone();
    let collector = tokio::spawn(async move {
        while sub.changed().await.is_ok() {
            let n = locations(&sub.borrow_and_update()).len();
            record.lock().expect("lock").push(n);
        }
    });
    let changes: Vec<_> = (0..20)
        .map(|i| {
            put(
                "locations",
                &format!("t{i:02}"),
                json!({"path": format!("/t{i}"), "upstream": "u"}),
            )
        })
        .collect();
    let committed = s.commit(&changes).await.expect("commit");
    let after = wait_for(&rx, "the transaction", |s| s.revision >= committed.revision).await;
    assert_eq!(locations(&after).len(), 21, "{}", common::summary(&after));
    assert_eq!(
        after.builds,
        first.builds + 1,
        "one build for one transaction"
    );
    assert_eq!(after.generation, Some(2));
    collector.abort();
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter().all(|n| *n == 21),
        "partial states seen: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_built_once_and_a_slow_consumer_sees_only_the_newest() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(etcd.endpoint()).await;
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&proxy.endpoint()), None, fast()).expect("spawn");
    let mut rx = follower.subscribe();
    let before = wait_for(&rx, "the initial config", |s| has(s, "a") && !s.stale).await;
    // Hold the follower off while 30 revisions are written one by one.
    proxy.set(Mode::Refuse);
    wait_for(&rx, "stale", |s| s.stale).await;
    let mut last = 0;
    for i in 0..30 {
        let c = put(
            "locations",
            &format!("b{i:02}"),
            json!({"path": format!("/b{i}"), "upstream": "u"}),
        );
        last = s.commit(&[c]).await.expect("commit").revision;
    }
    rx.borrow_and_update();
    proxy.set(Mode::Forward);
    let after = wait_for(&rx, "the burst", |s| s.revision == last && !s.stale).await;
    assert_eq!(locations(&after).len(), 31, "{}", common::summary(&after));
    let builds = after.builds - before.builds;
    // etcd hands a catching-up watcher its backlog in one message; allow a little splitting.
    assert!(builds <= 3, "30 revisions built {builds} times");
    // The consumer, not reading meanwhile, is handed the newest state only.
    assert!(rx.has_changed().expect("open"));
    assert_eq!(rx.borrow_and_update().revision, last);
    assert!(!rx.has_changed().expect("open"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_item_keeps_its_last_good_version_while_another_change_applies() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    wait_for(&rx, "the initial config", |s| has(s, "a")).await;
    // Written straight into etcd, as an operator with etcdctl would.
    let bad = r#"{"paht": "/broken", "upstream": "u"}"#;
    let bad_rev = s
        .put_raw(&format!("{PREFIX}/locations/a"), bad)
        .await
        .expect("put");
    let also_bad = s
        .put_raw(&format!("{PREFIX}/locations/n"), "{not json")
        .await
        .expect("put");
    s.commit(&[put(
        "locations",
        "b",
        json!({"path": "/b", "upstream": "u"}),
    )])
    .await
    .expect("commit");
    let st = wait_for(&rx, "b applied", |s| has(s, "b")).await;
    let config = st.config.as_ref().expect("config");
    assert_eq!(
        config.locations["a"].path.as_deref(),
        Some("/a"),
        "last good kept"
    );
    assert!(!config.locations.contains_key("n"), "never good: absent");
    let rejected: Vec<(&str, i64)> = st
        .rejected
        .iter()
        .map(|r| (r.key.as_str(), r.revision))
        .collect();
    assert_eq!(
        rejected,
        [
            ("/louailink/locations/a", bad_rev),
            ("/louailink/locations/n", also_bad)
        ]
    );
    assert!(
        st.rejected[0].error.contains("did you mean \"path\""),
        "{:?}",
        st.rejected
    );
    assert!(
        st.rejected[1].error.contains("not JSON"),
        "{:?}",
        st.rejected
    );
    // A new location naming a missing upstream is held back; the rest applies.
    s.commit(&[
        put("locations", "c", json!({"path": "/c", "upstream": "later"})),
        put("locations", "d", json!({"path": "/d", "upstream": "u"})),
    ])
    .await
    .expect("commit");
    let st = wait_for(&rx, "d applied", |s| has(s, "d")).await;
    assert!(!has(&st, "c"));
    assert!(
        st.rejected
            .iter()
            .any(|r| r.key.ends_with("/locations/c")
                && r.error.contains("unknown upstream \"later\"")),
        "{:?}",
        st.rejected
    );
    // Its upstream arrives: it applies by itself.
    s.commit(&[put("upstreams", "later", json!({"addrs": "127.0.0.1:10"}))])
        .await
        .expect("commit");
    let st = wait_for(&rx, "c applied", |s| has(s, "c")).await;
    assert!(!st.rejected.iter().any(|r| r.key.ends_with("/locations/c")));
    // Fixing one broken item and deleting the other clears both rejections; the deleted
    // key is gone for good.
    s.put_raw(
        &format!("{PREFIX}/locations/a"),
        r#"{"path": "/fixed", "upstream": "u"}"#,
    )
    .await
    .expect("put");
    s.delete_raw(&format!("{PREFIX}/locations/n"))
        .await
        .expect("delete");
    let st = wait_for(&rx, "a fixed", |s| s.rejected.is_empty()).await;
    let config = st.config.as_ref().expect("config");
    assert_eq!(config.locations["a"].path.as_deref(), Some("/fixed"));
    assert!(!config.locations.contains_key("n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_apply_and_a_broken_deletion_is_held() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    s.commit(&[put("locations", "x", json!({"path": "/x"}))])
        .await
        .expect("commit");
    let follower = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    wait_for(&rx, "x", |s| has(s, "x")).await;
    s.commit(&[del("locations", "x")]).await.expect("delete");
    let st = wait_for(&rx, "x deleted", |s| !has(s, "x")).await;
    assert!(has(&st, "a"));
    // Deleting an upstream a location still uses breaks the whole config: nothing applies,
    // the previous config is kept, the change is reported and an alarm raised.
    let held = s.commit(&[del("upstreams", "u")]).await.expect("delete");
    let st = wait_for(&rx, "held", |s| s.alarms.contains(&Alarm::ChangesHeld)).await;
    assert!(st
        .config
        .as_ref()
        .expect("config")
        .upstreams
        .contains_key("u"));
    assert_eq!(st.rejected.len(), 1, "{:?}", st.rejected);
    assert_eq!(
        (st.rejected[0].key.as_str(), st.rejected[0].revision),
        ("/louailink/locations/a", held.revision)
    );
    s.commit(&[
        del("locations", "a"),
        put("servers", "s", json!({"addr": "127.0.0.1:8080"})),
    ])
    .await
    .expect("commit");
    let st = wait_for(&rx, "released", |s| s.alarms.is_empty()).await;
    let config = st.config.as_ref().expect("config");
    assert!(config.upstreams.is_empty() && config.locations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_past_the_followers_revision_converges_with_deletions() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(etcd.endpoint()).await;
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    s.commit(&[put("locations", "gone", json!({"path": "/gone"}))])
        .await
        .expect("commit");
    let follower = Follower::spawn(spec(&proxy.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    let before = wait_for(&rx, "initial", |s| has(s, "gone") && !s.stale).await;
    proxy.set(Mode::Refuse);
    wait_for(&rx, "stale", |s| s.stale).await;
    s.commit(&[put("locations", "new", json!({"path": "/new"}))])
        .await
        .expect("commit");
    s.commit(&[del("locations", "gone")]).await.expect("delete");
    let now = s.current_revision().await.expect("revision");
    s.compact(now).await.expect("compact");
    proxy.set(Mode::Forward);
    let st = wait_for(&rx, "converged", |s| {
        has(s, "new") && !has(s, "gone") && !s.stale
    })
    .await;
    assert_eq!(
        st.reads,
        before.reads + 1,
        "a full re-read: {}",
        common::summary(&st)
    );
    assert_eq!(st.revision, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_read_that_finds_nothing_changed_builds_and_delivers_nothing() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(etcd.endpoint()).await;
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&proxy.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    let before = wait_for(&rx, "initial", |s| has(s, "a") && !s.stale).await;
    proxy.set(Mode::Refuse);
    wait_for(&rx, "stale", |s| s.stale).await;
    // Changed and changed back: same content at a newer revision (no generation bump).
    let r = format!("{PREFIX}/locations/tmp");
    s.put_raw(&r, r#"{"path": "/tmp"}"#).await.expect("put");
    s.delete_raw(&r).await.expect("delete");
    let now = s.current_revision().await.expect("revision");
    s.compact(now).await.expect("compact");
    proxy.set(Mode::Forward);
    let st = wait_for(&rx, "re-read", |s| s.reads > before.reads && !s.stale).await;
    assert_eq!(st.builds, before.builds, "{}", common::summary(&st));
    assert_eq!(st.hash, before.hash);
    assert!(Arc::ptr_eq(
        st.config.as_ref().expect("config"),
        before.config.as_ref().expect("config")
    ));
    assert_eq!(st.revision, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_prefix_is_not_delivered() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    let before = wait_for(&rx, "initial", |s| has(s, "a")).await;
    s.delete_prefix().await.expect("wipe");
    let st = wait_for(&rx, "alarm", |s| s.alarms.contains(&Alarm::WipedPrefix)).await;
    assert_eq!(st.hash, before.hash, "config kept");
    assert!(has(&st, "a"));
    // An empty config written on purpose (meta/generation present) is delivered.
    s.commit(&[]).await.expect("empty commit");
    let st = wait_for(&rx, "empty config", |s| s.alarms.is_empty()).await;
    assert_eq!(**st.config.as_ref().expect("config"), Default::default());
    // A follower starting on a wiped prefix delivers no config, only the alarm.
    s.delete_prefix().await.expect("wipe");
    let fresh = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let st = wait_for(&fresh.subscribe(), "alarm", |s| !s.alarms.is_empty()).await;
    assert!(st.config.is_none() && st.alarms == [Alarm::WipedPrefix]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_then_restarted_reports_stale_then_catches_up() {
    let mut etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&etcd.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    let before = wait_for(&rx, "initial", |s| has(s, "a") && !s.stale).await;
    etcd.stop();
    let st = wait_for(&rx, "stale", |s| s.stale).await;
    assert!(st.last_error.is_some());
    assert_eq!(st.hash, before.hash, "still serving the last config");
    etcd.restart();
    let s = store(&etcd.endpoint()).await;
    s.commit(&[put("locations", "meanwhile", json!({"path": "/m"}))])
        .await
        .expect("commit");
    let st = wait_for(&rx, "caught up", |s| has(s, "meanwhile") && !s.stale).await;
    assert!(st.last_error.is_none());
    assert_eq!(
        st.reads, before.reads,
        "resumed from its revision, no re-read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_watch_is_detected_and_replaced() {
    let etcd = Etcd::start();
    let proxy = Proxy::start(etcd.endpoint()).await;
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let follower = Follower::spawn(spec(&proxy.endpoint()), None, fast()).expect("spawn");
    let rx = follower.subscribe();
    wait_for(&rx, "initial", |s| has(s, "a") && !s.stale).await;
    // Connections stay open but nothing passes: only the follower's own checks notice.
    proxy.set(Mode::Blackhole);
    s.commit(&[put("locations", "late", json!({"path": "/late"}))])
        .await
        .expect("commit");
    // HTTP/2 keep-alive alone would notice after about 20 s; the follower's progress
    // requests (every 0.5 s here, dead after 2 s) must notice well before.
    let st = wait_within(&rx, "stale", Duration::from_secs(12), |s| s.stale).await;
    assert!(!has(&st, "late"));
    proxy.set(Mode::Forward);
    wait_for(&rx, "caught up", |s| has(s, "late") && !s.stale).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_is_served_while_etcd_is_down_then_replaced() {
    let mut etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    s.commit(&[put("locations", "current", json!({"path": "/c"}))])
        .await
        .expect("commit");
    drop(s);
    etcd.stop();
    let mut seed_config = louailink_shared::Config::default();
    seed_config.locations.insert(
        "old".into(),
        louailink_shared::LocationConf {
            path: Some("/old".into()),
            ..Default::default()
        },
    );
    let seed = StateSnapshot::new(seed_config, 3, "test");
    let follower = Follower::spawn(spec(&etcd.endpoint()), Some(&seed), fast()).expect("spawn");
    let rx = follower.subscribe();
    let st = rx.borrow().clone();
    assert!(st.stale && has(&st, "old"), "{}", common::summary(&st));
    assert_eq!(st.hash.as_deref(), Some(seed.hash.as_str()));
    wait_for(&rx, "an error", |s| s.last_error.is_some() && s.stale).await;
    etcd.restart();
    let st = wait_for(&rx, "etcd's config", |s| has(s, "current") && !s.stale).await;
    assert!(!has(&st, "old"), "the seed's items not in etcd are gone");
}

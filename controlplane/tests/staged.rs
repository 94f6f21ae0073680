//! A change too large for one etcd transaction is staged: nodes never apply part of it. An
//! import of 1,500 locations is interrupted by stopping etcd (SIGSTOP, by the PID of the
//! test's own etcd) right after its first transaction; the answer is an error, the nodes (a
//! real follower) never build a config holding part of it, and once etcd is resumed the
//! control plane rolls it back. The same import then applies as a whole, and a control plane
//! killed midway has its leftover rolled back by the next one to start.

mod common;

use common::etcd::Etcd;
use common::{put_base, Control};
use etcd_client::{EventType, WatchOptions};
use louailink_shared::storage::{EtcdSpec, FollowState, Follower, FollowerOptions};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NEW: usize = 1_500;

/// An import (TOML) adding [`NEW`] locations `n0…` on the base's upstream `u`.
fn import_text() -> String {
    let mut text = String::new();
    for i in 0..NEW {
        text.push_str(&format!(
            "[locations.n{i}]\npath = \"/n{i}/\"\nupstream = \"u\"\n"
        ));
    }
    text
}

/// How many of the import's locations a published state holds.
fn imported(state: &FollowState) -> usize {
    state.config.as_ref().map_or(0, |c| {
        c.locations.keys().filter(|k| k.starts_with('n')).count()
    })
}

/// A follower on the control plane's prefix, and every count of imported locations it
/// published.
fn follow(
    etcd: &Etcd,
) -> (
    Follower,
    Arc<Mutex<Vec<usize>>>,
    tokio::task::JoinHandle<()>,
) {
    let spec = EtcdSpec::new(vec![etcd.endpoint()], "/louailink").expect("spec");
    let options = FollowerOptions {
        progress_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(3),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..FollowerOptions::default()
    };
    let follower = Follower::spawn(spec, None, options).expect("follower");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = follower.subscribe();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let n = imported(&rx.borrow_and_update());
            record.lock().unwrap_or_else(|p| p.into_inner()).push(n);
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    (follower, seen, task)
}

/// Sends `signal` to the test's own etcd, by its PID.
fn signal(etcd: &Etcd, signal: i32) {
    let pid = etcd.pid().expect("etcd runs") as i32;
    // SAFETY: kill(2) on the PID of a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Calls `start` once a watch on the import's locations is in place, waits until its first
/// transaction is written (its first location appears), then calls `then`.
async fn on_first_step(etcd: &Etcd, start: impl FnOnce(), then: impl FnOnce()) {
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .expect("etcd client");
    let mut stream = client
        .watch(
            "/louailink/locations/n",
            Some(WatchOptions::new().with_prefix()),
        )
        .await
        .expect("watch");
    start();
    let first = async {
        while let Some(resp) = stream.message().await.expect("watch message") {
            if resp
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Put)
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), first)
        .await
        .expect("the import's first transaction");
    then();
}

/// Etcd's count of keys under `dir`.
fn count(etcd: &Etcd, dir: &str) -> usize {
    etcd.etcdctl(&["get", "--prefix", "--keys-only", dir])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

async fn rolled_back(etcd: &Etcd) {
    common::eventually("the rollback of the staged import", || async {
        let marker = etcd.get("/louailink/meta/import");
        let undo = count(etcd, "/louailink/meta/import-undo/");
        (marker.is_none() && undo == 0).then_some(())
    })
    .await;
    assert_eq!(
        count(etcd, "/louailink/locations/"),
        1,
        "only the base's location"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_interrupted_by_a_stopped_etcd_is_never_partly_applied() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let (follower, seen, collector) = follow(&etcd);
    common::eventually("the follower's first config", || async {
        let s = follower.state();
        (s.config.is_some() && !s.stale).then_some(())
    })
    .await;

    let base = c.call("GET", "/api/v1/config?format=toml", None).await;
    let base = match base.body {
        Value::String(text) => text,
        other => other["text"].as_str().expect("export").to_string(),
    };
    // Should the whole import land before etcd stops (a very slow test machine), the base is
    // put back (that too is staged: the follower's record must stay all-or-nothing) and the
    // interruption tried again.
    let mut r = None;
    for _ in 0..3 {
        let url = c.url("/api/v1/config?merge=true");
        let mut import = None;
        on_first_step(
            &etcd,
            || {
                import = Some(tokio::spawn(async move {
                    common::call(&url, "PUT", None, Some(Value::String(import_text())), &[]).await
                }));
            },
            || signal(&etcd, libc::SIGSTOP),
        )
        .await;
        let answer = tokio::time::timeout(Duration::from_secs(20), import.expect("started"))
            .await
            .expect("the import answers while etcd is stopped")
            .expect("task");
        if answer.status == 200 {
            signal(&etcd, libc::SIGCONT);
            let back = c
                .call("PUT", "/api/v1/config", Some(Value::String(base.clone())))
                .await;
            assert_eq!(back.status, 200, "{back:?}");
            continue;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(&etcd, libc::SIGCONT);
        r = Some(answer);
        break;
    }
    let r = r.expect("an import interrupted midway in 3 tries");
    assert!(r.status == 503 || r.status == 409, "{r:?}");
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("rolled back"), "{message}");

    rolled_back(&etcd).await;
    // Later writes go through again.
    let r = c
        .call(
            "PUT",
            "/api/v1/config?merge=true",
            Some(Value::String(import_text())),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body["error"]);
    assert!(r.body["steps"].as_i64().unwrap_or(0) > 1, "{r:?}");
    common::eventually("the whole import on the node", || async {
        (imported(&follower.state()) == NEW).then_some(())
    })
    .await;
    collector.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        seen.iter().all(|n| *n == 0 || *n == NEW),
        "a node saw part of an import: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_import_left_by_a_killed_control_plane_is_rolled_back_at_start() {
    let etcd = Etcd::start();
    let mut c = Control::start(&etcd);
    put_base(&c).await;
    let (follower, seen, collector) = follow(&etcd);
    let url = c.url("/api/v1/config?merge=true");
    let mut import = None;
    // Stop etcd after the first step so the control plane cannot finish, then kill it (by
    // its PID).
    on_first_step(
        &etcd,
        || {
            import = Some(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let _ = client.put(url).body(import_text()).send().await;
            }));
        },
        || signal(&etcd, libc::SIGSTOP),
    )
    .await;
    c.stop();
    signal(&etcd, libc::SIGCONT);
    if let Some(import) = import {
        import.abort();
    }
    assert!(etcd.get("/louailink/meta/import").is_some(), "left behind");
    let _next = Control::start(&etcd);
    rolled_back(&etcd).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        seen.iter().all(|n| *n == 0),
        "a node saw part of an import: {seen:?}"
    );
    assert!(!follower.state().stale);
}

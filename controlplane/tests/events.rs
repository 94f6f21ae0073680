//! Events: `diff_config` delivered to a local webhook receiver (retried after failures,
//! filtered, secrets hashed), the SSE stream, node and backend events from real
//! lease-bound node keys, and `etcd_unavailable`/`etcd_recovered` with a fast 503.

mod common;

use common::etcd::Etcd;
use common::{events_named, eventually, put_base, Control, Receiver};
use louailink_shared::storage::{BackendHealth, EtcdSpec, NodeKeeper, NodeStatus, Rejected};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_config_reaches_the_webhook_with_secrets_hashed() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    // The receiver fails the first two deliveries: they are retried.
    let mut rx = Receiver::start(2).await;
    let hook = format!("{}/hook?token=hook-secret-77", rx.url);
    let r = c
        .call(
            "PUT",
            "/api/v1/basic",
            Some(
                json!({"webhook": {"url": hook, "type": "json", "notifications": ["diff_config"]}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let first = rx.next().await;
    assert_eq!(first["name"], "diff_config");
    assert!(
        first["message"].as_str().unwrap().contains("basic"),
        "{first}"
    );
    assert!(
        !first.to_string().contains("hook-secret-77"),
        "the webhook URL leaked: {first}"
    );
    assert!(
        *rx.hits.lock().unwrap() >= 3,
        "the failed deliveries were retried"
    );

    put_base(&c).await;
    let diff = rx
        .next_where(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("servers.s"))
        })
        .await;
    assert_eq!(diff["details"]["changes"][0]["action"], "added");
    assert!(
        diff["message"].as_str().unwrap().contains("+ servers.s"),
        "{diff}"
    );
    let r = c
        .call(
            "PUT",
            "/api/v1/upstreams/u",
            Some(json!({"addrs": ["127.0.0.1:10"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    let modified = rx.next().await;
    let message = modified["message"].as_str().unwrap();
    assert!(
        message.contains("~ upstreams.u") && message.contains("127.0.0.1:10"),
        "{message}"
    );

    // Only the names listed are sent: switch to slack format for node events only.
    let r = c
        .call("PUT", "/api/v1/basic", Some(json!({"webhook": {"url": rx.url, "type": "slack", "notifications": ["node_online"]}})))
        .await;
    assert_eq!(r.status, 200);
    // That change's own diff_config is no longer wanted; a node event is.
    let spec = EtcdSpec::new(vec![etcd.endpoint()], "/louailink").unwrap();
    let keeper =
        NodeKeeper::spawn(spec, NodeStatus::new("n1", "0.1.0"), Duration::from_secs(3)).unwrap();
    let slack = rx.next().await;
    assert!(
        slack["text"].as_str().unwrap().contains("node_online"),
        "{slack}"
    );
    keeper.shutdown().await;
    let stats = c.call("GET", "/api/v1/events", None).await.body["webhook"].clone();
    assert!(stats["delivered"].as_u64().unwrap() >= 4, "{stats}");
    assert!(stats["retries"].as_u64().unwrap() >= 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_never_wait_for_an_unreachable_webhook() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    // Nothing listens there.
    let port = louailink_testkit::free_port();
    let r = c
        .call(
            "PUT",
            "/api/v1/basic",
            Some(json!({"webhook": {"url": format!("http://127.0.0.1:{port}/x")}})),
        )
        .await;
    assert_eq!(r.status, 200);
    for i in 0..20 {
        let r = c
            .call(
                "PUT",
                &format!("/api/v1/upstreams/u{i}"),
                Some(json!({"addrs": ["127.0.0.1:9"]})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let events = events_named(&c, "diff_config").await;
    assert_eq!(events.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_stream_carries_live_events() {
    common::init();
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let mut resp = reqwest::Client::new()
        .get(c.url("/api/v1/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("SSE");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    put_base(&c).await;
    let mut text = String::new();
    let deadline = Instant::now() + common::LIMIT;
    while !text.contains("servers.s") {
        assert!(Instant::now() < deadline, "no event in the stream: {text}");
        let chunk = tokio::time::timeout(common::LIMIT, resp.chunk())
            .await
            .expect("chunk in time");
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("stream").expect("open"),
        ));
    }
    assert!(text.contains("event: diff_config"), "{text}");
    let data = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("servers.s"))
        .unwrap();
    let event: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(event["name"], "diff_config");
}

fn status(id: &str, backend_healthy: bool, rejected: Option<(&str, i64)>) -> NodeStatus {
    let mut s = NodeStatus::new(id, "0.1.0");
    s.applied_revision = 1;
    s.config_hash = "h".into();
    s.upstreams.insert(
        "u".into(),
        vec![BackendHealth {
            addr: "127.0.0.1:9".into(),
            healthy: backend_healthy,
        }],
    );
    s.rejected = rejected
        .into_iter()
        .map(|(k, r)| Rejected {
            key: k.into(),
            revision: r,
            error: "locations.x: key \"weight\": invalid type".into(),
        })
        .collect();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_their_events_one_per_transition() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let spec = EtcdSpec::new(vec![etcd.endpoint()], "/louailink").unwrap();
    let ttl = Duration::from_secs(3);
    let a = NodeKeeper::spawn(spec.clone(), status("node-a", true, None), ttl).unwrap();
    let b = NodeKeeper::spawn(spec.clone(), status("node-b", true, None), ttl).unwrap();
    let online = eventually("two node_online events", || async {
        let e = events_named(&c, "node_online").await;
        (e.len() >= 2).then_some(e)
    })
    .await;
    assert_eq!(online.len(), 2);
    let nodes = c.call("GET", "/api/v1/nodes", None).await;
    let list = nodes.body["nodes"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{}", nodes.body);
    assert_eq!(list[0]["id"], "node-a");
    assert_eq!(list[0]["status"], "ok");
    assert_eq!(
        list[0]["in_sync"], false,
        "applied revision 1 is older than the config"
    );
    assert_eq!(
        list[0]["backends"][0],
        json!({"upstream": "u", "addr": "127.0.0.1:9", "healthy": true})
    );
    assert!(nodes.body["latest_revision"].as_i64().unwrap() > 1);
    assert!(!list[0]["last_seen"].as_str().unwrap().is_empty());

    // Both nodes see the backend fail and reject the same item: one event each.
    a.update(|s| *s = status("node-a", false, Some(("/louailink/locations/x", 40))));
    b.update(|s| *s = status("node-b", false, Some(("/louailink/locations/x", 40))));
    eventually("backend_unhealthy", || async {
        (!events_named(&c, "backend_unhealthy").await.is_empty()).then_some(())
    })
    .await;
    eventually("both nodes' reports seen", || async {
        let n = c.call("GET", "/api/v1/nodes", None).await;
        let all = n.body["nodes"]
            .as_array()?
            .iter()
            .all(|n| n["backends"][0]["healthy"] == false);
        all.then_some(())
    })
    .await;
    a.update(|s| *s = status("node-a", true, Some(("/louailink/locations/x", 40))));
    b.update(|s| *s = status("node-b", true, Some(("/louailink/locations/x", 40))));
    eventually("backend_healthy", || async {
        (!events_named(&c, "backend_healthy").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(events_named(&c, "backend_unhealthy").await.len(), 1);
    let rejected = events_named(&c, "config_rejected").await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["details"]["key"], "/louailink/locations/x");
    assert_eq!(rejected[0]["details"]["revision"], 40);

    b.shutdown().await;
    let offline = eventually("node_offline", || async {
        let e = events_named(&c, "node_offline").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(offline[0]["node"], "node-b");
    assert_eq!(
        c.call("GET", "/api/v1/nodes", None).await.body["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(events_named(&c, "backend_healthy").await.len(), 1);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_is_a_fast_503_and_an_event() {
    let mut etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    etcd.stop();
    for (method, path, body) in [
        ("GET", "/api/v1/locations", None),
        ("GET", "/api/v1/locations/a", None),
        (
            "PUT",
            "/api/v1/upstreams/v",
            Some(json!({"addrs": ["127.0.0.1:1"]})),
        ),
        ("GET", "/api/v1/nodes", None),
    ] {
        let started = Instant::now();
        let r = c.call(method, path, body).await;
        let took = started.elapsed();
        assert_eq!(
            (r.status, r.code()),
            (503, "unavailable"),
            "{method} {path}: {r:?}"
        );
        // The spec's "under 1 s", as a generous bound for a loaded test machine.
        assert!(
            took < Duration::from_secs(3),
            "{method} {path} took {took:?}"
        );
    }
    eventually("etcd_unavailable", || async {
        (!events_named(&c, "etcd_unavailable").await.is_empty()).then_some(())
    })
    .await;
    etcd.restart();
    eventually("etcd_recovered", || async {
        (!events_named(&c, "etcd_recovered").await.is_empty()).then_some(())
    })
    .await;
    let r = eventually("reads again", || async {
        let r = c.call("GET", "/api/v1/locations/a", None).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(r.body["value"]["upstream"], "u");
    assert_eq!(events_named(&c, "etcd_unavailable").await.len(), 1);
}

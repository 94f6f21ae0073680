//! `stats`: JSON with process facts and request counters, which move as requests are made,
//! count in-flight requests, and keep counting across a config swap.

use louailink_tests::{wait_until, Backend, Client, Louailink, WAIT};
use serde_json::Value;
use std::time::Duration;

/// Locations `api` (the backend), `slow` (a backend that waits), `denied` (403 for
/// everyone), `admin` (the stats on `/stats`); `extra` is appended.
fn config(port: u16, fast: &Backend, slow: &Backend, extra: &str) -> String {
    format!(
        r#"
[upstreams.fast]
addrs = ["{}"]
[upstreams.slow]
addrs = ["{}"]
[plugins.stats]
category = "stats"
[plugins.deny]
category = "ip_restriction"
ip_list = ["127.0.0.1"]
[locations.api]
path = "/api"
upstream = "fast"
[locations.slow]
path = "/slow"
upstream = "slow"
[locations.denied]
path = "/denied"
upstream = "fast"
plugins = ["deny"]
[locations.admin]
path = "/stats"
plugins = ["stats"]
{extra}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["api", "slow", "denied", "admin"{}]
"#,
        fast.addr(),
        slow.addr(),
        if extra.is_empty() { "" } else { ", \"more\"" }
    )
}

async fn stats(c: &Client) -> Value {
    let r = c.get("s.test", "/stats").await.expect_status(200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

/// `stats[path...]` as a number (panics, showing the JSON, when absent).
fn num(v: &Value, path: &[&str]) -> u64 {
    let mut at = v;
    for key in path {
        at = &at[key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

#[tokio::test]
async fn counters_move_with_requests_and_survive_a_swap() {
    let fast = Backend::start("fast");
    let slow = Backend::builder("slow")
        .delay(Duration::from_secs(3))
        .start();
    let port = louailink_tests::free_port();
    let lk = Louailink::builder()
        .toml(&config(port, &fast, &slow, ""))
        .arg("--autoreload")
        .start()
        .await;
    let c = Client::h1(port);

    let first = stats(&c).await;
    assert_eq!(num(&first, &["requests", "total"]), 0, "{first:#}");
    assert_eq!(num(&first, &["requests", "in_flight"]), 0);
    let p = &first["process"];
    for key in ["rss_bytes", "open_fds", "threads", "pid"] {
        assert!(num(p, &[key]) > 0, "{key}: {p:#}");
    }
    assert!(p["uptime_seconds"].as_f64().is_some() && p["cpu_user_seconds"].as_f64().is_some());

    for _ in 0..3 {
        assert_eq!(c.get("s.test", "/api/x").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(c.get("s.test", "/denied").await.status, 403);
    }
    assert_eq!(c.get("s.test", "/").await.status, 404, "no location");

    let now = stats(&c).await;
    let api = &now["locations"]["api"];
    assert_eq!(num(api, &["total"]), 3, "{now:#}");
    assert_eq!(num(api, &["responses", "2xx"]), 3);
    assert_eq!(num(&now["locations"]["denied"], &["responses", "4xx"]), 2);
    assert_eq!(num(&now["locations"]["admin"], &["responses", "2xx"]), 1);
    // The process: 3 + the first stats answer in 2xx, 2 denied + 1 unmatched in 4xx.
    assert_eq!(num(&now, &["requests", "responses", "2xx"]), 4, "{now:#}");
    assert_eq!(num(&now, &["requests", "responses", "4xx"]), 3);
    assert_eq!(num(&now, &["requests", "total"]), 7);
    assert_eq!(num(&now, &["requests", "in_flight"]), 0);

    // A request waiting on its backend is in flight, in the process and in its location.
    let waiting = tokio::spawn({
        let c = c.clone_fresh();
        async move { c.get("s.test", "/slow").await.status }
    });
    wait_until("the slow request to be in flight", WAIT, || async {
        let s = stats(&c).await;
        (num(&s, &["locations", "slow", "in_flight"]) == 1).then_some(())
    })
    .await;
    assert_eq!(waiting.await.expect("slow request"), 200);
    let after = stats(&c).await;
    assert_eq!(num(&after, &["locations", "slow", "in_flight"]), 0);
    assert_eq!(num(&after, &["requests", "in_flight"]), 0);

    // A swap (a location added) keeps the counters of the locations that stay.
    let more = "[plugins.m]\ncategory = \"mock\"\ndata = \"more\"\n[locations.more]\npath = \"/more\"\nplugins = [\"m\"]\n";
    lk.write_config(&config(port, &fast, &slow, more));
    wait_until("the new location to answer", WAIT, || async {
        (c.get("s.test", "/more").await.body == "more").then_some(())
    })
    .await;
    let swapped = stats(&c).await;
    assert_eq!(
        num(&swapped, &["locations", "api", "total"]),
        3,
        "{swapped:#}"
    );
    assert_eq!(num(&swapped, &["locations", "denied", "total"]), 2);
    assert!(num(&swapped, &["locations", "more", "total"]) >= 1);
    assert!(num(&swapped, &["requests", "total"]) > 7);
}

#[test]
fn a_bad_path_is_an_error_naming_the_plugin() {
    let config = louailink_tests::OneRoute {
        port: louailink_tests::free_port(),
        location: "plugins = [\"st\"]",
        extra: "[plugins.st]\ncategory = \"stats\"\npath = \"stats\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.st", "path", "must start with '/'"]);
}

//! `cache`: responses the upstream marks fresh are served from memory (the backend counts
//! every request it gets), concurrent misses make one upstream request, `PURGE` drops an
//! entry, and the store stays within `max_size` whatever keys clients send.

use louailink_tests::{
    free_port, plugin_in_front, wait_until, Backend, Client, Louailink, OneRoute, Reply, SseStream,
    WAIT,
};
use std::time::Duration;

/// A backend whose every response carries these headers.
fn backend_with(headers: &[(&str, &str)]) -> Backend {
    let mut b = Backend::builder("b");
    for (name, value) in headers {
        b = b.header(name, value);
    }
    b.start()
}

fn fresh_for_a_minute() -> Backend {
    backend_with(&[("cache-control", "max-age=60")])
}

fn status(r: &Reply) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}

async fn send(c: &Client, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = c.request(method, "c.test", path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    Client::send(req).await
}

#[tokio::test]
async fn a_miss_then_hits_with_the_backend_asked_once_and_head_from_the_get_entry() {
    let b = backend_with(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]);
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    let first = c.get("c.test", "/a?x=1").await.expect_status(200);
    assert_eq!(status(&first), "MISS");
    let second = c.get("c.test", "/a?x=1").await.expect_status(200);
    assert_eq!(status(&second), "HIT");
    assert_eq!(second.body, first.body, "the stored body, byte for byte");
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert!(second.header("age").is_some());
    // A client cannot force an origin fetch unless request_no_cache says so.
    let forced = send(&c, "GET", "/a?x=1", &[("cache-control", "no-cache")]).await;
    assert_eq!(status(&forced), "HIT");
    let head = send(&c, "HEAD", "/a?x=1", &[]).await.expect_status(200);
    assert_eq!(status(&head), "HIT");
    assert_eq!(head.body, "");
    let length = first.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    // A client holding the same version gets 304 from the cache.
    let revalidate = send(&c, "GET", "/a?x=1", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((revalidate.status, status(&revalidate)), (304, "HIT"));
    assert_eq!(revalidate.body, "");
    assert_eq!(b.hits(), 1);

    // The key holds host, path and query: each of these is its own entry.
    assert_eq!(status(&c.get("c.test", "/a?x=2").await), "MISS");
    assert_eq!(status(&c.get("other.test", "/a?x=1").await), "MISS");
    assert_eq!(status(&c.get("c.test", "/b?x=1").await), "MISS");
    assert_eq!(b.hits(), 4);
}

#[tokio::test]
async fn an_expired_entry_is_fetched_again_then_served_fresh() {
    let b = backend_with(&[("cache-control", "max-age=2")]);
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    assert_eq!(status(&c.get("c.test", "/e").await), "MISS");
    assert_eq!(status(&c.get("c.test", "/e").await), "HIT");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(status(&c.get("c.test", "/e").await), "EXPIRED");
    assert_eq!(status(&c.get("c.test", "/e").await), "HIT");
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn responses_that_forbid_storing_are_passed_through_every_time() {
    for headers in [
        vec![("cache-control", "no-store, max-age=60")],
        vec![("cache-control", "private, max-age=60")],
        vec![("cache-control", "max-age=60"), ("set-cookie", "session=1")],
        vec![("cache-control", "max-age=60"), ("vary", "*")],
        vec![],
    ] {
        let b = backend_with(&headers);
        let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
        for _ in 0..2 {
            let r = c.get("c.test", "/n").await.expect_status(200);
            assert_eq!(status(&r), "MISS", "{headers:?}");
        }
        assert_eq!(b.hits(), 2, "{headers:?}");
    }
    // Statuses that are not cacheable are not stored either.
    let b = backend_with(&[("cache-control", "max-age=60")]);
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    for _ in 0..2 {
        assert_eq!(c.get("c.test", "/s?status=500").await.status, 500);
    }
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn vary_keeps_the_variants_apart() {
    let b = backend_with(&[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")]);
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    let get = |enc: &'static str| {
        let c = c.clone();
        async move { send(&c, "GET", "/v", &[("accept-encoding", enc)]).await }
    };
    assert_eq!(status(&get("gzip").await), "MISS");
    assert_eq!(status(&get("br").await), "MISS");
    for enc in ["gzip", "br", "gzip"] {
        let r = get(enc).await;
        assert_eq!(status(&r), "HIT", "{enc}");
        assert_eq!(
            r.echo().header("accept-encoding"),
            Some(enc),
            "its own variant"
        );
    }
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn concurrent_misses_on_a_cold_key_make_one_upstream_request() {
    let b = Backend::builder("b")
        .header("cache-control", "max-age=60")
        .delay(Duration::from_millis(700))
        .start();
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            // Each on its own connection, as separate clients would be.
            let c = c.clone_fresh();
            tokio::spawn(async move { c.get("c.test", "/cold").await })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.expect("task").expect_status(200);
        statuses.push(status(&r).to_string());
        bodies.push(r.body);
    }
    assert_eq!(b.hits(), 1, "{statuses:?}");
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| *s == "MISS").count(),
        1,
        "{statuses:?}"
    );
    assert!(bodies.iter().all(|body| *body == bodies[0]));
}

#[tokio::test]
async fn purge_from_a_listed_address_drops_the_entry_and_is_refused_elsewhere() {
    let b = fresh_for_a_minute();
    let (_lk, c) = plugin_in_front("cache", "purge_ip_list = [\"127.0.0.1\"]", "", &b).await;
    c.get("c.test", "/p?q=1").await;
    assert_eq!(status(&c.get("c.test", "/p?q=1").await), "HIT");
    assert_eq!(send(&c, "PURGE", "/p?q=1", &[]).await.status, 200);
    assert_eq!(send(&c, "PURGE", "/p?q=1", &[]).await.status, 404, "gone");
    assert_eq!(status(&c.get("c.test", "/p?q=1").await), "MISS");
    assert_eq!(b.hits(), 2);

    // Another list: loopback is not in it, and X-Forwarded-For from an untrusted peer
    // does not make it so.
    let b = fresh_for_a_minute();
    let (_lk, c) = plugin_in_front("cache", "purge_ip_list = \"10.0.0.0/8\"", "", &b).await;
    c.get("c.test", "/p").await;
    for spoof in [vec![], vec![("x-forwarded-for", "10.1.2.3")]] {
        assert_eq!(send(&c, "PURGE", "/p", &spoof).await.status, 403);
    }
    assert_eq!(status(&c.get("c.test", "/p").await), "HIT");

    // No list: PURGE is not a method here.
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    assert_eq!(send(&c, "PURGE", "/p", &[]).await.status, 405);
}

#[tokio::test]
async fn a_successful_post_drops_the_stored_response() {
    let b = fresh_for_a_minute();
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    c.get("c.test", "/doc").await;
    assert_eq!(status(&c.get("c.test", "/doc").await), "HIT");
    let post = send(&c, "POST", "/doc", &[]).await.expect_status(200);
    assert_eq!(status(&post), "-", "POST is not looked up");
    assert_eq!(status(&c.get("c.test", "/doc").await), "MISS");
}

#[tokio::test]
async fn a_stream_is_never_held_back_nor_stored() {
    let b = fresh_for_a_minute();
    let (_lk, c) = plugin_in_front("cache", "", "", &b).await;
    for _ in 0..2 {
        let mut s = SseStream::open("sse", &c, "c.test", "/gated?chunks=3").await;
        assert_eq!(s.header("x-cache-status"), Some("MISS"));
        // Chunk 1 is only sent after chunk 0 arrived: a held-back stream stalls here.
        s.read_chunk(0).await;
        b.release_chunk();
        s.read_chunk(1).await;
        b.release_chunk();
        s.finish(3).await;
    }
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn a_response_over_max_entry_size_is_passed_through_whole() {
    let b = fresh_for_a_minute();
    let (_lk, c) = plugin_in_front("cache", "max_entry_size = \"1kb\"", "", &b).await;
    let pad = "p".repeat(2048);
    for _ in 0..2 {
        let r = send(&c, "GET", "/big", &[("x-pad", &pad)]).await;
        assert_eq!(status(&r), "MISS");
        assert_eq!(
            r.echo().header("x-pad"),
            Some(pad.as_str()),
            "the body is whole"
        );
    }
    assert_eq!(b.hits(), 2);
}

/// `VmRSS` of a process, in bytes.
fn rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test]
async fn hostile_a_query_string_flood_of_distinct_keys_stays_within_max_size() {
    let b = fresh_for_a_minute();
    let options = "max_size = \"256kb\"\nmax_entry_size = \"32kb\"";
    let (lk, c) = plugin_in_front("cache", options, "", &b).await;
    // Each answer echoes the 16 KiB header: 1,000 of them would be 16 MiB unbounded.
    let pad = "f".repeat(16 * 1024);
    let flood = |i: usize| {
        let c = c.clone();
        let pad = pad.clone();
        async move { send(&c, "GET", &format!("/f?k={i}"), &[("x-pad", &pad)]).await }
    };
    for i in 0..50 {
        flood(i).await.expect_status(200);
    }
    let before = rss(lk.pid());
    for i in 50..1050 {
        flood(i).await.expect_status(200);
    }
    let grown = rss(lk.pid()).saturating_sub(before);
    assert!(grown < 8 << 20, "RSS grew by {grown} bytes");
    // The newest keys are stored, the oldest were evicted.
    assert_eq!(status(&flood(1049).await), "HIT");
    assert_eq!(status(&flood(0).await), "MISS");
}

/// A config with the cache in front of `backend`, `cache_lines` in the cache item and
/// `location_lines` in the location.
fn swap_config(port: u16, backend: &Backend, cache_lines: &str, location_lines: &str) -> String {
    let upstream = format!("addrs = [\"{}\"]", backend.addr());
    let location = format!("plugins = [\"c\"]\n{location_lines}");
    let extra = format!("[plugins.c]\ncategory = \"cache\"\n{cache_lines}\n");
    OneRoute {
        port,
        upstream: &upstream,
        location: &location,
        extra: &extra,
        ..Default::default()
    }
    .toml()
}

#[tokio::test]
async fn a_config_swap_keeps_the_entries_while_the_cache_item_is_unchanged() {
    let b = fresh_for_a_minute();
    let port = free_port();
    let lk = Louailink::builder()
        .toml(&swap_config(port, &b, "", ""))
        .arg("--autoreload")
        .start()
        .await;
    let c = Client::h1(port);
    c.get("c.test", "/s").await;
    assert_eq!(status(&c.get("c.test", "/s").await), "HIT");

    lk.write_config(&swap_config(
        port,
        &b,
        "",
        "response_headers = [\"x-edit: 1\"]",
    ));
    wait_until("the location change to apply", WAIT, || async {
        let r = c.get("c.test", "/other").await;
        (r.header("x-edit") == Some("1")).then_some(())
    })
    .await;
    assert_eq!(
        status(&c.get("c.test", "/s").await),
        "HIT",
        "kept across the swap"
    );

    // A changed cache item is a new, empty cache.
    let changed = "max_ttl = \"10m\"";
    lk.write_config(&swap_config(
        port,
        &b,
        changed,
        "response_headers = [\"x-edit: 2\"]",
    ));
    wait_until("the cache change to apply", WAIT, || async {
        let r = c.get("c.test", "/other").await;
        (r.header("x-edit") == Some("2")).then_some(())
    })
    .await;
    assert_eq!(status(&c.get("c.test", "/s").await), "MISS");
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"c\"]",
        extra: "[plugins.c]\ncategory = \"cache\"\nmax_size = \"lots\"\n\
                purge_ip_list = [\"10.0.0.0/33\"]\nmethods = [\"POST\"]\ndirectory = \"/tmp/c\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.c",
        "max_size",
        "purge_ip_list",
        "methods",
        "directory",
    ]);
}

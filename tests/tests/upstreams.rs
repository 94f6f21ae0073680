//! Upstreams: balancing algorithms, consistent hashing, TLS and h2 to the upstream, timeouts,
//! retries, DNS discovery and connection reuse.

use louailink_tests::{addrs, free_port, Backend, CertPair, Client, Louailink, OneRoute, Reply};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One location proxying to an upstream with these lines; returns the proxy and a client.
async fn proxy(upstream: &str, location: &str) -> (Louailink, Client) {
    OneRoute {
        port: free_port(),
        upstream,
        location,
        ..Default::default()
    }
    .start()
    .await
}

fn count(replies: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in replies {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}

async fn backends_of(c: &Client, n: usize) -> BTreeMap<String, usize> {
    let mut answered = Vec::new();
    for _ in 0..n {
        answered.push(c.get("u.test", "/").await.backend());
    }
    count(&answered)
}

#[tokio::test]
async fn weighted_round_robin_follows_the_weights() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let upstream = format!("addrs = [\"{} 3\", \"{}\"]", a.addr(), b.addr());
    let (_lk, c) = proxy(&upstream, "").await;
    let seen = backends_of(&c, 80).await;
    let on_a = seen.get("a").copied().unwrap_or(0);
    assert!(
        (56..=64).contains(&on_a),
        "expected about 60 of 80 on the weight-3 backend: {seen:?}"
    );
    assert_eq!(on_a + seen.get("b").copied().unwrap_or(0), 80, "{seen:?}");
}

#[tokio::test]
async fn random_sends_traffic_to_every_backend() {
    let bs = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let upstream = format!(
        "addrs = {}\nalgo = \"random\"",
        addrs(&[&bs[0], &bs[1], &bs[2]])
    );
    let (_lk, c) = proxy(&upstream, "").await;
    let seen = backends_of(&c, 60).await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "{seen:?}"
    );
}

#[tokio::test]
async fn least_conn_avoids_the_backend_with_requests_in_flight() {
    let slow = Backend::builder("slow")
        .delay(Duration::from_secs(5))
        .start();
    let fast = Backend::start("fast");
    let upstream = format!("addrs = {}\nalgo = \"least_conn\"", addrs(&[&slow, &fast]));
    let (_lk, c) = proxy(&upstream, "").await;
    // Concurrent requests until one sits on `slow` (ties may go either way).
    let mut occupiers = Vec::new();
    louailink_tests::wait_until(
        "a request in flight on the slow backend",
        louailink_tests::WAIT,
        || {
            for _ in 0..2 {
                let c = c.clone();
                occupiers.push(tokio::spawn(
                    async move { c.get("u.test", "/").await.status },
                ));
            }
            let slow = &slow;
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                (slow.in_flight() > 0).then_some(())
            }
        },
    )
    .await;
    // While it is busy, every new request goes to the idle backend.
    let mut while_busy = Vec::new();
    while slow.in_flight() > 0 && while_busy.len() < 10 {
        while_busy.push(c.get("u.test", "/").await.backend());
    }
    assert!(!while_busy.is_empty());
    assert!(
        while_busy.iter().all(|b| b == "fast"),
        "sent to a busy backend: {while_busy:?}"
    );
    for o in occupiers {
        assert_eq!(o.await.unwrap(), 200);
    }
}

/// Three backends behind `algo`; returns them with the proxy and a client.
async fn hashed(algo: &str, extra: &str) -> ([Backend; 3], Louailink, Client) {
    let bs = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let upstream = format!(
        "addrs = {}\nalgo = \"{algo}\"",
        addrs(&[&bs[0], &bs[1], &bs[2]])
    );
    let (lk, c) = OneRoute {
        port: free_port(),
        upstream: &upstream,
        extra,
        ..Default::default()
    }
    .start()
    .await;
    (bs, lk, c)
}

/// For 20 keys, 3 requests each: every key sticks to one backend, and the keys spread over
/// more than one backend. `req(key)` builds the request for a key.
async fn assert_sticky_and_spread<F>(c: &Client, req: F)
where
    F: Fn(&Client, usize) -> reqwest::RequestBuilder,
{
    let mut used = BTreeSet::new();
    for key in 0..20 {
        let mut answered = BTreeSet::new();
        for _ in 0..3 {
            answered.insert(Client::send(req(c, key)).await.expect_status(200).backend());
        }
        assert_eq!(answered.len(), 1, "key {key} went to {answered:?}");
        used.extend(answered);
    }
    assert!(used.len() > 1, "20 keys all hashed to {used:?}");
}

fn get(c: &Client, path: &str) -> reqwest::RequestBuilder {
    c.request(reqwest::Method::GET, "u.test", path)
}

#[tokio::test]
async fn hash_by_header() {
    let (_bs, _lk, c) = hashed("hash:header:X-User", "").await;
    assert_sticky_and_spread(&c, |c, k| get(c, "/").header("x-user", format!("user-{k}"))).await;
}

#[tokio::test]
async fn hash_by_cookie() {
    let (_bs, _lk, c) = hashed("hash:cookie:sid", "").await;
    assert_sticky_and_spread(&c, |c, k| {
        get(c, "/").header("cookie", format!("theme=dark; sid=s{k}"))
    })
    .await;
}

#[tokio::test]
async fn hash_by_query() {
    let (_bs, _lk, c) = hashed("hash:query:user", "").await;
    // Other query parameters vary per request and must not matter.
    let n = std::sync::atomic::AtomicUsize::new(0);
    assert_sticky_and_spread(&c, |c, k| {
        let noise = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        get(c, &format!("/q?noise={noise}&user={k}"))
    })
    .await;
}

#[tokio::test]
async fn hash_by_path() {
    let (_bs, _lk, c) = hashed("hash:path", "").await;
    let n = std::sync::atomic::AtomicUsize::new(0);
    assert_sticky_and_spread(&c, |c, k| {
        let noise = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        get(c, &format!("/item/{k}?noise={noise}"))
    })
    .await;
}

#[tokio::test]
async fn hash_by_url_includes_the_query() {
    let (_bs, _lk, c) = hashed("hash:url", "").await;
    assert_sticky_and_spread(&c, |c, k| get(c, &format!("/same?k={k}"))).await;
}

#[tokio::test]
async fn hash_by_ip_ignores_x_forwarded_for_from_untrusted_peers() {
    let (_bs, _lk, c) = hashed("hash:ip", "").await;
    let mut used = BTreeSet::new();
    for k in 0..20 {
        let r = Client::send(get(&c, "/").header("x-forwarded-for", format!("10.0.0.{k}"))).await;
        used.insert(r.expect_status(200).backend());
    }
    assert_eq!(
        used.len(),
        1,
        "the client IP is 127.0.0.1 for all: {used:?}"
    );
}

#[tokio::test]
async fn hash_by_ip_uses_the_forwarded_ip_from_trusted_proxies() {
    let (_bs, _lk, c) = hashed("hash:ip", "[basic]\ntrusted_proxies = \"127.0.0.1\"").await;
    assert_sticky_and_spread(&c, |c, k| {
        get(c, "/").header("x-forwarded-for", format!("10.0.0.{k}"))
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_removing_a_backend_remaps_only_its_share() {
    let bs = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let algo = "\nalgo = \"hash:header:X-User\"";
    let (_full, with_c) = proxy(
        &(format!("addrs = {}", addrs(&[&bs[0], &bs[1], &bs[2]])) + algo),
        "",
    )
    .await;
    let (_less, without_c) = proxy(
        &(format!("addrs = {}", addrs(&[&bs[0], &bs[1]])) + algo),
        "",
    )
    .await;
    let mut moved_from_c = 0;
    for k in 0..60 {
        let user = format!("user-{k}");
        let before = Client::send(get(&with_c, "/").header("x-user", &user))
            .await
            .backend();
        let after = Client::send(get(&without_c, "/").header("x-user", &user))
            .await
            .backend();
        if before == "c" {
            moved_from_c += 1;
            assert_ne!(after, "c");
        } else {
            assert_eq!(before, after, "{user} moved although its backend stayed");
        }
    }
    assert!(moved_from_c > 0, "no key was on c: cannot tell");
}

#[tokio::test]
async fn tls_upstream_with_sni_and_without_verification() {
    let tls = Backend::builder("tls")
        .tls(&CertPair::self_signed(&["up.internal"]))
        .start();
    let upstream = format!(
        "addrs = {}\ntls = true\nsni = \"up.internal\"\nverify_cert = false",
        addrs(&[&tls])
    );
    let (_lk, c) = proxy(&upstream, "").await;
    let echo = c.get("u.test", "/").await.expect_status(200).echo();
    assert!(echo.tls);
    assert_eq!(echo.sni.as_deref(), Some("up.internal"));
}

#[tokio::test]
async fn https_address_enables_tls_to_the_upstream() {
    let tls = Backend::builder("tls")
        .tls(&CertPair::self_signed(&["up.internal"]))
        .start();
    let upstream = format!("addrs = [\"https://{}\"]\nverify_cert = false", tls.addr());
    let (_lk, c) = proxy(&upstream, "").await;
    assert!(c.get("u.test", "/").await.expect_status(200).echo().tls);
}

#[tokio::test]
async fn tls_upstream_with_an_untrusted_certificate_gives_502() {
    let tls = Backend::builder("tls")
        .tls(&CertPair::self_signed(&["up.internal"]))
        .start();
    let upstream = format!(
        "addrs = {}\ntls = true\nsni = \"up.internal\"\nverify_cert = true",
        addrs(&[&tls])
    );
    let (_lk, c) = proxy(&upstream, "").await;
    assert_eq!(c.get("u.test", "/").await.status, 502);
    assert_eq!(tls.hits(), 0);
}

#[tokio::test]
async fn alpn_h2_speaks_h2c_to_a_plain_backend() {
    let b = Backend::start("b");
    let port = free_port();
    let config = format!(
        r#"
[upstreams.h2]
addrs = {a}
alpn = "h2"
[upstreams.h1]
addrs = {a}
[locations.h2]
path = "/h2"
upstream = "h2"
[locations.h1]
upstream = "h1"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["h2", "h1"]
"#,
        a = addrs(&[&b])
    );
    let _lk = Louailink::start(&config).await;
    let c = Client::h1(port);
    assert_eq!(c.get("u.test", "/h2").await.echo().version, "HTTP/2");
    assert_eq!(c.get("u.test", "/h1").await.echo().version, "HTTP/1.1");
}

#[tokio::test]
async fn alpn_over_tls_negotiates_h2_or_falls_back_to_h1() {
    let cert = CertPair::self_signed(&["up.internal"]);
    let h2 = Backend::builder("h2").tls(&cert).start();
    let h1_only = Backend::builder("h1")
        .tls(&cert)
        .alpn(&["http/1.1"])
        .start();
    let port = free_port();
    let tls = "tls = true\nverify_cert = false\nsni = \"up.internal\"";
    let config = format!(
        r#"
[upstreams.h2]
addrs = {}
alpn = "h2"
{tls}
[upstreams.h2h1]
addrs = {}
alpn = "h2h1"
{tls}
[locations.h2]
path = "/h2"
upstream = "h2"
[locations.h2h1]
upstream = "h2h1"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["h2", "h2h1"]
"#,
        addrs(&[&h2]),
        addrs(&[&h1_only])
    );
    let _lk = Louailink::start(&config).await;
    let c = Client::h1(port);
    let echo = c.get("u.test", "/h2").await.expect_status(200).echo();
    assert_eq!((echo.version.as_str(), echo.tls), ("HTTP/2", true));
    let echo = c.get("u.test", "/other").await.expect_status(200).echo();
    assert_eq!(
        (echo.backend.as_str(), echo.version.as_str()),
        ("h1", "HTTP/1.1")
    );
}

#[tokio::test]
async fn read_timeout_on_a_slow_backend_gives_504() {
    let b = Backend::start("slow");
    let (_lk, c) = proxy(
        &format!("addrs = {}\nread_timeout = \"300ms\"", addrs(&[&b])),
        "",
    )
    .await;
    assert_eq!(c.get("u.test", "/?delay_ms=5000").await.status, 504);
    // A fresh client: whether the connection survives an error is errors.rs's business.
    assert_eq!(
        c.clone_fresh().get("u.test", "/").await.status,
        200,
        "a quick answer is unaffected"
    );
}

#[tokio::test]
async fn refused_connection_gives_502() {
    let (_lk, c) = proxy(&format!("addrs = [\"127.0.0.1:{}\"]", free_port()), "").await;
    let reply = c.get("u.test", "/").await;
    assert_eq!(reply.status, 502);
    assert!(reply.body.len() < 1024, "error bodies are short");
}

#[tokio::test]
async fn retry_on_connect_failure_reaches_the_live_backend() {
    let live = Backend::start("live");
    let upstream = format!(
        "addrs = [\"127.0.0.1:{}\", \"{}\"]",
        free_port(),
        live.addr()
    );
    let (_lk, c) = proxy(&upstream, "max_retries = 1").await;
    for i in 0..10 {
        let r: Reply = c.get("u.test", "/").await;
        assert_eq!(
            (i, r.status, r.backend()),
            (i, 200, "live".to_string()),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn dns_discovery_resolves_host_names() {
    let b = Backend::start("dns");
    let upstream = format!(
        "addrs = [\"localhost:{}\"]\ndiscovery = \"dns\"\nipv4_only = true",
        b.port()
    );
    let (_lk, c) = proxy(&upstream, "").await;
    assert_eq!(
        c.get("u.test", "/").await.expect_status(200).backend(),
        "dns"
    );
}

#[tokio::test]
async fn upstream_connections_are_reused_unless_idle_timeout_is_zero() {
    let pooled = Backend::start("pooled");
    let unpooled = Backend::start("unpooled");
    let (_a, pooled_client) = proxy(&format!("addrs = {}", addrs(&[&pooled])), "").await;
    let (_b, unpooled_client) = proxy(
        &format!("addrs = {}\nidle_timeout = \"0s\"", addrs(&[&unpooled])),
        "",
    )
    .await;
    for _ in 0..5 {
        pooled_client.get("u.test", "/").await.expect_status(200);
        unpooled_client.get("u.test", "/").await.expect_status(200);
    }
    assert!(
        pooled.connections() < 5,
        "5 sequential requests opened {} connections",
        pooled.connections()
    );
    assert_eq!(
        unpooled.connections(),
        5,
        "idle_timeout = 0s disables reuse"
    );
}

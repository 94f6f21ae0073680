//! Which location wins (config.md, "Which location wins"): host kind, then path kind, `weight`,
//! list order, fall-through, 404. Each location has its own backend, so the answering backend
//! names the location that won.

use louailink_tests::client::raw_request;
use louailink_tests::Routes;

#[tokio::test]
async fn host_kinds_rank_exact_then_wildcard_then_regex_then_none() {
    // Listed in the reverse of their rank: list order must not be what decides.
    let r = Routes::start(&[
        ("none", ""),
        ("regex", r#"host = '~^[a-z0-9-]+\.(a|r)\.test$'"#),
        ("wild", r#"host = "*.a.test""#),
        ("wild_long", r#"host = "*.b.a.test""#),
        ("exact", r#"host = "www.a.test""#),
    ])
    .await;
    assert_eq!(r.hit("www.a.test", "/").await, "exact");
    assert_eq!(
        r.hit("foo.a.test", "/").await,
        "wild",
        "wildcard beats a matching regex"
    );
    assert_eq!(
        r.hit("x.b.a.test", "/").await,
        "wild_long",
        "longer suffix first"
    );
    assert_eq!(r.hit("x.y.a.test", "/").await, "wild", "any depth");
    assert_eq!(r.hit("foo.r.test", "/").await, "regex");
    assert_eq!(
        r.hit("a.test", "/").await,
        "none",
        "*.a.test does not match a.test"
    );
    assert_eq!(
        r.hit("xa.test", "/").await,
        "none",
        "*.a.test does not match xa.test"
    );
}

#[tokio::test]
async fn host_is_case_insensitive_and_its_port_is_ignored() {
    let r = Routes::start(&[
        ("exact", r#"host = "Www.A.test""#),
        ("wild", r#"host = "*.W.test""#),
        ("none", ""),
    ])
    .await;
    assert_eq!(r.hit("WWW.a.TEST", "/").await, "exact");
    assert_eq!(r.hit("www.a.test:8080", "/").await, "exact");
    assert_eq!(r.hit("X.w.TEST:1", "/").await, "wild");
    assert_eq!(r.hit("other.test", "/").await, "none");
}

#[tokio::test]
async fn host_list_matches_any_of_its_entries() {
    let r = Routes::start(&[("multi", r#"host = "m1.test, *.m2.test""#), ("none", "")]).await;
    assert_eq!(r.hit("m1.test", "/").await, "multi");
    assert_eq!(r.hit("x.m2.test", "/").await, "multi");
    assert_eq!(r.hit("m3.test", "/").await, "none");
}

#[tokio::test]
async fn path_kinds_rank_exact_then_regex_then_longer_prefix_then_any() {
    let r = Routes::start(&[
        ("any", ""),
        ("short", r#"path = "/api""#),
        ("long", r#"path = "/api/v1""#),
        ("regex", r#"path = '~^/api/v1/items/\d+$'"#),
        ("exact", r#"path = "=/api/v1/items/42""#),
    ])
    .await;
    let h = "p.test";
    assert_eq!(r.hit(h, "/api/v1/items/42").await, "exact");
    assert_eq!(
        r.hit(h, "/api/v1/items/42?q=1").await,
        "exact",
        "the query is not part of the path"
    );
    assert_eq!(r.hit(h, "/api/v1/items/7").await, "regex");
    assert_eq!(r.hit(h, "/api/v1/other").await, "long");
    assert_eq!(r.hit(h, "/api/x").await, "short");
    assert_eq!(
        r.hit(h, "/apix").await,
        "short",
        "a prefix also matches /apix, as in nginx"
    );
    assert_eq!(r.hit(h, "/other").await, "any");
}

#[tokio::test]
async fn host_is_placed_before_path() {
    // An exact host with a mere prefix beats a host-less exact path.
    let r = Routes::start(&[
        ("exact_path", r#"path = "=/x""#),
        ("hosted", "host = \"h.test\"\npath = \"/\""),
    ])
    .await;
    assert_eq!(r.hit("h.test", "/x").await, "hosted");
    assert_eq!(r.hit("other.test", "/x").await, "exact_path");
}

#[tokio::test]
async fn weight_overrides_the_computed_order() {
    let r = Routes::start(&[
        ("hosted", "host = \"w.test\"\npath = \"=/w\""),
        ("heavy", "path = \"/w\"\nweight = 10"),
        ("light", "path = \"/\""),
    ])
    .await;
    assert_eq!(r.hit("w.test", "/w").await, "heavy");
    assert_eq!(r.hit("w.test", "/other").await, "light");
}

#[tokio::test]
async fn list_order_breaks_ties() {
    let r = Routes::start(&[("zzz", r#"path = "/same""#), ("aaa", r#"path = "/same""#)]).await;
    assert_eq!(r.hit("t.test", "/same").await, "zzz");
}

#[tokio::test]
async fn falls_through_to_hostless_locations() {
    let r = Routes::start(&[
        ("hosted", "host = \"f.test\"\npath = \"/api\""),
        ("fallback", r#"path = "/""#),
    ])
    .await;
    assert_eq!(r.hit("f.test", "/api/x").await, "hosted");
    assert_eq!(r.hit("f.test", "/other").await, "fallback");
    assert_eq!(r.hit("g.test", "/api/x").await, "fallback");
}

#[tokio::test]
async fn no_match_is_404_with_a_short_body_naming_host_and_path() {
    let r = Routes::start(&[("only", r#"host = "known.test""#)]).await;
    let reply = r.client.get_with_host("unknown.test", "/some/where").await;
    assert_eq!(reply.status, 404);
    assert!(reply.header("x-backend").is_none());
    assert!(reply.body.contains("unknown.test"), "body: {}", reply.body);
    assert!(reply.body.contains("/some/where"), "body: {}", reply.body);
    assert!(
        reply.body.len() < 1024,
        "not a short body: {}",
        reply.body.len()
    );
}

#[tokio::test]
async fn location_with_a_host_never_matches_a_request_without_one() {
    let r = Routes::start(&[
        ("hosted", r#"host = "h.test""#),
        ("any_host_re", "host = '~.*'\npath = \"/re\""),
        ("open", r#"path = "=/open""#),
    ])
    .await;
    for path in ["/", "/re"] {
        let req = format!("GET {path} HTTP/1.0\r\n\r\n");
        let resp = raw_request(r.port, req.as_bytes())
            .await
            .expect("a response");
        assert_eq!((path, resp.status), (path, 404), "{}", resp.text());
    }
    let resp = raw_request(r.port, b"GET /open HTTP/1.0\r\n\r\n")
        .await
        .expect("a response");
    assert_eq!(resp.header("x-backend"), Some("open"));
}

#[tokio::test]
async fn absolute_form_uri_authority_is_the_request_host() {
    let r = Routes::start(&[
        ("abs", r#"host = "abs.test""#),
        ("other", r#"host = "other.test""#),
    ])
    .await;
    let resp = raw_request(r.port, b"GET http://abs.test/x HTTP/1.0\r\n\r\n")
        .await
        .expect("a response");
    assert_eq!(
        resp.header("x-backend"),
        Some("abs"),
        "{} {}",
        resp.status,
        resp.text()
    );
    // A Host header that disagrees must not win (rejecting the request is fine too).
    let req = b"GET http://abs.test/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n";
    let resp = raw_request(r.port, req).await.expect("a response");
    assert!(
        resp.status == 400 || resp.header("x-backend") == Some("abs"),
        "{} {:?}",
        resp.status,
        resp.header("x-backend")
    );
}

//! `cors`: preflights answered here (204, the upstream never sees them), CORS headers on the
//! responses to allowed origins, nothing for the others (look-alikes included).

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute, Reply};

async fn start(options: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("cors", options, "", backend).await
}

async fn preflight(c: &Client, path: &str, origin: &str) -> Reply {
    Client::send(
        c.request(reqwest::Method::OPTIONS, "api.test", path)
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type, x-token"),
    )
    .await
}

async fn get(c: &Client, path: &str, origin: Option<&str>) -> Reply {
    let mut req = c.request(reqwest::Method::GET, "api.test", path);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    Client::send(req).await
}

const LISTED: &str = r#"allow_origin = ["https://app.example.com", "http://localhost:3000"]
allow_methods = "GET, PUT"
allow_credentials = true
expose_headers = ["X-Total", "X-Page"]
max_age = "10m""#;

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_answered_here() {
    let b = Backend::start("b");
    let (_lk, c) = start(LISTED, &b).await;
    let r = preflight(&c, "/items", "https://app.example.com").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-token"),
        "allow_headers defaults to what was asked"
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r.body.is_empty());
    assert_eq!(b.hits(), 0, "the upstream never sees a preflight");
}

#[tokio::test]
async fn responses_to_a_listed_origin_carry_the_cors_headers() {
    let b = Backend::start("b");
    let (_lk, c) = start(LISTED, &b).await;
    let r = get(&c, "/items", Some("http://localhost:3000")).await;
    assert_eq!(r.backend(), "b");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("X-Total, X-Page")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let plain = get(&c, "/items", None).await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
    assert_eq!(
        plain.header("vary"),
        Some("Origin"),
        "caches keep the two apart"
    );
}

#[tokio::test]
async fn look_alike_and_other_origins_get_no_cors_headers() {
    let b = Backend::start("b");
    let (_lk, c) = start(LISTED, &b).await;
    for origin in [
        "https://evil.com",
        "https://app.example.com.evil.com",
        "https://evil-app.example.com",
        "https://app.example.com@evil.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com, https://evil.com",
        "null",
    ] {
        let r = get(&c, "/items", Some(origin)).await;
        assert_eq!(r.backend(), "b", "{origin}");
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(
            r.header("access-control-allow-credentials"),
            None,
            "{origin}"
        );
        let p = preflight(&c, "/items", origin).await;
        assert_eq!(p.status, 204, "{origin}");
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-credentials",
        ] {
            assert_eq!(p.header(h), None, "{origin}: {h}");
        }
    }
    assert_eq!(b.hits(), 8, "only the GETs reached the upstream");
}

#[tokio::test]
async fn the_default_allows_any_origin_with_a_star() {
    let b = Backend::start("b");
    let (_lk, c) = start("", &b).await;
    let r = get(&c, "/x", Some("https://anyone.test")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("vary"), None, "the same answer for every origin");
    let p = preflight(&c, "/x", "https://anyone.test").await;
    assert_eq!(p.status, 204);
    assert_eq!(p.header("access-control-allow-origin"), Some("*"));
    assert_eq!(p.header("access-control-allow-methods"), Some("PUT"));
}

#[tokio::test]
async fn http_origin_reflects_well_formed_origins_only() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "allow_origin = \"$http_origin\"\nallow_credentials = true",
        &b,
    )
    .await;
    for origin in ["https://one.test", "http://127.0.0.1:8080"] {
        let r = get(&c, "/x", Some(origin)).await;
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    for bad in [
        "null",
        "https://a.test, https://b.test",
        "https://a.test/path",
        "javascript:alert(1)",
    ] {
        let r = get(&c, "/x", Some(bad)).await;
        assert_eq!(r.header("access-control-allow-origin"), None, "{bad}");
    }
}

#[tokio::test]
async fn only_the_configured_paths_are_handled() {
    let b = Backend::start("b");
    let (_lk, c) = start("path = \"/api\"", &b).await;
    assert_eq!(
        preflight(&c, "/api/items", "https://a.test").await.status,
        204
    );
    assert_eq!(b.hits(), 0);
    let other = preflight(&c, "/static/x", "https://a.test").await;
    assert_eq!(other.backend(), "b", "not handled: goes upstream");
    assert_eq!(other.header("access-control-allow-origin"), None);
    let r = get(&c, "/static/x", Some("https://a.test")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn credentials_with_any_origin_and_malformed_options_are_errors() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"web\", \"web2\"]",
        extra: r#"[plugins.web]
category = "cors"
allow_origin = "*"
allow_credentials = true

[plugins.web2]
category = "cors"
allow_origin = ["https://a.com/", "*"]
allow_methods = ["GET", "P U T"]
allow_headers = "bad header"
path = "~(unclosed"
"#,
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.web",
        "allow_credentials",
        "browsers refuse",
        "plugins.web2",
        "allow_origin",
        "is not an origin",
        "must stand alone",
        "allow_methods",
        "allow_headers",
        "path",
    ]);
}

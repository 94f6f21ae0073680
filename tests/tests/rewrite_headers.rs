//! Rewrite, variables, header setting and the reverse-proxy headers, as the backend sees them.

use louailink_tests::{addrs, Backend, Client, Louailink, Single};

#[tokio::test]
async fn rewrite_with_numbered_captures_keeps_the_query() {
    let s = Single::start("path = \"/api\"\nrewrite = '^/api/(.*)$ /v2/$1'").await;
    let echo = s
        .get("r.test", "/api/users/7?x=1&y=2")
        .await
        .expect_status(200)
        .echo();
    assert_eq!(echo.uri, "/v2/users/7?x=1&y=2");
}

#[tokio::test]
async fn rewrite_with_named_captures() {
    let s = Single::start(r#"rewrite = '^/users/(?<id>\d+)/(?<rest>.*)$ /u/$rest/${id}'"#).await;
    assert_eq!(
        s.get("r.test", "/users/42/profile").await.echo().uri,
        "/u/profile/42"
    );
    // No match: the path is left as it is.
    assert_eq!(s.get("r.test", "/other?k=v").await.echo().uri, "/other?k=v");
}

#[tokio::test]
async fn host_and_path_captures_feed_headers_and_the_rewrite() {
    let s = Single::start(
        r#"host = '~^(?<tenant>[a-z]+)\.t\.test$'
path = '~^/items/(?<item>\d+)$'
rewrite = '^/items/(\d+)$ /tenants/$tenant/items/$1'
proxy_set_headers = ["X-Tenant: $tenant", "X-Item: $item"]"#,
    )
    .await;
    let echo = s
        .get("acme.t.test", "/items/9?full=1")
        .await
        .expect_status(200)
        .echo();
    assert_eq!(echo.uri, "/tenants/acme/items/9?full=1");
    assert_eq!(echo.header("x-tenant"), Some("acme"));
    assert_eq!(echo.header("x-item"), Some("9"));
}

#[tokio::test]
async fn upstream_named_by_a_capture_variable() {
    let alpha = Backend::start("alpha");
    let beta = Backend::start("beta");
    let port = louailink_tests::free_port();
    let _lk = Louailink::start(&format!(
        r#"
[upstreams.alpha]
addrs = {}
[upstreams.beta]
addrs = {}
[locations.svc]
host = '~^(?<svc>[a-z]+)\.svc\.test$'
upstream = "$svc"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["svc"]
"#,
        addrs(&[&alpha]),
        addrs(&[&beta])
    ))
    .await;
    let c = Client::h1(port);
    assert_eq!(c.get("alpha.svc.test", "/").await.backend(), "alpha");
    assert_eq!(c.get("beta.svc.test", "/").await.backend(), "beta");
    assert_eq!(
        c.get("gamma.svc.test", "/").await.status,
        503,
        "unknown upstream from a variable"
    );
}

#[tokio::test]
async fn set_headers_replace_and_add_headers_append() {
    let s = Single::start(
        r#"proxy_set_headers = ["X-Env: proxy"]
proxy_add_headers = ["X-Tag: added"]"#,
    )
    .await;
    let req = s
        .client
        .request(reqwest::Method::GET, "h.test", "/")
        .header("x-env", "client")
        .header("x-tag", "original");
    let echo = Client::send(req).await.echo();
    assert_eq!(echo.header_values("x-env"), ["proxy"]);
    assert_eq!(echo.header_values("x-tag"), ["original", "added"]);
}

#[tokio::test]
async fn proxy_headers_alias_sets_headers() {
    let s = Single::start(r#"proxy_headers = ["X-Alias: yes"]"#).await;
    assert_eq!(
        s.get("h.test", "/").await.echo().header("x-alias"),
        Some("yes")
    );
}

#[tokio::test]
async fn response_headers_are_set_on_the_response() {
    let s =
        Single::start(r#"response_headers = ["X-Served-By: louailink", "X-Backend: replaced"]"#)
            .await;
    let reply = s.get("h.test", "/").await.expect_status(200);
    assert_eq!(reply.header("x-served-by"), Some("louailink"));
    let backend: Vec<_> = reply.headers.get_all("x-backend").iter().collect();
    assert_eq!(backend, ["replaced"], "set replaces the upstream's header");
}

#[tokio::test]
async fn variables_expand_anywhere_in_a_header_value() {
    let b = Backend::start("b");
    let port = louailink_tests::free_port();
    let config = louailink_tests::OneRoute {
        port,
        upstream: &format!("addrs = {}", addrs(&[&b])),
        location: r#"proxy_set_headers = [
  "X-Host: pre-$host-post",
  "X-Remote: $remote_addr",
  "X-Scheme: $scheme",
  "X-Foo-Copy: [$http_x_foo]",
  "X-From-Env: env=${LOUAILINK_E2E_VALUE}",
  "X-Server-Port: $server_port",
]"#,
        ..Default::default()
    }
    .toml();
    let _lk = Louailink::builder()
        .toml(&config)
        .env("LOUAILINK_E2E_VALUE", "from-env")
        .start()
        .await;
    let c = Client::h1(port);
    let echo = Client::send(
        c.request(reqwest::Method::GET, "v.test", "/")
            .header("x-foo", "bar"),
    )
    .await
    .echo();
    assert_eq!(
        echo.header("x-host"),
        Some("pre-v.test-post"),
        "host without its port"
    );
    assert_eq!(echo.header("x-remote"), Some("127.0.0.1"));
    assert_eq!(echo.header("x-scheme"), Some("http"));
    assert_eq!(echo.header("x-foo-copy"), Some("[bar]"));
    assert_eq!(echo.header("x-from-env"), Some("env=from-env"));
    assert_eq!(
        echo.header("x-server-port"),
        Some(port.to_string().as_str())
    );
}

const REVERSE_PROXY: &str = "enable_reverse_proxy_headers = true";

#[tokio::test]
async fn reverse_proxy_headers_from_an_untrusted_peer() {
    let s = Single::start(REVERSE_PROXY).await;
    let spoofed = s
        .client
        .request(reqwest::Method::GET, "rp.test", "/")
        .header("x-forwarded-for", "1.2.3.4");
    let echo = Client::send(spoofed).await.echo();
    assert_eq!(
        echo.header_values("x-forwarded-for"),
        ["1.2.3.4", "127.0.0.1"],
        "appended"
    );
    assert_eq!(
        echo.header("x-real-ip"),
        Some("127.0.0.1"),
        "a client's X-Forwarded-For is not believed"
    );
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    let fwd_host = echo.header("x-forwarded-host").unwrap_or_default();
    assert!(
        fwd_host.starts_with("rp.test"),
        "X-Forwarded-Host: {fwd_host:?}"
    );

    let plain = s.get("rp.test", "/").await.echo();
    assert_eq!(plain.header_values("x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn reverse_proxy_headers_believe_a_trusted_proxy() {
    let s = Single::start_with(
        REVERSE_PROXY,
        "",
        "[basic]\ntrusted_proxies = [\"127.0.0.1\"]",
    )
    .await;
    let req = s
        .client
        .request(reqwest::Method::GET, "rp.test", "/")
        .header("x-forwarded-for", "1.2.3.4");
    let echo = Client::send(req).await.echo();
    assert_eq!(echo.header("x-real-ip"), Some("1.2.3.4"));
    assert_eq!(
        echo.header_values("x-forwarded-for"),
        ["1.2.3.4", "127.0.0.1"]
    );
}

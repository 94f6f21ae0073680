//! Paths are normalised before anything matches on them (config.md, "Path patterns"): the
//! tricks that reach `/admin` on a backend that normalises by itself meet the rule written for
//! `/admin` instead, over HTTP/1.1 and h2; encoded separators and climbs above the root are 400.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use louailink_tests::client::raw_request;
use louailink_tests::{free_port, Backend, Louailink};

/// `=/admin` and `/secret/` refused by a plugin, everything else proxied to the backend; one
/// server normalises (the default), one keeps raw paths.
fn config(backend: &Backend, normal: u16, raw: u16) -> String {
    format!(
        r#"
[upstreams.up]
addrs = ["{b}"]
[plugins.refuse]
category = "mock"
status = 403
data = "refused"
[locations.admin]
path = "=/admin"
plugins = ["refuse"]
[locations.secret]
path = "/secret/"
plugins = ["refuse"]
[locations.root]
path = "/"
upstream = "up"
[servers.normal]
addr = "127.0.0.1:{normal}"
locations = ["admin", "secret", "root"]
enabled_h2 = true
[servers.raw]
addr = "127.0.0.1:{raw}"
locations = ["admin", "secret", "root"]
normalize_path = false
"#,
        b = backend.addr()
    )
}

const TRICKS: [&str; 8] = [
    "/admin",
    "/x/../admin",
    "/./admin",
    "//admin",
    "/%61dmin",
    "/x/%2e%2e/admin",
    "//secret/a",
    "/%73ecret/a",
];

async fn h1_status(port: u16, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n");
    raw_request(port, request.as_bytes())
        .await
        .unwrap_or_else(|| panic!("no response to {path}"))
        .status
}

/// One h2c request whose `:path` is sent exactly as written.
async fn h2_status(port: u16, path: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let request = http::Request::get(format!("http://p.test:{port}{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = send.send_request(request).await.expect("h2 response");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
async fn path_tricks_meet_the_rules_written_for_the_normal_path() {
    let backend = Backend::start("b");
    let (normal, raw) = (free_port(), free_port());
    let _lk = Louailink::start(&config(&backend, normal, raw)).await;

    for trick in TRICKS {
        assert_eq!(h1_status(normal, trick).await, 403, "h1 {trick}");
        assert_eq!(h2_status(normal, trick).await, 403, "h2 {trick}");
    }
    assert_eq!(
        backend.hits(),
        0,
        "no trick reached the backend: {:?}",
        backend.seen()
    );

    // What is proxied is the normalised path.
    assert_eq!(h1_status(normal, "/a//b/./c/../%7Ed?q=%2F").await, 200);
    assert_eq!(
        backend.seen().last().map(|s| s.uri.as_str()),
        Some("/a/b/~d?q=%2F")
    );

    // Encoded separators, bad escapes and climbs above the root are refused, never forwarded.
    for bad in [
        "/a%2fb",
        "/x%2F..%2Fadmin",
        "/a%00b",
        "/a%zz",
        "/..",
        "/a/../../etc/passwd",
    ] {
        assert_eq!(h1_status(normal, bad).await, 400, "h1 {bad}");
        assert_eq!(h2_status(normal, bad).await, 400, "h2 {bad}");
    }
    assert_eq!(backend.hits(), 1);

    // `normalize_path = false`: raw paths are matched and forwarded as they came.
    assert_eq!(h1_status(raw, "/admin").await, 403);
    assert_eq!(h1_status(raw, "/x/../admin").await, 200);
    assert_eq!(
        backend.seen().last().map(|s| s.uri.as_str()),
        Some("/x/../admin")
    );
    assert_eq!(h1_status(raw, "/a%2fb").await, 200);
    assert_eq!(
        backend.seen().last().map(|s| s.uri.as_str()),
        Some("/a%2fb")
    );
}

//! Error responses: short bodies, JSON when the client accepts JSON, `basic.error_template`.

use louailink_tests::{addrs, free_port, Backend, Client, Louailink, OneRoute, RawConn, Single};

async fn not_found(c: &Client, accept: &str) -> louailink_tests::Reply {
    Client::send(
        c.request(reqwest::Method::GET, "nowhere.test", "/missing")
            .header("accept", accept),
    )
    .await
}

#[tokio::test]
async fn error_bodies_are_short_and_json_when_the_client_accepts_json() {
    let s = Single::start("host = \"known.test\"").await;
    let html = not_found(&s.client, "text/html").await;
    assert_eq!(html.status, 404);
    assert!(
        !html.body.is_empty() && html.body.len() < 1024,
        "body: {:?}",
        html.body
    );

    let json = not_found(&s.client, "application/json").await;
    assert_eq!(json.status, 404);
    assert!(
        json.header("content-type")
            .unwrap_or_default()
            .contains("json"),
        "{:?}",
        json.headers
    );
    assert!(json.body.len() < 1024);
    let value: serde_json::Value =
        serde_json::from_str(&json.body).unwrap_or_else(|e| panic!("{e}: {}", json.body));
    assert!(value.is_object(), "{value}");
}

#[tokio::test]
async fn upstream_errors_follow_the_accept_header_too() {
    let dead = format!("addrs = [\"127.0.0.1:{}\"]", free_port());
    let (_lk, c) = OneRoute {
        port: free_port(),
        upstream: &dead,
        ..Default::default()
    }
    .start()
    .await;
    let reply = Client::send(
        c.request(reqwest::Method::GET, "e.test", "/")
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(reply.status, 502);
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .unwrap_or_else(|e| panic!("{e}: {}", reply.body));
}

#[tokio::test]
async fn error_template_shapes_error_bodies() {
    let s = Single::start_with(
        "host = \"known.test\"",
        "",
        "[basic]\nerror_template = \"<p>oops {status}: {message}</p>\"",
    )
    .await;
    let reply = not_found(&s.client, "text/html").await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("<p>oops 404: "), "body: {}", reply.body);
}

#[tokio::test]
async fn a_connection_announced_as_kept_alive_after_an_error_stays_usable() {
    let slow = Backend::start("slow");
    let port = free_port();
    let config = format!(
        r#"
[upstreams.dead]
addrs = ["127.0.0.1:{dead}"]
[upstreams.slow]
addrs = {slow}
read_timeout = "300ms"
[locations.dead]
path = "/dead"
upstream = "dead"
[locations.slow]
path = "/slow"
upstream = "slow"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["dead", "slow"]
"#,
        dead = free_port(),
        slow = addrs(&[&slow])
    );
    let _lk = Louailink::start(&config).await;
    let mut broken = Vec::new();
    for path in ["/dead", "/slow?delay_ms=3000", "/not-found"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: k.test\r\n\r\n");
        let mut conn = RawConn::connect(port).await;
        conn.send(request.as_bytes()).await.unwrap();
        let first = conn.read_response().await.expect("an error response");
        assert!(first.status >= 400, "{path}: {}", first.status);
        let connection = first.header("connection").map(str::to_ascii_lowercase);
        if connection.as_deref() == Some("close") {
            continue;
        }
        // Not announced as closing: a client may reuse the connection, so it must work.
        let reused = conn.send(request.as_bytes()).await;
        if reused.is_err() || conn.read_response().await.is_none() {
            broken.push(format!(
                "{path}: {} with Connection: {connection:?}",
                first.status
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "connections closed after being announced as kept alive: {broken:?}"
    );
}

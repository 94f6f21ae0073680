//! Streamed (SSE) responses pass through chunk by chunk: the backend sends chunk i+1 only
//! after the client has received chunk i through the proxy, so any buffering would stall the
//! stream (and the test fails on its generous timeout instead of passing slowly).

use louailink_tests::{addrs, free_port, Backend, Client, Louailink, TestCa};
use std::time::Duration;

const CHUNKS: usize = 4;

async fn assert_streams_unbuffered(
    client: &Client,
    host: &str,
    backend: &Backend,
    version: http::Version,
) {
    let url = client.url(host, &format!("/gated?chunks={CHUNKS}"));
    let mut resp = client
        .inner()
        .get(url)
        .send()
        .await
        .expect("stream request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), version);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut received = String::new();
    for i in 0..CHUNKS {
        let want = format!("data: {i}\n\n");
        while !received.ends_with(&want) {
            let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("chunk {i} held back; got so far {received:?}"))
                .expect("stream error")
                .unwrap_or_else(|| panic!("stream ended early: {received:?}"));
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
        backend.release_chunk();
    }
    // The stream then ends cleanly with nothing more (empty frames aside).
    while let Some(rest) = resp.chunk().await.expect("clean end") {
        received.push_str(&String::from_utf8_lossy(&rest));
    }
    let expected: String = (0..CHUNKS).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(received, expected);
}

fn config(b: &Backend, port: u16, server: &str, extra: &str) -> String {
    format!(
        "[upstreams.up]\naddrs = {}\n[locations.loc]\nupstream = \"up\"\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n{server}\n{extra}",
        addrs(&[b])
    )
}

#[tokio::test]
async fn sse_over_http1_is_not_buffered() {
    let b = Backend::start("sse");
    let port = free_port();
    let _lk = Louailink::start(&config(&b, port, "", "")).await;
    assert_streams_unbuffered(&Client::h1(port), "s.test", &b, http::Version::HTTP_11).await;
}

#[tokio::test]
async fn sse_over_h2c_is_not_buffered() {
    let b = Backend::start("sse");
    let port = free_port();
    let _lk = Louailink::start(&config(&b, port, "enabled_h2 = true", "")).await;
    assert_streams_unbuffered(&Client::h2c(port), "s.test", &b, http::Version::HTTP_2).await;
}

#[tokio::test]
async fn sse_over_tls_h2_is_not_buffered() {
    let ca = TestCa::new();
    let b = Backend::start("sse");
    let port = free_port();
    let cert = format!("[certificates.c]\n{}", ca.leaf(&["s.test"]).toml_inline());
    let _lk = Louailink::start(&config(&b, port, "tls = true\nenabled_h2 = true", &cert)).await;
    assert_streams_unbuffered(&Client::tls(port, &ca), "s.test", &b, http::Version::HTTP_2).await;
}

#[tokio::test]
async fn sse_from_an_h2_upstream_is_not_buffered() {
    let b = Backend::start("sse");
    let port = free_port();
    let config =
        config(&b, port, "", "").replace("[locations.loc]", "alpn = \"h2\"\n[locations.loc]");
    let _lk = Louailink::start(&config).await;
    assert_streams_unbuffered(&Client::h1(port), "s.test", &b, http::Version::HTTP_11).await;
    assert_eq!(b.seen()[0].version, "HTTP/2");
}

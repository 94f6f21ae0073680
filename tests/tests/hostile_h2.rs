//! h2 floods against an h2c server, each bounded in time: rapid reset (HEADERS then RST_STREAM,
//! over and over) and SETTINGS/PING floods from a client that never reads. The proxy must keep
//! serving others, and its memory must stay bounded.

use louailink_tests::attack::{h2_frame, h2_preface, rss_kib};
use louailink_tests::Single;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Growth of the proxy's resident memory we tolerate from one flood.
const MAX_GROWTH_KIB: u64 = 200 * 1024;

/// Writes `bytes` to a new h2c connection for at most `bound` (the proxy may stop reading, or
/// close); then reads what it answers for a moment, without ever blocking past the bound.
async fn flood(port: u16, bytes: Vec<u8>, bound: Duration) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let _ = tokio::time::timeout(bound, s.write_all(&bytes)).await;
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Normal HTTP/1.1 requests while `attack` runs: how many of `n` got 200.
async fn served_during(s: &Single, n: usize, attack: tokio::task::JoinHandle<()>) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let r = s.get("l.test", &format!("/normal/{i}")).await;
        if r.status == 200 {
            ok += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), attack).await;
    ok
}

/// `GET /` on `l.test`, as an HPACK block (indexed `:method`, `:scheme`, `:path`, literal
/// `:authority` without indexing).
fn get_headers_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 6];
    b.extend_from_slice(b"l.test");
    b
}

#[tokio::test]
async fn rapid_reset_does_not_stop_others_being_served() {
    let s = Single::start_with("", "enabled_h2 = true", "").await;
    let before = rss_kib(s.proxy.pid());
    let port = s.port;
    let attack = tokio::spawn(async move {
        let start = Instant::now();
        let block = get_headers_block();
        // Several connections, each a burst of streams opened and cancelled at once.
        for _ in 0..5 {
            if start.elapsed() > Duration::from_secs(20) {
                break;
            }
            let mut bytes = h2_preface();
            for i in 0..10_000u32 {
                let id = 2 * i + 1;
                bytes.extend(h2_frame(0x1, 0x5, id, &block));
                bytes.extend(h2_frame(0x3, 0, id, &8u32.to_be_bytes()));
            }
            flood(port, bytes, Duration::from_secs(5)).await;
        }
    });
    let ok = served_during(&s, 20, attack).await;
    assert_eq!(ok, 20, "normal requests served during a rapid-reset flood");
    let after = rss_kib(s.proxy.pid());
    assert!(
        after < before + MAX_GROWTH_KIB,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    s.get("l.test", "/after").await.expect_status(200);
}

#[tokio::test]
async fn settings_and_ping_floods_do_not_stop_others_being_served() {
    let s = Single::start_with("", "enabled_h2 = true", "").await;
    let before = rss_kib(s.proxy.pid());
    let port = s.port;
    let attack = tokio::spawn(async move {
        let mut settings = h2_preface();
        let max_streams = [0x00, 0x03, 0x00, 0x00, 0x00, 0x64];
        for _ in 0..100_000 {
            settings.extend(h2_frame(0x4, 0, 0, &max_streams));
        }
        let mut pings = h2_preface();
        for i in 0..100_000u64 {
            pings.extend(h2_frame(0x6, 0, 0, &i.to_be_bytes()));
        }
        // Neither client reads: the answers (ACKs) pile up on the proxy's side, or it stops.
        tokio::join!(
            flood(port, settings, Duration::from_secs(10)),
            flood(port, pings, Duration::from_secs(10))
        );
    });
    let ok = served_during(&s, 20, attack).await;
    assert_eq!(ok, 20, "normal requests served during SETTINGS/PING floods");
    let after = rss_kib(s.proxy.pid());
    assert!(
        after < before + MAX_GROWTH_KIB,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    s.get("l.test", "/after").await.expect_status(200);
}

/// h2 has its own framing: an h2c connection idle between requests for longer than
/// `client_header_timeout` is not cut by it.
#[tokio::test]
async fn an_h2c_connection_outlives_client_header_timeout() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let s = Single::start_with("", "enabled_h2 = true\nclient_header_timeout = \"1s\"", "").await;
    let tcp = TcpStream::connect(("127.0.0.1", s.port))
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for path in ["/first", "/second"] {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let request = http::Request::get(format!("http://l.test:{}{path}", s.port))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = send.send_request(request).await.expect("h2 response");
        assert_eq!(response.status(), 200, "{path}");
        let _ = response.into_body().collect().await;
    }
}

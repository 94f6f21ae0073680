//! LouAILink's own upstream exchange against pingora's proxy path: the same request corpus
//! through both, compared byte for byte on both sides (what the backend received, what the
//! client received, `Date` aside), and the behaviours a user relies on, each on both paths.

use louailink_tests::scripted::Scripted;
use louailink_tests::{free_port, Client, Louailink, OneRoute};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATHS: [&str; 2] = ["own", "pingora"];

/// One proxy in front of one scripted backend, on the exchange `path`.
struct Side {
    backend: Scripted,
    _proxy: Louailink,
    port: u16,
}

async fn side(path: &str, upstream_lines: &str, idle_close: Option<Duration>) -> Side {
    let backend = Scripted::start(idle_close).await;
    let port = free_port();
    let upstream = format!("addrs = [\"{}\"]\n{upstream_lines}", backend.addr());
    let config = OneRoute {
        port,
        upstream: &upstream,
        server: "enabled_h2 = true",
        ..Default::default()
    }
    .toml();
    let proxy = Louailink::builder()
        .toml(&config)
        .env("LOUAILINK_UPSTREAM_EXCHANGE", path)
        .start()
        .await;
    Side {
        backend,
        _proxy: proxy,
        port,
    }
}

/// Sends `bytes` on a new connection and reads until the proxy closes it, `pace` between
/// reads of at most 4 KiB (a slow reader when set); `Date` lines removed.
async fn exchange(port: u16, bytes: &[u8], pace: Option<Duration>) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(bytes).await.expect("send");
    let mut got = Vec::new();
    let mut chunk = vec![0u8; if pace.is_some() { 4096 } else { 64 * 1024 }];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    }
    canonical(&without_dates(&got))
}

fn without_dates(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if !line.to_ascii_lowercase().starts_with(b"date:") {
            out.extend_from_slice(line);
        }
    }
    out
}

/// `bytes` (responses read off a connection) with each chunked body re-framed as one chunk:
/// where the chunk boundaries fall is not part of HTTP's meaning (the own exchange passes each
/// chunk on as it arrives, pingora's path may merge those that arrive together). Everything
/// else stays byte for byte.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while let Some(h) = find(&bytes[pos..], b"\r\n\r\n") {
        let head = &bytes[pos..pos + h + 4];
        out.extend_from_slice(head);
        pos += h + 4;
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        let status = lower.split_whitespace().nth(1).unwrap_or("");
        if status.starts_with('1') {
            continue;
        }
        if !lower.contains("\r\ntransfer-encoding: chunked\r\n") {
            out.extend_from_slice(&bytes[pos..]);
            return out;
        }
        let mut body = Vec::new();
        loop {
            let Some(e) = find(&bytes[pos..], b"\r\n") else {
                out.extend_from_slice(&bytes[pos..]);
                return out;
            };
            let size = std::str::from_utf8(&bytes[pos..pos + e])
                .ok()
                .and_then(|t| usize::from_str_radix(t.split(';').next()?.trim(), 16).ok())
                .unwrap_or(0);
            pos += e + 2;
            if size == 0 {
                break;
            }
            let end = (pos + size).min(bytes.len());
            body.extend_from_slice(&bytes[pos..end]);
            pos = (end + 2).min(bytes.len());
        }
        // The trailer section up to its empty line.
        let trailer_end = find(&bytes[pos..], b"\r\n").map_or(bytes.len(), |e| pos + e + 2);
        if !body.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        out.extend_from_slice(&bytes[pos..trailer_end]);
        pos = trailer_end;
    }
    out.extend_from_slice(&bytes[pos..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The corpus: each item ends by asking to close, so the reply is read to the close.
const CORPUS: &[(&str, &[u8])] = &[
    ("content-length response", b"GET /cl HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("chunked response", b"GET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("HTTP/1.0 body until close", b"GET /http10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    (
        "204 and 304 pipelined",
        b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\"\r\nConnection: close\r\n\r\n",
    ),
    ("HEAD", b"HEAD /head HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    (
        "POST with content-length",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
    ),
    (
        "POST chunked with a trailer",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ),
    (
        "hop-by-hop and nominated fields",
        b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: X-Drop, close\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-Dup: 1\r\nx-dup: 2\r\nUser-Agent: odd/1\r\n\r\n",
    ),
    (
        "pipelined with bodies",
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nPOST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ),
    (
        "Expect: 100-continue",
        b"POST /continue HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    ),
    ("103 Early Hints", b"GET /hints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("backend keep-alive fields", b"GET /keepalive HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("HTTP/1.0 client", b"GET /cl HTTP/1.0\r\nHost: t\r\n\r\n"),
    ("absolute-form target", b"GET http://t/cl HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    (
        "conflicting Content-Length and Transfer-Encoding",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("backend closes after its answer", b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("query and odd path", b"GET /q/%7Efile?a=1&b=%20 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
];

#[tokio::test]
async fn both_exchanges_send_and_answer_the_same_bytes() {
    let own = side("own", "", None).await;
    let pingora = side("pingora", "", None).await;
    let mut differences = Vec::new();
    for (name, bytes) in CORPUS {
        let got_own = exchange(own.port, bytes, None).await;
        let got_pingora = exchange(pingora.port, bytes, None).await;
        let seen_own = own.backend.take();
        let seen_pingora = pingora.backend.take();
        assert!(
            !got_own.is_empty(),
            "{name}: no answer from the own exchange"
        );
        if got_own != got_pingora {
            differences.push(format!(
                "{name}: client saw\n--- own\n{}\n--- pingora\n{}",
                String::from_utf8_lossy(&got_own),
                String::from_utf8_lossy(&got_pingora)
            ));
        }
        if seen_own != seen_pingora {
            differences.push(format!(
                "{name}: backend saw\n--- own\n{:?}\n--- pingora\n{:?}",
                seen_own
                    .iter()
                    .map(|r| String::from_utf8_lossy(r))
                    .collect::<Vec<_>>(),
                seen_pingora
                    .iter()
                    .map(|r| String::from_utf8_lossy(r))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
}

#[tokio::test]
async fn a_slow_reader_gets_the_same_megabyte_on_both_exchanges() {
    let own = side("own", "", None).await;
    let pingora = side("pingora", "", None).await;
    let req = b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let pace = Some(Duration::from_millis(1));
    let got_own = exchange(own.port, req, pace).await;
    let got_pingora = exchange(pingora.port, req, pace).await;
    assert!(got_own.len() > 1_048_576, "got {} bytes", got_own.len());
    assert!(
        got_own == got_pingora,
        "the megabyte differs between the paths"
    );
}

#[tokio::test]
async fn h2_clients_reach_http1_backends_alike_on_both_exchanges() {
    let own = side("own", "", None).await;
    let pingora = side("pingora", "", None).await;
    for s in [&own, &pingora] {
        let c = Client::h2c(s.port);
        let r = c.get("t", "/chunked").await;
        assert_eq!((r.status, r.body.as_str()), (200, "abcdefg"));
        let r = Client::send(
            c.request(reqwest::Method::POST, "t", "/echo")
                .body("twelve bytes"),
        )
        .await;
        assert_eq!(r.body, "POST /echo 12");
    }
    // The same requests, but for the port each client named in `:authority`.
    let seen = |s: &Side| -> Vec<String> {
        s.backend
            .take()
            .iter()
            .map(|r| String::from_utf8_lossy(r).replace(&format!(":{}", s.port), ":PORT"))
            .collect()
    };
    let (seen_own, seen_pingora) = (seen(&own), seen(&pingora));
    assert_eq!(seen_own.len(), 2, "{seen_own:?}");
    assert_eq!(seen_own, seen_pingora);
}

/// Sequential requests on each path, counting the backend's connections.
async fn connections_for(path: &str, upstream_lines: &str, requests: usize) -> usize {
    let s = side(path, upstream_lines, None).await;
    let c = Client::h1(s.port);
    for _ in 0..requests {
        assert_eq!(c.get("t", "/cl").await.status, 200, "{path}");
    }
    s.backend.connections()
}

#[tokio::test]
async fn connections_are_reused_and_idle_timeout_zero_disables_reuse_on_both_paths() {
    for path in PATHS {
        assert_eq!(
            connections_for(path, "", 5).await,
            1,
            "{path}: keep-alive reuse"
        );
        assert_eq!(
            connections_for(path, "idle_timeout = \"0s\"", 3).await,
            3,
            "{path}: idle_timeout = 0s"
        );
    }
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_backend_is_not_a_failed_request() {
    for path in PATHS {
        // The backend drops connections idle for 100 ms; each request comes after that.
        let s = side(path, "", Some(Duration::from_millis(100))).await;
        let c = Client::h1(s.port);
        for i in 0..3 {
            let r = c.get("t", "/cl").await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (200, "hello"),
                "{path}: request {i}"
            );
            let r = Client::send(c.request(reqwest::Method::POST, "t", "/echo").body("abc")).await;
            assert_eq!(r.body, "POST /echo 3", "{path}: POST {i}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test]
async fn a_backend_refusing_an_expected_body_answers_before_the_body_is_sent() {
    for path in PATHS {
        let s = side(path, "", None).await;
        let mut conn = TcpStream::connect(("127.0.0.1", s.port))
            .await
            .expect("connect");
        // The head only: the body follows only once the client hears 100 Continue.
        conn.write_all(
            b"POST /refuse-expect HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n",
        )
        .await
        .expect("send");
        let mut got = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .expect("read");
        let text = String::from_utf8_lossy(&got[..n]);
        assert!(text.starts_with("HTTP/1.1 417"), "{path}: {text}");
    }
}

//! Hostile requests replayed against the real binary, each bounded in time: malformed request
//! lines and headers, bad framing, smuggling variants, what nginx refuses (docs/security.md,
//! "What a client may send"), and path tricks against `=`, prefix and regex locations. After
//! each probe the server still serves others, and the backend never sees what was refused.

use louailink_tests::client::raw_request;
use louailink_tests::{free_port, Backend, Louailink, Single};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a fresh connection; returns what came back within a few seconds, and
/// every status line in it.
async fn probe(port: u16, request: &[u8]) -> (String, Vec<u16>) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = s.write_all(request).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    (text, statuses)
}

async fn assert_still_serving(s: &Single) {
    s.get("l.test", "/after").await.expect_status(200);
}

#[tokio::test]
async fn requests_nginx_refuses_are_refused_not_forwarded() {
    let s = Single::start("").await;
    let cases: [(&str, u16); 9] = [
        ("get /lower HTTP/1.1\r\nHost: l.test\r\n\r\n", 400),
        ("Get /mixed HTTP/1.1\r\nHost: l.test\r\n\r\n", 400),
        ("TRACE /trace HTTP/1.1\r\nHost: l.test\r\n\r\n", 405),
        ("GET /nohost HTTP/1.1\r\n\r\n", 400),
        ("GET /two HTTP/1.1\r\nHost: l.test\r\nHost: other.test\r\n\r\n", 400),
        ("GET /a%00b HTTP/1.1\r\nHost: l.test\r\n\r\n", 400),
        ("GET noslash HTTP/1.1\r\nHost: l.test\r\n\r\n", 400),
        (
            "POST /cl HTTP/1.1\r\nHost: l.test\r\nContent-Length: 3,3\r\n\r\nabc",
            400,
        ),
        (
            "POST /cl2 HTTP/1.1\r\nHost: l.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
    ];
    for (request, want) in cases {
        let r = raw_request(s.port, request.as_bytes()).await;
        assert_eq!(r.map(|r| r.status), Some(want), "for {request:?}");
    }
    assert_eq!(s.backend.hits(), 0, "{:?}", s.backend.seen());
    // What nginx accepts still goes through: an extension method, HTTP/1.0 without Host,
    // absolute-form.
    for ok in [
        "PROPFIND /dav HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
        "GET /old HTTP/1.0\r\n\r\n",
        "GET http://l.test/abs HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw_request(s.port, ok.as_bytes()).await;
        assert_eq!(r.map(|r| r.status), Some(200), "for {ok:?}");
    }
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn malformed_requests_are_refused_and_others_still_served() {
    let s = Single::start("").await;
    let huge = format!(
        "GET /huge HTTP/1.1\r\nHost: l.test\r\nX-Big: {}\r\n\r\n",
        "v".repeat(200 * 1024)
    );
    let cases: Vec<(&str, String)> = vec![
        ("bad request line", "GET\r\n\r\n".into()),
        ("bad version", "GET /v HTTP/1.7x\r\nHost: l.test\r\n\r\n".into()),
        ("huge header", huge),
        ("header without colon", "GET /nc HTTP/1.1\r\nHost: l.test\r\nNoColon\r\n\r\n".into()),
        ("obs-fold", "GET /fold HTTP/1.1\r\nHost: l.test\r\nX-A: a\r\n b\r\n\r\n".into()),
        ("space before colon", "GET /sp HTTP/1.1\r\nHost: l.test\r\nX-A : a\r\n\r\n".into()),
        (
            "duplicate Content-Length, different values",
            "POST /dcl HTTP/1.1\r\nHost: l.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into(),
        ),
        (
            "Content-Length 3,3",
            "POST /c33 HTTP/1.1\r\nHost: l.test\r\nContent-Length: 3,3\r\n\r\nabc".into(),
        ),
        (
            "negative Content-Length",
            "POST /neg HTTP/1.1\r\nHost: l.test\r\nContent-Length: -1\r\n\r\n".into(),
        ),
        (
            "unknown Transfer-Encoding",
            "POST /te HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: gzip\r\n\r\nabc".into(),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST /te10 HTTP/1.0\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
    ];
    for (what, request) in &cases {
        let (text, statuses) = probe(s.port, request.as_bytes()).await;
        assert!(
            statuses.first().is_none_or(|st| (400..500).contains(st)),
            "{what}: answered {statuses:?}: {}",
            text.lines().next().unwrap_or_default()
        );
        assert!(!statuses.is_empty() || text.is_empty(), "{what}: {text:?}");
    }
    assert_eq!(
        s.backend.hits(),
        0,
        "a malformed request reached the backend: {:?}",
        s.backend.seen()
    );
    // A raw control byte in the target is percent-encoded by the parser: the backend sees a
    // well-formed, escaped target, never the raw byte (docs/security.md).
    let (_, statuses) = probe(
        s.port,
        b"GET /a\x01b HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses, [200]);
    let seen: Vec<String> = s.backend.seen().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/a%01b"]);
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn bad_chunk_sizes_never_complete_a_request() {
    let s = Single::start("").await;
    for body in [
        "zz\r\nabc\r\n0\r\n\r\n",
        "-1\r\nabc\r\n0\r\n\r\n",
        "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcdef\r\n0\r\n\r\n",
    ] {
        let request = format!(
            "POST /chunk HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let (text, statuses) = probe(s.port, request.as_bytes()).await;
        assert!(
            !statuses.contains(&200),
            "a bad chunk size {body:?} was answered 200: {text}"
        );
    }
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn smuggled_requests_never_reach_the_backend() {
    let s = Single::start("").await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: l.test\r\n\r\n";
    let chunked_then = format!("0\r\n\r\n{smuggled}");
    let variants: Vec<String> = vec![
        // CL.TE: the length covers the smuggled request, chunked framing ends before it.
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then}",
            chunked_then.len()
        ),
        // TE.CL: the headers in the other order, a short length.
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{chunked_then}"
        ),
        // An obfuscated Transfer-Encoding only one hop may understand.
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n{chunked_then}",
            chunked_then.len()
        ),
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked, identity\r\n\r\n{chunked_then}",
            chunked_then.len()
        ),
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {}\r\n\r\n{chunked_then}",
            chunked_then.len()
        ),
        // Two lengths, each hop picking a different one.
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: 0,{}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        // A body on a GET whose length a hop might ignore.
        format!(
            "GET /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        // A bare LF line ending inside the chunked framing.
        format!(
            "POST /front HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\n\n{smuggled}",
            smuggled.len() + 3
        ),
    ];
    for v in &variants {
        let (text, statuses) = probe(s.port, v.as_bytes()).await;
        let seen: Vec<String> = s.backend.seen().into_iter().map(|r| r.uri).collect();
        assert!(
            !seen.iter().any(|u| u.contains("smuggled")),
            "smuggled through {v:?}: backend saw {seen:?}, client got {statuses:?} {text}"
        );
    }
    for r in s.backend.seen() {
        assert!(
            !(r.headers.contains_key("content-length")
                && r.headers.contains_key("transfer-encoding")),
            "both framing headers forwarded: {:?}",
            r.headers
        );
    }
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn path_tricks_meet_regex_locations_too() {
    let backend = Backend::start("b");
    let port = free_port();
    let config = format!(
        r#"
[upstreams.up]
addrs = ["{b}"]
[plugins.refuse]
category = "mock"
status = 403
data = "refused"
[locations.admin]
path = "~^/api/v[0-9]+/admin$"
plugins = ["refuse"]
[locations.exact]
path = "=/internal"
plugins = ["refuse"]
[locations.root]
path = "/"
upstream = "up"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["admin", "exact", "root"]
"#,
        b = backend.addr()
    );
    let _lk = Louailink::start(&config).await;
    for trick in [
        "/api/v1/admin",
        "/api//v1/admin",
        "/api/v1/./admin",
        "/api/v1/x/../admin",
        "/%61pi/v1/admin",
        "/api/v%31/%61dmin",
        "/x/../api/v2/admin",
        "/internal",
        "/./internal",
        "//internal",
        "/%69nternal",
    ] {
        let request = format!("GET {trick} HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n");
        let status = raw_request(port, request.as_bytes())
            .await
            .map(|r| r.status);
        assert_eq!(status, Some(403), "{trick}");
    }
    for refused in ["/api/v1%2fadmin", "/api/v1/admin%00", "/../api/v1/admin"] {
        let request =
            format!("GET {refused} HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n");
        let status = raw_request(port, request.as_bytes())
            .await
            .map(|r| r.status);
        assert_eq!(status, Some(400), "{refused}");
    }
    assert_eq!(backend.hits(), 0, "{:?}", backend.seen());
}

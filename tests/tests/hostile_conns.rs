//! Hostile clients at the connection level, each bounded in time: pipelined requests,
//! slowloris, idle and slow clients, too many connections, clients that never read. The
//! server options under test are `client_header_timeout`, `keepalive_timeout`,
//! `downstream_read_timeout`, `downstream_write_timeout` and `max_connections`.

use louailink_tests::attack::{closed_within, hold_open, set_nofile, trickle};
use louailink_tests::client::raw_request;
use louailink_tests::{wait_until, Echo, RawConn, Single, WAIT};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn echo(body: &[u8]) -> Echo {
    serde_json::from_slice(body).expect("an echo body")
}

/// Reads every response on `conn` until it closes: `(status, echo)` in order.
async fn responses(conn: &mut RawConn) -> Vec<(u16, Option<Echo>)> {
    let mut out = Vec::new();
    while let Some(r) = conn.read_response().await {
        out.push((r.status, serde_json::from_slice(&r.body).ok()));
    }
    out
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let s = Single::start("").await;
    let mut conn = RawConn::connect(s.port).await;
    conn.send(
        b"GET /1 HTTP/1.1\r\nHost: l.test\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: l.test\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send");
    let got = responses(&mut conn).await;
    let uris: Vec<(u16, String)> = got
        .iter()
        .map(|(st, e)| (*st, e.as_ref().map(|e| e.uri.clone()).unwrap_or_default()))
        .collect();
    assert_eq!(
        uris,
        [(200, "/1".into()), (200, "/2".into()), (200, "/3".into())]
    );
    let seen: Vec<String> = s.backend.seen().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/1", "/2", "/3"]);
}

#[tokio::test]
async fn pipelined_requests_with_bodies_are_all_answered_in_order() {
    let s = Single::start("").await;
    let mut conn = RawConn::connect(s.port).await;
    conn.send(
        b"POST /cl HTTP/1.1\r\nHost: l.test\r\nContent-Length: 5\r\n\r\nhello\
          POST /chunked HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n\
          PUT /cl2 HTTP/1.1\r\nHost: l.test\r\nContent-Length: 2\r\n\r\nok\
          GET /last HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send");
    let got = responses(&mut conn).await;
    let summary: Vec<(u16, String, i64)> = got
        .iter()
        .map(|(st, e)| match e {
            Some(e) => (*st, e.uri.clone(), e.body_len),
            None => (*st, String::new(), -1),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (200, "/cl".into(), 5),
            (200, "/chunked".into(), 7),
            (200, "/cl2".into(), 2),
            (200, "/last".into(), 0)
        ]
    );
    let seen: Vec<String> = s.backend.seen().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/cl", "/chunked", "/cl2", "/last"]);
}

#[tokio::test]
async fn keep_alive_requests_with_bodies_each_reach_the_backend() {
    let s = Single::start("").await;
    let mut conn = RawConn::connect(s.port).await;
    let requests: [&[u8]; 3] = [
        b"POST /a HTTP/1.1\r\nHost: l.test\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /b HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n",
        b"GET /c HTTP/1.1\r\nHost: l.test\r\n\r\n",
    ];
    let mut got = Vec::new();
    for r in requests {
        conn.send(r).await.expect("send");
        let resp = conn.read_response().await.expect("a response");
        let e = echo(&resp.body);
        got.push((resp.status, e.uri, e.body_len));
    }
    assert_eq!(
        got,
        [
            (200, "/a".into(), 3),
            (200, "/b".into(), 2),
            (200, "/c".into(), 0)
        ]
    );
}

/// The probe, on the default `client_header_timeout` (10 s): per-read timeouts alone
/// never cut a client that keeps sending.
#[tokio::test]
async fn a_header_sent_byte_by_byte_is_cut_by_client_header_timeout() {
    let s = Single::start_with("", "downstream_read_timeout = \"5s\"", "").await;
    let header = format!(
        "GET /slow HTTP/1.1\r\nHost: l.test\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200)
    );
    let t = trickle(
        s.port,
        header.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(40),
    )
    .await;
    assert!(
        t.closed,
        "the slow client was still connected after {:?}",
        t.lived
    );
    assert!(t.lived < Duration::from_secs(30), "{t:?}");
    assert_eq!(t.status(), Some(408), "{t:?}");
    assert_eq!(s.backend.hits(), 0);
    s.get("l.test", "/after").await.expect_status(200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_client_header_timeout() {
    // The default (10 s) first: pingora alone waits 60 s per read.
    let s = Single::start("").await;
    let mut idle = TcpStream::connect(("127.0.0.1", s.port))
        .await
        .expect("connect");
    assert!(
        closed_within(&mut idle, Duration::from_secs(30)).await,
        "a silent connection was still open after 30 s"
    );
    let s = Single::start_with("", "client_header_timeout = \"1s\"", "").await;
    let mut idle = TcpStream::connect(("127.0.0.1", s.port))
        .await
        .expect("connect");
    assert!(
        closed_within(&mut idle, Duration::from_secs(8)).await,
        "a silent connection was still open after 8 s with client_header_timeout = 1s"
    );
}

/// Sends one request on a fresh connection and reads until the server closes it (or `bound`).
async fn one_request_then_wait(port: u16, bound: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /ka HTTP/1.1\r\nHost: l.test\r\n\r\n")
        .await
        .expect("send");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(bound, s.read_to_end(&mut got))
        .await
        .is_ok();
    (String::from_utf8_lossy(&got).to_ascii_lowercase(), closed)
}

#[tokio::test]
async fn keepalive_timeout_zero_disables_keep_alive() {
    let s = Single::start_with("", "keepalive_timeout = \"0s\"", "").await;
    let (text, closed) = one_request_then_wait(s.port, Duration::from_secs(10)).await;
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(
        closed,
        "the connection stayed open with keepalive_timeout = 0s"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let s = Single::start_with("", "keepalive_timeout = \"500ms\"", "").await;
    let start = Instant::now();
    let (text, closed) = one_request_then_wait(s.port, Duration::from_secs(15)).await;
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        closed,
        "an idle keep-alive connection was open after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_by_downstream_read_timeout() {
    let s = Single::start_with("", "downstream_read_timeout = \"1s\"", "").await;
    let mut conn = TcpStream::connect(("127.0.0.1", s.port))
        .await
        .expect("connect");
    conn.write_all(b"POST /body HTTP/1.1\r\nHost: l.test\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .expect("send");
    assert!(
        closed_within(&mut conn, Duration::from_secs(20)).await,
        "a stalled body held the connection for 20 s"
    );
}

/// Opens `n` connections that each start a header and stall; waits a moment and returns the
/// ones still open, and how many the proxy closed.
async fn hold_many(port: u16, n: usize) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(
            hold_open(port, b"GET / HTTP/1.1\r\n")
                .await
                .expect("connect"),
        );
    }
    let mut checks = tokio::task::JoinSet::new();
    for mut c in held {
        checks.spawn(async move {
            let closed = closed_within(&mut c, Duration::from_secs(2)).await;
            (closed, c)
        });
    }
    let mut open = Vec::new();
    let mut refused = 0;
    while let Some(done) = checks.join_next().await {
        let (closed, c) = done.expect("check task");
        if closed {
            refused += 1;
        } else {
            open.push(c);
        }
    }
    (open, refused)
}

#[tokio::test]
async fn connections_over_max_connections_are_refused() {
    let s = Single::start_with("", "max_connections = 20", "").await;
    let (open, refused) = hold_many(s.port, 40).await;
    assert!(
        open.len() <= 20 && refused >= 20,
        "{} connections held open, {refused} refused, with max_connections = 20",
        open.len()
    );
    drop(open);
    wait_until("a normal request to be served again", WAIT, || async {
        let r = raw_request(
            s.port,
            b"GET /after HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        (r.map(|r| r.status) == Some(200)).then_some(())
    })
    .await;
}

/// 300 slowloris connections against a proxy whose open-file limit is 256; then 10 normal
/// requests (each retried for up to `patience`) must all be served, and every slowloris
/// connection must end.
async fn slowloris(server: &str, patience: Duration) {
    let s = Single::start_with("", server, "").await;
    // As on a host whose open-file limit the attacker can exhaust.
    set_nofile(s.proxy.pid(), 256);
    let header = format!(
        "GET /loris HTTP/1.1\r\nHost: l.test\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(500)
    );
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let h = header.clone();
        let port = s.port;
        attackers.spawn(async move {
            trickle(
                port,
                h.as_bytes(),
                Duration::from_millis(500),
                Duration::from_secs(60),
            )
            .await
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut served = 0;
    for i in 0..10 {
        let request =
            format!("GET /normal/{i} HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n");
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                raw_request(s.port, request.as_bytes()),
            )
            .await;
            if let Ok(Some(r)) = r {
                if r.status == 200 {
                    served += 1;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(served, 10, "normal requests served during a slowloris");
    let mut cut = 0;
    while let Some(t) = attackers.join_next().await {
        if t.expect("attacker").closed {
            cut += 1;
        }
    }
    assert_eq!(cut, 300, "every slowloris connection was cut or refused");
    assert!(
        !s.backend.seen().iter().any(|r| r.uri == "/loris"),
        "a slowloris request reached the backend"
    );
}

#[tokio::test]
async fn slowloris_leaves_normal_clients_served() {
    let server = "max_connections = 100\nclient_header_timeout = \"2s\"";
    slowloris(server, Duration::from_secs(25)).await;
}

/// With nothing configured, the default `client_header_timeout` frees what slowloris holds.
#[tokio::test]
async fn slowloris_against_the_defaults_leaves_normal_clients_served() {
    slowloris("", Duration::from_secs(40)).await;
}

/// A backend that answers every request with a 64 MiB body.
async fn big_backend() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n")
                    .await;
                let chunk = vec![b'z'; 64 * 1024];
                for _ in 0..1024 {
                    if c.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_by_downstream_write_timeout() {
    let (backend_port, backend) = big_backend().await;
    let port = louailink_tests::free_port();
    let config = louailink_tests::OneRoute {
        port,
        upstream: &format!("addrs = [\"127.0.0.1:{backend_port}\"]"),
        location: "",
        server: "downstream_write_timeout = \"1s\"",
        extra: "",
    };
    let (_proxy, _client) = config.start().await;
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    conn.write_all(b"GET /big HTTP/1.1\r\nHost: l.test\r\n\r\n")
        .await
        .expect("send");
    // Read nothing for a while: the proxy's writes block, and must give up.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was still open after 36 s");
    assert!(
        total < 64 * 1024 * 1024,
        "the proxy waited for the slow reader and sent all {total} bytes"
    );
    backend.abort();
}

#[tokio::test]
async fn max_connections_follows_a_reload() {
    let backend = louailink_tests::Backend::start("b");
    let port = louailink_tests::free_port();
    let config = |max: usize| {
        louailink_tests::OneRoute {
            port,
            upstream: &format!("addrs = [\"{}\"]", backend.addr()),
            location: "",
            server: &format!("max_connections = {max}\nclient_header_timeout = \"60s\""),
            extra: "",
        }
        .toml()
    };
    let lk = louailink_tests::Louailink::builder()
        .toml(&config(2))
        .arg("--autoreload")
        .start()
        .await;
    let (open, refused) = hold_many(port, 6).await;
    assert!(
        open.len() <= 2 && refused >= 4,
        "{} held, {refused} refused with max_connections = 2",
        open.len()
    );

    lk.write_config(&config(50));
    wait_until(
        "a request to be served past the old limit",
        WAIT,
        || async {
            let r = raw_request(
                port,
                b"GET /after HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
            )
            .await;
            (r.map(|r| r.status) == Some(200)).then_some(())
        },
    )
    .await;
    let (more, refused) = hold_many(port, 6).await;
    assert_eq!(refused, 0, "connections under the new limit were refused");
    drop((open, more));
}

#[tokio::test]
async fn connection_close_and_http_1_0_are_honoured_with_keepalive_timeout_set() {
    let s = Single::start_with("", "keepalive_timeout = \"60s\"", "").await;
    for request in [
        "GET /close HTTP/1.1\r\nHost: l.test\r\nConnection: close\r\n\r\n",
        "GET /old HTTP/1.0\r\nHost: l.test\r\n\r\n",
    ] {
        let mut c = TcpStream::connect(("127.0.0.1", s.port))
            .await
            .expect("connect");
        c.write_all(request.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut got))
            .await
            .is_ok();
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(text.contains(" 200 "), "{request:?}: {text}");
        assert!(
            closed,
            "{request:?}: the connection stayed open, the response said: {text}"
        );
    }
}

/// The header clock starts with a request's first byte: idling between requests is
/// `keepalive_timeout`'s business, however long `client_header_timeout` is.
#[tokio::test]
async fn a_keep_alive_connection_idle_past_client_header_timeout_is_still_usable() {
    let s = Single::start_with(
        "",
        "client_header_timeout = \"1s\"\nkeepalive_timeout = \"30s\"",
        "",
    )
    .await;
    let mut conn = RawConn::connect(s.port).await;
    for path in ["/first", "/second"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: l.test\r\n\r\n");
        conn.send(request.as_bytes()).await.expect("send");
        let r = conn.read_response().await.expect("a response");
        assert_eq!((r.status, echo(&r.body).uri), (200, path.to_string()));
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

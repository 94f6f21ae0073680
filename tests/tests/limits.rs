//! Limits and hostile input: body size, in-flight limit, oversized headers, malformed requests,
//! request smuggling. After each bad request the server still serves others.

use louailink_tests::client::raw_request;
use louailink_tests::{wait_until, Client, RawConn, Single, WAIT};

/// A normal request still succeeds.
async fn assert_still_serving(s: &Single) {
    s.get("l.test", "/after").await.expect_status(200);
}

#[tokio::test]
async fn body_over_client_max_body_size_gets_413() {
    let s = Single::start("client_max_body_size = \"1kb\"").await;
    let post = |len: usize| {
        s.client
            .request(reqwest::Method::POST, "l.test", "/upload")
            .body(vec![b'x'; len])
    };
    let small = Client::send(post(1000)).await.expect_status(200);
    assert_eq!(small.echo().body_len, 1000);
    let big = Client::send(post(4096)).await;
    assert_eq!(big.status, 413, "{}", big.body);
    assert_eq!(
        s.backend.hits(),
        1,
        "the oversized body never reached the backend"
    );
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn chunked_body_over_client_max_body_size_gets_413() {
    let s = Single::start("client_max_body_size = \"1kb\"").await;
    let chunk = format!("{:x}\r\n{}\r\n", 700, "y".repeat(700));
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}{chunk}{chunk}0\r\n\r\n"
    );
    let resp = raw_request(s.port, request.as_bytes())
        .await
        .expect("a response");
    assert_eq!(resp.status, 413, "{}", resp.text());

    let ok = format!(
        "POST /upload HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n"
    );
    let resp = raw_request(s.port, ok.as_bytes())
        .await
        .expect("a response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("\"body_len\":700"), "{}", resp.text());
}

#[tokio::test]
async fn max_processing_answers_429_to_the_request_over_the_limit() {
    let s = Single::start("max_processing = 1").await;
    let slow = {
        let c = s.client.clone();
        tokio::spawn(async move { c.get("l.test", "/slow?delay_ms=3000").await.status })
    };
    wait_until("the slow request to reach the backend", WAIT, || async {
        (s.backend.in_flight() == 1).then_some(())
    })
    .await;
    let over = s.get("l.test", "/second").await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert_eq!(slow.await.unwrap(), 200);
    s.get("l.test", "/third").await.expect_status(200);
    assert_eq!(s.backend.hits(), 2);
}

#[tokio::test]
async fn oversized_headers_are_rejected_and_others_still_served() {
    let s = Single::start("").await;
    let big = "v".repeat(100 * 1024);
    let request =
        format!("GET /big HTTP/1.1\r\nHost: l.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let resp = raw_request(s.port, request.as_bytes()).await;
    if let Some(r) = &resp {
        assert!(
            matches!(r.status, 400 | 431),
            "a 100 KB header got {}",
            r.status
        );
    }
    assert_eq!(
        s.backend.hits(),
        0,
        "the request with a 100 KB header reached the backend"
    );
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn malformed_request_line_gets_400() {
    let s = Single::start("").await;
    for garbage in [
        "GARBAGE\r\n\r\n",
        "GET /x HTTP/9.9 extra\r\nHost: l.test\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let resp = raw_request(s.port, garbage.as_bytes()).await;
        let status = resp.map(|r| r.status);
        assert_eq!(status, Some(400), "for {garbage:?}");
    }
    assert_eq!(s.backend.hits(), 0);
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn request_smuggling_does_not_reach_the_backend_as_two_requests() {
    let s = Single::start("").await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: l.test\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let request = format!(
        "POST /front HTTP/1.1\r\nHost: l.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let mut conn = RawConn::connect(s.port).await;
    let _ = conn.send(request.as_bytes()).await;
    // Read whatever the proxy answers on this connection (it should answer at most the
    // first request, or reject it, and close).
    let mut statuses = Vec::new();
    while let Some(r) = conn.read_response().await {
        statuses.push(r.status);
    }
    let seen: Vec<String> = s.backend.seen().iter().map(|r| r.uri.clone()).collect();
    assert!(
        !seen.iter().any(|u| u.contains("smuggled")),
        "the smuggled request reached the backend: {seen:?} (client saw {statuses:?})"
    );
    assert!(seen.len() <= 1, "{seen:?}");
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

//! Checks of the harness itself (no louailink needed): backends, certificates, clients.

use louailink_tests::client::raw_request;
use louailink_tests::{free_port, peer_certificate, Backend, CertPair, Client, RawConn, TestCa};

#[tokio::test]
async fn backend_echoes_over_h1_and_h2c() {
    let b = Backend::start("b1");
    let echo = Client::h1(b.port())
        .get("127.0.0.1", "/some/path?x=1")
        .await
        .expect_status(200)
        .echo();
    assert_eq!(
        (echo.backend.as_str(), echo.uri.as_str()),
        ("b1", "/some/path?x=1")
    );
    assert_eq!(
        (echo.method.as_str(), echo.version.as_str()),
        ("GET", "HTTP/1.1")
    );
    assert!(!echo.tls);

    let reply = Client::h2c(b.port()).get("127.0.0.1", "/h2").await;
    assert_eq!(reply.header("x-backend"), Some("b1"));
    assert_eq!(reply.echo().version, "HTTP/2");
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn backend_behaviours_by_query_and_options() {
    let b = Backend::start("b");
    let c = Client::h1(b.port());
    assert_eq!(c.get("x", "/?status=418").await.status, 418);
    let posted = Client::send(
        c.request(reqwest::Method::POST, "x", "/p?delay_ms=50")
            .body("hello"),
    )
    .await;
    assert_eq!(posted.echo().body_len, 5);
    assert_eq!(b.seen()[1].method, "POST");

    let fixed = Backend::builder("fixed").status(503).start();
    assert_eq!(Client::h1(fixed.port()).get("x", "/").await.status, 503);
}

#[tokio::test]
async fn health_endpoint_follows_the_flag_and_is_not_a_hit() {
    let b = Backend::start("h");
    let c = Client::h1(b.port());
    assert_eq!(c.get("x", "/healthz").await.status, 200);
    b.set_healthy(false);
    assert_eq!(c.get("x", "/healthz").await.status, 500);
    assert_eq!((b.hits(), b.health_hits()), (0, 2));
}

#[tokio::test]
async fn backend_stops_and_resumes_on_the_same_port() {
    let mut b = Backend::start("r");
    let port = b.port();
    assert_eq!(Client::h1(port).get("x", "/").await.status, 200);
    b.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    b.resume();
    assert_eq!(b.port(), port);
    assert_eq!(Client::h1(port).get("x", "/").await.status, 200);
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn tls_backend_with_ca_signed_and_wildcard_certificates() {
    let ca = TestCa::new();
    let b = Backend::builder("tls")
        .tls(&ca.leaf(&["backend.test", "*.w.test"]))
        .start();
    let echo = Client::tls(b.port(), &ca)
        .get("backend.test", "/")
        .await
        .echo();
    assert!(echo.tls);
    assert_eq!(echo.version, "HTTP/2");
    assert_eq!(echo.sni.as_deref(), Some("backend.test"));
    let wild = Client::tls_h1(b.port(), &ca).get("x.w.test", "/").await;
    assert_eq!(wild.echo().version, "HTTP/1.1");
}

#[tokio::test]
async fn wildcard_certificate_covers_one_label_only() {
    let ca = TestCa::new();
    let b = Backend::builder("w").tls(&ca.leaf(&["*.w.test"])).start();
    let c = Client::tls(b.port(), &ca);
    for host in ["w.test", "x.y.w.test"] {
        let r = Client::try_send(c.request(reqwest::Method::GET, host, "/")).await;
        assert!(r.is_err(), "{host} is not covered by *.w.test");
    }
}

#[tokio::test]
async fn probe_reports_the_presented_certificate() {
    let cert = CertPair::self_signed(&["probe.test"]);
    let b = Backend::builder("p").tls(&cert).start();
    let der = peer_certificate(b.port(), Some("probe.test"))
        .await
        .unwrap();
    assert_eq!(der, cert.cert_der().to_vec());
    let der = peer_certificate(b.port(), None).await.unwrap();
    assert_eq!(der, cert.cert_der().to_vec());
    let untrusted = Client::try_send(Client::tls(b.port(), &TestCa::new()).request(
        reqwest::Method::GET,
        "probe.test",
        "/",
    ))
    .await;
    assert!(untrusted.is_err());
}

#[tokio::test]
async fn raw_client_reads_responses_and_keeps_the_connection() {
    let b = Backend::start("raw");
    let resp = raw_request(
        b.port(),
        b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("response");
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("\"/r\""));

    let mut conn = RawConn::connect(b.port()).await;
    for path in ["/one", "/two"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let r = conn.read_response().await.expect("response");
        assert!(r.text().contains(path));
    }
    assert_eq!(b.connections(), 2);
}

#[tokio::test]
async fn gated_stream_waits_for_release() {
    let b = Backend::start("s");
    let c = Client::h1(b.port());
    let mut resp = c
        .inner()
        .get(c.url("x", "/gated?chunks=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    b.release_chunk();
    let second = resp.chunk().await.unwrap().unwrap();
    assert_eq!(&second[..], b"data: 1\n\n");
    assert!(resp.chunk().await.unwrap().is_none());
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len());
    for p in ports {
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }
}

//! Listeners: HTTP/1.1 keep-alive, h2c, TLS with ALPN h2, certificate selection by SNI.

use louailink_tests::{
    addrs, free_port, peer_certificate, Backend, CertPair, Client, Louailink, RawConn, Single,
    TestCa,
};

/// A `[certificates.<name>]` item with the PEM inline and extra lines.
fn certificate(name: &str, pair: &CertPair, extra: &str) -> String {
    format!("[certificates.{name}]\n{}{extra}\n\n", pair.toml_inline())
}

/// A config with one location `loc` proxying to `backend` and the given servers/certificates.
fn config(backend: &Backend, rest: &str) -> String {
    format!(
        "[upstreams.up]\naddrs = {}\n\n[locations.loc]\nupstream = \"up\"\n\n{rest}",
        addrs(&[backend])
    )
}

fn server(name: &str, port: u16, lines: &str) -> String {
    format!("[servers.{name}]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n{lines}\n\n")
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let s = Single::start("").await;
    let mut conn = RawConn::connect(s.port).await;
    for path in ["/first", "/second", "/third"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: k.test\r\n\r\n").as_bytes())
            .await
            .expect("connection still open");
        let resp = conn
            .read_response()
            .await
            .expect("a response on the same connection");
        assert_eq!(resp.status, 200);
        assert!(resp.text().contains(path));
    }
}

#[tokio::test]
async fn h2c_listener_accepts_prior_knowledge_and_http1() {
    let b = Backend::start("b");
    let port = free_port();
    let _lk = Louailink::start(&config(&b, &server("h2c", port, "enabled_h2 = true"))).await;
    let h2 = Client::h2c(port)
        .get("c.test", "/h2")
        .await
        .expect_status(200);
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.echo().uri, "/h2");
    let h1 = Client::h1(port)
        .get("c.test", "/h1")
        .await
        .expect_status(200);
    assert_eq!(h1.version, http::Version::HTTP_11);
}

#[tokio::test]
async fn tls_listener_offers_h2_by_alpn_only_when_enabled() {
    let ca = TestCa::new();
    let b = Backend::start("b");
    let (h2_port, h1_port) = (free_port(), free_port());
    let rest = certificate("secure", &ca.leaf(&["secure.test"]), "")
        + &server("h2", h2_port, "tls = true\nenabled_h2 = true")
        + &server("h1", h1_port, "tls = true");
    let _lk = Louailink::start(&config(&b, &rest)).await;

    let reply = Client::tls(h2_port, &ca)
        .get("secure.test", "/over-h2")
        .await
        .expect_status(200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.echo().uri, "/over-h2");
    let reply = Client::tls(h1_port, &ca)
        .get("secure.test", "/over-h1")
        .await
        .expect_status(200);
    assert_eq!(reply.version, http::Version::HTTP_11);
}

#[tokio::test]
async fn h2_authority_is_the_request_host() {
    let ca = TestCa::new();
    let b = Backend::start("b");
    let port = free_port();
    let rest = certificate("any", &ca.leaf(&["a.test", "b.test"]), "")
        + "[locations.only_b]\nhost = \"b.test\"\nupstream = \"up\"\n\n"
        + &format!("[servers.s]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"only_b\"]\ntls = true\nenabled_h2 = true\n");
    let _lk = Louailink::start(&config(&b, &rest)).await;
    let c = Client::tls(port, &ca);
    let ok = c.get("b.test", "/").await.expect_status(200);
    assert_eq!(ok.version, http::Version::HTTP_2);
    assert_eq!(c.get("a.test", "/").await.status, 404);
}

#[tokio::test]
async fn sni_selects_exact_then_closest_wildcard_then_default() {
    let ca = TestCa::new();
    let exact = ca.leaf(&["a.test"]);
    let wild = ca.leaf(&["*.b.test"]);
    let wild_long = ca.leaf(&["*.x.b.test"]);
    let default = ca.leaf(&["default.test"]);
    let b = Backend::start("b");
    let port = free_port();
    let rest = certificate("exact", &exact, "")
        + &certificate("wild", &wild, "domains = [\"*.b.test\"]")
        + &certificate("wild_long", &wild_long, "")
        + &certificate("fallback", &default, "is_default = true")
        + &server("tls", port, "tls = true");
    let _lk = Louailink::start(&config(&b, &rest)).await;

    let presented =
        |sni: Option<&'static str>| async move { peer_certificate(port, sni).await.unwrap() };
    assert_eq!(
        presented(Some("a.test")).await,
        exact.cert_der().to_vec(),
        "exact name"
    );
    assert_eq!(
        presented(Some("y.b.test")).await,
        wild.cert_der().to_vec(),
        "wildcard"
    );
    assert_eq!(
        presented(Some("z.x.b.test")).await,
        wild_long.cert_der().to_vec(),
        "closest wildcard"
    );
    assert_eq!(
        presented(Some("other.test")).await,
        default.cert_der().to_vec(),
        "no match: default"
    );
    assert_eq!(
        presented(None).await,
        default.cert_der().to_vec(),
        "no SNI: default"
    );

    // And a full request validates against the CA.
    Client::tls(port, &ca)
        .get("a.test", "/")
        .await
        .expect_status(200);
    Client::tls(port, &ca)
        .get("q.b.test", "/")
        .await
        .expect_status(200);
}

#[tokio::test]
async fn no_matching_certificate_and_no_default_fails_the_handshake() {
    let ca = TestCa::new();
    let only = ca.leaf(&["only.test"]);
    let b = Backend::start("b");
    let port = free_port();
    let rest = certificate("only", &only, "") + &server("tls", port, "tls = true");
    let _lk = Louailink::start(&config(&b, &rest)).await;
    assert_eq!(
        peer_certificate(port, Some("only.test")).await.unwrap(),
        only.cert_der().to_vec()
    );
    assert!(peer_certificate(port, Some("other.test")).await.is_err());
}

#[tokio::test]
async fn certificates_can_be_file_paths() {
    let ca = TestCa::new();
    let pair = ca.leaf(&["files.test"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair.write(dir.path(), "files");
    let b = Backend::start("b");
    let port = free_port();
    let rest = format!(
        "[certificates.files]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n{}",
        cert.display(),
        key.display(),
        server("tls", port, "tls = true")
    );
    let _lk = Louailink::start(&config(&b, &rest)).await;
    Client::tls(port, &ca)
        .get("files.test", "/")
        .await
        .expect_status(200);
}

#[tokio::test]
async fn tls_listener_reports_the_https_scheme() {
    let ca = TestCa::new();
    let b = Backend::start("b");
    let port = free_port();
    let rest = certificate("c", &ca.leaf(&["s.test"]), "")
        + "[locations.headers]\nupstream = \"up\"\nenable_reverse_proxy_headers = true\n\
           proxy_set_headers = [\"X-Scheme: $scheme\"]\n\n"
        + &format!(
            "[servers.tls]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"headers\"]\ntls = true\n"
        );
    let _lk = Louailink::start(&config(&b, &rest)).await;
    let echo = Client::tls(port, &ca)
        .get("s.test", "/")
        .await
        .expect_status(200)
        .echo();
    assert_eq!(echo.header("x-scheme"), Some("https"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
}

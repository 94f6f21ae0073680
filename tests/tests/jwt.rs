//! `jwt`: bearer tokens verified by a secret, a public key or JWKS keys chosen by `kid`;
//! anything else is 401 (503 while no JWKS could be fetched) and never reaches the upstream.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwt");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("fixture")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A token over `claims`, signed with `alg` by the key in `key` (a secret or a PEM file).
fn token(alg: Algorithm, kid: Option<&str>, key: &str, claims: Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(key.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture(key).as_bytes()).expect("rsa"),
        _ => EncodingKey::from_ec_pem(fixture(key).as_bytes()).expect("ec"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, &claims, &key).expect("token")
}

async fn get(c: &Client, bearer: Option<&str>) -> louailink_tests::Reply {
    let mut req = c.request(reqwest::Method::GET, "j.test", "/x");
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::send(req).await
}

#[tokio::test]
async fn an_hs256_token_passes_and_bad_expired_or_early_ones_get_401() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front("jwt", "secret = \"s3cret\"\nleeway = \"60s\"", "", &b).await;
    let hs = |claims| token(Algorithm::HS256, None, "s3cret", claims);
    assert_eq!(
        get(&c, Some(&hs(json!({"sub": "ann"})))).await.backend(),
        "b"
    );
    // Expired 30 s ago: inside the leeway.
    let late = hs(json!({"exp": now() - 30}));
    assert_eq!(get(&c, Some(&late)).await.backend(), "b");

    let missing = get(&c, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let refused = [
        (
            "wrong secret",
            token(Algorithm::HS256, None, "other", json!({})),
        ),
        ("expired", hs(json!({"exp": now() - 120}))),
        ("not yet valid", hs(json!({"nbf": now() + 300}))),
        ("garbage", "a.b.c".to_string()),
        ("too long", "x".repeat(20_000)),
        // alg "none": a header and claims with an empty signature.
        (
            "alg none",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbm4ifQ.".to_string(),
        ),
    ];
    for (why, t) in refused {
        let r = get(&c, Some(&t)).await;
        assert_eq!(r.status, 401, "{why}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{why}"
        );
    }
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn an_rs256_public_key_passes_claims_upstream_and_never_a_forged_claim_header() {
    let b = Backend::start("b");
    let options = format!(
        "public_key = '''\n{}'''\nhide_credentials = true\nissuer = \"https://idp.test\"\n\
         claims_to_headers = {{ sub = \"X-User\", roles = \"X-Roles\" }}",
        fixture("rsa.pub.pem")
    );
    let (_lk, c) = plugin_in_front("jwt", &options, "", &b).await;
    let claims = json!({"sub": "ann", "roles": ["a", "b"], "iss": "https://idp.test"});
    let good = token(Algorithm::RS256, None, "rsa.pem", claims);
    let req = c
        .request(reqwest::Method::GET, "j.test", "/x")
        .header("authorization", format!("Bearer {good}"))
        .header("x-user", "admin");
    let echo = Client::send(req).await.echo();
    assert_eq!(
        echo.header_values("x-user"),
        ["ann"],
        "the client's x-user is dropped"
    );
    assert_eq!(echo.header("x-roles"), Some("[\"a\",\"b\"]"));
    assert_eq!(echo.header("authorization"), None, "hidden");

    let other_issuer = json!({"sub": "ann", "iss": "https://evil.test"});
    let refused = [
        (
            "other issuer",
            token(Algorithm::RS256, None, "rsa.pem", other_issuer),
        ),
        (
            "other key",
            token(
                Algorithm::RS256,
                None,
                "rsa2.pem",
                json!({"iss": "https://idp.test"}),
            ),
        ),
        // Algorithm confusion: HS256 keyed with the public key's own text.
        ("hs256 with the public key", {
            let claims = json!({"iss": "https://idp.test"});
            let key = EncodingKey::from_secret(fixture("rsa.pub.pem").as_bytes());
            encode(&Header::new(Algorithm::HS256), &claims, &key).expect("token")
        }),
    ];
    for (why, t) in refused {
        assert_eq!(get(&c, Some(&t)).await.status, 401, "{why}");
    }
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn a_token_in_a_cookie_or_query_passes_and_hide_credentials_removes_only_it() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front(
        "jwt",
        "secret = \"s\"\ncookie = \"jwt\"\nquery = \"access_token\"\nhide_credentials = true",
        "",
        &b,
    )
    .await;
    let t = token(Algorithm::HS256, None, "s", json!({}));
    let req = c
        .request(reqwest::Method::GET, "j.test", "/x?a=1")
        .header("cookie", format!("theme=dark; jwt={t}; lang=en"));
    let echo = Client::send(req).await.echo();
    assert_eq!(echo.header("cookie"), Some("theme=dark; lang=en"));
    let by_query = c.get("j.test", &format!("/x?access_token={t}&b=2")).await;
    assert_eq!(by_query.echo().uri, "/x?b=2");
    // The Authorization header is not where this plugin looks.
    assert_eq!(get(&c, Some(&t)).await.status, 401);
}

/// A JWKS server: answers every request with the current document and counts them.
struct JwksServer {
    port: u16,
    doc: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Serves `doc` (`None`: refuses connections' requests with 500).
    fn start(doc: Option<String>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let doc = Arc::new(Mutex::new(doc));
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, h) = (doc.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
                let answer = match d.lock().expect("doc").clone() {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string(),
                };
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        JwksServer { port, doc, hits }
    }

    fn serve(&self, doc: Option<String>) {
        *self.doc.lock().expect("doc") = doc;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Sends `bearer` until the status is `want`, for at most 10 s.
async fn until_status(c: &Client, bearer: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = get(c, Some(bearer)).await.status;
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn jwks_keys_are_chosen_by_kid_and_a_rotated_set_is_fetched_again() {
    let jwks = JwksServer::start(Some(fixture("jwks.json")));
    let b = Backend::start("b");
    let options = format!(
        "jwks_url = \"http://127.0.0.1:{}/keys\"\njwks_refresh = \"1s\"",
        jwks.port
    );
    let (_lk, c) = plugin_in_front("jwt", &options, "", &b).await;
    let rsa = token(Algorithm::RS256, Some("rsa-1"), "rsa.pem", json!({}));
    let ec = token(Algorithm::ES256, Some("ec-1"), "ec.pem", json!({}));
    assert_eq!(get(&c, Some(&rsa)).await.backend(), "b");
    assert_eq!(get(&c, Some(&ec)).await.backend(), "b");
    // A key of the set with another kid's name does not verify.
    let swapped = token(Algorithm::ES256, Some("rsa-1"), "ec.pem", json!({}));
    assert_eq!(get(&c, Some(&swapped)).await.status, 401);

    // A flood of made-up kids costs the JWKS server at most one more fetch.
    let before = jwks.hits();
    for i in 0..30 {
        let made_up = token(
            Algorithm::RS256,
            Some(&format!("k{i}")),
            "rsa.pem",
            json!({}),
        );
        assert_eq!(get(&c, Some(&made_up)).await.status, 401);
    }
    assert!(
        jwks.hits() <= before + 1,
        "{} fetches",
        jwks.hits() - before
    );

    // The identity provider rotates its keys: once the set is older than jwks_refresh it is
    // fetched again in the background, and the new key verifies.
    jwks.serve(Some(fixture("jwks-rotated.json")));
    let rotated = token(Algorithm::RS256, Some("rsa-2"), "rsa2.pem", json!({}));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = get(&c, Some(&rsa)).await;
    assert_eq!(until_status(&c, &rotated, 200).await, 200);
    assert_eq!(
        until_status(&c, &rsa, 401).await,
        401,
        "the old key is gone"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_gives_503_until_it_answers() {
    let jwks = JwksServer::start(None);
    let b = Backend::start("b");
    let options = format!("jwks_url = \"http://127.0.0.1:{}/keys\"", jwks.port);
    let (_lk, c) = plugin_in_front("jwt", &options, "", &b).await;
    let rsa = token(Algorithm::RS256, Some("rsa-1"), "rsa.pem", json!({}));
    let r = get(&c, Some(&rsa)).await;
    assert_eq!(r.status, 503);
    jwks.serve(Some(fixture("jwks.json")));
    assert_eq!(until_status(&c, &rsa, 200).await, 200);
    assert_eq!(b.hits(), 1);
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"auth\"]",
        extra: "[plugins.auth]\ncategory = \"jwt\"\npublic_key = \"not a key\"\n\
                algorithms = [\"HS256\", \"XX1\"]\nclaims_to_headers = { sub = \"bad header\" }",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.auth",
        "public_key",
        "algorithms",
        "XX1",
        "claims_to_headers",
    ]);
}

//! What a token holder may send must not take the control plane down: certificates that name
//! files (a FIFO, `/dev/zero`, a file that may or may not exist) are refused without reading
//! anything, deeply nested documents are refused before parsing, and one token's flood of
//! large bodies does not stall other tokens' calls.

mod common;

use common::etcd::Etcd;
use common::{call, Control, Reply, ADMIN, VIEWER};
use louailink_control::api::grpc::error_body;
use louailink_control::pb;
use serde_json::{json, Value};
use std::time::Duration;

/// The generous bound every answer here must come within.
const BOUND: Duration = Duration::from_secs(10);

async fn within(what: &str, reply: impl std::future::Future<Output = Reply>) -> Reply {
    tokio::time::timeout(BOUND, reply)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["example.test".to_string()]).expect("params");
    (
        params.self_signed(&key).expect("cert").pem(),
        key.serialize_pem(),
    )
}

fn fifo(dir: &std::path::Path) -> String {
    let path = dir.join("key.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_file_paths_are_refused_without_reading_them() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = fifo(dir.path());
    let (pem, key) = certificate();
    let url = c.url("/api/v1/validate");
    let one = |cert: &str, key: &str| json!({"kind": "certificates", "name": "c", "value": {"tls_cert": cert, "tls_key": key}});

    // A FIFO as the key: with a read-only token, a dry run answers at once.
    let r = within(
        "validate a FIFO key",
        call(&url, "POST", Some(VIEWER), Some(one(&pem, &fifo)), &[]),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    let d = &r.body["error"]["details"][0];
    assert_eq!(
        (d["item"].as_str(), d["key"].as_str()),
        (Some("certificates.c"), Some("tls_key")),
        "{r:?}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap_or("")
            .contains("must be PEM text"),
        "{r:?}"
    );
    // The API is still serving.
    let r = within(
        "a list",
        call(&c.url("/api/v1/upstreams"), "GET", Some(ADMIN), None, &[]),
    )
    .await;
    assert_eq!(r.status, 200);

    // /dev/zero, a file that exists and one that does not: the same answer, naming no file.
    let mut messages = Vec::new();
    for path in ["/dev/zero", "/etc/hostname", "/nonexistent/cert.pem"] {
        let r = within(
            path,
            call(&url, "POST", Some(VIEWER), Some(one(path, &key)), &[]),
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        let d = &r.body["error"]["details"][0];
        assert_eq!(d["key"], "tls_cert", "{r:?}");
        assert!(!r.body.to_string().contains(path), "{path} echoed: {r:?}");
        messages.push(d["message"].clone());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");

    // Writes and imports by an admin: the same refusal; PEM text is fine.
    let r = within(
        "put",
        call(
            &c.url("/api/v1/certificates/c"),
            "PUT",
            Some(ADMIN),
            Some(json!({"tls_cert": "/dev/zero", "tls_key": fifo})),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["error"]["details"][0]["item"], "certificates.c");
    let doc = format!("[certificates.c]\ntls_cert = {pem:?}\ntls_key = {fifo:?}\n");
    let r = within(
        "import",
        call(
            &c.url("/api/v1/config?merge=true"),
            "PUT",
            Some(ADMIN),
            Some(Value::String(doc.clone())),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["error"]["details"][0]["key"], "tls_key", "{r:?}");
    let r = within(
        "put PEM",
        call(
            &c.url("/api/v1/certificates/c"),
            "PUT",
            Some(ADMIN),
            Some(json!({"tls_cert": pem, "tls_key": key})),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");

    // gRPC: the same.
    let mut g = c.grpc().await;
    let mut req = tonic::Request::new(pb::ValidateRequest {
        text: doc,
        format: "toml".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {VIEWER}").parse().expect("metadata"),
    );
    let e = tokio::time::timeout(BOUND, g.validate(req))
        .await
        .expect("gRPC validate within the bound")
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let body = error_body(&e).expect("error body");
    assert_eq!(body["error"]["details"][0]["key"], "tls_key", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_documents_are_refused_quickly() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let n = 100_000;
    let yaml = format!("basic: {}{}\n", "[".repeat(n), "]".repeat(n));
    let json_doc = format!("{{\"basic\": {}{}}}", "[".repeat(n), "]".repeat(n));
    let text_form = json!({"text": yaml.clone(), "format": "yaml"});
    for (query, body) in [
        ("?format=yaml", Value::String(yaml.clone())),
        ("?format=json", Value::String(json_doc)),
        ("", text_form),
    ] {
        let url = c.url(&format!("/api/v1/validate{query}"));
        let r = within(query, call(&url, "POST", Some(VIEWER), Some(body), &[])).await;
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(
            r.body.to_string().contains("nests deeper than 128"),
            "{query}: {r:?}"
        );
    }
    let r = within(
        "import",
        call(
            &c.url("/api/v1/config?format=yaml"),
            "PUT",
            Some(ADMIN),
            Some(Value::String(yaml)),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["error"]["details"][0]["line"], 1, "{r:?}");
}

/// A valid config of `n` locations (a large body that takes real time to validate).
fn large_config(n: usize) -> String {
    let mut text = String::from("[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n");
    for i in 0..n {
        text.push_str(&format!(
            "[locations.l{i}]\npath = \"/p{i}/\"\nupstream = \"u\"\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tokens_flood_of_dry_runs_does_not_stall_another_token() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let body = large_config(10_000);
    let url = c.url("/api/v1/validate?format=toml");
    // The flood's own answers may take long (they queue for their token's slots): a client
    // with a loose bound, so only the other token's answers are held to [`BOUND`].
    common::init();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let request = client.post(&url).bearer_auth(VIEWER).body(body.clone());
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The admin's calls are served meanwhile: a read, a dry run and a write.
    let r = within(
        "admin read",
        call(&c.url("/api/v1/nodes"), "GET", Some(ADMIN), None, &[]),
    )
    .await;
    assert_eq!(r.status, 200);
    let small = json!({"kind": "upstreams", "name": "v", "value": {"addrs": ["127.0.0.1:9"]}});
    let r = within(
        "admin dry run",
        call(
            &c.url("/api/v1/validate"),
            "POST",
            Some(ADMIN),
            Some(small),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = within(
        "admin write",
        call(
            &c.url("/api/v1/upstreams/v"),
            "PUT",
            Some(ADMIN),
            Some(json!({"addrs": ["127.0.0.1:9"]})),
            &[],
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    // The flood itself is answered (valid, or 429 once its token waited too long).
    for f in flood {
        let status = f.await.expect("task").expect("an answer");
        assert!(status == 200 || status == 429, "{status}");
    }
}

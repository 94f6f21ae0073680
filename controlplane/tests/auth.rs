//! Tokens and roles: 401 without or with a wrong token, 403 for a viewer's write, private
//! keys only for admins, secrets never in the log, failed auth rate-limited, and open mode
//! refusing a non-loopback listener.

mod common;

use common::etcd::Etcd;
use common::{call, etcd_args, Control, ADMIN, VIEWER};
use serde_json::json;
use std::process::Command;

fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["example.test".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_have_roles_and_private_keys_are_for_admins_only() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let url = c.url("/api/v1/upstreams");
    assert_eq!(call(&url, "GET", None, None, &[]).await.status, 401);
    let r = call(&url, "GET", Some("wrong"), None, &[]).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    assert_eq!(call(&url, "GET", Some(VIEWER), None, &[]).await.status, 200);
    assert_eq!(call(&url, "GET", Some(ADMIN), None, &[]).await.status, 200);
    let u = c.url("/api/v1/upstreams/u");
    let body = json!({"addrs": ["127.0.0.1:9"]});
    let r = call(&u, "PUT", Some(VIEWER), Some(body.clone()), &[]).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert_eq!(
        call(&u, "PUT", Some(ADMIN), Some(body), &[]).await.status,
        201
    );
    // The OpenAPI document is public.
    assert_eq!(
        call(&c.url("/api/v1/openapi.json"), "GET", None, None, &[])
            .await
            .status,
        200
    );

    let (pem, key) = certificate();
    let cert = c.url("/api/v1/certificates/web");
    let r = call(
        &cert,
        "PUT",
        Some(ADMIN),
        Some(json!({"tls_cert": pem, "tls_key": key})),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let admin_view = call(&cert, "GET", Some(ADMIN), None, &[]).await;
    assert_eq!(admin_view.body["value"]["tls_key"], key.as_str());
    let viewer_view = call(&cert, "GET", Some(VIEWER), None, &[]).await;
    let shown = viewer_view.body["value"]["tls_key"].as_str().unwrap();
    assert!(shown.starts_with("sha256:"), "{shown}");
    let export = call(
        &c.url("/api/v1/config?format=json"),
        "GET",
        Some(VIEWER),
        None,
        &[],
    )
    .await;
    assert!(!export.body.to_string().contains("PRIVATE KEY"));
    // Nor in history diffs or events, even for admins.
    let history = call(&c.url("/api/v1/history"), "GET", Some(ADMIN), None, &[]).await;
    assert!(
        !history.body.to_string().contains("PRIVATE KEY"),
        "{}",
        history.body
    );
    let events = call(&c.url("/api/v1/events"), "GET", Some(ADMIN), None, &[]).await;
    assert!(events.body.to_string().contains("certificates.web"));
    assert!(!events.body.to_string().contains("PRIVATE KEY"));
    let log = c.log();
    for secret in [ADMIN, VIEWER, "wrong", "PRIVATE KEY"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    assert!(log.contains("authentication failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_rate_limited_but_a_valid_token_still_gets_in() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let url = c.url("/api/v1/nodes");
    for _ in 0..10 {
        assert_eq!(
            call(&url, "GET", Some("guess"), None, &[]).await.status,
            401
        );
    }
    // More guesses from the address are refused, without a token too.
    let r = call(&url, "GET", Some("guess"), None, &[]).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert_eq!(call(&url, "GET", None, None, &[]).await.status, 429);
    // The real admin on the same address is not locked out, for reads and writes.
    let r = call(&url, "GET", Some(ADMIN), None, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(
        &c.url("/api/v1/upstreams/u"),
        "PUT",
        Some(ADMIN),
        Some(json!({"addrs": ["127.0.0.1:9"]})),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(call(&url, "GET", Some(VIEWER), None, &[]).await.status, 200);
    // gRPC shares the limiter: a guess is refused, the admin is served.
    let mut g = c.grpc().await;
    let mut req = tonic::Request::new(louailink_control::pb::ListNodesRequest {});
    req.metadata_mut()
        .insert("authorization", "Bearer guess".parse().unwrap());
    let e = g.list_nodes(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    let mut req = tonic::Request::new(louailink_control::pb::ListNodesRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    g.list_nodes(req).await.expect("the admin over gRPC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_environment_variable_is_an_admin_token() {
    let etcd = Etcd::start();
    let c = Control::spawn(
        &etcd_args(&etcd),
        &[],
        None,
        &[("LOUAILINK_TOKEN", "from-env-123")],
    );
    let u = c.url("/api/v1/upstreams/u");
    let body = json!({"addrs": ["127.0.0.1:9"]});
    assert_eq!(
        call(&u, "PUT", None, Some(body.clone()), &[]).await.status,
        401
    );
    assert_eq!(
        call(&u, "PUT", Some("from-env-123"), Some(body), &[])
            .await
            .status,
        201
    );
}

#[test]
fn without_a_token_only_loopback_is_allowed() {
    let etcd = Etcd::start();
    let out = Command::new(common::bin())
        .args(["--http", "0.0.0.0:0", "--grpc", "off"])
        .args(etcd_args(&etcd))
        .env_remove("LOUAILINK_TOKEN")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_says_so_at_start() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    let log = common::eventually("the open-mode warning", || async {
        let log = c.log();
        log.contains("no token configured").then_some(log)
    })
    .await;
    assert!(log.contains("loopback only"), "{log}");
}

//! `forward_auth`: each request is first put to an auth service (a real one, written below);
//! a 2xx lets it on with chosen headers of the answer, anything else is the client's answer as
//! the auth service gave it, and no answer in time is a 503. Also the plugin order rule: an
//! auth plugin guards only what comes after it in `plugins`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use louailink_tests::{free_port, Backend, Client, Louailink, OneRoute};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An auth service on loopback; what it answers depends on the `X-Forwarded-Uri` it is sent:
/// `/ok…` 200 with `X-User: alice`, `X-Role: admin` and `X-Other: z`; `/anon…` 200 with none;
/// `/deny…` 401 with a challenge and a body; `/login…` 302; `/big…` 403 with 200 KiB;
/// `/slow…` 200 after 10 s. It records the header of every request it gets, and counts the
/// connections it accepts.
struct AuthService {
    port: u16,
    seen: Arc<Mutex<Vec<http::request::Parts>>>,
    connections: Arc<AtomicUsize>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for AuthService {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn answer(req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let uri = req
        .headers()
        .get("x-forwarded-uri")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let reply = Response::builder();
    let (reply, body) = if uri.starts_with("/ok") {
        let r = reply.header("x-user", "alice").header("x-role", "admin");
        (r.header("x-other", "z"), Bytes::from_static(b"fine"))
    } else if uri.starts_with("/anon") {
        (reply, Bytes::new())
    } else if uri.starts_with("/deny") {
        let r = reply
            .status(401)
            .header("www-authenticate", "Bearer realm=\"api\"");
        let r = r
            .header("content-type", "application/json")
            .header("x-reason", "expired");
        (r, Bytes::from_static(b"{\"error\":\"token expired\"}"))
    } else if uri.starts_with("/login") {
        let r = reply
            .status(302)
            .header("location", "https://login.test/?next=%2Flogin");
        (r, Bytes::from_static(b"go log in"))
    } else if uri.starts_with("/big") {
        (reply.status(403), Bytes::from(vec![b'x'; 200 * 1024]))
    } else if uri.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(10)).await;
        (reply, Bytes::new())
    } else {
        (reply.status(500), Bytes::new())
    };
    reply.body(Full::new(body)).expect("auth answer")
}

impl AuthService {
    fn start() -> AuthService {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind auth service");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("auth service address").port();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("auth service runtime");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let recorded = recorded.clone();
                let svc = hyper::service::service_fn(move |req: Request<_>| {
                    let (parts, body) = req.into_parts();
                    recorded.lock().expect("seen").push(parts.clone());
                    let req = Request::from_parts(parts, body);
                    async move { Ok::<_, Infallible>(answer(req).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        AuthService {
            port,
            seen,
            connections,
            rt: Some(rt),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/check", self.port)
    }

    /// The requests the auth service got.
    fn seen(&self) -> Vec<http::request::Parts> {
        self.seen.lock().expect("seen").clone()
    }
}

/// A server whose location runs `plugins` (names) in front of `backend`; `items` defines them.
async fn start(plugins: &str, items: &str, backend: &Backend) -> (Louailink, Client) {
    OneRoute {
        port: free_port(),
        upstream: &format!("addrs = [\"{}\"]", backend.addr()),
        location: &format!("plugins = [{plugins}]"),
        extra: items,
        ..Default::default()
    }
    .start()
    .await
}

/// The `forward_auth` item `auth` asking `url`, with more option lines.
fn auth_item(url: &str, options: &str) -> String {
    format!("[plugins.auth]\ncategory = \"forward_auth\"\nauth_url = \"{url}\"\n{options}\n")
}

#[tokio::test]
async fn a_2xx_lets_the_request_on_with_the_chosen_answer_headers() {
    let (auth, b) = (AuthService::start(), Backend::start("b"));
    let options = "response_headers = [\"X-User\", \"X-Role\"]";
    let (_lk, c) = start("\"auth\"", &auth_item(&auth.url(), options), &b).await;
    let r = c.get("app.test", "/ok/page").await;
    assert_eq!(r.backend(), "b");
    let echo = r.echo();
    assert_eq!(echo.header("x-user"), Some("alice"));
    assert_eq!(echo.header("x-role"), Some("admin"));
    assert_eq!(echo.header("x-other"), None, "not listed, not copied");
    assert_eq!(echo.uri, "/ok/page");

    // A client cannot bring its own X-User past an answer without one (hostile).
    let forged = c.request(reqwest::Method::GET, "app.test", "/anon/page");
    let r = Client::send(forged.header("x-user", "root")).await;
    assert_eq!(r.backend(), "b");
    assert_eq!(r.echo().header("x-user"), None);

    // The plugin keeps its connection to the auth service.
    for _ in 0..5 {
        assert_eq!(c.get("app.test", "/ok/again").await.backend(), "b");
    }
    assert_eq!(auth.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_auth_request_carries_the_method_uri_host_and_only_the_chosen_headers() {
    let (auth, b) = (AuthService::start(), Backend::start("b"));
    let options = "request_headers = [\"Authorization\"]";
    let (_lk, c) = start("\"auth\"", &auth_item(&auth.url(), options), &b).await;
    let req = c.request(reqwest::Method::POST, "app.test", "/ok/items?id=7&x=%20y");
    let req = req
        .header("authorization", "Bearer t0k3n")
        .header("cookie", "session=secret")
        .header("x-private", "do not send")
        .body("the body stays with the upstream");
    assert_eq!(Client::send(req).await.backend(), "b");

    let seen = auth.seen();
    assert_eq!(seen.len(), 1);
    let asked = &seen[0];
    assert_eq!((asked.method.as_str(), asked.uri.path()), ("GET", "/check"));
    let h = |name: &str| asked.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-forwarded-method"), Some("POST"));
    assert_eq!(h("x-forwarded-uri"), Some("/ok/items?id=7&x=%20y"));
    assert!(h("x-forwarded-host").is_some_and(|v| v.starts_with("app.test")));
    assert_eq!(h("x-forwarded-proto"), Some("http"));
    assert_eq!(h("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(h("authorization"), Some("Bearer t0k3n"));
    assert_eq!(h("cookie"), None, "not listed, not sent");
    assert_eq!(h("x-private"), None);
    assert_eq!(
        h("content-length").unwrap_or("0"),
        "0",
        "no body to the auth service"
    );
}

#[tokio::test]
async fn a_refusal_or_a_redirect_is_returned_as_the_auth_service_gave_it() {
    let (auth, b) = (AuthService::start(), Backend::start("b"));
    let (_lk, c) = start("\"auth\"", &auth_item(&auth.url(), ""), &b).await;

    let r = c.get("app.test", "/deny").await.expect_status(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-reason"), Some("expired"));
    assert_eq!(r.body, "{\"error\":\"token expired\"}");

    // Not followed: the client is the one to go and log in.
    let r = c.get("app.test", "/login").await.expect_status(302);
    assert_eq!(
        r.header("location"),
        Some("https://login.test/?next=%2Flogin")
    );
    assert_eq!(r.body, "go log in");

    // A huge refusal is cut at 64 KiB, and still a refusal.
    let r = c.get("app.test", "/big").await.expect_status(403);
    assert_eq!(r.body.len(), 64 * 1024);
    assert_eq!(b.hits(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn a_slow_or_absent_auth_service_is_a_503() {
    let (auth, b) = (AuthService::start(), Backend::start("b"));
    let (_lk, c) = start("\"auth\"", &auth_item(&auth.url(), "timeout = \"1s\""), &b).await;
    assert_eq!(c.get("app.test", "/slow").await.status, 503);
    assert_eq!(
        c.get("app.test", "/ok").await.backend(),
        "b",
        "fast again: on"
    );

    let nobody = format!("http://127.0.0.1:{}/check", free_port());
    let (_lk2, c2) = start("\"auth\"", &auth_item(&nobody, ""), &b).await;
    assert_eq!(c2.get("app.test", "/ok").await.status, 503);
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn an_auth_plugin_guards_what_comes_after_it_and_not_what_comes_before() {
    let (auth, b) = (AuthService::start(), Backend::start("b"));
    let items = format!(
        "{}\n[plugins.answer]\ncategory = \"mock\"\ndata = \"mocked\"\n",
        auth_item(&auth.url(), "")
    );
    let (_lk, guarded) = start("\"auth\", \"answer\"", &items, &b).await;
    assert_eq!(guarded.get("app.test", "/deny").await.status, 401);
    assert_eq!(guarded.get("app.test", "/ok").await.body, "mocked");
    let asked = auth.seen().len();

    let (_lk2, open) = start("\"answer\", \"auth\"", &items, &b).await;
    let r = open.get("app.test", "/deny").await;
    assert_eq!((r.status, r.body.as_str()), (200, "mocked"));
    assert_eq!(
        auth.seen().len(),
        asked,
        "the mock answered before anyone asked"
    );
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"auth\"]",
        extra: "[plugins.auth]\ncategory = \"forward_auth\"\nauth_url = \"ftp://auth.test/\"\n\
                response_headers = [\"bad header\"]\ntimeout = \"0s\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.auth", "auth_url", "response_headers", "timeout"]);
}

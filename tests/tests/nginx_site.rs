//! A site as nginx serves it (gzip, static files, basic auth, `limit_req`, `proxy_cache`), moved
//! onto LouAILink with only a config: each part answers as it did.

use flate2::read::GzDecoder;
use louailink_tests::{free_port, Backend, Client, Louailink};
use reqwest::Method;
use std::io::Read;

const CSS: &str = "body { color: #222; margin: 0 auto; max-width: 60em; }\n";

fn site_config(port: u16, root: &str, app: &Backend) -> String {
    format!(
        r#"
[upstreams.app]
addrs = ["{app}"]

[plugins.gzip]
category = "compression"
min_length = 32

[plugins.files]
category = "directory"
path = "{root}"

[plugins.staff]
category = "basic_auth"
authorizations = ["ann:s3cret"]

[plugins.per_ip]
category = "limit"
type = "rate"
key = "ip"
max = 5
interval = "1m"

[plugins.cache]
category = "cache"

[locations.static]
path = "/static/"
plugins = ["gzip", "files"]

[locations.admin]
path = "/admin/"
upstream = "app"
plugins = ["staff"]

[locations.api]
path = "/api/"
upstream = "app"
plugins = ["per_ip", "cache"]

[servers.site]
addr = "127.0.0.1:{port}"
locations = ["static", "admin", "api"]
"#,
        app = app.addr(),
    )
}

#[tokio::test]
async fn gzip_static_files_basic_auth_limit_req_and_proxy_cache_work_from_one_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let css = CSS.repeat(20);
    std::fs::write(dir.path().join("app.css"), &css).expect("write");
    let app = Backend::builder("app")
        .header("cache-control", "max-age=60")
        .start();
    let port = free_port();
    let root = dir.path().display().to_string();
    let _lk = Louailink::start(&site_config(port, &root, &app)).await;
    let c = Client::h1(port);

    // gzip on a static file, plain for a client that does not ask; the validators hold.
    let zipped = c
        .request(Method::GET, "site.test", "/static/app.css")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("an answer");
    assert_eq!(zipped.status(), 200);
    let header = |name: &str| zipped.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-encoding"), Some("gzip"));
    assert_eq!(header("content-type"), Some("text/css"));
    let bytes = zipped.bytes().await.expect("a body");
    assert!(bytes.len() < css.len() / 4, "{} bytes", bytes.len());
    assert_eq!(gunzip(&bytes), css);
    let plain = c
        .get("site.test", "/static/app.css")
        .await
        .expect_status(200);
    assert_eq!(plain.body, css);
    assert_eq!(plain.header("content-encoding"), None);
    let etag = plain.header("etag").expect("an etag").to_string();
    let again = c
        .request(Method::GET, "site.test", "/static/app.css")
        .header("if-none-match", etag);
    assert_eq!(Client::send(again).await.status, 304);

    // Basic auth in front of the app.
    assert_eq!(c.get("site.test", "/admin/").await.status, 401);
    let authed = c
        .request(Method::GET, "site.test", "/admin/")
        .basic_auth("ann", Some("s3cret"));
    assert_eq!(Client::send(authed).await.backend(), "app");

    // The cache answers the second request; the rate limit counts both, and the sixth
    // request of the minute is refused with a hint when to come back.
    let first = c.get("site.test", "/api/items").await.expect_status(200);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let second = c.get("site.test", "/api/items").await.expect_status(200);
    assert_eq!(second.header("x-cache-status"), Some("HIT"));
    assert_eq!(app.hits(), 2, "one for /admin/, one for /api/items");
    for _ in 0..3 {
        c.get("site.test", "/api/items").await.expect_status(200);
    }
    let refused = c.get("site.test", "/api/items").await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
}

/// Decodes a gzip body.
fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .expect("a gzip body");
    out
}

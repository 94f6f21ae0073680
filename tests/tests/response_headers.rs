//! `response_headers` as a plugin: rename, remove, set and add response headers, with request
//! variables, on upstream responses, plugin replies and error pages alike.

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute};

#[tokio::test]
async fn headers_are_renamed_removed_set_and_added_with_variables() {
    let b = Backend::start("b");
    let options = r#"rename_headers = ["X-Backend: X-Served-By"]
remove_headers = ["content-type"]
set_headers = ["X-Host: $host", "X-Id: id-$request_id", "X-Backend: never-renamed"]
add_headers = ["X-Multi: a", "X-Multi: $method"]"#;
    let (_lk, c) = plugin_in_front("response_headers", options, "", &b).await;
    let r = Client::send(
        c.request(reqwest::Method::GET, "r.test", "/x")
            .header("x-request-id", "abc-123"),
    )
    .await
    .expect_status(200);
    assert_eq!(r.header("x-served-by"), Some("b"), "renamed");
    assert_eq!(
        r.header("x-backend"),
        Some("never-renamed"),
        "set after the rename"
    );
    assert_eq!(r.header("content-type"), None, "removed");
    assert_eq!(r.header("x-host"), Some("r.test"));
    assert_eq!(r.header("x-id"), Some("id-abc-123"));
    let multi: Vec<&str> = r
        .headers
        .get_all("x-multi")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(multi, ["a", "GET"]);
    assert_eq!(r.echo().backend, "b", "the body is untouched");
}

#[tokio::test]
async fn a_generated_request_id_and_a_path_capture_can_be_sent_back() {
    let b = Backend::start("b");
    let port = free_port();
    let config = OneRoute {
        port,
        upstream: &format!("addrs = [\"{}\"]", b.addr()),
        location: "path = \"~^/t/(?<tenant>[a-z]+)\"\nplugins = [\"h\"]",
        extra: "[plugins.h]\ncategory = \"response_headers\"\nset_headers = [\"X-Tenant: $tenant\", \"X-Id: $request_id\"]",
        ..Default::default()
    }
    .toml();
    let (_lk, c) = (Louailink::start(&config).await, Client::h1(port));
    let r = c.get("r.test", "/t/acme/x").await.expect_status(200);
    assert_eq!(r.header("x-tenant"), Some("acme"));
    let id = r.header("x-id").unwrap_or_default();
    assert!(
        id.len() >= 16,
        "a request id is made when the client sent none: {id:?}"
    );
}

#[tokio::test]
async fn plugin_replies_and_error_pages_get_the_headers_too() {
    let port = free_port();
    let dead = free_port();
    let config = OneRoute {
        port,
        upstream: &format!("addrs = [\"127.0.0.1:{dead}\"]"),
        location: "plugins = [\"h\", \"m\"]",
        extra: r#"[plugins.h]
category = "response_headers"
set_headers = ["X-Frame-Options: DENY"]
remove_headers = ["x-mock"]

[plugins.m]
category = "mock"
path = "/mock"
headers = ["X-Mock: 1", "X-Kept: 1"]
data = "hello"
"#,
        ..Default::default()
    }
    .toml();
    let (_lk, c) = (Louailink::start(&config).await, Client::h1(port));
    let mock = c.get("r.test", "/mock").await.expect_status(200);
    assert_eq!(mock.body, "hello");
    assert_eq!(mock.header("x-frame-options"), Some("DENY"));
    assert_eq!(mock.header("x-mock"), None);
    assert_eq!(mock.header("x-kept"), Some("1"));
    let error = c
        .get("r.test", "/upstream-is-down")
        .await
        .expect_status(502);
    assert_eq!(error.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn a_request_header_that_is_not_a_valid_value_is_left_out_not_an_error() {
    let b = Backend::start("b");
    let options = "set_headers = [\"X-User: $http_x_user\", \"X-Fixed: yes\"]";
    let (_lk, c) = plugin_in_front("response_headers", options, "", &b).await;
    let hostile = http::HeaderValue::from_bytes(b"\xff\xfe<script>").expect("obs-text value");
    let r = Client::send(
        c.request(reqwest::Method::GET, "r.test", "/x")
            .header("x-user", hostile),
    )
    .await
    .expect_status(200);
    assert_eq!(r.header("x-user"), Some(""), "obs-text renders as nothing");
    assert_eq!(r.header("x-fixed"), Some("yes"));
    let long = "u".repeat(16 * 1024);
    let r = Client::send(
        c.request(reqwest::Method::GET, "r.test", "/x")
            .header("x-user", &long),
    )
    .await
    .expect_status(200);
    assert_eq!(r.header("x-user"), Some(long.as_str()));
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"hdrs\"]",
        extra: r#"[plugins.hdrs]
category = "response_headers"
set_headers = ["X-T: ${tenant"]
add_headers = ["no colon"]
remove_headers = ["bad header"]
rename_headers = ["X-A: bad name"]

[plugins.empty]
category = "response_headers"
"#,
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.hdrs",
        "set_headers",
        "add_headers",
        "remove_headers",
        "rename_headers",
        "plugins.empty",
        "set add_headers, set_headers, remove_headers or rename_headers",
    ]);
}

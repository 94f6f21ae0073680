//! Built-in `ping` and `mock` plugins: they answer in the request phase without contacting an
//! upstream, and their responses still get the location's `response_headers`.

use louailink_tests::{free_port, Client, Louailink, OneRoute, Single};

const PING: &str = "[plugins.p]\ncategory = \"ping\"\npath = \"/ping\"";

#[tokio::test]
async fn ping_answers_pong_on_its_exact_path_only() {
    let s = Single::start_with("plugins = [\"p\"]", "", PING).await;
    let pong = s.get("p.test", "/ping").await.expect_status(200);
    assert_eq!(pong.body.trim(), "pong");
    assert_eq!(s.backend.hits(), 0, "ping must not contact the upstream");
    for other in ["/ping/x", "/pingx", "/other"] {
        assert_eq!(
            s.get("p.test", other).await.backend(),
            "b",
            "{other} goes to the upstream"
        );
    }
}

#[tokio::test]
async fn mock_answers_without_any_upstream_and_gets_response_headers() {
    let port = free_port();
    let config = OneRoute {
        port,
        location: "plugins = [\"m\"]\nresponse_headers = [\"X-Location: mocked-loc\"]",
        extra: r#"[plugins.m]
category = "mock"
path = "/mock"
status = 201
headers = ["X-Mock: 1", "Content-Type: text/plain"]
data = "mocked body"
delay = "50ms"
"#,
        ..Default::default()
    }
    .toml();
    assert!(!config.contains("upstream"), "the location has no upstream");
    let _lk = Louailink::start(&config).await;
    let c = Client::h1(port);
    let reply = c.get("m.test", "/mock").await.expect_status(201);
    assert_eq!(reply.body, "mocked body");
    assert_eq!(reply.header("x-mock"), Some("1"));
    assert_eq!(reply.header("x-location"), Some("mocked-loc"));
    // Off the mock's path, a location without upstream has nothing to proxy to.
    assert_eq!(c.get("m.test", "/elsewhere").await.status, 503);
}

#[tokio::test]
async fn mock_with_empty_path_answers_every_path_and_upstream_is_untouched() {
    let s = Single::start_with(
        "plugins = [\"all\"]",
        "",
        "[plugins.all]\ncategory = \"mock\"\nstatus = 200\ndata = \"always\"",
    )
    .await;
    for path in ["/", "/a/b?c=d"] {
        assert_eq!(
            s.get("m.test", path).await.expect_status(200).body,
            "always"
        );
    }
    assert_eq!(s.backend.hits(), 0);
}

#[tokio::test]
async fn plugins_run_in_order() {
    let s = Single::start_with(
        "plugins = [\"first\", \"second\"]",
        "",
        "[plugins.first]\ncategory = \"mock\"\npath = \"/x\"\ndata = \"first\"\n\
         [plugins.second]\ncategory = \"mock\"\ndata = \"second\"",
    )
    .await;
    assert_eq!(s.get("o.test", "/x").await.body, "first");
    assert_eq!(s.get("o.test", "/y").await.body, "second");
}

#[tokio::test]
async fn a_location_naming_an_unknown_plugin_fails_validation() {
    let config = OneRoute {
        port: free_port(),
        upstream: "addrs = [\"127.0.0.1:9\"]",
        location: "plugins = [\"nosuchplugin\"]",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["locations.loc", "nosuchplugin"]);
}

#[tokio::test]
async fn invalid_plugin_options_fail_validation() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"bad\", \"weird\"]",
        extra: "[plugins.bad]\ncategory = \"mock\"\nstatus = \"not-a-status\"\n\
                [plugins.weird]\ncategory = \"no_such_category\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.bad", "status", "plugins.weird", "no_such_category"]);
}

#[tokio::test]
async fn request_id_is_kept_or_made_and_sent_both_ways() {
    let s = Single::start_with(
        "plugins = [\"rid\"]\nproxy_set_headers = [\"X-Seen-Id: $request_id\"]",
        "",
        "[plugins.rid]\ncategory = \"request_id\"\nheader_name = \"X-Trace\"",
    )
    .await;
    let req = |id: Option<&str>| {
        let r = s.client.request(reqwest::Method::GET, "r.test", "/");
        match id {
            Some(id) => r.header("x-trace", id),
            None => r,
        }
    };

    // A sane client id is kept: the upstream, the variable and the client all see it.
    let kept = Client::send(req(Some("abc-123"))).await.expect_status(200);
    assert_eq!(kept.header("x-trace"), Some("abc-123"));
    let echo = kept.echo();
    assert_eq!(echo.headers["x-trace"], ["abc-123"]);
    assert_eq!(echo.headers["x-seen-id"], ["abc-123"]);

    // None sent, or a hostile one: a fresh uuid replaces it everywhere.
    for sent in [None, Some("evil value\"<x>"), Some(&*"x".repeat(300))] {
        let r = Client::send(req(sent)).await.expect_status(200);
        let id = r
            .header("x-trace")
            .expect("an id on the response")
            .to_string();
        assert_eq!(id.len(), 36, "{id}");
        assert_ne!(Some(id.as_str()), sent);
        let echo = r.echo();
        assert_eq!(echo.headers["x-trace"], echo.headers["x-seen-id"]);
        assert_eq!(echo.headers["x-trace"], [id]);
    }
}

#[tokio::test]
async fn request_id_options_are_checked() {
    let config = OneRoute {
        port: free_port(),
        upstream: "addrs = [\"127.0.0.1:9\"]",
        location: "plugins = [\"rid\"]",
        extra: "[plugins.rid]\ncategory = \"request_id\"\nheader_name = \"bad name\"\nalgorithm = \"uuid7\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.rid", "header_name", "algorithm", "uuid, hex"]);
}

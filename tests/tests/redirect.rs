//! `redirect`: to https on the same host and/or under a prefix, keeping path and query.

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute, Reply};

/// A server whose one location runs `redirect` with these options in front of `backend`.
async fn start(options: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("redirect", options, "", backend).await
}

fn location(r: &Reply) -> (u16, Option<&str>) {
    (r.status, r.header("location"))
}

#[tokio::test]
async fn plain_http_goes_to_https_on_the_same_host_with_path_and_query() {
    let b = Backend::start("b");
    let (_lk, c) = start("http_to_https = true", &b).await;
    let r = c.get("Shop.Test", "/a/b?c=d&e").await;
    assert_eq!(location(&r), (301, Some("https://shop.test/a/b?c=d&e")));
    // The normalised path is the one sent on.
    let r = c.get("shop.test", "/x/../a").await;
    assert_eq!(location(&r), (301, Some("https://shop.test/a")));
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn a_prefix_is_added_once_and_requests_under_it_pass() {
    let b = Backend::start("b");
    let (_lk, c) = start("prefix = \"/api\"\nstatus = 308", &b).await;
    assert_eq!(
        location(&c.get("p.test", "/x?y=1").await),
        (308, Some("/api/x?y=1"))
    );
    assert_eq!(
        location(&c.get("p.test", "/apix").await),
        (308, Some("/api/apix"))
    );
    assert_eq!(c.get("p.test", "/api/x").await.backend(), "b");
    assert_eq!(c.get("p.test", "/api").await.backend(), "b");

    let (_lk2, both) = start("prefix = \"/api\"\nhttp_to_https = true", &b).await;
    let r = both.get("p.test", "/x").await;
    assert_eq!(location(&r), (301, Some("https://p.test/api/x")));
    let r = both.get("p.test", "/api/x").await;
    assert_eq!(location(&r), (301, Some("https://p.test/api/x")));
}

#[test]
fn bad_options_are_config_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"r\", \"none\"]",
        extra: "[plugins.r]\ncategory = \"redirect\"\nprefix = \"api\"\nstatus = 200\n\
                [plugins.none]\ncategory = \"redirect\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.r",
        "status",
        "200",
        "prefix",
        "plugins.none",
        "http_to_https",
    ]);
}

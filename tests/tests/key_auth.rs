//! `key_auth`: API keys in a header or a query parameter; anything else is 401 and never
//! reaches the upstream.

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute};

/// A server whose one location runs `key_auth` with these options in front of `backend`.
async fn start(options: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("key_auth", options, "", backend).await
}

#[tokio::test]
async fn a_key_in_the_default_header_passes_and_others_get_401() {
    let b = Backend::start("b");
    let (_lk, c) = start("keys = [\"k-one\", \"k-two\"]", &b).await;
    let get = |key: Option<&'static str>| {
        let mut req = c.request(reqwest::Method::GET, "k.test", "/x");
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        Client::send(req)
    };
    assert_eq!(get(Some("k-two")).await.backend(), "b");
    for refused in [None, Some("k-three"), Some("k-on"), Some("K-ONE")] {
        assert_eq!(get(refused).await.status, 401, "{refused:?}");
    }
    assert_eq!(b.hits(), 1);
    let seen = b.seen();
    assert_eq!(
        seen[0].headers["x-api-key"],
        ["k-two"],
        "kept unless hidden"
    );
}

#[tokio::test]
async fn a_key_in_the_query_passes_and_hide_credentials_removes_it_upstream() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "query = \"apikey\"\nkeys = \"secret1\"\nhide_credentials = true",
        &b,
    )
    .await;
    assert_eq!(
        c.get("k.test", "/x?a=1&apikey=secret1&b=2").await.backend(),
        "b"
    );
    assert_eq!(c.get("k.test", "/x?apikey=secret1").await.backend(), "b");
    assert_eq!(c.get("k.test", "/x?apikey=nope").await.status, 401);
    assert_eq!(c.get("k.test", "/x?xapikey=secret1").await.status, 401);
    let uris: Vec<String> = b.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/x?a=1&b=2", "/x"]);
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"keys\"]",
        extra: "[plugins.keys]\ncategory = \"key_auth\"\nheader = \"bad header\"\nquery = \"a&b\"",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.keys", "keys is empty", "header", "query"]);
}

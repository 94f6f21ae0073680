//! The restriction plugins: `ip_restriction` (client IP, which honours `trusted_proxies`; a
//! forged `X-Forwarded-For` from an untrusted peer changes nothing), `ua_restriction`
//! (User-Agent regexes) and `referer_restriction` (Referer hosts).

use louailink_tests::{free_port, plugin_in_front, Backend, Client, Louailink, OneRoute, Reply};

/// A server whose one location runs `ip_restriction` with these options over `backend`;
/// `extra` holds `[basic]` lines, if any.
async fn start(options: &str, extra: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("ip_restriction", options, extra, backend).await
}

async fn from(c: &Client, forwarded_for: Option<&str>) -> Reply {
    with_header(c, "x-forwarded-for", forwarded_for).await
}

/// `GET /x` with `name: value` when given.
async fn with_header(c: &Client, name: &str, value: Option<&str>) -> Reply {
    let mut req = c.request(reqwest::Method::GET, "ip.test", "/x");
    if let Some(value) = value {
        req = req.header(name, value);
    }
    Client::send(req).await
}

#[tokio::test]
async fn a_deny_list_refuses_the_listed_client_with_its_message() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "type = \"deny\"\nip_list = [\"127.0.0.0/8\"]\nmessage = \"not from here\"",
        "",
        &b,
    )
    .await;
    let refused = from(&c, None).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (403, "not from here")
    );
    assert_eq!(b.hits(), 0, "a refused request never reaches the upstream");
}

#[tokio::test]
async fn an_allow_list_lets_only_the_listed_clients_through() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "type = \"allow\"\nip_list = \"127.0.0.1, 10.1.0.0/16\"",
        "",
        &b,
    )
    .await;
    assert_eq!(from(&c, None).await.backend(), "b");
    let (_lk2, c2) = start("type = \"allow\"\nip_list = [\"10.1.0.0/16\"]", "", &b).await;
    let refused = from(&c2, None).await;
    assert_eq!((refused.status, refused.body.as_str()), (403, "Forbidden"));
}

#[tokio::test]
async fn the_client_ip_behind_a_trusted_proxy_is_the_forwarded_one_and_a_forgery_is_not() {
    let b = Backend::start("b");
    let trusted = "[basic]\ntrusted_proxies = [\"127.0.0.1\"]";
    let (_lk, c) = start(
        "type = \"deny\"\nip_list = [\"203.0.113.0/24\"]",
        trusted,
        &b,
    )
    .await;
    assert_eq!(from(&c, Some("203.0.113.9")).await.status, 403);
    assert_eq!(from(&c, Some("198.51.100.1")).await.backend(), "b");
    // A client that prepends an address of its own to what the proxy appended is judged by
    // the right-most untrusted one: the proxy's view.
    assert_eq!(
        from(&c, Some("198.51.100.1, 203.0.113.9")).await.status,
        403
    );

    // Without trusted proxies, X-Forwarded-For is the client's word and changes nothing.
    let (_lk2, c2) = start("type = \"allow\"\nip_list = [\"203.0.113.0/24\"]", "", &b).await;
    assert_eq!(from(&c2, Some("203.0.113.9")).await.status, 403);
}

#[test]
fn bad_options_are_config_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"ips\"]",
        extra: "[plugins.ips]\ncategory = \"ip_restriction\"\ntype = \"block\"\nip_list = [\"10.0.0.300\"]",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.ips", "type", "\"block\"", "ip_list", "10.0.0.300"]);
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"ua\", \"ref\"]",
        extra: "[plugins.ua]\ncategory = \"ua_restriction\"\nua_list = [\"(bot\"]\n\
                [plugins.ref]\ncategory = \"referer_restriction\"\nreferer_list = [\"https://a.com/\"]",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.ua",
        "ua_list",
        "(bot",
        "plugins.ref",
        "referer_list",
    ]);
}

#[tokio::test]
async fn ua_restriction_denies_matching_agents_and_allow_lists_admit_only_theirs() {
    let b = Backend::start("b");
    let ua = |c: &Client, v: Option<&'static str>| {
        let c = c.clone();
        async move { with_header(&c, "user-agent", v).await }
    };
    let (_lk, deny) = plugin_in_front(
        "ua_restriction",
        "ua_list = [\"(?i)bad-?bot\", \"^curl/\"]\nmessage = \"no bots\"",
        "",
        &b,
    )
    .await;
    let refused = ua(&deny, Some("Mozilla/5.0 (compatible; BadBot/2.1)")).await;
    assert_eq!((refused.status, refused.body.as_str()), (403, "no bots"));
    assert_eq!(ua(&deny, Some("curl/8.1")).await.status, 403);
    assert_eq!(ua(&deny, Some("Mozilla/5.0")).await.backend(), "b");
    assert_eq!(
        ua(&deny, None).await.backend(),
        "b",
        "no User-Agent is not listed"
    );

    let (_lk2, allow) = plugin_in_front(
        "ua_restriction",
        "type = \"allow\"\nua_list = \"^Mozilla/\"",
        "",
        &b,
    )
    .await;
    assert_eq!(ua(&allow, Some("Mozilla/5.0")).await.backend(), "b");
    assert_eq!(ua(&allow, Some("curl/8.1")).await.status, 403);
    assert_eq!(ua(&allow, None).await.status, 403);
}

#[tokio::test]
async fn referer_restriction_matches_the_referers_host_exactly_or_by_wildcard() {
    let b = Backend::start("b");
    let (_lk, c) = plugin_in_front(
        "referer_restriction",
        "type = \"allow\"\nreferer_list = [\"a.com\", \"*.b.com\"]",
        "",
        &b,
    )
    .await;
    let referer = |v| with_header(&c, "referer", Some(v));
    assert_eq!(referer("https://A.com:8443/page").await.backend(), "b");
    assert_eq!(referer("https://x.y.b.com/").await.backend(), "b");
    for refused in [
        "https://b.com/",
        "https://evila.com/",
        "https://a.com.evil.net/",
        "https://evil.net/?https://a.com/",
    ] {
        assert_eq!(referer(refused).await.status, 403, "{refused}");
    }
    assert_eq!(with_header(&c, "referer", None).await.status, 403);
}

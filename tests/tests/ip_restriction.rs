//! `ip_restriction`: allow and deny lists by client IP, which honours `trusted_proxies`, and a
//! forged `X-Forwarded-For` from an untrusted peer that changes nothing.

use louailink_tests::{free_port, Backend, Client, Louailink, OneRoute, Reply};

/// A server whose one location runs `ip_restriction` with these options over `backend`;
/// `extra` holds `[basic]` lines, if any.
async fn start(options: &str, extra: &str, backend: &Backend) -> (Louailink, Client) {
    let port = free_port();
    let plugin = format!("[plugins.ips]\ncategory = \"ip_restriction\"\n{options}\n{extra}");
    let upstream = format!("addrs = [\"{}\"]", backend.addr());
    let config = OneRoute {
        port,
        upstream: &upstream,
        location: "plugins = [\"ips\"]",
        extra: &plugin,
        ..Default::default()
    }
    .toml();
    (Louailink::start(&config).await, Client::h1(port))
}

async fn from(c: &Client, forwarded_for: Option<&str>) -> Reply {
    let mut req = c.request(reqwest::Method::GET, "ip.test", "/x");
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
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
}

//! `limit`: a sliding-window rate or an in-flight limit per client IP (honouring
//! `trusted_proxies`), header, cookie or query parameter; over it, 429 with `Retry-After`, and
//! the upstream never sees the request. In-flight slots come back whatever ended the request,
//! and the counts survive a config swap that leaves the plugin unchanged.

use louailink_tests::{
    free_port, plugin_in_front, wait_until, Backend, Client, Louailink, OneRoute, Reply, WAIT,
};

/// A server whose one location runs `limit` with these options in front of `backend`.
async fn start(options: &str, backend: &Backend) -> (Louailink, Client) {
    plugin_in_front("limit", options, "", backend).await
}

/// `GET path` with `name: value` when given.
async fn get_with(c: &Client, path: &str, header: Option<(&str, &str)>) -> Reply {
    let mut req = c.request(reqwest::Method::GET, "limit.test", path);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    Client::send(req).await
}

/// `Retry-After` in seconds; panics when missing or not a number.
fn retry_after(r: &Reply) -> u64 {
    let v = r.header("retry-after").expect("Retry-After on a refusal");
    v.parse().unwrap_or_else(|_| panic!("Retry-After {v:?}"))
}

#[tokio::test]
async fn a_rate_lets_max_requests_through_per_interval_then_answers_429_with_retry_after() {
    let b = Backend::start("b");
    let (_lk, c) = start("max = 3\ninterval = \"1h\"", &b).await;
    for _ in 0..3 {
        assert_eq!(c.get("limit.test", "/x").await.backend(), "b");
    }
    let refused = c.get("limit.test", "/x").await.expect_status(429);
    assert_eq!(refused.body, "Too Many Requests");
    // Sliding window: the 3 of this hour weigh in the next one until a third of it has
    // passed, so the next request fits in 1h - (time into this hour) + 20 min.
    let wait = retry_after(&refused);
    assert!((3_600..=4_800).contains(&wait), "Retry-After {wait}");
    assert_eq!(b.hits(), 3, "refused requests never reach the upstream");
}

#[tokio::test]
async fn each_key_value_has_its_own_budget_and_requests_without_one_share_a_budget() {
    let b = Backend::start("b");
    let (_lk, c) = start(
        "key = \"header:X-User\"\nmax = 1\ninterval = \"1h\"\nstatus = 503\nmessage = \"slow down\"",
        &b,
    )
    .await;
    let as_user = |user: Option<&'static str>| get_with(&c, "/x", user.map(|u| ("x-user", u)));
    assert_eq!(as_user(Some("alice")).await.backend(), "b");
    let refused = as_user(Some("alice")).await.expect_status(503);
    assert_eq!(
        (refused.body.as_str(), retry_after(&refused) > 0),
        ("slow down", true)
    );
    assert_eq!(as_user(Some("bob")).await.backend(), "b");
    assert_eq!(as_user(None).await.backend(), "b");
    assert_eq!(
        as_user(None).await.status,
        503,
        "no header: one shared budget"
    );
    assert_eq!(
        as_user(Some("")).await.status,
        503,
        "an empty value is no value"
    );

    // A cookie and a query parameter work the same way.
    let (_lk2, c2) = start("key = \"cookie:sid\"\nmax = 1\ninterval = \"1h\"", &b).await;
    let with_cookie = |v: &'static str| get_with(&c2, "/x", Some(("cookie", v)));
    assert_eq!(with_cookie("a=1; sid=s1").await.backend(), "b");
    assert_eq!(with_cookie("sid=s1").await.status, 429);
    assert_eq!(with_cookie("sid=s2").await.backend(), "b");
    let (_lk3, c3) = start("key = \"query:user\"\nmax = 1\ninterval = \"1h\"", &b).await;
    assert_eq!(c3.get("limit.test", "/x?user=u1").await.backend(), "b");
    assert_eq!(c3.get("limit.test", "/y?a=2&user=u1").await.status, 429);
    assert_eq!(c3.get("limit.test", "/x?user=u2").await.backend(), "b");
}

#[tokio::test]
async fn a_forged_x_forwarded_for_gets_no_new_budget_but_a_trusted_proxys_does() {
    let b = Backend::start("b");
    let (_lk, c) = start("max = 2\ninterval = \"1h\"", &b).await;
    let from = |ip: &'static str| get_with(&c, "/x", Some(("x-forwarded-for", ip)));
    assert_eq!(from("198.51.100.1").await.backend(), "b");
    assert_eq!(from("198.51.100.2").await.backend(), "b");
    // The peer (127.0.0.1) is not a trusted proxy: every forged address is still that peer.
    for forged in ["198.51.100.3", "203.0.113.9, 198.51.100.4", "::1"] {
        assert_eq!(from(forged).await.status, 429, "{forged}");
    }

    let (_lk2, c2) = plugin_in_front(
        "limit",
        "max = 1\ninterval = \"1h\"",
        "[basic]\ntrusted_proxies = [\"127.0.0.1\"]",
        &b,
    )
    .await;
    let via_proxy = |ip: &'static str| get_with(&c2, "/x", Some(("x-forwarded-for", ip)));
    assert_eq!(via_proxy("198.51.100.1").await.backend(), "b");
    assert_eq!(via_proxy("198.51.100.1").await.status, 429);
    assert_eq!(via_proxy("198.51.100.2").await.backend(), "b");
    // A client of the trusted proxy prepending an address is still judged by the proxy's one.
    assert_eq!(via_proxy("10.9.9.9, 198.51.100.2").await.status, 429);
}

#[tokio::test]
async fn a_flood_of_made_up_keys_does_not_give_a_used_up_key_its_budget_back() {
    let b = Backend::start("b");
    let (_lk, c) = start("key = \"header:X-Key\"\nmax = 1\ninterval = \"1h\"", &b).await;
    let with_key = |k: String| {
        let c = c.clone();
        async move { get_with(&c, "/x", Some(("x-key", &k))).await }
    };
    assert_eq!(with_key("victim".into()).await.backend(), "b");
    for i in 0..1_000 {
        assert_eq!(with_key(format!("junk-{i}")).await.status, 200);
    }
    assert_eq!(with_key("victim".into()).await.status, 429);
}

#[tokio::test]
async fn inflight_limits_concurrent_requests_per_key_until_they_end() {
    let b = Backend::start("b");
    let (_lk, c) = start("type = \"inflight\"\nkey = \"header:X-User\"\nmax = 2", &b).await;
    let alice = Some(("x-user", "alice"));
    // Two streams whose second chunk waits for the test: both hold a slot until then.
    let first = c.request(reqwest::Method::GET, "limit.test", "/gated?chunks=2");
    let first = first.header("x-user", "alice").send().await.expect("first");
    let second = c.request(reqwest::Method::GET, "limit.test", "/gated?chunks=2");
    let second = second
        .header("x-user", "alice")
        .send()
        .await
        .expect("second");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );

    let refused = get_with(&c, "/x", alice).await.expect_status(429);
    assert_eq!(retry_after(&refused), 1);
    assert_eq!(
        get_with(&c, "/x", Some(("x-user", "bob"))).await.backend(),
        "b"
    );

    b.release_chunk();
    b.release_chunk();
    first.text().await.expect("first body");
    second.text().await.expect("second body");
    wait_until("alice's slots to come back", WAIT, || async {
        (get_with(&c, "/x", alice).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_inflight_slot_comes_back_when_the_client_goes_away() {
    let b = Backend::start("b");
    let (_lk, c) = start("type = \"inflight\"\nmax = 1", &b).await;
    // A request the backend would answer only after two minutes, from a client that leaves.
    let leaver = c.clone_fresh();
    let task = tokio::spawn(async move {
        let _ = Client::try_send(leaver.request(
            reqwest::Method::GET,
            "limit.test",
            "/x?delay_ms=120000",
        ))
        .await;
    });
    wait_until("the slow request to reach the backend", WAIT, || async {
        (b.in_flight() == 1).then_some(())
    })
    .await;
    assert_eq!(c.get("limit.test", "/x").await.status, 429);
    task.abort();
    // Well before the backend would have answered, the slot is free again.
    wait_until("the slot to come back", WAIT, || async {
        (c.get("limit.test", "/x").await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_inflight_slot_comes_back_when_the_upstream_fails_or_a_later_plugin_answers() {
    let mut dead = Backend::start("dead");
    dead.stop();
    let (_lk, c) = start("type = \"inflight\"\nmax = 1", &dead).await;
    for _ in 0..3 {
        assert_eq!(c.get("limit.test", "/x").await.status, 502);
    }

    let port = free_port();
    let config = OneRoute {
        port,
        location: "plugins = [\"one_at_a_time\", \"answer\"]",
        extra: "[plugins.one_at_a_time]\ncategory = \"limit\"\ntype = \"inflight\"\nmax = 1\n\n\
                [plugins.answer]\ncategory = \"mock\"\ndata = \"mocked\"",
        ..Default::default()
    };
    let (_lk2, c2) = config.start().await;
    for _ in 0..3 {
        assert_eq!(c2.get("limit.test", "/x").await.body, "mocked");
    }
}

/// One location running limit `p` (`plugin` lines) before backend `b`, with `location` lines.
fn swap_config(port: u16, b: &Backend, plugin: &str, location: &str) -> String {
    OneRoute {
        port,
        upstream: &format!("addrs = [\"{}\"]", b.addr()),
        location: &format!("plugins = [\"p\"]\n{location}"),
        extra: &format!("[plugins.p]\ncategory = \"limit\"\n{plugin}"),
        ..Default::default()
    }
    .toml()
}

/// Applies a config whose plugin has `plugin` lines and whose location adds `x-gen: <gen>` to
/// every answer; returns the first answer made on it.
async fn swap(lk: &Louailink, port: u16, b: &Backend, plugin: &str, gen: &str) -> Reply {
    let c = Client::h1(port);
    let location = format!("response_headers = [\"x-gen: {gen}\"]");
    lk.write_config(&swap_config(port, b, plugin, &location));
    wait_until("the new config", WAIT, || async {
        let r = c.get("limit.test", "/x").await;
        (r.header("x-gen") == Some(gen)).then_some(r)
    })
    .await
}

#[tokio::test]
async fn the_budget_survives_a_config_swap_that_leaves_the_plugin_unchanged() {
    let b = Backend::start("b");
    let port = free_port();
    let plugin = "max = 2\ninterval = \"1h\"";
    let config = swap_config(port, &b, plugin, "");
    let lk = Louailink::builder()
        .toml(&config)
        .arg("--autoreload")
        .start()
        .await;
    let c = Client::h1(port);
    for _ in 0..2 {
        assert_eq!(c.get("limit.test", "/x").await.backend(), "b");
    }
    assert_eq!(c.get("limit.test", "/x").await.status, 429);

    // The location changes, the plugin does not: its counts stay.
    assert_eq!(
        swap(&lk, port, &b, plugin, "2").await.status,
        429,
        "still used up"
    );
    // A changed plugin is a new one, with a budget of its own.
    let changed = "max = 3\ninterval = \"1h\"";
    assert_eq!(swap(&lk, port, &b, changed, "3").await.backend(), "b");
}

#[test]
fn bad_options_are_errors_naming_the_plugin_and_key() {
    let config = OneRoute {
        port: free_port(),
        location: "plugins = [\"lim\"]",
        extra: "[plugins.lim]\ncategory = \"limit\"\ntype = \"bucket\"\nkey = \"path:x\"\nmax = 0",
        ..Default::default()
    }
    .toml();
    let out = Louailink::check(&config);
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.lim",
        "type",
        "\"rate\" or \"inflight\"",
        "key",
        "max",
    ]);
}

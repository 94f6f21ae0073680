//! `traffic_split`: `weight` percent of a location's requests go to another upstream, at
//! random or sticky by a header / cookie value (the same value always takes the same side).

use louailink_tests::{free_port, Backend, Client, Louailink, OneRoute};
use std::collections::HashMap;

/// The location's own upstream answers as `main`, the split one as `canary`.
struct Split {
    _main: Backend,
    _canary: Backend,
    _lk: Louailink,
    c: Client,
}

/// A location in front of `main` whose plugin `p` sends traffic to `canary` (option lines).
async fn start(options: &str) -> Split {
    let (main, canary) = (Backend::start("main"), Backend::start("canary"));
    let port = free_port();
    let extra = format!(
        "[upstreams.canary]\naddrs = [\"{}\"]\n\n\
         [plugins.p]\ncategory = \"traffic_split\"\nupstream = \"canary\"\n{options}",
        canary.addr()
    );
    let (lk, c) = OneRoute {
        port,
        upstream: &format!("addrs = [\"{}\"]", main.addr()),
        location: "plugins = [\"p\"]",
        extra: &extra,
        ..Default::default()
    }
    .start()
    .await;
    Split {
        _main: main,
        _canary: canary,
        _lk: lk,
        c,
    }
}

impl Split {
    /// Which side answered `GET /x` with `name: value`, if given.
    async fn side(&self, header: Option<(&str, &str)>) -> String {
        let mut req = self.c.request(reqwest::Method::GET, "split.test", "/x");
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        Client::send(req).await.backend()
    }
}

#[tokio::test]
async fn about_weight_percent_of_the_requests_go_to_the_other_upstream() {
    let s = start("weight = 30").await;
    let mut canary = 0;
    for _ in 0..1_000 {
        match s.side(None).await.as_str() {
            "canary" => canary += 1,
            "main" => {}
            other => panic!("answered by {other}"),
        }
    }
    // 30% of 1000 is 300; the binomial's spread is about 15, so 200-400 never fails by chance.
    assert!(
        (200..=400).contains(&canary),
        "{canary} of 1000 went to canary"
    );
}

#[tokio::test]
async fn weight_0_sends_nothing_and_100_sends_everything() {
    let none = start("weight = 0").await;
    let all = start("weight = 100\nsticky = \"header:X-User\"").await;
    for i in 0..50 {
        let user = format!("user-{i}");
        assert_eq!(none.side(Some(("x-user", &user))).await, "main");
        assert_eq!(all.side(Some(("x-user", &user))).await, "canary");
    }
}

#[tokio::test]
async fn a_sticky_value_always_takes_the_same_side() {
    let s = start("weight = 50\nsticky = \"header:X-User\"").await;
    let mut sides: HashMap<String, String> = HashMap::new();
    for round in 0..4 {
        for i in 0..40 {
            let user = format!("user-{i}");
            let side = s.side(Some(("x-user", &user))).await;
            let first = sides.entry(user.clone()).or_insert_with(|| side.clone());
            assert_eq!(*first, side, "{user} moved in round {round}");
        }
    }
    let to_canary = sides.values().filter(|s| *s == "canary").count();
    // 40 users at 50%: both sides get some (all on one side: one chance in 2^39).
    assert!(
        (1..40).contains(&to_canary),
        "{to_canary} of 40 users on canary"
    );

    // By cookie too; a request without the cookie is split at random.
    let s = start("weight = 50\nsticky = \"cookie:sid\"").await;
    for i in 0..20 {
        let cookie = format!("theme=dark; sid=s{i}");
        let first = s.side(Some(("cookie", &cookie))).await;
        for _ in 0..3 {
            assert_eq!(s.side(Some(("cookie", &cookie))).await, first, "{cookie}");
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..60 {
        seen.push(s.side(None).await);
    }
    assert!(seen.iter().any(|s| s == "main") && seen.iter().any(|s| s == "canary"));
}

/// `louailink -t` on a location with the split plugin `split` (option lines) over `up`.
fn check(options: &str) -> louailink_tests::CmdOutput {
    let config = OneRoute {
        port: free_port(),
        upstream: "addrs = [\"127.0.0.1:9\"]",
        location: "plugins = [\"split\"]",
        extra: &format!("[plugins.split]\ncategory = \"traffic_split\"\n{options}"),
        ..Default::default()
    }
    .toml();
    Louailink::check(&config)
}

#[test]
fn an_unknown_upstream_and_bad_options_are_errors_naming_the_plugin_and_key() {
    let out = check("upstream = \"nope\"\nweight = 10");
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&[
        "plugins.split",
        "key \"upstream\"",
        "unknown upstream \"nope\"",
    ]);

    let out = check("upstream = \"up\"\nweight = 101\nsticky = \"header\"");
    assert!(!out.ok(), "{out:#?}");
    out.assert_mentions(&["plugins.split", "weight", "sticky"]);
    assert!(check("upstream = \"up\"\nweight = 10").ok());
}

//! Health checks: a failing backend gets no traffic until it passes again; no healthy backend
//! gives 503.

use louailink_tests::{addrs, free_port, wait_until, Backend, Client, Louailink, OneRoute, WAIT};

async fn proxy(backends: &[&Backend], health_check: &str) -> (Louailink, Client) {
    let upstream = format!(
        "addrs = {}\nhealth_check = \"{health_check}\"",
        addrs(backends)
    );
    OneRoute {
        port: free_port(),
        upstream: &upstream,
        ..Default::default()
    }
    .start()
    .await
}

/// Which backends answered `n` sequential requests (a failed request counts as its status,
/// or as "transport error").
async fn answered_by(c: &Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let req = c.request(reqwest::Method::GET, "h.test", "/");
        out.push(match Client::try_send(req).await {
            Ok(reply) => reply.backend(),
            Err(_) => "transport error".to_string(),
        });
    }
    out
}

/// Waits until `n` requests in a row are all answered by `only`.
async fn wait_only(c: &Client, only: &str, n: usize) {
    wait_until(
        &format!("{n} requests in a row answered by {only}"),
        WAIT,
        || async {
            answered_by(c, n)
                .await
                .iter()
                .all(|b| b == only)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn http_check_takes_a_failing_backend_out_and_puts_it_back() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let (_lk, c) = proxy(
        &[&a, &b],
        "http://up.test/healthz?interval=500ms&timeout=1s",
    )
    .await;
    wait_until("both backends in rotation", WAIT, || async {
        let seen = answered_by(&c, 6).await;
        (seen.contains(&"a".into()) && seen.contains(&"b".into())).then_some(())
    })
    .await;

    b.set_healthy(false);
    wait_only(&c, "a", 10).await;
    let hits = b.hits();
    assert!(answered_by(&c, 20).await.iter().all(|x| x == "a"));
    assert_eq!(b.hits(), hits, "an unhealthy backend gets no traffic");
    assert!(b.health_hits() > 0, "the check probes every backend");

    b.set_healthy(true);
    wait_until("b back in rotation", WAIT, || async {
        answered_by(&c, 6)
            .await
            .contains(&"b".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn tcp_check_takes_a_stopped_backend_out_and_puts_it_back() {
    let a = Backend::start("a");
    let mut b = Backend::start("b");
    let (_lk, c) = proxy(&[&a, &b], "tcp://?interval=500ms").await;
    b.stop();
    // Until the check notices, requests to b may fail; afterwards none do.
    wait_only(&c, "a", 10).await;
    assert!(answered_by(&c, 20).await.iter().all(|x| x == "a"));

    b.resume();
    wait_until("b back in rotation", WAIT, || async {
        answered_by(&c, 6)
            .await
            .contains(&"b".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn no_healthy_backend_gives_503() {
    let a = Backend::start("a");
    let (_lk, c) = proxy(&[&a], "http://up.test/healthz?interval=500ms").await;
    assert_eq!(c.get("h.test", "/").await.status, 200);
    a.set_healthy(false);
    wait_until("503 once the only backend is unhealthy", WAIT, || async {
        (c.get("h.test", "/").await.status == 503).then_some(())
    })
    .await;
    a.set_healthy(true);
    wait_until("200 once it is healthy again", WAIT, || async {
        (c.get("h.test", "/").await.status == 200).then_some(())
    })
    .await;
}

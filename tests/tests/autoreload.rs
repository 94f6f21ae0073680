//! File mode: `--autoreload` and `-a` watch the config file and apply edits while serving
//! (dataplane.md, "Config changes at run time").

use louailink_tests::{
    assert_no_failures, free_port, wait_until, Backend, Client, Load, Louailink, WAIT,
};
use std::time::Duration;

/// Upstreams `one` and `two` (one backend each), location `loc` with `location` lines,
/// server `main` on `port`; `extra` appended.
fn config(port: u16, backends: &[Backend; 2], location: &str, extra: &str) -> String {
    format!(
        "[upstreams.one]\naddrs = [\"{}\"]\n\n[upstreams.two]\naddrs = [\"{}\"]\n\n\
         [locations.loc]\n{location}\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n\n{extra}\n",
        backends[0].addr(),
        backends[1].addr()
    )
}

fn backends() -> [Backend; 2] {
    [Backend::start("one"), Backend::start("two")]
}

async fn start(config: &str, args: &[&str]) -> Louailink {
    let mut builder = Louailink::builder().toml(config).admin();
    for a in args {
        builder = builder.arg(a);
    }
    builder.start().await
}

/// Waits (bounded) until `GET host/` is answered by backend (or status) `want`.
async fn wait_served_by(client: &Client, host: &str, want: &str) {
    wait_until(&format!("{host} to be served by {want}"), WAIT, || async {
        (client.get(host, "/").await.backend() == want).then_some(())
    })
    .await;
}

/// A node with `--autoreload` whose location goes to upstream `one`, and a client for it.
async fn autoreloading_on_one(b: &[Backend; 2]) -> (u16, Louailink, Client) {
    let port = free_port();
    let lk = start(
        &config(port, b, "upstream = \"one\"", ""),
        &["--autoreload"],
    )
    .await;
    (port, lk, Client::h1(port))
}

#[tokio::test]
async fn a_location_change_is_applied() {
    let b = backends();
    let (port, lk, c) = autoreloading_on_one(&b).await;
    assert_eq!(c.get("a.test", "/").await.backend(), "one");

    lk.write_config(&config(
        port,
        &b,
        "upstream = \"two\"\nresponse_headers = [\"x-edit: 2\"]",
        "",
    ));
    wait_served_by(&c, "a.test", "two").await;
    assert_eq!(c.get("a.test", "/").await.header("x-edit"), Some("2"));
}

#[tokio::test]
async fn a_file_written_in_place_is_read_only_once_it_is_closed() {
    let b = backends();
    let (port, lk, c) = autoreloading_on_one(&b).await;
    let load = Load::keep_alive("while the file is empty", &c, "a.test", "/");
    load.wait_more(5).await;
    // Truncated, then written 800 ms later: the empty file in between is no config to apply.
    let edit = config(port, &b, "upstream = \"two\"", "");
    lk.write_config_slowly(&edit, Duration::from_millis(800))
        .await;
    wait_served_by(&c, "a.test", "two").await;
    assert_no_failures(&[load.stop().await]);
}

#[tokio::test]
async fn a_host_only_change_is_applied() {
    let b = backends();
    let port = free_port();
    let location = |host: &str| format!("upstream = \"one\"\nhost = \"{host}\"\npath = \"/\"");
    let lk = start(
        &config(port, &b, &location("a.test"), ""),
        &["--autoreload"],
    )
    .await;
    let c = Client::h1(port);
    assert_eq!(c.get("a.test", "/").await.backend(), "one");
    assert_eq!(c.get("b.test", "/").await.status, 404);

    lk.write_config(&config(port, &b, &location("b.test"), ""));
    wait_served_by(&c, "b.test", "one").await;
    assert_eq!(c.get("a.test", "/").await.status, 404);
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_config_until_a_fixed_edit_applies() {
    let b = backends();
    let (port, lk, c) = autoreloading_on_one(&b).await;
    const REJECTED: &str = "invalid config; the running config keeps serving";
    let rejections = || lk.log().matches(REJECTED).count();

    // A half-written file (a syntax error), then a valid TOML naming a missing upstream.
    lk.write_config_raw("[locations.loc\nupstream = \"two\"\n");
    wait_until("the syntax error to be logged", WAIT, || async {
        (rejections() >= 1).then_some(())
    })
    .await;
    assert_eq!(c.get("a.test", "/").await.backend(), "one");
    lk.write_config(&config(port, &b, "upstream = \"three\"", ""));
    wait_until("the missing upstream to be logged", WAIT, || async {
        (rejections() >= 2).then_some(())
    })
    .await;
    assert!(lk.log().contains("three"), "the error names the upstream");
    // Only the edited part of the file was parsed again, yet the error has its file and line.
    let line = config(port, &b, "upstream = \"three\"", "")
        .lines()
        .position(|l| l.contains("\"three\""))
        .map(|i| i + 1)
        .expect("the edited line");
    let at = format!("{}:{line}: locations.loc", lk.config_path().display());
    assert!(
        lk.log().contains(&at),
        "no {at:?} in the log:\n{}",
        lk.log()
    );
    assert_eq!(c.get("a.test", "/").await.backend(), "one");

    lk.write_config(&config(port, &b, "upstream = \"two\"", ""));
    wait_served_by(&c, "a.test", "two").await;
}

#[tokio::test]
async fn a_listener_change_with_autoreload_is_reported_as_restart_pending() {
    let b = backends();
    let (port, new_port) = (free_port(), free_port());
    let lk = start(
        &config(port, &b, "upstream = \"one\"", ""),
        &["--autoreload"],
    )
    .await;
    let c = Client::h1(port);
    assert!(!lk.status().await.restart_pending);

    // A new server (a listener) and a location change in the same edit: the location
    // applies, the listener waits for a restart.
    let second =
        format!("[servers.second]\naddr = \"127.0.0.1:{new_port}\"\nlocations = [\"loc\"]\n");
    lk.write_config(&config(port, &b, "upstream = \"two\"", &second));
    wait_served_by(&c, "a.test", "two").await;
    let status = lk
        .wait_status("restart_pending", |s| s.restart_pending)
        .await;
    assert_eq!(status.status, "restart_pending", "{status:#?}");
    lk.wait_for_log_line("restart_pending").await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", new_port)).is_err(),
        "the new listener opened without a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_change_with_autorestart_upgrades_without_a_failed_request() {
    let b = backends();
    let (port, new_port) = (free_port(), free_port());
    let mut lk = start(&config(port, &b, "upstream = \"one\"", ""), &["-a"]).await;
    let old_pid = lk.pid();
    let c = Client::h1(port);
    // Busy kept-alive connections must move to the new process unharmed.
    let keep_alive = Load::busy_keep_alive("busy keep-alive", &c, 4, "a.test", "/");
    let fresh = Load::fresh_connections("fresh", &c, "a.test", "/");
    keep_alive.wait_more(20).await;

    let second =
        format!("[servers.second]\naddr = \"127.0.0.1:{new_port}\"\nlocations = [\"loc\"]\n");
    lk.write_config(&config(port, &b, "upstream = \"two\"", &second));
    let new_pid = lk.adopt_successor().await;
    assert_ne!(new_pid, old_pid);

    let c2 = Client::h1(new_port);
    wait_served_by(&c2, "a.test", "two").await;
    wait_served_by(&c, "a.test", "two").await;
    keep_alive.wait_more(20).await;
    fresh.wait_more(20).await;
    let status = lk.status().await;
    assert!(!status.restart_pending, "{status:#?}");

    assert_no_failures(&[keep_alive.stop().await, fresh.stop().await]);
}

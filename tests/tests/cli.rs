//! The command line and the process: `-t`, `--log`, `-d`, signals, `-u`.

use louailink_tests::{free_port, wait_until, Backend, Client, Louailink, OneRoute, WAIT};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn proxy_config(port: u16, backend: &Backend) -> String {
    OneRoute {
        port,
        upstream: &format!("addrs = [\"{}\"]", backend.addr()),
        ..Default::default()
    }
    .toml()
}

fn refuses(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[tokio::test]
async fn test_flag_accepts_a_valid_config_without_serving() {
    let b = Backend::start("b");
    let port = free_port();
    let out = Louailink::check(&proxy_config(port, &b));
    assert!(out.ok(), "{out:#?}");
    assert!(out.stdout.contains("config ok"), "stdout: {}", out.stdout);
    assert!(refuses(port), "-t must not start serving");
}

#[tokio::test]
async fn log_flag_sends_the_logs_to_the_file_instead_of_stderr() {
    let b = Backend::start("b");
    let lk = Louailink::start(&proxy_config(free_port(), &b)).await;
    wait_until("something in the --log file", WAIT, || async {
        (!lk.log().trim().is_empty()).then_some(())
    })
    .await;
    assert!(
        !lk.stderr().contains("INFO"),
        "logs on stderr despite --log: {}",
        lk.stderr()
    );
}

#[tokio::test]
async fn daemon_writes_its_pid_file_and_serves() {
    let b = Backend::start("b");
    let port = free_port();
    // start_daemon waits for the launcher to exit 0 and reads the pid file.
    let mut lk = Louailink::builder()
        .toml(&proxy_config(port, &b))
        .start_daemon()
        .await;
    Client::h1(port).get("d.test", "/").await.expect_status(200);
    // The pid in the pid file is the process that serves: stopping it stops the service.
    lk.signal(libc::SIGTERM);
    lk.wait_exit(WAIT).await;
    assert!(!lk.is_running(), "daemon still running after SIGTERM");
    assert!(
        refuses(port),
        "something still serves after the pid-file process stopped"
    );
}

#[tokio::test]
async fn sigterm_stops_the_process() {
    let b = Backend::start("b");
    let port = free_port();
    let mut lk = Louailink::start(&proxy_config(port, &b)).await;
    lk.signal(libc::SIGTERM);
    assert!(
        lk.wait_exit(WAIT).await.is_some(),
        "still running after SIGTERM"
    );
    assert!(refuses(port));
}

#[tokio::test]
async fn sigquit_lets_in_flight_requests_finish() {
    let b = Backend::start("b");
    let port = free_port();
    let config = proxy_config(port, &b)
        + "[basic]\ngrace_period = \"2s\"\ngraceful_shutdown_timeout = \"2s\"\n";
    let mut lk = Louailink::start(&config).await;
    let c = Client::h1(port);
    let in_flight = tokio::spawn(async move { c.get("q.test", "/slow?delay_ms=1000").await });
    wait_until("the request to reach the backend", WAIT, || async {
        (b.in_flight() == 1).then_some(())
    })
    .await;
    lk.signal(libc::SIGQUIT);
    let reply = in_flight.await.unwrap();
    assert_eq!(
        reply.status, 200,
        "in-flight request cut by SIGQUIT: {}",
        reply.body
    );
    let status = lk.wait_exit(WAIT).await;
    assert!(
        status.is_some(),
        "still running after SIGQUIT and the grace period"
    );
}

#[tokio::test]
async fn upgrade_takes_over_the_sockets_without_failed_requests() {
    let state = tempfile::tempdir().unwrap();
    let d = state.path().display();
    let port = free_port();
    let config = |answer: &str| {
        OneRoute {
            port,
            location: "plugins = [\"m\"]",
            extra: &format!(
                "[plugins.m]\ncategory = \"mock\"\ndata = \"{answer}\"\n\n[basic]\n\
                 pid_file = \"{d}/louailink.pid\"\nupgrade_sock = \"{d}/upgrade.sock\"\n\
                 grace_period = \"2s\"\ngraceful_shutdown_timeout = \"2s\"\n"
            ),
            ..Default::default()
        }
        .toml()
    };
    let mut old = Louailink::start(&config("old")).await;
    let c = Client::h1(port);
    assert_eq!(c.get("u.test", "/").await.body, "old");

    // Load during the whole upgrade: every request must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, sent) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let c = Client::h1(port); // fresh connections reach whichever process accepts
                match Client::try_send(c.request(reqwest::Method::GET, "u.test", "/")).await {
                    Ok(r) if r.status == 200 => {}
                    other => failures.push(format!("{other:?}")),
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };

    let new = Louailink::builder()
        .toml(&config("new"))
        .listen_ports(&[port])
        .start_upgrade()
        .await;
    old.hand_over(&state.path().join("upgrade.sock")).await;
    wait_until("the new process to answer", WAIT, || async {
        (Client::h1(port).get("u.test", "/").await.body == "new").then_some(())
    })
    .await;
    assert!(
        old.wait_exit(WAIT).await.is_some(),
        "the old process did not exit after SIGQUIT"
    );
    Client::h1(port).get("u.test", "/").await.expect_status(200);

    stop.store(true, Ordering::SeqCst);
    let failures = load.await.unwrap();
    assert!(sent.load(Ordering::SeqCst) > 0, "no load was sent");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        sent.load(Ordering::SeqCst)
    );
    drop(new);
}

#[test]
fn shipped_example_configs_validate() {
    let conf = louailink_tests::workspace_root().join("conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&conf).expect("conf/ exists") {
        let path = entry.unwrap().path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("toml" | "yaml" | "yml" | "json")
        ) {
            let out = Louailink::check_path(&path);
            assert!(out.ok(), "{}: {out:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 0, "no example config in {}", conf.display());
}

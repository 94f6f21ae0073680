//! Zero-downtime upgrade (`-u` + SIGQUIT) under keep-alive HTTP/1.1 and HTTP/2 load, with a
//! long streamed response in flight on the old process (quality.md, "Reliability").
//! `cli.rs` covers the upgrade under fresh-connection load; this adds kept-alive
//! connections, h2c and a stream that must finish on the old process within `grace_period`.

use louailink_tests::{
    assert_no_failures, free_port, wait_until, Backend, Client, Load, Louailink, SseStream, WAIT,
};
use std::time::{Duration, Instant};

/// The old and new processes' config: the same listener, pid file and upgrade socket (in
/// `dir`); responses say which process served them (`x-proc`).
fn config(port: u16, backend: &Backend, dir: &std::path::Path, proc: &str) -> String {
    let d = dir.display();
    format!(
        "[upstreams.up]\naddrs = [\"{}\"]\n\n\
         [locations.loc]\nupstream = \"up\"\nresponse_headers = [\"x-proc: {proc}\"]\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nenabled_h2 = true\nlocations = [\"loc\"]\n\n\
         [basic]\nthreads = 2\npid_file = \"{d}/louailink.pid\"\nupgrade_sock = \"{d}/upgrade.sock\"\n\
         grace_period = \"{GRACE_SECS}s\"\ngraceful_shutdown_timeout = \"1s\"\n",
        backend.addr()
    )
}

/// Long enough for the stream part of the test to finish on a loaded machine (4 s was not, once,
/// with four builds running beside it).
const GRACE_SECS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_under_keep_alive_and_h2_load_lets_a_long_stream_finish_on_the_old_process() {
    let b = Backend::start("b");
    let shared = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut old = Louailink::start(&config(port, &b, shared.path(), "old")).await;
    let (h1, h2) = (Client::h1(port), Client::h2c(port));
    let h1_load = Load::busy_keep_alive("busy HTTP/1.1 keep-alive", &h1, 4, "u.test", "/");
    let h2_load = Load::keep_alive("h2c", &h2, "u.test", "/");
    h1_load.wait_more(20).await;
    h2_load.wait_more(20).await;

    // A long stream on the old process: it sends its chunks only when released.
    const CHUNKS: usize = 5;
    let path = format!("/gated?chunks={CHUNKS}");
    let mut stream = SseStream::open("stream", &h1.clone_fresh(), "u.test", &path).await;
    assert_eq!(stream.header("x-proc"), Some("old"));
    stream.read_chunk(0).await;

    // The upgrade.
    let new = Louailink::builder()
        .toml(&config(port, &b, shared.path(), "new"))
        .listen_ports(&[port])
        .start_upgrade()
        .await;
    old.hand_over(&shared.path().join("upgrade.sock")).await;
    let quit = Instant::now();
    wait_until("the new process to answer", WAIT, || async {
        let r = h1.clone_fresh().get("u.test", "/").await;
        (r.header("x-proc") == Some("new")).then_some(())
    })
    .await;

    // The stream goes on on the old process, well within the grace period.
    for i in 1..CHUNKS {
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.release_chunk();
        stream.read_chunk(i).await;
    }
    stream.finish(CHUNKS).await;
    assert!(
        quit.elapsed() < Duration::from_secs(GRACE_SECS),
        "the test itself took longer than the grace period ({:?})",
        quit.elapsed()
    );

    // Load kept flowing through the switch and on the new process.
    h1_load.wait_more(20).await;
    h2_load.wait_more(20).await;
    assert!(
        old.wait_exit(WAIT).await.is_some(),
        "the old process did not exit after its grace period"
    );
    h1_load.wait_more(20).await;
    h2_load.wait_more(20).await;
    assert_no_failures(&[h1_load.stop().await, h2_load.stop().await]);
    let r = h1.clone_fresh().get("u.test", "/").await;
    assert_eq!(r.header("x-proc"), Some("new"));
    drop(new);
}

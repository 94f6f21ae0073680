//! Config swaps under load (quality.md, "Reliability"): while `--autoreload` applies edit
//! after edit, keep-alive HTTP/1.1 and HTTP/2 (h2c) loops see no failed request, and streamed
//! (SSE) responses that started before the first swap run through all of them, uncut.
//!
//! The streams use the backends' `/gated` endpoint: chunk *i* is sent only after swap *i* is
//! applied, so each stream provably spans every swap (no timing involved).

use louailink_tests::{
    assert_no_failures, free_port, wait_until, Backend, Client, Load, Louailink, SseStream, WAIT,
};

const SWAPS: usize = 6;

/// Two backends; an upstream alternates between the first alone and both.
type Pair = [Backend; 2];

fn pair(name: &str) -> Pair {
    [
        Backend::start(&format!("{name}1")),
        Backend::start(&format!("{name}2")),
    ]
}

/// Generation `g` of the config. Every generation changes the locations (an `x-gen`
/// response header) and every upstream's definition (its backends alternate), so each swap
/// replaces what the in-flight streams were routed with. Each stream has its own upstream
/// (so its own gate).
fn config(port: u16, g: usize, [plain, h1s, h2s]: &[Pair; 3]) -> String {
    let addrs = |b: &Pair| match g % 2 {
        1 => format!("[\"{}\"]", b[0].addr()),
        _ => format!("[\"{}\", \"{}\"]", b[0].addr(), b[1].addr()),
    };
    let location = |name: &str, path: &str| {
        format!(
            "[locations.{name}]\nupstream = \"{name}\"\npath = \"{path}\"\n\
             response_headers = [\"x-gen: {g}\"]\n\n"
        )
    };
    format!(
        "[upstreams.plain]\naddrs = {}\n\n[upstreams.h1s]\naddrs = {}\n\n\
         [upstreams.h2s]\naddrs = {}\n\n{}{}{}\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nenabled_h2 = true\n\
         locations = [\"plain\", \"h1s\", \"h2s\"]\n\n[basic]\nthreads = 2\n",
        addrs(plain),
        addrs(h1s),
        addrs(h2s),
        location("plain", "/"),
        location("h1s", "/gated-h1"),
        location("h2s", "/gated-h2"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_under_load_fail_no_request_and_cut_no_stream() {
    let b = [pair("plain"), pair("h1s"), pair("h2s")];
    let [plain, h1s, h2s] = &b;
    let port = free_port();
    let lk = Louailink::builder()
        .toml(&config(port, 1, &b))
        .arg("--autoreload")
        .start()
        .await;
    let (h1, h2) = (Client::h1(port), Client::h2c(port));

    let h1_load = Load::keep_alive("HTTP/1.1 keep-alive", &h1, "l.test", "/");
    let h2_load = Load::keep_alive("h2c", &h2, "l.test", "/");
    // Both streams start on generation 1 (each upstream: its first backend alone).
    let chunks = SWAPS + 2;
    let h1_path = format!("/gated-h1?chunks={chunks}");
    let mut h1_stream = SseStream::open("HTTP/1.1 stream", &h1, "s.test", &h1_path).await;
    let h2_path = format!("/gated-h2?chunks={chunks}");
    let mut h2_stream = SseStream::open("h2c stream", &h2, "s.test", &h2_path).await;
    assert_eq!(h2_stream.version(), http::Version::HTTP_2);
    assert_eq!(h1_stream.header("x-gen"), Some("1"));
    h1_stream.read_chunk(0).await;
    h2_stream.read_chunk(0).await;

    for g in 2..=SWAPS + 1 {
        lk.write_config(&config(port, g, &b));
        let gen = g.to_string();
        wait_until(&format!("generation {g} to serve"), WAIT, || async {
            let r = h1.get("l.test", "/").await;
            (r.header("x-gen") == Some(gen.as_str())).then_some(())
        })
        .await;
        h1_load.wait_more(10).await;
        h2_load.wait_more(10).await;
        // The next chunk of each stream, sent after this swap.
        h1s[0].release_chunk();
        h2s[0].release_chunk();
        h1_stream.read_chunk(g - 1).await;
        h2_stream.read_chunk(g - 1).await;
    }
    // The last chunk of each, then a clean end.
    h1s[0].release_chunk();
    h2s[0].release_chunk();
    h1_stream.finish(chunks).await;
    h2_stream.finish(chunks).await;

    assert_no_failures(&[h1_load.stop().await, h2_load.stop().await]);
    // New requests followed the swaps (both plain backends served), the streams stayed put.
    assert!(plain[0].hits() > 0 && plain[1].hits() > 0);
    assert_eq!((h1s[0].hits(), h2s[0].hits()), (1, 1));
}

//! Single-node notification events (controlplane.md, "Notification events": "In single-node
//! mode (no control plane), the data plane sends its own events the same way"): a local
//! webhook receiver gets `diff_config` after a file edit (secrets hashed), `config_rejected`
//! for an invalid edit, `restart_pending` for a listener change, and `backend_unhealthy` /
//! `backend_healthy` once per health transition.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use louailink_tests::{free_port, wait_until, Backend, Client, Louailink, WAIT};
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// Logged once the config watcher runs.
const WATCHING: &str = "watching the config for changes";

/// A webhook receiver on loopback: every POSTed JSON body, in order.
struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let value = body
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or(Value::Null);
                        let _ = tx.send(value);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            rx,
            seen: Vec::new(),
            task,
        }
    }

    /// The next event named `name` (others are kept in `seen`), within [`WAIT`].
    async fn next_named(&mut self, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let event = match got {
                Ok(Some(v)) => v,
                _ => panic!(
                    "no {name:?} event within {WAIT:?}; received: {:#?}",
                    self.seen
                ),
            };
            self.seen.push(event.clone());
            if event["name"] == name {
                return event;
            }
        }
    }

    /// Everything received so far, after a short quiet time.
    async fn drain(&mut self, quiet: Duration) -> &[Value] {
        while let Ok(Some(v)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            self.seen.push(v);
        }
        &self.seen
    }

    fn count(&self, name: &str) -> usize {
        self.seen.iter().filter(|e| e["name"] == name).count()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `[basic]` with a webhook (the harness adds its own keys to this table).
fn basic(url: &str, token: &str, notifications: &[&str]) -> String {
    let names: Vec<String> = notifications.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "[basic]\nwebhook = {{ url = \"{url}/hook?token={token}\", type = \"json\", \
         notifications = [{}] }}\n",
        names.join(", ")
    )
}

fn config(port: u16, backends: &[Backend; 2], upstream: &str, basic: &str, extra: &str) -> String {
    format!(
        "{basic}\n[upstreams.one]\naddrs = [\"{}\"]\n\n[upstreams.two]\naddrs = [\"{}\"]\n\n\
         [locations.loc]\nupstream = \"{upstream}\"\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n\n{extra}\n",
        backends[0].addr(),
        backends[1].addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_send_diff_config_rejections_and_restart_pending() {
    let mut rx = Receiver::start().await;
    let b = [Backend::start("one"), Backend::start("two")];
    let (port, new_port) = (free_port(), free_port());
    let names = ["diff_config", "config_rejected", "restart_pending"];
    let lk = Louailink::builder()
        .toml(&config(
            port,
            &b,
            "one",
            &basic(&rx.url, "hook-secret-1", &names),
            "",
        ))
        .arg("--autoreload")
        .start()
        .await;
    // The watcher starts just after the listeners: edits before it are not seen.
    lk.wait_for_log_line(WATCHING).await;
    let c = Client::h1(port);
    assert_eq!(c.get("a.test", "/").await.backend(), "one");

    // A location change and a new webhook token in one edit.
    lk.write_config(&config(
        port,
        &b,
        "two",
        &basic(&rx.url, "hook-secret-2", &names),
        "",
    ));
    let diff = rx.next_named("diff_config").await;
    let message = diff["message"].as_str().expect("a message");
    assert!(
        message.contains("~ locations.loc") && message.contains("upstream: \"one\" -> \"two\""),
        "{message}"
    );
    assert!(message.contains("~ basic"), "{message}");
    assert!(
        !diff.to_string().contains("hook-secret"),
        "the webhook URL leaked: {diff}"
    );
    let items: Vec<&str> = diff["details"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["item"].as_str())
        .collect();
    assert_eq!(items, ["basic", "locations.loc"], "{diff}");
    assert!(!diff["node"].as_str().unwrap_or("").is_empty(), "{diff}");
    assert_eq!(c.get("a.test", "/").await.backend(), "two");

    // An edit that does not parse is rejected, with its errors.
    lk.write_config_raw("[locations.loc\nupstream = \"one\"\n");
    let rejected = rx.next_named("config_rejected").await;
    let errors = rejected["details"]["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{rejected}");
    assert_eq!(c.get("a.test", "/").await.backend(), "two");

    // A new listener waits for a restart.
    let second =
        format!("[servers.second]\naddr = \"127.0.0.1:{new_port}\"\nlocations = [\"loc\"]\n");
    lk.write_config(&config(
        port,
        &b,
        "two",
        &basic(&rx.url, "hook-secret-2", &names),
        &second,
    ));
    let pending = rx.next_named("restart_pending").await;
    assert_eq!(pending["details"]["servers"][0], "second", "{pending}");
    assert!(
        rx.count("diff_config") >= 2,
        "the listener edit's diff_config: {:#?}",
        rx.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_sends_one_event_per_transition() {
    let mut rx = Receiver::start().await;
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let port = free_port();
    let text = format!(
        "{}\n[upstreams.u]\naddrs = [\"{}\", \"{}\"]\n\
         health_check = \"http://up.test/healthz?interval=200ms&timeout=1s\"\n\n\
         [locations.loc]\nupstream = \"u\"\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"loc\"]\n",
        basic(
            &rx.url,
            "t",
            &["backend_unhealthy", "backend_healthy", "config_rejected"]
        ),
        a.addr(),
        b.addr()
    );
    let _lk = Louailink::builder().toml(&text).start().await;
    let c = Client::h1(port);
    wait_until("the checks to probe b", WAIT, || async {
        (b.health_hits() > 0).then_some(())
    })
    .await;

    b.set_healthy(false);
    let down = rx.next_named("backend_unhealthy").await;
    assert_eq!(down["details"]["upstream"], "u", "{down}");
    assert_eq!(down["details"]["backend"], b.addr().as_str(), "{down}");
    assert!(
        down["message"].as_str().unwrap_or("").contains(&b.addr()),
        "{down}"
    );
    for _ in 0..5 {
        assert_eq!(c.get("h.test", "/").await.backend(), "a");
    }
    // Several more failed checks: still one event.
    let probes = b.health_hits();
    wait_until("more failed probes", WAIT, || async {
        (b.health_hits() >= probes + 3).then_some(())
    })
    .await;

    b.set_healthy(true);
    let up = rx.next_named("backend_healthy").await;
    assert_eq!(up["details"]["backend"], b.addr().as_str(), "{up}");
    let seen = rx.drain(Duration::from_millis(800)).await;
    let unhealthy = seen
        .iter()
        .filter(|e| e["name"] == "backend_unhealthy")
        .count();
    assert_eq!(unhealthy, 1, "one event per transition: {seen:#?}");
    assert_eq!(rx.count("backend_healthy"), 1, "{:#?}", rx.seen);
    assert!(
        rx.seen
            .iter()
            .all(|e| e["details"]["backend"] == b.addr().as_str()),
        "only b changed: {:#?}",
        rx.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_upgrade_for_a_listener_change_sends_restart() {
    let mut rx = Receiver::start().await;
    let b = [Backend::start("one"), Backend::start("two")];
    let (port, new_port) = (free_port(), free_port());
    let names = ["diff_config", "restart"];
    let hook = basic(&rx.url, "t", &names);
    let mut lk = Louailink::builder()
        .toml(&config(port, &b, "one", &hook, ""))
        .arg("-a")
        .start()
        .await;
    lk.wait_for_log_line(WATCHING).await;
    let second =
        format!("[servers.second]\naddr = \"127.0.0.1:{new_port}\"\nlocations = [\"loc\"]\n");
    lk.write_config(&config(port, &b, "two", &hook, &second));
    let restart = rx.next_named("restart").await;
    assert_eq!(restart["details"]["servers"][0], "second", "{restart}");
    assert_eq!(rx.count("diff_config"), 1, "{:#?}", rx.seen);
    lk.adopt_successor().await;
    assert_eq!(
        Client::h1(new_port).get("a.test", "/").await.backend(),
        "two"
    );
}

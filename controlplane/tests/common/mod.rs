//! Harness for the control plane's end-to-end tests: the real `louailink-control` binary
//! (started on free loopback ports, stopped by PID on drop), a real etcd (the testkit's),
//! an HTTP client, a gRPC client and a local webhook receiver.
#![allow(dead_code)]

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use louailink_testkit::{etcd, eventually, init, WAIT as LIMIT};

use louailink_control::pb::control_client::ControlClient;
use louailink_testkit::{free_port, Etcd};
use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The admin token of [`Control::with_tokens`].
pub const ADMIN: &str = "admin-token-4f1c9e";
/// The viewer token of [`Control::with_tokens`].
pub const VIEWER: &str = "viewer-token-8a2d77";

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_louailink-control"))
}

/// A running `louailink-control`.
pub struct Control {
    child: Option<Child>,
    /// REST port.
    pub http: u16,
    /// gRPC port.
    pub grpc: u16,
    dir: tempfile::TempDir,
    /// Admin token, if any.
    pub token: Option<String>,
    stderr: String,
}

impl Control {
    /// On etcd, no token (loopback only).
    pub fn start(etcd: &Etcd) -> Control {
        Self::spawn(&etcd_args(etcd), &[], None, &[])
    }

    /// On etcd, with admin and viewer tokens.
    pub fn with_tokens(etcd: &Etcd) -> Control {
        Self::spawn(
            &etcd_args(etcd),
            &["--token", ADMIN, "--viewer-token", VIEWER],
            Some(ADMIN),
            &[],
        )
    }

    /// On a directory.
    pub fn on_dir(dir: &Path) -> Control {
        Self::spawn(
            &["--storage".into(), dir.display().to_string()],
            &[],
            None,
            &[],
        )
    }

    /// Any arguments and environment.
    pub fn spawn(
        store: &[String],
        extra: &[&str],
        token: Option<&str>,
        env: &[(&str, &str)],
    ) -> Control {
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let (http, grpc) = (free_port(), free_port());
            let log = dir.path().join("control.log");
            let mut cmd = Command::new(bin());
            cmd.args([
                "--http",
                &format!("127.0.0.1:{http}"),
                "--grpc",
                &format!("127.0.0.1:{grpc}"),
            ])
            .args(store)
            .args(["--poll", "200ms", "--log"])
            .arg(&log)
            .args(extra)
            .env_remove("LOUAILINK_TOKEN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("spawn louailink-control");
            let mut control = Control {
                child: Some(child),
                http,
                grpc,
                dir,
                token: token.map(String::from),
                stderr: String::new(),
            };
            if control.wait_ready() {
                return control;
            }
            let log = control.log();
            control.stop();
            if !log.contains("Address already in use") {
                panic!(
                    "louailink-control did not start; log:\n{log}\nstderr:\n{}",
                    control.stderr
                );
            }
        }
        panic!("louailink-control did not start (ports taken 3 times)");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    if let Some(mut err) = child.stderr.take() {
                        let mut text = String::new();
                        let _ = err.read_to_string(&mut text);
                        self.stderr = text;
                    }
                    return false;
                }
            }
            let http = std::net::TcpStream::connect(("127.0.0.1", self.http)).is_ok();
            let grpc = std::net::TcpStream::connect(("127.0.0.1", self.grpc)).is_ok();
            if http && grpc {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// A REST call with the admin token (if any).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        call(&self.url(path), method, self.token.as_deref(), body, &[]).await
    }

    /// A connected gRPC client.
    pub async fn grpc(&self) -> ControlClient<tonic::transport::Channel> {
        ControlClient::connect(format!("http://127.0.0.1:{}", self.grpc))
            .await
            .expect("gRPC connect")
    }

    /// Kills the process (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `--etcd etcd://<endpoint>/louailink`.
pub fn etcd_args(etcd: &Etcd) -> Vec<String> {
    vec![
        "--etcd".into(),
        format!("etcd://{}/louailink", etcd.endpoint()),
    ]
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `ETag`, without quotes.
    pub etag: Option<String>,
    /// JSON body (`Value::String` of the text when not JSON).
    pub body: Value,
}

impl Reply {
    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One REST call; `body` is sent as JSON (a `Value::String` is sent as raw text).
pub async fn call(
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    init();
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = client.request(method, url).timeout(LIMIT);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    match body {
        Some(Value::String(text)) => r = r.body(text),
        Some(v) => {
            r = r
                .header("content-type", "application/json")
                .body(v.to_string())
        }
        None => {}
    }
    let resp = r.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_string());
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, etag, body }
}

/// The events named `name` so far.
pub async fn events_named(control: &Control, name: &str) -> Vec<Value> {
    let r = control.call("GET", "/api/v1/events?limit=1000", None).await;
    r.body["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["name"] == name).cloned().collect())
        .unwrap_or_default()
}

/// A local webhook receiver: records every request body; the first `fail_first` requests
/// are answered 500.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Requests seen (including failed ones).
    pub hits: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver.
    pub async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::unbounded_channel();
        let hits = Arc::new(Mutex::new(0usize));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut sock).await else {
                        return;
                    };
                    let n = {
                        let mut h = counter.lock().unwrap_or_else(|p| p.into_inner());
                        *h += 1;
                        *h
                    };
                    let status = if n <= fail_first {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    if n > fail_first {
                        let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    }
                });
            }
        });
        Receiver {
            url,
            rx,
            hits,
            task,
        }
    }

    /// The next accepted body, within [`LIMIT`].
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(LIMIT, self.rx.recv())
            .await
            .expect("a webhook within the limit")
            .expect("receiver open")
    }

    /// The next body whose `pred` holds (others are skipped).
    pub async fn next_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[header_end..header_end + length].to_vec())
}

/// Upstream `u`, location `a` on it, server `s` serving `a`, as REST bodies.
pub async fn put_base(control: &Control) {
    for (path, body) in [
        (
            "/api/v1/upstreams/u",
            serde_json::json!({"addrs": ["127.0.0.1:9"]}),
        ),
        (
            "/api/v1/locations/a",
            serde_json::json!({"path": "/a", "upstream": "u"}),
        ),
        (
            "/api/v1/servers/s",
            serde_json::json!({"addr": "127.0.0.1:18080", "locations": ["a"]}),
        ),
    ] {
        let r = control.call("PUT", path, Some(body)).await;
        assert!(r.status == 201 || r.status == 200, "PUT {path}: {r:?}");
    }
}

/// `meta/generation` as etcdctl shows it ("" when absent).
pub fn generation(etcd: &Etcd) -> String {
    etcd.etcdctl(&["get", "--print-value-only", "/louailink/meta/generation"])
        .trim()
        .to_string()
}

/// Every key under the prefix (etcdctl).
pub fn keys(etcd: &Etcd) -> Vec<String> {
    etcd.etcdctl(&["get", "--prefix", "--keys-only", "/louailink/"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

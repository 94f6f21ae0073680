//! A real etcd for tests (Debian's `etcd-server`): started on free loopback ports with a
//! temporary data directory, waited on until healthy, stopped and restarted by PID (also
//! stopped on drop), optionally with TLS (server and client certificates from a throw-away
//! CA), and driven with the real `etcdctl` the way an operator would (put, delete, txn,
//! compact, revision, users and roles through [`Etcd::etcdctl`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to become healthy.
const START_LIMIT: Duration = Duration::from_secs(30);

/// TLS material for an etcd started with `--client-cert-auth` ([`Etcd::start_tls`]).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// CA certificate (PEM file).
    pub ca: PathBuf,
    /// Client certificate (PEM file).
    pub client_cert: PathBuf,
    /// Client key (PEM file).
    pub client_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// One operation of a transaction ([`Etcd::txn`]).
#[derive(Clone, Debug)]
pub enum TxnOp {
    /// Put `key` = `value`.
    Put(String, String),
    /// Delete `key`.
    Delete(String),
}

/// One etcd process.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<EtcdTls>,
    /// `--max-request-bytes`, when not etcd's default (1.5 MiB).
    max_request_bytes: Option<usize>,
    /// Holds the TLS files for as long as the process lives.
    _tls_dir: Option<tempfile::TempDir>,
}

fn require_binaries() {
    for bin in ["etcd", "etcdctl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{bin}` is missing: apt-get update && apt-get install -y etcd-server etcd-client"
        );
    }
}

impl Etcd {
    /// Starts a plain (http) etcd and waits until it is healthy.
    pub fn start() -> Etcd {
        Self::start_with(false, None)
    }

    /// Starts an etcd that requires TLS with client certificates.
    pub fn start_tls() -> Etcd {
        Self::start_with(true, None)
    }

    /// Starts a plain etcd that takes requests (hence values) up to `bytes`.
    pub fn start_with_max_request_bytes(bytes: usize) -> Etcd {
        Self::start_with(false, Some(bytes))
    }

    fn start_with(tls: bool, max_request_bytes: Option<usize>) -> Etcd {
        require_binaries();
        let mut tls_dir = tls.then(|| tempfile::tempdir().expect("temp dir"));
        let tls = tls_dir.as_ref().map(|d| make_tls(d.path()));
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut etcd = Etcd {
                child: None,
                dir: tempfile::Builder::new()
                    .prefix("louailink-etcd-")
                    .tempdir()
                    .expect("temp dir"),
                client_port: crate::free_port(),
                peer_port: crate::free_port(),
                tls: tls.clone(),
                max_request_bytes,
                _tls_dir: None,
            };
            etcd.spawn();
            if etcd.wait_healthy() {
                etcd._tls_dir = tls_dir.take();
                return etcd;
            }
            last_log = etcd.log();
            etcd.stop();
        }
        panic!("etcd did not become healthy (3 attempts); last log:\n{last_log}");
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let client = format!("{}://127.0.0.1:{}", self.scheme(), self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let log2 = log.try_clone().expect("etcd log file");
        let mut cmd = Command::new("etcd");
        cmd.arg("--name=default")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(bytes) = self.max_request_bytes {
            cmd.arg(format!("--max-request-bytes={bytes}"));
        }
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        self.child = Some(cmd.spawn().expect("spawn etcd"));
    }

    /// Polls until etcd answers a health check, or the process dies, or the limit passes.
    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            if self.healthy() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn healthy(&self) -> bool {
        if self.tls.is_some() {
            return self.run(&["endpoint", "health"], None).is_ok();
        }
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// `127.0.0.1:<port>` of the client API.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The TLS files, for an etcd started with [`Etcd::start_tls`].
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    /// The PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data directory and waits until healthy.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            self.spawn();
            if self.wait_healthy() {
                return;
            }
            self.stop();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("etcd did not come back; log:\n{}", self.log());
    }

    /// Runs `etcdctl <args>` (with `stdin` piped in, if any): its stdout, or stdout and
    /// stderr when it fails.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!(
                "--endpoints={}://{}",
                self.scheme(),
                self.endpoint()
            ))
            .arg("--command-timeout=5s");
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.client_cert.display()))
                .arg(format!("--key={}", tls.client_key.display()));
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn etcdctl: {e}"))?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("etcdctl stdin");
            pipe.write_all(text.as_bytes())
                .map_err(|e| format!("write to etcdctl: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("wait for etcdctl: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr).into_owned()
            ))
        }
    }

    /// Runs `etcdctl <args>` against this etcd; panics (with its output) if it fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.run(args, None)
            .unwrap_or_else(|e| panic!("etcdctl {args:?} failed: {e}"))
    }

    /// Runs `etcdctl -w json <args>` and returns the revision in the answer's header.
    fn revision_of(&self, args: &[&str], stdin: Option<&str>) -> i64 {
        let mut all = vec!["-w", "json"];
        all.extend_from_slice(args);
        let out = self
            .run(&all, stdin)
            .unwrap_or_else(|e| panic!("etcdctl {args:?} failed: {e}"));
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: not JSON ({e}): {out}"));
        v["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("etcdctl {args:?}: no header.revision in {out}"))
    }

    /// `etcdctl put <key> <value>`; returns the revision of the write.
    pub fn put(&self, key: &str, value: &str) -> i64 {
        self.revision_of(&["put", "--", key, value], None)
    }

    /// `etcdctl del <key>`; returns the revision after it.
    pub fn del(&self, key: &str) -> i64 {
        self.revision_of(&["del", "--", key], None)
    }

    /// `etcdctl del --prefix <prefix>`; returns the revision after it.
    pub fn del_prefix(&self, prefix: &str) -> i64 {
        self.revision_of(&["del", "--prefix", "--", prefix], None)
    }

    /// `etcdctl get <key>`: the value, `None` when absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl(&["get", "--print-value-only", "--", key]);
        let value = out.strip_suffix('\n').unwrap_or(&out);
        (!out.is_empty()).then(|| value.to_string())
    }

    /// `etcdctl txn` with no conditions: every op is applied in one revision, which is
    /// returned.
    pub fn txn(&self, ops: &[TxnOp]) -> i64 {
        // etcdctl's txn reads: compares, blank line, success ops, blank line, failure ops,
        // blank line. A double-quoted argument is read as a Go string literal, which a JSON
        // string literal is for our values.
        let quote = |s: &str| serde_json::to_string(s).expect("quote");
        let mut script = String::from("\n");
        for op in ops {
            match op {
                TxnOp::Put(k, v) => script.push_str(&format!("put {} {}\n", quote(k), quote(v))),
                TxnOp::Delete(k) => script.push_str(&format!("del {}\n", quote(k))),
            }
        }
        script.push_str("\n\n");
        self.revision_of(&["txn"], Some(&script))
    }

    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        self.revision_of(&["get", "--", "/louailink-tests-no-such-key"], None)
    }

    /// `etcdctl compact <revision>` (history before it is gone).
    pub fn compact(&self, revision: i64) {
        self.etcdctl(&["compact", &revision.to_string()]);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            eprintln!("=== etcd at test failure, last lines ===\n{tail}");
        }
        self.stop();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written to `dir`.
fn make_tls(dir: &Path) -> EtcdTls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let leaf = |names: &[&str]| {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf cert");
        (cert.pem(), key.serialize_pem())
    };
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write TLS file");
        path
    };
    let (server_pem, server_key) = leaf(&["127.0.0.1", "localhost"]);
    let (client_pem, client_key) = leaf(&["louailink-test-client"]);
    EtcdTls {
        ca: write("ca.pem", &ca.pem()),
        server_cert: write("server.pem", &server_pem),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client.key", &client_key),
    }
}

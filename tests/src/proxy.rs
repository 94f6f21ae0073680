//! The `louailink` process: config files in a temp dir, spawn, readiness, logs, signals, and
//! `-t` runs.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Output of a finished `louailink` run (`-t`, or a start that failed).
#[derive(Debug)]
pub struct CmdOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The `--log` file's content, if any.
    pub log: String,
}

impl CmdOutput {
    /// True for exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Everything printed or logged, for searching.
    pub fn all(&self) -> String {
        format!("{}\n{}\n{}", self.stdout, self.stderr, self.log)
    }

    /// Asserts that all of `needles` appear in the output.
    #[track_caller]
    pub fn assert_mentions(&self, needles: &[&str]) {
        let all = self.all();
        for n in needles {
            assert!(all.contains(n), "expected {n:?} in the output:\n{all}");
        }
    }
}

/// How the config is given to `-c`.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `-c <dir>/<the only file>`
    File,
    /// `-c <dir>/conf` holding every file
    Dir,
}

/// Configures a `louailink` run: config files (or another `-c` source such as `etcd://…`),
/// environment, extra arguments, an admin listener.
pub struct LouailinkBuilder {
    files: Vec<(String, String)>,
    layout: Layout,
    source: Option<String>,
    admin_port: Option<u16>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    ports: Option<Vec<u16>>,
    dir: TempDir,
}

impl LouailinkBuilder {
    fn new() -> Self {
        LouailinkBuilder {
            files: Vec::new(),
            layout: Layout::File,
            source: None,
            admin_port: None,
            env: Vec::new(),
            args: Vec::new(),
            ports: None,
            dir: tempfile::Builder::new()
                .prefix("louailink-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The temp dir this run uses (pid file, upgrade socket, log, config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a config file (`*.toml`, `*.yaml`/`*.yml` or `*.json`). One file is passed to `-c`
    /// as a file; several make a directory (see [`Self::as_dir`]).
    pub fn file(mut self, name: &str, content: &str) -> Self {
        self.files.push((name.to_string(), content.to_string()));
        if self.files.len() > 1 {
            self.layout = Layout::Dir;
        }
        self
    }

    /// A single TOML file `louailink.toml`.
    pub fn toml(self, content: &str) -> Self {
        self.file("louailink.toml", content)
    }

    /// Passes a directory to `-c` even for one file.
    pub fn as_dir(mut self) -> Self {
        self.layout = Layout::Dir;
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// The ports to wait for (default: every `servers.*.addr` port in the config files).
    pub fn listen_ports(mut self, ports: &[u16]) -> Self {
        self.ports = Some(ports.to_vec());
        self
    }

    /// Takes the config from `source` (e.g. `etcd://127.0.0.1:2379/prefix`) instead of files;
    /// the pid file and upgrade socket are then set with `--pid-file` / `--upgrade-sock` (in
    /// the temp dir).
    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// Opens the admin listener (`--admin 127.0.0.1:<free port>`, see [`Louailink::status`]);
    /// its port is waited on like the listen ports.
    pub fn admin(mut self) -> Self {
        self.admin_port = Some(crate::free_port());
        self
    }

    /// Where `-c` points: the file, the directory of files, or the [`Self::source`].
    pub fn config_path(&self) -> PathBuf {
        if let Some(source) = &self.source {
            return PathBuf::from(source);
        }
        match self.layout {
            Layout::File => self.dir.path().join(&self.files[0].0),
            Layout::Dir => self.dir.path().join("conf"),
        }
    }

    /// Writes the config files with the harness's `basic` settings (pid file, upgrade socket in
    /// the temp dir; 1 s grace period and shutdown timeout): appended as a block, or merged into
    /// a TOML file's own `[basic]` for keys it does not set.
    fn write_files(&self) {
        if self.source.is_some() {
            assert!(self.files.is_empty(), "config files and a source given");
            return;
        }
        assert!(!self.files.is_empty(), "no config given");
        let conf_dir = match self.layout {
            Layout::File => self.dir.path().to_path_buf(),
            Layout::Dir => self.dir.path().join("conf"),
        };
        std::fs::create_dir_all(&conf_dir).expect("config dir");
        let mut files = self.files.clone();
        let basic = harness_basic(self.dir.path());
        if let Some(f) = files.iter_mut().find(|(n, c)| has_basic(n, c)) {
            merge_basic(f, &basic);
        } else {
            match self.layout {
                Layout::File => append_basic(&mut files[0], &basic),
                Layout::Dir => {
                    let mut f = ("zz-harness-basic.toml".to_string(), String::new());
                    append_basic(&mut f, &basic);
                    files.push(f);
                }
            }
        }
        for (name, content) in &files {
            let path = conf_dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("config subdir");
            }
            std::fs::write(&path, content).expect("write config");
        }
    }

    fn listen_ports_of_config(&self) -> Vec<u16> {
        let mut ports = self.listen_ports_of_files();
        ports.extend(self.admin_port);
        ports
    }

    fn listen_ports_of_files(&self) -> Vec<u16> {
        if let Some(p) = &self.ports {
            return p.clone();
        }
        let mut ports = Vec::new();
        for (name, content) in &self.files {
            let Some(value) = parse_any(name, content) else {
                continue;
            };
            let Some(servers) = value.get("servers").and_then(|s| s.as_object()) else {
                continue;
            };
            for server in servers.values() {
                let addrs: Vec<String> = match server.get("addr") {
                    Some(serde_json::Value::String(s)) => {
                        s.split(',').map(str::to_string).collect()
                    }
                    Some(serde_json::Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                for a in addrs {
                    if let Some(p) = a.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
                        ports.push(p);
                    }
                }
            }
        }
        ports
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(crate::louailink_bin());
        cmd.arg("-c").arg(self.config_path()).args(extra);
        if self.source.is_some() {
            let d = self.dir.path().display();
            cmd.arg(format!("--pid-file={d}/louailink.pid"))
                .arg(format!("--upgrade-sock={d}/upgrade.sock"));
        }
        if let Some(port) = self.admin_port {
            cmd.arg(format!("--admin=127.0.0.1:{port}"));
        }
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .env("HOME", self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    fn out_files(&self) -> (File, File) {
        let out = File::create(self.dir.path().join("stdout.txt")).expect("stdout file");
        let err = File::create(self.dir.path().join("stderr.txt")).expect("stderr file");
        (out, err)
    }

    /// Runs `louailink -t -c <config>` and returns its output.
    pub fn check(self) -> CmdOutput {
        self.write_files();
        self.run_to_end(&["-t"], Duration::from_secs(30))
    }

    /// Runs `louailink -c <config> --log <log>` expecting it to exit on its own (an invalid
    /// config); panics if it is still running after a generous bound.
    pub fn run_expecting_exit(self) -> CmdOutput {
        self.write_files();
        let log = self.dir.path().join("louailink.log");
        let log = log.to_string_lossy().into_owned();
        self.run_to_end(&["--log", &log], Duration::from_secs(20))
    }

    fn run_to_end(&self, extra: &[&str], bound: Duration) -> CmdOutput {
        let (out, err) = self.out_files();
        let mut child = self
            .command(extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn louailink");
        let status = wait_child(&mut child, bound);
        if status.is_none() {
            kill_pid(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
        }
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        let out = CmdOutput {
            code: status.and_then(|s| s.code()),
            stdout: read("stdout.txt"),
            stderr: read("stderr.txt"),
            log: read("louailink.log"),
        };
        assert!(
            status.is_some(),
            "louailink did not exit within {bound:?}: {out:#?}"
        );
        out
    }

    /// Spawns `louailink -c <config> --log <tmp>/louailink.log` and waits until every listen
    /// port accepts TCP; panics with the log if the process exits or is not ready in time.
    pub async fn start(self) -> Louailink {
        self.start_with(&[]).await
    }

    /// Like [`Self::start`] with `-d`: waits for the launcher to exit and for the pid file;
    /// the handle then controls the daemon by the pid it wrote.
    pub async fn start_daemon(self) -> Louailink {
        self.start_with(&["-d"]).await
    }

    /// Like [`Self::start`] with `-u`: takes over the sockets of the instance whose
    /// `upgrade_sock` the config names (the old one must then be sent SIGQUIT).
    pub async fn start_upgrade(self) -> Louailink {
        self.start_with(&["-u"]).await
    }

    async fn start_with(self, extra: &[&str]) -> Louailink {
        self.write_files();
        let daemon = extra.contains(&"-d");
        let log_path = self.dir.path().join("louailink.log");
        let pid_path = self.dir.path().join("louailink.pid");
        let log_arg = log_path.to_string_lossy().into_owned();
        let mut args = extra.to_vec();
        args.extend(["--log", &log_arg]);
        let (out, err) = self.out_files();
        let child = self
            .command(&args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn louailink");
        let ports = self.listen_ports_of_config();
        let mut lk = Louailink {
            pid: child.id() as i32,
            child: Some(child),
            ports: ports.clone(),
            admin_port: self.admin_port,
            log_path,
            pid_path,
            config_path: self.config_path(),
            single_file: self.source.is_none() && self.layout == Layout::File,
            dir: self.dir,
        };
        if daemon {
            let status = lk.wait_exit(crate::WAIT).await;
            let launcher_ok = status.is_some_and(|s| s.success());
            lk.child = None;
            assert!(
                launcher_ok,
                "`louailink -d` did not exit 0 ({status:?}):\n{}",
                lk.diagnostics()
            );
            lk.pid = crate::wait_until("the daemon's pid file", crate::WAIT, || async {
                std::fs::read_to_string(&lk.pid_path)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
            })
            .await;
        }
        lk.wait_ready(&ports).await;
        lk
    }
}

/// The `basic` keys the harness sets in config files: pid file and upgrade socket in the temp
/// dir (so parallel tests never share them), 1 s grace period and shutdown timeout.
fn harness_basic(dir: &Path) -> [(&'static str, String); 4] {
    let d = dir.display();
    [
        ("pid_file", format!("{d}/louailink.pid")),
        ("upgrade_sock", format!("{d}/upgrade.sock")),
        ("grace_period", "1s".to_string()),
        ("graceful_shutdown_timeout", "1s".to_string()),
    ]
}

/// `content` as the harness writes it: with its `basic` keys merged in or appended.
fn with_harness_basic(dir: &Path, name: &str, content: &str) -> String {
    let mut file = (name.to_string(), content.to_string());
    let basic = harness_basic(dir);
    if has_basic(name, content) {
        merge_basic(&mut file, &basic);
    } else {
        append_basic(&mut file, &basic);
    }
    file.1
}

fn has_basic(name: &str, content: &str) -> bool {
    parse_any(name, content).is_some_and(|v| v.get("basic").is_some())
}

/// Parses a TOML/YAML/JSON config file into a JSON value (None when it does not parse).
fn parse_any(name: &str, content: &str) -> Option<serde_json::Value> {
    if name.ends_with(".json") {
        serde_json::from_str(content).ok()
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        serde_yaml::from_str(content).ok()
    } else {
        toml::from_str(content).ok()
    }
}

/// Adds the harness's keys that a TOML file's own `[basic]` lacks (lines after `[basic]` move;
/// YAML and JSON files are left as written).
fn merge_basic((name, content): &mut (String, String), basic: &[(&str, String)]) {
    if !name.ends_with(".toml") {
        return;
    }
    let Ok(mut doc) = content.parse::<toml_edit::DocumentMut>() else {
        return;
    };
    let Some(table) = doc.get_mut("basic").and_then(|b| b.as_table_mut()) else {
        return;
    };
    for (k, v) in basic {
        if !table.contains_key(k) {
            table.insert(k, toml_edit::value(v.as_str()));
        }
    }
    *content = doc.to_string();
}

/// Adds a `basic` block to a config file without moving any of its lines.
fn append_basic((name, content): &mut (String, String), basic: &[(&str, String)]) {
    if name.ends_with(".json") {
        let mut v: serde_json::Value = serde_json::from_str(content).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            let b: serde_json::Map<_, _> = basic
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into()))
                .collect();
            obj.insert("basic".into(), b.into());
            *content = serde_json::to_string_pretty(&v).expect("json");
        }
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        content.push_str("\nbasic:\n");
        for (k, v) in basic {
            content.push_str(&format!("  {k}: {v:?}\n"));
        }
    } else {
        content.push_str("\n[basic]\n");
        for (k, v) in basic {
            content.push_str(&format!("{k} = {v:?}\n"));
        }
    }
}

fn wait_child(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_pid(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: sending a signal to a process this test started, by its pid.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// A running `louailink` process. Dropping it sends SIGTERM, then SIGKILL after a short wait.
pub struct Louailink {
    pid: i32,
    child: Option<Child>,
    ports: Vec<u16>,
    admin_port: Option<u16>,
    log_path: PathBuf,
    pid_path: PathBuf,
    config_path: PathBuf,
    single_file: bool,
    dir: TempDir,
}

impl Louailink {
    /// A builder with a fresh temp dir.
    pub fn builder() -> LouailinkBuilder {
        LouailinkBuilder::new()
    }

    /// Starts with one TOML config file.
    pub async fn start(config: &str) -> Louailink {
        Self::builder().toml(config).start().await
    }

    /// Runs `louailink -t` on one TOML config file.
    pub fn check(config: &str) -> CmdOutput {
        Self::builder().toml(config).check()
    }

    /// Runs `louailink -t -c <path>` on an existing file or directory, as is.
    pub fn check_path(path: &Path) -> CmdOutput {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new(crate::louailink_bin())
            .arg("-t")
            .arg("-c")
            .arg(path)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run louailink -t");
        CmdOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            log: String::new(),
        }
    }

    /// The process id (the daemon's for `-d`).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The temp dir (pid file, upgrade socket, log, config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config path given to `-c` (the URL for an `etcd://` source).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Rewrites the single config file (as an operator's editor would: in place), keeping the
    /// harness's `basic` keys so that a process started from it (`-a`) still uses this
    /// instance's pid file and upgrade socket.
    pub fn write_config(&self, content: &str) {
        std::fs::write(&self.config_path, self.harness_text(content)).expect("rewrite config");
    }

    /// Rewrites the config in place as a slow writer would: the file is truncated, and only
    /// after `pause` written whole and closed.
    pub async fn write_config_slowly(&self, content: &str, pause: Duration) {
        let text = self.harness_text(content);
        let mut file = std::fs::File::create(&self.config_path).expect("truncate config");
        tokio::time::sleep(pause).await;
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write config");
    }

    /// `content` with the harness's `basic` keys.
    fn harness_text(&self, content: &str) -> String {
        assert!(self.single_file, "rewriting needs a single-file config");
        let name = self
            .config_path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("config file name");
        with_harness_basic(self.dir.path(), name, content)
    }

    /// Writes a config file as is, without the harness's `basic` keys (e.g. an invalid edit).
    pub fn write_config_raw(&self, content: &str) {
        assert!(
            self.single_file,
            "write_config_raw needs a single-file config"
        );
        std::fs::write(&self.config_path, content).expect("rewrite config");
    }

    /// The pid file path the harness configured.
    pub fn pid_file(&self) -> &Path {
        &self.pid_path
    }

    /// Current content of the `--log` file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- log ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.log(),
            read("stdout.txt"),
            read("stderr.txt")
        )
    }

    /// Waits (bounded) for a log line containing `needle`; returns that line.
    pub async fn wait_for_log_line(&self, needle: &str) -> String {
        let found = crate::wait_until_or_none(crate::WAIT, || async {
            self.log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
        .await;
        found
            .unwrap_or_else(|| panic!("no log line containing {needle:?}:\n{}", self.diagnostics()))
    }

    async fn wait_ready(&mut self, ports: &[u16]) {
        assert!(
            !ports.is_empty(),
            "no listen port found in the config; use listen_ports()"
        );
        let deadline = Instant::now() + crate::WAIT;
        for &port in ports {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                let exited = match &mut self.child {
                    Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
                    None => (!pid_alive(self.pid)).then(|| "daemon gone".to_string()),
                };
                if let Some(status) = exited {
                    panic!(
                        "louailink exited ({status}) before listening on {port}:\n{}",
                        self.diagnostics()
                    );
                }
                if Instant::now() >= deadline {
                    panic!(
                        "louailink not listening on {port} after {:?}:\n{}",
                        crate::WAIT,
                        self.diagnostics()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Sends a signal (`libc::SIGQUIT`, `libc::SIGTERM`, ...) to the process.
    pub fn signal(&self, signal: i32) {
        kill_pid(self.pid, signal);
    }

    /// Hands this (old) process's sockets over to a `-u` process: waits (bounded) until that
    /// one waits on `upgrade_sock`, then sends this one SIGQUIT.
    pub async fn hand_over(&self, upgrade_sock: &Path) {
        crate::wait_until(
            "the new process to wait on the upgrade socket",
            crate::WAIT,
            || async { upgrade_sock.exists().then_some(()) },
        )
        .await;
        self.signal(libc::SIGQUIT);
    }

    /// Waits (bounded) for the process to exit; its status when it was our child.
    pub async fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            match &mut self.child {
                Some(c) => {
                    if let Ok(Some(s)) = c.try_wait() {
                        return Some(s);
                    }
                }
                None => {
                    if !pid_alive(self.pid) {
                        return None;
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True while the process exists.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => pid_alive(self.pid),
        }
    }

    /// The ports this instance listens on.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The admin listener's port ([`LouailinkBuilder::admin`]).
    pub fn admin_port(&self) -> u16 {
        self.admin_port
            .expect("no admin listener: start with LouailinkBuilder::admin()")
    }

    /// `GET /_louailink/<what>` on the admin listener: status code and body.
    pub async fn admin_get(&self, what: &str) -> (u16, String) {
        let client = crate::Client::h1(self.admin_port());
        let req = client.request(
            reqwest::Method::GET,
            "127.0.0.1",
            &format!("/_louailink/{what}"),
        );
        match crate::Client::try_send(req).await {
            Ok(r) => (r.status, r.body),
            Err(e) => panic!("admin {what}: {e:?}\n{}", self.diagnostics()),
        }
    }

    /// The node's status (`GET /_louailink/status`).
    pub async fn status(&self) -> crate::NodeStatus {
        let (code, body) = self.admin_get("status").await;
        assert_eq!(code, 200, "/_louailink/status: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/_louailink/status is not a node status ({e}): {body}"))
    }

    /// Polls the status until `pred` holds (bounded by [`crate::WAIT`]); returns it.
    pub async fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(&crate::NodeStatus) -> bool,
    ) -> crate::NodeStatus {
        let found = crate::wait_until_or_none(crate::WAIT, || async {
            let s = self.status().await;
            pred(&s).then_some(s)
        })
        .await;
        match found {
            Some(s) => s,
            None => panic!(
                "timed out waiting for the status to show {what}; last: {:#?}",
                self.status().await
            ),
        }
    }

    /// Stops the process where it is (SIGSTOP), as a frozen VM or a long GC pause would.
    pub fn pause(&self) {
        kill_pid(self.pid, libc::SIGSTOP);
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        kill_pid(self.pid, libc::SIGCONT);
    }

    /// After a self-upgrade (`-a`): waits until the pid file names another live process and
    /// this one has exited, then makes this handle control the new process. Returns the new
    /// pid.
    pub async fn adopt_successor(&mut self) -> i32 {
        let old = self.pid;
        let new = crate::wait_until_or_none(crate::WAIT, || async {
            std::fs::read_to_string(&self.pid_path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .filter(|&p| p != old && pid_alive(p))
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the pid file {} never named a new process:\n{}",
                self.pid_path.display(),
                self.diagnostics()
            )
        });
        if self.wait_exit(crate::WAIT).await.is_none() && self.is_running() {
            panic!(
                "the old process {old} still runs after the upgrade:\n{}",
                self.diagnostics()
            );
        }
        self.child = None;
        self.pid = new;
        new
    }
}

impl Drop for Louailink {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let diag = self.diagnostics();
            let lines: Vec<&str> = diag.lines().collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!(
                "=== louailink (pid {}) at test failure, last lines ===\n{tail}",
                self.pid
            );
        }
        if !self.is_running() {
            return;
        }
        // A process this one started by upgrading itself (`-a`) and that the test did not
        // adopt (it failed first) names itself in this instance's own pid file.
        let successor = std::fs::read_to_string(&self.pid_path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&p| p != self.pid && pid_alive(p));
        kill_pid(self.pid, libc::SIGCONT);
        kill_pid(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.is_running() {
            kill_pid(self.pid, libc::SIGKILL);
        }
        if let Some(c) = &mut self.child {
            let _ = c.wait();
        }
        if let Some(pid) = successor {
            kill_pid(pid, libc::SIGKILL);
        }
    }
}

//! `--storage` takes what the data plane's `-c` takes: an `etcd://` URL (exactly as
//! `--etcd`) or a directory of config files. Anything else is refused at start, with an error
//! naming the flag and what it accepts, and nothing is created.

mod common;

use common::etcd::Etcd;
use common::{bin, etcd_args, generation, Control};
use louailink_testkit::free_port;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `louailink-control` with `args` in `cwd`, expecting it to refuse to start.
fn refused(cwd: &Path, args: &[&str]) -> String {
    let (http, grpc) = (free_port(), free_port());
    let out: Output = Command::new(bin())
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--grpc", &format!("127.0.0.1:{grpc}")])
        .args(args)
        .current_dir(cwd)
        .env_remove("LOUAILINK_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run louailink-control");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{args:?} started (or exited 0); stderr:\n{stderr}"
    );
    stderr
}

/// The entries of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_etcd_url_serves_and_writes_the_fleet_config() {
    let etcd = Etcd::start();
    let url = format!("etcd://{}/louailink", etcd.endpoint());
    let c = Control::spawn(&["--storage".into(), url], &[], None, &[]);
    assert!(
        c.log().contains("store: etcd"),
        "log says which store:\n{}",
        c.log()
    );
    let r = c
        .call(
            "PUT",
            "/api/v1/upstreams/u",
            Some(json!({"addrs": ["127.0.0.1:9"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    // Written to etcd, in the fleet's layout, with the generation bumped.
    let value = etcd.etcdctl(&["get", "--print-value-only", "/louailink/upstreams/u"]);
    let value: serde_json::Value = serde_json::from_str(value.trim()).expect("JSON in etcd");
    assert_eq!(value["addrs"], json!(["127.0.0.1:9"]));
    assert_eq!(generation(&etcd), "1");
    // A control plane started with --etcd on the same prefix serves the same item.
    let other = Control::spawn(&etcd_args(&etcd), &[], None, &[]);
    let r = other.call("GET", "/api/v1/upstreams/u", None).await;
    assert_eq!(
        (r.status, r.body["value"]["addrs"].clone()),
        (200, json!(["127.0.0.1:9"])),
        "{r:?}"
    );
    // And no directory was made from the URL in the working directory they share with this
    // test (the old behaviour: "etcd:/127.0.0.1:…").
    assert!(!Path::new("etcd:").exists());
}

#[test]
fn storage_refuses_what_it_cannot_serve_and_creates_nothing() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let file = cwd.path().join("louailink.toml");
    std::fs::write(&file, "[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n").expect("write");
    let file = file.display().to_string();
    let deep = cwd
        .path()
        .join("missing")
        .join("conf")
        .display()
        .to_string();
    let cases: [(&str, &str); 8] = [
        (
            "etcd:/127.0.0.1:2379/louailink",
            "not an etcd URL (write etcd://127.0.0.1:2379/louailink)",
        ),
        ("etcd:127.0.0.1:2379", "not an etcd URL"),
        ("http://127.0.0.1:2379/louailink", "unknown scheme \"http\""),
        (
            "file:///srv/louailink",
            "file:// URLs are not taken; give the directory itself (/srv/louailink)",
        ),
        ("etcd://127.0.0.1/louailink", "has no port"),
        (
            "etcd://127.0.0.1:2379/louailink?usr=a",
            "did you mean \"user\"",
        ),
        (&file, "is a file, not a directory"),
        (&deep, "missing does not exist"),
    ];
    for (value, reason) in cases {
        let stderr = refused(cwd.path(), &["--storage", value]);
        assert!(
            stderr.contains("--storage") && stderr.contains(reason),
            "--storage {value}: {stderr}"
        );
        if !value.starts_with("etcd://") {
            assert!(
                stderr.contains("--storage takes etcd://"),
                "says what the flag takes: {stderr}"
            );
        }
    }
    assert_eq!(
        entries(cwd.path()),
        ["louailink.toml"],
        "no directory was created"
    );
}

#[test]
fn storage_and_etcd_together_are_refused() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let dir = cwd.path().join("conf").display().to_string();
    let stderr = refused(
        cwd.path(),
        &[
            "--etcd",
            "etcd://127.0.0.1:2379/louailink",
            "--storage",
            &dir,
        ],
    );
    assert!(
        stderr.contains("--etcd and --storage both name a store; give one"),
        "{stderr}"
    );
    let stderr = refused(cwd.path(), &[]);
    assert!(
        stderr.contains("give --etcd etcd://host:2379/prefix or --storage"),
        "{stderr}"
    );
    assert!(entries(cwd.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_directory_is_created_when_only_it_is_missing() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("conf");
    let c = Control::on_dir(&dir);
    let r = c
        .call(
            "PUT",
            "/api/v1/upstreams/u",
            Some(json!({"addrs": ["127.0.0.1:9"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let text = std::fs::read_to_string(dir.join("upstreams/u.toml")).expect("the item's file");
    assert!(text.contains("127.0.0.1:9"), "{text}");
}

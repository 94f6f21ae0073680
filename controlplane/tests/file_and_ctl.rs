//! File mode (`--storage <dir>`: the same API over a directory the data plane can follow
//! with `--autoreload`), and the `ctl` client against a real control plane.

mod common;

use common::etcd::Etcd;
use common::{bin, put_base, Control};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

const CONF: &str = r#"# the team's config
[upstreams.u]
addrs = ["127.0.0.1:9"]

[locations.a]
path = "/a"
upstream = "u"

[servers.s]
addr = "127.0.0.1:18080"
locations = ["a"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mode_serves_the_same_api_on_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.toml"), CONF).unwrap();
    let c = Control::on_dir(dir.path());
    let r = c.call("GET", "/api/v1/locations/a", None).await;
    assert_eq!(
        (r.status, r.body["value"]["upstream"].as_str()),
        (200, Some("u")),
        "{r:?}"
    );
    let tag = r.etag.clone().unwrap();

    let r = c
        .call(
            "PUT",
            "/api/v1/locations/b",
            Some(json!({"path": "/b", "upstream": "u"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(dir.path().join("locations/b.toml").exists());
    // Moving an item out of the shared file keeps the rest of that file (and its comment).
    let r = c
        .call(
            "PUT",
            "/api/v1/locations/a",
            Some(json!({"path": "/a2", "upstream": "u"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let main = std::fs::read_to_string(dir.path().join("main.toml")).unwrap();
    assert!(
        main.contains("# the team's config")
            && main.contains("[servers.s]")
            && !main.contains("/a\""),
        "{main}"
    );
    // The directory is what louailink -t accepts.
    let loaded = louailink_shared::load(dir.path()).expect("the directory loads and validates");
    assert_eq!(loaded.config.locations["a"].path.as_deref(), Some("/a2"));
    assert_eq!(loaded.config.locations.len(), 2);

    // The same validation, 409 and 412 as with etcd.
    let r = c
        .call(
            "PUT",
            "/api/v1/locations/c",
            Some(json!({"upstream": "nope"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.call("DELETE", "/api/v1/upstreams/u", None).await.status,
        409
    );
    let stale = common::call(
        &c.url("/api/v1/locations/a"),
        "PUT",
        None,
        Some(json!({"path": "/a3", "upstream": "u"})),
        &[("if-match", &format!("\"{tag}\""))],
    )
    .await;
    assert_eq!(stale.status, 412);
    // A hand edit moves the revision too.
    let current = c
        .call("GET", "/api/v1/locations/b", None)
        .await
        .etag
        .unwrap();
    std::fs::write(
        dir.path().join("locations/b.toml"),
        "[locations.b]\npath = \"/bb\"\nupstream = \"u\"\n",
    )
    .unwrap();
    let r = common::call(
        &c.url("/api/v1/locations/b"),
        "DELETE",
        None,
        None,
        &[("if-match", &format!("\"{current}\""))],
    )
    .await;
    assert_eq!(r.status, 412);

    assert_eq!(
        c.call("DELETE", "/api/v1/locations/b", None).await.status,
        200
    );
    assert!(!dir.path().join("locations/b.toml").exists());
    let h = c.call("GET", "/api/v1/history", None).await;
    assert_eq!(h.body["entries"].as_array().unwrap().len(), 3, "{}", h.body);
    let r = c
        .call("POST", "/api/v1/rollback", Some(json!({"to": 1})))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.call("GET", "/api/v1/locations/a", None).await.body["value"]["path"],
        "/a"
    );
    assert!(c.call("GET", "/api/v1/nodes", None).await.body["nodes"]
        .as_array()
        .unwrap()
        .is_empty());
}

fn ctl(c: &Control, args: &[&str]) -> Output {
    Command::new(bin())
        .args(["ctl", "--server", &c.url("")])
        .args(args)
        .env_remove("LOUAILINK_TOKEN")
        .output()
        .expect("run ctl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a file in a dir")).expect("create the dir");
    std::fs::write(path, text).expect("write the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_gets_applies_validates_and_deletes() {
    let etcd = Etcd::start();
    let c = Control::start(&etcd);
    put_base(&c).await;
    let conf = tempfile::tempdir().unwrap();
    // A location referring to an upstream that only exists in etcd, and a new upstream.
    write(
        conf.path(),
        "10-upstreams.yaml",
        "upstreams:\n  v:\n    addrs: [\"127.0.0.1:10\"]\n",
    );
    write(
        conf.path(),
        "sub/20-locations.toml",
        "[locations.b]\npath = \"/b\"\nupstream = \"u\"\n",
    );

    let o = ctl(&c, &["validate", "-f", &conf.path().display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("locations.b"));
    assert_eq!(
        c.call("GET", "/api/v1/locations/b", None).await.status,
        404,
        "validate wrote nothing"
    );

    let o = ctl(&c, &["apply", "-f", &conf.path().display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(c.call("GET", "/api/v1/locations/b", None).await.status, 200);
    assert_eq!(
        c.call("GET", "/api/v1/servers/s", None).await.status,
        200,
        "apply keeps other items"
    );

    let o = ctl(&c, &["get", "locations", "b"]);
    assert!(o.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["value"]["upstream"], "u");
    let o = ctl(&c, &["get", "upstreams"]);
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["items"].as_array().unwrap().len(), 2);

    // An invalid file: exit 1, the error with its details, nothing written.
    write(
        conf.path(),
        "30-bad.toml",
        "[locations.c]\npath = \"/c\"\nupstream = \"ghost\"\n",
    );
    let o = ctl(&c, &["apply", "-f", &conf.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("unknown upstream \"ghost\""),
        "{}",
        text(&o)
    );
    assert_eq!(c.call("GET", "/api/v1/locations/c", None).await.status, 404);
    // A syntax error is reported with its file and line before anything is sent.
    write(conf.path(), "30-bad.toml", "[locations.c\n");
    let o = ctl(&c, &["validate", "-f", &conf.path().display().to_string()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("30-bad.toml:1"), "{}", text(&o));
    std::fs::remove_file(conf.path().join("30-bad.toml")).unwrap();

    let o = ctl(&c, &["delete", "upstreams", "u"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("409 referenced") && text(&o).contains("locations."),
        "{}",
        text(&o)
    );
    let o = ctl(&c, &["delete", "locations", "b"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(c.call("GET", "/api/v1/locations/b", None).await.status, 404);

    for args in [
        &["nodes"][..],
        &["events"],
        &["history", "--limit", "2"],
        &["export", "--format", "json"],
    ] {
        let o = ctl(&c, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = ctl(&c, &["history", "--limit", "1"]);
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let last = h["entries"][0]["id"].as_i64().unwrap();
    let o = ctl(&c, &["rollback", &(last - 1).to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(c.call("GET", "/api/v1/locations/b", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_uses_the_token() {
    let etcd = Etcd::start();
    let c = Control::with_tokens(&etcd);
    let o = ctl(&c, &["nodes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("401"), "{}", text(&o));
    let o = Command::new(bin())
        .args(["ctl", "--server", &c.url(""), "nodes"])
        .env("LOUAILINK_TOKEN", common::VIEWER)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

//! The state file: round trip, atomic replacement, and refusal of damaged files.

use louailink_shared::loader::{parse_text, Format};
use louailink_shared::storage::{config_hash, StateFile, StateFileError, StateSnapshot};
use louailink_shared::Config;
use std::os::unix::fs::PermissionsExt;

fn sample() -> Config {
    let text = r#"
[basic]
grace_period = "3s"
log_level = "warn"
[upstreams.u]
addrs = ["127.0.0.1:1 10", "127.0.0.1:2"]
connection_timeout = "1500ms"
[locations.a]
path = "/a"
upstream = "u"
client_max_body_size = "1mb"
headers = ["X-A: 1"]
[plugins.p]
category = "mock"
status = 204
[certificates.c]
tls_cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
domains = "example.com"
[servers.s]
addr = "127.0.0.1:8080"
locations = "a"
"#;
    parse_text(text, Format::Toml, None).expect("sample").config
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("state"));
    let snapshot = StateSnapshot::new(sample(), 1234, "etcd://127.0.0.1:2379/louailink");
    file.save(&snapshot).expect("save");
    let back = file.load().expect("load").expect("a snapshot");
    assert_eq!(back, snapshot);
    assert_eq!(back.hash, config_hash(&sample()));
    let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "may hold private keys");
    // Saving again replaces it and leaves no temp file behind.
    let newer = StateSnapshot::new(Config::default(), 1235, "x");
    file.save(&newer).expect("save");
    assert_eq!(file.load().unwrap().unwrap().revision, 1235);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["louailink-state.json"]);
}

#[test]
fn damaged_files_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path());
    file.save(&StateSnapshot::new(sample(), 7, "test"))
        .expect("save");
    let good = std::fs::read(file.path()).unwrap();
    let header_len = good.iter().position(|b| *b == b'\n').unwrap() + 1;

    let mut flipped = good.clone();
    let i = header_len + (good.len() - header_len) / 2;
    flipped[i] ^= 0x01;
    let truncated = good[..good.len() - 10].to_vec();
    let mut bad_header = good.clone();
    bad_header[0] = b'X';
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("one bit flipped", flipped, "checksum"),
        ("truncated", truncated, "where the header says"),
        ("bad header", bad_header, "is not \"louailink-state v1"),
        ("empty", Vec::new(), "no header line"),
        ("not ours", b"{\"config\": {}}\n".to_vec(), "is not"),
    ];
    for (what, bytes, want) in cases {
        std::fs::write(file.path(), &bytes).unwrap();
        let e = file.load().expect_err(what);
        assert!(matches!(e, StateFileError::Corrupt { .. }), "{what}: {e}");
        let shown = e.to_string();
        assert!(shown.contains(want), "{what}: {shown}");
        assert!(
            shown.contains(&file.path().display().to_string()),
            "{what}: {shown}"
        );
    }
    // A valid checksum over data that is not a snapshot is refused too.
    let body = b"[1, 2, 3]";
    let header = format!(
        "louailink-state v1 sha256={} bytes={}\n",
        louailink_shared::storage::digest::sha256_hex(body),
        body.len()
    );
    std::fs::write(file.path(), [header.as_bytes(), body].concat()).unwrap();
    let e = file.load().unwrap_err().to_string();
    assert!(e.contains("does not decode"), "{e}");
}

#[test]
fn an_unwritable_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let e = StateFile::new(blocker.join("state"))
        .save(&StateSnapshot::new(Config::default(), 1, "x"))
        .unwrap_err();
    assert!(matches!(e, StateFileError::Io { .. }), "{e}");
    assert!(e.to_string().contains("cannot create directory"), "{e}");
}

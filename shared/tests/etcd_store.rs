//! The etcd client against a real etcd: paged reads, change transactions, raw writes,
//! readable values, limits, auth and TLS.

mod common;

use common::etcd::Etcd;
use common::{base, del, put, spec, store, PREFIX};
use louailink_shared::storage::{EtcdError, EtcdSpec, EtcdStore, Secret, TlsFiles};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_read_returns_every_key_at_one_revision() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await.with_page_size(10);
    let changes: Vec<_> = (0..35)
        .map(|i| {
            put(
                "locations",
                &format!("l{i:02}"),
                json!({"path": format!("/{i}")}),
            )
        })
        .collect();
    let committed = s.commit(&changes).await.expect("commit");
    // Outside the prefix: never read.
    s.put_raw("/louailink2/locations/x", "{}")
        .await
        .expect("put");
    let read = s.read_prefix().await.expect("read");
    // 35 locations + meta/generation.
    assert_eq!(read.entries.len(), 36, "{:?}", read.entries.len());
    assert!(read.pages >= 4, "read in {} pages", read.pages);
    assert!(read.revision >= committed.revision);
    let keys: Vec<&str> = read.entries.iter().map(|e| e.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys[0], "/louailink/locations/l00");
    assert_eq!(keys[34], "/louailink/locations/l34");
    assert_eq!(keys[35], "/louailink/meta/generation");
}

/// With a 4 MiB response limit (the client's default; nodes accept 64 MiB): a read over it
/// is split into smaller pages, and one value over it alone is set aside (`oversized`, for
/// the node to reject) while every other key is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_over_the_message_limit_pages_down_and_sets_aside_a_value_over_it() {
    let etcd = Etcd::start_with_max_request_bytes(8 << 20);
    let s = store(&etcd.endpoint()).await.with_message_limit(4 << 20);
    // 12 values of 450 KiB: 5.4 MiB, more than one 4 MiB response may carry.
    let big = "x".repeat(450 * 1024);
    for i in 0..12 {
        let value = json!({"category": "mock", "body": big}).to_string();
        s.put_raw(&format!("{PREFIX}/plugins/p{i:02}"), value)
            .await
            .expect("put");
    }
    let read = s.read_prefix().await.expect("read");
    assert_eq!(read.entries.len(), 12);
    assert!(read.pages >= 2, "read in {} pages", read.pages);
    assert!(read.entries.iter().all(|e| e.value.len() > 450 * 1024));
    assert!(read.oversized.is_empty());

    let huge = json!({"category": "mock", "body": "y".repeat(5 << 20)}).to_string();
    let revision = s
        .put_raw(&format!("{PREFIX}/plugins/p05x"), huge)
        .await
        .expect("put 5 MiB");
    let read = s.read_prefix().await.expect("read past the huge value");
    assert_eq!(read.entries.len(), 12, "every other key is read");
    let keys: Vec<(&str, i64)> = read
        .oversized
        .iter()
        .map(|e| (e.key.as_str(), e.mod_revision))
        .collect();
    assert_eq!(keys, [("/louailink/plugins/p05x", revision)]);
    // The default limit reads it whole.
    let read = store(&etcd.endpoint())
        .await
        .read_prefix()
        .await
        .expect("read");
    assert_eq!((read.entries.len(), read.oversized.len()), (13, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_one_revision_and_bumps_the_generation() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let first = s.commit(&base()).await.expect("commit");
    assert_eq!(first.generation, 1);
    let second = s
        .commit(&[
            put("locations", "b", json!({"path": "/b", "upstream": "u"})),
            del("locations", "a"),
        ])
        .await
        .expect("commit");
    assert_eq!(second.generation, 2);
    assert!(second.revision > first.revision);
    let read = s.read_prefix().await.expect("read");
    let find = |k: &str| read.entries.iter().find(|e| e.key == k);
    assert!(find("/louailink/locations/a").is_none());
    assert_eq!(
        find("/louailink/locations/b").map(|e| e.mod_revision),
        Some(second.revision)
    );
    let generation = find("/louailink/meta/generation").expect("generation");
    assert_eq!(
        (generation.value.as_slice(), generation.mod_revision),
        (b"2".as_slice(), second.revision)
    );
    let third = s
        .delete_item(&louailink_shared::storage::ItemKey::new("locations", "b").unwrap())
        .await
        .expect("delete");
    assert_eq!(third.generation, 3);
    assert!(s
        .get("/louailink/locations/b")
        .await
        .expect("get")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_readable_json_for_etcdctl() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let item = louailink_shared::decode_item(
        louailink_shared::Kind::Locations,
        "api",
        json!({"path": "/api", "proxy_headers": ["X-A: 1"], "max_retry_window": "1500ms"}),
    )
    .expect("item");
    let key = louailink_shared::storage::ItemKey::new("locations", "api").unwrap();
    s.put_item(&key, &item).await.expect("put");
    let out = etcd.etcdctl(&["get", "--prefix", "/louailink/locations/"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "/louailink/locations/api");
    let value: serde_json::Value = serde_json::from_str(lines[1]).expect("JSON value");
    assert_eq!(
        value,
        json!({"path": "/api", "proxy_set_headers": ["X-A: 1"], "max_retry_window": "1500ms"})
    );
    // And it decodes back to the same item.
    let back = louailink_shared::decode_item(louailink_shared::Kind::Locations, "api", value)
        .expect("decode");
    assert_eq!(back, item);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_etcd_would_refuse_are_refused_first() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let many: Vec<_> = (0..128)
        .map(|i| {
            put(
                "upstreams",
                &format!("u{i}"),
                json!({"addrs": "127.0.0.1:1"}),
            )
        })
        .collect();
    let e = s.commit(&many).await.unwrap_err();
    assert!(
        matches!(e, EtcdError::Txn(_)) && e.to_string().contains("at most 127"),
        "{e}"
    );
    assert!(s.commit(&many[..127]).await.is_ok());
    let twice = [del("upstreams", "u1"), del("upstreams", "u1")];
    let e = s.commit(&twice).await.unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    let huge = "x".repeat(1600 * 1024);
    let e = s
        .commit(&[put(
            "plugins",
            "p",
            json!({"category": "mock", "body": huge}),
        )])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_current_revision() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    let c = s.commit(&base()).await.expect("commit");
    let now = s.current_revision().await.expect("revision");
    assert_eq!(now, c.revision);
    s.compact(now).await.expect("compact");
    // Compacting again at the same revision is refused by etcd, with the operation named.
    let e = s.compact(now).await.unwrap_err();
    assert!(e.to_string().contains("etcd compact"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_etcd_fails_reads_and_writes_each_within_its_own_bound() {
    let etcd = Etcd::start();
    let s = store(&etcd.endpoint()).await;
    s.commit(&base()).await.expect("commit");
    let mut spec = spec(&etcd.endpoint());
    spec.timeout = Duration::from_millis(300);
    let short = EtcdStore::connect(&spec)
        .await
        .expect("connect")
        .with_write_timeout(Duration::from_secs(1));
    // Connected before etcd hangs, so what follows is a request without an answer.
    answers_within(&short, "before SIGSTOP").await;
    let pid = etcd.pid().expect("etcd runs");
    signal(libc::SIGSTOP, pid);
    let read = short.current_revision().await;
    let write = short.put_raw("/louailink/locations/late", "{}").await;
    signal(libc::SIGCONT, pid);
    let read = read.unwrap_err();
    assert!(matches!(read, EtcdError::Timeout { timeout, .. } if timeout == spec.timeout));
    assert!(read.is_unavailable(), "{read}");
    // A write that got no answer may still land: the error says so rather than "failed".
    let write = write.unwrap_err();
    assert!(
        matches!(write, EtcdError::WriteTimeout { timeout, .. } if timeout == Duration::from_secs(1)),
        "{write}"
    );
    assert!(write.is_unavailable(), "{write}");
    assert!(
        write.to_string().contains("may still be applied"),
        "{write}"
    );
    answers_within(&short, "after SIGCONT").await;
}

/// Waits until `store` gets an answer within its (short) timeout; a busy machine may need
/// a few tries.
async fn answers_within(store: &EtcdStore, when: &str) {
    for _ in 0..100 {
        if store.current_revision().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not answer {when}");
}

/// Sends `signal` to the etcd started by this test (by its PID).
fn signal(signal: libc::c_int, pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: kill(2) on the PID of a child this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let etcd = Etcd::start();
    etcd.etcdctl(&["user", "add", "root:rootpw"]);
    etcd.etcdctl(&["user", "add", "lou:s3cret"]);
    etcd.etcdctl(&["role", "add", "fleet"]);
    etcd.etcdctl(&[
        "role",
        "grant-permission",
        "fleet",
        "--prefix=true",
        "readwrite",
        "/louailink/",
    ]);
    etcd.etcdctl(&["user", "grant-role", "lou", "fleet"]);
    etcd.etcdctl(&["auth", "enable"]);
    let mut good = spec(&etcd.endpoint());
    good.user = Some("lou".into());
    good.password = Some(Secret::new("s3cret"));
    let s = EtcdStore::connect(&good).await.expect("connect with auth");
    s.commit(&base()).await.expect("commit with auth");
    assert_eq!(s.read_prefix().await.expect("read").entries.len(), 4);
    let mut bad = good.clone();
    bad.password = Some(Secret::new("wrong"));
    let e = EtcdStore::connect(&bad).await.unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("cannot connect"), "{shown}");
    assert!(!shown.contains("wrong") && !format!("{bad:?}").contains("wrong"));
    // Without credentials, reads are refused.
    let anonymous = store(&etcd.endpoint()).await;
    assert!(anonymous.read_prefix().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificate() {
    let etcd = Etcd::start_tls();
    let tls = etcd.tls().expect("tls files").clone();
    let url = format!(
        "etcd://{}/louailink?ca={}&cert={}&key={}&timeout=3s",
        etcd.endpoint(),
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let spec = EtcdSpec::parse(&url).expect("url");
    let s = EtcdStore::connect(&spec).await.expect("connect over TLS");
    s.commit(&base()).await.expect("commit over TLS");
    assert_eq!(s.read_prefix().await.expect("read").entries.len(), 4);
    // Without the CA the server certificate is not trusted.
    let mut untrusted = spec.clone();
    untrusted.tls = Some(TlsFiles {
        ca: None,
        ..tls_files(&tls)
    });
    untrusted.timeout = Duration::from_secs(2);
    let failed = match EtcdStore::connect(&untrusted).await {
        Ok(s) => s.read_prefix().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(failed.is_err());
    // A missing TLS file is named.
    let mut missing = spec.clone();
    missing.tls = Some(TlsFiles {
        ca: Some("/nonexistent/ca.pem".into()),
        ..tls_files(&tls)
    });
    let e = EtcdStore::connect(&missing).await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

fn tls_files(tls: &common::etcd::EtcdTls) -> TlsFiles {
    TlsFiles {
        ca: Some(tls.ca.clone()),
        cert: Some(tls.client_cert.clone()),
        key: Some(tls.client_key.clone()),
    }
}

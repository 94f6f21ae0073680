//! End-to-end test harness for LouAILink.
//!
//! Everything here is real: the `louailink` binary runs as a child process ([`Louailink`]),
//! backends are small hyper servers on loopback sockets ([`Backend`]), certificates come from a
//! throw-away CA ([`TestCa`]), clients talk HTTP/1.1, h2c, TLS or raw bytes ([`Client`],
//! [`RawConn`]), a real etcd ([`Etcd`], [`Fleet`]) holds fleet configs, and [`Load`] keeps
//! traffic flowing while config changes or upgrades happen. Each test allocates its own ports
//! ([`free_port`]) and temp dirs, and every process or thread a test starts is stopped when
//! its handle is dropped, so tests run in parallel. The etcd, the [`Link`] a test can break,
//! [`free_port`] and the bounded waits come from `louailink-testkit`, re-exported here.

pub mod attack;
pub mod backend;
pub mod certs;
pub mod client;
pub mod fleet;
pub mod load;
pub mod proxy;
pub mod routes;
pub mod scripted;
pub mod sse;

pub use backend::{Backend, BackendBuilder};
pub use certs::{CertPair, TestCa};
pub use client::{peer_certificate, Client, Echo, RawConn, RawResponse, Reply};
pub use fleet::{Fleet, NodeStatus, Op};
pub use load::{assert_no_failures, Load, Report};
pub use louailink_testkit::{free_port, init, wait_until, wait_until_or_none, Etcd, Link, WAIT};
pub use proxy::{CmdOutput, Louailink, LouailinkBuilder};
pub use routes::{plugin_in_front, OneRoute, Routes, Single};
pub use sse::SseStream;

use std::path::PathBuf;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `louailink` binary: `$LOUAILINK_BIN`, else `<workspace>/target/debug/louailink`.
pub fn louailink_bin() -> PathBuf {
    let path = match std::env::var_os("LOUAILINK_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            target.join("debug").join("louailink")
        }
    };
    assert!(
        path.is_file(),
        "louailink binary not found at {}: run `cargo build -p louailink` first \
         (or set LOUAILINK_BIN)",
        path.display()
    );
    path
}

/// `["127.0.0.1:1", "127.0.0.1:2"]`: a TOML array of the backends' addresses.
pub fn addrs(backends: &[&Backend]) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    format!("[{}]", list.join(", "))
}

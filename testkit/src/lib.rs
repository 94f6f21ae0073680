//! Test support shared by the workspace's test trees (`shared/tests`, `controlplane/tests`
//! and the end-to-end tests in `tests/`). It depends on no product crate, so it builds early
//! and any crate can take it as a dev-dependency.
//!
//! | module | what it holds |
//! |---|---|
//! | [`etcd`] | [`Etcd`]: a real etcd on free loopback ports (plain or TLS), stop/restart by PID, `etcdctl` operations ([`TxnOp`], compaction) |
//! | [`link`] | [`Link`]: a TCP link in front of etcd a test can break ([`Mode`]: forward, refuse, blackhole; [`Link::cut`]) |
//! | [`net`] | [`free_port`]: a free loopback port outside the ephemeral range |
//! | [`wait`] | [`WAIT`], [`wait_until`], [`wait_until_or_none`], [`eventually`]: bounded polling |
//!
//! And at the root, [`init`]: process-wide setup (the rustls crypto provider).

pub mod etcd;
pub mod link;
pub mod net;
pub mod wait;

pub use etcd::{Etcd, EtcdTls, TxnOp};
pub use link::{Link, Mode};
pub use net::free_port;
pub use wait::{eventually, wait_until, wait_until_or_none, WAIT};

use std::sync::Once;

/// Installs the `ring` rustls provider once per process (ignores "already installed").
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

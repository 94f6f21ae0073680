//! Where a configuration lives and how a node follows it: `-c` source specs, the etcd key
//! layout, an etcd client with paged reads and change transactions, the follower that turns
//! the etcd prefix into a stream of complete desired configs, the local state file, and the
//! lease-bound node status key.
//!
//! | module | concept |
//! |---|---|
//! | [`source`] | parsing `-c` values (file, directory, `etcd://…`) |
//! | [`keys`] | the etcd key layout under a prefix |
//! | [`etcd`] | the etcd client: connect, paged read, writes, compaction |
//! | [`desired`] | building the desired config from item values (pure, no I/O) |
//! | [`follow`] | the follower task (watch, resume, re-read, dead-watch detection) |
//! | [`state_file`] | the last good snapshot on disk, atomic and checksummed |
//! | [`node_status`] | a node's status key, bound to a lease |
//! | [`digest`] | SHA-256 and the canonical config hash |

pub mod desired;
pub mod digest;
pub mod etcd;
pub mod follow;
pub mod keys;
pub mod node_status;
pub mod source;
pub mod state_file;

pub use desired::{Alarm, Rejected};
pub use digest::config_hash;
pub use etcd::{
    item_json, Change, Committed, EtcdError, EtcdStore, Expected, PrefixRead, RawEntry, RawOp,
};
pub use follow::{FollowState, Follower, FollowerOptions};
pub use keys::{ItemKey, KeyError, KeyKind, Keys, DEFAULT_PREFIX};
pub use node_status::{BackendHealth, NodeKeeper, NodeState, NodeStatus};
pub use source::{ConfigSource, EtcdSpec, Secret, SourceError, TlsFiles};
pub use state_file::{StateFile, StateFileError, StateSnapshot};

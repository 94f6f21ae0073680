//! The keyed tables of `limit`: 64 shards, each a small map behind its own mutex, so two
//! requests contend only when their keys share a shard, and only for a map lookup. Keys are
//! 64-bit hashes of the request's key under a per-instance random seed: no copy of the key is
//! kept, and a client cannot aim for another key's slot.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Number of shards (a power of two).
const SHARDS: usize = 64;
/// Keys one shard holds at most; the instance holds at most `SHARDS * SHARD_CAP` (65,536).
pub(super) const SHARD_CAP: usize = 1024;

/// One shard's map, from key hash to the key's state.
pub(super) type Shard<V> = HashMap<u64, V, ahash::RandomState>;

/// Per-key state `V`, sharded.
pub(super) struct Shards<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    seed: ahash::RandomState,
}

impl<V> Shards<V> {
    /// Empty shards; they grow as keys arrive.
    pub(super) fn new() -> Self {
        Shards {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::with_hasher(ahash::RandomState::new())))
                .collect(),
            seed: ahash::RandomState::new(),
        }
    }

    /// The hash a key's bytes are kept under.
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.seed.hash_one(key)
    }

    /// The shard of `key`, locked.
    pub(super) fn lock(&self, key: u64) -> MutexGuard<'_, Shard<V>> {
        // The top bits pick the shard; the map hashes the whole key again for its buckets.
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        // A panic while holding a shard leaves counts that are still counts: keep going.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys held, over all shards.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock((i as u64) << 58).len()).sum()
    }
}

//! `type = "inflight"`: at most `max` requests of one key at a time. A request holds a
//! [`Held`] slot, released when it is dropped: in the `logging` phase, or whenever the
//! request's state goes away (a client gone, an upstream failed, a task ended early).

use super::shards::{Shards, SHARD_CAP};
use std::sync::Arc;

/// The in-flight counts of one plugin instance; a key with nothing in flight is not kept,
/// so the table holds at most one key per request in flight (and `SHARD_CAP` per shard).
pub(super) struct InflightTable {
    keys: Shards<u64>,
    max: u64,
}

/// One request's slot; dropping it gives the slot back.
pub(super) struct Held {
    table: Arc<InflightTable>,
    key: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut shard = self.table.keys.lock(self.key);
        if let Some(n) = shard.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

impl InflightTable {
    /// At most `max` requests per key at once.
    pub(super) fn new(max: u64) -> Arc<Self> {
        Arc::new(InflightTable {
            keys: Shards::new(),
            max,
        })
    }

    /// The hash a key's bytes are counted under.
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash(key)
    }

    /// A slot for `key`, or `None` when it has `max` in flight (or its shard is full of
    /// other keys in flight: that many distinct clients at once is refused, not tracked
    /// without bound).
    pub(super) fn acquire(self: &Arc<Self>, key: u64) -> Option<Held> {
        let mut shard = self.keys.lock(key);
        if shard.len() >= SHARD_CAP && !shard.contains_key(&key) {
            return None;
        }
        let n = shard.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Held {
            table: self.clone(),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_key_and_come_back_when_dropped() {
        let t = InflightTable::new(2);
        let (a, b) = (t.hash(b"a"), t.hash(b"b"));
        let first = t.acquire(a).unwrap();
        let second = t.acquire(a).unwrap();
        assert!(t.acquire(a).is_none());
        let other = t.acquire(b).unwrap();
        drop(first);
        let third = t.acquire(a).unwrap();
        assert!(t.acquire(a).is_none());
        drop((second, third, other));
        assert_eq!(t.keys.len(), 0, "keys with nothing in flight are forgotten");
    }
}

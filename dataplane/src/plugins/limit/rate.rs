//! `type = "rate"`: a two-bucket sliding window per key (as nginx and Cloudflare estimate it).
//! Each key counts the requests of the current fixed window and of the one before; the rate
//! is `previous × (part of the previous window still inside the sliding one) + current`. A
//! request that would take it over `max` is refused and not counted.

use super::shards::{Shard, Shards, SHARD_CAP};
use std::time::{Duration, Instant};

/// One key's counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Window {
    /// Which fixed window `current` counts (time since start / interval).
    index: u64,
    current: u64,
    previous: u64,
}

impl Window {
    /// Moves the counts on to window `index`.
    fn roll(&mut self, index: u64) {
        if index == self.index {
            return;
        }
        self.previous = if index == self.index + 1 {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.index = index;
    }

    /// The sliding count × `interval`, `into` milliseconds into window `self.index`.
    fn weighted(&self, interval: u64, into: u64) -> u64 {
        self.previous * (interval - into) + self.current * interval
    }
}

/// The rate limiter of one plugin instance.
pub(super) struct RateTable {
    keys: Shards<Window>,
    max: u64,
    /// The window in milliseconds (at least 1).
    interval: u64,
    start: Instant,
}

impl RateTable {
    /// At most `max` requests per `interval` per key.
    pub(super) fn new(max: u64, interval: Duration) -> Self {
        RateTable {
            keys: Shards::new(),
            max,
            interval: (interval.as_millis() as u64).max(1),
            start: Instant::now(),
        }
    }

    /// The hash a key's bytes are counted under.
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash(key)
    }

    /// Counts a request of `key` if it fits; otherwise how long until one would.
    pub(super) fn take(&self, key: u64) -> Result<(), Duration> {
        let now = self.start.elapsed().as_millis() as u64;
        self.take_at(key, now).map_err(Duration::from_millis)
    }

    /// [`Self::take`] at `now` milliseconds after start; the error is in milliseconds.
    fn take_at(&self, key: u64, now: u64) -> Result<(), u64> {
        let (index, into) = (now / self.interval, now % self.interval);
        let mut shard = self.keys.lock(key);
        if shard.len() >= SHARD_CAP && !shard.contains_key(&key) {
            self.make_room(&mut shard, index, into);
        }
        let w = shard.entry(key).or_insert(Window {
            index,
            current: 0,
            previous: 0,
        });
        w.roll(index);
        let (max, interval) = (self.max, self.interval);
        if w.weighted(interval, into) + interval <= max * interval {
            w.current += 1;
            return Ok(());
        }
        // When would `weighted + interval <= max × interval` hold, with nothing more counted?
        let wait = if w.current < max {
            // Later in this window, as the previous window's weight falls (previous > 0 here).
            let room = (max - w.current - 1) * interval / w.previous;
            (interval - into).saturating_sub(room)
        } else {
            // In the next window, once this one's count (then `previous`) weighs little enough.
            let room = (max - 1) * interval / w.current;
            (interval - into) + (interval - room)
        };
        Err(wait.max(1))
    }

    /// A full shard and a new key: forget idle keys; if none is, forget the quarter of keys
    /// with the lowest counts (a flood of one-off keys goes first; a key near its limit, last).
    fn make_room(&self, shard: &mut Shard<Window>, index: u64, into: u64) {
        shard.retain(|_, w| w.index + 1 >= index);
        if shard.len() < SHARD_CAP {
            return;
        }
        let mut by_count: Vec<(u64, u64)> = shard
            .iter()
            .map(|(k, w)| {
                let mut w = *w;
                w.roll(index);
                (w.weighted(self.interval, into), *k)
            })
            .collect();
        let quarter = by_count.len() / 4;
        by_count.select_nth_unstable(quarter);
        for (_, k) in &by_count[..quarter] {
            shard.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_max_then_slides() {
        let t = RateTable::new(3, Duration::from_secs(10));
        let k = t.hash(b"a");
        assert_eq!(t.take_at(k, 0), Ok(()));
        assert_eq!(t.take_at(k, 1_000), Ok(()));
        assert_eq!(t.take_at(k, 2_000), Ok(()));
        // 3 in this window: wait for the next (at 10 s), then until 3 × (1 - f) + 1 <= 3,
        // f = 1/3 of the window: 10 - 2 + 3.333 s.
        assert_eq!(t.take_at(k, 2_000), Err(8_000 + 3_334));
        // Other keys have their own budget.
        assert_eq!(t.take_at(t.hash(b"b"), 2_000), Ok(()));
        // At 12 s the previous 3 weigh 3 × 0.8 = 2.4: one more does not fit, until f = 1/3.
        assert_eq!(t.take_at(k, 12_000), Err(1_334));
        assert_eq!(t.take_at(k, 13_334), Ok(()));
        assert!(t.take_at(k, 13_400).is_err());
        // Two windows later everything is forgotten.
        for now in [30_000, 30_001, 30_002] {
            assert_eq!(t.take_at(k, now), Ok(()));
        }
    }

    #[test]
    fn a_refused_request_is_not_counted() {
        let t = RateTable::new(1, Duration::from_secs(1));
        let k = t.hash(b"a");
        assert_eq!(t.take_at(k, 0), Ok(()));
        for now in [10, 500, 900] {
            assert!(t.take_at(k, now).is_err());
        }
        // Next window: the previous 1 weighs 1 - f; nothing refused was added to it.
        assert_eq!(t.take_at(k, 1_999), Err(1));
        assert_eq!(t.take_at(k, 2_000), Ok(()));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_keeps_the_busy_ones() {
        let t = RateTable::new(2, Duration::from_secs(60));
        let busy = t.hash(b"busy");
        assert_eq!(t.take_at(busy, 0), Ok(()));
        assert_eq!(t.take_at(busy, 0), Ok(()));
        for i in 0..200_000u32 {
            assert_eq!(t.take_at(t.hash(&i.to_le_bytes()), 1), Ok(()));
        }
        assert!(t.keys.len() <= 64 * SHARD_CAP, "{}", t.keys.len());
        assert!(t.take_at(busy, 2).is_err(), "the busy key kept its count");
        // Two windows later the flood is idle, makes room for new keys, and the busy key is free.
        for i in 0..64 * SHARD_CAP as u32 {
            let _ = t.take_at(t.hash(&(i + 1_000_000).to_le_bytes()), 130_000);
        }
        assert!(t.take_at(busy, 130_000).is_ok());
    }
}

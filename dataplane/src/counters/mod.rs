//! What the process counts: requests begun and ended by status class, for the whole process
//! ([`PROCESS`]) and per location ([`location`]), and the process's own facts from
//! `/proc/self` ([`process`]). The `stats` plugin shows them; Prometheus metrics can read the
//! same [`Tally`].
//!
//! Per request this costs two relaxed atomic adds per counter set (one when the request
//! begins, one when it ends): no lock, no allocation. In flight is not counted apart: it is
//! what began and has not ended.

pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

/// The status classes counted: `other` (no response, e.g. the client left; or a status outside
/// 100-599), then `1xx` to `5xx`.
pub const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Request counters of one scope (the process, or one location). Aligned to its own cache
/// line so that two scopes updated by different threads do not share one.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct Counters {
    begun: AtomicU64,
    ended: [AtomicU64; 6],
}

/// The requests of the whole process.
pub static PROCESS: Counters = Counters::new();

/// What a [`Counters`] holds at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests begun.
    pub requests: u64,
    /// Requests begun and not ended yet.
    pub in_flight: u64,
    /// Requests ended, by [`CLASSES`].
    pub responses: [u64; 6],
}

impl Counters {
    /// Zeroed counters.
    pub const fn new() -> Self {
        Counters {
            begun: AtomicU64::new(0),
            ended: [const { AtomicU64::new(0) }; 6],
        }
    }

    /// A request began.
    #[inline]
    pub fn begin(&self) {
        self.begun.fetch_add(1, Relaxed);
    }

    /// A request ended with `status` (0: no response was sent).
    #[inline]
    pub fn end(&self, status: u16) {
        let class = usize::from(status / 100);
        let slot = if (1..=5).contains(&class) { class } else { 0 };
        self.ended[slot].fetch_add(1, Relaxed);
    }

    /// The current numbers. Ends are read before begins, so a request ending meanwhile cannot
    /// make in-flight negative.
    pub fn tally(&self) -> Tally {
        let responses = std::array::from_fn(|i| self.ended[i].load(Relaxed));
        let ended: u64 = responses.iter().sum();
        let requests = self.begun.load(Relaxed).max(ended);
        Tally {
            requests,
            in_flight: requests - ended,
            responses,
        }
    }
}

/// Per-location counters by location name. A location holds its `Arc`; a rebuilt location of
/// the same name gets the same counters while the old one lives (the previous snapshot lives
/// while the next is built), so counting goes on across config swaps.
static LOCATIONS: Mutex<Option<HashMap<Arc<str>, Weak<Counters>>>> = Mutex::new(None);

/// The counters of the location `name` (when a snapshot is built, never per request).
pub fn location(name: &str) -> Arc<Counters> {
    let mut map = LOCATIONS.lock().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(c) = map.get(name).and_then(Weak::upgrade) {
        return c;
    }
    // Forget locations no snapshot holds any more (removed, or renamed).
    map.retain(|_, c| c.strong_count() > 0);
    let c = Arc::new(Counters::new());
    map.insert(Arc::from(name), Arc::downgrade(&c));
    c
}

/// Every live location's numbers, sorted by name.
pub fn locations() -> Vec<(Arc<str>, Tally)> {
    let map = LOCATIONS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<(Arc<str>, Tally)> = map
        .iter()
        .flatten()
        .filter_map(|(name, c)| Some((name.clone(), c.upgrade()?.tally())))
        .collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_counted_by_class_and_in_flight_is_what_did_not_end() {
        let c = Counters::new();
        for _ in 0..4 {
            c.begin();
        }
        c.end(200);
        c.end(204);
        c.end(404);
        assert_eq!(
            c.tally(),
            Tally {
                requests: 4,
                in_flight: 1,
                responses: [0, 0, 2, 0, 1, 0]
            }
        );
        c.begin();
        c.end(0);
        c.end(999);
        assert_eq!(c.tally().responses[0], 2);
        assert_eq!(c.tally().in_flight, 0);
    }

    #[test]
    fn a_location_keeps_its_counters_while_a_holder_lives() {
        let first = location("counters-test-a");
        first.begin();
        let again = location("counters-test-a");
        assert!(Arc::ptr_eq(&first, &again));
        let listed = locations();
        let mine = listed.iter().find(|(n, _)| &**n == "counters-test-a");
        assert_eq!(mine.map(|(_, t)| t.in_flight), Some(1));
        drop((first, again));
        // No holder left: the name starts again from zero.
        assert_eq!(location("counters-test-a").tally().requests, 0);
    }
}

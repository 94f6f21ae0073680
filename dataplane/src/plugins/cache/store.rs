//! The memory store: one entry per cache key (all its `Vary` variants together, so a purge
//! drops them all), least recently used evicted first once the entries weigh more than
//! `max_size`.

use bytes::Bytes;
use lru::LruCache;
use pingora_http::ResponseHeader;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Variants kept per key: a `Vary` on a header with endless values (User-Agent) cannot
/// crowd the store with one URL; the oldest variant goes first.
const MAX_VARIANTS: usize = 8;

/// What an entry costs beyond its header and body bytes (maps, Arcs, the LRU node).
const ENTRY_OVERHEAD: usize = 256;

/// A stored response.
pub struct Object {
    /// Status and headers, hop-by-hop headers removed, `Content-Length` set.
    pub header: ResponseHeader,
    /// The whole body.
    pub body: Bytes,
    /// When it was stored.
    pub stored: Instant,
    /// Its age when it was stored (the upstream's `Age`), in seconds.
    pub age_at_store: u64,
    /// Until when it is served without asking the upstream.
    pub fresh_until: Instant,
}

impl Object {
    /// Still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// The `Age` to send, in seconds.
    pub fn age(&self, now: Instant) -> u64 {
        self.age_at_store + now.saturating_duration_since(self.stored).as_secs()
    }

    fn weight(&self) -> usize {
        let headers: usize = self
            .header
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers
    }
}

/// One variant: the request's values of the varied headers, and the response for them.
struct Variant {
    values: Box<[u8]>,
    object: Arc<Object>,
}

/// Everything stored under one key.
struct Entry {
    /// The full key, compared on lookup so a hash collision never serves another URL.
    key: Box<str>,
    /// The response's `Vary` header names (lower case, sorted); empty: one variant.
    vary: Arc<[String]>,
    variants: Vec<Variant>,
    /// Concurrent misses go to the upstream without waiting until then: the last response
    /// was not storable, so waiting would only queue them (and a stream would hold them).
    pass_until: Option<Instant>,
}

impl Entry {
    fn new(key: &str, vary: Arc<[String]>) -> Self {
        Entry {
            key: key.into(),
            vary,
            variants: Vec::new(),
            pass_until: None,
        }
    }

    fn weight(&self) -> usize {
        let variants: usize = self
            .variants
            .iter()
            .map(|v| v.values.len() + v.object.weight())
            .sum();
        ENTRY_OVERHEAD + self.key.len() + variants
    }
}

struct Inner {
    lru: LruCache<u64, Entry>,
    weight: usize,
}

/// What a lookup found.
pub enum Lookup {
    /// A stored response for this request (fresh or not).
    Found(Arc<Object>),
    /// Nothing for this request; `pass`: do not wait for a concurrent miss.
    Missing { pass: bool },
}

/// The memory store of one `cache` plugin instance.
pub struct Store {
    inner: Mutex<Inner>,
    max_size: usize,
    hasher: ahash::RandomState,
}

impl Store {
    /// An empty store bounded by `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Store {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                weight: 0,
            }),
            max_size,
            hasher: ahash::RandomState::new(),
        }
    }

    /// The hash of a full key.
    pub fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every change is one call).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The response stored for `key` and the request's values of the entry's `Vary` names
    /// (`values` computes them); marks the entry as used.
    pub fn get(
        &self,
        hash: u64,
        key: &str,
        values: impl FnOnce(&[String]) -> Box<[u8]>,
        now: Instant,
    ) -> Lookup {
        let mut inner = self.lock();
        let Some(entry) = inner.lru.get(&hash).filter(|e| &*e.key == key) else {
            return Lookup::Missing { pass: false };
        };
        let values = values(&entry.vary);
        match entry.variants.iter().find(|v| v.values == values) {
            Some(v) => Lookup::Found(v.object.clone()),
            None => Lookup::Missing {
                pass: entry.pass_until.is_some_and(|t| now < t),
            },
        }
    }

    /// Stores a response for `key` and these `Vary` values; a different `Vary` list than
    /// the stored one replaces the entry.
    pub fn put(
        &self,
        hash: u64,
        key: &str,
        vary: Arc<[String]>,
        values: Box<[u8]>,
        object: Object,
    ) {
        let variant = Variant {
            values,
            object: Arc::new(object),
        };
        let mut inner = self.lock();
        let mut entry = match Self::take(&mut inner, hash, key) {
            Some(old) if old.vary == vary => old,
            _ => Entry::new(key, vary),
        };
        entry.pass_until = None;
        entry.variants.retain(|v| v.values != variant.values);
        if entry.variants.len() >= MAX_VARIANTS {
            entry.variants.remove(0);
        }
        entry.variants.push(variant);
        self.insert(&mut inner, hash, entry);
    }

    /// Concurrent misses for `key` stop waiting for each other for `for_how_long`.
    pub fn pass(&self, hash: u64, key: &str, for_how_long: Duration, now: Instant) {
        let mut inner = self.lock();
        let mut entry =
            Self::take(&mut inner, hash, key).unwrap_or_else(|| Entry::new(key, Arc::from([])));
        entry.pass_until = Some(now + for_how_long);
        self.insert(&mut inner, hash, entry);
    }

    /// Drops everything stored for `key`; true when something was.
    pub fn remove(&self, hash: u64, key: &str) -> bool {
        let mut inner = self.lock();
        let is_key = inner.lru.peek(&hash).is_some_and(|e| &*e.key == key);
        match is_key.then(|| inner.lru.pop(&hash)).flatten() {
            Some(old) => {
                inner.weight -= old.weight();
                !old.variants.is_empty()
            }
            None => false,
        }
    }

    /// Takes the entry under `hash` out of the store; `Some` only when it is `key`'s.
    fn take(inner: &mut Inner, hash: u64, key: &str) -> Option<Entry> {
        let old = inner.lru.pop(&hash)?;
        inner.weight -= old.weight();
        (&*old.key == key).then_some(old)
    }

    fn insert(&self, inner: &mut Inner, hash: u64, entry: Entry) {
        inner.weight += entry.weight();
        inner.lru.push(hash, entry);
        while inner.weight > self.max_size {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.weight -= old.weight(),
                None => break,
            }
        }
    }

    /// Bytes the entries weigh now.
    #[cfg(test)]
    pub fn weight(&self) -> usize {
        self.lock().weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(body: &'static [u8], ttl: u64) -> Object {
        let now = Instant::now();
        Object {
            header: ResponseHeader::build(200, None).unwrap(),
            body: Bytes::from_static(body),
            stored: now,
            age_at_store: 0,
            fresh_until: now + Duration::from_secs(ttl),
        }
    }

    fn found(l: Lookup) -> Option<Bytes> {
        match l {
            Lookup::Found(o) => Some(o.body.clone()),
            Lookup::Missing { .. } => None,
        }
    }

    #[test]
    fn entries_beyond_max_size_evict_the_least_recently_used() {
        let store = Store::new(3 * 1100);
        let now = Instant::now();
        for i in 0..10u8 {
            let key = format!("k{i}");
            let h = store.hash(&key);
            store.put(h, &key, Arc::from([]), Box::from([]), object(&[7; 700], 60));
            assert!(store.weight() <= 3 * 1100);
            // k0 is used all the time, so it stays.
            let k0 = store.hash("k0");
            assert!(
                found(store.get(k0, "k0", |_| Box::from([]), now)).is_some(),
                "k0 after k{i}"
            );
        }
        assert!(found(store.get(store.hash("k5"), "k5", |_| Box::from([]), now)).is_none());
        assert!(found(store.get(store.hash("k9"), "k9", |_| Box::from([]), now)).is_some());
    }

    #[test]
    fn variants_are_kept_apart_and_bounded_and_a_purge_drops_them_all() {
        let store = Store::new(1 << 20);
        let (key, now) = ("k", Instant::now());
        let h = store.hash(key);
        let vary: Arc<[String]> = Arc::from(["accept-encoding".to_string()]);
        store.put(
            h,
            key,
            vary.clone(),
            Box::from(*b"gzip"),
            object(b"zipped", 60),
        );
        store.put(h, key, vary.clone(), Box::from(*b""), object(b"plain", 60));
        assert_eq!(
            found(store.get(h, key, |_| Box::from(*b"gzip"), now)).unwrap(),
            "zipped"
        );
        assert_eq!(
            found(store.get(h, key, |_| Box::from(*b""), now)).unwrap(),
            "plain"
        );
        for i in 0..20u8 {
            store.put(h, key, vary.clone(), Box::from([i]), object(b"x", 60));
        }
        assert!(
            found(store.get(h, key, |_| Box::from(*b"gzip"), now)).is_none(),
            "oldest went"
        );
        assert!(store.remove(h, key));
        assert!(found(store.get(h, key, |_| Box::from([19]), now)).is_none());
        assert!(!store.remove(h, key));
        assert_eq!(store.weight(), 0);
    }

    #[test]
    fn a_hash_collision_never_serves_another_key() {
        let store = Store::new(1 << 20);
        store.put(1, "a", Arc::from([]), Box::from([]), object(b"a", 60));
        assert!(found(store.get(1, "b", |_| Box::from([]), Instant::now())).is_none());
        assert!(!store.remove(1, "b"));
    }
}

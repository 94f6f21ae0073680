//! Request coalescing: the first miss for a key goes to the upstream holding the key's
//! lock; concurrent misses for that key wait until it is released (the response stored, or
//! found not storable, or the request gone), then look again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

type KeyLock = Arc<RwLock<()>>;

/// The keys being fetched right now (only in-flight misses, so bounded by concurrency).
#[derive(Default)]
pub struct Locks(Arc<Mutex<HashMap<u64, KeyLock>>>);

/// What a miss does.
pub enum Claim {
    /// Fetch it; dropping the [`Fill`] lets the waiters go.
    Fetch(Fill),
    /// Another request is fetching it: wait on this.
    Wait(KeyLock),
}

/// Held by the request fetching a key; dropping it releases the key's waiters.
pub struct Fill {
    locks: Arc<Mutex<HashMap<u64, KeyLock>>>,
    hash: u64,
    lock: KeyLock,
    _guard: OwnedRwLockWriteGuard<()>,
}

impl Locks {
    /// Becomes the fetcher of `hash`, or learns whom to wait for.
    pub fn claim(&self, hash: u64) -> Claim {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(&hash) {
            return Claim::Wait(lock.clone());
        }
        let lock = KeyLock::default();
        // Taken while the map is locked, so no waiter can get in first.
        let Ok(guard) = lock.clone().try_write_owned() else {
            unreachable!("a new lock is free")
        };
        map.insert(hash, lock.clone());
        Claim::Fetch(Fill {
            locks: self.0.clone(),
            hash,
            lock,
            _guard: guard,
        })
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.hash)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock))
        {
            map.remove(&self.hash);
        }
    }
}

/// Waits until the fetch of the key is over.
pub async fn wait(lock: KeyLock) {
    drop(lock.read().await);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_go_when_the_fill_is_dropped_and_the_key_is_free_again() {
        let locks = Locks::default();
        let Claim::Fetch(fill) = locks.claim(7) else {
            panic!("the first claim fetches")
        };
        let Claim::Wait(lock) = locks.claim(7) else {
            panic!("the second waits")
        };
        assert!(
            matches!(locks.claim(8), Claim::Fetch(_)),
            "other keys are free"
        );
        let waiting = tokio::spawn(wait(lock));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(fill);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(locks.claim(7), Claim::Fetch(_)));
    }
}

//! Per-token admission of requests that carry a body to parse and validate (writes, imports,
//! dry runs): each token has its own few slots, so one token's flood of large bodies waits
//! in its own queue and cannot stall the other tokens' calls.

use crate::error::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests with a body one token may have in progress at once.
pub const PER_TOKEN: usize = 2;
/// How long a request waits for its token's slot before 429.
pub const WAIT: Duration = Duration::from_secs(30);

/// The slots, by actor (one per token; `local` in open mode).
#[derive(Debug, Default)]
pub struct Admission {
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Admission {
    /// Waits for one of `actor`'s slots; 429 after [`WAIT`]. Hold the permit until answered.
    pub async fn admit(&self, actor: &str) -> Result<OwnedSemaphorePermit, ApiError> {
        let slots = {
            let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded by the configured tokens: only authenticated actors get here.
            map.entry(actor.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_TOKEN)))
                .clone()
        };
        match tokio::time::timeout(WAIT, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::RateLimited(format!(
                "this token already has {PER_TOKEN} writes or dry runs in progress; try again when they finish"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_token_has_its_own_slots() {
        let a = Admission::default();
        let _one = a.admit("admin:x").await.unwrap();
        let _two = a.admit("admin:x").await.unwrap();
        // Another token is not held up by the first one's.
        let other = tokio::time::timeout(Duration::from_secs(1), a.admit("viewer:y")).await;
        assert!(matches!(other, Ok(Ok(_))));
        let third = tokio::time::timeout(Duration::from_millis(100), a.admit("admin:x")).await;
        assert!(third.is_err(), "the third waits");
    }
}

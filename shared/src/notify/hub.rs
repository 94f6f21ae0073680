//! The event hub: events are numbered, kept in a bounded list of recent ones, and broadcast
//! to live subscribers (the control plane's SSE and gRPC `WatchEvents`, the webhook sender).
//! Emitting never blocks: a subscriber that falls behind loses the oldest events, and the
//! webhook sender counts them as dropped.

use super::event::Event;
use crate::model::Webhook;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// Recent events kept by default.
pub const DEFAULT_RECENT: usize = 1000;
/// Events a live subscriber may fall behind by before it loses the oldest.
const BROADCAST_CAPACITY: usize = 1024;

struct Inner {
    next: AtomicU64,
    recent: Mutex<VecDeque<Event>>,
    capacity: usize,
    tx: broadcast::Sender<Event>,
    webhook: watch::Sender<Option<Webhook>>,
}

/// The event hub (cheap to clone).
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// A hub keeping `capacity` recent events.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (webhook, _) = watch::channel(None);
        Events {
            inner: Arc::new(Inner {
                next: AtomicU64::new(1),
                recent: Mutex::new(VecDeque::new()),
                capacity: capacity.max(1),
                tx,
                webhook,
            }),
        }
    }

    /// Records and broadcasts an event; returns it.
    pub fn emit(&self, name: &str, message: String, node: &str, details: Value) -> Event {
        let event = {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
            // Numbered under the lock, so the list stays in id order.
            let event = Event {
                id: self.inner.next.fetch_add(1, Ordering::Relaxed),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                name: name.to_string(),
                message,
                node: node.to_string(),
                details,
            };
            if recent.len() >= self.inner.capacity {
                recent.pop_front();
            }
            recent.push_back(event.clone());
            // Broadcast under the lock too (never blocks; no subscriber is fine), so
            // `replay_and_subscribe` sees each event exactly once.
            let _ = self.inner.tx.send(event.clone());
            event
        };
        tracing::info!(event = %event.name, node = %event.node, "{}", first_line(&event.message));
        event
    }

    /// Up to `limit` recent events with an id above `after`, oldest first.
    pub fn recent(&self, after: u64, limit: usize) -> Vec<Event> {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        let newer: Vec<&Event> = recent.iter().filter(|e| e.id > after).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.tx.subscribe()
    }

    /// Recent events after `after`, and a receiver for the live ones after those, with no
    /// gap and no duplicate between the two.
    pub fn replay_and_subscribe(&self, after: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        // Subscribing under the list's lock: an event is either in the list or in the
        // receiver (emit pushes and broadcasts under the same lock).
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.inner.tx.subscribe();
        let past = recent.iter().filter(|e| e.id > after).cloned().collect();
        (past, rx)
    }

    /// Sets the webhook the sender delivers to (from `basic.webhook`).
    pub fn set_webhook(&self, webhook: Option<Webhook>) {
        self.inner.webhook.send_if_modified(|current| {
            if *current == webhook {
                false
            } else {
                *current = webhook;
                true
            }
        });
    }

    /// The webhook setting, as it changes.
    pub fn webhook(&self) -> watch::Receiver<Option<Webhook>> {
        self.inner.webhook.subscribe()
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_is_bounded_and_ordered() {
        let events = Events::new(3);
        let mut rx = events.subscribe();
        for i in 0..5 {
            events.emit("node_online", format!("n{i}"), "n", json!({}));
        }
        let ids: Vec<u64> = events.recent(0, 10).iter().map(|e| e.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(events.recent(3, 10).len(), 2);
        assert_eq!(events.recent(0, 1)[0].id, 5);
        assert_eq!(rx.try_recv().unwrap().id, 1);
        let (past, _rx) = events.replay_and_subscribe(4);
        assert_eq!(past.len(), 1);
    }
}

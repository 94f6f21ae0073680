//! Notification events of a single node (file mode, no control plane): `diff_config`,
//! `config_rejected`, `restart_pending`, `restart`, `backend_unhealthy` and
//! `backend_healthy`, delivered to `basic.webhook` by the shared sender
//! (`louailink_shared::notify`), exactly as the control plane delivers its own.
//!
//! Emitting never blocks the request path or a reload: events go into a bounded broadcast
//! buffer that the webhook task drains; when it falls behind, the oldest are dropped and
//! counted. Nothing is emitted unless `basic.webhook` is set. In etcd mode the notifier is
//! [`Notifier::off`]: the control plane sends the events from the nodes' status keys.

use louailink_shared::model::Webhook;
use louailink_shared::notify::diff::{config_changes, render};
use louailink_shared::notify::webhook::{self, Retry, Stats};
use louailink_shared::notify::Events;
use louailink_shared::Config;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

/// Recent events kept in memory (only the webhook task reads them, live).
const RECENT: usize = 16;

/// This node's event sender (cheap to share).
pub struct Notifier {
    /// `None` when off (etcd mode).
    events: Option<Events>,
    node: String,
    /// Where the config comes from (named in `config_rejected`).
    source: String,
    sender: OnceLock<Option<Arc<Stats>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("on", &self.events.is_some())
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for node `node` following the config at `source`, delivering to `webhook`
    /// (from `basic.webhook`).
    pub fn new(node: &str, source: &str, webhook: Option<Webhook>) -> Arc<Self> {
        let events = Events::new(RECENT);
        events.set_webhook(webhook);
        Arc::new(Notifier {
            events: Some(events),
            node: node.to_string(),
            source: source.to_string(),
            sender: OnceLock::new(),
        })
    }

    /// A notifier that sends nothing.
    pub fn off() -> Arc<Self> {
        Arc::new(Notifier {
            events: None,
            node: String::new(),
            source: String::new(),
            sender: OnceLock::new(),
        })
    }

    /// Starts the webhook task once a webhook is configured (once; needs a tokio runtime).
    pub fn start(&self) {
        let Some(events) = &self.events else { return };
        if events.webhook().borrow().is_none() {
            return;
        }
        self.sender.get_or_init(|| {
            webhook::spawn(events, Retry::default())
                .inspect_err(|e| tracing::error!(error = %e, "cannot start the webhook sender"))
                .ok()
        });
    }

    /// Delivery counters, once started.
    pub fn stats(&self) -> Option<Arc<Stats>> {
        self.sender.get().cloned().flatten()
    }

    /// Follows a new `basic.webhook` (starting the webhook task if it is the first).
    pub fn set_webhook(&self, webhook: Option<Webhook>) {
        if let Some(events) = &self.events {
            events.set_webhook(webhook);
            self.start();
        }
    }

    /// True when an event named `name` would be delivered.
    pub fn wants(&self, name: &str) -> bool {
        let Some(events) = &self.events else {
            return false;
        };
        let hook = events.webhook();
        let wanted = hook
            .borrow()
            .as_ref()
            .is_some_and(|h| webhook::wanted(h, name));
        wanted
    }

    /// Sends an event (never blocks); does nothing unless it is wanted.
    pub fn emit(&self, name: &str, message: String, details: Value) {
        if let (Some(events), true) = (&self.events, self.wants(name)) {
            events.emit(name, message, &self.node, details);
        }
    }

    /// `diff_config` for a change from `before` to `after` (secrets hashed).
    pub fn config_changed(&self, before: &Config, after: &Config) {
        if !self.wants("diff_config") {
            return;
        }
        let changes = config_changes(before, after);
        if changes.is_empty() {
            return;
        }
        let message = render(&changes);
        self.emit("diff_config", message, json!({ "changes": changes }));
    }

    /// `config_rejected`: the edit was not applied; the running config keeps serving.
    pub fn config_rejected(&self, errors: &[String]) {
        let message = format!(
            "the config at {} was rejected; the running config keeps serving:\n{}",
            self.source,
            errors.join("\n")
        );
        self.emit(
            "config_rejected",
            message,
            json!({ "source": self.source, "errors": errors }),
        );
    }

    /// `restart_pending`: listener changes of `servers` wait for a restart.
    pub fn restart_pending(&self, servers: &[String]) {
        self.emit(
            "restart_pending",
            format!(
                "listener changes need a restart (servers: {})",
                servers.join(", ")
            ),
            json!({ "servers": servers }),
        );
    }

    /// `restart`: a zero-downtime self-upgrade starts for listener changes of `servers`.
    pub fn restarting(&self, servers: &[String]) {
        self.emit(
            "restart",
            format!(
                "self-upgrade for listener changes (servers: {})",
                servers.join(", ")
            ),
            json!({ "servers": servers }),
        );
    }

    /// `backend_unhealthy` / `backend_healthy`: one per transition seen by the health check.
    pub fn backend_health(&self, upstream: &str, backend: &str, healthy: bool) {
        let (name, state) = if healthy {
            ("backend_healthy", "healthy")
        } else {
            ("backend_unhealthy", "unhealthy")
        };
        self.emit(
            name,
            format!("upstreams.{upstream}: backend {backend} is {state}"),
            json!({ "upstream": upstream, "backend": backend, "healthy": healthy }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use louailink_shared::values::StrList;

    #[tokio::test]
    async fn only_wanted_events_are_emitted() {
        let off = Notifier::off();
        assert!(!off.wants("diff_config"));
        let n = Notifier::new("n1", "/etc/l.toml", None);
        let events = n.events.clone().unwrap();
        let mut rx = events.subscribe();
        n.backend_health("u", "127.0.0.1:9", false);
        assert!(rx.try_recv().is_err(), "no webhook, no event");
        n.set_webhook(Some(Webhook {
            url: "http://127.0.0.1:9/hook".into(),
            kind: None,
            notifications: StrList(vec!["backend_unhealthy".into()]),
        }));
        n.backend_health("u", "127.0.0.1:9", true);
        n.backend_health("u", "127.0.0.1:9", false);
        let e = rx.try_recv().expect("a wanted event");
        assert_eq!(
            (e.name.as_str(), e.node.as_str()),
            ("backend_unhealthy", "n1")
        );
        assert_eq!(e.details["upstream"], "u");
        assert!(rx.try_recv().is_err());
    }
}

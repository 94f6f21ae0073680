//! Webhook delivery: every event is POSTed to `basic.webhook.url` in the chosen format
//! (`json`, `slack`, `wecom`, `dingtalk`, `feishu`), only for the names in
//! `basic.webhook.notifications` (empty = all). A task reads the event broadcast, so
//! delivery never blocks a write; a failing receiver is retried with exponential backoff;
//! while it is retried, newer events wait in the bounded broadcast buffer, and those that
//! fall out of it are counted as dropped. The URL (which may hold a token) is never logged:
//! a hash of it is.

use super::diff::hash_str;
use super::event::Event;
use super::hub::Events;
use crate::model::Webhook;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Delivery counters.
#[derive(Debug, Default)]
pub struct Stats {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsView {
    /// Events the receiver accepted.
    pub delivered: u64,
    /// Events given up after every retry.
    pub failed: u64,
    /// Events lost because the sender fell too far behind.
    pub dropped: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
}

impl Stats {
    /// The current counts.
    pub fn view(&self) -> StatsView {
        StatsView {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts per event (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Starts the sender; returns its counters.
pub fn spawn(events: &Events, retry: Retry) -> Result<Arc<Stats>, reqwest::Error> {
    let stats = Arc::new(Stats::default());
    // Subscribed first: events emitted while the client is built are delivered too.
    let mut rx = events.subscribe();
    // reqwest is built without a provider: ring is the only one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(retry.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let config = events.webhook();
    let counters = stats.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let hook = config.borrow().clone();
                    if let Some(hook) = hook.filter(|h| wanted(h, &event.name)) {
                        deliver(&client, &hook, &event, retry, &counters).await;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("webhook sender fell behind: {n} events dropped");
                    counters.dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(stats)
}

/// Whether `hook` wants events named `name`.
pub fn wanted(hook: &Webhook, name: &str) -> bool {
    !hook.url.trim().is_empty()
        && (hook.notifications.is_empty() || hook.notifications.iter().any(|n| n == name))
}

async fn deliver(
    client: &reqwest::Client,
    hook: &Webhook,
    event: &Event,
    retry: Retry,
    stats: &Stats,
) {
    let body = payload(hook.kind.as_deref().unwrap_or("json"), event);
    let mut wait = retry.first;
    for attempt in 1..=retry.attempts.max(1) {
        let result = client.post(hook.url.trim()).json(&body).send().await;
        let problem = match result {
            Ok(resp) if resp.status().is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(resp) => format!("answered {}", resp.status()),
            // The error text may contain the URL: only its kind is logged.
            Err(e) if e.is_timeout() => "timed out".to_string(),
            Err(e) if e.is_connect() => "cannot connect".to_string(),
            Err(_) => "request failed".to_string(),
        };
        tracing::warn!(
            url = %hash_str(&hook.url),
            event = %event.name,
            attempt,
            "webhook delivery failed: {problem}"
        );
        if attempt == retry.attempts.max(1) {
            break;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        tokio::time::sleep(wait.mul_f64(jitter)).await;
        wait = (wait * 2).min(retry.max);
    }
    stats.failed.fetch_add(1, Ordering::Relaxed);
}

/// The body for a receiver type.
pub fn payload(kind: &str, event: &Event) -> Value {
    let node = if event.node.is_empty() {
        String::new()
    } else {
        format!(" (node {})", event.node)
    };
    let title = format!("[louailink] {}{node}", event.name);
    let text = format!("{title}\n{}", event.message);
    match kind {
        "slack" => json!({ "text": format!("*{title}*\n```\n{}\n```", event.message) }),
        "wecom" => json!({
            "msgtype": "markdown",
            "markdown": { "content": format!("**{title}**\n{}", event.message) }
        }),
        "dingtalk" => json!({
            "msgtype": "markdown",
            "markdown": { "title": title, "text": format!("### {title}\n{}", event.message) }
        }),
        "feishu" => json!({ "msg_type": "text", "content": { "text": text } }),
        _ => serde_json::to_value(event).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::StrList;

    #[test]
    fn formats_and_filters() {
        let e = Event {
            id: 1,
            time: "t".into(),
            name: "node_online".into(),
            message: "n1 registered".into(),
            node: "n1".into(),
            details: json!({}),
        };
        assert_eq!(payload("json", &e)["name"], "node_online");
        assert!(payload("slack", &e)["text"]
            .as_str()
            .unwrap()
            .contains("n1 registered"));
        assert_eq!(payload("wecom", &e)["msgtype"], "markdown");
        assert!(payload("dingtalk", &e)["markdown"]["title"].is_string());
        assert_eq!(payload("feishu", &e)["msg_type"], "text");
        let mut hook = Webhook {
            url: "http://x".into(),
            ..Webhook::default()
        };
        assert!(wanted(&hook, "diff_config"));
        hook.notifications = StrList(vec!["node_online".into()]);
        assert!(!wanted(&hook, "diff_config") && wanted(&hook, "node_online"));
        hook.url = " ".into();
        assert!(!wanted(&hook, "node_online"));
    }
}

//! The follower: a task that keeps a complete desired config in step with an etcd prefix and
//! publishes it on a [`tokio::sync::watch`] channel (controlplane.md, "How a data plane
//! follows etcd"):
//!
//! 1. Read the whole prefix in pages ([`EtcdStore::read_prefix`]), build, publish; then watch
//!    the prefix from that read's revision + 1 on **one** watch stream.
//! 2. The events of one watch message are applied together (etcd never splits a revision
//!    across messages without `fragment`, which is not asked for), and so are all messages
//!    already waiting: a burst is built once. The channel keeps only the newest state, so a
//!    slow consumer never sees a backlog either.
//! 3. After a disconnect the watch resumes from the last applied revision. If etcd says that
//!    revision is compacted, or the revision went backwards / the cluster id changed (etcd
//!    restored or rebuilt), the whole prefix is read again and diffed; if nothing changed,
//!    nothing is built. The revision never skips ahead.
//! 4. A progress request is sent every `progress_interval` (etcd answers each at once); a
//!    watch with no message at all for `dead_after` is declared dead and reopened (HTTP/2
//!    keep-alive pings run underneath too). The defaults (10 s, 25 s) detect a silently dead
//!    watch within 30 s. Reconnects back off exponentially with jitter.
//! 5. Items are validated one by one and as a whole, see [`crate::storage::desired`].
//! 6. A seed (the state file's snapshot) is published at once with `stale: true`, so a node
//!    can serve while etcd is unreachable; `stale` is true until the first read succeeds and
//!    whenever etcd cannot be reached.
//! 7. A wiped prefix is not published; see [`Alarm::WipedPrefix`].
//! 8. Items the node could not build come back through [`Follower::unbuildable`] and are
//!    rejected per key (see [`crate::storage::desired`], rule 5), so one such item never
//!    stops the node from following.
//! 9. While `meta/import` exists (a change staged over several transactions by the control
//!    plane is being written or rolled back) changes are taken in but nothing is built; when
//!    it goes, the whole change is built at once. A node that starts meanwhile keeps its
//!    seed (state file) until then.
//!
//! Subscribers are woken when the config, the rejected items, the alarms or `stale` change.
//! The revision, generation and counters are updated without waking anyone (so the
//! re-read of an unchanged prefix delivers nothing), but are visible to `borrow()`.

use crate::model::Config;
use crate::storage::desired::{Alarm, Event, Mirror, Outcome, Rejected};
use crate::storage::digest::config_hash;
use crate::storage::etcd::{EtcdError, EtcdStore, PrefixRead, RawEntry, DEFAULT_PAGE_SIZE};
use crate::storage::keys::{ItemKey, KeyError, Keys};
use crate::storage::source::EtcdSpec;
use crate::storage::state_file::StateSnapshot;
use etcd_client::{EventType, WatchResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Tuning of a [`Follower`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerOptions {
    /// Keys per page of a full read.
    pub page_size: usize,
    /// How often a progress request is sent on the watch.
    pub progress_interval: Duration,
    /// A watch with no message for this long is dead.
    pub dead_after: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        FollowerOptions {
            page_size: DEFAULT_PAGE_SIZE,
            progress_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(25),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// What the follower publishes: the desired config and everything a node reports about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FollowState {
    /// The complete desired config; `None` until one is known (seed or etcd).
    pub config: Option<Arc<Config>>,
    /// Hash of `config` (see [`config_hash`]).
    pub hash: Option<String>,
    /// Newest etcd revision reflected (0 before the first read when not seeded).
    pub revision: i64,
    /// Value of `meta/generation`, when present.
    pub generation: Option<i64>,
    /// Values not applied, and why.
    pub rejected: Vec<Rejected>,
    /// Raised alarms.
    pub alarms: Vec<Alarm>,
    /// True when etcd is unreachable (and until the first successful read).
    pub stale: bool,
    /// The last etcd error, while `stale`.
    pub last_error: Option<String>,
    /// How many times a config was built from etcd data.
    pub builds: u64,
    /// How many full reads of the prefix were made.
    pub reads: u64,
}

/// Items a node could not build, with the config it serves instead.
type Unbuildable = (Arc<Config>, Vec<(ItemKey, String)>);

/// A running follower; dropping it stops the task.
#[derive(Debug)]
pub struct Follower {
    rx: watch::Receiver<Arc<FollowState>>,
    unbuildable: mpsc::UnboundedSender<Unbuildable>,
    task: JoinHandle<()>,
}

impl Follower {
    /// Starts following `spec` (must be called inside a Tokio runtime). `seed` is the last
    /// good snapshot from the state file, if any.
    pub fn spawn(
        spec: EtcdSpec,
        seed: Option<&StateSnapshot>,
        options: FollowerOptions,
    ) -> Result<Follower, KeyError> {
        let keys = Keys::new(&spec.prefix)?;
        let (mirror, initial) = match seed {
            Some(seed) => (
                Mirror::seeded(keys.clone(), &seed.config, seed.revision),
                FollowState {
                    hash: Some(config_hash(&seed.config)),
                    config: Some(Arc::new(seed.config.clone())),
                    revision: seed.revision,
                    stale: true,
                    ..FollowState::default()
                },
            ),
            None => (
                Mirror::new(keys.clone()),
                FollowState {
                    stale: true,
                    ..FollowState::default()
                },
            ),
        };
        let (tx, rx) = watch::channel(Arc::new(initial));
        let (unbuildable, reports) = mpsc::unbounded_channel();
        let backoff = options.backoff_min;
        let task = Task {
            spec,
            options,
            tx,
            reports,
            mirror,
            cluster_id: None,
            stale: true,
            last_error: None,
            builds: 0,
            reads: 0,
            backoff,
        };
        Ok(Follower {
            rx,
            unbuildable,
            task: tokio::spawn(task.run()),
        })
    }

    /// A receiver of the published states (`changed()` wakes on meaningful changes).
    pub fn subscribe(&self) -> watch::Receiver<Arc<FollowState>> {
        self.rx.clone()
    }

    /// The newest state.
    pub fn state(&self) -> Arc<FollowState> {
        self.rx.borrow().clone()
    }

    /// Reports items of the published config that the node could not build, and the config
    /// it serves instead: they are rejected per key and the rest is published again.
    pub fn unbuildable(&self, applied: Arc<Config>, items: Vec<(ItemKey, String)>) {
        if !items.is_empty() {
            let _ = self.unbuildable.send((applied, items));
        }
    }

    /// Stops the task (also done on drop).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a watch ended.
enum End {
    /// The resume revision is compacted: read everything again.
    Compacted(i64),
    /// etcd's revision is behind ours or its cluster id changed: read everything again.
    Backwards(String),
    /// The stream broke after it was established.
    Lost(String),
}

struct Task {
    spec: EtcdSpec,
    options: FollowerOptions,
    tx: watch::Sender<Arc<FollowState>>,
    /// Items the node could not build ([`Follower::unbuildable`]).
    reports: mpsc::UnboundedReceiver<Unbuildable>,
    mirror: Mirror,
    cluster_id: Option<u64>,
    stale: bool,
    last_error: Option<String>,
    builds: u64,
    reads: u64,
    backoff: Duration,
}

impl Task {
    async fn run(mut self) {
        let mut store: Option<EtcdStore> = None;
        let mut need_read = true;
        loop {
            let current = match store.clone() {
                Some(s) => s,
                None => match EtcdStore::connect(&self.spec).await {
                    Ok(s) => {
                        let s = s.with_page_size(self.options.page_size);
                        store = Some(s.clone());
                        s
                    }
                    Err(e) => {
                        self.failed(e).await;
                        continue;
                    }
                },
            };
            if need_read {
                match current.read_prefix().await {
                    Ok(read) => {
                        self.full_read(read);
                        need_read = false;
                    }
                    Err(e) => {
                        store = None;
                        self.failed(e).await;
                        continue;
                    }
                }
            }
            match self.follow(&current).await {
                Ok(End::Compacted(at)) => {
                    tracing::info!(
                        revision = self.mirror.revision(),
                        compacted = at,
                        "etcd compacted past the last applied revision; reading the prefix again"
                    );
                    need_read = true;
                }
                Ok(End::Backwards(why)) => {
                    tracing::warn!("{why}; reading the prefix again");
                    need_read = true;
                }
                Ok(End::Lost(why)) => {
                    let revision = self.mirror.revision();
                    tracing::warn!("etcd watch lost: {why}; resuming after revision {revision}");
                    store = None;
                    self.sleep().await;
                }
                Err(e) => {
                    store = None;
                    self.failed(e).await;
                }
            }
        }
    }

    /// etcd could not be reached: report stale and wait before the next attempt.
    async fn failed(&mut self, e: EtcdError) {
        tracing::warn!("etcd unavailable: {e}");
        self.stale = true;
        self.last_error = Some(e.to_string());
        self.publish(None);
        self.sleep().await;
    }

    /// Sleeps the current backoff (with jitter) and doubles it.
    async fn sleep(&mut self) {
        let jitter = 0.5 + fastrand::f64() * 0.5;
        tokio::time::sleep(self.backoff.mul_f64(jitter)).await;
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
    }

    /// Applies a full read; builds only if something changed (or nothing was ever built).
    fn full_read(&mut self, read: PrefixRead) {
        self.reads += 1;
        self.cluster_id = Some(read.cluster_id);
        self.stale = false;
        self.last_error = None;
        let changed = self.mirror.replace(&read);
        tracing::debug!(
            revision = read.revision,
            keys = read.entries.len(),
            pages = read.pages,
            changed,
            "read the etcd prefix"
        );
        // While a staged change is in progress nothing is built (see `Mirror::staged`).
        let outcome =
            ((changed || self.builds == 0) && !self.mirror.staged()).then(|| self.build());
        self.publish(outcome);
    }

    /// Builds off the async threads when the runtime allows it (validation can take a while).
    fn build(&mut self) -> Outcome {
        self.builds += 1;
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.mirror.build())
        } else {
            self.mirror.build()
        }
    }

    /// Publishes the current state; wakes subscribers only on meaningful changes.
    fn publish(&mut self, outcome: Option<Outcome>) {
        let previous = self.tx.borrow().clone();
        let mut next = (*previous).clone();
        if let Some(outcome) = outcome {
            if let Some((config, hash)) = outcome.config {
                if previous.hash.as_deref() != Some(hash.as_str()) {
                    next.config = Some(Arc::new(config));
                    next.hash = Some(hash);
                }
            }
            next.rejected = outcome.rejected;
            next.alarms = outcome.alarms;
        }
        // The revision reported as applied stays put while a staged change is held back.
        if !self.mirror.staged() {
            next.revision = self.mirror.revision();
            next.generation = self.mirror.generation();
        }
        next.stale = self.stale;
        next.last_error = self.last_error.clone();
        next.builds = self.builds;
        next.reads = self.reads;
        let wake = next.hash != previous.hash
            || next.rejected != previous.rejected
            || next.alarms != previous.alarms
            || next.stale != previous.stale;
        if wake {
            for r in next
                .rejected
                .iter()
                .filter(|r| !previous.rejected.contains(r))
            {
                tracing::warn!(key = r.key, revision = r.revision, "rejected: {}", r.error);
            }
            for a in next.alarms.iter().filter(|a| !previous.alarms.contains(a)) {
                tracing::error!(alarm = ?a, "etcd config alarm raised; last good config kept");
            }
        }
        self.tx.send_if_modified(|state| {
            *state = Arc::new(next);
            wake
        });
    }

    /// Watches from the last applied revision until the watch ends.
    async fn follow(&mut self, store: &EtcdStore) -> Result<End, EtcdError> {
        let mut stream = store.watch(self.mirror.revision() + 1).await?;
        let mut last_message = Instant::now();
        let mut progress = tokio::time::interval(self.options.progress_interval);
        progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
        progress.tick().await;
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(r)) => r,
                        Ok(None) => return Ok(End::Lost("etcd closed the watch stream".into())),
                        Err(e) => return Ok(End::Lost(e.to_string())),
                    };
                    last_message = Instant::now();
                    let mut events = Vec::new();
                    let mut end = self.take(response, &mut events);
                    // Everything already waiting is part of the same burst.
                    while end.is_none() {
                        match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                            Ok(Ok(Some(r))) => end = self.take(r, &mut events),
                            Ok(Ok(None)) => end = Some(End::Lost("etcd closed the watch stream".into())),
                            Ok(Err(e)) => end = Some(End::Lost(e.to_string())),
                            Err(_) => break,
                        }
                    }
                    if !events.is_empty() {
                        let changed = self.mirror.apply(&events);
                        let outcome = (changed && !self.mirror.staged()).then(|| self.build());
                        self.publish(outcome);
                    }
                    if let Some(end) = end {
                        return Ok(end);
                    }
                }
                Some((applied, items)) = self.reports.recv() => {
                    if self.mirror.unbuildable(&applied, &items) && !self.mirror.staged() {
                        let outcome = self.build();
                        self.publish(Some(outcome));
                    }
                }
                _ = progress.tick() => {
                    if let Err(e) = stream.request_progress().await {
                        return Ok(End::Lost(e.to_string()));
                    }
                }
                _ = tokio::time::sleep_until(last_message + self.options.dead_after) => {
                    let silent = self.options.dead_after;
                    return Ok(End::Lost(format!("no message for {silent:?}; the watch looks dead")));
                }
            }
        }
    }

    /// Takes one watch message: its events go to `events`; returns why the watch ends, if it does.
    fn take(&mut self, response: WatchResponse, events: &mut Vec<Event>) -> Option<End> {
        if response.compact_revision() > 0 {
            return Some(End::Compacted(response.compact_revision()));
        }
        if response.canceled() {
            return Some(End::Lost(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            )));
        }
        if response.created() {
            if let Some(header) = response.header() {
                let ours = self.mirror.revision();
                if header.revision() < ours {
                    return Some(End::Backwards(format!(
                        "etcd is at revision {} but revision {ours} was applied (restored or wiped?)",
                        header.revision()
                    )));
                }
                if self.cluster_id.is_some_and(|id| id != header.cluster_id()) {
                    return Some(End::Backwards("etcd's cluster id changed".into()));
                }
                self.cluster_id = Some(header.cluster_id());
            }
            self.backoff = self.options.backoff_min;
            if self.stale {
                self.stale = false;
                self.last_error = None;
                self.publish(None);
            }
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            events.push(match event.event_type() {
                EventType::Put => Event::Put(RawEntry {
                    key,
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
                EventType::Delete => Event::Delete {
                    key,
                    revision: kv.mod_revision(),
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_detect_a_dead_watch_within_30s() {
        let o = FollowerOptions::default();
        // A live watch answers each progress request, so a silence of `dead_after` (timed
        // from the last message, hence from the death at the latest) means a dead watch.
        assert!(o.dead_after <= Duration::from_secs(30));
        assert!(o.progress_interval * 2 <= o.dead_after);
    }
}

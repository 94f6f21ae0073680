//! Traffic while something happens (a config swap, an upgrade, etcd going away): loops
//! sending one request after another and recording every failure, so a test can assert
//! that none failed.

use crate::{Client, Reply};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Judges one answer: `Err(why)` makes it a failure.
pub type Check = Arc<dyn Fn(&Reply) -> Result<(), String> + Send + Sync>;

/// Running request loops; [`Load::stop`] ends them and returns what happened.
pub struct Load {
    name: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<String>>>,
}

/// What a [`Load`] saw.
#[derive(Debug)]
pub struct Report {
    /// The load's name.
    pub name: String,
    /// Requests sent.
    pub sent: usize,
    /// Each failed request (loop number, when it was sent from the start): transport error
    /// or rejected answer.
    pub failures: Vec<String>,
}

impl Report {
    /// Asserts that requests were sent and none failed.
    #[track_caller]
    pub fn assert_no_failure(&self) {
        assert_no_failures(std::slice::from_ref(self));
    }

    fn problem(&self) -> Option<String> {
        if self.sent == 0 {
            return Some(format!("{}: no request was sent", self.name));
        }
        (!self.failures.is_empty()).then(|| {
            format!(
                "{}: {} of {} requests failed; first ones: {:#?}",
                self.name,
                self.failures.len(),
                self.sent,
                &self.failures[..self.failures.len().min(5)]
            )
        })
    }
}

/// Asserts that every load sent requests and none failed (naming every load that did not).
#[track_caller]
pub fn assert_no_failures(reports: &[Report]) {
    let problems: Vec<String> = reports.iter().filter_map(Report::problem).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// How a loop gets its connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conns {
    /// Its own client, whose connection is kept alive and reused.
    KeepAlive,
    /// A new client (new connection) per request.
    Fresh,
}

/// How many loops, on which connections, pausing how long between requests.
#[derive(Clone, Copy)]
struct Shape {
    conns: Conns,
    loops: usize,
    pause: Option<Duration>,
}

/// The pause of ordinary loops: keeps them from taking whole CPUs from other tests.
const PAUSE: Option<Duration> = Some(Duration::from_millis(1));

fn shape(conns: Conns, loops: usize, pause: Option<Duration>) -> Shape {
    Shape {
        conns,
        loops,
        pause,
    }
}

impl Load {
    /// `GET host path` in a loop on one kept-alive connection; a request fails unless it
    /// answers 200.
    pub fn keep_alive(name: &str, client: &Client, host: &str, path: &str) -> Load {
        let shape = shape(Conns::KeepAlive, 1, PAUSE);
        Self::start(name, client, host, path, shape, status_200())
    }

    /// `n` loops, each on its own kept-alive connection, each sending its next request as
    /// soon as the previous answer arrived: connections that are never idle for long, which
    /// a graceful shutdown must move (`Connection: close`) rather than drop.
    pub fn busy_keep_alive(name: &str, client: &Client, n: usize, host: &str, path: &str) -> Load {
        let shape = shape(Conns::KeepAlive, n, None);
        Self::start(name, client, host, path, shape, status_200())
    }

    /// Like [`Self::keep_alive`] with a new connection for every request.
    pub fn fresh_connections(name: &str, client: &Client, host: &str, path: &str) -> Load {
        let shape = shape(Conns::Fresh, 1, PAUSE);
        Self::start(name, client, host, path, shape, status_200())
    }

    /// `GET host path` on one kept-alive connection, each answer judged by `check`.
    pub fn checked(name: &str, client: &Client, host: &str, path: &str, check: Check) -> Load {
        let shape = shape(Conns::KeepAlive, 1, PAUSE);
        Self::start(name, client, host, path, shape, check)
    }

    fn start(
        name: &str,
        client: &Client,
        host: &str,
        path: &str,
        shape: Shape,
        check: Check,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks = (0..shape.loops)
            .map(|n| {
                let (stop, sent, check) = (stop.clone(), sent.clone(), check.clone());
                let (host, path) = (host.to_string(), path.to_string());
                // Each loop has its own connection pool, hence its own connection.
                let client = client.clone_fresh();
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let c = match shape.conns {
                            Conns::KeepAlive => client.clone(),
                            Conns::Fresh => client.clone_fresh(),
                        };
                        let at = started.elapsed();
                        let req = c.request(reqwest::Method::GET, &host, &path);
                        let failure = match Client::try_send(req).await {
                            Ok(reply) => check(&reply).err(),
                            Err(e) => Some(format!("transport error: {e:?}")),
                        };
                        if let Some(why) = failure {
                            failures.push(format!("loop {n}, request sent at +{at:.3?}: {why}"));
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                        match shape.pause {
                            Some(pause) => tokio::time::sleep(pause).await,
                            None => tokio::task::yield_now().await,
                        }
                    }
                    failures
                })
            })
            .collect();
        Load {
            name: name.to_string(),
            stop,
            sent,
            tasks,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `n` more requests were sent from now: proof that traffic
    /// flowed over whatever happens meanwhile.
    pub async fn wait_more(&self, n: usize) {
        let target = self.sent() + n;
        crate::wait_until(
            &format!("{}: {n} more requests", self.name),
            crate::WAIT,
            || async { (self.sent() >= target).then_some(()) },
        )
        .await;
    }

    /// Stops the loops and reports.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.await.expect("load task"));
        }
        Report {
            name: self.name,
            sent: self.sent.load(Ordering::SeqCst),
            failures,
        }
    }
}

fn status_200() -> Check {
    Arc::new(|r: &Reply| {
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("status {}: {}", r.status, r.body))
        }
    })
}

//! Where config work runs, so that it does not compete with requests for the CPU.
//!
//! Loading a config (parse, validate: ~100 ms for 10,000 locations) and building its snapshot
//! run first on a thread of their own at `SCHED_IDLE`: it only gets CPU time the request
//! threads leave, and a request thread that wakes up takes the core back at once. A lower
//! priority that still competes (`SCHED_BATCH`, nice 10 or 19) measurably raised request p99
//! while swapping, because the scheduler lets a running thread go on until its next tick (4 ms
//! at HZ=250). On a core that stays saturated an idle thread could wait indefinitely, so after
//! [`IDLE_WAIT`] the same work also starts on the config runtime, whose threads merely run at a
//! lower priority (`SCHED_BATCH`, nice 10); the first result is used. Replaced snapshots are
//! freed at `SCHED_IDLE` too. The etcd follower and the file watcher run on the config runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::runtime::Runtime;

/// How long a load waits for idle CPU before it also runs at a (low) share of a busy core.
/// dataplane.md wants a change applied within 1 s of being written: this leaves the
/// fallback half of that, which covers a config of a few thousand locations on a busy core.
pub const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Nice value of the config runtime's threads (request threads keep 0).
const NICE: i32 = 10;

/// Sets the calling thread's scheduling policy (and nice value, for `SCHED_BATCH`). A
/// failure only costs latency, so it is logged.
fn set_scheduling(policy: libc::c_int, nice: i32) {
    let attr = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(0 = the calling thread, policy, a valid param that outlives
    // the call) and setpriority(PRIO_PROCESS, this thread's id, nice) change only this
    // thread's scheduling.
    let failed = unsafe {
        libc::sched_setscheduler(0, policy, &attr) != 0
            || (policy != libc::SCHED_IDLE
                && libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) != 0)
    };
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), policy, "cannot lower a config thread's priority");
    }
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("louailink-config")
                .on_thread_start(|| set_scheduling(libc::SCHED_BATCH, NICE))
                .enable_all()
                .build()
                .map_err(|e| tracing::warn!(error = %e, "no separate config runtime"))
                .ok()
        })
        .as_ref()
}

/// Runs `task` on the config runtime (on the current runtime should that not start).
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match runtime() {
        Some(rt) => drop(rt.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

/// Most idle threads alive at once. An idle thread that lost to its fallback on a saturated
/// core runs on (holding its memory) until it gets CPU time, so more are not started then.
const MAX_IDLE_THREADS: usize = 3;

static IDLE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Counts a live idle thread while it exists.
struct IdleSlot;

impl Drop for IdleSlot {
    fn drop(&mut self) {
        IDLE_THREADS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `job` on a new `SCHED_IDLE` thread. Returns false, having dropped `job` here, when
/// [`MAX_IDLE_THREADS`] are alive or no thread starts.
fn spawn_idle(job: impl FnOnce() + Send + 'static) -> bool {
    if IDLE_THREADS.fetch_add(1, Ordering::AcqRel) >= MAX_IDLE_THREADS {
        drop(IdleSlot);
        return false;
    }
    let slot = IdleSlot;
    std::thread::Builder::new()
        .name("louailink-idle".into())
        .spawn(move || {
            let _slot = slot;
            set_scheduling(libc::SCHED_IDLE, 0);
            job();
            release_memory();
        })
        .is_ok()
}

/// Runs `work` on a new `SCHED_IDLE` thread; if that has not finished within [`IDLE_WAIT`]
/// (or could not start), runs it on the current (config) runtime's blocking pool as well, and
/// returns the first result (`None` only if `work` panicked). `work` must be repeatable
/// (loading a file is).
pub async fn run_when_idle<T, W>(work: W) -> Option<T>
where
    T: Send + 'static,
    W: Fn() -> T + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<T>(2);
    let idle = {
        let (work, tx) = (Arc::clone(&work), tx.clone());
        spawn_idle(move || drop(tx.blocking_send(work())))
    };
    if idle {
        if let Ok(Some(done)) = tokio::time::timeout(IDLE_WAIT, rx.recv()).await {
            return Some(done);
        }
    }
    tokio::task::spawn_blocking(move || {
        let _ = tx.blocking_send(work());
        release_memory();
    });
    rx.recv().await
}

/// Drops `value` on a new `SCHED_IDLE` thread (or here, when none may start).
pub fn drop_when_idle<T: Send + 'static>(value: T) {
    spawn_idle(move || drop(value));
}

/// Returns memory this thread freed to the system now: loading a config allocates several
/// times the config's final size, and the allocator otherwise keeps freed pages of a thread
/// that then sleeps until it wakes up again, so the process would keep the load's peak.
pub fn release_memory() {
    // SAFETY: mi_collect has no preconditions; it only walks the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test(flavor = "multi_thread")]
    async fn work_still_runs_when_idle_threads_are_used_up() {
        // Idle threads that never get to finish (a saturated core) use up the slots...
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        for _ in 0..MAX_IDLE_THREADS {
            let wait = Arc::clone(&wait);
            assert!(spawn_idle(move || {
                let _ = wait.lock().map(|w| w.recv());
            }));
        }
        assert!(!spawn_idle(|| {}), "more idle threads than the cap");
        // ...and work then runs on the fallback instead.
        assert_eq!(run_when_idle(|| "loaded").await, Some("loaded"));
        drop(release);
        assert_eq!(run_when_idle(|| 6 * 7).await, Some(42));
    }
}

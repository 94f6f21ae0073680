//! Where config work runs, so that it does not compete with requests for the CPU.
//!
//! Loading a config (parse, validate: ~100 ms for 10,000 locations) and building its snapshot
//! run first on a thread of their own at `SCHED_IDLE`: it only gets CPU time the request
//! threads leave, and a request thread that wakes up takes the core back at once. A lower
//! priority that still competes (`SCHED_BATCH`, nice 10 or 19) measurably raised request p99
//! while swapping, because the scheduler lets a running thread go on until its next tick (4 ms
//! at HZ=250). On a core that stays saturated an idle thread could wait indefinitely, so after
//! [`IDLE_WAIT`] it is promoted to a merely lower priority (`SCHED_BATCH`, nice 10) and goes
//! on where it was. Leaving `SCHED_IDLE` needs `CAP_SYS_NICE`; without it the same work starts
//! again on the config runtime (whose threads run at that priority) and the first result is
//! used. Replaced snapshots are freed at `SCHED_IDLE` too. The etcd follower and the file
//! watcher run on the config runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::runtime::Runtime;

/// How long a load waits for idle CPU before it also runs at a (low) share of a busy core.
/// dataplane.md wants a change applied within 1 s of being written: this leaves the
/// fallback half of that, which covers a config of a few thousand locations on a busy core.
pub const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Nice value of the config runtime's threads (request threads keep 0).
const NICE: i32 = 10;

/// The calling thread's id.
fn this_thread() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Sets the scheduling policy of thread `tid` of this process (0: the calling thread), and for
/// `SCHED_BATCH` first the nice value [`NICE`]. Returns false (and logs why) when refused.
fn set_scheduling(tid: libc::pid_t, policy: libc::c_int) -> bool {
    let attr = libc::sched_param { sched_priority: 0 };
    let id = if tid == 0 { this_thread() } else { tid };
    // SAFETY: setpriority(PRIO_PROCESS, a thread id of ours, NICE) and sched_setscheduler(that
    // thread, policy, a valid param that outlives the call) change only that thread's
    // scheduling.
    let failed = unsafe {
        (policy != libc::SCHED_IDLE
            && libc::setpriority(libc::PRIO_PROCESS, id as libc::id_t, NICE) != 0)
            || libc::sched_setscheduler(id, policy, &attr) != 0
    };
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), policy, "cannot set a config thread's priority");
    }
    !failed
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("louailink-config")
                .on_thread_start(|| {
                    set_scheduling(0, libc::SCHED_BATCH);
                })
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

/// Where an idle thread is, for [`promote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Not running yet.
    Starting,
    /// Running at `SCHED_IDLE` as this thread id.
    Idle(libc::pid_t),
    /// Running at the config runtime's priority.
    Promoted,
    /// Its job has finished (the result is sent).
    Done,
}

type IdleStage = Arc<Mutex<Stage>>;

fn set_stage(stage: &IdleStage, f: impl FnOnce(&mut Stage)) {
    if let Ok(mut s) = stage.lock() {
        f(&mut s);
    }
}

/// Runs `job` on a new `SCHED_IDLE` thread. Returns `None`, having dropped `job` here, when
/// [`MAX_IDLE_THREADS`] are alive or no thread starts.
fn spawn_idle(job: impl FnOnce() + Send + 'static) -> Option<IdleStage> {
    if IDLE_THREADS.fetch_add(1, Ordering::AcqRel) >= MAX_IDLE_THREADS {
        drop(IdleSlot);
        return None;
    }
    let slot = IdleSlot;
    let stage = Arc::new(Mutex::new(Stage::Starting));
    let own = Arc::clone(&stage);
    std::thread::Builder::new()
        .name("louailink-idle".into())
        .spawn(move || {
            let _slot = slot;
            set_stage(&own, |s| match *s {
                Stage::Starting if set_scheduling(0, libc::SCHED_IDLE) => {
                    *s = Stage::Idle(this_thread());
                }
                Stage::Promoted => {
                    set_scheduling(0, libc::SCHED_BATCH);
                }
                _ => {}
            });
            job();
            set_stage(&own, |s| *s = Stage::Done);
            release_memory();
        })
        .ok()
        .map(|_| stage)
}

/// Moves an idle thread up to the config runtime's priority so that it goes on where it was;
/// false if that is refused (leaving `SCHED_IDLE` needs `CAP_SYS_NICE`).
fn promote(stage: &IdleStage) -> bool {
    let mut promoted = false;
    set_stage(stage, |s| {
        promoted = match *s {
            Stage::Starting => true,
            Stage::Idle(tid) => set_scheduling(tid, libc::SCHED_BATCH),
            Stage::Promoted | Stage::Done => true,
        };
        if promoted && *s != Stage::Done {
            *s = Stage::Promoted;
        }
    });
    promoted
}

/// Runs `work` on a new `SCHED_IDLE` thread; if that has not finished within [`IDLE_WAIT`],
/// promotes it (see the module) or, when that is refused or no idle thread could start, runs
/// `work` on the current (config) runtime's blocking pool as well, and returns the first
/// result (`None` only if `work` panicked). `work` must be repeatable (loading a file is).
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
    if let Some(stage) = idle {
        if let Ok(Some(done)) = tokio::time::timeout(IDLE_WAIT, rx.recv()).await {
            return Some(done);
        }
        if promote(&stage) {
            drop(tx);
            return rx.recv().await;
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

    /// The idle-thread count is process-wide: these tests take turns.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread")]
    async fn work_still_runs_when_idle_threads_are_used_up() {
        let _turn = SERIAL.lock().await;
        // Idle threads that never get to finish (a saturated core) use up the slots...
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        // (Other tests of this process may hold some slots for a while: fill what is left.)
        let mut taken = 0;
        while taken <= MAX_IDLE_THREADS {
            let wait = Arc::clone(&wait);
            if spawn_idle(move || {
                let _ = wait.lock().map(|w| w.recv());
            })
            .is_none()
            {
                break;
            }
            taken += 1;
        }
        assert!(taken <= MAX_IDLE_THREADS, "more idle threads than the cap");
        // ...and work then runs on the fallback instead.
        assert_eq!(run_when_idle(|| "loaded").await, Some("loaded"));
        drop(release);
        assert_eq!(run_when_idle(|| 6 * 7).await, Some(42));
        // Leave no slot taken for the next test.
        for _ in 0..3000 {
            if IDLE_THREADS.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("idle threads did not end");
    }

    /// Whether this process may move a thread from `SCHED_IDLE` back up (`CAP_SYS_NICE`).
    fn may_leave_idle() -> bool {
        std::thread::spawn(|| {
            set_scheduling(0, libc::SCHED_IDLE) && set_scheduling(0, libc::SCHED_BATCH)
        })
        .join()
        .unwrap_or(false)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn work_past_the_idle_wait_is_promoted_not_run_twice() {
        let _turn = SERIAL.lock().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let policy = run_when_idle(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            // Longer than the wait: the work is still running when the wait ends.
            std::thread::sleep(IDLE_WAIT * 2);
            // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
            unsafe { libc::sched_getscheduler(0) }
        })
        .await;
        if may_leave_idle() {
            assert_eq!(policy, Some(libc::SCHED_BATCH));
            assert_eq!(runs.load(Ordering::SeqCst), 1, "the load ran twice");
        } else {
            // Without CAP_SYS_NICE the work also starts on the fallback; the first result wins.
            assert!(policy.is_some());
        }
    }
}

//! The runtime that follows, loads and builds configs: one thread (and its blocking pool) at
//! a lower CPU priority (nice 10, `SCHED_BATCH`). Parsing, validating and compiling a large
//! config is bulk work: on a busy machine it should take the CPU the request threads leave,
//! not add its time slices to their latency. On an idle machine it runs at full speed.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Nice value of the config threads (request threads keep 0).
const NICE: libc::c_int = 10;

/// Lowers the calling thread's priority; failure only costs latency, so it is logged.
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both calls only change the scheduling of the calling thread (tid) and get
    // valid arguments; they touch no memory of ours beyond reading `param`.
    let (policy, nice) = unsafe {
        let tid = libc::gettid();
        (
            libc::sched_setscheduler(tid, libc::SCHED_BATCH, &param),
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE),
        )
    };
    if policy != 0 || nice != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the config thread's priority");
    }
}

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("louailink-config")
                .on_thread_start(lower_priority)
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

/// Returns memory this thread freed to the system now: loading a config allocates several
/// times the config's final size, and the allocator otherwise keeps freed pages of a thread
/// that then sleeps until it wakes up again, so the process would keep the load's peak.
pub fn release_memory() {
    // SAFETY: mi_collect has no preconditions; it only walks the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

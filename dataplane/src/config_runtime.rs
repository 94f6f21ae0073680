//! The runtime that follows, loads and builds configs: one thread (and its blocking pool) at
//! a lower CPU priority. Parsing, validating and compiling a large config is bulk work: on a
//! busy machine it should take the CPU the request threads leave, in slices short enough not
//! to hold a request up, rather than add whole time slices to their latency. On an idle
//! machine it runs at full speed.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Nice value of the config threads (request threads keep 0).
const NICE: i32 = 10;

/// Longest the scheduler lets a config thread run before a waiting request thread (Linux
/// 6.12+ honours a custom slice for normal tasks; older kernels ignore it).
const SLICE_NS: u64 = 100_000;

/// Lowers the calling thread's priority (`SCHED_BATCH`, nice 10, a short slice); failure
/// only costs latency, so it is logged.
fn lower_priority() {
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_BATCH as u32,
        sched_flags: 0,
        sched_nice: NICE,
        sched_priority: 0,
        sched_runtime: SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: sched_setattr(0 = the calling thread, a valid attr that outlives the call, 0)
    // changes only this thread's scheduling; setpriority likewise.
    let failed = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        ) != 0
            && libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) != 0
    };
    if failed {
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
